/* SPDX-License-Identifier: Apache-2.0 */
/* host.http: an HTTP(S) client on libcurl (one easy handle per client, so connections are reused).
 * Misuse raises; a failed transfer returns nil, message, code (timeout|connect|tls|too_large|io).
 */
#define _GNU_SOURCE /* memfd_create, memmem */
#include "bindings/bindings.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define CLIENT_MT "host.http.Client"
#define FN_NEW "host.http.new"
#define FN_REQUEST "host.http.request"
#define FN_CLOSE "host.http.close"
#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_BODY ((size_t)16 * 1024 * 1024)
#define MAX_TIMEOUT_S 1e6              /* keeps seconds * 1000 far inside a long */
#define HEADER_LIMIT ((size_t)1 << 20) /* a response head this big is abuse, not data */

/* Curl's TLS material by path: a file the caller named, or /proc/self/fd/N of a memfd holding a
 * PEM string (the GnuTLS flavour of libcurl ignores or refuses the *_BLOB options). */
enum { TLS_CA, TLS_CERT, TLS_KEY, TLS_SLOTS };

typedef struct {
    char *data;
    size_t len, cap, limit;
    int overflow; /* a write would have passed limit */
} http_buf;

typedef struct {
    CURL *curl; /* NULL once closed */
    char *paths[TLS_SLOTS];
    int fds[TLS_SLOTS]; /* memfds behind paths, -1 if the path is the caller's file */
    int insecure;
    long connect_timeout_ms, timeout_ms;
    size_t max_body;
    /* Per-request state lives here, not on the C stack, so a raise (bad argument, out of memory
     * while building the result) never leaks it: the next request or close frees it. */
    struct curl_slist *req_headers;
    http_buf head, body;
    char errbuf[CURL_ERROR_SIZE];
} http_client;

typedef struct {
    const char *method, *url, *body; /* body is anchored on the Lua stack during the transfer */
    size_t body_len;
    int has_body;
    int fresh_connection; /* never on a reused connection (see parse_request) */
    long connect_timeout_ms, timeout_ms;
} http_request;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

/* Debian's libcurl also speaks SCP/SFTP through libssh2, and curl_global_init makes libssh2
 * initialise its OpenSSL backend: about 1.5 MiB of resident pages in a process that allows only
 * http and https (CURLOPT_PROTOCOLS_STR). Initialising libssh2 first without crypto makes curl's
 * own call a reference count. libssh2 is found only if libcurl already loaded it. */
