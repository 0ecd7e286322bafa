/* milvus_client: finding and creating Milvus clients (SPEC §5 "Documents", "Identity map",
 * "clients-to-milvus"), shared by clients-to-milvus and the two ticket workers.
 *
 * - Documents: where a Ploomes contact keeps its CPF/CNPJ (`Register`, else `CNPJ`, else
 *   `CPF`), how a Milvus row's `cnpj_cpf` is read back (leading zeros restored by `is_fisica`),
 *   and the three forms every search tries (Milvus finds a document only as it was stored).
 * - The mapping Ploomes contact → `POST /cliente/criar` body.
 * - milvus_client_ensure(): identity map → search (every form) → create exactly once
 *   (worker_create_once, kind clients, key = normalised document) → token.
 * - Small helpers both client workers share (optional strings, dates, the id and document
 *   filters, marking a create without an id as ambiguous).
 *
 * Personal data: documents are logged only masked (doc_mask) and only at debug; messages put in
 * worker_result_t never hold a document, a name or a phone.
 *
 * Ownership: every cJSON / string returned is the caller's (see each function). The context,
 * its API clients and store are borrowed for the call. Thread-safety: reentrant, no global
 * state; one worker_ctx_t per thread (as worker.h says).
 */
#ifndef PIPELINE_MILVUS_CLIENT_H
#define PIPELINE_MILVUS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../common/doc.h"
#include "worker.h"

/* ---- documents ----------------------------------------------------------------------------- */

#define MILVUS_DOC_FORMS_MAX 3

/* The forms of one normalised document that a Milvus search tries, in this order, without
 * duplicates: the normal form ("01234567000195"), the masked form ("01.234.567/0001-95",
 * "529.982.247-25"), and the digits without their leading zeros ("1234567000195": a document
 * Milvus stored as a JSON number). An alphanumeric CNPJ or a document without leading zeros
 * has fewer forms. */
typedef struct {
    char form[MILVUS_DOC_FORMS_MAX][DOC_DISPLAY_SIZE];
    int count;
} milvus_doc_forms_t;

/* Fills *out with the forms of `doc_norm` (a valid normalised CPF/CNPJ). Returns the number of
 * forms (>= 1), or -1 (out->count = 0) when doc_norm is NULL, empty or longer than 14. */
int milvus_doc_forms(const char *doc_norm, milvus_doc_forms_t *out);

/* The document of a Ploomes contact: the first of `Register`, `CNPJ`, `CPF` that is a
 * non-empty string (JSON null, "", missing: look at the next one; a non-string value is
 * DOC_INVALID "not a string"). Normalised and verified with doc_parse(): out gets the normal
 * form for DOC_CPF / DOC_CNPJ ("" otherwise); *reason (may be NULL) a static sentence for
 * DOC_INVALID / DOC_NONE ("no Register, CNPJ or CPF"). When `TypeId` (1 company, 2 person)
 * disagrees with the document's kind, the document decides and *type_mismatch (may be NULL) is
 * set (the caller logs it with the record key; no document in the log). */
doc_kind_t milvus_contact_document(const cJSON *contact, char out[DOC_BUF_SIZE],
                                   const char **reason, bool *type_mismatch);

/* The document of a Milvus `/cliente/busca` row (`cnpj_cpf`, a string or a number): digits
 * only and shorter than its kind are left-padded to 11 when `is_fisica` is true and to 14 when
 * it is false (when `is_fisica` is not a boolean: doc_from_milvus_json()'s length rule). out
 * and reason as for doc_parse(). */
doc_kind_t milvus_row_document(const cJSON *row, char out[DOC_BUF_SIZE], const char **reason);

/* ---- mapping ------------------------------------------------------------------------------- */

