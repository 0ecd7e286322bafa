/* simmain_: see simmain.h. */
#include "simmain.h"

#include "simjson.h"

#include <stdio.h>
#include <string.h>

/* The simsrv part of every simulator's help. */
static const char USAGE_TAIL[] =
    "--bind ADDRESS listens on that IPv4 address instead of 127.0.0.1 (0.0.0.0 in a container).\n"
    "Admin API (no auth): POST /_admin/seed, GET /_admin/state, GET|POST /_admin/faults,\n"
    "GET /_admin/stats, POST /_admin/reset. SIGTERM/SIGINT stop it (exit 0).\n";

static void usage(const simmain_spec *spec, FILE *out)
{
    fputs(spec->usage, out);
    fputs(USAGE_TAIL, out);
}

static int usage_error(const simmain_spec *spec, const char *fmt, const char *what)
{
    fprintf(stderr, "%s: ", spec->name);
    fprintf(stderr, fmt, what);
    fputc('\n', stderr);
    usage(spec, stderr);
    return 2;
}

int simmain_parse(const simmain_spec *spec, int argc, char **argv, simmain_args *args)
{
    const char *port_s = NULL;
    args->credential = NULL;
    args->state = NULL;
    args->bind = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(spec, stdout);
            return 0;
        }
        const char **dst = strcmp(argv[i], "--port") == 0                ? &port_s
                           : strcmp(argv[i], spec->credential_opt) == 0 ? &args->credential
                           : strcmp(argv[i], "--state") == 0            ? &args->state
                           : strcmp(argv[i], "--bind") == 0             ? &args->bind
                                                                         : NULL;
        if (!dst || i + 1 >= argc)
            return usage_error(spec, "unknown or incomplete option '%s'", argv[i]);
        *dst = argv[++i];
    }
    int64_t port = -1;
    if (!port_s || !simjson_parse_count(port_s, &port) || port > 65535)
        return usage_error(spec, "%s needs a number 0-65535", "--port");
    if (!args->credential || !args->credential[0])
        return usage_error(spec, "%s is required", spec->credential_opt);
    args->port = (int)port;
    return -1;
}

int simmain_run(const simsrv_app *app, const simmain_args *args)
{
    simsrv_block_signals();
    char err[512];
    int rc = 0;
    simsrv *srv = simsrv_start_at(app, args->bind, args->port, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "%s: %s\n", app->name, err);
        rc = 1;
        goto out;
    }
    if (args->state && simsrv_load_state_file(srv, args->state, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", app->name, err);
        rc = 2;
        goto out;
    }
    printf("listening on http://127.0.0.1:%d\n", simsrv_port(srv));
    fflush(stdout);
    simsrv_wait_signal();
out:
    simsrv_stop(srv);
    return rc;
}
