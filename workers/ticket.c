/* ticket: what both ticket workers share. See ticket.h. */
#include "ticket.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "doc.h"
#include "errbuf.h"
#include "json.h"
#include "log.h"
#include "milvus_client.h"
#include "ploomes_contact.h"

#define HOUR_MS ((int64_t)3600 * 1000)
#define BRASILIA_OFFSET_MS (3 * HOUR_MS)
#define CONTACT_TEXT_MAX_CHARS 200

/* ---- pure pieces ---------------------------------------------------------------------------- */

int ticket_marker(const char *entity, int64_t id, char *buf, size_t size)
{
    int n = snprintf(buf, size, "[ploomes:%s:%" PRId64 "]", entity, id);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int ticket_key(const char *entity, int64_t id, char *buf, size_t size)
{
    int n = snprintf(buf, size, "ploomes:%s:%" PRId64, entity, id);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

size_t ticket_utf8_prefix(const char *s, size_t len, size_t max_chars, size_t *chars)
{
    size_t pos = 0, n = 0;
    while (pos < len && n < max_chars) {
        size_t step = json_utf8_seq_len(s + pos, len - pos);
        pos += step ? step : 1; /* a byte that does not decode counts as one character */
        n++;
    }
    if (chars)
        *chars = n;
    return pos;
}

/* Characters in s[0..len). */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n;
    ticket_utf8_prefix(s, len, (size_t)-1, &n);
    return n;
}

char *ticket_description(const char *marker, const char *text, int max_chars, bool *capped)
{
    static const char ellipsis[] = "\xE2\x80\xA6"; /* U+2026 */
    size_t mlen = strlen(marker);
    size_t tlen = text ? strlen(text) : 0;
    size_t budget = max_chars > 0 ? (size_t)max_chars : 0;
    size_t mchars = utf8_chars(marker, mlen);
    size_t keep = tlen, tail = 0;
    bool cut = false;
    if (capped)
        *capped = false;
    if (tlen > 0) {
        /* room for the text after "marker\n" */
        size_t room = budget > mchars + 1 ? budget - mchars - 1 : 0;
        size_t counted;
        keep = ticket_utf8_prefix(text, tlen, room, &counted);
        if (keep < tlen) { /* longer than the room: cut one more character for the ellipsis */
            cut = true;
            keep = room > 0 ? ticket_utf8_prefix(text, tlen, room - 1, NULL) : 0;
            tail = room > 0 ? sizeof ellipsis - 1 : 0;
        }
    }
    bool body = tlen > 0 && keep + tail > 0; /* no room at all: the marker alone */
    size_t total = mlen + (body ? 1 + keep + tail : 0);
    char *out = malloc(total + 1);
    if (!out)
        return NULL;
    memcpy(out, marker, mlen);
    size_t pos = mlen;
    if (body) {
        out[pos++] = '\n';
        memcpy(out + pos, text, keep);
        pos += keep;
        memcpy(out + pos, ellipsis, tail);
        pos += tail;
    }
    out[pos] = '\0';
    if (capped)
        *capped = cut;
    return out;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

void ticket_first_line(const char *text, size_t max_chars, char *out, size_t size)
{
    if (size == 0)
        return;
    out[0] = '\0';
    if (!text)
        return;
    const char *p = text;
    for (;;) { /* first line holding something other than blanks */
        while (is_blank(*p))
            p++;
        if (*p == '\r' || *p == '\n') {
            p++;
            continue;
        }
        break;
    }
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && is_blank(p[len - 1]))
        len--;
    size_t keep = ticket_utf8_prefix(p, len, max_chars, NULL);
    if (keep > size - 1) { /* the buffer is smaller: cut there, never inside a character */
        keep = size - 1;
        while (keep > 0 && ((unsigned char)p[keep] & 0xC0) == 0x80)
            keep--;
    }
    while (keep > 0 && is_blank(p[keep - 1]))
        keep--;
    memcpy(out, p, keep);
    out[keep] = '\0';
}

static void subject_of(const cJSON *rec, const char *field, size_t max_chars, const char *fallback,
                       int64_t id, char *out, size_t size)
{
    const char *text = NULL;
    if (json_get_string(rec, field, &text) != JSON_OK)
        text = NULL;
    ticket_first_line(text, max_chars, out, size);
    if (out[0] == '\0')
        snprintf(out, size, "%s %" PRId64, fallback, id);
}

void ticket_task_subject(const cJSON *rec, int64_t id, char *out, size_t size)
{
    subject_of(rec, "Title", TICKET_TITLE_MAX_CHARS, "Tarefa Ploomes", id, out, size);
}

void ticket_interaction_subject(const cJSON *rec, int64_t id, char *out, size_t size)
{
    subject_of(rec, "Content", TICKET_SUBJECT_MAX_CHARS, "Intera\xC3\xA7\xC3\xA3o Ploomes", id,
               out, size);
}

static bool add_str(cJSON *o, const char *name, const char *value)
{
    if (!value || !value[0])
        return true;
    return cJSON_AddStringToObject(o, name, value) != NULL;
}

char *ticket_body_json(const config_t *cfg, const ticket_body_t *b)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (!o)
        return NULL;
    if (add_str(o, "cliente_id", b->token) && add_str(o, "chamado_assunto", b->subject) &&
        add_str(o, "chamado_descricao", b->description) &&
        add_str(o, "chamado_contato", b->contato) && add_str(o, "chamado_email", b->email) &&
        add_str(o, "chamado_telefone", b->telefone) &&
        add_str(o, "chamado_categoria_primaria", b->category) &&
        add_str(o, "chamado_categoria_secundaria", cfg->ticket_categoria_secundaria) &&
        add_str(o, "chamado_mesa", cfg->ticket_mesa) &&
        add_str(o, "chamado_setor", cfg->ticket_setor) &&
        add_str(o, "chamado_tecnico", cfg->ticket_tecnico))
        text = json_print(o, NULL);
    cJSON_Delete(o);
    return text;
}

