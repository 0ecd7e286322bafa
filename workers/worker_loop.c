/* worker_loop: worker_main() — start-up, the poll loop, finishing records (offsets, dead
 * letters), metrics, shutdown (worker.h "Runtime"). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/app.h"
#include "../common/clock.h"
#include "../common/errbuf.h"
#include "../common/log.h"
#include "worker.h"
#include "worker_rt.h"

#define WORKER_STORE_PING_TRIES 5
#define WORKER_TOPICS_TIMEOUT_MS 30000
#define WORKER_WARM_TIMEOUT_MS 5000
#define WORKER_CLOSE_TIMEOUT_MS 30000
#define WORKER_POLL_MS 200
#define WORKER_LAG_EVERY_MS 5000
#define WORKER_UNASSIGNED_GRACE_MS 30000

/* ---- local queue ------------------------------------------------------------------------- */

int worker_queue_push(worker_queue_t *q, kafka_record_t *rec)
{
    if (q->head + q->n == q->cap) {
        if (q->head > 0) {
            memmove(q->items, q->items + q->head, q->n * sizeof *q->items);
            q->head = 0;
        } else {
            size_t ncap = q->cap ? q->cap * 2 : 16;
            kafka_record_t **ni = realloc(q->items, ncap * sizeof *ni);
            if (ni == NULL)
                return -1;
            q->items = ni;
            q->cap = ncap;
        }
    }
    q->items[q->head + q->n++] = rec;
    return 0;
}

kafka_record_t *worker_queue_pop(worker_queue_t *q)
{
    if (q->n == 0)
        return NULL;
    kafka_record_t *r = q->items[q->head++];
    if (--q->n == 0)
        q->head = 0;
    return r;
}

void worker_queue_free(worker_queue_t *q)
{
    free(q->items);
    memset(q, 0, sizeof *q);
}

/* ---- metrics ----------------------------------------------------------------------------- */

static bool register_metrics(worker_rt_t *rt)
{
    static const char *const l_rec[] = {"worker", "outcome", "reason", NULL};
    static const char *const l_dead[] = {"worker", "error_class", NULL};
    static const char *const l_rcv[] = {"worker", "result", NULL};
    static const char *const l_lag[] = {"worker", "topic", "partition", NULL};
    static const char *const l_w[] = {"worker", NULL};
    rt->m_records = metrics_counter_new(rt->metrics, "worker_records_total",
                                        "Records finished, by outcome and reason", l_rec);
    rt->m_dead = metrics_counter_new(rt->metrics, "worker_dead_letters_total",
                                     "Dead letters confirmed by the broker, by error class",
                                     l_dead);
    rt->m_recoveries = metrics_counter_new(rt->metrics, "worker_claim_recoveries_total",
                                           "Expired claims taken over, by search result", l_rcv);
    rt->m_lag = metrics_gauge_new(rt->metrics, "worker_consumer_lag",
                                  "Records behind the high watermark, per partition", l_lag);
    rt->m_in_flight = metrics_gauge_new(rt->metrics, "worker_in_flight",
                                        "Records being handled", l_w);
    return rt->m_records && rt->m_dead && rt->m_recoveries && rt->m_lag && rt->m_in_flight;
}

void worker_rt_count_recovery(worker_rt_t *rt, const char *result)
{
    metrics_counter_add(rt->m_recoveries, (const char *[]){rt->h->name, result}, 1);
}

/* worker_consumer_lag per assigned partition (kafka_consumer_lag: cached watermarks and
 * positions, no broker round trip). */
