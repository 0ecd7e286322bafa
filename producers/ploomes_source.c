/* ploomes_source: keyset scans of Contacts, Tasks and InteractionRecords. */
#include "ploomes_source.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errbuf.h"
#include "hash.h"
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
        if (cfg->tickets_since != NULL && cfg->tickets_since[0] != '\0') {
            text = cfg->tickets_since;
        } else {
            clock_rfc3339(now_ms - (int64_t)cfg->ticket_lookback_minutes * 60000, since,
                          sizeof since);
            text = since;
        }
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

/* One scan of one entity set: the cursor (stamp, id) and what the scan did so far. */
typedef struct {
    producer_ctx_t *ctx;
    const ploomes_entity_info_t *info;
    char topic[KAFKA_TOPIC_NAME_MAX];
    char stamp[STORE_STAMP_MAX];
    int64_t id;
    int top;                 /* page size now: halved after an unparsable page, then regrown */
    ploomes_instant_t limit; /* now + FUTURE_STAMP_TOLERANCE_SECONDS */
    size_t pages, published;
    char err[768];
} scan_t;

/* One usable row of a page. */
typedef struct {
    const cJSON *row;
    int64_t id;
    const char *stamp;
    ploomes_instant_t inst;
} prow_t;

static producer_pass_t cursor_save(scan_t *s, const char *stamp, int64_t id)
{
    char serr[256];
    int rc = producer_cursor_save(s->ctx, s->info->cursor_key, stamp, id, serr, sizeof serr);
    if (rc != STORE_OK) {
        errbuf_set(s->err, sizeof s->err, "cursor %s not saved: %s", s->info->cursor_key, serr);
        return PRODUCER_PASS_FAILED;
    }
    if (stamp != s->stamp)
        snprintf(s->stamp, sizeof s->stamp, "%s", stamp);
    s->id = id;
    return PRODUCER_PASS_OK;
}

/* Loads the cursor into s, creating the first-start one when there is none: contacts from
 * SYNC_SINCE; tasks and interactions from TICKETS_SINCE, else the account's MongoDB setting
 * "tickets_since" (fixed by whichever of this producer or a ticket worker starts first, at
 * now - TICKET_LOOKBACK_MINUTES, RFC 3339 UTC). */
static producer_pass_t load_cursor(scan_t *s)
{
    store_cursor_t cur;
    char serr[256];
    int rc = store_cursor_get(s->ctx->store, s->info->cursor_key, &cur, serr, sizeof serr);
    if (rc == STORE_OK && cur.has_position && cur.stamp[0] != '\0') {
        snprintf(s->stamp, sizeof s->stamp, "%s", cur.stamp);
        s->id = cur.id;
        return PRODUCER_PASS_OK;
    }
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        errbuf_set(s->err, sizeof s->err, "cursor %s not readable: %s", s->info->cursor_key,
                   serr);
        return PRODUCER_PASS_FAILED;
    }
    const config_t *cfg = s->ctx->cfg;
    char initial[STORE_STAMP_MAX];
    if (ploomes_initial_stamp(cfg, (int)s->info->entity, clock_wall_ms(), initial,
                              sizeof initial) != 0) {
        errbuf_set(s->err, sizeof s->err, "first-start stamp of %s does not fit",
                   s->info->cursor_key);
        return PRODUCER_PASS_FAILED;
    }
    const char *origin = s->info->entity == PLOOMES_CONTACTS ? "SYNC_SINCE" : "TICKETS_SINCE";
    if (s->info->entity != PLOOMES_CONTACTS &&
        (cfg->tickets_since == NULL || cfg->tickets_since[0] == '\0')) {
        origin = "setting tickets_since";
        if (store_setting_get_or_init(s->ctx->store, PLOOMES_TICKETS_SINCE_SETTING, initial,
                                      s->stamp, sizeof s->stamp, serr,
                                      sizeof serr) != STORE_OK) {
            errbuf_set(s->err, sizeof s->err, "setting %s not readable: %s",
                       PLOOMES_TICKETS_SINCE_SETTING, serr);
            return PRODUCER_PASS_FAILED;
        }
        ploomes_instant_t check;
        if (ploomes_instant_parse(s->stamp, &check) != 0) {
            errbuf_set(s->err, sizeof s->err,
                       "setting %s in MongoDB is not an RFC 3339 timestamp",
                       PLOOMES_TICKETS_SINCE_SETTING);
            return PRODUCER_PASS_FAILED;
        }
    } else {
        snprintf(s->stamp, sizeof s->stamp, "%s", initial);
    }
    producer_pass_t r = cursor_save(s, s->stamp, 0);
    if (r == PRODUCER_PASS_OK)
        log_msg(LOG_INFO, "cursor_initialised", "entity=%s stamp=%s from=\"%s\"", s->info->name,
                s->stamp, origin);
    return r;
}

