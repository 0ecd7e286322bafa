/* clients-to-milvus through the real binary, real Kafka and FerretDB, milvus-sim in its strict
 * default (exact document match, typed fields, Content-Type checked): a table of contacts →
 * expected outcome (delivered with this exact body as the simulator stored it, skipped for this
 * reason, dead-lettered with this error class), one client per document whatever its format,
 * faults (503s, 429 bursts with Retry-After, a create slower than the HTTP timeout, the target
 * down past the retry budget). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <time.h>

#include "wtest.h"

#define TOKEN "tok-c2m-5678"
#define BIN "clients-to-milvus"
#define SRC "ploomes.contacts"
#define NEW "\"CreateDate\":\"2025-03-01T10:00:00-03:00\""

typedef struct {
    wt_t w;
    simproc *milvus;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    char err[512];
    if (f == NULL)
        return -1;
    f->milvus = simproc_start_sim("milvus-sim", TOKEN, "{\"rate_limit_per_min\":0}", err,
                                  sizeof err);
    if (f->milvus == NULL) {
        free(f);
        return -1;
    }
    wt_init(&f->w, "c2m");
    wt_set(&f->w, "MILVUS_BASE_URL", simproc_api_url(f->milvus));
    wt_set(&f->w, "MILVUS_TOKEN", TOKEN);
    wt_set(&f->w, "SYNC_SINCE", "2024-02-24T00:00:00-03:00");
    if (wt_ensure_topics(&f->w) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    int rc = simproc_stop(f->milvus);
    wt_free(&f->w);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int run(fx_t *f, int expect)
{
    int rc = wt_run(&f->w, BIN, 3, 120000);
    if (rc != expect)
        pt_dump_log(f->w.log, 8000);
    return rc;
}

/* The clients stored by the simulator whose cliente_documento (as sent) is `doc`; `all` gets
 * the number of clients of any document. The returned array is the caller's. */
static cJSON *clients_sent(fx_t *f, const char *doc, int *all)
{
    cJSON *st = simproc_state(f->milvus);
    assert_non_null(st);
    cJSON *out = cJSON_CreateArray();
    const cJSON *c;
    *all = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(st, "clientes"))
    {
        (*all)++;
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "cliente_documento");
        if (doc && cJSON_IsString(d) && strcmp(d->valuestring, doc) == 0)
            cJSON_AddItemToArray(out, cJSON_Duplicate(c, true));
    }
    cJSON_Delete(st);
    return out;
}

/* Exactly one client was created for `doc`, and the request fields it stored (cliente_*) are
 * exactly `expected`. */
static void assert_body(fx_t *f, const char *doc, const char *expected)
{
    int all = 0;
    cJSON *list = clients_sent(f, doc, &all);
    if (cJSON_GetArraySize(list) != 1)
        fail_msg("%d clients created with document %s, expected 1", cJSON_GetArraySize(list), doc);
    cJSON *sent = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetArrayItem(list, 0))
    {
        /* cliente_matriz_id is a field of Milvus' own rows (apis.md §2.2), not sent by us */
        if (strncmp(it->string, "cliente_", 8) == 0 && strcmp(it->string, "cliente_matriz_id") != 0)
            cJSON_AddItemToObject(sent, it->string, cJSON_Duplicate(it, true));
    }
    cJSON *want = cJSON_Parse(expected);
    assert_non_null(want);
    if (!cJSON_Compare(want, sent, true)) {
        char *p = cJSON_PrintUnformatted(sent);
        fail_msg("document %s:\n sent %s\n want %s", doc, p, expected);
    }
    cJSON_Delete(want);
    cJSON_Delete(sent);
    cJSON_Delete(list);
}

static int count_sent(fx_t *f, const char *doc)
{
    int all = 0;
    cJSON *list = clients_sent(f, doc, &all);
    int n = cJSON_GetArraySize(list);
    cJSON_Delete(list);
    return doc ? n : all;
}

static void produce(fx_t *f, const char *key, const char *value)
{
    assert_int_equal(wt_produce(&f->w, SRC, key, value), 0);
}

typedef struct {
    wt_expect_t x;      /* key, value, record_done outcome and reason, dead-letter class */
    const char *doc;    /* delivered: document the client is created with */
    const char *body;   /* delivered: the exact body stored */
} row_t;

