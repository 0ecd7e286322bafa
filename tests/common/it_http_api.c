/* Integration test of http_ and api_ against tiny scripted HTTP servers (libmicrohttpd on
 * 127.0.0.1, port 0) started inside the test: retries and their count, outcomes, Retry-After,
 * timeouts, connection errors, the body cap, keep-alive, the auth header only for the base
 * origin, the stop flag and the wait hook, no secret in results or logs, and the metrics api_
 * records (SPEC §7; the rate-limit wait uses a limiter in a throwaway MongoDB database).
 *
 * Routes (the counter of a route counts its hits; behaviour may depend on it):
 *   /ok             200 {"value":[]}
 *   /flaky          503 on hits 1-2, then 200 "123"
 *   /blip           503 on hit 1, then 200
 *   /limited        429 + Retry-After: 1 on hit 1, then 200
 *   /busy           503 + Retry-After: 30, always
 *   /down           503 {"error":{"message":"maintenance"}}, always
 *   /auth           401 {"Message":"Authorization has been denied"}
 *   /bad            400 {"message":"Cliente já cadastrado"}
 *   /forbidden      403 {"value":"Acesso negado"}
 *   /moved          302 to another host, a key in its query
 *   /slow           sleeps 1500 ms, then 200
 *   /big            128 KiB body with Content-Length
 *   /big-chunked    128 KiB body, chunked (no length)
 *   /echo           200, records method, body and headers
 *   /vanish         reads the request, then closes the connection without an answer (a server
 *                   that acted on a create and died before answering)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"
#include "store.h"
#include "testenv.h"

#define SECRET "S3CRET-KEY-0123456789ABCDEF"
#define BIG_SIZE (128 * 1024)
#define ROUTES 16

typedef struct {
    struct MHD_Daemon *daemon;
    int port;
    char base[64];
    pthread_mutex_t lock;
    struct {
        char path[32];
        int hits;
    } routes[ROUTES];
    int connections;
    int auth_requests;   /* requests that carried User-Key or Authorization */
    int plain_requests;  /* requests that carried neither */
    char last_user_key[128];
    char last_authorization[128];
    char last_method[16];
    char last_body[1024];
    char last_accept[64];
    char last_ctype[64];
} server_t;

typedef struct {
    char *body;
    size_t len;
} conn_ctx_t;

static server_t srv_a, srv_b;

static int route_hit(server_t *s, const char *path)
{
    pthread_mutex_lock(&s->lock);
    int n = 0;
    for (int i = 0; i < ROUTES; i++) {
        if (s->routes[i].path[0] == '\0') {
            snprintf(s->routes[i].path, sizeof s->routes[i].path, "%s", path);
        }
        if (strcmp(s->routes[i].path, path) == 0) {
            n = ++s->routes[i].hits;
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return n;
}

static int route_hits(server_t *s, const char *path)
{
    pthread_mutex_lock(&s->lock);
    int n = 0;
    for (int i = 0; i < ROUTES; i++)
        if (strcmp(s->routes[i].path, path) == 0)
            n = s->routes[i].hits;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void server_reset(server_t *s)
{
    pthread_mutex_lock(&s->lock);
    memset(s->routes, 0, sizeof s->routes);
    s->connections = 0;
    s->auth_requests = 0;
    s->plain_requests = 0;
    s->last_user_key[0] = s->last_authorization[0] = s->last_method[0] = '\0';
    s->last_body[0] = s->last_accept[0] = s->last_ctype[0] = '\0';
    pthread_mutex_unlock(&s->lock);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static ssize_t big_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    if (pos >= BIG_SIZE)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = BIG_SIZE - pos < max ? (size_t)(BIG_SIZE - pos) : max;
    memset(buf, 'x', n);
    return (ssize_t)n;
}

static void copy_header(struct MHD_Connection *conn, const char *name, char *dst, size_t size)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    snprintf(dst, size, "%s", v ? v : "");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    server_t *s = cls;
    conn_ctx_t *ctx = *con_cls;
    if (!ctx) {
        ctx = calloc(1, sizeof *ctx);
        *con_cls = ctx;
        return MHD_YES;
    }
    if (*upload_data_size) {
        char *grown = realloc(ctx->body, ctx->len + *upload_data_size + 1);
        if (!grown)
            return MHD_NO;
        ctx->body = grown;
        memcpy(ctx->body + ctx->len, upload_data, *upload_data_size);
        ctx->len += *upload_data_size;
        ctx->body[ctx->len] = '\0';
        *upload_data_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&s->lock);
    const char *uk = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "User-Key");
    const char *au = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    if (uk || au)
        s->auth_requests++;
    else
        s->plain_requests++;
    copy_header(conn, "User-Key", s->last_user_key, sizeof s->last_user_key);
    copy_header(conn, "Authorization", s->last_authorization, sizeof s->last_authorization);
    copy_header(conn, "Accept", s->last_accept, sizeof s->last_accept);
    copy_header(conn, "Content-Type", s->last_ctype, sizeof s->last_ctype);
    snprintf(s->last_method, sizeof s->last_method, "%s", method);
    snprintf(s->last_body, sizeof s->last_body, "%s", ctx->body ? ctx->body : "");
    pthread_mutex_unlock(&s->lock);

    int hit = route_hit(s, url);
    if (strcmp(url, "/ok") == 0 || strcmp(url, "/api/ok") == 0)
        return reply(conn, 200, "{\"value\":[]}", NULL);
    if (strcmp(url, "/flaky") == 0)
        return hit <= 2 ? reply(conn, 503, "", NULL) : reply(conn, 200, "123", NULL);
    if (strcmp(url, "/blip") == 0)
        return hit == 1 ? reply(conn, 503, "", NULL) : reply(conn, 200, "{}", NULL);
    if (strcmp(url, "/limited") == 0)
        return hit == 1 ? reply(conn, 429, "{\"value\":\"Too many requests\"}", "1")
                        : reply(conn, 200, "{\"value\":[]}", NULL);
    if (strcmp(url, "/busy") == 0)
        return reply(conn, 503, "busy", "30");
    if (strcmp(url, "/down") == 0)
        return reply(conn, 503, "{\"error\":{\"code\":\"\",\"message\":\"maintenance\"}}", NULL);
    if (strcmp(url, "/auth") == 0)
        return reply(conn, 401, "{\"Message\":\"Authorization has been denied\"}", NULL);
    if (strcmp(url, "/bad") == 0)
        return reply(conn, 400, "{\"message\":\"Cliente já cadastrado\"}", NULL);
    if (strcmp(url, "/forbidden") == 0)
        return reply(conn, 403, "{\"value\":\"Acesso negado\"}", NULL);
    if (strcmp(url, "/moved") == 0) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(r, "Location", "https://elsewhere.example/next?key=LEAKME&page=2");
        enum MHD_Result rc = MHD_queue_response(conn, 302, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/slow") == 0) {
        struct timespec ts = {1, 500000000L};
        nanosleep(&ts, NULL);
        return reply(conn, 200, "{}", NULL);
    }
    if (strcmp(url, "/big") == 0) {
        char *big = malloc(BIG_SIZE);
        if (!big)
            return MHD_NO;
        memset(big, 'x', BIG_SIZE);
        struct MHD_Response *r =
            MHD_create_response_from_buffer(BIG_SIZE, big, MHD_RESPMEM_MUST_FREE);
        enum MHD_Result rc = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/big-chunked") == 0) {
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, big_reader, NULL, NULL);
        enum MHD_Result rc = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/echo") == 0)
        return reply(conn, 200, "{\"ok\":true}", NULL);
    if (strcmp(url, "/vanish") == 0)
        return MHD_NO; /* microhttpd closes the connection, nothing answered */
    return reply(conn, 404, "{\"message\":\"não encontrado\"}", NULL);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    conn_ctx_t *ctx = *con_cls;
    if (ctx) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                        enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    (void)socket_context;
    server_t *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        pthread_mutex_lock(&s->lock);
        s->connections++;
        pthread_mutex_unlock(&s->lock);
    }
}

