/* api_: the client for one SaaS account (Ploomes or Milvus) used by producers and workers.
 *
 * It owns the one place where the credential is attached (Ploomes `User-Key: <key>`, Milvus
 * `Authorization: <token>`), and applies SPEC §4's policy to every call: shared rate limit
 * before every attempt, retries of retriable outcomes with full-jitter backoff that honours
 * Retry-After, immediate stop on 401 and on permanent errors. The result carries what a dead
 * letter needs (x-dlq.* headers, exception class and message).
 *
 * The secret is sent only to the base URL's origin: an absolute URL given to api_request()
 * (an @odata.nextLink, say) whose scheme+host+port differ from the base URL's is requested
 * WITHOUT the auth header (SPEC §3).
 *
 * Idempotence (SPEC §4 "Ambiguous creates"): the caller says whether a request may be sent
 * twice (api_idempotence_t). For API_NOT_IDEMPOTENT (creates), api_ never sends the request
 * again once the server may have acted on it; what it still retries is a failure that
 * certainly did not reach the server or that the server says it did not process:
 *   retried as usual   DNS failure, connection refused/failed, TLS handshake failure, a
 *                      timeout before curl began sending (connect timeout) (http_response_t.
 *                      request_sent false); 429 and 425 (not processed); Ploomes' 403 (it
 *                      refuses under load); waits for the rate limit and for MongoDB (never
 *                      attempts at all)
 *   API_AMBIGUOUS      a timeout or a connection lost once sending began (CurlTimeout,
 *                      CurlSend, CurlRecv, an empty reply), 408, any 5xx, any 3xx (a redirect
 *                      is never followed, and may come after the server acted: 303 See Other),
 *                      a response that could not be read whole (ResponseTooLarge, out of
 *                      memory): returned at once,
 *                      after that one attempt, with error_class/status/message describing it
 *   final as usual     2xx (API_OK: whether its body holds a usable id is the caller's call),
 *                      401 (API_AUTH), other 4xx (API_PERMANENT)
 * A create is never re-sent by libcurl by itself either (http_client_set_no_resend: its silent
 * re-send on a reused connection that died unanswered is refused; connections are reused). For API_IDEMPOTENT (reads, searches, `POST /chamado/listagem`),
 * every retriable failure is retried; API_AMBIGUOUS never happens.
 *
 * Shared rate limit and MongoDB: a ticket is taken from the limiter before every HTTP attempt.
 * When the limiter's MongoDB fails, that is not an HTTP attempt: api_ waits for MongoDB
 * (retrying every store_retry_ms, through the wait hook, so a worker keeps polling Kafka),
 * calls on_store_state(ctx, false) once and logs event=store_unavailable at warn once per
 * outage, then event=store_recovered at info and on_store_state(ctx, true) when MongoDB answers
 * again, and goes on with the request. Only the stop flag (or the wait hook) ends that wait
 * (API_STOPPED). A 429 pauses every process of the account (ratelimit_penalize: Retry-After,
 * else retry_base_ms, capped by retry_max_ms); so does Ploomes' 403, for forbidden_pause_ms
 * (SPEC §4 PLOOMES_403_PAUSE_MS).
 *
 * Logs (logfmt): event=http_attempt at debug for every attempt; event=http_retry at warn for
 * each retry, event=http_failed at warn for the final failure (outcome=ambiguous included).
 * Keys: api, method, url (query values replaced by '*', never personal data or the secret),
 * status, elapsed_ms, attempt, error_class. event=store_unavailable / store_recovered (api,
 * error / down_ms) as above.
 *
 * Metrics (SPEC §7), when api_options_t.metrics is set; label values are bounded sets, never
 * an id, a URL or a secret. `api` is "ploomes"|"milvus", `method` "GET"|"POST"|...:
 *   http_request_duration_seconds{api,method,status}  histogram (METRICS_HTTP_BUCKETS), one
 *       observation per HTTP attempt; status = the HTTP status code ("200", "503") or, when no
 *       complete response arrived, the transport error class ("CurlTimeout", "CurlConnect",
 *       "ResponseTooLarge": http_error_class())
 *   http_requests_total{api,method,outcome}  one per api_request() call (api_outcome_name())
 *   http_retries_total{api,reason}           one per retry scheduled (reason = the failed
 *       attempt's error class: "HttpStatus503", "HttpStatus429", "CurlTimeout"); matches
 *       the event=http_retry log lines
 *   http_retry_wait_seconds_total{api}       time spent in retry backoff (Retry-After included)
 *   ratelimit_waits_total{api}               acquisitions of the shared rate limit that had to
 *       wait (counted when the wait begins)
 *   ratelimit_wait_seconds_total{api}        time spent waiting for it (from its first wait to
 *       the ticket, the stop or the limiter's failure)
 * Both wait counters grow slice by slice (<= 100 ms, or each wait_hook call) during a wait, so
 * a 60-second wait is visible while it lasts.
 * The families are registered by api_new() (registering again returns the same family, so
 * several clients may share a registry).
 *
 * Secrets: api_ never formats the credential into a log line, an error text or a result. It
 * does not register it with log_add_secret() either (config_ does that once per process).
 *
 * Ownership: api_new() copies every string; the rate limiter, the metrics registry and the stop
 * flag are borrowed and must outlive the api_t. api_result_t owns its body (api_result_clear()).
 * Threads: an api_t holds one http_client_t (one curl handle): NOT thread-safe; one per thread.
 * The clients of several threads may share one metrics registry (metrics_ is thread-safe).
 */
