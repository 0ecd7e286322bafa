/* store_int.h: what the store_*.c files share (not a public header: include store.h instead).
 * The handle, error classification, round-trip counting, field tables and the small helpers
 * every concern (cursors, hashes, claims, leases, settings, replays) needs. */
#ifndef PIPELINE_STORE_INT_H
#define PIPELINE_STORE_INT_H

#include "store.h"

#include <pthread.h>
#include <stdatomic.h>

#define STORE_DEFAULT_DB "pipeline"
#define STORE_DEFAULT_TIMEOUT_MS 5000
#define STORE_DUP_RETRIES 10   /* concurrent upserts of one _id on FerretDB: retry this often */
#define STORE_CLAIM_ROUNDS 10  /* claim: insert / take over / read, this many rounds at most */
#define STORE_READ_BATCH 500   /* ids per $in query */
/* writes per bulk: FerretDB 1.24 (SQLite) spins forever on an update command of 100 or more
 * statements that modify existing documents; stay well below */
#define STORE_WRITE_BATCH 50

#define COLL_CURSORS "cursors"
#define COLL_HASHES "milvus_hashes"
#define COLL_CLIENTS "clients"
#define COLL_TICKETS "tickets"
#define COLL_TICKETS_DONE "tickets_done"
#define COLL_SETTINGS "settings"
#define COLL_REPLAYS "dlq_replays"
#define COLL_CLAIM_LOCKS "claim_locks"
#define COLL_LEASES "leases"
#define STORE_LOCK_LEVELS 8 /* stale transfer locks skipped before giving up */

/* How close to its end a lease may be when its owner settles it (complete, release, renew, a
 * leased cursor write) with a plain write: see store_claim.c. */
#define STORE_SETTLE_MARGIN_MS 2000

typedef struct store_client_cache store_client_cache_t; /* store_cache.c */
typedef struct store_claim_memo store_claim_memo_t;     /* store_claim.c */

struct store {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char db[128];
    char hosts[256]; /* "host:port,..." for error messages (never the credentials) */
    store_clock_t *clock;
    _Atomic uint64_t trips[STORE_OP_COUNT_];
    _Atomic(metrics_family_t *) trips_metric; /* store_round_trips_total{op}, NULL = none */
    store_client_cache_t *clients;            /* identity-map cache */
    store_claim_memo_t *claims;               /* ticket claims this store granted */
};

/* ---- small helpers (store.c) ------------------------------------------------------------------ */

void st_copy_text(char *dst, size_t size, const char *src, size_t len);
void st_copy_cstr(char *dst, size_t size, const char *src);
void st_pause_ms(int ms);
const char *st_kind_coll(store_kind_t kind);
/* The completion collection of a kind (tickets_done), NULL when completions update the claim in
 * place (clients). */
const char *st_done_coll(store_kind_t kind);
const char *st_key_for_msg(store_kind_t kind, const char *key);
bool st_is_dup(const bson_error_t *e);
/* Classifies e, writes the operator's sentence and returns the code. */
int st_fail(const store_t *st, const bson_error_t *e, const char *what, char *err, size_t errlen);
int64_t st_iter_int64(const bson_iter_t *it);
void st_iter_text(const bson_iter_t *it, char *dst, size_t size);
int64_t st_field_int64(const bson_t *doc, const char *field);
void st_append_one(bson_t *doc, const char *name, const char *field, int32_t value);
bool st_key_ok(const char *key, const char *what, char *err, size_t errlen);
bool st_owner_ok(const char *owner, char *err, size_t errlen);
/* "<verb> <collection> <key>" for messages; never the key of a client (personal data). */
void st_describe(char *what, size_t size, const char *verb, store_kind_t kind, const char *key);

/* FNV-1a of a NUL-terminated text (the in-memory tables' bucket index). */
uint64_t st_hash_text(const char *s);

/* Counts one round trip of kind op (and exports it when metrics are set). */
void st_count(store_t *st, store_op_t op);

/* The server time for a stored instant that is informational (updated_at, poll times): the
 * server clock when it answers, else this host's wall clock. Never fails. */
int64_t st_stamp_now(store_t *st);

/* ---- documents <-> structs (store.c) -------------------------------------------------------- */

