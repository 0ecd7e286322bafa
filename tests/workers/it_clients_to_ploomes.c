/* clients-to-ploomes through the real binary, real Kafka and FerretDB, ploomes-sim in its strict
 * default (fixed schema, typed fields): a table of Milvus clients → expected outcome (delivered
 * with this exact contact, skipped for this reason, dead-lettered with this error class), every
 * client with a valid document recorded in the identity map, the MILVUS_MIN_ID watermark from
 * MongoDB (and what happens before milvus-producer fixed it), no ping-pong between the two client
 * workers (a client created Ploomes → Milvus and read back by milvus-producer creates no
 * contact, and the other way round), faults (503s, 429 bursts, 403 bursts). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>

#include "wtest.h"

#define KEY "PLOOMES-KEY-C2P"
#define TOKEN "tok-c2p-9012"
#define BIN "clients-to-ploomes"
#define SRC "milvus.clients"

typedef struct {
    wt_t w;
    simproc *ploomes;
    simproc *milvus;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    f->ploomes = simproc_start_sim("ploomes-sim", KEY, "{\"rate_limit_per_min\":0}", err,
                                   sizeof err);
    f->milvus = simproc_start_sim("milvus-sim", TOKEN, "{\"rate_limit_per_min\":0}", err,
                                  sizeof err);
    if (f->ploomes == NULL || f->milvus == NULL)
        return -1;
    wt_init(&f->w, "c2p");
    wt_set(&f->w, "PLOOMES_BASE_URL", simproc_api_url(f->ploomes));
    wt_set(&f->w, "PLOOMES_USER_KEY", KEY);
    wt_set(&f->w, "MILVUS_BASE_URL", simproc_api_url(f->milvus));
    wt_set(&f->w, "MILVUS_TOKEN", TOKEN);
    wt_set(&f->w, "MILVUS_MIN_ID", "1000");
    if (wt_ensure_topics(&f->w) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    int rc = simproc_stop(f->ploomes);
    rc |= simproc_stop(f->milvus);
    wt_free(&f->w);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int run(fx_t *f, const char *bin, int expect)
{
    int rc = wt_run(&f->w, bin, 3, 120000);
    if (rc != expect)
        pt_dump_log(f->w.log, 8000);
    return rc;
}

/* Ploomes contacts whose Register is `reg` (all when NULL): a new array (caller frees). */
static cJSON *contacts(fx_t *f, const char *reg)
{
    cJSON *st = simproc_state(f->ploomes);
    assert_non_null(st);
    cJSON *out = cJSON_CreateArray();
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(st, "Contacts"))
    {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(c, "Register");
        if (reg == NULL || (cJSON_IsString(r) && strcmp(r->valuestring, reg) == 0))
            cJSON_AddItemToArray(out, cJSON_Duplicate(c, true));
    }
    cJSON_Delete(st);
    return out;
}

static int count_contacts(fx_t *f, const char *reg)
{
    cJSON *a = contacts(f, reg);
    int n = cJSON_GetArraySize(a);
    cJSON_Delete(a);
    return n;
}

/* Fields the simulator adds to a created contact (it is not us who sent them). */
static bool sim_field(const char *k)
{
    static const char *const added[] = {"Id",        "CreateDate", "LastUpdateDate", "CreatorId",
                                        "UpdaterId", "CNPJ",       "CPF",            "Editable",
                                        "Deletable", "Key",        NULL};
    for (size_t i = 0; added[i]; i++)
        if (strcmp(k, added[i]) == 0)
            return true;
    return false;
}

/* Exactly one contact has Register `reg`, and what we sent (its non-null fields but the ones
 * the simulator adds) is exactly `expected`. */
