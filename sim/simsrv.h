/* simsrv_: the HTTP plumbing both simulators share (libmicrohttpd), with the admin API of
 * SPEC §8 (/_admin/seed|state|faults|stats|reset), fault injection (latency, error rate, error
 * bursts, down, short pages, truncation), a per-key sliding 60-second rate-limit window (and an
 * optional minimum interval between requests) and request stats.
 *
 * Order of checks on an API request: keepalive_drop "before" (a request on a reused
 * connection closed unanswered and unprocessed), latency, down (503), auth (bad_token_status, 401), rate
 * limit (429), error_burst, error_rate, then, for a request with a body, its Content-Type
 * (415 unless application/json, when content_type_check) and its text (400 unless UTF-8
 * without NUL characters), then the application, then keepalive_drop "after" (the answer
 * replaced by a close). Header values are compared trimmed (simsrv_header_is). A create can
 * fail after its write (simsrv_after_write). Every API request is counted (GET /_admin/stats)
 * and journaled in arrival order (GET /_admin/requests: the last SIMSRV_JOURNAL_MAX, with the
 * connection's request number and any drop; an entry is made when the request arrives and
 * completed, `done`, when it ends).
 *
 * An application (Ploomes or Milvus) plugs in through simsrv_app: an auth check, its error body
 * shape, its request handler and seed/state/reset. Every application callback runs with the
 * server's single state mutex held, so applications need no locking of their own.
 *
 * Requests: bodies are capped (SIMSRV_MAX_BODY for the API, SIMSRV_MAX_SEED for
 * /_admin/seed; 413 past it). Query strings are decoded like ASP.NET does (form encoding:
 * '+' becomes a space, %XX decoded). Binds 127.0.0.1 only; one thread per connection.
 *
 * Ownership: simsrv_start returns a server freed by simsrv_stop. Response bodies set through
 * simsrv_resp_* are owned by the response and freed by the server.
 */
#ifndef SIM_SIMSRV_H
#define SIM_SIMSRV_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIMSRV_MAX_BODY (4u * 1024u * 1024u)
#define SIMSRV_MAX_SEED (64u * 1024u * 1024u)
/* A connection silent this long (an incomplete request, an idle keep-alive) is closed; the
 * connection cap is far above FD_SETSIZE so that a flood of half-open connections from one
 * client (every test client is 127.0.0.1) leaves room for the others and the admin API. */
#define SIMSRV_IDLE_TIMEOUT_S 15
#define SIMSRV_MAX_CONNECTIONS 4000
/* API requests kept, oldest dropped first, by GET /_admin/requests. */
#define SIMSRV_JOURNAL_MAX 1000

typedef struct simsrv simsrv;

typedef struct simsrv_param {
    char *key;
    char *value;
} simsrv_param;

typedef struct simsrv_req {
    const char *method;
    const char *path;      /* percent-decoded path, without the query */
    const char *raw_query; /* undecoded text after '?', "" when none */
    const simsrv_param *params;
    size_t nparams;
    const char *body; /* NUL-terminated, body_len bytes (may contain NULs) */
    size_t body_len;
    void *conn; /* internal */
    int64_t conn_request; /* the request's number on its TCP connection: 1 = the first, > 1 =
                           * a kept-alive connection reused (keepalive_drop) */
} simsrv_req;

typedef struct simsrv_resp {
    int status;
    char *body; /* malloc'd, may be NULL (empty body) */
    const char *content_type;
    int retry_after; /* seconds for a Retry-After header; < 0 none */
    bool drop;       /* close the connection without answering (fail_after_write "drop") */
} simsrv_resp;

