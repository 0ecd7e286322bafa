/* store_: every MongoDB access of the pipeline (mongo-c-driver 1.23, FerretDB v1 or mongod).
 *
 * Collections (database = the URI's path, default "pipeline"; SPEC §3-§7):
 *   cursors        {_id:"<source>.<entity>", stamp, id, updated_at, last_poll_at, last_ok_at,
 *                   last_error}                         producer cursors + last-poll info
 *   milvus_hashes  {_id:<int64 Milvus client id>, hash:"<hex>", updated_at}
 *   clients        identity map, _id = normalised document (see store_entry_t)
 *   tickets        one ticket claim per Ploomes record, _id = "ploomes:task:<Id>" / "ploomes:interaction:<Id>"
 *   tickets_done   {_id: same key, state:"done", result fields, claim_id, created_at, updated_at}
 *                  the completion of a ticket claim, written by an insert (store_complete); a
 *                  ticket is done when it is here or (older data, store_record_done) when its
 *                  `tickets` document says done. Read only on rare paths (re-delivery, takeover).
 *   leases         producer leases (see store_lease_acquire())
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
 * Leases (claims, the producer lease) are stamped and compared with MongoDB's clock
 * (store_server_time_ms(): the server's `hello.localTime`, sampled now and then and carried
 * forward on this host's monotonic clock), never the calling host's wall clock. Remaining
 * assumption: the server's clock does not jump (one mongod/FerretDB, or replica-set members
 * kept in sync by NTP), and an estimate is off by at most half the round trip of its sample
 * (the fastest of up to 3; one slower than 1 s is logged) plus monotonic drift (ppm): the 2 s
 * settle margin below and the rate limiter's margin absorb that. Stored instants that decide
 * nothing (updated_at, poll times) also use it, falling back to this host's clock when MongoDB
 * cannot be asked.
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

#include "metrics.h"

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
 * thread-safe client pool. serverSelectionTimeoutMS defaults to 5000, connectTimeoutMS to 5000
 * and socketTimeoutMS to 20000 (libmongoc's 5 minutes held a call, and SIGTERM, across a hung
 * server) unless the URI sets them. Does NOT contact the server (use store_ping()). Calls
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
 *   cursors, milvus_hashes, settings, dlq_replays, tickets_done, leases: _id only (unique by
 *   construction; a lease's links are found by name, a handful of documents).
 * Returns STORE_OK, STORE_DOWN or STORE_REJECTED. */
int store_ensure_indexes(store_t *st, char *err, size_t errlen);

/* ---- MongoDB's clock ------------------------------------------------------------------------ */

/* The server's current time (ms since the epoch). The offset to this host's monotonic clock is
 * sampled with `hello` (localTime, midpoint of the round trip, fastest of up to 3 samples) on the
 * first call and again when the sample is older than 60 s, so steady-state calls cost no round
 * trip (a failed refresh keeps the older sample and is tried again 5 s later). STORE_OK, or
 * STORE_DOWN / STORE_REJECTED when there is no sample yet and taking one fails (err set). */
int store_server_time_ms(store_t *st, int64_t *now_ms, char *err, size_t errlen);

/* The same clock on a bare pool (ratelimit_ owns one per limiter). `pool` is borrowed and must
 * outlive the clock; `db` is copied. `host_skew_ms` is for tests only: it pretends this host's
 * wall clock is off by that much (it changes only the reported host offset, as the estimate
 * never reads the wall clock). NULL only when out of memory. Thread-safe. */
typedef struct store_clock store_clock_t;
store_clock_t *store_clock_new(mongoc_client_pool_t *pool, const char *db, int64_t host_skew_ms);
void store_clock_free(store_clock_t *c);
/* Like store_server_time_ms() (same return codes). */
int store_clock_now(store_clock_t *c, int64_t *now_ms, char *err, size_t errlen);
/* Server time minus this host's wall clock (plus its test skew) at the last sample, 0 before the
 * first one. For logs and tests; a host off by more than 1 s is also logged (host_clock_offset). */
int64_t store_clock_host_offset_ms(store_clock_t *c);

/* Test only: pretend this host's wall clock is off by skew_ms (see store_clock_new()). Call
 * before the first use of the store's clock. */
void store_test_set_clock_skew(store_t *st, int64_t skew_ms);

/* ---- round trips (SPEC §7 metrics; issue 10 "Store cost") ----------------------------------- */

typedef enum {
    STORE_OP_INSERT = 0,
    STORE_OP_FIND,             /* one find (its getMore batches are not counted apart) */
    STORE_OP_UPDATE,
    STORE_OP_FIND_AND_MODIFY,  /* none today (not atomic on FerretDB); kept for the label set */
    STORE_OP_DELETE,
    STORE_OP_BULK,             /* one bulk write (several statements) */
    STORE_OP_COMMAND,          /* ping, hello (clock samples), createIndexes */
    STORE_OP_COUNT_            /* number of kinds, not a kind */
} store_op_t;

