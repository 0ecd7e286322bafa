/* milvus_client: document forms, where a contact keeps its document, Milvus rows read back with
 * their leading zeros, bare ids. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "milvus_client.h"
#include "ploomes_contact.h"

/* ---- the three forms ------------------------------------------------------------------------ */

typedef struct {
    const char *doc;
    int count;
    const char *forms[3];
} forms_case_t;

static const forms_case_t FORMS[] = {
    {"11222333000181", 2, {"11222333000181", "11.222.333/0001-81"}},
    {"00000000000191", 3, {"00000000000191", "00.000.000/0001-91", "191"}},
    {"52998224725", 2, {"52998224725", "529.982.247-25"}},
    {"01234567890", 3, {"01234567890", "012.345.678-90", "1234567890"}},
    {"12ABC34501DE35", 2, {"12ABC34501DE35", "12.ABC.345/01DE-35"}}, /* never a number */
    {"", -1, {NULL}},
    {"123456789012345", -1, {NULL}},
};

static void test_forms(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof FORMS / sizeof FORMS[0]; i++) {
        const forms_case_t *c = &FORMS[i];
        milvus_doc_forms_t f;
        int n = milvus_doc_forms(c->doc, &f);
        if (n != c->count)
            fail_msg("case %zu (%s): %d forms, expected %d", i, c->doc, n, c->count);
        for (int k = 0; k < n; k++)
            assert_string_equal(f.form[k], c->forms[k]);
    }
    milvus_doc_forms_t f;
    assert_int_equal(milvus_doc_forms(NULL, &f), -1);
    assert_int_equal(f.count, 0);
}

/* ---- the document of a Ploomes contact ------------------------------------------------------ */

typedef struct {
    const char *json;
    doc_kind_t kind;
    const char *doc;   /* expected normal form ("" when none) */
    bool mismatch;
} contact_doc_case_t;

static const contact_doc_case_t CONTACT_DOCS[] = {
    {"{\"Register\":\"11222333000181\",\"TypeId\":1}", DOC_CNPJ, "11222333000181", false},
    {"{\"Register\":\"11.222.333/0001-81\",\"TypeId\":1}", DOC_CNPJ, "11222333000181", false},
    {"{\"Register\":\"529.982.247-25\",\"TypeId\":2}", DOC_CPF, "52998224725", false},
    {"{\"Register\":\"12.ABC.345/01DE-35\"}", DOC_CNPJ, "12ABC34501DE35", false},
    {"{\"Register\":\"12.abc.345/01de-35\"}", DOC_CNPJ, "12ABC34501DE35", false},
    /* Register first, then CNPJ, then CPF */
    {"{\"Register\":null,\"CNPJ\":\"11222333000181\",\"CPF\":\"52998224725\"}", DOC_CNPJ,
     "11222333000181", false},
    {"{\"Register\":\"\",\"CNPJ\":\"\",\"CPF\":\"52998224725\"}", DOC_CPF, "52998224725", false},
    {"{\"CPF\":\"529.982.247-25\"}", DOC_CPF, "52998224725", false},
    {"{\"Register\":\"52998224725\",\"CNPJ\":\"11222333000181\"}", DOC_CPF, "52998224725",
     false},
    {"{\"Register\":\" ./- \",\"CNPJ\":\"11222333000181\"}", DOC_CNPJ, "11222333000181",
     false},
    /* TypeId disagrees: the document decides */
    {"{\"Register\":\"52998224725\",\"TypeId\":1}", DOC_CPF, "52998224725", true},
    {"{\"Register\":\"11222333000181\",\"TypeId\":2}", DOC_CNPJ, "11222333000181", true},
    /* none */
    {"{}", DOC_NONE, "", false},
    {"{\"Register\":null,\"CNPJ\":null,\"CPF\":null}", DOC_NONE, "", false},
    {"{\"Register\":\"   \"}", DOC_NONE, "", false},
    /* invalid */
    {"{\"Register\":\"11222333000182\"}", DOC_INVALID, NULL, false},
    {"{\"Register\":\"111.111.111-11\"}", DOC_INVALID, NULL, false},
    {"{\"Register\":\"12345\"}", DOC_INVALID, NULL, false},
    {"{\"Register\":11222333000181}", DOC_INVALID, "", false}, /* a number: never */
    {"{\"Register\":[\"11222333000181\"]}", DOC_INVALID, "", false},
    {"{\"Register\":\"5299822472\\u00e9\"}", DOC_INVALID, NULL, false},
};

