/* SPDX-License-Identifier: Apache-2.0 */
/* Time for the host's waits: now on the monotonic clock, and a deadline some
 * seconds from now on a given clock (pthread_cond_timedwait takes an absolute
 * time on the condition's clock). */
#ifndef CLOCK_H
#define CLOCK_H

#include <time.h>

/// Seconds on CLOCK_MONOTONIC.
static inline double monotonic_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/// The time `seconds` from now on `clock`.
static inline struct timespec clock_after(clockid_t clock, double seconds)
{
    struct timespec at;
    clock_gettime(clock, &at);
    long long ns = (long long)at.tv_nsec + (long long)(seconds * 1e9);
    at.tv_sec += (time_t)(ns / 1000000000LL);
    at.tv_nsec = (long)(ns % 1000000000LL);
    return at;
}

#endif