static int server_start(server_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD,
                                 0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, notify_conn, s, MHD_OPTION_END);
    if (!s->daemon)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    return s->port > 0 ? 0 : -1;
}

static void server_stop(server_t *s)
{
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    pthread_mutex_destroy(&s->lock);
}

static int setup_all(void **state)
{
    (void)state;
    log_init("it_http_api", LOG_WARN);
    if (server_start(&srv_a) != 0 || server_start(&srv_b) != 0)
        return -1;
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    server_stop(&srv_a);
    server_stop(&srv_b);
    log_clear_secrets();
    store_global_cleanup();
    return 0;
}

static int reset_each(void **state)
{
    (void)state;
    server_reset(&srv_a);
    server_reset(&srv_b);
    return 0;
}

static api_t *make_api_metrics(api_kind_t kind, const char *base, int attempts, int64_t base_ms,
                               long timeout_ms, volatile sig_atomic_t *stop, metrics_t *m)
{
    api_options_t o = {.kind = kind,
                       .base_url = base,
                       .secret = SECRET,
                       .connect_timeout_ms = 1000,
                       .total_timeout_ms = timeout_ms,
                       .max_body_bytes = 64 * 1024,
                       .max_attempts = attempts,
                       .retry_base_ms = base_ms,
                       .retry_max_ms = 2000,
                       .stop = stop,
                       .metrics = m};
    char err[256];
    api_t *api = api_new(&o, err, sizeof err);
    if (!api)
        fail_msg("api_new: %s", err);
    return api;
}

static api_t *make_api(api_kind_t kind, const char *base, int attempts, int64_t base_ms,
                       long timeout_ms, volatile sig_atomic_t *stop)
{
    return make_api_metrics(kind, base, attempts, base_ms, timeout_ms, stop, NULL);
}

static void assert_no_secret(const api_result_t *r)
{
    assert_null(strstr(r->message, SECRET));
    assert_null(strstr(r->error_class, SECRET));
    assert_null(strstr(r->body, SECRET));
}

/* ---- tests ------------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    api_kind_t kind;
    int max_attempts;
    api_outcome_t outcome;
    int attempts;   /* attempts reported */
    int hits;       /* requests the server saw */
    long status;
    const char *error_class;
    const char *message_part;
} outcome_row_t;