#ifndef PIPELINE_API_H
#define PIPELINE_API_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "metrics.h"
#include "ratelimit.h"

typedef enum { API_PLOOMES = 0, API_MILVUS = 1 } api_kind_t;

/* "ploomes" / "milvus". */
const char *api_kind_name(api_kind_t kind);

typedef enum {
    API_OK = 0,              /* 2xx */
    API_RETRIABLE_EXHAUSTED, /* every attempt failed retriably (MongoDB outages are waited out,
                                never counted as attempts) */
    API_PERMANENT,           /* other 4xx / status, bad URL, TLS, body too large: not retried */
    API_AUTH,                /* 401 (and a Milvus 403: Milvus answers a bad token either way):
                                the credential is wrong (SPEC §4: exit 3, no dead letter) */
    API_AMBIGUOUS,           /* only for API_NOT_IDEMPOTENT calls: the request may have taken
                                effect (timeout or connection lost after sending, 408, any
                                5xx, a 3xx, an unreadable answer; a 2xx without a usable id
                                is the caller's call): never retried here; the caller searches the
                                target first (SPEC §4 "Ambiguous creates"; list above) */
    API_STOPPED              /* the stop flag (or the wait hook) ended a wait; nothing final:
                                the caller must neither dead-letter nor store the offset. The
                                result still describes the last failure, if there was one */
} api_outcome_t;

/* "ok", "retriable_exhausted", "permanent", "auth", "ambiguous", "stopped". */
const char *api_outcome_name(api_outcome_t outcome);

/* Called repeatedly while a retry, the rate limiter or a MongoDB outage waits, with the ms
 * still to wait (for a MongoDB outage: until the next try). It
 * should return within remaining_ms (returning earlier is fine: it is called again). Workers
 * poll Kafka in it (rd_kafka_poll / consumer poll with a timeout <= remaining_ms).
 * Returning non-zero abandons the wait: api_request() returns API_STOPPED. */
typedef int (*api_wait_fn)(void *ctx, int64_t remaining_ms);

