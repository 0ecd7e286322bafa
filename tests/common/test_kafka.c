/* Unit tests (no broker): kafka_ configuration errors and secret masking, topic names, and the
 * dead-letter header list (names, order, truncation, scrubbing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kafka.h"
#include "kafka_dlq.h"
#include "log.h"
#include "testenv.h"

static void test_topic_names(void **state)
{
    (void)state;
    static const struct {
        const char *prefix;
        kafka_topic_id_t id;
        const char *expect;
    } rows[] = {
        {NULL, KAFKA_TOPIC_PLOOMES_CONTACTS, "ploomes.contacts"},
        {"", KAFKA_TOPIC_PLOOMES_TASKS, "ploomes.tasks"},
        {"acme.", KAFKA_TOPIC_PLOOMES_INTERACTIONS, "acme.ploomes.interactions"},
        {"acme-", KAFKA_TOPIC_MILVUS_CLIENTS, "acme-milvus.clients"},
        {"x_", KAFKA_TOPIC_DLQ, "x_pipeline.dlq"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[KAFKA_TOPIC_NAME_MAX];
        assert_int_equal(kafka_topic_name(buf, sizeof buf, rows[i].prefix, rows[i].id), 0);
        assert_string_equal(buf, rows[i].expect);
    }
    char small[8];
    assert_int_equal(kafka_topic_name(small, sizeof small, "", KAFKA_TOPIC_DLQ),
                     KAFKA_ERR_INVALID);
    char big[400];
    char longprefix[300];
    memset(longprefix, 'p', sizeof longprefix - 1);
    longprefix[sizeof longprefix - 1] = '\0';
    assert_int_equal(kafka_topic_name(big, sizeof big, longprefix, KAFKA_TOPIC_DLQ),
                     KAFKA_ERR_INVALID);
    assert_int_equal(kafka_topic_name(big, sizeof big, "", KAFKA_TOPIC_COUNT), KAFKA_ERR_INVALID);
    assert_null(kafka_topic_base(KAFKA_TOPIC_COUNT));
}

static void test_topic_for_entity(void **state)
{
    (void)state;
    static const struct {
        const char *source, *entity;
        int rc;
        kafka_topic_id_t id;
    } rows[] = {
        {"ploomes", "contact", 0, KAFKA_TOPIC_PLOOMES_CONTACTS},
        {"ploomes", "task", 0, KAFKA_TOPIC_PLOOMES_TASKS},
        {"ploomes", "interaction", 0, KAFKA_TOPIC_PLOOMES_INTERACTIONS},
        {"milvus", "client", 0, KAFKA_TOPIC_MILVUS_CLIENTS},
        {"milvus", "contact", KAFKA_ERR_INVALID, 0},
        {"ploomes", "client", KAFKA_ERR_INVALID, 0},
        {"", "", KAFKA_ERR_INVALID, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        kafka_topic_id_t id = KAFKA_TOPIC_COUNT;
        assert_int_equal(kafka_topic_for_entity(rows[i].source, rows[i].entity, &id), rows[i].rc);
        if (rows[i].rc == 0)
            assert_int_equal(id, rows[i].id);
    }
    kafka_topic_id_t id;
    assert_int_equal(kafka_topic_for_entity(NULL, "task", &id), KAFKA_ERR_INVALID);
}

static void test_secret_names(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool secret;
    } rows[] = {
        {"sasl.password", true},          {"ssl.key.password", true},
        {"ssl.keystore.password", true},  {"sasl.oauthbearer.client.secret", true},
        {"SASL.PASSWORD", true},          {"ssl.key.pem", true},
        {"sasl.oauthbearer.config", true}, {"sasl.username", false},
        {"security.protocol", false},     {"bootstrap.servers", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_int_equal(kafka_property_is_secret(rows[i].name), rows[i].secret);
}

static void test_conf_errors_name_property_never_secret(void **state)
{
    (void)state;
    char err[512];
    /* A bad ordinary value: the property is named, librdkafka's reason given. */
    const char *n1[] = {"socket.timeout.ms"};
    const char *v1[] = {"not-a-number"};
    rd_kafka_conf_t *conf = kafka_conf_new("127.0.0.1:1", n1, v1, 1, err, sizeof err);
    assert_null(conf);
    assert_non_null(strstr(err, "socket.timeout.ms"));

    /* An unknown property that looks like a secret: name only, value hidden. */
    const char *n2[] = {"security.protocol", "sasl.passwordz"};
    const char *v2[] = {"PLAINTEXT", "hunter2-very-secret"};
    conf = kafka_conf_new("127.0.0.1:1", n2, v2, 2, err, sizeof err);
    assert_null(conf);
    assert_non_null(strstr(err, "sasl.passwordz"));
    assert_non_null(strstr(err, "value hidden"));
    assert_null(strstr(err, "hunter2"));

    /* An invalid enum value for a non-secret property is shown as librdkafka reports it. */
    const char *n3[] = {"security.protocol"};
    const char *v3[] = {"CARRIER_PIGEON"};
    conf = kafka_conf_new("127.0.0.1:1", n3, v3, 1, err, sizeof err);
    assert_null(conf);
    assert_non_null(strstr(err, "security.protocol"));

    assert_null(kafka_conf_new("", NULL, NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "KAFKA_BOOTSTRAP_SERVERS"));

    const char *n4[] = {"client.id", "socket.timeout.ms"};
    const char *v4[] = {"unit", "5000"};
    conf = kafka_conf_new("127.0.0.1:1", n4, v4, 2, err, sizeof err);
    assert_non_null(conf);
    char buf[64];
    size_t sz = sizeof buf;
    assert_int_equal(rd_kafka_conf_get(conf, "socket.timeout.ms", buf, &sz), RD_KAFKA_CONF_OK);
    assert_string_equal(buf, "5000");
    rd_kafka_conf_destroy(conf);
}

