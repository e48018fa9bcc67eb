/* SPDX-License-Identifier: Apache-2.0 */
/* TCP and TLS for loadgen: resolve once, connect and handshake by deadline,
 * and read/write through GnuTLS on non-blocking sockets. */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"

static const char tls_priorities[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";

static void say(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static bool load_credentials(struct lg_target *t, const struct lg_opts *o, char *err, size_t errlen)
{
    int rc = gnutls_certificate_allocate_credentials(&t->cred);
    if (rc < 0) {
        say(err, errlen, "TLS credentials: %s", gnutls_strerror(rc));
        return false;
    }
    rc = gnutls_certificate_set_x509_trust_file(t->cred, o->cacert, GNUTLS_X509_FMT_PEM);
    if (rc <= 0) { /* the count of CAs loaded: none is as bad as an error */
        say(err, errlen, "--cacert %s: %s", o->cacert,
            rc < 0 ? gnutls_strerror(rc) : "no certificate found");
        return false;
    }
    if (o->cert != NULL) {
        rc = gnutls_certificate_set_x509_key_file(t->cred, o->cert, o->key, GNUTLS_X509_FMT_PEM);
        if (rc < 0) {
            say(err, errlen, "--cert %s / --key %s: %s", o->cert, o->key, gnutls_strerror(rc));
            return false;
        }
    }
    return true;
}

bool target_init(struct lg_target *t, const struct lg_opts *o, char *err, size_t errlen)
{
    *t = (struct lg_target){.host = o->host, .authority = o->authority};
    t->host_is_ip = is_ip_literal(o->host);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int rc = getaddrinfo(o->host, o->port, &hints, &t->addrs);
    if (rc != 0) {
        say(err, errlen, "resolve %s: %s", o->host, gai_strerror(rc));
        return false;
    }
    if (!load_credentials(t, o, err, errlen))
        return false;
    rc = gnutls_priority_init(&t->priority, tls_priorities, NULL);
    if (rc < 0) {
        say(err, errlen, "TLS priorities: %s", gnutls_strerror(rc));
        return false;
    }
    return true;
}

void target_free(struct lg_target *t)
{
    if (t->addrs != NULL)
        freeaddrinfo(t->addrs);
    if (t->cred != NULL)
        gnutls_certificate_free_credentials(t->cred);
    if (t->priority != NULL)
        gnutls_priority_deinit(t->priority);
    *t = (struct lg_target){0};
}

/* Waits for events on fd until the deadline. False: timed out or poll failed. */
static bool wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_now_us();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)((left + 999) / 1000));
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

/* After GNUTLS_E_AGAIN: wait for whichever direction GnuTLS was blocked on. */
static bool wait_tls(struct lg_conn *c, int64_t deadline)
{
    short ev = gnutls_record_get_direction(c->session) ? POLLOUT : POLLIN;
    return wait_fd(c->fd, ev, deadline);
}

