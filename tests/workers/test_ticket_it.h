/* test_ticket_it: the integration scenarios both ticket workers share (header-only; included by
 * it_tasks_to_milvus.c and it_interactions_to_milvus.c, each as its own program).
 *
 * Real Kafka and FerretDB, ploomes-sim and milvus-sim in their strict default, records put on
 * the topic the way ploomes-producer puts them (wtest.h), the real worker binary:
 *   tk_table      a table of records → expected outcome (delivered with this exact body,
 *                 skipped for this reason, dead-lettered with this error class)
 *   tk_ambiguous  milvus-sim stores the ticket then answers 500 (fail_after_write): one ticket
 *   tk_sigkill    the worker is SIGKILLed after its POST left and before its confirmation:
 *                 after a restart (lease expired, claim recovered, search) no second ticket
 *   tk_embedded_contact  a record carrying its contact (tasks: the producer's $expand) needs
 *                 no contact read once the client is known; a mismatched or null one is read
 *   tk_main       the program running the four for one kind of record
 */
#ifndef TESTS_WORKERS_TEST_TICKET_IT_H
#define TESTS_WORKERS_TEST_TICKET_IT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "wtest.h"

typedef struct {
    const char *binary;     /* "tasks-to-milvus" */
    const char *topic;      /* "ploomes.tasks" */
    const char *entity;     /* "task" */
    bool task;              /* Title + Description, else Content */
} tk_kind_t;

#define TK_MILVUS_TOKEN "MTOKEN-IT"
#define TK_PLOOMES_KEY "PKEY-IT"
#define TK_ACME_TOKEN "ACM001"

/* Ploomes contacts: 101 ACME (in Milvus), 102 Beta (not in Milvus, created 2025: created by the
 * worker), 103 Velha (not in Milvus, created 2023, before SYNC_SINCE: ClientNotFound), 104 José
 * (a person without a document, CompanyId 101: served through ACME). */
static const char TK_PLOOMES_SEED[] =
    "{\"Contacts\":["
    "{\"Id\":101,\"TypeId\":1,\"Name\":\"ACME Ltda\",\"LegalName\":\"ACME Com\xC3\xA9rcio Ltda\","
    "\"Register\":\"11.222.333/0001-81\",\"Email\":\"contato@acme.com.br\","
    "\"CreateDate\":\"2025-01-10T10:00:00-03:00\","
    "\"Phones\":[{\"PhoneNumber\":\"(11) 4000-1000\"}]},"
    "{\"Id\":102,\"TypeId\":1,\"Name\":\"Beta Com\xC3\xA9rcio\",\"Register\":\"22233344000183\","
    "\"CreateDate\":\"2025-03-01T10:00:00-03:00\"},"
    "{\"Id\":103,\"TypeId\":1,\"Name\":\"Velha SA\",\"Register\":\"11444777000161\","
    "\"CreateDate\":\"2023-05-01T10:00:00-03:00\"},"
    "{\"Id\":104,\"TypeId\":2,\"Name\":\"Jos\xC3\xA9 da Silva\",\"CompanyId\":101,"
    "\"Email\":\"jose@acme.com.br\",\"CreateDate\":\"2025-02-01T10:00:00-03:00\","
    "\"Phones\":[{\"PhoneNumber\":\"(11) 98888-7777\"}]}"
    "]}";

static const char TK_MILVUS_SEED[] =
    "{\"clientes\":[{\"id\":500,\"razao_social\":\"ACME Com\xC3\xA9rcio Ltda\","
    "\"nome_fantasia\":\"ACME Ltda\",\"cnpj_cpf\":\"11222333000181\",\"token\":\"" TK_ACME_TOKEN
    "\",\"is_fisica\":false,\"is_ativo\":true}]}";

