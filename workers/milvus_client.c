/* milvus_client: finding and creating Milvus clients. See milvus_client.h. */
#include "milvus_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errbuf.h"
#include "../common/http.h"
#include "../common/json.h"
#include "../common/log.h"

/* ---- documents ----------------------------------------------------------------------------- */

static void add_form(milvus_doc_forms_t *out, const char *form)
{
    if (form == NULL || form[0] == '\0' || out->count >= MILVUS_DOC_FORMS_MAX)
        return;
    for (int i = 0; i < out->count; i++)
        if (strcmp(out->form[i], form) == 0)
            return;
    snprintf(out->form[out->count], sizeof out->form[0], "%s", form);
    out->count++;
}

int milvus_doc_forms(const char *doc_norm, milvus_doc_forms_t *out)
{
    memset(out, 0, sizeof *out);
    size_t n = doc_norm ? strlen(doc_norm) : 0;
    if (n == 0 || n >= DOC_BUF_SIZE)
        return -1;
    add_form(out, doc_norm);
    char masked[DOC_DISPLAY_SIZE];
    if (doc_format(doc_norm, masked, sizeof masked) != NULL)
        add_form(out, masked);
    /* zero-stripped: only a digits-only document can have been stored as a JSON number */
    if (strspn(doc_norm, "0123456789") == n) {
        size_t z = strspn(doc_norm, "0");
        if (z > 0 && z < n)
            add_form(out, doc_norm + z);
    }
    return out->count;
}

/* A string field that counts as "there": a string with a non-blank character. */
static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool nonblank(const char *s)
{
    for (; s && *s; s++)
        if (!is_ws(*s))
            return true;
    return false;
}

doc_kind_t milvus_contact_document(const cJSON *contact, char out[DOC_BUF_SIZE],
                                   const char **reason, bool *type_mismatch)
{
    static const char *const fields[] = {"Register", "CNPJ", "CPF"};
    out[0] = '\0';
    if (reason)
        *reason = NULL;
    if (type_mismatch)
        *type_mismatch = false;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *s = NULL;
        json_status_t st = json_get_string(contact, fields[i], &s);
        if (st == JSON_MISSING || st == JSON_NULL || (st == JSON_OK && !nonblank(s)))
            continue;
        if (st != JSON_OK) {
            if (reason)
                *reason = st == JSON_WRONG_TYPE ? "the document is not a string"
                                                : "the document is not valid UTF-8";
            return DOC_INVALID;
        }
        doc_kind_t kind = doc_parse(s, out, reason);
        if (kind == DOC_NONE) {
            /* only separators: nothing there, look further */
            out[0] = '\0';
            continue;
        }
        if (kind != DOC_CPF && kind != DOC_CNPJ)
            return kind;
        int64_t type_id = 0;
        if (type_mismatch && json_get_int64(contact, "TypeId", &type_id) == JSON_OK &&
            ((type_id == 1 && kind == DOC_CPF) || (type_id == 2 && kind == DOC_CNPJ)))
            *type_mismatch = true;
        return kind;
    }
    if (reason)
        *reason = "no Register, CNPJ or CPF";
    return DOC_NONE;
}

doc_kind_t milvus_row_document(const cJSON *row, char out[DOC_BUF_SIZE], const char **reason)
{
    const cJSON *item = cJSON_IsObject(row) ? cJSON_GetObjectItemCaseSensitive(row, "cnpj_cpf")
                                            : NULL;
    bool fisica = false;
    if (json_get_bool(row, "is_fisica", &fisica) != JSON_OK)
        return doc_from_milvus_json(item, out, reason);

    /* Turn the value into text first (a number: its decimal digits). */
    char text[32];
    const char *raw = NULL;
    out[0] = '\0';
    if (reason)
        *reason = NULL;
    if (item == NULL || cJSON_IsNull(item))
        return DOC_NONE;
    if (cJSON_IsString(item)) {
        raw = item->valuestring;
    } else if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        if (!(v >= 0 && v < 1e14) || (double)(int64_t)v != v) {
            if (reason)
                *reason = "a number that is not a document";
            return DOC_INVALID;
        }
        snprintf(text, sizeof text, "%" PRId64, (int64_t)v);
        raw = text;
    } else {
        if (reason)
            *reason = "the document is neither a string nor a number";
        return DOC_INVALID;
    }
    char norm[DOC_BUF_SIZE];
    int n = doc_normalize(raw, norm);
    if (n == 0)
        return DOC_NONE;
    if (n < 0)
        return doc_parse(raw, out, reason); /* classifies the bad input with its reason */
    size_t want = fisica ? 11 : 14;
    if ((size_t)n < want && strspn(norm, "0123456789") == (size_t)n) {
        char padded[DOC_BUF_SIZE];
        size_t pad = want - (size_t)n;
        memset(padded, '0', pad);
        memcpy(padded + pad, norm, (size_t)n + 1);
        memcpy(norm, padded, want + 1);
    }
    doc_kind_t kind = doc_verify(norm, reason);
    if (kind == DOC_CPF || kind == DOC_CNPJ || strlen(norm) < DOC_BUF_SIZE)
        snprintf(out, DOC_BUF_SIZE, "%s", norm);
    return kind;
}

