/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for worker_pool.h: every job runs once; a job never waits behind a blocked one while
 * the cap allows another thread; threads are reused, not started per job (also when the next
 * job comes from a hand-off); the cap holds; stop
 * runs what is queued; an idle thread gives back the stack pages a deep job used. Exits non-zero
 * on failure. */
#include "worker_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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
    c->job.hand_off = NULL;
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
    struct worker_pool *pool = worker_pool_new(8, 0, 0);
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
    struct worker_pool *pool = worker_pool_new(4, 0, 0);
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
    struct worker_pool *pool = worker_pool_new(16, 0, 0);
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

/* A job whose hand_off submits it again, as a resumed connection brings its next request. */
struct chain_job {
    struct worker_job job;
    struct worker_pool *pool;
    int remaining;
    atomic_bool finished;
};

static void chain_step(struct worker_job *job)
{
    ((struct chain_job *)job)->remaining--;
}

static void chain_next(struct worker_job *job)
{
    struct chain_job *c = (struct chain_job *)job;
    if (c->remaining == 0)
        atomic_store(&c->finished, true);
    else if (!worker_pool_submit(c->pool, job))
        atomic_store(&c->finished, true);
}

static void test_hand_off_finds_the_same_thread(void)
{
    struct worker_pool *pool = worker_pool_new(8, 0, 0);
    struct chain_job c = {
        .job = {.fn = chain_step, .hand_off = chain_next}, .pool = pool, .remaining = 200};
    atomic_init(&c.finished, false);
    CHECK(worker_pool_submit(pool, &c.job), "first job refused");
    CHECK(wait_for(&c.finished), "the chain did not finish");
    CHECK(c.remaining == 0, "%d jobs of the chain left", c.remaining);
    /* Each next job is queued from hand_off, when its thread already counts as free. */
    CHECK(worker_pool_threads(pool) == 1, "%zu threads for a chain of 200 jobs",
          worker_pool_threads(pool));
    worker_pool_stop(pool);
}

static void test_cap_holds(void)
{
    struct worker_pool *pool = worker_pool_new(2, 0, 0);
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

/* A job that runs deep: 256 KiB of its stack written, the range kept for the test to look at. */
#define DEEP_BYTES (256 * 1024)
struct deep_job {
    struct worker_job job;
    atomic_bool done;
    uintptr_t low, high; /* whole pages inside the array */
};

static void run_deep(struct worker_job *job)
{
    struct deep_job *d = (struct deep_job *)job;
    volatile char deep[DEEP_BYTES];
    memset((char *)deep, 1, sizeof deep);
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    d->low = ((uintptr_t)deep + page - 1) & ~(page - 1);
    d->high = ((uintptr_t)deep + sizeof deep) & ~(page - 1);
    atomic_store(&d->done, true);
}

/* Resident pages of [low, high) of this process. */
static size_t resident_pages(uintptr_t low, uintptr_t high)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (high - low) / page, count = 0;
    unsigned char vec[DEEP_BYTES / 4096 + 1];
    if (n > sizeof vec || mincore((void *)low, high - low, vec) != 0)
        return (size_t)-1;
    for (size_t i = 0; i < n; i++)
        count += vec[i] & 1;
    return count;
}

/* Runs a deep job on a pool that gives stacks back after release_after seconds; returns the
 * resident pages of the job's array 0.5 s after it ran. */
static size_t pages_left_after_deep_job(double release_after)
{
    struct worker_pool *pool = worker_pool_new(1, (size_t)1 << 20, release_after);
    struct deep_job d = {.job.fn = run_deep};
    atomic_init(&d.done, false);
    CHECK(worker_pool_submit(pool, &d.job), "deep job refused");
    CHECK(wait_for(&d.done), "the deep job never ran");
    struct timespec idle = {0, 500 * 1000 * 1000};
    nanosleep(&idle, NULL);
    size_t left = resident_pages(d.low, d.high);
    worker_pool_stop(pool);
    return left;
}

static void test_idle_thread_gives_back_its_stack(void)
{
    size_t all = DEEP_BYTES / (size_t)sysconf(_SC_PAGESIZE) - 1;
    size_t kept = pages_left_after_deep_job(0);
    CHECK(kept >= all - 1 && kept != (size_t)-1, "without release: %zu of %zu pages resident", kept,
          all);
    size_t released = pages_left_after_deep_job(0.1);
    /* The pages right below the idle frame stay (a few KiB the next job would touch at once). */
    CHECK(released <= all / 8,
          "idle 0.5 s with release after 0.1 s: %zu of %zu pages still resident", released, all);
}

int main(void)
{
    test_every_job_runs_once();
    test_blocked_job_does_not_hold_up_the_next();
    test_threads_are_reused();
    test_hand_off_finds_the_same_thread();
    test_cap_holds();
    test_idle_thread_gives_back_its_stack();
    if (failures == 0)
        printf("worker_pool_test: ok\n");
    return failures == 0 ? 0 : 1;
}