/* One record as the producer publishes it. contact 0 = no ContactId; tags NULL = no Tags. */
static inline char *tk_record(const tk_kind_t *k, int64_t id, int64_t contact, const char *tags,
                              const char *created, const char *title, const char *text)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "Id", (double)id);
    if (contact)
        cJSON_AddNumberToObject(o, "ContactId", (double)contact);
    if (k->task) {
        cJSON_AddStringToObject(o, "Title", title);
        if (text)
            cJSON_AddStringToObject(o, "Description", text);
        else
            cJSON_AddNullToObject(o, "Description");
    } else {
        size_t len = strlen(title) + (text ? strlen(text) : 0) + 2;
        char *content = malloc(len);
        assert_non_null(content);
        snprintf(content, len, "%s%s%s", title, text ? "\n" : "", text ? text : "");
        cJSON_AddStringToObject(o, "Content", content);
        free(content);
    }
    cJSON_AddStringToObject(o, "CreateDate", created);
    cJSON_AddStringToObject(o, "LastUpdateDate", created);
    if (tags)
        cJSON_AddItemToObject(o, "Tags", cJSON_Parse(tags));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static inline void tk_produce(wt_t *w, const tk_kind_t *k, int64_t id, const char *value)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    assert_int_equal(wt_produce(w, k->topic, key, value), 0);
}

/* The tickets of milvus-sim whose description starts with the marker of `id`. *first gets the
 * first (borrowed from state). */
static inline int tk_tickets(const cJSON *state, const tk_kind_t *k, int64_t id,
                             const cJSON **first)
{
    return wt_sim_tickets(state, k->entity, id, first);
}

static inline const char *tk_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItem(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Exactly these chamado_* fields (and cliente_id) were sent: names[i] = values[i]. */
static inline void tk_check_body(const cJSON *t, const char *const *names,
                                 const char *const *values, const char *what)
{
    size_t n = 0;
    for (; names[n]; n++) {
        const char *v = tk_str(t, names[n]);
        if (!v || strcmp(v, values[n]) != 0)
            fail_msg("%s: %s is '%s', expected '%s'", what, names[n], v ? v : "(absent)",
                     values[n]);
    }
    const cJSON *it;
    size_t sent = 0;
    cJSON_ArrayForEach(it, t)
    {
        if (strncmp(it->string, "chamado_", 8) == 0 || strcmp(it->string, "cliente_id") == 0)
            sent++;
    }
    if (sent != n)
        fail_msg("%s: %zu chamado_* fields sent, expected %zu", what, sent, n);
}

static inline simproc *tk_start(const char *binary, const char *cred, const char *seed)
{
    char err[256];
    simproc *p = simproc_start_sim(binary, cred, "{\"rate_limit_per_min\":100000}", err,
                                   sizeof err);
    assert_non_null(p);
    assert_int_equal(simproc_seed(p, seed), 0);
    return p;
}

/* wt_init_apis with both simulators and this file's credentials. */
static inline void tk_setup(wt_t *w, const char *tag, simproc *ploomes, simproc *milvus)
{
    assert_int_equal(wt_init_apis(w, tag, simproc_api_url(ploomes), TK_PLOOMES_KEY,
                                  simproc_api_url(milvus), TK_MILVUS_TOKEN),
                     0);
}

static inline void tk_expect_done(const wt_t *w, int64_t id, const char *outcome,
                                  const char *reason)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    int n = wt_count_done(w, key, outcome, reason);
    if (n != 1) {
        pt_dump_log(w->log, 6000);
        fail_msg("record %s: %d record_done lines with outcome=%s reason=%s (expected 1)", key, n,
                 outcome, reason ? reason : "*");
    }
}

#define TK_NOW "2026-06-01T10:00:00-03:00"
#define TK_TAG_INST "[{\"TagId\":40049716}]"
#define TK_TAG_ENTR "[{\"TagId\":40049715}]"
#define TK_TAG_MANU "[{\"TagId\":123},{\"TagId\":40054183}]"

