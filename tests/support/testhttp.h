/* testhttp_: one plain HTTP request from a test to a local server (metrics endpoints, anything
 * that is not a simulator; simulators have simproc_request, which also sends their auth).
 *
 * Ownership: *body_out is malloc'd (never NULL when the call returns a status > 0); the caller
 * frees it. Thread-safe as long as curl_global_init() ran (simproc and the tests do it). */
#ifndef PIPELINE_TESTHTTP_H
#define PIPELINE_TESTHTTP_H

/* Sends METHOD http://127.0.0.1:<port><path> with no body, waiting at most timeout_ms.
 * Returns the HTTP status, or -1 when no answer arrived (then *body_out is NULL).
 * body_out may be NULL when the body does not matter. */
long testhttp_local(const char *method, int port, const char *path, long timeout_ms,
                    char **body_out);

#endif
