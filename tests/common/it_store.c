/* Integration test for store_ against the real MongoDB-wire server of MONGODB_URI (FerretDB in
 * the test services, mongod in docker-compose). Each test uses its own database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "it_store_fixture.h"
#include "testenv.h"

typedef store_fixture_t fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || store_fixture_open(f, "it_store_", NULL, NULL) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    store_fixture_close(*state);
    free(*state);
    return 0;
}

/* ---- open / indexes ------------------------------------------------------------------------- */

static bool has_index(store_t *st, const char *coll, const char *name)
{
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(st));
    mongoc_collection_t *col = mongoc_client_get_collection(c, store_db_name(st), coll);
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
    const bson_t *doc;
    bool found = false;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), name) == 0)
            found = true;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    mongoc_client_pool_push(store_pool(st), c);
    return found;
}

static void test_open_and_indexes(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    assert_string_equal(store_db_name(f->st), f->db);
    OK(store_ping(f->st, err, sizeof err));
    OK(store_ensure_indexes(f->st, err, sizeof err)); /* idempotent */
    assert_true(has_index(f->st, "clients", "ploomes_id_1"));
    assert_true(has_index(f->st, "clients", "milvus_id_1"));
    assert_true(has_index(f->st, "tickets", "state_1_lease_until_1"));

    /* default database name */
    store_t *d = store_open("mongodb://127.0.0.1:27017", err, sizeof err);
    assert_non_null(d);
    assert_string_equal(store_db_name(d), "pipeline");
    store_close(d);
    d = store_open("mongodb://127.0.0.1:27017/?appname=x", err, sizeof err);
    assert_non_null(d);
    assert_string_equal(store_db_name(d), "pipeline");
    store_close(d);
}

static void test_bad_uri_and_down(void **state)
{
    (void)state;
    char err[512] = "";
    /* invalid URI: a configuration error naming the variable, never echoing the password */
    assert_null(store_open("mongodb://user:s3cretpass@host:notaport/db", err, sizeof err));
    assert_non_null(strstr(err, "MONGODB_URI"));
    assert_null(strstr(err, "s3cretpass"));
    assert_null(store_open("", err, sizeof err));
    assert_non_null(strstr(err, "MONGODB_URI"));

    /* nothing listens on port 1: STORE_DOWN ("try later") with a clear message, quickly */
    store_t *st = store_open("mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=300", err,
                             sizeof err);
    assert_non_null(st);
    int64_t t0 = testenv_now_ms();
    assert_int_equal(store_ping(st, err, sizeof err), STORE_DOWN);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    assert_non_null(strstr(err, "unreachable"));
    assert_non_null(strstr(err, "MONGODB_URI"));
    store_cursor_t cur;
    assert_int_equal(store_cursor_get(st, "ploomes.contact", &cur, err, sizeof err), STORE_DOWN);
    store_claim_t cl;
    assert_int_equal(store_claim(st, STORE_KIND_CLIENTS, "12345678909", "a", 1000, NULL, &cl,
                                 err, sizeof err),
                     STORE_DOWN);
    assert_null(strstr(err, "12345678909")); /* documents are personal data: not in messages */
    store_hash_t h = {.id = 1};
    assert_int_equal(store_hashes_get(st, &h, 1, err, sizeof err), STORE_DOWN);
    /* honours the URI's serverSelectionTimeoutMS (4 calls of 0.3 s; the default would be 30 s
     * each; generous for a loaded machine) */
    assert_true(testenv_now_ms() - t0 < 20000);
    store_close(st);
}

static void test_rejected(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_cursor_t cur;
    char longkey[STORE_KEY_MAX + 10];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(store_cursor_get(f->st, longkey, &cur, err, sizeof err), STORE_REJECTED);
    assert_int_equal(store_cursor_get(f->st, "", &cur, err, sizeof err), STORE_REJECTED);
    store_claim_t cl;
    assert_int_equal(store_claim(f->st, STORE_KIND_TICKETS, "k", "", 1000, NULL, &cl, err,
                                 sizeof err),
                     STORE_REJECTED);
    assert_int_equal(store_claim(f->st, STORE_KIND_TICKETS, "k", "me", 0, NULL, &cl, err,
                                 sizeof err),
                     STORE_REJECTED);
    store_hash_t h = {.id = 5, .hash = ""};
    assert_int_equal(store_hashes_set(f->st, &h, 1, err, sizeof err), STORE_REJECTED);

    /* a request the server itself refuses: a database name longer than the servers allow
     * (mongod: 63 bytes; FerretDB: 63 bytes of [a-zA-Z0-9_-]); the driver accepts it */
    char longdb[101], uri[700];
    memset(longdb, 'd', sizeof longdb - 1);
    longdb[sizeof longdb - 1] = '\0';
    testenv_mongo_uri_for_db(uri, sizeof uri, longdb);
    store_t *bad = store_open(uri, err, sizeof err);
    assert_non_null(bad);
    int rc = store_cursor_set(bad, "ploomes.contact", "x", 1, err, sizeof err);
    print_message("server answer to an over-long database name: %s: %s\n", store_rc_name(rc),
                  err);
    assert_int_equal(rc, STORE_REJECTED);
    assert_non_null(strstr(err, "refused"));
    store_close(bad);
}

/* ---- cursors -------------------------------------------------------------------------------- */

