/* SPDX-License-Identifier: Apache-2.0 */
/* Flag table, parsing (--name=value or --name value), --help and --version,
 * and the defaults for the Lua directories (installed layout, else source tree). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_info.h"

enum flag_id {
    FLAG_SECURE_PORT,
    FLAG_BIND_ADDRESS,
    FLAG_TLS_CERT_FILE,
    FLAG_TLS_PRIVATE_KEY_FILE,
    FLAG_CLIENT_CA_FILE,
    FLAG_REQUESTHEADER_CLIENT_CA_FILE,
    FLAG_LUA_DIR,
    FLAG_PROVIDERS_DIR,
    FLAG_PROVIDER_INSTRUCTION_LIMIT,
    FLAG_PROVIDER_MEMORY_LIMIT,
    FLAG_LOG_FORMAT,
    FLAG_LOG_LEVEL,
    FLAG_MAX_REQUESTS_INFLIGHT,
    FLAG_MAX_REQUEST_BODY_BYTES,
    FLAG_MAX_HEADER_BYTES,
    FLAG_MAX_CONNECTIONS,
    FLAG_IDLE_CONNECTION_TIMEOUT,
    FLAG_REQUEST_READ_TIMEOUT,
    FLAG_SHUTDOWN_TIMEOUT,
    FLAG_LUA_STATE_IDLE_TIMEOUT,
    FLAG_TLS_RELOAD_INTERVAL,
    FLAG_KUBECONFIG,
    FLAG_CONTEXT,
    FLAG_KUBERNETES_API_TIMEOUT,
    FLAG_AUTHENTICATION_SKIP_LOOKUP,
    FLAG_AUTHENTICATION_TOLERATE_LOOKUP_FAILURE,
    FLAG_AUTHENTICATION_LOOKUP_INTERVAL,
    FLAG_AUTHENTICATION_TOKEN_WEBHOOK_CACHE_TTL,
    FLAG_REQUESTHEADER_ALLOWED_NAMES,
    FLAG_REQUESTHEADER_USERNAME_HEADERS,
    FLAG_REQUESTHEADER_GROUP_HEADERS,
    FLAG_REQUESTHEADER_EXTRA_HEADERS_PREFIX,
    FLAG_REQUESTHEADER_UID_HEADERS,
    FLAG_AUTHORIZATION_ALWAYS_ALLOW_PATHS,
    FLAG_AUTHORIZATION_CACHE_AUTHORIZED_TTL,
    FLAG_AUTHORIZATION_CACHE_UNAUTHORIZED_TTL,
    FLAG_NODE_NAME,
    FLAG_PROTECTED_NODES_SELECTOR,
    FLAG_RESTART_COOLDOWN,
    FLAG_RESTART_TIMEOUT,
    FLAG_LEASE_NAMESPACE,
    FLAG_COUNT
};

enum flag_kind { FLAG_VALUE, FLAG_BOOL, FLAG_DURATION, FLAG_SIZE, FLAG_NUMBER };

struct flag_def {
    const char *name;
    const char *default_value; /* NULL: unset */
    const char *help;
    enum flag_kind kind; /* FLAG_BOOL: "--name" alone means true; checked in config_parse */
    const char *env;     /* when the flag is absent: this environment variable, if set */
};

