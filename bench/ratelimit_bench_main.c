/* ratelimit-bench: acquisitions per second of the shared rate limiter (common/ratelimit.h) from
 * one process with T threads, and what each acquisition costs in MongoDB commands and documents
 * read (issue 13). Not a test: a measuring tool. It works in its own database (dropped at the
 * end) on the MongoDB named by --uri or MONGODB_URI, so it runs beside anything else.
 *
 *   ratelimit-bench --limit 100000 --threads 32 --seconds 10
 *
 * Output: one JSON object per run on stdout. Commands and documents are counted with libmongoc's
 * command monitoring (finds, getMores, inserts, deletes; not the clock's `hello`), so the same
 * source measures any version of ratelimit.c. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "bench_cli.h"
#include "clock.h"
#include "log.h"
#include "ratelimit.h"

#define MAX_THREADS 256

typedef struct {
    const char *uri;
    int limit;
    int64_t window_ms;
    int64_t margin_ms;
    int threads;
    int64_t seconds;
    int batch;
    int64_t prefill;
    int64_t spacing_ms; /* ratelimit_options_t.spacing_ms: 0 = automatic (W/N), -1 = none */
} bench_opts_t;

typedef struct {
    atomic_ullong commands;
    atomic_ullong docs;
} apm_count_t;

typedef struct {
    ratelimit_t *rl;
    int64_t end_mono;
    atomic_ullong grants;
    atomic_ullong refusals;
    atomic_llong last_grant_mono; /* when the budget runs out before the end, the rate is
                                     measured up to the last grant */
    atomic_int failed;
} run_t;

