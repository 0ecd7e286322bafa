/* Integration test of api_ with the shared rate limiter (ratelimit_ in MongoDB): a MongoDB
 * outage is waited out, never counted as an HTTP attempt (issue 8 item 7, api.h "Shared rate
 * limit and MongoDB"), and a Ploomes 403 pauses the shared limiter for forbidden_pause_ms
 * (SPEC §4, PLOOMES_403_PAUSE_MS).
 *
 * The outage: the limiter talks to the shared FerretDB through a TCP proxy run by this test
 * (tests/support/tcpproxy.h: a thread on 127.0.0.1, port 0). Cutting it closes every proxied
 * connection and refuses new ones (accepted, then closed at once); restoring it forwards again.
 * The shared server is never touched. The API is milvus-sim / ploomes-sim (subprocesses,
 * simproc). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "api.h"
#include "log.h"
#include "ratelimit.h"
#include "simproc.h"
#include "store.h"
#include "tcpproxy.h"
#include "testenv.h"

#define TOKEN "milvus-token-it-api-store"
#define USER_KEY "ploomes-key-it-api-store"
#define LISTAGEM "{\"filtro_body\":{\"status\":10}}"

/* ---- fixtures ------------------------------------------------------------------------------ */

typedef struct {
    char db[64];
    store_t *direct;    /* straight to the shared server: clean-up */
    store_t *proxied;   /* through the proxy: the limiter under test */
    tcpproxy_t *proxy;  /* in front of the shared server */
} mongo_fixture_t;

/* A throwaway database, reachable directly and through a proxy. */
static void mongo_up(mongo_fixture_t *f)
{
    char uri[512], err[512];
    testenv_unique(f->db, sizeof f->db, "it_api_store_");
    for (char *p = f->db; *p; p++)
        if (*p == '-')
            *p = '_';
    testenv_mongo_uri_for_db(uri, sizeof uri, f->db);
    f->direct = store_open(uri, err, sizeof err);
    if (!f->direct)
        fail_msg("store_open: %s", err);
    bson_error_t e;
    mongoc_uri_t *mu = mongoc_uri_new_with_error(uri, &e);
    assert_non_null(mu);
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(mu);
    assert_non_null(h);
    f->proxy = tcpproxy_start(h->host, h->port, err, sizeof err);
    if (!f->proxy)
        fail_msg("%s", err);
    mongoc_uri_destroy(mu);
    /* the same URI with the proxy as its one host; short timeouts so a cut shows at once */
    char proxied[640];
    assert_int_equal(tcpproxy_uri(uri, tcpproxy_port(f->proxy), proxied, sizeof proxied), 0);
    size_t used = strlen(proxied);
    int n = snprintf(proxied + used, sizeof proxied - used, "%sserverSelectionTimeoutMS=300&"
                     "connectTimeoutMS=300&socketTimeoutMS=2000",
                     strchr(proxied, '?') ? "&" : "?");
    assert_true(n > 0 && (size_t)n < sizeof proxied - used);
    f->proxied = store_open(proxied, err, sizeof err);
    if (!f->proxied)
        fail_msg("store_open through the proxy: %s", err);
}

static void mongo_down(mongo_fixture_t *f)
{
    store_close(f->proxied);
    tcpproxy_stop(f->proxy);
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(f->direct));
    mongoc_database_t *d = mongoc_client_get_database(c, f->db);
    bson_error_t error;
    mongoc_database_drop(d, &error);
    mongoc_database_destroy(d);
    mongoc_client_pool_push(store_pool(f->direct), c);
    store_close(f->direct);
}

static ratelimit_t *limiter(store_t *st, const char *base, const char *secret, int limit)
{
    char err[512];
    ratelimit_options_t ro = {.pool = store_pool(st), .database = store_db_name(st),
                              .base_url = base, .secret = secret, .limit = limit,
                              .window_ms = 1000, .margin_ms = 0, .name = "test",
                              /* one stored ticket per request: every acquisition reads
                               * MongoDB, so a cut is seen by the next request (blocks would
                               * serve it from tickets already taken) */
                              .batch = 1};
    ratelimit_t *rl = ratelimit_new(&ro, err, sizeof err);
    if (!rl)
        fail_msg("ratelimit_new: %s", err);
    return rl;
}

/* What the wait hook and on_store_state saw; the hook restores MongoDB (or sets the stop flag)
 * once it has been called `act_after` times while MongoDB was cut. */
typedef struct {
    tcpproxy_t *proxy;
    bool cut;
    int hook_calls_while_cut;
    int act_after;
    bool stop_instead;          /* set *stop instead of restoring */
    volatile sig_atomic_t *stop;
    int states[8];              /* on_store_state calls: 0 down, 1 up */
    int nstates;
} outage_t;

