/* Integration tests of milvus-sim: the real binary as a subprocess (simproc), over HTTP.
 * Auth, /cliente/criar validation (CPF, numeric and alphanumeric CNPJ, duplicates, person
 * objects), /cliente/busca filters, status and the 1000-row cap, /chamado/criar validation and
 * /chamado/listagem filters, paging and shape. The keepalive_drop fault (a request on a reused
 * keep-alive connection closed unanswered, before or after it is processed) over raw sockets,
 * and the request journal (GET /_admin/requests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "simproc.h"
#include "testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TOKEN "milvus-test-token"
static const char *const AUTH[] = {"Authorization: " TOKEN, NULL};

#define UNLIMITED "{\"rate_limit_per_min\":0}"
static char sim_err[256];


/* A fresh milvus-sim without a rate limit; fails the test when it does not start. */
static simproc *start(void)
{
    simproc *p = simproc_start_sim("milvus-sim", TOKEN, UNLIMITED, sim_err, sizeof sim_err);
    assert_non_null(p);
    return p;
}

static long post(simproc *p, const char *path, const char *body, char **text)
{
    return simproc_post(p, path, AUTH, body, text);
}

static int lista_size(const cJSON *r)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "lista"));
}

static void test_auth(void **state)
{
    (void)state;
    simproc *p = start();
    long st;
    cJSON *r = simproc_request_json(p, "GET", "/api/cliente/busca", NULL, NULL, &st);
    assert_int_equal(st, 401);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "message")));
    cJSON_Delete(r);
    const char *const bearer[] = {"Authorization: Bearer " TOKEN, NULL};
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", bearer, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 401);
    assert_int_equal(simproc_faults(p, "{\"accept_bearer\":true}"), 0);
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", bearer, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 200);
    r = simproc_request_json(p, "GET", "/api/cliente/busca", AUTH, NULL, &st);
    assert_int_equal(st, 200);
    assert_int_equal(lista_size(r), 0);
    cJSON_Delete(r);
    assert_int_equal(simproc_request(p, "GET", "/api/nada", AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 404);
    assert_int_equal(simproc_request(p, "GET", "/api/cliente/criar", AUTH, NULL, &st, NULL, NULL), 0);
    assert_int_equal(st, 405);
    assert_int_equal(simproc_stop(p), 0);
}

#define PJ ",\"cliente_pessoa_juridica\":{\"nome_fantasia\":\"ACME\",\"razao_social\":\"ACME LTDA\",\"inscricao_estadual\":\"\"}"
#define PF ",\"cliente_pessoa_fisica\":{\"nome\":\"Maria\",\"data_nascimento\":\"1990-01-31\",\"sexo\":\"F\"}"

