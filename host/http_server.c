/* SPDX-License-Identifier: Apache-2.0 */
/* libmicrohttpd glue: per-connection TLS credentials from the tls_store (so a
 * rotated certificate applies to new connections), the peer's verified
 * identity, bounded bodies and concurrency, and the hand-off to Lua. It knows
 * nothing of routes: every request goes to the Lua handler.
 *
 * libmicrohttpd's threads (one per core) do TLS and HTTP for every
 * connection; a request read in full is suspended and handed to a long-lived
 * worker thread, which runs the Lua handler and resumes the connection with
 * the answer. So a slow request holds a worker, never a connection thread,
 * and no thread comes and goes with a connection (GnuTLS keeps per-thread
 * state until exit: a thread per connection leaks with every connection). */
#include "http_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <microhttpd.h>

#include "bindings/log.h"
#include "clock.h"
#include "peer_identity.h"
#include "script_runtime.h"
#include "worker_pool.h"

/* TLS 1.2 and 1.3 only, AEAD ciphers with forward secrecy. */
static const char tls_priorities[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:%SERVER_PRECEDENCE";

/* A worker's stack: Lua, libcurl and GnuTLS run on it. */
#define WORKER_STACK_SIZE ((size_t)1 << 20)
/* On stop, how long the last answers may take to be sent, seconds. */
#define ANSWER_SEND_GRACE 2.0

struct http_server {
    struct MHD_Daemon *daemon;
    struct tls_store *tls;
    struct state_pool *pool;
    struct worker_pool *workers;
    const struct host_config *cfg;
    atomic_long inflight;
    atomic_ullong next_request;
    unsigned request_id_prefix;
    pthread_mutex_t idle_lock;
    pthread_cond_t idle_cond;
    /* The read deadline: open connections, and a thread that closes those
     * whose request has not arrived in time (slowloris). */
    pthread_mutex_t conns_lock;
    struct connection_state *conns;
    pthread_t reaper;
    bool reaper_started;
    atomic_bool stopping;
};

struct connection_state {
    struct tls_generation *generation; /* credentials this connection was set up with */
    unsigned long peer_generation;     /* trust generation `peer` was checked against */
    struct peer_identity peer;
    char remote_address[INET6_ADDRSTRLEN + 8];
    int fd;
    double read_deadline; /* monotonic seconds; 0 while a request is being served */
    struct connection_state *prev, *next;
};

struct request_state {
    char id[32];
    struct timespec started;
    char *body;
    size_t body_length;
    size_t body_capacity;
    size_t body_seen; /* bytes received, kept or not */
    bool body_too_large;
    bool counted; /* holds an in-flight slot */
    /* Handed to a worker: what it needs, and what it answers. */
    struct worker_job job;
    struct http_server *server;
    struct MHD_Connection *connection;
    const char *url, *method; /* libmicrohttpd's, valid until the request completes */
    struct response res;
    bool answered; /* res is filled: the worker is done */
};

static struct connection_state *connection_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci != NULL ? ci->socket_context : NULL;
}

