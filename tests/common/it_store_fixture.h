/* What the store integration tests (it_store*.c) share: a store on a database of its own,
 * dropped at the end, and OK() for store calls. Include after <cmocka.h>. Not a test itself. */
#ifndef IT_STORE_FIXTURE_H
#define IT_STORE_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "store.h"
#include "testenv.h"

typedef struct {
    char db[96];
    char uri[512];
    store_t *st;
} store_fixture_t;

/* Opens f->st on a fresh database named after `prefix`; `before_use` (may be NULL) runs before
 * the first round trip (e.g. to install command monitoring on the pool); then the indexes.
 * Returns 0, or -1 (printed, nothing left open). */
static inline int store_fixture_open(store_fixture_t *f, const char *prefix,
                                     void (*before_use)(store_t *st, void *ctx), void *ctx)
{
    testenv_unique(f->db, sizeof f->db, prefix);
    testenv_mongo_uri_for_db(f->uri, sizeof f->uri, f->db);
    char err[512] = "";
    f->st = store_open(f->uri, err, sizeof err);
    if (!f->st) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    if (before_use)
        before_use(f->st, ctx);
    int rc = store_ensure_indexes(f->st, err, sizeof err);
    if (rc != STORE_OK) {
        fprintf(stderr, "store_ensure_indexes: %s: %s\n", store_rc_name(rc), err);
        store_close(f->st);
        f->st = NULL;
        return -1;
    }
    return 0;
}

/* Drops the fixture's database and closes its store. */
static inline void store_fixture_close(store_fixture_t *f)
{
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(f->st));
    mongoc_database_t *db = mongoc_client_get_database(c, store_db_name(f->st));
    mongoc_database_drop(db, NULL);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(store_pool(f->st), c);
    store_close(f->st);
    f->st = NULL;
}

/* A store call that must answer STORE_OK (prints the error text of `err` otherwise). */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != STORE_OK)                                                                       \
            print_error("%s -> %s: %s\n", #expr, store_rc_name(rc_), err);                       \
        assert_int_equal(rc_, STORE_OK);                                                           \
    } while (0)

#endif
