/* SPDX-License-Identifier: Apache-2.0 */
/* Lua module `host.log` and the C API of log.h: one line per event on stderr, as
 * text or JSON, secrets redacted, each line a single locked write(2).
 * Misuse from Lua (bad message, level name, format or field) raises naming the function. */
#include "bindings/log.h"
#include "bindings/bindings.h"

#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 16384 /* bytes of one line, newline included */
#define LOG_MAX_FIELDS 64  /* key/value pairs per line; more are dropped (C) or refused (Lua) */
#define LOG_KEY_MAX 128    /* escaped bytes of one key; longer keys are cut */
#define LOG_ELLIPSIS "\xe2\x80\xa6" /* U+2026: ends a value that was cut */
#define LOG_ELLIPSIS_LEN 3
#define LOG_REDACTED "[redacted]"
#define LOG_JSON_TRUNCATED ",\"truncated\":\"true\""
#define LOG_TEXT_TRUNCATED " truncated=true"
#define LOG_PREFIX_MAX 64 /* timestamp and level, either format */

/* Keys and separators alone always fit, so every value gets some room. */
_Static_assert((LOG_MAX_FIELDS + 1) * (LOG_KEY_MAX + 8) + LOG_PREFIX_MAX + 64 < LOG_LINE_MAX - 4096,
               "log line limits leave too little room for values");

/* Set once at start-up but read by every thread: atomics keep a late
 * log.configure from a spec (or a reload) well defined. */
static atomic_int log_min_level = LOG_LEVEL_INFO;
static atomic_bool log_json = false;
/* write(2) of more than PIPE_BUF bytes to a pipe may interleave with other
 * writers, and a partial write needs a second call: hold a lock over both. */
static pthread_mutex_t log_write_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const level_labels[] = {"DEBUG", "INFO", "WARN", "ERROR"};

/* How a string is escaped: inside a JSON string, inside a Go %q string, bare
 * (the text message: one line, but quotes and backslashes kept), or as a
 * logfmt key (anything that would break key=value parsing becomes '_'). */
enum esc_mode { ESC_JSON, ESC_QUOTED, ESC_BARE, ESC_KEY };

/* One field of a line while it is measured and written. */
struct log_item {
    const char *key;   /* "msg" for the message */
    const char *value; /* after redaction */
    size_t key_len;    /* escaped, at most LOG_KEY_MAX */
    size_t value_len;  /* escaped */
    size_t cap;        /* escaped bytes the value may take, ellipsis included */
    bool quote;        /* text format: value needs quotes */
};

struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
};

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ASCII-only, so the rule never depends on the locale. */
static bool equal_ci(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower(a[i]) != b[i])
            return false;
    return true;
}

/* The redaction rule (documented in log.md): exact names and suffixes. */
static bool is_sensitive(const char *key)
{
    static const char *const names[] = {"authorization", "token", "password", "secret"};
    static const char *const suffixes[] = {"_token", "_secret", "_key"};
    size_t len = strlen(key);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (equal_ci(key, len, names[i]))
            return true;
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t slen = strlen(suffixes[i]);
        if (len >= slen && equal_ci(key + len - slen, slen, suffixes[i]))
            return true;
    }
    return false;
}

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlongs,
 * surrogates or code points past U+10FFFF), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return len;
}

/* Escape of one ASCII control byte (or DEL for Go) into out. */
static size_t escape_control(enum esc_mode mode, unsigned char c, char *out)
{
    const char *named = NULL;
    switch (c) {
    case '\n':
        named = "\\n";
        break;
    case '\r':
        named = "\\r";
        break;
    case '\t':
        named = "\\t";
        break;
    case '\b':
        named = "\\b";
        break;
    case '\f':
        named = "\\f";
        break;
    case '\a':
        named = mode == ESC_JSON ? NULL : "\\a";
        break;
    case '\v':
        named = mode == ESC_JSON ? NULL : "\\v";
        break;
    default:
        break;
    }
    if (named != NULL) {
        memcpy(out, named, 2);
        return 2;
    }
    return (size_t)snprintf(out, 8, mode == ESC_JSON ? "\\u%04x" : "\\x%02x", c);
}

