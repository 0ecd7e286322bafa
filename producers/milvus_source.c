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

/* One candidate row of a page: new in this pass and id >= MILVUS_MIN_ID. */
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

static producer_pass_t milvus_pass(producer_ctx_t *ctx)
{
    char err[768] = "";
    char q[800];
    char topic[KAFKA_TOPIC_NAME_MAX];
    milvus_seen_t seen = {0};
    size_t pages = 0, published = 0, prev_rows = 0;
    int64_t min_id = ctx->cfg->milvus_min_id;
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
        char path[256];
        milvus_page_query(pagina, MILVUS_PAGE_SIZE, path, sizeof path);
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
        int64_t total = -1;
        if (json_get_object(root, "meta", &meta) == JSON_OK &&
            json_get_object(meta, "paginate", &paginate) == JSON_OK &&
            json_get_int64(paginate, "total", &total) != JSON_OK)
            total = -1;
        size_t new_rows = 0, below_min = 0, ncand = 0;
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
            if (!producer_record_id(ctx, ENTITY, row, "id", index, &cid))
                continue;
            if (milvus_seen_has(&seen, cid))
                continue;
            if (milvus_seen_add(&seen, cid) != 0) {
                oom = true;
                break;
            }
            new_rows++;
            if (cid < min_id) {
                below_min++;
                continue;
            }
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
            ncand++;
        }
        cJSON_Delete(root);
        if (oom) {
            candidates_free(cand, ncand);
            errbuf_set(err, sizeof err, "out of memory while reading a page of clients");
            r = PRODUCER_PASS_FAILED;
            break;
        }
        milvus_verdict_t v = milvus_page_verdict(nrows, new_rows, MILVUS_PAGE_SIZE);
        if (milvus_page_truncated(v, nrows, prev_rows, MILVUS_PAGE_SIZE)) {
            metrics_counter_add(ctx->m_truncations, PRODUCER_LABELS(ctx, ENTITY), 1);
            log_msg(LOG_WARN, "answer_truncated",
                    "entity=" ENTITY " pagina=%d rows=%zu asked=%d reason=\"a full page came "
                    "back and the next page repeated it: the API ignores paging and clients "
                    "past the cap are invisible\"",
                    pagina, nrows, MILVUS_PAGE_SIZE);
        } else if (v != MILVUS_CONTINUE && total >= 0 && (uint64_t)total > (uint64_t)seen.count) {
            metrics_counter_add(ctx->m_truncations, PRODUCER_LABELS(ctx, ENTITY), 1);
            log_msg(LOG_WARN, "answer_truncated",
                    "entity=" ENTITY " pagina=%d rows=%zu seen=%zu total=%" PRId64
                    " stop=%s reason=\"the API reports more clients than it returned\"",
                    pagina, nrows, seen.count, total, milvus_verdict_name(v));
        }
        size_t page_published = 0;
        r = publish_changed(ctx, topic, cand, ncand, &page_published, err, sizeof err);
        candidates_free(cand, ncand);
        published += page_published;
        log_msg(LOG_DEBUG, "page_done",
                "entity=" ENTITY " pagina=%d rows=%zu new=%zu below_min_id=%zu published=%zu "
                "verdict=%s",
                pagina, nrows, new_rows, below_min, page_published, milvus_verdict_name(v));
        if (r != PRODUCER_PASS_OK) {
            end = "delivery_failed";
            break;
        }
        if (v != MILVUS_CONTINUE) {
            end = milvus_verdict_name(v);
            break;
        }
        prev_rows = nrows;
    }

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
