/* worker_pool: MAX_IN_FLIGHT > 1 (worker.h "Runtime"). The poll thread polls the consumer and
 * appends every record to one list, in arrival order; MAX_IN_FLIGHT handling threads take the
 * first record whose key is free: a record is runnable only when no earlier record of the list
 * has the same (topic, partition, key) — two records of one key never overlap and run in
 * offset order. The list holds at most MAX_IN_FLIGHT records (pending + running + backing
 * off), so at most that many are handled at once and memory stays bounded; when it is full
 * the poll thread waits for room and, at least every second, pauses the assignment and polls
 * anyway so rebalances are served and the member is never evicted.
 *
 * Offsets: the consumer wrapper stores per partition only the highest CONTIGUOUS finished
 * offset, so a record finishing early never moves the offset past an unfinished one.
 * WORKER_RELEASE while running (claim busy, a refused dead letter) keeps the record in the
 * list with a growing back-off (200 ms doubling to 5 s); later records of its key wait behind
 * it, other keys go on. Waits inside a handling thread (retries, the rate limit, MongoDB
 * outages) sleep in slices of ≤ 100 ms and end early on a stop, an exit code, or a revocation
 * of the record's partition. Dead letters are confirmed before the offset: the handling thread
 * serves the DLQ producer's delivery reports itself while it waits.
 *
 * Rebalance: on_revoke (poll thread) gives back the waiting records of the revoked partitions
 * and marks the running ones revoked (their waits end, they are released, or finish); the
 * wrapper then waits (bounded) until none is in flight, commits, unassigns.
 * Shutdown: the threads finish or release what they hold, then every record left is given
 * back (re-delivered after a restart).
 *
 * Threads: everything here runs on the poll thread except thread_main() and what it calls.
 */
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/app.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "worker.h"
#include "worker_rt.h"

#define POOL_POLL_MS 100
#define POOL_FULL_POLL_EVERY_MS 1000
#define POOL_UNASSIGNED_GRACE_MS 30000
/* An empty list this long after the last handling ended: the heap's free pages go back to the
 * system (malloc_trim), once per busy period. A backlog's peak stays allocated in glibc's arenas
 * otherwise, and an idle worker would keep its busiest RSS (issue 13: worker memory). */
#define POOL_TRIM_IDLE_MS 2000

static bool same_key(const kafka_record_t *a, const kafka_record_t *b)
{
    if (a->partition != b->partition || strcmp(a->topic, b->topic) != 0)
        return false;
    if ((a->key == NULL) != (b->key == NULL))
        return false;
    if (a->key == NULL)
        return true; /* keyless records of one partition run one at a time, in order */
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

static bool in_parts(const rd_kafka_topic_partition_list_t *parts, const kafka_record_t *rec)
{
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition == rec->partition &&
            strcmp(parts->elems[i].topic, rec->topic) == 0)
            return true;
    return false;
}

