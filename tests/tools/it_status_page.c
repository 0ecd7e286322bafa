/* it_status_page: the status page of pipeline-status --serve, loaded in a real browser
 * (headless Chromium) against a pipeline in a known state on the real broker and MongoDB:
 * a worker group with a known lag (3 on partition 0, 4 on partition 1), two dead letters
 * written by the workers' DLQ writer (a record with an e-mail address and a CPF), a producer
 * cursor, a held lease, three tickets of the shared Ploomes rate limit, and a worker /metrics
 * endpoint (a real metrics_ server in this process) scraped through STATUS_SCRAPE_URLS.
 *   - "/" rendered by Chromium shows those numbers and keys, the records totals summed over
 *     reasons, inline SVG sparklines, masked personal data, no script; a screenshot is kept;
 *   - a letter's page shows every header and the pretty record, masked, with a replay button
 *     leading to a confirmation form that asks for the token;
 *   - /api/status and /api/dlq give the same data as JSON;
 *   - replay over HTTP POST: without or with a wrong token refused (nothing sent), with it
 *     delivered once to the original topic, a second replay refused (409), still once;
 *   - without --allow-replay: no form on the letter's pages and POST /replay is 405;
 *     --allow-replay without STATUS_REPLAY_TOKEN does not start. */
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../workers/wtest.h"
#include "metrics.h"
#include "ratelimit.h"

extern char **environ;

#define PLOOMES_URL "http://127.0.0.1:9/api"
#define PLOOMES_KEY "status-page-test-key-123"
#define REPLAY_TOKEN "page-test-token-7f3a9c"
#define RECORD "{\"Id\":5001,\"Title\":\"call back\",\"Email\":\"maria.silva@example.com\"," \
               "\"Register\":\"52998224725\"}"
#define ANSWER "{\"error\":\"Contact maria.silva@example.com exists\"}"

static atomic_int confirmed;

/* <build>/test-artifacts (made if missing) into buf. */
static const char *artifact_dir(char *buf, size_t size)
{
    char bin[512];
    testenv_bin(bin, sizeof bin, "pipeline-status"); /* <build>/bin/pipeline-status */
    char *dir = dirname(dirname(bin));
    snprintf(buf, size, "%s/test-artifacts", dir);
    mkdir(buf, 0755);
    return buf;
}

/* Runs headless Chromium with one extra argument and the URL, its stdout into out_path.
 * Returns its exit code. */
