/* bench_cli: the bench tools' command line. See bench_cli.h. */
#include "bench_cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* --uri, built in: every bench tool works in a database of its own on that server */
static bench_cli_opt_t uri_option(const bench_cli_t *cli)
{
    return (bench_cli_opt_t){
        .name = "--uri", .arg = "URI", .str = cli->uri,
        .help = "MongoDB (default: $MONGODB_URI); a fresh database is used and\n"
                "dropped afterwards"};
}

bool bench_cli_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out)
{
    if (!text || !text[0])
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "--name ARG" as the usage shows it: its length */
static size_t flag_width(const bench_cli_opt_t *o)
{
    return strlen(o->name) + (o->arg && o->arg[0] ? 1 + strlen(o->arg) : 0);
}

static void print_option(FILE *f, const bench_cli_opt_t *o, int column)
{
    int used = fprintf(f, "  %s%s%s", o->name, o->arg && o->arg[0] ? " " : "",
                       o->arg ? o->arg : "");
    if (used < 0)
        return; /* f failed: nothing more gets through */
    fprintf(f, "%*s", used < column ? column - used : 1, "");
    /* each further line of the help starts in the same column */
    const char *p = o->help ? o->help : "";
    for (;;) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "%.*s\n", (int)n, p);
        p += n;
        if (*p == '\0' || *++p == '\0')
            break;
        fprintf(f, "%*s", column, "");
    }
}

void bench_cli_usage(const bench_cli_t *cli, FILE *f)
{
    const bench_cli_opt_t uri = uri_option(cli);
    const bench_cli_opt_t help = {.name = "--help", .help = "this text"};
    size_t widest = flag_width(&uri);
    if (flag_width(&help) > widest)
        widest = flag_width(&help);
    for (size_t i = 0; i < cli->n_opts; i++) {
        size_t w = flag_width(&cli->opts[i]);
        if (w > widest)
            widest = w;
    }
    int column = (int)(2 + widest + 4);
    fprintf(f, "Usage: %s [options]\n%s", cli->prog, cli->about ? cli->about : "");
    print_option(f, &uri, column);
    for (size_t i = 0; i < cli->n_opts; i++)
        print_option(f, &cli->opts[i], column);
    print_option(f, &help, column);
    fputs(cli->output ? cli->output : "", f);
}

static const bench_cli_opt_t *find_option(const bench_cli_t *cli, const bench_cli_opt_t *uri,
                                          const char *name)
{
    if (strcmp(uri->name, name) == 0)
        return uri;
    for (size_t i = 0; i < cli->n_opts; i++)
        if (strcmp(cli->opts[i].name, name) == 0)
            return &cli->opts[i];
    return NULL;
}

/* Stores `value` where o says; false when it does not fit o (missing, not a number in range) */
static bool store_value(const bench_cli_opt_t *o, const char *value)
{
    if (!value)
        return false;
    if (o->str) {
        *o->str = value;
        return true;
    }
    int64_t x = 0;
    if (!bench_cli_parse_i64(value, o->min, o->max, &x))
        return false;
    if (o->i64) {
        *o->i64 = x;
        return true;
    }
    if (o->i32 && x >= INT_MIN && x <= INT_MAX) {
        *o->i32 = (int)x;
        return true;
    }
    return false;
}

bench_cli_result_t bench_cli_parse(const bench_cli_t *cli, int argc, char **argv, FILE *out,
                                   FILE *errf)
{
    const bench_cli_opt_t uri = uri_option(cli);
    *cli->uri = getenv("MONGODB_URI");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bench_cli_usage(cli, out);
            return BENCH_CLI_HELP;
        }
        const bench_cli_opt_t *o = find_option(cli, &uri, a);
        if (!o || !store_value(o, i + 1 < argc ? argv[i + 1] : NULL)) {
            fprintf(errf, "%s: bad or incomplete option '%s'\n", cli->prog, a);
            bench_cli_usage(cli, errf);
            return BENCH_CLI_BAD;
        }
        i++; /* the value */
    }
    if (!*cli->uri || !(*cli->uri)[0]) {
        fprintf(errf, "%s: no MongoDB: set MONGODB_URI or pass --uri\n", cli->prog);
        return BENCH_CLI_BAD;
    }
    return BENCH_CLI_RUN;
}
