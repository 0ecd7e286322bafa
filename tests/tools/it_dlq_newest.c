/* it_dlq_newest: dlq_newest_refresh (the newest letters pipeline-status keeps) on the real
 * broker. After every step its letters equal, letter by letter and with every header and the
 * record, what a full dlq_read with limit 20 gives at that moment, and its stats say whether it
 * read the whole topic or only the new offsets, why, and how many records:
 *   - no DLQ topic yet: an empty list;
 *   - N letters (timestamps shuffled against offsets): a full read of N;
 *   - nothing new: an incremental read of 0 records;
 *   - K letters older than all, newer than all and tying: an incremental read of K;
 *   - retention deleted kept letters (DeleteRecords below a kept letter's offset): full;
 *   - letters produced and deleted between two reads (low watermark past the offset read to):
 *     full;
 *   - the topic deleted and recreated with fewer letters (high watermark went back): full;
 *   - a partition added: full;
 *   - a failed read (an unreachable broker) forgets the kept state: the next read is full.
 * reading_below_the_low_watermark_fails: the range read asked for offsets retention deleted
 * after the watermarks were read (DeleteRecords below them) fails, naming topic and partition,
 * instead of jumping to the end of the partition and calling it read (before: 0 records and
 * success, so dlq_newest_refresh kept a state missing those letters forever). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dlqtest.h"

#define N 30
#define SHOWN 20

static void assert_same_as_full_read(const wt_t *w, const dlq_newest_t *n)
{
    kafka_settings_t ks = wt_settings();
    dlq_filter_t f = dlq_filter_all();
    f.limit = SHOWN;
    dlq_list_t l;
    char err[512];
    if (dlq_read(&ks, w->prefix, &f, 10000, &l, err, sizeof err) != 0)
        fail_msg("full read: %s", err);
    assert_true(n->known);
    assert_int_equal(n->letters.count, l.count);
    assert_int_equal(n->letters.total, l.total);
    assert_string_equal(n->letters.topic, l.topic);
    for (size_t i = 0; i < l.count; i++) {
        cJSON *want = dlq_letter_json(&l.items[i], true);
        cJSON *got = dlq_letter_json(&n->letters.items[i], true);
        assert_non_null(want);
        assert_non_null(got);
        if (!cJSON_Compare(got, want, true)) {
            char *a = cJSON_PrintUnformatted(got), *b = cJSON_PrintUnformatted(want);
            fail_msg("letter %zu: kept %s, full read %s", i, a ? a : "-", b ? b : "-");
        }
        cJSON_Delete(want);
        cJSON_Delete(got);
    }
    dlq_list_free(&l);
}

/* Refreshes n and checks how it read (why: NULL for an incremental read). */
static void refresh(const wt_t *w, dlq_newest_t *n, const char *why, int64_t records)
{
    kafka_settings_t ks = wt_settings();
    dlq_read_stats_t rs;
    char err[512];
    if (dlq_newest_refresh(n, &ks, w->prefix, 10000, &rs, err, sizeof err) != 0)
        fail_msg("refresh: %s", err);
    fprintf(stderr, "read: %s (%s), %lld records\n", rs.full ? "full" : "incremental", rs.why,
            (long long)rs.records);
    assert_int_equal(rs.full, why != NULL);
    if (why)
        assert_string_equal(rs.why, why);
    assert_int_equal(rs.records, records);
    assert_same_as_full_read(w, n);
}

