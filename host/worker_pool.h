/* SPDX-License-Identifier: Apache-2.0 */
/* Long-lived worker threads that run jobs from a queue. Threads are started
 * when a job finds none idle, up to a cap, and live until the pool stops:
 * a thread that ended would take per-thread state with it that some libraries
 * never give back (GnuTLS 3.7 keeps each thread's random generator until
 * exit), so the server's threads must not come and go with its connections. */
#ifndef WORKER_POOL_H
#define WORKER_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct worker_pool;

/// A job, kept by its owner (no allocation here): fn(job) runs once on a worker thread, then
/// hand_off(job), if set, once the thread already counts as free for the next job. Whatever
/// lets the job's owner go on (and free the job) belongs in hand_off: a new job that follows
/// from it finds this thread instead of starting another.
struct worker_job {
    void (*fn)(struct worker_job *job);
    void (*hand_off)(struct worker_job *job);
    struct worker_job *next; /* the pool's */
};

/// A pool of at most max_threads threads of stack_size bytes each (0: the default); none is
/// started yet. A thread idle for release_after seconds gives the pages its stack grew into back
/// to the kernel (0: never). NULL when out of memory.
struct worker_pool *worker_pool_new(size_t max_threads, size_t stack_size, double release_after);

/// Queues the job; it runs on an idle thread, or a new one while there are fewer than the cap
/// (beyond it, it waits for a thread to finish a job). False if the pool is stopping, or if no
/// thread exists and none could be started: the job will not run.
bool worker_pool_submit(struct worker_pool *pool, struct worker_job *job);

/// Threads started so far.
size_t worker_pool_threads(struct worker_pool *pool);

/// Runs every job already queued, then ends the threads and frees the pool.
void worker_pool_stop(struct worker_pool *pool);

#endif