static void skip_ssh_crypto_init(void)
{
    void *ssh = dlopen("libssh2.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (ssh == NULL)
        return;
    int (*ssh_init)(int) = (int (*)(int))dlsym(ssh, "libssh2_init");
    enum { LIBSSH2_INIT_NO_CRYPTO = 1 }; /* from libssh2.h, stable since libssh2 1.2.5 */
    if (ssh_init != NULL)
        ssh_init(LIBSSH2_INIT_NO_CRYPTO);
    dlclose(ssh); /* drops only our reference: libcurl keeps it loaded */
}

/* curl_global_init is not thread-safe and the host opens this module in many Lua states. */
static void global_init(void)
{
    skip_ssh_crypto_init();
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- growable buffers, filled by curl callbacks (which must never raise) ---- */

static void buf_reset(http_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->overflow = 0;
}

static int buf_append(http_buf *b, const char *p, size_t n)
{
    if (n > b->limit - b->len) {
        b->overflow = 1;
        return 0;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap = cap > b->limit / 2 ? b->limit : cap * 2;
        char *data = realloc(b->data, cap);
        if (data == NULL)
            return 0;
        b->data = data;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return buf_append(ud, p, size * n) ? size * n : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    http_buf *head = ud;
    size_t len = size * n;
    /* A status line starts another response (after a 1xx or a proxy CONNECT): keep the last. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
        head->len = 0;
    return buf_append(head, p, len) ? len : 0;
}

/* ---- client lifetime ---- */

static void client_reset_last(http_client *c)
{
    curl_slist_free_all(c->req_headers);
    c->req_headers = NULL;
    buf_reset(&c->head);
    buf_reset(&c->body);
}

static void client_release(http_client *c)
{
    if (c->curl != NULL) {
        curl_easy_cleanup(c->curl);
        c->curl = NULL;
    }
    client_reset_last(c);
    for (int i = 0; i < TLS_SLOTS; i++) {
        free(c->paths[i]);
        c->paths[i] = NULL;
        if (c->fds[i] >= 0)
            close(c->fds[i]);
        c->fds[i] = -1;
    }
}

static http_client *check_client(lua_State *L, const char *fn)
{
    http_client *c = luaL_testudata(L, 1, CLIENT_MT);
    if (c == NULL)
        luaL_error(L, "%s: expected a host.http.Client as self (use client:method(...))", fn);
    return c;
}

/* ---- argument checks ---- */

static void check_keys(lua_State *L, int t, const char *const *known, const char *fn)
{
    lua_pushnil(L);
    while (lua_next(L, t) != 0) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: option names must be strings", fn);
        const char *key = lua_tostring(L, -1);
        const char *const *k = known;
        while (*k != NULL && strcmp(*k, key) != 0)
            k++;
        if (*k == NULL)
            luaL_error(L, "%s: unknown option '%s'", fn, key);
    }
}

static const char *check_string(lua_State *L, int idx, const char *fn, const char *key, size_t *len)
{
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s: '%s' must be a string", fn, key);
    return lua_tolstring(L, idx, len);
}

/* A string curl takes as a C string: an embedded NUL would silently cut it. */
static const char *check_cstring(lua_State *L, int idx, const char *fn, const char *key)
{
    size_t len;
    const char *s = check_string(L, idx, fn, key, &len);
    if (strlen(s) != len)
        luaL_error(L, "%s: '%s' must not contain NUL", fn, key);
    return s;
}

/* Reads t[key] as seconds into milliseconds; keeps *ms when the field is nil. */
static void opt_seconds(lua_State *L, int t, const char *fn, const char *key, long *ms)
{
    if (lua_getfield(L, t, key) != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "%s: '%s' must be a number of seconds", fn, key);
        double s = lua_tonumber(L, -1);
        if (!(s > 0 && s <= MAX_TIMEOUT_S))
            luaL_error(L, "%s: '%s' must be > 0 and <= %f seconds", fn, key, MAX_TIMEOUT_S);
        *ms = (long)(s * 1000.0);
        if (*ms < 1)
            *ms = 1;
    }
    lua_pop(L, 1);
}

/* ---- http.new ---- */

static const char *const new_keys[] = {"ca_file",
                                       "ca_pem",
                                       "client_cert_file",
                                       "client_key_file",
                                       "client_cert_pem",
                                       "client_key_pem",
                                       "insecure_skip_verify",
                                       "connect_timeout",
                                       "timeout",
                                       "max_response_bytes",
                                       NULL};

static void client_hold_pem(lua_State *L, http_client *c, int slot, const char *key)
{
    size_t len;
    const char *pem = check_string(L, -1, FN_NEW, key, &len);
    /* Catches a path passed as PEM; the text itself never goes into a message (keys). */
    if (memmem(pem, len, "-----BEGIN ", 11) == NULL)
        luaL_error(L, "%s: '%s' is not PEM text (no -----BEGIN line)", FN_NEW, key);
    c->fds[slot] = memfd_create("host.http.pem", MFD_CLOEXEC);
    if (c->fds[slot] < 0)
        luaL_error(L, "%s: cannot hold '%s' in memory: %s", FN_NEW, key, strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t n = write(c->fds[slot], pem + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            luaL_error(L, "%s: cannot hold '%s' in memory: %s", FN_NEW, key, strerror(errno));
        off += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", c->fds[slot]);
    c->paths[slot] = strdup(path);
    if (c->paths[slot] == NULL)
        luaL_error(L, "%s: out of memory", FN_NEW);
}

static void client_set_tls_source(lua_State *L, http_client *c, int slot, const char *file_key,
                                  const char *pem_key)
{
    int has_file = lua_getfield(L, 1, file_key) != LUA_TNIL;
    int has_pem = lua_getfield(L, 1, pem_key) != LUA_TNIL;
    if (has_file && has_pem)
        luaL_error(L, "%s: set '%s' or '%s', not both", FN_NEW, file_key, pem_key);
    if (has_pem) {
        client_hold_pem(L, c, slot, pem_key);
    } else if (has_file) {
        c->paths[slot] = strdup(check_cstring(L, -2, FN_NEW, file_key));
        if (c->paths[slot] == NULL)
            luaL_error(L, "%s: out of memory", FN_NEW);
    }
    lua_pop(L, 2);
}

static void client_set_limits(lua_State *L, http_client *c)
{
    opt_seconds(L, 1, FN_NEW, "connect_timeout", &c->connect_timeout_ms);
    opt_seconds(L, 1, FN_NEW, "timeout", &c->timeout_ms);
    if (lua_getfield(L, 1, "max_response_bytes") != LUA_TNIL) {
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1)
            luaL_error(L, "%s: 'max_response_bytes' must be an integer >= 1", FN_NEW);
        c->max_body = (size_t)lua_tointeger(L, -1);
    }
    c->body.limit = c->max_body;
    if (lua_getfield(L, 1, "insecure_skip_verify") != LUA_TNIL) {
        if (!lua_isboolean(L, -1))
            luaL_error(L, "%s: 'insecure_skip_verify' must be a boolean", FN_NEW);
        c->insecure = lua_toboolean(L, -1);
    }
    lua_pop(L, 2);
}

static int http_new(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    } else if (!lua_istable(L, 1)) {
        return luaL_error(L, "%s: options must be a table", FN_NEW);
    }
    lua_settop(L, 1);
    check_keys(L, 1, new_keys, FN_NEW);
    http_client *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    for (int i = 0; i < TLS_SLOTS; i++)
        c->fds[i] = -1;
    c->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    c->max_body = DEFAULT_MAX_BODY;
    c->head.limit = HEADER_LIMIT;
    luaL_setmetatable(L, CLIENT_MT); /* from here __gc frees whatever c holds, even on a raise */
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        return luaL_error(L, "%s: curl_easy_init failed", FN_NEW);
    client_set_limits(L, c);
    client_set_tls_source(L, c, TLS_CA, "ca_file", "ca_pem");
    client_set_tls_source(L, c, TLS_CERT, "client_cert_file", "client_cert_pem");
    client_set_tls_source(L, c, TLS_KEY, "client_key_file", "client_key_pem");
    if (c->paths[TLS_KEY] != NULL && c->paths[TLS_CERT] == NULL)
        return luaL_error(L, "%s: a client key needs a client certificate", FN_NEW);
    return 1;
}

/* ---- client:request ---- */

static const char *const request_keys[] = {
    "method", "url", "headers", "body", "timeout", "connect_timeout", "fresh_connection", NULL,
};
static const char *const methods[] = {
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", NULL,
};

static int is_token(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= 32 || ch >= 127 || strchr("\"(),/:;<=>?@[\\]{}", ch) != NULL)
            return 0;
    }
    return 1;
}

