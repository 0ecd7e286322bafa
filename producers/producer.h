/* producer: the poll loop every producer shares (SPEC §3, §7). A source (Ploomes, Milvus)
 * supplies only its topics and one `pass` function (one full scan); this module owns the rest:
 * MongoDB store, shared rate limiter, API client, idempotent Kafka producer, topics check,
 * metrics server, poll interval, --once, and the shutdown on SIGTERM/SIGINT.
 *
 * Exit codes (config_exit_t): 0 done / stopped by a signal / --once pass complete;
 * 1 fatal (Kafka fatal error, MongoDB or Kafka unreachable at start, a page failed in --once,
 * messages left undelivered at close); 3 the API rejected the credentials (401).
 *
 * Shutdown (SIGTERM/SIGINT) is bounded: once a stop is requested, the page in flight gets at
 * most PRODUCER_SHUTDOWN_GRACE_MS more for its delivery reports (and the close flushes within
 * what is left of it). Records still unconfirmed then are abandoned: the cursor (or the Milvus
 * hashes) stays before them, so the next start publishes them again (at-least-once), the close
 * purges them and the exit code is 1 (an unclean stop). Without a stop, a page waits for its
 * reports as long as librdkafka's message.timeout.ms lets it.
 *
 * Helpers for sources: producer_fetch() performs one page request and parses it;
 * producer_record_id() / producer_record_utf8() vet a row before anything is sent (a row that
 * fails is skipped, logged at warn with its id and reason, and counted in
 * producer_records_skipped_total{reason}: never silently dropped, never sent with invalid
 * UTF-8); producer_publish() enqueues one record; producer_deliver() waits for a page's
 * delivery reports (the cursor may move only when it returns PRODUCER_PASS_OK);
 * producer_scan_done() records and logs the end of a scan.
 *
 * HTTP metrics (http_request_duration_seconds, http_requests_total, http_retries_total,
 * http_retry_wait_seconds_total, ratelimit_waits_total, ratelimit_wait_seconds_total) are
 * recorded by api_ into the producer's registry (api.h "Metrics").
 *
 * Ownership: producer_ctx_t is owned by producer_run(); sources borrow it during `pass`.
 * Threads: single-threaded, except the metrics server thread (reads `ready` and metrics).
 */
#ifndef PRODUCERS_PRODUCER_H
#define PRODUCERS_PRODUCER_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "app.h"
#include "config.h"
#include "kafka.h"
#include "metrics.h"
#include "ratelimit.h"
#include "store.h"

/* Once a stop is requested: how long delivery reports are still waited for (the page in
 * flight, then the close) before the rest is abandoned. Kubernetes' default grace is 30 s,
 * docker-compose stop's 10 s: the producer must be gone well within the latter. */
#define PRODUCER_SHUTDOWN_GRACE_MS 5000

/* Outcome of a pass (or of one page / one entity inside it). Ordered by severity. */
typedef enum {
    PRODUCER_PASS_OK = 0,  /* every page fetched and delivered, cursors saved */
    PRODUCER_PASS_STOPPED, /* stop requested: the pass ended early, nothing failed */
    PRODUCER_PASS_FAILED,  /* a page could not be fetched or delivered, or MongoDB failed:
                              logged; the cursor did not move past it; retried next poll */
    PRODUCER_PASS_AUTH,    /* 401: exit 3 */
    PRODUCER_PASS_FATAL    /* Kafka fatal error: exit 1 */
} producer_pass_t;

const char *producer_pass_name(producer_pass_t r);

/* The worse of two outcomes. */
producer_pass_t producer_pass_worst(producer_pass_t a, producer_pass_t b);