/* Runtime-adjustable behaviour (POST /_admin/faults). Defaults in brackets. */
typedef struct simsrv_faults {
    int64_t latency_ms;         /* [0] delay before answering each API request */
    double error_rate;          /* [0] probability of answering error_status instead */
    int error_status;           /* [503] */
    int64_t error_burst;        /* [0] the next N API requests answer error_status (a burst of
                                 * 403s on heavy queries, a run of 5xx), then back to normal */
    int64_t rate_limit_per_min; /* [app default] requests per key per sliding 60 s; <= 0 off */
    bool retry_after;           /* [true] send Retry-After on 429 */
    int64_t min_interval_ms;    /* [0] per key, a request sooner than this after the previous
                                 * accepted one is 429 (Milvus' ">1 min between requests") */
    bool down;                  /* [false] 503 on every API path */
    int64_t down_until_ms;      /* monotonic deadline for down, 0 = until cleared */
    bool short_pages;           /* [false] cut pages mid-scan to 40-90% of what was asked */
    int64_t truncate_at;        /* [1000] cap of Milvus /cliente/busca answers */
    uint64_t seed;              /* [42] PRNG seed for error_rate and short_pages */
    /* Ploomes only */
    bool top_cap_error;    /* [false] $top > 300 answers 400 instead of a silent cap */
    bool patch_204;        /* [false] PATCH answers 204 instead of 200 + envelope */
    bool error_odata;      /* [false] error body {"error":{"code","message"}} ("error_style") */
    char nextlink_host[256]; /* [""] base URL put in @odata.nextLink instead of our own */
    /* Milvus only */
    bool accept_bearer;   /* [false] also accept "Authorization: Bearer <token>" */
    int duplicate_status; /* [409] status for a duplicate document (409 or 400) */
    bool finalize_any;    /* [false] PUT /chamado/finalizar accepts a ticket in any open status
                           * (default: only "Atendendo", else 400) */
    /* Both (strictness, issue 9; sim/README.md lists every toggle) */
    bool content_type_check;       /* [true] a request body needs Content-Type application/json
                                    * (charset=utf-8 allowed), else 415 */
    double fail_after_write_rate;  /* [0] probability that a create is stored and then answered
                                    * with fail_after_write_status (the ambiguous create) */
    int fail_after_write_status;   /* [500] 500, 502, 504, or 0 = "drop" (close, no answer) */
    int bad_token_status;          /* [401] status for missing/wrong credentials (401 or 403) */
    int keepalive_drop;            /* [SIMSRV_KEEPALIVE_OFF] an API request that arrives on a
                                    * reused keep-alive connection (conn_request > 1) and matches
                                    * keepalive_drop_path is read whole, then its connection is
                                    * closed without an answer: BEFORE = not processed (the server
                                    * closed the idle connection just as the client reused it),
                                    * AFTER = processed (a create is stored), then closed */
    int64_t keepalive_drop_times;  /* [-1] drops left (each drop takes one; 0 = no more drops);
                                    * < 0 = every matching request */
    char keepalive_drop_path[128]; /* [""] exact request path ("/api/chamado/criar"); "" = every
                                    * API path */
    char keepalive_drop_method[16]; /* [""] request method ("POST"); "" = every method */
    /* Ploomes only */
    bool inlinecount;              /* [true] answer the OData v3 $inlinecount; false = 400 */
    bool task_required_strict;     /* [true] POST /Tasks needs Title + (ContactId or DealId) +
                                    * DateTime; false = Title only ("task_required") */
    bool string_ci;                /* [false] string eq/ne/lt... and contains/startswith/endswith
                                    * ignore ASCII case ("string_compare") */
    bool readonly_ignore;          /* [false] read-only fields in a write body (Id, CreateDate,
                                    * CreatorId, ...) are dropped; default 400 ("readonly_fields") */
    int create_status;             /* [200] status of a successful POST create (200 or 201) */
    bool derive_documents;         /* [true] CNPJ/CPF derived from Register by TypeId */
    int key_get;                   /* [0] GET /Set(<id>): 0 envelope, 1 bare object, 2 404 */
    bool large_ids;                /* [false] ids handed out from 3,000,000,000 on (> 2^31) */
    /* Milvus only */
    bool document_normalized;      /* [false] documento/duplicate match ignores masks, leading
                                    * zeros and case ("document_match": exact|normalized) */
    bool busca_paging;             /* [true] /cliente/busca honours pagina/total_registros */
    bool uppercase_documents;      /* [true] lowercase CNPJ letters are uppercased; false = 400 */
    bool ticket_client_id_any;     /* [false] chamado cliente_id may be the numeric id too
                                    * ("ticket_client_id": token|token_or_id) */
    int listagem_default_status;   /* [9] /chamado/listagem status when the filter has none
                                    * (9 ChamadosAbertos, 10 Todos, ...) */
} simsrv_faults;