static void set_read_deadline(struct http_server *server, struct connection_state *cs,
                              double deadline)
{
    if (cs == NULL)
        return;
    pthread_mutex_lock(&server->conns_lock);
    cs->read_deadline = deadline;
    pthread_mutex_unlock(&server->conns_lock);
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void log_request(const char *method, const char *url, const struct request_state *rs,
                        const struct connection_state *cs, int status, const char *user)
{
    if (!log_enabled(LOG_LEVEL_INFO))
        return;
    char status_text[8], duration[32];
    snprintf(status_text, sizeof status_text, "%d", status);
    snprintf(duration, sizeof duration, "%.3f", seconds_since(&rs->started) * 1000.0);
    const char *fields[] = {"request_id",  rs->id,
                            "method",      method,
                            "path",        url,
                            "status",      status_text,
                            "duration_ms", duration,
                            "user",        user,
                            "remote",      cs != NULL ? cs->remote_address : NULL,
                            NULL};
    log_write(LOG_LEVEL_INFO, "request", fields);
}

static enum MHD_Result send_response(struct MHD_Connection *c, const struct response *res)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        res->body_length, res->body != NULL ? res->body : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (r == NULL)
        return MHD_NO;
    for (size_t i = 0; i < res->header_count; i++) {
        if (res->header_names[i] != NULL && res->header_values[i] != NULL)
            MHD_add_response_header(r, res->header_names[i], res->header_values[i]);
    }
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Errors the host answers itself, before or instead of Lua. */
static enum MHD_Result send_host_status(struct MHD_Connection *c, const char *method,
                                        const char *url, struct request_state *rs, int code,
                                        const char *reason, const char *message,
                                        const char *retry_after)
{
    struct response res;
    response_set_status(&res, code, reason, message);
    if (retry_after != NULL && res.header_count < RESPONSE_MAX_HEADERS) {
        res.header_names[res.header_count] = strdup("Retry-After");
        res.header_values[res.header_count++] = strdup(retry_after);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    log_request(method, url, rs, ci != NULL ? ci->socket_context : NULL, code, NULL);
    enum MHD_Result ok = send_response(c, &res);
    response_free(&res);
    return ok;
}

static struct request_state *request_state_new(struct http_server *server)
{
    struct request_state *rs = calloc(1, sizeof *rs);
    if (rs == NULL)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &rs->started);
    unsigned long long n = atomic_fetch_add(&server->next_request, 1);
    snprintf(rs->id, sizeof rs->id, "%08x-%llx", server->request_id_prefix, n);
    return rs;
}

/* Keeps at most the configured number of body bytes; past that the body is read
 * and dropped (bounded too) so the 413 can be sent once it ends. */
static bool body_append(struct request_state *rs, const char *data, size_t size, size_t max)
{
    rs->body_seen += size;
    if (rs->body_too_large || rs->body_length + size > max) {
        rs->body_too_large = true;
        return rs->body_seen <= max + (max > (1u << 20) ? max : (1u << 20));
    }
    if (rs->body_length + size > rs->body_capacity) {
        size_t capacity = rs->body_capacity ? rs->body_capacity : 4096;
        while (capacity < rs->body_length + size)
            capacity *= 2;
        char *grown = realloc(rs->body, capacity);
        if (grown == NULL)
            return false;
        rs->body = grown;
        rs->body_capacity = capacity;
    }
    memcpy(rs->body + rs->body_length, data, size);
    rs->body_length += size;
    return true;
}

struct pair_list {
    struct name_value *items;
    size_t count;
    size_t capacity;
};

static enum MHD_Result collect_pair(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    struct pair_list *list = cls;
    if (list->count < list->capacity)
        list->items[list->count++] = (struct name_value){key, value};
    return MHD_YES;
}

static bool collect_pairs(struct MHD_Connection *c, enum MHD_ValueKind kind, struct pair_list *out)
{
    int n = MHD_get_connection_values(c, kind, NULL, NULL);
    out->count = 0;
    out->capacity = n > 0 ? (size_t)n : 0;
    out->items = calloc(out->capacity + 1, sizeof *out->items);
    if (out->items == NULL)
        return false;
    MHD_get_connection_values(c, kind, collect_pair, out);
    return true;
}

/* The peer's identity, checked against the current trust lists: a CA rotated
 * while a keep-alive connection stays open applies to its next request. */
static const struct peer_identity *
current_peer(struct http_server *server, struct MHD_Connection *c, struct connection_state *cs)
{
    struct tls_generation *g = tls_store_acquire(server->tls);
    if (cs->peer_generation != g->id) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        unsigned n = 0;
        const gnutls_datum_t *chain =
            ci != NULL ? gnutls_certificate_get_peers(ci->tls_session, &n) : NULL;
        peer_identity_check(chain, chain != NULL ? n : 0, g->client_ca, g->requestheader_ca,
                            &cs->peer);
        cs->peer_generation = g->id;
        if (cs->peer.presented && cs->peer.error[0] != '\0' && log_enabled(LOG_LEVEL_DEBUG)) {
            const char *fields[] = {"remote", cs->remote_address, "reason", cs->peer.error, NULL};
            log_write(LOG_LEVEL_DEBUG, "client certificate not trusted", fields);
        }
    }
    tls_generation_release(g);
    return &cs->peer;
}

