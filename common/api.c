/* api_: one SaaS account's client: auth header, retries, backoff, rate limit. See api.h. */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "errbuf.h"
#include "log.h"
#include "metrics.h"

#define API_SLICE_MS 100
#define API_MSG_BODY 400

struct api {
    api_kind_t kind;
    char *base_url;    /* no trailing '/' */
    char *auth_header; /* "User-Key: <key>" / "Authorization: <token>": the ONLY place it exists */
    char *origin;      /* "scheme://host:port", lowercase, explicit port */
    http_client_t *http;
    int max_attempts;
    int64_t retry_base_ms;
    int64_t retry_max_ms;
    ratelimit_t *ratelimit;
    volatile sig_atomic_t *stop;
    api_wait_fn wait_hook;
    void *wait_ctx;
    bool forbidden_is_retriable;
    int64_t forbidden_pause_ms;
    void (*on_store_state)(void *ctx, bool up);
    int64_t store_retry_ms;
    bool store_down;                  /* the limiter's MongoDB failed last time we asked */
    int64_t store_down_since_ms;      /* mono, when it did */
    /* metrics (all NULL when api_options_t.metrics is NULL: metrics_ ignores a NULL family) */
    metrics_family_t *m_duration;     /* {api, method, status} histogram, per attempt */
    metrics_family_t *m_requests;     /* {api, method, outcome} per api_request() */
    metrics_family_t *m_retries;      /* {api, reason} */
    metrics_family_t *m_retry_wait;   /* {api} seconds of backoff */
    metrics_family_t *m_rl_waits;     /* {api} acquisitions that waited */
    metrics_family_t *m_rl_wait;      /* {api} seconds waited for the rate limit */
    int64_t rl_wait_mark_ms;          /* rate-limit wait metered up to here (mono), or -1 */
};

const char *api_kind_name(api_kind_t kind) { return kind == API_MILVUS ? "milvus" : "ploomes"; }

const char *api_outcome_name(api_outcome_t outcome)
{
    switch (outcome) {
    case API_OK: return "ok";
    case API_RETRIABLE_EXHAUSTED: return "retriable_exhausted";
    case API_PERMANENT: return "permanent";
    case API_AUTH: return "auth";
    case API_AMBIGUOUS: return "ambiguous";
    case API_STOPPED: return "stopped";
    }
    return "permanent";
}

/* "scheme://host:port" of an absolute URL (lowercase, default port explicit) into a new string,
 * or NULL when the URL does not parse. */
