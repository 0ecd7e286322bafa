/* log_: logfmt lines on stderr with secret scrubbing. See log.h. */
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"

#define LOG_LINE_MAX 8192
#define LOG_SECRETS_MAX 96 /* each secret takes up to 3: as is, percent-encoded, base64 */
#define LOG_SECRET_MIN_LEN 4

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_binary[64] = "pipeline";
static log_level_t log_threshold = LOG_INFO;
static int log_fd = 2;
static char *log_secrets[LOG_SECRETS_MAX];
static size_t log_secret_count;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *binary, log_level_t level)
{
    pthread_mutex_lock(&log_lock);
    snprintf(log_binary, sizeof log_binary, "%s", binary ? binary : "pipeline");
    log_threshold = level;
    pthread_mutex_unlock(&log_lock);
}

int log_level_parse(const char *text, log_level_t *out)
{
    if (!text)
        return -1;
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(log_level_t level)
{
    if ((int)level < 0 || (size_t)level >= sizeof level_names / sizeof level_names[0])
        return "unknown";
    return level_names[level];
}

bool log_enabled(log_level_t level) { return level <= log_threshold; }

/* Registers one exact text (see log_add_secret). */
static int add_one(const char *secret)
{
    if (!secret || strlen(secret) < LOG_SECRET_MIN_LEN)
        return 0;
    int rc = 0;
    size_t slen = strlen(secret);
    pthread_mutex_lock(&log_lock);
    /* Registering the same secret again (config reloaded, tests) must not fill the table. */
    for (size_t i = 0; i < log_secret_count; i++) {
        if (strcmp(log_secrets[i], secret) == 0)
            goto out;
    }
    if (log_secret_count >= LOG_SECRETS_MAX) {
        rc = -1;
    } else {
        char *copy = strdup(secret);
        if (!copy) {
            rc = -1;
        } else {
            /* Keep the table longest first: a secret that contains a shorter one must be
             * scrubbed whole, before the shorter one breaks it up and leaves its rest visible. */
            size_t pos = log_secret_count;
            while (pos > 0 && strlen(log_secrets[pos - 1]) < slen) {
                log_secrets[pos] = log_secrets[pos - 1];
                pos--;
            }
            log_secrets[pos] = copy;
            log_secret_count++;
        }
    }
out:
    pthread_mutex_unlock(&log_lock);
    return rc;
}

/* The obvious transforms an API may echo back (a key quoted from a query string, a header
 * value in base64): "<secret>" percent-encoded (RFC 3986 unreserved kept) and base64 (RFC
 * 4648, padded). Both write a NUL-terminated text into out; -1 when it does not fit. */
static int percent_encode(const char *in, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (o + (keep ? 1 : 3) >= size)
            return -1;
        if (keep) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return 0;
}

static int base64_encode(const char *in, char *out, size_t size)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    if ((n + 2) / 3 * 4 + 1 > size)
        return -1;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tb[(v >> 18) & 63];
        out[o++] = tb[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tb[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tb[v & 63] : '=';
    }
    out[o] = '\0';
    return 0;
}

void log_secret_forms(const char *secret, char *pct, size_t pct_size, char *b64,
                      size_t b64_size)
{
    if (percent_encode(secret, pct, pct_size) != 0 || strcmp(pct, secret) == 0)
        pct[0] = '\0';
    if (base64_encode(secret, b64, b64_size) != 0)
        b64[0] = '\0';
}

int log_add_secret(const char *secret)
{
    if (!secret || strlen(secret) < LOG_SECRET_MIN_LEN)
        return 0;
    int rc = add_one(secret);
    char pct[1024], b64[1024];
    log_secret_forms(secret, pct, sizeof pct, b64, sizeof b64);
    if (pct[0] && add_one(pct) != 0)
        rc = -1;
    if (b64[0] && add_one(b64) != 0)
        rc = -1;
    return rc;
}

void log_clear_secrets(void)
{
    pthread_mutex_lock(&log_lock);
    for (size_t i = 0; i < log_secret_count; i++) {
        free(log_secrets[i]);
        log_secrets[i] = NULL;
    }
    log_secret_count = 0;
    pthread_mutex_unlock(&log_lock);
}

void log_set_fd(int fd)
{
    pthread_mutex_lock(&log_lock);
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
}

/* Replaces each registered secret in `line` with "***" in place. Called with log_lock held.
 * "***" is never longer than a secret (min 4), so the line only shrinks. */
static void scrub_secrets(char *line)
{
    for (size_t i = 0; i < log_secret_count; i++) {
        const char *secret = log_secrets[i];
        size_t slen = strlen(secret);
        char *hit;
        while ((hit = strstr(line, secret)) != NULL) {
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + slen, strlen(hit + slen) + 1);
        }
    }
}

void log_vmsg(log_level_t level, const char *event, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    char line[LOG_LINE_MAX];
    char stamp[CLOCK_RFC3339_SIZE];
    clock_rfc3339(clock_wall_ms(), stamp, sizeof stamp);

    pthread_mutex_lock(&log_lock);
    int n = snprintf(line, sizeof line, "time=%s level=%s bin=%s event=%s", stamp,
                     log_level_name(level), log_binary, event ? event : "message");
    size_t used = n > 0 ? (size_t)n : 0;
    if (used >= sizeof line)
        used = sizeof line - 1;
    if (fmt && fmt[0] && used + 1 < sizeof line) {
        line[used++] = ' ';
        int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
        if (m > 0)
            used += (size_t)m;
        if (used >= sizeof line)
            used = sizeof line - 1;
    }
    line[used] = '\0';
    scrub_secrets(line);
    used = strlen(line);
    if (used + 1 < sizeof line) {
        line[used++] = '\n';
    } else {
        line[sizeof line - 2] = '\n';
        used = sizeof line - 1;
    }
    size_t off = 0;
    while (off < used) {
        ssize_t w = write(log_fd, line + off, used - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        off += (size_t)w;
    }
    pthread_mutex_unlock(&log_lock);
}

void log_msg(log_level_t level, const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, event, fmt, ap);
    va_end(ap);
}

static bool is_bare_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '=' && c != '\\';
}

const char *log_quote(char *buf, size_t size, const char *value)
{
    if (size == 0)
        return buf;
    if (!value)
        value = "";
    bool bare = value[0] != '\0';
    for (const unsigned char *p = (const unsigned char *)value; *p && bare; p++)
        bare = is_bare_char(*p);
    if (bare) {
        int n = snprintf(buf, size, "%s", value);
        if (n >= 0 && (size_t)n >= size && size > 4)
            memcpy(buf + size - 4, "...", 4);
        return buf;
    }
    size_t o = 0;
    /* Reserve room for the closing quote, a possible "..." and the NUL. */
    size_t limit = size > 6 ? size - 5 : 0;
    if (o < limit)
        buf[o++] = '"';
    bool truncated = false;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        char esc[5];
        size_t elen;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            elen = 2;
        } else if (*p == '\n') {
            memcpy(esc, "\\n", 2);
            elen = 2;
        } else if (*p == '\t') {
            memcpy(esc, "\\t", 2);
            elen = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            static const char hex[] = "0123456789abcdef";
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[*p >> 4];
            esc[3] = hex[*p & 15];
            elen = 4;
        } else {
            esc[0] = (char)*p;
            elen = 1;
        }
        if (o + elen > limit) {
            truncated = true;
            break;
        }
        memcpy(buf + o, esc, elen);
        o += elen;
    }
    if (truncated && o + 3 < size) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    if (o + 1 < size)
        buf[o++] = '"';
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}