static void test_outcome_table(void **state)
{
    (void)state;
    static const outcome_row_t rows[] = {
        {"/ok", API_PLOOMES, 3, API_OK, 1, 1, 200, "", ""},
        {"/flaky", API_PLOOMES, 3, API_OK, 3, 3, 200, "", ""},
        {"/flaky", API_MILVUS, 2, API_RETRIABLE_EXHAUSTED, 2, 2, 503, "HttpStatus503", "HTTP 503"},
        {"/down", API_MILVUS, 3, API_RETRIABLE_EXHAUSTED, 3, 3, 503, "HttpStatus503",
         "HTTP 503: maintenance"},
        {"/auth", API_PLOOMES, 3, API_AUTH, 1, 1, 401, "HttpStatus401",
         "HTTP 401: Authorization has been denied"},
        {"/bad", API_MILVUS, 3, API_PERMANENT, 1, 1, 400, "HttpStatus400",
         "HTTP 400: Cliente já cadastrado"},
        /* a redirect is never followed; its target is named, query values redacted */
        {"/moved", API_PLOOMES, 3, API_PERMANENT, 1, 1, 302, "HttpStatus302",
         "HTTP 302: redirect to https://elsewhere.example/next?key=*&page=* (not followed)"},
        {"/nowhere", API_MILVUS, 3, API_PERMANENT, 1, 1, 404, "HttpStatus404", "não encontrado"},
        /* Ploomes answers 403 under load: retried; Milvus answers a bad token with 403: auth */
        {"/forbidden", API_PLOOMES, 3, API_RETRIABLE_EXHAUSTED, 3, 3, 403, "HttpStatus403",
         "HTTP 403: Acesso negado"},
        {"/forbidden", API_MILVUS, 3, API_AUTH, 1, 1, 403, "HttpStatus403", "Acesso negado"},
        {"/big", API_PLOOMES, 3, API_PERMANENT, 1, 1, 200, "ResponseTooLarge", "larger than"},
        {"/big-chunked", API_PLOOMES, 3, API_PERMANENT, 1, 1, 200, "ResponseTooLarge",
         "larger than"},
        {"/slow", API_MILVUS, 2, API_RETRIABLE_EXHAUSTED, 2, 2, 0, "CurlTimeout", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const outcome_row_t *w = &rows[i];
        server_reset(&srv_a);
        /* 1 s per attempt: ample for a local answer on a loaded machine, still shorter than
         * /slow's 1.5 s */
        api_t *api = make_api(w->kind, srv_a.base, w->max_attempts, 10, 1000, NULL);
        api_result_t r = {0};
        api_outcome_t got = api_request(api, HTTP_GET, w->path, NULL, API_IDEMPOTENT, &r);
        if (got != w->outcome || r.outcome != w->outcome || r.attempts != w->attempts ||
            r.status != w->status || strcmp(r.error_class, w->error_class) != 0 ||
            !strstr(r.message, w->message_part))
            fail_msg("row %zu %s %s: outcome=%s attempts=%d status=%ld class=%s message=\"%s\"",
                     i, api_kind_name(w->kind), w->path, api_outcome_name(got), r.attempts,
                     r.status, r.error_class, r.message);
        /* the server may still be sleeping in /slow; wait for it to count the hit */
        int hits = route_hits(&srv_a, w->path);
        for (int k = 0; k < 1500 && hits < w->hits; k++) {
            usleep(20000);
            hits = route_hits(&srv_a, w->path);
        }
        if (hits != w->hits)
            fail_msg("row %zu %s: server saw %d requests, want %d", i, w->path, hits, w->hits);
        if (w->outcome == API_OK) {
            assert_string_equal(r.first_failure, w->attempts > 1 ? r.first_failure : "");
            if (w->attempts == 1)
                assert_string_equal(r.last_failure, "");
        } else {
            assert_int_equal(strlen(r.first_failure), 24); /* 2024-01-01T00:00:00.000Z */
            assert_int_equal(strlen(r.last_failure), 24);
            assert_true(strcmp(r.first_failure, r.last_failure) <= 0);
        }
        assert_non_null(r.body);
        assert_no_secret(&r);
        api_result_clear(&r);
        api_free(api);
    }
}

static void test_bodies_and_excerpt(void **state)
{
    (void)state;
    api_t *api = make_api(API_MILVUS, srv_a.base, 3, 0, 2000, NULL);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_GET, "/flaky", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_string_equal(r.body, "123");
    assert_int_equal(r.body_len, 3);
    assert_int_equal(r.attempts, 3);
    assert_true(r.first_failure[0] != '\0'); /* two failures before the success */
    char ex[8];
    assert_string_equal(api_result_excerpt(&r, 2, ex, sizeof ex), "12");
    assert_int_equal(api_request(api, HTTP_GET, "/bad", NULL, API_IDEMPOTENT, &r), API_PERMANENT);
    /* {"message":"Cliente já cadastrado}: byte 22 is the 2nd byte of "á": the cut moves back */
    char ex2[64];
    api_result_excerpt(&r, 22, ex2, sizeof ex2);
    assert_string_equal(ex2, "{\"message\":\"Cliente j");
    api_result_excerpt(&r, 1024, ex2, sizeof ex2);
    assert_string_equal(ex2, "{\"message\":\"Cliente já cadastrado\"}");
    api_result_clear(&r);
    api_free(api);
}

static void test_retry_after_honoured(void **state)
{
    (void)state;
    api_t *api = make_api(API_PLOOMES, srv_a.base, 3, 0, 2000, NULL);
    api_result_t r = {0};
    int64_t t0 = testenv_now_ms();
    assert_int_equal(api_request(api, HTTP_GET, "/limited", NULL, API_IDEMPOTENT, &r), API_OK);
    int64_t took = testenv_now_ms() - t0;
    assert_int_equal(r.attempts, 2);
    assert_int_equal(route_hits(&srv_a, "/limited"), 2);
    /* base backoff is 0: only Retry-After: 1 can explain a wait of about a second (the upper
     * bound is generous for a loaded machine; it still tells a second from Retry-After: 30) */
    if (took < 950 || took > 15000)
        fail_msg("Retry-After: 1 gave a wait of %lld ms", (long long)took);
    api_result_clear(&r);

    /* Retry-After larger than the retry max is capped by it (2000 ms here, header says 30 s) */
    t0 = testenv_now_ms();
    api_t *api2 = make_api(API_PLOOMES, srv_a.base, 2, 0, 2000, NULL);
    assert_int_equal(api_request(api2, HTTP_GET, "/busy", NULL, API_IDEMPOTENT, &r), API_RETRIABLE_EXHAUSTED);
    took = testenv_now_ms() - t0;
    if (took < 1950 || took > 20000) /* capped: far from the 30 s the header asks for */
        fail_msg("Retry-After capped at 2000 ms gave a wait of %lld ms", (long long)took);
    api_result_clear(&r);
    api_free(api2);
    api_free(api);
}

static void test_connection_refused(void **state)
{
    (void)state;
    /* a port nobody listens on: bound (so no other program running in parallel can take it)
     * but not listening, which refuses connections; closed at the end */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", ntohs(addr.sin_port));
    api_t *api = make_api(API_PLOOMES, base, 3, 1, 1000, NULL);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_POST, "/Contacts", "{}", API_IDEMPOTENT, &r), API_RETRIABLE_EXHAUSTED);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error_class, "CurlConnect");
    assert_true(r.message[0] != '\0');
    assert_string_equal(r.body, "");
    assert_no_secret(&r);
    api_result_clear(&r);
    api_free(api);
    close(fd);
}