static void run_lua(struct http_server *server, struct MHD_Connection *c, const char *url,
                    const char *method, struct request_state *rs, struct response *res)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct connection_state *cs = ci != NULL ? ci->socket_context : NULL;
    struct pair_list headers = {0}, query = {0};
    char err[512];
    lua_State *L = NULL;
    if (cs == NULL || /* its allocation failed when the connection started */
        !collect_pairs(c, MHD_HEADER_KIND, &headers) ||
        !collect_pairs(c, MHD_GET_ARGUMENT_KIND, &query) ||
        (L = state_pool_acquire(server->pool, err, sizeof err)) == NULL) {
        response_set_status(res, 503, "ServiceUnavailable", "the server is out of resources");
    } else {
        struct request_view view = {
            .id = rs->id,
            .method = method,
            .path = url,
            .query = query.items,
            .query_count = query.count,
            .headers = headers.items,
            .header_count = headers.count,
            .body = rs->body,
            .body_length = rs->body_length,
            .remote_address = cs->remote_address,
            .peer = current_peer(server, c, cs),
        };
        script_runtime_handle(L, &view, res);
        state_pool_release(server->pool, L);
    }
    free(headers.items);
    free(query.items);
}

static struct request_state *request_of(struct worker_job *job)
{
    return (struct request_state *)((char *)job - offsetof(struct request_state, job));
}

/* The worker's part: the Lua handler. */
static void serve_on_worker(struct worker_job *job)
{
    struct request_state *rs = request_of(job);
    run_lua(rs->server, rs->connection, rs->url, rs->method, rs, &rs->res);
    rs->answered = true;
}

/* Then the connection back to libmicrohttpd, which calls on_request again to send the answer
 * (and may read the next request at once: the worker already counts as free for it). */
static void resume_with_answer(struct worker_job *job)
{
    MHD_resume_connection(request_of(job)->connection);
}

static enum MHD_Result send_answer(struct MHD_Connection *c, const char *url, const char *method,
                                   struct request_state *rs)
{
    log_request(method, url, rs, connection_of(c), rs->res.status, rs->res.user);
    enum MHD_Result ok = send_response(c, &rs->res);
    response_free(&rs->res);
    rs->answered = false;
    return ok;
}

static enum MHD_Result finish_request(struct http_server *server, struct MHD_Connection *c,
                                      const char *url, const char *method, struct request_state *rs)
{
    if (rs->answered) /* back from the worker */
        return send_answer(c, url, method, rs);
    set_read_deadline(server, connection_of(c),
                      0); /* read in full: no deadline while it is served */
    if (rs->body_too_large)
        return send_host_status(c, method, url, rs, 413, "RequestEntityTooLarge",
                                "the request body is too large", NULL);
    rs->counted = true;
    if (atomic_fetch_add(&server->inflight, 1) >= server->cfg->max_requests_inflight)
        return send_host_status(c, method, url, rs, 429, "TooManyRequests",
                                "too many requests, please try again later", "1");
    rs->server = server;
    rs->connection = c;
    rs->url = url;
    rs->method = method;
    rs->job.fn = serve_on_worker;
    rs->job.hand_off = resume_with_answer;
    MHD_suspend_connection(c);
    if (!worker_pool_submit(server->workers, &rs->job)) { /* stopping, or no thread at all */
        response_set_status(&rs->res, 503, "ServiceUnavailable", "the server is out of resources");
        rs->answered = true;
        MHD_resume_connection(c);
    }
    return MHD_YES;
}

struct length_headers {
    const char *first;
    bool conflict;
};

