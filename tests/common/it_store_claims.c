/* Integration test of the claim paths that issue 8 (items 5) and issue 10 ("Store cost") changed,
 * against the real MongoDB-wire server (FerretDB in the test services): a completion that loses
 * to store_record_done() keeps its result; a new ticket costs two inserts whatever the size of
 * the store (counted, by the store's counters and by the driver's command monitoring); the
 * identity-map cache; re-delivery and takeover still see the completion. Own database per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "it_store_fixture.h"
#include "testenv.h"

#define EARLIER_TICKETS 20000
#define BULK 1000

/* commands the driver sent, by name (command monitoring: independent of the store's counters) */
typedef struct {
    atomic_int total, insert, clock, other;
} apm_count_t;

typedef struct {
    store_fixture_t fx; /* first: the fixture */
    apm_count_t apm;
} fixture_t;

static void on_command(const mongoc_apm_command_started_t *ev)
{
    apm_count_t *c = mongoc_apm_command_started_get_context(ev);
    const char *name = mongoc_apm_command_started_get_command_name(ev);
    atomic_fetch_add(&c->total, 1);
    if (strcmp(name, "insert") == 0)
        atomic_fetch_add(&c->insert, 1);
    else if (strcmp(name, "hello") == 0)
        atomic_fetch_add(&c->clock, 1); /* the clock's sample, once a minute: not per record */
    else
        atomic_fetch_add(&c->other, 1);
}

/* Counts every command the store's pool sends (installed before its first round trip). */
static void monitor(store_t *st, void *ctx)
{
    mongoc_apm_callbacks_t *cb = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cb, on_command);
    mongoc_client_pool_set_apm_callbacks(store_pool(st), cb, ctx);
    mongoc_apm_callbacks_destroy(cb);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    if (!f || store_fixture_open(&f->fx, "it_store_claims_", monitor, &f->apm) != 0) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_fixture_close(&f->fx);
    free(f);
    return 0;
}

/* ---- item 5: a completion that lost to store_record_done keeps its result ------------------ */

static void test_complete_after_record_done_merges(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    const store_kind_t kinds[] = {STORE_KIND_CLIENTS, STORE_KIND_TICKETS};
    const char *keys[] = {"11144477735", "ploomes:task:555"};
    for (int i = 0; i < 2; i++) {
        store_claim_t w1;
        OK(store_claim(f->fx.st, kinds[i], keys[i], "w1/n1", 60000, NULL, &w1, err, sizeof err));
        assert_int_equal(w1.status, STORE_CLAIM_ACQUIRED);
        /* W2 found the record at the target (dedup by search) and recorded it */
        store_entry_t found = {.ploomes_id = 777};
        OK(store_record_done(f->fx.st, kinds[i], keys[i], &found, err, sizeof err));
        /* W1's create succeeded too: its result must not be dropped */
        store_entry_t result = {.milvus_id = 4242, .milvus_token = "TOK4242", .ploomes_id = 1};
        assert_int_equal(store_complete(f->fx.st, kinds[i], keys[i], "w1/n1", &result, err,
                                        sizeof err),
                         STORE_CONFLICT);
        assert_non_null(strstr(err, "already done"));
        store_entry_t got;
        OK(store_get(f->fx.st, kinds[i], keys[i], &got, err, sizeof err));
        assert_int_equal(got.state, STORE_STATE_DONE);
        assert_int_equal(got.ploomes_id, 777);  /* W2's value stays */
        assert_int_equal(got.milvus_id, 4242);  /* W1's missing fields were added */
        assert_string_equal(got.milvus_token, "TOK4242");
        store_claim_t again;
        OK(store_claim(f->fx.st, kinds[i], keys[i], "w3/n1", 60000, NULL, &again, err, sizeof err));
        assert_int_equal(again.status, STORE_CLAIM_DONE);
        assert_int_equal(again.entry.milvus_id, 4242);
    }
}

/* ---- issue 10 "Store cost" ---------------------------------------------------------------- */

typedef struct {
    int apm_total, apm_insert, apm_clock; /* apm_total leaves the clock samples out */
    uint64_t trips[STORE_OP_COUNT_];
} cost_t;

static void snapshot(fixture_t *f, cost_t *c)
{
    c->apm_clock = atomic_load(&f->apm.clock);
    c->apm_total = atomic_load(&f->apm.total) - c->apm_clock;
    c->apm_insert = atomic_load(&f->apm.insert);
    for (int op = 0; op < STORE_OP_COUNT_; op++)
        c->trips[op] = store_round_trips(f->fx.st, (store_op_t)op);
}

