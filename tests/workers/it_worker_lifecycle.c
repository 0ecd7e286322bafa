/* Integration tests of the worker runtime's life cycle through echo-worker: SIGTERM in the
 * middle of a record, /metrics /healthz /readyz, a group of instances changing, the Ploomes 403
 * streak (exit 3). */
#include "it_worker_echo.h"

/* Starts the worker with the target failing with `status`, waits for its first retry,
 * SIGTERMs it: clean exit 0, the record released, not dead-lettered. */
static void sigterm_while_retrying(fx_t *f, const char *key, int status)
{
    char faults[96];
    snprintf(faults, sizeof faults, "{\"error_rate\":1,\"error_status\":%d}", status);
    assert_int_equal(simproc_faults(f->milvus, faults), 0);
    wt_set(&f->w, "RETRY_BASE_MS", "5000");
    wt_set(&f->w, "RETRY_MAX_MS", "5000");
    int retries = wt_log_count(&f->w, "event=http_retry");
    pid_t pid = wt_spawn(&f->w, BIN, NULL);
    assert_true(pid > 0);
    bool waited = wt_wait_log(&f->w, "event=http_retry", retries + 1, 60000);
    kill(pid, SIGTERM);
    int rc = simproc_wait(pid, 30000);
    wt_set(&f->w, "RETRY_BASE_MS", "20");
    wt_set(&f->w, "RETRY_MAX_MS", "200");
    assert_int_equal(simproc_faults(f->milvus, "{\"error_rate\":0}"), 0);
    if (!waited || rc != 0)
        pt_dump_log(f->w.log, 6000);
    assert_true(waited);
    assert_int_equal(rc, 0);
    assert_int_equal(wt_count_done(&f->w, key, "released", "stopping"), 1);
    assert_int_equal(wt_count_done(&f->w, key, "dead_lettered", NULL), 0);
}

/* SIGTERM while a create waits on 429s (never sent twice by api_, not processed): the claim is
 * released, so the restarted worker delivers the record at once. */
static void t_sigterm_mid_record(void **state)
{
    fx_t *f = *state;
    char doc[12];
    make_cpf(723456789, doc);
    produce_client(f, 12, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    sigterm_while_retrying(f, "12", 429);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "12", "delivered", "created"), 1);
    assert_int_equal(wt_count_done(&f->w, "12", "released", "claim_busy"), 0);
    assert_int_equal(clients_at_target(f, doc), 1);
}

/* SIGTERM after an ambiguous create (503), while its search waits on retries: the claim stays
 * pending (the create may have taken effect); the restarted worker finds it busy, waits without
 * spinning, takes it over when the lease ends, searches, and creates once. */
static void t_sigterm_after_ambiguous_create(void **state)
{
    fx_t *f = *state;
    char doc[12];
    make_cpf(823456789, doc);
    wt_set(&f->w, "CLAIM_LEASE_SECONDS", "3");
    produce_client(f, 13, doc);
    assert_int_equal(wt_flush(&f->w), 0);
    sigterm_while_retrying(f, "13", 503);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "13", "delivered", "created"), 1);
    /* busy until the 3 s lease ends (unless the restart took longer): backed off, not spun */
    assert_true(wt_count_done(&f->w, "13", "released", "claim_busy") <= 8);
    assert_int_equal(wt_log_count(&f->w, "event=claim_recovered worker=echo-worker "
                                         "search=not_found"),
                     1);
    assert_int_equal(clients_at_target(f, doc), 1);
}

static bool lag_shown(void *ctx)
{
    char *text = NULL;
    bool ok = pt_http_get(*(int *)ctx, "/metrics", &text) == 200 &&
              pt_metric_line(text, "worker_consumer_lag{worker=\"echo-worker\",topic=\"") != NULL;
    free(text);
    return ok;
}

/* /metrics, /healthz and /readyz of a running worker (SPEC §7), the record counters by
 * outcome and reason, dead letters by class, lag, in-flight, the HTTP metrics; never the
 * token. SIGTERM: exit 0. */
