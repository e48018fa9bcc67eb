/* SPDX-License-Identifier: Apache-2.0 */
/* Lua states for requests: allowed libraries only, the host bindings in
 * package.preload, `infraops.app` configured from the flags, globals locked.
 * The request goes in as a plain table and the answer comes back as one. */
#include "script_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "bindings/bindings.h"
#include "bindings/limits.h"
#include "bindings/log.h"
#include "build_info.h"
#include "config.h"
#include "lua_alloc.h"
#include "chunk_cache.h"
#include "tls_binding.h"

#define REGISTRY_HANDLE "myapiserver.handle"
#define REGISTRY_TICK "myapiserver.tick"

/* Least privilege for trusted code, not a security boundary: no io, no debug,
 * no os.execute, no loading C code from disk. */
static void open_allowed_libraries(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_LOADLIBNAME, luaopen_package},
        {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_OSLIBNAME, luaopen_os},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    static const char *const os_removed[] = {"execute", "exit",      "remove", "rename",
                                             "tmpname", "setlocale", NULL};
    lua_getglobal(L, "os"); /* [os] */
    for (const char *const *name = os_removed; *name != NULL; name++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *name);
    }
    lua_pop(L, 1);
    static const char *const base_removed[] = {"dofile", "loadfile", NULL};
    for (const char *const *name = base_removed; *name != NULL; name++) {
        lua_pushnil(L);
        lua_setglobal(L, *name);
    }
}

static void set_package_paths(lua_State *L, const struct runtime_options *options)
{
    lua_getglobal(L, "package"); /* [package] */
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s/?.lua", options->lua_dir, options->lua_dir,
                    options->providers_dir);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
}

static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void push_config(lua_State *L)
{
    lua_createtable(L, 0, 2); /* [config] */
    lua_pushliteral(L, MYAPISERVER_VERSION);
    lua_setfield(L, -2, "version");
    lua_createtable(L, 0, (int)config_flag_count()); /* [config, flags] */
    for (size_t i = 0; i < config_flag_count(); i++) {
        const char *value = config_flag_value(i);
        if (value != NULL) {
            lua_pushstring(L, value);
            lua_setfield(L, -2, config_flag_name(i));
        }
    }
    lua_setfield(L, -2, "flags");
}

static int locked_newindex(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s'", luaL_optstring(L, 2, "?"));
}

/* Runs: handle, tick = require("infraops.app").new(config); then locks _G. */
static int load_app(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "infraops.app");
    lua_call(L, 1, 1); /* [app] */
    lua_getfield(L, -1, "new");
    push_config(L);
    lua_call(L, 1, 2); /* [app, handle, tick] */
    if (!lua_isfunction(L, -2))
        return luaL_error(L, "infraops.app.new(config) must return the request handler function");
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1))
        return luaL_error(L, "infraops.app.new(config): the periodic task must be a function");
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_TICK);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_HANDLE);
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, locked_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    return 0;
}

lua_State *script_runtime_new(const struct runtime_options *options, char *err, size_t errlen)
{
    lua_State *L = lua_alloc_newstate(); /* counts its bytes, for host.limits */
    if (L == NULL) {
        snprintf(err, errlen, "cannot create a Lua state: out of memory");
        return NULL;
    }
    open_allowed_libraries(L);
    chunk_cache_install(L);
    set_package_paths(L, options);
    bindings_preload(L);
    if (options->tls != NULL)
        tls_binding_register(L, options->tls);
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, load_app);
    if (lua_pcall(L, 0, 0, -2) != LUA_OK) {
        snprintf(err, errlen, "loading Lua from %s: %s", options->lua_dir, lua_tostring(L, -1));
        lua_alloc_close(L);
        return NULL;
    }
    lua_pop(L, 1);
    /* Loading leaves garbage (sources, parse tables) the size of the live heap; collect it now so
     * an idle state costs what it holds. */
    lua_gc(L, LUA_GCCOLLECT);
    lua_gc(L, LUA_GCGEN, 0, 0);
    return L;
}

