/* Regression test: a producer's shutdown is bounded while Kafka does not confirm its page.
 * Before the fix producer_deliver() waited for the page's delivery reports with no bound of
 * its own (kafka_batch_wait(..., -1)): on SIGTERM during a Kafka outage the producer sat there
 * until librdkafka's message.timeout.ms (300 s by default; 120 s here) and then flushed for up
 * to 30 s more at close, far past Kubernetes' 30 s and docker-compose's 10 s grace.
 *
 *   stop_bounded_while_kafka_hangs
 *     milvus-producer (daemon, POLL_INTERVAL_SECONDS=1, KAFKA_MESSAGE_TIMEOUT_MS=120000) reaches
 *     the shared Kafka only through a proxy run by this test (kproxy_ below). A plain TCP proxy
 *     is not enough for Kafka: the broker advertises its own address in its metadata and the
 *     client then connects there directly; kproxy_ rewrites the advertised port of every answer
 *     to its own, so every connection of the producer goes through it. The first pass
 *     publishes 5 clients (delivered); then the proxy freezes (connections stay open, nothing is
 *     forwarded: Kafka hangs), the 5 clients change at milvus-sim, and the next pass sends them
 *     (librdkafka's msg debug log: "Produce MessageSet with 5 message(s)"): the page is in
 *     flight and unconfirmed. SIGTERM then: the producer must exit within 30 s, with exit code 1
 *     (records were left undelivered: unclean), having logged event=delivery_abandoned. Kafka
 *     back (a run straight to the broker): `milvus-producer --once` publishes the 5 changed
 *     clients (their hashes were not saved by the stopped run) and exits 0: none lost.
 *
 *   ploomes_stop_keeps_the_cursor_while_kafka_hangs
 *     The same with ploomes-producer (PLOOMES_ENTITIES=contacts): contacts 1-5 are published
 *     (cursor at Id 5), the proxy freezes, contacts 6-10 appear and are sent, SIGTERM: exit 1
 *     within 30 s, and the contact cursor in MongoDB is still at Id 5 (not past the unconfirmed
 *     records); `ploomes-producer --once` straight to the broker then publishes 6-10 and exits 0.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "kafka.h"
#include "prodtest.h"
#include "store.h"

#define TOKEN "SHUTDOWNTESTTOKEN123"
#define CLIENTS 5
#define STOP_DEADLINE_MS 30000

/* ---- kproxy_: a Kafka proxy that keeps the client on it ---------------------------------- */

#define KPROXY_PAIRS 32
#define KPROXY_FRAME_MAX (64 * 1024 * 1024)

typedef struct {
    int client, upstream; /* -1: free slot */
    unsigned char *buf;   /* upstream -> client bytes not yet forwarded (a partial frame) */
    size_t len, cap;
} kpair_t;

typedef struct {
    int listen_fd, port;
    struct sockaddr_in upstream;
    char host[64];        /* the upstream's host as the broker advertises it ("127.0.0.1") */
    int upstream_port;
    atomic_bool frozen, quit;
    pthread_t thread;
    kpair_t pairs[KPROXY_PAIRS]; /* proxy thread only */
} kproxy_t;

static void kpair_close(kpair_t *p)
{
    if (p->client >= 0)
        close(p->client);
    if (p->upstream >= 0)
        close(p->upstream);
    free(p->buf);
    memset(p, 0, sizeof *p);
    p->client = p->upstream = -1;
}

