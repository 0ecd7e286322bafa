/* Clock skew (issue 12): processes whose wall clock is off by ±90 s (libfaketime from Debian,
 * LD_PRELOAD with FAKETIME="+90s" and FAKETIME_DONT_FAKE_MONOTONIC=1, so only CLOCK_REALTIME
 * moves) share one rate limit, one claim table and one producer lease with processes on the
 * true clock. Real Kafka and FerretDB, ploomes-sim and milvus-sim, the real binaries.
 *
 *   shared_rate_limit   two tasks-to-milvus of one group, B at +90 s, one Milvus account whose
 *                       simulator allows RATE per minute (the workers' MILVUS_RATE_PER_MIN),
 *                       a backlog needing more than RATE requests: zero 429s at milvus-sim,
 *                       every task ticketed exactly once, both workers delivered some.
 *   claim_lease_holds   worker A (true clock) claims a task and is frozen (SIGSTOP) during
 *                       its POST (milvus-sim answers A after 3 s); worker B (+90 s, its own topic prefix, the same
 *                       database: the same record delivered twice) must find the claim busy,
 *                       not take it over (no claim_recovered); A resumes and creates the
 *                       ticket; B ends with a dedup hit; one ticket in milvus-sim.
 *   producer_lease_holds ploomes-producer P1 at -90 s holds the lease; P2 at +90 s (180 s
 *                       ahead of P1: on its clock P1's lease ended long ago) stands by and
 *                       never takes it while P1 renews.
 *
 * libfaketime does not wrap C11 cnd_timedwait, which librdkafka uses: a small shim (SHIM_SRC,
 * built by the test with cc) preloaded before it keeps librdkafka's timed waits on time.
 *
 * Each skewed process's own log proves the skew took effect (its time= stamps are ~90 s off
 * and it logs host_clock_offset). Without MongoDB's clock (store_clock_now() returning the
 * host's wall clock) each scenario fails: 429s, a claim taken over, a lease stolen.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "../workers/wtest.h"

#define KEY "SKEW-PLOOMES-KEY"
#define TOKEN "SKEW-MILVUS-TOKEN"
#define ACME_TOKEN "ACM001"
#define FAKETIME_LIB "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
#define SKEW_S 90
#define RATE 10    /* requests per minute at milvus-sim and in MILVUS_RATE_PER_MIN */
#define BACKLOG 14 /* tasks: at least one chamado/criar each, more than RATE requests */

static const char PLOOMES_SEED[] =
    "{\"Contacts\":[{\"Id\":101,\"TypeId\":1,\"Name\":\"ACME Ltda\","
    "\"LegalName\":\"ACME Comercio Ltda\",\"Register\":\"11.222.333/0001-81\","
    "\"Email\":\"contato@acme.com.br\",\"CreateDate\":\"2025-01-10T10:00:00-03:00\"}]}";
static const char MILVUS_SEED[] =
    "{\"clientes\":[{\"id\":500,\"razao_social\":\"ACME Comercio Ltda\","
    "\"nome_fantasia\":\"ACME Ltda\",\"cnpj_cpf\":\"11222333000181\",\"token\":\"" ACME_TOKEN
    "\",\"is_fisica\":false,\"is_ativo\":true}]}";

/* ---- the skew ------------------------------------------------------------------------------ */

/* libfaketime 0.9.10 wraps clock_gettime/gettimeofday and pthread_cond_timedwait, but not C11
 * cnd_timedwait, which librdkafka 2.x uses with a deadline it computes from gettimeofday(): a
 * skewed process would wait 90 s longer than asked (+90 s: group sessions time out) or not at
 * all (-90 s: metadata requests fail). This shim, preloaded before libfaketime, moves such a
 * deadline back to the host's clock. Built by the test with the system's cc. */
