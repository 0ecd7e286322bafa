/* kafka_dlq: dead-letter writer. See kafka_dlq.h. */
#include "kafka_dlq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "errbuf.h"
#include "json.h"
#include "log.h"

#define DLQ_SECRET_MIN_LEN 4

struct kafka_dlq {
    kafka_producer_t *producer;
    char topic[KAFKA_TOPIC_NAME_MAX];
    char *connector;
    char *task_id;
    char **secrets;
    size_t secret_count;
    size_t secret_max_len;
};

typedef struct dlq_ctx {
    kafka_dlq_done_cb cb;
    void *opaque;
} dlq_ctx_t;

const char *kafka_dlq_instance_id(char *buf, size_t size)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(buf, size, "%s-%ld", host, (long)getpid());
    return buf;
}

void kafka_dlq_free(kafka_dlq_t *d)
{
    if (!d)
        return;
    free(d->connector);
    free(d->task_id);
    for (size_t i = 0; i < d->secret_count; i++)
        free(d->secrets[i]);
    free(d->secrets);
    free(d);
}

/* Appends one text to scrub (the array has room for every form of every secret). */
static int add_secret(kafka_dlq_t *d, const char *text)
{
    d->secrets[d->secret_count] = strdup(text);
    if (!d->secrets[d->secret_count])
        return -1;
    size_t len = strlen(text);
    if (len > d->secret_max_len)
        d->secret_max_len = len;
    d->secret_count++;
    return 0;
}

kafka_dlq_t *kafka_dlq_new(const kafka_dlq_opts_t *o, char *err, size_t errlen)
{
    if (!o || !o->producer || !o->connector_name || !o->connector_name[0]) {
        errbuf_set(err, errlen, "dead-letter writer: producer and connector name are required");
        return NULL;
    }
    kafka_dlq_t *d = calloc(1, sizeof *d);
    if (!d)
        goto nomem;
    d->producer = o->producer;
    if (kafka_topic_name(d->topic, sizeof d->topic, o->topic_prefix, KAFKA_TOPIC_DLQ) != KAFKA_OK) {
        errbuf_set(err, errlen, "TOPIC_PREFIX is too long for the dead-letter topic name");
        kafka_dlq_free(d);
        return NULL;
    }
    char idbuf[300];
    d->connector = strdup(o->connector_name);
    d->task_id = strdup(o->task_id && o->task_id[0] ? o->task_id
                                                    : kafka_dlq_instance_id(idbuf, sizeof idbuf));
    if (!d->connector || !d->task_id)
        goto nomem;
    if (o->secret_count > 0 && o->secrets) {
        /* each secret as is and in the forms an API may echo it back (log_secret_forms) */
        d->secrets = calloc(o->secret_count * 3, sizeof *d->secrets);
        if (!d->secrets)
            goto nomem;
        for (size_t i = 0; i < o->secret_count; i++) {
            const char *s = o->secrets[i];
            if (!s || strlen(s) < DLQ_SECRET_MIN_LEN)
                continue;
            char pct[1024], b64[1024];
            log_secret_forms(s, pct, sizeof pct, b64, sizeof b64);
            const char *forms[3] = {s, pct, b64};
            for (int f = 0; f < 3; f++)
                if (forms[f][0] && add_secret(d, forms[f]) != 0)
                    goto nomem;
        }
    }
    return d;
nomem:
    errbuf_set(err, errlen, "out of memory creating the dead-letter writer");
    kafka_dlq_free(d);
    return NULL;
}

const char *kafka_dlq_topic(const kafka_dlq_t *d) { return d ? d->topic : NULL; }

/* ---- text helpers ---------------------------------------------------------------------------- */

/* Replaces every registered secret in buf[0..*len) by "***" (in place: "***" is never longer
 * than a secret). */
static void scrub(const kafka_dlq_t *d, char *buf, size_t *len)
{
    for (size_t i = 0; i < d->secret_count; i++) {
        const char *s = d->secrets[i];
        size_t slen = strlen(s);
        size_t from = 0;
        for (;;) {
            char *hit = memmem(buf + from, *len - from, s, slen);
            if (!hit)
                break;
            size_t at = (size_t)(hit - buf);
            memcpy(hit, "***", 3);
            memmove(hit + 3, hit + slen, *len - at - slen);
            *len -= slen - 3;
            from = at + 3;
        }
    }
    buf[*len] = '\0';
}

/* Replaces invalid UTF-8 bytes and NULs by '?' in place (headers are UTF-8 strings). */
static void utf8_sanitize(char *buf, size_t len)
{
    unsigned char *p = (unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        size_t n = p[i] ? json_utf8_seq_len(buf + i, len - i) : 0;
        if (n == 0) {
            p[i] = '?';
            n = 1;
        }
        i += n;
    }
}

/* A scrubbed, UTF-8-clean copy of text[0..len), cut to at most `max` bytes on a character
 * boundary. NULL on allocation failure. */
