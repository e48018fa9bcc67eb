/* SPDX-License-Identifier: Apache-2.0 */
/* The worker pool (see worker_pool.h): a mutex-guarded FIFO of caller-owned
 * jobs and threads that wait on it. A job finds a thread when more threads
 * wait than jobs are queued; otherwise it starts one (up to the cap), so a
 * job never waits behind a slow one while the cap allows another thread. */
#include "worker_pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t queued_cond;
    struct worker_job *head, *tail;
    size_t queued;  /* jobs in the queue */
    size_t waiting; /* threads waiting for one */
    size_t max_threads, started;
    size_t stack_size;
    pthread_t *threads;
    bool stopping;
};

struct worker_pool *worker_pool_new(size_t max_threads, size_t stack_size)
{
    struct worker_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return NULL;
    pool->threads = calloc(max_threads > 0 ? max_threads : 1, sizeof *pool->threads);
    if (pool->threads == NULL) {
        free(pool);
        return NULL;
    }
    pool->max_threads = max_threads > 0 ? max_threads : 1;
    pool->stack_size = stack_size;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->queued_cond, NULL);
    return pool;
}

/* The next job, waiting for one (lock held); NULL once the pool stops and the queue is empty. */
static struct worker_job *next_job(struct worker_pool *pool)
{
    while (pool->head == NULL && !pool->stopping) {
        pool->waiting++;
        pthread_cond_wait(&pool->queued_cond, &pool->lock);
        pool->waiting--;
    }
    struct worker_job *job = pool->head;
    if (job != NULL) {
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
    }
    return job;
}

static void *work(void *arg)
{
    struct worker_pool *pool = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL); /* signals are the main thread's */
    pthread_mutex_lock(&pool->lock);
    struct worker_job *job;
    while ((job = next_job(pool)) != NULL) {
        pthread_mutex_unlock(&pool->lock);
        job->next = NULL;
        job->fn(job);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Starts one more thread (lock held). False if the cap is reached or the system refused. */
static bool start_thread(struct worker_pool *pool)
{
    if (pool->started >= pool->max_threads)
        return false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (pool->stack_size > 0)
        pthread_attr_setstacksize(&attr, pool->stack_size);
    bool ok = pthread_create(&pool->threads[pool->started], &attr, work, pool) == 0;
    pthread_attr_destroy(&attr);
    if (ok)
        pool->started++;
    return ok;
}

bool worker_pool_submit(struct worker_pool *pool, struct worker_job *job)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        return false;
    }
    /* A thread already woken for an earlier job still counts as waiting until it takes one,
     * and that job is still queued: so more jobs than waiting threads means none is free. */
    if (pool->queued + 1 > pool->waiting && !start_thread(pool) && pool->started == 0) {
        pthread_mutex_unlock(&pool->lock);
        return false;
    }
    job->next = NULL;
    if (pool->tail != NULL)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pool->queued++;
    pthread_cond_signal(&pool->queued_cond);
    pthread_mutex_unlock(&pool->lock);
    return true;
}

size_t worker_pool_threads(struct worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->started;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void worker_pool_stop(struct worker_pool *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->queued_cond);
    size_t started = pool->started;
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < started; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->queued_cond);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}
