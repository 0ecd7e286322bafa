/* simsrv_: see simsrv.h. */
#include "simsrv.h"

#include "simjson.h"
#include "simtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_STATS 2000
#define RATE_WINDOW_MS 60000

typedef struct stat_entry {
    char method[16];
    char path[128];
    int status;
    int64_t count;
} stat_entry;

/* One API request as GET /_admin/requests shows it. */
typedef struct journal_entry {
    int64_t seq; /* 1, 2, ... since start or reset */
    char method[16];
    char path[128];
    int status; /* 0 when no answer was sent (or not yet: !done) */
    int64_t conn_request;
    const char *drop; /* static: "", "keepalive_before", "keepalive_after", "fail_after_write" */
    bool done;        /* false while the request is in progress */
} journal_entry;

typedef struct ratewin {
    char *key;
    int64_t *ts;
    size_t cap, head, count;
    int64_t last_ms; /* last accepted request, for min_interval_ms; 0 = none */
} ratewin;

struct simsrv {
    simsrv_app app;
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    pthread_mutex_t lock;
    volatile int stopping;
    simsrv_faults faults;
    uint64_t rng;
    stat_entry *stats;
    size_t nstats;
    int64_t total_requests;
    ratewin *windows;
    size_t nwindows;
    journal_entry *journal; /* ring of SIMSRV_JOURNAL_MAX, allocated on first use */
    size_t jhead, jcount;
    int64_t jseq;
    uint64_t jgen; /* bumped by each reset, so a request begun before one cannot end an entry
                    * of the new journal that has the same seq */
};

/* Per TCP connection (MHD socket context): requests begun on it so far. */
typedef struct conn_sock {
    int64_t requests;
} conn_sock;

typedef struct conn_state {
    char *uri;
    bool started;
    bool too_large;
    size_t cap;
    int64_t conn_request; /* this request's number on its connection (1 = first) */
    simbuf body;
} conn_state;

/* ---- small helpers ------------------------------------------------------------------------ */

void simsrv_resp_json(simsrv_resp *resp, int status, cJSON *json)
{
    free(resp->body);
    resp->body = NULL;
    resp->status = status;
    resp->content_type = "application/json; charset=utf-8";
    if (json) {
        resp->body = cJSON_PrintUnformatted(json);
        cJSON_Delete(json);
    }
    if (!resp->body) {
        resp->status = 500;
        resp->body = strdup("{\"message\":\"out of memory\"}");
    }
}

void simsrv_resp_text(simsrv_resp *resp, int status, const char *content_type, const char *text)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = text ? strdup(text) : NULL;
}

void simsrv_resp_message(simsrv_resp *resp, int status, const char *key, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    if (o)
        cJSON_AddStringToObject(o, key, message);
    simsrv_resp_json(resp, status, o);
}

const char *simsrv_header(const simsrv_req *req, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)req->conn, MHD_HEADER_KIND, name);
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

bool simsrv_header_is(const simsrv_req *req, const char *name, const char *prefix,
                      const char *want)
{
    const char *h = simsrv_header(req, name);
    if (!h)
        return false;
    while (is_ows(*h))
        h++;
    size_t n = strlen(h);
    while (n > 0 && is_ows(h[n - 1]))
        n--;
    size_t pl = prefix ? strlen(prefix) : 0;
    if (n < pl || (pl && strncasecmp(h, prefix, pl) != 0))
        return false;
    h += pl;
    n -= pl;
    return strlen(want) == n && memcmp(h, want, n) == 0;
}

const char *simsrv_param_get(const simsrv_req *req, const char *key)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].key, key) == 0)
            return req->params[i].value;
    return NULL;
}

const simsrv_faults *simsrv_get_faults(const simsrv *srv)
{
    return &srv->faults;
}

