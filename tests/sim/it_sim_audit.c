/* Fidelity audit of both simulators against reference/apis.md §1-§4 and SPEC §8, one test per
 * area, each assertion naming the contract point it checks: Ploomes auth and error shapes,
 * envelope and server-driven paging, every $filter form the pipeline relies on, $select/$expand,
 * POST/PATCH/DELETE semantics (ASP.NET dates, strictly increasing LastUpdateDate), rate limit
 * and error bursts; Milvus /cliente/busca, /cliente/criar, /chamado/criar, /chamado/listagem and
 * the optional endpoints; bounded and malformed bodies; and 8 threads hammering both
 * simulators at once while ids, tokens, codigos and dates stay unique. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "simproc.h"
#include "simtime.h"
#include "testenv.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "AUDITKEY0123456789ABCDEF"
#define TOKEN "audit-token"
#define UNLIMITED "{\"rate_limit_per_min\":0}"
static const char *const P_AUTH[] = {"User-Key: " KEY, NULL};
static const char *const M_AUTH[] = {"Authorization: " TOKEN, NULL};

static simproc *start_sim(const char *binary)
{
    char err[256];
    simproc *p = simproc_start_sim(binary, strcmp(binary, "ploomes-sim") == 0 ? KEY : TOKEN,
                                   UNLIMITED, err, sizeof err);
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

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = item(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Fails unless the n strings (none NULL) are pairwise different; sorts v. */
static void assert_distinct(const char **v, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!v[i])
            fail_msg("%s: missing value", what);
    qsort(v, n, sizeof *v, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (strcmp(v[i - 1], v[i]) == 0)
            fail_msg("%s: '%s' handed out twice", what, v[i]);
}

/* Ploomes GET of /<set>?<query> where query is "name=value&..." with raw values (encoded
 * here). */
static cJSON *pget(simproc *p, const char *set, const char *query, long *st)
{
    char path[4096], enc[2048];
    size_t o = (size_t)snprintf(path, sizeof path, "/%s", set);
    char sep = '?';
    const char *q = query;
    while (q && *q) {
        const char *amp = strstr(q, "&$");
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

/* "Id,Id,..." of a filter over Contacts ordered by Id, or "400" (any status but 200). */
static void filter_ids(simproc *p, const char *filter, char *out, size_t size)
{
    char query[1200];
    snprintf(query, sizeof query, "$filter=%s&$select=Id&$orderby=Id", filter);
    long st;
    cJSON *r = pget(p, "Contacts", query, &st);
    out[0] = '\0';
    if (st != 200) {
        snprintf(out, size, "%ld", st);
        cJSON_Delete(r);
        return;
    }
    const cJSON *row;
    cJSON_ArrayForEach(row, item(r, "value"))
    {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%.0f", n ? "," : "", num(row, "Id"));
    }
    cJSON_Delete(r);
}

/* ---- Ploomes --------------------------------------------------------------------------------- */

static void test_ploomes_auth_and_errors(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    long st;
    /* §4.1: missing or wrong User-Key -> 401 {"value":"..."} */
    cJSON *r = simproc_request_json(p, "GET", "/Contacts", NULL, NULL, &st);
    assert_int_equal(st, 401);
    assert_non_null(str(r, "value"));
    cJSON_Delete(r);
    const char *const wrong[] = {"User-Key: nope", NULL};
    r = simproc_request_json(p, "GET", "/Account?$top=1&$select=Id", wrong, NULL, &st);
    assert_int_equal(st, 401);
    cJSON_Delete(r);
    /* switchable to {"error":{"code","message"}} */
    assert_int_equal(simproc_faults(p, "{\"error_style\":\"odata\"}"), 0);
    r = simproc_request_json(p, "GET", "/Contacts", NULL, NULL, &st);
    assert_int_equal(st, 401);
    assert_non_null(str(item(r, "error"), "message"));
    assert_string_equal(str(item(r, "error"), "code"), "401");
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"error_style\":\"value\"}"), 0);
    /* the credential check of the official node */
    r = pget(p, "Account", "$top=1&$select=Id", &st);
    assert_int_equal(st, 200);
    const cJSON *acc = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_non_null(item(acc, "Id"));
    assert_null(item(acc, "Name")); /* $select */
    cJSON_Delete(r);
    /* unknown id: 404 on GET, PATCH, DELETE; read-only sets refuse writes */
    const char *methods[] = {"GET", "PATCH", "DELETE"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simproc_request(p, methods[i], "/Contacts(424242)", P_AUTH,
                                         i == 1 ? "{\"Name\":\"x\"}" : NULL, &st, NULL, NULL), 0);
        assert_int_equal(st, 404);
    }
    assert_int_equal(simproc_request(p, "POST", "/Tags", P_AUTH, "{\"Name\":\"x\"}", &st, NULL, NULL), 0);
    assert_int_equal(st, 405);
    /* lookups of §4.1 */
    r = pget(p, "Contacts@Types", NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(str(cJSON_GetArrayItem(item(r, "value"), 0), "Name"), "Empresa");
    assert_string_equal(str(cJSON_GetArrayItem(item(r, "value"), 1), "Name"), "Pessoa");
    cJSON_Delete(r);
    r = pget(p, "PhoneTypes", NULL, &st);
    assert_int_equal(st, 200);
    assert_true(cJSON_GetArraySize(item(r, "value")) > 0);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

/* Follows an absolute nextLink on this simulator; returns the parsed page. */
static cJSON *follow(simproc *p, const char *link, long *st)
{
    const char *base = simproc_base_url(p);
    assert_memory_equal(link, base, strlen(base)); /* absolute, our own host */
    return simproc_request_json(p, "GET", link + strlen(base), P_AUTH, NULL, st);
}

static void test_ploomes_paging(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    char *seed = malloc(650 * 40 + 64);
    assert_non_null(seed);
    size_t o = (size_t)snprintf(seed, 64, "{\"Contacts\":[");
    for (int i = 0; i < 650; i++)
        o += (size_t)snprintf(seed + o, 40, "%s{\"Id\":%d,\"Name\":\"c%d\"}", i ? "," : "", i + 1, i);
    snprintf(seed + o, 8, "]}");
    assert_int_equal(simproc_seed(p, seed), 0);
    free(seed);
    long st;
    /* envelope: @odata.context = <base>/$metadata#Contacts; default page 300; nextLink only
     * because the server truncated, $skip advanced */
    cJSON *r = pget(p, "Contacts", NULL, &st);
    assert_int_equal(st, 200);
    char ctx[256];
    snprintf(ctx, sizeof ctx, "%s/$metadata#Contacts", simproc_base_url(p));
    assert_string_equal(str(r, "@odata.context"), ctx);
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 300);
    assert_non_null(strstr(str(r, "@odata.nextLink"), "$skip=300"));
    cJSON *r2 = follow(p, str(r, "@odata.nextLink"), &st);
    assert_int_equal(st, 200);
    assert_int_equal(cJSON_GetArraySize(item(r2, "value")), 300);
    assert_int_equal(num(cJSON_GetArrayItem(item(r2, "value"), 0), "Id"), 301);
    cJSON *r3 = follow(p, str(r2, "@odata.nextLink"), &st);
    assert_int_equal(cJSON_GetArraySize(item(r3, "value")), 50);
    assert_null(item(r3, "@odata.nextLink")); /* the end */
    cJSON_Delete(r);
    cJSON_Delete(r2);
    cJSON_Delete(r3);
    /* $top=300: exactly what was asked, no nextLink even though more rows exist */
    r = pget(p, "Contacts", "$top=300", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 300);
    assert_null(item(r, "@odata.nextLink"));
    cJSON_Delete(r);
    /* $top=1000: silently capped at 300, nextLink carries the rest of $top */
    r = pget(p, "Contacts", "$top=1000&$count=true", &st);
    assert_int_equal(st, 200);
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 300);
    assert_int_equal(num(r, "@odata.count"), 650);
    assert_non_null(strstr(str(r, "@odata.nextLink"), "$top=700"));
    assert_non_null(strstr(str(r, "@odata.nextLink"), "$skip=300"));
    cJSON_Delete(r);
    /* $top=10&$skip=645: 5 rows, the end */
    r = pget(p, "Contacts", "$top=10&$skip=645", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 5);
    assert_null(item(r, "@odata.nextLink"));
    cJSON_Delete(r);
    /* option: 400 instead of the silent cap */
    assert_int_equal(simproc_faults(p, "{\"top_cap_error\":true}"), 0);
    r = pget(p, "Contacts", "$top=301", &st);
    assert_int_equal(st, 400);
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"top_cap_error\":false}"), 0);
    /* fault: nextLink to another host, followed verbatim by clients */
    assert_int_equal(simproc_faults(p, "{\"nextlink_host\":\"http://public6-api2.example\"}"), 0);
    r = pget(p, "Contacts", "$filter=Id gt 10", &st);
    assert_memory_equal(str(r, "@odata.nextLink"), "http://public6-api2.example/Contacts?", 37);
    assert_non_null(strstr(str(r, "@odata.nextLink"), "$filter=Id%20gt%2010"));
    cJSON_Delete(r);
    /* fault: short pages cut a mid-scan page to 40-90%, the same way for the same seed */
    int sizes[2];
    for (int run = 0; run < 2; run++) {
        assert_int_equal(simproc_faults(p, "{\"short_pages\":true,\"seed\":7}"), 0);
        r = pget(p, "Contacts", "$top=100", &st);
        sizes[run] = cJSON_GetArraySize(item(r, "value"));
        cJSON_Delete(r);
    }
    assert_int_equal(sizes[0], sizes[1]);
    assert_true(sizes[0] >= 40 && sizes[0] <= 90);
    r = pget(p, "Contacts", "$top=100&$skip=600", &st); /* the last page is not cut */
    assert_int_equal(cJSON_GetArraySize(item(r, "value")), 50);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

