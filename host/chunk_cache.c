/* SPDX-License-Identifier: Apache-2.0 */
/* The compiled-chunk cache. An entry is the bytecode of one (chunk name, source text) pair,
 * keyed by a 64-bit FNV-1a hash of both and the text's length. The sources are the server's own
 * Lua tree and provider scripts (trusted, whoever can change them can change the server), so the
 * key has to tell edits apart, not resist forgery; hashing costs ~1 instruction a byte where
 * SHA-256 cost half of creating a state. Entries are immutable once published and live until exit
 * (the Lua code and provider scripts are a few hundred KiB of bytecode). Bounded, so a state that
 * loads many distinct chunks cannot grow it without limit: past the bound, chunks are parsed as
 * before. */
#include "chunk_cache.h"

#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_ENTRIES = 512 };
#define MAX_BYTES ((size_t)16 * 1024 * 1024)

struct key {
    uint64_t hash;
    size_t text_length;
};

struct entry {
    struct key key;
    char *bytecode;
    size_t length;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry entries[MAX_ENTRIES];
static size_t entry_count;
static size_t cached_bytes;
static bool recording; /* new chunks are stored only once a second state is wanted */

static uint64_t fnv1a(uint64_t hash, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hash = (hash ^ p[i]) * 0x100000001b3ULL;
    return hash;
}

static struct key key_of(const char *name, const char *text, size_t length)
{
    uint64_t hash = fnv1a(0xcbf29ce484222325ULL, (const unsigned char *)name, strlen(name) + 1);
    return (struct key){fnv1a(hash, (const unsigned char *)text, length), length};
}

static bool same_key(const struct key *a, const struct key *b)
{
    return a->hash == b->hash && a->text_length == b->text_length;
}

/* Pushes the cached function, or returns false. The bytecode is copied out under the lock, so
 * deserialising (the slow part) runs unlocked. */
static bool load_cached(lua_State *L, const struct key *key, const char *name)
{
    char *copy = NULL;
    size_t length = 0;
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < entry_count; i++) {
        if (same_key(&entries[i].key, key)) {
            copy = malloc(entries[i].length);
            if (copy != NULL) {
                memcpy(copy, entries[i].bytecode, entries[i].length);
                length = entries[i].length;
            }
            break;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    if (copy == NULL)
        return false;
    int rc = luaL_loadbufferx(L, copy, length, name, "b");
    free(copy);
    if (rc != LUA_OK) {
        lua_pop(L, 1); /* cannot happen with our own bytecode; parse the text instead */
        return false;
    }
    return true;
}

struct dump_buffer {
    char *data;
    size_t length, capacity;
    bool failed;
};

static int dump_writer(lua_State *L, const void *p, size_t size, void *ud)
{
    (void)L;
    struct dump_buffer *b = ud;
    if (b->failed || b->length + size > MAX_BYTES)
        return b->failed = true, 1;
    if (b->length + size > b->capacity) {
        size_t capacity = b->capacity == 0 ? 4096 : b->capacity;
        while (capacity < b->length + size)
            capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL)
            return b->failed = true, 1;
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, p, size);
    b->length += size;
    return 0;
}

/* Stores the bytecode of the function on top of the stack (left there). Debug information is
 * kept: error messages and tracebacks keep their file names and lines. */
static void store(lua_State *L, const struct key *key)
{
    pthread_mutex_lock(&cache_lock);
    bool wanted = recording;
    pthread_mutex_unlock(&cache_lock);
    if (!wanted)
        return;
    struct dump_buffer b = {0};
    if (lua_dump(L, dump_writer, &b, 0) != 0 || b.failed) {
        free(b.data);
        return;
    }
    pthread_mutex_lock(&cache_lock);
    bool present = false;
    for (size_t i = 0; i < entry_count && !present; i++)
        present = same_key(&entries[i].key, key);
    if (recording && !present && entry_count < MAX_ENTRIES &&
        cached_bytes + b.length <= MAX_BYTES) {
        struct entry *e = &entries[entry_count++];
        e->key = *key;
        e->bytecode = b.data;
        e->length = b.length;
        cached_bytes += b.length;
        b.data = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
    free(b.data);
}

/* Loads source text as luaL_loadbufferx would, through the cache. Returns a lua_load status. */
static int load_text(lua_State *L, const char *text, size_t length, const char *name,
                     const char *mode)
{
    struct key key = key_of(name, text, length);
    if (load_cached(L, &key, name))
        return LUA_OK;
    int rc = luaL_loadbufferx(L, text, length, name, mode);
    if (rc == LUA_OK)
        store(L, &key);
    return rc;
}

/* load(chunk [, chunkname [, mode [, env]]]) as in lbaselib.c: strings of source text go through
 * the cache; binary strings and reader functions go to the original load (an upvalue). */
static int cached_load(lua_State *L)
{
    size_t length = 0;
    const char *text = lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &length) : NULL;
    const char *mode = luaL_optstring(L, 3, "bt");
    bool is_text =
        text != NULL && (length == 0 || text[0] != LUA_SIGNATURE[0]) && strchr(mode, 't') != NULL;
    if (!is_text) {
        if (text == NULL)
            luaL_checktype(L, 1, LUA_TFUNCTION); /* raised here, the message names 'load' */
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_insert(L, 1);
        lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
        return lua_gettop(L);
    }
    const char *name = luaL_optstring(L, 2, text);
    int env = !lua_isnone(L, 4) ? 4 : 0;
    if (load_text(L, text, length, name, mode) != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env != 0) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1)) /* the first upvalue is _ENV */
            lua_pop(L, 1);
    }
    return 1;
}