static enum MHD_Result scan_content_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                           const char *value)
{
    (void)kind;
    struct length_headers *s = cls;
    if (key == NULL || strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
        return MHD_YES;
    if (s->first == NULL)
        s->first = value != NULL ? value : "";
    else if (strcmp(s->first, value != NULL ? value : "") != 0)
        s->conflict = true;
    return MHD_YES;
}

/* What Go's server (kube-apiserver) refuses and libmicrohttpd reads anyway
 * (RFC 9112 6.1, 6.3): Content-Length headers that disagree (the rest of the
 * body would be read as another request) and a Transfer-Encoding other than
 * chunked (the body would run to the end of the connection). 0: none. */
static int framing_error(struct MHD_Connection *c, const char **message)
{
    const char *te =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te != NULL && strcasecmp(te, "chunked") != 0) {
        *message = "unsupported transfer encoding";
        return 501;
    }
    struct length_headers lengths = {0};
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_content_length, &lengths);
    if (lengths.conflict) {
        *message = "conflicting Content-Length headers";
        return 400;
    }
    return 0;
}

static bool content_length_too_large(struct MHD_Connection *c, size_t max)
{
    const char *value = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    return value != NULL && strtoull(value, NULL, 10) > max;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **req_cls)
{
    (void)version;
    struct http_server *server = cls;
    struct request_state *rs = *req_cls;
    if (rs == NULL) {
        if ((rs = request_state_new(server)) == NULL)
            return MHD_NO;
        *req_cls = rs;
        const char *why = NULL;
        int code = framing_error(c, &why);
        if (code != 0)
            return send_host_status(c, method, url, rs, code,
                                    code == 400 ? "BadRequest" : "NotImplemented", why, NULL);
        if (content_length_too_large(c, server->cfg->max_request_body_bytes))
            return send_host_status(c, method, url, rs, 413, "RequestEntityTooLarge",
                                    "the request body is too large", NULL);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        bool keep_going =
            body_append(rs, upload_data, *upload_size, server->cfg->max_request_body_bytes);
        *upload_size = 0;
        return keep_going ? MHD_YES : MHD_NO; /* MHD_NO drops the connection */
    }
    return finish_request(server, c, url, method, rs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct http_server *server = cls;
    /* The next request on this connection: idle at most the idle timeout, then
     * --request-read-timeout to arrive. */
    set_read_deadline(server, connection_of(c),
                      monotonic_seconds() + server->cfg->idle_connection_timeout +
                          server->cfg->request_read_timeout);
    struct request_state *rs = *req_cls;
    if (rs == NULL)
        return;
    if (rs->counted && atomic_fetch_sub(&server->inflight, 1) == 1) {
        pthread_mutex_lock(&server->idle_lock);
        pthread_cond_broadcast(&server->idle_cond);
        pthread_mutex_unlock(&server->idle_lock);
    }
    if (rs->answered) /* the connection closed before the answer went out */
        response_free(&rs->res);
    free(rs->body);
    free(rs);
    *req_cls = NULL;
}

static void format_remote(struct MHD_Connection *c, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
    if (ci != NULL && ci->client_addr != NULL) {
        socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                               : sizeof(struct sockaddr_in);
        getnameinfo(ci->client_addr, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    }
    snprintf(out, size, "%s:%s", host, port);
}

/* Called before the TLS handshake: the session gets the current credentials
 * (not the ones the daemon started with) and asks for a client certificate
 * without advertising CA names, so every client sends the one it has and the
 * verification below decides what it is worth. */
static void on_connection_started(struct http_server *server, struct MHD_Connection *c,
                                  void **socket_context)
{
    struct connection_state *cs = calloc(1, sizeof *cs);
    *socket_context = cs;
    if (cs == NULL)
        return;
    format_remote(c, cs->remote_address, sizeof cs->remote_address);
    const union MHD_ConnectionInfo *fdi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    cs->fd = fdi != NULL ? fdi->connect_fd : -1;
    cs->read_deadline = monotonic_seconds() + server->cfg->request_read_timeout;
    pthread_mutex_lock(&server->conns_lock);
    cs->next = server->conns;
    if (server->conns != NULL)
        server->conns->prev = cs;
    server->conns = cs;
    pthread_mutex_unlock(&server->conns_lock);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL)
        return;
    cs->generation = tls_store_acquire(server->tls);
    gnutls_session_t session = ci->tls_session;
    gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cs->generation->credentials);
    gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
    gnutls_certificate_send_x509_rdn_sequence(session, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        on_connection_started(cls, c, socket_context);
        return;
    }
    /* MHD has already run gnutls_deinit on the session: the credentials are free to go.
     * The socket is closed after this returns: unlinked here, the reaper never sees it again. */
    struct http_server *server = cls;
    struct connection_state *cs = *socket_context;
    if (cs != NULL) {
        pthread_mutex_lock(&server->conns_lock);
        if (cs->prev != NULL)
            cs->prev->next = cs->next;
        else if (server->conns == cs)
            server->conns = cs->next;
        if (cs->next != NULL)
            cs->next->prev = cs->prev;
        pthread_mutex_unlock(&server->conns_lock);
        tls_generation_release(cs->generation);
        free(cs);
        *socket_context = NULL;
    }
}