static void refresh_lag(worker_rt_t *rt)
{
    kafka_lag_t lags[64];
    size_t n = 0;
    if (kafka_consumer_lag(rt->consumer, lags, sizeof lags / sizeof lags[0], &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (lags[i].lag < 0)
            continue;
        char pn[16];
        snprintf(pn, sizeof pn, "%d", (int)lags[i].partition);
        metrics_gauge_set(rt->m_lag, (const char *[]){rt->h->name, lags[i].topic, pn},
                          (double)lags[i].lag);
    }
}

static bool ready_cb(void *opaque, char *why, size_t whylen)
{
    worker_rt_t *rt = opaque;
    if (atomic_load(&rt->ready))
        return true;
    errbuf_set(why, whylen, "Kafka or MongoDB not reachable");
    return false;
}

static void on_store_state(void *opaque, bool up)
{
    worker_rt_t *rt = opaque;
    atomic_store(&rt->ready, up);
}

/* ---- waiting with the consumer alive ----------------------------------------------------- */

static void serve_dlq(worker_rt_t *rt, int timeout_ms)
{
    if (rt->dlq_producer != NULL)
        kafka_producer_poll(rt->dlq_producer, timeout_ms);
}

/* Pauses the assignment (once) and polls the consumer for up to timeout_ms: rebalances are
 * served and the member is not evicted. A record handed out anyway (the wrapper holds back
 * those of paused partitions) is queued, in order, and handled next. */
static void keep_alive(worker_rt_t *rt, int timeout_ms)
{
    if (!rt->paused_all && kafka_consumer_pause_all(rt->consumer) == 0)
        rt->paused_all = true;
    kafka_record_t *rec = kafka_consumer_poll(rt->consumer, timeout_ms);
    if (rec != NULL) {
        log_msg(LOG_DEBUG, "record_queued", "topic=%s partition=%d offset=%" PRId64, rec->topic,
                (int)rec->partition, rec->offset);
        if (worker_queue_push(&rt->queue, rec) != 0)
            kafka_consumer_release(rt->consumer, rec);
    }
}

int worker_rt_wait(void *opaque, int64_t remaining_ms)
{
    worker_rt_t *rt = opaque;
    metrics_heartbeat(rt->metrics);
    if (app_stop_requested() || rt->revoked_current)
        return 1;
    int slice = remaining_ms > 100 ? 100 : (int)(remaining_ms > 0 ? remaining_ms : 0);
    if (rt->consumer == NULL) {
        app_sleep_ms(slice);
        return app_stop_requested() ? 1 : 0;
    }
    serve_dlq(rt, 0);
    keep_alive(rt, slice);
    return app_stop_requested() || rt->revoked_current ? 1 : 0;
}

bool worker_store_wait(worker_ctx_t *ctx)
{
    worker_rt_t *rt = ctx->rt;
    if (rt == NULL || app_stop_requested())
        return false;
    char err[512], q[600];
    int64_t t0 = clock_mono_ms();
    atomic_store(&rt->ready, false);
    if (!atomic_exchange(&rt->store_down, true))
        log_msg(LOG_WARN, "store_unavailable", "worker=%s note=\"waiting for MongoDB\"",
                rt->h->name);
    for (;;) {
        int64_t end = clock_mono_ms() + 1000;
        while (clock_mono_ms() < end) {
            int64_t left = end - clock_mono_ms();
            int stop = ctx->thread != NULL ? worker_thread_wait(ctx->thread, left)
                                           : worker_rt_wait(rt, left);
            if (stop != 0)
                return false; /* stop requested, or the record's partition was revoked */
        }
        int rc = store_ping(rt->store, err, sizeof err);
        if (rc == STORE_OK)
            break;
        log_msg(LOG_DEBUG, "store_ping_failed", "error=%s", log_quote(q, sizeof q, err));
    }
    atomic_store(&rt->ready, true);
    if (atomic_exchange(&rt->store_down, false))
        log_msg(LOG_INFO, "store_recovered", "worker=%s down_ms=%" PRId64, rt->h->name,
                clock_mono_ms() - t0);
    return true;
}

void worker_rt_store_rejected(worker_rt_t *rt, const char *op, const char *err)
{
    char q[600];
    log_msg(LOG_ERROR, "store_rejected", "worker=%s op=%s error=%s", rt->h->name, op,
            log_quote(q, sizeof q, err));
    int expected = -1;
    atomic_compare_exchange_strong(&rt->exit_code, &expected, CONFIG_EXIT_FATAL);
}

/* ---- release back-off -------------------------------------------------------------------- */

static worker_backoff_t *backoff_find(worker_rt_t *rt, const char *topic, int32_t partition,
                                      bool create)
{
    for (size_t i = 0; i < rt->backoff_count; i++)
        if (rt->backoffs[i].partition == partition && strcmp(rt->backoffs[i].topic, topic) == 0)
            return &rt->backoffs[i];
    if (!create)
        return NULL;
    if (rt->backoff_count == rt->backoff_cap) {
        size_t ncap = rt->backoff_cap ? rt->backoff_cap * 2 : 8;
        worker_backoff_t *nb = realloc(rt->backoffs, ncap * sizeof *nb);
        if (nb == NULL)
            return NULL;
        rt->backoffs = nb;
        rt->backoff_cap = ncap;
    }
    worker_backoff_t *b = &rt->backoffs[rt->backoff_count++];
    memset(b, 0, sizeof *b);
    snprintf(b->topic, sizeof b->topic, "%s", topic);
    b->partition = partition;
    b->delay_ms = WORKER_BACKOFF_MIN_MS;
    return b;
}

/* Keeps rec for a back-off: its partition paused, handled again later. */
static void backoff_hold(worker_rt_t *rt, kafka_record_t *rec)
{
    worker_backoff_t *b = backoff_find(rt, rec->topic, rec->partition, true);
    if (b == NULL || b->rec != NULL || kafka_consumer_pause(rt->consumer, rec->topic,
                                                            rec->partition) != 0) {
        kafka_consumer_release(rt->consumer, rec); /* re-fetched after the seek */
        return;
    }
    b->rec = rec;
    b->paused = true;
    b->until_ms = clock_mono_ms() + b->delay_ms;
    b->delay_ms = b->delay_ms * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS : b->delay_ms * 2;
}

/* A terminal outcome on (topic, partition): back-off over, partition resumed. */
static void backoff_reset(worker_rt_t *rt, const char *topic, int32_t partition)
{
    worker_backoff_t *b = backoff_find(rt, topic, partition, false);
    if (b == NULL)
        return;
    b->delay_ms = WORKER_BACKOFF_MIN_MS;
    if (b->paused && b->rec == NULL) {
        b->paused = false;
        kafka_consumer_resume(rt->consumer, topic, partition);
    }
}

/* The first waiting record whose back-off ended (its partition stays paused until it
 * reaches a terminal outcome), or NULL. */
static kafka_record_t *backoff_due(worker_rt_t *rt)
{
    int64_t now = clock_mono_ms();
    for (size_t i = 0; i < rt->backoff_count; i++) {
        worker_backoff_t *b = &rt->backoffs[i];
        if (b->rec != NULL && now >= b->until_ms) {
            kafka_record_t *r = b->rec;
            b->rec = NULL;
            return r;
        }
    }
    return NULL;
}

/* Pauses again the partitions of the back-offs (after the wait hook's resume_all). */
static void backoff_repause(worker_rt_t *rt)
{
    for (size_t i = 0; i < rt->backoff_count; i++)
        if (rt->backoffs[i].paused)
            kafka_consumer_pause(rt->consumer, rt->backoffs[i].topic, rt->backoffs[i].partition);
}

/* Gives back the waiting records (of `parts`, or all when NULL) and forgets their pauses. */
static void backoff_release(worker_rt_t *rt, const rd_kafka_topic_partition_list_t *parts);

static size_t backoff_waiting(const worker_rt_t *rt)
{
    size_t n = 0;
    for (size_t i = 0; i < rt->backoff_count; i++)
        n += rt->backoffs[i].rec != NULL;
    return n;
}

/* ---- rebalance hooks --------------------------------------------------------------------- */

static bool in_list(const rd_kafka_topic_partition_list_t *parts, const char *topic,
                    int32_t partition)
{
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == partition && strcmp(parts->elems[i].topic, topic) == 0)
            return true;
    return false;
}