static void test_auth_header_only_for_base_origin(void **state)
{
    (void)state;
    api_t *api = make_api(API_PLOOMES, srv_a.base, 1, 0, 2000, NULL);
    api_result_t r = {0};
    char url[128];

    /* relative path: base origin, key sent */
    assert_int_equal(api_request(api, HTTP_GET, "/echo?$top=1", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_string_equal(srv_a.last_user_key, SECRET);
    assert_string_equal(srv_a.last_accept, "application/json");

    /* absolute URL on the base origin (a nextLink): key sent */
    snprintf(url, sizeof url, "%s/echo?$skip=300", srv_a.base);
    assert_int_equal(api_request(api, HTTP_GET, url, NULL, API_IDEMPOTENT, &r), API_OK);
    assert_int_equal(srv_a.auth_requests, 2);

    /* absolute URL on another port of the same host: a different origin, key NOT sent */
    snprintf(url, sizeof url, "%s/echo?$skip=600", srv_b.base);
    assert_int_equal(api_request(api, HTTP_GET, url, NULL, API_IDEMPOTENT, &r), API_OK);
    assert_int_equal(route_hits(&srv_b, "/echo"), 1);
    assert_int_equal(srv_b.auth_requests, 0);
    assert_int_equal(srv_b.plain_requests, 1);
    assert_string_equal(srv_b.last_user_key, "");

    /* same host spelled "localhost": a different origin too (no DNS games) */
    snprintf(url, sizeof url, "http://localhost:%d/echo", srv_b.port);
    api_request(api, HTTP_GET, url, NULL, API_IDEMPOTENT, &r);
    assert_int_equal(srv_b.auth_requests, 0);
    api_result_clear(&r);
    api_free(api);

    /* Milvus: Authorization: <token> (no Bearer), only to its own origin */
    char base[96];
    snprintf(base, sizeof base, "%s/api/", srv_a.base); /* trailing '/' is dropped */
    api = make_api(API_MILVUS, base, 1, 0, 2000, NULL);
    base[strlen(base) - 1] = '\0';
    assert_string_equal(api_base_url(api), base);
    server_reset(&srv_a);
    assert_int_equal(api_request(api, HTTP_GET, "ok", NULL, API_IDEMPOTENT, &r), API_OK); /* '/' added */
    assert_int_equal(route_hits(&srv_a, "/api/ok"), 1);
    assert_string_equal(srv_a.last_authorization, SECRET);
    assert_string_equal(srv_a.last_user_key, "");
    snprintf(url, sizeof url, "%s/echo", srv_b.base);
    api_request(api, HTTP_GET, url, NULL, API_IDEMPOTENT, &r);
    assert_int_equal(srv_b.auth_requests, 0);

    /* origin comparison details */
    snprintf(url, sizeof url, "HTTP://127.0.0.1:%d/x", srv_a.port);
    assert_true(api_same_origin(api, url));
    snprintf(url, sizeof url, "https://127.0.0.1:%d/x", srv_a.port);
    assert_false(api_same_origin(api, url));
    assert_false(api_same_origin(api, "/relative"));
    assert_false(api_same_origin(api, "http://127.0.0.1.evil.example/x"));
    api_result_clear(&r);
    api_free(api);

    /* default ports are made explicit */
    api_options_t o = {.kind = API_PLOOMES, .base_url = "https://api2.ploomes.com",
                       .secret = SECRET};
    char err[256];
    api = api_new(&o, err, sizeof err);
    assert_non_null(api);
    assert_true(api_same_origin(api, "https://API2.ploomes.com:443/Contacts?$skip=300"));
    assert_false(api_same_origin(api, "https://public6-api2.ploomes.com/Contacts"));
    assert_false(api_same_origin(api, "http://api2.ploomes.com/Contacts"));
    assert_false(api_same_origin(api, "https://api2.ploomes.com:8443/Contacts"));
    assert_false(api_same_origin(api, "https://api2.ploomes.com@evil.example/Contacts"));
    api_free(api);
}

static void test_methods_and_body(void **state)
{
    (void)state;
    api_t *api = make_api(API_MILVUS, srv_a.base, 1, 0, 2000, NULL);
    api_result_t r = {0};
    static const struct {
        http_method_t m;
        const char *body;
        const char *want_method;
    } rows[] = {
        {HTTP_POST, "{\"cliente_documento\":\"11144477735\"}", "POST"},
        {HTTP_PATCH, "{\"Name\":\"x\"}", "PATCH"},
        {HTTP_PUT, "{\"chamado_codigo\":1}", "PUT"},
        {HTTP_DELETE, NULL, "DELETE"},
        {HTTP_GET, NULL, "GET"},
        {HTTP_POST, NULL, "POST"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        assert_int_equal(api_request(api, rows[i].m, "/echo", rows[i].body, API_IDEMPOTENT, &r), API_OK);
        assert_string_equal(srv_a.last_method, rows[i].want_method);
        assert_string_equal(srv_a.last_body, rows[i].body ? rows[i].body : "");
        assert_string_equal(srv_a.last_ctype, "application/json");
    }
    api_result_clear(&r);
    api_free(api);
}

static void test_keep_alive(void **state)
{
    (void)state;
    api_t *api = make_api(API_PLOOMES, srv_a.base, 1, 0, 2000, NULL);
    api_result_t r = {0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(api_request(api, HTTP_GET, "/ok", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_int_equal(route_hits(&srv_a, "/ok"), 5);
    assert_int_equal(srv_a.connections, 1); /* one connection for five requests */
    /* creates too: guarded against libcurl's re-send (test_create_connection_lost), they need
     * no connection of their own (a TCP and TLS handshake per ticket) */
    for (int i = 0; i < 3; i++)
        assert_int_equal(api_request(api, HTTP_POST, "/ok", "{}", API_NOT_IDEMPOTENT, &r),
                         API_OK);
    assert_int_equal(route_hits(&srv_a, "/ok"), 8);
    if (srv_a.connections != 1)
        fail_msg("creates opened %d connections beside the kept-alive one",
                 srv_a.connections - 1);
    api_result_clear(&r);
    api_free(api);
}

static volatile sig_atomic_t g_stop;

static void *set_stop_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 300000000L};
    nanosleep(&ts, NULL);
    g_stop = 1;
    return NULL;
}

static void test_stop_flag_interrupts_wait(void **state)
{
    (void)state;
    g_stop = 0;
    /* /busy says Retry-After: 30 (honoured: the cap is 60 s here); the stop flag must end the
     * wait at once. The bound below is generous for a loaded machine and still far from 30 s. */
    api_options_t o = {.kind = API_PLOOMES,
                       .base_url = srv_a.base,
                       .secret = SECRET,
                       .connect_timeout_ms = 1000,
                       .total_timeout_ms = 2000,
                       .max_body_bytes = 64 * 1024,
                       .max_attempts = 5,
                       .retry_base_ms = 0,
                       .retry_max_ms = 60000,
                       .stop = &g_stop};
    char err[256];
    api_t *api = api_new(&o, err, sizeof err);
    if (!api)
        fail_msg("api_new: %s", err);
    pthread_t th;
    pthread_create(&th, NULL, set_stop_later, NULL);
    api_result_t r = {0};
    int64_t t0 = testenv_now_ms();
    assert_int_equal(api_request(api, HTTP_GET, "/busy", NULL, API_IDEMPOTENT, &r), API_STOPPED);
    int64_t took = testenv_now_ms() - t0;
    pthread_join(th, NULL);
    if (took > 10000)
        fail_msg("stop flag took %lld ms to end the wait", (long long)took);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.status, 503); /* the last failure is still described */
    api_result_clear(&r);
    api_free(api);
    g_stop = 0;
}

typedef struct {
    int calls;
    int64_t first_remaining;
    int64_t last_remaining;
    int give_up_after;
} hook_state_t;

static int wait_hook(void *ctx, int64_t remaining_ms)
{
    hook_state_t *h = ctx;
    if (h->calls == 0)
        h->first_remaining = remaining_ms;
    h->last_remaining = remaining_ms;
    h->calls++;
    if (h->give_up_after && h->calls >= h->give_up_after)
        return 1;
    /* a worker would poll Kafka here for up to min(remaining, 100) ms */
    int64_t slice = remaining_ms < 50 ? remaining_ms : 50;
    struct timespec ts = {0, (long)slice * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}

static void test_wait_hook(void **state)
{
    (void)state;
    hook_state_t h = {0};
    api_options_t o = {.kind = API_PLOOMES, .base_url = srv_a.base, .secret = SECRET,
                       .max_attempts = 2, .retry_base_ms = 0, .retry_max_ms = 1000,
                       .wait_hook = wait_hook, .wait_ctx = &h};
    char err[256];
    api_t *api = api_new(&o, err, sizeof err);
    assert_non_null(api);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_GET, "/limited", NULL, API_IDEMPOTENT, &r), API_OK);
    /* Retry-After: 1 -> about 20 calls of <= 50 ms, remaining shrinking from ~1000 (bounds
     * generous for a loaded machine, where a 50 ms sleep can take far longer) */
    assert_true(h.calls >= 3);
    assert_true(h.first_remaining > 500 && h.first_remaining <= 1000);
    assert_true(h.last_remaining < h.first_remaining);

    /* a hook that returns non-zero abandons the wait */
    hook_state_t h2 = {.give_up_after = 3};
    o.wait_ctx = &h2;
    api_t *api2 = api_new(&o, err, sizeof err);
    assert_int_equal(api_request(api2, HTTP_GET, "/busy", NULL, API_IDEMPOTENT, &r), API_STOPPED);
    assert_int_equal(h2.calls, 3);
    api_result_clear(&r);
    api_free(api2);
    api_free(api);
}

static void test_no_secret_in_logs(void **state)
{
    (void)state;
    char path[] = "/tmp/it_http_api_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    log_init("it_http_api", LOG_DEBUG);
    api_t *api = make_api(API_PLOOMES, srv_a.base, 2, 0, 300, NULL);
    log_clear_secrets(); /* prove that api_ itself never prints it, scrubbing aside */
    log_set_fd(fd);
    api_result_t r = {0};
    api_request(api, HTTP_GET, "/auth", NULL, API_IDEMPOTENT, &r);
    api_request(api, HTTP_GET, "/down?$filter=Register%20eq%20%2711144477735%27", NULL, API_IDEMPOTENT, &r);
    api_request(api, HTTP_GET, "/slow", NULL, API_IDEMPOTENT, &r);
    log_set_fd(2);
    log_init("it_http_api", LOG_WARN);
    char buf[16384];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, SECRET));
    assert_null(strstr(buf, "User-Key"));
    assert_null(strstr(buf, "11144477735")); /* query values are redacted */
    assert_non_null(strstr(buf, "event=http_attempt"));
    assert_non_null(strstr(buf, "event=http_retry"));
    assert_non_null(strstr(buf, "event=http_failed"));
    assert_non_null(strstr(buf, "url=http://127.0.0.1"));
    assert_non_null(strstr(buf, "$filter=*"));
    api_result_clear(&r);
    api_free(api);
}

