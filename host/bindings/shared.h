/* SPDX-License-Identifier: Apache-2.0 */
/* The process-wide key/value store behind the Lua module `host.shared`: string keys
 * and values, optional TTLs, LRU eviction, one lock. This C API is for the host and tests. */
#ifndef SHARED_H
#define SHARED_H

#include <stdbool.h>
#include <stddef.h>

#define SHARED_KEY_MAX 1024            /* bytes of a key */
#define SHARED_VALUE_MAX (1024 * 1024) /* bytes of a value */
#define SHARED_ENTRIES_MAX 10000       /* live entries; beyond, the least recently used go */

/// Removes every entry.
void shared_store_flush(void);

/// Stores a copy of val under key; ttl in seconds, 0 for no expiry. False if a
/// bound is exceeded, ttl is negative or NaN, or memory ran out.
bool shared_store_set(const char *key, size_t klen, const char *val, size_t vlen, double ttl);

/// Like shared_store_set, but only if no live entry has the key (false otherwise).
bool shared_store_add(const char *key, size_t klen, const char *val, size_t vlen, double ttl);

/// A malloc'd copy of the live value (NUL-terminated; its length in *vlen), or
/// NULL if absent, expired, or out of memory. Counts as a use for the LRU order.
char *shared_store_get(const char *key, size_t klen, size_t *vlen);

/// Removes key; true if a live entry was there.
bool shared_store_delete(const char *key, size_t klen);

/// Adds delta to the integer stored under key (absent: 0, created with ttl) and
/// stores the result in *out. False if the value is not an integer, on overflow,
/// or on a bad argument.
bool shared_store_incr(const char *key, size_t klen, long long delta, double ttl, long long *out);

/// The number of live entries (expired ones are purged first).
size_t shared_store_count(void);

#endif
