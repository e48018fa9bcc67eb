/* SPDX-License-Identifier: Apache-2.0 */
/* host.shared and the C API of shared.h: one key/value store for every Lua state of the
 * process (SipHash table with a random key, LRU list, TTLs on CLOCK_MONOTONIC, one mutex).
 * Misuse raises naming the function; nothing here is an expected failure. */
#include "bindings/shared.h"
#include "bindings/bindings.h"

#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SHARED_BUCKETS 16384 /* a power of two above SHARED_ENTRIES_MAX: chains stay short */
#define SHARED_INT_CAP 21    /* "-9223372036854775808" and snprintf's NUL */
#define SHARED_COPY_METATABLE "host.shared.copy"

struct entry {
    struct entry *chain;         /* next in the bucket; links the garbage list once detached */
    struct entry *newer, *older; /* LRU list */
    uint64_t hash;
    double expires; /* CLOCK_MONOTONIC seconds; INFINITY: never */
    size_t klen, vlen;
    char data[]; /* the key, then the value */
};

struct key {
    const char *s;
    size_t len;
    uint64_t hash;
};

/* One instance per process, on purpose: the store exists to share results between
 * the Lua states of all request threads, so it cannot live in any one lua_State.
 * Loaded into a plain lua5.4 (busted), it is simply per process. The mutex and the
 * table need no set-up; pthread_once only draws the hash key. */
static struct {
    pthread_mutex_t lock;
    struct entry *buckets[SHARED_BUCKETS];
    struct entry *newest, *oldest;
    size_t count;
    double next_expiry; /* no entry expires before this (a lower bound) */
    uint64_t seed[2];
} store = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_expiry = INFINITY};
static pthread_once_t store_once = PTHREAD_ONCE_INIT;

enum store_result { STORE_DONE, STORE_EXISTS, STORE_NOT_INTEGER, STORE_OVERFLOW };

static double monotonic_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keys can be attacker-chosen (token hashes): a secret SipHash key keeps them
 * from being steered into one bucket. */
