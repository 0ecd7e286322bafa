/* store_claim: the identity map and ticket claims (claim, renew, complete, release, record,
 * lookups). See store.h "identity map and ticket claims". */
#include "store_int.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <pthread.h>

/* Appends {_id: key, state: "pending", owner: owner}: owner's pending claim on key. */
static void append_pending_of(bson_t *filter, const char *key, const char *owner)
{
    BSON_APPEND_UTF8(filter, "_id", key);
    BSON_APPEND_UTF8(filter, "state", "pending");
    BSON_APPEND_UTF8(filter, "owner", owner);
}

/* Appends the update that settles an entry as done: $set state, updated_at and the result
 * fields f (NULL = none); $unset the claim's owner, lease and instance id. */
static void append_done(bson_t *update, int64_t now, const store_entry_t *f)
{
    bson_t set, unset;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "state", "done");
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    st_append_fields(&set, f);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "owner", "");
    BSON_APPEND_UTF8(&unset, "lease_until", "");
    BSON_APPEND_UTF8(&unset, "claim_id", "");
    bson_append_document_end(update, &unset);
}



/* A fresh random claim instance id (hex). */
static void new_claim_id(char *buf, size_t size)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof raw) { /* no entropy source: time and address still make it unique here */
        int64_t t = clock_mono_ms() ^ clock_wall_ms();
        uintptr_t a = (uintptr_t)buf;
        memcpy(raw, &t, sizeof t);
        memcpy(raw + 8, &a, sizeof a < 8 ? sizeof a : 8);
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof raw && o + 2 < size; i++) {
        buf[o++] = hex[raw[i] >> 4];
        buf[o++] = hex[raw[i] & 15];
    }
    buf[o] = '\0';
}

/* Housekeeping (FerretDB has no TTL indexes): a takeover lock only matters while its claim
 * instance can still be transferred, and one older than its lease already counts as stale; so
 * after each won takeover, locks older than STORE_LOCK_KEEP_MS (or two leases, if longer) are
 * deleted. Best effort: a failure only leaves more documents. Rare path (takeovers only). */
#define STORE_LOCK_KEEP_MS ((int64_t)24 * 3600 * 1000)

static void collect_old_locks(store_t *st, mongoc_client_t *client, mongoc_collection_t *locks,
                              int64_t now, int64_t lease_ms)
{
    int64_t keep = 2 * lease_ms > STORE_LOCK_KEEP_MS ? 2 * lease_ms : STORE_LOCK_KEEP_MS;
    bson_t filter = BSON_INITIALIZER, lt;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "at", &lt);
    BSON_APPEND_DATE_TIME(&lt, "$lt", now - keep);
    bson_append_document_end(&filter, &lt);
    bson_error_t e;
    handle_t lh = {st, client, locks};
    if (!st_delete_many(&lh, &filter, &e))
        log_msg(LOG_DEBUG, "claim_locks_gc_failed", "error_code=%u", e.code);
    bson_destroy(&filter);
}

/* Transfers the pending claim `cur` (as read) to `owner` with a new lease. FerretDB's
 * findAndModify and update are not atomic read-modify-writes (two concurrent conditional
 * findAndModify calls on one document both matched in our tests), so the transfer is decided by
 * the one primitive that is atomic everywhere: inserting a unique _id into `claim_locks`, named
 * after the claim instance being replaced. Exactly one transferer wins; the others are told
 * "busy". A lock whose winner died before updating the claim (a crash inside a few ms) goes stale
 * after lease_ms and the next lock level (#1, #2, ...) is tried.
 * Returns STORE_OK (won; *out filled), TRANSFER_BUSY (someone else is transferring it),
 * STORE_CONFLICT (the claim changed: re-read), STORE_DOWN / STORE_REJECTED. */
