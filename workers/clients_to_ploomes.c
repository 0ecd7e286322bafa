/* clients_to_ploomes: a Milvus client → one Ploomes contact (SPEC §5 "clients-to-ploomes").
 *
 * Every client with a valid document is recorded in the identity map (so clients-to-milvus
 * learns what Milvus has without a search); only active clients with id >= MILVUS_MIN_ID are
 * created in Ploomes:
 *   no document          → skipped `no_document`
 *   invalid document     → dead-lettered `InvalidDocument`
 *   is_ativo false       → recorded, skipped `inactive`
 *   id < MILVUS_MIN_ID   → recorded, skipped `below_min_id`
 *   watermark not fixed  → recorded, skipped `min_id_unset`: MILVUS_MIN_ID is unset and
 *                          milvus-producer has not stored setting "milvus_min_id" yet. Every
 *                          client published before that belongs to milvus-producer's first full
 *                          scan, whose highest id + 1 becomes the watermark: such a client is
 *                          historic by definition, and is never copied into the CRM (set
 *                          MILVUS_MIN_ID=0 and replay to backfill). Releasing instead would
 *                          stall the partition until the scan ends; creating would flood the CRM.
 *   identity map knows its Ploomes contact → dedup `identity_map`
 *   Ploomes has a contact with Register = the document (digits, then masked) → recorded,
 *                          dedup `found_at_target`
 *   otherwise            → POST /Contacts under a delivery claim, then the map entry gets the
 *                          new Ploomes id → delivered `created`. The claim is NOT the document's
 *                          identity-map entry (that one may already be done, recorded from
 *                          Milvus, and `clients` holds only documents as _id, SPEC §5): it lives
 *                          with the other one-delivery-ever claims in `tickets`, key
 *                          "ploomes-contact:<document>" (one Ploomes contact per document).
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "../common/errbuf.h"
#include "../common/json.h"
#include "../common/log.h"
#include "milvus_client.h"
#include "ploomes_contact.h"

extern const worker_handler_t CLIENTS_TO_PLOOMES;

/* The MongoDB setting milvus-producer fixes after its first full scan (SPEC §3, §5). */
#define MIN_ID_SETTING "milvus_min_id"
#define CLAIM_PREFIX "ploomes-contact:"

typedef struct {
    _Atomic int64_t min_id; /* -1 until known; fixed once known (settings never change) */
} c2p_state_t;

/* MILVUS_MIN_ID: the configured one, else the stored setting. 0 with *min_id (-1: not fixed
 * yet), or a store rc (err set). */
static int min_id_of(worker_ctx_t *ctx, c2p_state_t *s, int64_t *min_id, char *err,
                     size_t errlen)
{
    if (ctx->cfg->milvus_min_id >= 0) {
        *min_id = ctx->cfg->milvus_min_id;
        return 0;
    }
    int64_t known = atomic_load(&s->min_id);
    if (known >= 0) {
        *min_id = known;
        return 0;
    }
    char text[32];
    int rc;
    do
        rc = store_setting_get(ctx->store, MIN_ID_SETTING, text, sizeof text, err, errlen);
    while (rc == STORE_DOWN && worker_store_wait(ctx));
    if (rc == STORE_NOT_FOUND) {
        *min_id = -1;
        return 0;
    }
    if (rc != STORE_OK)
        return rc;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 0) {
        errbuf_set(err, errlen, "setting %s is not a non-negative integer", MIN_ID_SETTING);
        return STORE_REJECTED;
    }
    atomic_store(&s->min_id, (int64_t)v);
    log_msg(LOG_INFO, "min_id_known", "milvus_min_id=%lld source=mongodb", v);
    *min_id = v;
    return 0;
}

static int init(worker_ctx_t *ctx, void **state, char *err, size_t errlen)
{
    c2p_state_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        errbuf_set(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&s->min_id, -1);
    *state = s;
    if (ctx->cfg->milvus_min_id >= 0) {
        log_msg(LOG_INFO, "min_id_known", "milvus_min_id=%" PRId64 " source=config",
                ctx->cfg->milvus_min_id);
        return 0;
    }
    int64_t v = -1;
    char serr[512] = "";
    if (min_id_of(ctx, s, &v, serr, sizeof serr) != 0)
        log_msg(LOG_WARN, "min_id_unreadable", "error=%s", serr);
    else if (v < 0)
        log_msg(LOG_INFO, "min_id_unset",
                "reason=\"MILVUS_MIN_ID unset and not fixed by milvus-producer yet: clients are "
                "recorded in the identity map, none is created in Ploomes until it is\"");
    return 0;
}

