/* store_: every MongoDB access of the pipeline (mongo-c-driver 1.23, FerretDB v1 or mongod).
 *
 * Collections (database = the URI's path, default "pipeline"; SPEC §3-§7):
 *   cursors        {_id:"<source>.<entity>", stamp, id, updated_at, last_poll_at, last_ok_at,
 *                   last_error}                         producer cursors + last-poll info
 *   milvus_hashes  {_id:<int64 Milvus client id>, hash:"<hex>", updated_at}
 *   clients        identity map, _id = normalised document (see store_entry_t)
 *   tickets        one ticket per Ploomes record, _id = "ploomes:task:<Id>" / "ploomes:interaction:<Id>"
 *   settings       {_id:<name>, value:"<text>", created_at}   values fixed at the first start
 *   dlq_replays    {_id:"<topic>/<partition>/<offset>", topic, partition, offset, by, count,
 *                   first_at, last_at}                  dead letters already replayed
 *   claim_locks    {_id:"<coll>/<key>/<owner>/<lease_until>/<claim_id>#<n>", by, at}
 *                                                       one per takeover of a pending claim
 *   (the rate limiter, ratelimit_, keeps its own collection through store_pool()/store_db_name())
 *
 * Errors: every operation returns a store_rc_t and writes an operator-readable sentence into the
 * caller's err buffer (never the URI's password). Callers must tell STORE_DOWN ("MongoDB is
 * unreachable or timed out: try again later", a retriable condition) from STORE_REJECTED ("the
 * server refused the request: bad query, authentication, permissions": retrying will not help).
 *
 * Claims (clients and tickets, one implementation): a claim is a document that goes
 *   absent --store_claim--> pending{owner, lease_until} --store_complete--> done{result fields}
 *                                   \--store_release--> absent   (permanent failure: a replay may retry)
 * A pending claim whose lease expired (its owner died between the POST and the confirm) can be
 * taken over by store_claim(), which then reports recovered=true: the caller MUST search the
 * target for an earlier result before creating anything (SPEC §4 "Idempotence across crashes").
 * FerretDB has no transactions, and its findAndModify/update are NOT atomic read-modify-writes
 * (two concurrent conditional findAndModify calls on one document both matched in it_store), so
 * every decision that must have exactly one winner is an insert of a unique _id: creating a claim
 * (insert into clients/tickets), taking over a pending claim (insert into claim_locks, named after
 * the claim instance being replaced), settings, replays. Conditional updates are used only where
 * a lost race is harmless: complete/release/renew by the owner of a live lease (takers only
 * touch expired ones; an owner near or past its lease end re-takes it through the lock first).
 * Duplicate-key errors (11000) from concurrent upserts are retried here, so callers never see
 * them except as the documented STORE_CONFLICT outcomes.
 * Leases use the clock of the calling host (wall clock, ms since the epoch): hosts sharing a
 * database must keep their clocks in sync (NTP) to well under the lease length.
 *
 * Thread-safety: a store_t is safe to use from any number of threads at once (each call pops a
 * client from the mongoc_client_pool_t and pushes it back). store_global_init() /
 * store_global_cleanup() wrap mongoc_init()/mongoc_cleanup(): call them once per process, from
 * main(), before the first store_open() and after the last store_close() (also after anyone
 * else's last use of libmongoc, e.g. the rate limiter).
 *
 * Ownership: store_open() returns a store_t that store_close() frees. Every output struct is
 * caller-owned, filled by value (fixed-size strings, truncated only beyond the documented maxima,
 * which real data never reaches). store_cursor_list() returns a malloc'd array: free() it.
 */
#ifndef PIPELINE_STORE_H
#define PIPELINE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

typedef enum {
    STORE_OK = 0,
    STORE_NOT_FOUND = 1, /* no such document (get/lookup) */
    STORE_CONFLICT = 2,  /* duplicate key, or a conditional update found its condition false
                            (e.g. completing a claim this owner no longer holds) */
    STORE_DOWN = -1,     /* server unreachable, not primary, or timed out: retriable later */
    STORE_REJECTED = -2, /* the server refused (bad query, auth, permission) or the caller
                            passed invalid arguments: not retriable */
} store_rc_t;

/* "ok", "not_found", "conflict", "down", "rejected" (for logs and metrics labels). */
const char *store_rc_name(int rc);

typedef struct store store_t;

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* mongoc_init(), once per process (safe to call several times; later calls do nothing). */
void store_global_init(void);
/* mongoc_cleanup(). Call once at exit, after every store_close() and every other libmongoc use. */
void store_global_cleanup(void);

