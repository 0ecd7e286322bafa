/* Unit tests for milvus_pager: the stop rules, the truncation warning, the page request and
 * the per-pass seen set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "milvus_pager.h"

typedef struct {
    size_t rows, new_rows, asked;
    milvus_verdict_t verdict;
} verdict_case_t;

static const verdict_case_t VERDICTS[] = {
    {0, 0, 1000, MILVUS_STOP_EMPTY},         /* empty page */
    {1000, 1000, 1000, MILVUS_CONTINUE},     /* full page of new ids */
    {999, 999, 1000, MILVUS_STOP_SHORT},     /* shorter than asked: process, then stop */
    {1, 1, 1000, MILVUS_STOP_SHORT},
    {1000, 0, 1000, MILVUS_STOP_ALL_SEEN},   /* API ignored pagina: same rows again */
    {500, 0, 1000, MILVUS_STOP_ALL_SEEN},    /* all seen beats short */
    {1000, 1, 1000, MILVUS_CONTINUE},        /* one new id is progress */
    {1200, 1200, 1000, MILVUS_CONTINUE},     /* more than asked (cap ignored): keep going */
};

static void test_verdicts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VERDICTS / sizeof VERDICTS[0]; i++) {
        const verdict_case_t *c = &VERDICTS[i];
        milvus_verdict_t v = milvus_page_verdict(c->rows, c->new_rows, c->asked);
        if (v != c->verdict)
            print_error("case %zu: got %s\n", i, milvus_verdict_name(v));
        assert_int_equal(v, c->verdict);
    }
    assert_string_equal(milvus_verdict_name(MILVUS_STOP_ALL_SEEN), "all_seen");
}

typedef struct {
    milvus_verdict_t v;
    size_t rows, prev_rows;
    bool truncated;
} trunc_case_t;

static const trunc_case_t TRUNC[] = {
    /* page 1 had 1000, page 2 repeated it: exactly 1000 and no way to get more */
    {MILVUS_STOP_ALL_SEEN, 1000, 1000, true},
    /* page 2 answered a subset of page 1 again */
    {MILVUS_STOP_ALL_SEEN, 200, 1000, true},
    /* paging works and the data ended on a page boundary: not truncated */
    {MILVUS_STOP_EMPTY, 0, 1000, false},
    {MILVUS_STOP_SHORT, 500, 1000, false},
    {MILVUS_CONTINUE, 1000, 1000, false},
    /* a short page repeated: the API gave everything it had */
    {MILVUS_STOP_ALL_SEEN, 300, 300, false},
};

static void test_truncation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof TRUNC / sizeof TRUNC[0]; i++) {
        const trunc_case_t *c = &TRUNC[i];
        assert_int_equal(milvus_page_truncated(c->v, c->rows, c->prev_rows, 1000), c->truncated);
    }
}

static void test_page_query(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(milvus_page_query(1, 1000, out, sizeof out),
                     (int)strlen("/cliente/busca?status=3&pagina=1&total_registros=1000"));
    assert_string_equal(out, "/cliente/busca?status=3&pagina=1&total_registros=1000");
    milvus_page_query(3, 1000, out, sizeof out);
    assert_string_equal(out, "/cliente/busca?status=3&pagina=3&total_registros=1000");
    assert_int_equal(milvus_page_query(0, 1000, out, sizeof out), -1);
    char tiny[10];
    assert_int_equal(milvus_page_query(1, 1000, tiny, sizeof tiny), -1);
    assert_string_equal(tiny, "");
}

static void test_seen_set(void **state)
{
    (void)state;
    milvus_seen_t s = {0};
    assert_false(milvus_seen_has(&s, 1));
    /* add out of order, with duplicates, past the first growth */
    for (int64_t i = 2999; i >= 0; i--)
        assert_int_equal(milvus_seen_add(&s, i * 7), 0);
    for (int64_t i = 0; i < 3000; i++)
        assert_int_equal(milvus_seen_add(&s, i * 7), 0);
    assert_int_equal(s.count, 3000);
    for (int64_t i = 0; i < 3000; i++) {
        assert_true(milvus_seen_has(&s, i * 7));
        assert_false(milvus_seen_has(&s, i * 7 + 1));
    }
    assert_true(milvus_seen_add(&s, INT64_MAX) == 0 && milvus_seen_has(&s, INT64_MAX));
    assert_true(milvus_seen_add(&s, -5) == 0 && milvus_seen_has(&s, -5));
    milvus_seen_free(&s);
    assert_int_equal(s.count, 0);
    assert_false(milvus_seen_has(&s, 7));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_page_query),
        cmocka_unit_test(test_seen_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
