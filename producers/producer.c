/* producer: the shared poll loop of ploomes-producer and milvus-producer. */
#include "producer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "errbuf.h"
#include "json.h"
#include "log.h"
#include "publish.h"

/* Largest response body we accept for one page (300 expanded contacts stay far below). */
#define PRODUCER_MAX_BODY (32u * 1024u * 1024u)
/* Bounds at start and shutdown. */
#define PRODUCER_TOPICS_TIMEOUT_MS 30000
#define PRODUCER_WARM_TIMEOUT_MS 10000
#define PRODUCER_CLOSE_TIMEOUT_MS 30000
#define PRODUCER_STORE_PING_TRIES 5
/* Delivery waits look at the stop request this often. */
#define PRODUCER_STOP_CHECK_MS 200

const char *producer_pass_name(producer_pass_t r)
{
    switch (r) {
    case PRODUCER_PASS_OK: return "ok";
    case PRODUCER_PASS_STOPPED: return "stopped";
    case PRODUCER_PASS_FAILED: return "failed";
    case PRODUCER_PASS_AUTH: return "auth";
    case PRODUCER_PASS_FATAL: return "fatal";
    }
    return "unknown";
}

producer_pass_t producer_pass_worst(producer_pass_t a, producer_pass_t b)
{
    return a > b ? a : b;
}

/* api_ and ratelimit_ wait through this: serve delivery reports, keep /healthz fresh, and
 * abandon the wait on SIGTERM/SIGINT. */
static void lease_renew_due(producer_ctx_t *ctx);

static int wait_hook(void *opaque, int64_t remaining_ms)
{
    producer_ctx_t *ctx = opaque;
    lease_renew_due(ctx);
    int slice = remaining_ms > 100 ? 100 : (int)(remaining_ms > 0 ? remaining_ms : 0);
    metrics_heartbeat(ctx->metrics);
    if (app_stop_requested())
        return 1;
    if (ctx->kafka != NULL)
        kafka_producer_poll(ctx->kafka, slice);
    else
        app_sleep_ms(slice);
    return app_stop_requested() ? 1 : 0;
}

/* api_'s MongoDB outage hook (the shared rate limiter): readiness follows it. */
static void store_state_cb(void *opaque, bool up)
{
    producer_ctx_t *ctx = opaque;
    atomic_store(&ctx->ready, up);
}

static bool ready_cb(void *opaque, char *why, size_t whylen)
{
    producer_ctx_t *ctx = opaque;
    if (atomic_load(&ctx->ready))
        return true;
    errbuf_set(why, whylen, "Kafka or MongoDB not reachable yet");
    return false;
}

size_t producer_mark_nul_escapes(char *buf, size_t *len)
{
    size_t n = *len, r = 0, w = 0, count = 0;
    bool in_str = false;
    while (r < n) {
        char c = buf[r];
        if (!in_str) {
            in_str = c == '"';
            buf[w++] = buf[r++];
        } else if (c == '"') {
            in_str = false;
            buf[w++] = buf[r++];
        } else if (c == '\\' && r + 1 < n) {
            if (buf[r + 1] == 'u' && r + 5 < n && memcmp(buf + r + 2, "0000", 4) == 0) {
                buf[w++] = (char)0xC0;
                buf[w++] = (char)0x80;
                r += 6;
                count++;
            } else {
                buf[w++] = buf[r++];
                buf[w++] = buf[r++];
            }
        } else {
            buf[w++] = buf[r++];
        }
    }
    if (w < n)
        buf[w] = '\0';
    *len = w;
    return count;
}

producer_pass_t producer_fetch(producer_ctx_t *ctx, const char *entity, const char *path_or_url,
                               cJSON **root, char *err, size_t errlen)
{
    return producer_fetch_ex(ctx, entity, path_or_url, root, NULL, err, errlen);
}

