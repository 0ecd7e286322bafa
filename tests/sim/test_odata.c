/* Unit tests of the simulator's OData subset (sim/odata.c) and date parsing (sim/simtime.c):
 * tables of filter -> matching ids (or a parse / evaluation error), $orderby, $select/$expand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "odata.h"
#include "simtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *DATA =
    "["
    "{\"Id\":1,\"Name\":\"ACME O'Brien\",\"LastUpdateDate\":\"2024-01-01T10:00:00-03:00\","
    " \"Finished\":true,\"Tags\":[{\"TagId\":10}],\"CityId\":7,\"Extra\":5},"
    "{\"Id\":2,\"Name\":\"Beta\",\"LastUpdateDate\":\"2024-01-01T13:00:00.0000001Z\","
    " \"Finished\":false,\"Tags\":[{\"TagId\":11},{\"TagId\":10}]},"
    "{\"Id\":3,\"Name\":\"gamma\",\"LastUpdateDate\":\"2024-01-01T13:00:00+00:00\","
    " \"Finished\":null,\"Tags\":[]},"
    "{\"Id\":4,\"Name\":null,\"LastUpdateDate\":\"2023-12-31T23:59:59.999-03:00\"}"
    "]";

static cJSON *records;
static cJSON *city7;

static odata_type field_type(void *ctx, const char *name)
{
    (void)ctx;
    static const struct {
        const char *n;
        odata_type t;
    } f[] = {{"Id", ODATA_INT},     {"Name", ODATA_STR}, {"LastUpdateDate", ODATA_DATE},
             {"Finished", ODATA_BOOL}, {"CityId", ODATA_INT}, {"Tags", ODATA_NAV},
             {"City", ODATA_NAV},   {"Extra", ODATA_ANY}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (strcmp(f[i].n, name) == 0)
            return f[i].t;
    return ODATA_UNKNOWN;
}

static const cJSON *member(void *ctx, const cJSON *rec, const char *name, cJSON **owned)
{
    (void)ctx;
    *owned = NULL;
    if (strcmp(name, "City") == 0) {
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(rec, "CityId");
        return cJSON_IsNumber(cid) && cid->valuedouble == 7 ? city7 : NULL;
    }
    return cJSON_GetObjectItemCaseSensitive(rec, name);
}

/* Declared types below the record: City is {Id, Name}, Tags rows are {TagId}. */
static odata_type path_type(void *ctx, const char *const *path, size_t n)
{
    (void)ctx;
    if (n == 2 && strcmp(path[0], "City") == 0)
        return strcmp(path[1], "Id") == 0 ? ODATA_INT : strcmp(path[1], "Name") == 0 ? ODATA_STR : ODATA_UNKNOWN;
    if (n == 2 && strcmp(path[0], "Tags") == 0)
        return strcmp(path[1], "TagId") == 0 ? ODATA_INT : ODATA_UNKNOWN;
    return n == 1 ? field_type(NULL, path[0]) : ODATA_UNKNOWN;
}

static const odata_schema SCHEMA = {field_type, member, NULL, NULL, NULL, false};
static const odata_schema SCHEMA_CI = {field_type, member, NULL, NULL, NULL, true};
static const odata_schema SCHEMA_TYPED = {field_type, member, NULL, path_type, NULL, false};
static const odata_schema *schema_in_use = &SCHEMA;

static int setup(void **state)
{
    (void)state;
    records = cJSON_Parse(DATA);
    city7 = cJSON_Parse("{\"Id\":7,\"Name\":\"SP\"}");
    return records && city7 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(records);
    cJSON_Delete(city7);
    return 0;
}

