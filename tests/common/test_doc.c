/* doc_: CPF/CNPJ normalisation + check digits, Milvus padding, masks, CEP. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "doc.h"

typedef struct {
    const char *input;
    doc_kind_t kind;
    const char *normal; /* expected out ("" when none); NULL = don't check */
} doc_case_t;

static const doc_case_t PARSE_CASES[] = {
    /* valid CPF, reference examples, masked and bare */
    {"529.982.247-25", DOC_CPF, "52998224725"},
    {"52998224725", DOC_CPF, "52998224725"},
    {"111.444.777-35", DOC_CPF, "11144477735"},
    {"123.456.789-09", DOC_CPF, "12345678909"},
    {" 529 982 247 25 ", DOC_CPF, "52998224725"},
    {"012.345.678-90", DOC_CPF, "01234567890"},
    {"529.982.247-25\n", DOC_CPF, "52998224725"},
    /* valid CNPJ, numeric and alphanumeric */
    {"11.222.333/0001-81", DOC_CNPJ, "11222333000181"},
    {"11222333000181", DOC_CNPJ, "11222333000181"},
    {"00.000.000/0001-91", DOC_CNPJ, "00000000000191"},
    {"12.ABC.345/01DE-35", DOC_CNPJ, "12ABC34501DE35"}, /* official example */
    {"12ABC34501DE35", DOC_CNPJ, "12ABC34501DE35"},
    {"12.abc.345/01de-35", DOC_CNPJ, "12ABC34501DE35"}, /* lowercase accepted */
    {"AB.123.456/0001-10", DOC_CNPJ, "AB123456000110"},
    /* wrong check digits */
    {"529.982.247-26", DOC_INVALID, "52998224726"},
    {"529.982.247-15", DOC_INVALID, "52998224715"},
    {"11.222.333/0001-82", DOC_INVALID, "11222333000182"},
    {"11.222.333/0001-91", DOC_INVALID, "11222333000191"},
    {"12.ABC.345/01DE-36", DOC_INVALID, "12ABC34501DE36"},
    {"12.ABD.345/01DE-35", DOC_INVALID, "12ABD34501DE35"},
    /* all-equal sequences */
    {"111.111.111-11", DOC_INVALID, "11111111111"},
    {"000.000.000-00", DOC_INVALID, "00000000000"},
    {"99999999999", DOC_INVALID, "99999999999"},
    {"00.000.000/0000-00", DOC_INVALID, "00000000000000"},
    {"11111111111111", DOC_INVALID, "11111111111111"},
    /* shape */
    {"5299822472", DOC_INVALID, "5299822472"},       /* too short (10) */
    {"123", DOC_INVALID, "123"},
    {"529.982.247-255", DOC_INVALID, "529982247255"}, /* 12 */
    {"112223330001811", DOC_INVALID, ""},            /* 15: too long, nothing kept */
    {"11222333000181112223330001811122233300018111", DOC_INVALID, ""},
    {"5299822472A", DOC_INVALID, "5299822472A"},     /* CPF with a letter */
    {"12ABC34501DEAB", DOC_INVALID, "12ABC34501DEAB"}, /* letters in DV positions */
    /* forbidden characters: non-ASCII, UTF-8 lookalikes, punctuation */
    {"529.982.247\xe2\x80\x90" "25", DOC_INVALID, ""}, /* U+2010 hyphen */
    {"\xef\xbc\x95\xef\xbc\x92\xef\xbc\x99" "98224725", DOC_INVALID, ""}, /* full-width */
    {"529\xb7" "982\xb7" "247-25", DOC_INVALID, ""}, /* Latin-1 middle dot */
    {"\xff\xfe", DOC_INVALID, ""},
    {"529,982,247-25", DOC_INVALID, ""},
    {"529_982_247_25", DOC_INVALID, ""},
    {"CPF: 52998224725", DOC_INVALID, ""},
    /* nothing */
    {"", DOC_NONE, ""},
    {"  ", DOC_NONE, ""},
    {"..-/ ", DOC_NONE, ""},
    {NULL, DOC_NONE, ""},
};

static void run_cases(const doc_case_t *cases, size_t n,
                      doc_kind_t (*fn)(const char *, char *, const char **), const char *label)
{
    for (size_t i = 0; i < n; i++) {
        char out[DOC_BUF_SIZE];
        memset(out, 'X', sizeof out);
        const char *reason = "unset";
        doc_kind_t k = fn(cases[i].input, out, &reason);
        if (k != cases[i].kind)
            fail_msg("%s case %zu (%s): got %s (%s), want %s", label, i,
                     cases[i].input ? cases[i].input : "NULL", doc_kind_name(k),
                     reason ? reason : "-", doc_kind_name(cases[i].kind));
        assert_non_null(memchr(out, '\0', sizeof out));
        if (cases[i].normal && strcmp(out, cases[i].normal) != 0)
            fail_msg("%s case %zu: out '%s', want '%s'", label, i, out, cases[i].normal);
        if (k == DOC_INVALID)
            assert_true(reason != NULL && reason[0] != '\0');
        else
            assert_null(reason);
    }
}

