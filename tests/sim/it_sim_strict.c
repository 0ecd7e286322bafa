/* Strictness of both simulators (issue 9, SPEC §8 "strict by default"): one test per area, each
 * assertion naming the issue item it checks, and for every lenient behaviour that is a guess
 * of reference/apis.md its /_admin/faults toggle. A wrong client must fail here the way it
 * would fail against the real APIs; the third-party Ploomes client's requests keep working. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "simproc.h"
#include "testenv.h"
#include "testhttp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define KEY "STRICTKEY0123456789ABCDEF"
#define TOKEN "strict-token"
static const char *const P_AUTH[] = {"User-Key: " KEY, NULL};
static const char *const M_AUTH[] = {"Authorization: " TOKEN, NULL};

static simproc *start_sim(const char *binary)
{
    char err[256];
    simproc *p = simproc_start_sim(binary, strcmp(binary, "ploomes-sim") == 0 ? KEY : TOKEN,
                                   "{\"rate_limit_per_min\":0}", err, sizeof err);
    assert_non_null(p);
    return p;
}

static const cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = item(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *first(const cJSON *env)
{
    return cJSON_GetArrayItem(item(env, "value"), 0);
}

/* Status of METHOD path with a JSON body (Content-Type: application/json). */
static long status_of(simproc *p, const char *const *auth, const char *method, const char *path,
                      const char *body)
{
    long st = -1;
    char *text = NULL;
    assert_int_equal(simproc_request(p, method, path, auth, body, &st, &text, NULL), 0);
    free(text);
    return st;
}

static long pst(simproc *p, const char *method, const char *path, const char *body)
{
    return status_of(p, P_AUTH, method, path, body);
}

static long mst(simproc *p, const char *method, const char *path, const char *body)
{
    return status_of(p, M_AUTH, method, path, body);
}

/* Ploomes GET /<path>?<query> with the query values encoded here ("a=b&c=d", raw values). */
static cJSON *pget(simproc *p, const char *set, const char *query, long *st)
{
    char path[4096], enc[2048];
    size_t o = (size_t)snprintf(path, sizeof path, "/%s", set);
    char sep = '?';
    const char *q = query;
    while (q && *q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        assert_non_null(eq);
        char val[1024];
        snprintf(val, sizeof val, "%.*s", (int)(len - (size_t)(eq - q) - 1), eq + 1);
        simproc_urlencode(enc, sizeof enc, val);
        o += (size_t)snprintf(path + o, sizeof path - o, "%c%.*s=%s", sep, (int)(eq - q), q, enc);
        sep = '&';
        q = amp ? amp + 1 : NULL;
    }
    return simproc_request_json(p, "GET", path, P_AUTH, NULL, st);
}

static long pget_status(simproc *p, const char *set, const char *query)
{
    long st;
    cJSON_Delete(pget(p, set, query, &st));
    return st;
}

/* A message of an error body: "value" (Ploomes), "message" (Milvus), "error.message". */
static bool has_error_shape(const char *text, const char *key)
{
    cJSON *j = cJSON_Parse(text);
    bool ok = j && cJSON_IsString(item(j, key));
    cJSON_Delete(j);
    return ok;
}

/* ---- item 1: Content-Type ------------------------------------------------------------------- */

