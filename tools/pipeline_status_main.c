/* pipeline-status: one screen for operators (SPEC §7): lag per worker group and partition, the
 * dead-letter topic's size, producer cursors and last polls, leases, rate-limit use. Prints once,
 * redraws with --watch, prints JSON with --json, or with --serve PORT serves /metrics for
 * Prometheus and docker-compose, the status page at "/" (with a page per dead letter and, with
 * --allow-replay, a replay form), /api/status and /api/dlq. Collecting is in status.c, the
 * sparklines' memory in status_history.c, the HTML in status_page.c. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "clock.h"
#include "dlq.h"
#include "errbuf.h"
#include "kafka_dlq.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "status_history.h"
#include "status_page.h"
#include "store.h"

static const app_spec_t SPEC = {
    .name = "pipeline-status",
    .summary = "Shows the pipeline at a glance: consumer lag per worker and partition, the "
               "dead-letter topic's size and newest letter, producer cursors with their last "
               "polls, producer leases, and the shared rate limits' use; with --serve also as a "
               "web page. Read-only: it never joins a consumer group, commits, or writes to "
               "MongoDB, except a replay an operator asks for on the page (--allow-replay).",
    .usage = "[--watch [SECONDS]] [--json] [--serve PORT [--bind ADDRESS] [--allow-replay]]",
    .options_help =
        "  --watch [SECONDS]    redraw every SECONDS (default 5) until Ctrl-C\n"
        "  --json               print the snapshot as JSON (same as GET /api/status)\n"
        "  --serve PORT         serve the status page at / (lag and records per minute per\n"
        "                       worker over the last hour, cursors, leases, rate limits, the\n"
        "                       newest dead letters; /letter?p=P&o=O shows one letter),\n"
        "                       /api/status (what --json prints), /api/dlq (the newest 20\n"
        "                       letters, as pipeline-dlq list --json), /metrics\n"
        "                       (pipeline_dlq_messages, pipeline_consumer_lag, ...;\n"
        "                       pipeline_status_dlq_reads_total{kind} and\n"
        "                       pipeline_status_dlq_records_read_total count its reads of the\n"
        "                       newest letters by kind: \"full\" (the whole topic),\n"
        "                       \"incremental\" (the letters added since) or \"failed\"\n"
        "                       (records counted for successful reads only)), /healthz\n"
        "                       and /readyz, sampling every --interval SECONDS (default 15)\n"
        "  --bind ADDRESS       address to serve on (default 127.0.0.1; 0.0.0.0 in containers)\n"
        "  --allow-replay       offer a replay form on a letter's page (what pipeline-dlq\n"
        "                       replay does: once per letter unless forced); it asks for the\n"
        "                       token in STATUS_REPLAY_TOKEN, which must then be set. Without\n"
        "                       this option the page is read-only and POST is refused.\n"
        "Optional: PLOOMES_USER_KEY, MILVUS_TOKEN, PLOOMES_BASE_URL, MILVUS_BASE_URL,\n"
        "PLOOMES_RATE_PER_MIN and MILVUS_RATE_PER_MIN name the shared rate limits whose use is\n"
        "shown (the limit's bucket is a hash of the base URL and the key).\n"
        "STATUS_SCRAPE_URLS: comma-separated /metrics URLs of the workers (e.g.\n"
        "http://127.0.0.1:9101/metrics,http://127.0.0.1:9102/metrics); --serve scrapes them every\n"
        "interval and charts worker_records_total by outcome (records per minute). Unset: no\n"
        "records chart.\n"
        "STATUS_REPLAY_TOKEN: the secret a replay from the page must give (--allow-replay).\n",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO,
    .flags = APP_ALLOW_ARGS,
};

typedef struct {
    bool json, watch, serve, allow_replay;
    int interval_s;
    int port;
    const char *bind;
} opts_t;

static int usage(const char *what)
{
    fprintf(stderr, "pipeline-status: %s; try --help\n", what);
    return CONFIG_EXIT_USAGE;
}

static bool int_arg(const char *s, int min, int max, int *out)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !end || end == s || *end || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

static int parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.interval_s = 15, .bind = "127.0.0.1"};
    bool interval_given = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--watch") == 0) {
            o->watch = true;
            if (!interval_given)
                o->interval_s = 5;
            if (v && v[0] != '-' && int_arg(v, 1, 3600, &o->interval_s))
                i++;
        } else if (strcmp(a, "--interval") == 0) {
            if (!int_arg(v, 1, 3600, &o->interval_s))
                return usage("--interval needs SECONDS from 1 to 3600");
            interval_given = true;
            i++;
        } else if (strcmp(a, "--serve") == 0) {
            if (!int_arg(v, 1, 65535, &o->port))
                return usage("--serve needs a PORT from 1 to 65535");
            o->serve = true;
            i++;
        } else if (strcmp(a, "--allow-replay") == 0) {
            o->allow_replay = true;
        } else if (strcmp(a, "--bind") == 0) {
            if (!v)
                return usage("--bind needs an address");
            o->bind = v;
            i++;
        } else {
            char m[160];
            snprintf(m, sizeof m, "unknown argument %s", a);
            return usage(m);
        }
    }
    if (o->allow_replay && !o->serve)
        return usage("--allow-replay goes with --serve");
    return 0;
}

/* ---- --serve: the latest snapshot, as metrics, JSON and the status page --------------------- */