static char *clean_copy(const kafka_dlq_t *d, const char *text, size_t len, size_t max)
{
    if (!text)
        len = 0;
    /* Scrub a window long enough that a secret starting before `max` is caught whole. */
    size_t window = len;
    if (max != SIZE_MAX && window > max + d->secret_max_len)
        window = max + d->secret_max_len;
    char *buf = malloc(window + 1);
    if (!buf)
        return NULL;
    if (window)
        memcpy(buf, text, window);
    buf[window] = '\0';
    scrub(d, buf, &window);
    utf8_sanitize(buf, window);
    if (window > max) {
        size_t cut = max;
        while (cut > 0 && ((unsigned char)buf[cut] & 0xC0) == 0x80)
            cut--;
        window = cut;
        buf[window] = '\0';
    }
    return buf;
}

/* ---- headers --------------------------------------------------------------------------------- */

static const char *const own_names[] = {
    KAFKA_DLQ_H_TOPIC,       KAFKA_DLQ_H_PARTITION,   KAFKA_DLQ_H_OFFSET,
    KAFKA_DLQ_H_CONNECTOR,   KAFKA_DLQ_H_TASK,        KAFKA_DLQ_H_STAGE,
    KAFKA_DLQ_H_CLASS,       KAFKA_DLQ_H_EXC_CLASS,   KAFKA_DLQ_H_EXC_MESSAGE,
    KAFKA_DLQ_H_ATTEMPTS,    KAFKA_DLQ_H_HTTP_STATUS, KAFKA_DLQ_H_RESPONSE,
    KAFKA_DLQ_H_FIRST_FAILURE, KAFKA_DLQ_H_LAST_FAILURE,
};
#define OWN_COUNT (sizeof own_names / sizeof own_names[0])

static bool is_own_name(const char *name)
{
    for (size_t i = 0; i < OWN_COUNT; i++) {
        if (strcmp(name, own_names[i]) == 0)
            return true;
    }
    return false;
}

void kafka_dlq_headers_free(kafka_header_t *h, size_t count)
{
    if (!h)
        return;
    for (size_t i = 0; i < count; i++) {
        free((char *)h[i].name);
        free((char *)h[i].value);
    }
    free(h);
}

/* Appends a header, taking ownership of `value` (freed on failure). */
static int add_owned(kafka_header_t *h, size_t *n, const char *name, char *value, size_t vlen)
{
    char *nm = strdup(name);
    if (!nm || !value) {
        free(nm);
        free(value);
        return KAFKA_ERR_NOMEM;
    }
    h[*n] = (kafka_header_t){.name = nm, .value = value, .value_len = vlen};
    (*n)++;
    return KAFKA_OK;
}

static int add_text(kafka_header_t *h, size_t *n, const char *name, const char *value)
{
    char *v = strdup(value ? value : "");
    return add_owned(h, n, name, v, v ? strlen(v) : 0);
}

/* A caller-supplied text header: scrubbed, UTF-8-clean, at most `max` bytes, so the error
 * headers stay far inside the DLQ topic's KAFKA_DLQ_EXTRA_BYTES. */
static int add_capped(const kafka_dlq_t *d, kafka_header_t *h, size_t *n, const char *name,
                      const char *value, size_t max)
{
    const char *text = value ? value : "";
    char *v = clean_copy(d, text, strlen(text), max);
    return add_owned(h, n, name, v, v ? strlen(v) : 0);
}

