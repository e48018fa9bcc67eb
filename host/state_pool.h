/* SPDX-License-Identifier: Apache-2.0 */
/* A pool of Lua states: a request borrows one, no other thread touches it
 * until it is returned. States are created on demand, so a burst of slow
 * requests never waits for another's state; idle ones beyond a cap are closed. */
#ifndef STATE_POOL_H
#define STATE_POOL_H

#include <stddef.h>

#include <lua.h>

#include "script_runtime.h"

struct state_pool;

/// A pool holding one ready state (created now, so a broken Lua tree fails
/// start-up). NULL and one line in err on failure.
struct state_pool *state_pool_new(const struct runtime_options *options, size_t max_idle, char *err,
                                  size_t errlen);

/// A state for this thread alone; NULL (err filled) only if a new one fails.
lua_State *state_pool_acquire(struct state_pool *pool, char *err, size_t errlen);

void state_pool_release(struct state_pool *pool, lua_State *L);

/// Number of states alive (borrowed or idle), for readiness details.
size_t state_pool_size(struct state_pool *pool);

void state_pool_free(struct state_pool *pool);

#endif