static void test_cliente_criar(void **state)
{
    (void)state;
    simproc *p = start();
    static const struct {
        const char *body;
        long status;
    } cases[] = {
        {"{\"cliente_documento\":\"11222333000181\"" PJ "}", 200},
        {"{\"cliente_documento\":\"11.222.333/0001-81\"" PJ "}", 409}, /* same document, masked */
        {"{\"cliente_documento\":11222333000181" PJ "}", 409},         /* same document, number */
        {"{\"cliente_documento\":\"12ABC34501DE35\"" PJ "}", 200},     /* 2026 alphanumeric CNPJ */
        {"{\"cliente_documento\":\"12.abc.345/01de-35\"" PJ "}", 409},
        {"{\"cliente_documento\":\"52998224725\"" PF "}", 200},
        {"{\"cliente_documento\":11144477735" PF "}", 200},            /* number accepted */
        {"{\"cliente_documento\":191" PJ "}", 200},                    /* 00000000000191 lost its zeros */
        /* document_match "exact" (default): "191" as stored is not "00000000000191", so a
         * client that sent a number gets a second client here (the normalized toggle: 409) */
        {"{\"cliente_documento\":\"00000000000191\"" PJ "}", 200},
        {"{\"cliente_documento\":\"52998224724\"" PF "}", 400},       /* bad check digit */
        {"{\"cliente_documento\":\"11222333000182\"" PJ "}", 400},
        {"{\"cliente_documento\":\"12ABC34501DE36\"" PJ "}", 400},
        {"{\"cliente_documento\":\"11111111111\"" PF "}", 400},       /* all equal */
        {"{\"cliente_documento\":\"1234567890\"" PF "}", 400},        /* length */
        {"{\"cliente_documento\":\"\"" PF "}", 400},
        {"{" PF + 1, 400},                                             /* no document */
        {"{\"cliente_documento\":\"12345678909\"}", 400},              /* no person object */
        {"{\"cliente_documento\":\"12345678909\"" PF PJ "}", 400},     /* both */
        {"{\"cliente_documento\":\"12345678909\"" PJ "}", 400},        /* CPF with company object */
        {"{\"cliente_documento\":\"45723174000110\"" PF "}", 400},     /* CNPJ with person object */
        {"{\"cliente_documento\":\"12345678909\",\"cliente_pessoa_fisica\":{}}", 400},
        {"{\"cliente_documento\":\"12345678909\",\"cliente_pessoa_fisica\":\"x\"}", 400},
        {"{\"cliente_documento\":1e300" PF "}", 400},
        {"{\"cliente_documento\":true" PF "}", 400},
        {"{\"cliente_documento\":\"12345678909\"" PF ",\"cliente_ativo\":\"sim\"}", 400},
        {"{\"cliente_documento\":\"12345678909\"" PF ",\"cliente_enderecos\":{}}", 400},
        {"not json", 400},
        {"[]", 400},
        {"{\"cliente_documento\":\"12345678909\"" PF ",\"cliente_ativo\":false,\"cliente_site\":\"s\","
         "\"cliente_id_integracao\":77,\"cliente_enderecos\":[{\"endereco_padrao\":true,\"endereco_cep\":\"01310100\","
         "\"endereco_cidade\":\"São Paulo\",\"endereco_estado\":\"SP\"}],\"cliente_contatos\":[{\"contato_email\":\"m@x\"}]}", 200},
    };
    int failures = 0;
    long last_id = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = NULL;
        long st = post(p, "/api/cliente/criar", cases[i].body, &text);
        if (st != cases[i].status) {
            fprintf(stderr, "criar %s: expected %ld, got %ld %s\n", cases[i].body, cases[i].status, st, text);
            failures++;
        } else if (st == 200) {
            char *end = NULL;
            long id = strtol(text, &end, 10);
            assert_true(end != text && *end == '\0'); /* bare number */
            assert_true(id > last_id);
            last_id = id;
        } else {
            cJSON *j = cJSON_Parse(text);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
            assert_true(cJSON_IsString(m));
            if (st == 409)
                assert_string_equal(m->valuestring, "Cliente já cadastrado");
            cJSON_Delete(j);
        }
        free(text);
    }
    assert_int_equal(failures, 0);

    /* stored with every field sent, token of 6 uppercase alphanumerics */
    cJSON *s = simproc_state(p);
    const cJSON *c, *maria = NULL;
    int n = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(s, "clientes"))
    {
        const char *tok = cJSON_GetObjectItemCaseSensitive(c, "token")->valuestring;
        assert_int_equal(strlen(tok), 6);
        for (int k = 0; k < 6; k++)
            assert_true((tok[k] >= 'A' && tok[k] <= 'Z') || (tok[k] >= '0' && tok[k] <= '9'));
        if (cJSON_GetObjectItemCaseSensitive(c, "cliente_enderecos"))
            maria = c;
        n++;
    }
    assert_int_equal(n, 7);
    assert_non_null(maria);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(maria, "cliente_id_integracao")->valuedouble, 77);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(maria, "cnpj_cpf")->valuestring, "12345678909");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(maria, "is_ativo")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(maria, "is_fisica")));
    cJSON_Delete(s);

    /* duplicate answer configurable */
    assert_int_equal(simproc_faults(p, "{\"duplicate_status\":400}"), 0);
    assert_int_equal(post(p, "/api/cliente/criar", "{\"cliente_documento\":\"52998224725\"" PF "}", NULL), 400);
    assert_int_equal(simproc_stop(p), 0);
}

static cJSON *busca(simproc *p, const char *query, long *st)
{
    char path[512];
    snprintf(path, sizeof path, "/api/cliente/busca%s", query);
    return simproc_request_json(p, "GET", path, AUTH, NULL, st);
}

/* The size of the "lista" of GET /api/cliente/busca<query>, whatever the status. */
static int busca_count(simproc *p, const char *query)
{
    long st;
    cJSON *r = busca(p, query, &st);
    int n = lista_size(r);
    cJSON_Delete(r);
    return n;
}

/* The HTTP status of GET /api/cliente/busca<query>. */
static long busca_status(simproc *p, const char *query)
{
    long st;
    cJSON_Delete(busca(p, query, &st));
    return st;
}

/* POST /api/chamado/listagem<query> with body: asserts 200 and returns the parsed answer. */
static cJSON *listagem(simproc *p, const char *query, const char *body)
{
    char path[512], *text = NULL;
    snprintf(path, sizeof path, "/api/chamado/listagem%s", query);
    assert_int_equal(post(p, path, body, &text), 200);
    cJSON *r = cJSON_Parse(text);
    free(text);
    return r;
}

