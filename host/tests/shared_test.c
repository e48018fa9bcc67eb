/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for the C API of shared.h: basic operations and bounds, TTL expiry, LRU eviction
 * at SHARED_ENTRIES_MAX, and 8 threads racing on overlapping keys. Exits non-zero on failure. */
#include "bindings/shared.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 8
#define RACE_SECONDS 2.0
#define RACE_KEYS 64
#define LOCK_KEYS 4

static atomic_int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            atomic_fetch_add(&failures, 1);                                                        \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
        }                                                                                          \
    } while (0)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static bool set_str(const char *key, const char *val, double ttl)
{
    return shared_store_set(key, strlen(key), val, strlen(val), ttl);
}

/* True if key holds exactly val. */
static bool holds(const char *key, const char *val)
{
    size_t len = 0;
    char *got = shared_store_get(key, strlen(key), &len);
    bool same = got != NULL && len == strlen(val) && memcmp(got, val, len) == 0;
    free(got);
    return same;
}

static bool present(const char *key)
{
    size_t len;
    char *got = shared_store_get(key, strlen(key), &len);
    free(got);
    return got != NULL;
}

static void test_basics(void)
{
    long long n = 0;
    shared_store_flush();
    CHECK(set_str("a", "1", 0), "set");
    CHECK(holds("a", "1"), "get after set");
    CHECK(set_str("a", "two", 0) && holds("a", "two"), "set replaces");
    CHECK(!shared_store_add("a", 1, "x", 1, 0) && holds("a", "two"), "add keeps a live entry");
    CHECK(shared_store_add("b", 1, "x", 1, 0) && holds("b", "x"), "add stores an absent key");
    CHECK(shared_store_count() == 2, "count %zu", shared_store_count());
    CHECK(shared_store_delete("a", 1) && !shared_store_delete("a", 1), "delete once");
    CHECK(!present("a"), "deleted");
    CHECK(shared_store_incr("n", 1, 5, 0, &n) && n == 5, "incr absent: %lld", n);
    CHECK(shared_store_incr("n", 1, -7, 0, &n) && n == -2 && holds("n", "-2"), "incr: %lld", n);
    CHECK(!shared_store_incr("b", 1, 1, 0, &n), "incr of a non-integer");
    CHECK(set_str("n", "9223372036854775807", 0) && !shared_store_incr("n", 1, 1, 0, &n),
          "incr overflow");
    CHECK(shared_store_set("", 0, "", 0, 0) && holds("", ""), "empty key and value");
    shared_store_flush();
    CHECK(shared_store_count() == 0 && !present("b"), "flush");
}

static void test_bounds(void)
{
    char *big = calloc(1, SHARED_VALUE_MAX + 2);
    shared_store_flush();
    CHECK(shared_store_set(big, SHARED_KEY_MAX, "v", 1, 0), "key of the maximum size");
    CHECK(!shared_store_set(big, SHARED_KEY_MAX + 1, "v", 1, 0), "key too long");
    CHECK(shared_store_set("k", 1, big, SHARED_VALUE_MAX, 0), "value of the maximum size");
    CHECK(!shared_store_set("k2", 2, big, SHARED_VALUE_MAX + 1, 0), "value too long");
    CHECK(!shared_store_set("k3", 2, "v", 1, -1) && !present("k3"), "negative ttl");
    CHECK(shared_store_count() == 2, "count %zu", shared_store_count());
    free(big);
    shared_store_flush();
}

static void test_expiry(void)
{
    shared_store_flush();
    CHECK(set_str("short", "v", 0.05) && set_str("long", "v", 60) && set_str("never", "v", 0),
          "set with ttls");
    CHECK(holds("short", "v") && shared_store_count() == 3, "live before the ttl");
    sleep_seconds(0.1);
    CHECK(!present("short"), "expired");
    CHECK(shared_store_count() == 2, "count after expiry %zu", shared_store_count());
    CHECK(shared_store_add("short", 5, "again", 5, 0) && holds("short", "again"),
          "add over an expired entry");
    shared_store_flush();
}

static void key_name(char *buf, size_t size, const char *prefix, int i)
{
    snprintf(buf, size, "%s%d", prefix, i);
}

static void test_eviction(void)
{
    char key[32];
    shared_store_flush();
    for (int i = 0; i < SHARED_ENTRIES_MAX; i++) {
        key_name(key, sizeof key, "k", i);
        set_str(key, key, 0);
    }
    for (int i = 0; i < 100; i++) { /* k0..k99 become the most recently used */
        key_name(key, sizeof key, "k", i);
        CHECK(holds(key, key), "%s", key);
    }
    for (int i = 0; i < 100; i++) {
        key_name(key, sizeof key, "new", i);
        set_str(key, key, 0);
    }
    CHECK(shared_store_count() == SHARED_ENTRIES_MAX, "count %zu", shared_store_count());
    int kept = 0, evicted = 0, rest = 0;
    for (int i = 0; i < SHARED_ENTRIES_MAX; i++) {
        key_name(key, sizeof key, "k", i);
        bool p = present(key);
        kept += i < 100 && p;
        evicted += i >= 100 && i < 200 && !p;
        rest += i >= 200 && p;
    }
    CHECK(kept == 100 && evicted == 100 && rest == SHARED_ENTRIES_MAX - 200,
          "kept %d evicted %d rest %d", kept, evicted, rest);

    /* Expired entries go before any live one is evicted. */
    shared_store_flush();
    for (int i = 0; i < SHARED_ENTRIES_MAX - 1; i++) {
        key_name(key, sizeof key, "k", i);
        set_str(key, key, 0);
    }
    set_str("short", "v", 0.05);
    sleep_seconds(0.1);
    set_str("late", "v", 0);
    CHECK(present("k0") && present("late") && !present("short"), "expired entry purged first");
    CHECK(shared_store_count() == SHARED_ENTRIES_MAX, "count %zu", shared_store_count());
    shared_store_flush();
}