/* ---- dead-letter headers -------------------------------------------------------------------- */

static const kafka_header_t orig_headers[] = {
    {"source", "ploomes", 7},
    {"entity", "contact", 7},
    {"__connect.errors.topic", "old-topic", 9}, /* from an earlier dead-lettering: dropped */
    {"nullhdr", NULL, 0},
};

static kafka_record_t sample_record(void)
{
    kafka_record_t r = {
        .topic = "acme.ploomes.contacts",
        .partition = 4,
        .offset = 1234567890123LL,
        .key = "42",
        .key_len = 2,
        .value = "{\"Id\":42}",
        .value_len = 9,
        .headers = orig_headers,
        .header_count = 4,
        .timestamp_ms = 1700000000000LL,
        .timestamp_type = RD_KAFKA_TIMESTAMP_CREATE_TIME,
    };
    return r;
}

static const char *hval(const kafka_header_t *h, size_t n, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(h[i].name, name) == 0) {
            assert_null(v); /* each name once */
            v = h[i].value;
        }
    }
    return v;
}

/* A producer that never connects (headers are built without a broker). */
static kafka_producer_t *offline_producer(bool dlq)
{
    char err[256];
    kafka_settings_t s = {.bootstrap_servers = "127.0.0.1:1"};
    kafka_producer_t *p = dlq ? kafka_producer_new_dlq(&s, "unit", err, sizeof err)
                              : kafka_producer_new(&s, "unit", err, sizeof err);
    if (!p)
        fail_msg("producer: %s", err);
    return p;
}

