/* Integration test of api_'s idempotence rule (api.h "Idempotence", SPEC §4 "Ambiguous
 * creates") against milvus-sim (a subprocess, simproc): a create (API_NOT_IDEMPOTENT) whose
 * outcome is unknown — a timeout after sending, 408, any 5xx — comes back API_AMBIGUOUS after
 * that one attempt and is never sent again; failures that certainly did not reach the server
 * (connection refused) or that the server says it did not process (429, 425) are still
 * retried; reads (API_IDEMPOTENT, POST /chamado/listagem included) are retried as before.
 * Also http_request()'s request_sent, which the rule stands on.
 *
 * The sim counts what it handled: GET /_admin/state (tickets) and /_admin/stats (requests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "log.h"
#include "simproc.h"
#include "testenv.h"

#define TOKEN "milvus-token-it-api-ambiguous"
#define SEED                                                                                     \
    "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"nome_fantasia\":\"ACME\","                  \
    "\"cnpj_cpf\":\"11222333000181\"}]}"
#define TICKET                                                                                   \
    "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"Instalação\","                           \
    "\"chamado_descricao\":\"[ploomes:task:4242]\\nsegunda linha\"}"
#define LISTAGEM "{\"filtro_body\":{\"cliente_token\":\"AAA111\",\"status\":10}}"

static simproc *g_sim;

static int setup_all(void **state)
{
    (void)state;
    log_init("it_api_ambiguous", LOG_WARN);
    char err[256];
    g_sim = simproc_start_milvus(TOKEN, err, sizeof err);
    if (!g_sim) {
        fprintf(stderr, "milvus-sim: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    return simproc_stop(g_sim) == 0 ? 0 : -1;
}

/* A clean simulator: no state, default faults, our client seeded, no rate limit (the sim's
 * 429s would blur the counts), then `faults` (a JSON object) applied. */
static void sim_prepare(const char *faults)
{
    assert_int_equal(simproc_reset(g_sim), 0);
    assert_int_equal(simproc_seed(g_sim, SEED), 0);
    assert_int_equal(simproc_faults(g_sim, "{\"rate_limit_per_min\":0}"), 0);
    if (faults)
        assert_int_equal(simproc_faults(g_sim, faults), 0);
}

static int tickets_in_sim(void)
{
    cJSON *st = simproc_state(g_sim);
    assert_non_null(st);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "chamados"));
    cJSON_Delete(st);
    return n;
}

/* Requests the sim handled (any status) whose path ends with `suffix`. */
static int handled(const char *suffix)
{
    cJSON *st = simproc_stats(g_sim);
    assert_non_null(st);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(st, "requests"))
    {
        const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "path"));
        size_t pl = path ? strlen(path) : 0, sl = strlen(suffix);
        if (pl >= sl && strcmp(path + pl - sl, suffix) == 0)
            n += (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count"));
    }
    cJSON_Delete(st);
    return n;
}

static bool at_least_one_ticket(void *ctx)
{
    (void)ctx;
    return tickets_in_sim() >= 1;
}

static bool more_than_one_ticket(void *ctx)
{
    (void)ctx;
    return tickets_in_sim() > 1;
}

static api_t *make_api(const char *base, int attempts, long timeout_ms)
{
    api_options_t o = {.kind = API_MILVUS,
                       .base_url = base,
                       .secret = TOKEN,
                       .connect_timeout_ms = 1000,
                       .total_timeout_ms = timeout_ms,
                       .max_attempts = attempts,
                       .retry_base_ms = 10,
                       .retry_max_ms = 200};
    char err[256];
    api_t *api = api_new(&o, err, sizeof err);
    if (!api)
        fail_msg("api_new: %s", err);
    return api;
}

/* issue 8 item 1: milvus-sim answering after 1500 ms, a 1000 ms client timeout, 3 attempts.
 * The old code sent the create three times (three tickets with one marker). */
