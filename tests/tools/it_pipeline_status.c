/* it_pipeline_status: pipeline-status against a pipeline in a known state on the real broker
 * and MongoDB: a worker group with a known committed position (known lag per partition), two
 * dead letters, a producer cursor, a held producer lease and three tickets of the shared
 * Ploomes rate limit. `--json` and the table report exactly those numbers; `--serve` exports
 * them on /metrics (pipeline_dlq_messages, pipeline_consumer_lag, pipeline_ratelimit_used) and
 * /api/status, and /readyz is 200. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "../workers/wtest.h"
#include "ratelimit.h"

#define PLOOMES_URL "http://127.0.0.1:9/api"
#define PLOOMES_KEY "status-test-key-123"

static void known_state(wt_t *w)
{
    assert_int_equal(wt_ensure_topics(w), 0);
    char tasks[KAFKA_TOPIC_NAME_MAX], err[512];
    wt_topic(w, "ploomes.tasks", tasks, sizeof tasks);
    /* 10 records on partition 0 and 4 on partition 1 (keys picked by librdkafka's partitioner
     * are not predictable: produce with explicit partitions through a raw handle). */
    kafka_settings_t s = wt_settings();
    rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    for (int i = 0; i < 14; i++)
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(tasks),
                                           RD_KAFKA_V_PARTITION(i < 10 ? 0 : 1),
                                           RD_KAFKA_V_VALUE("{}", 2), RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    char dlq[KAFKA_TOPIC_NAME_MAX];
    wt_topic(w, "pipeline.dlq", dlq, sizeof dlq);
    for (int i = 0; i < 2; i++)
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(dlq), RD_KAFKA_V_PARTITION(0),
                                           RD_KAFKA_V_VALUE("{}", 2), RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
    /* lag 3 on p0; nothing committed on p1: lag 4 */
    assert_int_equal(wt_commit_group(w, "tasks-to-milvus", tasks, 0, 7), 0);

    store_t *st = wt_store_open(w);
    assert_non_null(st);
    assert_int_equal(store_cursor_set(st, "ploomes.task", "2026-01-02T03:04:05.678Z", 77, err,
                                      sizeof err), STORE_OK);
    store_lease_t l;
    assert_int_equal(store_lease_acquire(st, "producer:ploomes", "host-1/abc", 60000, &l, err,
                                         sizeof err), STORE_OK);
    assert_true(l.held);
    ratelimit_options_t o = {.pool = store_pool(st), .database = store_db_name(st),
                             .base_url = PLOOMES_URL, .secret = PLOOMES_KEY, .limit = 50,
                             .window_ms = 60000, .margin_ms = -1, .name = "ploomes",
                             .spacing_ms = -1 /* three tickets back to back */};
    ratelimit_t *rl = ratelimit_new(&o, err, sizeof err);
    assert_non_null(rl);
    for (int i = 0; i < 3; i++) {
        int64_t wait_ms = 0;
        assert_int_equal(ratelimit_try_acquire(rl, &wait_ms, err, sizeof err), 1);
    }
    ratelimit_free(rl);
    store_close(st);
}

static int status_cli(wt_t *w, const char *const *args, char **out, int n)
{
    char log[256], err[256];
    snprintf(log, sizeof log, "%s.status-%d", w->log, n);
    unlink(log);
    pid_t pid = simproc_spawn("pipeline-status", args, wt_env(w), log, err, sizeof err);
    assert_true(pid > 0);
    int rc = simproc_wait(pid, 60000);
    *out = testenv_read_file(log);
    assert_non_null(*out);
    return rc;
}

static int64_t json_lag(cJSON *j, const char *worker, int partition)
{
    cJSON *ws = cJSON_GetObjectItem(j, "workers"), *x;
    cJSON_ArrayForEach(x, ws)
    {
        if (strcmp(cJSON_GetObjectItem(x, "worker")->valuestring, worker) != 0)
            continue;
        if (partition < 0)
            return (int64_t)cJSON_GetObjectItem(x, "lag")->valuedouble;
        cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(x, "partitions"))
        {
            if (cJSON_GetObjectItem(p, "partition")->valueint == partition)
                return (int64_t)cJSON_GetObjectItem(p, "lag")->valuedouble;
        }
    }
    return -1;
}

