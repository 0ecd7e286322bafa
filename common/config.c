/* config_: environment-only configuration with all-at-once validation. See config.h. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "json.h"

extern char **environ;

#define SECRET_FILE_MAX (64 * 1024)

/* ---- the variable table: one row per variable, drives defaults, --help and printing -------- */

#define V_SECRET 1u /* masked, registered with log_, NAME_FILE accepted */

typedef struct {
    const char *name;
    unsigned group;       /* CONFIG_NEED_* bits that read it; 0 = every binary */
    unsigned required_by; /* CONFIG_NEED_* bits that make it mandatory */
    unsigned flags;
    const char *def;      /* default text (NULL = no default) */
    const char *help;     /* what it is / what is expected */
} var_def_t;

#define DEFAULT_TICKET_TAGS "40049716=Instala\xc3\xa7\xc3\xa3o,40049715=Entrega,40054183=Manuten\xc3\xa7\xc3\xa3o"

static const var_def_t VARS[] = {
    {"KAFKA_BOOTSTRAP_SERVERS", CONFIG_NEED_KAFKA, CONFIG_NEED_KAFKA, 0, NULL,
     "Kafka brokers, host:port[,host:port...]"},
    {"KAFKA_SASL_PASSWORD", CONFIG_NEED_KAFKA, 0, V_SECRET, NULL,
     "SASL password (librdkafka sasl.password); or KAFKA_SASL_PASSWORD_FILE"},
    {"TOPIC_PREFIX", CONFIG_NEED_KAFKA, 0, 0, "",
     "prefix of every topic and consumer group, used verbatim (e.g. acme.)"},
    {"TOPIC_PARTITIONS", CONFIG_NEED_KAFKA, 0, 0, "6", "partitions of topics created at start"},
    {"MONGODB_URI", CONFIG_NEED_MONGO, CONFIG_NEED_MONGO, V_SECRET, NULL,
     "mongodb://[user[:password]@]host[:port][/database][?options]; database defaults to "
     "pipeline; or MONGODB_URI_FILE"},
    {"MONGODB_PASSWORD", CONFIG_NEED_MONGO, 0, V_SECRET, NULL,
     "password inserted into MONGODB_URI (which then names a user but no password); or "
     "MONGODB_PASSWORD_FILE"},
    {"PLOOMES_BASE_URL", CONFIG_NEED_PLOOMES, 0, 0, "https://api2.ploomes.com",
     "Ploomes API base URL (http or https)"},
    {"PLOOMES_USER_KEY", CONFIG_NEED_PLOOMES, CONFIG_NEED_PLOOMES, V_SECRET, NULL,
     "Ploomes User-Key; or PLOOMES_USER_KEY_FILE"},
    {"PLOOMES_RATE_PER_MIN", CONFIG_NEED_PLOOMES, 0, 0, "100",
     "max Ploomes requests per 60 s across all processes, spaced 60/N s apart (documented quota 120)"},
    {"PLOOMES_SCAN_QUOTA_SHARE", CONFIG_NEED_PRODUCER, 0, 0, "0.5",
     "share (0..1] of PLOOMES_RATE_PER_MIN that ploomes-producer may use"},
    {"PLOOMES_403_PAUSE_MS", CONFIG_NEED_PLOOMES, 0, 0, "30000",
     "a Ploomes 403 pauses the shared limiter this long"},
    {"PLOOMES_ENTITIES", CONFIG_NEED_PRODUCER, 0, 0, "contacts,tasks,interactions",
     "Ploomes entities the producer polls (comma-separated subset)"},
    {"MILVUS_BASE_URL", CONFIG_NEED_MILVUS, 0, 0, "https://apiintegracao.milvus.com.br/api",
     "Milvus API base URL (http or https)"},
    {"MILVUS_TOKEN", CONFIG_NEED_MILVUS, CONFIG_NEED_MILVUS, V_SECRET, NULL,
     "Milvus API token; or MILVUS_TOKEN_FILE"},
    {"MILVUS_RATE_PER_MIN", CONFIG_NEED_MILVUS, 0, 0, "60",
     "max Milvus requests per 60 s across all processes, spaced 60/N s apart"},
    {"MILVUS_SCAN_QUOTA_SHARE", CONFIG_NEED_PRODUCER, 0, 0, "0.25",
     "share (0..1] of MILVUS_RATE_PER_MIN that milvus-producer's scans may use"},
    {"MILVUS_MAX_PAGES", CONFIG_NEED_PRODUCER, 0, 0, "1000",
     "pages per milvus-producer pass; a pass past it fails"},
    {"MILVUS_MIN_ID", CONFIG_NEED_PRODUCER | CONFIG_NEED_WORKER, 0, 0, NULL,
     "clients-to-ploomes creates only Milvus clients with id >= this (unset: fixed by "
     "milvus-producer after its first full scan; 0 = all)"},
    {"SYNC_SINCE", CONFIG_NEED_PRODUCER | CONFIG_NEED_WORKER, 0, 0,
     "2024-02-24T00:00:00-03:00", "RFC 3339 cut-off for contacts (CreateDate)"},
    {"POLL_INTERVAL_SECONDS", CONFIG_NEED_PRODUCER, 0, 0, "60", "seconds between polls"},
    {"PRODUCER_LEASE_SECONDS", CONFIG_NEED_PRODUCER, 0, 0, "60",
     "the active producer's lease expires this long after its last renewal"},
    {"FUTURE_STAMP_TOLERANCE_SECONDS", CONFIG_NEED_PRODUCER, 0, 0, "300",
     "rows stamped later than now + this do not move the cursor"},
    {"TICKET_TAGS", CONFIG_NEED_TICKETS, 0, 0, DEFAULT_TICKET_TAGS,
     "TagId=Category,... : Ploomes tags that open a ticket, and its primary category"},
    {"TICKETS_SINCE", CONFIG_NEED_PRODUCER | CONFIG_NEED_TICKETS, 0, 0, NULL,
     "RFC 3339 cut-off for tickets (default: first start - TICKET_LOOKBACK_MINUTES)"},
    {"TICKET_LOOKBACK_MINUTES", CONFIG_NEED_PRODUCER | CONFIG_NEED_TICKETS, 0, 0, "10",
     "first start reaches this many minutes back for tasks and interactions"},
    {"TICKET_MAX_AGE_MINUTES", CONFIG_NEED_TICKETS, 0, 0, "0",
     "skip records older than this (vs the fetched-at header); 0 = off"},
    {"TICKET_DESCRIPTION_MAX", CONFIG_NEED_TICKETS, 0, 0, "10000",
     "chamado_descricao is capped at this many characters"},
    {"TICKET_MESA", CONFIG_NEED_TICKETS, 0, 0, "", "chamado_mesa (empty = not sent)"},
    {"TICKET_SETOR", CONFIG_NEED_TICKETS, 0, 0, "", "chamado_setor (empty = not sent)"},
    {"TICKET_TECNICO", CONFIG_NEED_TICKETS, 0, 0, "",
     "chamado_tecnico e-mail (empty = not sent)"},
    {"TICKET_CATEGORIA_SECUNDARIA", CONFIG_NEED_TICKETS, 0, 0, "",
     "chamado_categoria_secundaria (empty = not sent)"},
    {"PLOOMES_ORIGIN_ID", CONFIG_NEED_PLOOMES_TARGET, 0, 0, "0",
     "OriginId of created Ploomes contacts (0 = not sent)"},
    {"PLOOMES_OWNER_ID", CONFIG_NEED_PLOOMES_TARGET, 0, 0, "0",
     "OwnerId of created Ploomes contacts (0 = not sent)"},
    {"PLOOMES_TAG_IDS", CONFIG_NEED_PLOOMES_TARGET, 0, 0, "",
     "comma-separated TagIds put on created Ploomes contacts"},
    {"MAX_ATTEMPTS", CONFIG_NEED_PRODUCER | CONFIG_NEED_WORKER, 0, 0, "3",
     "attempts per request (workers: then dead-letter; producers: then retry next poll)"},
    {"RETRY_BASE_MS", CONFIG_NEED_PRODUCER | CONFIG_NEED_WORKER, 0, 0, "5000",
     "first retry backoff (full jitter)"},
    {"RETRY_MAX_MS", CONFIG_NEED_PRODUCER | CONFIG_NEED_WORKER, 0, 0, "60000", "backoff cap"},
    {"MAX_IN_FLIGHT", CONFIG_NEED_WORKER, 0, 0, "32", "records handled at once by one worker"},
    {"CLAIM_LEASE_SECONDS", CONFIG_NEED_WORKER, 0, 0, "300",
     "age after which a pending claim is presumed abandoned"},
    {"DRY_RUN", CONFIG_NEED_WORKER, 0, 0, "0",
     "1 = log what would be sent; no writes (own consumer group)"},
    {"KAFKA_MAX_MESSAGE_BYTES", CONFIG_NEED_KAFKA, 0, 0, "8388608",
     "max record size (topics' max.message.bytes, producers' message.max.bytes); the DLQ "
     "topic gets 64 KiB more"},
    {"HTTP_TIMEOUT_MS", 0, 0, 0, "30000", "timeout of one HTTP request"},
    {"LOG_LEVEL", 0, 0, 0, "info", "error|warn|info|debug"},
    {"METRICS_PORT", 0, 0, 0, "0", "port of /metrics, /healthz, /readyz (0 = off)"},
};
#define NVARS (sizeof VARS / sizeof VARS[0])

