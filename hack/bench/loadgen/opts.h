/* SPDX-License-Identifier: Apache-2.0 */
/* loadgen's command line: what to send, where, with which credentials, and for
 * how long. Parsed once in main and read-only afterwards. */
#ifndef LOADGEN_OPTS_H
#define LOADGEN_OPTS_H

#include <stdbool.h>
#include <stddef.h>

enum { LG_MAX_CONNECTIONS = 512, LG_MAX_HEADERS = 64 };

struct lg_opts {
    char *host;      /* from the URL, without brackets for IPv6 */
    char *port;      /* decimal string, for getaddrinfo */
    char *authority; /* host[:port] exactly as in the URL, for the Host header */
    char *path;      /* the URL's path and query, "/" when empty */
    const char *cacert, *cert, *key;
    int connections;
    double duration_s;  /* > 0 for a timed run */
    long long requests; /* > 0 for a fixed number of counted requests */
    double warmup_s;
    double timeout_s;
    const char *method;
    char *body; /* NULL when there is no body */
    size_t body_len;
    const char *headers[LG_MAX_HEADERS];
    int header_count;
    const char *path_template; /* NULL: every request uses path */
    long long index_start;
    long long index_modulo; /* > 0: {i} cycles through index_start .. index_start + N - 1 */
    int expect_status;    /* 0: any 2xx is a success */
    size_t max_latencies; /* 0: keep every sample */
    bool json;
    bool help; /* --help: print opts_usage() and exit 0 */
};

/* Fills opts from argv. On bad input writes one line to err (size errlen) and
 * returns false; opts_free is safe either way. */
bool opts_parse(int argc, char **argv, struct lg_opts *opts, char *err, size_t errlen);
void opts_free(struct lg_opts *opts);
const char *opts_usage(void);
/* The {i} of the request numbered n (0, 1, 2, ... across all connections):
 * index_start + n, or index_start + n mod index_modulo when that is set. */
long long opts_index(const struct lg_opts *opts, long long n);

#endif