producer_pass_t producer_fetch_ex(producer_ctx_t *ctx, const char *entity,
                                  const char *path_or_url, cJSON **root, bool *unparsable,
                                  char *err, size_t errlen)
{
    *root = NULL;
    if (unparsable != NULL)
        *unparsable = false;
    if (ctx->scan_limit != NULL) {
        char lerr[256];
        int lrc = ratelimit_acquire(ctx->scan_limit, NULL, wait_hook, ctx, lerr, sizeof lerr);
        if (lrc == 1) {
            errbuf_set(err, errlen, "stopped while waiting for the scan quota");
            return PRODUCER_PASS_STOPPED;
        }
        if (lrc != 0) {
            errbuf_set(err, errlen, "scan quota (MongoDB) unavailable: %s", lerr);
            char m[400];
            log_msg(LOG_ERROR, "page_failed", "entity=%s error=%s", entity,
                    log_quote(m, sizeof m, err));
            metrics_counter_add(ctx->m_failures, PRODUCER_LABELS(ctx, entity), 1);
            return PRODUCER_PASS_FAILED;
        }
    }
    api_result_t res;
    memset(&res, 0, sizeof res);
    api_outcome_t oc = api_request(ctx->api, HTTP_GET, path_or_url, NULL, API_IDEMPOTENT, &res);
    producer_pass_t out = PRODUCER_PASS_OK;
    char url[512];
    http_redact_url(path_or_url, url, sizeof url);
    char q[600];
    if (oc == API_OK) {
        char perr[256];
        size_t repaired = 0;
        if (res.body != NULL && producer_mark_nul_escapes(res.body, &res.body_len) > 0)
            log_msg(LOG_DEBUG, "nul_escapes", "entity=%s url=%s", entity,
                    log_quote(q, sizeof q, url));
        /* Lenient: a lone-surrogate escape in one record must not block the whole page
         * forever; the record is then skipped as invalid UTF-8 (producer_record_utf8). */
        *root = json_parse_bounded_lenient(res.body, res.body_len, PRODUCER_MAX_BODY,
                                           &repaired, perr, sizeof perr);
        if (repaired > 0)
            log_msg(LOG_WARN, "lone_surrogates", "entity=%s url=%s count=%zu",
                    entity, log_quote(q, sizeof q, url), repaired);
        if (*root == NULL) {
            errbuf_set(err, errlen, "GET %s: response is not JSON: %s", url, perr);
            if (unparsable != NULL) {
                /* the caller asks again with smaller pages: not a failed page (yet) */
                *unparsable = true;
                api_result_clear(&res);
                return PRODUCER_PASS_FAILED;
            }
            out = PRODUCER_PASS_FAILED;
        }
    } else if (oc == API_STOPPED) {
        errbuf_set(err, errlen, "stopped while fetching");
        api_result_clear(&res);
        return PRODUCER_PASS_STOPPED;
    } else {
        errbuf_set(err, errlen, "GET %s: %s after %d attempt(s): %s", url, api_outcome_name(oc),
                   res.attempts, res.message);
        out = oc == API_AUTH ? PRODUCER_PASS_AUTH : PRODUCER_PASS_FAILED;
    }
    if (out == PRODUCER_PASS_OK) {
        metrics_counter_add(ctx->m_pages, PRODUCER_LABELS(ctx, entity), 1);
        log_msg(LOG_DEBUG, "page_fetched", "entity=%s url=%s status=%ld elapsed_ms=%" PRId64,
                entity, log_quote(q, sizeof q, url), res.status, res.elapsed_ms);
    } else {
        metrics_counter_add(ctx->m_failures, PRODUCER_LABELS(ctx, entity), 1);
        char m[600];
        log_msg(LOG_ERROR, "page_failed",
                "entity=%s url=%s outcome=%s status=%ld attempts=%d error_class=%s "
                "elapsed_ms=%" PRId64 " error=%s",
                entity, log_quote(q, sizeof q, url), api_outcome_name(oc), res.status,
                res.attempts, res.error_class[0] ? res.error_class : "-", res.elapsed_ms,
                log_quote(m, sizeof m, err));
    }
    api_result_clear(&res);
    return out;
}

/* -1 while no stop is requested; otherwise the milliseconds left of PRODUCER_SHUTDOWN_GRACE_MS
 * (0 when spent), counted from the first call that saw the stop. */
static int64_t stop_grace_left(producer_ctx_t *ctx)
{
    if (!app_stop_requested())
        return -1;
    int64_t now = clock_mono_ms();
    if (ctx->stop_seen_mono == 0)
        ctx->stop_seen_mono = now > 0 ? now : 1;
    int64_t left = ctx->stop_seen_mono + PRODUCER_SHUTDOWN_GRACE_MS - now;
    return left > 0 ? left : 0;
}

/* kafka_batch_wait() on ctx->batch in slices, so a stop request bounds the wait: without one it
 * lasts until every report is in (librdkafka's message.timeout.ms bounds that); after one, at
 * most what is left of the grace. Same returns as kafka_batch_wait(); KAFKA_ERR_TIMEOUT only
 * when a stop cut the wait short. */
static int batch_wait_bounded(producer_ctx_t *ctx, char *kerr, size_t kerrlen)
{
    for (;;) {
        int64_t left = stop_grace_left(ctx);
        if (left == 0) /* grace spent: collect what has arrived, wait no more */
            return kafka_batch_wait(ctx->kafka, ctx->batch, 0, kerr, kerrlen);
        int slice = left < 0 || left > PRODUCER_STOP_CHECK_MS ? PRODUCER_STOP_CHECK_MS
                                                              : (int)left;
        int rc = kafka_batch_wait(ctx->kafka, ctx->batch, slice, kerr, kerrlen);
        if (rc != KAFKA_ERR_TIMEOUT)
            return rc;
    }
}

