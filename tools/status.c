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

/* A consumer handle carrying `group` as its group.id, only to read the group's committed
 * offsets (it never subscribes, so it never joins the group). */
static rd_kafka_t *group_reader(const kafka_settings_t *ks, const char *group, char *err,
                                size_t errlen)
{
    rd_kafka_conf_t *conf = kafka_conf_from_settings(ks, err, errlen);
    if (!conf)
        return NULL;
    if (kafka_conf_set(conf, "group.id", group, err, errlen) != 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", err, errlen) != 0 ||
        kafka_conf_set(conf, "client.id", "pipeline-status", err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char e[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        errbuf_set(err, errlen, "cannot create a Kafka client: %s", e);
    }
    return rk;
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
static int collect_worker(status_t *s, size_t *cap, const kafka_settings_t *ks,
                          const char *prefix, const status_worker_t *w)
{
    char group[KAFKA_TOPIC_NAME_MAX + 64], topic[KAFKA_TOPIC_NAME_MAX], err[512];
    snprintf(group, sizeof group, "%s%s", prefix ? prefix : "", w->worker);
    if (kafka_topic_name(topic, sizeof topic, prefix, w->topic) != 0)
        return 0;
    int parts = kafka_topic_partition_count(ks, topic, KAFKA_TIMEOUT_MS, err, sizeof err);
    if (parts <= 0) {
        if (parts < 0)
            problem(s, "lag of %s: %s", w->worker, err);
        return 0; /* a topic not created yet has no lag */
    }
    rd_kafka_t *rk = group_reader(ks, group, err, sizeof err);
    rd_kafka_topic_partition_list_t *tp = rk ? rd_kafka_topic_partition_list_new(parts) : NULL;
    if (!tp) {
        problem(s, "lag of %s: %s", w->worker, rk ? "out of memory" : err);
        if (rk)
            rd_kafka_destroy(rk);
        return 0;
    }
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(tp, topic, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, tp, KAFKA_TIMEOUT_MS);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        problem(s, "committed offsets of %s: %s", group, rd_kafka_err2str(e));
    int rc = 0;
    for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < tp->cnt; i++) {
        status_lag_t l = {.worker = w->worker, .partition = tp->elems[i].partition,
                          .committed = tp->elems[i].offset >= 0 ? tp->elems[i].offset : -1};
        snprintf(l.topic, sizeof l.topic, "%s", topic);
        if (rd_kafka_query_watermark_offsets(rk, topic, l.partition, &l.low, &l.high,
                                             KAFKA_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            problem(s, "watermarks of %s [%d] unavailable", topic, l.partition);
            continue;
        }
        l.lag = l.high - (l.committed >= 0 ? l.committed : l.low);
        if (add_lag(s, cap, &l) != 0) {
            rc = -1;
            break;
        }
    }
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_destroy(rk);
    return rc;
}

static void collect_rates(status_t *s, const config_t *cfg, store_t *st)
{
    const char *urls[2] = {cfg->ploomes_base_url, cfg->milvus_base_url};
    const char *keys[2] = {cfg->ploomes_user_key, cfg->milvus_token};
    const int limits[2] = {cfg->ploomes_rate_per_min, cfg->milvus_rate_per_min};
    for (int i = 0; i < 2; i++) {
        s->rates[i] = (status_rate_t){.api = i == 0 ? "ploomes" : "milvus", .limit = limits[i]};
        if (!st || !keys[i] || !*keys[i])
            continue; /* the bucket is named after the key: unknown without it */
        char err[512];
        ratelimit_options_t o = {.pool = store_pool(st), .database = store_db_name(st),
                                 .base_url = urls[i], .secret = keys[i], .limit = limits[i],
                                 .window_ms = 60000, .margin_ms = -1, .name = s->rates[i].api};
        ratelimit_t *rl = ratelimit_new(&o, err, sizeof err);
        if (rl && ratelimit_usage(rl, &s->rates[i].used, &s->rates[i].limit, err,
                                  sizeof err) == 0)
            s->rates[i].known = true;
        else
            problem(s, "rate-limit use of %s: %s", s->rates[i].api, err);
        ratelimit_free(rl);
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

int status_collect(const config_t *cfg, const kafka_settings_t *ks, store_t *st, status_t *out)
{
    memset(out, 0, sizeof *out);
    out->taken_ms = clock_wall_ms();
    out->dlq_messages = -1;
    out->dlq_newest_ms = -1;
    size_t cap = 0;
    for (size_t i = 0; i < sizeof STATUS_WORKERS / sizeof STATUS_WORKERS[0]; i++) {
        if (collect_worker(out, &cap, ks, cfg->topic_prefix, &STATUS_WORKERS[i]) != 0) {
            status_free(out);
            return -1;
        }
    }
    char err[512];
    if (dlq_size(ks, cfg->topic_prefix, KAFKA_TIMEOUT_MS, &out->dlq_messages,
                 &out->dlq_newest_ms, err, sizeof err) != 0) {
        out->dlq_messages = -1;
        problem(out, "dead-letter topic: %s", err);
    }
    collect_store(out, st);
    collect_rates(out, cfg, st);
    return 0;
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
