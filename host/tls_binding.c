/* SPDX-License-Identifier: Apache-2.0 */
/* Lua module `host.tls` (host only, not a standalone module): hands the CA
 * bundles read from the cluster to the TLS store. Misuse raises; a bundle that
 * does not load returns nil, message, "invalid_ca". */
#include "tls_binding.h"

#include <lauxlib.h>

#define REGISTRY_TLS_STORE "myapiserver.tls_store"

static struct tls_store *store_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_TLS_STORE);
    struct tls_store *store = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (store == NULL)
        luaL_error(L, "host.tls: no TLS store in this Lua state");
    return store;
}

static const char *opt_pem(lua_State *L, const char *field)
{
    lua_getfield(L, 1, field);
    const char *pem = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
    if (pem == NULL && !lua_isnil(L, -1))
        luaL_error(L, "host.tls.set_cluster_cas: '%s' must be a string or nil", field);
    lua_pop(L, 1); /* the string stays alive: it is referenced by the argument table */
    return pem;
}

/* set_cluster_cas{client_ca = pem|nil, requestheader_ca = pem|nil} -> true, changed */
static int tls_set_cluster_cas(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *client = opt_pem(L, "client_ca");
    const char *requestheader = opt_pem(L, "requestheader_ca");
    char err[512];
    int rc = tls_store_set_cluster_cas(store_of(L), client, requestheader, err, sizeof err);
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushliteral(L, "invalid_ca");
        return 3;
    }
    lua_pushboolean(L, 1);
    lua_pushboolean(L, rc == 1);
    return 2;
}

/* files() -> {client_ca = bool, requestheader_ca = bool}: which CAs flags name */
static int tls_files(lua_State *L)
{
    struct tls_store *store = store_of(L);
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, tls_store_has_file(store, TLS_CA_CLIENT));
    lua_setfield(L, -2, "client_ca");
    lua_pushboolean(L, tls_store_has_file(store, TLS_CA_REQUESTHEADER));
    lua_setfield(L, -2, "requestheader_ca");
    return 1;
}

static const luaL_Reg tls_functions[] = {
    {"set_cluster_cas", tls_set_cluster_cas},
    {"files", tls_files},
    {NULL, NULL},
};

static int luaopen_host_tls(lua_State *L)
{
    luaL_newlib(L, tls_functions);
    return 1;
}

void tls_binding_register(lua_State *L, struct tls_store *store)
{
    lua_pushlightuserdata(L, store);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_TLS_STORE);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* [preload] */
    lua_pushcfunction(L, luaopen_host_tls);
    lua_setfield(L, -2, "host.tls");
    lua_pop(L, 1);
}
