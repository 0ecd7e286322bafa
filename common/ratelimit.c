/* ratelimit_: N requests per window across processes, tickets with unique _ids in MongoDB.
 * See ratelimit.h for the design and the proof sketch. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "errbuf.h"
#include "hash.h"
#include "log.h"
#include "store.h"

#define RL_DEFAULT_WINDOW_MS 60000
/* 1 s: two processes' estimates of MongoDB's clock (each off by up to half its sample's round
 * trip) plus the time from a grant to the request reaching the API, which on a loaded host
 * (ASan, parallel tests, faketime) exceeded the former 500 ms: one 429 in it_clock_skew. At
 * 120/min it leaves 120 requests per 61 s (98.4% of the quota). */
#define RL_DEFAULT_MARGIN_MS 1000
#define RL_INSERT_TRIES 32 /* lost races in one try_acquire before reporting a wait */
#define RL_RACES_LOST_WAIT_MS 100 /* the wait reported after RL_INSERT_TRIES lost races */
#define RL_RACES_LOG_MS 10000     /* at most one ratelimit_races_lost line per this */
#define RL_STOPPED 3        /* internal: the caller's stop was seen before a block was inserted */
#define RL_SLICE_MS 100
#define RL_DUP_KEY 11000
#define RL_BLOCK_SPAN_MS 100 /* automatic B: the grants of about 100 ms at the full rate */
#define RL_EXPIRY_DIV 20     /* automatic E = W / 20 */

struct ratelimit {
    mongoc_client_pool_t *pool;
    char *database;
    char *collection;
    char *name;
    char bucket[HASH_HEX_SIZE];
    int limit;
    int64_t window_ms;
    int64_t margin_ms;
    store_clock_t *clock; /* MongoDB's clock: every stamp and every comparison */
    int batch;            /* B: grants per block */
    int blocks;           /* M = floor(N / B): blocks per window */
    int64_t expiry_ms;    /* E: 0 when B = 1 */
    int64_t sp_num, sp_den; /* S = sp_num / sp_den ms between grants (0: no spacing) */
    pthread_mutex_t refill; /* one thread at a time talks to MongoDB for a block */
    pthread_mutex_t lock;   /* guards everything below (short sections only) */
    int64_t hint;           /* highest block number seen; -1 = unknown */
    int pool_left;          /* tickets of this process's current block still to hand out */
    int64_t pool_expires;   /* MongoDB time after which they are dropped */
    int64_t pool_t;         /* the block's stamp (MongoDB time) */
    int pool_next;          /* index in the block of the next ticket to hand out */
    int64_t last_grant;     /* MongoDB time of this process's latest grant from its block */
    int64_t spent_until;    /* monotonic: the budget was seen spent until then */
    /* ratelimit_races_lost logging (under `refill`): monotonic time of the last line, rounds
     * not logged since */
    int64_t races_logged_mono;
    int64_t races_unlogged;
    ratelimit_stats_t stats;
};

typedef struct {
    int64_t k;
    int64_t t;
} rl_ticket_t;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* i * S in whole ms, rounded up (never faster than N per W). */
static int64_t span(const ratelimit_t *rl, int64_t i)
{
    if (rl->sp_num <= 0 || i <= 0)
        return 0;
    return (i * rl->sp_num + rl->sp_den - 1) / rl->sp_den;
}