typedef struct producer_ctx {
    const config_t *cfg;           /* borrowed */
    const char *binary;            /* "ploomes-producer" */
    const char *source;            /* "ploomes" | "milvus": header `source`, metrics label */
    store_t *store;
    ratelimit_t *ratelimit;
    api_t *api;
    kafka_producer_t *kafka;
    kafka_batch_t *batch;          /* one page's deliveries; reset by the source per page */
    metrics_t *metrics;
    metrics_family_t *m_published;   /* {source, entity} */
    metrics_family_t *m_unchanged;   /* {source, entity} records skipped: content unchanged */
    metrics_family_t *m_pages;       /* {source, entity} */
    metrics_family_t *m_failures;    /* {source, entity} pages that could not be fetched */
    metrics_family_t *m_truncations; /* {source, entity} */
    metrics_family_t *m_skipped;     /* {source, entity, reason} rows not published: unusable */
    metrics_family_t *m_last_ok;     /* {source, entity} unix seconds of the last good poll */
    metrics_family_t *m_future;      /* {source, entity} rows stamped past now + tolerance */
    metrics_family_t *m_stuck;       /* {source, entity} scans that could not move their cursor */
    metrics_family_t *m_active;      /* {source} 1 while this process holds the producer lease */
    metrics_family_t *m_interval;    /* {source} seconds until the next poll (stretched or not) */
    ratelimit_t *scan_limit;         /* optional: the producer's share of the account's quota
                                        (PLOOMES_SCAN_QUOTA_SHARE), acquired before each page */
    int64_t record_max_bytes;        /* largest record the Kafka producer accepts
                                        (kafka_record_max_bytes(); 0 = from cfg) */
    bool milvus_min_id_fixed;        /* milvus-producer: the "milvus_min_id" setting is known */
    int64_t next_idle_ms;            /* set by a pass: wait this long before the next one
                                        (0 = POLL_INTERVAL_SECONDS) */
    atomic_bool ready;
    /* The producer lease (SPEC §3 "One active producer"): lease_name "" = no lease (unit
     * tests); otherwise cursor writes go through store_cursor_set_leased(). */
    char lease_name[STORE_LEASE_NAME_MAX]; /* "producer:<source>" */
    char lease_owner[STORE_OWNER_MAX];     /* "<hostname>-<pid>-<nonce>" */
    int64_t lease_ms;                      /* PRODUCER_LEASE_SECONDS * 1000 */
    bool lease_held;
    int64_t lease_renewed_mono;            /* clock_mono_ms() of the last successful renewal */
    int64_t stop_seen_mono;                /* clock_mono_ms() when a delivery wait (or the
                                              close) first saw the stop request; 0 = not yet:
                                              PRODUCER_SHUTDOWN_GRACE_MS counts from there */
} producer_ctx_t;

typedef struct {
    const char *source;   /* "ploomes" | "milvus" */
    api_kind_t api_kind;
    /* Writes the topics this source publishes to into ids (max entries); returns the count. */
    size_t (*topics)(const config_t *cfg, kafka_topic_id_t *ids, size_t max);
    /* One full pass over the source. */
    producer_pass_t (*pass)(producer_ctx_t *ctx);
} producer_source_t;

/* Runs a producer until stopped (or one pass with --once). Returns the exit code. */
int producer_run(const config_t *cfg, const app_cli_t *cli, const char *binary,
                 const producer_source_t *src);

/* GETs path_or_url through the API client (rate limit, retries, Retry-After) and parses the
 * JSON body into *root (caller frees with cJSON_Delete). Counts the page (m_pages) or the
 * failure (m_failures) under `entity`, and logs a failure at error level (event=page_failed,
 * with the redacted URL). On failure the message goes to err (no secret, no personal data).
 * Returns OK, FAILED, AUTH or STOPPED. */
producer_pass_t producer_fetch(producer_ctx_t *ctx, const char *entity, const char *path_or_url,
                               cJSON **root, char *err, size_t errlen);

/* Like producer_fetch(); *unparsable (may be NULL) is set when the API answered 2xx with a
 * body that is not JSON cJSON can read (invalid text, nesting past cJSON's limit: a poison
 * record): the caller may ask again with a smaller page (such an answer is then neither logged
 * nor counted as a failed page here: the caller logs what it does about it). A `\u0000` escape inside a string is
 * turned into the two bytes C0 80 before parsing (cJSON would cut the string there), so
 * producer_record_utf8() skips the record (nul_character) instead of publishing it cut. */
producer_pass_t producer_fetch_ex(producer_ctx_t *ctx, const char *entity,
                                  const char *path_or_url, cJSON **root, bool *unparsable,
                                  char *err, size_t errlen);

/* Rewrites, in place, every `\u0000` escape that stands inside a JSON string of buf[0..*len)
 * as the bytes C0 80 (an invalid UTF-8 sequence: the string is then flagged, never cut short)
 * and shortens *len accordingly. An escaped backslash followed by "u0000" (the text \u0000)
 * is left alone. Returns how many escapes were rewritten. */
size_t producer_mark_nul_escapes(char *buf, size_t *len);

/* Skip reasons (label `reason` of producer_records_skipped_total). */
#define PRODUCER_SKIP_BAD_ID "bad_id"             /* no id, not an integer >= 1, or a JSON
                                                     number past 2^53-1 (not exact) */
#define PRODUCER_SKIP_NUL "nul_character"         /* a string holds U+0000 (cJSON would cut
                                                     it short) */
#define PRODUCER_SKIP_TOO_LARGE "too_large"       /* larger than KAFKA_MAX_MESSAGE_BYTES allows */
#define PRODUCER_SKIP_UNPARSABLE "unparsable"     /* the record makes its page unparsable even
                                                     alone (identified by $select) */
#define PRODUCER_SKIP_BAD_STAMP "bad_stamp"       /* Ploomes: LastUpdateDate unusable */
#define PRODUCER_SKIP_INVALID_UTF8 "invalid_utf8" /* a string or key is not valid UTF-8 */

/* Counts (m_skipped) and logs at warn (event=record_skipped) one row that will not be
 * published. `id` names the record (its decimal id, or "#<index>" when it has none); `detail`
 * (may be NULL) is a non-personal hint such as a JSON path. */
void producer_skip(producer_ctx_t *ctx, const char *entity, const char *reason, const char *id,
                   const char *detail);

