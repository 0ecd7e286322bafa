/* worker: the one runtime shared by the four workers (SPEC §4). A worker binary is a handler
 * table (filter, dedup key, mapping, delivery) handed to worker_main(); everything else —
 * consuming at-least-once, parsing and validating the record, claims, retries while the
 * consumer keeps polling, dead letters confirmed before the offset moves, metrics, logs,
 * signals, --idle-exit, DRY_RUN, exit codes — lives here.
 *
 * Flow of one record (runtime): poll → parse (bounded, UTF-8 checked; invalid JSON or a value
 * that is not an object → dead letter `InvalidJson` / `NotAnObject`) → handler->handle() →
 * outcome → terminal: store the offset (delivered, skipped, dedup hit) or dead-letter and store
 * the offset once the letter is confirmed; WORKER_RELEASE: give the record back and seek to it;
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
 * Threads: with MAX_IN_FLIGHT = 1 everything runs on the poll thread. With more, handle() runs
 * on worker threads, each with its own worker_ctx_t and API clients (api_t is one curl handle):
 * a handler must keep no mutable global state outside its `state` (guard it if it has any).
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
} worker_ctx_t;

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