ratelimit_t *ratelimit_new(const ratelimit_options_t *opts, char *err, size_t errlen)
{
    if (!opts || !opts->pool || !opts->database || !opts->database[0]) {
        errbuf_set(err, errlen, "rate limiter: a MongoDB pool and database name are required");
        return NULL;
    }
    const char *name = opts->name ? opts->name : "api";
    if (!opts->base_url || !opts->base_url[0] || !opts->secret || !opts->secret[0]) {
        errbuf_set(err, errlen, "rate limiter %s: base URL and credential are required", name);
        return NULL;
    }
    if (opts->limit < 1) {
        errbuf_set(err, errlen,
                   "rate limiter %s: limit must be at least 1 request per window, got %d", name,
                   opts->limit);
        return NULL;
    }
    ratelimit_t *rl = calloc(1, sizeof *rl);
    if (!rl) {
        errbuf_set(err, errlen, "rate limiter %s: out of memory", name);
        return NULL;
    }
    pthread_mutex_init(&rl->lock, NULL);
    pthread_mutex_init(&rl->refill, NULL);
    rl->pool = opts->pool;
    rl->limit = opts->limit;
    rl->window_ms = opts->window_ms > 0 ? opts->window_ms : RL_DEFAULT_WINDOW_MS;
    rl->margin_ms = opts->margin_ms >= 0 ? opts->margin_ms : RL_DEFAULT_MARGIN_MS;
    if (opts->spacing_ms > 0) {
        rl->sp_num = opts->spacing_ms;
        rl->sp_den = 1;
    } else if (opts->spacing_ms == 0) {
        rl->sp_num = rl->window_ms; /* S = W / N */
        rl->sp_den = rl->limit;
    }
    int64_t expiry = opts->batch_expiry_ms > 0 ? opts->batch_expiry_ms
                                               : rl->window_ms / RL_EXPIRY_DIV;
    int64_t batch = opts->batch > 0
                        ? opts->batch
                        : (int64_t)rl->limit * RL_BLOCK_SPAN_MS / rl->window_ms;
    if (opts->batch <= 0 && rl->sp_num > 0 && batch > 1) {
        /* automatic B, spaced: the block's last ticket, due (B-1)*S after its stamp, at most
         * E/2 in (short windows of tests: W/20 < 100 ms) */
        int64_t cap = 1 + expiry * rl->sp_den / (2 * rl->sp_num);
        if (batch > cap)
            batch = cap;
    }
    if (batch < 1)
        batch = 1;
    if (batch > rl->limit)
        batch = rl->limit;
    rl->batch = (int)batch;
    rl->blocks = rl->limit / rl->batch;
    rl->expiry_ms = rl->batch == 1 ? 0 : expiry;
    /* a block set by hand: E leaves its last ticket, due (B-1)*S after the stamp, as much again */
    if (rl->batch > 1 && rl->expiry_ms < 2 * span(rl, rl->batch))
        rl->expiry_ms = 2 * span(rl, rl->batch);
    rl->hint = -1;
    rl->clock = store_clock_new(opts->pool, opts->database, opts->clock_skew_ms);
    rl->database = strdup(opts->database);
    rl->collection = strdup(opts->collection ? opts->collection : "ratelimits");
    rl->name = dup_or_null(name);
    if (!rl->clock || !rl->database || !rl->collection || !rl->name) {
        errbuf_set(err, errlen, "rate limiter %s: out of memory", name);
        goto fail;
    }

    /* bucket = sha256("<base_url>|<secret>"): the secret itself never reaches the database */
    size_t n = strlen(opts->base_url) + strlen(opts->secret) + 2;
    char *material = malloc(n);
    if (!material) {
        errbuf_set(err, errlen, "rate limiter %s: out of memory", name);
        goto fail;
    }
    snprintf(material, n, "%s|%s", opts->base_url, opts->secret);
    int hrc = hash_sha256_hex(material, n - 1, rl->bucket);
    memset(material, 0, n);
    free(material);
    if (hrc != 0) {
        errbuf_set(err, errlen, "rate limiter %s: SHA-256 failed (libcrypto)", name);
        goto fail;
    }

    /* fail early when MongoDB does not answer or refuses us, and take the first sample of its
     * clock */
    mongoc_client_t *client = mongoc_client_pool_pop(rl->pool);
    bson_error_t error;
    bson_t *ping = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(client, rl->database, ping, NULL, NULL, &error);
    bson_destroy(ping);
    mongoc_client_pool_push(rl->pool, client);
    int64_t now = 0;
    char cerr[512] = "";
    if (!ok)
        snprintf(cerr, sizeof cerr, "%s", error.message);
    else if (store_clock_now(rl->clock, &now, cerr, sizeof cerr) != STORE_OK)
        ok = false;
    if (!ok) {
        errbuf_set(err, errlen,
                   "rate limiter %s: MongoDB check failed for database '%s' "
                   "(check MONGODB_URI): %s",
                   name, rl->database, cerr);
        goto fail;
    }
    return rl;

fail:
    ratelimit_free(rl);
    return NULL;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (!rl)
        return;
    pthread_mutex_destroy(&rl->lock);
    pthread_mutex_destroy(&rl->refill);
    store_clock_free(rl->clock);
    free(rl->database);
    free(rl->collection);
    free(rl->name);
    free(rl);
}

