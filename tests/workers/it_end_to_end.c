/* End to end (issue 10): ploomes-sim seeded with contacts, tasks and interactions (some tagged),
 * milvus-sim with existing clients; both producers --once, then the four workers at once with
 * --idle-exit, against real Kafka and FerretDB. The simulators then hold exactly the expected
 * clients, contacts and tickets; a second full run changes nothing.
 * TICKETS_SINCE is left unset: ploomes-producer fixes the account's setting, the ticket workers
 * read the same one. */
#include "test_ticket_it.h"

/* Ploomes: 101 ACME (in Milvus), 102 Beta (not in Milvus: created once, whoever gets there
 * first of clients-to-milvus and tasks-to-milvus), 104 José (a person of ACME without a
 * document), 105 Delta (created before SYNC_SINCE: not copied). Tasks: 201 Instalação for ACME,
 * 202 Entrega for Beta, 203 untagged, 204 tagged but created long before TICKETS_SINCE.
 * Interactions: 301 Manutenção for José, 302 with another tag. */
static const char E2E_PLOOMES[] =
    "{\"Contacts\":["
    "{\"Id\":101,\"TypeId\":1,\"Name\":\"ACME Ltda\",\"Register\":\"11.222.333/0001-81\","
    "\"Email\":\"contato@acme.com.br\",\"CreateDate\":\"2025-01-10T10:00:00-03:00\"},"
    "{\"Id\":102,\"TypeId\":1,\"Name\":\"Beta Com\xC3\xA9rcio\",\"Register\":\"22233344000183\","
    "\"ZipCode\":1310100,\"StreetAddress\":\"Av. Paulista\","
    "\"CreateDate\":\"2025-03-01T10:00:00-03:00\"},"
    "{\"Id\":104,\"TypeId\":2,\"Name\":\"Jos\xC3\xA9 da Silva\",\"CompanyId\":101,"
    "\"CreateDate\":\"2025-02-01T10:00:00-03:00\"},"
    "{\"Id\":105,\"TypeId\":1,\"Name\":\"Delta SA\",\"Register\":\"33344455000183\","
    "\"CreateDate\":\"2023-01-01T10:00:00-03:00\"}],"
    "\"Tasks\":["
    "{\"Id\":201,\"Title\":\"Instalar\",\"Description\":\"Roteador\",\"ContactId\":101,"
    "\"Tags\":[{\"TagId\":40049716}]},"
    "{\"Id\":202,\"Title\":\"Entregar\",\"Description\":\"Caixas\",\"ContactId\":102,"
    "\"Tags\":[{\"TagId\":40049715}]},"
    "{\"Id\":203,\"Title\":\"Ligar\",\"ContactId\":101},"
    "{\"Id\":204,\"Title\":\"Antiga\",\"ContactId\":101,"
    "\"CreateDate\":\"2025-06-01T10:00:00-03:00\","
    "\"Tags\":[{\"TagId\":40049716}]}],"
    "\"InteractionRecords\":["
    "{\"Id\":301,\"Content\":\"Trocar pe\xC3\xA7\x61\\nDetalhes\",\"ContactId\":104,"
    "\"Tags\":[{\"TagId\":40054183}]},"
    "{\"Id\":302,\"Content\":\"Conversa\",\"ContactId\":101,\"Tags\":[{\"TagId\":123}]}]}";

static const char E2E_MILVUS[] =
    "{\"clientes\":["
    "{\"id\":500,\"razao_social\":\"ACME Ltda\",\"nome_fantasia\":\"ACME Ltda\","
    "\"cnpj_cpf\":\"11222333000181\",\"token\":\"ACM001\",\"is_fisica\":false,\"is_ativo\":true},"
    "{\"id\":501,\"razao_social\":\"Gama Silva\",\"nome_fantasia\":\"Gama Silva\","
    "\"cnpj_cpf\":\"52998224725\",\"token\":\"GAM001\",\"is_fisica\":true,\"is_ativo\":true}]}";

static const char *const WORKERS[] = {"clients-to-milvus", "clients-to-ploomes", "tasks-to-milvus",
                                      "interactions-to-milvus"};

static void full_run(wt_t *w)
{
    const char *once[] = {"--once", NULL};
    int rc = pt_run("ploomes-producer", once, wt_env(w), w->log, 120000);
    if (rc == 0)
        rc = pt_run("milvus-producer", once, wt_env(w), w->log, 120000);
    if (rc != 0)
        pt_dump_log(w->log, 8000);
    assert_int_equal(rc, 0);
    pid_t pids[4];
    const char *args[] = {"--idle-exit", "5", NULL};
    for (int i = 0; i < 4; i++) {
        pids[i] = wt_spawn(w, WORKERS[i], args);
        assert_true(pids[i] > 0);
    }
    bool ok = true;
    for (int i = 0; i < 4; i++) {
        int code = simproc_wait(pids[i], 180000);
        if (code != 0) {
            fprintf(stderr, "%s exited %d\n", WORKERS[i], code);
            ok = false;
        }
    }
    if (!ok)
        pt_dump_log(w->log, 12000);
    assert_true(ok);
}

static const cJSON *by_str(const cJSON *arr, const char *field, const char *value, int *count)
{
    const cJSON *it, *first = NULL;
    *count = 0;
    cJSON_ArrayForEach(it, arr)
    {
        const char *v = tk_str(it, field);
        if (v && strcmp(v, value) == 0 && (*count)++ == 0)
            first = it;
    }
    return first;
}