static const var_def_t *def_of(const char *name)
{
    for (size_t i = 0; i < NVARS; i++) {
        if (strcmp(VARS[i].name, name) == 0)
            return &VARS[i];
    }
    return NULL;
}

/* ---- loader state --------------------------------------------------------------------------- */

typedef struct {
    config_t *cfg;
    char *const *envp;
    bool oom;
} loader_t;

static char *xstrdup(loader_t *ld, const char *s)
{
    char *c = strdup(s ? s : "");
    if (!c)
        ld->oom = true;
    return c;
}

static char *vfmt(loader_t *ld, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        ld->oom = true;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        ld->oom = true;
        return NULL;
    }
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static bool push_str(loader_t *ld, char ***arr, size_t *count, char *s)
{
    if (!s)
        return false;
    char **grown = realloc(*arr, (*count + 1) * sizeof **arr);
    if (!grown) {
        free(s);
        ld->oom = true;
        return false;
    }
    *arr = grown;
    grown[(*count)++] = s;
    return true;
}

static void problem(loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(loader_t *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(ld, fmt, ap);
    va_end(ap);
    push_str(ld, &ld->cfg->problems, &ld->cfg->problem_count, s);
}

static void warning(loader_t *ld, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warning(loader_t *ld, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vfmt(ld, fmt, ap);
    va_end(ap);
    push_str(ld, &ld->cfg->warnings, &ld->cfg->warning_count, s);
}

/* A bad value for a message: quoted, escaped, capped. */
static const char *shown(char *buf, size_t size, const char *value)
{
    char tmp[96];
    log_quote(tmp, sizeof tmp, value);
    if (tmp[0] == '"')
        snprintf(buf, size, "%s", tmp);
    else
        snprintf(buf, size, "\"%s\"", tmp);
    return buf;
}

/* Value of NAME in envp; empty counts as unset (NULL). */
static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return (*e)[n + 1] ? *e + n + 1 : NULL;
    }
    return NULL;
}

static void add_entry(loader_t *ld, const char *name, const char *display, config_source_t src,
                      const char *path)
{
    config_t *cfg = ld->cfg;
    config_entry_t *grown = realloc(cfg->entries, (cfg->entry_count + 1) * sizeof *grown);
    if (!grown) {
        ld->oom = true;
        return;
    }
    cfg->entries = grown;
    config_entry_t *e = &grown[cfg->entry_count++];
    e->name = xstrdup(ld, name);
    e->display = xstrdup(ld, display);
    e->source = src;
    e->path = path ? xstrdup(ld, path) : NULL;
}

static config_entry_t *find_entry(config_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->entry_count; i++) {
        if (cfg->entries[i].name && strcmp(cfg->entries[i].name, name) == 0)
            return &cfg->entries[i];
    }
    return NULL;
}

static void register_secret(loader_t *ld, const char *name, const char *secret)
{
    if (log_add_secret(secret) != 0)
        problem(ld, "%s: the logger's secret table is full, so this secret could not be "
                    "protected from the logs; expected fewer secrets", name);
}