const char *ratelimit_bucket(const ratelimit_t *rl) { return rl->bucket; }

static int64_t get_hint(ratelimit_t *rl)
{
    pthread_mutex_lock(&rl->lock);
    int64_t h = rl->hint;
    pthread_mutex_unlock(&rl->lock);
    return h;
}

static void raise_hint(ratelimit_t *rl, int64_t k)
{
    pthread_mutex_lock(&rl->lock);
    if (k > rl->hint)
        rl->hint = k;
    pthread_mutex_unlock(&rl->lock);
}

static void count_trip(ratelimit_t *rl, uint64_t docs)
{
    pthread_mutex_lock(&rl->lock);
    rl->stats.round_trips++;
    rl->stats.docs_read += docs;
    pthread_mutex_unlock(&rl->lock);
}

static void block_id(const ratelimit_t *rl, int64_t k, char *id, size_t idlen)
{
    snprintf(id, idlen, "%s:%lld", rl->bucket, (long long)k);
}

/* Reads the blocks numbered >= lo, the block `also` (by _id; < 0: none) and the pauses that
 * end after `ended_before` (into a new array *out of *count entries; *pause_until = the latest
 * `until` of the pauses, 0 when none). Returns 0, or -1 with err filled.
 * A pause that has ended cannot delay anything: reading every pause ever written (one per 429,
 * deleted only by the clean-up every `blocks` blocks) made each acquisition read them all
 * during a storm of 429s. */
static int read_state(ratelimit_t *rl, mongoc_collection_t *coll, int64_t lo, int64_t also,
                      int64_t ended_before, rl_ticket_t **out, size_t *count,
                      int64_t *pause_until, char *err, size_t errlen)
{
    /* pauses: one document per penalize() ({_id: "<bucket>:pause:<until>", until}), and the
     * single upserted {_id: "<bucket>:pause"} of older versions; both carry `until` */
    char also_id[HASH_HEX_SIZE + 24];
    block_id(rl, also, also_id, sizeof also_id);
    bson_t *filter = also >= 0 && also < lo
                         ? BCON_NEW("bucket", BCON_UTF8(rl->bucket), "$or", "[", "{", "k", "{",
                                    "$gte", BCON_INT64(lo), "}", "}", "{", "_id",
                                    BCON_UTF8(also_id), "}", "{", "until", "{", "$gt",
                                    BCON_INT64(ended_before), "}", "}", "]")
                         : BCON_NEW("bucket", BCON_UTF8(rl->bucket), "$or", "[", "{", "k", "{",
                                    "$gte", BCON_INT64(lo), "}", "}", "{", "until", "{",
                                    "$gt", BCON_INT64(ended_before), "}", "}", "]");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
    const bson_t *doc;
    rl_ticket_t *arr = NULL;
    size_t n = 0, cap = 0;
    uint64_t docs = 0;
    int rc = -1;
    *pause_until = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        docs++;
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "until")) {
            int64_t until = bson_iter_as_int64(&it);
            if (until > *pause_until)
                *pause_until = until;
            continue;
        }
        rl_ticket_t tk = {-1, 0};
        if (bson_iter_init_find(&it, doc, "k"))
            tk.k = bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "t"))
            tk.t = bson_iter_as_int64(&it);
        if (tk.k < 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            rl_ticket_t *grown = realloc(arr, ncap * sizeof *arr);
            if (!grown) {
                errbuf_set(err, errlen, "rate limiter %s: out of memory", rl->name);
                goto out;
            }
            arr = grown;
            cap = ncap;
        }
        arr[n++] = tk;
    }
    bson_error_t error;
    if (mongoc_cursor_error(cur, &error)) {
        errbuf_set(err, errlen, "rate limiter %s: reading %s.%s failed: %s", rl->name, rl->database,
                   rl->collection, error.message);
        goto out;
    }
    rc = 0;