static void test_parse_table(void **state)
{
    (void)state;
    run_cases(PARSE_CASES, sizeof PARSE_CASES / sizeof PARSE_CASES[0], doc_parse, "parse");
    /* reason may be NULL */
    char out[DOC_BUF_SIZE];
    assert_int_equal(doc_parse("529.982.247-26", out, NULL), DOC_INVALID);
}

static void test_reasons(void **state)
{
    (void)state;
    char out[DOC_BUF_SIZE];
    const char *r;
    doc_parse("529.982.247-26", out, &r);
    assert_string_equal(r, "wrong check digits");
    doc_parse("111.111.111-11", out, &r);
    assert_string_equal(r, "all characters equal");
    doc_parse("52\xc3\xa9", out, &r);
    assert_string_equal(r, "non-ASCII character");
    doc_parse("123", out, &r);
    assert_non_null(strstr(r, "length"));
    doc_parse("112223330001811", out, &r);
    assert_non_null(strstr(r, "too long"));
}

static const doc_case_t MILVUS_CASES[] = {
    {"1234567890", DOC_CPF, "01234567890"},          /* 10 digits → CPF */
    {"123456797", DOC_CPF, "00123456797"},           /* 9 digits → CPF */
    {"1234567800043", DOC_CNPJ, "01234567800043"},   /* 13 digits → CNPJ */
    {"123456700043", DOC_CNPJ, "00123456700043"},    /* 12 digits → CNPJ */
    {"52998224725", DOC_CPF, "52998224725"},
    {"11.222.333/0001-81", DOC_CNPJ, "11222333000181"},
    {"12ABC34501DE35", DOC_CNPJ, "12ABC34501DE35"},
    {"191", DOC_INVALID, "191"},                     /* too much lost: not guessed */
    {"12345678", DOC_INVALID, "12345678"},           /* 8: not padded */
    {"1234567891", DOC_INVALID, "01234567891"},      /* padded, wrong DV */
    {"1ABC34501DE35", DOC_INVALID, "1ABC34501DE35"}, /* letters: never padded */
    {"", DOC_NONE, ""},
    {NULL, DOC_NONE, ""},
};

static void test_milvus_table(void **state)
{
    (void)state;
    run_cases(MILVUS_CASES, sizeof MILVUS_CASES / sizeof MILVUS_CASES[0], doc_from_milvus,
              "milvus");
}

static void test_milvus_json(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        doc_kind_t kind;
        const char *normal;
    } cases[] = {
        {"1234567890", DOC_CPF, "01234567890"},
        {"52998224725", DOC_CPF, "52998224725"},
        {"1234567800043", DOC_CNPJ, "01234567800043"},
        {"11222333000181", DOC_CNPJ, "11222333000181"},
        {"\"00.000.000/0001-91\"", DOC_CNPJ, "00000000000191"},
        {"\"123456700043\"", DOC_CNPJ, "00123456700043"},
        {"\"\"", DOC_NONE, ""},
        {"null", DOC_NONE, ""},
        {"1.5", DOC_INVALID, ""},
        {"-52998224725", DOC_INVALID, ""},
        {"100000000000000", DOC_INVALID, ""},
        {"1e300", DOC_INVALID, ""},
        {"true", DOC_INVALID, ""},
        {"[52998224725]", DOC_INVALID, ""},
        {"{}", DOC_INVALID, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *item = cJSON_Parse(cases[i].json);
        assert_non_null(item);
        char out[DOC_BUF_SIZE];
        const char *reason = NULL;
        doc_kind_t k = doc_from_milvus_json(item, out, &reason);
        cJSON_Delete(item);
        if (k != cases[i].kind || strcmp(out, cases[i].normal) != 0)
            fail_msg("json case %s: got %s '%s'", cases[i].json, doc_kind_name(k), out);
    }
    char out[DOC_BUF_SIZE];
    assert_int_equal(doc_from_milvus_json(NULL, out, NULL), DOC_NONE);
}

static void test_normalize_verify(void **state)
{
    (void)state;
    char out[DOC_BUF_SIZE];
    assert_int_equal(doc_normalize("12.abc.345/01de-35", out), 14);
    assert_string_equal(out, "12ABC34501DE35");
    assert_int_equal(doc_normalize("", out), 0);
    assert_int_equal(doc_normalize("123456789012345", out), -1);
    assert_string_equal(out, "");
    assert_int_equal(doc_normalize("12\xc3\xa9", out), -1);
    assert_int_equal(doc_verify("52998224725", NULL), DOC_CPF);
    assert_int_equal(doc_verify("12ABC34501DE35", NULL), DOC_CNPJ);
    assert_int_equal(doc_verify("12abc34501de35", NULL), DOC_INVALID); /* not normalised */
    assert_int_equal(doc_verify("", NULL), DOC_NONE);
    assert_int_equal(doc_verify("529.982.247-25", NULL), DOC_INVALID);
}

