/* Unit test (no broker needed: librdkafka only resolves its configuration): the consumer's
 * prefetch is bounded (issue 13, worker RSS). librdkafka's defaults queue up to 64 MiB and
 * 100000 messages per partition ahead of the application and fetch up to 50 MiB per response,
 * so a worker's RSS grew with the backlog; kafka_conf_consumer_sizes() now bounds the queue,
 * which also bounds the response size, while the largest record still fits a response. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka.h"
#include "log.h"

/* The value of `name` in the configuration a consumer made from `s` actually runs with (after
 * librdkafka's own adjustments at rd_kafka_new()). */
static long long effective(const kafka_settings_t *s, const char *name)
{
    char err[512];
    rd_kafka_conf_t *conf = kafka_conf_from_settings(s, err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(kafka_conf_consumer_sizes(conf, s, err, sizeof err), 0);
    assert_int_equal(kafka_conf_set(conf, "group.id", "test-kafka-prefetch", err, sizeof err), 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == NULL)
        fail_msg("rd_kafka_new: %s", err);
    char buf[64];
    size_t size = sizeof buf;
    assert_int_equal(rd_kafka_conf_get((rd_kafka_conf_t *)rd_kafka_conf(rk), name, buf, &size),
                     RD_KAFKA_CONF_OK);
    rd_kafka_destroy(rk);
    char *end = NULL;
    long long v = strtoll(buf, &end, 10);
    assert_true(end != buf && *end == '\0');
    return v;
}

static void test_default_prefetch_is_bounded(void **state)
{
    (void)state;
    kafka_settings_t s = {.bootstrap_servers = "127.0.0.1:1"}; /* KAFKA_MAX_MESSAGE_BYTES 8 MiB */
    /* the queue: 1 MiB and 1000 messages per partition (librdkafka: 64 MiB, 100000) */
    assert_int_equal(effective(&s, "queued.max.messages.kbytes"), KAFKA_PREFETCH_KBYTES);
    assert_int_equal(effective(&s, "queued.min.messages"), KAFKA_PREFETCH_MESSAGES);
    /* one fetch response: at most ~1 MB (librdkafka's default is 50 MiB) */
    assert_true(effective(&s, "fetch.max.bytes") <= 1048576);
    /* ... and the largest record (the DLQ's) still fits a response and a partition fetch */
    long long need = (long long)kafka_topic_max_message_bytes(&s, KAFKA_TOPIC_DLQ);
    assert_true(effective(&s, "receive.message.max.bytes") >= need + 512);
    assert_true(effective(&s, "max.partition.fetch.bytes") >= need);
}

static void test_passthrough_prefetch_is_kept(void **state)
{
    (void)state;
    static const char *const names[] = {"queued.max.messages.kbytes", "queued.min.messages"};
    static const char *const values[] = {"65536", "100000"};
    kafka_settings_t s = {.bootstrap_servers = "127.0.0.1:1",
                          .names = names,
                          .values = values,
                          .count = 2};
    assert_int_equal(effective(&s, "queued.max.messages.kbytes"), 65536);
    assert_int_equal(effective(&s, "queued.min.messages"), 100000);
}

/* The heartbeat (kafka_conf_consumer_defaults): 1 s instead of librdkafka's 3 s, so a joining
 * instance waits at most ~1 s for the members to rejoin; a passthrough value is kept, and a
 * session shorter than 3 heartbeats keeps librdkafka's default. */
static long long heartbeat(const kafka_settings_t *s)
{
    char err[512];
    rd_kafka_conf_t *conf = kafka_conf_from_settings(s, err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(kafka_conf_consumer_defaults(conf, s, err, sizeof err), 0);
    char buf[64];
    size_t size = sizeof buf;
    assert_int_equal(rd_kafka_conf_get(conf, "heartbeat.interval.ms", buf, &size),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_destroy(conf);
    return strtoll(buf, NULL, 10);
}

static void test_heartbeat_default(void **state)
{
    (void)state;
    kafka_settings_t plain = {.bootstrap_servers = "127.0.0.1:1"};
    assert_int_equal(heartbeat(&plain), KAFKA_HEARTBEAT_INTERVAL_MS);

    static const char *const hb_names[] = {"heartbeat.interval.ms"};
    static const char *const hb_values[] = {"2500"};
    kafka_settings_t set = {.bootstrap_servers = "127.0.0.1:1",
                            .names = hb_names, .values = hb_values, .count = 1};
    assert_int_equal(heartbeat(&set), 2500);

    static const char *const st_names[] = {"session.timeout.ms"};
    static const char *const st_values[] = {"2000"};
    kafka_settings_t short_session = {.bootstrap_servers = "127.0.0.1:1",
                                      .names = st_names, .values = st_values, .count = 1};
    assert_int_equal(heartbeat(&short_session), 3000); /* librdkafka's own */
}

int main(void)
{
    log_init("test_kafka_prefetch", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_prefetch_is_bounded),
        cmocka_unit_test(test_passthrough_prefetch_is_kept),
        cmocka_unit_test(test_heartbeat_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
