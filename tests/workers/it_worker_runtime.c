/* Integration tests of the worker runtime (workers/worker_loop.c, worker_create.c) through the
 * test-only binary echo-worker (tests/workers/echo_worker_main.c), against the real Kafka and
 * FerretDB and milvus-sim in its strict default. */
#include "it_worker_echo.h"

#include <errno.h>

#include "tcpproxy.h"

/* Invalid JSON, JSON that is not an object and invalid UTF-8 are dead-lettered with the full
 * header set; a skip is counted; a good record is delivered; the offsets moved only after the
 * dead letters were confirmed, so a second run handles nothing again. */
static void t_bad_records_dead_lettered(void **state)
{
    fx_t *f = *state;
    char doc[12];
    make_cpf(123456789, doc);
    assert_int_equal(wt_produce(&f->w, SRC, "1", "{\"Id\":1,"), 0);
    assert_int_equal(wt_produce(&f->w, SRC, "2", "[1,2,3]"), 0);
    static const char bad_utf8[] = "{\"Id\":3,\"Name\":\"\xff\xfe\"}";
    const char *names[] = {"source", "entity", "fetched-at", "event-id"};
    const char *values[] = {"ploomes", "contact", "2026-01-01T00:00:00.000Z", "x"};
    assert_int_equal(wt_produce_raw(&f->w, SRC, "3", bad_utf8, strlen(bad_utf8), names, values, 4),
                     0);
    assert_int_equal(wt_produce(&f->w, SRC, "4", "{\"Id\":4,\"mode\":\"skip\"}"), 0);
    assert_int_equal(wt_produce(&f->w, SRC, "6", "{\"Id\":6,\"mode\":\"dead\"}"), 0);
    produce_client(f, 5, doc);
    assert_int_equal(wt_flush(&f->w), 0);

    assert_int_equal(run(f, 0), 0);
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic(&f->w, "pipeline.dlq", &dlq, 30000), 0);
    assert_int_equal(dlq.n, 4);
    const struct {
        const char *key, *cls;
    } want[] = {{"1", "InvalidJson"}, {"2", "NotAnObject"}, {"3", "InvalidUtf8"}, {"6", "TestDead"}};
    for (size_t i = 0; i < 4; i++) {
        const wt_msg_t *m = wt_find_key(&dlq, want[i].key);
        assert_non_null(m);
        const char *why = wt_check_letter(m, &f->w, SRC, want[i].cls);
        if (why)
            fail_msg("letter %s: %s", want[i].key, why);
        assert_string_equal(wt_header(m, KAFKA_DLQ_H_CONNECTOR), BIN);
    }
    const wt_msg_t *m3 = wt_find_key(&dlq, "3");
    assert_int_equal(m3->value_len, strlen(bad_utf8));
    assert_memory_equal(m3->value, bad_utf8, m3->value_len); /* the original bytes */
    wt_msgs_free(&dlq);

    assert_int_equal(wt_count_done(&f->w, "4", "skipped", "test_skip"), 1);
    assert_int_equal(wt_count_done(&f->w, "5", "delivered", "created"), 1);
    assert_int_equal(wt_count_done(&f->w, NULL, "dead_lettered", NULL), 4);
    assert_int_equal(clients_at_target(f, doc), 1);

    /* nothing is handled twice: every offset was stored */
    int before = wt_count_done(&f->w, NULL, NULL, NULL);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, NULL, NULL, NULL), before);
    assert_int_equal(wt_log_count(&f->w, "event=idle_exit"), 2);
}

/* A 401: exit 3, nothing dead-lettered, the record not consumed (delivered by the next run
 * with the right token). */
static void t_auth_exits_3(void **state)
{
    fx_t *f = *state;
    char doc[12];
    make_cpf(223456789, doc);
    produce_client(f, 7, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    wt_set(&f->w, "MILVUS_TOKEN", "wrong-token-999");
    assert_int_equal(run(f, 3), 3);
    wt_set(&f->w, "MILVUS_TOKEN", TOKEN);
    assert_int_equal(wt_log_count(&f->w, "event=credentials_rejected"), 1);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
    assert_int_equal(clients_at_target(f, doc), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "7", "delivered", "created"), 1);
    assert_int_equal(clients_at_target(f, doc), 1);
}

