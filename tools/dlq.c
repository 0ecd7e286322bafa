/* dlq_: reading and replaying the dead-letter topic. See dlq.h. */
#include "dlq.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#define READ_IDLE_MS 500 /* a poll slice while reading */

dlq_filter_t dlq_filter_all(void)
{
    return (dlq_filter_t){.partition = -1, .from_offset = -1, .to_offset = -1};
}

rd_kafka_t *dlq_reader_new(const kafka_settings_t *s, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = kafka_conf_from_settings(s, err, errlen);
    if (!conf)
        return NULL;
    char fetch[32];
    snprintf(fetch, sizeof fetch, "%" PRId64,
             kafka_topic_max_message_bytes(s, KAFKA_TOPIC_DLQ) + 1024 * 1024);
    const char *const props[][2] = {
        {"enable.auto.commit", "false"},   {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},  {"max.partition.fetch.bytes", fetch},
        {"fetch.max.bytes", fetch},        {"client.id", "pipeline-dlq-reader"},
        /* An offset below the low watermark (retention or DeleteRecords between the watermark
         * query and the fetch) is an error, never a silent jump to the end. */
        {"auto.offset.reset", "error"},
        /* librdkafka wants a group id even for assign(); nothing ever joins or commits it. */
        {"group.id", "pipeline-dlq-reader"},
    };
    for (size_t i = 0; i < sizeof props / sizeof props[0]; i++) {
        if (kafka_conf_set(conf, props[i][0], props[i][1], err, errlen) != 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    char rec[32];
    snprintf(rec, sizeof rec, "%" PRId64,
             kafka_topic_max_message_bytes(s, KAFKA_TOPIC_DLQ) + 2 * 1024 * 1024);
    if (kafka_conf_set(conf, "receive.message.max.bytes", rec, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char e[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, e, sizeof e);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        errbuf_set(err, errlen, "cannot create a Kafka consumer: %s", e);
        return NULL;
    }
    return rk; /* conf is owned by rk now */
}

/* Partitions of `topic`: the count, 0 when it does not exist (nothing dead-lettered yet), -1
 * when Kafka did not answer (err says why). */
static int partition_count(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                           size_t errlen)
{
    int n = kafka_partition_count_on(rk, topic, timeout_ms, err, errlen);
    return n == KAFKA_ERR_INVALID ? 0 : n < 0 ? -1 : n;
}

static char *dup_bytes(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return NULL;
    if (n)
        memcpy(c, p, n);
    c[n] = '\0';
    return c;
}

static void letter_free(dlq_letter_t *l)
{
    free(l->key);
    free(l->value);
    for (size_t i = 0; i < l->header_count; i++) {
        free((char *)l->headers[i].name);
        free((char *)l->headers[i].value);
    }
    free(l->headers);
    memset(l, 0, sizeof *l);
}

const char *dlq_header(const dlq_letter_t *l, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < l->header_count; i++) {
        if (strcmp(l->headers[i].name, name) == 0)
            v = l->headers[i].value;
    }
    return v;
}

static int64_t header_i64(const dlq_letter_t *l, const char *name, int64_t dflt)
{
    const char *v = dlq_header(l, name);
    if (!v || !*v)
        return dflt;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    return errno == 0 && end && *end == '\0' ? (int64_t)x : dflt;
}

static void decode(dlq_letter_t *l)
{
    const char *s;
    l->orig_topic = (s = dlq_header(l, "__connect.errors.topic")) ? s : "";
    l->orig_partition = (int32_t)header_i64(l, "__connect.errors.partition", -1);
    l->orig_offset = header_i64(l, "__connect.errors.offset", -1);
    l->worker = (s = dlq_header(l, "__connect.errors.connector.name")) ? s : "";
    l->error_class = (s = dlq_header(l, "__connect.errors.exception.class.name")) ? s : "";
    l->message = (s = dlq_header(l, "__connect.errors.exception.message")) ? s : "";
    l->http_status = (long)header_i64(l, "x-dlq.http-status", 0);
    l->attempts = (int)header_i64(l, "x-dlq.attempts", 0);
    l->response = (s = dlq_header(l, "x-dlq.response")) ? s : "";
}

int dlq_letter_dup(const dlq_letter_t *src, dlq_letter_t *dst)
{
    memset(dst, 0, sizeof *dst);
    dst->partition = src->partition;
    dst->offset = src->offset;
    dst->timestamp_ms = src->timestamp_ms;
    if (src->key && !(dst->key = dup_bytes(src->key, src->key_len)))
        goto oom;
    dst->key_len = src->key_len;
    if (src->value && !(dst->value = dup_bytes(src->value, src->value_len)))
        goto oom;
    dst->value_len = src->value_len;
    if (src->header_count > 0) {
        dst->headers = calloc(src->header_count, sizeof *dst->headers);
        if (!dst->headers)
            goto oom;
        for (size_t i = 0; i < src->header_count; i++) {
            const kafka_header_t *h = &src->headers[i];
            kafka_header_t *d = &dst->headers[dst->header_count++];
            d->name = dup_bytes(h->name, strlen(h->name));
            d->value = h->value ? dup_bytes(h->value, h->value_len) : NULL;
            d->value_len = h->value_len;
            if (!d->name || (h->value && !d->value))
                goto oom;
        }
    }
    decode(dst); /* the decoded fields point into dst's own headers */
    return 0;
oom:
    letter_free(dst);
    return -1;
}

/* Copies a consumed message into *l. Returns 0 or -1 (out of memory; *l freed). */
static int letter_copy(const rd_kafka_message_t *m, dlq_letter_t *l)
{
    memset(l, 0, sizeof *l);
    l->partition = m->partition;
    l->offset = m->offset;
    l->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    if (m->key && !(l->key = dup_bytes(m->key, m->key_len)))
        goto oom;
    l->key_len = m->key_len;
    if (m->payload && !(l->value = dup_bytes(m->payload, m->len)))
        goto oom;
    l->value_len = m->len;
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
        size_t n = rd_kafka_header_cnt(hdrs);
        l->headers = calloc(n ? n : 1, sizeof *l->headers);
        if (!l->headers)
            goto oom;
        for (size_t i = 0; i < n; i++) {
            const char *name;
            const void *val;
            size_t size;
            if (rd_kafka_header_get_all(hdrs, i, &name, &val, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
                break;
            kafka_header_t *h = &l->headers[l->header_count++];
            h->name = dup_bytes(name, strlen(name));
            h->value = val ? dup_bytes(val, size) : NULL;
            h->value_len = size;
            if (!h->name || (val && !h->value))
                goto oom;
        }
    }
    decode(l);
    return 0;
oom:
    letter_free(l);
    return -1;
}

static bool keep(const dlq_filter_t *f, const dlq_letter_t *l)
{
    if (f->worker && *f->worker && strcmp(f->worker, l->worker) != 0)
        return false;
    if (f->error_class && *f->error_class && strcmp(f->error_class, l->error_class) != 0)
        return false;
    if (f->since_ms > 0 && l->timestamp_ms >= 0 && l->timestamp_ms < f->since_ms)
        return false;
    return true;
}

static int push(dlq_list_t *out, size_t *cap, dlq_letter_t *l)
{
    if (out->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        dlq_letter_t *grown = realloc(out->items, ncap * sizeof *grown);
        if (!grown)
            return -1;
        out->items = grown;
        *cap = ncap;
    }
    out->items[out->count++] = *l;
    return 0;
}

/* Newest first by (timestamp, partition, offset) for the limit, then back to topic order. */
static int by_time(const void *a, const void *b)
{
    const dlq_letter_t *x = a, *y = b;
    if (x->timestamp_ms != y->timestamp_ms)
        return x->timestamp_ms < y->timestamp_ms ? -1 : 1;
    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : (x->offset > y->offset);
}

static void apply_limit(dlq_list_t *out, size_t limit)
{
    if (out->count == 0)
        return; /* qsort(NULL, 0, ...) is undefined */
    qsort(out->items, out->count, sizeof *out->items, by_time);
    if (limit == 0 || out->count <= limit)
        return;
    size_t drop = out->count - limit;
    for (size_t i = 0; i < drop; i++)
        letter_free(&out->items[i]);
    memmove(out->items, out->items + drop, limit * sizeof *out->items);
    out->count = limit;
}

/* Low and high watermarks of each of the `parts` partitions of `topic` into lo[], hi[].
 * Returns 0 or -1 with err. */
static int watermarks(rd_kafka_t *rk, const char *topic, int parts, int timeout_ms, int64_t *lo,
                      int64_t *hi, char *err, size_t errlen)
{
    for (int p = 0; p < parts; p++) {
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo[p], &hi[p], timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            errbuf_set(err, errlen, "watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(e));
            return -1;
        }
    }
    return 0;
}

/* Reads [start[p], end[p]] of every partition p with start[p] <= end[p] into out (letters
 * `keep`ing f, appended; *cap is out's capacity), reading the partition to its end or to the
 * first end-of-partition. reached[p] (when not NULL) becomes the offset after the last one
 * read (start[p] when nothing was); *records counts the records read (kept or not).
 * Returns 0 or -1 with err (out then holds what was read so far: the caller frees it). */
static int read_ranges(rd_kafka_t *rk, const char *topic, int parts, const int64_t *start,
                       const int64_t *end, const dlq_filter_t *f, int timeout_ms,
                       dlq_list_t *out, size_t *cap, int64_t *reached, int64_t *records,
                       char *err, size_t errlen)
{
    int64_t *ends = calloc((size_t)parts, sizeof *ends);
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts);
    int rc = -1, pending = 0;
    *records = 0;
    if (!ends || !tp) {
        errbuf_set(err, errlen, "out of memory reading %s", topic);
        goto done;
    }
    for (int p = 0; p < parts; p++) {
        ends[p] = start[p] > end[p] ? INT64_MIN : end[p]; /* INT64_MIN: not read */
        if (reached)
            reached[p] = start[p];
        if (start[p] > end[p])
            continue;
        rd_kafka_topic_partition_list_add(tp, topic, p)->offset = start[p];
        pending++;
    }
    rd_kafka_resp_err_t e = pending ? rd_kafka_assign(rk, tp) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        errbuf_set(err, errlen, "cannot read %s: %s", topic, rd_kafka_err2str(e));
        goto done;
    }
    int64_t quiet_since = clock_mono_ms();
    while (pending > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, READ_IDLE_MS);
        if (!m) {
            if (clock_mono_ms() - quiet_since > timeout_ms) {
                errbuf_set(err, errlen, "reading %s timed out after %d ms without a record",
                           topic, timeout_ms);
                goto done;
            }
            continue;
        }
        quiet_since = clock_mono_ms();
        bool eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        bool ours = m->partition >= 0 && m->partition < parts && ends[m->partition] != INT64_MIN &&
                    m->rkt && strcmp(rd_kafka_topic_name(m->rkt), topic) == 0;
        if (m->err && !eof && ours) {
            /* e.g. the offset asked for is below the low watermark now: what was read is not
             * the range asked for, so the read fails (and a caller keeping state forgets it) */
            errbuf_set(err, errlen,
                       "reading %s [%d] at offset %" PRId64 ": %s (deleted by retention "
                       "meanwhile? the next read starts over)",
                       topic, (int)m->partition, (int64_t)m->offset,
                       rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            goto done;
        }
        if ((m->err && !eof) || m->partition < 0 || m->partition >= parts) {
            if (m->err && !eof)
                log_msg(LOG_WARN, "dlq_read_error", "topic=%s error=\"%s\"", topic,
                        rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        int32_t p = m->partition;
        bool last = eof || m->offset >= ends[p];
        if (!eof && m->offset <= ends[p]) {
            dlq_letter_t l;
            if (letter_copy(m, &l) != 0) {
                rd_kafka_message_destroy(m);
                errbuf_set(err, errlen, "out of memory reading %s", topic);
                goto done;
            }
            (*records)++;
            if (reached)
                reached[p] = m->offset + 1;
            if (!keep(f, &l))
                letter_free(&l);
            else if (push(out, cap, &l) != 0) {
                letter_free(&l);
                rd_kafka_message_destroy(m);
                errbuf_set(err, errlen, "out of memory reading %s", topic);
                goto done;
            }
        }
        if (eof && reached && ends[p] != INT64_MIN && m->offset > reached[p])
            reached[p] = m->offset <= end[p] ? m->offset : end[p] + 1; /* the next to read */
        rd_kafka_message_destroy(m);
        if (last && ends[p] != INT64_MIN) {
            ends[p] = INT64_MIN; /* this partition is done */
            pending--;
        }
    }
    rc = 0;
done:
    if (tp)
        rd_kafka_topic_partition_list_destroy(tp);
    free(ends);
    return rc;
}

int dlq_read_range_on(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t from,
                      int64_t to, int timeout_ms, dlq_list_t *out, int64_t *records, char *err,
                      size_t errlen)
{
    *records = 0;
    if (partition < 0 || partition >= 1 << 20 || from < 0 || to < from) {
        errbuf_set(err, errlen, "reading %s [%d]: no such range %" PRId64 "..%" PRId64, topic,
                   (int)partition, from, to);
        return -1;
    }
    int parts = partition + 1;
    int64_t *wm = calloc((size_t)parts * 2, sizeof *wm); /* start, end */
    if (!wm) {
        errbuf_set(err, errlen, "out of memory reading %s", topic);
        return -1;
    }
    int64_t *start = wm, *end = wm + parts;
    for (int p = 0; p < parts; p++) {
        start[p] = p == partition ? from : 1; /* 1 > 0: not read */
        end[p] = p == partition ? to : 0;
    }
    size_t cap = out->count;
    dlq_filter_t all = dlq_filter_all();
    int rc = read_ranges(rk, topic, parts, start, end, &all, timeout_ms, out, &cap, NULL, records,
                         err, errlen);
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, NULL); /* stop: the handle may be reused */
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR && rc == 0) {
        errbuf_set(err, errlen, "reading %s [%d]: cannot stop fetching: %s", topic,
                   (int)partition, rd_kafka_err2str(e));
        rc = -1;
    }
    free(wm);
    return rc;
}

int dlq_read(const kafka_settings_t *s, const char *prefix, const dlq_filter_t *f,
             int timeout_ms, dlq_list_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (kafka_topic_name(out->topic, sizeof out->topic, prefix, KAFKA_TOPIC_DLQ) != 0) {
        errbuf_set(err, errlen, "TOPIC_PREFIX makes the DLQ topic name too long");
        return -1;
    }
    rd_kafka_t *rk = dlq_reader_new(s, err, errlen);
    if (!rk)
        return -1;
    int rc = -1;
    int64_t *wm = NULL, records = 0;
    size_t cap = 0;
    int parts = partition_count(rk, out->topic, timeout_ms, err, errlen);
    if (parts <= 0) {
        rc = parts; /* 0: no DLQ topic yet, nothing dead-lettered */
        goto done;
    }
    /* lo, hi, then the range read of each partition */
    wm = calloc((size_t)parts * 4, sizeof *wm);
    if (!wm) {
        errbuf_set(err, errlen, "out of memory reading %s", out->topic);
        goto done;
    }
    int64_t *lo = wm, *hi = wm + parts, *start = wm + 2 * parts, *end = wm + 3 * parts;
    if (watermarks(rk, out->topic, parts, timeout_ms, lo, hi, err, errlen) != 0)
        goto done;
    for (int p = 0; p < parts; p++) {
        out->total += hi[p] - lo[p];
        start[p] = f->from_offset > lo[p] ? f->from_offset : lo[p];
        end[p] = hi[p] - 1;
        if (f->to_offset >= 0 && f->to_offset < end[p])
            end[p] = f->to_offset;
        if (f->partition >= 0 && f->partition != p)
            start[p] = end[p] + 1; /* not selected */
    }
    if (read_ranges(rk, out->topic, parts, start, end, f, timeout_ms, out, &cap, NULL, &records,
                    err, errlen) != 0)
        goto done;
    apply_limit(out, f->limit);
    rc = 0;
done:
    free(wm);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    if (rc != 0)
        dlq_list_free(out);
    return rc;
}

int dlq_merge_newest(dlq_list_t *kept, dlq_list_t *fresh, size_t limit)
{
    if (fresh->count > 0) {
        size_t n = kept->count + fresh->count;
        dlq_letter_t *grown = realloc(kept->items, n * sizeof *grown);
        if (!grown)
            return -1;
        memcpy(grown + kept->count, fresh->items, fresh->count * sizeof *grown);
        kept->items = grown;
        kept->count = n;
        free(fresh->items); /* its letters belong to kept now */
        fresh->items = NULL;
        fresh->count = 0;
    }
    apply_limit(kept, limit);
    return 0;
}

int dlq_list_copy(const dlq_list_t *src, dlq_list_t *dst)
{
    *dst = (dlq_list_t){.total = src->total};
    snprintf(dst->topic, sizeof dst->topic, "%s", src->topic);
    if (src->count == 0)
        return 0;
    dst->items = calloc(src->count, sizeof *dst->items);
    if (!dst->items)
        return -1;
    for (size_t i = 0; i < src->count; i++) {
        if (dlq_letter_dup(&src->items[i], &dst->items[i]) != 0) {
            dlq_list_free(dst);
            return -1;
        }
        dst->count++;
    }
    return 0;
}

void dlq_newest_init(dlq_newest_t *n, size_t limit)
{
    memset(n, 0, sizeof *n);
    n->limit = limit;
}

void dlq_newest_forget(dlq_newest_t *n)
{
    dlq_list_free(&n->letters);
    free(n->read_to);
    n->read_to = NULL;
    n->partitions = 0;
    n->known = false;
}

void dlq_newest_free(dlq_newest_t *n)
{
    dlq_newest_forget(n);
}

/* Why the kept state cannot be extended by reading only the new offsets, or NULL when it can. */
static const char *full_read_reason(const dlq_newest_t *n, int parts, const int64_t *lo,
                                    const int64_t *hi)
{
    if (!n->known || !n->read_to)
        return "nothing kept";
    if (n->partitions != parts)
        return "partition count changed";
    for (int p = 0; p < parts; p++) {
        if (hi[p] < n->read_to[p])
            return "high watermark went back";
        if (lo[p] > n->read_to[p])
            return "low watermark passed the offset read to";
    }
    for (size_t i = 0; i < n->letters.count; i++) {
        const dlq_letter_t *l = &n->letters.items[i];
        if (l->partition < 0 || l->partition >= parts || l->offset < lo[l->partition])
            return "a kept letter was deleted";
    }
    return NULL;
}

int dlq_newest_refresh(dlq_newest_t *n, const kafka_settings_t *s, const char *prefix,
                       int timeout_ms, dlq_read_stats_t *stats, char *err, size_t errlen)
{
    *stats = (dlq_read_stats_t){.full = true, .why = "nothing kept"};
    char topic[KAFKA_TOPIC_NAME_MAX];
    if (kafka_topic_name(topic, sizeof topic, prefix, KAFKA_TOPIC_DLQ) != 0) {
        errbuf_set(err, errlen, "TOPIC_PREFIX makes the DLQ topic name too long");
        dlq_newest_forget(n);
        return -1;
    }
    rd_kafka_t *rk = dlq_reader_new(s, err, errlen);
    if (!rk) {
        dlq_newest_forget(n);
        return -1;
    }
    int rc = -1;
    int64_t *wm = NULL, *reached = NULL; /* reached: where each partition's read ended */
    dlq_list_t fresh = {0};
    size_t cap = 0;
    dlq_filter_t all = dlq_filter_all();
    int parts = partition_count(rk, topic, timeout_ms, err, errlen);
    if (parts < 0)
        goto done;
    if (parts == 0) { /* no DLQ topic yet: nothing dead-lettered */
        dlq_newest_forget(n);
        snprintf(n->letters.topic, sizeof n->letters.topic, "%s", topic);
        n->known = true;
        stats->why = "no topic";
        rc = 0;
        goto done;
    }
    wm = calloc((size_t)parts * 4, sizeof *wm); /* lo, hi, start, end */
    reached = calloc((size_t)parts, sizeof *reached);
    if (!wm || !reached) {
        errbuf_set(err, errlen, "out of memory reading %s", topic);
        goto done;
    }
    int64_t *lo = wm, *hi = wm + parts, *start = wm + 2 * parts, *end = wm + 3 * parts;
    if (watermarks(rk, topic, parts, timeout_ms, lo, hi, err, errlen) != 0)
        goto done;
    const char *why = full_read_reason(n, parts, lo, hi);
    stats->full = why != NULL;
    stats->why = why ? why : "new offsets only";
    int64_t total = 0;
    for (int p = 0; p < parts; p++) {
        total += hi[p] - lo[p];
        start[p] = why ? lo[p] : n->read_to[p];
        end[p] = hi[p] - 1;
    }
    if (read_ranges(rk, topic, parts, start, end, &all, timeout_ms, &fresh, &cap, reached,
                    &stats->records, err, errlen) != 0)
        goto done;
    if (why) {
        dlq_list_free(&n->letters);
        apply_limit(&fresh, n->limit);
        n->letters = fresh;
        fresh = (dlq_list_t){0};
    } else if (dlq_merge_newest(&n->letters, &fresh, n->limit) != 0) {
        errbuf_set(err, errlen, "out of memory merging the letters read from %s", topic);
        goto done;
    }
    snprintf(n->letters.topic, sizeof n->letters.topic, "%s", topic);
    n->letters.total = total;
    free(n->read_to);
    n->read_to = reached; /* taken over */
    reached = NULL;
    n->partitions = parts;
    n->known = true;
    rc = 0;
done:
    dlq_list_free(&fresh);
    free(wm);
    free(reached);
    if (rc != 0)
        dlq_newest_forget(n); /* the kept list is unknown now: the next read is full */
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

int dlq_size_on(rd_kafka_t *rk, const char *prefix, int timeout_ms, int64_t *messages,
                int64_t *newest_ms, char *err, size_t errlen)
{
    *messages = 0;
    *newest_ms = -1;
    char topic[KAFKA_TOPIC_NAME_MAX];
    if (kafka_topic_name(topic, sizeof topic, prefix, KAFKA_TOPIC_DLQ) != 0) {
        errbuf_set(err, errlen, "TOPIC_PREFIX makes the DLQ topic name too long");
        return -1;
    }
    int parts = partition_count(rk, topic, timeout_ms, err, errlen);
    int rc = parts < 0 ? -1 : 0;
    int pending = 0;
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(parts > 0 ? parts : 1);
    for (int p = 0; rc == 0 && tp && p < parts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            errbuf_set(err, errlen, "watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(e));
            rc = -1;
            break;
        }
        *messages += hi - lo;
        if (hi > lo) { /* read only the last letter of the partition, for its time */
            rd_kafka_topic_partition_list_add(tp, topic, p)->offset = hi - 1;
            pending++;
        }
    }
    bool assigned = false;
    if (rc == 0 && pending > 0) {
        assigned = rd_kafka_assign(rk, tp) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!assigned)
            pending = 0; /* the size is known; the time stays unknown */
    }
    int64_t deadline = clock_mono_ms() + timeout_ms;
    while (rc == 0 && pending > 0 && clock_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, READ_IDLE_MS);
        if (!m)
            continue;
        /* Only the letter asked for counts: on a reused handle nothing of an earlier read may
         * end this one early. */
        rd_kafka_topic_partition_t *want =
            !m->err && m->rkt ? rd_kafka_topic_partition_list_find(tp, topic, m->partition)
                              : NULL;
        if (want && want->offset == m->offset && strcmp(rd_kafka_topic_name(m->rkt), topic) == 0) {
            int64_t ts = rd_kafka_message_timestamp(m, NULL);
            if (ts > *newest_ms)
                *newest_ms = ts;
            want->offset = RD_KAFKA_OFFSET_INVALID; /* done */
            pending--;
        }
        rd_kafka_message_destroy(m);
    }
    if (assigned)
        rd_kafka_assign(rk, NULL); /* stop fetching: the handle may be reused */
    if (tp)
        rd_kafka_topic_partition_list_destroy(tp);
    return rc;
}

