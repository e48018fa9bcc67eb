/* SPDX-License-Identifier: Apache-2.0 */
/* The worker pool (see worker_pool.h): a mutex-guarded FIFO of caller-owned
 * jobs and threads that take them. A job finds a thread when more threads are
 * outside a job than jobs are queued; otherwise it starts one (up to the cap),
 * so a job never waits behind a slow one while the cap allows another thread,
 * and the pool grows to the most jobs ever running at once, no further. */
#define _GNU_SOURCE /* pthread_getattr_np: a worker's own stack bounds */
#include "worker_pool.h"

#include "clock.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* Kept below the frame that gives its stack back: what that frame's own calls may use. */
#define STACK_KEEP ((uintptr_t)16 * 1024)

struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t queued_cond;
    struct worker_job *head, *tail;
    size_t queued; /* jobs in the queue */
    size_t busy;   /* threads running a job */
    size_t max_threads, started;
    size_t stack_size;
    double release_after; /* seconds idle before a thread gives back its stack pages */
    pthread_t *threads;
    bool stopping;
};

struct worker_pool *worker_pool_new(size_t max_threads, size_t stack_size, double release_after)
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
    pool->release_after = release_after;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->queued_cond, &attr);
    pthread_condattr_destroy(&attr);
    return pool;
}

/* Gives the kernel back the pages of this thread's stack below the current frame, as glibc does
 * when a thread ends: a job may have run deep (Lua, libcurl, GnuTLS) and an idle worker would
 * otherwise keep those pages resident for good. */
static void release_stack(void)
{
    pthread_attr_t attr;
    void *low;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    int rc = pthread_attr_getstack(&attr, &low, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return;
    char here;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)low + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)&here - STACK_KEEP) & ~(page - 1);
    if ((uintptr_t)&here > (uintptr_t)low + STACK_KEEP && end > start)
        madvise((void *)start, end - start, MADV_DONTNEED);
}

/* Waits for a job (lock held); after release_after seconds without one, gives back the stack. */
static void wait_for_job(struct worker_pool *pool)
{
    bool released = false;
    while (pool->head == NULL && !pool->stopping) {
        if (released || pool->release_after <= 0) {
            pthread_cond_wait(&pool->queued_cond, &pool->lock);
            continue;
        }
        struct timespec deadline = clock_after(CLOCK_MONOTONIC, pool->release_after);
        if (pthread_cond_timedwait(&pool->queued_cond, &pool->lock, &deadline) == ETIMEDOUT &&
            pool->head == NULL) {
            pthread_mutex_unlock(&pool->lock);
            release_stack();
            pthread_mutex_lock(&pool->lock);
            released = true;
        }
    }
}

/* The next job, waiting for one (lock held); NULL once the pool stops and the queue is empty. */
static struct worker_job *next_job(struct worker_pool *pool)
{
    wait_for_job(pool);
    struct worker_job *job = pool->head;
    if (job != NULL) {
        pool->head = job->next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
        pool->busy++;
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
        job->fn(job);
        pthread_mutex_lock(&pool->lock);
        pool->busy--;
        if (job->hand_off != NULL) {
            pthread_mutex_unlock(&pool->lock);
            job->hand_off(job); /* the job may be gone after this */
            pthread_mutex_lock(&pool->lock);
        }
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
    /* Every thread outside a job takes the next queued one without waiting for anything (one
     * just done with a job included), so a thread is needed only when the queued jobs, this
     * one too, outnumber them. */
    if (pool->queued + 1 > pool->started - pool->busy && !start_thread(pool) &&
        pool->started == 0) {
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