static const char *FILTER_SEED =
    "{\"Cities\":[{\"Id\":3941,\"Name\":\"São Paulo\"},{\"Id\":3942,\"Name\":\"Campinas\"}],"
    "\"Contacts\":["
    "{\"Id\":1,\"Name\":\"ACME LTDA\",\"TypeId\":1,\"CityId\":3941,\"Email\":\"a@acme.com.br\","
    " \"Register\":\"11222333000181\",\"StatusId\":1,\"HasConsent\":true,"
    " \"LastUpdateDate\":\"2024-01-01T00:00:00-03:00\","
    " \"Tags\":[{\"TagId\":40006184}],\"Phones\":[{\"PhoneNumber\":\"(11) 99999-0000\"}]},"
    "{\"Id\":2,\"Name\":\"D'Ávila\",\"TypeId\":2,\"CompanyId\":1,\"CityId\":3942,\"Email\":null,"
    " \"LastUpdateDate\":\"2024-01-01T03:00:00.5Z\",\"HasConsent\":false,"
    " \"Tags\":[{\"TagId\":7},{\"TagId\":40006184}],\"Phones\":[{\"PhoneNumber\":\"12345678\"}]},"
    "{\"Id\":3,\"Name\":\"Beta\",\"TypeId\":1,\"StatusId\":2,"
    " \"LastUpdateDate\":\"2024-01-01T00:00:00.1234567-03:00\"}]}";