/* A create whose connection is lost after the server read it (issue 8 item 1): one request,
 * API_AMBIGUOUS. The connection of an earlier read is kept alive and reused; libcurl would
 * re-send a request by itself on such a reused connection that dies before answering: for a
 * create that second send is refused (http_client_set_no_resend). A read in the same place is
 * retried as usual. */
static void test_create_connection_lost(void **state)
{
    (void)state;
    api_t *api = make_api(API_MILVUS, srv_a.base, 3, 0, 2000, NULL);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_GET, "/ok", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_int_equal(api_request(api, HTTP_POST, "/vanish", "{\"chamado_assunto\":\"x\"}",
                                 API_NOT_IDEMPOTENT, &r), API_AMBIGUOUS);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error_class, "CurlRecv");
    if (route_hits(&srv_a, "/vanish") != 1)
        fail_msg("the server saw the create %d times", route_hits(&srv_a, "/vanish"));

    assert_int_equal(api_request(api, HTTP_POST, "/vanish", "{}", API_IDEMPOTENT, &r),
                     API_RETRIABLE_EXHAUSTED);
    assert_true(r.attempts == 3 && route_hits(&srv_a, "/vanish") >= 4);
    api_result_clear(&r);
    api_free(api);
}

static void test_http_client_direct(void **state)
{
    (void)state;
    http_options_t o = {.total_timeout_ms = 2000, .max_body_bytes = 64 * 1024};
    char err[256];
    http_client_t *c = http_client_new(&o, err, sizeof err);
    assert_non_null(c);
    http_response_t resp = {0};
    char url[128];
    snprintf(url, sizeof url, "%s/limited", srv_a.base);
    assert_int_equal(http_request(c, HTTP_GET, url, NULL, NULL, 0, &resp, err, sizeof err), 0);
    assert_int_equal(resp.status, 429);
    assert_int_equal(resp.retry_after_ms, 1000);
    assert_int_equal(resp.transport, HTTP_TRANSPORT_OK);
    assert_string_equal(resp.body, "{\"value\":\"Too many requests\"}");
    assert_int_equal(http_request(c, HTTP_GET, url, NULL, NULL, 0, &resp, err, sizeof err), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.retry_after_ms, -1);

    snprintf(url, sizeof url, "%s/big-chunked?x=secretvalue", srv_a.base);
    assert_int_equal(http_request(c, HTTP_GET, url, NULL, NULL, 0, &resp, err, sizeof err), -1);
    assert_int_equal(resp.transport, HTTP_TRANSPORT_TOO_LARGE);
    assert_string_equal(resp.body, "");
    assert_null(strstr(err, "secretvalue")); /* error text names the URL without values */
    assert_non_null(strstr(err, "/big-chunked?x=*"));

    assert_int_equal(http_request(c, HTTP_GET, "notaurl://x", NULL, NULL, 0, &resp, err,
                                  sizeof err), -1);
    assert_int_equal(http_classify_response(&resp, true), HTTP_CLASS_PERMANENT);
    http_response_clear(&resp);
    http_client_free(c);
}

