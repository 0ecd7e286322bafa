/* dlq_merge_newest: the merge pipeline-status uses to keep the newest letters while reading
 * only the new offsets. Letters are (partition, offset, timestamp); the kept list is the
 * newest `limit` by (timestamp, partition, offset), oldest first, as dlq_read with f.limit
 * gives it. Cases: fewer letters than the limit, a new letter older than every kept one,
 * newer than every kept one, timestamp ties broken by partition then offset, an empty merge;
 * then random sets (fixed seed) split into an old part and a new part: merging the new part
 * into the newest `limit` of the old part gives exactly the newest `limit` of the whole,
 * computed independently by a selection over the whole set. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dlq.h"

#define LIMIT 20

typedef struct {
    int32_t p;
    int64_t o, ts;
} pos_t;

/* A list owning letters at the given positions (in the given order). */
static dlq_list_t list_of(const pos_t *ps, size_t n)
{
    dlq_list_t l = {0};
    l.items = calloc(n ? n : 1, sizeof *l.items);
    assert_non_null(l.items);
    for (size_t i = 0; i < n; i++) {
        dlq_letter_t *x = &l.items[i];
        x->partition = ps[i].p;
        x->offset = ps[i].o;
        x->timestamp_ms = ps[i].ts;
        x->key = malloc(8); /* something owned, so that a dropped letter must be freed */
        assert_non_null(x->key);
        memcpy(x->key, "k", 2);
        x->key_len = 1;
        x->worker = x->error_class = x->message = x->response = x->orig_topic = "";
    }
    l.count = n;
    return l;
}

static void assert_list(const dlq_list_t *l, const pos_t *want, size_t n)
{
    assert_int_equal(l->count, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(l->items[i].partition, want[i].p);
        assert_int_equal(l->items[i].offset, want[i].o);
        assert_int_equal(l->items[i].timestamp_ms, want[i].ts);
    }
}

static void merge(dlq_list_t *kept, const pos_t *fresh, size_t n, size_t limit)
{
    dlq_list_t f = list_of(fresh, n);
    assert_int_equal(dlq_merge_newest(kept, &f, limit), 0);
    assert_int_equal(f.count, 0);
    dlq_list_free(&f);
}

static void fewer_than_the_limit(void **state)
{
    (void)state;
    const pos_t old[] = {{0, 0, 100}, {1, 0, 300}};
    dlq_list_t kept = list_of(old, 2);
    merge(&kept, (const pos_t[]){{0, 1, 200}, {1, 1, 50}}, 2, LIMIT);
    assert_list(&kept, (const pos_t[]){{1, 1, 50}, {0, 0, 100}, {0, 1, 200}, {1, 0, 300}}, 4);
    merge(&kept, NULL, 0, LIMIT); /* nothing new: unchanged */
    assert_list(&kept, (const pos_t[]){{1, 1, 50}, {0, 0, 100}, {0, 1, 200}, {1, 0, 300}}, 4);
    dlq_list_free(&kept);
}

static void full_list(pos_t *ps)
{
    for (int i = 0; i < LIMIT; i++)
        ps[i] = (pos_t){i % 2, i / 2, 1000 + i};
}

static void older_than_all_is_dropped(void **state)
{
    (void)state;
    pos_t old[LIMIT];
    full_list(old);
    dlq_list_t kept = list_of(old, LIMIT);
    /* a later offset, an older (original) timestamp: not among the newest */
    merge(&kept, (const pos_t[]){{0, 50, 999}, {1, 51, 5}}, 2, LIMIT);
    assert_list(&kept, old, LIMIT);
    dlq_list_free(&kept);
}

static void newer_than_all_pushes_the_oldest_out(void **state)
{
    (void)state;
    pos_t old[LIMIT], want[LIMIT];
    full_list(old);
    dlq_list_t kept = list_of(old, LIMIT);
    merge(&kept, (const pos_t[]){{1, 60, 5000}, {0, 61, 1005}}, 2, LIMIT);
    /* drops 1000 and 1001; {0,61,1005} ties with the kept {1,2,1005} and sorts before it
     * (same time: partition 0 first) */
    size_t k = 0;
    for (int i = 2; i < LIMIT; i++) {
        if (old[i].ts == 1005)
            want[k++] = (pos_t){0, 61, 1005};
        want[k++] = old[i];
    }
    want[k++] = (pos_t){1, 60, 5000};
    assert_int_equal(k, LIMIT);
    assert_list(&kept, want, LIMIT);
    dlq_list_free(&kept);
}

static void ties_by_partition_then_offset(void **state)
{
    (void)state;
    const pos_t old[] = {{0, 4, 7}, {1, 2, 7}, {1, 9, 7}};
    dlq_list_t kept = list_of(old, 3);
    /* all at the same time: the limit keeps the highest (partition, offset) */
    merge(&kept, (const pos_t[]){{0, 10, 7}, {1, 5, 7}, {2, 0, 7}}, 3, 4);
    assert_list(&kept, (const pos_t[]){{1, 2, 7}, {1, 5, 7}, {1, 9, 7}, {2, 0, 7}}, 4);
    merge(&kept, (const pos_t[]){{0, 11, 7}, {1, 1, 7}}, 2, 4); /* both lose the tie */
    assert_list(&kept, (const pos_t[]){{1, 2, 7}, {1, 5, 7}, {1, 9, 7}, {2, 0, 7}}, 4);
    dlq_list_free(&kept);
}

/* (timestamp, partition, offset) ascending, written here without dlq.c's comparator. */
static bool before(const pos_t *a, const pos_t *b)
{
    if (a->ts != b->ts)
        return a->ts < b->ts;
    if (a->p != b->p)
        return a->p < b->p;
    return a->o < b->o;
}

/* The newest `limit` of all[0..n), oldest first, by repeated selection of the maximum. */
static size_t newest_of(const pos_t *all, size_t n, size_t limit, pos_t *out)
{
    bool *taken = calloc(n ? n : 1, sizeof *taken);
    assert_non_null(taken);
    size_t k = n < limit ? n : limit;
    for (size_t j = 0; j < k; j++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++)
            if (!taken[i] && (best == n || before(&all[best], &all[i])))
                best = i;
        taken[best] = true;
        out[k - 1 - j] = all[best];
    }
    free(taken);
    return k;
}

static void random_splits_match_a_full_selection(void **state)
{
    (void)state;
    srand(12345);
    enum { MAXN = 120 };
    for (int round = 0; round < 300; round++) {
        size_t n = (size_t)(rand() % MAXN) + 1, cut = (size_t)rand() % (n + 1);
        size_t limit = round % 3 == 0 ? 1 + (size_t)(rand() % 30) : LIMIT;
        pos_t all[MAXN], want[MAXN], oldest[MAXN];
        int64_t next_off[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++) {
            int32_t p = rand() % 3;
            /* few distinct times: many ties; offsets grow per partition as in Kafka */
            all[i] = (pos_t){p, next_off[p]++, rand() % 15};
        }
        size_t wn = newest_of(all, n, limit, want);
        size_t on = newest_of(all, cut, limit, oldest); /* what the last read kept */
        dlq_list_t kept = list_of(oldest, on);
        merge(&kept, all + cut, n - cut, limit);
        assert_list(&kept, want, wn);
        dlq_list_free(&kept);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fewer_than_the_limit),
        cmocka_unit_test(older_than_all_is_dropped),
        cmocka_unit_test(newer_than_all_pushes_the_oldest_out),
        cmocka_unit_test(ties_by_partition_then_offset),
        cmocka_unit_test(random_splits_match_a_full_selection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
