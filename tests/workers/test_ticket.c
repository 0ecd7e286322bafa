/* Unit tests of workers/ticket.c: filters, marker and key, description cap (multibyte UTF-8,
 * 1 MB), subjects, the /chamado/criar body, the marker-first-line search rule, Milvus times,
 * and the handlers' entry points on records that end before any I/O (skips, invalid records,
 * invalid JSON through the runtime's parser). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "json.h"
#include "ticket.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static config_t load_cfg(const char *extra1, const char *extra2)
{
    config_t cfg;
    char *envp[] = {(char *)"TICKET_TAGS=40049716=Instala\xC3\xA7\xC3\xA3o,40049715=Entrega,"
                            "3000000001=Manuten\xC3\xA7\xC3\xA3o",
                    (char *)"SYNC_SINCE=2024-02-24T00:00:00-03:00", (char *)extra1,
                    (char *)extra2, NULL};
    if (!extra1)
        envp[2] = NULL;
    else if (!extra2)
        envp[3] = NULL;
    int problems = config_load_env(&cfg, CONFIG_NEED_WORKER | CONFIG_NEED_TICKETS, envp);
    if (problems != 0)
        config_print_problems(&cfg, stderr);
    assert_int_equal(problems, 0);
    return cfg;
}

static size_t chars(const char *s)
{
    size_t n;
    ticket_utf8_prefix(s, strlen(s), (size_t)-1, &n);
    return n;
}

/* ---- filters --------------------------------------------------------------------------------- */

#define SINCE_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

typedef struct {
    const char *name;
    const char *json;
    int64_t fetched_at_ms;
    bool replayed;
    worker_outcome_t outcome; /* WORKER_DELIVERED = passes */
    const char *reason;       /* skip reason or dead error class */
    const char *category;     /* when it passes */
} filter_row_t;