/* The table. base: the first record id of this scenario. */
static inline void tk_table(const tk_kind_t *k, int64_t base)
{
    simproc *ploomes = tk_start("ploomes-sim", TK_PLOOMES_KEY, TK_PLOOMES_SEED);
    simproc *milvus = tk_start("milvus-sim", TK_MILVUS_TOKEN, TK_MILVUS_SEED);
    wt_t w;
    tk_setup(&w, k->task ? "tkt" : "tki", ploomes, milvus);
    /* reasons of rows that share a client depend on the order: one record at a time here */
    wt_set(&w, "MAX_IN_FLIGHT", "1");

    size_t big_len = 1u << 20;
    char *big = malloc(big_len + 1);
    assert_non_null(big);
    for (size_t i = 0; i < big_len; i += 2)
        memcpy(big + i, "\xC3\xA9", 2);
    big[big_len] = '\0';

    const int64_t no_tag = base + 1, other_tag = base + 2, inst = base + 3, entr = base + 4,
                  manu = 3000000000LL + base, no_contact = base + 6, old = base + 7,
                  new_client = base + 8, old_client = base + 9, person = base + 10,
                  unknown_contact = base + 11;
    struct {
        int64_t id;
        char *value;
    } recs[] = {
        {no_tag, tk_record(k, no_tag, 101, NULL, TK_NOW, "Sem tag", "x")},
        {other_tag, tk_record(k, other_tag, 101, "[{\"TagId\":123}]", TK_NOW, "Outra tag", "x")},
        {inst, tk_record(k, inst, 101, TK_TAG_INST, TK_NOW, "Instalar roteador",
                         "Levar cabo\nChegar cedo")},
        {entr, tk_record(k, entr, 101, TK_TAG_ENTR, TK_NOW,
                         "Entrega \xE2\x9C\x93 S\xC3\xA3o Paulo \xF0\x9F\x9A\x9A", NULL)},
        {manu, tk_record(k, manu, 101, TK_TAG_MANU, TK_NOW, "Manuten\xC3\xA7\xC3\xA3o", big)},
        {no_contact, tk_record(k, no_contact, 0, TK_TAG_INST, TK_NOW, "Sem contato", "x")},
        {old, tk_record(k, old, 101, TK_TAG_INST, "2025-12-31T20:59:59-03:00", "Antiga", "x")},
        {new_client, tk_record(k, new_client, 102, TK_TAG_ENTR, TK_NOW, "Cliente novo", "y")},
        {old_client, tk_record(k, old_client, 103, TK_TAG_ENTR, TK_NOW, "Cliente antigo", "y")},
        {person, tk_record(k, person, 104, TK_TAG_INST, TK_NOW, "Pessoa da ACME", "z")},
        {unknown_contact, tk_record(k, unknown_contact, 999, TK_TAG_INST, TK_NOW, "?", "z")},
    };
    size_t nrecs = sizeof recs / sizeof recs[0];
    for (size_t i = 0; i < nrecs; i++)
        tk_produce(&w, k, recs[i].id, recs[i].value);
    tk_produce(&w, k, inst, recs[2].value); /* the same record twice: one ticket */
    assert_int_equal(wt_produce(&w, k->topic, "77", "{\"Id\":77,"), 0);
    assert_int_equal(wt_produce(&w, k->topic, "78", "[78]"), 0);
    assert_int_equal(wt_flush(&w), 0);

    int rc = wt_run(&w, k->binary, 3, 120000);
    if (rc != 0)
        pt_dump_log(w.log, 8000);
    assert_int_equal(rc, 0);

    tk_expect_done(&w, no_tag, "skipped", "no_tag");
    tk_expect_done(&w, other_tag, "skipped", "no_tag");
    tk_expect_done(&w, no_contact, "skipped", "no_contact");
    tk_expect_done(&w, old, "skipped", "before_cutoff");
    tk_expect_done(&w, entr, "delivered", "created");
    tk_expect_done(&w, manu, "delivered", "created");
    tk_expect_done(&w, new_client, "delivered", "created");
    tk_expect_done(&w, person, "delivered", "created");
    tk_expect_done(&w, old_client, "dead_lettered", NULL);
    tk_expect_done(&w, unknown_contact, "dead_lettered", NULL);
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)inst);
    assert_int_equal(wt_count_done(&w, key, "delivered", "created"), 1);
    assert_int_equal(wt_count_done(&w, key, "dedup_hit", "claim_done"), 1);

    cJSON *state = simproc_state(milvus);
    assert_non_null(state);
    const cJSON *t = NULL;
    char marker_desc[256];

    /* tagged Instalação, client found in Milvus: the exact body, contact from Ploomes */
    assert_int_equal(tk_tickets(state, k, inst, &t), 1);
    snprintf(marker_desc, sizeof marker_desc, "[ploomes:%s:%lld]\n%sLevar cabo\nChegar cedo",
             k->entity, (long long)inst, k->task ? "" : "Instalar roteador\n");
    {
        const char *names[] = {"cliente_id", "chamado_assunto", "chamado_descricao",
                               "chamado_categoria_primaria", "chamado_contato", "chamado_email",
                               "chamado_telefone", NULL};
        const char *values[] = {TK_ACME_TOKEN, "Instalar roteador", marker_desc,
                                "Instala\xC3\xA7\xC3\xA3o", "ACME Ltda", "contato@acme.com.br",
                                "(11) 4000-1000"};
        tk_check_body(t, names, values, "tagged Instalação");
    }
    /* Entrega, unicode subject, no description (tasks) */
    assert_int_equal(tk_tickets(state, k, entr, &t), 1);
    assert_string_equal(tk_str(t, "chamado_assunto"),
                        "Entrega \xE2\x9C\x93 S\xC3\xA3o Paulo \xF0\x9F\x9A\x9A");
    assert_string_equal(tk_str(t, "chamado_categoria_primaria"), "Entrega");
    assert_string_equal(tk_str(t, "chamado_contato"), "ACME Ltda"); /* also on a map hit */
    assert_string_equal(tk_str(t, "chamado_telefone"), "(11) 4000-1000");
    if (k->task) {
        snprintf(marker_desc, sizeof marker_desc, "[ploomes:task:%lld]", (long long)entr);
        assert_string_equal(tk_str(t, "chamado_descricao"), marker_desc);
    }
    /* Manutenção among other tags, id past 2^31, 1 MB description capped at 10,000 characters */
    assert_int_equal(tk_tickets(state, k, manu, &t), 1);
    assert_string_equal(tk_str(t, "chamado_categoria_primaria"), "Manuten\xC3\xA7\xC3\xA3o");
    {
        const char *d = tk_str(t, "chamado_descricao");
        size_t nchars = 0;
        for (const char *p = d; *p; p++)
            nchars += ((unsigned char)*p & 0xC0) != 0x80;
        assert_int_equal(nchars, 10000);
        assert_string_equal(d + strlen(d) - 3, "\xE2\x80\xA6");
        assert_string_equal(tk_str(t, "chamado_assunto"), "Manuten\xC3\xA7\xC3\xA3o");
    }
    /* a client created first (contact after SYNC_SINCE), then the ticket with its token */
    assert_int_equal(tk_tickets(state, k, new_client, &t), 1);
    {
        const char *tok = tk_str(t, "cliente_id");
        assert_non_null(tok);
        assert_string_not_equal(tok, TK_ACME_TOKEN);
        int found = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(state, "clientes"))
        {
            const char *ct = tk_str(c, "token");
            if (ct && strcmp(ct, tok) == 0) {
                found++;
                assert_string_equal(tk_str(c, "cliente_documento"), "22233344000183");
            }
        }
        assert_int_equal(found, 1);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(state, "clientes")), 2);
    }
    /* a person without a document: the company's client, the person as the contact */
    assert_int_equal(tk_tickets(state, k, person, &t), 1);
    assert_string_equal(tk_str(t, "cliente_id"), TK_ACME_TOKEN);
    assert_string_equal(tk_str(t, "chamado_contato"), "Jos\xC3\xA9 da Silva");
    assert_string_equal(tk_str(t, "chamado_email"), "jose@acme.com.br");
    assert_string_equal(tk_str(t, "chamado_telefone"), "(11) 98888-7777");
    /* nothing else became a ticket */
    assert_int_equal(tk_tickets(state, k, no_tag, NULL) + tk_tickets(state, k, other_tag, NULL) +
                         tk_tickets(state, k, no_contact, NULL) + tk_tickets(state, k, old, NULL) +
                         tk_tickets(state, k, old_client, NULL) +
                         tk_tickets(state, k, unknown_contact, NULL),
                     0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(state, "chamados")), 5);
    cJSON_Delete(state);

    /* the dead letters: full headers, the right classes */
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic(&w, "pipeline.dlq", &dlq, 30000), 0);
    assert_int_equal(dlq.n, 4);
    static const struct {
        int64_t id;
        const char *cls;
    } letters[] = {{0, "ClientNotFound"}, {1, "ClientNotFound"}, {77, "InvalidJson"},
                   {78, "NotAnObject"}};
    for (size_t i = 0; i < 4; i++) {
        int64_t id = i == 0 ? old_client : i == 1 ? unknown_contact : letters[i].id;
        snprintf(key, sizeof key, "%lld", (long long)id);
        const wt_msg_t *m = wt_find_key(&dlq, key);
        assert_non_null(m);
        const char *why = wt_check_letter(m, &w, k->topic, letters[i].cls);
        if (why)
            fail_msg("letter %s: %s", key, why);
    }
    wt_msgs_free(&dlq);

    for (size_t i = 0; i < nrecs; i++)
        free(recs[i].value);
    free(big);
    wt_free(&w);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
}

