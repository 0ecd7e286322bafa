/* Integration tests for kafka_ against the real broker (KAFKA_BOOTSTRAP_SERVERS):
 * topic creation (DLQ retention), the idempotent producer and its delivery tracker, fatal
 * errors, the at-least-once consumer (gaps after a clean close and after SIGKILL, pause/resume,
 * a rebalance with a second member joining mid-stream) and the dead-letter writer's headers;
 * issue 8's consumer hygiene (a pause does not outlive a rebalance, a released record is
 * fetched again, an evicted member stores nothing) and record sizes (KAFKA_MAX_MESSAGE_BYTES:
 * 2 MiB records, the exact limit, its dead letter, raising an existing topic).
 * Every test uses its own topic prefix and group ids (testenv_unique). */
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kafka.h"
#include "kafka_consumer.h"
#include "kafka_dlq.h"
#include "log.h"
#include "testenv.h"

#define PARTS 3

static kafka_settings_t settings(void)
{
    kafka_settings_t s = {.bootstrap_servers = testenv_require("KAFKA_BOOTSTRAP_SERVERS")};
    return s;
}

static const char *const fast_names[] = {"session.timeout.ms", "heartbeat.interval.ms",
                                         "topic.metadata.refresh.interval.ms"};
static const char *const fast_values[] = {"6000", "500", "2000"};

/* A consumer with the fast group settings plus `extra_count` more properties (e.g. a small
 * max.poll.interval.ms). */
static kafka_consumer_t *consumer_new_extra(const char *group, const char *topic,
                                            int revoke_wait_ms, kafka_revoke_cb on_revoke,
                                            void *opaque, const char *const *extra_names,
                                            const char *const *extra_values, size_t extra_count)
{
    kafka_settings_t s = settings();
    const char *topics[] = {topic};
    const char *names[8], *values[8];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++, n++) {
        names[n] = fast_names[i];
        values[n] = fast_values[i];
    }
    for (size_t i = 0; i < extra_count && n < 8; i++, n++) {
        names[n] = extra_names[i];
        values[n] = extra_values[i];
    }
    kafka_consumer_opts_t o = {.settings = &s,
                               .group_id = group,
                               .client_id = "it_kafka",
                               .topics = topics,
                               .topic_count = 1,
                               .extra_names = names,
                               .extra_values = values,
                               .extra_count = n,
                               .revoke_wait_ms = revoke_wait_ms,
                               .on_revoke = on_revoke,
                               .opaque = opaque};
    char err[512] = "";
    kafka_consumer_t *c = kafka_consumer_new(&o, err, sizeof err);
    if (!c)
        fail_msg("kafka_consumer_new: %s", err);
    return c;
}

static kafka_consumer_t *consumer_new(const char *group, const char *topic, int revoke_wait_ms,
                                      kafka_revoke_cb on_revoke, void *opaque)
{
    return consumer_new_extra(group, topic, revoke_wait_ms, on_revoke, opaque, NULL, NULL, 0);
}

/* Creates the five pipeline topics under a fresh prefix; returns the contacts topic name. */
static void fresh_topics(char *prefix, size_t psize, char *topic, size_t tsize, int partitions)
{
    testenv_unique(prefix, psize, "it-kafka-");
    size_t n = strlen(prefix);
    if (n + 1 < psize) {
        prefix[n] = '.';
        prefix[n + 1] = '\0';
    }
    kafka_settings_t s = settings();
    char err[512] = "";
    int rc = kafka_topics_ensure(&s, prefix, partitions, NULL, 0, 30000, err, sizeof err);
    if (rc != 0)
        fail_msg("kafka_topics_ensure: %s", err);
    assert_int_equal(kafka_topic_name(topic, tsize, prefix, KAFKA_TOPIC_PLOOMES_CONTACTS), 0);
}

static void delivered_to(void *opaque, const kafka_delivery_t *d)
{
    int32_t *slot = opaque;
    assert_int_equal(d->err, RD_KAFKA_RESP_ERR_NO_ERROR);
    *slot = d->partition;
}

/* Produces records value "i" key "i" for i in [from, to) and waits for every ack. part_of (may
 * be NULL) gets each record's partition, part_of[i] for record i. */
static void produce_where(const char *topic, int from, int to, int32_t *part_of)
{
    kafka_settings_t s = settings();
    char err[512] = "";
    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    if (!p)
        fail_msg("kafka_producer_new: %s", err);
    kafka_batch_t *b = kafka_batch_new();
    kafka_header_t h[] = {{"source", "ploomes", 7}, {"entity", "contact", 7}};
    for (int i = from; i < to; i++) {
        char num[32];
        snprintf(num, sizeof num, "%d", i);
        int32_t *slot = part_of ? &part_of[i] : NULL;
        if (slot)
            *slot = -1;
        if (kafka_producer_send_raw(p, topic, num, strlen(num), num, strlen(num), h, 2, -1, b,
                                    slot ? delivered_to : NULL, slot, err, sizeof err) != 0)
            fail_msg("send %d: %s", i, err);
    }
    int rc = kafka_batch_wait(p, b, 30000, err, sizeof err);
    if (rc != 0)
        fail_msg("batch wait: %s", err);
    assert_int_equal(kafka_batch_acked(b), (size_t)(to - from));
    assert_int_equal(kafka_batch_failed(b), 0);
    kafka_batch_free(b);
    assert_int_equal(kafka_producer_close(p, 10000, err, sizeof err), 0);
}

static void produce_range(const char *topic, int from, int to)
{
    produce_where(topic, from, to, NULL);
}

static int record_number(const kafka_record_t *r)
{
    assert_non_null(r->value);
    char *end = NULL;
    errno = 0;
    long v = strtol(r->value, &end, 10);
    assert_true(errno == 0 && end && *end == '\0');
    return (int)v;
}

/* ---- polling helpers ----------------------------------------------------------------------- */

typedef struct collect {
    kafka_consumer_t *c;
    kafka_record_t **recs; /* kept when keep != 0, else finished at once */
    size_t count, cap;
    size_t target;
    bool keep;
    int *seen; /* per record number, may be NULL */
    int seen_size;
} collect_t;

static void collect_one(collect_t *k, kafka_record_t *r)
{
    if (k->seen) {
        int v = record_number(r);
        assert_true(v >= 0 && v < k->seen_size);
        k->seen[v]++;
    }
    if (k->keep) {
        if (k->count == k->cap) {
            k->cap = k->cap ? k->cap * 2 : 256;
            k->recs = realloc(k->recs, k->cap * sizeof *k->recs);
            assert_non_null(k->recs);
        }
        k->recs[k->count] = r;
    } else {
        kafka_consumer_done(k->c, r);
    }
    k->count++;
}

static bool collect_until_target(void *ctx)
{
    collect_t *k = ctx;
    kafka_record_t *r = kafka_consumer_poll(k->c, 100);
    if (r)
        collect_one(k, r);
    return k->count >= k->target;
}

/* Polls `c` until it hands out one record, and returns it (the caller finishes it). */
static kafka_record_t *next_record(kafka_consumer_t *c)
{
    collect_t k = {.c = c, .keep = true, .target = 1};
    assert_true(testenv_wait_until(collect_until_target, &k, 60000, 1));
    kafka_record_t *r = k.recs[0];
    free(k.recs);
    return r;
}

static bool got_any(void *ctx)
{
    collect_t *k = ctx;
    kafka_record_t *r = kafka_consumer_poll(k->c, 100);
    if (r)
        collect_one(k, r);
    return k->count > 0;
}

static bool is_assigned(void *ctx)
{
    collect_t *k = ctx;
    kafka_record_t *r = kafka_consumer_poll(k->c, 100);
    if (r)
        collect_one(k, r);
    return kafka_consumer_assigned_count(k->c) > 0;
}

/* ---- topics ------------------------------------------------------------------------------- */

typedef struct ensure_arg {
    const char *prefix;
    int rc;
    char err[512];
} ensure_arg_t;

static void *ensure_thread(void *p)
{
    ensure_arg_t *a = p;
    kafka_settings_t s = settings();
    a->rc = kafka_topics_ensure(&s, a->prefix, 2, NULL, 0, 30000, a->err, sizeof a->err);
    return NULL;
}

