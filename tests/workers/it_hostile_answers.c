/* Hostile answers from the APIs, for the four workers (issue 12). Each worker runs against the
 * simulators through a hostile_server (tests/support/hostile_server.h) that passes every request
 * on, except the one call of each record that the record's rule makes hostile:
 *
 *   answers   truncated body (Content-Length + 1000, then close), an HTML page with 200 and
 *             with 502, 200 with JSON that is not what apis.md documents (array for object,
 *             object without the id, id "abc", -7, 2^63, null, nested wrong types), a body past
 *             the 8 MiB cap, slow-loris (headers, then a byte per second past HTTP_TIMEOUT_MS),
 *             a 302 to another host, an empty 200 / 201, a 204
 *   calls     reads (search by document, the ticket's contact read): every attempt hostile;
 *             the record ends dead-lettered with its error context (all the DLQ headers, a
 *             non-empty message), and a search row that names the document without a usable
 *             id is never taken for "not found" (the target already has that client: the
 *             simulators are set so a second create would be accepted, i.e. a duplicate)
 *             creates (`POST /cliente/criar`, `/Contacts`, `/chamado/criar`): the simulator
 *             acts on the request, then the client gets the hostile answer: the create is
 *             ambiguous, searched, found: delivered `found_after_ambiguous`, exactly once
 *             the new client's token look-up (clients-to-milvus): delivered `created`, the id
 *             kept without the token
 * Each worker's run must exit 0 (--idle-exit) with one record_done line per record, the
 * letters expected and no other, and one target record per source record. Last, a worker is
 * stopped with SIGTERM in the middle of a slow-loris create: it exits 0 within HTTP_TIMEOUT_MS
 * plus its shutdown, the record finished once (searched and found, or released and found by
 * the next run): one client.
 *
 * HOSTILE_ONLY=<worker binary> runs one worker's cases (debugging).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "hostile_server.h"
#include "wtest.h"

#define PKEY "PKEY-HOSTILE"
#define MTOKEN "MTOKEN-HOSTILE"
#define ACME_DOC "11222333000181"
#define NOW "2026-06-01T10:00:00-03:00"
#define CAP_PLUS (8u * 1024u * 1024u + 65536u)

/* ---- the answers ---------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    hostile_mode_t mode;
    int status;
    const char *ct;
    const char *body; /* "%DOC%" is replaced by the record's document */
} answer_t;

#define HTML                                                                                       \
    "<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"

/* Transport and HTTP-level answers: the same for every call. */
static const answer_t COMMON[] = {
    {"truncated", HOSTILE_TRUNCATED, 200, NULL, "{\"value\":[{\"Id\":1"},
    {"html_200", HOSTILE_STATUS, 200, "text/html", HTML},
    {"html_502", HOSTILE_STATUS, 502, "text/html", HTML},
    {"oversize", HOSTILE_OVERSIZE, 200, NULL, NULL},
    {"slowloris", HOSTILE_SLOWLORIS, 200, NULL, NULL},
    {"redirect", HOSTILE_REDIRECT, 302, NULL, "http://evil.invalid/steal?x=1"},
    {"empty_200", HOSTILE_STATUS, 200, NULL, ""},
    {"empty_201", HOSTILE_STATUS, 201, NULL, ""},
    {"no_content_204", HOSTILE_STATUS, 204, NULL, NULL},
    {NULL, 0, 0, NULL, NULL},
};

#define J(name, body) {name, HOSTILE_STATUS, 200, NULL, body}

static const answer_t MILVUS_SEARCH[] = {
    J("array", "[{\"id\":1,\"cnpj_cpf\":\"%DOC%\"}]"),
    J("no_lista", "{\"total\":1}"),
    J("lista_null", "{\"lista\":null}"),
    J("id_string", "{\"lista\":[{\"id\":\"abc\",\"cnpj_cpf\":\"%DOC%\",\"is_fisica\":true}]}"),
    J("id_negative", "{\"lista\":[{\"id\":-7,\"cnpj_cpf\":\"%DOC%\",\"is_fisica\":true}]}"),
    J("id_2p63",
      "{\"lista\":[{\"id\":9223372036854775808,\"cnpj_cpf\":\"%DOC%\",\"is_fisica\":true}]}"),
    J("id_null", "{\"lista\":[{\"id\":null,\"cnpj_cpf\":\"%DOC%\",\"is_fisica\":true}]}"),
    J("nested", "{\"lista\":[{\"id\":{\"n\":[1]},\"cnpj_cpf\":\"%DOC%\",\"is_fisica\":\"yes\","
                "\"token\":{\"t\":[1]}}]}"),
    {NULL, 0, 0, NULL, NULL},
};