static void test_cursor_round_trip(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_cursor_t c;
    assert_int_equal(store_cursor_get(f->st, "ploomes.contact", &c, err, sizeof err),
                     STORE_NOT_FOUND);

    OK(store_cursor_set(f->st, "ploomes.contact", "2024-02-24T10:00:00.123-03:00", 41, err,
                        sizeof err));
    OK(store_cursor_get(f->st, "ploomes.contact", &c, err, sizeof err));
    assert_true(c.has_position);
    assert_string_equal(c.key, "ploomes.contact");
    assert_string_equal(c.stamp, "2024-02-24T10:00:00.123-03:00");
    assert_int_equal(c.id, 41);
    assert_true(c.updated_at_ms > 0);
    assert_int_equal(c.last_poll_at_ms, 0);

    /* moves; big ids survive (64-bit) */
    OK(store_cursor_set(f->st, "ploomes.contact", "2024-02-25T00:00:00-03:00", 9000000000LL, err,
                        sizeof err));
    OK(store_cursor_get(f->st, "ploomes.contact", &c, err, sizeof err));
    assert_string_equal(c.stamp, "2024-02-25T00:00:00-03:00");
    assert_true(c.id == 9000000000LL);

    /* poll results: failure then success; position untouched */
    OK(store_cursor_poll_result(f->st, "ploomes.contact", false, "HTTP 503 from Ploomes", err,
                                sizeof err));
    OK(store_cursor_get(f->st, "ploomes.contact", &c, err, sizeof err));
    assert_string_equal(c.last_error, "HTTP 503 from Ploomes");
    assert_true(c.last_poll_at_ms > 0);
    assert_int_equal(c.last_ok_at_ms, 0);
    assert_true(c.id == 9000000000LL);
    OK(store_cursor_poll_result(f->st, "ploomes.contact", true, NULL, err, sizeof err));
    OK(store_cursor_get(f->st, "ploomes.contact", &c, err, sizeof err));
    assert_string_equal(c.last_error, "");
    assert_true(c.last_ok_at_ms > 0);

    /* poll info without a position (Milvus has no cursor); long multi-byte error text is cut on
     * a character boundary */
    char longerr[2000];
    size_t used = 0;
    while (used + 3 < sizeof longerr) {
        memcpy(longerr + used, "aç", 3); /* 1-byte + 2-byte characters */
        used += 3;
    }
    longerr[used] = '\0';
    OK(store_cursor_poll_result(f->st, "milvus.client", false, longerr, err, sizeof err));
    OK(store_cursor_get(f->st, "milvus.client", &c, err, sizeof err));
    assert_false(c.has_position);
    assert_true(strlen(c.last_error) > 400 && strlen(c.last_error) < STORE_ERRTEXT_MAX);
    assert_true(bson_utf8_validate(c.last_error, strlen(c.last_error), false));

    OK(store_cursor_set(f->st, "ploomes.task", "2025-01-01T00:00:00Z", 7, err, sizeof err));
    store_cursor_t *all = NULL;
    size_t n = 0;
    OK(store_cursor_list(f->st, &all, &n, err, sizeof err));
    assert_int_equal(n, 3);
    assert_string_equal(all[0].key, "milvus.client");
    assert_string_equal(all[1].key, "ploomes.contact");
    assert_string_equal(all[2].key, "ploomes.task");
    assert_int_equal(all[2].id, 7);
    free(all);
}

/* ---- hashes --------------------------------------------------------------------------------- */

static void test_hashes(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    enum { N = 1200 }; /* more than one batch of 500 */
    store_hash_t *items = calloc(N + 100, sizeof *items);
    for (size_t i = 0; i < N; i++) {
        items[i].id = 634500 + (int64_t)i;
        snprintf(items[i].hash, sizeof items[i].hash, "%064zx", i * 7919);
    }
    OK(store_hashes_set(f->st, items, N, err, sizeof err));
    OK(store_hashes_set(f->st, NULL, 0, err, sizeof err));

    store_hash_t *q = calloc(N + 100, sizeof *q);
    for (size_t i = 0; i < N + 100; i++)
        q[i].id = 634500 + (int64_t)i; /* the last 100 are unknown */
    q[0].id = 5000000000LL;              /* unknown, beyond 32 bits */
    OK(store_hashes_get(f->st, q, N + 100, err, sizeof err));
    assert_string_equal(q[0].hash, "");
    for (size_t i = 1; i < N; i++)
        assert_string_equal(q[i].hash, items[i].hash);
    for (size_t i = N; i < N + 100; i++)
        assert_string_equal(q[i].hash, "");

    /* update a few, others unchanged; 64-bit id round trip */
    store_hash_t upd[2] = {{.id = 634501, .hash = "aa"}, {.id = 5000000000LL, .hash = "bb"}};
    OK(store_hashes_set(f->st, upd, 2, err, sizeof err));
    store_hash_t g[3] = {{.id = 634501}, {.id = 5000000000LL}, {.id = 634502}};
    OK(store_hashes_get(f->st, g, 3, err, sizeof err));
    assert_string_equal(g[0].hash, "aa");
    assert_string_equal(g[1].hash, "bb");
    assert_string_equal(g[2].hash, items[2].hash);
    OK(store_hashes_get(f->st, NULL, 0, err, sizeof err));
    free(items);
    free(q);
}

/* concurrent upserts of the same ids from several threads (duplicate-key races) */
typedef struct {
    store_t *st;
    int thread;
    atomic_int *failures;
} hash_race_t;