static void test_contact_document(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CONTACT_DOCS / sizeof CONTACT_DOCS[0]; i++) {
        const contact_doc_case_t *c = &CONTACT_DOCS[i];
        cJSON *j = cJSON_Parse(c->json);
        assert_non_null(j);
        char doc[DOC_BUF_SIZE];
        const char *why = NULL;
        bool mismatch = false;
        doc_kind_t k = milvus_contact_document(j, doc, &why, &mismatch);
        if (k != c->kind)
            fail_msg("case %zu %s: kind %s, expected %s", i, c->json, doc_kind_name(k),
                     doc_kind_name(c->kind));
        if (c->doc)
            assert_string_equal(doc, c->doc);
        assert_int_equal(mismatch, c->mismatch);
        if (k == DOC_INVALID || k == DOC_NONE)
            assert_non_null(why);
        cJSON_Delete(j);
    }
    char doc[DOC_BUF_SIZE];
    assert_int_equal(milvus_contact_document(NULL, doc, NULL, NULL), DOC_NONE);
}

/* ---- a Milvus row's document: padding decided by is_fisica --------------------------------- */

typedef struct {
    const char *json;
    doc_kind_t kind;
    const char *doc;
} row_doc_case_t;

static const row_doc_case_t ROW_DOCS[] = {
    {"{\"cnpj_cpf\":\"11222333000181\",\"is_fisica\":false}", DOC_CNPJ, "11222333000181"},
    {"{\"cnpj_cpf\":\"11.222.333/0001-81\",\"is_fisica\":false}", DOC_CNPJ, "11222333000181"},
    {"{\"cnpj_cpf\":\"529.982.247-25\",\"is_fisica\":true}", DOC_CPF, "52998224725"},
    /* a number that lost its zeros */
    {"{\"cnpj_cpf\":191,\"is_fisica\":false}", DOC_CNPJ, "00000000000191"},
    {"{\"cnpj_cpf\":\"191\",\"is_fisica\":false}", DOC_CNPJ, "00000000000191"},
    {"{\"cnpj_cpf\":1234567890,\"is_fisica\":true}", DOC_CPF, "01234567890"},
    /* 11 digits of a CNPJ that lost three zeros: is_fisica decides, not the length */
    {"{\"cnpj_cpf\":\"12345000165\",\"is_fisica\":false}", DOC_CNPJ, "00012345000165"},
    {"{\"cnpj_cpf\":12345000165,\"is_fisica\":false}", DOC_CNPJ, "00012345000165"},
    {"{\"cnpj_cpf\":\"12345000165\",\"is_fisica\":true}", DOC_INVALID, NULL},
    {"{\"cnpj_cpf\":12345601,\"is_fisica\":true}", DOC_CPF, "00012345601"},
    {"{\"cnpj_cpf\":\"12ABC34501DE35\",\"is_fisica\":false}", DOC_CNPJ, "12ABC34501DE35"},
    /* no is_fisica: the length rule of doc_from_milvus */
    {"{\"cnpj_cpf\":\"012345000165\"}", DOC_CNPJ, "00012345000165"},
    {"{\"cnpj_cpf\":1234567890}", DOC_CPF, "01234567890"},
    /* none / invalid */
    {"{\"cnpj_cpf\":null,\"is_fisica\":false}", DOC_NONE, ""},
    {"{\"cnpj_cpf\":\"\",\"is_fisica\":true}", DOC_NONE, ""},
    {"{\"is_fisica\":true}", DOC_NONE, ""},
    {"{\"cnpj_cpf\":\"11222333000182\",\"is_fisica\":false}", DOC_INVALID, NULL},
    {"{\"cnpj_cpf\":true,\"is_fisica\":false}", DOC_INVALID, NULL},
    {"{\"cnpj_cpf\":1.5,\"is_fisica\":false}", DOC_INVALID, NULL},
    {"{\"cnpj_cpf\":-191,\"is_fisica\":false}", DOC_INVALID, NULL},
};