static void assert_contact(fx_t *f, const char *reg, const char *expected)
{
    cJSON *list = contacts(f, reg);
    if (cJSON_GetArraySize(list) != 1)
        fail_msg("%d contacts with Register %s, expected 1", cJSON_GetArraySize(list), reg);
    cJSON *sent = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetArrayItem(list, 0))
    {
        if (sim_field(it->string) || cJSON_IsNull(it))
            continue;
        if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 0)
            continue; /* navigation collections the simulator keeps empty */
        cJSON_AddItemToObject(sent, it->string, cJSON_Duplicate(it, true));
    }
    cJSON *want = cJSON_Parse(expected);
    assert_non_null(want);
    if (!cJSON_Compare(want, sent, true)) {
        char *p = cJSON_PrintUnformatted(sent);
        fail_msg("Register %s:\n sent %s\n want %s", reg, p, expected);
    }
    cJSON_Delete(want);
    cJSON_Delete(sent);
    cJSON_Delete(list);
}

static void produce(fx_t *f, const char *base, const char *key, const char *value)
{
    assert_int_equal(wt_produce(&f->w, base, key, value), 0);
}

typedef struct {
    wt_expect_t x;      /* key, value, record_done outcome and reason, dead-letter class */
    const char *reg;    /* delivered: Register of the contact */
    const char *body;   /* delivered: what the contact holds */
    const char *mapped; /* document recorded in the identity map with milvus_id = key */
} row_t;

static const row_t TABLE[] = {
    {{"1001",
      "{\"id\":1001,\"razao_social\":\"ACME LTDA\",\"nome_fantasia\":\"ACME\",\"cnpj_cpf\":"
      "\"11.222.333/0001-81\",\"site\":\"acme.com.br\",\"observacao\":\"obs\",\"is_fisica\":false,"
      "\"is_ativo\":true,\"token\":\"AAA001\",\"data_nascimento\":null,\"equipes\":[\"E1\"]}",
      "delivered", "created", NULL},
     "11222333000181",
     "{\"Name\":\"ACME\",\"LegalName\":\"ACME LTDA\",\"TypeId\":1,\"Register\":\"11222333000181\","
     "\"Website\":\"acme.com.br\",\"Note\":\"obs\"}",
     "11222333000181"},
    {{"1001", NULL, "dedup_hit", "identity_map", NULL}, NULL, NULL, NULL},
    {{"1002",
      "{\"id\":1002,\"razao_social\":\"Jos\u00e9\",\"nome_fantasia\":\"Jos\u00e9\",\"cnpj_cpf\":"
      "\"52998224725\",\"is_fisica\":true,\"is_ativo\":true,\"token\":\"AAA002\","
      "\"data_nascimento\":\"1990-05-17\",\"site\":null,\"observacao\":\"\"}",
      "delivered", "created", NULL},
     "52998224725",
     "{\"Name\":\"Jos\u00e9\",\"TypeId\":2,\"Register\":\"52998224725\",\"Birthday\":\"1990-05-"
     "17T00:00:00-03:00\"}",
     "52998224725"},
    {{"3000000001",
      "{\"id\":3000000001,\"razao_social\":\"\u65e5\u672c LTDA\",\"nome_fantasia\":null,"
      "\"cnpj_cpf\":\"12ABC34501DE35\",\"is_fisica\":false,\"is_ativo\":true,\"token\":\"AAA003\"}",
      "delivered", "created", NULL},
     "12ABC34501DE35",
     "{\"Name\":\"\u65e5\u672c LTDA\",\"LegalName\":\"\u65e5\u672c LTDA\",\"TypeId\":1,"
     "\"Register\":\"12ABC34501DE35\"}",
     "12ABC34501DE35"},
    /* stored by Milvus as a number without its leading zeros */
    {{"1009",
      "{\"id\":1009,\"nome_fantasia\":\"Zeros\",\"cnpj_cpf\":12345000165,\"is_fisica\":false,"
      "\"is_ativo\":true,\"token\":\"AAA009\"}",
      "delivered", "created", NULL},
     "00012345000165",
     "{\"Name\":\"Zeros\",\"TypeId\":1,\"Register\":\"00012345000165\"}",
     "00012345000165"},
    {{"1004",
      "{\"id\":1004,\"nome_fantasia\":\"Bloq\",\"cnpj_cpf\":\"11144477735\",\"is_fisica\":true,"
      "\"is_ativo\":false,\"token\":\"AAA004\"}",
      "skipped", "inactive", NULL},
     NULL,
     NULL,
     "11144477735"},
    {{"999",
      "{\"id\":999,\"nome_fantasia\":\"Old\",\"cnpj_cpf\":\"12345678909\",\"is_fisica\":true,"
      "\"is_ativo\":true,\"token\":\"AAA999\"}",
      "skipped", "below_min_id", NULL},
     NULL,
     NULL,
     "12345678909"},
    {{"1005",
      "{\"id\":1005,\"nome_fantasia\":\"NoDoc\",\"cnpj_cpf\":null,\"is_ativo\":true}",
      "skipped", "no_document", NULL},
     NULL,
     NULL,
     NULL},
    {{"1006",
      "{\"id\":1006,\"nome_fantasia\":\"Bad\",\"cnpj_cpf\":\"11222333000182\",\"is_fisica\":false,"
      "\"is_ativo\":true}",
      "dead_lettered", NULL, "InvalidDocument"},
     NULL,
     NULL,
     NULL},
    /* already in Ploomes, Register masked / digits */
    {{"1007",
      "{\"id\":1007,\"nome_fantasia\":\"Has\",\"cnpj_cpf\":\"99887766000105\",\"is_fisica\":false,"
      "\"is_ativo\":true,\"token\":\"AAA007\"}",
      "dedup_hit", "found_at_target", NULL},
     NULL,
     NULL,
     "99887766000105"},
    {{"1008",
      "{\"id\":1008,\"nome_fantasia\":\"Has2\",\"cnpj_cpf\":\"987.654.321-00\",\"is_fisica\":true,"
      "\"is_ativo\":true,\"token\":\"AAA008\"}",
      "dedup_hit", "found_at_target", NULL},
     NULL,
     NULL,
     "98765432100"},
    {{"1010",
      "{\"id\":1010,\"nome_fantasia\":null,\"razao_social\":null,\"cnpj_cpf\":\"01234567890\","
      "\"is_fisica\":true,\"is_ativo\":true}",
      "dead_lettered", NULL, "UnmappableRecord"},
     NULL,
     NULL,
     NULL},
    {{"1011",
      "{\"nome_fantasia\":\"NoId\",\"cnpj_cpf\":\"00000000000191\"}",
      "dead_lettered", NULL, "InvalidRecord"},
     NULL,
     NULL,
     NULL},
    {{"x1",
      "{\"id\":",
      "dead_lettered", NULL, "InvalidJson"},
     NULL,
     NULL,
     NULL},
};

