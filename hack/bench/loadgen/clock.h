/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic time in microseconds: every deadline and latency in loadgen. */
#ifndef LOADGEN_CLOCK_H
#define LOADGEN_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Sleeps until min(now + us, deadline); a run's end cuts every pause short. */
static inline void clock_sleep_us(int64_t us, int64_t deadline)
{
    int64_t now = clock_now_us();
    if (now + us > deadline)
        us = deadline - now;
    if (us <= 0)
        return;
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

#endif