/* "insert", "find", "update", "findAndModify", "delete", "bulk", "command". */
const char *store_op_name(store_op_t op);

/* Round trips of kind `op` made through `st` since store_open() (every thread). Cheap (an
 * atomic load): tests compare counts before and after an operation. */
uint64_t store_round_trips(const store_t *st, store_op_t op);
/* Sum over every kind. */
uint64_t store_round_trips_total(const store_t *st);

/* Exports the counters as store_round_trips_total{op} in `m` (borrowed: it must outlive the
 * store, or call store_set_metrics(st, NULL) first). Round trips made before the call are added
 * at once. Call once, from main, before other threads use the store. */
void store_set_metrics(store_t *st, metrics_t *m);

/* ---- cursors -------------------------------------------------------------------------------- */

#define STORE_KEY_MAX 160   /* _id of cursors/clients/tickets/settings, NUL included */
#define STORE_OWNER_MAX 128 /* claim / lease owner, NUL included */
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

/* ---- producer lease (SPEC §3 "One active producer") ------------------------------------------
 * Collection `leases`: a chain of documents per lease name, each one decision taken by INSERTING
 * a unique _id (FerretDB's findAndModify is not atomic, see the top):
 *   {_id:"<name>",        name, seq:0, base:<server ms>}        the chain's origin (first use)
 *   {_id:"<name>#<seq>",  name, seq, base, owner, until, lease_ms, at}   one per acquisition,
 *                                                              renewal or release (owner "")
 * The newest (highest seq) says who holds it until when (MongoDB's clock). Acquiring an expired or
 * released lease, renewing and releasing all insert seq+1: of concurrent writers of seq+1 one
 * wins, so a holder that lost the lease finds out (duplicate key) and a taker never overlaps a
 * live holder. Old links (seq < newest - 20) are deleted now and then. Never drop the collection
 * while a producer runs (it would start a new chain; cursors written under the old one stay
 * valid: their (base, seq) is older than the new chain's).
 */
#define STORE_LEASE_NAME_MAX 120

typedef struct {
    bool held;                    /* the caller holds it now */
    char owner[STORE_OWNER_MAX];  /* who holds it ("" when nobody: never taken, released) */
    int64_t until_ms;             /* lease end on MongoDB's clock (0 when nobody holds it) */
    int64_t seq;                  /* link of the chain that says so (informational) */
} store_lease_t;

/* Takes lease `name` (non-empty, < STORE_LEASE_NAME_MAX bytes; e.g. "producer:ploomes") for
 * `owner` (non-empty, unique per process: instance id + a nonce) for `lease_ms` (> 0) when
 * nobody holds it or its lease ended; when `owner` already holds it, renews it. STORE_OK with
 * out->held true (the caller is the one active producer) or false (standby: out->owner holds
 * it until out->until_ms). Exactly one of any number of concurrent acquirers gets held = true.
 * STORE_DOWN / STORE_REJECTED (out->held false). Costs a find and an insert. */
int store_lease_acquire(store_t *st, const char *name, const char *owner, int64_t lease_ms,
                        store_lease_t *out, char *err, size_t errlen);

/* Extends `owner`'s lease to now + lease_ms (MongoDB's clock). STORE_OK (out->held true), or
 * STORE_CONFLICT when `owner` does not hold it any more (taken over after it expired, or
 * released): stop producing (out says who holds it). A lease that expired but that nobody took
 * is renewed. `out` may be NULL. */
int store_lease_renew(store_t *st, const char *name, const char *owner, int64_t lease_ms,
                      store_lease_t *out, char *err, size_t errlen);

/* Gives the lease up at once (SIGTERM), so a standby takes over without waiting for the expiry.
 * STORE_OK, or STORE_CONFLICT when `owner` did not hold it (nothing changed). */
int store_lease_release(store_t *st, const char *name, const char *owner, char *err,
                        size_t errlen);

/* Who holds lease `name` now (pipeline-status): STORE_OK with *out filled (held = false;
 * owner "" when nobody), STORE_DOWN, STORE_REJECTED. */
int store_lease_get(store_t *st, const char *name, store_lease_t *out, char *err,
                    size_t errlen);

/* store_cursor_set(), only while `owner` holds lease `lease_name`: STORE_CONFLICT (nothing
 * written, err says who holds it) when it does not. A lease with less than 2 s left is first
 * renewed for its last length. The cursor document remembers the lease link it was written
 * under (lease_base, lease_seq) and refuses a write under an older link, so a producer that lost
 * its lease can never move a cursor back behind its successor's writes. */