#define LETTERS_SHOWN 20       /* newest dead letters on the page and in /api/dlq */
#define KAFKA_READ_MS 10000

typedef struct {
    pthread_mutex_t lock;   /* guards everything below up to the metric families */
    char *json;             /* latest /api/status body (owned) */
    bool kafka_ok;          /* the latest snapshot reached Kafka */
    status_t snap;          /* latest snapshot (owned), valid when has_snap */
    bool has_snap;
    status_history_t *history;
    dlq_list_t letters;     /* the newest letters (owned), valid when letters_known */
    bool letters_known;
    char letters_err[512];
    int64_t letters_count, letters_newest; /* the DLQ size they were read at */
    char scrape_err[512];
    metrics_family_t *dlq, *dlq_newest, *lag, *rate_used, *rate_limit, *last_ok;
    metrics_family_t *dlq_reads, *dlq_records_read;
    /* the sampling thread's only: the newest letters kept between reads (it reads only the
     * offsets added since, see dlq_newest_t); `letters` above is the copy the pages show */
    dlq_newest_t newest;
    /* read-only after start: */
    const config_t *cfg;
    const kafka_settings_t *ks;
    store_t *st;
    const char *scrape_urls; /* NULL when STATUS_SCRAPE_URLS is unset */
    const char *token;       /* STATUS_REPLAY_TOKEN with --allow-replay, else NULL */
    bool allow_replay;
    int refresh_s;
    char dlq_topic[KAFKA_TOPIC_NAME_MAX];
} served_t;

static int answer(unsigned code, const char *ctype, char *body, unsigned *status,
                  const char **ctype_out, char **body_out)
{
    *status = code;
    *ctype_out = ctype;
    *body_out = body;
    return body ? 0 : -1;
}

static int answer_msg(unsigned code, const char *title, const char *text, unsigned *status,
                      const char **ctype, char **body)
{
    return answer(code, "text/html; charset=utf-8",
                  status_page_message(title, text, code < 300), status, ctype, body);
}

/* Partition and offset of a letter named by text. False when they are not numbers in range. */
static bool letter_pos(const char *ptext, const char *otext, int32_t *partition, int64_t *offset)
{
    char *end = NULL;
    errno = 0;
    long long p = ptext ? strtoll(ptext, &end, 10) : -1;
    bool ok = ptext && *ptext && end && !*end && errno == 0 && p >= 0 && p <= INT32_MAX;
    long long off = otext ? strtoll(otext, &end, 10) : -1;
    ok = ok && otext && *otext && end && !*end && errno == 0 && off >= 0;
    *partition = (int32_t)p;
    *offset = off;
    return ok;
}

/* Reads one letter (p, o from text): 0 found (l filled), 1 not found, 2 bad p/o, -1 Kafka
 * failure; err says why when not 0. */