static void test_api_new_validation(void **state)
{
    (void)state;
    char err[256];
    api_options_t o = {.kind = API_MILVUS, .base_url = "https://x.example/api", .secret = ""};
    assert_null(api_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "MILVUS_TOKEN"));
    o.secret = "abc\r\nX-Evil: 1";
    assert_null(api_new(&o, err, sizeof err));
    assert_null(strstr(err, "Evil"));
    o.secret = "tok";
    o.base_url = "ftp://x.example";
    assert_null(api_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "http"));
    o.base_url = NULL;
    assert_null(api_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "MILVUS_BASE_URL"));
}

/* ---- metrics (api.h "Metrics"): read back through the families api_new() registered ------- */

static double requests_total(metrics_t *m, const char *api, const char *method,
                             const char *outcome)
{
    metrics_family_t *f = metrics_counter_new(m, "http_requests_total", NULL,
                                              (const char *[]){"api", "method", "outcome", NULL});
    assert_non_null(f);
    return metrics_value(f, (const char *[]){api, method, outcome});
}

static double retries_total(metrics_t *m, const char *api, const char *reason)
{
    metrics_family_t *f = metrics_counter_new(m, "http_retries_total", NULL,
                                              (const char *[]){"api", "reason", NULL});
    assert_non_null(f);
    return metrics_value(f, (const char *[]){api, reason});
}