/* ---- mapping ------------------------------------------------------------------------------- */

int milvus_client_opt_string(const cJSON *obj, const char *key, const char **s)
{
    const char *v = NULL;
    json_status_t st = json_get_string(obj, key, &v);
    if (st == JSON_BAD_VALUE)
        return -1;
    if (st != JSON_OK || !nonblank(v))
        return 0;
    *s = v;
    return 1;
}

/* Adds obj[key] = src[skey] when usable. Returns 0, or -1 (err set) on bad UTF-8 / OOM. */
static int copy_opt(cJSON *dst, const char *dkey, const cJSON *src, const char *skey,
                    const char *what, char *err, size_t errlen)
{
    const char *s = NULL;
    int r = milvus_client_opt_string(src, skey, &s);
    if (r < 0) {
        errbuf_set(err, errlen, "%s.%s is not valid UTF-8", what, skey);
        return -1;
    }
    if (r == 0)
        return 0;
    if (cJSON_AddStringToObject(dst, dkey, s) == NULL) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* The first `max` usable PhoneNumber values of obj.Phones. Returns the count, or -1 on bad
 * UTF-8 (err set). */
static int phones_of(const cJSON *obj, const char **phones, int max, const char *what,
                     char *err, size_t errlen)
{
    const cJSON *arr = NULL;
    int n = 0;
    if (json_get_array(obj, "Phones", &arr) != JSON_OK)
        return 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, arr)
    {
        if (n >= max)
            break;
        const char *s = NULL;
        int r = milvus_client_opt_string(p, "PhoneNumber", &s);
        if (r < 0) {
            errbuf_set(err, errlen, "%s.Phones[].PhoneNumber is not valid UTF-8", what);
            return -1;
        }
        if (r > 0)
            phones[n++] = s;
    }
    return n;
}

/* One cliente_contatos entry for a Ploomes contact/person, or NULL with *skip = true when it
 * has nothing to send; NULL with *skip = false on an error (err set). */
static cJSON *contato_of(const cJSON *c, bool padrao, const char *what, bool *skip, char *err,
                         size_t errlen)
{
    *skip = false;
    const char *phones[2] = {NULL, NULL};
    int np = phones_of(c, phones, 2, what, err, errlen);
    if (np < 0)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || cJSON_AddBoolToObject(o, "contato_padrao", padrao) == NULL) {
        errbuf_set(err, errlen, "out of memory");
        cJSON_Delete(o);
        return NULL;
    }
    if (copy_opt(o, "contato_descricao", c, "Name", what, err, errlen) != 0 ||
        copy_opt(o, "contato_email", c, "Email", what, err, errlen) != 0 ||
        (np > 0 && cJSON_AddStringToObject(o, "contato_telefone", phones[0]) == NULL) ||
        (np > 1 && cJSON_AddStringToObject(o, "contato_celular", phones[1]) == NULL)) {
        if (err[0] == '\0')
            errbuf_set(err, errlen, "out of memory");
        cJSON_Delete(o);
        return NULL;
    }
    if (cJSON_GetArraySize(o) == 1) { /* only contato_padrao */
        cJSON_Delete(o);
        *skip = true;
        return NULL;
    }
    return o;
}