/* Reads row[field] as a record id: a JSON integer (at most 2^53-1: a larger number is not
 * exact in a double, 2^53+1 reads as 2^53) or decimal string, >= 1 (ids are positive;
 * a negative one would poison the Ploomes cursor). On failure skips the row (bad_id, named by
 * its 0-based index in the page; a row that is not an object says so) and returns false. */
bool producer_record_id(producer_ctx_t *ctx, const char *entity, const cJSON *row,
                        const char *field, int index, int64_t *id);

/* True when every string and key of row is valid UTF-8 (SPEC §5: checked before it is sent
 * anywhere); otherwise skips the row (invalid_utf8, with the JSON path, never the text; or
 * nul_character when a string held a \u0000 escape, see producer_fetch_ex). */
bool producer_record_utf8(producer_ctx_t *ctx, const char *entity, const cJSON *row,
                          int64_t id);

/* True when a record of value_len bytes (plus key and headers) fits what the Kafka producer
 * accepts (ctx->record_max_bytes, from KAFKA_MAX_MESSAGE_BYTES); otherwise skips it
 * (too_large, with its id and size) and returns false: never blocking. */
bool producer_record_fits(producer_ctx_t *ctx, const char *entity, int64_t id,
                          size_t value_len);

/* Counts (m_stuck) and logs at error (event=scan_stuck) a scan that cannot move its cursor
 * (SPEC §3: never silently). */
void producer_stuck(producer_ctx_t *ctx, const char *entity, const char *why);

/* Counts (m_future) and logs at warn (event=future_stamp) a row stamped past now + tolerance:
 * published once, the cursor stays before it. */
void producer_future_stamp(producer_ctx_t *ctx, const char *entity, int64_t id,
                           const char *stamp);

/* Enqueues one record (value: unformatted JSON, NULL = printing it ran out of memory) on
 * `topic` with SPEC §2's key and headers, counted by ctx->batch. On failure fills err, waits
 * for the page's pending reports (producer_drain) so the batch can be reused, and returns
 * FAILED or FATAL: the caller must not move its cursor. */
producer_pass_t producer_publish(producer_ctx_t *ctx, const char *topic, const char *entity,
                                 int64_t id, const char *value, const char *stamp,
                                 const char *fetched_at, char *err, size_t errlen);

/* A fetched page whose envelope is unusable (`what`: e.g. "no \"value\" array"): fills err,
 * logs event=page_failed, counts m_failures. Returns PRODUCER_PASS_FAILED. */
producer_pass_t producer_page_unusable(producer_ctx_t *ctx, const char *entity,
                                       const char *path, const char *what, char *err,
                                       size_t errlen);

/* Waits for every delivery report of ctx->batch. OK only when all were delivered; FAILED when
 * some failed or timed out (logged, err filled); FATAL on a fatal producer error; STOPPED when
 * a stop was requested and reports were still missing PRODUCER_SHUTDOWN_GRACE_MS later (logged
 * as event=delivery_abandoned, err filled): the caller must not move its cursor, the records
 * stay pending until the close purges them. */
producer_pass_t producer_deliver(producer_ctx_t *ctx, const char *entity, char *err,
                                 size_t errlen);

/* Waits (bounded by librdkafka's message timeout, or by PRODUCER_SHUTDOWN_GRACE_MS once a
 * stop is requested) until ctx->batch has no pending message, ignoring the outcome: used when
 * a page is abandoned half-sent, so the batch can be reset for the next page (after a stop
 * there is no next page: what is left is purged by the close). */
void producer_drain(producer_ctx_t *ctx);

/* The end of one scan: unless it was stopped, records the poll result of cursor `key`
 * (store_cursor_poll_result; ok when r is OK) and, when ok, sets the last-success gauge of
 * `entity`; then logs event=scan_done (with err when r is not OK; elapsed_ms from t0_ms, the
 * scan's start on clock_mono_ms()). Failures to record are
 * logged, not returned. */
void producer_scan_done(producer_ctx_t *ctx, const char *key, const char *entity,
                        producer_pass_t r, const char *end, size_t pages, size_t published,
                        int64_t t0_ms, const char *err);

/* Saves cursor `key` at (stamp, id): store_cursor_set_leased() under the producer lease (a
 * CONFLICT means the lease was lost: logged, ctx->lease_held cleared), or store_cursor_set()
 * when ctx has no lease. Returns the store_rc_t. */
int producer_cursor_save(producer_ctx_t *ctx, const char *key, const char *stamp, int64_t id,
                         char *err, size_t errlen);

/* Called by sources before every page: renews the lease (at most once a second) and returns
 * true while this process still holds it (or has no lease); false when it was lost: the
 * source ends its pass at once, publishing nothing more. */
bool producer_lease_keep(producer_ctx_t *ctx);

/* Labels helper: {ctx->source, entity}. */
#define PRODUCER_LABELS(ctx, entity) ((const char *[]){(ctx)->source, (entity)})

#endif
