/* Hostile input through the real path (issue 12): every worker binary, real Kafka and FerretDB,
 * the simulators in their strict default. Each worker gets, on its source topic with the
 * producers' headers, records that are invalid JSON, JSON that is not an object, a wrong type
 * in every field, 1 MiB strings, invalid UTF-8, NUL escapes, deeply nested JSON, huge arrays,
 * control characters and (contacts) letters in a CPF. Proves, per record:
 *   - exactly one record_done line, whose outcome is skipped (with a reason) or dead_lettered,
 *     and then a dead letter that passes wt_check_letter() (Kafka Connect headers, original
 *     topic, stage TASK_PUT) — except rows marked ANY (a wrong type in an OPTIONAL field, or a
 *     long free text, that the mapper may legitimately leave out or cut): those may also be
 *     delivered, but still exactly once and without a crash;
 *   - the worker exits 0 when idle (no crash: the exit code is checked; under -DSANITIZE=ON any
 *     ASan/UBSan/LSan report makes it exit non-zero, so no leak either);
 *   - nothing was created at the target for a rejected record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../workers/wtest.h"

#define KEY "hostile-ploomes-key"
#define TOKEN "hostile-milvus-token"
#define MIB (1024 * 1024)

typedef struct {
    char key[32];
    char *value; /* owned */
    bool any;    /* a delivery is also acceptable */
    const char *what;
} row_t;

typedef struct {
    row_t rows[160];
    size_t n;
    int next_id;
} table_t;

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    if (d == NULL)
        exit(1);
    return d;
}

static char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        exit(1);
    char *s = malloc((size_t)n + 1);
    if (s == NULL)
        exit(1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static void add(table_t *t, char *value, bool any, const char *what)
{
    assert_true(t->n < sizeof t->rows / sizeof t->rows[0]);
    row_t *r = &t->rows[t->n++];
    snprintf(r->key, sizeof r->key, "%d", t->next_id++);
    r->value = value;
    r->any = any;
    r->what = what;
}

static void table_free(table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->rows[i].value);
    t->n = 0;
}

/* n copies of `unit` between `open` and `close`. */
static char *repeat(const char *open, const char *unit, size_t n, const char *sep,
                    const char *close)
{
    size_t lu = strlen(unit), ls = strlen(sep);
    size_t len = strlen(open) + n * (lu + ls) + strlen(close) + 1;
    char *s = malloc(len);
    if (s == NULL)
        exit(1);
    char *p = s;
    memcpy(p, open, strlen(open));
    p += strlen(open);
    for (size_t i = 0; i < n; i++) {
        memcpy(p, unit, lu);
        p += lu;
        if (i + 1 < n) {
            memcpy(p, sep, ls);
            p += ls;
        }
    }
    memcpy(p, close, strlen(close) + 1);
    return s;
}

/* The hostile rows every worker gets. `rec` formats a record around one field's JSON text:
 * fmt has "%s" where the field value goes (a string field that matters: Register, ContactId,
 * cnpj_cpf). */
