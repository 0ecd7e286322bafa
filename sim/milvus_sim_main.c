/* milvus-sim: a faithful local fake of the Milvus help-desk API (milvus.com.br; reference/apis.md
 * §2 and §4.2, SPEC §8): clients (/cliente/busca, /cliente/criar) and tickets (/chamado/criar,
 * /chamado/listagem; optionally /chamado/finalizar, /chamado/acompanhamento[/criar],
 * /cliente/contato/pesquisar) under /api, raw-token Authorization, and the shared admin API
 * and faults.
 *
 *   milvus-sim --port P --token T [--state FILE]
 *
 * Strict (issue 9, README.md): documents match as stored (document_match), a seeded catalogue
 * (mesas, setores, categorias) validates ticket names, /chamado/listagem applies every
 * documented filter and lists open tickets unless told otherwise (listagem_default_status).
 *
 * Stored records keep every field the client sent (cliente_*, chamado_*) next to the fields the
 * listings print; listings leave the request-only fields out.
 */
#include "simdoc.h"
#include "simjson.h"
#include "simmain.h"
#include "simsrv.h"
#include "simindex.h"
#include "simstore.h"
#include "simtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LIST_DEFAULT 50
#define LIST_MAX 1000

typedef struct app {
    const char *token;
    simstore clients; /* by id */
    simstore tickets; /* by id */
    /* clients by token and by document (normalised or as stored), rebuilt on demand when
     * clients change: a ticket create or a busca by document is a lookup, not a scan */
    simindex by_token, by_doc;
    int64_t next_client_id;
    int64_t next_ticket_id;
    int64_t next_codigo;
    int64_t next_followup_id;
    uint64_t rng;
    /* the account's catalogue (seed keys mesas, setores, categorias): arrays of names, NULL
     * until seeded; a seeded one makes chamado/criar reject names outside it */
    cJSON *mesas, *setores, *categorias;
} app;

/* Is `name` in the seeded catalogue `cat` (case-sensitive)? true when no catalogue. */
static bool in_catalogue(const cJSON *cat, const char *name)
{
    if (!cat)
        return true;
    const cJSON *it;
    cJSON_ArrayForEach(it, cat)
        if (cJSON_IsString(it) && strcmp(it->valuestring, name) == 0)
            return true;
    return false;
}

static void error_body(void *ctx, simsrv *srv, simsrv_resp *resp, int status, const char *message)
{
    (void)ctx;
    (void)srv;
    simsrv_resp_message(resp, status, "message", message);
}

static const char *auth_cb(void *ctx, simsrv *srv, const simsrv_req *req)
{
    app *a = ctx;
    if (simsrv_header_is(req, "Authorization", NULL, a->token))
        return a->token;
    if (simsrv_get_faults(srv)->accept_bearer &&
        simsrv_header_is(req, "Authorization", "Bearer ", a->token))
        return a->token;
    return NULL;
}

static void bare_number(simsrv_resp *resp, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    simsrv_resp_text(resp, 200, "application/json; charset=utf-8", buf);
}

static uint64_t rnd(app *a)
{
    a->rng ^= a->rng << 13;
    a->rng ^= a->rng >> 7;
    a->rng ^= a->rng << 17;
    return a->rng;
}

static const cJSON *client_by_token_scan(const app *a, const char *token)
{
    for (size_t i = 0; i < a->clients.n; i++) {
        const char *t = simjson_get_str(a->clients.items[i].obj, "token");
        if (t && strcmp(t, token) == 0)
            return a->clients.items[i].obj;
    }
    return NULL;
}

static cJSON *new_token(app *a)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char tok[7];
    do {
        for (int i = 0; i < 6; i++)
            tok[i] = alphabet[rnd(a) % 36];
        tok[6] = '\0';
    } while (client_by_token_scan(a, tok)); /* seeding: the store changes between calls */
    return cJSON_CreateString(tok);
}

static bool token_key(const cJSON *client, char *out, size_t size)
{
    const char *t = simjson_get_str(client, "token");
    if (!t || strlen(t) >= size)
        return false;
    memcpy(out, t, strlen(t) + 1);
    return true;
}

/* The first client (by id) whose token is `token`, or NULL. */
static const cJSON *client_by_token(app *a, const char *token)
{
    if (strlen(token) >= SIMINDEX_KEY_MAX || simindex_sync(&a->by_token, &a->clients, token_key) < 0)
        return client_by_token_scan(a, token);
    size_t count, at = simindex_find(&a->by_token, token, &count);
    return count ? a->by_token.rows[at].obj : NULL;
}

/* The comparable form of a document: normalised; a digits-only one shorter than a full
 * document (a number that lost its leading zeros) is left-padded to `hint` (11 for a person,
 * 14 for a company) or, without a hint, by length (<= 11 → 11, 12-13 → 14). */
static bool doc_key(const cJSON *v, int hint, char *out, size_t size)
{
    char raw[64];
    if (cJSON_IsString(v)) {
        if (!simdoc_normalize(v->valuestring, raw, sizeof raw))
            return false;
    } else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= 0 &&
               v->valuedouble < 1e15 && floor(v->valuedouble) == v->valuedouble) {
        snprintf(raw, sizeof raw, "%lld", (long long)v->valuedouble);
    } else {
        return false;
    }
    size_t n = strlen(raw);
    bool digits = n > 0 && strspn(raw, "0123456789") == n;
    size_t want = n;
    if (digits && hint && n < (size_t)hint)
        want = (size_t)hint;
    else if (digits && n < 11)
        want = 11;
    else if (digits && n > 11 && n < 14)
        want = 14;
    if (want + 1 > size)
        return false;
    memset(out, '0', want - n);
    memcpy(out + (want - n), raw, n + 1);
    return true;
}

static bool stored_doc_key(const cJSON *client, char *out, size_t size)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(client, "cnpj_cpf");
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(client, "is_fisica");
    int hint = cJSON_IsBool(pf) ? (cJSON_IsTrue(pf) ? 11 : 14) : 0;
    return d && doc_key(d, hint, out, size);
}

/* The document exactly as stored: the string, or the digits of a stored number. */
static bool stored_doc_text(const cJSON *client, char *out, size_t size)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(client, "cnpj_cpf");
    int64_t v;
    if (cJSON_IsString(d) && strlen(d->valuestring) < size) {
        snprintf(out, size, "%s", d->valuestring);
        return true;
    }
    if (simjson_i64(d, &v) && v >= 0) {
        snprintf(out, size, "%lld", (long long)v);
        return true;
    }
    return false;
}

/* Does client c hold the document? normalized: `key` is a doc_key and is compared with the
 * stored document's key; exact: `key` is compared with the stored text byte for byte. */
static bool client_has_doc(const cJSON *c, const char *key, bool normalized)
{
    char k2[64];
    if (normalized)
        return stored_doc_key(c, k2, sizeof k2) && strcmp(k2, key) == 0;
    return stored_doc_text(c, k2, sizeof k2) && strcmp(k2, key) == 0;
}

/* The clients holding document `key` (as client_has_doc decides), in id order: true with
 * by_doc.rows[*at .. *at + *count); false when the index cannot answer (a key too long, out of
 * memory): the caller scans every client. */
static bool docs_index(app *a, const char *key, bool normalized, size_t *at, size_t *count)
{
    if (strlen(key) >= SIMINDEX_KEY_MAX ||
        simindex_sync(&a->by_doc, &a->clients, normalized ? stored_doc_key : stored_doc_text) < 0)
        return false;
    *at = simindex_find(&a->by_doc, key, count);
    return true;
}

static const cJSON *client_by_doc(app *a, const char *key, bool normalized)
{
    size_t at, count;
    if (docs_index(a, key, normalized, &at, &count))
        return count ? a->by_doc.rows[at].obj : NULL;
    for (size_t i = 0; i < a->clients.n; i++)
        if (client_has_doc(a->clients.items[i].obj, key, normalized))
            return a->clients.items[i].obj;
    return NULL;
}

