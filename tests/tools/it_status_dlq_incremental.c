/* it_status_dlq_incremental: pipeline-status --serve keeps the newest dead letters it shows
 * (/api/dlq, the page) and, when the DLQ changes, reads only the letters added since its last
 * read, merging them in; /api/dlq stays exactly what a fresh full read gives.
 *
 *   reads_only_the_new_letters
 *     N letters on 2 partitions, their (original) timestamps shuffled against their offsets;
 *     pipeline-status --serve --interval 1 reads them: /api/dlq equals the newest 20 of a full
 *     dlq_read, and /metrics says one full read of N records. Then K more letters, older than
 *     every shown one, newer than every shown one, and one tying the oldest shown letter's
 *     timestamp on the other partition: /api/dlq again equals a fresh full read, and the
 *     records read went up by exactly K, by incremental reads (before: every change read the
 *     whole topic again, N + K records more, and there was no such counter).
 *     Then a partition is added and a letter produced on it: a full read (the kept offsets
 *     no longer describe the topic), /api/dlq equal to a full read again.
 * The other fallbacks (retention, a recreated topic) are it_dlq_newest's, on dlq_newest_t
 * directly.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "dlqtest.h"
#include "status_page.h"

#define N 30
#define SHOWN 20
#define WAIT_MS 120000

/* ---- what pipeline-status serves --------------------------------------------------------- */

typedef struct {
    const wt_t *w;
    int port;
    char *api;       /* the last /api/dlq answer (owned) */
    char *expected;  /* the last full read, as /api/dlq would print it (owned) */
} served_t;

/* /api/dlq equals the newest SHOWN letters of a full read done now (dlq_read, which
 * pipeline-dlq list --json --limit 20 uses). */
static bool api_equals_full_read(void *ctx)
{
    served_t *s = ctx;
    free(s->api);
    free(s->expected);
    s->api = s->expected = NULL;
    if (pt_http_get(s->port, "/api/dlq", &s->api) != 200 || !s->api)
        return false;
    kafka_settings_t ks = wt_settings();
    dlq_filter_t f = dlq_filter_all();
    f.limit = SHOWN;
    dlq_list_t l;
    char err[512];
    if (dlq_read(&ks, s->w->prefix, &f, 10000, &l, err, sizeof err) != 0)
        fail_msg("full read: %s", err);
    cJSON *want = status_page_letters_json(&l);
    dlq_list_free(&l);
    assert_non_null(want);
    s->expected = cJSON_PrintUnformatted(want);
    cJSON *got = cJSON_Parse(s->api);
    bool same = got && cJSON_Compare(got, want, true);
    cJSON_Delete(got);
    cJSON_Delete(want);
    return same;
}

static void wait_api_equals_full_read(served_t *s, const char *when)
{
    if (!testenv_wait_until(api_equals_full_read, s, WAIT_MS, 300))
        fail_msg("%s: /api/dlq never equalled a full read\n/api/dlq: %s\nfull read: %s", when,
                 s->api ? s->api : "-", s->expected ? s->expected : "-");
}

typedef struct {
    double records, full, incremental, failed;
} reads_t;

/* The read counters on /metrics (-1 when a series is absent). */
static reads_t reads_now(int port)
{
    char *body = NULL;
    assert_int_equal(pt_http_get(port, "/metrics", &body), 200);
    assert_non_null(body);
    reads_t r = {
        .records = pt_metric_value(body, "pipeline_status_dlq_records_read_total"),
        .full = pt_metric_value(body, "pipeline_status_dlq_reads_total{kind=\"full\"}"),
        .incremental = pt_metric_value(body,
                                       "pipeline_status_dlq_reads_total{kind=\"incremental\"}"),
        .failed = pt_metric_value(body, "pipeline_status_dlq_reads_total{kind=\"failed\"}"),
    };
    free(body);
    return r;
}

static double count_of(double v)
{
    return v < 0 ? 0 : v; /* a labelled series appears with its first increment */
}

static void print_reads(const char *when, reads_t r)
{
    fprintf(stderr, "%s: %.0f records read; reads: %.0f full, %.0f incremental, %.0f failed\n",
            when, r.records, count_of(r.full), count_of(r.incremental), count_of(r.failed));
}

/* Offsets, keys and timestamps of the first N letters: time order differs from offset order. */
static int64_t first_ts(int64_t base, int i)
{
    return base + (int64_t)((i * 7) % N) * 1000; /* 7 and N coprime: all distinct */
}

