/* SPDX-License-Identifier: Apache-2.0 */
/* host.yaml: decodes the first YAML document into Lua values (libyaml events, YAML 1.2 core
 * schema). Misuse raises; input that is not YAML, or too large, deep or expansive, returns nil,
 * message, "invalid_yaml". */
#include "bindings/bindings.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <yaml.h>

#define DECODER_MT "host.yaml.decoder"
#define FN_DECODE "host.yaml.decode"
#define MAX_DOCUMENT ((size_t)8 * 1024 * 1024)
#define MAX_NODES ((size_t)100000) /* aliases count with their whole expansion */
#define MAX_DEPTH 64               /* nested collections, aliases expanded */
#define QUOTE_MAX 40               /* at most this much of the document goes into a message */
#define MESSAGE_MAX 320

#define TAG_PREFIX "tag:yaml.org,2002:"

/* Owns libyaml's parser and current event, so a Lua error (out of memory while building the
 * value) lets the garbage collector free them. */
typedef struct {
    yaml_parser_t parser;
    yaml_event_t event;
    int parser_live, event_live, out_of_memory;
    int anchors; /* stack index of the table anchor name -> {value, nodes, height} */
    size_t nodes;
    char message[MESSAGE_MAX];
} yaml_decoder;

/* What one value amounts to once its aliases are expanded. */
typedef struct {
    size_t nodes;
    int height; /* collections nested in it, itself included; 0 for a scalar */
} node_size;

/* A plain scalar's type under the core schema, or the one an explicit !!tag asks for. */
enum { WANT_ANY, WANT_STR, WANT_NULL, WANT_BOOL, WANT_INT, WANT_FLOAT };

/* ---- decoder lifetime ---- */

static void decoder_release(yaml_decoder *d)
{
    if (d->event_live) {
        yaml_event_delete(&d->event);
        d->event_live = 0;
    }
    if (d->parser_live) {
        yaml_parser_delete(&d->parser);
        d->parser_live = 0;
    }
}

static int decoder_gc(lua_State *L)
{
    decoder_release(luaL_checkudata(L, 1, DECODER_MT));
    return 0;
}

static yaml_decoder *push_decoder(lua_State *L, const char *text, size_t len)
{
    yaml_decoder *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    if (luaL_newmetatable(L, DECODER_MT)) {
        lua_pushcfunction(L, decoder_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    if (!yaml_parser_initialize(&d->parser))
        luaL_error(L, "%s: out of memory", FN_DECODE);
    d->parser_live = 1;
    yaml_parser_set_input_string(&d->parser, (const unsigned char *)text, len);
    return d;
}

/* ---- failures: the message goes to d->message; functions return 0 ---- */

static int fail_at(yaml_decoder *d, yaml_mark_t mark, const char *fmt, ...)
{
    int n = snprintf(d->message, sizeof d->message, "line %zu column %zu: ", mark.line + 1,
                     mark.column + 1);
    if (n < 0 || (size_t)n >= sizeof d->message)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message + n, sizeof d->message - (size_t)n, fmt, ap);
    va_end(ap);
    return 0;
}

static int fail_parser(yaml_decoder *d)
{
    const yaml_parser_t *p = &d->parser;
    const char *problem = p->problem != NULL ? p->problem : "unknown error";

    if (p->error == YAML_MEMORY_ERROR) {
        d->out_of_memory = 1;
        return 0;
    }
    if (p->error == YAML_READER_ERROR) {
        snprintf(d->message, sizeof d->message, "byte %zu: %s", p->problem_offset, problem);
        return 0;
    }
    if (p->context != NULL)
        return fail_at(d, p->problem_mark, "%s (%s started at line %zu column %zu)", problem,
                       p->context, p->context_mark.line + 1, p->context_mark.column + 1);
    return fail_at(d, p->problem_mark, "%s", problem);
}

/* Copies at most QUOTE_MAX bytes of document text for a message, replacing what is not
 * printable ASCII. */
static const char *quote(char out[QUOTE_MAX + 4], const unsigned char *s, size_t len)
{
    size_t n = len > QUOTE_MAX ? QUOTE_MAX : len;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    strcpy(out + n, len > n ? "..." : "");
    return out;
}

static int next_event(yaml_decoder *d)
{
    if (d->event_live) {
        yaml_event_delete(&d->event);
        d->event_live = 0;
    }
    if (!yaml_parser_parse(&d->parser, &d->event))
        return fail_parser(d);
    d->event_live = 1;
    return 1;
}

static int count_nodes(yaml_decoder *d, yaml_mark_t mark, size_t n)
{
    if (n > MAX_NODES - d->nodes)
        return fail_at(d, mark, "more than %zu nodes (aliases count with their expansion)",
                       MAX_NODES);
    d->nodes += n;
    return 1;
}

/* ---- scalars ---- */

static int text_is(const char *s, size_t len, const char *literal)
{
    return len == strlen(literal) && memcmp(s, literal, len) == 0;
}

static int one_of(const char *s, size_t len, const char *const *literals)
{
    for (; *literals != NULL; literals++)
        if (text_is(s, len, *literals))
            return 1;
    return 0;
}

static size_t span(const char *s, size_t len, const char *set)
{
    size_t i = 0;
    while (i < len && s[i] != '\0' && strchr(set, s[i]) != NULL)
        i++;
    return i;
}

/* 0x1F and 0o17 (no sign in the core schema); a value past lua_Integer becomes a float. */
static int push_radix_int(lua_State *L, const char *s, size_t len)
{
    if (len < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'o'))
        return 0;
    int base = s[1] == 'x' ? 16 : 8;
    if (span(s + 2, len - 2, base == 16 ? "0123456789abcdefABCDEF" : "01234567") != len - 2)
        return 0;
    uint64_t v = 0;
    double f = 0;
    int overflow = 0;
    for (size_t i = 2; i < len; i++) {
        unsigned digit = (unsigned)(s[i] <= '9' ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10);
        overflow |= v > ((uint64_t)LUA_MAXINTEGER - digit) / (unsigned)base;
        v = v * (unsigned)base + digit;
        f = f * base + digit;
    }
    if (overflow)
        lua_pushnumber(L, (lua_Number)f);
    else
        lua_pushinteger(L, (lua_Integer)v);
    return 1;
}