static char *read_whole_file(const char *path, size_t *length)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t used = 0, capacity = 0, n;
    do {
        if (used == capacity) {
            capacity = capacity == 0 ? 16384 : capacity * 2;
            char *grown = realloc(data, capacity);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        n = fread(data + used, 1, capacity - used, f);
        used += n;
    } while (n > 0);
    bool failed = ferror(f) != 0;
    fclose(f);
    if (failed) {
        free(data);
        return NULL;
    }
    *length = used;
    return data;
}

/* The Lua file searcher of loadlib.c (searcher_Lua), through the cache: finds NAME on
 * package.path and returns the loader and the file name, or the "no file" message. */
static int cached_searcher(lua_State *L)
{
    const char *module = luaL_checkstring(L, 1);
    lua_getglobal(L, LUA_LOADLIBNAME);
    lua_getfield(L, -1, "searchpath");
    lua_pushstring(L, module);
    lua_getfield(L, -3, "path");
    if (!lua_isstring(L, -1))
        return luaL_error(L, "'package.path' must be a string");
    lua_call(L, 2, 2); /* [package, filename|nil, nil|message] */
    if (lua_isnil(L, -2))
        return 1; /* the message */
    lua_pop(L, 1);
    const char *filename = lua_tostring(L, -1);
    size_t length = 0;
    char *text = read_whole_file(filename, &length);
    if (text == NULL)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\tcannot read the file",
                          module, filename);
    /* A leading "#" line is skipped by luaL_loadfilex; keep the line count by leaving "\n". */
    size_t skip = 0;
    if (length > 0 && text[0] == '#')
        while (skip < length && text[skip] != '\n')
            skip++;
    lua_pushfstring(L, "@%s", filename);
    int rc = load_text(L, text + skip, length - skip, lua_tostring(L, -1), "t");
    free(text);
    if (rc != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", module, filename,
                          lua_tostring(L, -1));
    lua_pushvalue(L, -3); /* the file name, the loader's second argument */
    return 2;
}

void chunk_cache_install(lua_State *L)
{
    lua_getglobal(L, "load");
    lua_pushcclosure(L, cached_load, 1);
    lua_setglobal(L, "load");
    lua_getglobal(L, LUA_LOADLIBNAME);
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, cached_searcher);
    lua_rawseti(L, -2, 2); /* searchers[2] is the Lua file searcher */
    lua_pop(L, 2);
}

size_t chunk_cache_bytes(void)
{
    pthread_mutex_lock(&cache_lock);
    size_t n = cached_bytes;
    pthread_mutex_unlock(&cache_lock);
    return n;
}

void chunk_cache_record(bool on)
{
    pthread_mutex_lock(&cache_lock);
    recording = on;
    pthread_mutex_unlock(&cache_lock);
}

void chunk_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < entry_count; i++)
        free(entries[i].bytecode);
    entry_count = 0;
    cached_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
}
