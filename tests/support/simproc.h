/* simproc_: run a simulator (ploomes-sim, milvus-sim) as a child process for a test, and talk
 * to it over HTTP; run the build's other binaries (simproc_spawn) the same way.
 *
 *   char err[256];
 *   simproc *p = simproc_start_ploomes("KEY", err, sizeof err);   // --port 0 --user-key KEY
 *   assert_non_null(p);
 *   simproc_seed(p, "{\"Contacts\":[{\"Name\":\"ACME\"}]}");
 *   setenv("PLOOMES_BASE_URL", simproc_base_url(p), 1);   // "http://127.0.0.1:PORT"
 *   ...
 *   cJSON *state = simproc_state(p);  ...  cJSON_Delete(state);
 *   assert_int_equal(simproc_stop(p), 0);                 // SIGTERM; 0 = exited 0 (no leaks)
 *
 * The binary is found through testenv_bin() (PIPELINE_BIN_DIR). The child's stderr is inherited
 * (its sanitizer reports show up in the test log); its stdout is read only for the first line,
 * "listening on http://127.0.0.1:PORT". Milvus' API lives under "<base>/api":
 * simproc_api_url() gives that for milvus-sim and the base for ploomes-sim.
 *
 * simproc_spawn / simproc_wait run any other binary of the build (a producer, a consumer) the
 * same way, with extra environment variables and its output in a log file:
 *
 *   const char *env[] = {"TOPIC_PREFIX=it-1.", NULL};
 *   const char *args[] = {"--once", NULL};
 *   pid_t pid = simproc_spawn("ploomes-producer", args, env, "/tmp/it-1.log", err, sizeof err);
 *   assert_int_equal(simproc_wait(pid, 60000), 0);       // exit code; -1 = killed on timeout
 *
 * Ownership: a simproc is freed by simproc_stop (always, whatever it returns). Returned cJSON
 * and response bodies belong to the caller. Thread-safety: the request functions
 * (simproc_request*, simproc_admin_post and its shorthands, simproc_state/stats) only read the
 * handle and open their own connection, so several threads may use one handle at once;
 * simproc_stop must not race with them. Distinct handles are independent. Uses libcurl
 * (curl_global_init is called once, lazily).
 */
#ifndef PIPELINE_SIMPROC_H
#define PIPELINE_SIMPROC_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct simproc simproc;

/* Starts <PIPELINE_BIN_DIR>/<binary> with argv = binary + args (NULL-terminated, may be NULL)
 * and waits (up to 60 s) for its first stdout line. NULL with err on failure (the child, if
 * any, is killed and reaped). Pass "--port", "0" yourself in args. */
simproc *simproc_start(const char *binary, const char *const *args, char *err, size_t errlen);

/* ploomes-sim --port 0 --user-key <user_key> */
simproc *simproc_start_ploomes(const char *user_key, char *err, size_t errlen);

/* milvus-sim --port 0 --token <token> */
simproc *simproc_start_milvus(const char *token, char *err, size_t errlen);

/* For tests of the simulators themselves and of the clients of one: starts "ploomes-sim"
 * (credential = its --user-key) or "milvus-sim" (credential = its --token) on port 0, then,
 * when faults_json is not NULL, posts it to /_admin/faults (e.g. "{\"rate_limit_per_min\":0}").
 * NULL with err on failure, the reason also written on stderr (so a test can simply assert the
 * result is not NULL); the child is then stopped. */
simproc *simproc_start_sim(const char *binary, const char *credential, const char *faults_json,
                           char *err, size_t errlen);

/* "http://127.0.0.1:PORT" (no trailing slash). Valid until simproc_stop. */
const char *simproc_base_url(const simproc *p);

/* The TCP port of base_url (on 127.0.0.1), for tests that open raw connections. */
int simproc_port(const simproc *p);

/* The API root a client should be configured with: base for Ploomes, base + "/api" for Milvus. */
const char *simproc_api_url(const simproc *p);

/* The child's pid. */
pid_t simproc_pid(const simproc *p);

/* One HTTP request to the simulator. path_and_query starts with '/' and is sent verbatim (encode
 * it yourself). headers: NULL-terminated "Name: value" strings or NULL. body: NULL for none.
 * On success returns 0, sets *status and, when body_out is not NULL, *body_out (malloc'd,
 * NUL-terminated; free() it) and, when retry_after is not NULL, the Retry-After header value
 * in seconds (-1 when absent). Returns -1 on a transport error (nothing to free). */
