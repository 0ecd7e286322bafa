/* A create sent on a kept-alive connection that the server drops, end to end through a real
 * worker binary against milvus-sim (its keepalive_drop fault, sim/README.md).
 *
 * Workers send creates on reused connections (common/http.c). When a reused connection dies
 * before any byte of the answer, libcurl by itself sends the request again on a new
 * connection: for a create the server acted on, a duplicate. http_client_set_no_resend() refuses
 * that second send; the create then ends as a lost answer (API_AMBIGUOUS) and the worker
 * searches the target before any new create (SPEC §4 "Ambiguous creates").
 *
 * For clients-to-milvus (POST /cliente/criar, searched with /cliente/busca), tasks-to-milvus
 * (POST /chamado/criar, searched with /chamado/listagem) and clients-to-ploomes (POST /Contacts,
 * searched with GET /Contacts?$filter=Register eq ...), in both variants of the fault:
 *   before  the server closes the reused connection without processing the create (it closed
 *           the idle connection just as the client reused it): the worker logs the ambiguous
 *           create, searches, finds nothing, creates again: delivered `created`
 *   after   the server processes the create (the client / ticket is stored), then closes
 *           without answering: the worker searches and finds it: delivered
 *           `found_after_ambiguous`, never created twice
 * Each record's create is made on a reused connection (every record first searches the target
 * for its own client on the same connection), and the fault is armed for exactly one drop (of a
 * POST on the create's path: the search on /Contacts is a GET) before
 * each record is produced to a running worker (deterministic: one drop per record, checked
 * spent). Checks: every record delivered exactly once (one record_done, delivered, the reason
 * above), one client / ticket per record at milvus-sim, no dead letter; the worker logged each
 * ambiguous create (http_failed outcome=ambiguous error_class=CurlRecv, "not sent again") and
 * its metrics count them (http_requests_total outcome ambiguous, one CurlRecv attempt each);
 * and, in the server's own journal of requests (GET /_admin/requests), a search comes between
 * each dropped create and the next create: the create reached the server again only after the
 * search, never re-sent by libcurl on its own.
 *
 * KEEPALIVE_ONLY=<worker binary> runs one worker's cases (debugging).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wtest.h"

#define PKEY "PKEY-KEEPALIVE"
#define MTOKEN "MTOKEN-KEEPALIVE"
#define NOW "2026-06-01T10:00:00-03:00"
#define RECORDS 3

typedef struct {
    wt_sims_t sims;
    /* the running case's worker and its environment, here so that run_teardown kills and
     * reaps the worker and frees w whatever assertion ended the case */
    pid_t worker; /* 0 = none running */
    wt_t w;
} fx_t;

static fx_t fx;

static int fx_setup(void **state)
{
    (void)state;
    return wt_sims_start(&fx.sims, PKEY, WT_NO_RATE_LIMIT, MTOKEN, WT_NO_RATE_LIMIT);
}

static int fx_teardown(void **state)
{
    (void)state;
    return wt_sims_stop(&fx.sims);
}

/* ---- the two workers ------------------------------------------------------------------------ */

typedef struct {
    char key[24];
    char doc[12];
    int64_t id; /* the record's id (contact / task) */
} rec_t;

typedef struct worker_kind {
    const char *binary;
    bool to_ploomes;           /* the target is ploomes-sim (else milvus-sim) */
    const char *topic;
    const char *create_path;   /* the dropped create, as milvus-sim sees it */
    const char *search_method; /* the search after an ambiguous create */
    const char *search_path;
    int64_t base;              /* ids of this worker's records */
    /* seeds what the record needs and produces it */
    void (*produce)(wt_t *w, const struct worker_kind *k, rec_t *r, int seq);
    /* records at the target made for r */
    int (*count)(const cJSON *state, const rec_t *r);
} worker_kind_t;

static void c2m_produce(wt_t *w, const worker_kind_t *k, rec_t *r, int seq)
{
    (void)k;
    char value[512];
    snprintf(value, sizeof value,
             "{\"Id\":%lld,\"TypeId\":2,\"Name\":\"Keep %d\",\"Register\":\"%s\","
             "\"CreateDate\":\"2025-03-01T10:00:00-03:00\"}",
             (long long)r->id, seq, r->doc);
    assert_int_equal(wt_produce(w, "ploomes.contacts", r->key, value), 0);
}

static int c2m_count(const cJSON *state, const rec_t *r)
{
    return wt_sim_count(state, "clientes", "cnpj_cpf", r->doc);
}

/* The task's contact is a person whose client exists in Milvus (found by document on the same
 * connection just before the create), each record its own contact and client. */
