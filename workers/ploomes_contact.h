/* ploomes_contact: reading and writing Ploomes contacts for the workers (SPEC §5): one contact
 * by Id with the producer's expansions (ticket workers), the search by document and the
 * Milvus client → `POST /Contacts` mapping (clients-to-ploomes).
 *
 * Ownership: returned cJSON trees are the caller's (cJSON_Delete). The context is borrowed.
 * Thread-safety: reentrant, no global state.
 */
#ifndef PIPELINE_PLOOMES_CONTACT_H
#define PIPELINE_PLOOMES_CONTACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../common/config.h"
#include "../common/doc.h"
#include "worker.h"

/* The producer's `$expand` for contacts (producers/ploomes_pager.c; SPEC §3): a fetched contact
 * has the same shape as a published one. */
#define PLOOMES_CONTACT_EXPAND "Phones,Tags,City,State,Contacts"

/* GET /Contacts?$filter=Id eq <id>&$expand=Phones,Tags,City,State,Contacts (query values
 * percent-encoded; API_IDEMPOTENT) with ctx->ploomes.
 * FOUND: *out gets value[0], detached (the caller frees it with cJSON_Delete()).
 * NOT_FOUND: the answer is a valid envelope with an empty `value` (*out = NULL).
 * FAILED: the request failed (`res` holds it: worker_result_from_api → DEAD / RELEASE / AUTH),
 * or the answer is not a `{"value":[...]}` envelope of objects, or value[0] is not contact
 * `id` (another Id, or none usable: WORKER_DEAD `UnexpectedResponse`, the answer's first KiB
 * in res->response). id must be > 0 (else FAILED, WORKER_DEAD `InvalidRecord`). */
worker_search_t ploomes_contact_fetch(worker_ctx_t *ctx, int64_t id, cJSON **out,
                                      worker_result_t *res);

/* Looks for a Ploomes contact whose Register is `doc_norm` (a valid normalised document), in
 * the normal form then the masked one (doc_format): GET /Contacts?$filter=Register eq '<doc>'
 * &$select=Id&$top=2 (API_IDEMPOTENT). FOUND: *found (may be NULL) zeroed, then key = doc_norm,
 * ploomes_id = the lowest Id returned. NOT_FOUND after both forms. FAILED: as above. */
worker_search_t ploomes_contact_find_by_document(worker_ctx_t *ctx, const char *doc_norm,
                                                 store_entry_t *found, worker_result_t *out);

/* worker_create_t.search adapter: arg is the normalised document (const char *). */
worker_search_t ploomes_contact_find_cb(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                        worker_result_t *out);

/* The `POST /Contacts` body for a Milvus client row (SPEC §5 clients-to-ploomes), a new cJSON
 * object the caller frees:
 *   Name      nome_fantasia, else razao_social (required: none → NULL)
 *   LegalName razao_social (companies, DOC_CNPJ, only)
 *   TypeId    1 for a CNPJ, 2 for a CPF (the document decides; the seed sent 1/0)
 *   Register  doc_norm (a string)
 *   Website = site, Note = observacao (non-empty strings only)
 *   Birthday  data_nascimento (people only; "YYYY-MM-DD..." → "YYYY-MM-DDT00:00:00-03:00"
 *             unless it already carries a time; anything else is left out)
 *   OriginId / OwnerId  cfg->ploomes_origin_id / ploomes_owner_id when > 0
 *   Tags      [{TagId}] from cfg->ploomes_tag_ids when any
 * Nothing is sent as a placeholder (missing, null, empty or wrongly typed fields are left
 * out). Fails (NULL, err gets a sentence without personal data) when a string to be sent is
 * not valid UTF-8, when there is no name, or when doc_norm/kind is not a valid document. */
cJSON *ploomes_contact_body(const cJSON *client, const char *doc_norm, doc_kind_t kind,
                            const config_t *cfg, char *err, size_t errlen);

/* Parses a `POST /Contacts` answer: `value[0].Id` (a 64-bit id > 0). Returns 0 with *id, or
 * -1 when the body holds no such id (the create is then ambiguous). */
int ploomes_parse_created_id(const char *body, size_t len, int64_t *id);

#endif
