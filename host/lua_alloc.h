/* SPDX-License-Identifier: Apache-2.0 */
/* The allocator of the server's Lua states: malloc/realloc/free that counts
 * the bytes each state holds and, while a cap is set (host.limits during a
 * provider call), refuses to grow past it. Lua then collects garbage and, if
 * that does not free enough, raises "not enough memory". */
#ifndef LUA_ALLOC_H
#define LUA_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

/* One per Lua state; only the thread using the state touches it. */
struct lua_alloc_control {
    size_t in_use; /* bytes in Lua's blocks right now */
    size_t cap;    /* 0: no cap; else growth past this many bytes is refused */
    bool refused;  /* an allocation failed for good since this was last cleared */
    /* A refused request Lua may still retry (after an emergency collection,
     * as its very next allocation): final unless that retry fits. */
    void *pending_ptr;
    size_t pending_size; /* 0: none */
};

/// True when an allocation failed for good since the flags were cleared.
/// Exact between Lua instructions (in a hook) and after a call returned.
static inline bool lua_alloc_refused(const struct lua_alloc_control *a)
{
    return a->refused || a->pending_size != 0;
}

/// Clears the flags above.
static inline void lua_alloc_clear(struct lua_alloc_control *a)
{
    a->refused = false;
    a->pending_size = 0;
}

/// A new Lua state using the counting allocator (panic handler as
/// luaL_newstate's, warnings off). NULL when out of memory.
lua_State *lua_alloc_newstate(void);

/// The counting allocator's control block of L, or NULL when L uses another
/// allocator (a stock lua5.4 that loaded host.limits as a module).
struct lua_alloc_control *lua_alloc_control(lua_State *L);

/// lua_close, then frees the control block.
void lua_alloc_close(lua_State *L);

#endif
