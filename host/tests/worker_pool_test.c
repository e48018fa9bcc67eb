/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for worker_pool.h: every job runs once; a job never waits behind a blocked one while
 * the cap allows another thread; threads are reused, not started per job; the cap holds; stop
 * runs what is queued. Exits non-zero on failure. */
#include "worker_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
        }                                                                                          \
    } while (0)

/* A job that counts its runs and, when gated, waits until the gate opens. */
struct counted_job {
    struct worker_job job; /* first: the job is the struct */
    atomic_int runs;
    atomic_bool started;
    atomic_bool *gate; /* NULL: do not wait */
};

static void count_run(struct worker_job *job)
{
    struct counted_job *c = (struct counted_job *)job;
    atomic_store(&c->started, true);
    while (c->gate != NULL && !atomic_load(c->gate)) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    atomic_fetch_add(&c->runs, 1);
}

static void init_job(struct counted_job *c, atomic_bool *gate)
{
    c->job.fn = count_run;
    atomic_init(&c->runs, 0);
    atomic_init(&c->started, false);
    c->gate = gate;
}

/* Waits up to two seconds for flag; true if it was set. */
static bool wait_for(atomic_bool *flag)
{
    for (int i = 0; i < 2000 && !atomic_load(flag); i++) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    return atomic_load(flag);
}

static void test_every_job_runs_once(void)
{
    struct worker_pool *pool = worker_pool_new(8, 0);
    static struct counted_job jobs[200];
    for (int i = 0; i < 200; i++) {
        init_job(&jobs[i], NULL);
        CHECK(worker_pool_submit(pool, &jobs[i].job), "job %d refused", i);
    }
    CHECK(worker_pool_threads(pool) <= 8, "%zu threads for a cap of 8", worker_pool_threads(pool));
    worker_pool_stop(pool); /* runs what is still queued */
    for (int i = 0; i < 200; i++)
        CHECK(atomic_load(&jobs[i].runs) == 1, "job %d ran %d times", i,
              atomic_load(&jobs[i].runs));
}

static void test_blocked_job_does_not_hold_up_the_next(void)
{
    struct worker_pool *pool = worker_pool_new(4, 0);
    atomic_bool gate = false;
    struct counted_job slow, quick;
    init_job(&slow, &gate);
    init_job(&quick, NULL);
    CHECK(worker_pool_submit(pool, &slow.job), "slow job refused");
    CHECK(wait_for(&slow.started), "the slow job never started");
    CHECK(worker_pool_submit(pool, &quick.job), "quick job refused");
    /* The quick one must finish while the slow one still waits at its gate. */
    for (int i = 0; i < 2000 && atomic_load(&quick.runs) == 0; i++) {
        struct timespec tick = {0, 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    CHECK(atomic_load(&quick.runs) == 1, "the quick job waited behind the blocked one");
    CHECK(atomic_load(&slow.runs) == 0, "the gate did not hold");
    CHECK(worker_pool_threads(pool) == 2, "%zu threads, want 2", worker_pool_threads(pool));
    atomic_store(&gate, true);
    worker_pool_stop(pool);
    CHECK(atomic_load(&slow.runs) == 1, "the slow job ran %d times", atomic_load(&slow.runs));
}

static void test_threads_are_reused(void)
{
    struct worker_pool *pool = worker_pool_new(16, 0);
    for (int i = 0; i < 100; i++) {
        struct counted_job job;
        init_job(&job, NULL);
        CHECK(worker_pool_submit(pool, &job.job), "job %d refused", i);
        for (int t = 0; t < 2000 && atomic_load(&job.runs) == 0; t++) {
            struct timespec tick = {0, 100 * 1000};
            nanosleep(&tick, NULL);
        }
        CHECK(atomic_load(&job.runs) == 1, "job %d never ran", i);
        /* Give the thread time to go back to waiting, so the next job finds it idle. */
        struct timespec settle = {0, 2 * 1000 * 1000};
        nanosleep(&settle, NULL);
    }
    /* One job at a time: one thread, whatever the number of jobs (a second at most, if a job
     * came while the first had not yet gone back to waiting). */
    CHECK(worker_pool_threads(pool) <= 2, "%zu threads for 100 jobs one at a time",
          worker_pool_threads(pool));
    worker_pool_stop(pool);
}

static void test_cap_holds(void)
{
    struct worker_pool *pool = worker_pool_new(2, 0);
    atomic_bool gate = false;
    struct counted_job a, b, c;
    init_job(&a, &gate);
    init_job(&b, &gate);
    init_job(&c, NULL);
    CHECK(worker_pool_submit(pool, &a.job), "a refused");
    CHECK(worker_pool_submit(pool, &b.job), "b refused");
    CHECK(wait_for(&a.started) && wait_for(&b.started), "the gated jobs did not both start");
    CHECK(worker_pool_submit(pool, &c.job), "c refused: beyond the cap a job waits, not fails");
    struct timespec wait = {0, 50 * 1000 * 1000};
    nanosleep(&wait, NULL);
    CHECK(atomic_load(&c.runs) == 0, "c ran with both threads busy: the cap did not hold");
    CHECK(worker_pool_threads(pool) == 2, "%zu threads for a cap of 2", worker_pool_threads(pool));
    atomic_store(&gate, true);
    worker_pool_stop(pool);
    CHECK(atomic_load(&c.runs) == 1, "c ran %d times", atomic_load(&c.runs));
}

int main(void)
{
    test_every_job_runs_once();
    test_blocked_job_does_not_hold_up_the_next();
    test_threads_are_reused();
    test_cap_holds();
    if (failures == 0)
        printf("worker_pool_test: ok\n");
    return failures == 0 ? 0 : 1;
}