static const row_t TABLE[] = {
    {{"101",
      "{\"Id\":101,\"TypeId\":1," NEW ",\"Name\":\"ACME\",\"LegalName\":\"ACME LTDA\","
      "\"Register\":\"11.222.333/0001-81\",\"Website\":\"acme.com.br\",\"Note\":\"obs\","
      "\"Email\":\"a@acme.com.br\",\"StreetAddress\":\"Rua X\",\"StreetAddressNumber\":\"10\","
      "\"StreetAddressLine2\":\"sala 2\",\"Neighborhood\":\"Centro\",\"ZipCode\":1310100,"
      "\"CityId\":3941,\"City\":{\"Id\":3941,\"Name\":\"S\u00e3o Paulo\"},\"StateId\":25,"
      "\"State\":{\"Id\":25,\"Short\":\"SP\"},\"Phones\":[{\"PhoneNumber\":\"(11) 1111-1111\"},"
      "{\"PhoneNumber\":\"(11) 99999-0000\"}],\"Contacts\":[{\"Id\":102,\"Name\":\"Maria\","
      "\"Email\":\"m@acme.com.br\"}],\"Tags\":[]}",
      "delivered", "created", NULL},
     "11222333000181",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_site\":\"acme.com.br\","
     "\"cliente_observacao\":\"obs\",\"cliente_ativo\":true,\"cliente_id_integracao\":101,"
     "\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"ACME\",\"razao_social\":\"ACME LTDA\","
     "\"inscricao_estadual\":\"\"},\"cliente_enderecos\":[{\"endereco_padrao\":true,"
     "\"endereco_cep\":\"01310100\",\"endereco_logradouro\":\"Rua X\",\"endereco_numero\":\"10\","
     "\"endereco_complemento\":\"sala 2\",\"endereco_bairro\":\"Centro\",\"endereco_cidade\":\"S"
     "\u00e3o Paulo\",\"endereco_estado\":\"SP\"}],\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"ACME\",\"contato_email\":\"a@acme.com.br\",\"contato_telefone\":\"("
     "11) 1111-1111\",\"contato_celular\":\"(11) 99999-0000\"},{\"contato_padrao\":false,"
     "\"contato_descricao\":\"Maria\",\"contato_email\":\"m@acme.com.br\"}]}"},
    /* the same contact twice: the second is a dedup hit */
    {{"101", NULL, "dedup_hit", "identity_map", NULL}, NULL, NULL},
    {{"201",
      "{\"Id\":201,\"TypeId\":2," NEW ",\"Name\":\"Jos\u00e9 da Silva\",\"Register\":\"529.982."
      "247-25\",\"Birthday\":\"1990-05-17T00:00:00-03:00\",\"Email\":\"jose@x.com\"}",
      "delivered", "created", NULL},
     "52998224725",
     "{\"cliente_documento\":\"52998224725\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "201,\"cliente_pessoa_fisica\":{\"nome\":\"Jos\u00e9 da Silva\",\"data_nascimento\":\"1990-"
     "05-17\"},\"cliente_contatos\":[{\"contato_padrao\":true,\"contato_descricao\":\"Jos\u00e9 "
     "da Silva\",\"contato_email\":\"jose@x.com\"}]}"},
    /* alphanumeric CNPJ, unicode, an id past 2^31 */
    {{"3000000001",
      "{\"Id\":3000000001,\"TypeId\":1," NEW ",\"Name\":\"\u65e5\u672c \u00c7\u00e3o\","
      "\"Register\":\"12.ABC.345/01DE-35\"}",
      "delivered", "created", NULL},
     "12ABC34501DE35",
     "{\"cliente_documento\":\"12ABC34501DE35\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "3000000001,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"\u65e5\u672c \u00c7\u00e3o\","
     "\"razao_social\":\"\u65e5\u672c \u00c7\u00e3o\",\"inscricao_estadual\":\"\"},"
     "\"cliente_contatos\":[{\"contato_padrao\":true,\"contato_descricao\":\"\u65e5\u672c "
     "\u00c7\u00e3o\"}]}"},
    /* nulls where strings are expected; the document in CNPJ, Register null */
    {{"301",
      "{\"Id\":301,\"TypeId\":1," NEW ",\"Name\":\"Nulos\",\"LegalName\":null,\"Register\":null,"
      "\"CNPJ\":\"99887766000105\",\"Website\":null,\"Note\":null,\"Email\":null,\"ZipCode\":null,"
      "\"City\":null,\"State\":null,\"Phones\":[],\"Contacts\":[]}",
      "delivered", "created", NULL},
     "99887766000105",
     "{\"cliente_documento\":\"99887766000105\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "301,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Nulos\",\"razao_social\":\"Nulos\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"Nulos\"}]}"},
    /* TypeId says company, the document is a CPF: a person */
    {{"302",
      "{\"Id\":302,\"TypeId\":1," NEW ",\"Name\":\"Pessoa\",\"LegalName\":\"X LTDA\","
      "\"Register\":\"11144477735\"}",
      "delivered", "created", NULL},
     "11144477735",
     "{\"cliente_documento\":\"11144477735\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "302,\"cliente_pessoa_fisica\":{\"nome\":\"Pessoa\"},\"cliente_contatos\":[{"
     "\"contato_padrao\":true,\"contato_descricao\":\"Pessoa\"}]}"},
    /* another format of 101's document: the same client */
    {{"108",
      "{\"Id\":108," NEW ",\"Name\":\"ACME 2\",\"Register\":\"11222333000181\"}",
      "dedup_hit", "identity_map", NULL},
     NULL,
     NULL},
    /* in Milvus already, stored as a number without its leading zeros */
    {{"109",
      "{\"Id\":109," NEW ",\"Name\":\"Zeros\",\"Register\":\"00.012.345/0001-65\"}",
      "dedup_hit", "found_at_target", NULL},
     NULL,
     NULL},
    /* in Milvus already, stored masked */
    {{"110",
      "{\"Id\":110," NEW ",\"Name\":\"Masc\",\"CPF\":\"98765432100\"}",
      "dedup_hit", "found_at_target", NULL},
     NULL,
     NULL},
    {{"104",
      "{\"Id\":104,\"CreateDate\":\"2019-01-01T00:00:00-03:00\",\"Name\":\"Old\",\"Register\":"
      "\"12345678909\"}",
      "skipped", "before_cutoff", NULL},
     NULL,
     NULL},
    {{"105",
      "{\"Id\":105," NEW ",\"Name\":\"NoDoc\",\"Register\":\"\",\"CPF\":null}",
      "skipped", "no_document", NULL},
     NULL,
     NULL},
    {{"106",
      "{\"Id\":106," NEW ",\"Name\":\"Bad\",\"Register\":\"11.222.333/0001-82\"}",
      "dead_lettered", NULL, "InvalidDocument"},
     NULL,
     NULL},
    {{"107",
      "{\"Id\":107," NEW ",\"Name\":\"Num\",\"Register\":52998224725}",
      "dead_lettered", NULL, "InvalidDocument"},
     NULL,
     NULL},
    {{"111",
      "{\"Id\":111,\"Name\":\"NoDate\",\"Register\":\"01234567890\"}",
      "dead_lettered", NULL, "InvalidRecord"},
     NULL,
     NULL},
    {{"x1",
      "{\"Id\":1,",
      "dead_lettered", NULL, "InvalidJson"},
     NULL,
     NULL},
    {{"x2",
      "[1,2]",
      "dead_lettered", NULL, "NotAnObject"},
     NULL,
     NULL},
};

