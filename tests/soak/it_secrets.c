/* Secrets never leave the process (issue 12): the whole pipeline — both producers, the four
 * workers, pipeline-status (--json, the plain table, and --serve with every page), pipeline-dlq
 * (list/show --json) — runs against the simulators (the demo account of scripts/demo_data.py,
 * plus a contact with an invalid CNPJ that gets dead-lettered) with recognisable credentials:
 *   PLOOMES_USER_KEY, MILVUS_TOKEN, STATUS_REPLAY_TOKEN, and a MongoDB password (in a URI given
 *   to every binary's --print-config / --check-config and to a worker that cannot connect).
 * Then every text any of them produced is scanned for each secret and its obvious transforms
 * (as is, base64, percent-encoded; for the MongoDB password also as written in the URI):
 *   - every log line of every process, the output of every CLI call (--help, --print-config,
 *     --check-config, status, dlq);
 *   - every record (key, value, header names and values) of the five topics, dead letters
 *     included;
 *   - /metrics, /healthz and /readyz of every daemon; /, /api/status, /api/dlq, /metrics,
 *     /healthz, /readyz and a letter's page of pipeline-status --serve.
 * A hit fails the test with the location (file and line, topic and offset, or URL).
 * An API that echoes the caller's credential back in an error body: a proxy in front of each
 * simulator (tests/support/hostile_server.h) answers one ticket create with a 400 whose body
 * quotes MILVUS_TOKEN and one contact create with a 400 quoting PLOOMES_USER_KEY; both records
 * are dead-lettered with that body in their x-dlq response header, so the scrubbing of dead
 * letters is exercised too (the ticket create's body also quotes the token percent-encoded and
 * in base64: log_ and the dead-letter writer scrub those forms of every secret since issue 12).
 * A third answer (a page read of ploomes-producer) quotes the key percent-encoded and in
 * base64: the producer's log sees it.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../workers/wtest.h"
#include "hostile_server.h"

#define PKEY "PLK+s3cr3t/7f3a9c1e5b"
#define MTOKEN "MVT/s3cr3t+2d8e4b6a0c"
#define RTOKEN "RPL-s3cr3t-5e1c0a77d2"
#define MPASS_URI "MgPw%21s3cr3t-91c7e0" /* as written in the URI */
#define MPASS "MgPw!s3cr3t-91c7e0"       /* percent-decoded */

/* ---- the needles ------------------------------------------------------------------------- */

typedef struct {
    char text[160];
    char what[96];
} needle_t;

static needle_t needles[32];
static size_t nneedles;
static int hits;
static bool quiet; /* the scanner's self-check: count, do not report */

static void add_needle(const char *text, const char *what)
{
    assert_true(nneedles < sizeof needles / sizeof needles[0]);
    snprintf(needles[nneedles].text, sizeof needles[0].text, "%s", text);
    snprintf(needles[nneedles].what, sizeof needles[0].what, "%s", what);
    nneedles++;
}