/* Two concurrent creators of the same five topics: both succeed (TOPIC_ALREADY_EXISTS is
 * tolerated), the DLQ has unlimited retention, the others the requested partitions. */
static void test_topics_ensure_creates_dlq_forever(void **state)
{
    (void)state;
    char unique[80], prefix[96];
    testenv_unique(unique, sizeof unique, "it-kafka-topics-");
    snprintf(prefix, sizeof prefix, "%s.", unique);
    ensure_arg_t a = {.prefix = prefix}, b = {.prefix = prefix};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, ensure_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, ensure_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.rc != 0 || b.rc != 0)
        fail_msg("ensure: %d %s / %d %s", a.rc, a.err, b.rc, b.err);

    kafka_settings_t s = settings();
    char err[512] = "", topic[KAFKA_TOPIC_NAME_MAX], value[64];
    for (int id = 0; id < KAFKA_TOPIC_COUNT; id++) {
        assert_int_equal(kafka_topic_name(topic, sizeof topic, prefix, (kafka_topic_id_t)id), 0);
        int n = kafka_topic_partition_count(&s, topic, 10000, err, sizeof err);
        if (n != 2)
            fail_msg("%s: %d partitions (%s)", topic, n, err);
    }
    assert_int_equal(kafka_topic_name(topic, sizeof topic, prefix, KAFKA_TOPIC_DLQ), 0);
    int rc = kafka_topic_config_get(&s, topic, "retention.ms", value, sizeof value, 10000, err,
                                    sizeof err);
    if (rc != 0)
        fail_msg("describe %s: %s", topic, err);
    assert_string_equal(value, "-1");
    assert_int_equal(kafka_topic_config_get(&s, topic, "retention.bytes", value, sizeof value,
                                            10000, err, sizeof err),
                     0);
    assert_string_equal(value, "-1");
    /* A non-DLQ topic keeps the broker default (finite). */
    assert_int_equal(kafka_topic_name(topic, sizeof topic, prefix, KAFKA_TOPIC_PLOOMES_TASKS), 0);
    assert_int_equal(kafka_topic_config_get(&s, topic, "retention.ms", value, sizeof value, 10000,
                                            err, sizeof err),
                     0);
    assert_string_not_equal(value, "-1");

    /* Again, everything exists: a no-op success. A subset works too. */
    kafka_topic_id_t ids[] = {KAFKA_TOPIC_DLQ};
    assert_int_equal(kafka_topics_ensure(&s, prefix, 2, ids, 1, 30000, err, sizeof err), 0);
    /* Unreachable cluster: a clear error, no hang. */
    kafka_settings_t bad = {.bootstrap_servers = "127.0.0.1:1"};
    rc = kafka_topics_ensure(&bad, prefix, 2, NULL, 0, 2000, err, sizeof err);
    assert_int_equal(rc, KAFKA_ERR_BROKER);
    assert_non_null(strstr(err, "metadata"));
}

/* ---- producer ------------------------------------------------------------------------------ */

typedef struct cb_count {
    int ok, failed;
} cb_count_t;

static void count_cb(void *opaque, const kafka_delivery_t *d)
{
    cb_count_t *c = opaque;
    if (d->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        assert_true(d->offset >= 0);
        c->ok++;
    } else {
        c->failed++;
    }
}

static void test_producer_batch_and_flush(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, PARTS);
    kafka_settings_t s = settings();
    char err[512] = "";
    /* A tiny local queue forces ERR__QUEUE_FULL: send() must poll and retry. */
    const char *names[] = {"queue.buffering.max.messages"};
    const char *values[] = {"10"};
    s.names = names;
    s.values = values;
    s.count = 1;
    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    assert_non_null(p);
    kafka_batch_t *b = kafka_batch_new();
    cb_count_t cc = {0};
    for (int i = 0; i < 300; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        kafka_header_t h[] = {{"entity", "contact", 7}};
        int rc = kafka_producer_send_raw(p, topic, num, strlen(num), num, strlen(num), h, 1, -1,
                                         b, count_cb, &cc, err, sizeof err);
        if (rc != 0)
            fail_msg("send %d: %s", i, err);
    }
    assert_int_equal(kafka_batch_sent(b), 300);
    assert_int_equal(kafka_batch_wait(p, b, 30000, err, sizeof err), 0);
    assert_int_equal(kafka_batch_acked(b), 300);
    assert_int_equal(kafka_batch_pending(b), 0);
    assert_int_equal(cc.ok, 300);
    assert_int_equal(kafka_batch_reset(b), 0);

    /* A second page, then flush: everything acknowledged, counters agree. */
    for (int i = 300; i < 350; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", i);
        assert_int_equal(kafka_producer_send(p, topic, num, num, NULL, NULL, 0, b, err, sizeof err),
                         0);
    }
    assert_int_equal(kafka_producer_flush(p, 30000, err, sizeof err), 0);
    assert_int_equal(kafka_batch_acked(b), 50);
    assert_int_equal(kafka_batch_wait(p, b, 0, err, sizeof err), 0);
    assert_int_equal(kafka_producer_outq_len(p), 0);
    assert_int_equal(kafka_producer_failed_total(p), 0);

    /* A batch freed with messages pending is freed by the last delivery report (ASan checks). */
    kafka_batch_t *orphan = kafka_batch_new();
    assert_int_equal(kafka_producer_send(p, topic, "k", "v", NULL, NULL, 0, orphan, err, sizeof err),
                     0);
    kafka_batch_free(orphan);
    kafka_batch_free(b);
    assert_int_equal(kafka_producer_close(p, 10000, err, sizeof err), 0);

    /* Messages that cannot be delivered are reported failed at close, not lost silently. */
    kafka_settings_t bad = {.bootstrap_servers = "127.0.0.1:1"};
    p = kafka_producer_new(&bad, "it_kafka", err, sizeof err);
    assert_non_null(p);
    b = kafka_batch_new();
    assert_int_equal(kafka_producer_send(p, "nowhere", "k", "v", NULL, NULL, 0, b, err, sizeof err),
                     0);
    assert_int_equal(kafka_batch_wait(p, b, 300, err, sizeof err), KAFKA_ERR_TIMEOUT);
    assert_int_equal(kafka_producer_close(p, 300, err, sizeof err), KAFKA_ERR_DELIVERY);
    assert_int_equal(kafka_batch_failed(b), 1);
    assert_int_equal(kafka_batch_pending(b), 0);
    kafka_batch_free(b);
}

static bool stop_now(void) { return true; }

/* kafka_producer_warm: learns existing topics (then sends to them are delivered), names the
 * topic that does not exist, refuses more topics than it can hold. How much sooner a warmed
 * topic's first records leave is measured by scripts/bench.sh (scenario A's first ticket). */