static void check_state(const cJSON *pl, const cJSON *mv)
{
    static const tk_kind_t TASK = {"tasks-to-milvus", "ploomes.tasks", "task", true};
    static const tk_kind_t INTER = {"interactions-to-milvus", "ploomes.interactions",
                                    "interaction", false};
    int n;
    /* Milvus: ACME and Gama as seeded, Beta created once */
    const cJSON *clientes = cJSON_GetObjectItem(mv, "clientes");
    assert_int_equal(cJSON_GetArraySize(clientes), 3);
    const cJSON *beta = by_str(clientes, "cnpj_cpf", "22233344000183", &n);
    assert_int_equal(n, 1);
    assert_non_null(beta);
    const char *beta_token = tk_str(beta, "token");
    assert_non_null(beta_token);
    const cJSON *pj = cJSON_GetObjectItem(beta, "cliente_pessoa_juridica");
    assert_string_equal(tk_str(pj, "nome_fantasia"), "Beta Com\xC3\xA9rcio");
    /* Ploomes: the four seeded contacts and Gama, created from Milvus as a person */
    const cJSON *contacts = cJSON_GetObjectItem(pl, "Contacts");
    assert_int_equal(cJSON_GetArraySize(contacts), 5);
    const cJSON *gama = by_str(contacts, "Register", "52998224725", &n);
    assert_int_equal(n, 1);
    assert_string_equal(tk_str(gama, "Name"), "Gama Silva");
    assert_int_equal((int)cJSON_GetNumberValue(cJSON_GetObjectItem(gama, "TypeId")), 2);
    /* Tickets: task 201 (ACME), task 202 (Beta), interaction 301 (José through ACME) */
    const cJSON *chamados = cJSON_GetObjectItem(mv, "chamados");
    assert_int_equal(cJSON_GetArraySize(chamados), 3);
    const cJSON *t = NULL;
    assert_int_equal(tk_tickets(mv, &TASK, 201, &t), 1);
    assert_string_equal(tk_str(t, "cliente_id"), "ACM001");
    assert_string_equal(tk_str(t, "chamado_categoria_primaria"), "Instala\xC3\xA7\xC3\xA3o");
    assert_string_equal(tk_str(t, "chamado_descricao"), "[ploomes:task:201]\nRoteador");
    /* the contact's details: from the Contact ploomes-producer's $expand put in the record, or
     * read by the worker; the same either way */
    assert_string_equal(tk_str(t, "chamado_contato"), "ACME Ltda");
    assert_string_equal(tk_str(t, "chamado_email"), "contato@acme.com.br");
    assert_int_equal(tk_tickets(mv, &TASK, 202, &t), 1);
    assert_string_equal(tk_str(t, "cliente_id"), beta_token);
    assert_string_equal(tk_str(t, "chamado_assunto"), "Entregar");
    assert_int_equal(tk_tickets(mv, &INTER, 301, &t), 1);
    assert_string_equal(tk_str(t, "cliente_id"), "ACM001");
    assert_string_equal(tk_str(t, "chamado_assunto"), "Trocar pe\xC3\xA7\x61");
    assert_string_equal(tk_str(t, "chamado_contato"), "Jos\xC3\xA9 da Silva");
    assert_string_equal(tk_str(t, "chamado_categoria_primaria"), "Manuten\xC3\xA7\xC3\xA3o");
}

static void test_end_to_end(void **state)
{
    (void)state;
    simproc *ploomes = tk_start("ploomes-sim", TK_PLOOMES_KEY, E2E_PLOOMES);
    simproc *milvus = tk_start("milvus-sim", TK_MILVUS_TOKEN, E2E_MILVUS);
    wt_t w;
    tk_setup(&w, "e2e", ploomes, milvus);
    wt_set(&w, "TICKETS_SINCE", NULL); /* the account's one setting decides (checked below) */
    wt_set(&w, "MILVUS_MIN_ID", "0"); /* backfill: Milvus-only clients go to Ploomes */
    wt_set(&w, "POLL_INTERVAL_SECONDS", "1");

    full_run(&w);
    cJSON *pl1 = simproc_state(ploomes), *mv1 = simproc_state(milvus);
    assert_non_null(pl1);
    assert_non_null(mv1);
    check_state(pl1, mv1);
    assert_int_equal(wt_topic_count(&w, "pipeline.dlq"), 0);
    /* the cut-off every process used is the one setting of the account */
    store_t *st = wt_store_open(&w);
    char since[64], err[256];
    assert_int_equal(store_setting_get_or_init(st, "tickets_since", "1970-01-01T00:00:00Z", since,
                                               sizeof since, err, sizeof err),
                     STORE_OK);
    assert_string_not_equal(since, "1970-01-01T00:00:00Z");
    store_close(st);
    char line[160];
    snprintf(line, sizeof line, "event=tickets_since value=%s source=mongodb", since);
    assert_int_equal(wt_log_count(&w, line), 2); /* tasks- and interactions-to-milvus */
    assert_true(wt_count_done(&w, "204", "skipped", "before_cutoff") == 1);
    assert_true(wt_count_done(&w, "203", "skipped", "no_tag") == 1);

    /* a second full run: new records to read (Gama in Ploomes, Beta in Milvus) but nothing to do */
    full_run(&w);
    cJSON *pl2 = simproc_state(ploomes), *mv2 = simproc_state(milvus);
    assert_non_null(pl2);
    assert_non_null(mv2);
    check_state(pl2, mv2);
    assert_true(cJSON_Compare(pl1, pl2, true));
    assert_true(cJSON_Compare(mv1, mv2, true));
    assert_int_equal(wt_topic_count(&w, "pipeline.dlq"), 0);
    cJSON_Delete(pl1);
    cJSON_Delete(mv1);
    cJSON_Delete(pl2);
    cJSON_Delete(mv2);
    wt_free(&w);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