int dlq_size(const kafka_settings_t *s, const char *prefix, int timeout_ms, int64_t *messages,
             int64_t *newest_ms, char *err, size_t errlen)
{
    *messages = 0;
    *newest_ms = -1;
    char topic[KAFKA_TOPIC_NAME_MAX];
    if (kafka_topic_name(topic, sizeof topic, prefix, KAFKA_TOPIC_DLQ) != 0) {
        errbuf_set(err, errlen, "TOPIC_PREFIX makes the DLQ topic name too long");
        return -1;
    }
    rd_kafka_t *rk = dlq_reader_new(s, err, errlen);
    if (!rk)
        return -1;
    int rc = dlq_size_on(rk, prefix, timeout_ms, messages, newest_ms, err, errlen);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

void dlq_list_free(dlq_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        letter_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* The letter's original topic must be one of this account's pipeline topics: a replay never
 * writes anywhere a header happens to name. */
static bool replay_target_ok(const char *dlq_topic, const char *orig)
{
    size_t dlen = strlen(dlq_topic), blen = strlen(kafka_topic_base(KAFKA_TOPIC_DLQ));
    size_t plen = dlen - blen; /* the prefix is what precedes "pipeline.dlq" */
    if (strncmp(orig, dlq_topic, plen) != 0)
        return false;
    for (int id = 0; id < KAFKA_TOPIC_DLQ; id++) {
        if (strcmp(orig + plen, kafka_topic_base((kafka_topic_id_t)id)) == 0)
            return true;
    }
    return false;
}

dlq_replay_rc_t dlq_replay(kafka_producer_t *p, store_t *st, const char *dlq_topic,
                           const dlq_letter_t *l, const char *by, bool force, bool dry_run,
                           char *err, size_t errlen)
{
    if (!replay_target_ok(dlq_topic, l->orig_topic)) {
        errbuf_set(err, errlen, "letter %d/%" PRId64 " names original topic \"%s\", which is not "
                   "a pipeline topic of this TOPIC_PREFIX: not replayed", l->partition,
                   l->offset, l->orig_topic);
        return DLQ_FAILED;
    }
    store_replay_t prev;
    int rc = store_replay_get(st, dlq_topic, l->partition, l->offset, &prev, err, errlen);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND)
        return DLQ_FAILED;
    if (rc == STORE_OK && !force)
        return DLQ_ALREADY;
    if (dry_run)
        return DLQ_WOULD;
    rc = store_replay_mark(st, dlq_topic, l->partition, l->offset, by, force, err, errlen);
    if (rc == STORE_CONFLICT)
        return DLQ_ALREADY;
    if (rc != STORE_OK)
        return DLQ_FAILED;

    kafka_header_t *hs = calloc(l->header_count + 1, sizeof *hs);
    if (!hs) {
        errbuf_set(err, errlen, "out of memory");
        return DLQ_FAILED;
    }
    size_t n = 0;
    for (size_t i = 0; i < l->header_count; i++) {
        const char *name = l->headers[i].name;
        if (strncmp(name, "__connect.errors.", 17) == 0 || strncmp(name, "x-dlq.", 6) == 0)
            continue;
        hs[n++] = l->headers[i];
    }
    char from[KAFKA_TOPIC_NAME_MAX + 48];
    snprintf(from, sizeof from, "%s/%d/%" PRId64, dlq_topic, l->partition, l->offset);
    hs[n++] = (kafka_header_t){.name = "x-dlq.replayed-from", .value = from,
                               .value_len = strlen(from)};
    kafka_batch_t *b = kafka_batch_new();
    dlq_replay_rc_t out = DLQ_FAILED;
    char e[512] = "";
    if (b && kafka_producer_send_raw(p, l->orig_topic, l->key, l->key_len, l->value, l->value_len,
                                     hs, n, -1, b, NULL, NULL, e, sizeof e) == 0 &&
        kafka_batch_wait(p, b, 30000, e, sizeof e) == 0)
        out = DLQ_REPLAYED;
    else
        errbuf_set(err, errlen, "letter %d/%" PRId64 " was recorded as replayed but not "
                   "delivered to %s (%s): run the replay again with --force", l->partition,
                   l->offset, l->orig_topic, e[0] ? e : "out of memory");
    kafka_batch_free(b);
    free(hs);
    return out;
}

cJSON *dlq_letter_json(const dlq_letter_t *l, bool full)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddNumberToObject(o, "partition", l->partition);
    cJSON_AddNumberToObject(o, "offset", (double)l->offset);
    cJSON_AddNumberToObject(o, "timestamp_ms", (double)l->timestamp_ms);
    cJSON_AddStringToObject(o, "key", l->key ? l->key : "");
    cJSON_AddStringToObject(o, "worker", l->worker);
    cJSON_AddStringToObject(o, "error_class", l->error_class);
    cJSON_AddNumberToObject(o, "http_status", (double)l->http_status);
    cJSON_AddNumberToObject(o, "attempts", l->attempts);
    cJSON_AddStringToObject(o, "message", l->message);
    cJSON_AddStringToObject(o, "original_topic", l->orig_topic);
    cJSON_AddNumberToObject(o, "original_partition", l->orig_partition);
    cJSON_AddNumberToObject(o, "original_offset", (double)l->orig_offset);
    if (!full)
        return o;
    cJSON *h = cJSON_AddObjectToObject(o, "headers");
    for (size_t i = 0; h && i < l->header_count; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(h, l->headers[i].name); /* last one wins */
        if (l->headers[i].value)
            cJSON_AddStringToObject(h, l->headers[i].name, l->headers[i].value);
        else
            cJSON_AddNullToObject(h, l->headers[i].name);
    }
    cJSON *v = l->value ? cJSON_ParseWithLength(l->value, l->value_len) : NULL;
    if (v)
        cJSON_AddItemToObject(o, "record", v);
    else
        cJSON_AddStringToObject(o, "record_text", l->value ? l->value : "");
    return o;
}