/* milvus-sim stores every create and then answers 500: the worker searches, finds the ticket,
 * and creates nothing more. */
static inline void tk_ambiguous(const tk_kind_t *k, int64_t id)
{
    simproc *ploomes = tk_start("ploomes-sim", TK_PLOOMES_KEY, TK_PLOOMES_SEED);
    simproc *milvus = tk_start("milvus-sim", TK_MILVUS_TOKEN, TK_MILVUS_SEED);
    assert_int_equal(simproc_faults(milvus, "{\"fail_after_write_rate\":1,"
                                            "\"fail_after_write_status\":500}"),
                     0);
    wt_t w;
    tk_setup(&w, k->task ? "tkta" : "tkia", ploomes, milvus);
    char *v = tk_record(k, id, 101, TK_TAG_INST, TK_NOW, "Amb\xC3\xADguo", "texto");
    tk_produce(&w, k, id, v);
    free(v);
    assert_int_equal(wt_flush(&w), 0);
    assert_int_equal(wt_run(&w, k->binary, 3, 120000), 0);
    tk_expect_done(&w, id, "delivered", "found_after_ambiguous");
    cJSON *state = simproc_state(milvus);
    assert_int_equal(tk_tickets(state, k, id, NULL), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(state, "chamados")), 1);
    cJSON_Delete(state);
    assert_int_equal(wt_topic_count(&w, "pipeline.dlq"), 0);
    wt_free(&w);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
}

