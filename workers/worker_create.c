/* worker_create: the idempotence core (SPEC §4 "Ambiguous creates", "Idempotence across
 * crashes"): worker_create_once() and worker_post(). See worker.h for the protocol. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "worker.h"
#include "worker_rt.h"

api_outcome_t worker_post(worker_ctx_t *ctx, api_t *api, const char *path, const char *json_body,
                          api_result_t *res)
{
    if (!ctx->dry_run)
        return api_request(api, HTTP_POST, path, json_body, API_NOT_IDEMPOTENT, res);
    /* the path only: a query string may carry personal data */
    char shown[256];
    size_t n = strcspn(path, "?");
    if (n >= sizeof shown)
        n = sizeof shown - 1;
    memcpy(shown, path, n);
    shown[n] = '\0';
    char q[300];
    log_msg(LOG_INFO, "dry_run_request", "worker=%s method=POST path=%s body_bytes=%zu key=%s",
            ctx->worker_name, log_quote(q, sizeof q, shown), json_body ? strlen(json_body) : 0,
            ctx->rec && ctx->rec->key ? ctx->rec->key : "");
    api_result_clear(res);
    res->outcome = API_OK;
    res->body = calloc(1, 1);
    res->body_len = 0;
    return API_OK;
}

/* Stops after a STORE_REJECTED or a stop during a MongoDB wait. */
static worker_outcome_t store_failed(worker_ctx_t *ctx, int rc, const char *op, const char *err,
                                     worker_result_t *out)
{
    if (rc == STORE_REJECTED && ctx->rt != NULL)
        worker_rt_store_rejected(ctx->rt, op, err);
    return worker_result_set(out, WORKER_RELEASE, rc == STORE_REJECTED ? "store_rejected"
                                                                       : "stopping");
}

/* store_* calls retried across MongoDB outages (STORE_DOWN → worker_store_wait). */
#define STORE_RETRY(ctx, call, rc)                                                              \
    do {                                                                                        \
        (rc) = (call);                                                                          \
    } while ((rc) == STORE_DOWN && worker_store_wait(ctx))

static void release_claim(worker_ctx_t *ctx, const worker_create_t *c)
{
    char err[512];
    int rc;
    STORE_RETRY(ctx, store_release(ctx->store, c->kind, c->key, ctx->owner, err, sizeof err), rc);
    if (rc != STORE_OK) {
        char q[600];
        log_msg(LOG_WARN, "claim_release_failed", "worker=%s rc=%s error=%s", ctx->worker_name,
                store_rc_name(rc), log_quote(q, sizeof q, err));
    }
}

/* pending → done with `fields`; a CONFLICT is logged loudly (the store merged it). Returns
 * false when it could not be recorded (stop during an outage, or the store refused). */
static bool complete_claim(worker_ctx_t *ctx, const worker_create_t *c,
                           const store_entry_t *fields, worker_result_t *out)
{
    char err[512], q[600];
    int rc;
    STORE_RETRY(ctx, store_complete(ctx->store, c->kind, c->key, ctx->owner, fields, err,
                                    sizeof err),
                rc);
    if (rc == STORE_CONFLICT) {
        /* Someone recorded the key as done meanwhile (clients-to-ploomes records every Milvus
         * client it reads, including the one just created here). The same target id means the
         * same record: nothing to worry about. Another id means two records exist. */
        store_entry_t now_stored;
        char gerr[256];
        bool same = store_get(ctx->store, c->kind, c->key, &now_stored, gerr, sizeof gerr) ==
                        STORE_OK &&
                    ((fields->milvus_id != 0 && now_stored.milvus_id == fields->milvus_id) ||
                     (fields->codigo[0] && strcmp(now_stored.codigo, fields->codigo) == 0));
        log_msg(same ? LOG_INFO : LOG_ERROR, same ? "claim_already_done" : "claim_conflict",
                "worker=%s kind=%s target_id=%s error=%s note=\"%s\"", ctx->worker_name,
                c->kind == STORE_KIND_CLIENTS ? "clients" : "tickets", out->target_id,
                log_quote(q, sizeof q, err),
                same ? "recorded meanwhile with the same target id: one record"
                     : "result merged; another holder may have created a duplicate");
        return true;
    }
    if (rc != STORE_OK) {
        store_failed(ctx, rc, "complete", err, out);
        return false;
    }
    return true;
}