out:
    count_trip(rl, docs);
    mongoc_cursor_destroy(cur);
    bson_destroy(filter);
    if (rc == 0) {
        *out = arr;
        *count = n;
    } else {
        free(arr);
    }
    return rc;
}

/* Point read of block k by _id: 1 and *t when found, 0 when absent, -1 with err filled. */
static int read_block(ratelimit_t *rl, mongoc_collection_t *coll, int64_t k, int64_t *t,
                      char *err, size_t errlen)
{
    char id[HASH_HEX_SIZE + 24];
    block_id(rl, k, id, sizeof id);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *opts = BCON_NEW("limit", BCON_INT64(1));
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int rc = 0;
    uint64_t docs = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        docs++;
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "t")) {
            *t = bson_iter_as_int64(&it);
            rc = 1;
        }
    }
    bson_error_t error;
    if (mongoc_cursor_error(cur, &error)) {
        errbuf_set(err, errlen, "rate limiter %s: reading %s.%s failed: %s", rl->name, rl->database,
                   rl->collection, error.message);
        rc = -1;
    }
    count_trip(rl, docs);
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    return rc;
}

/* Deletes blocks older than newest - 2M and pauses that ended a window ago (best effort: a
 * failure only leaves more documents). */
static void collect_garbage(ratelimit_t *rl, mongoc_collection_t *coll, int64_t newest,
                            int64_t now)
{
    int64_t below = newest - 2 * (int64_t)rl->blocks;
    if (below <= 0)
        return;
    bson_t *filter = BCON_NEW("bucket", BCON_UTF8(rl->bucket), "$or", "[", "{", "k", "{", "$lt",
                              BCON_INT64(below), "}", "}", "{", "until", "{", "$lt",
                              BCON_INT64(now - rl->window_ms), "}", "}", "]");
    bson_error_t error;
    if (!mongoc_collection_delete_many(coll, filter, NULL, NULL, &error))
        log_msg(LOG_DEBUG, "ratelimit_gc_failed", "limiter=%s error_code=%u", rl->name,
                error.code);
    count_trip(rl, 0);
    bson_destroy(filter);
}

/* MongoDB's time (see store_clock_now()); -1 with err filled when it cannot be read. */
static int server_now(ratelimit_t *rl, int64_t *now, char *err, size_t errlen)
{
    char cerr[512] = "";
    if (store_clock_now(rl->clock, now, cerr, sizeof cerr) == STORE_OK)
        return 0;
    errbuf_set(err, errlen, "rate limiter %s: %s", rl->name, cerr);
    return -1;
}

/* Without MongoDB: 1 = a ticket of this process's block was taken, 0 = the budget is known to
 * be spent (*wait_ms set), 2 = ask MongoDB, -1 = the clock could not be read (err filled). */
