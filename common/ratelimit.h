/* ratelimit_: a request budget shared by every process that uses one SaaS account (SPEC §4
 * "Rate limits"): never more than N requests in any window of W ms (W = 60000 in production),
 * whatever the number of producers, workers and hosts, kept in MongoDB.
 *
 * Storage (collection `ratelimits` by default, in the caller's database). The bucket name is the
 * lowercase hex SHA-256 of "<base_url>|<secret>", so the secret never reaches the database.
 *   blocks   {_id:"<bucket>:<k>", bucket, k:<int64>, t:<ms since epoch>[, n:<B>]}  one per B grants
 *   pauses   {_id:"<bucket>:pause:<until>", bucket, until:<ms since epoch>} one per penalize()
 *
 * Why numbered documents and not "N slot documents + conditional findAndModify": FerretDB v1 (our
 * test and sandbox database) runs findAndModify as a query followed by an unconditional update by
 * _id, without a transaction (FerretDB internal/handler/msg_findandmodify.go, TODO #2168), so two
 * processes can take the same slot (measured: 8 processes racing a findAndModify on
 * {_id, t:0} -> $set t, 40 rounds: every round had several winners, up to all 8). The one
 * atomic primitive it has is a unique _id on insert (SQLite UNIQUE constraint -> E11000).
 *
 * Blocks (issue 13). One stored document ("block" k) grants B requests. B = max(1, N * 100 ms / W)
 * (at most 1 + E/(2S) when spaced, see "Spacing"; option `batch` overrides it): 1 for every
 * production-size limit (120 or 600 a minute: one document per request, the format and
 * behaviour of earlier versions), 166 at 100,000 a minute.
 * M = floor(N / B) blocks per window (M * B <= N). E = the longest a block's tickets may be used
 * after its stamp: 0 when B = 1 (the one ticket is used at once, as before), else W/20 (option
 * `batch_expiry_ms`); tickets still unused then are dropped, never carried over.
 * Rule: block k may be inserted only when k < M or block k-M has t <= now - W - margin - E.
 * The process that inserted a block hands its B tickets to its own threads (under a mutex), each
 * at a moment u with t <= u <= t + E on the same clock that stamped t.
 * Proof that no window of W holds more than N grants: a grant used inside [s, s + W) comes from a
 * block stamped in (s - E, s + W), an interval of length W + E. Two inserts of the same k cannot
 * both succeed (E11000), and any M+1 distinct blocks contain two, k < k' = k + jM (j >= 1), whose
 * numbers differ by a multiple of M; k' was inserted only after k'-M was seen stamped
 * W + margin + E earlier, k'-M only after k'-2M, ... down to k, so
 * t(k') - t(k) >= j(W + margin + E) > W + E (the margin absorbs two clocks' estimation errors
 * and the time from the check to the request reaching the API): they cannot both lie in that
 * interval. So at most M blocks, of at most B grants each, serve any window: M * B <= N.
 * A predecessor that vanished (deleted by hand, a partial wipe) is taken as stamped at the
 * newest stamp seen: never earlier than the truth.
 * All processes of one account must use the same N, W and B (B follows from N and W unless set).
 *
 * Spacing (GCRA-like pacing). The window rule alone lets N requests go at once: after a pause
 * (penalize, a 429's Retry-After) every thread of every process got a ticket the moment it
 * ended, and an API that wants its calls spaced (Milvus may answer 429 to calls closer than an
 * interval, reference/apis.md §2.6) answered most of that herd with 429 again, each costing a
 * record an attempt. So, in addition to the window rule (kept: it is the proven bound),
 * consecutive grants of one bucket are at least S = W/N ms apart on MongoDB's clock (option
 * `spacing_ms` overrides it; < 0 turns it off). The per-minute rate is thus also the spacing an
 * operator sets for an API that wants calls spaced: MILVUS_RATE_PER_MIN=60 spaces calls 1 s
 * apart, 3000 spaces them 20 ms apart.
 * B = 1: block k+1 is inserted only when now >= t(newest block read) + S; the newest block is
 * always among those read (k >= hint), so this costs no round trip; the unique _id still decides
 * between two processes that both saw the slot free (the loser reads again and waits S).
 * B > 1: ticket i of a block (i = 0 .. B-1) is used no earlier than its stamp + i*S and no
 * earlier than floor(S) after the process's previous ticket (no burst of a block's overdue
 * tickets); the next block is inserted no earlier than the newest block's stamp + B*S. So that
 * a block's tickets all fall due well before they expire, automatic B is at most 1 + E/(2S)
 * (production: B*S is about 100 ms, E = W/20 = 3 s, no change; only windows under 4 s lower B)
 * and a B set by hand raises E to at least 2*B*S.
 * After a pause ends, grants resume one every S (the pause does not reset the spacing: the first
 * grant comes at the pause's end, the next S later, ...), never N at once. i*S is rounded up to
 * whole ms. Two grants of different processes may appear closer than S by the sum of their
 * clock estimates' errors (a few ms; see "Clock"), and, as the API sees them, by the time the
 * earlier grant's insert took (a grant is stamped before its insert is sent: up to ~350 ms
 * measured on a loaded 2-core host, tests/common/it_ratelimit.c). The window rule's margin
 * absorbs that delay; the spacing does not, so it is a pacing aid, not a bound.
 *
 * Cost (issue 13): an acquisition served from the process's block is a mutex and no round trip.
 * A refill reads only the blocks numbered >= the process's hint (the newest it has seen: usually
 * one or two documents) plus the pauses, the predecessor k-M by _id (folded into the same query
 * when nobody else inserted meanwhile; else one more point read), then inserts: 2-3 round trips
 * whatever N and whatever the number of blocks already taken. Only the first read of a process
 * (no hint yet, or after the collection was wiped: hint block gone) reads every kept block, at
 * most 2M + M (M <= W / 100 ms when blocks are automatic). Old blocks (< newest - 2M) are
 * deleted every M blocks. When the budget is spent, the threads of the process wait on a shared
 * "not before" instant instead of each asking the database (another process's grant or pause
 * never makes the next free slot earlier; after a wipe, the wait is at most the one it saw).
 * An acquisition whose read-to-insert took longer than W/2 is not used (its block stays, as a
 * used slot): it cannot have been based on a view stale enough to race the clean-up.
 *
 * Clock: tickets and pauses are stamped, and compared, with MongoDB's clock (store_clock_now():
 * the server's `hello.localTime` sampled now and then and carried forward on this host's
 * monotonic clock), so hosts whose wall clocks disagree still share one window (issue 8: one
 * host 1.5 s fast let 46 of 30 through). Remaining assumption: each process's estimate of the
 * server's time is off by at most half the round trip of its sample (the fastest of up to 3)
 * plus ppm drift; the margin (default 1 s) absorbs two such errors and the time
 * between acquire and the request reaching the API. The server's clock must not jump (one
 * FerretDB/mongod, or replica-set members in NTP sync). All processes of one account must use
 * the same N and W.
 *
 * Pauses (penalize) are documents {_id:"<bucket>:pause:<until>", bucket, until}, one per call,
 * inserted (never updated): readers take the latest `until`, so two concurrent 429s keep the
 * longer pause even on FerretDB, whose upserts are a read then a write. Ended pauses are deleted
 * with old tickets. A pause drops the unused tickets of the block of the process that wrote it
 * at once; another process stops using its block's tickets (B > 1 only) at its next refill, at
 * most E later.
 *
 * MongoDB unreachable: functions return an error (never a local fallback); the caller treats it
 * as retriable.
 *
 * Ownership and threads: ratelimit_new() copies the strings it is given and borrows the pool
 * (which must outlive the limiter). A ratelimit_t may be shared by the threads of one process
 * (every call pops its own client from the thread-safe pool; one thread at a time refills the
 * process's block, the others take its tickets or wait for the refill).
 */
