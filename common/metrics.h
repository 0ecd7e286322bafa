/* metrics_: Prometheus counters, gauges and histograms, and the /metrics /healthz /readyz server
 * (SPEC §7).
 *
 * A registry (metrics_t) holds metric families; a family has a name, a help text, a type and a
 * fixed list of label names; each distinct tuple of label values is one series, created on its
 * first use. Rendering follows the Prometheus text exposition format 0.0.4: "# HELP" (with \\ and
 * \n escaped) and "# TYPE" lines per family, families in registration order, series in creation
 * order, label values escaped (\\, \", \n), histograms as cumulative _bucket{le="..."} series plus
 * le="+Inf", _sum and _count.
 *
 * Names: metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do
 * not start with "__"; "le" is reserved for histograms. Invalid names make the *_new() calls
 * return NULL (a programming error, also logged).
 *
 * Label values are passed as an array of exactly as many strings as the family has label names
 * (NULL or an array of NULL entries count as ""), e.g.
 *     metrics_family_t *rec = metrics_counter_new(m, "pipeline_records_total",
 *             "Records by terminal outcome.", (const char *[]){"outcome", "reason", NULL});
 *     metrics_counter_add(rec, (const char *[]){"delivered", ""}, 1);
 * Families without labels take NULL for both arrays.
 *
 * Thread-safety: every function may be called from any thread (one mutex per registry; the
 * heartbeat is an atomic). The readiness callback runs on the server's thread.
 * Ownership: metrics_new() -> metrics_free(); families belong to the registry (never free them;
 * they stay valid until metrics_free()). metrics_render() returns malloc'd text: free() it.
 * metrics_server_start() -> metrics_server_stop(); stop the server before freeing the registry.
 * There is no global registry (no global mutable state): pass the metrics_t around.
 */
#ifndef PIPELINE_METRICS_H
#define PIPELINE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics_t;
typedef struct metrics_family metrics_family_t;

typedef enum { METRICS_COUNTER = 0, METRICS_GAUGE = 1, METRICS_HISTOGRAM = 2 } metrics_type_t;

/* Default buckets for HTTP request latency in seconds (METRICS_HTTP_BUCKETS_N of them). */
#define METRICS_HTTP_BUCKETS_N 14
extern const double METRICS_HTTP_BUCKETS[METRICS_HTTP_BUCKETS_N];

/* Label value arrays hold at most this many entries. */
#define METRICS_MAX_LABELS 8

/* New empty registry; NULL only when out of memory. */
metrics_t *metrics_new(void);
/* Frees the registry and its families. NULL is ignored. */
void metrics_free(metrics_t *m);

/* Registers a family. `label_names` is a NULL-terminated array (NULL = no labels). Registering
 * the same name again with the same type and label names returns the existing family (so
 * modules can register lazily); with a different type or labels it returns NULL (logged).
 * NULL also on invalid names or out of memory. */
metrics_family_t *metrics_counter_new(metrics_t *m, const char *name, const char *help,
                                      const char *const *label_names);
metrics_family_t *metrics_gauge_new(metrics_t *m, const char *name, const char *help,
                                    const char *const *label_names);
/* `buckets`: `nbuckets` strictly increasing finite upper bounds (+Inf is implicit); copied. */
metrics_family_t *metrics_histogram_new(metrics_t *m, const char *name, const char *help,
                                        const double *buckets, size_t nbuckets,
                                        const char *const *label_names);

/* Counter: adds `v` (>= 0; a negative or NaN v is ignored and logged) to the series. */
void metrics_counter_add(metrics_family_t *f, const char *const *label_values, double v);
/* Gauge: sets / adds (v may be negative). */
void metrics_gauge_set(metrics_family_t *f, const char *const *label_values, double v);
void metrics_gauge_add(metrics_family_t *f, const char *const *label_values, double v);
/* Histogram: one observation (e.g. seconds of an HTTP request). NaN is ignored. */
void metrics_histogram_observe(metrics_family_t *f, const char *const *label_values, double v);

/* Current value of a counter or gauge series, or a histogram's _count (tests, pipeline-status).
 * 0 when the series does not exist yet. NULL f returns 0. */
double metrics_value(metrics_family_t *f, const char *const *label_values);

/* Renders the whole registry as Prometheus text (ends with a newline). malloc'd; NULL only when
 * out of memory. */
char *metrics_render(metrics_t *m);

/* Liveness: the main loop calls this every turn (and while it sleeps, at least every few
 * seconds). Cheap (one atomic store). The registry is created "fresh" (as if heartbeat was
 * called by metrics_new()). */
