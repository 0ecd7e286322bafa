/* store_misc: first-start settings and DLQ replays. See store.h. */
#include "store_int.h"

#include "errbuf.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

/* ---- settings ------------------------------------------------------------------------------- */

static int setting_read(handle_t *h, const char *name, char *out, size_t outlen,
                        const char *what, char *err, size_t errlen)
{
    bson_t doc;
    int rc = st_find_by_id(h, name, &doc, what, err, errlen);
    if (rc != STORE_OK)
        return rc;
    bson_iter_t it;
    uint32_t len = 0;
    const char *v = NULL;
    if (bson_iter_init_find(&it, &doc, "value") && BSON_ITER_HOLDS_UTF8(&it))
        v = bson_iter_utf8(&it, &len);
    if (!v) {
        rc = STORE_REJECTED;
        errbuf_set(err, errlen, "%s: the stored value is not text", what);
    } else if ((size_t)len >= outlen) {
        rc = STORE_REJECTED;
        errbuf_set(err, errlen, "%s: the stored value (%u bytes) does not fit the buffer", what,
                   (unsigned)len);
    } else {
        st_copy_text(out, outlen, v, len);
    }
    bson_destroy(&doc);
    return rc;
}

int store_setting_get(store_t *st, const char *name, char *out, size_t outlen, char *err,
                      size_t errlen)
{
    if (!st_key_ok(name, "store_setting_get", err, errlen))
        return STORE_REJECTED;
    if (!out || outlen == 0) {
        errbuf_set(err, errlen, "store_setting_get(%s): needs a buffer", name);
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "reading setting %s", name);
    handle_t h = st_acquire(st, COLL_SETTINGS);
    int rc = setting_read(&h, name, out, outlen, what, err, errlen);
    st_release(&h);
    return rc;
}

int store_setting_get_or_init(store_t *st, const char *name, const char *initial, char *out,
                              size_t outlen, char *err, size_t errlen)
{
    if (!st_key_ok(name, "store_setting_get_or_init", err, errlen))
        return STORE_REJECTED;
    if (!initial || !out || outlen == 0) {
        errbuf_set(err, errlen,
                   "store_setting_get_or_init(%s): needs an initial value and a buffer", name);
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "reading setting %s", name);
    handle_t h = st_acquire(st, COLL_SETTINGS);
    int rc = setting_read(&h, name, out, outlen, what, err, errlen);
    if (rc == STORE_NOT_FOUND) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", name);
        BSON_APPEND_UTF8(&doc, "value", initial);
        BSON_APPEND_DATE_TIME(&doc, "created_at", st_stamp_now(st));
        bson_error_t e;
        if (st_insert(&h, &doc, &e)) {
            if (strlen(initial) >= outlen) {
                rc = STORE_REJECTED;
                errbuf_set(err, errlen, "%s: the value does not fit the buffer", what);
            } else {
                st_copy_cstr(out, outlen, initial);
                rc = STORE_OK;
                log_msg(LOG_INFO, "setting_initialised", "name=%s", name);
            }
        } else if (st_is_dup(&e)) {
            /* someone else initialised it first: theirs wins */
            rc = setting_read(&h, name, out, outlen, what, err, errlen);
            if (rc == STORE_NOT_FOUND) {
                rc = STORE_DOWN;
                errbuf_set(err, errlen, "%s: inserted concurrently but not readable yet", what);
            }
        } else {
            rc = st_fail(st, &e, what, err, errlen);
        }
        bson_destroy(&doc);
    }
    st_release(&h);
    return rc;
}

/* ---- DLQ replays ---------------------------------------------------------------------------- */

static bool replay_id(char *buf, size_t size, const char *topic, int32_t partition,
                      int64_t offset, char *err, size_t errlen)
{
    int n = snprintf(buf, size, "%s/%d/%lld", topic ? topic : "", (int)partition,
                     (long long)offset);
    if (!topic || !topic[0] || n < 0 || (size_t)n >= size) {
        errbuf_set(err, errlen, "store: a replay needs a topic shorter than %d bytes",
                   STORE_KEY_MAX - 32);
        return false;
    }
    return true;
}

int store_replay_get(store_t *st, const char *topic, int32_t partition, int64_t offset,
                     store_replay_t *out, char *err, size_t errlen)
{
    char id[STORE_KEY_MAX];
    if (!replay_id(id, sizeof id, topic, partition, offset, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 40];
    snprintf(what, sizeof what, "reading replay record %s", id);
    handle_t h = st_acquire(st, COLL_REPLAYS);
    bson_t doc;
    int rc = st_find_by_id(&h, id, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        if (out) {
            memset(out, 0, sizeof *out);
            out->first_at_ms = st_field_int64(&doc, "first_at");
            out->last_at_ms = st_field_int64(&doc, "last_at");
            out->count = st_field_int64(&doc, "count");
            bson_iter_t it;
            if (bson_iter_init_find(&it, &doc, "by"))
                st_iter_text(&it, out->by, sizeof out->by);
        }
        bson_destroy(&doc);
    }
    st_release(&h);
    return rc;
}

int store_replay_mark(store_t *st, const char *topic, int32_t partition, int64_t offset,
                      const char *by, bool force, char *err, size_t errlen)
{
    char id[STORE_KEY_MAX];
    if (!replay_id(id, sizeof id, topic, partition, offset, err, errlen))
        return STORE_REJECTED;
    char byv[STORE_OWNER_MAX];
    st_copy_cstr(byv, sizeof byv, by && by[0] ? by : "unknown");
    if (!bson_utf8_validate(byv, strlen(byv), false))
        st_copy_cstr(byv, sizeof byv, "unknown");
    char what[STORE_KEY_MAX + 40];
    snprintf(what, sizeof what, "recording replay %s", id);
    int64_t now = st_stamp_now(st);
    handle_t h = st_acquire(st, COLL_REPLAYS);
    int rc;
    if (!force) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "topic", topic);
        BSON_APPEND_INT32(&doc, "partition", partition);
        BSON_APPEND_INT64(&doc, "offset", offset);
        BSON_APPEND_UTF8(&doc, "by", byv);
        BSON_APPEND_INT64(&doc, "count", 1);
        BSON_APPEND_DATE_TIME(&doc, "first_at", now);
        BSON_APPEND_DATE_TIME(&doc, "last_at", now);
        bson_error_t e;
        if (st_insert(&h, &doc, &e))
            rc = STORE_OK;
        else if (st_is_dup(&e)) {
            rc = STORE_CONFLICT;
            errbuf_set(err, errlen,
                       "dead letter %s was already replayed (use --force to replay again)", id);
        } else
            rc = st_fail(st, &e, what, err, errlen);
        bson_destroy(&doc);
    } else {
        bson_t update = BSON_INITIALIZER, set, inc, soi;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "topic", topic);
        BSON_APPEND_INT32(&set, "partition", partition);
        BSON_APPEND_INT64(&set, "offset", offset);
        BSON_APPEND_UTF8(&set, "by", byv);
        BSON_APPEND_DATE_TIME(&set, "last_at", now);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "count", 1);
        bson_append_document_end(&update, &inc);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
        BSON_APPEND_DATE_TIME(&soi, "first_at", now);
        bson_append_document_end(&update, &soi);
        rc = st_upsert_by_id(&h, id, &update, what, err, errlen);
        bson_destroy(&update);
    }
    st_release(&h);
    return rc;
}