static void test_producer_warm(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], tasks[KAFKA_TOPIC_NAME_MAX];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, PARTS);
    assert_int_equal(kafka_topic_name(tasks, sizeof tasks, prefix, KAFKA_TOPIC_PLOOMES_TASKS), 0);
    kafka_settings_t s = settings();
    char err[512] = "";
    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    assert_non_null(p);
    const char *both[] = {topic, tasks};
    if (kafka_producer_warm(p, both, 2, 30000, NULL, err, sizeof err) != 0)
        fail_msg("kafka_producer_warm: %s", err);
    /* warming again reuses the handles: still fine, and no handle leaks (ASan) */
    assert_int_equal(kafka_producer_warm(p, both, 2, 30000, NULL, err, sizeof err), 0);
    /* by pipeline topic id under the prefix: the same topics, the same handles */
    const kafka_topic_id_t ids[] = {KAFKA_TOPIC_PLOOMES_CONTACTS, KAFKA_TOPIC_PLOOMES_TASKS};
    assert_int_equal(kafka_producer_warm_ids(p, prefix, ids, 2, 30000, NULL, err, sizeof err), 0);

    char missing[KAFKA_TOPIC_NAME_MAX + 16];
    snprintf(missing, sizeof missing, "%snot-there", prefix);
    const char *gone[] = {missing};
    assert_int_equal(kafka_producer_warm(p, gone, 1, 1000, NULL, err, sizeof err), KAFKA_ERR_TIMEOUT);
    assert_non_null(strstr(err, missing));
    /* a stop ends the wait for a topic that does not come (else 60 s and "within" in err) */
    assert_int_equal(kafka_producer_warm(p, gone, 1, 60000, stop_now, err, sizeof err),
                     KAFKA_ERR_TIMEOUT);
    assert_non_null(strstr(err, "before the stop"));

    const char *many[KAFKA_PRODUCER_WARM_MAX + 1];
    for (size_t i = 0; i < KAFKA_PRODUCER_WARM_MAX + 1; i++)
        many[i] = topic;
    assert_int_equal(kafka_producer_warm(p, many, KAFKA_PRODUCER_WARM_MAX + 1, 1000, NULL, err,
                                         sizeof err),
                     KAFKA_ERR_INVALID);

    kafka_batch_t *b = kafka_batch_new();
    assert_non_null(b);
    assert_int_equal(kafka_producer_send(p, topic, "k", "v", NULL, NULL, 0, b, err, sizeof err), 0);
    assert_int_equal(kafka_producer_send(p, tasks, "k", "v", NULL, NULL, 0, b, err, sizeof err), 0);
    assert_int_equal(kafka_batch_wait(p, b, 30000, err, sizeof err), 0);
    assert_int_equal(kafka_batch_acked(b), 2);
    kafka_batch_free(b);
    assert_int_equal(kafka_producer_close(p, 10000, err, sizeof err), 0);
}

/* A worker's consumer runs with the pipeline's heartbeat (kafka_conf_consumer_defaults), not
 * librdkafka's 3 s: what kafka_consumer_new() built, read back from librdkafka. */
static void test_consumer_heartbeat(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[128];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, PARTS);
    snprintf(group, sizeof group, "%sheartbeat", prefix);
    kafka_settings_t s = settings();
    const char *topics[] = {topic};
    /* no extra properties: the tests' own fast group settings would override the default */
    kafka_consumer_opts_t o = {.settings = &s, .group_id = group, .client_id = "it_kafka",
                               .topics = topics, .topic_count = 1, .revoke_wait_ms = 1000};
    char err[512] = "";
    kafka_consumer_t *c = kafka_consumer_new(&o, err, sizeof err);
    if (!c)
        fail_msg("kafka_consumer_new: %s", err);
    char buf[64];
    size_t size = sizeof buf;
    assert_int_equal(rd_kafka_conf_get((rd_kafka_conf_t *)rd_kafka_conf(kafka_consumer_handle(c)),
                                       "heartbeat.interval.ms", buf, &size),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(strtoll(buf, NULL, 10), KAFKA_HEARTBEAT_INTERVAL_MS);
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
}

static void test_producer_fatal_error_surfaces(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 1);
    kafka_settings_t s = settings();
    char err[512] = "";
    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    assert_non_null(p);
    kafka_batch_t *b = kafka_batch_new();
    assert_int_equal(kafka_producer_send(p, topic, "1", "1", NULL, NULL, 0, b, err, sizeof err), 0);
    assert_int_equal(kafka_batch_wait(p, b, 30000, err, sizeof err), 0);
    assert_false(kafka_producer_fatal(p, err, sizeof err));
    /* librdkafka's own fault injection: what a broken idempotent sequence raises. */
    assert_int_equal(rd_kafka_test_fatal_error(kafka_producer_handle(p),
                                               RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                               "it_kafka injected"),
                     0);
    assert_true(kafka_producer_fatal(p, err, sizeof err));
    assert_non_null(strstr(err, "injected"));
    assert_int_equal(kafka_producer_send(p, topic, "2", "2", NULL, NULL, 0, b, err, sizeof err),
                     KAFKA_ERR_FATAL);
    assert_int_equal(kafka_producer_poll(p, 0), KAFKA_ERR_FATAL);
    assert_int_equal(kafka_producer_close(p, 1000, err, sizeof err), KAFKA_ERR_FATAL);
    kafka_batch_free(b);
}

/* ---- consumer: gaps ------------------------------------------------------------------------ */

#define GAP_N 200

static bool leave_unfinished(int v) { return v % 23 == 7; }

static void test_consumer_gap_clean_close(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, PARTS);
    testenv_unique(group, sizeof group, "it-kafka-gap-");
    produce_range(topic, 0, GAP_N);

    int64_t first_gap[PARTS], offset_of[GAP_N];
    int32_t part_of[GAP_N];
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    /* Finish everything but the gaps, out of order. */
    collect_t k = {.c = c, .target = GAP_N, .keep = true};
    assert_true(testenv_wait_until(collect_until_target, &k, 60000, 1));
    assert_int_equal(kafka_consumer_in_flight(c), GAP_N);
    for (int p = 0; p < PARTS; p++)
        first_gap[p] = INT64_MAX;
    for (size_t i = 0; i < k.count; i++) {
        int v = record_number(k.recs[i]);
        offset_of[v] = k.recs[i]->offset;
        part_of[v] = k.recs[i]->partition;
        if (leave_unfinished(v) && k.recs[i]->offset < first_gap[k.recs[i]->partition])
            first_gap[k.recs[i]->partition] = k.recs[i]->offset;
    }
    for (size_t i = k.count; i > 0; i--) { /* reverse order: worst case for contiguity */
        kafka_record_t *r = k.recs[i - 1];
        if (leave_unfinished(record_number(r)))
            kafka_consumer_release(c, r);
        else
            assert_int_equal(kafka_consumer_done(c, r), 0);
    }
    free(k.recs);
    assert_int_equal(kafka_consumer_in_flight(c), 0);
    assert_true(kafka_consumer_idle_ms(c) >= 0);
    char err[512] = "";
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);

    /* Restart: everything from each partition's first gap comes again; nothing before it. */
    int seen[GAP_N] = {0};
    size_t expect = 0;
    for (int v = 0; v < GAP_N; v++) {
        if (offset_of[v] >= first_gap[part_of[v]])
            expect++;
    }
    c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k2 = {.c = c, .target = expect, .seen = seen, .seen_size = GAP_N};
    assert_true(testenv_wait_until(collect_until_target, &k2, 60000, 1));
    /* Give a wrongly re-delivered record a chance to show up before judging. */
    k2.target = expect + 1;
    assert_false(testenv_wait_until(collect_until_target, &k2, 1500, 1));
    for (int v = 0; v < GAP_N; v++) {
        bool after_gap = offset_of[v] >= first_gap[part_of[v]];
        if (leave_unfinished(v) && seen[v] != 1)
            fail_msg("unfinished record %d seen %d times after restart", v, seen[v]);
        if (!after_gap && seen[v] != 0)
            fail_msg("record %d (finished, before the gap) re-delivered", v);
        if (after_gap && seen[v] != 1)
            fail_msg("record %d after the gap seen %d times", v, seen[v]);
    }
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
}

/* Child process for the SIGKILL test: consume, finish all but the gaps, commit, report the
 * unfinished records on stdout, then keep polling until killed. */
static int child_gap_main(const char *topic, const char *group)
{
    log_init("it_kafka_child", LOG_WARN);
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k = {.c = c, .target = GAP_N, .keep = true};
    if (!testenv_wait_until(collect_until_target, &k, 60000, 1))
        return 2;
    for (size_t i = k.count; i > 0; i--) {
        kafka_record_t *r = k.recs[i - 1];
        if (leave_unfinished(record_number(r)))
            printf("unfinished %" PRId32 " %" PRId64 "\n", r->partition, r->offset);
        else if (kafka_consumer_done(c, r) != 0)
            return 3;
    }
    char err[256];
    if (kafka_consumer_commit(c, err, sizeof err) != 0)
        return 4;
    printf("ready\n");
    fflush(stdout);
    for (;;) { /* in flight forever, like a worker stuck mid-batch */
        kafka_record_t *r = kafka_consumer_poll(c, 200);
        if (r)
            kafka_consumer_release(c, r);
    }
}