/* Escapes the next unit of s (one character, or one invalid byte) into out
 * (at least 8 bytes); sets *used to the input bytes it took. */
static size_t escape_unit(enum esc_mode mode, const unsigned char *s, size_t n, char *out,
                          size_t *used)
{
    unsigned char c = s[0];
    *used = 1;
    if (mode == ESC_KEY) {
        out[0] = (char)(c > ' ' && c < 0x7f && c != '=' && c != '"' ? c : '_');
        return 1;
    }
    if (c >= 0x80) {
        size_t len = utf8_sequence(s, n);
        if (len > 0) {
            memcpy(out, s, len);
            *used = len;
            return len;
        }
        /* JSON must stay valid UTF-8; Go's %q shows the byte. */
        if (mode == ESC_JSON) {
            memcpy(out, "\\ufffd", 6);
            return 6;
        }
        return (size_t)snprintf(out, 8, "\\x%02x", c);
    }
    if (c < 0x20 || (c == 0x7f && mode != ESC_JSON))
        return escape_control(mode, c, out);
    if ((c == '"' || c == '\\') && mode != ESC_BARE) {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    out[0] = (char)c;
    return 1;
}

/* Escaped length of s, and whether the text format must quote it. */
static size_t escaped_len(enum esc_mode mode, const char *s, bool *needs_quotes)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), total = 0, used;
    char out[8];
    bool quote = n == 0;
    for (size_t i = 0; i < n; i += used) {
        size_t len = escape_unit(mode, p + i, n - i, out, &used);
        if (len != used || memcmp(out, p + i, len) != 0 || p[i] == ' ' || p[i] == '=')
            quote = true;
        total += len;
    }
    if (needs_quotes != NULL)
        *needs_quotes = quote;
    return total;
}

/* Appends raw bytes; never past the buffer, whatever the caller computed. */
static void put(struct log_line *line, const char *s, size_t n)
{
    if (n > LOG_LINE_MAX - line->len)
        n = LOG_LINE_MAX - line->len;
    memcpy(line->buf + line->len, s, n);
    line->len += n;
}

/* Appends s escaped, whole units only, at most `limit` bytes. */
static void put_escaped(struct log_line *line, enum esc_mode mode, const char *s, size_t limit)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), written = 0, used;
    char out[8];
    for (size_t i = 0; i < n; i += used) {
        size_t len = escape_unit(mode, p + i, n - i, out, &used);
        if (written + len > limit)
            break;
        put(line, out, len);
        written += len;
    }
}

/* Appends an item's value within its cap, ending a cut value with an ellipsis. */
static void put_value(struct log_line *line, enum esc_mode mode, const struct log_item *item)
{
    if (item->value_len <= item->cap) {
        put_escaped(line, mode, item->value, item->value_len);
        return;
    }
    size_t room = item->cap > LOG_ELLIPSIS_LEN ? item->cap - LOG_ELLIPSIS_LEN : 0;
    put_escaped(line, mode, item->value, room);
    put(line, LOG_ELLIPSIS, LOG_ELLIPSIS_LEN);
}

/* "2026-11-24T09:27:15.123Z" (UTC, milliseconds) and the level, as the
 * start of a JSON object or of a text line. */
static void put_prefix(struct log_line *line, enum log_level level, bool json)
{
    struct timespec ts;
    struct tm tm;
    char stamp[128], prefix[LOG_PREFIX_MAX + 128];
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t seconds = ts.tv_sec;
    gmtime_r(&seconds, &tm);
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000 % 1000));
    int n = json ? snprintf(prefix, sizeof prefix, "{\"ts\":\"%s\",\"level\":\"%s\"", stamp,
                            level_names[level])
                 : snprintf(prefix, sizeof prefix, "%s %s", stamp, level_labels[level]);
    put(line, prefix, n > 0 ? (size_t)n : 0);
}

/* The message, then the non-NULL pairs of fields (redacted), up to the limit.
 * Returns the count; sets *dropped if pairs were left out. */
