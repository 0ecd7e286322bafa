/* worker_create_once() (workers/worker_create.c) against the real FerretDB: every branch of the
 * claim → search → create → complete protocol (SPEC §4 "Ambiguous creates", "Idempotence
 * across crashes"), with scripted search/create callbacks standing in for the target (the
 * target's side is covered end to end by it_worker_runtime and the handlers' tests). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wtest.h"
#include "worker.h"

#define MAXSTEPS 8

typedef struct {
    /* scripted answers, consumed in order */
    worker_search_t search[MAXSTEPS];
    long search_status[MAXSTEPS]; /* for FAILED: the HTTP status of the failure */
    int nsearch;
    api_outcome_t create[MAXSTEPS];
    long create_status[MAXSTEPS];
    int ncreate;
    int searches, creates; /* calls made */
    /* before a successful create returns: someone else records the key as done with this
     * milvus_id (clients-to-ploomes reading the new client back); 0 = nobody */
    int64_t recorded_meanwhile;
    store_t *st;
    const char *key;
} script_t;

static void fail_into(api_result_t *res, api_outcome_t o, long status)
{
    res->outcome = o;
    res->status = status;
    snprintf(res->error_class, sizeof res->error_class, "HttpStatus%ld", status);
    snprintf(res->message, sizeof res->message, "HTTP %ld: scripted", status);
    res->attempts = 1;
}

static worker_search_t s_search(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                worker_result_t *out)
{
    (void)ctx;
    script_t *s = arg;
    assert_true(s->searches < s->nsearch);
    int i = s->searches++;
    if (s->search[i] == WORKER_SEARCH_FOUND) {
        found->milvus_id = 5000 + i;
        snprintf(found->milvus_token, sizeof found->milvus_token, "FOUND%d", i);
    } else if (s->search[i] == WORKER_SEARCH_FAILED) {
        api_result_t res;
        memset(&res, 0, sizeof res);
        fail_into(&res, s->search_status[i] == 401 ? API_AUTH : API_RETRIABLE_EXHAUSTED,
                  s->search_status[i]);
        worker_result_from_api(out, &res);
    }
    return s->search[i];
}

static api_outcome_t s_create(worker_ctx_t *ctx, void *arg, store_entry_t *created,
                              api_result_t *res)
{
    script_t *s = arg;
    if (ctx->dry_run) { /* the handler's create goes through worker_post */
        s->creates++;
        return worker_post(ctx, NULL, "/cliente/criar", "{}", res);
    }
    assert_true(s->creates < s->ncreate);
    int i = s->creates++;
    if (s->create[i] == API_OK) {
        res->outcome = API_OK;
        res->status = 200;
        res->attempts = 1;
        created->milvus_id = 100 + i;
        snprintf(created->milvus_token, sizeof created->milvus_token, "NEW%d", i);
        if (s->recorded_meanwhile) {
            store_entry_t other = {.milvus_id = s->recorded_meanwhile};
            char err[256];
            assert_int_equal(store_record_done(s->st, STORE_KIND_CLIENTS, s->key, &other, err,
                                               sizeof err),
                             STORE_OK);
        }
        return API_OK;
    }
    fail_into(res, s->create[i], s->create_status[i]);
    return s->create[i];
}

typedef struct {
    wt_t w;
    store_t *st;
    config_t cfg;
    worker_ctx_t ctx;
    int n;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    wt_init(&f->w, "create");
    f->st = wt_store_open(&f->w);
    if (f->st == NULL)
        return -1;
    f->cfg.max_attempts = 3;
    f->cfg.claim_lease_seconds = 30;
    f->ctx.cfg = &f->cfg;
    f->ctx.store = f->st;
    f->ctx.worker_name = "test-worker";
    f->ctx.instance_id = "host-1";
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    store_close(f->st);
    wt_free(&f->w);
    free(f);
    return 0;
}

/* Runs worker_create_once on `key` with a fresh owner. */
static worker_outcome_t once(fx_t *f, const char *key, script_t *s, worker_result_t *out,
                             store_entry_t *entry)
{
    worker_owner_new(f->ctx.instance_id, f->ctx.owner, sizeof f->ctx.owner);
    worker_create_t c = {.kind = STORE_KIND_CLIENTS,
                         .key = key,
                         .search = s_search,
                         .create = s_create,
                         .arg = s};
    memset(out, 0, sizeof *out);
    return worker_create_once(&f->ctx, &c, entry, out);
}

static store_state_t state_of(fx_t *f, const char *key, store_entry_t *e)
{
    char err[512];
    int rc = store_get(f->st, STORE_KIND_CLIENTS, key, e, err, sizeof err);
    if (rc == STORE_NOT_FOUND)
        return STORE_STATE_NONE;
    assert_int_equal(rc, STORE_OK);
    return e->state;
}