/* kube-apiserver's names where kube has one. Order is the order of --help. */
static const struct flag_def flag_defs[FLAG_COUNT] = {
    [FLAG_SECURE_PORT] = {"secure-port", "8443", "port to serve HTTPS on"},
    [FLAG_BIND_ADDRESS] = {"bind-address", "0.0.0.0",
                           "IP address to listen on (0.0.0.0 or :: for all)"},
    [FLAG_TLS_CERT_FILE] = {"tls-cert-file", NULL,
                            "serving certificate (PEM, may include intermediates); reloaded "
                            "when it changes"},
    [FLAG_TLS_PRIVATE_KEY_FILE] =
        {"tls-private-key-file", NULL,
         "private key of --tls-cert-file (PEM); reloaded when it changes"},
    [FLAG_CLIENT_CA_FILE] = {"client-ca-file", NULL,
                             "CA bundle that client certificates are verified against"},
    [FLAG_REQUESTHEADER_CLIENT_CA_FILE] = {"requestheader-client-ca-file", NULL,
                                           "CA bundle of the front-proxy (aggregator) client "
                                           "certificate"},
    [FLAG_LUA_DIR] = {"lua-dir", NULL,
                      "directory of the server's Lua modules (default: the installed "
                      "share/myapiserver/lua, else the source tree's lua/)"},
    [FLAG_PROVIDERS_DIR] = {"providers-dir", NULL,
                            "directory of the cloud provider scripts (default: beside --lua-dir)"},
    [FLAG_PROVIDER_INSTRUCTION_LIMIT] = {"provider-instruction-limit", "50000000",
                                         "Lua instructions one call into a provider script may "
                                         "run; beyond it the call fails (500) and its Lua state "
                                         "is replaced (0: no limit)",
                                         FLAG_NUMBER},
    [FLAG_PROVIDER_MEMORY_LIMIT] = {"provider-memory-limit", "32Mi",
                                    "memory one call into a provider script may add to its Lua "
                                    "state; beyond it the call fails (500) and the state is "
                                    "replaced (0: no limit)",
                                    FLAG_SIZE},
    [FLAG_LOG_FORMAT] = {"log-format", "text", "log line format: text or json"},
    [FLAG_LOG_LEVEL] = {"log-level", "info", "minimum log level: debug, info, warn or error"},
    [FLAG_MAX_REQUESTS_INFLIGHT] = {"max-requests-inflight", "400",
                                    "requests served at once; beyond it: 429 with Retry-After"},
    [FLAG_MAX_REQUEST_BODY_BYTES] = {"max-request-body-bytes", "1Mi",
                                     "largest request body accepted; beyond it: 413"},
    [FLAG_MAX_HEADER_BYTES] = {"max-header-bytes", "64Ki",
                               "memory for one request's line and headers; beyond it: 431"},
    [FLAG_MAX_CONNECTIONS] = {"max-connections", "1024", "open client connections at once"},
    [FLAG_IDLE_CONNECTION_TIMEOUT] = {"idle-connection-timeout", "90s",
                                      "close a connection idle for this long", FLAG_DURATION},
    [FLAG_REQUEST_READ_TIMEOUT] = {"request-read-timeout", "32s",
                                   "a request (line, headers, body) must have arrived this long "
                                   "after the connection opened, or after the previous answer plus "
                                   "--idle-connection-timeout; else the connection is closed",
                                   FLAG_DURATION},
    [FLAG_SHUTDOWN_TIMEOUT] = {"shutdown-timeout", "30s",
                               "on SIGTERM, how long in-flight requests may take to finish",
                               FLAG_DURATION},
    [FLAG_LUA_STATE_IDLE_TIMEOUT] = {"lua-state-idle-timeout", "30s",
                                     "close pooled Lua states unused for this long (one always "
                                     "stays), and let worker threads idle this long give back "
                                     "their stack pages, so memory goes back down after a burst",
                                     FLAG_DURATION},
    [FLAG_TLS_RELOAD_INTERVAL] = {"tls-reload-interval", "1s",
                                  "how often certificate and CA files are checked for changes",
                                  FLAG_DURATION},
    [FLAG_KUBECONFIG] = {"kubeconfig", NULL,
                         "kubeconfig for the Kubernetes API (default: in-cluster service "
                         "account, else $KUBECONFIG, else ~/.kube/config)"},
    [FLAG_CONTEXT] = {"context", NULL, "kubeconfig context to use (default: current-context)"},
    [FLAG_KUBERNETES_API_TIMEOUT] = {"kubernetes-api-timeout", "10s",
                                     "timeout of one request to the Kubernetes API; retries "
                                     "of a call stop after 3 times this",
                                     FLAG_DURATION},
    [FLAG_AUTHENTICATION_SKIP_LOOKUP] = {"authentication-skip-lookup", "false",
                                         "do not read kube-system/extension-apiserver-"
                                         "authentication; use the flags only",
                                         FLAG_BOOL},
    [FLAG_AUTHENTICATION_TOLERATE_LOOKUP_FAILURE] =
        {"authentication-tolerate-lookup-failure", "false",
         "start even if the authentication ConfigMap cannot be read (requests that need it "
         "are refused until it can)",
         FLAG_BOOL},
    [FLAG_AUTHENTICATION_LOOKUP_INTERVAL] = {"authentication-lookup-interval", "30s",
                                             "how often the authentication ConfigMap is re-read",
                                             FLAG_DURATION},
    [FLAG_AUTHENTICATION_TOKEN_WEBHOOK_CACHE_TTL] = {"authentication-token-webhook-cache-ttl",
                                                     "10s",
                                                     "how long TokenReview answers are cached",
                                                     FLAG_DURATION},
    [FLAG_REQUESTHEADER_ALLOWED_NAMES] = {"requestheader-allowed-names", NULL,
                                          "client certificate CNs allowed to send front-proxy "
                                          "headers, comma-separated (empty: any CN from the "
                                          "request-header CA)"},
    [FLAG_REQUESTHEADER_USERNAME_HEADERS] = {"requestheader-username-headers", "x-remote-user",
                                             "headers carrying the user name, comma-separated"},
    [FLAG_REQUESTHEADER_GROUP_HEADERS] = {"requestheader-group-headers", "x-remote-group",
                                          "headers carrying the groups, comma-separated"},
    [FLAG_REQUESTHEADER_EXTRA_HEADERS_PREFIX] = {"requestheader-extra-headers-prefix",
                                                 "x-remote-extra-",
                                                 "header prefixes carrying user extras, "
                                                 "comma-separated"},
    [FLAG_REQUESTHEADER_UID_HEADERS] = {"requestheader-uid-headers", NULL,
                                        "headers carrying the user UID, comma-separated"},
    [FLAG_AUTHORIZATION_ALWAYS_ALLOW_PATHS] = {"authorization-always-allow-paths",
                                               "/healthz,/readyz,/livez",
                                               "paths served without authentication or "
                                               "authorization (an entry ending in * is a prefix)"},
    [FLAG_AUTHORIZATION_CACHE_AUTHORIZED_TTL] = {"authorization-webhook-cache-authorized-ttl",
                                                 "10s", "how long an allowed decision is cached",
                                                 FLAG_DURATION},
    [FLAG_AUTHORIZATION_CACHE_UNAUTHORIZED_TTL] = {"authorization-webhook-cache-unauthorized-ttl",
                                                   "10s", "how long a denied decision is cached",
                                                   FLAG_DURATION},
    [FLAG_NODE_NAME] = {"node-name", NULL,
                        "the node this server runs on, which it refuses to restart (default: "
                        "$MY_NODE_NAME, set from the Downward API)",
                        FLAG_VALUE, "MY_NODE_NAME"},
    [FLAG_PROTECTED_NODES_SELECTOR] = {"protected-nodes-selector",
                                       "node-role.kubernetes.io/control-plane",
                                       "label selector of nodes that are never restarted (empty: "
                                       "none)"},
    [FLAG_RESTART_COOLDOWN] = {"restart-cooldown", "5m",
                               "after a restart, how long further restarts of that node are "
                               "refused (409)",
                               FLAG_DURATION},
    [FLAG_RESTART_TIMEOUT] = {"restart-timeout", "15m",
                              "how long a requested restart may take before it shows as TimedOut",
                              FLAG_DURATION},
    [FLAG_LEASE_NAMESPACE] = {"lease-namespace", "default",
                              "namespace of the per-node restart Leases (default: $POD_NAMESPACE, "
                              "else default)",
                              FLAG_VALUE, "POD_NAMESPACE"},
};

