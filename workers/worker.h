/* worker: the one runtime shared by the four workers (SPEC §4). A worker binary is a handler
 * table (filter, dedup key, mapping, delivery) handed to worker_main(); everything else —
 * consuming at-least-once, parsing and validating the record, claims, retries while the
 * consumer keeps polling, dead letters confirmed before the offset moves, metrics, logs,
 * signals, --idle-exit, DRY_RUN, exit codes — lives here.
 *
 * Flow of one record (runtime): poll → parse (bounded, UTF-8 checked; invalid JSON, a value
 * that is not an object, invalid UTF-8 → dead letter `InvalidJson` / `NotAnObject` /
 * `InvalidUtf8`) → handler->handle() → outcome → terminal: store the offset (delivered,
 * skipped, dedup hit) or dead-letter and store the offset once the letter is confirmed;
 * WORKER_RELEASE: retried after a back-off, or given back on a stop (see "Runtime" below);
 * WORKER_AUTH: release, log, exit 3.
 *
 * Handlers create at the target only through worker_create_once(), which owns the claim
 * protocol (claim by insert, owner = instance id + a nonce per handling, search before create
 * when the claim was recovered or the create was ambiguous, complete / release) so that no
 * record is ever created twice, whatever crashes, rebalances or timeouts happen.
 *
 * Ownership: the runtime owns the context, the API clients, the store and every record; a
 * handler borrows them for the duration of handle(). A handler's state (init/fini) is its own.
 * worker_result_t is filled by value (fixed-size strings); `response` is owned by the result and
 * freed by worker_result_clear().
 * Threads: with MAX_IN_FLIGHT = 1 everything runs on the poll thread. With more (the default,
 * 32), handle() runs on handling threads, each with its own worker_ctx_t and API clients (api_t
 * is one curl handle), up to MAX_IN_FLIGHT at once: a handler must keep no mutable global state
 * and treat `state` as shared (read-only after init, or guarded).
 *
 * Runtime (workers/worker_loop.c; changes by the runtime engineer are marked "runtime:"):
 * - runtime: MAX_IN_FLIGHT = 1: everything on the poll thread. The poll thread polls, parses,
 *   calls handle(), finishes the record. While api_request() waits (retry backoff,
 *   Retry-After, the shared rate limit, a MongoDB outage) its wait hook pauses the whole
 *   assignment and keeps calling kafka_consumer_poll() (≤ 100 ms slices), so the member is
 *   never evicted (max.poll.interval.ms) and rebalances are served; the wrapper holds back
 *   records of paused partitions (a record handed out anyway is queued locally, in order, and
 *   handled next). The assignment is resumed when handle() returns.
 * - runtime: MAX_IN_FLIGHT > 1 (default 32; workers/worker_pool.c): the poll thread alone
 *   polls the consumer and appends every record to one list in arrival order (at most
 *   MAX_IN_FLIGHT records: when full it waits for room and, at least every second, pauses the
 *   assignment and polls anyway so rebalances are served). MAX_IN_FLIGHT handling threads,
 *   each with its own worker_ctx_t and API clients, take the first record whose key is free:
 *   a record runs only when no earlier record of the list has the same (topic, partition, key)
 *   (keyless records of a partition run one at a time), so two records of one key never
 *   overlap and run in offset order. The consumer wrapper stores per partition only the
 *   highest CONTIGUOUS finished offset, so offsets never pass the lowest unfinished record.
 *   Waits inside a handling thread sleep in ≤ 100 ms slices and end on a stop, an exit code or
 *   a revocation of the record's partition (never touching the consumer). A dead letter is
 *   confirmed before the offset moves (the handling thread serves the DLQ producer's delivery
 *   reports while it waits). WORKER_RELEASE keeps the record in the list with the back-off
 *   below (later records of its key wait behind it; other keys go on). On revoke, waiting
 *   records of the revoked partitions are given back and running ones are told to stop (they
 *   finish or are released); the wrapper waits (≤ 30 s) until none is in flight, then commits.
 *   On a stop the threads finish or release what they hold, the rest is given back. The store,
 *   limiter, metrics and DLQ writer are shared (all thread-safe); the handler's `state` is
 *   shared too (read-only after init, or guarded by the handler).
 * - runtime: WORKER_RELEASE while running (claim busy, a dead letter the broker refused) keeps
 *   the record in the runtime and (MAX_IN_FLIGHT = 1) pauses its partition for a short, growing
 *   back-off (200 ms
 *   doubling to 5 s, reset by a terminal outcome), then handles it again: nothing is spun on,
 *   the partition's order is kept and no seek is needed. On a stop, a revocation or an exit
 *   the record is given back (kafka_consumer_release: re-delivered to whoever owns the
 *   partition next, or after a restart).
 * - runtime: DRY_RUN: no claim is taken and no store write happens in worker_create_once();
 *   a handler must also skip its own store writes (store_record_done, identity-map writes)
 *   when ctx->dry_run is set. Reads are fine.
 * - runtime: metrics (label worker): worker_records_total{outcome,reason} (outcome as
 *   worker_outcome_name(); a WORKER_AUTH record counts as "released"; dead letters count with
 *   reason = error class, once confirmed), worker_dead_letters_total{error_class},
 *   worker_claim_recoveries_total{result: found|not_found|failed}, worker_consumer_lag{topic,
 *   partition} (every 5 s), worker_in_flight, process_ready, the api_ http_* families and
 *   store_round_trips_total{op}. Logs: one event=record_done line per handling (key, outcome,
 *   reason, error_class, http_status, attempts, elapsed_ms, target_id; at debug for skips, warn
 *   for dead letters and auth, info otherwise; never the value).
 * - runtime: exits: 0 (SIGTERM/SIGINT, --idle-exit), 1 (MongoDB unreachable at start, Kafka
 *   fatal, the store refusing requests: STORE_REJECTED), 2 (usage/config), 3 (WORKER_AUTH, or
 *   5 records in a row dead on a Ploomes 403 after all attempts: the 5th is released, not
 *   dead-lettered).
 */