static const filter_row_t FILTER_ROWS[] = {
    {"tagged", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2026-01-02T10:00:00-03:00\","
               "\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_DELIVERED, NULL, "Entrega"},
    {"first configured tag wins",
     "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2026-01-02T10:00:00Z\","
                                  "\"Tags\":[{\"TagId\":40049715},{\"TagId\":40049716}]}",
     -1, false, WORKER_DELIVERED, NULL, "Instala\xC3\xA7\xC3\xA3o"},
    {"tag past 2^31", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2026-01-02T10:00:00Z\","
                      "\"Tags\":[{\"TagId\":3000000001}]}",
     -1, false, WORKER_DELIVERED, NULL, "Manuten\xC3\xA7\xC3\xA3o"},
    {"no tags", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2026-01-02T10:00:00Z\"}", -1, false,
     WORKER_SKIPPED, "no_tag", NULL},
    {"other tag", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2026-01-02T10:00:00Z\","
                  "\"Tags\":[{\"TagId\":123}]}",
     -1, false, WORKER_SKIPPED, "no_tag", NULL},
    {"Tags null", "{\"Id\":1,\"ContactId\":7,\"Tags\":null}", -1, false, WORKER_SKIPPED, "no_tag",
     NULL},
    {"Tags wrong type", "{\"Id\":1,\"ContactId\":7,\"Tags\":\"40049715\"}", -1, false,
     WORKER_SKIPPED, "no_tag", NULL},
    {"TagId as text", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2026-01-02T10:00:00Z\","
                      "\"Tags\":[{\"TagId\":\"40049715\"}]}",
     -1, false, WORKER_DELIVERED, NULL, "Entrega"},
    {"tag rows of wrong types",
     "{\"Id\":1,\"ContactId\":7,\"Tags\":[null,1,\"x\",{\"TagId\":null}]}",
     -1, false, WORKER_SKIPPED, "no_tag", NULL},
    {"no ContactId",
     "{\"Id\":1,\"CreateDate\":\"2026-01-02T10:00:00Z\",\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_SKIPPED, "no_contact", NULL},
    {"ContactId null", "{\"Id\":1,\"ContactId\":null,\"Tags\":[{\"TagId\":40049715}]}", -1, false,
     WORKER_SKIPPED, "no_contact", NULL},
    {"ContactId wrong type", "{\"Id\":1,\"ContactId\":true,\"Tags\":[{\"TagId\":40049715}]}", -1,
     false, WORKER_DEAD, "InvalidRecord", NULL},
    {"ContactId past 2^31",
     "{\"Id\":1,\"ContactId\":4294967297,\"CreateDate\":\"2026-01-02T10:00:00Z\","
                            "\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_DELIVERED, NULL, "Entrega"},
    {"no Id", "{\"ContactId\":7,\"Tags\":[{\"TagId\":40049715}]}", -1, false, WORKER_DEAD,
     "InvalidRecord", NULL},
    {"Id fractional", "{\"Id\":1.5,\"ContactId\":7}", -1, false, WORKER_DEAD, "InvalidRecord",
     NULL},
    {"Id string", "{\"Id\":\"abc\",\"ContactId\":7}", -1, false, WORKER_DEAD, "InvalidRecord",
     NULL},
    {"before cut-off", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2025-12-31T20:59:59-03:00\","
                       "\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_SKIPPED, "before_cutoff", NULL},
    {"at the cut-off", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"2025-12-31T21:00:00-03:00\","
                       "\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_DELIVERED, NULL, "Entrega"},
    {"CreateDate missing", "{\"Id\":1,\"ContactId\":7,\"Tags\":[{\"TagId\":40049715}]}", -1, false,
     WORKER_DEAD, "InvalidRecord", NULL},
    {"CreateDate not a time", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":\"ontem\","
                              "\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_DEAD, "InvalidRecord", NULL},
    {"CreateDate number", "{\"Id\":1,\"ContactId\":7,\"CreateDate\":20260102,"
                          "\"Tags\":[{\"TagId\":40049715}]}",
     -1, false, WORKER_DEAD, "InvalidRecord", NULL},
};

static void test_filter_table(void **state)
{
    (void)state;
    config_t cfg = load_cfg(NULL, NULL);
    for (size_t i = 0; i < sizeof FILTER_ROWS / sizeof FILTER_ROWS[0]; i++) {
        const filter_row_t *row = &FILTER_ROWS[i];
        cJSON *rec = cJSON_Parse(row->json);
        assert_non_null(rec);
        worker_result_t out;
        memset(&out, 0, sizeof out);
        ticket_record_t r;
        worker_outcome_t o = ticket_filter(&cfg, SINCE_MS, row->fetched_at_ms, row->replayed, rec,
                                           &r, &out);
        if (o != row->outcome)
            fail_msg("row '%s': outcome %s, expected %s", row->name, worker_outcome_name(o),
                     worker_outcome_name(row->outcome));
        if (o == WORKER_SKIPPED && strcmp(out.reason, row->reason) != 0)
            fail_msg("row '%s': reason %s, expected %s", row->name, out.reason, row->reason);
        if (o == WORKER_DEAD && strcmp(out.error_class, row->reason) != 0)
            fail_msg("row '%s': class %s, expected %s", row->name, out.error_class, row->reason);
        if (o == WORKER_DELIVERED) {
            assert_non_null(r.category);
            if (strcmp(r.category, row->category) != 0)
                fail_msg("row '%s': category %s", row->name, r.category);
            assert_true(r.contact_id > 0);
        }
        worker_result_clear(&out);
        cJSON_Delete(rec);
    }
    config_free(&cfg);
}

static void test_filter_ids_and_max_age(void **state)
{
    (void)state;
    config_t cfg = load_cfg("TICKET_MAX_AGE_MINUTES=60", NULL);
    const char *json = "{\"Id\":9007199254740993000,\"ContactId\":\"9007199254740993\","
                       "\"CreateDate\":\"2026-01-02T10:00:00Z\",\"Tags\":[{\"TagId\":40049715}]}";
    cJSON *rec = cJSON_Parse(json);
    worker_result_t out;
    memset(&out, 0, sizeof out);
    ticket_record_t r;
    /* a JSON number beyond 2^53 cannot be trusted as an id */
    assert_int_equal(ticket_filter(&cfg, SINCE_MS, -1, false, rec, &r, &out), WORKER_DEAD);
    worker_result_clear(&out);
    cJSON_Delete(rec);

    rec = cJSON_Parse("{\"Id\":\"9007199254740993\",\"ContactId\":\"9007199254740995\","
                      "\"CreateDate\":\"2026-01-02T10:00:00Z\",\"Tags\":[{\"TagId\":40049715}]}");
    int64_t created = 1767348000000LL; /* 2026-01-02T10:00:00Z */
    assert_int_equal(ticket_filter(&cfg, SINCE_MS, created + 60 * 60000, false, rec, &r, &out),
                     WORKER_DELIVERED);
    assert_true(r.id == 9007199254740993LL && r.contact_id == 9007199254740995LL);
    assert_true(r.create_ms == created);
    /* fetched more than 60 minutes after creation: too old, unless replayed or unknown */
    assert_int_equal(ticket_filter(&cfg, SINCE_MS, created + 60 * 60000 + 1, false, rec, &r, &out),
                     WORKER_SKIPPED);
    assert_string_equal(out.reason, "too_old");
    worker_result_clear(&out);
    assert_int_equal(ticket_filter(&cfg, SINCE_MS, created + 600 * 60000, true, rec, &r, &out),
                     WORKER_DELIVERED);
    assert_int_equal(ticket_filter(&cfg, SINCE_MS, -1, false, rec, &r, &out), WORKER_DELIVERED);
    cJSON_Delete(rec);
    config_free(&cfg);

    /* off by default: an old fetch passes */
    cfg = load_cfg(NULL, NULL);
    rec = cJSON_Parse("{\"Id\":3000000000,\"ContactId\":3000000001,"
                      "\"CreateDate\":\"2026-01-02T10:00:00Z\",\"Tags\":[{\"TagId\":40049715}]}");
    assert_int_equal(ticket_filter(&cfg, SINCE_MS, created + 99999 * 60000LL, false, rec, &r, &out),
                     WORKER_DELIVERED);
    assert_true(r.id == 3000000000LL && r.contact_id == 3000000001LL);
    cJSON_Delete(rec);
    config_free(&cfg);
}

/* ---- marker, key ---------------------------------------------------------------------------- */

static void test_marker_and_key(void **state)
{
    (void)state;
    char buf[TICKET_MARKER_SIZE];
    assert_int_equal(ticket_marker("task", 123, buf, sizeof buf), 0);
    assert_string_equal(buf, "[ploomes:task:123]");
    assert_int_equal(ticket_marker("interaction", 3000000000LL, buf, sizeof buf), 0);
    assert_string_equal(buf, "[ploomes:interaction:3000000000]");
    assert_int_equal(ticket_marker("interaction", INT64_MIN, buf, sizeof buf), 0);
    assert_int_equal(ticket_key("task", 9007199254740993LL, buf, sizeof buf), 0);
    assert_string_equal(buf, "ploomes:task:9007199254740993");
    char small[8];
    assert_int_equal(ticket_marker("task", 123, small, sizeof small), -1);

    assert_true(ticket_marker_first_line("[ploomes:task:123]\nTexto", "[ploomes:task:123]"));
    assert_true(ticket_marker_first_line("[ploomes:task:123]", "[ploomes:task:123]"));
    assert_true(ticket_marker_first_line("  [ploomes:task:123] \r\nTexto", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line("[ploomes:task:1234]\nTexto", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line("[ploomes:task:12]\n", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line("Texto\n[ploomes:task:123]", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line("[ploomes:task:123] e mais", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line("[ploomes:interaction:123]", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line("", "[ploomes:task:123]"));
    assert_false(ticket_marker_first_line(NULL, "[ploomes:task:123]"));
}

/* ---- description ----------------------------------------------------------------------------- */

static void test_description_short(void **state)
{
    (void)state;
    bool capped = true;
    char *d =
        ticket_description("[ploomes:task:1]", "Instalar o roteador\nna sala", 10000, &capped);
    assert_string_equal(d, "[ploomes:task:1]\nInstalar o roteador\nna sala");
    assert_false(capped);
    free(d);
    d = ticket_description("[ploomes:task:1]", "", 10000, &capped);
    assert_string_equal(d, "[ploomes:task:1]");
    free(d);
    d = ticket_description("[ploomes:task:1]", NULL, 100, &capped);
    assert_string_equal(d, "[ploomes:task:1]");
    assert_false(capped);
    free(d);
}

/* Every cap from "just the marker" to "all of it", over text made of 1-, 2-, 3- and 4-byte
 * characters: never more than the cap, never a split character, the marker always whole, the
 * ellipsis only when cut. */
static void test_description_cap_multibyte(void **state)
{
    (void)state;
    const char *marker = "[ploomes:interaction:42]"; /* 24 characters */
    const char *text = "a\xC3\xA7\xE2\x82\xAC\xF0\x9F\x98\x80" /* a ç € 😀 */
                       "b\xC3\xA3\xE2\x82\xAC\xF0\x9F\x8E\x89"; /* b ã € 🎉 */
    size_t text_chars = chars(text);
    assert_int_equal(text_chars, 8);
    for (int max = 24; max <= 40; max++) {
        bool capped;
        char *d = ticket_description(marker, text, max, &capped);
        assert_non_null(d);
        assert_true(json_utf8_valid(d, strlen(d)));
        assert_true(strncmp(d, marker, strlen(marker)) == 0);
        size_t n = chars(d);
        if ((size_t)max >= 24 + 1 + text_chars) {
            assert_false(capped);
            assert_int_equal(n, 24 + 1 + text_chars);
        } else {
            assert_true(capped);
            assert_true(n <= (size_t)max);
            if (max >= 26) { /* room for at least the ellipsis: exactly the cap */
                assert_int_equal(n, (size_t)max);
                assert_string_equal(d + strlen(d) - 3, "\xE2\x80\xA6");
            }
        }
        free(d);
    }
}

static void test_description_1mb(void **state)
{
    (void)state;
    size_t len = 1u << 20;
    char *text = malloc(len + 1);
    assert_non_null(text);
    for (size_t i = 0; i + 2 <= len; i += 2) /* "é" = 2 bytes */
        memcpy(text + i, "\xC3\xA9", 2);
    text[len] = '\0';
    bool capped;
    char *d = ticket_description("[ploomes:task:7]", text, 10000, &capped);
    assert_true(capped);
    assert_int_equal(chars(d), 10000);
    assert_true(json_utf8_valid(d, strlen(d)));
    free(d);
    d = ticket_description("[ploomes:task:7]", text, 500000, &capped); /* 524,288 characters */
    assert_true(capped);
    assert_int_equal(chars(d), 500000);
    free(d);
    d = ticket_description("[ploomes:task:7]", text, 1000000, &capped);
    assert_false(capped);
    assert_int_equal(chars(d), 16 + 1 + len / 2);
    free(d);
    free(text);
}

/* ---- subjects -------------------------------------------------------------------------------- */

typedef struct {
    const char *json;
    bool task;
    const char *expected;
} subject_row_t;

static void test_subjects(void **state)
{
    (void)state;
    char long_line[400 * 2 + 1];
    for (int i = 0; i < 400; i++)
        memcpy(long_line + 2 * i, "\xC3\xA7", 2);
    long_line[800] = '\0';
    static const subject_row_t rows[] = {
        {"{\"Title\":\"Instala\xC3\xA7\xC3\xA3o na ACME\"}", true,
         "Instala\xC3\xA7\xC3\xA3o na ACME"},
        {"{\"Title\":\"  Entrega  \\r\\nsegunda linha\"}", true, "Entrega"},
        {"{\"Title\":null}", true, "Tarefa Ploomes 77"},
        {"{\"Title\":42}", true, "Tarefa Ploomes 77"},
        {"{}", true, "Tarefa Ploomes 77"},
        {"{\"Title\":\" \\n \"}", true, "Tarefa Ploomes 77"},
        {"{\"Content\":\"Cliente ligou\\nDetalhes\"}", false, "Cliente ligou"},
        {"{\"Content\":\"\\n\\n  Segunda\\tlinha \\n\"}", false, "Segunda\tlinha"},
        {"{\"Content\":\"\"}", false, "Intera\xC3\xA7\xC3\xA3o Ploomes 77"},
        {"{\"Content\":[1]}", false, "Intera\xC3\xA7\xC3\xA3o Ploomes 77"},
    };
    char out[2048];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cJSON *rec = cJSON_Parse(rows[i].json);
        assert_non_null(rec);
        (rows[i].task ? ticket_task_subject : ticket_interaction_subject)(rec, 77, out, sizeof out);
        if (strcmp(out, rows[i].expected) != 0)
            fail_msg("row %zu: '%s', expected '%s'", i, out, rows[i].expected);
        cJSON_Delete(rec);
    }
    /* 400 two-byte characters: interactions cut at 120, titles at 255, never split */
    cJSON *rec = cJSON_CreateObject();
    cJSON_AddStringToObject(rec, "Content", long_line);
    cJSON_AddStringToObject(rec, "Title", long_line);
    ticket_interaction_subject(rec, 1, out, sizeof out);
    assert_int_equal(chars(out), TICKET_SUBJECT_MAX_CHARS);
    assert_int_equal(strlen(out), 2 * TICKET_SUBJECT_MAX_CHARS);
    ticket_task_subject(rec, 1, out, sizeof out);
    assert_int_equal(chars(out), TICKET_TITLE_MAX_CHARS);
    char tiny[8]; /* a buffer smaller than the line: cut at a character boundary */
    ticket_task_subject(rec, 1, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 6);
    assert_true(json_utf8_valid(tiny, strlen(tiny)));
    cJSON_Delete(rec);
    ticket_first_line(NULL, 10, out, sizeof out);
    assert_string_equal(out, "");
}

/* ---- body ------------------------------------------------------------------------------------ */

static void test_body_fields(void **state)
{
    (void)state;
    config_t cfg = load_cfg(NULL, NULL);
    ticket_body_t b = {.token = "KEN7B5",
                       .subject = "Instala\xC3\xA7\xC3\xA3o \xF0\x9F\x9A\x80",
                       .description = "[ploomes:task:1]\nlinha \"aspas\" \\ barra",
                       .category = "Instala\xC3\xA7\xC3\xA3o",
                       .contato = "Jos\xC3\xA9",
                       .email = "",
                       .telefone = NULL};
    char *text = ticket_body_json(&cfg, &b);
    assert_non_null(text);
    cJSON *o = cJSON_Parse(text);
    assert_non_null(o);
    assert_int_equal(cJSON_GetArraySize(o), 5); /* empty and NULL fields, empty config: absent */
    assert_string_equal(cJSON_GetObjectItem(o, "cliente_id")->valuestring, "KEN7B5");
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_assunto")->valuestring, b.subject);
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_descricao")->valuestring, b.description);
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_categoria_primaria")->valuestring,
                        b.category);
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_contato")->valuestring, b.contato);
    assert_null(cJSON_GetObjectItem(o, "chamado_email"));
    assert_null(cJSON_GetObjectItem(o, "chamado_mesa"));
    /* UTF-8 is sent as is, not as \u escapes (Milvus stores what it gets) */
    assert_non_null(strstr(text, "\xF0\x9F\x9A\x80"));
    cJSON_Delete(o);
    free(text);
    config_free(&cfg);

    cfg = load_cfg("TICKET_MESA=Mesa padr\xC3\xA3o", "TICKET_TECNICO=tec@empresa.com.br");
    b.email = "jose@acme.com.br";
    b.telefone = "(11) 99999-0000";
    text = ticket_body_json(&cfg, &b);
    o = cJSON_Parse(text);
    assert_int_equal(cJSON_GetArraySize(o), 9);
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_mesa")->valuestring, "Mesa padr\xC3\xA3o");
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_tecnico")->valuestring,
                        "tec@empresa.com.br");
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_email")->valuestring, b.email);
    assert_string_equal(cJSON_GetObjectItem(o, "chamado_telefone")->valuestring, b.telefone);
    assert_null(cJSON_GetObjectItem(o, "chamado_setor"));
    cJSON_Delete(o);
    free(text);
    config_free(&cfg);
}

/* ---- Milvus times ---------------------------------------------------------------------------- */

static void test_milvus_time(void **state)
{
    (void)state;
    char buf[32];
    ticket_milvus_time(1767348000000LL, buf, sizeof buf); /* 2026-01-02T10:00:00Z */
    assert_string_equal(buf, "2026-01-02 07:00:00");
    int64_t ms;
    assert_int_equal(ticket_parse_milvus_time("2026-01-02 07:00:00", &ms), 0);
    assert_true(ms == 1767348000000LL);
    assert_int_equal(ticket_parse_milvus_time("2026-01-02T10:00:00Z", &ms), 0);
    assert_true(ms == 1767348000000LL);
    assert_int_equal(ticket_parse_milvus_time("02/01/2026", &ms), -1);
    assert_int_equal(ticket_parse_milvus_time("2026-13-02 07:00:00", &ms), -1);
    assert_int_equal(ticket_parse_milvus_time(NULL, &ms), -1);
}

/* ---- the search's page scan ----------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *page;
    const char *first_before; /* first codigo of the previous page */
    ticket_scan_t expected;
    const char *codigo;       /* FOUND */
} scan_row_t;

static void test_scan_page(void **state)
{
    (void)state;
    /* window from 2026-01-02 07:00:00 Brasília (10:00Z); pages of 3 */
    static const scan_row_t rows[] = {
        {"marker on row 2",
         "{\"lista\":[{\"codigo\":9,\"descricao\":\"[ploomes:task:1]\",\"data_criacao\":"
         "\"2026-01-03 08:00:00\"},{\"codigo\":8,\"descricao\":\"[ploomes:task:12]\\nTexto\","
         "\"data_criacao\":\"2026-01-03 07:00:00\"},{\"codigo\":7}]}",
         "", TICKET_SCAN_FOUND, "8"},
        {"marker on the second line only",
         "{\"lista\":[{\"codigo\":9,\"descricao\":\"Texto\\n[ploomes:task:12]\"}]}", "",
         TICKET_SCAN_END, NULL},
        {"a row older than the window ends the scan before the marker",
         "{\"lista\":[{\"codigo\":9,\"data_criacao\":\"2026-01-02 06:59:59\"},"
         "{\"codigo\":8,\"descricao\":\"[ploomes:task:12]\"},{\"codigo\":7}]}",
         "", TICKET_SCAN_END, NULL},
        {"a row at the window's start does not",
         "{\"lista\":[{\"codigo\":9,\"data_criacao\":\"2026-01-02 07:00:00\"},"
         "{\"codigo\":8,\"descricao\":\"[ploomes:task:12]\"},{\"codigo\":7}]}",
         "", TICKET_SCAN_FOUND, "8"},
        {"full page without the marker",
         "{\"lista\":[{\"codigo\":9},{\"codigo\":8,\"descricao\":null},{\"codigo\":7,"
         "\"data_criacao\":\"ontem\"}]}",
         "", TICKET_SCAN_MORE, NULL},
        {"the same page again", "{\"lista\":[{\"codigo\":9},{\"codigo\":8},{\"codigo\":7}]}",
         "9", TICKET_SCAN_END, NULL},
        {"empty page", "{\"lista\":[]}", "9", TICKET_SCAN_END, NULL},
        {"no lista", "{\"message\":\"erro\"}", "", TICKET_SCAN_BAD, NULL},
        {"lista not an array", "{\"lista\":{}}", "", TICKET_SCAN_BAD, NULL},
        {"rows of wrong types", "{\"lista\":[1,null,\"x\"]}", "", TICKET_SCAN_MORE, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        cJSON *page = cJSON_Parse(rows[i].page);
        assert_non_null(page);
        char first[32], codigo[32] = "";
        snprintf(first, sizeof first, "%s", rows[i].first_before);
        ticket_scan_t got = ticket_scan_page(page, "[ploomes:task:12]", 1767348000000LL, 3, first,
                                             sizeof first, codigo, sizeof codigo);
        if (got != rows[i].expected)
            fail_msg("row '%s': %d, expected %d", rows[i].name, (int)got, (int)rows[i].expected);
        if (rows[i].codigo)
            assert_string_equal(codigo, rows[i].codigo);
        cJSON_Delete(page);
    }
}

/* ---- the handlers' entry points -------------------------------------------------------------- */

/* Records that end in the filter: no store, no API needed (both NULL here). */
static void test_handlers_without_io(void **state)
{
    (void)state;
    config_t cfg = load_cfg("TICKETS_SINCE=2026-01-01T00:00:00Z", NULL);
    worker_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = &cfg;
    ctx.worker_name = "tasks-to-milvus";
    ctx.fetched_at_ms = -1;
    const worker_handler_t *handlers[] = {&TASKS_TO_MILVUS, &INTERACTIONS_TO_MILVUS};
    for (size_t h = 0; h < 2; h++) {
        const worker_handler_t *wh = handlers[h];
        void *st = NULL;
        char err[256];
        assert_int_equal(wh->init(&ctx, &st, err, sizeof err), 0);
        assert_true(ticket_state_since_ms(st) == SINCE_MS);
        static const struct {
            const char *json;
            worker_outcome_t outcome;
            const char *what;
        } rows[] = {
            {"{\"Id\":1,\"ContactId\":2,\"CreateDate\":\"2026-02-01T00:00:00Z\"}", WORKER_SKIPPED,
             "no_tag"},
            {"{\"Id\":1,\"CreateDate\":\"2026-02-01T00:00:00Z\",\"Tags\":[{\"TagId\":40049716}]}",
             WORKER_SKIPPED, "no_contact"},
            {"{\"Id\":1,\"ContactId\":2,\"CreateDate\":\"2025-02-01T00:00:00Z\","
             "\"Tags\":[{\"TagId\":40049716}]}",
             WORKER_SKIPPED, "before_cutoff"},
            {"{\"Id\":null,\"ContactId\":2}", WORKER_DEAD, "InvalidRecord"},
            {"{\"Title\":\"\xC3\xA7\",\"Description\":{\"a\":[]},\"Id\":[]}", WORKER_DEAD,
             "InvalidRecord"},
        };
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            cJSON *rec = cJSON_Parse(rows[i].json);
            worker_result_t out;
            memset(&out, 0, sizeof out);
            wh->handle(&ctx, st, rec, &out);
            if (out.outcome != rows[i].outcome)
                fail_msg("%s row %zu: %s", wh->name, i, worker_outcome_name(out.outcome));
            assert_string_equal(rows[i].outcome == WORKER_DEAD ? out.error_class : out.reason,
                                rows[i].what);
            worker_result_clear(&out);
            cJSON_Delete(rec);
        }
        wh->fini(st);
    }
    assert_string_equal(TASKS_TO_MILVUS.topic, "ploomes.tasks");
    assert_string_equal(INTERACTIONS_TO_MILVUS.topic, "ploomes.interactions");
    config_free(&cfg);
}

/* Invalid JSON and non-objects never reach the handler: the runtime dead-letters them. */
static void test_invalid_json_by_runtime(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        const char *error_class;
    } rows[] = {
        {"{\"Id\":1,", "InvalidJson"},
        {"[1,2]", "NotAnObject"},
        {"\"texto\"", "NotAnObject"},
        {"{\"Id\":1,\"Title\":\"\xC3\x28\"}", "InvalidUtf8"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        kafka_record_t rec;
        memset(&rec, 0, sizeof rec);
        rec.topic = "ploomes.tasks";
        rec.value = rows[i].value;
        rec.value_len = strlen(rows[i].value);
        cJSON *v = NULL;
        worker_result_t out;
        memset(&out, 0, sizeof out);
        assert_int_equal(worker_parse_value(&rec, 1u << 20, &v, &out), WORKER_DEAD);
        assert_null(v);
        assert_string_equal(out.error_class, rows[i].error_class);
        worker_result_clear(&out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_table),
        cmocka_unit_test(test_filter_ids_and_max_age),
        cmocka_unit_test(test_marker_and_key),
        cmocka_unit_test(test_description_short),
        cmocka_unit_test(test_description_cap_multibyte),
        cmocka_unit_test(test_description_1mb),
        cmocka_unit_test(test_subjects),
        cmocka_unit_test(test_body_fields),
        cmocka_unit_test(test_milvus_time),
        cmocka_unit_test(test_scan_page),
        cmocka_unit_test(test_handlers_without_io),
        cmocka_unit_test(test_invalid_json_by_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