int store_cursor_set_leased(store_t *st, const char *key, const char *stamp, int64_t id,
                            const char *lease_name, const char *owner, char *err,
                            size_t errlen);

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
    /* ACQUIRED by taking over a pending claim whose lease had expired, or re-entered by the
     * handling that held it (store_claim_held(); an earlier attempt may have created the
     * record): search before create. */
    bool recovered;
    char previous_owner[STORE_OWNER_MAX]; /* recovered: who held it before ("" otherwise) */
    store_entry_t entry;      /* the document as it is after the call */
} store_claim_t;

/* Claims `key` in `kind` for `owner` (non-empty; unique per handling: instance id + a nonce the
 * worker draws for each handling of a record, SPEC §4) for `lease_ms` (> 0; choose it longer
 * than the longest retry sequence of one record, or renew). A live pending claim is BUSY for
 * everyone, `owner` included: only store_claim_held() with the claim_id it holds re-enters it
 * (so a second handling of one record in the same process never runs beside the first). An
 * expired one is taken over by anyone (recovered = true), its former owner included.
 * `seed` (may be NULL): result fields written with the new pending document (e.g. ploomes_id,
 * origin) so pipeline-status and humans can see what is in flight.
 * Atomic with respect to any number of concurrent claimers on any hosts: exactly one gets
 * ACQUIRED while the others get BUSY (or DONE once it completed).
 * Returns STORE_OK with *out filled, or STORE_DOWN / STORE_REJECTED (out->status undefined). */
int store_claim(store_t *st, store_kind_t kind, const char *key, const char *owner,
                int64_t lease_ms, const store_entry_t *seed, store_claim_t *out, char *err,
                size_t errlen);

/* Re-entry of a claim by the handling that holds it (e.g. after a retry of its own, when it is
 * not sure its earlier attempt settled): like store_claim(), and when the key is pending with
 * owner == `owner` and claim_id == `held_claim_id` (from out->entry.claim_id of the claim that
 * handling got) it is ACQUIRED again with recovered = true (search before create) and a new
 * claim_id. With another held_claim_id (or NULL) a live claim of `owner` is BUSY. */
int store_claim_held(store_t *st, store_kind_t kind, const char *key, const char *owner,
                     const char *held_claim_id, int64_t lease_ms, const store_entry_t *seed,
                     store_claim_t *out, char *err, size_t errlen);

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
 * When the key is already done (someone's store_record_done()), the caller's set fields that the
 * done document lacks (e.g. milvus_id, a token) are merged into it before CONFLICT is returned,
 * so no result is lost.
 * Cost: tickets whose claim this store_t granted and whose lease has more than 2 s left are
 * completed by ONE insert into `tickets_done` (no read, no update of the big `tickets`); other
 * cases read the claim first (rare paths).
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

/* The identity map through this store_t's in-memory cache (issue 10 "Store cost"): a cached
 * entry answers STORE_OK without a round trip; a miss reads MongoDB (store_get /
 * store_client_by_*) and caches the answer when it is done. Only done clients are cached
 * (positive entries; a pending or absent one is read again next time), fed also by this store's
 * completions, store_record_done() and claims that found a client done. MongoDB stays the source
 * of truth: a field merged later by another process is not seen in a cached entry — a caller that
 * needs a field the cached entry lacks (e.g. an empty milvus_token) calls the uncached function.
 * The cache holds at most 200,000 clients (then it starts over). Thread-safe. */
int store_client_get_cached(store_t *st, const char *key, store_entry_t *out, char *err,
                            size_t errlen);
int store_client_by_ploomes_id_cached(store_t *st, int64_t ploomes_id, store_entry_t *out,
                                      char *err, size_t errlen);
int store_client_by_milvus_id_cached(store_t *st, int64_t milvus_id, store_entry_t *out,
                                     char *err, size_t errlen);

/* ---- settings -------------------------------------------------------------------------------- */

/* Returns in `out` the value of setting `name`; when absent, first stores `initial` (so the first
 * start fixes it, e.g. TICKETS_SINCE). Concurrent first callers all get the single winner's
 * value. STORE_OK (out filled; STORE_REJECTED when out is too small), STORE_DOWN. */
int store_setting_get_or_init(store_t *st, const char *name, const char *initial, char *out,
                              size_t outlen, char *err, size_t errlen);

/* Reads setting `name` without creating it (e.g. clients-to-ploomes waiting for the
 * milvus_min_id that milvus-producer fixes): STORE_OK (out filled), STORE_NOT_FOUND,
 * STORE_DOWN, STORE_REJECTED (out too small, bad name). One find. */
int store_setting_get(store_t *st, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen);

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