static int take_local(ratelimit_t *rl, int64_t *wait_ms, char *err, size_t errlen)
{
    int rc = 2;
    pthread_mutex_lock(&rl->lock);
    if (rl->pool_left > 0) {
        int64_t now = 0;
        if (server_now(rl, &now, err, errlen) != 0) {
            rc = -1;
        } else {
            /* ticket i of the block: not before stamp + i*S, nor floor(S) after the process's
             * previous grant */
            int64_t due = rl->pool_t + span(rl, rl->pool_next);
            /* floor(S) here: below 1 ms (N > W per ms) whole-ms stamps could not keep up */
            int64_t after_last = rl->last_grant + (rl->sp_num > 0 ? rl->sp_num / rl->sp_den : 0);
            if (after_last > due)
                due = after_last;
            if (now > rl->pool_expires || due > rl->pool_expires) {
                rl->stats.expired += (uint64_t)rl->pool_left; /* too old to be used: dropped */
                rl->pool_left = 0;
            } else if (now >= due) {
                rl->pool_left--;
                rl->pool_next++;
                rl->last_grant = now;
                rl->stats.grants++;
                rc = 1;
            } else {
                *wait_ms = due - now;
                rc = 0;
            }
        }
    }
    if (rc == 2) {
        int64_t mono = clock_mono_ms();
        if (mono < rl->spent_until) {
            *wait_ms = rl->spent_until - mono;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&rl->lock);
    return rc;
}

static bool stop_requested(volatile sig_atomic_t *stop) { return stop && *stop; }

/* One store round for a new block (the caller holds rl->refill): 1 = inserted (its first ticket
 * is the caller's, the others go to the pool), 0 = spent (*wait_ms), -1 = error, RL_STOPPED =
 * `*stop` (may be NULL) was seen before a grant (nothing granted; the only block this call may
 * have written is one kept as a used slot after a slow acquisition, see below).
 * A lost race (E11000: another process took the block) or a stale hint means another read and
 * insert, up to RL_INSERT_TRIES times, each round trip bounded only by the store's socket
 * timeout: the stop is checked before each read and before each insert, so a stop waits for
 * the round trip in flight only. */
static int acquire_block(ratelimit_t *rl, mongoc_collection_t *coll, volatile sig_atomic_t *stop,
                         int64_t *wait_ms, char *err, size_t errlen)
{
    rl_ticket_t *tickets = NULL;
    int rc = -1;
    const int64_t spacing = rl->window_ms + rl->margin_ms + rl->expiry_ms;
    *wait_ms = 1;

    int lost = 0;        /* inserts that lost the race (E11000) */
    int64_t lost_k = -1; /* the block number of the latest one */
    for (int tries = 0; tries < RL_INSERT_TRIES; tries++) {
        if (stop_requested(stop)) {
            rc = RL_STOPPED;
            goto out;
        }
        int64_t read_start = clock_mono_ms();
        int64_t hint = get_hint(rl);
        int64_t lo = hint < 0 ? 0 : hint;
        /* the predecessor of hint + 1 (the next block when nobody else inserted one), read in
         * the same query */
        int64_t guess_pred = hint < 0 ? -1 : hint + 1 - rl->blocks;
        size_t n = 0;
        int64_t pause_until = 0, before = 0;
        free(tickets);
        tickets = NULL;
        /* MongoDB's clock, sampled (no round trip); a second of slack for its estimate */
        if (server_now(rl, &before, err, errlen) != 0 ||
            read_state(rl, coll, lo, guess_pred, before - 1000, &tickets, &n, &pause_until, err,
                       errlen) != 0)
            goto out;

        int64_t max_k = -1, newest_t = 0;
        for (size_t i = 0; i < n; i++) {
            if (tickets[i].k > max_k)
                max_k = tickets[i].k;
            if (tickets[i].t > newest_t)
                newest_t = tickets[i].t;
        }
        if (hint >= 0 && max_k < hint) {
            /* the newest block we saw is gone (the collection was dropped or wiped): forget
             * the hint and read everything again */
            pthread_mutex_lock(&rl->lock);
            rl->hint = -1;
            pthread_mutex_unlock(&rl->lock);
            continue;
        }
        int64_t next = max_k + 1;
        int64_t pred = next - rl->blocks;
        int64_t free_at = 0; /* MongoDB ms from which block `next` may be taken */
        if (pred >= 0) {
            int found = 0;
            int64_t pred_t = 0;
            for (size_t i = 0; i < n; i++) {
                if (tickets[i].k == pred) {
                    pred_t = tickets[i].t;
                    found = 1;
                    break;
                }
            }
            if (!found && pred >= lo) {
                /* read `k >= lo` would have returned it */
            } else if (!found && pred != guess_pred) {
                found = read_block(rl, coll, pred, &pred_t, err, errlen);
                if (found < 0)
                    goto out;
            }
            if (found) {
                free_at = pred_t + spacing;
            } else {
                /* The predecessor vanished (deleted by hand, a partial wipe, another N, a read
                 * that missed it): its stamp is unknown, so assume the worst — no older than the
                 * newest block seen. Granting at once would break "N per window". */
                free_at = newest_t + spacing;
                log_msg(LOG_WARN, "ratelimit_missing_ticket", "limiter=%s ticket=%lld",
                        rl->name, (long long)pred);
            }
        }
        /* spacing: the next block not before the newest one's stamp + B*S (B = 1: S after the
         * latest grant of any process), also after a pause */
        if (max_k >= 0 && newest_t + span(rl, rl->batch) > free_at)
            free_at = newest_t + span(rl, rl->batch);
        if (pause_until > free_at)
            free_at = pause_until;
        int64_t now = 0;
        if (server_now(rl, &now, err, errlen) != 0)
            goto out;
        if (now < free_at) {
            raise_hint(rl, max_k);
            *wait_ms = free_at - now;
            pthread_mutex_lock(&rl->lock);
            int64_t until = clock_mono_ms() + *wait_ms;
            if (until > rl->spent_until)
                rl->spent_until = until;
            pthread_mutex_unlock(&rl->lock);
            rc = 0;
            goto out;
        }

        if (stop_requested(stop)) { /* the read may have taken long: do not take a slot now */
            rc = RL_STOPPED;
            goto out;
        }
        char id[HASH_HEX_SIZE + 24];
        block_id(rl, next, id, sizeof id);
        bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "bucket", BCON_UTF8(rl->bucket), "k",
                               BCON_INT64(next), "t", BCON_INT64(now));
        if (rl->batch > 1)
            BSON_APPEND_INT32(doc, "n", rl->batch);
        bson_error_t error;
        bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &error);
        count_trip(rl, 0);
        bson_destroy(doc);
        if (!ok) {
            if (error.code == RL_DUP_KEY) {
                raise_hint(rl, next); /* someone else took `next`: read again */
                lost++;
                lost_k = next;
                continue;
            }
            errbuf_set(err, errlen, "rate limiter %s: writing %s.%s failed: %s", rl->name,
                       rl->database, rl->collection, error.message);
            goto out;
        }
        raise_hint(rl, next);
        if (next % rl->blocks == 0)
            collect_garbage(rl, coll, next, now);
        int64_t took = clock_mono_ms() - read_start;
        if (took > rl->window_ms / 2) {
            /* Our view may have been stale enough to race the clean-up: the block stays as a
             * used slot (costs capacity, never safety), but no request is made on it. */
            log_msg(LOG_WARN, "ratelimit_slow_acquire", "limiter=%s took_ms=%lld", rl->name,
                    (long long)took);
            continue;
        }
        pthread_mutex_lock(&rl->lock);
        rl->stats.blocks++;
        rl->stats.grants++;
        if (rl->batch > 1) {
            rl->pool_left = rl->batch - 1;
            rl->pool_expires = now + rl->expiry_ms;
            rl->pool_t = now;
            rl->pool_next = 1;
            rl->last_grant = now;
        } else if (span(rl, 1) > 0) {
            /* no grant anywhere before now + S: this process's threads wait here, not in a
             * read of the store each */
            int64_t until = clock_mono_ms() + span(rl, 1);
            if (until > rl->spent_until)
                rl->spent_until = until;
        }
        pthread_mutex_unlock(&rl->lock);
        rc = 1;
        goto out;
    }
    /* lost every race this time (or kept finding stale views): not an error, the caller waits
     * a moment and tries again. Named in the log, since it repeats for as long as the store
     * holds a document with a block's _id that the reads above do not return; at most one line
     * per RL_RACES_LOG_MS (with the rounds left out) and a RL_RACES_LOST_WAIT_MS pause, so
     * that case neither floods the log nor spins on the store. */
    int64_t mono = clock_mono_ms();
    if (rl->races_logged_mono == 0 || mono - rl->races_logged_mono >= RL_RACES_LOG_MS) {
        log_msg(LOG_WARN, "ratelimit_races_lost",
                "limiter=%s tries=%d lost_inserts=%d block=%lld rounds_not_logged=%lld",
                rl->name, RL_INSERT_TRIES, lost, (long long)lost_k,
                (long long)rl->races_unlogged);
        rl->races_logged_mono = mono;
        rl->races_unlogged = 0;
    } else {
        rl->races_unlogged++;
    }
    *wait_ms = RL_RACES_LOST_WAIT_MS;
    rc = 0;