static void test_row_document(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof ROW_DOCS / sizeof ROW_DOCS[0]; i++) {
        const row_doc_case_t *c = &ROW_DOCS[i];
        cJSON *j = cJSON_Parse(c->json);
        assert_non_null(j);
        char doc[DOC_BUF_SIZE];
        doc_kind_t k = milvus_row_document(j, doc, NULL);
        if (k != c->kind)
            fail_msg("case %zu %s: kind %s, expected %s", i, c->json, doc_kind_name(k),
                     doc_kind_name(c->kind));
        if (c->doc)
            assert_string_equal(doc, c->doc);
        cJSON_Delete(j);
    }
}

/* ---- create answers -------------------------------------------------------------------------- */

typedef struct {
    const char *body;
    int rc;
    int64_t id;
} id_case_t;

static const id_case_t BARE_IDS[] = {
    {"123", 0, 123},
    {" 123\n", 0, 123},
    {"\"123\"", 0, 123},
    {"3000000000", 0, 3000000000LL}, /* past 2^31 */
    {"", -1, 0},
    {"0", -1, 0},
    {"-5", -1, 0},
    {"12a", -1, 0},
    {"{\"id\":123}", -1, 0},
    {"null", -1, 0},
    {"1234567890123456789", -1, 0}, /* 19 digits: not an id of ours */
    {"\"\"", -1, 0},
};

static void test_bare_id(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BARE_IDS / sizeof BARE_IDS[0]; i++) {
        int64_t id = 0;
        int rc = milvus_parse_bare_id(BARE_IDS[i].body, strlen(BARE_IDS[i].body), &id);
        if (rc != BARE_IDS[i].rc)
            fail_msg("case %zu '%s': rc %d", i, BARE_IDS[i].body, rc);
        if (rc == 0)
            assert_int_equal(id, BARE_IDS[i].id);
    }
    int64_t id;
    assert_int_equal(milvus_parse_bare_id(NULL, 0, &id), -1);
}

static const id_case_t CREATED_IDS[] = {
    {"{\"value\":[{\"Id\":401}]}", 0, 401},
    {"{\"@odata.context\":\"x\",\"value\":[{\"Id\":3000000001,\"Name\":\"A\"}]}", 0,
     3000000001LL},
    {"{\"value\":[{\"Id\":\"402\"}]}", 0, 402},
    {"{\"value\":[]}", -1, 0},
    {"{\"value\":[{\"Name\":\"x\"}]}", -1, 0},
    {"{\"value\":[{\"Id\":0}]}", -1, 0},
    {"{\"Id\":5}", -1, 0},
    {"", -1, 0},
    {"not json", -1, 0},
};

static void test_created_id(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CREATED_IDS / sizeof CREATED_IDS[0]; i++) {
        int64_t id = 0;
        int rc = ploomes_parse_created_id(CREATED_IDS[i].body, strlen(CREATED_IDS[i].body), &id);
        if (rc != CREATED_IDS[i].rc)
            fail_msg("case %zu '%s': rc %d", i, CREATED_IDS[i].body, rc);
        if (rc == 0)
            assert_int_equal(id, CREATED_IDS[i].id);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),         cmocka_unit_test(test_contact_document),
        cmocka_unit_test(test_row_document),  cmocka_unit_test(test_bare_id),
        cmocka_unit_test(test_created_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
