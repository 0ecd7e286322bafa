/* ploomes_contact: Ploomes contacts for the workers. See ploomes_contact.h. */
#include "ploomes_contact.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/errbuf.h"
#include "../common/http.h"
#include "../common/json.h"
#include "../common/log.h"
#include "milvus_client.h"

/* Fills `out` with a dead letter for an answer that is not what the API documents. */
static void unexpected(worker_result_t *out, const api_result_t *res, const char *what)
{
    char excerpt[1025];
    worker_result_dead(out, "UnexpectedResponse", "%s (HTTP %ld, %zu bytes%s)", what, res->status,
                       res->body_len, res->body_len ? "" : ": an empty body");
    out->http_status = res->status;
    free(out->response);
    out->response = strdup(api_result_excerpt(res, 1024, excerpt, sizeof excerpt));
}

/* GET path; on API_OK parses the `value` array of the envelope. Returns 0 with *root (owned)
 * and *rows, or -1 with `out` filled. excerpt (may be NULL) gets, on success, the answer's
 * first KiB (malloc'd, the caller frees it; NULL when out of memory). */
static int get_value(worker_ctx_t *ctx, const char *path, cJSON **root, const cJSON **rows,
                     worker_result_t *out, char **excerpt)
{
    if (excerpt)
        *excerpt = NULL;
    api_result_t res = {0};
    *root = NULL;
    *rows = NULL;
    api_outcome_t o = api_request(ctx->ploomes, HTTP_GET, path, NULL, API_IDEMPOTENT, &res);
    worker_result_from_api(out, &res);
    if (o != API_OK) {
        api_result_clear(&res);
        return -1;
    }
    *root = json_parse_bounded(res.body, res.body_len, res.body_len + 1, NULL, 0);
    if (*root == NULL || json_get_array(*root, "value", rows) != JSON_OK) {
        unexpected(out, &res, "Ploomes answered something that is not {\"value\":[...]}");
        cJSON_Delete(*root);
        *root = NULL;
        api_result_clear(&res);
        return -1;
    }
    if (excerpt) {
        char buf[1025];
        *excerpt = strdup(api_result_excerpt(&res, 1024, buf, sizeof buf));
    }
    api_result_clear(&res);
    return 0;
}