/* "1,3" for matches, "ERR" for a parse error, "EVAL" for an evaluation error. */
static void run_filter(const char *filter, char *out, size_t size)
{
    char err[300];
    odata_expr *e = odata_filter_parse(filter, schema_in_use, err, sizeof err);
    if (!e) {
        assert_true(err[0] != '\0');
        snprintf(out, size, "ERR");
        return;
    }
    out[0] = '\0';
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records)
    {
        bool m = false;
        if (odata_filter_eval(e, rec, schema_in_use, &m, err, sizeof err) < 0) {
            snprintf(out, size, "EVAL");
            odata_filter_free(e);
            return;
        }
        if (m) {
            size_t n = strlen(out);
            snprintf(out + n, size - n, "%s%d", n ? "," : "",
                     cJSON_GetObjectItemCaseSensitive(rec, "Id")->valueint);
        }
    }
    odata_filter_free(e);
}

static void test_filter_table(void **state)
{
    (void)state;
    static const struct {
        const char *filter, *expect;
    } cases[] = {
        {"Id eq 1", "1"},
        {"Id ne 1", "2,3,4"},
        {"Id gt 2", "3,4"},
        {"Id ge 2", "2,3,4"},
        {"Id lt 2", "1"},
        {"Id le 2", "1,2"},
        {"2 lt Id", "3,4"},
        {"Id eq -5", ""},
        {"Id eq 1 or Id eq 3", "1,3"},
        {"Id gt 1 and Id lt 4", "2,3"},
        {"(Id eq 1 or Id eq 2) and Finished eq false", "2"},
        {"Id eq 1 or (Id eq 2 and Finished eq true)", "1"},
        {"Id eq 1 or Id eq 2 and Finished eq true", "1"},
        {"not (Id eq 1)", "2,3,4"},
        {"Name eq 'ACME O''Brien'", "1"},
        {"Name eq 'acme o''brien'", ""},
        {"Name eq null", "4"},
        {"Name ne null", "1,2,3"},
        {"Finished eq null", "3,4"},
        {"Finished", "1"},
        {"Finished eq true", "1"},
        {"contains(Name,'et')", "2"},
        {"contains(Name,'acme')", ""}, /* case-sensitive like eq unless the schema says */
        {"contains(Name,'ACME')", "1"},
        {"contains(Name,'''')", "1"},
        {"startswith(Name,'Gam')", ""},
        {"startswith(Name,'gam')", "3"},
        {"endswith(Name,'ta')", "2"},
        {"LastUpdateDate eq 2024-01-01T10:00:00-03:00", "1,3"},
        {"LastUpdateDate eq 2024-01-01T13:00:00Z", "1,3"},
        {"LastUpdateDate eq 2024-01-01T16:00:00.000+03:00", "1,3"},
        {"LastUpdateDate gt 2024-01-01T13:00:00Z", "2"},
        {"LastUpdateDate gt 2024-01-01T10:00:00.000000000-03:00", "2"},
        {"LastUpdateDate lt 2024-01-01T00:00:00-03:00", "4"},
        {"LastUpdateDate le 2023-12-31T23:59:59.999-03:00", "4"},
        {"LastUpdateDate lt 2023-12-31T23:59:59.99899-03:00", ""},
        {"LastUpdateDate gt 2024-01-01T10:00:00-03:00 or (LastUpdateDate eq 2024-01-01T10:00:00-03:00 and Id gt 1)", "2,3"},
        {"Tags/any(t: t/TagId eq 10)", "1,2"},
        {"Tags/any(t:t/TagId eq 11)", "2"},
        {"Tags/any(x: x/TagId eq 10 and x/TagId ne 11)", "1,2"},
        {"Tags/any()", "1,2"},
        {"Tags/all(t: t/TagId eq 10)", "1,3,4"},
        {"City/Id eq 7", "1"},
        {"City/Name eq 'SP'", "1"},
        {"Id eq 99999999999999999999999999999", ""},
        {"Extra eq 5", "1"},
        /* parse errors: 400, never a wrong result */
        {"", "ERR"},
        {"Foo eq 1", "ERR"},
        {"Id eq 'x'", "ERR"},
        {"Name eq 5", "ERR"},
        {"Finished eq 1", "ERR"},
        {"LastUpdateDate gt '2024-01-01'", "ERR"},
        {"LastUpdateDate gt 2024-01-01T00:00:00 00:00", "ERR"}, /* '+' decoded as a space */
        {"LastUpdateDate gt 2024-01-01T00:00:00", "ERR"},
        {"LastUpdateDate gt 2024-01-01", "ERR"},
        {"LastUpdateDate gt 2024-13-01T00:00:00Z", "ERR"},
        {"LastUpdateDate gt 2024-01-01T00:00:00.Z", "ERR"},
        {"Id eq", "ERR"},
        {"Id eq 1 and", "ERR"},
        {"(Id eq 1", "ERR"},
        {"Id eq 1)", "ERR"},
        {"Name eq 'unterminated", "ERR"},
        {"Id in (1,2)", "ERR"},
        {"substringof('a',Name)", "ERR"},
        {"Id gt null", "ERR"},
        {"Id eq 1e999", "ERR"},
        {"City eq 1", "ERR"},
        {"Id/Foo eq 1", "ERR"},
        {"Tags/any(t: t/TagId eq 10", "ERR"},
        {"Tags/any(t t/TagId eq 10)", "ERR"},
        {"Id eq 5and", "ERR"},
        {"Id EQ 1", "ERR"},
        {"Id eq 1 xor Id eq 2", "ERR"},
        {"contains(Id,'1')", "ERR"},
        {"1 eq 1", "ERR"},
        {"Id eq #", "ERR"},
        /* evaluation error: an undeclared field holding a number compared with a string */
        {"Extra eq 'x'", "EVAL"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[128];
        run_filter(cases[i].filter, got, sizeof got);
        if (strcmp(got, cases[i].expect) != 0) {
            fprintf(stderr, "filter [%s]: expected [%s], got [%s]\n", cases[i].filter, cases[i].expect, got);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Issue 9 items 6 and 20: with the schema's path types, unknown fields inside lambdas and
 * navigation paths are parse errors (400), not empty results; literals are type-checked there
 * too. Case: eq and the string functions agree, both ways. */
static void test_filter_paths_and_case(void **state)
{
    (void)state;
    static const struct {
        const odata_schema *schema;
        const char *filter, *expect;
    } cases[] = {
        {&SCHEMA_TYPED, "Tags/any(t: t/TagId eq 10)", "1,2"},
        {&SCHEMA_TYPED, "Tags/any(t: t/TagID eq 10)", "ERR"},
        {&SCHEMA_TYPED, "Tags/any(t: t/TagId eq '10')", "ERR"},
        {&SCHEMA_TYPED, "Tags/any(t: t/Tag/Name eq 'x')", "ERR"},
        {&SCHEMA_TYPED, "City/Id eq 7", "1"},
        {&SCHEMA_TYPED, "City/Name eq 'SP'", "1"},
        {&SCHEMA_TYPED, "City/Bogus eq 1", "ERR"},
        {&SCHEMA_TYPED, "City/Id eq 'x'", "ERR"},
        {&SCHEMA_TYPED, "Id/Foo eq 1", "ERR"},
        {&SCHEMA_TYPED, "Name/any(n: n eq 'x')", "ERR"},
        {&SCHEMA, "Tags/any(t: t/TagID eq 10)", ""}, /* without path types: unchecked */
        {&SCHEMA_CI, "Name eq 'acme o''brien'", "1"},
        {&SCHEMA_CI, "contains(Name,'acme')", "1"},
        {&SCHEMA_CI, "startswith(Name,'Gam')", "3"},
        {&SCHEMA_CI, "endswith(Name,'TA')", "2"},
        {&SCHEMA, "Name eq 'acme o''brien'", ""},
        {&SCHEMA, "endswith(Name,'TA')", ""},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[128];
        schema_in_use = cases[i].schema;
        run_filter(cases[i].filter, got, sizeof got);
        schema_in_use = &SCHEMA;
        if (strcmp(got, cases[i].expect) != 0) {
            fprintf(stderr, "filter [%s]: expected [%s], got [%s]\n", cases[i].filter, cases[i].expect, got);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

static void test_filter_nesting_limits(void **state)
{
    (void)state;
    char buf[4096];
    char got[64];
    /* 50 levels are fine */
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        buf[n++] = '(';
    n += (size_t)snprintf(buf + n, sizeof buf - n, "Id eq 1");
    for (int i = 0; i < 50; i++)
        buf[n++] = ')';
    buf[n] = '\0';
    run_filter(buf, got, sizeof got);
    assert_string_equal(got, "1");
    /* 1000 levels are a clean error, not a stack overflow */
    n = 0;
    for (int i = 0; i < 1000; i++)
        buf[n++] = '(';
    buf[n] = '\0';
    run_filter(buf, got, sizeof got);
    assert_string_equal(got, "ERR");
    n = 0;
    for (int i = 0; i < 1000 && n + 5 < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "not ");
    snprintf(buf + n, sizeof buf - n, "Finished");
    run_filter(buf, got, sizeof got);
    assert_string_equal(got, "ERR");
}

static void sorted_ids(const char *orderby, char *out, size_t size)
{
    char err[200];
    odata_orderby ob;
    if (odata_orderby_parse(orderby, &SCHEMA, &ob, err, sizeof err) < 0) {
        snprintf(out, size, "ERR");
        return;
    }
    const cJSON *rows[4];
    int n = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, records) rows[n++] = rec;
    /* insertion sort with the same comparison the simulator uses, ties by Id */
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0; j--) {
            int c = 0;
            for (size_t k = 0; k < ob.n && !c; k++) {
                c = odata_compare_values(cJSON_GetObjectItemCaseSensitive(rows[j - 1], ob.keys[k].field),
                                         cJSON_GetObjectItemCaseSensitive(rows[j], ob.keys[k].field));
                if (ob.keys[k].desc)
                    c = -c;
            }
            if (!c)
                c = cJSON_GetObjectItemCaseSensitive(rows[j - 1], "Id")->valueint -
                    cJSON_GetObjectItemCaseSensitive(rows[j], "Id")->valueint;
            if (c <= 0)
                break;
            const cJSON *t = rows[j];
            rows[j] = rows[j - 1];
            rows[j - 1] = t;
        }
    }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(out);
        snprintf(out + l, size - l, "%s%d", i ? "," : "", cJSON_GetObjectItemCaseSensitive(rows[i], "Id")->valueint);
    }
    odata_orderby_free(&ob);
}

static void test_orderby(void **state)
{
    (void)state;
    static const struct {
        const char *ob, *expect;
    } cases[] = {
        {"LastUpdateDate,Id", "4,1,3,2"},
        {"LastUpdateDate asc, Id desc", "4,3,1,2"},
        {"LastUpdateDate desc", "2,1,3,4"},
        {"Name desc", "3,2,1,4"},
        {"Name", "4,1,2,3"},
        {"Id desc", "4,3,2,1"},
        {"Foo", "ERR"},
        {"Id sideways", "ERR"},
        {"Tags", "ERR"},
        {"City/Name", "ERR"},
        {"", "ERR"},
        {"Id,", "ERR"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[64];
        sorted_ids(cases[i].ob, got, sizeof got);
        if (strcmp(got, cases[i].expect) != 0)
            fprintf(stderr, "orderby [%s]: expected [%s], got [%s]\n", cases[i].ob, cases[i].expect, got);
        assert_string_equal(got, cases[i].expect);
    }
}

static void test_lists(void **state)
{
    (void)state;
    char err[200];
    odata_list l;
    assert_int_equal(odata_list_parse("Tags($select=Tag;$expand=Tag),Phones, City", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[0], "Tags");
    assert_string_equal(l.names[1], "Phones");
    assert_string_equal(l.names[2], "City");
    assert_true(odata_list_has(&l, "City"));
    assert_false(odata_list_has(&l, "State"));
    odata_list_free(&l);
    assert_int_equal(odata_list_parse("Contact($expand=OtherProperties,Owner($select=Id,Name)),Type", &l, err, sizeof err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.names[0], "Contact");
    assert_string_equal(l.names[1], "Type");
    odata_list_free(&l);
    assert_int_equal(odata_list_parse("*", &l, err, sizeof err), 0);
    odata_list_free(&l);
    const char *bad[] = {"", ",A", "A,", "A(", "A(()", "A B", "1A", "A/", NULL};
    for (int i = 0; bad[i]; i++) {
        if (odata_list_parse(bad[i], &l, err, sizeof err) == 0) {
            fprintf(stderr, "list [%s] should fail\n", bad[i]);
            odata_list_free(&l);
            fail();
        }
    }
}

static void test_time(void **state)
{
    (void)state;
    simtime_instant a, b;
    const char *s1 = "2022-12-15T14:59:45.13-03:00";
    const char *s2 = "2022-12-15T17:59:45.130000000Z";
    assert_true(simtime_parse_iso(s1, strlen(s1), &a));
    assert_true(simtime_parse_iso(s2, strlen(s2), &b));
    assert_int_equal(simtime_cmp(a, b), 0);
    const char *s3 = "2022-12-15T17:59:45.1300000001Z"; /* beyond ns: ignored */
    assert_true(simtime_parse_iso(s3, strlen(s3), &b));
    assert_int_equal(simtime_cmp(a, b), 0);
    const char *bad[] = {"2022-12-15T14:59:45", "2022-12-15 14:59:45Z", "2022-02-30T00:00:00Z",
                         "2022-12-15T24:00:00Z", "2022-12-15T14:59:45+0300", "2022-12-15T14:59:45.-03:00",
                         "2022-12-15T14:59:45Zjunk", "", NULL};
    for (int i = 0; bad[i]; i++)
        assert_false(simtime_parse_iso(bad[i], strlen(bad[i]), &a));
    const char *leap = "2024-02-29T00:00:00Z";
    assert_true(simtime_parse_iso(leap, strlen(leap), &a));
    assert_int_equal(a.sec, 1709164800);
    char buf[40];
    simtime_format_ploomes(1709164800123LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-28T21:00:00.123-03:00");
    simtime_format_ploomes_ticks(17091648001234567LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-28T21:00:00.1234567-03:00");
    simtime_format_ploomes_ticks(17091648001300000LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-28T21:00:00.13-03:00"); /* like the Fretadao fixture */
    simtime_format_ploomes_ticks(17091648000000000LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-28T21:00:00-03:00");
    simtime_format_ploomes_ticks(-1LL, buf, sizeof buf);
    assert_string_equal(buf, "1969-12-31T20:59:59.9999999-03:00");
    simtime_format_milvus(1709164800123LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-02-28 21:00:00");
}

/* odata_filter_int_eq: which filters pin Id to one integer, and whether that comparison is
 * evaluated first ("5" leading, "5 late", "-" not pinned, "ERR" parse error). Where Id is
 * pinned to N, the records the filter matches (the whole table) are at most record N. */
static void test_filter_int_eq(void **state)
{
    (void)state;
    static const struct {
        const char *filter, *want;
    } cases[] = {
        {"Id eq 2", "2"},
        {"(Id eq 2)", "2"},
        {"((Id eq 2))", "2"},
        {"2 eq Id", "2"},
        {"Id eq 2 and Name eq 'Beta'", "2"},
        {"Id eq 2 and Name eq 'x'", "2"},
        {"(Id eq 2) and Finished eq false and Tags/any()", "2"},
        {"Id eq 2 and (Name eq 'Beta' and Finished eq false)", "2"},
        {"Name eq 'Beta' and Id eq 2", "2 late"},
        {"Name ne 'x' and (Finished eq false and Id eq 2)", "2 late"},
        {"Id eq 2 and Id eq 3", "2"},
        {"Id eq -7", "-7"},
        {"Id eq 2.0", "2"},
        {"Id eq 9007199254740991", "9007199254740991"},
        /* not pinned */
        {"Id eq 2 or Name eq 'gamma'", "-"},
        {"(Id eq 2 or Id eq 3) and Id eq 2", "2 late"},
        {"(Id eq 2 or Id eq 3) and Name ne 'x'", "-"},
        {"not (Id eq 2)", "-"},
        {"not Id eq 2", "-"},
        {"Id ne 2", "-"},
        {"Id ge 2 and Id le 2", "-"},
        {"Id eq 2.5", "-"},
        {"Id eq 9007199254740992", "-"},
        {"Id eq 1e300", "-"},
        {"Id eq null", "-"},
        {"Id eq CityId", "-"},
        {"CityId eq 7", "-"},
        {"City/Id eq 7", "-"},
        {"Tags/any(t: t/TagId eq 10)", "-"},
        {"Name eq 'Beta'", "-"},
        {"Id eq 'x'", "ERR"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[300], got[64];
        odata_expr *e = odata_filter_parse(cases[i].filter, &SCHEMA_TYPED, err, sizeof err);
        int64_t id = 0;
        bool leading = false;
        if (!e)
            snprintf(got, sizeof got, "ERR");
        else if (!odata_filter_int_eq(e, "Id", &id, &leading))
            snprintf(got, sizeof got, "-");
        else
            snprintf(got, sizeof got, "%lld%s", (long long)id, leading ? "" : " late");
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("%s: got '%s', want '%s'", cases[i].filter, got, cases[i].want);
        if (e && strcmp(got, "-") != 0) {
            assert_false(odata_filter_int_eq(e, "CityId", NULL, NULL)); /* another field */
            assert_true(odata_filter_int_eq(e, "Id", NULL, NULL));      /* NULL outputs */
            char matched[64], pinned[32];
            schema_in_use = &SCHEMA_TYPED;
            run_filter(cases[i].filter, matched, sizeof matched);
            schema_in_use = &SCHEMA;
            snprintf(pinned, sizeof pinned, "%lld", (long long)id);
            if (matched[0] && strcmp(matched, pinned) != 0)
                fail_msg("%s: matches %s, not only %s", cases[i].filter, matched, pinned);
        }
        odata_filter_free(e);
    }
    assert_false(odata_filter_int_eq(NULL, "Id", NULL, NULL));
}

/* odata_sortkey_compare answers exactly what odata_compare_values answers, for every pair of
 * a mix of missing, null, booleans, numbers, dates in several offsets, invalid dates and plain
 * strings (ploomes-sim sorts with the prepared keys: the same answers give the same order). */
static void test_sortkey_matches_compare(void **state)
{
    (void)state;
    cJSON *vals = cJSON_Parse("[null, true, false, 0, -1.5, 2, 2.0, 1e10, \"\", \"a\", \"B\", \"b\","
                              " \"2024-01-01T10:00:00-03:00\", \"2024-01-01T13:00:00Z\","
                              " \"2024-01-01T13:00:00.0000001+00:00\", \"2023-12-31T23:59:59.999-03:00\","
                              " \"2024-01-01T10:00:00\", \"2024-13-01T00:00:00Z\", \"2024\", {\"x\":1}, [1]]");
    assert_non_null(vals);
    int n = cJSON_GetArraySize(vals) + 1; /* + a missing value (NULL) */
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            const cJSON *a = i < n - 1 ? cJSON_GetArrayItem(vals, i) : NULL;
            const cJSON *b = j < n - 1 ? cJSON_GetArrayItem(vals, j) : NULL;
            odata_sortkey ka, kb;
            odata_sortkey_make(a, &ka);
            odata_sortkey_make(b, &kb);
            int want = odata_compare_values(a, b), got = odata_sortkey_compare(&ka, &kb);
            if ((want > 0) - (want < 0) != (got > 0) - (got < 0))
                fail_msg("pair %d,%d: compare_values %d, sortkey %d", i, j, want, got);
        }
    }
    cJSON_Delete(vals);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_table), cmocka_unit_test(test_filter_paths_and_case),
        cmocka_unit_test(test_filter_nesting_limits),
        cmocka_unit_test(test_orderby),      cmocka_unit_test(test_lists),
        cmocka_unit_test(test_time),         cmocka_unit_test(test_filter_int_eq),
        cmocka_unit_test(test_sortkey_matches_compare),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