#define NROWS (sizeof TABLE / sizeof TABLE[0])

static void t_table(void **state)
{
    fx_t *f = *state;
    assert_int_equal(simproc_seed(f->milvus,
                                  "{\"clientes\":[{\"id\":500,\"cnpj_cpf\":12345000165,"
                                  "\"is_fisica\":false,\"razao_social\":\"Z\",\"nome_fantasia\":"
                                  "\"Z\",\"token\":\"ZZZ001\",\"is_ativo\":true},{\"id\":501,"
                                  "\"cnpj_cpf\":\"987.654.321-00\",\"is_fisica\":true,"
                                  "\"razao_social\":\"M\",\"nome_fantasia\":\"M\",\"token\":"
                                  "\"MMM001\",\"is_ativo\":false}]}"),
                     0);
    /* every record: its outcome and reason; the dead letters with their classes. Rows that
     * share a document (108 is 101's in another format) expect the second to be an identity-map
     * hit: a reason that depends on the order, so this table runs one record at a time (the
     * exactly-once checks below and in the other tests run with the default MAX_IN_FLIGHT). */
    wt_set(&f->w, "MAX_IN_FLIGHT", "1");
    const char *why = wt_run_table(&f->w, BIN, SRC, TABLE, NROWS, sizeof TABLE[0]);
    if (why) {
        pt_dump_log(f->w.log, 8000);
        fail_msg("%s", why);
    }
    int created = 0;
    for (size_t i = 0; i < NROWS; i++) {
        if (TABLE[i].body) {
            assert_body(f, TABLE[i].doc, TABLE[i].body);
            created++;
        }
    }
    assert_int_equal(count_sent(f, NULL), 2 + created);

    /* the identity map: created clients with id and token, found ones with the Ploomes id */
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    char err[512];
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "11222333000181", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_true(e.milvus_id > 0);
    assert_true(e.milvus_token[0] != '\0');
    assert_int_equal(e.ploomes_id, 101);
    assert_string_equal(e.origin, "ploomes");
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "12ABC34501DE35", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.ploomes_id, 3000000001LL);
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "00012345000165", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.milvus_id, 500);
    assert_string_equal(e.milvus_token, "ZZZ001");
    assert_int_equal(e.ploomes_id, 109);
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "98765432100", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.milvus_id, 501);
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "12345678909", &e, err, sizeof err),
                     STORE_NOT_FOUND);
    store_close(st);

    /* a second run over the same records changes nothing */
    for (size_t i = 0; i < NROWS; i++)
        if (TABLE[i].body)
            produce(f, TABLE[i].x.key, TABLE[i].x.value);
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(count_sent(f, NULL), 2 + created);
    assert_int_equal(wt_count_done(&f->w, NULL, "dedup_hit", "identity_map"), 2 + created);
}

