/* ticket: what tasks-to-milvus and interactions-to-milvus share (SPEC §4 "Idempotence across
 * crashes", §5 "tasks-to-milvus and interactions-to-milvus").
 *
 * A ticket worker turns one tagged Ploomes record (a task or an interaction) into one Milvus
 * ticket, ever:
 *   filter    a configured tag (TICKET_TAGS, first match in TICKET_TAGS order gives the
 *             category) else skip `no_tag`; a ContactId else skip `no_contact`; CreateDate >=
 *             TICKETS_SINCE else skip `before_cutoff`; with TICKET_MAX_AGE_MINUTES, older than
 *             that when the producer fetched it (fetched-at header; never for a replayed
 *             letter) skip `too_old`
 *   client    the record's contact from Ploomes (chamado_contato / _email / _telefone; a
 *             person without a valid document of their own who has a CompanyId is served
 *             through the company's client) → the token from the identity map by Ploomes
 *             contact id (the store's in-memory cache: no Milvus call once known) → else
 *             milvus_client_ensure() (creates the client only for a contact created on or after
 *             SYNC_SINCE; else dead letter ClientNotFound); a client without a token gets it
 *             through milvus_client_token()
 *   create    worker_create_once() on `tickets` with key "ploomes:<entity>:<Id>": POST
 *             /chamado/criar; search before create = /chamado/listagem (cliente_token, status 10,
 *             data_hora_criacao_inicial = the claim's first time − 24 h, codigo descending, 100
 *             a page) looking for the marker line "[ploomes:<entity>:<Id>]" as the FIRST line of
 *             `descricao`, stopping at the first row older than that window.
 *
 * The pure pieces (filter, marker, description, subject, body, Milvus dates) are public
 * for the unit tests (tests/workers/test_ticket*.c).
 *
 * Ownership: functions returning char * return malloc'd text the caller frees. The handler
 * state (ticket_init/ticket_fini: the cut-off and metric families) is read-only after init.
 * Thread-safety: every function is reentrant; ticket_handle() may run on several threads at
 * once with their own worker_ctx_t and the one shared state.
 */
#ifndef PIPELINE_TICKET_H
#define PIPELINE_TICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "worker.h"

/* The MongoDB setting shared with ploomes-producer (SPEC §5 TICKETS_SINCE). */
#define TICKET_SINCE_SETTING "tickets_since"
/* chamado_assunto is cut at this many characters (interactions: first line of Content). */
#define TICKET_SUBJECT_MAX_CHARS 120
/* Task titles are sent whole up to this many characters. */
#define TICKET_TITLE_MAX_CHARS 255
/* Widest marker: "[ploomes:interaction:-9223372036854775808]" + NUL. */
#define TICKET_MARKER_SIZE 48
/* Widest dedup key, same shape without the brackets. */
#define TICKET_KEY_SIZE 48
/* /chamado/listagem page size and the most pages one search reads (then: search failed). */
#define TICKET_SEARCH_PAGE 100
#define TICKET_SEARCH_MAX_PAGES 50

/* One kind of source record. The two workers differ only in this table. */
typedef struct ticket_source {
    const char *entity;     /* "task" | "interaction": dedup key and marker */
    const char *text_field; /* "Description" | "Content": the description after the marker */
    /* Writes chamado_assunto for `rec` (valid UTF-8, never empty, <= size - 1 bytes). */
    void (*subject)(const cJSON *rec, int64_t id, char *out, size_t size);
} ticket_source_t;

/* ---- handler plumbing -------------------------------------------------------------------- */

/* worker_handler_t.init: reads TICKETS_SINCE (cfg->tickets_since_ms, or when -1 the MongoDB
 * setting "tickets_since", fixed at now − TICKET_LOOKBACK_MINUTES by whoever comes first),
 * registers the handler's metrics. Non-zero with err when the store
 * cannot answer or the stored value is not RFC 3339. */
int ticket_init(worker_ctx_t *ctx, void **state, char *err, size_t errlen);
void ticket_fini(void *state);

/* The whole handling of one record (worker_handler_t.handle for `src`). */
void ticket_handle(worker_ctx_t *ctx, void *state, const ticket_source_t *src,
                   const cJSON *rec, worker_result_t *out);

/* The cut-off in force (ms since the epoch), for tests and logs. */
int64_t ticket_state_since_ms(const void *state);

/* ---- pure pieces --------------------------------------------------------------------------- */

/* What the filter reads from a record. */
typedef struct {
    int64_t id;              /* Id */
    int64_t contact_id;      /* ContactId */
    int64_t create_ms;       /* CreateDate */
    const char *category;    /* borrowed from cfg: chamado_categoria_primaria */
    int64_t tag_id;          /* the matching TagId */
} ticket_record_t;