static const char *flag_values[FLAG_COUNT];
static char lua_dir_buffer[PATH_MAX];
static char providers_dir_buffer[PATH_MAX];

static void print_help(FILE *out)
{
    fprintf(out, "Usage: myapiserver [flags]\n\n"
                 "Kubernetes aggregated API server for infraops.michael.io/v1:\n"
                 "restart the cloud VM behind a node, governed by RBAC.\n\nFlags:\n");
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const struct flag_def *f = &flag_defs[i];
        fprintf(out, "  --%s\n        %s", f->name, f->help);
        if (f->default_value != NULL)
            fprintf(out, " (default \"%s\")", f->default_value);
        fputc('\n', out);
    }
    fprintf(out, "  --help\n        print this help and exit\n"
                 "  --version\n        print the version and exit\n");
}

static int find_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        if (strlen(flag_defs[i].name) == len && strncmp(flag_defs[i].name, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* Stores one "--name=value" or "--name value"; returns how many argv entries it used, 0 on
 * error (after printing the error line). */
static int take_flag(int argc, char **argv, int i)
{
    const char *arg = argv[i] + 2;
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    int id = find_flag(arg, name_len);
    if (id < 0) {
        fprintf(stderr, "myapiserver: unknown flag: --%.*s (see --help)\n", (int)name_len, arg);
        return 0;
    }
    if (eq != NULL) {
        flag_values[id] = eq + 1;
        return 1;
    }
    if (flag_defs[id].kind == FLAG_BOOL) {
        flag_values[id] = "true"; /* "--name" alone; "--name=false" to turn it off */
        return 1;
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "myapiserver: flag needs an argument: --%s\n", flag_defs[id].name);
        return 0;
    }
    flag_values[id] = argv[i + 1];
    return 2;
}

static bool parse_long(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool bad_value(enum flag_id id, const char *expected)
{
    fprintf(stderr, "myapiserver: invalid value \"%s\" for flag --%s: %s\n", flag_values[id],
            flag_defs[id].name, expected);
    return false;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The installed layout (<prefix>/bin/myapiserver, <prefix>/share/myapiserver/lua) is found
 * relative to the executable, so a relocated install works; else the source tree. */
static const char *default_lua_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            int written =
                snprintf(lua_dir_buffer, sizeof lua_dir_buffer, "%s/../share/myapiserver/lua", exe);
            if (written > 0 && (size_t)written < sizeof lua_dir_buffer && is_dir(lua_dir_buffer))
                return lua_dir_buffer;
        }
    }
    if (is_dir(MYAPISERVER_INSTALL_DATA_DIR "/lua"))
        return MYAPISERVER_INSTALL_DATA_DIR "/lua";
    return MYAPISERVER_SOURCE_LUA_DIR;
}