static void t2m_produce(wt_t *w, const worker_kind_t *k, rec_t *r, int seq)
{
    int64_t contact = k->base + 500 + seq;
    char seed[512];
    snprintf(seed, sizeof seed,
             "{\"clientes\":[{\"id\":%lld,\"razao_social\":\"Keep %d\",\"nome_fantasia\":"
             "\"Keep %d\",\"cnpj_cpf\":\"%s\",\"token\":\"KT%lld\",\"is_fisica\":true,"
             "\"is_ativo\":true}]}",
             (long long)(k->base + 900 + seq), seq, seq, r->doc, (long long)(k->base + seq));
    assert_int_equal(simproc_seed(fx.sims.milvus, seed), 0);
    snprintf(seed, sizeof seed,
             "{\"Contacts\":[{\"Id\":%lld,\"TypeId\":2,\"Name\":\"Pessoa %d\",\"Register\":"
             "\"%s\",\"CreateDate\":\"2025-01-10T10:00:00-03:00\"}]}",
             (long long)contact, seq, r->doc);
    assert_int_equal(simproc_seed(fx.sims.ploomes, seed), 0);
    char value[512];
    snprintf(value, sizeof value,
             "{\"Id\":%lld,\"ContactId\":%lld,\"Title\":\"Keep-alive %d\",\"Description\":"
             "\"dropped on reuse\",\"CreateDate\":\"" NOW "\",\"LastUpdateDate\":\"" NOW "\","
             "\"Tags\":[{\"TagId\":40049716}]}",
             (long long)r->id, (long long)contact, seq);
    assert_int_equal(wt_produce(w, "ploomes.tasks", r->key, value), 0);
}

static int t2m_count(const cJSON *state, const rec_t *r)
{
    return wt_sim_tickets(state, "task", r->id, NULL);
}

static void c2p_produce(wt_t *w, const worker_kind_t *k, rec_t *r, int seq)
{
    (void)k;
    char value[512];
    snprintf(value, sizeof value,
             "{\"id\":%lld,\"razao_social\":\"Keep %d\",\"nome_fantasia\":\"Keep %d\","
             "\"cnpj_cpf\":\"%s\",\"is_fisica\":true,\"is_ativo\":true,\"token\":\"KP%d\"}",
             (long long)r->id, seq, seq, r->doc, seq);
    assert_int_equal(wt_produce(w, "milvus.clients", r->key, value), 0);
}

static int c2p_count(const cJSON *state, const rec_t *r)
{
    return wt_sim_count(state, "Contacts", "Register", r->doc);
}

static const worker_kind_t C2M = {"clients-to-milvus", false, "ploomes.contacts",
                                  "/api/cliente/criar", "GET", "/api/cliente/busca", 610000,
                                  c2m_produce, c2m_count};
static const worker_kind_t T2M = {"tasks-to-milvus", false, "ploomes.tasks",
                                  "/api/chamado/criar", "POST", "/api/chamado/listagem", 620000,
                                  t2m_produce, t2m_count};
static const worker_kind_t C2P = {"clients-to-ploomes", true, "milvus.clients", "/Contacts",
                                  "GET", "/Contacts", 630000, c2p_produce, c2p_count};

static simproc *target_of(const worker_kind_t *k)
{
    return k->to_ploomes ? fx.sims.ploomes : fx.sims.milvus;
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* The journal's `total` (requests so far). */
static int64_t journal_total(simproc *sim)
{
    long st;
    cJSON *j = simproc_request_json(sim, "GET", "/_admin/requests", NULL, NULL, &st);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "total");
    assert_true(st == 200 && cJSON_IsNumber(t));
    int64_t n = (int64_t)t->valuedouble;
    cJSON_Delete(j);
    return n;
}

typedef struct {
    const wt_t *w;
    const char *key;
} done_wait_t;

static bool key_done(void *ctx)
{
    done_wait_t *d = ctx;
    return wt_count_done(d->w, d->key, NULL, NULL) >= 1;
}

static bool is(const cJSON *e, const char *field, const char *want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, field);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

/* The server's journal since seq `from`: `records` creates dropped (each on a reused
 * connection, in the variant's way), a search between each drop and the next create, and
 * `creates` creates in all. Returns NULL or a static description. */
