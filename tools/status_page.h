/* status_page_: the HTML of pipeline-status --serve (SPEC §7): the status page at "/", a dead
 * letter's page, the replay confirmation and its result, and the JSON of /api/dlq. Server-
 * rendered, no JavaScript; "/" refreshes itself with a meta refresh.
 *
 * Everything put into HTML is escaped (status_page_escape). Personal data is masked as in the
 * logs before it reaches a page or /api/dlq: documents (CPF/CNPJ) with doc_mask(), e-mail
 * addresses and phone numbers partially (status_page_mask_text, status_page_mask_json).
 *
 * Ownership: every char * returned is malloc'd, NUL-terminated, for the caller to free(); the
 * cJSON * for cJSON_Delete(). Views and letters are borrowed for the call.
 * Thread-safety: reentrant (no state).
 */
#ifndef PIPELINE_TOOLS_STATUS_PAGE_H
#define PIPELINE_TOOLS_STATUS_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "dlq.h"
#include "status.h"
#include "status_history.h"
#include "store.h"

/* What "/" shows. */
typedef struct {
    const status_t *status;          /* the latest snapshot; NULL before the first one */
    const status_history_t *history; /* sparklines; may be NULL */
    const dlq_list_t *letters;       /* the newest dead letters; NULL when unknown */
    const char *letters_error;       /* why letters is NULL ("" or NULL when it is not) */
    const char *topic_prefix;
    int refresh_s;                   /* meta refresh period */
    bool scraping;                   /* STATUS_SCRAPE_URLS is set */
    const char *scrape_error;        /* the last scrape's problem, "" or NULL when none */
} status_page_view_t;

/* The status page. NULL when out of memory. */
char *status_page_render(const status_page_view_t *v);

/* A letter's page: its decoded fields, every header and the pretty-printed record, masked.
 * `replay` (may be NULL) tells whether and when it was replayed before. With allow_replay, a
 * "Replay..." button leading to the confirmation (confirm = true: the form that POSTs /replay
 * with the token); without it no form at all. NULL when out of memory. */
char *status_page_letter(const dlq_letter_t *l, const char *dlq_topic,
                         const store_replay_t *replay, bool allow_replay, bool confirm);

/* A small page with a title and a sentence (not found, replay result, refusals). `text` is
 * escaped. NULL when out of memory. */
char *status_page_message(const char *title, const char *text, bool ok);

/* The newest letters as JSON, the fields of `pipeline-dlq list --json` (message masked). */
cJSON *status_page_letters_json(const dlq_list_t *l);

/* Writes s (at most n bytes; n = (size_t)-1: up to its NUL) HTML-escaped to out: & < > " '
 * as entities, control characters but \n and \t as U+FFFD. */
void status_page_escape(FILE *out, const char *s, size_t n);

/* Copies at most n bytes of `in` (stops at a NUL) into out (size bytes, always NUL-terminated,
 * truncated to fit) with personal data masked: e-mail addresses keep the first character of
 * the local part and the domain ("j***@example.com"); a run of 10 or more digits (with . - /
 * ( ) + and spaces between them) is a valid CPF/CNPJ -> doc_mask(), else a phone number ->
 * every digit but the last two as '*'. Returns out. */
char *status_page_mask_text(const char *in, size_t n, char *out, size_t size);

/* Masks a parsed record in place: strings through status_page_mask_text(); the values of
 * fields whose name says document (cpf, cnpj, register, document), phone or e-mail are masked
 * whatever their form (numbers included). NULL is ignored. */
void status_page_mask_json(cJSON *j);

#endif