/* A bare id is documented (apis.md §2.3, §2.4): everything else is not. */
static const answer_t MILVUS_CREATE[] = {
    J("id_string", "\"abc\""),     J("id_negative", "-7"),
    J("id_2p63", "9223372036854775808"), J("id_null", "null"),
    J("array", "[1]"),             J("object_id", "{\"id\":12}"),
    J("nested", "{\"data\":{\"id\":[1]}}"),
    {NULL, 0, 0, NULL, NULL},
};

static const answer_t PLOOMES_SEARCH[] = {
    J("array", "[{\"Id\":1}]"),
    J("no_value", "{\"Id\":5}"),
    J("value_null", "{\"value\":null}"),
    J("id_string", "{\"value\":[{\"Id\":\"abc\"}]}"),
    J("id_negative", "{\"value\":[{\"Id\":-7}]}"),
    J("id_2p63", "{\"value\":[{\"Id\":9223372036854775808}]}"),
    J("id_null", "{\"value\":[{\"Id\":null}]}"),
    J("nested", "{\"value\":[{\"Id\":{\"x\":[1]},\"Register\":[\"%DOC%\"]}]}"),
    {NULL, 0, 0, NULL, NULL},
};

static const answer_t PLOOMES_CREATE[] = {
    J("id_string", "{\"value\":[{\"Id\":\"abc\"}]}"),
    J("id_negative", "{\"value\":[{\"Id\":-7}]}"),
    J("id_2p63", "{\"value\":[{\"Id\":9223372036854775808}]}"),
    J("id_null", "{\"value\":[{\"Id\":null}]}"),
    J("no_id", "{\"value\":[{\"Name\":\"x\"}]}"),
    J("array", "[{\"Id\":5}]"),
    J("nested", "{\"value\":{\"Id\":5}}"),
    {NULL, 0, 0, NULL, NULL},
};

static const answer_t PLOOMES_CONTACT[] = {
    J("array", "[{\"Id\":1}]"),
    J("value_null", "{\"value\":null}"),
    J("not_object", "{\"value\":[7]}"),
    J("id_string", "{\"value\":[{\"Id\":\"abc\"}]}"),
    J("nested", "{\"value\":[{\"Id\":{\"x\":1},\"Register\":[\"a\"],\"Name\":{\"n\":1}}]}"),
    J("other_contact", "{\"value\":[{\"Id\":1,\"TypeId\":1,\"Name\":\"Outro\",\"Register\":"
                       "\"11.222.333/0001-81\"}]}"),
    {NULL, 0, 0, NULL, NULL},
};

/* ---- one record's case ---------------------------------------------------------------------- */

/* CALL_AMBIGUOUS: the create answered hostile (the target acted) AND the search that follows
 * answered hostile too: dead-lettered AmbiguousCreate, the claim left pending (a replay
 * searches before anything is sent again), one record at the target. */
typedef enum { CALL_READ = 0, CALL_CREATE, CALL_TOKEN, CALL_AMBIGUOUS } call_kind_t;

typedef struct {
    char key[32];
    char doc[16];       /* the record's document (client workers) */
    int64_t id;         /* the record's id; the contact id for the ticket workers' reads */
    int64_t contact;
    const answer_t *a;
    const char *call;   /* "search", "create", "token", "contact" */
    call_kind_t kind;
    hostile_server_t *hs;
    int rule;
    int rule2;          /* CALL_AMBIGUOUS: the search's rule (-1: none) */
    const answer_t *b;  /* CALL_AMBIGUOUS: the search's answer */
    const char *outcome;
    const char *reason;
    const char *dlq;    /* expected class, NULL = any (dead cases) */
} case_t;

#define CASES_MAX 96

typedef struct {
    case_t c[CASES_MAX];
    size_t n;
} cases_t;