/* The filters, in this order: Id (missing / not an integer → DEAD InvalidRecord), tag (no_tag),
 * ContactId (no_contact; a non-integer → DEAD InvalidRecord), CreateDate (missing or not RFC
 * 3339 → DEAD InvalidRecord; < since_ms → before_cutoff), TICKET_MAX_AGE_MINUTES (too_old;
 * only when > 0, fetched_at_ms >= 0 and not replayed). Returns WORKER_DELIVERED when the record
 * passes (out untouched, *r filled), else the outcome set in out. */
worker_outcome_t ticket_filter(const config_t *cfg, int64_t since_ms, int64_t fetched_at_ms,
                               bool replayed, const cJSON *rec, ticket_record_t *r,
                               worker_result_t *out);

/* "[ploomes:<entity>:<id>]" / "ploomes:<entity>:<id>". 0, or -1 when it does not fit. */
int ticket_marker(const char *entity, int64_t id, char *buf, size_t size);
int ticket_key(const char *entity, int64_t id, char *buf, size_t size);

/* Number of bytes of the longest prefix of s[0..len) holding at most max_chars characters
 * (code points), never splitting one. *chars (may be NULL) gets the characters counted. */
size_t ticket_utf8_prefix(const char *s, size_t len, size_t max_chars, size_t *chars);

/* chamado_descricao: the marker line, then `text` (may be NULL or ""), the whole at most
 * max_chars characters: a longer text is cut at a character boundary and ends with "…".
 * *capped (may be NULL) says whether it was cut. NULL when memory runs out. Caller frees. */
char *ticket_description(const char *marker, const char *text, int max_chars, bool *capped);

/* First line of `text` (up to CR or LF), blanks trimmed at both ends, cut at max_chars
 * characters; "" when none. Writes at most size - 1 bytes (never splitting a character). */
void ticket_first_line(const char *text, size_t max_chars, char *out, size_t size);

/* The two subjects: task Title (first line, up to TICKET_TITLE_MAX_CHARS) and interaction
 * Content's first line (TICKET_SUBJECT_MAX_CHARS); when empty, "Tarefa Ploomes <Id>" /
 * "Interação Ploomes <Id>". */
void ticket_task_subject(const cJSON *rec, int64_t id, char *out, size_t size);
void ticket_interaction_subject(const cJSON *rec, int64_t id, char *out, size_t size);

/* The fields of one POST /chamado/criar. NULL or "" fields are not sent. */
typedef struct {
    const char *token;       /* cliente_id: the Milvus client TOKEN (required) */
    const char *subject;     /* chamado_assunto (required) */
    const char *description; /* chamado_descricao (required) */
    const char *category;    /* chamado_categoria_primaria */
    const char *contato;     /* chamado_contato */
    const char *email;       /* chamado_email */
    const char *telefone;    /* chamado_telefone */
} ticket_body_t;

/* The JSON body; chamado_mesa / setor / tecnico / categoria_secundaria from cfg when non-empty.
 * NULL when memory runs out. Caller frees. */
char *ticket_body_json(const config_t *cfg, const ticket_body_t *b);

/* True when the first line of `descricao` (CR/LF ended, blanks trimmed) is exactly `marker`. */
bool ticket_marker_first_line(const char *descricao, const char *marker);

/* One /chamado/listagem page (codigo descending, newest first), for the search before create:
 *   FOUND  a row whose descricao has `marker` as its first line (*codigo gets its codigo)
 *   END    nothing more to read: a row created before since_ms (data_criacao, Brasília time),
 *          a page shorter than page_size, or the same page again (its first codigo equals
 *          first_codigo: the API ignored `pagina`)
 *   MORE   a full page without the marker: read the next one
 *   BAD    no `lista` array
 * first_codigo (in/out): the first codigo of the previous page, "" at the start. */
typedef enum {
    TICKET_SCAN_FOUND = 0,
    TICKET_SCAN_END,
    TICKET_SCAN_MORE,
    TICKET_SCAN_BAD
} ticket_scan_t;
ticket_scan_t ticket_scan_page(const cJSON *page, const char *marker, int64_t since_ms,
                               int page_size, char *first_codigo, size_t first_size,
                               char *codigo, size_t codigo_size);

/* Milvus' "YYYY-MM-DD HH:MM:SS" in Brasília time (UTC−3, no DST since 2019) ↔ epoch ms. */
void ticket_milvus_time(int64_t epoch_ms, char *buf, size_t size);
int ticket_parse_milvus_time(const char *text, int64_t *epoch_ms);

/* The two handlers (tasks_to_milvus.c, interactions_to_milvus.c). */
extern const worker_handler_t TASKS_TO_MILVUS;
extern const worker_handler_t INTERACTIONS_TO_MILVUS;

#endif