/* A claim already done: dedup hit, nothing created. */
static void t_claim_done_dedup(void **state)
{
    fx_t *f = *state;
    char doc[12], err[512];
    make_cpf(323456789, doc);
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    store_claim_t cl;
    assert_int_equal(store_claim(st, STORE_KIND_CLIENTS, doc, "other-host-1/abc", 60000, NULL,
                                 &cl, err, sizeof err),
                     STORE_OK);
    store_entry_t done;
    memset(&done, 0, sizeof done);
    done.milvus_id = 777;
    snprintf(done.milvus_token, sizeof done.milvus_token, "TOK777");
    assert_int_equal(store_complete(st, STORE_KIND_CLIENTS, doc, "other-host-1/abc", &done, err,
                                    sizeof err),
                     STORE_OK);
    store_close(st);
    produce_client(f, 8, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "8", "dedup_hit", "claim_done"), 1);
    assert_int_equal(clients_at_target(f, doc), 0);
}

/* A worker died between its POST and its confirmation: the client exists at the target and
 * the claim is pending with an expired lease. The next worker takes the claim over, searches,
 * finds it: no second create. */
static void t_crash_between_post_and_confirm(void **state)
{
    fx_t *f = *state;
    char doc[12], err[512], body[200];
    make_cpf(423456789, doc);
    snprintf(body, sizeof body,
             "{\"cliente_documento\":\"%s\",\"cliente_pessoa_fisica\":{\"nome\":\"Echo 9\"}}",
             doc);
    const char *hdr[] = {"Authorization: " TOKEN, "Content-Type: application/json", NULL};
    assert_int_equal(simproc_post(f->milvus, "/api/cliente/criar", hdr, body, NULL), 200);
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    store_claim_t cl;
    assert_int_equal(store_claim(st, STORE_KIND_CLIENTS, doc, "dead-host-1/0001", 1, NULL, &cl,
                                 err, sizeof err),
                     STORE_OK);
    assert_int_equal(cl.status, STORE_CLAIM_ACQUIRED);
    store_close(st);
    produce_client(f, 9, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "9", "dedup_hit", "found_at_target"), 1);
    assert_int_equal(wt_log_count(&f->w, "event=claim_recovered worker=echo-worker search=found"),
                     1);
    assert_int_equal(clients_at_target(f, doc), 1);
    st = wt_store_open(&f->w);
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, doc, &e, err, sizeof err), STORE_OK);
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_true(e.milvus_id > 0);
    store_close(st);
}

/* An ambiguous create (the target stores the client, then answers 500): the worker searches,
 * finds it, and does not post again: exactly one client. */
static void t_ambiguous_create_one_client(void **state)
{
    fx_t *f = *state;
    char doc[12];
    make_cpf(523456789, doc);
    assert_int_equal(simproc_faults(f->milvus, "{\"fail_after_write_rate\":1,"
                                               "\"fail_after_write_status\":500}"),
                     0);
    produce_client(f, 10, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    int rc = run(f, 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"fail_after_write_rate\":0}"), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(wt_count_done(&f->w, "10", "delivered", "found_after_ambiguous"), 1);
    assert_int_equal(clients_at_target(f, doc), 1);
}

/* DRY_RUN: own group, the request logged, nothing at the target, nothing in MongoDB. */
static void t_dry_run_writes_nothing(void **state)
{
    fx_t *f = *state;
    char doc[12], err[512];
    make_cpf(623456789, doc);
    produce_client(f, 11, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    wt_set(&f->w, "DRY_RUN", "1");
    int rc = run(f, 0);
    wt_set(&f->w, "DRY_RUN", NULL);
    assert_int_equal(rc, 0);
    assert_int_equal(wt_count_done(&f->w, "11", "delivered", "dry_run"), 1);
    assert_true(wt_log_count(&f->w, "event=dry_run_request") >= 1);
    assert_true(wt_log_count(&f->w, "echo-worker.dry-run") >= 1);
    assert_int_equal(clients_at_target(f, doc), 0);
    store_t *st = wt_store_open(&f->w);
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, doc, &e, err, sizeof err),
                     STORE_NOT_FOUND);
    store_close(st);
}

/* ---- a worker killed between its POST and its confirmation --------------------------------- */

/* The fixture of t_sigkill_between_post_and_confirm: fx_setup's, with the worker's Milvus
 * reached through a tcpproxy (tests/support/tcpproxy.h) in front of milvus-sim, so the test can
 * see when the POST's bytes have reached the simulator. The test's own requests (simproc_*,
 * clients_at_target) go to the simulator directly: the proxy sees only the worker's. */
typedef struct {
    fx_t *f;
    tcpproxy_t *px;
} proxied_fx_t;

static int fx_teardown_proxied(void **state)
{
    proxied_fx_t *pf = *state;
    if (pf == NULL)
        return 0;
    tcpproxy_stop(pf->px); /* first: it holds connections to the simulator */
    void *inner = pf->f;
    int rc = inner ? fx_teardown(&inner) : 0;
    free(pf);
    return rc;
}