/* "<prefix><enc(filter)>&<rest>" into path. 0 or -1 (does not fit). */
static int build_path(char *path, size_t size, const char *filter, const char *rest)
{
    char *enc = http_percent_encode_dup(filter);
    if (enc == NULL)
        return -1;
    int n = snprintf(path, size, "/Contacts?$filter=%s%s", enc, rest);
    free(enc);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

worker_search_t ploomes_contact_fetch(worker_ctx_t *ctx, int64_t id, cJSON **out,
                                      worker_result_t *res)
{
    *out = NULL;
    if (id <= 0) {
        worker_result_dead(res, "InvalidRecord", "contact id %" PRId64 " is not an id", id);
        return WORKER_SEARCH_FAILED;
    }
    char filter[48], rest[128], path[256];
    char enc_expand[96];
    snprintf(filter, sizeof filter, "Id eq %" PRId64, id);
    if (http_percent_encode(PLOOMES_CONTACT_EXPAND, enc_expand, sizeof enc_expand) < 0)
        enc_expand[0] = '\0';
    snprintf(rest, sizeof rest, "&$top=1&$expand=%s", enc_expand);
    if (build_path(path, sizeof path, filter, rest) != 0) {
        worker_result_set(res, WORKER_RELEASE, "out_of_memory");
        return WORKER_SEARCH_FAILED;
    }
    cJSON *root = NULL;
    const cJSON *rows = NULL;
    char *answer = NULL;
    if (get_value(ctx, path, &root, &rows, res, &answer) != 0)
        return WORKER_SEARCH_FAILED;
    worker_search_t r = WORKER_SEARCH_NOT_FOUND;
    cJSON *first = cJSON_GetArrayItem(rows, 0);
    int64_t got = 0;
    if (first != NULL) {
        if (!cJSON_IsObject(first)) {
            worker_result_dead(res, "UnexpectedResponse",
                               "Ploomes answered a contact that is not an object");
            r = WORKER_SEARCH_FAILED;
        } else if (json_get_int64(first, "Id", &got) != JSON_OK || got != id) {
            /* never another contact's client, document or e-mail for this one */
            if (got > 0)
                worker_result_dead(res, "UnexpectedResponse",
                                   "Ploomes answered contact %" PRId64 " for Id eq %" PRId64, got,
                                   id);
            else
                worker_result_dead(res, "UnexpectedResponse",
                                   "Ploomes answered a contact without a usable Id (not a "
                                   "positive integer) for Id eq %" PRId64,
                                   id);
            r = WORKER_SEARCH_FAILED;
        } else {
            *out = cJSON_DetachItemFromArray((cJSON *)rows, 0);
            r = WORKER_SEARCH_FOUND;
        }
    }
    if (r == WORKER_SEARCH_FAILED) {
        free(res->response);
        res->response = answer;
        answer = NULL;
    }
    free(answer);
    cJSON_Delete(root);
    return r;
}

worker_search_t ploomes_contact_find_by_document(worker_ctx_t *ctx, const char *doc_norm,
                                                 store_entry_t *found, worker_result_t *out)
{
    char forms[2][DOC_DISPLAY_SIZE];
    int nforms = 0;
    if (doc_norm == NULL || doc_verify(doc_norm, NULL) == DOC_NONE ||
        doc_verify(doc_norm, NULL) == DOC_INVALID) {
        worker_result_dead(out, "InvalidDocument", "no document to search Ploomes for");
        return WORKER_SEARCH_FAILED;
    }
    snprintf(forms[nforms++], sizeof forms[0], "%s", doc_norm);
    if (doc_format(doc_norm, forms[nforms], sizeof forms[0]) != NULL)
        nforms++;
    for (int i = 0; i < nforms; i++) {
        char filter[64], path[256];
        /* the forms hold only [0-9A-Z./-]: no quote to escape */
        snprintf(filter, sizeof filter, "Register eq '%s'", forms[i]);
        if (build_path(path, sizeof path, filter, "&$select=Id&$top=2") != 0) {
            worker_result_set(out, WORKER_RELEASE, "out_of_memory");
            return WORKER_SEARCH_FAILED;
        }
        cJSON *root = NULL;
        const cJSON *rows = NULL;
        char *answer = NULL;
        if (get_value(ctx, path, &root, &rows, out, &answer) != 0)
            return WORKER_SEARCH_FAILED;
        int64_t best = 0;
        bool bad_row = false;
        const cJSON *row;
        cJSON_ArrayForEach(row, rows)
        {
            int64_t id = 0;
            if (json_get_int64(row, "Id", &id) == JSON_OK && id > 0) {
                if (best == 0 || id < best)
                    best = id;
            } else {
                bad_row = true; /* the filter matched a contact we cannot identify */
            }
        }
        int nrows = cJSON_GetArraySize(rows);
        cJSON_Delete(root);
        if (best == 0 && bad_row) {
            /* Ploomes says a contact with this Register exists: "not found" would create a
             * second one. */
            worker_result_dead(out, "UnexpectedResponse",
                               "Ploomes answered the Register search with %d row(s) without a "
                               "usable Id (not a positive integer); not taken for \"not found\"",
                               nrows);
            free(out->response);
            out->response = answer;
            return WORKER_SEARCH_FAILED;
        }
        free(answer);
        if (best > 0) {
            if (found) {
                memset(found, 0, sizeof *found);
                snprintf(found->key, sizeof found->key, "%s", doc_norm);
                found->ploomes_id = best;
            }
            return WORKER_SEARCH_FOUND;
        }
    }
    return WORKER_SEARCH_NOT_FOUND;
}

worker_search_t ploomes_contact_find_cb(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                        worker_result_t *out)
{
    return ploomes_contact_find_by_document(ctx, (const char *)arg, found, out);
}

/* ---- mapping ------------------------------------------------------------------------------- */

/* Ploomes datetime for a Milvus date ("1990-05-17", "1990-05-17 00:00:00", ISO): the date at
 * midnight in Brasília ("1990-05-17T00:00:00-03:00"). false when it is not a date. */
static bool birthday_of(const char *s, char *out, size_t size)
{
    char date[11];
    if (!milvus_client_date(s, date))
        return false;
    int n = snprintf(out, size, "%sT00:00:00-03:00", date);
    return n > 0 && (size_t)n < size;
}

cJSON *ploomes_contact_body(const cJSON *client, const char *doc_norm, doc_kind_t kind,
                            const config_t *cfg, char *err, size_t errlen)
{
    if (!cJSON_IsObject(client) || doc_norm == NULL || (kind != DOC_CPF && kind != DOC_CNPJ) ||
        doc_verify(doc_norm, NULL) != kind) {
        errbuf_set(err, errlen, "no valid document to create a contact with");
        return NULL;
    }
    static const char *const str_keys[] = {"nome_fantasia", "razao_social", "site", "observacao",
                                           "data_nascimento"};
    const char *v[5] = {NULL, NULL, NULL, NULL, NULL};
    for (size_t i = 0; i < 5; i++) {
        if (milvus_client_opt_string(client, str_keys[i], &v[i]) < 0) {
            errbuf_set(err, errlen, "client.%s is not valid UTF-8", str_keys[i]);
            return NULL;
        }
    }
    const char *fantasia = v[0], *razao = v[1], *site = v[2], *obs = v[3], *nasc = v[4];
    const char *name = fantasia ? fantasia : razao;
    if (name == NULL) {
        errbuf_set(err, errlen, "the client has neither nome_fantasia nor razao_social");
        return NULL;
    }
    cJSON *body = cJSON_CreateObject();
    if (body == NULL || cJSON_AddStringToObject(body, "Name", name) == NULL ||
        (kind == DOC_CNPJ && razao && cJSON_AddStringToObject(body, "LegalName", razao) == NULL) ||
        cJSON_AddNumberToObject(body, "TypeId", kind == DOC_CNPJ ? 1 : 2) == NULL ||
        cJSON_AddStringToObject(body, "Register", doc_norm) == NULL ||
        (site && cJSON_AddStringToObject(body, "Website", site) == NULL) ||
        (obs && cJSON_AddStringToObject(body, "Note", obs) == NULL))
        goto oom;
    char bday[40];
    if (kind == DOC_CPF && nasc && birthday_of(nasc, bday, sizeof bday) &&
        cJSON_AddStringToObject(body, "Birthday", bday) == NULL)
        goto oom;
    if (cfg && cfg->ploomes_origin_id > 0 &&
        cJSON_AddNumberToObject(body, "OriginId", (double)cfg->ploomes_origin_id) == NULL)
        goto oom;
    if (cfg && cfg->ploomes_owner_id > 0 &&
        cJSON_AddNumberToObject(body, "OwnerId", (double)cfg->ploomes_owner_id) == NULL)
        goto oom;
    if (cfg && cfg->ploomes_tag_id_count > 0) {
        cJSON *tags = cJSON_AddArrayToObject(body, "Tags");
        if (tags == NULL)
            goto oom;
        for (size_t i = 0; i < cfg->ploomes_tag_id_count; i++) {
            cJSON *t = cJSON_CreateObject();
            if (t == NULL)
                goto oom;
            cJSON_AddItemToArray(tags, t);
            if (cJSON_AddNumberToObject(t, "TagId", (double)cfg->ploomes_tag_ids[i]) == NULL)
                goto oom;
        }
    }
    return body;
oom:
    errbuf_set(err, errlen, "out of memory");
    cJSON_Delete(body);
    return NULL;
}

int ploomes_parse_created_id(const char *body, size_t len, int64_t *id)
{
    if (body == NULL || len == 0)
        return -1;
    cJSON *root = json_parse_bounded(body, len, len + 1, NULL, 0);
    const cJSON *rows = NULL;
    int64_t v = 0;
    int rc = -1;
    if (root && json_get_array(root, "value", &rows) == JSON_OK &&
        json_get_int64(cJSON_GetArrayItem(rows, 0), "Id", &v) == JSON_OK && v > 0) {
        *id = v;
        rc = 0;
    }
    cJSON_Delete(root);
    return rc;
}