/* [-+]?[0-9]+ (decimal), or hexadecimal/octal. */
static int push_int(lua_State *L, const char *s, size_t len)
{
    size_t sign = len > 0 && (s[0] == '-' || s[0] == '+');
    if (len > sign && span(s + sign, len - sign, "0123456789") == len - sign)
        /* lua_stringtonumber gives an integer when it fits, a float otherwise. */
        return lua_stringtonumber(L, s) != 0;
    return push_radix_int(L, s, len);
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, [-+]?\.inf, \.nan in three spellings. */
static int push_float(lua_State *L, const char *s, size_t len)
{
    static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
    const char *digits = "0123456789";
    size_t sign = len > 0 && (s[0] == '-' || s[0] == '+');

    if (one_of(s + sign, len - sign, infs)) {
        lua_pushnumber(L, (lua_Number)(s[0] == '-' ? -HUGE_VAL : HUGE_VAL));
        return 1;
    }
    if (one_of(s, len, nans)) {
        lua_pushnumber(L, (lua_Number)NAN);
        return 1;
    }
    size_t i = sign, whole = span(s + i, len - i, digits), frac = 0;
    i += whole;
    if (i < len && s[i] == '.') {
        frac = span(s + i + 1, len - i - 1, digits);
        i += 1 + frac;
    }
    if (whole == 0 && frac == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t esign = i + 1 < len && (s[i + 1] == '-' || s[i + 1] == '+');
        size_t exp = span(s + i + 1 + esign, len - i - 1 - esign, digits);
        if (exp == 0)
            return 0;
        i += 1 + esign + exp;
    }
    /* The text has a '.' or an exponent here, so Lua reads it as a float. */
    return i == len && lua_stringtonumber(L, s) != 0;
}

/* Pushes the value of scalar text s as type want; returns 0 (nothing pushed) if it is not one. */
static int push_typed(lua_State *L, const char *s, size_t len, int want)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};

    if ((want == WANT_ANY || want == WANT_NULL) && one_of(s, len, nulls)) {
        lua_pushlightuserdata(L, NULL);
        return 1;
    }
    if ((want == WANT_ANY || want == WANT_BOOL) &&
        (one_of(s, len, trues) || one_of(s, len, falses))) {
        lua_pushboolean(L, one_of(s, len, trues));
        return 1;
    }
    if ((want == WANT_ANY || want == WANT_INT) && push_int(L, s, len))
        return 1;
    if (want == WANT_FLOAT && push_int(L, s, len)) {
        lua_pushnumber(L, lua_tonumber(L, -1));
        lua_remove(L, -2);
        return 1;
    }
    if (want == WANT_ANY || want == WANT_FLOAT)
        return push_float(L, s, len);
    return 0;
}