static int chromium(const wt_t *w, const char *arg, const char *url, const char *out_path)
{
    char profile[256];
    snprintf(profile, sizeof profile, "/tmp/%schromium", w->prefix);
    char user_dir[300];
    snprintf(user_dir, sizeof user_dir, "--user-data-dir=%s", profile);
    char *const argv[] = {"chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          "--no-first-run", "--disable-extensions", "--hide-scrollbars",
                          "--window-size=1280,1800", user_dir, (char *)arg, (char *)url, NULL};
    posix_spawn_file_actions_t fa;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, out_path,
                                                      O_WRONLY | O_CREAT | O_TRUNC, 0644), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0), 0);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, "chromium", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "cannot run chromium (%s): install the Debian package 'chromium' "
                        "(scripts/deps.sh)\n", strerror(rc));
        fail();
    }
    return simproc_wait(pid, 180000);
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes Chromium's profile directory of this test. */
static void chromium_cleanup(const wt_t *w)
{
    char profile[256];
    snprintf(profile, sizeof profile, "/tmp/%schromium", w->prefix);
    nftw(profile, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The DOM of `path` as Chromium renders it (malloc'd). */
static char *dom(const wt_t *w, int port, const char *path, const char *name)
{
    char url[512], out[1024], dir[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    snprintf(out, sizeof out, "%s/it_status_page-%s.html", artifact_dir(dir, sizeof dir), name);
    assert_int_equal(chromium(w, "--dump-dom", url, out), 0);
    char *text = testenv_read_file(out);
    assert_non_null(text);
    assert_non_null(strstr(text, "</html>"));
    return text;
}

static void screenshot(const wt_t *w, int port, const char *path, const char *name)
{
    char url[512], arg[1100], out[1024], dir[512], log[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    snprintf(out, sizeof out, "%s/it_status_page-%s.png", artifact_dir(dir, sizeof dir), name);
    snprintf(arg, sizeof arg, "--screenshot=%s", out);
    snprintf(log, sizeof log, "%s.chromium", w->log);
    unlink(out);
    assert_int_equal(chromium(w, arg, url, log), 0);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_true(st.st_size > 10000); /* a real picture, not an empty page */
    printf("screenshot of %s: %s\n", path, out);
}

static size_t collect(char *data, size_t size, size_t n, void *userp)
{
    return fwrite(data, size, n, (FILE *)userp);
}

/* POST a form to the page; returns the status (-1 no answer); *out the body when not NULL. */
static long post_form(int port, const char *path, const char *form, char **out)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    char *buf = NULL;
    size_t blen = 0;
    FILE *mem = open_memstream(&buf, &blen);
    CURL *c = curl_easy_init();
    assert_non_null(mem);
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 120000L);
    long status = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    fclose(mem);
    if (out)
        *out = buf;
    else
        free(buf);
    return status;
}

static void letter_confirmed(void *opaque, bool ok, const char *error)
{
    (void)error;
    if (ok)
        atomic_fetch_add((atomic_int *)opaque, 1);
}

static void dead_letter(kafka_dlq_t *dlq, const char *topic, int64_t off, const char *key,
                        const char *value)
{
    kafka_header_t h[] = {{"source", "ploomes", 7}, {"entity", "task", 4}};
    kafka_record_t rec = {.topic = topic, .partition = 0, .offset = off, .key = key,
                          .key_len = strlen(key), .value = value, .value_len = strlen(value),
                          .headers = h, .header_count = 2, .timestamp_ms = -1};
    kafka_dlq_error_t e = {.exception_class = "HttpStatus503", .exception_message = "HTTP 503",
                           .attempts = 3, .http_status = 503, .response = ANSWER,
                           .response_len = strlen(ANSWER)};
    char err[512];
    assert_int_equal(kafka_dlq_send(dlq, &rec, &e, letter_confirmed, &confirmed, err, sizeof err),
                     0);
}

static void known_state(wt_t *w)
{
    assert_int_equal(wt_ensure_topics(w), 0);
    char tasks[KAFKA_TOPIC_NAME_MAX], err[512];
    wt_topic(w, "ploomes.tasks", tasks, sizeof tasks);
    kafka_settings_t s = wt_settings();
    rd_kafka_conf_t *conf = kafka_conf_from_settings(&s, err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    for (int i = 0; i < 14; i++) /* 10 on partition 0, 4 on partition 1 */
        assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(tasks),
                                           RD_KAFKA_V_PARTITION(i < 10 ? 0 : 1),
                                           RD_KAFKA_V_VALUE("{}", 2), RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
    /* lag 3 on p0; nothing committed on p1: lag 4 */
    assert_int_equal(wt_commit_group(w, "tasks-to-milvus", tasks, 0, 7), 0);

    kafka_producer_t *p = kafka_producer_new(&s, "it_status_page", err, sizeof err);
    assert_non_null(p);
    kafka_dlq_opts_t o = {.producer = p, .topic_prefix = w->prefix,
                          .connector_name = "tasks-to-milvus"};
    kafka_dlq_t *dlq = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(dlq);
    dead_letter(dlq, tasks, 3, "5001", RECORD);
    dead_letter(dlq, tasks, 4, "5002", "{\"Id\":5002,\"Title\":\"second\"}");
    assert_int_equal(kafka_producer_flush(p, 30000, err, sizeof err), 0);
    assert_int_equal(atomic_load(&confirmed), 2);
    kafka_dlq_free(dlq);
    assert_int_equal(kafka_producer_close(p, 5000, err, sizeof err), 0);

    store_t *st = wt_store_open(w);
    assert_non_null(st);
    assert_int_equal(store_cursor_set(st, "ploomes.task", "2026-01-02T03:04:05.678Z", 77, err,
                                      sizeof err), STORE_OK);
    store_lease_t l;
    assert_int_equal(store_lease_acquire(st, "producer:ploomes", "host-1/abc", 600000, &l, err,
                                         sizeof err), STORE_OK);
    ratelimit_options_t ro = {.pool = store_pool(st), .database = store_db_name(st),
                              .base_url = PLOOMES_URL, .secret = PLOOMES_KEY, .limit = 50,
                              .window_ms = 600000, .margin_ms = -1, .name = "ploomes",
                              .spacing_ms = -1 /* three tickets back to back */};
    ratelimit_t *rl = ratelimit_new(&ro, err, sizeof err);
    assert_non_null(rl);
    for (int i = 0; i < 3; i++) {
        int64_t wait_ms = 0;
        assert_int_equal(ratelimit_try_acquire(rl, &wait_ms, err, sizeof err), 1);
    }
    ratelimit_free(rl);
    store_close(st);
}

typedef struct {
    int port;
    const char *needle;
} probe_t;

/* The page at "/" holds needle (the serving process sampled what the test set up). */
static bool page_has(void *ctx)
{
    probe_t *p = ctx;
    char *body = NULL;
    long st = pt_http_get(p->port, "/", &body);
    bool ok = st == 200 && body && strstr(body, p->needle);
    free(body);
    return ok;
}

static pid_t serve(wt_t *w, int port, bool allow_replay, const char *name)
{
    char ports[16], log[256], err[256];
    snprintf(ports, sizeof ports, "%d", port);
    snprintf(log, sizeof log, "%s.%s", w->log, name);
    const char *args[] = {"--serve", ports, "--interval", "1", allow_replay ? "--allow-replay"
                                                                            : NULL, NULL};
    pid_t pid = simproc_spawn("pipeline-status", args, wt_env(w), log, err, sizeof err);
    assert_true(pid > 0);
    return pid;
}

/* How many records of <prefix>ploomes.tasks carry key and x-dlq.replayed-from. */
static int replayed(wt_t *w, const char *key)
{
    wt_msgs_t m;
    assert_int_equal(wt_read_topic_ex(w, "ploomes.tasks", &m, 30000, false), 0);
    int n = 0;
    for (size_t i = 0; i < m.n; i++) {
        if (!m.msgs[i].key || strcmp(m.msgs[i].key, key) != 0)
            continue;
        for (size_t h = 0; h < m.msgs[i].header_count; h++)
            n += strcmp(m.msgs[i].hnames[h], "x-dlq.replayed-from") == 0;
    }
    wt_msgs_free(&m);
    return n;
}

static const char *between(const char *text, const char *from)
{
    const char *p = strstr(text, from);
    assert_non_null(p);
    return p;
}

static void check_index(const char *d)
{
    /* lag per worker and per partition */
    const char *row = between(d, "id=\"worker-tasks-to-milvus\"");
    const char *end = strstr(row, "</tr>");
    assert_non_null(end);
    assert_non_null(strstr(row, "<td class=\"num lag\">7</td>"));
    assert_true(strstr(row, "<td class=\"num lag\">7</td>") < end);
    assert_true(strstr(row, "p0</code>&nbsp;3") && strstr(row, "p0</code>&nbsp;3") < end);
    assert_true(strstr(row, "p1</code>&nbsp;4") && strstr(row, "p1</code>&nbsp;4") < end);
    /* records by outcome, scraped and summed over reasons (30 created + 12 updated) */
    const char *del = strstr(row, "o-delivered");
    assert_true(del && del < end);
    assert_non_null(strstr(del, "<span class=\"total\">42</span>"));
    assert_true(strstr(del, "<span class=\"total\">42</span>") < end);
    const char *dead = strstr(row, "o-dead_lettered");
    assert_true(dead && dead < end);
    assert_true(strstr(dead, "<span class=\"total\">2</span>") < end);
    assert_non_null(strstr(between(d, "id=\"worker-clients-to-milvus\""),
                           "<td class=\"num lag\">0</td>"));
    /* sparklines: inline SVG, one for the lag and one per outcome per worker */
    int svgs = 0;
    for (const char *p = d; (p = strstr(p, "<svg class=\"spark\"")); p++)
        svgs++;
    assert_true(svgs >= 4 * 5);
    assert_non_null(strstr(d, "<polyline"));
    /* the dead letters */
    assert_non_null(strstr(d, "id=\"dlq-size\">2<"));
    const char *letters = between(d, "id=\"dlq\"");
    assert_non_null(strstr(letters, "<code>5001</code>"));
    assert_non_null(strstr(letters, "<code>5002</code>"));
    assert_non_null(strstr(letters, "HttpStatus503"));
    assert_non_null(strstr(letters, ">503<"));
    assert_non_null(strstr(letters, "tasks-to-milvus"));
    assert_non_null(strstr(letters, "m***@example.com")); /* the answer's first bytes, masked */
    assert_null(strstr(d, "maria.silva"));
    /* cursors, leases, rate limits */
    assert_non_null(strstr(between(d, "id=\"cursors\""), "ploomes.task"));
    assert_non_null(strstr(between(d, "id=\"cursors\""), "/ 77"));
    assert_non_null(strstr(between(d, "id=\"leases\""), "host-1/abc"));
    assert_non_null(strstr(between(d, "id=\"rate-ploomes\""), "3 / 50"));
    assert_null(strstr(d, PLOOMES_KEY));
    /* server-rendered: no script; refreshes itself */
    assert_null(strstr(d, "<script"));
    assert_non_null(strstr(d, "http-equiv=\"refresh\""));
}

static void check_letter(const char *d, bool form_expected)
{
    assert_non_null(strstr(d, "__connect.errors.exception.class.name"));
    assert_non_null(strstr(d, "__connect.errors.topic"));
    assert_non_null(strstr(d, "x-dlq.response"));
    assert_non_null(strstr(d, "<code>source</code>"));
    assert_non_null(strstr(d, "HttpStatus503"));
    /* the pretty-printed record, masked: e-mail partially, the CPF as in the logs */
    const char *rec = between(d, "id=\"record\"");
    assert_non_null(strstr(rec, "\"Id\":\t5001"));
    assert_non_null(strstr(rec, "\"Title\":\t\"call back\""));
    assert_non_null(strstr(rec, "\"Email\":\t\"m***@example.com\""));
    assert_non_null(strstr(rec, "\"Register\":\t\"***.982.247-**\""));
    assert_non_null(strstr(d, "Dead-lettered at</dt><dd>20")); /* a time is not a phone */
    assert_null(strstr(d, "maria.silva"));
    assert_null(strstr(d, "52998224725"));
    assert_null(strstr(d, "<script"));
    if (form_expected)
        assert_non_null(strstr(d, "<form id=\"replay\""));
    else
        assert_null(strstr(d, "<form"));
}

static void test_status_page(void **state)
{
    (void)state;
    wt_t w;
    wt_init(&w, "page");
    wt_set(&w, "PLOOMES_BASE_URL", PLOOMES_URL);
    wt_set(&w, "PLOOMES_USER_KEY", PLOOMES_KEY);
    wt_set(&w, "PLOOMES_RATE_PER_MIN", "50");
    known_state(&w);

    /* a worker's /metrics to scrape */
    metrics_t *wm = metrics_new();
    metrics_family_t *rec = metrics_counter_new(wm, "worker_records_total", "Records.",
                                                (const char *[]){"worker", "outcome", "reason",
                                                                 NULL});
    metrics_counter_add(rec, (const char *[]){"tasks-to-milvus", "delivered", "created"}, 30);
    metrics_counter_add(rec, (const char *[]){"tasks-to-milvus", "delivered", "updated"}, 12);
    metrics_counter_add(rec, (const char *[]){"tasks-to-milvus", "dead_lettered",
                                              "HttpStatus503"}, 2);
    metrics_server_config_t mc = {.bind_address = "127.0.0.1", .port = METRICS_PORT_AUTO};
    metrics_server_t *wsrv = NULL;
    char err[256], urls[128];
    assert_int_equal(metrics_server_start(wm, &mc, &wsrv, err, sizeof err), 0);
    snprintf(urls, sizeof urls, "http://127.0.0.1:%d/metrics", metrics_server_port(wsrv));
    wt_set(&w, "STATUS_SCRAPE_URLS", urls);

    /* --allow-replay needs the token */
    char log[256];
    snprintf(log, sizeof log, "%s.notoken", w.log);
    pid_t pid = simproc_spawn("pipeline-status",
                              (const char *[]){"--serve", "1", "--allow-replay", NULL},
                              wt_env(&w), log, err, sizeof err);
    assert_true(pid > 0);
    assert_int_equal(simproc_wait(pid, 60000), 2);
    char *text = testenv_read_file(log);
    assert_non_null(strstr(text, "STATUS_REPLAY_TOKEN"));
    free(text);

    wt_set(&w, "STATUS_REPLAY_TOKEN", REPLAY_TOKEN);
    probe_t p = {.port = pt_free_port(), .needle = "<span class=\"total\">42</span>"};
    pid = serve(&w, p.port, true, "serve");
    assert_true(testenv_wait_until(page_has, &p, 120000, 250));
    p.needle = "<code>5002</code>";
    assert_true(testenv_wait_until(page_has, &p, 120000, 250));
    /* two scrapes make the first records-per-minute point */
    p.needle = "aria-label=\"delivered records per minute of tasks-to-milvus\"";
    assert_true(testenv_wait_until(page_has, &p, 120000, 250));

    /* "/" in the browser */
    char *d = dom(&w, p.port, "/", "index");
    check_index(d);
    free(d);
    screenshot(&w, p.port, "/", "index");

    /* JSON: /api/status as --json, /api/dlq the newest letters */
    char *body = NULL;
    assert_int_equal(pt_http_get(p.port, "/api/status", &body), 200);
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    cJSON *wk, *tasks = NULL;
    cJSON_ArrayForEach(wk, cJSON_GetObjectItem(j, "workers"))
    {
        if (strcmp(cJSON_GetObjectItem(wk, "worker")->valuestring, "tasks-to-milvus") == 0)
            tasks = wk;
    }
    assert_non_null(tasks);
    assert_int_equal(cJSON_GetObjectItem(tasks, "lag")->valueint, 7);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "dlq"), "messages")->valueint, 2);
    cJSON_Delete(j);
    free(body);
    assert_int_equal(pt_http_get(p.port, "/api/dlq", &body), 200);
    j = cJSON_Parse(body);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON *first = NULL, *x;
    cJSON_ArrayForEach(x, j)
    {
        if (strcmp(cJSON_GetObjectItem(x, "key")->valuestring, "5001") == 0)
            first = x;
    }
    assert_non_null(first);
    assert_int_equal(cJSON_GetObjectItem(first, "http_status")->valueint, 503);
    assert_string_equal(cJSON_GetObjectItem(first, "error_class")->valuestring, "HttpStatus503");
    int part = cJSON_GetObjectItem(first, "partition")->valueint;
    long long off = (long long)cJSON_GetObjectItem(first, "offset")->valuedouble;
    cJSON_Delete(j);
    free(body);

    /* the letter's page in the browser, then its confirmation step */
    char path[128];
    snprintf(path, sizeof path, "/letter?p=%d&o=%lld", part, off);
    d = dom(&w, p.port, path, "letter");
    check_letter(d, true);
    assert_null(strstr(d, "name=\"token\"")); /* the token is asked for on the next step */
    free(d);
    screenshot(&w, p.port, path, "letter");
    snprintf(path, sizeof path, "/letter?p=%d&o=%lld&confirm=1", part, off);
    d = dom(&w, p.port, path, "confirm");
    check_letter(d, true);
    assert_non_null(strstr(d, "action=\"/replay\""));
    assert_non_null(strstr(d, "name=\"token\""));
    free(d);
    assert_int_equal(pt_http_get(p.port, "/letter?p=0&o=999999", NULL), 404);
    assert_int_equal(pt_http_get(p.port, "/letter?p=x", NULL), 400);

    /* replay over POST: the token is required, then once */
    char form[256];
    snprintf(form, sizeof form, "p=%d&o=%lld&confirm=yes", part, off);
    assert_int_equal(post_form(p.port, "/replay", form, NULL), 403);
    snprintf(form, sizeof form, "p=%d&o=%lld&confirm=yes&token=wrong-token", part, off);
    assert_int_equal(post_form(p.port, "/replay", form, NULL), 403);
    assert_int_equal(replayed(&w, "5001"), 0);
    snprintf(form, sizeof form, "p=%d&o=%lld&token=%s", part, off, REPLAY_TOKEN);
    assert_int_equal(post_form(p.port, "/replay", form, NULL), 400); /* not confirmed */
    snprintf(form, sizeof form, "p=%d&o=%lld&confirm=yes&token=%s", part, off, REPLAY_TOKEN);
    assert_int_equal(post_form(p.port, "/replay", form, &body), 200);
    assert_non_null(strstr(body, "replayed to"));
    free(body);
    assert_int_equal(replayed(&w, "5001"), 1);
    assert_int_equal(post_form(p.port, "/replay", form, &body), 409);
    assert_non_null(strstr(body, "already replayed"));
    free(body);
    assert_int_equal(replayed(&w, "5001"), 1);
    assert_int_equal(replayed(&w, "5002"), 0);
    snprintf(path, sizeof path, "/letter?p=%d&o=%lld", part, off);
    assert_int_equal(pt_http_get(p.port, path, &body), 200);
    assert_non_null(strstr(body, "1 time(s)")); /* the page says it was replayed */
    free(body);
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 30000), 0);

    /* read-only: no form at all, POST refused */
    p.port = pt_free_port();
    p.needle = "<code>5002</code>";
    pid = serve(&w, p.port, false, "readonly");
    assert_true(testenv_wait_until(page_has, &p, 120000, 250));
    d = dom(&w, p.port, path, "letter-readonly");
    check_letter(d, false);
    free(d);
    snprintf(path, sizeof path, "/letter?p=%d&o=%lld&confirm=1", part, off);
    assert_int_equal(pt_http_get(p.port, path, &body), 200);
    assert_null(strstr(body, "<form"));
    free(body);
    assert_int_equal(post_form(p.port, "/replay", form, NULL), 405);
    assert_int_equal(replayed(&w, "5001"), 1);
    kill(pid, SIGTERM);
    assert_int_equal(simproc_wait(pid, 30000), 0);

    metrics_server_stop(wsrv);
    metrics_free(wm);
    chromium_cleanup(&w);
    wt_free(&w);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_page),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
