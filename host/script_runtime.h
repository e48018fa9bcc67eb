/* SPDX-License-Identifier: Apache-2.0 */
/* One Lua state: created with the allowed libraries and the host bindings,
 * loaded with `infraops.app`, and called once per request. The only entry
 * from C into Lua is script_runtime_handle(), a pcall with a traceback. */
#ifndef SCRIPT_RUNTIME_H
#define SCRIPT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "peer_identity.h"

struct tls_store;

struct runtime_options {
    const char *lua_dir;
    const char *providers_dir;
    struct tls_store *tls; /* for host.tls; NULL: the module is absent */
};

struct name_value {
    const char *name;
    const char *value;
};

/* A request as the HTTP layer saw it; every pointer is borrowed for the call. */
struct request_view {
    const char *id;
    const char *method;
    const char *path;               /* raw, still percent-encoded */
    const struct name_value *query; /* raw pairs, in order */
    size_t query_count;
    const struct name_value *headers; /* in order, repeated names kept */
    size_t header_count;
    const char *body;
    size_t body_length;
    const char *remote_address;
    const struct peer_identity *peer;
};

enum { RESPONSE_MAX_HEADERS = 32 };

/* What Lua answered; owned by the caller (response_free). */
struct response {
    int status;
    size_t header_count;
    char *header_names[RESPONSE_MAX_HEADERS];
    char *header_values[RESPONSE_MAX_HEADERS];
    char *body;
    size_t body_length;
    char *user; /* who asked, for the request log; may be NULL */
};

/// A new state with `infraops.app` loaded and configured from the flags.
/// Returns NULL and one line in err if the Lua code fails to load.
lua_State *script_runtime_new(const struct runtime_options *options, char *err, size_t errlen);

/// Runs app.handle(request). Any Lua error is logged with its traceback and
/// becomes a generic 500 Status; res is always filled.
void script_runtime_handle(lua_State *L, const struct request_view *req, struct response *res);

/// Fills res with a metav1.Status for errors the host answers itself.
void response_set_status(struct response *res, int code, const char *reason, const char *message);

void response_free(struct response *res);

/// Runs the app's periodic task (the second value infraops.app.new returned,
/// if any), passing `first`. Returns false with err filled when the task
/// returned nil, err or raised; true otherwise (also when there is no task).
bool script_runtime_tick(lua_State *L, bool first, char *err, size_t errlen);

void script_runtime_close(lua_State *L);

/// False when a limited call (host.limits) tripped in L: the state must be
/// closed, not reused, since the code it interrupted may have left it half-changed.
bool script_runtime_reusable(lua_State *L);

#endif