static int add_enderecos(cJSON *body, const cJSON *contact, char *err, size_t errlen)
{
    cJSON *e = cJSON_CreateObject();
    if (e == NULL) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    char cep[DOC_CEP_SIZE];
    const cJSON *zip = cJSON_GetObjectItemCaseSensitive(contact, "ZipCode");
    int zr = doc_cep_from_json(zip, cep);
    if (zr == 0 && cJSON_AddStringToObject(e, "endereco_cep", cep) == NULL)
        goto oom;
    if (zr < 0)
        log_msg(LOG_DEBUG, "cep_ignored", "reason=\"ZipCode is not a CEP\"");
    if (copy_opt(e, "endereco_logradouro", contact, "StreetAddress", "contact", err, errlen) ||
        copy_opt(e, "endereco_numero", contact, "StreetAddressNumber", "contact", err, errlen) ||
        copy_opt(e, "endereco_complemento", contact, "StreetAddressLine2", "contact", err,
                 errlen) ||
        copy_opt(e, "endereco_bairro", contact, "Neighborhood", "contact", err, errlen))
        goto out;
    const cJSON *city = NULL, *state = NULL;
    if (json_get_object(contact, "City", &city) == JSON_OK &&
        copy_opt(e, "endereco_cidade", city, "Name", "contact.City", err, errlen))
        goto out;
    if (json_get_object(contact, "State", &state) == JSON_OK &&
        copy_opt(e, "endereco_estado", state, "Short", "contact.State", err, errlen))
        goto out;
    if (cJSON_GetArraySize(e) == 0) { /* no address at all: nothing sent */
        rc = 0;
        goto out;
    }
    /* endereco_padrao first, for readability of the body */
    cJSON *padrao = cJSON_CreateTrue();
    if (padrao == NULL)
        goto oom;
    cJSON_AddItemToObject(e, "endereco_padrao", padrao);
    cJSON *arr = cJSON_AddArrayToObject(body, "cliente_enderecos");
    if (arr == NULL)
        goto oom;
    cJSON_AddItemToArray(arr, e);
    return 0;
oom:
    errbuf_set(err, errlen, "out of memory");
out:
    cJSON_Delete(e);
    return rc;
}

static int add_contatos(cJSON *body, const cJSON *contact, char *err, size_t errlen)
{
    cJSON *arr = cJSON_CreateArray();
    if (arr == NULL) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    bool skip = false;
    cJSON *self = contato_of(contact, true, "contact", &skip, err, errlen);
    if (self == NULL && !skip)
        goto fail;
    if (self)
        cJSON_AddItemToArray(arr, self);
    const cJSON *people = NULL;
    if (json_get_array(contact, "Contacts", &people) == JSON_OK) {
        const cJSON *p;
        cJSON_ArrayForEach(p, people)
        {
            if (!cJSON_IsObject(p))
                continue;
            cJSON *o = contato_of(p, false, "contact.Contacts[]", &skip, err, errlen);
            if (o == NULL && !skip)
                goto fail;
            if (o)
                cJSON_AddItemToArray(arr, o);
        }
    }
    if (cJSON_GetArraySize(arr) == 0) {
        cJSON_Delete(arr);
        return 0;
    }
    cJSON_AddItemToObject(body, "cliente_contatos", arr);
    return 0;
fail:
    cJSON_Delete(arr);
    return -1;
}

bool milvus_client_date(const char *s, char out[11])
{
    if (s == NULL || strlen(s) < 10)
        return false;
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return false;
    }
    if (s[10] != '\0' && s[10] != 'T' && s[10] != ' ')
        return false;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    if (month < 1 || month > 12 || day < 1 || day > 31)
        return false;
    memcpy(out, s, 10);
    out[10] = '\0';
    return true;
}

api_outcome_t milvus_client_ambiguous(api_result_t *res, const char *what)
{
    res->outcome = API_AMBIGUOUS;
    snprintf(res->error_class, sizeof res->error_class, "AmbiguousCreate");
    snprintf(res->message, sizeof res->message, "HTTP %ld from %s", res->status, what);
    return API_AMBIGUOUS;
}

bool milvus_client_record_id(const cJSON *obj, const char *key, const char *what, int64_t *id,
                             worker_result_t *out)
{
    json_status_t st = json_get_int64(obj, key, id);
    if (st == JSON_OK && *id > 0)
        return true;
    worker_result_dead(out, "InvalidRecord", "the %s has no usable %s (%s)", what, key,
                       st == JSON_OK ? "not positive" : json_status_name(st));
    return false;
}

