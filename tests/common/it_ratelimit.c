/* Integration test of ratelimit_ against the real MongoDB-wire database (FerretDB v1 in CI):
 * the sliding-window guarantee across 4 processes, utilisation, penalize after a 429 through
 * api_, usage, the bucket name (hash, never the secret), recovery after the collection is
 * dropped, and a clear error when MongoDB does not answer; blocks of tickets at a high N across
 * processes and threads, their expiry, and a cost per acquisition that does not grow with the
 * tickets already taken (issue 13); a stop requested during the retries of a lost insert race
 * ends the acquisition without another store call. Unique database per run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "api.h"
#include "hash.h"
#include "log.h"
#include "ratelimit.h"
#include "tcpproxy.h"
#include "testenv.h"

#define SECRET "RL-SECRET-KEY-ABCDEF0123456789"
#define BASE "https://api2.ploomes.example"

/* multi-process run */
#define PROCS 4
#define MP_LIMIT 20
#define MP_WINDOW_MS 3000
/* The margin (here 500 ms, the production default until issue 13's third stop) absorbs the
 * time between a ticket's stamp and the request reaching the API. This test used to compare
 * the instants the callers got their tickets back, which include that time: with 200 ms, a
 * machine at load 17 (8 engineers on 2 cores) showed 21 in one window, on the old code and the
 * new alike. It compares the instants the grants were decided now (see grant_t). */
#define MP_MARGIN_MS 500
/* 3 full windows (each N tickets a window + margin after their predecessors: 0, 3.5, 7.0 s)
 * plus 1.4 s for the 4th batch (from 10.5 s): the best schedule still holds 4 windows' worth
 * (a 5th batch could start only at 14 s), with room for a loaded machine's database latency
 * and late wake-ups before the end. */
#define MP_DURATION_MS 11900
#define MP_MAX_TS 4096

static char g_db[96];
static char g_uri[512];

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static mongoc_client_pool_t *pool_new(void)
{
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(g_uri, &error);
    if (!uri)
        fail_msg("bad MongoDB URI %s: %s", g_uri, error.message);
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_uri_destroy(uri);
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    return pool;
}

static ratelimit_t *rl_new_spaced(mongoc_client_pool_t *pool, const char *collection, int limit,
                                  int64_t window_ms, int64_t margin_ms, int64_t spacing_ms)
{
    ratelimit_options_t o = {.pool = pool,
                             .database = g_db,
                             .collection = collection,
                             .base_url = BASE,
                             .secret = SECRET,
                             .limit = limit,
                             .window_ms = window_ms,
                             .margin_ms = margin_ms,
                             .name = "test"};
#ifdef RATELIMIT_HAS_SPACING
    o.spacing_ms = spacing_ms;
#else
    (void)spacing_ms; /* the code before spacing: the window rule alone */
#endif
    char err[512];
    ratelimit_t *rl = ratelimit_new(&o, err, sizeof err);
    if (!rl)
        fail_msg("ratelimit_new: %s", err);
    return rl;
}

/* The production settings: grants spaced S = W/N apart. */
static ratelimit_t *rl_new(mongoc_client_pool_t *pool, const char *collection, int limit,
                           int64_t window_ms, int64_t margin_ms)
{
    return rl_new_spaced(pool, collection, limit, window_ms, margin_ms, 0);
}

/* The window rule alone (no spacing): for the tests of that rule that take several tickets in
 * a row without waiting. */
static ratelimit_t *rl_new_window_only(mongoc_client_pool_t *pool, const char *collection,
                                       int limit, int64_t window_ms, int64_t margin_ms)
{
    return rl_new_spaced(pool, collection, limit, window_ms, margin_ms, -1);
}

static int setup_all(void **state)
{
    (void)state;
    log_init("it_ratelimit", LOG_WARN);
    mongoc_init();
    testenv_unique(g_db, sizeof g_db, "it_rl_");
    /* database names: no '-' trouble, but keep them short and simple */
    for (char *p = g_db; *p; p++)
        if (*p == '-')
            *p = '_';
    testenv_mongo_uri_for_db(g_uri, sizeof g_uri, g_db);
    return 0;
}

static int teardown_all(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_database_t *db = mongoc_client_get_database(c, g_db);
    bson_error_t error;
    mongoc_database_drop(db, &error);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
    mongoc_cleanup();
    return 0;
}

/* ---- the guarantee across processes ------------------------------------------------------- */

typedef struct {
    int64_t end;
} child_hook_t;

static int child_hook(void *ctx, int64_t remaining_ms)
{
    child_hook_t *h = ctx;
    int64_t now = wall_ms();
    if (now >= h->end)
        return 1;
    int64_t slice = remaining_ms;
    if (slice > 50)
        slice = 50;
    if (slice > h->end - now)
        slice = h->end - now;
    struct timespec ts = {0, (long)slice * 1000000L};
    nanosleep(&ts, NULL);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* What the timing tests compare. With B = 1 (every test below but test_blocks_never_exceed_n)
 * a grant is decided when the limiter reads MongoDB's clock for the new block's stamp t and
 * sends the block's insert at once; the caller gets the grant back when that insert returns.
 * The instant compared is the one the grant was decided at: the start of the limiter's own
 * insert of the block, seen through libmongoc's command monitoring in the acquiring thread (no
 * hook in the limiter) and taken on this host's clock, one clock for every process, so a
 * process whose idea of MongoDB's time is wrong (issue 8: a host clock 1.5 s fast when each
 * host stamped with its own clock) still shows its grants early or late. Each grant must have
 * its own insert (a grant without one fails the test).
 * The instant acquire returned is recorded too, and printed: it adds the insert's round trip
 * and whatever time the thread was descheduled, which the limiter cannot shorten and which its
 * margin is there to absorb (ratelimit.h "Clock"). On a loaded 2-core machine (ASan, three runs
 * at once) that delay reached 282 ms, nearly all of it the insert's round trip (the stamp is
 * read before the insert): with every decided gap >= 501 ms (S = 500) the smallest returned
 * gap was 348 ms, with S = 300 it was 104 ms, and the old comparison of returned instants
 * failed the spacing test with a gap of 225 ms. */
typedef struct {
    int64_t decided;  /* this host's ms: the grant's block insert started; 0: no insert seen */
    int64_t returned; /* this host's ms: acquire returned the grant */
} grant_t;

/* The acquiring thread's latest block insert (set by the command monitor, cleared when the
 * grant it decided is recorded). */
static _Thread_local int64_t tl_block_sent;

static void block_insert_started(const mongoc_apm_command_started_t *e)
{
    if (strcmp(mongoc_apm_command_started_get_command_name(e), "insert") != 0)
        return;
    /* a block ({_id, bucket, k, t}), not a pause ({_id, bucket, until}) */
    const bson_t *cmd = mongoc_apm_command_started_get_command(e);
    bson_iter_t it, docs, doc;
    if (bson_iter_init_find(&it, cmd, "documents") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &docs) && bson_iter_next(&docs) &&
        BSON_ITER_HOLDS_DOCUMENT(&docs) && bson_iter_recurse(&docs, &doc) &&
        bson_iter_find(&doc, "k"))
        tl_block_sent = wall_ms();
}

/* Watches the block inserts of every client the pool hands out (before the first pop). */
static void watch_block_inserts(mongoc_client_pool_t *pool)
{
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cbs, block_insert_started);
    assert_true(mongoc_client_pool_set_apm_callbacks(pool, cbs, NULL));
    mongoc_apm_callbacks_destroy(cbs);
}

/* A grant was just returned: its two instants. */
static grant_t grant_now(void)
{
    grant_t g = {.decided = tl_block_sent, .returned = wall_ms()};
    tl_block_sent = 0;
    return g;
}

/* One multi-process run: the account's settings and each process's host clock error. */
typedef struct {
    const char *collection;
    int limit;
    int64_t window_ms, margin_ms;
    int64_t skew_ms[PROCS];  /* ratelimit_options_t.clock_skew_ms of process i */
    int64_t delay_ms[PROCS]; /* process i starts acquiring this much after the others */
    int threads;             /* acquiring threads per process; 0: 1 */
    int64_t expiry_ms;       /* ratelimit_options_t.batch_expiry_ms (0: the default) */
} mp_params_t;

/* The acquiring threads of one child process: they share its limiter and its grant array. */
typedef struct {
    ratelimit_t *rl;
    int64_t end;
    grant_t *grants;
    atomic_size_t *n;
    atomic_int *rc;
} child_thread_t;

