/* ploomes_source: keyset scans of Contacts, Tasks and InteractionRecords. */
#include "ploomes_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errbuf.h"
#include "json.h"
#include "log.h"
#include "ploomes_pager.h"
#include "publish.h"

int ploomes_initial_stamp(const config_t *cfg, int entity, int64_t now_ms, char *out,
                          size_t size)
{
    char since[CLOCK_RFC3339_SIZE];
    const char *text = cfg->sync_since ? cfg->sync_since : "";
    if (entity != PLOOMES_CONTACTS) {
        clock_rfc3339(now_ms - (int64_t)cfg->ticket_lookback_minutes * 60000, since,
                      sizeof since);
        text = since;
    }
    int n = snprintf(out, size, "%s", text);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static size_t ploomes_topics(const config_t *cfg, kafka_topic_id_t *ids, size_t max)
{
    size_t n = 0;
    for (int e = 0; e < PLOOMES_ENTITY_COUNT && n < max; e++) {
        const ploomes_entity_info_t *info = ploomes_entity_info((ploomes_entity_t)e);
        if (cfg->ploomes_entities & info->config_bit)
            ids[n++] = info->topic;
    }
    return n;
}

/* Loads the cursor of `info` into stamp/id, creating the first-start one when there is none. */
static producer_pass_t load_cursor(producer_ctx_t *ctx, const ploomes_entity_info_t *info,
                                   char *stamp, size_t stamp_size, int64_t *id, char *err,
                                   size_t errlen)
{
    store_cursor_t cur;
    char serr[256];
    int rc = store_cursor_get(ctx->store, info->cursor_key, &cur, serr, sizeof serr);
    if (rc == STORE_OK && cur.has_position && cur.stamp[0] != '\0') {
        snprintf(stamp, stamp_size, "%s", cur.stamp);
        *id = cur.id;
        return PRODUCER_PASS_OK;
    }
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "cursor %s not readable: %s", info->cursor_key, serr);
        return PRODUCER_PASS_FAILED;
    }
    if (ploomes_initial_stamp(ctx->cfg, (int)info->entity, clock_wall_ms(), stamp,
                              stamp_size) != 0) {
        errbuf_set(err, errlen, "first-start stamp of %s does not fit", info->cursor_key);
        return PRODUCER_PASS_FAILED;
    }
    *id = 0;
    if (store_cursor_set(ctx->store, info->cursor_key, stamp, 0, serr, sizeof serr) !=
        STORE_OK) {
        errbuf_set(err, errlen, "cursor %s not saved: %s", info->cursor_key, serr);
        return PRODUCER_PASS_FAILED;
    }
    log_msg(LOG_INFO, "cursor_initialised", "entity=%s stamp=%s", info->name, stamp);
    return PRODUCER_PASS_OK;
}

/* Publishes the rows of one page that lie past the cursor; on success moves (stamp, id) to
 * the greatest of them and saves it. A row past the cursor that cannot be sent (invalid UTF-8)
 * is skipped (logged, counted) and still moves the cursor: skipping it is its final outcome.
 * Rows without a usable position (no id, no LastUpdateDate) are skipped without moving it.
 * *progress gets the number of rows past the cursor. */
static producer_pass_t publish_page(producer_ctx_t *ctx, const ploomes_entity_info_t *info,
                                    const char *topic, const cJSON *rows, char *stamp,
                                    size_t stamp_size, int64_t *id, size_t *progress,
                                    size_t *published, char *err, size_t errlen)
{
    char fetched_at[PUBLISH_TIME_SIZE];
    clock_rfc3339(clock_wall_ms(), fetched_at, sizeof fetched_at);
    ploomes_instant_t cur_inst;
    bool have_cursor = ploomes_instant_parse(stamp, &cur_inst) == 0;
    ploomes_instant_t best_inst = {0, 0};
    const char *best_stamp = NULL;
    int64_t best_id = 0;
    size_t sent = 0, past = 0;
    *progress = 0;
    *published = 0;

    if (kafka_batch_reset(ctx->batch) != KAFKA_OK) {
        errbuf_set(err, errlen, "internal: delivery batch still has pending messages");
        return PRODUCER_PASS_FAILED;
    }
    const cJSON *row;
    int index = -1;
    cJSON_ArrayForEach(row, rows)
    {
        index++;
        int64_t rid;
        const char *rstamp = NULL;
        ploomes_instant_t rinst;
        if (!producer_record_id(ctx, info->name, row, "Id", index, &rid))
            continue;
        json_status_t st = json_get_string(row, "LastUpdateDate", &rstamp);
        if (st != JSON_OK || ploomes_instant_parse(rstamp, &rinst) != 0 ||
            strlen(rstamp) >= STORE_STAMP_MAX) {
            char key[PUBLISH_KEY_SIZE];
            producer_skip(ctx, info->name, PRODUCER_SKIP_BAD_STAMP,
                          publish_key(rid, key, sizeof key),
                          st == JSON_OK ? "LastUpdateDate: not an RFC 3339 timestamp"
                                        : "LastUpdateDate: missing, null or not a string");
            continue;
        }
        /* The no-progress guard: rows at or before the cursor were delivered already. */
        if (have_cursor && ploomes_position_cmp(&rinst, rid, &cur_inst, *id) <= 0)
            continue;
        past++;
        if (best_stamp == NULL || ploomes_position_cmp(&rinst, rid, &best_inst, best_id) > 0) {
            best_inst = rinst;
            best_stamp = rstamp;
            best_id = rid;
        }
        if (!producer_record_utf8(ctx, info->name, row, rid))
            continue;
        char *value = json_print(row, NULL);
        producer_pass_t r = producer_publish(ctx, topic, info->name, rid, value, rstamp,
                                             fetched_at, err, errlen);
        free(value);
        if (r != PRODUCER_PASS_OK)
            return r; /* the cursor stays */
        sent++;
    }
    *progress = past;
    if (past == 0)
        return PRODUCER_PASS_OK;

    if (sent > 0) {
        producer_pass_t r = producer_deliver(ctx, info->name, err, errlen);
        if (r != PRODUCER_PASS_OK)
            return r;
        metrics_counter_add(ctx->m_published, PRODUCER_LABELS(ctx, info->name), (double)sent);
        *published = sent;
    }

    /* Every record of the page is acknowledged (or skipped): only now may the cursor move. */
    char serr[256];
    if (store_cursor_set(ctx->store, info->cursor_key, best_stamp, best_id, serr,
                         sizeof serr) != STORE_OK) {
        errbuf_set(err, errlen, "cursor %s not saved: %s", info->cursor_key, serr);
        return PRODUCER_PASS_FAILED;
    }
    snprintf(stamp, stamp_size, "%s", best_stamp);
    *id = best_id;
    return PRODUCER_PASS_OK;
}