static void *hash_racer(void *arg)
{
    hash_race_t *r = arg;
    char err[512];
    for (int round = 0; round < 20; round++) {
        store_hash_t items[10];
        for (int i = 0; i < 10; i++) {
            items[i].id = 100000 + round * 10 + i;
            snprintf(items[i].hash, sizeof items[i].hash, "t%d", r->thread);
        }
        int rc = store_hashes_set(r->st, items, 10, err, sizeof err);
        if (rc != STORE_OK) {
            fprintf(stderr, "hash race: %s: %s\n", store_rc_name(rc), err);
            atomic_fetch_add(r->failures, 1);
        }
    }
    return NULL;
}

static void test_hashes_concurrent_upserts(void **state)
{
    fixture_t *f = *state;
    atomic_int failures;
    atomic_init(&failures, 0);
    pthread_t th[4];
    hash_race_t r[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (hash_race_t){f->st, i, &failures};
        pthread_create(&th[i], NULL, hash_racer, &r[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    char err[512] = "";
    store_hash_t g = {.id = 100000 + 199};
    OK(store_hashes_get(f->st, &g, 1, err, sizeof err));
    assert_true(g.hash[0] == 't');
}

/* ---- identity map --------------------------------------------------------------------------- */

static void test_identity_map(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_entry_t e;
    assert_int_equal(store_get(f->st, STORE_KIND_CLIENTS, "11144477735", &e, err, sizeof err),
                     STORE_NOT_FOUND);
    assert_int_equal(store_client_by_ploomes_id(f->st, 77, &e, err, sizeof err), STORE_NOT_FOUND);

    store_entry_t fields = {.ploomes_id = 77, .milvus_id = 634777, .milvus_token = "KEN7B5",
                            .origin = "ploomes"};
    OK(store_record_done(f->st, STORE_KIND_CLIENTS, "11144477735", &fields, err, sizeof err));
    store_entry_t other = {.ploomes_id = 78, .milvus_id = 634778, .origin = "milvus"};
    OK(store_record_done(f->st, STORE_KIND_CLIENTS, "11222333000181", &other, err, sizeof err));

    OK(store_get(f->st, STORE_KIND_CLIENTS, "11144477735", &e, err, sizeof err));
    assert_string_equal(e.key, "11144477735");
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_int_equal(e.ploomes_id, 77);
    assert_int_equal(e.milvus_id, 634777);
    assert_string_equal(e.milvus_token, "KEN7B5");
    assert_string_equal(e.origin, "ploomes");
    assert_true(e.created_at_ms > 0 && e.updated_at_ms >= e.created_at_ms);

    OK(store_client_by_ploomes_id(f->st, 77, &e, err, sizeof err));
    assert_string_equal(e.key, "11144477735");
    OK(store_client_by_milvus_id(f->st, 634778, &e, err, sizeof err));
    assert_string_equal(e.key, "11222333000181");
    assert_string_equal(e.milvus_token, "");
    assert_int_equal(store_client_by_milvus_id(f->st, 1, &e, err, sizeof err), STORE_NOT_FOUND);

    /* merging: a later record_done adds the token and keeps the other fields */
    store_entry_t tok = {.milvus_token = "K1OSGA"};
    OK(store_record_done(f->st, STORE_KIND_CLIENTS, "11222333000181", &tok, err, sizeof err));
    OK(store_get(f->st, STORE_KIND_CLIENTS, "11222333000181", &e, err, sizeof err));
    assert_string_equal(e.milvus_token, "K1OSGA");
    assert_int_equal(e.ploomes_id, 78);
    assert_string_equal(e.origin, "milvus");

    /* a claim on the map is DONE for this document: dedup hit with the result */
    store_claim_t cl;
    OK(store_claim(f->st, STORE_KIND_CLIENTS, "11144477735", "w1", 10000, NULL, &cl, err,
                   sizeof err));
    assert_int_equal(cl.status, STORE_CLAIM_DONE);
    assert_int_equal(cl.entry.milvus_id, 634777);
}

/* ---- claims: single-threaded semantics ------------------------------------------------------ */

static void test_claim_lifecycle(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    const char *key = "ploomes:task:123";
    store_claim_t a, b;
    store_entry_t seed = {.ploomes_id = 123};
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "host-1/0", 60000, &seed, &a, err,
                   sizeof err));
    assert_int_equal(a.status, STORE_CLAIM_ACQUIRED);
    assert_false(a.recovered);
    assert_int_equal(a.entry.state, STORE_STATE_PENDING);
    assert_string_equal(a.entry.owner, "host-1/0");
    assert_int_equal(a.entry.ploomes_id, 123);

    /* another owner: busy, with the holder's lease */
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "host-2/0", 60000, NULL, &b, err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_BUSY);
    assert_string_equal(b.entry.owner, "host-1/0");
    assert_true(b.entry.lease_until_ms > testenv_now_ms() / 2);

    /* only the owner completes or releases */
    store_entry_t result = {.codigo = "4711", .milvus_client_token = "KEN7B5"};
    assert_int_equal(store_complete(f->st, STORE_KIND_TICKETS, key, "host-2/0", &result, err,
                                    sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "host-1/0")); /* says who holds it */
    assert_int_equal(store_release(f->st, STORE_KIND_TICKETS, key, "host-2/0", err, sizeof err),
                     STORE_CONFLICT);
    OK(store_claim_renew(f->st, STORE_KIND_TICKETS, key, "host-1/0", 60000, err, sizeof err));
    OK(store_complete(f->st, STORE_KIND_TICKETS, key, "host-1/0", &result, err, sizeof err));

    /* done: everybody gets DONE with the result, nobody can complete/release/renew */
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "host-2/0", 60000, NULL, &b, err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_DONE);
    assert_string_equal(b.entry.codigo, "4711");
    assert_string_equal(b.entry.milvus_client_token, "KEN7B5");
    assert_int_equal(b.entry.ploomes_id, 123);
    assert_string_equal(b.entry.owner, "");
    assert_int_equal(b.entry.lease_until_ms, 0);
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "host-1/0", 60000, NULL, &a, err, sizeof err));
    assert_int_equal(a.status, STORE_CLAIM_DONE);
    assert_int_equal(store_complete(f->st, STORE_KIND_TICKETS, key, "host-1/0", &result, err,
                                    sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "already done"));
    assert_int_equal(store_release(f->st, STORE_KIND_TICKETS, key, "host-1/0", err, sizeof err),
                     STORE_CONFLICT);
    assert_int_equal(store_claim_renew(f->st, STORE_KIND_TICKETS, key, "host-1/0", 1000, err,
                                       sizeof err),
                     STORE_CONFLICT);

    /* release: a permanent failure frees the key for a later replay */
    const char *k2 = "ploomes:interaction:456";
    OK(store_claim(f->st, STORE_KIND_TICKETS, k2, "host-1/0", 60000, NULL, &a, err, sizeof err));
    assert_int_equal(a.status, STORE_CLAIM_ACQUIRED);
    OK(store_release(f->st, STORE_KIND_TICKETS, k2, "host-1/0", err, sizeof err));
    store_entry_t gone;
    assert_int_equal(store_get(f->st, STORE_KIND_TICKETS, k2, &gone, err, sizeof err),
                     STORE_NOT_FOUND);
    OK(store_claim(f->st, STORE_KIND_TICKETS, k2, "host-2/0", 60000, NULL, &b, err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_ACQUIRED);
    assert_false(b.recovered);
    assert_int_equal(store_complete(f->st, STORE_KIND_TICKETS, "ploomes:task:999", "host-2/0",
                                    NULL, err, sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "gone"));

    /* issue 8 item 4: a second handling under the same owner string (a record re-delivered to
     * the process still handling it) is BUSY, never a re-entry: only the handling that holds the
     * claim re-enters, with its claim id, and then searches first (recovered) */
    char held[STORE_CLAIM_ID_MAX];
    snprintf(held, sizeof held, "%s", b.entry.claim_id);
    store_claim_t c;
    OK(store_claim(f->st, STORE_KIND_TICKETS, k2, "host-2/0", 60000, NULL, &c, err, sizeof err));
    assert_int_equal(c.status, STORE_CLAIM_BUSY);
    assert_string_equal(c.entry.claim_id, held);
    OK(store_claim_held(f->st, STORE_KIND_TICKETS, k2, "host-2/0", "not-the-claim-id", 60000,
                        NULL, &c, err, sizeof err));
    assert_int_equal(c.status, STORE_CLAIM_BUSY);
    OK(store_claim_held(f->st, STORE_KIND_TICKETS, k2, "host-2/1", held, 60000, NULL, &c, err,
                        sizeof err)); /* another owner with a copied id: still busy */
    assert_int_equal(c.status, STORE_CLAIM_BUSY);
    OK(store_claim_held(f->st, STORE_KIND_TICKETS, k2, "host-2/0", held, 60000, NULL, &b, err,
                        sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_ACQUIRED);
    assert_true(b.recovered);
    assert_string_equal(b.previous_owner, "");
    assert_string_not_equal(b.entry.claim_id, held); /* a new instance */
    /* the old instance id does not re-enter the new one */
    OK(store_claim_held(f->st, STORE_KIND_TICKETS, k2, "host-2/0", held, 60000, NULL, &c, err,
                        sizeof err));
    assert_int_equal(c.status, STORE_CLAIM_BUSY);
    OK(store_complete(f->st, STORE_KIND_TICKETS, k2, "host-2/0", NULL, err, sizeof err));
}

typedef struct {
    store_t *st;
    store_kind_t kind;
    const char *key;
} expired_ctx_t;

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* leases use the wall clock, as store_ does */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool lease_expired(void *ctx)
{
    expired_ctx_t *x = ctx;
    char err[256];
    store_entry_t e;
    if (store_get(x->st, x->kind, x->key, &e, err, sizeof err) != STORE_OK)
        return false;
    return e.lease_until_ms < wall_now_ms();
}

/* ---- claims: lease expiry ------------------------------------------------------------------- */

typedef struct {
    store_t *st;
    store_claim_t got;
    int busy_seen;
} takeover_t;

static bool takeover_succeeds(void *ctx)
{
    takeover_t *t = ctx;
    char err[512];
    int rc = store_claim(t->st, STORE_KIND_CLIENTS, "11144477735", "late", 60000, NULL, &t->got,
                         err, sizeof err);
    assert_int_equal(rc, STORE_OK);
    if (t->got.status == STORE_CLAIM_BUSY)
        t->busy_seen++;
    return t->got.status == STORE_CLAIM_ACQUIRED;
}

static void test_lease_expiry_takeover(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_claim_t a;
    store_entry_t seed = {.ploomes_id = 501, .origin = "ploomes"};
    int64_t t0 = testenv_now_ms();
    /* a 3 s lease: the first takeover attempt must surely come while it is live, even when a
     * loaded machine makes a database round trip slow */
    OK(store_claim(f->st, STORE_KIND_CLIENTS, "11144477735", "dead", 3000, &seed, &a, err,
                   sizeof err));
    assert_int_equal(a.status, STORE_CLAIM_ACQUIRED);

    takeover_t t = {f->st, {0}, 0};
    assert_true(testenv_wait_until(takeover_succeeds, &t, 60000, 25));
    assert_true(testenv_now_ms() - t0 >= 2990); /* not before the lease ended */
    assert_true(t.busy_seen >= 1);              /* and busy while it was live */
    assert_true(t.got.recovered);
    assert_string_equal(t.got.previous_owner, "dead");
    assert_string_equal(t.got.entry.owner, "late");
    assert_int_equal(t.got.entry.ploomes_id, 501); /* seed of the first claim is kept */

    /* the dead owner comes back: it can neither complete, renew nor release */
    store_entry_t res = {.milvus_id = 9, .milvus_token = "ABC123"};
    assert_int_equal(store_complete(f->st, STORE_KIND_CLIENTS, "11144477735", "dead", &res, err,
                                    sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "late"));
    assert_null(strstr(err, "11144477735"));
    assert_int_equal(store_claim_renew(f->st, STORE_KIND_CLIENTS, "11144477735", "dead", 1000,
                                       err, sizeof err),
                     STORE_CONFLICT);
    assert_int_equal(store_release(f->st, STORE_KIND_CLIENTS, "11144477735", "dead", err,
                                   sizeof err),
                     STORE_CONFLICT);
    OK(store_complete(f->st, STORE_KIND_CLIENTS, "11144477735", "late", &res, err, sizeof err));
    store_entry_t e;
    OK(store_get(f->st, STORE_KIND_CLIENTS, "11144477735", &e, err, sizeof err));
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_int_equal(e.milvus_id, 9);
    assert_int_equal(e.ploomes_id, 501);
    OK(store_client_by_milvus_id(f->st, 9, &e, err, sizeof err));

    /* an expired lease nobody took can still be renewed by its owner */
    OK(store_claim(f->st, STORE_KIND_CLIENTS, "71428793860", "sleepy", 1, NULL, &a, err,
                   sizeof err));
    expired_ctx_t x = {f->st, STORE_KIND_CLIENTS, "71428793860"};
    assert_true(testenv_wait_until(lease_expired, &x, 30000, 5));
    OK(store_claim_renew(f->st, STORE_KIND_CLIENTS, "71428793860", "sleepy", 60000, err,
                         sizeof err));
    OK(store_get(f->st, STORE_KIND_CLIENTS, "71428793860", &e, err, sizeof err));
    assert_true(e.lease_until_ms > wall_now_ms() + 30000);

    /* an expired lease whose holder completes before anyone takes over still completes */
    OK(store_claim(f->st, STORE_KIND_CLIENTS, "52998224725", "slow", 1, NULL, &a, err,
                   sizeof err));
    OK(store_complete(f->st, STORE_KIND_CLIENTS, "52998224725", "slow", &res, err, sizeof err));
}

/* ---- claims: concurrent claimers ------------------------------------------------------------ */

#define RACE_KEYS 40
#define RACE_THREADS 4

typedef struct {
    store_t *st;
    char owner[32];
    pthread_barrier_t *barrier;
    atomic_int *acquired; /* per key */
    atomic_int *errors;
    atomic_int *busy_or_done;
} racer_t;

static void *racer(void *arg)
{
    racer_t *r = arg;
    char err[512];
    pthread_barrier_wait(r->barrier);
    for (int k = 0; k < RACE_KEYS; k++) {
        char key[64];
        snprintf(key, sizeof key, "ploomes:task:%d", 1000 + k);
        store_claim_t c;
        int rc = store_claim(r->st, STORE_KIND_TICKETS, key, r->owner, 60000, NULL, &c, err,
                             sizeof err);
        if (rc != STORE_OK) {
            fprintf(stderr, "racer %s: %s: %s\n", r->owner, store_rc_name(rc), err);
            atomic_fetch_add(r->errors, 1);
            continue;
        }
        if (c.status == STORE_CLAIM_ACQUIRED) {
            if (c.recovered) /* nobody's lease expires in this test */
                atomic_fetch_add(r->errors, 1);
            atomic_fetch_add(&r->acquired[k], 1);
            if (k % 2 == 0) { /* complete half of them: losers then see DONE, not only BUSY */
                store_entry_t res = {.codigo = "1"};
                snprintf(res.codigo, sizeof res.codigo, "%d", k);
                if (store_complete(r->st, STORE_KIND_TICKETS, key, r->owner, &res, err,
                                   sizeof err) != STORE_OK)
                    atomic_fetch_add(r->errors, 1);
            }
        } else {
            atomic_fetch_add(r->busy_or_done, 1);
        }
    }
    return NULL;
}

static void test_concurrent_claims(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    /* two pools (as two processes would have), two threads on each */
    store_t *second = store_open(f->uri, err, sizeof err);
    assert_non_null(second);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACE_THREADS);
    atomic_int acquired[RACE_KEYS];
    for (int k = 0; k < RACE_KEYS; k++)
        atomic_init(&acquired[k], 0);
    atomic_int errors, busy_or_done;
    atomic_init(&errors, 0);
    atomic_init(&busy_or_done, 0);
    racer_t r[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i] = (racer_t){i % 2 ? second : f->st, "", &barrier, acquired, &errors, &busy_or_done};
        snprintf(r[i].owner, sizeof r[i].owner, "racer-%d", i);
        pthread_create(&th[i], NULL, racer, &r[i]);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    assert_int_equal(atomic_load(&errors), 0);
    for (int k = 0; k < RACE_KEYS; k++) {
        if (atomic_load(&acquired[k]) != 1)
            print_error("key %d acquired %d times\n", k, atomic_load(&acquired[k]));
        assert_int_equal(atomic_load(&acquired[k]), 1);
    }
    assert_int_equal(atomic_load(&busy_or_done), RACE_KEYS * (RACE_THREADS - 1));

    /* and the final state matches: even keys done with their codigo, odd keys pending */
    for (int k = 0; k < RACE_KEYS; k++) {
        char key[64], want[16];
        snprintf(key, sizeof key, "ploomes:task:%d", 1000 + k);
        store_entry_t e;
        OK(store_get(f->st, STORE_KIND_TICKETS, key, &e, err, sizeof err));
        assert_int_equal(e.state, k % 2 == 0 ? STORE_STATE_DONE : STORE_STATE_PENDING);
        if (k % 2 == 0) {
            snprintf(want, sizeof want, "%d", k);
            assert_string_equal(e.codigo, want);
        }
    }
    store_close(second);
}

