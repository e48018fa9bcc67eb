/* SPDX-License-Identifier: Apache-2.0 */
/* Command-line parsing for loadgen. Every check happens here, before any
 * connection is opened, so a typo never costs a half-finished run. */
#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: loadgen --url https://HOST:PORT/PATH --cacert FILE [--cert FILE --key FILE]\n"
    "               [--connections N] (--duration SECONDS | --requests N)\n"
    "               [--warmup SECONDS] [--timeout SECONDS] [--method METHOD]\n"
    "               [--body STRING | --body-file FILE] [--header 'Name: value']...\n"
    "               [--path-template '/path/{i}'] [--index-start N] [--index-modulo N]\n"
    "               [--expect-status CODE] [--max-latencies N] [--json]\n";

const char *opts_usage(void)
{
    return usage_text;
}

static bool fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return false;
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Bytes that would break the request line or a header if copied into it. */
static bool has_ctl_or_space(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f)
            return true;
    return false;
}

static bool parse_url(const char *url, struct lg_opts *o, char *err, size_t errlen)
{
    static const char scheme[] = "https://";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return fail(err, errlen, "--url must start with https:// (got '%s')", url);
    const char *auth = url + sizeof scheme - 1;
    size_t auth_len = strcspn(auth, "/?#");
    const char *rest = auth + auth_len;
    if (auth_len == 0 || has_ctl_or_space(rest))
        return fail(err, errlen, "--url '%s' has no host or contains spaces", url);

    const char *host = auth, *port_sep;
    size_t host_len;
    if (*auth == '[') { /* IPv6 literal: the port separator comes after ']' */
        const char *close = memchr(auth, ']', auth_len);
        if (close == NULL)
            return fail(err, errlen, "--url '%s': unterminated '['", url);
        host = auth + 1;
        host_len = (size_t)(close - host);
        port_sep = close + 1 < rest ? close + 1 : NULL;
        if (port_sep != NULL && *port_sep != ':')
            return fail(err, errlen, "--url '%s': junk after ']'", url);
    } else {
        port_sep = memchr(auth, ':', auth_len);
        host_len = port_sep != NULL ? (size_t)(port_sep - auth) : auth_len;
    }
    const char *port = port_sep != NULL ? port_sep + 1 : "443";
    size_t port_len = port_sep != NULL ? (size_t)(rest - port) : 3;
    if (host_len == 0 || port_len == 0 || port_len > 5 || strspn(port, "0123456789") < port_len)
        return fail(err, errlen, "--url '%s': bad host or port", url);

    o->host = dup_range(host, host_len);
    o->port = dup_range(port, port_len);
    o->authority = dup_range(auth, auth_len);
    size_t path_len = strcspn(rest, "#"); /* the fragment never goes on the wire */
    if (path_len == 0 || rest[0] != '/') {
        o->path = malloc(path_len + 2);
        if (o->path != NULL)
            snprintf(o->path, path_len + 2, "/%.*s", (int)path_len, rest);
    } else {
        o->path = dup_range(rest, path_len);
    }
    if (o->host == NULL || o->port == NULL || o->authority == NULL || o->path == NULL)
        return fail(err, errlen, "out of memory");
    return true;
}

static bool parse_double(const char *flag, const char *v, double min, double *out, char *err,
                         size_t errlen)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < min)
        return fail(err, errlen, "%s: '%s' is not a number >= %g", flag, v, min);
    *out = d;
    return true;
}

static bool parse_ll(const char *flag, const char *v, long long min, long long max, long long *out,
                     char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max)
        return fail(err, errlen, "%s: '%s' is not an integer in [%lld, %lld]", flag, v, min, max);
    *out = n;
    return true;
}

static bool read_file(const char *path, struct lg_opts *o, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(err, errlen, "--body-file %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    bool bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fail(err, errlen, "--body-file %s: read failed", path);
    }
    o->body = buf;
    o->body_len = len;
    return true;
}

static bool check_header(const char *h, char *err, size_t errlen)
{
    const char *colon = strchr(h, ':');
    if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL)
        return fail(err, errlen, "--header '%s' is not 'Name: value'", h);
    for (const char *p = h; p < colon; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return fail(err, errlen, "--header '%s': bad character in the name", h);
    return true;
}

