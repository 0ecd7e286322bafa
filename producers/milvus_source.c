/* milvus_source: paged scan of Milvus clients with change detection by content hash. */
#include "milvus_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errbuf.h"
#include "hash.h"
#include "json.h"
#include "log.h"
#include "milvus_pager.h"
#include "publish.h"

#define ENTITY "client"

static size_t milvus_topics(const config_t *cfg, kafka_topic_id_t *ids, size_t max)
{
    (void)cfg;
    if (max < 1)
        return 0;
    ids[0] = KAFKA_TOPIC_MILVUS_CLIENTS;
    return 1;
}

/* One candidate row of a page: new in this pass. */
typedef struct {
    int64_t id;
    char *value; /* owned: unformatted JSON */
    char hash[HASH_HEX_SIZE];
} candidate_t;

static void candidates_free(candidate_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(c[i].value);
    free(c);
}

/* Publishes the candidates whose hash differs from the stored one; saves their hashes after
 * the delivery succeeded. */
static producer_pass_t publish_changed(producer_ctx_t *ctx, const char *topic, candidate_t *c,
                                       size_t n, size_t *published, char *err, size_t errlen)
{
    producer_pass_t r = PRODUCER_PASS_OK;
    char serr[256];
    *published = 0;
    if (n == 0)
        return PRODUCER_PASS_OK;
    store_hash_t *items = calloc(n, sizeof *items);
    if (items == NULL) {
        errbuf_set(err, errlen, "out of memory (hashes)");
        return PRODUCER_PASS_FAILED;
    }
    for (size_t i = 0; i < n; i++)
        items[i].id = c[i].id;
    if (store_hashes_get(ctx->store, items, n, serr, sizeof serr) != STORE_OK) {
        errbuf_set(err, errlen, "stored hashes not readable: %s", serr);
        r = PRODUCER_PASS_FAILED;
        goto out;
    }
    if (kafka_batch_reset(ctx->batch) != KAFKA_OK) {
        errbuf_set(err, errlen, "internal: delivery batch still has pending messages");
        r = PRODUCER_PASS_FAILED;
        goto out;
    }
    char fetched_at[PUBLISH_TIME_SIZE];
    clock_rfc3339(clock_wall_ms(), fetched_at, sizeof fetched_at);
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].hash, c[i].hash) == 0)
            continue;
        r = producer_publish(ctx, topic, ENTITY, c[i].id, c[i].value, c[i].hash, fetched_at,
                             err, errlen);
        if (r != PRODUCER_PASS_OK)
            goto out; /* no hash saved: the whole page is tried again next poll */
        /* Reuse items[] for the hashes to save: the changed ones, compacted to the front. */
        items[changed].id = c[i].id;
        memcpy(items[changed].hash, c[i].hash, HASH_HEX_SIZE);
        changed++;
    }
    if (n > changed)
        metrics_counter_add(ctx->m_unchanged, PRODUCER_LABELS(ctx, ENTITY), (double)(n - changed));
    if (changed == 0)
        goto out;
    r = producer_deliver(ctx, ENTITY, err, errlen);
    if (r != PRODUCER_PASS_OK)
        goto out;
    metrics_counter_add(ctx->m_published, PRODUCER_LABELS(ctx, ENTITY), (double)changed);
    *published = changed;
    /* Delivered: now remember the content, so the next pass skips it. */
    if (store_hashes_set(ctx->store, items, changed, serr, sizeof serr) != STORE_OK) {
        errbuf_set(err, errlen, "hashes not saved (these clients will be published again): %s",
                   serr);
        r = PRODUCER_PASS_FAILED;
    }
out:
    free(items);
    return r;
}

/* After the first full scan, when MILVUS_MIN_ID is unset: fix the account's watermark (highest
 * id seen + 1) in MongoDB, unless someone fixed it before (the first value stays). */
static void fix_min_id(producer_ctx_t *ctx, const milvus_seen_t *seen)
{
    if (ctx->cfg->milvus_min_id >= 0 || ctx->milvus_min_id_fixed)
        return;
    int64_t highest = seen->count > 0 ? seen->ids[seen->count - 1] : 0;
    char proposed[32], value[64], serr[256], q[300];
    snprintf(proposed, sizeof proposed, "%" PRId64, highest + 1);
    if (store_setting_get_or_init(ctx->store, MILVUS_MIN_ID_SETTING, proposed, value,
                                  sizeof value, serr, sizeof serr) != STORE_OK) {
        log_msg(LOG_WARN, "milvus_min_id_not_saved", "error=%s", log_quote(q, sizeof q, serr));
        return;
    }
    ctx->milvus_min_id_fixed = true;
    log_msg(LOG_INFO, "milvus_min_id", "setting=" MILVUS_MIN_ID_SETTING " value=%s proposed=%s "
            "clients=%zu", value, proposed, seen->count);
}

/* Stretches the poll interval so a scan of `pages` requests every cycle stays under
 * MILVUS_SCAN_QUOTA_SHARE of MILVUS_RATE_PER_MIN (SPEC §3). */
