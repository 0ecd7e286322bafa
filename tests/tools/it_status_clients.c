/* it_status_clients: pipeline-status --serve builds its Kafka client and rate-limit readers
 * once and reuses them on every sample, and still reports an outage and recovers from it.
 *
 * pipeline-status reaches Kafka's bootstrap address and MongoDB through two TCP proxies run by
 * this test (tcpproxy_; the shared services are never touched). The test counts the TCP
 * connections made to each proxy by reading /proc/net/tcp every 20 ms: a connection shows as
 * ESTABLISHED while open and as TIME_WAIT for 60 s after it closed, so every one is seen; it is
 * named by its client-side port. A new librdkafka handle always starts with a connection to
 * its bootstrap address, so the Kafka count is the number of Kafka clients built.
 *
 *   samples_reuse_their_clients
 *     --serve --interval 1 over the five topics of a test prefix, both rate limits configured:
 *     over SAMPLES samples at most KAFKA_CONNS_MAX connections reach the Kafka proxy and
 *     MONGO_CONNS_MAX the MongoDB proxy (before the fix: 9 Kafka clients per sample, 4 to read
 *     the partition counts, 4 to read each worker group's committed offsets and 1 for the
 *     DLQ, so 9 * SAMPLES connections). Then the MongoDB proxy is cut: a sample reports the
 *     rate-limit use as unknown with a problem; restored: a sample has no problem and the rate
 *     limits known again, and the following samples again open no connection to either proxy
 *     beyond a reconnect. Last, dead letters with chosen timestamps are produced between
 *     samples: the reused handle reads the DLQ's size and newest letter right each time (2
 *     partitions: 1 letter at T1 -> 1 / T1; one more at T2 > T1 on the other partition -> 2 /
 *     T2; a third on the first partition -> 3 / its time).
 *
 *   kafka_down_at_start_is_reported_then_recovered
 *     The Kafka proxy is cut before pipeline-status starts: a sample reports the DLQ size as
 *     unknown with problems and /readyz answers 503; restored: a sample has the DLQ size and
 *     lag again, no problem, and /readyz answers 200.
 *
 *   letter_page_is_served_from_the_newest_letters
 *     A dead letter the page lists (/api/dlq) is shown by /letter?p=&o= without reading Kafka
 *     on the HTTP thread: with the Kafka proxy cut (a new Kafka client cannot start) the page
 *     still answers 200 with the letter (before: a new client per request, 503 after 10 s).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../workers/wtest.h"
#include "tcpproxy.h"

#define SAMPLES 15
#define KAFKA_CONNS_MAX 3 /* the bootstrap connection, and a reconnect or two */
#define MONGO_CONNS_MAX 6 /* the pool's monitor and round-trip connections, and its clients */
#define AFTER_RECOVERY_SAMPLES 5
#define WAIT_MS 120000    /* a sample with Kafka down waits 10 s for each of 5 reads */

/* ---- connections to a proxy, from /proc/net/tcp ---------------------------------------- */

typedef struct {
    int port;                  /* the proxy's */
    unsigned char seen[65536 / 8]; /* client-side ports seen */
} conns_t;

static int conns_count(const conns_t *c)
{
    int n = 0;
    for (size_t i = 0; i < sizeof c->seen; i++)
        n += __builtin_popcount(c->seen[i]);
    return n;
}

static void conns_mark(conns_t *c, long port)
{
    if (port > 0 && port < 65536)
        c->seen[port / 8] |= (unsigned char)(1u << (port % 8));
}

/* Adds the connections to each proxy in `cs` now in /proc/net/tcp (IPv4: the proxies listen
 * on 127.0.0.1). A line: "sl local_address rem_address st ...", addresses as HEXIP:HEXPORT. */
static void conns_scan(conns_t *const *cs, size_t n)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, ':'); /* after "sl" */
        long ports[2] = {-1, -1};
        for (int k = 0; p && k < 2; k++) {
            p = strchr(p + 1, ':'); /* the port of the local, then of the remote address */
            if (!p)
                break;
            char *end = NULL;
            ports[k] = strtol(p + 1, &end, 16);
            p = end;
        }
        if (ports[0] < 0 || ports[1] <= 0)
            continue; /* the header, or a listening socket */
        for (size_t i = 0; i < n; i++) {
            if (ports[1] == cs[i]->port)
                conns_mark(cs[i], ports[0]); /* the client's side */
            else if (ports[0] == cs[i]->port)
                conns_mark(cs[i], ports[1]); /* the proxy's side */
        }
    }
    fclose(f);
}