/* body with every "%DOC%" replaced by doc (malloc'd). */
static char *with_doc(const char *body, const char *doc)
{
    if (body == NULL)
        return NULL;
    size_t cap = strlen(body) * 2 + 64, o = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *p = body; *p;) {
        if (strncmp(p, "%DOC%", 5) == 0) {
            o += (size_t)snprintf(out + o, cap - o, "%s", doc);
            p += 5;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
    return out;
}

/* Adds a case and its rule. */
static case_t *add_case(cases_t *cs, const answer_t *a, const char *call, call_kind_t kind,
                        hostile_server_t *hs, const char *method, const char *path_contains,
                        const char *body_contains, int64_t id, const char *doc)
{
    assert_true(cs->n < CASES_MAX);
    case_t *c = &cs->c[cs->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->key, sizeof c->key, "%lld", (long long)id);
    snprintf(c->doc, sizeof c->doc, "%s", doc ? doc : "");
    c->id = id;
    c->a = a;
    c->call = call;
    c->kind = kind;
    c->hs = hs;
    char *body = with_doc(a->body, c->doc);
    hostile_rule_t r = {.method = method,
                        .path_contains = path_contains,
                        .body_contains = body_contains,
                        .skip = kind == CALL_TOKEN ? 1 : 0,
                        .times = kind == CALL_CREATE || kind == CALL_AMBIGUOUS ? 1 : -1,
                        .forward_first = kind == CALL_CREATE || kind == CALL_AMBIGUOUS,
                        .mode = a->mode,
                        .status = a->status,
                        .content_type = a->ct,
                        .body = body,
                        .size = CAP_PLUS,
                        .slow_seconds = 30};
    c->rule = hostile_server_add(hs, &r);
    c->rule2 = -1;
    assert_true(c->rule >= 0);
    free(body);
    if (kind == CALL_AMBIGUOUS) {
        c->outcome = "dead_lettered";
        c->dlq = "AmbiguousCreate";
    } else if (kind == CALL_CREATE) {
        c->outcome = "delivered";
        c->reason = "found_after_ambiguous";
    } else if (kind == CALL_TOKEN) {
        c->outcome = "delivered";
        c->reason = "created";
    } else {
        c->outcome = "dead_lettered";
    }
    return c;
}

/* CALL_AMBIGUOUS: the search after the create (the first matching search, made before the
 * create, passes) answers `b`, every time. */
static void add_search_rule(case_t *c, const answer_t *b, const char *path_contains)
{
    char *body = with_doc(b->body, c->doc);
    hostile_rule_t r = {.method = "GET",
                        .path_contains = path_contains,
                        .skip = 1,
                        .times = -1,
                        .mode = b->mode,
                        .status = b->status,
                        .content_type = b->ct,
                        .body = body,
                        .size = CAP_PLUS,
                        .slow_seconds = 30};
    c->b = b;
    c->rule2 = hostile_server_add(c->hs, &r);
    assert_true(c->rule2 >= 0);
    free(body);
}

/* Adds one case per answer of `common` then of `json`. */
typedef void (*add_fn)(cases_t *cs, const answer_t *a, int seq, void *ctx);

static void add_all(cases_t *cs, const answer_t *json, add_fn fn, void *ctx, int *seq)
{
    for (const answer_t *a = COMMON; a->name; a++)
        fn(cs, a, (*seq)++, ctx);
    for (const answer_t *a = json; a && a->name; a++)
        fn(cs, a, (*seq)++, ctx);
}

/* ---- checking a run ------------------------------------------------------------------------- */

typedef int (*target_count_fn)(const cJSON *state, const case_t *c);

static void check_cases(wt_t *w, const char *base, const cases_t *cs, simproc *target,
                        target_count_fn count)
{
    char why[512];
    int bad = 0;
    int total = wt_count_done(w, NULL, NULL, NULL);
    if (total != (int)cs->n) {
        fprintf(stderr, "FAIL %s: %d record_done lines for %zu records\n", base, total, cs->n);
        bad++;
    }
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic_ex(w, "pipeline.dlq", &dlq, 30000, true), 0);
    cJSON *state = simproc_state(target);
    assert_non_null(state);
    size_t letters = 0;
    for (size_t i = 0; i < cs->n; i++) {
        const case_t *c = &cs->c[i];
        const char *label = c->a->name;
        const wt_msg_t *m = wt_find_key(&dlq, c->key);
        const char *msg = m ? wt_header(m, KAFKA_DLQ_H_EXC_MESSAGE) : NULL;
        const char *cls = m ? wt_header(m, KAFKA_DLQ_H_EXC_CLASS) : NULL;
        bool dead = strcmp(c->outcome, "dead_lettered") == 0;
        int at_target = count ? count(state, c) : 1;
        why[0] = '\0';
        letters += m != NULL;
        if (hostile_server_hits(c->hs, c->rule) < 1 ||
            (c->rule2 >= 0 && hostile_server_hits(c->hs, c->rule2) < 1))
            snprintf(why, sizeof why, "the hostile answer was never served");
        else if (wt_count_done(w, c->key, c->outcome, c->reason) != 1)
            snprintf(why, sizeof why,
                     "no record_done outcome=%s reason=%s (%d lines for the key%s%s; %d records "
                     "at the target)",
                     c->outcome, c->reason ? c->reason : "*", wt_count_done(w, c->key, NULL, NULL),
                     m ? ", dead-lettered " : "", cls ? cls : "", at_target);
        else if (at_target != 1)
            snprintf(why, sizeof why, "%d records at the target, expected 1", at_target);
        else if (!dead && m)
            snprintf(why, sizeof why, "dead-lettered %s, expected %s", cls ? cls : "", c->outcome);
        else if (dead && !m)
            snprintf(why, sizeof why, "no dead letter");
        else if (dead && wt_check_letter(m, w, base, c->dlq))
            snprintf(why, sizeof why, "%s", wt_check_letter(m, w, base, c->dlq));
        else if (dead && (!msg || strlen(msg) < 8))
            snprintf(why, sizeof why, "exception message '%s' says nothing", msg ? msg : "");
        else if (c->kind == CALL_AMBIGUOUS && strstr(msg, "search failed (AmbiguousCreate)"))
            snprintf(why, sizeof why, "message '%s' does not name the search's failure", msg);
        else if (dead && c->a->mode == HOSTILE_REDIRECT && !strstr(msg, "redirect"))
            snprintf(why, sizeof why, "message '%s' does not say redirect", msg);
        if (why[0]) {
            fprintf(stderr, "FAIL %-8s %-14s%s%s (key %s): %s\n", c->call, label,
                    c->b ? " + search " : "", c->b ? c->b->name : "", c->key, why);
            bad++;
        } else {
            fprintf(stderr, "  %-8s %-14s%s%s -> %s %s%s%s\n", c->call, label,
                    c->b ? " + search " : "", c->b ? c->b->name : "", c->outcome,
                    dead ? cls : c->reason, dead ? ": " : "", dead ? msg : "");
        }
    }
    if (letters != dlq.n) {
        fprintf(stderr, "FAIL %s: %zu dead letters, %zu of them for the records\n", base, dlq.n,
                letters);
        bad++;
    }
    cJSON_Delete(state);
    wt_msgs_free(&dlq);
    if (bad) {
        pt_dump_log(w->log, 4000);
        fail_msg("%s: %d of %zu hostile cases failed (FAIL lines above)", base, bad, cs->n);
    }
}

