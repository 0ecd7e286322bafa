/* wtest: helpers shared by the workers' integration tests (header-only: the build compiles each
 * tests/workers/test_*.c and it_*.c as its own program). Handler engineers may ADD functions at
 * the end; keep what is here stable.
 *
 *   wt_t w;  wt_init(&w, "c2m");               // unique TOPIC_PREFIX, database, log file,
 *                                              // small retry settings (see wt_init)
 *   wt_set(&w, "MILVUS_BASE_URL", simproc_api_url(milvus));
 *   wt_ensure_topics(&w);                      // the five topics, TOPIC_PARTITIONS of wt_init
 *   wt_produce(&w, "ploomes.contacts", "42", "{\"Id\":42,...}");   // like ploomes-producer
 *   wt_flush(&w);                              // every record acknowledged
 *   int rc = wt_run(&w, "clients-to-milvus", 3, 60000);  // --idle-exit 3, exit code
 *   wt_msgs_t dlq;  wt_read_topic(&w, "pipeline.dlq", &dlq, 30000);
 *   assert_null(wt_check_letter(&dlq.msgs[0], &w, "ploomes.contacts", "InvalidJson"));
 *   wt_msgs_free(&dlq);
 *   store_t *st = wt_store_open(&w);  store_get(st, ...);  store_close(st);
 *   wt_free(&w);
 *
 * Both APIs at the simulators (the usual fixture, end of this file):
 *   wt_sims_t sims;  wt_sims_start(&sims, KEY, WT_NO_RATE_LIMIT, TOKEN, WT_NO_RATE_LIMIT);
 *   wt_init_apis(&w, "ka", simproc_api_url(sims.ploomes), KEY, simproc_api_url(sims.milvus),
 *                TOKEN);                   // wt_init + URLs, credentials, windows, topics
 *   wt_sim_count(state, "clientes", "cnpj_cpf", doc);  wt_sim_tickets(state, "task", id, NULL);
 *   wt_sims_stop(&sims);                      // group teardown
 * Simulators: tests/support/simproc.h (simproc_start_sim, simproc_seed, simproc_state, ...).
 * Daemons with METRICS_PORT: pt_start_daemon(binary, wt_env(&w), w.log, &port) from
 * tests/producers/prodtest.h (included here), then kill(pid, SIGTERM) + simproc_wait.
 *
 * Ownership: a wt_t owns its strings, its producer and its environment (wt_free). wt_msgs_t
 * owns its messages (wt_msgs_free). Not thread-safe: one wt_t per thread.
 */
#ifndef TESTS_WORKERS_WTEST_H
#define TESTS_WORKERS_WTEST_H

#include "../producers/prodtest.h"

#include "clock.h"
#include "config.h"
#include "kafka.h"
#include "kafka_dlq.h"
#include "store.h"

#define WT_ENV_MAX 64
#define WT_ENTRY_MAX 1024

typedef struct {
    char prefix[96];     /* TOPIC_PREFIX (ends with '.') */
    char db[96];         /* MongoDB database of this test */
    char mongo_uri[512]; /* MONGODB_URI with that database */
    char log[160];       /* the workers' log file ("/tmp/<prefix>log") */
    char *entries[WT_ENV_MAX]; /* "NAME=value", owned */
    const char *envp[WT_ENV_MAX + 1]; /* NULL-terminated view of entries (wt_env) */
    size_t n;
    kafka_producer_t *producer; /* lazily created by wt_produce* */
    kafka_batch_t *batch;
} wt_t;

/* Sets (or replaces) NAME=value in the workers' environment. value NULL removes NAME. */
static inline void wt_set(wt_t *w, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < w->n; i++) {
        if (strncmp(w->entries[i], name, nl) == 0 && w->entries[i][nl] == '=') {
            free(w->entries[i]);
            w->entries[i] = w->entries[--w->n];
            break;
        }
    }
    if (value == NULL)
        return;
    if (w->n >= WT_ENV_MAX) {
        fprintf(stderr, "wt_set: more than %d variables\n", WT_ENV_MAX);
        exit(1);
    }
    size_t len = nl + strlen(value) + 2;
    char *e = malloc(len);
    if (e == NULL)
        exit(1);
    snprintf(e, len, "%s=%s", name, value);
    w->entries[w->n++] = e;
}

static inline void wt_setf(wt_t *w, const char *name, long long value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", value);
    wt_set(w, name, buf);
}

/* The NULL-terminated environment to give a worker (valid until the next wt_set / wt_free). */
static inline const char *const *wt_env(wt_t *w)
{
    for (size_t i = 0; i < w->n; i++)
        w->envp[i] = w->entries[i];
    w->envp[w->n] = NULL;
    return w->envp;
}