static bool check_method(const char *m, char *err, size_t errlen)
{
    if (*m == '\0' ||
        strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_") != strlen(m))
        return fail(err, errlen, "--method '%s' is not a method name", m);
    return true;
}

static const char *const value_flags[] = {
    "--url",           "--cacert",        "--cert",   "--key",           "--connections",
    "--duration",      "--requests",      "--warmup", "--timeout",       "--method",
    "--body",          "--body-file",     "--header", "--path-template", "--index-start",
    "--index-modulo",  "--expect-status", "--max-latencies",
};

static bool is_value_flag(const char *flag)
{
    for (size_t i = 0; i < sizeof value_flags / sizeof *value_flags; i++)
        if (strcmp(flag, value_flags[i]) == 0)
            return true;
    return false;
}

/* One flag with its value. Returns false with err set when the value is bad. */
static bool apply_flag(const char *flag, const char *v, struct lg_opts *o, char *err, size_t errlen,
                       bool *body_seen)
{
    long long n;
    if (strcmp(flag, "--url") == 0)
        return o->host == NULL ? parse_url(v, o, err, errlen)
                               : fail(err, errlen, "--url given twice");
    if (strcmp(flag, "--cacert") == 0)
        return o->cacert = v, true;
    if (strcmp(flag, "--cert") == 0)
        return o->cert = v, true;
    if (strcmp(flag, "--key") == 0)
        return o->key = v, true;
    if (strcmp(flag, "--connections") == 0) {
        if (!parse_ll(flag, v, 1, LG_MAX_CONNECTIONS, &n, err, errlen))
            return false;
        return o->connections = (int)n, true;
    }
    if (strcmp(flag, "--duration") == 0)
        return parse_double(flag, v, 0.001, &o->duration_s, err, errlen);
    if (strcmp(flag, "--requests") == 0)
        return parse_ll(flag, v, 1, 1000000000LL, &o->requests, err, errlen);
    if (strcmp(flag, "--warmup") == 0)
        return parse_double(flag, v, 0, &o->warmup_s, err, errlen);
    if (strcmp(flag, "--timeout") == 0)
        return parse_double(flag, v, 0.001, &o->timeout_s, err, errlen);
    if (strcmp(flag, "--method") == 0)
        return o->method = v, check_method(v, err, errlen);
    if (strcmp(flag, "--body") == 0 || strcmp(flag, "--body-file") == 0) {
        if (*body_seen)
            return fail(err, errlen, "give --body or --body-file once");
        *body_seen = true;
        if (strcmp(flag, "--body-file") == 0)
            return read_file(v, o, err, errlen);
        o->body_len = strlen(v);
        o->body = dup_range(v, o->body_len);
        return o->body != NULL || fail(err, errlen, "out of memory");
    }
    if (strcmp(flag, "--header") == 0) {
        if (o->header_count == LG_MAX_HEADERS)
            return fail(err, errlen, "at most %d --header flags", LG_MAX_HEADERS);
        o->headers[o->header_count++] = v;
        return check_header(v, err, errlen);
    }
    if (strcmp(flag, "--path-template") == 0) {
        if (v[0] != '/' || has_ctl_or_space(v))
            return fail(err, errlen, "--path-template '%s' must start with / and have no spaces",
                        v);
        return o->path_template = v, true;
    }
    if (strcmp(flag, "--index-start") == 0)
        return parse_ll(flag, v, 0, 1000000000000000LL, &o->index_start, err, errlen);
    if (strcmp(flag, "--index-modulo") == 0)
        return parse_ll(flag, v, 1, 1000000000000000LL, &o->index_modulo, err, errlen);
    if (strcmp(flag, "--expect-status") == 0) {
        if (!parse_ll(flag, v, 100, 599, &n, err, errlen))
            return false;
        return o->expect_status = (int)n, true;
    }
    if (strcmp(flag, "--max-latencies") == 0) {
        if (!parse_ll(flag, v, 1, 1000000000LL, &n, err, errlen))
            return false;
        return o->max_latencies = (size_t)n, true;
    }
    return fail(err, errlen, "unknown flag %s", flag); /* value_flags and this disagree */
}

/* The combinations no single flag can check. */
static bool check_together(const struct lg_opts *o, char *err, size_t errlen)
{
    if (o->host == NULL)
        return fail(err, errlen, "--url is required");
    if (o->cacert == NULL)
        return fail(err, errlen, "--cacert is required");
    if ((o->cert == NULL) != (o->key == NULL))
        return fail(err, errlen, "--cert and --key go together");
    if ((o->duration_s > 0) == (o->requests > 0))
        return fail(err, errlen, "give exactly one of --duration or --requests");
    return true;
}

bool opts_parse(int argc, char **argv, struct lg_opts *o, char *err, size_t errlen)
{
    *o = (struct lg_opts){.connections = 1, .timeout_s = 30, .method = "GET"};
    bool body_seen = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return o->help = true;
        if (strcmp(arg, "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0)
            return fail(err, errlen, "unexpected argument '%s'", arg);
        /* Both "--flag value" and "--flag=value". */
        char flag[64];
        const char *eq = strchr(arg, '=');
        const char *value;
        if (eq != NULL) {
            snprintf(flag, sizeof flag, "%.*s", (int)(eq - arg), arg);
            value = eq + 1;
        } else {
            snprintf(flag, sizeof flag, "%s", arg);
            value = i + 1 < argc ? argv[++i] : NULL;
        }
        if (!is_value_flag(flag))
            return fail(err, errlen, "unknown flag %s", flag);
        if (value == NULL)
            return fail(err, errlen, "%s needs a value", flag);
        if (!apply_flag(flag, value, o, err, errlen, &body_seen))
            return false;
    }
    return check_together(o, err, errlen);
}

long long opts_index(const struct lg_opts *o, long long n)
{
    return o->index_start + (o->index_modulo > 0 ? n % o->index_modulo : n);
}

void opts_free(struct lg_opts *o)
{
    free(o->host);
    free(o->port);
    free(o->authority);
    free(o->path);
    free(o->body);
    *o = (struct lg_opts){0};
}