/* ---- the served status ------------------------------------------------------------------ */

typedef struct {
    int port;                  /* pipeline-status --serve */
    conns_t *conns[2];         /* scanned on every poll (Kafka, MongoDB) */
    double last_taken;         /* taken_ms of the newest sample seen */
    int samples;               /* distinct samples seen */
    cJSON *snap;               /* the newest sample (owned) */
    bool (*want)(const cJSON *snap);
    int64_t after_ms;          /* only samples taken at or after this wall-clock ms count */
} watch_t;

/* Scans the connections, reads /api/status, and says whether a new sample is `want`ed. */
static bool new_sample_wanted(void *ctx)
{
    watch_t *w = ctx;
    conns_scan(w->conns, 2);
    char *body = NULL;
    long code = pt_http_get(w->port, "/api/status", &body);
    cJSON *j = code == 200 && body ? cJSON_Parse(body) : NULL;
    free(body);
    cJSON *t = j ? cJSON_GetObjectItem(j, "taken_ms") : NULL;
    if (!cJSON_IsNumber(t) || t->valuedouble == w->last_taken) {
        cJSON_Delete(j);
        return false;
    }
    w->last_taken = t->valuedouble;
    w->samples++;
    cJSON_Delete(w->snap);
    w->snap = j;
    return t->valuedouble >= (double)w->after_ms && (!w->want || w->want(j));
}

static bool any(const cJSON *snap)
{
    (void)snap;
    return true;
}

/* Waits for a sample taken from now on that satisfies want. */
static void wait_sample(watch_t *w, bool (*want)(const cJSON *), const char *what)
{
    w->want = want;
    w->after_ms = clock_wall_ms();
    if (!testenv_wait_until(new_sample_wanted, w, WAIT_MS, 20)) {
        char *text = w->snap ? cJSON_Print(w->snap) : NULL;
        fail_msg("no sample %s within %d ms; the last: %s", what, WAIT_MS, text ? text : "none");
    }
}

static int problem_count(const cJSON *snap)
{
    return cJSON_GetArraySize(cJSON_GetObjectItem(snap, "problems"));
}

static bool rate_known(const cJSON *snap, int i)
{
    return cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(snap, "rate_limits"), i),
                            "known"));
}

static double dlq_messages(const cJSON *snap)
{
    cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(snap, "dlq"), "messages");
    return cJSON_IsNumber(m) ? m->valuedouble : -2;
}

static double dlq_newest(const cJSON *snap)
{
    cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(snap, "dlq"), "newest_ms");
    return cJSON_IsNumber(m) ? m->valuedouble : -2;
}

static bool healthy(const cJSON *snap)
{
    return problem_count(snap) == 0 && rate_known(snap, 0) && rate_known(snap, 1) &&
           dlq_messages(snap) >= 0 &&
           cJSON_GetArraySize(cJSON_GetObjectItem(snap, "workers")) == 4;
}

static bool mongo_down(const cJSON *snap)
{
    return !rate_known(snap, 0) && !rate_known(snap, 1) && problem_count(snap) > 0;
}

static bool kafka_down(const cJSON *snap)
{
    return dlq_messages(snap) == -1 && problem_count(snap) > 0;
}

static struct {
    double messages, newest_ms;
} expected_dlq;

static bool dlq_as_expected(const cJSON *snap)
{
    return healthy(snap) && dlq_messages(snap) == expected_dlq.messages &&
           dlq_newest(snap) == expected_dlq.newest_ms;
}