/* ---- the contact the producer embeds (tasks: $expand=Contact(...)) ---------------------------- */

/* GET /Contacts requests ploomes-sim answered (from /_admin/stats). */
static inline long tk_contact_reads(const simproc *ploomes)
{
    cJSON *st = simproc_stats(ploomes);
    assert_non_null(st);
    long n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(st, "requests"))
    {
        const char *m = tk_str(e, "method"), *path = tk_str(e, "path");
        if (m && path && strcmp(m, "GET") == 0 && strcmp(path, "/Contacts") == 0)
            n += (long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "count"));
    }
    cJSON_Delete(st);
    return n;
}

/* tk_record() with a `Contact` member (raw JSON) as ploomes-producer's $expand puts it. */
static inline char *tk_record_with_contact(const tk_kind_t *k, int64_t id, const char *contact)
{
    char *base = tk_record(k, id, 101, TK_TAG_INST, TK_NOW, "Com contato", "texto");
    cJSON *o = cJSON_Parse(base);
    free(base);
    assert_non_null(o);
    cJSON_AddItemToObject(o, "Contact", cJSON_Parse(contact));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Once the client is in the identity map, a record carrying its own contact (Id = ContactId)
 * becomes a ticket with that contact's details and no Ploomes request; a Contact of another Id
 * or null is not trusted: the contact is read, as for records without one. */
static inline void tk_embedded_contact(const tk_kind_t *k, int64_t base)
{
    simproc *ploomes = tk_start("ploomes-sim", TK_PLOOMES_KEY, TK_PLOOMES_SEED);
    simproc *milvus = tk_start("milvus-sim", TK_MILVUS_TOKEN, TK_MILVUS_SEED);
    wt_t w;
    tk_setup(&w, k->task ? "tkte" : "tkie", ploomes, milvus);
    const char *own = "{\"Id\":101,\"Name\":\"ACME no poll\",\"Email\":\"poll@acme.com.br\","
                      "\"Phones\":[{\"Id\":9,\"PhoneNumber\":\"(11) 5000-2000\"}]}";
    /* the first record puts ACME in the identity map (a contact read: not known yet) */
    char *v = tk_record_with_contact(k, base + 1, own);
    tk_produce(&w, k, base + 1, v);
    free(v);
    assert_int_equal(wt_flush(&w), 0);
    assert_int_equal(wt_run(&w, k->binary, 3, 120000), 0);
    tk_expect_done(&w, base + 1, "delivered", "created");
    long reads = tk_contact_reads(ploomes);
    assert_int_equal(reads, 1);

    const char *other = "{\"Id\":104,\"Name\":\"Outro\",\"Email\":\"outro@x.com\",\"Phones\":[]}";
    struct {
        int64_t id;
        const char *contact;
        const char *contato, *email, *telefone;
    } rows[] = {
        {base + 2, own, "ACME no poll", "poll@acme.com.br", "(11) 5000-2000"},
        {base + 3, other, "ACME Ltda", "contato@acme.com.br", "(11) 4000-1000"},
        {base + 4, "null", "ACME Ltda", "contato@acme.com.br", "(11) 4000-1000"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        v = tk_record_with_contact(k, rows[i].id, rows[i].contact);
        tk_produce(&w, k, rows[i].id, v);
        free(v);
    }
    assert_int_equal(wt_flush(&w), 0);
    int rc = wt_run(&w, k->binary, 3, 120000);
    if (rc != 0)
        pt_dump_log(w.log, 8000);
    assert_int_equal(rc, 0);
    cJSON *state = simproc_state(milvus);
    assert_non_null(state);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        tk_expect_done(&w, rows[i].id, "delivered", "created");
        const cJSON *t = NULL;
        assert_int_equal(tk_tickets(state, k, rows[i].id, &t), 1);
        assert_string_equal(tk_str(t, "cliente_id"), TK_ACME_TOKEN);
        assert_string_equal(tk_str(t, "chamado_contato"), rows[i].contato);
        assert_string_equal(tk_str(t, "chamado_email"), rows[i].email);
        assert_string_equal(tk_str(t, "chamado_telefone"), rows[i].telefone);
    }
    cJSON_Delete(state);
    /* the mismatched and the null Contact were read; the record's own contact was not */
    assert_int_equal(tk_contact_reads(ploomes), reads + 2);
    assert_int_equal(wt_topic_count(&w, "pipeline.dlq"), 0);
    wt_free(&w);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
}

/* ---- SIGKILL between the POST and the confirmation ------------------------------------------- */

typedef struct {
    const wt_t *w;
    const char *needle;
    int64_t at_ms; /* out: time= of the first matching line */
} tk_logtime_t;

static inline bool tk_log_time(void *ctx)
{
    tk_logtime_t *lt = ctx;
    FILE *f = fopen(lt->w->log, "r");
    if (!f)
        return false;
    char line[8192];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        if (!strstr(line, lt->needle) || strncmp(line, "time=", 5) != 0)
            continue;
        char stamp[40];
        size_t n = strcspn(line + 5, " ");
        if (n >= sizeof stamp)
            continue;
        memcpy(stamp, line + 5, n);
        stamp[n] = '\0';
        found = config_parse_rfc3339(stamp, &lt->at_ms) == 0;
    }
    fclose(f);
    return found;
}

