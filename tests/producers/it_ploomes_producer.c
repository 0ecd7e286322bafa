/* Integration tests of ploomes-producer against ploomes-sim, the real Kafka and MongoDB. The
 * producer runs as a subprocess (what users run) with its configuration in the environment.
 *
 *   full_scan_and_updates   1,000 contacts, 700 tasks, 700 interactions over several pages
 *                           with short pages injected: each published once with the right key
 *                           and headers; records updated between polls published again,
 *                           untouched ones not; an idle pass publishes nothing
 *   record_moves_mid_scan   a record updated while a scan is under way (it moves to the end of
 *                           the order) is still published and nothing is skipped
 *   kill_and_restart        SIGKILL mid-scan, restart: nothing missing, duplicates only for the
 *                           page in flight
 *   throttling_and_outage   429 bursts and an outage: --once during the outage exits 1, a later
 *                           pass catches up; the daemon rides out the next outage and finishes;
 *                           SIGTERM exits 0; a wrong key exits 3; the daemon's /healthz,
 *                           /readyz and /metrics (SPEC §7) answer, /metrics counting what that
 *                           process published, without the User-Key, /healthz also while idle
 *   tickets_since           issue 10: tasks and interactions start from the account's
 *                           TICKETS_SINCE: the MongoDB setting "tickets_since" when unset
 *                           (a ticket worker fixed it earlier: the producer uses it, not its
 *                           own lookback), TICKETS_SINCE when set; a first start without
 *                           either fixes the setting at now - TICKET_LOOKBACK_MINUTES; every
 *                           page took a ticket of the producers' own quota bucket
 *                           (PLOOMES_SCAN_QUOTA_SHARE, collection ratelimits_scan)
 *   unusable_rows           a record with invalid UTF-8 is skipped (logged with its id,
 *                           counted), never published raw, the cursor moves past it, and it
 *                           is published once fixed at the source (ids that are not positive
 *                           integers: test_producer_rows.c, the simulator refuses them)
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "config.h"
#include "prodtest.h"
#include "store.h"

#define KEY "PLOOMESTESTKEY0123456789"

typedef struct {
    char prefix[96];
    char db[96];
    char mongo_uri[512];
    char log[256];
    simproc *sim;
    /* environment for the producer */
    char e_uri[600], e_prefix[128], e_base[200], e_key[128], e_entities[128], e_log[64];
    const char *env[24];
    size_t nenv;
    store_t *store;
} fx_t;

static void fx_env(fx_t *f, const char *kv)
{
    f->env[f->nenv++] = kv;
    f->env[f->nenv] = NULL;
}

static void fx_setup(fx_t *f, const char *name, const char *entities)
{
    memset(f, 0, sizeof *f);
    pt_iso_t iso;
    pt_isolate(&iso, "itpp");
    memcpy(f->prefix, iso.prefix, sizeof f->prefix);
    memcpy(f->db, iso.db, sizeof f->db);
    memcpy(f->mongo_uri, iso.uri, sizeof f->mongo_uri);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f->log, sizeof f->log, "%s/%s%s.log", tmp, f->prefix, name);
    char err[256];
    f->sim = simproc_start_ploomes(KEY, err, sizeof err);
    if (!f->sim)
        fail_msg("%s", err);
    /* no simulator rate limit unless a test sets one */
    assert_int_equal(simproc_faults(f->sim, "{\"rate_limit_per_min\":0}"), 0);

    snprintf(f->e_uri, sizeof f->e_uri, "MONGODB_URI=%s", f->mongo_uri);
    snprintf(f->e_prefix, sizeof f->e_prefix, "TOPIC_PREFIX=%s", f->prefix);
    snprintf(f->e_base, sizeof f->e_base, "PLOOMES_BASE_URL=%s", simproc_api_url(f->sim));
    snprintf(f->e_key, sizeof f->e_key, "PLOOMES_USER_KEY=%s", KEY);
    snprintf(f->e_entities, sizeof f->e_entities, "PLOOMES_ENTITIES=%s", entities);
    fx_env(f, f->e_uri);
    fx_env(f, f->e_prefix);
    fx_env(f, f->e_base);
    fx_env(f, f->e_key);
    fx_env(f, f->e_entities);
    fx_env(f, "TOPIC_PARTITIONS=3");
    fx_env(f, "PLOOMES_RATE_PER_MIN=100000");
    fx_env(f, "RETRY_BASE_MS=50");
    fx_env(f, "RETRY_MAX_MS=500");
    fx_env(f, "MAX_ATTEMPTS=3");
    fx_env(f, "POLL_INTERVAL_SECONDS=1");
    fx_env(f, "SYNC_SINCE=2024-02-24T00:00:00-03:00");
    fx_env(f, "TICKET_LOOKBACK_MINUTES=60");
    fx_env(f, "LOG_LEVEL=info");
    fx_env(f, "METRICS_PORT=0");
    /* a restart after SIGKILL waits out the dead process's producer lease */
    fx_env(f, "PRODUCER_LEASE_SECONDS=5");

    f->store = store_open(f->mongo_uri, err, sizeof err);
    assert_non_null(f->store);
}