static void entry_done(const worker_create_t *c, const store_entry_t *fields, store_entry_t *entry)
{
    *entry = *fields;
    snprintf(entry->key, sizeof entry->key, "%s", c->key);
    entry->state = STORE_STATE_DONE;
}

static void note_target(worker_result_t *out, const store_entry_t *e)
{
    if (e->milvus_token[0])
        snprintf(out->target_id, sizeof out->target_id, "%s", e->milvus_token);
    else if (e->codigo[0])
        snprintf(out->target_id, sizeof out->target_id, "%s", e->codigo);
    else if (e->milvus_id != 0)
        snprintf(out->target_id, sizeof out->target_id, "%" PRId64, e->milvus_id);
    else if (e->ploomes_id != 0)
        snprintf(out->target_id, sizeof out->target_id, "%" PRId64, e->ploomes_id);
}

/* Found at the target: record it and finish with outcome/reason. */
static worker_outcome_t finish_found(worker_ctx_t *ctx, const worker_create_t *c,
                                     const store_entry_t *found, store_entry_t *entry,
                                     worker_outcome_t outcome, const char *reason,
                                     worker_result_t *out)
{
    note_target(out, found);
    if (!complete_claim(ctx, c, found, out))
        return out->outcome;
    entry_done(c, found, entry);
    return worker_result_set(out, outcome, reason);
}

/* The search failed: `out` holds its failure (DEAD, AUTH or RELEASE). When a create may have
 * taken effect the claim stays pending and a DEAD becomes AmbiguousCreate, its message naming
 * the create's failure (class and, when known, message) and the search's. */
static worker_outcome_t search_failed(worker_ctx_t *ctx, const worker_create_t *c,
                                      bool maybe_created, const char *create_class,
                                      const char *create_message, worker_result_t *out)
{
    if (!maybe_created) {
        release_claim(ctx, c);
        return out->outcome;
    }
    if (out->outcome != WORKER_DEAD)
        return out->outcome; /* claim left pending: whoever takes it over searches first */
    /* copies: worker_result_dead() overwrites out->error_class and out->message */
    char why[sizeof out->message], search_class[sizeof out->error_class];
    snprintf(why, sizeof why, "%s", out->message);
    snprintf(search_class, sizeof search_class, "%s", out->error_class);
    out->reason[0] = '\0';
    bool say = create_message && create_message[0];
    return worker_result_dead(out, "AmbiguousCreate",
                              "the create may have taken effect (%s%s%.160s) and the search "
                              "failed (%s): %.200s; claim left pending",
                              create_class, say ? ": " : "", say ? create_message : "",
                              search_class, why);
}

static worker_outcome_t dry_run(worker_ctx_t *ctx, const worker_create_t *c,
                                store_entry_t *entry, worker_result_t *out)
{
    store_entry_t found;
    memset(&found, 0, sizeof found);
    worker_search_t s = c->search(ctx, c->arg, &found, out);
    if (s == WORKER_SEARCH_FAILED)
        return out->outcome;
    if (s == WORKER_SEARCH_FOUND) {
        note_target(out, &found);
        entry_done(c, &found, entry);
        return worker_result_set(out, WORKER_DEDUP_HIT, "found_at_target");
    }
    api_result_t res;
    memset(&res, 0, sizeof res);
    store_entry_t created;
    memset(&created, 0, sizeof created);
    c->create(ctx, c->arg, &created, &res); /* logged by worker_post, never sent */
    api_result_clear(&res);
    entry_done(c, &created, entry);
    return worker_result_set(out, WORKER_DELIVERED, "dry_run");
}