static void base64(const char *in, char *out, size_t size)
{
    static const char tb[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), o = 0;
    for (size_t i = 0; i < n && o + 5 < size; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        out[o++] = tb[(v >> 18) & 63];
        out[o++] = tb[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tb[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tb[v & 63] : '=';
    }
    out[o] = '\0';
}

/* The secret, its base64 (whole, and without padding: a prefix of a longer encoding), and its
 * percent-encoding. */
static void add_secret(const char *secret, const char *name)
{
    char buf[160], what[96];
    add_needle(secret, name);
    base64(secret, buf, sizeof buf);
    snprintf(what, sizeof what, "%s (base64)", name);
    add_needle(buf, what);
    simproc_urlencode(buf, sizeof buf, secret);
    if (strcmp(buf, secret) != 0) {
        snprintf(what, sizeof what, "%s (url-encoded)", name);
        add_needle(buf, what);
    }
}

/* Scans len bytes of text (any bytes) for every needle; a hit is reported with `where` and the
 * line number, and counted. */
static void scan(const char *where, const char *text, size_t len)
{
    if (text == NULL)
        return;
    for (size_t k = 0; k < nneedles; k++) {
        size_t nl = strlen(needles[k].text);
        for (size_t i = 0; i + nl <= len; i++) {
            if (memcmp(text + i, needles[k].text, nl) != 0)
                continue;
            hits++;
            if (quiet)
                continue;
            int line = 1;
            for (size_t j = 0; j < i; j++)
                line += text[j] == '\n';
            fprintf(stderr, "SECRET LEAK: %s found in %s (line %d, byte %zu)\n",
                    needles[k].what, where, line, i);
        }
    }
}

static void scan_file(const char *path)
{
    char *t = testenv_read_file(path);
    if (t == NULL)
        fail_msg("cannot read %s", path);
    scan(path, t, strlen(t));
    free(t);
}

static void scan_http(int port, const char *path, const char *label, bool must_200)
{
    char *body = NULL;
    long st = pt_http_get(port, path, &body);
    if (must_200 && st != 200)
        fail_msg("%s %s answered %ld", label, path, st);
    char where[256];
    snprintf(where, sizeof where, "%s http://127.0.0.1:%d%s", label, port, path);
    if (body)
        scan(where, body, strlen(body));
    free(body);
}

/* Every record of <prefix><base>: key, value, header names and values. Returns the count. */
static size_t scan_topic(const wt_t *w, const char *base)
{
    wt_msgs_t m;
    assert_int_equal(wt_read_topic_ex(w, base, &m, 60000, true), 0);
    for (size_t i = 0; i < m.n; i++) {
        const wt_msg_t *x = &m.msgs[i];
        char where[256];
        snprintf(where, sizeof where, "topic %s%s partition %d offset %lld key", w->prefix, base,
                 (int)x->partition, (long long)x->offset);
        if (x->key)
            scan(where, x->key, strlen(x->key));
        snprintf(where, sizeof where, "topic %s%s partition %d offset %lld value", w->prefix,
                 base, (int)x->partition, (long long)x->offset);
        if (x->value)
            scan(where, x->value, x->value_len);
        for (size_t h = 0; h < x->header_count; h++) {
            snprintf(where, sizeof where, "topic %s%s partition %d offset %lld header %s",
                     w->prefix, base, (int)x->partition, (long long)x->offset, x->hnames[h]);
            scan(where, x->hnames[h], strlen(x->hnames[h]));
            if (x->hvalues[h])
                scan(where, x->hvalues[h], strlen(x->hvalues[h]));
        }
    }
    size_t n = m.n;
    wt_msgs_free(&m);
    return n;
}

/* ---- running things ---------------------------------------------------------------------- */

static const char *const DAEMONS[] = {"ploomes-producer",  "milvus-producer",
                                      "clients-to-milvus", "clients-to-ploomes",
                                      "tasks-to-milvus",   "interactions-to-milvus"};
#define NDAEMONS 6
static const char *const CLIS[] = {"pipeline-status", "pipeline-dlq"};

/* A log file of this test for `name`. */
static void log_path(const wt_t *w, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/%s%s.log", w->prefix, name);
}

/* Runs binary with args and the test's environment plus `extra` (may be NULL) to its end, its
 * output into <prefix><label>.log; returns the exit code and scans the output later (the path
 * goes to paths[]). */
static char paths[64][256];
static size_t npaths;

static int run_cli(wt_t *w, const char *binary, const char *const *args, const char *extra,
                   const char *label)
{
    assert_true(npaths < 64);
    log_path(w, label, paths[npaths], sizeof paths[0]);
    unlink(paths[npaths]);
    const char *const *env = wt_env(w);
    const char *e[WT_ENV_MAX + 2];
    size_t n = 0;
    for (; env[n]; n++)
        e[n] = env[n];
    if (extra)
        e[n++] = extra;
    e[n] = NULL;
    int rc = pt_run(binary, args, e, paths[npaths], 120000);
    npaths++;
    return rc;
}

typedef struct {
    const wt_t *w;
    const simproc *milvus;
    hostile_server_t *hp, *hm; /* the echoing proxies */
    char logs[NDAEMONS][256];
} progress_t;

static int count_done(const char *log)
{
    return pt_log_count(log, "event=record_done ");
}

static bool pipeline_progressed(void *ctx)
{
    progress_t *p = ctx;
    for (int i = 2; i < NDAEMONS; i++) /* every worker finished records */
        if (count_done(p->logs[i]) == 0)
            return false;
    if (pt_log_count(p->logs[2], "outcome=dead_lettered") == 0)
        return false;
    cJSON *st = simproc_state(p->milvus);
    int tickets = st ? cJSON_GetArraySize(cJSON_GetObjectItem(st, "chamados")) : 0;
    cJSON_Delete(st);
    /* the invalid CNPJ and the two echoed credentials are dead letters */
    return tickets >= 2 && hostile_server_hits(p->hp, 0) == 1 &&
           hostile_server_hits(p->hp, 1) == 1 &&
           hostile_server_hits(p->hm, 0) == 1 && wt_topic_count(p->w, "pipeline.dlq") >= 3 &&
           pt_log_count(p->logs[3], "outcome=dead_lettered") >= 1 &&
           pt_log_count(p->logs[4], "outcome=dead_lettered") +
                   pt_log_count(p->logs[5], "outcome=dead_lettered") >=
               1;
}

static void secrets_never_leave(void **state)
{
    (void)state;
    int64_t t0 = testenv_now_ms();
    char err[512];
    add_secret(PKEY, "PLOOMES_USER_KEY");
    add_secret(MTOKEN, "MILVUS_TOKEN");
    add_secret(RTOKEN, "STATUS_REPLAY_TOKEN");
    add_secret(MPASS, "MongoDB password");
    add_needle(MPASS_URI, "MongoDB password (as in the URI)");

    /* the demo account, and one contact with an invalid CNPJ */
    wt_t w;
    wt_init(&w, "sec");
    char dir[256], cmd[600], pstate[300], mstate[300];
    snprintf(dir, sizeof dir, "/tmp/%sdemo", w.prefix);
    snprintf(cmd, sizeof cmd, "python3 '%s/scripts/demo_data.py' write '%s'",
             testenv_require("PIPELINE_SOURCE_DIR"), dir);
    assert_int_equal(system(cmd), 0);
    snprintf(pstate, sizeof pstate, "%s/ploomes.json", dir);
    snprintf(mstate, sizeof mstate, "%s/milvus.json", dir);
    const char *pargs[] = {"--port", "0", "--user-key", PKEY, "--state", pstate, NULL};
    const char *margs[] = {"--port", "0", "--token", MTOKEN, "--state", mstate, NULL};
    simproc *ploomes = simproc_start("ploomes-sim", pargs, err, sizeof err);
    if (!ploomes)
        fail_msg("%s", err);
    simproc *milvus = simproc_start("milvus-sim", margs, err, sizeof err);
    if (!milvus)
        fail_msg("%s", err);
    assert_int_equal(simproc_faults(ploomes, "{\"rate_limit_per_min\":0}"), 0);
    assert_int_equal(simproc_faults(milvus, "{\"rate_limit_per_min\":0}"), 0);
    progress_t prog = {.w = &w, .milvus = milvus};
    assert_int_equal(simproc_seed(ploomes,
                                  "{\"Contacts\":[{\"Id\":899000001,\"TypeId\":1,\"Name\":"
                                  "\"Documento Errado\",\"Register\":\"11.222.333/0001-00\"}]}"),
                     0);

    /* the proxies that echo a credential back once each */
    hostile_server_t *hp = hostile_server_start(simproc_base_url(ploomes), err, sizeof err);
    if (!hp)
        fail_msg("%s", err);
    hostile_server_t *hm = hostile_server_start(simproc_base_url(milvus), err, sizeof err);
    if (!hm)
        fail_msg("%s", err);
    hostile_rule_t rp = {.method = "POST", .path_contains = "/Contacts", .times = 1,
                         .mode = HOSTILE_STATUS, .status = 400,
                         .body = "{\"value\":\"User-Key " PKEY " may not create contacts\"}"};
    /* the ticket create's echo quotes the token as is, percent-encoded and in base64: the
     * dead letter carries that body in its x-dlq response header */
    char mecho[400], mb64[100], mpct[100];
    base64(MTOKEN, mb64, sizeof mb64);
    simproc_urlencode(mpct, sizeof mpct, MTOKEN);
    snprintf(mecho, sizeof mecho, "{\"mensagem\":\"token " MTOKEN " (%s, %s) sem acesso ao cliente\"}",
             mpct, mb64);
    hostile_rule_t rm = {.method = "POST", .path_contains = "/chamado/criar", .times = 1,
                         .mode = HOSTILE_STATUS, .status = 400, .body = mecho};
    /* a page read answered with the key quoted percent-encoded and in base64 (what an API
     * that echoes a query string or a Basic header would do): only the producer's log sees it */
    char echo[400], b64[100], pct[100];
    base64(PKEY, b64, sizeof b64);
    simproc_urlencode(pct, sizeof pct, PKEY);
    snprintf(echo, sizeof echo, "{\"value\":\"bad request ?key=%s (%s)\"}", pct, b64);
    hostile_rule_t rg = {.method = "GET", .path_contains = "/InteractionRecords", .times = 1,
                         .mode = HOSTILE_STATUS, .status = 400, .body = echo};
    assert_int_equal(hostile_server_add(hp, &rp), 0);
    assert_int_equal(hostile_server_add(hm, &rm), 0);
    assert_int_equal(hostile_server_add(hp, &rg), 1);
    prog.hp = hp;
    prog.hm = hm;
    char murl[200];
    snprintf(murl, sizeof murl, "%s/api", hostile_server_url(hm));

    wt_set(&w, "PLOOMES_BASE_URL", hostile_server_url(hp));
    wt_set(&w, "PLOOMES_USER_KEY", PKEY);
    wt_set(&w, "MILVUS_BASE_URL", murl);
    wt_set(&w, "MILVUS_TOKEN", MTOKEN);
    wt_set(&w, "POLL_INTERVAL_SECONDS", "1");
    wt_set(&w, "MILVUS_MIN_ID", "0");
    wt_set(&w, "SYNC_SINCE", "2020-01-01T00:00:00Z");
    wt_set(&w, "LOG_LEVEL", "debug");
    assert_int_equal(wt_ensure_topics(&w), 0);

    /* the pipeline */
    pid_t pids[NDAEMONS];
    int ports[NDAEMONS];
    char scrape[1024] = "";
    for (int i = 0; i < NDAEMONS; i++) {
        log_path(&w, DAEMONS[i], prog.logs[i], sizeof prog.logs[i]);
        unlink(prog.logs[i]);
        pids[i] = pt_start_daemon(DAEMONS[i], wt_env(&w), prog.logs[i], &ports[i]);
        if (pids[i] <= 0)
            fail_msg("%s did not start", DAEMONS[i]);
        if (i >= 2) {
            size_t l = strlen(scrape);
            snprintf(scrape + l, sizeof scrape - l, "%shttp://127.0.0.1:%d/metrics",
                     l ? "," : "", ports[i]);
        }
    }
    if (!testenv_wait_until(pipeline_progressed, &prog, 120000, 250)) {
        for (int i = 0; i < NDAEMONS; i++)
            pt_dump_log(prog.logs[i], 1500);
        fail_msg("the pipeline did not deliver tickets, clients and a dead letter in 120 s");
    }
    for (int i = 0; i < NDAEMONS; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s", DAEMONS[i]);
        scan_http(ports[i], "/metrics", label, true);
        scan_http(ports[i], "/healthz", label, true);
        scan_http(ports[i], "/readyz", label, false);
    }

    /* pipeline-status: --json, the table, and the page with every view */
    const char *a_json[] = {"--json", NULL};
    assert_int_equal(run_cli(&w, "pipeline-status", a_json, NULL, "status-json"), 0);
    assert_int_equal(run_cli(&w, "pipeline-status", NULL, NULL, "status-table"), 0);
    char serve_log[256];
    wt_set(&w, "STATUS_SCRAPE_URLS", scrape);
    wt_set(&w, "STATUS_REPLAY_TOKEN", RTOKEN);
    log_path(&w, "status-serve", serve_log, sizeof serve_log);
    unlink(serve_log);
    int sport = pt_free_port();
    assert_true(sport > 0);
    char sport_s[16];
    snprintf(sport_s, sizeof sport_s, "%d", sport);
    const char *s_args[] = {"--serve", sport_s, "--interval", "1", "--allow-replay", NULL};
    pid_t spid = simproc_spawn("pipeline-status", s_args, wt_env(&w), serve_log, err, sizeof err);
    assert_true(spid > 0);
    int64_t until = testenv_now_ms() + 60000;
    while (pt_http_get(sport, "/healthz", NULL) != 200) {
        if (testenv_now_ms() > until) {
            pt_dump_log(serve_log, 3000);
            fail_msg("pipeline-status --serve did not answer /healthz");
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL); /* polling a port: nothing to wait on */
    }
    /* a letter to show: the first of the DLQ */
    wt_msgs_t dlq;
    assert_int_equal(wt_read_topic(&w, "pipeline.dlq", &dlq, 60000), 0);
    assert_true(dlq.n >= 1);
    char letter[64], pslash[64];
    snprintf(letter, sizeof letter, "/letter?p=%d&o=%lld", (int)dlq.msgs[0].partition,
             (long long)dlq.msgs[0].offset);
    snprintf(pslash, sizeof pslash, "%d/%lld", (int)dlq.msgs[0].partition,
             (long long)dlq.msgs[0].offset);
    wt_msgs_free(&dlq);
    scan_http(sport, "/", "pipeline-status --serve", true);
    scan_http(sport, "/api/status", "pipeline-status --serve", true);
    scan_http(sport, "/api/dlq", "pipeline-status --serve", true);
    scan_http(sport, "/metrics", "pipeline-status --serve", true);
    scan_http(sport, "/readyz", "pipeline-status --serve", false);
    scan_http(sport, letter, "pipeline-status --serve", true);
    assert_int_equal(kill(spid, SIGTERM), 0);
    assert_int_equal(simproc_wait(spid, 30000), 0);
    scan_file(serve_log);

    /* pipeline-dlq */
    const char *d_list[] = {"list", "--json", NULL};
    const char *d_show[] = {"show", pslash, "--json", NULL};
    const char *d_stats[] = {"stats", NULL};
    assert_int_equal(run_cli(&w, "pipeline-dlq", d_list, NULL, "dlq-list"), 0);
    assert_int_equal(run_cli(&w, "pipeline-dlq", d_show, NULL, "dlq-show"), 0);
    assert_int_equal(run_cli(&w, "pipeline-dlq", d_stats, NULL, "dlq-stats"), 0);

    /* stop the pipeline: each exits 0 */
    for (int i = 0; i < NDAEMONS; i++) {
        assert_int_equal(kill(pids[i], SIGTERM), 0);
        int rc = simproc_wait(pids[i], 60000);
        if (rc != 0) {
            pt_dump_log(prog.logs[i], 3000);
            fail_msg("%s exited with %d", DAEMONS[i], rc);
        }
    }

    /* every binary's --help, --print-config and --check-config, with a password in the URI */
    char uri_pw[600], e_uri[640];
    const char *base = testenv_require("MONGODB_URI");
    const char *hostpart = strstr(base, "://");
    assert_non_null(hostpart);
    hostpart += 3;
    const char *at = strchr(hostpart, '@');
    if (at && at < hostpart + strcspn(hostpart, "/"))
        hostpart = at + 1;
    snprintf(uri_pw, sizeof uri_pw, "mongodb://secuser:%s@%.*s/%s", MPASS_URI,
             (int)strcspn(hostpart, "/?"), hostpart, w.db);
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", uri_pw);
    for (size_t i = 0; i < NDAEMONS + 2; i++) {
        const char *bin = i < NDAEMONS ? DAEMONS[i] : CLIS[i - NDAEMONS];
        char label[96];
        const char *h[] = {"--help", NULL};
        const char *p[] = {"--print-config", NULL};
        const char *c[] = {"--check-config", NULL};
        snprintf(label, sizeof label, "%s-help", bin);
        assert_int_equal(run_cli(&w, bin, h, e_uri, label), 0);
        snprintf(label, sizeof label, "%s-print-config", bin);
        assert_int_equal(run_cli(&w, bin, p, e_uri, label), 0);
        snprintf(label, sizeof label, "%s-check-config", bin);
        int rc = run_cli(&w, bin, c, e_uri, label);
        assert_true(rc == 0 || rc == 2);
    }
    /* a worker that cannot reach its MongoDB (a closed port), password in the URI */
    char uri_down[300];
    snprintf(uri_down, sizeof uri_down,
             "MONGODB_URI=mongodb://secuser:%s"
             "@127.0.0.1:1/%s?serverSelectionTimeoutMS=1000&connectTimeoutMS=1000",
             MPASS_URI, w.db);
    int rc = run_cli(&w, "clients-to-milvus", NULL, uri_down, "mongo-down");
    assert_true(rc != 0);
    /* the same through MONGODB_PASSWORD */
    char uri_user[300];
    snprintf(uri_user, sizeof uri_user,
             "MONGODB_URI=mongodb://secuser@127.0.0.1:1/%s?serverSelectionTimeoutMS=1000", w.db);
    wt_set(&w, "MONGODB_PASSWORD", MPASS);
    rc = run_cli(&w, "tasks-to-milvus", NULL, uri_user, "mongo-down-password");
    assert_true(rc != 0);
    wt_set(&w, "MONGODB_PASSWORD", NULL);

    /* the scan */
    for (int i = 0; i < NDAEMONS; i++)
        scan_file(prog.logs[i]);
    for (size_t i = 0; i < npaths; i++)
        scan_file(paths[i]);
    static const char *const topics[] = {"ploomes.contacts", "ploomes.tasks",
                                         "ploomes.interactions", "milvus.clients",
                                         "pipeline.dlq"};
    size_t records = 0;
    for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++)
        records += scan_topic(&w, topics[i]);
    /* the scanner itself finds a needle */
    int before = hits;
    quiet = true;
    char probe[200];
    base64(PKEY, probe, sizeof probe);
    scan("self-check", probe, strlen(probe));
    scan("self-check", "x " MTOKEN " y", strlen(MTOKEN) + 4);
    quiet = false;
    assert_int_equal(hits, before + 2);
    hits = before;

    fprintf(stderr,
            "secrets_never_leave: %zu needles; %d process logs, %zu CLI outputs, %zu topic "
            "records, %d daemons' /metrics /healthz /readyz, 6 status pages scanned: %d hits "
            "(%lld ms)\n",
            nneedles, NDAEMONS + 1, npaths, records, NDAEMONS, hits,
            (long long)(testenv_now_ms() - t0));
    assert_int_equal(hits, 0);
    assert_true(records > 10);

    wt_free(&w);
    hostile_server_stop(hp);
    hostile_server_stop(hm);
    assert_int_equal(simproc_stop(ploomes), 0);
    assert_int_equal(simproc_stop(milvus), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(secrets_never_leave),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