static void common_rows(table_t *t, const char *fmt_main)
{
    add(t, xstrdup("{\"Id\": 1, \"Name\": \"x\""), false, "invalid JSON (cut)");
    add(t, xstrdup("{not json at all}"), false, "invalid JSON");
    add(t, xstrdup(""), false, "empty value");
    add(t, xstrdup("[1,2,3]"), false, "array, not an object");
    add(t, xstrdup("\"a string\""), false, "string, not an object");
    add(t, xstrdup("42"), false, "number, not an object");
    add(t, xstrdup("null"), false, "null, not an object");
    add(t, xstrdup("true"), false, "boolean, not an object");
    add(t, xstrdup("{}"), false, "empty object");
    add(t, xstrdup("{\"Id\": 1} trailing"), false, "garbage after the object");
    /* 10,000 levels: past cJSON's nesting limit. */
    char *deep = repeat("", "[", 10000, "", "");
    char *deep2 = repeat(deep, "]", 10000, "", "");
    free(deep);
    add(t, xprintf(fmt_main, deep2), false, "nesting 10,000 deep");
    free(deep2);
    /* 1 MiB strings in the field that decides. */
    char *big = repeat("\"", "7", MIB, "", "\"");
    add(t, xprintf(fmt_main, big), false, "1 MiB digit string");
    free(big);
    char *bigx = repeat("\"", "\\u00e9", MIB / 6, "", "\"");
    add(t, xprintf(fmt_main, bigx), false, "1 MiB of escapes");
    free(bigx);
    /* Invalid UTF-8 (raw bytes) and a lone surrogate escape, in the field that decides. */
    add(t, xprintf(fmt_main, "\"529.982.247-2\xC3\x28\""), false, "invalid UTF-8");
    add(t, xprintf(fmt_main, "\"\xED\xA0\x80" "52998224725\""), false, "UTF-8 surrogate bytes");
    add(t, xprintf(fmt_main, "\"\\ud800\""), false, "lone surrogate escape");
    add(t, xprintf(fmt_main, "\"52998224725\\u0000\""), false, "NUL escape");
    add(t, xprintf(fmt_main, "\"\x01\x02\x1b[31m\""), false, "raw control characters");
    add(t, xprintf(fmt_main, "\"\\u0001\\u001b[2J\\r\\n\""), false, "escaped control characters");
    /* A huge array where a scalar belongs. */
    char *arr = repeat("[", "1", 200000, ",", "]");
    add(t, xprintf(fmt_main, arr), false, "200,000-element array");
    free(arr);
    char *arro = repeat("[", "{}", 100000, ",", "]");
    add(t, xprintf(fmt_main, arro), false, "100,000 objects");
    free(arro);
    /* Wrong JSON types in the field that decides. */
    static const char *const types[] = {"{}", "{\"a\":[1]}", "[]", "true", "false", "1.5",
                                        "-1", "1e400", "null"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        add(t, xprintf(fmt_main, types[i]), false, "wrong type in the deciding field");
}

/* A wrong type (an object, an array, a number, a boolean) in each field of `base` (a JSON
 * object), one record per field and type. Fields in `required` must end rejected; the others
 * may be delivered without them (ANY). `id_key` is the record id's field, set to the row key. */
static void wrong_types(table_t *t, const char *base, const char *id_key,
                        const char *const *required)
{
    static const char *const types[] = {"{\"x\":{}}", "[[1]]", "12345", "true", "\"text\""};
    cJSON *obj = cJSON_Parse(base);
    assert_non_null(obj);
    const cJSON *f;
    cJSON_ArrayForEach(f, obj)
    {
        bool req = false;
        for (const char *const *r = required; *r; r++)
            req |= strcmp(*r, f->string) == 0;
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
            cJSON *c = cJSON_Duplicate(obj, 1);
            assert_non_null(c);
            cJSON *v = cJSON_Parse(types[i]);
            assert_non_null(v);
            /* The same JSON type as the field's own is not a wrong type. */
            const cJSON *own = cJSON_GetObjectItemCaseSensitive(obj, f->string);
            if ((cJSON_IsNumber(own) && cJSON_IsNumber(v)) ||
                (cJSON_IsString(own) && cJSON_IsString(v)) ||
                (cJSON_IsBool(own) && cJSON_IsBool(v)) ||
                (cJSON_IsArray(own) && cJSON_IsArray(v)) ||
                (cJSON_IsObject(own) && cJSON_IsObject(v))) {
                cJSON_Delete(v);
                cJSON_Delete(c);
                continue;
            }
            cJSON_ReplaceItemInObjectCaseSensitive(c, f->string, v);
            if (strcmp(f->string, id_key) != 0)
                cJSON_ReplaceItemInObjectCaseSensitive(c, id_key,
                                                       cJSON_CreateNumber(t->next_id));
            char *text = cJSON_PrintUnformatted(c);
            assert_non_null(text);
            add(t, text, !req, req ? "wrong type in a required field" : "wrong type in an optional field");
            cJSON_Delete(c);
        }
    }
    cJSON_Delete(obj);
}

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
    f->ploomes = simproc_start_sim("ploomes-sim", KEY, "{\"rate_limit_per_min\":0}", err, sizeof err);
    f->milvus = simproc_start_sim("milvus-sim", TOKEN, "{\"rate_limit_per_min\":0}", err, sizeof err);
    if (f->ploomes == NULL || f->milvus == NULL) {
        fprintf(stderr, "simulator: %s\n", err);
        return -1;
    }
    /* The contact every ticket points at (valid CPF), so a ticket record fails on its own
     * fields, not on a missing client. */
    if (simproc_seed(f->ploomes,
                     "{\"Contacts\":[{\"Id\":900,\"TypeId\":2,\"Name\":\"Ana Souza\","
                     "\"Register\":\"529.982.247-25\"}]}") != 0)
        return -1;
    wt_init(&f->w, "hostile");
    wt_set(&f->w, "PLOOMES_BASE_URL", simproc_api_url(f->ploomes));
    wt_set(&f->w, "PLOOMES_USER_KEY", KEY);
    wt_set(&f->w, "MILVUS_BASE_URL", simproc_api_url(f->milvus));
    wt_set(&f->w, "MILVUS_TOKEN", TOKEN);
    wt_set(&f->w, "MILVUS_MIN_ID", "0");
    wt_set(&f->w, "TICKET_TAGS", "40049716=Instala\xC3\xA7\xC3\xA3o");
    wt_set(&f->w, "TICKETS_SINCE", "2024-01-01T00:00:00-03:00");
    wt_set(&f->w, "SYNC_SINCE", "2024-01-01T00:00:00-03:00");
    if (wt_ensure_topics(&f->w) != 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    int rc = simproc_stop(f->ploomes) | simproc_stop(f->milvus);
    wt_free(&f->w);
    free(f);
    return rc == 0 ? 0 : -1;
}