static void fx_teardown(fx_t *f)
{
    if (simproc_stop(f->sim) != 0)
        fprintf(stderr, "ploomes-sim did not stop cleanly on SIGTERM\n");
    store_close(f->store);
}

static const char *const once_args[] = {"--once", NULL};

static int run_once(fx_t *f, int timeout_ms)
{
    return pt_run("ploomes-producer", once_args, f->env, f->log, timeout_ms);
}

/* One --once pass that must succeed (its log shown when it does not). */
static void run_once_ok(fx_t *f)
{
    int rc = run_once(f, 60000);
    if (rc != 0)
        pt_dump_log(f->log, 4000);
    assert_int_equal(rc, 0);
}

/* Starts ploomes-producer (with `args`, may be NULL: the daemon); returns its pid. */
static pid_t start_producer(fx_t *f, const char *const *args)
{
    char err[512];
    pid_t pid = simproc_spawn("ploomes-producer", args, f->env, f->log, err, sizeof err);
    if (pid < 0)
        fail_msg("%s", err);
    return pid;
}

/* Records ids [from, to] of a set: {"Id":i, <name_field>:"<label> i"}; optionally an explicit
 * LastUpdateDate for ids <= same_stamp_upto (ties on the stamp exercise the Id tie-break). */
static cJSON *records(int from, int to, const char *name_field, const char *label,
                      int same_stamp_upto)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = from; i <= to; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "Id", i);
        char name[64];
        snprintf(name, sizeof name, "%s %d", label, i);
        cJSON_AddStringToObject(r, name_field, name);
        if (i <= same_stamp_upto)
            cJSON_AddStringToObject(r, "LastUpdateDate", "2024-03-01T10:00:00.123-03:00");
        cJSON_AddItemToArray(arr, r);
    }
    return arr;
}

static void seed(fx_t *f, const char *set, cJSON *arr)
{
    assert_int_equal(pt_seed_set(f->sim, set, arr), 0);
}

static void consume(fx_t *f, const char *base, pt_msgs_t *m)
{
    char topic[256];
    snprintf(topic, sizeof topic, "%s%s", f->prefix, base);
    assert_int_equal(pt_consume(topic, m, 60000), 0);
}

/* Every message passes the SPEC §2 checks; every id in [from, to] appears between min and max
 * times; returns how many messages carry an id outside [from, to]. */
static void check_topic(const pt_msgs_t *m, const char *entity, int from, int to, int min,
                        int max)
{
    int span = to - from + 1;
    int *count = calloc((size_t)span, sizeof *count);
    for (size_t i = 0; i < m->n; i++) {
        const char *why = pt_check_msg(&m->msgs[i], "ploomes", entity, "Id");
        if (why)
            fail_msg("%s message key=%s: %s", entity, m->msgs[i].key, why);
        long id = strtol(m->msgs[i].key, NULL, 10);
        if (id < from || id > to)
            fail_msg("%s: unexpected id %ld", entity, id);
        count[id - from]++;
    }
    for (int i = 0; i < span; i++)
        if (count[i] < min || count[i] > max)
            fail_msg("%s id %d published %d times (expected %d..%d)", entity, from + i,
                     count[i], min, max);
    free(count);
}

/* Last published value of key `key`, or NULL. */
static const char *last_value(const pt_msgs_t *m, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->msgs[i].key, key) == 0)
            v = m->msgs[i].value;
    return v;
}