static void *child_thread(void *arg)
{
    child_thread_t *c = arg;
    child_hook_t hook = {.end = c->end};
    char err[512];
    while (wall_ms() < c->end) {
        int r = ratelimit_acquire(c->rl, NULL, child_hook, &hook, err, sizeof err);
        if (r == 1)
            break;
        if (r < 0) {
            fprintf(stderr, "child thread: %s\n", err);
            atomic_store(c->rc, 3);
            break;
        }
        grant_t g = grant_now();
        if (g.returned >= c->end)
            break;
        size_t i = atomic_fetch_add(c->n, 1);
        if (i >= MP_MAX_TS)
            break;
        c->grants[i] = g;
    }
    return NULL;
}

/* Runs in a forked child: its own pool (libmongoc is not fork-safe), acquire until the end. */
static int child_run(const char *out_path, int64_t start, int64_t end, const mp_params_t *p,
                     int index)
{
    mongoc_client_pool_t *pool = pool_new();
    watch_block_inserts(pool);
    ratelimit_options_t o = {.pool = pool, .database = g_db, .collection = p->collection,
                             .base_url = BASE, .secret = SECRET, .limit = p->limit,
                             .window_ms = p->window_ms, .margin_ms = p->margin_ms,
                             .name = "mp", .clock_skew_ms = p->skew_ms[index]};
#ifdef RATELIMIT_HAS_BLOCKS
    o.batch_expiry_ms = p->expiry_ms;
#endif
    char err[512];
    ratelimit_t *rl = ratelimit_new(&o, err, sizeof err);
    if (!rl) {
        fprintf(stderr, "child: %s\n", err);
        return 2;
    }
    start += p->delay_ms[index];
    while (wall_ms() < start) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
    static grant_t grants[MP_MAX_TS];
    size_t n = 0;
    int rc = 0;
    if (p->threads > 1) {
        atomic_size_t taken = 0;
        atomic_int trc = 0;
        pthread_t tids[16];
        child_thread_t ct = {.rl = rl, .end = end, .grants = grants, .n = &taken, .rc = &trc};
        int started = 0;
        for (int i = 0; i < p->threads && i < 16; i++, started++)
            if (pthread_create(&tids[i], NULL, child_thread, &ct) != 0)
                break;
        for (int i = 0; i < started; i++)
            pthread_join(tids[i], NULL);
        n = atomic_load(&taken);
        if (n > MP_MAX_TS)
            n = MP_MAX_TS;
        rc = atomic_load(&trc);
        goto write;
    }
    child_hook_t hook = {.end = end};
    while (wall_ms() < end && n < MP_MAX_TS) {
        int r = ratelimit_acquire(rl, NULL, child_hook, &hook, err, sizeof err);
        if (r == 1)
            break;
        if (r < 0) {
            fprintf(stderr, "child: %s\n", err);
            rc = 3;
            break;
        }
        grant_t g = grant_now();
        if (g.returned < end)
            grants[n++] = g;
    }
write:;
    FILE *f = fopen(out_path, "wb");
    if (!f || fwrite(grants, sizeof grants[0], n, f) != n)
        rc = 4;
    if (f)
        fclose(f);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
    return rc;
}

/* The grants of one multi-process run (see grant_t), each array sorted. */
typedef struct {
    size_t n;
    int64_t *decided;      /* malloc'd; 0 for a grant without its own block insert */
    int64_t *returned;     /* malloc'd */
    size_t undecided;      /* grants without their own block insert */
    int64_t max_lag_ms;    /* the longest from a grant's insert to acquire returning it */
    int64_t mean_read_ms;  /* the store's mean round trip for a point read during the run */
    int per_proc[PROCS];   /* how many grants process i got */
} mp_run_t;

static void mp_run_free(mp_run_t *r)
{
    free(r->decided);
    free(r->returned);
}

/* Creates the run's collection before the run (MongoDB error 48: it exists). FerretDB creates
 * a collection on its first insert, which under load took 2.4 s (two runs at once under ASan):
 * the limiter rightly dropped that first grant as too slow (longer than W/2) and the run lost
 * most of its 4 s. A collection in use is created once, long before. */
static void create_collection(const char *name)
{
    mongoc_client_pool_t *pool = pool_new();
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_database_t *db = mongoc_client_get_database(c, g_db);
    bson_error_t error;
    mongoc_collection_t *coll = mongoc_database_create_collection(db, name, NULL, &error);
    bool ok = coll != NULL || error.code == 48;
    mongoc_collection_destroy(coll);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
    if (!ok)
        fail_msg("creating collection %s: %s", name, error.message);
}

/* While the children run: reaps them, and measures the store's round trip for a point read of
 * the run's collection (what the limiter's read before each grant costs under the machine's
 * load, seen from outside the limiter) between start and end. */
typedef struct {
    int procs;
    const pid_t *pids;
    int status[PROCS];
    bool reaped[PROCS];
    mongoc_collection_t *coll;
    int64_t start, end;
    int64_t probe_sum_ms, probes;
} mp_watch_t;

static bool children_done(void *ctx)
{
    mp_watch_t *w = ctx;
    int64_t now = wall_ms();
    if (now >= w->start && now < w->end) {
        bson_t *filter = BCON_NEW("_id", BCON_UTF8("probe"));
        int64_t t0 = testenv_now_ms();
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(w->coll, filter, NULL, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc)) {
        }
        bson_error_t error;
        if (!mongoc_cursor_error(cur, &error)) {
            w->probe_sum_ms += testenv_now_ms() - t0;
            w->probes++;
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(filter);
    }
    bool all = true;
    for (int i = 0; i < w->procs; i++) {
        if (!w->reaped[i] && waitpid(w->pids[i], &w->status[i], WNOHANG) == w->pids[i])
            w->reaped[i] = true;
        all = all && w->reaped[i];
    }
    return all;
}

/* Starts `procs` processes acquiring from one account for duration_ms and collects their
 * grants into *run (mp_run_free() it). Returns how many grants there were. */
static size_t run_processes(int procs, const mp_params_t *p, int64_t duration_ms, mp_run_t *run)
{
    char paths[PROCS][64];
    pid_t pids[PROCS];
    int64_t start = wall_ms() + 5000; /* time for every child to connect (ASan, loaded box) */
    int64_t end = start + duration_ms;
    for (int i = 0; i < procs; i++) {
        snprintf(paths[i], sizeof paths[i], "/tmp/it_rl_%d_%d.bin", (int)getpid(), i);
        fflush(NULL);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            _exit(child_run(paths[i], start, end, p, i));
    }
    /* after the forks: the first test forks before this process has any MongoDB pool */
    create_collection(p->collection);
    memset(run, 0, sizeof *run);
    mongoc_client_pool_t *pool = pool_new();
    mongoc_client_t *client = mongoc_client_pool_pop(pool);
    mp_watch_t w = {.procs = procs, .pids = pids, .start = start, .end = end,
                    .coll = mongoc_client_get_collection(client, g_db, p->collection)};
    bool done = testenv_wait_until(children_done, &w, (int)(end - wall_ms()) + 120000, 100);
    mongoc_collection_destroy(w.coll);
    mongoc_client_pool_push(pool, client);
    mongoc_client_pool_destroy(pool);
    if (!done)
        fail_msg("the children did not end within 2 minutes of the run's end");
    run->mean_read_ms = w.probes ? w.probe_sum_ms / w.probes : 0;
    grant_t *all = calloc(PROCS * MP_MAX_TS, sizeof *all);
    assert_non_null(all);
    size_t total = 0;
    for (int i = 0; i < procs; i++) {
        int status = w.status[i];
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child %d failed (status 0x%x)", i, status);
        FILE *f = fopen(paths[i], "rb");
        assert_non_null(f);
        size_t n = fread(all + total, sizeof *all, MP_MAX_TS, f);
        fclose(f);
        unlink(paths[i]);
        run->per_proc[i] = (int)n;
        total += n;
    }
    run->n = total;
    run->decided = calloc(total + 1, sizeof *run->decided);
    run->returned = calloc(total + 1, sizeof *run->returned);
    assert_non_null(run->decided);
    assert_non_null(run->returned);
    for (size_t i = 0; i < total; i++) {
        run->decided[i] = all[i].decided;
        run->returned[i] = all[i].returned;
        if (all[i].decided == 0)
            run->undecided++;
        else if (all[i].returned - all[i].decided > run->max_lag_ms)
            run->max_lag_ms = all[i].returned - all[i].decided;
    }
    free(all);
    qsort(run->decided, total, sizeof *run->decided, cmp_i64);
    qsort(run->returned, total, sizeof *run->returned, cmp_i64);
    return total;
}

/* The most acquisitions any window of window_ms holds. */
static size_t max_in_any_window(const int64_t *all, size_t total, int64_t window_ms)
{
    size_t max_in_window = 0;
    for (size_t i = 0, j = 0; i < total; i++) {
        while (j < total && all[j] < all[i] + window_ms)
            j++;
        if (j - i > max_in_window)
            max_in_window = j - i;
    }
    return max_in_window;
}