static size_t state_count(simproc *p, const char *set)
{
    cJSON *st = simproc_state(p);
    assert_non_null(st);
    size_t n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, set));
    cJSON_Delete(st);
    return n;
}

/* Produces the table, runs the worker to idle, checks every row. */
static void run_table(fx_t *f, table_t *t, const char *binary, const char *base)
{
    for (size_t i = 0; i < t->n; i++)
        assert_int_equal(wt_produce(&f->w, base, t->rows[i].key, t->rows[i].value), 0);
    assert_int_equal(wt_flush(&f->w), 0);
    int rc = wt_run(&f->w, binary, 3, 300000);
    if (rc != 0)
        fprintf(stderr, "%s exited %d; log %s\n", binary, rc, f->w.log);
    assert_int_equal(rc, 0);

    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic_ex(&f->w, "pipeline.dlq", &dlq, 60000, true), 0);
    int skipped = 0, dead = 0, delivered = 0, bad = 0;
    for (size_t i = 0; i < t->n; i++) {
        const row_t *r = &t->rows[i];
        /* "released" is not an end (the record is fetched again): only final outcomes count. */
        int n_all = wt_count_done(&f->w, r->key, NULL, NULL) -
                    wt_count_done(&f->w, r->key, "released", NULL);
        int n_skip = wt_count_done(&f->w, r->key, "skipped", NULL);
        int n_dead = wt_count_done(&f->w, r->key, "dead_lettered", NULL);
        int n_ok = wt_count_done(&f->w, r->key, "delivered", NULL) +
                   wt_count_done(&f->w, r->key, "dedup_hit", NULL);
        const wt_msg_t *letter = wt_find_key(&dlq, r->key);
        const char *why = NULL;
        if (n_all != 1)
            why = "not exactly one record_done line";
        else if (n_dead == 1 && letter == NULL)
            why = "dead_lettered without a letter";
        else if (n_dead == 1)
            why = wt_check_letter(letter, &f->w, base, NULL);
        else if (letter != NULL)
            why = "a letter without a dead_lettered outcome";
        else if (n_ok == 1 && !r->any)
            why = "delivered although invalid";
        else if (n_skip + n_dead + n_ok != 1)
            why = "an outcome other than skipped / dead_lettered / delivered";
        if (why) {
            bad++;
            fprintf(stderr, "%s key %s (%s): %s\n", binary, r->key, r->what, why);
        }
        skipped += n_skip;
        dead += n_dead;
        delivered += n_ok;
    }
    fprintf(stderr, "%s: %zu hostile records: %d skipped, %d dead-lettered, %d delivered "
                    "(optional field left out), %zu letters\n",
            binary, t->n, skipped, dead, delivered, dlq.n);
    wt_msgs_free(&dlq);
    if (bad)
        fprintf(stderr, "log: %s\n", f->w.log);
    assert_int_equal(bad, 0);
}

