/* app_: command line table, --help contents, app_init paths (help, version, check/print-config,
 * bad config, good config), signal flag and interruptible sleep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "app.h"
#include "log.h"

static const app_spec_t PRODUCER = {
    .name = "test-producer",
    .summary = "Polls a thing and publishes it.",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_PLOOMES | CONFIG_NEED_PRODUCER,
    .flags = APP_ALLOW_ONCE,
};
static const app_spec_t WORKER = {
    .name = "test-worker",
    .summary = "Consumes and delivers.",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MILVUS | CONFIG_NEED_WORKER,
    .flags = APP_ALLOW_IDLE_EXIT,
};
static const app_spec_t TOOL = {
    .name = "test-tool",
    .summary = "Has subcommands.",
    .usage = "[options] list|show",
    .options_help = "  --force             do it twice\n",
    .needs = 0,
    .flags = APP_ALLOW_ARGS,
};

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} sink_t;

static void sink_open(sink_t *s)
{
    s->buf = NULL;
    s->len = 0;
    s->f = open_memstream(&s->buf, &s->len);
    assert_non_null(s->f);
}

static const char *sink_text(sink_t *s)
{
    fflush(s->f);
    return s->buf ? s->buf : "";
}

static void sink_close(sink_t *s)
{
    fclose(s->f);
    free(s->buf);
}

/* ---- app_cli_parse table ---------------------------------------------------------------------- */

typedef struct {
    const app_spec_t *spec;
    const char *args[5]; /* after argv[0] */
    app_next_t next;
    int exit_code;
    const char *err_has; /* substring of the error text, or NULL */
    bool once;
    int64_t idle_ms;
    bool help, version, print_config, check_config;
    int rest;
} cli_case_t;

static const cli_case_t CLI_CASES[] = {
    {&PRODUCER, {NULL}, APP_CONTINUE, 0, NULL, false, -1, false, false, false, false, 0},
    {&PRODUCER, {"--once"}, APP_CONTINUE, 0, NULL, true, -1, false, false, false, false, 0},
    {&PRODUCER, {"--help"}, APP_CONTINUE, 0, NULL, false, -1, true, false, false, false, 0},
    {&PRODUCER, {"-h"}, APP_CONTINUE, 0, NULL, false, -1, true, false, false, false, 0},
    {&PRODUCER, {"--version"}, APP_CONTINUE, 0, NULL, false, -1, false, true, false, false, 0},
    {&PRODUCER, {"--print-config", "--check-config"}, APP_CONTINUE, 0, NULL, false, -1, false,
     false, true, true, 0},
    {&PRODUCER, {"--idle-exit", "5"}, APP_EXIT, 2, "unknown option --idle-exit", false, -1, false,
     false, false, false, 0},
    {&PRODUCER, {"--bogus"}, APP_EXIT, 2, "unknown option --bogus; try --help", false, -1, false,
     false, false, false, 0},
    {&PRODUCER, {"extra"}, APP_EXIT, 2, "unexpected argument extra", false, -1, false, false,
     false, false, 0},
    {&WORKER, {"--idle-exit", "5"}, APP_CONTINUE, 0, NULL, false, 5000, false, false, false, false,
     0},
    {&WORKER, {"--idle-exit=30"}, APP_CONTINUE, 0, NULL, false, 30000, false, false, false, false,
     0},
    {&WORKER, {"--idle-exit"}, APP_EXIT, 2, "--idle-exit needs SECONDS", false, -1, false, false,
     false, false, 0},
    {&WORKER, {"--idle-exit", "0"}, APP_EXIT, 2, "whole seconds", false, -1, false, false, false,
     false, 0},
    {&WORKER, {"--idle-exit", "abc"}, APP_EXIT, 2, "got abc", false, -1, false, false, false,
     false, 0},
    {&WORKER, {"--idle-exit=-3"}, APP_EXIT, 2, "whole seconds", false, -1, false, false, false,
     false, 0},
    {&WORKER, {"--idle-exit", "5x"}, APP_EXIT, 2, "whole seconds", false, -1, false, false, false,
     false, 0},
    {&WORKER, {"--once"}, APP_EXIT, 2, "unknown option --once", false, -1, false, false, false,
     false, 0},
    {&TOOL, {"list", "--force", "--help"}, APP_CONTINUE, 0, NULL, false, -1, true, false, false,
     false, 2},
    {&TOOL, {"--", "--help"}, APP_CONTINUE, 0, NULL, false, -1, false, false, false, false, 2},
};

