/* The two client mappings, body by body: Ploomes contact → POST /cliente/criar
 * (milvus_client_body) and Milvus client → POST /Contacts (ploomes_contact_body). Each row is an
 * input record and the exact body expected (compared as JSON), or NULL when the record cannot
 * be mapped. */
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
#include "milvus_client.h"
#include "ploomes_contact.h"

typedef struct {
    const char *name;
    const char *input;
    const char *expected; /* NULL: mapping fails */
} map_case_t;

#define ACME_ADDR                                                                                \
    "\"StreetAddress\":\"Rua X\",\"StreetAddressNumber\":\"10\",\"StreetAddressLine2\":\"sala "   \
    "2\",\"Neighborhood\":\"Centro\",\"ZipCode\":1310100,\"CityId\":3941,\"City\":{\"Id\":3941,"  \
    "\"Name\":\"S\u00e3o Paulo\"},\"StateId\":25,\"State\":{\"Id\":25,\"Short\":\"SP\","          \
    "\"Name\":\"S\u00e3o Paulo\"}"

/* Contacts: every input carries its own document in Register; the case derives doc/kind from
 * it with milvus_contact_document(), as the workers do. */
static const map_case_t TO_MILVUS[] = {
    {"company, every field",
     "{\"Id\":101,\"TypeId\":1,\"Name\":\"ACME\",\"LegalName\":\"ACME LTDA\",\"Register\":\"11."
     "222.333/0001-81\",\"Website\":\"acme.com.br\",\"Note\":\"obs\",\"Email\":\"a@acme.com.br\","
     ACME_ADDR ",\"Phones\":[{\"PhoneNumber\":\"(11) 1111-1111\"},{\"PhoneNumber\":\"(11) "
     "99999-0000\"}],\"Contacts\":[{\"Id\":102,\"Name\":\"Maria\",\"Email\":\"m@acme.com.br\","
     "\"Phones\":[{\"PhoneNumber\":\"(11) 2222-2222\"}]},{\"Id\":103}]}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_site\":\"acme.com.br\","
     "\"cliente_observacao\":\"obs\",\"cliente_ativo\":true,\"cliente_id_integracao\":101,"
     "\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"ACME\",\"razao_social\":\"ACME LTDA\","
     "\"inscricao_estadual\":\"\"},\"cliente_enderecos\":[{\"endereco_padrao\":true,"
     "\"endereco_cep\":\"01310100\",\"endereco_logradouro\":\"Rua X\",\"endereco_numero\":\"10\","
     "\"endereco_complemento\":\"sala 2\",\"endereco_bairro\":\"Centro\",\"endereco_cidade\":\"S"
     "\u00e3o Paulo\",\"endereco_estado\":\"SP\"}],\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"ACME\",\"contato_email\":\"a@acme.com.br\",\"contato_telefone\":\"("
     "11) 1111-1111\",\"contato_celular\":\"(11) 99999-0000\"},{\"contato_padrao\":false,"
     "\"contato_descricao\":\"Maria\",\"contato_email\":\"m@acme.com.br\",\"contato_telefone\":\"("
     "11) 2222-2222\"}]}"},
    {"person, birthday, no address",
     "{\"Id\":201,\"TypeId\":2,\"Name\":\"Jos\u00e9 da Silva\",\"Register\":\"529.982.247-25\","
     "\"Birthday\":\"1990-05-17T00:00:00-03:00\",\"Email\":\"jose@x.com\"}",
     "{\"cliente_documento\":\"52998224725\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "201,\"cliente_pessoa_fisica\":{\"nome\":\"Jos\u00e9 da Silva\",\"data_nascimento\":\"1990-"
     "05-17\"},\"cliente_contatos\":[{\"contato_padrao\":true,\"contato_descricao\":\"Jos\u00e9 "
     "da Silva\",\"contato_email\":\"jose@x.com\"}]}"},
    {"company without LegalName: razao_social = Name",
     "{\"Id\":301,\"Name\":\"Padaria\",\"CNPJ\":\"11222333000181\"}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "301,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"Padaria\",\"razao_social\":\"Padaria\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"Padaria\"}]}"},
    {"nulls where strings are expected: nothing sent for them",
     "{\"Id\":302,\"Name\":\"N\",\"LegalName\":null,\"Register\":\"11222333000181\",\"Website\":"
     "null,\"Note\":null,\"Email\":null,\"StreetAddress\":null,\"ZipCode\":null,\"City\":null,"
     "\"State\":null,\"Phones\":null,\"Contacts\":null,\"Birthday\":null}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "302,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"N\",\"razao_social\":\"N\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"N\"}]}"},
    {"wrong types are left out (ids never stand in for names)",
     "{\"Id\":303,\"Name\":\"W\",\"Register\":\"11222333000181\",\"Website\":5,\"Note\":true,"
     "\"Email\":[],\"ZipCode\":\"abc\",\"CityId\":3941,\"City\":\"S\u00e3o Paulo\",\"StateId\":25,"
     "\"State\":25,\"Phones\":\"(11) 1\",\"Contacts\":{\"Name\":\"x\"}}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "303,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"W\",\"razao_social\":\"W\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"W\"}]}"},
    {"CEP as a string with mask; only some address fields",
     "{\"Id\":304,\"Name\":\"C\",\"Register\":\"11222333000181\",\"ZipCode\":\"01310-100\","
     "\"State\":{\"Short\":\"SP\"}}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "304,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"C\",\"razao_social\":\"C\","
     "\"inscricao_estadual\":\"\"},\"cliente_enderecos\":[{\"endereco_padrao\":true,"
     "\"endereco_cep\":\"01310100\",\"endereco_estado\":\"SP\"}],\"cliente_contatos\":[{"
     "\"contato_padrao\":true,\"contato_descricao\":\"C\"}]}"},
    {"CEP 8 digits as a number; a bad CEP alone is no address",
     "{\"Id\":305,\"Name\":\"D\",\"Register\":\"11222333000181\",\"ZipCode\":99999999}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "305,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"D\",\"razao_social\":\"D\","
     "\"inscricao_estadual\":\"\"},\"cliente_enderecos\":[{\"endereco_padrao\":true,"
     "\"endereco_cep\":\"99999999\"}],\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"D\"}]}"},
    {"a bad CEP is not sent",
     "{\"Id\":306,\"Name\":\"E\",\"Register\":\"11222333000181\",\"ZipCode\":123}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "306,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"E\",\"razao_social\":\"E\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"E\"}]}"},
    {"alphanumeric CNPJ, unicode names, id past 2^31",
     "{\"Id\":3000000001,\"Name\":\"\u65e5\u672c \u00c7\u00e3o \U0001F600\",\"Register\":"
     "\"12.ABC.345/01DE-35\"}",
     "{\"cliente_documento\":\"12ABC34501DE35\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "3000000001,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"\u65e5\u672c \u00c7\u00e3o "
     "\U0001F600\",\"razao_social\":\"\u65e5\u672c \u00c7\u00e3o \U0001F600\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"\u65e5\u672c \u00c7\u00e3o \U0001F600\"}]}"},
    {"TypeId 1 but a CPF: a person (the document decides); bad birthday left out",
     "{\"Id\":307,\"TypeId\":1,\"Name\":\"P\",\"LegalName\":\"P LTDA\",\"Register\":"
     "\"52998224725\",\"Birthday\":\"17/05/1990\"}",
     "{\"cliente_documento\":\"52998224725\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "307,\"cliente_pessoa_fisica\":{\"nome\":\"P\"},\"cliente_contatos\":[{\"contato_padrao\":"
     "true,\"contato_descricao\":\"P\"}]}"},
    {"phones: empty ones skipped, the third ignored",
     "{\"Id\":308,\"Name\":\"F\",\"Register\":\"11222333000181\",\"Phones\":[{\"PhoneNumber\":"
     "\"\"},{\"PhoneNumber\":\"1\"},{\"Other\":1},{\"PhoneNumber\":\"2\"},{\"PhoneNumber\":"
     "\"3\"}]}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "308,\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"F\",\"razao_social\":\"F\","
     "\"inscricao_estadual\":\"\"},\"cliente_contatos\":[{\"contato_padrao\":true,"
     "\"contato_descricao\":\"F\",\"contato_telefone\":\"1\",\"contato_celular\":\"2\"}]}"},
    {"company without Name but with LegalName", "{\"Id\":309,\"LegalName\":\"L LTDA\","
     "\"Register\":\"11222333000181\"}",
     "{\"cliente_documento\":\"11222333000181\",\"cliente_ativo\":true,\"cliente_id_integracao\":"
     "309,\"cliente_pessoa_juridica\":{\"razao_social\":\"L LTDA\",\"inscricao_estadual\":\"\"}}"},
    {"person without Name", "{\"Id\":310,\"Register\":\"52998224725\"}", NULL},
    {"no Id", "{\"Name\":\"X\",\"Register\":\"52998224725\"}", NULL},
    {"Id as a fraction", "{\"Id\":1.5,\"Name\":\"X\",\"Register\":\"52998224725\"}", NULL},
    {"invalid UTF-8 in Name", "{\"Id\":311,\"Name\":\"Jo\xc3\x28o\",\"Register\":\"52998224725\"}",
     NULL},
    {"invalid UTF-8 in a person of the company",
     "{\"Id\":312,\"Name\":\"G\",\"Register\":\"11222333000181\",\"Contacts\":[{\"Name\":\"\xff\"}"
     "]}",
     NULL},
    {"invalid UTF-8 in the city name",
     "{\"Id\":313,\"Name\":\"H\",\"Register\":\"11222333000181\",\"City\":{\"Name\":\"\xed\xa0\x80"
     "\"}}",
     NULL},
};