static void t_metrics_endpoints(void **state)
{
    fx_t *f = *state;
    char doc[12];
    make_cpf(923456789, doc);
    produce_client(f, 20, doc);
    assert_int_equal(wt_produce(&f->w, SRC, "21", "{\"Id\":21,\"mode\":\"dead\"}"), 0);
    assert_int_equal(wt_produce(&f->w, SRC, "22", "{\"Id\":22,\"mode\":\"skip\"}"), 0);
    assert_int_equal(wt_flush(&f->w), 0);
    int port = 0;
    pid_t pid = pt_start_daemon(BIN, wt_env(&f->w), f->w.log, &port);
    assert_true(pid > 0);
    assert_true(wt_wait_done(&f->w, 3, 60000));
    char *text = NULL;
    assert_int_equal(pt_http_get(port, "/metrics", &text), 200);
    static const struct {
        const char *series;
        double value; /* < 0: any value */
    } want[] = {
        {"worker_records_total{worker=\"echo-worker\",outcome=\"delivered\",reason=\"created\"}", 1},
        {"worker_records_total{worker=\"echo-worker\",outcome=\"skipped\",reason=\"test_skip\"}", 1},
        {"worker_records_total{worker=\"echo-worker\",outcome=\"dead_lettered\",reason=\"TestDead\"}", 1},
        {"worker_dead_letters_total{worker=\"echo-worker\",error_class=\"TestDead\"}", 1},
        {"worker_in_flight{worker=\"echo-worker\"}", 0},
        {"process_ready", 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double v = pt_metric_value(text, want[i].series);
        if (v != want[i].value) {
            fprintf(stderr, "%s", text);
            fail_msg("%s = %g, expected %g", want[i].series, v, want[i].value);
        }
    }
    assert_non_null(pt_metric_line(text, "# TYPE worker_claim_recoveries_total counter\n"));
    assert_non_null(pt_metric_line(text, "http_request_duration_seconds_count{api=\"milvus\","));
    assert_non_null(pt_metric_line(text, "store_round_trips_total{"));
    assert_null(strstr(text, TOKEN));
    free(text);
    /* the lag gauge is refreshed every few seconds: wait for it */
    assert_true(testenv_wait_until(lag_shown, &port, 30000, 200));
    assert_int_equal(pt_http_get(port, "/healthz", NULL), 200);
    assert_int_equal(pt_http_get(port, "/readyz", NULL), 200);
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 30000), 0);
}

/* Two instances in one group, a third joining mid-run and leaving (SIGTERM): every record
 * reaches a terminal outcome, every client is created exactly once, nothing dead-lettered. */
static void t_group_exactly_once(void **state)
{
    fx_t *f = *state;
    enum { N = 60 };
    char docs[N][12];
    for (int i = 0; i < N; i++) {
        make_cpf(100000000 + i * 7919, docs[i]);
        produce_client(f, 1000 + i, docs[i]);
    }
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":60}"), 0);
    const char *idle[] = {"--idle-exit", "6", NULL};
    pid_t a = wt_spawn(&f->w, BIN, idle);
    pid_t b = wt_spawn(&f->w, BIN, idle);
    assert_true(a > 0 && b > 0);
    assert_true(wt_wait_done(&f->w, 10, 60000));
    pid_t c = wt_spawn(&f->w, BIN, NULL);
    assert_true(c > 0);
    assert_true(wt_wait_log(&f->w, "event=partitions_assigned", 5, 60000));
    assert_true(wt_wait_done(&f->w, 35, 60000));
    kill(c, SIGTERM);
    int rc_c = simproc_wait(c, 30000);
    int rc_a = simproc_wait(a, 120000);
    int rc_b = simproc_wait(b, 120000);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":0}"), 0);
    if (rc_a || rc_b || rc_c)
        pt_dump_log(f->w.log, 8000);
    assert_int_equal(rc_c, 0);
    assert_int_equal(rc_a, 0);
    assert_int_equal(rc_b, 0);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", 1000 + i);
        int terminal = wt_count_done(&f->w, key, "delivered", NULL) +
                       wt_count_done(&f->w, key, "dedup_hit", NULL);
        if (terminal < 1)
            fail_msg("record %s never reached a terminal outcome", key);
        assert_int_equal(wt_count_done(&f->w, key, "delivered", NULL), 1);
        assert_int_equal(clients_at_target(f, docs[i]), 1);
    }
    assert_int_equal(clients_at_target(f, NULL), N);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
}