int kafka_dlq_build_headers(const kafka_dlq_t *d, const kafka_record_t *rec,
                            const kafka_dlq_error_t *e, int64_t now_ms, kafka_header_t **out,
                            size_t *count)
{
    if (!d || !rec || !e || !out || !count)
        return KAFKA_ERR_INVALID;
    size_t cap = rec->header_count + OWN_COUNT;
    kafka_header_t *h = calloc(cap, sizeof *h);
    if (!h)
        return KAFKA_ERR_NOMEM;
    size_t n = 0;
    int rc = KAFKA_OK;
    for (size_t i = 0; i < rec->header_count && rc == KAFKA_OK; i++) {
        const kafka_header_t *src = &rec->headers[i];
        if (is_own_name(src->name))
            continue; /* a replayed letter failing again: keep one set of error headers */
        char *v = NULL;
        if (src->value) {
            v = malloc(src->value_len + 1);
            if (!v) {
                rc = KAFKA_ERR_NOMEM;
                break;
            }
            memcpy(v, src->value, src->value_len);
            v[src->value_len] = '\0';
            rc = add_owned(h, &n, src->name, v, src->value_len);
        } else {
            char *nm = strdup(src->name);
            if (!nm)
                rc = KAFKA_ERR_NOMEM;
            else
                h[n++] = (kafka_header_t){.name = nm, .value = NULL, .value_len = 0};
        }
    }
    if (rc != KAFKA_OK)
        goto fail;

    char num[32], t_first[40], t_last[40];
    int64_t last = e->last_failure_ms > 0 ? e->last_failure_ms : now_ms;
    int64_t first = e->first_failure_ms > 0 ? e->first_failure_ms : last;
    clock_rfc3339(first, t_first, sizeof t_first);
    clock_rfc3339(last, t_last, sizeof t_last);

    rc = add_text(h, &n, KAFKA_DLQ_H_TOPIC, rec->topic);
    snprintf(num, sizeof num, "%" PRId32, rec->partition);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_PARTITION, num);
    snprintf(num, sizeof num, "%" PRId64, rec->offset);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_OFFSET, num);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_CONNECTOR, d->connector);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_TASK, d->task_id);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_STAGE, KAFKA_DLQ_STAGE_TASK_PUT);
    if (rc == KAFKA_OK)
        rc = add_capped(d, h, &n, KAFKA_DLQ_H_CLASS,
                        e->class_name && e->class_name[0] ? e->class_name : d->connector,
                        KAFKA_DLQ_CLASS_MAX);
    if (rc == KAFKA_OK)
        rc = add_capped(d, h, &n, KAFKA_DLQ_H_EXC_CLASS, e->exception_class, KAFKA_DLQ_CLASS_MAX);
    if (rc == KAFKA_OK)
        rc = add_capped(d, h, &n, KAFKA_DLQ_H_EXC_MESSAGE, e->exception_message,
                        KAFKA_DLQ_MESSAGE_MAX);
    snprintf(num, sizeof num, "%d", e->attempts > 0 ? e->attempts : 0);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_ATTEMPTS, num);
    snprintf(num, sizeof num, "%d", e->http_status > 0 ? e->http_status : 0);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_HTTP_STATUS, num);
    if (rc == KAFKA_OK) {
        char *v = clean_copy(d, e->response, e->response ? e->response_len : 0,
                             KAFKA_DLQ_RESPONSE_MAX);
        rc = add_owned(h, &n, KAFKA_DLQ_H_RESPONSE, v, v ? strlen(v) : 0);
    }
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_FIRST_FAILURE, t_first);
    if (rc == KAFKA_OK)
        rc = add_text(h, &n, KAFKA_DLQ_H_LAST_FAILURE, t_last);
    if (rc != KAFKA_OK)
        goto fail;
    *out = h;
    *count = n;
    return KAFKA_OK;
fail:
    kafka_dlq_headers_free(h, n);
    return rc;
}

/* ---- send ------------------------------------------------------------------------------------ */

static void dlq_delivered(void *opaque, const kafka_delivery_t *dr)
{
    dlq_ctx_t *ctx = opaque;
    bool ok = dr->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (ok) {
        log_msg(LOG_INFO, "dlq_written", "topic=%s partition=%" PRId32 " offset=%" PRId64,
                dr->topic, dr->partition, dr->offset);
    } else {
        log_msg(LOG_ERROR, "dlq_write_failed", "topic=%s error=%s", dr->topic,
                rd_kafka_err2name(dr->err));
    }
    if (ctx->cb)
        ctx->cb(ctx->opaque, ok, ok ? NULL : rd_kafka_err2str(dr->err));
    free(ctx);
}

int kafka_dlq_send(kafka_dlq_t *d, const kafka_record_t *rec, const kafka_dlq_error_t *e,
                   kafka_dlq_done_cb cb, void *opaque, char *err, size_t errlen)
{
    if (!d || !rec || !e || !e->exception_class || !e->exception_class[0]) {
        errbuf_set(err, errlen, "dead letter: record and exception class are required");
        return KAFKA_ERR_INVALID;
    }
    kafka_header_t *h = NULL;
    size_t n = 0;
    int rc = kafka_dlq_build_headers(d, rec, e, clock_wall_ms(), &h, &n);
    if (rc != KAFKA_OK) {
        errbuf_set(err, errlen,
                   "out of memory building a dead letter for %s [%" PRId32 "] @%" PRId64,
                   rec->topic, rec->partition, rec->offset);
        return rc;
    }
    dlq_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        kafka_dlq_headers_free(h, n);
        errbuf_set(err, errlen, "out of memory building a dead letter");
        return KAFKA_ERR_NOMEM;
    }
    ctx->cb = cb;
    ctx->opaque = opaque;
    rc = kafka_producer_send_raw(d->producer, d->topic, rec->key, rec->key_len, rec->value,
                                 rec->value_len, h, n, rec->timestamp_ms, NULL, dlq_delivered,
                                 ctx, err, errlen);
    kafka_dlq_headers_free(h, n);
    if (rc != KAFKA_OK) {
        free(ctx);
        return rc;
    }
    char q[128];
    log_msg(LOG_INFO, "dlq_enqueued", "source_topic=%s partition=%" PRId32 " offset=%" PRId64
            " exception=%s", rec->topic, rec->partition, rec->offset,
            log_quote(q, sizeof q, e->exception_class));
    return KAFKA_OK;
}