static cJSON *parse(const char *text)
{
    cJSON *j = json_parse_bounded(text, strlen(text), 1 << 20, NULL, 0);
    if (j == NULL)
        fail_msg("test input is not JSON: %s", text);
    return j;
}

static void check(const char *name, cJSON *got, const char *expected, const char *err)
{
    if (expected == NULL) {
        if (got != NULL) {
            char *p = cJSON_PrintUnformatted(got);
            fail_msg("%s: expected a failure, got %s", name, p);
        }
        assert_true(err[0] != '\0');
        return;
    }
    if (got == NULL)
        fail_msg("%s: mapping failed: %s", name, err);
    cJSON *want = parse(expected);
    if (!cJSON_Compare(want, got, true)) {
        char *p = cJSON_PrintUnformatted(got);
        fail_msg("%s:\n got  %s\n want %s", name, p, expected);
    }
    cJSON_Delete(want);
}

static void test_to_milvus(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof TO_MILVUS / sizeof TO_MILVUS[0]; i++) {
        const map_case_t *c = &TO_MILVUS[i];
        cJSON *in = parse(c->input);
        char doc[DOC_BUF_SIZE];
        doc_kind_t kind = milvus_contact_document(in, doc, NULL, NULL);
        assert_true(kind == DOC_CPF || kind == DOC_CNPJ);
        char err[256] = "";
        cJSON *got = milvus_client_body(in, doc, kind, err, sizeof err);
        check(c->name, got, c->expected, err);
        /* whatever is sent is valid UTF-8 */
        if (got)
            assert_int_equal(json_validate_utf8(got, NULL, 0), 0);
        cJSON_Delete(got);
        cJSON_Delete(in);
    }
}

