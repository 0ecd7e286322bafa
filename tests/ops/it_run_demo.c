/* it_run_demo: the README's main command, unattended (issue 11). `scripts/run.sh
 * --demo-seconds 30` with the test's binaries, Kafka and MongoDB: it exits 0 only when the demo
 * data reached the Milvus simulator as tickets; afterwards no process it started is alive
 * (checked by pid, from its pids file), and none of their logs holds a sanitizer report. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testenv.h"

static void test_demo_delivers_tickets_and_stops_cleanly(void **state)
{
    (void)state;
    const char *src = testenv_require("PIPELINE_SOURCE_DIR");
    const char *bin = testenv_require("PIPELINE_BIN_DIR");
    testenv_require("KAFKA_BOOTSTRAP_SERVERS");
    testenv_require("MONGODB_URI");
    char out[256], cmd[2048];
    snprintf(out, sizeof out, "/tmp/it_run_demo-%d.out", (int)getpid());
    /* A developer's real credentials must not turn the demo into a real run. */
    int n = snprintf(cmd, sizeof cmd,
                     "env -u PLOOMES_USER_KEY -u MILVUS_TOKEN -u PLOOMES_USER_KEY_FILE "
                     "-u MILVUS_TOKEN_FILE -u TOPIC_PREFIX '%s/scripts/run.sh' --demo-seconds 30 "
                     "--bin-dir '%s' --no-deps >'%s' 2>&1",
                     src, bin, out);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
    int rc = system(cmd);
    char *text = testenv_read_file(out);
    assert_non_null(text);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
        fprintf(stderr, "run.sh output:\n%s\n", text);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
    long tickets = -1;
    const char *sum = strstr(text, "demo summary: ");
    assert_non_null(sum);
    tickets = strtol(sum + strlen("demo summary: "), NULL, 10);
    assert_true(tickets > 0);

    /* The run's folder: its pids and logs. */
    const char *logs = NULL;
    for (const char *p = strstr(text, "logs: "); p; p = strstr(p + 1, "logs: "))
        logs = p + strlen("logs: ");
    assert_non_null(logs);
    char dir[512];
    size_t len = strcspn(logs, " \n");
    assert_true(len < sizeof dir);
    memcpy(dir, logs, len);
    dir[len] = '\0';
    char path[640];
    snprintf(path, sizeof path, "%s/pids", dir);
    char *pids = testenv_read_file(path);
    assert_non_null(pids);
    int started = 0;
    for (char *line = strtok(pids, "\n"); line; line = strtok(NULL, "\n")) {
        long pid = strtol(line, NULL, 10);
        assert_true(pid > 1);
        started++;
        errno = 0;
        assert_int_equal(kill((pid_t)pid, 0), -1); /* gone */
        assert_int_equal(errno, ESRCH);
        const char *name = strchr(line, ' ');
        assert_non_null(name);
        snprintf(path, sizeof path, "%s/%s.log", dir, name + 1);
        char *log = testenv_read_file(path);
        assert_non_null(log);
        assert_null(strstr(log, "ERROR: AddressSanitizer"));
        assert_null(strstr(log, "ERROR: LeakSanitizer"));
        assert_null(strstr(log, "runtime error:"));
        free(log);
    }
    assert_int_equal(started, 9); /* 2 simulators, 2 producers, 4 workers, pipeline-status */
    free(pids);
    free(text);
    unlink(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_delivers_tickets_and_stops_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