static void test_busca(void **state)
{
    (void)state;
    simproc *p = start();
    assert_int_equal(simproc_seed(p, "{\"clientes\":["
                                     "{\"id\":10,\"nome_fantasia\":\"ACME\",\"cnpj_cpf\":\"11222333000181\",\"is_ativo\":true},"
                                     "{\"id\":11,\"nome_fantasia\":\"Blocked Co\",\"cnpj_cpf\":\"12ABC34501DE35\",\"is_ativo\":false},"
                                     "{\"id\":12,\"nome_fantasia\":\"Zero\",\"cnpj_cpf\":191,\"is_fisica\":false,\"is_ativo\":true,\"token\":\"ZERO01\"},"
                                     "{\"nome_fantasia\":\"No id\",\"cnpj_cpf\":\"52998224725\"}]}"),
                     0);
    long st;
    cJSON *r = busca(p, "", &st);
    assert_int_equal(st, 200);
    assert_int_equal(lista_size(r), 3); /* status 1 by default */
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "lista"), 0);
    const char *fields[] = {"id", "nome_fantasia", "cnpj_cpf", "token", NULL};
    for (int i = 0; fields[i]; i++)
        assert_non_null(cJSON_GetObjectItemCaseSensitive(c, fields[i]));
    cJSON_Delete(r);
    assert_int_equal(busca_count(p, "?status=2"), 1);
    assert_int_equal(busca_count(p, "?status=3"), 4);
    assert_int_equal(busca_status(p, "?status=9"), 400);
    assert_int_equal(busca_count(p, "?documento=11222333000181"), 1);
    /* document_match "exact" (default): the document as stored, byte for byte */
    assert_int_equal(busca_count(p, "?documento=11.222.333%2F0001-81"), 0);
    assert_int_equal(busca_count(p, "?documento=00000000000191"), 0); /* stored as the number 191 */
    assert_int_equal(busca_count(p, "?documento=191"), 1);
    assert_int_equal(busca_count(p, "?documento=12abc34501de35&status=3"), 0);
    assert_int_equal(busca_count(p, "?documento=12ABC34501DE35"), 0); /* blocked: status 1 */
    assert_int_equal(busca_count(p, "?documento=12ABC34501DE35&status=3"), 1);
    /* document_match "normalized": masks, leading zeros and case ignored */
    assert_int_equal(simproc_faults(p, "{\"document_match\":\"normalized\"}"), 0);
    assert_int_equal(busca_count(p, "?documento=11.222.333%2F0001-81"), 1);
    assert_int_equal(busca_count(p, "?documento=12abc34501de35&status=3"), 1);
    r = busca(p, "?documento=00000000000191", &st);
    assert_int_equal(lista_size(r), 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "lista"), 0), "token")->valuestring, "ZERO01");
    cJSON_Delete(r);
    assert_int_equal(busca_count(p, "?nome_fantasia=acm"), 1);
    assert_int_equal(busca_status(p, "?documento=%27%3B--"), 400);

    /* 1,500 clients: one answer holds at most 1000; pagina/total_registros page through */
    assert_int_equal(simproc_reset(p), 0);
    assert_int_equal(simproc_faults(p, "{\"rate_limit_per_min\":0}"), 0);
    size_t cap = 1500 * 80 + 64;
    char *seed = malloc(cap);
    size_t o = (size_t)snprintf(seed, cap, "{\"clientes\":[");
    for (int i = 0; i < 1500; i++)
        o += (size_t)snprintf(seed + o, cap - o, "%s{\"id\":%d,\"nome_fantasia\":\"C%d\",\"cnpj_cpf\":\"%d\"}",
                              i ? "," : "", i + 1, i, 100000 + i);
    snprintf(seed + o, cap - o, "]}");
    assert_int_equal(simproc_seed(p, seed), 0);
    free(seed);
    assert_int_equal(busca_count(p, "?status=3"), 1000);
    r = busca(p, "?status=3&pagina=2&total_registros=1000", &st);
    assert_int_equal(lista_size(r), 500);
    const cJSON *pg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "meta"), "paginate");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(pg, "current_page")->valuestring, "2");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(pg, "total")->valuedouble, 1500);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "lista"), 0), "id")->valuedouble, 1001);
    cJSON_Delete(r);
    assert_int_equal(busca_count(p, "?status=3&pagina=1&total_registros=5000"), 1000);
    assert_int_equal(busca_status(p, "?status=3&pagina=0"), 400);
    assert_int_equal(simproc_faults(p, "{\"truncate_at\":100}"), 0);
    assert_int_equal(busca_count(p, "?status=3"), 100);
    assert_int_equal(simproc_stop(p), 0);
}