static void t_created_then_claim_done(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_OK}, .ncreate = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k1", &s, &r, &e), WORKER_DELIVERED);
    assert_string_equal(r.reason, "created");
    assert_int_equal(e.milvus_id, 100);
    assert_int_equal(s.searches, 0);
    store_entry_t got;
    assert_int_equal(state_of(f, "k1", &got), STORE_STATE_DONE);
    assert_string_equal(got.milvus_token, "NEW0");

    script_t s2 = {0};
    assert_int_equal(once(f, "k1", &s2, &r, &e), WORKER_DEDUP_HIT);
    assert_string_equal(r.reason, "claim_done");
    assert_string_equal(e.milvus_token, "NEW0");
    assert_int_equal(s2.creates + s2.searches, 0);
}

/* The key is recorded as done by someone else between the create and the completion: with the
 * same target id it is one record (info, claim_already_done), with another id two records exist
 * (error, claim_conflict). Either way the result is merged and the record delivered. */
static int log_lines(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    int n = 0;
    while (fp && fgets(line, sizeof line, fp))
        n += strstr(line, needle) != NULL;
    if (fp)
        fclose(fp);
    return n;
}

static void t_recorded_meanwhile(void **state)
{
    fx_t *f = *state;
    char path[] = "/tmp/it_worker_create_log_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    log_set_fd(fd);
    script_t same = {.create = {API_OK}, .ncreate = 1, .recorded_meanwhile = 100, .st = f->st,
                     .key = "k-same"};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k-same", &same, &r, &e), WORKER_DELIVERED);
    script_t other = {.create = {API_OK}, .ncreate = 1, .recorded_meanwhile = 777, .st = f->st,
                      .key = "k-other"};
    assert_int_equal(once(f, "k-other", &other, &r, &e), WORKER_DELIVERED);
    log_set_fd(2);
    close(fd);
    assert_int_equal(log_lines(path, "event=claim_already_done"), 1);
    assert_int_equal(log_lines(path, "event=claim_conflict"), 1);
    assert_int_equal(log_lines(path, "level=error"), 1);
    unlink(path);
    store_entry_t got;
    assert_int_equal(state_of(f, "k-same", &got), STORE_STATE_DONE);
    assert_int_equal(got.milvus_id, 100);
    assert_string_equal(got.milvus_token, "NEW0"); /* merged */
}

static void t_ambiguous_not_found_creates_again(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_AMBIGUOUS, API_OK},
                  .create_status = {504},
                  .ncreate = 2,
                  .search = {WORKER_SEARCH_NOT_FOUND},
                  .nsearch = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k2", &s, &r, &e), WORKER_DELIVERED);
    assert_string_equal(r.reason, "created");
    assert_int_equal(s.creates, 2);
    assert_int_equal(s.searches, 1);
    assert_int_equal(r.attempts, 2);
}

static void t_ambiguous_found(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_AMBIGUOUS},
                  .create_status = {500},
                  .ncreate = 1,
                  .search = {WORKER_SEARCH_FOUND},
                  .nsearch = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k3", &s, &r, &e), WORKER_DELIVERED);
    assert_string_equal(r.reason, "found_after_ambiguous");
    assert_string_equal(e.milvus_token, "FOUND0");
    store_entry_t got;
    assert_int_equal(state_of(f, "k3", &got), STORE_STATE_DONE);
    assert_string_equal(got.milvus_token, "FOUND0");
}

/* The search after an ambiguous create fails: AmbiguousCreate, the claim left pending (ours),
 * so whoever takes it over searches first. */
static void t_ambiguous_search_failed_left_pending(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_AMBIGUOUS},
                  .create_status = {502},
                  .ncreate = 1,
                  .search = {WORKER_SEARCH_FAILED},
                  .search_status = {503},
                  .nsearch = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k4", &s, &r, &e), WORKER_DEAD);
    assert_string_equal(r.error_class, "AmbiguousCreate");
    assert_non_null(strstr(r.message, "HttpStatus502"));
    store_entry_t got;
    assert_int_equal(state_of(f, "k4", &got), STORE_STATE_PENDING);
    assert_string_equal(got.owner, f->ctx.owner);
    worker_result_clear(&r);
}

/* Every create ambiguous and nothing found: dead with the create's class, claim released. */
static void t_ambiguous_exhausted(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_AMBIGUOUS, API_AMBIGUOUS, API_AMBIGUOUS},
                  .create_status = {500, 500, 500},
                  .ncreate = 3,
                  .search = {WORKER_SEARCH_NOT_FOUND, WORKER_SEARCH_NOT_FOUND,
                             WORKER_SEARCH_NOT_FOUND},
                  .nsearch = 3};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k5", &s, &r, &e), WORKER_DEAD);
    assert_string_equal(r.error_class, "HttpStatus500");
    assert_int_equal(s.creates, 3); /* MAX_ATTEMPTS creates, never more */
    assert_int_equal(r.attempts, 3);
    assert_int_equal(state_of(f, "k5", &e), STORE_STATE_NONE);
    worker_result_clear(&r);
}

/* A 4xx is followed by a search: found = dedup hit; not found = dead with the 4xx, released,
 * never created again. */
