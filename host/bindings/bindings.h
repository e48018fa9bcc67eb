/* SPDX-License-Identifier: Apache-2.0 */
/* The host bindings: one Lua module per file in this folder, `host.<name>`.
 * Each file exports only luaopen_host_<name>; bindings.c registers them all. */
#ifndef BINDINGS_H
#define BINDINGS_H

#include <lua.h>

int luaopen_host_crypto(lua_State *L);  /* crypto.c: hashes, HMAC, base64, RSA, random */
int luaopen_host_http(lua_State *L);    /* http.c: libcurl client */
int luaopen_host_time(lua_State *L);    /* time.c: clock and cloud date formats */
int luaopen_host_log(lua_State *L);     /* log.c: levelled text/JSON log lines */
int luaopen_host_fs(lua_State *L);      /* fs.c: read files, stat, list directories */
int luaopen_host_shared(lua_State *L);  /* shared.c: process-wide key/value store */
int luaopen_host_yaml(lua_State *L);    /* yaml.c: YAML documents to Lua values (libyaml) */
int luaopen_host_process(lua_State *L); /* process.c: run a program with a deadline */
int luaopen_host_limits(lua_State *L);  /* limits.c: instruction and memory limits per call */

/// Makes every host module (and cjson) loadable with require() in L,
/// without loading any of them yet (package.preload).
void bindings_preload(lua_State *L);

#endif