static size_t collect_items(const char *message, const char *const *fields, struct log_item *items,
                            bool *dropped)
{
    size_t n = 0;
    items[n++] = (struct log_item){.key = "msg", .value = message != NULL ? message : ""};
    for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2) {
        if (fields[i + 1] == NULL)
            continue;
        if (n == LOG_MAX_FIELDS + 1) {
            *dropped = true;
            break;
        }
        bool secret = is_sensitive(fields[i]);
        items[n++] =
            (struct log_item){.key = fields[i], .value = secret ? LOG_REDACTED : fields[i + 1]};
    }
    return n;
}

/* Measures every item; returns the bytes of keys and separators. Sets
 * *cut if a key is longer than LOG_KEY_MAX. */
static size_t measure_items(struct log_item *items, size_t n, bool json, bool *cut)
{
    enum esc_mode key_mode = json ? ESC_JSON : ESC_KEY;
    enum esc_mode value_mode = json ? ESC_JSON : ESC_QUOTED;
    size_t overhead = 0;
    for (size_t i = 0; i < n; i++) {
        struct log_item *item = &items[i];
        item->key_len = escaped_len(key_mode, item->key, NULL);
        if (item->key_len > LOG_KEY_MAX) {
            item->key_len = LOG_KEY_MAX;
            *cut = true;
        }
        bool text_message = !json && i == 0;
        item->value_len =
            escaped_len(text_message ? ESC_BARE : value_mode, item->value, &item->quote);
        if (json)
            overhead += item->key_len + 6; /* ,"key":"value" */
        else if (text_message)
            overhead += 1; /* " message" */
        else
            overhead += item->key_len + 2 + (item->quote ? 2 : 0); /* key="value" */
    }
    return overhead;
}

/* Shares `budget` bytes among the values: short values stay whole and the
 * long ones split what is left evenly (water-filling), so one huge value
 * cannot push every other field out of the line. True if any value is cut. */
static bool fit_values(struct log_item *items, size_t n, size_t budget)
{
    size_t total = 0, left = budget, open = n;
    for (size_t i = 0; i < n; i++) {
        items[i].cap = items[i].value_len;
        total += items[i].value_len;
    }
    if (total <= budget)
        return false;
    for (size_t i = 0; i < n; i++)
        items[i].cap = SIZE_MAX;
    for (bool changed = true; changed && open > 0;) {
        changed = false;
        size_t share = left / open;
        for (size_t i = 0; i < n; i++) {
            if (items[i].cap == SIZE_MAX && items[i].value_len <= share) {
                items[i].cap = items[i].value_len;
                left -= items[i].value_len;
                open--;
                changed = true;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].cap == SIZE_MAX)
            items[i].cap = left / open;
    return true;
}

static void put_items(struct log_line *line, const struct log_item *items, size_t n, bool json)
{
    for (size_t i = 0; i < n; i++) {
        const struct log_item *item = &items[i];
        if (json) {
            put(line, ",\"", 2);
            put_escaped(line, ESC_JSON, item->key, item->key_len);
            put(line, "\":\"", 3);
            put_value(line, ESC_JSON, item);
            put(line, "\"", 1);
        } else if (i == 0) {
            put(line, " ", 1);
            put_value(line, ESC_BARE, item);
        } else {
            put(line, " ", 1);
            put_escaped(line, ESC_KEY, item->key, item->key_len);
            put(line, item->quote ? "=\"" : "=", item->quote ? 2 : 1);
            put_value(line, ESC_QUOTED, item);
            if (item->quote)
                put(line, "\"", 1);
        }
    }
}

/* One write(2) in the common case; the lock keeps retries after a partial
 * write (and big writes to pipes) from interleaving with other threads. */
static void write_line(const char *buf, size_t len)
{
    pthread_mutex_lock(&log_write_lock);
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* nowhere left to report a failing log */
        buf += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&log_write_lock);
}

void log_configure(enum log_level min_level, bool json)
{
    if (min_level > LOG_LEVEL_ERROR)
        min_level = LOG_LEVEL_ERROR;
    atomic_store_explicit(&log_min_level, (int)min_level, memory_order_relaxed);
    atomic_store_explicit(&log_json, json, memory_order_relaxed);
}