static void store_seed(void)
{
    char *out = (char *)store.seed;
    size_t got = 0;
    while (got < sizeof store.seed) {
        ssize_t n = getrandom(out + got, sizeof store.seed - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof store.seed) { /* no getrandom (very old kernel): weaker, but varies */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        store.seed[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&ts;
        store.seed[1] ^= (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL ^ (uint64_t)monotonic_now();
    }
}

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
    v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

static void sip_block(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

/* SipHash-2-4 (Aumasson and Bernstein), little-endian reads on any host. */
static uint64_t siphash24(const uint64_t k[2], const unsigned char *in, size_t len)
{
    uint64_t v[4] = {k[0] ^ 0x736f6d6570736575ULL, k[1] ^ 0x646f72616e646f6dULL,
                     k[0] ^ 0x6c7967656e657261ULL, k[1] ^ 0x7465646279746573ULL};
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | in[i + (size_t)j];
        sip_block(v, m);
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t j = 0; j < (len & 7); j++)
        last |= (uint64_t)in[whole + j] << (8 * j);
    sip_block(v, last);
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

static struct key make_key(const char *s, size_t len)
{
    pthread_once(&store_once, store_seed);
    struct key k = {s, len, siphash24(store.seed, (const unsigned char *)s, len)};
    return k;
}

/* An entry for key with room for vcap value bytes (value copied if given). */
static struct entry *entry_new(const struct key *k, const char *val, size_t vcap, double expires)
{
    struct entry *e = malloc(sizeof *e + k->len + vcap);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof *e);
    e->hash = k->hash;
    e->expires = expires;
    e->klen = k->len;
    memcpy(e->data, k->s, k->len);
    if (val != NULL) {
        memcpy(e->data + k->len, val, vcap);
        e->vlen = vcap;
    }
    return e;
}

static void free_list(struct entry *garbage)
{
    while (garbage != NULL) {
        struct entry *next = garbage->chain;
        free(garbage);
        garbage = next;
    }
}

/* ---- under store.lock ---- */

static struct entry **bucket_of(uint64_t hash)
{
    return &store.buckets[hash & (SHARED_BUCKETS - 1)];
}

/* The link that points at key's entry, or at the NULL ending its chain. */
static struct entry **find_slot(const struct key *k)
{
    struct entry **slot = bucket_of(k->hash);
    for (; *slot != NULL; slot = &(*slot)->chain) {
        const struct entry *e = *slot;
        if (e->hash == k->hash && e->klen == k->len && memcmp(e->data, k->s, k->len) == 0)
            break;
    }
    return slot;
}

static struct entry **slot_of(const struct entry *e)
{
    struct entry **slot = bucket_of(e->hash);
    while (*slot != e)
        slot = &(*slot)->chain;
    return slot;
}

static void lru_unlink(struct entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        store.newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        store.oldest = e->newer;
}

/* Makes e the most recently used entry. */
static void lru_push(struct entry *e)
{
    e->newer = NULL;
    e->older = store.newest;
    if (store.newest != NULL)
        store.newest->newer = e;
    else
        store.oldest = e;
    store.newest = e;
}

/* Unlinks *slot's entry from the table and the LRU list onto *garbage. */
static void detach(struct entry **slot, struct entry **garbage)
{
    struct entry *e = *slot;
    *slot = e->chain;
    lru_unlink(e);
    store.count--;
    e->chain = *garbage;
    *garbage = e;
}

/* Links e into its bucket and as the most recently used entry. */
static void attach(struct entry *e)
{
    struct entry **bucket = bucket_of(e->hash);
    e->chain = *bucket;
    *bucket = e;
    lru_push(e);
    store.count++;
    if (e->expires < store.next_expiry)
        store.next_expiry = e->expires;
}

/* The slot of key's live entry, or NULL; an expired entry found on the way is dropped. */
static struct entry **find_live(const struct key *k, double now, struct entry **garbage)
{
    struct entry **slot = find_slot(k);
    if (*slot == NULL)
        return NULL;
    if ((*slot)->expires <= now) {
        detach(slot, garbage);
        return NULL;
    }
    return slot;
}

/* Drops every expired entry; a full walk, but only once something has expired. */
static void purge_expired(double now, struct entry **garbage)
{
    if (now < store.next_expiry)
        return;
    double next = INFINITY;
    for (struct entry *e = store.oldest, *newer; e != NULL; e = newer) {
        newer = e->newer;
        if (e->expires <= now)
            detach(slot_of(e), garbage);
        else if (e->expires < next)
            next = e->expires;
    }
    store.next_expiry = next;
}

/* Before inserting a new key: expired entries go first, then the least recently used. */
static void make_room(double now, struct entry **garbage)
{
    if (store.count < SHARED_ENTRIES_MAX)
        return;
    purge_expired(now, garbage);
    while (store.count >= SHARED_ENTRIES_MAX)
        detach(slot_of(store.oldest), garbage);
}

/* ---- store operations: lock, plain C, unlock, free ---- */

/* Stores fresh (taking it) unless only_if_absent and key is live: STORE_EXISTS. */
static enum store_result store_put(const struct key *k, struct entry *fresh, bool only_if_absent,
                                   double now)
{
    struct entry *garbage = NULL;
    enum store_result result = STORE_DONE;

    pthread_mutex_lock(&store.lock);
    struct entry **slot = find_live(k, now, &garbage);
    if (slot != NULL && only_if_absent) {
        result = STORE_EXISTS;
    } else {
        if (slot != NULL)
            detach(slot, &garbage);
        else
            make_room(now, &garbage);
        attach(fresh);
    }
    pthread_mutex_unlock(&store.lock);
    free_list(garbage);
    return result;
}

/* A malloc'd copy of key's live value (NUL-terminated), or NULL with *found false.
 * *found true with NULL: out of memory. */
static char *store_copy(const struct key *k, double now, size_t *vlen, double *remaining,
                        bool *found)
{
    struct entry *garbage = NULL;
    char *copy = NULL;

    pthread_mutex_lock(&store.lock);
    struct entry **slot = find_live(k, now, &garbage);
    *found = slot != NULL;
    if (slot != NULL) {
        struct entry *e = *slot;
        copy = malloc(e->vlen + 1);
        if (copy != NULL) {
            memcpy(copy, e->data + e->klen, e->vlen);
            copy[e->vlen] = '\0';
            *vlen = e->vlen;
            *remaining = e->expires - now;
            lru_unlink(e);
            lru_push(e);
        }
    }
    pthread_mutex_unlock(&store.lock);
    free_list(garbage);
    return copy;
}

static bool store_delete(const struct key *k, double now)
{
    struct entry *garbage = NULL;

    pthread_mutex_lock(&store.lock);
    struct entry **slot = find_live(k, now, &garbage);
    if (slot != NULL)
        detach(slot, &garbage);
    pthread_mutex_unlock(&store.lock);
    free_list(garbage);
    return slot != NULL;
}

/* A whole decimal integer in int64 range: an optional '-' and 1..19 digits. */
static bool parse_integer(const char *s, size_t len, long long *out)
{
    bool negative = len > 0 && s[0] == '-';
    size_t i = negative ? 1 : 0;
    unsigned long long limit = negative ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX;
    unsigned long long v = 0;

    if (i == len)
        return false;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (limit - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = negative ? (long long)(0 - v) : (long long)v; /* two's complement, wraps to MIN */
    return true;
}

/* fresh (room for SHARED_INT_CAP value bytes, expires set for a new key) replaces
 * or creates key's entry with the sum; taken only when STORE_DONE. */
static enum store_result store_incr(const struct key *k, struct entry *fresh, long long delta,
                                    double now, long long *out)
{
    struct entry *garbage = NULL;
    enum store_result result = STORE_DONE;
    long long value = 0;

    pthread_mutex_lock(&store.lock);
    struct entry **slot = find_live(k, now, &garbage);
    if (slot != NULL) {
        const struct entry *old = *slot;
        if (!parse_integer(old->data + old->klen, old->vlen, &value))
            result = STORE_NOT_INTEGER;
        else if (delta > 0 ? value > LLONG_MAX - delta : value < LLONG_MIN - delta)
            result = STORE_OVERFLOW;
        else
            fresh->expires = old->expires; /* a counter keeps the window it started */
    }
    if (result == STORE_DONE) {
        value += delta;
        fresh->vlen = (size_t)snprintf(fresh->data + fresh->klen, SHARED_INT_CAP, "%lld", value);
        if (slot != NULL)
            detach(slot, &garbage);
        else
            make_room(now, &garbage);
        attach(fresh);
        *out = value;
    }
    pthread_mutex_unlock(&store.lock);
    free_list(garbage);
    return result;
}

static size_t store_count(double now)
{
    struct entry *garbage = NULL;

    pthread_mutex_lock(&store.lock);
    purge_expired(now, &garbage);
    size_t n = store.count;
    pthread_mutex_unlock(&store.lock);
    free_list(garbage);
    return n;
}

/* ---- C API (shared.h) ---- */

void shared_store_flush(void)
{
    struct entry *garbage = NULL;

    pthread_mutex_lock(&store.lock);
    for (struct entry *e = store.oldest; e != NULL; e = e->newer) {
        e->chain = garbage;
        garbage = e;
    }
    memset(store.buckets, 0, sizeof store.buckets);
    store.newest = store.oldest = NULL;
    store.count = 0;
    store.next_expiry = INFINITY;
    pthread_mutex_unlock(&store.lock);
    free_list(garbage);
}

/* ttl 0 means no expiry; false for a negative or NaN ttl or a bound exceeded. */
static bool c_expires(size_t klen, size_t vlen, double ttl, double now, double *expires)
{
    if (klen > SHARED_KEY_MAX || vlen > SHARED_VALUE_MAX || !(ttl >= 0))
        return false;
    *expires = ttl == 0 ? INFINITY : now + ttl;
    return true;
}

static bool c_put(const char *key, size_t klen, const char *val, size_t vlen, double ttl,
                  bool only_if_absent)
{
    double now = monotonic_now(), expires;
    if (!c_expires(klen, vlen, ttl, now, &expires))
        return false;
    struct key k = make_key(key, klen);
    struct entry *fresh = entry_new(&k, val, vlen, expires);
    if (fresh == NULL)
        return false;
    if (store_put(&k, fresh, only_if_absent, now) == STORE_DONE)
        return true;
    free(fresh);
    return false;
}

bool shared_store_set(const char *key, size_t klen, const char *val, size_t vlen, double ttl)
{
    return c_put(key, klen, val, vlen, ttl, false);
}

bool shared_store_add(const char *key, size_t klen, const char *val, size_t vlen, double ttl)
{
    return c_put(key, klen, val, vlen, ttl, true);
}

char *shared_store_get(const char *key, size_t klen, size_t *vlen)
{
    double remaining;
    bool found;
    if (klen > SHARED_KEY_MAX)
        return NULL;
    struct key k = make_key(key, klen);
    return store_copy(&k, monotonic_now(), vlen, &remaining, &found);
}

bool shared_store_delete(const char *key, size_t klen)
{
    if (klen > SHARED_KEY_MAX)
        return false;
    struct key k = make_key(key, klen);
    return store_delete(&k, monotonic_now());
}

bool shared_store_incr(const char *key, size_t klen, long long delta, double ttl, long long *out)
{
    double now = monotonic_now(), expires;
    if (!c_expires(klen, 0, ttl, now, &expires))
        return false;
    struct key k = make_key(key, klen);
    struct entry *fresh = entry_new(&k, NULL, SHARED_INT_CAP, expires);
    if (fresh == NULL)
        return false;
    if (store_incr(&k, fresh, delta, now, out) == STORE_DONE)
        return true;
    free(fresh);
    return false;
}

size_t shared_store_count(void)
{
    return store_count(monotonic_now());
}

/* ---- Lua module ---- */

static struct key key_arg(lua_State *L, const char *fname)
{
    size_t len;
    if (lua_type(L, 1) != LUA_TSTRING)
        luaL_error(L, "host.shared.%s: key must be a string (got %s)", fname, luaL_typename(L, 1));
    const char *s = lua_tolstring(L, 1, &len);
    if (len > SHARED_KEY_MAX)
        luaL_error(L, "host.shared.%s: key longer than %d bytes", fname, SHARED_KEY_MAX);
    return make_key(s, len);
}

static const char *value_arg(lua_State *L, const char *fname, size_t *len)
{
    if (lua_type(L, 2) != LUA_TSTRING)
        luaL_error(L, "host.shared.%s: value must be a string (got %s)", fname,
                   luaL_typename(L, 2));
    const char *s = lua_tolstring(L, 2, len);
    if (*len > SHARED_VALUE_MAX)
        luaL_error(L, "host.shared.%s: value longer than %d bytes", fname, SHARED_VALUE_MAX);
    return s;
}

/* The expiry time for a ttl argument: nil or absent is never, math.huge too. */
static double expires_arg(lua_State *L, int idx, const char *fname, double now)
{
    int type = lua_type(L, idx);
    if (type == LUA_TNONE || type == LUA_TNIL)
        return INFINITY;
    if (type != LUA_TNUMBER)
        luaL_error(L, "host.shared.%s: ttl must be a number (got %s)", fname,
                   luaL_typename(L, idx));
    double ttl = (double)lua_tonumber(L, idx);
    if (!(ttl > 0)) /* NaN too */
        luaL_error(L, "host.shared.%s: ttl must be greater than 0", fname);
    return now + ttl;
}

static int put(lua_State *L, const char *fname, bool only_if_absent)
{
    size_t vlen;
    double now = monotonic_now();
    struct key k = key_arg(L, fname);
    const char *val = value_arg(L, fname, &vlen);
    double expires = expires_arg(L, 3, fname, now);

    struct entry *fresh = entry_new(&k, val, vlen, expires);
    if (fresh == NULL)
        return luaL_error(L, "host.shared.%s: out of memory", fname);
    bool stored = store_put(&k, fresh, only_if_absent, now) == STORE_DONE;
    if (!stored)
        free(fresh);
    lua_pushboolean(L, stored);
    return 1;
}

static int shared_set(lua_State *L)
{
    return put(L, "set", false);
}

static int shared_add(lua_State *L)
{
    return put(L, "add", true);
}

/* Holds get's malloc'd copy while it becomes a Lua string (which may raise). */
static int copy_gc(lua_State *L)
{
    char **copy = luaL_checkudata(L, 1, SHARED_COPY_METATABLE);
    free(*copy);
    *copy = NULL;
    return 0;
}

static char **push_copy_guard(lua_State *L)
{
    char **copy = lua_newuserdatauv(L, sizeof *copy, 0);
    *copy = NULL;
    if (luaL_newmetatable(L, SHARED_COPY_METATABLE)) {
        lua_pushcfunction(L, copy_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return copy;
}

static int shared_get(lua_State *L)
{
    struct key k = key_arg(L, "get");
    char **copy = push_copy_guard(L);
    size_t vlen = 0;
    double remaining = 0;
    bool found;

    *copy = store_copy(&k, monotonic_now(), &vlen, &remaining, &found);
    if (!found) {
        lua_pushnil(L);
        return 1;
    }
    if (*copy == NULL)
        return luaL_error(L, "host.shared.get: out of memory");
    lua_pushlstring(L, *copy, vlen);
    free(*copy);
    *copy = NULL;
    lua_pushnumber(L, (lua_Number)remaining); /* INFINITY is math.huge */
    return 2;
}

static int shared_delete(lua_State *L)
{
    struct key k = key_arg(L, "delete");
    lua_pushboolean(L, store_delete(&k, monotonic_now()));
    return 1;
}

static int shared_incr(lua_State *L)
{
    int isint = 0;
    double now = monotonic_now();
    struct key k = key_arg(L, "incr");
    lua_Integer delta = lua_type(L, 2) == LUA_TNUMBER ? lua_tointegerx(L, 2, &isint) : 0;
    if (!isint)
        return luaL_error(L, "host.shared.incr: delta must be an integer (got %s)",
                          luaL_typename(L, 2));
    double expires = expires_arg(L, 3, "incr", now);

    struct entry *fresh = entry_new(&k, NULL, SHARED_INT_CAP, expires);
    if (fresh == NULL)
        return luaL_error(L, "host.shared.incr: out of memory");
    long long value = 0;
    enum store_result result = store_incr(&k, fresh, (long long)delta, now, &value);
    if (result != STORE_DONE) {
        free(fresh);
        return luaL_error(L, "host.shared.incr: %s",
                          result == STORE_OVERFLOW ? "integer overflow"
                                                   : "the stored value is not an integer");
    }
    lua_pushinteger(L, (lua_Integer)value);
    return 1;
}

static int shared_count(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)store_count(monotonic_now()));
    return 1;
}

static int shared_flush(lua_State *L)
{
    (void)L;
    shared_store_flush();
    return 0;
}

static const luaL_Reg shared_functions[] = {
    {"set", shared_set},       /* (key, value [, ttl]) -> true */
    {"get", shared_get},       /* (key) -> value, remaining ttl | nil */
    {"delete", shared_delete}, /* (key) -> existed */
    {"add", shared_add},       /* (key, value [, ttl]) -> stored */
    {"incr", shared_incr},     /* (key, delta [, ttl]) -> new integer */
    {"count", shared_count},   /* () -> live entries */
    {"flush", shared_flush},   /* () */
    {NULL, NULL},
};

int luaopen_host_shared(lua_State *L)
{
    luaL_newlib(L, shared_functions);
    return 1;
}