producer_pass_t producer_deliver(producer_ctx_t *ctx, const char *entity, char *err,
                                 size_t errlen)
{
    char kerr[512];
    kerr[0] = '\0';
    int rc = batch_wait_bounded(ctx, kerr, sizeof kerr);
    if (rc == KAFKA_OK)
        return PRODUCER_PASS_OK;
    if (rc == KAFKA_ERR_TIMEOUT) {
        errbuf_set(err, errlen,
                   "stopped with %zu of %zu records still waiting for a delivery report after "
                   "%d ms: the cursor stays before them, the next start publishes them again",
                   kafka_batch_pending(ctx->batch), kafka_batch_sent(ctx->batch),
                   PRODUCER_SHUTDOWN_GRACE_MS);
        char m[600];
        log_msg(LOG_WARN, "delivery_abandoned", "entity=%s pending=%zu sent=%zu error=%s",
                entity, kafka_batch_pending(ctx->batch), kafka_batch_sent(ctx->batch),
                log_quote(m, sizeof m, err));
        return PRODUCER_PASS_STOPPED;
    }
    char first[256];
    kafka_batch_error(ctx->batch, first, sizeof first);
    errbuf_set(err, errlen, "delivery of %zu of %zu records failed (%s): %s %s",
               kafka_batch_failed(ctx->batch) + kafka_batch_pending(ctx->batch),
               kafka_batch_sent(ctx->batch), kafka_status_name(rc), kerr, first);
    char m[600];
    log_msg(LOG_ERROR, "delivery_failed", "entity=%s error=%s", entity,
            log_quote(m, sizeof m, err));
    return rc == KAFKA_ERR_FATAL ? PRODUCER_PASS_FATAL : PRODUCER_PASS_FAILED;
}

void producer_drain(producer_ctx_t *ctx)
{
    char kerr[256];
    (void)batch_wait_bounded(ctx, kerr, sizeof kerr); /* the outcome is not wanted */
}

void producer_scan_done(producer_ctx_t *ctx, const char *key, const char *entity,
                        producer_pass_t r, const char *end, size_t pages, size_t published,
                        int64_t t0_ms, const char *err)
{
    bool ok = r == PRODUCER_PASS_OK;
    bool show_err = !ok && err != NULL && err[0] != '\0';
    if (r != PRODUCER_PASS_STOPPED) {
        char serr[256];
        if (store_cursor_poll_result(ctx->store, key, ok, ok ? "" : (err ? err : ""), serr,
                                     sizeof serr) != STORE_OK) {
            char m[300];
            log_msg(LOG_WARN, "poll_result_not_saved", "cursor=%s error=%s", key,
                    log_quote(m, sizeof m, serr));
        }
        if (ok)
            metrics_gauge_set(ctx->m_last_ok, PRODUCER_LABELS(ctx, entity),
                              (double)clock_wall_ms() / 1000.0);
    }
    char q[800];
    log_msg(ok || r == PRODUCER_PASS_STOPPED ? LOG_INFO : LOG_WARN, "scan_done",
            "entity=%s outcome=%s end=%s pages=%zu published=%zu elapsed_ms=%" PRId64 "%s%s",
            entity, producer_pass_name(r), end, pages, published, clock_mono_ms() - t0_ms,
            show_err ? " error=" : "", show_err ? log_quote(q, sizeof q, err) : "");
}

void producer_skip(producer_ctx_t *ctx, const char *entity, const char *reason, const char *id,
                   const char *detail)
{
    metrics_counter_add(ctx->m_skipped, (const char *[]){ctx->source, entity, reason}, 1);
    char qi[64], qd[300];
    log_msg(LOG_WARN, "record_skipped", "source=%s entity=%s id=%s reason=%s%s%s", ctx->source,
            entity, log_quote(qi, sizeof qi, id), reason, detail ? " detail=" : "",
            detail ? log_quote(qd, sizeof qd, detail) : "");
}

bool producer_record_id(producer_ctx_t *ctx, const char *entity, const cJSON *row,
                        const char *field, int index, int64_t *id)
{
    char where[32], detail[96];
    snprintf(where, sizeof where, "#%d", index);
    if (!cJSON_IsObject(row)) {
        snprintf(detail, sizeof detail, "row is %s, not a JSON object",
                 cJSON_IsArray(row)    ? "an array"
                 : cJSON_IsString(row) ? "a string"
                 : cJSON_IsNumber(row) ? "a number"
                 : cJSON_IsBool(row)   ? "a boolean"
                 : cJSON_IsNull(row)   ? "null"
                                       : "not an object");
        producer_skip(ctx, entity, PRODUCER_SKIP_BAD_ID, where, detail);
        return false;
    }
    int64_t v = 0;
    json_status_t st = json_get_int64(row, field, &v);
    /* 2^53 itself is where doubles stop being exact: 2^53+1 arrives as 2^53. */
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(row, field);
    bool unsafe = st == JSON_OK && cJSON_IsNumber(item) &&
                  (item->valuedouble >= 9007199254740992.0 ||
                   item->valuedouble <= -9007199254740992.0);
    if (st == JSON_OK && v >= 1 && !unsafe) {
        *id = v;
        return true;
    }
    snprintf(detail, sizeof detail, "%s: %s", field,
             unsafe           ? "a number past 2^53-1 (not exact)"
             : st == JSON_OK  ? "not a positive integer"
                              : json_status_name(st));
    producer_skip(ctx, entity, PRODUCER_SKIP_BAD_ID, where, detail);
    return false;
}

/* True when a string or key of the tree holds the bytes C0 80 (a \\u0000 escape, see
 * producer_mark_nul_escapes). */
