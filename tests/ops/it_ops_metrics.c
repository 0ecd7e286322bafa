/* it_ops_metrics: every metric that an alert rule or a Grafana panel names exists in a running
 * binary's /metrics (issue 11): tests/ops/check_metrics.py starts both simulators, both
 * producers, the four workers and pipeline-status --serve against the test's Kafka and MongoDB,
 * scrapes them, and stops them with SIGTERM (each must exit 0). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testenv.h"

static void test_rules_and_panels_name_real_metrics(void **state)
{
    (void)state;
    const char *src = testenv_require("PIPELINE_SOURCE_DIR");
    const char *bin = testenv_require("PIPELINE_BIN_DIR");
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "python3 '%s/tests/ops/check_metrics.py' '%s' '%s'", src, src,
                     bin);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_and_panels_name_real_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