static void test_dlq_headers(void **state)
{
    (void)state;
    char err[256];
    kafka_producer_t *p = offline_producer(false);
    const char *secrets[] = {"SuperSecretKey123", "ab" /* too short: ignored */};
    kafka_dlq_opts_t o = {.producer = p,
                          .topic_prefix = "acme.",
                          .connector_name = "clients-to-milvus",
                          .task_id = "host1-77",
                          .secrets = secrets,
                          .secret_count = 2};
    kafka_dlq_t *d = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(d);
    assert_string_equal(kafka_dlq_topic(d), "acme.pipeline.dlq");

    /* A 2000-byte response with a 2-byte UTF-8 character straddling the 1 KiB cut and the
     * secret inside. */
    char resp[2000];
    memset(resp, 'a', sizeof resp);
    memcpy(resp + 10, "SuperSecretKey123", 17);
    /* After scrubbing (-14 bytes), put "é" (0xC3 0xA9) at bytes 1023..1024 of the result. */
    resp[1023 + 14] = (char)0xC3;
    resp[1024 + 14] = (char)0xA9;
    kafka_record_t rec = sample_record();
    kafka_dlq_error_t e = {
        .class_name = "workers.clients_to_milvus",
        .exception_class = "HttpStatus503",
        .exception_message = "POST /cliente/criar with token SuperSecretKey123 failed",
        .attempts = 3,
        .http_status = 503,
        .response = resp,
        .response_len = sizeof resp,
        .first_failure_ms = 1700000000123LL,
        .last_failure_ms = 1700000060456LL,
    };
    kafka_header_t *h = NULL;
    size_t n = 0;
    assert_int_equal(kafka_dlq_build_headers(d, &rec, &e, 0, &h, &n), 0);
    assert_int_equal(n, 3 + 14);
    /* Original headers first, in order, the stale error header dropped, null kept as null. */
    assert_string_equal(h[0].name, "source");
    assert_string_equal(h[0].value, "ploomes");
    assert_string_equal(h[1].name, "entity");
    assert_string_equal(h[2].name, "nullhdr");
    assert_null(h[2].value);
    static const struct {
        const char *name, *value;
    } want[] = {
        {KAFKA_DLQ_H_TOPIC, "acme.ploomes.contacts"},
        {KAFKA_DLQ_H_PARTITION, "4"},
        {KAFKA_DLQ_H_OFFSET, "1234567890123"},
        {KAFKA_DLQ_H_CONNECTOR, "clients-to-milvus"},
        {KAFKA_DLQ_H_TASK, "host1-77"},
        {KAFKA_DLQ_H_STAGE, "TASK_PUT"},
        {KAFKA_DLQ_H_CLASS, "workers.clients_to_milvus"},
        {KAFKA_DLQ_H_EXC_CLASS, "HttpStatus503"},
        {KAFKA_DLQ_H_EXC_MESSAGE, "POST /cliente/criar with token *** failed"},
        {KAFKA_DLQ_H_ATTEMPTS, "3"},
        {KAFKA_DLQ_H_HTTP_STATUS, "503"},
        {KAFKA_DLQ_H_FIRST_FAILURE, "2023-11-14T22:13:20.123Z"},
        {KAFKA_DLQ_H_LAST_FAILURE, "2023-11-14T22:14:20.456Z"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *v = hval(h, n, want[i].name);
        if (!v || strcmp(v, want[i].value) != 0)
            fail_msg("header %s = %s, want %s", want[i].name, v ? v : "(missing)", want[i].value);
    }
    const char *r = hval(h, n, KAFKA_DLQ_H_RESPONSE);
    assert_non_null(r);
    assert_null(strstr(r, "SuperSecret"));
    assert_non_null(strstr(r, "***"));
    /* Cut before the straddling character: 1023 bytes, all valid UTF-8. */
    assert_int_equal(strlen(r), 1023);
    kafka_dlq_headers_free(h, n);

    /* Defaults: no class name → connector, no status → "0", no response → "", first = last,
     * last = now. Invalid UTF-8 in the message becomes '?'. */
    kafka_dlq_error_t e2 = {.exception_class = "CurlTimeout",
                            .exception_message = "bad \xff byte",
                            .attempts = 1};
    assert_int_equal(kafka_dlq_build_headers(d, &rec, &e2, 1700000000000LL, &h, &n), 0);
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_CLASS), "clients-to-milvus");
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_HTTP_STATUS), "0");
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_RESPONSE), "");
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_EXC_MESSAGE), "bad ? byte");
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_FIRST_FAILURE), "2023-11-14T22:13:20.000Z");
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_LAST_FAILURE), "2023-11-14T22:13:20.000Z");
    kafka_dlq_headers_free(h, n);

    /* Missing exception class: refused, callback never called. */
    kafka_dlq_error_t e3 = {.exception_message = "x"};
    assert_int_equal(kafka_dlq_send(d, &rec, &e3, NULL, NULL, err, sizeof err), KAFKA_ERR_INVALID);

    char id[300];
    kafka_dlq_instance_id(id, sizeof id);
    assert_non_null(strchr(id, '-'));

    kafka_dlq_free(d);
    assert_int_equal(kafka_producer_close(p, 100, err, sizeof err), 0);
}

/* Issue 12 (secrets scan): an API that echoes a key back URL-encoded or in base64 must not get
 * it into a dead letter either ("k+y/Secret=1" is "k%2By%2FSecret%3D1" and "ayt5L1NlY3JldD0x"). */