/* Non-blocking connect to one address. Returns the socket or -1 with err. */
static int tcp_connect(const struct addrinfo *ai, int64_t deadline, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        say(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1; /* requests are one write each: do not let Nagle hold them back */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if (!wait_fd(fd, POLLOUT, deadline)) {
            soerr = ETIMEDOUT;
        } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
            soerr = errno;
        }
        rc = soerr == 0 ? 0 : -1;
        errno = soerr;
    }
    if (rc < 0) {
        say(err, errlen, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool tls_session(struct lg_conn *c, const struct lg_target *t, char *err, size_t errlen)
{
    int rc = gnutls_init(&c->session, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
    if (rc >= 0)
        rc = gnutls_priority_set(c->session, t->priority);
    if (rc >= 0)
        rc = gnutls_credentials_set(c->session, GNUTLS_CRD_CERTIFICATE, t->cred);
    /* SNI carries DNS names only (RFC 6066); an IP is still checked against
     * the certificate's IP subjectAltNames by the verification below. */
    if (rc >= 0 && !t->host_is_ip)
        rc = gnutls_server_name_set(c->session, GNUTLS_NAME_DNS, t->host, strlen(t->host));
    if (rc < 0) {
        say(err, errlen, "TLS session: %s", gnutls_strerror(rc));
        return false;
    }
    gnutls_session_set_verify_cert(c->session, t->host, 0);
    gnutls_transport_set_int(c->session, c->fd);
    return true;
}

static void describe_verify_failure(gnutls_session_t s, const char *authority, char *err,
                                    size_t errlen)
{
    gnutls_datum_t why = {0};
    unsigned status = gnutls_session_get_verify_cert_status(s);
    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0) < 0)
        why.data = NULL;
    size_t n = why.data != NULL ? strlen((const char *)why.data) : 0;
    while (n > 0 && why.data[n - 1] == ' ') /* GnuTLS ends each sentence with a space */
        why.data[--n] = '\0';
    say(err, errlen, "TLS handshake with %s: certificate verify failure: %s", authority,
        n > 0 ? (const char *)why.data : "unknown reason");
    gnutls_free(why.data);
}

/* gnutls_strerror, or the alert the server sent when rc reports one: its
 * name says more (e.g. "Certificate is bad" for a rejected client cert). */
static const char *tls_error(gnutls_session_t s, int rc, char *buf, size_t len)
{
    const char *name = NULL;
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED || rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
        name = gnutls_alert_get_name(gnutls_alert_get(s));
    if (name == NULL)
        return gnutls_strerror(rc);
    snprintf(buf, len, "the server sent the TLS alert \"%s\"", name);
    return buf;
}

static bool tls_handshake(struct lg_conn *c, const struct lg_target *t, int64_t deadline, char *err,
                          size_t errlen)
{
    for (;;) {
        int rc = gnutls_handshake(c->session);
        if (rc == GNUTLS_E_SUCCESS)
            return true;
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
            if (wait_tls(c, deadline))
                continue;
            say(err, errlen, "TLS handshake with %s: timed out", t->authority);
        } else if (!gnutls_error_is_fatal(rc)) { /* a warning alert: carry on */
            continue;
        } else if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            describe_verify_failure(c->session, t->authority, err, errlen);
        } else {
            char alert[128];
            say(err, errlen, "TLS handshake with %s: %s", t->authority,
                tls_error(c->session, rc, alert, sizeof alert));
        }
        return false;
    }
}

bool conn_open(struct lg_conn *c, const struct lg_target *t, int64_t deadline, char *err,
               size_t errlen)
{
    *c = (struct lg_conn){.fd = -1};
    char why[256] = "no address";
    for (const struct addrinfo *ai = t->addrs; ai != NULL && c->fd < 0; ai = ai->ai_next)
        c->fd = tcp_connect(ai, deadline, why, sizeof why);
    if (c->fd < 0) {
        say(err, errlen, "connect to %s: %s", t->authority, why);
        return false;
    }
    if (tls_session(c, t, err, errlen) && tls_handshake(c, t, deadline, err, errlen))
        return true;
    conn_close(c);
    return false;
}

void conn_close(struct lg_conn *c)
{
    /* No close_notify: the server may be gone, and waiting on it would only
     * delay the next request. */
    if (c->session != NULL)
        gnutls_deinit(c->session);
    if (c->fd >= 0)
        close(c->fd);
    *c = (struct lg_conn){.fd = -1};
}

/* Errors that mean the server went away rather than that TLS broke. */
static bool is_peer_gone(ssize_t rc)
{
    return rc == 0 || rc == GNUTLS_E_PREMATURE_TERMINATION || rc == GNUTLS_E_PUSH_ERROR ||
           rc == GNUTLS_E_PULL_ERROR;
}

enum io_result conn_write_all(struct lg_conn *c, const char *buf, size_t len, int64_t deadline,
                              char *err, size_t errlen)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = gnutls_record_send(c->session, buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
        } else if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            /* GnuTLS keeps the pending record; the same call resumes it. */
            if (!wait_tls(c, deadline))
                return IO_TIMEOUT;
        } else {
            say(err, errlen, "send: %s", gnutls_strerror((int)n));
            return is_peer_gone(n) ? IO_CLOSED : IO_ERROR;
        }
    }
    return IO_OK;
}

enum io_result conn_read(struct lg_conn *c, char *buf, size_t cap, size_t *got, int64_t deadline,
                         char *err, size_t errlen)
{
    for (;;) {
        ssize_t n = gnutls_record_recv(c->session, buf, cap);
        if (n > 0) {
            *got = (size_t)n;
            return IO_OK;
        }
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            if (!wait_tls(c, deadline))
                return IO_TIMEOUT;
            continue;
        }
        if (is_peer_gone(n)) {
            say(err, errlen, "connection closed by the server%s%s", n == 0 ? "" : ": ",
                n == 0 ? "" : gnutls_strerror((int)n));
            return IO_CLOSED;
        }
        if (!gnutls_error_is_fatal((int)n)) /* e.g. a warning alert: keep reading */
            continue;
        char alert[128];
        say(err, errlen, "receive: %s", tls_error(c->session, (int)n, alert, sizeof alert));
        return IO_ERROR;
    }
}
