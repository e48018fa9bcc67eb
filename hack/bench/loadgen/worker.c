/* SPDX-License-Identifier: Apache-2.0 */
/* The request loop of one connection: build, send, read the full response,
 * count, repeat; reconnect when the server closes. */
#include "worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

enum {
    RESPONSE_BUF = 64 * 1024,   /* the largest response head accepted */
    RECONNECT_PAUSE_US = 50000, /* after a failed connect, so a dead server is not hammered */
};

/* How one request ended. */
enum outcome {
    OUT_RESPONSE,  /* a full response: status is set */
    OUT_FAILED,    /* no full response: why is set */
    OUT_STALE,     /* the connection was closed before any response byte */
    OUT_ABANDONED, /* the run ended first: not counted */
};

struct exchange {
    bool counted;
    bool connect_failed;
    int64_t start_us, done_us;
    int status;
    char why[256];
};

bool worker_init(struct lg_worker *w, struct lg_run *run, size_t sample_limit, uint64_t seed,
                 char *err, size_t errlen)
{
    *w = (struct lg_worker){.run = run, .conn = {.fd = -1}};
    stats_init(&w->stats, sample_limit, seed);
    w->request = malloc(run->tmpl->max_len);
    w->buf = malloc(RESPONSE_BUF);
    if (w->request == NULL || w->buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return conn_open(&w->conn, run->target, clock_now_us() + run->timeout_us, err, errlen);
}

void worker_free(struct lg_worker *w)
{
    conn_close(&w->conn);
    stats_free(&w->stats);
    free(w->request);
    free(w->buf);
    w->request = w->buf = NULL;
}

static void disconnect(struct lg_worker *w)
{
    conn_close(&w->conn);
    w->buf_len = 0; /* bytes from the old connection mean nothing on a new one */
}

/* The deadline of an operation starting now: its timeout, or the run's end. */
static int64_t deadline_from(const struct lg_run *run, int64_t now)
{
    int64_t d = now + run->timeout_us;
    return d < run->end_us ? d : run->end_us;
}

/* Whether a failure at this moment is only the run's end cutting it short. */
static bool run_over(const struct lg_run *run)
{
    return clock_now_us() >= run->end_us;
}

static bool reconnect(struct lg_worker *w, struct exchange *x)
{
    int64_t deadline = deadline_from(w->run, clock_now_us());
    if (!conn_open(&w->conn, w->run->target, deadline, x->why, sizeof x->why)) {
        x->connect_failed = true;
        return false;
    }
    if (x->counted)
        w->stats.reconnects++;
    return true;
}

/* Reads until the parser has a full response. */
static enum outcome read_response(struct lg_worker *w, int64_t deadline, struct exchange *x)
{
    struct http_response resp;
    http_response_start(&resp, strcmp(w->run->opts->method, "HEAD") == 0);
    bool any_byte = w->buf_len > 0;
    for (;;) {
        size_t used;
        enum http_parse_result pr = http_parse(&resp, w->buf, w->buf_len, &used);
        memmove(w->buf, w->buf + used, w->buf_len - used);
        w->buf_len -= used;
        if (pr == HTTP_DONE) {
            x->status = resp.status;
            if (resp.close)
                disconnect(w);
            return OUT_RESPONSE;
        }
        if (pr == HTTP_BAD || w->buf_len == RESPONSE_BUF) {
            snprintf(x->why, sizeof x->why, "malformed response (or its head is over %d bytes)",
                     RESPONSE_BUF);
            return OUT_FAILED;
        }
        size_t got = 0;
        enum io_result io = conn_read(&w->conn, w->buf + w->buf_len, RESPONSE_BUF - w->buf_len,
                                      &got, deadline, x->why, sizeof x->why);
        if (io == IO_OK) {
            w->buf_len += got;
            any_byte = true;
        } else if (io == IO_CLOSED && http_ends_at_eof(&resp)) {
            x->status = resp.status;
            disconnect(w);
            return OUT_RESPONSE;
        } else {
            if (io == IO_TIMEOUT)
                snprintf(x->why, sizeof x->why, "timed out waiting for the response");
            return io == IO_CLOSED && !any_byte ? OUT_STALE : OUT_FAILED;
        }
    }
}

/* Writes the request on the open connection and reads the response. */
static enum outcome exchange(struct lg_worker *w, size_t len, struct exchange *x)
{
    x->start_us = clock_now_us();
    int64_t deadline = deadline_from(w->run, x->start_us);
    enum io_result io = conn_write_all(&w->conn, w->request, len, deadline, x->why, sizeof x->why);
    if (io == IO_TIMEOUT)
        snprintf(x->why, sizeof x->why, "timed out sending the request");
    enum outcome out = io == IO_OK       ? read_response(w, deadline, x)
                       : io == IO_CLOSED ? OUT_STALE
                                         : OUT_FAILED;
    x->done_us = clock_now_us();
    if (out != OUT_RESPONSE)
        disconnect(w); /* its state is unknown: start the next request afresh */
    return out;
}

/* One request, reconnecting first if needed. A keep-alive connection the
 * server closed while idle is retried once on a new one, as browsers and curl
 * do; the latency then starts at the retry's write. */
static enum outcome perform(struct lg_worker *w, size_t len, struct exchange *x)
{
    for (int attempt = 0;; attempt++) {
        bool reused = conn_is_open(&w->conn);
        if (!reused && !reconnect(w, x)) {
            x->done_us = clock_now_us();
            return run_over(w->run) ? OUT_ABANDONED : OUT_FAILED;
        }
        enum outcome out = exchange(w, len, x);
        if (out == OUT_STALE && reused && attempt == 0)
            continue;
        if (out != OUT_RESPONSE && run_over(w->run))
            return OUT_ABANDONED;
        return out == OUT_STALE ? OUT_FAILED : out;
    }
}

static bool is_success(const struct lg_opts *o, int status)
{
    return o->expect_status != 0 ? status == o->expect_status : status >= 200 && status < 300;
}

/* Sends one request; false when this worker is done. */
static bool next_request(struct lg_worker *w)
{
    struct lg_run *run = w->run;
    int64_t now = clock_now_us();
    if (now >= run->end_us)
        return false;
    struct exchange x = {.counted = now >= run->measure_us};
    if (x.counted && run->opts->requests > 0 &&
        atomic_fetch_add(&run->tickets, 1) >= run->opts->requests)
        return false;
    long long index = opts_index(run->opts, atomic_fetch_add(&run->next_index, 1));
    size_t len = http_request_build(run->tmpl, index, w->request);
    enum outcome out = perform(w, len, &x);
    if (out == OUT_ABANDONED)
        return false;
    if (x.counted && out == OUT_RESPONSE)
        stats_response(&w->stats, x.status, is_success(run->opts, x.status),
                       (uint64_t)(x.done_us - x.start_us), x.done_us);
    else if (x.counted)
        stats_failure(&w->stats, x.why, x.done_us);
    if (x.connect_failed)
        clock_sleep_us(RECONNECT_PAUSE_US, run->end_us);
    return true;
}

void run_open_gate(struct lg_run *run, double warmup_s, double duration_s)
{
    pthread_mutex_lock(&run->gate_lock);
    /* Written under the lock, so every worker sees them once it is through. */
    run->measure_us = clock_now_us() + (int64_t)(warmup_s * 1e6);
    run->end_us = duration_s > 0 ? run->measure_us + (int64_t)(duration_s * 1e6) : INT64_MAX;
    run->gate_open = true;
    pthread_cond_broadcast(&run->gate_opened);
    pthread_mutex_unlock(&run->gate_lock);
}

static void wait_for_gate(struct lg_run *run)
{
    pthread_mutex_lock(&run->gate_lock);
    while (!run->gate_open)
        pthread_cond_wait(&run->gate_opened, &run->gate_lock);
    pthread_mutex_unlock(&run->gate_lock);
}

void *worker_main(void *arg)
{
    struct lg_worker *w = arg;
    wait_for_gate(w->run);
    while (next_request(w)) {
    }
    disconnect(w);
    return NULL;
}