uint64_t simsrv_rand(simsrv *srv)
{
    /* splitmix64: tiny, good enough, and deterministic for a given seed */
    uint64_t z = (srv->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

size_t simsrv_short_page(simsrv *srv, size_t asked)
{
    if (!srv->faults.short_pages || asked == 0)
        return asked;
    unsigned pct = 40 + (unsigned)(simsrv_rand(srv) % 51); /* 40..90 */
    size_t n = asked * pct / 100;
    return n ? n : 1;
}

const char *simsrv_base_url(const simsrv *srv, const simsrv_req *req, char *buf, size_t size)
{
    const char *host = simsrv_header(req, MHD_HTTP_HEADER_HOST);
    bool ok = host && host[0] && strlen(host) < 200;
    for (const char *p = host; ok && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == ':' || *p == '-' || *p == '[' || *p == ']'))
            ok = false;
    if (ok)
        snprintf(buf, size, "http://%s", host);
    else
        snprintf(buf, size, "http://127.0.0.1:%d", srv->port);
    return buf;
}

static void faults_default(simsrv *srv)
{
    memset(&srv->faults, 0, sizeof srv->faults);
    srv->faults.error_status = 503;
    srv->faults.rate_limit_per_min = srv->app.default_rate_per_min;
    srv->faults.retry_after = true;
    srv->faults.truncate_at = 1000;
    srv->faults.seed = 42;
    srv->faults.duplicate_status = 409;
    srv->faults.content_type_check = true;
    srv->faults.fail_after_write_status = 500;
    srv->faults.bad_token_status = 401;
    srv->faults.inlinecount = true;
    srv->faults.task_required_strict = true;
    srv->faults.create_status = 200;
    srv->faults.derive_documents = true;
    srv->faults.busca_paging = true;
    srv->faults.uppercase_documents = true;
    srv->faults.listagem_default_status = 9;
    srv->faults.keepalive_drop_times = -1;
    srv->rng = srv->faults.seed;
}

static cJSON *faults_json(const simsrv *srv)
{
    const simsrv_faults *f = &srv->faults;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "latency_ms", (double)f->latency_ms);
    cJSON_AddNumberToObject(o, "error_rate", f->error_rate);
    cJSON_AddNumberToObject(o, "error_status", f->error_status);
    cJSON_AddNumberToObject(o, "error_burst", (double)f->error_burst);
    cJSON_AddNumberToObject(o, "rate_limit_per_min", (double)f->rate_limit_per_min);
    cJSON_AddBoolToObject(o, "retry_after", f->retry_after);
    cJSON_AddNumberToObject(o, "min_interval_ms", (double)f->min_interval_ms);
    bool down = f->down && (f->down_until_ms == 0 || simtime_mono_ms() < f->down_until_ms);
    cJSON_AddBoolToObject(o, "down", down);
    int64_t left = down && f->down_until_ms ? f->down_until_ms - simtime_mono_ms() : 0;
    cJSON_AddNumberToObject(o, "down_for_ms", (double)left);
    cJSON_AddBoolToObject(o, "short_pages", f->short_pages);
    cJSON_AddNumberToObject(o, "truncate_at", (double)f->truncate_at);
    cJSON_AddNumberToObject(o, "seed", (double)f->seed);
    cJSON_AddBoolToObject(o, "top_cap_error", f->top_cap_error);
    cJSON_AddBoolToObject(o, "patch_204", f->patch_204);
    cJSON_AddStringToObject(o, "error_style", f->error_odata ? "odata" : "value");
    cJSON_AddStringToObject(o, "nextlink_host", f->nextlink_host);
    cJSON_AddBoolToObject(o, "accept_bearer", f->accept_bearer);
    cJSON_AddNumberToObject(o, "duplicate_status", f->duplicate_status);
    cJSON_AddBoolToObject(o, "finalize_any", f->finalize_any);
    cJSON_AddBoolToObject(o, "content_type_check", f->content_type_check);
    cJSON_AddNumberToObject(o, "fail_after_write_rate", f->fail_after_write_rate);
    if (f->fail_after_write_status == 0)
        cJSON_AddStringToObject(o, "fail_after_write_status", "drop");
    else
        cJSON_AddNumberToObject(o, "fail_after_write_status", f->fail_after_write_status);
    cJSON_AddNumberToObject(o, "bad_token_status", f->bad_token_status);
    cJSON_AddBoolToObject(o, "inlinecount", f->inlinecount);
    cJSON_AddStringToObject(o, "task_required", f->task_required_strict ? "title_contact_datetime" : "title");
    cJSON_AddStringToObject(o, "string_compare", f->string_ci ? "insensitive" : "sensitive");
    cJSON_AddStringToObject(o, "readonly_fields", f->readonly_ignore ? "ignore" : "reject");
    cJSON_AddNumberToObject(o, "create_status", f->create_status);
    cJSON_AddBoolToObject(o, "derive_documents", f->derive_documents);
    static const char *key_get[] = {"envelope", "object", "404"};
    cJSON_AddStringToObject(o, "key_get", key_get[f->key_get]);
    cJSON_AddBoolToObject(o, "large_ids", f->large_ids);
    cJSON_AddStringToObject(o, "document_match", f->document_normalized ? "normalized" : "exact");
    cJSON_AddStringToObject(o, "busca_paging", f->busca_paging ? "on" : "off");
    cJSON_AddBoolToObject(o, "uppercase_documents", f->uppercase_documents);
    cJSON_AddStringToObject(o, "ticket_client_id", f->ticket_client_id_any ? "token_or_id" : "token");
    cJSON_AddNumberToObject(o, "listagem_default_status", f->listagem_default_status);
    static const char *keepalive[] = {"off", "before", "after"};
    cJSON_AddStringToObject(o, "keepalive_drop", keepalive[f->keepalive_drop]);
    cJSON_AddNumberToObject(o, "keepalive_drop_times", (double)f->keepalive_drop_times);
    cJSON_AddStringToObject(o, "keepalive_drop_path", f->keepalive_drop_path);
    cJSON_AddStringToObject(o, "keepalive_drop_method", f->keepalive_drop_method);
    return o;
}