static void test_dlq_scrubs_echoed_secret_forms(void **state)
{
    (void)state;
    char err[256];
    kafka_producer_t *p = offline_producer(false);
    const char *secrets[] = {"k+y/Secret=1"};
    kafka_dlq_opts_t o = {.producer = p, .connector_name = "tasks-to-milvus",
                          .secrets = secrets, .secret_count = 1};
    kafka_dlq_t *d = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(d);
    const char *resp = "{\"message\":\"token k%2By%2FSecret%3D1 (ayt5L1NlY3JldD0x) refused\"}";
    kafka_record_t rec = sample_record();
    kafka_dlq_error_t e = {.exception_class = "HttpStatus400",
                           .exception_message = "GET /x?token=k%2By%2FSecret%3D1 answered 400",
                           .attempts = 1, .http_status = 400,
                           .response = resp, .response_len = strlen(resp)};
    kafka_header_t *h = NULL;
    size_t n = 0;
    assert_int_equal(kafka_dlq_build_headers(d, &rec, &e, 1700000000000LL, &h, &n), 0);
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_EXC_MESSAGE), "GET /x?token=*** answered 400");
    assert_string_equal(hval(h, n, KAFKA_DLQ_H_RESPONSE),
                        "{\"message\":\"token *** (***) refused\"}");
    kafka_dlq_headers_free(h, n);
    kafka_dlq_free(d);
    assert_int_equal(kafka_producer_close(p, 100, err, sizeof err), 0);
}

/* Issue 8 item 15: the long caller texts are capped, so a dead letter's error headers stay far
 * inside the DLQ topic's extra 64 KiB. */
static void test_dlq_headers_capped(void **state)
{
    (void)state;
    char err[256];
    kafka_producer_t *p = offline_producer(true);
    kafka_dlq_opts_t o = {.producer = p, .connector_name = "clients-to-milvus"};
    kafka_dlq_t *d = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(d);
    size_t big = 100 * 1024;
    char *text = malloc(big + 1);
    assert_non_null(text);
    memset(text, 'z', big);
    text[big] = '\0';
    kafka_record_t rec = sample_record();
    kafka_dlq_error_t e = {.class_name = text,
                           .exception_class = text,
                           .exception_message = text,
                           .response = text,
                           .response_len = big};
    kafka_header_t *h = NULL;
    size_t n = 0;
    assert_int_equal(kafka_dlq_build_headers(d, &rec, &e, 1700000000000LL, &h, &n), 0);
    assert_int_equal(strlen(hval(h, n, KAFKA_DLQ_H_CLASS)), KAFKA_DLQ_CLASS_MAX);
    assert_int_equal(strlen(hval(h, n, KAFKA_DLQ_H_EXC_CLASS)), KAFKA_DLQ_CLASS_MAX);
    assert_int_equal(strlen(hval(h, n, KAFKA_DLQ_H_EXC_MESSAGE)), KAFKA_DLQ_MESSAGE_MAX);
    assert_int_equal(strlen(hval(h, n, KAFKA_DLQ_H_RESPONSE)), KAFKA_DLQ_RESPONSE_MAX);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += strlen(h[i].name) + h[i].value_len;
    assert_true(total < 16 * 1024);
    kafka_dlq_headers_free(h, n);
    free(text);
    kafka_dlq_free(d);
    assert_int_equal(kafka_producer_close(p, 100, err, sizeof err), 0);
}

/* Issue 8 item 15: topic limits, producer limits and consumer fetch sizes follow
 * KAFKA_MAX_MESSAGE_BYTES; a zeroed settings struct means the 8 MiB default. */