static void test_consumer_gap_sigkill(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, PARTS);
    testenv_unique(group, sizeof group, "it-kafka-kill-");
    produce_range(topic, 0, GAP_N);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(self, self, "--child-gap", topic, group, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *in = fdopen(fds[0], "r");
    assert_non_null(in);
    int64_t first_gap[PARTS] = {INT64_MAX, INT64_MAX, INT64_MAX};
    int unfinished = 0;
    bool ready = false;
    char *line = NULL;
    size_t cap = 0;
    while (!ready && getline(&line, &cap, in) > 0) {
        if (strncmp(line, "ready", 5) == 0) {
            ready = true;
        } else if (strncmp(line, "unfinished ", 11) == 0) {
            char *end = NULL;
            long p = strtol(line + 11, &end, 10);
            long long off = strtoll(end, &end, 10);
            assert_true(p >= 0 && p < PARTS);
            if (off < first_gap[p])
                first_gap[p] = off;
            unfinished++;
        }
    }
    free(line);
    fclose(in);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!ready)
        fail_msg("child did not get ready (status %d)", status);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(unfinished > 0);

    /* Restart with the same group (waits out the dead member's session): every record from the
     * first gap on comes again, none skipped; nothing before it (it was committed). */
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k = {.c = c, .keep = true, .target = (size_t)-1};
    /* Count what must come: records per partition with offset >= first gap. We only know offsets
     * from the child for gaps, so read until every partition reached its end offset. */
    rd_kafka_t *rk = kafka_consumer_handle(c);
    int64_t high[PARTS];
    for (int p = 0; p < PARTS; p++) {
        int64_t low = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high[p], 10000), 0);
    }
    size_t must = 0;
    for (int p = 0; p < PARTS; p++) {
        if (first_gap[p] != INT64_MAX)
            must += (size_t)(high[p] - first_gap[p]);
    }
    k.target = must;
    assert_true(testenv_wait_until(collect_until_target, &k, 90000, 1));
    k.target = must + 1;
    assert_false(testenv_wait_until(collect_until_target, &k, 1500, 1));
    assert_int_equal(k.count, must);
    for (size_t i = 0; i < k.count; i++) {
        kafka_record_t *r = k.recs[i];
        if (r->offset < first_gap[r->partition])
            fail_msg("offset %" PRId64 " of partition %" PRId32 " before the gap re-delivered",
                     r->offset, r->partition);
        assert_int_equal(kafka_consumer_done(c, r), 0);
    }
    free(k.recs);
    char err[512] = "";
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
}

/* ---- consumer: pause / resume --------------------------------------------------------------- */

static void test_consumer_pause_resume(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 1);
    testenv_unique(group, sizeof group, "it-kafka-pause-");
    produce_range(topic, 0, 20);
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k = {.c = c, .keep = true, .target = 1};
    assert_true(testenv_wait_until(collect_until_target, &k, 60000, 1));
    kafka_record_t *first = k.recs[0];
    assert_int_equal(first->offset, 0);
    assert_int_equal(kafka_consumer_pause(c, topic, 0), 0);
    assert_int_equal(kafka_consumer_pause(c, topic, 7), KAFKA_ERR_STATE);
    /* Paused: polling keeps the member alive but hands nothing of that partition out. */
    k.target = 2;
    assert_false(testenv_wait_until(collect_until_target, &k, 1500, 1));
    assert_int_equal(k.count, 1);
    assert_int_equal(kafka_consumer_in_flight(c), 1);
    assert_true(kafka_consumer_idle_ms(c) >= 1000);
    assert_int_equal(kafka_consumer_resume(c, topic, 0), 0);
    k.target = 20;
    assert_true(testenv_wait_until(collect_until_target, &k, 30000, 1));
    for (size_t i = 0; i < k.count; i++) {
        assert_int_equal(k.recs[i]->offset, (int64_t)i); /* in order, none lost, no repeat */
        assert_int_equal(kafka_consumer_done(c, k.recs[i]), 0);
    }
    free(k.recs);
    assert_int_equal(kafka_consumer_pause_all(c), 0);
    assert_int_equal(kafka_consumer_resume_all(c), 0);
    char err[512] = "";
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
}

/* ---- consumer: rebalance -------------------------------------------------------------------- */

#define RB_N 400
#define RB_PARTS 4
#define RB_HOLD 6

typedef struct member {
    const char *name;
    kafka_consumer_t *c;
    kafka_record_t *held[RB_HOLD]; /* in flight, finished later in reverse order */
    size_t nheld;
    kafka_record_t *straggler; /* kept across a revoke on purpose */
    bool want_straggler;
    int revokes;
    int *seen;
} member_t;

static void member_finish_held(member_t *m)
{
    while (m->nheld > 0) {
        kafka_record_t *r = m->held[--m->nheld];
        assert_int_equal(kafka_consumer_done(m->c, r), 0);
    }
}

/* Single-threaded worker: on revoke, finish the held records (drives in-flight to zero) but
 * keep one straggler, which must then be refused (stale) and re-delivered. */
static void member_on_revoke(void *opaque, kafka_consumer_t *c,
                             const rd_kafka_topic_partition_list_t *parts, bool lost)
{
    (void)c;
    (void)parts;
    (void)lost;
    member_t *m = opaque;
    m->revokes++;
    if (m->want_straggler && !m->straggler && m->nheld > 0) {
        m->straggler = m->held[--m->nheld];
        m->want_straggler = false;
    }
    member_finish_held(m);
}

static void member_step(member_t *m)
{
    kafka_record_t *r = kafka_consumer_poll(m->c, 50);
    if (!r) {
        member_finish_held(m); /* idle: nothing left to reorder with */
        return;
    }
    int v = record_number(r);
    assert_true(v >= 0 && v < RB_N);
    m->seen[v]++;
    m->held[m->nheld++] = r;
    if (m->nheld == RB_HOLD)
        member_finish_held(m);
}

typedef struct rb_ctx {
    member_t *a, *b;
    int *seen;
    size_t target_distinct;
} rb_ctx_t;

static size_t distinct(const int *seen)
{
    size_t n = 0;
    for (int i = 0; i < RB_N; i++)
        n += seen[i] > 0;
    return n;
}

static bool rb_progress(void *ctx)
{
    rb_ctx_t *x = ctx;
    member_step(x->a);
    if (x->b && x->b->c)
        member_step(x->b);
    return distinct(x->seen) >= x->target_distinct;
}

static bool rb_settled(void *ctx)
{
    rb_ctx_t *x = ctx;
    member_step(x->a);
    member_step(x->b);
    /* A straggler's record must come again (its partition's new owner starts at the committed
     * offset, which cannot be past it): wait for that too, not only for every record having
     * been seen once. Without this, a rebalance that lands after all RB_N records were seen
     * left the re-delivery racing the assertion below. */
    bool straggler_back = !x->a->straggler || x->seen[record_number(x->a->straggler)] >= 2;
    return distinct(x->seen) == RB_N && straggler_back && x->a->nheld == 0 &&
           x->b->nheld == 0 &&
           kafka_consumer_in_flight(x->a->c) == (x->a->straggler ? 1u : 0u) &&
           kafka_consumer_in_flight(x->b->c) == 0 && kafka_consumer_assigned_count(x->b->c) > 0;
}