/* Parses `uri` (mongodb://...; the database is its path, "pipeline" when none) and creates a
 * thread-safe client pool. serverSelectionTimeoutMS defaults to 5000 and connectTimeoutMS to
 * 5000 unless the URI sets them. Does NOT contact the server (use store_ping()). Calls
 * store_global_init() itself.
 * Returns the handle, or NULL with err set when the URI is invalid (a configuration error,
 * name MONGODB_URI; the password is never copied into err). */
store_t *store_open(const char *uri, char *err, size_t errlen);

/* Frees the pool and the handle. NULL is ignored. No call may be in flight. */
void store_close(store_t *st);

/* The pool (for ratelimit_ and other modules needing raw access: pop/push a client around each
 * use) and the database name. Both owned by the store, valid until store_close(). */
mongoc_client_pool_t *store_pool(store_t *st);
const char *store_db_name(const store_t *st);

/* Runs {ping:1}: STORE_OK, or STORE_DOWN / STORE_REJECTED (auth) with err set. Used at start
 * (exit 1 when down past retries) and by /readyz callbacks. */
int store_ping(store_t *st, char *err, size_t errlen);

/* Creates the indexes this module needs (idempotent; run at every start):
 *   clients: ploomes_id_1, milvus_id_1 (lookups; not unique: the _id, the document, is what is
 *            unique, and a document may lack either id)
 *   tickets: state_1_lease_until_1 (finding stale claims)
 *   cursors, milvus_hashes, settings, dlq_replays: _id only (unique by construction).
 * Returns STORE_OK, STORE_DOWN or STORE_REJECTED. */
int store_ensure_indexes(store_t *st, char *err, size_t errlen);

/* ---- cursors -------------------------------------------------------------------------------- */

#define STORE_KEY_MAX 160   /* _id of cursors/clients/tickets/settings, NUL included */
#define STORE_STAMP_MAX 64  /* Ploomes LastUpdateDate text, NUL included */
#define STORE_ERRTEXT_MAX 512

typedef struct {
    char key[STORE_KEY_MAX];        /* "<source>.<entity>", e.g. "ploomes.contact" */
    bool has_position;              /* stamp/id were ever set by store_cursor_set() */
    char stamp[STORE_STAMP_MAX];    /* LastUpdateDate text as Ploomes printed it ("" if none) */
    int64_t id;                     /* last Id at that stamp */
    int64_t updated_at_ms;          /* when the position last moved (ms since epoch; 0 = never) */
    int64_t last_poll_at_ms;        /* last poll attempt ended (0 = never) */
    int64_t last_ok_at_ms;          /* last poll that succeeded (0 = never) */
    char last_error[STORE_ERRTEXT_MAX]; /* error of the last poll, "" when it succeeded */
} store_cursor_t;

/* Reads cursor `key` into *out. STORE_OK, STORE_NOT_FOUND (no document at all: first start),
 * STORE_DOWN, STORE_REJECTED. */
int store_cursor_get(store_t *st, const char *key, store_cursor_t *out, char *err, size_t errlen);

/* Saves the position (stamp, id) of cursor `key` (upsert; keeps the poll fields). */
int store_cursor_set(store_t *st, const char *key, const char *stamp, int64_t id, char *err,
                     size_t errlen);

/* Records the end of a poll of `key` (upsert): last_poll_at = now; when ok, last_ok_at = now
 * and last_error = ""; else last_error = error_text (first STORE_ERRTEXT_MAX-1 bytes; must not
 * hold secrets or personal data). Does not touch the position. */
int store_cursor_poll_result(store_t *st, const char *key, bool ok, const char *error_text,
                             char *err, size_t errlen);

/* All cursors, sorted by key (pipeline-status). *out is malloc'd (free() it; NULL when *n==0). */
int store_cursor_list(store_t *st, store_cursor_t **out, size_t *n, char *err, size_t errlen);

/* ---- Milvus content hashes ----------------------------------------------------------------- */

#define STORE_HASH_MAX 129 /* hex text, NUL included (SHA-256 needs 65) */

typedef struct {
    int64_t id;        /* Milvus client id */
    char hash[STORE_HASH_MAX]; /* get: "" when the id has no stored hash; set: the new hash */
} store_hash_t;

/* Batch get: fills items[i].hash for every items[i].id ("" when unknown), in as few queries as
 * possible ($in, 500 ids per query). n may be 0. STORE_OK / STORE_DOWN / STORE_REJECTED. */
int store_hashes_get(store_t *st, store_hash_t *items, size_t n, char *err, size_t errlen);