/* 20% of the requests answer 503 and requests closer than 25 ms answer 429 with Retry-After:
 * every contact gets exactly one client, nothing is dead-lettered. (MAX_ATTEMPTS 20: with 3, a
 * record may honestly exhaust its attempts on three 503s in a row; with 10, one record of a
 * parallel ASan run met 10 429s: grants 24 ms apart reach the simulator closer than 25 ms when
 * the host is loaded, 121 429s in that run. The limit spaces grants, not arrivals.) */
static void t_faults_exactly_once(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "MAX_ATTEMPTS", "20");
    /* the limiter spaces calls W/N apart: 2500 a minute = 24 ms, a bit under the simulator's
     * 25 ms, so a 429 still comes now and then (and is retried), but no herd after a pause */
    wt_set(&f->w, "MILVUS_RATE_PER_MIN", "2500");
    assert_int_equal(simproc_faults(f->milvus, "{\"error_rate\":0.2,\"error_status\":503,"
                                               "\"min_interval_ms\":25,\"retry_after\":true,"
                                               "\"seed\":7}"),
                     0);
    enum { N = 12 };
    char docs[N][12];
    for (int i = 0; i < N; i++) {
        /* valid CPFs 1000000xx-DV */
        int d[11];
        long base = 100000000L + i * 7919L;
        for (int k = 8; k >= 0; k--, base /= 10)
            d[k] = (int)(base % 10);
        for (int k = 9; k <= 10; k++) {
            int sum = 0;
            for (int j = 0; j < k; j++)
                sum += d[j] * (k + 1 - j);
            d[k] = sum % 11 < 2 ? 0 : 11 - sum % 11;
        }
        for (int k = 0; k < 11; k++)
            docs[i][k] = (char)('0' + d[k]);
        docs[i][11] = '\0';
        char key[16], value[256];
        snprintf(key, sizeof key, "%d", 700 + i);
        snprintf(value, sizeof value, "{\"Id\":%d," NEW ",\"Name\":\"F%d\",\"Register\":\"%s\"}",
                 700 + i, i, docs[i]);
        produce(f, key, value);
        produce(f, key, value); /* twice */
    }
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"error_rate\":0,\"min_interval_ms\":0}"), 0);
    for (int i = 0; i < N; i++)
        if (count_sent(f, docs[i]) != 1)
            fail_msg("%d clients for document %d", count_sent(f, docs[i]), i);
    assert_int_equal(count_sent(f, NULL), N);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
    assert_int_equal(wt_count_done(&f->w, NULL, "dead_lettered", NULL), 0);
    /* the faults did happen */
    assert_true(wt_log_count(&f->w, "status=503") > 0);
    assert_true(wt_log_count(&f->w, "status=429") > 0);
}