/* Unique prefix "wt-<tag>-<pid>-<n>-<hex>.", database and log file, and the defaults of a
 * worker test: KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI (the test's database), TOPIC_PREFIX,
 * TOPIC_PARTITIONS=2, MAX_ATTEMPTS=3, RETRY_BASE_MS=20, RETRY_MAX_MS=200, HTTP_TIMEOUT_MS=1000,
 * PLOOMES_/MILVUS_RATE_PER_MIN=100000, PLOOMES_403_PAUSE_MS=200, CLAIM_LEASE_SECONDS=30,
 * LOG_LEVEL=debug, fast group membership (KAFKA_SESSION_TIMEOUT_MS=6000,
 * KAFKA_HEARTBEAT_INTERVAL_MS=500), SYNC_SINCE=2020-01-01T00:00:00Z. Credentials and base
 * URLs are the test's to set (wt_set). */
static inline void wt_init(wt_t *w, const char *tag)
{
    memset(w, 0, sizeof *w);
    char pfx[64];
    snprintf(pfx, sizeof pfx, "wt-%s-", tag);
    char u[80];
    testenv_unique(u, sizeof u, pfx);
    snprintf(w->prefix, sizeof w->prefix, "%s.", u);
    snprintf(w->db, sizeof w->db, "%s", u);
    for (char *p = w->db; *p; p++)
        if (*p == '.' || *p == '-')
            *p = '_';
    testenv_mongo_uri_for_db(w->mongo_uri, sizeof w->mongo_uri, w->db);
    snprintf(w->log, sizeof w->log, "/tmp/%slog", w->prefix);
    unlink(w->log);
    wt_set(w, "KAFKA_BOOTSTRAP_SERVERS", testenv_require("KAFKA_BOOTSTRAP_SERVERS"));
    wt_set(w, "MONGODB_URI", w->mongo_uri);
    wt_set(w, "TOPIC_PREFIX", w->prefix);
    wt_set(w, "TOPIC_PARTITIONS", "2");
    wt_set(w, "MAX_ATTEMPTS", "3");
    wt_set(w, "RETRY_BASE_MS", "20");
    wt_set(w, "RETRY_MAX_MS", "200");
    wt_set(w, "HTTP_TIMEOUT_MS", "1000");
    wt_set(w, "PLOOMES_RATE_PER_MIN", "100000");
    wt_set(w, "MILVUS_RATE_PER_MIN", "100000");
    wt_set(w, "PLOOMES_403_PAUSE_MS", "200");
    wt_set(w, "CLAIM_LEASE_SECONDS", "30");
    wt_set(w, "LOG_LEVEL", "debug");
    wt_set(w, "KAFKA_SESSION_TIMEOUT_MS", "6000");
    wt_set(w, "KAFKA_HEARTBEAT_INTERVAL_MS", "500");
    wt_set(w, "SYNC_SINCE", "2020-01-01T00:00:00Z");
}

/* Closes the producer (after flushing) and frees the environment. The log file is kept (it is
 * what a failing test shows). */
static inline void wt_free(wt_t *w)
{
    char err[256];
    if (w->producer)
        kafka_producer_close(w->producer, 30000, err, sizeof err);
    if (w->batch)
        kafka_batch_free(w->batch);
    for (size_t i = 0; i < w->n; i++)
        free(w->entries[i]);
    memset(w, 0, sizeof *w);
}

/* "<prefix><base>" into buf; returns buf. */
static inline const char *wt_topic(const wt_t *w, const char *base, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", w->prefix, base);
    return buf;
}

static inline kafka_settings_t wt_settings(void)
{
    kafka_settings_t s = {.bootstrap_servers = testenv_require("KAFKA_BOOTSTRAP_SERVERS")};
    return s;
}

/* Creates the five topics of the prefix with `partitions` partitions (the DLQ with unlimited
 * retention). Set TOPIC_PARTITIONS to the same number (wt_setf) when it is not 2. Returns 0
 * or -1 (said on stderr). */
static inline int wt_ensure_topics_n(const wt_t *w, int partitions)
{
    kafka_settings_t s = wt_settings();
    char err[512];
    int rc = kafka_topics_ensure(&s, w->prefix, partitions, NULL, 0, 30000, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "wt_ensure_topics: %s\n", err);
    return rc == 0 ? 0 : -1;
}

/* The same with 2 partitions, as TOPIC_PARTITIONS of wt_init. */
static inline int wt_ensure_topics(const wt_t *w)
{
    return wt_ensure_topics_n(w, 2);
}

