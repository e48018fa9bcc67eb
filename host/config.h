/* SPDX-License-Identifier: Apache-2.0 */
/* Command-line flags -> struct host_config. Every flag is declared once in
 * config.c (name, default, help); the host reads the typed fields below and
 * the Lua side receives every flag as a string (config_flag_count/_name/_value). */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "bindings/log.h"

struct host_config {
    int secure_port;
    const char *bind_address;
    const char *tls_cert_file;
    const char *tls_private_key_file;
    const char *client_ca_file;               /* NULL: none */
    const char *requestheader_client_ca_file; /* NULL: none */
    const char *lua_dir;
    const char *providers_dir;
    bool log_json;
    enum log_level log_level;
    long max_requests_inflight;
    size_t max_request_body_bytes;
    size_t max_header_bytes;
    long max_connections;
    double idle_connection_timeout; /* seconds */
    double request_read_timeout;    /* seconds */
    double shutdown_timeout;        /* seconds */
    double lua_state_idle_timeout;  /* seconds */
    double tls_reload_interval;     /* seconds */
};

enum config_result { CONFIG_OK, CONFIG_EXIT_SUCCESS, CONFIG_EXIT_USAGE };

/// Parses argv into cfg. Prints --help/--version output (CONFIG_EXIT_SUCCESS)
/// or one error line naming the flag (CONFIG_EXIT_USAGE) itself.
enum config_result config_parse(int argc, char **argv, struct host_config *cfg);

/// Checks that every file named by a flag can be read; on failure writes one
/// line naming the flag and the path into err and returns false.
bool config_check_files(const struct host_config *cfg, char *err, size_t errlen);

/// Parses a Go-style duration ("90s", "5m", "1h30m", "250ms", "1.5s") into
/// seconds. Returns false on anything else, or a negative value.
bool config_parse_duration(const char *text, double *seconds);

/// Parses a size with an optional binary suffix ("65536", "64Ki", "1Mi").
bool config_parse_size(const char *text, size_t *bytes);

/// The flags as strings, for the Lua side (config.flags in Lua).
size_t config_flag_count(void);
const char *config_flag_name(size_t index);
const char *config_flag_value(size_t index); /* NULL when unset and no default */

#endif