/* How many grants the best schedule can make in duration_ms: N per window + margin (+ E), and,
 * when spaced, one every S (rounded up) within each batch of N. read_ms: the round trip of the
 * read the limiter makes when a grant falls due, before it stamps the grant (0: an idle
 * machine; under load it adds up, one per grant: at 50 ms, 60 grants fit in the 70 of
 * test_window_across_processes). */
static size_t best_schedule(int limit, int64_t window_ms, int64_t margin_ms, int64_t duration_ms,
                            int64_t read_ms)
{
    int64_t s = (window_ms + limit - 1) / limit;
#ifndef RATELIMIT_HAS_SPACING
    s = 0;
#endif
    int64_t *at = calloc((size_t)limit, sizeof *at); /* the last N grants' stamps */
    assert_non_null(at);
    size_t n = 0;
    int64_t prev = 0;
    for (int64_t k = 0;; k++) {
        int64_t t = k == 0 ? 0 : prev + s;
        if (k >= limit && at[k % limit] + window_ms + margin_ms > t)
            t = at[k % limit] + window_ms + margin_ms;
        t += read_ms;
        if (t >= duration_ms)
            break;
        at[k % limit] = prev = t;
        n++;
    }
    free(at);
    return n;
}

static void test_window_across_processes(void **state)
{
    (void)state;
    mp_params_t p = {.collection = "rl_mp", .limit = MP_LIMIT, .window_ms = MP_WINDOW_MS,
                     .margin_ms = MP_MARGIN_MS};
    mp_run_t run;
    size_t total = run_processes(PROCS, &p, MP_DURATION_MS, &run);

    /* the guarantee: no window of MP_WINDOW_MS holds more than MP_LIMIT grants */
    size_t max_in_window = max_in_any_window(run.decided, total, MP_WINDOW_MS);
    size_t max_returned = max_in_any_window(run.returned, total, MP_WINDOW_MS);
    /* utilisation: the most the best schedule (N per window + margin, spaced W/N apart, each
     * grant after one read of the store at the round trip the run measured) could do in the
     * run */
    size_t capacity =
        best_schedule(MP_LIMIT, MP_WINDOW_MS, MP_MARGIN_MS, MP_DURATION_MS, run.mean_read_ms);
    size_t idle_capacity = best_schedule(MP_LIMIT, MP_WINDOW_MS, MP_MARGIN_MS, MP_DURATION_MS, 0);
    double util = (double)total / (double)capacity;
    printf("ratelimit: %d processes, N=%d per %d ms (margin %d ms), run %d ms: %zu acquisitions "
           "(per process %d/%d/%d/%d), max in any window %zu, capacity %zu (%zu with reads of "
           "%lld ms), utilisation %.1f%% (as returned: max in any window %zu, longest "
           "insert-to-return %lld ms)\n",
           PROCS, MP_LIMIT, MP_WINDOW_MS, MP_MARGIN_MS, MP_DURATION_MS, total, run.per_proc[0],
           run.per_proc[1], run.per_proc[2], run.per_proc[3], max_in_window, idle_capacity,
           capacity, (long long)run.mean_read_ms, util * 100.0, max_returned,
           (long long)run.max_lag_ms);
    mp_run_t r = run;
    mp_run_free(&run);
    assert_int_equal(r.undecided, 0); /* B = 1: every grant is a block insert of its own */
    assert_true(max_in_window <= MP_LIMIT);
    /* as the callers (and so the API) saw them: the margin absorbs the time from a grant's
     * insert to its return, so the bound holds whenever that time stayed within the margin;
     * past it, this host was too loaded for the margin and only the decided instants count */
    if (r.max_lag_ms < MP_MARGIN_MS)
        assert_true(max_returned <= MP_LIMIT);
    assert_true(util >= 0.90);
    for (int i = 0; i < PROCS; i++)
        assert_true(r.per_proc[i] > 0); /* everybody got a share */
}

/* Issue 8 item 6: three processes, one of them on a host whose clock is 1.5 s fast. With each
 * host's clock stamping the tickets, the fast one took slots a second early (46 grants of 30 in
 * one window); stamped with MongoDB's clock, no window ever holds more than N. The fast process
 * starts a second after the others, so that the first window's tickets are theirs: it is their
 * stamps that a fast clock reads as a second older than they are. */
#define SKEW_PROCS 3
#define SKEW_LIMIT 10
#define SKEW_WINDOW_MS 3000
#define SKEW_MS 1500
/* batches from 0, 4 and 8 s (window + the default margin of 1 s): three windows' worth */
#define SKEW_DURATION_MS 8500

static void test_window_with_a_fast_host_clock(void **state)
{
    (void)state;
    mp_params_t p = {.collection = "rl_skew", .limit = SKEW_LIMIT, .window_ms = SKEW_WINDOW_MS,
                     .margin_ms = -1 /* the default, 1 s */, .skew_ms = {0, 0, SKEW_MS},
                     .delay_ms = {0, 0, 1000}};
    mp_run_t run;
    size_t total = run_processes(SKEW_PROCS, &p, SKEW_DURATION_MS, &run);
    /* on this host's clock, the one clock of every process (see grant_t) */
    size_t max_in_window = max_in_any_window(run.decided, total, SKEW_WINDOW_MS);
    printf("ratelimit with one host clock %d ms fast: %d processes, N=%d per %d ms, run %d ms: "
           "%zu acquisitions (per process %d/%d/%d), max in any window %zu (as returned: %zu, "
           "longest insert-to-return %lld ms)\n",
           SKEW_MS, SKEW_PROCS, SKEW_LIMIT, SKEW_WINDOW_MS, SKEW_DURATION_MS, total,
           run.per_proc[0], run.per_proc[1], run.per_proc[2], max_in_window,
           max_in_any_window(run.returned, total, SKEW_WINDOW_MS), (long long)run.max_lag_ms);
    size_t undecided = run.undecided;
    size_t max_returned = max_in_any_window(run.returned, total, SKEW_WINDOW_MS);
    int64_t max_lag_ms = run.max_lag_ms;
    mp_run_free(&run);
    assert_int_equal(undecided, 0);
    assert_true(max_in_window <= SKEW_LIMIT);
    if (max_lag_ms < 1000) /* within the default margin: also as returned (see above) */
        assert_true(max_returned <= SKEW_LIMIT);
    assert_true(total >= 2 * SKEW_LIMIT); /* and the budget is still used */
}

/* Issue 13: at a high N the limiter hands out blocks of B tickets (one document per block);
 * several processes with several threads each must still never exceed N in any window.
 * N = 400 per 2 s: B = 20, M = 20 blocks a window; E = 500 ms and the default margin of 1 s,
 * so a block k may be inserted 3.5 s (W + margin + E) after block k - 20. */
#define HN_PROCS 3
#define HN_THREADS 4
#define HN_LIMIT 400
#define HN_WINDOW_MS 2000
#define HN_EXPIRY_MS 500
/* batches from 0, 3.5 and 7.0 s: three windows' worth */
#define HN_DURATION_MS 7500

static void test_blocks_never_exceed_n(void **state)
{
    (void)state;
    mp_params_t p = {.collection = "rl_blocks", .limit = HN_LIMIT, .window_ms = HN_WINDOW_MS,
                     .margin_ms = -1, .threads = HN_THREADS, .expiry_ms = HN_EXPIRY_MS};
    mp_run_t run;
    size_t total = run_processes(HN_PROCS, &p, HN_DURATION_MS, &run);
    /* B = 20: most grants are tickets of a block taken without a round trip (no insert of
     * their own): compared when acquire returned them */
    size_t max_in_window = max_in_any_window(run.returned, total, HN_WINDOW_MS);
    int per_proc[PROCS];
    memcpy(per_proc, run.per_proc, sizeof per_proc);
    mp_run_free(&run);

    /* how the grants were stored: blocks of 20 (`n`), far fewer documents than grants */
    mongoc_client_pool_t *pool = pool_new();
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "rl_blocks");
    bson_t *q = BCON_NEW("k", "{", "$exists", BCON_BOOL(true), "}");
    bson_error_t error;
    int64_t docs = mongoc_collection_count_documents(coll, q, NULL, NULL, NULL, &error);
    bson_destroy(q);
    q = BCON_NEW("n", BCON_INT32(20));
    int64_t blocks = mongoc_collection_count_documents(coll, q, NULL, NULL, NULL, &error);
    bson_destroy(q);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
    printf("ratelimit blocks: %d processes x %d threads, N=%d per %d ms, run %d ms: %zu "
           "acquisitions (per process %d/%d/%d), max in any window %zu; %lld documents, %lld of "
           "them blocks of 20\n",
           HN_PROCS, HN_THREADS, HN_LIMIT, HN_WINDOW_MS, HN_DURATION_MS, total, per_proc[0],
           per_proc[1], per_proc[2], max_in_window, (long long)docs, (long long)blocks);
    assert_true(max_in_window <= HN_LIMIT);
    assert_true(total >= HN_LIMIT); /* the budget is used */
    assert_true(blocks > 0);
    assert_true(docs > 0 && (size_t)docs * 4 < total);
}