static void test_consumer_rebalance_second_member(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, RB_PARTS);
    testenv_unique(group, sizeof group, "it-kafka-rb-");
    produce_range(topic, 0, RB_N / 2);

    int seen[RB_N] = {0};
    member_t a = {.name = "a", .seen = seen, .want_straggler = true};
    member_t b = {.name = "b", .seen = seen};
    a.c = consumer_new(group, topic, 300, member_on_revoke, &a);
    rb_ctx_t x = {.a = &a, .b = &b, .seen = seen, .target_distinct = RB_N / 4};
    assert_true(testenv_wait_until(rb_progress, &x, 60000, 1));
    assert_true(a.nheld > 0 || distinct(seen) > 0);

    /* The second member joins mid-stream while more records arrive. */
    b.c = consumer_new(group, topic, 300, member_on_revoke, &b);
    produce_range(topic, RB_N / 2, RB_N);
    x.target_distinct = RB_N;
    assert_true(testenv_wait_until(rb_progress, &x, 180000, 1));
    assert_true(testenv_wait_until(rb_settled, &x, 120000, 1));
    assert_true(a.revokes >= 1);

    /* The straggler outlived its partition's assignment: not stored, re-delivered. */
    if (a.straggler) {
        int v = record_number(a.straggler);
        assert_int_equal(kafka_consumer_done(a.c, a.straggler), KAFKA_ERR_STATE);
        a.straggler = NULL;
        assert_true(seen[v] >= 2);
    }
    int dups = 0;
    for (int i = 0; i < RB_N; i++) {
        if (seen[i] == 0)
            fail_msg("record %d lost", i);
        dups += seen[i] - 1;
    }
    print_message("rebalance: %d records, %d re-deliveries, revokes a=%d b=%d\n", RB_N, dups,
                  a.revokes, b.revokes);
    char err[512] = "";
    assert_int_equal(kafka_consumer_close(a.c, err, sizeof err), 0);
    assert_int_equal(kafka_consumer_close(b.c, err, sizeof err), 0);

    /* Everything was finished and committed: a new member of the group gets nothing. */
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k = {.c = c};
    assert_true(testenv_wait_until(is_assigned, &k, 60000, 1));
    assert_false(testenv_wait_until(got_any, &k, 3000, 1));
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
}

/* ---- consumer: revoke waits for worker threads ----------------------------------------------- */

#define WT_N 120

typedef struct wq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    kafka_consumer_t *c;
    kafka_record_t *items[WT_N * 2];
    int64_t since[WT_N * 2];
    size_t head, tail;
    bool stop;
    int *seen;
} wq_t;

/* Set by A's revoke hook (called before the consumer waits for in-flight records). */
static atomic_bool wt_revoke_started;

/* A worker thread: finishes each record 1.5 s after it was queued (simulated slow work), and
 * none before A's first revoke has started, so the revoke that follows the second member's
 * join surely finds records in flight and must wait (a bare 1.5 s could all have elapsed on a
 * loaded machine before the slow join completed, leaving nothing in flight to wait for). */
static void *wq_worker(void *arg)
{
    wq_t *q = arg;
    pthread_mutex_lock(&q->lock);
    while (!q->stop || q->head != q->tail) {
        if (q->head != q->tail && atomic_load(&wt_revoke_started) &&
            testenv_now_ms() - q->since[q->head] >= 1500) {
            kafka_record_t *r = q->items[q->head++];
            pthread_mutex_unlock(&q->lock);
            int rc = kafka_consumer_done(q->c, r);
            assert_int_equal(rc, 0); /* never stale: the revoke waited for us */
            pthread_mutex_lock(&q->lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&q->cond, &q->lock, &until);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

typedef struct wt_ctx {
    wq_t *q;
    kafka_consumer_t *b;
    int *seen;
    size_t target;
} wt_ctx_t;

static size_t wt_distinct(const int *seen)
{
    size_t n = 0;
    for (int i = 0; i < WT_N; i++)
        n += seen[i] > 0;
    return n;
}

/* Records in flight at A's revokes (the wait must have had something to wait for). */
static size_t wt_in_flight_at_revoke;

static void wt_on_revoke(void *opaque, kafka_consumer_t *c,
                         const rd_kafka_topic_partition_list_t *parts, bool lost)
{
    (void)opaque;
    (void)parts;
    (void)lost;
    size_t n = kafka_consumer_in_flight(c);
    if (n > wt_in_flight_at_revoke)
        wt_in_flight_at_revoke = n;
    atomic_store(&wt_revoke_started, true);
}

static bool wt_progress(void *ctx)
{
    wt_ctx_t *x = ctx;
    kafka_record_t *r = kafka_consumer_poll(x->q->c, 50);
    if (r) {
        x->seen[record_number(r)]++;
        pthread_mutex_lock(&x->q->lock);
        assert_true(x->q->tail < WT_N * 2);
        x->q->since[x->q->tail] = testenv_now_ms();
        x->q->items[x->q->tail++] = r;
        pthread_cond_signal(&x->q->cond);
        pthread_mutex_unlock(&x->q->lock);
    }
    if (x->b) {
        r = kafka_consumer_poll(x->b, 50);
        if (r) {
            x->seen[record_number(r)]++;
            assert_int_equal(kafka_consumer_done(x->b, r), 0);
        }
    }
    if (x->target < WT_N)
        return wt_distinct(x->seen) >= x->target;
    return wt_distinct(x->seen) >= x->target && kafka_consumer_in_flight(x->q->c) == 0;
}

static void test_consumer_revoke_waits_for_worker_threads(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 2);
    testenv_unique(group, sizeof group, "it-kafka-wt-");
    produce_range(topic, 0, WT_N);

    static int seen[WT_N];
    static wq_t q; /* static: outlives this frame even if an assertion jumps out */
    memset(seen, 0, sizeof seen);
    memset(&q, 0, sizeof q);
    atomic_store(&wt_revoke_started, false);
    q.seen = seen;
    pthread_mutex_init(&q.lock, NULL);
    pthread_cond_init(&q.cond, NULL);
    q.c = consumer_new(group, topic, 60000, wt_on_revoke, NULL);
    pthread_t worker;
    assert_int_equal(pthread_create(&worker, NULL, wq_worker, &q), 0);
    wt_ctx_t x = {.q = &q, .seen = seen, .target = 10};
    /* Let A take some records, then a second member joins while A's worker still has some. */
    assert_true(testenv_wait_until(wt_progress, &x, 60000, 1));
    x.b = consumer_new(group, topic, 60000, NULL, NULL);
    x.target = WT_N;
    assert_true(testenv_wait_until(wt_progress, &x, 180000, 1));

    /* The revoke waited for the worker: every record finished exactly once, none re-seen. */
    assert_true(wt_in_flight_at_revoke > 0);
    for (int i = 0; i < WT_N; i++) {
        if (seen[i] != 1)
            fail_msg("record %d seen %d times", i, seen[i]);
    }
    pthread_mutex_lock(&q.lock);
    q.stop = true;
    pthread_cond_signal(&q.cond);
    pthread_mutex_unlock(&q.lock);
    pthread_join(worker, NULL);
    char err[512] = "";
    assert_int_equal(kafka_consumer_close(q.c, err, sizeof err), 0);
    assert_int_equal(kafka_consumer_close(x.b, err, sizeof err), 0);
    pthread_cond_destroy(&q.cond);
    pthread_mutex_destroy(&q.lock);
}

/* ---- dead letters ----------------------------------------------------------------------------- */

typedef struct dlq_result {
    int calls;
    bool ok;
} dlq_result_t;

static void dlq_cb(void *opaque, bool ok, const char *error)
{
    (void)error;
    dlq_result_t *r = opaque;
    r->calls++;
    r->ok = ok;
}

typedef struct dlq_wait {
    kafka_producer_t *p;
    dlq_result_t *r;
} dlq_wait_t;

static bool dlq_done(void *ctx)
{
    dlq_wait_t *w = ctx;
    kafka_producer_poll(w->p, 100);
    return w->r->calls > 0;
}

static void test_dlq_headers_read_back(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], dlq_topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 1);
    assert_int_equal(kafka_topic_name(dlq_topic, sizeof dlq_topic, prefix, KAFKA_TOPIC_DLQ), 0);
    testenv_unique(group, sizeof group, "it-kafka-dlq-");
    kafka_settings_t s = settings();
    char err[512] = "";

    /* An original record with binary-safe headers and an explicit timestamp. */
    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    assert_non_null(p);
    kafka_batch_t *b = kafka_batch_new();
    const char *value = "{\"Id\":42,\"Name\":\"Açaí Ltda\"}";
    kafka_header_t oh[] = {{"source", "ploomes", 7},
                           {"entity", "contact", 7},
                           {"fetched-at", "2024-05-01T12:00:00Z", 20},
                           {"event-id", "abc123", 6}};
    int64_t ts = 1714564800123LL;
    assert_int_equal(kafka_producer_send_raw(p, topic, "42", 2, value, strlen(value), oh, 4, ts, b,
                                             NULL, NULL, err, sizeof err),
                     0);
    assert_int_equal(kafka_batch_wait(p, b, 30000, err, sizeof err), 0);
    kafka_batch_free(b);

    /* The worker side: consume it, dead-letter it, mark done only on confirmation. */
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    kafka_record_t *rec = next_record(c);
    assert_int_equal(rec->timestamp_ms, ts);

    const char *secrets[] = {"tok-SECRET-123"};
    kafka_dlq_opts_t o = {.producer = p,
                          .topic_prefix = prefix,
                          .connector_name = "clients-to-milvus",
                          .secrets = secrets,
                          .secret_count = 1};
    kafka_dlq_t *d = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(d);
    assert_string_equal(kafka_dlq_topic(d), dlq_topic);
    const char *resp = "{\"message\":\"Serviço indisponível\",\"echo\":\"tok-SECRET-123\"}";
    kafka_dlq_error_t e = {.class_name = "workers.clients_to_milvus",
                           .exception_class = "HttpStatus503",
                           .exception_message = "Milvus answered 503 after 3 attempts",
                           .attempts = 3,
                           .http_status = 503,
                           .response = resp,
                           .response_len = strlen(resp),
                           .first_failure_ms = 1714564800000LL,
                           .last_failure_ms = 1714564815250LL};
    dlq_result_t res = {0};
    assert_int_equal(kafka_dlq_send(d, rec, &e, dlq_cb, &res, err, sizeof err), 0);
    dlq_wait_t w = {.p = p, .r = &res};
    assert_true(testenv_wait_until(dlq_done, &w, 30000, 1));
    assert_int_equal(res.calls, 1);
    assert_true(res.ok);
    assert_int_equal(kafka_consumer_done(c, rec), 0);
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);

    /* Read the dead letter back and compare every header, in order. */
    char group2[96];
    testenv_unique(group2, sizeof group2, "it-kafka-dlqread-");
    c = consumer_new(group2, dlq_topic, 0, NULL, NULL);
    kafka_record_t *dl = next_record(c);
    assert_int_equal(dl->key_len, 2);
    assert_memory_equal(dl->key, "42", 2);
    assert_int_equal(dl->value_len, strlen(value));
    assert_memory_equal(dl->value, value, strlen(value));
    assert_int_equal(dl->timestamp_ms, ts);
    char task[300], partition_text[16];
    kafka_dlq_instance_id(task, sizeof task);
    snprintf(partition_text, sizeof partition_text, "%d", 0);
    const char *want[][2] = {
        {"source", "ploomes"},
        {"entity", "contact"},
        {"fetched-at", "2024-05-01T12:00:00Z"},
        {"event-id", "abc123"},
        {"__connect.errors.topic", topic},
        {"__connect.errors.partition", partition_text},
        {"__connect.errors.offset", "0"},
        {"__connect.errors.connector.name", "clients-to-milvus"},
        {"__connect.errors.task.id", task},
        {"__connect.errors.stage", "TASK_PUT"},
        {"__connect.errors.class.name", "workers.clients_to_milvus"},
        {"__connect.errors.exception.class.name", "HttpStatus503"},
        {"__connect.errors.exception.message", "Milvus answered 503 after 3 attempts"},
        {"x-dlq.attempts", "3"},
        {"x-dlq.http-status", "503"},
        {"x-dlq.response", "{\"message\":\"Serviço indisponível\",\"echo\":\"***\"}"},
        {"x-dlq.first-failure", "2024-05-01T12:00:00.000Z"},
        {"x-dlq.last-failure", "2024-05-01T12:00:15.250Z"},
    };
    size_t nwant = sizeof want / sizeof want[0];
    if (dl->header_count != nwant)
        fail_msg("dead letter has %zu headers, want %zu", dl->header_count, nwant);
    for (size_t i = 0; i < nwant; i++) {
        const kafka_header_t *h = &dl->headers[i];
        if (strcmp(h->name, want[i][0]) != 0 || !h->value ||
            h->value_len != strlen(want[i][1]) || memcmp(h->value, want[i][1], h->value_len) != 0)
            fail_msg("header %zu: %s=%s, want %s=%s", i, h->name, h->value ? h->value : "(null)",
                     want[i][0], want[i][1]);
    }
    assert_int_equal(kafka_consumer_done(c, dl), 0);
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
    kafka_dlq_free(d);
    assert_int_equal(kafka_producer_close(p, 10000, err, sizeof err), 0);
}