out:
    free(tickets);
    return rc;
}

/* ratelimit_try_acquire() honouring `stop` (may be NULL) during a refill: RL_STOPPED when it
 * was set before a block was inserted. */
static int try_acquire(ratelimit_t *rl, volatile sig_atomic_t *stop, int64_t *wait_ms, char *err,
                       size_t errlen)
{
    *wait_ms = 1;
    int rc = take_local(rl, wait_ms, err, errlen);
    if (rc != 2)
        return rc;
    pthread_mutex_lock(&rl->refill);
    /* another thread may have refilled (or found the budget spent) while we waited */
    rc = take_local(rl, wait_ms, err, errlen);
    if (rc == 2) {
        mongoc_client_t *client = mongoc_client_pool_pop(rl->pool);
        mongoc_collection_t *coll =
            mongoc_client_get_collection(client, rl->database, rl->collection);
        rc = acquire_block(rl, coll, stop, wait_ms, err, errlen);
        mongoc_collection_destroy(coll);
        mongoc_client_pool_push(rl->pool, client);
    }
    pthread_mutex_unlock(&rl->refill);
    return rc;
}

int ratelimit_try_acquire(ratelimit_t *rl, int64_t *wait_ms, char *err, size_t errlen)
{
    return try_acquire(rl, NULL, wait_ms, err, errlen);
}