/* Claims and completes a brand-new ticket; returns what it cost (difference of snapshots). */
static cost_t new_ticket_cost(fixture_t *f, int64_t id)
{
    char err[512] = "", key[64];
    snprintf(key, sizeof key, "ploomes:task:%lld", (long long)id);
    cost_t before, after, d;
    snapshot(f, &before);
    store_claim_t c;
    store_entry_t seed = {.ploomes_id = id};
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, key, "worker-1/abc", 300000, &seed, &c, err,
                   sizeof err));
    assert_int_equal(c.status, STORE_CLAIM_ACQUIRED);
    store_entry_t result = {.codigo = "9001", .milvus_client_token = "TOKC"};
    OK(store_complete(f->fx.st, STORE_KIND_TICKETS, key, "worker-1/abc", &result, err, sizeof err));
    snapshot(f, &after);
    d.apm_total = after.apm_total - before.apm_total;
    d.apm_insert = after.apm_insert - before.apm_insert;
    d.apm_clock = after.apm_clock - before.apm_clock;
    for (int op = 0; op < STORE_OP_COUNT_; op++)
        d.trips[op] = after.trips[op] - before.trips[op];
    return d;
}

/* Inserts n earlier tickets as the steady state leaves them: a claim document in `tickets`
 * and its completion in `tickets_done` (bulk inserts, not through the store). */
static void insert_earlier_tickets(fixture_t *f, int n)
{
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(f->fx.st));
    const char *colls[] = {"tickets", "tickets_done"};
    for (int k = 0; k < 2; k++) {
        mongoc_collection_t *coll = mongoc_client_get_collection(c, store_db_name(f->fx.st),
                                                                 colls[k]);
        for (int start = 0; start < n; start += BULK) {
            bson_t opts = BSON_INITIALIZER;
            BSON_APPEND_BOOL(&opts, "ordered", false);
            mongoc_bulk_operation_t *bulk =
                mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
            bson_destroy(&opts);
            for (int i = start; i < start + BULK && i < n; i++) {
                char key[64];
                snprintf(key, sizeof key, "ploomes:task:%d", 100000 + i);
                bson_t doc = BSON_INITIALIZER;
                BSON_APPEND_UTF8(&doc, "_id", key);
                BSON_APPEND_INT64(&doc, "ploomes_id", 100000 + i);
                if (k == 0) {
                    BSON_APPEND_UTF8(&doc, "state", "pending");
                    BSON_APPEND_UTF8(&doc, "owner", "worker-0/old");
                    BSON_APPEND_DATE_TIME(&doc, "lease_until", 1000);
                    BSON_APPEND_UTF8(&doc, "claim_id", "0123456789abcdef");
                } else {
                    BSON_APPEND_UTF8(&doc, "state", "done");
                    BSON_APPEND_UTF8(&doc, "codigo", "1");
                }
                bson_error_t e;
                assert_true(mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, &e));
                bson_destroy(&doc);
            }
            bson_t reply;
            bson_error_t e;
            if (!mongoc_bulk_operation_execute(bulk, &reply, &e))
                fail_msg("bulk insert of earlier tickets: %s", e.message);
            bson_destroy(&reply);
            mongoc_bulk_operation_destroy(bulk);
        }
        mongoc_collection_destroy(coll);
    }
    mongoc_client_pool_push(store_pool(f->fx.st), c);
}

static void print_cost(const char *label, const cost_t *c)
{
    printf("store cost of one new ticket (%s): %d commands (%d inserts), %d clock samples; "
           "store counters:",
           label, c->apm_total, c->apm_insert, c->apm_clock);
    for (int op = 0; op < STORE_OP_COUNT_; op++)
        printf(" %s=%llu", store_op_name((store_op_t)op), (unsigned long long)c->trips[op]);
    printf("\n");
}

/* In steady state a new record costs at most two round trips, both inserts, and no more with
 * 20,000 earlier tickets than with none (a count, never a timing). The clock's sample (one
 * `hello` a minute, whatever the number of records) is counted apart. */