static void test_to_milvus_bad_args(void **state)
{
    (void)state;
    cJSON *in = parse("{\"Id\":1,\"Name\":\"X\"}");
    char err[128] = "";
    assert_null(milvus_client_body(in, "11222333000182", DOC_CNPJ, err, sizeof err));
    assert_true(err[0] != '\0');
    assert_null(milvus_client_body(in, "52998224725", DOC_CNPJ, err, sizeof err)); /* kind */
    assert_null(milvus_client_body(in, NULL, DOC_CPF, NULL, 0));
    assert_null(milvus_client_body(NULL, "52998224725", DOC_CPF, NULL, 0));
    cJSON_Delete(in);
}

/* Milvus rows → Ploomes contacts (cfg: no origin, owner or tags unless the case says). */
static const map_case_t TO_PLOOMES[] = {
    {"company, every field",
     "{\"id\":700,\"razao_social\":\"ACME LTDA\",\"nome_fantasia\":\"ACME\",\"cnpj_cpf\":"
     "\"11222333000181\",\"site\":\"acme.com.br\",\"observacao\":\"obs\",\"is_fisica\":false,"
     "\"is_ativo\":true,\"token\":\"ABC123\",\"data_nascimento\":\"2001-01-01\"}",
     "{\"Name\":\"ACME\",\"LegalName\":\"ACME LTDA\",\"TypeId\":1,\"Register\":\"11222333000181\","
     "\"Website\":\"acme.com.br\",\"Note\":\"obs\"}"},
    {"person: no LegalName, a Birthday",
     "{\"id\":701,\"razao_social\":\"Jos\u00e9\",\"nome_fantasia\":\"Jos\u00e9\",\"cnpj_cpf\":"
     "\"529.982.247-25\",\"is_fisica\":true,\"data_nascimento\":\"1990-05-17\"}",
     "{\"Name\":\"Jos\u00e9\",\"TypeId\":2,\"Register\":\"52998224725\",\"Birthday\":\"1990-05-"
     "17T00:00:00-03:00\"}"},
    {"person, birthday with a time, number document that lost its zeros",
     "{\"id\":702,\"nome_fantasia\":\"Ana\",\"cnpj_cpf\":1234567890,\"is_fisica\":true,"
     "\"data_nascimento\":\"1985-12-31 00:00:00\"}",
     "{\"Name\":\"Ana\",\"TypeId\":2,\"Register\":\"01234567890\",\"Birthday\":\"1985-12-31T00:00:"
     "00-03:00\"}"},
    {"nome_fantasia null: Name = razao_social",
     "{\"id\":703,\"razao_social\":\"R LTDA\",\"nome_fantasia\":null,\"cnpj_cpf\":"
     "\"12ABC34501DE35\",\"is_fisica\":false,\"site\":null,\"observacao\":\"\"}",
     "{\"Name\":\"R LTDA\",\"LegalName\":\"R LTDA\",\"TypeId\":1,\"Register\":\"12ABC34501DE35\"}"},
    {"wrong types left out",
     "{\"id\":704,\"nome_fantasia\":\"W\",\"razao_social\":5,\"cnpj_cpf\":\"11222333000181\","
     "\"is_fisica\":false,\"site\":[],\"observacao\":{},\"data_nascimento\":19900517}",
     "{\"Name\":\"W\",\"TypeId\":1,\"Register\":\"11222333000181\"}"},
    {"bad birthday left out",
     "{\"id\":705,\"nome_fantasia\":\"B\",\"cnpj_cpf\":\"52998224725\",\"is_fisica\":true,"
     "\"data_nascimento\":\"0000-00-00\"}",
     "{\"Name\":\"B\",\"TypeId\":2,\"Register\":\"52998224725\"}"},
    {"no name at all", "{\"id\":706,\"cnpj_cpf\":\"52998224725\",\"is_fisica\":true}", NULL},
    {"invalid UTF-8", "{\"id\":707,\"nome_fantasia\":\"\xc3\",\"cnpj_cpf\":\"52998224725\"}",
     NULL},
};