/* Fields of a /cliente/busca row (apis.md §2.2) a seeded record may lack, with their default. */
static void fill_client_defaults(cJSON *row)
{
    static const char *nulls[] = {"bc_cliente_id", "pais_id", "cliente_matriz_id", "tipo_moeda",
                                  "motivo_bloqueio", "inscricao_estadual", "site", "sexo",
                                  "data_nascimento", "observacao", NULL};
    for (int i = 0; nulls[i]; i++)
        if (!cJSON_GetObjectItemCaseSensitive(row, nulls[i]))
            cJSON_AddNullToObject(row, nulls[i]);
    if (!cJSON_GetObjectItemCaseSensitive(row, "tipo_tempo_sla_id"))
        cJSON_AddNumberToObject(row, "tipo_tempo_sla_id", 1);
    if (!cJSON_GetObjectItemCaseSensitive(row, "nome_fantasia"))
        cJSON_AddNullToObject(row, "nome_fantasia");
    if (!cJSON_GetObjectItemCaseSensitive(row, "razao_social"))
        simjson_set(row, "razao_social", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(row, "nome_fantasia"), true));
    if (!cJSON_GetObjectItemCaseSensitive(row, "is_ativo"))
        cJSON_AddBoolToObject(row, "is_ativo", true);
    if (!cJSON_GetObjectItemCaseSensitive(row, "is_fisica")) {
        char doc[64];
        cJSON_AddBoolToObject(row, "is_fisica", stored_doc_text(row, doc, sizeof doc) && strlen(doc) <= 11);
    }
    if (!cJSON_GetObjectItemCaseSensitive(row, "equipes"))
        cJSON_AddArrayToObject(row, "equipes");
}

static bool nonempty(const cJSON *o, const char *key)
{
    const char *s = simjson_get_str(o, key);
    if (!s)
        return false;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return true;
    return false;
}

static void copy_str(cJSON *dst, const char *dkey, const cJSON *src, const char *skey)
{
    const cJSON *v = src ? cJSON_GetObjectItemCaseSensitive(src, skey) : NULL;
    if (cJSON_IsString(v))
        simjson_set(dst, dkey, cJSON_CreateString(v->valuestring));
    else if (!cJSON_GetObjectItemCaseSensitive(dst, dkey))
        simjson_set(dst, dkey, cJSON_CreateNull());
}

/* A copy of rec without the request-only fields (hide_prefix*, hide2) and the follow-ups. */
static cJSON *public_view(const cJSON *rec, const char *hide_prefix, const char *hide2)
{
    cJSON *out = cJSON_CreateObject();
    const cJSON *it;
    cJSON_ArrayForEach(it, rec)
    {
        if (strncmp(it->string, hide_prefix, strlen(hide_prefix)) == 0 ||
            (hide2 && strcmp(it->string, hide2) == 0) || strcmp(it->string, "acompanhamentos") == 0)
            continue;
        cJSON_AddItemToObject(out, it->string, cJSON_Duplicate(it, true));
    }
    return out;
}

static bool is_active(const cJSON *c)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "is_ativo");
    return !v || cJSON_IsNull(v) || cJSON_IsTrue(v) || (cJSON_IsNumber(v) && v->valuedouble != 0);
}

/* ---- /cliente/busca -------------------------------------------------------------------------- */

static bool ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

static void handle_busca(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    const char *status_s = simsrv_param_get(req, "status");
    int64_t status = 1;
    if (status_s && status_s[0] &&
        (!simjson_parse_count(status_s, &status) || status < 1 || status > 3)) {
        error_body(a, srv, resp, 400, "status inválido: use 1 (ativos), 2 (bloqueados) ou 3 (todos)");
        return;
    }
    const simsrv_faults *f = simsrv_get_faults(srv);
    const char *doc_s = simsrv_param_get(req, "documento");
    char doc[64] = "";
    if (doc_s && doc_s[0]) {
        cJSON *tmp = cJSON_CreateString(doc_s);
        bool ok = tmp && doc_key(tmp, 0, doc, sizeof doc);
        cJSON_Delete(tmp);
        if (!ok) {
            error_body(a, srv, resp, 400, "documento inválido");
            return;
        }
        if (!f->document_normalized) /* as stored: the text sent, byte for byte */
            snprintf(doc, sizeof doc, "%s", doc_s);
    }
    const char *nome = simsrv_param_get(req, "nome_fantasia");
    const char *pag_s = f->busca_paging ? simsrv_param_get(req, "pagina") : NULL;
    const char *tot_s = f->busca_paging ? simsrv_param_get(req, "total_registros") : NULL;
    int64_t pagina = 1, per = INT64_MAX;
    if ((pag_s && (!simjson_parse_count(pag_s, &pagina) || pagina < 1)) ||
        (tot_s && (!simjson_parse_count(tot_s, &per) || per < 1))) {
        error_body(a, srv, resp, 400, "pagina e total_registros devem ser inteiros positivos");
        return;
    }
    /* truncate_at (default 1000, the seed's blind spot) caps every answer; 0 = no cap */
    int64_t cap = f->truncate_at;
    if (cap > 0 && per > cap)
        per = cap;

    cJSON *out = cJSON_CreateObject();
    cJSON *lista = cJSON_AddArrayToObject(out, "lista");
    int64_t matched = 0, first = 0;
    if (pagina > 1)
        first = per > INT64_MAX / (pagina - 1) ? INT64_MAX : (pagina - 1) * per;
    size_t at = 0, ncand = a->clients.n;
    bool by_doc = doc[0] && docs_index(a, doc, f->document_normalized, &at, &ncand);
    for (size_t i = 0; i < ncand; i++) {
        const cJSON *c = by_doc ? a->by_doc.rows[at + i].obj : a->clients.items[i].obj;
        bool active = is_active(c);
        if ((status == 1 && !active) || (status == 2 && active))
            continue;
        if (doc[0] && !client_has_doc(c, doc, f->document_normalized))
            continue;
        if (nome && nome[0]) {
            const char *nf = simjson_get_str(c, "nome_fantasia");
            if (!nf || !ci_contains(nf, nome))
                continue;
        }
        if (matched >= first && matched - first < per) {
            cJSON *row = public_view(c, "cliente_", NULL);
            if (row)
                fill_client_defaults(row);
            cJSON_AddItemToArray(lista, row);
        }
        matched++;
    }
    if (pag_s || tot_s) {
        cJSON *meta = cJSON_AddObjectToObject(out, "meta");
        cJSON *pg = cJSON_AddObjectToObject(meta, "paginate");
        char cur[32];
        snprintf(cur, sizeof cur, "%lld", (long long)pagina);
        int64_t shown = cJSON_GetArraySize(lista);
        cJSON_AddStringToObject(pg, "current_page", cur);
        cJSON_AddNumberToObject(pg, "total", (double)matched);
        cJSON_AddNumberToObject(pg, "from", shown ? (double)(first + 1) : 0);
        cJSON_AddNumberToObject(pg, "to", shown ? (double)(first + shown) : 0);
        cJSON_AddNumberToObject(pg, "last_page", matched ? (double)((matched - 1) / per + 1) : 1);
        cJSON_AddNumberToObject(pg, "per_page", per == INT64_MAX ? (double)matched : (double)per);
    }
    simsrv_resp_json(resp, 200, out);
}

/* ---- /cliente/criar -------------------------------------------------------------------------- */

static cJSON *parse_object(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp, bool empty_ok)
{
    if (empty_ok && req->body_len == 0)
        return cJSON_CreateObject();
    cJSON *body = simjson_parse(req->body, req->body_len);
    if (!body) {
        error_body(a, srv, resp, 400, "JSON inválido no corpo da requisição");
        return NULL;
    }
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        error_body(a, srv, resp, 400, "O corpo da requisição deve ser um objeto JSON");
        return NULL;
    }
    return body;
}

