/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer entry for the Lua code: one Lua state per process, set up like the server's
 * (host/script_runtime.c: same libraries, the host bindings in package.preload, globals locked),
 * and one harness, fuzz/harness/<FUZZ_HARNESS>.lua, that returns function(data).
 *
 * Coverage: Debian's liblua is not instrumented, so a line hook turns every (previous line,
 * current line) pair of the product's Lua code into an edge counter in libFuzzer's extra-counters
 * section. The C bindings compiled in (yaml.c, time.c, crypto.c, ...) are instrumented normally.
 *
 * Findings: a sanitizer report, a timeout, running out of memory, a provider call that trips its
 * host.limits limit, or an error escaping the harness function. Harnesses call the product the way
 * the server does and report (require("fuzz").fail) when a module breaks its contract, e.g. a
 * parser that promises `nil, err` raises instead. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "bindings/bindings.h"
#ifdef FUZZ_HAVE_LUA_ALLOC
#include "lua_alloc.h"
#endif
#if __has_include("bindings/limits.h")
#include "bindings/limits.h"
#define FUZZ_HAVE_LIMITS 1
#endif

#ifndef FUZZ_HARNESS
#error "FUZZ_HARNESS must name the harness (fuzz/harness/<name>.lua)"
#endif
#ifndef FUZZ_SOURCE_ROOT
#error "FUZZ_SOURCE_ROOT must be the repository root"
#endif

#define REGISTRY_HARNESS "fuzz.harness"
#define EDGE_COUNTERS (1u << 16)
#define SOURCE_CACHE 64
#define LINE_SLOTS (1u << 16) /* distinct (source, line) pairs remembered for the summary */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer reads every counter in this section after each input (FuzzerExtraCounters.cpp). */
__attribute__((section("__libfuzzer_extra_counters"))) static uint8_t lua_edges[EDGE_COUNTERS];

static lua_State *fuzz_state;
static uint32_t previous_location;

/* A chunk's source string keeps its address while its functions live, so a small cache by
 * address saves hashing the name on every line. hash 0 = not product code (the harness). */
static struct {
    const char *source;
    uint32_t hash;
} source_cache[SOURCE_CACHE];

/* Distinct lines reached, for the summary printed at exit. */
static uint32_t line_keys[LINE_SLOTS];
static unsigned lines_seen;
static FILE *lines_out;

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s != '\0'; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h != 0 ? h : 1;
}

/* Only the server's Lua (lua/, providers/) counts: the harness's own lines would reward inputs
 * for nothing. */
static uint32_t source_hash(const char *source)
{
    uintptr_t slot = ((uintptr_t)source >> 4) % SOURCE_CACHE;
    if (source_cache[slot].source != source) {
        source_cache[slot].source = source;
        source_cache[slot].hash = strstr(source, "/fuzz/") != NULL ? 0 : fnv1a(source);
    }
    return source_cache[slot].hash;
}

/* Counts a line the first time it is reached and, with FUZZ_LUA_LINES=path, writes it there
 * ("source<TAB>line"), for a coverage report. */
static void remember_line(uint32_t location, const char *source, int line)
{
    uint32_t key = location != 0 ? location : 1;
    for (uint32_t i = key % LINE_SLOTS, probes = 0; probes < 64;
         i = (i + 1) % LINE_SLOTS, probes++) {
        if (line_keys[i] == key)
            return;
        if (line_keys[i] == 0) {
            line_keys[i] = key;
            lines_seen++;
            if (lines_out != NULL)
                fprintf(lines_out, "%s\t%d\n", source, line);
            return;
        }
    }
}

static void line_hook(lua_State *L, lua_Debug *ar)
{
    if (!lua_getinfo(L, "S", ar) || ar->source == NULL)
        return;
    uint32_t h = source_hash(ar->source);
    if (h == 0)
        return;
    uint32_t location = (h ^ ((uint32_t)ar->currentline * 2654435761u));
    lua_edges[(location ^ previous_location) % EDGE_COUNTERS]++;
    previous_location = location >> 1; /* AFL's trick: A->B and B->A differ */
    remember_line(location, ar->source, ar->currentline);
}

/* ---- sharing the hook ----
 * A Lua state has one hook, and host.limits sets its own (a count hook) around the calls it
 * bounds. This file's lua_sethook/lua_gethook* take the place of liblua's for the code linked
 * in: the binding's hook (the "guest") is kept and called from one dispatcher that also records
 * lines, so coverage goes on inside bounded calls and the limits still apply. */

typedef void (*sethook_fn)(lua_State *, lua_Hook, int, int);

static lua_Hook guest_hook;
static int guest_mask, guest_count;

static void real_sethook(lua_State *L, lua_Hook f, int mask, int count)
{
    static sethook_fn next;
    if (next == NULL)
        next = (sethook_fn)dlsym(RTLD_NEXT, "lua_sethook");
    next(L, f, mask, count);
}

static void dispatch_hook(lua_State *L, lua_Debug *ar)
{
    if (ar->event == LUA_HOOKLINE)
        line_hook(L, ar);
    int event = ar->event == LUA_HOOKTAILCALL ? LUA_HOOKCALL : ar->event;
    if (guest_hook != NULL && (guest_mask & (1 << event)) != 0)
        guest_hook(L, ar);
}

