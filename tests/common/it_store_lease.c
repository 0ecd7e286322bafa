/* Integration test of the producer lease (store_lease_*, store_cursor_set_leased; SPEC §3 "One
 * active producer", issue 8 item 11) and of MongoDB's clock (store_server_time_ms, item 6)
 * against the real MongoDB-wire server (FerretDB in the test services). Own database per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"
#include "it_store_fixture.h"
#include "testenv.h"

#define RACERS 3

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
#define ROUNDS 8

typedef struct {
    store_fixture_t fx;      /* its store is "process" 0 */
    store_t *st[RACERS];     /* one store per "process" */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || store_fixture_open(&f->fx, "it_store_lease_", NULL, NULL) != 0) {
        free(f);
        return -1;
    }
    f->st[0] = f->fx.st;
    char err[512] = "";
    for (int i = 1; i < RACERS; i++) {
        f->st[i] = store_open(f->fx.uri, err, sizeof err);
        if (!f->st[i]) {
            fprintf(stderr, "store_open: %s\n", err);
            return -1;
        }
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 1; i < RACERS; i++)
        store_close(f->st[i]);
    store_fixture_close(&f->fx);
    free(f);
    return 0;
}

/* ---- MongoDB's clock -------------------------------------------------------------------------- */

/* The server's time is close to this host's (same machine in the test services), costs no round
 * trip once sampled, and moves forward. */
static void test_server_time(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    int64_t t1 = 0, t2 = 0;
    OK(store_server_time_ms(f->st[0], &t1, err, sizeof err));
    int64_t local = wall_ms(); /* the test services run on this host */
    assert_true(t1 > local - 2000 && t1 < local + 2000);
    uint64_t before = store_round_trips_total(f->st[0]);
    for (int i = 0; i < 100; i++)
        OK(store_server_time_ms(f->st[0], &t2, err, sizeof err));
    assert_int_equal(store_round_trips_total(f->st[0]), before); /* steady state: no round trip */
    assert_true(t2 >= t1);

    /* a host clock 1.5 s fast does not move the server's time (only the reported offset) */
    store_test_set_clock_skew(f->st[1], 1500);
    int64_t t3 = 0;
    OK(store_server_time_ms(f->st[1], &t3, err, sizeof err));
    assert_true(t3 > wall_ms() - 1000 && t3 < wall_ms() + 1000);
}

/* ---- racing acquirers ---------------------------------------------------------------------- */

typedef struct {
    store_t *st;
    const char *name;
    char owner[64];
    pthread_barrier_t *go;
    int rc;
    store_lease_t got;
    char err[512];
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = store_lease_acquire(r->st, r->name, r->owner, 60000, &r->got, r->err, sizeof r->err);
    return NULL;
}

/* RACERS processes start together, ROUNDS times on fresh leases: one winner each time, and the
 * losers are told who won. */
static void test_racing_acquirers_one_winner(void **state)
{
    fixture_t *f = *state;
    for (int round = 0; round < ROUNDS; round++) {
        char name[64];
        snprintf(name, sizeof name, "producer:race%d", round);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, RACERS);
        racer_t r[RACERS];
        pthread_t th[RACERS];
        for (int i = 0; i < RACERS; i++) {
            memset(&r[i], 0, sizeof r[i]);
            r[i].st = f->st[i];
            r[i].name = name;
            r[i].go = &go;
            snprintf(r[i].owner, sizeof r[i].owner, "host%d-1/nonce%d", i, round);
            assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
        }
        int winners = 0, winner = -1;
        for (int i = 0; i < RACERS; i++)
            pthread_join(th[i], NULL);
        for (int i = 0; i < RACERS; i++) {
            if (r[i].rc != STORE_OK)
                print_error("racer %d: %s: %s\n", i, store_rc_name(r[i].rc), r[i].err);
            assert_int_equal(r[i].rc, STORE_OK);
            if (r[i].got.held) {
                winners++;
                winner = i;
            }
        }
        assert_int_equal(winners, 1);
        for (int i = 0; i < RACERS; i++)
            assert_string_equal(r[i].got.owner, r[winner].owner);
        pthread_barrier_destroy(&go);
    }
}