static int write_all(int fd, const unsigned char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* In one whole response frame: every "<host>" followed by the upstream's port as a big-endian
 * int32 (a broker's host and port in Metadata, FindCoordinator... whatever the version) gets
 * the proxy's port instead. Same length, so no size changes. */
static void kproxy_rewrite(const kproxy_t *px, unsigned char *f, size_t n)
{
    size_t hl = strlen(px->host);
    unsigned char want[4] = {0, 0, (unsigned char)(px->upstream_port >> 8),
                             (unsigned char)(px->upstream_port & 0xff)};
    unsigned char mine[4] = {0, 0, (unsigned char)(px->port >> 8),
                             (unsigned char)(px->port & 0xff)};
    for (size_t i = 0; i + hl + 4 <= n; i++) {
        if (memcmp(f + i, px->host, hl) == 0 && memcmp(f + i + hl, want, 4) == 0)
            memcpy(f + i + hl, mine, 4);
    }
}

/* upstream -> client, frame by frame (a 4-byte size, then the frame). -1: close the pair. */
static int kproxy_down(kproxy_t *px, kpair_t *p)
{
    if (p->cap - p->len < 65536) {
        size_t cap = p->cap ? p->cap * 2 : 131072;
        unsigned char *nb = realloc(p->buf, cap);
        if (!nb)
            return -1;
        p->buf = nb;
        p->cap = cap;
    }
    ssize_t r = recv(p->upstream, p->buf + p->len, p->cap - p->len, 0);
    if (r <= 0)
        return r < 0 && errno == EINTR ? 0 : -1;
    p->len += (size_t)r;
    for (;;) {
        if (p->len < 4)
            return 0;
        size_t size = ((size_t)p->buf[0] << 24) | ((size_t)p->buf[1] << 16) |
                      ((size_t)p->buf[2] << 8) | p->buf[3];
        if (size > KPROXY_FRAME_MAX)
            return -1;
        if (p->len < 4 + size) {
            if (p->cap < 4 + size) {
                unsigned char *nb = realloc(p->buf, 4 + size);
                if (!nb)
                    return -1;
                p->buf = nb;
                p->cap = 4 + size;
            }
            return 0;
        }
        kproxy_rewrite(px, p->buf + 4, size);
        if (write_all(p->client, p->buf, 4 + size) != 0)
            return -1;
        memmove(p->buf, p->buf + 4 + size, p->len - 4 - size);
        p->len -= 4 + size;
    }
}

/* client -> upstream, as is. -1: close the pair. */
static int kproxy_up(kpair_t *p)
{
    unsigned char b[65536];
    ssize_t r = recv(p->client, b, sizeof b, 0);
    if (r <= 0)
        return r < 0 && errno == EINTR ? 0 : -1;
    return write_all(p->upstream, b, (size_t)r);
}

static void *kproxy_main(void *arg)
{
    kproxy_t *px = arg;
    while (!atomic_load(&px->quit)) {
        bool frozen = atomic_load(&px->frozen);
        struct pollfd fds[1 + 2 * KPROXY_PAIRS];
        int idx[1 + 2 * KPROXY_PAIRS];
        nfds_t n = 0;
        fds[n].fd = px->listen_fd;
        fds[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < KPROXY_PAIRS && !frozen; i++) {
            if (px->pairs[i].client < 0)
                continue;
            fds[n].fd = px->pairs[i].client;
            fds[n].events = POLLIN;
            idx[n++] = 2 * i;
            fds[n].fd = px->pairs[i].upstream;
            fds[n].events = POLLIN;
            idx[n++] = 2 * i + 1;
        }
        if (poll(fds, n, 50) <= 0)
            continue;
        for (nfds_t k = 0; k < n; k++) {
            if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (idx[k] < 0) {
                int c = accept(px->listen_fd, NULL, NULL);
                if (c < 0)
                    continue;
                int u = socket(AF_INET, SOCK_STREAM, 0);
                int slot = -1;
                for (int i = 0; i < KPROXY_PAIRS && slot < 0; i++)
                    if (px->pairs[i].client < 0)
                        slot = i;
                if (u < 0 || slot < 0 ||
                    connect(u, (struct sockaddr *)&px->upstream, sizeof px->upstream) != 0) {
                    close(c);
                    if (u >= 0)
                        close(u);
                    continue;
                }
                px->pairs[slot].client = c; /* frozen: held open, nothing forwarded */
                px->pairs[slot].upstream = u;
                continue;
            }
            kpair_t *p = &px->pairs[idx[k] / 2];
            if (p->client < 0)
                continue; /* closed earlier in this round */
            int rc = idx[k] % 2 == 0 ? kproxy_up(p) : kproxy_down(px, p);
            if (rc != 0)
                kpair_close(p);
        }
    }
    return NULL;
}

/* Starts a proxy in front of bootstrap ("host:port", an IPv4 host). Fails the test on error. */
static kproxy_t *kproxy_start(const char *bootstrap)
{
    kproxy_t *px = calloc(1, sizeof *px);
    assert_non_null(px);
    for (int i = 0; i < KPROXY_PAIRS; i++)
        px->pairs[i].client = px->pairs[i].upstream = -1;
    const char *colon = strrchr(bootstrap, ':');
    assert_non_null(colon);
    size_t hl = (size_t)(colon - bootstrap);
    assert_true(hl > 0 && hl < sizeof px->host);
    memcpy(px->host, bootstrap, hl);
    px->host[hl] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    assert_true(end != colon + 1 && *end == '\0' && port > 0 && port < 65536);
    px->upstream_port = (int)port;
    px->upstream.sin_family = AF_INET;
    px->upstream.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, px->host, &px->upstream.sin_addr), 1);
    px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(px->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(px->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(px->listen_fd, 64), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(px->listen_fd, (struct sockaddr *)&a, &al), 0);
    px->port = ntohs(a.sin_port);
    atomic_init(&px->frozen, false);
    atomic_init(&px->quit, false);
    assert_int_equal(pthread_create(&px->thread, NULL, kproxy_main, px), 0);
    return px;
}

static void kproxy_stop(kproxy_t *px)
{
    atomic_store(&px->quit, true);
    pthread_join(px->thread, NULL);
    for (int i = 0; i < KPROXY_PAIRS; i++)
        if (px->pairs[i].client >= 0)
            kpair_close(&px->pairs[i]);
    close(px->listen_fd);
    free(px);
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

/* Waits until `binary` (pid, logging to log) has sent a produce request that the frozen proxy
 * holds (librdkafka's msg debug log counts past `before`), sends SIGTERM and requires an exit
 * within STOP_DEADLINE_MS with exit code 1 and event=delivery_abandoned logged. */
static void sigterm_with_page_in_flight(pid_t pid, const char *binary, const char *source,
                                        const char *log, int before)
{
    logwait_t sent = {log, "Produce MessageSet with", before + 1};
    if (!testenv_wait_until(log_reached, &sent, 60000, 50)) {
        pt_dump_log(log, 4000);
        kill(pid, SIGKILL);
        simproc_wait(pid, 10000);
        fail_msg("%s sent nothing to the frozen Kafka within 60 s", binary);
    }
    int64_t t0 = testenv_now_ms();
    assert_int_equal(kill(pid, SIGTERM), 0);
    int rc = simproc_wait(pid, STOP_DEADLINE_MS); /* -1: still running (then SIGKILLed) */
    int64_t took = testenv_now_ms() - t0;
    fprintf(stderr, "%s: exit %d %lld ms after SIGTERM with its page unconfirmed\n", binary,
            rc, (long long)took);
    if (rc != 1)
        pt_dump_log(log, 3000);
    assert_int_not_equal(rc, -1);
    assert_true(took < STOP_DEADLINE_MS);
    assert_int_equal(rc, 1); /* unclean: records were left undelivered */
    assert_int_equal(pt_log_count(log, "event=delivery_abandoned"), 1);
    char stopped[96];
    snprintf(stopped, sizeof stopped, "event=producer_stopped source=%s exit_code=1", source);
    assert_int_equal(pt_log_count(log, stopped), 1);
}

static void stop_bounded_while_kafka_hangs(void **state)
{
    (void)state;
    pt_iso_t iso;
    pt_isolate(&iso, "itps");
    char log[256], log2[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(log, sizeof log, "%s/%sproducer.log", tmp, iso.prefix);
    snprintf(log2, sizeof log2, "%s/%sproducer2.log", tmp, iso.prefix);
    char topic[KAFKA_TOPIC_NAME_MAX];
    assert_int_equal(kafka_topic_name(topic, sizeof topic, iso.prefix, KAFKA_TOPIC_MILVUS_CLIENTS),
                     KAFKA_OK);
    kproxy_t *px = kproxy_start(testenv_require("KAFKA_BOOTSTRAP_SERVERS"));

    char err[256];
    simproc *sim = simproc_start_milvus(TOKEN, err, sizeof err);
    if (!sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(sim, "{\"rate_limit_per_min\":0}"), 0);
    assert_int_equal(seed_clients(sim, "Cliente"), 0);

    char e_uri[700], e_prefix[128], e_base[200], e_kafka[64];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", iso.uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", iso.prefix);
    snprintf(e_base, sizeof e_base, "MILVUS_BASE_URL=%s", simproc_api_url(sim));
    snprintf(e_kafka, sizeof e_kafka, "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%d", px->port);
    const char *env[] = {e_uri, e_prefix, e_base, "MILVUS_TOKEN=" TOKEN, "TOPIC_PARTITIONS=1",
                         "MILVUS_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                         "POLL_INTERVAL_SECONDS=1", "KAFKA_MESSAGE_TIMEOUT_MS=120000",
                         "KAFKA_DEBUG=msg", "LOG_LEVEL=debug", e_kafka, NULL};
    int port = 0;
    pid_t pid = pt_start_daemon("milvus-producer", env, log, &port);
    assert_true(pid > 0);
    logwait_t first = {log, "event=scan_done entity=client outcome=ok end=short pages=1 "
                            "published=5", 1};
    if (!testenv_wait_until(log_reached, &first, 120000, 50)) {
        pt_dump_log(log, 4000);
        kill(pid, SIGKILL);
        simproc_wait(pid, 10000);
        fail_msg("milvus-producer did not publish the 5 clients through the proxy");
    }

    /* Kafka hangs; the clients change: the next pass sends them and waits */
    int before = pt_log_count(log, "Produce MessageSet with");
    atomic_store(&px->frozen, true);
    assert_int_equal(seed_clients(sim, "Cliente alterado"), 0);
    sigterm_with_page_in_flight(pid, "milvus-producer", "milvus", log, before);
    kproxy_stop(px);

    /* Kafka is back (straight to the broker): a new run publishes the changed clients */
    const char *env2[] = {e_uri, e_prefix, e_base, "MILVUS_TOKEN=" TOKEN, "TOPIC_PARTITIONS=1",
                          "MILVUS_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                          "LOG_LEVEL=debug", NULL};
    const char *args[] = {"--once", NULL};
    int rc = pt_run("milvus-producer", args, env2, log2, 120000);
    if (rc != 0)
        pt_dump_log(log2, 3000);
    assert_int_equal(rc, 0);
    pt_msgs_t got;
    assert_int_equal(pt_consume(topic, &got, 30000), 0);
    for (int i = 1; i <= CLIENTS; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        int changed = 0;
        for (size_t k = 0; k < got.n; k++)
            if (got.msgs[k].key != NULL && strcmp(got.msgs[k].key, key) == 0 &&
                got.msgs[k].value != NULL && strstr(got.msgs[k].value, "Cliente alterado"))
                changed++;
        if (changed < 1)
            fail_msg("the change of client %d was never published (lost)", i);
    }
    pt_msgs_free(&got);
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
    (void)state;
    pt_iso_t iso;
    pt_isolate(&iso, "itpsp");
    char log[256], log2[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(log, sizeof log, "%s/%sproducer.log", tmp, iso.prefix);
    snprintf(log2, sizeof log2, "%s/%sproducer2.log", tmp, iso.prefix);
    char topic[KAFKA_TOPIC_NAME_MAX];
    assert_int_equal(kafka_topic_name(topic, sizeof topic, iso.prefix, KAFKA_TOPIC_PLOOMES_CONTACTS),
                     KAFKA_OK);
    kproxy_t *px = kproxy_start(testenv_require("KAFKA_BOOTSTRAP_SERVERS"));
    char err[256];
    simproc *sim = simproc_start_ploomes(PLOOMES_KEY, err, sizeof err);
    if (!sim)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(sim, "{\"rate_limit_per_min\":0}"), 0);
    assert_int_equal(seed_contacts(sim, 1, 5), 0);
    store_t *store = store_open(iso.uri, err, sizeof err);
    assert_non_null(store);

    char e_uri[700], e_prefix[128], e_base[200], e_kafka[64];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", iso.uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", iso.prefix);
    snprintf(e_base, sizeof e_base, "PLOOMES_BASE_URL=%s", simproc_api_url(sim));
    snprintf(e_kafka, sizeof e_kafka, "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:%d", px->port);
    const char *env[] = {e_uri, e_prefix, e_base, "PLOOMES_USER_KEY=" PLOOMES_KEY,
                         "PLOOMES_ENTITIES=contacts", "TOPIC_PARTITIONS=1",
                         "PLOOMES_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                         "POLL_INTERVAL_SECONDS=1", "SYNC_SINCE=2024-02-24T00:00:00-03:00",
                         "KAFKA_MESSAGE_TIMEOUT_MS=120000", "KAFKA_DEBUG=msg", "LOG_LEVEL=debug",
                         e_kafka, NULL};
    int port = 0;
    pid_t pid = pt_start_daemon("ploomes-producer", env, log, &port);
    assert_true(pid > 0);
    logwait_t first = {log, "event=pass_done source=ploomes outcome=ok", 1};
    if (!testenv_wait_until(log_reached, &first, 120000, 50)) {
        pt_dump_log(log, 4000);
        kill(pid, SIGKILL);
        simproc_wait(pid, 10000);
        fail_msg("ploomes-producer did not finish a pass through the proxy");
    }
    store_cursor_t cur;
    assert_int_equal(store_cursor_get(store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_int_equal(cur.id, 5);

    /* Kafka hangs; contacts 6-10 appear: the next pass sends them and waits */
    int before = pt_log_count(log, "Produce MessageSet with");
    atomic_store(&px->frozen, true);
    assert_int_equal(seed_contacts(sim, 6, 10), 0);
    sigterm_with_page_in_flight(pid, "ploomes-producer", "ploomes", log, before);
    kproxy_stop(px);
    assert_int_equal(store_cursor_get(store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_int_equal(cur.id, 5); /* not past the unconfirmed records */

    /* Kafka is back: a new run publishes 6-10 */
    const char *env2[] = {e_uri, e_prefix, e_base, "PLOOMES_USER_KEY=" PLOOMES_KEY,
                          "PLOOMES_ENTITIES=contacts", "TOPIC_PARTITIONS=1",
                          "PLOOMES_RATE_PER_MIN=100000", "RETRY_BASE_MS=50", "RETRY_MAX_MS=500",
                          "SYNC_SINCE=2024-02-24T00:00:00-03:00", "LOG_LEVEL=debug", NULL};
    const char *args[] = {"--once", NULL};
    int rc = pt_run("ploomes-producer", args, env2, log2, 120000);
    if (rc != 0)
        pt_dump_log(log2, 3000);
    assert_int_equal(rc, 0);
    pt_msgs_t got;
    assert_int_equal(pt_consume(topic, &got, 30000), 0);
    for (int i = 1; i <= 10; i++) {
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        if (pt_count_key(&got, key) < 1)
            fail_msg("contact %d was never published (lost)", i);
    }
    pt_msgs_free(&got);
    assert_int_equal(store_cursor_get(store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_int_equal(cur.id, 10);
    store_close(store);
    assert_int_equal(simproc_stop(sim), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_bounded_while_kafka_hangs),
        cmocka_unit_test(ploomes_stop_keeps_the_cursor_while_kafka_hangs),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