bool milvus_client_doc_ok(doc_kind_t kind, const char *why, const char *what, int64_t id,
                          worker_result_t *out)
{
    if (kind == DOC_NONE) {
        worker_result_set(out, WORKER_SKIPPED, "no_document");
        return false;
    }
    if (kind == DOC_INVALID) {
        worker_result_dead(out, "InvalidDocument", "%s %" PRId64 ": %s", what, id,
                           why ? why : "invalid CPF/CNPJ");
        return false;
    }
    return true;
}

cJSON *milvus_client_body(const cJSON *contact, const char *doc_norm, doc_kind_t kind,
                          char *err, size_t errlen)
{
    char local[256];
    if (err == NULL || errlen == 0) {
        err = local;
        errlen = sizeof local;
    }
    err[0] = '\0';
    if (!cJSON_IsObject(contact) || doc_norm == NULL || (kind != DOC_CPF && kind != DOC_CNPJ) ||
        doc_verify(doc_norm, NULL) != kind) {
        errbuf_set(err, errlen, "no valid document to create a client with");
        return NULL;
    }
    const char *name = NULL, *legal = NULL;
    int rn = milvus_client_opt_string(contact, "Name", &name);
    int rl = milvus_client_opt_string(contact, "LegalName", &legal);
    if (rn < 0 || rl < 0) {
        errbuf_set(err, errlen, "contact.%s is not valid UTF-8", rn < 0 ? "Name" : "LegalName");
        return NULL;
    }
    if (name == NULL && (kind == DOC_CPF || legal == NULL)) {
        errbuf_set(err, errlen, "the contact has no Name");
        return NULL;
    }
    int64_t pid = 0;
    if (json_get_int64(contact, "Id", &pid) != JSON_OK || pid <= 0) {
        errbuf_set(err, errlen, "the contact has no usable Id");
        return NULL;
    }
    cJSON *body = cJSON_CreateObject();
    if (body == NULL)
        goto oom;
    if (cJSON_AddStringToObject(body, "cliente_documento", doc_norm) == NULL)
        goto oom;
    if (copy_opt(body, "cliente_site", contact, "Website", "contact", err, errlen) ||
        copy_opt(body, "cliente_observacao", contact, "Note", "contact", err, errlen))
        goto fail;
    if (cJSON_AddTrueToObject(body, "cliente_ativo") == NULL ||
        cJSON_AddNumberToObject(body, "cliente_id_integracao", (double)pid) == NULL)
        goto oom;
    if (kind == DOC_CNPJ) {
        cJSON *pj = cJSON_AddObjectToObject(body, "cliente_pessoa_juridica");
        if (pj == NULL || (name && cJSON_AddStringToObject(pj, "nome_fantasia", name) == NULL) ||
            cJSON_AddStringToObject(pj, "razao_social", legal ? legal : name) == NULL ||
            cJSON_AddStringToObject(pj, "inscricao_estadual", "") == NULL)
            goto oom;
    } else {
        cJSON *pf = cJSON_AddObjectToObject(body, "cliente_pessoa_fisica");
        if (pf == NULL || cJSON_AddStringToObject(pf, "nome", name) == NULL)
            goto oom;
        const char *bday = NULL;
        char date[11];
        if (milvus_client_opt_string(contact, "Birthday", &bday) > 0 &&
            milvus_client_date(bday, date) &&
            cJSON_AddStringToObject(pf, "data_nascimento", date) == NULL)
            goto oom;
    }
    if (add_enderecos(body, contact, err, errlen) != 0 ||
        add_contatos(body, contact, err, errlen) != 0)
        goto fail;
    return body;
oom:
    errbuf_set(err, errlen, "out of memory");
fail:
    cJSON_Delete(body);
    return NULL;
}

/* ---- searching ----------------------------------------------------------------------------- */

