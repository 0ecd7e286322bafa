/* store-bench: the records per second the dedup store alone allows a ticket worker — one
 * store_claim() and one store_complete() per record, exactly the calls a worker makes per new
 * record (common/store.h) — from one process with T threads (issue 13: the ceiling a
 * store puts under scenario A). Not a test: a measuring tool. It works in a database of its
 * own (dropped at the end) on the MongoDB named by --uri or MONGODB_URI.
 *
 *   store-bench --threads 32 --seconds 10
 *
 * Output: one JSON line: threads, records (claim + complete pairs), seconds, records_per_s,
 * round_trips_per_record (store_round_trips_total, the worker's own count). */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "bench_cli.h"
#include "clock.h"
#include "log.h"
#include "store.h"

#define MAX_THREADS 256

typedef struct {
    store_t *st;
    int64_t end_mono;
    atomic_ullong next_key;
    atomic_ullong records;
    atomic_int failed;
    char prefix[48];
} run_t;

static void *record_loop(void *arg)
{
    run_t *r = arg;
    char err[512], key[96], owner[64];
    snprintf(owner, sizeof owner, "bench-%lu", (unsigned long)pthread_self());
    store_entry_t result;
    memset(&result, 0, sizeof result);
    snprintf(result.codigo, sizeof result.codigo, "1");
    while (clock_mono_ms() < r->end_mono) {
        unsigned long long n = atomic_fetch_add(&r->next_key, 1);
        snprintf(key, sizeof key, "%s:%llu", r->prefix, n);
        store_claim_t cl;
        int rc = store_claim(r->st, STORE_KIND_TICKETS, key, owner, 60000, NULL, &cl, err,
                             sizeof err);
        if (rc == STORE_OK && cl.status == STORE_CLAIM_ACQUIRED)
            rc = store_complete(r->st, STORE_KIND_TICKETS, key, owner, &result, err, sizeof err);
        else if (rc == STORE_OK)
            snprintf(err, sizeof err, "a new key was not ACQUIRED (status %d)", (int)cl.status);
        if (rc != STORE_OK || cl.status != STORE_CLAIM_ACQUIRED) {
            fprintf(stderr, "store-bench: %s: %s\n", key, err);
            atomic_store(&r->failed, 1);
            break;
        }
        atomic_fetch_add(&r->records, 1);
    }
    return NULL;
}

/* The URI with its database replaced by `db` (malloc'd), or NULL (mongoc_uri_set_database()
 * does not change mongoc_uri_get_string(): the path is rewritten here). */
static char *uri_with_db(const char *text, const char *db)
{
    bson_error_t e;
    mongoc_uri_t *u = mongoc_uri_new_with_error(text, &e);
    if (!u) {
        fprintf(stderr, "store-bench: bad MongoDB URI: %s\n", e.message);
        return NULL;
    }
    mongoc_uri_destroy(u);
    const char *hosts = strstr(text, "://");
    hosts = hosts ? hosts + 3 : text;
    size_t host_len = strcspn(hosts, "/?");
    const char *query = strchr(hosts + host_len, '?');
    size_t size = strlen(text) + strlen(db) + 4;
    char *out = malloc(size);
    if (!out)
        return NULL;
    snprintf(out, size, "%.*s/%s%s", (int)(hosts - text + host_len), text, db,
             query ? query : "");
    return out;
}

static void drop_database(const char *uri, const char *db)
{
    mongoc_client_t *c = mongoc_client_new(uri);
    if (!c)
        return;
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    bson_error_t e;
    if (!mongoc_database_drop(d, &e))
        fprintf(stderr, "store-bench: dropping %s failed: %s\n", db, e.message);
    mongoc_database_destroy(d);
    mongoc_client_destroy(c);
}

static int run(const char *base_uri, int threads, int64_t seconds)
{
    char db[64];
    snprintf(db, sizeof db, "storebench_%d_%lld", (int)getpid(), (long long)clock_wall_ms());
    char *uri = uri_with_db(base_uri, db);
    if (!uri)
        return 2;
    char err[512];
    store_t *st = store_open(uri, err, sizeof err);
    if (!st || store_ensure_indexes(st, err, sizeof err) != STORE_OK) {
        fprintf(stderr, "store-bench: %s\n", err);
        if (st)
            store_close(st);
        free(uri);
        return 2;
    }
    run_t r = {.st = st};
    snprintf(r.prefix, sizeof r.prefix, "bench:task");
    pthread_t tids[MAX_THREADS];
    int started = 0, rc = 0;
    uint64_t trips0 = store_round_trips_total(st);
    int64_t t0 = clock_mono_ms();
    r.end_mono = t0 + seconds * 1000;
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&tids[i], NULL, record_loop, &r) != 0) {
            fprintf(stderr, "store-bench: cannot start thread %d\n", i);
            r.end_mono = 0;
            rc = 1;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    double secs = (double)(clock_mono_ms() - t0) / 1000.0;
    unsigned long long n = atomic_load(&r.records);
    uint64_t trips = store_round_trips_total(st) - trips0;
    if (atomic_load(&r.failed))
        rc = 1;
    if (rc == 0)
        printf("{\"threads\":%d,\"records\":%llu,\"seconds\":%.2f,\"records_per_s\":%.1f,"
               "\"round_trips_per_record\":%.3f}\n",
               threads, n, secs, secs > 0 ? (double)n / secs : 0.0,
               n ? (double)trips / (double)n : 0.0);
    store_close(st);
    drop_database(uri, db);
    free(uri);
    return rc;
}

int main(int argc, char **argv)
{
    const char *uri = NULL; /* bench_cli_parse(): $MONGODB_URI or --uri */
    int64_t threads = 32, seconds = 10;
    const bench_cli_opt_t opts[] = {
        {.name = "--threads", .arg = "T", .i64 = &threads, .min = 1, .max = MAX_THREADS,
         .help = "threads (default 32, at most " BENCH_CLI_STR(MAX_THREADS) ")"},
        {.name = "--seconds", .arg = "S", .i64 = &seconds, .min = 1, .max = 3600,
         .help = "duration of the measured run (default 10)"},
    };
    const bench_cli_t cli = {
        .prog = "store-bench",
        .about =
            "Measures records per second of the dedup store: per record one store_claim() and\n"
            "one store_complete() of a new ticket key, as a worker makes them.\n",
        .output = "Output: one JSON line (threads, records, seconds, records_per_s,\n"
                  "round_trips_per_record).\n",
        .uri = &uri,
        .opts = opts,
        .n_opts = sizeof opts / sizeof opts[0]};
    bench_cli_result_t parsed = bench_cli_parse(&cli, argc, argv, stdout, stderr);
    if (parsed != BENCH_CLI_RUN)
        return (int)parsed; /* the exit status */
    log_init("store-bench", LOG_WARN);
    store_global_init();
    int rc = run(uri, (int)threads, seconds);
    store_global_cleanup();
    return rc;
}