/* SPEC §2 header pair of a base topic ("ploomes.contacts" → ploomes/contact ...). */
static inline void wt_source_entity(const char *base, const char **source, const char **entity)
{
    *source = strncmp(base, "milvus.", 7) == 0 ? "milvus" : "ploomes";
    if (strcmp(base, "ploomes.tasks") == 0)
        *entity = "task";
    else if (strcmp(base, "ploomes.interactions") == 0)
        *entity = "interaction";
    else if (strcmp(base, "milvus.clients") == 0)
        *entity = "client";
    else
        *entity = "contact";
}

/* Enqueues one record on <prefix><base> with arbitrary bytes and headers (names/values NULL
 * when hcount == 0). Returns 0 or -1. wt_flush() waits for the acknowledgements. */
static inline int wt_produce_raw(wt_t *w, const char *base, const char *key, const void *value,
                                 size_t value_len, const char *const *hnames,
                                 const char *const *hvalues, size_t hcount)
{
    char err[512];
    if (w->producer == NULL) {
        kafka_settings_t s = wt_settings();
        w->producer = kafka_producer_new(&s, "wtest", err, sizeof err);
        w->batch = kafka_batch_new();
        if (w->producer == NULL || w->batch == NULL) {
            fprintf(stderr, "wt_produce: %s\n", err);
            return -1;
        }
    }
    kafka_header_t h[16];
    if (hcount > 16)
        return -1;
    for (size_t i = 0; i < hcount; i++) {
        h[i].name = hnames[i];
        h[i].value = hvalues[i];
        h[i].value_len = hvalues[i] ? strlen(hvalues[i]) : 0;
    }
    char topic[KAFKA_TOPIC_NAME_MAX];
    wt_topic(w, base, topic, sizeof topic);
    int rc = kafka_producer_send_raw(w->producer, topic, key, key ? strlen(key) : 0, value,
                                     value_len, h, hcount, -1, w->batch, NULL, NULL, err,
                                     sizeof err);
    if (rc != 0)
        fprintf(stderr, "wt_produce: %s\n", err);
    return rc == 0 ? 0 : -1;
}

/* Enqueues `value` (JSON text, or anything: invalid JSON is a test case) with key `key` and
 * the producers' headers: source, entity (from the topic), fetched-at (now, RFC 3339 ms Z),
 * event-id (sha256 of source|entity|key|stamp; stamp = LastUpdateDate for Ploomes when the
 * value has one, else the value's sha256). `extra_name` / `extra_value` (may be NULL) add one
 * more header (e.g. "x-dlq.replayed-from"). Returns 0 or -1. */
static inline int wt_produce_ex(wt_t *w, const char *base, const char *key, const char *value,
                                const char *extra_name, const char *extra_value)
{
    const char *source, *entity;
    wt_source_entity(base, &source, &entity);
    char fetched[40];
    clock_rfc3339(clock_wall_ms(), fetched, sizeof fetched);
    char stamp[HASH_HEX_SIZE] = "";
    hash_sha256_hex(value, strlen(value), stamp);
    char lu[80] = "";
    cJSON *v = cJSON_Parse(value);
    const cJSON *lud = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "LastUpdateDate")
                                         : NULL;
    if (strcmp(source, "ploomes") == 0 && cJSON_IsString(lud))
        snprintf(lu, sizeof lu, "%s", lud->valuestring);
    cJSON_Delete(v);
    char event_id[HASH_HEX_SIZE];
    hash_event_id(source, entity, key ? key : "", lu[0] ? lu : stamp, event_id);
    const char *names[] = {"source", "entity", "fetched-at", "event-id", extra_name};
    const char *values[] = {source, entity, fetched, event_id, extra_value};
    return wt_produce_raw(w, base, key, value, strlen(value), names, values,
                          extra_name ? 5 : 4);
}

static inline int wt_produce(wt_t *w, const char *base, const char *key, const char *value)
{
    return wt_produce_ex(w, base, key, value, NULL, NULL);
}

/* Waits until every record enqueued so far is acknowledged. Returns 0 or -1. */
static inline int wt_flush(wt_t *w)
{
    if (w->producer == NULL)
        return 0;
    char err[512];
    int rc = kafka_batch_wait(w->producer, w->batch, 30000, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "wt_flush: %s\n", err);
    return rc == 0 ? 0 : -1;
}

/* Runs <binary> --idle-exit <idle_s> with wt_env to its end (timeout_ms; then SIGKILL).
 * Returns its exit code (128 + signal when killed), -1 on timeout or spawn failure. */