bool log_level_parse(const char *name, enum log_level *out)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    for (int i = LOG_LEVEL_DEBUG; i <= LOG_LEVEL_ERROR; i++) {
        if (equal_ci(name, len, level_names[i])) {
            *out = (enum log_level)i;
            return true;
        }
    }
    if (equal_ci(name, len, "warning")) {
        *out = LOG_LEVEL_WARN;
        return true;
    }
    return false;
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&log_min_level, memory_order_relaxed) &&
           level <= LOG_LEVEL_ERROR;
}

void log_write(enum log_level level, const char *message, const char *const *fields)
{
    if (!log_enabled(level))
        return;
    bool json = atomic_load_explicit(&log_json, memory_order_relaxed);
    struct log_item items[LOG_MAX_FIELDS + 1];
    struct log_line line = {.len = 0};
    bool truncated = false;
    size_t n = collect_items(message, fields, items, &truncated);
    size_t overhead = measure_items(items, n, json, &truncated);
    put_prefix(&line, level, json);
    /* Always keep room for the end of the line and the truncation mark. */
    size_t tail = json ? sizeof LOG_JSON_TRUNCATED - 1 + 2 : sizeof LOG_TEXT_TRUNCATED - 1 + 1;
    size_t budget = LOG_LINE_MAX - line.len - overhead - tail;
    if (fit_values(items, n, budget))
        truncated = true;
    put_items(&line, items, n, json);
    if (truncated && json)
        put(&line, LOG_JSON_TRUNCATED, sizeof LOG_JSON_TRUNCATED - 1);
    else if (truncated)
        put(&line, LOG_TEXT_TRUNCATED, sizeof LOG_TEXT_TRUNCATED - 1);
    put(&line, json ? "}\n" : "\n", json ? 2 : 1);
    write_line(line.buf, line.len);
}

/* ---- Lua module ---- */

/* A Lua field while the line is assembled; value may point at number. */
struct lua_field {
    const char *key;
    size_t key_len;
    const char *value;
    char number[48];
};

/* Byte order of keys (with length, as Lua strings may hold NULs), so lines
 * with the same fields always look the same. */
static int field_compare(const void *a, const void *b)
{
    const struct lua_field *x = *(const struct lua_field *const *)a;
    const struct lua_field *y = *(const struct lua_field *const *)b;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    if (c != 0)
        return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Numbers as people write them: 3 not 3.0, otherwise like tostring. */
static void format_number(lua_State *L, int index, char *buf, size_t size)
{
    if (lua_isinteger(L, index)) {
        snprintf(buf, size, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, index));
        return;
    }
    double x = (double)lua_tonumber(L, index);
    if (x > -1e15 && x < 1e15 && x == (double)(long long)x) /* integral, no libm needed */
        snprintf(buf, size, "%.0f", x + 0.0);               /* + 0.0 turns -0.0 into 0 */
    else
        snprintf(buf, size, "%.14g", x);
}

/* The value at the top of the stack as a string that outlives the pop
 * (strings stay anchored in the fields table; numbers go to f->number). */
static void field_value(lua_State *L, const char *fname, struct lua_field *f)
{
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        f->value = lua_tostring(L, -1);
        break;
    case LUA_TBOOLEAN:
        f->value = lua_toboolean(L, -1) ? "true" : "false";
        break;
    case LUA_TNUMBER:
        format_number(L, -1, f->number, sizeof f->number);
        f->value = f->number;
        break;
    default:
        luaL_error(L, "host.log.%s: field '%s' must be a string, number or boolean (got %s)", fname,
                   f->key, luaL_typename(L, -1));
    }
}