#ifndef PIPELINE_RATELIMIT_H
#define PIPELINE_RATELIMIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

typedef struct ratelimit ratelimit_t;

/* This header has blocks (B grants per document), ratelimit_stats() and ratelimit_layout(). */
#define RATELIMIT_HAS_BLOCKS 1
/* ... and spaced grants (ratelimit_options_t.spacing_ms, ratelimit_spacing()). */
#define RATELIMIT_HAS_SPACING 1

typedef struct {
    mongoc_client_pool_t *pool; /* borrowed, required */
    const char *database;       /* required, e.g. "pipeline" */
    const char *collection;     /* NULL: "ratelimits" */
    const char *base_url;       /* required: with the secret it names the bucket */
    const char *secret;         /* required; only its hash is stored */
    int limit;                  /* N requests per window, >= 1 */
    int64_t window_ms;          /* W; <= 0: 60000 */
    int64_t margin_ms;          /* < 0: 1000 (0 is allowed, for tests) */
    const char *name;           /* for logs ("ploomes", "milvus"); NULL: "api" */
    int64_t clock_skew_ms;      /* tests only (0 in production): pretend this host's wall clock
                                   is off by this much; the limiter must not be affected */
    int batch;                  /* B, grants per stored block: 0 = automatic (max(1, N*100ms/W));
                                   clamped to N. Every process of the account must agree. */
    int64_t batch_expiry_ms;    /* E when B > 1; <= 0: W/20, and never less than 2*B*S.
                                   Ignored when B = 1 (E = 0). */
    int64_t spacing_ms;         /* S, the least time between two grants: 0 = automatic (W/N);
                                   > 0 this many ms; < 0 none (the window rule alone: tests of
                                   that rule, benchmarks). Every process of the account must
                                   agree. */
} ratelimit_options_t;