static void deadline_in(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Removes job from the list (pool.mu held) and frees it (not its record). */
static void unlink_job(worker_pool_t *p, worker_job_t *job)
{
    worker_job_t **pp = &p->head, *prev = NULL;
    while (*pp != NULL && *pp != job) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = job->next;
    if (p->tail == job)
        p->tail = prev;
    p->count--;
    /* Wake-ups: only the poll thread waits for space. At most one job becomes runnable (the
     * next of this key), so one handling thread is woken, and only when there is one: a
     * broadcast on every finish woke every idle thread to find nothing (issue 13). */
    bool successor = false;
    for (const worker_job_t *j = job->next; j != NULL && !successor; j = j->next)
        successor = same_key(j->rec, job->rec);
    free(job);
    pthread_cond_signal(&p->space);
    if (successor)
        pthread_cond_signal(&p->work);
}

/* The first runnable job (pool.mu held): not running, due, and no earlier job of its key.
 * *next_due gets the earliest due time of a job held back only by its back-off. */
static worker_job_t *pick(worker_pool_t *p, int64_t now, int64_t *next_due)
{
    *next_due = INT64_MAX;
    for (worker_job_t *j = p->head; j != NULL; j = j->next) {
        if (j->running)
            continue;
        bool blocked = false;
        for (worker_job_t *e = p->head; e != j; e = e->next)
            if (same_key(e->rec, j->rec)) {
                blocked = true;
                break;
            }
        if (blocked)
            continue;
        if (j->due_ms > now) {
            if (j->due_ms < *next_due)
                *next_due = j->due_ms;
            continue;
        }
        return j;
    }
    return NULL;
}

/* ---- waits of a handling thread ---------------------------------------------------------- */

static bool thread_should_stop(const worker_thread_t *t)
{
    return app_stop_requested() || t->rt->exit_code >= 0 ||
           (t->job != NULL && atomic_load(&t->job->revoked));
}

/* api_ wait hook of a handling thread: never touches the consumer (the poll thread keeps it
 * alive); sleeps up to 100 ms. Non-zero = stop waiting. */
static int thread_wait(void *opaque, int64_t remaining_ms)
{
    worker_thread_t *t = opaque;
    metrics_heartbeat(t->rt->metrics);
    if (thread_should_stop(t))
        return 1;
    int64_t slice = remaining_ms > 100 ? 100 : (remaining_ms > 0 ? remaining_ms : 0);
    app_sleep_ms(slice);
    return thread_should_stop(t) ? 1 : 0;
}

int worker_thread_wait(void *thread, int64_t remaining_ms)
{
    return thread_wait(thread, remaining_ms);
}

static void thread_store_state(void *opaque, bool up)
{
    worker_thread_t *t = opaque;
    atomic_store(&t->rt->ready, up);
}

/* ---- handling ---------------------------------------------------------------------------- */

/* What to do with a record once its job left the list. The record is freed by
 * kafka_consumer_done()/_release(), and other threads read the records of listed jobs (pick():
 * same_key()), so the job is unlinked under pool.mu first, and only then is the record handed
 * back (a use-after-free otherwise, seen under ASan in the soak). */
typedef enum { AFTER_KEEP = 0, AFTER_DONE, AFTER_RELEASE } after_t;

/* Finishes one handling (not under pool.mu): logs, counts, dead-letters. Says in *after what to
 * do with the record once unlinked; AFTER_KEEP = it stays for a back-off. */
static void finish_job(worker_rt_t *rt, worker_job_t *job, worker_result_t *res, int64_t elapsed,
                       after_t *after)
{
    kafka_record_t *rec = job->rec;
    *after = AFTER_KEEP;
    bool revoked = atomic_load(&job->revoked);
    if (revoked && res->outcome == WORKER_RELEASE)
        snprintf(res->reason, sizeof res->reason, "revoked");
    pthread_mutex_lock(&rt->pool.mu);
    worker_rt_prefinish(rt, res);
    pthread_mutex_unlock(&rt->pool.mu);
    switch (res->outcome) {
    case WORKER_DELIVERED:
    case WORKER_SKIPPED:
    case WORKER_DEDUP_HIT:
        worker_rt_log_done(rt, rec, res, worker_outcome_name(res->outcome), elapsed);
        worker_rt_count(rt, worker_outcome_name(res->outcome), res->reason);
        *after = AFTER_DONE;
        return;
    case WORKER_DEAD:
        if (worker_rt_dead_letter(rt, rec, res, false)) {
            worker_rt_log_done(rt, rec, res, "dead_lettered", elapsed);
            worker_rt_count(rt, "dead_lettered", res->error_class);
            metrics_counter_add(rt->m_dead, (const char *[]){rt->h->name, res->error_class}, 1);
            *after = AFTER_DONE;
            return;
        }
        worker_result_set(res, WORKER_RELEASE, "dlq_failed");
        worker_rt_log_done(rt, rec, res, "released", elapsed);
        worker_rt_count(rt, "released", "dlq_failed");
        break;
    case WORKER_RELEASE:
        worker_rt_log_done(rt, rec, res, "released", elapsed);
        worker_rt_count(rt, "released", res->reason);
        break;
    case WORKER_AUTH:
        worker_rt_log_done(rt, rec, res, "auth", elapsed);
        worker_rt_count(rt, "released", res->reason);
        *after = AFTER_RELEASE;
        if (strcmp(res->reason, "forbidden_streak") != 0) {
            char q[600];
            log_msg(LOG_ERROR, "credentials_rejected",
                    "worker=%s status=%ld error=%s note=\"check the key/token; exiting 3\"",
                    rt->h->name, res->http_status, log_quote(q, sizeof q, res->message));
        }
        int expected = -1;
        atomic_compare_exchange_strong(&rt->exit_code, &expected, CONFIG_EXIT_CREDENTIALS);
        return;
    }
    /* released: given back on a stop, a revocation or an exit; else kept for a back-off */
    *after = app_stop_requested() || atomic_load(&job->revoked) || rt->exit_code >= 0
                 ? AFTER_RELEASE
                 : AFTER_KEEP;
}

static void handle_job(worker_thread_t *t, worker_job_t *job)
{
    worker_rt_t *rt = t->rt;
    kafka_record_t *rec = job->rec;
    int64_t t0 = clock_mono_ms();
    worker_result_t res;
    worker_rt_handle(rt, rt->pool.state, rec, t->ploomes, t->milvus, t, &res);
    after_t after;
    finish_job(rt, job, &res, clock_mono_ms() - t0, &after);
    worker_result_clear(&res);
    rt->last_done_ms = clock_mono_ms();
    pthread_mutex_lock(&rt->pool.mu);
    t->job = NULL;
    job->running = false;
    rt->pool.running--;
    if (after == AFTER_KEEP && atomic_load(&job->revoked))
        after = AFTER_RELEASE; /* revoked after finish_job() kept it: nobody else gives it back */
    if (after != AFTER_KEEP) {
        unlink_job(&rt->pool, job); /* frees job, not rec */
    } else {
        job->due_ms = clock_mono_ms() + job->delay_ms;
        job->delay_ms = job->delay_ms * 2 > WORKER_BACKOFF_MAX_MS ? WORKER_BACKOFF_MAX_MS
                                                                  : job->delay_ms * 2;
        /* no wake-up: nothing is runnable before due_ms, and the waiting threads' timed waits
         * (below) see it at most POOL_POLL_MS late: at most half the first 200 ms back-off */
    }
    metrics_gauge_set(rt->m_in_flight, (const char *[]){rt->h->name}, (double)rt->pool.running);
    pthread_mutex_unlock(&rt->pool.mu);
    if (after == AFTER_DONE)
        kafka_consumer_done(rt->consumer, rec);
    else if (after == AFTER_RELEASE)
        kafka_consumer_release(rt->consumer, rec);
}

static void *thread_main(void *arg)
{
    worker_thread_t *t = arg;
    worker_pool_t *p = &t->rt->pool;
    pthread_mutex_lock(&p->mu);
    while (!p->quit) {
        int64_t next_due = INT64_MAX;
        worker_job_t *job = pick(p, clock_mono_ms(), &next_due);
        if (job == NULL) {
            int64_t wait = POOL_POLL_MS;
            if (next_due != INT64_MAX) {
                int64_t left = next_due - clock_mono_ms();
                wait = left < 1 ? 1 : (left < wait ? left : wait);
            }
            /* Keep this wait timed (≤ POOL_POLL_MS, or until the earliest back-off ends): it
             * is what makes a job runnable by its due time, and the safety net for a signal
             * that wakes nobody (glibc BZ 25847), since a finish signals one thread only. */
            struct timespec ts;
            deadline_in(&ts, wait);
            pthread_cond_timedwait(&p->work, &p->mu, &ts);
            continue;
        }
        job->running = true;
        t->job = job;
        p->running++;
        metrics_gauge_set(t->rt->m_in_flight, (const char *[]){t->rt->h->name},
                          (double)p->running);
        pthread_mutex_unlock(&p->mu);
        handle_job(t, job);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- the poll thread --------------------------------------------------------------------- */

int worker_pool_init(worker_rt_t *rt)
{
    worker_pool_t *p = &rt->pool;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return -1;
    int rc = -1;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0)
        goto out;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto out;
    if (pthread_cond_init(&p->work, &ca) != 0) {
        pthread_mutex_destroy(&p->mu);
        goto out;
    }
    if (pthread_cond_init(&p->space, &ca) != 0) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->mu);
        goto out;
    }
    rt->threaded = true;
    rc = 0;
out:
    pthread_condattr_destroy(&ca);
    return rc;
}