static void test_chamados(void **state)
{
    (void)state;
    simproc *p = start();
    assert_int_equal(simproc_seed(p, "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"nome_fantasia\":\"ACME\",\"cnpj_cpf\":\"11222333000181\"},"
                                     "{\"id\":2,\"token\":\"BBB222\",\"nome_fantasia\":\"Beta\",\"cnpj_cpf\":\"52998224725\"}]}"),
                     0);
    static const struct {
        const char *body;
        long status;
    } cases[] = {
        {"{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"Instalação\",\"chamado_descricao\":\"d1 [ploomes:task:1]\","
         "\"chamado_email\":\"a@b\",\"chamado_categoria_primaria\":\"Instalação\",\"chamado_mesa\":\"Mesa padrão\",\"categoria_id\":1}", 200},
        {"{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"Entrega\",\"chamado_descricao\":\"d2\"}", 200},
        {"{\"cliente_id\":\"BBB222\",\"chamado_assunto\":\"Outro\"}", 200},
        {"{\"cliente_id\":\"ZZZ999\",\"chamado_assunto\":\"x\"}", 404},
        {"{\"cliente_id\":1,\"chamado_assunto\":\"x\"}", 404},
        {"{\"chamado_assunto\":\"x\"}", 400},
        {"{\"cliente_id\":\"AAA111\"}", 400},
        {"{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"  \"}", 400},
        {"{\"cliente_id\":\"AAA111\",\"chamado_assunto\":\"x\",\"chamado_mesa\":{}}", 400},
        {"{", 400},
    };
    long codigo = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = NULL;
        long st = post(p, "/api/chamado/criar", cases[i].body, &text);
        if (st != cases[i].status)
            fprintf(stderr, "chamado %s: %ld %s\n", cases[i].body, st, text);
        assert_int_equal(st, cases[i].status);
        if (st == 200) {
            long c = strtol(text, NULL, 10);
            if (codigo)
                assert_int_equal(c, codigo + 1); /* sequential */
            codigo = c;
        }
        free(text);
    }
    cJSON *r = listagem(p, "", "{\"filtro_body\":{\"cliente_token\":\"AAA111\"}}");
    const cJSON *lista = cJSON_GetObjectItemCaseSensitive(r, "lista");
    assert_int_equal(cJSON_GetArraySize(lista), 2);
    const cJSON *first = cJSON_GetArrayItem(lista, 0); /* codigo desc by default */
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(first, "descricao")->valuestring, "d2");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(first, "cliente_token")->valuestring, "AAA111");
    assert_null(cJSON_GetObjectItemCaseSensitive(first, "chamado_assunto"));
    const cJSON *pg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "meta"), "paginate");
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(pg, "current_page")));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(pg, "total")->valuedouble, 2);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(pg, "per_page")->valuedouble, 50);
    cJSON_Delete(r);

    char body[256];
    snprintf(body, sizeof body, "{\"filtro_body\":{\"codigo\":%ld}}", codigo);
    r = listagem(p, "", body);
    assert_int_equal(lista_size(r), 1);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"status\":4}}");
    assert_int_equal(lista_size(r), 0);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"status\":\"AgAtendimento\"}}");
    assert_int_equal(lista_size(r), 3);
    cJSON_Delete(r);
    /* paging in the query string or in the body; ascending order */
    r = listagem(p, "?total_registros=2&pagina=2&is_descending=false", "{}");
    lista = cJSON_GetObjectItemCaseSensitive(r, "lista");
    assert_int_equal(cJSON_GetArraySize(lista), 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(lista, 0), "codigo")->valuedouble, codigo);
    pg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "meta"), "paginate");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(pg, "current_page")->valuestring, "2");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(pg, "last_page")->valuedouble, 2);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"pagina\":1,\"total_registros\":5000,\"order_by\":\"assunto\",\"is_descending\":false}");
    pg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "meta"), "paginate");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(pg, "per_page")->valuedouble, 1000);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "lista"), 0), "assunto")->valuestring, "Entrega");
    cJSON_Delete(r);
    const char *bad[] = {"{\"order_by\":\"nope\"}", "{\"pagina\":0}", "{\"total_registros\":\"x\"}",
                         "{\"is_descending\":\"maybe\"}", "{\"filtro_body\":[]}", "{\"filtro_body\":{\"codigo\":\"x\"}}",
                         "{\"filtro_body\":{\"status\":\"Nope\"}}", "[", NULL};
    for (int i = 0; bad[i]; i++) {
        long st = post(p, "/api/chamado/listagem", bad[i], NULL);
        if (st != 400)
            fprintf(stderr, "listagem %s: %ld\n", bad[i], st);
        assert_int_equal(st, 400);
    }
    /* the state keeps every field sent */
    cJSON *s = simproc_state(p);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "chamados"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "chamado_mesa")->valuestring, "Mesa padrão");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(t, "categoria_id")->valuedouble, 1);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(t, "cliente_id")->valuestring, "AAA111");
    cJSON_Delete(s);
    assert_int_equal(simproc_stop(p), 0);
}

/* "id,id" of the lista of GET /api/cliente/busca<query> (asserts 200). */
static void busca_ids(simproc *p, const char *query, char *out, size_t size)
{
    long st;
    cJSON *r = busca(p, query, &st);
    assert_int_equal(st, 200);
    out[0] = '\0';
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "lista"))
    {
        size_t n = strlen(out);
        snprintf(out + n, size - n, "%s%.0f", n ? "," : "", cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble);
    }
    cJSON_Delete(r);
}

/* The cliente_token of the ticket POST /api/chamado/criar makes for cliente_id `tok`, or ""
 * when it answers other than 200. */
static void ticket_client(simproc *p, const char *tok, char *out, size_t size)
{
    char body[512], *text = NULL;
    snprintf(body, sizeof body, "{\"cliente_id\":\"%s\",\"chamado_assunto\":\"x\"}", tok);
    out[0] = '\0';
    if (post(p, "/api/chamado/criar", body, &text) != 200) {
        free(text);
        return;
    }
    char filtro[128];
    snprintf(filtro, sizeof filtro, "{\"filtro_body\":{\"codigo\":%ld}}", strtol(text, NULL, 10));
    free(text);
    cJSON *r = listagem(p, "", filtro);
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "lista"), 0);
    snprintf(out, size, "%s", cJSON_GetObjectItemCaseSensitive(t, "cliente_token")->valuestring);
    cJSON_Delete(r);
}