static void add_header(lua_State *L, http_client *c, const char *line)
{
    struct curl_slist *list = curl_slist_append(c->req_headers, line);
    if (list == NULL)
        luaL_error(L, "%s: out of memory", FN_REQUEST);
    c->req_headers = list;
}

/* Checks and adds one name/value pair (at -2/-1). Messages never quote a value: tokens. */
static void add_user_header(lua_State *L, http_client *c, int *seen_expect, int *seen_type)
{
    size_t nlen = 0, vlen;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
    if (name == NULL || !is_token(name, nlen))
        luaL_error(L, "%s: header names must be non-empty HTTP tokens", FN_REQUEST);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: header '%s' value must be a string", FN_REQUEST, name);
    const char *value = lua_tolstring(L, -1, &vlen);
    if (strcspn(value, "\r\n") != vlen)
        luaL_error(L, "%s: header '%s' value contains CR, LF or NUL", FN_REQUEST, name);
    if (strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0)
        luaL_error(L, "%s: header '%s' is set from 'body'", FN_REQUEST, name);
    *seen_expect |= strcasecmp(name, "expect") == 0;
    *seen_type |= strcasecmp(name, "content-type") == 0;
    /* Curl drops "Name:" (empty value) from the request; "Name;" sends it empty. */
    if (vlen == 0)
        lua_pushfstring(L, "%s;", name);
    else
        lua_pushfstring(L, "%s: %s", name, value);
    add_header(L, c, lua_tostring(L, -1));
    lua_pop(L, 1);
}

