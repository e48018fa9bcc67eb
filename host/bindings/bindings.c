/* SPDX-License-Identifier: Apache-2.0 */
/* Registers every host binding (and lua-cjson, linked in) in package.preload. */
#include "bindings/bindings.h"

#include <lauxlib.h>

int luaopen_cjson(lua_State *L); /* from liblua5.4-cjson */

static const luaL_Reg preloads[] = {
    {"host.crypto", luaopen_host_crypto},   /* crypto.c */
    {"host.http", luaopen_host_http},       /* http.c */
    {"host.time", luaopen_host_time},       /* time.c */
    {"host.log", luaopen_host_log},         /* log.c */
    {"host.fs", luaopen_host_fs},           /* fs.c */
    {"host.shared", luaopen_host_shared},   /* shared.c */
    {"host.yaml", luaopen_host_yaml},       /* yaml.c */
    {"host.process", luaopen_host_process}, /* process.c */
    {"host.limits", luaopen_host_limits},   /* limits.c */
    {"cjson", luaopen_cjson},               /* lua-cjson */
    {NULL, NULL},
};

void bindings_preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE); /* [preload] */
    for (const luaL_Reg *p = preloads; p->name != NULL; p++) {
        lua_pushcfunction(L, p->func);
        lua_setfield(L, -2, p->name);
    }
    lua_pop(L, 1);
}