static void test_content_type(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    simproc *m = start_sim("milvus-sim");
    static const char contact[] = "{\"Name\":\"ACME\"}";
    static const char client[] = "{\"cliente_documento\":\"11222333000181\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"ACME\"}}";
    static const struct {
        const char *ct; /* NULL = libcurl's default for a POST */
        long want;
    } cases[] = {
        {NULL, 415},
        {"text/plain", 415},
        {"", 415},
        {"application/jsonx", 415},
        {"application/json; charset=iso-8859-1", 415},
        {"application/json", 200},
        {"application/json; charset=utf-8", 200},
        {"Application/JSON;charset=UTF-8", 200},
    };
    long st;
    char *text = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(simproc_request_raw(p, "POST", "/Contacts", P_AUTH, cases[i].ct, contact,
                                             strlen(contact), &st, &text), 0);
        if (st != cases[i].want)
            fail_msg("ploomes POST with Content-Type [%s]: %ld, want %ld (%s)",
                     cases[i].ct ? cases[i].ct : "(curl default)", st, cases[i].want, text);
        if (st == 415)
            assert_true(has_error_shape(text, "value"));
        free(text);
        /* Milvus: a new document each time it is accepted, so no duplicate gets in the way */
        assert_int_equal(simproc_reset(m), 0);
        assert_int_equal(simproc_faults(m, "{\"rate_limit_per_min\":0}"), 0);
        assert_int_equal(simproc_request_raw(m, "POST", "/api/cliente/criar", M_AUTH, cases[i].ct, client,
                                             strlen(client), &st, &text), 0);
        if (st != cases[i].want)
            fail_msg("milvus criar with Content-Type [%s]: %ld, want %ld (%s)",
                     cases[i].ct ? cases[i].ct : "(curl default)", st, cases[i].want, text);
        if (st == 415)
            assert_true(has_error_shape(text, "message"));
        free(text);
    }
    /* a request without a body needs no Content-Type (listagem takes its query string) */
    assert_int_equal(simproc_request_raw(m, "POST", "/api/chamado/listagem?total_registros=5", M_AUTH, "",
                                         NULL, 0, &st, NULL), 0);
    assert_int_equal(st, 200);
    /* the toggle */
    assert_int_equal(simproc_faults(p, "{\"content_type_check\":false}"), 0);
    assert_int_equal(simproc_request_raw(p, "POST", "/Contacts", P_AUTH, NULL, contact, strlen(contact), &st, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(simproc_stop(p), 0);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- items 2, 3, 6, 22: a fixed, typed Ploomes schema ---------------------------------------- */

static void test_ploomes_fixed_schema(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    /* item 2: a misspelt field is a 400 in a body, and never enters the schema */
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"A\",\"Zipcode\":1310100}"), 400);
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"A\",\"Registro\":\"1\"}"), 400);
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"A\",\"Register\":\"11222333000181\"}"), 200);
    assert_int_equal(pst(p, "PATCH", "/Contacts(100000001)", "{\"Zipcode\":1}"), 400);
    const char *unknown[] = {"$filter=Zipcode eq 1", "$select=Registro", "$orderby=Zipcode",
                             "$expand=Registro", "$filter=Tags/any(t: t/TagID eq 1)",
                             "$filter=City/Bogus eq 1", "$filter=Phones/any(p: p/Number eq '1')",
                             "$expand=Tags($select=Bogus)", "$expand=City($expand=Nope)",
                             "$expand=Tags($filter=TagId eq 1)", NULL};
    for (int i = 0; unknown[i]; i++) {
        long st;
        cJSON *r = pget(p, "Contacts", unknown[i], &st);
        if (st != 400)
            fail_msg("GET /Contacts?%s: %ld, want 400", unknown[i], st);
        assert_non_null(str(r, "value")); /* the API's error shape */
        cJSON_Delete(r);
    }
    /* error_style odata: the other shape */
    assert_int_equal(simproc_faults(p, "{\"error_style\":\"odata\"}"), 0);
    long st;
    cJSON *r = pget(p, "Contacts", "$filter=Zipcode eq 1", &st);
    assert_int_equal(st, 400);
    assert_non_null(str(item(r, "error"), "message"));
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"error_style\":\"value\"}"), 0);
    /* every documented field and navigation property is there, [A] and [G] ones included */
    const char *known[] = {"$expand=State,Contacts,Owner,Country,Company,Type,Status,CollaboratingUsers",
                           "$select=Id,ZipCode,CNPJ,CPF,TasksOrdination,ImportationIdCreate",
                           "$filter=OwnerId eq 1 and StateId eq 2 and City/Name eq 'x'",
                           "$filter=Tags/any(t: t/TagId eq 1 and t/Tag/Name eq 'x')",
                           "$filter=OtherProperties/any(o: o/FieldKey eq 'k' and o/StringValue eq 'x')",
                           "$orderby=ZipCode desc,Name", NULL};
    for (int i = 0; known[i]; i++)
        if ((st = pget_status(p, "Contacts", known[i])) != 200)
            fail_msg("GET /Contacts?%s: %ld, want 200", known[i], st);
    assert_int_equal(pget_status(p, "Tasks", "$expand=Contacts,Users($expand=User),Contact($expand=Owner),Tags"), 200);
    assert_int_equal(pget_status(p, "InteractionRecords", "$expand=Tags,Contact,Creator,OtherProperties"), 200);
    /* MCP's task fields are wrong ([G]): OwnerId, Date, Hour are not task fields */
    assert_int_equal(pget_status(p, "Tasks", "$filter=OwnerId eq 1"), 400);
    /* item 3: typed fields keep their type (no coercion) */
    const char *typed[] = {"{\"Name\":\"A\",\"ZipCode\":\"01310-100\"}", "{\"Name\":\"A\",\"ZipCode\":\"1310100\"}",
                           "{\"Name\":\"A\",\"TypeId\":\"1\"}", "{\"Name\":\"A\",\"Email\":5}",
                           "{\"Name\":\"A\",\"Birthday\":\"garbage\"}", "{\"Name\":\"A\",\"HasConsent\":\"true\"}",
                           "{\"Name\":\"A\",\"Latitude\":\"-23.5\"}", "{\"Name\":\"A\",\"CityId\":3941.5}",
                           "{\"Name\":\"A\",\"Phones\":[{\"PhoneNumber\":\"1\",\"TypeId\":\"1\"}]}",
                           "{\"Name\":\"A\",\"OtherProperties\":[{\"FieldKey\":\"k\",\"IntegerValue\":\"x\"}]}",
                           "{\"Name\":\"A\",\"Tags\":[{\"TagId\":1,\"Bogus\":1}]}", NULL};
    for (int i = 0; typed[i]; i++)
        if ((st = pst(p, "POST", "/Contacts", typed[i])) != 400)
            fail_msg("POST /Contacts %s: %ld, want 400", typed[i], st);
    assert_int_equal(pst(p, "PATCH", "/Contacts(100000001)", "{\"ZipCode\":\"01310-100\"}"), 400);
    r = simproc_request_json(p, "PATCH", "/Contacts(100000001)", P_AUTH, "{\"ZipCode\":1310100,\"Latitude\":-23.5}", &st);
    assert_int_equal(st, 200);
    assert_int_equal(item(first(r), "ZipCode")->valuedouble, 1310100);
    cJSON_Delete(r);
    /* item 22: the seed is typed too; the error names the record and the field */
    char *text = NULL;
    assert_int_equal(simproc_request(p, "POST", "/_admin/seed", NULL,
                                     "{\"Contacts\":[{\"Id\":5,\"Name\":\"ok\"},{\"Id\":6,\"Name\":\"x\",\"LastUpdateDate\":\"garbage\"}]}",
                                     &st, &text, NULL), 0);
    assert_int_equal(st, 400);
    assert_non_null(strstr(text, "Contacts[1]"));
    assert_non_null(strstr(text, "LastUpdateDate"));
    free(text);
    /* a seed keeps an undocumented field (SPEC §8), but the API neither shows nor queries it */
    assert_int_equal(simproc_admin_post(p, "seed", "{\"Contacts\":[{\"Id\":7,\"Name\":\"s\",\"Zipcode\":1}]}"), 200);
    assert_int_equal(pget_status(p, "Contacts", "$filter=Zipcode eq 1"), 400);
    r = simproc_request_json(p, "GET", "/Contacts(7)", P_AUTH, NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(first(r), "Name"), "s");
    assert_null(item(first(r), "Zipcode"));
    cJSON_Delete(r);
    cJSON *state_json = simproc_state(p);
    const cJSON *rec;
    bool kept = false;
    cJSON_ArrayForEach(rec, item(state_json, "Contacts")) kept = kept || item(rec, "Zipcode");
    assert_true(kept);
    cJSON_Delete(state_json);
    assert_int_equal(simproc_admin_post(p, "seed", "{\"Contacts\":[{\"Id\":7,\"Tags\":[{\"TagId\":\"1\"}]}]}"), 400);
    assert_int_equal(simproc_admin_post(p, "seed", "{\"Tags\":[{\"Id\":1,\"Name\":5}]}"), 400);
    /* every later date filter still works */
    assert_int_equal(pget_status(p, "Contacts", "$filter=LastUpdateDate gt 2024-01-01T00:00:00-03:00"), 200);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- item 7 (and 6): nested $expand options, computed navigations inside filters ------------ */