static void backoff_release(worker_rt_t *rt, const rd_kafka_topic_partition_list_t *parts)
{
    for (size_t i = 0; i < rt->backoff_count; i++) {
        worker_backoff_t *b = &rt->backoffs[i];
        if (parts != NULL && !in_list(parts, b->topic, b->partition))
            continue;
        if (b->rec != NULL)
            kafka_consumer_release(rt->consumer, b->rec);
        b->rec = NULL;
        b->paused = false;
        b->delay_ms = WORKER_BACKOFF_MIN_MS;
    }
}

static void on_revoke(void *opaque, kafka_consumer_t *c,
                      const rd_kafka_topic_partition_list_t *parts, bool lost)
{
    worker_rt_t *rt = opaque;
    if (rt->threaded)
        worker_pool_revoke(rt, parts);
    if (rt->current != NULL && in_list(parts, rt->current->topic, rt->current->partition))
        rt->revoked_current = true;
    /* queued records of revoked partitions go back (their new owner gets them) */
    size_t n = rt->queue.n;
    for (size_t i = 0; i < n; i++) {
        kafka_record_t *r = worker_queue_pop(&rt->queue);
        if (in_list(parts, r->topic, r->partition))
            kafka_consumer_release(c, r);
        else if (worker_queue_push(&rt->queue, r) != 0)
            kafka_consumer_release(c, r);
    }
    backoff_release(rt, parts);
    rt->paused_all = false; /* pauses are cleared by the rebalance */
    log_msg(LOG_INFO, "partitions_revoked", "worker=%s count=%d lost=%s", rt->h->name, parts->cnt,
            lost ? "true" : "false");
}

static void on_assign(void *opaque, kafka_consumer_t *c,
                      const rd_kafka_topic_partition_list_t *parts)
{
    (void)c;
    worker_rt_t *rt = opaque;
    if (rt->first_assign_ms == 0 && parts->cnt > 0)
        rt->first_assign_ms = clock_mono_ms();
    rt->paused_all = false;
    log_msg(LOG_INFO, "partitions_assigned", "worker=%s count=%d", rt->h->name, parts->cnt);
}

/* ---- finishing a record ------------------------------------------------------------------ */

enum { DLQ_WAITING = 0, DLQ_DONE = 1, DLQ_ABANDONED = 2 };

typedef struct {
    atomic_int state; /* DLQ_*: whoever moves it second frees the struct when abandoned */
    bool ok;
    char error[256];
} dlq_wait_t;

/* Runs on the thread serving kafka_producer_poll(): the poll thread, a handling thread waiting
 * for its own letter, or the final close. */
static void dlq_done(void *opaque, bool ok, const char *error)
{
    dlq_wait_t *w = opaque;
    w->ok = ok;
    snprintf(w->error, sizeof w->error, "%s", error ? error : "");
    if (atomic_exchange(&w->state, DLQ_DONE) == DLQ_ABANDONED)
        free(w); /* the waiter gave up (stop) */
}

/* Sends the dead letter and waits for the broker's answer, the consumer kept alive. Returns
 * true when it was acknowledged. */
