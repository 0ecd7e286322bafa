/* bench_cli: the command line the bench/ tools share (store-bench, ratelimit-bench). A tool
 * describes its options in one table; bench_cli_parse() reads argv against it and
 * bench_cli_usage() prints the usage text built from the same table, so the two cannot drift.
 *
 * The rules (the same for every tool): each option takes one value, `--name VALUE`: a string
 * or a whole number within [min, max]. `--help` or `-h` prints the usage on `out` and stops.
 * Anything else — a name not in the table, a missing value, a number that is not whole or out
 * of range — prints "<prog>: bad or incomplete option '<what>'" (the option at fault) and the
 * usage on `errf`, and stops. Every tool works on a MongoDB: `--uri URI` is built in (listed
 * first), its default is $MONGODB_URI, and the tool does not run without one.
 *
 * Ownership: allocates nothing. The table, its texts and the FILEs stay the caller's; a string
 * value (and the URI) points into argv or the environment (valid as long as they are).
 * Thread-safety: not thread-safe (reads the environment); call it from main() before threads.
 */
#ifndef PIPELINE_BENCH_CLI_H
#define PIPELINE_BENCH_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A number as a string literal, for help texts: BENCH_CLI_STR(MAX_THREADS) -> "256". */
#define BENCH_CLI_STR_(x) #x
#define BENCH_CLI_STR(x) BENCH_CLI_STR_(x)

/* One option. Exactly one of str, i64, i32 is set: where the value goes. */
typedef struct {
    const char *name; /* "--threads" */
    const char *arg;  /* the value's name in the usage: "T" */
    const char *help; /* its usage text; a '\n' in it continues on the next line, aligned */
    const char **str; /* a string option (any text, even empty) */
    int64_t *i64;     /* a number option, 64 bits */
    int *i32;         /* a number option stored as int (a value beyond int is refused) */
    int64_t min, max; /* the range of a number option, inclusive */
} bench_cli_opt_t;

typedef struct {
    const char *prog;   /* "store-bench": the usage's first line and the errors' prefix */
    const char *about;  /* printed after "Usage: <prog> [options]\n" (ends in '\n') */
    const char *output; /* printed after the options and --help (ends in '\n') */
    const char **uri;   /* where the MongoDB URI goes: $MONGODB_URI, or --uri's value */
    const bench_cli_opt_t *opts; /* the tool's own options, in usage order after --uri */
    size_t n_opts;
} bench_cli_t;

/* What the caller does next; HELP and BAD are the exit status to return from main(). */
typedef enum {
    BENCH_CLI_RUN = -1, /* every option read and a URI given: run */
    BENCH_CLI_HELP = 0, /* the usage was printed on `out` */
    BENCH_CLI_BAD = 2   /* a bad option, or no URI: the reason (and for an option the usage)
                           was printed on `errf` */
} bench_cli_result_t;

/* True when `text` is a whole decimal number within [min, max] (strtoll's syntax: optional
 * leading white space and sign, nothing after the digits); then *out holds it. False for NULL,
 * "", trailing characters, overflow or out of range; *out is then left alone. */
bool bench_cli_parse_i64(const char *text, int64_t min, int64_t max, int64_t *out);

/* Prints on f the usage: "Usage: <prog> [options]", `about`, one line per option (--uri, then
 * the table's in order: "  --name ARG" and its help; every help text starts in one column,
 * four spaces after the widest "--name ARG"), the --help line, then `output`. */
void bench_cli_usage(const bench_cli_t *cli, FILE *f);

/* Sets *cli->uri to $MONGODB_URI (NULL when unset), then reads argv[1..argc) against --uri and
 * cli->opts, storing each value as it goes; stops at --help or at the first bad option (values
 * read before it stay stored). With every option read, a missing or empty URI prints
 * "<prog>: no MongoDB: set MONGODB_URI or pass --uri" on errf: BENCH_CLI_BAD. */
bench_cli_result_t bench_cli_parse(const bench_cli_t *cli, int argc, char **argv, FILE *out,
                                   FILE *errf);

#endif