static const char SHIM_SRC[] =
    "#define _GNU_SOURCE\n"
    "#include <dlfcn.h>\n#include <threads.h>\n#include <time.h>\n#include <unistd.h>\n"
    "#include <sys/syscall.h>\n"
    "int cnd_timedwait(cnd_t *c, mtx_t *m, const struct timespec *ts)\n{\n"
    "    static int (*real)(cnd_t *, mtx_t *, const struct timespec *);\n"
    "    if (!real)\n"
    "        real = (int (*)(cnd_t *, mtx_t *, const struct timespec *))dlsym(RTLD_NEXT,\n"
    "                                                                  \"cnd_timedwait\");\n"
    "    struct timespec fake, host;\n"
    "    clock_gettime(CLOCK_REALTIME, &fake);               /* libfaketime's */\n"
    "    syscall(SYS_clock_gettime, CLOCK_REALTIME, &host); /* the host's */\n"
    "    long long off = (fake.tv_sec - host.tv_sec) * 1000000000LL + (fake.tv_nsec - host.tv_nsec);\n"
    "    long long t = ts->tv_sec * 1000000000LL + ts->tv_nsec - off;\n"
    "    struct timespec adj = {t / 1000000000LL, t % 1000000000LL};\n"
    "    return real(c, m, &adj);\n}\n";

static char shim_path[256]; /* the built shim, "" before build_shim() */

static void build_shim(void)
{
    if (shim_path[0])
        return;
    char dir[128], src[200], cmd[700];
    testenv_unique(dir, sizeof dir, "/tmp/skew-shim-");
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(src, sizeof src, "%s/shim.c", dir);
    snprintf(shim_path, sizeof shim_path, "%s/shim.so", dir);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    assert_true(fputs(SHIM_SRC, f) >= 0);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "cc -shared -fPIC -O2 -o '%s' '%s' -ldl", shim_path, src);
    if (system(cmd) != 0)
        fail_msg("could not build the cnd_timedwait shim (%s)", cmd);
}

/* ---- helpers ------------------------------------------------------------------------------- */

static simproc *start_sim(const char *binary, const char *cred, const char *faults,
                          const char *seed)
{
    char err[256];
    simproc *p = simproc_start_sim(binary, cred, faults, err, sizeof err);
    assert_non_null(p);
    if (seed)
        assert_int_equal(simproc_seed(p, seed), 0);
    return p;
}

/* Adds to w the variables that run a child with its wall clock offset by skew_s seconds
 * (0: removes them). */
static void set_skew(wt_t *w, int skew_s)
{
    if (skew_s == 0) {
        wt_set(w, "LD_PRELOAD", NULL);
        wt_set(w, "FAKETIME", NULL);
        wt_set(w, "FAKETIME_DONT_FAKE_MONOTONIC", NULL);
        wt_set(w, "FAKETIME_FORCE_MONOTONIC_FIX", NULL);
        return;
    }
    if (access(FAKETIME_LIB, R_OK) != 0)
        fail_msg("%s missing: install Debian's libfaketime (scripts/deps.sh)", FAKETIME_LIB);
    build_shim();
    char ft[16], preload[400];
    snprintf(ft, sizeof ft, "%+ds", skew_s);
    snprintf(preload, sizeof preload, "%s:%s", shim_path, FAKETIME_LIB);
    wt_set(w, "LD_PRELOAD", preload);
    wt_set(w, "FAKETIME", ft);
    wt_set(w, "FAKETIME_DONT_FAKE_MONOTONIC", "1");
    /* libfaketime 0.9.10 otherwise shifts the deadline of pthread_cond_timedwait on a
     * CLOCK_MONOTONIC condition variable by the offset: librdkafka's timed waits then last 90 s
     * longer (or nothing) and its threads time out */
    wt_set(w, "FAKETIME_FORCE_MONOTONIC_FIX", "0");
    /* ASan wants to come first in the link order; libfaketime only wraps clock calls */
    const char *asan = getenv("ASAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts, "%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && asan[0] ? ":" : "");
    wt_set(w, "ASAN_OPTIONS", opts);
}

