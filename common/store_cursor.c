/* store_cursor: producer cursors (position and last-poll info). See store.h. */
#include "store_int.h"

#include "clock.h"
#include "errbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void parse_cursor(const bson_t *doc, store_cursor_t *out)
{
    st_parse_fields(doc, ST_CURSOR_FIELDS, ST_CURSOR_FIELDS_N, out, sizeof *out);
    out->has_position = bson_has_field(doc, "stamp");
}



int store_cursor_get(store_t *st, const char *key, store_cursor_t *out, char *err, size_t errlen)
{
    if (!st_key_ok(key, "store_cursor_get", err, errlen))
        return STORE_REJECTED;
    handle_t h = st_acquire(st, COLL_CURSORS);
    bson_t doc;
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "reading cursor %s", key);
    int rc = st_find_by_id(&h, key, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        parse_cursor(&doc, out);
        bson_destroy(&doc);
    } else if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "no cursor %s yet", key);
    }
    st_release(&h);
    return rc;
}

int st_cursor_write(store_t *st, const char *key, const char *stamp, int64_t id,
                    const st_lease_mark_t *mark, char *err, size_t errlen)
{
    handle_t h = st_acquire(st, COLL_CURSORS);
    bson_t update = BSON_INITIALIZER, set, filter = BSON_INITIALIZER;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "stamp", stamp ? stamp : "");
    BSON_APPEND_INT64(&set, "id", id);
    BSON_APPEND_DATE_TIME(&set, "updated_at", st_stamp_now(st));
    if (mark) {
        BSON_APPEND_INT64(&set, "lease_base", mark->base);
        BSON_APPEND_INT64(&set, "lease_seq", mark->seq);
    }
    bson_append_document_end(&update, &set);
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "saving cursor %s", key);
    int rc;
    BSON_APPEND_UTF8(&filter, "_id", key);
    if (!mark) {
        rc = st_update_retry(&h, &filter, &update, true, NULL, what, err, errlen);
    } else {
        /* only over a write of the same or an older lease link (or none): {$or: [no lease_base,
         * lease_base < base, {lease_base: base, lease_seq <= seq}]}; a newer one makes the upsert
         * collide with the existing _id (duplicate key) = refused */
        bson_t or, c0, c1, c2, ex, lt, le;
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", &or);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &c0);
        BSON_APPEND_DOCUMENT_BEGIN(&c0, "lease_base", &ex);
        BSON_APPEND_BOOL(&ex, "$exists", false);
        bson_append_document_end(&c0, &ex);
        bson_append_document_end(&or, &c0);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &c1);
        BSON_APPEND_DOCUMENT_BEGIN(&c1, "lease_base", &lt);
        BSON_APPEND_INT64(&lt, "$lt", mark->base);
        bson_append_document_end(&c1, &lt);
        bson_append_document_end(&or, &c1);
        BSON_APPEND_DOCUMENT_BEGIN(&or, "2", &c2);
        BSON_APPEND_INT64(&c2, "lease_base", mark->base);
        BSON_APPEND_DOCUMENT_BEGIN(&c2, "lease_seq", &le);
        BSON_APPEND_INT64(&le, "$lte", mark->seq);
        bson_append_document_end(&c2, &le);
        bson_append_document_end(&or, &c2);
        bson_append_array_end(&filter, &or);
        bson_t opts = BSON_INITIALIZER, reply;
        BSON_APPEND_BOOL(&opts, "upsert", true);
        bson_error_t e;
        st_count(st, STORE_OP_UPDATE);
        if (mongoc_collection_update_one(h.coll, &filter, &update, &opts, &reply, &e)) {
            rc = STORE_OK;
        } else if (st_is_dup(&e)) {
            rc = STORE_CONFLICT;
            errbuf_set(err, errlen,
                       "cursor %s was written under a newer producer lease: not moved", key);
        } else {
            rc = st_fail(st, &e, what, err, errlen);
        }
        bson_destroy(&reply);
        bson_destroy(&opts);
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    st_release(&h);
    return rc;
}

int store_cursor_set(store_t *st, const char *key, const char *stamp, int64_t id, char *err,
                     size_t errlen)
{
    if (!st_key_ok(key, "store_cursor_set", err, errlen))
        return STORE_REJECTED;
    return st_cursor_write(st, key, stamp, id, NULL, err, errlen);
}

int store_cursor_poll_result(store_t *st, const char *key, bool ok, const char *error_text,
                             char *err, size_t errlen)
{
    if (!st_key_ok(key, "store_cursor_poll_result", err, errlen))
        return STORE_REJECTED;
    handle_t h = st_acquire(st, COLL_CURSORS);
    bson_t update = BSON_INITIALIZER, set;
    int64_t now = st_stamp_now(st);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_DATE_TIME(&set, "last_poll_at", now);
    if (ok) {
        BSON_APPEND_DATE_TIME(&set, "last_ok_at", now);
        BSON_APPEND_UTF8(&set, "last_error", "");
    } else {
        char text[STORE_ERRTEXT_MAX];
        st_copy_cstr(text, sizeof text, error_text && error_text[0] ? error_text : "unknown error");
        /* a cut inside a UTF-8 sequence would make invalid BSON: drop up to 3 trailing bytes */
        size_t len = strlen(text);
        for (int cut = 0; cut < 4 && len > 0 && !bson_utf8_validate(text, len, false); cut++)
            text[--len] = '\0';
        if (!bson_utf8_validate(text, len, false))
            st_copy_cstr(text, sizeof text, "(error text is not valid UTF-8)");
        BSON_APPEND_UTF8(&set, "last_error", text);
    }
    bson_append_document_end(&update, &set);
    char what[STORE_KEY_MAX + 40];
    snprintf(what, sizeof what, "saving poll result of %s", key);
    int rc = st_upsert_by_id(&h, key, &update, what, err, errlen);
    bson_destroy(&update);
    st_release(&h);
    return rc;
}

int store_cursor_list(store_t *st, store_cursor_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    handle_t h = st_acquire(st, COLL_CURSORS);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    st_append_one(&opts, "sort", "_id", 1);
    mongoc_cursor_t *cur = st_find(&h, &filter, &opts);
    const bson_t *doc;
    size_t cap = 0;
    int rc = STORE_OK;
    while (mongoc_cursor_next(cur, &doc)) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            store_cursor_t *grown = realloc(*out, ncap * sizeof **out);
            if (!grown) {
                errbuf_set(err, errlen, "out of memory listing cursors");
                rc = STORE_REJECTED;
                break;
            }
            *out = grown;
            cap = ncap;
        }
        parse_cursor(doc, &(*out)[(*n)++]);
    }
    bson_error_t e;
    if (rc == STORE_OK && mongoc_cursor_error(cur, &e))
        rc = st_fail(st, &e, "listing cursors", err, errlen);
    if (rc != STORE_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    st_release(&h);
    return rc;
}