typedef struct {
    fx_t *f;
} stored_wait_t;

static bool one_stored(void *ctx)
{
    return count_sent(((stored_wait_t *)ctx)->f, NULL) >= 1;
}

/* Requests the simulator answered whose path contains `path` (any status). */
static long answered(fx_t *f, const char *path)
{
    cJSON *st = simproc_stats(f->milvus);
    long n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(st, "requests"))
    {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "count");
        if (cJSON_IsString(p) && strstr(p->valuestring, path) && cJSON_IsNumber(c))
            n += (long)c->valuedouble;
    }
    cJSON_Delete(st);
    return n;
}

/* The create takes longer than HTTP_TIMEOUT_MS (2 s): the simulator answers the two searches
 * (normal and masked form) in 1 s each, and the create in 3 s, storing the client when the
 * worker has given up on it. The worker must search instead of posting again: exactly one
 * client. To switch the latency between the second search and the create without a race, the
 * test steps the worker: stopped (SIGSTOP) for longer than a search takes, so whatever it sent
 * is answered, then the simulator's counts say where it is; resumed (SIGCONT) for a moment. */
static void t_slow_create_one_client(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "HTTP_TIMEOUT_MS", "2000");
    wt_set(&f->w, "MAX_ATTEMPTS", "4");
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":1000}"), 0);
    produce(f, "801", "{\"Id\":801," NEW ",\"Name\":\"Slow\",\"Register\":\"12345678909\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    pid_t pid = wt_spawn(&f->w, BIN, (const char *const[]){"--idle-exit", "3", NULL});
    assert_true(pid > 0);
    assert_true(wt_wait_log(&f->w, "/cliente/busca", 1, 60000));
    bool armed = false;
    for (int step = 0; step < 200 && !armed; step++) {
        assert_int_equal(kill(pid, SIGSTOP), 0);
        struct timespec pause = {1, 300000000}; /* > the 1 s a search takes */
        nanosleep(&pause, NULL);
        long searches = answered(f, "/cliente/busca"), creates = answered(f, "/cliente/criar");
        assert_int_equal(creates, 0); /* the create was not sent before the latency changed */
        if (searches >= 2) {
            assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":3000}"), 0);
            armed = true;
        }
        assert_int_equal(kill(pid, SIGCONT), 0);
        struct timespec run_for = {0, 20000000};
        nanosleep(&run_for, NULL);
    }
    assert_true(armed);
    stored_wait_t sw = {f};
    assert_true(testenv_wait_until(one_stored, &sw, 60000, 20));
    assert_int_equal(simproc_faults(f->milvus, "{\"latency_ms\":0}"), 0);
    int rc = simproc_wait(pid, 120000);
    if (rc != 0)
        pt_dump_log(f->w.log, 8000);
    assert_int_equal(rc, 0);
    assert_int_equal(count_sent(f, "12345678909"), 1);
    assert_int_equal(count_sent(f, NULL), 1);
    assert_int_equal(answered(f, "/cliente/criar"), 1); /* posted once, never again */
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
    assert_int_equal(wt_count_done(&f->w, "801", "dead_lettered", NULL), 0);
    /* the create did time out */
    assert_true(wt_log_count(&f->w, "CurlTimeout") > 0);
}

/* The create stores the client and then the connection drops (fail_after_write): searched,
 * found, never posted twice. */
static void t_dropped_create_one_client(void **state)
{
    fx_t *f = *state;
    assert_int_equal(simproc_faults(f->milvus, "{\"fail_after_write_rate\":1,"
                                               "\"fail_after_write_status\":\"drop\"}"),
                     0);
    produce(f, "802", "{\"Id\":802," NEW ",\"Name\":\"Drop\",\"Register\":\"01234567890\"}");
    produce(f, "803", "{\"Id\":803," NEW ",\"Name\":\"Err\",\"Register\":\"00000000000191\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(simproc_faults(f->milvus, "{\"fail_after_write_rate\":0}"), 0);
    assert_int_equal(count_sent(f, "01234567890"), 1);
    assert_int_equal(count_sent(f, "00000000000191"), 1);
    assert_int_equal(count_sent(f, NULL), 2);
    assert_int_equal(wt_topic_count(&f->w, "pipeline.dlq"), 0);
    /* the map knows both (found after the ambiguous create) */
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    char err[512];
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "01234567890", &e, err, sizeof err),
                     STORE_OK);
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_true(e.milvus_id > 0);
    store_close(st);
}

