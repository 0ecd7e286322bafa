/* ratelimit_: a request budget shared by every process that uses one SaaS account (SPEC §4
 * "Rate limits"): never more than N requests in any window of W ms (W = 60000 in production),
 * whatever the number of producers, workers and hosts, kept in MongoDB.
 *
 * Storage (collection `ratelimits` by default, in the caller's database). The bucket name is the
 * lowercase hex SHA-256 of "<base_url>|<secret>", so the secret never reaches the database.
 *   tickets  {_id:"<bucket>:<k>", bucket, k:<int64>, t:<ms since epoch>}  one per acquisition
 *   pauses   {_id:"<bucket>:pause:<until>", bucket, until:<ms since epoch>} one per penalize()
 *
 * Why tickets and not "N slot documents + conditional findAndModify": FerretDB v1 (our test and
 * sandbox database) runs findAndModify as a query followed by an unconditional update by _id,
 * without a transaction (FerretDB internal/handler/msg_findandmodify.go, TODO #2168), so two
 * processes can take the same slot (measured: 8 processes racing a findAndModify on
 * {_id, t:0} -> $set t, 40 rounds: every round had several winners, up to all 8). The one
 * atomic primitive it has is a unique _id on insert (SQLite UNIQUE constraint -> E11000).
 * Rule: ticket k may be inserted only when k < N or ticket k-N has t <= now - W - margin.
 * Two inserts of the same k cannot both succeed (E11000), and any N+1 tickets contain two whose
 * numbers differ by a multiple of N, chained through tickets spaced >= W + margin apart: no
 * window of W holds more than N. Acquire = read the newest tickets, insert the next one; on a
 * duplicate someone else got it: read again. Old tickets (< newest - 2N) are deleted now and then.
 * An acquisition whose read-to-insert took longer than W/2 is not used (its ticket stays, as a
 * used slot): it cannot have been based on a view stale enough to race the clean-up.
 *
 * Clock: tickets and pauses are stamped, and compared, with MongoDB's clock (store_clock_now():
 * the server's `hello.localTime` sampled now and then and carried forward on this host's
 * monotonic clock), so hosts whose wall clocks disagree still share one window (issue 8: one
 * host 1.5 s fast let 46 of 30 through). Remaining assumption: each process's estimate of the
 * server's time is off by at most half the round trip of its sample (the fastest of up to 3)
 * plus ppm drift; the margin (default 500 ms) absorbs two such errors and the time
 * between acquire and the request reaching the API. The server's clock must not jump (one
 * FerretDB/mongod, or replica-set members in NTP sync). All processes of one account must use
 * the same N and W.
 *
 * Pauses (penalize) are documents {_id:"<bucket>:pause:<until>", bucket, until}, one per call,
 * inserted (never updated): readers take the latest `until`, so two concurrent 429s keep the
 * longer pause even on FerretDB, whose upserts are a read then a write. Ended pauses are deleted
 * with old tickets.
 *
 * MongoDB unreachable: functions return an error (never a local fallback); the caller treats it
 * as retriable.
 *
 * Ownership and threads: ratelimit_new() copies the strings it is given and borrows the pool
 * (which must outlive the limiter). A ratelimit_t may be shared by the threads of one process
 * (every call pops its own client from the thread-safe pool).
 */
#ifndef PIPELINE_RATELIMIT_H
#define PIPELINE_RATELIMIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

typedef struct ratelimit ratelimit_t;

typedef struct {
    mongoc_client_pool_t *pool; /* borrowed, required */
    const char *database;       /* required, e.g. "pipeline" */
    const char *collection;     /* NULL: "ratelimits" */
    const char *base_url;       /* required: with the secret it names the bucket */
    const char *secret;         /* required; only its hash is stored */
    int limit;                  /* N requests per window, >= 1 */
    int64_t window_ms;          /* W; <= 0: 60000 */
    int64_t margin_ms;          /* < 0: 500 (0 is allowed, for tests) */
    const char *name;           /* for logs ("ploomes", "milvus"); NULL: "api" */
    int64_t clock_skew_ms;      /* tests only (0 in production): pretend this host's wall clock
                                   is off by this much; the limiter must not be affected */
} ratelimit_options_t;

/* Creates a limiter. Validates the options, computes the bucket, and checks that MongoDB
 * answers (a ping). Returns NULL and fills err on failure. */
ratelimit_t *ratelimit_new(const ratelimit_options_t *opts, char *err, size_t errlen);

/* Frees the limiter (not the pool). NULL is accepted. */
void ratelimit_free(ratelimit_t *rl);

/* The bucket name (64 hex characters). */
const char *ratelimit_bucket(const ratelimit_t *rl);

/* One non-blocking attempt.
 * Returns 1 when a request may be sent now (a ticket was taken), 0 when the budget is spent —
 * *wait_ms then says how long until the next ticket can be free (>= 1) — or -1 on a MongoDB
 * error (err filled; the caller treats it as retriable). */
int ratelimit_try_acquire(ratelimit_t *rl, int64_t *wait_ms, char *err, size_t errlen);

/* Called while ratelimit_acquire() waits. It should return within `remaining_ms` (it may return
 * earlier; it is then called again). Non-zero return abandons the wait. */
typedef int (*ratelimit_wait_fn)(void *ctx, int64_t remaining_ms);

/* Blocks until a ticket is taken. While waiting it calls `wait_hook` (or, when NULL, sleeps in
 * slices of at most 100 ms), and checks `*stop` (may be NULL) between slices.
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
 * *limit = N. Returns 0, or -1 on a MongoDB error. */
int ratelimit_usage(ratelimit_t *rl, int *used, int *limit, char *err, size_t errlen);

#endif