/* ---- spacing: no herd (after a pause or ever) -------------------------------------------- */

/* Takes `count` tickets, waiting for each as the limiter says (spaced grants). */
static void take_waiting(ratelimit_t *rl, int count)
{
    char err[512];
    for (int i = 0; i < count; i++)
        if (ratelimit_acquire(rl, NULL, NULL, NULL, err, sizeof err) != 0)
            fail_msg("ticket %d: acquire failed: %s", i, err);
}


/* The smallest gap between two consecutive instants of a sorted array (INT64_MAX when < 2). */
static int64_t min_gap(const int64_t *all, size_t total)
{
    int64_t gap = INT64_MAX;
    for (size_t i = 1; i < total; i++)
        if (all[i] - all[i - 1] < gap)
            gap = all[i] - all[i - 1];
    return gap;
}

/* Grants are spaced S = W/N apart across processes and threads, on MongoDB's clock. The
 * instants compared are those the grants were decided at, on this host's clock (see grant_t),
 * so a gap may look shorter than S by the two processes' clock estimate errors (half their
 * samples' round trips: a few ms) plus a thread descheduled between reading the clock and
 * sending the insert on a loaded machine: SP_ALLOW_MS. (Compared when acquire returned them,
 * the insert's round trip came on top: a 225 ms gap on a loaded machine.) Before spacing, all N
 * of a window went at once (gaps of 0-1 ms). N = 8 per 4 s: S = 500 ms. */
#define SP_PROCS 3
#define SP_THREADS 4
#define SP_LIMIT 8
#define SP_WINDOW_MS 4000
#define SP_S_MS (SP_WINDOW_MS / SP_LIMIT)
#define SP_ALLOW_MS 200
#define SP_DURATION_MS 4000

static void test_spacing_across_processes(void **state)
{
    (void)state;
    mp_params_t p = {.collection = "rl_spacing", .limit = SP_LIMIT, .window_ms = SP_WINDOW_MS,
                     .margin_ms = -1, .threads = SP_THREADS};
    mp_run_t run;
    size_t total = run_processes(SP_PROCS, &p, SP_DURATION_MS, &run);
    int64_t gap = min_gap(run.decided, total);
    size_t max_in_window = max_in_any_window(run.decided, total, SP_WINDOW_MS);
    printf("ratelimit spacing: %d processes x %d threads, N=%d per %d ms (S=%d ms), run %d ms: "
           "%zu acquisitions (per process %d/%d/%d), smallest gap %lld ms, max in any window "
           "%zu (as returned: smallest gap %lld ms, longest insert-to-return %lld ms)\n",
           SP_PROCS, SP_THREADS, SP_LIMIT, SP_WINDOW_MS, SP_S_MS, SP_DURATION_MS, total,
           run.per_proc[0], run.per_proc[1], run.per_proc[2], (long long)gap, max_in_window,
           (long long)min_gap(run.returned, total), (long long)run.max_lag_ms);
    size_t undecided = run.undecided;
    mp_run_free(&run);
    assert_int_equal(undecided, 0);
    assert_true(total >= SP_LIMIT - 2); /* one every S: 8 in the run, less a slow start */
    assert_true(max_in_window <= SP_LIMIT);
    if (gap < SP_S_MS - SP_ALLOW_MS)
        fail_msg("two grants %lld ms apart, spacing is %d ms", (long long)gap, SP_S_MS);
}

/* After a pause (a 429's Retry-After) the threads waiting on it get their tickets one every S,
 * not all at once (the herd that drew 429s again from an API that wants calls spaced). One
 * process, 8 threads; N = 10 per 4 s (S = 400 ms), one ticket used before a pause of 1 s: the
 * window rule alone would let the other 9 go the moment the pause ends. The grants are compared
 * at the instants they were decided (see grant_t). */
#define PP_THREADS 8
#define PP_LIMIT 10
#define PP_WINDOW_MS 4000
#define PP_S_MS (PP_WINDOW_MS / PP_LIMIT)
#define PP_ALLOW_MS 200
#define PP_PAUSE_MS 1000
#define PP_AFTER_MS 2600 /* grants at 0, 0.4, ... 2.4 s after the pause: 7 */

