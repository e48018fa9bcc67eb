/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 for loadgen: requests built from a precomputed template, and an
 * incremental response parser that keeps only the status and what it needs
 * to find the end of the body (bodies are counted, never stored). */
#ifndef LOADGEN_HTTP_H
#define LOADGEN_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "opts.h"

/* Everything after the request target is the same for every request, so it is
 * formatted once; only the path (with {i} replaced) changes. */
struct http_request_tmpl {
    const char *method;
    const char *path; /* the URL's path, or the --path-template */
    bool templated;   /* path contains {i} */
    char *tail;       /* " HTTP/1.1\r\nHost: ...\r\n\r\n" followed by the body */
    size_t tail_len;
    size_t max_len; /* the longest request build can produce */
};

bool http_request_tmpl_init(struct http_request_tmpl *t, const struct lg_opts *o);
void http_request_tmpl_free(struct http_request_tmpl *t);
/* Writes request number index into out (at least t->max_len bytes); returns
 * its length. */
size_t http_request_build(const struct http_request_tmpl *t, long long index, char *out);

enum http_state {
    HTTP_HEAD,       /* status line and headers */
    HTTP_BODY,       /* Content-Length body */
    HTTP_CHUNK_SIZE, /* a chunk-size line */
    HTTP_CHUNK_DATA,
    HTTP_CHUNK_END, /* the CRLF after chunk data */
    HTTP_TRAILERS,  /* trailer lines after the last chunk */
    HTTP_UNTIL_EOF, /* neither length nor chunked: the body ends when the server closes */
    HTTP_COMPLETE
};

struct http_response {
    enum http_state state;
    bool head_request; /* a HEAD response has no body whatever its headers say */
    int status;
    bool close; /* the server will close the connection after this response */
    unsigned long long remaining;
};

enum http_parse_result { HTTP_NEED_MORE, HTTP_DONE, HTTP_BAD };

void http_response_start(struct http_response *r, bool head_request);
/* Consumes bytes from buf (len); *used says how many. While the head is
 * incomplete nothing is consumed, so the caller keeps the bytes and appends. */
enum http_parse_result http_parse(struct http_response *r, const char *buf, size_t len,
                                  size_t *used);
/* True when the server closing the connection now ends the response. */
bool http_ends_at_eof(const struct http_response *r);

#endif