bool worker_rt_dead_letter(worker_rt_t *rt, const kafka_record_t *rec, const worker_result_t *res,
                           bool poll_thread)
{
    kafka_dlq_error_t e = {.class_name = NULL,
                           .exception_class = res->error_class[0] ? res->error_class : "Unknown",
                           .exception_message = res->message,
                           .attempts = res->attempts,
                           .http_status = (int)res->http_status,
                           .response = res->response,
                           .response_len = res->response ? strlen(res->response) : 0,
                           .first_failure_ms = res->first_failure_ms,
                           .last_failure_ms = res->last_failure_ms};
    dlq_wait_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return false;
    atomic_init(&w->state, DLQ_WAITING);
    char err[512], q[600];
    if (kafka_dlq_send(rt->dlq, rec, &e, dlq_done, w, err, sizeof err) != 0) {
        free(w);
        log_msg(LOG_ERROR, "dlq_send_failed", "worker=%s topic=%s partition=%d offset=%" PRId64
                " error=%s", rt->h->name, rec->topic, (int)rec->partition, rec->offset,
                log_quote(q, sizeof q, err));
        return false;
    }
    /* the delivery report ends it (message.timeout.ms bounds it); a letter already sent is
     * waited for, so the offset moves with it — after a stop, for WORKER_CLOSE_TIMEOUT_MS at
     * most (then the record is released: at worst a second letter after the restart) */
    int64_t stop_deadline = 0;
    while (atomic_load(&w->state) != DLQ_DONE) {
        if (app_stop_requested()) {
            if (stop_deadline == 0)
                stop_deadline = clock_mono_ms() + WORKER_CLOSE_TIMEOUT_MS;
            else if (clock_mono_ms() > stop_deadline)
                break;
        }
        metrics_heartbeat(rt->metrics);
        serve_dlq(rt, 100);
        if (poll_thread && atomic_load(&w->state) != DLQ_DONE)
            keep_alive(rt, 0);
    }
    if (atomic_load(&w->state) != DLQ_DONE &&
        atomic_exchange(&w->state, DLQ_ABANDONED) != DLQ_DONE) {
        /* freed by its callback (at the latest when the producer closes) */
        log_msg(LOG_ERROR, "dlq_delivery_failed", "worker=%s topic=%s partition=%d offset=%"
                PRId64 " error=\"no delivery report before the shutdown deadline\"",
                rt->h->name, rec->topic, (int)rec->partition, rec->offset);
        return false;
    }
    if (!w->ok)
        log_msg(LOG_ERROR, "dlq_delivery_failed", "worker=%s topic=%s partition=%d offset=%"
                PRId64 " error=%s", rt->h->name, rec->topic, (int)rec->partition, rec->offset,
                log_quote(q, sizeof q, w->error));
    bool ok = w->ok;
    free(w);
    return ok;
}

void worker_rt_log_done(worker_rt_t *rt, const kafka_record_t *rec, const worker_result_t *res,
                     const char *outcome, int64_t elapsed_ms)
{
    char qk[200], qr[120], qc[120];
    log_level_t level = LOG_INFO;
    if (res->outcome == WORKER_SKIPPED)
        level = LOG_DEBUG;
    else if (res->outcome == WORKER_DEAD || res->outcome == WORKER_AUTH)
        level = LOG_WARN;
    log_msg(level, "record_done",
            "worker=%s topic=%s partition=%d offset=%" PRId64 " key=%s outcome=%s reason=%s "
            "error_class=%s http_status=%ld attempts=%d elapsed_ms=%" PRId64 " target_id=%s",
            rt->h->name, rec->topic, (int)rec->partition, rec->offset,
            log_quote(qk, sizeof qk, rec->key ? rec->key : ""), outcome,
            log_quote(qr, sizeof qr, res->reason), log_quote(qc, sizeof qc, res->error_class),
            res->http_status, res->attempts, elapsed_ms, res->target_id);
}

void worker_rt_count(worker_rt_t *rt, const char *outcome, const char *reason)
{
    metrics_counter_add(rt->m_records, (const char *[]){rt->h->name, outcome, reason}, 1);
}

/* True for a dead letter whose last answer was a Ploomes 403 after every attempt. */
static bool forbidden_exhausted(const worker_result_t *res)
{
    return res->outcome == WORKER_DEAD && res->http_status == 403 &&
           strcmp(res->error_class, "HttpStatus403") == 0;
}

void worker_rt_prefinish(worker_rt_t *rt, worker_result_t *res)
{
    if (res->reason[0] == '\0')
        snprintf(res->reason, sizeof res->reason, "%s",
                 res->outcome == WORKER_DEAD ? res->error_class : "none");
    if (rt->exit_code >= 0 && res->outcome != WORKER_RELEASE) {
        /* the store refused a request meanwhile: nothing terminal may be trusted */
        worker_result_set(res, WORKER_RELEASE, "store_rejected");
    }
    if (forbidden_exhausted(res)) {
        if (++rt->forbidden_streak >= WORKER_FORBIDDEN_STREAK) {
            log_msg(LOG_ERROR, "forbidden_streak",
                    "worker=%s records=%d error=\"%d records in a row failed on Ploomes 403 "
                    "after every attempt: a permission problem; exiting 3\"",
                    rt->h->name, rt->forbidden_streak, rt->forbidden_streak);
            worker_result_set(res, WORKER_AUTH, "forbidden_streak");
        }
    } else if (res->outcome != WORKER_RELEASE) {
        rt->forbidden_streak = 0;
    }
}