typedef struct {
    api_kind_t kind;
    const char *base_url;       /* required, e.g. "https://api2.ploomes.com" or
                                   "https://apiintegracao.milvus.com.br/api"; a trailing '/' is
                                   dropped */
    const char *secret;         /* required: Ploomes User-Key / Milvus token (copied) */
    long connect_timeout_ms;    /* <= 0: 10000 */
    long total_timeout_ms;      /* <= 0: 60000 */
    size_t max_body_bytes;      /* 0: 8 MiB */
    int max_attempts;           /* <= 0: 3 (MAX_ATTEMPTS) */
    int64_t retry_base_ms;      /* < 0: 5000 (RETRY_BASE_MS); 0 allowed (tests) */
    int64_t retry_max_ms;       /* <= 0: 60000 (RETRY_MAX_MS); also caps Retry-After */
    ratelimit_t *ratelimit;     /* borrowed, optional: acquired before every attempt */
    volatile sig_atomic_t *stop;/* borrowed, optional: set -> waits end early (API_STOPPED) */
    api_wait_fn wait_hook;      /* optional; NULL: sleep in slices of <= 100 ms */
    void *wait_ctx;             /* passed to wait_hook and on_store_state */
    /* optional: told when the limiter's MongoDB stops answering (up = false, once per outage)
     * and when it answers again (up = true), so the caller can turn readiness off and on.
     * Called from api_request(), in the calling thread. */
    void (*on_store_state)(void *ctx, bool up);
    int64_t store_retry_ms;     /* <= 0: 1000; pause between tries while MongoDB is down */
    int64_t forbidden_pause_ms; /* <= 0: 30000 (PLOOMES_403_PAUSE_MS): a retriable 403 pauses
                                   the shared limiter this long (ratelimit_penalize) */
    metrics_t *metrics;         /* borrowed, optional: NULL records no metrics (see above) */
    /* Ploomes' 403 is retriable (it answers 403 under load); this is set from `kind`
     * (PLOOMES: true, MILVUS: false) unless override_forbidden is set. */
    bool override_forbidden;
    bool forbidden_is_retriable;
} api_options_t;

typedef struct api api_t;

typedef struct {
    api_outcome_t outcome;
    long status;              /* last HTTP status; 0 when none was received */
    char *body;               /* last response body (owned, NUL-terminated, "" when none) */
    size_t body_len;
    char error_class[48];     /* "" on OK; "HttpStatus503", "CurlTimeout", "HttpStatus401",
                                 "ResponseTooLarge" (see http_error_class()); "Stopped" when
                                 stopped before any attempt finished; else the last failure's
                                 class */
    char message[512];        /* readable: "HTTP 503: <message from the body>" or curl's text */
    int attempts;             /* HTTP attempts made (waits for the limiter or MongoDB are not
                                 attempts); API_AMBIGUOUS ends at the attempt that may have
                                 taken effect */
    char first_failure[32];   /* RFC 3339 UTC with ms of the first failed attempt, "" if none */
    char last_failure[32];    /* ... of the last failed attempt */
    int64_t elapsed_ms;       /* whole call, waits included */
} api_result_t;

/* Creates a client (and its curl handle), and registers the metric families when
 * opts->metrics is set. Returns NULL and fills err (naming the bad option or the metric that
 * could not be registered, never the secret) on failure. */
api_t *api_new(const api_options_t *opts, char *err, size_t errlen);

/* NULL is accepted. Does not free the borrowed rate limiter. */
void api_free(api_t *api);

/* The base URL as normalised (no trailing '/'). */
const char *api_base_url(const api_t *api);

/* What the caller says about a request (never guessed from the method: `POST
 * /chamado/listagem` is a read). */
typedef enum {
    API_IDEMPOTENT = 0,     /* reads and searches: every retriable failure is retried */
    API_NOT_IDEMPOTENT = 1  /* creates: an outcome that may have taken effect is returned as
                               API_AMBIGUOUS at once, never re-sent by api_ */
} api_idempotence_t;

/* Performs a request with the retry policy.
 *   path_or_url  "/Contacts?$filter=..." (joined to the base URL; a missing leading '/' is
 *                added) or an absolute "http(s)://" URL (auth header only for the base origin).
 *                Query values must already be percent-encoded (http_percent_encode()).
 *   json_body    NULL or a NUL-terminated JSON text (sent with Content-Type: application/json).
 *   out          filled in every case (a previous body is freed first; zero it before first use);
 *                clear with api_result_clear().
 * Returns out->outcome. */
api_outcome_t api_request(api_t *api, http_method_t method, const char *path_or_url,
                          const char *json_body, api_idempotence_t idempotence,
                          api_result_t *out);

/* Frees out->body and zeroes the struct. NULL is accepted. */
void api_result_clear(api_result_t *out);

/* Copies at most max_bytes of the response body (cut at a UTF-8 boundary) into buf (size must
 * be > max_bytes for the whole excerpt to fit), for x-dlq.response (max_bytes = 1024).
 * Returns buf. */
const char *api_result_excerpt(const api_result_t *res, size_t max_bytes, char *buf, size_t size);

/* True when `url` has the same scheme, host and port as the api's base URL (case-insensitive
 * scheme and host; default ports 80/443 made explicit). Exposed for tests. */
bool api_same_origin(const api_t *api, const char *url);

#endif