#define NROWS (sizeof TABLE / sizeof TABLE[0])

static void t_table(void **state)
{
    fx_t *f = *state;
    assert_int_equal(simproc_seed(f->ploomes,
                                  "{\"Contacts\":[{\"Id\":77,\"Name\":\"Seeded\",\"TypeId\":1,"
                                  "\"Register\":\"99.887.766/0001-05\"},{\"Id\":78,\"Name\":"
                                  "\"Seeded2\",\"TypeId\":2,\"Register\":\"98765432100\"}]}"),
                     0);
    /* every record: its outcome and reason; the dead letters with their classes. Reasons of
     * rows sharing a document depend on the order: one record at a time here. */
    wt_set(&f->w, "MAX_IN_FLIGHT", "1");
    const char *why = wt_run_table(&f->w, BIN, SRC, TABLE, NROWS, sizeof TABLE[0]);
    if (why) {
        pt_dump_log(f->w.log, 8000);
        fail_msg("%s", why);
    }
    int created = 0;
    for (size_t i = 0; i < NROWS; i++) {
        if (TABLE[i].body) {
            assert_contact(f, TABLE[i].reg, TABLE[i].body);
            created++;
        }
    }
    assert_int_equal(count_contacts(f, NULL), 2 + created);

    /* every client with a valid document is in the identity map with its Milvus id and token;
     * the ones that exist in Ploomes with their Ploomes id */
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    char err[512];
    for (size_t i = 0; i < NROWS; i++) {
        if (TABLE[i].mapped == NULL || TABLE[i].x.value == NULL)
            continue;
        store_entry_t e;
        if (store_get(st, STORE_KIND_CLIENTS, TABLE[i].mapped, &e, err, sizeof err) != STORE_OK)
            fail_msg("key %s: document not in the identity map", TABLE[i].x.key);
        assert_int_equal(e.state, STORE_STATE_DONE);
        assert_int_equal(e.milvus_id, strtoll(TABLE[i].x.key, NULL, 10));
        assert_true(e.milvus_token[0] != '\0');
        bool in_ploomes = TABLE[i].body != NULL || strcmp(TABLE[i].x.outcome, "dedup_hit") == 0;
        if (in_ploomes != (e.ploomes_id > 0))
            fail_msg("key %s: ploomes_id %lld", TABLE[i].x.key, (long long)e.ploomes_id);
    }
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "99887766000105", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.ploomes_id, 77);
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "98765432100", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.ploomes_id, 78);
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "11222333000181", &e, err, sizeof err),
                     STORE_OK);
    assert_string_equal(e.origin, "milvus");
    /* the creation claim is a delivery claim (tickets), not an identity-map entry */
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "ploomes-contact:11222333000181", &e, err,
                               sizeof err),
                     STORE_NOT_FOUND);
    assert_int_equal(store_get(st, STORE_KIND_TICKETS, "ploomes-contact:11222333000181", &e, err,
                               sizeof err),
                     STORE_OK);
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_true(e.ploomes_id > 0);
    store_close(st);

    /* a second run over the same clients changes nothing */
    for (size_t i = 0; i < NROWS; i++)
        if (TABLE[i].body)
            produce(f, SRC, TABLE[i].x.key, TABLE[i].x.value);
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, BIN, 0), 0);
    assert_int_equal(count_contacts(f, NULL), 2 + created);
}