/* expired-lease takeover raced by several claimers: exactly one recovers it */
typedef struct {
    store_t *st;
    const char *key;
    char owner[32];
    pthread_barrier_t *barrier;
    atomic_int *recovered;
    atomic_int *errors;
} taker_t;

static void *taker(void *arg)
{
    taker_t *t = arg;
    char err[512];
    pthread_barrier_wait(t->barrier);
    store_claim_t c;
    int rc = store_claim(t->st, STORE_KIND_CLIENTS, t->key, t->owner, 60000, NULL, &c, err,
                         sizeof err);
    if (rc != STORE_OK)
        atomic_fetch_add(t->errors, 1);
    else if (c.status == STORE_CLAIM_ACQUIRED && c.recovered)
        atomic_fetch_add(t->recovered, 1);
    else if (c.status != STORE_CLAIM_BUSY)
        atomic_fetch_add(t->errors, 1);
    return NULL;
}

#define TAKE_THREADS 8

static void test_concurrent_takeover(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_t *second = store_open(f->uri, err, sizeof err);
    /* several rounds: a race that is lost only sometimes must still show up */
    for (int round = 0; round < 8; round++) {
        char key[32];
        snprintf(key, sizeof key, "3905334470%d", round);
        store_claim_t a;
        OK(store_claim(f->st, STORE_KIND_CLIENTS, key, "crashed", 100, NULL, &a, err,
                       sizeof err));
        expired_ctx_t x = {f->st, STORE_KIND_CLIENTS, key};
        assert_true(testenv_wait_until(lease_expired, &x, 30000, 10));
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, TAKE_THREADS);
        atomic_int recovered, errors;
        atomic_init(&recovered, 0);
        atomic_init(&errors, 0);
        taker_t t[TAKE_THREADS];
        pthread_t th[TAKE_THREADS];
        for (int i = 0; i < TAKE_THREADS; i++) {
            t[i] = (taker_t){i % 2 ? second : f->st, key, "", &barrier, &recovered, &errors};
            snprintf(t[i].owner, sizeof t[i].owner, "taker-%d", i);
            pthread_create(&th[i], NULL, taker, &t[i]);
        }
        for (int i = 0; i < TAKE_THREADS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);
        assert_int_equal(atomic_load(&errors), 0);
        if (atomic_load(&recovered) != 1)
            print_error("round %d: %d takers recovered the claim\n", round,
                        atomic_load(&recovered));
        assert_int_equal(atomic_load(&recovered), 1);
    }
    store_close(second);
}

