/* SPDX-License-Identifier: Apache-2.0 */
/* ctest for config.h: duration and size parsing, and config_parse on argv arrays. */
#include "config.h"

#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stdout, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stdout, __VA_ARGS__);                                                          \
            fputc('\n', stdout);                                                                   \
        }                                                                                          \
    } while (0)

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void check_duration_ok(const char *text, double want)
{
    double got = -12345;
    bool ok = config_parse_duration(text, &got);
    CHECK(ok, "config_parse_duration(\"%s\") rejected", text);
    if (ok)
        CHECK(fabs(got - want) < 1e-9, "config_parse_duration(\"%s\") = %g, want %g", text, got,
              want);
}

static void check_duration_bad(const char *text)
{
    double got = -12345;
    bool ok = config_parse_duration(text, &got);
    CHECK(!ok, "config_parse_duration(\"%s\") accepted as %g", text, got);
}

static void test_duration(void)
{
    check_duration_ok("90s", 90);
    check_duration_ok("5m", 300);
    check_duration_ok("1h30m", 5400);
    check_duration_ok("250ms", 0.25);
    check_duration_ok("1.5s", 1.5);
    check_duration_ok("0", 0);
    check_duration_ok("1h1m1s", 3661);
    check_duration_ok("500us", 0.0005);
    check_duration_ok("100ns", 1e-7);
    check_duration_ok("0s", 0);

    check_duration_bad("");
    check_duration_bad("5");
    check_duration_bad("-1s");
    check_duration_bad("+1s");
    check_duration_bad("5x");
    check_duration_bad("s");
    check_duration_bad("1e400s");
    check_duration_bad("1h30");
    check_duration_bad("5 m");
    check_duration_bad("5S");
    check_duration_bad("1d");
    /* The contract: false for a negative value. strtod skips leading blanks,
     * so the '-' check in config_parse_duration does not see this sign. */
    check_duration_bad(" -1s");
}

static void check_size_ok(const char *text, size_t want)
{
    size_t got = 12345;
    bool ok = config_parse_size(text, &got);
    CHECK(ok, "config_parse_size(\"%s\") rejected", text);
    if (ok)
        CHECK(got == want, "config_parse_size(\"%s\") = %zu, want %zu", text, got, want);
}

static void check_size_bad(const char *text)
{
    size_t got = 12345;
    bool ok = config_parse_size(text, &got);
    CHECK(!ok, "config_parse_size(\"%s\") accepted as %zu", text, got);
}

static void test_size(void)
{
    check_size_ok("65536", 65536);
    check_size_ok("64Ki", 65536);
    check_size_ok("1Mi", 1048576);
    check_size_ok("1Gi", (size_t)1 << 30);
    check_size_ok("0", 0);
    check_size_ok("3Ki", 3072);

    check_size_bad("");
    check_size_bad("-1");
    check_size_bad("1Ki5");
    check_size_bad("1KB");
    check_size_bad("1K");
    check_size_bad("1ki");
    check_size_bad("Ki");
    check_size_bad(" 1");
    check_size_bad("1 ");
    check_size_bad("99999999999999999999Gi");
    check_size_bad("99999999999999999999");
    if (SIZE_MAX == UINT64_MAX)
        check_size_bad("18446744073709551615Gi"); /* fits unsigned long long, not * 2^30 */
}

/* config_parse prints help, version and errors: send them to /dev/null. */
static int saved_out = -1, saved_err = -1;

static void quiet_begin(void)
{
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(STDOUT_FILENO);
    saved_err = dup(STDERR_FILENO);
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        close(null);
    }
}

static void quiet_end(void)
{
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
}

static enum config_result parse(int argc, char **argv, struct host_config *cfg)
{
    quiet_begin();
    enum config_result r = config_parse(argc, argv, cfg);
    quiet_end();
    return r;
}

static const char *flag_value(const char *name)
{
    for (size_t i = 0; i < config_flag_count(); i++) {
        if (strcmp(config_flag_name(i), name) == 0)
            return config_flag_value(i);
    }
    return NULL;
}