static inline int wt_run(wt_t *w, const char *binary, int idle_s, int timeout_ms)
{
    char idle[16];
    snprintf(idle, sizeof idle, "%d", idle_s);
    const char *args[] = {"--idle-exit", idle, NULL};
    return pt_run(binary, args, wt_env(w), w->log, timeout_ms);
}

/* Starts <binary> with args (NULL-terminated, may be NULL) and wt_env; returns the pid (stop it
 * with kill + simproc_wait) or -1. */
static inline pid_t wt_spawn(wt_t *w, const char *binary, const char *const *args)
{
    char err[512];
    pid_t pid = simproc_spawn(binary, args, wt_env(w), w->log, err, sizeof err);
    if (pid < 0)
        fprintf(stderr, "wt_spawn: %s\n", err);
    return pid;
}

/* Lines of the log containing `needle` (e.g. "event=record_done"). */
static inline int wt_log_count(const wt_t *w, const char *needle)
{
    return pt_log_count(w->log, needle);
}

typedef struct {
    const wt_t *w;
    const char *needle;
    int n;
} wt_log_wait_t;

static inline bool wt_log_reached(void *ctx)
{
    wt_log_wait_t *lw = ctx;
    return wt_log_count(lw->w, lw->needle) >= lw->n;
}

/* Waits (up to timeout_ms) until `needle` appears on at least n lines. */
static inline bool wt_wait_log(const wt_t *w, const char *needle, int n, int timeout_ms)
{
    wt_log_wait_t lw = {w, needle, n};
    return testenv_wait_until(wt_log_reached, &lw, timeout_ms, 50);
}

/* A store handle on the test's database (for checks and seeding). NULL when it cannot be
 * opened (said on stderr). store_close() it. */
static inline store_t *wt_store_open(const wt_t *w)
{
    char err[512];
    store_t *st = store_open(w->mongo_uri, err, sizeof err);
    if (st == NULL)
        fprintf(stderr, "wt_store_open: %s\n", err);
    return st;
}

/* ---- reading a topic with every header ------------------------------------------------------ */

typedef struct {
    int32_t partition;
    int64_t offset;
    char *key;           /* NULL when absent; NUL-terminated */
    char *value;         /* NULL for a tombstone; NUL-terminated (value_len bytes) */
    size_t value_len;
    size_t header_count;
    char **hnames;       /* in record order */
    char **hvalues;      /* NULL for a null header */
} wt_msg_t;

typedef struct {
    wt_msg_t *msgs;
    size_t n, cap;
} wt_msgs_t;

static inline void wt_msgs_free(wt_msgs_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        wt_msg_t *x = &m->msgs[i];
        free(x->key);
        free(x->value);
        for (size_t h = 0; h < x->header_count; h++) {
            free(x->hnames[h]);
            free(x->hvalues[h]);
        }
        free(x->hnames);
        free(x->hvalues);
    }
    free(m->msgs);
    memset(m, 0, sizeof *m);
}

static inline void wt_collect(wt_msgs_t *out, rd_kafka_message_t *m)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 64;
        out->msgs = realloc(out->msgs, out->cap * sizeof *out->msgs);
        if (out->msgs == NULL)
            exit(1);
    }
    wt_msg_t *x = &out->msgs[out->n++];
    memset(x, 0, sizeof *x);
    x->partition = m->partition;
    x->offset = m->offset;
    x->key = m->key ? pt_dupn(m->key, m->key_len) : NULL;
    x->value = m->payload ? pt_dupn(m->payload, m->len) : NULL;
    x->value_len = m->len;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR || hdrs == NULL)
        return;
    size_t cnt = rd_kafka_header_cnt(hdrs);
    x->hnames = calloc(cnt + 1, sizeof *x->hnames);
    x->hvalues = calloc(cnt + 1, sizeof *x->hvalues);
    const char *name;
    const void *val;
    size_t len;
    for (size_t i = 0; i < cnt && rd_kafka_header_get_all(hdrs, i, &name, &val, &len) == 0; i++) {
        x->hnames[i] = pt_dupn(name, strlen(name));
        x->hvalues[i] = val ? pt_dupn(val, len) : NULL;
        x->header_count = i + 1;
    }
}

/* Reads every record of <prefix><base> (all partitions, from the low to the high watermark
 * as they are when called) into *out, ordered by partition then offset. Returns 0, or -1 on a
 * Kafka error or when timeout_ms passed first. A topic that does not exist reads as empty
 * when `missing_ok`. */
