/* Unit tests for metrics_: registry semantics and the Prometheus text exposition format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

static void assert_renders(metrics_t *m, const char *expected)
{
    char *text = metrics_render(m);
    assert_non_null(text);
    if (strcmp(text, expected) != 0)
        print_error("rendered:\n%s\nexpected:\n%s\n", text, expected);
    assert_string_equal(text, expected);
    free(text);
}

static void test_empty_registry(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_renders(m, "");
    metrics_free(m);
}

static void test_counter_with_labels(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *rec = metrics_counter_new(m, "pipeline_records_total",
                                                "Records by terminal outcome.",
                                                (const char *[]){"outcome", "reason", NULL});
    assert_non_null(rec);
    metrics_counter_add(rec, (const char *[]){"delivered", ""}, 1);
    metrics_counter_add(rec, (const char *[]){"skipped", "no_tag"}, 2);
    metrics_counter_add(rec, (const char *[]){"delivered", ""}, 1);
    metrics_counter_add(rec, (const char *[]){"delivered", NULL}, 0.5); /* NULL counts as "" */
    metrics_counter_add(rec, (const char *[]){"delivered", ""}, -1);    /* ignored */
    metrics_counter_add(rec, (const char *[]){"delivered", ""}, NAN);   /* ignored */
    assert_true(metrics_value(rec, (const char *[]){"delivered", ""}) == 2.5);
    assert_true(metrics_value(rec, (const char *[]){"nope", ""}) == 0);
    assert_renders(m, "# HELP pipeline_records_total Records by terminal outcome.\n"
                      "# TYPE pipeline_records_total counter\n"
                      "pipeline_records_total{outcome=\"delivered\",reason=\"\"} 2.5\n"
                      "pipeline_records_total{outcome=\"skipped\",reason=\"no_tag\"} 2\n");
    metrics_free(m);
}

static void test_gauge_without_labels(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *g = metrics_gauge_new(m, "pipeline_in_flight", "Records in flight.", NULL);
    assert_non_null(g);
    metrics_gauge_set(g, NULL, 5);
    metrics_gauge_add(g, NULL, -7);
    assert_true(metrics_value(g, NULL) == -2);
    metrics_family_t *big = metrics_gauge_new(m, "pipeline_big", "", NULL);
    metrics_gauge_set(big, NULL, 1e21);
    metrics_family_t *inf = metrics_gauge_new(m, "pipeline_inf", "x", NULL);
    metrics_gauge_set(inf, NULL, -INFINITY);
    assert_renders(m, "# HELP pipeline_in_flight Records in flight.\n"
                      "# TYPE pipeline_in_flight gauge\n"
                      "pipeline_in_flight -2\n"
                      "# HELP pipeline_big \n"
                      "# TYPE pipeline_big gauge\n"
                      "pipeline_big 1e+21\n"
                      "# HELP pipeline_inf x\n"
                      "# TYPE pipeline_inf gauge\n"
                      "pipeline_inf -Inf\n");
    metrics_free(m);
}