static void test_no_burst_after_a_pause(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    watch_block_inserts(pool); /* the instants compared: see grant_t */
    ratelimit_t *rl = rl_new(pool, "rl_herd", PP_LIMIT, PP_WINDOW_MS, 0);
    char err[512];
    take_waiting(rl, 1);
    int64_t before = wall_ms();
    assert_int_equal(ratelimit_penalize(rl, PP_PAUSE_MS, err, sizeof err), 0);
    int64_t pause_end = before + PP_PAUSE_MS; /* on this host's clock, about */

    static grant_t grants[MP_MAX_TS];
    static int64_t stamps[MP_MAX_TS];
    atomic_size_t taken = 0;
    atomic_int trc = 0;
    child_thread_t ct = {.rl = rl, .end = pause_end + PP_AFTER_MS, .grants = grants,
                         .n = &taken, .rc = &trc};
    pthread_t tids[PP_THREADS];
    for (int i = 0; i < PP_THREADS; i++)
        assert_int_equal(pthread_create(&tids[i], NULL, child_thread, &ct), 0);
    for (int i = 0; i < PP_THREADS; i++)
        pthread_join(tids[i], NULL);
    assert_int_equal(atomic_load(&trc), 0);
    size_t n = atomic_load(&taken);
    if (n > MP_MAX_TS)
        n = MP_MAX_TS;
    for (size_t i = 0; i < n; i++) {
        if (grants[i].decided == 0)
            fail_msg("grant %zu without a block insert of its own (B = 1)", i);
        stamps[i] = grants[i].decided;
    }
    qsort(stamps, n, sizeof stamps[0], cmp_i64);
    int64_t gap = min_gap(stamps, n);
    printf("ratelimit after a pause of %d ms: %d threads, N=%d per %d ms (S=%d ms): %zu grants "
           "in the %d ms after it, first %lld ms after its end, smallest gap %lld ms\n",
           PP_PAUSE_MS, PP_THREADS, PP_LIMIT, PP_WINDOW_MS, PP_S_MS, n, PP_AFTER_MS,
           n ? (long long)(stamps[0] - pause_end) : -1LL, (long long)gap);
    assert_true(n >= 3);
    assert_true(stamps[0] >= pause_end - 50); /* the pause held (clock estimates: a few ms) */
    if (gap < PP_S_MS - PP_ALLOW_MS)
        fail_msg("two grants %lld ms apart after the pause, spacing is %d ms", (long long)gap,
                 PP_S_MS);
    /* k-th grant after the pause not before the first + k*S (less the allowance) */
    for (size_t k = 1; k < n; k++)
        if (stamps[k] < stamps[0] + (int64_t)k * PP_S_MS - PP_ALLOW_MS)
            fail_msg("grant %zu came %lld ms after the first: a burst", k,
                     (long long)(stamps[k] - stamps[0]));
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

/* ---- cost per acquisition (issue 13) ------------------------------------------------------ */

/* Counts the data commands (find, getMore, insert, delete, ...) a pool sends and the documents
 * their replies carry, through libmongoc's command monitoring: it sees what the limiter does
 * without any hook in it (the clock's `hello` and the `ping` of ratelimit_new are left out). */
typedef struct {
    atomic_ullong commands;
    atomic_ullong docs;
} apm_count_t;

static unsigned long long batch_len(const bson_t *reply, const char *path)
{
    bson_iter_t it, found, arr;
    if (!bson_iter_init(&it, reply) || !bson_iter_find_descendant(&it, path, &found) ||
        !BSON_ITER_HOLDS_ARRAY(&found) || !bson_iter_recurse(&found, &arr))
        return 0;
    unsigned long long n = 0;
    while (bson_iter_next(&arr))
        n++;
    return n;
}

static void apm_succeeded(const mongoc_apm_command_succeeded_t *e)
{
    apm_count_t *c = mongoc_apm_command_succeeded_get_context(e);
    const char *name = mongoc_apm_command_succeeded_get_command_name(e);
    static const char *const data_cmds[] = {"find", "getMore", "insert", "delete", "update",
                                            "findAndModify", "aggregate", "count"};
    bool data = false;
    for (size_t i = 0; i < sizeof data_cmds / sizeof data_cmds[0]; i++)
        if (strcmp(name, data_cmds[i]) == 0)
            data = true;
    if (!data)
        return;
    const bson_t *reply = mongoc_apm_command_succeeded_get_reply(e);
    atomic_fetch_add(&c->commands, 1);
    atomic_fetch_add(&c->docs,
                     batch_len(reply, "cursor.firstBatch") + batch_len(reply, "cursor.nextBatch"));
}

static mongoc_client_pool_t *counted_pool_new(apm_count_t *count)
{
    mongoc_client_pool_t *pool = pool_new();
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_succeeded_cb(cbs, apm_succeeded);
    assert_true(mongoc_client_pool_set_apm_callbacks(pool, cbs, count));
    mongoc_apm_callbacks_destroy(cbs);
    return pool;
}

/* Takes `count` tickets; fails the test when one is refused (the budget is far from spent). */
static void take(ratelimit_t *rl, int count)
{
    char err[512];
    for (int i = 0; i < count; i++) {
        int64_t wait = 0;
        int r = ratelimit_try_acquire(rl, &wait, err, sizeof err);
        if (r != 1)
            fail_msg("ticket %d: try_acquire returned %d (wait %lld ms) %s", i, r,
                     (long long)wait, r < 0 ? err : "");
    }
}

typedef struct {
    double commands, docs; /* per acquisition */
} cost_t;

static cost_t measure(ratelimit_t *rl, apm_count_t *count, int acquisitions, bool wait)
{
    unsigned long long c0 = atomic_load(&count->commands), d0 = atomic_load(&count->docs);
    if (wait)
        take_waiting(rl, acquisitions);
    else
        take(rl, acquisitions);
    cost_t cost = {(double)(atomic_load(&count->commands) - c0) / acquisitions,
                   (double)(atomic_load(&count->docs) - d0) / acquisitions};
    return cost;
}

/* The read of every ticket of the window before each acquisition made its cost grow with the
 * tickets already taken (up to 2N documents per call: 29 records/s with 32 threads in flight
 * against 53 with one). Now: the blocks newer than the process's hint and the predecessor. */
static void test_cost_does_not_grow_with_tickets_taken(void **state)
{
    (void)state;
    apm_count_t count = {0, 0};
    mongoc_client_pool_t *pool = counted_pool_new(&count);

    /* a production-size block (B = 1: N * 100 ms / W < 2): one document per request. The
     * window rule alone: spaced, 250 tickets would take 30 s (the spacing adds no round trip:
     * the newest block is among those read anyway). */
    ratelimit_t *rl = rl_new_window_only(pool, "rl_cost1", 500, 60000, 0);
    take(rl, 10);
    cost_t early = measure(rl, &count, 30, false);
    take(rl, 210);
    cost_t late = measure(rl, &count, 30, false);
    printf("ratelimit cost, N=500/min: after 10 tickets %.2f commands and %.2f documents read "
           "per acquisition, after 250 %.2f and %.2f\n",
           early.commands, early.docs, late.commands, late.docs);
    assert_true(early.commands <= 3.0 && late.commands <= 3.0);
    assert_true(early.docs <= 4.0 && late.docs <= 4.0);
    ratelimit_free(rl);

    /* the "no limit" setting of the benchmark: 100,000 a minute */
    /* spaced (0.6 ms apart, blocks of 166 every 100 ms): waiting for a ticket of the process's
     * block costs no round trip */
    rl = rl_new(pool, "rl_cost2", 100000, 60000, 0);
    take_waiting(rl, 10);
    early = measure(rl, &count, 200, true);
    take_waiting(rl, 400);
    late = measure(rl, &count, 200, true);
    printf("ratelimit cost, N=100000/min: after 10 tickets %.3f commands and %.3f documents "
           "read per acquisition, after 610 %.3f and %.3f\n",
           early.commands, early.docs, late.commands, late.docs);
    /* blocks of 166: a refill (2-3 commands) every 166 acquisitions */
    assert_true(early.commands <= 0.1 && late.commands <= 0.1);
    assert_true(early.docs <= 0.1 && late.docs <= 0.1);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

static bool wall_clock_past(void *ctx) { return wall_ms() >= *(const int64_t *)ctx; }

/* One pause document per 429 (ratelimit_penalize): they stay until the clean-up, so during a
 * storm of 429s every acquisition read all of them (found with MILVUS_RATE_PER_MIN above what
 * the API allows: the worker's RSS grew to 135 MB and its rate fell tenfold). Pauses that have
 * ended are not read now. */
static void test_cost_does_not_grow_with_ended_pauses(void **state)
{
    (void)state;
    apm_count_t count = {0, 0};
    mongoc_client_pool_t *pool = counted_pool_new(&count);
    ratelimit_t *rl = rl_new_window_only(pool, "rl_pauses", 500, 60000, 0);
    char err[512];
    int64_t last_until = 0;
    for (int i = 1; i <= 400; i++) { /* 400 short pauses, each ending at a distinct instant */
        assert_int_equal(ratelimit_penalize(rl, i, err, sizeof err), 0);
        last_until = wall_ms() + i;
    }
    int64_t over_at = last_until + 1500; /* every pause over, and the read's second of slack */
    assert_true(testenv_wait_until(wall_clock_past, &over_at, 30000, 50));
    ratelimit_free(rl); /* a fresh process: no local pause left */
    rl = rl_new_window_only(pool, "rl_pauses", 500, 60000, 0);
    take(rl, 2);
    cost_t cost = measure(rl, &count, 20, false);
    printf("ratelimit cost after 400 ended pauses: %.2f commands and %.2f documents read per "
           "acquisition\n", cost.commands, cost.docs);
    assert_true(cost.commands <= 3.0);
    assert_true(cost.docs <= 4.0);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

#ifdef RATELIMIT_HAS_BLOCKS
/* A block's tickets are used at most E after its stamp: the rest are dropped, the next request
 * inserts a new block (and usage counts both blocks whole). A 429 drops them at once. */
static void test_expired_block_tickets_are_not_used(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    ratelimit_options_t o = {.pool = pool, .database = g_db, .collection = "rl_expiry",
                             .base_url = BASE, .secret = SECRET, .limit = 400,
                             .window_ms = 2000, .margin_ms = 0, .name = "test",
                             .batch_expiry_ms = 300};
    char err[512];
    ratelimit_t *rl = ratelimit_new(&o, err, sizeof err);
    assert_non_null(rl);
    int batch = 0, blocks = 0;
    int64_t expiry = 0;
    ratelimit_layout(rl, &batch, &blocks, &expiry);
    assert_int_equal(batch, 20);
    assert_int_equal(blocks, 20);
    assert_int_equal(expiry, 300);

    int64_t t0 = wall_ms();
    take_waiting(rl, 5); /* spaced 5 ms apart */
    ratelimit_stats_t st;
    ratelimit_stats(rl, &st);
    int64_t took = wall_ms() - t0;
    assert_int_equal(st.grants, 5);
    assert_int_equal(st.expired, 0);
    if (took < 300) /* a loaded machine may already have let the first block expire */
        assert_int_equal(st.blocks, 1);
    int used = 0, limit = 0;
    assert_int_equal(ratelimit_usage(rl, &used, &limit, err, sizeof err), 0);
    assert_int_equal(used, 20 * (int)st.blocks);
    assert_int_equal(limit, 400);

    /* wait until the block is older than E (on this host's clock, plus slack for MongoDB's) */
    while (wall_ms() < t0 + took + 300 + 100) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    ratelimit_stats_t before;
    ratelimit_stats(rl, &before);
    take_waiting(rl, 1);
    ratelimit_stats(rl, &st);
    assert_int_equal(st.blocks, before.blocks + 1); /* a new block, not an old ticket */
    assert_int_equal(st.expired, before.expired + (20 * before.blocks - before.grants));
    assert_true(st.round_trips > before.round_trips);
    assert_int_equal(ratelimit_usage(rl, &used, &limit, err, sizeof err), 0);
    assert_int_equal(used, 20 * (int)st.blocks);

    /* a 429 in this process: the block's remaining tickets are not used during the pause */
    assert_int_equal(ratelimit_penalize(rl, 5000, err, sizeof err), 0);
    int64_t wait = 0;
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 0);
    assert_true(wait > 3000 && wait <= 5000);
    ratelimit_stats(rl, &before);
    assert_int_equal(before.blocks, st.blocks);
    assert_int_equal(before.grants, st.grants);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}
#endif

/* ---- single-process behaviour ------------------------------------------------------------- */

static void test_basic_wait_and_usage(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    /* a 5 s window: a late wake-up on a loaded machine stays far from a whole extra window */
    ratelimit_t *rl = rl_new_window_only(pool, "rl_basic", 3, 5000, 0);
    char err[512];
    int64_t wait = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 1);
    int64_t t0 = wall_ms();
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 0);
    assert_true(wait >= 1 && wait <= 5000);
    int used = -1, limit = -1;
    assert_int_equal(ratelimit_usage(rl, &used, &limit, err, sizeof err), 0);
    assert_int_equal(used, 3);
    assert_int_equal(limit, 3);
    /* blocking acquire returns once the first ticket is a window old */
    assert_int_equal(ratelimit_acquire(rl, NULL, NULL, NULL, err, sizeof err), 0);
    int64_t took = wall_ms() - t0;
    if (took < wait - 5 || took > wait + 3000)
        fail_msg("acquire waited %lld ms, expected about %lld", (long long)took,
                 (long long)wait);

    /* the stop flag ends a wait */
    volatile sig_atomic_t stop = 1;
    assert_int_equal(ratelimit_acquire(rl, &stop, NULL, NULL, err, sizeof err), 1);

    /* a second limiter on the same account shares the budget (same bucket); a long window so
     * that nothing frees up while the test runs */
    ratelimit_t *share1 = rl_new_window_only(pool, "rl_share", 3, 60000, 0);
    ratelimit_t *share2 = rl_new_window_only(pool, "rl_share", 3, 60000, 0);
    assert_string_equal(ratelimit_bucket(share1), ratelimit_bucket(share2));
    assert_int_equal(ratelimit_try_acquire(share1, &wait, err, sizeof err), 1);
    assert_int_equal(ratelimit_try_acquire(share2, &wait, err, sizeof err), 1);
    assert_int_equal(ratelimit_try_acquire(share1, &wait, err, sizeof err), 1);
    assert_int_equal(ratelimit_try_acquire(share2, &wait, err, sizeof err), 0);
    assert_true(wait > 55000 && wait <= 60000);
    assert_int_equal(ratelimit_try_acquire(share1, &wait, err, sizeof err), 0);
    ratelimit_free(share1);
    ratelimit_free(share2);

    /* the collection disappears (an operator wiped it): the limiter starts over */
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "rl_basic");
    bson_error_t error;
    assert_true(mongoc_collection_drop(coll, &error));
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(pool, c);
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 1);

    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