/* Batch set: upserts every items[i] (unordered bulk writes of 50: FerretDB 1.24 hangs on an
 * update command of >= 100 statements that modify existing documents; duplicate-key races
 * retried). Empty hashes are rejected (STORE_REJECTED) without writing anything. */
int store_hashes_set(store_t *st, const store_hash_t *items, size_t n, char *err, size_t errlen);

/* ---- identity map and ticket claims ---------------------------------------------------------- */

typedef enum {
    STORE_KIND_CLIENTS = 0, /* collection `clients`, key = normalised document */
    STORE_KIND_TICKETS = 1, /* collection `tickets`, key = "ploomes:task:<Id>" / "ploomes:interaction:<Id>" */
} store_kind_t;

typedef enum {
    STORE_STATE_NONE = 0,  /* no document */
    STORE_STATE_PENDING = 1,
    STORE_STATE_DONE = 2,
} store_state_t;

#define STORE_OWNER_MAX 128
#define STORE_TOKEN_MAX 64
#define STORE_CODIGO_MAX 64
#define STORE_ORIGIN_MAX 16
#define STORE_CLAIM_ID_MAX 40

/* One document of `clients` or `tickets`. As input (claim seed, complete, record_done) only the
 * result fields are read, and only the set ones are written: int64 fields when != 0, strings
 * when non-empty; unset fields leave what is stored. As output every field is filled ("" / 0
 * when absent). Field names in MongoDB are the member names. */
typedef struct {
    char key[STORE_KEY_MAX];          /* _id */
    store_state_t state;
    char owner[STORE_OWNER_MAX];      /* pending: who holds the claim */
    char claim_id[STORE_CLAIM_ID_MAX]; /* pending: random id of this claim instance (changes on
                                          every takeover; informational for callers) */
    int64_t lease_until_ms;           /* pending: lease end (ms since epoch) */
    int64_t created_at_ms, updated_at_ms;
    /* result fields */
    int64_t ploomes_id;               /* clients: Ploomes contact Id; tickets: task/interaction Id */
    int64_t milvus_id;                /* clients: Milvus numeric client id */
    char milvus_token[STORE_TOKEN_MAX]; /* clients: Milvus client token */
    char origin[STORE_ORIGIN_MAX];    /* clients: "ploomes" | "milvus" (where the client came from) */
    char codigo[STORE_CODIGO_MAX];    /* tickets: Milvus ticket number, as text */
    char milvus_client_token[STORE_TOKEN_MAX]; /* tickets: token of the ticket's Milvus client */
} store_entry_t;

typedef enum {
    STORE_CLAIM_ACQUIRED = 0, /* the caller now holds a pending claim: go create (after a search
                                 when `recovered`), then store_complete() or store_release() */
    STORE_CLAIM_DONE = 1,     /* already done: entry holds the result: dedup hit, create nothing */
    STORE_CLAIM_BUSY = 2,     /* another owner holds a live pending claim: try again later
                                 (entry.lease_until_ms says when it would expire) */
} store_claim_status_t;

typedef struct {
    store_claim_status_t status;
    /* ACQUIRED by taking over a pending claim whose lease had expired, or that this same owner
     * already held (an earlier attempt may have created the record): search before create. */
    bool recovered;
    char previous_owner[STORE_OWNER_MAX]; /* recovered: who held it before ("" otherwise) */
    store_entry_t entry;      /* the document as it is after the call */
} store_claim_t;

/* Claims `key` in `kind` for `owner` (non-empty; must be unique per concurrent holder, e.g.
 * "<hostname>-<pid>/<slot>", because a claim by the same owner counts as a re-entry) for
 * `lease_ms` (> 0; choose it longer than the longest retry sequence of one record, or renew).
 * `seed` (may be NULL): result fields written with the new pending document (e.g. ploomes_id,
 * origin) so pipeline-status and humans can see what is in flight.
 * Atomic with respect to any number of concurrent claimers on any hosts: exactly one gets
 * ACQUIRED while the others get BUSY (or DONE once it completed).
 * Returns STORE_OK with *out filled, or STORE_DOWN / STORE_REJECTED (out->status undefined). */
int store_claim(store_t *st, store_kind_t kind, const char *key, const char *owner,
                int64_t lease_ms, const store_entry_t *seed, store_claim_t *out, char *err,
                size_t errlen);

/* Extends the lease of `owner`'s pending claim to now + lease_ms. Renew while the lease is still
 * live (e.g. when half of it is left); a lease that has ended or ends within 2 s is renewed only
 * if no taker won it meanwhile (same lock as a takeover). STORE_OK, or STORE_CONFLICT when
 * `owner` no longer holds it (lease taken over, completed, released). */