static void run_to_ploomes(const map_case_t *cases, size_t n, const config_t *cfg)
{
    for (size_t i = 0; i < n; i++) {
        const map_case_t *c = &cases[i];
        cJSON *in = parse(c->input);
        char doc[DOC_BUF_SIZE];
        doc_kind_t kind = milvus_row_document(in, doc, NULL);
        assert_true(kind == DOC_CPF || kind == DOC_CNPJ);
        char err[256] = "";
        cJSON *got = ploomes_contact_body(in, doc, kind, cfg, err, sizeof err);
        check(c->name, got, c->expected, err);
        cJSON_Delete(got);
        cJSON_Delete(in);
    }
}

static void test_to_ploomes(void **state)
{
    (void)state;
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    run_to_ploomes(TO_PLOOMES, sizeof TO_PLOOMES / sizeof TO_PLOOMES[0], &cfg);
    run_to_ploomes(TO_PLOOMES, sizeof TO_PLOOMES / sizeof TO_PLOOMES[0], NULL);
}

static void test_to_ploomes_config(void **state)
{
    (void)state;
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    int64_t tags[] = {40006184, 3000000002LL};
    cfg.ploomes_origin_id = 12;
    cfg.ploomes_owner_id = 10003844;
    cfg.ploomes_tag_ids = tags;
    cfg.ploomes_tag_id_count = 2;
    static const map_case_t c[] = {
        {"origin, owner and tags from the configuration",
         "{\"id\":710,\"nome_fantasia\":\"T\",\"cnpj_cpf\":\"11222333000181\",\"is_fisica\":false}",
         "{\"Name\":\"T\",\"TypeId\":1,\"Register\":\"11222333000181\",\"OriginId\":12,\"OwnerId\":"
         "10003844,\"Tags\":[{\"TagId\":40006184},{\"TagId\":3000000002}]}"},
    };
    run_to_ploomes(c, 1, &cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_milvus),
        cmocka_unit_test(test_to_milvus_bad_args),
        cmocka_unit_test(test_to_ploomes),
        cmocka_unit_test(test_to_ploomes_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