/* a takeover lock whose winner died before updating the claim: live -> busy, stale -> skipped */
static void test_stale_transfer_lock(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    const char *key = "ploomes:task:777";
    store_claim_t a;
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "crashed", 50, NULL, &a, err, sizeof err));
    char lock_id[512];
    snprintf(lock_id, sizeof lock_id, "tickets/%s/%s/%lld/%s#0", key, a.entry.owner,
             (long long)a.entry.lease_until_ms, a.entry.claim_id);
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(f->st));
    mongoc_collection_t *locks = mongoc_client_get_collection(c, store_db_name(f->st),
                                                              "claim_locks");
    bson_t *lock = BCON_NEW("_id", BCON_UTF8(lock_id), "by", BCON_UTF8("died-mid-transfer"), "at",
                            BCON_DATE_TIME(wall_now_ms()));
    assert_true(mongoc_collection_insert_one(locks, lock, NULL, NULL, NULL));
    bson_destroy(lock);
    /* the claim's lease is over, but the lock is fresh (younger than the taker's 30 s lease,
     * which is also how long a transfer lock stays live; long, so that the lock is surely
     * still fresh on a loaded machine): busy */
    expired_ctx_t x = {f->st, STORE_KIND_TICKETS, key};
    assert_true(testenv_wait_until(lease_expired, &x, 30000, 5));
    store_claim_t b;
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "taker", 30000, NULL, &b, err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_BUSY);
    /* make the lock stale: the next level is tried and wins */
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(lock_id));
    bson_t *upd = BCON_NEW("$set", "{", "at", BCON_DATE_TIME(wall_now_ms() - 60000), "}");
    assert_true(mongoc_collection_update_one(locks, sel, upd, NULL, NULL, NULL));
    bson_destroy(sel);
    bson_destroy(upd);
    mongoc_collection_destroy(locks);
    mongoc_client_pool_push(store_pool(f->st), c);
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "taker", 30000, NULL, &b, err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_ACQUIRED);
    assert_true(b.recovered);
    assert_string_equal(b.previous_owner, "crashed");
    assert_string_not_equal(b.entry.claim_id, a.entry.claim_id);

    /* renew: live lease -> ok; the old owner cannot */
    OK(store_claim_renew(f->st, STORE_KIND_TICKETS, key, "taker", 60000, err, sizeof err));
    assert_int_equal(store_claim_renew(f->st, STORE_KIND_TICKETS, key, "crashed", 60000, err,
                                       sizeof err),
                     STORE_CONFLICT);
}