/* MILVUS_MIN_ID unset and not fixed yet: clients are recorded, none is created; once
 * milvus-producer stored the setting, clients from it on are created, older ones are not. */
static void t_min_id_from_mongodb(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "MILVUS_MIN_ID", NULL);
    produce(f, SRC, "1500",
            "{\"id\":1500,\"nome_fantasia\":\"Hist\",\"cnpj_cpf\":\"11222333000181\","
            "\"is_fisica\":false,\"is_ativo\":true,\"token\":\"H1500\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, BIN, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "1500", "skipped", "min_id_unset"), 1);
    assert_int_equal(count_contacts(f, NULL), 0);
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    char err[512], v[32];
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "11222333000181", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.milvus_id, 1500);
    /* what milvus-producer does after its first full scan */
    assert_int_equal(store_setting_get_or_init(st, "milvus_min_id", "2000", v, sizeof v, err,
                                               sizeof err),
                     STORE_OK);
    store_close(st);
    produce(f, SRC, "1600",
            "{\"id\":1600,\"nome_fantasia\":\"Hist2\",\"cnpj_cpf\":\"52998224725\","
            "\"is_fisica\":true,\"is_ativo\":true,\"token\":\"H1600\"}");
    produce(f, SRC, "2000",
            "{\"id\":2000,\"nome_fantasia\":\"New\",\"cnpj_cpf\":\"12345678909\","
            "\"is_fisica\":true,\"is_ativo\":true,\"token\":\"N2000\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, BIN, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "1600", "skipped", "below_min_id"), 1);
    assert_int_equal(wt_count_done(&f->w, "2000", "delivered", "created"), 1);
    assert_int_equal(count_contacts(f, "12345678909"), 1);
    assert_int_equal(count_contacts(f, NULL), 1);

    /* backfill: MILVUS_MIN_ID=0 set by the operator, the historic clients replayed */
    wt_set(&f->w, "MILVUS_MIN_ID", "0");
    produce(f, SRC, "1500",
            "{\"id\":1500,\"nome_fantasia\":\"Hist\",\"cnpj_cpf\":\"11222333000181\","
            "\"is_fisica\":false,\"is_ativo\":true,\"token\":\"H1500\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, BIN, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "1500", "delivered", "created"), 1);
    assert_int_equal(count_contacts(f, "11222333000181"), 1);
    assert_int_equal(count_contacts(f, NULL), 2);
}

/* No ping-pong. A Ploomes contact → clients-to-milvus creates its Milvus client →
 * milvus-producer publishes it (MILVUS_MIN_ID 0: it would be eligible) → clients-to-ploomes
 * creates nothing. And a Milvus client → clients-to-ploomes creates its contact → the contact
 * comes back on ploomes.contacts → clients-to-milvus creates nothing. */
static void t_no_ping_pong(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "MILVUS_MIN_ID", "0");
    wt_set(&f->w, "SYNC_SINCE", "2024-02-24T00:00:00-03:00");
    assert_int_equal(simproc_seed(f->ploomes,
                                  "{\"Contacts\":[{\"Id\":501,\"Name\":\"From Ploomes\","
                                  "\"TypeId\":1,\"Register\":\"11.222.333/0001-81\"}]}"),
                     0);
    assert_int_equal(simproc_seed(f->milvus,
                                  "{\"clientes\":[{\"id\":7001,\"razao_social\":\"From Milvus\","
                                  "\"nome_fantasia\":\"From Milvus\",\"cnpj_cpf\":\"52998224725\","
                                  "\"is_fisica\":true,\"is_ativo\":true,\"token\":\"FM7001\"}]}"),
                     0);
    produce(f, "ploomes.contacts", "501",
            "{\"Id\":501,\"Name\":\"From Ploomes\",\"TypeId\":1,\"Register\":"
            "\"11.222.333/0001-81\","
            "\"CreateDate\":\"2025-01-01T00:00:00-03:00\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, "clients-to-milvus", 0), 0);
    assert_int_equal(wt_count_done(&f->w, "501", "delivered", NULL), 1);

    /* milvus-producer publishes both Milvus clients: 7001 and the one just created */
    const char *once[] = {"--once", NULL};
    assert_int_equal(pt_run("milvus-producer", once, wt_env(&f->w), f->w.log, 120000), 0);
    assert_int_equal(run(f, BIN, 0), 0);
    /* 7001 became a contact; the client that came from Ploomes did not come back */
    assert_int_equal(count_contacts(f, "52998224725"), 1);
    assert_int_equal(count_contacts(f, NULL), 2);
    assert_int_equal(wt_count_done(&f->w, NULL, "dedup_hit", "identity_map"), 1);

    /* the new contact comes back to clients-to-milvus as ploomes-producer would publish it */
    cJSON *list = contacts(f, "52998224725");
    cJSON *c = cJSON_GetArrayItem(list, 0);
    assert_non_null(c);
    cJSON_DeleteItemFromObjectCaseSensitive(c, "CreateDate");
    cJSON_AddStringToObject(c, "CreateDate", "2026-06-01T00:00:00-03:00");
    char *value = cJSON_PrintUnformatted(c);
    char key[32];
    snprintf(key, sizeof key, "%lld",
             (long long)cJSON_GetObjectItemCaseSensitive(c, "Id")->valuedouble);
    produce(f, "ploomes.contacts", key, value);
    free(value);
    cJSON_Delete(list);
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, "clients-to-milvus", 0), 0);
    assert_int_equal(wt_count_done(&f->w, key, "dedup_hit", "identity_map"), 1);
    /* Milvus: the seeded client and the one from Ploomes, nothing else */
    cJSON *ms = simproc_state(f->milvus);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ms, "clientes")), 2);
    cJSON_Delete(ms);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
}

