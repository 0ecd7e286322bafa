/* Regression test: a producer's shutdown is bounded while Kafka does not confirm its page.
 * Before the fix producer_deliver() waited for the page's delivery reports with no bound of
 * its own (kafka_batch_wait(..., -1)): on SIGTERM during a Kafka outage the producer sat there
 * until librdkafka's message.timeout.ms (300 s by default; 120 s here) and then flushed for up
 * to 30 s more at close, far past Kubernetes' 30 s and docker-compose's 10 s grace.
 *
 *   stop_bounded_while_kafka_hangs
 *     milvus-producer (daemon, POLL_INTERVAL_SECONDS=1, KAFKA_MESSAGE_TIMEOUT_MS=120000) reaches
 *     the shared Kafka only through a Kafka-mode tcpproxy (tests/support/tcpproxy.h: it
 *     rewrites the broker's advertised port in the metadata to its own, so every connection
 *     of the producer goes through it; the test fails when it rewrote nothing, and is skipped
 *     when KAFKA_BOOTSTRAP_SERVERS is not one IPv4/localhost host:port). The first pass
 *     publishes 5 clients (delivered); then the proxy freezes (connections stay open, nothing is
 *     forwarded: Kafka hangs), the 5 clients change at milvus-sim, and the next pass sends them
 *     (librdkafka's msg debug log: "Produce MessageSet with 5 message(s)"): the page is in
 *     flight and unconfirmed. SIGTERM then: the producer must exit within STOP_DEADLINE_MS
 *     (15 s: its 5 s grace, the close's 5 s purge wait, 5 s slack for ASan and a loaded host;
 *     measured ~5.2 s), with exit code 1 (records were left undelivered: unclean), having
 *     logged event=delivery_abandoned. Kafka back (a run straight to the broker):
 *     `milvus-producer --once` publishes the 5 changed clients (their hashes were not saved by
 *     the stopped run) and exits 0: none lost.
 *
 *   ploomes_stop_keeps_the_cursor_while_kafka_hangs
 *     The same with ploomes-producer (PLOOMES_ENTITIES=contacts): contacts 1-5 are published
 *     (cursor at Id 5), the proxy freezes, contacts 6-10 appear and are sent, SIGTERM: exit 1
 *     within STOP_DEADLINE_MS, and the contact cursor in MongoDB is still at Id 5 (not past the
 *     unconfirmed records); `ploomes-producer --once` straight to the broker then publishes
 *     6-10 and exits 0.
 *
 * Every scenario runs between setup and teardown: whatever an assertion interrupts, teardown
 * kills the producer still running, stops the proxy and the simulator and closes the store.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "kafka.h"
#include "prodtest.h"
#include "producer.h"
#include "store.h"
#include "tcpproxy.h"

#define TOKEN "SHUTDOWNTESTTOKEN123"
#define CLIENTS 5
/* common/kafka.c's KAFKA_CLOSE_PURGE_WAIT_MS (private there): what kafka_close may wait for a
 * purge after the stop's grace ran out */
#define CLOSE_PURGE_WAIT_MS 5000
#define ASAN_SLACK_MS 5000
#define STOP_DEADLINE_MS (PRODUCER_SHUTDOWN_GRACE_MS + CLOSE_PURGE_WAIT_MS + ASAN_SLACK_MS)

/* What a scenario owns; teardown releases whatever is set. */
typedef struct {
    pt_iso_t iso;
    char log[256], log2[256];
    tcpproxy_t *px;
    simproc *sim;
    pid_t pid; /* the daemon, -1 when none is running */
    store_t *store;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->pid = -1;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->pid > 0) {
        kill(fx->pid, SIGKILL);
        simproc_wait(fx->pid, 10000);
    }
    tcpproxy_stop(fx->px);
    if (fx->sim)
        simproc_stop(fx->sim);
    if (fx->store)
        store_close(fx->store);
    free(fx);
    *state = NULL;
    return 0;
}

/* Isolation, log paths and a Kafka-mode proxy in front of the broker. Skips the test (with a
 * message) when KAFKA_BOOTSTRAP_SERVERS is not one IPv4/localhost host:port: the proxy cannot
 * stand in front of a cluster or a host it cannot reach by address. */
