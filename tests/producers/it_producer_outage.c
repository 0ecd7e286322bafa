/* Regression test (issue 12, the 20-minute soak): a producer whose MongoDB stops answering —
 * the connection stays open, nothing comes back, as while a FerretDB restart or an overloaded
 * server hangs — must still stop on SIGTERM within a bounded time. Before the fix store_open()
 * left libmongoc's socketTimeoutMS at its default of 5 minutes: a producer that was inside a
 * MongoDB call (or made one while stopping: the lease release) sat there for 5 minutes, deaf to
 * SIGTERM, and the soak had to SIGKILL it.
 *
 *   producer_stops_while_mongodb_hangs
 *     milvus-producer (daemon, POLL_INTERVAL_SECONDS=1) against milvus-sim, the real Kafka, and
 *     the shared FerretDB reached through a TCP proxy run by this test. After its first pass
 *     (it holds the producer lease) the proxy freezes: it keeps every connection open, accepts
 *     new ones, and forwards nothing either way. The test waits until the producer has sent a
 *     request that the frozen proxy holds (so it is blocked on MongoDB, or about to be), then
 *     sends SIGTERM: the producer must exit 0 within 90 s (the fix: a 20 s socket timeout, then
 *     a 5 s server selection; before it: 300 s). The shared server is never touched.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>

#include <mongoc/mongoc.h>

#include "prodtest.h"
#include "store.h"

#define TOKEN "OUTAGETESTTOKEN12345"
#define STOP_DEADLINE_MS 90000

/* ---- a TCP proxy that can freeze (hold every byte, keep every connection) ------------------- */

#define PROXY_PAIRS 64

typedef struct {
    int listen_fd;
    int port;
    struct sockaddr_in upstream;
    pthread_t thread;
    pthread_mutex_t lock;
    bool frozen;        /* guarded by lock */
    bool quit;          /* guarded by lock */
    int held_requests;  /* guarded by lock: client connections with unread bytes while frozen */
    int pairs[PROXY_PAIRS][2]; /* client, upstream (-1: none); proxy thread only */
} proxy_t;

static void pair_close(proxy_t *p, int i)
{
    for (int k = 0; k < 2; k++) {
        if (p->pairs[i][k] >= 0)
            close(p->pairs[i][k]);
        p->pairs[i][k] = -1;
    }
}

/* Copies what is readable on `from` to `to`; -1 when the pair must close. */
static int pump(int from, int to)
{
    char buf[16384];
    ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n <= 0)
        return -1;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += w;
    }
    return 0;
}

/* Frozen: counts the client connections holding bytes nobody reads (poll only, no recv). */
static void count_held(proxy_t *p)
{
    struct pollfd fds[PROXY_PAIRS];
    nfds_t n = 0;
    for (int i = 0; i < PROXY_PAIRS; i++)
        if (p->pairs[i][0] >= 0)
            fds[n++] = (struct pollfd){.fd = p->pairs[i][0], .events = POLLIN};
    int held = 0;
    if (n > 0 && poll(fds, n, 0) > 0)
        for (nfds_t j = 0; j < n; j++)
            held += (fds[j].revents & POLLIN) != 0;
    pthread_mutex_lock(&p->lock);
    p->held_requests = held;
    pthread_mutex_unlock(&p->lock);
}

static void *proxy_main(void *arg)
{
    proxy_t *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool quit = p->quit, frozen = p->frozen;
        pthread_mutex_unlock(&p->lock);
        if (quit)
            break;
        struct pollfd fds[1 + 2 * PROXY_PAIRS];
        int idx[1 + 2 * PROXY_PAIRS];
        nfds_t n = 0;
        fds[n] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        idx[n++] = -1;
        if (!frozen)
            for (int i = 0; i < PROXY_PAIRS; i++)
                for (int k = 0; k < 2; k++)
                    if (p->pairs[i][k] >= 0) {
                        fds[n] = (struct pollfd){.fd = p->pairs[i][k], .events = POLLIN};
                        idx[n++] = i * 2 + k;
                    }
        int pr = poll(fds, n, 50);
        if (frozen)
            count_held(p);
        if (pr <= 0)
            continue;
        for (nfds_t j = 1; j < n; j++) {
            if (!fds[j].revents)
                continue;
            int i = idx[j] / 2, k = idx[j] % 2;
            if (p->pairs[i][k] < 0)
                continue;
            if (pump(p->pairs[i][k], p->pairs[i][1 - k]) != 0)
                pair_close(p, i);
        }
        if (fds[0].revents & POLLIN) {
            int c = accept(p->listen_fd, NULL, NULL);
            if (c < 0)
                continue;
            int slot = -1;
            for (int i = 0; i < PROXY_PAIRS && slot < 0; i++)
                if (p->pairs[i][0] < 0)
                    slot = i;
            if (slot < 0) {
                close(c);
                continue;
            }
            int u = -1;
            if (!frozen) { /* frozen: the connection is accepted and then nothing happens */
                u = socket(AF_INET, SOCK_STREAM, 0);
                if (u >= 0 &&
                    connect(u, (struct sockaddr *)&p->upstream, sizeof p->upstream) != 0) {
                    close(u);
                    close(c);
                    continue;
                }
            }
            p->pairs[slot][0] = c;
            p->pairs[slot][1] = u;
        }
    }
    for (int i = 0; i < PROXY_PAIRS; i++)
        pair_close(p, i);
    return NULL;
}

static void proxy_start(proxy_t *p, const char *host, int port)
{
    memset(p, 0, sizeof *p);
    for (int i = 0; i < PROXY_PAIRS; i++)
        p->pairs[i][0] = p->pairs[i][1] = -1;
    assert_int_equal(pthread_mutex_init(&p->lock, NULL), 0);
    p->upstream.sin_family = AF_INET;
    p->upstream.sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    assert_int_equal(inet_pton(AF_INET, host, &p->upstream.sin_addr), 1);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(p->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(p->listen_fd, 64), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *)&a, &len), 0);
    p->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void proxy_freeze(proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->frozen = true;
    pthread_mutex_unlock(&p->lock);
}

static bool proxy_holds_a_request(void *ctx)
{
    proxy_t *p = ctx;
    pthread_mutex_lock(&p->lock);
    int held = p->held_requests;
    pthread_mutex_unlock(&p->lock);
    return held > 0;
}

static void proxy_stop(proxy_t *p)
{
    pthread_mutex_lock(&p->lock);
    p->quit = true;
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
    pthread_mutex_destroy(&p->lock);
}

/* `uri` with the proxy as its only host (scheme, credentials, database and options kept). */
static void proxied_uri(const char *uri, int port, char *out, size_t size)
{
    const char *hosts = strstr(uri, "://");
    assert_non_null(hosts);
    hosts += 3;
    const char *at = strchr(hosts, '@');
    const char *slash = strchr(hosts, '/');
    if (at && (!slash || at < slash))
        hosts = at + 1;
    const char *rest = hosts + strcspn(hosts, "/?");
    int n = snprintf(out, size, "%.*s127.0.0.1:%d%s", (int)(hosts - uri), uri, port, rest);
    assert_true(n > 0 && (size_t)n < size);
}

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
    proxy_t proxy;
    proxy_start(&proxy, h->host, h->port);
    mongoc_uri_destroy(mu);
    char uri[640];
    proxied_uri(iso.uri, proxy.port, uri, sizeof uri);

    char err[256];
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
    proxy_freeze(&proxy);
    if (!testenv_wait_until(proxy_holds_a_request, &proxy, 60000, 20)) {
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
    proxy_stop(&proxy);
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