/* A ticket that vanished (deleted by hand, partial wipe) must not hand out a free slot: its
 * successor N tickets later waits a full window from the newest ticket seen. */
static void test_missing_predecessor_is_not_free(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    ratelimit_t *rl = rl_new_window_only(pool, "rl_gap", 2, 60000, 0);
    char err[512];
    int64_t wait = 0;
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 1); /* k=0 */
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 1); /* k=1 */
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 0);
    assert_true(wait > 55000);

    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "rl_gap");
    char id[128];
    snprintf(id, sizeof id, "%s:0", ratelimit_bucket(rl));
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(id));
    bson_t reply;
    bson_error_t error;
    assert_true(mongoc_collection_delete_one(coll, sel, NULL, &reply, &error));
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, &reply, "deletedCount"));
    assert_int_equal(bson_iter_as_int64(&it), 1);
    bson_destroy(&reply);
    bson_destroy(sel);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(pool, c);

    /* same limiter and a fresh one (no hint): both still wait about a window */
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 0);
    assert_true(wait > 55000 && wait <= 60000);
    ratelimit_t *fresh = rl_new_window_only(pool, "rl_gap", 2, 60000, 0);
    assert_int_equal(ratelimit_try_acquire(fresh, &wait, err, sizeof err), 0);
    /* its estimate of MongoDB's clock may differ from rl's by half their samples' round trips */
    assert_true(wait > 55000 && wait <= 60250);
    int used = -1, limit = -1;
    assert_int_equal(ratelimit_usage(fresh, &used, &limit, err, sizeof err), 0);
    assert_int_equal(used, 1);
    ratelimit_free(fresh);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

static void test_bucket_is_a_hash(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    ratelimit_t *rl = rl_new(pool, "rl_hash", 2, 1000, 0);
    char want[HASH_HEX_SIZE];
    const char material[] = BASE "|" SECRET;
    assert_int_equal(hash_sha256_hex(material, strlen(material), want), 0);
    assert_string_equal(ratelimit_bucket(rl), want);
    char err[512];
    int64_t wait;
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 1);
    assert_int_equal(ratelimit_penalize(rl, 10, err, sizeof err), 0);

    /* nothing stored anywhere holds the secret */
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "rl_hash");
    bson_t *all = bson_new();
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, all, NULL, NULL);
    const bson_t *doc;
    int docs = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        char *json = bson_as_relaxed_extended_json(doc, NULL);
        assert_null(strstr(json, SECRET));
        assert_non_null(strstr(json, want));
        bson_free(json);
        docs++;
    }
    assert_int_equal(docs, 2); /* one ticket, one pause */
    mongoc_cursor_destroy(cur);
    bson_destroy(all);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(pool, c);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

static void test_penalize(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    ratelimit_t *rl = rl_new(pool, "rl_pen", 100, 60000, 0);
    char err[512];
    int64_t wait = 0;
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 1);
    /* 3 s: the database round trips between penalize and try_acquire may take a while on a
     * loaded machine */
    assert_int_equal(ratelimit_penalize(rl, 3000, err, sizeof err), 0);
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 0);
    assert_true(wait > 1500 && wait <= 3000);
    /* the pause only moves later */
    assert_int_equal(ratelimit_penalize(rl, 100, err, sizeof err), 0);
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), 0);
    assert_true(wait > 1000);
    int64_t t0 = wall_ms();
    assert_int_equal(ratelimit_acquire(rl, NULL, NULL, NULL, err, sizeof err), 0);
    assert_true(wall_ms() - t0 >= wait - 5);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

/* Issue 8 item 13: two 429s at once, a long pause and a short one: the long one must hold.
 * (An upsert with $max is a read then a write on FerretDB: both read the old pause, and the
 * short one could be written last.) Several rounds, each on its own account, each starting with
 * an earlier pause so that both writers find a document to update. */
#define PEN_ROUNDS 12

typedef struct {
    ratelimit_t *rl;
    int64_t ms;
    pthread_barrier_t *go;
    int rc;
} pen_t;

static void *penalize_at_once(void *arg)
{
    pen_t *p = arg;
    char err[256];
    pthread_barrier_wait(p->go);
    p->rc = ratelimit_penalize(p->rl, p->ms, err, sizeof err);
    return NULL;
}

static void test_concurrent_penalties_keep_the_longer(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    char err[512];
    for (int round = 0; round < PEN_ROUNDS; round++) {
        char base[64];
        snprintf(base, sizeof base, "%s/round%d", BASE, round);
        ratelimit_options_t o = {.pool = pool, .database = g_db, .collection = "rl_penrace",
                                 .base_url = base, .secret = SECRET, .limit = 100,
                                 .window_ms = 60000, .margin_ms = 0, .name = "pen"};
        ratelimit_t *a = ratelimit_new(&o, err, sizeof err);
        ratelimit_t *b = ratelimit_new(&o, err, sizeof err); /* "another process" */
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(ratelimit_penalize(a, 1, err, sizeof err), 0);
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        pen_t longp = {a, 60000, &go, -1}, shortp = {b, 2, &go, -1};
        pthread_t t1, t2;
        assert_int_equal(pthread_create(&t1, NULL, penalize_at_once, &longp), 0);
        assert_int_equal(pthread_create(&t2, NULL, penalize_at_once, &shortp), 0);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        pthread_barrier_destroy(&go);
        assert_int_equal(longp.rc, 0);
        assert_int_equal(shortp.rc, 0);
        int64_t wait = 0;
        assert_int_equal(ratelimit_try_acquire(a, &wait, err, sizeof err), 0);
        if (wait < 50000)
            fail_msg("round %d: the short pause won (wait %lld ms)", round, (long long)wait);
        ratelimit_free(a);
        ratelimit_free(b);
    }
    mongoc_client_pool_destroy(pool);
}

/* ---- api_ + ratelimit_: a 429 slows everyone down ----------------------------------------- */

static int g_hits;

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    if (!*con_cls) {
        *con_cls = conn;
        return MHD_YES;
    }
    int hit = __atomic_add_fetch(&g_hits, 1, __ATOMIC_SEQ_CST);
    const char *body = hit == 1 ? "{\"value\":\"slow down\"}" : "{\"value\":[]}";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (hit == 1)
        MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result rc = MHD_queue_response(conn, hit == 1 ? 429 : 200, r);
    MHD_destroy_response(r);
    return rc;
}