static void fini(void *state)
{
    free(state);
}

static worker_outcome_t store_failed(worker_result_t *out, const char *op, int rc,
                                     const char *err)
{
    log_msg(LOG_WARN, "store_failed", "op=%s rc=%s error=%s", op, store_rc_name(rc), err);
    return worker_result_set(out, WORKER_RELEASE,
                             rc == STORE_DOWN ? "stopping" : "store_rejected");
}

/* store_record_done() through MongoDB outages. */
static int record(worker_ctx_t *ctx, const char *doc, const store_entry_t *fields, char *err,
                  size_t errlen)
{
    if (ctx->dry_run)
        return STORE_OK;
    int rc;
    do
        rc = store_record_done(ctx->store, STORE_KIND_CLIENTS, doc, fields, err, errlen);
    while (rc == STORE_DOWN && worker_store_wait(ctx));
    return rc;
}

typedef struct {
    const char *doc;
    const char *body;
    int64_t milvus_id;
} create_arg_t;

static worker_search_t search_cb(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                 worker_result_t *out)
{
    create_arg_t *a = arg;
    worker_search_t s = ploomes_contact_find_by_document(ctx, a->doc, found, out);
    if (s == WORKER_SEARCH_FOUND && found)
        found->milvus_id = a->milvus_id;
    return s;
}

static api_outcome_t create_cb(worker_ctx_t *ctx, void *arg, store_entry_t *created,
                               api_result_t *res)
{
    create_arg_t *a = arg;
    api_outcome_t o = worker_post(ctx, ctx->ploomes, "/Contacts", a->body, res);
    if (o != API_OK)
        return o;
    memset(created, 0, sizeof *created);
    created->milvus_id = a->milvus_id;
    if (ctx->dry_run)
        return API_OK;
    int64_t id = 0;
    if (ploomes_parse_created_id(res->body, res->body_len, &id) != 0)
        return milvus_client_ambiguous(res, "POST /Contacts without value[0].Id");
    created->ploomes_id = id;
    return API_OK;
}

static bool is_active(const cJSON *client)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(client, "is_ativo");
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    if (cJSON_IsNumber(v))
        return v->valuedouble != 0;
    return true; /* missing / null: /cliente/busca?status=3 rows always say; assume active */
}