/* The usable rows of a page (id and LastUpdateDate vetted; the others skipped, logged and
 * counted). *out is malloc'd (free it); NULL with *n 0 when there is none. false on OOM. */
static bool vet_rows(scan_t *s, const cJSON *rows, prow_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int total = cJSON_GetArraySize(rows);
    if (total <= 0)
        return true;
    prow_t *v = calloc((size_t)total, sizeof *v);
    if (v == NULL)
        return false;
    const cJSON *row;
    int index = -1;
    size_t k = 0;
    cJSON_ArrayForEach(row, rows)
    {
        index++;
        int64_t rid;
        const char *rstamp = NULL;
        ploomes_instant_t rinst;
        if (!producer_record_id(s->ctx, s->info->name, row, "Id", index, &rid))
            continue;
        json_status_t st = json_get_string(row, "LastUpdateDate", &rstamp);
        if (st != JSON_OK || ploomes_instant_parse(rstamp, &rinst) != 0 ||
            strlen(rstamp) >= STORE_STAMP_MAX) {
            char key[PUBLISH_KEY_SIZE];
            producer_skip(s->ctx, s->info->name, PRODUCER_SKIP_BAD_STAMP,
                          publish_key(rid, key, sizeof key),
                          st == JSON_OK ? "LastUpdateDate: not an RFC 3339 timestamp"
                                        : "LastUpdateDate: missing, null or not a string");
            continue;
        }
        v[k].row = row;
        v[k].id = rid;
        v[k].stamp = rstamp;
        v[k].inst = rinst;
        k++;
    }
    *out = v;
    *n = k;
    return true;
}

static int instant_cmp(const ploomes_instant_t *a, const ploomes_instant_t *b)
{
    return ploomes_position_cmp(a, 0, b, 0);
}

/* Publishes rows[0..n) on the entity's topic and waits for their delivery reports. A row that
 * cannot be sent (invalid UTF-8, a NUL, too large) is skipped (logged, counted): its final
 * outcome. */
static producer_pass_t publish_rows(scan_t *s, prow_t *const *rows, size_t n)
{
    if (n == 0)
        return PRODUCER_PASS_OK;
    producer_ctx_t *ctx = s->ctx;
    char fetched_at[PUBLISH_TIME_SIZE];
    clock_rfc3339(clock_wall_ms(), fetched_at, sizeof fetched_at);
    if (kafka_batch_reset(ctx->batch) != KAFKA_OK) {
        errbuf_set(s->err, sizeof s->err, "internal: delivery batch still has pending messages");
        return PRODUCER_PASS_FAILED;
    }
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        const prow_t *p = rows[i];
        if (!producer_record_utf8(ctx, s->info->name, p->row, p->id))
            continue;
        size_t vlen = 0;
        char *value = json_print(p->row, &vlen);
        if (value != NULL && !producer_record_fits(ctx, s->info->name, p->id, vlen)) {
            free(value);
            continue;
        }
        producer_pass_t r = producer_publish(ctx, s->topic, s->info->name, p->id, value,
                                             p->stamp, fetched_at, s->err, sizeof s->err);
        free(value);
        if (r != PRODUCER_PASS_OK)
            return r; /* the cursor stays */
        sent++;
    }
    if (sent == 0)
        return PRODUCER_PASS_OK;
    producer_pass_t r = producer_deliver(ctx, s->info->name, s->err, sizeof s->err);
    if (r != PRODUCER_PASS_OK)
        return r;
    metrics_counter_add(ctx->m_published, PRODUCER_LABELS(ctx, s->info->name), (double)sent);
    s->published += sent;
    return PRODUCER_PASS_OK;
}

