/* http_: a small HTTP client over libcurl, plus the pure helpers every API caller needs
 * (SPEC §4 "Retries": outcome classification, Retry-After, backoff with full jitter; apis.md
 * §1.8/§2.6: readable error messages; §3: percent-encoding of query values).
 *
 * One http_client_t wraps ONE curl easy handle that is reused across requests, so connections
 * are kept alive between calls. It is NOT thread-safe: use one client per thread.
 *
 * Safety rules built in:
 *   - Redirects are never followed (a redirect could carry an auth header to another host).
 *   - The response body is capped (http_options_t.max_body_bytes, default 8 MiB): a larger body
 *     ends the transfer with HTTP_TRANSPORT_TOO_LARGE, never unbounded growth.
 *   - Request header values are never copied into an error message or a log line. curl's error
 *     text may name the URL; URLs here never carry secrets (they travel in headers).
 *
 * Memory (issue 13): a request runs with an 8 KiB receive buffer and, over TLS, a 16 KiB upload
 * buffer (libcurl's defaults: 16 and 64 KiB), allocated for the transfer and freed after it; a
 * body of any size up to max_body_bytes is still read whole.
 *
 * Ownership: http_response_t.body belongs to the response; release it with
 * http_response_clear(). The client copies nothing it is given beyond the call.
 */
#ifndef PIPELINE_HTTP_H
#define PIPELINE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum { HTTP_GET = 0, HTTP_POST, HTTP_PATCH, HTTP_PUT, HTTP_DELETE } http_method_t;

/* "GET", "POST", ... */
const char *http_method_name(http_method_t method);

/* How a request failed below HTTP (no status line was received, or the body was refused). */
typedef enum {
    HTTP_TRANSPORT_OK = 0,      /* a complete response was received (any status) */
    HTTP_TRANSPORT_TIMEOUT,     /* connect or total timeout                -> retriable */
    HTTP_TRANSPORT_RESOLVE,     /* DNS failure                             -> retriable */
    HTTP_TRANSPORT_CONNECT,     /* refused / unreachable                   -> retriable */
    HTTP_TRANSPORT_SEND,        /* connection broke while sending          -> retriable */
    HTTP_TRANSPORT_RECV,        /* broke while receiving, empty reply      -> retriable */
    HTTP_TRANSPORT_TLS,         /* handshake or certificate problem        -> permanent */
    HTTP_TRANSPORT_BAD_URL,     /* malformed URL, unsupported scheme       -> permanent */
    HTTP_TRANSPORT_TOO_LARGE,   /* body exceeded max_body_bytes            -> permanent */
    HTTP_TRANSPORT_OTHER        /* anything else curl reports              -> permanent */
} http_transport_t;

/* Decision about a finished request (SPEC §4). */
typedef enum {
    HTTP_CLASS_SUCCESS = 0, /* 2xx */
    HTTP_CLASS_RETRIABLE,   /* connection errors, timeouts, 408 425 429 500 502 503 504, and 403
                               when the caller says so (Ploomes answers 403 under load) */
    HTTP_CLASS_AUTH,        /* 401: the key is wrong; never retried, never dead-lettered */
    HTTP_CLASS_PERMANENT    /* every other status or transport error */
} http_class_t;

/* "success", "retriable", "auth", "permanent". */
const char *http_class_name(http_class_t cls);

typedef struct {
    long connect_timeout_ms; /* <= 0: 10000 */
    long total_timeout_ms;   /* whole request incl. body; <= 0: 60000 */
    size_t max_body_bytes;   /* 0: 8 MiB */
    const char *user_agent;  /* NULL: "ploomes-milvus-pipeline/<version>" (copied) */
} http_options_t;

#define HTTP_LOCATION_MAX 512

typedef struct {
    long status;                 /* HTTP status, 0 when transport != OK before a status line */
    char *body;                  /* owned; always NUL-terminated, "" (not NULL) after a call */
    size_t body_len;             /* bytes in body, excluding the NUL */
    int64_t retry_after_ms;      /* parsed Retry-After; -1 when absent or unparseable */
    int64_t elapsed_ms;          /* wall time of the call */
    http_transport_t transport;  /* HTTP_TRANSPORT_OK when a response was received */
    bool request_sent;           /* false only when the request certainly never reached the
                                    server: DNS failure, connection refused or failed, TLS
                                    handshake failure, bad URL, or any failure before curl began
                                    to send it (CURLINFO_PRETRANSFER_TIME 0: a connect timeout).
                                    true for every received response and for every failure once
                                    sending began (a timeout waiting for the answer, a connection
                                    lost while sending or receiving, an empty reply): the server
                                    may have acted on it. Non-idempotent callers (creates) must
                                    not simply send it again then (SPEC §4 "Ambiguous creates"). */
    int curl_code;               /* raw CURLcode (0 = CURLE_OK), for diagnostics */
    char curl_error[256];        /* curl's text for a transport error ("" otherwise) */
    char location[HTTP_LOCATION_MAX]; /* a 3xx answer's Location, query values redacted
                                         (http_redact_url); "" otherwise. Redirects are never
                                         followed (the key must not travel elsewhere) */
} http_response_t;

typedef struct http_client http_client_t;

/* Creates a client. `opts` may be NULL (all defaults). Returns NULL and fills err on failure
 * (curl init failed, out of memory). Call curl_global_init() once per process before threads
 * start; http_client_new() calls it lazily too, which is fine for single-threaded programs. */