/* The path and query reach Lua still percent-encoded: decoding is Lua's job,
 * so "%2F" can never be mistaken for a path separator here. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void log_from_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    const char *fields[] = {"source", "libmicrohttpd", NULL};
    log_write(LOG_LEVEL_DEBUG, line, fields);
}

/* Closes connections whose request has not arrived by their deadline: a
 * client trickling its headers a byte at a time never trips the idle timeout
 * (libmicrohttpd's is an inactivity timeout), so this bounds it, as Go's
 * ReadHeaderTimeout does for kube-apiserver. shutdown() wakes the connection's
 * thread, which then closes it as after any read error. */
static void *reap_slow_connections(void *arg)
{
    struct http_server *server = arg;
    while (!atomic_load(&server->stopping)) {
        struct timespec tick = {0, 200 * 1000 * 1000};
        nanosleep(&tick, NULL);
        double now = monotonic_seconds();
        pthread_mutex_lock(&server->conns_lock);
        for (struct connection_state *cs = server->conns; cs != NULL; cs = cs->next) {
            if (cs->read_deadline > 0 && now > cs->read_deadline && cs->fd >= 0) {
                cs->read_deadline = 0;
                shutdown(cs->fd, SHUT_RDWR);
                const char *fields[] = {"remote", cs->remote_address, NULL};
                log_write(LOG_LEVEL_INFO,
                          "closed a connection whose request did not arrive in time", fields);
            }
        }
        pthread_mutex_unlock(&server->conns_lock);
    }
    return NULL;
}

static bool parse_bind_address(const char *address, int port, struct sockaddr_storage *out,
                               bool *ipv6)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *ipv6 = false;
        return true;
    }
    if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *ipv6 = true;
        return true;
    }
    return false;
}

/* One libmicrohttpd thread per online CPU (they only do TLS and HTTP), at most 8, never more
 * than connections allowed: libmicrohttpd splits the limit between them. */
static unsigned connection_threads(const struct host_config *cfg)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus > 0 ? (unsigned)cpus : 1;
    if (n > 8)
        n = 8;
    if (n > (unsigned)cfg->max_connections)
        n = (unsigned)cfg->max_connections;
    return n > 0 ? n : 1;
}

static struct MHD_Daemon *start_daemon(struct http_server *server, struct tls_generation *g,
                                       const struct sockaddr_storage *addr, bool ipv6)
{
    const struct host_config *cfg = server->cfg;
    /* poll, not epoll: every request is suspended and resumed, which with epoll costs two
     * epoll_ctl calls each (measured: ~20% of discovery throughput at 64 connections). */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TLS |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (ipv6)
        flags |= MHD_USE_DUAL_STACK;
    return MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, server, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)addr, MHD_OPTION_HTTPS_MEM_CERT, (const char *)g->cert_pem.data,
        MHD_OPTION_HTTPS_MEM_KEY, (const char *)g->key_pem.data, MHD_OPTION_HTTPS_PRIORITIES,
        tls_priorities, MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->idle_connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->max_header_bytes, MHD_OPTION_THREAD_POOL_SIZE,
        connection_threads(cfg), MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1u << 20),
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, server, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, server, MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, log_from_mhd, NULL, MHD_OPTION_END);
}