/* Rows stamped past now + tolerance: each is published when its content is new (hash per
 * record in MongoDB milvus_hashes under a negative key of its own, see README), warned about
 * and counted; none of them moves the cursor. */
static int64_t future_hash_key(const scan_t *s, int64_t id)
{
    return -(((int64_t)s->info->entity + 1) << 53) - id;
}

static producer_pass_t publish_future(scan_t *s, prow_t *const *rows, size_t n)
{
    if (n == 0)
        return PRODUCER_PASS_OK;
    producer_pass_t r = PRODUCER_PASS_OK;
    char serr[256];
    store_hash_t *items = calloc(n, sizeof *items);
    char (*hashes)[HASH_HEX_SIZE] = calloc(n, sizeof *hashes);
    prow_t **changed = calloc(n, sizeof *changed);
    if (items == NULL || hashes == NULL || changed == NULL) {
        errbuf_set(s->err, sizeof s->err, "out of memory (future-stamped rows)");
        r = PRODUCER_PASS_FAILED;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t vlen = 0;
        char *value = json_print(rows[i]->row, &vlen);
        int hrc = value != NULL ? hash_sha256_hex(value, vlen, hashes[i]) : -1;
        free(value);
        if (hrc != 0) {
            errbuf_set(s->err, sizeof s->err, "out of memory hashing a future-stamped row");
            r = PRODUCER_PASS_FAILED;
            goto out;
        }
        items[i].id = future_hash_key(s, rows[i]->id);
    }
    if (store_hashes_get(s->ctx->store, items, n, serr, sizeof serr) != STORE_OK) {
        errbuf_set(s->err, sizeof s->err, "stored hashes not readable: %s", serr);
        r = PRODUCER_PASS_FAILED;
        goto out;
    }
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i].hash, hashes[i]) == 0)
            continue;
        changed[nc] = rows[i];
        items[nc].id = future_hash_key(s, rows[i]->id);
        memcpy(items[nc].hash, hashes[i], HASH_HEX_SIZE);
        nc++;
    }
    if (nc == 0)
        goto out;
    r = publish_rows(s, changed, nc);
    if (r != PRODUCER_PASS_OK)
        goto out;
    for (size_t i = 0; i < nc; i++)
        producer_future_stamp(s->ctx, s->info->name, changed[i]->id, changed[i]->stamp);
    if (store_hashes_set(s->ctx->store, items, nc, serr, sizeof serr) != STORE_OK) {
        errbuf_set(s->err, sizeof s->err,
                   "hashes of future-stamped rows not saved (published again next poll): %s",
                   serr);
        r = PRODUCER_PASS_FAILED;
    }
out:
    free(items);
    free(hashes);
    free(changed);
    return r;
}

/* Fetches q. An answer that cannot be parsed is asked again with half the page, down to one
 * record; a record that is unparsable alone is identified with $select=Id,LastUpdateDate,
 * skipped (unparsable) and the position moved past it: the cursor (keyset) or *tie_id (tie).
 * Then *root is NULL and *skipped true. */
