/* SPDX-License-Identifier: Apache-2.0 */
/* A pool of Lua states: a request borrows one, no other thread touches it
 * until it is returned. States are created on demand, so a burst of slow
 * requests never waits for another's state. Idle ones are kept up to a cap, so
 * steady load never pays for new states, and trimmed once unused for a while,
 * so memory goes back down after a burst. */
#ifndef STATE_POOL_H
#define STATE_POOL_H

#include <stddef.h>

#include <lua.h>

#include "script_runtime.h"

struct state_pool;

/// Seconds a request waits for a state to come back once soft_limit states are alive.
#define STATE_POOL_SOFT_LIMIT_WAIT 0.002

/// A pool holding one ready state (created now, so a broken Lua tree fails
/// start-up), keeping at most max_idle idle. Beyond soft_limit states alive, a
/// request waits up to STATE_POOL_SOFT_LIMIT_WAIT for one before making another.
/// NULL and one line in err on failure.
struct state_pool *state_pool_new(const struct runtime_options *options, size_t max_idle,
                                  size_t soft_limit, char *err, size_t errlen);

/// A state for this thread alone; NULL (err filled) only if a new one fails.
lua_State *state_pool_acquire(struct state_pool *pool, char *err, size_t errlen);

void state_pool_release(struct state_pool *pool, lua_State *L);

/// Closes idle states unused for idle_seconds, oldest first, keeping one (and at most 64 a
/// call). Returns how many were closed. For the periodic thread.
size_t state_pool_trim(struct state_pool *pool, double idle_seconds);

/// Number of states alive (borrowed or idle), for readiness details.
size_t state_pool_size(struct state_pool *pool);

void state_pool_free(struct state_pool *pool);

#endif