static void handle_cliente_criar(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *body = parse_object(a, srv, req, resp, false);
    if (!body)
        return;
    const char *msg = NULL;
    int status = 400;
    const cJSON *docv = cJSON_GetObjectItemCaseSensitive(body, "cliente_documento");
    const cJSON *pf = cJSON_GetObjectItemCaseSensitive(body, "cliente_pessoa_fisica");
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(body, "cliente_pessoa_juridica");
    bool has_pf = pf && !cJSON_IsNull(pf), has_pj = pj && !cJSON_IsNull(pj);
    char key[64], stored[64];
    const simsrv_faults *f = simsrv_get_faults(srv);
    if (!docv || cJSON_IsNull(docv) || (cJSON_IsString(docv) && !docv->valuestring[0])) {
        msg = "cliente_documento é obrigatório";
        goto fail;
    }
    if (cJSON_IsString(docv) && !f->uppercase_documents) {
        for (const char *q = docv->valuestring; *q; q++) {
            if (*q >= 'a' && *q <= 'z') {
                msg = "Documento inválido: letras do CNPJ devem ser maiúsculas";
                goto fail;
            }
        }
    }
    if (!doc_key(docv, has_pf && !has_pj ? 11 : has_pj && !has_pf ? 14 : 0, key, sizeof key)) {
        msg = "Documento inválido";
        goto fail;
    }
    if (cJSON_IsString(docv)) {
        if (!simdoc_normalize(docv->valuestring, stored, sizeof stored) ||
            (strlen(stored) != 11 && strlen(stored) != 14)) {
            msg = "Documento inválido";
            goto fail;
        }
    } else {
        snprintf(stored, sizeof stored, "%lld", (long long)docv->valuedouble);
    }
    if (!simdoc_valid(key)) {
        msg = "Documento inválido: CPF/CNPJ com dígito verificador incorreto";
        goto fail;
    }
    bool is_cpf = strlen(key) == 11;
    if (has_pf == has_pj) {
        msg = "Informe exatamente um entre cliente_pessoa_fisica e cliente_pessoa_juridica";
        goto fail;
    }
    if ((has_pf && !cJSON_IsObject(pf)) || (has_pj && !cJSON_IsObject(pj))) {
        msg = "cliente_pessoa_fisica / cliente_pessoa_juridica devem ser objetos";
        goto fail;
    }
    if (has_pf != is_cpf) {
        msg = has_pf ? "cliente_pessoa_fisica exige um CPF" : "cliente_pessoa_juridica exige um CNPJ";
        goto fail;
    }
    if (has_pf && !nonempty(pf, "nome")) {
        msg = "cliente_pessoa_fisica.nome é obrigatório";
        goto fail;
    }
    if (has_pj && !nonempty(pj, "nome_fantasia") && !nonempty(pj, "razao_social")) {
        msg = "cliente_pessoa_juridica.nome_fantasia ou razao_social é obrigatório";
        goto fail;
    }
    const char *strs[] = {"cliente_site", "cliente_observacao", NULL};
    for (int i = 0; strs[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, strs[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
            msg = "Campo inválido";
            goto fail;
        }
    }
    const cJSON *lists[] = {cJSON_GetObjectItemCaseSensitive(body, "cliente_enderecos"),
                            cJSON_GetObjectItemCaseSensitive(body, "cliente_contatos")};
    for (int i = 0; i < 2; i++) {
        if (lists[i] && !cJSON_IsNull(lists[i]) && !cJSON_IsArray(lists[i])) {
            msg = "cliente_enderecos e cliente_contatos devem ser listas";
            goto fail;
        }
    }
    const cJSON *ativo = cJSON_GetObjectItemCaseSensitive(body, "cliente_ativo");
    if (ativo && !cJSON_IsNull(ativo) && !cJSON_IsBool(ativo)) {
        msg = "cliente_ativo deve ser booleano";
        goto fail;
    }
    if (f->duplicate_status != 200 &&
        client_by_doc(a, f->document_normalized ? key : stored, f->document_normalized)) {
        status = f->duplicate_status;
        msg = "Cliente já cadastrado";
        goto fail;
    }

    int64_t id = a->next_client_id++;
    cJSON *rec = body; /* every field sent is kept */
    body = NULL;
    simjson_set(rec, "id", simjson_num_i64(id));
    simjson_set(rec, "token", new_token(a));
    simjson_set(rec, "cnpj_cpf", cJSON_CreateString(stored));
    if (has_pj) {
        const char *nf = nonempty(pj, "nome_fantasia") ? "nome_fantasia" : "razao_social";
        const char *rs = nonempty(pj, "razao_social") ? "razao_social" : "nome_fantasia";
        copy_str(rec, "nome_fantasia", pj, nf);
        copy_str(rec, "razao_social", pj, rs);
        copy_str(rec, "inscricao_estadual", pj, "inscricao_estadual");
        simjson_set(rec, "sexo", cJSON_CreateNull());
        simjson_set(rec, "data_nascimento", cJSON_CreateNull());
    } else {
        copy_str(rec, "nome_fantasia", pf, "nome");
        copy_str(rec, "razao_social", pf, "nome");
        simjson_set(rec, "inscricao_estadual", cJSON_CreateNull());
        copy_str(rec, "sexo", pf, "sexo");
        copy_str(rec, "data_nascimento", pf, "data_nascimento");
    }
    copy_str(rec, "site", rec, "cliente_site");
    copy_str(rec, "observacao", rec, "cliente_observacao");
    simjson_set(rec, "is_fisica", cJSON_CreateBool(has_pf));
    simjson_set(rec, "is_ativo", cJSON_CreateBool(!ativo || cJSON_IsNull(ativo) || cJSON_IsTrue(ativo)));
    simjson_set(rec, "is_sla", cJSON_CreateFalse());
    simjson_set(rec, "is_esporadico", cJSON_CreateFalse());
    simjson_set(rec, "timezone", cJSON_CreateString("America/Sao_Paulo"));
    simjson_set(rec, "idioma", cJSON_CreateNumber(1));
    simjson_set(rec, "motivo_bloqueio", cJSON_CreateNull());
    simjson_set(rec, "is_visivel", cJSON_CreateTrue());
    cJSON *eq = cJSON_CreateArray();
    cJSON_AddItemToArray(eq, cJSON_CreateString("EQUIPE PADRÃO"));
    simjson_set(rec, "equipes", eq);
    simjson_set(rec, "grupo_categorias", cJSON_CreateArray());
    fill_client_defaults(rec);
    if (simstore_put(&a->clients, id, rec) < 0) {
        error_body(a, srv, resp, 500, "out of memory");
        return;
    }
    bare_number(resp, id);
    simsrv_after_write(srv, resp);
    return;
fail:
    cJSON_Delete(body);
    error_body(a, srv, resp, status, msg);
}

/* ---- /chamado/criar ------------------------------------------------------------------------- */

static void handle_chamado_criar(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *body = parse_object(a, srv, req, resp, false);
    if (!body)
        return;
    const char *msg = NULL;
    int status = 400;
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(body, "cliente_id");
    const cJSON *client = NULL;
    if (!cid || cJSON_IsNull(cid) || (cJSON_IsString(cid) && !cid->valuestring[0])) {
        msg = "cliente_id é obrigatório";
        goto fail;
    }
    if (cJSON_IsString(cid))
        client = client_by_token(a, cid->valuestring);
    if (!client && simsrv_get_faults(srv)->ticket_client_id_any) {
        int64_t num;
        if (simjson_i64(cid, &num) || (cJSON_IsString(cid) && simjson_parse_count(cid->valuestring, &num)))
            client = simstore_get(&a->clients, num);
    }
    if (!client) {
        status = 404;
        msg = "Cliente não encontrado";
        goto fail;
    }
    if (!nonempty(body, "chamado_assunto")) {
        msg = "chamado_assunto é obrigatório";
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        if (strncmp(it->string, "chamado_", 8) == 0 && !cJSON_IsString(it) && !cJSON_IsNull(it) &&
            !cJSON_IsBool(it)) {
            msg = "Campo inválido";
            goto fail;
        }
    }
    static const struct {
        const char *field;
        int cat; /* 0 mesas, 1 setores, 2 categorias */
        const char *what;
    } named[] = {{"chamado_mesa", 0, "Mesa de trabalho"},
                 {"chamado_setor", 1, "Setor"},
                 {"chamado_categoria_primaria", 2, "Categoria primária"},
                 {"chamado_categoria_secundaria", 2, "Categoria secundária"}};
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        const cJSON *cat = named[i].cat == 0 ? a->mesas : named[i].cat == 1 ? a->setores : a->categorias;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, named[i].field);
        if (!cat || !v || cJSON_IsNull(v))
            continue;
        if (!cJSON_IsString(v) || !in_catalogue(cat, v->valuestring)) {
            static char why[160]; /* the state lock is held: one writer at a time */
            snprintf(why, sizeof why, "%s não encontrado(a): %.80s", named[i].what,
                     cJSON_IsString(v) ? v->valuestring : "?");
            msg = why;
            goto fail;
        }
    }
    int64_t id = a->next_ticket_id++;
    int64_t codigo = a->next_codigo++;
    cJSON *t = body;
    body = NULL;
    char when[32];
    simjson_set(t, "id", simjson_num_i64(id));
    simjson_set(t, "codigo", simjson_num_i64(codigo));
    copy_str(t, "assunto", t, "chamado_assunto");
    copy_str(t, "descricao", t, "chamado_descricao");
    copy_str(t, "cliente", client, "nome_fantasia");
    simjson_set(t, "cliente_token", cJSON_CreateString(simjson_get_str(client, "token")));
    copy_str(t, "contato", t, "chamado_contato");
    copy_str(t, "email_conferencia", t, "chamado_email");
    copy_str(t, "telefone", t, "chamado_telefone");
    copy_str(t, "tecnico", t, "chamado_tecnico");
    copy_str(t, "mesa_trabalho", t, "chamado_mesa");
    copy_str(t, "setor", t, "chamado_setor");
    copy_str(t, "categoria_primaria", t, "chamado_categoria_primaria");
    copy_str(t, "categoria_secundaria", t, "chamado_categoria_secundaria");
    simjson_set(t, "prioridade", cJSON_CreateString("Normal"));
    simjson_set(t, "status", cJSON_CreateString("AgAtendimento"));
    simjson_set(t, "status_id", cJSON_CreateNumber(1));
    simjson_set(t, "data_criacao", cJSON_CreateString(simtime_format_milvus(simtime_now_ms(), when, sizeof when)));
    simjson_set(t, "data_solucao", cJSON_CreateNull());
    simjson_set(t, "total_horas", cJSON_CreateString("00:00"));
    simjson_set(t, "origem", cJSON_CreateString("API"));
    if (simstore_put(&a->tickets, id, t) < 0) {
        error_body(a, srv, resp, 500, "out of memory");
        return;
    }
    bare_number(resp, codigo);
    simsrv_after_write(srv, resp);
    return;