/* The worker settings of these scenarios on top of wt_init's. */
static void setup_worker(wt_t *w, const simproc *ploomes, const simproc *milvus)
{
    wt_set(w, "PLOOMES_BASE_URL", simproc_api_url(ploomes));
    wt_set(w, "PLOOMES_USER_KEY", KEY);
    wt_set(w, "MILVUS_BASE_URL", simproc_api_url(milvus));
    wt_set(w, "MILVUS_TOKEN", TOKEN);
    wt_set(w, "SYNC_SINCE", "2024-02-24T00:00:00-03:00");
    wt_set(w, "TICKETS_SINCE", "2026-01-01T00:00:00Z");
    wt_set(w, "HTTP_TIMEOUT_MS", "20000");
    wt_set(w, "LOG_LEVEL", "debug");
}

static char *task_record(int64_t id)
{
    char *s = malloc(512);
    assert_non_null(s);
    snprintf(s, 512,
             "{\"Id\":%lld,\"ContactId\":101,\"Title\":\"Instalar roteador %lld\","
             "\"Description\":\"texto\",\"CreateDate\":\"2026-06-01T10:00:00-03:00\","
             "\"LastUpdateDate\":\"2026-06-01T10:00:00-03:00\",\"Tags\":[{\"TagId\":40049716}]}",
             (long long)id, (long long)id);
    return s;
}

static void produce_task(wt_t *w, int64_t id)
{
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    char *v = task_record(id);
    assert_int_equal(wt_produce(w, "ploomes.tasks", key, v), 0);
    free(v);
}

/* Tickets of milvus-sim for task `id` (by the description's marker). */
static int tickets_of(const cJSON *state, int64_t id)
{
    char marker[64];
    snprintf(marker, sizeof marker, "[ploomes:task:%lld]", (long long)id);
    size_t ml = strlen(marker);
    int n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(state, "chamados"))
    {
        const cJSON *d = cJSON_GetObjectItem(t, "chamado_descricao");
        if (cJSON_IsString(d) && strncmp(d->valuestring, marker, ml) == 0)
            n++;
    }
    return n;
}

/* Requests that milvus-sim answered with `status` (from /_admin/stats). */
static long sim_status_count(const simproc *p, int status)
{
    cJSON *st = simproc_stats(p);
    assert_non_null(st);
    long n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(st, "requests"))
    {
        if ((int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "status")) == status)
            n += (long)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "count"));
    }
    cJSON_Delete(st);
    return n;
}

/* The time= of the first line of a log minus the test's wall clock when it was read: how far
 * the process's clock is off (ms; INT64_MIN when the log has no stamped line yet). */
static int64_t log_offset_ms(const char *log)
{
    FILE *f = fopen(log, "r");
    if (f == NULL)
        return INT64_MIN;
    char line[8192];
    int64_t off = INT64_MIN;
    while (off == INT64_MIN && fgets(line, sizeof line, f)) {
        if (strncmp(line, "time=", 5) != 0)
            continue;
        char stamp[40];
        size_t n = strcspn(line + 5, " ");
        if (n >= sizeof stamp)
            continue;
        memcpy(stamp, line + 5, n);
        stamp[n] = '\0';
        int64_t t;
        if (config_parse_rfc3339(stamp, &t) == 0)
            off = t - clock_wall_ms();
    }
    fclose(f);
    return off;
}

/* The process that wrote `log` ran with its clock about skew_s off, and its store saw it. */
static void assert_skewed(const char *log, int skew_s)
{
    int64_t off = log_offset_ms(log);
    if (off == INT64_MIN || off < (int64_t)skew_s * 1000 - 15000 ||
        off > (int64_t)skew_s * 1000 + 15000) {
        pt_dump_log(log, 3000);
        fail_msg("%s: clock offset %lld ms, expected about %d s (libfaketime not effective?)",
                 log, (long long)off, skew_s);
    }
    if (pt_log_count(log, "event=host_clock_offset") < 1) {
        pt_dump_log(log, 3000);
        fail_msg("%s: no host_clock_offset warning", log);
    }
}