static void test_escaping(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *c = metrics_counter_new(m, "esc_total", "Help with \\ and\nnewline \"q\".",
                                              (const char *[]){"v", NULL});
    metrics_counter_add(c, (const char *[]){"a\"b\\c\nd"}, 1);
    assert_renders(m, "# HELP esc_total Help with \\\\ and\\nnewline \"q\".\n"
                      "# TYPE esc_total counter\n"
                      "esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    metrics_free(m);
}

static void test_histogram(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    const double buckets[] = {0.1, 0.5, 2.5};
    metrics_family_t *h = metrics_histogram_new(m, "http_seconds", "Latency.", buckets, 3,
                                                (const char *[]){"target", NULL});
    assert_non_null(h);
    const char *const milvus[] = {"milvus"};
    metrics_histogram_observe(h, milvus, 0.05);
    metrics_histogram_observe(h, milvus, 0.1); /* le is inclusive */
    metrics_histogram_observe(h, milvus, 0.75);
    metrics_histogram_observe(h, milvus, 10);
    assert_true(metrics_value(h, milvus) == 4);
    assert_renders(m, "# HELP http_seconds Latency.\n"
                      "# TYPE http_seconds histogram\n"
                      "http_seconds_bucket{target=\"milvus\",le=\"0.1\"} 2\n"
                      "http_seconds_bucket{target=\"milvus\",le=\"0.5\"} 2\n"
                      "http_seconds_bucket{target=\"milvus\",le=\"2.5\"} 3\n"
                      "http_seconds_bucket{target=\"milvus\",le=\"+Inf\"} 4\n"
                      "http_seconds_sum{target=\"milvus\"} 10.9\n"
                      "http_seconds_count{target=\"milvus\"} 4\n");
    metrics_free(m);
}

static void test_histogram_no_labels_default_buckets(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *h = metrics_histogram_new(m, "lat", "L.", METRICS_HTTP_BUCKETS,
                                                METRICS_HTTP_BUCKETS_N, NULL);
    metrics_histogram_observe(h, NULL, 0.003);
    char *text = metrics_render(m);
    assert_non_null(strstr(text, "lat_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "lat_bucket{le=\"60\"} 1\n"));
    assert_non_null(strstr(text, "lat_bucket{le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(text, "lat_sum 0.003\nlat_count 1\n"));
    free(text);
    metrics_free(m);
}

static void test_registration_rules(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_family_t *a = metrics_counter_new(m, "x_total", "X.", (const char *[]){"k", NULL});
    /* same name, type and labels: the same family */
    assert_ptr_equal(a, metrics_counter_new(m, "x_total", "X.", (const char *[]){"k", NULL}));
    /* conflicting re-registrations and invalid names: NULL */
    assert_null(metrics_gauge_new(m, "x_total", "X.", (const char *[]){"k", NULL}));
    assert_null(metrics_counter_new(m, "x_total", "X.", (const char *[]){"j", NULL}));
    assert_null(metrics_counter_new(m, "x_total", "X.", NULL));
    assert_null(metrics_counter_new(m, "9bad", "", NULL));
    assert_null(metrics_counter_new(m, "bad-name", "", NULL));
    assert_null(metrics_counter_new(m, "", "", NULL));
    assert_null(metrics_counter_new(m, "ok_total", "", (const char *[]){"__reserved", NULL}));
    assert_null(metrics_counter_new(m, "ok_total", "", (const char *[]){"a:b", NULL}));
    assert_null(metrics_histogram_new(m, "h", "", METRICS_HTTP_BUCKETS, 2,
                                      (const char *[]){"le", NULL}));
    const double unsorted[] = {1, 0.5};
    assert_null(metrics_histogram_new(m, "h", "", unsorted, 2, NULL));
    assert_non_null(metrics_counter_new(m, "ns:ok_total", "", NULL)); /* colons allowed */
    /* wrong-type updates are ignored */
    metrics_gauge_set(a, (const char *[]){"v"}, 3);
    assert_true(metrics_value(a, (const char *[]){"v"}) == 0);
    metrics_free(m);
}

typedef struct {
    metrics_family_t *c, *h;
} worker_ctx_t;

static void *hammer(void *arg)
{
    worker_ctx_t *ctx = arg;
    for (int i = 0; i < 10000; i++) {
        metrics_counter_add(ctx->c, (const char *[]){i % 2 ? "odd" : "even"}, 1);
        metrics_histogram_observe(ctx->h, NULL, 0.01);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    worker_ctx_t ctx = {
        metrics_counter_new(m, "t_total", "", (const char *[]){"parity", NULL}),
        metrics_histogram_new(m, "t_seconds", "", METRICS_HTTP_BUCKETS, METRICS_HTTP_BUCKETS_N,
                              NULL)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &ctx), 0);
    for (int i = 0; i < 4; i++) {
        char *text = metrics_render(m); /* rendering while others write */
        free(text);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(metrics_value(ctx.c, (const char *[]){"odd"}) == 20000);
    assert_true(metrics_value(ctx.c, (const char *[]){"even"}) == 20000);
    assert_true(metrics_value(ctx.h, NULL) == 40000);
    metrics_free(m);
}

static void test_heartbeat(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_true(metrics_heartbeat_age_ms(m) < 10000); /* fresh at creation (the default
                                                        * staleness is 60 s) */
    metrics_heartbeat(m);
    assert_true(metrics_heartbeat_age_ms(m) >= 0);
    assert_true(metrics_heartbeat_age_ms(m) < 10000);
    metrics_free(m);
}

static void test_server_off(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_server_t *srv = (metrics_server_t *)1;
    char err[256] = "";
    metrics_server_config_t cfg = {.port = METRICS_PORT_OFF};
    assert_int_equal(metrics_server_start(m, &cfg, &srv, err, sizeof err), 0);
    assert_null(srv);
    cfg.port = 70000;
    assert_int_equal(metrics_server_start(m, &cfg, &srv, err, sizeof err), -1);
    assert_non_null(strstr(err, "METRICS_PORT"));
    cfg.port = METRICS_PORT_AUTO;
    cfg.bind_address = "localhost"; /* not numeric */
    assert_int_equal(metrics_server_start(m, &cfg, &srv, err, sizeof err), -1);
    assert_null(srv);
    metrics_free(m);
}

int main(void)
{
    log_init("test_metrics", LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_registry),
        cmocka_unit_test(test_counter_with_labels),
        cmocka_unit_test(test_gauge_without_labels),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_no_labels_default_buckets),
        cmocka_unit_test(test_registration_rules),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_server_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