enum { TRANSFER_BUSY = 100 }; /* transfer(): someone else is transferring it */
static int transfer(store_t *st, handle_t *h, store_kind_t kind, const store_entry_t *cur,
                    const char *owner, int64_t lease_ms, const char *what, store_entry_t *out,
                    char *err, size_t errlen)
{
    mongoc_client_t *client = h->client;
    mongoc_collection_t *locks = mongoc_client_get_collection(client, st->db, COLL_CLAIM_LOCKS);
    int rc = STORE_CONFLICT;
    bool won = false;
    int64_t now = 0;
    for (int level = 0; level < STORE_LOCK_LEVELS && !won; level++) {
        char lock_id[STORE_KEY_MAX + STORE_OWNER_MAX + 128];
        snprintf(lock_id, sizeof lock_id, "%s/%s/%s/%lld/%s#%d", st_kind_coll(kind), cur->key,
                 cur->owner, (long long)cur->lease_until_ms, cur->claim_id, level);
        rc = store_server_time_ms(st, &now, err, errlen);
        if (rc != STORE_OK)
            break;
        rc = STORE_CONFLICT;
        bson_t lock = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&lock, "_id", lock_id);
        BSON_APPEND_UTF8(&lock, "by", owner);
        BSON_APPEND_DATE_TIME(&lock, "at", now);
        bson_error_t e;
        handle_t lh = {st, client, locks};
        bool ok = st_insert(&lh, &lock, &e);
        bson_destroy(&lock);
        if (ok) {
            won = true;
            break;
        }
        if (!st_is_dup(&e)) {
            rc = st_fail(st, &e, what, err, errlen);
            break;
        }
        /* someone holds this level: fine unless it is stale (its winner died mid-transfer) */
        bson_t doc;
        int frc = st_find_by_id(&lh, lock_id, &doc, what, err, errlen);
        if (frc == STORE_NOT_FOUND)
            continue;
        if (frc != STORE_OK) {
            rc = frc;
            break;
        }
        int64_t at = st_field_int64(&doc, "at");
        bson_destroy(&doc);
        if (at + lease_ms >= now) {
            rc = TRANSFER_BUSY; /* a live transfer by someone else */
            break;
        }
    }
    if (won)
        collect_old_locks(st, client, locks, now, lease_ms);
    mongoc_collection_destroy(locks);
    if (!won)
        return rc;

    /* we alone may replace this claim instance */
    rc = store_server_time_ms(st, &now, err, errlen);
    if (rc != STORE_OK)
        return rc;
    char claim_id[STORE_CLAIM_ID_MAX];
    new_claim_id(claim_id, sizeof claim_id);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    BSON_APPEND_UTF8(&filter, "_id", cur->key);
    BSON_APPEND_UTF8(&filter, "state", "pending");
    BSON_APPEND_UTF8(&filter, "claim_id", cur->claim_id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "owner", owner);
    BSON_APPEND_DATE_TIME(&set, "lease_until", now + lease_ms);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_UTF8(&set, "claim_id", claim_id);
    bson_append_document_end(&update, &set);
    int64_t matched = 0;
    rc = st_update_retry(h, &filter, &update, false, &matched, what, err, errlen);
    bson_destroy(&filter);
    bson_destroy(&update);
    if (rc != STORE_OK)
        return rc;
    if (matched == 0)
        return STORE_CONFLICT; /* completed, released or re-created meanwhile */
    *out = *cur;
    st_copy_cstr(out->owner, sizeof out->owner, owner);
    st_copy_cstr(out->claim_id, sizeof out->claim_id, claim_id);
    out->lease_until_ms = now + lease_ms;
    out->updated_at_ms = now;
    return STORE_OK;
}

/* ---- claims memo: ticket claims this store granted (the completion's fast path) ------------- */

#define MEMO_BUCKETS 4096
#define MEMO_MAX 100000 /* more claims held at once than this: start over (only costs reads) */

typedef struct memo_node {
    struct memo_node *next;
    char key[STORE_KEY_MAX];
    char owner[STORE_OWNER_MAX];
    char claim_id[STORE_CLAIM_ID_MAX];
    int64_t lease_until_ms;
} memo_node_t;

struct store_claim_memo {
    pthread_mutex_t lock;
    size_t count;
    memo_node_t *buckets[MEMO_BUCKETS];
};

static size_t memo_hash(const char *key) { return (size_t)(st_hash_text(key) % MEMO_BUCKETS); }