static void handle(worker_ctx_t *ctx, void *state, const cJSON *value, worker_result_t *out)
{
    c2p_state_t *s = state;
    char err[512] = "";
    int64_t id = 0;
    if (!milvus_client_record_id(value, "id", "client", &id, out))
        return;
    char doc[DOC_BUF_SIZE];
    const char *why = NULL;
    doc_kind_t kind = milvus_row_document(value, doc, &why);
    if (!milvus_client_doc_ok(kind, why, "client", id, out))
        return;
    const char *token = NULL;
    if (json_get_string(value, "token", &token) != JSON_OK)
        token = NULL;

    /* what the identity map knows */
    store_entry_t m;
    int rc;
    do
        rc = store_client_get_cached(ctx->store, doc, &m, err, sizeof err);
    while (rc == STORE_DOWN && worker_store_wait(ctx));
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        store_failed(out, "get", rc, err);
        return;
    }
    bool known = rc == STORE_OK;

    /* the Milvus side of the map: every client with a valid document is recorded */
    store_entry_t mine = {0};
    /* Milvus holding two clients with one document: the map keeps the first one it learnt */
    bool other = known && m.milvus_id != 0 && m.milvus_id != id;
    if (!other) {
        mine.milvus_id = id;
        if (token && strlen(token) < sizeof mine.milvus_token)
            snprintf(mine.milvus_token, sizeof mine.milvus_token, "%s", token);
    }
    if (!known)
        snprintf(mine.origin, sizeof mine.origin, "milvus");

    const char *skip = NULL;
    int64_t min_id = -1;
    if (!is_active(value)) {
        skip = "inactive";
    } else {
        rc = min_id_of(ctx, s, &min_id, err, sizeof err);
        if (rc != 0) {
            store_failed(out, "setting", rc, err);
            return;
        }
        if (min_id < 0)
            skip = "min_id_unset";
        else if (id < min_id)
            skip = "below_min_id";
    }
    if (skip != NULL) {
        bool need = !known || m.milvus_id != id ||
                    (mine.milvus_token[0] && strcmp(m.milvus_token, mine.milvus_token) != 0);
        if (need && !other) {
            rc = record(ctx, doc, &mine, err, sizeof err);
            if (rc != STORE_OK) {
                store_failed(out, "record_done", rc, err);
                return;
            }
        }
        worker_result_set(out, WORKER_SKIPPED, skip);
        return;
    }

    if (known && m.ploomes_id > 0) {
        snprintf(out->target_id, sizeof out->target_id, "%" PRId64, m.ploomes_id);
        worker_result_set(out, WORKER_DEDUP_HIT, "identity_map");
        return;
    }
    store_entry_t found;
    worker_search_t fs = ploomes_contact_find_by_document(ctx, doc, &found, out);
    if (fs == WORKER_SEARCH_FAILED)
        return;
    if (fs == WORKER_SEARCH_FOUND) {
        mine.ploomes_id = found.ploomes_id;
        rc = record(ctx, doc, &mine, err, sizeof err);
        if (rc != STORE_OK) {
            store_failed(out, "record_done", rc, err);
            return;
        }
        snprintf(out->target_id, sizeof out->target_id, "%" PRId64, found.ploomes_id);
        worker_result_set(out, WORKER_DEDUP_HIT, "found_at_target");
        return;
    }

    cJSON *tree = ploomes_contact_body(value, doc, kind, ctx->cfg, err, sizeof err);
    if (tree == NULL) {
        worker_result_dead(out, "UnmappableRecord", "client %" PRId64 ": %s", id, err);
        return;
    }
    char *body = json_print(tree, NULL);
    cJSON_Delete(tree);
    if (body == NULL) {
        worker_result_set(out, WORKER_RELEASE, "out_of_memory");
        return;
    }
    char key[STORE_KEY_MAX];
    snprintf(key, sizeof key, CLAIM_PREFIX "%s", doc);
    store_entry_t seed = {0};
    seed.milvus_id = id;
    snprintf(seed.origin, sizeof seed.origin, "milvus");
    create_arg_t arg = {.doc = doc, .body = body, .milvus_id = id};
    worker_create_t c = {
        .kind = STORE_KIND_TICKETS, /* a delivery claim, see the top of this file */
        .key = key,
        .seed = &seed,
        .search = search_cb,
        .create = create_cb,
        .arg = &arg,
    };
    store_entry_t e = {0};
    worker_outcome_t r = worker_create_once(ctx, &c, &e, out);
    free(body);
    if (r != WORKER_DELIVERED && r != WORKER_DEDUP_HIT)
        return;
    if (r == WORKER_DELIVERED && out->reason[0] == '\0')
        worker_result_set(out, WORKER_DELIVERED, "created");
    if (e.ploomes_id > 0) {
        snprintf(out->target_id, sizeof out->target_id, "%" PRId64, e.ploomes_id);
        mine.ploomes_id = e.ploomes_id;
        rc = record(ctx, doc, &mine, err, sizeof err);
        if (rc != STORE_OK) /* the claim is done: a re-delivery is a dedup hit that records */
            store_failed(out, "record_done", rc, err);
    }
}

const worker_handler_t CLIENTS_TO_PLOOMES = {
    .name = "clients-to-ploomes",
    .topic = "milvus.clients",
    .summary = "Milvus client -> Ploomes contact (active, id >= MILVUS_MIN_ID; every client "
               "recorded in the identity map)",
    .config_needs = CONFIG_NEED_PLOOMES | CONFIG_NEED_PLOOMES_TARGET,
    .init = init,
    .fini = fini,
    .handle = handle,
};
