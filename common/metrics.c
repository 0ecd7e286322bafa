/* metrics_: Prometheus registry and the /metrics /healthz /readyz server. See metrics.h. */
#include "metrics.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

const double METRICS_HTTP_BUCKETS[METRICS_HTTP_BUCKETS_N] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60};

#define METRICS_DEFAULT_STALE_MS 60000

typedef struct metrics_series {
    char **values;            /* nlabels strings, owned */
    double value;             /* counter / gauge */
    uint64_t *bucket_counts;  /* histogram: nbuckets non-cumulative counts (+Inf is count) */
    double sum;
    uint64_t count;
    struct metrics_series *next;
} metrics_series_t;

struct metrics_family {
    metrics_t *owner;
    char *name;
    char *help;
    metrics_type_t type;
    size_t nlabels;
    char *labels[METRICS_MAX_LABELS];
    double *buckets;
    size_t nbuckets;
    metrics_series_t *series_head, *series_tail;
    struct metrics_family *next;
};

struct metrics {
    pthread_mutex_t lock;
    metrics_family_t *head, *tail;
    _Atomic int64_t heartbeat_ms;
};

/* ---- registry ------------------------------------------------------------------------------ */

metrics_t *metrics_new(void)
{
    metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    atomic_store(&m->heartbeat_ms, clock_mono_ms());
    return m;
}

static void series_free(metrics_series_t *s, size_t nlabels)
{
    if (!s)
        return;
    if (s->values) {
        for (size_t i = 0; i < nlabels; i++)
            free(s->values[i]);
        free(s->values);
    }
    free(s->bucket_counts);
    free(s);
}

static void family_free(metrics_family_t *f)
{
    if (!f)
        return;
    metrics_series_t *s = f->series_head;
    while (s) {
        metrics_series_t *next = s->next;
        series_free(s, f->nlabels);
        s = next;
    }
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f->buckets);
    free(f);
}

