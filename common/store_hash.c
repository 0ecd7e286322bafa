/* store_hash: Milvus content hashes (milvus-producer's change detection). See store.h. */
#include "store_int.h"

#include "clock.h"
#include "errbuf.h"

#include <stdio.h>
#include <string.h>

/* Appends {_id: {$in: [items[start..end).id]]}: the filter of one batch of ids. */
static void append_ids_in(bson_t *filter, const store_hash_t *items, size_t start, size_t end)
{
    bson_t idq, in;
    BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &idq);
    BSON_APPEND_ARRAY_BEGIN(&idq, "$in", &in);
    for (size_t i = start; i < end; i++) {
        char idx_key[16];
        const char *keytext;
        bson_uint32_to_string((uint32_t)(i - start), &keytext, idx_key, sizeof idx_key);
        bson_append_int64(&in, keytext, -1, items[i].id);
    }
    bson_append_array_end(&idq, &in);
    bson_append_document_end(filter, &idq);
}



int store_hashes_get(store_t *st, store_hash_t *items, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        items[i].hash[0] = '\0';
    if (n == 0)
        return STORE_OK;
    handle_t h = st_acquire(st, COLL_HASHES);
    int rc = STORE_OK;
    for (size_t start = 0; start < n && rc == STORE_OK; start += STORE_READ_BATCH) {
        size_t end = start + STORE_READ_BATCH < n ? start + STORE_READ_BATCH : n;
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        append_ids_in(&filter, items, start, end);
        st_append_one(&opts, "projection", "hash", 1);
        mongoc_cursor_t *cur = st_find(&h, &filter, &opts);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it;
            int64_t id = st_field_int64(doc, "_id");
            char hash[STORE_HASH_MAX] = "";
            if (bson_iter_init_find(&it, doc, "hash"))
                st_iter_text(&it, hash, sizeof hash);
            for (size_t i = start; i < end; i++)
                if (items[i].id == id)
                    memcpy(items[i].hash, hash, sizeof hash);
        }
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = st_fail(st, &e, "reading Milvus content hashes", err, errlen);
        mongoc_cursor_destroy(cur);
        bson_destroy(&filter);
        bson_destroy(&opts);
    }
    st_release(&h);
    return rc;
}

/* exists[i-start] = whether items[i].id has a document. One $in query. Inserting the new ids
 * and updating only the existing ones matters on FerretDB 1.24 (SQLite): it finds numeric _ids
 * by scanning, so every upsert costs a scan (17 ms per upsert at 1,200 documents) while a bulk
 * insert of 1,200 takes 40 ms. */
static bool existing_ids(handle_t *h, const store_hash_t *items, size_t start, size_t end,
                         bool *exists, bson_error_t *e)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    append_ids_in(&filter, items, start, end);
    st_append_one(&opts, "projection", "_id", 1);
    for (size_t i = start; i < end; i++)
        exists[i - start] = false;
    mongoc_cursor_t *cur = st_find(h, &filter, &opts);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id"))
            continue;
        int64_t id = st_iter_int64(&it);
        for (size_t i = start; i < end; i++)
            if (items[i].id == id)
                exists[i - start] = true;
    }
    bool ok = !mongoc_cursor_error(cur, e);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return ok;
}

int store_hashes_set(store_t *st, const store_hash_t *items, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (!items[i].hash[0] || !memchr(items[i].hash, '\0', sizeof items[i].hash)) {
            errbuf_set(err, errlen, "store_hashes_set: item %zu (Milvus id %lld) has no hash", i,
                       (long long)items[i].id);
            return STORE_REJECTED;
        }
    }
    if (n == 0)
        return STORE_OK;
    handle_t h = st_acquire(st, COLL_HASHES);
    int rc = STORE_OK;
    int64_t now = st_stamp_now(st);
    for (size_t start = 0; start < n && rc == STORE_OK; start += STORE_WRITE_BATCH) {
        size_t end = start + STORE_WRITE_BATCH < n ? start + STORE_WRITE_BATCH : n;
        for (int attempt = 0;; attempt++) {
            bson_t bopts = BSON_INITIALIZER, uopts = BSON_INITIALIZER;
            BSON_APPEND_BOOL(&bopts, "ordered", false);
            BSON_APPEND_BOOL(&uopts, "upsert", true);
            bson_error_t e;
            bool exists[STORE_WRITE_BATCH];
            if (!existing_ids(&h, items, start, end, exists, &e)) {
                bson_destroy(&bopts);
                bson_destroy(&uopts);
                rc = st_fail(st, &e, "reading Milvus content hashes before saving", err, errlen);
                break;
            }
            mongoc_bulk_operation_t *bulk =
                mongoc_collection_create_bulk_operation_with_opts(h.coll, &bopts);
            bool ok = true;
            for (size_t i = start; i < end && ok; i++) {
                if (!exists[i - start]) {
                    bson_t doc = BSON_INITIALIZER;
                    BSON_APPEND_INT64(&doc, "_id", items[i].id);
                    BSON_APPEND_UTF8(&doc, "hash", items[i].hash);
                    BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
                    ok = mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, &e);
                    bson_destroy(&doc);
                    continue;
                }
                bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, set;
                BSON_APPEND_INT64(&sel, "_id", items[i].id);
                BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
                BSON_APPEND_UTF8(&set, "hash", items[i].hash);
                BSON_APPEND_DATE_TIME(&set, "updated_at", now);
                bson_append_document_end(&upd, &set);
                ok = mongoc_bulk_operation_update_one_with_opts(bulk, &sel, &upd, &uopts, &e);
                bson_destroy(&sel);
                bson_destroy(&upd);
            }
            bson_t reply;
            if (ok) {
                st_count(st, STORE_OP_BULK);
                ok = mongoc_bulk_operation_execute(bulk, &reply, &e) != 0;
            } else {
                bson_init(&reply);
            }
            bson_destroy(&reply);
            mongoc_bulk_operation_destroy(bulk);
            bson_destroy(&bopts);
            bson_destroy(&uopts);
            if (ok)
                break;
            /* duplicate-key races (concurrent upserts, or an id inserted since we looked): the
             * writes are idempotent, redo them (the ids now exist: upserts this time) */
            if (st_is_dup(&e) && attempt + 1 < STORE_DUP_RETRIES) {
                st_pause_ms(1 + attempt * 2);
                continue;
            }
            rc = st_fail(st, &e, "saving Milvus content hashes", err, errlen);
            break;
        }
    }
    st_release(&h);
    return rc;
}

