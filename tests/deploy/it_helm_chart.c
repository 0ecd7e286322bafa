/* it_helm_chart: the Helm chart deploy/helm/ploomes-milvus-sync checked without a cluster
 * (issue 15): tests/deploy/check_chart.py runs `helm lint` and `helm template` with the default
 * values, every feature on and each account file of deploy/helm/examples/, and checks the
 * rendered manifests against the built binaries (--help, --print-config), the worker sources
 * (topics), the Dockerfile (image) and config/ (alert rules, dashboard, pipeline.env).
 * helm is the one scripts/deps.sh builds into .cache/bin/helm (PIPELINE_HELM overrides it).
 * Integration label: it runs the built binaries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testenv.h"

static void test_chart_lint_template_and_manifests(void **state)
{
    (void)state;
    const char *src = testenv_require("PIPELINE_SOURCE_DIR");
    const char *bin = testenv_require("PIPELINE_BIN_DIR");
    char helm[2048];
    const char *h = getenv("PIPELINE_HELM");
    const char *cache = getenv("PIPELINE_CACHE_DIR");
    int n;
    if (h && *h)
        n = snprintf(helm, sizeof helm, "%s", h);
    else if (cache && *cache)
        n = snprintf(helm, sizeof helm, "%s/bin/helm", cache);
    else
        n = snprintf(helm, sizeof helm, "%s/.cache/bin/helm", src);
    assert_true(n > 0 && (size_t)n < sizeof helm);

    char cmd[8192];
    n = snprintf(cmd, sizeof cmd, "python3 '%s/tests/deploy/check_chart.py' '%s' '%s' '%s'", src,
                 src, bin, helm);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int rc = system(cmd);
    assert_true(rc != -1 && WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chart_lint_template_and_manifests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