/* Reads a secret file: trailing CR/LF stripped, capped, no NUL, not empty. NULL on a problem. */
static char *read_secret_file(loader_t *ld, const char *name, const char *path)
{
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        problem(ld, "%s_FILE: cannot open %s: %s; expected a readable file holding the secret",
                name, path, strerror(errno));
        return NULL;
    }
    buf = malloc(SECRET_FILE_MAX + 1);
    if (!buf) {
        ld->oom = true;
        goto fail;
    }
    size_t used = 0;
    for (;;) {
        ssize_t r = read(fd, buf + used, SECRET_FILE_MAX + 1 - used);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            problem(ld, "%s_FILE: cannot read %s: %s", name, path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        used += (size_t)r;
        if (used > SECRET_FILE_MAX) {
            problem(ld, "%s_FILE: %s is larger than %d bytes; expected a file holding only the "
                        "secret", name, path, SECRET_FILE_MAX);
            goto fail;
        }
    }
    close(fd);
    fd = -1;
    while (used > 0 && (buf[used - 1] == '\n' || buf[used - 1] == '\r'))
        used--;
    buf[used] = '\0';
    if (memchr(buf, '\0', used)) {
        problem(ld, "%s_FILE: %s contains a NUL byte; expected a text secret", name, path);
        goto fail;
    }
    if (used == 0) {
        problem(ld, "%s_FILE: %s is empty; expected the secret", name, path);
        goto fail;
    }
    return buf;
fail:
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* The raw value of a variable (owned copy) or NULL when unset or unusable. Handles NAME_FILE
 * for secrets, registers secrets with the logger and records the config_print entry. */
static char *fetch(loader_t *ld, const char *name, config_source_t *src_out)
{
    const var_def_t *d = def_of(name);
    bool secret = d && (d->flags & V_SECRET);
    const char *v = env_get(ld->envp, name);
    const char *path = NULL;
    char *value = NULL;
    config_source_t src = CONFIG_SRC_ENV;

    if (secret) {
        char fname[96];
        snprintf(fname, sizeof fname, "%s_FILE", name);
        path = env_get(ld->envp, fname);
        if (v && path) {
            problem(ld, "%s and %s are both set; expected only one of them", name, fname);
            add_entry(ld, name, "***", CONFIG_SRC_ENV, NULL);
            if (src_out)
                *src_out = CONFIG_SRC_ENV;
            return NULL;
        }
    }
    if (v) {
        value = xstrdup(ld, v);
    } else if (path) {
        src = CONFIG_SRC_FILE;
        value = read_secret_file(ld, name, path);
    } else {
        src = (d && d->def) ? CONFIG_SRC_DEFAULT : CONFIG_SRC_UNSET;
    }
    /* MONGODB_URI as a whole is not a secret (only its password is, registered by
     * get_mongo()); scrubbing the whole URI would also hide a password-less URI from logs. */
    if (value && secret && strcmp(name, "MONGODB_URI") != 0)
        register_secret(ld, name, value);

    const char *display;
    if (src == CONFIG_SRC_DEFAULT || src == CONFIG_SRC_UNSET)
        display = (d && d->def) ? d->def : "";
    else
        display = secret ? "***" : (value ? value : "");
    add_entry(ld, name, display, src, src == CONFIG_SRC_FILE ? path : NULL);
    if (src_out)
        *src_out = src;
    return value;
}

/* ---- typed parsers -------------------------------------------------------------------------- */

static int parse_i64(const char *text, int64_t *out)
{
    if (!text || !*text)
        return -1;
    const char *p = text;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || !end || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Integer variable in [min, max]; default from the table. */
static int64_t get_int(loader_t *ld, const char *name, int64_t min, int64_t max)
{
    const var_def_t *d = def_of(name);
    int64_t def = 0;
    if (d && d->def)
        parse_i64(d->def, &def);
    char *v = fetch(ld, name, NULL);
    if (!v)
        return def;
    int64_t out = def;
    int64_t x;
    if (parse_i64(v, &x) != 0 || x < min || x > max) {
        char b[112];
        problem(ld, "%s: got %s; expected an integer from %" PRId64 " to %" PRId64, name,
                shown(b, sizeof b, v), min, max);
    } else {
        out = x;
    }
    free(v);
    return out;
}

/* String variable; default from the table ("" when none). Never NULL unless out of memory. */
static char *get_str(loader_t *ld, const char *name)
{
    char *v = fetch(ld, name, NULL);
    if (v) {
        if (!json_utf8_valid(v, strlen(v))) {
            problem(ld, "%s: not valid UTF-8; expected UTF-8 text", name);
        }
        return v;
    }
    const var_def_t *d = def_of(name);
    return xstrdup(ld, d && d->def ? d->def : "");
}

static bool get_bool(loader_t *ld, const char *name)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    const var_def_t *d = def_of(name);
    bool def = d && d->def && strcmp(d->def, "1") == 0;
    char *v = fetch(ld, name, NULL);
    if (!v)
        return def;
    bool out = def;
    bool ok = false;
    for (size_t i = 0; i < 4 && !ok; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            out = true;
            ok = true;
        } else if (strcasecmp(v, no[i]) == 0) {
            out = false;
            ok = true;
        }
    }
    if (!ok) {
        char b[112];
        problem(ld, "%s: got %s; expected 1/true/yes/on or 0/false/no/off", name,
                shown(b, sizeof b, v));
    }
    free(v);
    return out;
}

/* A share of a quota: a decimal number in (0, 1]. Default from the table. */
static double get_share(loader_t *ld, const char *name)
{
    const var_def_t *d = def_of(name);
    double def = d && d->def ? strtod(d->def, NULL) : 1.0;
    char *v = fetch(ld, name, NULL);
    if (!v)
        return def;
    double out = def;
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x > 0.0 && x <= 1.0)) {
        char b[112];
        problem(ld, "%s: got %s; expected a number greater than 0 and at most 1 (e.g. 0.5)",
                name, shown(b, sizeof b, v));
    } else {
        out = x;
    }
    free(v);
    return out;
}

/* http(s)://host[...], no whitespace; trailing '/' removed. Default from the table. */
static char *get_url(loader_t *ld, const char *name)
{
    char *v = fetch(ld, name, NULL);
    if (!v) {
        const var_def_t *d = def_of(name);
        return xstrdup(ld, d && d->def ? d->def : "");
    }
    size_t skip = 0;
    if (strncasecmp(v, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(v, "http://", 7) == 0)
        skip = 7;
    bool ok = skip > 0 && v[skip] != '\0' && v[skip] != '/' && v[skip] != '?' &&
              v[skip] != '#' && v[skip] != '@';
    for (const unsigned char *p = (const unsigned char *)v; ok && *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            ok = false;
    }
    if (!ok) {
        char b[112];
        problem(ld, "%s: got %s; expected an http:// or https:// URL with a host", name,
                shown(b, sizeof b, v));
        free(v);
        const var_def_t *d = def_of(name);
        return xstrdup(ld, d && d->def ? d->def : "");
    }
    size_t n = strlen(v);
    while (n > skip + 1 && v[n - 1] == '/')
        v[--n] = '\0';
    return v;
}

int config_parse_rfc3339(const char *t, int64_t *epoch_ms)
{
    if (!t)
        return -1;
    const char *p = t;
    int v[6] = {0};
    static const int widths[6] = {4, 2, 2, 2, 2, 2};
    static const char seps[6] = {'-', '-', 'T', ':', ':', 0};
    for (int f = 0; f < 6; f++) {
        int x = 0;
        for (int k = 0; k < widths[f]; k++, p++) {
            if (*p < '0' || *p > '9')
                return -1;
            x = x * 10 + (*p - '0');
        }
        v[f] = x;
        if (seps[f] == 'T') {
            if (*p != 'T' && *p != 't' && *p != ' ')
                return -1;
            p++;
        } else if (seps[f]) {
            if (*p != seps[f])
                return -1;
            p++;
        }
    }
    int ms = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
            digits++;
            p++;
        }
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = 0, om = 0;
        for (int k = 0; k < 2; k++, p++) {
            if (*p < '0' || *p > '9')
                return -1;
            oh = oh * 10 + (*p - '0');
        }
        if (*p++ != ':')
            return -1;
        for (int k = 0; k < 2; k++, p++) {
            if (*p < '0' || *p > '9')
                return -1;
            om = om * 10 + (*p - '0');
        }
        if (oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    int year = v[0], mon = v[1], day = v[2], hh = v[3], mi = v[4], ss = v[5];
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon < 1 || mon > 12 || day < 1)
        return -1;
    if (day > mdays[mon - 1] + (mon == 2 && leap ? 1 : 0))
        return -1;
    if (hh > 23 || mi > 59 || ss > 60)
        return -1;
    /* days_from_civil (H. Hinnant). */
    int64_t y = year - (mon <= 2);
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mon > 2 ? mon - 3 : mon + 9) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    int64_t secs = days * 86400 + hh * 3600 + mi * 60 + ss - (int64_t)offset_min * 60;
    *epoch_ms = secs * 1000 + ms;
    return 0;
}