static int fx_setup_proxied(void **state)
{
    char err[256], url[256];
    proxied_fx_t *pf = calloc(1, sizeof *pf);
    if (pf == NULL)
        return -1;
    *state = pf;
    void *inner = NULL;
    if (fx_setup(&inner) != 0) {
        fprintf(stderr, "fx_setup failed\n");
        goto fail;
    }
    pf->f = inner;
    pf->px = tcpproxy_start("127.0.0.1", simproc_port(pf->f->milvus), err, sizeof err);
    if (pf->px == NULL) {
        fprintf(stderr, "%s\n", err);
        goto fail;
    }
    if (tcpproxy_uri(simproc_api_url(pf->f->milvus), tcpproxy_port(pf->px), url, sizeof url) !=
        0) {
        fprintf(stderr, "tcpproxy_uri failed for %s\n", simproc_api_url(pf->f->milvus));
        goto fail;
    }
    wt_set(&pf->f->w, "MILVUS_BASE_URL", url);
    return 0;
fail:
    fx_teardown_proxied(state);
    *state = NULL;
    return -1;
}

typedef struct {
    proxied_fx_t *pf;
    const char *key;
} pending_wait_t;

/* The claim of `key` is pending and the proxy has forwarded the worker's bytes to milvus-sim:
 * the POST has reached the simulator. (The worker's only Milvus request here is that POST: a
 * fresh claim creates without searching first, and its claim is taken before the request.
 * libcurl sends a small POST, headers and body, in one write, which the proxy forwards whole
 * before counting it.) Not "a rate-limit ticket exists": the ticket is inserted just before
 * the POST leaves, and a kill between the two meant no POST at all. */
static bool post_reached_target(void *ctx)
{
    pending_wait_t *p = ctx;
    char err[512];
    store_t *st = wt_store_open(&p->pf->f->w);
    store_entry_t e;
    bool pending = st && store_get(st, STORE_KIND_CLIENTS, p->key, &e, err, sizeof err) ==
                             STORE_OK && e.state == STORE_STATE_PENDING;
    store_close(st);
    return pending && tcpproxy_bytes_up(p->pf->px) > 0;
}

static bool one_client(void *ctx)
{
    pending_wait_t *p = ctx;
    return clients_at_target(p->pf->f, p->key) == 1;
}

/* A worker SIGKILLed after its POST reached the target and before it confirmed: the client
 * exists at the target, the claim is pending under a dead owner. After a restart (lease
 * expired) the claim is taken over, the search finds the client, and nothing is created
 * again. milvus-sim answers after 1.5 s, so the kill lands while the POST is being handled. */
static void t_sigkill_between_post_and_confirm(void **state)
{
    proxied_fx_t *pf = *state;
    fx_t *f = pf->f;
    char doc[12];
    make_cpf(323456780, doc);
    wt_set(&f->w, "CLAIM_LEASE_SECONDS", "3");
    wt_set(&f->w, "HTTP_TIMEOUT_MS", "10000");
    produce_client(f, 40, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":1500}"), 0);
    assert_int_equal(tcpproxy_bytes_up(pf->px), 0);
    pid_t pid = wt_spawn(&f->w, BIN, NULL);
    assert_true(pid > 0);
    pending_wait_t p = {pf, doc};
    bool sent = testenv_wait_until(post_reached_target, &p, 60000, 10);
    kill(pid, SIGKILL);
    assert_int_equal(simproc_wait(pid, 30000), 128 + SIGKILL);
    if (!sent)
        pt_dump_log(f->w.log, 6000);
    assert_true(sent);
    /* the POST the dead worker sent is processed by the target after its latency */
    assert_true(testenv_wait_until(one_client, &p, 30000, 50));
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":0}"), 0);
    assert_int_equal(wt_count_done(&f->w, "40", NULL, NULL), 0); /* never confirmed */
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "40", "dedup_hit", "found_at_target"), 1);
    assert_int_equal(wt_log_count(&f->w, "event=claim_recovered worker=echo-worker search=found"),
                     1);
    assert_int_equal(clients_at_target(f, doc), 1);
}

/* ---- MAX_IN_FLIGHT > 1 --------------------------------------------------------------------- */

enum { SEQ_N = 200, SEQ_KEYS = 50 };

/* Reads the echo_begin/echo_end lines of the log in order and checks, per key, that no two
 * handlings overlapped and that the seqs came in increasing order; counts each seq's ends and
 * the most handlings open at once (all keys). Returns NULL or what is wrong. */