static producer_pass_t fetch_query(scan_t *s, ploomes_query_t *q, cJSON **root, int64_t *tie_id,
                                   bool *skipped)
{
    *root = NULL;
    *skipped = false;
    for (;;) {
        char path[1024];
        if (ploomes_query(s->info, q, path, sizeof path) < 0) {
            errbuf_set(s->err, sizeof s->err,
                       "cursor %s holds a stamp no query can be built from", s->info->cursor_key);
            producer_stuck(s->ctx, s->info->name, s->err);
            return PRODUCER_PASS_FAILED;
        }
        bool unparsable = false;
        producer_pass_t r = producer_fetch_ex(s->ctx, s->info->name, path, root, &unparsable,
                                              s->err, sizeof s->err);
        if (r == PRODUCER_PASS_OK) {
            s->pages++;
            return r;
        }
        if (!unparsable || q->position_only)
            return r;
        char qe[800];
        log_msg(LOG_WARN, "page_unparsable", "entity=%s top=%d next_top=%d error=%s",
                s->info->name, q->top, q->top > 1 ? q->top / 2 : 0,
                log_quote(qe, sizeof qe, s->err));
        if (q->top > 1) {
            q->top /= 2;
            s->top = q->top;
            continue;
        }
        /* One record alone cannot be parsed: find out which, without its content. */
        ploomes_query_t pq = *q;
        pq.position_only = true;
        pq.top = 1;
        if (ploomes_query(s->info, &pq, path, sizeof path) < 0)
            return PRODUCER_PASS_FAILED;
        r = producer_fetch_ex(s->ctx, s->info->name, path, root, NULL, s->err, sizeof s->err);
        if (r != PRODUCER_PASS_OK)
            return r;
        s->pages++;
        const cJSON *rows = NULL;
        int64_t pid = 0;
        const char *pstamp = NULL;
        ploomes_instant_t pinst;
        const cJSON *row0 = json_get_array(*root, "value", &rows) == JSON_OK
                                ? cJSON_GetArrayItem(rows, 0)
                                : NULL;
        if (row0 == NULL || json_get_int64(row0, "Id", &pid) != JSON_OK || pid < 1 ||
            json_get_string(row0, "LastUpdateDate", &pstamp) != JSON_OK ||
            ploomes_instant_parse(pstamp, &pinst) != 0 || strlen(pstamp) >= STORE_STAMP_MAX) {
            cJSON_Delete(*root);
            *root = NULL;
            return producer_page_unusable(s->ctx, s->info->name, path,
                                          "no usable Id and LastUpdateDate for the record "
                                          "that cannot be parsed",
                                          s->err, sizeof s->err);
        }
        char key[PUBLISH_KEY_SIZE];
        producer_skip(s->ctx, s->info->name, PRODUCER_SKIP_UNPARSABLE,
                      publish_key(pid, key, sizeof key),
                      "its page cannot be parsed even when it is alone");
        char pstamp_copy[STORE_STAMP_MAX];
        snprintf(pstamp_copy, sizeof pstamp_copy, "%s", pstamp);
        cJSON_Delete(*root);
        *root = NULL;
        *skipped = true;
        if (q->mode == PLOOMES_Q_TIE) {
            if (pid <= *tie_id) {
                errbuf_set(s->err, sizeof s->err,
                           "an unparsable record does not move the tie group past Id %" PRId64,
                           *tie_id);
                producer_stuck(s->ctx, s->info->name, s->err);
                return PRODUCER_PASS_FAILED;
            }
            *tie_id = pid;
            return PRODUCER_PASS_OK;
        }
        ploomes_instant_t cur;
        if (ploomes_instant_parse(s->stamp, &cur) != 0 ||
            ploomes_position_cmp(&pinst, pid, &cur, s->id) <= 0 ||
            instant_cmp(&pinst, &s->limit) > 0) {
            errbuf_set(s->err, sizeof s->err,
                       "the unparsable record %s cannot move the cursor (stamped before the "
                       "cursor or in the future)", key);
            producer_stuck(s->ctx, s->info->name, s->err);
            return PRODUCER_PASS_FAILED;
        }
        return cursor_save(s, pstamp_copy, pid);
    }
}