fail:
    cJSON_Delete(body);
    error_body(a, srv, resp, status, msg);
}

/* ---- /chamado/listagem ---------------------------------------------------------------------- */

static const char *STATUS_NAMES[] = {NULL, "AgAtendimento", "Atendendo", "Pausado", "Finalizado",
                                     "Conferencia", "Agendado", "Expirado", NULL, "ChamadosAbertos",
                                     "Todos", "AgSolucao"};

static int64_t ticket_status_id(const cJSON *t)
{
    int64_t id;
    if (simjson_get_i64(t, "status_id", &id))
        return id;
    const char *s = simjson_get_str(t, "status");
    for (int i = 1; s && i < 12; i++)
        if (STATUS_NAMES[i] && strcasecmp(STATUS_NAMES[i], s) == 0)
            return i;
    if (simjson_get_i64(t, "status", &id))
        return id;
    return 1;
}

/* A parameter from the body (wins) or the query string, as text. */
static bool param_text(const cJSON *body, const simsrv_req *req, const char *key, char *out, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
    if (cJSON_IsString(v)) {
        snprintf(out, size, "%s", v->valuestring);
        return true;
    }
    if (cJSON_IsBool(v)) {
        snprintf(out, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
        return true;
    }
    int64_t n;
    if (simjson_i64(v, &n)) {
        snprintf(out, size, "%lld", (long long)n);
        return true;
    }
    if (v && !cJSON_IsNull(v)) {
        snprintf(out, size, "?");
        return true;
    }
    const char *q = simsrv_param_get(req, key);
    if (q) {
        snprintf(out, size, "%s", q);
        return true;
    }
    return false;
}

typedef struct sortspec {
    const char *field;
    bool desc;
} sortspec;

static int cmp_tickets(const void *pa, const void *pb, void *ctx)
{
    const cJSON *a = *(const cJSON *const *)pa, *b = *(const cJSON *const *)pb;
    const sortspec *s = ctx;
    const cJSON *va = cJSON_GetObjectItemCaseSensitive(a, s->field);
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(b, s->field);
    int c = 0;
    if (cJSON_IsNumber(va) && cJSON_IsNumber(vb))
        c = va->valuedouble < vb->valuedouble ? -1 : va->valuedouble > vb->valuedouble;
    else if (cJSON_IsString(va) && cJSON_IsString(vb))
        c = strcmp(va->valuestring, vb->valuestring);
    else
        c = (va && !cJSON_IsNull(va)) - (vb && !cJSON_IsNull(vb));
    if (!c) {
        int64_t ia = 0, ib = 0;
        simjson_get_i64(a, "id", &ia);
        simjson_get_i64(b, "id", &ib);
        c = ia < ib ? -1 : ia > ib;
    }
    return s->desc ? -c : c;
}

/* filtro_body keys of /chamado/listagem (apis.md §2.5). codigo, cliente_token and status are
 * applied by handle_listagem; the rest by ticket_matches. An unknown key is a 400. */
typedef enum { FK_BUILTIN, FK_TEXT_EQ, FK_TEXT_IN, FK_DAY, FK_FROM, FK_TO, FK_CLIENT, FK_SAME,
               FK_CATEGORIES } fkind;
static const struct {
    const char *key;
    fkind kind;
    const char *field; /* the ticket field compared */
} FILTER_KEYS[] = {
    {"codigo", FK_BUILTIN, NULL},
    {"cliente_token", FK_BUILTIN, NULL},
    {"status", FK_BUILTIN, NULL},
    {"assunto", FK_TEXT_IN, "assunto"},
    {"nome_contato", FK_TEXT_EQ, "contato"},
    {"email_conferencia", FK_TEXT_EQ, "email_conferencia"},
    {"tecnico", FK_TEXT_EQ, "tecnico"},
    {"cliente", FK_TEXT_EQ, "cliente"},
    {"mesa_trabalho", FK_TEXT_EQ, "mesa_trabalho"},
    {"categoria_primaria", FK_TEXT_EQ, "categoria_primaria"},
    {"categoria_secundaria", FK_TEXT_EQ, "categoria_secundaria"},
    {"setor", FK_TEXT_EQ, "setor"},
    {"prioridade", FK_TEXT_EQ, "prioridade"},
    {"data_criacao", FK_DAY, "data_criacao"},
    {"data_solucao", FK_DAY, "data_solucao"},
    {"data_hora_criacao_inicial", FK_FROM, "data_criacao"},
    {"data_hora_criacao_final", FK_TO, "data_criacao"},
    {"data_hora_solucao_inicial", FK_FROM, "data_solucao"},
    {"data_hora_solucao_final", FK_TO, "data_solucao"},
    {"cliente_id", FK_CLIENT, NULL},
    {"categorias_id", FK_CATEGORIES, "categoria_id"},
    {"tipo_ticket", FK_SAME, "tipo_ticket"},
    {"dispositivo", FK_SAME, "dispositivo"},
    {"possui_avaliacao", FK_SAME, "possui_avaliacao"},
};

static int filter_index(const char *key)
{
    for (size_t i = 0; i < sizeof FILTER_KEYS / sizeof FILTER_KEYS[0]; i++)
        if (strcmp(FILTER_KEYS[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* "YYYY-MM-DD HH:MM:SS" (or, with day_only, "YYYY-MM-DD") */
static bool is_milvus_time(const char *s, bool day_only)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    size_t n = day_only ? 10 : sizeof shape - 1;
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])
            return false;
    return true;
}

/* Filter values that mean "no filter": null and "". */
static bool filter_unset(const cJSON *v)
{
    return !v || cJSON_IsNull(v) || (cJSON_IsString(v) && !v->valuestring[0]);
}

/* NULL when filtro_body key it is known and well-typed, else the 400 message. */
static const char *check_filter_key(const cJSON *it)
{
    static char why[160]; /* the state lock is held */
    int k = filter_index(it->string);
    if (k < 0) {
        snprintf(why, sizeof why, "filtro_body: campo desconhecido '%.60s'", it->string);
        return why;
    }
    if (filter_unset(it) || FILTER_KEYS[k].kind == FK_BUILTIN || FILTER_KEYS[k].kind == FK_SAME)
        return NULL;
    bool ok = true;
    switch (FILTER_KEYS[k].kind) {
    case FK_TEXT_EQ:
    case FK_TEXT_IN: ok = cJSON_IsString(it); break;
    case FK_DAY: ok = cJSON_IsString(it) && is_milvus_time(it->valuestring, true); break;
    case FK_FROM:
    case FK_TO: ok = cJSON_IsString(it) && is_milvus_time(it->valuestring, false); break;
    case FK_CLIENT: {
        int64_t v;
        ok = simjson_i64(it, &v) || cJSON_IsString(it);
        break;
    }
    case FK_CATEGORIES: {
        ok = cJSON_IsArray(it);
        const cJSON *el;
        int64_t v;
        cJSON_ArrayForEach(el, it) ok = ok && simjson_i64(el, &v);
        break;
    }
    default: break;
    }
    if (ok)
        return NULL;
    snprintf(why, sizeof why, "filtro_body.%.60s inválido", it->string);
    return why;
}

/* Every filtro_body condition but the built-in ones holds for ticket t. */
static bool ticket_matches(app *a, const cJSON *t, const cJSON *filtro)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, filtro)
    {
        int k = filter_index(it->string);
        if (k < 0 || filter_unset(it))
            continue;
        const char *field = FILTER_KEYS[k].field;
        const char *have = field ? simjson_get_str(t, field) : NULL;
        switch (FILTER_KEYS[k].kind) {
        case FK_TEXT_EQ:
            if (!have || strcasecmp(have, it->valuestring) != 0)
                return false;
            break;
        case FK_TEXT_IN:
            if (!have || !ci_contains(have, it->valuestring))
                return false;
            break;
        case FK_DAY:
            if (!have || strncmp(have, it->valuestring, 10) != 0)
                return false;
            break;
        case FK_FROM:
            if (!have || strcmp(have, it->valuestring) < 0)
                return false;
            break;
        case FK_TO:
            if (!have || strcmp(have, it->valuestring) > 0)
                return false;
            break;
        case FK_CLIENT: {
            const char *tok = simjson_get_str(t, "cliente_token");
            const cJSON *client = tok ? client_by_token(a, tok) : NULL;
            int64_t want, id;
            if (simjson_i64(it, &want) || simjson_parse_count(it->valuestring, &want)) {
                if (!client || !simjson_get_i64(client, "id", &id) || id != want)
                    return false;
            } else if (!tok || strcmp(tok, it->valuestring) != 0) {
                return false;
            }
            break;
        }
        case FK_CATEGORIES: {
            int64_t have_id, v;
            bool hit = false;
            const cJSON *el;
            if (!simjson_get_i64(t, field, &have_id))
                return false;
            cJSON_ArrayForEach(el, it) hit = hit || (simjson_i64(el, &v) && v == have_id);
            if (!hit)
                return false;
            break;
        }
        case FK_SAME:
            if (!cJSON_Compare(cJSON_GetObjectItemCaseSensitive(t, field), it, true))
                return false;
            break;
        default: break;
        }
    }
    return true;
}