static void build_headers(lua_State *L, http_client *c, int t)
{
    int seen_expect = 0, seen_type = 0;
    if (lua_type(L, t) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, t) != 0) {
            add_user_header(L, c, &seen_expect, &seen_type);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, t)) {
        luaL_error(L, "%s: 'headers' must be a table", FN_REQUEST);
    }
    /* No 100-continue round trip; no form content type invented for a POST body. */
    if (!seen_expect)
        add_header(L, c, "Expect:");
    if (!seen_type)
        add_header(L, c, "Content-Type:");
}

/* Reads the request table at 2; leaves url, method, body, headers at 3..6 (body stays anchored
 * there for curl, which does not copy it). */
static void parse_request(lua_State *L, http_client *c, http_request *r)
{
    if (!lua_istable(L, 2))
        luaL_error(L, "%s: argument must be a table", FN_REQUEST);
    lua_settop(L, 2);
    check_keys(L, 2, request_keys, FN_REQUEST);
    lua_getfield(L, 2, "url");
    r->url = check_cstring(L, 3, FN_REQUEST, "url");
    if (strncasecmp(r->url, "http://", 7) != 0 && strncasecmp(r->url, "https://", 8) != 0)
        luaL_error(L, "%s: 'url' must be an http:// or https:// URL", FN_REQUEST);
    r->method = "GET";
    if (lua_getfield(L, 2, "method") != LUA_TNIL) {
        const char *const *m = methods;
        r->method = check_cstring(L, 4, FN_REQUEST, "method");
        while (*m != NULL && strcmp(*m, r->method) != 0)
            m++;
        if (*m == NULL)
            luaL_error(L, "%s: 'method' must be one of GET HEAD POST PUT PATCH DELETE OPTIONS",
                       FN_REQUEST);
    }
    r->has_body = lua_getfield(L, 2, "body") != LUA_TNIL;
    r->body = r->has_body ? check_string(L, 5, FN_REQUEST, "body", &r->body_len) : NULL;
    if (r->has_body && strcmp(r->method, "HEAD") == 0)
        luaL_error(L, "%s: a HEAD request has no 'body'", FN_REQUEST);
    r->connect_timeout_ms = c->connect_timeout_ms;
    r->timeout_ms = c->timeout_ms;
    opt_seconds(L, 2, FN_REQUEST, "connect_timeout", &r->connect_timeout_ms);
    opt_seconds(L, 2, FN_REQUEST, "timeout", &r->timeout_ms);
    lua_getfield(L, 2, "headers");
    build_headers(L, c, 6);
    /* libcurl sends a request again, by itself, when a reused connection turns out to be dead
     * before any answer arrives; the server may have acted on the first (a reboot, twice). A
     * request on a new connection is never re-sent. */
    int type = lua_getfield(L, 2, "fresh_connection");
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        luaL_error(L, "%s: 'fresh_connection' must be a boolean", FN_REQUEST);
    r->fresh_connection = lua_toboolean(L, -1);
}

/* curl_easy_setopt is variadic (no wrapper function): stop at the first refusal. */
#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        CURLcode rc_ = curl_easy_setopt((h), (opt), (val));                                        \
        if (rc_ != CURLE_OK)                                                                       \
            return rc_;                                                                            \
    } while (0)

