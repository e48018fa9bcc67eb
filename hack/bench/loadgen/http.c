/* SPDX-License-Identifier: Apache-2.0 */
/* Request formatting and response parsing for loadgen (HTTP/1.1, RFC 9112):
 * enough to find where each response ends on a keep-alive connection. */
#include "http.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char index_marker[] = "{i}";
enum { MARKER_LEN = sizeof index_marker - 1, MAX_INDEX_DIGITS = 20, MAX_LINE = 4096 };

/* Whether the user's --header flags set this header themselves. */
static bool user_sets(const struct lg_opts *o, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < o->header_count; i++)
        if (strncasecmp(o->headers[i], name, n) == 0 && o->headers[i][n] == ':')
            return true;
    return false;
}

/* A method that carries a body, so an empty one still needs Content-Length: 0. */
static bool method_has_body(const char *m)
{
    return strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
}

static void write_tail(FILE *f, const struct lg_opts *o)
{
    fputs(" HTTP/1.1\r\n", f);
    if (!user_sets(o, "Host"))
        fprintf(f, "Host: %s\r\n", o->authority);
    if (!user_sets(o, "User-Agent"))
        fputs("User-Agent: loadgen\r\n", f);
    if (!user_sets(o, "Connection"))
        fputs("Connection: keep-alive\r\n", f);
    for (int i = 0; i < o->header_count; i++)
        fprintf(f, "%s\r\n", o->headers[i]);
    if (o->body != NULL && !user_sets(o, "Content-Type"))
        fputs("Content-Type: application/json\r\n", f);
    if ((o->body != NULL || method_has_body(o->method)) && !user_sets(o, "Content-Length"))
        fprintf(f, "Content-Length: %zu\r\n", o->body_len);
    fputs("\r\n", f);
    if (o->body_len > 0)
        fwrite(o->body, 1, o->body_len, f);
}

bool http_request_tmpl_init(struct http_request_tmpl *t, const struct lg_opts *o)
{
    *t = (struct http_request_tmpl){.method = o->method};
    t->path = o->path_template != NULL ? o->path_template : o->path;
    t->templated = strstr(t->path, index_marker) != NULL;
    FILE *f = open_memstream(&t->tail, &t->tail_len);
    if (f == NULL)
        return false;
    write_tail(f, o);
    if (fclose(f) != 0)
        return false;
    size_t markers = 0;
    for (const char *p = t->path; (p = strstr(p, index_marker)) != NULL; p += MARKER_LEN)
        markers++;
    t->max_len = strlen(t->method) + 1 + strlen(t->path) + markers * MAX_INDEX_DIGITS + t->tail_len;
    return true;
}

void http_request_tmpl_free(struct http_request_tmpl *t)
{
    free(t->tail);
    *t = (struct http_request_tmpl){0};
}

static size_t put(char *out, size_t at, const char *s, size_t n)
{
    memcpy(out + at, s, n);
    return at + n;
}

size_t http_request_build(const struct http_request_tmpl *t, long long index, char *out)
{
    size_t at = put(out, 0, t->method, strlen(t->method));
    out[at++] = ' ';
    if (!t->templated) {
        at = put(out, at, t->path, strlen(t->path));
    } else {
        char digits[MAX_INDEX_DIGITS + 1];
        size_t ndigits = (size_t)snprintf(digits, sizeof digits, "%lld", index);
        const char *p = t->path, *m;
        while ((m = strstr(p, index_marker)) != NULL) {
            at = put(out, at, p, (size_t)(m - p));
            at = put(out, at, digits, ndigits);
            p = m + MARKER_LEN;
        }
        at = put(out, at, p, strlen(p));
    }
    return put(out, at, t->tail, t->tail_len);
}

void http_response_start(struct http_response *r, bool head_request)
{
    *r = (struct http_response){.state = HTTP_HEAD, .head_request = head_request};
}

bool http_ends_at_eof(const struct http_response *r)
{
    return r->state == HTTP_UNTIL_EOF;
}

/* memmem, which glibc declares only under _GNU_SOURCE. */
static const char *find(const char *hay, size_t len, const char *needle, size_t n)
{
    const char *end = hay + len;
    for (const char *p = hay; (size_t)(end - p) >= n; p++) {
        p = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (p == NULL)
            return NULL;
        if (memcmp(p, needle, n) == 0)
            return p;
    }
    return NULL;
}

/* Whether a comma-separated header value lists token (case-insensitive). */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tlen = strlen(token);
    const char *end = v + n;
    while (v < end) {
        while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *item = v;
        while (v < end && *v != ',')
            v++;
        const char *item_end = v;
        while (item_end > item && (item_end[-1] == ' ' || item_end[-1] == '\t'))
            item_end--;
        if ((size_t)(item_end - item) == tlen && strncasecmp(item, token, tlen) == 0)
            return true;
    }
    return false;
}

static bool parse_length(const char *v, size_t n, unsigned long long *out)
{
    if (n == 0 || n > 18)
        return false;
    unsigned long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (unsigned)(v[i] - '0');
    }
    *out = x;
    return true;
}

struct head_fields {
    bool chunked, has_length;
    unsigned long long length;
};

