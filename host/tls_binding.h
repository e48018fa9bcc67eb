/* SPDX-License-Identifier: Apache-2.0 */
/* `host.tls` for the server's Lua states: the CA bundles read from the cluster
 * reach the TLS store that verifies client certificates. */
#ifndef TLS_BINDING_H
#define TLS_BINDING_H

#include <lua.h>

#include "tls_store.h"

/// Makes require("host.tls") work in L, acting on store.
void tls_binding_register(lua_State *L, struct tls_store *store);

#endif
