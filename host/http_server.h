/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTPS server (libmicrohttpd + GnuTLS): libmicrohttpd's threads do TLS and
 * HTTP; each request runs on a long-lived worker thread with a Lua state
 * borrowed for it, so a slow request stalls only its own client. */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "state_pool.h"
#include "tls_store.h"

struct http_server;

/// Starts listening. NULL and one line in err on failure.
struct http_server *http_server_start(const struct host_config *cfg, struct tls_store *tls,
                                      struct state_pool *pool, char *err, size_t errlen);

/// The port actually bound (useful with --secure-port=0).
int http_server_port(const struct http_server *server);

/// Stops accepting new connections; requests in flight go on.
void http_server_quiesce(struct http_server *server);

/// Waits until no request is in flight, at most timeout seconds. True if idle.
bool http_server_wait_idle(struct http_server *server, double timeout);

/// Closes every connection and frees the server.
void http_server_stop(struct http_server *server);

#endif