/* Pages through the tie group of printed stamp S by Id (SPEC §3 "Ties at printed precision"),
 * publishing every row, then moves the cursor to (S + u, 0): past the group. */
static producer_pass_t tie_resolve(scan_t *s, const char *group_stamp)
{
    char S[STORE_STAMP_MAX], S1[STORE_STAMP_MAX];
    snprintf(S, sizeof S, "%s", group_stamp);
    ploomes_instant_t si, s1i, cur;
    if (ploomes_stamp_next_unit(S, S1, sizeof S1) != 0 || ploomes_instant_parse(S, &si) != 0 ||
        ploomes_instant_parse(S1, &s1i) != 0 || ploomes_instant_parse(s->stamp, &cur) != 0 ||
        instant_cmp(&s1i, &cur) <= 0) {
        errbuf_set(s->err, sizeof s->err,
                   "a full page brought no row past the cursor and its tie group (stamp %s) "
                   "cannot be paged past the cursor",
                   S);
        producer_stuck(s->ctx, s->info->name, s->err);
        return PRODUCER_PASS_FAILED;
    }
    int64_t tie_id = instant_cmp(&si, &cur) == 0 ? s->id : 0;
    size_t rows_total = 0;
    log_msg(LOG_INFO, "tie_group", "entity=%s stamp=%s next=%s from_id=%" PRId64, s->info->name,
            S, S1, tie_id);
    for (;;) {
        if (app_stop_requested())
            return PRODUCER_PASS_STOPPED;
        if (!producer_lease_keep(s->ctx)) {
            errbuf_set(s->err, sizeof s->err, "producer lease lost");
            return PRODUCER_PASS_STOPPED;
        }
        ploomes_query_t q = {PLOOMES_Q_TIE, S, tie_id, s->top, false};
        cJSON *root = NULL;
        bool skipped = false;
        producer_pass_t r = fetch_query(s, &q, &root, &tie_id, &skipped);
        if (r != PRODUCER_PASS_OK)
            return r;
        if (skipped)
            continue;
        const cJSON *rows = NULL;
        if (json_get_array(root, "value", &rows) != JSON_OK) {
            cJSON_Delete(root);
            return producer_page_unusable(s->ctx, s->info->name, s->info->path,
                                          "no \"value\" array", s->err, sizeof s->err);
        }
        int n = cJSON_GetArraySize(rows);
        prow_t *v = NULL;
        size_t nv = 0;
        prow_t **sel = n > 0 ? calloc((size_t)n, sizeof *sel) : NULL;
        if ((n > 0 && sel == NULL) || !vet_rows(s, rows, &v, &nv)) {
            free(sel);
            cJSON_Delete(root);
            errbuf_set(s->err, sizeof s->err, "out of memory (page of %d rows)", n);
            return PRODUCER_PASS_FAILED;
        }
        size_t ns = 0;
        int64_t max_id = tie_id;
        for (size_t i = 0; i < nv; i++) {
            if (instant_cmp(&v[i].inst, &si) < 0 || instant_cmp(&v[i].inst, &s1i) >= 0 ||
                v[i].id <= tie_id)
                continue;
            sel[ns++] = &v[i];
            if (v[i].id > max_id)
                max_id = v[i].id;
        }
        r = PRODUCER_PASS_OK;
        bool done = n < q.top;
        if (ns == 0 && !done) {
            errbuf_set(s->err, sizeof s->err,
                       "a full page of the tie group at %s brought no row past Id %" PRId64, S,
                       tie_id);
            producer_stuck(s->ctx, s->info->name, s->err);
            r = PRODUCER_PASS_FAILED;
        } else if (ns > 0) {
            r = publish_rows(s, sel, ns);
            if (r == PRODUCER_PASS_OK)
                r = cursor_save(s, S, max_id);
            tie_id = max_id;
            rows_total += ns;
        }
        free(sel);
        free(v);
        cJSON_Delete(root);
        if (r != PRODUCER_PASS_OK)
            return r;
        if (s->top < PLOOMES_PAGE_SIZE)
            s->top = s->top * 2 > PLOOMES_PAGE_SIZE ? PLOOMES_PAGE_SIZE : s->top * 2;
        if (done || ns == 0)
            break;
    }
    log_msg(LOG_INFO, "tie_group_done", "entity=%s stamp=%s rows=%zu", s->info->name, S,
            rows_total);
    return cursor_save(s, S1, 0);
}