/* ---- takeover, renew after loss, cursor writes ---------------------------------------------- */

typedef struct {
    store_t *st;
    const char *name, *owner;
    store_lease_t got;
} take_t;

static bool takes_over(void *ctx)
{
    take_t *t = ctx;
    char err[512];
    assert_int_equal(store_lease_acquire(t->st, t->name, t->owner, 60000, &t->got, err,
                                         sizeof err),
                     STORE_OK);
    return t->got.held;
}

static void test_takeover_renew_and_cursor(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    const char *name = "producer:ploomes";
    store_lease_t a, b;

    OK(store_lease_acquire(f->st[0], name, "A/1", 1500, &a, err, sizeof err));
    assert_true(a.held);
    assert_string_equal(a.owner, "A/1");
    int64_t now = 0;
    OK(store_server_time_ms(f->st[0], &now, err, sizeof err));
    assert_true(a.until_ms > now && a.until_ms <= now + 1600);

    /* B is standby while A's lease lives; A renews (also through acquire) */
    OK(store_lease_acquire(f->st[1], name, "B/1", 1500, &b, err, sizeof err));
    assert_false(b.held);
    assert_string_equal(b.owner, "A/1");
    OK(store_lease_renew(f->st[0], name, "A/1", 1500, &a, err, sizeof err));
    assert_true(a.held);
    OK(store_lease_acquire(f->st[0], name, "A/1", 1500, &a, err, sizeof err));
    assert_true(a.held);
    assert_int_equal(store_lease_renew(f->st[1], name, "B/1", 1500, &b, err, sizeof err),
                     STORE_CONFLICT);

    /* cursor writes: the holder's go through, a non-holder's are refused */
    OK(store_cursor_set_leased(f->st[0], "ploomes.contact", "2024-05-01T00:00:00Z", 10, name,
                               "A/1", err, sizeof err));
    assert_int_equal(store_cursor_set_leased(f->st[1], "ploomes.contact", "2020-01-01T00:00:00Z",
                                             1, name, "B/1", err, sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "B/1"));
    store_cursor_t c;
    OK(store_cursor_get(f->st[0], "ploomes.contact", &c, err, sizeof err));
    assert_string_equal(c.stamp, "2024-05-01T00:00:00Z");
    assert_int_equal(c.id, 10);

    /* A stops renewing (a paused or dead process): B takes over after the expiry */
    take_t t = {f->st[1], name, "B/1", {0}};
    assert_true(testenv_wait_until(takes_over, &t, 15000, 100));
    assert_string_equal(t.got.owner, "B/1");

    /* A comes back: its renew and its cursor write are refused, nothing moves backwards */
    assert_int_equal(store_lease_renew(f->st[0], name, "A/1", 1500, &a, err, sizeof err),
                     STORE_CONFLICT);
    assert_false(a.held);
    assert_string_equal(a.owner, "B/1");
    OK(store_cursor_set_leased(f->st[1], "ploomes.contact", "2024-06-01T00:00:00Z", 20, name,
                               "B/1", err, sizeof err));
    assert_int_equal(store_cursor_set_leased(f->st[0], "ploomes.contact", "2024-05-02T00:00:00Z",
                                             11, name, "A/1", err, sizeof err),
                     STORE_CONFLICT);
    OK(store_cursor_get(f->st[0], "ploomes.contact", &c, err, sizeof err));
    assert_string_equal(c.stamp, "2024-06-01T00:00:00Z");
    assert_int_equal(c.id, 20);
    OK(store_lease_acquire(f->st[0], name, "A/1", 60000, &a, err, sizeof err));
    assert_false(a.held); /* B's lease is live (it was taken for 60 s) */

    /* release on SIGTERM: the standby takes over at once; a second release is refused */
    OK(store_lease_release(f->st[1], name, "B/1", err, sizeof err));
    assert_int_equal(store_lease_release(f->st[1], name, "B/1", err, sizeof err), STORE_CONFLICT);
    store_lease_t g;
    OK(store_lease_get(f->st[2], name, &g, err, sizeof err));
    assert_string_equal(g.owner, "");
    OK(store_lease_acquire(f->st[0], name, "A/2", 60000, &a, err, sizeof err));
    assert_true(a.held);
    OK(store_lease_get(f->st[2], name, &g, err, sizeof err));
    assert_string_equal(g.owner, "A/2");
    assert_false(g.held);
    assert_int_equal(store_lease_renew(f->st[1], name, "B/1", 1500, &b, err, sizeof err),
                     STORE_CONFLICT);
}