static void test_ploomes_nested_expand(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    assert_int_equal(simproc_seed(p, "{\"Tags\":[{\"Id\":40006184,\"Name\":\"Cliente VIP\",\"EntityId\":1}],"
                                     "\"Users\":[{\"Id\":10003844,\"Name\":\"Vendedor\"}],"
                                     "\"Cities\":[{\"Id\":3941,\"Name\":\"São Paulo\",\"StateId\":25}],"
                                     "\"Contacts\":[{\"Id\":1,\"Name\":\"ACME\",\"CityId\":3941,\"OwnerId\":10003844,"
                                     "\"Tags\":[{\"TagId\":40006184}]},{\"Id\":2,\"Name\":\"Beta\"}],"
                                     "\"Tasks\":[{\"Id\":9,\"Title\":\"t\",\"ContactId\":1,"
                                     "\"Users\":[{\"UserId\":10003844}]}]}"),
                     0);
    long st;
    /* a client reading Tags[].Tag.Name */
    cJSON *r = pget(p, "Contacts", "$filter=Id eq 1&$expand=Tags($select=Tag;$expand=Tag),City($select=Name),Owner($select=Id,Name)", &st);
    assert_int_equal(st, 200);
    const cJSON *c = first(r);
    const cJSON *tagrow = cJSON_GetArrayItem(item(c, "Tags"), 0);
    assert_string_equal(str(item(tagrow, "Tag"), "Name"), "Cliente VIP");
    assert_null(item(tagrow, "TagId")); /* $select=Tag */
    assert_string_equal(str(item(c, "City"), "Name"), "São Paulo");
    assert_int_equal(cJSON_GetArraySize(item(c, "City")), 1);
    assert_string_equal(str(item(c, "Owner"), "Name"), "Vendedor");
    assert_int_equal(cJSON_GetArraySize(item(c, "Owner")), 2);
    cJSON_Delete(r);
    /* without nested options the rows keep their fields and no Tag */
    r = pget(p, "Contacts", "$filter=Id eq 1&$expand=Tags", &st);
    tagrow = cJSON_GetArrayItem(item(first(r), "Tags"), 0);
    assert_int_equal(item(tagrow, "TagId")->valuedouble, 40006184);
    assert_null(item(tagrow, "Tag"));
    cJSON_Delete(r);
    /* two levels: Contact($expand=Owner) on a task; Users($expand=User) */
    r = pget(p, "Tasks", "$expand=Contact($select=Name;$expand=Owner($select=Name)),Users($expand=User)", &st);
    assert_int_equal(st, 200);
    c = first(r);
    assert_string_equal(str(item(c, "Contact"), "Name"), "ACME");
    assert_string_equal(str(item(item(c, "Contact"), "Owner"), "Name"), "Vendedor");
    assert_string_equal(str(item(cJSON_GetArrayItem(item(c, "Users"), 0), "User"), "Name"), "Vendedor");
    cJSON_Delete(r);
    /* computed navigations inside a lambda and a path are evaluated, not just parsed */
    r = pget(p, "Contacts", "$filter=Tags/any(t: t/Tag/Name eq 'Cliente VIP')&$select=Id", &st);
    assert_int_equal(st, 200);
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 1);
    cJSON_Delete(r);
    r = pget(p, "Tasks", "$filter=Contact/Owner/Name eq 'Vendedor'&$select=Id", &st);
    assert_int_equal(st, 200);
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 1);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- items 10, 14, 15, 16, 20 and the Ploomes [G] toggles ------------------------------------ */

