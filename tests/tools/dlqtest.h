/* dlqtest.h: dead letters with chosen partitions, timestamps and keys, and the Admin requests
 * (partitions, topic deletion) the tests of the newest letters (it_status_dlq_incremental,
 * it_dlq_newest) need, on the shared broker. Header-only (static inline), like wtest.h. */
#ifndef PIPELINE_TESTS_TOOLS_DLQTEST_H
#define PIPELINE_TESTS_TOOLS_DLQTEST_H

#include "../workers/wtest.h"
#include "dlq.h"

/* ---- dead letters with chosen partitions, timestamps and keys ------------------------------ */

/* Failed deliveries of this test's producers (dlqt_flush asserts there were none). */
static int dlqt_delivery_errors;

static inline void dlqt_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        dlqt_delivery_errors++;
        fprintf(stderr, "delivery to %s [%d] failed: %s\n",
                m->rkt ? rd_kafka_topic_name(m->rkt) : "-", (int)m->partition,
                rd_kafka_err2str(m->err));
    }
}

/* A producer counting its failed deliveries; the caller destroys it. */
static inline rd_kafka_t *dlqt_producer_new(void)
{
    kafka_settings_t s = wt_settings();
    char err[512];
    rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_conf_set_dr_msg_cb(conf, dlqt_on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    return rk;
}

/* Enqueues one dead letter on `partition` p of `topic`, stamped ts (ms), with a Kafka Connect
 * worker and error class; dlqt_flush() waits for it. */
static inline void dlqt_letter(rd_kafka_t *rk, const char *topic, int32_t p, int64_t ts,
                               const char *key)
{
    static const char worker[] = "tasks-to-milvus", cls[] = "HttpClientError";
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                                       RD_KAFKA_V_TIMESTAMP(ts),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE("{\"Id\":1}", 8),
                                       RD_KAFKA_V_HEADER("__connect.errors.connector.name",
                                                         worker, -1),
                                       RD_KAFKA_V_HEADER("__connect.errors.exception.class.name",
                                                         cls, -1),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* A test's own topics (wt_init(w, name), every pipeline topic created), the name of its DLQ
 * topic into dlq (KAFKA_TOPIC_NAME_MAX), and a producer for it (the caller destroys it). */
static inline rd_kafka_t *dlqt_setup(wt_t *w, const char *name, char *dlq, size_t dlq_len)
{
    wt_init(w, name);
    assert_int_equal(wt_ensure_topics(w), 0);
    wt_topic(w, "pipeline.dlq", dlq, dlq_len);
    return dlqt_producer_new();
}

/* Waits for every letter enqueued on rk; every one must have been delivered. */
static inline void dlqt_flush(rd_kafka_t *rk)
{
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(dlqt_delivery_errors, 0);
}

typedef struct {
    const char *topic;
    int partitions; /* KAFKA_ERR_INVALID: the topic is gone */
    rd_kafka_t *rk; /* asked on this handle (its metadata updated); NULL: on a new one */
} dlqt_count_t;

/* The topic has c->partitions partitions (KAFKA_ERR_INVALID: does not exist). */
static inline bool dlqt_partitions_are(void *ctx)
{
    const dlqt_count_t *c = ctx;
    kafka_settings_t s = wt_settings();
    char err[256];
    int n = c->rk ? kafka_partition_count_on(c->rk, c->topic, 10000, err, sizeof err)
                  : kafka_topic_partition_count(&s, c->topic, 10000, err, sizeof err);
    return n == c->partitions;
}

/* Waits until rk's metadata shows `partitions` partitions of `topic` (right after
 * CreatePartitions a producer may still know fewer, and fail a letter sent to a new one). */
static inline void dlqt_wait_partitions_seen(rd_kafka_t *rk, const char *topic, int partitions)
{
    dlqt_count_t c = {.topic = topic, .partitions = partitions, .rk = rk};
    if (!testenv_wait_until(dlqt_partitions_are, &c, 120000, 200))
        fail_msg("%s never showed %d partitions", topic, partitions);
}

/* ---- Admin: partitions and topic deletion ---------------------------------------------- */

static inline rd_kafka_event_t *dlqt_admin_wait(rd_kafka_queue_t *q)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 60000);
    assert_non_null(ev);
    if (rd_kafka_event_error(ev))
        fail_msg("admin: %s", rd_kafka_event_error_string(ev));
    return ev;
}