/* ---- the fixture ---------------------------------------------------------------------------- */

typedef struct {
    wt_sims_t sims;
    hostile_server_t *hp, *hm;
    char milvus_api[128];
} fx_t;

static fx_t fx;

static int fx_setup(void **state)
{
    (void)state;
    char err[256];
    /* duplicate_status 200: a second client with a document is accepted, as a duplicate */
    if (wt_sims_start(&fx.sims, PKEY, WT_NO_RATE_LIMIT, MTOKEN,
                      "{\"rate_limit_per_min\":0,\"duplicate_status\":200}") != 0)
        return -1;
    fx.hp = hostile_server_start(simproc_base_url(fx.sims.ploomes), err, sizeof err);
    fx.hm = hostile_server_start(simproc_base_url(fx.sims.milvus), err, sizeof err);
    if (!fx.hp || !fx.hm) {
        fprintf(stderr, "hostile_server_start: %s\n", err);
        return -1;
    }
    snprintf(fx.milvus_api, sizeof fx.milvus_api, "%s/api", hostile_server_url(fx.hm));
    return 0;
}

static int fx_teardown(void **state)
{
    (void)state;
    hostile_server_stop(fx.hp);
    hostile_server_stop(fx.hm);
    return wt_sims_stop(&fx.sims);
}