static bool has_nul_marker(const cJSON *item)
{
    if (item == NULL)
        return false;
    if (item->string != NULL && strstr(item->string, "\xC0\x80") != NULL)
        return true;
    if (cJSON_IsString(item) && item->valuestring != NULL &&
        strstr(item->valuestring, "\xC0\x80") != NULL)
        return true;
    for (const cJSON *c = item->child; c != NULL; c = c->next)
        if (has_nul_marker(c))
            return true;
    return false;
}

bool producer_record_utf8(producer_ctx_t *ctx, const char *entity, const cJSON *row,
                          int64_t id)
{
    char path[256];
    if (json_validate_utf8(row, path, sizeof path) == 0)
        return true;
    char key[PUBLISH_KEY_SIZE];
    producer_skip(ctx, entity, has_nul_marker(row) ? PRODUCER_SKIP_NUL
                                                   : PRODUCER_SKIP_INVALID_UTF8,
                  publish_key(id, key, sizeof key), path);
    return false;
}

/* Room for the key (<= 20 bytes) and the four headers (names and values <= 160 bytes). */
#define PRODUCER_MESSAGE_OVERHEAD 256

bool producer_record_fits(producer_ctx_t *ctx, const char *entity, int64_t id,
                          size_t value_len)
{
    int64_t max = ctx->record_max_bytes;
    if (max <= 0 && ctx->cfg != NULL) {
        kafka_settings_t ks = {.max_message_bytes = ctx->cfg->kafka_max_message_bytes};
        max = kafka_record_max_bytes(&ks, false);
    }
    if (max <= 0 || (int64_t)value_len + PRODUCER_MESSAGE_OVERHEAD <= max)
        return true;
    char key[PUBLISH_KEY_SIZE], detail[160];
    snprintf(detail, sizeof detail,
             "size=%zu bytes, largest record %" PRId64 " (KAFKA_MAX_MESSAGE_BYTES=%" PRId64
             ") less %d for key and headers",
             value_len, max, ctx->cfg != NULL ? ctx->cfg->kafka_max_message_bytes : 0,
             PRODUCER_MESSAGE_OVERHEAD);
    producer_skip(ctx, entity, PRODUCER_SKIP_TOO_LARGE, publish_key(id, key, sizeof key),
                  detail);
    return false;
}

void producer_stuck(producer_ctx_t *ctx, const char *entity, const char *why)
{
    if (ctx->m_stuck != NULL)
        metrics_counter_add(ctx->m_stuck, PRODUCER_LABELS(ctx, entity), 1);
    char q[600];
    log_msg(LOG_ERROR, "scan_stuck", "source=%s entity=%s error=%s", ctx->source, entity,
            log_quote(q, sizeof q, why));
}

void producer_future_stamp(producer_ctx_t *ctx, const char *entity, int64_t id,
                           const char *stamp)
{
    if (ctx->m_future != NULL)
        metrics_counter_add(ctx->m_future, PRODUCER_LABELS(ctx, entity), 1);
    char key[PUBLISH_KEY_SIZE], qs[96];
    log_msg(LOG_WARN, "future_stamp",
            "source=%s entity=%s id=%s stamp=%s tolerance_s=%d reason=\"stamped later than now "
            "+ FUTURE_STAMP_TOLERANCE_SECONDS: published once, the cursor stays before it\"",
            ctx->source, entity, publish_key(id, key, sizeof key), log_quote(qs, sizeof qs, stamp),
            ctx->cfg != NULL ? ctx->cfg->future_stamp_tolerance_seconds : 0);
}

producer_pass_t producer_publish(producer_ctx_t *ctx, const char *topic, const char *entity,
                                 int64_t id, const char *value, const char *stamp,
                                 const char *fetched_at, char *err, size_t errlen)
{
    char key[PUBLISH_KEY_SIZE];
    publish_key(id, key, sizeof key);
    publish_headers_t h;
    int rc = KAFKA_ERR_NOMEM;
    if (value == NULL) {
        errbuf_set(err, errlen, "out of memory printing %s %s", entity, key);
    } else if (publish_headers_build(&h, ctx->source, entity, key, stamp, fetched_at) != 0) {
        errbuf_set(err, errlen, "could not build the headers of %s %s", entity, key);
    } else {
        char kerr[256];
        rc = publish_send(ctx->kafka, ctx->batch, topic, key, value, &h, kerr, sizeof kerr);
        if (rc == KAFKA_OK) {
            kafka_producer_poll(ctx->kafka, 0);
            return PRODUCER_PASS_OK;
        }
        errbuf_set(err, errlen, "produce of %s %s to %s failed: %s", entity, key, topic, kerr);
    }
    producer_drain(ctx); /* the page is abandoned; the cursor stays */
    return rc == KAFKA_ERR_FATAL ? PRODUCER_PASS_FATAL : PRODUCER_PASS_FAILED;
}

producer_pass_t producer_page_unusable(producer_ctx_t *ctx, const char *entity,
                                       const char *path, const char *what, char *err,
                                       size_t errlen)
{
    char url[512], q[800];
    http_redact_url(path, url, sizeof url);
    errbuf_set(err, errlen, "GET %s: answer has %s", url, what);
    log_msg(LOG_ERROR, "page_failed", "entity=%s error=%s", entity,
            log_quote(q, sizeof q, err));
    metrics_counter_add(ctx->m_failures, PRODUCER_LABELS(ctx, entity), 1);
    return PRODUCER_PASS_FAILED;
}