static void test_create_timeout_is_ambiguous_and_sent_once(void **state)
{
    (void)state;
    sim_prepare("{\"latency_ms\":1500}");
    api_t *api = make_api(simproc_api_url(g_sim), 3, 1000);
    api_result_t r = {0};
    api_outcome_t oc =
        api_request(api, HTTP_POST, "/chamado/criar", TICKET, API_NOT_IDEMPOTENT, &r);
    if (oc != API_AMBIGUOUS || r.attempts != 1)
        fail_msg("create that timed out: outcome=%s attempts=%d class=%s",
                 api_outcome_name(oc), r.attempts, r.error_class);
    assert_int_equal(r.outcome, API_AMBIGUOUS);
    assert_string_equal(r.error_class, "CurlTimeout");
    assert_int_equal(r.status, 0);
    assert_int_equal(strlen(r.first_failure), 24);
    /* the sim stores the ticket once its latency is over */
    assert_true(testenv_wait_until(at_least_one_ticket, NULL, 20000, 50));
    /* and no second one arrives: a re-sent create would land within one more latency period;
     * wait for it (3 s, twice the latency) and expect the wait to time out */
    assert_false(testenv_wait_until(more_than_one_ticket, NULL, 3000, 100));
    assert_int_equal(tickets_in_sim(), 1);
    assert_int_equal(handled("/chamado/criar"), 1);
    api_result_clear(&r);
    api_free(api);
}

/* The same timeout on a read is retried: the rule is the caller's flag, not the method. */
static void test_read_timeout_still_retried(void **state)
{
    (void)state;
    sim_prepare("{\"latency_ms\":1500}");
    api_t *api = make_api(simproc_api_url(g_sim), 2, 1000);
    api_result_t r = {0};
    assert_int_equal(
        api_request(api, HTTP_POST, "/chamado/listagem", LISTAGEM, API_IDEMPOTENT, &r),
        API_RETRIABLE_EXHAUSTED);
    assert_int_equal(r.attempts, 2);
    assert_string_equal(r.error_class, "CurlTimeout");
    api_result_clear(&r);
    api_free(api);
}

/* Statuses injected by the sim's error_burst (the next `burst` API requests answer `status`
 * instead of being handled), for a create and for a read. */
typedef struct {
    int status;
    int burst;
    bool create;           /* POST /chamado/criar NOT_IDEMPOTENT, else /chamado/listagem */
    api_outcome_t outcome;
    int attempts;          /* attempts api_ reports = requests the sim handled */
    int tickets;           /* tickets stored at the end */
} status_row_t;

static void test_status_table(void **state)
{
    (void)state;
    static const status_row_t rows[] = {
        /* may have taken effect: ambiguous at once, never re-sent */
        {503, 1, true, API_AMBIGUOUS, 1, 0},
        {500, 1, true, API_AMBIGUOUS, 1, 0},
        {502, 1, true, API_AMBIGUOUS, 1, 0},
        {504, 1, true, API_AMBIGUOUS, 1, 0},
        {408, 1, true, API_AMBIGUOUS, 1, 0},
        {507, 1, true, API_AMBIGUOUS, 1, 0}, /* any 5xx */
        /* not processed: still retried for a create */
        {429, 1, true, API_OK, 2, 1},
        {425, 2, true, API_OK, 3, 1},
        /* final */
        {400, 1, true, API_PERMANENT, 1, 0},
        {401, 1, true, API_AUTH, 1, 0},
        /* reads retry 5xx and 408 as before */
        {503, 2, false, API_OK, 3, 0},
        {408, 1, false, API_OK, 2, 0},
        {500, 3, false, API_RETRIABLE_EXHAUSTED, 3, 0},
    };
    api_t *api = make_api(simproc_api_url(g_sim), 3, 5000);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const status_row_t *w = &rows[i];
        char faults[96];
        snprintf(faults, sizeof faults, "{\"error_status\":%d,\"error_burst\":%d}", w->status,
                 w->burst);
        sim_prepare(faults);
        api_result_t r = {0};
        api_outcome_t oc =
            w->create
                ? api_request(api, HTTP_POST, "/chamado/criar", TICKET, API_NOT_IDEMPOTENT, &r)
                : api_request(api, HTTP_POST, "/chamado/listagem", LISTAGEM, API_IDEMPOTENT, &r);
        const char *path = w->create ? "/chamado/criar" : "/chamado/listagem";
        int seen = handled(path);
        int tickets = tickets_in_sim();
        if (oc != w->outcome || r.attempts != w->attempts || seen != w->attempts ||
            tickets != w->tickets)
            fail_msg("row %zu (%d x%d %s): outcome=%s attempts=%d sim saw %d, tickets=%d", i,
                     w->status, w->burst, path, api_outcome_name(oc), r.attempts, seen, tickets);
        if (oc == API_AMBIGUOUS) {
            char want[32];
            snprintf(want, sizeof want, "HttpStatus%d", w->status);
            assert_string_equal(r.error_class, want);
            assert_int_equal(r.status, w->status);
            assert_true(strlen(r.message) > 0);
        }
        api_result_clear(&r);
    }
    api_free(api);
}