static const char *default_providers_dir(const char *lua_dir)
{
    snprintf(providers_dir_buffer, sizeof providers_dir_buffer, "%s/../providers", lua_dir);
    return providers_dir_buffer;
}

static bool fill_paths(struct host_config *cfg)
{
    cfg->tls_cert_file = flag_values[FLAG_TLS_CERT_FILE];
    cfg->tls_private_key_file = flag_values[FLAG_TLS_PRIVATE_KEY_FILE];
    cfg->client_ca_file = flag_values[FLAG_CLIENT_CA_FILE];
    cfg->requestheader_client_ca_file = flag_values[FLAG_REQUESTHEADER_CLIENT_CA_FILE];
    if (cfg->tls_cert_file == NULL || cfg->tls_private_key_file == NULL) {
        fprintf(stderr, "myapiserver: --tls-cert-file and --tls-private-key-file are required "
                        "(hack/gen.sh makes a pair)\n");
        return false;
    }
    if (flag_values[FLAG_LUA_DIR] == NULL)
        flag_values[FLAG_LUA_DIR] = default_lua_dir();
    if (flag_values[FLAG_PROVIDERS_DIR] == NULL)
        flag_values[FLAG_PROVIDERS_DIR] = default_providers_dir(flag_values[FLAG_LUA_DIR]);
    cfg->lua_dir = flag_values[FLAG_LUA_DIR];
    cfg->providers_dir = flag_values[FLAG_PROVIDERS_DIR];
    return true;
}

static bool fill_log(struct host_config *cfg)
{
    const char *format = flag_values[FLAG_LOG_FORMAT];
    if (strcmp(format, "json") != 0 && strcmp(format, "text") != 0)
        return bad_value(FLAG_LOG_FORMAT, "want text or json");
    cfg->log_json = strcmp(format, "json") == 0;
    if (!log_level_parse(flag_values[FLAG_LOG_LEVEL], &cfg->log_level))
        return bad_value(FLAG_LOG_LEVEL, "want debug, info, warn or error");
    return true;
}

static bool fill_duration(enum flag_id id, double min, double *out)
{
    if (!config_parse_duration(flag_values[id], out) || *out < min)
        return bad_value(id, "want a duration such as 500ms, 30s or 5m");
    return true;
}