void metrics_free(metrics_t *m)
{
    if (!m)
        return;
    metrics_family_t *f = m->head;
    while (f) {
        metrics_family_t *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static bool valid_name(const char *s, bool allow_colon)
{
    if (!s || !s[0])
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (allow_colon && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool same_labels(const metrics_family_t *f, const char *const *names, size_t n)
{
    if (f->nlabels != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(f->labels[i], names[i]) != 0)
            return false;
    return true;
}

static metrics_family_t *family_new(metrics_t *m, metrics_type_t type, const char *name,
                                    const char *help, const double *buckets, size_t nbuckets,
                                    const char *const *label_names)
{
    if (!m)
        return NULL;
    if (!valid_name(name, true)) {
        log_msg(LOG_ERROR, "metrics_invalid_name", "name=%s", name ? name : "(null)");
        return NULL;
    }
    size_t n = 0;
    while (label_names && label_names[n]) {
        const char *ln = label_names[n];
        if (n >= METRICS_MAX_LABELS || !valid_name(ln, false) || strncmp(ln, "__", 2) == 0 ||
            (type == METRICS_HISTOGRAM && strcmp(ln, "le") == 0)) {
            log_msg(LOG_ERROR, "metrics_invalid_label", "metric=%s label=%s", name, ln);
            return NULL;
        }
        n++;
    }
    if (type == METRICS_HISTOGRAM) {
        for (size_t i = 0; i < nbuckets; i++) {
            if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
                log_msg(LOG_ERROR, "metrics_invalid_buckets", "metric=%s", name);
                return NULL;
            }
        }
    }

    pthread_mutex_lock(&m->lock);
    metrics_family_t *f = NULL;
    for (metrics_family_t *it = m->head; it; it = it->next) {
        if (strcmp(it->name, name) == 0) {
            if (it->type == type && same_labels(it, label_names, n))
                f = it;
            else
                log_msg(LOG_ERROR, "metrics_conflicting_registration", "metric=%s", name);
            pthread_mutex_unlock(&m->lock);
            return f;
        }
    }
    f = calloc(1, sizeof *f);
    if (!f)
        goto oom;
    f->owner = m;
    f->type = type;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        f->labels[i] = strdup(label_names[i]);
        if (!f->labels[i])
            goto oom;
        f->nlabels = i + 1;
    }
    if (type == METRICS_HISTOGRAM && nbuckets > 0) {
        f->buckets = malloc(nbuckets * sizeof *f->buckets);
        if (!f->buckets)
            goto oom;
        memcpy(f->buckets, buckets, nbuckets * sizeof *f->buckets);
        f->nbuckets = nbuckets;
    }
    if (m->tail)
        m->tail->next = f;
    else
        m->head = f;
    m->tail = f;
    pthread_mutex_unlock(&m->lock);
    return f;
oom:
    pthread_mutex_unlock(&m->lock);
    family_free(f);
    return NULL;
}

metrics_family_t *metrics_counter_new(metrics_t *m, const char *name, const char *help,
                                      const char *const *label_names)
{
    return family_new(m, METRICS_COUNTER, name, help, NULL, 0, label_names);
}

metrics_family_t *metrics_gauge_new(metrics_t *m, const char *name, const char *help,
                                    const char *const *label_names)
{
    return family_new(m, METRICS_GAUGE, name, help, NULL, 0, label_names);
}

metrics_family_t *metrics_histogram_new(metrics_t *m, const char *name, const char *help,
                                        const double *buckets, size_t nbuckets,
                                        const char *const *label_names)
{
    if (!buckets)
        nbuckets = 0;
    return family_new(m, METRICS_HISTOGRAM, name, help, buckets, nbuckets, label_names);
}

static const char *label_value(const char *const *values, size_t i)
{
    if (!values || !values[i])
        return "";
    return values[i];
}

/* Finds (or with create, creates) the series for `values`. Lock held by the caller. */
static metrics_series_t *series_find(metrics_family_t *f, const char *const *values, bool create)
{
    for (metrics_series_t *s = f->series_head; s; s = s->next) {
        bool match = true;
        for (size_t i = 0; i < f->nlabels && match; i++)
            match = strcmp(s->values[i], label_value(values, i)) == 0;
        if (match)
            return s;
    }
    if (!create)
        return NULL;
    metrics_series_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (f->nlabels > 0) {
        s->values = calloc(f->nlabels, sizeof *s->values);
        if (!s->values)
            goto oom;
        for (size_t i = 0; i < f->nlabels; i++) {
            s->values[i] = strdup(label_value(values, i));
            if (!s->values[i])
                goto oom;
        }
    }
    if (f->type == METRICS_HISTOGRAM && f->nbuckets > 0) {
        s->bucket_counts = calloc(f->nbuckets, sizeof *s->bucket_counts);
        if (!s->bucket_counts)
            goto oom;
    }
    if (f->series_tail)
        f->series_tail->next = s;
    else
        f->series_head = s;
    f->series_tail = s;
    return s;
oom:
    series_free(s, f->nlabels);
    return NULL;
}

static void update(metrics_family_t *f, metrics_type_t want, const char *const *values, double v,
                   bool add)
{
    if (!f)
        return;
    if (f->type != want) {
        log_msg(LOG_ERROR, "metrics_wrong_type", "metric=%s", f->name);
        return;
    }
    if (isnan(v) || (want == METRICS_COUNTER && v < 0)) {
        log_msg(LOG_WARN, "metrics_bad_value", "metric=%s value=%g", f->name, v);
        return;
    }
    pthread_mutex_lock(&f->owner->lock);
    metrics_series_t *s = series_find(f, values, true);
    if (s) {
        if (want == METRICS_HISTOGRAM) {
            for (size_t i = 0; i < f->nbuckets; i++) {
                if (v <= f->buckets[i]) {
                    s->bucket_counts[i]++;
                    break;
                }
            }
            s->sum += v;
            s->count++;
        } else if (add) {
            s->value += v;
        } else {
            s->value = v;
        }
    }
    pthread_mutex_unlock(&f->owner->lock);
}

void metrics_counter_add(metrics_family_t *f, const char *const *label_values, double v)
{
    update(f, METRICS_COUNTER, label_values, v, true);
}

void metrics_gauge_set(metrics_family_t *f, const char *const *label_values, double v)
{
    update(f, METRICS_GAUGE, label_values, v, false);
}

void metrics_gauge_add(metrics_family_t *f, const char *const *label_values, double v)
{
    update(f, METRICS_GAUGE, label_values, v, true);
}

void metrics_histogram_observe(metrics_family_t *f, const char *const *label_values, double v)
{
    update(f, METRICS_HISTOGRAM, label_values, v, true);
}

double metrics_value(metrics_family_t *f, const char *const *label_values)
{
    if (!f)
        return 0;
    double v = 0;
    pthread_mutex_lock(&f->owner->lock);
    metrics_series_t *s = series_find(f, label_values, false);
    if (s)
        v = f->type == METRICS_HISTOGRAM ? (double)s->count : s->value;
    pthread_mutex_unlock(&f->owner->lock);
    return v;
}

/* ---- exposition ---------------------------------------------------------------------------- */

/* Shortest text that reads back as the same double; +Inf/-Inf/NaN as Prometheus spells them. */
static void format_double(char *buf, size_t size, double v)
{
    if (isnan(v)) {
        snprintf(buf, size, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, size, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void write_escaped(FILE *out, const char *s, bool quote_too)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (quote_too && *s == '"')
            fputs("\\\"", out);
        else
            fputc(*s, out);
    }
}

/* {a="x",b="y"[,le="..."]} or nothing when there are no labels at all. */
static void write_labels(FILE *out, const metrics_family_t *f, const metrics_series_t *s,
                         const char *le)
{
    if (f->nlabels == 0 && !le)
        return;
    fputc('{', out);
    for (size_t i = 0; i < f->nlabels; i++) {
        if (i > 0)
            fputc(',', out);
        fprintf(out, "%s=\"", f->labels[i]);
        write_escaped(out, s->values[i], true);
        fputc('"', out);
    }
    if (le)
        fprintf(out, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    fputc('}', out);
}

static const char *type_name(metrics_type_t t)
{
    switch (t) {
    case METRICS_COUNTER:
        return "counter";
    case METRICS_GAUGE:
        return "gauge";
    case METRICS_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

char *metrics_render(metrics_t *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    if (!out)
        return NULL;
    char num[64], le[64];
    pthread_mutex_lock(&m->lock);
    for (const metrics_family_t *f = m->head; f; f = f->next) {
        fprintf(out, "# HELP %s ", f->name);
        write_escaped(out, f->help, false);
        fprintf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        for (const metrics_series_t *s = f->series_head; s; s = s->next) {
            if (f->type != METRICS_HISTOGRAM) {
                fputs(f->name, out);
                write_labels(out, f, s, NULL);
                format_double(num, sizeof num, s->value);
                fprintf(out, " %s\n", num);
                continue;
            }
            uint64_t cumulative = 0;
            for (size_t i = 0; i < f->nbuckets; i++) {
                cumulative += s->bucket_counts[i];
                format_double(le, sizeof le, f->buckets[i]);
                fprintf(out, "%s_bucket", f->name);
                write_labels(out, f, s, le);
                fprintf(out, " %llu\n", (unsigned long long)cumulative);
            }
            fprintf(out, "%s_bucket", f->name);
            write_labels(out, f, s, "+Inf");
            fprintf(out, " %llu\n", (unsigned long long)s->count);
            fprintf(out, "%s_sum", f->name);
            write_labels(out, f, s, NULL);
            format_double(num, sizeof num, s->sum);
            fprintf(out, " %s\n", num);
            fprintf(out, "%s_count", f->name);
            write_labels(out, f, s, NULL);
            fprintf(out, " %llu\n", (unsigned long long)s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

void metrics_heartbeat(metrics_t *m)
{
    if (m)
        atomic_store(&m->heartbeat_ms, clock_mono_ms());
}

int64_t metrics_heartbeat_age_ms(const metrics_t *m)
{
    if (!m)
        return INT64_MAX;
    return clock_mono_ms() - atomic_load(&((metrics_t *)m)->heartbeat_ms);
}

/* ---- HTTP server ---------------------------------------------------------------------------- */

struct metrics_server {
    metrics_t *m;
    struct MHD_Daemon *daemon;
    int port;
    int64_t stale_after_ms;
    metrics_ready_fn ready;
    void *ready_ctx;
    int64_t started_ms; /* wall clock, for process_start_time_seconds */
    metrics_route_fn route;
    void *route_ctx;
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *ctype,
                               char *body, bool body_malloced)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(body), body, body_malloced ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
    if (!resp) {
        if (body_malloced)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* The registry's text followed by the gauges every process has: process_ready (what /readyz
 * says, so a dashboard and an alert can see it) and process_start_time_seconds. */
static char *render_with_process(metrics_server_t *srv)
{
    char *rendered = metrics_render(srv->m);
    if (!rendered)
        return NULL;
    char why[256] = "";
    bool ok = srv->ready ? srv->ready(srv->ready_ctx, why, sizeof why) : true;
    char tail[512];
    int n = snprintf(tail, sizeof tail,
                     "# HELP process_ready 1 when /readyz answers 200 (Kafka and MongoDB reachable)\n"
                     "# TYPE process_ready gauge\nprocess_ready %d\n"
                     "# HELP process_start_time_seconds Start time of the process since the Unix "
                     "epoch\n# TYPE process_start_time_seconds gauge\n"
                     "process_start_time_seconds %lld\n",
                     ok ? 1 : 0, (long long)(srv->started_ms / 1000));
    if (n < 0 || (size_t)n >= sizeof tail)
        return rendered;
    size_t len = strlen(rendered);
    char *grown = realloc(rendered, len + (size_t)n + 1);
    if (!grown) {
        free(rendered);
        return NULL;
    }
    memcpy(grown + len, tail, (size_t)n + 1);
    return grown;
}

const char *metrics_request_arg(const metrics_request_t *req, const char *name)
{
    if (!req || !req->conn_ || !name)
        return NULL;
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn_,
                                       MHD_GET_ARGUMENT_KIND, name);
}

/* Decodes one form-urlencoded token of n bytes into out ('+' = space, then %XX by
 * libmicrohttpd); -2 when it does not fit or decodes to a NUL. */
static int form_decode(const char *in, size_t n, char *out, size_t size)
{
    if (n >= size)
        return -2;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] == '+' ? ' ' : in[i];
    out[n] = '\0';
    if (memchr(out, '\0', n))
        return -2;
    size_t len = MHD_http_unescape(out);
    return strlen(out) == len ? (int)len : -2;
}

int metrics_form_value(const char *body, size_t len, const char *name, char *out, size_t size)
{
    if (!out || size == 0)
        return -2;
    out[0] = '\0';
    if (!body || !name)
        return -1;
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - body) : len;
        const char *eq = memchr(body + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - (body + i)) : end - i;
        char key[256];
        if (klen < sizeof key && form_decode(body + i, klen, key, sizeof key) >= 0 &&
            strlen(key) == nl && memcmp(key, name, nl) == 0) {
            size_t vstart = eq ? (size_t)(eq - body) + 1 : end;
            int r = form_decode(body + vstart, end - vstart, out, size);
            if (r < 0)
                out[0] = '\0';
            return r;
        }
        i = end + 1;
    }
    return -1;
}

/* A POST body being received (the connection's con_cls until the request completes). */
typedef struct {
    char *buf;
    size_t len;
    bool too_big;
} upload_t;

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    upload_t *up = *con_cls;
    if (up) {
        free(up->buf);
        free(up);
        *con_cls = NULL;
    }
}

static bool builtin_path(const char *url)
{
    return strcmp(url, "/metrics") == 0 || strcmp(url, "/healthz") == 0 ||
           strcmp(url, "/readyz") == 0;
}

static enum MHD_Result route_call(metrics_server_t *srv, struct MHD_Connection *conn,
                                  const char *method, const char *url, const upload_t *up)
{
    static const char text[] = "text/plain; charset=utf-8";
    const char *ctype_in =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    metrics_request_t req = {.method = method, .path = url,
                             .content_type = ctype_in ? ctype_in : "",
                             .body = up && up->buf ? up->buf : "",
                             .body_len = up ? up->len : 0, .conn_ = conn};
    unsigned status = MHD_HTTP_OK;
    const char *ctype = text;
    char *routed = NULL;
    if (srv->route(srv->route_ctx, &req, &status, &ctype, &routed) == 0 && routed)
        return respond(conn, status, ctype, routed, true);
    free(routed);
    if (strcmp(method, "POST") == 0)
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n", false);
    return respond(conn, MHD_HTTP_NOT_FOUND, text, "not found\n", false);
}

/* POST: collects the body (at most METRICS_BODY_MAX bytes) over the handler's calls, then asks
 * the route. */
static enum MHD_Result handle_post(metrics_server_t *srv, struct MHD_Connection *conn,
                                   const char *url, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    static const char text[] = "text/plain; charset=utf-8";
    upload_t *up = *con_cls;
    if (!up) { /* first call: headers only */
        if (!srv->route || builtin_path(url))
            return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n",
                           false);
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end = NULL;
        errno = 0;
        long long n = cl ? strtoll(cl, &end, 10) : 0;
        if (cl && (errno != 0 || !end || *end || n < 0 || n > METRICS_BODY_MAX))
            return respond(conn, MHD_HTTP_CONTENT_TOO_LARGE, text, "request body too large\n",
                           false);
        up = calloc(1, sizeof *up);
        if (!up)
            return MHD_NO;
        *con_cls = up;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (up->too_big || up->len + n > METRICS_BODY_MAX) {
            up->too_big = true; /* keep reading and dropping; answer 413 at the end */
            return MHD_YES;
        }
        char *grown = realloc(up->buf, up->len + n + 1);
        if (!grown)
            return MHD_NO;
        memcpy(grown + up->len, upload_data, n);
        up->buf = grown;
        up->len += n;
        up->buf[up->len] = '\0';
        return MHD_YES;
    }
    if (up->too_big)
        return respond(conn, MHD_HTTP_CONTENT_TOO_LARGE, text, "request body too large\n", false);
    return route_call(srv, conn, "POST", url, up);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    (void)version;
    metrics_server_t *srv = cls;
    static const char text[] = "text/plain; charset=utf-8";
    char body[512];

    if (strcmp(method, "POST") == 0)
        return handle_post(srv, conn, url, upload_data, upload_data_size, con_cls);
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* ignore any request body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "method not allowed\n", false);

    if (strcmp(url, "/metrics") == 0) {
        char *rendered = render_with_process(srv);
        if (!rendered)
            return respond(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, text, "out of memory\n", false);
        return respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", rendered,
                       true);
    }
    if (strcmp(url, "/healthz") == 0) {
        int64_t age = metrics_heartbeat_age_ms(srv->m);
        if (age <= srv->stale_after_ms)
            return respond(conn, MHD_HTTP_OK, text, "ok\n", false);
        snprintf(body, sizeof body, "stale: last heartbeat %lld ms ago (limit %lld ms)\n",
                 (long long)age, (long long)srv->stale_after_ms);
        return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, body, false);
    }
    if (strcmp(url, "/readyz") == 0) {
        char why[256] = "";
        bool ok = srv->ready ? srv->ready(srv->ready_ctx, why, sizeof why) : true;
        if (ok)
            return respond(conn, MHD_HTTP_OK, text, "ready\n", false);
        snprintf(body, sizeof body, "not ready: %s\n", why[0] ? why : "(no reason given)");
        return respond(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, body, false);
    }
    if (srv->route)
        return route_call(srv, conn, "GET", url, NULL);
    return respond(conn, MHD_HTTP_NOT_FOUND, text, "not found\n", false);
}

int metrics_server_start(metrics_t *m, const metrics_server_config_t *cfg,
                         metrics_server_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->port == METRICS_PORT_OFF)
        return 0;
    if (!m || (cfg->port != METRICS_PORT_AUTO && (cfg->port < 1 || cfg->port > 65535))) {
        errbuf_set(err, errlen, "METRICS_PORT=%d is not a port (expected 0 = off or 1..65535)",
                   cfg->port);
        return -1;
    }
    const char *addr_text = cfg->bind_address && cfg->bind_address[0] ? cfg->bind_address
                                                                       : "0.0.0.0";
    uint16_t port = cfg->port == METRICS_PORT_AUTO ? 0 : (uint16_t)cfg->port;
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    bool v6 = false;
    if (inet_pton(AF_INET, addr_text, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sslen = sizeof *sin;
    } else if (inet_pton(AF_INET6, addr_text, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sslen = sizeof *sin6;
        v6 = true;
    } else {
        errbuf_set(err, errlen, "metrics bind address '%s' is not a numeric IPv4/IPv6 address",
                   addr_text);
        return -1;
    }

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        errbuf_set(err, errlen, "metrics server: socket(): %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        errbuf_set(err, errlen, "METRICS_PORT=%d: cannot listen on %s:%u: %s", cfg->port,
                   addr_text, (unsigned)port, strerror(e));
        return -1;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        int e = errno;
        close(fd);
        errbuf_set(err, errlen, "metrics server: getsockname(): %s", strerror(e));
        return -1;
    }
    int bound_port = bound.ss_family == AF_INET6
                         ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                         : ntohs(((struct sockaddr_in *)&bound)->sin_port);

    metrics_server_t *srv = calloc(1, sizeof *srv);
    if (!srv) {
        close(fd);
        errbuf_set(err, errlen, "metrics server: out of memory");
        return -1;
    }
    srv->m = m;
    srv->port = bound_port;
    srv->stale_after_ms = cfg->stale_after_ms > 0 ? cfg->stale_after_ms : METRICS_DEFAULT_STALE_MS;
    srv->ready = cfg->ready;
    srv->ready_ctx = cfg->ready_ctx;
    srv->started_ms = clock_wall_ms();
    srv->route = cfg->route;
    srv->route_ctx = cfg->route_ctx;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (v6 ? MHD_USE_IPv6 : 0);
    /* MHD owns the listening socket from here and closes it in MHD_stop_daemon(). */
    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, handle, srv, MHD_OPTION_LISTEN_SOCKET,
                                   (MHD_socket)fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                                   MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
                                   MHD_OPTION_END);
    if (!srv->daemon) {
        close(fd);
        free(srv);
        errbuf_set(err, errlen, "METRICS_PORT=%d: libmicrohttpd could not start on %s:%d",
                   cfg->port, addr_text, bound_port);
        return -1;
    }
    log_msg(LOG_INFO, "metrics_listening", "address=%s port=%d", addr_text, bound_port);
    *out = srv;
    return 0;
}

int metrics_server_port(const metrics_server_t *srv) { return srv ? srv->port : 0; }

void metrics_server_stop(metrics_server_t *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->daemon);
    free(srv);
}