static int tag_want(const char *tag, int plain)
{
    static const char *const names[] = {"str", "null", "bool", "int", "float", NULL};
    static const int wants[] = {WANT_STR, WANT_NULL, WANT_BOOL, WANT_INT, WANT_FLOAT};

    if (tag != NULL && strcmp(tag, "!") == 0)
        return WANT_STR; /* the non-specific tag: a string even when plain */
    if (tag != NULL && strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0)
        for (int i = 0; names[i] != NULL; i++)
            if (strcmp(tag + strlen(TAG_PREFIX), names[i]) == 0)
                return wants[i];
    /* Other tags (!!binary, !custom) are ignored: the text resolves as if untagged. */
    return plain ? WANT_ANY : WANT_STR;
}

static int push_scalar(lua_State *L, yaml_decoder *d)
{
    const yaml_event_t *e = &d->event;
    const char *s = (const char *)e->data.scalar.value;
    size_t len = e->data.scalar.length;
    int want =
        tag_want((const char *)e->data.scalar.tag, e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
    char text[QUOTE_MAX + 4];

    if (want != WANT_STR && push_typed(L, s, len, want))
        return 1;
    if (want != WANT_STR && want != WANT_ANY)
        return fail_at(d, e->start_mark, "'%s' does not match its tag",
                       quote(text, e->data.scalar.value, len));
    lua_pushlstring(L, s, len);
    return 1;
}

/* ---- anchors and aliases ---- */

/* anchors[name] = {value, nodes, height}; value is on top of the stack and stays there. */
static void record_anchor(lua_State *L, yaml_decoder *d, const char *name, node_size size)
{
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, (lua_Integer)size.nodes);
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, size.height);
    lua_rawseti(L, -2, 3);
    lua_setfield(L, d->anchors, name);
}

/* Pushes a deep copy of the value at idx: aliases give independent values, as in Go. */
static void push_copy(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return;
    }
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, 6, FN_DECODE);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) { /* copy, key, value */
        push_copy(L, -1);
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, -5);
        lua_pop(L, 1);
    }
}

static int push_alias(lua_State *L, yaml_decoder *d, int depth, node_size *size)
{
    yaml_mark_t mark = d->event.start_mark;
    char name[QUOTE_MAX + 4];
    const unsigned char *anchor = d->event.data.alias.anchor;

    if (lua_getfield(L, d->anchors, (const char *)anchor) != LUA_TTABLE)
        return fail_at(d, mark, "unknown anchor '%s'",
                       quote(name, anchor, strlen((const char *)anchor)));
    lua_rawgeti(L, -1, 2);
    size->nodes = (size_t)lua_tointeger(L, -1);
    lua_rawgeti(L, -2, 3);
    size->height = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (!count_nodes(d, mark, size->nodes))
        return 0;
    if (depth + size->height > MAX_DEPTH)
        return fail_at(d, mark, "nested deeper than %d (aliases expanded)", MAX_DEPTH);
    lua_rawgeti(L, -1, 1);
    push_copy(L, -1);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return 1;
}

/* ---- collections ---- */

static int parse_node(lua_State *L, yaml_decoder *d, int depth, node_size *size);

static void add_child(node_size *size, node_size child)
{
    size->nodes += child.nodes;
    if (child.height + 1 > size->height)
        size->height = child.height + 1;
}

static int parse_sequence(lua_State *L, yaml_decoder *d, int depth, node_size *size)
{
    lua_Integer n = 0;
    lua_newtable(L);
    for (;;) {
        node_size child = {0, 0};
        if (!next_event(d))
            return 0;
        if (d->event.type == YAML_SEQUENCE_END_EVENT)
            return 1;
        if (!parse_node(L, d, depth, &child))
            return 0;
        lua_rawseti(L, -2, ++n);
        add_child(size, child);
    }
}

/* Pushes the key of the pair starting at the current event; refuses non-scalars and repeats. */
static int push_key(lua_State *L, yaml_decoder *d)
{
    const yaml_event_t *e = &d->event;
    char text[QUOTE_MAX + 4];

    if (e->type != YAML_SCALAR_EVENT)
        return fail_at(d, e->start_mark, "mapping keys must be scalars");
    if (!count_nodes(d, e->start_mark, 1))
        return 0;
    lua_pushlstring(L, (const char *)e->data.scalar.value, e->data.scalar.length);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) != LUA_TNIL)
        return fail_at(d, e->start_mark, "duplicate key '%s'",
                       quote(text, e->data.scalar.value, e->data.scalar.length));
    lua_pop(L, 1);
    if (e->data.scalar.anchor != NULL)
        record_anchor(L, d, (const char *)e->data.scalar.anchor, (node_size){1, 0});
    return 1;
}

