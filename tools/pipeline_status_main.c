/* pipeline-status: one screen for operators (SPEC §7): lag per worker group and partition, the
 * dead-letter topic's size, producer cursors and last polls, leases, rate-limit use. Prints once,
 * redraws with --watch, prints JSON with --json, or serves /metrics (and /api/status) with
 * --serve PORT for Prometheus and docker-compose. Collecting is in status.c. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "dlq.h"
#include "log.h"
#include "metrics.h"
#include "status.h"
#include "store.h"

static const app_spec_t SPEC = {
    .name = "pipeline-status",
    .summary = "Shows the pipeline at a glance: consumer lag per worker and partition, the "
               "dead-letter topic's size and newest letter, producer cursors with their last "
               "polls, producer leases, and the shared rate limits' use. Read-only: it never "
               "joins a consumer group, commits, or writes to MongoDB.",
    .usage = "[--watch [SECONDS]] [--json] [--serve PORT [--bind ADDRESS]]",
    .options_help =
        "  --watch [SECONDS]    redraw every SECONDS (default 5) until Ctrl-C\n"
        "  --json               print the snapshot as JSON (same as GET /api/status)\n"
        "  --serve PORT         serve /metrics (pipeline_dlq_messages, pipeline_consumer_lag,\n"
        "                       ...), /healthz, /readyz and /api/status, sampling every\n"
        "                       --interval SECONDS (default 15)\n"
        "  --bind ADDRESS       address to serve on (default 127.0.0.1; 0.0.0.0 in containers)\n"
        "Optional: PLOOMES_USER_KEY, MILVUS_TOKEN, PLOOMES_BASE_URL, MILVUS_BASE_URL,\n"
        "PLOOMES_RATE_PER_MIN and MILVUS_RATE_PER_MIN name the shared rate limits whose use is\n"
        "shown (the limit's bucket is a hash of the base URL and the key).\n",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO,
    .flags = APP_ALLOW_ARGS,
};

typedef struct {
    bool json, watch, serve;
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
    return 0;
}

/* ---- --serve: the latest snapshot, as metrics and JSON -------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    char *json;             /* latest /api/status body (owned) */
    bool kafka_ok;          /* the latest snapshot reached Kafka */
    metrics_family_t *dlq, *dlq_newest, *lag, *rate_used, *rate_limit, *last_ok;
} served_t;

static int route(void *ctx, const char *url, unsigned *status, const char **ctype, char **body)
{
    served_t *s = ctx;
    if (strcmp(url, "/api/status") != 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    *body = strdup(s->json ? s->json : "{}");
    pthread_mutex_unlock(&s->lock);
    *status = 200;
    *ctype = "application/json";
    return *body ? 0 : -1;
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

static void publish(served_t *sv, const status_t *st)
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
    cJSON *j = status_json(st);
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    pthread_mutex_lock(&sv->lock);
    if (text) {
        free(sv->json);
        sv->json = text;
    }
    sv->kafka_ok = st->dlq_messages >= 0;
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
    return sv->dlq && sv->dlq_newest && sv->lag && sv->rate_used && sv->rate_limit && sv->last_ok
               ? 0
               : -1;
}

static int snapshot(const config_t *cfg, const kafka_settings_t *ks, store_t *st, status_t *out)
{
    if (status_collect(cfg, ks, st, out) != 0) {
        fprintf(stderr, "pipeline-status: out of memory\n");
        return CONFIG_EXIT_FATAL;
    }
    return CONFIG_EXIT_OK;
}

static int serve(const config_t *cfg, const kafka_settings_t *ks, store_t *st, const opts_t *o)
{
    served_t sv = {.lock = PTHREAD_MUTEX_INITIALIZER};
    metrics_t *m = metrics_new();
    metrics_server_t *srv = NULL;
    char err[512];
    int rc = CONFIG_EXIT_FATAL;
    if (!m || register_families(m, &sv) != 0)
        goto out;
    metrics_server_config_t mc = {.bind_address = o->bind, .port = o->port,
                                  .stale_after_ms = (int64_t)o->interval_s * 4000 + 60000,
                                  .ready = ready, .ready_ctx = &sv,
                                  .route = route, .route_ctx = &sv};
    if (metrics_server_start(m, &mc, &srv, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"%s\"", err);
        goto out;
    }
    log_msg(LOG_INFO, "serving", "address=%s port=%d interval_s=%d", o->bind, o->port,
            o->interval_s);
    while (!app_stop_requested()) {
        status_t s;
        if (snapshot(cfg, ks, st, &s) != 0)
            goto out;
        publish(&sv, &s);
        for (size_t i = 0; i < s.problem_count; i++)
            log_msg(LOG_WARN, "status_problem", "problem=\"%s\"", s.problems[i]);
        status_free(&s);
        metrics_heartbeat(m);
        app_sleep_ms((int64_t)o->interval_s * 1000);
    }
    rc = CONFIG_EXIT_OK;
out:
    metrics_server_stop(srv);
    metrics_free(m);
    free(sv.json);
    return rc;
}

static int run(const config_t *cfg, const opts_t *o)
{
    const char **names = NULL, **values = NULL;
    kafka_settings_t ks;
    if (dlq_settings_from_config(cfg, &ks, &names, &values) != 0)
        return CONFIG_EXIT_FATAL;
    char err[512];
    store_t *st = store_open(cfg->mongodb_uri, err, sizeof err);
    if (!st)
        log_msg(LOG_WARN, "store_unavailable", "error=\"%s\"", err);
    int rc = CONFIG_EXIT_OK;
    if (o->serve) {
        rc = serve(cfg, &ks, st, o);
    } else {
        do {
            status_t s;
            if ((rc = snapshot(cfg, &ks, st, &s)) != 0)
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
    store_close(st);
    free(names);
    free(values);
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