static void check_json(cJSON *j)
{
    assert_non_null(j);
    assert_int_equal(json_lag(j, "tasks-to-milvus", 0), 3);
    assert_int_equal(json_lag(j, "tasks-to-milvus", 1), 4);
    assert_int_equal(json_lag(j, "tasks-to-milvus", -1), 7);
    assert_int_equal(json_lag(j, "clients-to-milvus", -1), 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "dlq"), "messages")->valueint, 2);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "cursors"), 0);
    assert_string_equal(cJSON_GetObjectItem(c, "key")->valuestring, "ploomes.task");
    assert_int_equal(cJSON_GetObjectItem(c, "id")->valueint, 77);
    cJSON *l = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "leases"), 0);
    assert_string_equal(cJSON_GetObjectItem(l, "owner")->valuestring, "host-1/abc");
    cJSON *r = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "rate_limits"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "known")));
    assert_int_equal(cJSON_GetObjectItem(r, "used")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(r, "limit")->valueint, 50);
}

typedef struct {
    int port;
} port_t;

static bool metrics_ready(void *ctx)
{
    port_t *p = ctx;
    char *body = NULL;
    long st = pt_http_get(p->port, "/metrics", &body);
    bool ok = st == 200 && body && strstr(body, "pipeline_dlq_messages 2\n");
    free(body);
    return ok;
}

static void test_known_state(void **state)
{
    (void)state;
    wt_t w;
    wt_init(&w, "status");
    wt_set(&w, "PLOOMES_BASE_URL", PLOOMES_URL);
    wt_set(&w, "PLOOMES_USER_KEY", PLOOMES_KEY);
    wt_set(&w, "PLOOMES_RATE_PER_MIN", "50");
    known_state(&w);

    char *out = NULL;
    assert_int_equal(status_cli(&w, (const char *[]){"--json", NULL}, &out, 1), 0);
    cJSON *j = cJSON_Parse(testenv_json_start(out, '{'));
    check_json(j);
    cJSON_Delete(j);
    free(out);

    assert_int_equal(status_cli(&w, NULL, &out, 2), 0);
    assert_non_null(strstr(out, "dead letters: 2"));
    assert_non_null(strstr(out, "host-1/abc"));
    assert_non_null(strstr(out, "3 / 50"));
    assert_null(strstr(out, PLOOMES_KEY)); /* the key is never printed */
    free(out);

    /* --serve: metrics and the same JSON over HTTP */
    port_t p = {.port = pt_free_port()};
    char port[16], log[256], err[256];
    snprintf(port, sizeof port, "%d", p.port);
    snprintf(log, sizeof log, "%s.serve", w.log);
    pid_t pid = simproc_spawn("pipeline-status",
                              (const char *[]){"--serve", port, "--interval", "1", NULL},
                              wt_env(&w), log, err, sizeof err);
    assert_true(pid > 0);
    assert_true(testenv_wait_until(metrics_ready, &p, 60000, 200));
    char *body = NULL;
    assert_int_equal(pt_http_get(p.port, "/metrics", &body), 200);
    assert_non_null(strstr(body, "pipeline_consumer_lag{worker=\"tasks-to-milvus\",partition=\"0\"} 3"));
    assert_non_null(strstr(body, "pipeline_ratelimit_used{api=\"ploomes\"} 3"));
    assert_non_null(strstr(body, "process_ready 1"));
    free(body);
    assert_int_equal(pt_http_get(p.port, "/api/status", &body), 200);
    j = cJSON_Parse(body);
    check_json(j);
    cJSON_Delete(j);
    free(body);
    assert_int_equal(pt_http_get(p.port, "/readyz", NULL), 200);
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 30000), 0);
    wt_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