/* One "Name: value" line. False when a header we rely on is malformed. */
static bool parse_header_line(struct http_response *r, struct head_fields *h, const char *line,
                              size_t n)
{
    const char *colon = memchr(line, ':', n);
    if (colon == NULL)
        return false;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (name_len == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        h->has_length = true;
        return parse_length(v, vlen, &h->length);
    }
    if (name_len == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0)
        h->chunked = has_token(v, vlen, "chunked");
    if (name_len == 10 && strncasecmp(line, "Connection", 10) == 0) {
        if (has_token(v, vlen, "close"))
            r->close = true;
        else if (has_token(v, vlen, "keep-alive"))
            r->close = false;
    }
    return true;
}

/* "HTTP/1.x SSS reason": sets the status, and the HTTP/1.0 default of closing. */
static bool parse_status_line(struct http_response *r, const char *line, size_t n)
{
    if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[8] != ' ')
        return false;
    int status = 0;
    for (int i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return false;
        status = status * 10 + (line[i] - '0');
    }
    if (status < 100 || status > 599 || (n > 12 && line[12] != ' '))
        return false;
    r->status = status;
    r->close = line[7] == '0';
    return true;
}

/* Where the body ends, from the status and the headers just parsed. */
static void choose_body(struct http_response *r, const struct head_fields *h)
{
    if (r->status >= 100 && r->status < 200)
        r->state = HTTP_HEAD; /* an interim response: the real one follows */
    else if (r->head_request || r->status == 204 || r->status == 304)
        r->state = HTTP_COMPLETE;
    else if (h->chunked)
        r->state = HTTP_CHUNK_SIZE;
    else if (h->has_length && h->length == 0)
        r->state = HTTP_COMPLETE;
    else if (h->has_length)
        r->state = HTTP_BODY;
    else
        r->state = HTTP_UNTIL_EOF;
    r->remaining = h->length;
    if (r->state == HTTP_UNTIL_EOF)
        r->close = true;
}

/* The head, once it is all in buf. Returns the bytes it took, 0 when
 * incomplete, or -1 when malformed. */
static long parse_head(struct http_response *r, const char *buf, size_t len)
{
    const char *end = find(buf, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    const char *line = buf, *eol = find(buf, (size_t)(end - buf) + 2, "\r\n", 2);
    if (!parse_status_line(r, line, (size_t)(eol - line)))
        return -1;
    struct head_fields h = {0};
    while (eol < end) {
        line = eol + 2;
        eol = find(line, (size_t)(end + 2 - line), "\r\n", 2);
        if (!parse_header_line(r, &h, line, (size_t)(eol - line)))
            return -1;
    }
    if (r->status == 101)
        return -1; /* we never ask to switch protocols */
    choose_body(r, &h);
    return (long)(end + 4 - buf);
}

/* A chunk-size line "HEX[;ext]\r\n". Returns bytes taken, 0 if incomplete, -1 if bad. */
static long parse_chunk_size(struct http_response *r, const char *buf, size_t len)
{
    const char *eol = find(buf, len, "\r\n", 2);
    if (eol == NULL)
        return len > MAX_LINE ? -1 : 0;
    unsigned long long size = 0;
    const char *p = buf;
    for (; p < eol && isxdigit((unsigned char)*p); p++) {
        if (p - buf >= 15)
            return -1;
        int d = *p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10;
        size = size * 16 + (unsigned)d;
    }
    if (p == buf || (p < eol && *p != ';' && *p != ' ' && *p != '\t'))
        return -1;
    r->remaining = size;
    r->state = size > 0 ? HTTP_CHUNK_DATA : HTTP_TRAILERS;
    return (long)(eol + 2 - buf);
}

/* One trailer line; the empty line ends the response. */
static long parse_trailer(struct http_response *r, const char *buf, size_t len)
{
    const char *eol = find(buf, len, "\r\n", 2);
    if (eol == NULL)
        return len > MAX_LINE ? -1 : 0;
    if (eol == buf)
        r->state = HTTP_COMPLETE;
    return (long)(eol + 2 - buf);
}

/* Body bytes, counted and dropped. */
static long take_body(struct http_response *r, size_t len, enum http_state next)
{
    size_t n = r->remaining < len ? (size_t)r->remaining : len;
    r->remaining -= n;
    if (r->remaining == 0)
        r->state = next;
    return (long)n;
}

/* One step of the state machine on buf; same return convention as above. */
static long step(struct http_response *r, const char *buf, size_t len)
{
    switch (r->state) {
    case HTTP_HEAD:
        return parse_head(r, buf, len);
    case HTTP_BODY:
        return take_body(r, len, HTTP_COMPLETE);
    case HTTP_CHUNK_SIZE:
        return parse_chunk_size(r, buf, len);
    case HTTP_CHUNK_DATA:
        return take_body(r, len, HTTP_CHUNK_END);
    case HTTP_CHUNK_END:
        if (len < 2)
            return 0;
        r->state = HTTP_CHUNK_SIZE;
        return memcmp(buf, "\r\n", 2) == 0 ? 2 : -1;
    case HTTP_TRAILERS:
        return parse_trailer(r, buf, len);
    case HTTP_UNTIL_EOF:
        return (long)len;
    case HTTP_COMPLETE:
        break;
    }
    return 0;
}

enum http_parse_result http_parse(struct http_response *r, const char *buf, size_t len,
                                  size_t *used)
{
    size_t off = 0;
    while (r->state != HTTP_COMPLETE) {
        long n = step(r, buf + off, len - off);
        if (n < 0) {
            *used = off;
            return HTTP_BAD;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    *used = off;
    return r->state == HTTP_COMPLETE ? HTTP_DONE : HTTP_NEED_MORE;
}