static void finish(worker_rt_t *rt, kafka_record_t *rec, worker_result_t *res, int64_t elapsed)
{
    worker_rt_prefinish(rt, res);
    const char *topic_copy = rec->topic;
    char topic[KAFKA_TOPIC_NAME_MAX];
    snprintf(topic, sizeof topic, "%s", topic_copy);
    int32_t partition = rec->partition;
    switch (res->outcome) {
    case WORKER_DELIVERED:
    case WORKER_SKIPPED:
    case WORKER_DEDUP_HIT:
        worker_rt_log_done(rt, rec, res, worker_outcome_name(res->outcome), elapsed);
        worker_rt_count(rt, worker_outcome_name(res->outcome), res->reason);
        kafka_consumer_done(rt->consumer, rec);
        backoff_reset(rt, topic, partition);
        break;
    case WORKER_DEAD:
        if (worker_rt_dead_letter(rt, rec, res, true)) {
            worker_rt_log_done(rt, rec, res, "dead_lettered", elapsed);
            worker_rt_count(rt, "dead_lettered", res->error_class);
            metrics_counter_add(rt->m_dead, (const char *[]){rt->h->name, res->error_class}, 1);
            kafka_consumer_done(rt->consumer, rec);
            backoff_reset(rt, topic, partition);
        } else {
            worker_result_set(res, WORKER_RELEASE, "dlq_failed");
            worker_rt_log_done(rt, rec, res, "released", elapsed);
            worker_rt_count(rt, "released", "dlq_failed");
            if (app_stop_requested())
                kafka_consumer_release(rt->consumer, rec);
            else
                backoff_hold(rt, rec);
        }
        break;
    case WORKER_RELEASE:
        worker_rt_log_done(rt, rec, res, "released", elapsed);
        worker_rt_count(rt, "released", res->reason);
        if (app_stop_requested() || rt->revoked_current || rt->exit_code >= 0)
            kafka_consumer_release(rt->consumer, rec);
        else
            backoff_hold(rt, rec);
        break;
    case WORKER_AUTH:
        worker_rt_log_done(rt, rec, res, "auth", elapsed);
        worker_rt_count(rt, "released", res->reason);
        kafka_consumer_release(rt->consumer, rec);
        if (strcmp(res->reason, "forbidden_streak") != 0) {
            char q[600];
            log_msg(LOG_ERROR, "credentials_rejected",
                    "worker=%s status=%ld error=%s note=\"check the key/token; exiting 3\"",
                    rt->h->name, res->http_status, log_quote(q, sizeof q, res->message));
        }
        rt->exit_code = CONFIG_EXIT_CREDENTIALS;
        break;
    }
}

/* Undoes the wait hook's pause of the whole assignment (back-offs stay paused). */
static void resume_after_wait(worker_rt_t *rt)
{
    if (!rt->paused_all)
        return;
    kafka_consumer_resume_all(rt->consumer);
    rt->paused_all = false;
    backoff_repause(rt);
}

void worker_rt_handle(worker_rt_t *rt, void *state, kafka_record_t *rec, api_t *ploomes,
                      api_t *milvus, worker_thread_t *thread, worker_result_t *res)
{
    worker_ctx_t ctx = {.cfg = rt->cfg,
                        .store = rt->store,
                        .ploomes = ploomes,
                        .milvus = milvus,
                        .metrics = rt->metrics,
                        .worker_name = rt->h->name,
                        .instance_id = rt->instance_id,
                        .dry_run = rt->cfg->dry_run,
                        .rec = rec,
                        .replayed = kafka_record_header(rec, "x-dlq.replayed-from", NULL) != NULL,
                        .fetched_at_ms = worker_fetched_at_ms(rec),
                        .rt = rt,
                        .thread = thread};
    worker_owner_new(rt->instance_id, ctx.owner, sizeof ctx.owner);
    memset(res, 0, sizeof *res);
    cJSON *value = NULL;
    size_t max = (size_t)rt->cfg->kafka_max_message_bytes;
    if (worker_parse_value(rec, max > 0 ? max : (size_t)8 << 20, &value, res) ==
        WORKER_DELIVERED) {
        rt->h->handle(&ctx, state, value, res);
        cJSON_Delete(value);
    }
}

static void handle_record(worker_rt_t *rt, void *state, kafka_record_t *rec)
{
    int64_t t0 = clock_mono_ms();
    metrics_gauge_set(rt->m_in_flight, (const char *[]){rt->h->name}, 1);
    rt->current = rec;
    rt->revoked_current = false;
    worker_result_t res;
    worker_rt_handle(rt, state, rec, rt->ploomes, rt->milvus, NULL, &res);
    if (rt->revoked_current && res.outcome == WORKER_RELEASE)
        snprintf(res.reason, sizeof res.reason, "revoked");
    resume_after_wait(rt);
    finish(rt, rec, &res, clock_mono_ms() - t0);
    resume_after_wait(rt); /* paused again while waiting for the dead letter */
    rt->current = NULL;
    rt->revoked_current = false;
    rt->last_done_ms = clock_mono_ms();
    worker_result_clear(&res);
    metrics_gauge_set(rt->m_in_flight, (const char *[]){rt->h->name}, 0);
}

/* ---- start-up ---------------------------------------------------------------------------- */