static void test_ploomes_toggles(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    long st;
    /* item 10: Title + (ContactId or DealId) + DateTime, toggle task_required */
    assert_int_equal(pst(p, "POST", "/Tasks", "{\"Title\":\"t\"}"), 400);
    assert_int_equal(pst(p, "POST", "/Tasks", "{\"Title\":\"t\",\"ContactId\":1}"), 400);
    assert_int_equal(pst(p, "POST", "/Tasks", "{\"Title\":\"t\",\"DateTime\":\"2026-12-01T10:00:00-03:00\"}"), 400);
    assert_int_equal(pst(p, "POST", "/Tasks", "{\"Title\":\"t\",\"DealId\":5,\"DateTime\":\"2026-12-01T10:00:00-03:00\"}"), 200);
    assert_int_equal(simproc_faults(p, "{\"task_required\":\"title\"}"), 0);
    assert_int_equal(pst(p, "POST", "/Tasks", "{\"Title\":\"t\"}"), 200);
    assert_int_equal(pst(p, "POST", "/Tasks", "{\"Description\":\"no title\"}"), 400);
    /* item 14: $inlinecount answered by default, refused with the toggle */
    cJSON *r = pget(p, "Tasks", "$inlinecount=allpages&$top=1", &st);
    assert_int_equal(st, 200);
    assert_int_equal(item(r, "@odata.count")->valuedouble, 2);
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"inlinecount\":false}"), 0);
    assert_int_equal(pget_status(p, "Tasks", "$inlinecount=allpages"), 400);
    assert_int_equal(pget_status(p, "Tasks", "$count=true"), 200);
    /* item 15: header values are trimmed */
    const char *const spaced[] = {"User-Key:   " KEY "  ", NULL};
    assert_int_equal(status_of(p, spaced, "GET", "/Account", NULL), 200);
    const char *const wrong[] = {"User-Key: " KEY "X", NULL};
    assert_int_equal(status_of(p, wrong, "GET", "/Account", NULL), 401);
    /* item 16: the 413 body follows error_style */
    size_t big = 4u * 1024u * 1024u + 10u;
    char *body = malloc(big + 1);
    assert_non_null(body);
    memset(body, ' ', big);
    body[big] = '\0';
    char *text = NULL;
    assert_int_equal(simproc_faults(p, "{\"error_style\":\"odata\"}"), 0);
    assert_int_equal(simproc_request(p, "POST", "/Contacts", P_AUTH, body, &st, &text, NULL), 0);
    assert_int_equal(st, 413);
    r = cJSON_Parse(text);
    assert_non_null(str(item(r, "error"), "message"));
    cJSON_Delete(r);
    free(text);
    assert_int_equal(simproc_faults(p, "{\"error_style\":\"value\"}"), 0);
    assert_int_equal(simproc_request(p, "POST", "/Contacts", P_AUTH, body, &st, &text, NULL), 0);
    assert_int_equal(st, 413);
    assert_true(has_error_shape(text, "value"));
    free(text);
    free(body);
    /* item 20: eq and contains() agree on case; string_compare toggles both */
    assert_int_equal(simproc_seed(p, "{\"Contacts\":[{\"Id\":1,\"Name\":\"ACME Ltda\"}]}"), 0);
    const char *filters[] = {"$filter=Name eq 'acme ltda'", "$filter=contains(Name,'acme')",
                             "$filter=startswith(Name,'acme')", "$filter=endswith(Name,'LTDA')"};
    for (int mode = 0; mode < 2; mode++) {
        assert_int_equal(simproc_faults(p, mode ? "{\"string_compare\":\"insensitive\"}"
                                                : "{\"string_compare\":\"sensitive\"}"), 0);
        for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
            r = pget(p, "Contacts", filters[i], &st);
            assert_int_equal(st, 200);
            if (cJSON_GetArraySize(item(r, "value")) != mode)
                fail_msg("%s with string_compare %s: %d rows", filters[i], mode ? "insensitive" : "sensitive",
                         cJSON_GetArraySize(item(r, "value")));
            cJSON_Delete(r);
        }
    }
    /* [G] POST status (200 by default), GET /Set(<id>) shape, CNPJ/CPF derivation, large ids */
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"A\"}"), 200);
    assert_int_equal(simproc_faults(p, "{\"create_status\":201}"), 0);
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"B\"}"), 201);
    r = simproc_request_json(p, "GET", "/Contacts(1)", P_AUTH, NULL, &st);
    assert_string_equal(str(first(r), "Name"), "ACME Ltda");
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"key_get\":\"object\"}"), 0);
    r = simproc_request_json(p, "GET", "/Contacts(1)", P_AUTH, NULL, &st);
    assert_string_equal(str(r, "Name"), "ACME Ltda");
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"key_get\":\"404\"}"), 0);
    assert_int_equal(pst(p, "GET", "/Contacts(1)", NULL), 404);
    assert_int_equal(simproc_faults(p, "{\"derive_documents\":false,\"large_ids\":true}"), 0);
    r = simproc_request_json(p, "POST", "/Contacts", P_AUTH, "{\"Name\":\"C\",\"TypeId\":1,\"Register\":\"11222333000181\"}", &st);
    assert_true(cJSON_IsNull(item(first(r), "CNPJ")));
    assert_true(item(first(r), "Id")->valuedouble > 2147483647.0);
    cJSON_Delete(r);
    /* bad toggle values change nothing */
    const char *bad[] = {"{\"task_required\":\"x\"}", "{\"string_compare\":true}", "{\"create_status\":202}",
                         "{\"key_get\":\"bare\"}", "{\"readonly_fields\":1}", "{\"inlinecount\":\"no\"}", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(simproc_admin_post(p, "faults", bad[i]), 400);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- item 12: UTF-8 and NUL in bodies (both) --------------------------------------------------- */

static void test_utf8(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    simproc *m = start_sim("milvus-sim");
    static const char *const bad[] = {
        "{\"Name\":\"a\xff" "b\"}",              /* not UTF-8 */
        "{\"Name\":\"\xc3(\"}",                  /* truncated sequence */
        "{\"Name\":\"\xc0\xaf\"}",               /* overlong */
        "{\"Name\":\"\xed\xa0\x80\"}",           /* surrogate */
        "{\"Name\":\"a\\u0000b\"}",              /* NUL escaped */
    };
    long st;
    char *text = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(simproc_request_raw(p, "POST", "/Contacts", P_AUTH, "application/json", bad[i],
                                             strlen(bad[i]), &st, &text), 0);
        if (st != 400)
            fail_msg("ploomes body %zu: %ld, want 400", i, st);
        assert_true(has_error_shape(text, "value"));
        free(text);
    }
    /* a raw NUL inside the body */
    static const char nul[] = "{\"Name\":\"a\0b\"}";
    assert_int_equal(simproc_request_raw(p, "POST", "/Contacts", P_AUTH, "application/json", nul,
                                         sizeof nul - 1, &st, NULL), 0);
    assert_int_equal(st, 400);
    /* an escaped backslash before u0000 is text, and accented letters are fine */
    cJSON *r = simproc_request_json(p, "POST", "/Contacts", P_AUTH, "{\"Name\":\"S\xc3\xa3o \\\\u0000 \xf0\x9f\x98\x80\"}", &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(first(r), "Name"), "S\xc3\xa3o \\u0000 \xf0\x9f\x98\x80");
    cJSON_Delete(r);
    cJSON *s = simproc_state(p);
    assert_int_equal(cJSON_GetArraySize(item(s, "Contacts")), 1);
    cJSON_Delete(s);
    assert_int_equal(simproc_seed(m, "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"cnpj_cpf\":\"11222333000181\"}]}"), 0);
    static const char mbad[] = "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"a\\u0000b\"}";
    assert_int_equal(simproc_request_raw(m, "POST", "/api/chamado/criar", M_AUTH, "application/json", mbad,
                                         strlen(mbad), &st, &text), 0);
    assert_int_equal(st, 400);
    assert_true(has_error_shape(text, "message"));
    free(text);
    static const char mbad2[] = "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"\xfe\"}";
    assert_int_equal(simproc_request_raw(m, "POST", "/api/chamado/criar", M_AUTH, "application/json", mbad2,
                                         strlen(mbad2), &st, NULL), 0);
    assert_int_equal(st, 400);
    assert_int_equal(simproc_stop(p), 0);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- item 24: the ambiguous create ---------------------------------------------------------- */

static int count_of(simproc *p, const char *key)
{
    cJSON *s = simproc_state(p);
    int n = cJSON_GetArraySize(item(s, key));
    cJSON_Delete(s);
    return n;
}

static void test_fail_after_write(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    simproc *m = start_sim("milvus-sim");
    long st;
    char *text = NULL;
    /* stored, then answered with the failure */
    assert_int_equal(simproc_faults(p, "{\"fail_after_write_rate\":1,\"fail_after_write_status\":502}"), 0);
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"A\"}"), 502);
    assert_int_equal(count_of(p, "Contacts"), 1);
    assert_int_equal(pst(p, "POST", "/InteractionRecords", "{\"ContactId\":100000001,\"Content\":\"c\"}"), 502);
    assert_int_equal(count_of(p, "InteractionRecords"), 1);
    /* a rejected create stores nothing and answers its own 400 */
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"TypeId\":1}"), 400);
    assert_int_equal(count_of(p, "Contacts"), 1);
    /* "drop": the connection closes without an answer */
    assert_int_equal(simproc_faults(p, "{\"fail_after_write_status\":\"drop\"}"), 0);
    assert_int_equal(simproc_request(p, "POST", "/Tasks", P_AUTH,
                                     "{\"Title\":\"t\",\"ContactId\":1,\"DateTime\":\"2026-12-01T10:00:00-03:00\"}",
                                     &st, NULL, NULL), -1);
    assert_int_equal(count_of(p, "Tasks"), 1);
    cJSON *f = simproc_request_json(p, "GET", "/_admin/faults", NULL, NULL, &st);
    assert_string_equal(str(f, "fail_after_write_status"), "drop");
    cJSON_Delete(f);
    /* reads and updates are not creates */
    assert_int_equal(pst(p, "GET", "/Contacts", NULL), 200);
    assert_int_equal(pst(p, "PATCH", "/Contacts(100000001)", "{\"Note\":\"n\"}"), 200);
    assert_int_equal(simproc_faults(p, "{\"fail_after_write_rate\":0}"), 0);
    assert_int_equal(pst(p, "POST", "/Contacts", "{\"Name\":\"B\"}"), 200);
    /* a rate between 0 and 1: some creates fail, every one is stored */
    assert_int_equal(simproc_faults(p, "{\"fail_after_write_rate\":0.5,\"fail_after_write_status\":500,\"seed\":9}"), 0);
    int failed = 0;
    for (int i = 0; i < 20; i++)
        failed += pst(p, "POST", "/Contacts", "{\"Name\":\"C\"}") == 500;
    assert_true(failed > 0 && failed < 20);
    assert_int_equal(count_of(p, "Contacts"), 22);

    /* Milvus: cliente/criar inserts, then fails (its documented risk); the retry is a duplicate */
    static const char client[] = "{\"cliente_documento\":\"11222333000181\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"ACME\"}}";
    assert_int_equal(simproc_faults(m, "{\"fail_after_write_rate\":1,\"fail_after_write_status\":504}"), 0);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", client), 504);
    assert_int_equal(count_of(m, "clientes"), 1);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", client), 409);
    assert_int_equal(simproc_faults(m, "{\"fail_after_write_status\":\"drop\"}"), 0);
    cJSON *s = simproc_state(m);
    char body[160];
    snprintf(body, sizeof body, "{\"cliente_id\":\"%s\",\"chamado_assunto\":\"a\"}",
             str(cJSON_GetArrayItem(item(s, "clientes"), 0), "token"));
    cJSON_Delete(s);
    assert_int_equal(simproc_request(m, "POST", "/api/chamado/criar", M_AUTH, body, &st, NULL, NULL), -1);
    assert_int_equal(count_of(m, "chamados"), 1);
    assert_int_equal(simproc_faults(m, "{\"fail_after_write_rate\":0}"), 0);
    assert_int_equal(simproc_request(m, "POST", "/api/chamado/criar", M_AUTH, body, &st, &text, NULL), 0);
    assert_int_equal(st, 200);
    free(text);
    const char *bad[] = {"{\"fail_after_write_rate\":2}", "{\"fail_after_write_status\":503}",
                         "{\"fail_after_write_status\":\"close\"}", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(simproc_admin_post(m, "faults", bad[i]), 400);
    assert_int_equal(simproc_stop(p), 0);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- the third-party client (filterfeed/ploomes-api-client) -------------------------------------- */

/* Its requests as python-requests sends them: User-Key and Content-Type: application/json on
 * every request, the query urlencoded ('$' as %24, spaces as '+'), webhooks=false appended,
 * $inlinecount offered, @odata.nextLink followed verbatim. */
static const char *const PY_HEADERS[] = {"User-Agent: python-requests/2.31.0", "Accept-Encoding: gzip, deflate",
                                         "Accept: */*", "Connection: keep-alive", "User-Key: " KEY,
                                         "Content-Type: application/json", NULL};

static void test_third_party_client(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    size_t cap = 650 * 96 + 64;
    char *seed = malloc(cap);
    assert_non_null(seed);
    size_t o = (size_t)snprintf(seed, cap, "{\"Contacts\":[");
    for (int i = 0; i < 650; i++)
        o += (size_t)snprintf(seed + o, cap - o, "%s{\"Id\":%d,\"Name\":\"Contato %d\",\"TypeId\":1}", i ? "," : "", i + 1, i);
    snprintf(seed + o, cap - o, "]}");
    assert_int_equal(simproc_seed(p, seed), 0);
    free(seed);
    char path[2048];
    snprintf(path, sizeof path, "/Contacts?%%24inlinecount=allpages&%%24orderby=Id&webhooks=false");
    int total = 0, pages = 0;
    long st;
    while (path[0] && pages < 10) {
        char *text = NULL;
        assert_int_equal(simproc_request_raw(p, "GET", path, PY_HEADERS, NULL, NULL, 0, &st, &text), 0);
        assert_int_equal(st, 200);
        cJSON *r = cJSON_Parse(text);
        free(text);
        assert_non_null(str(r, "@odata.context"));
        assert_int_equal(item(r, "@odata.count")->valuedouble, 650);
        total += cJSON_GetArraySize(item(r, "value"));
        pages++;
        const char *next = str(r, "@odata.nextLink");
        path[0] = '\0';
        if (next) {
            const char *base = simproc_base_url(p);
            assert_int_equal(strncmp(next, base, strlen(base)), 0);
            assert_non_null(strstr(next, "webhooks=false"));
            snprintf(path, sizeof path, "%s", next + strlen(base));
        }
        cJSON_Delete(r);
    }
    assert_int_equal(total, 650);
    assert_int_equal(pages, 3);
    /* POST and PATCH contacts (json.dumps bodies) */
    static const char post[] = "{\"Name\": \"Nova Empresa\", \"TypeId\": 1, \"Register\": \"11222333000181\", \"Email\": \"a@b.com\"}";
    char *text = NULL;
    assert_int_equal(simproc_request_raw(p, "POST", "/Contacts?webhooks=false", PY_HEADERS, NULL, post, strlen(post), &st, &text), 0);
    assert_int_equal(st, 200);
    cJSON *r = cJSON_Parse(text);
    free(text);
    assert_non_null(str(r, "@odata.context"));
    snprintf(path, sizeof path, "/Contacts(%.0f)?webhooks=false", item(first(r), "Id")->valuedouble);
    cJSON_Delete(r);
    static const char patch[] = "{\"Email\": \"novo@b.com\"}";
    assert_int_equal(simproc_request_raw(p, "PATCH", path, PY_HEADERS, NULL, patch, strlen(patch), &st, &text), 0);
    assert_int_equal(st, 200);
    r = cJSON_Parse(text);
    free(text);
    assert_non_null(str(r, "@odata.context"));
    assert_string_equal(str(first(r), "Email"), "novo@b.com");
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- Milvus: items 4, 9, 18, 19, 25 ------------------------------------------------------------ */

static int busca_count(simproc *m, const char *query)
{
    char path[256];
    long st;
    snprintf(path, sizeof path, "/api/cliente/busca%s", query);
    cJSON *r = simproc_request_json(m, "GET", path, M_AUTH, NULL, &st);
    assert_int_equal(st, 200);
    int n = cJSON_GetArraySize(item(r, "lista"));
    cJSON_Delete(r);
    return n;
}

static void test_milvus_clients_strict(void **state)
{
    (void)state;
    simproc *m = start_sim("milvus-sim");
    static const char pj_num[] = "{\"cliente_documento\":191,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Zero\"}}";
    static const char pj_str[] = "{\"cliente_documento\":\"00000000000191\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Zero\"}}";
    /* item 4: exact by default (a client that stores numbers gets a second client and finds
     * neither form), normalized with the toggle, and the duplicate check follows */
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", pj_num), 200);
    assert_int_equal(busca_count(m, "?documento=00000000000191"), 0);
    assert_int_equal(busca_count(m, "?documento=00.000.000%2F0001-91"), 0);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", pj_str), 200);
    assert_int_equal(busca_count(m, "?documento=00000000000191"), 1);
    assert_int_equal(simproc_reset(m), 0);
    assert_int_equal(simproc_faults(m, "{\"rate_limit_per_min\":0,\"document_match\":\"normalized\"}"), 0);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", pj_num), 200);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", pj_str), 409);
    assert_int_equal(busca_count(m, "?documento=00.000.000%2F0001-91"), 1);
    /* item 9: duplicate silently accepted */
    assert_int_equal(simproc_faults(m, "{\"duplicate_status\":200}"), 0);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", pj_str), 200);
    assert_int_equal(count_of(m, "clientes"), 2);
    assert_int_equal(simproc_admin_post(m, "faults", "{\"duplicate_status\":302}"), 400);
    /* item 18: lowercase CNPJ letters uppercased (default), or refused */
    assert_int_equal(simproc_reset(m), 0);
    assert_int_equal(simproc_faults(m, "{\"rate_limit_per_min\":0}"), 0);
    static const char lower[] = "{\"cliente_documento\":\"12abc34501de35\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Alfa\"}}";
    assert_int_equal(simproc_faults(m, "{\"uppercase_documents\":false}"), 0);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", lower), 400);
    assert_int_equal(simproc_faults(m, "{\"uppercase_documents\":true}"), 0);
    assert_int_equal(mst(m, "POST", "/api/cliente/criar", lower), 200);
    assert_int_equal(busca_count(m, "?documento=12ABC34501DE35"), 1);
    assert_int_equal(busca_count(m, "?documento=12abc34501de35"), 0);
    /* item 19: the documented row fields, for created and seeded clients */
    assert_int_equal(simproc_seed(m, "{\"clientes\":[{\"id\":5,\"nome_fantasia\":\"S\",\"cnpj_cpf\":\"52998224725\"}]}"), 0);
    long st;
    cJSON *r = simproc_request_json(m, "GET", "/api/cliente/busca", M_AUTH, NULL, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 2);
    const cJSON *row;
    cJSON_ArrayForEach(row, item(r, "lista"))
    {
        const char *fields[] = {"bc_cliente_id", "tipo_tempo_sla_id", "pais_id", "cliente_matriz_id",
                                "tipo_moeda", "id", "razao_social", "nome_fantasia", "cnpj_cpf", "token",
                                "is_ativo", NULL};
        for (int i = 0; fields[i]; i++)
            if (!item(row, fields[i]))
                fail_msg("busca row lacks %s", fields[i]);
    }
    cJSON_Delete(r);
    /* item 25: bad token answered 401 (default) or 403 */
    const char *const bad[] = {"Authorization: nope", NULL};
    assert_int_equal(status_of(m, bad, "GET", "/api/cliente/busca", NULL), 401);
    assert_int_equal(simproc_faults(m, "{\"bad_token_status\":403}"), 0);
    char *text = NULL;
    assert_int_equal(simproc_request(m, "GET", "/api/cliente/busca", bad, NULL, &st, &text, NULL), 0);
    assert_int_equal(st, 403);
    assert_true(has_error_shape(text, "message"));
    free(text);
    assert_int_equal(simproc_admin_post(m, "faults", "{\"bad_token_status\":404}"), 400);
    /* item 15 for Milvus: a trailing space after the token */
    const char *const spaced[] = {"Authorization: " TOKEN " ", NULL};
    assert_int_equal(status_of(m, spaced, "GET", "/api/cliente/busca", NULL), 200);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- Milvus: item 8 (busca_paging) ----------------------------------------------------------------- */

static void test_milvus_busca_paging(void **state)
{
    (void)state;
    simproc *m = start_sim("milvus-sim");
    char seed[4096];
    size_t o = (size_t)snprintf(seed, sizeof seed, "{\"clientes\":[");
    for (int i = 0; i < 30; i++)
        o += (size_t)snprintf(seed + o, sizeof seed - o, "%s{\"id\":%d,\"nome_fantasia\":\"C%d\",\"cnpj_cpf\":\"%d\"}",
                              i ? "," : "", i + 1, i, 1000 + i);
    snprintf(seed + o, sizeof seed - o, "]}");
    assert_int_equal(simproc_seed(m, seed), 0);
    long st;
    cJSON *r = simproc_request_json(m, "GET", "/api/cliente/busca?pagina=2&total_registros=10", M_AUTH, NULL, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 10);
    assert_int_equal(item(cJSON_GetArrayItem(item(r, "lista"), 0), "id")->valuedouble, 11);
    assert_non_null(item(item(r, "meta"), "paginate"));
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(m, "{\"busca_paging\":\"off\"}"), 0);
    r = simproc_request_json(m, "GET", "/api/cliente/busca?pagina=2&total_registros=10", M_AUTH, NULL, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 30); /* always the first (only) page */
    assert_int_equal(item(cJSON_GetArrayItem(item(r, "lista"), 0), "id")->valuedouble, 1);
    assert_null(item(r, "meta"));
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(m, "{\"busca_paging\":\"on\"}"), 0);
    assert_int_equal(busca_count(m, "?pagina=3&total_registros=10"), 10);
    assert_int_equal(simproc_admin_post(m, "faults", "{\"busca_paging\":\"maybe\"}"), 400);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- Milvus tickets: items 5, 11, 13, 17, 23, 22 ------------------------------------------------- */