static bool fill_limits(struct host_config *cfg)
{
    long port = 0;
    if (!parse_long(flag_values[FLAG_SECURE_PORT], 0, 65535, &port))
        return bad_value(FLAG_SECURE_PORT, "want a port number 0..65535 (0: any free port)");
    cfg->secure_port = (int)port;
    cfg->bind_address = flag_values[FLAG_BIND_ADDRESS];
    if (!parse_long(flag_values[FLAG_MAX_REQUESTS_INFLIGHT], 1, 1000000,
                    &cfg->max_requests_inflight))
        return bad_value(FLAG_MAX_REQUESTS_INFLIGHT, "want a number >= 1");
    if (!parse_long(flag_values[FLAG_MAX_CONNECTIONS], 1, 100000, &cfg->max_connections))
        return bad_value(FLAG_MAX_CONNECTIONS, "want a number 1..100000");
    if (!config_parse_size(flag_values[FLAG_MAX_REQUEST_BODY_BYTES], &cfg->max_request_body_bytes))
        return bad_value(FLAG_MAX_REQUEST_BODY_BYTES, "want a size such as 65536 or 1Mi");
    if (!config_parse_size(flag_values[FLAG_MAX_HEADER_BYTES], &cfg->max_header_bytes) ||
        cfg->max_header_bytes < 4096)
        return bad_value(FLAG_MAX_HEADER_BYTES, "want a size of at least 4Ki");
    double kubernetes_api_timeout = 0; /* used by the Lua side; checked here */
    return fill_duration(FLAG_KUBERNETES_API_TIMEOUT, 0.1, &kubernetes_api_timeout) &&
           fill_duration(FLAG_IDLE_CONNECTION_TIMEOUT, 1, &cfg->idle_connection_timeout) &&
           fill_duration(FLAG_REQUEST_READ_TIMEOUT, 1, &cfg->request_read_timeout) &&
           fill_duration(FLAG_SHUTDOWN_TIMEOUT, 0, &cfg->shutdown_timeout) &&
           fill_duration(FLAG_LUA_STATE_IDLE_TIMEOUT, 1, &cfg->lua_state_idle_timeout) &&
           fill_duration(FLAG_TLS_RELOAD_INTERVAL, 0.05, &cfg->tls_reload_interval);
}

/* Flags the host does not use itself are still checked here, so a typo fails
 * start-up with one line instead of surprising the Lua side later. */
static bool check_kinds(void)
{
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        double seconds = 0;
        if (flag_values[i] == NULL)
            continue;
        if (flag_defs[i].kind == FLAG_BOOL && strcmp(flag_values[i], "true") != 0 &&
            strcmp(flag_values[i], "false") != 0)
            return bad_value((enum flag_id)i, "want true or false");
        if (flag_defs[i].kind == FLAG_DURATION && !config_parse_duration(flag_values[i], &seconds))
            return bad_value((enum flag_id)i, "want a duration such as 500ms, 30s or 5m");
        size_t bytes = 0;
        if (flag_defs[i].kind == FLAG_SIZE && !config_parse_size(flag_values[i], &bytes))
            return bad_value((enum flag_id)i, "want a size such as 65536, 64Ki or 32Mi");
        long count = 0;
        if (flag_defs[i].kind == FLAG_NUMBER && !parse_long(flag_values[i], 0, LONG_MAX, &count))
            return bad_value((enum flag_id)i, "want a whole number >= 0");
    }
    return true;
}

enum config_result config_parse(int argc, char **argv, struct host_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const char *from_env = flag_defs[i].env != NULL ? getenv(flag_defs[i].env) : NULL;
        flag_values[i] =
            from_env != NULL && from_env[0] != '\0' ? from_env : flag_defs[i].default_value;
    }
    for (int i = 1; i < argc;) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            print_help(stdout);
            return CONFIG_EXIT_SUCCESS;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("myapiserver %s\n", MYAPISERVER_VERSION);
            return CONFIG_EXIT_SUCCESS;
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "myapiserver: unexpected argument: %s (see --help)\n", argv[i]);
            return CONFIG_EXIT_USAGE;
        }
        int used = take_flag(argc, argv, i);
        if (used == 0)
            return CONFIG_EXIT_USAGE;
        i += used;
    }
    if (!check_kinds() || !fill_log(cfg) || !fill_limits(cfg) || !fill_paths(cfg))
        return CONFIG_EXIT_USAGE;
    return CONFIG_OK;
}

