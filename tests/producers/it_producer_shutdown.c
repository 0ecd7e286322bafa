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
#define PLOOMES_KEY "SHUTDOWNPLOOMESKEY0123456"
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
    char why[512];
    fx->px = tcpproxy_start_kafka_env(why, sizeof why);
    if (!fx->px) {
        fprintf(stderr, "SKIP: %s\n", why);
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

/* ---- one producer's scenario ---------------------------------------------------------------- */

/* What differs between the two producers' scenarios. */
typedef struct {
    const char *tag;            /* pt_isolate's */
    const char *binary;         /* the producer */
    const char *source;         /* its event=producer_stopped source= */
    const char *sim;            /* its simulator ... */
    const char *credential;     /* ... and the simulator's credential */
    kafka_topic_id_t topic;     /* the topic the scenario reads back */
    const char *base_var;       /* the variable of the simulator's API URL */
    const char *settings[5];    /* the producer's own settings, NULL-terminated */
    const char *first_pass;     /* the log line of its first pass (through the proxy) */
    const char *first_what;     /* what that pass did, for the failure message */
    /* seeds the simulator: its first records (changed false), then the change that the pass
     * Kafka never confirms sends (changed true). Returns 0 or -1. */
    int (*seed)(simproc *sim, bool changed);
} scenario_t;

#define ENV_MAX 24

/* A producer's environment; the strings are owned here. */
typedef struct {
    char uri[700], prefix[128], base[200], kafka[64];
    const char *v[ENV_MAX + 1];
    size_t n;
} env_t;

static void env_add(env_t *e, const char *entry)
{
    assert_true(e->n < ENV_MAX);
    e->v[e->n++] = entry;
    e->v[e->n] = NULL;
}

/* The scenario's environment (returns e->v): the test's database and prefix, the simulator's
 * URL, sc->settings, one partition, short retries and debug logs. A daemon also gets 1 s polls,
 * Kafka's 120 s message timeout and librdkafka's msg debug log, and reaches Kafka through the
 * proxy; otherwise the broker is the test's own (KAFKA_BOOTSTRAP_SERVERS). */
static const char *const *scenario_env(env_t *e, const fx_t *fx, const scenario_t *sc,
                                       bool daemon)
{
    memset(e, 0, sizeof *e);
    snprintf(e->uri, sizeof e->uri, "MONGODB_URI=%s", fx->iso.uri);
    snprintf(e->prefix, sizeof e->prefix, "TOPIC_PREFIX=%s", fx->iso.prefix);
    snprintf(e->base, sizeof e->base, "%s=%s", sc->base_var, simproc_api_url(fx->sim));
    env_add(e, e->uri);
    env_add(e, e->prefix);
    env_add(e, e->base);
    for (const char *const *s = sc->settings; *s; s++)
        env_add(e, *s);
    static const char *const common[] = {"TOPIC_PARTITIONS=1", "RETRY_BASE_MS=50",
                                         "RETRY_MAX_MS=500", "LOG_LEVEL=debug"};
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        env_add(e, common[i]);
    if (daemon) {
        env_add(e, "POLL_INTERVAL_SECONDS=1");
        env_add(e, "KAFKA_MESSAGE_TIMEOUT_MS=120000");
        env_add(e, "KAFKA_DEBUG=msg");
        snprintf(e->kafka, sizeof e->kafka, "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%d",
                 tcpproxy_port(fx->px));
        env_add(e, e->kafka);
    }
    return e->v;
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

/* The opening of a scenario: isolation and the proxy (fx_begin), the producer's topic name in
 * topic, its simulator (no rate limit) in fx->sim with the first records, then the producer
 * started as a daemon whose Kafka is the proxy (fx->pid, logging to fx->log); waits (120 s) for
 * its first pass and requires that it went through the proxy. */
static void start_through_proxy(fx_t *fx, const scenario_t *sc, char topic[KAFKA_TOPIC_NAME_MAX])
{
    fx_begin(fx, sc->tag);
    assert_int_equal(kafka_topic_name(topic, KAFKA_TOPIC_NAME_MAX, fx->iso.prefix, sc->topic),
                     KAFKA_OK);
    char err[256];
    fx->sim = simproc_start_sim(sc->sim, sc->credential, "{\"rate_limit_per_min\":0}", err,
                                sizeof err);
    if (!fx->sim)
        fail_msg("%s", err);
    assert_int_equal(sc->seed(fx->sim, false), 0);
    env_t env;
    int port = 0;
    fx->pid = pt_start_daemon(sc->binary, scenario_env(&env, fx, sc, true), fx->log, &port);
    assert_true(fx->pid > 0);
    logwait_t first = {fx->log, sc->first_pass, 1};
    if (!testenv_wait_until(log_reached, &first, 120000, 50)) {
        pt_dump_log(fx->log, 4000);
        fail_msg("%s did not %s through the proxy", sc->binary, sc->first_what);
    }
    require_proxied(fx);
}

/* Kafka hangs (the proxy freezes) and the records change (sc->seed): waits until fx->pid (the
 * scenario's producer, logging to fx->log) has sent a produce request that the frozen proxy
 * holds (librdkafka's msg debug log counts past what it was at the freeze), sends SIGTERM and
 * requires an exit within STOP_DEADLINE_MS with exit code 1 and event=delivery_abandoned
 * logged. The daemon is gone afterwards (fx->pid -1), whatever the outcome; when all held, the
 * proxy is stopped too (fx->px NULL: Kafka is back). */
static void sigterm_with_page_in_flight(fx_t *fx, const scenario_t *sc)
{
    const char *binary = sc->binary, *source = sc->source;
    int before = pt_log_count(fx->log, "Produce MessageSet with");
    tcpproxy_freeze(fx->px);
    assert_int_equal(sc->seed(fx->sim, true), 0);
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
    tcpproxy_stop(fx->px);
    fx->px = NULL;
}

/* Kafka is back: runs the scenario's producer --once straight to the broker (logging to
 * fx->log2), requires exit 0, then reads the whole topic: returns the first of the keys
 * "1".."last" with no record whose value contains `needle` (NULL: no record at all), 0 when
 * each has one. */
static int run_once_first_lost(fx_t *fx, const scenario_t *sc, const char *topic, int last,
                               const char *needle)
{
    env_t env;
    const char *args[] = {"--once", NULL};
    int rc = pt_run(sc->binary, args, scenario_env(&env, fx, sc, false), fx->log2, 120000);
    if (rc != 0)
        pt_dump_log(fx->log2, 3000);
    assert_int_equal(rc, 0);
    pt_msgs_t got;
    assert_int_equal(pt_consume(topic, &got, 30000), 0);
    int lost = 0;
    for (int i = 1; i <= last && !lost; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        int found = 0;
        for (size_t k = 0; k < got.n; k++)
            if (got.msgs[k].key != NULL && strcmp(got.msgs[k].key, key) == 0 &&
                (needle == NULL ||
                 (got.msgs[k].value != NULL && strstr(got.msgs[k].value, needle))))
                found++;
        if (found < 1)
            lost = i;
    }
    pt_msgs_free(&got);
    return lost;
}

/* The end of a scenario: its simulator stops cleanly. */
static void stop_sim(fx_t *fx)
{
    simproc *sim = fx->sim;
    fx->sim = NULL;
    assert_int_equal(simproc_stop(sim), 0);
}

static int seed_milvus(simproc *sim, bool changed)
{
    return seed_clients(sim, changed ? "Cliente alterado" : "Cliente");
}

static const scenario_t MILVUS = {
    .tag = "itps",
    .binary = "milvus-producer",
    .source = "milvus",
    .sim = "milvus-sim",
    .credential = TOKEN,
    .topic = KAFKA_TOPIC_MILVUS_CLIENTS,
    .base_var = "MILVUS_BASE_URL",
    .settings = {"MILVUS_TOKEN=" TOKEN, "MILVUS_RATE_PER_MIN=100000", NULL},
    .first_pass = "event=scan_done entity=client outcome=ok end=short pages=1 published=5",
    .first_what = "publish the 5 clients",
    .seed = seed_milvus,
};

static void stop_bounded_while_kafka_hangs(void **state)
{
    fx_t *fx = *state;
    char topic[KAFKA_TOPIC_NAME_MAX];
    start_through_proxy(fx, &MILVUS, topic);

    /* Kafka hangs; the clients change: the next pass sends them and waits; SIGTERM */
    sigterm_with_page_in_flight(fx, &MILVUS);

    /* Kafka is back (straight to the broker): a new run publishes the changed clients */
    int lost = run_once_first_lost(fx, &MILVUS, topic, CLIENTS, "Cliente alterado");
    if (lost)
        fail_msg("the change of client %d was never published (lost)", lost);
    stop_sim(fx);
}

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

/* contacts 1-5, then 6-10 */
static int seed_ploomes(simproc *sim, bool changed)
{
    return changed ? seed_contacts(sim, 6, 10) : seed_contacts(sim, 1, 5);
}

/* The Ploomes contact cursor's Id in the test's database (fx->store). */
static int64_t contact_cursor(fx_t *fx)
{
    store_cursor_t cur;
    char err[256];
    assert_int_equal(store_cursor_get(fx->store, "ploomes.contact", &cur, err, sizeof err),
                     STORE_OK);
    return cur.id;
}

static const scenario_t PLOOMES = {
    .tag = "itpsp",
    .binary = "ploomes-producer",
    .source = "ploomes",
    .sim = "ploomes-sim",
    .credential = PLOOMES_KEY,
    .topic = KAFKA_TOPIC_PLOOMES_CONTACTS,
    .base_var = "PLOOMES_BASE_URL",
    .settings = {"PLOOMES_USER_KEY=" PLOOMES_KEY, "PLOOMES_ENTITIES=contacts",
                 "PLOOMES_RATE_PER_MIN=100000", "SYNC_SINCE=2024-02-24T00:00:00-03:00", NULL},
    .first_pass = "event=pass_done source=ploomes outcome=ok",
    .first_what = "finish a pass",
    .seed = seed_ploomes,
};

static void ploomes_stop_keeps_the_cursor_while_kafka_hangs(void **state)
{
    fx_t *fx = *state;
    char topic[KAFKA_TOPIC_NAME_MAX];
    start_through_proxy(fx, &PLOOMES, topic);
    char err[256];
    fx->store = store_open(fx->iso.uri, err, sizeof err);
    if (!fx->store)
        fail_msg("store_open: %s", err);
    assert_int_equal(contact_cursor(fx), 5);

    /* Kafka hangs; contacts 6-10 appear: the next pass sends them and waits; SIGTERM */
    sigterm_with_page_in_flight(fx, &PLOOMES);
    assert_int_equal(contact_cursor(fx), 5); /* not past the unconfirmed records */

    /* Kafka is back: a new run publishes 6-10 */
    int lost = run_once_first_lost(fx, &PLOOMES, topic, 10, NULL);
    if (lost)
        fail_msg("contact %d was never published (lost)", lost);
    assert_int_equal(contact_cursor(fx), 10);
    stop_sim(fx);
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