static int open_store(worker_rt_t *rt)
{
    char err[512], q[600];
    rt->store = store_open(rt->cfg->mongodb_uri, err, sizeof err);
    if (rt->store == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        return CONFIG_EXIT_USAGE;
    }
    int rc = STORE_DOWN;
    for (int i = 0; i < WORKER_STORE_PING_TRIES && !app_stop_requested(); i++) {
        rc = store_ping(rt->store, err, sizeof err);
        if (rc == STORE_OK || rc == STORE_REJECTED)
            break;
        log_msg(LOG_WARN, "mongodb_unreachable", "attempt=%d error=%s", i + 1,
                log_quote(q, sizeof q, err));
        if (i + 1 < WORKER_STORE_PING_TRIES)
            app_sleep_ms(1000);
    }
    if (rc == STORE_OK && !rt->cfg->dry_run)
        rc = store_ensure_indexes(rt->store, err, sizeof err);
    if (rc != STORE_OK) {
        if (app_stop_requested())
            return CONFIG_EXIT_OK;
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        return CONFIG_EXIT_FATAL;
    }
    return -1;
}

static api_t *open_api(worker_rt_t *rt, api_kind_t kind, ratelimit_t **rl_out, int *exit_code)
{
    const config_t *cfg = rt->cfg;
    bool ploomes = kind == API_PLOOMES;
    const char *base = ploomes ? cfg->ploomes_base_url : cfg->milvus_base_url;
    const char *secret = ploomes ? cfg->ploomes_user_key : cfg->milvus_token;
    char err[512], q[600];
    ratelimit_options_t ro = {.pool = store_pool(rt->store),
                              .database = store_db_name(rt->store),
                              .base_url = base,
                              .secret = secret,
                              .limit = ploomes ? cfg->ploomes_rate_per_min
                                               : cfg->milvus_rate_per_min,
                              .window_ms = 60000,
                              .margin_ms = -1,
                              .name = api_kind_name(kind)};
    *rl_out = ratelimit_new(&ro, err, sizeof err);
    if (*rl_out == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        *exit_code = CONFIG_EXIT_FATAL;
        return NULL;
    }
    api_t *api = worker_rt_api_new(rt, kind, *rl_out, worker_rt_wait, on_store_state, rt);
    if (api == NULL)
        *exit_code = CONFIG_EXIT_USAGE;
    return api;
}

api_t *worker_rt_api_new(worker_rt_t *rt, api_kind_t kind, ratelimit_t *rl, api_wait_fn hook,
                         void (*on_state)(void *, bool), void *hook_ctx)
{
    const config_t *cfg = rt->cfg;
    bool ploomes = kind == API_PLOOMES;
    const char *base = ploomes ? cfg->ploomes_base_url : cfg->milvus_base_url;
    const char *secret = ploomes ? cfg->ploomes_user_key : cfg->milvus_token;
    char err[512], q[600];
    api_options_t ao = {.kind = kind,
                        .base_url = base,
                        .secret = secret,
                        .connect_timeout_ms = 10000,
                        .total_timeout_ms = (long)cfg->http_timeout_ms,
                        .max_attempts = cfg->max_attempts,
                        .retry_base_ms = cfg->retry_base_ms,
                        .retry_max_ms = cfg->retry_max_ms,
                        .ratelimit = rl,
                        .wait_hook = hook,
                        .wait_ctx = hook_ctx,
                        .on_store_state = on_state,
                        .forbidden_pause_ms = cfg->ploomes_403_pause_ms,
                        .metrics = rt->metrics};
    api_t *api = api_new(&ao, err, sizeof err);
    if (api == NULL)
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
    return api;
}

/* Kafka: topics, DLQ writer, consumer. Returns -1 (go on) or an exit code. */
static int open_kafka(worker_rt_t *rt, const kafka_settings_t *ks)
{
    const config_t *cfg = rt->cfg;
    char err[512], q[600];
    kafka_topic_id_t ids[2] = {KAFKA_TOPIC_DLQ, KAFKA_TOPIC_DLQ};
    size_t nids = 1;
    for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
        if (strcmp(kafka_topic_base((kafka_topic_id_t)i), rt->h->topic) == 0)
            ids[nids++] = (kafka_topic_id_t)i;
    if (nids != 2) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"unknown source topic %s\"", rt->h->topic);
        return CONFIG_EXIT_FATAL;
    }
    kafka_topic_name(rt->topic, sizeof rt->topic, cfg->topic_prefix, ids[1]);
    if (kafka_topics_ensure(ks, cfg->topic_prefix, cfg->topic_partitions, ids, nids,
                            WORKER_TOPICS_TIMEOUT_MS, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        return CONFIG_EXIT_FATAL;
    }
    rt->dlq_producer = kafka_producer_new_dlq(ks, rt->h->name, err, sizeof err);
    if (rt->dlq_producer == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        return CONFIG_EXIT_FATAL;
    }
    /* The first dead letter is then not held ~1 s by librdkafka's metadata timer; a failure
     * costs only that delay. */
    if (kafka_producer_warm_ids(rt->dlq_producer, cfg->topic_prefix, ids, 1,
                                WORKER_WARM_TIMEOUT_MS, app_stop_requested, err,
                                sizeof err) != KAFKA_OK &&
        !app_stop_requested())
        log_msg(LOG_WARN, "kafka_warm_failed", "error=%s", log_quote(q, sizeof q, err));
    const char *secrets[] = {cfg->ploomes_user_key, cfg->milvus_token, cfg->kafka_sasl_password};
    kafka_dlq_opts_t dopts = {.producer = rt->dlq_producer,
                              .topic_prefix = cfg->topic_prefix,
                              .connector_name = rt->h->name,
                              .task_id = rt->instance_id,
                              .secrets = secrets,
                              .secret_count = 3};
    rt->dlq = kafka_dlq_new(&dopts, err, sizeof err);
    if (rt->dlq == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        return CONFIG_EXIT_FATAL;
    }
    snprintf(rt->group_id, sizeof rt->group_id, "%s%s%s", cfg->topic_prefix ? cfg->topic_prefix : "",
             rt->h->name, cfg->dry_run ? ".dry-run" : "");
    const char *topics[] = {rt->topic};
    kafka_consumer_opts_t co = {.settings = ks,
                                .group_id = rt->group_id,
                                .client_id = rt->h->name,
                                .topics = topics,
                                .topic_count = 1,
                                /* single thread: nothing to wait for; threads: bounded */
                                .revoke_wait_ms = cfg->max_in_flight > 1 ? WORKER_CLOSE_TIMEOUT_MS
                                                                         : -1,
                                .on_revoke = on_revoke,
                                .on_assign = on_assign,
                                .opaque = rt};
    rt->consumer = kafka_consumer_new(&co, err, sizeof err);
    if (rt->consumer == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        return CONFIG_EXIT_FATAL;
    }
    return -1;
}

