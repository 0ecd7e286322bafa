/* app_: command line, start-up and the shutdown flag shared by every binary. See app.h. */
#include "app.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef PIPELINE_VERSION
#define PIPELINE_VERSION "0.0.0"
#endif

/* The project's only global: set from signal handlers, read by every loop. */
static volatile sig_atomic_t app_stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    app_stop_flag = 1;
}

int app_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR and loops see the flag */
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -1;
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    if (sigaction(SIGPIPE, &ign, NULL) != 0)
        return -1;
    return 0;
}

bool app_stop_requested(void) { return app_stop_flag != 0; }
void app_request_stop(void) { app_stop_flag = 1; }
void app_reset_stop(void) { app_stop_flag = 0; }

bool app_sleep_ms(int64_t ms)
{
    if (ms > INT64_MAX / 1000000LL)
        ms = INT64_MAX / 1000000LL; /* ~292 years: keeps ms * 1e6 from overflowing */
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (app_stop_requested())
            return false;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        /* in nanoseconds: whole milliseconds truncated toward zero let a sleep end up to 1 ms
         * early whenever the nanosecond part had wrapped */
        int64_t elapsed_ns = (int64_t)(now.tv_sec - start.tv_sec) * 1000000000LL +
                             (int64_t)(now.tv_nsec - start.tv_nsec);
        int64_t left_ns = ms * 1000000LL - elapsed_ns;
        if (left_ns <= 0)
            return true;
        int64_t slice_ns = left_ns < 100000000LL ? left_ns : 100000000LL;
        struct timespec ts = {.tv_sec = (time_t)(slice_ns / 1000000000LL),
                              .tv_nsec = (long)(slice_ns % 1000000000LL)};
        nanosleep(&ts, NULL); /* EINTR is fine: the loop re-checks */
    }
}

/* ---- command line --------------------------------------------------------------------------- */

static app_next_t usage_error(const app_spec_t *spec, int *exit_code, FILE *err,
                              const char *what, const char *arg)
{
    fprintf(err, "%s: %s%s%s; try --help\n", spec->name, what, arg ? " " : "", arg ? arg : "");
    *exit_code = CONFIG_EXIT_USAGE;
    return APP_EXIT;
}

/* --idle-exit value: integer seconds 1..1 year. */
static int parse_seconds(const char *text, int64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || !end || *end != '\0' || v < 1 || v > 365LL * 86400)
        return -1;
    *out = (int64_t)v;
    return 0;
}

app_next_t app_cli_parse(int argc, char **argv, const app_spec_t *spec, app_cli_t *out,
                         int *exit_code, FILE *err)
{
    memset(out, 0, sizeof *out);
    out->idle_exit_ms = -1;
    *exit_code = CONFIG_EXIT_OK;
    out->args = calloc((size_t)(argc > 0 ? argc : 1), sizeof *out->args);
    if (!out->args) {
        fprintf(err, "%s: out of memory\n", spec->name);
        *exit_code = CONFIG_EXIT_FATAL;
        return APP_EXIT;
    }
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (!(spec->flags & APP_ALLOW_ARGS))
                return usage_error(spec, exit_code, err, "unexpected argument", a);
            out->args[out->argc_rest++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            if (spec->flags & APP_ALLOW_ARGS)
                out->args[out->argc_rest++] = argv[i];
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            out->help = true;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            out->version = true;
        } else if (strcmp(a, "--print-config") == 0) {
            out->print_config = true;
        } else if (strcmp(a, "--check-config") == 0) {
            out->check_config = true;
        } else if (strcmp(a, "--once") == 0 && (spec->flags & APP_ALLOW_ONCE)) {
            out->once = true;
        } else if ((strcmp(a, "--idle-exit") == 0 || strncmp(a, "--idle-exit=", 12) == 0) &&
                   (spec->flags & APP_ALLOW_IDLE_EXIT)) {
            const char *val;
            if (a[11] == '=') {
                val = a + 12;
            } else {
                if (i + 1 >= argc)
                    return usage_error(spec, exit_code, err, "--idle-exit needs SECONDS", NULL);
                val = argv[++i];
            }
            int64_t secs;
            if (parse_seconds(val, &secs) != 0)
                return usage_error(spec, exit_code, err,
                                   "--idle-exit expects whole seconds from 1 to 31536000, got",
                                   val);
            out->idle_exit_ms = secs * 1000;
        } else if (spec->flags & APP_ALLOW_ARGS) {
            out->args[out->argc_rest++] = argv[i];
        } else {
            return usage_error(spec, exit_code, err, "unknown option", a);
        }
    }
    return APP_CONTINUE;
}

void app_cli_free(app_cli_t *cli)
{
    if (!cli)
        return;
    free(cli->args);
    cli->args = NULL;
    cli->argc_rest = 0;
}