/* One Admin request about one topic: send(rk, req, q) issues it; results(ev, &n) gives the
 * topic results of its answer, which must be one without error. */
static inline void dlqt_admin_topic_request(
    rd_kafka_t *rk, void (*send)(rd_kafka_t *rk, void *req, rd_kafka_queue_t *q), void *req,
    const rd_kafka_topic_result_t **(*results)(rd_kafka_event_t *ev, size_t *n))
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    assert_non_null(q);
    send(rk, req, q);
    rd_kafka_event_t *ev = dlqt_admin_wait(q);
    size_t n = 0;
    const rd_kafka_topic_result_t **r = results(ev, &n);
    assert_int_equal(n, 1);
    if (rd_kafka_topic_result_error(r[0]) != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("admin: %s: %s", rd_kafka_topic_result_name(r[0]),
                 rd_kafka_err2str(rd_kafka_topic_result_error(r[0])));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
}

static inline void dlqt_send_create_partitions(rd_kafka_t *rk, void *req, rd_kafka_queue_t *q)
{
    rd_kafka_CreatePartitions(rk, (rd_kafka_NewPartitions_t **)req, 1, NULL, q);
}

static inline const rd_kafka_topic_result_t **dlqt_create_partitions_results(
    rd_kafka_event_t *ev, size_t *n)
{
    return rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev),
                                                   n);
}

static inline void dlqt_send_delete_topic(rd_kafka_t *rk, void *req, rd_kafka_queue_t *q)
{
    rd_kafka_DeleteTopics(rk, (rd_kafka_DeleteTopic_t **)req, 1, NULL, q);
}

static inline const rd_kafka_topic_result_t **dlqt_delete_topic_results(rd_kafka_event_t *ev,
                                                                         size_t *n)
{
    return rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), n);
}

static inline void dlqt_add_partitions(rd_kafka_t *rk, const char *topic, int total)
{
    char err[256];
    rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(topic, (size_t)total, err,
                                                              sizeof err);
    assert_non_null(np);
    dlqt_admin_topic_request(rk, dlqt_send_create_partitions, &np,
                             dlqt_create_partitions_results);
    rd_kafka_NewPartitions_destroy(np);
}

/* A consumer handle for Admin requests (a producer's metadata requests could create a topic
 * being deleted again, with the broker's defaults). The caller closes and destroys it. */
static inline rd_kafka_t *dlqt_admin_new(void)
{
    kafka_settings_t s = wt_settings();
    char err[512];
    rd_kafka_t *rk = dlq_reader_new(&s, err, sizeof err);
    if (!rk)
        fail_msg("%s", err);
    return rk;
}

static inline void dlqt_delete_topic(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    assert_non_null(dt);
    dlqt_admin_topic_request(rk, dlqt_send_delete_topic, &dt, dlqt_delete_topic_results);
    rd_kafka_DeleteTopic_destroy(dt);
}

/* Deletes the records of `partition` of `topic` before `before` (what retention does). */
static inline void dlqt_delete_records(rd_kafka_t *rk, const char *topic, int32_t partition,
                                       int64_t before)
{
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(tp, topic, partition)->offset = before;
    rd_kafka_DeleteRecords_t *dr = rd_kafka_DeleteRecords_new(tp);
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteRecords(rk, &dr, 1, NULL, q);
    rd_kafka_event_t *ev = dlqt_admin_wait(q);
    const rd_kafka_topic_partition_list_t *res =
        rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
    assert_non_null(res);
    assert_int_equal(res->cnt, 1);
    assert_int_equal(res->elems[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(dr);
}

#endif
