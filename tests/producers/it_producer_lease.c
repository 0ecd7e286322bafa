/* Integration test of the producer lease (issue 8 item 11, SPEC §3 "One active producer"):
 * ploomes-producers of one source and account against ploomes-sim, the real Kafka and MongoDB.
 *
 *   two_producers_one_source
 *     A and B run side by side (PRODUCER_LEASE_SECONDS=20): A is active (lease_acquired,
 *     producer_active 1), B logs standby, publishes nothing, answers /readyz 200 with
 *     producer_active 0. Contacts seeded meanwhile are published once, by A. A is SIGKILLed:
 *     B takes over when the lease expires and publishes what follows. A third instance C
 *     stands by; B gets SIGTERM: it releases the lease, so C takes over well before the lease
 *     would have expired. Every contact is published exactly once, and the contacts cursor,
 *     sampled all along, never moves backwards.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ploomes_pager.h"
#include "prodtest.h"
#include "store.h"

#define KEY "LEASETESTKEY0123456789"
#define LEASE_S 20

typedef struct {
    char prefix[96], mongo_uri[512];
    char e_uri[600], e_prefix[128], e_base[200];
    const char *env[24];
    simproc *sim;
    store_t *store;
    /* cursor samples */
    bool have_last;
    ploomes_instant_t last;
    int64_t last_id;
    int backwards;
    int samples;
} fx_t;

/* Reads the contacts cursor; counts a sample that is behind the previous one. */
static void sample_cursor(fx_t *f)
{
    store_cursor_t cur;
    char err[256];
    if (store_cursor_get(f->store, "ploomes.contact", &cur, err, sizeof err) != STORE_OK ||
        !cur.has_position)
        return;
    ploomes_instant_t inst;
    if (ploomes_instant_parse(cur.stamp, &inst) != 0)
        return;
    f->samples++;
    if (f->have_last && ploomes_position_cmp(&inst, cur.id, &f->last, f->last_id) < 0) {
        f->backwards++;
        fprintf(stderr, "cursor moved back to %s/%lld\n", cur.stamp, (long long)cur.id);
    }
    f->have_last = true;
    f->last = inst;
    f->last_id = cur.id;
}

typedef struct {
    fx_t *f;
    const char *log;
    const char *needle;
    int n;
    int64_t min_id; /* also wait for the cursor to reach this id (0: no) */
} wait_t;

static bool log_and_cursor(void *ctx)
{
    wait_t *w = ctx;
    sample_cursor(w->f);
    if (w->min_id > 0 && (!w->f->have_last || w->f->last_id < w->min_id))
        return false;
    return w->needle == NULL || pt_log_count(w->log, w->needle) >= w->n;
}

static void wait_for(fx_t *f, const char *log, const char *needle, int64_t min_id, int timeout_ms)
{
    wait_t w = {f, log, needle, needle ? pt_log_count(log, needle) + 1 : 0, min_id};
    if (!testenv_wait_until(log_and_cursor, &w, timeout_ms, 100)) {
        pt_dump_log(log, 3000);
        fail_msg("waited %d ms for %s (cursor id >= %lld)", timeout_ms, needle ? needle : "-",
                 (long long)min_id);
    }
}

/* As wait_for, but the log line may already be there. */
static void wait_seen(fx_t *f, const char *log, const char *needle, int timeout_ms)
{
    wait_t w = {f, log, needle, 1, 0};
    if (!testenv_wait_until(log_and_cursor, &w, timeout_ms, 100)) {
        pt_dump_log(log, 3000);
        fail_msg("waited %d ms for %s", timeout_ms, needle);
    }
}

typedef struct {
    fx_t *f;
    const char *log;
} settle_t;

static bool standby_or_scanning(void *ctx)
{
    settle_t *w = ctx;
    sample_cursor(w->f);
    return pt_log_count(w->log, "event=standby source=ploomes") > 0 ||
           pt_log_count(w->log, "event=scan_done") > 0;
}

static void seed_range(fx_t *f, int from, int to)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = from; i <= to; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "Id", i);
        cJSON_AddStringToObject(r, "Name", "Contact");
        cJSON_AddItemToArray(arr, r);
    }
    assert_int_equal(pt_seed_set(f->sim, "Contacts", arr), 0);
}

static double metric(int port, const char *series)
{
    char *text = NULL;
    long st = pt_http_get(port, "/metrics", &text);
    double v = st == 200 && text ? pt_metric_value(text, series) : -2;
    free(text);
    return v;
}

