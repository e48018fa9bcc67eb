/* SPDX-License-Identifier: Apache-2.0 */
/* loadgen's statistics: counting, latency samples, percentiles, output. */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

void stats_init(struct lg_stats *s, size_t limit, uint64_t seed)
{
    *s = (struct lg_stats){.limit = limit, .rng = seed | 1};
}

void stats_free(struct lg_stats *s)
{
    free(s->samples);
    s->samples = NULL;
    s->len = s->cap = 0;
}

/* xorshift64: cheap, per worker, good enough to pick reservoir slots. */
static uint64_t next_random(struct lg_stats *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static bool reserve(struct lg_stats *s, size_t want)
{
    if (want <= s->cap)
        return true;
    size_t cap = s->cap > 0 ? s->cap : 1024;
    while (cap < want)
        cap *= 2;
    uint64_t *bigger = realloc(s->samples, cap * sizeof *bigger);
    if (bigger == NULL)
        return false;
    s->samples = bigger;
    s->cap = cap;
    return true;
}

static void add_sample(struct lg_stats *s, uint64_t us)
{
    s->seen++;
    if (us > s->max_us)
        s->max_us = us;
    if (s->limit == 0 || s->len < s->limit) {
        if (reserve(s, s->len + 1)) /* out of memory: the sample is dropped */
            s->samples[s->len++] = us;
        return;
    }
    uint64_t slot = next_random(s) % s->seen; /* Algorithm R: keep with p = limit/seen */
    if (slot < s->limit)
        s->samples[slot] = us;
}

void stats_response(struct lg_stats *s, int status, bool success, uint64_t latency_us,
                    int64_t done_us)
{
    s->requests++;
    if (!success)
        s->errors++;
    if (status >= 0 && status < LG_STATUS_MAX)
        s->statuses[status]++;
    add_sample(s, latency_us);
    s->last_done_us = done_us;
}

void stats_failure(struct lg_stats *s, const char *why, int64_t done_us)
{
    s->requests++;
    s->errors++;
    s->failures++;
    if (s->first_error[0] == '\0')
        snprintf(s->first_error, sizeof s->first_error, "%s", why);
    s->last_done_us = done_us;
}

bool stats_merge(struct lg_stats *into, const struct lg_stats *from)
{
    into->requests += from->requests;
    into->errors += from->errors;
    into->reconnects += from->reconnects;
    into->failures += from->failures;
    for (int i = 0; i < LG_STATUS_MAX; i++)
        into->statuses[i] += from->statuses[i];
    if (from->last_done_us > into->last_done_us)
        into->last_done_us = from->last_done_us;
    if (from->max_us > into->max_us)
        into->max_us = from->max_us;
    into->seen += from->seen;
    if (into->first_error[0] == '\0')
        memcpy(into->first_error, from->first_error, sizeof into->first_error);
    if (from->len == 0)
        return true;
    if (!reserve(into, into->len + from->len))
        return false;
    memcpy(into->samples + into->len, from->samples, from->len * sizeof *from->samples);
    into->len += from->len;
    return true;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile (pct of 100) of the sorted samples, in
 * milliseconds: the smallest sample with at least pct% of them at or below. */
static double percentile_ms(const struct lg_stats *s, unsigned pct)
{
    if (s->len == 0)
        return 0;
    size_t rank = (s->len * pct + 99) / 100; /* ceil(len * pct / 100), no rounding trouble */
    if (rank < 1)
        rank = 1;
    return (double)s->samples[rank - 1] / 1000.0;
}

static void print_statuses(const struct lg_stats *s, bool json, FILE *out)
{
    const char *sep = "";
    for (int i = 0; i < LG_STATUS_MAX; i++) {
        if (s->statuses[i] == 0)
            continue;
        fprintf(out, json ? "%s\"%d\":%llu" : "%s%d:%llu", sep, i, s->statuses[i]);
        sep = ",";
    }
}

void stats_print(struct lg_stats *s, int64_t elapsed_us, bool json, FILE *out)
{
    if (s->len > 0) /* samples is NULL when there are none, which qsort must not see */
        qsort(s->samples, s->len, sizeof *s->samples, compare_u64);
    double elapsed = elapsed_us > 0 ? (double)elapsed_us / 1e6 : 0;
    double rps = elapsed > 0 ? (double)s->requests / elapsed : 0;
    const char *fmt = json ? "{\"requests\":%llu,\"errors\":%llu,\"reconnects\":%llu,"
                             "\"elapsed_s\":%.3f,\"rps\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,"
                             "\"p99_ms\":%.3f,\"max_ms\":%.3f,\"statuses\":{"
                           : "requests=%llu errors=%llu reconnects=%llu elapsed_s=%.3f rps=%.1f "
                             "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f statuses=";
    fprintf(out, fmt, s->requests, s->errors, s->reconnects, elapsed, rps, percentile_ms(s, 50),
            percentile_ms(s, 90), percentile_ms(s, 99), (double)s->max_us / 1000.0);
    print_statuses(s, json, out);
    fputs(json ? "}}\n" : "\n", out);
}