static void test_defaults(void)
{
    char *argv[] = {"myapiserver", "--tls-cert-file=/c.crt", "--tls-private-key-file=/c.key"};
    struct host_config cfg;
    enum config_result r = parse(ARGC(argv), argv, &cfg);
    CHECK(r == CONFIG_OK, "defaults: result %d", (int)r);
    if (r != CONFIG_OK)
        return;
    CHECK(cfg.secure_port == 8443, "secure_port %d", cfg.secure_port);
    CHECK(cfg.bind_address != NULL && strcmp(cfg.bind_address, "0.0.0.0") == 0, "bind %s",
          cfg.bind_address ? cfg.bind_address : "(null)");
    CHECK(cfg.max_requests_inflight == 400, "inflight %ld", cfg.max_requests_inflight);
    CHECK(cfg.max_request_body_bytes == 1048576, "body %zu", cfg.max_request_body_bytes);
    CHECK(cfg.max_header_bytes == 65536, "header %zu", cfg.max_header_bytes);
    CHECK(cfg.max_connections == 1024, "connections %ld", cfg.max_connections);
    CHECK(fabs(cfg.idle_connection_timeout - 90) < 1e-9, "idle %g", cfg.idle_connection_timeout);
    CHECK(fabs(cfg.shutdown_timeout - 30) < 1e-9, "shutdown %g", cfg.shutdown_timeout);
    CHECK(fabs(cfg.tls_reload_interval - 1) < 1e-9, "reload %g", cfg.tls_reload_interval);
    CHECK(!cfg.log_json, "log_json set by default");
    CHECK(cfg.log_level == LOG_LEVEL_INFO, "log_level %d", (int)cfg.log_level);
    CHECK(strcmp(cfg.tls_cert_file, "/c.crt") == 0, "cert %s", cfg.tls_cert_file);
    CHECK(strcmp(cfg.tls_private_key_file, "/c.key") == 0, "key %s", cfg.tls_private_key_file);
    CHECK(cfg.client_ca_file == NULL, "client_ca_file %s", cfg.client_ca_file);
    CHECK(cfg.requestheader_client_ca_file == NULL, "requestheader %s",
          cfg.requestheader_client_ca_file);
    CHECK(cfg.lua_dir != NULL && cfg.lua_dir[0] != '\0', "lua_dir empty");
    CHECK(cfg.providers_dir != NULL && cfg.providers_dir[0] != '\0', "providers_dir empty");

    CHECK(config_flag_count() > 0, "no flags");
    CHECK(config_flag_name(config_flag_count()) == NULL, "name past the end");
    CHECK(config_flag_value(config_flag_count()) == NULL, "value past the end");
    const char *port = flag_value("secure-port");
    CHECK(port != NULL && strcmp(port, "8443") == 0, "flag secure-port = %s",
          port ? port : "(null)");
    CHECK(flag_value("client-ca-file") == NULL, "client-ca-file has a value");
    const char *lua_dir = flag_value("lua-dir");
    CHECK(lua_dir != NULL && strcmp(lua_dir, cfg.lua_dir) == 0, "flag lua-dir differs");
}

static void test_flag_forms(void)
{
    struct host_config cfg;
    char *eq[] = {"myapiserver", "--secure-port=9443", "--tls-cert-file=/c",
                  "--tls-private-key-file=/k"};
    enum config_result r = parse(ARGC(eq), eq, &cfg);
    CHECK(r == CONFIG_OK && cfg.secure_port == 9443, "--secure-port=9443: %d, port %d", (int)r,
          cfg.secure_port);

    char *sep[] = {"myapiserver", "--secure-port",          "9443", "--tls-cert-file",
                   "/c",          "--tls-private-key-file", "/k"};
    r = parse(ARGC(sep), sep, &cfg);
    CHECK(r == CONFIG_OK && cfg.secure_port == 9443, "--secure-port 9443: %d, port %d", (int)r,
          cfg.secure_port);
    CHECK(r != CONFIG_OK || strcmp(cfg.tls_cert_file, "/c") == 0, "separate cert value");

    /* State resets on every call: the port is back to its default. */
    char *plain[] = {"myapiserver", "--tls-cert-file=/c", "--tls-private-key-file=/k"};
    r = parse(ARGC(plain), plain, &cfg);
    CHECK(r == CONFIG_OK && cfg.secure_port == 8443, "reset: %d, port %d", (int)r, cfg.secure_port);
    const char *port = flag_value("secure-port");
    CHECK(port != NULL && strcmp(port, "8443") == 0, "reset flag value %s", port ? port : "(null)");

    char *more[] = {"myapiserver",
                    "--tls-cert-file=/c",
                    "--tls-private-key-file=/k",
                    "--client-ca-file=/ca",
                    "--requestheader-client-ca-file=/fp",
                    "--log-format=json",
                    "--log-level=debug",
                    "--max-request-body-bytes=2Mi",
                    "--max-requests-inflight=7",
                    "--idle-connection-timeout=2m",
                    "--tls-reload-interval=250ms",
                    "--bind-address=::",
                    "--secure-port=0"};
    r = parse(ARGC(more), more, &cfg);
    CHECK(r == CONFIG_OK, "all flags: result %d", (int)r);
    if (r == CONFIG_OK) {
        CHECK(strcmp(cfg.client_ca_file, "/ca") == 0, "client ca %s", cfg.client_ca_file);
        CHECK(strcmp(cfg.requestheader_client_ca_file, "/fp") == 0, "fp %s",
              cfg.requestheader_client_ca_file);
        CHECK(cfg.log_json, "log_json not set");
        CHECK(cfg.log_level == LOG_LEVEL_DEBUG, "level %d", (int)cfg.log_level);
        CHECK(cfg.max_request_body_bytes == 2097152, "body %zu", cfg.max_request_body_bytes);
        CHECK(cfg.max_requests_inflight == 7, "inflight %ld", cfg.max_requests_inflight);
        CHECK(fabs(cfg.idle_connection_timeout - 120) < 1e-9, "idle %g",
              cfg.idle_connection_timeout);
        CHECK(fabs(cfg.tls_reload_interval - 0.25) < 1e-9, "reload %g", cfg.tls_reload_interval);
        CHECK(strcmp(cfg.bind_address, "::") == 0, "bind %s", cfg.bind_address);
        CHECK(cfg.secure_port == 0, "port %d", cfg.secure_port);
    }
}