static void test_mask_and_format(void **state)
{
    (void)state;
    static const struct {
        const char *normal, *mask, *format;
    } cases[] = {
        {"52998224725", "***.982.247-**", "529.982.247-25"},
        {"01234567890", "***.345.678-**", "012.345.678-90"},
        {"11222333000181", "**.222.333/****-**", "11.222.333/0001-81"},
        {"12ABC34501DE35", "**.ABC.345/****-**", "12.ABC.345/01DE-35"},
        {"00000000000191", "**.000.000/****-**", "00.000.000/0001-91"},
        {"123", "***", NULL},
        {"", "", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char m[DOC_DISPLAY_SIZE], f[DOC_DISPLAY_SIZE];
        assert_string_equal(doc_mask(cases[i].normal, m, sizeof m), cases[i].mask);
        const char *got = doc_format(cases[i].normal, f, sizeof f);
        if (cases[i].format) {
            assert_non_null(got);
            assert_string_equal(f, cases[i].format);
        } else {
            assert_null(got);
            assert_string_equal(f, "");
        }
    }
    /* The mask never shows the check digits nor the leading part. */
    char m[DOC_DISPLAY_SIZE];
    doc_mask("52998224725", m, sizeof m);
    assert_null(strstr(m, "529"));
    assert_null(strstr(m, "25"));
    /* Bounded output. */
    char small[5];
    doc_mask("52998224725", small, sizeof small);
    assert_string_equal(small, "***.");
    char f[10];
    assert_null(doc_format("11222333000181", f, sizeof f));
    assert_string_equal(f, "");
    assert_null(doc_format("529.982.247", f, sizeof f)); /* not normalised */
    assert_null(doc_format(NULL, f, sizeof f));
    assert_string_equal(doc_mask(NULL, m, sizeof m), "");
    /* Long garbage masks to at most 14 stars. */
    assert_string_equal(doc_mask("ABCDEFGHIJKLMNOPQRST", m, sizeof m), "**************");
}

static void test_cep(void **state)
{
    (void)state;
    static const struct {
        const char *input;
        int rc;
        const char *out;
    } cases[] = {
        {"01310-100", 0, "01310100"},
        {"01310100", 0, "01310100"},
        {"1310100", 0, "01310100"},  /* lost its leading zero */
        {"01.310-100", 0, "01310100"},
        {" 89010-025 ", 0, "89010025"},
        {"99999999", 0, "99999999"},
        {"", 1, ""},
        {" - ", 1, ""},
        {NULL, 1, ""},
        {"131010", -1, ""},          /* 6 digits */
        {"013101000", -1, ""},       /* 9 digits */
        {"00999999", -1, ""},        /* below 01000-000 */
        {"0131O100", -1, ""},        /* letter O */
        {"01310\xe2\x80\x93" "100", -1, ""}, /* en dash */
        {"01310/100", -1, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[DOC_CEP_SIZE];
        int rc = doc_cep_normalize(cases[i].input, out);
        if (rc != cases[i].rc || strcmp(out, cases[i].out) != 0)
            fail_msg("cep case %zu: rc %d out '%s'", i, rc, out);
    }
    static const struct {
        const char *json;
        int rc;
        const char *out;
    } jcases[] = {
        {"1310100", 0, "01310100"}, {"89010025", 0, "89010025"}, {"\"01310-100\"", 0, "01310100"},
        {"null", 1, ""},            {"1310100.5", -1, ""},       {"-1310100", -1, ""},
        {"100000000", -1, ""},      {"true", -1, ""},            {"0", -1, ""},
    };
    for (size_t i = 0; i < sizeof jcases / sizeof jcases[0]; i++) {
        cJSON *item = cJSON_Parse(jcases[i].json);
        assert_non_null(item);
        char out[DOC_CEP_SIZE];
        int rc = doc_cep_from_json(item, out);
        cJSON_Delete(item);
        if (rc != jcases[i].rc || strcmp(out, jcases[i].out) != 0)
            fail_msg("cep json case %s: rc %d out '%s'", jcases[i].json, rc, out);
    }
    char out[DOC_CEP_SIZE];
    assert_int_equal(doc_cep_from_json(NULL, out), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),   cmocka_unit_test(test_reasons),
        cmocka_unit_test(test_milvus_table),  cmocka_unit_test(test_milvus_json),
        cmocka_unit_test(test_normalize_verify), cmocka_unit_test(test_mask_and_format),
        cmocka_unit_test(test_cep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
