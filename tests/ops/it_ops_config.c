/* it_ops_config: docker-compose.yml, the Prometheus config and alert rules, and what the
 * compose services run and set, checked without a Docker engine (issue 11): Debian's
 * docker-compose validates the file, promtool the Prometheus files, and tests/ops/check_ops.py
 * checks each service's binary exists and reads every variable the service sets. Integration
 * label: it runs the built binaries' --help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testenv.h"

static void test_compose_prometheus_grafana(void **state)
{
    (void)state;
    const char *src = testenv_require("PIPELINE_SOURCE_DIR");
    const char *bin = testenv_require("PIPELINE_BIN_DIR");
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "python3 '%s/tests/ops/check_ops.py' '%s' '%s'", src, src,
                     bin);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_prometheus_grafana),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