typedef enum { PAGE_CONTINUE = 0, PAGE_END } page_next_t;

/* One keyset page: publishes the rows past the cursor in the groups (printed stamps) before
 * the page's last one and moves the cursor to the greatest of them; the last group comes
 * again at the start of the next page. A page whose rows past the cursor all share one stamp
 * is published whole when it is not full, and paged through by Id (tie_resolve) when it is. */
static producer_pass_t keyset_page(scan_t *s, const cJSON *rows, int n, int asked,
                                   page_next_t *next, const char **end)
{
    *next = PAGE_END;
    prow_t *v = NULL;
    size_t nv = 0;
    prow_t **elig = n > 0 ? calloc((size_t)n, sizeof *elig) : NULL;
    prow_t **fut = n > 0 ? calloc((size_t)n, sizeof *fut) : NULL;
    producer_pass_t r = PRODUCER_PASS_OK;
    if ((n > 0 && (elig == NULL || fut == NULL)) || !vet_rows(s, rows, &v, &nv)) {
        errbuf_set(s->err, sizeof s->err, "out of memory (page of %d rows)", n);
        r = PRODUCER_PASS_FAILED;
        goto out;
    }
    ploomes_instant_t cur;
    bool have_cursor = ploomes_instant_parse(s->stamp, &cur) == 0;
    size_t ne = 0, nf = 0;
    const prow_t *last = NULL; /* the eligible row with the greatest stamp */
    for (size_t i = 0; i < nv; i++) {
        /* The no-progress guard: rows at or before the cursor were delivered already. */
        if (have_cursor && ploomes_position_cmp(&v[i].inst, v[i].id, &cur, s->id) <= 0)
            continue;
        if (instant_cmp(&v[i].inst, &s->limit) > 0) {
            fut[nf++] = &v[i];
            continue;
        }
        elig[ne++] = &v[i];
        if (last == NULL || instant_cmp(&v[i].inst, &last->inst) > 0)
            last = &v[i];
    }
    r = publish_future(s, fut, nf);
    if (r != PRODUCER_PASS_OK)
        goto out;
    bool full = n >= asked;
    if (ne == 0) {
        if (!full || nf > 0) {
            *end = nf > 0 ? "future_stamps" : "no_progress";
            goto out;
        }
        if (nv == 0) {
            errbuf_set(s->err, sizeof s->err, "a full page held no usable row");
            producer_stuck(s->ctx, s->info->name, s->err);
            r = PRODUCER_PASS_FAILED;
            goto out;
        }
        /* A full page of rows printed at the cursor's stamp but stored later (more precision
         * than printed): page through that group. */
        r = tie_resolve(s, s->stamp);
        *next = PAGE_CONTINUE;
        goto out;
    }
    size_t keep = 0;
    for (size_t i = 0; i < ne; i++)
        if (instant_cmp(&elig[i]->inst, &last->inst) < 0)
            elig[keep++] = elig[i];
    if (keep == 0 && full) {
        char group[STORE_STAMP_MAX];
        snprintf(group, sizeof group, "%s", last->stamp);
        r = tie_resolve(s, group);
        *next = PAGE_CONTINUE;
        goto out;
    }
    if (keep == 0)
        keep = ne; /* not full: the whole rest of the result is here */
    const prow_t *best = NULL;
    for (size_t i = 0; i < keep; i++)
        if (best == NULL ||
            ploomes_position_cmp(&elig[i]->inst, elig[i]->id, &best->inst, best->id) > 0)
            best = elig[i];
    r = publish_rows(s, elig, keep);
    if (r == PRODUCER_PASS_OK) {
        char bstamp[STORE_STAMP_MAX];
        snprintf(bstamp, sizeof bstamp, "%s", best->stamp);
        r = cursor_save(s, bstamp, best->id);
    }
    *next = PAGE_CONTINUE;
out:
    free(elig);
    free(fut);
    free(v);
    return r;
}