int simproc_request(const simproc *p, const char *method, const char *path_and_query,
                    const char *const *headers, const char *body, long *status, char **body_out,
                    long *retry_after);

/* simproc_request with full control of the body: body_len bytes (any bytes, NULs and
 * invalid UTF-8 included) sent with Content-Type content_type: NULL = libcurl's default for a
 * POST (application/x-www-form-urlencoded), "" = no Content-Type header at all. body NULL =
 * no body. Returns 0 with *status (and *body_out, malloc'd, when not NULL), or -1 on a
 * transport error (for instance a connection closed without an answer). */
int simproc_request_raw(const simproc *p, const char *method, const char *path_and_query,
                        const char *const *headers, const char *content_type, const char *body,
                        size_t body_len, long *status, char **body_out);

/* POST path_and_query with a body. Returns the HTTP status, or -1 on a transport error. When
 * text is not NULL it gets the response body (malloc'd, free() it; NULL after a transport
 * error). */
long simproc_post(const simproc *p, const char *path_and_query, const char *const *headers,
                  const char *body, char **text);

/* simproc_request, with the answer parsed as JSON (NULL when the body is not JSON or on a
 * transport error, then *status is -1). cJSON_Delete the result. */
cJSON *simproc_request_json(const simproc *p, const char *method, const char *path_and_query,
                           const char *const *headers, const char *body, long *status);

/* Percent-encodes s (everything but A-Z a-z 0-9 - . _ ~) into out, for a query value such as
 * a $filter. Truncates (at a character boundary) to fit size, always NUL-terminates. */
void simproc_urlencode(char *out, size_t size, const char *s);

/* POST /_admin/<what> (seed, faults, reset) with a JSON body ("{}" when json is NULL).
 * Returns the HTTP status (200 on success), or -1 on a transport error. */
long simproc_admin_post(const simproc *p, const char *what, const char *json);

/* Shorthands; each returns 0 when the simulator answered 200, -1 otherwise. */
int simproc_seed(const simproc *p, const char *json);
int simproc_faults(const simproc *p, const char *json);
int simproc_reset(const simproc *p);

/* The value of the numeric fault `key` in GET /_admin/faults (e.g. "keepalive_drop_times"),
 * or `missing` when the request fails or `key` is not a number there. */
double simproc_fault_num(const simproc *p, const char *key, double missing);

/* GET /_admin/state (or stats), parsed; NULL on any failure. cJSON_Delete it. */
cJSON *simproc_state(const simproc *p);
cJSON *simproc_stats(const simproc *p);

/* SIGTERM, then waits up to 60 s (SIGKILL after that). Returns the exit status when the child
 * exited normally (0 = clean, what tests should assert), or -1 when it was killed by a signal
 * or did not stop. Frees p. NULL p returns -1. */
int simproc_stop(simproc *p);

/* Starts <PIPELINE_BIN_DIR>/<binary> with argv = binary + args (NULL-terminated, may be NULL)
 * and the test's environment plus env ("NAME=value", NULL-terminated, may be NULL; each
 * overrides a variable of that name). Pipeline settings inherited from the test's own
 * environment (PLOOMES_*, MILVUS_*, KAFKA_* but KAFKA_BOOTSTRAP_SERVERS, MAX_ATTEMPTS, ...)
 * are not passed on: a child sees only the settings its test chose. Its stdout and stderr are appended to log_path (created
 * when missing). It gets SIGKILL if the test process dies first. Returns the child's pid, to
 * pass to simproc_wait (or to signal), or -1 with err when the log cannot be opened or fork
 * fails (no child then). */
pid_t simproc_spawn(const char *binary, const char *const *args, const char *const *env,
                    const char *log_path, char *err, size_t errlen);

/* Waits up to timeout_ms for a child of simproc_spawn to exit and reaps it. Returns its exit
 * code, 128 + the signal number when a signal ended it, or -1 when it did not exit in time
 * (it is then killed with SIGKILL and reaped; said on stderr) or waitpid failed. */
int simproc_wait(pid_t pid, int timeout_ms);

#endif
