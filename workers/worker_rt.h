/* worker_rt: internals shared by the runtime's files (worker_loop.c, worker_create.c). Not for
 * handlers: they see only worker.h.
 *
 * Ownership: worker_main() owns the worker_rt_t and everything it points to.
 * Threads: with MAX_IN_FLIGHT = 1 the poll thread only (the metrics server thread reads
 * `ready`, an atomic). With MAX_IN_FLIGHT > 1 (worker_pool.c) the handling threads share the
 * runtime: `exit_code`, `ready`, `store_down`, `last_done_ms` are atomics, the job list and
 * the Ploomes 403 streak are guarded by pool.mu; the consumer is polled, paused and resumed
 * only by the poll thread (kafka_consumer_done/_release are thread-safe).
 */
#ifndef PIPELINE_WORKER_RT_H
#define PIPELINE_WORKER_RT_H

#include <pthread.h>
#include <stdatomic.h>

#include "../common/kafka_consumer.h"
#include "../common/kafka_dlq.h"
#include "worker.h"

/* Records handed out by the wrapper while the hook polled (should not happen: the wrapper
 * holds records of paused partitions back), kept in arrival order. */
typedef struct worker_queue {
    kafka_record_t **items;
    size_t head, n, cap;
} worker_queue_t;

/* Appends rec (owned by the queue until popped). Returns 0, or -1 when out of memory. */
int worker_queue_push(worker_queue_t *q, kafka_record_t *rec);
/* The oldest record, or NULL when empty. */
kafka_record_t *worker_queue_pop(worker_queue_t *q);
void worker_queue_free(worker_queue_t *q); /* the array; records must have been popped */

/* One partition whose record is waiting out a back-off (WORKER_RELEASE while running: claim
 * busy, store refused...). The record is kept here, not given back: its partition stays
 * paused (the wrapper holds the later records back), and the record is handled again when
 * the back-off ends — no seek, order kept. A stop or a revocation gives it back
 * (kafka_consumer_release). */
typedef struct worker_backoff {
    char topic[KAFKA_TOPIC_NAME_MAX];
    int32_t partition;
    kafka_record_t *rec; /* the waiting record (owned), NULL when none */
    int64_t until_ms;    /* monotonic: when rec is handled again */
    int64_t delay_ms;    /* next back-off */
    bool paused;         /* paused by the back-off (resumed after a terminal outcome) */
} worker_backoff_t;

#define WORKER_BACKOFF_MIN_MS 200
#define WORKER_BACKOFF_MAX_MS 5000
#define WORKER_FORBIDDEN_STREAK 5

/* MAX_IN_FLIGHT > 1: one record in the runtime (pending, running, or waiting out a back-off),
 * in arrival order in the pool's list. Owned by the pool. */
typedef struct worker_job {
    kafka_record_t *rec;     /* owned until done/released */
    bool running;            /* a handling thread has it */
    atomic_bool revoked;     /* its partition was revoked: waits end, the record is released */
    int64_t due_ms;          /* monotonic: not handled before (back-off), 0 = now */
    int64_t delay_ms;        /* next back-off */
    struct worker_job *next;
} worker_job_t;

/* One handling thread: its own API clients (api_t is one curl handle). */
typedef struct worker_thread {
    struct worker_rt *rt;
    pthread_t tid;
    bool started;
    api_t *ploomes, *milvus;
    worker_job_t *job;       /* the record being handled (set by the thread under pool.mu) */
} worker_thread_t;

typedef struct worker_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;     /* a job was added or its key's previous job ended; quit */
    pthread_cond_t space;    /* a job left the list */
    worker_job_t *head, *tail;
    size_t count;            /* jobs in the list */
    size_t running;
    bool quit;
    worker_thread_t *threads;
    size_t nthreads;
    void *state;             /* the handler's state (borrowed) */
} worker_pool_t;

typedef struct worker_rt {
    const worker_handler_t *h;
    const config_t *cfg;
    char instance_id[96];
    char group_id[KAFKA_TOPIC_NAME_MAX + 32];
    char topic[KAFKA_TOPIC_NAME_MAX];
    store_t *store;
    ratelimit_t *rl_ploomes, *rl_milvus;
    api_t *ploomes, *milvus;
    kafka_consumer_t *consumer;
    kafka_producer_t *dlq_producer;
    kafka_dlq_t *dlq;
    metrics_t *metrics;
    metrics_family_t *m_records, *m_dead, *m_recoveries, *m_lag, *m_in_flight;
    atomic_bool ready;
    atomic_bool store_down; /* an outage is being waited out (logged once) */
    bool paused_all;       /* the wait hook paused the assignment */
    bool revoked_current;  /* the current record's partition was revoked during the hook */
    const kafka_record_t *current;
    worker_queue_t queue;
    worker_backoff_t *backoffs;
    size_t backoff_count, backoff_cap;
    int forbidden_streak;
    _Atomic int exit_code; /* set when the loop must end (-1 = go on) */
    int64_t first_assign_ms; /* monotonic, 0 = never assigned */
    int64_t last_lag_ms;
    _Atomic int64_t last_done_ms; /* monotonic: when the last handling ended (--idle-exit) */
    worker_pool_t pool;      /* MAX_IN_FLIGHT > 1 */
    bool threaded;
} worker_rt_t;

