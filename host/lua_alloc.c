/* SPDX-License-Identifier: Apache-2.0 */
/* The counting allocator (see lua_alloc.h). Lua assumes that shrinking and
 * freeing never fail, so only growth is ever refused. When a growth is refused
 * Lua (luaM_) runs an emergency collection and asks again once; lauxlib's
 * buffers do not. A refusal counts once it is clear no retry fits. */
#include "lua_alloc.h"

#include <stdio.h>
#include <stdlib.h>

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lua_alloc_control *a = ud;
    size_t old = ptr != NULL ? osize : 0; /* for a new block, osize is the object's type */
    if (nsize == 0) {
        free(ptr);
        a->in_use -= old;
        return NULL;
    }
    if (nsize > old) {
        bool retry = a->pending_size == nsize && a->pending_ptr == ptr;
        if (a->pending_size != 0 && !retry)
            a->refused = true; /* the last refusal was not retried: it was final */
        a->pending_size = 0;
        if (a->cap != 0 && a->in_use - old + nsize > a->cap) {
            if (retry) {
                a->refused = true; /* refused again after a collection */
            } else {
                a->pending_ptr = ptr;
                a->pending_size = nsize;
            }
            return NULL;
        }
    }
    void *block = realloc(ptr, nsize);
    if (block == NULL)
        return NULL;
    a->in_use = a->in_use - old + nsize;
    return block;
}

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n",
            msg != NULL ? msg : "error object is not a string");
    return 0; /* Lua aborts */
}

lua_State *lua_alloc_newstate(void)
{
    struct lua_alloc_control *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    lua_State *L = lua_newstate(counting_alloc, a);
    if (L == NULL) {
        free(a);
        return NULL;
    }
    lua_atpanic(L, panic);
    lua_setwarnf(L, NULL, NULL); /* luaL_newstate's default is "off" too */
    return L;
}

struct lua_alloc_control *lua_alloc_control(lua_State *L)
{
    void *ud = NULL;
    return lua_getallocf(L, &ud) == counting_alloc ? ud : NULL;
}

void lua_alloc_close(lua_State *L)
{
    if (L == NULL)
        return;
    struct lua_alloc_control *a = lua_alloc_control(L);
    lua_close(L);
    free(a);
}