static inline int wt_read_topic_ex(const wt_t *w, const char *base, wt_msgs_t *out,
                                   int timeout_ms, bool missing_ok)
{
    memset(out, 0, sizeof *out);
    char topic[KAFKA_TOPIC_NAME_MAX], err[512];
    wt_topic(w, base, topic, sizeof topic);
    kafka_settings_t s = wt_settings();
    int np = kafka_topic_partition_count(&s, topic, 30000, err, sizeof err);
    if (np <= 0) {
        if (missing_ok)
            return 0;
        fprintf(stderr, "wt_read_topic %s: %s\n", topic, err);
        return -1;
    }
    rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err) : NULL;
    if (rk == NULL) {
        fprintf(stderr, "wt_read_topic: %s\n", err);
        return -1;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t deadline = testenv_now_ms() + timeout_ms;
    int rc = 0;
    for (int32_t p = 0; p < np && rc == 0; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 30000) != 0) {
            rc = -1;
            break;
        }
        if (hi <= lo)
            continue;
        if (rd_kafka_consume_start(rkt, p, lo) != 0) {
            rc = -1;
            break;
        }
        int64_t next = lo;
        while (next < hi) {
            if (testenv_now_ms() > deadline) {
                fprintf(stderr, "wt_read_topic %s [%d]: timeout at %lld of %lld\n", topic, (int)p,
                        (long long)next, (long long)hi);
                rc = -1;
                break;
            }
            rd_kafka_message_t *m = rd_kafka_consume(rkt, p, 500);
            if (m == NULL)
                continue;
            if (m->err == 0) {
                wt_collect(out, m);
                next = m->offset + 1;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(rkt, p);
    }
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    if (rc != 0)
        wt_msgs_free(out);
    return rc;
}

static inline int wt_read_topic(const wt_t *w, const char *base, wt_msgs_t *out, int timeout_ms)
{
    return wt_read_topic_ex(w, base, out, timeout_ms, false);
}

/* Records of <prefix><base> right now (0 when the topic does not exist), -1 on error. */
static inline long wt_topic_count(const wt_t *w, const char *base)
{
    wt_msgs_t m;
    if (wt_read_topic_ex(w, base, &m, 30000, true) != 0)
        return -1;
    long n = (long)m.n;
    wt_msgs_free(&m);
    return n;
}

/* Last header named `name` of a message, or NULL (absent or null). */
static inline const char *wt_header(const wt_msg_t *m, const char *name)
{
    for (size_t i = m->header_count; i-- > 0;)
        if (strcmp(m->hnames[i], name) == 0)
            return m->hvalues[i];
    return NULL;
}

/* How many headers of `m` are named `name`. */
static inline int wt_header_count(const wt_msg_t *m, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < m->header_count; i++)
        n += strcmp(m->hnames[i], name) == 0;
    return n;
}

/* The dead-letter headers of kafka_dlq.h, in their order. */
static const char *const WT_DLQ_HEADERS[] = {
    KAFKA_DLQ_H_TOPIC,        KAFKA_DLQ_H_PARTITION,    KAFKA_DLQ_H_OFFSET,
    KAFKA_DLQ_H_CONNECTOR,    KAFKA_DLQ_H_TASK,         KAFKA_DLQ_H_STAGE,
    KAFKA_DLQ_H_CLASS,        KAFKA_DLQ_H_EXC_CLASS,    KAFKA_DLQ_H_EXC_MESSAGE,
    KAFKA_DLQ_H_ATTEMPTS,     KAFKA_DLQ_H_HTTP_STATUS,  KAFKA_DLQ_H_RESPONSE,
    KAFKA_DLQ_H_FIRST_FAILURE, KAFKA_DLQ_H_LAST_FAILURE};

/* Checks a dead letter: each of the 14 headers present exactly once and non-null, the
 * original topic <prefix><base>, stage TASK_PUT, exception class `exc_class` (NULL = any),
 * the original source/entity/fetched-at/event-id headers kept, failure times RFC 3339.
 * Returns NULL when fine, else a static description. */