enum { SIMSRV_KEEPALIVE_OFF = 0, SIMSRV_KEEPALIVE_BEFORE, SIMSRV_KEEPALIVE_AFTER };

typedef struct simsrv_app {
    const char *name;         /* program name for messages */
    int64_t default_rate_per_min;
    void *ctx;
    /* Returns the caller's key (used for rate limiting) when authorised, NULL for 401. */
    const char *(*auth)(void *ctx, simsrv *srv, const simsrv_req *req);
    /* Fills resp with the application's error shape. */
    void (*error)(void *ctx, simsrv *srv, simsrv_resp *resp, int status, const char *message);
    /* Handles an authorised, rate-allowed API request. */
    void (*handle)(void *ctx, simsrv *srv, const simsrv_req *req, simsrv_resp *resp);
    /* Adds records from a seed body; 0, or -1 with err for a 400. */
    int (*seed)(void *ctx, simsrv *srv, const cJSON *body, char *err, size_t errlen);
    /* Everything stored, same keys as the seed; NULL on allocation failure. */
    cJSON *(*state)(void *ctx);
    /* Empties the state. */
    void (*reset)(void *ctx);
} simsrv_app;

/* Blocks SIGTERM, SIGINT (and ignores SIGPIPE) in the calling thread; call before
 * simsrv_start so server threads inherit the mask. */
void simsrv_block_signals(void);

/* Waits for SIGTERM or SIGINT (blocked with simsrv_block_signals). Returns the signal. */
int simsrv_wait_signal(void);

/* Binds 127.0.0.1:port (0 = any free port) and starts serving. NULL with err on failure. */
simsrv *simsrv_start(const simsrv_app *app, int port, char *err, size_t errlen);
/* The same on another numeric IPv4 address (simsrv_start uses 127.0.0.1). */
simsrv *simsrv_start_at(const simsrv_app *app, const char *bind_addr, int port, char *err,
                        size_t errlen);

/* The bound port. */
int simsrv_port(const simsrv *srv);

/* Stops serving, joins every thread and frees the server (not the application). */
void simsrv_stop(simsrv *srv);

/* Loads a seed file into the application under the lock (for --state). 0, or -1 with err. */
int simsrv_load_state_file(simsrv *srv, const char *path, char *err, size_t errlen);

/* --- for application callbacks (state lock held) ----------------------------------------- */

const simsrv_faults *simsrv_get_faults(const simsrv *srv);

/* Next value of the deterministic fault PRNG. */
uint64_t simsrv_rand(simsrv *srv);

/* With short_pages on, a random count in [40%, 90%] of `asked` (at least 1); else `asked`. */
size_t simsrv_short_page(simsrv *srv, size_t asked);

/* "http://<Host header or 127.0.0.1:port>" into buf. */
const char *simsrv_base_url(const simsrv *srv, const simsrv_req *req, char *buf, size_t size);

/* Request header value or NULL (case-insensitive name). */
const char *simsrv_header(const simsrv_req *req, const char *name);

/* True when header `name` is present and equals `want` once optional whitespace around the
 * value is ignored (as servers trim header values). With prefix (may be NULL), the value must
 * be prefix + want ("Bearer "). */
bool simsrv_header_is(const simsrv_req *req, const char *name, const char *prefix,
                      const char *want);

/* Call after a create was stored and resp filled with its success answer: with probability
 * fail_after_write_rate, replaces the answer with the fail_after_write_status error (through
 * the application's error shape) or marks it to be dropped. Returns true when it did. */
bool simsrv_after_write(simsrv *srv, simsrv_resp *resp);

/* First query parameter named key (decoded) or NULL. */
const char *simsrv_param_get(const simsrv_req *req, const char *key);

/* Sets a JSON body (takes ownership of json and deletes it). */
void simsrv_resp_json(simsrv_resp *resp, int status, cJSON *json);

/* Sets a body from text (copied) with the given content type. */
void simsrv_resp_text(simsrv_resp *resp, int status, const char *content_type, const char *text);

/* Sets {"<key>":"<message>"}. */
void simsrv_resp_message(simsrv_resp *resp, int status, const char *key, const char *message);

#endif
