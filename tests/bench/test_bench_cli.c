/* bench_cli_: the bench tools' shared command line. The number parser's table of accepted and
 * refused texts; argv read against an option table (string, 64-bit and int values, ranges,
 * order, --help/-h); the built-in --uri ($MONGODB_URI by default, required); the usage text to
 * the byte (the column and the continued lines); and what a bad option prints and where. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench_cli.h"

static const struct {
    const char *text;
    int64_t min, max;
    int ok;
    int64_t value;
} NUMBERS[] = {
    {"5", 1, 256, 1, 5},
    {"1", 1, 256, 1, 1},
    {"256", 1, 256, 1, 256},
    {"-1", -1, 10, 1, -1},
    {"9223372036854775807", 0, INT64_MAX, 1, INT64_MAX},
    {"0", 1, 256, 0, 0},                    /* below min */
    {"257", 1, 256, 0, 0},                  /* above max */
    {"-2", -1, 10, 0, 0},                   /* below a negative min */
    {"abc", 1, 256, 0, 0},                  /* not a number */
    {"12x", 1, 256, 0, 0},                  /* trailing characters */
    {"1.5", 1, 256, 0, 0},                  /* not whole */
    {"", 1, 256, 0, 0},                     /* empty */
    {"99999999999999999999", 0, INT64_MAX, 0, 0}, /* overflow */
    {"-99999999999999999999", INT64_MIN, 0, 0, 0},
};

static void test_parse_i64_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof NUMBERS / sizeof NUMBERS[0]; i++) {
        int64_t out = 4242;
        bool ok = bench_cli_parse_i64(NUMBERS[i].text, NUMBERS[i].min, NUMBERS[i].max, &out);
        if (ok != (NUMBERS[i].ok != 0))
            fail_msg("'%s' in [%lld, %lld]: expected %s", NUMBERS[i].text,
                     (long long)NUMBERS[i].min, (long long)NUMBERS[i].max,
                     NUMBERS[i].ok ? "accepted" : "refused");
        assert_int_equal(out, NUMBERS[i].ok ? NUMBERS[i].value : 4242); /* refused: untouched */
    }
    int64_t out = 7;
    assert_false(bench_cli_parse_i64(NULL, 0, 10, &out));
    assert_int_equal(out, 7);
}

/* ---- a tool's table ---------------------------------------------------------------------- */

typedef struct {
    const char *uri;
    int64_t seconds;
    int threads;
    int64_t spacing;
} values_t;

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
} sink_t;

typedef struct {
    values_t v;
    bench_cli_opt_t opts[3];
    bench_cli_t cli;
    sink_t out, err;
} fixture_t;

static int teardown(void **state);

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->v = (values_t){.uri = "overwritten", .seconds = 10, .threads = 1, .spacing = 0};
    const bench_cli_opt_t opts[3] = {
        {.name = "--seconds", .arg = "S", .i64 = &fx->v.seconds, .min = 1, .max = 3600,
         .help = "duration (default 10)"},
        {.name = "--threads", .arg = "T", .i32 = &fx->v.threads, .min = 1, .max = INT64_MAX,
         .help = "threads (default 1)"},
        {.name = "--spacing-ms", .arg = "S", .i64 = &fx->v.spacing, .min = -1, .max = 1000,
         .help = "least time between\ngrants\nin ms"},
    };
    memcpy(fx->opts, opts, sizeof opts);
    fx->cli = (bench_cli_t){.prog = "x-bench",
                            .about = "Measures x.\n",
                            .output = "Output: one JSON line.\n",
                            .uri = &fx->v.uri,
                            .opts = fx->opts,
                            .n_opts = 3};
    fx->out.f = open_memstream(&fx->out.buf, &fx->out.len);
    fx->err.f = open_memstream(&fx->err.buf, &fx->err.len);
    if (!fx->out.f || !fx->err.f || setenv("MONGODB_URI", "mongodb://env/db", 1) != 0) {
        void *own = fx; /* cmocka runs no teardown after a failed setup */
        teardown(&own);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx->out.f)
        fclose(fx->out.f);
    if (fx->err.f)
        fclose(fx->err.f);
    free(fx->out.buf);
    free(fx->err.buf);
    free(fx);
    return 0;
}

/* empties a sink: a fresh stream */
static void sink_reset(sink_t *s)
{
    assert_int_equal(fclose(s->f), 0);
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
    s->f = open_memstream(&s->buf, &s->len);
    assert_non_null(s->f);
}

static const char *text_of(sink_t *s)
{
    assert_int_equal(fflush(s->f), 0);
    return s->buf ? s->buf : "";
}

static bench_cli_result_t parse(fixture_t *fx, int argc, const char *const *args)
{
    char *argv[16];
    assert_true(argc < 16);
    argv[0] = (char *)"x-bench";
    for (int i = 0; i < argc; i++)
        argv[i + 1] = (char *)args[i];
    return bench_cli_parse(&fx->cli, argc + 1, argv, fx->out.f, fx->err.f);
}

/* the usage, byte for byte: the help column is 4 past the widest "--name ARG" (here
 * "--spacing-ms S", 14 wide: column 20), continued lines start in it */
static const char USAGE[] =
    "Usage: x-bench [options]\n"
    "Measures x.\n"
    "  --uri URI         MongoDB (default: $MONGODB_URI); a fresh database is used and\n"
    "                    dropped afterwards\n"
    "  --seconds S       duration (default 10)\n"
    "  --threads T       threads (default 1)\n"
    "  --spacing-ms S    least time between\n"
    "                    grants\n"
    "                    in ms\n"
    "  --help            this text\n"
    "Output: one JSON line.\n";