worker_outcome_t worker_create_once(worker_ctx_t *ctx, const worker_create_t *c,
                                    store_entry_t *entry, worker_result_t *out)
{
    store_entry_t scratch;
    if (entry == NULL)
        entry = &scratch;
    memset(entry, 0, sizeof *entry);
    if (ctx->dry_run)
        return dry_run(ctx, c, entry, out);

    char err[512];
    store_claim_t cl;
    int rc;
    int64_t lease_ms = (int64_t)ctx->cfg->claim_lease_seconds * 1000;
    STORE_RETRY(ctx, store_claim(ctx->store, c->kind, c->key, ctx->owner, lease_ms, c->seed, &cl,
                                 err, sizeof err),
                rc);
    if (rc != STORE_OK)
        return store_failed(ctx, rc, "claim", err, out);
    if (cl.status == STORE_CLAIM_DONE) {
        *entry = cl.entry;
        note_target(out, entry);
        return worker_result_set(out, WORKER_DEDUP_HIT, "claim_done");
    }
    if (cl.status == STORE_CLAIM_BUSY)
        return worker_result_set(out, WORKER_RELEASE, "claim_busy");

    store_entry_t found;
    if (cl.recovered) {
        memset(&found, 0, sizeof found);
        worker_search_t s = c->search(ctx, c->arg, &found, out);
        if (ctx->rt)
            worker_rt_count_recovery(ctx->rt, s == WORKER_SEARCH_FOUND       ? "found"
                                              : s == WORKER_SEARCH_NOT_FOUND ? "not_found"
                                                                             : "failed");
        log_msg(LOG_INFO, "claim_recovered", "worker=%s search=%s",
                ctx->worker_name, s == WORKER_SEARCH_FOUND       ? "found"
                                  : s == WORKER_SEARCH_NOT_FOUND ? "not_found"
                                                                 : "failed");
        if (s == WORKER_SEARCH_FOUND)
            return finish_found(ctx, c, &found, entry, WORKER_DEDUP_HIT, "found_at_target", out);
        if (s == WORKER_SEARCH_FAILED)
            return search_failed(ctx, c, true, "an earlier holder's create", NULL, out);
    }

    bool maybe_created = false; /* some create of ours may have taken effect */
    for (int creates = 1;; creates++) {
        api_result_t res;
        memset(&res, 0, sizeof res);
        store_entry_t created;
        memset(&created, 0, sizeof created);
        api_outcome_t o = c->create(ctx, c->arg, &created, &res);
        res.outcome = o;
        worker_result_from_api(out, &res);
        if (o == API_OK) {
            api_result_clear(&res);
            note_target(out, &created);
            if (!complete_claim(ctx, c, &created, out))
                return out->outcome;
            entry_done(c, &created, entry);
            return worker_result_set(out, WORKER_DELIVERED, "created");
        }
        bool client_error = o == API_PERMANENT && res.status >= 400 && res.status < 500 &&
                            out->outcome == WORKER_DEAD;
        if (o != API_AMBIGUOUS && !client_error) {
            /* 401, stop, exhausted retries, other permanent failures */
            api_result_clear(&res);
            if (!maybe_created)
                release_claim(ctx, c);
            return out->outcome;
        }
        if (o == API_AMBIGUOUS)
            maybe_created = true;
        char create_class[48], create_message[sizeof res.message];
        snprintf(create_class, sizeof create_class, "%s", res.error_class);
        snprintf(create_message, sizeof create_message, "%s", res.message);
        api_result_clear(&res);
        worker_result_t failure = *out; /* the create's failure, kept for the dead letter */
        failure.response = out->response ? strdup(out->response) : NULL;
        memset(&found, 0, sizeof found);
        worker_search_t s = c->search(ctx, c->arg, &found, out);
        if (s == WORKER_SEARCH_FOUND) {
            worker_result_clear(&failure);
            if (maybe_created)
                return finish_found(ctx, c, &found, entry, WORKER_DELIVERED,
                                    "found_after_ambiguous", out);
            return finish_found(ctx, c, &found, entry, WORKER_DEDUP_HIT, "found_at_target", out);
        }
        if (s == WORKER_SEARCH_FAILED) {
            worker_result_clear(&failure);
            return search_failed(ctx, c, maybe_created, create_class, create_message, out);
        }
        /* not found */
        if (o == API_AMBIGUOUS && creates < ctx->cfg->max_attempts) {
            worker_result_clear(&failure);
            log_msg(LOG_WARN, "create_again", "worker=%s after=%s create=%d", ctx->worker_name,
                    create_class, creates);
            continue;
        }
        /* a 4xx and nothing there, or every create ambiguous and nothing there */
        int attempts = out->attempts;
        worker_result_clear(out);
        *out = failure;
        out->attempts = attempts;
        out->outcome = WORKER_DEAD;
        release_claim(ctx, c);
        return WORKER_DEAD;
    }
}