static void setup_worker(wt_t *w, const char *tag)
{
    assert_int_equal(wt_init_apis(w, tag, hostile_server_url(fx.hp), PKEY, fx.milvus_api, MTOKEN),
                     0);
    wt_set(w, "MILVUS_MIN_ID", "0");
    wt_set(w, "LOG_LEVEL", "info");
}

static bool skipped(const char *binary)
{
    const char *only = getenv("HOSTILE_ONLY");
    return only && strcmp(only, binary) != 0;
}

static void run_worker(wt_t *w, const char *binary)
{
    assert_int_equal(wt_flush(w), 0);
    int64_t t0 = testenv_now_ms();
    int rc = wt_run(w, binary, 3, 120000);
    if (rc != 0) {
        pt_dump_log(w->log, 8000);
        fail_msg("%s exited %d", binary, rc);
    }
    fprintf(stderr, "%s: ran in %lld ms\n", binary, (long long)(testenv_now_ms() - t0));
}

/* ---- clients-to-milvus ---------------------------------------------------------------------- */

static int count_clients(const cJSON *state, const case_t *c)
{
    return wt_sim_count(state, "clientes", "cnpj_cpf", c->doc);
}

typedef struct {
    wt_t *w;
    call_kind_t kind;
    const answer_t *search; /* CALL_AMBIGUOUS */
} c2m_ctx_t;

static void c2m_add(cases_t *cs, const answer_t *a, int seq, void *vctx)
{
    c2m_ctx_t *x = vctx;
    int64_t id = 100 + seq;
    char doc[12], path[64], value[512];
    testenv_make_cpf("3", 1000 + seq, doc); /* "3nnnnnnnn" */
    snprintf(path, sizeof path, "documento=%s&", doc);
    if (x->kind == CALL_READ) {
        add_case(cs, a, "search", CALL_READ, fx.hm, "GET", path, NULL, id, doc);
        /* the client exists: only the search's answer hides it */
        char seed[256];
        snprintf(seed, sizeof seed,
                 "{\"clientes\":[{\"id\":%lld,\"razao_social\":\"Existe\",\"nome_fantasia\":"
                 "\"Existe\",\"cnpj_cpf\":\"%s\",\"token\":\"EX%lld\",\"is_fisica\":true,"
                 "\"is_ativo\":true}]}",
                 (long long)(7000 + seq), doc, (long long)seq);
        assert_int_equal(simproc_seed(fx.sims.milvus, seed), 0);
    } else if (x->kind == CALL_CREATE) {
        add_case(cs, a, "create", CALL_CREATE, fx.hm, "POST", "/cliente/criar", doc, id, doc);
    } else if (x->kind == CALL_AMBIGUOUS) {
        case_t *c = add_case(cs, a, "create", CALL_AMBIGUOUS, fx.hm, "POST", "/cliente/criar",
                             doc, id, doc);
        add_search_rule(c, x->search, path);
    } else {
        add_case(cs, a, "token", CALL_TOKEN, fx.hm, "GET", path, NULL, id, doc);
    }
    snprintf(value, sizeof value,
             "{\"Id\":%lld,\"TypeId\":2,\"Name\":\"Hostil %d\",\"Register\":\"%s\","
             "\"CreateDate\":\"2025-03-01T10:00:00-03:00\"}",
             (long long)id, seq, doc);
    assert_int_equal(wt_produce(x->w, "ploomes.contacts", cs->c[cs->n - 1].key, value), 0);
}