typedef struct {
    const char *log;
    const char *needles[4]; /* any of them */
} any_wait_t;

static bool any_logged(void *ctx)
{
    any_wait_t *a = ctx;
    for (size_t i = 0; i < 4; i++)
        if (a->needles[i] && pt_log_count(a->log, a->needles[i]) > 0)
            return true;
    return false;
}

static void wait_log(const char *log, const char *needle, int timeout_ms)
{
    any_wait_t a = {log, {needle, NULL, NULL, NULL}};
    if (!testenv_wait_until(any_logged, &a, timeout_ms, 50)) {
        pt_dump_log(log, 6000);
        fail_msg("waited %d ms for '%s' in %s", timeout_ms, needle, log);
    }
}

static void stop(pid_t pid, const char *log)
{
    assert_int_equal(kill(pid, SIGTERM), 0);
    int rc = simproc_wait(pid, 60000);
    if (rc != 0) {
        pt_dump_log(log, 6000);
        fail_msg("process %d exited with %d", (int)pid, rc);
    }
}

/* ---- 1: the shared rate limit --------------------------------------------------------------- */

typedef struct {
    const wt_t *a, *b;
    int n;
} done2_t;

static bool both_delivered(void *ctx)
{
    done2_t *d = ctx;
    return wt_count_done(d->a, NULL, "delivered", NULL) +
               wt_count_done(d->b, NULL, "delivered", NULL) >=
           d->n;
}

static void shared_rate_limit(void **state)
{
    (void)state;
    int64_t t0 = testenv_now_ms();
    char faults[64];
    snprintf(faults, sizeof faults, "{\"rate_limit_per_min\":%d}", RATE);
    simproc *ploomes = start_sim("ploomes-sim", KEY, "{\"rate_limit_per_min\":0}", PLOOMES_SEED);
    simproc *milvus = start_sim("milvus-sim", TOKEN, faults, MILVUS_SEED);
    wt_t a, b;
    wt_init(&a, "skrl");
    setup_worker(&a, ploomes, milvus);
    wt_setf(&a, "MILVUS_RATE_PER_MIN", RATE);
    wt_set(&a, "MAX_ATTEMPTS", "20");
    assert_int_equal(wt_ensure_topics(&a), 0);
    /* B: the same group, topics and database, its own log, its clock SKEW_S ahead */
    wt_init(&b, "skrlb");
    for (size_t i = 0; i < a.n; i++) {
        char name[64];
        size_t nl = strcspn(a.entries[i], "=");
        assert_true(nl < sizeof name);
        memcpy(name, a.entries[i], nl);
        name[nl] = '\0';
        wt_set(&b, name, a.entries[i] + nl + 1);
    }
    memcpy(b.prefix, a.prefix, sizeof b.prefix);
    memcpy(b.db, a.db, sizeof b.db);
    memcpy(b.mongo_uri, a.mongo_uri, sizeof b.mongo_uri);
    set_skew(&b, SKEW_S);

    pid_t pa = wt_spawn(&a, "tasks-to-milvus", NULL);
    assert_true(pa > 0);
    wait_log(a.log, "event=partitions_assigned", 60000);
    pid_t pb = wt_spawn(&b, "tasks-to-milvus", NULL);
    assert_true(pb > 0);
    /* after the rebalance each has one of the two partitions */
    wait_log(b.log, "event=partitions_assigned worker=tasks-to-milvus count=1", 60000);
    wait_log(a.log, "event=partitions_assigned worker=tasks-to-milvus count=1", 60000);
    assert_skewed(b.log, SKEW_S);

    const int64_t base = 7100;
    for (int64_t id = base; id < base + BACKLOG; id++)
        produce_task(&a, id);
    assert_int_equal(wt_flush(&a), 0);
    int64_t produced = testenv_now_ms();

    /* the first RATE requests go at once; the rest wait for the window to slide */
    done2_t d = {&a, &b, BACKLOG};
    if (!testenv_wait_until(both_delivered, &d, 240000, 200)) {
        pt_dump_log(a.log, 4000);
        pt_dump_log(b.log, 4000);
        fail_msg("only %d + %d (skewed) of %d tasks delivered in 240 s (milvus-sim answered %ld "
                 "with 429): the shared limit starved a worker or let too much through",
                 wt_count_done(&a, NULL, "delivered", NULL),
                 wt_count_done(&b, NULL, "delivered", NULL), BACKLOG, sim_status_count(milvus, 429));
    }
    int64_t took = testenv_now_ms() - produced;
    long r429 = sim_status_count(milvus, 429);
    long total = 0;
    cJSON *st = simproc_stats(milvus);
    assert_non_null(st);
    total = (long)cJSON_GetNumberValue(cJSON_GetObjectItem(st, "total"));
    cJSON_Delete(st);
    int done_a = wt_count_done(&a, NULL, "delivered", NULL);
    int done_b = wt_count_done(&b, NULL, "delivered", NULL);
    fprintf(stderr,
            "shared_rate_limit: %d tasks (A %d, B skewed %+ds %d) in %lld ms, milvus-sim %ld "
            "requests, %ld answered 429\n",
            BACKLOG, done_a, SKEW_S, done_b, (long long)took, total, r429);
    if (r429 != 0) {
        pt_dump_log(b.log, 4000);
        fail_msg("milvus-sim answered %ld requests with 429: the shared limit of %d/min did not "
                 "hold across a %+d s clock skew",
                 r429, RATE, SKEW_S);
    }
    assert_true(total > RATE); /* the backlog did need a second window */
    assert_true(took >= 55000); /* ... and it waited for it */
    assert_true(done_b > 0 && done_a > 0); /* both took part */

    cJSON *ms = simproc_state(milvus);
    assert_non_null(ms);
    for (int64_t id = base; id < base + BACKLOG; id++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)id);
        int n = tickets_of(ms, id);
        int dn = wt_count_done(&a, key, "delivered", NULL) + wt_count_done(&b, key, "delivered", NULL);
        if (n != 1 || dn != 1)
            fail_msg("task %s: %d tickets, %d deliveries (expected 1 and 1)", key, n, dn);
    }
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(ms, "chamados")), BACKLOG);
    cJSON_Delete(ms);

    stop(pa, a.log);
    stop(pb, b.log);
    wt_free(&a);
    wt_free(&b);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
    fprintf(stderr, "shared_rate_limit: %lld ms\n", (long long)(testenv_now_ms() - t0));
}

