/* it_sim_bind: `--bind ADDRESS` (docker-compose's sandbox runs the simulators on 0.0.0.0 inside
 * their containers): a simulator bound to 0.0.0.0 answers on the loopback address, with its
 * auth; an address that is not numeric IPv4 is refused at start (exit 1, named). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "simproc.h"
#include "testenv.h"

static void test_bind_any_answers_on_loopback(void **state)
{
    (void)state;
    char err[512];
    simproc *p = simproc_start("milvus-sim",
                               (const char *const[]){"--bind", "0.0.0.0", "--port", "0",
                                                     "--token", "tok-bind", NULL},
                               err, sizeof err);
    assert_non_null(p);
    char *body = NULL;
    long status = 0;
    const char *const headers[] = {"Authorization: tok-bind", NULL};
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca?status=3", headers, NULL,
                                     &status, &body, NULL), 0);
    assert_int_equal(status, 200);
    assert_non_null(strstr(body, "lista"));
    free(body);
    assert_int_equal(simproc_stop(p), 0);
}

static void test_bad_bind_is_refused(void **state)
{
    (void)state;
    char log[256], err[512];
    snprintf(log, sizeof log, "/tmp/it_sim_bind-%d.log", (int)getpid());
    pid_t pid = simproc_spawn("ploomes-sim",
                              (const char *const[]){"--bind", "localhost", "--port", "0",
                                                    "--user-key", "k", NULL},
                              NULL, log, err, sizeof err);
    assert_true(pid > 0);
    assert_int_equal(simproc_wait(pid, 30000), 1);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    unlink(log);
    assert_non_null(strstr(line, "--bind localhost is not a numeric IPv4 address"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_any_answers_on_loopback),
        cmocka_unit_test(test_bad_bind_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
