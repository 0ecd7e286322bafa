/* worker_rt: internals shared by the runtime's files (worker_loop.c, worker_create.c). Not for
 * handlers: they see only worker.h.
 *
 * Ownership: worker_main() owns the worker_rt_t and everything it points to.
 * Threads: the poll thread only (the metrics server thread reads `ready`, an atomic).
 */
#ifndef PIPELINE_WORKER_RT_H
#define PIPELINE_WORKER_RT_H

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
    bool store_down;       /* an outage is being waited out (logged once) */
    bool paused_all;       /* the wait hook paused the assignment */
    bool revoked_current;  /* the current record's partition was revoked during the hook */
    const kafka_record_t *current;
    worker_queue_t queue;
    worker_backoff_t *backoffs;
    size_t backoff_count, backoff_cap;
    int forbidden_streak;
    int exit_code;         /* set when the loop must end (-1 = go on) */
    int64_t first_assign_ms; /* monotonic, 0 = never assigned */
    int64_t last_lag_ms;
    int64_t last_done_ms;    /* monotonic: when the last handling ended (--idle-exit) */
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

#endif