static inline const char *wt_check_letter(const wt_msg_t *m, const wt_t *w, const char *base,
                                          const char *exc_class)
{
    static char why[512];
    for (size_t i = 0; i < sizeof WT_DLQ_HEADERS / sizeof WT_DLQ_HEADERS[0]; i++) {
        if (wt_header_count(m, WT_DLQ_HEADERS[i]) != 1 || wt_header(m, WT_DLQ_HEADERS[i]) == NULL) {
            snprintf(why, sizeof why, "header %s appears %d times (or null)", WT_DLQ_HEADERS[i],
                     wt_header_count(m, WT_DLQ_HEADERS[i]));
            return why;
        }
    }
    static const char *const orig[] = {"source", "entity", "fetched-at", "event-id"};
    for (size_t i = 0; i < 4; i++)
        if (wt_header(m, orig[i]) == NULL) {
            snprintf(why, sizeof why, "original header %s missing", orig[i]);
            return why;
        }
    char topic[KAFKA_TOPIC_NAME_MAX];
    wt_topic(w, base, topic, sizeof topic);
    if (strcmp(wt_header(m, KAFKA_DLQ_H_TOPIC), topic) != 0) {
        snprintf(why, sizeof why, "topic header %s, expected %s", wt_header(m, KAFKA_DLQ_H_TOPIC),
                 topic);
        return why;
    }
    if (strcmp(wt_header(m, KAFKA_DLQ_H_STAGE), "TASK_PUT") != 0)
        return "stage is not TASK_PUT";
    if (exc_class && strcmp(wt_header(m, KAFKA_DLQ_H_EXC_CLASS), exc_class) != 0) {
        snprintf(why, sizeof why, "exception class %s, expected %s",
                 wt_header(m, KAFKA_DLQ_H_EXC_CLASS), exc_class);
        return why;
    }
    int64_t t;
    if (config_parse_rfc3339(wt_header(m, KAFKA_DLQ_H_FIRST_FAILURE), &t) != 0 ||
        config_parse_rfc3339(wt_header(m, KAFKA_DLQ_H_LAST_FAILURE), &t) != 0)
        return "failure times are not RFC 3339";
    return NULL;
}

/* The letter (in `m`) whose original key is `key`, or NULL. */
static inline const wt_msg_t *wt_find_key(const wt_msgs_t *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->msgs[i].key && strcmp(m->msgs[i].key, key) == 0)
            return &m->msgs[i];
    return NULL;
}

/* event=record_done lines (one per finished record, SPEC §4 logs) of key `key` (NULL = any)
 * with outcome `outcome` ("delivered", "skipped", "dedup_hit", "dead_lettered", "released",
 * "auth"; NULL = any) and reason `reason` (NULL = any). The runtime writes
 * "event=record_done worker=<w> topic=<t> partition=<p> offset=<o> key=<k> outcome=<o>
 *  reason=<r> ..." (values quoted by log_ only when they hold spaces or quotes). */
static inline int wt_count_done(const wt_t *w, const char *key, const char *outcome,
                                const char *reason)
{
    FILE *f = fopen(w->log, "r");
    if (f == NULL)
        return 0;
    char k[200], o[64], r[96];
    snprintf(k, sizeof k, " key=%s ", key ? key : "");
    snprintf(o, sizeof o, " outcome=%s ", outcome ? outcome : "");
    snprintf(r, sizeof r, " reason=%s ", reason ? reason : "");
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "event=record_done ") && (!key || strstr(line, k)) &&
            (!outcome || strstr(line, o)) && (!reason || strstr(line, r)))
            n++;
    fclose(f);
    return n;
}

typedef struct {
    const wt_t *w;
    int n;
} wt_done_wait_t;

static inline bool wt_done_reached(void *ctx)
{
    wt_done_wait_t *d = ctx;
    return wt_count_done(d->w, NULL, NULL, NULL) >= d->n;
}

/* Waits (up to timeout_ms) until at least n event=record_done lines are in the log. */
static inline bool wt_wait_done(const wt_t *w, int n, int timeout_ms)
{
    wt_done_wait_t d = {w, n};
    return testenv_wait_until(wt_done_reached, &d, timeout_ms, 50);
}

/* ---- handler engineers: add functions below this line ---------------------------------------- */

/* One row of a worker's outcome table: the record's key and value, the record_done outcome and
 * reason expected for it (reason NULL = any) and the dead-letter class (NULL = not
 * dead-lettered).
 * Tables of bigger rows put it first and pass their row size as `stride`. */
typedef struct {
    const char *key;
    const char *value;   /* the record's value; NULL = the previous row's value again */
    const char *outcome;
    const char *reason;
    const char *dlq;
} wt_expect_t;

static inline const wt_expect_t *wt_expect_at(const void *rows, size_t stride, size_t i)
{
    return (const wt_expect_t *)((const char *)rows + i * stride);
}

/* Produces the rows of a table (in order, the producers' headers) to <prefix><base> and waits
 * for the acknowledgements. Returns 0 or -1. */
static inline int wt_produce_rows(wt_t *w, const char *base, const void *rows, size_t n,
                                  size_t stride)
{
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const wt_expect_t *r = wt_expect_at(rows, stride, i);
        const char *v = r->value ? r->value : prev;
        if (v == NULL || wt_produce(w, base, r->key, v) != 0)
            return -1;
        prev = v;
    }
    return wt_flush(w);
}