static void test_new_ticket_cost_is_flat(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    int64_t now = 0;
    OK(store_server_time_ms(f->fx.st, &now, err, sizeof err)); /* first clock sample */
    (void)new_ticket_cost(f, 1);                             /* warm-up */

    cost_t empty = new_ticket_cost(f, 2);
    print_cost("empty store", &empty);
    insert_earlier_tickets(f, EARLIER_TICKETS);
    cost_t full = new_ticket_cost(f, 3);
    print_cost("20,000 earlier tickets", &full);

    assert_true(full.apm_total <= empty.apm_total);
    assert_true(full.apm_total <= 2);
    assert_int_equal(full.apm_insert, full.apm_total); /* inserts only */
    /* the store's own counters agree with the driver's (a clock sample, once a minute, is a
     * command of its own) */
    assert_int_equal(full.trips[STORE_OP_INSERT], (uint64_t)full.apm_insert);
    assert_int_equal(full.trips[STORE_OP_COMMAND], (uint64_t)full.apm_clock);
    uint64_t sum = 0;
    for (int op = 0; op < STORE_OP_COUNT_; op++)
        sum += full.trips[op];
    assert_int_equal(sum, (uint64_t)(full.apm_total + full.apm_clock));

    /* the rare paths still see the completion: re-delivery is DONE, with the result */
    store_claim_t again;
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, "ploomes:task:3", "worker-2/def", 60000, NULL,
                   &again, err, sizeof err));
    assert_int_equal(again.status, STORE_CLAIM_DONE);
    assert_string_equal(again.entry.codigo, "9001");
    assert_int_equal(again.entry.ploomes_id, 3);
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, "ploomes:task:100007", "worker-2/def", 60000, NULL,
                   &again, err, sizeof err)); /* an earlier one, its lease long expired */
    assert_int_equal(again.status, STORE_CLAIM_DONE);
    store_entry_t got;
    OK(store_get(f->fx.st, STORE_KIND_TICKETS, "ploomes:task:3", &got, err, sizeof err));
    assert_int_equal(got.state, STORE_STATE_DONE);
    assert_string_equal(got.milvus_client_token, "TOKC");

    /* exported on /metrics */
    metrics_t *m = metrics_new();
    assert_non_null(m);
    store_set_metrics(f->fx.st, m);
    char *text = metrics_render(m);
    assert_non_null(text);
    assert_non_null(strstr(text, "store_round_trips_total{op=\"insert\"}"));
    assert_non_null(strstr(text, "store_round_trips_total{op=\"findAndModify\"} 0"));
    free(text);
    store_set_metrics(f->fx.st, NULL);
    metrics_free(m);
}

/* A ticket claim of another store (process) whose lease expired is taken over, but a completion
 * recorded meanwhile wins: the taker gets DONE, never a second create. */
static void test_expired_claim_with_completion_is_done(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_t *other = store_open(f->fx.uri, err, sizeof err);
    assert_non_null(other);
    store_claim_t a, b;
    OK(store_claim(other, STORE_KIND_TICKETS, "ploomes:interaction:9", "A/1", 1, NULL, &a, err,
                   sizeof err));
    assert_int_equal(a.status, STORE_CLAIM_ACQUIRED);
    /* the lease ended (1 ms): A completes through the slow path (it re-takes its own claim) */
    store_entry_t r = {.codigo = "77"};
    OK(store_complete(other, STORE_KIND_TICKETS, "ploomes:interaction:9", "A/1", &r, err,
                      sizeof err));
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, "ploomes:interaction:9", "B/1", 60000, NULL, &b,
                   err, sizeof err));
    assert_int_equal(b.status, STORE_CLAIM_DONE);
    assert_string_equal(b.entry.codigo, "77");
    /* an expired claim without completion is taken over (recovered: search first) */
    OK(store_claim(other, STORE_KIND_TICKETS, "ploomes:interaction:10", "A/1", 1, NULL, &a, err,
                   sizeof err));
    store_claim_t t;
    int64_t until = a.entry.lease_until_ms, now = 0;
    do {
        OK(store_server_time_ms(f->fx.st, &now, err, sizeof err));
    } while (now <= until);
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, "ploomes:interaction:10", "B/1", 60000, NULL, &t,
                   err, sizeof err));
    assert_int_equal(t.status, STORE_CLAIM_ACQUIRED);
    assert_true(t.recovered);
    assert_string_equal(t.previous_owner, "A/1");
    /* A comes back late: its completion conflicts (B holds it) */
    assert_int_equal(store_complete(other, STORE_KIND_TICKETS, "ploomes:interaction:10", "A/1",
                                    &r, err, sizeof err),
                     STORE_CONFLICT);
    OK(store_complete(f->fx.st, STORE_KIND_TICKETS, "ploomes:interaction:10", "B/1", &r, err,
                      sizeof err));
    store_close(other);
}

/* ---- housekeeping: takeover locks do not pile up (FerretDB has no TTL indexes) ------------ */

static void put_lock(store_t *st, const char *id, int64_t at_ms)
{
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(st));
    mongoc_collection_t *coll = mongoc_client_get_collection(c, store_db_name(st), "claim_locks");
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "by", "someone");
    BSON_APPEND_DATE_TIME(&doc, "at", at_ms);
    bson_error_t e;
    assert_true(mongoc_collection_insert_one(coll, &doc, NULL, NULL, &e));
    bson_destroy(&doc);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(store_pool(st), c);
}