static bool check_readable(enum flag_id id, bool want_dir, char *err, size_t errlen)
{
    const char *path = flag_values[id];
    if (path == NULL)
        return true;
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        snprintf(err, errlen, "--%s: cannot read %s: %s", flag_defs[id].name, path,
                 strerror(errno));
        return false;
    }
    if (want_dir != S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--%s: %s is %s", flag_defs[id].name, path,
                 want_dir ? "not a directory" : "a directory");
        return false;
    }
    return true;
}

bool config_check_files(const struct host_config *cfg, char *err, size_t errlen)
{
    (void)cfg; /* the paths live in flag_values, filled by config_parse */
    static const enum flag_id files[] = {FLAG_TLS_CERT_FILE, FLAG_TLS_PRIVATE_KEY_FILE,
                                         FLAG_CLIENT_CA_FILE, FLAG_REQUESTHEADER_CLIENT_CA_FILE};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!check_readable(files[i], false, err, errlen))
            return false;
    }
    return check_readable(FLAG_KUBECONFIG, false, err, errlen) &&
           check_readable(FLAG_LUA_DIR, true, err, errlen) &&
           check_readable(FLAG_PROVIDERS_DIR, true, err, errlen);
}

static double unit_seconds(const char *unit, size_t len)
{
    static const struct {
        const char *name;
        double seconds;
    } units[] = {{"ns", 1e-9}, {"us", 1e-6}, {"ms", 1e-3}, {"s", 1}, {"m", 60}, {"h", 3600}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].name) == len && strncmp(units[i].name, unit, len) == 0)
            return units[i].seconds;
    }
    return -1;
}

/* One "<decimal><unit>" term: digits with at most one '.', then a unit. Parsed by
 * hand because strtod also takes signs, blanks, hex and exponents. */
static const char *parse_duration_term(const char *p, double *seconds)
{
    double value = 0, scale = 1;
    bool digits = false, dot = false;
    for (; (*p >= '0' && *p <= '9') || (*p == '.' && !dot); p++) {
        if (*p == '.') {
            dot = true;
            continue;
        }
        digits = true;
        if (dot)
            value += (*p - '0') * (scale /= 10);
        else
            value = value * 10 + (*p - '0');
    }
    const char *unit = p;
    while (*p >= 'a' && *p <= 'z')
        p++;
    double unit_scale = unit_seconds(unit, (size_t)(p - unit));
    if (!digits || unit_scale < 0 || !isfinite(value * unit_scale))
        return NULL;
    *seconds = value * unit_scale;
    return p;
}

bool config_parse_duration(const char *text, double *seconds)
{
    if (strcmp(text, "0") == 0) {
        *seconds = 0;
        return true;
    }
    double total = 0;
    const char *p = text;
    do {
        double term = 0;
        p = parse_duration_term(p, &term);
        if (p == NULL)
            return false;
        total += term;
    } while (*p != '\0');
    *seconds = total;
    return true;
}

bool config_parse_size(const char *text, size_t *bytes)
{
    char *end = NULL;
    errno = 0;
    if (text[0] < '0' || text[0] > '9')
        return false;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text)
        return false;
    unsigned long long scale = 1;
    if (strcmp(end, "Ki") == 0)
        scale = 1ULL << 10;
    else if (strcmp(end, "Mi") == 0)
        scale = 1ULL << 20;
    else if (strcmp(end, "Gi") == 0)
        scale = 1ULL << 30;
    else if (*end != '\0')
        return false;
    if (v > SIZE_MAX / scale)
        return false;
    *bytes = (size_t)(v * scale);
    return true;
}

size_t config_flag_count(void)
{
    return FLAG_COUNT;
}

const char *config_flag_name(size_t index)
{
    return index < FLAG_COUNT ? flag_defs[index].name : NULL;
}

const char *config_flag_value(size_t index)
{
    return index < FLAG_COUNT ? flag_values[index] : NULL;
}