/* Checks a run against its table: exactly n record_done lines; for each row, as many lines
 * with its key, outcome and reason as the table has rows of that key and outcome; in
 * <prefix>pipeline.dlq exactly the rows with a class, each letter passing wt_check_letter()
 * for topic <prefix><base> with that class. Returns NULL when all holds, else a static
 * description. */
static inline const char *wt_check_outcomes(const wt_t *w, const char *base, const void *rows,
                                            size_t n, size_t stride)
{
    static char why[768];
    int total = wt_count_done(w, NULL, NULL, NULL);
    if (total != (int)n) {
        snprintf(why, sizeof why, "%d record_done lines, expected %zu", total, n);
        return why;
    }
    for (size_t i = 0; i < n; i++) {
        const wt_expect_t *r = wt_expect_at(rows, stride, i);
        int want = 0;
        for (size_t k = 0; k < n; k++) {
            const wt_expect_t *o = wt_expect_at(rows, stride, k);
            want += strcmp(o->key, r->key) == 0 && strcmp(o->outcome, r->outcome) == 0;
        }
        int got = wt_count_done(w, r->key, r->outcome, r->reason);
        if (got != want) {
            snprintf(why, sizeof why,
                     "key %s: %d record_done lines with outcome=%s reason=%s, expected %d", r->key,
                     got, r->outcome, r->reason ? r->reason : "*", want);
            return why;
        }
    }
    wt_msgs_t dlq;
    if (wt_read_topic_ex(w, "pipeline.dlq", &dlq, 30000, true) != 0)
        return "the dead-letter topic could not be read";
    size_t letters = 0;
    const char *bad = NULL;
    for (size_t i = 0; i < n && bad == NULL; i++) {
        const wt_expect_t *r = wt_expect_at(rows, stride, i);
        if (r->dlq == NULL)
            continue;
        letters++;
        const wt_msg_t *m = wt_find_key(&dlq, r->key);
        const char *lw = m ? wt_check_letter(m, w, base, r->dlq) : "no dead letter";
        if (lw != NULL) {
            snprintf(why, sizeof why, "key %s: %s", r->key, lw);
            bad = why;
        }
    }
    if (bad == NULL && dlq.n != letters) {
        snprintf(why, sizeof why, "%zu dead letters, expected %zu", dlq.n, letters);
        bad = why;
    }
    wt_msgs_free(&dlq);
    return bad;
}

/* The whole table run: wt_produce_rows(), then <binary> --idle-exit 3 to its end (exit 0
 * expected), then wt_check_outcomes(). Returns NULL when all holds, else a static description
 * (the log is the test's to dump). */
static inline const char *wt_run_table(wt_t *w, const char *binary, const char *base,
                                       const void *rows, size_t n, size_t stride)
{
    static char why[128];
    if (wt_produce_rows(w, base, rows, n, stride) != 0)
        return "the table's records could not be produced";
    int rc = wt_run(w, binary, 3, 120000);
    if (rc != 0) {
        snprintf(why, sizeof why, "%s exited with %d", binary, rc);
        return why;
    }
    return wt_check_outcomes(w, base, rows, n, stride);
}

/* Commits offset `off` of partition p of `topic` for the consumer group <prefix><worker>, as if
 * that worker had finished everything before it (pipeline-status tests: a known lag). Returns 0
 * or -1 (said on stderr). */