/* A producer renews every page: the chain of links is trimmed as it grows, and the lease and its
 * cursor writes keep working; bad arguments are refused. */
static void test_many_renewals_keep_chain_short(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    const char *name = "producer:milvus";
    store_lease_t a;
    OK(store_lease_acquire(f->st[0], name, "A/1", 60000, &a, err, sizeof err));
    for (int i = 0; i < 60; i++)
        OK(store_lease_renew(f->st[0], name, "A/1", 60000, &a, err, sizeof err));
    assert_true(a.held);
    assert_int_equal(a.seq, 61);
    /* old links are deleted now and then: the chain stays short */
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(f->st[0]));
    mongoc_collection_t *coll = mongoc_client_get_collection(c, store_db_name(f->st[0]), "leases");
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "name", name);
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(coll, &filter, NULL, NULL, NULL, &e);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(store_pool(f->st[0]), c);
    assert_true(n > 0 && n <= 45);
    OK(store_cursor_set_leased(f->st[0], "milvus.client", "", 5, name, "A/1", err, sizeof err));

    /* the second guard: a cursor written under a newer link of the chain (here: forged) is not
     * overwritten by a write under an older one, even by a holder that passed the lease check */
    c = mongoc_client_pool_pop(store_pool(f->st[0]));
    coll = mongoc_client_get_collection(c, store_db_name(f->st[0]), "cursors");
    bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, set;
    BSON_APPEND_UTF8(&sel, "_id", "milvus.client");
    BSON_APPEND_DOCUMENT_BEGIN(&upd, "$inc", &set);
    BSON_APPEND_INT64(&set, "lease_seq", 1000);
    bson_append_document_end(&upd, &set);
    assert_true(mongoc_collection_update_one(coll, &sel, &upd, NULL, NULL, &e));
    bson_destroy(&sel);
    bson_destroy(&upd);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(store_pool(f->st[0]), c);
    assert_int_equal(store_cursor_set_leased(f->st[0], "milvus.client", "", 4, name, "A/1", err,
                                             sizeof err),
                     STORE_CONFLICT);
    assert_non_null(strstr(err, "newer producer lease"));
    store_cursor_t cur;
    OK(store_cursor_get(f->st[0], "milvus.client", &cur, err, sizeof err));
    assert_int_equal(cur.id, 5);
    /* bad arguments */
    assert_int_equal(store_lease_acquire(f->st[0], "", "A/1", 1000, &a, err, sizeof err),
                     STORE_REJECTED);
    assert_int_equal(store_lease_acquire(f->st[0], "x#1", "A/1", 1000, &a, err, sizeof err),
                     STORE_REJECTED);
    assert_int_equal(store_lease_acquire(f->st[0], name, "A/1", 0, &a, err, sizeof err),
                     STORE_REJECTED);
}

int main(void)
{
    log_init("it_store_lease", LOG_WARN);
    testenv_require("MONGODB_URI");
    store_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_racing_acquirers_one_winner, setup, teardown),
        cmocka_unit_test_setup_teardown(test_takeover_renew_and_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_renewals_keep_chain_short, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return failed;
}