static void fx_begin(fx_t *fx, const char *tag)
{
    pt_isolate(&fx->iso, tag);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(fx->log, sizeof fx->log, "%s/%sproducer.log", tmp, fx->iso.prefix);
    snprintf(fx->log2, sizeof fx->log2, "%s/%sproducer2.log", tmp, fx->iso.prefix);
    const char *bootstrap = testenv_require("KAFKA_BOOTSTRAP_SERVERS");
    const char *colon = strrchr(bootstrap, ':');
    char host[64];
    long port = 0;
    if (colon && strchr(bootstrap, ',') == NULL && (size_t)(colon - bootstrap) < sizeof host) {
        memcpy(host, bootstrap, (size_t)(colon - bootstrap));
        host[colon - bootstrap] = '\0';
        char *end = NULL;
        port = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end != '\0')
            port = 0;
    }
    char err[256] = "";
    if (port > 0 && port < 65536)
        fx->px = tcpproxy_start_kafka(host, (int)port, err, sizeof err);
    if (!fx->px) {
        fprintf(stderr, "SKIP: KAFKA_BOOTSTRAP_SERVERS=%s: needs one IPv4/localhost host:port "
                        "for the Kafka proxy (%s)\n", bootstrap, err);
        skip();
    }
}

/* After the first pass through the proxy: the producer really used it (otherwise the freeze
 * below would hang nothing and the test prove nothing). */
static void require_proxied(fx_t *fx)
{
    long long n = tcpproxy_kafka_rewrites(fx->px);
    fprintf(stderr, "kafka proxy: %lld advertised broker address(es) rewritten\n", n);
    if (n == 0)
        fail_msg("the Kafka proxy rewrote no broker address in the metadata: the broker does "
                 "not advertise KAFKA_BOOTSTRAP_SERVERS=%s as its listener, so the producer "
                 "went to it directly, around the proxy",
                 testenv_require("KAFKA_BOOTSTRAP_SERVERS"));
}

/* ---- the test ------------------------------------------------------------------------------ */

static int seed_clients(simproc *sim, const char *name)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 1; i <= CLIENTS; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "id", i);
        cJSON_AddStringToObject(r, "razao_social", name);
        cJSON_AddBoolToObject(r, "is_ativo", true);
        cJSON_AddItemToArray(arr, r);
    }
    return pt_seed_set(sim, "clientes", arr);
}

typedef struct {
    const char *log;
    const char *needle;
    int count;
} logwait_t;

static bool log_reached(void *ctx)
{
    logwait_t *w = ctx;
    return pt_log_count(w->log, w->needle) >= w->count;
}

/* Waits until fx->pid (`binary`, logging to fx->log) has sent a produce request that the
 * frozen proxy holds (librdkafka's msg debug log counts past `before`), sends SIGTERM and
 * requires an exit within STOP_DEADLINE_MS with exit code 1 and event=delivery_abandoned
 * logged. The daemon is gone afterwards (fx->pid -1), whatever the outcome. */
static void sigterm_with_page_in_flight(fx_t *fx, const char *binary, const char *source,
                                        int before)
{
    logwait_t sent = {fx->log, "Produce MessageSet with", before + 1};
    if (!testenv_wait_until(log_reached, &sent, 60000, 50)) {
        pt_dump_log(fx->log, 4000);
        fail_msg("%s sent nothing to the frozen Kafka within 60 s", binary);
    }
    int64_t t0 = testenv_now_ms();
    assert_int_equal(kill(fx->pid, SIGTERM), 0);
    int rc = simproc_wait(fx->pid, STOP_DEADLINE_MS); /* -1: still running (then SIGKILLed) */
    int64_t took = testenv_now_ms() - t0;
    fx->pid = -1;
    fprintf(stderr, "%s: exit %d %lld ms after SIGTERM with its page unconfirmed (bound %d ms)\n",
            binary, rc, (long long)took, STOP_DEADLINE_MS);
    if (rc != 1)
        pt_dump_log(fx->log, 3000);
    if (rc == -1)
        fail_msg("%s still ran %d ms after SIGTERM (killed)", binary, STOP_DEADLINE_MS);
    assert_true(took < STOP_DEADLINE_MS);
    assert_int_equal(rc, 1); /* unclean: records were left undelivered */
    assert_int_equal(pt_log_count(fx->log, "event=delivery_abandoned"), 1);
    char stopped[96];
    snprintf(stopped, sizeof stopped, "event=producer_stopped source=%s exit_code=1", source);
    assert_int_equal(pt_log_count(fx->log, stopped), 1);
}