/* Produces one dead letter on `partition` of the test's DLQ topic, stamped ts_ms. */
static void dead_letter(wt_t *w, int32_t partition, int64_t ts_ms)
{
    char dlq[KAFKA_TOPIC_NAME_MAX], err[512];
    wt_topic(w, "pipeline.dlq", dlq, sizeof dlq);
    kafka_settings_t s = wt_settings();
    rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(dlq), RD_KAFKA_V_PARTITION(partition),
                                       RD_KAFKA_V_TIMESTAMP(ts_ms), RD_KAFKA_V_VALUE("{}", 2),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/* ---- setup ------------------------------------------------------------------------------ */

typedef struct {
    wt_t w;
    tcpproxy_t *kafka, *mongo;
    conns_t kc, mc;
    watch_t watch;
    pid_t pid;
} fixture_t;

static tcpproxy_t *proxy_for(const char *host, int port)
{
    char err[256];
    tcpproxy_t *px = tcpproxy_start(host, port, err, sizeof err);
    if (!px)
        fail_msg("%s", err);
    return px;
}

/* The test's prefix with its five topics, both rate limits configured, Kafka and MongoDB
 * behind proxies (the Kafka proxy cut first when kafka_cut). */
static void setup(fixture_t *f, const char *tag, bool kafka_cut)
{
    memset(f, 0, sizeof *f);
    wt_init(&f->w, tag);
    wt_set(&f->w, "LOG_LEVEL", "info");
    wt_set(&f->w, "PLOOMES_BASE_URL", "http://127.0.0.1:9/api");
    wt_set(&f->w, "PLOOMES_USER_KEY", "clients-test-ploomes-key");
    wt_set(&f->w, "MILVUS_BASE_URL", "http://127.0.0.1:9/api");
    wt_set(&f->w, "MILVUS_TOKEN", "clients-test-milvus-token");
    assert_int_equal(wt_ensure_topics(&f->w), 0);

    const char *bootstrap = testenv_require("KAFKA_BOOTSTRAP_SERVERS"); /* host:port */
    const char *colon = strrchr(bootstrap, ':');
    assert_non_null(colon);
    char host[128];
    snprintf(host, sizeof host, "%.*s", (int)(colon - bootstrap), bootstrap);
    f->kafka = proxy_for(host, (int)strtol(colon + 1, NULL, 10));
    mongoc_uri_t *mu = mongoc_uri_new(f->w.mongo_uri);
    assert_non_null(mu);
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(mu);
    assert_non_null(h);
    f->mongo = proxy_for(h->host, h->port);
    mongoc_uri_destroy(mu);

    char kafka[64], uri[640];
    snprintf(kafka, sizeof kafka, "127.0.0.1:%d", tcpproxy_port(f->kafka));
    assert_int_equal(tcpproxy_uri(f->w.mongo_uri, tcpproxy_port(f->mongo), uri, sizeof uri), 0);
    wt_set(&f->w, "KAFKA_BOOTSTRAP_SERVERS", kafka);
    wt_set(&f->w, "MONGODB_URI", uri);
    f->kc.port = tcpproxy_port(f->kafka);
    f->mc.port = tcpproxy_port(f->mongo);
    if (kafka_cut)
        tcpproxy_cut(f->kafka);

    f->watch = (watch_t){.port = pt_free_port(), .conns = {&f->kc, &f->mc}, .last_taken = -1};
    char port[16], log[256], err[256];
    snprintf(port, sizeof port, "%d", f->watch.port);
    snprintf(log, sizeof log, "%s.serve", f->w.log);
    f->pid = simproc_spawn("pipeline-status",
                           (const char *[]){"--serve", port, "--interval", "1", NULL},
                           wt_env(&f->w), log, err, sizeof err);
    if (f->pid <= 0)
        fail_msg("%s", err);
}

static void teardown(fixture_t *f)
{
    kill(f->pid, SIGTERM);
    assert_int_equal(simproc_wait(f->pid, 60000), 0);
    cJSON_Delete(f->watch.snap);
    tcpproxy_stop(f->kafka);
    tcpproxy_stop(f->mongo);
    wt_free(&f->w);
}

/* ---- the tests -------------------------------------------------------------------------- */

static void samples_reuse_their_clients(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    setup(f, "stcl", false);

    wait_sample(&f->watch, healthy, "with every part known");
    int first = f->watch.samples;
    while (f->watch.samples - first < SAMPLES - 1)
        wait_sample(&f->watch, any, "at all");
    conns_scan(f->watch.conns, 2);
    int kafka = conns_count(&f->kc), mongo = conns_count(&f->mc);
    fprintf(stderr, "%d samples: %d connections to Kafka, %d to MongoDB\n",
            f->watch.samples - first + 1, kafka, mongo);
    assert_true(healthy(f->watch.snap));
    assert_in_range(kafka, 1, KAFKA_CONNS_MAX);
    assert_in_range(mongo, 1, MONGO_CONNS_MAX);

    /* MongoDB goes away: reported; comes back: recovered */
    tcpproxy_cut(f->mongo);
    wait_sample(&f->watch, mongo_down, "reporting MongoDB down");
    tcpproxy_restore(f->mongo);
    wait_sample(&f->watch, healthy, "recovered after MongoDB came back");
    conns_scan(f->watch.conns, 2);
    kafka = conns_count(&f->kc);
    mongo = conns_count(&f->mc);
    first = f->watch.samples;
    while (f->watch.samples - first < AFTER_RECOVERY_SAMPLES)
        wait_sample(&f->watch, any, "at all");
    conns_scan(f->watch.conns, 2);
    fprintf(stderr, "%d samples after recovery: %d more connections to Kafka, %d to MongoDB\n",
            AFTER_RECOVERY_SAMPLES, conns_count(&f->kc) - kafka, conns_count(&f->mc) - mongo);
    assert_true(healthy(f->watch.snap));
    assert_in_range(conns_count(&f->kc) - kafka, 0, 1);
    assert_in_range(conns_count(&f->mc) - mongo, 0, 2);

    /* the DLQ's size and newest letter, read again and again on one handle */
    assert_true(dlq_as_expected(f->watch.snap) || dlq_messages(f->watch.snap) == 0);
    int64_t t1 = clock_wall_ms() - 3600000, t2 = t1 + 60000, t3 = t1 + 120000;
    dead_letter(&f->w, 0, t1);
    expected_dlq.messages = 1;
    expected_dlq.newest_ms = (double)t1;
    wait_sample(&f->watch, dlq_as_expected, "with 1 dead letter at T1");
    dead_letter(&f->w, 1, t2);
    expected_dlq.messages = 2;
    expected_dlq.newest_ms = (double)t2;
    wait_sample(&f->watch, dlq_as_expected, "with 2 dead letters, the newest at T2");
    dead_letter(&f->w, 0, t3);
    expected_dlq.messages = 3;
    expected_dlq.newest_ms = (double)t3;
    wait_sample(&f->watch, dlq_as_expected, "with 3 dead letters, the newest at T3");
    wait_sample(&f->watch, dlq_as_expected, "still with 3 dead letters, the newest at T3");
    teardown(f);
    free(f);
}

static void kafka_down_at_start_is_reported_then_recovered(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    setup(f, "stkd", true);
    wait_sample(&f->watch, kafka_down, "reporting Kafka down");
    assert_int_equal(pt_http_get(f->watch.port, "/readyz", NULL), 503);
    tcpproxy_restore(f->kafka);
    wait_sample(&f->watch, healthy, "recovered after Kafka came back");
    assert_int_equal(pt_http_get(f->watch.port, "/readyz", NULL), 200);
    teardown(f);
    free(f);
}

typedef struct {
    int port;
    char *body;                /* the newest /api/dlq answer (owned) */
} dlq_api_t;

static bool one_letter_listed(void *ctx)
{
    dlq_api_t *d = ctx;
    free(d->body);
    d->body = NULL;
    if (pt_http_get(d->port, "/api/dlq", &d->body) != 200 || !d->body)
        return false;
    cJSON *j = cJSON_Parse(d->body);
    bool ok = cJSON_IsArray(j) && cJSON_GetArraySize(j) == 1;
    cJSON_Delete(j);
    return ok;
}

static void letter_page_is_served_from_the_newest_letters(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    setup(f, "stlp", false);
    int64_t t1 = clock_wall_ms() - 60000;
    dead_letter(&f->w, 1, t1);
    dlq_api_t d = {.port = f->watch.port};
    if (!testenv_wait_until(one_letter_listed, &d, WAIT_MS, 100))
        fail_msg("/api/dlq never listed the letter; the last answer: %s", d.body ? d.body : "-");
    free(d.body);

    tcpproxy_cut(f->kafka); /* no new Kafka client can start now */
    char *body = NULL;
    int64_t t0 = testenv_now_ms();
    long code = pt_http_get(f->watch.port, "/letter?p=1&o=0", &body);
    fprintf(stderr, "/letter with Kafka unreachable for new clients: %ld in %lld ms\n", code,
            (long long)(testenv_now_ms() - t0));
    assert_int_equal(code, 200);
    assert_non_null(body);
    assert_non_null(strstr(body, "pipeline.dlq"));
    free(body);
    tcpproxy_restore(f->kafka);
    teardown(f);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(samples_reuse_their_clients),
        cmocka_unit_test(kafka_down_at_start_is_reported_then_recovered),
        cmocka_unit_test(letter_page_is_served_from_the_newest_letters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
