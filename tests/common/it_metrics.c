/* Integration test for the metrics_ HTTP server: a real libmicrohttpd server on an ephemeral
 * loopback port, queried with libcurl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "testenv.h"
#include "testhttp.h"

/* GET/POST http://127.0.0.1:port/path through the shared test helper; -1 = no answer. */
static long http_get(int port, const char *method, const char *path, char **body_out)
{
    return testhttp_local(method, port, path, 30000, body_out);
}

typedef struct {
    atomic_bool kafka_ok;
    atomic_bool mongo_ok;
    atomic_int calls;
} readiness_t;

static bool ready_cb(void *ctx, char *why, size_t whylen)
{
    readiness_t *r = ctx;
    atomic_fetch_add(&r->calls, 1);
    if (!atomic_load(&r->kafka_ok)) {
        snprintf(why, whylen, "kafka not connected");
        return false;
    }
    if (!atomic_load(&r->mongo_ok)) {
        snprintf(why, whylen, "mongodb down");
        return false;
    }
    return true;
}

typedef struct {
    int port;
    long want;
} probe_t;

/* Staleness for the /healthz test: long enough that the request right after a heartbeat is
 * surely answered within it on a loaded machine (it was 300 ms: a slow request read 503). */
#define STALE_MS 3000

static bool healthz_is(void *ctx)
{
    probe_t *p = ctx;
    return http_get(p->port, "GET", "/healthz", NULL) == p->want;
}

static void test_server_endpoints(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *rec = metrics_counter_new(m, "pipeline_records_total", "Records.",
                                                (const char *[]){"outcome", "reason", NULL});
    metrics_counter_add(rec, (const char *[]){"delivered", ""}, 3);
    metrics_family_t *lat = metrics_histogram_new(m, "pipeline_http_request_duration_seconds",
                                                  "HTTP latency.", METRICS_HTTP_BUCKETS,
                                                  METRICS_HTTP_BUCKETS_N,
                                                  (const char *[]){"target", NULL});
    metrics_histogram_observe(lat, (const char *[]){"milvus"}, 0.2);

    readiness_t r;
    atomic_init(&r.kafka_ok, false);
    atomic_init(&r.mongo_ok, true);
    atomic_init(&r.calls, 0);
    metrics_server_config_t cfg = {.bind_address = "127.0.0.1",
                                   .port = METRICS_PORT_AUTO,
                                   .stale_after_ms = STALE_MS,
                                   .ready = ready_cb,
                                   .ready_ctx = &r};
    metrics_server_t *srv = NULL;
    char err[256] = "";
    assert_int_equal(metrics_server_start(m, &cfg, &srv, err, sizeof err), 0);
    assert_non_null(srv);
    int port = metrics_server_port(srv);
    assert_true(port > 0 && port < 65536);

    /* /metrics */
    char *body = NULL;
    assert_int_equal(http_get(port, "GET", "/metrics", &body), 200);
    assert_non_null(body);
    assert_non_null(strstr(body, "# TYPE pipeline_records_total counter\n"));
    assert_non_null(strstr(body, "pipeline_records_total{outcome=\"delivered\",reason=\"\"} 3\n"));
    assert_non_null(strstr(
        body, "pipeline_http_request_duration_seconds_bucket{target=\"milvus\",le=\"0.25\"} 1\n"));
    free(body);
    /* a later update shows up */
    metrics_counter_add(rec, (const char *[]){"delivered", ""}, 1);
    assert_int_equal(http_get(port, "GET", "/metrics", &body), 200);
    assert_non_null(strstr(body, "pipeline_records_total{outcome=\"delivered\",reason=\"\"} 4\n"));
    free(body);

    /* /healthz: fresh -> 200; no heartbeat for longer than STALE_MS -> 503; heartbeat -> 200 */
    metrics_heartbeat(m);
    assert_int_equal(http_get(port, "GET", "/healthz", NULL), 200);
    probe_t p = {port, 503};
    assert_true(testenv_wait_until(healthz_is, &p, STALE_MS + 30000, 50));
    assert_int_equal(http_get(port, "GET", "/healthz", &body), 503);
    assert_non_null(strstr(body, "stale"));
    free(body);
    metrics_heartbeat(m);
    assert_int_equal(http_get(port, "GET", "/healthz", NULL), 200);

    /* /metrics carries process_ready, following the same callback */
    assert_int_equal(http_get(port, "GET", "/metrics", &body), 200);
    assert_non_null(strstr(body, "\nprocess_ready 0\n"));
    assert_non_null(strstr(body, "# TYPE process_start_time_seconds gauge"));
    free(body);

    /* /readyz follows the callback */
    assert_int_equal(http_get(port, "GET", "/readyz", &body), 503);
    assert_non_null(strstr(body, "kafka not connected"));
    free(body);
    atomic_store(&r.kafka_ok, true);
    assert_int_equal(http_get(port, "GET", "/readyz", NULL), 200);
    atomic_store(&r.mongo_ok, false);
    assert_int_equal(http_get(port, "GET", "/readyz", &body), 503);
    assert_non_null(strstr(body, "mongodb down"));
    free(body);
    atomic_store(&r.mongo_ok, true);
    assert_int_equal(http_get(port, "GET", "/readyz", NULL), 200);
    assert_int_equal(http_get(port, "GET", "/metrics", &body), 200);
    assert_non_null(strstr(body, "\nprocess_ready 1\n"));
    free(body);
    assert_true(atomic_load(&r.calls) >= 4);

    /* other paths and methods */
    assert_int_equal(http_get(port, "GET", "/nope", NULL), 404);
    assert_int_equal(http_get(port, "POST", "/metrics", NULL), 405);

    /* the same port again: a clear error naming METRICS_PORT */
    metrics_server_config_t again = {.bind_address = "127.0.0.1", .port = port};
    metrics_server_t *srv2 = NULL;
    assert_int_equal(metrics_server_start(m, &again, &srv2, err, sizeof err), -1);
    assert_null(srv2);
    assert_non_null(strstr(err, "METRICS_PORT"));
    assert_non_null(strstr(err, "in use"));

    metrics_server_stop(srv);
    /* stopped: nothing listens any more */
    assert_int_equal(http_get(port, "GET", "/healthz", NULL), -1);
    metrics_free(m);
}

static void test_no_ready_callback_is_ready(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_server_config_t cfg = {.bind_address = "127.0.0.1", .port = METRICS_PORT_AUTO};
    metrics_server_t *srv = NULL;
    char err[256] = "";
    assert_int_equal(metrics_server_start(m, &cfg, &srv, err, sizeof err), 0);
    int port = metrics_server_port(srv);
    assert_int_equal(http_get(port, "GET", "/readyz", NULL), 200);
    assert_int_equal(http_get(port, "GET", "/healthz", NULL), 200); /* default staleness 60 s */
    assert_int_equal(http_get(port, "GET", "/metrics", NULL), 200);  /* empty registry */
    metrics_server_stop(srv);
    metrics_free(m);
}

int main(void)
{
    log_init("it_metrics", LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_endpoints),
        cmocka_unit_test(test_no_ready_callback_is_ready),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