static void clients_to_milvus(void **state)
{
    (void)state;
    if (skipped("clients-to-milvus"))
        return;
    wt_t w;
    setup_worker(&w, "hoc2m");
    cases_t *cs = calloc(1, sizeof *cs);
    assert_non_null(cs);
    int seq = 0;
    c2m_ctx_t x = {&w, CALL_READ, NULL};
    add_all(cs, MILVUS_SEARCH, c2m_add, &x, &seq);
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].a->mode == HOSTILE_STATUS && cs->c[i].a->status == 200 &&
            cs->c[i].a->body && strstr(cs->c[i].a->body, "%DOC%") &&
            strcmp(cs->c[i].a->name, "array") != 0)
            cs->c[i].dlq = "UnexpectedResponse"; /* a row names the document: never "not found" */
    x.kind = CALL_CREATE;
    add_all(cs, MILVUS_CREATE, c2m_add, &x, &seq);
    x.kind = CALL_TOKEN;
    c2m_add(cs, &COMMON[0], seq++, &x);  /* truncated */
    c2m_add(cs, &COMMON[1], seq++, &x);  /* html 200 */
    c2m_add(cs, &MILVUS_SEARCH[3], seq++, &x); /* a row with id "abc" */
    x.kind = CALL_AMBIGUOUS;
    x.search = &COMMON[1]; /* html 200 */
    c2m_add(cs, &COMMON[2], seq++, &x); /* create: html 502 */
    x.search = &COMMON[0]; /* truncated */
    c2m_add(cs, &COMMON[4], seq++, &x); /* create: slow-loris */
    x.search = &MILVUS_SEARCH[3]; /* a row with the document and id "abc" */
    c2m_add(cs, &MILVUS_CREATE[0], seq++, &x); /* create: "abc" */
    run_worker(&w, "clients-to-milvus");
    check_cases(&w, "ploomes.contacts", cs, fx.sims.milvus, count_clients);
    /* the ambiguous ones keep their claim pending: a replay searches before any create */
    store_t *st = wt_store_open(&w);
    assert_non_null(st);
    for (size_t i = 0; i < cs->n; i++) {
        if (cs->c[i].kind != CALL_AMBIGUOUS)
            continue;
        store_entry_t e;
        char err[256];
        assert_int_equal(store_get(st, STORE_KIND_CLIENTS, cs->c[i].doc, &e, err, sizeof err),
                         STORE_OK);
        if (e.state != STORE_STATE_PENDING)
            fail_msg("key %s: claim state %d, expected pending", cs->c[i].key, (int)e.state);
    }
    store_close(st);
    free(cs);
    wt_free(&w);
}

/* ---- clients-to-ploomes --------------------------------------------------------------------- */

static int count_contacts(const cJSON *state, const case_t *c)
{
    return wt_sim_count(state, "Contacts", "Register", c->doc);
}

static void c2p_add(cases_t *cs, const answer_t *a, int seq, void *vctx)
{
    c2m_ctx_t *x = vctx;
    int64_t id = 2000 + seq;
    char doc[12], path[64], value[512];
    testenv_make_cpf("3", 2000 + seq, doc);
    snprintf(path, sizeof path, "%%27%s%%27", doc);
    if (x->kind == CALL_READ) {
        add_case(cs, a, "search", CALL_READ, fx.hp, "GET", path, NULL, id, doc);
        char seed[256];
        snprintf(seed, sizeof seed,
                 "{\"Contacts\":[{\"Name\":\"Existe %d\",\"TypeId\":2,\"Register\":\"%s\"}]}", seq,
                 doc);
        assert_int_equal(simproc_seed(fx.sims.ploomes, seed), 0);
    } else if (x->kind == CALL_AMBIGUOUS) {
        case_t *c = add_case(cs, a, "create", CALL_AMBIGUOUS, fx.hp, "POST", "/Contacts", doc,
                             id, doc);
        add_search_rule(c, x->search, path);
    } else {
        add_case(cs, a, "create", CALL_CREATE, fx.hp, "POST", "/Contacts", doc, id, doc);
    }
    snprintf(value, sizeof value,
             "{\"id\":%lld,\"razao_social\":\"Hostil %d\",\"nome_fantasia\":\"Hostil %d\","
             "\"cnpj_cpf\":\"%s\",\"is_fisica\":true,\"is_ativo\":true,\"token\":\"HT%d\"}",
             (long long)id, seq, seq, doc, seq);
    assert_int_equal(wt_produce(x->w, "milvus.clients", cs->c[cs->n - 1].key, value), 0);
}

static void clients_to_ploomes(void **state)
{
    (void)state;
    if (skipped("clients-to-ploomes"))
        return;
    wt_t w;
    setup_worker(&w, "hoc2p");
    cases_t *cs = calloc(1, sizeof *cs);
    assert_non_null(cs);
    int seq = 0;
    c2m_ctx_t x = {&w, CALL_READ, NULL};
    add_all(cs, PLOOMES_SEARCH, c2p_add, &x, &seq);
    for (size_t i = 0; i < cs->n; i++)
        if (strncmp(cs->c[i].a->name, "id_", 3) == 0 || strcmp(cs->c[i].a->name, "nested") == 0)
            cs->c[i].dlq = "UnexpectedResponse"; /* a row without a usable Id: never "not found" */
    x.kind = CALL_CREATE;
    add_all(cs, PLOOMES_CREATE, c2p_add, &x, &seq);
    x.kind = CALL_AMBIGUOUS;
    x.search = &COMMON[3]; /* oversize */
    c2p_add(cs, &COMMON[0], seq++, &x); /* create: truncated */
    x.search = &PLOOMES_SEARCH[3]; /* a row with Id "abc" */
    c2p_add(cs, &COMMON[5], seq++, &x); /* create: redirect */
    run_worker(&w, "clients-to-ploomes");
    check_cases(&w, "milvus.clients", cs, fx.sims.ploomes, count_contacts);
    free(cs);
    wt_free(&w);
}