static const char *check_journal(const worker_kind_t *k, int64_t from, const char *drop,
                                 int records, int creates)
{
    static char why[512];
    long st;
    cJSON *j = simproc_request_json(target_of(k), "GET", "/_admin/requests", NULL, NULL, &st);
    if (st != 200 || j == NULL) {
        cJSON_Delete(j);
        return "GET /_admin/requests failed";
    }
    int seen_creates = 0, drops = 0;
    bool after_drop = false, searched = false;
    why[0] = '\0';
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "requests"))
    {
        int64_t seq = (int64_t)cJSON_GetObjectItemCaseSensitive(e, "seq")->valuedouble;
        if (seq <= from || why[0])
            continue;
        if (is(e, "method", "POST") && is(e, "path", k->create_path)) {
            seen_creates++;
            if (after_drop && !searched) {
                snprintf(why, sizeof why,
                         "request %lld: the create reached the server again with no search "
                         "since it was dropped (a silent re-send)",
                         (long long)seq);
                continue;
            }
            after_drop = false;
            if (!is(e, "drop", "")) {
                drops++;
                double cr = cJSON_GetObjectItemCaseSensitive(e, "conn_request")->valuedouble;
                if (!is(e, "drop", drop) || cr < 2)
                    snprintf(why, sizeof why, "request %lld: dropped as %s on request %g of its "
                             "connection, expected %s on a reused one",
                             (long long)seq,
                             cJSON_GetObjectItemCaseSensitive(e, "drop")->valuestring, cr, drop);
                after_drop = true;
                searched = false;
            }
        } else if (is(e, "method", k->search_method) && is(e, "path", k->search_path)) {
            searched = true;
        }
    }
    cJSON_Delete(j);
    if (why[0])
        return why;
    if (drops != records || seen_creates != creates) {
        snprintf(why, sizeof why, "%d creates reached the server (%d dropped), expected %d (%d)",
                 seen_creates, drops, creates, records);
        return why;
    }
    return NULL;
}

/* ---- one run: a worker, a variant ----------------------------------------------------------- */

/* After every case, passed or failed: a worker still running (an assertion failed between its
 * start and its stop) is killed and reaped, and the case's environment freed. */
static int run_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (fx.worker > 0) {
        kill(fx.worker, SIGKILL);
        if (simproc_wait(fx.worker, 30000) < 0)
            rc = -1;
        fx.worker = 0;
    }
    wt_free(&fx.w);
    return rc;
}