static int parse_mapping(lua_State *L, yaml_decoder *d, int depth, node_size *size)
{
    lua_newtable(L);
    for (;;) {
        node_size child = {0, 0};
        if (!next_event(d))
            return 0;
        if (d->event.type == YAML_MAPPING_END_EVENT)
            return 1;
        if (!push_key(L, d) || !next_event(d) || !parse_node(L, d, depth, &child))
            return 0;
        lua_rawset(L, -3);
        size->nodes += 1;
        add_child(size, child);
    }
}

/* Pushes a sequence or mapping; its start event is current. */
static int parse_collection(lua_State *L, yaml_decoder *d, int depth, node_size *size)
{
    const yaml_event_t *e = &d->event;
    int is_sequence = e->type == YAML_SEQUENCE_START_EVENT;
    const unsigned char *anchor =
        is_sequence ? e->data.sequence_start.anchor : e->data.mapping_start.anchor;

    if (depth + 1 > MAX_DEPTH)
        return fail_at(d, e->start_mark, "nested deeper than %d", MAX_DEPTH);
    /* The next event frees this one: keep the anchor name on the stack. */
    lua_pushstring(L, anchor != NULL ? (const char *)anchor : "");
    int ok =
        is_sequence ? parse_sequence(L, d, depth + 1, size) : parse_mapping(L, d, depth + 1, size);
    if (!ok)
        return 0;
    if (size->height == 0)
        size->height = 1; /* empty */
    if (lua_tostring(L, -2)[0] != '\0')
        record_anchor(L, d, lua_tostring(L, -2), *size);
    lua_remove(L, -2);
    return 1;
}

/* Parses the node whose first event is current and pushes its value. */
static int parse_node(lua_State *L, yaml_decoder *d, int depth, node_size *size)
{
    const yaml_event_t *e = &d->event;

    luaL_checkstack(L, 8, FN_DECODE);
    if (e->type == YAML_ALIAS_EVENT)
        return push_alias(L, d, depth, size);
    if (!count_nodes(d, e->start_mark, 1))
        return 0;
    *size = (node_size){1, 0};
    if (e->type == YAML_SEQUENCE_START_EVENT || e->type == YAML_MAPPING_START_EVENT)
        return parse_collection(L, d, depth, size);
    if (e->type != YAML_SCALAR_EVENT)
        return fail_at(d, e->start_mark, "unexpected parser event %d", (int)e->type);
    if (!push_scalar(L, d))
        return 0;
    if (e->data.scalar.anchor != NULL)
        record_anchor(L, d, (const char *)e->data.scalar.anchor, *size);
    return 1;
}

/* Pushes the value of the first document, yaml.null if there is none. */
static int parse_first_document(lua_State *L, yaml_decoder *d)
{
    node_size size = {0, 0};

    if (!next_event(d) || !next_event(d)) /* stream start, then document start or stream end */
        return 0;
    if (d->event.type == YAML_STREAM_END_EVENT) {
        lua_pushlightuserdata(L, NULL);
        return 1;
    }
    if (!next_event(d) || !parse_node(L, d, 0, &size))
        return 0;
    /* Reading past the document's end (to the next start) catches trailing garbage such as
     * "[1] ]"; the content of later documents is not read. */
    return next_event(d) && next_event(d);
}

static int yaml_decode(lua_State *L)
{
    size_t len;

    if (lua_type(L, 1) != LUA_TSTRING)
        return luaL_error(L, "%s: text must be a string, got %s", FN_DECODE, luaL_typename(L, 1));
    const char *text = lua_tolstring(L, 1, &len);
    lua_settop(L, 1);
    if (len > MAX_DOCUMENT) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: document too large (%I bytes, limit %I)", FN_DECODE,
                        (lua_Integer)len, (lua_Integer)MAX_DOCUMENT);
        lua_pushstring(L, "invalid_yaml");
        return 3;
    }
    yaml_decoder *d = push_decoder(L, text, len); /* 2 */
    lua_newtable(L);                              /* 3: anchors */
    d->anchors = 3;
    int ok = parse_first_document(L, d);
    decoder_release(d);
    if (d->out_of_memory)
        return luaL_error(L, "%s: out of memory", FN_DECODE);
    if (ok)
        return 1;
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", FN_DECODE, d->message);
    lua_pushstring(L, "invalid_yaml");
    return 3;
}

static const luaL_Reg yaml_functions[] = {
    {"decode", yaml_decode},
    {NULL, NULL},
};

int luaopen_host_yaml(lua_State *L)
{
    luaL_newlib(L, yaml_functions);
    /* The same value as cjson.null, so a decoded document re-encodes as JSON with its nulls. */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
