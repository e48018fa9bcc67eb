/* SPDX-License-Identifier: Apache-2.0 */
/* The periodic thread: sleeps on a condition variable until the next task is
 * due or it is told to stop, so stopping never waits for an interval. */
#include "periodic.h"

#include "clock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct periodic {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    size_t count;
    struct periodic_task tasks[PERIODIC_MAX_TASKS];
    double due[PERIODIC_MAX_TASKS]; /* monotonic seconds */
};

static double next_due(const struct periodic *p)
{
    double next = p->due[0];
    for (size_t i = 1; i < p->count; i++)
        next = p->due[i] < next ? p->due[i] : next;
    return next;
}

static void wait_until(struct periodic *p, double when)
{
    double delay = when - monotonic_seconds();
    if (delay <= 0)
        return;
    /* pthread_cond_timedwait takes wall-clock time (the condition's default clock) */
    struct timespec at = clock_after(CLOCK_REALTIME, delay);
    pthread_cond_timedwait(&p->wake, &p->lock, &at);
}

static void *periodic_loop(void *arg)
{
    struct periodic *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        wait_until(p, next_due(p));
        for (size_t i = 0; i < p->count && !p->stop; i++) {
            if (p->due[i] > monotonic_seconds())
                continue;
            pthread_mutex_unlock(&p->lock);
            p->tasks[i].run(p->tasks[i].context);
            pthread_mutex_lock(&p->lock);
            p->due[i] = monotonic_seconds() + p->tasks[i].interval;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct periodic *periodic_start(const struct periodic_task *tasks, size_t count)
{
    if (count == 0 || count > PERIODIC_MAX_TASKS)
        return NULL;
    struct periodic *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->count = count;
    for (size_t i = 0; i < count; i++) {
        p->tasks[i] = tasks[i];
        p->due[i] = monotonic_seconds() + tasks[i].interval;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    if (pthread_create(&p->thread, NULL, periodic_loop, p) != 0) {
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->wake);
        free(p);
        return NULL;
    }
    return p;
}

void periodic_stop(struct periodic *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p);
}