bool script_runtime_tick(lua_State *L, bool first, char *err, size_t errlen)
{
    int base = lua_gettop(L);
    lua_pushcfunction(L, message_handler);
    if (lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_TICK) != LUA_TFUNCTION) {
        lua_settop(L, base);
        return true;
    }
    lua_pushboolean(L, first);
    bool ok = true;
    if (lua_pcall(L, 1, 2, base + 1) != LUA_OK) {
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
        ok = false;
    } else if (!lua_toboolean(L, -2)) {
        const char *why = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", why != NULL ? why : "periodic task failed");
        ok = false;
    }
    lua_settop(L, base);
    return ok;
}

void script_runtime_close(lua_State *L)
{
    lua_alloc_close(L);
}

bool script_runtime_reusable(lua_State *L)
{
    return limits_poisoned(L) == NULL;
}

static void push_string_pairs(lua_State *L, const struct name_value *pairs, size_t count)
{
    lua_createtable(L, (int)count, 0); /* [list] */
    for (size_t i = 0; i < count; i++) {
        lua_createtable(L, 2, 0); /* [list, pair] */
        lua_pushstring(L, pairs[i].name);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, pairs[i].value != NULL ? pairs[i].value : "");
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* headers[lower-case name] = {value, value, ...}: repeated headers (one
 * X-Remote-Group line per group) must all reach the authenticator. */
static void push_headers(lua_State *L, const struct name_value *headers, size_t count)
{
    lua_createtable(L, 0, (int)count); /* [headers] */
    for (size_t i = 0; i < count; i++) {
        luaL_Buffer name;
        luaL_buffinit(L, &name);
        for (const char *c = headers[i].name; *c != '\0'; c++)
            luaL_addchar(&name, (*c >= 'A' && *c <= 'Z') ? (char)(*c + 32) : *c);
        luaL_pushresult(&name); /* [headers, name] */
        lua_pushvalue(L, -1);
        if (lua_rawget(L, -3) != LUA_TTABLE) { /* [headers, name, values|nil] */
            lua_pop(L, 1);
            lua_createtable(L, 1, 0);
            lua_pushvalue(L, -2);
            lua_pushvalue(L, -2);
            lua_rawset(L, -5);
        }
        lua_pushstring(L, headers[i].value != NULL ? headers[i].value : "");
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
    }
}

static void push_peer(lua_State *L, const struct peer_identity *peer)
{
    lua_createtable(L, 0, 6); /* [peer] */
    lua_pushboolean(L, peer->presented);
    lua_setfield(L, -2, "presented");
    lua_pushboolean(L, peer->verified_client_ca);
    lua_setfield(L, -2, "verified_client_ca");
    lua_pushboolean(L, peer->verified_requestheader);
    lua_setfield(L, -2, "verified_requestheader");
    if (!peer->verified_client_ca && !peer->verified_requestheader)
        return; /* an unverified certificate counts as none: no names */
    lua_pushstring(L, peer->common_name);
    lua_setfield(L, -2, "common_name");
    lua_createtable(L, (int)peer->organization_count, 0);
    for (size_t i = 0; i < peer->organization_count; i++) {
        lua_pushstring(L, peer->organizations[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "organizations");
    lua_pushstring(L, peer->sha256_hex);
    lua_setfield(L, -2, "sha256");
}

static void push_request(lua_State *L, const struct request_view *req)
{
    lua_createtable(L, 0, 9); /* [req] */
    lua_pushstring(L, req->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, req->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, req->path);
    lua_setfield(L, -2, "path");
    push_string_pairs(L, req->query, req->query_count);
    lua_setfield(L, -2, "query");
    push_headers(L, req->headers, req->header_count);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, req->body != NULL ? req->body : "", req->body_length);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, req->remote_address != NULL ? req->remote_address : "");
    lua_setfield(L, -2, "remote_address");
    push_peer(L, req->peer);
    lua_setfield(L, -2, "peer");
}

static char *dup_lua_string(lua_State *L, int index, size_t *length)
{
    size_t n = 0;
    const char *s = lua_tolstring(L, index, &n);
    char *copy = malloc(n + 1);
    if (copy != NULL) {
        memcpy(copy, s, n);
        copy[n] = '\0';
    }
    if (length != NULL)
        *length = copy != NULL ? n : 0;
    return copy;
}

/* Header names and values must be strings without CR/LF (response splitting). */
static bool header_is_safe(lua_State *L, int key, int value)
{
    if (lua_type(L, key) != LUA_TSTRING || lua_type(L, value) != LUA_TSTRING)
        return false;
    return strpbrk(lua_tostring(L, key), "\r\n:") == NULL &&
           strpbrk(lua_tostring(L, value), "\r\n") == NULL;
}

/* Reads {status, headers, body, user} at the top of the stack into res.
 * Returns false (res untouched beyond what is freed later) if malformed. */
static bool read_response(lua_State *L, struct response *res)
{
    if (!lua_istable(L, -1))
        return false;
    lua_getfield(L, -1, "status");
    int isnum = 0;
    lua_Integer status = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || status < 100 || status > 599)
        return false;
    res->status = (int)status;
    if (lua_getfield(L, -1, "headers") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2) != 0) { /* [res, headers, key, value] */
            if (!header_is_safe(L, -2, -1) || res->header_count == RESPONSE_MAX_HEADERS)
                return false;
            res->header_names[res->header_count] = dup_lua_string(L, -2, NULL);
            res->header_values[res->header_count++] = dup_lua_string(L, -1, NULL);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "body") == LUA_TSTRING)
        res->body = dup_lua_string(L, -1, &res->body_length);
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "user") == LUA_TSTRING)
        res->user = dup_lua_string(L, -1, NULL);
    lua_pop(L, 1);
    return true;
}

