/* SPDX-License-Identifier: Apache-2.0 */
/* Lua module `host.limits`: runs a function under an instruction limit (a
 * count hook) and a memory limit (the cap of the state's counting allocator,
 * host/lua_alloc.c). A tripped limit stays tripped until the call returns, so
 * code that catches the error in its own pcall cannot run on; and it marks the
 * state poisoned: the host closes it after the request instead of reusing it.
 * In a stock lua5.4 (busted) the counting allocator is absent: memory is not
 * limited there (memory_limited() says so). */
#include "bindings/limits.h"
#include "bindings/bindings.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdbool.h>
#include <stdint.h>

#include "lua_alloc.h"

#define POISON_KEY "host.limits.poisoned"
#define MSG_INSTRUCTIONS "instruction limit exceeded"
#define MSG_MEMORY "memory limit exceeded"
/* Instructions between two hook calls: the overhead is one C call per this many. */
#define HOOK_STEP 1000

struct budget {
    lua_Integer limit; /* instructions; 0: none */
    lua_Integer used;
    int step;
    struct lua_alloc_control *alloc; /* NULL: memory not limited */
    const char *tripped;             /* MSG_* once a limit tripped */
};

/* The limited call running on this OS thread. A Lua state is used by one
 * thread at a time and a limited call does not nest, so the hook of any
 * coroutine resumed inside the call finds its budget here; a coroutine that
 * kept the hook from an earlier call finds NULL outside one. */
static _Thread_local struct budget *current;

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct budget *b = current;
    if (b == NULL)
        return;
    if (b->tripped == NULL) {
        b->used += b->step;
        if (b->limit > 0 && b->used > b->limit)
            b->tripped = MSG_INSTRUCTIONS;
        else if (b->alloc != NULL && lua_alloc_refused(b->alloc))
            b->tripped = MSG_MEMORY;
    }
    if (b->tripped != NULL) {
        /* From now on every instruction of this thread raises: a pcall that
         * caught the error cannot loop on. (Other coroutines raise at their
         * next hook, at most HOOK_STEP instructions later.) */
        lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
        lua_pushstring(L, b->tripped); /* interned by luaopen: no allocation */
        lua_error(L);
    }
}

static lua_Integer opt_count(lua_State *L, int opts, const char *key)
{
    lua_getfield(L, opts, key);
    int isnum = 0;
    lua_Integer n = lua_tointegerx(L, -1, &isnum);
    if (!lua_isnil(L, -1) && (!isnum || n < 0))
        luaL_error(L, "host.limits.run: '%s' must be an integer >= 0", key);
    lua_pop(L, 1);
    return isnum ? n : 0;
}

/* run(fn, opts, ...) -> true, ... | false, err (fn raised) | nil, message (a limit tripped,
 * or an earlier one did in this state: "not run: ..."). */
static int limits_run(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (current != NULL)
        return luaL_error(L, "host.limits.run: already inside a limited call");
    struct budget b = {.limit = opt_count(L, 2, "instructions")};
    lua_Integer memory = opt_count(L, 2, "memory");
    bool poison = lua_getfield(L, 2, "poison") == LUA_TNIL || lua_toboolean(L, -1);
    const char *label = /* anchored by opts, which stays on the stack */
        lua_getfield(L, 2, "label") == LUA_TSTRING ? lua_tostring(L, -1) : "limited call";
    lua_pop(L, 2);
    if (lua_getfield(L, LUA_REGISTRYINDEX, POISON_KEY) == LUA_TSTRING) {
        lua_pushfstring(L, "not run: %s", lua_tostring(L, -1));
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pop(L, 1);

    b.step = b.limit > 0 && b.limit < HOOK_STEP ? (int)b.limit : HOOK_STEP;
    b.alloc = memory > 0 ? lua_alloc_control(L) : NULL;
    size_t saved_cap = 0;
    if (b.alloc != NULL) {
        saved_cap = b.alloc->cap;
        size_t room = (uint64_t)memory > SIZE_MAX - b.alloc->in_use ? SIZE_MAX - b.alloc->in_use
                                                                    : (size_t)memory;
        b.alloc->cap = b.alloc->in_use + room;
        lua_alloc_clear(b.alloc);
    }
    lua_Hook saved_hook = lua_gethook(L);
    int saved_mask = lua_gethookmask(L), saved_count = lua_gethookcount(L);
    lua_sethook(L, count_hook, LUA_MASKCOUNT, b.step);
    current = &b;

    int nargs = lua_gettop(L) - 2;
    lua_pushvalue(L, 1);
    lua_remove(L, 1);
    lua_insert(L, 2); /* [opts, fn, args...]: opts keeps label alive below the results */
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);

    current = NULL;
    lua_sethook(L, saved_hook, saved_mask, saved_count);
    if (b.alloc != NULL) {
        if (b.tripped == NULL && lua_alloc_refused(b.alloc))
            b.tripped = MSG_MEMORY; /* refused after the last hook call */
        b.alloc->cap = saved_cap;
        lua_alloc_clear(b.alloc);
    }
    if (b.tripped != NULL) {
        lua_settop(L, 1);
        if (poison) {
            lua_pushfstring(L, "%s: %s", label, b.tripped);
            lua_setfield(L, LUA_REGISTRYINDEX, POISON_KEY);
        }
        lua_pushnil(L);
        lua_pushstring(L, b.tripped);
        return 2;
    }
    lua_pushboolean(L, status == LUA_OK);
    lua_replace(L, 1); /* opts -> the status flag */
    return lua_gettop(L);
}

/* poisoned() -> why this state must not be reused, or nil */
static int limits_poisoned_lua(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, POISON_KEY);
    return 1;
}

/* memory_limited() -> true when the memory option is enforced in this state */
static int limits_memory_limited(lua_State *L)
{
    lua_pushboolean(L, lua_alloc_control(L) != NULL);
    return 1;
}

/* in_use() -> bytes the state holds (the allocator's count, else Lua's own) */
static int limits_in_use(lua_State *L)
{
    struct lua_alloc_control *a = lua_alloc_control(L);
    if (a != NULL)
        lua_pushinteger(L, (lua_Integer)a->in_use);
    else
        lua_pushinteger(L, (lua_Integer)lua_gc(L, LUA_GCCOUNT) * 1024 + lua_gc(L, LUA_GCCOUNTB));
    return 1;
}

const char *limits_poisoned(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, POISON_KEY);
    const char *why = lua_tostring(L, -1); /* anchored by the registry */
    lua_pop(L, 1);
    return why;
}

/* reset() forgets a trip, for specs that run in one state (busted) */
static int limits_reset(lua_State *L)
{
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, POISON_KEY);
    return 0;
}

static const luaL_Reg limits_functions[] = {
    {"run", limits_run},                       /* (fn, opts, ...) */
    {"poisoned", limits_poisoned_lua},         /* () -> reason | nil */
    {"reset", limits_reset},                   /* () */
    {"memory_limited", limits_memory_limited}, /* () -> boolean */
    {"in_use", limits_in_use},                 /* () -> bytes */
    {NULL, NULL},
};

int luaopen_host_limits(lua_State *L)
{
    luaL_newlib(L, limits_functions);
    /* Kept alive here, so the hook can push them without allocating. */
    lua_pushliteral(L, MSG_INSTRUCTIONS);
    lua_setfield(L, -2, "INSTRUCTIONS");
    lua_pushliteral(L, MSG_MEMORY);
    lua_setfield(L, -2, "MEMORY");
    return 1;
}