typedef struct {
    const char *uri;
    const char *db;
    int64_t since_ms;
} tk_rl_t;

/* A rate-limit ticket (one per HTTP attempt, taken right before the request is sent) acquired
 * at or after since_ms: the POST that follows the log line has left. */
static inline bool tk_rl_ticket_after(void *ctx)
{
    tk_rl_t *r = ctx;
    mongoc_client_t *c = mongoc_client_new(r->uri);
    if (!c)
        return false;
    mongoc_collection_t *coll = mongoc_client_get_collection(c, r->db, "ratelimits");
    bson_t *filter = BCON_NEW("t", "{", "$gte", BCON_INT64(r->since_ms), "}");
    bson_error_t err;
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &err);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(c);
    return n > 0;
}

typedef struct {
    simproc *milvus;
    const tk_kind_t *k;
    int64_t id;
} tk_ticket_wait_t;

static inline bool tk_ticket_stored(void *ctx)
{
    tk_ticket_wait_t *tw = ctx;
    cJSON *state = simproc_state(tw->milvus);
    int n = state ? tk_tickets(state, tw->k, tw->id, NULL) : 0;
    cJSON_Delete(state);
    return n > 0;
}

static inline void tk_sigkill(const tk_kind_t *k, int64_t id)
{
    simproc *ploomes = tk_start("ploomes-sim", TK_PLOOMES_KEY, TK_PLOOMES_SEED);
    simproc *milvus = tk_start("milvus-sim", TK_MILVUS_TOKEN, TK_MILVUS_SEED);
    wt_t w;
    tk_setup(&w, k->task ? "tktk" : "tkik", ploomes, milvus);
    wt_set(&w, "HTTP_TIMEOUT_MS", "20000");
    wt_set(&w, "CLAIM_LEASE_SECONDS", "2");
    /* one stored rate-limit ticket per request (B = 1 below 1,200/min; 60 ms spacing): the
     * ticket stamped after `ticket_post` is how this test knows the POST is under way — the
     * harness's 100,000/min would hand out tickets from a block taken earlier */
    wt_set(&w, "MILVUS_RATE_PER_MIN", "1000");
    char *v = tk_record(k, id, 101, TK_TAG_ENTR, TK_NOW, "Cair no meio", "texto");
    tk_produce(&w, k, id, v);
    free(v);
    assert_int_equal(wt_flush(&w), 0);

    /* every Milvus request takes 3 s: the worker is stuck in its POST when it is killed */
    assert_int_equal(simproc_faults(milvus, "{\"latency_ms\":3000}"), 0);
    const char *args[] = {"--idle-exit", "30", NULL};
    pid_t pid = wt_spawn(&w, k->binary, args);
    assert_true(pid > 0);
    char needle[96];
    snprintf(needle, sizeof needle, "event=ticket_post key=ploomes:%s:%lld", k->entity,
             (long long)id);
    tk_logtime_t lt = {&w, needle, 0};
    assert_true(testenv_wait_until(tk_log_time, &lt, 90000, 20));
    /* the POST's ticket may be stamped just before its log line (MongoDB's clock, read at
     * acquire); the call before it took 3 s, so 1 s of slack cannot mistake its ticket */
    tk_rl_t rl = {w.mongo_uri, w.db, lt.at_ms - 1000};
    assert_true(testenv_wait_until(tk_rl_ticket_after, &rl, 30000, 10));
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(simproc_wait(pid, 30000), 128 + SIGKILL);

    /* the POST went through after the worker died */
    tk_ticket_wait_t tw = {milvus, k, id};
    assert_true(testenv_wait_until(tk_ticket_stored, &tw, 30000, 50));
    assert_int_equal(simproc_faults(milvus, "{\"latency_ms\":0}"), 0);
    /* the claim is pending (nobody confirmed it) */
    store_t *st = wt_store_open(&w);
    assert_non_null(st);
    store_entry_t e;
    char key[64], err[256];
    snprintf(key, sizeof key, "ploomes:%s:%lld", k->entity, (long long)id);
    assert_int_equal(store_get(st, STORE_KIND_TICKETS, key, &e, err, sizeof err), STORE_OK);
    assert_int_equal(e.state, STORE_STATE_PENDING);

    /* restart: the lease expires, the claim is recovered, the search finds the ticket */
    int rc = wt_run(&w, k->binary, 12, 120000);
    if (rc != 0)
        pt_dump_log(w.log, 8000);
    assert_int_equal(rc, 0);
    tk_expect_done(&w, id, "dedup_hit", "found_at_target");
    cJSON *state = simproc_state(milvus);
    const cJSON *t = NULL;
    assert_int_equal(tk_tickets(state, k, id, &t), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(state, "chamados")), 1);
    /* the claim is done with the codigo the target gave */
    assert_int_equal(store_get(st, STORE_KIND_TICKETS, key, &e, err, sizeof err), STORE_OK);
    assert_int_equal(e.state, STORE_STATE_DONE);
    char codigo[32];
    snprintf(codigo, sizeof codigo, "%lld",
             (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(t, "codigo")));
    assert_string_equal(e.codigo, codigo);
    cJSON_Delete(state);
    store_close(st);
    wt_free(&w);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
}

/* ---- the program: the three scenarios for one kind ------------------------------------------- */

static const tk_kind_t *tk_kind; /* set once by tk_main() before the tests run */
static int64_t tk_base;

static void tk_test_table(void **state)
{
    (void)state;
    tk_table(tk_kind, tk_base + 100);
}

static void tk_test_ambiguous_create(void **state)
{
    (void)state;
    tk_ambiguous(tk_kind, tk_base + 200);
}

static void tk_test_sigkill_between_post_and_confirm(void **state)
{
    (void)state;
    tk_sigkill(tk_kind, tk_base + 300);
}

static void tk_test_embedded_contact(void **state)
{
    (void)state;
    tk_embedded_contact(tk_kind, tk_base + 400);
}

/* main() of it_tasks_to_milvus / it_interactions_to_milvus; base: the first record id. */
static inline int tk_main(const tk_kind_t *kind, int64_t base)
{
    tk_kind = kind;
    tk_base = base;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tk_test_table),
        cmocka_unit_test(tk_test_ambiguous_create),
        cmocka_unit_test(tk_test_sigkill_between_post_and_confirm),
        cmocka_unit_test(tk_test_embedded_contact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