/* ---- producer lease ---------------------------------------------------------------------- */

/* Renewal period while waiting: every 10 s, or a third of the lease when that is shorter. */
static int64_t lease_period_ms(const producer_ctx_t *ctx)
{
    int64_t third = ctx->lease_ms / 3;
    return third < 10000 ? (third < 500 ? 500 : third) : 10000;
}

static void lease_set_held(producer_ctx_t *ctx, bool held, const char *event,
                           const store_lease_t *l)
{
    bool was = ctx->lease_held;
    ctx->lease_held = held;
    if (ctx->m_active != NULL)
        metrics_gauge_set(ctx->m_active, (const char *[]){ctx->source}, held ? 1.0 : 0.0);
    if (held && !was) {
        log_msg(LOG_INFO, "lease_acquired", "source=%s lease=%s owner=%s lease_s=%" PRId64
                " role=active", ctx->source, ctx->lease_name, ctx->lease_owner,
                ctx->lease_ms / 1000);
    } else if (!held && (was || event != NULL)) {
        char q[300];
        log_msg(was ? LOG_WARN : LOG_INFO, event != NULL ? event : "lease_lost",
                "source=%s lease=%s owner=%s holder=%s role=standby", ctx->source,
                ctx->lease_name, ctx->lease_owner,
                log_quote(q, sizeof q, l != NULL && l->owner[0] ? l->owner : "-"));
    }
}

/* Renews the lease; false when it was lost. A MongoDB failure keeps the lease while its last
 * renewal is younger than the lease less 2 s (cursor writes fail meanwhile anyway). */
static bool lease_renew(producer_ctx_t *ctx)
{
    if (ctx->lease_name[0] == '\0')
        return true;
    if (!ctx->lease_held)
        return false;
    store_lease_t l;
    memset(&l, 0, sizeof l);
    char err[256], q[300];
    int rc = store_lease_renew(ctx->store, ctx->lease_name, ctx->lease_owner, ctx->lease_ms, &l,
                               err, sizeof err);
    if (rc == STORE_OK) {
        ctx->lease_renewed_mono = clock_mono_ms();
        return true;
    }
    if (rc == STORE_CONFLICT) {
        lease_set_held(ctx, false, "lease_lost", &l);
        return false;
    }
    log_msg(LOG_WARN, "lease_renew_failed", "source=%s error=%s", ctx->source,
            log_quote(q, sizeof q, err));
    if (clock_mono_ms() - ctx->lease_renewed_mono > ctx->lease_ms - 2000) {
        lease_set_held(ctx, false, "lease_lost", NULL);
        return false;
    }
    return true;
}

static void lease_renew_due(producer_ctx_t *ctx)
{
    if (ctx->lease_name[0] != '\0' && ctx->lease_held && ctx->store != NULL &&
        clock_mono_ms() - ctx->lease_renewed_mono >= lease_period_ms(ctx))
        lease_renew(ctx);
}

bool producer_lease_keep(producer_ctx_t *ctx)
{
    if (ctx->lease_name[0] == '\0')
        return true;
    if (ctx->lease_held && clock_mono_ms() - ctx->lease_renewed_mono < 1000)
        return true;
    return lease_renew(ctx);
}

/* Tries to take (or keep) the lease. Returns true when this process is the active one. */
static bool lease_acquire(producer_ctx_t *ctx, bool *logged_standby)
{
    store_lease_t l;
    memset(&l, 0, sizeof l);
    char err[256], q[300];
    int rc = store_lease_acquire(ctx->store, ctx->lease_name, ctx->lease_owner, ctx->lease_ms, &l,
                                 err, sizeof err);
    if (rc != STORE_OK) {
        log_msg(LOG_WARN, "lease_unavailable", "source=%s error=%s", ctx->source,
                log_quote(q, sizeof q, err));
        lease_set_held(ctx, false, NULL, NULL);
        return false;
    }
    if (l.held) {
        ctx->lease_renewed_mono = clock_mono_ms();
        lease_set_held(ctx, true, NULL, &l);
        *logged_standby = false;
        return true;
    }
    lease_set_held(ctx, false, *logged_standby ? NULL : "standby", &l);
    *logged_standby = true;
    return false;
}

static void lease_release(producer_ctx_t *ctx)
{
    if (ctx->lease_name[0] == '\0' || !ctx->lease_held || ctx->store == NULL)
        return;
    char err[256], q[300];
    int rc = store_lease_release(ctx->store, ctx->lease_name, ctx->lease_owner, err, sizeof err);
    if (rc == STORE_OK)
        log_msg(LOG_INFO, "lease_released", "source=%s lease=%s owner=%s", ctx->source,
                ctx->lease_name, ctx->lease_owner);
    else
        log_msg(LOG_WARN, "lease_release_failed", "source=%s error=%s", ctx->source,
                log_quote(q, sizeof q, err));
    ctx->lease_held = false; /* given up on purpose: no lease_lost line */
    if (ctx->m_active != NULL)
        metrics_gauge_set(ctx->m_active, (const char *[]){ctx->source}, 0.0);
}

