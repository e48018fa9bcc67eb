/* SPDX-License-Identifier: Apache-2.0 */
/* The Lua state pool: a mutex-guarded stack of idle states. Creating a state
 * (about a millisecond) happens outside the lock. */
#include "state_pool.h"

#include <pthread.h>
#include <stdlib.h>

struct state_pool {
    struct runtime_options options;
    pthread_mutex_t lock;
    lua_State **idle;
    size_t idle_count;
    size_t max_idle;
    size_t alive;
};

struct state_pool *state_pool_new(const struct runtime_options *options, size_t max_idle, char *err,
                                  size_t errlen)
{
    struct state_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL || max_idle == 0)
        goto fail;
    pool->idle = calloc(max_idle, sizeof *pool->idle);
    if (pool->idle == NULL)
        goto fail;
    pool->options = *options;
    pool->max_idle = max_idle;
    pthread_mutex_init(&pool->lock, NULL);
    lua_State *first = script_runtime_new(options, err, errlen);
    if (first == NULL) {
        pthread_mutex_destroy(&pool->lock);
        goto fail;
    }
    pool->idle[pool->idle_count++] = first;
    pool->alive = 1;
    return pool;
fail:
    if (pool != NULL)
        free(pool->idle);
    free(pool);
    return NULL;
}

lua_State *state_pool_acquire(struct state_pool *pool, char *err, size_t errlen)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->idle_count > 0) {
        lua_State *L = pool->idle[--pool->idle_count];
        pthread_mutex_unlock(&pool->lock);
        return L;
    }
    pool->alive++;
    pthread_mutex_unlock(&pool->lock);
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
    pthread_mutex_lock(&pool->lock);
    if (pool->idle_count < pool->max_idle) {
        pool->idle[pool->idle_count++] = L;
        L = NULL;
    } else {
        pool->alive--;
    }
    pthread_mutex_unlock(&pool->lock);
    if (L != NULL)
        script_runtime_close(L); /* beyond the idle cap: give the memory back */
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
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