/* RFC 3339 variable: text into *text_out (owned), ms into *ms_out; unset → default (or NULL and
 * -1 when there is no default). */
static void get_time(loader_t *ld, const char *name, char **text_out, int64_t *ms_out)
{
    const var_def_t *d = def_of(name);
    *text_out = NULL;
    *ms_out = -1;
    if (d && d->def) {
        *text_out = xstrdup(ld, d->def);
        config_parse_rfc3339(d->def, ms_out);
    }
    char *v = fetch(ld, name, NULL);
    if (!v)
        return;
    int64_t ms;
    if (config_parse_rfc3339(v, &ms) != 0) {
        char b[112];
        problem(ld, "%s: got %s; expected an RFC 3339 timestamp such as "
                    "2024-02-24T00:00:00-03:00", name, shown(b, sizeof b, v));
        free(v);
        return;
    }
    free(*text_out);
    *text_out = v;
    *ms_out = ms;
}

/* Trims ASCII spaces in place; returns the start. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

/* Splits a copy of text on ',' and calls fn for each trimmed item. Returns false on OOM. */
static bool for_each_item(loader_t *ld, const char *text, void (*fn)(loader_t *, char *, void *),
                          void *ctx)
{
    char *copy = xstrdup(ld, text);
    if (!copy)
        return false;
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        fn(ld, trim(p), ctx);
        if (!comma)
            break;
        p = comma + 1;
    }
    free(copy);
    return true;
}

typedef struct {
    unsigned bits;
    bool bad;
    bool empty_item;
} entities_ctx_t;

static void entity_item(loader_t *ld, char *item, void *vctx)
{
    entities_ctx_t *c = vctx;
    if (!*item) {
        c->empty_item = true;
        return;
    }
    if (strcasecmp(item, "contacts") == 0) {
        c->bits |= CONFIG_ENTITY_CONTACTS;
    } else if (strcasecmp(item, "tasks") == 0) {
        c->bits |= CONFIG_ENTITY_TASKS;
    } else if (strcasecmp(item, "interactions") == 0) {
        c->bits |= CONFIG_ENTITY_INTERACTIONS;
    } else {
        char b[112];
        problem(ld, "PLOOMES_ENTITIES: unknown entity %s; expected a comma-separated subset of "
                    "contacts,tasks,interactions", shown(b, sizeof b, item));
        c->bad = true;
    }
}

static unsigned get_entities(loader_t *ld)
{
    unsigned all = CONFIG_ENTITY_CONTACTS | CONFIG_ENTITY_TASKS | CONFIG_ENTITY_INTERACTIONS;
    char *v = fetch(ld, "PLOOMES_ENTITIES", NULL);
    if (!v)
        return all;
    entities_ctx_t c = {0};
    for_each_item(ld, v, entity_item, &c);
    free(v);
    if (c.bad)
        return all;
    if (c.bits == 0) {
        problem(ld, "PLOOMES_ENTITIES: no entity given; expected a comma-separated subset of "
                    "contacts,tasks,interactions");
        return all;
    }
    return c.bits;
}

typedef struct {
    config_ticket_tag_t *tags;
    size_t count;
    bool bad;
} tags_ctx_t;

static void tag_item(loader_t *ld, char *item, void *vctx)
{
    tags_ctx_t *c = vctx;
    char b[112];
    char *eq = strchr(item, '=');
    int64_t id;
    if (!eq) {
        problem(ld, "TICKET_TAGS: item %s has no '='; expected TagId=Category,...",
                shown(b, sizeof b, item));
        c->bad = true;
        return;
    }
    *eq = '\0';
    char *idtext = trim(item);
    char *cat = trim(eq + 1);
    if (parse_i64(idtext, &id) != 0 || id <= 0) {
        problem(ld, "TICKET_TAGS: tag id %s is not a positive integer; expected "
                    "TagId=Category,...", shown(b, sizeof b, idtext));
        c->bad = true;
        return;
    }
    if (!*cat || !json_utf8_valid(cat, strlen(cat))) {
        problem(ld, "TICKET_TAGS: tag %" PRId64 " has %s category; expected non-empty UTF-8 "
                    "text after '='", id, *cat ? "a non-UTF-8" : "an empty");
        c->bad = true;
        return;
    }
    for (size_t i = 0; i < c->count; i++) {
        if (c->tags[i].tag_id == id) {
            problem(ld, "TICKET_TAGS: tag %" PRId64 " appears twice; expected each TagId once",
                    id);
            c->bad = true;
            return;
        }
    }
    config_ticket_tag_t *grown = realloc(c->tags, (c->count + 1) * sizeof *grown);
    if (!grown) {
        ld->oom = true;
        return;
    }
    c->tags = grown;
    grown[c->count].tag_id = id;
    grown[c->count].category = xstrdup(ld, cat);
    c->count++;
}

static void free_tags(config_ticket_tag_t *tags, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(tags[i].category);
    free(tags);
}

static void get_ticket_tags(loader_t *ld)
{
    config_t *cfg = ld->cfg;
    char *v = fetch(ld, "TICKET_TAGS", NULL);
    tags_ctx_t c = {0};
    if (v) {
        for_each_item(ld, v, tag_item, &c);
        free(v);
        if (!c.bad && c.count == 0) {
            problem(ld, "TICKET_TAGS: no tag given; expected TagId=Category,...");
            c.bad = true;
        }
        if (!c.bad) {
            cfg->ticket_tags = c.tags;
            cfg->ticket_tag_count = c.count;
            return;
        }
        free_tags(c.tags, c.count);
        memset(&c, 0, sizeof c);
    }
    for_each_item(ld, DEFAULT_TICKET_TAGS, tag_item, &c);
    cfg->ticket_tags = c.tags;
    cfg->ticket_tag_count = c.count;
}

typedef struct {
    int64_t *ids;
    size_t count;
    bool bad;
} ids_ctx_t;