/* The `POST /cliente/criar` body for a Ploomes contact (SPEC §5 clients-to-milvus), as a new
 * cJSON object the caller frees with cJSON_Delete():
 *   cliente_documento  doc_norm (a string; kind DOC_CNPJ → cliente_pessoa_juridica{nome_fantasia
 *                      = Name, razao_social = LegalName or Name, inscricao_estadual = ""},
 *                      DOC_CPF → cliente_pessoa_fisica{nome = Name, data_nascimento = Birthday
 *                      as YYYY-MM-DD when it is a date}; the document decides, not TypeId)
 *   cliente_site = Website, cliente_observacao = Note (only when non-empty strings),
 *   cliente_ativo = true, cliente_id_integracao = Id (a number),
 *   cliente_enderecos  one {endereco_padrao:true, endereco_cep (8 digits, ZipCode number or
 *                      string), endereco_logradouro, endereco_numero, endereco_complemento,
 *                      endereco_bairro, endereco_cidade = City.Name, endereco_estado =
 *                      State.Short} with only the fields that are there; omitted altogether
 *                      when the contact has none of them (a bad CEP is left out, not sent)
 *   cliente_contatos   the contact first {contato_padrao:true, contato_descricao = Name,
 *                      contato_email = Email, contato_telefone = Phones[0].PhoneNumber,
 *                      contato_celular = Phones[1].PhoneNumber}, then one
 *                      {contato_padrao:false, ...} per person of expanded `Contacts` (their
 *                      own Phones when expanded); a person without name, e-mail or phone is
 *                      left out; omitted when empty.
 * No placeholder is ever sent: a missing, null, empty or wrongly typed optional field is
 * simply not in the body. Fails (returns NULL, err gets a sentence without personal data) when
 * a string that would be sent is not valid UTF-8, when there is no usable Name (nor LegalName
 * for a company), when doc_norm/kind is not a valid CPF/CNPJ, or when memory runs out. */
cJSON *milvus_client_body(const cJSON *contact, const char *doc_norm, doc_kind_t kind,
                          char *err, size_t errlen);

/* ---- searching, creating ------------------------------------------------------------------- */

/* Looks for the Milvus client of `doc_norm` (a valid normalised document): `GET
 * /cliente/busca?documento=<form>&status=3` (API_IDEMPOTENT) for each form of
 * milvus_doc_forms() until a row whose own document (milvus_row_document) equals doc_norm
 * turns up (several: the lowest id wins). FOUND: *found (may be NULL) is zeroed, then gets key
 * = doc_norm, milvus_id, milvus_token ("" when the row has none) and origin "milvus".
 * NOT_FOUND after every form. FAILED: a search could not be done; `out` holds the failure
 * (worker_result_from_api: WORKER_DEAD / WORKER_RELEASE / WORKER_AUTH). Attempts add up in
 * out. The signature fits worker_create_t.search through milvus_client_search_cb. */
worker_search_t milvus_client_search(worker_ctx_t *ctx, const char *doc_norm,
                                     store_entry_t *found, worker_result_t *out);

/* worker_create_t.search adapter: arg is the normalised document (const char *). */
worker_search_t milvus_client_search_cb(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                        worker_result_t *out);

/* Parses the body of a successful `/cliente/criar` (or `/chamado/criar`): the bare id as a
 * JSON number ("123") or a JSON string of digits ("\"123\""), surrounding whitespace allowed.
 * Returns 0 with *id (> 0), -1 when the body holds no such id (the create is then ambiguous). */
int milvus_parse_bare_id(const char *body, size_t len, int64_t *id);