static int outage_hook(void *ctx, int64_t remaining_ms)
{
    outage_t *o = ctx;
    if (o->cut && ++o->hook_calls_while_cut >= o->act_after) {
        if (o->stop_instead) {
            *o->stop = 1;
        } else {
            tcpproxy_restore(o->proxy);
            o->cut = false;
        }
    }
    /* a worker would poll Kafka here */
    struct timespec ts = {0, (long)(remaining_ms < 20 ? remaining_ms : 20) * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}

static void outage_state(void *ctx, bool up)
{
    outage_t *o = ctx;
    if (o->nstates < 8)
        o->states[o->nstates++] = up ? 1 : 0;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static char *read_all(int fd)
{
    off_t size = lseek(fd, 0, SEEK_END);
    assert_true(size >= 0);
    char *buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    ssize_t n = pread(fd, buf, (size_t)size, 0);
    assert_true(n >= 0);
    buf[n] = '\0';
    return buf;
}

/* ---- tests --------------------------------------------------------------------------------- */

/* issue 8 item 7: MongoDB stops answering while a request waits for the limiter. The old code
 * counted each limiter failure as an HTTP attempt and ended RETRIABLE_EXHAUSTED
 * ("RateLimitUnavailable"); now the request waits, through the wait hook, and succeeds when
 * MongoDB is back, with one HTTP attempt. */
static void test_store_outage_waited_out(void **state)
{
    (void)state;
    char err[256];
    simproc *sim = simproc_start_sim("milvus-sim", TOKEN, "{\"rate_limit_per_min\":0}", err,
                                     sizeof err);
    assert_non_null(sim);
    mongo_fixture_t f;
    mongo_up(&f);
    ratelimit_t *rl = limiter(f.proxied, simproc_api_url(sim), TOKEN, 100);

    outage_t o = {.proxy = f.proxy, .act_after = 10};
    volatile sig_atomic_t stop = 0;
    o.stop = &stop;
    api_options_t ao = {.kind = API_MILVUS, .base_url = simproc_api_url(sim), .secret = TOKEN,
                        .max_attempts = 2, .retry_base_ms = 0, .retry_max_ms = 100,
                        .ratelimit = rl, .stop = &stop, .wait_hook = outage_hook,
                        .wait_ctx = &o, .on_store_state = outage_state,
                        .store_retry_ms = 50};
    api_t *api = api_new(&ao, err, sizeof err);
    assert_non_null(api);

    char logpath[] = "/tmp/it_api_store_log_XXXXXX";
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    log_set_fd(fd);

    /* a request with MongoDB up: one ticket, no state change */
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_POST, "/chamado/listagem", LISTAGEM, API_IDEMPOTENT,
                                 &r), API_OK);
    assert_int_equal(o.nstates, 0);

    /* cut: the request waits (the hook keeps being called), MongoDB comes back, it goes on */
    tcpproxy_cut(f.proxy);
    o.cut = true;
    int64_t t0 = testenv_now_ms();
    api_outcome_t oc = api_request(api, HTTP_POST, "/chamado/listagem", LISTAGEM,
                                   API_IDEMPOTENT, &r);
    int64_t took = testenv_now_ms() - t0;
    if (oc != API_OK || r.attempts != 1)
        fail_msg("through a MongoDB outage: outcome=%s attempts=%d class=%s message=%s",
                 api_outcome_name(oc), r.attempts, r.error_class, r.message);
    assert_false(o.cut);                       /* the hook did restore it: we did wait */
    assert_true(o.hook_calls_while_cut >= 10);
    assert_int_equal(o.nstates, 2);
    assert_int_equal(o.states[0], 0);
    assert_int_equal(o.states[1], 1);
    assert_true(took < 60000);

    /* stopped during an outage: API_STOPPED, no attempt, nothing final */
    o.hook_calls_while_cut = 0;
    o.stop_instead = true;
    o.act_after = 3;
    tcpproxy_cut(f.proxy);
    o.cut = true;
    assert_int_equal(api_request(api, HTTP_POST, "/chamado/listagem", LISTAGEM, API_IDEMPOTENT,
                                 &r), API_STOPPED);
    assert_int_equal(r.attempts, 0);
    assert_string_equal(r.error_class, "Stopped");
    assert_int_equal(o.nstates, 3);
    assert_int_equal(o.states[2], 0);
    /* back up: the next request says so once */
    tcpproxy_restore(f.proxy);
    o.cut = false;
    stop = 0;
    assert_int_equal(api_request(api, HTTP_POST, "/chamado/listagem", LISTAGEM, API_IDEMPOTENT,
                                 &r), API_OK);
    assert_int_equal(o.nstates, 4);
    assert_int_equal(o.states[3], 1);

    log_set_fd(2);
    char *logged = read_all(fd);
    close(fd);
    unlink(logpath);
    /* one line per outage each way, however many times MongoDB was asked meanwhile */
    if (count_of(logged, "event=store_unavailable") != 2 ||
        count_of(logged, "event=store_recovered") != 2)
        fail_msg("log:\n%s", logged);
    assert_int_equal(count_of(logged, "event=http_retry"), 0);
    assert_int_equal(count_of(logged, "event=http_failed"), 0);
    free(logged);

    api_result_clear(&r);
    api_free(api);
    ratelimit_free(rl);
    mongo_down(&f);
    assert_int_equal(simproc_stop(sim), 0);
}

