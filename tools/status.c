/* status_: a snapshot of the pipeline for operators. See status.h. */
#include "status.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dlq.h"
#include "errbuf.h"
#include "ratelimit.h"

#define KAFKA_TIMEOUT_MS 10000

const status_worker_t STATUS_WORKERS[4] = {
    {"clients-to-milvus", KAFKA_TOPIC_PLOOMES_CONTACTS},
    {"clients-to-ploomes", KAFKA_TOPIC_MILVUS_CLIENTS},
    {"tasks-to-milvus", KAFKA_TOPIC_PLOOMES_TASKS},
    {"interactions-to-milvus", KAFKA_TOPIC_PLOOMES_INTERACTIONS},
};

const char *const STATUS_LEASE_NAMES[2] = {"producer:ploomes", "producer:milvus"};

static void problem(status_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(status_t *s, const char *fmt, ...)
{
    if (s->problem_count >= STATUS_PROBLEMS_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->problems[s->problem_count++], sizeof s->problems[0], fmt, ap);
    va_end(ap);
}

struct status_collector {
    const config_t *cfg;        /* borrowed */
    const kafka_settings_t *ks; /* borrowed */
    store_t *st;                /* borrowed, may be NULL */
    rd_kafka_t *rk;             /* owned: NULL until a sample needs it, and after a failure */
    ratelimit_t *rl[2];         /* owned: ploomes, milvus; NULL until built or after a failure */
    bool kafka_failed;          /* this sample could not reach Kafka: rebuild rk on the next */
};

static void kafka_drop(status_collector_t *c)
{
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    c->rk = NULL;
}

/* The collector's Kafka handle, built when missing. NULL with err. */
static rd_kafka_t *kafka_get(status_collector_t *c, char *err, size_t errlen)
{
    if (c->rk)
        return c->rk;
    c->rk = dlq_reader_new(c->ks, err, errlen);
    if (!c->rk)
        return NULL;
    return c->rk;
}

/* Committed offsets of `group` for every partition of tp (offsets filled in place, -1001 when
 * none), read with the Admin API: nothing joins the group. Stable offsets are asked for, as
 * rd_kafka_committed() does with the default isolation.level. The result comes on a queue of
 * this call alone: a late answer to an earlier call can never be taken for this one's. */
static rd_kafka_resp_err_t committed(status_collector_t *c, const char *group,
                                     rd_kafka_topic_partition_list_t *tp)
{
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, tp);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(c->rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__FAIL; /* out of memory */
    rd_kafka_event_t *ev = NULL;
    char rkerr[256];
    if (!req || !opts || !q)
        goto out;
    rd_kafka_error_t *x = rd_kafka_AdminOptions_set_require_stable_offsets(opts, 1);
    if (x) {
        e = rd_kafka_error_code(x);
        rd_kafka_error_destroy(x);
        goto out;
    }
    if ((e = rd_kafka_AdminOptions_set_request_timeout(opts, KAFKA_TIMEOUT_MS, rkerr,
                                                       sizeof rkerr)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto out;
    rd_kafka_ListConsumerGroupOffsets(c->rk, &req, 1, opts, q);
    /* The request times out after KAFKA_TIMEOUT_MS; the margin only guards the wait. */
    int64_t deadline = clock_mono_ms() + KAFKA_TIMEOUT_MS + 5000;
    e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    while (!ev && clock_mono_ms() < deadline) {
        ev = rd_kafka_queue_poll(q, 500);
        if (ev && rd_kafka_event_type(ev) != RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT) {
            rd_kafka_event_destroy(ev);
            ev = NULL;
        }
    }
    if (!ev)
        goto out;
    if ((e = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR)
        goto out;
    size_t n = 0;
    const rd_kafka_group_result_t **groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
        rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    if (n != 1) {
        e = RD_KAFKA_RESP_ERR__BAD_MSG;
        goto out;
    }
    const rd_kafka_error_t *gerr = rd_kafka_group_result_error(groups[0]);
    if (gerr) {
        e = rd_kafka_error_code(gerr);
        goto out;
    }
    const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(groups[0]);
    for (int i = 0; i < tp->cnt; i++) {
        const rd_kafka_topic_partition_t *g =
            got ? rd_kafka_topic_partition_list_find(got, tp->elems[i].topic,
                                                     tp->elems[i].partition)
                : NULL;
        tp->elems[i].offset = g ? g->offset : RD_KAFKA_OFFSET_INVALID;
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (q)
        rd_kafka_queue_destroy(q);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (req)
        rd_kafka_ListConsumerGroupOffsets_destroy(req);
    return e;
}

static int add_lag(status_t *s, size_t *cap, const status_lag_t *l)
{
    if (s->lag_count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 32;
        status_lag_t *grown = realloc(s->lags, ncap * sizeof *grown);
        if (!grown)
            return -1;
        s->lags = grown;
        *cap = ncap;
    }
    s->lags[s->lag_count++] = *l;
    return 0;
}

/* Lag of one worker's group on its topic, every partition. Returns 0, -1 out of memory. */
static int collect_worker(status_collector_t *c, status_t *s, size_t *cap,
                          const status_worker_t *w)
{
    const char *prefix = c->cfg->topic_prefix;
    char group[KAFKA_TOPIC_NAME_MAX + 64], topic[KAFKA_TOPIC_NAME_MAX], err[512];
    snprintf(group, sizeof group, "%s%s", prefix ? prefix : "", w->worker);
    if (kafka_topic_name(topic, sizeof topic, prefix, w->topic) != 0)
        return 0;
    rd_kafka_t *rk = kafka_get(c, err, sizeof err);
    int parts = rk ? kafka_partition_count_on(rk, topic, KAFKA_TIMEOUT_MS, err, sizeof err) : KAFKA_ERR_CONFIG;
    if (parts <= 0) {
        if (parts < 0)
            problem(s, "lag of %s: %s", w->worker, err);
        if (parts == KAFKA_ERR_BROKER)
            c->kafka_failed = true;
        return 0; /* a topic not created yet has no lag */
    }
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
    if (!tp) {
        problem(s, "lag of %s: out of memory", w->worker);
        return 0;
    }
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(tp, topic, p);
    rd_kafka_resp_err_t e = committed(c, group, tp);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        problem(s, "committed offsets of %s: %s", group, rd_kafka_err2str(e));
        c->kafka_failed = true;
    }
    int rc = 0;
    for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < tp->cnt; i++) {
        status_lag_t l = {.worker = w->worker, .partition = tp->elems[i].partition,
                          .committed = tp->elems[i].offset >= 0 ? tp->elems[i].offset : -1};
        snprintf(l.topic, sizeof l.topic, "%s", topic);
        if (rd_kafka_query_watermark_offsets(rk, topic, l.partition, &l.low, &l.high,
                                             KAFKA_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            problem(s, "watermarks of %s [%d] unavailable", topic, l.partition);
            c->kafka_failed = true;
            continue;
        }
        l.lag = l.high - (l.committed >= 0 ? l.committed : l.low);
        if (add_lag(s, cap, &l) != 0) {
            rc = -1;
            break;
        }
    }
    rd_kafka_topic_partition_list_destroy(tp);
    return rc;
}

static void collect_rates(status_collector_t *c, status_t *s)
{
    const config_t *cfg = c->cfg;
    const char *urls[2] = {cfg->ploomes_base_url, cfg->milvus_base_url};
    const char *keys[2] = {cfg->ploomes_user_key, cfg->milvus_token};
    const int limits[2] = {cfg->ploomes_rate_per_min, cfg->milvus_rate_per_min};
    for (int i = 0; i < 2; i++) {
        s->rates[i] = (status_rate_t){.api = i == 0 ? "ploomes" : "milvus", .limit = limits[i]};
        if (!c->st || !keys[i] || !*keys[i])
            continue; /* the bucket is named after the key: unknown without it */
        char err[512];
        if (!c->rl[i]) {
            ratelimit_options_t o = {.pool = store_pool(c->st), .database = store_db_name(c->st),
                                     .base_url = urls[i], .secret = keys[i], .limit = limits[i],
                                     .window_ms = 60000, .margin_ms = -1,
                                     .name = s->rates[i].api};
            c->rl[i] = ratelimit_new(&o, err, sizeof err);
        }
        if (c->rl[i] && ratelimit_usage(c->rl[i], &s->rates[i].used, &s->rates[i].limit, err,
                                        sizeof err) == 0) {
            s->rates[i].known = true;
        } else {
            problem(s, "rate-limit use of %s: %s", s->rates[i].api, err);
            ratelimit_free(c->rl[i]); /* built again on the next sample */
            c->rl[i] = NULL;
        }
    }
}

static void collect_store(status_t *s, store_t *st)
{
    char err[512];
    if (!st) {
        problem(s, "MongoDB: not configured");
        return;
    }
    if (store_cursor_list(st, &s->cursors, &s->cursor_count, err, sizeof err) != STORE_OK)
        problem(s, "producer cursors: %s", err);
    s->leases_known = true;
    for (int i = 0; i < 2; i++) {
        if (store_lease_get(st, STATUS_LEASE_NAMES[i], &s->leases[i], err, sizeof err) !=
            STORE_OK) {
            s->leases_known = false;
            problem(s, "lease %s: %s", STATUS_LEASE_NAMES[i], err);
        }
    }
}

status_collector_t *status_collector_new(const config_t *cfg, const kafka_settings_t *ks,
                                         store_t *st)
{
    status_collector_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = cfg;
    c->ks = ks;
    c->st = st;
    return c;
}

int status_collector_collect(status_collector_t *c, status_t *out)
{
    memset(out, 0, sizeof *out);
    out->taken_ms = clock_wall_ms();
    out->dlq_messages = -1;
    out->dlq_newest_ms = -1;
    c->kafka_failed = false;
    size_t cap = 0;
    for (size_t i = 0; i < sizeof STATUS_WORKERS / sizeof STATUS_WORKERS[0]; i++) {
        if (collect_worker(c, out, &cap, &STATUS_WORKERS[i]) != 0) {
            status_free(out);
            return -1;
        }
    }
    char err[512];
    rd_kafka_t *rk = kafka_get(c, err, sizeof err);
    if (!rk || dlq_size_on(rk, c->cfg->topic_prefix, KAFKA_TIMEOUT_MS, &out->dlq_messages,
                           &out->dlq_newest_ms, err, sizeof err) != 0) {
        out->dlq_messages = -1;
        problem(out, "dead-letter topic: %s", err);
        c->kafka_failed = true;
    }
    collect_store(out, c->st);
    collect_rates(c, out);
    if (c->rk)
        rd_kafka_poll(c->rk, 0); /* serve the error/log callbacks queued meanwhile */
    if (c->kafka_failed)
        kafka_drop(c); /* built again on the next sample */
    return 0;
}

void status_collector_free(status_collector_t *c)
{
    if (!c)
        return;
    kafka_drop(c);
    for (int i = 0; i < 2; i++)
        ratelimit_free(c->rl[i]);
    free(c);
}

void status_free(status_t *s)
{
    free(s->lags);
    free(s->cursors);
    s->lags = NULL;
    s->cursors = NULL;
    s->lag_count = s->cursor_count = 0;
}

int64_t status_worker_lag(const status_t *s, const char *worker)
{
    int64_t sum = 0;
    for (size_t i = 0; i < s->lag_count; i++) {
        if (strcmp(s->lags[i].worker, worker) == 0)
            sum += s->lags[i].lag;
    }
    return sum;
}

const char *status_ago(char *buf, size_t size, int64_t now_ms, int64_t then_ms)
{
    if (then_ms <= 0) {
        snprintf(buf, size, "never");
        return buf;
    }
    int64_t s = (now_ms - then_ms) / 1000;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, size, "%" PRId64 "s ago", s);
    else if (s < 7200)
        snprintf(buf, size, "%" PRId64 "m ago", s / 60);
    else
        snprintf(buf, size, "%" PRId64 "h ago", s / 3600);
    return buf;
}

void status_print(const status_t *s, const config_t *cfg, FILE *out)
{
    char a[32], b[32];
    fprintf(out, "pipeline status (TOPIC_PREFIX \"%s\")\n\n", cfg->topic_prefix);
    fprintf(out, "%-24s %-10s %-28s %5s %10s %10s %8s\n", "WORKER", "TOTAL LAG", "TOPIC", "PART",
            "COMMITTED", "END", "LAG");
    for (size_t w = 0; w < sizeof STATUS_WORKERS / sizeof STATUS_WORKERS[0]; w++) {
        const char *name = STATUS_WORKERS[w].worker;
        fprintf(out, "%-24s %-10" PRId64 "\n", name, status_worker_lag(s, name));
        for (size_t i = 0; i < s->lag_count; i++) {
            const status_lag_t *l = &s->lags[i];
            if (strcmp(l->worker, name) == 0)
                fprintf(out, "%-24s %-10s %-28s %5d %10" PRId64 " %10" PRId64 " %8" PRId64 "\n",
                        "", "", l->topic, l->partition, l->committed, l->high, l->lag);
        }
    }
    if (s->dlq_messages < 0)
        fprintf(out, "\ndead letters: unknown\n");
    else
        fprintf(out, "\ndead letters: %" PRId64 " (newest %s)%s\n", s->dlq_messages,
                status_ago(a, sizeof a, s->taken_ms, s->dlq_newest_ms),
                s->dlq_messages > 0 ? "  -> pipeline-dlq list" : "");
    fprintf(out, "\n%-22s %-34s %-12s %-12s %s\n", "PRODUCER CURSOR", "POSITION", "LAST OK",
            "LAST POLL", "LAST ERROR");
    for (size_t i = 0; i < s->cursor_count; i++) {
        const store_cursor_t *c = &s->cursors[i];
        char pos[STORE_STAMP_MAX + 24];
        snprintf(pos, sizeof pos, "%s/%" PRId64, c->has_position ? c->stamp : "-", c->id);
        fprintf(out, "%-22s %-34s %-12s %-12s %.80s\n", c->key, pos,
                status_ago(a, sizeof a, s->taken_ms, c->last_ok_at_ms),
                status_ago(b, sizeof b, s->taken_ms, c->last_poll_at_ms), c->last_error);
    }
    fprintf(out, "\n%-22s %s\n", "LEASE", "HOLDER");
    for (int i = 0; s->leases_known && i < 2; i++) {
        const store_lease_t *l = &s->leases[i];
        if (l->owner[0])
            fprintf(out, "%-22s %s (for %" PRId64 " s more)\n", STATUS_LEASE_NAMES[i], l->owner,
                    (l->until_ms - s->taken_ms) / 1000);
        else
            fprintf(out, "%-22s nobody\n", STATUS_LEASE_NAMES[i]);
    }
    fprintf(out, "\n%-22s %s\n", "RATE LIMIT", "USED IN THE LAST 60 s");
    for (int i = 0; i < 2; i++) {
        if (s->rates[i].known)
            fprintf(out, "%-22s %d / %d\n", s->rates[i].api, s->rates[i].used, s->rates[i].limit);
        else
            fprintf(out, "%-22s unknown (its key is not set here)\n", s->rates[i].api);
    }
    for (size_t i = 0; i < s->problem_count; i++)
        fprintf(out, "%sproblem: %s\n", i == 0 ? "\n" : "", s->problems[i]);
}

cJSON *status_json(const status_t *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "taken_ms", (double)s->taken_ms);
    cJSON *workers = cJSON_AddArrayToObject(o, "workers");
    for (size_t w = 0; workers && w < sizeof STATUS_WORKERS / sizeof STATUS_WORKERS[0]; w++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(workers, x);
        cJSON_AddStringToObject(x, "worker", STATUS_WORKERS[w].worker);
        cJSON_AddNumberToObject(x, "lag", (double)status_worker_lag(s, STATUS_WORKERS[w].worker));
        cJSON *parts = cJSON_AddArrayToObject(x, "partitions");
        for (size_t i = 0; parts && i < s->lag_count; i++) {
            const status_lag_t *l = &s->lags[i];
            if (strcmp(l->worker, STATUS_WORKERS[w].worker) != 0)
                continue;
            cJSON *p = cJSON_CreateObject();
            cJSON_AddItemToArray(parts, p);
            cJSON_AddStringToObject(p, "topic", l->topic);
            cJSON_AddNumberToObject(p, "partition", l->partition);
            cJSON_AddNumberToObject(p, "committed", (double)l->committed);
            cJSON_AddNumberToObject(p, "end", (double)l->high);
            cJSON_AddNumberToObject(p, "lag", (double)l->lag);
        }
    }
    cJSON *dlq = cJSON_AddObjectToObject(o, "dlq");
    cJSON_AddNumberToObject(dlq, "messages", (double)s->dlq_messages);
    cJSON_AddNumberToObject(dlq, "newest_ms", (double)s->dlq_newest_ms);
    cJSON *cursors = cJSON_AddArrayToObject(o, "cursors");
    for (size_t i = 0; cursors && i < s->cursor_count; i++) {
        const store_cursor_t *c = &s->cursors[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(cursors, x);
        cJSON_AddStringToObject(x, "key", c->key);
        cJSON_AddStringToObject(x, "stamp", c->stamp);
        cJSON_AddNumberToObject(x, "id", (double)c->id);
        cJSON_AddNumberToObject(x, "last_ok_ms", (double)c->last_ok_at_ms);
        cJSON_AddNumberToObject(x, "last_poll_ms", (double)c->last_poll_at_ms);
        cJSON_AddStringToObject(x, "last_error", c->last_error);
    }
    cJSON *leases = cJSON_AddArrayToObject(o, "leases");
    for (int i = 0; leases && s->leases_known && i < 2; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(leases, x);
        cJSON_AddStringToObject(x, "name", STATUS_LEASE_NAMES[i]);
        cJSON_AddStringToObject(x, "owner", s->leases[i].owner);
        cJSON_AddNumberToObject(x, "until_ms", (double)s->leases[i].until_ms);
    }
    cJSON *rates = cJSON_AddArrayToObject(o, "rate_limits");
    for (int i = 0; rates && i < 2; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddItemToArray(rates, x);
        cJSON_AddStringToObject(x, "api", s->rates[i].api);
        cJSON_AddBoolToObject(x, "known", s->rates[i].known);
        cJSON_AddNumberToObject(x, "used", s->rates[i].used);
        cJSON_AddNumberToObject(x, "limit", s->rates[i].limit);
    }
    cJSON *probs = cJSON_AddArrayToObject(o, "problems");
    for (size_t i = 0; probs && i < s->problem_count; i++)
        cJSON_AddItemToArray(probs, cJSON_CreateString(s->problems[i]));
    return o;
}
