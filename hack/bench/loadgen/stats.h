/* SPDX-License-Identifier: Apache-2.0 */
/* Counters and latency samples. Each worker fills its own lg_stats without
 * locking; main merges them after the run and prints the result. */
#ifndef LOADGEN_STATS_H
#define LOADGEN_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { LG_STATUS_MAX = 600 };

struct lg_stats {
    unsigned long long requests, errors, reconnects;
    unsigned long long failures; /* the errors that got no full response */
    unsigned long long statuses[LG_STATUS_MAX];
    int64_t last_done_us; /* completion time of the last counted request; 0: none */
    /* Latencies in microseconds: all of them, or with a limit a uniform
     * reservoir sample of them (the maximum stays exact either way). */
    uint64_t *samples;
    size_t len, cap, limit; /* limit 0: unbounded */
    unsigned long long seen;
    uint64_t max_us;
    uint64_t rng;
    char first_error[256]; /* the first transport error, for the post-run note */
};

void stats_init(struct lg_stats *s, size_t limit, uint64_t seed);
void stats_free(struct lg_stats *s);
/* A full response with this status; latency_us is recorded as a sample. */
void stats_response(struct lg_stats *s, int status, bool success, uint64_t latency_us,
                    int64_t done_us);
/* A request that got no full response (connect, TLS, timeout, parse error). */
void stats_failure(struct lg_stats *s, const char *why, int64_t done_us);
/* Adds from's counters and samples to into. False when out of memory. */
bool stats_merge(struct lg_stats *into, const struct lg_stats *from);
/* Sorts the samples and prints the one-line result (or JSON) to out.
 * elapsed_us: the measured period. */
void stats_print(struct lg_stats *s, int64_t elapsed_us, bool json, FILE *out);

#endif
