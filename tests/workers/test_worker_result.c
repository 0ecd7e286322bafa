/* Unit tests of workers/worker_result.c (result helpers, api → outcome mapping, parsing of a
 * record's value, owners, fetched-at) and of the runtime's local record queue. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "worker.h"
#include "worker_rt.h"

static void t_outcome_names(void **state)
{
    (void)state;
    assert_string_equal(worker_outcome_name(WORKER_DELIVERED), "delivered");
    assert_string_equal(worker_outcome_name(WORKER_SKIPPED), "skipped");
    assert_string_equal(worker_outcome_name(WORKER_DEDUP_HIT), "dedup_hit");
    assert_string_equal(worker_outcome_name(WORKER_DEAD), "dead_lettered");
    assert_string_equal(worker_outcome_name(WORKER_RELEASE), "released");
    assert_string_equal(worker_outcome_name(WORKER_AUTH), "auth");
}

static void t_set_and_dead(void **state)
{
    (void)state;
    worker_result_t r;
    memset(&r, 0, sizeof r);
    assert_int_equal(worker_result_set(&r, WORKER_SKIPPED, "no_tag"), WORKER_SKIPPED);
    assert_string_equal(r.reason, "no_tag");
    worker_result_clear(&r);
    assert_int_equal(worker_result_dead(&r, "InvalidDocument", "doc %s", "***.456.789-**"),
                     WORKER_DEAD);
    assert_string_equal(r.error_class, "InvalidDocument");
    assert_string_equal(r.reason, "InvalidDocument");
    assert_string_equal(r.message, "doc ***.456.789-**");
    assert_true(r.first_failure_ms > 0 && r.last_failure_ms >= r.first_failure_ms);
    worker_result_clear(&r);
    assert_int_equal(r.outcome, 0);
    assert_null(r.response);
}

static api_result_t api_res(api_outcome_t o, long status, const char *cls, const char *body,
                            int attempts)
{
    api_result_t a;
    memset(&a, 0, sizeof a);
    a.outcome = o;
    a.status = status;
    snprintf(a.error_class, sizeof a.error_class, "%s", cls);
    snprintf(a.message, sizeof a.message, "HTTP %ld: boom", status);
    a.body = strdup(body);
    a.body_len = strlen(body);
    a.attempts = attempts;
    snprintf(a.first_failure, sizeof a.first_failure, "2026-01-01T00:00:00.000Z");
    snprintf(a.last_failure, sizeof a.last_failure, "2026-01-01T00:00:02.500Z");
    return a;
}

static void t_from_api(void **state)
{
    (void)state;
    worker_result_t r;
    memset(&r, 0, sizeof r);
    api_result_t a = api_res(API_OK, 200, "", "{}", 1);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_DELIVERED);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.outcome, WORKER_DELIVERED); /* untouched (0) */
    api_result_clear(&a);

    a = api_res(API_RETRIABLE_EXHAUSTED, 503, "HttpStatus503", "down", 3);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_DEAD);
    assert_int_equal(r.attempts, 4); /* attempts add up */
    assert_int_equal(r.http_status, 503);
    assert_string_equal(r.error_class, "HttpStatus503");
    assert_string_equal(r.message, "HTTP 503: boom");
    assert_string_equal(r.response, "down");
    assert_int_equal(r.first_failure_ms, 1767225600000LL);
    assert_int_equal(r.last_failure_ms, 1767225602500LL);
    api_result_clear(&a);
    worker_result_clear(&r);

    a = api_res(API_AUTH, 401, "HttpStatus401", "", 1);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_AUTH);
    api_result_clear(&a);
    worker_result_clear(&r);

    /* Milvus answers a bad token with 403 (permanent); Ploomes' 403 is retried and exhausts */
    a = api_res(API_PERMANENT, 403, "HttpStatus403", "", 1);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_AUTH);
    api_result_clear(&a);
    worker_result_clear(&r);
    a = api_res(API_RETRIABLE_EXHAUSTED, 403, "HttpStatus403", "", 3);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_DEAD);
    api_result_clear(&a);
    worker_result_clear(&r);

    a = api_res(API_STOPPED, 0, "Stopped", "", 0);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_RELEASE);
    assert_string_equal(r.reason, "stopping");
    api_result_clear(&a);
    worker_result_clear(&r);

    a = api_res(API_PERMANENT, 422, "HttpStatus422", "bad field", 1);
    assert_int_equal(worker_result_from_api(&r, &a), WORKER_DEAD);
    assert_string_equal(r.error_class, "HttpStatus422");
    api_result_clear(&a);
    worker_result_clear(&r);

    /* the response excerpt is capped at 1 KiB */
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = '\0';
    a = api_res(API_PERMANENT, 400, "HttpStatus400", big, 1);
    worker_result_from_api(&r, &a);
    assert_int_equal(strlen(r.response), 1024);
    free(big);
    api_result_clear(&a);
    worker_result_clear(&r);
}