static void test_api_429_penalizes(void **state)
{
    (void)state;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handler,
        NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_END);
    assert_non_null(d);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d",
             MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);

    mongoc_client_pool_t *pool = pool_new();
    ratelimit_options_t ro = {.pool = pool, .database = g_db, .collection = "rl_api",
                              .base_url = base, .secret = SECRET, .limit = 50,
                              .window_ms = 60000, .margin_ms = 0, .name = "ploomes"};
    char err[512];
    ratelimit_t *rl = ratelimit_new(&ro, err, sizeof err);
    assert_non_null(rl);
    ratelimit_t *other = ratelimit_new(&ro, err, sizeof err); /* "another process" */
    assert_non_null(other);
    api_options_t ao = {.kind = API_PLOOMES, .base_url = base, .secret = SECRET,
                        .max_attempts = 3, .retry_base_ms = 0, .retry_max_ms = 5000,
                        .ratelimit = rl};
    api_t *api = api_new(&ao, err, sizeof err);
    assert_non_null(api);
    api_result_t r = {0};
    int64_t t0 = wall_ms();
    assert_int_equal(api_request(api, HTTP_GET, "/Contacts", NULL, API_IDEMPOTENT, &r), API_OK);
    assert_int_equal(r.attempts, 2);
    assert_true(wall_ms() - t0 >= 950);
    assert_int_equal(g_hits, 2);
    int used = 0, limit = 0;
    assert_int_equal(ratelimit_usage(other, &used, &limit, err, sizeof err), 0);
    assert_int_equal(used, 2); /* one ticket per attempt */

    /* the 429 paused the whole account: a fresh pause of 1 s was written, the other limiter
     * would have waited. Push it again and check the other one sees it. */
    assert_int_equal(ratelimit_penalize(rl, 3000, err, sizeof err), 0);
    int64_t wait = 0;
    assert_int_equal(ratelimit_try_acquire(other, &wait, err, sizeof err), 0);
    /* two processes' estimates of MongoDB's clock differ by up to half of their samples' round
     * trips (a few ms here; more under ASan on a loaded machine) */
    assert_true(wait > 1500 && wait <= 3250);

    api_result_clear(&r);
    api_free(api);
    ratelimit_free(other);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
    MHD_stop_daemon(d);
}

/* Counts its calls and gives up on the third: a worker's stop. */
static int give_up_on_third(void *ctx, int64_t remaining_ms)
{
    (void)remaining_ms;
    int *calls = ctx;
    return ++*calls >= 3;
}

static void note_store_state(void *ctx, bool up)
{
    (void)ctx;
    (void)up;
}

/* The database fails after start (here: a collection name it refuses): try_acquire reports an
 * error, and api_request waits for MongoDB (not an HTTP attempt, nothing sent) until stopped
 * (issue 8 item 7; api.h "Shared rate limit and MongoDB"). */
static void test_database_error_is_retriable(void **state)
{
    (void)state;
    mongoc_client_pool_t *pool = pool_new();
    ratelimit_t *rl = rl_new(pool, "bad$name", 5, 1000, 0);
    char err[512];
    int64_t wait;
    assert_int_equal(ratelimit_try_acquire(rl, &wait, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad$name"));
    assert_int_equal(ratelimit_acquire(rl, NULL, NULL, NULL, err, sizeof err), -1);
    int used, limit;
    assert_int_equal(ratelimit_usage(rl, &used, &limit, err, sizeof err), -1);
    assert_int_equal(ratelimit_penalize(rl, 100, err, sizeof err), -1);

    /* nothing listens on port 1: an HTTP attempt would say CurlConnect */
    int calls = 0;
    api_options_t ao = {.kind = API_MILVUS, .base_url = "http://127.0.0.1:1/api",
                        .secret = SECRET, .max_attempts = 2, .retry_base_ms = 1,
                        .retry_max_ms = 10, .ratelimit = rl, .wait_hook = give_up_on_third,
                        .wait_ctx = &calls, .on_store_state = note_store_state,
                        .store_retry_ms = 10};
    api_t *api = api_new(&ao, err, sizeof err);
    assert_non_null(api);
    api_result_t r = {0};
    assert_int_equal(api_request(api, HTTP_GET, "/cliente/busca", NULL, API_IDEMPOTENT, &r),
                     API_STOPPED);
    assert_int_equal(calls, 3);
    assert_int_equal(r.attempts, 0);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error_class, "Stopped");
    api_result_clear(&r);
    api_free(api);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
}

/* ---- a stop during the lost-race retries -------------------------------------------------- */

/* What the limiter's pool sent, seen through command monitoring in the acquiring thread. When
 * `arm` is set, the first block insert that loses its race (E11000) requests the stop and
 * freezes the proxy in front of MongoDB, before the limiter goes on: a SIGTERM arriving while
 * the store has turned slow. */
typedef struct {
    tcpproxy_t *proxy;
    volatile sig_atomic_t stop;
    atomic_int arm;
    atomic_int lost;       /* block inserts answered with E11000 */
    atomic_int after_stop; /* finds, inserts, deletes started once the stop was set */
    atomic_llong stop_at;  /* testenv_now_ms() when the stop was set */
    /* the acquiring thread */
    ratelimit_t *rl;
    int rc;
    atomic_int done;
    atomic_llong done_at;
    char err[512];
} race_watch_t;

static bool is_store_call(const char *name)
{
    return strcmp(name, "find") == 0 || strcmp(name, "insert") == 0 ||
           strcmp(name, "delete") == 0 || strcmp(name, "getMore") == 0;
}

static void race_started(const mongoc_apm_command_started_t *e)
{
    race_watch_t *w = mongoc_apm_command_started_get_context(e);
    if (w->stop && is_store_call(mongoc_apm_command_started_get_command_name(e)))
        atomic_fetch_add(&w->after_stop, 1);
}

/* The reply of an insert: did it lose the race for its _id? */
static void race_insert_answered(race_watch_t *w, const char *name, const bson_t *reply)
{
    if (strcmp(name, "insert") != 0 || !reply)
        return;
    bson_iter_t it, errs, one;
    if (!(bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
          bson_iter_recurse(&it, &errs) && bson_iter_next(&errs) &&
          BSON_ITER_HOLDS_DOCUMENT(&errs) && bson_iter_recurse(&errs, &one) &&
          bson_iter_find(&one, "code") && bson_iter_as_int64(&one) == 11000))
        return;
    atomic_fetch_add(&w->lost, 1);
    if (atomic_load(&w->arm) && !w->stop) {
        tcpproxy_freeze(w->proxy);
        atomic_store(&w->stop_at, (long long)testenv_now_ms());
        w->stop = 1;
    }
}

static void race_succeeded(const mongoc_apm_command_succeeded_t *e)
{
    race_insert_answered(mongoc_apm_command_succeeded_get_context(e),
                         mongoc_apm_command_succeeded_get_command_name(e),
                         mongoc_apm_command_succeeded_get_reply(e));
}

static void race_failed(const mongoc_apm_command_failed_t *e)
{
    race_insert_answered(mongoc_apm_command_failed_get_context(e),
                         mongoc_apm_command_failed_get_command_name(e),
                         mongoc_apm_command_failed_get_reply(e));
}

static void *race_acquire(void *arg)
{
    race_watch_t *w = arg;
    w->rc = ratelimit_acquire(w->rl, &w->stop, NULL, NULL, w->err, sizeof w->err);
    atomic_store(&w->done_at, (long long)testenv_now_ms());
    atomic_store(&w->done, 1);
    return NULL;
}

static bool race_done(void *ctx) { return atomic_load(&((race_watch_t *)ctx)->done) != 0; }

/* Documents of collection `coll` matching {field: value} (value NULL: {field: {$exists: 1}}). */
static int64_t count_docs(mongoc_client_pool_t *pool, const char *coll_name, const char *field,
                          const char *value)
{
    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, coll_name);
    bson_t *filter = value ? BCON_NEW(field, BCON_UTF8(value))
                           : BCON_NEW(field, "{", "$exists", BCON_BOOL(true), "}");
    bson_error_t error;
    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &error);
    if (n < 0)
        fail_msg("counting %s: %s", coll_name, error.message);
    bson_destroy(filter);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(pool, c);
    return n;
}

/* A lost insert race (E11000: another process took the block) makes the limiter read and insert
 * again, up to 32 times in one try, each call bounded only by the socket timeout (20 s in the
 * store's pools, set here too). A stop requested meanwhile must end ratelimit_acquire() with
 * "stopped" at once, without another MongoDB call (the old code made the remaining reads and
 * inserts first: with the store hanging, 20 s per call) and without a grant.
 * The races are lost for certain: a document holding the _id of the block the limiter will
 * insert next, without the fields its reads select on (bucket, k), so every insert of that block
 * collides and no read shows it. The same document then shows what 32 lost races without a stop
 * give: "wait 1 ms", no grant, no error. */