/* ---- the ticket workers --------------------------------------------------------------------- */

typedef struct {
    wt_t *w;
    call_kind_t kind;
    const char *entity; /* "task" / "interaction" */
    const char *topic;
    int64_t base;
} tk_ctx_t;

static const char *tk_entity; /* of the run being checked */

static int count_tickets(const cJSON *state, const case_t *c)
{
    int n = wt_sim_tickets(state, tk_entity, c->id, NULL);
    return c->kind == CALL_READ ? 1 + n : n; /* a dead read makes no ticket: 1 + none */
}

static void tk_add(cases_t *cs, const answer_t *a, int seq, void *vctx)
{
    tk_ctx_t *x = vctx;
    int64_t id = x->base + seq, contact = x->base + 500 + seq;
    char path[64], marker[64], seed[512];
    /* every record has its own contact (one contact read per record), all of ACME */
    snprintf(seed, sizeof seed,
             "{\"Contacts\":[{\"Id\":%lld,\"TypeId\":1,\"Name\":\"ACME %d\",\"Register\":"
             "\"11.222.333/0001-81\",\"CreateDate\":\"2025-01-10T10:00:00-03:00\"}]}",
             (long long)contact, seq);
    assert_int_equal(simproc_seed(fx.sims.ploomes, seed), 0);
    if (x->kind == CALL_READ) {
        snprintf(path, sizeof path, "Id%%20eq%%20%lld&", (long long)contact);
        add_case(cs, a, "contact", CALL_READ, fx.hp, "GET", path, NULL, id, NULL);
    } else {
        snprintf(marker, sizeof marker, "[ploomes:%s:%lld]", x->entity, (long long)id);
        add_case(cs, a, "create", CALL_CREATE, fx.hm, "POST", "/chamado/criar", marker, id, NULL);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "Id", (double)id);
    cJSON_AddNumberToObject(o, "ContactId", (double)contact);
    if (strcmp(x->entity, "task") == 0) {
        cJSON_AddStringToObject(o, "Title", "Hostil");
        cJSON_AddStringToObject(o, "Description", a->name);
    } else {
        cJSON_AddStringToObject(o, "Content", a->name);
    }
    cJSON_AddStringToObject(o, "CreateDate", NOW);
    cJSON_AddStringToObject(o, "LastUpdateDate", NOW);
    cJSON_AddItemToObject(o, "Tags", cJSON_Parse("[{\"TagId\":40049716}]"));
    char *value = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    assert_int_equal(wt_produce(x->w, x->topic, cs->c[cs->n - 1].key, value), 0);
    free(value);
}

static void ticket_worker(const char *binary, const char *topic, const char *entity,
                          int64_t base)
{
    if (skipped(binary))
        return;
    static bool acme_seeded;
    if (!acme_seeded) {
        assert_int_equal(simproc_seed(fx.sims.milvus,
                                      "{\"clientes\":[{\"id\":500,\"razao_social\":\"ACME\","
                                      "\"nome_fantasia\":\"ACME\",\"cnpj_cpf\":\"" ACME_DOC
                                      "\",\"token\":\"ACM001\",\"is_fisica\":false,"
                                      "\"is_ativo\":true}]}"),
                         0);
        acme_seeded = true;
    }
    wt_t w;
    setup_worker(&w, strcmp(entity, "task") == 0 ? "hot2m" : "hoi2m");
    cases_t *cs = calloc(1, sizeof *cs);
    assert_non_null(cs);
    int seq = 0;
    tk_ctx_t x = {&w, CALL_READ, entity, topic, base};
    add_all(cs, PLOOMES_CONTACT, tk_add, &x, &seq);
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].a->mode == HOSTILE_STATUS && cs->c[i].a->status == 200 &&
            cs->c[i].a->body && cs->c[i].a->body[0] == '{')
            cs->c[i].dlq = "UnexpectedResponse"; /* never another contact, never "contact 0" */
    x.kind = CALL_CREATE;
    add_all(cs, MILVUS_CREATE, tk_add, &x, &seq);
    run_worker(&w, binary);
    tk_entity = entity;
    check_cases(&w, topic, cs, fx.sims.milvus, count_tickets);
    free(cs);
    wt_free(&w);
}

