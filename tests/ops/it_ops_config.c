/* it_ops_config: what docker-compose, Prometheus and Grafana are given, checked without a Docker
 * engine (issue 11), by two Python checkers:
 *   tests/ops/check_ops.py      Debian's docker-compose validates the file, promtool the
 *                               Prometheus files; each service's binary exists and reads every
 *                               variable the service sets; the README's environment table is
 *                               what the binaries' --help say;
 *   tests/ops/check_metrics.py  every metric an alert rule or a dashboard panel names is exported
 *                               by a running binary (both simulators, producers, the four workers
 *                               and pipeline-status --serve against the test's Kafka and MongoDB;
 *                               each must exit 0 on SIGTERM). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testenv.h"

/* Runs tests/ops/<script> SOURCE_DIR BIN_DIR; its findings are on stdout. */
static void run_checker(const char *script)
{
    const char *src = testenv_require("PIPELINE_SOURCE_DIR");
    const char *bin = testenv_require("PIPELINE_BIN_DIR");
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "python3 '%s/tests/ops/%s' '%s' '%s'", src, script, src,
                     bin);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

static void test_compose_prometheus_grafana(void **state)
{
    (void)state;
    run_checker("check_ops.py");
}

static void test_rules_and_panels_name_real_metrics(void **state)
{
    (void)state;
    run_checker("check_metrics.py");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_prometheus_grafana),
        cmocka_unit_test(test_rules_and_panels_name_real_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