/* --idle-exit: caught up (nothing in flight, nothing for `limit` ms since the first
 * assignment), or never assigned for limit + 30 s (more members than partitions). */
static bool idle_done(worker_rt_t *rt, int64_t limit, int64_t started)
{
    if (limit < 0 || rt->queue.n > 0 || backoff_waiting(rt) > 0 ||
        kafka_consumer_in_flight(rt->consumer) > 0)
        return false;
    int64_t now = clock_mono_ms();
    if (rt->first_assign_ms == 0)
        return now - started >= limit + WORKER_UNASSIGNED_GRACE_MS;
    return now - rt->first_assign_ms >= limit && now - rt->last_done_ms >= limit &&
           kafka_consumer_idle_ms(rt->consumer) >= limit;
}

bool worker_rt_chores(worker_rt_t *rt, int64_t *last_ping)
{
    char err[512];
    metrics_heartbeat(rt->metrics);
    serve_dlq(rt, 0);
    int64_t now = clock_mono_ms();
    if (now - rt->last_lag_ms >= WORKER_LAG_EVERY_MS) {
        rt->last_lag_ms = now;
        refresh_lag(rt);
    }
    if (now - *last_ping >= WORKER_LAG_EVERY_MS) {
        *last_ping = now;
        atomic_store(&rt->ready, store_ping(rt->store, err, sizeof err) == STORE_OK);
    }
    if (kafka_consumer_fatal(rt->consumer, err, sizeof err) ||
        kafka_producer_fatal(rt->dlq_producer, err, sizeof err)) {
        char q[600];
        log_msg(LOG_ERROR, "kafka_fatal", "error=%s", log_quote(q, sizeof q, err));
        rt->exit_code = CONFIG_EXIT_FATAL;
        return false;
    }
    return true;
}

static void loop(worker_rt_t *rt, void *state, int64_t idle_limit)
{
    int64_t started = clock_mono_ms(), last_ping = started;
    while (!app_stop_requested() && rt->exit_code < 0) {
        if (!worker_rt_chores(rt, &last_ping))
            break;
        kafka_record_t *rec = backoff_due(rt);
        if (rec == NULL)
            rec = worker_queue_pop(&rt->queue);
        if (rec == NULL)
            rec = kafka_consumer_poll(rt->consumer, backoff_waiting(rt) > 0 ? 50 : WORKER_POLL_MS);
        if (rec != NULL) {
            handle_record(rt, state, rec);
            continue;
        }
        if (idle_done(rt, idle_limit, started)) {
            log_msg(LOG_INFO, "idle_exit", "worker=%s idle_ms=%" PRId64, rt->h->name,
                    kafka_consumer_idle_ms(rt->consumer));
            break;
        }
    }
}

/* One line per limiter at the end (issue 13: what the shared budget cost this process in
 * MongoDB round trips and documents read; each pooled connection keeps a read buffer as large
 * as the largest reply it got). */
static void log_limiter_stats(const char *worker, const char *name, ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    ratelimit_stats_t st;
    ratelimit_stats(rl, &st);
    log_msg(LOG_INFO, "ratelimit_stats",
            "worker=%s limiter=%s round_trips=%" PRIu64 " docs_read=%" PRIu64 " grants=%" PRIu64
            " blocks=%" PRIu64 " expired=%" PRIu64,
            worker, name, st.round_trips, st.docs_read, st.grants, st.blocks, st.expired);
}