void app_print_help(const app_spec_t *spec, FILE *out)
{
    fprintf(out, "Usage: %s %s\n\n", spec->name, spec->usage ? spec->usage : "[options]");
    if (spec->summary)
        fprintf(out, "%s\n\n", spec->summary);
    fprintf(out, "Options:\n");
    fprintf(out, "  --help, -h          show this help and exit\n");
    fprintf(out, "  --version, -V       show the version and exit\n");
    fprintf(out, "  --print-config      print every setting with its source (secrets masked)\n");
    fprintf(out, "  --check-config      validate the configuration, report every problem, "
                 "exit 0 or 2\n");
    if (spec->flags & APP_ALLOW_ONCE)
        fprintf(out, "  --once              one full pass, then exit (1 if a page failed)\n");
    if (spec->flags & APP_ALLOW_IDLE_EXIT)
        fprintf(out, "  --idle-exit SECONDS exit 0 once caught up and idle for SECONDS\n");
    if (spec->options_help)
        fprintf(out, "%s", spec->options_help);
    fprintf(out, "\n");
    config_describe(spec->needs, out);
    fprintf(out, "\nExit codes:\n"
                 "  0  done\n"
                 "  1  fatal runtime error (Kafka, MongoDB, a failed page with --once)\n"
                 "  2  bad usage or configuration\n"
                 "  3  a target API rejected the credentials\n");
}

/* ---- start-up ------------------------------------------------------------------------------- */

bool app_init_io(app_t *app, const app_spec_t *spec, int argc, char **argv, FILE *out,
                 FILE *err)
{
    memset(app, 0, sizeof *app);
    app->spec = spec;
    log_init(spec->name, LOG_INFO);

    if (app_cli_parse(argc, argv, spec, &app->cli, &app->exit_code, err) == APP_EXIT)
        goto stop;
    if (app->cli.help) {
        app_print_help(spec, out);
        app->exit_code = CONFIG_EXIT_OK;
        goto stop;
    }
    if (app->cli.version) {
        fprintf(out, "%s %s\n", spec->name, PIPELINE_VERSION);
        app->exit_code = CONFIG_EXIT_OK;
        goto stop;
    }

    int problems = config_load(&app->cfg, spec->needs);
    if (problems < 0) {
        fprintf(err, "%s: out of memory while loading the configuration\n", spec->name);
        app->exit_code = CONFIG_EXIT_FATAL;
        goto stop;
    }
    log_init(spec->name, app->cfg.log_level);

    if (app->cli.print_config || app->cli.check_config) {
        if (app->cli.print_config)
            config_print(&app->cfg, out);
        config_print_problems(&app->cfg, err);
        for (size_t i = 0; i < app->cfg.warning_count; i++)
            fprintf(err, "config warning: %s\n", app->cfg.warnings[i]);
        if (problems > 0) {
            fprintf(err, "%s: %d configuration problem%s\n", spec->name, problems,
                    problems == 1 ? "" : "s");
            app->exit_code = CONFIG_EXIT_USAGE;
        } else {
            if (app->cli.check_config)
                fprintf(out, "config ok\n");
            app->exit_code = CONFIG_EXIT_OK;
        }
        goto stop;
    }

    for (size_t i = 0; i < app->cfg.warning_count; i++) {
        char q[512];
        log_msg(LOG_WARN, "config_warning", "detail=%s",
                log_quote(q, sizeof q, app->cfg.warnings[i]));
    }
    if (problems > 0) {
        for (size_t i = 0; i < app->cfg.problem_count; i++) {
            char q[512];
            log_msg(LOG_ERROR, "config_invalid", "problem=%s",
                    log_quote(q, sizeof q, app->cfg.problems[i]));
        }
        log_msg(LOG_ERROR, "exit", "code=%d reason=config problems=%d", CONFIG_EXIT_USAGE,
                problems);
        app->exit_code = CONFIG_EXIT_USAGE;
        goto stop;
    }

    if (app_install_signals() != 0) {
        log_msg(LOG_ERROR, "exit", "code=%d reason=sigaction errno=%d", CONFIG_EXIT_FATAL, errno);
        app->exit_code = CONFIG_EXIT_FATAL;
        goto stop;
    }
    log_msg(LOG_INFO, "start", "version=%s pid=%ld dry_run=%d", PIPELINE_VERSION, (long)getpid(),
            app->cfg.dry_run ? 1 : 0);
    return true;

stop:
    fflush(out);
    fflush(err);
    app_free(app);
    return false;
}

bool app_init(app_t *app, const app_spec_t *spec, int argc, char **argv)
{
    return app_init_io(app, spec, argc, argv, stdout, stderr);
}

void app_free(app_t *app)
{
    if (!app)
        return;
    app_cli_free(&app->cli);
    config_free(&app->cfg);
}
