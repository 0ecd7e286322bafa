/* app_: the main() boilerplate every binary shares: command line (--help, --version,
 * --print-config, --check-config, --once, --idle-exit), configuration + logger set-up, and the
 * shutdown flag set by SIGTERM/SIGINT (the project's only global mutable state besides the
 * logger's configuration).
 *
 * A producer's main:
 *
 *     static const app_spec_t spec = {
 *         .name = "ploomes-producer",
 *         .summary = "Polls Ploomes Contacts, Tasks and InteractionRecords and publishes ...",
 *         .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO | CONFIG_NEED_PLOOMES |
 *                  CONFIG_NEED_PRODUCER,
 *         .flags = APP_ALLOW_ONCE,
 *     };
 *     int main(int argc, char **argv)
 *     {
 *         app_t app;
 *         if (!app_init(&app, &spec, argc, argv))
 *             return app.exit_code;               // --help, --check-config, bad config ...
 *         int rc = run(&app.cfg, &app.cli);       // loops while (!app_stop_requested())
 *         app_free(&app);
 *         return rc;
 *     }
 *
 * Ownership: app_t owns its config_t (app_free() frees it). app_cli_t points into argv.
 * Thread-safety: app_stop_requested()/app_request_stop() are async-signal-safe and may be used
 * from any thread; app_init()/app_free() belong to the main thread.
 */
#ifndef PIPELINE_APP_H
#define PIPELINE_APP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* app_spec_t.flags */
#define APP_ALLOW_ONCE       (1u << 0) /* --once accepted (producers) */
#define APP_ALLOW_IDLE_EXIT  (1u << 1) /* --idle-exit SECONDS accepted (workers) */
#define APP_ALLOW_ARGS       (1u << 2) /* unknown options and positional arguments are not
                                          errors: they land in app_cli_t.args (tools with
                                          subcommands, e.g. pipeline-dlq) */

/* What a binary is. Static, owned by the binary. */
typedef struct {
    const char *name;       /* binary name: bin= in logs, consumer-group suffix, --version */
    const char *summary;    /* what it does: first paragraph of --help */
    const char *usage;      /* optional: usage line after the name, e.g. "[options] list|show" */
    const char *options_help; /* optional: extra option lines for --help (APP_ALLOW_ARGS) */
    unsigned needs;         /* CONFIG_NEED_* bits */
    unsigned flags;         /* APP_ALLOW_* bits */
} app_spec_t;

typedef struct {
    bool help, version, print_config, check_config;
    bool once;               /* --once given */
    int64_t idle_exit_ms;    /* --idle-exit SECONDS in ms; -1 when not given */
    int argc_rest;           /* with APP_ALLOW_ARGS: extra arguments, in order */
    char **args;             /* points into argv (never NULL after a successful parse) */
} app_cli_t;

/* Result of app_cli_parse(). */
typedef enum {
    APP_CONTINUE = 0, /* go on (look at out->help/version/print_config/check_config) */
    APP_EXIT = 1      /* stop now and return *exit_code (usage error: message already printed) */
} app_next_t;

/* Parses argv. Options: --help/-h, --version/-V, --print-config, --check-config, and with the
 * spec's permission --once, --idle-exit SECONDS (also --idle-exit=SECONDS; 1..86400*365).
 * "--" ends options. An unknown option, a missing or bad value, or a positional argument
 * without APP_ALLOW_ARGS prints "<name>: <problem>; try --help" to err and returns APP_EXIT
 * with *exit_code = CONFIG_EXIT_USAGE. --help and --version are NOT printed here (see
 * app_print_help()); they only set the flags. out is zeroed first; out->args is allocated
 * (free with app_cli_free()). */
app_next_t app_cli_parse(int argc, char **argv, const app_spec_t *spec, app_cli_t *out,
                         int *exit_code, FILE *err);

/* Frees what app_cli_parse() allocated. Safe on a zeroed struct. */
void app_cli_free(app_cli_t *cli);

/* --help text: summary, usage, options (only those the spec allows), environment variables
 * (config_describe(spec->needs)) and the exit codes. */
void app_print_help(const app_spec_t *spec, FILE *out);

/* Everything a running binary needs from start-up. */
typedef struct {
    const app_spec_t *spec;
    app_cli_t cli;
    config_t cfg;
    int exit_code; /* meaningful when app_init() returned false */
} app_t;

/* Parses the command line; handles --help and --version (stdout, exit 0); loads the
 * configuration (config_load(spec->needs)); sets up the logger (log_init(spec->name,
 * LOG_LEVEL)); handles --print-config (stdout; problems on stderr; exit 0, or 2 when the
 * config has problems) and --check-config (every problem on stderr, exit 2; "config ok" on
 * stdout, exit 0); on any config problem otherwise logs each one at error level and exits 2.
 * Then installs the signal handlers (app_install_signals()) and logs event=start.
 * Returns true when the binary should run (app->cfg and app->cli are valid; call app_free()
 * at the end); false when main() must return app->exit_code (everything already freed). */
bool app_init(app_t *app, const app_spec_t *spec, int argc, char **argv);

/* Same with explicit streams for the human-readable output (tests). */
bool app_init_io(app_t *app, const app_spec_t *spec, int argc, char **argv, FILE *out,
                 FILE *err);

/* Frees the config and the CLI. Safe to call twice. */
void app_free(app_t *app);

/* Installs SIGTERM and SIGINT handlers (sigaction, no SA_RESTART so blocking calls wake up
 * with EINTR) that set the shutdown flag, and ignores SIGPIPE (a peer closing a socket must
 * not kill the process). Returns 0, or -1 when sigaction fails. */
int app_install_signals(void);

/* True once SIGTERM/SIGINT arrived or app_request_stop() was called. */
bool app_stop_requested(void);

/* Sets the shutdown flag (e.g. after a fatal error in another thread). */
void app_request_stop(void);

/* Clears the flag (tests). */
void app_reset_stop(void);

/* Sleeps up to ms milliseconds in slices of at most 100 ms, returning early when a stop is
 * requested. Returns true when the full time elapsed, false when interrupted by a stop. */
bool app_sleep_ms(int64_t ms);

#endif