store_claim_memo_t *st_memo_new(void)
{
    store_claim_memo_t *m = calloc(1, sizeof *m);
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void memo_clear_locked(store_claim_memo_t *m)
{
    for (size_t i = 0; i < MEMO_BUCKETS; i++) {
        memo_node_t *n = m->buckets[i];
        while (n) {
            memo_node_t *next = n->next;
            free(n);
            n = next;
        }
        m->buckets[i] = NULL;
    }
    m->count = 0;
}

void st_memo_free(store_claim_memo_t *m)
{
    if (!m)
        return;
    memo_clear_locked(m);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Remembers (or updates) that this store granted `e` (a pending claim) to e->owner. */
static void memo_put(store_t *st, const store_entry_t *e)
{
    store_claim_memo_t *m = st->claims;
    pthread_mutex_lock(&m->lock);
    size_t b = memo_hash(e->key);
    memo_node_t *n = m->buckets[b];
    while (n && strcmp(n->key, e->key) != 0)
        n = n->next;
    if (!n) {
        if (m->count >= MEMO_MAX)
            memo_clear_locked(m);
        n = calloc(1, sizeof *n);
        if (n) {
            st_copy_cstr(n->key, sizeof n->key, e->key);
            n->next = m->buckets[b];
            m->buckets[b] = n;
            m->count++;
        }
    }
    if (n) {
        st_copy_cstr(n->owner, sizeof n->owner, e->owner);
        st_copy_cstr(n->claim_id, sizeof n->claim_id, e->claim_id);
        n->lease_until_ms = e->lease_until_ms;
    }
    pthread_mutex_unlock(&m->lock);
}

/* Whether this store granted `key` to `owner`: fills *claim_id / *until and returns true. */
static bool memo_get(store_t *st, const char *key, const char *owner, char *claim_id,
                     int64_t *until)
{
    store_claim_memo_t *m = st->claims;
    pthread_mutex_lock(&m->lock);
    memo_node_t *n = m->buckets[memo_hash(key)];
    while (n && strcmp(n->key, key) != 0)
        n = n->next;
    bool found = n && strcmp(n->owner, owner) == 0;
    if (found) {
        st_copy_cstr(claim_id, STORE_CLAIM_ID_MAX, n->claim_id);
        *until = n->lease_until_ms;
    }
    pthread_mutex_unlock(&m->lock);
    return found;
}

static void memo_drop(store_t *st, const char *key)
{
    store_claim_memo_t *m = st->claims;
    pthread_mutex_lock(&m->lock);
    memo_node_t **pp = &m->buckets[memo_hash(key)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    if (*pp) {
        memo_node_t *n = *pp;
        *pp = n->next;
        free(n);
        m->count--;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- completions (tickets_done) --------------------------------------------------------------- */

/* Reads the completion of `key` (kinds with a done collection). STORE_OK (*out filled),
 * STORE_NOT_FOUND, DOWN, REJECTED. */
static int read_done(handle_t *h, store_kind_t kind, const char *key, store_entry_t *out,
                     const char *what, char *err, size_t errlen)
{
    mongoc_collection_t *coll = st_other(h, st_done_coll(kind));
    handle_t dh = {h->st, h->client, coll};
    bson_t doc;
    int rc = st_find_by_id(&dh, key, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        st_parse_entry(&doc, out);
        out->state = STORE_STATE_DONE;
        bson_destroy(&doc);
    }
    mongoc_collection_destroy(coll);
    return rc;
}

/* The claim `cur` as settled by its completion `done`: state done, no claim fields, the result
 * fields of both (the completion's win). */
static void settle_view(store_entry_t *cur, const store_entry_t *done)
{
    st_overlay_fields(cur, done);
    cur->state = STORE_STATE_DONE;
    cur->owner[0] = '\0';
    cur->claim_id[0] = '\0';
    cur->lease_until_ms = 0;
    if (done->updated_at_ms)
        cur->updated_at_ms = done->updated_at_ms;
}

/* Adds to the done document `have` (in `coll`, _id key) the fields of `result` it lacks (issue 8
 * item 5: a completion that lost the race to store_record_done() must not lose its result).
 * A plain update: only missing fields are added, so a concurrent writer loses nothing either. */
static int merge_missing(handle_t *h, mongoc_collection_t *coll, const char *key,
                         const store_entry_t *have, const store_entry_t *result, int64_t now,
                         const char *what, char *err, size_t errlen)
{
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    int n = st_append_missing_fields(&set, result, have);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    bson_append_document_end(&update, &set);
    int rc = STORE_OK;
    if (n > 0) {
        handle_t mh = {h->st, h->client, coll ? coll : h->coll};
        bson_t filter = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&filter, "_id", key);
        rc = st_update_retry(&mh, &filter, &update, false, NULL, what, err, errlen);
        bson_destroy(&filter);
    }
    bson_destroy(&update);
    return rc;
}

/* Inserts the completion {_id: key, state: done, claim_id, result} into the done collection.
 * STORE_OK; STORE_CONFLICT when the key was already done there (the caller's missing fields are
 * merged in first, err says so); DOWN; REJECTED. */
static int insert_done(handle_t *h, store_kind_t kind, const char *key, const char *claim_id,
                       const store_entry_t *result, int64_t now, const char *what, char *err,
                       size_t errlen)
{
    mongoc_collection_t *coll = st_other(h, st_done_coll(kind));
    handle_t dh = {h->st, h->client, coll};
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", key);
    BSON_APPEND_UTF8(&doc, "state", "done");
    if (claim_id && claim_id[0])
        BSON_APPEND_UTF8(&doc, "claim_id", claim_id);
    BSON_APPEND_DATE_TIME(&doc, "created_at", now);
    BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
    st_append_fields(&doc, result);
    bson_error_t e;
    int rc = STORE_OK;
    if (!st_insert(&dh, &doc, &e)) {
        if (!st_is_dup(&e)) {
            rc = st_fail(h->st, &e, what, err, errlen);
        } else {
            store_entry_t have;
            rc = read_done(h, kind, key, &have, what, err, errlen);
            if (rc == STORE_OK)
                rc = merge_missing(h, coll, key, &have, result, now, what, err, errlen);
            if (rc == STORE_OK) {
                rc = STORE_CONFLICT;
                errbuf_set(err, errlen,
                           "%s: it was already done (recorded by someone else); the fields it "
                           "lacked were added",
                           what);
            }
        }
    }
    bson_destroy(&doc);
    mongoc_collection_destroy(coll);
    return rc;
}

/* ---- claim --------------------------------------------------------------------------------- */

static int claim_impl(store_t *st, store_kind_t kind, const char *key, const char *owner,
                      const char *held_claim_id, int64_t lease_ms, const store_entry_t *seed,
                      store_claim_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!st_key_ok(key, "store_claim", err, errlen) || !st_owner_ok(owner, err, errlen) ||
        !st_fields_ok(seed, err, errlen))
        return STORE_REJECTED;
    if (lease_ms <= 0) {
        errbuf_set(err, errlen, "store_claim: lease_ms must be > 0");
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 64];
    st_describe(what, sizeof what, "claiming", kind, key);
    handle_t h = st_acquire(st, st_kind_coll(kind));
    int rc = STORE_CONFLICT;
    for (int round = 0; round < STORE_CLAIM_ROUNDS; round++) {
        if (round > 0)
            st_pause_ms(1 + round);
        int64_t now = 0;
        rc = store_server_time_ms(st, &now, err, errlen);
        if (rc != STORE_OK)
            break;

        /* 1. nobody has it: insert a pending claim (the unique _id makes this atomic) */
        char claim_id[STORE_CLAIM_ID_MAX];
        new_claim_id(claim_id, sizeof claim_id);
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", key);
        BSON_APPEND_UTF8(&doc, "state", "pending");
        BSON_APPEND_UTF8(&doc, "owner", owner);
        BSON_APPEND_DATE_TIME(&doc, "lease_until", now + lease_ms);
        BSON_APPEND_UTF8(&doc, "claim_id", claim_id);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
        st_append_fields(&doc, seed);
        bson_error_t e;
        bool inserted = st_insert(&h, &doc, &e);
        if (inserted) {
            st_parse_entry(&doc, &out->entry);
            bson_destroy(&doc);
            out->status = STORE_CLAIM_ACQUIRED;
            if (st_done_coll(kind))
                memo_put(st, &out->entry);
            rc = STORE_OK;
            break;
        }
        bson_destroy(&doc);
        if (!st_is_dup(&e)) {
            rc = st_fail(st, &e, what, err, errlen);
            break;
        }

        /* 2. it exists (re-delivery, a concurrent claimer, a takeover): read it */
        bson_t found;
        rc = st_find_by_id(&h, key, &found, what, err, errlen);
        if (rc == STORE_NOT_FOUND) { /* released meanwhile: start over */
            rc = STORE_CONFLICT;
            continue;
        }
        if (rc != STORE_OK)
            break;
        store_entry_t cur;
        st_parse_entry(&found, &cur);
        bson_destroy(&found);
        rc = store_server_time_ms(st, &now, err, errlen);
        if (rc != STORE_OK)
            break;
        if (st_done_coll(kind)) {
            /* its completion, read AFTER `now`: a holder completes only while its lease has
             * more than the settle margin left, so a lease seen expired at `now` was completed
             * (if at all) before this read starts */
            store_entry_t done;
            int drc = read_done(&h, kind, key, &done, what, err, errlen);
            if (drc == STORE_OK) {
                settle_view(&cur, &done);
            } else if (drc != STORE_NOT_FOUND) {
                rc = drc;
                break;
            }
        }
        if (cur.state == STORE_STATE_DONE) {
            out->status = STORE_CLAIM_DONE;
            out->entry = cur;
            if (kind == STORE_KIND_CLIENTS)
                st_cache_put(st, &cur);
            break;
        }
        /* the same handling re-enters with the claim id it holds; anyone else (another
         * handling of the same instance included) waits for a live lease to end */
        bool mine = held_claim_id && held_claim_id[0] && strcmp(cur.owner, owner) == 0 &&
                    strcmp(cur.claim_id, held_claim_id) == 0;
        if (cur.state == STORE_STATE_PENDING && !mine && cur.lease_until_ms >= now) {
            out->status = STORE_CLAIM_BUSY;
            out->entry = cur;
            break;
        }

        /* 3. pending and expired (or held by this very handling): take it over, one winner */
        rc = transfer(st, &h, kind, &cur, owner, lease_ms, what, &out->entry, err, errlen);
        if (rc == STORE_OK) {
            out->status = STORE_CLAIM_ACQUIRED;
            out->recovered = true;
            if (!mine)
                st_copy_cstr(out->previous_owner, sizeof out->previous_owner, cur.owner);
            if (st_done_coll(kind))
                memo_put(st, &out->entry);
            break;
        }
        if (rc == TRANSFER_BUSY) {
            rc = STORE_OK;
            out->status = STORE_CLAIM_BUSY;
            out->entry = cur;
            break;
        }
        if (rc != STORE_CONFLICT)
            break;
        /* the claim changed under us (completed, released, re-created): look again */
    }
    if (rc == STORE_CONFLICT)
        errbuf_set(err, errlen, "MongoDB at %s: %s did not settle after %d rounds (retry later)",
                   st->hosts, what, STORE_CLAIM_ROUNDS);
    st_release(&h);
    /* rounds exhausted (claims churning faster than we can read them): "try later" */
    return rc == STORE_CONFLICT ? STORE_DOWN : rc;
}

int store_claim(store_t *st, store_kind_t kind, const char *key, const char *owner,
                int64_t lease_ms, const store_entry_t *seed, store_claim_t *out, char *err,
                size_t errlen)
{
    return claim_impl(st, kind, key, owner, NULL, lease_ms, seed, out, err, errlen);
}

int store_claim_held(store_t *st, store_kind_t kind, const char *key, const char *owner,
                     const char *held_claim_id, int64_t lease_ms, const store_entry_t *seed,
                     store_claim_t *out, char *err, size_t errlen)
{
    return claim_impl(st, kind, key, owner, held_claim_id, lease_ms, seed, out, err, errlen);
}

/* ---- settling a claim: renew, complete, release ------------------------------------------- */

/* How close to its end a lease may be when its owner settles it (complete, release, renew) with a
 * plain conditional write (STORE_SETTLE_MARGIN_MS). FerretDB runs a conditional update/delete as
 * a read followed by an unconditional write by _id, so a write of the owner's that lands after a
 * taker's transfer would undo it (a release would delete the taker's claim, a complete would
 * overwrite it). Takers only transfer expired leases: an owner whose lease has less than the
 * margin left (or none) first takes its own claim back through the transfer lock, exactly like a
 * taker, and settles the fresh instance. */
#define STORE_SETTLE_LEASE_MS 60000

/* Reads `key` and checks that `owner` holds it pending; when its lease ends within the margin,
 * re-takes it through the transfer lock (lease_ms) so no taker can be mid-transfer. On STORE_OK
 * *cur is the claim as held now (its claim_id identifies the instance to write to). On
 * STORE_CONFLICT *cur is the document as read (state done when it is done).
 * STORE_NOT_FOUND (err set: gone), STORE_CONFLICT (err says who holds it / done), DOWN, REJECTED. */
static int hold(store_t *st, handle_t *h, store_kind_t kind, const char *key, const char *owner,
                int64_t lease_ms, const char *what, store_entry_t *cur, char *err, size_t errlen)
{
    memset(cur, 0, sizeof *cur);
    bson_t found;
    int rc = st_find_by_id(h, key, &found, what, err, errlen);
    if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "%s: not held by %s any more: the claim is gone", what, owner);
        return STORE_NOT_FOUND;
    }
    if (rc != STORE_OK)
        return rc;
    st_parse_entry(&found, cur);
    bson_destroy(&found);
    if (cur->state == STORE_STATE_DONE) {
        errbuf_set(err, errlen, "%s: not held by %s any more: it is already done", what, owner);
        return STORE_CONFLICT;
    }
    if (cur->state != STORE_STATE_PENDING || strcmp(cur->owner, owner) != 0) {
        errbuf_set(err, errlen, "%s: not held by %s any more: now held by %s", what, owner,
                   cur->owner[0] ? cur->owner : "(nobody)");
        return STORE_CONFLICT;
    }
    if (st_done_coll(kind)) { /* completed through the done collection? */
        store_entry_t done;
        rc = read_done(h, kind, key, &done, what, err, errlen);
        if (rc == STORE_OK) {
            settle_view(cur, &done);
            errbuf_set(err, errlen, "%s: not held by %s any more: it is already done", what,
                       owner);
            return STORE_CONFLICT;
        }
        if (rc != STORE_NOT_FOUND)
            return rc;
    }
    int64_t now = 0;
    rc = store_server_time_ms(st, &now, err, errlen);
    if (rc != STORE_OK)
        return rc;
    if (cur->lease_until_ms - STORE_SETTLE_MARGIN_MS > now)
        return STORE_OK; /* live: takers leave it alone */
    store_entry_t after;
    rc = transfer(st, h, kind, cur, owner, lease_ms, what, &after, err, errlen);
    if (rc == STORE_OK) {
        *cur = after;
        return STORE_OK;
    }
    if (rc == TRANSFER_BUSY || rc == STORE_CONFLICT) {
        errbuf_set(err, errlen, "%s: the lease of %s expired and another owner is taking it over",
                   what, owner);
        return STORE_CONFLICT;
    }
    return rc;
}

/* Conditional update of owner's pending claim instance `cur` (from hold()). */
static int owner_update(handle_t *h, const store_entry_t *cur, const char *owner,
                        const bson_t *update, const char *what, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    append_pending_of(&filter, cur->key, owner);
    BSON_APPEND_UTF8(&filter, "claim_id", cur->claim_id);
    int64_t matched = 0;
    int rc = st_update_retry(h, &filter, update, false, &matched, what, err, errlen);
    bson_destroy(&filter);
    if (rc == STORE_OK && matched == 0) {
        rc = STORE_CONFLICT;
        errbuf_set(err, errlen, "%s: changed while being written; %s no longer holds it", what,
                   owner);
    }
    return rc;
}

int store_claim_renew(store_t *st, store_kind_t kind, const char *key, const char *owner,
                      int64_t lease_ms, char *err, size_t errlen)
{
    if (!st_key_ok(key, "store_claim_renew", err, errlen) || !st_owner_ok(owner, err, errlen))
        return STORE_REJECTED;
    if (lease_ms <= 0) {
        errbuf_set(err, errlen, "store_claim_renew: lease_ms must be > 0");
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 64];
    st_describe(what, sizeof what, "renewing", kind, key);
    handle_t h = st_acquire(st, st_kind_coll(kind));
    store_entry_t cur;
    /* near or past its end the lease is re-taken through the transfer lock (hold()), which
     * already sets the new lease; a live one is extended by a conditional update */
    int rc = hold(st, &h, kind, key, owner, lease_ms, what, &cur, err, errlen);
    if (rc == STORE_NOT_FOUND)
        rc = STORE_CONFLICT;
    int64_t now = 0;
    if (rc == STORE_OK)
        rc = store_server_time_ms(st, &now, err, errlen);
    if (rc == STORE_OK) {
        bson_t update = BSON_INITIALIZER, set;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "lease_until", now + lease_ms);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        bson_append_document_end(&update, &set);
        rc = owner_update(&h, &cur, owner, &update, what, err, errlen);
        bson_destroy(&update);
        if (rc == STORE_OK && st_done_coll(kind)) {
            cur.lease_until_ms = now + lease_ms;
            memo_put(st, &cur);
        }
    }
    st_release(&h);
    return rc;
}

