/* Unit tests: contiguous finished-offset tracking (kafka_offsets). Table-driven: each case is a
 * script of hand-outs and completions with the position expected after each step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kafka_offsets.h"

typedef enum { BEGIN, FINISH, ABANDON, REVOKE, ASSIGN, END } op_t;

typedef struct step {
    op_t op;
    int64_t offset;
    int expect_rc;       /* finish: 1 advanced, 0 not, or a negative status */
    int64_t expect_pos;  /* position after the step (-1 none) */
} step_t;

typedef struct tcase {
    const char *name;
    step_t steps[24];
} tcase_t;

static const tcase_t cases[] = {
    {"in order",
     {{BEGIN, 0, 0, -1}, {BEGIN, 1, 0, -1}, {FINISH, 0, 1, 1}, {FINISH, 1, 1, 2}, {END, 0, 0, 0}}},
    {"out of order leaves a gap until it closes",
     {{BEGIN, 10, 0, -1}, {BEGIN, 11, 0, -1}, {BEGIN, 12, 0, -1}, {BEGIN, 13, 0, -1},
      {FINISH, 12, 0, -1}, {FINISH, 11, 0, -1}, {FINISH, 13, 0, -1}, {FINISH, 10, 1, 14},
      {END, 0, 0, 0}}},
    {"offsets with holes (compaction) still contiguous by hand-out",
     {{BEGIN, 5, 0, -1}, {BEGIN, 9, 0, -1}, {BEGIN, 20, 0, -1}, {FINISH, 9, 0, -1},
      {FINISH, 5, 1, 10}, {FINISH, 20, 1, 21}, {END, 0, 0, 0}}},
    {"abandoned offset blocks later finished ones",
     {{BEGIN, 0, 0, -1}, {BEGIN, 1, 0, -1}, {BEGIN, 2, 0, -1}, {FINISH, 0, 1, 1},
      {ABANDON, 1, 0, 1}, {FINISH, 2, 0, 1}, {END, 0, 0, 0}}},
    {"finish twice is refused",
     {{BEGIN, 3, 0, -1}, {FINISH, 3, 1, 4}, {FINISH, 3, KAFKA_ERR_INVALID, 4}, {END, 0, 0, 0}}},
    {"unknown offset is refused",
     {{BEGIN, 3, 0, -1}, {FINISH, 4, KAFKA_ERR_INVALID, -1}, {END, 0, 0, 0}}},
    {"stale after revoke, fresh after re-assign",
     {{BEGIN, 0, 0, -1}, {BEGIN, 1, 0, -1}, {FINISH, 0, 1, 1}, {REVOKE, 0, 0, -1},
      {FINISH, 1, KAFKA_ERR_STATE, -1}, {ASSIGN, 0, 0, -1}, {BEGIN, 1, 0, -1},
      {FINISH, 1, 1, 2}, {END, 0, 0, 0}}},
    {"seek backwards inserts in order",
     {{BEGIN, 10, 0, -1}, {BEGIN, 11, 0, -1}, {BEGIN, 7, 0, -1}, {FINISH, 10, 0, -1},
      {FINISH, 11, 0, -1}, {FINISH, 7, 1, 12}, {END, 0, 0, 0}}},
    {"same offset handed out twice needs two finishes",
     {{BEGIN, 4, 0, -1}, {BEGIN, 4, 0, -1}, {FINISH, 4, 0, -1}, {FINISH, 4, 1, 5},
      {END, 0, 0, 0}}},
    /* Issue 8 item 8: a released record is fetched again (seek) and finishing that copy
     * unblocks the partition; records after it come again too. */
    {"released offset handed out again and finished unblocks the position",
     {{BEGIN, 0, 0, -1}, {BEGIN, 1, 0, -1}, {BEGIN, 2, 0, -1}, {FINISH, 0, 1, 1},
      {ABANDON, 1, 0, 1}, {FINISH, 2, 0, 1}, {BEGIN, 1, 0, 1}, {BEGIN, 2, 0, 1},
      {FINISH, 1, 1, 2}, {FINISH, 2, 1, 3}, {END, 0, 0, 0}}},
    {"released again after the re-fetch still blocks",
     {{BEGIN, 0, 0, -1}, {BEGIN, 1, 0, -1}, {ABANDON, 0, 0, -1}, {BEGIN, 0, 0, -1},
      {ABANDON, 0, 0, -1}, {FINISH, 1, 0, -1}, {BEGIN, 0, 0, -1}, {FINISH, 0, 1, 2},
      {END, 0, 0, 0}}},
    {"a finished copy is not undone by another copy's release",
     {{BEGIN, 4, 0, -1}, {BEGIN, 4, 0, -1}, {BEGIN, 5, 0, -1}, {FINISH, 4, 0, -1},
      {ABANDON, 4, 0, -1}, {FINISH, 5, 1, 6}, {END, 0, 0, 0}}},
};