void lua_sethook(lua_State *L, lua_Hook f, int mask, int count)
{
    if (f == NULL || mask == 0) {
        f = NULL;
        mask = 0;
    }
    guest_hook = f;
    guest_mask = mask;
    guest_count = count;
    real_sethook(L, dispatch_hook, mask | LUA_MASKLINE, count);
}

lua_Hook lua_gethook(lua_State *L)
{
    (void)L;
    return guest_hook;
}

int lua_gethookmask(lua_State *L)
{
    (void)L;
    return guest_mask;
}

int lua_gethookcount(lua_State *L)
{
    (void)L;
    return guest_count;
}

static void print_summary(void)
{
    fprintf(stderr, "LUA: %u distinct lines of lua/ and providers/ reached\n", lines_seen);
    if (lines_out != NULL)
        fclose(lines_out);
}

/* require("fuzz").fail(message): a broken contract, recorded by libFuzzer as a crash. */
static int fuzz_fail(lua_State *L)
{
    luaL_traceback(L, L, luaL_optstring(L, 1, "contract broken"), 1);
    fprintf(stderr, "\nFUZZ CONTRACT BROKEN (%s): %s\n", FUZZ_HARNESS, lua_tostring(L, -1));
    abort();
}

static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* The same libraries as host/script_runtime.c, minus the same os and base functions. */
static void open_server_libraries(lua_State *L)
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
    lua_getglobal(L, "os");
    for (const char *const *name = os_removed; *name != NULL; name++) {
        lua_pushnil(L);
        lua_setfield(L, -2, *name);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
}

/* package.path: the server's Lua and providers, plus fuzz/ for the harnesses; no C modules. */
static void set_paths(lua_State *L, const char *root)
{
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s/providers/?.lua;%s/fuzz/?.lua", root,
                    root, root, root);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
}

static void register_fuzz_module(lua_State *L, const char *root)
{
    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, fuzz_fail);
    lua_setfield(L, -2, "fail");
    lua_pushstring(L, root);
    lua_setfield(L, -2, "root");
    lua_pushliteral(L, FUZZ_HARNESS);
    lua_setfield(L, -2, "harness");
    lua_pushliteral(L, FUZZ_SOURCE_ROOT); /* the repository (host/), whatever root is */
    lua_setfield(L, -2, "repo");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_insert(L, -2);
    lua_setfield(L, -2, "fuzz"); /* require("fuzz") */
    lua_pop(L, 1);
}

static int locked_newindex(lua_State *L)
{
    return luaL_error(L, "assignment to undeclared global '%s'", luaL_optstring(L, 2, "?"));
}

/* harness = require("harness.<name>"); then _G is locked, as the server locks it. */
static int load_harness(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "harness." FUZZ_HARNESS);
    lua_call(L, 1, 1);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "fuzz/harness/%s.lua must return a function", FUZZ_HARNESS);
    lua_setfield(L, LUA_REGISTRYINDEX, REGISTRY_HARNESS);
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, locked_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *root = getenv("FUZZ_SOURCE_ROOT");
    if (root == NULL || root[0] == '\0')
        root = FUZZ_SOURCE_ROOT;
    const char *lines_path = getenv("FUZZ_LUA_LINES");
    if (lines_path != NULL && lines_path[0] != '\0')
        lines_out = fopen(lines_path, "w");
#ifdef FUZZ_HAVE_LUA_ALLOC
    lua_State *L = lua_alloc_newstate(); /* the server's counting allocator */
#else
    lua_State *L = luaL_newstate();
#endif
    if (L == NULL)
        abort();
    open_server_libraries(L);
    set_paths(L, root);
    bindings_preload(L);
    register_fuzz_module(L, root);
    lua_sethook(L, NULL, 0, 0); /* no guest yet: lines only */
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, load_harness);
    if (lua_pcall(L, 0, 0, -2) != LUA_OK) {
        fprintf(stderr, "fuzz: loading harness %s from %s: %s\n", FUZZ_HARNESS, root,
                lua_tostring(L, -1));
        exit(2);
    }
    lua_pop(L, 1);
    fuzz_state = L;
    atexit(print_summary);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_state;
    int base = lua_gettop(L);
    previous_location = 0;
    lua_pushcfunction(L, message_handler);
    lua_getfield(L, LUA_REGISTRYINDEX, REGISTRY_HARNESS);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, base + 1) != LUA_OK) {
        fprintf(stderr, "\nFUZZ LUA ERROR ESCAPED (%s): %s\n", FUZZ_HARNESS, lua_tostring(L, -1));
        abort();
    }
#ifdef FUZZ_HAVE_LIMITS
    /* A provider call that hit its instruction or memory limit on this input: the server
     * would discard the state; here it is a finding (and later inputs would not run). */
    const char *poisoned = limits_poisoned(L);
    if (poisoned != NULL) {
        fprintf(stderr, "\nFUZZ LIMIT TRIPPED (%s): %s\n", FUZZ_HARNESS, poisoned);
        abort();
    }
#endif
    lua_settop(L, base);
    return 0;
}