static void check_result(enum config_result want, int argc, char **argv, const char *what)
{
    struct host_config cfg;
    enum config_result r = parse(argc, argv, &cfg);
    CHECK(r == want, "%s: result %d, want %d", what, (int)r, (int)want);
}

#define EXPECT(want, what, ...)                                                                    \
    do {                                                                                           \
        char *argv_[] = {"myapiserver", __VA_ARGS__};                                              \
        check_result(want, ARGC(argv_), argv_, what);                                              \
    } while (0)

#define CERTS "--tls-cert-file=/c", "--tls-private-key-file=/k"

static void test_usage_errors(void)
{
    EXPECT(CONFIG_EXIT_USAGE, "unknown flag", CERTS, "--no-such-flag=1");
    EXPECT(CONFIG_EXIT_USAGE, "unknown flag without value", "--no-such-flag", CERTS);
    EXPECT(CONFIG_EXIT_USAGE, "port 70000", CERTS, "--secure-port=70000");
    EXPECT(CONFIG_EXIT_USAGE, "port -1", CERTS, "--secure-port=-1");
    EXPECT(CONFIG_EXIT_USAGE, "port abc", CERTS, "--secure-port=abc");
    EXPECT(CONFIG_EXIT_USAGE, "port empty", CERTS, "--secure-port=");
    EXPECT(CONFIG_EXIT_USAGE, "port 80x", CERTS, "--secure-port=80x");
    EXPECT(CONFIG_EXIT_USAGE, "missing --tls-cert-file", "--tls-private-key-file=/k");
    EXPECT(CONFIG_EXIT_USAGE, "missing --tls-private-key-file", "--tls-cert-file=/c");
    EXPECT(CONFIG_EXIT_USAGE, "--log-format=xml", CERTS, "--log-format=xml");
    EXPECT(CONFIG_EXIT_USAGE, "--log-level=loud", CERTS, "--log-level=loud");
    EXPECT(CONFIG_EXIT_USAGE, "flag without its value", CERTS, "--secure-port");
    EXPECT(CONFIG_EXIT_USAGE, "positional argument", CERTS, "serve");
    EXPECT(CONFIG_EXIT_USAGE, "single dash", CERTS, "-v");
    EXPECT(CONFIG_EXIT_USAGE, "inflight 0", CERTS, "--max-requests-inflight=0");
    EXPECT(CONFIG_EXIT_USAGE, "body size 1KB", CERTS, "--max-request-body-bytes=1KB");
    EXPECT(CONFIG_EXIT_USAGE, "header bytes below 4Ki", CERTS, "--max-header-bytes=1024");
    EXPECT(CONFIG_EXIT_USAGE, "idle below 1s", CERTS, "--idle-connection-timeout=500ms");
    EXPECT(CONFIG_EXIT_USAGE, "reload interval below 50ms", CERTS, "--tls-reload-interval=10ms");
    EXPECT(CONFIG_EXIT_USAGE, "bad duration", CERTS, "--shutdown-timeout=5");
    EXPECT(CONFIG_EXIT_USAGE, "--help=1", CERTS, "--help=1");
    EXPECT(CONFIG_EXIT_USAGE, "instruction limit -1", CERTS, "--provider-instruction-limit=-1");
    EXPECT(CONFIG_EXIT_USAGE, "instruction limit 5e7", CERTS, "--provider-instruction-limit=5e7");
    EXPECT(CONFIG_EXIT_USAGE, "memory limit 32MB", CERTS, "--provider-memory-limit=32MB");
    EXPECT(CONFIG_EXIT_USAGE, "kubernetes timeout 0", CERTS, "--kubernetes-api-timeout=0");
    EXPECT(CONFIG_OK, "limits off", CERTS, "--provider-instruction-limit=0",
           "--provider-memory-limit=0");

    EXPECT(CONFIG_EXIT_SUCCESS, "--help", "--help");
    EXPECT(CONFIG_EXIT_SUCCESS, "-h", "-h");
    EXPECT(CONFIG_EXIT_SUCCESS, "--version", "--version");
    EXPECT(CONFIG_EXIT_SUCCESS, "--help needs no certificates", "--secure-port=1", "--help");
    EXPECT(CONFIG_EXIT_SUCCESS, "--version after flags", CERTS, "--version");

    /* After errors and --help, a good command line still parses. */
    EXPECT(CONFIG_OK, "good after bad", CERTS);
}

int main(void)
{
    test_duration();
    test_size();
    test_defaults();
    test_flag_forms();
    test_usage_errors();
    if (failures != 0) {
        printf("config_test: %d failure(s)\n", failures);
        return 1;
    }
    printf("config_test: ok\n");
    return 0;
}