/* _count of http_request_duration_seconds{api,method,status} */
static double attempts_count(metrics_t *m, const char *api, const char *method,
                             const char *status)
{
    metrics_family_t *f = metrics_histogram_new(m, "http_request_duration_seconds", NULL,
                                                METRICS_HTTP_BUCKETS, METRICS_HTTP_BUCKETS_N,
                                                (const char *[]){"api", "method", "status", NULL});
    assert_non_null(f);
    return metrics_value(f, (const char *[]){api, method, status});
}

/* A counter labelled {api} only (waits). */
static double api_counter(metrics_t *m, const char *name, const char *api)
{
    metrics_family_t *f = metrics_counter_new(m, name, NULL, (const char *[]){"api", NULL});
    assert_non_null(f);
    return metrics_value(f, (const char *[]){api});
}

/* Each metrics test gets a fresh registry in *state. */
static int metrics_setup(void **state)
{
    reset_each(state);
    *state = metrics_new();
    return *state ? 0 : -1;
}

static int metrics_teardown(void **state)
{
    metrics_free(*state);
    return 0;
}

static void test_metrics_outcomes(void **state)
{
    metrics_t *m = *state;
    api_result_t r = {0};

    /* 503 then 200: one retry, one call ok, two attempts observed */
    api_t *api = make_api_metrics(API_PLOOMES, srv_a.base, 3, 10, 2000, NULL, m);
    assert_int_equal(api_request(api, HTTP_GET, "/blip?$filter=Register%20eq%20%2711144477735%27", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_true(retries_total(m, "ploomes", "HttpStatus503") == 1);
    assert_true(requests_total(m, "ploomes", "GET", "ok") == 1);
    assert_true(attempts_count(m, "ploomes", "GET", "503") == 1);
    assert_true(attempts_count(m, "ploomes", "GET", "200") == 1);
    assert_true(api_counter(m, "http_retry_wait_seconds_total", "ploomes") < 1.0);

    /* 429 + Retry-After: 1 -> a retry for HttpStatus429 and about a second of backoff */
    assert_int_equal(api_request(api, HTTP_GET, "/limited", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_true(retries_total(m, "ploomes", "HttpStatus429") == 1);
    assert_true(attempts_count(m, "ploomes", "GET", "429") == 1);
    assert_true(attempts_count(m, "ploomes", "GET", "200") == 2);
    assert_true(requests_total(m, "ploomes", "GET", "ok") == 2);
    double waited = api_counter(m, "http_retry_wait_seconds_total", "ploomes");
    if (waited < 0.95 || waited > 10.0)
        fail_msg("http_retry_wait_seconds_total=%g after Retry-After: 1", waited);

    /* 401: final at once, no retry */
    assert_int_equal(api_request(api, HTTP_GET, "/auth", NULL, API_IDEMPOTENT, &r), API_AUTH);
    assert_true(requests_total(m, "ploomes", "GET", "auth") == 1);
    assert_true(attempts_count(m, "ploomes", "GET", "401") == 1);
    assert_true(retries_total(m, "ploomes", "HttpStatus401") == 0);

    /* a second client on the same registry adds to the same families */
    api_t *mil = make_api_metrics(API_MILVUS, srv_a.base, 2, 0, 1000, NULL, m); /* < /slow */
    assert_int_equal(api_request(mil, HTTP_POST, "/bad", "{}", API_IDEMPOTENT, &r), API_PERMANENT);
    assert_true(requests_total(m, "milvus", "POST", "permanent") == 1);
    assert_true(attempts_count(m, "milvus", "POST", "400") == 1);

    /* timeouts: no status, the transport class labels the attempt */
    assert_int_equal(api_request(mil, HTTP_GET, "/slow", NULL, API_IDEMPOTENT, &r), API_RETRIABLE_EXHAUSTED);
    assert_true(attempts_count(m, "milvus", "GET", "CurlTimeout") == 2);
    assert_true(retries_total(m, "milvus", "CurlTimeout") == 1);
    assert_true(requests_total(m, "milvus", "GET", "retriable_exhausted") == 1);
    assert_true(requests_total(m, "ploomes", "GET", "retriable_exhausted") == 0);
    /* no rate limiter: no rate-limit waits */
    assert_true(api_counter(m, "ratelimit_waits_total", "ploomes") == 0);

    /* the exposition names every family, and no label holds a URL, a query value or the key */
    char *text = metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "# TYPE http_request_duration_seconds histogram"));
    assert_non_null(strstr(text, "http_request_duration_seconds_bucket{api=\"ploomes\","
                                 "method=\"GET\",status=\"503\",le=\"+Inf\"} 1"));
    assert_non_null(strstr(text, "http_retries_total{api=\"ploomes\",reason=\"HttpStatus503\"} 1"));
    assert_non_null(strstr(text, "# TYPE http_retry_wait_seconds_total counter"));
    assert_non_null(strstr(text, "# TYPE ratelimit_waits_total counter"));
    assert_non_null(strstr(text, "# TYPE ratelimit_wait_seconds_total counter"));
    assert_null(strstr(text, SECRET));
    assert_null(strstr(text, "127.0.0.1"));
    assert_null(strstr(text, "blip"));
    assert_null(strstr(text, "11144477735"));
    free(text);

    api_result_clear(&r);
    api_free(mil);
    api_free(api);
}

static void test_metrics_stopped(void **state)
{
    metrics_t *m = *state;
    hook_state_t h = {.give_up_after = 2};
    api_options_t o = {.kind = API_MILVUS, .base_url = srv_a.base, .secret = SECRET,
                       .max_attempts = 3, .retry_base_ms = 0, .retry_max_ms = 1000,
                       .wait_hook = wait_hook, .wait_ctx = &h, .metrics = m};
    char err[256];
    api_t *api = api_new(&o, err, sizeof err);
    assert_non_null(api);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_DELETE, "/busy", NULL, API_IDEMPOTENT, &r), API_STOPPED);
    assert_true(requests_total(m, "milvus", "DELETE", "stopped") == 1);
    assert_true(retries_total(m, "milvus", "HttpStatus503") == 1);
    assert_true(attempts_count(m, "milvus", "DELETE", "503") == 1);
    /* the abandoned backoff still counts the time it took (one hook slice of <= 50 ms) */
    double waited = api_counter(m, "http_retry_wait_seconds_total", "milvus");
    assert_true(waited > 0.0 && waited < 0.9); /* not the whole 1 s backoff */
    api_result_clear(&r);
    api_free(api);
}