/* Clients by token (/chamado/criar) and by document (/cliente/busca) are looked up through
 * indexes (issue 13: a scan per request under the server's lock); the answers stay those of
 * the scan: every holder of a document in id order with status/paging applied, the first
 * client (by id) of a shared token, a token or document longer than any index key, and clients
 * created, reseeded or reset in between. */
static void test_client_indexes(void **state)
{
    (void)state;
    simproc *p = start();
    char tok70[71];
    memset(tok70, 'T', 70);
    tok70[70] = '\0';
    char seed[2048];
    snprintf(seed, sizeof seed,
             "{\"clientes\":["
             "{\"id\":30,\"nome_fantasia\":\"Dup B\",\"cnpj_cpf\":\"52998224725\",\"token\":\"SHARED\"},"
             "{\"id\":20,\"nome_fantasia\":\"Dup A\",\"cnpj_cpf\":\"52998224725\",\"token\":\"SHARED\"},"
             "{\"id\":40,\"nome_fantasia\":\"Dup off\",\"cnpj_cpf\":\"52998224725\",\"is_ativo\":false,\"token\":\"OFF040\"},"
             "{\"id\":50,\"nome_fantasia\":\"Masked\",\"cnpj_cpf\":\"529.982.247-25\",\"token\":\"MASK50\"},"
             "{\"id\":60,\"nome_fantasia\":\"Long\",\"cnpj_cpf\":\"11144477735\",\"token\":\"%s\"},"
             "{\"id\":70,\"nome_fantasia\":\"Other\",\"cnpj_cpf\":\"11222333000181\",\"token\":\"OTHER7\"}]}",
             tok70);
    assert_int_equal(simproc_seed(p, seed), 0);
    char ids[256], tok[128];
    busca_ids(p, "?documento=52998224725", ids, sizeof ids);
    assert_string_equal(ids, "20,30"); /* active ones, in id order */
    busca_ids(p, "?documento=52998224725&status=3", ids, sizeof ids);
    assert_string_equal(ids, "20,30,40");
    busca_ids(p, "?documento=52998224725&status=2", ids, sizeof ids);
    assert_string_equal(ids, "40");
    busca_ids(p, "?documento=52998224725&status=3&pagina=2&total_registros=1", ids, sizeof ids);
    assert_string_equal(ids, "30");
    busca_ids(p, "?documento=52998224725&nome_fantasia=b", ids, sizeof ids);
    assert_string_equal(ids, "30");
    busca_ids(p, "?documento=529.982.247-25", ids, sizeof ids); /* exact: as stored */
    assert_string_equal(ids, "50");
    busca_ids(p, "?documento=39053344705", ids, sizeof ids);
    assert_string_equal(ids, "");
    ticket_client(p, "SHARED", tok, sizeof tok);
    assert_string_equal(tok, "SHARED");
    /* the shared token is client 20's (the first by id): the ticket names it */
    cJSON *r = listagem(p, "", "{\"filtro_body\":{\"cliente_id\":20}}");
    assert_int_equal(lista_size(r), 1);
    cJSON_Delete(r);
    r = listagem(p, "", "{\"filtro_body\":{\"cliente_id\":30}}");
    assert_int_equal(lista_size(r), 0);
    cJSON_Delete(r);
    ticket_client(p, tok70, tok, sizeof tok);
    assert_string_equal(tok, tok70);
    ticket_client(p, "NOPE00", tok, sizeof tok);
    assert_string_equal(tok, "");

    assert_int_equal(simproc_faults(p, "{\"document_match\":\"normalized\"}"), 0);
    busca_ids(p, "?documento=529.982.247-25", ids, sizeof ids);
    assert_string_equal(ids, "20,30,50");
    busca_ids(p, "?documento=11.144.477%2F735", ids, sizeof ids);
    assert_string_equal(ids, "60");

    /* a client created now is found at once, by document and by token */
    char *text = NULL;
    assert_int_equal(post(p, "/api/cliente/criar", "{\"cliente_documento\":\"39053344705\"" PF "}", &text), 200);
    long made = strtol(text, NULL, 10);
    free(text);
    r = busca(p, "?documento=39053344705", &(long){0});
    assert_int_equal(lista_size(r), 1);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "lista"), 0);
    assert_int_equal((long)cJSON_GetObjectItemCaseSensitive(c, "id")->valuedouble, made);
    char made_tok[32];
    snprintf(made_tok, sizeof made_tok, "%s", cJSON_GetObjectItemCaseSensitive(c, "token")->valuestring);
    cJSON_Delete(r);
    ticket_client(p, made_tok, tok, sizeof tok);
    assert_string_equal(tok, made_tok);
    /* the same document again is a duplicate (409), through the index too */
    assert_int_equal(post(p, "/api/cliente/criar", "{\"cliente_documento\":\"390.533.447-05\"" PF "}", NULL), 409);

    /* reseeding client 20 with another token and document moves both */
    assert_int_equal(simproc_seed(p, "{\"clientes\":[{\"id\":20,\"nome_fantasia\":\"Dup A\",\"cnpj_cpf\":\"11222333000181\",\"token\":\"NEW020\"}]}"), 0);
    busca_ids(p, "?documento=52998224725", ids, sizeof ids);
    assert_string_equal(ids, "30,50");
    busca_ids(p, "?documento=11222333000181", ids, sizeof ids);
    assert_string_equal(ids, "20,70");
    ticket_client(p, "NEW020", tok, sizeof tok);
    assert_string_equal(tok, "NEW020");
    r = listagem(p, "", "{\"filtro_body\":{\"cliente_id\":30}}"); /* SHARED is 30's now */
    assert_int_equal(lista_size(r), 1);
    cJSON_Delete(r);
    assert_int_equal(simproc_reset(p), 0);
    assert_int_equal(simproc_faults(p, UNLIMITED), 0);
    busca_ids(p, "?documento=11222333000181", ids, sizeof ids);
    assert_string_equal(ids, "");
    ticket_client(p, "NEW020", tok, sizeof tok);
    assert_string_equal(tok, "");
    assert_int_equal(simproc_stop(p), 0);
}