static void test_ploomes_filters(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    assert_int_equal(simproc_seed(p, FILTER_SEED), 0);
    static const struct {
        const char *filter, *want;
    } cases[] = {
        {"Id eq 2", "2"},
        {"Id ne 2", "1,3"},
        {"Id gt 1", "2,3"},
        {"Id ge 2", "2,3"},
        {"Id lt 2", "1"},
        {"Id le 2", "1,2"},
        {"StatusId eq 1 and TypeId eq 1", "1"},
        {"Id eq 1 or Id eq 3", "1,3"},
        {"(Id eq 1 or Id eq 2) and TypeId eq 2", "2"},
        {"Id eq 1 or (Id eq 2 and TypeId eq 1)", "1"},
        {"not (Id eq 1)", "2,3"},
        {"Name eq 'ACME LTDA'", "1"},
        {"Name eq 'D''Ávila'", "2"},           /* '' escapes a quote */
        {"contains(Name,'acme')", ""},         /* string_compare "sensitive" (default), like eq */
        {"contains(Name,'ACME')", "1"},
        {"startswith(Name,'Be')", "3"},
        {"endswith(Name,'LTDA')", "1"},
        {"Register eq '11222333000181'", "1"},
        {"Tags/any(t: t/TagId eq 40006184)", "1,2"},
        {"Tags/any(t: t/TagId eq 7)", "2"},
        {"Tags/any(t: t/TagId eq 1)", ""},
        {"Phones/any(p: contains(p/PhoneNumber,'99999'))", "1"},
        {"Phones/any(p: contains(p/PhoneNumber,'5678'))", "2"},
        {"City/Id eq 3941", "1"},
        {"CityId eq 3942", "2"},
        {"Email eq null", "2,3"},              /* null and missing alike */
        {"Email ne null", "1"},
        {"CompanyId eq null", "1,3"},
        {"HasConsent eq true", "1"},
        {"HasConsent", "1"},
        /* DateTimeOffset literals are unquoted and compared as instants, whatever the offset
         * and the number of fractional digits */
        {"LastUpdateDate eq 2024-01-01T03:00:00Z", "1"},
        {"LastUpdateDate eq 2024-01-01T00:00:00.5-03:00", "2"},
        {"LastUpdateDate gt 2024-01-01T00:00:00.1-03:00", "2,3"},
        {"LastUpdateDate gt 2024-01-01T00:00:00.12345670-03:00", "2"},
        {"LastUpdateDate ge 2024-01-01T03:00:00.1234567+00:00", "2,3"},
        {"LastUpdateDate lt 2024-01-01T01:00:00.2-02:00", "1,3"},
        /* unknown field, unparsable, type mismatch: 400, never a wrong answer */
        {"Bogus eq 1", "400"},
        {"Id eq", "400"},
        {"Id eq 1 and", "400"},
        {"Name eq 1", "400"},
        {"LastUpdateDate gt '2024'", "400"},
        {"Tags/any(t: t/TagId eq 'x')", "400"},
        {"Tags/any(t: t/TagID eq 1)", "400"},  /* unknown fields inside lambdas and paths */
        {"City/Bogus eq 1", "400"},
        {"Phones/any(p: contains(p/Number,'1'))", "400"},
        {"contains(Name,'x'", "400"},
        {"Name eq 'unterminated", "400"},
    };
    char got[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        filter_ids(p, cases[i].filter, got, sizeof got);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("$filter=%s: got [%s], want [%s]", cases[i].filter, got, cases[i].want);
    }
    /* $orderby with several keys and directions */
    long st;
    cJSON *r = pget(p, "Contacts", "$orderby=TypeId desc,Id desc&$select=Id", &st);
    assert_int_equal(st, 200);
    assert_int_equal(num(cJSON_GetArrayItem(item(r, "value"), 0), "Id"), 2);
    assert_int_equal(num(cJSON_GetArrayItem(item(r, "value"), 1), "Id"), 3);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

static void test_ploomes_select_expand(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    assert_int_equal(simproc_seed(p, FILTER_SEED), 0);
    long st;
    /* navigation properties are absent unless expanded */
    cJSON *r = pget(p, "Contacts", "$filter=Id eq 1", &st);
    const cJSON *c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_string_equal(str(c, "Name"), "ACME LTDA");
    const char *navs[] = {"Tags", "Phones", "City", "OtherProperties", "Contacts", "Company"};
    for (size_t i = 0; i < sizeof navs / sizeof navs[0]; i++)
        assert_null(item(c, navs[i]));
    cJSON_Delete(r);
    /* $select keeps exactly the named fields */
    r = pget(p, "Contacts", "$filter=Id eq 1&$select=Id,Name", &st);
    c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_int_equal(cJSON_GetArraySize(c), 2);
    assert_non_null(item(c, "Id"));
    assert_non_null(item(c, "Name"));
    cJSON_Delete(r);
    /* $expand with nested options (issue 9 item 7): Tags($select=Tag;$expand=Tag) gives rows
     * holding only the Tag; City($select=Name) only the name */
    r = pget(p, "Contacts", "$filter=Id eq 1&$select=Id&$expand=Tags($select=Tag;$expand=Tag),Phones,City($select=Id,Name),OtherProperties", &st);
    assert_int_equal(st, 200);
    c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetArrayItem(item(c, "Tags"), 0)), 1);
    assert_null(item(cJSON_GetArrayItem(item(c, "Tags"), 0), "TagId"));
    assert_string_equal(str(cJSON_GetArrayItem(item(c, "Phones"), 0), "PhoneNumber"), "(11) 99999-0000");
    assert_string_equal(str(item(c, "City"), "Name"), "São Paulo");
    assert_int_equal(cJSON_GetArraySize(item(c, "City")), 2);
    assert_true(cJSON_IsArray(item(c, "OtherProperties")));
    assert_null(item(c, "Name"));
    cJSON_Delete(r);
    /* $expand=Contacts on a company: its people */
    r = pget(p, "Contacts", "$filter=Id eq 1&$expand=Contacts", &st);
    c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_int_equal(cJSON_GetArraySize(item(c, "Contacts")), 1);
    assert_int_equal(num(cJSON_GetArrayItem(item(c, "Contacts"), 0), "Id"), 2);
    assert_null(item(cJSON_GetArrayItem(item(c, "Contacts"), 0), "Tags"));
    cJSON_Delete(r);
    /* unknown names: 400 */
    r = pget(p, "Contacts", "$expand=Nope", &st);
    assert_int_equal(st, 400);
    cJSON_Delete(r);
    r = pget(p, "Contacts", "$select=Nope", &st);
    assert_int_equal(st, 400);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

static simtime_instant instant(const char *s)
{
    simtime_instant t = {0, 0};
    assert_non_null(s);
    if (!simtime_parse_iso(s, strlen(s), &t))
        fail_msg("not an ISO date with an offset: %s", s);
    return t;
}

/* ASP.NET DateTimeOffset: 0-7 fractional digits without trailing zeros, -03:00 */
static void assert_ploomes_date(const char *s)
{
    assert_non_null(s);
    size_t n = strlen(s);
    assert_true(n >= 25 && n <= 33);
    assert_string_equal(s + n - 6, "-03:00");
    if (n > 25) {
        assert_int_equal(s[19], '.');
        assert_true(s[n - 7] != '0');
    }
    (void)instant(s);
}

static cJSON *post_contact(simproc *p, const char *body, long *st)
{
    return simproc_request_json(p, "POST", "/Contacts", P_AUTH, body, st);
}