/* The claim is gone altogether (released, deleted by hand), but the caller created the record at
 * the target: write it down as done, or the next claim (not "recovered", so no search) would
 * create it a second time. An insert: if someone claimed it meanwhile, they hold it and we leave
 * them alone. Returns STORE_CONFLICT (err says what happened), DOWN or REJECTED. */
static int record_gone(handle_t *h, const char *key, const char *owner,
                       const store_entry_t *result, int64_t now, const char *what, char *err,
                       size_t errlen)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", key);
    BSON_APPEND_UTF8(&doc, "state", "done");
    BSON_APPEND_DATE_TIME(&doc, "created_at", now);
    BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
    st_append_fields(&doc, result);
    bson_error_t e;
    bool ok = st_insert(h, &doc, &e);
    bson_destroy(&doc);
    int rc = STORE_CONFLICT;
    if (ok)
        errbuf_set(err, errlen,
                   "%s: the claim of %s was gone (released or deleted); its result was "
                   "recorded as done anyway",
                   what, owner);
    else if (!st_is_dup(&e))
        rc = st_fail(h->st, &e, what, err, errlen);
    else
        errbuf_set(err, errlen, "%s: the claim of %s was gone and someone claimed it since",
                   what, owner);
    return rc;
}

/* Completion of a kind with a done collection (tickets). */
static int complete_into_done(store_t *st, handle_t *h, store_kind_t kind, const char *key,
                              const char *owner, const store_entry_t *result, const char *what,
                              char *err, size_t errlen)
{
    int64_t now = 0;
    int rc = store_server_time_ms(st, &now, err, errlen);
    if (rc != STORE_OK)
        return rc;
    /* fast path (steady state): this store granted the claim and its lease has more than the
     * settle margin left, so no taker can touch it: one insert, no read */
    char claim_id[STORE_CLAIM_ID_MAX];
    int64_t until = 0;
    if (memo_get(st, key, owner, claim_id, &until) && until - STORE_SETTLE_MARGIN_MS > now) {
        rc = insert_done(h, kind, key, claim_id, result, now, what, err, errlen);
        if (rc == STORE_OK || rc == STORE_CONFLICT)
            memo_drop(st, key);
        return rc;
    }
    /* rare path: read the claim (and re-take it when its lease is ending) */
    store_entry_t cur;
    rc = hold(st, h, kind, key, owner, STORE_SETTLE_LEASE_MS, what, &cur, err, errlen);
    if (rc == STORE_OK) {
        rc = insert_done(h, kind, key, cur.claim_id, result, now, what, err, errlen);
    } else if (rc == STORE_CONFLICT && cur.state == STORE_STATE_DONE) {
        /* done in `tickets` itself (store_record_done, older data): merge there too */
        char saved[STORE_ERRTEXT_MAX];
        st_copy_cstr(saved, sizeof saved, err);
        store_entry_t done;
        int drc = read_done(h, kind, key, &done, what, err, errlen);
        if (drc == STORE_OK)
            drc = insert_done(h, kind, key, NULL, result, now, what, err, errlen);
        else if (drc == STORE_NOT_FOUND)
            drc = merge_missing(h, NULL, key, &cur, result, now, what, err, errlen);
        if (drc == STORE_OK || drc == STORE_CONFLICT)
            errbuf_set(err, errlen, "%s; the fields it lacked were added", saved);
        else
            rc = drc;
    } else if (rc == STORE_NOT_FOUND) {
        rc = record_gone(h, key, owner, result, now, what, err, errlen);
    }
    if (rc == STORE_OK || rc == STORE_CONFLICT)
        memo_drop(st, key);
    return rc;
}