static void refresh_reads_new_offsets_or_all(void **state)
{
    (void)state;
    wt_t w;
    wt_init(&w, "dnew");
    dlq_newest_t n;
    dlq_newest_init(&n, SHOWN);
    refresh(&w, &n, "no topic", 0); /* nothing dead-lettered yet */
    assert_int_equal(n.letters.count, 0);

    assert_int_equal(wt_ensure_topics(&w), 0);
    char dlq[KAFKA_TOPIC_NAME_MAX], key[48];
    wt_topic(&w, "pipeline.dlq", dlq, sizeof dlq);
    rd_kafka_t *rk = dlqt_producer_new();
    int64_t base = clock_wall_ms() - 3600000;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "first-%d", i);
        dlqt_letter(rk, dlq, i % 2, base + (int64_t)((i * 7) % N) * 1000, key);
    }
    dlqt_flush(rk);
    refresh(&w, &n, "nothing kept", N);
    refresh(&w, &n, NULL, 0);

    int64_t oldest_shown = base + (int64_t)(N - SHOWN) * 1000;
    const struct {
        int32_t p;
        int64_t ts;
    } more[] = {{0, base - 5}, {1, base + N * 1000}, {1, oldest_shown}, {0, oldest_shown}};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        snprintf(key, sizeof key, "more-%zu", i);
        dlqt_letter(rk, dlq, more[i].p, more[i].ts, key);
    }
    dlqt_flush(rk);
    refresh(&w, &n, NULL, 4);

    /* retention deletes the kept letters of partition 0 (and every older one) */
    int64_t last_kept_p0 = -1;
    for (size_t i = 0; i < n.letters.count; i++)
        if (n.letters.items[i].partition == 0 && n.letters.items[i].offset > last_kept_p0)
            last_kept_p0 = n.letters.items[i].offset;
    assert_true(last_kept_p0 >= 0);
    rd_kafka_t *admin = dlqt_admin_new();
    dlqt_delete_records(admin, dlq, 0, last_kept_p0 + 1);
    int64_t left = (N + 4) - (last_kept_p0 + 1);
    refresh(&w, &n, "a kept letter was deleted", left);

    /* two letters produced and deleted between reads: partition 1's low watermark passes the
     * offset read to */
    assert_int_equal(n.partitions, 2);
    int64_t p1_end = n.read_to[1];
    dlqt_letter(rk, dlq, 1, base + N * 2000, "gone-1");
    dlqt_letter(rk, dlq, 1, base + N * 2000 + 1, "gone-2");
    dlqt_flush(rk);
    dlqt_delete_records(admin, dlq, 1, p1_end + 2);
    refresh(&w, &n, "low watermark passed the offset read to", left - p1_end);

    /* the topic deleted and recreated (2 partitions) with 1 letter: partition 0's high
     * watermark went back */
    rd_kafka_destroy(rk); /* a producer's metadata requests could create the topic again */
    dlqt_delete_topic(admin, dlq);
    dlqt_count_t gone = {.topic = dlq, .partitions = KAFKA_ERR_INVALID};
    assert_true(testenv_wait_until(dlqt_partitions_are, &gone, 120000, 200));
    assert_int_equal(wt_ensure_topics(&w), 0);
    dlqt_count_t two = {.topic = dlq, .partitions = 2};
    assert_true(testenv_wait_until(dlqt_partitions_are, &two, 120000, 200));
    rk = dlqt_producer_new();
    dlqt_letter(rk, dlq, 0, base, "recreated");
    dlqt_flush(rk);
    refresh(&w, &n, "high watermark went back", 1);

    /* a third partition with a letter */
    rd_kafka_destroy(rk); /* its metadata knows 2 partitions */
    dlqt_add_partitions(admin, dlq, 3);
    rk = dlqt_producer_new();
    dlqt_wait_partitions_seen(rk, dlq, 3);
    dlqt_letter(rk, dlq, 2, base + 1, "third-partition");
    dlqt_flush(rk);
    refresh(&w, &n, "partition count changed", 2);
    refresh(&w, &n, NULL, 0);

    /* a failed read forgets: the next one is full */
    kafka_settings_t bad = {.bootstrap_servers = "127.0.0.1:9"};
    dlq_read_stats_t rs;
    char err[512];
    assert_int_equal(dlq_newest_refresh(&n, &bad, w.prefix, 2000, &rs, err, sizeof err), -1);
    assert_false(n.known);
    refresh(&w, &n, "nothing kept", 2);

    rd_kafka_destroy(rk);
    rd_kafka_consumer_close(admin);
    rd_kafka_destroy(admin);
    dlq_newest_free(&n);
    wt_free(&w);
}

static void reading_below_the_low_watermark_fails(void **state)
{
    (void)state;
    wt_t w;
    char dlq[KAFKA_TOPIC_NAME_MAX];
    rd_kafka_t *rk = dlqt_setup(&w, "dlow", dlq, sizeof dlq);
    rd_kafka_t *admin = dlqt_admin_new();
    for (int i = 0; i < 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "low-%d", i);
        dlqt_letter(rk, dlq, 0, clock_wall_ms() - 60000 + i, key);
    }
    dlqt_flush(rk);
    dlqt_delete_records(admin, dlq, 0, 5); /* retention: offsets 0..4 are gone */

    kafka_settings_t ks = wt_settings();
    char err[512];
    rd_kafka_t *reader = dlq_reader_new(&ks, err, sizeof err);
    if (!reader)
        fail_msg("%s", err);
    dlq_list_t l = {0};
    int64_t records = -1;
    /* what a read that learnt lo = 2 just before the deletion asks for */
    int rc = dlq_read_range_on(reader, dlq, 0, 2, 9, 10000, &l, &records, err, sizeof err);
    fprintf(stderr, "read 2..9 after deleting 0..4: rc=%d records=%lld err=%s\n", rc,
            (long long)records, rc ? err : "-");
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err, dlq));
    assert_non_null(strstr(err, "[0]"));
    dlq_list_free(&l);
    /* the same handle reads what is left */
    assert_int_equal(dlq_read_range_on(reader, dlq, 0, 5, 9, 10000, &l, &records, err,
                                       sizeof err), 0);
    assert_int_equal(records, 5);
    assert_int_equal(l.count, 5);
    assert_int_equal(l.items[0].offset, 5);
    dlq_list_free(&l);

    rd_kafka_consumer_close(reader);
    rd_kafka_destroy(reader);
    rd_kafka_destroy(rk);
    rd_kafka_consumer_close(admin);
    rd_kafka_destroy(admin);
    wt_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refresh_reads_new_offsets_or_all),
        cmocka_unit_test(reading_below_the_low_watermark_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