void worker_pool_destroy(worker_rt_t *rt)
{
    if (!rt->threaded)
        return;
    worker_pool_stop(rt); /* no-op when already stopped */
    pthread_cond_destroy(&rt->pool.space);
    pthread_cond_destroy(&rt->pool.work);
    pthread_mutex_destroy(&rt->pool.mu);
    rt->threaded = false;
}

int worker_pool_start(worker_rt_t *rt, void *state)
{
    worker_pool_t *p = &rt->pool;
    p->state = state;
    /* glibc gives each thread that allocates its own arena (64 MiB reserved, pages touched
     * and kept): two are plenty for threads that mostly wait on the network (RSS target) */
    if (mallopt(M_ARENA_MAX, 2) != 1)
        log_msg(LOG_DEBUG, "mallopt_failed", "option=M_ARENA_MAX");
    size_t n = (size_t)(rt->cfg->max_in_flight > 1 ? rt->cfg->max_in_flight : 1);
    p->threads = calloc(n, sizeof *p->threads);
    if (p->threads == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"out of memory\"");
        return -1;
    }
    p->nthreads = n;
    for (size_t i = 0; i < n; i++) {
        worker_thread_t *t = &p->threads[i];
        t->rt = rt;
        if ((rt->h->config_needs & CONFIG_NEED_PLOOMES) &&
            (t->ploomes = worker_rt_api_new(rt, API_PLOOMES, rt->rl_ploomes, thread_wait,
                                            thread_store_state, t)) == NULL)
            return -1;
        if ((rt->h->config_needs & CONFIG_NEED_MILVUS) &&
            (t->milvus = worker_rt_api_new(rt, API_MILVUS, rt->rl_milvus, thread_wait,
                                           thread_store_state, t)) == NULL)
            return -1;
        int e = pthread_create(&t->tid, NULL, thread_main, t);
        if (e != 0) {
            log_msg(LOG_ERROR, "startup_failed", "error=\"cannot start a handling thread (%s)\"",
                    strerror(e));
            return -1;
        }
        t->started = true;
    }
    return 0;
}