struct http_server *http_server_start(const struct host_config *cfg, struct tls_store *tls,
                                      struct state_pool *pool, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    bool ipv6 = false;
    if (!parse_bind_address(cfg->bind_address, cfg->secure_port, &addr, &ipv6)) {
        snprintf(err, errlen, "--bind-address: %s is not an IP address", cfg->bind_address);
        return NULL;
    }
    struct http_server *server = calloc(1, sizeof *server);
    if (server == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* Every request in flight may hold a worker (a slow cloud call), so up to that many. After a
     * burst, idle workers give their stack pages back when idle Lua states are closed. */
    struct worker_pool *workers = worker_pool_new((size_t)cfg->max_requests_inflight,
                                                  WORKER_STACK_SIZE, cfg->lua_state_idle_timeout);
    if (workers == NULL) {
        snprintf(err, errlen, "out of memory");
        free(server);
        return NULL;
    }
    *server = (struct http_server){.tls = tls, .pool = pool, .workers = workers, .cfg = cfg};
    gnutls_rnd(GNUTLS_RND_NONCE, &server->request_id_prefix, sizeof server->request_id_prefix);
    pthread_mutex_init(&server->idle_lock, NULL);
    pthread_cond_init(&server->idle_cond, NULL);
    pthread_mutex_init(&server->conns_lock, NULL);
    atomic_init(&server->stopping, false);
    struct tls_generation *g = tls_store_acquire(tls);
    server->daemon = start_daemon(server, g, &addr, ipv6);
    tls_generation_release(g);
    if (server->daemon == NULL) {
        snprintf(err, errlen, "--secure-port: cannot listen on %s port %d (in use, or not allowed)",
                 cfg->bind_address, cfg->secure_port);
        pthread_mutex_destroy(&server->idle_lock);
        pthread_cond_destroy(&server->idle_cond);
        pthread_mutex_destroy(&server->conns_lock);
        worker_pool_stop(server->workers);
        free(server);
        return NULL;
    }
    server->reaper_started =
        pthread_create(&server->reaper, NULL, reap_slow_connections, server) == 0;
    return server;
}

int http_server_port(const struct http_server *server)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(server->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info != NULL ? (int)info->port : -1;
}

void http_server_quiesce(struct http_server *server)
{
    MHD_socket fd = MHD_quiesce_daemon(server->daemon);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

bool http_server_wait_idle(struct http_server *server, double timeout)
{
    struct timespec deadline = clock_after(CLOCK_REALTIME, timeout); /* idle_cond's clock */
    pthread_mutex_lock(&server->idle_lock);
    int rc = 0;
    while (atomic_load(&server->inflight) > 0 && rc == 0)
        rc = pthread_cond_timedwait(&server->idle_cond, &server->idle_lock, &deadline);
    bool idle = atomic_load(&server->inflight) == 0;
    pthread_mutex_unlock(&server->idle_lock);
    return idle;
}

void http_server_stop(struct http_server *server)
{
    if (server == NULL)
        return;
    atomic_store(&server->stopping, true);
    if (server->reaper_started)
        pthread_join(server->reaper, NULL);
    /* Requests still with a worker finish and resume their connections first: libmicrohttpd
     * must not close a suspended connection a worker still uses. Their answers then get a
     * moment to go out (a request completes when its answer is sent). */
    worker_pool_stop(server->workers);
    http_server_wait_idle(server, ANSWER_SEND_GRACE);
    MHD_stop_daemon(server->daemon);
    pthread_mutex_destroy(&server->idle_lock);
    pthread_cond_destroy(&server->idle_cond);
    pthread_mutex_destroy(&server->conns_lock);
    free(server);
}
