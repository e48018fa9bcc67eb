/* SPDX-License-Identifier: Apache-2.0 */
/* loadgen: a closed-loop HTTP/1.1 load generator over TLS, with client
 * certificates, for the benchmarks in hack/bench/. See README.md. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "conn.h"
#include "http.h"
#include "opts.h"
#include "stats.h"
#include "worker.h"

enum { EXIT_USAGE = 2 };

/* Everything main owns, so one function can free it on every path. */
struct loadgen {
    struct lg_opts opts;
    struct lg_target target;
    struct http_request_tmpl tmpl;
    struct lg_run run;
    struct lg_worker *workers;
    int opened; /* workers initialised, for cleanup */
};

static void cleanup(struct loadgen *lg)
{
    for (int i = 0; i < lg->opened; i++)
        worker_free(&lg->workers[i]);
    free(lg->workers);
    http_request_tmpl_free(&lg->tmpl);
    target_free(&lg->target);
    opts_free(&lg->opts);
}

/* Connects every worker up front: the TLS handshakes are not part of the
 * measurement, and a bad certificate stops the run before it starts. */
static bool open_all(struct loadgen *lg, char *err, size_t errlen)
{
    int n = lg->opts.connections;
    size_t limit = 0;
    if (lg->opts.max_latencies > 0) {
        limit = lg->opts.max_latencies / (size_t)n;
        limit = limit > 0 ? limit : 1;
    }
    lg->workers = calloc((size_t)n, sizeof *lg->workers);
    if (lg->workers == NULL)
        return snprintf(err, errlen, "out of memory"), false;
    uint64_t seed = (uint64_t)clock_now_us();
    for (; lg->opened < n; lg->opened++) {
        struct lg_worker *w = &lg->workers[lg->opened];
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if (!worker_init(w, &lg->run, limit, seed, err, errlen)) {
            lg->opened++; /* so cleanup frees what it allocated */
            return false;
        }
    }
    return true;
}

/* Starts the workers, releases them together, and waits for them all. False
 * when not every thread could be started (those that were are released with
 * a run that is already over). */
static bool run_all(struct loadgen *lg)
{
    struct lg_run *run = &lg->run;
    int n = lg->opts.connections, started = 0;
    while (started < n && pthread_create(&lg->workers[started].thread, NULL, worker_main,
                                         &lg->workers[started]) == 0)
        started++;
    if (started == n)
        run_open_gate(run, lg->opts.warmup_s, lg->opts.duration_s);
    else
        run_open_gate(run, 0, 1e-6); /* a run that is over as soon as it starts */
    for (int i = 0; i < started; i++)
        pthread_join(lg->workers[i].thread, NULL);
    return started == n;
}

/* Merges the workers' statistics and prints the result line. */
static bool report(struct loadgen *lg)
{
    struct lg_stats total;
    stats_init(&total, 0, 1);
    bool ok = true;
    for (int i = 0; i < lg->opts.connections && ok; i++)
        ok = stats_merge(&total, &lg->workers[i].stats);
    if (ok) {
        int64_t elapsed = total.requests > 0 ? total.last_done_us - lg->run.measure_us : 0;
        stats_print(&total, elapsed, lg->opts.json, stdout);
        /* After the result, never during the run: why requests got no response. */
        if (total.failures > 0)
            fprintf(stderr, "loadgen: %llu requests got no response; the first: %s\n",
                    total.failures, total.first_error);
    }
    stats_free(&total);
    return ok;
}

/* Everything after the flags: returns the exit code, with err set when it
 * is not 0 and the message is not printed yet. */
static int start(struct loadgen *lg, char *err, size_t errlen)
{
    if (!http_request_tmpl_init(&lg->tmpl, &lg->opts))
        return snprintf(err, errlen, "out of memory"), 1;
    if (!target_init(&lg->target, &lg->opts, err, errlen) || !open_all(lg, err, errlen))
        return EXIT_USAGE;
    if (!run_all(lg))
        return snprintf(err, errlen, "could not start %d threads", lg->opts.connections), 1;
    if (!report(lg))
        return snprintf(err, errlen, "out of memory merging the latencies"), 1;
    return 0;
}

int main(int argc, char **argv)
{
    /* A server closing mid-write must be an error, not a dead process. */
    signal(SIGPIPE, SIG_IGN);
    struct loadgen lg = {0};
    char err[512];
    if (!opts_parse(argc, argv, &lg.opts, err, sizeof err)) {
        fprintf(stderr, "loadgen: %s\n", err);
        opts_free(&lg.opts);
        return EXIT_USAGE;
    }
    if (lg.opts.help) {
        fputs(opts_usage(), stdout);
        opts_free(&lg.opts);
        return 0;
    }
    lg.run = (struct lg_run){.opts = &lg.opts,
                             .target = &lg.target,
                             .tmpl = &lg.tmpl,
                             .gate_lock = PTHREAD_MUTEX_INITIALIZER,
                             .gate_opened = PTHREAD_COND_INITIALIZER,
                             .timeout_us = (int64_t)(lg.opts.timeout_s * 1e6)};
    atomic_init(&lg.run.next_index, 0);
    atomic_init(&lg.run.tickets, 0);
    int rc = start(&lg, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "loadgen: %s\n", err);
    cleanup(&lg);
    return rc;
}