static void test_metrics_registration(void **state)
{
    metrics_t *m = *state;
    /* NULL metrics: nothing registered, nothing recorded */
    api_t *api = make_api(API_PLOOMES, srv_a.base, 1, 0, 2000, NULL);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_GET, "/ok", NULL, API_IDEMPOTENT, &r), API_OK);
    api_free(api);
    char *text = metrics_render(m);
    assert_null(strstr(text, "http_requests_total"));
    free(text);

    /* the name taken by another type: api_new refuses, naming the metric */
    assert_non_null(metrics_gauge_new(m, "http_retries_total", "taken", NULL));
    api_options_t o = {.kind = API_PLOOMES, .base_url = srv_a.base, .secret = SECRET,
                       .metrics = m};
    char err[256];
    assert_null(api_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "http_retries_total"));
    assert_null(strstr(err, SECRET));
    api_result_clear(&r);
}

/* A limiter of 1 request per second: the second call waits about a second for it. */
static void test_metrics_ratelimit_wait(void **state)
{
    metrics_t *m = *state;
    char db[64], uri[512], err[512];
    testenv_unique(db, sizeof db, "it_http_api_");
    for (char *p = db; *p; p++)
        if (*p == '-')
            *p = '_';
    testenv_mongo_uri_for_db(uri, sizeof uri, db);
    store_t *st = store_open(uri, err, sizeof err);
    if (!st)
        fail_msg("store_open: %s", err);
    ratelimit_options_t ro = {.pool = store_pool(st), .database = store_db_name(st),
                              .base_url = srv_a.base, .secret = SECRET, .limit = 1,
                              .window_ms = 1000, .margin_ms = 0, .name = "ploomes"};
    ratelimit_t *rl = ratelimit_new(&ro, err, sizeof err);
    if (!rl)
        fail_msg("ratelimit_new: %s", err);
    api_options_t o = {.kind = API_PLOOMES, .base_url = srv_a.base, .secret = SECRET,
                       .max_attempts = 1, .ratelimit = rl, .metrics = m};
    api_t *api = api_new(&o, err, sizeof err);
    assert_non_null(api);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_GET, "/ok", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_true(api_counter(m, "ratelimit_waits_total", "ploomes") == 0);
    assert_int_equal(api_request(api, HTTP_GET, "/ok", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_true(api_counter(m, "ratelimit_waits_total", "ploomes") == 1);
    double waited = api_counter(m, "ratelimit_wait_seconds_total", "ploomes");
    if (waited < 0.5 || waited > 10.0)
        fail_msg("ratelimit_wait_seconds_total=%g for a 1 s window", waited);
    assert_true(requests_total(m, "ploomes", "GET", "ok") == 2);
    assert_true(api_counter(m, "http_retry_wait_seconds_total", "ploomes") == 0);

    api_result_clear(&r);
    api_free(api);
    ratelimit_free(rl);
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(st));
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    bson_error_t error;
    mongoc_database_drop(d, &error);
    mongoc_database_destroy(d);
    mongoc_client_pool_push(store_pool(st), c);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_outcome_table, reset_each),
        cmocka_unit_test_setup(test_bodies_and_excerpt, reset_each),
        cmocka_unit_test_setup(test_retry_after_honoured, reset_each),
        cmocka_unit_test_setup(test_connection_refused, reset_each),
        cmocka_unit_test_setup(test_auth_header_only_for_base_origin, reset_each),
        cmocka_unit_test_setup(test_methods_and_body, reset_each),
        cmocka_unit_test_setup(test_keep_alive, reset_each),
        cmocka_unit_test_setup(test_stop_flag_interrupts_wait, reset_each),
        cmocka_unit_test_setup(test_wait_hook, reset_each),
        cmocka_unit_test_setup(test_no_secret_in_logs, reset_each),
        cmocka_unit_test_setup(test_create_connection_lost, reset_each),
        cmocka_unit_test_setup(test_http_client_direct, reset_each),
        cmocka_unit_test_setup(test_api_new_validation, reset_each),
        cmocka_unit_test_setup_teardown(test_metrics_outcomes, metrics_setup, metrics_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_stopped, metrics_setup, metrics_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_registration, metrics_setup, metrics_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_ratelimit_wait, metrics_setup, metrics_teardown),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