/* ---- the race ---- */

struct racer {
    int id;
    uint64_t rng;
    long long increments;
    long ops;
};

static atomic_int lock_holders[LOCK_KEYS];

static uint32_t next_random(struct racer *r)
{
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 7;
    r->rng ^= r->rng << 17;
    return (uint32_t)(r->rng >> 11);
}

/* "<key>|<len>|" then one letter repeated up to len bytes: a torn value shows. */
static size_t make_value(char *buf, const char *key, size_t len)
{
    int n = snprintf(buf, 64, "%s|%zu|", key, len);
    memset(buf + n, 'a' + (int)(len % 26), len - (size_t)n);
    return len;
}

static void check_value(const char *key, const char *val, size_t vlen)
{
    char prefix[64];
    size_t len = 0;
    int n = 0;
    snprintf(prefix, sizeof prefix, "%s|", key);
    bool ok = vlen > strlen(prefix) && memcmp(val, prefix, strlen(prefix)) == 0 &&
              sscanf(val + strlen(prefix), "%zu|%n", &len, &n) == 1 && len == vlen;
    for (size_t i = strlen(prefix) + (size_t)n; ok && i < vlen; i++)
        ok = val[i] == 'a' + (int)(len % 26);
    CHECK(ok, "value of %s is torn (%zu bytes)", key, vlen);
}

static void race_step(struct racer *r)
{
    char key[32], val[400];
    uint32_t x = next_random(r);
    key_name(key, sizeof key, "key-", (int)(x % RACE_KEYS));
    size_t vlen = make_value(val, key, 40 + (x >> 8) % 300);
    double ttl = (x >> 20) % 4 == 0 ? 0.002 : 0;
    size_t got_len;
    char *got;
    long long n;

    switch ((x >> 24) % 6) {
    case 0:
        CHECK(shared_store_set(key, strlen(key), val, vlen, ttl), "set %s", key);
        break;
    case 1:
        shared_store_add(key, strlen(key), val, vlen, ttl);
        break;
    case 2:
        shared_store_delete(key, strlen(key));
        break;
    case 3:
        CHECK(shared_store_incr("counter", 7, 1, 0, &n), "incr");
        r->increments++;
        break;
    default:
        if ((got = shared_store_get(key, strlen(key), &got_len)) != NULL)
            check_value(key, got, got_len);
        free(got);
    }
}

/* add as a lock: one holder at a time, and only the holder deletes it. */
static void lock_step(struct racer *r)
{
    char key[32];
    int i = (int)(next_random(r) % LOCK_KEYS);
    key_name(key, sizeof key, "lock-", i);
    if (!shared_store_add(key, strlen(key), "held", 4, 0))
        return;
    int holders = atomic_fetch_add(&lock_holders[i], 1) + 1;
    CHECK(holders == 1, "%s has %d holders", key, holders);
    atomic_fetch_sub(&lock_holders[i], 1);
    CHECK(shared_store_delete(key, strlen(key)), "%s vanished while held", key);
}

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    double end = now_seconds() + RACE_SECONDS;
    while (r->ops % 256 != 0 || now_seconds() < end) {
        race_step(r);
        lock_step(r);
        if (r->ops % 1024 == 0) {
            size_t count = shared_store_count();
            CHECK(count <= RACE_KEYS + LOCK_KEYS + 1, "count %zu", count);
        }
        r->ops++;
    }
    return NULL;
}

static void test_race(void)
{
    pthread_t threads[THREADS];
    struct racer racers[THREADS];
    long long total = 0, counter = 0;
    long ops = 0;

    shared_store_flush();
    for (int i = 0; i < THREADS; i++) {
        racers[i] = (struct racer){.id = i, .rng = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1)};
        pthread_create(&threads[i], NULL, racer_main, &racers[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        total += racers[i].increments;
        ops += racers[i].ops;
    }
    CHECK(shared_store_incr("counter", 7, 0, 0, &counter) && counter == total,
          "counter %lld, increments %lld", counter, total);

    /* count agrees with what get sees (after the short ttls are over). */
    sleep_seconds(0.01);
    char key[32];
    size_t seen = present("counter");
    for (int i = 0; i < RACE_KEYS; i++) {
        key_name(key, sizeof key, "key-", i);
        seen += present(key);
    }
    for (int i = 0; i < LOCK_KEYS; i++) {
        key_name(key, sizeof key, "lock-", i);
        CHECK(!present(key), "%s left behind", key);
    }
    CHECK(shared_store_count() == seen, "count %zu, seen %zu", shared_store_count(), seen);
    printf("race: %d threads, %ld steps, %lld increments\n", THREADS, ops, total);
    shared_store_flush();
}

int main(void)
{
    test_basics();
    test_bounds();
    test_expiry();
    test_eviction();
    test_race();
    if (failures != 0) {
        printf("%d failure(s)\n", failures);
        return 1;
    }
    printf("shared_test: ok\n");
    return 0;
}