static int read_letter(const served_t *sv, const char *ptext, const char *otext, dlq_list_t *l,
                       char *err, size_t errlen)
{
    int32_t p;
    int64_t off;
    if (!letter_pos(ptext, otext, &p, &off)) {
        errbuf_set(err, errlen, "a letter is named by p=PARTITION and o=OFFSET");
        return 2;
    }
    dlq_filter_t f = dlq_filter_all();
    f.partition = p;
    f.from_offset = f.to_offset = off;
    if (dlq_read(sv->ks, sv->cfg->topic_prefix, &f, KAFKA_READ_MS, l, err, errlen) != 0)
        return -1;
    if (l->count == 0) {
        dlq_list_free(l);
        errbuf_set(err, errlen, "no letter %d/%" PRId64 " in the dead-letter topic", p, off);
        return 1;
    }
    return 0;
}

/* One of the newest letters the sampling thread already read (a record at an offset never
 * changes), copied into l: true, or false when it is not among them (or out of memory). The
 * letter pages the status page links to are answered without reading Kafka on this thread. */
static bool cached_letter(served_t *sv, const char *ptext, const char *otext, dlq_list_t *l)
{
    int32_t p;
    int64_t off;
    if (!letter_pos(ptext, otext, &p, &off))
        return false;
    bool found = false;
    pthread_mutex_lock(&sv->lock);
    for (size_t i = 0; sv->letters_known && !found && i < sv->letters.count; i++) {
        const dlq_letter_t *x = &sv->letters.items[i];
        if (x->partition != p || x->offset != off)
            continue;
        *l = (dlq_list_t){.items = malloc(sizeof *l->items), .total = sv->letters.total};
        snprintf(l->topic, sizeof l->topic, "%s", sv->letters.topic);
        if (l->items && dlq_letter_dup(x, &l->items[0]) == 0) {
            l->count = 1;
            found = true;
        } else {
            free(l->items);
            l->items = NULL;
        }
        break;
    }
    pthread_mutex_unlock(&sv->lock);
    return found;
}

static int route_letter(served_t *sv, const metrics_request_t *req, unsigned *status,
                        const char **ctype, char **body)
{
    dlq_list_t l;
    char err[512];
    const char *ptext = metrics_request_arg(req, "p"), *otext = metrics_request_arg(req, "o");
    int rc = cached_letter(sv, ptext, otext, &l) ? 0
                                                  : read_letter(sv, ptext, otext, &l, err,
                                                                sizeof err);
    if (rc != 0)
        return answer_msg(rc == 2 ? 400 : rc == 1 ? 404 : 503, "Dead letter", err, status, ctype,
                          body);
    store_replay_t prev;
    int got = sv->st ? store_replay_get(sv->st, l.topic, l.items[0].partition,
                                        l.items[0].offset, &prev, err, sizeof err)
                     : STORE_DOWN;
    const char *confirm = metrics_request_arg(req, "confirm");
    char *page = status_page_letter(&l.items[0], l.topic, got == STORE_OK ? &prev : NULL,
                                    sv->allow_replay, confirm && strcmp(confirm, "1") == 0);
    dlq_list_free(&l);
    return answer(200, "text/html; charset=utf-8", page, status, ctype, body);
}

/* Constant-time equality of a given token and the expected one (time depends only on the
 * expected token's length). */
static bool token_ok(const char *given, const char *expected)
{
    size_t gl = strlen(given), el = strlen(expected);
    unsigned char diff = (unsigned char)(gl != el);
    for (size_t i = 0; i < el; i++)
        diff |= (unsigned char)((i < gl ? (unsigned char)given[i] : 0) ^
                                (unsigned char)expected[i]);
    return diff == 0 && el > 0;
}