/* Makes sure the Milvus client of `contact` (a Ploomes contact as the producer publishes it or
 * ploomes_contact_fetch() returns it) exists, and fills *entry (may be NULL; zeroed first) with
 * key = normalised document, milvus_id, milvus_token (may be "" — see milvus_client_token()),
 * ploomes_id, origin:
 *   1. document (milvus_contact_document): none → WORKER_DEAD `ClientNotFound`; invalid →
 *      WORKER_DEAD `InvalidDocument`.
 *      A PERSON WITHOUT A VALID DOCUMENT OF THEIR OWN who has a `CompanyId` is served through
 *      the company: the CALLER (ticket workers) fetches the company (ploomes_contact_fetch of
 *      CompanyId) and passes the company contact here; this function never follows CompanyId.
 *   2. identity map (MongoDB `clients`, _id = document, through store_client_get_cached():
 *      no round trip once known): an entry with a milvus_id → WORKER_DEDUP_HIT `identity_map`
 *      (its ploomes_id is added when missing).
 *   3. milvus_client_search(): found → recorded in the map (milvus_id, token, ploomes_id,
 *      origin "milvus") → WORKER_DEDUP_HIT `found_at_target`.
 *   4. may_create false → WORKER_DEAD `ClientNotFound` (an old contact: fixed by hand, replayed).
 *   5. worker_create_once(kind clients, key = document, seed {ploomes_id, origin "ploomes"},
 *      search = milvus_client_search, create = POST /cliente/criar with milvus_client_body()
 *      through worker_post(); a 2xx without a bare id is API_AMBIGUOUS), then the token by
 *      `/cliente/busca?documento=<the form sent>&status=3`, taking the row whose id is the new
 *      id; no token found → milvus_id only (never re-created). → WORKER_DELIVERED `created`
 *      (or what worker_create_once says: `claim_done` / `found_at_target` dedup hits, RELEASE
 *      on a busy claim, DEAD on a failed create).
 *   An unmappable contact (milvus_client_body failed) → WORKER_DEAD `UnmappableRecord`.
 *   A store failure (MongoDB down) → WORKER_RELEASE (never a dead letter).
 * Returns out->outcome (outcome, reason and target_id = the Milvus id set). Ticket workers
 * treat DELIVERED and DEDUP_HIT as "client ready", then set their own outcome in `out` (HTTP
 * attempts keep adding up). */
worker_outcome_t milvus_client_ensure(worker_ctx_t *ctx, const cJSON *contact, bool may_create,
                                      store_entry_t *entry, worker_result_t *out);

/* Fills a missing entry->milvus_token (ticket workers need the token as `cliente_id`):
 * nothing to do when it is set. Otherwise milvus_client_search(entry->key), taking the row
 * whose id is entry->milvus_id (any matching row when milvus_id is 0), and records the token
 * in the identity map (a store failure there is logged, not fatal).
 * Returns WORKER_DELIVERED with entry->milvus_token set and `out` untouched (the
 * worker_result_from_api convention), WORKER_DEAD `ClientNotFound` when Milvus has no such
 * client or no token for it, or the failure outcome of the search (DEAD / RELEASE / AUTH). */
worker_outcome_t milvus_client_token(worker_ctx_t *ctx, store_entry_t *entry,
                                     worker_result_t *out);

/* ---- helpers shared by the two client workers ------------------------------------------------ */

/* obj[key] as a string worth sending: 1 = *s set (a string with a non-blank character), 0 = not
 * there (missing, null, blank, another JSON type: never sent, no placeholder), -1 = a string that
 * is not valid UTF-8 (the record cannot be mapped). */
int milvus_client_opt_string(const cJSON *obj, const char *key, const char **s);

/* The date "YYYY-MM-DD" that starts `s` (followed by its end, 'T' or ' '; month 1-12, day
 * 1-31) into out; false (out untouched) when s holds no such date. */
bool milvus_client_date(const char *s, char out[11]);

/* A 2xx create answer without a usable id is an ambiguous create (SPEC §4): sets res->outcome
 * API_AMBIGUOUS, error class "AmbiguousCreate" and a message naming `what` (no personal data).
 * Returns API_AMBIGUOUS. */
api_outcome_t milvus_client_ambiguous(api_result_t *res, const char *what);

/* The record's own id, obj[key] (a 64-bit id > 0), into *id: true, or false with `out` set to
 * WORKER_DEAD `InvalidRecord` ("the <what> has no usable <key> (...)"). */
bool milvus_client_record_id(const cJSON *obj, const char *key, const char *what, int64_t *id,
                             worker_result_t *out);

/* The document filter of the client workers: DOC_NONE → WORKER_SKIPPED `no_document`;
 * DOC_INVALID → WORKER_DEAD `InvalidDocument` ("<what> <id>: <why>"); a valid kind → true with
 * `out` untouched. Returns true when the record goes on. */
bool milvus_client_doc_ok(doc_kind_t kind, const char *why, const char *what, int64_t id,
                          worker_result_t *out);

#endif
