/* Integration test of milvus-producer against milvus-sim, the real Kafka and MongoDB (the
 * producer runs as a subprocess, configured through the environment):
 *   2,510 clients, MILVUS_MIN_ID unset -> every client published once, whatever its id, over
 *   three pages of 1,000 (past the seed's 1,000 cap) with the right key and headers, and the
 *   account setting "milvus_min_id" fixed at 2511 (highest id + 1) after that first full scan
 *   and never moved by later ones; a second pass publishes none; one changed client is
 *   republished alone (also with MILVUS_MIN_ID set above its id); a server capping its pages at 300 while meta.paginate.total says more
 *   (issue 8 item 10) is paged on at 300: the new clients past the cap are published and the
 *   pass exits 0 without answer_truncated; the poll interval is stretched to keep scans under
 *   MILVUS_SCAN_QUOTA_SHARE (event=poll_interval); a client with invalid UTF-8 is
 *   skipped (logged, counted) until fixed at the source. The daemon
 *   then publishes three new clients and serves /healthz, /readyz and /metrics (SPEC §7): its
 *   published count is exactly those three, the token never shows, /healthz answers while it
 *   idles between polls.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "prodtest.h"
#include "store.h"

#define TOKEN "MILVUSTESTTOKEN12345"

static cJSON *clients(int from, int to, const char *label)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = from; i <= to; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "id", i);
        char name[64];
        snprintf(name, sizeof name, "%s %d", label, i);
        cJSON_AddStringToObject(r, "razao_social", name);
        cJSON_AddStringToObject(r, "nome_fantasia", name);
        cJSON_AddBoolToObject(r, "is_ativo", i % 10 != 0); /* blocked ones too (status=3) */
        cJSON_AddItemToArray(arr, r);
    }
    return arr;
}

static void seed(const simproc *sim, cJSON *arr)
{
    assert_int_equal(pt_seed_set(sim, "clientes", arr), 0);
}

static int run_once(const char *const *env, const char *log)
{
    const char *const args[] = {"--once", NULL};
    int rc = pt_run("milvus-producer", args, env, log, 120000);
    if (rc != 0)
        pt_dump_log(log, 4000);
    return rc;
}

/* One --once pass with env plus one more NAME=value. */
static int run_once_with(const char *const *env, const char *extra, const char *log)
{
    const char *e[32];
    size_t n = 0;
    for (; env[n] && n < 30; n++)
        e[n] = env[n];
    e[n++] = extra;
    e[n] = NULL;
    return run_once(e, log);
}

static void check_all(const pt_msgs_t *m, int from, int to, int min, int max)
{
    int span = to - from + 1;
    int *count = calloc((size_t)span, sizeof *count);
    for (size_t i = 0; i < m->n; i++) {
        const char *why = pt_check_msg(&m->msgs[i], "milvus", "client", "id");
        if (why)
            fail_msg("client key=%s: %s", m->msgs[i].key, why);
        long id = strtol(m->msgs[i].key, NULL, 10);
        if (id < from || id > to)
            fail_msg("unexpected client id %ld", id);
        count[id - from]++;
    }
    for (int i = 0; i < span; i++)
        if (count[i] < min || count[i] > max)
            fail_msg("client %d published %d times (expected %d..%d)", from + i, count[i], min,
                     max);
    free(count);
}

