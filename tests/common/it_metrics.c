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

static long http_post(int port, const char *path, const char *body, size_t len, char **out);

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
    assert_int_equal(http_post(port, "/echo", "a=1", 3, NULL), 405); /* no route: no POST */
    assert_int_equal(http_get(port, "GET", "/echo", NULL), 404);
    metrics_server_stop(srv);
    metrics_free(m);
}

/* ---- the route hook: GET with query arguments, POST with a bounded form body ---------------- */

typedef struct {
    atomic_int calls;
} route_ctx_t;

static int echo_route(void *ctx, const metrics_request_t *req, unsigned *status,
                      const char **ctype, char **body)
{
    route_ctx_t *rc = ctx;
    atomic_fetch_add(&rc->calls, 1);
    if (strcmp(req->path, "/echo") != 0)
        return -1;
    char name[64], n[16];
    int nl = metrics_form_value(req->body, req->body_len, "name", name, sizeof name);
    int cl = metrics_form_value(req->body, req->body_len, "n", n, sizeof n);
    const char *x = metrics_request_arg(req, "x");
    char buf[512];
    snprintf(buf, sizeof buf, "%s %s x=[%s] len=%zu type=[%s] name=%d[%s] n=%d[%s]", req->method,
             req->path, x ? x : "(none)", req->body_len, req->content_type, nl, name, cl, n);
    *status = strcmp(req->method, "POST") == 0 ? 201 : 200;
    *ctype = "text/plain";
    *body = strdup(buf);
    return *body ? 0 : -1;
}

static size_t collect(char *data, size_t size, size_t n, void *userp)
{
    FILE *out = userp;
    return fwrite(data, size, n, out);
}

/* POST body (len bytes, form-urlencoded) to http://127.0.0.1:port/path; returns the status. */
static long http_post(int port, const char *path, const char *body, size_t len, char **out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char *buf = NULL;
    size_t blen = 0;
    FILE *mem = open_memstream(&buf, &blen);
    CURL *c = curl_easy_init();
    if (!c || !mem) {
        if (mem)
            fclose(mem);
        free(buf);
        if (c)
            curl_easy_cleanup(c);
        return -1;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    fclose(mem);
    if (out)
        *out = buf;
    else
        free(buf);
    return status;
}

static void test_route_hook(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    route_ctx_t rc;
    atomic_init(&rc.calls, 0);
    metrics_server_config_t cfg = {.bind_address = "127.0.0.1", .port = METRICS_PORT_AUTO,
                                   .route = echo_route, .route_ctx = &rc};
    metrics_server_t *srv = NULL;
    char err[256] = "";
    assert_int_equal(metrics_server_start(m, &cfg, &srv, err, sizeof err), 0);
    int port = metrics_server_port(srv);
    char *body = NULL;

    /* GET: path without the query, arguments decoded */
    assert_int_equal(http_get(port, "GET", "/echo?x=a%20b%26c&y=2", &body), 200);
    assert_string_equal(body, "GET /echo x=[a b&c] len=0 type=[] name=-1[] n=-1[]");
    free(body);
    /* POST: the form body, decoded field by field */
    static const char form[] = "n=5&name=J%C3%B3+Silva";
    assert_int_equal(http_post(port, "/echo", form, strlen(form), &body), 201);
    assert_string_equal(body, "POST /echo x=[(none)] len=22 "
                              "type=[application/x-www-form-urlencoded] "
                              "name=9[J\xC3\xB3 Silva] n=1[5]");
    free(body);
    /* the body cap: METRICS_BODY_MAX passes, one byte more is 413 without a route call */
    size_t big = METRICS_BODY_MAX + 1;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'a', big);
    huge[0] = 'n';
    huge[1] = '=';
    huge[big] = '\0';
    assert_int_equal(http_post(port, "/echo", huge, big - 1, &body), 201);
    assert_non_null(strstr(body, "len=65536 "));
    free(body);
    int before = atomic_load(&rc.calls);
    assert_int_equal(http_post(port, "/echo", huge, big, NULL), 413);
    assert_int_equal(atomic_load(&rc.calls), before);
    free(huge);
    /* the route declines: 404 for GET, 405 for POST; the built-in paths never reach it */
    assert_int_equal(http_get(port, "GET", "/nope", NULL), 404);
    assert_int_equal(http_post(port, "/nope", "a=1", 3, NULL), 405);
    before = atomic_load(&rc.calls);
    assert_int_equal(http_get(port, "GET", "/metrics", NULL), 200);
    assert_int_equal(http_get(port, "GET", "/healthz", NULL), 200);
    assert_int_equal(http_get(port, "GET", "/readyz", NULL), 200);
    assert_int_equal(http_post(port, "/metrics", "a=1", 3, NULL), 405);
    assert_int_equal(http_get(port, "DELETE", "/echo", NULL), 405);
    assert_int_equal(atomic_load(&rc.calls), before);
    metrics_server_stop(srv);
    metrics_free(m);
}

static void test_form_value(void **state)
{
    (void)state;
    char out[8];
    static const char b[] = "a=1&bb=x%2By+z&c=%zz&d=%00&e=&f=12345678&g";
    size_t n = strlen(b);
    assert_int_equal(metrics_form_value(b, n, "a", out, sizeof out), 1);
    assert_string_equal(out, "1");
    assert_int_equal(metrics_form_value(b, n, "bb", out, sizeof out), 5);
    assert_string_equal(out, "x+y z");
    assert_int_equal(metrics_form_value(b, n, "b", out, sizeof out), -1); /* a prefix is not it */
    assert_int_equal(metrics_form_value(b, n, "c", out, sizeof out), 3); /* kept as it is */
    assert_string_equal(out, "%zz");
    assert_int_equal(metrics_form_value(b, n, "d", out, sizeof out), -2); /* a NUL */
    assert_int_equal(metrics_form_value(b, n, "e", out, sizeof out), 0);
    assert_int_equal(metrics_form_value(b, n, "f", out, sizeof out), -2); /* too long */
    assert_string_equal(out, "");
    assert_int_equal(metrics_form_value(b, n, "g", out, sizeof out), 0);
    assert_int_equal(metrics_form_value(b, n, "zz", out, sizeof out), -1);
    assert_int_equal(metrics_form_value(b, 3, "bb", out, sizeof out), -1); /* bounded by len */
}

int main(void)
{
    log_init("it_metrics", LOG_WARN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_endpoints),
        cmocka_unit_test(test_no_ready_callback_is_ready),
        cmocka_unit_test(test_route_hook),
        cmocka_unit_test(test_form_value),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