/* Milvus down past the retry budget: the records are dead-lettered with every header, the worker
 * goes on and delivers the next record once Milvus is back. */
static void t_down_dead_letters_and_goes_on(void **state)
{
    fx_t *f = *state;
    assert_int_equal(simproc_faults(f->milvus, "{\"down\":true}"), 0);
    produce(f, "901", "{\"Id\":901," NEW ",\"Name\":\"D1\",\"Register\":\"52998224725\"}");
    produce(f, "902", "{\"Id\":902," NEW ",\"Name\":\"D2\",\"Register\":\"11144477735\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    pid_t pid = wt_spawn(&f->w, BIN, NULL);
    assert_true(pid > 0);
    if (!wt_wait_log(&f->w, "outcome=dead_lettered", 2, 60000)) {
        pt_dump_log(f->w.log, 8000);
        fail_msg("the two records were not dead-lettered");
    }
    assert_int_equal(simproc_faults(f->milvus, "{\"down\":false}"), 0);
    produce(f, "903", "{\"Id\":903," NEW ",\"Name\":\"D3\",\"Register\":\"12345678909\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    if (!wt_wait_log(&f->w, "outcome=delivered", 1, 60000)) {
        pt_dump_log(f->w.log, 8000);
        fail_msg("the worker did not go on");
    }
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 60000), 0);
    assert_int_equal(count_sent(f, "12345678909"), 1);
    assert_int_equal(count_sent(f, NULL), 1);
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic(&f->w, "pipeline.dlq", &dlq, 30000), 0);
    assert_int_equal(dlq.n, 2);
    for (size_t i = 0; i < dlq.n; i++) {
        const char *why = wt_check_letter(&dlq.msgs[i], &f->w, SRC, "HttpStatus503");
        if (why)
            fail_msg("letter %zu: %s", i, why);
        assert_string_equal(wt_header(&dlq.msgs[i], KAFKA_DLQ_H_HTTP_STATUS), "503");
        assert_string_equal(wt_header(&dlq.msgs[i], KAFKA_DLQ_H_ATTEMPTS), "3");
    }
    assert_non_null(wt_find_key(&dlq, "901"));
    assert_non_null(wt_find_key(&dlq, "902"));
    wt_msgs_free(&dlq);
}

/* DRY_RUN=1: the searches run, the create is only logged, nothing is written to Milvus or to
 * MongoDB (not even the "found in Milvus" identity-map record). */
static void t_dry_run_writes_nothing(void **state)
{
    fx_t *f = *state;
    wt_set(&f->w, "DRY_RUN", "1");
    assert_int_equal(simproc_seed(f->milvus,
                                  "{\"clientes\":[{\"id\":600,\"cnpj_cpf\":\"11144477735\","
                                  "\"is_fisica\":true,\"razao_social\":\"K\",\"nome_fantasia\":"
                                  "\"K\",\"token\":\"KKK001\",\"is_ativo\":true}]}"),
                     0);
    produce(f, "1", "{\"Id\":1," NEW ",\"Name\":\"New\",\"Register\":\"52998224725\"}");
    produce(f, "2", "{\"Id\":2," NEW ",\"Name\":\"Known\",\"Register\":\"11144477735\"}");
    assert_int_equal(wt_flush(&f->w), 0);
    assert_int_equal(run(f, 0), 0);
    assert_int_equal(wt_count_done(&f->w, "2", "dedup_hit", "found_at_target"), 1);
    assert_true(wt_log_count(&f->w, "event=dry_run_request") >= 1);
    assert_int_equal(count_sent(f, NULL), 1); /* the seeded one only */
    store_t *st = wt_store_open(&f->w);
    assert_non_null(st);
    char err[512];
    store_entry_t e;
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "52998224725", &e, err, sizeof err),
                     STORE_NOT_FOUND);
    assert_int_equal(store_get(st, STORE_KIND_CLIENTS, "11144477735", &e, err, sizeof err),
                     STORE_NOT_FOUND);
    store_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_table, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_faults_exactly_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_slow_create_one_client, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_dropped_create_one_client, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_down_dead_letters_and_goes_on, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_dry_run_writes_nothing, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
