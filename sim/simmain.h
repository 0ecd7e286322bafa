/* simmain_: the main() both simulators share: the command line
 * (--port P <credential option> V [--state FILE] [--bind ADDRESS], --help), start-up, the "listening on" line
 * the test harness waits for, and a clean stop on SIGTERM/SIGINT (exit 0).
 *
 * Ownership: borrows argv and the application; allocates nothing the caller frees.
 * Thread-safety: for main() only (simmain_run blocks signals in the calling thread).
 */
#ifndef SIM_SIMMAIN_H
#define SIM_SIMMAIN_H

#include "simsrv.h"

typedef struct simmain_spec {
    const char *name;           /* program name for messages: "milvus-sim" */
    const char *credential_opt; /* the required option naming the API credential: "--token" */
    const char *usage;          /* the --help text; simmain adds the admin API lines */
} simmain_spec;

typedef struct simmain_args {
    int port;               /* 0..65535 (0 = any free port) */
    const char *credential; /* non-empty, borrowed from argv */
    const char *state;      /* seed file to load, NULL when none */
    const char *bind;       /* numeric IPv4 address to listen on; default "127.0.0.1"
                               ("0.0.0.0" inside a container, docker-compose's sandbox) */
} simmain_args;

/* Parses argv into *args. Returns -1 when main() should go on, else the exit code to return
 * at once: 0 after --help/-h (usage on stdout), 2 after a usage error (the problem and the
 * usage on stderr). */
int simmain_parse(const simmain_spec *spec, int argc, char **argv, simmain_args *args);

/* Serves app until SIGTERM/SIGINT: blocks those signals (server threads inherit the mask),
 * starts on args->port, loads args->state when set, prints "listening on
 * http://127.0.0.1:PORT" on stdout, waits for a signal and stops the server. Returns the exit
 * code: 0 after a signal, 1 when the server cannot start, 2 when the state file is rejected
 * (the reason on stderr). */
int simmain_run(const simsrv_app *app, const simmain_args *args);

#endif