int milvus_parse_bare_id(const char *body, size_t len, int64_t *id)
{
    if (body == NULL)
        return -1;
    size_t b = 0, e = len;
    while (b < e && is_ws(body[b]))
        b++;
    while (e > b && is_ws(body[e - 1]))
        e--;
    if (e - b >= 2 && body[b] == '"' && body[e - 1] == '"') {
        b++;
        e--;
    }
    size_t n = e - b;
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = b; i < e; i++) {
        if (body[i] < '0' || body[i] > '9')
            return -1;
        v = v * 10 + (body[i] - '0');
    }
    if (v <= 0)
        return -1;
    *id = v;
    return 0;
}

/* Rows of a /cliente/busca answer. 0 = parsed (*rows may be NULL: {"message":...} or no lista),
 * -1 = not a usable answer. *root owns the tree. */
static int busca_rows(const api_result_t *res, cJSON **root, const cJSON **rows)
{
    *rows = NULL;
    *root = json_parse_bounded(res->body, res->body_len, res->body_len + 1, NULL, 0);
    if (*root == NULL || !cJSON_IsObject(*root))
        return -1;
    if (json_get_array(*root, "lista", rows) == JSON_OK)
        return 0;
    const char *msg = NULL;
    return json_get_string(*root, "message", &msg) == JSON_OK ? 0 : -1;
}

/* One /cliente/busca?documento=<form>&status=3. API outcome; *rows/root as busca_rows. */
static api_outcome_t busca(worker_ctx_t *ctx, const char *form, api_result_t *res, cJSON **root,
                           const cJSON **rows, bool *unusable)
{
    char enc[3 * DOC_DISPLAY_SIZE + 1];
    char path[160];
    *unusable = false;
    *root = NULL;
    *rows = NULL;
    if (http_percent_encode(form, enc, sizeof enc) < 0)
        return API_PERMANENT;
    snprintf(path, sizeof path, "/cliente/busca?documento=%s&status=3", enc);
    api_outcome_t o = api_request(ctx->milvus, HTTP_GET, path, NULL, API_IDEMPOTENT, res);
    if (o == API_OK && busca_rows(res, root, rows) != 0)
        *unusable = true;
    return o;
}

/* Picks the row for doc_norm (and want_id when > 0): the lowest id among matching rows.
 * *bad_row (may be NULL) is set when a row carries doc_norm but no usable id (missing, null,
 * not a positive 64-bit integer): Milvus says the client exists and we cannot tell which one
 * it is, so the caller must not take that for "not found" (a create would duplicate it). */
static const cJSON *pick_row(const cJSON *rows, const char *doc_norm, int64_t want_id,
                             int64_t *id_out, bool *bad_row)
{
    const cJSON *best = NULL;
    int64_t best_id = 0;
    const cJSON *row;
    if (bad_row)
        *bad_row = false;
    cJSON_ArrayForEach(row, rows)
    {
        int64_t id = 0;
        char doc[DOC_BUF_SIZE];
        doc_kind_t k = milvus_row_document(row, doc, NULL);
        bool same_doc = (k == DOC_CPF || k == DOC_CNPJ) && strcmp(doc, doc_norm) == 0;
        if (json_get_int64(row, "id", &id) != JSON_OK || id <= 0) {
            if (same_doc && bad_row)
                *bad_row = true;
            continue;
        }
        if (want_id > 0 && id != want_id)
            continue;
        if (!same_doc)
            continue;
        if (best == NULL || id < best_id) {
            best = row;
            best_id = id;
        }
    }
    *id_out = best_id;
    return best;
}

static void fill_found(store_entry_t *found, const char *doc_norm, const cJSON *row, int64_t id)
{
    if (found == NULL)
        return;
    memset(found, 0, sizeof *found);
    snprintf(found->key, sizeof found->key, "%s", doc_norm);
    found->milvus_id = id;
    const char *tok = NULL;
    if (json_get_string(row, "token", &tok) == JSON_OK)
        snprintf(found->milvus_token, sizeof found->milvus_token, "%s", tok);
    snprintf(found->origin, sizeof found->origin, "milvus");
}