static void test_cli_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CLI_CASES / sizeof CLI_CASES[0]; i++) {
        const cli_case_t *tc = &CLI_CASES[i];
        char *argv[8] = {(char *)tc->spec->name};
        int argc = 1;
        for (int k = 0; k < 5 && tc->args[k]; k++)
            argv[argc++] = (char *)tc->args[k];
        sink_t err;
        sink_open(&err);
        app_cli_t cli;
        int code = -1;
        app_next_t next = app_cli_parse(argc, argv, tc->spec, &cli, &code, err.f);
        const char *etext = sink_text(&err);
        if (next != tc->next || code != tc->exit_code)
            fail_msg("cli case %zu: next %d code %d err '%s'", i, next, code, etext);
        if (tc->err_has && !strstr(etext, tc->err_has))
            fail_msg("cli case %zu: error text '%s' lacks '%s'", i, etext, tc->err_has);
        if (!tc->err_has)
            assert_string_equal(etext, "");
        if (next == APP_CONTINUE) {
            assert_int_equal(cli.once, tc->once);
            assert_int_equal(cli.idle_exit_ms, tc->idle_ms);
            assert_int_equal(cli.help, tc->help);
            assert_int_equal(cli.version, tc->version);
            assert_int_equal(cli.print_config, tc->print_config);
            assert_int_equal(cli.check_config, tc->check_config);
            assert_int_equal(cli.argc_rest, tc->rest);
        }
        app_cli_free(&cli);
        sink_close(&err);
    }
}

static void test_cli_rest_order(void **state)
{
    (void)state;
    char *argv[] = {"t", "replay", "--from", "5", "--print-config", NULL};
    app_cli_t cli;
    int code;
    assert_int_equal(app_cli_parse(5, argv, &TOOL, &cli, &code, stderr), APP_CONTINUE);
    assert_int_equal(cli.argc_rest, 3);
    assert_string_equal(cli.args[0], "replay");
    assert_string_equal(cli.args[1], "--from");
    assert_string_equal(cli.args[2], "5");
    assert_true(cli.print_config);
    app_cli_free(&cli);
    app_cli_free(&cli);
}

static void test_help_text(void **state)
{
    (void)state;
    sink_t out;
    sink_open(&out);
    app_print_help(&PRODUCER, out.f);
    const char *t = sink_text(&out);
    assert_non_null(strstr(t, "Usage: test-producer [options]"));
    assert_non_null(strstr(t, "Polls a thing and publishes it."));
    assert_non_null(strstr(t, "  --once "));
    assert_null(strstr(t, "--idle-exit"));
    assert_non_null(strstr(t, "--check-config"));
    assert_non_null(strstr(t, "PLOOMES_USER_KEY"));
    assert_non_null(strstr(t, "KAFKA_BOOTSTRAP_SERVERS"));
    assert_null(strstr(t, "MILVUS_TOKEN"));
    assert_non_null(strstr(t, "Exit codes:"));
    assert_non_null(strstr(t, "3  a target API rejected the credentials"));
    sink_close(&out);

    sink_open(&out);
    app_print_help(&TOOL, out.f);
    t = sink_text(&out);
    assert_non_null(strstr(t, "Usage: test-tool [options] list|show"));
    assert_non_null(strstr(t, "--force"));
    assert_null(strstr(t, "  --once "));
    sink_close(&out);
}