static void test_rate_limit(void **state)
{
    (void)state;
    simproc *p = start();
    assert_int_equal(simproc_faults(p, "{\"rate_limit_per_min\":5}"), 0);
    long st, ra;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simproc_request(p, "GET", "/api/cliente/busca", AUTH, NULL, &st, NULL, NULL), 0);
        assert_int_equal(st, 200);
    }
    char *text = NULL;
    assert_int_equal(simproc_request(p, "POST", "/api/chamado/listagem", AUTH, "{}", &st, &text, &ra), 0);
    assert_int_equal(st, 429);
    assert_true(ra >= 1);
    cJSON *j = cJSON_Parse(text);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "message")));
    cJSON_Delete(j);
    free(text);
    assert_int_equal(simproc_reset(p), 0);
    cJSON *f = simproc_request_json(p, "GET", "/_admin/faults", NULL, NULL, &st);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(f, "rate_limit_per_min")->valuedouble, 60);
    cJSON_Delete(f);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- keepalive_drop: one TCP connection, requests sent by hand --------------------------- */

/* A connection to the simulator (receive timeout 10 s: a test never hangs on it). */
static int raw_connect(const simproc *p)
{
    int port = simproc_port(p);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Sends one keep-alive HTTP/1.1 request (body NULL: none), without reading the answer. */
static void raw_send(int fd, const char *method, const char *path, const char *body)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " TOKEN "\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    assert_true(n > 0 && (size_t)n < sizeof req);
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        assert_true(w > 0);
        off += (size_t)w;
    }
}

/* Reads one answer. Returns the status, or 0 when the server closed the connection before
 * sending any byte of an answer. */
static long raw_recv(int fd)
{
    char buf[65536];
    size_t len = 0;
    const char *head_end = NULL;
    size_t want = 0;
    for (;;) {
        assert_true(len < sizeof buf - 1);
        ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        assert_true(r >= 0); /* an error (a reset, the 10 s timeout) is not a clean close */
        if (r == 0) {
            assert_int_equal(len, 0); /* closed mid-answer: not what the fault does */
            return 0;
        }
        len += (size_t)r;
        buf[len] = '\0';
        if (!head_end && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            assert_non_null(cl);
            want = (size_t)(head_end + 4 - buf) + (size_t)strtoul(cl + 17, NULL, 10);
        }
        if (head_end && len >= want)
            break;
    }
    assert_true(strncmp(buf, "HTTP/1.1 ", 9) == 0);
    return strtol(buf + 9, NULL, 10);
}

/* Sends one keep-alive request and reads its answer (raw_recv's result). */
static long raw_request(int fd, const char *method, const char *path, const char *body)
{
    raw_send(fd, method, path, body);
    return raw_recv(fd);
}

static int tickets(simproc *p)
{
    cJSON *st = simproc_state(p);
    assert_non_null(st);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(st, "chamados"));
    cJSON_Delete(st);
    return n;
}

#define TICKET "{\"cliente_id\":\"KA1\",\"chamado_assunto\":\"Keep-alive\"}"