static cJSON *listagem(simproc *m, const char *query, const char *body, long *st)
{
    char path[256];
    snprintf(path, sizeof path, "/api/chamado/listagem%s", query);
    return simproc_request_json(m, "POST", path, M_AUTH, body, st);
}

static int listagem_count(simproc *m, const char *body)
{
    long st;
    cJSON *r = listagem(m, "?total_registros=1000", body, &st);
    if (st != 200)
        fail_msg("listagem %s: %ld", body ? body : "(no body)", st);
    int n = cJSON_GetArraySize(item(r, "lista"));
    cJSON_Delete(r);
    return n;
}

static void test_milvus_tickets_strict(void **state)
{
    (void)state;
    simproc *m = start_sim("milvus-sim");
    assert_int_equal(simproc_seed(m, "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"nome_fantasia\":\"A\",\"cnpj_cpf\":\"11222333000181\"},"
                                     "{\"id\":2,\"token\":\"BBB222\",\"nome_fantasia\":\"B\",\"cnpj_cpf\":\"52998224725\"}],"
                                     "\"chamados\":[{\"id\":1,\"codigo\":11,\"assunto\":\"Backup falhou\",\"cliente_token\":\"AAA111\","
                                     "\"status\":\"Finalizado\",\"data_criacao\":\"2026-01-10 09:00:00\",\"data_solucao\":\"2026-01-11 10:00:00\"},"
                                     "{\"id\":2,\"codigo\":12,\"assunto\":\"Impressora\",\"cliente_token\":\"BBB222\","
                                     "\"status\":\"AgAtendimento\",\"data_criacao\":\"2026-02-10 09:00:00\"},"
                                     "{\"id\":3,\"codigo\":13,\"assunto\":\"Backup lento\",\"cliente_token\":\"AAA111\","
                                     "\"status\":\"Atendendo\",\"data_criacao\":\"2026-03-10 09:00:00\"}]}"),
                     0);
    /* item 23: open tickets by default; status 10 (Todos) for every one; the toggle */
    assert_int_equal(listagem_count(m, NULL), 2);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{}}"), 2);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"status\":10}}"), 3);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"status\":\"Finalizado\"}}"), 1);
    assert_int_equal(simproc_faults(m, "{\"listagem_default_status\":10}"), 0);
    assert_int_equal(listagem_count(m, NULL), 3);
    /* item 11: the documented filters */
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"assunto\":\"backup\"}}"), 2);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"cliente_id\":2}}"), 1);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"cliente_id\":\"AAA111\"}}"), 2);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"data_hora_criacao_inicial\":\"2026-02-01 00:00:00\"}}"), 2);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"data_hora_criacao_inicial\":\"2026-02-01 00:00:00\","
                                       "\"data_hora_criacao_final\":\"2026-02-28 23:59:59\"}}"), 1);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"data_hora_solucao_final\":\"2026-12-31 00:00:00\"}}"), 1);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"assunto\":\"\",\"cliente_id\":null}}"), 3);
    const char *bad[] = {"{\"filtro_body\":{\"bogus\":1}}", "{\"filtro_body\":{\"cliente_token_x\":\"A\"}}",
                         "{\"filtro_body\":{\"data_hora_criacao_inicial\":\"2026-02-01\"}}",
                         "{\"filtro_body\":{\"assunto\":5}}", "{\"filtro_body\":{\"categorias_id\":[\"x\"]}}", NULL};
    for (int i = 0; bad[i]; i++) {
        long st;
        cJSON *r = listagem(m, "", bad[i], &st);
        if (st != 400)
            fail_msg("listagem %s: %ld, want 400", bad[i], st);
        assert_non_null(str(r, "message"));
        cJSON_Delete(r);
    }
    /* item 5: catalogue names must exist once seeded */
    static const char ticket[] = "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"x\",\"chamado_mesa\":\"%s\",\"chamado_setor\":\"%s\","
                                 "\"chamado_categoria_primaria\":\"%s\",\"chamado_categoria_secundaria\":\"%s\"}";
    char body[512];
    snprintf(body, sizeof body, ticket, "Qualquer", "Coisa", "Vale", "Tudo");
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", body), 200); /* no catalogue: anything */
    assert_int_equal(simproc_seed(m, "{\"mesas\":[\"Mesa padrão\"],\"setores\":[\"Suporte\"],\"categorias\":[\"Backup\",\"Verificar\"]}"), 0);
    snprintf(body, sizeof body, ticket, "Mesa padrão", "Suporte", "Backup", "Verificar");
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", body), 200);
    const char *wrong[][4] = {{"Outra", "Suporte", "Backup", "Verificar"}, {"Mesa padrão", "TI", "Backup", "Verificar"},
                              {"Mesa padrão", "Suporte", "Rede", "Verificar"}, {"Mesa padrão", "Suporte", "Backup", "X"},
                              {"mesa padrão", "Suporte", "Backup", "Verificar"}, {"", "Suporte", "Backup", "Verificar"}};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        snprintf(body, sizeof body, ticket, wrong[i][0], wrong[i][1], wrong[i][2], wrong[i][3]);
        long st;
        char *text = NULL;
        assert_int_equal(simproc_request(m, "POST", "/api/chamado/criar", M_AUTH, body, &st, &text, NULL), 0);
        if (st != 400)
            fail_msg("chamado/criar %s: %ld, want 400", body, st);
        assert_true(has_error_shape(text, "message"));
        free(text);
    }
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"sem mesa\"}"), 200);
    cJSON *s = simproc_state(m);
    assert_int_equal(cJSON_GetArraySize(item(s, "mesas")), 1);
    assert_int_equal(cJSON_GetArraySize(item(s, "categorias")), 2);
    cJSON_Delete(s);
    assert_int_equal(simproc_admin_post(m, "seed", "{\"mesas\":[1]}"), 400);
    assert_int_equal(simproc_admin_post(m, "seed", "{\"setores\":\"Suporte\"}"), 400);
    /* item 17: a numeric cliente_id is refused unless ticket_client_id is token_or_id */
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", "{\"cliente_id\":1,\"chamado_assunto\":\"x\"}"), 404);
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", "{\"cliente_id\":\"1\",\"chamado_assunto\":\"x\"}"), 404);
    assert_int_equal(simproc_faults(m, "{\"ticket_client_id\":\"token_or_id\"}"), 0);
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", "{\"cliente_id\":1,\"chamado_assunto\":\"x\"}"), 200);
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", "{\"cliente_id\":\"2\",\"chamado_assunto\":\"x\"}"), 200);
    assert_int_equal(mst(m, "POST", "/api/chamado/criar", "{\"cliente_id\":99,\"chamado_assunto\":\"x\"}"), 404);
    assert_int_equal(listagem_count(m, "{\"filtro_body\":{\"cliente_id\":2,\"status\":10}}"), 2);
    /* item 22: a seeded ticket with a bad date is refused, naming it */
    long st;
    char *text = NULL;
    assert_int_equal(simproc_request(m, "POST", "/_admin/seed", NULL,
                                     "{\"chamados\":[{\"id\":9,\"data_criacao\":\"garbage\"}]}", &st, &text, NULL), 0);
    assert_int_equal(st, 400);
    assert_non_null(strstr(text, "chamados[0].data_criacao"));
    free(text);
    assert_int_equal(simproc_admin_post(m, "seed", "{\"clientes\":[{\"id\":9,\"is_ativo\":\"yes\"}]}"), 400);
    /* reset empties the catalogue */
    assert_int_equal(simproc_reset(m), 0);
    s = simproc_state(m);
    assert_null(item(s, "mesas"));
    cJSON_Delete(s);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- item 13: short_pages on /chamado/listagem -------------------------------------------------- */