static void handle_listagem(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *body = parse_object(a, srv, req, resp, true);
    if (!body)
        return;
    char buf[128];
    const char *msg = NULL;
    int64_t pagina = 1, per = LIST_DEFAULT;
    sortspec sort = {"codigo", true};
    const cJSON **rows = NULL;
    if (param_text(body, req, "pagina", buf, sizeof buf) &&
        (!simjson_parse_count(buf, &pagina) || pagina < 1)) {
        msg = "pagina deve ser um inteiro positivo";
        goto fail;
    }
    if (param_text(body, req, "total_registros", buf, sizeof buf) &&
        (!simjson_parse_count(buf, &per) || per < 1)) {
        msg = "total_registros deve ser um inteiro positivo";
        goto fail;
    }
    if (per > LIST_MAX)
        per = LIST_MAX;
    if (param_text(body, req, "is_descending", buf, sizeof buf)) {
        if (strcmp(buf, "true") == 0 || strcmp(buf, "1") == 0)
            sort.desc = true;
        else if (strcmp(buf, "false") == 0 || strcmp(buf, "0") == 0)
            sort.desc = false;
        else {
            msg = "is_descending deve ser true ou false";
            goto fail;
        }
    }
    if (param_text(body, req, "order_by", buf, sizeof buf)) {
        static const char *map[][2] = {{"codigo", "codigo"}, {"assunto", "assunto"},
                                       {"nome_contato", "contato"}, {"email_conferencia", "email_conferencia"},
                                       {"id", "id"}, {"data_criacao", "data_criacao"}, {NULL, NULL}};
        sort.field = NULL;
        for (int i = 0; map[i][0]; i++)
            if (strcmp(buf, map[i][0]) == 0)
                sort.field = map[i][1];
        if (!sort.field) {
            msg = "order_by inválido (codigo, assunto, nome_contato, email_conferencia)";
            goto fail;
        }
    }
    const cJSON *filtro = cJSON_GetObjectItemCaseSensitive(body, "filtro_body");
    if (filtro && !cJSON_IsNull(filtro) && !cJSON_IsObject(filtro)) {
        msg = "filtro_body deve ser um objeto";
        goto fail;
    }
    int64_t f_codigo = -1;
    const cJSON *fc = cJSON_GetObjectItemCaseSensitive(filtro, "codigo");
    if (fc && !cJSON_IsNull(fc) && !(cJSON_IsString(fc) && !fc->valuestring[0])) {
        if (!simjson_i64(fc, &f_codigo) &&
            !(cJSON_IsString(fc) && simjson_parse_count(fc->valuestring, &f_codigo))) {
            msg = "filtro_body.codigo inválido";
            goto fail;
        }
    }
    const char *f_token = simjson_get_str(filtro, "cliente_token");
    if (f_token && !f_token[0])
        f_token = NULL;
    int64_t f_status = simsrv_get_faults(srv)->listagem_default_status;
    const cJSON *fs = cJSON_GetObjectItemCaseSensitive(filtro, "status");
    if (fs && !cJSON_IsNull(fs) && !(cJSON_IsString(fs) && !fs->valuestring[0])) {
        f_status = -1;
        if (!simjson_i64(fs, &f_status) && cJSON_IsString(fs)) {
            if (!simjson_parse_count(fs->valuestring, &f_status))
                for (int i = 1; i < 12; i++)
                    if (STATUS_NAMES[i] && strcasecmp(STATUS_NAMES[i], fs->valuestring) == 0)
                        f_status = i;
        }
        if (f_status < 1 || f_status > 23) {
            msg = "filtro_body.status inválido";
            goto fail;
        }
    }
    const cJSON *fk;
    cJSON_ArrayForEach(fk, filtro)
    {
        const char *why = check_filter_key(fk);
        if (why) {
            msg = why;
            goto fail;
        }
    }
    rows = malloc((a->tickets.n ? a->tickets.n : 1) * sizeof *rows);
    if (!rows) {
        msg = "out of memory";
        goto fail;
    }
    size_t n = 0;
    for (size_t i = 0; i < a->tickets.n; i++) {
        const cJSON *t = a->tickets.items[i].obj;
        int64_t c;
        if (f_codigo >= 0 && (!simjson_get_i64(t, "codigo", &c) || c != f_codigo))
            continue;
        const char *tok = simjson_get_str(t, "cliente_token");
        if (f_token && (!tok || strcmp(tok, f_token) != 0))
            continue;
        int64_t st = ticket_status_id(t);
        if (f_status == 9 || f_status == 13 || f_status == 14) {
            if (st == 4 || st == 7)
                continue;
        } else if (f_status != 10 && st != f_status) {
            continue;
        }
        if (!ticket_matches(a, t, filtro))
            continue;
        rows[n++] = t;
    }
    qsort_r(rows, n, sizeof *rows, cmp_tickets, &sort);
    cJSON *out = cJSON_CreateObject();
    cJSON *pg = cJSON_AddObjectToObject(cJSON_AddObjectToObject(out, "meta"), "paginate");
    cJSON *lista = cJSON_AddArrayToObject(out, "lista");
    uint64_t first = (uint64_t)(pagina - 1) * (uint64_t)per;
    if (pagina - 1 > (int64_t)(n / (size_t)per) + 1)
        first = n;
    size_t shown = 0;
    size_t take = (size_t)per;
    if (first + (uint64_t)per < n) /* mid-scan: more rows follow this page */
        take = simsrv_short_page(srv, take);
    for (uint64_t i = first; i < n && shown < take; i++, shown++)
        cJSON_AddItemToArray(lista, public_view(rows[i], "chamado_", "cliente_id"));
    snprintf(buf, sizeof buf, "%lld", (long long)pagina);
    cJSON_AddStringToObject(pg, "current_page", buf);
    cJSON_AddNumberToObject(pg, "total", (double)n);
    cJSON_AddNumberToObject(pg, "to", shown ? (double)(first + shown) : 0);
    cJSON_AddNumberToObject(pg, "from", shown ? (double)(first + 1) : 0);
    cJSON_AddNumberToObject(pg, "last_page", n ? (double)((n + (size_t)per - 1) / (size_t)per) : 1);
    cJSON_AddNumberToObject(pg, "per_page", (double)per);
    free(rows);
    cJSON_Delete(body);
    simsrv_resp_json(resp, 200, out);
    return;
fail:
    free(rows);
    cJSON_Delete(body);
    error_body(a, srv, resp, 400, msg);
}