int store_complete(store_t *st, store_kind_t kind, const char *key, const char *owner,
                   const store_entry_t *result, char *err, size_t errlen)
{
    if (!st_key_ok(key, "store_complete", err, errlen) || !st_owner_ok(owner, err, errlen) ||
        !st_fields_ok(result, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    st_describe(what, sizeof what, "completing", kind, key);
    handle_t h = st_acquire(st, st_kind_coll(kind));
    int rc;
    if (st_done_coll(kind)) {
        rc = complete_into_done(st, &h, kind, key, owner, result, what, err, errlen);
        st_release(&h);
        return rc;
    }
    store_entry_t cur;
    rc = hold(st, &h, kind, key, owner, STORE_SETTLE_LEASE_MS, what, &cur, err, errlen);
    int64_t now = 0;
    bool done_already = rc == STORE_CONFLICT && cur.state == STORE_STATE_DONE;
    if (rc == STORE_OK || rc == STORE_NOT_FOUND || done_already) {
        int trc = store_server_time_ms(st, &now, err, errlen);
        if (trc != STORE_OK)
            rc = trc;
    }
    if (rc == STORE_OK) {
        bson_t update = BSON_INITIALIZER;
        append_done(&update, now, result);
        rc = owner_update(&h, &cur, owner, &update, what, err, errlen);
        bson_destroy(&update);
        if (rc == STORE_OK) {
            static const store_entry_t none;
            store_entry_t done = cur;
            settle_view(&done, result ? result : &none);
            st_cache_put(st, &done);
        }
    } else if (done_already && rc == STORE_CONFLICT) {
        /* someone recorded it done first (issue 8 item 5): keep our result's missing fields */
        char saved[STORE_ERRTEXT_MAX];
        st_copy_cstr(saved, sizeof saved, err);
        int mrc = merge_missing(&h, NULL, key, &cur, result, now, what, err, errlen);
        if (mrc == STORE_OK)
            errbuf_set(err, errlen, "%s; the fields it lacked were added", saved);
        else
            rc = mrc;
    } else if (rc == STORE_NOT_FOUND) {
        rc = record_gone(&h, key, owner, result, now, what, err, errlen);
    }
    st_release(&h);
    return rc;
}

int store_release(store_t *st, store_kind_t kind, const char *key, const char *owner, char *err,
                  size_t errlen)
{
    if (!st_key_ok(key, "store_release", err, errlen) || !st_owner_ok(owner, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    st_describe(what, sizeof what, "releasing", kind, key);
    handle_t h = st_acquire(st, st_kind_coll(kind));
    store_entry_t cur;
    int rc = hold(st, &h, kind, key, owner, STORE_SETTLE_LEASE_MS, what, &cur, err, errlen);
    if (rc == STORE_NOT_FOUND) {
        rc = STORE_CONFLICT;
        errbuf_set(err, errlen, "%s: %s holds no pending claim on it", what, owner);
    }
    if (rc == STORE_OK) {
        bson_t filter = BSON_INITIALIZER, reply;
        append_pending_of(&filter, key, owner);
        BSON_APPEND_UTF8(&filter, "claim_id", cur.claim_id);
        bson_error_t e;
        if (st_delete_one(&h, &filter, &reply, &e)) {
            rc = st_field_int64(&reply, "deletedCount") > 0 ? STORE_OK : STORE_CONFLICT;
            if (rc == STORE_CONFLICT)
                errbuf_set(err, errlen, "%s: %s holds no pending claim on it", what, owner);
        } else {
            rc = st_fail(st, &e, what, err, errlen);
        }
        bson_destroy(&reply);
        bson_destroy(&filter);
    }
    if (st_done_coll(kind) && (rc == STORE_OK || rc == STORE_CONFLICT))
        memo_drop(st, key);
    st_release(&h);
    return rc;
}

int store_record_done(store_t *st, store_kind_t kind, const char *key,
                      const store_entry_t *fields, char *err, size_t errlen)
{
    if (!st_key_ok(key, "store_record_done", err, errlen) || !st_fields_ok(fields, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    st_describe(what, sizeof what, "recording", kind, key);
    int64_t now = 0;
    int rc = store_server_time_ms(st, &now, err, errlen);
    if (rc != STORE_OK)
        return rc;
    /* the claim document first: once it says done no claim can start a create (a crash between
     * the two writes leaves the fields there) */
    bson_t update = BSON_INITIALIZER, soi;
    append_done(&update, now, fields);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
    BSON_APPEND_DATE_TIME(&soi, "created_at", now);
    bson_append_document_end(&update, &soi);
    handle_t h = st_acquire(st, st_kind_coll(kind));
    rc = st_upsert_by_id(&h, key, &update, what, err, errlen);
    bson_destroy(&update);
    if (rc == STORE_OK && st_done_coll(kind)) {
        /* and the completion (which readers prefer): upsert its fields */
        mongoc_collection_t *coll = st_other(&h, st_done_coll(kind));
        handle_t dh = {st, h.client, coll};
        bson_t up = BSON_INITIALIZER, set, so;
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$set", &set);
        BSON_APPEND_UTF8(&set, "state", "done");
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        st_append_fields(&set, fields);
        bson_append_document_end(&up, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&up, "$setOnInsert", &so);
        BSON_APPEND_DATE_TIME(&so, "created_at", now);
        bson_append_document_end(&up, &so);
        rc = st_upsert_by_id(&dh, key, &up, what, err, errlen);
        bson_destroy(&up);
        mongoc_collection_destroy(coll);
    }
    if (rc == STORE_OK && kind == STORE_KIND_CLIENTS) {
        store_entry_t e;
        memset(&e, 0, sizeof e);
        if (fields)
            e = *fields;
        st_copy_cstr(e.key, sizeof e.key, key);
        e.state = STORE_STATE_DONE;
        e.owner[0] = e.claim_id[0] = '\0';
        e.lease_until_ms = 0;
        st_cache_put(st, &e);
    }
    st_release(&h);
    return rc;
}

int store_get(store_t *st, store_kind_t kind, const char *key, store_entry_t *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!st_key_ok(key, "store_get", err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    st_describe(what, sizeof what, "reading", kind, key);
    handle_t h = st_acquire(st, st_kind_coll(kind));
    bson_t doc;
    int rc = st_find_by_id(&h, key, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        st_parse_entry(&doc, out);
        bson_destroy(&doc);
        if (st_done_coll(kind)) {
            store_entry_t done;
            int drc = read_done(&h, kind, key, &done, what, err, errlen);
            if (drc == STORE_OK)
                settle_view(out, &done);
            else if (drc != STORE_NOT_FOUND)
                rc = drc;
        }
        if (rc != STORE_OK)
            memset(out, 0, sizeof *out);
    } else if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "%s: not found", what);
    }
    st_release(&h);
    return rc;
}

static int client_by(store_t *st, const char *field, int64_t id, store_entry_t *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    char what[96];
    snprintf(what, sizeof what, "looking up clients by %s %lld", field, (long long)id);
    handle_t h = st_acquire(st, COLL_CLIENTS);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_INT64(&filter, field, id);
    st_append_one(&opts, "sort", "updated_at", -1);
    BSON_APPEND_INT64(&opts, "limit", 20);
    mongoc_cursor_t *cur = st_find(&h, &filter, &opts);
    const bson_t *doc;
    int rc = STORE_NOT_FOUND;
    while (mongoc_cursor_next(cur, &doc)) {
        store_entry_t e;
        st_parse_entry(doc, &e);
        if (rc == STORE_NOT_FOUND || (out->state != STORE_STATE_DONE && e.state == STORE_STATE_DONE))
            *out = e;
        rc = STORE_OK;
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) {
        memset(out, 0, sizeof *out);
        rc = st_fail(st, &e, what, err, errlen);
    } else if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "%s: not found", what);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    st_release(&h);
    return rc;
}

int store_client_by_ploomes_id(store_t *st, int64_t ploomes_id, store_entry_t *out, char *err,
                               size_t errlen)
{
    return client_by(st, "ploomes_id", ploomes_id, out, err, errlen);
}

int store_client_by_milvus_id(store_t *st, int64_t milvus_id, store_entry_t *out, char *err,
                              size_t errlen)
{
    return client_by(st, "milvus_id", milvus_id, out, err, errlen);
}