typedef enum { FIELD_TEXT, FIELD_INT64, FIELD_STATE } field_kind_t;
typedef struct {
    const char *name; /* MongoDB field */
    field_kind_t kind;
    size_t offset;    /* of the member */
    size_t size;      /* FIELD_TEXT: the char array's size */
    bool result;      /* store_entry_t: a result field (written by st_append_fields) */
} field_map_t;

extern const field_map_t ST_CURSOR_FIELDS[];
extern const size_t ST_CURSOR_FIELDS_N;
extern const field_map_t ST_ENTRY_FIELDS[];
extern const size_t ST_ENTRY_FIELDS_N;

void st_parse_fields(const bson_t *doc, const field_map_t *map, size_t n, void *out,
                     size_t out_size);
void st_parse_entry(const bson_t *doc, store_entry_t *out);
/* Appends the set result fields of f (NULL = none): numbers when non-zero, texts non-empty. */
void st_append_fields(bson_t *doc, const store_entry_t *f);
/* Appends the result fields set in f but unset (0 / "") in have: what a merge adds. Returns how
 * many were appended. */
int st_append_missing_fields(bson_t *doc, const store_entry_t *f, const store_entry_t *have);
/* Result texts must be NUL-terminated valid UTF-8 inside their arrays. */
bool st_fields_ok(const store_entry_t *f, char *err, size_t errlen);
/* Copies into dst the result fields set in src (overlay). */
void st_overlay_fields(store_entry_t *dst, const store_entry_t *src);

/* ---- handles and round trips (store.c) -------------------------------------------------------- */

/* A collection handle on a popped client. Caller: st_release(). */
typedef struct {
    store_t *st;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} handle_t;

handle_t st_acquire(store_t *st, const char *coll);
void st_release(handle_t *h);
/* Another collection on the same client (destroy it with mongoc_collection_destroy; the handle
 * does not own it). */
mongoc_collection_t *st_other(handle_t *h, const char *coll);

/* Counted wrappers of the driver's calls (one round trip each). */
mongoc_cursor_t *st_find(handle_t *h, const bson_t *filter, const bson_t *opts);
bool st_insert(handle_t *h, const bson_t *doc, bson_error_t *e);
bool st_delete_one(handle_t *h, const bson_t *filter, bson_t *reply, bson_error_t *e);
bool st_delete_many(handle_t *h, const bson_t *filter, bson_error_t *e);

/* find_one: copies the first matching document into *out (init'd by this call on STORE_OK). */
int st_find_one(handle_t *h, const bson_t *filter, const bson_t *opts, bson_t *out,
                const char *what, char *err, size_t errlen);
/* find_one of the document whose _id is the string id. */
int st_find_by_id(handle_t *h, const char *id, bson_t *out, const char *what, char *err,
                  size_t errlen);
/* update_one, retrying duplicate-key races of upserts; *matched = matched + upserted. */
int st_update_retry(handle_t *h, const bson_t *filter, const bson_t *update, bool upsert,
                    int64_t *matched, const char *what, char *err, size_t errlen);
int st_upsert_by_id(handle_t *h, const char *id, const bson_t *update, const char *what,
                    char *err, size_t errlen);

/* ---- cursors (store_cursor.c) ---------------------------------------------------------------- */

/* The lease link a cursor write happens under (store_lease.c). */
typedef struct {
    int64_t base, seq;
} st_lease_mark_t;

/* Saves a cursor's position; with `mark`, only when the cursor was not written under a newer
 * lease link (else STORE_CONFLICT). */
int st_cursor_write(store_t *st, const char *key, const char *stamp, int64_t id,
                    const st_lease_mark_t *mark, char *err, size_t errlen);

/* ---- clock (store_clock.c) ------------------------------------------------------------------ */

/* Makes the clock count its samples and word its errors as st's (store_open only). */
void st_clock_bind(store_clock_t *c, store_t *st);

/* ---- identity-map cache (store_cache.c) ------------------------------------------------------ */

store_client_cache_t *st_cache_new(void);
void st_cache_free(store_client_cache_t *c);
/* Remembers e when it is done (others are ignored). */
void st_cache_put(store_t *st, const store_entry_t *e);

/* ---- claims memo (store_claim.c) ------------------------------------------------------------- */

store_claim_memo_t *st_memo_new(void);
void st_memo_free(store_claim_memo_t *m);

#endif