/* ---- optional endpoints: finalizar, acompanhamento, contato/pesquisar ------------------------ */

/* The ticket whose codigo is v (a number or a string of digits), or NULL. */
static cJSON *ticket_by_codigo(app *a, const cJSON *v)
{
    int64_t want;
    if (!simjson_i64(v, &want) && !(cJSON_IsString(v) && simjson_parse_count(v->valuestring, &want)))
        return NULL;
    for (size_t i = 0; i < a->tickets.n; i++) {
        int64_t c;
        if (simjson_get_i64(a->tickets.items[i].obj, "codigo", &c) && c == want)
            return a->tickets.items[i].obj;
    }
    return NULL;
}

static bool given(const cJSON *v)
{
    return v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0]);
}

/* PUT /chamado/finalizar {chamado_codigo, chamado_servico_realizado, ...} -> 200, body = codigo.
 * The ticket must be "Atendendo" (status 2) unless the finalize_any fault is on. */
static void handle_finalizar(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *body = parse_object(a, srv, req, resp, false);
    if (!body)
        return;
    const char *msg = NULL;
    int status = 400;
    const cJSON *cv = cJSON_GetObjectItemCaseSensitive(body, "chamado_codigo");
    cJSON *t = NULL;
    if (!given(cv)) {
        msg = "chamado_codigo é obrigatório";
        goto fail;
    }
    if (!(t = ticket_by_codigo(a, cv))) {
        status = 404;
        msg = "Chamado não encontrado";
        goto fail;
    }
    int64_t st = ticket_status_id(t);
    if (st == 4) {
        msg = "Chamado já finalizado";
        goto fail;
    }
    if (st != 2 && !simsrv_get_faults(srv)->finalize_any) {
        msg = "O chamado precisa estar em atendimento para ser finalizado";
        goto fail;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        if (strncmp(it->string, "chamado_", 8) == 0 && strcmp(it->string, "chamado_codigo") != 0)
            simjson_set(t, it->string, cJSON_Duplicate(it, true));
    }
    char when[32];
    simjson_set(t, "status", cJSON_CreateString("Finalizado"));
    simjson_set(t, "status_id", cJSON_CreateNumber(4));
    simjson_set(t, "data_solucao",
                cJSON_CreateString(simtime_format_milvus(simtime_now_ms(), when, sizeof when)));
    int64_t codigo = 0;
    simjson_get_i64(t, "codigo", &codigo);
    cJSON_Delete(body);
    bare_number(resp, codigo);
    return;
fail:
    cJSON_Delete(body);
    error_body(a, srv, resp, status, msg);
}

/* "HH:MM" (hours of any length) */
static bool is_hhmm(const char *s)
{
    size_t h = strspn(s, "0123456789");
    return h >= 1 && s[h] == ':' && strspn(s + h + 1, "0123456789") == 2 && s[h + 3] == '\0' &&
           (s[h + 1] - '0') * 10 + (s[h + 2] - '0') < 60;
}

/* POST /chamado/acompanhamento/criar {acompanhamento_ticket, acompanhamento_descricao,
 * acompanhamento_privado, atendimento_total_horas "HH:MM"} -> 204, kept in the ticket's
 * "acompanhamentos" (shown by GET /chamado/acompanhamento/{codigo} and /_admin/state). */