int store_claim_renew(store_t *st, store_kind_t kind, const char *key, const char *owner,
                      int64_t lease_ms, char *err, size_t errlen);

/* pending -> done, only when `owner` still holds the pending claim (even if its lease expired
 * but nobody took it over). Writes the set fields of `result` (may be NULL), drops owner,
 * lease_until and claim_id. STORE_OK, or STORE_CONFLICT (err says who holds it / that it is done
 * / gone): the caller then logs loudly, because another holder may have created a duplicate.
 * When the claim is gone altogether (released, deleted by hand), the result is still recorded
 * as done (an insert; left alone if someone claimed the key meanwhile) and CONFLICT returned:
 * the record exists at the target, and a fresh claim would not search before creating it again.
 * A lease that has ended, or ends within 2 s, is first re-taken through the same lock as a
 * takeover (FerretDB's conditional writes are not atomic), so a complete and a takeover of one
 * claim never both succeed. Same for store_release() and store_claim_renew(). */
int store_complete(store_t *st, store_kind_t kind, const char *key, const char *owner,
                   const store_entry_t *result, char *err, size_t errlen);

/* Deletes `owner`'s pending claim (a permanent failure: the record goes to the DLQ and a later
 * replay must be able to claim it again). STORE_OK, or STORE_CONFLICT when `owner` does not
 * hold a pending claim on `key` (nothing is deleted; in particular never a taker's claim, even
 * on FerretDB: see store_complete()). */
int store_release(store_t *st, store_kind_t kind, const char *key, const char *owner,
                  char *err, size_t errlen);

/* Records a result found at the target without a claim of ours (dedup by search: "found in
 * Milvus → record it in the map"): upsert {state:"done", set fields of `fields`}. A pending claim
 * of someone else on `key` is turned into done (its holder's store_complete() then CONFLICTs,
 * which is right: the record exists). Duplicate-key races retried. STORE_OK/DOWN/REJECTED. */
int store_record_done(store_t *st, store_kind_t kind, const char *key,
                      const store_entry_t *fields, char *err, size_t errlen);

/* Lookups: STORE_OK with *out filled, STORE_NOT_FOUND, STORE_DOWN, STORE_REJECTED.
 * By _id in either collection: */
int store_get(store_t *st, store_kind_t kind, const char *key, store_entry_t *out, char *err,
              size_t errlen);
/* clients by Ploomes contact id / by Milvus client id (indexed). When several documents carry
 * the id (should not happen), the one in state done updated last wins. */
int store_client_by_ploomes_id(store_t *st, int64_t ploomes_id, store_entry_t *out, char *err,
                               size_t errlen);
int store_client_by_milvus_id(store_t *st, int64_t milvus_id, store_entry_t *out, char *err,
                              size_t errlen);

/* ---- settings -------------------------------------------------------------------------------- */

/* Returns in `out` the value of setting `name`; when absent, first stores `initial` (so the first
 * start fixes it, e.g. TICKETS_SINCE). Concurrent first callers all get the single winner's
 * value. STORE_OK (out filled; STORE_REJECTED when out is too small), STORE_DOWN. */
int store_setting_get_or_init(store_t *st, const char *name, const char *initial, char *out,
                              size_t outlen, char *err, size_t errlen);

/* ---- DLQ replays ----------------------------------------------------------------------------- */

typedef struct {
    int64_t first_at_ms, last_at_ms; /* first and last replay */
    int64_t count;                   /* how many times it was replayed (>1 only with --force) */
    char by[STORE_OWNER_MAX];        /* who replayed it last (instance id / user) */
} store_replay_t;

/* Whether dead letter (topic, partition, offset) was replayed: STORE_OK with *out (may be NULL)
 * filled, STORE_NOT_FOUND, STORE_DOWN, STORE_REJECTED. */
int store_replay_get(store_t *st, const char *topic, int32_t partition, int64_t offset,
                     store_replay_t *out, char *err, size_t errlen);

/* Records a replay of (topic, partition, offset) by `by`. Without `force`: inserts; STORE_OK
 * when this call recorded it first, STORE_CONFLICT when it was already replayed (do not replay;
 * exactly one of several concurrent callers gets STORE_OK). With `force`: always STORE_OK,
 * count incremented. Record BEFORE producing the replay when a double replay is worse than a
 * lost one (then `--force` recovers a failed produce), after it otherwise. */
int store_replay_mark(store_t *st, const char *topic, int32_t partition, int64_t offset,
                      const char *by, bool force, char *err, size_t errlen);

#endif