static kafka_record_t record(const char *value)
{
    kafka_record_t rec;
    memset(&rec, 0, sizeof rec);
    rec.topic = "t";
    rec.value = value;
    rec.value_len = value ? strlen(value) : 0;
    return rec;
}

static void t_parse_value(void **state)
{
    (void)state;
    struct {
        const char *value;
        const char *cls; /* NULL = parses */
    } cases[] = {
        {"{\"Id\":1}", NULL},
        {"  {\"a\":[1,{\"b\":\"\xc3\xa9\"}]}  ", NULL},
        {"{\"Id\":1", "InvalidJson"},
        {"", "InvalidJson"},
        {"{} x", "InvalidJson"},
        {"[1,2]", "NotAnObject"},
        {"\"text\"", "NotAnObject"},
        {"42", "NotAnObject"},
        {"null", "NotAnObject"},
        {"{\"a\":\"\xff\"}", "InvalidUtf8"},
        {"{\"a\":[\"ok\",\"\xed\xa0\x80\"]}", "InvalidUtf8"},
        {"{\"\xc0\xaf\":1}", "InvalidUtf8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kafka_record_t rec = record(cases[i].value);
        worker_result_t r;
        memset(&r, 0, sizeof r);
        cJSON *v = NULL;
        worker_outcome_t o = worker_parse_value(&rec, 1 << 20, &v, &r);
        if (cases[i].cls == NULL) {
            assert_int_equal(o, WORKER_DELIVERED);
            assert_true(cJSON_IsObject(v));
        } else {
            assert_int_equal(o, WORKER_DEAD);
            assert_null(v);
            assert_string_equal(r.error_class, cases[i].cls);
            assert_true(r.message[0] != '\0');
            assert_null(strstr(r.message, "\xff")); /* never the bad bytes */
        }
        cJSON_Delete(v);
        worker_result_clear(&r);
    }
    /* a tombstone and an over-long value */
    kafka_record_t tomb = record(NULL);
    worker_result_t r;
    memset(&r, 0, sizeof r);
    cJSON *v = NULL;
    assert_int_equal(worker_parse_value(&tomb, 100, &v, &r), WORKER_DEAD);
    assert_string_equal(r.error_class, "InvalidJson");
    worker_result_clear(&r);
    kafka_record_t big = record("{\"a\":\"0123456789\"}");
    assert_int_equal(worker_parse_value(&big, 10, &v, &r), WORKER_DEAD);
    assert_string_equal(r.error_class, "InvalidJson");
    worker_result_clear(&r);
}

static void t_owner_and_fetched_at(void **state)
{
    (void)state;
    char a[STORE_OWNER_MAX], b[STORE_OWNER_MAX];
    worker_owner_new("host-42", a, sizeof a);
    worker_owner_new("host-42", b, sizeof b);
    assert_int_equal(strncmp(a, "host-42/", 8), 0);
    assert_int_equal(strlen(a), 8 + 16);
    assert_string_not_equal(a, b); /* a nonce per handling */

    kafka_header_t h[] = {{"fetched-at", "2026-01-01T00:00:01.250Z", 24},
                          {"x-dlq.replayed-from", "t/0/5", 5}};
    kafka_record_t rec = record("{}");
    rec.headers = h;
    rec.header_count = 2;
    assert_int_equal(worker_fetched_at_ms(&rec), 1767225601250LL);
    h[0].value = "yesterday";
    h[0].value_len = 9;
    assert_int_equal(worker_fetched_at_ms(&rec), -1);
    rec.header_count = 0;
    assert_int_equal(worker_fetched_at_ms(&rec), -1);
}

/* The wait hook's local queue keeps records in arrival order through growth and wrap. */
static void t_queue_order(void **state)
{
    (void)state;
    worker_queue_t q;
    memset(&q, 0, sizeof q);
    kafka_record_t recs[100];
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 7 && next_in < 100; i++)
            assert_int_equal(worker_queue_push(&q, &recs[next_in++]), 0);
        for (int i = 0; i < 4 && next_out < next_in; i++)
            assert_ptr_equal(worker_queue_pop(&q), &recs[next_out++]);
    }
    while (next_out < next_in)
        assert_ptr_equal(worker_queue_pop(&q), &recs[next_out++]);
    assert_null(worker_queue_pop(&q));
    worker_queue_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_outcome_names),  cmocka_unit_test(t_set_and_dead),
        cmocka_unit_test(t_from_api),       cmocka_unit_test(t_parse_value),
        cmocka_unit_test(t_owner_and_fetched_at), cmocka_unit_test(t_queue_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