#ifndef PIPELINE_WORKER_H
#define PIPELINE_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../common/api.h"
#include "../common/config.h"
#include "../common/kafka.h"
#include "../common/metrics.h"
#include "../common/store.h"

/* What happened to one record. Everything but WORKER_RELEASE and WORKER_AUTH is terminal. */
typedef enum {
    WORKER_DELIVERED = 0, /* created at the target (reason: what, e.g. "created") */
    WORKER_SKIPPED,       /* a business filter said no (reason: "before_cutoff", "no_tag",
                             "no_document", "no_contact", "below_min_id", "inactive", ...) */
    WORKER_DEDUP_HIT,     /* it already exists (reason: "identity_map", "claim_done",
                             "found_at_target") */
    WORKER_DEAD,          /* dead-letter it now (error_class, message, http fields) */
    WORKER_RELEASE,       /* no terminal outcome now (stop requested, claim busy, store down):
                             the record is given back and fetched again */
    WORKER_AUTH,          /* the target rejected the credentials: exit 3, no dead letter */
} worker_outcome_t;

/* "delivered", "skipped", "dedup_hit", "dead_lettered", "released", "auth". */
const char *worker_outcome_name(worker_outcome_t outcome);

#define WORKER_REASON_MAX 48

typedef struct {
    worker_outcome_t outcome;
    char reason[WORKER_REASON_MAX];    /* bounded set (a metric label): never an id or a name */
    char error_class[48];              /* WORKER_DEAD: "InvalidDocument", "HttpStatus422",
                                          "AmbiguousCreate", "ClientNotFound", "CurlTimeout" */
    char message[512];                 /* WORKER_DEAD: for the operator; no secret, no personal
                                          data (documents masked) */
    long http_status;                  /* last HTTP status, 0 when none */
    int attempts;                      /* HTTP attempts, all calls of this handling */
    char *response;                    /* owned: last response body excerpt (<= 1 KiB) or NULL */
    int64_t first_failure_ms;          /* wall clock ms, 0 = none */
    int64_t last_failure_ms;
    char target_id[64];                /* delivered / dedup: Milvus id, token or codigo, Ploomes
                                          Id (for the record_done log line) */
} worker_result_t;

/* Frees out->response and zeroes the struct. */
void worker_result_clear(worker_result_t *out);

/* Sets outcome + reason (skips, dedup hits, deliveries). Returns out->outcome. */
worker_outcome_t worker_result_set(worker_result_t *out, worker_outcome_t outcome,
                                   const char *reason);

