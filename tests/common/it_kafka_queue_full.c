/* Integration test for kafka_producer_send()'s wait on librdkafka's full local queue (issue 13
 * follow-up): with the broker unreachable, a send that finds queue.buffering.max.messages
 * reached used to poll and retry forever, ignoring a stop. Now the wait ends on
 * app_stop_requested() and after the producer's message.timeout.ms, with KAFKA_ERR_TIMEOUT.
 *
 * The real broker sits behind a Kafka-mode tcpproxy (tests/support/tcpproxy.h); freezing the
 * proxy makes it unreachable (connections hang, nothing is answered) without touching the
 * shared broker. The producer has a one-message queue (queue.buffering.max.messages=1) and
 * message.timeout.ms = BOUND_MS. The message that fills the queue goes to a topic whose handle
 * the test created first with its own, long message.timeout.ms (FILLER_TIMEOUT_MS): librdkafka
 * keeps one handle per topic name and the first creator's topic settings apply. So the filler
 * stays queued for the whole test instead of expiring at BOUND_MS and making room by itself,
 * which stands for a queue kept full by other sends (another thread, a DLQ under load).
 *
 * Times are measured and printed; only generous bounds are asserted. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "app.h"
#include "kafka.h"
#include "log.h"
#include "tcpproxy.h"
#include "testenv.h"

#define BOUND_MS 5000             /* the producer's message.timeout.ms */
#define FILLER_TIMEOUT_MS 300000  /* the filler's: it never expires during the test */
#define PROMPT_MS 1500            /* "promptly": well under BOUND_MS */
#define STOP_AFTER_MS 500         /* the mid-wait stop comes this long into the send */
#define DEADLINE_MS 30000         /* waits for the broker (generous: shared, loaded machine) */

typedef struct {
    tcpproxy_t *px;
    kafka_producer_t *p;
    kafka_producer_t *p2; /* no message.timeout.ms of its own: librdkafka's default bound */
    rd_kafka_topic_t *filler_rkt; /* the filler topic's handle with the long timeout */
    kafka_batch_t *filler_batch;
    kafka_batch_t *batch; /* the sends under test */
    char filler[KAFKA_TOPIC_NAME_MAX];
    char target[KAFKA_TOPIC_NAME_MAX];
    char bootstrap[64];
    char capture[256]; /* stderr while a send runs (counting kafka_queue_full lines) */
    int saved_stderr;
} fx_t;

static int teardown(void **state)
{
    fx_t *fx = *state;
    app_reset_stop(); /* a failed assertion may leave the process-wide flag set */
    if (!fx)
        return 0;
    if (fx->saved_stderr >= 0) {
        dup2(fx->saved_stderr, 2);
        close(fx->saved_stderr);
    }
    if (fx->px)
        tcpproxy_restore(fx->px); /* let close() deliver instead of purging */
    if (fx->filler_rkt)
        rd_kafka_topic_destroy(fx->filler_rkt); /* before the producer (or destroy hangs) */
    char err[256] = "";
    if (fx->p2)
        kafka_producer_close(fx->p2, 10000, err, sizeof err);
    if (fx->p)
        kafka_producer_close(fx->p, 10000, err, sizeof err);
    kafka_batch_free(fx->filler_batch);
    kafka_batch_free(fx->batch);
    tcpproxy_stop(fx->px);
    if (fx->capture[0])
        unlink(fx->capture);
    free(fx);
    *state = NULL;
    return 0;
}

/* ---- stderr capture: the logger writes one line per write(2) to fd 2 ------------------------ */