static producer_pass_t scan_entity(producer_ctx_t *ctx, const ploomes_entity_info_t *info)
{
    scan_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        log_msg(LOG_ERROR, "scan_failed", "entity=%s error=\"out of memory\"", info->name);
        return PRODUCER_PASS_FAILED;
    }
    s->ctx = ctx;
    s->info = info;
    s->top = PLOOMES_PAGE_SIZE;
    int64_t limit_ms =
        clock_wall_ms() + (int64_t)ctx->cfg->future_stamp_tolerance_seconds * 1000;
    s->limit.seconds = limit_ms / 1000;
    s->limit.nanos = (int32_t)(limit_ms % 1000) * 1000000;
    int64_t t0 = clock_mono_ms();
    const char *end = "error";
    producer_pass_t r;

    if (kafka_topic_name(s->topic, sizeof s->topic, ctx->cfg->topic_prefix, info->topic) != 0) {
        errbuf_set(s->err, sizeof s->err, "topic name for %s too long (TOPIC_PREFIX)",
                   info->name);
        r = PRODUCER_PASS_FAILED;
        goto done;
    }
    r = load_cursor(s);
    if (r != PRODUCER_PASS_OK)
        goto done;

    for (;;) {
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
        ploomes_query_t q = {PLOOMES_Q_KEYSET, s->stamp, s->id, s->top, false};
        cJSON *root = NULL;
        bool skipped = false;
        int64_t unused = 0;
        r = fetch_query(s, &q, &root, &unused, &skipped);
        if (r != PRODUCER_PASS_OK) {
            end = r == PRODUCER_PASS_STOPPED ? "stopped" : "fetch_failed";
            break;
        }
        if (skipped)
            continue;
        const cJSON *rows = NULL;
        if (json_get_array(root, "value", &rows) != JSON_OK) {
            cJSON_Delete(root);
            r = producer_page_unusable(ctx, info->name, info->path, "no \"value\" array",
                                       s->err, sizeof s->err);
            end = "fetch_failed";
            break;
        }
        int n = cJSON_GetArraySize(rows);
        if (n == 0) {
            cJSON_Delete(root);
            end = "empty_page";
            break;
        }
        size_t before = s->published;
        page_next_t next = PAGE_END;
        r = keyset_page(s, rows, n, q.top, &next, &end);
        cJSON_Delete(root);
        if (r != PRODUCER_PASS_OK) {
            end = r == PRODUCER_PASS_STOPPED ? "stopped" : "page_failed";
            break;
        }
        log_msg(LOG_DEBUG, "page_done",
                "entity=%s rows=%d published=%zu cursor_id=%" PRId64, info->name, n,
                s->published - before, s->id);
        if (s->top < PLOOMES_PAGE_SIZE)
            s->top = s->top * 2 > PLOOMES_PAGE_SIZE ? PLOOMES_PAGE_SIZE : s->top * 2;
        if (next == PAGE_END)
            break;
    }

done:
    producer_scan_done(ctx, info->cursor_key, info->name, r, end, s->pages, s->published, t0,
                       s->err);
    free(s);
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