/* The owner of an expired claim settles it (complete or release) while takers race to take it
 * over. FerretDB runs the owner's conditional write as read + unconditional write by _id, so
 * without the transfer lock the owner's delete could remove a taker's fresh claim and a complete
 * could succeed alongside a takeover. Invariant: never both; and a taker that acquired still
 * holds the claim at the end. */
typedef struct {
    store_t *st;
    const char *key;
    bool complete; /* else release */
    pthread_barrier_t *barrier;
    int rc;
} settler_t;

static void *settler(void *arg)
{
    settler_t *s = arg;
    char err[512];
    pthread_barrier_wait(s->barrier);
    store_entry_t res = {.codigo = "42"};
    s->rc = s->complete ? store_complete(s->st, STORE_KIND_TICKETS, s->key, "old", &res, err,
                                         sizeof err)
                        : store_release(s->st, STORE_KIND_TICKETS, s->key, "old", err,
                                        sizeof err);
    return NULL;
}

typedef struct {
    store_t *st;
    const char *key;
    char owner[32];
    pthread_barrier_t *barrier;
    int rc;
    store_claim_t got;
} claimer_t;

static void *claimer(void *arg)
{
    claimer_t *c = arg;
    char err[512];
    pthread_barrier_wait(c->barrier);
    c->rc = store_claim(c->st, STORE_KIND_TICKETS, c->key, c->owner, 60000, NULL, &c->got, err,
                        sizeof err);
    return NULL;
}

