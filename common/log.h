/* log_: one logfmt line per event on stderr (SPEC §7).
 *
 * Line shape: time=<RFC3339 UTC ms> level=<lvl> bin=<binary> event=<event> <caller's key=value...>
 * Each line is written with a single write(2), so lines from several threads never interleave.
 *
 * Secrets: every string given to log_add_secret() is replaced by "***" in every line before it
 * is written, whatever the caller formatted (defence in depth; callers must still not log
 * secrets). Personal data (names, documents, phones) must not be logged at info; use
 * log_enabled(LOG_DEBUG) and a masked form.
 *
 * Ownership: log_ copies everything it is given; it owns no caller memory. Not async-signal-safe.
 */
#ifndef PIPELINE_LOG_H
#define PIPELINE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level_t;

/* Sets the binary name printed as bin= and the threshold. Safe to call again (tests). */
void log_init(const char *binary, log_level_t level);

/* Parses "error|warn|info|debug" (case-insensitive). Returns 0, or -1 when unknown. */
int log_level_parse(const char *text, log_level_t *out);

/* Name of a level ("error", ...). */
const char *log_level_name(log_level_t level);

/* True when a line of this level would be written. */
bool log_enabled(log_level_t level);

/* Registers a secret to scrub from every later line, as is and in the forms an API may echo it
 * back in (log_secret_forms()). Empty or NULL is ignored; secrets shorter than 4 characters are
 * ignored too (scrubbing "a" would mangle every line). Copies the text.
 * Returns 0, or -1 when the table (96 entries: 32 secrets in 3 forms) is full. */
int log_add_secret(const char *secret);

/* The obvious transforms of a secret an API may echo back (a key quoted from a query string, a
 * credential in base64): percent-encoded (RFC 3986 unreserved characters kept, uppercase hex)
 * into pct and base64 (RFC 4648, padded) into b64, each NUL-terminated. A form that equals the
 * secret, or does not fit its buffer, is returned empty (secrets are short; a longer one is
 * scrubbed as is only). Used by the logger and the dead-letter writer (kafka_dlq_). */
void log_secret_forms(const char *secret, char *pct, size_t pct_size, char *b64,
                      size_t b64_size);

/* Forgets every registered secret (tests). */
void log_clear_secrets(void);

/* Writes one line. `fmt` formats the caller's own key=value pairs (may be NULL or "").
 * Values that may hold spaces, quotes or '=' must go through log_quote(). */
void log_msg(log_level_t level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vmsg(log_level_t level, const char *event, const char *fmt, va_list ap);

/* Writes `value` into `buf` as a logfmt value: bare when it only holds safe characters, else
 * double-quoted with \" \\ \n \t escaped and control bytes as \xNN. Always NUL-terminates;
 * truncates (ending in "...\"") when `size` is too small. Returns buf, so it can sit inside a
 * log_msg() argument list. NULL value prints as "". */
const char *log_quote(char *buf, size_t size, const char *value);

/* Test hook: redirect lines to this fd instead of stderr (2). */
void log_set_fd(int fd);

#endif