/* ---- consumer hygiene (issue 8 items 2, 8, 9) --------------------------------------------- */

typedef struct pair {
    kafka_consumer_t *a, *b;
} pair_t;

static void poll_and_finish(kafka_consumer_t *c)
{
    kafka_record_t *r = kafka_consumer_poll(c, 50);
    if (r)
        assert_int_equal(kafka_consumer_done(c, r), 0);
}

static bool split_between_two(void *ctx)
{
    pair_t *x = ctx;
    poll_and_finish(x->a);
    poll_and_finish(x->b);
    size_t na = kafka_consumer_assigned_count(x->a), nb = kafka_consumer_assigned_count(x->b);
    return na > 0 && nb > 0 && na + nb == 2;
}

static bool owns_both(void *ctx)
{
    collect_t *k = ctx;
    kafka_record_t *r = kafka_consumer_poll(k->c, 50);
    if (r)
        collect_one(k, r);
    return kafka_consumer_assigned_count(k->c) == 2;
}

/* Item 2: A pauses p0; B joins, then leaves; A gets both partitions back. librdkafka 2.0.2 kept
 * the pause across the eager rebalance while the wrapper forgot it: new records on p0 never
 * came. Now every record of both partitions must arrive. */
static void test_consumer_pause_does_not_survive_rebalance(void **state)
{
    (void)state;
    enum { N = 20 };
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 2);
    testenv_unique(group, sizeof group, "it-kafka-pzrb-");
    kafka_consumer_t *a = consumer_new(group, topic, 300, NULL, NULL);
    int seen[N] = {0};
    collect_t k = {.c = a, .seen = seen, .seen_size = N};
    assert_true(testenv_wait_until(owns_both, &k, 60000, 1));
    assert_int_equal(kafka_consumer_pause(a, topic, 0), 0); /* waiting on a retry for p0 */

    pair_t x = {.a = a, .b = consumer_new(group, topic, 300, NULL, NULL)};
    assert_true(testenv_wait_until(split_between_two, &x, 90000, 1));
    char err[512] = "";
    assert_int_equal(kafka_consumer_close(x.b, err, sizeof err), 0);
    assert_true(testenv_wait_until(owns_both, &k, 90000, 1));

    int32_t part_of[N];
    produce_where(topic, 0, N, part_of);
    int on_p0 = 0;
    for (int i = 0; i < N; i++)
        on_p0 += part_of[i] == 0;
    assert_true(on_p0 > 0 && on_p0 < N); /* both partitions got records */
    k.target = N;
    bool all = testenv_wait_until(collect_until_target, &k, 30000, 1);
    for (int i = 0; all && i < N; i++)
        all = seen[i] == 1;
    if (!all) {
        int got_p0 = 0, got_p1 = 0;
        for (int i = 0; i < N; i++) {
            got_p0 += part_of[i] == 0 && seen[i] > 0;
            got_p1 += part_of[i] == 1 && seen[i] > 0;
        }
        fail_msg("after the rebalance A received %d of %d records of p0 and %d of %d of p1", got_p0,
                 on_p0, got_p1, N - on_p0);
    }
    assert_int_equal(kafka_consumer_close(a, err, sizeof err), 0);
}

/* Item 8: a released record blocked its partition until the next rebalance. Now it is fetched
 * again (seek) while the member keeps polling; the records after it that were finished are not
 * handed out twice, and the committed position ends past everything. Also the lag report. */