static void capture_begin(fx_t *fx)
{
    fflush(stderr);
    int fd = open(fx->capture, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    fx->saved_stderr = dup(2);
    assert_true(fx->saved_stderr >= 0);
    assert_true(dup2(fd, 2) >= 0);
    close(fd);
}

/* Restores stderr, echoes what was captured to it, and returns how many lines hold `needle`. */
static int capture_end(fx_t *fx, const char *needle)
{
    fflush(stderr);
    assert_true(dup2(fx->saved_stderr, 2) >= 0);
    close(fx->saved_stderr);
    fx->saved_stderr = -1;
    char *text = testenv_read_file(fx->capture);
    assert_non_null(text);
    fputs(text, stderr);
    int n = 0;
    for (const char *s = strstr(text, needle); s; s = strstr(s + 1, needle))
        n++;
    free(text);
    return n;
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* The proxy in front of the broker; skips when KAFKA_BOOTSTRAP_SERVERS is not one
 * IPv4/localhost host:port (the proxy cannot stand in front of a cluster). */
static void start_proxy(fx_t *fx)
{
    char why[512];
    fx->px = tcpproxy_start_kafka_env(why, sizeof why);
    if (!fx->px) {
        fprintf(stderr, "SKIP: %s\n", why);
        skip();
    }
    snprintf(fx->bootstrap, sizeof fx->bootstrap, "127.0.0.1:%d", tcpproxy_port(fx->px));
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->saved_stderr = -1;
    *state = fx;
    start_proxy(fx);

    char prefix[96];
    testenv_unique(prefix, sizeof prefix, "it-kqfull-");
    size_t n = strlen(prefix);
    assert_true(n + 1 < sizeof prefix);
    prefix[n] = '.';
    prefix[n + 1] = '\0';
    kafka_settings_t direct = {.bootstrap_servers = testenv_require("KAFKA_BOOTSTRAP_SERVERS")};
    const kafka_topic_id_t ids[] = {KAFKA_TOPIC_PLOOMES_CONTACTS, KAFKA_TOPIC_PLOOMES_TASKS};
    char err[512] = "";
    if (kafka_topics_ensure(&direct, prefix, 1, ids, 2, DEADLINE_MS, err, sizeof err) != 0)
        fail_msg("kafka_topics_ensure: %s", err);
    assert_int_equal(kafka_topic_name(fx->filler, sizeof fx->filler, prefix, ids[0]), 0);
    assert_int_equal(kafka_topic_name(fx->target, sizeof fx->target, prefix, ids[1]), 0);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(fx->capture, sizeof fx->capture, "%s/%sstderr.log", tmp, prefix);

    /* Through the proxy: a one-message local queue and a short delivery timeout. */
    static const char *const names[] = {"queue.buffering.max.messages", "message.timeout.ms"};
    char bound[16];
    snprintf(bound, sizeof bound, "%d", BOUND_MS);
    const char *values[] = {"1", bound};
    kafka_settings_t s = {.bootstrap_servers = fx->bootstrap, .names = names, .values = values,
                          .count = 2};
    fx->p = kafka_producer_new(&s, "it_kafka_queue_full", err, sizeof err);
    if (!fx->p)
        fail_msg("kafka_producer_new: %s", err);

    /* The filler topic's handle first, with its own long timeout (see the top comment). */
    rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
    assert_non_null(tc);
    char rkerr[256], ftmo[16];
    snprintf(ftmo, sizeof ftmo, "%d", FILLER_TIMEOUT_MS);
    if (rd_kafka_topic_conf_set(tc, "message.timeout.ms", ftmo, rkerr, sizeof rkerr) !=
        RD_KAFKA_CONF_OK)
        fail_msg("message.timeout.ms on the filler topic: %s", rkerr);
    fx->filler_rkt = rd_kafka_topic_new(kafka_producer_handle(fx->p), fx->filler, tc);
    if (!fx->filler_rkt) {
        rd_kafka_topic_conf_destroy(tc);
        fail_msg("rd_kafka_topic_new(%s) failed", fx->filler);
    }
    tc = NULL; /* owned by the topic handle now */

    const char *both[] = {fx->filler, fx->target};
    if (kafka_producer_warm(fx->p, both, 2, DEADLINE_MS, NULL, err, sizeof err) != 0)
        fail_msg("kafka_producer_warm: %s", err);
    fx->filler_batch = kafka_batch_new();
    fx->batch = kafka_batch_new();
    assert_non_null(fx->filler_batch);
    assert_non_null(fx->batch);

    /* One delivery through the proxy before it is frozen: the path works, the idempotent
     * producer has its id, and the client really goes through the proxy. */
    assert_int_equal(kafka_producer_send(fx->p, fx->target, "0", "before", NULL, NULL, 0,
                                         fx->batch, err, sizeof err), 0);
    if (kafka_batch_wait(fx->p, fx->batch, DEADLINE_MS, err, sizeof err) != 0)
        fail_msg("first delivery through the proxy: %s", err);
    if (tcpproxy_kafka_rewrites(fx->px) == 0)
        fail_msg("the Kafka proxy rewrote no broker address: the producer went around it");
    assert_int_equal(kafka_batch_reset(fx->batch), 0);

    /* Broker unreachable, queue full. */
    tcpproxy_freeze(fx->px);
    assert_int_equal(kafka_producer_send(fx->p, fx->filler, "f", "filler", NULL, NULL, 0,
                                         fx->filler_batch, err, sizeof err), 0);
    assert_int_equal(kafka_producer_outq_len(fx->p), 1);
    return 0;
}

/* ---- the sends under test ------------------------------------------------------------------- */

typedef struct {
    fx_t *fx;
    kafka_batch_t *batch;    /* the send's batch; NULL: fx->batch */
    atomic_llong started_ms; /* set by the sender just before its send; 0 until then */
    int64_t took_ms;
    int rc;
    char err[512];
} sender_t;

static void timed_send(sender_t *s)
{
    atomic_store(&s->started_ms, (long long)testenv_now_ms());
    s->rc = kafka_producer_send(s->fx->p, s->fx->target, "1", "under-test", NULL, NULL, 0,
                                s->batch ? s->batch : s->fx->batch, s->err, sizeof s->err);
    s->took_ms = testenv_now_ms() - atomic_load(&s->started_ms);
}

static void *sender_thread(void *arg)
{
    timed_send(arg);
    return NULL;
}

static bool sent_long_enough(void *ctx)
{
    sender_t *s = ctx;
    long long t0 = atomic_load(&s->started_ms);
    return t0 > 0 && testenv_now_ms() - t0 >= STOP_AFTER_MS;
}

/* The refused send left nothing behind: not counted by the batch nor the producer, the
 * error names the topic and the full queue, one kafka_queue_full line was logged. */
static void assert_refused(fx_t *fx, const sender_t *s, int logged)
{
    assert_int_equal(s->rc, KAFKA_ERR_TIMEOUT);
    if (!strstr(s->err, fx->target) || !strstr(s->err, "local queue stayed full"))
        fail_msg("error does not name the topic and the full queue: %s", s->err);
    assert_int_equal(logged, 1);
    assert_int_equal(kafka_batch_sent(fx->batch), 0);
    assert_int_equal(kafka_batch_pending(fx->batch), 0);
    assert_int_equal(kafka_producer_outq_len(fx->p), 1); /* the filler only */
}

/* In the order they run: (1) a stop already requested: the send returns after one poll slice,
 * not after BOUND_MS (the old code retried until the filler left the queue, FILLER_TIMEOUT_MS).
 * (1c) A producer that does not set message.timeout.ms is bounded by librdkafka's default
 * (300000 ms), not left unbounded. (1b) A stop requested while the send waits (SIGTERM during a
 * blocked send) ends it within a poll slice or so. (1d) A batch the caller frees meanwhile is
 * destroyed by the send when it ends. (2) Without a stop, the send gives up after
 * about BOUND_MS. (3) Once the broker is back, the filler is delivered and a send succeeds and
 * is delivered. */
static void test_queue_full_wait_is_bounded(void **state)
{
    fx_t *fx = *state;
    char err[512] = "";

    /* (1) stop already requested */
    sender_t s1 = {.fx = fx};
    app_request_stop();
    capture_begin(fx);
    timed_send(&s1);
    int logged = capture_end(fx, "event=kafka_queue_full topic=");
    app_reset_stop();
    fprintf(stderr, "queue full, stop requested before: rc=%s after %" PRId64 " ms (%s)\n",
            kafka_status_name(s1.rc), s1.took_ms, s1.err);
    assert_refused(fx, &s1, logged);
    assert_true(s1.took_ms < PROMPT_MS);

    /* (1c) the bound of a producer without message.timeout.ms: librdkafka's default. Its queue
     * fills with a message waiting for metadata it cannot get (the proxy is frozen). */
    static const char *const n2[] = {"queue.buffering.max.messages"};
    static const char *const v2[] = {"1"};
    kafka_settings_t set2 = {.bootstrap_servers = fx->bootstrap, .names = n2, .values = v2,
                             .count = 1};
    fx->p2 = kafka_producer_new(&set2, "it_kafka_queue_full_default", err, sizeof err);
    if (!fx->p2)
        fail_msg("kafka_producer_new: %s", err);
    assert_int_equal(kafka_producer_send(fx->p2, fx->target, "2", "p2-filler", NULL, NULL, 0,
                                         NULL, err, sizeof err), 0);
    app_request_stop();
    capture_begin(fx);
    int rc2 = kafka_producer_send(fx->p2, fx->target, "3", "p2", NULL, NULL, 0, NULL, err,
                                  sizeof err);
    logged = capture_end(fx, "event=kafka_queue_full topic=");
    app_reset_stop();
    assert_int_equal(rc2, KAFKA_ERR_TIMEOUT);
    assert_int_equal(logged, 1);
    char *text = testenv_read_file(fx->capture);
    assert_non_null(text);
    bool default_bound = strstr(text, " bound_ms=300000 ") != NULL;
    free(text);
    assert_true(default_bound);
    assert_int_equal(kafka_producer_outq_len(fx->p2), 1);

    /* (1b) stop requested while the send waits */
    sender_t s2 = {.fx = fx};
    pthread_t th;
    capture_begin(fx);
    assert_int_equal(pthread_create(&th, NULL, sender_thread, &s2), 0);
    bool waited = testenv_wait_until(sent_long_enough, &s2, DEADLINE_MS, 20);
    int64_t stop_at = testenv_now_ms();
    app_request_stop();
    assert_int_equal(pthread_join(th, NULL), 0);
    int64_t after_stop = testenv_now_ms() - stop_at;
    logged = capture_end(fx, "event=kafka_queue_full topic=");
    app_reset_stop();
    assert_true(waited);
    fprintf(stderr, "queue full, stop requested %d ms in: rc=%s after %" PRId64 " ms, %" PRId64
                    " ms after the stop (%s)\n",
            STOP_AFTER_MS, kafka_status_name(s2.rc), s2.took_ms, after_stop, s2.err);
    assert_refused(fx, &s2, logged);
    assert_true(after_stop < PROMPT_MS);
    assert_true(s2.took_ms < BOUND_MS);

    /* (1d) the caller frees its batch while the send waits (kafka_batch_free() from another
     * thread): the send, ended by a stop, is the one that destroys it. Only LeakSanitizer
     * sees a batch nobody destroys (CI runs this under ASan); a use after free shows there
     * too */
    sender_t s5 = {.fx = fx, .batch = kafka_batch_new()};
    assert_non_null(s5.batch);
    capture_begin(fx);
    assert_int_equal(pthread_create(&th, NULL, sender_thread, &s5), 0);
    waited = testenv_wait_until(sent_long_enough, &s5, DEADLINE_MS, 20);
    size_t held = kafka_batch_pending(s5.batch); /* the waiting send's own count */
    kafka_batch_free(s5.batch);                  /* not destroyed yet: the send holds it */
    app_request_stop();
    assert_int_equal(pthread_join(th, NULL), 0);
    logged = capture_end(fx, "event=kafka_queue_full topic=");
    app_reset_stop();
    assert_true(waited);
    assert_int_equal(held, 1);
    assert_int_equal(s5.rc, KAFKA_ERR_TIMEOUT);
    assert_int_equal(logged, 1);
    assert_int_equal(kafka_producer_outq_len(fx->p), 1); /* the filler only */

    /* (2) no stop: bounded by message.timeout.ms */
    sender_t s3 = {.fx = fx};
    capture_begin(fx);
    timed_send(&s3);
    logged = capture_end(fx, "event=kafka_queue_full topic=");
    fprintf(stderr, "queue full, no stop: rc=%s after %" PRId64 " ms, bound %d ms (%s)\n",
            kafka_status_name(s3.rc), s3.took_ms, BOUND_MS, s3.err);
    assert_refused(fx, &s3, logged);
    assert_true(s3.took_ms >= BOUND_MS - 50); /* not before the bound (clock granularity) */
    assert_true(s3.took_ms < BOUND_MS + DEADLINE_MS);
    assert_int_equal(kafka_batch_pending(fx->filler_batch), 1); /* still queued, not expired */

    /* (3) broker back: the filler, then a new send, are delivered */
    tcpproxy_restore(fx->px);
    if (kafka_batch_wait(fx->p, fx->filler_batch, DEADLINE_MS, err, sizeof err) != 0)
        fail_msg("the filler after the restore: %s", err);
    assert_int_equal(kafka_batch_acked(fx->filler_batch), 1);
    sender_t s4 = {.fx = fx};
    timed_send(&s4);
    fprintf(stderr, "broker back: rc=%s after %" PRId64 " ms (%s)\n", kafka_status_name(s4.rc),
            s4.took_ms, s4.err);
    assert_int_equal(s4.rc, 0);
    if (kafka_batch_wait(fx->p, fx->batch, DEADLINE_MS, err, sizeof err) != 0)
        fail_msg("the send after the restore: %s", err);
    assert_int_equal(kafka_batch_sent(fx->batch), 1);
    assert_int_equal(kafka_batch_acked(fx->batch), 1);
    assert_int_equal(kafka_producer_outq_len(fx->p), 0);
    int rc = kafka_producer_close(fx->p2, DEADLINE_MS, err, sizeof err);
    fx->p2 = NULL;
    if (rc != 0)
        fail_msg("the default-bound producer after the restore: %s", err);
}

int main(void)
{
    log_init("it_kafka_queue_full", LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_queue_full_wait_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