static int route_replay(served_t *sv, const metrics_request_t *req, unsigned *status,
                        const char **ctype, char **body)
{
    static const char title[] = "Replay";
    char p[24], o[24], token[512], confirm[8], force[8], err[1024];
    const char *b = req->body;
    size_t n = req->body_len;
    if (strncmp(req->content_type, "application/x-www-form-urlencoded", 33) != 0)
        return answer_msg(415, title, "send the replay form (application/x-www-form-urlencoded)",
                          status, ctype, body);
    if (metrics_form_value(b, n, "token", token, sizeof token) < 0 ||
        !token_ok(token, sv->token)) {
        log_msg(LOG_WARN, "replay_refused", "reason=\"wrong or missing token\"");
        return answer_msg(403, title, "refused: wrong or missing replay token", status, ctype,
                          body);
    }
    if (metrics_form_value(b, n, "confirm", confirm, sizeof confirm) < 0 ||
        strcmp(confirm, "yes") != 0)
        return answer_msg(400, title, "refused: the replay was not confirmed", status, ctype,
                          body);
    bool forced = metrics_form_value(b, n, "force", force, sizeof force) > 0 &&
                  strcmp(force, "1") == 0;
    dlq_list_t l;
    int rc = read_letter(sv, metrics_form_value(b, n, "p", p, sizeof p) > 0 ? p : NULL,
                         metrics_form_value(b, n, "o", o, sizeof o) > 0 ? o : NULL, &l, err,
                         sizeof err);
    if (rc != 0)
        return answer_msg(rc == 2 ? 400 : rc == 1 ? 404 : 503, title, err, status, ctype, body);
    const dlq_letter_t *x = &l.items[0];
    char by[STORE_OWNER_MAX], inst[96], text[1400];
    snprintf(by, sizeof by, "pipeline-status@%s", kafka_dlq_instance_id(inst, sizeof inst));
    kafka_producer_t *prod = sv->st ? kafka_producer_new(sv->ks, SPEC.name, err, sizeof err)
                                    : NULL;
    if (!sv->st)
        errbuf_set(err, sizeof err, "MongoDB is not reachable: replays are recorded there");
    dlq_replay_rc_t r = prod ? dlq_replay(prod, sv->st, l.topic, x, by, forced, false, err,
                                          sizeof err)
                             : DLQ_FAILED;
    char cerr[256];
    if (prod && kafka_producer_close(prod, 30000, cerr, sizeof cerr) != 0 && r == DLQ_REPLAYED) {
        r = DLQ_FAILED;
        errbuf_set(err, sizeof err, "%s", cerr);
    }
    unsigned code = 500;
    if (r == DLQ_REPLAYED) {
        code = 200;
        snprintf(text, sizeof text, "letter %d/%" PRId64 " replayed to %s%s", x->partition,
                 x->offset, x->orig_topic, forced ? " (forced)" : "");
    } else if (r == DLQ_ALREADY) {
        code = 409;
        snprintf(text, sizeof text, "letter %d/%" PRId64 " was already replayed: nothing sent "
                 "(tick force to send it again)", x->partition, x->offset);
    } else {
        snprintf(text, sizeof text, "replay failed: %s", err);
    }
    log_msg(code == 200 ? LOG_INFO : LOG_WARN, "replay", "partition=%d offset=%" PRId64
            " topic=%s forced=%d result=%u", x->partition, x->offset, x->orig_topic, forced,
            code);
    dlq_list_free(&l);
    return answer_msg(code, title, text, status, ctype, body);
}

