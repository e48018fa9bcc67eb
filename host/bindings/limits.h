/* SPDX-License-Identifier: Apache-2.0 */
/* The C side of host.limits: whether a limited call tripped in a Lua state,
 * which makes the state unfit for reuse. */
#ifndef LIMITS_H
#define LIMITS_H

#include <lua.h>

/// Why L must not be reused ("provider aws (restart): instruction limit
/// exceeded"), or NULL when no limited call in L tripped. The text stays
/// valid as long as L is open. Call only while no other thread uses L.
const char *limits_poisoned(lua_State *L);

#endif