static void test_keepalive_drop(void **state)
{
    (void)state;
    simproc *p = start();
    assert_int_equal(simproc_seed(p, "{\"clientes\":[{\"id\":1,\"token\":\"KA1\","
                                     "\"nome_fantasia\":\"ACME\",\"cnpj_cpf\":\"11222333000181\"}]}"),
                     0);
    /* bad values change nothing */
    assert_int_equal(simproc_admin_post(p, "faults", "{\"keepalive_drop\":\"sometimes\"}"), 400);
    assert_int_equal(simproc_admin_post(p, "faults", "{\"keepalive_drop_times\":1.5}"), 400);
    assert_int_equal(simproc_admin_post(p, "faults", "{\"keepalive_drop_times\":-2}"), 400);
    assert_int_equal(simproc_admin_post(p, "faults", "{\"keepalive_drop_path\":\"api\"}"), 400);
    assert_int_equal(simproc_admin_post(p, "faults", "{\"keepalive_drop_method\":\"post\"}"), 400);
    assert_int_equal(simproc_fault_num(p, "keepalive_drop_times", -100), -1);

    /* "before": the create on the reused connection is closed unanswered and never stored; the
     * first request of a connection is never dropped, even on the path */
    assert_int_equal(simproc_faults(p, "{\"keepalive_drop\":\"before\",\"keepalive_drop_times\":1,"
                                       "\"keepalive_drop_path\":\"/api/chamado/criar\","
                                       "\"keepalive_drop_method\":\"POST\"}"),
                     0);
    int fd = raw_connect(p);
    assert_int_equal(raw_request(fd, "POST", "/api/chamado/criar", TICKET), 200);
    assert_int_equal(raw_request(fd, "GET", "/api/cliente/busca", NULL), 200); /* other path */
    assert_int_equal(raw_request(fd, "GET", "/api/chamado/criar", NULL), 405); /* other method */
    assert_int_equal(raw_request(fd, "POST", "/api/chamado/criar", TICKET), 0);
    close(fd);
    assert_int_equal(tickets(p), 1);
    assert_int_equal(simproc_fault_num(p, "keepalive_drop_times", -100), 0);
    /* drops spent: a reused connection is answered again */
    fd = raw_connect(p);
    assert_int_equal(raw_request(fd, "GET", "/api/cliente/busca", NULL), 200);
    assert_int_equal(raw_request(fd, "POST", "/api/chamado/criar", TICKET), 200);
    close(fd);
    assert_int_equal(tickets(p), 2);

    /* "after": processed (the ticket is stored), then closed unanswered */
    assert_int_equal(simproc_faults(p, "{\"keepalive_drop\":\"after\",\"keepalive_drop_times\":1}"), 0);
    fd = raw_connect(p);
    assert_int_equal(raw_request(fd, "GET", "/api/cliente/busca", NULL), 200);
    assert_int_equal(raw_request(fd, "POST", "/api/chamado/criar", TICKET), 0);
    close(fd);
    assert_int_equal(tickets(p), 3);

    /* times -1 (every one) on every path ("" path): each reused request is dropped */
    assert_int_equal(simproc_faults(p, "{\"keepalive_drop\":\"before\",\"keepalive_drop_times\":-1,"
                                       "\"keepalive_drop_path\":\"\",\"keepalive_drop_method\":\"\"}"),
                     0);
    for (int i = 0; i < 2; i++) {
        fd = raw_connect(p);
        assert_int_equal(raw_request(fd, "GET", "/api/cliente/busca", NULL), 200);
        assert_int_equal(raw_request(fd, "GET", "/api/cliente/busca", NULL), 0);
        close(fd);
    }
    assert_int_equal(simproc_fault_num(p, "keepalive_drop_times", -100), -1);

    /* the journal, in order: what arrived, on which request of its connection, what was dropped */
    static const struct {
        const char *method, *path;
        int status, conn_request;
        const char *drop;
    } want[] = {
        {"POST", "/api/chamado/criar", 200, 1, ""},
        {"GET", "/api/cliente/busca", 200, 2, ""},
        {"GET", "/api/chamado/criar", 405, 3, ""},
        {"POST", "/api/chamado/criar", 0, 4, "keepalive_before"},
        {"GET", "/api/cliente/busca", 200, 1, ""},
        {"POST", "/api/chamado/criar", 200, 2, ""},
        {"GET", "/api/cliente/busca", 200, 1, ""},
        {"POST", "/api/chamado/criar", 0, 2, "keepalive_after"},
        {"GET", "/api/cliente/busca", 200, 1, ""},
        {"GET", "/api/cliente/busca", 0, 2, "keepalive_before"},
        {"GET", "/api/cliente/busca", 200, 1, ""},
        {"GET", "/api/cliente/busca", 0, 2, "keepalive_before"},
    };
    size_t nwant = sizeof want / sizeof want[0];
    long st;
    cJSON *j = simproc_request_json(p, "GET", "/_admin/requests", NULL, NULL, &st);
    assert_int_equal(st, 200);
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(j, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), nwant);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble, nwant);
    for (size_t i = 0; i < nwant; i++) {
        const cJSON *e = cJSON_GetArrayItem(reqs, (int)i);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "seq")->valuedouble, i + 1);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "method")->valuestring, want[i].method);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "path")->valuestring, want[i].path);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "status")->valuedouble, want[i].status);
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "conn_request")->valuedouble,
                         want[i].conn_request);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "drop")->valuestring, want[i].drop);
    }
    cJSON_Delete(j);
    /* the stats count the unanswered ones with status 0 */
    cJSON *stats = simproc_stats(p);
    int dropped = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(stats, "requests"))
        if (cJSON_GetObjectItemCaseSensitive(row, "status")->valuedouble == 0)
            dropped += (int)cJSON_GetObjectItemCaseSensitive(row, "count")->valuedouble;
    cJSON_Delete(stats);
    assert_int_equal(dropped, 4);

    /* reset: off again, journal empty */
    assert_int_equal(simproc_reset(p), 0);
    cJSON *f = simproc_request_json(p, "GET", "/_admin/faults", NULL, NULL, &st);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(f, "keepalive_drop")->valuestring, "off");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(f, "keepalive_drop_path")->valuestring, "");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(f, "keepalive_drop_method")->valuestring, "");
    cJSON_Delete(f);
    j = simproc_request_json(p, "GET", "/_admin/requests", NULL, NULL, &st);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "requests")), 0);
    cJSON_Delete(j);
    assert_int_equal(simproc_stop(p), 0);
}