static int route(void *ctx, const metrics_request_t *req, unsigned *status, const char **ctype,
                 char **body)
{
    served_t *s = ctx;
    if (strcmp(req->method, "POST") == 0)
        return s->allow_replay && strcmp(req->path, "/replay") == 0
                   ? route_replay(s, req, status, ctype, body)
                   : -1;
    if (strcmp(req->path, "/letter") == 0)
        return route_letter(s, req, status, ctype, body);
    char *text = NULL;
    const char *type = "application/json";
    pthread_mutex_lock(&s->lock);
    if (strcmp(req->path, "/api/status") == 0) {
        text = strdup(s->json ? s->json : "{}");
    } else if (strcmp(req->path, "/api/dlq") == 0) {
        cJSON *j = s->letters_known ? status_page_letters_json(&s->letters) : NULL;
        text = j ? cJSON_Print(j) : strdup(s->letters_known ? "[]" : "null");
        cJSON_Delete(j);
    } else if (strcmp(req->path, "/") == 0) {
        status_page_view_t v = {.status = s->has_snap ? &s->snap : NULL,
                                .history = s->history,
                                .letters = s->letters_known ? &s->letters : NULL,
                                .letters_error = s->letters_err,
                                .topic_prefix = s->cfg->topic_prefix,
                                .refresh_s = s->refresh_s,
                                .scraping = s->scrape_urls != NULL,
                                .scrape_error = s->scrape_err};
        text = status_page_render(&v);
        type = "text/html; charset=utf-8";
    } else {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    pthread_mutex_unlock(&s->lock);
    return answer(200, type, text, status, ctype, body);
}

static bool ready(void *ctx, char *why, size_t whylen)
{
    served_t *s = ctx;
    pthread_mutex_lock(&s->lock);
    bool ok = s->kafka_ok;
    pthread_mutex_unlock(&s->lock);
    if (!ok)
        snprintf(why, whylen, "the last snapshot could not reach Kafka");
    return ok;
}

static void publish_metrics(served_t *sv, const status_t *st)
{
    metrics_gauge_set(sv->dlq, NULL, (double)st->dlq_messages);
    metrics_gauge_set(sv->dlq_newest, NULL,
                      st->dlq_newest_ms > 0 ? (double)st->dlq_newest_ms / 1000.0 : 0.0);
    for (size_t i = 0; i < st->lag_count; i++) {
        char part[16];
        snprintf(part, sizeof part, "%d", st->lags[i].partition);
        metrics_gauge_set(sv->lag, (const char *[]){st->lags[i].worker, part},
                          (double)st->lags[i].lag);
    }
    for (int i = 0; i < 2; i++) {
        if (!st->rates[i].known)
            continue;
        metrics_gauge_set(sv->rate_used, (const char *[]){st->rates[i].api}, st->rates[i].used);
        metrics_gauge_set(sv->rate_limit, (const char *[]){st->rates[i].api}, st->rates[i].limit);
    }
    for (size_t i = 0; i < st->cursor_count; i++)
        metrics_gauge_set(sv->last_ok, (const char *[]){st->cursors[i].key},
                          (double)st->cursors[i].last_ok_at_ms / 1000.0);
}

/* Publishes a snapshot (taking it over: the caller must not free it): /api/status, then the
 * metrics, then (after the slower reads) the history's sample, the page's snapshot and the
 * newest letters when the DLQ changed since they were read. */
static void publish(served_t *sv, status_t *st)
{
    cJSON *j = status_json(st);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    pthread_mutex_lock(&sv->lock); /* /api/status first, so it never trails /metrics */
    if (text) {
        free(sv->json);
        sv->json = text;
    }
    sv->kafka_ok = st->dlq_messages >= 0;
    bool stale = !sv->letters_known || sv->letters_count != st->dlq_messages ||
                 sv->letters_newest != st->dlq_newest_ms;
    pthread_mutex_unlock(&sv->lock);
    publish_metrics(sv, st);

    dlq_list_t fresh = {0};
    char lerr[512] = "";
    int lrc = 1; /* 1: not read */
    if (stale && st->dlq_messages == 0) {
        lrc = 0; /* an empty topic: nothing to read */
        dlq_newest_forget(&sv->newest); /* the next letters are read in full */
    } else if (stale && st->dlq_messages > 0) {
        dlq_read_stats_t rs;
        int64_t t0 = clock_mono_ms();
        lrc = dlq_newest_refresh(&sv->newest, sv->ks, sv->cfg->topic_prefix, KAFKA_READ_MS, &rs,
                                 lerr, sizeof lerr);
        if (lrc == 0 && dlq_list_copy(&sv->newest.letters, &fresh) != 0) {
            snprintf(lerr, sizeof lerr, "out of memory copying the letters read from %s",
                     sv->newest.letters.topic);
            lrc = -1;
        }
        /* a failed read is neither full nor incremental, and what it read is not counted */
        const char *kind = lrc != 0 ? "failed" : rs.full ? "full" : "incremental";
        metrics_counter_add(sv->dlq_reads, (const char *[]){kind}, 1);
        if (lrc == 0)
            metrics_counter_add(sv->dlq_records_read, NULL, (double)rs.records);
        log_msg(LOG_DEBUG, "dlq_letters_read", "kind=%s why=\"%s\" records=%" PRId64
                " ok=%d elapsed_ms=%" PRId64, kind, rs.why, rs.records, lrc == 0,
                clock_mono_ms() - t0);
        if (lrc != 0)
            log_msg(LOG_WARN, "dlq_unreadable", "error=\"%s\"", lerr);
    }
    status_sample_t smp = {.t_ms = st->taken_ms};
    for (size_t w = 0; w < STATUS_HISTORY_WORKERS; w++)
        smp.lag[w] = st->dlq_messages >= 0 ? status_worker_lag(st, STATUS_WORKERS[w].worker) : -1;
    char serr[512] = "";
    if (sv->scrape_urls) {
        smp.counts_known = status_history_scrape(sv->scrape_urls, smp.counts, serr,
                                                 sizeof serr) == 0;
        if (!smp.counts_known)
            log_msg(LOG_WARN, "scrape_failed", "error=\"%s\"", serr);
    }

    pthread_mutex_lock(&sv->lock);
    status_history_add(sv->history, &smp);
    if (sv->has_snap)
        status_free(&sv->snap);
    sv->snap = *st;
    sv->has_snap = true;
    if (lrc == 0) {
        dlq_list_free(&sv->letters);
        sv->letters = fresh;
        sv->letters_known = true;
        sv->letters_count = st->dlq_messages;
        sv->letters_newest = st->dlq_newest_ms;
        sv->letters_err[0] = '\0';
    } else if (lrc < 0) {
        dlq_list_free(&sv->letters);
        sv->letters_known = false;
        snprintf(sv->letters_err, sizeof sv->letters_err, "%s", lerr);
    }
    snprintf(sv->scrape_err, sizeof sv->scrape_err, "%s", serr);
    pthread_mutex_unlock(&sv->lock);
}

static int register_families(metrics_t *m, served_t *sv)
{
    static const char *const lag_l[] = {"worker", "partition", NULL};
    static const char *const api_l[] = {"api", NULL};
    static const char *const cur_l[] = {"cursor", NULL};
    sv->dlq = metrics_gauge_new(m, "pipeline_dlq_messages",
                                "Messages in the dead-letter topic (all partitions).", NULL);
    sv->dlq_newest = metrics_gauge_new(m, "pipeline_dlq_newest_timestamp_seconds",
                                       "Unix time of the newest dead letter (0 when none).", NULL);
    sv->lag = metrics_gauge_new(m, "pipeline_consumer_lag",
                                "Records not yet committed by a worker's group, per partition.",
                                lag_l);
    sv->rate_used = metrics_gauge_new(m, "pipeline_ratelimit_used",
                                      "Requests granted in the last 60 s by the shared limiter.",
                                      api_l);
    sv->rate_limit = metrics_gauge_new(m, "pipeline_ratelimit_limit",
                                       "Requests allowed per 60 s by the shared limiter.", api_l);
    sv->last_ok = metrics_gauge_new(m, "pipeline_cursor_last_success_timestamp_seconds",
                                    "Unix time of a producer cursor's last successful poll.",
                                    cur_l);
    static const char *const kind_l[] = {"kind", NULL};
    sv->dlq_reads = metrics_counter_new(m, "pipeline_status_dlq_reads_total",
                                        "Reads of the newest dead letters, by kind: full (the "
                                        "whole topic), incremental (the new offsets only) or "
                                        "failed.",
                                        kind_l);
    sv->dlq_records_read = metrics_counter_new(m, "pipeline_status_dlq_records_read_total",
                                               "Dead letters read from Kafka to show the newest "
                                               "ones (by successful reads).", NULL);
    return sv->dlq && sv->dlq_newest && sv->lag && sv->rate_used && sv->rate_limit &&
                   sv->last_ok && sv->dlq_reads && sv->dlq_records_read
               ? 0
               : -1;
}

static int snapshot(status_collector_t *c, status_t *out)
{
    if (status_collector_collect(c, out) != 0) {
        fprintf(stderr, "pipeline-status: out of memory\n");
        return CONFIG_EXIT_FATAL;
    }
    return CONFIG_EXIT_OK;
}

static int serve(const config_t *cfg, const kafka_settings_t *ks, store_t *st,
                 status_collector_t *col, const opts_t *o)
{
    served_t sv = {.lock = PTHREAD_MUTEX_INITIALIZER, .cfg = cfg, .ks = ks, .st = st,
                   .allow_replay = o->allow_replay,
                   .refresh_s = o->interval_s < 5 ? 5 : o->interval_s};
    const char *urls = getenv("STATUS_SCRAPE_URLS");
    sv.scrape_urls = urls && *urls ? urls : NULL;
    if (o->allow_replay) {
        sv.token = getenv("STATUS_REPLAY_TOKEN");
        if (!sv.token || !*sv.token) {
            log_msg(LOG_ERROR, "startup_failed", "error=\"--allow-replay needs "
                    "STATUS_REPLAY_TOKEN: set it to a secret the replay form must give\"");
            return CONFIG_EXIT_USAGE;
        }
        log_add_secret(sv.token);
    }
    metrics_t *m = metrics_new();
    metrics_server_t *srv = NULL;
    char err[512];
    int rc = CONFIG_EXIT_FATAL;
    dlq_newest_init(&sv.newest, LETTERS_SHOWN);
    sv.history = malloc(sizeof *sv.history);
    if (!m || !sv.history || register_families(m, &sv) != 0)
        goto out;
    status_history_init(sv.history);
    metrics_server_config_t mc = {.bind_address = o->bind, .port = o->port,
                                  .stale_after_ms = (int64_t)o->interval_s * 4000 + 60000,
                                  .ready = ready, .ready_ctx = &sv,
                                  .route = route, .route_ctx = &sv};
    if (metrics_server_start(m, &mc, &srv, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"%s\"", err);
        goto out;
    }
    log_msg(LOG_INFO, "serving", "address=%s port=%d interval_s=%d allow_replay=%d scraping=%d",
            o->bind, o->port, o->interval_s, o->allow_replay, sv.scrape_urls != NULL);
    while (!app_stop_requested()) {
        status_t s;
        if (snapshot(col, &s) != 0)
            goto out;
        for (size_t i = 0; i < s.problem_count; i++)
            log_msg(LOG_WARN, "status_problem", "problem=\"%s\"", s.problems[i]);
        publish(&sv, &s); /* takes s over */
        metrics_heartbeat(m);
        app_sleep_ms((int64_t)o->interval_s * 1000);
    }
    rc = CONFIG_EXIT_OK;
out:
    metrics_server_stop(srv);
    metrics_free(m);
    free(sv.json);
    if (sv.has_snap)
        status_free(&sv.snap);
    dlq_list_free(&sv.letters);
    dlq_newest_free(&sv.newest);
    free(sv.history);
    return rc;
}

static int run(const config_t *cfg, const opts_t *o)
{
    kafka_settings_t ks = kafka_settings_from_config(cfg);
    char err[512];
    store_t *st = store_open(cfg->mongodb_uri, err, sizeof err);
    if (!st)
        log_msg(LOG_WARN, "store_unavailable", "error=\"%s\"", err);
    /* Built once: every sample reuses its Kafka client and rate-limit readers. */
    status_collector_t *col = status_collector_new(cfg, &ks, st);
    int rc = CONFIG_EXIT_OK;
    if (!col) {
        fprintf(stderr, "pipeline-status: out of memory\n");
        rc = CONFIG_EXIT_FATAL;
    } else if (o->serve) {
        rc = serve(cfg, &ks, st, col, o);
    } else {
        do {
            status_t s;
            if ((rc = snapshot(col, &s)) != 0)
                break;
            if (o->json) {
                cJSON *j = status_json(&s);
                char *text = j ? cJSON_Print(j) : NULL;
                puts(text ? text : "{}");
                free(text);
                cJSON_Delete(j);
            } else {
                if (o->watch)
                    fputs("\033[H\033[2J", stdout); /* redraw from the top */
                status_print(&s, cfg, stdout);
            }
            fflush(stdout);
            status_free(&s);
        } while (o->watch && app_sleep_ms((int64_t)o->interval_s * 1000));
    }
    status_collector_free(col); /* before the store it borrows */
    store_close(st);
    return rc;
}

int main(int argc, char **argv)
{
    app_t app;
    if (!app_init(&app, &SPEC, argc, argv))
        return app.exit_code;
    opts_t o;
    int rc = parse(app.cli.argc_rest, app.cli.args, &o);
    if (rc == 0)
        rc = run(&app.cfg, &o);
    app_free(&app);
    store_global_cleanup();
    return rc;
}
