/* SPDX-License-Identifier: Apache-2.0 */
/* The Lua state pool: a mutex-guarded stack of idle states. Creating a state (a few
 * milliseconds of CPU) happens outside the lock. The stack is LIFO, so the busy states stay warm
 * on top and the ones a past burst left behind sink to the bottom, where trimming finds them. */
#include "state_pool.h"

#include "chunk_cache.h"
#include "clock.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct state_pool {
    struct runtime_options options;
    pthread_mutex_t lock;
    pthread_cond_t returned; /* an idle state was pushed */
    size_t soft_limit;
    lua_State **idle;
    double *released_at; /* monotonic seconds, per idle slot */
    size_t idle_count;
    size_t max_idle;
    size_t alive;
};

struct state_pool *state_pool_new(const struct runtime_options *options, size_t max_idle,
                                  size_t soft_limit, char *err, size_t errlen)
{
    struct state_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL || max_idle == 0)
        goto fail;
    pool->idle = calloc(max_idle, sizeof *pool->idle);
    pool->released_at = calloc(max_idle, sizeof *pool->released_at);
    if (pool->idle == NULL || pool->released_at == NULL)
        goto fail;
    pool->options = *options;
    pool->max_idle = max_idle;
    pool->soft_limit = soft_limit;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->returned, &attr);
    pthread_condattr_destroy(&attr);
    lua_State *first = script_runtime_new(options, err, errlen);
    if (first == NULL) {
        pthread_mutex_destroy(&pool->lock);
        goto fail;
    }
    pool->idle[pool->idle_count++] = first;
    pool->alive = 1;
    return pool;
fail:
    if (pool != NULL) {
        free(pool->idle);
        free(pool->released_at);
    }
    free(pool);
    return NULL;
}

/* Waits (lock held) until a state is returned or closed, or the wait is over. */
static void wait_for_idle(struct state_pool *pool, double seconds)
{
    struct timespec deadline = clock_after(CLOCK_MONOTONIC, seconds);
    while (pool->idle_count == 0 && pool->alive >= pool->soft_limit)
        if (pthread_cond_timedwait(&pool->returned, &pool->lock, &deadline) == ETIMEDOUT)
            break;
}

lua_State *state_pool_acquire(struct state_pool *pool, char *err, size_t errlen)
{
    pthread_mutex_lock(&pool->lock);
    /* Past the soft limit, the states are most likely held by threads the CPU is busy with, and
     * one comes back within microseconds: wait for it rather than make another (a few ms of CPU
     * and ~0.5 MiB). If they are held by slow requests instead, the short wait is all it costs. */
    if (pool->idle_count == 0 && pool->alive >= pool->soft_limit)
        wait_for_idle(pool, STATE_POOL_SOFT_LIMIT_WAIT);
    if (pool->idle_count > 0) {
        lua_State *L = pool->idle[--pool->idle_count];
        pthread_mutex_unlock(&pool->lock);
        return L;
    }
    pool->alive++;
    pthread_mutex_unlock(&pool->lock);
    chunk_cache_record(true); /* more than one state: the next ones load the bytecode */
    lua_State *L = script_runtime_new(&pool->options, err, errlen);
    if (L == NULL) {
        pthread_mutex_lock(&pool->lock);
        pool->alive--;
        pthread_mutex_unlock(&pool->lock);
    }
    return L;
}

void state_pool_release(struct state_pool *pool, lua_State *L)
{
    bool reusable = script_runtime_reusable(L); /* not after a provider limit tripped */
    pthread_mutex_lock(&pool->lock);
    if (reusable && pool->idle_count < pool->max_idle) {
        pool->released_at[pool->idle_count] = monotonic_seconds();
        pool->idle[pool->idle_count++] = L;
        pthread_cond_signal(&pool->returned);
        L = NULL;
    } else {
        pool->alive--;
        pthread_cond_signal(&pool->returned); /* one fewer alive: a waiter may make its own */
    }
    pthread_mutex_unlock(&pool->lock);
    if (L != NULL)
        script_runtime_close(L); /* beyond the idle cap: give the memory back */
}

size_t state_pool_trim(struct state_pool *pool, double idle_seconds)
{
    lua_State *closing[64];
    size_t n = 0;
    double cutoff = monotonic_seconds() - idle_seconds;
    pthread_mutex_lock(&pool->lock);
    /* The oldest are at the bottom; one idle state always stays. */
    while (n < sizeof closing / sizeof closing[0] && pool->idle_count - n > 1 &&
           pool->released_at[n] < cutoff) {
        closing[n] = pool->idle[n];
        n++;
    }
    if (n > 0) {
        pool->idle_count -= n;
        memmove(pool->idle, pool->idle + n, pool->idle_count * sizeof *pool->idle);
        memmove(pool->released_at, pool->released_at + n,
                pool->idle_count * sizeof *pool->released_at);
        pool->alive -= n;
    }
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < n; i++)
        script_runtime_close(closing[i]);
    if (n > 0 && state_pool_size(pool) == 1) {
        chunk_cache_record(false); /* back to idle: no bytecode kept for states not needed */
        chunk_cache_clear();
    }
    if (n > 0)
        malloc_trim(0); /* closed states leave holes malloc would otherwise keep */
    return n;
}

size_t state_pool_size(struct state_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->alive;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void state_pool_free(struct state_pool *pool)
{
    if (pool == NULL)
        return;
    for (size_t i = 0; i < pool->idle_count; i++)
        script_runtime_close(pool->idle[i]);
    free(pool->idle);
    free(pool->released_at);
    pthread_cond_destroy(&pool->returned);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