bool ticket_marker_first_line(const char *descricao, const char *marker)
{
    if (!descricao || !marker)
        return false;
    const char *p = descricao;
    while (is_blank(*p))
        p++;
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && is_blank(p[len - 1]))
        len--;
    size_t mlen = strlen(marker);
    return len == mlen && memcmp(p, marker, mlen) == 0;
}

void ticket_milvus_time(int64_t epoch_ms, char *buf, size_t size)
{
    time_t t = (time_t)((epoch_ms - BRASILIA_OFFSET_MS) / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, size, "1970-01-01 00:00:00");
        return;
    }
    snprintf(buf, size, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int ticket_parse_milvus_time(const char *text, int64_t *epoch_ms)
{
    if (!text)
        return -1;
    size_t len = strlen(text);
    if (len == 19 && text[10] == ' ') { /* "YYYY-MM-DD HH:MM:SS", Brasília */
        char iso[32];
        memcpy(iso, text, 19);
        iso[10] = 'T';
        memcpy(iso + 19, "-03:00", 7);
        return config_parse_rfc3339(iso, epoch_ms);
    }
    return config_parse_rfc3339(text, epoch_ms); /* ISO with an offset or Z */
}

worker_outcome_t ticket_filter(const config_t *cfg, int64_t since_ms, int64_t fetched_at_ms,
                               bool replayed, const cJSON *rec, ticket_record_t *r,
                               worker_result_t *out)
{
    memset(r, 0, sizeof *r);
    json_status_t st = json_get_int64(rec, "Id", &r->id);
    if (st != JSON_OK || r->id <= 0)
        return worker_result_dead(out, "InvalidRecord", "Id is %s",
                                  st == JSON_OK ? "not positive" : json_status_name(st));
    const cJSON *tags = NULL, *tag;
    if (json_get_array(rec, "Tags", &tags) == JSON_OK) {
        for (size_t i = 0; i < cfg->ticket_tag_count && !r->category; i++) {
            cJSON_ArrayForEach(tag, tags)
            {
                int64_t tid;
                if (json_get_int64(tag, "TagId", &tid) == JSON_OK &&
                    tid == cfg->ticket_tags[i].tag_id) {
                    r->tag_id = tid;
                    r->category = cfg->ticket_tags[i].category;
                    break;
                }
            }
        }
    }
    if (!r->category)
        return worker_result_set(out, WORKER_SKIPPED, "no_tag");
    st = json_get_int64(rec, "ContactId", &r->contact_id);
    if (st == JSON_MISSING || st == JSON_NULL || (st == JSON_OK && r->contact_id == 0))
        return worker_result_set(out, WORKER_SKIPPED, "no_contact");
    if (st != JSON_OK || r->contact_id < 0)
        return worker_result_dead(out, "InvalidRecord", "ContactId is %s",
                                  st == JSON_OK ? "negative" : json_status_name(st));
    const char *created = NULL;
    st = json_get_string(rec, "CreateDate", &created);
    if (st != JSON_OK)
        return worker_result_dead(out, "InvalidRecord", "CreateDate is %s",
                                  json_status_name(st));
    if (config_parse_rfc3339(created, &r->create_ms) != 0)
        return worker_result_dead(out, "InvalidRecord", "CreateDate is not an RFC 3339 time");
    if (r->create_ms < since_ms)
        return worker_result_set(out, WORKER_SKIPPED, "before_cutoff");
    if (cfg->ticket_max_age_minutes > 0 && !replayed && fetched_at_ms >= 0 &&
        fetched_at_ms - r->create_ms > (int64_t)cfg->ticket_max_age_minutes * 60000)
        return worker_result_set(out, WORKER_SKIPPED, "too_old");
    return WORKER_DELIVERED;
}

/* ---- state: cut-off, metrics ----------------------------------------------------------------- */

/* Read-only after ticket_init(): shared by every thread without a lock. */
typedef struct {
    int64_t since_ms;
    metrics_family_t *clients; /* worker_ticket_clients_total{worker,via,through} */
    metrics_family_t *capped;  /* worker_ticket_descriptions_capped_total{worker} */
} ticket_state_t;

int64_t ticket_state_since_ms(const void *state)
{
    return state ? ((const ticket_state_t *)state)->since_ms : -1;
}

int ticket_init(worker_ctx_t *ctx, void **state, char *err, size_t errlen)
{
    const config_t *cfg = ctx->cfg;
    ticket_state_t *s = calloc(1, sizeof *s);
    if (!s) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    char initial[CLOCK_RFC3339_SIZE], value[128], serr[256];
    const char *source = "TICKETS_SINCE";
    if (cfg->tickets_since_ms >= 0) {
        s->since_ms = cfg->tickets_since_ms;
        snprintf(value, sizeof value, "%s", cfg->tickets_since ? cfg->tickets_since : "");
    } else {
        clock_rfc3339(clock_wall_ms() - (int64_t)cfg->ticket_lookback_minutes * 60000, initial,
                      sizeof initial);
        int got = STORE_NOT_FOUND;
        if (ctx->dry_run) /* no writes to MongoDB: read the account's setting, never fix it */
            got = store_setting_get(ctx->store, TICKET_SINCE_SETTING, value, sizeof value, serr,
                                    sizeof serr);
        if (ctx->dry_run && got == STORE_OK) {
            source = "mongodb";
        } else if (ctx->dry_run) {
            snprintf(value, sizeof value, "%s", initial);
            source = "dry_run_lookback";
        } else {
            int rc = store_setting_get_or_init(ctx->store, TICKET_SINCE_SETTING, initial, value,
                                               sizeof value, serr, sizeof serr);
            if (rc != STORE_OK) {
                errbuf_set(err, errlen, "setting %s (TICKETS_SINCE) not readable: %s",
                           TICKET_SINCE_SETTING, serr);
                free(s);
                return -1;
            }
            source = "mongodb";
        }
        if (config_parse_rfc3339(value, &s->since_ms) != 0) {
            errbuf_set(err, errlen,
                       "setting %s in MongoDB is not an RFC 3339 time; fix or delete it, or set "
                       "TICKETS_SINCE",
                       TICKET_SINCE_SETTING);
            free(s);
            return -1;
        }
    }
    if (ctx->metrics) {
        s->clients = metrics_counter_new(
            ctx->metrics, "worker_ticket_clients_total",
            "How ticket workers found the Milvus client of a record (via: identity_map, milvus = "
            "found or created there; through: contact, company = a person's company).",
            (const char *[]){"worker", "via", "through", NULL});
        s->capped = metrics_counter_new(ctx->metrics, "worker_ticket_descriptions_capped_total",
                                        "Ticket descriptions cut at TICKET_DESCRIPTION_MAX.",
                                        (const char *[]){"worker", NULL});
    }
    log_msg(LOG_INFO, "tickets_since", "value=%s source=%s", value, source);
    *state = s;
    return 0;
}

void ticket_fini(void *state)
{
    ticket_state_t *s = state;
    if (!s)
        return;
    free(s);
}

/* ---- the client of a ticket ----------------------------------------------------------------- */

typedef struct {
    char token[STORE_TOKEN_MAX];
    char contato[CONTACT_TEXT_MAX_CHARS * 4 + 1];
    char email[CONTACT_TEXT_MAX_CHARS * 4 + 1];
    char telefone[CONTACT_TEXT_MAX_CHARS * 4 + 1];
    const char *via;     /* "identity_map" | "milvus" */
    const char *through; /* "contact" | "company" */
    bool fetched;        /* the contact was read: contato / email / telefone are known */
} ticket_client_t;

static void copy_capped(char *dst, size_t size, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    size_t keep = ticket_utf8_prefix(src ? src : "", len, CONTACT_TEXT_MAX_CHARS, NULL);
    if (keep > size - 1)
        keep = 0;
    memcpy(dst, src ? src : "", keep);
    dst[keep] = '\0';
}

/* chamado_contato / email / telefone from a Ploomes contact (Name, Email, Phones[0]). */
static void contact_details(const cJSON *contact, ticket_client_t *cl)
{
    const char *s = NULL;
    if (json_get_string(contact, "Name", &s) == JSON_OK)
        copy_capped(cl->contato, sizeof cl->contato, s);
    if (json_get_string(contact, "Email", &s) == JSON_OK)
        copy_capped(cl->email, sizeof cl->email, s);
    const cJSON *phones = NULL;
    if (json_get_array(contact, "Phones", &phones) == JSON_OK &&
        json_get_string(cJSON_GetArrayItem(phones, 0), "PhoneNumber", &s) == JSON_OK)
        copy_capped(cl->telefone, sizeof cl->telefone, s);
}

/* The record's own copy of its contact (ploomes-producer asks /Tasks for
 * `$expand=Contact($select=Id,Name,Email;$expand=Phones)`): its details when it is an object
 * whose Id is the record's ContactId, so a ticket needs no Ploomes read. Anything else (older
 * records, interactions, a null or mismatched Contact) leaves the details to fetch_details(). */
static void embedded_details(const cJSON *rec, int64_t contact_id, ticket_client_t *cl)
{
    const cJSON *contact = cJSON_GetObjectItemCaseSensitive(rec, "Contact");
    int64_t id = 0;
    if (cl->fetched || !cJSON_IsObject(contact) || json_get_int64(contact, "Id", &id) != JSON_OK ||
        id != contact_id)
        return;
    contact_details(contact, cl);
    cl->fetched = true;
}

/* Whether the contact carries a valid document of its own (Register, else CNPJ, else CPF). */
static bool has_valid_document(const cJSON *contact)
{
    char norm[DOC_BUF_SIZE];
    doc_kind_t k = milvus_contact_document(contact, norm, NULL, NULL);
    return k == DOC_CPF || k == DOC_CNPJ;
}

static bool created_since_sync(const config_t *cfg, const cJSON *contact)
{
    const char *s = NULL;
    int64_t ms;
    return json_get_string(contact, "CreateDate", &s) == JSON_OK &&
           config_parse_rfc3339(s, &ms) == 0 && ms >= cfg->sync_since_ms;
}

/* Clears the outcome of a successful sub-step so the next one sets its own; attempts, failure
 * times and the response excerpt stay. */
static void keep_going(worker_result_t *out)
{
    out->outcome = WORKER_DELIVERED;
    out->reason[0] = '\0';
    out->target_id[0] = '\0';
}

/* A map entry → its token (asking Milvus when only the id is known). */
static worker_outcome_t token_of(worker_ctx_t *ctx, store_entry_t *entry, worker_result_t *out,
                                 char token[STORE_TOKEN_MAX])
{
    if (!entry->milvus_token[0]) {
        worker_outcome_t o = milvus_client_token(ctx, entry, out);
        if (o != WORKER_DELIVERED && o != WORKER_DEDUP_HIT)
            return o;
        if (!entry->milvus_token[0])
            return worker_result_dead(out, "ClientNotFound",
                                      "Milvus client %" PRId64 " has no token at /cliente/busca",
                                      entry->milvus_id);
    }
    snprintf(token, STORE_TOKEN_MAX, "%s", entry->milvus_token);
    keep_going(out);
    return WORKER_DELIVERED;
}

/* The identity map by Ploomes contact id (the store's in-memory cache first): WORKER_DELIVERED
 * with the token, WORKER_SKIPPED (used as "not known") or a failure. */
static worker_outcome_t from_map(worker_ctx_t *ctx, int64_t contact_id, worker_result_t *out,
                                 char token[STORE_TOKEN_MAX])
{
    store_entry_t e;
    char serr[256];
    int rc;
    while ((rc = store_client_by_ploomes_id_cached(ctx->store, contact_id, &e, serr,
                                                   sizeof serr)) == STORE_DOWN &&
           worker_store_wait(ctx))
        ;
    if (rc == STORE_NOT_FOUND || (rc == STORE_OK && (e.state != STORE_STATE_DONE ||
                                                     (!e.milvus_id && !e.milvus_token[0]))))
        return WORKER_SKIPPED;
    if (rc == STORE_DOWN) /* a stop was requested while MongoDB was away */
        return worker_result_set(out, WORKER_RELEASE, "stopping");
    if (rc != STORE_OK)
        return worker_result_dead(out, "StoreRejected", "identity map lookup refused: %s", serr);
    return token_of(ctx, &e, out, token);
}

/* The contact from Ploomes: WORKER_DELIVERED with *contact (caller frees), else the failure. */
static worker_outcome_t fetch_contact(worker_ctx_t *ctx, int64_t id, cJSON **contact,
                                      worker_result_t *out)
{
    worker_search_t f = ploomes_contact_fetch(ctx, id, contact, out);
    if (f == WORKER_SEARCH_FAILED)
        return out->outcome;
    if (f == WORKER_SEARCH_NOT_FOUND || !*contact)
        return worker_result_dead(out, "ClientNotFound",
                                  "Ploomes contact %" PRId64 " does not exist", id);
    keep_going(out);
    return WORKER_DELIVERED;
}

/* The client of a ticket: the token of the record's contact from the identity map (the store's
 * in-memory cache: no API call once the client is known; the contact's details are then read
 * only when a ticket is really created, see create()). Otherwise the contact from Ploomes: a
 * person without a valid document of their own who has a CompanyId is served through the
 * company's client; the token from the map, else milvus_client_ensure() (found, or created for
 * a contact created on or after SYNC_SINCE). */
static worker_outcome_t resolve_client(worker_ctx_t *ctx, const ticket_record_t *r,
                                       ticket_client_t *cl, worker_result_t *out)
{
    memset(cl, 0, sizeof *cl);
    cl->through = "contact";
    cl->via = "identity_map";
    worker_outcome_t o = from_map(ctx, r->contact_id, out, cl->token);
    if (o != WORKER_SKIPPED)
        return o;
    cJSON *contact = NULL, *company = NULL;
    o = fetch_contact(ctx, r->contact_id, &contact, out);
    if (o != WORKER_DELIVERED)
        goto done;
    contact_details(contact, cl);
    cl->fetched = true;
    int64_t company_id = 0;
    const cJSON *client = contact;
    if (!has_valid_document(contact) &&
        json_get_int64(contact, "CompanyId", &company_id) == JSON_OK && company_id > 0) {
        cl->through = "company";
        o = from_map(ctx, company_id, out, cl->token);
        if (o != WORKER_SKIPPED)
            goto done;
        o = fetch_contact(ctx, company_id, &company, out);
        if (o != WORKER_DELIVERED)
            goto done;
        client = company;
    }
    cl->via = "milvus";
    store_entry_t e;
    memset(&e, 0, sizeof e);
    o = milvus_client_ensure(ctx, client, created_since_sync(ctx->cfg, client), &e, out);
    if (o == WORKER_SKIPPED) /* defensive: a ticket cannot wait for a client */
        o = worker_result_dead(out, "ClientNotFound",
                               "the ticket's contact has no Milvus client (%s)", out->reason);
    else if (o == WORKER_DELIVERED || o == WORKER_DEDUP_HIT)
        o = token_of(ctx, &e, out, cl->token);
done:
    cJSON_Delete(contact);
    cJSON_Delete(company);
    return o;
}

/* Reads the contact's details for a client found in the identity map, right before the create
 * (a record already ticketed never gets here: no Ploomes request for re-deliveries and edits).
 * API_OK when they are known or cannot be had (a contact gone or unreadable: the ticket goes
 * without them, logged); API_AUTH / API_STOPPED with `res` filled when the run must stop. */
static api_outcome_t fetch_details(worker_ctx_t *ctx, int64_t contact_id, ticket_client_t *cl,
                                   api_result_t *res)
{
    if (cl->fetched)
        return API_OK;
    worker_result_t tmp;
    memset(&tmp, 0, sizeof tmp);
    cJSON *contact = NULL;
    worker_search_t f = ploomes_contact_fetch(ctx, contact_id, &contact, &tmp);
    api_outcome_t ao = API_OK;
    if (f == WORKER_SEARCH_FOUND && contact) {
        contact_details(contact, cl);
        cl->fetched = true;
    } else if (f == WORKER_SEARCH_FAILED &&
               (tmp.outcome == WORKER_AUTH || tmp.outcome == WORKER_RELEASE)) {
        ao = tmp.outcome == WORKER_AUTH ? API_AUTH : API_STOPPED;
        res->outcome = ao;
        res->status = tmp.http_status;
        res->attempts = tmp.attempts;
        snprintf(res->error_class, sizeof res->error_class, "%s",
                 tmp.error_class[0] ? tmp.error_class : "Stopped");
        snprintf(res->message, sizeof res->message, "Ploomes contact: %.400s", tmp.message);
    } else {
        log_msg(LOG_WARN, "ticket_contact_unavailable",
                "contact_id=%" PRId64
                " error_class=%s note=\"ticket sent without contact details\"",
                contact_id, f == WORKER_SEARCH_NOT_FOUND ? "NotFound" : tmp.error_class);
    }
    cJSON_Delete(contact);
    worker_result_clear(&tmp);
    return ao;
}

/* ---- search before create and create ------------------------------------------------------- */

typedef struct {
    const char *key;
    const char *marker;
    const char *token;
    const config_t *cfg;
    ticket_client_t *cl;
    ticket_body_t fields;  /* the body's fields but the contact's (filled by create()) */
    char *body;            /* POST /chamado/criar, built by the first create(); owned */
    int64_t id;            /* Ploomes record id */
    int64_t contact_id;    /* its ContactId */
    int64_t record_ms;     /* its CreateDate: the earliest a ticket for it can exist */
} ticket_job_t;

/* Start of the search window: the claim's first time (it survives takeovers) − 24 h; when the
 * claim cannot be read (DRY_RUN, MongoDB down), the record's CreateDate − 24 h (wider, safe). */
static int64_t window_start(worker_ctx_t *ctx, const ticket_job_t *job)
{
    int64_t first = job->record_ms;
    store_entry_t e;
    char serr[256];
    if (!ctx->dry_run &&
        store_get(ctx->store, STORE_KIND_TICKETS, job->key, &e, serr, sizeof serr) == STORE_OK &&
        e.created_at_ms > 0)
        first = e.created_at_ms;
    return first - 24 * HOUR_MS;
}

ticket_scan_t ticket_scan_page(const cJSON *page, const char *marker, int64_t since_ms,
                               int page_size, char *first_codigo, size_t first_size,
                               char *codigo, size_t codigo_size)
{
    const cJSON *lista = NULL, *row;
    if (json_get_array(page, "lista", &lista) != JSON_OK)
        return TICKET_SCAN_BAD;
    int n = 0;
    cJSON_ArrayForEach(row, lista)
    {
        char this_codigo[STORE_CODIGO_MAX] = "";
        int64_t c;
        if (json_get_int64(row, "codigo", &c) == JSON_OK)
            snprintf(this_codigo, sizeof this_codigo, "%" PRId64, c);
        if (n++ == 0) {
            if (first_codigo[0] && strcmp(first_codigo, this_codigo) == 0)
                return TICKET_SCAN_END; /* the same page again: pagina is ignored */
            snprintf(first_codigo, first_size, "%s", this_codigo);
        }
        const char *descricao = NULL;
        if (json_get_string(row, "descricao", &descricao) == JSON_OK &&
            ticket_marker_first_line(descricao, marker)) {
            snprintf(codigo, codigo_size, "%s", this_codigo);
            return TICKET_SCAN_FOUND;
        }
        const char *when = NULL;
        int64_t ms;
        if (json_get_string(row, "data_criacao", &when) == JSON_OK &&
            ticket_parse_milvus_time(when, &ms) == 0 && ms < since_ms)
            return TICKET_SCAN_END; /* older than the window: newest first, so done */
    }
    return n < page_size ? TICKET_SCAN_END : TICKET_SCAN_MORE;
}

static worker_search_t search(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                              worker_result_t *out)
{
    const ticket_job_t *job = arg;
    int64_t since_ms = window_start(ctx, job);
    char since[32], first_codigo[STORE_CODIGO_MAX] = "";
    ticket_milvus_time(since_ms, since, sizeof since);
    cJSON *req = cJSON_CreateObject();
    cJSON *f = req ? cJSON_AddObjectToObject(req, "filtro_body") : NULL;
    char *body = NULL;
    if (!f || !cJSON_AddStringToObject(f, "cliente_token", job->token) ||
        !cJSON_AddNumberToObject(f, "status", 10) ||
        !cJSON_AddStringToObject(f, "data_hora_criacao_inicial", since) ||
        !(body = json_print(req, NULL))) {
        cJSON_Delete(req);
        worker_result_dead(out, "OutOfMemory", "search body not built");
        return WORKER_SEARCH_FAILED;
    }
    cJSON_Delete(req);
    int verdict = WORKER_SEARCH_FAILED;
    for (int page = 1; page <= TICKET_SEARCH_MAX_PAGES; page++) {
        char path[160];
        snprintf(path, sizeof path,
                 "/chamado/listagem?order_by=codigo&is_descending=true&total_registros=%d"
                 "&pagina=%d",
                 TICKET_SEARCH_PAGE, page);
        api_result_t res;
        memset(&res, 0, sizeof res);
        api_outcome_t ao = api_request(ctx->milvus, HTTP_POST, path, body, API_IDEMPOTENT, &res);
        worker_result_from_api(out, &res);
        if (ao != API_OK) {
            api_result_clear(&res);
            verdict = WORKER_SEARCH_FAILED;
            goto out;
        }
        char perr[160];
        cJSON *root = json_parse_bounded(res.body, res.body_len, 64u << 20, perr, sizeof perr);
        api_result_clear(&res);
        if (!root) {
            worker_result_dead(out, "UnexpectedResponse", "/chamado/listagem: %s", perr);
            verdict = WORKER_SEARCH_FAILED;
            goto out;
        }
        ticket_scan_t sc = ticket_scan_page(root, job->marker, since_ms, TICKET_SEARCH_PAGE,
                                            first_codigo, sizeof first_codigo, found->codigo,
                                            sizeof found->codigo);
        cJSON_Delete(root);
        verdict = sc == TICKET_SCAN_FOUND  ? WORKER_SEARCH_FOUND
                  : sc == TICKET_SCAN_END  ? WORKER_SEARCH_NOT_FOUND
                  : sc == TICKET_SCAN_MORE ? -1
                                           : WORKER_SEARCH_FAILED;
        if (sc == TICKET_SCAN_BAD)
            worker_result_dead(out, "UnexpectedResponse",
                               "/chamado/listagem answered without lista");
        if (sc == TICKET_SCAN_FOUND) {
            snprintf(found->milvus_client_token, sizeof found->milvus_client_token, "%s",
                     job->token);
            found->ploomes_id = job->id;
        }
        if (verdict != -1)
            goto out;
    }
    worker_result_dead(out, "SearchTooLong",
                       "more than %d pages of tickets in the search window; not searched further",
                       TICKET_SEARCH_MAX_PAGES);
    verdict = WORKER_SEARCH_FAILED;
out:
    free(body);
    log_msg(LOG_INFO, "ticket_search", "key=%s result=%s", job->key,
            verdict == WORKER_SEARCH_FOUND       ? "found"
            : verdict == WORKER_SEARCH_NOT_FOUND ? "not_found"
                                                 : "failed");
    if (verdict == WORKER_SEARCH_FOUND || verdict == WORKER_SEARCH_NOT_FOUND)
        keep_going(out);
    return (worker_search_t)verdict;
}

static api_outcome_t create(worker_ctx_t *ctx, void *arg, store_entry_t *created,
                            api_result_t *res)
{
    ticket_job_t *job = arg;
    if (!job->body) {
        api_outcome_t ao = fetch_details(ctx, job->contact_id, job->cl, res);
        if (ao != API_OK)
            return ao;
        job->fields.contato = job->cl->contato;
        job->fields.email = job->cl->email;
        job->fields.telefone = job->cl->telefone;
        if (!(job->body = ticket_body_json(job->cfg, &job->fields))) {
            res->outcome = API_STOPPED; /* out of memory: give the record back */
            snprintf(res->error_class, sizeof res->error_class, "OutOfMemory");
            return API_STOPPED;
        }
    }
    log_msg(LOG_DEBUG, "ticket_post", "key=%s", job->key); /* tests time their crashes on it */
    api_outcome_t o = worker_post(ctx, ctx->milvus, "/chamado/criar", job->body, res);
    if (o != API_OK || ctx->dry_run)
        return o;
    int64_t codigo;
    if (milvus_parse_bare_id(res->body, res->body_len, &codigo) != 0) {
        res->outcome = API_AMBIGUOUS;
        snprintf(res->error_class, sizeof res->error_class, "UnparsableCodigo");
        snprintf(res->message, sizeof res->message,
                 "HTTP %ld from /chamado/criar without a ticket number in its body", res->status);
        return API_AMBIGUOUS;
    }
    snprintf(created->codigo, sizeof created->codigo, "%" PRId64, codigo);
    created->ploomes_id = job->id;
    snprintf(created->milvus_client_token, sizeof created->milvus_client_token, "%s", job->token);
    return API_OK;
}

/* ---- the handler ---------------------------------------------------------------------------- */

void ticket_handle(worker_ctx_t *ctx, void *state, const ticket_source_t *src,
                   const cJSON *rec, worker_result_t *out)
{
    ticket_state_t *s = state;
    const config_t *cfg = ctx->cfg;
    ticket_record_t r;
    char *description = NULL, *body = NULL;
    if (ticket_filter(cfg, s->since_ms, ctx->fetched_at_ms, ctx->replayed, rec, &r, out) !=
        WORKER_DELIVERED)
        return;
    char key[TICKET_KEY_SIZE], marker[TICKET_MARKER_SIZE];
    if (ticket_key(src->entity, r.id, key, sizeof key) != 0 ||
        ticket_marker(src->entity, r.id, marker, sizeof marker) != 0) {
        worker_result_dead(out, "InvalidRecord", "Id does not fit a ticket key");
        return;
    }
    ticket_client_t cl;
    worker_outcome_t o = resolve_client(ctx, &r, &cl, out);
    if (o != WORKER_DELIVERED)
        return;
    embedded_details(rec, r.contact_id, &cl);
    if (s->clients)
        metrics_counter_add(s->clients, (const char *[]){ctx->worker_name, cl.via, cl.through},
                            1);
    log_msg(LOG_DEBUG, "ticket_client", "key=%s via=%s through=%s", key, cl.via, cl.through);

    const char *text = NULL;
    if (json_get_string(rec, src->text_field, &text) != JSON_OK)
        text = NULL;
    bool capped = false;
    char subject[TICKET_TITLE_MAX_CHARS * 4 + 64];
    src->subject(rec, r.id, subject, sizeof subject);
    description = ticket_description(marker, text, cfg->ticket_description_max, &capped);
    if (!description) {
        worker_result_set(out, WORKER_RELEASE, "out_of_memory");
        goto done;
    }
    if (capped && s->capped)
        metrics_counter_add(s->capped, (const char *[]){ctx->worker_name}, 1);

    ticket_job_t job = {.key = key,
                        .marker = marker,
                        .token = cl.token,
                        .cfg = cfg,
                        .cl = &cl,
                        .fields = {.token = cl.token,
                                   .subject = subject,
                                   .description = description,
                                   .category = r.category},
                        .id = r.id,
                        .contact_id = r.contact_id,
                        .record_ms = r.create_ms};
    store_entry_t seed, entry;
    memset(&seed, 0, sizeof seed);
    memset(&entry, 0, sizeof entry);
    seed.ploomes_id = r.id;
    snprintf(seed.milvus_client_token, sizeof seed.milvus_client_token, "%s", cl.token);
    worker_create_t c = {.kind = STORE_KIND_TICKETS, .key = key, .seed = &seed,
                         .search = search, .create = create, .arg = &job};
    o = worker_create_once(ctx, &c, &entry, out);
    body = job.body;
    if ((o == WORKER_DELIVERED || o == WORKER_DEDUP_HIT) && !out->target_id[0] && entry.codigo[0])
        snprintf(out->target_id, sizeof out->target_id, "%s", entry.codigo);
done:
    free(description);
    free(body);
}