static void id_item(loader_t *ld, char *item, void *vctx)
{
    ids_ctx_t *c = vctx;
    int64_t id;
    if (parse_i64(item, &id) != 0 || id <= 0) {
        char b[112];
        problem(ld, "PLOOMES_TAG_IDS: %s is not a positive integer; expected comma-separated "
                    "Ploomes TagIds", shown(b, sizeof b, item));
        c->bad = true;
        return;
    }
    int64_t *grown = realloc(c->ids, (c->count + 1) * sizeof *grown);
    if (!grown) {
        ld->oom = true;
        return;
    }
    c->ids = grown;
    grown[c->count++] = id;
}

static void get_tag_ids(loader_t *ld)
{
    char *v = fetch(ld, "PLOOMES_TAG_IDS", NULL);
    if (!v)
        return;
    ids_ctx_t c = {0};
    for_each_item(ld, v, id_item, &c);
    free(v);
    if (c.bad) {
        free(c.ids);
        return;
    }
    ld->cfg->ploomes_tag_ids = c.ids;
    ld->cfg->ploomes_tag_id_count = c.count;
}

/* ---- MongoDB URI ---------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string (malformed escapes kept as they are). */
static char *pct_decode(loader_t *ld, const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (!out) {
        ld->oom = true;
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Pieces of a MongoDB URI, as offsets into it. */
typedef struct {
    size_t scheme_end;  /* index just after "://" */
    bool has_userinfo;
    size_t at;          /* index of the '@' ending the userinfo */
    bool has_password;
    size_t colon;       /* index of ':' between user and password */
    size_t hosts;       /* index where the hosts begin */
    size_t hosts_end;   /* index of '/', '?' or the end */
    size_t db;          /* start of database name */
    size_t db_end;
} mongo_parts_t;

typedef enum {
    MONGO_URI_OK = 0,
    MONGO_URI_INVALID = -1,  /* not a MongoDB URI: say nothing of its text */
    MONGO_URI_USERINFO = -2  /* parts found, but the user or password holds a character RFC 3986
                                and MongoDB require percent-encoded: rejected, never shown */
} mongo_split_t;

/* One "host[:port]" or "[v6]:port" of the host list (unix sockets as %2F-encoded paths). */
static bool mongo_host_ok(const char *h, size_t n)
{
    size_t i = 0;
    if (n > 0 && h[0] == '[') {
        while (i < n && h[i] != ']')
            i++;
        if (i >= n || i == 1)
            return false;
        i++;
    } else {
        while (i < n && h[i] != ':') {
            unsigned char c = (unsigned char)h[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_' || c == '~' || c == '%'))
                return false;
            i++;
        }
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (h[i] != ':' || i + 1 == n || n - i - 1 > 5)
        return false;
    long port = 0;
    for (size_t k = i + 1; k < n; k++) {
        if (h[k] < '0' || h[k] > '9')
            return false;
        port = port * 10 + (h[k] - '0');
    }
    return port >= 1 && port <= 65535;
}

/* Splits a MongoDB URI. What counts as the userinfo is chosen so that no way of reading the URI
 * can put part of a password outside it: it runs to the LAST '@' of the whole text. A password
 * with an unencoded '?', '/', '#' or '@' therefore stays inside it (and is then rejected:
 * MONGO_URI_USERINFO, the offsets still filled so the caller can register the secret); a URI
 * whose '@' sits elsewhere (an option value) fails the host check instead (MONGO_URI_INVALID):
 * percent-encode it. */
static mongo_split_t mongo_split(const char *uri, mongo_parts_t *m)
{
    memset(m, 0, sizeof *m);
    if (strncmp(uri, "mongodb://", 10) == 0)
        m->scheme_end = 10;
    else if (strncmp(uri, "mongodb+srv://", 14) == 0)
        m->scheme_end = 14;
    else
        return MONGO_URI_INVALID;
    size_t len = strlen(uri);
    const char *last_at = strrchr(uri + m->scheme_end, '@');
    if (last_at) {
        m->has_userinfo = true;
        m->at = (size_t)(last_at - uri);
        const char *colon = memchr(uri + m->scheme_end, ':', m->at - m->scheme_end);
        if (colon) {
            m->has_password = true;
            m->colon = (size_t)(colon - uri);
        }
    }
    m->hosts = m->has_userinfo ? m->at + 1 : m->scheme_end;
    size_t i = m->hosts;
    while (i < len && uri[i] != '/' && uri[i] != '?')
        i++;
    m->hosts_end = i;
    if (i < len && uri[i] == '/') {
        m->db = i + 1;
        size_t j = m->db;
        while (j < len && uri[j] != '?')
            j++;
        m->db_end = j;
    } else {
        m->db = m->db_end = i;
    }
    mongo_split_t rc = MONGO_URI_OK;
    if (m->has_userinfo) {
        int colons = 0;
        for (size_t k = m->scheme_end; k < m->at; k++) {
            char c = uri[k];
            if (c == ':')
                colons++;
            if (colons > 1 || strchr("@/?#[]", c) ||
                (c == '%' && (k + 2 >= m->at || hexval(uri[k + 1]) < 0 || hexval(uri[k + 2]) < 0)))
                rc = MONGO_URI_USERINFO;
        }
        if (m->at == m->scheme_end)
            rc = MONGO_URI_USERINFO;
    }
    if (m->hosts_end == m->hosts)
        return MONGO_URI_INVALID;
    for (size_t h = m->hosts; h <= m->hosts_end;) {
        size_t e = h;
        while (e < m->hosts_end && uri[e] != ',')
            e++;
        if (!mongo_host_ok(uri + h, e - h))
            return MONGO_URI_INVALID;
        h = e + 1;
    }
    return rc;
}

static void get_mongo(loader_t *ld)
{
    config_t *cfg = ld->cfg;
    char *uri = fetch(ld, "MONGODB_URI", NULL);
    char *pw = fetch(ld, "MONGODB_PASSWORD", NULL);
    mongo_parts_t m;
    cfg->mongodb_database = xstrdup(ld, "pipeline");
    if (!uri) {
        if (pw)
            problem(ld, "MONGODB_PASSWORD: set without MONGODB_URI; expected MONGODB_URI too");
        free(pw);
        return;
    }
    mongo_split_t split = mongo_split(uri, &m);
    if (m.has_password) {
        /* Register the password exactly as written and percent-decoded, also when the URI is
         * then rejected: whatever prints it later (a driver's error) gets it scrubbed. */
        size_t plen = m.at - m.colon - 1;
        char *raw = malloc(plen + 1);
        if (!raw) {
            ld->oom = true;
        } else {
            memcpy(raw, uri + m.colon + 1, plen);
            raw[plen] = '\0';
            register_secret(ld, "MONGODB_URI", raw);
            char *dec = pct_decode(ld, raw, plen);
            if (dec)
                register_secret(ld, "MONGODB_URI", dec);
            free(dec);
            free(raw);
        }
    }
    if (split == MONGO_URI_INVALID) {
        problem(ld, "MONGODB_URI: not a MongoDB URI (value hidden: it may hold a password); "
                    "expected mongodb://[user[:password]@]host[:port][/database][?options]");
        free(uri);
        free(pw);
        return;
    }
    if (split == MONGO_URI_USERINFO) {
        problem(ld, "MONGODB_URI: the user name or password holds a character that must be "
                    "percent-encoded (value hidden); expected one '@' ending user:password, with "
                    "any : / ? # [ ] @ %% inside them written as %%XX (e.g. '@' as %%40), or the "
                    "password in MONGODB_PASSWORD");
        free(uri);
        free(pw);
        return;
    }
    if (pw) {
        if (!m.has_userinfo || m.has_password || m.at == m.scheme_end) {
            problem(ld, "MONGODB_PASSWORD: MONGODB_URI must name a user and carry no password "
                        "when MONGODB_PASSWORD is set; expected mongodb://user@host/...");
        } else {
            /* the URI's userinfo takes the same RFC 3986 escaping as a query value */
            char *enc = http_percent_encode_dup(pw);
            if (!enc)
                ld->oom = true;
            if (enc) {
                register_secret(ld, "MONGODB_PASSWORD", enc);
                size_t ulen = m.at, rest = strlen(uri) - m.at;
                size_t elen = strlen(enc);
                char *full = malloc(ulen + 1 + elen + rest + 1);
                if (!full) {
                    ld->oom = true;
                } else {
                    memcpy(full, uri, ulen);
                    full[ulen] = ':';
                    memcpy(full + ulen + 1, enc, elen);
                    memcpy(full + ulen + 1 + elen, uri + m.at, rest + 1);
                    free(uri);
                    uri = full;
                    mongo_split(uri, &m);
                }
                free(enc);
            }
        }
        free(pw);
    }
    /* Redacted form: the whole userinfo (user and password) replaced by ***. */
    if (m.has_userinfo) {
        size_t head = m.scheme_end, tail = strlen(uri) - m.at;
        char *red = malloc(head + 3 + tail + 1);
        if (!red) {
            ld->oom = true;
        } else {
            memcpy(red, uri, head);
            memcpy(red + head, "***", 3);
            memcpy(red + head + 3, uri + m.at, tail + 1);
            cfg->mongodb_uri_redacted = red;
        }
    } else {
        cfg->mongodb_uri_redacted = xstrdup(ld, uri);
    }
    config_entry_t *e = find_entry(cfg, "MONGODB_URI");
    if (e && cfg->mongodb_uri_redacted) {
        char *d = xstrdup(ld, cfg->mongodb_uri_redacted);
        if (d) {
            free(e->display);
            e->display = d;
        }
    }
    size_t dblen = m.db_end - m.db;
    if (dblen > 0) {
        bool ok = dblen < 64;
        for (size_t i = m.db; ok && i < m.db_end; i++) {
            unsigned char c = (unsigned char)uri[i];
            if (c <= 0x20 || c >= 0x7f || strchr("/\\. \"$*<>:|?%", c))
                ok = false;
        }
        if (!ok) {
            char b[112], name[80];
            snprintf(name, sizeof name, "%.*s", (int)(dblen < 70 ? dblen : 70), uri + m.db);
            problem(ld, "MONGODB_URI: database name %s is not usable; expected up to 63 "
                        "characters without / \\ . space \" $ * < > : | ? %%",
                    shown(b, sizeof b, name));
        } else {
            char *db = malloc(dblen + 1);
            if (!db) {
                ld->oom = true;
            } else {
                memcpy(db, uri + m.db, dblen);
                db[dblen] = '\0';
                free(cfg->mongodb_database);
                cfg->mongodb_database = db;
            }
        }
    }
    cfg->mongodb_uri = uri;
}

/* ---- Kafka ---------------------------------------------------------------------------------- */

/* librdkafka properties whose value must never be shown: passwords and secrets, an inline
 * private key (ssl.key.pem), and sasl.oauthbearer.config (it carries client secrets for the
 * unsecured-JWT and custom OAuth set-ups). */
static bool is_secret_property(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, "key.pem") ||
           strstr(name, "oauthbearer.config");
}

static void add_prop(loader_t *ld, const char *name, const char *value, bool secret)
{
    config_t *cfg = ld->cfg;
    config_kafka_prop_t *grown =
        realloc(cfg->kafka_props, (cfg->kafka_prop_count + 1) * sizeof *grown);
    if (!grown) {
        ld->oom = true;
        return;
    }
    cfg->kafka_props = grown;
    size_t n = cfg->kafka_prop_count;
    const char **names = realloc(cfg->kafka_prop_names, (n + 1) * sizeof *names);
    if (names)
        cfg->kafka_prop_names = names;
    const char **values = realloc(cfg->kafka_prop_values, (n + 1) * sizeof *values);
    if (values)
        cfg->kafka_prop_values = values;
    if (!names || !values) {
        ld->oom = true;
        return;
    }
    config_kafka_prop_t *p = &grown[cfg->kafka_prop_count++];
    p->name = xstrdup(ld, name);
    p->value = xstrdup(ld, value);
    p->secret = secret;
    names[n] = p->name;
    values[n] = p->value;
}

static void get_kafka(loader_t *ld)
{
    config_t *cfg = ld->cfg;
    cfg->kafka_bootstrap_servers = fetch(ld, "KAFKA_BOOTSTRAP_SERVERS", NULL);
    if (cfg->kafka_bootstrap_servers) {
        for (const unsigned char *p = (const unsigned char *)cfg->kafka_bootstrap_servers; *p;
             p++) {
            if (*p <= 0x20 || *p >= 0x7f) {
                char b[112];
                problem(ld, "KAFKA_BOOTSTRAP_SERVERS: got %s; expected host:port[,host:port...] "
                            "without spaces", shown(b, sizeof b, cfg->kafka_bootstrap_servers));
                break;
            }
        }
    }
    cfg->kafka_sasl_password = fetch(ld, "KAFKA_SASL_PASSWORD", NULL);

    rd_kafka_conf_t *scratch = rd_kafka_conf_new();
    if (!scratch) {
        ld->oom = true;
        return;
    }
    for (char *const *e = ld->envp; e && *e; e++) {
        const char *entry = *e;
        if (strncmp(entry, "KAFKA_", 6) != 0)
            continue;
        const char *eq = strchr(entry, '=');
        if (!eq)
            continue;
        size_t nlen = (size_t)(eq - entry);
        char var[128];
        if (nlen >= sizeof var) {
            warning(ld, "%.40s...: ignored (name too long for a librdkafka property)", entry);
            continue;
        }
        memcpy(var, entry, nlen);
        var[nlen] = '\0';
        if (strcmp(var, "KAFKA_BOOTSTRAP_SERVERS") == 0 ||
            strcmp(var, "KAFKA_SASL_PASSWORD") == 0 ||
            strcmp(var, "KAFKA_SASL_PASSWORD_FILE") == 0 ||
            strcmp(var, "KAFKA_MAX_MESSAGE_BYTES") == 0)
            continue;
        const char *value = eq + 1;
        if (!*value || nlen == 6)
            continue;
        char prop[128];
        size_t k = 0;
        for (size_t i = 6; i < nlen; i++, k++) {
            char c = var[i];
            prop[k] = c == '_' ? '.' : (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        prop[k] = '\0';
        bool secret = is_secret_property(prop);
        if (secret)
            register_secret(ld, var, value);
        char errstr[256];
        rd_kafka_conf_res_t res = rd_kafka_conf_set(scratch, prop, value, errstr, sizeof errstr);
        if (res == RD_KAFKA_CONF_UNKNOWN) {
            warning(ld, "%s: ignored, librdkafka has no property \"%s\"", var, prop);
        } else if (res != RD_KAFKA_CONF_OK) {
            char b[112];
            if (secret)
                problem(ld, "%s: invalid value (hidden: secret) for librdkafka property %s; "
                            "expected what librdkafka accepts", var, prop);
            else
                problem(ld, "%s: got %s; librdkafka rejects it for %s: %s", var,
                        shown(b, sizeof b, value), prop, errstr);
        } else {
            add_prop(ld, prop, value, secret);
        }
    }
    rd_kafka_conf_destroy(scratch);
    if (cfg->kafka_sasl_password)
        add_prop(ld, "sasl.password", cfg->kafka_sasl_password, true);

    cfg->topic_prefix = get_str(ld, "TOPIC_PREFIX");
    if (cfg->topic_prefix) {
        bool ok = strlen(cfg->topic_prefix) <= 200;
        for (const char *p = cfg->topic_prefix; ok && *p; p++) {
            char c = *p;
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        }
        if (!ok) {
            char b[112];
            problem(ld, "TOPIC_PREFIX: got %s; expected up to 200 characters from "
                        "a-z A-Z 0-9 . _ - (Kafka topic names)",
                    shown(b, sizeof b, cfg->topic_prefix));
        }
    }
    cfg->topic_partitions = (int)get_int(ld, "TOPIC_PARTITIONS", 1, 10000);
    /* librdkafka's message.max.bytes is at most 1000000000; leave room for the DLQ's 64 KiB. */
    cfg->kafka_max_message_bytes = get_int(ld, "KAFKA_MAX_MESSAGE_BYTES", 1024, 999000000);
}

/* ---- secrets that stand alone --------------------------------------------------------------- */

static char *get_secret(loader_t *ld, const char *name)
{
    char *v = fetch(ld, name, NULL);
    if (v && !json_utf8_valid(v, strlen(v)))
        problem(ld, "%s: not valid UTF-8 (value hidden: secret); expected the key as text",
                name);
    if (v) {
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
            if (*p < 0x20 || *p == 0x7f) {
                problem(ld, "%s: contains a control character (value hidden: secret); expected "
                            "the key alone (no line breaks)", name);
                break;
            }
        }
    }
    return v;
}

/* ---- public --------------------------------------------------------------------------------- */

static void require(loader_t *ld, const char *name, const void *value)
{
    const var_def_t *d = def_of(name);
    if (value || !d || !(d->required_by & ld->cfg->needs))
        return;
    /* A secret that is set but unreadable already has its own problem. */
    char fname[96];
    snprintf(fname, sizeof fname, "%s_FILE", name);
    if ((d->flags & V_SECRET) &&
        (env_get(ld->envp, name) || env_get(ld->envp, fname)))
        return;
    if (d->flags & V_SECRET)
        problem(ld, "%s: not set; expected %s (this binary needs it; or set %s)", name, d->help,
                fname);
    else
        problem(ld, "%s: not set; expected %s (this binary needs it)", name, d->help);
}

int config_load_env(config_t *cfg, unsigned needs, char *const *envp)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->needs = needs;
    cfg->tickets_since_ms = -1;
    loader_t ld = {.cfg = cfg, .envp = envp, .oom = false};
    char b[112];

    get_kafka(&ld);
    get_mongo(&ld);

    cfg->ploomes_base_url = get_url(&ld, "PLOOMES_BASE_URL");
    cfg->ploomes_user_key = get_secret(&ld, "PLOOMES_USER_KEY");
    cfg->ploomes_rate_per_min = (int)get_int(&ld, "PLOOMES_RATE_PER_MIN", 1, 6000000);
    cfg->ploomes_entities = get_entities(&ld);
    cfg->ploomes_scan_quota_share = get_share(&ld, "PLOOMES_SCAN_QUOTA_SHARE");
    cfg->ploomes_403_pause_ms = get_int(&ld, "PLOOMES_403_PAUSE_MS", 0, 3600000);

    cfg->milvus_base_url = get_url(&ld, "MILVUS_BASE_URL");
    cfg->milvus_token = get_secret(&ld, "MILVUS_TOKEN");
    cfg->milvus_rate_per_min = (int)get_int(&ld, "MILVUS_RATE_PER_MIN", 1, 6000000);
    cfg->milvus_min_id = get_int(&ld, "MILVUS_MIN_ID", 0, INT64_MAX);
    {
        const char *raw = env_get(envp, "MILVUS_MIN_ID");
        if (!raw || !*raw)
            cfg->milvus_min_id = -1; /* unset: milvus-producer fixes it after a full scan */
    }
    cfg->milvus_scan_quota_share = get_share(&ld, "MILVUS_SCAN_QUOTA_SHARE");
    cfg->milvus_max_pages = (int)get_int(&ld, "MILVUS_MAX_PAGES", 1, 1000000);

    get_time(&ld, "SYNC_SINCE", &cfg->sync_since, &cfg->sync_since_ms);
    cfg->poll_interval_seconds = (int)get_int(&ld, "POLL_INTERVAL_SECONDS", 1, 86400);
    cfg->producer_lease_seconds = (int)get_int(&ld, "PRODUCER_LEASE_SECONDS", 5, 86400);
    cfg->future_stamp_tolerance_seconds =
        (int)get_int(&ld, "FUTURE_STAMP_TOLERANCE_SECONDS", 0, 86400 * 366);

    get_ticket_tags(&ld);
    get_time(&ld, "TICKETS_SINCE", &cfg->tickets_since, &cfg->tickets_since_ms);
    cfg->ticket_lookback_minutes = (int)get_int(&ld, "TICKET_LOOKBACK_MINUTES", 0, 525600);
    {
        /* "off" is accepted as a spelling of 0 here. */
        const char *raw = env_get(envp, "TICKET_MAX_AGE_MINUTES");
        if (raw && strcasecmp(raw, "off") == 0) {
            char *v = fetch(&ld, "TICKET_MAX_AGE_MINUTES", NULL);
            free(v);
            cfg->ticket_max_age_minutes = 0;
        } else {
            cfg->ticket_max_age_minutes = (int)get_int(&ld, "TICKET_MAX_AGE_MINUTES", 0, 5256000);
        }
    }
    cfg->ticket_description_max = (int)get_int(&ld, "TICKET_DESCRIPTION_MAX", 100, 1000000);
    cfg->ticket_mesa = get_str(&ld, "TICKET_MESA");
    cfg->ticket_setor = get_str(&ld, "TICKET_SETOR");
    cfg->ticket_tecnico = get_str(&ld, "TICKET_TECNICO");
    cfg->ticket_categoria_secundaria = get_str(&ld, "TICKET_CATEGORIA_SECUNDARIA");

    cfg->ploomes_origin_id = get_int(&ld, "PLOOMES_ORIGIN_ID", 0, INT64_MAX);
    cfg->ploomes_owner_id = get_int(&ld, "PLOOMES_OWNER_ID", 0, INT64_MAX);
    get_tag_ids(&ld);

    cfg->max_attempts = (int)get_int(&ld, "MAX_ATTEMPTS", 1, 100);
    cfg->retry_base_ms = get_int(&ld, "RETRY_BASE_MS", 0, 3600000);
    cfg->retry_max_ms = get_int(&ld, "RETRY_MAX_MS", 0, 86400000);
    if (cfg->retry_max_ms < cfg->retry_base_ms)
        problem(&ld, "RETRY_MAX_MS: %" PRId64 " is below RETRY_BASE_MS %" PRId64
                     "; expected RETRY_MAX_MS >= RETRY_BASE_MS",
                cfg->retry_max_ms, cfg->retry_base_ms);
    cfg->max_in_flight = (int)get_int(&ld, "MAX_IN_FLIGHT", 1, 1000);
    cfg->claim_lease_seconds = (int)get_int(&ld, "CLAIM_LEASE_SECONDS", 1, 7 * 86400);
    cfg->dry_run = get_bool(&ld, "DRY_RUN");

    cfg->http_timeout_ms = get_int(&ld, "HTTP_TIMEOUT_MS", 1, 3600000);
    cfg->log_level = LOG_INFO;
    {
        char *v = fetch(&ld, "LOG_LEVEL", NULL);
        if (v && log_level_parse(v, &cfg->log_level) != 0) {
            problem(&ld, "LOG_LEVEL: got %s; expected error, warn, info or debug",
                    shown(b, sizeof b, v));
            cfg->log_level = LOG_INFO;
        }
        free(v);
    }
    cfg->metrics_port = (int)get_int(&ld, "METRICS_PORT", 0, 65535);

    require(&ld, "KAFKA_BOOTSTRAP_SERVERS", cfg->kafka_bootstrap_servers);
    require(&ld, "MONGODB_URI", cfg->mongodb_uri);
    require(&ld, "PLOOMES_USER_KEY", cfg->ploomes_user_key);
    require(&ld, "MILVUS_TOKEN", cfg->milvus_token);

    if (ld.oom) {
        config_free(cfg);
        return -1;
    }
    return (int)cfg->problem_count;
}

int config_load(config_t *cfg, unsigned needs)
{
    return config_load_env(cfg, needs, environ);
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void config_free(config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->kafka_bootstrap_servers);
    free(cfg->kafka_sasl_password);
    for (size_t i = 0; i < cfg->kafka_prop_count; i++) {
        free(cfg->kafka_props[i].name);
        free(cfg->kafka_props[i].value);
    }
    free(cfg->kafka_props);
    free(cfg->kafka_prop_names);
    free(cfg->kafka_prop_values);
    free(cfg->topic_prefix);
    free(cfg->mongodb_uri);
    free(cfg->mongodb_uri_redacted);
    free(cfg->mongodb_database);
    free(cfg->ploomes_base_url);
    free(cfg->ploomes_user_key);
    free(cfg->milvus_base_url);
    free(cfg->milvus_token);
    free(cfg->sync_since);
    free_tags(cfg->ticket_tags, cfg->ticket_tag_count);
    free(cfg->tickets_since);
    free(cfg->ticket_mesa);
    free(cfg->ticket_setor);
    free(cfg->ticket_tecnico);
    free(cfg->ticket_categoria_secundaria);
    free(cfg->ploomes_tag_ids);
    free_strv(cfg->problems, cfg->problem_count);
    free_strv(cfg->warnings, cfg->warning_count);
    for (size_t i = 0; i < cfg->entry_count; i++) {
        free(cfg->entries[i].name);
        free(cfg->entries[i].display);
        free(cfg->entries[i].path);
    }
    free(cfg->entries);
    memset(cfg, 0, sizeof *cfg);
}

static const char *source_name(config_source_t s)
{
    switch (s) {
    case CONFIG_SRC_DEFAULT: return "default";
    case CONFIG_SRC_ENV: return "env";
    case CONFIG_SRC_FILE: return "file";
    case CONFIG_SRC_UNSET: return "unset";
    }
    return "?";
}

void config_print(const config_t *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->entry_count; i++) {
        const config_entry_t *e = &cfg->entries[i];
        if (e->source == CONFIG_SRC_FILE)
            fprintf(out, "%s=%s  # file %s\n", e->name, e->display, e->path ? e->path : "");
        else
            fprintf(out, "%s=%s  # %s\n", e->name, e->display, source_name(e->source));
    }
    fprintf(out, "# MongoDB database: %s\n",
            cfg->mongodb_database ? cfg->mongodb_database : "pipeline");
    for (size_t i = 0; i < cfg->kafka_prop_count; i++) {
        const config_kafka_prop_t *p = &cfg->kafka_props[i];
        fprintf(out, "# librdkafka %s=%s\n", p->name, p->secret ? "***" : p->value);
    }
    for (size_t i = 0; i < cfg->warning_count; i++)
        fprintf(out, "# warning: %s\n", cfg->warnings[i]);
}

void config_print_problems(const config_t *cfg, FILE *out)
{
    for (size_t i = 0; i < cfg->problem_count; i++)
        fprintf(out, "config: %s\n", cfg->problems[i]);
}

void config_describe(unsigned needs, FILE *out)
{
    fprintf(out, "Environment:\n");
    for (size_t i = 0; i < NVARS; i++) {
        const var_def_t *d = &VARS[i];
        if (d->group != 0 && !(d->group & needs))
            continue;
        const char *req = (d->required_by & needs) ? " (required)" : "";
        if (d->def && d->def[0])
            fprintf(out, "  %-28s %s%s [default %s]\n", d->name, d->help, req, d->def);
        else
            fprintf(out, "  %-28s %s%s\n", d->name, d->help, req);
    }
    if (needs & CONFIG_NEED_KAFKA)
        fprintf(out, "  %-28s %s\n", "KAFKA_<NAME>",
                "any librdkafka property <name> ('_' -> '.'), e.g. "
                "KAFKA_SECURITY_PROTOCOL=SASL_SSL");
    fprintf(out, "  An empty variable counts as unset. Secrets may come from <NAME>_FILE.\n");
}

const char *config_ticket_category(const config_t *cfg, int64_t tag_id)
{
    for (size_t i = 0; i < cfg->ticket_tag_count; i++) {
        if (cfg->ticket_tags[i].tag_id == tag_id)
            return cfg->ticket_tags[i].category;
    }
    return NULL;
}