#define SETTLE_TAKERS 3

static void test_owner_settles_expired_claim_under_takeover(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_t *second = store_open(f->uri, err, sizeof err);
    assert_non_null(second);
    for (int round = 0; round < 24; round++) {
        char key[48];
        snprintf(key, sizeof key, "ploomes:task:%d", 9000 + round);
        store_claim_t a;
        OK(store_claim(f->st, STORE_KIND_TICKETS, key, "old", 1, NULL, &a, err, sizeof err));
        expired_ctx_t x = {f->st, STORE_KIND_TICKETS, key};
        assert_true(testenv_wait_until(lease_expired, &x, 30000, 5));
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, SETTLE_TAKERS + 1);
        settler_t s = {second, key, round % 2 == 0, &barrier, -99};
        claimer_t c[SETTLE_TAKERS];
        pthread_t th[SETTLE_TAKERS + 1];
        pthread_create(&th[0], NULL, settler, &s);
        for (int i = 0; i < SETTLE_TAKERS; i++) {
            c[i] = (claimer_t){i % 2 ? second : f->st, key, "", &barrier, -99, {0}};
            snprintf(c[i].owner, sizeof c[i].owner, "taker-%d", i);
            pthread_create(&th[i + 1], NULL, claimer, &c[i]);
        }
        for (int i = 0; i <= SETTLE_TAKERS; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);

        assert_true(s.rc == STORE_OK || s.rc == STORE_CONFLICT);
        int acquired = 0;
        const char *holder = NULL;
        for (int i = 0; i < SETTLE_TAKERS; i++) {
            assert_int_equal(c[i].rc, STORE_OK);
            if (c[i].got.status == STORE_CLAIM_ACQUIRED) {
                acquired++;
                holder = c[i].owner;
            }
        }
        assert_true(acquired <= 1);
        store_entry_t e;
        int grc = store_get(f->st, STORE_KIND_TICKETS, key, &e, err, sizeof err);
        if (s.complete && s.rc == STORE_OK) {
            /* completed: nobody may also have taken it over */
            if (acquired)
                print_error("round %d: complete and a takeover both succeeded\n", round);
            assert_int_equal(acquired, 0);
        } else if (acquired) {
            /* the taker's claim must have survived the owner's write */
            if (grc != STORE_OK || e.state != STORE_STATE_PENDING ||
                strcmp(e.owner, holder) != 0)
                print_error("round %d (%s rc=%s): taker %s acquired but the claim is %s/%s\n",
                            round, s.complete ? "complete" : "release", store_rc_name(s.rc),
                            holder, store_rc_name(grc), grc == STORE_OK ? e.owner : "-");
            assert_int_equal(grc, STORE_OK);
            assert_int_equal(e.state, STORE_STATE_PENDING);
            assert_string_equal(e.owner, holder);
        }
    }
    store_close(second);
}

/* complete after the claim vanished: the created record is still written down */
static void test_complete_gone_claim_records_result(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    const char *key = "ploomes:interaction:31";
    store_claim_t a;
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "w1", 60000, NULL, &a, err, sizeof err));
    OK(store_release(f->st, STORE_KIND_TICKETS, key, "w1", err, sizeof err));
    store_entry_t res = {.codigo = "777", .milvus_client_token = "TOK"};
    assert_int_equal(store_complete(f->st, STORE_KIND_TICKETS, key, "w1", &res, err, sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "gone"));
    store_entry_t e;
    OK(store_get(f->st, STORE_KIND_TICKETS, key, &e, err, sizeof err));
    assert_int_equal(e.state, STORE_STATE_DONE);
    assert_string_equal(e.codigo, "777");
    /* so the next claimer sees a dedup hit instead of creating a second ticket */
    store_claim_t b;
    OK(store_claim(f->st, STORE_KIND_TICKETS, key, "w2", 60000, NULL, &b, err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_DONE);
    assert_string_equal(b.entry.codigo, "777");
    /* a second complete by the same owner does not overwrite anything */
    assert_int_equal(store_complete(f->st, STORE_KIND_TICKETS, key, "w1", &res, err, sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "already done"));
}