static void stop_bounded_while_kafka_hangs(void **state)
{
    fx_t *fx = *state;
    fx_begin(fx, "itps");
    char topic[KAFKA_TOPIC_NAME_MAX];
    assert_int_equal(kafka_topic_name(topic, sizeof topic, fx->iso.prefix,
                                      KAFKA_TOPIC_MILVUS_CLIENTS),
                     KAFKA_OK);
    char err[256];
    fx->sim = simproc_start_milvus(TOKEN, err, sizeof err);
    if (!fx->sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(fx->sim, "{\"rate_limit_per_min\":0}"), 0);
    assert_int_equal(seed_clients(fx->sim, "Cliente"), 0);

    char e_uri[700], e_prefix[128], e_base[200], e_kafka[64];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", fx->iso.uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", fx->iso.prefix);
    snprintf(e_base, sizeof e_base, "MILVUS_BASE_URL=%s", simproc_api_url(fx->sim));
    snprintf(e_kafka, sizeof e_kafka, "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%d",
             tcpproxy_port(fx->px));
    const char *env[] = {e_uri, e_prefix, e_base, "MILVUS_TOKEN=" TOKEN, "TOPIC_PARTITIONS=1",
                         "MILVUS_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                         "POLL_INTERVAL_SECONDS=1", "KAFKA_MESSAGE_TIMEOUT_MS=120000",
                         "KAFKA_DEBUG=msg", "LOG_LEVEL=debug", e_kafka, NULL};
    int port = 0;
    fx->pid = pt_start_daemon("milvus-producer", env, fx->log, &port);
    assert_true(fx->pid > 0);
    logwait_t first = {fx->log, "event=scan_done entity=client outcome=ok end=short pages=1 "
                                "published=5", 1};
    if (!testenv_wait_until(log_reached, &first, 120000, 50)) {
        pt_dump_log(fx->log, 4000);
        fail_msg("milvus-producer did not publish the 5 clients through the proxy");
    }
    require_proxied(fx);

    /* Kafka hangs; the clients change: the next pass sends them and waits */
    int before = pt_log_count(fx->log, "Produce MessageSet with");
    tcpproxy_freeze(fx->px);
    assert_int_equal(seed_clients(fx->sim, "Cliente alterado"), 0);
    sigterm_with_page_in_flight(fx, "milvus-producer", "milvus", before);
    tcpproxy_stop(fx->px);
    fx->px = NULL;

    /* Kafka is back (straight to the broker): a new run publishes the changed clients */
    const char *env2[] = {e_uri, e_prefix, e_base, "MILVUS_TOKEN=" TOKEN, "TOPIC_PARTITIONS=1",
                          "MILVUS_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                          "LOG_LEVEL=debug", NULL};
    const char *args[] = {"--once", NULL};
    int rc = pt_run("milvus-producer", args, env2, fx->log2, 120000);
    if (rc != 0)
        pt_dump_log(fx->log2, 3000);
    assert_int_equal(rc, 0);
    pt_msgs_t got;
    assert_int_equal(pt_consume(topic, &got, 30000), 0);
    int lost = 0;
    for (int i = 1; i <= CLIENTS && !lost; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        int changed = 0;
        for (size_t k = 0; k < got.n; k++)
            if (got.msgs[k].key != NULL && strcmp(got.msgs[k].key, key) == 0 &&
                got.msgs[k].value != NULL && strstr(got.msgs[k].value, "Cliente alterado"))
                changed++;
        if (changed < 1)
            lost = i;
    }
    pt_msgs_free(&got);
    if (lost)
        fail_msg("the change of client %d was never published (lost)", lost);
    simproc *sim = fx->sim;
    fx->sim = NULL;
    assert_int_equal(simproc_stop(sim), 0);
}

#define PLOOMES_KEY "SHUTDOWNPLOOMESKEY0123456"

static int seed_contacts(simproc *sim, int from, int to)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = from; i <= to; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "Id", i);
        char name[32];
        snprintf(name, sizeof name, "Contact %d", i);
        cJSON_AddStringToObject(r, "Name", name);
        cJSON_AddItemToArray(arr, r);
    }
    return pt_seed_set(sim, "Contacts", arr);
}