http_client_t *http_client_new(const http_options_t *opts, char *err, size_t errlen);

/* While `on` is true, a request is sent at most once per http_request() call. Reason: libcurl
 * silently sends a request again, once, when a REUSED keep-alive connection dies before any
 * byte of the answer arrives — harmless for a read, a possible duplicate for a create the
 * server acted on before the connection broke. With `on`, that second start is refused
 * (CURLOPT_PREREQFUNCTION sees the request begin twice in one transfer and aborts it): the call
 * ends as HTTP_TRANSPORT_RECV with request_sent true, like a lost answer on a fresh connection.
 * Connections are still reused (a create costs no TCP or TLS handshake of its own). With a
 * libcurl older than 7.80 (no pre-request callback) it falls back to CURLOPT_FRESH_CONNECT.
 * api_ sets it for API_NOT_IDEMPOTENT calls. Off by default. */
void http_client_set_no_resend(http_client_t *client, bool on);

/* Frees the client and its connection cache. NULL is accepted. */
void http_client_free(http_client_t *client);

/* Performs one request (no retries, no redirects).
 *   url      absolute http(s) URL; query values must already be percent-encoded.
 *   headers  NULL or a NULL-terminated array of "Name: value" strings (not copied beyond the
 *            call). "Expect:" is always added (no 100-continue round trip).
 *   body     NULL or body_len bytes sent as the request body (POST/PATCH/PUT; DELETE too if
 *            given). The caller sets Content-Type through `headers`.
 *   out      filled in every case (clear it with http_response_clear(); an old body in `out` is
 *            freed first, so a zeroed or previously used response may be passed).
 * Returns 0 when a complete HTTP response arrived (whatever its status), -1 on a transport
 * error (out->transport says which, out->curl_error has curl's text) — err then holds
 * "<METHOD> <url-without-query>: <reason>", never a header value. */
int http_request(http_client_t *client, http_method_t method, const char *url,
                 const char *const *headers, const char *body, size_t body_len,
                 http_response_t *out, char *err, size_t errlen);

/* Frees out->body and zeroes the struct (retry_after_ms = -1). NULL is accepted. */
void http_response_clear(http_response_t *out);

/* ---- pure helpers (no I/O; unit-tested) --------------------------------------------------- */

/* Classifies a status/transport pair. `forbidden_is_retriable` makes 403 retriable (Ploomes). */
http_class_t http_classify(long status, http_transport_t transport, bool forbidden_is_retriable);

/* Same, for a response struct. */
http_class_t http_classify_response(const http_response_t *resp, bool forbidden_is_retriable);

/* Error class name for dead letters: "HttpStatus503" for a status error, "CurlTimeout",
 * "CurlResolve", "CurlConnect", "CurlSend", "CurlRecv", "CurlTls", "CurlBadUrl",
 * "ResponseTooLarge", "CurlError" for a transport error; "" for 2xx. Writes into buf (48 bytes
 * is always enough), returns buf. */
const char *http_error_class(long status, http_transport_t transport, char *buf, size_t size);

/* Parses a Retry-After value: delta-seconds ("120") or an HTTP-date (IMF-fixdate
 * "Sun, 06 Nov 1994 08:49:37 GMT", and the obsolete RFC 850 and asctime forms). `now` is the
 * current time (tests pass a fixed one). A date in the past gives 0. Values are capped at 24 h.
 * Returns 0 and sets *ms, or -1 when the text is empty or not one of these forms. */
int http_parse_retry_after(const char *value, time_t now, int64_t *ms);

/* Writes a readable, single-line error message taken from a response body into out:
 * JSON {"value":"…"} (Ploomes), {"error":{"message":"…"}} (OData), {"Message":"…"} (ASP.NET),
 * {"message":"…"} (Milvus), a bare JSON string; else the raw text. Control characters become
 * spaces, whitespace runs collapse, and the text is cut at a UTF-8 boundary to fit (ending in
 * "..." when cut). An empty body gives "". Always NUL-terminates when size > 0. Returns out. */
const char *http_error_message(const char *body, size_t body_len, char *out, size_t size);

/* Percent-encodes `in` for use as a query value: every byte outside RFC 3986's unreserved set
 * (A-Z a-z 0-9 - . _ ~) becomes %XX (uppercase hex), so '+' -> %2B, ' ' -> %20, '\'' -> %27.
 * Returns the encoded length, or -1 when `size` is too small (out then holds ""). */
int http_percent_encode(const char *in, char *out, size_t size);

/* Same, into a new malloc'd string (caller frees). NULL on out of memory. */
char *http_percent_encode_dup(const char *in);

/* Full-jitter backoff: a value uniform in [0, min(max_ms, base_ms * 2^(attempt-1))], drawn from
 * `random` (any 64-bit random value; tests pass fixed ones). attempt < 1 counts as 1; no
 * overflow for any attempt. Negative base/max count as 0. */
int64_t http_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t random);

/* 64 random bits from the OS (getrandom), falling back to a clock-seeded mix. For jitter only. */
uint64_t http_random_u64(void);

/* Writes `url` with every query value replaced by '*' ("/Contacts?$filter=*&$top=*") into out:
 * safe to log (query values can hold documents or names). Returns out. */
const char *http_redact_url(const char *url, char *out, size_t size);

#endif