/* ---- 2: claim leases ------------------------------------------------------------------------ */

static void claim_lease_holds(void **state)
{
    (void)state;
    int64_t t0 = testenv_now_ms();
    simproc *ploomes = start_sim("ploomes-sim", KEY, "{\"rate_limit_per_min\":0}", PLOOMES_SEED);
    simproc *milvus = start_sim("milvus-sim", TOKEN, "{\"rate_limit_per_min\":0}", MILVUS_SEED);
    wt_t a, b;
    wt_init(&a, "skcla");
    wt_init(&b, "skclb");
    /* B reads its own topics (its own prefix) but shares A's database: the same task reaches
     * both, as after a rebalance or a replay */
    wt_set(&b, "MONGODB_URI", a.mongo_uri);
    memcpy(b.db, a.db, sizeof b.db);
    memcpy(b.mongo_uri, a.mongo_uri, sizeof b.mongo_uri);
    setup_worker(&a, ploomes, milvus);
    setup_worker(&b, ploomes, milvus);
    /* a lease far shorter than the skew: a skewed clock would see it expired at once */
    wt_set(&a, "CLAIM_LEASE_SECONDS", "45");
    wt_set(&b, "CLAIM_LEASE_SECONDS", "45");
    assert_int_equal(wt_ensure_topics(&a), 0);
    assert_int_equal(wt_ensure_topics(&b), 0);
    const int64_t id = 7300;
    produce_task(&a, id);
    produce_task(&b, id);
    assert_int_equal(wt_flush(&a), 0);
    assert_int_equal(wt_flush(&b), 0);

    /* every Milvus request of A takes 3 s: A is inside its POST when it is frozen */
    assert_int_equal(simproc_faults(milvus, "{\"latency_ms\":3000}"), 0);
    pid_t pa = wt_spawn(&a, "tasks-to-milvus", NULL);
    assert_true(pa > 0);
    char needle[96];
    snprintf(needle, sizeof needle, "event=ticket_post key=ploomes:task:%lld", (long long)id);
    wait_log(a.log, needle, 90000);
    /* A holds a live claim and is about to POST: freeze it there */
    assert_int_equal(kill(pa, SIGSTOP), 0);
    int64_t frozen = testenv_now_ms();
    assert_int_equal(simproc_faults(milvus, "{\"latency_ms\":0}"), 0);

    set_skew(&b, SKEW_S);
    pid_t pb = wt_spawn(&b, "tasks-to-milvus", NULL);
    assert_true(pb > 0);
    /* B reaches the claim: busy (right), or taken over / delivered (wrong) */
    any_wait_t seen = {b.log,
                       {"outcome=released reason=claim_busy", "event=claim_recovered",
                        "outcome=delivered", "outcome=dedup_hit"}};
    bool reached = testenv_wait_until(any_logged, &seen, 40000, 50);
    int64_t waited = testenv_now_ms() - frozen;
    assert_int_equal(kill(pa, SIGCONT), 0);
    if (!reached) {
        pt_dump_log(b.log, 6000);
        fail_msg("the skewed worker did not reach the claim in 40 s");
    }
    assert_skewed(b.log, SKEW_S);
    int recovered = pt_log_count(b.log, "event=claim_recovered");
    int busy = pt_log_count(b.log, "reason=claim_busy");
    fprintf(stderr,
            "claim_lease_holds: A frozen with a live claim (lease 45 s); B (%+d s) after %lld "
            "ms: claim_busy %d, claim_recovered %d\n",
            SKEW_S, (long long)waited, busy, recovered);
    if (recovered != 0 || busy == 0) {
        pt_dump_log(b.log, 6000);
        fail_msg("the skewed worker took over a live claim (claim_recovered %d, claim_busy %d)",
                 recovered, busy);
    }
    /* A resumes and creates the ticket; B then finds the claim done */
    char key[32];
    snprintf(key, sizeof key, "%lld", (long long)id);
    char done_a[96], done_b[96];
    snprintf(done_a, sizeof done_a, "key=%s outcome=delivered", key);
    snprintf(done_b, sizeof done_b, "key=%s outcome=dedup_hit", key);
    wait_log(a.log, done_a, 60000);
    wait_log(b.log, done_b, 60000);
    assert_int_equal(pt_log_count(b.log, "event=claim_recovered"), 0);
    assert_int_equal(pt_log_count(a.log, "event=claim_conflict"), 0);
    assert_int_equal(wt_count_done(&b, key, "delivered", NULL), 0);
    cJSON *ms = simproc_state(milvus);
    assert_non_null(ms);
    int n = tickets_of(ms, id);
    cJSON_Delete(ms);
    if (n != 1)
        fail_msg("task %lld: %d tickets in milvus-sim (expected 1)", (long long)id, n);

    stop(pa, a.log);
    stop(pb, b.log);
    wt_free(&a);
    wt_free(&b);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
    fprintf(stderr, "claim_lease_holds: %lld ms\n", (long long)(testenv_now_ms() - t0));
}