static void two_producers_one_source(void **state)
{
    (void)state;
    int64_t t0 = testenv_now_ms();
    fx_t f;
    memset(&f, 0, sizeof f);
    pt_iso_t iso;
    pt_isolate(&iso, "itpl");
    memcpy(f.prefix, iso.prefix, sizeof f.prefix);
    memcpy(f.mongo_uri, iso.uri, sizeof f.mongo_uri);
    char err[256];
    f.sim = simproc_start_ploomes(KEY, err, sizeof err);
    if (!f.sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(f.sim, "{\"rate_limit_per_min\":0}"), 0);
    f.store = store_open(f.mongo_uri, err, sizeof err);
    assert_non_null(f.store);
    snprintf(f.e_uri, sizeof f.e_uri, "MONGODB_URI=%s", f.mongo_uri);
    snprintf(f.e_prefix, sizeof f.e_prefix, "TOPIC_PREFIX=%s", f.prefix);
    snprintf(f.e_base, sizeof f.e_base, "PLOOMES_BASE_URL=%s", simproc_api_url(f.sim));
    const char *env[] = {f.e_uri, f.e_prefix, f.e_base, "PLOOMES_USER_KEY=" KEY,
                         "PLOOMES_ENTITIES=contacts", "TOPIC_PARTITIONS=2",
                         "PLOOMES_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                         "POLL_INTERVAL_SECONDS=1", "SYNC_SINCE=2024-02-24T00:00:00-03:00",
                         "PRODUCER_LEASE_SECONDS=20", "LOG_LEVEL=info", NULL};
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char log_a[256], log_b[256], log_c[256];
    snprintf(log_a, sizeof log_a, "%s/%sA.log", tmp, f.prefix);
    snprintf(log_b, sizeof log_b, "%s/%sB.log", tmp, f.prefix);
    snprintf(log_c, sizeof log_c, "%s/%sC.log", tmp, f.prefix);
    seed_range(&f, 1, 50);

    /* A active, B standby */
    int port_a = 0, port_b = 0, port_c = 0;
    pid_t a = pt_start_daemon("ploomes-producer", env, log_a, &port_a);
    assert_true(a > 0);
    wait_for(&f, log_a, NULL, 50, 60000);
    pid_t b = pt_start_daemon("ploomes-producer", env, log_b, &port_b);
    assert_true(b > 0);
    /* B settles: on standby, or (what must not happen) scanning beside A */
    settle_t st = {&f, log_b};
    assert_true(testenv_wait_until(standby_or_scanning, &st, 60000, 100));
    assert_int_equal(pt_log_count(log_b, "event=scan_done"), 0);
    assert_int_equal(pt_log_count(log_b, "event=standby source=ploomes"), 1);
    assert_int_equal(pt_log_count(log_a, "event=lease_acquired source=ploomes"), 1);
    assert_int_equal(pt_http_get(port_b, "/readyz", NULL), 200);
    assert_true(metric(port_b, "producer_active{source=\"ploomes\"}") == 0.0);
    assert_true(metric(port_a, "producer_active{source=\"ploomes\"}") == 1.0);
    /* new contacts while both run: A publishes them, B nothing */
    seed_range(&f, 51, 80);
    wait_for(&f, log_a, NULL, 80, 60000);
    /* B polled nothing at all: it never scanned */
    assert_int_equal(pt_log_count(log_b, "event=scan_done"), 0);
    assert_int_equal(pt_log_count(log_b, "event=lease_acquired"), 0);

    /* A dies without releasing: B takes over once the lease expired */
    int64_t killed = testenv_now_ms();
    kill(a, SIGKILL);
    assert_int_equal(simproc_wait(a, 30000), 128 + SIGKILL);
    wait_seen(&f, log_b, "event=lease_acquired source=ploomes", (LEASE_S + 40) * 1000);
    int64_t takeover_ms = testenv_now_ms() - killed;
    seed_range(&f, 81, 100);
    wait_for(&f, log_b, NULL, 100, 60000);
    assert_true(metric(port_b, "producer_active{source=\"ploomes\"}") == 1.0);

    /* C stands by; B stops (SIGTERM) and releases: C takes over well before expiry */
    pid_t c = pt_start_daemon("ploomes-producer", env, log_c, &port_c);
    assert_true(c > 0);
    wait_seen(&f, log_c, "event=standby source=ploomes", 60000);
    int64_t stopped = testenv_now_ms();
    kill(b, SIGTERM);
    assert_int_equal(simproc_wait(b, 30000), 0);
    assert_int_equal(pt_log_count(log_b, "event=lease_released source=ploomes"), 1);
    wait_seen(&f, log_c, "event=lease_acquired source=ploomes", (LEASE_S + 40) * 1000);
    int64_t handover_ms = testenv_now_ms() - stopped;
    seed_range(&f, 101, 110);
    wait_for(&f, log_c, NULL, 110, 60000);
    kill(c, SIGTERM);
    assert_int_equal(simproc_wait(c, 30000), 0);
    fprintf(stderr, "takeover after SIGKILL: %lld ms; after SIGTERM: %lld ms; %d cursor samples\n",
            (long long)takeover_ms, (long long)handover_ms, f.samples);
    /* the lease had ~20 s left when B released it; the standby retries every ~6.7 s */
    assert_true(handover_ms < (LEASE_S * 1000) * 3 / 4);
    assert_true(takeover_ms >= 10000); /* not before A's lease (renewed every ~6.7 s) expired */

    char topic[256];
    snprintf(topic, sizeof topic, "%sploomes.contacts", f.prefix);
    pt_msgs_t m;
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    for (int id = 1; id <= 110; id++) {
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        if (pt_count_key(&m, key) != 1)
            fail_msg("contact %d published %d times", id, pt_count_key(&m, key));
    }
    assert_int_equal(m.n, 110);
    pt_msgs_free(&m);
    assert_int_equal(f.backwards, 0);
    assert_true(f.samples > 10);

    store_close(f.store);
    if (simproc_stop(f.sim) != 0)
        fprintf(stderr, "ploomes-sim did not stop cleanly\n");
    fprintf(stderr, "two_producers_one_source: %lld ms\n", (long long)(testenv_now_ms() - t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_producers_one_source),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
