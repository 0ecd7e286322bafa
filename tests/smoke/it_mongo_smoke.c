/* Smoke test: the toolchain against the real MongoDB-wire database (FerretDB). A unique index,
 * an insert, the duplicate-key error 11000 on the second insert, and findAndModify with upsert
 * (create, then update the same document). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mongoc/mongoc.h>
#include <stdio.h>

#include "testenv.h"

static void unique_index_duplicate_and_upsert(void **state)
{
    (void)state;
    char db[96], uri_text[512];
    testenv_unique(db, sizeof db, "smoke_");
    for (char *p = db; *p; p++)
        if (*p == '-')
            *p = '_';
    testenv_mongo_uri_for_db(uri_text, sizeof uri_text, db);

    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, &error);
    assert_non_null(uri);
    mongoc_client_t *client = mongoc_client_new_from_uri(uri);
    assert_non_null(client);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, db, "things");

    /* mongo-c-driver 1.23 has no index-model helper: send createIndexes as a command. */
    bson_t *create = BCON_NEW("createIndexes", BCON_UTF8("things"), "indexes", "[", "{", "key", "{",
                              "doc", BCON_INT32(1), "}", "name", BCON_UTF8("doc_unique"), "unique",
                              BCON_BOOL(true), "}", "]");
    bool ok = mongoc_collection_write_command_with_opts(coll, create, NULL, NULL, &error);
    if (!ok)
        fail_msg("create index: %s", error.message);

    bson_t *doc = BCON_NEW("doc", BCON_UTF8("11222333000181"), "n", BCON_INT32(1));
    ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &error);
    if (!ok)
        fail_msg("first insert: %s", error.message);
    bson_t *dup = BCON_NEW("doc", BCON_UTF8("11222333000181"), "n", BCON_INT32(2));
    ok = mongoc_collection_insert_one(coll, dup, NULL, NULL, &error);
    assert_false(ok);
    assert_int_equal(error.code, 11000);

    bson_t *query = BCON_NEW("_id", BCON_UTF8("cursor.contacts"));
    bson_t *update = BCON_NEW("$set", "{", "stamp", BCON_UTF8("2026-11-29T10:00:00-03:00"), "}");
    bson_t reply;
    ok = mongoc_collection_find_and_modify(coll, query, NULL, update, NULL, false, true, true,
                                           &reply, &error);
    if (!ok)
        fail_msg("findAndModify upsert: %s", error.message);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &reply, "value"));
    bson_destroy(&reply);

    bson_t *update2 = BCON_NEW("$set", "{", "stamp", BCON_UTF8("2026-11-29T11:00:00-03:00"), "}");
    ok = mongoc_collection_find_and_modify(coll, query, NULL, update2, NULL, false, true, true,
                                           &reply, &error);
    assert_true(ok);
    bson_iter_t v;
    assert_true(bson_iter_init(&it, &reply));
    assert_true(bson_iter_find_descendant(&it, "value.stamp", &v));
    assert_string_equal(bson_iter_utf8(&v, NULL), "2026-11-29T11:00:00-03:00");
    bson_destroy(&reply);

    int64_t count = mongoc_collection_count_documents(coll, query, NULL, NULL, NULL, &error);
    assert_int_equal(count, 1);

    mongoc_database_t *database = mongoc_client_get_database(client, db);
    mongoc_database_drop(database, NULL);
    mongoc_database_destroy(database);
    bson_destroy(update2);
    bson_destroy(update);
    bson_destroy(query);
    bson_destroy(dup);
    bson_destroy(doc);
    bson_destroy(create);
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
}

int main(void)
{
    mongoc_init();
    const struct CMUnitTest tests[] = {cmocka_unit_test(unique_index_duplicate_and_upsert)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mongoc_cleanup();
    return rc;
}
