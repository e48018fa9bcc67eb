/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for lua_alloc.h and host.limits in a state made like the server's (the
 * counting allocator), which a stock lua5.4 under busted does not have: the
 * memory limit (also against code that catches the error), garbage that
 * does not count, the cap restored after a call, the byte count back to zero
 * at close, and limits_poisoned(). Exits non-zero on failure. */
#include "bindings/bindings.h"
#include "bindings/limits.h"
#include "lua_alloc.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
        }                                                                                          \
    } while (0)

/* Runs a chunk that returns a string; compares it with want. */
static void expect(lua_State *L, const char *chunk, const char *want)
{
    if (luaL_dostring(L, chunk) != LUA_OK) {
        CHECK(0, "%s raised: %s", chunk, lua_tostring(L, -1));
    } else {
        const char *got = lua_tostring(L, -1);
        CHECK(got != NULL && strcmp(got, want) == 0, "%s\n  got %s, want %s", chunk,
              got != NULL ? got : "(not a string)", want);
    }
    lua_settop(L, 0);
}

int main(void)
{
    lua_State *L = lua_alloc_newstate();
    CHECK(L != NULL, "lua_alloc_newstate");
    struct lua_alloc_control *a = lua_alloc_control(L);
    CHECK(a != NULL && a->in_use > 0 && a->cap == 0, "a fresh state has a count and no cap");
    luaL_openlibs(L);
    luaL_requiref(L, "limits", luaopen_host_limits, 1);
    lua_pop(L, 1);
    luaL_dostring(L, "function show(ok, why) return tostring(ok) .. ' ' .. tostring(why) end");
    lua_settop(L, 0);

    expect(L, "return tostring(limits.memory_limited())", "true");
    /* Growth without bound. */
    expect(L,
           "return show(limits.run(function() local t = {} "
           "for i = 1, 1e8 do t[i] = ('x'):rep(64) .. i end end, { memory = 1 << 20 }))",
           "nil memory limit exceeded");
    CHECK(limits_poisoned(L) != NULL && strstr(limits_poisoned(L), "memory") != NULL,
          "the state is poisoned: %s", limits_poisoned(L) ? limits_poisoned(L) : "(null)");
    CHECK(a->cap == 0, "the cap is lifted after the call (%zu)", a->cap);
    expect(L, "return show(limits.run(function() return 1 end, {}))",
           "nil not run: limited call: memory limit exceeded");
    expect(L, "limits.reset() return tostring(limits.poisoned())", "nil");

    /* One huge allocation. */
    expect(L, "return show(limits.run(string.rep, { memory = 1 << 20 }, 'x', 1 << 26))",
           "nil memory limit exceeded");
    expect(L, "limits.reset() return 'ok'", "ok");

    /* Caught in the script's own pcall, then freed: still over. */
    expect(L,
           "return show(limits.run(function() while true do pcall(function() local t = {} "
           "while true do t[#t + 1] = {} end end) end end, { memory = 1 << 20, label = 'x' }))",
           "nil memory limit exceeded");
    expect(L, "return limits.poisoned()", "x: memory limit exceeded");
    expect(L, "limits.reset() return 'ok'", "ok");

    /* Garbage is collected, not counted: 100 MB churned under a 256 KiB limit. */
    expect(L,
           "return show(limits.run(function() local n = 0 for i = 1, 1e5 do "
           "n = n + #(('y'):rep(1000) .. i) end return n > 0 end, { memory = 256 << 10 }))",
           "true true");
    /* Instructions, and both at once: whichever trips first. */
    expect(L,
           "return show(limits.run(function() while true do end end, "
           "{ instructions = 1e6, memory = 1 << 20, poison = false }))",
           "nil instruction limit exceeded");
    CHECK(limits_poisoned(L) == NULL, "poison = false leaves the state usable");
    /* After a call the state allocates freely again. */
    expect(L, "local s = ('z'):rep(1 << 24) return tostring(#s)", "16777216");

    lua_gc(L, LUA_GCCOLLECT);
    size_t before = a->in_use;
    expect(L, "big = ('w'):rep(1 << 22) return 'ok'", "ok");
    CHECK(a->in_use >= before + (1u << 22), "the count follows allocations (%zu -> %zu)", before,
          a->in_use);
    lua_alloc_close(L);

    if (failures == 0)
        printf("limits_test: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