static CURLcode apply_transport(http_client *c, const http_request *r)
{
    CURL *h = c->curl;
    SETOPT(h, CURLOPT_NOSIGNAL, 1L); /* the host is multi-threaded: no alarm() for timeouts */
    SETOPT(h, CURLOPT_URL, r->url);
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(h, CURLOPT_FRESH_CONNECT, r->fresh_connection ? 1L : 0L);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
    SETOPT(h, CURLOPT_TIMEOUT_MS, r->timeout_ms);
    SETOPT(h, CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(h, CURLOPT_HEADERDATA, &c->head);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(h, CURLOPT_WRITEDATA, &c->body);
    SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body); /* early by Content-Length */
    SETOPT(h, CURLOPT_HTTPHEADER, c->req_headers);
    return CURLE_OK;
}

static CURLcode apply_tls(http_client *c)
{
    CURL *h = c->curl;
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, c->insecure ? 0L : 1L);
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, c->insecure ? 0L : 2L);
    if (c->paths[TLS_CA] != NULL) {
        SETOPT(h, CURLOPT_CAINFO, c->paths[TLS_CA]);
        SETOPT(h, CURLOPT_CAPATH, (char *)NULL); /* trust this bundle only, not the system's */
    }
    if (c->paths[TLS_CERT] != NULL) {
        SETOPT(h, CURLOPT_SSLCERT, c->paths[TLS_CERT]);
        SETOPT(h, CURLOPT_SSLCERTTYPE, "PEM");
    }
    if (c->paths[TLS_KEY] != NULL) {
        SETOPT(h, CURLOPT_SSLKEY, c->paths[TLS_KEY]);
        SETOPT(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    return CURLE_OK;
}

static CURLcode apply_method(http_client *c, const http_request *r)
{
    CURL *h = c->curl;
    const char *m = r->method;
    if (strcmp(m, "HEAD") == 0) {
        SETOPT(h, CURLOPT_NOBODY, 1L);
        return CURLE_OK;
    }
    /* POST, PUT and PATCH always carry a body (maybe empty: Content-Length: 0). */
    if (r->has_body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
        SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        SETOPT(h, CURLOPT_POSTFIELDS, r->has_body ? r->body : "");
    } else {
        SETOPT(h, CURLOPT_HTTPGET, 1L);
    }
    /* Curl names POSTFIELDS transfers POST and the others GET: say so when that is wrong. */
    if (strcmp(m, "POST") != 0 && (strcmp(m, "GET") != 0 || r->has_body))
        SETOPT(h, CURLOPT_CUSTOMREQUEST, m);
    return CURLE_OK;
}

static const char *classify(const http_client *c, CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return "timeout";
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return "connect";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
        return "tls";
    case CURLE_FILESIZE_EXCEEDED:
        return "too_large";
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        /* In TLS 1.3 a server rejects our client certificate after curl's handshake is over:
         * curl sees GnuTLS's "A TLS fatal alert has been received" on the first read. */
        return strstr(c->errbuf, "TLS fatal alert") != NULL ? "tls" : "io";
    default:
        return c->body.overflow || c->head.overflow ? "too_large" : "io";
    }
}

/* nil, message, code. Curl's texts name hosts, ports and certificates, never our headers. */
static int push_failure(lua_State *L, http_client *c, CURLcode rc)
{
    const char *code = classify(c, rc);
    int head_too_large = c->head.overflow;
    client_reset_last(c);
    lua_pushnil(L);
    if (strcmp(code, "too_large") == 0 && head_too_large)
        lua_pushfstring(L, "%s: response headers larger than %d bytes", FN_REQUEST,
                        (int)HEADER_LIMIT);
    else if (strcmp(code, "too_large") == 0)
        lua_pushfstring(L, "%s: response body larger than max_response_bytes (%I)", FN_REQUEST,
                        (lua_Integer)c->max_body);
    else
        lua_pushfstring(L, "%s: %s%s%s", FN_REQUEST, curl_easy_strerror(rc),
                        c->errbuf[0] ? ": " : "", c->errbuf);
    lua_pushstring(L, code);
    return 3;
}

