/* hostile_server_: a programmable misbehaving HTTP server for tests (issue 12 "Hostile answers
 * from the APIs"). It stands in front of a simulator as a transparent proxy and, for the
 * requests that match one of its rules, answers something hostile instead: a truncated body, an
 * HTML error page, JSON that is not what apis.md documents, a body past a size cap, a
 * slow-loris answer, a redirect to another host, an empty body. Every other request is passed
 * to the upstream (the simulator stays the oracle: it sees every request the client really
 * made, and keeps the state tests check).
 *
 *   char err[256];
 *   hostile_server_t *hs = hostile_server_start(simproc_base_url(milvus), err, sizeof err);
 *   hostile_rule_t r = {.method = "POST", .path_contains = "/cliente/criar",
 *                       .body_contains = "52998224725", .times = 1, .forward_first = true,
 *                       .mode = HOSTILE_STATUS, .status = 200, .body = "{\"id\":\"abc\"}"};
 *   hostile_server_add(hs, &r);
 *   setenv("MILVUS_BASE_URL", <hostile_server_url(hs)>/api ...);
 *   ...  hostile_server_hits(hs, rule_index)  ...
 *   hostile_server_stop(hs);
 *
 * Rules are tried in the order added; the first one that matches the request (method, a
 * substring of the request target, a substring of the request body) and has answers left
 * (`skip` matching requests are first passed through; then `times` hostile answers, < 0 =
 * every one) decides. `forward_first` sends the request to the upstream first and throws its
 * answer away (the server acted on it: what an ambiguous create looks like), else the upstream
 * never sees it. Requests are read whole (headers <= 64 KiB, Content-Length bodies <= 16 MiB);
 * every answer ends the connection (Connection: close), so a client never reuses one.
 *
 * Modes:
 *   HOSTILE_STATUS     status line + Content-Type (default application/json) + extra_headers
 *                      + body (may be "" or NULL: an empty body; status 204 sends no body)
 *   HOSTILE_TRUNCATED  Content-Length says len(body) + 1000, then body, then close
 *   HOSTILE_OVERSIZE   a JSON string of `size` bytes ({"lista":"xxx...) with its true
 *                      Content-Length, sent until done or the client hangs up
 *   HOSTILE_SLOWLORIS  headers (Content-Length 1000), then one byte of body per second for
 *                      `slow_seconds` (or until the client hangs up or the server stops)
 *   HOSTILE_REDIRECT   `status` (default 302) with Location: `body` (an absolute URL)
 *
 * Ownership: the server copies every string of a rule. Thread-safety: each connection is
 * served on its own thread; add/hits/requests may be called from any thread while it runs.
 * hostile_server_stop() stops accepting, ends slow answers and joins every thread.
 */
#ifndef PIPELINE_HOSTILE_SERVER_H
#define PIPELINE_HOSTILE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    HOSTILE_STATUS = 0,
    HOSTILE_TRUNCATED,
    HOSTILE_OVERSIZE,
    HOSTILE_SLOWLORIS,
    HOSTILE_REDIRECT,
} hostile_mode_t;

typedef struct {
    const char *method;        /* "GET", "POST", ...; NULL = any */
    const char *path_contains; /* substring of the request target (path + query); NULL = any */
    const char *body_contains; /* substring of the request body; NULL = any */
    int skip;                  /* matching requests passed through before the hostile ones */
    int times;                 /* hostile answers to give (< 0: every matching request) */
    bool forward_first;        /* the upstream gets the request first (its answer is dropped) */
    hostile_mode_t mode;
    int status;                /* HTTP status (0: 200; HOSTILE_REDIRECT 0: 302) */
    const char *content_type;  /* NULL: application/json */
    const char *body;          /* the body (HOSTILE_REDIRECT: the Location) */
    size_t size;               /* HOSTILE_OVERSIZE: bytes of body */
    int slow_seconds;          /* HOSTILE_SLOWLORIS: bytes to dribble, one per second */
} hostile_rule_t;

typedef struct hostile_server hostile_server_t;

/* Listens on 127.0.0.1, an ephemeral port. upstream: "http://127.0.0.1:PORT" (no path) of the
 * server to pass requests to, or NULL (unmatched requests then get 404). NULL with err on
 * failure. */
hostile_server_t *hostile_server_start(const char *upstream, char *err, size_t errlen);

/* "http://127.0.0.1:PORT" (no trailing slash). Valid until hostile_server_stop. */
const char *hostile_server_url(const hostile_server_t *hs);

/* Adds a rule (copied); returns its index (for hostile_server_hits), or -1 when full (256). */
int hostile_server_add(hostile_server_t *hs, const hostile_rule_t *rule);

/* Hostile answers rule `index` has given so far (-1 for a bad index). */
int hostile_server_hits(hostile_server_t *hs, int index);

/* Requests received so far (all of them). */
int hostile_server_requests(hostile_server_t *hs);

/* Stops and frees. NULL is accepted. */
void hostile_server_stop(hostile_server_t *hs);

#endif
