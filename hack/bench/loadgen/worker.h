/* SPDX-License-Identifier: Apache-2.0 */
/* One worker per connection: a closed loop that sends the next request when
 * the previous response has been read in full. */
#ifndef LOADGEN_WORKER_H
#define LOADGEN_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "http.h"
#include "opts.h"
#include "stats.h"

/* What the workers share. Set before the start gate opens, read-only
 * afterwards apart from the two atomic counters. */
struct lg_run {
    const struct lg_opts *opts;
    const struct lg_target *target;
    const struct http_request_tmpl *tmpl;
    /* The start gate: every worker waits here until main opens it, after all
     * connections are up, so nobody sends before the whole burst is ready. A
     * gate rather than a barrier so main can still release the threads it
     * started if it could not start them all. */
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_opened;
    bool gate_open;
    int64_t measure_us; /* warm-up ends: requests sent from here on are counted */
    int64_t end_us;     /* a --duration run ends here; INT64_MAX for --requests */
    int64_t timeout_us;
    atomic_llong next_index; /* the number of the next request (opts_index gives its {i}) */
    atomic_llong tickets;    /* counted requests handed out so far (--requests) */
};

struct lg_worker {
    struct lg_run *run;
    struct lg_conn conn;
    struct lg_stats stats;
    char *request; /* run->tmpl->max_len bytes */
    char *buf;     /* received bytes the parser has not consumed yet */
    size_t buf_len;
    pthread_t thread;
};

/* Allocates the buffers and opens the connection (before the run starts).
 * On failure err says why; worker_free is safe either way. */
bool worker_init(struct lg_worker *w, struct lg_run *run, size_t sample_limit, uint64_t seed,
                 char *err, size_t errlen);
void worker_free(struct lg_worker *w);
/* pthread entry point: waits for the gate, then runs until the run ends. */
void *worker_main(void *arg);
/* Sets the run's times (warm-up and duration from now) and lets every worker go. */
void run_open_gate(struct lg_run *run, double warmup_s, double duration_s);

#endif