/* 20% 503s, 429 bursts with Retry-After and 403 bursts from Ploomes: every client exactly one
 * contact, nothing dead-lettered (MAX_ATTEMPTS 10, so an honest run of three failures in a row on
 * one request does not exhaust it). */
static void t_faults_exactly_once(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "MAX_ATTEMPTS", "10");
    /* the limiter spaces calls W/N apart: 2500 a minute = 24 ms, a bit under the simulator's
     * 25 ms, so a 429 still comes now and then (and is retried), but no herd after a pause */
    wt_set(&f->w, "PLOOMES_RATE_PER_MIN", "2500");
    assert_int_equal(simproc_faults(f->ploomes, "{\"error_rate\":0.2,\"error_status\":503,"
                                                "\"min_interval_ms\":25,\"retry_after\":true,"
                                                "\"seed\":11}"),
                     0);
    static const char *const docs[] = {"11222333000181", "52998224725", "12ABC34501DE35",
                                       "00012345000165", "11144477735", "99887766000105",
                                       "98765432100",    "12345678909"};
    enum { N = sizeof docs / sizeof docs[0] };
    for (int i = 0; i < N; i++) {
        char key[16], value[256];
        snprintf(key, sizeof key, "%d", 1100 + i);
        snprintf(value, sizeof value,
                 "{\"id\":%d,\"nome_fantasia\":\"F%d\",\"cnpj_cpf\":\"%s\",\"is_fisica\":%s,"
                 "\"is_ativo\":true,\"token\":\"T%d\"}",
                 1100 + i, i, docs[i], strlen(docs[i]) == 11 ? "true" : "false", i);
        produce(f, SRC, key, value);
        produce(f, SRC, key, value);
    }
    assert_int_equal(wt_flush(&f->w), 0);
    pid_t pid = wt_spawn(&f->w, BIN, (const char *const[]){"--idle-exit", "3", NULL});
    assert_true(pid > 0);
    /* a burst of 403s midway (Ploomes answers 403 under load) */
    assert_true(wt_wait_log(&f->w, "event=record_done", 3, 60000));
    assert_int_equal(
        simproc_faults(f->ploomes, "{\"error_rate\":0,\"error_burst\":4,\"error_status\":403}"), 0);
    assert_true(wt_wait_log(&f->w, "Forbidden (simulated burst)", 4, 60000));
    assert_int_equal(simproc_faults(f->ploomes, "{\"error_rate\":0.2,\"error_status\":503}"), 0);
    int rc = simproc_wait(pid, 180000);
    if (rc != 0)
        pt_dump_log(f->w.log, 8000);
    assert_int_equal(rc, 0);
    assert_int_equal(simproc_faults(f->ploomes, "{\"error_rate\":0,\"min_interval_ms\":0}"), 0);
    for (int i = 0; i < N; i++)
        if (count_contacts(f, docs[i]) != 1)
            fail_msg("%d contacts for document %s", count_contacts(f, docs[i]), docs[i]);
    assert_int_equal(count_contacts(f, NULL), N);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
    assert_true(wt_log_count(&f->w, "status=503") > 0);
    assert_true(wt_log_count(&f->w, "status=429") > 0);
    assert_true(wt_log_count(&f->w, "status=403") > 0);
}