static void test_milvus_listagem_short_pages(void **state)
{
    (void)state;
    simproc *m = start_sim("milvus-sim");
    char seed[16384];
    size_t o = (size_t)snprintf(seed, sizeof seed, "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"cnpj_cpf\":\"11222333000181\"}],\"chamados\":[");
    for (int i = 0; i < 120; i++)
        o += (size_t)snprintf(seed + o, sizeof seed - o, "%s{\"id\":%d,\"codigo\":%d,\"assunto\":\"t\",\"cliente_token\":\"AAA111\"}",
                              i ? "," : "", i + 1, i + 1);
    snprintf(seed + o, sizeof seed - o, "]}");
    assert_int_equal(simproc_seed(m, seed), 0);
    assert_int_equal(simproc_faults(m, "{\"short_pages\":true,\"seed\":5}"), 0);
    long st;
    cJSON *r = listagem(m, "?total_registros=50&pagina=1", NULL, &st);
    assert_int_equal(st, 200);
    int n = cJSON_GetArraySize(item(r, "lista"));
    assert_true(n >= 20 && n < 50); /* 40-90% of the page */
    const cJSON *pg = item(item(r, "meta"), "paginate");
    assert_int_equal(item(pg, "total")->valuedouble, 120);
    assert_int_equal(item(pg, "to")->valuedouble, n);
    cJSON_Delete(r);
    /* the last page is never cut: nothing follows it */
    r = listagem(m, "?total_registros=50&pagina=3", NULL, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 20);
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(m, "{\"short_pages\":false}"), 0);
    r = listagem(m, "?total_registros=50&pagina=1", NULL, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 50);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(m), 0);
}