static void test_ploomes_writes(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    long st;
    /* the minimal POST of apis.md §1.4 */
    cJSON *r = post_contact(p,
        "{\"Name\":\"ACME LTDA\",\"TypeId\":1,\"Register\":\"11222333000181\",\"Email\":\"x@acme.com.br\","
        "\"StreetAddress\":\"Rua X\",\"ZipCode\":1310100,\"CityId\":3941,\"OwnerId\":10003844,"
        "\"Phones\":[{\"PhoneNumber\":\"(11) 99999-0000\",\"TypeId\":1,\"CountryId\":76}],"
        "\"Tags\":[{\"TagId\":40006184}],"
        "\"OtherProperties\":[{\"FieldKey\":\"contact_A51DFABF\",\"StringValue\":\"x\"}]}", &st);
    assert_int_equal(st, 200);
    assert_non_null(str(r, "@odata.context"));
    const cJSON *c = cJSON_GetArrayItem(item(r, "value"), 0);
    int64_t id = (int64_t)num(c, "Id");
    assert_true(id > 0);
    assert_ploomes_date(str(c, "CreateDate"));
    assert_string_equal(str(c, "CreateDate"), str(c, "LastUpdateDate"));
    assert_true(num(c, "CreatorId") > 0);
    assert_string_equal(str(c, "CNPJ"), "11222333000181");
    assert_true(cJSON_IsNull(item(c, "CPF")));
    assert_int_equal(num(c, "ZipCode"), 1310100); /* numeric: the leading zero is gone */
    assert_null(item(c, "Tags"));                  /* not expanded */
    char q[128];
    snprintf(q, sizeof q, "$filter=Id eq %lld&$expand=Phones,Tags,OtherProperties", (long long)id);
    cJSON *g = pget(p, "Contacts", q, &st);
    c = cJSON_GetArrayItem(item(g, "value"), 0);
    const cJSON *ph = cJSON_GetArrayItem(item(c, "Phones"), 0);
    assert_string_equal(str(ph, "PhoneNumber"), "(11) 99999-0000");
    assert_int_equal(num(ph, "ContactId"), id);
    assert_int_equal(num(ph, "SearchPhoneNumber"), 11999990000.0);
    assert_int_equal(num(cJSON_GetArrayItem(item(c, "Tags"), 0), "TagId"), 40006184);
    assert_string_equal(str(cJSON_GetArrayItem(item(c, "OtherProperties"), 0), "StringValue"), "x");
    cJSON_Delete(g);
    cJSON_Delete(r);
    /* a person: CPF derived; no Register: both present and null */
    r = post_contact(p, "{\"Name\":\"Zé\",\"TypeId\":2,\"Register\":\"52998224725\"}", &st);
    c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_string_equal(str(c, "CPF"), "52998224725");
    assert_true(cJSON_IsNull(item(c, "CNPJ")));
    cJSON_Delete(r);
    r = post_contact(p, "{\"Name\":\"Sem documento\",\"TypeId\":1}", &st);
    c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_true(cJSON_IsNull(item(c, "CNPJ")) && cJSON_IsNull(item(c, "CPF")));
    cJSON_Delete(r);
    /* validation */
    const char *bad[] = {"{\"TypeId\":1}", "{\"Name\":\"  \"}", "{\"Name\":", "[1]", "",
                         "{\"Name\":\"x\",\"TypeId\":\"1\"}", "{\"Name\":\"x\",\"Tags\":[{\"TagId\":\"a\"}]}",
                         "{\"Name\":\"x\",\"ZipCode\":\"abc\"}", "{\"Name\":\"x\",\"ZipCode\":\"01310-100\"}",
                         "{\"Name\":\"x\",\"Zipcode\":1310100}", "{\"Name\":\"x\",\"Registro\":\"1\"}", NULL};
    for (int i = 0; bad[i]; i++) {
        r = post_contact(p, bad[i], &st);
        if (st != 400)
            fail_msg("POST %s: %ld, want 400", bad[i], st);
        assert_non_null(str(r, "value"));
        cJSON_Delete(r);
    }
    /* PATCH: LastUpdateDate moves and stays strictly increasing, CreateDate stays; fields merge;
     * Register/TypeId re-derive CNPJ/CPF */
    char path[64];
    snprintf(path, sizeof path, "/Contacts(%lld)", (long long)id);
    simtime_instant prev = {0, 0};
    char created[48] = "";
    for (int i = 0; i < 30; i++) {
        r = simproc_request_json(p, "PATCH", path, P_AUTH, i == 29 ? "{\"TypeId\":2,\"Register\":\"11144477735\"}" : "{\"Note\":\"n\"}", &st);
        assert_int_equal(st, 200);
        c = cJSON_GetArrayItem(item(r, "value"), 0);
        assert_ploomes_date(str(c, "LastUpdateDate"));
        simtime_instant t = instant(str(c, "LastUpdateDate"));
        assert_true(simtime_cmp(t, prev) > 0);
        prev = t;
        if (!created[0])
            snprintf(created, sizeof created, "%s", str(c, "CreateDate"));
        assert_string_equal(str(c, "CreateDate"), created);
        assert_string_equal(str(c, "Name"), "ACME LTDA");
        if (i == 29) {
            assert_string_equal(str(c, "CPF"), "11144477735");
            assert_true(cJSON_IsNull(item(c, "CNPJ")));
        }
        cJSON_Delete(r);
    }
    assert_true(simtime_cmp(prev, instant(created)) > 0);
    assert_int_equal(simproc_faults(p, "{\"patch_204\":true}"), 0);
    char *text = NULL;
    assert_int_equal(simproc_request(p, "PATCH", path, P_AUTH, "{\"Note\":\"m\"}", &st, &text, NULL), 0);
    assert_int_equal(st, 204);
    assert_string_equal(text, "");
    free(text);
    /* DELETE 204, then gone */
    assert_int_equal(simproc_request(p, "DELETE", path, P_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 204);
    assert_int_equal(simproc_request(p, "DELETE", path, P_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 404);
    /* Tasks: Finish sets Finished and FinishDate */
    r = simproc_request_json(p, "POST", "/Tasks", P_AUTH,
                             "{\"Title\":\"t\",\"ContactId\":1,\"DateTime\":\"2026-12-01T10:00:00-03:00\"}", &st);
    assert_int_equal(st, 200);
    snprintf(path, sizeof path, "/Tasks(%.0f)/Finish", num(cJSON_GetArrayItem(item(r, "value"), 0), "Id"));
    assert_true(cJSON_IsFalse(item(cJSON_GetArrayItem(item(r, "value"), 0), "Finished")));
    cJSON_Delete(r);
    r = simproc_request_json(p, "POST", path, P_AUTH, NULL, &st);
    assert_int_equal(st, 200);
    c = cJSON_GetArrayItem(item(r, "value"), 0);
    assert_true(cJSON_IsTrue(item(c, "Finished")));
    assert_ploomes_date(str(c, "FinishDate"));
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

static void test_ploomes_rate_limit_and_bursts(void **state)
{
    (void)state;
    simproc *p = start_sim("ploomes-sim");
    long st, ra;
    char *text = NULL;
    /* sliding window per key: the 6th call of a minute is 429 with Retry-After and a body */
    assert_int_equal(simproc_faults(p, "{\"rate_limit_per_min\":5}"), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simproc_request(p, "GET", "/Account", P_AUTH, NULL, &st, NULL, NULL), 0);
        assert_int_equal(st, 200);
    }
    assert_int_equal(simproc_request(p, "GET", "/Account", P_AUTH, NULL, &st, &text, &ra), 0);
    assert_int_equal(st, 429);
    assert_true(ra >= 1 && ra <= 60);
    cJSON *b = cJSON_Parse(text);
    assert_non_null(str(b, "value"));
    cJSON_Delete(b);
    free(text);
    /* a wrong key is refused before it is counted */
    const char *const wrong[] = {"User-Key: other", NULL};
    assert_int_equal(simproc_request(p, "GET", "/Account", wrong, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 401);
    /* Retry-After is optional */
    assert_int_equal(simproc_faults(p, "{\"retry_after\":false}"), 0);
    assert_int_equal(simproc_request(p, "GET", "/Account", P_AUTH, NULL, &st, NULL, &ra), 0);
    assert_int_equal(st, 429);
    assert_int_equal(ra, -1);
    /* a burst of 403s (heavy queries, bursts), then normal again; admin unaffected */
    assert_int_equal(simproc_faults(p, "{\"rate_limit_per_min\":0,\"error_burst\":3,\"error_status\":403}"), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(simproc_request(p, "GET", "/Contacts?$filter=Tags/any(t:%20t/TagId%20eq%201)", P_AUTH, NULL, &st, &text, NULL), 0);
        assert_int_equal(st, 403);
        b = cJSON_Parse(text);
        assert_non_null(str(b, "value"));
        cJSON_Delete(b);
        free(text);
        cJSON *s = simproc_state(p);
        assert_non_null(s);
        cJSON_Delete(s);
    }
    assert_int_equal(simproc_request(p, "GET", "/Contacts", P_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    /* and a run of 5xx */
    assert_int_equal(simproc_faults(p, "{\"error_burst\":2,\"error_status\":500}"), 0);
    assert_int_equal(simproc_request(p, "GET", "/Contacts", P_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 500);
    assert_int_equal(simproc_request(p, "GET", "/Contacts", P_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 500);
    assert_int_equal(simproc_request(p, "GET", "/Contacts", P_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(simproc_stop(p), 0);

    /* Milvus: default 60 per minute per token; min_interval_ms models ">1 min between calls" */
    char err[256];
    p = simproc_start_sim("milvus-sim", TOKEN, NULL, err, sizeof err);
    assert_non_null(p);
    cJSON *f = simproc_request_json(p, "GET", "/_admin/faults", NULL, NULL, &st);
    assert_int_equal(num(f, "rate_limit_per_min"), 60);
    cJSON_Delete(f);
    assert_int_equal(simproc_faults(p, "{\"rate_limit_per_min\":0,\"min_interval_ms\":60000}"), 0);
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", M_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", M_AUTH, NULL, &st, &text, &ra), 0);
    assert_int_equal(st, 429);
    /* what is left of the minute, rounded up: 60 right after the first call, less when the
     * second one came late on a loaded machine */
    assert_true(ra >= 30 && ra <= 60);
    b = cJSON_Parse(text);
    assert_non_null(str(b, "message"));
    cJSON_Delete(b);
    free(text);
    assert_int_equal(simproc_faults(p, "{\"min_interval_ms\":0}"), 0);
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", M_AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- Milvus ---------------------------------------------------------------------------------- */



static long mpost(simproc *p, const char *path, const char *body, char **text)
{
    return simproc_post(p, path, M_AUTH, body, text);
}

static cJSON *busca(simproc *p, const char *query, long *st)
{
    char path[512];
    snprintf(path, sizeof path, "/api/cliente/busca%s%s", query[0] ? "?" : "", query);
    return simproc_request_json(p, "GET", path, M_AUTH, NULL, st);
}

/* The message of a {"message":"..."} body (copied into out). */
static void message_of(const char *text, char *out, size_t size)
{
    cJSON *b = cJSON_Parse(text);
    snprintf(out, size, "%s", str(b, "message") ? str(b, "message") : "(no message)");
    cJSON_Delete(b);
}

static void test_milvus_clients(void **state)
{
    (void)state;
    simproc *p = start_sim("milvus-sim");
    long st;
    char *text = NULL;
    char msg[256];
    /* auth: raw token; 401 {"message":...} */
    const char *const bearer[] = {"Authorization: Bearer " TOKEN, NULL};
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", bearer, NULL, &st, &text, NULL), 0);
    assert_int_equal(st, 401);
    message_of(text, msg, sizeof msg);
    assert_string_not_equal(msg, "(no message)");
    free(text);
    /* this test covers document_match "normalized" (the toggle); "exact", the default, is
     * covered by it_milvus_sim and it_sim_strict */
    assert_int_equal(simproc_faults(p, "{\"document_match\":\"normalized\"}"), 0);
    /* /cliente/criar: success is the bare id */
    static const struct {
        const char *body;
        long status;
        const char *message; /* NULL = any */
    } cases[] = {
        {"{\"cliente_documento\":\"11.222.333/0001-81\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"ACME\",\"razao_social\":\"ACME LTDA\"},"
         "\"cliente_contatos\":[{\"contato_padrao\":true,\"contato_descricao\":\"Ana\",\"contato_email\":\"Ana@Acme.com.br\",\"contato_telefone\":\"(11) 3333-4444\"}]}", 200, NULL},
        {"{\"cliente_documento\":\"12.abc.345/01de-35\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Alfa Num\"}}", 200, NULL},
        {"{\"cliente_documento\":1234567890,\"cliente_pessoa_fisica\":{\"nome\":\"Zé Zero\"}}", 200, NULL},
        {"{\"cliente_documento\":\"529.982.247-25\",\"cliente_pessoa_fisica\":{\"nome\":\"Bloqueado\"},\"cliente_ativo\":false}", 200, NULL},
        /* duplicates, whatever the form */
        {"{\"cliente_documento\":\"11222333000181\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Dup\"}}", 409, "Cliente já cadastrado"},
        {"{\"cliente_documento\":11222333000181,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Dup\"}}", 409, "Cliente já cadastrado"},
        {"{\"cliente_documento\":\"12ABC34501DE35\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Dup\"}}", 409, "Cliente já cadastrado"},
        {"{\"cliente_documento\":\"01234567890\",\"cliente_pessoa_fisica\":{\"nome\":\"Dup\"}}", 409, "Cliente já cadastrado"},
        /* validation */
        {"{\"cliente_pessoa_fisica\":{\"nome\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"\",\"cliente_pessoa_fisica\":{\"nome\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11144477735\"}", 400, NULL},
        {"{\"cliente_documento\":\"11144477735\",\"cliente_pessoa_fisica\":{\"nome\":\"x\"},\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11144477736\",\"cliente_pessoa_fisica\":{\"nome\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11111111111\",\"cliente_pessoa_fisica\":{\"nome\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11222333000182\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11144477735\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11222333000181x\",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":12.5,\"cliente_pessoa_fisica\":{\"nome\":\"x\"}}", 400, NULL},
        {"{\"cliente_documento\":\"11144477735\",\"cliente_pessoa_fisica\":{}}", 400, NULL},
        {"{\"cliente_documento\":", 400, NULL},
        {"[]", 400, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long got = mpost(p, "/api/cliente/criar", cases[i].body, &text);
        if (got != cases[i].status)
            fail_msg("criar %s: %ld (%s), want %ld", cases[i].body, got, text, cases[i].status);
        if (got == 200) {
            char *end = NULL;
            assert_true(strtol(text, &end, 10) > 0 && *end == '\0'); /* bare id */
        } else {
            message_of(text, msg, sizeof msg);
            if (cases[i].message)
                assert_string_equal(msg, cases[i].message);
        }
        free(text);
    }
    assert_int_equal(simproc_faults(p, "{\"duplicate_status\":400}"), 0);
    assert_int_equal(mpost(p, "/api/cliente/criar", cases[4].body, NULL), 400);
    /* /cliente/busca: exact document match on normalised form, fields */
    static const struct {
        const char *query;
        int count;
    } searches[] = {
        {"documento=11222333000181", 1}, {"documento=11.222.333%2F0001-81", 1},
        {"documento=12.abc.345%2F01de-35", 1}, {"documento=12ABC34501DE35", 1},
        {"documento=01234567890", 1},     {"documento=11222333", 0}, /* no prefix match */
        {"documento=52998224725", 0},     /* blocked: status defaults to 1 */
        {"documento=52998224725&status=2", 1}, {"documento=52998224725&status=3", 1},
        {"nome_fantasia=cme", 1},         {"nome_fantasia=ALFA", 1},
        {"", 3},                          {"status=3", 4}, {"status=2", 1},
    };
    for (size_t i = 0; i < sizeof searches / sizeof searches[0]; i++) {
        cJSON *r = busca(p, searches[i].query, &st);
        assert_int_equal(st, 200);
        if (cJSON_GetArraySize(item(r, "lista")) != searches[i].count)
            fail_msg("busca?%s: %d rows, want %d", searches[i].query, cJSON_GetArraySize(item(r, "lista")), searches[i].count);
        cJSON_Delete(r);
    }
    cJSON *r = busca(p, "status=9", &st);
    assert_int_equal(st, 400);
    cJSON_Delete(r);
    r = busca(p, "documento=11222333000181", &st);
    const cJSON *c = cJSON_GetArrayItem(item(r, "lista"), 0);
    const char *fields[] = {"id", "razao_social", "nome_fantasia", "cnpj_cpf", "token", "is_ativo",
                            "is_fisica", "equipes", "inscricao_estadual", "site", "observacao",
                            "is_sla", "timezone", "grupo_categorias", NULL};
    for (int i = 0; fields[i]; i++)
        if (!item(c, fields[i]))
            fail_msg("busca row lacks '%s'", fields[i]);
    assert_string_equal(str(c, "cnpj_cpf"), "11222333000181");
    assert_string_equal(str(c, "razao_social"), "ACME LTDA");
    assert_true(cJSON_IsFalse(item(c, "is_fisica")) && cJSON_IsTrue(item(c, "is_ativo")));
    assert_true(cJSON_IsArray(item(c, "equipes")) && cJSON_GetArraySize(item(c, "equipes")) > 0);
    assert_null(item(c, "cliente_documento")); /* request-only fields stay out */
    const char *tok = str(c, "token");
    assert_int_equal(strlen(tok), 6);
    assert_int_equal(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 6);
    char acme_token[8];
    snprintf(acme_token, sizeof acme_token, "%s", tok);
    cJSON_Delete(r);
    /* optional: /cliente/contato/pesquisar -> a bare array */
    r = simproc_request_json(p, "GET", "/api/cliente/contato/pesquisar?email=ana%40acme.com.br", M_AUTH, NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(cJSON_GetArraySize(r), 1);
    assert_string_equal(str(cJSON_GetArrayItem(r, 0), "cliente_id"), acme_token);
    assert_string_equal(str(cJSON_GetArrayItem(r, 0), "contato_descricao"), "Ana");
    cJSON_Delete(r);
    r = simproc_request_json(p, "GET", "/api/cliente/contato/pesquisar?telefone=33334444", M_AUTH, NULL, &st);
    assert_int_equal(cJSON_GetArraySize(r), 1);
    cJSON_Delete(r);
    r = simproc_request_json(p, "GET", "/api/cliente/contato/pesquisar?telefone=9999", M_AUTH, NULL, &st);
    assert_true(cJSON_IsArray(r) && cJSON_GetArraySize(r) == 0);
    cJSON_Delete(r);
    r = simproc_request_json(p, "GET", "/api/cliente/contato/pesquisar", M_AUTH, NULL, &st);
    assert_int_equal(st, 400);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

static void test_milvus_busca_paging_and_tokens(void **state)
{
    (void)state;
    simproc *p = start_sim("milvus-sim");
    long st;
    /* 1,005 seeded clients: one answer holds at most 1,000 (truncate_at) */
    char *seed = malloc(1005 * 64 + 64);
    assert_non_null(seed);
    size_t o = (size_t)snprintf(seed, 64, "{\"clientes\":[");
    for (int i = 0; i < 1005; i++)
        o += (size_t)snprintf(seed + o, 64, "%s{\"nome_fantasia\":\"C%d\",\"cnpj_cpf\":\"%011d\"}", i ? "," : "", i, i);
    snprintf(seed + o, 8, "]}");
    assert_int_equal(simproc_seed(p, seed), 0);
    free(seed);
    cJSON *r = busca(p, "", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 1000);
    assert_null(item(r, "meta")); /* no paging asked, none given */
    cJSON_Delete(r);
    r = busca(p, "pagina=3&total_registros=400", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 205);
    const cJSON *pg = item(item(r, "meta"), "paginate");
    assert_string_equal(str(pg, "current_page"), "3");
    assert_int_equal(num(pg, "total"), 1005);
    assert_int_equal(num(pg, "last_page"), 3);
    cJSON_Delete(r);
    r = busca(p, "total_registros=5000", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 1000);
    cJSON_Delete(r);
    assert_int_equal(simproc_faults(p, "{\"truncate_at\":10}"), 0);
    r = busca(p, "", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 10);
    cJSON_Delete(r);
    /* seeded tokens were filled in: 6 uppercase alphanumerics, all distinct; 200 created ones
     * too, with increasing ids */
    assert_int_equal(simproc_faults(p, "{\"truncate_at\":0}"), 0);
    long last_id = 0;
    for (int i = 0; i < 200; i++) {
        char cpf[12], body[160];
        testenv_make_cpf("", 200000000 + i, cpf); /* apis.md §3 */
        snprintf(body, sizeof body, "{\"cliente_documento\":\"%s\",\"cliente_pessoa_fisica\":{\"nome\":\"P%d\"}}", cpf, i);
        char *text = NULL;
        assert_int_equal(mpost(p, "/api/cliente/criar", body, &text), 200);
        long id = strtol(text, NULL, 10);
        assert_true(id > last_id);
        last_id = id;
        free(text);
    }
    r = busca(p, "status=3", &st);
    int n = cJSON_GetArraySize(item(r, "lista"));
    assert_int_equal(n, 1205);
    const char **toks = calloc((size_t)n, sizeof *toks);
    assert_non_null(toks);
    for (int i = 0; i < n; i++) {
        const char *t = str(cJSON_GetArrayItem(item(r, "lista"), i), "token");
        assert_non_null(t);
        assert_int_equal(strlen(t), 6);
        assert_int_equal(strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"), 6);
        toks[i] = t;
    }
    assert_distinct(toks, (size_t)n, "token");
    free(toks);
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

static long codigo_of(const char *text)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    assert_true(v > 0 && *end == '\0');
    return v;
}

static cJSON *listagem(simproc *p, const char *query, const char *body, long *st)
{
    char path[256];
    snprintf(path, sizeof path, "/api/chamado/listagem%s", query);
    return simproc_request_json(p, "POST", path, M_AUTH, body, st);
}

static void test_milvus_tickets(void **state)
{
    (void)state;
    simproc *p = start_sim("milvus-sim");
    long st;
    char *text = NULL;
    assert_int_equal(simproc_seed(p, "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"nome_fantasia\":\"A\",\"cnpj_cpf\":\"11222333000181\"},"
                                     "{\"id\":2,\"token\":\"BBB222\",\"nome_fantasia\":\"B\",\"cnpj_cpf\":\"52998224725\"}],"
                                     "\"chamados\":[{\"codigo\":50,\"assunto\":\"seeded\",\"cliente_token\":\"BBB222\",\"status\":\"Atendendo\"}]}"), 0);
    /* /chamado/criar: bare sequential codigo; cliente_id is the token */
    long codes[4];
    const char *bodies[] = {
        "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"um\",\"chamado_descricao\":\"d1\",\"chamado_email\":\"x@a.com\"}",
        "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"dois\",\"chamado_descricao\":\"d2\"}",
        "{\"cliente_id\":\"BBB222\",\"chamado_assunto\":\"tres\"}",
        "{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"quatro\",\"categoria_id\":1}",
    };
    for (int i = 0; i < 4; i++) {
        assert_int_equal(mpost(p, "/api/chamado/criar", bodies[i], &text), 200);
        codes[i] = codigo_of(text);
        free(text);
        if (i)
            assert_int_equal(codes[i], codes[i - 1] + 1);
    }
    assert_true(codes[0] > 50);
    static const struct {
        const char *body;
        long status;
    } bad[] = {
        {"{\"cliente_id\":\"ZZZ999\",\"chamado_assunto\":\"x\"}", 404},
        {"{\"cliente_id\":1,\"chamado_assunto\":\"x\"}", 404}, /* the numeric id is not the token */
        {"{\"cliente_id\":\"AAA111\"}", 400},
        {"{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"   \"}", 400},
        {"{\"chamado_assunto\":\"x\"}", 400},
        {"{\"cliente_id\":\"AAA111\",\"chamado_assunto\":", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long got = mpost(p, "/api/chamado/criar", bad[i].body, &text);
        if (got != bad[i].status)
            fail_msg("chamado/criar %s: %ld, want %ld", bad[i].body, got, bad[i].status);
        assert_true(text[0] != '\0'); /* a text or {"message"} body */
        free(text);
    }
    /* /chamado/listagem: defaults (50 per page, codigo descending), meta.paginate */
    cJSON *r = listagem(p, "", NULL, &st);
    assert_int_equal(st, 200);
    const cJSON *pg = item(item(r, "meta"), "paginate");
    assert_string_equal(str(pg, "current_page"), "1");
    assert_int_equal(num(pg, "total"), 5);
    assert_int_equal(num(pg, "per_page"), 50);
    const cJSON *first = cJSON_GetArrayItem(item(r, "lista"), 0);
    assert_int_equal(num(first, "codigo"), codes[3]);
    assert_string_equal(str(first, "cliente_token"), "AAA111");
    assert_string_equal(str(first, "assunto"), "quatro");
    assert_null(item(first, "chamado_assunto"));
    cJSON_Delete(r);
    /* paging in the query string or in the body */
    r = listagem(p, "?total_registros=2&pagina=2", NULL, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 2);
    assert_string_equal(str(item(item(r, "meta"), "paginate"), "current_page"), "2");
    assert_int_equal(num(cJSON_GetArrayItem(item(r, "lista"), 0), "codigo"), codes[1]);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"total_registros\":2,\"pagina\":\"3\",\"is_descending\":false}", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 1);
    assert_int_equal(num(cJSON_GetArrayItem(item(r, "lista"), 0), "codigo"), codes[3]);
    assert_int_equal(num(item(item(r, "meta"), "paginate"), "last_page"), 3);
    cJSON_Delete(r);
    r = listagem(p, "?total_registros=5000", NULL, &st);
    assert_int_equal(num(item(item(r, "meta"), "paginate"), "per_page"), 1000);
    cJSON_Delete(r);
    /* filters */
    char body[200];
    snprintf(body, sizeof body, "{\"filtro_body\":{\"codigo\":%ld}}", codes[0]);
    r = listagem(p, "", body, &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 1);
    assert_string_equal(str(cJSON_GetArrayItem(item(r, "lista"), 0), "descricao"), "d1");
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"cliente_token\":\"BBB222\"}}", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 2);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"status\":\"Atendendo\"}}", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 1);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"status\":1}}", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 4);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"status\":\"nope\"}}", &st);
    assert_int_equal(st, 400);
    cJSON_Delete(r);
    /* optional: finalizar (only "Atendendo" unless finalize_any), acompanhamento */
    snprintf(body, sizeof body, "{\"chamado_codigo\":%ld,\"chamado_servico_realizado\":\"ok\"}", codes[0]);
    assert_int_equal(simproc_request(p, "PUT", "/api/chamado/finalizar", M_AUTH, body, &st, &text, NULL), 0);
    assert_int_equal(st, 400);
    free(text);
    assert_int_equal(simproc_request(p, "PUT", "/api/chamado/finalizar", M_AUTH, "{\"chamado_codigo\":50}", &st, &text, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(codigo_of(text), 50);
    free(text);
    assert_int_equal(simproc_faults(p, "{\"finalize_any\":true}"), 0);
    assert_int_equal(simproc_request(p, "PUT", "/api/chamado/finalizar", M_AUTH, body, &st, &text, NULL), 0);
    assert_int_equal(st, 200);
    assert_int_equal(codigo_of(text), codes[0]);
    free(text);
    assert_int_equal(simproc_request(p, "PUT", "/api/chamado/finalizar", M_AUTH, body, &st, NULL, NULL), 0);
    assert_int_equal(st, 400); /* already finished */
    assert_int_equal(simproc_request(p, "PUT", "/api/chamado/finalizar", M_AUTH, "{\"chamado_codigo\":9999}", &st, NULL, NULL), 0);
    assert_int_equal(st, 404);
    r = listagem(p, "", "{\"filtro_body\":{\"status\":4}}", &st);
    assert_int_equal(cJSON_GetArraySize(item(r, "lista")), 2);
    assert_string_equal(str(cJSON_GetArrayItem(item(r, "lista"), 0), "status"), "Finalizado");
    assert_non_null(str(cJSON_GetArrayItem(item(r, "lista"), 0), "data_solucao"));
    cJSON_Delete(r);
    snprintf(body, sizeof body, "{\"acompanhamento_ticket\":%ld,\"acompanhamento_descricao\":\"visto\","
                                "\"acompanhamento_privado\":false,\"atendimento_total_horas\":\"01:30\"}", codes[1]);
    assert_int_equal(simproc_request(p, "POST", "/api/chamado/acompanhamento/criar", M_AUTH, body, &st, &text, NULL), 0);
    assert_int_equal(st, 204);
    assert_string_equal(text, "");
    free(text);
    const char *bad_acomp[] = {"{\"acompanhamento_ticket\":9999,\"acompanhamento_descricao\":\"x\"}",
                               "{\"acompanhamento_descricao\":\"x\"}",
                               "{\"acompanhamento_ticket\":50}",
                               "{\"acompanhamento_ticket\":50,\"acompanhamento_descricao\":\"x\",\"atendimento_total_horas\":\"1h\"}", NULL};
    const long bad_status[] = {404, 400, 400, 400};
    for (int i = 0; bad_acomp[i]; i++) {
        assert_int_equal(simproc_request(p, "POST", "/api/chamado/acompanhamento/criar", M_AUTH, bad_acomp[i], &st, NULL, NULL), 0);
        assert_int_equal(st, bad_status[i]);
    }
    char path[64];
    snprintf(path, sizeof path, "/api/chamado/acompanhamento/%ld", codes[1]);
    r = simproc_request_json(p, "GET", path, M_AUTH, NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(num(r, "status_code"), 200);
    assert_string_equal(str(cJSON_GetArrayItem(item(r, "retorno"), 0), "descricao"), "visto");
    cJSON_Delete(r);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- both ------------------------------------------------------------------------------------ */

static void test_bounded_and_malformed_bodies(void **state)
{
    (void)state;
    size_t big = 4u * 1024u * 1024u + 16u;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    huge[big] = '\0';
    const struct {
        const char *bin, *path, *key;
        const char *const *auth;
    } t[] = {{"ploomes-sim", "/Contacts", "value", P_AUTH}, {"milvus-sim", "/api/cliente/criar", "message", M_AUTH}};
    for (int k = 0; k < 2; k++) {
        simproc *p = start_sim(t[k].bin);
        long st;
        char *text = NULL;
        assert_int_equal(simproc_request(p, "POST", t[k].path, t[k].auth, huge, &st, &text, NULL), 0);
        assert_int_equal(st, 413);
        free(text);
        const char *bad[] = {"{", "{\"a\":}", "nul", "{\"a\":\"\xff\xfe\"", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", NULL};
        for (int i = 0; bad[i]; i++) {
            cJSON *r = simproc_request_json(p, "POST", t[k].path, t[k].auth, bad[i], &st);
            assert_int_equal(st, 400);
            assert_non_null(str(r, t[k].key));
            cJSON_Delete(r);
        }
        assert_int_equal(simproc_stop(p), 0);
    }
    free(huge);
}

/* 8 threads, each creating and reading on both simulators at once. */
#define THREADS 8
#define ROUNDS 25

typedef struct worker {
    simproc *ploomes, *milvus;
    int index;
    int failures;
    char first_failure[200];
    long contact_ids[ROUNDS], client_ids[ROUNDS], codigos[ROUNDS];
    char tokens[ROUNDS][8];
} worker;

static void wfail(worker *w, const char *what, long status)
{
    if (!w->failures++)
        snprintf(w->first_failure, sizeof w->first_failure, "thread %d: %s (%ld)", w->index, what, status);
}

static void *hammer(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        long st = 0;
        char body[256], path[128], *text = NULL;
        snprintf(body, sizeof body, "{\"Name\":\"T%d-%d\",\"TypeId\":1,\"Tags\":[{\"TagId\":%d}]}", w->index, i, w->index);
        cJSON *r = simproc_request_json(w->ploomes, "POST", "/Contacts", P_AUTH, body, &st);
        const cJSON *c = cJSON_GetArrayItem(item(r, "value"), 0);
        if (st != 200 || !cJSON_IsNumber(item(c, "Id")))
            wfail(w, "POST /Contacts", st);
        else
            w->contact_ids[i] = (long)item(c, "Id")->valuedouble;
        cJSON_Delete(r);
        snprintf(path, sizeof path, "/Contacts(%ld)", w->contact_ids[i]);
        if (simproc_request(w->ploomes, "PATCH", path, P_AUTH, "{\"Note\":\"p\"}", &st, NULL, NULL) || st != 200)
            wfail(w, "PATCH /Contacts", st);
        snprintf(path, sizeof path, "/Contacts?$filter=Tags/any(t:%%20t/TagId%%20eq%%20%d)&$select=Id", w->index);
        r = simproc_request_json(w->ploomes, "GET", path, P_AUTH, NULL, &st);
        if (st != 200 || cJSON_GetArraySize(item(r, "value")) != i + 1)
            wfail(w, "GET own contacts", st);
        cJSON_Delete(r);

        char cpf[12];
        testenv_make_cpf("", 300000000L + w->index * 1000L + i, cpf);
        snprintf(body, sizeof body, "{\"cliente_documento\":\"%s\",\"cliente_pessoa_fisica\":{\"nome\":\"W%d-%d\"}}", cpf, w->index, i);
        if (simproc_request(w->milvus, "POST", "/api/cliente/criar", M_AUTH, body, &st, &text, NULL) || st != 200)
            wfail(w, "POST /cliente/criar", st);
        else
            w->client_ids[i] = strtol(text, NULL, 10);
        free(text);
        text = NULL;
        snprintf(path, sizeof path, "/api/cliente/busca?documento=%s", cpf);
        r = simproc_request_json(w->milvus, "GET", path, M_AUTH, NULL, &st);
        const char *tok = str(cJSON_GetArrayItem(item(r, "lista"), 0), "token");
        if (st != 200 || cJSON_GetArraySize(item(r, "lista")) != 1 || !tok)
            wfail(w, "GET /cliente/busca", st);
        else
            snprintf(w->tokens[i], sizeof w->tokens[i], "%s", tok);
        cJSON_Delete(r);
        snprintf(body, sizeof body, "{\"cliente_id\":\"%s\",\"chamado_assunto\":\"a%d\"}", w->tokens[i], i);
        if (simproc_request(w->milvus, "POST", "/api/chamado/criar", M_AUTH, body, &st, &text, NULL) || st != 200)
            wfail(w, "POST /chamado/criar", st);
        else
            w->codigos[i] = strtol(text, NULL, 10);
        free(text);
        text = NULL;
        /* one document raced by every thread: created once, a duplicate for all the others */
        if (simproc_request(w->milvus, "POST", "/api/cliente/criar", M_AUTH,
                            "{\"cliente_documento\":\"52998224725\",\"cliente_pessoa_fisica\":{\"nome\":\"dup\"}}",
                            &st, NULL, NULL) || (st != 200 && st != 409))
            wfail(w, "duplicate /cliente/criar", st);
    }
    return NULL;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static void assert_unique(long *v, size_t n, const char *what)
{
    qsort(v, n, sizeof *v, cmp_long);
    for (size_t i = 0; i < n; i++) {
        if (v[i] <= 0)
            fail_msg("%s: missing value", what);
        if (i && v[i] == v[i - 1])
            fail_msg("%s: %ld handed out twice", what, v[i]);
    }
}

static void test_concurrent_clients(void **state)
{
    (void)state;
    simproc *ploomes = start_sim("ploomes-sim");
    simproc *milvus = start_sim("milvus-sim");
    worker *ws = calloc(THREADS, sizeof *ws);
    assert_non_null(ws);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ws[i].ploomes = ploomes;
        ws[i].milvus = milvus;
        ws[i].index = i + 1;
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &ws[i]), 0);
    }
    /* the admin API keeps answering while they run */
    for (int i = 0; i < 5; i++) {
        cJSON *s = simproc_stats(ploomes);
        assert_non_null(s);
        cJSON_Delete(s);
    }
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    long ids[THREADS * ROUNDS], cids[THREADS * ROUNDS], cods[THREADS * ROUNDS];
    for (int i = 0; i < THREADS; i++) {
        if (ws[i].failures)
            fail_msg("%d failures; first: %s", ws[i].failures, ws[i].first_failure);
        memcpy(ids + i * ROUNDS, ws[i].contact_ids, sizeof ws[i].contact_ids);
        memcpy(cids + i * ROUNDS, ws[i].client_ids, sizeof ws[i].client_ids);
        memcpy(cods + i * ROUNDS, ws[i].codigos, sizeof ws[i].codigos);
    }
    assert_unique(ids, THREADS * ROUNDS, "Contacts Id");
    assert_unique(cids, THREADS * ROUNDS, "cliente id");
    assert_unique(cods, THREADS * ROUNDS, "chamado codigo");
    assert_int_equal(cods[THREADS * ROUNDS - 1] - cods[0], THREADS * ROUNDS - 1); /* sequential */
    /* every stored LastUpdateDate distinct (strictly increasing stamps), tokens distinct */
    cJSON *s = simproc_state(ploomes);
    const cJSON *contacts = item(s, "Contacts");
    assert_int_equal(cJSON_GetArraySize(contacts), THREADS * ROUNDS);
    const char *dates[THREADS * ROUNDS];
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, contacts)
    {
        dates[n] = str(c, "LastUpdateDate");
        assert_ploomes_date(dates[n]);
        n++;
    }
    assert_distinct(dates, (size_t)n, "LastUpdateDate");
    cJSON_Delete(s);
    s = simproc_state(milvus);
    assert_int_equal(cJSON_GetArraySize(item(s, "clientes")), THREADS * ROUNDS + 1);
    assert_int_equal(cJSON_GetArraySize(item(s, "chamados")), THREADS * ROUNDS);
    const char *toks[THREADS * ROUNDS + 1];
    n = 0;
    cJSON_ArrayForEach(c, item(s, "clientes")) toks[n++] = str(c, "token");
    assert_distinct(toks, (size_t)n, "token");
    cJSON_Delete(s);
    free(ws);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ploomes_auth_and_errors),
        cmocka_unit_test(test_ploomes_paging),
        cmocka_unit_test(test_ploomes_filters),
        cmocka_unit_test(test_ploomes_select_expand),
        cmocka_unit_test(test_ploomes_writes),
        cmocka_unit_test(test_ploomes_rate_limit_and_bursts),
        cmocka_unit_test(test_milvus_clients),
        cmocka_unit_test(test_milvus_busca_paging_and_tokens),
        cmocka_unit_test(test_milvus_tickets),
        cmocka_unit_test(test_bounded_and_malformed_bodies),
        cmocka_unit_test(test_concurrent_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