static bool lock_exists(store_t *st, const char *id)
{
    mongoc_client_t *c = mongoc_client_pool_pop(store_pool(st));
    mongoc_collection_t *coll = mongoc_client_get_collection(c, store_db_name(st), "claim_locks");
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&q, "_id", id);
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(coll, &q, NULL, NULL, NULL, &e);
    bson_destroy(&q);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(store_pool(st), c);
    assert_true(n >= 0);
    return n > 0;
}

static void test_old_takeover_locks_are_collected(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    int64_t now = 0;
    OK(store_server_time_ms(f->fx.st, &now, err, sizeof err));
    put_lock(f->fx.st, "tickets/old/x/1/y#0", now - 2LL * 24 * 3600 * 1000);
    put_lock(f->fx.st, "tickets/recent/x/1/y#0", now - 3600 * 1000);
    /* a takeover of an expired claim: the won lock triggers the collection */
    store_claim_t a, t;
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, "ploomes:task:4242", "A/1", 1, NULL, &a, err,
                   sizeof err));
    int64_t until = a.entry.lease_until_ms;
    do {
        OK(store_server_time_ms(f->fx.st, &now, err, sizeof err));
    } while (now <= until);
    OK(store_claim(f->fx.st, STORE_KIND_TICKETS, "ploomes:task:4242", "B/1", 60000, NULL, &t, err,
                   sizeof err));
    assert_int_equal(t.status, STORE_CLAIM_ACQUIRED);
    assert_true(t.recovered);
    assert_false(lock_exists(f->fx.st, "tickets/old/x/1/y#0"));   /* two days old: gone */
    assert_true(lock_exists(f->fx.st, "tickets/recent/x/1/y#0")); /* an hour old: kept */
}

/* ---- identity-map cache -------------------------------------------------------------------- */

static void test_client_cache(void **state)
{
    fixture_t *f = *state;
    char err[512] = "";
    store_entry_t e;
    assert_int_equal(store_client_get_cached(f->fx.st, "11144477735", &e, err, sizeof err),
                     STORE_NOT_FOUND); /* negative answers are not cached */
    store_entry_t fields = {.ploomes_id = 501, .milvus_id = 601, .milvus_token = "T601",
                            .origin = "ploomes"};
    OK(store_record_done(f->fx.st, STORE_KIND_CLIENTS, "11144477735", &fields, err, sizeof err));

    uint64_t before = store_round_trips_total(f->fx.st);
    OK(store_client_get_cached(f->fx.st, "11144477735", &e, err, sizeof err));
    assert_string_equal(e.milvus_token, "T601");
    OK(store_client_by_ploomes_id_cached(f->fx.st, 501, &e, err, sizeof err));
    assert_string_equal(e.key, "11144477735");
    OK(store_client_by_milvus_id_cached(f->fx.st, 601, &e, err, sizeof err));
    assert_int_equal(e.ploomes_id, 501);
    assert_int_equal(store_round_trips_total(f->fx.st), before); /* all three from memory */

    /* another process's client: a miss reads MongoDB once, then it is cached */
    store_t *other = store_open(f->fx.uri, err, sizeof err);
    assert_non_null(other);
    store_claim_t c;
    OK(store_claim(other, STORE_KIND_CLIENTS, "22233344405", "B/1", 60000, NULL, &c, err,
                   sizeof err));
    assert_int_equal(store_client_by_milvus_id_cached(f->fx.st, 602, &e, err, sizeof err),
                     STORE_NOT_FOUND);
    store_entry_t r2 = {.ploomes_id = 502, .milvus_id = 602, .milvus_token = "T602"};
    OK(store_complete(other, STORE_KIND_CLIENTS, "22233344405", "B/1", &r2, err, sizeof err));
    before = store_round_trips_total(f->fx.st);
    OK(store_client_by_milvus_id_cached(f->fx.st, 602, &e, err, sizeof err));
    assert_string_equal(e.milvus_token, "T602");
    assert_true(store_round_trips_total(f->fx.st) > before);
    before = store_round_trips_total(f->fx.st);
    OK(store_client_by_milvus_id_cached(f->fx.st, 602, &e, err, sizeof err));
    OK(store_client_get_cached(f->fx.st, "22233344405", &e, err, sizeof err));
    OK(store_client_by_ploomes_id_cached(f->fx.st, 502, &e, err, sizeof err));
    assert_int_equal(store_round_trips_total(f->fx.st), before);
    store_close(other);
}

int main(void)
{
    log_init("it_store_claims", LOG_WARN);
    testenv_require("MONGODB_URI");
    store_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_complete_after_record_done_merges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_ticket_cost_is_flat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_claim_with_completion_is_done, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_old_takeover_locks_are_collected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cache, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return failed;
}