static void test_message_sizes(void **state)
{
    (void)state;
    static const struct {
        int64_t setting, topic, dlq;
    } rows[] = {
        {0, 8388608, 8454144},        /* SPEC §6 default, DLQ + 64 KiB */
        {-5, 8388608, 8454144},       /* nonsense = default */
        {1048576, 1048576, 1114112},
        {999000000, 999000000, 999065536},   /* KAFKA_MAX_MESSAGE_BYTES' upper bound */
        {2000000000, 999934464, 1000000000}, /* the DLQ stays inside librdkafka's range */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        kafka_settings_t s = {.bootstrap_servers = "127.0.0.1:1",
                              .max_message_bytes = rows[i].setting};
        assert_int_equal(kafka_topic_max_message_bytes(&s, KAFKA_TOPIC_PLOOMES_TASKS),
                         rows[i].topic);
        assert_int_equal(kafka_topic_max_message_bytes(&s, KAFKA_TOPIC_DLQ), rows[i].dlq);
        /* The record room leaves Kafka's batch framing and librdkafka's record overhead. */
        assert_true(kafka_record_max_bytes(&s, false) < rows[i].topic - 61);
        assert_true(kafka_record_max_bytes(&s, false) > rows[i].topic - 512);
        assert_int_equal(kafka_record_max_bytes(&s, true) - kafka_record_max_bytes(&s, false),
                         rows[i].dlq - rows[i].topic);
    }
    assert_int_equal(kafka_topic_max_message_bytes(NULL, KAFKA_TOPIC_DLQ), 8454144);

    /* Consumers are raised to fetch the DLQ's largest record; a larger passthrough stays. */
    static const char *const names[] = {"fetch.max.bytes"};
    static const char *const values[] = {"90000000"};
    static const struct {
        int64_t setting;
        size_t passthrough; /* how many of names/values */
        const char *name, *want;
    } conf_rows[] = {
        {20000000, 0, "max.partition.fetch.bytes", "20065536"},
        {20000000, 0, "fetch.max.bytes", "52428800"}, /* librdkafka's default is larger */
        {60000000, 1, "max.partition.fetch.bytes", "60065536"},
        {60000000, 1, "fetch.max.bytes", "90000000"},            /* passthrough kept */
        {60000000, 1, "receive.message.max.bytes", "100000000"}, /* >= fetch + 512 already */
        {150000000, 0, "fetch.max.bytes", "150065536"},
        {150000000, 0, "receive.message.max.bytes", "150066048"}, /* fetch.max.bytes + 512 */
    };
    for (size_t i = 0; i < sizeof conf_rows / sizeof conf_rows[0]; i++) {
        char err[256], buf[64];
        kafka_settings_t s = {.bootstrap_servers = "127.0.0.1:1",
                              .names = names,
                              .values = values,
                              .count = conf_rows[i].passthrough,
                              .max_message_bytes = conf_rows[i].setting};
        rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
        assert_non_null(conf);
        assert_int_equal(kafka_conf_consumer_sizes(conf, &s, err, sizeof err), 0);
        size_t size = sizeof buf;
        assert_int_equal(rd_kafka_conf_get(conf, conf_rows[i].name, buf, &size), 0);
        if (strcmp(buf, conf_rows[i].want) != 0)
            fail_msg("row %zu: %s = %s, want %s", i, conf_rows[i].name, buf, conf_rows[i].want);
        rd_kafka_conf_destroy(conf);
    }
}

static bool events_queued(void *ctx)
{
    return rd_kafka_outq_len(kafka_producer_handle(ctx)) > 0;
}

/* An unreachable broker queues error events; they are not undelivered messages: an idle
 * producer reports nothing pending and closes cleanly (it used to report them as undelivered
 * messages and close with KAFKA_ERR_DELIVERY). */
static void test_idle_producer_has_nothing_undelivered(void **state)
{
    (void)state;
    char err[256] = "";
    kafka_producer_t *p = offline_producer(false);
    assert_true(testenv_wait_until(events_queued, p, 10000, 10));
    assert_int_equal(kafka_producer_outq_len(p), 0);
    assert_int_equal(kafka_producer_flush(p, 100, err, sizeof err), 0);
    assert_int_equal(kafka_producer_close(p, 100, err, sizeof err), 0);
}

static void test_batch_counters(void **state)
{
    (void)state;
    kafka_batch_t *b = kafka_batch_new();
    assert_non_null(b);
    assert_int_equal(kafka_batch_sent(b), 0);
    assert_int_equal(kafka_batch_pending(b), 0);
    assert_int_equal(kafka_batch_reset(b), 0);
    char buf[64];
    assert_string_equal(kafka_batch_error(b, buf, sizeof buf), "");
    kafka_batch_free(b);
    kafka_batch_free(NULL);
    assert_string_equal(kafka_status_name(KAFKA_ERR_FATAL), "fatal");
}

int main(void)
{
    log_init("test_kafka", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_topic_for_entity),
        cmocka_unit_test(test_secret_names),
        cmocka_unit_test(test_conf_errors_name_property_never_secret),
        cmocka_unit_test(test_dlq_headers),
        cmocka_unit_test(test_dlq_headers_capped),
        cmocka_unit_test(test_dlq_scrubs_echoed_secret_forms),
        cmocka_unit_test(test_message_sizes),
        cmocka_unit_test(test_idle_producer_has_nothing_undelivered),
        cmocka_unit_test(test_batch_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