static void run_case(const tcase_t *tc)
{
    kafka_offsets_t *o = kafka_offsets_new();
    assert_non_null(o);
    uint64_t gen = kafka_offsets_assign(o, "t", 0);
    uint64_t old_gen = gen;
    assert_true(gen > 0);
    for (size_t i = 0; tc->steps[i].op != END; i++) {
        const step_t *s = &tc->steps[i];
        int64_t store = -7;
        switch (s->op) {
        case BEGIN:
            assert_int_equal(kafka_offsets_begin(o, "t", 0, s->offset), gen);
            break;
        case FINISH: {
            /* After a revoke, records carry the generation they were handed out under. */
            uint64_t g = kafka_offsets_is_assigned(o, "t", 0) ? gen : old_gen;
            int rc = kafka_offsets_finish(o, "t", 0, g, s->offset, &store);
            if (rc != s->expect_rc)
                fail_msg("%s: step %zu finish(%lld) returned %d, expected %d", tc->name, i,
                         (long long)s->offset, rc, s->expect_rc);
            if (rc == 1)
                assert_int_equal(store, s->expect_pos);
            break;
        }
        case ABANDON:
            assert_int_equal(kafka_offsets_abandon(o, "t", 0, gen, s->offset), 0);
            break;
        case REVOKE:
            old_gen = gen;
            kafka_offsets_revoke(o, "t", 0);
            assert_false(kafka_offsets_is_assigned(o, "t", 0));
            assert_int_equal(kafka_offsets_begin(o, "t", 0, 99), 0);
            break;
        case ASSIGN:
            old_gen = gen;
            gen = kafka_offsets_assign(o, "t", 0);
            assert_true(gen > old_gen);
            break;
        case END:
            break;
        }
        int64_t pos = kafka_offsets_position(o, "t", 0);
        if (pos != s->expect_pos)
            fail_msg("%s: step %zu position %lld, expected %lld", tc->name, i, (long long)pos,
                     (long long)s->expect_pos);
    }
    kafka_offsets_free(o);
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
}

static void test_partitions_are_independent(void **state)
{
    (void)state;
    kafka_offsets_t *o = kafka_offsets_new();
    uint64_t ga = kafka_offsets_assign(o, "a", 0);
    uint64_t gb = kafka_offsets_assign(o, "a", 1);
    uint64_t gc = kafka_offsets_assign(o, "b", 0);
    assert_true(ga && gb && gc && ga != gb && gb != gc);
    assert_int_equal(kafka_offsets_count(o), 3);
    kafka_offsets_begin(o, "a", 0, 0);
    kafka_offsets_begin(o, "a", 1, 0);
    kafka_offsets_begin(o, "b", 0, 0);
    kafka_offsets_begin(o, "b", 0, 1);
    assert_int_equal(kafka_offsets_in_flight(o, NULL, 0), 4);
    assert_int_equal(kafka_offsets_in_flight(o, "b", 0), 2);
    int64_t store = -1;
    /* A generation of another partition is refused. */
    assert_int_equal(kafka_offsets_finish(o, "a", 1, ga, 0, &store), KAFKA_ERR_STATE);
    assert_int_equal(kafka_offsets_finish(o, "a", 1, gb, 0, &store), 1);
    assert_int_equal(store, 1);
    assert_int_equal(kafka_offsets_position(o, "a", 0), -1);
    assert_int_equal(kafka_offsets_revoke(o, "b", 0), 2);
    assert_int_equal(kafka_offsets_count(o), 2);
    assert_int_equal(kafka_offsets_in_flight(o, NULL, 0), 1);
    const char *t = NULL;
    int32_t p = -1;
    assert_int_equal(kafka_offsets_at(o, 0, &t, &p), 0);
    assert_string_equal(t, "a");
    assert_int_equal(kafka_offsets_at(o, 5, &t, &p), KAFKA_ERR_INVALID);
    kafka_offsets_free(o);
}