static void test_consumer_release_fetches_again(void **state)
{
    (void)state;
    enum { N = 6 };
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 1);
    testenv_unique(group, sizeof group, "it-kafka-rel-");
    produce_range(topic, 0, N);
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k = {.c = c, .keep = true, .target = 3};
    assert_true(testenv_wait_until(collect_until_target, &k, 60000, 1));
    assert_int_equal(k.count, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(k.recs[i]->offset, i);

    kafka_lag_t lag[4];
    size_t n = 99;
    assert_int_equal(kafka_consumer_lag(c, lag, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(lag[0].topic, topic);
    assert_int_equal(lag[0].partition, 0);
    assert_int_equal(lag[0].high, N);
    assert_int_equal(lag[0].position, 3);
    assert_int_equal(lag[0].lag, N - 3);
    assert_int_equal(kafka_consumer_lag(c, NULL, 0, &n), 0);
    assert_int_equal(n, 0);

    assert_int_equal(kafka_consumer_done(c, k.recs[0]), 0);
    assert_int_equal(kafka_consumer_done(c, k.recs[2]), 0);
    kafka_consumer_release(c, k.recs[1]); /* e.g. a worker that cannot finish it now */
    free(k.recs);

    /* Keep polling: offset 1 comes back, then 3, 4, 5 — and 2 (finished) not again. */
    collect_t k2 = {.c = c, .keep = true, .target = 4};
    if (!testenv_wait_until(collect_until_target, &k2, 30000, 1))
        fail_msg("the released record did not come back: %zu records after the release",
                 k2.count);
    k2.target = 5;
    assert_false(testenv_wait_until(collect_until_target, &k2, 1500, 1));
    const int64_t want[] = {1, 3, 4, 5};
    assert_int_equal(k2.count, 4);
    for (size_t i = 0; i < 4; i++) {
        if (k2.recs[i]->offset != want[i])
            fail_msg("record %zu after the release has offset %" PRId64 ", want %" PRId64, i,
                     k2.recs[i]->offset, want[i]);
        assert_int_equal(kafka_consumer_done(c, k2.recs[i]), 0);
    }
    free(k2.recs);
    assert_int_equal(kafka_consumer_lag(c, lag, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(lag[0].lag, 0);
    char err[512] = "";
    assert_int_equal(kafka_consumer_commit(c, err, sizeof err), 0);
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);

    /* Everything was stored and committed: the group has nothing left to give. */
    c = consumer_new(group, topic, 0, NULL, NULL);
    collect_t k3 = {.c = c};
    assert_true(testenv_wait_until(is_assigned, &k3, 60000, 1));
    assert_false(testenv_wait_until(got_any, &k3, 3000, 1));
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
}

typedef struct evict {
    kafka_consumer_t *c;
    int revokes;
    bool lost; /* as the first revoke said */
} evict_t;

static void evict_on_revoke(void *opaque, kafka_consumer_t *c,
                            const rd_kafka_topic_partition_list_t *parts, bool lost)
{
    (void)c;
    (void)parts;
    evict_t *e = opaque;
    if (e->revokes++ == 0)
        e->lost = lost;
}

static bool revoked(void *ctx)
{
    evict_t *e = ctx;
    kafka_record_t *r = kafka_consumer_poll(e->c, 50);
    if (r)
        kafka_consumer_done(e->c, r); /* re-assigned after rejoining: fine either way */
    return e->revokes > 0;
}

/* Item 9: a member whose handler outlives max.poll.interval.ms is thrown out of the group; its
 * partition goes to B, which handles the record again. A's late done() must not report
 * "stored", its commit must not be attempted, and its next revoke is a lost one. */
static void test_consumer_eviction_is_a_lost_assignment(void **state)
{
    (void)state;
    enum { N = 3 };
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 1);
    testenv_unique(group, sizeof group, "it-kafka-evict-");
    produce_range(topic, 0, N);
    /* The smallest max.poll.interval.ms librdkafka allows with session.timeout.ms=6000. */
    const char *xn[] = {"max.poll.interval.ms"};
    const char *xv[] = {"6000"};
    evict_t ev = {0};
    kafka_consumer_t *a = consumer_new_extra(group, topic, 0, evict_on_revoke, &ev, xn, xv, 1);
    kafka_record_t *stuck = next_record(a);
    assert_int_equal(stuck->offset, 0);

    /* A stops polling (a handler stuck on one record). B joins; it can only get the partition
     * once A is out of the group, and then it gets record 0 again. */
    kafka_consumer_t *b = consumer_new(group, topic, 0, NULL, NULL);
    int seen[N] = {0};
    collect_t kb = {.c = b, .seen = seen, .seen_size = N, .target = N};
    assert_true(testenv_wait_until(collect_until_target, &kb, 120000, 1));
    assert_int_equal(seen[0], 1);

    /* A's handler finishes late: nothing stored, nothing committed. */
    assert_int_equal(kafka_consumer_done(a, stuck), KAFKA_ERR_STATE);
    char err[512] = "";
    assert_int_equal(kafka_consumer_commit(a, err, sizeof err), KAFKA_ERR_STATE);
    assert_non_null(strstr(err, "thrown out"));

    /* A polls again: what it gets is a lost assignment. */
    ev.c = a;
    assert_true(testenv_wait_until(revoked, &ev, 60000, 1));
    assert_true(ev.lost);
    assert_int_equal(kafka_consumer_close(b, err, sizeof err), 0);
    assert_int_equal(kafka_consumer_close(a, err, sizeof err), 0);
}

/* ---- record size (issue 8 item 15) -------------------------------------------------------- */

/* A JSON record of exactly `size` bytes: {"Id":1,"Notes":"xxx...x"}. */
static char *json_of_size(size_t size)
{
    static const char head[] = "{\"Id\":1,\"Notes\":\"", tail[] = "\"}";
    assert_true(size >= sizeof head + sizeof tail);
    char *v = malloc(size + 1);
    assert_non_null(v);
    memset(v, 'x', size);
    memcpy(v, head, sizeof head - 1);
    memcpy(v + size - (sizeof tail - 1), tail, sizeof tail - 1);
    v[size] = '\0';
    return v;
}

static bool topic_config_is(const char *topic, const char *name, const char *want)
{
    kafka_settings_t s = settings();
    char value[64], err[512];
    if (kafka_topic_config_get(&s, topic, name, value, sizeof value, 10000, err, sizeof err) != 0)
        fail_msg("describe %s: %s", topic, err);
    return strcmp(value, want) == 0;
}

/* A 2 MiB record (over the broker's ~1 MB default) through topics made by our code, the
 * default producer and the default consumer. */
static void test_large_record_through_our_topics(void **state)
{
    (void)state;
    char prefix[96], topic[KAFKA_TOPIC_NAME_MAX], dlq[KAFKA_TOPIC_NAME_MAX], group[96];
    fresh_topics(prefix, sizeof prefix, topic, sizeof topic, 1);
    testenv_unique(group, sizeof group, "it-kafka-big-");
    const size_t big = 2 * 1024 * 1024;
    char *value = json_of_size(big);
    kafka_settings_t s = settings();
    char err[512] = "";
    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    assert_non_null(p);
    kafka_batch_t *b = kafka_batch_new();
    if (kafka_producer_send(p, topic, "1", value, NULL, NULL, 0, b, err, sizeof err) != 0)
        fail_msg("a 2 MiB record was refused: %s", err);
    if (kafka_batch_wait(p, b, 30000, err, sizeof err) != 0)
        fail_msg("a 2 MiB record was not delivered: %s", err);
    kafka_batch_free(b);
    assert_int_equal(kafka_producer_close(p, 10000, err, sizeof err), 0);

    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    kafka_record_t *rec = next_record(c);
    assert_int_equal(rec->value_len, big);
    assert_memory_equal(rec->value, value, big);
    assert_int_equal(kafka_consumer_done(c, rec), 0);
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
    free(value);

    /* SPEC §6 defaults: 8 MiB, the DLQ 64 KiB more. */
    assert_true(topic_config_is(topic, "max.message.bytes", "8388608"));
    assert_int_equal(kafka_topic_name(dlq, sizeof dlq, prefix, KAFKA_TOPIC_DLQ), 0);
    assert_true(topic_config_is(dlq, "max.message.bytes", "8454144"));
}

/* Serialized size of record headers as Kafka (and librdkafka's size check) count them:
 * zigzag varint lengths, then the bytes. */
static size_t zigzag_varint_len(size_t n)
{
    uint64_t z = (uint64_t)n << 1;
    size_t len = 1;
    while (z >= 0x80) {
        z >>= 7;
        len++;
    }
    return len;
}

static size_t headers_size(const kafka_header_t *h, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(h[i].name);
        total += zigzag_varint_len(nl) + nl + zigzag_varint_len(h[i].value_len) + h[i].value_len;
    }
    return total;
}

static bool value_is(void *ctx)
{
    const char **w = ctx; /* topic, name, want */
    return topic_config_is(w[0], w[1], w[2]);
}

/* The largest record our producer accepts for a topic is delivered (the broker never refuses
 * what librdkafka accepted), one byte more is refused before it is queued, and its dead letter
 * with the fullest error headers fits the DLQ. Then an existing topic made with a smaller
 * KAFKA_MAX_MESSAGE_BYTES is raised, keeping its other settings. */
static void test_exact_fit_also_fits_the_dlq(void **state)
{
    (void)state;
    char unique[80], prefix[96], topic[KAFKA_TOPIC_NAME_MAX], dlq[KAFKA_TOPIC_NAME_MAX];
    char group[96], err[512] = "";
    testenv_unique(unique, sizeof unique, "it-kafka-fit-");
    snprintf(prefix, sizeof prefix, "%s.", unique);
    testenv_unique(group, sizeof group, "it-kafka-fit-");
    kafka_settings_t s = settings();
    s.max_message_bytes = 1024 * 1024;
    assert_int_equal(kafka_topics_ensure(&s, prefix, 1, NULL, 0, 30000, err, sizeof err), 0);
    assert_int_equal(kafka_topic_name(topic, sizeof topic, prefix, KAFKA_TOPIC_PLOOMES_CONTACTS), 0);
    assert_int_equal(kafka_topic_name(dlq, sizeof dlq, prefix, KAFKA_TOPIC_DLQ), 0);
    assert_true(topic_config_is(topic, "max.message.bytes", "1048576"));
    assert_true(topic_config_is(dlq, "max.message.bytes", "1114112"));

    /* A producer's record: key, value and SPEC §2's four headers. */
    char event_id[65];
    memset(event_id, 'a', 64);
    event_id[64] = '\0';
    kafka_header_t hs[] = {{"source", "ploomes", 7},
                           {"entity", "contact", 7},
                           {"fetched-at", "2024-05-01T12:00:00Z", 20},
                           {"event-id", event_id, 64}};
    const char *key = "9007199254740991";
    size_t fixed = strlen(key) + headers_size(hs, 4);
    int64_t room = kafka_record_max_bytes(&s, false);
    assert_true(room > (int64_t)fixed + 100 && room < 1024 * 1024);
    size_t vlen = (size_t)room - fixed;
    char *value = json_of_size(vlen + 1);

    kafka_producer_t *p = kafka_producer_new(&s, "it_kafka", err, sizeof err);
    assert_non_null(p);
    kafka_batch_t *b = kafka_batch_new();
    /* One byte over: refused locally, never a delivery failure. */
    assert_int_equal(kafka_producer_send_raw(p, topic, key, strlen(key), value, vlen + 1, hs, 4, -1,
                                             b, NULL, NULL, err, sizeof err),
                     KAFKA_ERR_INVALID);
    assert_non_null(strstr(err, "too large"));
    /* Exactly the limit: accepted and acknowledged by the broker. */
    char *exact = json_of_size(vlen);
    if (kafka_producer_send_raw(p, topic, key, strlen(key), exact, vlen, hs, 4, -1, b, NULL,
                                NULL, err, sizeof err) != 0)
        fail_msg("the largest accepted record was refused: %s", err);
    if (kafka_batch_wait(p, b, 30000, err, sizeof err) != 0)
        fail_msg("the broker refused a record the producer accepted: %s", err);
    kafka_batch_free(b);
    free(value);

    /* Its dead letter, with the fullest error headers a worker can write. */
    kafka_consumer_t *c = consumer_new(group, topic, 0, NULL, NULL);
    kafka_record_t *rec = next_record(c);
    assert_int_equal(rec->value_len, vlen);
    assert_memory_equal(rec->value, exact, vlen);
    free(exact);
    kafka_producer_t *pd = kafka_producer_new_dlq(&s, "it_kafka", err, sizeof err);
    assert_non_null(pd);
    kafka_dlq_opts_t o = {.producer = pd, .topic_prefix = prefix, .connector_name = "clients-to-milvus"};
    kafka_dlq_t *d = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(d);
    char *longtext = json_of_size(64 * 1024); /* capped by the writer */
    kafka_dlq_error_t e = {.class_name = longtext,
                           .exception_class = longtext,
                           .exception_message = longtext,
                           .attempts = 3,
                           .http_status = 503,
                           .response = longtext,
                           .response_len = strlen(longtext)};
    dlq_result_t res = {0};
    if (kafka_dlq_send(d, rec, &e, dlq_cb, &res, err, sizeof err) != 0)
        fail_msg("the dead letter of a record that fits its topic was refused: %s", err);
    dlq_wait_t w = {.p = pd, .r = &res};
    assert_true(testenv_wait_until(dlq_done, &w, 30000, 1));
    assert_true(res.ok);
    free(longtext);
    assert_int_equal(kafka_consumer_done(c, rec), 0);
    assert_int_equal(kafka_consumer_close(c, err, sizeof err), 0);
    kafka_dlq_free(d);
    assert_int_equal(kafka_producer_close(pd, 10000, err, sizeof err), 0);
    assert_int_equal(kafka_producer_close(p, 10000, err, sizeof err), 0);

    /* KAFKA_MAX_MESSAGE_BYTES raised later: existing topics follow, other settings kept. */
    s.max_message_bytes = 2 * 1024 * 1024;
    assert_int_equal(kafka_topics_ensure(&s, prefix, 1, NULL, 0, 30000, err, sizeof err), 0);
    const char *w1[] = {topic, "max.message.bytes", "2097152"};
    const char *w2[] = {dlq, "max.message.bytes", "2162688"};
    assert_true(testenv_wait_until(value_is, w1, 30000, 100));
    assert_true(testenv_wait_until(value_is, w2, 30000, 100));
    assert_true(topic_config_is(dlq, "retention.ms", "-1"));
    assert_true(topic_config_is(dlq, "retention.bytes", "-1"));
    /* Never lowered. */
    s.max_message_bytes = 1024 * 1024;
    assert_int_equal(kafka_topics_ensure(&s, prefix, 1, NULL, 0, 30000, err, sizeof err), 0);
    assert_true(topic_config_is(topic, "max.message.bytes", "2097152"));
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child-gap") == 0)
        return child_gap_main(argv[2], argv[3]);
    log_level_t level = LOG_WARN;
    if (getenv("LOG_LEVEL"))
        log_level_parse(getenv("LOG_LEVEL"), &level);
    log_init("it_kafka", level);
    testenv_require("KAFKA_BOOTSTRAP_SERVERS");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_ensure_creates_dlq_forever),
        cmocka_unit_test(test_producer_batch_and_flush),
        cmocka_unit_test(test_producer_warm),
        cmocka_unit_test(test_consumer_heartbeat),
        cmocka_unit_test(test_producer_fatal_error_surfaces),
        cmocka_unit_test(test_consumer_gap_clean_close),
        cmocka_unit_test(test_consumer_gap_sigkill),
        cmocka_unit_test(test_consumer_pause_resume),
        cmocka_unit_test(test_consumer_rebalance_second_member),
        cmocka_unit_test(test_consumer_revoke_waits_for_worker_threads),
        cmocka_unit_test(test_dlq_headers_read_back),
        cmocka_unit_test(test_consumer_pause_does_not_survive_rebalance),
        cmocka_unit_test(test_consumer_release_fetches_again),
        cmocka_unit_test(test_consumer_eviction_is_a_lost_assignment),
        cmocka_unit_test(test_large_record_through_our_topics),
        cmocka_unit_test(test_exact_fit_also_fits_the_dlq),
    };
    /* IT_KAFKA_ONLY=<glob>: run a subset (cmocka's test filter), e.g. "*release*". */
    if (getenv("IT_KAFKA_ONLY"))
        cmocka_set_test_filter(getenv("IT_KAFKA_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