static void clients_paged_and_deduplicated(void **state)
{
    (void)state;
    int64_t t0 = testenv_now_ms();
    pt_iso_t iso;
    pt_isolate(&iso, "itmp");
    const char *prefix = iso.prefix, *uri = iso.uri;
    char log[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(log, sizeof log, "%s/%sproducer.log", tmp, prefix);

    char err[256];
    simproc *sim = simproc_start_milvus(TOKEN, err, sizeof err);
    if (!sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(sim, "{\"rate_limit_per_min\":0}"), 0);
    seed(sim, clients(1, 2510, "Cliente"));

    char e_uri[600], e_prefix[128], e_base[200];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", prefix);
    snprintf(e_base, sizeof e_base, "MILVUS_BASE_URL=%s", simproc_api_url(sim));
    const char *env[] = {e_uri, e_prefix, e_base, "MILVUS_TOKEN=" TOKEN, "TOPIC_PARTITIONS=3",
                         "MILVUS_RATE_PER_MIN=100000", "RETRY_BASE_MS=50",
                         "RETRY_MAX_MS=500", "POLL_INTERVAL_SECONDS=1", "METRICS_PORT=0",
                         "LOG_LEVEL=info", NULL};
    char topic[256];
    snprintf(topic, sizeof topic, "%smilvus.clients", prefix);

    /* first pass: 2,510 clients over 3 pages, every one whatever its id */
    assert_int_equal(run_once(env, log), 0);
    pt_msgs_t m;
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2510);
    check_all(&m, 1, 2510, 1, 1);
    pt_msgs_free(&m);
    assert_int_equal(pt_log_count(log, "event=scan_done entity=client outcome=ok end=short pages=3 "
                                       "published=2510"),
                     1);
    /* the watermark for clients-to-ploomes: fixed after that first full scan */
    store_t *st = store_open(uri, err, sizeof err);
    assert_non_null(st);
    char minid[64];
    assert_int_equal(store_setting_get_or_init(st, "milvus_min_id", "not-this", minid,
                                               sizeof minid, err, sizeof err),
                     STORE_OK);
    assert_string_equal(minid, "2511");

    /* second pass: nothing changed, nothing published */
    assert_int_equal(run_once(env, log), 0);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2510);
    pt_msgs_free(&m);

    /* one client changed: only it is published again */
    seed(sim, clients(1500, 1500, "Cliente renomeado"));
    assert_int_equal(run_once(env, log), 0);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2511);
    assert_int_equal(pt_count_key(&m, "1500"), 2);
    check_all(&m, 1, 2510, 1, 2);
    /* the partition of key 1500 holds the old version then the new one */
    const char *last1500 = NULL;
    for (size_t i = 0; i < m.n; i++)
        if (strcmp(m.msgs[i].key, "1500") == 0)
            last1500 = m.msgs[i].value;
    assert_non_null(last1500);
    assert_non_null(strstr(last1500, "Cliente renomeado 1500"));
    pt_msgs_free(&m);

    /* a server capping its pages at 300 while meta.paginate.total says 2,515 (issue 8 item
     * 10): paged on at 300, so the new clients at the end are published; no warning */
    int warned = pt_log_count(log, "event=answer_truncated");
    seed(sim, clients(2511, 2515, "Cliente"));
    assert_int_equal(simproc_faults(sim, "{\"truncate_at\":300}"), 0);
    assert_int_equal(run_once(env, log), 0);
    assert_int_equal(pt_log_count(log, "event=answer_truncated"), warned);
    assert_int_equal(pt_log_count(log, "event=page_capped entity=client asked=1000 rows=300"), 1);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2516);
    for (int id = 2511; id <= 2515; id++) {
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        assert_int_equal(pt_count_key(&m, key), 1);
    }
    pt_msgs_free(&m);
    /* a later full scan does not move the watermark */
    assert_int_equal(store_setting_get_or_init(st, "milvus_min_id", "not-this", minid,
                                               sizeof minid, err, sizeof err),
                     STORE_OK);
    assert_string_equal(minid, "2511");

    /* MILVUS_SCAN_QUOTA_SHARE: 9 pages of 300 at 1 request a minute's share stretch the
     * interval to about 9 minutes (logged) */
    assert_int_equal(run_once_with(env, "MILVUS_SCAN_QUOTA_SHARE=0.00001", log), 0);
    assert_true(pt_log_count(log, "event=poll_interval source=milvus effective_s=5") == 1);

    /* a client with invalid UTF-8 is skipped (logged with its id), never published raw and
     * its hash not saved: once fixed at the source it is published */
    cJSON *broken = clients(2600, 2600, "Cliente");
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(broken, 0), "razao_social",
                              cJSON_CreateString("Jo\xE3o"));
    assert_int_equal(simproc_faults(sim, "{\"truncate_at\":100000}"), 0);
    seed(sim, broken);
    assert_int_equal(run_once(env, log), 0);
    assert_int_equal(pt_log_count(log, "event=record_skipped source=milvus entity=client id=2600 "
                                       "reason=invalid_utf8 detail=$.razao_social"),
                     1);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2516);
    pt_msgs_free(&m);
    seed(sim, clients(2600, 2600, "Cliente"));
    assert_int_equal(run_once(env, log), 0);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2517);
    assert_int_equal(pt_count_key(&m, "2600"), 1);
    pt_msgs_free(&m);

    /* the daemon: three new clients, counted on its /metrics; SIGTERM exits 0 */
    seed(sim, clients(2601, 2603, "Cliente"));
    int port = 0;
    pid_t pid = pt_start_daemon("milvus-producer", env, log, &port);
    assert_true(pid > 0);
    pt_endpoints_t ep = {port, log, "milvus", "client", 3, TOKEN};
    const char *why = pt_check_endpoints(&ep);
    if (why)
        fail_msg("milvus-producer on METRICS_PORT=%d: %s", port, why);
    kill(pid, SIGTERM);
    int rc = simproc_wait(pid, 30000);
    if (rc != 0)
        pt_dump_log(log, 4000);
    assert_int_equal(rc, 0);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(m.n, 2520);
    check_all(&m, 1, 2603, 0, 2); /* 2516..2599 were never seeded */
    for (int id = 2601; id <= 2603; id++) {
        char key[16];
        snprintf(key, sizeof key, "%d", id);
        assert_int_equal(pt_count_key(&m, key), 1);
    }
    pt_msgs_free(&m);

    /* MILVUS_MIN_ID set: still every client is published (clients-to-ploomes applies it) */
    seed(sim, clients(5, 5, "Cliente renomeado"));
    assert_int_equal(run_once_with(env, "MILVUS_MIN_ID=2600", log), 0);
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    assert_int_equal(pt_count_key(&m, "5"), 2);
    assert_int_equal(m.n, 2521);
    pt_msgs_free(&m);

    /* the poll result is recorded for pipeline-status */
    store_cursor_t cur;
    assert_int_equal(store_cursor_get(st, "milvus.client", &cur, err, sizeof err), STORE_OK);
    assert_true(cur.last_ok_at_ms > 0);
    store_close(st);

    if (simproc_stop(sim) != 0)
        fprintf(stderr, "milvus-sim did not stop cleanly on SIGTERM\n");
    fprintf(stderr, "clients_paged_and_deduplicated: %lld ms\n",
            (long long)(testenv_now_ms() - t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clients_paged_and_deduplicated),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