/* What the consumer may skip after seeking back to a released record: offsets below the
 * position, in flight or finished; never one that was released or never seen. */
static void test_redundant_after_seek(void **state)
{
    (void)state;
    kafka_offsets_t *o = kafka_offsets_new();
    uint64_t g = kafka_offsets_assign(o, "t", 0);
    assert_int_equal(kafka_offsets_generation(o, "t", 0), g);
    assert_int_equal(kafka_offsets_generation(o, "t", 1), 0);
    for (int64_t i = 0; i < 5; i++)
        kafka_offsets_begin(o, "t", 0, i);
    int64_t store = -1;
    assert_int_equal(kafka_offsets_finish(o, "t", 0, g, 0, &store), 1); /* position 1 */
    assert_int_equal(kafka_offsets_abandon(o, "t", 0, g, 1), 0);        /* released */
    assert_int_equal(kafka_offsets_finish(o, "t", 0, g, 2, &store), 0); /* done, blocked */
    /* 3 and 4 still in flight. */
    assert_true(kafka_offsets_redundant(o, "t", 0, 0));  /* below the position */
    assert_false(kafka_offsets_redundant(o, "t", 0, 1)); /* released: hand out again */
    assert_true(kafka_offsets_redundant(o, "t", 0, 2));  /* finished */
    assert_true(kafka_offsets_redundant(o, "t", 0, 3));  /* in flight */
    assert_false(kafka_offsets_redundant(o, "t", 0, 5)); /* never seen */
    assert_false(kafka_offsets_redundant(o, "u", 0, 0)); /* unknown partition */
    kafka_offsets_free(o);
}

/* Many records finishing in a scrambled order: the position only ever grows and ends at the
 * end, and at every moment no unfinished offset is below it. */
static void test_scrambled_large(void **state)
{
    (void)state;
    enum { N = 5000 };
    static unsigned char finished[N];
    memset(finished, 0, sizeof finished);
    kafka_offsets_t *o = kafka_offsets_new();
    uint64_t g = kafka_offsets_assign(o, "t", 3);
    for (int64_t i = 0; i < N; i++)
        assert_int_equal(kafka_offsets_begin(o, "t", 3, i), g);
    uint32_t x = 12345;
    int64_t last = -1;
    for (int done = 0; done < N;) {
        x = x * 1103515245u + 12345u;
        int64_t off = (int64_t)((x >> 8) % N);
        if (finished[off])
            continue;
        finished[off] = 1;
        done++;
        int64_t store = -1;
        int rc = kafka_offsets_finish(o, "t", 3, g, off, &store);
        assert_true(rc == 0 || rc == 1);
        if (rc == 1) {
            assert_true(store > last);
            for (int64_t k = 0; k < store; k++)
                assert_true(finished[k]);
            last = store;
        }
    }
    assert_int_equal(last, N);
    assert_int_equal(kafka_offsets_in_flight(o, NULL, 0), 0);
    kafka_offsets_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_partitions_are_independent),
        cmocka_unit_test(test_redundant_after_seek),
        cmocka_unit_test(test_scrambled_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