static void log_lua_failure(const char *request_id, const char *what, const char *detail)
{
    const char *fields[] = {"request_id", request_id, "error", detail, NULL};
    log_write(LOG_LEVEL_ERROR, what, fields);
}

void script_runtime_handle(lua_State *L, const struct request_view *req, struct response *res)
{
    memset(res, 0, sizeof *res);
    int base = lua_gettop(L);
    lua_pushcfunction(L, message_handler);
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_HANDLE);
    push_request(L, req);
    if (lua_pcall(L, 1, 1, base + 1) != LUA_OK) {
        log_lua_failure(req->id, "request handler raised an error", lua_tostring(L, -1));
        response_set_status(res, 500, "InternalError",
                            "Internal error occurred: the request handler failed");
    } else if (!read_response(L, res)) {
        log_lua_failure(req->id, "request handler returned a malformed response",
                        "want {status=100..599, headers={string=string}, body=string}");
        response_free(res);
        response_set_status(res, 500, "InternalError",
                            "Internal error occurred: the request handler failed");
    }
    lua_settop(L, base);
    const char *poisoned = limits_poisoned(L);
    if (poisoned != NULL) /* once per request: the pool closes the state */
        log_lua_failure(req->id, "a provider call hit its limit; closing its Lua state", poisoned);
}

static char *dup_cstring(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    if (copy != NULL)
        memcpy(copy, s, n);
    return copy;
}

/* messages here are host constants: plain ASCII with no characters to escape */
void response_set_status(struct response *res, int code, const char *reason, const char *message)
{
    memset(res, 0, sizeof *res);
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
                     "\"status\":\"Failure\",\"message\":\"%s\",\"reason\":\"%s\","
                     "\"code\":%d}\n",
                     message, reason, code);
    res->status = code;
    res->body = dup_cstring(body);
    res->body_length = res->body != NULL ? (size_t)n : 0;
    res->header_names[0] = dup_cstring("Content-Type");
    res->header_values[0] = dup_cstring("application/json");
    res->header_count = 1;
}

void response_free(struct response *res)
{
    for (size_t i = 0; i < res->header_count; i++) {
        free(res->header_names[i]);
        free(res->header_values[i]);
    }
    free(res->body);
    free(res->user);
    memset(res, 0, sizeof *res);
}