static const char *check_seq_log(const fx_t *f, int ends[SEQ_N], int *max_open)
{
    static char why[200];
    long last[SEQ_KEYS];
    bool open_[SEQ_KEYS];
    for (int i = 0; i < SEQ_KEYS; i++) {
        last[i] = -1;
        open_[i] = false;
    }
    memset(ends, 0, SEQ_N * sizeof *ends);
    *max_open = 0;
    int open_now = 0;
    FILE *fp = fopen(f->w.log, "r");
    if (fp == NULL)
        return "no log";
    char line[8192];
    const char *res = NULL;
    while (res == NULL && fgets(line, sizeof line, fp)) {
        bool begin = strstr(line, "event=echo_begin ") != NULL;
        bool end = strstr(line, "event=echo_end ") != NULL;
        if (!begin && !end)
            continue;
        const char *kp = strstr(line, " k=k");
        const char *sp = strstr(line, " seq=");
        if (kp == NULL || sp == NULL) {
            res = "unparsable echo line";
            break;
        }
        char *e1 = NULL, *e2 = NULL;
        long k = strtol(kp + 4, &e1, 10), seq = strtol(sp + 5, &e2, 10);
        if (e1 == kp + 4 || e2 == sp + 5 || k < 0 || k >= SEQ_KEYS || seq < 0 || seq >= SEQ_N) {
            res = "bad k or seq";
            break;
        }
        if (begin) {
            if (open_[k]) {
                snprintf(why, sizeof why, "key k%ld: seq %ld began while another was open", k,
                         seq);
                res = why;
            } else if (seq <= last[k]) {
                snprintf(why, sizeof why, "key k%ld: seq %ld began after seq %ld", k, seq,
                         last[k]);
                res = why;
            }
            open_[k] = true;
            last[k] = seq;
            if (++open_now > *max_open)
                *max_open = open_now;
        } else {
            if (!open_[k] || last[k] != seq) {
                snprintf(why, sizeof why, "key k%ld: seq %ld ended without beginning", k, seq);
                res = why;
            }
            open_[k] = false;
            open_now--;
            ends[seq]++;
        }
    }
    fclose(fp);
    return res;
}

/* MAX_IN_FLIGHT=8, 200 records over 50 keys (6 partitions), a target answering in 40 ms, and a
 * few dead letters: per key the records are handled one at a time in offset order, several
 * keys at once; each record is delivered once; the dead letters are confirmed; every offset
 * is committed (a second run handles nothing). */
static void t_in_flight_per_key_order(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "MAX_IN_FLIGHT", "8");
    for (int i = 0; i < SEQ_N; i++) {
        char key[16], value[128];
        snprintf(key, sizeof key, "k%d", i % SEQ_KEYS);
        if (i % 40 == 7)
            snprintf(value, sizeof value, "{\"Id\":%d,\"mode\":\"dead\"}", i);
        else
            snprintf(value, sizeof value, "{\"Id\":%d,\"mode\":\"seq\",\"k\":\"%s\",\"seq\":%d}",
                     i, key, i);
        assert_int_equal(wt_produce(&f->w, SRC, key, value), 0);
    }
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":40}"), 0);
    int rc = run(f, 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":0}"), 0);
    assert_int_equal(rc, 0);
    int ends[SEQ_N], max_open = 0;
    const char *why = check_seq_log(f, ends, &max_open);
    if (why != NULL) {
        pt_dump_log(f->w.log, 6000);
        fail_msg("%s", why);
    }
    int dead = 0;
    for (int i = 0; i < SEQ_N; i++) {
        if (i % 40 == 7) {
            dead++;
            assert_int_equal(ends[i], 0);
        } else if (ends[i] != 1) {
            fail_msg("seq %d handled %d times", i, ends[i]);
        }
    }
    assert_true(max_open > 1);  /* records really were handled at once */
    assert_true(max_open <= 8); /* and never more than MAX_IN_FLIGHT */
    assert_int_equal(wt_count_done(&f->w, NULL, "delivered", "seq"), SEQ_N - dead);
    assert_int_equal(wt_count_done(&f->w, NULL, "dead_lettered", "TestDead"), dead);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), dead);
    /* every offset was committed: a second run finds nothing */
    int before = wt_count_done(&f->w, NULL, NULL, NULL);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, NULL, NULL, NULL), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_bad_records_dead_lettered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_auth_exits_3, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_claim_done_dedup, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_crash_between_post_and_confirm, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_ambiguous_create_one_client, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_dry_run_writes_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_sigkill_between_post_and_confirm, fx_setup_proxied,
                                        fx_teardown_proxied),
        cmocka_unit_test_setup_teardown(t_in_flight_per_key_order, fx_setup6, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