static int want_num(const cJSON *it, const char *key, double lo, double hi, double *out, char *err,
                    size_t errlen)
{
    if (!cJSON_IsNumber(it) || !(it->valuedouble >= lo && it->valuedouble <= hi)) {
        snprintf(err, errlen, "faults: '%s' must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = it->valuedouble;
    return 0;
}

static int want_bool(const cJSON *it, const char *key, bool *out, char *err, size_t errlen)
{
    if (!cJSON_IsBool(it)) {
        snprintf(err, errlen, "faults: '%s' must be true or false", key);
        return -1;
    }
    *out = cJSON_IsTrue(it);
    return 0;
}

/* A string toggle: index of it->valuestring in choices (NULL-terminated), else -1 with err. */
static int want_choice(const cJSON *it, const char *key, const char *const *choices, char *err,
                       size_t errlen)
{
    for (int i = 0; cJSON_IsString(it) && choices[i]; i++)
        if (strcmp(it->valuestring, choices[i]) == 0)
            return i;
    simbuf b = {0};
    for (int i = 0; choices[i]; i++)
        simbuf_printf(&b, "%s\"%s\"", i ? " or " : "", choices[i]);
    snprintf(err, errlen, "faults: '%s' must be %s", key, b.data ? b.data : "?");
    simbuf_free(&b);
    return -1;
}

/* Validates every key first into a copy, so a bad body changes nothing. */
static int faults_apply(simsrv *srv, const cJSON *body, char *err, size_t errlen)
{
    if (!cJSON_IsObject(body)) {
        snprintf(err, errlen, "faults: body must be a JSON object");
        return -1;
    }
    simsrv_faults f = srv->faults;
    bool reseed = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, body)
    {
        const char *k = it->string;
        double d = 0;
        if (strcmp(k, "latency_ms") == 0) {
            if (want_num(it, k, 0, 600000, &d, err, errlen) < 0)
                return -1;
            f.latency_ms = (int64_t)d;
        } else if (strcmp(k, "error_rate") == 0) {
            if (want_num(it, k, 0, 1, &d, err, errlen) < 0)
                return -1;
            f.error_rate = d;
        } else if (strcmp(k, "error_status") == 0) {
            if (want_num(it, k, 100, 599, &d, err, errlen) < 0)
                return -1;
            f.error_status = (int)d;
        } else if (strcmp(k, "error_burst") == 0) {
            if (want_num(it, k, 0, 1000000, &d, err, errlen) < 0)
                return -1;
            f.error_burst = (int64_t)d;
        } else if (strcmp(k, "rate_limit_per_min") == 0) {
            if (want_num(it, k, 0, 100000000, &d, err, errlen) < 0)
                return -1;
            f.rate_limit_per_min = (int64_t)d;
        } else if (strcmp(k, "min_interval_ms") == 0) {
            if (want_num(it, k, 0, 3600000, &d, err, errlen) < 0)
                return -1;
            f.min_interval_ms = (int64_t)d;
        } else if (strcmp(k, "retry_after") == 0) {
            if (want_bool(it, k, &f.retry_after, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "down") == 0) {
            if (want_bool(it, k, &f.down, err, errlen) < 0)
                return -1;
            if (!f.down)
                f.down_until_ms = 0;
        } else if (strcmp(k, "down_for_ms") == 0) {
            if (want_num(it, k, 0, 86400000, &d, err, errlen) < 0)
                return -1;
            if (d > 0) {
                f.down = true;
                f.down_until_ms = simtime_mono_ms() + (int64_t)d;
            } else {
                f.down_until_ms = 0;
            }
        } else if (strcmp(k, "short_pages") == 0) {
            if (want_bool(it, k, &f.short_pages, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "truncate_at") == 0) {
            if (want_num(it, k, 0, 1e9, &d, err, errlen) < 0)
                return -1;
            f.truncate_at = (int64_t)d;
        } else if (strcmp(k, "seed") == 0) {
            if (want_num(it, k, 0, 9007199254740992.0, &d, err, errlen) < 0)
                return -1;
            f.seed = (uint64_t)d;
            reseed = true;
        } else if (strcmp(k, "top_cap_error") == 0) {
            if (want_bool(it, k, &f.top_cap_error, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "patch_204") == 0) {
            if (want_bool(it, k, &f.patch_204, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "error_style") == 0) {
            if (!cJSON_IsString(it) ||
                (strcmp(it->valuestring, "value") != 0 && strcmp(it->valuestring, "odata") != 0)) {
                snprintf(err, errlen, "faults: 'error_style' must be \"value\" or \"odata\"");
                return -1;
            }
            f.error_odata = strcmp(it->valuestring, "odata") == 0;
        } else if (strcmp(k, "nextlink_host") == 0) {
            if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof f.nextlink_host) {
                snprintf(err, errlen, "faults: 'nextlink_host' must be a short string");
                return -1;
            }
            snprintf(f.nextlink_host, sizeof f.nextlink_host, "%s", it->valuestring);
        } else if (strcmp(k, "accept_bearer") == 0) {
            if (want_bool(it, k, &f.accept_bearer, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "duplicate_status") == 0) {
            if (want_num(it, k, 200, 499, &d, err, errlen) < 0)
                return -1;
            if (d != 200 && d < 400) {
                snprintf(err, errlen, "faults: 'duplicate_status' must be 200 (silently accepted) or 4xx");
                return -1;
            }
            f.duplicate_status = (int)d;
        } else if (strcmp(k, "content_type_check") == 0) {
            if (want_bool(it, k, &f.content_type_check, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "fail_after_write_rate") == 0) {
            if (want_num(it, k, 0, 1, &d, err, errlen) < 0)
                return -1;
            f.fail_after_write_rate = d;
        } else if (strcmp(k, "fail_after_write_status") == 0) {
            if (cJSON_IsString(it) && strcmp(it->valuestring, "drop") == 0) {
                f.fail_after_write_status = 0;
            } else if (cJSON_IsNumber(it) && (it->valuedouble == 500 || it->valuedouble == 502 ||
                                              it->valuedouble == 504)) {
                f.fail_after_write_status = (int)it->valuedouble;
            } else {
                snprintf(err, errlen, "faults: 'fail_after_write_status' must be 500, 502, 504 or \"drop\"");
                return -1;
            }
        } else if (strcmp(k, "bad_token_status") == 0) {
            if (!cJSON_IsNumber(it) || (it->valuedouble != 401 && it->valuedouble != 403)) {
                snprintf(err, errlen, "faults: 'bad_token_status' must be 401 or 403");
                return -1;
            }
            f.bad_token_status = (int)it->valuedouble;
        } else if (strcmp(k, "inlinecount") == 0) {
            if (want_bool(it, k, &f.inlinecount, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "task_required") == 0) {
            static const char *const c[] = {"title", "title_contact_datetime", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.task_required_strict = i == 1;
        } else if (strcmp(k, "string_compare") == 0) {
            static const char *const c[] = {"sensitive", "insensitive", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.string_ci = i == 1;
        } else if (strcmp(k, "readonly_fields") == 0) {
            static const char *const c[] = {"reject", "ignore", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.readonly_ignore = i == 1;
        } else if (strcmp(k, "create_status") == 0) {
            if (!cJSON_IsNumber(it) || (it->valuedouble != 200 && it->valuedouble != 201)) {
                snprintf(err, errlen, "faults: 'create_status' must be 200 or 201");
                return -1;
            }
            f.create_status = (int)it->valuedouble;
        } else if (strcmp(k, "derive_documents") == 0) {
            if (want_bool(it, k, &f.derive_documents, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "key_get") == 0) {
            static const char *const c[] = {"envelope", "object", "404", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.key_get = i;
        } else if (strcmp(k, "large_ids") == 0) {
            if (want_bool(it, k, &f.large_ids, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "document_match") == 0) {
            static const char *const c[] = {"exact", "normalized", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.document_normalized = i == 1;
        } else if (strcmp(k, "busca_paging") == 0) {
            static const char *const c[] = {"off", "on", NULL};
            if (cJSON_IsBool(it)) {
                f.busca_paging = cJSON_IsTrue(it);
            } else {
                int i = want_choice(it, k, c, err, errlen);
                if (i < 0)
                    return -1;
                f.busca_paging = i == 1;
            }
        } else if (strcmp(k, "uppercase_documents") == 0) {
            if (want_bool(it, k, &f.uppercase_documents, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "ticket_client_id") == 0) {
            static const char *const c[] = {"token", "token_or_id", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.ticket_client_id_any = i == 1;
        } else if (strcmp(k, "listagem_default_status") == 0) {
            if (want_num(it, k, 1, 23, &d, err, errlen) < 0)
                return -1;
            f.listagem_default_status = (int)d;
        } else if (strcmp(k, "finalize_any") == 0) {
            if (want_bool(it, k, &f.finalize_any, err, errlen) < 0)
                return -1;
        } else if (strcmp(k, "keepalive_drop") == 0) {
            static const char *const c[] = {"off", "before", "after", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            f.keepalive_drop = i; /* SIMSRV_KEEPALIVE_OFF, _BEFORE, _AFTER */
        } else if (strcmp(k, "keepalive_drop_times") == 0) {
            if (want_num(it, k, -1, 1000000, &d, err, errlen) < 0)
                return -1;
            if (d != (double)(int64_t)d) {
                snprintf(err, errlen, "faults: 'keepalive_drop_times' must be an integer");
                return -1;
            }
            f.keepalive_drop_times = (int64_t)d;
        } else if (strcmp(k, "keepalive_drop_path") == 0) {
            if (!cJSON_IsString(it) || strlen(it->valuestring) >= sizeof f.keepalive_drop_path ||
                (it->valuestring[0] != '\0' && it->valuestring[0] != '/')) {
                snprintf(err, errlen, "faults: 'keepalive_drop_path' must be \"\" or a path "
                                      "starting with '/' (under %zu bytes)",
                         sizeof f.keepalive_drop_path);
                return -1;
            }
            snprintf(f.keepalive_drop_path, sizeof f.keepalive_drop_path, "%s", it->valuestring);
        } else if (strcmp(k, "keepalive_drop_method") == 0) {
            static const char *const c[] = {"", "GET", "POST", "PUT", "PATCH", "DELETE", NULL};
            int i = want_choice(it, k, c, err, errlen);
            if (i < 0)
                return -1;
            snprintf(f.keepalive_drop_method, sizeof f.keepalive_drop_method, "%s", c[i]);
        } else {
            snprintf(err, errlen, "faults: unknown key '%.60s'", k);
            return -1;
        }
    }
    srv->faults = f;
    if (reseed)
        srv->rng = f.seed;
    return 0;
}

static bool is_down(simsrv *srv)
{
    if (!srv->faults.down)
        return false;
    if (srv->faults.down_until_ms && simtime_mono_ms() >= srv->faults.down_until_ms) {
        srv->faults.down = false;
        srv->faults.down_until_ms = 0;
        return false;
    }
    return true;
}

/* ---- rate limit -------------------------------------------------------------------------- */

static ratewin *window_for(simsrv *srv, const char *key)
{
    for (size_t i = 0; i < srv->nwindows; i++)
        if (strcmp(srv->windows[i].key, key) == 0)
            return &srv->windows[i];
    if (srv->nwindows >= 1000) /* wrong keys never get here (401 first); stay bounded anyway */
        return &srv->windows[0];
    ratewin *w = realloc(srv->windows, (srv->nwindows + 1) * sizeof *w);
    if (!w)
        return NULL;
    srv->windows = w;
    ratewin *nw = &w[srv->nwindows];
    memset(nw, 0, sizeof *nw);
    nw->key = strdup(key);
    if (!nw->key)
        return NULL;
    srv->nwindows++;
    return nw;
}

/* true = allowed (and counted); false = over the limit, *retry_s = seconds until a slot frees. */
static bool rate_allow(simsrv *srv, const char *key, int *retry_s)
{
    int64_t limit = srv->faults.rate_limit_per_min;
    int64_t gap = srv->faults.min_interval_ms;
    if (limit <= 0 && gap <= 0)
        return true;
    ratewin *w = window_for(srv, key);
    if (!w)
        return true;
    int64_t now = simtime_mono_ms();
    if (gap > 0 && w->last_ms && now - w->last_ms < gap) {
        int64_t wait = w->last_ms + gap - now;
        *retry_s = (int)((wait + 999) / 1000);
        return false;
    }
    if (limit > 0) {
        while (w->count && w->ts[w->head] <= now - RATE_WINDOW_MS) {
            w->head = (w->head + 1) % w->cap;
            w->count--;
        }
        if ((int64_t)w->count >= limit) {
            int64_t wait = w->ts[w->head] + RATE_WINDOW_MS - now;
            *retry_s = (int)((wait + 999) / 1000);
            if (*retry_s < 1)
                *retry_s = 1;
            return false;
        }
        if (w->count == w->cap) {
            size_t ncap = w->cap ? w->cap * 2 : 16;
            int64_t *ts = malloc(ncap * sizeof *ts);
            if (!ts)
                return true;
            for (size_t i = 0; i < w->count; i++)
                ts[i] = w->ts[(w->head + i) % w->cap];
            free(w->ts);
            w->ts = ts;
            w->cap = ncap;
            w->head = 0;
        }
        w->ts[(w->head + w->count) % w->cap] = now;
        w->count++;
    }
    w->last_ms = now ? now : 1;
    return true;
}

static void windows_clear(simsrv *srv)
{
    for (size_t i = 0; i < srv->nwindows; i++) {
        free(srv->windows[i].key);
        free(srv->windows[i].ts);
    }
    free(srv->windows);
    srv->windows = NULL;
    srv->nwindows = 0;
}

/* ---- stats ------------------------------------------------------------------------------ */

static void stats_record(simsrv *srv, const char *method, const char *path, int status)
{
    char norm[128];
    size_t o = 0;
    for (const char *p = path; *p && o + 5 < sizeof norm; p++) {
        if (*p == '(' && p[1] >= '0' && p[1] <= '9') {
            const char *q = p + 1;
            while (*q >= '0' && *q <= '9')
                q++;
            if (*q == ')') {
                memcpy(norm + o, "(id)", 4);
                o += 4;
                p = q;
                continue;
            }
        }
        unsigned char c = (unsigned char)*p;
        norm[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    norm[o] = '\0';
    srv->total_requests++;
    for (size_t i = 0; i < srv->nstats; i++) {
        stat_entry *s = &srv->stats[i];
        if (s->status == status && strcmp(s->method, method) == 0 && strcmp(s->path, norm) == 0) {
            s->count++;
            return;
        }
    }
    if (srv->nstats >= MAX_STATS)
        snprintf(norm, sizeof norm, "(other)");
    for (size_t i = 0; i < srv->nstats; i++) {
        stat_entry *s = &srv->stats[i];
        if (s->status == status && strcmp(s->method, method) == 0 && strcmp(s->path, norm) == 0) {
            s->count++;
            return;
        }
    }
    stat_entry *ns = realloc(srv->stats, (srv->nstats + 1) * sizeof *ns);
    if (!ns)
        return;
    srv->stats = ns;
    stat_entry *s = &ns[srv->nstats++];
    snprintf(s->method, sizeof s->method, "%s", method);
    snprintf(s->path, sizeof s->path, "%s", norm);
    s->status = status;
    s->count = 1;
}

static cJSON *stats_json(const simsrv *srv)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "requests");
    cJSON_AddNumberToObject(o, "total", (double)srv->total_requests);
    for (size_t i = 0; arr && i < srv->nstats; i++) {
        cJSON *e = cJSON_CreateObject();
        if (!e)
            break;
        cJSON_AddStringToObject(e, "method", srv->stats[i].method);
        cJSON_AddStringToObject(e, "path", srv->stats[i].path);
        cJSON_AddNumberToObject(e, "status", srv->stats[i].status);
        cJSON_AddNumberToObject(e, "count", (double)srv->stats[i].count);
        cJSON_AddItemToArray(arr, e);
    }
    return o;
}

/* ---- request journal (GET /_admin/requests) --------------------------------------------- */

/* Where a request stands in the journal: its seq in the journal generation it arrived in. */
typedef struct journal_ticket {
    int64_t seq; /* 0 = not journaled (out of memory) */
    uint64_t gen;
} journal_ticket;

/* Journals `req` as it arrives (lock held): it takes the next seq, so the journal is in
 * arrival order, and shows as in progress (done false, status 0) until journal_end. */
static journal_ticket journal_begin(simsrv *srv, const simsrv_req *req)
{
    journal_ticket t = {0, srv->jgen};
    if (!srv->journal) {
        srv->journal = calloc(SIMSRV_JOURNAL_MAX, sizeof *srv->journal);
        if (!srv->journal)
            return t;
    }
    journal_entry *e;
    if (srv->jcount < SIMSRV_JOURNAL_MAX) {
        e = &srv->journal[(srv->jhead + srv->jcount) % SIMSRV_JOURNAL_MAX];
        srv->jcount++;
    } else { /* full: the oldest makes room */
        e = &srv->journal[srv->jhead];
        srv->jhead = (srv->jhead + 1) % SIMSRV_JOURNAL_MAX;
    }
    e->seq = ++srv->jseq;
    snprintf(e->method, sizeof e->method, "%s", req->method);
    size_t o = 0;
    for (const char *p = req->path; *p && o + 1 < sizeof e->path; p++) {
        unsigned char c = (unsigned char)*p;
        e->path[o++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    e->path[o] = '\0';
    e->status = 0;
    e->conn_request = req->conn_request;
    e->drop = "";
    e->done = false;
    t.seq = e->seq;
    return t;
}

/* Records how the request of ticket `t` ended (lock held). Nothing when its entry is gone (a
 * reset since it arrived, or SIMSRV_JOURNAL_MAX newer arrivals pushed it out). The ring holds
 * consecutive seqs, so the entry's place follows from the oldest one's seq. */
static void journal_end(simsrv *srv, journal_ticket t, int status, const char *drop)
{
    if (t.seq == 0 || t.gen != srv->jgen || !srv->journal || srv->jcount == 0)
        return;
    int64_t first = srv->journal[srv->jhead].seq;
    if (t.seq < first || t.seq > srv->jseq)
        return;
    journal_entry *e = &srv->journal[(srv->jhead + (size_t)(t.seq - first)) % SIMSRV_JOURNAL_MAX];
    e->status = status;
    e->drop = drop;
    e->done = true;
}

static void journal_clear(simsrv *srv)
{
    free(srv->journal);
    srv->journal = NULL;
    srv->jhead = srv->jcount = 0;
    srv->jseq = 0;
    srv->jgen++;
}

static cJSON *journal_json(const simsrv *srv)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "total", (double)srv->jseq);
    cJSON *arr = cJSON_AddArrayToObject(o, "requests");
    for (size_t i = 0; arr && i < srv->jcount; i++) {
        const journal_entry *e = &srv->journal[(srv->jhead + i) % SIMSRV_JOURNAL_MAX];
        cJSON *j = cJSON_CreateObject();
        if (!j)
            break;
        cJSON_AddNumberToObject(j, "seq", (double)e->seq);
        cJSON_AddStringToObject(j, "method", e->method);
        cJSON_AddStringToObject(j, "path", e->path);
        cJSON_AddNumberToObject(j, "status", e->status);
        cJSON_AddNumberToObject(j, "conn_request", (double)e->conn_request);
        cJSON_AddStringToObject(j, "drop", e->drop);
        cJSON_AddBoolToObject(j, "done", e->done);
        cJSON_AddItemToArray(arr, j);
    }
    return o;
}

/* ---- request parsing --------------------------------------------------------------------- */

static void params_free(simsrv_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(params[i].key);
        free(params[i].value);
    }
    free(params);
}

static int params_parse(const char *q, simsrv_param **out, size_t *nout)
{
    simsrv_param *params = NULL;
    size_t n = 0;
    const char *p = q;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            simsrv_param *np = realloc(params, (n + 1) * sizeof *np);
            if (!np)
                goto fail;
            params = np;
            params[n].key = simjson_urldecode(p, klen, true);
            params[n].value = eq ? simjson_urldecode(eq + 1, len - klen - 1, true) : strdup("");
            n++;
            if (!params[n - 1].key || !params[n - 1].value)
                goto fail;
            if (n > 1000)
                goto fail;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    *out = params;
    *nout = n;
    return 0;
fail:
    params_free(params, n);
    return -1;
}

/* ---- admin ------------------------------------------------------------------------------ */

static void admin_error(simsrv_resp *resp, int status, const char *msg)
{
    simsrv_resp_message(resp, status, "error", msg);
}

static void handle_admin(simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    const char *what = req->path + strlen("/_admin");
    bool post = strcmp(req->method, "POST") == 0;
    bool get = strcmp(req->method, "GET") == 0;
    char err[512] = "";
    if (strcmp(what, "/seed") == 0) {
        if (!post) {
            admin_error(resp, 405, "use POST /_admin/seed");
            return;
        }
        cJSON *body = simjson_parse(req->body, req->body_len);
        if (!body) {
            admin_error(resp, 400, "seed: body is not valid JSON (or nested too deeply)");
            return;
        }
        if (!cJSON_IsObject(body)) {
            cJSON_Delete(body);
            admin_error(resp, 400, "seed: body must be a JSON object");
            return;
        }
        int rc = srv->app.seed(srv->app.ctx, srv, body, err, sizeof err);
        cJSON_Delete(body);
        if (rc < 0) {
            admin_error(resp, 400, err);
            return;
        }
        cJSON *ok = cJSON_CreateObject();
        cJSON_AddBoolToObject(ok, "ok", true);
        simsrv_resp_json(resp, 200, ok);
        return;
    }
    if (strcmp(what, "/state") == 0) {
        if (!get) {
            admin_error(resp, 405, "use GET /_admin/state");
            return;
        }
        simsrv_resp_json(resp, 200, srv->app.state(srv->app.ctx));
        return;
    }
    if (strcmp(what, "/faults") == 0) {
        if (post) {
            cJSON *body = simjson_parse(req->body, req->body_len);
            if (!body) {
                admin_error(resp, 400, "faults: body is not valid JSON");
                return;
            }
            int rc = faults_apply(srv, body, err, sizeof err);
            cJSON_Delete(body);
            if (rc < 0) {
                admin_error(resp, 400, err);
                return;
            }
        } else if (!get) {
            admin_error(resp, 405, "use GET or POST /_admin/faults");
            return;
        }
        simsrv_resp_json(resp, 200, faults_json(srv));
        return;
    }
    if (strcmp(what, "/stats") == 0) {
        if (!get) {
            admin_error(resp, 405, "use GET /_admin/stats");
            return;
        }
        simsrv_resp_json(resp, 200, stats_json(srv));
        return;
    }
    if (strcmp(what, "/requests") == 0) {
        if (!get) {
            admin_error(resp, 405, "use GET /_admin/requests");
            return;
        }
        simsrv_resp_json(resp, 200, journal_json(srv));
        return;
    }
    if (strcmp(what, "/reset") == 0) {
        if (!post) {
            admin_error(resp, 405, "use POST /_admin/reset");
            return;
        }
        srv->app.reset(srv->app.ctx);
        faults_default(srv);
        windows_clear(srv);
        free(srv->stats);
        srv->stats = NULL;
        srv->nstats = 0;
        srv->total_requests = 0;
        journal_clear(srv);
        cJSON *ok = cJSON_CreateObject();
        cJSON_AddBoolToObject(ok, "ok", true);
        simsrv_resp_json(resp, 200, ok);
        return;
    }
    admin_error(resp, 404, "unknown admin endpoint (seed, state, faults, stats, requests, reset)");
}

/* ---- API pipeline ------------------------------------------------------------------------ */

static void sleep_ms_interruptible(simsrv *srv, int64_t ms)
{
    int64_t deadline = simtime_mono_ms() + ms;
    while (!srv->stopping) {
        int64_t left = deadline - simtime_mono_ms();
        if (left <= 0)
            break;
        if (left > 50)
            left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 when invalid (overlong forms,
 * surrogates, past U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* A JSON request body must be valid UTF-8 and hold no NUL character, raw or escaped as
 * \u0000 (cJSON would cut the string there and store "a" for "a\u0000b"). */
static bool body_text_ok(const char *body, size_t len, const char **why)
{
    const unsigned char *p = (const unsigned char *)body;
    bool in_str = false;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c == 0) {
            *why = "The request body contains a NUL byte.";
            return false;
        }
        if (c >= 0x80) {
            size_t l = utf8_len(p + i, len - i);
            if (!l) {
                *why = "The request body is not valid UTF-8.";
                return false;
            }
            i += l;
            continue;
        }
        if (in_str && c == '\\' && i + 1 < len) {
            if (p[i + 1] == 'u' && i + 5 < len && memcmp(p + i + 2, "0000", 4) == 0) {
                *why = "Strings must not contain the NUL character (\\u0000).";
                return false;
            }
            i += 2;
            continue;
        }
        if (c == '"')
            in_str = !in_str;
        i++;
    }
    return true;
}

/* "application/json" with at most a charset=utf-8 parameter (case-insensitive). */
static bool is_json_content_type(const char *ct)
{
    if (!ct)
        return false;
    while (is_ows(*ct))
        ct++;
    static const char mt[] = "application/json";
    if (strncasecmp(ct, mt, sizeof mt - 1) != 0)
        return false;
    const char *p = ct + sizeof mt - 1;
    while (is_ows(*p))
        p++;
    if (*p == '\0')
        return true;
    if (*p != ';')
        return false;
    p++;
    while (is_ows(*p))
        p++;
    if (strncasecmp(p, "charset=", 8) != 0)
        return false;
    p += 8;
    bool quoted = *p == '"';
    if (quoted)
        p++;
    if (strncasecmp(p, "utf-8", 5) != 0 && strncasecmp(p, "utf8", 4) != 0)
        return false;
    p += strncasecmp(p, "utf-8", 5) == 0 ? 5 : 4;
    if (quoted && *p++ != '"')
        return false;
    while (is_ows(*p))
        p++;
    return *p == '\0';
}

bool simsrv_after_write(simsrv *srv, simsrv_resp *resp)
{
    if (srv->faults.fail_after_write_rate <= 0)
        return false;
    double draw = (double)(simsrv_rand(srv) >> 11) / 9007199254740992.0;
    if (draw >= srv->faults.fail_after_write_rate)
        return false;
    int st = srv->faults.fail_after_write_status;
    if (st == 0) {
        free(resp->body);
        resp->body = NULL;
        resp->drop = true;
        resp->status = 0;
        return true;
    }
    srv->app.error(srv->app.ctx, srv, resp, st,
                   "Simulated failure after the write was stored (fail_after_write fault)");
    return true;
}

/* True, and one drop taken, when keepalive_drop is `when` and `req` qualifies: it came on a
 * reused connection, its path and method match and drops are left (lock held). */
static bool keepalive_drop_take(simsrv *srv, const simsrv_req *req, int when)
{
    simsrv_faults *f = &srv->faults;
    if (f->keepalive_drop != when || req->conn_request <= 1 || f->keepalive_drop_times == 0)
        return false;
    if (f->keepalive_drop_path[0] && strcmp(f->keepalive_drop_path, req->path) != 0)
        return false;
    if (f->keepalive_drop_method[0] && strcmp(f->keepalive_drop_method, req->method) != 0)
        return false;
    if (f->keepalive_drop_times > 0)
        f->keepalive_drop_times--;
    return true;
}

/* The answer becomes a close of the connection (send_resp returns MHD_NO). */
static void drop_answer(simsrv_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->drop = true;
    resp->status = 0;
}

static void handle_api(simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    const char *drop = "";
    pthread_mutex_lock(&srv->lock);
    journal_ticket ticket = journal_begin(srv, req); /* its place: arrival order */
    if (keepalive_drop_take(srv, req, SIMSRV_KEEPALIVE_BEFORE)) {
        /* the server had closed the idle connection: the request is never processed */
        drop_answer(resp);
        stats_record(srv, req->method, req->path, resp->status);
        journal_end(srv, ticket, resp->status, "keepalive_before");
        pthread_mutex_unlock(&srv->lock);
        return;
    }
    int64_t latency = srv->faults.latency_ms;
    pthread_mutex_unlock(&srv->lock);
    if (latency > 0)
        sleep_ms_interruptible(srv, latency);

    pthread_mutex_lock(&srv->lock);
    if (is_down(srv)) {
        srv->app.error(srv->app.ctx, srv, resp, 503, "Service Unavailable (simulated outage)");
        goto out;
    }
    const char *key = srv->app.auth(srv->app.ctx, srv, req);
    if (!key) {
        srv->app.error(srv->app.ctx, srv, resp, srv->faults.bad_token_status,
                       srv->faults.bad_token_status == 403
                           ? "Forbidden: missing or invalid credentials"
                           : "Unauthorized: missing or invalid credentials");
        goto out;
    }
    int retry_s = 0;
    if (!rate_allow(srv, key, &retry_s)) {
        srv->app.error(srv->app.ctx, srv, resp, 429, "Too Many Requests: rate limit exceeded");
        resp->retry_after = srv->faults.retry_after ? retry_s : -1;
        goto out;
    }
    if (srv->faults.error_burst > 0) {
        srv->faults.error_burst--;
        srv->app.error(srv->app.ctx, srv, resp, srv->faults.error_status,
                       srv->faults.error_status == 403 ? "Forbidden (simulated burst)"
                                                       : "Simulated failure (error_burst fault)");
        goto out;
    }
    if (srv->faults.error_rate > 0) {
        double draw = (double)(simsrv_rand(srv) >> 11) / 9007199254740992.0;
        if (draw < srv->faults.error_rate) {
            srv->app.error(srv->app.ctx, srv, resp, srv->faults.error_status,
                           "Simulated failure (error_rate fault)");
            goto out;
        }
    }
    if (req->body_len > 0) {
        const char *why = NULL;
        if (srv->faults.content_type_check &&
            !is_json_content_type(simsrv_header(req, MHD_HTTP_HEADER_CONTENT_TYPE))) {
            srv->app.error(srv->app.ctx, srv, resp, 415,
                           "Unsupported Media Type: the body must be sent as Content-Type: "
                           "application/json");
            goto out;
        }
        if (!body_text_ok(req->body, req->body_len, &why)) {
            srv->app.error(srv->app.ctx, srv, resp, 400, why);
            goto out;
        }
    }
    srv->app.handle(srv->app.ctx, srv, req, resp);
out:
    if (resp->drop) {
        drop = "fail_after_write";
    } else if (keepalive_drop_take(srv, req, SIMSRV_KEEPALIVE_AFTER)) {
        drop_answer(resp); /* processed (a create is stored), then the connection closed */
        drop = "keepalive_after";
    }
    stats_record(srv, req->method, req->path, resp->status);
    journal_end(srv, ticket, resp->status, drop);
    pthread_mutex_unlock(&srv->lock);
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, simsrv_resp *resp)
{
    if (resp->drop) { /* MHD_NO closes the connection without an answer */
        free(resp->body);
        resp->body = NULL;
        return MHD_NO;
    }
    struct MHD_Response *r;
    if (resp->body) {
        r = MHD_create_response_from_buffer(strlen(resp->body), resp->body, MHD_RESPMEM_MUST_FREE);
        if (r)
            resp->body = NULL;
    } else {
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    }
    free(resp->body);
    resp->body = NULL;
    if (!r)
        return MHD_NO;
    if (resp->content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    if (resp->retry_after >= 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%d", resp->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)resp->status, r);
    MHD_destroy_response(r);
    return ret;
}

static bool is_admin_path(const char *path)
{
    return strncmp(path, "/_admin/", 8) == 0 || strcmp(path, "/_admin") == 0;
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    conn_state *cs = calloc(1, sizeof *cs);
    if (cs)
        cs->uri = strdup(uri ? uri : "/");
    return cs;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    conn_state *cs = *con_cls;
    if (!cs)
        return;
    free(cs->uri);
    simbuf_free(&cs->body);
    free(cs);
    *con_cls = NULL;
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    (void)version;
    simsrv *srv = cls;
    conn_state *cs = *con_cls;
    if (!cs) {
        cs = uri_logger(NULL, url, conn);
        if (!cs)
            return MHD_NO;
        *con_cls = cs;
    }
    if (!cs->uri)
        return MHD_NO;
    if (!cs->started) {
        cs->started = true;
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        conn_sock *sock = ci ? ci->socket_context : NULL;
        cs->conn_request = sock ? ++sock->requests : 0; /* 0: unknown, never "reused" */
        cs->cap = strncmp(cs->uri, "/_admin/seed", 12) == 0 ? SIMSRV_MAX_SEED : SIMSRV_MAX_BODY;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(cl, &end, 10);
            if (errno || end == cl || v > cs->cap)
                cs->too_large = true;
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!cs->too_large) {
            if (cs->body.len + *upload_data_size > cs->cap) {
                cs->too_large = true;
                simbuf_free(&cs->body);
            } else {
                simbuf_append(&cs->body, upload_data, *upload_data_size);
                if (cs->body.failed) {
                    cs->too_large = true;
                    simbuf_free(&cs->body);
                }
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    simsrv_resp resp = {.status = 500, .retry_after = -1};
    if (cs->too_large) {
        if (strncmp(cs->uri, "/_admin", 7) == 0) {
            simsrv_resp_message(&resp, 413, "error", "Request body too large");
        } else {
            pthread_mutex_lock(&srv->lock);
            srv->app.error(srv->app.ctx, srv, &resp, 413, "Request body too large");
            pthread_mutex_unlock(&srv->lock);
        }
        return send_resp(conn, &resp);
    }
    const char *q = strchr(cs->uri, '?');
    size_t plen = q ? (size_t)(q - cs->uri) : strlen(cs->uri);
    char *path = simjson_urldecode(cs->uri, plen, false);
    simsrv_param *params = NULL;
    size_t nparams = 0;
    if (!path || params_parse(q ? q + 1 : "", &params, &nparams) < 0) {
        free(path);
        simsrv_resp_message(&resp, 400, "message", "Bad request: malformed or oversized query string");
        return send_resp(conn, &resp);
    }
    simsrv_req req = {
        .method = method,
        .path = path,
        .raw_query = q ? q + 1 : "",
        .params = params,
        .nparams = nparams,
        .body = cs->body.data ? cs->body.data : "",
        .body_len = cs->body.len,
        .conn = conn,
        .conn_request = cs->conn_request,
    };
    if (is_admin_path(path)) {
        pthread_mutex_lock(&srv->lock);
        handle_admin(srv, &req, &resp);
        pthread_mutex_unlock(&srv->lock);
    } else {
        handle_api(srv, &req, &resp);
    }
    free(path);
    params_free(params, nparams);
    return send_resp(conn, &resp);
}

/* Gives each TCP connection its request counter (conn_request, keepalive_drop). */
static void notify_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = calloc(1, sizeof(conn_sock)); /* NULL: requests count as first ones */
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_context);
        *socket_context = NULL;
    }
}

/* ---- lifecycle -------------------------------------------------------------------------- */

void simsrv_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int simsrv_wait_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    return sig;
}

simsrv *simsrv_start(const simsrv_app *app, int port, char *err, size_t errlen)
{
    return simsrv_start_at(app, "127.0.0.1", port, err, errlen);
}

simsrv *simsrv_start_at(const simsrv_app *app, const char *bind_addr, int port, char *err,
                        size_t errlen)
{
    struct in_addr ip;
    if (inet_pton(AF_INET, bind_addr, &ip) != 1) {
        snprintf(err, errlen, "--bind %s is not a numeric IPv4 address", bind_addr);
        return NULL;
    }
    simsrv *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->app = *app;
    srv->listen_fd = -1;
    pthread_mutex_init(&srv->lock, NULL);
    faults_default(srv);

    /* room for SIMSRV_MAX_CONNECTIONS descriptors: raise the soft limit as far as allowed */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < SIMSRV_MAX_CONNECTIONS + 64) {
        rlim_t want = SIMSRV_MAX_CONNECTIONS + 64;
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            fprintf(stderr, "%s: cannot raise the open-file limit: %s\n", app->name, strerror(errno));
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        goto fail;
    }
    srv->listen_fd = fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr = ip;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        snprintf(err, errlen, "cannot bind %s:%d: %s", bind_addr, port, strerror(errno));
        goto fail;
    }
    if (listen(fd, 128) < 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        goto fail;
    }
    socklen_t alen = sizeof addr;
    if (getsockname(fd, (struct sockaddr *)&addr, &alen) < 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto fail;
    }
    srv->port = ntohs(addr.sin_port);
    srv->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0, NULL,
        NULL, access_handler, srv, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, notify_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)SIMSRV_IDLE_TIMEOUT_S,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)SIMSRV_MAX_CONNECTIONS,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)(2u * 1024u * 1024u),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_END);
    if (!srv->daemon) {
        snprintf(err, errlen, "cannot start the HTTP server (libmicrohttpd)");
        goto fail;
    }
    return srv;
fail:
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
    return NULL;
}

int simsrv_port(const simsrv *srv)
{
    return srv->port;
}

void simsrv_stop(simsrv *srv)
{
    if (!srv)
        return;
    srv->stopping = 1;
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon); /* also closes the listen socket it was given */
    windows_clear(srv);
    free(srv->stats);
    journal_clear(srv);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}

int simsrv_load_state_file(simsrv *srv, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "--state %s: %s", path, strerror(errno));
        return -1;
    }
    simbuf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        simbuf_append(&b, chunk, n);
        if (b.failed || b.len > SIMSRV_MAX_SEED)
            break;
    }
    bool read_err = ferror(f) != 0;
    fclose(f);
    if (read_err || b.failed || b.len > SIMSRV_MAX_SEED) {
        simbuf_free(&b);
        snprintf(err, errlen, "--state %s: unreadable or larger than %u bytes", path, SIMSRV_MAX_SEED);
        return -1;
    }
    cJSON *json = simjson_parse(b.data ? b.data : "", b.len);
    simbuf_free(&b);
    if (!cJSON_IsObject(json)) {
        cJSON_Delete(json);
        snprintf(err, errlen, "--state %s: not a JSON object", path);
        return -1;
    }
    char e2[400] = "";
    pthread_mutex_lock(&srv->lock);
    int rc = srv->app.seed(srv->app.ctx, srv, json, e2, sizeof e2);
    pthread_mutex_unlock(&srv->lock);
    cJSON_Delete(json);
    if (rc < 0)
        snprintf(err, errlen, "--state %s: %s", path, e2);
    return rc;
}