/* A port that refuses connections (bound, not listening); *fd must be closed by the caller. */
static void refusing_base(char *base, size_t size, int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&addr, sizeof addr), 0);
    socklen_t len = sizeof addr;
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&addr, &len), 0);
    snprintf(base, size, "http://127.0.0.1:%d/api", ntohs(addr.sin_port));
}

/* Nothing was sent: a create is retried like any request. */
static void test_create_connect_refused_retried(void **state)
{
    (void)state;
    char base[96];
    int fd;
    refusing_base(base, sizeof base, &fd);
    api_t *api = make_api(base, 3, 1000);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_POST, "/chamado/criar", TICKET, API_NOT_IDEMPOTENT, &r),
                     API_RETRIABLE_EXHAUSTED);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(r.error_class, "CurlConnect");
    api_result_clear(&r);
    api_free(api);
    close(fd);
}

/* http_request's request_sent: false for a refused connection, true for a timeout while the
 * server holds the request, true for any answer. */
static void test_request_sent_flag(void **state)
{
    (void)state;
    http_options_t ho = {.connect_timeout_ms = 1000, .total_timeout_ms = 1000};
    char err[256];
    http_client_t *c = http_client_new(&ho, err, sizeof err);
    assert_non_null(c);
    http_response_t resp = {0};
    char url[160], base[96];
    int fd;
    refusing_base(base, sizeof base, &fd);
    snprintf(url, sizeof url, "%s/chamado/criar", base);
    assert_int_equal(http_request(c, HTTP_POST, url, NULL, "{}", 2, &resp, err, sizeof err), -1);
    assert_int_equal(resp.transport, HTTP_TRANSPORT_CONNECT);
    assert_false(resp.request_sent);
    close(fd);

    assert_int_equal(http_request(c, HTTP_GET, "http://nonexistent.invalid/x", NULL, NULL, 0,
                                  &resp, err, sizeof err), -1);
    assert_false(resp.request_sent);

    sim_prepare("{\"latency_ms\":1500}");
    snprintf(url, sizeof url, "%s/chamado/listagem", simproc_api_url(g_sim));
    const char *json[] = {"Content-Type: application/json", NULL};
    assert_int_equal(http_request(c, HTTP_POST, url, json, LISTAGEM, strlen(LISTAGEM), &resp,
                                  err, sizeof err), -1);
    assert_int_equal(resp.transport, HTTP_TRANSPORT_TIMEOUT);
    assert_true(resp.request_sent);

    sim_prepare(NULL);
    assert_int_equal(http_request(c, HTTP_POST, url, json, LISTAGEM, strlen(LISTAGEM), &resp,
                                  err, sizeof err), 0);
    assert_int_equal(resp.status, 401); /* no token given: still an answer */
    assert_true(resp.request_sent);
    http_response_clear(&resp);
    http_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_timeout_is_ambiguous_and_sent_once),
        cmocka_unit_test(test_read_timeout_still_retried),
        cmocka_unit_test(test_status_table),
        cmocka_unit_test(test_create_connect_refused_retried),
        cmocka_unit_test(test_request_sent_flag),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