/* The wait hook given to the API clients (and used while waiting on MongoDB or a DLQ
 * confirmation): pauses the assignment, polls the consumer up to min(remaining, 100) ms,
 * serves DLQ delivery reports and the heartbeat. Non-zero = stop waiting. */
int worker_rt_wait(void *rt, int64_t remaining_ms);

/* worker_claim_recoveries_total{worker,result}: result "found" | "not_found" | "failed". */
void worker_rt_count_recovery(worker_rt_t *rt, const char *result);

/* A STORE_REJECTED answer: the store refuses requests (auth, permissions); logs it and ends
 * the process with exit 1 after the current record (which is released). */
void worker_rt_store_rejected(worker_rt_t *rt, const char *op, const char *err);

/* ---- shared by worker_loop.c and worker_pool.c ---- */

/* Opens one API client on the shared limiter `rl` whose waits call `hook(hook_ctx, ...)` and
 * whose limiter-outage reports go to `on_state(hook_ctx, up)`. NULL with the reason logged. */
api_t *worker_rt_api_new(worker_rt_t *rt, api_kind_t kind, ratelimit_t *rl, api_wait_fn hook,
                         void (*on_state)(void *, bool), void *hook_ctx);

/* Sends the dead letter of rec and waits for the broker's answer. poll_thread: the consumer is
 * kept alive meanwhile (only the poll thread may poll it); otherwise the delivery reports are
 * served by this thread too. True when acknowledged. */
bool worker_rt_dead_letter(worker_rt_t *rt, const kafka_record_t *rec, const worker_result_t *res,
                           bool poll_thread);

/* The record_done log line and worker_records_total. */
void worker_rt_log_done(worker_rt_t *rt, const kafka_record_t *rec, const worker_result_t *res,
                        const char *outcome, int64_t elapsed_ms);
void worker_rt_count(worker_rt_t *rt, const char *outcome, const char *reason);

/* Handles one record with the entity's handler: builds its context (a new owner per handling,
 * the caller's API clients; thread NULL on the poll thread), parses the value (bounded by
 * KAFKA_MAX_MESSAGE_BYTES) and calls handle(). *res is filled (the caller clears it). Shared by
 * the one-at-a-time loop and the in-flight pool so both handle a record the same way. */
void worker_rt_handle(worker_rt_t *rt, void *state, kafka_record_t *rec, api_t *ploomes,
                      api_t *milvus, worker_thread_t *thread, worker_result_t *res);

/* Common first step of finishing: default reason, store_rejected, the 403 streak (guarded by
 * the caller when threads share rt). */
void worker_rt_prefinish(worker_rt_t *rt, worker_result_t *res);

/* worker_pool.c: MAX_IN_FLIGHT > 1. start: the handling threads (0, or -1 with the failure
 * logged); loop: the poll thread's loop until a stop, an exit code or --idle-exit; stop: ends
 * the threads (records in their hands finish or are released) and gives back every record
 * still in the list. */
int worker_pool_init(worker_rt_t *rt);    /* mutex + conditions; sets rt->threaded */
void worker_pool_destroy(worker_rt_t *rt); /* stop (if needed) and free; after the consumer
                                              closed (its final revoke calls the pool) */
int worker_pool_start(worker_rt_t *rt, void *state);
void worker_pool_loop(worker_rt_t *rt, int64_t idle_limit);
void worker_pool_stop(worker_rt_t *rt);
/* on_revoke in threaded mode: running records of `parts` are told to stop (released), waiting
 * ones are given back. */
void worker_pool_revoke(worker_rt_t *rt, const rd_kafka_topic_partition_list_t *parts);

/* The api_ wait hook of a handling thread (worker_thread_t *): sleeps ≤ 100 ms, never polls
 * the consumer; non-zero on a stop, an exit code or a revocation of its record's partition. */
int worker_thread_wait(void *thread, int64_t remaining_ms);

/* the periodic chores of the poll loop (heartbeat, DLQ reports, lag, store ping); false when
 * Kafka failed fatally (exit code set). */
bool worker_rt_chores(worker_rt_t *rt, int64_t *last_ping);

#endif