/* Reads the fields table (argument 2) into fields; order gets pointers to be sorted. */
static size_t collect_lua_fields(lua_State *L, const char *fname, struct lua_field *fields,
                                 struct lua_field **order)
{
    size_t n = 0;
    lua_settop(L, 2);
    lua_pushnil(L);
    while (lua_next(L, 2) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "host.log.%s: field keys must be strings (got %s)", fname,
                       luaL_typename(L, -2));
        if (n == LOG_MAX_FIELDS)
            luaL_error(L, "host.log.%s: more than %d fields", fname, LOG_MAX_FIELDS);
        struct lua_field *f = &fields[n];
        f->key = lua_tolstring(L, -2, &f->key_len);
        field_value(L, fname, f);
        order[n++] = f;
        lua_pop(L, 1);
    }
    return n;
}

/* log.<level>(msg [, fields]): the level check comes before any field work,
 * so a disabled level costs a type check and an atomic load. */
static int log_emit(lua_State *L, enum log_level level, const char *fname)
{
    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "host.log.%s: msg must be a string (got %s)", fname,
                          luaL_typename(L, 1));
    int type = lua_type(L, 2);
    if (type != LUA_TNONE && type != LUA_TNIL && type != LUA_TTABLE)
        return luaL_error(L, "host.log.%s: fields must be a table (got %s)", fname,
                          luaL_typename(L, 2));
    if (!log_enabled(level))
        return 0;
    struct lua_field fields[LOG_MAX_FIELDS];
    struct lua_field *order[LOG_MAX_FIELDS];
    const char *pairs[2 * LOG_MAX_FIELDS + 1];
    size_t n = type == LUA_TTABLE ? collect_lua_fields(L, fname, fields, order) : 0;
    qsort(order, n, sizeof order[0], field_compare);
    for (size_t i = 0; i < n; i++) {
        pairs[2 * i] = order[i]->key;
        pairs[2 * i + 1] = order[i]->value;
    }
    pairs[2 * n] = NULL;
    log_write(level, lua_tostring(L, 1), pairs);
    return 0;
}

static int log_lua_debug(lua_State *L)
{
    return log_emit(L, LOG_LEVEL_DEBUG, "debug");
}

static int log_lua_info(lua_State *L)
{
    return log_emit(L, LOG_LEVEL_INFO, "info");
}

static int log_lua_warn(lua_State *L)
{
    return log_emit(L, LOG_LEVEL_WARN, "warn");
}

static int log_lua_error(lua_State *L)
{
    return log_emit(L, LOG_LEVEL_ERROR, "error");
}

/* A level name at index, or raise: unknown names are caller bugs. */
static enum log_level check_level(lua_State *L, int index, const char *fname)
{
    enum log_level level = LOG_LEVEL_INFO;
    if (lua_type(L, index) != LUA_TSTRING || !log_level_parse(lua_tostring(L, index), &level))
        luaL_error(L, "host.log.%s: unknown level '%s' (want debug, info, warn or error)", fname,
                   luaL_tolstring(L, index, NULL));
    return level;
}

static int log_lua_enabled(lua_State *L)
{
    lua_pushboolean(L, log_enabled(check_level(L, 1, "enabled")));
    return 1;
}

/* log.configure{level=, format=}: absent keys keep the current setting. */
static int log_lua_configure(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TTABLE)
        return luaL_error(L, "host.log.configure: expected a table (got %s)", luaL_typename(L, 1));
    enum log_level level = (enum log_level)atomic_load(&log_min_level);
    bool json = atomic_load(&log_json);
    if (lua_getfield(L, 1, "level") != LUA_TNIL)
        level = check_level(L, -1, "configure");
    if (lua_getfield(L, 1, "format") != LUA_TNIL) {
        const char *format = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
            return luaL_error(L, "host.log.configure: format must be \"json\" or \"text\"");
        json = strcmp(format, "json") == 0;
    }
    log_configure(level, json);
    return 0;
}

static const luaL_Reg log_functions[] = {
    {"debug", log_lua_debug},
    {"info", log_lua_info},
    {"warn", log_lua_warn},
    {"error", log_lua_error},
    {"enabled", log_lua_enabled},
    {"configure", log_lua_configure},
    {NULL, NULL},
};

int luaopen_host_log(lua_State *L)
{
    luaL_newlib(L, log_functions);
    return 1;
}
