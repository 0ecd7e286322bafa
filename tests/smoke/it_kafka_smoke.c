/* Smoke test: the toolchain against the real Kafka broker. Creates a topic through the Admin
 * API, produces one message with headers (idempotent producer), consumes it back and checks
 * key, value and every header byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

#include "testenv.h"

static rd_kafka_t *new_client(rd_kafka_type_t type, const char *group)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       testenv_require("KAFKA_BOOTSTRAP_SERVERS"), err, sizeof err),
                     RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_PRODUCER) {
        assert_int_equal(rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err),
                         RD_KAFKA_CONF_OK);
    } else {
        assert_int_equal(rd_kafka_conf_set(conf, "group.id", group, err, sizeof err), RD_KAFKA_CONF_OK);
        assert_int_equal(rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err),
                         RD_KAFKA_CONF_OK);
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof err); /* takes conf on success */
    if (!rk)
        fail_msg("rd_kafka_new: %s", err);
    return rk;
}

static void create_topic(rd_kafka_t *rk, const char *topic)
{
    char err[512];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, err, sizeof err);
    assert_non_null(nt);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    assert_non_null(ev);
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    assert_non_null(res);
    size_t n = 0;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_topic_result_error(tr[0]), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    int *status = m->_private;
    *status = m->err ? 2 : 1;
}

static void produce_consume_with_headers(void **state)
{
    (void)state;
    char topic[128], group[128];
    testenv_unique(topic, sizeof topic, "smoke.topic.");
    testenv_unique(group, sizeof group, "smoke.group.");

    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", testenv_require("KAFKA_BOOTSTRAP_SERVERS"), err,
                      sizeof err);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_t *producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(producer);
    create_topic(producer, topic);

    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
    rd_kafka_header_add(hdrs, "source", -1, "ploomes", -1);
    rd_kafka_header_add(hdrs, "entity", -1, "contact", -1);
    int status = 0;
    rd_kafka_resp_err_t perr = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("42", 2),
        RD_KAFKA_V_VALUE("{\"Id\":42}", 9), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&status), RD_KAFKA_V_END);
    assert_int_equal(perr, RD_KAFKA_RESP_ERR_NO_ERROR); /* headers now owned by the message */
    assert_int_equal(rd_kafka_flush(producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(status, 1);
    rd_kafka_destroy(producer);

    rd_kafka_t *consumer = new_client(RD_KAFKA_CONSUMER, group);
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(consumer, topics), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(topics);

    rd_kafka_message_t *msg = NULL;
    int64_t deadline = testenv_now_ms() + 60000;
    while (!msg && testenv_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 500);
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        msg = m;
    }
    assert_non_null(msg);
    assert_int_equal(msg->key_len, 2);
    assert_memory_equal(msg->key, "42", 2);
    assert_int_equal(msg->len, 9);
    assert_memory_equal(msg->payload, "{\"Id\":42}", 9);
    rd_kafka_headers_t *got = NULL;
    assert_int_equal(rd_kafka_message_headers(msg, &got), RD_KAFKA_RESP_ERR_NO_ERROR);
    const void *val;
    size_t len;
    assert_int_equal(rd_kafka_header_get_last(got, "source", &val, &len), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(len, 7);
    assert_memory_equal(val, "ploomes", 7);
    assert_int_equal(rd_kafka_header_get_last(got, "entity", &val, &len), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_memory_equal(val, "contact", 7);
    rd_kafka_message_destroy(msg);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(produce_consume_with_headers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