static void test_values_stored(void **state)
{
    fixture_t *fx = *state;
    const char *args[] = {"--threads", "32", "--uri",        "mongodb://h/db",
                          "--seconds", "5",  "--spacing-ms", "-1"};
    assert_int_equal(parse(fx, 8, args), BENCH_CLI_RUN);
    assert_string_equal(fx->v.uri, "mongodb://h/db");
    assert_ptr_equal(fx->v.uri, args[3]); /* points into argv, not copied */
    assert_int_equal(fx->v.threads, 32);
    assert_int_equal(fx->v.seconds, 5);
    assert_int_equal(fx->v.spacing, -1);
    assert_string_equal(text_of(&fx->out), "");
    assert_string_equal(text_of(&fx->err), "");
}

static void test_defaults_and_uri(void **state)
{
    fixture_t *fx = *state;
    const char *args[] = {"--uri", "mongodb://arg/db"};
    assert_int_equal(parse(fx, 0, args), BENCH_CLI_RUN); /* nothing given */
    assert_string_equal(fx->v.uri, "mongodb://env/db"); /* $MONGODB_URI */
    assert_int_equal(fx->v.seconds, 10);
    assert_int_equal(fx->v.threads, 1);
    assert_int_equal(fx->v.spacing, 0);
    assert_int_equal(parse(fx, 2, args), BENCH_CLI_RUN); /* --uri wins */
    assert_string_equal(fx->v.uri, "mongodb://arg/db");
    assert_int_equal(unsetenv("MONGODB_URI"), 0);
    assert_int_equal(parse(fx, 2, args), BENCH_CLI_RUN); /* --uri alone */
    assert_string_equal(text_of(&fx->out), "");
    assert_string_equal(text_of(&fx->err), "");
}

/* no URI at all, or an empty one: the reason only, no usage, exit status 2 */
static void test_no_uri(void **state)
{
    fixture_t *fx = *state;
    static const char NO_URI[] = "x-bench: no MongoDB: set MONGODB_URI or pass --uri\n";
    const char *empty[] = {"--seconds", "3", "--uri", ""};
    assert_int_equal(parse(fx, 4, empty), BENCH_CLI_BAD); /* even with $MONGODB_URI set */
    assert_string_equal(text_of(&fx->err), NO_URI);
    assert_int_equal(fx->v.seconds, 3);

    sink_reset(&fx->err);
    assert_int_equal(unsetenv("MONGODB_URI"), 0);
    assert_int_equal(parse(fx, 2, empty), BENCH_CLI_BAD);
    assert_null(fx->v.uri);
    assert_string_equal(text_of(&fx->err), NO_URI);
    assert_string_equal(text_of(&fx->out), "");

    /* --help needs no URI */
    const char *help[] = {"--help"};
    assert_int_equal(parse(fx, 1, help), BENCH_CLI_HELP);
    assert_int_equal(BENCH_CLI_HELP, 0); /* the values are main()'s exit status */
    assert_int_equal(BENCH_CLI_BAD, 2);
}

static void test_help_prints_usage(void **state)
{
    fixture_t *fx = *state;
    const char *help[] = {"--seconds", "7", "--help", "--bogus"};
    assert_int_equal(parse(fx, 4, help), BENCH_CLI_HELP); /* stops at --help */
    assert_string_equal(text_of(&fx->out), USAGE);
    assert_string_equal(text_of(&fx->err), "");
    assert_int_equal(fx->v.seconds, 7);
}

static void test_short_help(void **state)
{
    fixture_t *fx = *state;
    const char *help[] = {"-h"};
    assert_int_equal(parse(fx, 1, help), BENCH_CLI_HELP);
    assert_string_equal(text_of(&fx->out), USAGE);
}

/* each bad argv: the option the error names */
static const struct {
    int argc;
    const char *args[4];
    const char *named;
} BAD[] = {
    {1, {"--bogus"}, "--bogus"},                 /* not in the table */
    {1, {"--seconds"}, "--seconds"},             /* no value */
    {1, {"--uri"}, "--uri"},                     /* no value for a string */
    {2, {"--seconds", "0"}, "--seconds"},        /* below min */
    {2, {"--seconds", "3601"}, "--seconds"},     /* above max */
    {2, {"--seconds", "ten"}, "--seconds"},      /* not a number */
    {2, {"--spacing-ms", "-2"}, "--spacing-ms"}, /* below a negative min */
    {2, {"--threads", "2147483648"}, "--threads"}, /* in range, beyond an int */
    {3, {"--seconds", "5", "extra"}, "extra"},   /* a stray word */
    {2, {"--help=1", "x"}, "--help=1"},
    {3, {"--bogus", "1", "--help"}, "--bogus"},  /* the first problem wins over a later --help */
};

static void test_bad_options(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        sink_reset(&fx->err);
        fx->v.threads = 1;
        assert_int_equal(parse(fx, BAD[i].argc, BAD[i].args), BENCH_CLI_BAD);
        char expected[2048];
        int n = snprintf(expected, sizeof expected, "x-bench: bad or incomplete option '%s'\n%s",
                         BAD[i].named, USAGE);
        assert_true(n > 0 && (size_t)n < sizeof expected);
        const char *got = text_of(&fx->err);
        if (strcmp(got, expected) != 0)
            fail_msg("case %zu: stderr was:\n%s", i, got);
        assert_string_equal(text_of(&fx->out), ""); /* nothing on stdout */
        assert_int_equal(fx->v.threads, 1);         /* a refused int is not stored */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_i64_table),
        cmocka_unit_test_setup_teardown(test_values_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_prints_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_short_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