static inline int wt_commit_group(const wt_t *w, const char *worker, const char *topic, int32_t p,
                                  int64_t off)
{
    char group[256], err[512];
    snprintf(group, sizeof group, "%s%s", w->prefix, worker);
    kafka_settings_t s = wt_settings();
    rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
    if (conf == NULL || kafka_conf_set(conf, "group.id", group, err, sizeof err) != 0) {
        fprintf(stderr, "wt_commit_group: %s\n", err);
        if (conf)
            rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == NULL) {
        fprintf(stderr, "wt_commit_group: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, p)->offset = off;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, tp, 0);
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_destroy(rk);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "wt_commit_group: %s\n", rd_kafka_err2str(e));
    return e == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

/* ---- the usual fixture: both simulators, both APIs ------------------------------------------ */

/* The simulators' options of most worker tests: no rate limit. */
#define WT_NO_RATE_LIMIT "{\"rate_limit_per_min\":0}"
/* The windows of the worker tests that set them (wt_init_apis): clients created before
 * WT_SYNC_SINCE and tickets before WT_TICKETS_SINCE are out of scope. */
#define WT_SYNC_SINCE "2024-02-24T00:00:00-03:00"
#define WT_TICKETS_SINCE "2026-01-01T00:00:00Z"

/* The two simulators a group of tests shares (both NULL before wt_sims_start). */
typedef struct {
    simproc *ploomes;
    simproc *milvus;
} wt_sims_t;

/* Starts ploomes-sim (credential ploomes_key) and milvus-sim (milvus_token), each with its
 * options (JSON posted to /_admin/faults, e.g. WT_NO_RATE_LIMIT; NULL = none). Returns 0, or -1
 * with the reason on stderr and nothing left running (s->ploomes and s->milvus NULL). */
static inline int wt_sims_start(wt_sims_t *s, const char *ploomes_key, const char *ploomes_opts,
                                const char *milvus_token, const char *milvus_opts)
{
    char err[256];
    s->ploomes = simproc_start_sim("ploomes-sim", ploomes_key, ploomes_opts, err, sizeof err);
    s->milvus = simproc_start_sim("milvus-sim", milvus_token, milvus_opts, err, sizeof err);
    if (s->ploomes && s->milvus)
        return 0;
    if (s->ploomes)
        simproc_stop(s->ploomes);
    if (s->milvus)
        simproc_stop(s->milvus);
    s->ploomes = s->milvus = NULL;
    return -1;
}

/* The end of a group started with wt_sims_start: stops both simulators and releases the MongoDB
 * driver (store_global_cleanup: no store_t may be used afterwards). Returns 0, or -1 when a
 * simulator did not stop cleanly. */
static inline int wt_sims_stop(wt_sims_t *s)
{
    int rc = simproc_stop(s->ploomes) | simproc_stop(s->milvus);
    s->ploomes = s->milvus = NULL;
    store_global_cleanup();
    return rc == 0 ? 0 : -1;
}

/* wt_init(w, tag), then the two APIs: PLOOMES_BASE_URL=ploomes_url, PLOOMES_USER_KEY=ploomes_key,
 * MILVUS_BASE_URL=milvus_url, MILVUS_TOKEN=milvus_token (a NULL value leaves that variable
 * unset), SYNC_SINCE=WT_SYNC_SINCE and TICKETS_SINCE=WT_TICKETS_SINCE; then the topics
 * (wt_ensure_topics). The test's own settings go on top with wt_set. Returns 0, or -1 when the
 * topics could not be created (said on stderr; w is still the caller's to wt_free). */
static inline int wt_init_apis(wt_t *w, const char *tag, const char *ploomes_url,
                               const char *ploomes_key, const char *milvus_url,
                               const char *milvus_token)
{
    wt_init(w, tag);
    wt_set(w, "PLOOMES_BASE_URL", ploomes_url);
    wt_set(w, "PLOOMES_USER_KEY", ploomes_key);
    wt_set(w, "MILVUS_BASE_URL", milvus_url);
    wt_set(w, "MILVUS_TOKEN", milvus_token);
    wt_set(w, "SYNC_SINCE", WT_SYNC_SINCE);
    wt_set(w, "TICKETS_SINCE", WT_TICKETS_SINCE);
    return wt_ensure_topics(w);
}

/* ---- counting at a simulator (its GET /_admin/state, simproc_state) ------------------------ */

/* The objects of state[array] whose string member `field` is `value` (e.g. "clientes",
 * "cnpj_cpf", a document: milvus-sim's clients of that document; "Contacts", "Register":
 * ploomes-sim's contacts). 0 when state has no such array. */
static inline int wt_sim_count(const cJSON *state, const char *array, const char *field,
                               const char *value)
{
    int n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(state, array))
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(it, field);
        n += cJSON_IsString(d) && strcmp(d->valuestring, value) == 0;
    }
    return n;
}

/* milvus-sim's tickets ("chamados") whose chamado_descricao starts with the marker of Ploomes
 * record `id` of `entity` ("task", "interaction"): "[ploomes:<entity>:<id>]", then the end or a
 * newline. *first (when first is not NULL and there is one) gets the first, borrowed from
 * state. */
static inline int wt_sim_tickets(const cJSON *state, const char *entity, int64_t id,
                                 const cJSON **first)
{
    char marker[64];
    snprintf(marker, sizeof marker, "[ploomes:%s:%lld]", entity, (long long)id);
    size_t ml = strlen(marker);
    int n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(state, "chamados"))
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(t, "chamado_descricao");
        if (!cJSON_IsString(d) || strncmp(d->valuestring, marker, ml) != 0 ||
            (d->valuestring[ml] != '\0' && d->valuestring[ml] != '\n'))
            continue;
        if (n++ == 0 && first)
            *first = t;
    }
    return n;
}

#endif