/* SPEC §4: a Ploomes 403 pauses the shared limiter (every process of the account) for
 * PLOOMES_403_PAUSE_MS, like a 429. */
static void test_forbidden_pauses_shared_limiter(void **state)
{
    (void)state;
    char err[256];
    simproc *sim = simproc_start_sim("ploomes-sim", USER_KEY,
                                     "{\"rate_limit_per_min\":0,\"error_status\":403,"
                                     "\"error_burst\":1}",
                                     err, sizeof err);
    assert_non_null(sim);
    mongo_fixture_t f;
    mongo_up(&f);
    /* two limiters on one bucket: two processes of one account */
    ratelimit_t *rl1 = limiter(f.direct, simproc_api_url(sim), USER_KEY, 100);
    ratelimit_t *rl2 = limiter(f.direct, simproc_api_url(sim), USER_KEY, 100);
    api_options_t ao = {.kind = API_PLOOMES, .base_url = simproc_api_url(sim),
                        .secret = USER_KEY, .max_attempts = 2, .retry_base_ms = 0,
                        .retry_max_ms = 100, .ratelimit = rl1, .forbidden_pause_ms = 2000};
    api_t *a1 = api_new(&ao, err, sizeof err);
    assert_non_null(a1);
    ao.ratelimit = rl2;
    api_t *a2 = api_new(&ao, err, sizeof err);
    assert_non_null(a2);

    api_result_t r = {0};
    int64_t t0 = testenv_now_ms();
    assert_int_equal(api_request(a1, HTTP_GET, "/Contacts?$top=1", NULL, API_IDEMPOTENT, &r),
                     API_OK);
    int64_t took1 = testenv_now_ms() - t0;
    assert_int_equal(r.attempts, 2); /* 403, then 200 */
    /* the retry waited for the pause (its own backoff is at most 100 ms here) */
    if (took1 < 1900)
        fail_msg("retry after a 403 came after %lld ms; want >= the 2000 ms pause",
                 (long long)took1);

    /* the other process is paused too: a1 (one attempt) meets a 403 and gives up at once; a2,
     * on its own limiter of the same bucket, waits for the pause before its request */
    assert_int_equal(simproc_faults(sim, "{\"error_burst\":1}"), 0);
    ao.ratelimit = rl1;
    ao.max_attempts = 1;
    api_t *a1once = api_new(&ao, err, sizeof err);
    assert_non_null(a1once);
    t0 = testenv_now_ms();
    assert_int_equal(api_request(a1once, HTTP_GET, "/Contacts?$top=1", NULL, API_IDEMPOTENT,
                                 &r), API_RETRIABLE_EXHAUSTED);
    assert_int_equal(r.status, 403);
    api_result_t r2 = {0};
    assert_int_equal(api_request(a2, HTTP_GET, "/Contacts?$top=1", NULL, API_IDEMPOTENT, &r2),
                     API_OK);
    int64_t took2 = testenv_now_ms() - t0;
    assert_int_equal(r2.attempts, 1);
    if (took2 < 1900)
        fail_msg("the other process sent its request %lld ms after the 403; want >= 2000",
                 (long long)took2);
    api_free(a1once);
    api_result_clear(&r);
    api_result_clear(&r2);
    api_free(a1);
    api_free(a2);
    ratelimit_free(rl1);
    ratelimit_free(rl2);
    mongo_down(&f);
    assert_int_equal(simproc_stop(sim), 0);
}

static int setup_all(void **state)
{
    (void)state;
    log_init("it_api_store", LOG_INFO);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    store_global_cleanup();
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_outage_waited_out),
        cmocka_unit_test(test_forbidden_pauses_shared_limiter),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