/* ---- 3: the producer lease ------------------------------------------------------------------ */

static bool lease_changed(void *ctx)
{
    const char *const *logs = ctx;
    return pt_log_count(logs[1], "event=lease_acquired") > 0 ||
           pt_log_count(logs[0], "event=lease_lost") > 0;
}

static void producer_lease_holds(void **state)
{
    (void)state;
    int64_t t0 = testenv_now_ms();
    simproc *ploomes = start_sim("ploomes-sim", KEY, "{\"rate_limit_per_min\":0}", NULL);
    cJSON *arr = cJSON_CreateArray();
    for (int i = 1; i <= 5; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "Id", i);
        cJSON_AddStringToObject(r, "Name", "Contact");
        cJSON_AddItemToArray(arr, r);
    }
    assert_int_equal(pt_seed_set(ploomes, "Contacts", arr), 0);
    wt_t p1, p2;
    wt_init(&p1, "skpl1");
    wt_init(&p2, "skpl2");
    wt_t *ps[] = {&p1, &p2};
    for (int i = 0; i < 2; i++) {
        wt_set(ps[i], "TOPIC_PREFIX", p1.prefix);
        wt_set(ps[i], "MONGODB_URI", p1.mongo_uri);
        wt_set(ps[i], "PLOOMES_BASE_URL", simproc_api_url(ploomes));
        wt_set(ps[i], "PLOOMES_USER_KEY", KEY);
        wt_set(ps[i], "PLOOMES_ENTITIES", "contacts");
        wt_set(ps[i], "POLL_INTERVAL_SECONDS", "1");
        wt_set(ps[i], "SYNC_SINCE", "2024-02-24T00:00:00-03:00");
        wt_set(ps[i], "PRODUCER_LEASE_SECONDS", "15"); /* renewed every 5 s */
        wt_set(ps[i], "LOG_LEVEL", "info");
    }
    set_skew(&p1, -SKEW_S);
    set_skew(&p2, SKEW_S);
    int port1 = 0, port2 = 0;
    pid_t a = pt_start_daemon("ploomes-producer", wt_env(&p1), p1.log, &port1);
    assert_true(a > 0);
    wait_log(p1.log, "event=lease_acquired source=ploomes", 60000);
    wait_log(p1.log, "event=scan_done", 60000);
    pid_t b = pt_start_daemon("ploomes-producer", wt_env(&p2), p2.log, &port2);
    assert_true(b > 0);
    any_wait_t settled = {p2.log, {"event=standby source=ploomes", "event=lease_acquired", NULL, NULL}};
    assert_true(testenv_wait_until(any_logged, &settled, 60000, 50));
    assert_skewed(p1.log, -SKEW_S);
    assert_skewed(p2.log, SKEW_S);
    /* three renewal periods of P1 and standby retries of P2: the lease must not move */
    const char *logs[] = {p1.log, p2.log};
    bool moved = testenv_wait_until(lease_changed, (void *)logs, 16000, 100);
    int stolen = pt_log_count(p2.log, "event=lease_acquired");
    int lost = pt_log_count(p1.log, "event=lease_lost");
    int scans_b = pt_log_count(p2.log, "event=scan_done");
    fprintf(stderr,
            "producer_lease_holds: P1 (%+d s) holds, P2 (%+d s): lease_acquired %d, P1 "
            "lease_lost %d, P2 scans %d\n",
            -SKEW_S, SKEW_S, stolen, lost, scans_b);
    if (moved || stolen || lost || scans_b) {
        pt_dump_log(p1.log, 3000);
        pt_dump_log(p2.log, 3000);
        fail_msg("the skewed standby took the lease of a live producer");
    }
    stop(a, p1.log);
    stop(b, p2.log);
    wt_free(&p1);
    wt_free(&p2);
    assert_int_equal(simproc_stop(ploomes), 0);
    fprintf(stderr, "producer_lease_holds: %lld ms\n", (long long)(testenv_now_ms() - t0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(claim_lease_holds),
        cmocka_unit_test(producer_lease_holds),
        cmocka_unit_test(shared_rate_limit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    if (shim_path[0]) { /* the shim's folder: shim.c and shim.so */
        char path[300];
        snprintf(path, sizeof path, "%.*s/shim.c", (int)(strlen(shim_path) - 8), shim_path);
        unlink(path);
        unlink(shim_path);
        path[strlen(path) - 7] = '\0';
        rmdir(path);
    }
    return rc;
}