/* Ploomes down past the retry budget: dead letters with every header; the worker goes on. */
static void t_down_dead_letters_and_goes_on(void **state)
{
    fx_t *f = *state;
    assert_int_equal(simproc_faults(f->ploomes, "{\"down\":true}"), 0);
    produce(f, SRC, "1201",
            "{\"id\":1201,\"nome_fantasia\":\"D1\",\"cnpj_cpf\":\"52998224725\",\"is_fisica\":true,"
            "\"is_ativo\":true,\"token\":\"D1\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    pid_t pid = wt_spawn(&f->w, BIN, NULL);
    assert_true(pid > 0);
    if (!wt_wait_log(&f->w, "outcome=dead_lettered", 1, 60000)) {
        pt_dump_log(f->w.log, 8000);
        fail_msg("the record was not dead-lettered");
    }
    assert_int_equal(simproc_faults(f->ploomes, "{\"down\":false}"), 0);
    produce(f, SRC, "1202",
            "{\"id\":1202,\"nome_fantasia\":\"D2\",\"cnpj_cpf\":\"12345678909\",\"is_fisica\":true,"
            "\"is_ativo\":true,\"token\":\"D2\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    if (!wt_wait_log(&f->w, "outcome=delivered", 1, 60000)) {
        pt_dump_log(f->w.log, 8000);
        fail_msg("the worker did not go on");
    }
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 60000), 0);
    assert_int_equal(count_contacts(f, NULL), 1);
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic(&f->w, "pipeline.dlq", &dlq, 30000), 0);
    assert_int_equal(dlq.n, 1);
    assert_null(wt_check_letter(&dlq.msgs[0], &f->w, SRC, "HttpStatus503"));
    assert_string_equal(dlq.msgs[0].key, "1201");
    wt_msgs_free(&dlq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_table, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_min_id_from_mongodb, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_no_ping_pong, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_faults_exactly_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_down_dead_letters_and_goes_on, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