/* ---- 1 ---------------------------------------------------------------------------------------- */

static void full_scan_and_updates(void **state)
{
    (void)state;
    fx_t f;
    fx_setup(&f, "full", "contacts,tasks,interactions");
    int64_t t0 = testenv_now_ms();
    seed(&f, "Contacts", records(1, 1000, "Name", "Contact", 60));
    seed(&f, "Tasks", records(1, 700, "Title", "Task", 0));
    seed(&f, "InteractionRecords", records(1, 700, "Content", "Interaction", 0));
    assert_int_equal(simproc_faults(f.sim, "{\"short_pages\":true,\"seed\":7}"), 0);

    int rc = run_once(&f, 180000);
    if (rc != 0)
        pt_dump_log(f.log, 4000);
    assert_int_equal(rc, 0);
    fprintf(stderr, "first pass: %lld ms\n", (long long)(testenv_now_ms() - t0));

    pt_msgs_t c, t, i;
    consume(&f, "ploomes.contacts", &c);
    consume(&f, "ploomes.tasks", &t);
    consume(&f, "ploomes.interactions", &i);
    assert_int_equal(c.n, 1000);
    assert_int_equal(t.n, 700);
    assert_int_equal(i.n, 700);
    check_topic(&c, "contact", 1, 1000, 1, 1);
    check_topic(&t, "task", 1, 700, 1, 1);
    check_topic(&i, "interaction", 1, 700, 1, 1);
    /* several pages: 1,000 rows at <= 300 a page, cut to 40-90% by short_pages */
    assert_int_equal(pt_log_count(f.log, "event=scan_done entity=contact outcome=ok end=empty_page"), 1);
    assert_int_equal(pt_log_count(f.log, "event=scan_done entity=contact outcome=ok end=empty_page pages=1 "), 0);
    assert_int_equal(pt_log_count(f.log, "event=scan_done entity=contact outcome=ok end=empty_page pages=2 "), 0);
    assert_int_equal(pt_log_count(f.log, "event=scan_done entity=contact outcome=ok end=empty_page pages=3 "), 0);
    assert_int_equal(pt_log_count(f.log, "event=scan_done entity=contact outcome=ok end=empty_page pages=4 "), 0);
    assert_int_equal(pt_log_count(f.log, "event=scan_done entity=contact outcome=ok end=empty_page pages=5 "), 0);
    fprintf(stderr, "contacts: %zu msgs; tasks %zu; interactions %zu\n", c.n, t.n, i.n);
    pt_msgs_free(&c);
    pt_msgs_free(&t);
    pt_msgs_free(&i);

    /* Cursors are saved with the last row. */
    store_cursor_t cur;
    char err[256];
    assert_int_equal(store_cursor_get(f.store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_int_equal(cur.id, 1000);
    assert_true(cur.last_ok_at_ms > 0);
    assert_string_equal(cur.last_error, "");

    /* Updates between polls: contacts 5 (one of the tied stamps) and 500, task 10. */
    cJSON *upd = cJSON_CreateArray();
    cJSON *r5 = cJSON_CreateObject();
    cJSON_AddNumberToObject(r5, "Id", 5);
    cJSON_AddStringToObject(r5, "Name", "Contact 5 renamed");
    cJSON_AddItemToArray(upd, r5);
    cJSON *r500 = cJSON_CreateObject();
    cJSON_AddNumberToObject(r500, "Id", 500);
    cJSON_AddStringToObject(r500, "Name", "Contact 500 renamed");
    cJSON_AddItemToArray(upd, r500);
    seed(&f, "Contacts", upd);
    seed(&f, "Tasks", records(10, 10, "Title", "Task 10 renamed", 0));

    assert_int_equal(run_once(&f, 120000), 0);
    consume(&f, "ploomes.contacts", &c);
    consume(&f, "ploomes.tasks", &t);
    consume(&f, "ploomes.interactions", &i);
    assert_int_equal(c.n, 1002);
    assert_int_equal(t.n, 701);
    assert_int_equal(i.n, 700);
    assert_int_equal(pt_count_key(&c, "5"), 2);
    assert_int_equal(pt_count_key(&c, "500"), 2);
    assert_int_equal(pt_count_key(&c, "6"), 1);
    assert_int_equal(pt_count_key(&t, "10"), 2);
    assert_non_null(strstr(last_value(&c, "5"), "Contact 5 renamed"));
    assert_non_null(strstr(last_value(&c, "500"), "Contact 500 renamed"));
    check_topic(&c, "contact", 1, 1000, 1, 2);
    pt_msgs_free(&c);
    pt_msgs_free(&t);
    pt_msgs_free(&i);

    /* Nothing changed: an idle pass publishes nothing. */
    assert_int_equal(run_once(&f, 120000), 0);
    consume(&f, "ploomes.contacts", &c);
    assert_int_equal(c.n, 1002);
    pt_msgs_free(&c);
    fprintf(stderr, "full_scan_and_updates: %lld ms\n", (long long)(testenv_now_ms() - t0));
    fx_teardown(&f);
}

/* ---- 2 ---------------------------------------------------------------------------------------- */

typedef struct {
    fx_t *f;
    int64_t min_id;
} cursor_wait_t;

static bool cursor_reached(void *ctx)
{
    cursor_wait_t *w = ctx;
    store_cursor_t cur;
    char err[256];
    return store_cursor_get(w->f->store, "ploomes.contact", &cur, err, sizeof err) == STORE_OK &&
           cur.id >= w->min_id;
}

static void record_moves_mid_scan(void **state)
{
    (void)state;
    fx_t f;
    fx_setup(&f, "moves", "contacts");
    int64_t t0 = testenv_now_ms();
    seed(&f, "Contacts", records(1, 1500, "Name", "Contact", 0));
    /* slow pages, so the scan is surely under way when the records move, and surely not yet
     * at row 1200's page (the 4th): three pages of 1.5 s leave ample time on a loaded machine
     * between seeing the first page's cursor and that page being read */
    assert_int_equal(simproc_faults(f.sim, "{\"latency_ms\":1500}"), 0);
    pid_t pid = start_producer(&f, once_args);

    /* First page delivered (rows 1..300): move row 1 (already read) and row 1200 (not yet
     * read) to the end of the order. A $skip scan would now lose the row after 1200's old
     * place; the keyset scan must not. */
    cursor_wait_t w = {&f, 300};
    assert_true(testenv_wait_until(cursor_reached, &w, 60000, 20));
    cJSON *upd = cJSON_CreateArray();
    int moved[] = {1, 1200};
    for (int k = 0; k < 2; k++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "Id", moved[k]);
        cJSON_AddStringToObject(r, "Name", "moved");
        cJSON_AddItemToArray(upd, r);
    }
    seed(&f, "Contacts", upd);

    int rc = simproc_wait(pid, 120000);
    if (rc != 0)
        pt_dump_log(f.log, 4000);
    assert_int_equal(rc, 0);
    pt_msgs_t c;
    consume(&f, "ploomes.contacts", &c);
    check_topic(&c, "contact", 1, 1500, 1, 2);
    assert_int_equal(pt_count_key(&c, "1"), 2);      /* old and new version */
    assert_int_equal(pt_count_key(&c, "1200"), 1);   /* read once, at its new place */
    assert_int_equal(pt_count_key(&c, "1201"), 1);   /* the row a $skip scan loses */
    assert_non_null(strstr(last_value(&c, "1200"), "moved"));
    assert_non_null(strstr(last_value(&c, "1"), "moved"));
    assert_int_equal(c.n, 1501);
    pt_msgs_free(&c);
    fprintf(stderr, "record_moves_mid_scan: %lld ms\n", (long long)(testenv_now_ms() - t0));
    fx_teardown(&f);
}

/* ---- 3 ---------------------------------------------------------------------------------------- */

static void kill_and_restart(void **state)
{
    (void)state;
    fx_t f;
    fx_setup(&f, "kill", "contacts");
    int64_t t0 = testenv_now_ms();
    seed(&f, "Contacts", records(1, 2400, "Name", "Contact", 0));
    /* slow pages (1 s each): five pages remain after the cursor reaches 900, ample time on a
     * loaded machine to kill the producer mid-scan */
    assert_int_equal(simproc_faults(f.sim, "{\"latency_ms\":1000}"), 0);
    pid_t pid = start_producer(&f, NULL);
    cursor_wait_t w = {&f, 900};
    assert_true(testenv_wait_until(cursor_reached, &w, 60000, 10));
    kill(pid, SIGKILL);
    assert_int_equal(simproc_wait(pid, 30000), 128 + SIGKILL);
    store_cursor_t cur;
    char err[256];
    assert_int_equal(store_cursor_get(f.store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_true(cur.id < 2400); /* killed mid-scan */

    assert_int_equal(simproc_faults(f.sim, "{\"latency_ms\":0}"), 0);
    int rc = run_once(&f, 120000);
    if (rc != 0)
        pt_dump_log(f.log, 4000);
    assert_int_equal(rc, 0);
    pt_msgs_t c;
    consume(&f, "ploomes.contacts", &c);
    check_topic(&c, "contact", 1, 2400, 1, 2);
    /* duplicates only for the page in flight */
    assert_true(c.n >= 2400 && c.n <= 2400 + 300);
    fprintf(stderr, "kill_and_restart: killed at cursor %lld, %zu messages (%zu duplicates), %lld ms\n",
            (long long)cur.id, c.n, c.n - 2400, (long long)(testenv_now_ms() - t0));
    pt_msgs_free(&c);
    fx_teardown(&f);
}

/* ---- 4 ---------------------------------------------------------------------------------------- */

static bool api_answers(void *ctx)
{
    const simproc *sim = ctx;
    /* Probe the API itself with the right key. */
    const char *const headers[] = {"User-Key: " KEY, NULL};
    long status = 0;
    return simproc_request(sim, "GET", "/Account", headers, NULL, &status, NULL, NULL) == 0 &&
           status == 200;
}

typedef struct {
    const char *log;
    const char *needle;
    int n;
} log_wait_t;

static bool log_has(void *ctx)
{
    log_wait_t *w = ctx;
    return pt_log_count(w->log, w->needle) >= w->n;
}

/* Outage length: the daemon rides out the 30-second outage (several polls fail in a
 * row, then it catches up). The --once case needs the outage to outlast one whole pass
 * (start-up included, which a loaded machine can stretch to several seconds), so that outage
 * is open-ended ("down": true) and ended by the test once the pass has exited. */
#define DAEMON_OUTAGE_MS 30000

static void throttling_and_outage(void **state)
{
    (void)state;
    fx_t f;
    fx_setup(&f, "outage", "contacts");
    int64_t t0 = testenv_now_ms();
    seed(&f, "Contacts", records(1, 900, "Name", "Contact", 0));

    /* A wrong key exits 3 (and publishes nothing). */
    {
        const char *env[32];
        size_t n = 0;
        for (; f.env[n]; n++)
            env[n] = strcmp(f.env[n], f.e_key) == 0 ? "PLOOMES_USER_KEY=WRONGKEY0000" : f.env[n];
        env[n] = NULL;
        assert_int_equal(pt_run("ploomes-producer", once_args, env, f.log, 60000), 3);
    }

    /* --once during an outage: exit 1, cursor does not move. */
    char faults[160];
    assert_int_equal(simproc_faults(f.sim, "{\"down\":true}"), 0);
    assert_int_equal(run_once(&f, 60000), 1);
    store_cursor_t cur;
    char err[256];
    assert_int_equal(store_cursor_get(f.store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_int_equal(cur.id, 0);
    assert_true(cur.last_error[0] != '\0');

    /* After the outage, with 429 bursts (30% of requests), a later pass catches up. */
    assert_int_equal(simproc_faults(f.sim, "{\"down\":false}"), 0);
    assert_true(testenv_wait_until(api_answers, f.sim, 30000, 100));
    assert_int_equal(
        simproc_faults(f.sim, "{\"error_rate\":0.3,\"error_status\":429,\"seed\":3}"), 0);
    int rc = run_once(&f, 120000);
    if (rc != 0) {
        /* 3 attempts at 30% errors can still all fail on one page: one more pass must do */
        rc = run_once(&f, 120000);
    }
    assert_int_equal(rc, 0);
    pt_msgs_t c;
    consume(&f, "ploomes.contacts", &c);
    check_topic(&c, "contact", 1, 900, 1, 1);
    pt_msgs_free(&c);

    /* The daemon rides out an outage: pages fail, are retried on the next poll, and it
     * finishes with everything published; SIGTERM exits 0. It serves METRICS_PORT. */
    int port = 0;
    pid_t pid = pt_start_daemon("ploomes-producer", f.env, f.log, &port);
    assert_true(pid > 0);
    log_wait_t lw = {f.log, "event=pass_done source=ploomes outcome=ok", 1};
    int before = pt_log_count(f.log, lw.needle);
    lw.n = before + 1;
    assert_true(testenv_wait_until(log_has, &lw, 60000, 50));
    snprintf(faults, sizeof faults, "{\"down_for_ms\":%d}", DAEMON_OUTAGE_MS);
    assert_int_equal(simproc_faults(f.sim, faults), 0);
    seed(&f, "Contacts", records(901, 1500, "Name", "Contact", 0));
    log_wait_t fw = {f.log, "event=page_failed", pt_log_count(f.log, "event=page_failed") + 1};
    assert_true(testenv_wait_until(log_has, &fw, 30000, 50));
    /* Several polls fail during the outage, not just one. */
    fw.n += 2;
    assert_true(testenv_wait_until(log_has, &fw, DAEMON_OUTAGE_MS, 50));
    cursor_wait_t w = {&f, 1500};
    assert_true(testenv_wait_until(cursor_reached, &w, DAEMON_OUTAGE_MS + 60000, 50));
    /* Its own count: contacts 901..1500 (1..900 came from the --once passes; the topic
     * holds each id exactly once, checked below). */
    pt_endpoints_t ep = {port, f.log, "ploomes", "contact", 1500 - 900, KEY};
    const char *why = pt_check_endpoints(&ep);
    if (why)
        fail_msg("ploomes-producer on METRICS_PORT=%d: %s", port, why);
    kill(pid, SIGTERM);
    rc = simproc_wait(pid, 30000);
    if (rc != 0)
        pt_dump_log(f.log, 4000);
    assert_int_equal(rc, 0);
    consume(&f, "ploomes.contacts", &c);
    check_topic(&c, "contact", 1, 1500, 1, 1);
    pt_msgs_free(&c);
    fprintf(stderr, "throttling_and_outage: %lld ms\n", (long long)(testenv_now_ms() - t0));
    fx_teardown(&f);
}

/* ---- 6 ---------------------------------------------------------------------------------------- */

static cJSON *task(int id, const char *stamp)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "Id", id);
    cJSON_AddStringToObject(r, "Title", "Task");
    cJSON_AddStringToObject(r, "LastUpdateDate", stamp);
    return r;
}

static int64_t count_docs(const char *uri, const char *db, const char *coll)
{
    mongoc_client_t *c = mongoc_client_new(uri);
    if (!c)
        return -1;
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    bson_t filter = BSON_INITIALIZER;
    bson_error_t e;
    int64_t n = mongoc_collection_count_documents(col, &filter, NULL, NULL, NULL, &e);
    bson_destroy(&filter);
    mongoc_collection_destroy(col);
    mongoc_client_destroy(c);
    return n;
}

/* Task 1 before 2025-01-01, task 2 after it (and long before now). */
static void seed_two_tasks(fx_t *f)
{
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, task(1, "2024-12-01T10:00:00.000-03:00"));
    cJSON_AddItemToArray(arr, task(2, "2025-03-01T10:00:00.000-03:00"));
    seed(f, "Tasks", arr);
}

static void tickets_since(void **state)
{
    (void)state;
    fx_t f;
    fx_setup(&f, "tsince", "tasks");
    seed_two_tasks(&f);
    /* a ticket worker started first and fixed the account's setting */
    char err[256], value[64];
    assert_int_equal(store_setting_get_or_init(f.store, "tickets_since",
                                               "2025-01-01T00:00:00.000Z", value, sizeof value,
                                               err, sizeof err),
                     STORE_OK);
    run_once_ok(&f);
    pt_msgs_t t;
    consume(&f, "ploomes.tasks", &t);
    assert_int_equal(t.n, 1);
    assert_int_equal(pt_count_key(&t, "2"), 1);
    pt_msgs_free(&t);
    assert_int_equal(pt_log_count(f.log, "event=cursor_initialised entity=task "
                                         "stamp=2025-01-01T00:00:00.000Z"),
                     1);
    /* every page took a ticket of the producers' own share of the window */
    assert_true(count_docs(f.mongo_uri, f.db, "ratelimits_scan") >= 1);
    assert_int_equal(pt_log_count(f.log, "event=scan_quota source=ploomes requests_per_min=50000"),
                     1);
    fx_teardown(&f);

    /* TICKETS_SINCE set: it is the first cursor, whatever the setting */
    fx_setup(&f, "tsince2", "tasks");
    seed_two_tasks(&f);
    fx_env(&f, "TICKETS_SINCE=2024-11-01T00:00:00Z");
    run_once_ok(&f);
    consume(&f, "ploomes.tasks", &t);
    assert_int_equal(t.n, 2);
    pt_msgs_free(&t);
    fx_teardown(&f);

    /* neither: the first start fixes the setting at now - TICKET_LOOKBACK_MINUTES (60) */
    fx_setup(&f, "tsince3", "interactions");
    int64_t before_ms = (int64_t)time(NULL) * 1000 - 61 * 60000;
    run_once_ok(&f);
    int64_t after_ms = (int64_t)time(NULL) * 1000 - 59 * 60000;
    assert_int_equal(store_setting_get_or_init(f.store, "tickets_since", "not-this", value,
                                               sizeof value, err, sizeof err),
                     STORE_OK);
    int64_t fixed_ms = 0;
    assert_int_equal(config_parse_rfc3339(value, &fixed_ms), 0);
    assert_true(value[strlen(value) - 1] == 'Z');
    assert_true(fixed_ms >= before_ms && fixed_ms <= after_ms);
    fx_teardown(&f);
}

/* ---- 5 ---------------------------------------------------------------------------------------- */

static void unusable_rows(void **state)
{
    (void)state;
    fx_t f;
    fx_setup(&f, "unusable", "contacts");
    cJSON *arr = records(1, 5, "Name", "Contact", 0);
    /* contact 2: "José" with a broken byte sequence (0xC3 0x28) */
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(arr, 1), "Name", cJSON_CreateString("Jos\xC3("));
    seed(&f, "Contacts", arr);

    int rc = run_once(&f, 60000);
    if (rc != 0)
        pt_dump_log(f.log, 4000);
    assert_int_equal(rc, 0);
    pt_msgs_t c;
    consume(&f, "ploomes.contacts", &c);
    assert_int_equal(c.n, 4);
    assert_int_equal(pt_count_key(&c, "2"), 0);
    check_topic(&c, "contact", 1, 5, 0, 1);
    pt_msgs_free(&c);
    assert_int_equal(
        pt_log_count(f.log, "event=record_skipped source=ploomes entity=contact id=2 "
                            "reason=invalid_utf8 detail=$.Name"),
        1);
    store_cursor_t cur;
    char err[256];
    assert_int_equal(store_cursor_get(f.store, "ploomes.contact", &cur, err, sizeof err), STORE_OK);
    assert_int_equal(cur.id, 5);

    /* The next pass publishes nothing: the skipped row is behind the cursor. */
    rc = run_once(&f, 60000);
    if (rc != 0)
        pt_dump_log(f.log, 4000);
    assert_int_equal(rc, 0);
    consume(&f, "ploomes.contacts", &c);
    assert_int_equal(c.n, 4);
    pt_msgs_free(&c);

    /* Fixed at the source (a new LastUpdateDate): published. */
    seed(&f, "Contacts", records(2, 2, "Name", "Contact", 0));
    assert_int_equal(run_once(&f, 60000), 0);
    consume(&f, "ploomes.contacts", &c);
    assert_int_equal(c.n, 5);
    assert_int_equal(pt_count_key(&c, "2"), 1);
    check_topic(&c, "contact", 1, 5, 1, 1);
    pt_msgs_free(&c);
    fx_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_scan_and_updates),
        cmocka_unit_test(record_moves_mid_scan),
        cmocka_unit_test(kill_and_restart),
        cmocka_unit_test(throttling_and_outage),
        cmocka_unit_test(unusable_rows),
        cmocka_unit_test(tickets_since),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