/* Sets headers[lower(name)] = value, joining repeats with ", ". Table at t. */
static void push_header_field(lua_State *L, int t, const char *name, size_t nlen, const char *val,
                              size_t vlen)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < nlen; i++)
        luaL_addchar(&b, (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]));
    luaL_pushresult(&b);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, t) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushlstring(L, val, vlen);
    } else {
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, val, vlen);
        lua_concat(L, 3);
    }
    lua_rawset(L, t);
}

/* Parses the final response's head (status line, then "Name: value" lines) into a new table. */
static void push_headers(lua_State *L, const char *p, size_t len)
{
    lua_newtable(L);
    int t = lua_gettop(L);
    const char *end = p + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol != NULL ? eol + 1 : end;
        const char *stop = eol != NULL ? eol : end;
        if (stop > p && stop[-1] == '\r')
            stop--;
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        /* Skips the status line, blank lines and obsolete folded continuations. */
        if (colon != NULL && colon > p && *p != ' ' && *p != '\t' &&
            !((size_t)(stop - p) >= 5 && memcmp(p, "HTTP/", 5) == 0)) {
            const char *v = colon + 1;
            while (v < stop && (*v == ' ' || *v == '\t'))
                v++;
            while (stop > v && (stop[-1] == ' ' || stop[-1] == '\t'))
                stop--;
            push_header_field(L, t, p, (size_t)(colon - p), v, (size_t)(stop - v));
        }
        p = next;
    }
}

static int push_response(lua_State *L, http_client *c)
{
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
    push_headers(L, c->head.data != NULL ? c->head.data : "", c->head.len);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, c->body.data != NULL ? c->body.data : "", c->body.len);
    lua_setfield(L, -2, "body");
    client_reset_last(c); /* the body now lives in Lua; do not keep up to 16 MiB twice */
    return 1;
}

static int client_request(lua_State *L)
{
    http_client *c = check_client(L, FN_REQUEST);
    if (c->curl == NULL)
        return luaL_error(L, "%s: client is closed", FN_REQUEST);
    http_request r = {0};
    client_reset_last(c);
    parse_request(L, c, &r);
    /* Reset forgets the last request's options but keeps the connection cache and TLS
     * sessions, so the next request to the same host reuses the connection. */
    curl_easy_reset(c->curl);
    c->errbuf[0] = '\0';
    CURLcode rc = apply_transport(c, &r);
    if (rc == CURLE_OK)
        rc = apply_tls(c);
    if (rc == CURLE_OK)
        rc = apply_method(c, &r);
    if (rc == CURLE_OK)
        rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK)
        return push_failure(L, c, rc);
    return push_response(L, c);
}

static int client_close(lua_State *L)
{
    client_release(check_client(L, FN_CLOSE));
    return 0;
}

static int client_gc(lua_State *L)
{
    client_release(check_client(L, "host.http.Client.__gc"));
    return 0;
}

static int client_tostring(lua_State *L)
{
    http_client *c = check_client(L, "host.http.Client.__tostring");
    lua_pushfstring(L, "host.http.Client (%s): %p", c->curl != NULL ? "open" : "closed", (void *)c);
    return 1;
}

static const luaL_Reg client_methods[] = {
    {"request", client_request},
    {"close", client_close},
    {NULL, NULL},
};

static const luaL_Reg client_metamethods[] = {
    {"__gc", client_gc},
    {"__close", client_gc},
    {"__index", NULL}, /* set to the methods table in luaopen_host_http */
    {"__tostring", client_tostring},
    {NULL, NULL},
};

static const luaL_Reg http_functions[] = {
    {"new", http_new},
    {NULL, NULL},
};

int luaopen_host_http(lua_State *L)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return luaL_error(L, "host.http: curl_global_init failed: %s",
                          curl_easy_strerror(global_rc));
    if (luaL_newmetatable(L, CLIENT_MT)) {
        luaL_setfuncs(L, client_metamethods, 0);
        luaL_newlib(L, client_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_newlib(L, http_functions);
    return 1;
}