static void stretch_interval(producer_ctx_t *ctx, size_t pages, int64_t elapsed_ms)
{
    const config_t *cfg = ctx->cfg;
    double per_min = (double)cfg->milvus_rate_per_min * cfg->milvus_scan_quota_share;
    int64_t poll_ms = (int64_t)cfg->poll_interval_seconds * 1000;
    if (per_min <= 0.0 || pages == 0)
        return;
    int64_t cycle_ms = (int64_t)((double)pages * 60000.0 / per_min + 0.5);
    int64_t idle_ms = cycle_ms - elapsed_ms;
    if (idle_ms <= poll_ms)
        return;
    ctx->next_idle_ms = idle_ms;
    log_msg(LOG_INFO, "poll_interval",
            "source=milvus effective_s=%" PRId64 " poll_interval_s=%d pages=%zu "
            "scan_requests_per_min=%g reason=\"MILVUS_SCAN_QUOTA_SHARE of MILVUS_RATE_PER_MIN\"",
            (idle_ms + 999) / 1000, cfg->poll_interval_seconds, pages, per_min);
}

static producer_pass_t milvus_pass(producer_ctx_t *ctx)
{
    char err[768] = "";
    char q[800];
    char topic[KAFKA_TOPIC_NAME_MAX];
    milvus_seen_t seen = {0};
    size_t pages = 0, published = 0, prev_rows = 0, skipped_rows = 0;
    int asked = MILVUS_PAGE_SIZE;
    int max_pages = ctx->cfg->milvus_max_pages > 0 ? ctx->cfg->milvus_max_pages : 1000;
    int64_t total = -1;
    bool truncated = false;
    int64_t t0 = clock_mono_ms();
    const char *end = "error";
    producer_pass_t r = PRODUCER_PASS_OK;

    if (kafka_topic_name(topic, sizeof topic, ctx->cfg->topic_prefix,
                         KAFKA_TOPIC_MILVUS_CLIENTS) != 0) {
        errbuf_set(err, sizeof err, "topic name too long (TOPIC_PREFIX)");
        r = PRODUCER_PASS_FAILED;
        goto done;
    }
    for (int pagina = 1;; pagina++) {
        if (app_stop_requested()) {
            r = PRODUCER_PASS_STOPPED;
            end = "stopped";
            break;
        }
        if (!producer_lease_keep(ctx)) {
            r = PRODUCER_PASS_STOPPED;
            end = "lease_lost";
            break;
        }
        if (pagina > max_pages) {
            errbuf_set(err, sizeof err,
                       "more than MILVUS_MAX_PAGES=%d pages in one pass (the server keeps "
                       "bringing new ids): pass abandoned",
                       max_pages);
            producer_stuck(ctx, ENTITY, err);
            r = PRODUCER_PASS_FAILED;
            end = "max_pages";
            break;
        }
        char path[256];
        milvus_page_query(pagina, asked, path, sizeof path);
        cJSON *root = NULL;
        r = producer_fetch(ctx, ENTITY, path, &root, err, sizeof err);
        if (r != PRODUCER_PASS_OK) {
            end = r == PRODUCER_PASS_STOPPED ? "stopped" : "fetch_failed";
            break;
        }
        pages++;
        const cJSON *rows = NULL;
        if (json_get_array(root, "lista", &rows) != JSON_OK) {
            /* {"message": "..."} without lista: Milvus' "nothing found" (apis.md §2.2). */
            const char *msg = NULL;
            if (json_get_string(root, "message", &msg) != JSON_OK) {
                cJSON_Delete(root);
                r = producer_page_unusable(ctx, ENTITY, path, "no \"lista\" array", err,
                                           sizeof err);
                end = "fetch_failed";
                break;
            }
            log_msg(LOG_INFO, "empty_answer", "entity=" ENTITY " pagina=%d message=%s", pagina,
                    log_quote(q, sizeof q, msg));
        }
        size_t nrows = rows ? (size_t)cJSON_GetArraySize(rows) : 0;
        /* Some answers carry meta.paginate.total: the number of matching clients. */
        const cJSON *meta = NULL, *paginate = NULL;
        int64_t page_total = -1;
        if (json_get_object(root, "meta", &meta) == JSON_OK &&
            json_get_object(meta, "paginate", &paginate) == JSON_OK &&
            json_get_int64(paginate, "total", &page_total) == JSON_OK && page_total >= 0)
            total = page_total;
        size_t new_rows = 0, page_skipped = 0, ncand = 0;
        candidate_t *cand = nrows ? calloc(nrows, sizeof *cand) : NULL;
        if (nrows > 0 && cand == NULL) {
            cJSON_Delete(root);
            errbuf_set(err, sizeof err, "out of memory (page of %zu clients)", nrows);
            r = PRODUCER_PASS_FAILED;
            break;
        }
        const cJSON *row;
        bool oom = false;
        int index = -1;
        cJSON_ArrayForEach(row, rows)
        {
            index++;
            int64_t cid;
            if (!producer_record_id(ctx, ENTITY, row, "id", index, &cid)) {
                page_skipped++;
                continue;
            }
            if (milvus_seen_has(&seen, cid))
                continue;
            if (milvus_seen_add(&seen, cid) != 0) {
                oom = true;
                break;
            }
            new_rows++;
            /* Skipped without saving a hash: once fixed at the source it is published. */
            if (!producer_record_utf8(ctx, ENTITY, row, cid))
                continue;
            candidate_t *c = &cand[ncand];
            c->id = cid;
            size_t vlen = 0;
            c->value = json_print(row, &vlen);
            if (c->value == NULL || hash_sha256_hex(c->value, vlen, c->hash) != 0) {
                free(c->value);
                c->value = NULL;
                oom = true;
                break;
            }
            if (!producer_record_fits(ctx, ENTITY, cid, vlen)) {
                free(c->value);
                c->value = NULL;
                continue;
            }
            ncand++;
        }
        cJSON_Delete(root);
        if (oom) {
            candidates_free(cand, ncand);
            errbuf_set(err, sizeof err, "out of memory while reading a page of clients");
            r = PRODUCER_PASS_FAILED;
            break;
        }
        /* Rows skipped as unusable are still rows of the answer (not a truncation), counted
         * only on pages that brought something new (a repeated page is not new rows). */
        if (new_rows > 0)
            skipped_rows += page_skipped;
        size_t read = seen.count + skipped_rows;
        milvus_verdict_t v = milvus_page_verdict(nrows, new_rows, (size_t)asked);
        bool more_stated = total >= 0 && (uint64_t)total > (uint64_t)read;
        if (v == MILVUS_STOP_SHORT && more_stated && pagina == 1 && nrows > 0) {
            /* The server caps its pages below what was asked: page on at its size. */
            log_msg(LOG_INFO, "page_capped",
                    "entity=" ENTITY " asked=%d rows=%zu total=%" PRId64, asked, nrows, total);
            asked = (int)nrows;
            v = MILVUS_CONTINUE;
        }
        if (milvus_page_truncated(v, nrows, prev_rows, (size_t)asked)) {
            truncated = true;
            metrics_counter_add(ctx->m_truncations, PRODUCER_LABELS(ctx, ENTITY), 1);
            log_msg(LOG_WARN, "answer_truncated",
                    "entity=" ENTITY " pagina=%d rows=%zu asked=%d reason=\"a full page came "
                    "back and the next page repeated it: the API ignores paging and clients "
                    "past the cap are invisible\"",
                    pagina, nrows, asked);
        } else if (v != MILVUS_CONTINUE && more_stated) {
            truncated = true;
            metrics_counter_add(ctx->m_truncations, PRODUCER_LABELS(ctx, ENTITY), 1);
            log_msg(LOG_WARN, "answer_truncated",
                    "entity=" ENTITY " pagina=%d rows=%zu read=%zu total=%" PRId64
                    " stop=%s reason=\"the API reports more clients than it returned\"",
                    pagina, nrows, read, total, milvus_verdict_name(v));
        }
        size_t page_published = 0;
        r = publish_changed(ctx, topic, cand, ncand, &page_published, err, sizeof err);
        candidates_free(cand, ncand);
        published += page_published;
        log_msg(LOG_DEBUG, "page_done",
                "entity=" ENTITY " pagina=%d rows=%zu new=%zu skipped=%zu published=%zu "
                "verdict=%s",
                pagina, nrows, new_rows, page_skipped, page_published, milvus_verdict_name(v));
        if (r != PRODUCER_PASS_OK) {
            end = r == PRODUCER_PASS_STOPPED ? "stopped" : "delivery_failed";
            break;
        }
        if (v != MILVUS_CONTINUE) {
            end = milvus_verdict_name(v);
            if (more_stated) {
                /* SPEC §3: a pass that ends short of the stated total is a failed pass. */
                errbuf_set(err, sizeof err,
                           "the pass ended (%s) after %zu of the %" PRId64
                           " clients the API states",
                           end, read, total);
                r = PRODUCER_PASS_FAILED;
                end = "short_of_total";
            }
            break;
        }
        prev_rows = nrows;
    }

    if (r == PRODUCER_PASS_OK && !truncated)
        fix_min_id(ctx, &seen);
    if (r == PRODUCER_PASS_OK || r == PRODUCER_PASS_FAILED)
        stretch_interval(ctx, pages, clock_mono_ms() - t0);
done:
    milvus_seen_free(&seen);
    producer_scan_done(ctx, MILVUS_CURSOR_KEY, ENTITY, r, end, pages, published, t0, err);
    return r;
}

const producer_source_t MILVUS_SOURCE = {
    .source = "milvus",
    .api_kind = API_MILVUS,
    .topics = milvus_topics,
    .pass = milvus_pass,
};