static char *origin_of(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL, *result = NULL;
    if (!u)
        return NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
        goto out;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        goto out;
    size_t n = strlen(scheme) + strlen(host) + strlen(port) + 5;
    result = malloc(n);
    if (!result)
        goto out;
    snprintf(result, n, "%s://%s:%s", scheme, host, port);
    for (char *p = result; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return result;
}

/* Registers the families of api.h's "Metrics" (the same family again when already registered).
 * Returns 0, or -1 with err naming the metric. */
static int register_metrics(api_t *api, metrics_t *m, char *err, size_t errlen)
{
    static const char *const l_attempt[] = {"api", "method", "status", NULL};
    static const char *const l_request[] = {"api", "method", "outcome", NULL};
    static const char *const l_reason[] = {"api", "reason", NULL};
    static const char *const l_api[] = {"api", NULL};
    const struct {
        metrics_family_t **slot;
        const char *name;
        const char *help;
        const char *const *labels;
    } counters[] = {
        {&api->m_requests, "http_requests_total",
         "API calls (retries included) by final outcome: ok, retriable_exhausted, permanent, "
         "auth, ambiguous, stopped.",
         l_request},
        {&api->m_retries, "http_retries_total",
         "Retries of API calls, by the error class of the failed attempt (HttpStatus503, "
         "HttpStatus429, CurlTimeout...).",
         l_reason},
        {&api->m_retry_wait, "http_retry_wait_seconds_total",
         "Seconds spent waiting between retries (backoff and Retry-After).", l_api},
        {&api->m_rl_waits, "ratelimit_waits_total",
         "Acquisitions of the shared rate limit that had to wait for the budget.", l_api},
        {&api->m_rl_wait, "ratelimit_wait_seconds_total",
         "Seconds spent waiting for the shared rate limit.", l_api},
    };
    const char *failed = NULL;
    api->m_duration = metrics_histogram_new(
        m, "http_request_duration_seconds",
        "Duration of each HTTP attempt to a SaaS API; status is the HTTP status code or, when "
        "no response arrived, the transport error class (CurlTimeout, CurlConnect...).",
        METRICS_HTTP_BUCKETS, METRICS_HTTP_BUCKETS_N, l_attempt);
    if (!api->m_duration)
        failed = "http_request_duration_seconds";
    for (size_t i = 0; !failed && i < sizeof counters / sizeof counters[0]; i++) {
        *counters[i].slot =
            metrics_counter_new(m, counters[i].name, counters[i].help, counters[i].labels);
        if (!*counters[i].slot)
            failed = counters[i].name;
    }
    if (failed) {
        errbuf_set(err, errlen,
                   "%s: metric %s could not be registered (out of memory, or the name is already "
                   "registered with another type or other labels)",
                   api_kind_name(api->kind), failed);
        return -1;
    }
    return 0;
}

static bool is_absolute(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

api_t *api_new(const api_options_t *opts, char *err, size_t errlen)
{
    const char *name = opts ? api_kind_name(opts->kind) : "api";
    if (!opts || !opts->base_url || !opts->base_url[0]) {
        errbuf_set(err, errlen, "%s: base URL is empty (set %s_BASE_URL)", name,
                   opts && opts->kind == API_MILVUS ? "MILVUS" : "PLOOMES");
        return NULL;
    }
    if (!opts->secret || !opts->secret[0]) {
        errbuf_set(err, errlen, "%s: credential is empty (set %s)", name,
                   opts->kind == API_MILVUS ? "MILVUS_TOKEN" : "PLOOMES_USER_KEY");
        return NULL;
    }
    for (const unsigned char *p = (const unsigned char *)opts->secret; *p; p++) {
        if (*p < 0x20 || *p == 0x7F) {
            errbuf_set(err, errlen, "%s: credential (%s) contains control characters", name,
                       opts->kind == API_MILVUS ? "MILVUS_TOKEN" : "PLOOMES_USER_KEY");
            return NULL;
        }
    }
    if (!is_absolute(opts->base_url)) {
        errbuf_set(err, errlen, "%s: base URL '%s' must start with http:// or https://", name,
                   opts->base_url);
        return NULL;
    }
    api_t *api = calloc(1, sizeof *api);
    if (!api) {
        errbuf_set(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    api->kind = opts->kind;
    api->base_url = strdup(opts->base_url);
    if (!api->base_url)
        goto oom;
    size_t bl = strlen(api->base_url);
    while (bl > 0 && api->base_url[bl - 1] == '/')
        api->base_url[--bl] = '\0';
    api->origin = origin_of(api->base_url);
    if (!api->origin) {
        errbuf_set(err, errlen, "%s: base URL '%s' is not a valid URL", name, api->base_url);
        goto fail;
    }
    const char *hname = opts->kind == API_MILVUS ? "Authorization" : "User-Key";
    size_t hl = strlen(hname) + strlen(opts->secret) + 3;
    api->auth_header = malloc(hl);
    if (!api->auth_header)
        goto oom;
    snprintf(api->auth_header, hl, "%s: %s", hname, opts->secret);

    http_options_t ho = {.connect_timeout_ms = opts->connect_timeout_ms,
                         .total_timeout_ms = opts->total_timeout_ms,
                         .max_body_bytes = opts->max_body_bytes};
    char herr[256];
    api->http = http_client_new(&ho, herr, sizeof herr);
    if (!api->http) {
        errbuf_set(err, errlen, "%s: %s", name, herr);
        goto fail;
    }
    api->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : 3;
    api->retry_base_ms = opts->retry_base_ms >= 0 ? opts->retry_base_ms : 5000;
    api->retry_max_ms = opts->retry_max_ms > 0 ? opts->retry_max_ms : 60000;
    api->ratelimit = opts->ratelimit;
    api->stop = opts->stop;
    api->wait_hook = opts->wait_hook;
    api->wait_ctx = opts->wait_ctx;
    api->forbidden_is_retriable =
        opts->override_forbidden ? opts->forbidden_is_retriable : opts->kind == API_PLOOMES;
    api->forbidden_pause_ms = opts->forbidden_pause_ms > 0 ? opts->forbidden_pause_ms : 30000;
    api->on_store_state = opts->on_store_state;
    api->store_retry_ms = opts->store_retry_ms > 0 ? opts->store_retry_ms : 1000;
    api->rl_wait_mark_ms = -1;
    if (opts->metrics && register_metrics(api, opts->metrics, err, errlen) != 0)
        goto fail;
    return api;

oom:
    errbuf_set(err, errlen, "%s: out of memory", name);
fail:
    api_free(api);
    return NULL;
}

void api_free(api_t *api)
{
    if (!api)
        return;
    http_client_free(api->http);
    if (api->auth_header) {
        /* do not leave the credential in freed heap memory */
        volatile char *p = api->auth_header;
        while (*p)
            *p++ = '\0';
        free(api->auth_header);
    }
    free(api->base_url);
    free(api->origin);
    free(api);
}

const char *api_base_url(const api_t *api) { return api->base_url; }

bool api_same_origin(const api_t *api, const char *url)
{
    if (!url || !is_absolute(url))
        return false;
    char *o = origin_of(url);
    bool same = o && strcmp(o, api->origin) == 0;
    free(o);
    return same;
}

void api_result_clear(api_result_t *out)
{
    if (!out)
        return;
    free(out->body);
    memset(out, 0, sizeof *out);
}

const char *api_result_excerpt(const api_result_t *res, size_t max_bytes, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    size_t n = res && res->body ? res->body_len : 0;
    if (n > max_bytes)
        n = max_bytes;
    if (n > size - 1)
        n = size - 1;
    if (res && res->body && n < res->body_len)
        while (n > 0 && (((unsigned char)res->body[n]) & 0xC0) == 0x80)
            n--;
    if (n)
        memcpy(buf, res->body, n);
    buf[n] = '\0';
    return buf;
}

/* Adds the time since *mark_ms to the {api} seconds counter `seconds` and moves the mark to now
 * (a mark < 0 only starts the meter). Called every slice, so a long wait shows on /metrics
 * while it lasts. */
static void meter_tick(const api_t *api, metrics_family_t *seconds, int64_t *mark_ms)
{
    int64_t now = clock_mono_ms();
    if (*mark_ms >= 0 && now > *mark_ms)
        metrics_counter_add(seconds, (const char *[]){api_kind_name(api->kind)},
                            (double)(now - *mark_ms) / 1000.0);
    *mark_ms = now;
}

/* ratelimit_acquire() calls this only while the budget is spent: its first call counts one
 * wait and starts the meter (see ratelimit_acquire_measured). */
static int api_ratelimit_hook(void *ctx, int64_t remaining_ms)
{
    api_t *api = ctx;
    if (api->rl_wait_mark_ms < 0)
        metrics_counter_add(api->m_rl_waits, (const char *[]){api_kind_name(api->kind)}, 1);
    meter_tick(api, api->m_rl_wait, &api->rl_wait_mark_ms);
    if (api->stop && *api->stop)
        return 1;
    if (api->wait_hook)
        return api->wait_hook(api->wait_ctx, remaining_ms);
    int64_t slice = remaining_ms < API_SLICE_MS ? remaining_ms : API_SLICE_MS;
    struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}

/* ratelimit_acquire() through api_ratelimit_hook, metering the wait (from its first slice to
 * the ticket, the stop or the limiter's failure) when there was one. Returns what
 * ratelimit_acquire() returns. */
static int ratelimit_acquire_measured(api_t *api, char *err, size_t errlen)
{
    api->rl_wait_mark_ms = -1;
    int r = ratelimit_acquire(api->ratelimit, api->stop, api_ratelimit_hook, api, err, errlen);
    if (api->rl_wait_mark_ms >= 0)
        meter_tick(api, api->m_rl_wait, &api->rl_wait_mark_ms);
    api->rl_wait_mark_ms = -1;
    return r;
}

/* One observation of http_request_duration_seconds for a finished attempt. */
static void observe_attempt(api_t *api, const char *method, const http_response_t *resp)
{
    if (!api->m_duration)
        return;
    char status[48];
    if (resp->transport == HTTP_TRANSPORT_OK)
        snprintf(status, sizeof status, "%ld", resp->status);
    else
        http_error_class(resp->status, resp->transport, status, sizeof status);
    metrics_histogram_observe(api->m_duration,
                              (const char *[]){api_kind_name(api->kind), method, status},
                              (double)resp->elapsed_ms / 1000.0);
}

static void record_failure(api_result_t *out)
{
    clock_rfc3339(clock_wall_ms(), out->last_failure, sizeof out->last_failure);
    if (!out->first_failure[0])
        memcpy(out->first_failure, out->last_failure, sizeof out->first_failure);
}

/* One api_request() call: what every step needs to name it in logs. */
typedef struct {
    http_method_t method;
    const char *mname;            /* "GET", "POST", ... */
    const char *kname;            /* "ploomes" / "milvus" */
    const char *url;
    const char *const *headers;
    const char *body;
    bool idempotent;
    char q[600];                  /* the redacted URL, quoted for logfmt */
} request_t;

/* What one attempt ended with. */
typedef enum {
    VERDICT_OK,        /* 2xx */
    VERDICT_RETRY,     /* retriable, and safe to send again */
    VERDICT_AUTH,      /* 401 */
    VERDICT_PERMANENT, /* final failure */
    VERDICT_AMBIGUOUS  /* a create that may have taken effect (api.h "Idempotence") */
} verdict_t;

/* api.h "Idempotence": the verdict on one finished HTTP exchange. */
static verdict_t judge(const api_t *api, const request_t *rq, const http_response_t *resp)
{
    http_class_t cls = http_classify_response(resp, api->forbidden_is_retriable);
    if (cls == HTTP_CLASS_SUCCESS)
        return VERDICT_OK;
    if (cls == HTTP_CLASS_AUTH)
        return VERDICT_AUTH;
    /* Milvus answers a bad token with 401 or 403 (SPEC §4): both mean the key is wrong. */
    if (api->kind == API_MILVUS && resp->transport == HTTP_TRANSPORT_OK && resp->status == 403)
        return VERDICT_AUTH;
    if (!rq->idempotent) {
        if (resp->transport != HTTP_TRANSPORT_OK && resp->request_sent)
            return VERDICT_AMBIGUOUS;
        if (resp->transport == HTTP_TRANSPORT_OK &&
            (resp->status == 408 || (resp->status >= 500 && resp->status <= 599)))
            return VERDICT_AMBIGUOUS;
        /* A redirect to a create (never followed) may come after the server acted: 303 See
         * Other is how an HTTP server says "created, look there"; a proxy or load balancer
         * may redirect after the backend processed it. Not a client error: searched first. */
        if (resp->transport == HTTP_TRANSPORT_OK && resp->status >= 300 && resp->status <= 399)
            return VERDICT_AMBIGUOUS;
    }
    return cls == HTTP_CLASS_RETRIABLE ? VERDICT_RETRY : VERDICT_PERMANENT;
}

/* Pauses every process of the account for ms (after a 429 or a Ploomes 403). A failure is
 * logged: the retry still happens, only less politely. */
static void penalize(api_t *api, const request_t *rq, int64_t ms)
{
    char perr[256], q[300];
    if (!api->ratelimit || ms <= 0)
        return;
    if (ratelimit_penalize(api->ratelimit, ms, perr, sizeof perr) != 0)
        log_msg(LOG_WARN, "ratelimit_penalize_failed", "api=%s pause_ms=%lld error=%s",
                rq->kname, (long long)ms, log_quote(q, sizeof q, perr));
}

/* Waits ms, through the hook or in slices, adding the time to the {api} counter `meter` (NULL:
 * not metered); returns 1 when stopped early, else 0. */
static int api_wait(api_t *api, int64_t ms, metrics_family_t *meter)
{
    int64_t mark = clock_mono_ms();
    int64_t deadline = mark + ms;
    int stopped = 0;
    for (;;) {
        meter_tick(api, meter, &mark);
        if (api->stop && *api->stop) {
            stopped = 1;
            break;
        }
        int64_t remaining = deadline - clock_mono_ms();
        if (remaining <= 0)
            break;
        if (api->wait_hook) {
            int64_t before = clock_mono_ms();
            if (api->wait_hook(api->wait_ctx, remaining) != 0) {
                stopped = 1;
                break;
            }
            if (clock_mono_ms() == before) {
                /* a hook that returns at once would spin: give the CPU a break */
                struct timespec ts = {0, 1000000L};
                nanosleep(&ts, NULL);
            }
        } else {
            int64_t slice = remaining < API_SLICE_MS ? remaining : API_SLICE_MS;
            struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    meter_tick(api, meter, &mark);
    return stopped;
}

/* Records a change of the limiter's MongoDB (api.h "Shared rate limit and MongoDB"): one log
 * line and one on_store_state call per transition. */
static void store_state(api_t *api, const request_t *rq, bool up, const char *error)
{
    if (up == !api->store_down)
        return;
    api->store_down = !up;
    if (up) {
        log_msg(LOG_INFO, "store_recovered", "api=%s down_ms=%lld", rq->kname,
                (long long)(clock_mono_ms() - api->store_down_since_ms));
    } else {
        char q[448];
        api->store_down_since_ms = clock_mono_ms();
        log_msg(LOG_WARN, "store_unavailable",
                "api=%s retry_in_ms=%lld error=%s (waiting for MongoDB; not an HTTP attempt)",
                rq->kname, (long long)api->store_retry_ms, log_quote(q, sizeof q, error));
    }
    if (api->on_store_state)
        api->on_store_state(api->wait_ctx, up);
}

/* Takes a ticket from the shared limiter, waiting out the budget and any MongoDB outage.
 * Returns 0 when the request may go, 1 when stopped. */
static int acquire_budget(api_t *api, const request_t *rq)
{
    if (!api->ratelimit)
        return 0;
    for (;;) {
        char err[384] = "";
        int r = ratelimit_acquire_measured(api, err, sizeof err);
        if (r == 0) {
            store_state(api, rq, true, NULL);
            return 0;
        }
        if (r == 1)
            return 1;
        store_state(api, rq, false, err);
        if (api_wait(api, api->store_retry_ms, NULL) != 0)
            return 1;
    }
}

/* One HTTP attempt: sends, fills out (status, body, error class and message, failure times),
 * meters and logs it, pauses the account after a 429 or a retriable 403. Returns its verdict
 * and, in *retry_after, the server's Retry-After (-1 when none). */
static verdict_t attempt_once(api_t *api, const request_t *rq, int attempt, api_result_t *out,
                              int64_t *retry_after)
{
    http_response_t resp = {.retry_after_ms = -1};
    char herr[384];
    out->attempts = attempt;
    /* no silent re-send by libcurl on a reused connection that died (http.h) */
    http_client_set_no_resend(api->http, !rq->idempotent);
    http_request(api->http, rq->method, rq->url, rq->headers, rq->body,
                 rq->body ? strlen(rq->body) : 0, &resp, herr, sizeof herr);
    verdict_t v = judge(api, rq, &resp);
    http_error_class(resp.status, resp.transport, out->error_class, sizeof out->error_class);
    out->status = resp.status;
    free(out->body);
    out->body = resp.body; /* moved */
    out->body_len = resp.body_len;
    resp.body = NULL;
    resp.body_len = 0;
    *retry_after = resp.retry_after_ms;
    observe_attempt(api, rq->mname, &resp);
    log_msg(LOG_DEBUG, "http_attempt",
            "api=%s method=%s url=%s status=%ld elapsed_ms=%lld attempt=%d class=%s sent=%d",
            rq->kname, rq->mname, rq->q, resp.status, (long long)resp.elapsed_ms, attempt,
            http_class_name(http_classify_response(&resp, api->forbidden_is_retriable)),
            resp.request_sent ? 1 : 0);

    if (v == VERDICT_OK) {
        out->error_class[0] = '\0';
        out->message[0] = '\0';
    } else {
        record_failure(out);
        if (resp.transport != HTTP_TRANSPORT_OK) {
            snprintf(out->message, sizeof out->message, "%s", resp.curl_error);
        } else {
            char m[API_MSG_BODY];
            http_error_message(out->body, out->body_len, m, sizeof m);
            if (resp.location[0])
                snprintf(out->message, sizeof out->message,
                         "HTTP %ld: redirect to %.400s (not followed)", resp.status,
                         resp.location);
            else if (m[0])
                snprintf(out->message, sizeof out->message, "HTTP %ld: %s", resp.status, m);
            else
                snprintf(out->message, sizeof out->message, "HTTP %ld", resp.status);
        }
    }
    if (resp.transport == HTTP_TRANSPORT_OK && resp.status == 429) {
        int64_t pen = resp.retry_after_ms >= 0 ? resp.retry_after_ms : api->retry_base_ms;
        penalize(api, rq, pen < api->retry_max_ms ? pen : api->retry_max_ms);
    } else if (resp.transport == HTTP_TRANSPORT_OK && resp.status == 403 &&
               api->forbidden_is_retriable) {
        penalize(api, rq, api->forbidden_pause_ms);
    }
    http_response_clear(&resp);
    return v;
}

/* Full-jitter backoff for the retry after `attempt`, at least the server's Retry-After (both
 * capped by retry_max_ms). */
static int64_t next_delay(const api_t *api, int attempt, int64_t retry_after)
{
    int64_t delay =
        http_backoff_ms(attempt, api->retry_base_ms, api->retry_max_ms, http_random_u64());
    if (retry_after >= 0) {
        int64_t ra = retry_after < api->retry_max_ms ? retry_after : api->retry_max_ms;
        if (ra > delay)
            delay = ra;
    }
    return delay;
}

static api_outcome_t outcome_of(verdict_t v)
{
    switch (v) {
    case VERDICT_OK: return API_OK;
    case VERDICT_RETRY: return API_RETRIABLE_EXHAUSTED;
    case VERDICT_AUTH: return API_AUTH;
    case VERDICT_AMBIGUOUS: return API_AMBIGUOUS;
    case VERDICT_PERMANENT: return API_PERMANENT;
    }
    return API_PERMANENT;
}

/* The URL to request: path_or_url joined to the base URL unless absolute. NULL when out of
 * memory. */
static char *join_url(const api_t *api, const char *path_or_url)
{
    if (is_absolute(path_or_url))
        return strdup(path_or_url);
    size_t n = strlen(api->base_url) + strlen(path_or_url) + 2;
    char *url = malloc(n);
    if (url)
        snprintf(url, n, "%s%s%s", api->base_url, path_or_url[0] == '/' ? "" : "/", path_or_url);
    return url;
}

api_outcome_t api_request(api_t *api, http_method_t method, const char *path_or_url,
                          const char *json_body, api_idempotence_t idempotence,
                          api_result_t *out)
{
    api_result_clear(out);
    int64_t start = clock_mono_ms();
    request_t rq = {.method = method,
                    .mname = http_method_name(method),
                    .kname = api_kind_name(api->kind),
                    .body = json_body,
                    .idempotent = idempotence != API_NOT_IDEMPOTENT};
    char *url = join_url(api, path_or_url ? path_or_url : "");
    char shown[512];

    out->outcome = API_PERMANENT;
    if (!url) {
        snprintf(out->error_class, sizeof out->error_class, "OutOfMemory");
        snprintf(out->message, sizeof out->message, "out of memory building the URL");
        goto done;
    }
    rq.url = url;
    http_redact_url(url, shown, sizeof shown);
    log_quote(rq.q, sizeof rq.q, shown);

    /* The credential goes only to the base URL's origin (SPEC §3). */
    bool send_auth = api_same_origin(api, url);
    if (!send_auth)
        log_msg(LOG_DEBUG, "http_foreign_origin", "api=%s method=%s url=%s auth=omitted",
                rq.kname, rq.mname, rq.q);
    const char *headers[4];
    size_t h = 0;
    headers[h++] = "Accept: application/json";
    headers[h++] = "Content-Type: application/json";
    if (send_auth)
        headers[h++] = api->auth_header;
    headers[h] = NULL;
    rq.headers = headers;

    for (int attempt = 1;; attempt++) {
        if (acquire_budget(api, &rq) != 0) {
            out->outcome = API_STOPPED;
            if (out->attempts == 0) {
                snprintf(out->error_class, sizeof out->error_class, "Stopped");
                snprintf(out->message, sizeof out->message,
                         "stopped while waiting for the rate limit");
            }
            goto done;
        }
        int64_t retry_after = -1;
        verdict_t v = attempt_once(api, &rq, attempt, out, &retry_after);
        out->outcome = outcome_of(v);
        if (v != VERDICT_RETRY || attempt >= api->max_attempts)
            break;
        int64_t delay = next_delay(api, attempt, retry_after);
        char mq[600];
        log_msg(LOG_WARN, "http_retry",
                "api=%s method=%s url=%s status=%ld attempt=%d error_class=%s retry_in_ms=%lld "
                "message=%s",
                rq.kname, rq.mname, rq.q, out->status, attempt, out->error_class,
                (long long)delay, log_quote(mq, sizeof mq, out->message));
        metrics_counter_add(api->m_retries, (const char *[]){rq.kname, out->error_class}, 1);
        if (api_wait(api, delay, api->m_retry_wait) != 0) {
            out->outcome = API_STOPPED;
            log_msg(LOG_DEBUG, "http_stopped", "api=%s method=%s url=%s attempts=%d", rq.kname,
                    rq.mname, rq.q, out->attempts);
            goto done;
        }
    }

    if (out->outcome != API_OK) {
        char mq[600];
        log_msg(LOG_WARN, "http_failed",
                "api=%s method=%s url=%s status=%ld elapsed_ms=%lld attempts=%d outcome=%s "
                "error_class=%s message=%s",
                rq.kname, rq.mname, rq.q, out->status, (long long)(clock_mono_ms() - start),
                out->attempts, api_outcome_name(out->outcome), out->error_class,
                log_quote(mq, sizeof mq, out->message));
    }

done:
    free(url);
    if (!out->body)
        out->body = calloc(1, 1);
    out->elapsed_ms = clock_mono_ms() - start;
    metrics_counter_add(api->m_requests,
                        (const char *[]){rq.kname, rq.mname, api_outcome_name(out->outcome)}, 1);
    return out->outcome;
}