/* Ploomes answering 403 to everything: the records exhaust their attempts on 403; after 5 in
 * a row the worker exits 3 (a permission problem) instead of dead-lettering everything: 4
 * letters, the 5th record released (delivered by a later run once the 403s stop). */
static void t_forbidden_streak_exits_3(void **state)
{
    fx_t *f = *state;
    char err[512];
    simproc *ploomes = simproc_start_sim("ploomes-sim", "PKEY-1234", "{\"rate_limit_per_min\":0}",
                                         err, sizeof err);
    assert_non_null(ploomes);
    wt_set(&f->w, "ECHO_PLOOMES", "1");
    wt_set(&f->w, "PLOOMES_BASE_URL", simproc_api_url(ploomes));
    wt_set(&f->w, "PLOOMES_USER_KEY", "PKEY-1234");
    for (int i = 0; i < 6; i++) {
        char key[16], value[64];
        snprintf(key, sizeof key, "%d", 30 + i);
        snprintf(value, sizeof value, "{\"Id\":%d,\"mode\":\"ploomes\"}", 30 + i);
        assert_int_equal(wt_produce(&f->w, SRC, key, value), 0);
    }
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(simproc_faults(ploomes, "{\"error_rate\":1,\"error_status\":403}"), 0);
    int rc = run(f, 3);
    assert_int_equal(simproc_faults(ploomes, "{\"error_rate\":0}"), 0);
    assert_int_equal(rc, 3);
    assert_int_equal(wt_log_count(&f->w, "event=forbidden_streak"), 1);
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic(&f->w, "pipeline.dlq", &dlq, 30000), 0);
    assert_int_equal(dlq.n, 4);
    for (size_t i = 0; i < dlq.n; i++) {
        assert_null(wt_check_letter(&dlq.msgs[i], &f->w, SRC, "HttpStatus403"));
        assert_string_equal(wt_header(&dlq.msgs[i], KAFKA_DLQ_H_HTTP_STATUS), "403");
        assert_string_equal(wt_header(&dlq.msgs[i], KAFKA_DLQ_H_ATTEMPTS), "3");
    }
    wt_msgs_free(&dlq);
    /* the 5th and 6th are still there: a run without 403s reads them */
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, NULL, "delivered", "read"), 2);
    assert_int_equal(simproc_stop(ploomes), 0);
}

/* The command line (common/app.h) and the start-up exits: --help/--version 0, a bad setting
 * or a bad --idle-exit 2, MongoDB unreachable at start 1. */
static void t_cli_and_startup_exits(void **state)
{
    fx_t *f = *state;
    const char *help[] = {"--help", NULL};
    const char *version[] = {"--version", NULL};
    const char *check[] = {"--check-config", NULL};
    const char *bad_idle[] = {"--idle-exit", "soon", NULL};
    assert_int_equal(pt_run(BIN, help, wt_env(&f->w), f->w.log, 30000), 0);
    assert_true(wt_log_count(&f->w, "MILVUS_TOKEN") >= 1); /* the handler's needs listed */
    assert_int_equal(pt_run(BIN, version, wt_env(&f->w), f->w.log, 30000), 0);
    assert_int_equal(pt_run(BIN, check, wt_env(&f->w), f->w.log, 30000), 0);
    assert_int_equal(pt_run(BIN, bad_idle, wt_env(&f->w), f->w.log, 30000), 2);
    wt_set(&f->w, "MAX_ATTEMPTS", "many");
    assert_int_equal(pt_run(BIN, check, wt_env(&f->w), f->w.log, 30000), 2);
    wt_set(&f->w, "MAX_ATTEMPTS", "3");
    wt_set(&f->w, "MONGODB_URI",
           "mongodb://127.0.0.1:1/nobody?serverSelectionTimeoutMS=200&connectTimeoutMS=200");
    int rc = run(f, 1);
    wt_set(&f->w, "MONGODB_URI", f->w.mongo_uri);
    assert_int_equal(rc, 1);
    assert_true(wt_log_count(&f->w, "event=mongodb_unreachable") >= 1);
}

/* ---- MAX_IN_FLIGHT > 1 --------------------------------------------------------------------- */