/* ---- settings ------------------------------------------------------------------------------- */

typedef struct {
    store_t *st;
    char initial[64];
    char got[64];
    int rc;
    pthread_barrier_t *barrier;
} setting_racer_t;

static void *setting_racer(void *arg)
{
    setting_racer_t *s = arg;
    char err[512];
    pthread_barrier_wait(s->barrier);
    s->rc = store_setting_get_or_init(s->st, "TICKETS_SINCE", s->initial, s->got, sizeof s->got,
                                      err, sizeof err);
    if (s->rc != STORE_OK)
        fprintf(stderr, "setting race: %s\n", err);
    return NULL;
}

static void test_settings_race(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_t *second = store_open(f->uri, err, sizeof err);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACE_THREADS);
    setting_racer_t s[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        s[i] = (setting_racer_t){.st = i % 2 ? second : f->st, .barrier = &barrier};
        snprintf(s[i].initial, sizeof s[i].initial, "2025-06-0%dT12:00:00Z", i + 1);
        pthread_create(&th[i], NULL, setting_racer, &s[i]);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    bool winner_is_an_initial = false;
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(s[i].rc, STORE_OK);
        assert_string_equal(s[i].got, s[0].got);
        if (strcmp(s[0].got, s[i].initial) == 0)
            winner_is_an_initial = true;
    }
    assert_true(winner_is_an_initial);

    /* later starts keep the first value */
    char v[64];
    OK(store_setting_get_or_init(f->st, "TICKETS_SINCE", "2030-01-01T00:00:00Z", v, sizeof v, err,
                                 sizeof err));
    assert_string_equal(v, s[0].got);
    char tiny[4];
    assert_int_equal(store_setting_get_or_init(f->st, "TICKETS_SINCE", "x", tiny, sizeof tiny,
                                               err, sizeof err),
                     STORE_REJECTED);
    store_close(second);
}

/* ---- DLQ replays ---------------------------------------------------------------------------- */

typedef struct {
    store_t *st;
    pthread_barrier_t *barrier;
    int rc;
} replay_racer_t;

static void *replay_racer(void *arg)
{
    replay_racer_t *r = arg;
    char err[512];
    pthread_barrier_wait(r->barrier);
    r->rc = store_replay_mark(r->st, "acme.pipeline.dlq", 3, 77, "racer", false, err, sizeof err);
    return NULL;
}

static void test_replays(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_replay_t info;
    assert_int_equal(store_replay_get(f->st, "pipeline.dlq", 0, 42, &info, err, sizeof err),
                     STORE_NOT_FOUND);
    OK(store_replay_mark(f->st, "pipeline.dlq", 0, 42, "host-1", false, err, sizeof err));
    assert_int_equal(store_replay_mark(f->st, "pipeline.dlq", 0, 42, "host-2", false, err,
                                       sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "--force"));
    OK(store_replay_get(f->st, "pipeline.dlq", 0, 42, &info, err, sizeof err));
    assert_int_equal(info.count, 1);
    assert_string_equal(info.by, "host-1");
    OK(store_replay_mark(f->st, "pipeline.dlq", 0, 42, "host-2", true, err, sizeof err));
    OK(store_replay_get(f->st, "pipeline.dlq", 0, 42, &info, err, sizeof err));
    assert_int_equal(info.count, 2);
    assert_string_equal(info.by, "host-2");
    assert_true(info.last_at_ms >= info.first_at_ms && info.first_at_ms > 0);
    /* other partitions/offsets are distinct letters; force on a fresh one records it */
    assert_int_equal(store_replay_get(f->st, "pipeline.dlq", 1, 42, NULL, err, sizeof err),
                     STORE_NOT_FOUND);
    OK(store_replay_mark(f->st, "pipeline.dlq", 0, 43, "h", true, err, sizeof err));
    OK(store_replay_get(f->st, "pipeline.dlq", 0, 43, &info, err, sizeof err));
    assert_int_equal(info.count, 1);
    assert_int_equal(store_replay_mark(f->st, "", 0, 1, "h", false, err, sizeof err),
                     STORE_REJECTED);

    /* concurrent replays of one letter: exactly one records it */
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, RACE_THREADS);
    replay_racer_t r[RACE_THREADS];
    pthread_t th[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i] = (replay_racer_t){f->st, &barrier, -99};
        pthread_create(&th[i], NULL, replay_racer, &r[i]);
    }
    int ok = 0, dup = 0;
    for (int i = 0; i < RACE_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok += r[i].rc == STORE_OK;
        dup += r[i].rc == STORE_CONFLICT;
    }
    pthread_barrier_destroy(&barrier);
    assert_int_equal(ok, 1);
    assert_int_equal(dup, RACE_THREADS - 1);
}

int main(void)
{
    log_init("it_store", LOG_WARN);
    testenv_require("MONGODB_URI");
    store_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_and_indexes, setup, teardown),
        cmocka_unit_test(test_bad_uri_and_down),
        cmocka_unit_test_setup_teardown(test_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hashes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hashes_concurrent_upserts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_expiry_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_takeover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_transfer_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_settles_expired_claim_under_takeover, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_complete_gone_claim_records_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_race, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replays, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
