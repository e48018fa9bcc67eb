/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for http.c: responses fed to the parser in pieces of every size (as
 * they arrive from the network), and requests built from templates. */
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

struct outcome {
    enum http_parse_result result; /* HTTP_NEED_MORE: input ran out first */
    bool ends_at_eof;
    int status;
    bool close;
    size_t left; /* bytes after the response */
};

/* Feeds text step bytes at a time, keeping unconsumed bytes like the worker. */
static struct outcome feed(const char *text, size_t step)
{
    struct http_response r;
    http_response_start(&r, false);
    char buf[4096];
    size_t len = 0, pos = 0, n = strlen(text);
    for (;;) {
        size_t used;
        enum http_parse_result pr = http_parse(&r, buf, len, &used);
        memmove(buf, buf + used, len - used);
        len -= used;
        if (pr != HTTP_NEED_MORE || pos == n)
            return (struct outcome){pr, http_ends_at_eof(&r), r.status, r.close, len + n - pos};
        size_t k = n - pos < step ? n - pos : step;
        memcpy(buf + len, text + pos, k);
        len += k;
        pos += k;
    }
}

static void expect(const char *text, enum http_parse_result result, int status, bool close,
                   size_t left)
{
    for (size_t step = 1; step <= 256; step *= 2) {
        struct outcome o = feed(text, step);
        CHECK(o.result == result);
        if (result == HTTP_DONE) {
            CHECK(o.status == status);
            CHECK(o.close == close);
            CHECK(o.left == left);
        }
    }
}

static void test_responses(void)
{
    expect("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", HTTP_DONE, 200, false, 0);
    expect("HTTP/1.1 200\r\ncontent-length:0\r\n\r\n", HTTP_DONE, 200, false, 0);
    expect("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokNEXT", HTTP_DONE, 200, false, 4);
    expect("HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n"
           "5\r\nhello\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
           HTTP_DONE, 201, true, 0);
    expect("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", HTTP_DONE, 204, false, 0);
    expect("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
           HTTP_DONE, 404, false, 0);
    expect("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", HTTP_DONE, 200, true, 0);
    expect("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", HTTP_DONE,
           200, false, 0);
    /* Neither length nor chunked: the body runs to the end of the connection. */
    struct outcome o = feed("HTTP/1.1 200 OK\r\n\r\nbody", 3);
    CHECK(o.result == HTTP_NEED_MORE && o.ends_at_eof);
    o = feed("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nbody", 3);
    CHECK(o.result == HTTP_NEED_MORE && !o.ends_at_eof);

    expect("HTTX/1.1 200 OK\r\n\r\n", HTTP_BAD, 0, false, 0);
    expect("HTTP/1.1 2000 OK\r\n\r\n", HTTP_BAD, 0, false, 0);
    expect("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", HTTP_BAD, 0, false, 0);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", HTTP_BAD, 0, false, 0);
    expect("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", HTTP_BAD, 0, false, 0);
    expect("HTTP/1.1 101 Switching Protocols\r\n\r\n", HTTP_BAD, 0, false, 0);
}

static char *build(const struct lg_opts *o, long long index)
{
    struct http_request_tmpl t;
    CHECK(http_request_tmpl_init(&t, o));
    char *out = malloc(t.max_len + 1);
    size_t n = http_request_build(&t, index, out);
    CHECK(n <= t.max_len);
    out[n] = '\0';
    http_request_tmpl_free(&t);
    return out;
}

static void test_requests(void)
{
    struct lg_opts o = {.method = "GET", .authority = "h:1", .path = "/p?q"};
    char *r = build(&o, 0);
    CHECK(strcmp(r, "GET /p?q HTTP/1.1\r\nHost: h:1\r\nUser-Agent: loadgen\r\n"
                    "Connection: keep-alive\r\n\r\n") == 0);
    free(r);

    static const char body[] = "{}";
    o = (struct lg_opts){.method = "POST",
                         .authority = "h",
                         .path = "/p",
                         .path_template = "/n/{i}/r{i}",
                         .body = (char *)body,
                         .body_len = 2,
                         .headers = {"X-A: b", "host: other"},
                         .header_count = 2};
    r = build(&o, 9223372036854775807LL);
    CHECK(strcmp(r, "POST /n/9223372036854775807/r9223372036854775807 HTTP/1.1\r\n"
                    "User-Agent: loadgen\r\nConnection: keep-alive\r\nX-A: b\r\nhost: other\r\n"
                    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}") == 0);
    free(r);

    o = (struct lg_opts){.method = "POST", .authority = "h", .path = "/p"};
    r = build(&o, 0);
    CHECK(strstr(r, "\r\nContent-Length: 0\r\n\r\n") != NULL); /* an empty POST still says so */
    CHECK(strstr(r, "Content-Type") == NULL);
    free(r);
}

int main(void)
{
    test_responses();
    test_requests();
    if (failures > 0)
        fprintf(stderr, "%d checks failed\n", failures);
    return failures > 0;
}