int producer_cursor_save(producer_ctx_t *ctx, const char *key, const char *stamp, int64_t id,
                         char *err, size_t errlen)
{
    if (ctx->lease_name[0] == '\0')
        return store_cursor_set(ctx->store, key, stamp, id, err, errlen);
    int rc = store_cursor_set_leased(ctx->store, key, stamp, id, ctx->lease_name,
                                     ctx->lease_owner, err, errlen);
    if (rc == STORE_CONFLICT) {
        lease_set_held(ctx, false, "lease_lost", NULL);
    } else if (rc == STORE_OK) {
        /* the write checked (and, near its end, renewed) the lease */
    }
    return rc;
}

static bool register_metrics(producer_ctx_t *ctx)
{
    static const char *const labels[] = {"source", "entity", NULL};
    metrics_t *m = ctx->metrics;
    ctx->m_published = metrics_counter_new(m, "producer_records_published_total",
                                           "Records published to Kafka (delivery confirmed).",
                                           labels);
    ctx->m_unchanged = metrics_counter_new(
        m, "producer_records_unchanged_total",
        "Records read but not published because their content did not change.", labels);
    ctx->m_pages = metrics_counter_new(m, "producer_pages_fetched_total",
                                       "Pages fetched from the source API.", labels);
    ctx->m_failures = metrics_counter_new(m, "producer_fetch_failures_total",
                                          "Pages that could not be fetched past the retries.",
                                          labels);
    ctx->m_truncations = metrics_counter_new(
        m, "producer_truncation_warnings_total",
        "Answers that looked truncated (a full page and no way to get more).", labels);
    ctx->m_last_ok = metrics_gauge_new(m, "producer_last_success_timestamp_seconds",
                                       "Unix time of the last poll that completed.", labels);
    static const char *const skip_labels[] = {"source", "entity", "reason", NULL};
    ctx->m_skipped = metrics_counter_new(
        m, "producer_records_skipped_total",
        "Rows not published because they are unusable (no positive integer id, no usable "
        "LastUpdateDate, invalid UTF-8, a NUL character, too large, unparsable); each is "
        "logged as event=record_skipped.",
        skip_labels);
    ctx->m_future = metrics_counter_new(
        m, "producer_future_stamps_total",
        "Rows stamped later than now + FUTURE_STAMP_TOLERANCE_SECONDS: published once, the "
        "cursor stays before them (event=future_stamp).",
        labels);
    ctx->m_stuck = metrics_counter_new(
        m, "producer_stuck_scans_total",
        "Scans that could not move their cursor past a full page (event=scan_stuck).", labels);
    static const char *const src_labels[] = {"source", NULL};
    ctx->m_active = metrics_gauge_new(
        m, "producer_active",
        "1 while this process holds the producer lease of its source and publishes; 0 on "
        "standby.",
        src_labels);
    ctx->m_interval = metrics_gauge_new(
        m, "producer_poll_interval_seconds",
        "The wait before the next poll: POLL_INTERVAL_SECONDS, or longer when the scan's quota "
        "share stretches it (alerts compare the last success against it).",
        src_labels);
    return ctx->m_published && ctx->m_unchanged && ctx->m_pages && ctx->m_failures &&
           ctx->m_truncations && ctx->m_last_ok && ctx->m_skipped && ctx->m_future &&
           ctx->m_stuck && ctx->m_active && ctx->m_interval;
}

/* Sleeps the poll interval, serving delivery reports and the heartbeat. */
static void idle(producer_ctx_t *ctx, int64_t ms)
{
    int64_t end = clock_mono_ms() + ms;
    while (!app_stop_requested()) {
        int64_t left = end - clock_mono_ms();
        if (left <= 0)
            break;
        metrics_heartbeat(ctx->metrics);
        lease_renew_due(ctx);
        kafka_producer_poll(ctx->kafka, left > 200 ? 200 : (int)left);
    }
}