/* WORKER_DEAD with error_class and a printf-style message (no personal data!). */
worker_outcome_t worker_result_dead(worker_result_t *out, const char *error_class,
                                    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Folds a finished api_request() into out: API_OK changes nothing (returns WORKER_DELIVERED
 * without setting the outcome); API_AUTH → WORKER_AUTH; API_STOPPED → WORKER_RELEASE;
 * runtime: API_PERMANENT with status 403 → WORKER_AUTH (only Milvus' 403 is permanent: it
 * answers a bad token with 403; Ploomes' 403 is retried and ends API_RETRIABLE_EXHAUSTED);
 * API_PERMANENT / API_RETRIABLE_EXHAUSTED / API_AMBIGUOUS → WORKER_DEAD with the result's
 * error class, message, status, attempts, failure times and body excerpt. Attempts add up. */
worker_outcome_t worker_result_from_api(worker_result_t *out, const api_result_t *res);

/* Per-handling context, filled by the runtime; handlers read it. */
typedef struct worker_ctx {
    const config_t *cfg;
    store_t *store;
    api_t *ploomes;           /* NULL unless the handler needs CONFIG_NEED_PLOOMES */
    api_t *milvus;            /* NULL unless the handler needs CONFIG_NEED_MILVUS */
    metrics_t *metrics;       /* the process registry (handlers may register their own) */
    const char *worker_name;  /* binary name, e.g. "tasks-to-milvus" */
    const char *instance_id;  /* "hostname-pid" */
    char owner[STORE_OWNER_MAX]; /* claim owner of THIS handling: instance id + "/" + nonce */
    bool dry_run;             /* DRY_RUN=1: no writes to MongoDB or the target */
    /* About the record being handled: */
    const kafka_record_t *rec;
    bool replayed;            /* carries x-dlq.replayed-from */
    int64_t fetched_at_ms;    /* the fetched-at header, -1 when absent or unparsable */
    struct worker_rt *rt;     /* runtime: the runtime's own state (opaque; NULL in unit tests,
                                 then store waits give up at once) */
    struct worker_thread *thread; /* runtime: the handling thread (MAX_IN_FLIGHT > 1), NULL on
                                     the poll thread (opaque) */
} worker_ctx_t;

/* runtime: for handlers that call store_* themselves. After a STORE_DOWN answer, waits until
 * MongoDB answers again (readiness off meanwhile, event=store_unavailable / store_recovered
 * logged once per outage) while keeping the consumer alive; returns true then (retry the
 * call), false when a stop was requested (return WORKER_RELEASE with reason "stopping").
 * Never dead-letter a record because MongoDB is down. */
bool worker_store_wait(worker_ctx_t *ctx);

/* A worker. `handle` must fill `out` (outcome and the matching fields) and never crash on any
 * JSON object: wrong types, nulls, huge strings are WORKER_DEAD or WORKER_SKIPPED with a reason. */
typedef struct worker_handler {
    const char *name;        /* binary name: consumer group TOPIC_PREFIX + name, DLQ connector */
    const char *topic;       /* unprefixed source topic, e.g. "ploomes.contacts" */
    const char *summary;     /* one line for --help */
    unsigned config_needs;   /* CONFIG_NEED_* bits besides KAFKA | MONGO | WORKER */
    /* Optional: once at start, after the store answered (first-start settings such as
     * TICKETS_SINCE, MILVUS_MIN_ID). Non-zero = cannot start (err says why; exit 1). */
    int (*init)(worker_ctx_t *ctx, void **state, char *err, size_t errlen);
    void (*fini)(void *state); /* optional */
    void (*handle)(worker_ctx_t *ctx, void *state, const cJSON *value, worker_result_t *out);
} worker_handler_t;

/* The whole binary: CLI (--help, --version, --print-config, --check-config, --idle-exit
 * SECONDS), config, store, API clients with the shared rate limits, topics, consumer, DLQ,
 * metrics server, loop, shutdown. Returns the process exit code (SPEC §4). */
int worker_main(const worker_handler_t *h, int argc, char **argv);

/* runtime: parsing of a record's value, exposed for tests. Parses rec->value bounded by
 * max_bytes (json_parse_bounded); returns WORKER_DELIVERED with *value set (caller
 * cJSON_Delete()s it) when it is a JSON object with valid UTF-8 everywhere, else WORKER_DEAD
 * with `out` filled: "InvalidJson" (not JSON, too large, or a tombstone), "NotAnObject",
 * "InvalidUtf8" (the message names the JSON path, never the text). */
worker_outcome_t worker_parse_value(const kafka_record_t *rec, size_t max_bytes, cJSON **value,
                                    worker_result_t *out);

/* runtime: "<instance_id>/<16 random hex>" into buf (a claim owner unique per handling). */
const char *worker_owner_new(const char *instance_id, char *buf, size_t size);

/* runtime: the fetched-at header as epoch ms, -1 when absent or not RFC 3339. */
int64_t worker_fetched_at_ms(const kafka_record_t *rec);

/* ---- creating at the target exactly once ---------------------------------------------------- */

typedef enum {
    WORKER_SEARCH_FOUND = 0,    /* the record exists at the target: `found` holds its fields */
    WORKER_SEARCH_NOT_FOUND = 1,
    WORKER_SEARCH_FAILED = 2,   /* could not search (out holds the failure) */
} worker_search_t;

typedef struct worker_create {
    store_kind_t kind;            /* clients or tickets */
    const char *key;              /* claim key: normalised document / "ploomes:task:<Id>" */
    const store_entry_t *seed;    /* optional fields written with the pending claim */
    /* Looks for an earlier result at the target (SPEC §4 search-before-create). */
    worker_search_t (*search)(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                              worker_result_t *out);
    /* Sends the create (API_NOT_IDEMPOTENT) and, on API_OK, fills `created` with the result
     * fields (a 2xx whose body holds no usable id must be returned as API_AMBIGUOUS). */
    api_outcome_t (*create)(worker_ctx_t *ctx, void *arg, store_entry_t *created,
                            api_result_t *res);
    void *arg;
} worker_create_t;

/* runtime: details of the protocol as implemented (workers/worker_create.c):
 * - `search` reports a failure by filling `out` through worker_result_from_api() (WORKER_DEAD,
 *   WORKER_AUTH or WORKER_RELEASE) and returning WORKER_SEARCH_FAILED.
 * - `create` is called at most MAX_ATTEMPTS times, and again only after an API_AMBIGUOUS
 *   answer followed by a search that found nothing. A 4xx (API_PERMANENT, status 400..499)
 *   is followed by a search: FOUND → WORKER_DEDUP_HIT "found_at_target"; else the claim is
 *   released and the record dead with the 4xx's class.
 * - Outcomes: created → WORKER_DELIVERED "created"; found after an ambiguous create →
 *   WORKER_DELIVERED "found_after_ambiguous"; found after a recovered claim → WORKER_DEDUP_HIT
 *   "found_at_target"; claim done → WORKER_DEDUP_HIT "claim_done"; claim busy →
 *   WORKER_RELEASE "claim_busy"; DRY_RUN → WORKER_DELIVERED "dry_run" (or the search's
 *   dedup hit). A stop or a 401 releases the claim unless a create may have taken effect
 *   (then it stays pending: whoever takes it over searches first).
 * - store_complete() answering STORE_CONFLICT is logged at error (event=claim_conflict) and
 *   the record still counts as delivered (the store merged the result).
 * - STORE_DOWN anywhere: worker_store_wait(), then the same step again. */
/* claim → (search, when the claim was recovered) → create → (search, when the create was
 * ambiguous or answered 4xx; create again only when nothing was found and budget remains) →
 * complete (or release on a permanent failure; an ambiguous create whose search failed is
 * dead-lettered `AmbiguousCreate` with the claim left pending). A claim found done is a dedup
 * hit; a busy claim is WORKER_RELEASE. `entry` (may be NULL) gets the final document
 * (e.g. the token a ticket worker needs). In DRY_RUN nothing is claimed or created: the search
 * runs, and the create is logged instead of sent (worker_post() does that). Returns out->outcome. */
worker_outcome_t worker_create_once(worker_ctx_t *ctx, const worker_create_t *c,
                                    store_entry_t *entry, worker_result_t *out);

/* The one way handlers send a write: api_request(API_NOT_IDEMPOTENT), or, in DRY_RUN, an
 * event=dry_run_request log line (method, path, body size; no body at info) and API_OK with
 * an empty body. */
api_outcome_t worker_post(worker_ctx_t *ctx, api_t *api, const char *path, const char *json_body,
                          api_result_t *res);

#endif