/* ---- the journal is in arrival order ----------------------------------------------------- */

/* The journal's entries (cJSON_Delete it), asserting the GET worked. */
static cJSON *journal(simproc *p)
{
    long st;
    cJSON *j = simproc_request_json(p, "GET", "/_admin/requests", NULL, NULL, &st);
    assert_int_equal(st, 200);
    assert_non_null(j);
    return j;
}

/* True when the journal's first entry is a GET /api/cliente/busca still in progress. */
static bool first_in_progress(void *ctx)
{
    long st;
    cJSON *j = simproc_request_json(ctx, "GET", "/_admin/requests", NULL, NULL, &st);
    const cJSON *e = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "requests"), 0);
    bool yes = st == 200 && e != NULL &&
               cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(e, "done")) &&
               strcmp(cJSON_GetObjectItemCaseSensitive(e, "path")->valuestring,
                      "/api/cliente/busca") == 0;
    cJSON_Delete(j);
    return yes;
}

static void expect_entry(const cJSON *e, int seq, const char *method, const char *path,
                         int status, bool done)
{
    assert_non_null(e);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "seq")->valuedouble, seq);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "method")->valuestring, method);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "path")->valuestring, path);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e, "status")->valuedouble, status);
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "done")), done);
}

/* The journal holds the slow busca (seq 1: `status`, `done`) then the fast 405 (seq 2). */
static void expect_slow_then_fast(simproc *p, int status, bool done)
{
    cJSON *j = journal(p);
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(j, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 2);
    expect_entry(cJSON_GetArrayItem(reqs, 0), 1, "GET", "/api/cliente/busca", status, done);
    expect_entry(cJSON_GetArrayItem(reqs, 1), 2, "GET", "/api/chamado/criar", 405, true);
    cJSON_Delete(j);
}

/* A slow request (latency fault) that arrives first keeps the first place although a later
 * one ends first; while it is in progress the journal shows it, done false and status 0. */
static void test_journal_arrival_order(void **state)
{
    (void)state;
    simproc *p = start();
    /* the latency a request sees is the one set when it arrives */
    assert_int_equal(simproc_faults(p, "{\"latency_ms\":3000}"), 0);
    int slow = raw_connect(p);
    raw_send(slow, "GET", "/api/cliente/busca", NULL);
    assert_true(testenv_wait_until(first_in_progress, p, 15000, 20));
    cJSON *j = journal(p);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "total")->valuedouble, 1);
    expect_entry(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "requests"), 0), 1, "GET",
                 "/api/cliente/busca", 0, false);
    cJSON_Delete(j);

    assert_int_equal(simproc_faults(p, "{\"latency_ms\":0}"), 0);
    int fast = raw_connect(p);
    assert_int_equal(raw_request(fast, "GET", "/api/chamado/criar", NULL), 405);
    close(fast);
    expect_slow_then_fast(p, 0, false); /* the fast one ended while the slow one sleeps */
    assert_int_equal(raw_recv(slow), 200);
    close(slow);
    expect_slow_then_fast(p, 200, true);

    /* a request in progress across a reset ends nowhere in the new journal */
    assert_int_equal(simproc_reset(p), 0);
    assert_int_equal(simproc_faults(p, "{\"latency_ms\":3000}"), 0);
    slow = raw_connect(p);
    raw_send(slow, "GET", "/api/cliente/busca", NULL);
    assert_true(testenv_wait_until(first_in_progress, p, 15000, 20));
    assert_int_equal(simproc_reset(p), 0); /* latency back to 0 */
    fast = raw_connect(p);
    assert_int_equal(raw_request(fast, "GET", "/api/chamado/criar", NULL), 405);
    close(fast);
    assert_int_equal(raw_recv(slow), 200);
    close(slow);
    j = journal(p);
    const cJSON *reqs = cJSON_GetObjectItemCaseSensitive(j, "requests");
    assert_int_equal(cJSON_GetArraySize(reqs), 1);
    expect_entry(cJSON_GetArrayItem(reqs, 0), 1, "GET", "/api/chamado/criar", 405, true);
    cJSON_Delete(j);
    assert_int_equal(simproc_stop(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth),   cmocka_unit_test(test_cliente_criar),
        cmocka_unit_test(test_busca),  cmocka_unit_test(test_chamados),
        cmocka_unit_test(test_rate_limit), cmocka_unit_test(test_client_indexes),
        cmocka_unit_test(test_keepalive_drop), cmocka_unit_test(test_journal_arrival_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