int worker_main(const worker_handler_t *h, int argc, char **argv)
{
    app_spec_t spec = {.name = h->name,
                       .summary = h->summary,
                       .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO | CONFIG_NEED_WORKER |
                                h->config_needs,
                       .flags = APP_ALLOW_IDLE_EXIT};
    app_t app;
    if (!app_init(&app, &spec, argc, argv))
        return app.exit_code;
    const config_t *cfg = &app.cfg;
    worker_rt_t rt;
    memset(&rt, 0, sizeof rt);
    atomic_init(&rt.ready, false);
    rt.h = h;
    rt.cfg = cfg;
    rt.exit_code = -1;
    kafka_dlq_instance_id(rt.instance_id, sizeof rt.instance_id);
    int exit_code = CONFIG_EXIT_FATAL;
    char err[512], q[600];
    metrics_server_t *server = NULL;
    void *state = NULL;
    bool inited = false;

    rt.metrics = metrics_new();
    if (rt.metrics == NULL || !register_metrics(&rt)) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"out of memory\"");
        goto out;
    }
    metrics_server_config_t mcfg = {.port = cfg->metrics_port, .ready = ready_cb, .ready_ctx = &rt};
    if (cfg->metrics_port != METRICS_PORT_OFF &&
        metrics_server_start(rt.metrics, &mcfg, &server, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        goto out;
    }
    int rc = open_store(&rt);
    if (rt.store != NULL)
        store_set_metrics(rt.store, rt.metrics); /* store_round_trips_total{op} */
    if (rc >= 0) {
        exit_code = rc;
        goto out;
    }
    if ((h->config_needs & CONFIG_NEED_PLOOMES) &&
        (rt.ploomes = open_api(&rt, API_PLOOMES, &rt.rl_ploomes, &exit_code)) == NULL)
        goto out;
    if ((h->config_needs & CONFIG_NEED_MILVUS) &&
        (rt.milvus = open_api(&rt, API_MILVUS, &rt.rl_milvus, &exit_code)) == NULL)
        goto out;
    kafka_settings_t ks = kafka_settings_from_config(cfg);
    if (cfg->max_in_flight > 1 && worker_pool_init(&rt) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"cannot create the handling pool\"");
        goto out;
    }
    rc = open_kafka(&rt, &ks);
    if (rc >= 0) {
        exit_code = rc;
        goto out;
    }
    if (h->init != NULL) {
        worker_ctx_t ictx = {.cfg = cfg,
                             .store = rt.store,
                             .ploomes = rt.ploomes,
                             .milvus = rt.milvus,
                             .metrics = rt.metrics,
                             .worker_name = h->name,
                             .instance_id = rt.instance_id,
                             .dry_run = cfg->dry_run,
                             .fetched_at_ms = -1,
                             .rt = &rt};
        worker_owner_new(rt.instance_id, ictx.owner, sizeof ictx.owner);
        if (h->init(&ictx, &state, err, sizeof err) != 0) {
            log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
            goto out;
        }
        inited = true;
    }
    if (cfg->max_in_flight > 1 && worker_pool_start(&rt, state) != 0)
        goto out;
    atomic_store(&rt.ready, true);
    log_msg(LOG_INFO, "worker_started",
            "worker=%s instance=%s group=%s topic=%s dry_run=%s max_in_flight=%d idle_exit_ms=%"
            PRId64, h->name, rt.instance_id, log_quote(q, sizeof q, rt.group_id), rt.topic,
            cfg->dry_run ? "true" : "false", cfg->max_in_flight, app.cli.idle_exit_ms);
    if (rt.threaded)
        worker_pool_loop(&rt, app.cli.idle_exit_ms);
    else
        loop(&rt, state, app.cli.idle_exit_ms);
    exit_code = rt.exit_code >= 0 ? rt.exit_code : CONFIG_EXIT_OK;

out:
    atomic_store(&rt.ready, false);
    if (rt.threaded)
        worker_pool_stop(&rt); /* the threads finish or give back their records */
    backoff_release(&rt, NULL);
    for (kafka_record_t *r; (r = worker_queue_pop(&rt.queue)) != NULL;)
        kafka_consumer_release(rt.consumer, r);
    worker_queue_free(&rt.queue);
    if (rt.dlq_producer != NULL && kafka_producer_flush(rt.dlq_producer, WORKER_CLOSE_TIMEOUT_MS,
                                                        err, sizeof err) != 0)
        log_msg(LOG_ERROR, "dlq_flush_failed", "error=%s", log_quote(q, sizeof q, err));
    if (rt.consumer != NULL && kafka_consumer_close(rt.consumer, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "kafka_close_failed", "error=%s", log_quote(q, sizeof q, err));
        if (exit_code == CONFIG_EXIT_OK)
            exit_code = CONFIG_EXIT_FATAL;
    }
    worker_pool_destroy(&rt); /* after the close: its final revoke visits the pool */
    if (inited && h->fini != NULL)
        h->fini(state);
    kafka_dlq_free(rt.dlq);
    if (rt.dlq_producer != NULL &&
        kafka_producer_close(rt.dlq_producer, WORKER_CLOSE_TIMEOUT_MS, err, sizeof err) != 0)
        log_msg(LOG_ERROR, "kafka_close_failed", "error=%s", log_quote(q, sizeof q, err));
    api_free(rt.ploomes);
    api_free(rt.milvus);
    log_limiter_stats(h->name, "ploomes", rt.rl_ploomes);
    log_limiter_stats(h->name, "milvus", rt.rl_milvus);
    ratelimit_free(rt.rl_ploomes);
    ratelimit_free(rt.rl_milvus);
    store_close(rt.store);
    metrics_server_stop(server);
    metrics_free(rt.metrics);
    free(rt.backoffs);
    log_msg(LOG_INFO, "worker_stopped", "worker=%s exit_code=%d", h->name, exit_code);
    app_free(&app);
    return exit_code;
}