/* ---- app_init ---------------------------------------------------------------------------------- */

static void clear_pipeline_env(void)
{
    static const char *const vars[] = {"KAFKA_BOOTSTRAP_SERVERS", "PLOOMES_USER_KEY",
                                       "MILVUS_TOKEN", "LOG_LEVEL", "TOPIC_PARTITIONS",
                                       "MONGODB_URI"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

typedef struct {
    bool ran;
    int code;
    char *out;
    char *err;
    char *log;
} init_result_t;

static init_result_t run_init(const app_spec_t *spec, int argc, char **argv)
{
    init_result_t r = {0};
    sink_t out, err;
    sink_open(&out);
    sink_open(&err);
    FILE *lf = tmpfile();
    assert_non_null(lf);
    log_set_fd(fileno(lf));
    app_t app;
    r.ran = app_init_io(&app, spec, argc, argv, out.f, err.f);
    r.code = app.exit_code;
    if (r.ran) {
        assert_non_null(app.cfg.problems == NULL ? "ok" : NULL);
        app_free(&app);
        app_free(&app);
    }
    log_set_fd(2);
    r.out = strdup(sink_text(&out));
    r.err = strdup(sink_text(&err));
    fseek(lf, 0, SEEK_END);
    long n = ftell(lf);
    rewind(lf);
    r.log = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(r.log, 1, (size_t)n, lf), (size_t)n);
    fclose(lf);
    sink_close(&out);
    sink_close(&err);
    return r;
}

static void free_result(init_result_t *r)
{
    free(r->out);
    free(r->err);
    free(r->log);
}

static void test_init_help_version(void **state)
{
    (void)state;
    clear_pipeline_env();
    char *a1[] = {"test-producer", "--help"};
    init_result_t r = run_init(&PRODUCER, 2, a1);
    assert_false(r.ran);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "Usage: test-producer"));
    free_result(&r);

    char *a2[] = {"test-producer", "--version"};
    r = run_init(&PRODUCER, 2, a2);
    assert_false(r.ran);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "test-producer " PIPELINE_VERSION "\n");
    free_result(&r);

    char *a3[] = {"test-producer", "--nope"};
    r = run_init(&PRODUCER, 2, a3);
    assert_false(r.ran);
    assert_int_equal(r.code, CONFIG_EXIT_USAGE);
    assert_non_null(strstr(r.err, "unknown option --nope"));
    free_result(&r);
}

static void test_init_check_config(void **state)
{
    (void)state;
    clear_pipeline_env();
    setenv("TOPIC_PARTITIONS", "zero", 1);
    char *argv[] = {"test-producer", "--check-config"};
    init_result_t r = run_init(&PRODUCER, 2, argv);
    assert_false(r.ran);
    assert_int_equal(r.code, CONFIG_EXIT_USAGE);
    /* Every problem at once: the bad value and both missing requirements. */
    assert_non_null(strstr(r.err, "TOPIC_PARTITIONS: got \"zero\""));
    assert_non_null(strstr(r.err, "KAFKA_BOOTSTRAP_SERVERS: not set"));
    assert_non_null(strstr(r.err, "PLOOMES_USER_KEY: not set"));
    assert_non_null(strstr(r.err, "3 configuration problems"));
    assert_null(strstr(r.out, "config ok"));
    free_result(&r);

    setenv("TOPIC_PARTITIONS", "4", 1);
    setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", 1);
    setenv("PLOOMES_USER_KEY", "app-SECRET-key-1", 1);
    r = run_init(&PRODUCER, 2, argv);
    assert_false(r.ran);
    assert_int_equal(r.code, 0);
    assert_string_equal(r.out, "config ok\n");
    free_result(&r);

    char *pargv[] = {"test-producer", "--print-config"};
    r = run_init(&PRODUCER, 2, pargv);
    assert_false(r.ran);
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "TOPIC_PARTITIONS=4  # env"));
    assert_non_null(strstr(r.out, "PLOOMES_USER_KEY=***  # env"));
    assert_null(strstr(r.out, "SECRET"));
    free_result(&r);
    clear_pipeline_env();
}