static void tasks_to_milvus(void **state)
{
    (void)state;
    ticket_worker("tasks-to-milvus", "ploomes.tasks", "task", 300000);
}

static void interactions_to_milvus(void **state)
{
    (void)state;
    ticket_worker("interactions-to-milvus", "ploomes.interactions", "interaction", 400000);
}

/* ---- SIGTERM during a slow-loris create ----------------------------------------------------- */

typedef struct {
    hostile_server_t *hs;
    int rule;
} hit_wait_t;

static bool hit_reached(void *ctx)
{
    hit_wait_t *h = ctx;
    return hostile_server_hits(h->hs, h->rule) >= 1;
}

static void sigterm_mid_create(void **state)
{
    (void)state;
    if (skipped("clients-to-milvus"))
        return;
    wt_t w;
    setup_worker(&w, "hosig");
    wt_set(&w, "HTTP_TIMEOUT_MS", "5000");
    wt_set(&w, "CLAIM_LEASE_SECONDS", "2");
    char doc[12], value[512];
    testenv_make_cpf("3", 9999, doc);
    hostile_rule_t r = {.method = "POST", .path_contains = "/cliente/criar", .body_contains = doc,
                        .times = 1, .forward_first = true, .mode = HOSTILE_SLOWLORIS,
                        .slow_seconds = 60};
    hit_wait_t h = {fx.hm, hostile_server_add(fx.hm, &r)};
    snprintf(value, sizeof value,
             "{\"Id\":9999,\"TypeId\":2,\"Name\":\"Lento\",\"Register\":\"%s\","
             "\"CreateDate\":\"2025-03-01T10:00:00-03:00\"}",
             doc);
    assert_int_equal(wt_produce(&w, "ploomes.contacts", "9999", value), 0);
    assert_int_equal(wt_flush(&w), 0);
    pid_t pid = wt_spawn(&w, "clients-to-milvus", NULL);
    assert_true(pid > 0);
    if (!testenv_wait_until(hit_reached, &h, 60000, 50)) {
        kill(pid, SIGKILL);
        simproc_wait(pid, 10000);
        fail_msg("the slow create never reached the hostile server");
    }
    int64_t t0 = testenv_now_ms();
    assert_int_equal(kill(pid, SIGTERM), 0);
    int rc = simproc_wait(pid, 30000);
    int64_t took = testenv_now_ms() - t0;
    fprintf(stderr, "SIGTERM mid slow-loris create: exit %d after %lld ms\n", rc,
            (long long)took);
    if (rc != 0) {
        pt_dump_log(w.log, 6000);
        fail_msg("clients-to-milvus exited %d on SIGTERM", rc);
    }
    /* HTTP_TIMEOUT_MS bounds the wait for the answer; the rest is the shutdown itself */
    assert_true(took < 5000 + 10000);
    /* the next run finds the client the first create made: one client, never two */
    run_worker(&w, "clients-to-milvus");
    case_t c = {.doc = ""};
    snprintf(c.doc, sizeof c.doc, "%s", doc);
    cJSON *st = simproc_state(fx.sims.milvus);
    int n = count_clients(st, &c);
    cJSON_Delete(st);
    int done = wt_count_done(&w, "9999", NULL, NULL);
    int ok = wt_count_done(&w, "9999", "delivered", NULL) + wt_count_done(&w, "9999", "dedup_hit",
                                                                          NULL);
    if (n != 1 || ok != 1 || wt_topic_count(&w, "pipeline.dlq") != 0) {
        pt_dump_log(w.log, 6000);
        fail_msg("after SIGTERM: %d clients, %d record_done (%d delivered/dedup)", n, done, ok);
    }
    wt_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clients_to_milvus),
        cmocka_unit_test(clients_to_ploomes),
        cmocka_unit_test(tasks_to_milvus),
        cmocka_unit_test(interactions_to_milvus),
        cmocka_unit_test(sigterm_mid_create),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