/* ---- item 21: a flood of half-open connections --------------------------------------------------- */

#define HALF_OPEN 1500

static void test_half_open_flood(void **state)
{
    (void)state;
    simproc *m = start_sim("milvus-sim");
    int port = simproc_port(m);
    int *fds = malloc(HALF_OPEN * sizeof *fds);
    assert_non_null(fds);
    int opened = 0;
    static const char partial[] = "POST /api/cliente/criar HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n";
    for (int i = 0; i < HALF_OPEN; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            close(fd);
            break;
        }
        (void)!send(fd, partial, sizeof partial - 1, MSG_NOSIGNAL);
        fds[opened++] = fd;
    }
    fprintf(stderr, "half-open connections: %d\n", opened);
    assert_int_equal(opened, HALF_OPEN);
    /* the admin API (and the API) answer while they hang, long before the 15 s idle timeout */
    int64_t t0 = testenv_now_ms();
    long code = -1;
    while (code != 200 && testenv_now_ms() - t0 < 30000) {
        char *body = NULL;
        code = testhttp_local("GET", port, "/_admin/stats", 5000, &body);
        free(body);
    }
    int64_t waited = testenv_now_ms() - t0;
    fprintf(stderr, "admin answered after %lld ms\n", (long long)waited);
    assert_int_equal(code, 200);
    assert_true(waited < 10000);
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    free(fds);
    assert_int_equal(mst(m, "GET", "/api/cliente/busca", NULL), 200);
    assert_int_equal(simproc_stop(m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_ploomes_fixed_schema),
        cmocka_unit_test(test_ploomes_nested_expand),
        cmocka_unit_test(test_ploomes_toggles),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_fail_after_write),
        cmocka_unit_test(test_third_party_client),
        cmocka_unit_test(test_milvus_clients_strict),
        cmocka_unit_test(test_milvus_busca_paging),
        cmocka_unit_test(test_milvus_tickets_strict),
        cmocka_unit_test(test_milvus_listagem_short_pages),
        cmocka_unit_test(test_half_open_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
