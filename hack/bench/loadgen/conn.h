/* SPDX-License-Identifier: Apache-2.0 */
/* One TLS connection to the target, with every wait bounded by a deadline
 * (CLOCK_MONOTONIC microseconds, see clock.h): sockets are non-blocking and
 * each GnuTLS call that would block is followed by a poll() that ends at the
 * deadline, so a hung server can never hold a thread past it. */
#ifndef LOADGEN_CONN_H
#define LOADGEN_CONN_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "opts.h"

struct addrinfo;

/* What every connection shares: resolved addresses, credentials, priorities.
 * Built once before the threads start, read-only afterwards (GnuTLS allows
 * sharing credentials and priority caches between sessions). */
struct lg_target {
    struct addrinfo *addrs;
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t priority;
    const char *host; /* verified against the certificate; SNI unless an IP */
    bool host_is_ip;
    const char *authority; /* for messages */
};

bool target_init(struct lg_target *t, const struct lg_opts *o, char *err, size_t errlen);
void target_free(struct lg_target *t);

struct lg_conn {
    int fd; /* -1 when closed */
    gnutls_session_t session;
};

enum io_result { IO_OK, IO_TIMEOUT, IO_CLOSED, IO_ERROR };

/* TCP connect, TCP_NODELAY, TLS handshake and certificate check, all by
 * deadline. On failure err says why and c stays closed. */
bool conn_open(struct lg_conn *c, const struct lg_target *t, int64_t deadline, char *err,
               size_t errlen);
void conn_close(struct lg_conn *c);
static inline bool conn_is_open(const struct lg_conn *c)
{
    return c->fd >= 0;
}

/* Sends all of buf. err (may be NULL) gets the reason when not IO_OK;
 * IO_CLOSED: the peer had closed or reset the connection. */
enum io_result conn_write_all(struct lg_conn *c, const char *buf, size_t len, int64_t deadline,
                              char *err, size_t errlen);
/* Reads at least one byte into buf (up to cap) and sets *got. IO_CLOSED: the
 * peer closed (with or without close_notify) or reset the connection. */
enum io_result conn_read(struct lg_conn *c, char *buf, size_t cap, size_t *got, int64_t deadline,
                         char *err, size_t errlen);

#endif