static void test_stop_during_lost_races(void **state)
{
    (void)state;
    char err[512];
    mongoc_client_pool_t *direct = pool_new();
    bson_error_t e;
    mongoc_uri_t *mu = mongoc_uri_new_with_error(g_uri, &e);
    if (!mu)
        fail_msg("bad MongoDB URI %s: %s", g_uri, e.message);
    const mongoc_host_list_t *h = mongoc_uri_get_hosts(mu);
    assert_non_null(h);
    static race_watch_t w; /* static: the APM context must outlive a failed run's thread */
    memset(&w, 0, sizeof w);
    w.proxy = tcpproxy_start(h->host, h->port, err, sizeof err);
    mongoc_uri_destroy(mu);
    if (!w.proxy)
        fail_msg("%s", err);
    char proxied[640];
    assert_int_equal(tcpproxy_uri(g_uri, tcpproxy_port(w.proxy), proxied, sizeof proxied), 0);
    size_t used = strlen(proxied);
    int n = snprintf(proxied + used, sizeof proxied - used, "%ssocketTimeoutMS=20000",
                     strchr(proxied, '?') ? "&" : "?");
    assert_true(n > 0 && (size_t)n < sizeof proxied - used);
    mongoc_uri_t *pu = mongoc_uri_new_with_error(proxied, &e);
    if (!pu)
        fail_msg("bad proxied URI %s: %s", proxied, e.message);
    mongoc_client_pool_t *pool = mongoc_client_pool_new(pu);
    mongoc_uri_destroy(pu);
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_started_cb(cbs, race_started);
    mongoc_apm_set_command_succeeded_cb(cbs, race_succeeded);
    mongoc_apm_set_command_failed_cb(cbs, race_failed);
    assert_true(mongoc_client_pool_set_apm_callbacks(pool, cbs, &w));
    mongoc_apm_callbacks_destroy(cbs);
    ratelimit_t *rl = rl_new(pool, "rl_stoprace", 5, 60000, 0);
    w.rl = rl;

    /* the decoy: block 0's _id, nothing the limiter's reads select */
    char decoy_id[HASH_HEX_SIZE + 24];
    snprintf(decoy_id, sizeof decoy_id, "%s:0", ratelimit_bucket(rl));
    mongoc_client_t *c = mongoc_client_pool_pop(direct);
    mongoc_collection_t *coll = mongoc_client_get_collection(c, g_db, "rl_stoprace");
    bson_t *decoy = BCON_NEW("_id", BCON_UTF8(decoy_id), "decoy", BCON_BOOL(true));
    assert_true(mongoc_collection_insert_one(coll, decoy, NULL, NULL, &e));
    bson_destroy(decoy);

    /* 1. the stop arrives right after the first lost race, and the store hangs from then on */
    atomic_store(&w.arm, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_acquire, &w), 0);
    /* generous: the fixed limiter makes no further call, so it returns at once */
    bool prompt = testenv_wait_until(race_done, &w, 10000, 5);
    tcpproxy_restore(w.proxy); /* the old code's held call goes on; it then ends by itself */
    bool ended = prompt || testenv_wait_until(race_done, &w, 120000, 20);
    if (!ended)
        fail_msg("ratelimit_acquire did not return within 130 s of the stop");
    pthread_join(th, NULL);
    long long stop_to_return = (long long)(atomic_load(&w.done_at) - atomic_load(&w.stop_at));
    print_message("stop during lost races: rc=%d lost_inserts=%d calls_after_stop=%d "
                  "stop_to_return_ms=%lld\n",
                  w.rc, atomic_load(&w.lost), atomic_load(&w.after_stop), stop_to_return);
    assert_true(w.stop); /* a race was lost, and the stop requested then */
    if (!prompt)
        fail_msg("ratelimit_acquire still running 10 s after the stop (store hanging): it "
                 "returned %d after %lld ms, having made %d MongoDB calls after the stop",
                 w.rc, stop_to_return, atomic_load(&w.after_stop));
    assert_int_equal(atomic_load(&w.after_stop), 0);
    assert_int_equal(atomic_load(&w.lost), 1);
    assert_int_equal(w.rc, 1); /* "stopped", as a stop during a wait */
    ratelimit_stats_t st;
    ratelimit_stats(rl, &st);
    assert_int_equal(st.grants, 0);
    assert_int_equal(st.blocks, 0);
    assert_int_equal(count_docs(direct, "rl_stoprace", "bucket", ratelimit_bucket(rl)), 0);
    assert_int_equal(count_docs(direct, "rl_stoprace", "_id", decoy_id), 1);

    /* 2. no stop: the 32 tries of one call all lose; the call says "wait 100 ms" (not an
     * error: a real race means another process got the block; the pause keeps a stuck case
     * from spinning on the store) and grants nothing */
    atomic_store(&w.arm, 0);
    atomic_store(&w.lost, 0);
    int64_t wait = 0;
    char logpath[] = "/tmp/it_ratelimit_races_XXXXXX";
    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    log_set_fd(logfd);
    int rc_first = ratelimit_try_acquire(rl, &wait, err, sizeof err);
    int64_t wait_first = wait;
    /* a second round at once: still lost, but not logged again (a stuck case must not flood) */
    int rc_second = ratelimit_try_acquire(rl, &wait, err, sizeof err);
    log_set_fd(2);
    char logbuf[8192];
    ssize_t got = pread(logfd, logbuf, sizeof logbuf - 1, 0);
    close(logfd);
    unlink(logpath);
    assert_true(got >= 0);
    logbuf[got < 0 ? 0 : got] = '\0';
    int lines = 0;
    for (const char *p = logbuf; (p = strstr(p, "event=ratelimit_races_lost ")) != NULL; p++)
        lines++;
    assert_int_equal(rc_first, 0);
    assert_int_equal(wait_first, 100);
    assert_int_equal(rc_second, 0);
    assert_int_equal(wait, 100);
    assert_int_equal(lines, 1);
    assert_true(atomic_load(&w.lost) >= 2);
    ratelimit_stats(rl, &st);
    assert_int_equal(st.grants, 0);
    assert_int_equal(count_docs(direct, "rl_stoprace", "bucket", ratelimit_bucket(rl)), 0);

    /* 3. the decoy gone, the same limiter takes block 0 */
    bson_t *sel = BCON_NEW("_id", BCON_UTF8(decoy_id));
    assert_true(mongoc_collection_delete_one(coll, sel, NULL, NULL, &e));
    bson_destroy(sel);
    volatile sig_atomic_t no_stop = 0;
    assert_int_equal(ratelimit_acquire(rl, &no_stop, NULL, NULL, err, sizeof err), 0);
    ratelimit_stats(rl, &st);
    assert_int_equal(st.grants, 1);
    assert_int_equal(count_docs(direct, "rl_stoprace", "bucket", ratelimit_bucket(rl)), 1);

    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(direct, c);
    ratelimit_free(rl);
    mongoc_client_pool_destroy(pool);
    tcpproxy_stop(w.proxy);
    mongoc_client_pool_destroy(direct);
}

static void test_mongo_unreachable(void **state)
{
    (void)state;
    /* nothing listens on port 1 */
    mongoc_uri_t *uri = mongoc_uri_new(
        "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=300&connectTimeoutMS=300");
    assert_non_null(uri);
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_uri_destroy(uri);
    ratelimit_options_t o = {.pool = pool, .database = "x", .base_url = BASE, .secret = SECRET,
                             .limit = 5};
    char err[512];
    assert_null(ratelimit_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "MONGODB_URI"));
    assert_null(strstr(err, SECRET));
    o.limit = 0;
    assert_null(ratelimit_new(&o, err, sizeof err));
    assert_non_null(strstr(err, "limit"));
    mongoc_client_pool_destroy(pool);
}

int main(void)
{
    testenv_require("MONGODB_URI");
    const struct CMUnitTest tests[] = {
        /* first: fork before this process has any MongoDB pool */
        cmocka_unit_test(test_window_across_processes),
        cmocka_unit_test(test_window_with_a_fast_host_clock),
        cmocka_unit_test(test_blocks_never_exceed_n),
        cmocka_unit_test(test_spacing_across_processes),
        cmocka_unit_test(test_cost_does_not_grow_with_tickets_taken),
        cmocka_unit_test(test_cost_does_not_grow_with_ended_pauses),
#ifdef RATELIMIT_HAS_BLOCKS
        cmocka_unit_test(test_expired_block_tickets_are_not_used),
#endif
        cmocka_unit_test(test_concurrent_penalties_keep_the_longer),
        cmocka_unit_test(test_basic_wait_and_usage),
        cmocka_unit_test(test_missing_predecessor_is_not_free),
        cmocka_unit_test(test_bucket_is_a_hash),
        cmocka_unit_test(test_penalize),
        cmocka_unit_test(test_no_burst_after_a_pause),
        cmocka_unit_test(test_api_429_penalizes),
        cmocka_unit_test(test_database_error_is_retriable),
        cmocka_unit_test(test_stop_during_lost_races),
        cmocka_unit_test(test_mongo_unreachable),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