static void reads_only_the_new_letters(void **state)
{
    (void)state;
    wt_t w;
    char dlq[KAFKA_TOPIC_NAME_MAX], key[32];
    rd_kafka_t *rk = dlqt_setup(&w, "stdi", dlq, sizeof dlq);
    int64_t base = clock_wall_ms() - 3600000;
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "first-%d", i);
        dlqt_letter(rk, dlq, i % 2, first_ts(base, i), key);
    }
    dlqt_flush(rk);

    served_t s = {.w = &w, .port = pt_free_port()};
    char port[16], log[256], err[256];
    snprintf(port, sizeof port, "%d", s.port);
    snprintf(log, sizeof log, "%s.serve", w.log);
    pid_t pid = simproc_spawn("pipeline-status",
                              (const char *[]){"--serve", port, "--interval", "1", NULL},
                              wt_env(&w), log, err, sizeof err);
    assert_true(pid > 0);

    wait_api_equals_full_read(&s, "after the first letters");
    reads_t r0 = reads_now(s.port);
    print_reads("after the first letters", r0);
    /* only successful reads count records; a failed one (a timeout on a loaded machine) is
     * followed by another full read */
    assert_true(count_of(r0.full) >= 1);
    assert_true(count_of(r0.full) <= 1 + count_of(r0.failed));
    assert_true(count_of(r0.incremental) == 0);
    assert_true(r0.records == N * count_of(r0.full));

    /* K more: older than every shown letter, newer than every shown one, and one tying the
     * oldest shown letter's time (shown: the newest 20 of N, the oldest of them at index
     * N - SHOWN of the time order) on the other partition */
    int64_t oldest_shown = base + (int64_t)(N - SHOWN) * 1000;
    const struct {
        int32_t p;
        int64_t ts;
    } more[] = {
        {0, base - 60000}, {1, base - 1},               /* older than all */
        {1, base + N * 1000 + 5}, {0, base + N * 1000}, /* newer than all */
        {1, oldest_shown},                              /* a tie with a shown letter */
        {0, oldest_shown},                              /* and with both */
    };
    const int k = (int)(sizeof more / sizeof more[0]);
    for (int i = 0; i < k; i++) {
        snprintf(key, sizeof key, "more-%d", i);
        dlqt_letter(rk, dlq, more[i].p, more[i].ts, key);
    }
    dlqt_flush(rk);
    wait_api_equals_full_read(&s, "after the letters older, newer and tying");
    reads_t r1 = reads_now(s.port);
    print_reads("after the letters older, newer and tying", r1);
    /* What the user cares about: the successful incremental reads read exactly the k new
     * letters (before: every change re-read the whole topic, N + k records a read). A full
     * read happens only after a failed one; then it reads all N + k, and the incremental
     * reads before the failure read at most the k new ones. */
    double fulls = count_of(r1.full) - count_of(r0.full);
    double failed = count_of(r1.failed) - count_of(r0.failed);
    double incremental_records = r1.records - r0.records - (N + k) * fulls;
    assert_true(fulls <= failed);
    if (failed == 0) {
        assert_true(incremental_records == k);
        assert_true(count_of(r1.incremental) >= count_of(r0.incremental) + 1);
    } else {
        assert_true(incremental_records >= 0 && incremental_records <= k);
    }

    /* a third partition with a letter on it: read in full */
    rd_kafka_destroy(rk); /* its metadata knows 2 partitions: a new producer learns 3 */
    rd_kafka_t *admin = dlqt_admin_new();
    dlqt_add_partitions(admin, dlq, 3);
    rk = dlqt_producer_new();
    dlqt_wait_partitions_seen(rk, dlq, 3);
    dlqt_letter(rk, dlq, 2, base + N * 1000 + 10, "on-the-new-partition");
    dlqt_flush(rk);
    wait_api_equals_full_read(&s, "after a partition was added");
    reads_t r2 = reads_now(s.port);
    print_reads("after a partition was added", r2);
    /* one full read of all N + k + 1 (one more after each failed read), nothing incremental */
    fulls = count_of(r2.full) - count_of(r1.full);
    failed = count_of(r2.failed) - count_of(r1.failed);
    assert_true(fulls >= 1 && fulls <= 1 + failed);
    assert_true(count_of(r2.incremental) == count_of(r1.incremental));
    assert_true(r2.records == r1.records + (N + k + 1) * fulls);

    rd_kafka_destroy(rk);
    rd_kafka_consumer_close(admin);
    rd_kafka_destroy(admin);
    free(s.api);
    free(s.expected);
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 30000), 0);
    char *text = testenv_read_file(log);
    assert_non_null(text);
    if (count_of(r2.incremental) > 0)
        assert_non_null(strstr(text, "event=dlq_letters_read kind=incremental"));
    assert_non_null(strstr(text, "event=dlq_letters_read kind=full"));
    free(text);
    wt_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_only_the_new_letters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