/* The search of milvus_client_search() with an id to match (0 = any). */
static worker_search_t search_forms(worker_ctx_t *ctx, const char *doc_norm, int64_t want_id,
                                    int max_forms, store_entry_t *found, worker_result_t *out)
{
    milvus_doc_forms_t forms;
    if (milvus_doc_forms(doc_norm, &forms) < 0) {
        worker_result_dead(out, "InvalidDocument", "no document to search Milvus for");
        return WORKER_SEARCH_FAILED;
    }
    if (max_forms > 0 && forms.count > max_forms)
        forms.count = max_forms;
    for (int i = 0; i < forms.count; i++) {
        api_result_t res = {0};
        cJSON *root = NULL;
        const cJSON *rows = NULL;
        bool unusable = false;
        api_outcome_t o = busca(ctx, forms.form[i], &res, &root, &rows, &unusable);
        if (o != API_OK) {
            worker_result_from_api(out, &res);
            api_result_clear(&res);
            cJSON_Delete(root);
            return WORKER_SEARCH_FAILED;
        }
        worker_result_from_api(out, &res); /* counts the attempts */
        if (unusable) {
            char excerpt[1025];
            worker_result_dead(out, "UnexpectedResponse",
                               "/cliente/busca answered something that is not {\"lista\":[...]} "
                               "(HTTP %ld, %zu bytes%s)",
                               res.status, res.body_len, res.body_len ? "" : ": an empty body");
            out->http_status = res.status;
            free(out->response);
            out->response = strdup(api_result_excerpt(&res, 1024, excerpt, sizeof excerpt));
            api_result_clear(&res);
            cJSON_Delete(root);
            return WORKER_SEARCH_FAILED;
        }
        int64_t id = 0;
        bool bad_row = false;
        const cJSON *row = rows ? pick_row(rows, doc_norm, want_id, &id, &bad_row) : NULL;
        if (row == NULL && bad_row) {
            char excerpt[1025];
            worker_result_dead(out, "UnexpectedResponse",
                               "/cliente/busca answered a row with this document but without a "
                               "usable id (not a positive integer); not taken for \"not found\"");
            out->http_status = res.status;
            free(out->response);
            out->response = strdup(api_result_excerpt(&res, 1024, excerpt, sizeof excerpt));
            api_result_clear(&res);
            cJSON_Delete(root);
            return WORKER_SEARCH_FAILED;
        }
        if (row != NULL) {
            fill_found(found, doc_norm, row, id);
            if (log_enabled(LOG_DEBUG)) {
                char masked[DOC_DISPLAY_SIZE];
                log_msg(LOG_DEBUG, "milvus_client_found",
                        "document=%s form=%d milvus_id=%" PRId64,
                        doc_mask(doc_norm, masked, sizeof masked), i, id);
            }
        }
        api_result_clear(&res);
        cJSON_Delete(root);
        if (row != NULL)
            return WORKER_SEARCH_FOUND;
    }
    return WORKER_SEARCH_NOT_FOUND;
}

worker_search_t milvus_client_search(worker_ctx_t *ctx, const char *doc_norm,
                                     store_entry_t *found, worker_result_t *out)
{
    return search_forms(ctx, doc_norm, 0, 0, found, out);
}

worker_search_t milvus_client_search_cb(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                        worker_result_t *out)
{
    return milvus_client_search(ctx, (const char *)arg, found, out);
}

/* ---- creating ------------------------------------------------------------------------------ */

typedef struct {
    const char *doc;     /* normalised document = the form sent */
    const char *body;    /* the /cliente/criar body */
    int64_t ploomes_id;
    int token_attempts;  /* HTTP attempts of the token look-up */
} create_arg_t;

static api_outcome_t create_cb(worker_ctx_t *ctx, void *arg, store_entry_t *created,
                               api_result_t *res)
{
    create_arg_t *a = arg;
    api_outcome_t o = worker_post(ctx, ctx->milvus, "/cliente/criar", a->body, res);
    if (o != API_OK)
        return o;
    memset(created, 0, sizeof *created);
    snprintf(created->key, sizeof created->key, "%s", a->doc);
    created->ploomes_id = a->ploomes_id;
    snprintf(created->origin, sizeof created->origin, "ploomes");
    if (ctx->dry_run)
        return API_OK; /* nothing was sent: no id to read */
    int64_t id = 0;
    if (milvus_parse_bare_id(res->body, res->body_len, &id) != 0)
        return milvus_client_ambiguous(res, "/cliente/criar without a client id in the body");
    created->milvus_id = id;
    /* The token: /cliente/busca on the form sent, the row whose id is the new id. */
    worker_result_t tr = {0};
    store_entry_t found;
    worker_search_t s = search_forms(ctx, a->doc, id, 1, &found, &tr);
    a->token_attempts += tr.attempts;
    if (s == WORKER_SEARCH_FOUND && found.milvus_token[0])
        snprintf(created->milvus_token, sizeof created->milvus_token, "%s", found.milvus_token);
    else
        log_msg(LOG_WARN, "milvus_token_missing",
                "milvus_id=%" PRId64 " search=%s reason=\"the new client's token was not found; "
                "kept the id only (a ticket worker looks it up again)\"",
                id, s == WORKER_SEARCH_FAILED ? "failed" : "not_found");
    worker_result_clear(&tr);
    return API_OK;
}