int ratelimit_acquire(ratelimit_t *rl, volatile sig_atomic_t *stop, ratelimit_wait_fn wait_hook,
                      void *hook_ctx, char *err, size_t errlen)
{
    for (;;) {
        if (stop && *stop)
            return 1;
        int64_t wait = 0;
        int r = try_acquire(rl, stop, &wait, err, errlen);
        if (r < 0)
            return -1;
        if (r == 1)
            return 0;
        if (r == RL_STOPPED)
            return 1;
        log_msg(LOG_DEBUG, "ratelimit_wait", "limiter=%s wait_ms=%lld", rl->name,
                (long long)wait);
        int64_t deadline = clock_mono_ms() + wait;
        for (;;) {
            if (stop && *stop)
                return 1;
            int64_t remaining = deadline - clock_mono_ms();
            if (remaining <= 0)
                break;
            if (wait_hook) {
                if (wait_hook(hook_ctx, remaining) != 0)
                    return 1;
            } else {
                int64_t slice = remaining < RL_SLICE_MS ? remaining : RL_SLICE_MS;
                struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
    }
}

int ratelimit_penalize(ratelimit_t *rl, int64_t ms, char *err, size_t errlen)
{
    if (ms <= 0)
        return 0;
    int64_t now = 0;
    if (server_now(rl, &now, err, errlen) != 0)
        return -1;
    int64_t until = now + ms;
    /* One document per pause, named after its end: inserts never overwrite each other, and
     * readers take the latest end, so of two concurrent 429s the longer pause always holds
     * (an upsert with $max is a read then a write on FerretDB: the shorter could win). */
    char id[HASH_HEX_SIZE + 40];
    snprintf(id, sizeof id, "%s:pause:%lld", rl->bucket, (long long)until);
    mongoc_client_t *client = mongoc_client_pool_pop(rl->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, rl->database, rl->collection);
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "bucket", BCON_UTF8(rl->bucket), "until",
                           BCON_INT64(until));
    bson_error_t error;
    int rc = 0;
    if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &error) &&
        error.code != RL_DUP_KEY) { /* a duplicate: the same pause is already there */
        errbuf_set(err, errlen, "rate limiter %s: writing the pause failed: %s", rl->name,
                   error.message);
        rc = -1;
    }
    if (rc == 0) {
        /* this process stops at once: its block's tickets are dropped and its threads wait */
        pthread_mutex_lock(&rl->lock);
        rl->stats.round_trips++;
        rl->stats.expired += (uint64_t)rl->pool_left;
        rl->pool_left = 0;
        int64_t mono_until = clock_mono_ms() + ms;
        if (mono_until > rl->spent_until)
            rl->spent_until = mono_until;
        pthread_mutex_unlock(&rl->lock);
        log_msg(LOG_INFO, "ratelimit_penalized", "limiter=%s pause_ms=%lld", rl->name,
                (long long)ms);
    }
    bson_destroy(doc);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(rl->pool, client);
    return rc;
}