/* Creates a limiter. Validates the options, computes the bucket, and checks that MongoDB
 * answers (a ping). Returns NULL and fills err on failure. */
ratelimit_t *ratelimit_new(const ratelimit_options_t *opts, char *err, size_t errlen);

/* Frees the limiter (not the pool). NULL is accepted. */
void ratelimit_free(ratelimit_t *rl);

/* The bucket name (64 hex characters). */
const char *ratelimit_bucket(const ratelimit_t *rl);

/* One non-blocking attempt (it may wait for another thread of this process that is refilling:
 * one store round). Returns 1 when a request may be sent now (a ticket was taken), 0 when the
 * budget is spent — *wait_ms then says how long until the next ticket can be free (>= 1) — or
 * -1 on a MongoDB error (err filled; the caller treats it as retriable).
 * A store round is a read and an insert, read again after each lost insert race (E11000:
 * another process took that block), at most 32 times; when all 32 are lost it returns 0 with
 * *wait_ms = 100 (not an error; logged as ratelimit_races_lost, at most one line per 10 s with
 * the rounds left out), and the next call starts over.
 * It has no stop flag: a caller that must stop promptly uses ratelimit_acquire(). */
int ratelimit_try_acquire(ratelimit_t *rl, int64_t *wait_ms, char *err, size_t errlen);

/* Called while ratelimit_acquire() waits. It should return within `remaining_ms` (it may return
 * earlier; it is then called again). Non-zero return abandons the wait. */
typedef int (*ratelimit_wait_fn)(void *ctx, int64_t remaining_ms);

/* Blocks until a ticket is taken. While waiting it calls `wait_hook` (or, when NULL, sleeps in
 * slices of at most 100 ms), and checks `*stop` (may be NULL) between slices, and also inside a
 * store round (before each read and before each insert of the lost-race retries described at
 * ratelimit_try_acquire()): a stop waits for the read or the insert in flight (each MongoDB call
 * bounded by the store's socketTimeoutMS), never for the remaining retries. A stop seen before
 * the insert ends the call with nothing granted and no new block written (a block inserted
 * earlier in the round and set aside as a slow acquisition stays as a used slot, as it would
 * without a stop). (A thread that waits for
 * another thread's refill waits for that round; it ends as soon if both share the stop flag.)
 * Returns 0 when acquired, 1 when stopped (stop flag set or hook returned non-zero), -1 on a
 * MongoDB error (err filled). */
int ratelimit_acquire(ratelimit_t *rl, volatile sig_atomic_t *stop, ratelimit_wait_fn wait_hook,
                      void *hook_ctx, char *err, size_t errlen);

/* Slows every process of the account down after a 429 (or a Ploomes 403): no ticket is granted
 * before now + ms on MongoDB's clock. Pauses only ever add up to the latest end: a shorter one
 * never cuts a longer one short, also when both are written at once. One insert. Returns 0, or
 * -1 on a MongoDB error. */
int ratelimit_penalize(ratelimit_t *rl, int64_t ms, char *err, size_t errlen);

/* Use of the budget for pipeline-status: *used = tickets taken in the last W ms (all processes),
 * *limit = N. With B > 1 a block counts B tickets from its stamp on (granted or still reserved by
 * its process; unused ones expire after E): an upper bound of the requests made. One read of at
 * most about M + 1 documents. Returns 0, or -1 on a MongoDB error. */
int ratelimit_usage(ratelimit_t *rl, int *used, int *limit, char *err, size_t errlen);

/* Counters of this limiter since ratelimit_new() (for tests and bench/ratelimit_bench_main.c). */
typedef struct {
    uint64_t round_trips;  /* finds, inserts and deletes sent to MongoDB (not the clock's hello) */
    uint64_t docs_read;    /* documents returned by those finds */
    uint64_t grants;       /* try_acquire() calls that returned 1 */
    uint64_t blocks;       /* blocks this process inserted and used */
    uint64_t expired;      /* tickets of its blocks dropped unused (older than E) */
} ratelimit_stats_t;
void ratelimit_stats(ratelimit_t *rl, ratelimit_stats_t *out);

/* S in ms (rounded up; 0 = no spacing): the least time between two grants (see "Spacing"). */
int64_t ratelimit_spacing(const ratelimit_t *rl);

/* The block size B and blocks per window M in force (see "Blocks" above). */
void ratelimit_layout(const ratelimit_t *rl, int *batch, int *blocks_per_window,
                      int64_t *expiry_ms);

#endif
