/* Unit tests of the producers' row vetting (producer_record_id, producer_record_utf8): what
 * is never published, and that every such row is counted by reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "producer.h"

typedef struct {
    producer_ctx_t ctx;
} fx_t;

static int setup(void **state)
{
    static const char *const labels[] = {"source", "entity", "reason", NULL};
    fx_t *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->ctx.source = "ploomes";
    f->ctx.metrics = metrics_new();
    f->ctx.m_skipped = metrics_counter_new(f->ctx.metrics, "skipped_total", "test", labels);
    if (!f->ctx.metrics || !f->ctx.m_skipped)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    metrics_free(f->ctx.metrics);
    free(f);
    return 0;
}

static double skipped(fx_t *f, const char *reason)
{
    return metrics_value(f->ctx.m_skipped, (const char *[]){"ploomes", "contact", reason});
}

/* Ids must be integers >= 1: a negative one saved as the Ploomes cursor would make every
 * later keyset query invalid (the scan would fail on every poll, forever). */
static void test_record_id(void **state)
{
    fx_t *f = *state;
    static const struct {
        const char *row;
        bool ok;
        int64_t id;
    } CASES[] = {
        {"{\"Id\":105401839}", true, 105401839},
        {"{\"Id\":\"4000000000\"}", true, 4000000000LL}, /* decimal string, past INT_MAX */
        {"{\"Id\":1}", true, 1},
        {"{\"Id\":0}", false, 0},
        {"{\"Id\":-7}", false, 0},
        {"{\"Id\":\"-7\"}", false, 0},
        {"{\"Id\":1.5}", false, 0},
        {"{\"Id\":1e300}", false, 0},
        {"{\"Id\":\"12a\"}", false, 0},
        {"{\"Id\":null}", false, 0},
        {"{\"Name\":\"no id\"}", false, 0},
        {"{\"Id\":9007199254740991}", true, 9007199254740991LL}, /* 2^53-1: the safe bound */
        {"{\"Id\":9007199254740992}", false, 0},                 /* 2^53 */
        {"{\"Id\":9007199254740993}", false, 0},                 /* reads as 2^53: unsafe */
        {"{\"Id\":\"9007199254740993\"}", true, 9007199254740993LL}, /* text is exact */
        {"[1,2]", false, 0},
        {"\"text\"", false, 0},
    };
    size_t bad = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        cJSON *row = cJSON_Parse(CASES[i].row);
        assert_non_null(row);
        int64_t id = -1;
        bool ok = producer_record_id(&f->ctx, "contact", row, "Id", (int)i, &id);
        if (ok != CASES[i].ok)
            fail_msg("row %s: got %s", CASES[i].row, ok ? "usable" : "skipped");
        if (ok)
            assert_int_equal(id, CASES[i].id);
        else
            bad++;
        cJSON_Delete(row);
    }
    assert_true(skipped(f, PRODUCER_SKIP_BAD_ID) == (double)bad);
}

static void test_record_utf8(void **state)
{
    fx_t *f = *state;
    cJSON *good = cJSON_Parse("{\"Id\":1,\"Name\":\"Jos\\u00e9\",\"Tags\":[{\"Name\":\"ok\"}]}");
    assert_true(producer_record_utf8(&f->ctx, "contact", good, 1));
    cJSON_Delete(good);
    /* cJSON keeps raw bytes as they came: an invalid sequence deep in the record */
    cJSON *bad = cJSON_Parse("{\"Id\":2,\"Tags\":[{\"Name\":\"Jos\xC3(\"}]}");
    assert_non_null(bad);
    assert_false(producer_record_utf8(&f->ctx, "contact", bad, 2));
    cJSON_Delete(bad);
    /* an invalid key counts too */
    cJSON *badkey = cJSON_Parse("{\"Id\":3,\"N\xFF\":1}");
    assert_non_null(badkey);
    assert_false(producer_record_utf8(&f->ctx, "contact", badkey, 3));
    cJSON_Delete(badkey);
    assert_true(skipped(f, PRODUCER_SKIP_INVALID_UTF8) == 2.0);
}

/* A \u0000 escape would cut a string short in cJSON: it is marked, and the row skipped
 * (nul_character), never published shortened. An escaped backslash before u0000 is text. */
static void test_nul_escapes(void **state)
{
    fx_t *f = *state;
    char body[] = "{\"value\":[{\"Id\":1,\"Name\":\"ab\\u0000cd\"},"
                  "{\"Id\":2,\"Name\":\"x\\\\u0000y\"},{\"Id\":3,\"Name\":\"ok\"}]}";
    size_t len = strlen(body);
    assert_int_equal(producer_mark_nul_escapes(body, &len), 1);
    assert_int_equal(len, strlen(body));
    cJSON *root = cJSON_Parse(body);
    assert_non_null(root);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "value");
    assert_false(producer_record_utf8(&f->ctx, "contact", cJSON_GetArrayItem(rows, 0), 1));
    /* the record is not shortened: the marker keeps "cd" */
    assert_int_equal(strlen(cJSON_GetArrayItem(rows, 0)->child->next->valuestring), 6);
    assert_true(producer_record_utf8(&f->ctx, "contact", cJSON_GetArrayItem(rows, 1), 2));
    assert_string_equal(cJSON_GetArrayItem(rows, 1)->child->next->valuestring, "x\\u0000y");
    assert_true(producer_record_utf8(&f->ctx, "contact", cJSON_GetArrayItem(rows, 2), 3));
    cJSON_Delete(root);
    assert_true(skipped(f, PRODUCER_SKIP_NUL) == 1.0);
    assert_true(skipped(f, PRODUCER_SKIP_INVALID_UTF8) == 0.0);
}

/* A record too large for KAFKA_MAX_MESSAGE_BYTES is skipped (too_large), never sent. */
static void test_record_fits(void **state)
{
    fx_t *f = *state;
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.kafka_max_message_bytes = 64 * 1024;
    f->ctx.cfg = &cfg;
    assert_true(producer_record_fits(&f->ctx, "contact", 1, 1000));
    assert_false(producer_record_fits(&f->ctx, "contact", 2, 64 * 1024));
    assert_true(skipped(f, PRODUCER_SKIP_TOO_LARGE) == 1.0);
    f->ctx.cfg = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_escapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record_fits, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