static void apm_succeeded(const mongoc_apm_command_succeeded_t *e)
{
    apm_count_t *c = mongoc_apm_command_succeeded_get_context(e);
    const char *name = mongoc_apm_command_succeeded_get_command_name(e);
    if (strcmp(name, "find") != 0 && strcmp(name, "getMore") != 0 &&
        strcmp(name, "insert") != 0 && strcmp(name, "delete") != 0 &&
        strcmp(name, "update") != 0)
        return;
    atomic_fetch_add(&c->commands, 1);
    const bson_t *reply = mongoc_apm_command_succeeded_get_reply(e);
    const char *paths[] = {"cursor.firstBatch", "cursor.nextBatch"};
    for (size_t i = 0; i < 2; i++) {
        bson_iter_t it, found, arr;
        if (!bson_iter_init(&it, reply) || !bson_iter_find_descendant(&it, paths[i], &found) ||
            !BSON_ITER_HOLDS_ARRAY(&found) || !bson_iter_recurse(&found, &arr))
            continue;
        unsigned long long n = 0;
        while (bson_iter_next(&arr))
            n++;
        atomic_fetch_add(&c->docs, n);
    }
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *acquire_loop(void *arg)
{
    run_t *r = arg;
    char err[512];
    for (;;) {
        int64_t now = clock_mono_ms();
        if (now >= r->end_mono)
            break;
        int64_t wait = 0;
        int rc = ratelimit_try_acquire(r->rl, &wait, err, sizeof err);
        if (rc < 0) {
            log_msg(LOG_ERROR, "bench_acquire_failed", "error=\"%s\"", err);
            atomic_store(&r->failed, 1);
            break;
        }
        if (rc == 1) {
            atomic_fetch_add(&r->grants, 1);
            long long t = (long long)clock_mono_ms(), seen = atomic_load(&r->last_grant_mono);
            while (t > seen && !atomic_compare_exchange_weak(&r->last_grant_mono, &seen, t))
                ;
            continue;
        }
        atomic_fetch_add(&r->refusals, 1);
        int64_t left = r->end_mono - clock_mono_ms();
        sleep_ms(wait < left ? wait : left);
    }
    return NULL;
}

static int run(const bench_opts_t *o)
{
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(o->uri, &error);
    if (!uri) {
        fprintf(stderr, "ratelimit-bench: bad MongoDB URI: %s\n", error.message);
        return 2;
    }
    mongoc_client_pool_t *pool = mongoc_client_pool_new(uri);
    mongoc_uri_destroy(uri);
    if (!pool) {
        fprintf(stderr, "ratelimit-bench: cannot create a MongoDB pool\n");
        return 2;
    }
    mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_pool_max_size(pool, (uint32_t)o->threads + 4);
    apm_count_t count = {0, 0};
    mongoc_apm_callbacks_t *cbs = mongoc_apm_callbacks_new();
    mongoc_apm_set_command_succeeded_cb(cbs, apm_succeeded);
    bool apm_ok = mongoc_client_pool_set_apm_callbacks(pool, cbs, &count);
    mongoc_apm_callbacks_destroy(cbs);
    if (!apm_ok) {
        fprintf(stderr, "ratelimit-bench: cannot set command monitoring\n");
        mongoc_client_pool_destroy(pool);
        return 2;
    }

    char db[64];
    snprintf(db, sizeof db, "rlbench_%d_%lld", (int)getpid(), (long long)clock_wall_ms());
    ratelimit_options_t ro = {.pool = pool, .database = db, .base_url = "https://bench.example",
                              .secret = "bench-secret", .limit = o->limit,
                              .window_ms = o->window_ms, .margin_ms = o->margin_ms,
                              .name = "bench"};
#ifdef RATELIMIT_HAS_SPACING
    ro.spacing_ms = o->spacing_ms;
#else
    if (o->spacing_ms != 0)
        fprintf(stderr, "ratelimit-bench: this ratelimit.h has no spacing; --spacing-ms ignored\n");
#endif
#ifdef RATELIMIT_HAS_BLOCKS
    ro.batch = o->batch;
#else
    if (o->batch != 0)
        fprintf(stderr, "ratelimit-bench: this ratelimit.h has no blocks; --batch ignored\n");
#endif
    char err[512];
    ratelimit_t *rl = ratelimit_new(&ro, err, sizeof err);
    if (!rl) {
        fprintf(stderr, "ratelimit-bench: %s\n", err);
        mongoc_client_pool_destroy(pool);
        return 2;
    }
    int rc = 0;
    for (int64_t i = 0; i < o->prefill; i++) {
        /* waits for each (spaced) ticket; prefill fewer than N, or it waits for the window */
        if (ratelimit_acquire(rl, NULL, NULL, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "ratelimit-bench: prefill stopped at %" PRId64 " (%s)\n", i, err);
            rc = 1;
            break;
        }
    }

    run_t r = {.rl = rl};
    pthread_t tids[MAX_THREADS];
    int started = 0;
    unsigned long long c0 = atomic_load(&count.commands), d0 = atomic_load(&count.docs);
    int64_t t0 = clock_mono_ms();
    r.end_mono = t0 + o->seconds * 1000;
    for (int i = 0; rc == 0 && i < o->threads; i++) {
        if (pthread_create(&tids[i], NULL, acquire_loop, &r) != 0) {
            fprintf(stderr, "ratelimit-bench: cannot start thread %d\n", i);
            rc = 1;
            r.end_mono = 0;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    int64_t elapsed = clock_mono_ms() - t0;
    if (atomic_load(&r.failed))
        rc = 1;
    unsigned long long grants = atomic_load(&r.grants);
    unsigned long long cmds = atomic_load(&count.commands) - c0;
    unsigned long long docs = atomic_load(&count.docs) - d0;
    int batch = 1, blocks = o->limit;
#ifdef RATELIMIT_HAS_BLOCKS
    ratelimit_layout(rl, &batch, &blocks, NULL);
#endif
    if (rc == 0) {
        /* the budget spent before the end: rate up to the last grant */
        int64_t busy = (int64_t)atomic_load(&r.last_grant_mono) - t0;
        if (busy <= 0 || atomic_load(&r.refusals) == 0)
            busy = elapsed;
        double secs = busy > 0 ? (double)busy / 1000.0 : 0.001;
        double per = grants ? 1.0 / (double)grants : 0.0;
        printf("{\"threads\":%d,\"limit\":%d,\"window_ms\":%lld,\"batch\":%d,"
               "\"blocks_per_window\":%d,\"prefill\":%lld,\"seconds_granting\":%.2f,"
               "\"grants\":%llu,"
               "\"acquisitions_per_s\":%.1f,\"commands_per_acquisition\":%.3f,"
               "\"docs_per_acquisition\":%.3f,\"refusals\":%llu}\n",
               o->threads, o->limit, (long long)o->window_ms, batch, blocks,
               (long long)o->prefill, secs, grants, (double)grants / secs,
               (double)cmds * per, (double)docs * per,
               (unsigned long long)atomic_load(&r.refusals));
    }
    ratelimit_free(rl);

    mongoc_client_t *c = mongoc_client_pool_pop(pool);
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    if (!mongoc_database_drop(d, &error))
        fprintf(stderr, "ratelimit-bench: dropping %s failed: %s\n", db, error.message);
    mongoc_database_destroy(d);
    mongoc_client_pool_push(pool, c);
    mongoc_client_pool_destroy(pool);
    return rc;
}

int main(int argc, char **argv)
{
    bench_opts_t o = {.uri = NULL, .limit = 100000, .window_ms = 60000,
                      .margin_ms = 500, .threads = 1, .seconds = 10, .batch = 0, .prefill = 0};
    const bench_cli_opt_t opts[] = {
        {.name = "--limit", .arg = "N", .i32 = &o.limit, .min = 1, .max = INT32_MAX,
         .help = "requests per window (default 100000)"},
        {.name = "--window-ms", .arg = "W", .i64 = &o.window_ms, .min = 1, .max = INT64_MAX / 4,
         .help = "window (default 60000)"},
        {.name = "--margin-ms", .arg = "M", .i64 = &o.margin_ms, .min = 0, .max = INT64_MAX / 4,
         .help = "margin (default 500)"},
        {.name = "--threads", .arg = "T", .i32 = &o.threads, .min = 1, .max = MAX_THREADS,
         .help = "acquiring threads (default 1, at most " BENCH_CLI_STR(MAX_THREADS) ")"},
        {.name = "--seconds", .arg = "S", .i64 = &o.seconds, .min = 1, .max = 3600,
         .help = "duration of the measured run (default 10)"},
        {.name = "--prefill", .arg = "K", .i64 = &o.prefill, .min = 0, .max = INT32_MAX,
         .help = "tickets taken before the measured run (default 0)"},
        {.name = "--batch", .arg = "B", .i32 = &o.batch, .min = 0, .max = INT32_MAX,
         .help = "grants per stored block (0 = automatic; needs a ratelimit.h with\n"
                 "blocks)"},
        {.name = "--spacing-ms", .arg = "S", .i64 = &o.spacing_ms, .min = -1,
         .max = INT64_MAX / 4,
         .help = "least time between grants (0 = automatic, W/N; -1 = none: the\n"
                 "window rule alone; needs a ratelimit.h with spacing)"},
    };
    const bench_cli_t cli = {
        .prog = "ratelimit-bench",
        .about =
            "Measures acquisitions per second of the shared rate limiter (ratelimit_) from one\n"
            "process, and MongoDB commands and documents read per acquisition.\n",
        .output =
            "Output: one JSON line (threads, limit, grants, seconds_granting, acquisitions_per_s,\n"
            "commands_per_acquisition, docs_per_acquisition, refusals). When the budget runs out\n"
            "before the end (refusals > 0), the rate is grants / time to the last grant.\n",
        .uri = &o.uri,
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0]};
    bench_cli_result_t parsed = bench_cli_parse(&cli, argc, argv, stdout, stderr);
    if (parsed != BENCH_CLI_RUN)
        return (int)parsed; /* the exit status */
    log_init("ratelimit-bench", LOG_WARN);
    mongoc_init();
    int rc = run(&o);
    mongoc_cleanup();
    return rc;
}