/* Appends rec to the list (poll thread). */
static void add_job(worker_rt_t *rt, kafka_record_t *rec)
{
    worker_job_t *job = calloc(1, sizeof *job);
    if (job == NULL) {
        kafka_consumer_release(rt->consumer, rec); /* handed out again after the seek */
        return;
    }
    job->rec = rec;
    atomic_init(&job->revoked, false);
    job->delay_ms = WORKER_BACKOFF_MIN_MS;
    pthread_mutex_lock(&rt->pool.mu);
    if (rt->pool.tail != NULL)
        rt->pool.tail->next = job;
    else
        rt->pool.head = job;
    rt->pool.tail = job;
    rt->pool.count++;
    pthread_cond_signal(&rt->pool.work);
    pthread_mutex_unlock(&rt->pool.mu);
}

void worker_pool_revoke(worker_rt_t *rt, const rd_kafka_topic_partition_list_t *parts)
{
    worker_pool_t *p = &rt->pool;
    pthread_mutex_lock(&p->mu);
    for (worker_job_t *j = p->head, *next; j != NULL; j = next) {
        next = j->next;
        if (!in_parts(parts, j->rec))
            continue;
        if (j->running) {
            atomic_store(&j->revoked, true); /* its waits end; it is released or finishes */
        } else {
            kafka_consumer_release(rt->consumer, j->rec);
            unlink_job(p, j);
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static bool pool_idle(worker_rt_t *rt, int64_t limit, int64_t started)
{
    if (limit < 0)
        return false;
    pthread_mutex_lock(&rt->pool.mu);
    size_t n = rt->pool.count;
    pthread_mutex_unlock(&rt->pool.mu);
    if (n > 0 || kafka_consumer_in_flight(rt->consumer) > 0)
        return false;
    int64_t now = clock_mono_ms();
    if (rt->first_assign_ms == 0)
        return now - started >= limit + POOL_UNASSIGNED_GRACE_MS;
    return now - rt->first_assign_ms >= limit && now - rt->last_done_ms >= limit &&
           kafka_consumer_idle_ms(rt->consumer) >= limit;
}

void worker_pool_loop(worker_rt_t *rt, int64_t idle_limit)
{
    worker_pool_t *p = &rt->pool;
    size_t cap = p->nthreads;
    int64_t started = clock_mono_ms(), last_ping = started, last_poll = started;
    bool trim_due = false; /* records were handled since the last trim */
    while (!app_stop_requested() && rt->exit_code < 0) {
        if (!worker_rt_chores(rt, &last_ping))
            break;
        pthread_mutex_lock(&p->mu);
        if (p->count >= cap) {
            struct timespec ts;
            deadline_in(&ts, POOL_POLL_MS);
            pthread_cond_timedwait(&p->space, &p->mu, &ts);
        }
        bool full = p->count >= cap;
        pthread_mutex_unlock(&p->mu);
        kafka_record_t *rec = NULL;
        int64_t now = clock_mono_ms();
        if (!full) {
            if (rt->paused_all) {
                kafka_consumer_resume_all(rt->consumer);
                rt->paused_all = false;
            }
            rec = kafka_consumer_poll(rt->consumer, POOL_POLL_MS);
            last_poll = clock_mono_ms();
        } else if (now - last_poll >= POOL_FULL_POLL_EVERY_MS) {
            /* full for a while: keep the membership alive and serve rebalances; the wrapper
             * holds back records of paused partitions (one handed out anyway is kept) */
            if (!rt->paused_all && kafka_consumer_pause_all(rt->consumer) == 0)
                rt->paused_all = true;
            rec = kafka_consumer_poll(rt->consumer, 0);
            last_poll = clock_mono_ms();
        }
        if (rec != NULL) {
            add_job(rt, rec);
            trim_due = true;
            continue;
        }
        if (trim_due && !full) {
            pthread_mutex_lock(&p->mu);
            bool empty = p->count == 0;
            pthread_mutex_unlock(&p->mu);
            if (empty && clock_mono_ms() - atomic_load(&rt->last_done_ms) >= POOL_TRIM_IDLE_MS) {
                (void)malloc_trim(0); /* returns 1 when memory was released: either is fine */
                trim_due = false;
            }
        }
        if (!full && pool_idle(rt, idle_limit, started)) {
            log_msg(LOG_INFO, "idle_exit", "worker=%s idle_ms=%" PRId64, rt->h->name,
                    kafka_consumer_idle_ms(rt->consumer));
            break;
        }
    }
}

void worker_pool_stop(worker_rt_t *rt)
{
    worker_pool_t *p = &rt->pool;
    pthread_mutex_lock(&p->mu);
    p->quit = true;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        if (p->threads[i].started)
            pthread_join(p->threads[i].tid, NULL);
    /* every thread is gone: what is left waits in the list */
    for (worker_job_t *j = p->head, *next; j != NULL; j = next) {
        next = j->next;
        kafka_consumer_release(rt->consumer, j->rec);
        free(j);
    }
    p->head = p->tail = NULL;
    p->count = p->running = 0;
    for (size_t i = 0; i < p->nthreads; i++) {
        api_free(p->threads[i].ploomes);
        api_free(p->threads[i].milvus);
    }
    free(p->threads);
    p->threads = NULL;
    p->nthreads = 0;
}