static void handle_acomp_criar(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *body = parse_object(a, srv, req, resp, false);
    if (!body)
        return;
    const char *msg = NULL;
    int status = 400;
    cJSON *t = NULL;
    const cJSON *tv = cJSON_GetObjectItemCaseSensitive(body, "acompanhamento_ticket");
    const cJSON *pv = cJSON_GetObjectItemCaseSensitive(body, "acompanhamento_privado");
    const cJSON *hv = cJSON_GetObjectItemCaseSensitive(body, "atendimento_total_horas");
    if (!given(tv)) {
        msg = "acompanhamento_ticket é obrigatório";
        goto fail;
    }
    if (!(t = ticket_by_codigo(a, tv))) {
        status = 404;
        msg = "Chamado não encontrado";
        goto fail;
    }
    if (!nonempty(body, "acompanhamento_descricao")) {
        msg = "acompanhamento_descricao é obrigatório";
        goto fail;
    }
    if ((given(pv) && !cJSON_IsBool(pv) && !cJSON_IsNumber(pv)) ||
        (given(hv) && !(cJSON_IsString(hv) && is_hhmm(hv->valuestring)))) {
        msg = "Campo inválido";
        goto fail;
    }
    cJSON *list = cJSON_GetObjectItemCaseSensitive(t, "acompanhamentos");
    if (!cJSON_IsArray(list)) {
        list = cJSON_CreateArray();
        simjson_set(t, "acompanhamentos", list);
    }
    cJSON *f = cJSON_CreateObject();
    char when[32];
    cJSON_AddItemToObject(f, "id", simjson_num_i64(a->next_followup_id++));
    cJSON_AddStringToObject(f, "descricao", simjson_get_str(body, "acompanhamento_descricao"));
    cJSON_AddBoolToObject(f, "is_privado", cJSON_IsTrue(pv) || (cJSON_IsNumber(pv) && pv->valuedouble != 0));
    cJSON_AddStringToObject(f, "total_horas", given(hv) ? hv->valuestring : "00:00");
    cJSON_AddStringToObject(f, "data_cadastro", simtime_format_milvus(simtime_now_ms(), when, sizeof when));
    cJSON_AddItemToArray(list, f);
    cJSON_Delete(body);
    simsrv_resp_text(resp, 204, NULL, NULL);
    simsrv_after_write(srv, resp);
    return;
fail:
    cJSON_Delete(body);
    error_body(a, srv, resp, status, msg);
}

/* GET /chamado/acompanhamento/{codigo} -> {"status_code":200,"retorno":[...]} */
static void handle_acomp_list(app *a, simsrv *srv, const char *codigo, simsrv_resp *resp)
{
    cJSON *cv = cJSON_CreateString(codigo);
    const cJSON *t = cv ? ticket_by_codigo(a, cv) : NULL;
    cJSON_Delete(cv);
    if (!t) {
        error_body(a, srv, resp, 404, "Chamado não encontrado");
        return;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "status_code", 200);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(t, "acompanhamentos");
    cJSON_AddItemToObject(out, "retorno", cJSON_IsArray(list) ? cJSON_Duplicate(list, true) : cJSON_CreateArray());
    simsrv_resp_json(resp, 200, out);
}

/* Digits of s into out (truncated to size - 1). */
static void digits_of(const char *s, char *out, size_t size)
{
    size_t n = 0;
    for (; s && *s && n + 1 < size; s++)
        if (*s >= '0' && *s <= '9')
            out[n++] = *s;
    out[n] = '\0';
}

/* GET /cliente/contato/pesquisar?telefone=|email= -> a bare array of the clients' contacts
 * (cliente_contatos sent at creation) whose e-mail equals (case-insensitive) or whose phone or
 * mobile contains the digits asked for. */
static void handle_contato_pesquisar(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    const char *email = simsrv_param_get(req, "email");
    const char *tel = simsrv_param_get(req, "telefone");
    char want[64] = "";
    digits_of(tel, want, sizeof want);
    if ((!email || !email[0]) && !want[0]) {
        error_body(a, srv, resp, 400, "Informe telefone ou email");
        return;
    }
    cJSON *out = cJSON_CreateArray();
    for (size_t i = 0; out && i < a->clients.n; i++) {
        const cJSON *c = a->clients.items[i].obj;
        const cJSON *ct;
        cJSON_ArrayForEach(ct, cJSON_GetObjectItemCaseSensitive(c, "cliente_contatos"))
        {
            if (!cJSON_IsObject(ct))
                continue;
            const char *e = simjson_get_str(ct, "contato_email");
            char d1[64], d2[64];
            digits_of(simjson_get_str(ct, "contato_telefone"), d1, sizeof d1);
            digits_of(simjson_get_str(ct, "contato_celular"), d2, sizeof d2);
            bool hit = (email && email[0] && e && strcasecmp(e, email) == 0) ||
                       (want[0] && (strstr(d1, want) || strstr(d2, want)));
            if (!hit)
                continue;
            cJSON *row = cJSON_CreateObject();
            copy_str(row, "cliente_nome", c, "nome_fantasia");
            copy_str(row, "cliente_id", c, "token");
            copy_str(row, "contato_descricao", ct, "contato_descricao");
            copy_str(row, "contato_email", ct, "contato_email");
            copy_str(row, "observacao", ct, "contato_observacao");
            copy_str(row, "contato_telefone", ct, "contato_telefone");
            copy_str(row, "contato_celular", ct, "contato_celular");
            cJSON_AddItemToArray(out, row);
        }
    }
    simsrv_resp_json(resp, 200, out);
}

/* ---- admin callbacks ------------------------------------------------------------------------ */

static void app_reset(void *ctx)
{
    app *a = ctx;
    simstore_clear(&a->clients);
    simstore_clear(&a->tickets);
    cJSON_Delete(a->mesas);
    cJSON_Delete(a->setores);
    cJSON_Delete(a->categorias);
    a->mesas = a->setores = a->categorias = NULL;
    a->next_client_id = 1001;
    a->next_ticket_id = 5001;
    a->next_codigo = 101;
    a->next_followup_id = 9001;
}

/* Types of the seeded fields the simulator reads: a wrong one is a 400 naming the record and
 * the field, not a record that breaks later searches and filters. */
static bool seed_types_ok(const cJSON *rec, bool clients, const char *name, size_t idx, char *err,
                          size_t errlen)
{
    enum { T_STR, T_BOOL, T_INT, T_DOC, T_TIME, T_STATUS };
    static const struct {
        const char *field;
        int type;
    } cf[] = {{"cnpj_cpf", T_DOC}, {"token", T_STR}, {"nome_fantasia", T_STR},
              {"razao_social", T_STR}, {"is_ativo", T_BOOL}, {"is_fisica", T_BOOL},
              {NULL, 0}},
      tf[] = {{"cliente_token", T_STR}, {"assunto", T_STR}, {"status", T_STATUS},
              {"status_id", T_INT}, {"data_criacao", T_TIME}, {"data_solucao", T_TIME},
              {"contato", T_STR}, {"email_conferencia", T_STR}, {NULL, 0}};
    for (int i = 0; (clients ? cf : tf)[i].field; i++) {
        const char *field = (clients ? cf : tf)[i].field;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, field);
        if (!v || cJSON_IsNull(v))
            continue;
        int64_t n;
        bool ok;
        const char *want;
        switch ((clients ? cf : tf)[i].type) {
        case T_STR: ok = cJSON_IsString(v); want = "a string"; break;
        case T_BOOL: ok = cJSON_IsBool(v); want = "true or false"; break;
        case T_INT: ok = simjson_i64(v, &n); want = "an integer"; break;
        case T_DOC: ok = cJSON_IsString(v) || (simjson_i64(v, &n) && n >= 0); want = "a string (or a number)"; break;
        case T_TIME:
            ok = cJSON_IsString(v) && is_milvus_time(v->valuestring, false);
            want = "\"YYYY-MM-DD HH:MM:SS\"";
            break;
        default: ok = cJSON_IsString(v) || simjson_i64(v, &n); want = "a status name or id"; break;
        }
        if (!ok) {
            snprintf(err, errlen, "seed: %s[%zu].%s must be %s", name, idx, field, want);
            return false;
        }
    }
    return true;
}