int producer_run(const config_t *cfg, const app_cli_t *cli, const char *binary,
                 const producer_source_t *src)
{
    int exit_code = CONFIG_EXIT_FATAL;
    char err[512];
    char q[600];
    producer_ctx_t ctx;
    memset(&ctx, 0, sizeof ctx);
    atomic_init(&ctx.ready, false);
    ctx.cfg = cfg;
    ctx.binary = binary;
    ctx.source = src->source;
    metrics_server_t *server = NULL;

    ctx.metrics = metrics_new();
    if (ctx.metrics == NULL || !register_metrics(&ctx)) {
        log_msg(LOG_ERROR, "startup_failed", "error=\"out of memory (metrics)\"");
        goto out;
    }
    metrics_server_config_t mcfg = {.bind_address = NULL,
                                    .port = cfg->metrics_port,
                                    .stale_after_ms = 0,
                                    .ready = ready_cb,
                                    .ready_ctx = &ctx};
    if (cfg->metrics_port != METRICS_PORT_OFF &&
        metrics_server_start(ctx.metrics, &mcfg, &server, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        goto out;
    }

    /* MongoDB: cursors, hashes, rate limit. */
    ctx.store = store_open(cfg->mongodb_uri, err, sizeof err);
    if (ctx.store == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        exit_code = CONFIG_EXIT_USAGE;
        goto out;
    }
    int src_rc = STORE_DOWN;
    for (int i = 0; i < PRODUCER_STORE_PING_TRIES && !app_stop_requested(); i++) {
        src_rc = store_ping(ctx.store, err, sizeof err);
        if (src_rc == STORE_OK || src_rc == STORE_REJECTED)
            break;
        log_msg(LOG_WARN, "mongodb_unreachable", "attempt=%d error=%s", i + 1,
                log_quote(q, sizeof q, err));
        app_sleep_ms(1000);
    }
    if (src_rc != STORE_OK) {
        if (app_stop_requested())
            exit_code = CONFIG_EXIT_OK;
        else
            log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        goto out;
    }
    /* No store_ensure_indexes(): producers read cursors and milvus_hashes by _id only; the
     * indexes it creates serve the workers' clients/tickets lookups. */

    bool ploomes = src->api_kind == API_PLOOMES;
    const char *base_url = ploomes ? cfg->ploomes_base_url : cfg->milvus_base_url;
    const char *secret = ploomes ? cfg->ploomes_user_key : cfg->milvus_token;
    ratelimit_options_t ro = {.pool = store_pool(ctx.store),
                              .database = store_db_name(ctx.store),
                              .collection = NULL,
                              .base_url = base_url,
                              .secret = secret,
                              .limit = ploomes ? cfg->ploomes_rate_per_min
                                               : cfg->milvus_rate_per_min,
                              .window_ms = 60000,
                              .margin_ms = -1,
                              .name = src->source};
    ctx.ratelimit = ratelimit_new(&ro, err, sizeof err);
    if (ctx.ratelimit == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        goto out;
    }
    /* ploomes-producer's share of the account's window (SPEC §4 "Rate limits"): a bucket of
     * its own, in a collection of its own, shared by every ploomes-producer of the account. */
    double share = ploomes ? cfg->ploomes_scan_quota_share : 1.0;
    if (ploomes && share > 0.0 && share < 1.0) {
        int scan_limit = (int)((double)cfg->ploomes_rate_per_min * share);
        ratelimit_options_t so = ro;
        so.collection = "ratelimits_scan";
        so.limit = scan_limit < 1 ? 1 : scan_limit;
        so.name = "ploomes-scan";
        ctx.scan_limit = ratelimit_new(&so, err, sizeof err);
        if (ctx.scan_limit == NULL) {
            log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
            goto out;
        }
        log_msg(LOG_INFO, "scan_quota", "source=%s requests_per_min=%d share=%g",
                src->source, so.limit, share);
    }
    api_options_t ao = {.kind = src->api_kind,
                        .base_url = base_url,
                        .secret = secret,
                        .connect_timeout_ms = 10000,
                        .total_timeout_ms = (long)cfg->http_timeout_ms,
                        .max_body_bytes = PRODUCER_MAX_BODY,
                        .max_attempts = cfg->max_attempts,
                        .retry_base_ms = cfg->retry_base_ms,
                        .retry_max_ms = cfg->retry_max_ms,
                        .ratelimit = ctx.ratelimit,
                        .stop = NULL,
                        .wait_hook = wait_hook,
                        .wait_ctx = &ctx,
                        .on_store_state = store_state_cb,
                        .forbidden_pause_ms = cfg->ploomes_403_pause_ms,
                        .metrics = ctx.metrics};
    ctx.api = api_new(&ao, err, sizeof err);
    if (ctx.api == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        exit_code = CONFIG_EXIT_USAGE;
        goto out;
    }

    /* Kafka: topics, then the idempotent producer. */
    kafka_settings_t ks = kafka_settings_from_config(cfg);
    ctx.record_max_bytes = kafka_record_max_bytes(&ks, false);
    kafka_topic_id_t ids[KAFKA_TOPIC_COUNT];
    size_t nids = src->topics(cfg, ids, KAFKA_TOPIC_COUNT);
    if (nids > 0 && kafka_topics_ensure(&ks, cfg->topic_prefix, cfg->topic_partitions, ids, nids,
                                        PRODUCER_TOPICS_TIMEOUT_MS, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        goto out;
    }
    ctx.kafka = kafka_producer_new(&ks, binary, err, sizeof err);
    ctx.batch = kafka_batch_new();
    if (ctx.kafka == NULL || ctx.batch == NULL) {
        log_msg(LOG_ERROR, "startup_failed", "error=%s", log_quote(q, sizeof q, err));
        goto out;
    }
    /* The topics' partitions now, so the first page is not held ~1 s by librdkafka's metadata
     * timer; a failure costs only that delay. */
    if (kafka_producer_warm_ids(ctx.kafka, cfg->topic_prefix, ids, nids,
                                PRODUCER_WARM_TIMEOUT_MS, app_stop_requested, err,
                                sizeof err) != 0 &&
        !app_stop_requested())
        log_msg(LOG_WARN, "kafka_warm_failed", "error=%s", log_quote(q, sizeof q, err));
    /* The producer lease: one active producer per source and account. */
    {
        char host[128];
        if (gethostname(host, sizeof host) != 0)
            snprintf(host, sizeof host, "unknown");
        host[sizeof host - 1] = '\0';
        snprintf(ctx.lease_name, sizeof ctx.lease_name, "producer:%s", src->source);
        snprintf(ctx.lease_owner, sizeof ctx.lease_owner, "%.64s-%ld-%08" PRIx64, host,
                 (long)getpid(), http_random_u64() & 0xffffffffu);
        ctx.lease_ms = (int64_t)cfg->producer_lease_seconds * 1000;
        metrics_gauge_set(ctx.m_active, (const char *[]){ctx.source}, 0.0);
    }
    atomic_store(&ctx.ready, true);
    log_msg(LOG_INFO, "producer_started",
            "source=%s once=%s poll_interval_s=%d topic_prefix=%s", src->source,
            cli->once ? "true" : "false", cfg->poll_interval_seconds,
            log_quote(q, sizeof q, cfg->topic_prefix ? cfg->topic_prefix : ""));

    producer_pass_t worst = PRODUCER_PASS_OK;
    bool standby_logged = false;
    int64_t standby_since = -1;
    while (!app_stop_requested()) {
        metrics_heartbeat(ctx.metrics);
        if (!ctx.lease_held && !lease_acquire(&ctx, &standby_logged)) {
            if (standby_since < 0)
                standby_since = clock_mono_ms();
            /* --once waits out one lease (a dead holder's expires meanwhile); a live holder
             * keeps renewing it: then this pass is its job, not ours */
            if (cli->once &&
                clock_mono_ms() - standby_since > ctx.lease_ms + lease_period_ms(&ctx)) {
                log_msg(LOG_INFO, "standby_exit",
                        "source=%s reason=\"another instance holds the producer lease\"",
                        src->source);
                break;
            }
            idle(&ctx, lease_period_ms(&ctx)); /* standby: try again */
            continue;
        }
        standby_since = -1;
        ctx.next_idle_ms = 0;
        int64_t t0 = clock_mono_ms();
        producer_pass_t r = src->pass(&ctx);
        worst = producer_pass_worst(worst, r);
        log_msg(r == PRODUCER_PASS_OK || r == PRODUCER_PASS_STOPPED ? LOG_INFO : LOG_WARN,
                "pass_done", "source=%s outcome=%s elapsed_ms=%" PRId64, src->source,
                producer_pass_name(r), clock_mono_ms() - t0);
        atomic_store(&ctx.ready, store_ping(ctx.store, err, sizeof err) == STORE_OK &&
                                     !kafka_producer_fatal(ctx.kafka, NULL, 0));
        if (r == PRODUCER_PASS_AUTH || r == PRODUCER_PASS_FATAL || cli->once)
            break;
        int64_t wait_ms = ctx.next_idle_ms > 0 ? ctx.next_idle_ms
                                               : (int64_t)cfg->poll_interval_seconds * 1000;
        metrics_gauge_set(ctx.m_interval, (const char *const[]){src->source, NULL},
                          (double)wait_ms / 1000.0);
        idle(&ctx, wait_ms);
    }
    lease_release(&ctx);

    if (worst == PRODUCER_PASS_AUTH) {
        log_msg(LOG_ERROR, "credentials_rejected",
                "source=%s error=\"the API answered 401: check the key/token\"", src->source);
        exit_code = CONFIG_EXIT_CREDENTIALS;
    } else if (worst == PRODUCER_PASS_FATAL) {
        exit_code = CONFIG_EXIT_FATAL;
    } else if (cli->once && worst == PRODUCER_PASS_FAILED) {
        exit_code = CONFIG_EXIT_FATAL;
    } else {
        exit_code = CONFIG_EXIT_OK;
    }

out:
    atomic_store(&ctx.ready, false);
    lease_release(&ctx);
    if (ctx.kafka != NULL) {
        /* After a stop, flush only within what is left of the grace: the rest is purged (the
         * cursors stayed before it) and the exit code says so. */
        int64_t grace = stop_grace_left(&ctx);
        int close_ms = grace < 0 ? PRODUCER_CLOSE_TIMEOUT_MS : (int)grace;
        if (kafka_producer_close(ctx.kafka, close_ms, err, sizeof err) != 0) {
            log_msg(LOG_ERROR, "kafka_close_failed", "error=%s", log_quote(q, sizeof q, err));
            if (exit_code == CONFIG_EXIT_OK)
                exit_code = CONFIG_EXIT_FATAL;
        }
    }
    kafka_batch_free(ctx.batch);
    api_free(ctx.api);
    ratelimit_free(ctx.ratelimit);
    ratelimit_free(ctx.scan_limit);
    store_close(ctx.store);
    metrics_server_stop(server);
    metrics_free(ctx.metrics);
    log_msg(LOG_INFO, "producer_stopped", "source=%s exit_code=%d", src->source, exit_code);
    return exit_code;
}