/* worker_create_t.search during a create: the document is in the create argument. */
static worker_search_t create_search_cb(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                        worker_result_t *out)
{
    create_arg_t *a = arg;
    worker_search_t s = milvus_client_search(ctx, a->doc, found, out);
    if (s == WORKER_SEARCH_FOUND && found != NULL)
        found->ploomes_id = a->ploomes_id;
    return s;
}

/* After a store call answered rc: true when it should be made again (MongoDB was down and is
 * back: worker_store_wait() waited for it). */
static bool store_again(worker_ctx_t *ctx, int rc)
{
    return rc == STORE_DOWN && worker_store_wait(ctx);
}

/* A store call that failed for good (stop requested during an outage, or refused). */
static worker_outcome_t store_failed(worker_result_t *out, const char *what, int rc,
                                     const char *err)
{
    log_msg(LOG_WARN, "store_failed", "op=%s rc=%s error=%s", what, store_rc_name(rc), err);
    return worker_result_set(out, WORKER_RELEASE,
                             rc == STORE_DOWN ? "stopping" : "store_rejected");
}

static void set_target(worker_result_t *out, const store_entry_t *e)
{
    if (e->milvus_id > 0)
        snprintf(out->target_id, sizeof out->target_id, "%" PRId64, e->milvus_id);
}

worker_outcome_t milvus_client_ensure(worker_ctx_t *ctx, const cJSON *contact, bool may_create,
                                      store_entry_t *entry, worker_result_t *out)
{
    store_entry_t local;
    store_entry_t *e = entry ? entry : &local;
    memset(e, 0, sizeof *e);
    char doc[DOC_BUF_SIZE];
    const char *why = NULL;
    bool mismatch = false;
    doc_kind_t kind = milvus_contact_document(contact, doc, &why, &mismatch);
    int64_t pid = 0;
    if (json_get_int64(contact, "Id", &pid) != JSON_OK)
        pid = 0;
    if (kind == DOC_NONE)
        return worker_result_dead(out, "ClientNotFound",
                                  "contact %" PRId64 " has no CPF/CNPJ (Register, CNPJ, CPF)", pid);
    if (kind == DOC_INVALID)
        return worker_result_dead(out, "InvalidDocument", "contact %" PRId64 ": %s", pid,
                                  why ? why : "invalid document");
    if (mismatch)
        log_msg(LOG_WARN, "type_mismatch",
                "ploomes_id=%" PRId64 " kind=%s reason=\"TypeId disagrees with the document; "
                "the document decides\"",
                pid, doc_kind_name(kind));

    /* 1. identity map */
    char err[512] = "";
    store_entry_t m;
    int rc;
    do
        rc = store_client_get_cached(ctx->store, doc, &m, err, sizeof err);
    while (store_again(ctx, rc));
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return store_failed(out, "get", rc, err);
    if (rc == STORE_OK && m.milvus_id > 0) {
        *e = m;
        if (m.ploomes_id == 0 && pid > 0 && m.state == STORE_STATE_DONE && !ctx->dry_run) {
            store_entry_t add = {0};
            add.ploomes_id = pid;
            if (store_record_done(ctx->store, STORE_KIND_CLIENTS, doc, &add, err, sizeof err) !=
                STORE_OK)
                log_msg(LOG_WARN, "store_unavailable", "op=record_done error=%s", err);
            else
                e->ploomes_id = pid;
        }
        set_target(out, e);
        return worker_result_set(out, WORKER_DEDUP_HIT, "identity_map");
    }

    /* 2. Milvus, every form */
    store_entry_t found;
    worker_search_t s = milvus_client_search(ctx, doc, &found, out);
    if (s == WORKER_SEARCH_FAILED)
        return out->outcome;
    if (s == WORKER_SEARCH_FOUND) {
        found.ploomes_id = pid;
        if (!ctx->dry_run) {
            do
                rc = store_record_done(ctx->store, STORE_KIND_CLIENTS, doc, &found, err,
                                       sizeof err);
            while (store_again(ctx, rc));
            if (rc != STORE_OK)
                return store_failed(out, "record_done", rc, err);
        }
        *e = found;
        e->state = STORE_STATE_DONE;
        set_target(out, e);
        return worker_result_set(out, WORKER_DEDUP_HIT, "found_at_target");
    }
    if (!may_create)
        return worker_result_dead(out, "ClientNotFound",
                                  "no Milvus client for contact %" PRId64
                                  " (created before SYNC_SINCE: create it by hand, then replay)",
                                  pid);

    /* 3. create exactly once */
    char *body = NULL;
    cJSON *tree = milvus_client_body(contact, doc, kind, err, sizeof err);
    if (tree == NULL)
        return worker_result_dead(out, "UnmappableRecord", "contact %" PRId64 ": %s", pid, err);
    body = json_print(tree, NULL);
    cJSON_Delete(tree);
    if (body == NULL)
        return worker_result_set(out, WORKER_RELEASE, "out_of_memory");
    store_entry_t seed = {0};
    seed.ploomes_id = pid;
    snprintf(seed.origin, sizeof seed.origin, "ploomes");
    create_arg_t arg = {.doc = doc, .body = body, .ploomes_id = pid};
    worker_create_t c = {
        .kind = STORE_KIND_CLIENTS,
        .key = doc,
        .seed = &seed,
        .search = create_search_cb,
        .create = create_cb,
        .arg = &arg,
    };
    worker_outcome_t r = worker_create_once(ctx, &c, e, out);
    out->attempts += arg.token_attempts;
    free(body);
    if (r == WORKER_DELIVERED && out->reason[0] == '\0')
        worker_result_set(out, WORKER_DELIVERED, "created");
    if (r == WORKER_DELIVERED || r == WORKER_DEDUP_HIT)
        set_target(out, e);
    return out->outcome;
}

