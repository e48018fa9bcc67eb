/* SPDX-License-Identifier: Apache-2.0 */
/* A process-wide cache of compiled Lua chunks, so a new Lua state loads bytecode instead of
 * parsing every module and provider script again (parsing was ~90% of creating a state). */
#ifndef MYAPISERVER_CHUNK_CACHE_H
#define MYAPISERVER_CHUNK_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

/* Replaces the Lua file searcher of `require` and the global `load` in L with versions that go
 * through the cache. Both behave as the originals (same results, errors and chunk names); a
 * chunk is looked up by a hash of its name and source text, and only bytecode the host compiled
 * itself is ever loaded (a binary chunk passed to load goes to the original, which honours the
 * mode). Call after opening the libraries. */
void chunk_cache_install(lua_State *L);

/* Whether chunks loaded from now on are stored (off at start). A server that needs one Lua state
 * (idle) keeps no bytecode; the pool turns recording on when it makes a second state. */
void chunk_cache_record(bool on);

/* Bytes of bytecode held (for tests and figures). */
size_t chunk_cache_bytes(void);

/* Drops every entry (when the pool is back to one state, and for tests). */
void chunk_cache_clear(void);

#endif