static int seed_list(app *a, const cJSON *arr, bool clients, char *err, size_t errlen)
{
    const char *name = clients ? "clientes" : "chamados";
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "seed: '%s' must be an array", name);
        return -1;
    }
    size_t idx = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, arr)
    {
        if (!cJSON_IsObject(rec)) {
            snprintf(err, errlen, "seed: %s[%zu] is not an object", name, idx);
            return -1;
        }
        if (!seed_types_ok(rec, clients, name, idx, err, errlen))
            return -1;
        cJSON *copy = cJSON_Duplicate(rec, true);
        if (!copy) {
            snprintf(err, errlen, "seed: out of memory");
            return -1;
        }
        int64_t *next = clients ? &a->next_client_id : &a->next_ticket_id;
        int64_t id;
        const cJSON *idit = cJSON_GetObjectItemCaseSensitive(copy, "id");
        if (idit) {
            if (!simjson_i64(idit, &id) || id <= 0) {
                cJSON_Delete(copy);
                snprintf(err, errlen, "seed: %s[%zu].id must be a positive integer", name, idx);
                return -1;
            }
        } else {
            id = (*next)++;
            simjson_set(copy, "id", simjson_num_i64(id));
        }
        if (id >= *next)
            *next = id + 1;
        if (clients) {
            simstore *st = &a->clients;
            cJSON *old = simstore_get(st, id);
            const char *tok = simjson_get_str(copy, "token");
            if (!tok) {
                const char *old_tok = old ? simjson_get_str(old, "token") : NULL;
                simjson_set(copy, "token", old_tok ? cJSON_CreateString(old_tok) : new_token(a));
            }
        } else {
            int64_t codigo;
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(copy, "codigo");
            if (!c) {
                simjson_set(copy, "codigo", simjson_num_i64(a->next_codigo++));
            } else if (!simjson_i64(c, &codigo)) {
                cJSON_Delete(copy);
                snprintf(err, errlen, "seed: chamados[%zu].codigo must be an integer", idx);
                return -1;
            } else if (codigo >= a->next_codigo) {
                a->next_codigo = codigo + 1;
            }
        }
        if (simstore_put(clients ? &a->clients : &a->tickets, id, copy) < 0) {
            snprintf(err, errlen, "seed: out of memory");
            return -1;
        }
        idx++;
    }
    return 0;
}

static cJSON **catalogue_slot(app *a, const char *key)
{
    return strcmp(key, "mesas") == 0 ? &a->mesas : strcmp(key, "setores") == 0 ? &a->setores
                                   : strcmp(key, "categorias") == 0            ? &a->categorias
                                                                               : NULL;
}

static int app_seed(void *ctx, simsrv *srv, const cJSON *body, char *err, size_t errlen)
{
    (void)srv;
    app *a = ctx;
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        if (strcmp(it->string, "clientes") != 0 && strcmp(it->string, "chamados") != 0 &&
            !catalogue_slot(a, it->string)) {
            snprintf(err, errlen, "seed: unknown key '%.60s' (clientes, chamados, mesas, setores, categorias)",
                     it->string);
            return -1;
        }
        if (catalogue_slot(a, it->string)) {
            bool ok = cJSON_IsArray(it);
            const cJSON *el;
            cJSON_ArrayForEach(el, it) ok = ok && cJSON_IsString(el) && el->valuestring[0];
            if (!ok) {
                snprintf(err, errlen, "seed: '%s' must be an array of non-empty names", it->string);
                return -1;
            }
        }
    }
    cJSON_ArrayForEach(it, body)
    {
        cJSON **slot = catalogue_slot(a, it->string);
        if (!slot)
            continue;
        cJSON *copy = cJSON_Duplicate(it, true);
        if (!copy) {
            snprintf(err, errlen, "seed: out of memory");
            return -1;
        }
        cJSON_Delete(*slot);
        *slot = copy;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(body, "clientes");
    if (c && seed_list(a, c, true, err, errlen) < 0)
        return -1;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(body, "chamados");
    if (t && seed_list(a, t, false, err, errlen) < 0)
        return -1;
    return 0;
}

static cJSON *app_state(void *ctx)
{
    app *a = ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON *c = cJSON_AddArrayToObject(o, "clientes");
    for (size_t i = 0; c && i < a->clients.n; i++)
        cJSON_AddItemToArray(c, cJSON_Duplicate(a->clients.items[i].obj, true));
    cJSON *t = cJSON_AddArrayToObject(o, "chamados");
    for (size_t i = 0; t && i < a->tickets.n; i++)
        cJSON_AddItemToArray(t, cJSON_Duplicate(a->tickets.items[i].obj, true));
    const char *cats[] = {"mesas", "setores", "categorias"};
    for (int i = 0; o && i < 3; i++) {
        cJSON **slot = catalogue_slot(a, cats[i]);
        if (*slot)
            cJSON_AddItemToObject(o, cats[i], cJSON_Duplicate(*slot, true));
    }
    return o;
}

static void app_handle(void *ctx, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    app *a = ctx;
    static const struct {
        const char *method, *path;
        void (*fn)(app *, simsrv *, const simsrv_req *, simsrv_resp *);
    } routes[] = {
        {"GET", "/api/cliente/busca", handle_busca},
        {"POST", "/api/cliente/criar", handle_cliente_criar},
        {"POST", "/api/chamado/criar", handle_chamado_criar},
        {"POST", "/api/chamado/listagem", handle_listagem},
        {"PUT", "/api/chamado/finalizar", handle_finalizar},
        {"POST", "/api/chamado/acompanhamento/criar", handle_acomp_criar},
        {"GET", "/api/cliente/contato/pesquisar", handle_contato_pesquisar},
    };
    static const char acomp[] = "/api/chamado/acompanhamento/";
    if (strncmp(req->path, acomp, sizeof acomp - 1) == 0) {
        const char *rest = req->path + sizeof acomp - 1;
        int64_t ignored;
        if (simjson_parse_count(rest, &ignored)) {
            if (strcmp(req->method, "GET") != 0) {
                error_body(a, srv, resp, 405, "Método não permitido");
                return;
            }
            handle_acomp_list(a, srv, rest, resp);
            return;
        }
    }
    bool path_known = false;
    size_t plen = strlen(req->path);
    if (plen > 1 && req->path[plen - 1] == '/')
        plen--;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strlen(routes[i].path) != plen || strncmp(routes[i].path, req->path, plen) != 0)
            continue;
        path_known = true;
        if (strcmp(routes[i].method, req->method) == 0) {
            routes[i].fn(a, srv, req, resp);
            return;
        }
    }
    if (path_known) {
        error_body(a, srv, resp, 405, "Método não permitido");
        return;
    }
    error_body(a, srv, resp, 404, "Rota não encontrada");
}

/* ---- main ------------------------------------------------------------------------------------ */

/* simmain adds the lines about the admin API and signals. */
static const char USAGE[] =
    "usage: milvus-sim --port P --token T [--state FILE]\n"
    "\n"
    "A local fake of the Milvus help-desk API on http://127.0.0.1:P/api (port 0 = any\n"
    "free port; the first stdout line is 'listening on http://127.0.0.1:PORT').\n"
    "  --port P        TCP port on 127.0.0.1\n"
    "  --token T       the raw token every API request must send as 'Authorization: T'\n"
    "  --state FILE    seed file loaded at start ({\"clientes\":[...],\"chamados\":[...]})\n";

int main(int argc, char **argv)
{
    static const simmain_spec spec = {"milvus-sim", "--token", USAGE};
    simmain_args args;
    int rc = simmain_parse(&spec, argc, argv, &args);
    if (rc >= 0)
        return rc;
    app *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    a->token = args.credential;
    a->rng = (uint64_t)simtime_now_ms() * 2654435761u | 1u;
    app_reset(a);
    simsrv_app def = {
        .name = "milvus-sim",
        .default_rate_per_min = 60,
        .ctx = a,
        .auth = auth_cb,
        .error = error_body,
        .handle = app_handle,
        .seed = app_seed,
        .state = app_state,
        .reset = app_reset,
    };
    rc = simmain_run(&def, &args);
    app_reset(a);
    simindex_free(&a->by_token);
    simindex_free(&a->by_doc);
    simstore_clear(&a->clients);
    simstore_clear(&a->tickets);
    free(a);
    return rc;
}