static void run_variant(const worker_kind_t *k, const char *variant, int seq0)
{
    const char *only = getenv("KEEPALIVE_ONLY");
    if (only && strcmp(only, k->binary) != 0)
        return;
    bool before = strcmp(variant, "before") == 0;
    fprintf(stderr, "%s, keepalive_drop %s\n", k->binary, variant);
    wt_t *w = &fx.w;
    assert_int_equal(wt_init_apis(w, before ? "kab" : "kaa", simproc_api_url(fx.sims.ploomes),
                                  PKEY, simproc_api_url(fx.sims.milvus), MTOKEN),
                     0);
    wt_set(w, "MAX_IN_FLIGHT", "1");
    wt_set(w, "LOG_LEVEL", "info");
    wt_set(w, "MILVUS_MIN_ID", "0");
    simproc *target = target_of(k);
    const char *api = k->to_ploomes ? "ploomes" : "milvus";
    int64_t from = journal_total(target);

    int port = 0;
    pid_t pid = pt_start_daemon(k->binary, wt_env(w), w->log, &port);
    assert_true(pid > 0);
    fx.worker = pid;
    rec_t recs[RECORDS];
    bool ok = true;
    for (int i = 0; i < RECORDS && ok; i++) {
        rec_t *r = &recs[i];
        int seq = seq0 + i;
        r->id = k->base + seq;
        snprintf(r->key, sizeof r->key, "%lld", (long long)r->id);
        testenv_make_cpf("4", r->id, r->doc); /* 9 digits "4nnnnnnnn" */
        char faults[256];
        snprintf(faults, sizeof faults,
                 "{\"keepalive_drop\":\"%s\",\"keepalive_drop_times\":1,"
                 "\"keepalive_drop_path\":\"%s\",\"keepalive_drop_method\":\"POST\"}",
                 variant, k->create_path);
        assert_int_equal(simproc_faults(target, faults), 0);
        k->produce(w, k, r, seq);
        assert_int_equal(wt_flush(w), 0);
        done_wait_t d = {w, r->key};
        if (!testenv_wait_until(key_done, &d, 90000, 50)) {
            fprintf(stderr, "FAIL record %s never finished\n", r->key);
            ok = false;
        } else if (simproc_fault_num(target, "keepalive_drop_times", -100) != 0) {
            fprintf(stderr, "FAIL record %s: its create was not dropped (not on a reused "
                            "connection?)\n", r->key);
            ok = false;
        }
    }
    assert_int_equal(simproc_faults(target, "{\"keepalive_drop\":\"off\"}"), 0);

    char *metrics = NULL;
    long mst = pt_http_get(port, "/metrics", &metrics);
    kill(pid, SIGTERM);
    int rc = simproc_wait(pid, 30000); /* reaped (killed after 30 s) */
    fx.worker = 0;
    if (!ok || rc != 0 || mst != 200) {
        pt_dump_log(w->log, 8000);
        free(metrics);
        fail_msg("%s (%s): exit %d, /metrics %ld", k->binary, variant, rc, mst);
    }

    /* what a user cares about: each record delivered exactly once, one record at the target */
    const char *reason = before ? "created" : "found_after_ambiguous";
    cJSON *state = simproc_state(target);
    assert_non_null(state);
    int bad = 0;
    for (int i = 0; i < RECORDS; i++) {
        int done = wt_count_done(w, recs[i].key, NULL, NULL);
        int good = wt_count_done(w, recs[i].key, "delivered", reason);
        int at_target = k->count(state, &recs[i]);
        if (done != 1 || good != 1 || at_target != 1) {
            fprintf(stderr, "FAIL key %s: %d record_done lines (%d delivered %s), %d at the "
                            "target\n", recs[i].key, done, good, reason, at_target);
            bad++;
        }
    }
    cJSON_Delete(state);
    long letters = wt_topic_count(w, "pipeline.dlq");
    /* the worker saw each drop as a lost answer and did not send it again by itself */
    char series[160];
    snprintf(series, sizeof series, "event=http_failed api=%s method=POST", api);
    int ambiguous = wt_log_count(w, series);
    int lost = wt_log_count(w, "outcome=ambiguous error_class=CurlRecv");
    int refused = wt_log_count(w, "not sent again: the request is not idempotent");
    int again = wt_log_count(w, "event=create_again");
    snprintf(series, sizeof series,
             "http_requests_total{api=\"%s\",method=\"POST\",outcome=\"ambiguous\"}", api);
    double m_amb = pt_metric_value(metrics, series);
    snprintf(series, sizeof series,
             "http_request_duration_seconds_count{api=\"%s\",method=\"POST\",status=\"CurlRecv\"}",
             api);
    double m_recv = pt_metric_value(metrics, series);
    fprintf(stderr,
            "  log: %d http_failed (%d CurlRecv ambiguous, %d re-sends refused), %d create_again; "
            "metrics: %g ambiguous POSTs, %g CurlRecv attempts; %ld dead letters\n",
            ambiguous, lost, refused, again, m_amb, m_recv, letters);
    if (letters != 0 || ambiguous != RECORDS || lost != RECORDS || refused != RECORDS ||
        again != (before ? RECORDS : 0) || m_amb != RECORDS || m_recv != RECORDS) {
        fprintf(stderr, "FAIL expected %d of each (create_again %d), no dead letter\n", RECORDS,
                before ? RECORDS : 0);
        bad++;
    }
    free(metrics);
    /* the server's view: a create came again only after a search */
    char drop[32];
    snprintf(drop, sizeof drop, "keepalive_%s", variant);
    const char *j = check_journal(k, from, drop, RECORDS, before ? 2 * RECORDS : RECORDS);
    if (j) {
        fprintf(stderr, "FAIL journal: %s\n", j);
        bad++;
    }
    if (bad) {
        pt_dump_log(w->log, 8000);
        fail_msg("%s (keepalive_drop %s): %d checks failed (FAIL lines above)", k->binary,
                 variant, bad);
    }
    wt_free(w);
}

/* The cases: each worker in both variants (seq0: the first record's offset from the worker's
 * base, so that the two variants use other ids and documents). */
typedef struct {
    const char *name;
    const worker_kind_t *kind;
    const char *variant;
    int seq0;
} case_t;

static const case_t CASES[] = {
    {"clients_to_milvus_before", &C2M, "before", 0},
    {"clients_to_milvus_after", &C2M, "after", 10},
    {"tasks_to_milvus_before", &T2M, "before", 0},
    {"tasks_to_milvus_after", &T2M, "after", 10},
    {"clients_to_ploomes_before", &C2P, "before", 0},
    {"clients_to_ploomes_after", &C2P, "after", 10},
};
#define NCASES (sizeof CASES / sizeof CASES[0])

/* One cmocka test: *state is its row of CASES. */
static void run_case(void **state)
{
    const case_t *c = *state;
    run_variant(c->kind, c->variant, c->seq0);
}

int main(void)
{
    struct CMUnitTest tests[NCASES];
    for (size_t i = 0; i < NCASES; i++)
        tests[i] = (struct CMUnitTest){CASES[i].name, run_case, NULL, run_teardown,
                                       (void *)&CASES[i]};
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