int ratelimit_usage(ratelimit_t *rl, int *used, int *limit, char *err, size_t errlen)
{
    int64_t now = 0;
    if (server_now(rl, &now, err, errlen) != 0)
        return -1;
    int64_t since = now - rl->window_ms;
    mongoc_client_t *client = mongoc_client_pool_pop(rl->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, rl->database, rl->collection);
    bson_t *filter = BCON_NEW("bucket", BCON_UTF8(rl->bucket), "t", "{", "$gt",
                              BCON_INT64(since), "}");
    bson_t *opts = BCON_NEW("projection", "{", "_id", BCON_INT32(1), "n", BCON_INT32(1), "}");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int64_t count = 0;
    uint64_t docs = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        docs++;
        bson_iter_t it;
        int64_t n = 1; /* a block of one: no `n` (and every document of earlier versions) */
        if (bson_iter_init_find(&it, doc, "n") && bson_iter_as_int64(&it) > 1)
            n = bson_iter_as_int64(&it);
        count += n;
    }
    count_trip(rl, docs);
    bson_error_t error;
    int rc = 0;
    if (mongoc_cursor_error(cur, &error)) {
        errbuf_set(err, errlen, "rate limiter %s: reading %s.%s failed: %s", rl->name, rl->database,
                   rl->collection, error.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(opts);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(rl->pool, client);
    if (rc == 0) {
        *used = count > INT32_MAX ? INT32_MAX : (int)count;
        *limit = rl->limit;
    }
    return rc;
}

void ratelimit_stats(ratelimit_t *rl, ratelimit_stats_t *out)
{
    pthread_mutex_lock(&rl->lock);
    *out = rl->stats;
    pthread_mutex_unlock(&rl->lock);
}

void ratelimit_layout(const ratelimit_t *rl, int *batch, int *blocks_per_window,
                      int64_t *expiry_ms)
{
    if (batch)
        *batch = rl->batch;
    if (blocks_per_window)
        *blocks_per_window = rl->blocks;
    if (expiry_ms)
        *expiry_ms = rl->expiry_ms;
}

int64_t ratelimit_spacing(const ratelimit_t *rl) { return span(rl, 1); }