worker_outcome_t milvus_client_token(worker_ctx_t *ctx, store_entry_t *entry,
                                     worker_result_t *out)
{
    if (entry->milvus_token[0] != '\0')
        return WORKER_DELIVERED;
    /* another process may have found it meanwhile (the cache does not see later merges) */
    char err[512] = "";
    store_entry_t stored;
    if (store_get(ctx->store, STORE_KIND_CLIENTS, entry->key, &stored, err, sizeof err) ==
            STORE_OK &&
        stored.milvus_token[0] != '\0' &&
        (entry->milvus_id == 0 || stored.milvus_id == entry->milvus_id)) {
        snprintf(entry->milvus_token, sizeof entry->milvus_token, "%s", stored.milvus_token);
        if (entry->milvus_id == 0)
            entry->milvus_id = stored.milvus_id;
        return WORKER_DELIVERED;
    }
    store_entry_t found;
    worker_search_t s = search_forms(ctx, entry->key, entry->milvus_id, 0, &found, out);
    if (s == WORKER_SEARCH_FAILED)
        return out->outcome;
    if (s == WORKER_SEARCH_NOT_FOUND || found.milvus_token[0] == '\0')
        return worker_result_dead(out, "ClientNotFound",
                                  "Milvus client %" PRId64 " not found or without a token",
                                  entry->milvus_id);
    snprintf(entry->milvus_token, sizeof entry->milvus_token, "%s", found.milvus_token);
    if (entry->milvus_id == 0)
        entry->milvus_id = found.milvus_id;
    if (!ctx->dry_run && entry->state == STORE_STATE_DONE) {
        store_entry_t add = {0};
        add.milvus_id = entry->milvus_id;
        snprintf(add.milvus_token, sizeof add.milvus_token, "%s", entry->milvus_token);
        if (store_record_done(ctx->store, STORE_KIND_CLIENTS, entry->key, &add, err, sizeof err) !=
            STORE_OK)
            log_msg(LOG_WARN, "store_unavailable", "op=record_done error=%s", err);
    }
    return WORKER_DELIVERED;
}