void metrics_heartbeat(metrics_t *m);
/* Milliseconds since the last heartbeat (monotonic clock). */
int64_t metrics_heartbeat_age_ms(const metrics_t *m);

/* ---- HTTP server (libmicrohttpd) ------------------------------------------------------------ */

/* Readiness callback: returns true when ready (connected to Kafka and MongoDB). May write a short
 * reason (no secrets) into `why`, returned in the 503 body. Runs on the server thread: must be
 * thread-safe and fast (no network round trip longer than a second or two; cache results). */
typedef bool (*metrics_ready_fn)(void *ctx, char *why, size_t whylen);

#define METRICS_PORT_OFF 0
#define METRICS_PORT_AUTO (-1) /* bind an ephemeral port; read it back with metrics_server_port() */

/* Optional extra routes (e.g. pipeline-status's page, its JSON and its replay form), called on
 * the server's thread for GET/HEAD on every path other than /metrics, /healthz and /readyz, and
 * for POST on every path (POST to those three stays 405, and POST is 405 when there is no route).
 * The request, borrowed for the call: */
#define METRICS_BODY_MAX (64 * 1024) /* a larger POST body is answered 413 without a route call */
typedef struct {
    const char *method;       /* "GET" (HEAD too: the server drops the body) or "POST" */
    const char *path;         /* the path without the query string, e.g. "/letter" */
    const char *content_type; /* the request's Content-Type, "" when absent */
    const char *body;         /* the POST body, NUL-terminated ("" for GET); at most
                                 METRICS_BODY_MAX bytes; may hold NULs (use body_len) */
    size_t body_len;
    void *conn_;              /* the server's; use metrics_request_arg() */
} metrics_request_t;

/* Query argument `name` of the request, percent-decoded, or NULL when absent (the first one
 * when repeated). Valid during the route call. */
const char *metrics_request_arg(const metrics_request_t *req, const char *name);

/* Value of field `name` in an application/x-www-form-urlencoded body of `len` bytes, decoded
 * ('+' = space, %XX; a malformed escape is kept as it is) into out (NUL-terminated). Returns its
 * length, -1 when the field is absent, -2 when it does not fit in `size` or holds a NUL (out is
 * then ""). */
int metrics_form_value(const char *body, size_t len, const char *name, char *out, size_t size);

/* To answer, return 0 and set *status, *content_type (a static string) and *body (malloc'd,
 * NUL-terminated; the server frees it). Return -1 to let the server answer 404 (405 for a POST).
 */
typedef int (*metrics_route_fn)(void *ctx, const metrics_request_t *req, unsigned *status,
                                const char **content_type, char **body);

typedef struct {
    const char *bind_address; /* numeric IPv4/IPv6 address; NULL = "0.0.0.0" (docker needs it);
                                 "127.0.0.1" for loopback only */
    int port;                 /* METRICS_PORT (1..65535), METRICS_PORT_OFF, METRICS_PORT_AUTO */
    int64_t stale_after_ms;   /* /healthz is 503 when the last heartbeat is older; 0 = 60000 */
    metrics_ready_fn ready;   /* NULL = always ready */
    void *ready_ctx;
    metrics_route_fn route;   /* NULL = no other routes */
    void *route_ctx;
} metrics_server_config_t;

typedef struct metrics_server metrics_server_t;

/* Starts serving on its own thread:
 *   GET /metrics  200 text/plain; version=0.0.4  (metrics_render(), then the gauges
 *                 process_ready — 1 when the ready callback says so — and
 *                 process_start_time_seconds)
 *   GET /healthz  200 "ok" when the heartbeat is fresh, else 503 "stale: last heartbeat N ms ago"
 *   GET /readyz   200 "ready" when cfg->ready says so, else 503 "not ready: <why>"
 *   other paths: cfg->route (see metrics_route_fn), else 404; POST only through cfg->route
 *   (bodies over METRICS_BODY_MAX: 413); other methods 405 (HEAD is answered like GET).
 * On success returns 0 and *out = the server, or *out = NULL when cfg->port is METRICS_PORT_OFF.
 * On failure (port in use, bad address) returns -1, *out = NULL, err names METRICS_PORT and why.
 * `m` must outlive the server. */
int metrics_server_start(metrics_t *m, const metrics_server_config_t *cfg,
                         metrics_server_t **out, char *err, size_t errlen);

/* The port actually bound (the ephemeral one for METRICS_PORT_AUTO); 0 for NULL. */
int metrics_server_port(const metrics_server_t *srv);

/* Stops the thread, closes the socket, frees. NULL is ignored. */
void metrics_server_stop(metrics_server_t *srv);

#endif