/* Each record of 0..n reached a terminal outcome and created its client exactly once. */
static void check_created_once(fx_t *f, int first_id, int n, char (*docs)[12])
{
    for (int i = 0; i < n; i++) {
        char key[16];
        snprintf(key, sizeof key, "%d", first_id + i);
        int terminal = wt_count_done(&f->w, key, "delivered", NULL) +
                       wt_count_done(&f->w, key, "dedup_hit", NULL);
        if (terminal < 1)
            fail_msg("record %s never reached a terminal outcome", key);
        assert_int_equal(wt_count_done(&f->w, key, "delivered", NULL), 1);
        assert_int_equal(clients_at_target(f, docs[i]), 1);
    }
    assert_int_equal(clients_at_target(f, NULL), n);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
}

/* MAX_IN_FLIGHT=8, a SIGTERM while several records are in flight (a slow target): exit 0,
 * the records in flight are released; the restarted worker creates every client exactly once
 * (nothing lost, nothing twice). */
static void t_in_flight_sigterm(void **state)
{
    fx_t *f = *state;
    enum { N = 80 };
    char docs[N][12];
    wt_set(&f->w, "MAX_IN_FLIGHT", "8");
    for (int i = 0; i < N; i++) {
        make_cpf(200000000 + i * 7907, docs[i]);
        produce_client(f, 3000 + i, docs[i]);
    }
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":300}"), 0);
    pid_t pid = wt_spawn(&f->w, BIN, NULL);
    assert_true(pid > 0);
    bool some = wt_wait_done(&f->w, 10, 60000);
    kill(pid, SIGTERM);
    int rc = simproc_wait(pid, 30000);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":0}"), 0);
    if (!some || rc != 0)
        pt_dump_log(f->w.log, 8000);
    assert_true(some);
    assert_int_equal(rc, 0);
    int first = wt_count_done(&f->w, NULL, "delivered", NULL);
    assert_true(first < N); /* stopped mid-way */
    assert_int_equal(run(f, 0), 0);
    check_created_once(f, 3000, N, docs);
}

/* MAX_IN_FLIGHT=8, two instances, a third joining mid-run and leaving (SIGTERM) while records
 * are in flight: every client is created exactly once, nothing dead-lettered. */
static void t_in_flight_rebalance(void **state)
{
    fx_t *f = *state;
    enum { N = 120 };
    char docs[N][12];
    wt_set(&f->w, "MAX_IN_FLIGHT", "8");
    for (int i = 0; i < N; i++) {
        make_cpf(300000000 + i * 7901, docs[i]);
        produce_client(f, 4000 + i, docs[i]);
    }
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":700}"), 0);
    const char *idle[] = {"--idle-exit", "6", NULL};
    pid_t a = wt_spawn(&f->w, BIN, idle);
    pid_t b = wt_spawn(&f->w, BIN, idle);
    assert_true(a > 0 && b > 0);
    assert_true(wt_wait_done(&f->w, 10, 60000));
    pid_t c = wt_spawn(&f->w, BIN, NULL);
    assert_true(c > 0);
    assert_true(wt_wait_log(&f->w, "event=partitions_assigned", 5, 60000));
    assert_true(wt_wait_done(&f->w, 60, 90000));
    kill(c, SIGTERM);
    int rc_c = simproc_wait(c, 30000);
    int rc_a = simproc_wait(a, 120000);
    int rc_b = simproc_wait(b, 120000);
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":0}"), 0);
    if (rc_a || rc_b || rc_c)
        pt_dump_log(f->w.log, 8000);
    assert_int_equal(rc_c, 0);
    assert_int_equal(rc_a, 0);
    assert_int_equal(rc_b, 0);
    assert_true(wt_log_count(&f->w, "event=partitions_revoked") >= 2);
    check_created_once(f, 4000, N, docs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_sigterm_mid_record, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_sigterm_after_ambiguous_create, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_metrics_endpoints, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_group_exactly_once, fx_setup6, fx_teardown),
        cmocka_unit_test_setup_teardown(t_forbidden_streak_exits_3, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_cli_and_startup_exits, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_in_flight_sigterm, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_in_flight_rebalance, fx_setup6, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