static void t_client_error_searches(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_PERMANENT},
                  .create_status = {409},
                  .ncreate = 1,
                  .search = {WORKER_SEARCH_FOUND},
                  .nsearch = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k6", &s, &r, &e), WORKER_DEDUP_HIT);
    assert_string_equal(r.reason, "found_at_target");
    assert_int_equal(state_of(f, "k6", &e), STORE_STATE_DONE);

    script_t s2 = {.create = {API_PERMANENT},
                   .create_status = {422},
                   .ncreate = 1,
                   .search = {WORKER_SEARCH_NOT_FOUND},
                   .nsearch = 1};
    assert_int_equal(once(f, "k7", &s2, &r, &e), WORKER_DEAD);
    assert_string_equal(r.error_class, "HttpStatus422");
    assert_int_equal(r.http_status, 422);
    assert_int_equal(s2.creates, 1);
    assert_int_equal(state_of(f, "k7", &e), STORE_STATE_NONE);
    worker_result_clear(&r);
}

/* Exhausted retries (not ambiguous) and a 401: no search, claim released. */
static void t_exhausted_and_auth_release(void **state)
{
    fx_t *f = *state;
    script_t s = {.create = {API_RETRIABLE_EXHAUSTED}, .create_status = {429}, .ncreate = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k8", &s, &r, &e), WORKER_DEAD);
    assert_string_equal(r.error_class, "HttpStatus429");
    assert_int_equal(s.searches, 0);
    assert_int_equal(state_of(f, "k8", &e), STORE_STATE_NONE);
    worker_result_clear(&r);
    script_t s2 = {.create = {API_AUTH}, .create_status = {401}, .ncreate = 1};
    assert_int_equal(once(f, "k9", &s2, &r, &e), WORKER_AUTH);
    assert_int_equal(state_of(f, "k9", &e), STORE_STATE_NONE);
    worker_result_clear(&r);
}

/* A live claim of another owner: busy, released, nothing called. */
static void t_busy(void **state)
{
    fx_t *f = *state;
    char err[512];
    store_claim_t cl;
    assert_int_equal(store_claim(f->st, STORE_KIND_CLIENTS, "k10", "other/1", 60000, NULL, &cl,
                                 err, sizeof err),
                     STORE_OK);
    script_t s = {0};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k10", &s, &r, &e), WORKER_RELEASE);
    assert_string_equal(r.reason, "claim_busy");
    assert_int_equal(s.searches + s.creates, 0);
}

static bool lease_over(void *ctx)
{
    return clock_wall_ms() > *(const int64_t *)ctx + 5;
}

/* Expired claims of a dead owner: search first; found = no create; not found = create;
 * failed = AmbiguousCreate with the claim pending. */
static void t_recovered(void **state)
{
    fx_t *f = *state;
    char err[512];
    store_claim_t cl;
    const char *keys[] = {"k11", "k12", "k13"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(store_claim(f->st, STORE_KIND_CLIENTS, keys[i], "dead/1", 1, NULL, &cl,
                                     err, sizeof err),
                         STORE_OK);
    assert_true(testenv_wait_until(lease_over, &cl.entry.lease_until_ms, 10000, 5));
    worker_result_t r;
    store_entry_t e;
    script_t s = {.search = {WORKER_SEARCH_FOUND}, .nsearch = 1};
    assert_int_equal(once(f, "k11", &s, &r, &e), WORKER_DEDUP_HIT);
    assert_string_equal(r.reason, "found_at_target");
    assert_int_equal(s.creates, 0);
    assert_int_equal(state_of(f, "k11", &e), STORE_STATE_DONE);

    script_t s2 = {.search = {WORKER_SEARCH_NOT_FOUND}, .nsearch = 1, .create = {API_OK},
                   .ncreate = 1};
    assert_int_equal(once(f, "k12", &s2, &r, &e), WORKER_DELIVERED);
    assert_int_equal(s2.searches, 1);

    script_t s3 = {.search = {WORKER_SEARCH_FAILED}, .search_status = {503}, .nsearch = 1};
    assert_int_equal(once(f, "k13", &s3, &r, &e), WORKER_DEAD);
    assert_string_equal(r.error_class, "AmbiguousCreate");
    assert_int_equal(s3.creates, 0);
    assert_int_equal(state_of(f, "k13", &e), STORE_STATE_PENDING);
    worker_result_clear(&r);
}

/* DRY_RUN: the search runs, the create is only logged, nothing is written. */
static void t_dry_run(void **state)
{
    fx_t *f = *state;
    f->ctx.dry_run = true;
    script_t s = {.search = {WORKER_SEARCH_NOT_FOUND}, .nsearch = 1};
    worker_result_t r;
    store_entry_t e;
    assert_int_equal(once(f, "k14", &s, &r, &e), WORKER_DELIVERED);
    assert_string_equal(r.reason, "dry_run");
    assert_int_equal(s.creates, 1);
    assert_int_equal(state_of(f, "k14", &e), STORE_STATE_NONE);
    f->ctx.dry_run = false;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(t_created_then_claim_done, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_recorded_meanwhile, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_ambiguous_not_found_creates_again, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(t_ambiguous_found, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_ambiguous_search_failed_left_pending, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(t_ambiguous_exhausted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_client_error_searches, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_exhausted_and_auth_release, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_busy, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_recovered, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(t_dry_run, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