static void test_contacts(void **state)
{
    fx_t *f = *state;
    table_t t = {.next_id = 10000};
    common_rows(&t, "{\"Id\":10,\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"TypeId\":2,\"Name\":\"Ana\",\"Register\":%s}");
    add(&t, xstrdup("{\"Id\":11,\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"TypeId\":2,\"Name\":\"Ana\",\"Register\":\"529.98A.247-25\"}"),
        false, "a letter in a CPF");
    add(&t, xstrdup("{\"Id\":12,\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"TypeId\":2,\"Name\":\"Ana\",\"CPF\":\"5299822472O\"}"), false,
        "a letter O for a zero in a CPF");
    add(&t, xstrdup("{\"Id\":13,\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"TypeId\":1,\"Name\":\"ACME\",\"CNPJ\":\"11.222.333/0001-8I\"}"),
        false, "a letter in a CNPJ's check digits");
    static const char *const req[] = {"Id", "CreateDate", "Register", NULL};
    wrong_types(&t, "{\"Id\":1,\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"TypeId\":2,\"Name\":\"Bia Lima\",\"Register\":\"390.533.447-05\","
                    "\"Email\":\"bia@example.com\",\"Phones\":[{\"PhoneNumber\":\"(11) 91234-5678\"}],"
                    "\"ZipCode\":1310100,\"Birthday\":\"1990-05-01T00:00:00-03:00\"}",
                "Id", req);
    size_t before = state_count(f->milvus, "clientes");
    run_table(f, &t, "clients-to-milvus", "ploomes.contacts");
    /* The only deliverable ones are the wrong-type-in-an-optional-field rows: one client. */
    assert_true(state_count(f->milvus, "clientes") <= before + 1);
    table_free(&t);
}

static void test_tasks(void **state)
{
    fx_t *f = *state;
    table_t t = {.next_id = 20000};
    common_rows(&t, "{\"Id\":20,\"Title\":\"t\",\"ContactId\":%s,"
                    "\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"Tags\":[{\"TagId\":40049716}]}");
    static const char *const req[] = {"Id", "ContactId", "CreateDate", "Tags", NULL};
    wrong_types(&t, "{\"Id\":1,\"Title\":\"Instalação\",\"ContactId\":900,\"Description\":\"d\","
                    "\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"Tags\":[{\"TagId\":40049716}]}",
                "Id", req);
    run_table(f, &t, "tasks-to-milvus", "ploomes.tasks");
    table_free(&t);
}

static void test_interactions(void **state)
{
    fx_t *f = *state;
    table_t t = {.next_id = 30000};
    common_rows(&t, "{\"Id\":30,\"Content\":\"c\",\"ContactId\":%s,"
                    "\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"Tags\":[{\"TagId\":40049716}]}");
    static const char *const req[] = {"Id", "ContactId", "CreateDate", "Tags", NULL};
    wrong_types(&t, "{\"Id\":1,\"Content\":\"Pediu instalação\",\"ContactId\":900,"
                    "\"CreateDate\":\"2026-01-01T10:00:00-03:00\",\"Tags\":[{\"TagId\":40049716}]}",
                "Id", req);
    run_table(f, &t, "interactions-to-milvus", "ploomes.interactions");
    table_free(&t);
}

static void test_milvus_clients(void **state)
{
    fx_t *f = *state;
    table_t t = {.next_id = 40000};
    common_rows(&t, "{\"id\":40,\"razao_social\":\"ACME\",\"cnpj_cpf\":%s,\"is_fisica\":false}");
    add(&t, xstrdup("{\"id\":41,\"razao_social\":\"Ana\",\"cnpj_cpf\":\"529.98A.247-25\","
                    "\"is_fisica\":true}"),
        false, "a letter in a CPF");
    static const char *const req[] = {"id", "cnpj_cpf", NULL};
    wrong_types(&t, "{\"id\":1,\"razao_social\":\"Bia Lima\",\"nome_fantasia\":\"Bia\","
                    "\"cnpj_cpf\":\"39053344705\",\"is_fisica\":true,\"is_ativo\":true}",
                "id", req);
    size_t before = state_count(f->ploomes, "Contacts");
    run_table(f, &t, "clients-to-ploomes", "milvus.clients");
    assert_true(state_count(f->ploomes, "Contacts") <= before + 1);
    table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_contacts, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_tasks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_interactions, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_milvus_clients, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
