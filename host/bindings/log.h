/* SPDX-License-Identifier: Apache-2.0 */
/* The process log, shared by the C host and the Lua module `host.log`:
 * one line per event on stderr, as text or as JSON, filtered by level. */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/// Sets the minimum level written and the format (JSON lines or text). Call
/// once at start-up, before any thread logs. Defaults: info, text.
void log_configure(enum log_level min_level, bool json);

/// Parses "debug", "info", "warn"/"warning", "error"; false if unknown.
bool log_level_parse(const char *name, enum log_level *out);

/// True if a line at this level would be written.
bool log_enabled(enum log_level level);

/// Writes one line: a message and key/value string pairs. `fields` holds
/// key, value, key, value, ..., NULL (it may be NULL itself). A NULL value
/// omits its pair. Lines from several threads never interleave.
void log_write(enum log_level level, const char *message, const char *const *fields);

#endif