static void ploomes_stop_keeps_the_cursor_while_kafka_hangs(void **state)
{
    fx_t *fx = *state;
    fx_begin(fx, "itpsp");
    char topic[KAFKA_TOPIC_NAME_MAX];
    assert_int_equal(kafka_topic_name(topic, sizeof topic, fx->iso.prefix,
                                      KAFKA_TOPIC_PLOOMES_CONTACTS),
                     KAFKA_OK);
    char err[256];
    fx->sim = simproc_start_ploomes(PLOOMES_KEY, err, sizeof err);
    if (!fx->sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(fx->sim, "{\"rate_limit_per_min\":0}"), 0);
    assert_int_equal(seed_contacts(fx->sim, 1, 5), 0);
    fx->store = store_open(fx->iso.uri, err, sizeof err);
    if (!fx->store)
        fail_msg("store_open: %s", err);

    char e_uri[700], e_prefix[128], e_base[200], e_kafka[64];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", fx->iso.uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", fx->iso.prefix);
    snprintf(e_base, sizeof e_base, "PLOOMES_BASE_URL=%s", simproc_api_url(fx->sim));
    snprintf(e_kafka, sizeof e_kafka, "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%d",
             tcpproxy_port(fx->px));
    const char *env[] = {e_uri, e_prefix, e_base, "PLOOMES_USER_KEY=" PLOOMES_KEY,
                         "PLOOMES_ENTITIES=contacts", "TOPIC_PARTITIONS=1",
                         "PLOOMES_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                         "POLL_INTERVAL_SECONDS=1", "SYNC_SINCE=2024-02-24T00:00:00-03:00",
                         "KAFKA_MESSAGE_TIMEOUT_MS=120000", "KAFKA_DEBUG=msg", "LOG_LEVEL=debug",
                         e_kafka, NULL};
    int port = 0;
    fx->pid = pt_start_daemon("ploomes-producer", env, fx->log, &port);
    assert_true(fx->pid > 0);
    logwait_t first = {fx->log, "event=pass_done source=ploomes outcome=ok", 1};
    if (!testenv_wait_until(log_reached, &first, 120000, 50)) {
        pt_dump_log(fx->log, 4000);
        fail_msg("ploomes-producer did not finish a pass through the proxy");
    }
    require_proxied(fx);
    store_cursor_t cur;
    assert_int_equal(store_cursor_get(fx->store, "ploomes.contact", &cur, err, sizeof err),
                     STORE_OK);
    assert_int_equal(cur.id, 5);

    /* Kafka hangs; contacts 6-10 appear: the next pass sends them and waits */
    int before = pt_log_count(fx->log, "Produce MessageSet with");
    tcpproxy_freeze(fx->px);
    assert_int_equal(seed_contacts(fx->sim, 6, 10), 0);
    sigterm_with_page_in_flight(fx, "ploomes-producer", "ploomes", before);
    tcpproxy_stop(fx->px);
    fx->px = NULL;
    assert_int_equal(store_cursor_get(fx->store, "ploomes.contact", &cur, err, sizeof err),
                     STORE_OK);
    assert_int_equal(cur.id, 5); /* not past the unconfirmed records */

    /* Kafka is back: a new run publishes 6-10 */
    const char *env2[] = {e_uri, e_prefix, e_base, "PLOOMES_USER_KEY=" PLOOMES_KEY,
                          "PLOOMES_ENTITIES=contacts", "TOPIC_PARTITIONS=1",
                          "PLOOMES_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                          "SYNC_SINCE=2024-02-24T00:00:00-03:00", "LOG_LEVEL=debug", NULL};
    const char *args[] = {"--once", NULL};
    int rc = pt_run("ploomes-producer", args, env2, fx->log2, 120000);
    if (rc != 0)
        pt_dump_log(fx->log2, 3000);
    assert_int_equal(rc, 0);
    pt_msgs_t got;
    assert_int_equal(pt_consume(topic, &got, 30000), 0);
    int lost = 0;
    for (int i = 1; i <= 10 && !lost; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        if (pt_count_key(&got, key) < 1)
            lost = i;
    }
    pt_msgs_free(&got);
    if (lost)
        fail_msg("contact %d was never published (lost)", lost);
    assert_int_equal(store_cursor_get(fx->store, "ploomes.contact", &cur, err, sizeof err),
                     STORE_OK);
    assert_int_equal(cur.id, 10);
    simproc *sim = fx->sim;
    fx->sim = NULL;
    assert_int_equal(simproc_stop(sim), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stop_bounded_while_kafka_hangs, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(ploomes_stop_keeps_the_cursor_while_kafka_hangs,
                                        fx_setup, fx_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