static void test_init_bad_config_logs_and_exits_2(void **state)
{
    (void)state;
    clear_pipeline_env();
    setenv("LOG_LEVEL", "loud", 1);
    setenv("PLOOMES_USER_KEY", "app-SECRET-key-2", 1);
    char *argv[] = {"test-producer", "--once"};
    init_result_t r = run_init(&PRODUCER, 2, argv);
    assert_false(r.ran);
    assert_int_equal(r.code, CONFIG_EXIT_USAGE);
    assert_non_null(strstr(r.log, "bin=test-producer event=config_invalid"));
    assert_non_null(strstr(r.log, "LOG_LEVEL"));
    assert_non_null(strstr(r.log, "KAFKA_BOOTSTRAP_SERVERS"));
    assert_non_null(strstr(r.log, "event=exit code=2"));
    assert_null(strstr(r.log, "SECRET"));
    free_result(&r);
    clear_pipeline_env();
}

static void test_init_ok(void **state)
{
    (void)state;
    clear_pipeline_env();
    setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", 1);
    setenv("MILVUS_TOKEN", "tok-SECRET-3", 1);
    setenv("LOG_LEVEL", "warn", 1);
    char *argv[] = {"test-worker", "--idle-exit", "2"};
    init_result_t r = run_init(&WORKER, 3, argv);
    assert_true(r.ran);
    /* LOG_LEVEL=warn was applied: the info start line is not written. */
    assert_null(strstr(r.log, "event=start"));
    free_result(&r);

    setenv("LOG_LEVEL", "info", 1);
    r = run_init(&WORKER, 3, argv);
    assert_true(r.ran);
    assert_non_null(strstr(r.log, "bin=test-worker event=start version=" PIPELINE_VERSION));
    free_result(&r);
    clear_pipeline_env();
    log_init("test_app", LOG_INFO);
}

/* ---- signals ------------------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_signals(void **state)
{
    (void)state;
    assert_int_equal(app_install_signals(), 0);
    app_reset_stop();
    assert_false(app_stop_requested());
    assert_int_equal(raise(SIGTERM), 0);
    assert_true(app_stop_requested());
    app_reset_stop();
    assert_int_equal(raise(SIGINT), 0);
    assert_true(app_stop_requested());
    app_reset_stop();
    assert_int_equal(raise(SIGPIPE), 0); /* ignored: we are still here */
    assert_false(app_stop_requested());
    app_request_stop();
    assert_true(app_stop_requested());
    app_reset_stop();
}

static void test_sleep(void **state)
{
    (void)state;
    app_reset_stop();
    int64_t t0 = now_ms();
    assert_true(app_sleep_ms(120));
    int64_t took = now_ms() - t0;
    assert_true(took >= 120);
    assert_true(took < 8000); /* generous: a loaded 2-core box under ASan oversleeps */

    app_request_stop();
    t0 = now_ms();
    assert_false(app_sleep_ms(30000));
    assert_true(now_ms() - t0 < 10000); /* at once, not after the 30 s asked for */
    app_reset_stop();
    assert_true(app_sleep_ms(0));
}

int main(void)
{
    /* The tests own the environment: nothing from the caller's shell may leak in. */
    clearenv();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_table),
        cmocka_unit_test(test_cli_rest_order),
        cmocka_unit_test(test_help_text),
        cmocka_unit_test(test_init_help_version),
        cmocka_unit_test(test_init_check_config),
        cmocka_unit_test(test_init_bad_config_logs_and_exits_2),
        cmocka_unit_test(test_init_ok),
        cmocka_unit_test(test_signals),
        cmocka_unit_test(test_sleep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
