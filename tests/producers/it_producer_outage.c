/* Regression test (issue 12, the 20-minute soak): a producer whose MongoDB stops answering —
 * the connection stays open, nothing comes back, as while a FerretDB restart or an overloaded
 * server hangs — must still stop on SIGTERM within a bounded time. Before the fix store_open()
 * left libmongoc's socketTimeoutMS at its default of 5 minutes: a producer that was inside a
 * MongoDB call (or made one while stopping: the lease release) sat there for 5 minutes, deaf to
 * SIGTERM, and the soak had to SIGKILL it.
 *
 *   producer_stops_while_mongodb_hangs
 *     milvus-producer (daemon, POLL_INTERVAL_SECONDS=1) against milvus-sim, the real Kafka, and
 *     the shared FerretDB reached through a TCP proxy run by this test (tcpproxy_). After its
 *     first pass (it holds the producer lease) the proxy freezes: it keeps every connection
 *     open, accepts new ones, and forwards nothing either way. The test waits until the
 *     producer has sent a request that the frozen proxy holds (so it is blocked on MongoDB, or
 *     about to be), then sends SIGTERM: the producer must exit 0 within 90 s (the fix: a 20 s
 *     socket timeout, then a 5 s server selection; before it: 300 s). The shared server is
 *     never touched.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>

#include "prodtest.h"
#include "store.h"
#include "tcpproxy.h"

#define TOKEN "OUTAGETESTTOKEN12345"
#define STOP_DEADLINE_MS 90000

/* ---- the test ------------------------------------------------------------------------------ */

typedef struct {
    const char *log;
    int passes;
} passes_t;

static bool passes_done(void *ctx)
{
    passes_t *w = ctx;
    return pt_log_count(w->log, "event=pass_done source=milvus outcome=ok") >= w->passes;
}

static bool proxy_holds_a_request(void *ctx)
{
    return tcpproxy_held_requests(ctx) > 0;
}

static void producer_stops_while_mongodb_hangs(void **state)
{
    (void)state;
    pt_iso_t iso;
    pt_isolate(&iso, "itpo");
    char log[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(log, sizeof log, "%s/%sproducer.log", tmp, iso.prefix);

    /* the proxy in front of the shared MongoDB */
    bson_error_t be;
    mongoc_uri_t *mu = mongoc_uri_new_with_error(iso.uri, &be);
    assert_non_null(mu);
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(mu);
    assert_non_null(h);
    char err[256];
    tcpproxy_t *proxy = tcpproxy_start(h->host, h->port, err, sizeof err);
    if (!proxy)
        fail_msg("%s", err);
    mongoc_uri_destroy(mu);
    char uri[640];
    assert_int_equal(tcpproxy_uri(iso.uri, tcpproxy_port(proxy), uri, sizeof uri), 0);

    simproc *sim = simproc_start_milvus(TOKEN, err, sizeof err);
    if (!sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(sim, "{\"rate_limit_per_min\":0}"), 0);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 1; i <= 5; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "id", i);
        cJSON_AddStringToObject(r, "razao_social", "Cliente");
        cJSON_AddBoolToObject(r, "is_ativo", true);
        cJSON_AddItemToArray(arr, r);
    }
    assert_int_equal(pt_seed_set(sim, "clientes", arr), 0);

    char e_uri[700], e_prefix[128], e_base[200];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", iso.prefix);
    snprintf(e_base, sizeof e_base, "MILVUS_BASE_URL=%s", simproc_api_url(sim));
    const char *env[] = {e_uri, e_prefix, e_base, "MILVUS_TOKEN=" TOKEN, "TOPIC_PARTITIONS=1",
                         "MILVUS_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                         "POLL_INTERVAL_SECONDS=1", "PRODUCER_LEASE_SECONDS=10",
                         "LOG_LEVEL=debug", NULL};
    int port = 0;
    pid_t pid = pt_start_daemon("milvus-producer", env, log, &port);
    assert_true(pid > 0);
    passes_t w = {log, 2};
    if (!testenv_wait_until(passes_done, &w, 120000, 50)) {
        pt_dump_log(log, 4000);
        kill(pid, SIGKILL);
        simproc_wait(pid, 10000);
        fail_msg("milvus-producer did not finish two passes");
    }

    /* MongoDB stops answering; the producer talks to it (or is about to) */
    tcpproxy_freeze(proxy);
    if (!testenv_wait_until(proxy_holds_a_request, proxy, 60000, 20)) {
        kill(pid, SIGKILL);
        simproc_wait(pid, 10000);
        fail_msg("the producer sent MongoDB nothing within 60 s of the freeze");
    }
    int64_t t0 = testenv_now_ms();
    assert_int_equal(kill(pid, SIGTERM), 0);
    int rc = simproc_wait(pid, STOP_DEADLINE_MS); /* -1: still running (then SIGKILLed) */
    int64_t took = testenv_now_ms() - t0;
    fprintf(stderr, "milvus-producer: exit %d %lld ms after SIGTERM with MongoDB hung\n", rc,
            (long long)took);
    if (rc != 0)
        pt_dump_log(log, 3000);
    tcpproxy_stop(proxy);
    assert_int_equal(simproc_stop(sim), 0);
    assert_int_equal(rc, 0);
    assert_true(took < STOP_DEADLINE_MS);
    assert_int_equal(pt_log_count(log, "event=producer_stopped source=milvus exit_code=0"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(producer_stops_while_mongodb_hangs),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