static producer_pass_t scan_entity(producer_ctx_t *ctx, const ploomes_entity_info_t *info)
{
    char err[768] = "";
    char topic[KAFKA_TOPIC_NAME_MAX];
    char stamp[STORE_STAMP_MAX];
    int64_t id = 0;
    size_t pages = 0, published = 0;
    int64_t t0 = clock_mono_ms();
    const char *end = "error";
    producer_pass_t r;

    if (kafka_topic_name(topic, sizeof topic, ctx->cfg->topic_prefix, info->topic) != 0) {
        errbuf_set(err, sizeof err, "topic name for %s too long (TOPIC_PREFIX)", info->name);
        r = PRODUCER_PASS_FAILED;
        goto done;
    }
    r = load_cursor(ctx, info, stamp, sizeof stamp, &id, err, sizeof err);
    if (r != PRODUCER_PASS_OK)
        goto done;

    for (;;) {
        if (app_stop_requested()) {
            r = PRODUCER_PASS_STOPPED;
            end = "stopped";
            break;
        }
        char path[1024];
        if (ploomes_keyset_query(info, stamp, id, PLOOMES_PAGE_SIZE, path, sizeof path) < 0) {
            errbuf_set(err, sizeof err, "cursor %s holds an unusable stamp", info->cursor_key);
            r = PRODUCER_PASS_FAILED;
            break;
        }
        cJSON *root = NULL;
        r = producer_fetch(ctx, info->name, path, &root, err, sizeof err);
        if (r != PRODUCER_PASS_OK) {
            end = r == PRODUCER_PASS_STOPPED ? "stopped" : "fetch_failed";
            break;
        }
        pages++;
        const cJSON *rows = NULL;
        if (json_get_array(root, "value", &rows) != JSON_OK) {
            cJSON_Delete(root);
            r = producer_page_unusable(ctx, info->name, path, "no \"value\" array", err,
                                       sizeof err);
            end = "fetch_failed";
            break;
        }
        int n = cJSON_GetArraySize(rows);
        if (n == 0) {
            cJSON_Delete(root);
            end = "empty_page";
            break;
        }
        size_t progress = 0, page_published = 0;
        r = publish_page(ctx, info, topic, rows, stamp, sizeof stamp, &id, &progress,
                         &page_published, err, sizeof err);
        cJSON_Delete(root);
        if (r != PRODUCER_PASS_OK) {
            end = "delivery_failed";
            break;
        }
        published += page_published;
        log_msg(LOG_DEBUG, "page_done",
                "entity=%s rows=%d past_cursor=%zu published=%zu cursor_id=%" PRId64,
                info->name, n, progress, page_published, id);
        if (progress == 0) {
            /* No row past the cursor: asking again would return the same page forever. */
            end = "no_progress";
            break;
        }
    }

done:
    producer_scan_done(ctx, info->cursor_key, info->name, r, end, pages, published, t0, err);
    return r;
}

static producer_pass_t ploomes_pass(producer_ctx_t *ctx)
{
    producer_pass_t worst = PRODUCER_PASS_OK;
    for (int e = 0; e < PLOOMES_ENTITY_COUNT; e++) {
        const ploomes_entity_info_t *info = ploomes_entity_info((ploomes_entity_t)e);
        if (!(ctx->cfg->ploomes_entities & info->config_bit))
            continue;
        producer_pass_t r = scan_entity(ctx, info);
        worst = producer_pass_worst(worst, r);
        /* 401 means the key is wrong for every entity; a fatal Kafka error ends everything;
         * a stop ends the pass. A failed page of one entity does not stop the others. */
        if (r == PRODUCER_PASS_AUTH || r == PRODUCER_PASS_FATAL || r == PRODUCER_PASS_STOPPED)
            break;
    }
    return worst;
}

const producer_source_t PLOOMES_SOURCE = {
    .source = "ploomes",
    .api_kind = API_PLOOMES,
    .topics = ploomes_topics,
    .pass = ploomes_pass,
};
