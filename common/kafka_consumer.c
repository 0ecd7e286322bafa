/* kafka_consumer: at-least-once consumer wrapper. See kafka_consumer.h. */
#include "kafka_consumer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "errbuf.h"
#include "kafka_offsets.h"
#include "log.h"

#define REVOKE_WAIT_DEFAULT_MS 10000
#define SEEK_WAIT_MS 2000 /* bound on the synchronous seek after a release */

/* A handed-out record and what the wrapper needs to settle it. One allocation: the box, then
 * the header array, then every byte buffer (each followed by a NUL). */
typedef struct record_box {
    kafka_record_t rec; /* first: a kafka_record_t * is a record_box * */
    uint64_t generation;
} record_box_t;

/* A partition in one of the wrapper's small lists: paused partitions, and released records to
 * fetch again (the poll thread seeks the partition back to `offset` if it is still assigned
 * under `generation`). */
typedef struct tp {
    char *topic;
    int32_t partition;
    int64_t offset;      /* seeks only */
    uint64_t generation; /* seeks only */
} tp_t;

typedef struct tp_list {
    tp_t *items;
    size_t count, cap;
} tp_list_t;

typedef struct held {
    rd_kafka_message_t *msg;
    struct held *next;
} held_t;

struct kafka_consumer {
    rd_kafka_t *rk;
    pthread_mutex_t lock; /* offsets, outstanding */
    pthread_cond_t settled;
    kafka_offsets_t *offsets;
    size_t outstanding; /* records handed out and not done/released */
    atomic_int_fast64_t last_record_ms;
    atomic_bool fatal;
    int revoke_wait_ms;
    kafka_revoke_cb on_revoke;
    kafka_assign_cb on_assign;
    void *opaque;
    /* Eviction (issue 8 item 9): max.poll.interval.ms as configured, when the poll thread last
     * left/entered poll(), whether it is inside it, and a sticky "thrown out" flag set by
     * librdkafka's MAX_POLL_EXCEEDED error and cleared by the next assignment. */
    int64_t max_poll_interval_ms;
    atomic_int_fast64_t last_poll_ms;
    atomic_bool in_poll;
    atomic_bool evicted;
    /* Released records to seek back to (any thread adds under `lock`, the poll thread takes). */
    tp_list_t seeks;
    /* Poll thread only: */
    bool gap_exceeded; /* this poll() began after a gap longer than max.poll.interval.ms */
    tp_list_t paused;
    held_t *held_head, *held_tail; /* messages of paused partitions, in arrival order */
};

/* ---- records ------------------------------------------------------------------------------ */

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Copies a message into one allocation. Returns NULL on allocation failure. */
static record_box_t *record_copy(const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    size_t topic_len = strlen(topic);
    rd_kafka_headers_t *hdrs = NULL;
    size_t hcount = 0;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs)
        hcount = rd_kafka_header_cnt(hdrs);

    size_t bytes = topic_len + 1 + (m->key ? m->key_len + 1 : 0) + (m->payload ? m->len + 1 : 0);
    for (size_t i = 0; i < hcount; i++) {
        const char *name;
        const void *val;
        size_t vlen;
        if (rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return NULL;
        bytes += strlen(name) + 1 + (val ? vlen + 1 : 0);
    }
    size_t head = align8(sizeof(record_box_t)) + hcount * sizeof(kafka_header_t);
    record_box_t *box = calloc(1, head + bytes);
    if (!box)
        return NULL;
    kafka_header_t *harr = (kafka_header_t *)((char *)box + align8(sizeof(record_box_t)));
    char *w = (char *)box + head;

#define COPY_OUT(dst, src, len)                                                             \
    do {                                                                                    \
        memcpy(w, (src), (len));                                                            \
        w[(len)] = '\0';                                                                    \
        (dst) = w;                                                                          \
        w += (len) + 1;                                                                     \
    } while (0)

    kafka_record_t *r = &box->rec;
    COPY_OUT(r->topic, topic, topic_len);
    r->partition = m->partition;
    r->offset = m->offset;
    if (m->key) {
        COPY_OUT(r->key, m->key, m->key_len);
        r->key_len = m->key_len;
    }
    if (m->payload) {
        COPY_OUT(r->value, m->payload, m->len);
        r->value_len = m->len;
    }
    for (size_t i = 0; i < hcount; i++) {
        const char *name;
        const void *val;
        size_t vlen;
        rd_kafka_header_get_all(hdrs, i, &name, &val, &vlen);
        COPY_OUT(harr[i].name, name, strlen(name));
        if (val) {
            COPY_OUT(harr[i].value, val, vlen);
            harr[i].value_len = vlen;
        }
    }
#undef COPY_OUT
    r->headers = hcount ? harr : NULL;
    r->header_count = hcount;
    rd_kafka_timestamp_type_t tstype = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    r->timestamp_ms = tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? -1 : ts;
    r->timestamp_type = tstype;
    return box;
}

void kafka_record_free(kafka_record_t *rec) { free(rec); }

/* ---- helpers -------------------------------------------------------------------------------- */

static tp_t *tp_find(const tp_list_t *l, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < l->count; i++) {
        if (l->items[i].partition == partition && strcmp(l->items[i].topic, topic) == 0)
            return &l->items[i];
    }
    return NULL;
}

/* The entry of (topic, partition), added (zeroed but for the names) when missing; NULL on
 * allocation failure. */
static tp_t *tp_get(tp_list_t *l, const char *topic, int32_t partition)
{
    tp_t *e = tp_find(l, topic, partition);
    if (e)
        return e;
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        tp_t *n = realloc(l->items, ncap * sizeof *n);
        if (!n)
            return NULL;
        l->items = n;
        l->cap = ncap;
    }
    char *t = strdup(topic);
    if (!t)
        return NULL;
    l->items[l->count] = (tp_t){.topic = t, .partition = partition};
    return &l->items[l->count++];
}

static void tp_remove(tp_list_t *l, const char *topic, int32_t partition)
{
    tp_t *e = tp_find(l, topic, partition);
    if (e) {
        free(e->topic);
        *e = l->items[--l->count];
    }
}

static void tp_clear(tp_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].topic);
    l->count = 0;
}

static void tp_free(tp_list_t *l)
{
    tp_clear(l);
    free(l->items);
    l->items = NULL;
    l->cap = 0;
}

static bool is_paused(const kafka_consumer_t *c, const char *topic, int32_t partition)
{
    return tp_find(&c->paused, topic, partition) != NULL;
}

static void held_push(kafka_consumer_t *c, rd_kafka_message_t *m)
{
    held_t *h = malloc(sizeof *h);
    if (!h) {
        /* Dropping it only means it is re-delivered after a restart/rebalance: the offset
         * tracker never saw it, so nothing past it can be stored... except later offsets
         * finished in this generation. Log loudly; this needs memory exhaustion. */
        log_msg(LOG_ERROR, "kafka_consumer_nomem", "topic=%s partition=%" PRId32
                " offset=%" PRId64, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
        rd_kafka_message_destroy(m);
        return;
    }
    h->msg = m;
    h->next = NULL;
    if (c->held_tail)
        c->held_tail->next = h;
    else
        c->held_head = h;
    c->held_tail = h;
}

/* Removes and returns the first held message whose partition is no longer paused. */
static rd_kafka_message_t *held_take_ready(kafka_consumer_t *c)
{
    held_t *prev = NULL;
    for (held_t *h = c->held_head; h; prev = h, h = h->next) {
        if (is_paused(c, rd_kafka_topic_name(h->msg->rkt), h->msg->partition))
            continue;
        if (prev)
            prev->next = h->next;
        else
            c->held_head = h->next;
        if (c->held_tail == h)
            c->held_tail = prev;
        rd_kafka_message_t *m = h->msg;
        free(h);
        return m;
    }
    return NULL;
}

/* Destroys held messages of one partition (topic NULL: all). */
static void held_drop(kafka_consumer_t *c, const char *topic, int32_t partition)
{
    held_t **link = &c->held_head;
    c->held_tail = NULL;
    while (*link) {
        held_t *h = *link;
        if (!topic || (h->msg->partition == partition &&
                       strcmp(rd_kafka_topic_name(h->msg->rkt), topic) == 0)) {
            *link = h->next;
            rd_kafka_message_destroy(h->msg);
            free(h);
        } else {
            c->held_tail = h;
            link = &h->next;
        }
    }
}

static size_t in_flight_of(kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts)
{
    size_t n = 0;
    for (int i = 0; i < parts->cnt; i++)
        n += kafka_offsets_in_flight(c->offsets, parts->elems[i].topic, parts->elems[i].partition);
    return n;
}

static int commit_sync(kafka_consumer_t *c, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 0);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || e == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return KAFKA_OK;
    errbuf_set(err, errlen, "Kafka offset commit failed: %s", rd_kafka_err2str(e));
    return KAFKA_ERR_BROKER;
}

/* True when the gap since the poll thread last polled exceeds max.poll.interval.ms: librdkafka
 * has thrown (or is about to throw) this member out of the group. */
static bool poll_gap_exceeded(kafka_consumer_t *c)
{
    if (c->max_poll_interval_ms <= 0 || atomic_load(&c->in_poll))
        return false;
    return clock_mono_ms() - atomic_load(&c->last_poll_ms) > c->max_poll_interval_ms;
}

/* True when this member's assignment must be treated as lost (SPEC §4 "Consumer hygiene"):
 * librdkafka says so, it reported max.poll.interval.ms exceeded, or the poll gap says so. */
static bool assignment_lost(kafka_consumer_t *c)
{
    return atomic_load(&c->evicted) || rd_kafka_assignment_lost(c->rk) || poll_gap_exceeded(c);
}

/* Queues a seek back to a released record (caller holds c->lock). Keeps the lowest offset
 * per partition and generation. Returns false on allocation failure. */
static bool seek_add(kafka_consumer_t *c, const char *topic, int32_t partition, int64_t offset,
                     uint64_t generation)
{
    tp_t *q = tp_get(&c->seeks, topic, partition);
    if (!q)
        return false;
    if (q->generation != generation || offset < q->offset) {
        q->generation = generation; /* 0 when new: never a real generation */
        q->offset = offset;
    }
    return true;
}

/* Destroys held messages of one partition from `offset` on: they will be fetched again. */
static void held_drop_from(kafka_consumer_t *c, const char *topic, int32_t partition,
                           int64_t offset)
{
    held_t **link = &c->held_head;
    c->held_tail = NULL;
    while (*link) {
        held_t *h = *link;
        if (h->msg->partition == partition && h->msg->offset >= offset &&
            strcmp(rd_kafka_topic_name(h->msg->rkt), topic) == 0) {
            *link = h->next;
            rd_kafka_message_destroy(h->msg);
            free(h);
        } else {
            c->held_tail = h;
            link = &h->next;
        }
    }
}

/* Poll thread: performs the queued seeks of partitions still assigned under the generation
 * the released record came from (issue 8 item 8: a released record is fetched again instead
 * of blocking its partition until the next rebalance). */
static void seeks_run(kafka_consumer_t *c)
{
    pthread_mutex_lock(&c->lock);
    if (c->seeks.count == 0) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)c->seeks.count);
    for (size_t i = 0; i < c->seeks.count; i++) {
        const tp_t *q = &c->seeks.items[i];
        if (kafka_offsets_generation(c->offsets, q->topic, q->partition) != q->generation)
            continue; /* revoked since: the next owner starts from the committed offset */
        rd_kafka_topic_partition_list_add(l, q->topic, q->partition)->offset = q->offset;
    }
    tp_clear(&c->seeks);
    pthread_mutex_unlock(&c->lock);
    for (int i = 0; i < l->cnt; i++)
        held_drop_from(c, l->elems[i].topic, l->elems[i].partition, l->elems[i].offset);
    if (l->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, SEEK_WAIT_MS);
        for (int i = 0; i < l->cnt; i++) {
            rd_kafka_resp_err_t pe = e ? rd_kafka_error_code(e) : l->elems[i].err;
            log_msg(pe ? LOG_WARN : LOG_INFO, "kafka_seek_released", "topic=%s partition=%" PRId32
                    " offset=%" PRId64 " error=%s", l->elems[i].topic, l->elems[i].partition,
                    l->elems[i].offset, rd_kafka_err2name(pe));
        }
        if (e)
            rd_kafka_error_destroy(e);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Resumes fetching in librdkafka (which keeps a pause across an eager rebalance) and forgets
 * our own pause of these partitions. A partition librdkafka does not know is not an error. */
static void resume_quietly(kafka_consumer_t *c, const rd_kafka_topic_partition_list_t *parts)
{
    if (parts->cnt == 0)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_resp_err_t e = rd_kafka_resume_partitions(c->rk, l);
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_resp_err_t pe = e ? e : l->elems[i].err;
        if (pe && pe != RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
            log_msg(LOG_WARN, "kafka_resume_failed", "topic=%s partition=%" PRId32 " error=%s",
                    l->elems[i].topic, l->elems[i].partition, rd_kafka_err2name(pe));
        tp_remove(&c->paused, l->elems[i].topic, l->elems[i].partition);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- rebalance ------------------------------------------------------------------------------ */

static void on_assign(kafka_consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < parts->cnt; i++) {
        if (kafka_offsets_assign(c->offsets, parts->elems[i].topic, parts->elems[i].partition) == 0)
            log_msg(LOG_ERROR, "kafka_consumer_nomem", "topic=%s partition=%" PRId32,
                    parts->elems[i].topic, parts->elems[i].partition);
    }
    pthread_mutex_unlock(&c->lock);
    atomic_store(&c->evicted, false);
    c->gap_exceeded = false;
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, parts);
    /* A pause set before a rebalance survives it inside librdkafka (issue 8 item 2): a fresh
     * assignment starts unpaused, so nothing stays stopped that no one will resume. */
    resume_quietly(c, parts);
    log_msg(e ? LOG_ERROR : LOG_INFO, "kafka_assign", "partitions=%d error=%s", parts->cnt,
            rd_kafka_err2name(e));
    if (c->on_assign)
        c->on_assign(c->opaque, c, parts);
}

static void on_revoke(kafka_consumer_t *c, rd_kafka_topic_partition_list_t *parts)
{
    /* Thrown out of the group (max.poll.interval.ms, session timeout): librdkafka 2.0.2 may
     * hand that over as a plain revoke, so our own signs count too (issue 8 item 9). */
    bool lost = c->gap_exceeded || assignment_lost(c);
    /* 1. Stop handing out: nothing of these partitions stays held back or paused. */
    for (int i = 0; i < parts->cnt; i++)
        held_drop(c, parts->elems[i].topic, parts->elems[i].partition);
    resume_quietly(c, parts);
    /* 2. Give in-flight work a chance to end: the caller's hook, then a bounded wait. */
    if (c->on_revoke)
        c->on_revoke(c->opaque, c, parts, lost);
    pthread_mutex_lock(&c->lock);
    if (!lost && c->revoke_wait_ms != 0) {
        int64_t deadline = c->revoke_wait_ms < 0 ? INT64_MAX : clock_mono_ms() + c->revoke_wait_ms;
        while (in_flight_of(c, parts) > 0) {
            int64_t left = deadline - clock_mono_ms();
            if (left <= 0)
                break;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            int64_t step = left < 200 ? left : 200;
            until.tv_sec += (time_t)(step / 1000);
            until.tv_nsec += (long)(step % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&c->settled, &c->lock, &until);
        }
    }
    /* 3. Forget the partitions: a record finished from now on is stale (not stored). */
    size_t abandoned = 0;
    for (int i = 0; i < parts->cnt; i++)
        abandoned += kafka_offsets_revoke(c->offsets, parts->elems[i].topic, parts->elems[i].partition);
    pthread_mutex_unlock(&c->lock);

    /* 4. Commit what was stored (finished records stored as they completed), then unassign. */
    char err[256] = "";
    if (!lost && commit_sync(c, err, sizeof err) != KAFKA_OK) {
        char q[300];
        log_msg(LOG_WARN, "kafka_revoke_commit_failed", "error=%s", log_quote(q, sizeof q, err));
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, NULL);
    log_msg(lost || abandoned ? LOG_WARN : LOG_INFO, "kafka_revoke",
            "partitions=%d lost=%s abandoned_in_flight=%zu error=%s", parts->cnt,
            lost ? "true" : "false", abandoned, rd_kafka_err2name(e));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kafka_consumer_t *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        on_assign(c, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(c, parts);
    } else {
        log_msg(LOG_ERROR, "kafka_rebalance_error", "error=%s", rd_kafka_err2name(err));
        rd_kafka_assign(rk, NULL);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

kafka_consumer_t *kafka_consumer_new(const kafka_consumer_opts_t *o, char *err, size_t errlen)
{
    if (!o || !o->settings || !o->group_id || !o->group_id[0] || !o->topics ||
        o->topic_count == 0 || (o->extra_count > 0 && (!o->extra_names || !o->extra_values))) {
        errbuf_set(err, errlen, "Kafka consumer: settings, group id and topics are required");
        return NULL;
    }
    kafka_consumer_t *c = calloc(1, sizeof *c);
    if (!c) {
        errbuf_set(err, errlen, "out of memory creating the Kafka consumer");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->settled, NULL);
    atomic_store(&c->last_record_ms, clock_mono_ms());
    atomic_store(&c->last_poll_ms, clock_mono_ms());
    c->revoke_wait_ms = o->revoke_wait_ms == 0 ? REVOKE_WAIT_DEFAULT_MS : o->revoke_wait_ms;
    c->on_revoke = o->on_revoke;
    c->on_assign = o->on_assign;
    c->opaque = o->opaque;
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_topic_partition_list_t *subs = NULL;
    c->offsets = kafka_offsets_new();
    if (!c->offsets) {
        errbuf_set(err, errlen, "out of memory creating the Kafka consumer");
        goto fail;
    }
    conf = kafka_conf_from_settings(o->settings, err, errlen);
    if (!conf)
        goto fail;
    if (o->client_id && o->client_id[0] &&
        kafka_conf_set(conf, "client.id", o->client_id, err, errlen) != KAFKA_OK)
        goto fail;
    if (kafka_conf_consumer_defaults(conf, o->settings, err, errlen) != KAFKA_OK)
        goto fail;
    for (size_t i = 0; i < o->extra_count; i++) {
        if (kafka_conf_set(conf, o->extra_names[i], o->extra_values[i], err, errlen) != KAFKA_OK)
            goto fail;
    }
    /* Able to fetch the largest record of any pipeline topic (issue 8 item 15). */
    if (kafka_conf_consumer_sizes(conf, o->settings, err, errlen) != KAFKA_OK)
        goto fail;
    {
        char buf[32];
        size_t size = sizeof buf;
        char *end = NULL;
        if (rd_kafka_conf_get(conf, "max.poll.interval.ms", buf, &size) == RD_KAFKA_CONF_OK) {
            errno = 0;
            long long v = strtoll(buf, &end, 10);
            if (errno == 0 && end != buf && *end == '\0')
                c->max_poll_interval_ms = v;
        }
    }
    /* Forced last (reliability rule 1). */
    static const char *const forced[][2] = {
        {"enable.auto.offset.store", "false"},
        {"enable.auto.commit", "true"},
        {"auto.offset.reset", "earliest"},
        {"partition.assignment.strategy", "range"},
    };
    for (size_t i = 0; i < sizeof forced / sizeof forced[0]; i++) {
        if (kafka_conf_set(conf, forced[i][0], forced[i][1], err, errlen) != KAFKA_OK)
            goto fail;
    }
    if (kafka_conf_set(conf, "group.id", o->group_id, err, errlen) != KAFKA_OK)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);
    char rkerr[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rkerr, sizeof rkerr);
    if (!c->rk) {
        errbuf_set(err, errlen, "cannot create the Kafka consumer: %s", rkerr);
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(c->rk);
    subs = rd_kafka_topic_partition_list_new((int)o->topic_count);
    for (size_t i = 0; i < o->topic_count; i++)
        rd_kafka_topic_partition_list_add(subs, o->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (e) {
        errbuf_set(err, errlen, "Kafka consumer group %s could not subscribe: %s", o->group_id,
                   rd_kafka_err2str(e));
        goto fail;
    }
    return c;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c->rk) {
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    kafka_offsets_free(c->offsets);
    pthread_cond_destroy(&c->settled);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return NULL;
}

rd_kafka_t *kafka_consumer_handle(kafka_consumer_t *c) { return c ? c->rk : NULL; }

bool kafka_consumer_fatal(kafka_consumer_t *c, char *err, size_t errlen)
{
    if (!c)
        return false;
    char buf[512];
    rd_kafka_resp_err_t e = rd_kafka_fatal_error(c->rk, buf, sizeof buf);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && !atomic_load(&c->fatal))
        return false;
    if (e)
        errbuf_set(err, errlen, "Kafka consumer fatal error %s: %s", rd_kafka_err2name(e), buf);
    else
        errbuf_set(err, errlen, "Kafka consumer fatal error");
    return true;
}

/* Registers the message and turns it into a record; destroys the message. NULL when the
 * partition is not assigned any more (dropped) or on allocation failure. */
static kafka_record_t *hand_out(kafka_consumer_t *c, rd_kafka_message_t *m)
{
    record_box_t *box = record_copy(m);
    if (!box) {
        log_msg(LOG_ERROR, "kafka_consumer_nomem", "topic=%s partition=%" PRId32
                " offset=%" PRId64, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
        rd_kafka_message_destroy(m);
        return NULL;
    }
    rd_kafka_message_destroy(m);
    pthread_mutex_lock(&c->lock);
    /* After a seek back to a released record, the records after it come again: those being
     * handled or done are not handed out twice. */
    bool redundant = kafka_offsets_redundant(c->offsets, box->rec.topic, box->rec.partition,
                                             box->rec.offset) != 0;
    box->generation = redundant ? 0
                                : kafka_offsets_begin(c->offsets, box->rec.topic,
                                                      box->rec.partition, box->rec.offset);
    if (box->generation)
        c->outstanding++;
    pthread_mutex_unlock(&c->lock);
    if (!box->generation) {
        log_msg(LOG_DEBUG, "kafka_record_dropped", "topic=%s partition=%" PRId32
                " offset=%" PRId64 " reason=%s", box->rec.topic, box->rec.partition,
                box->rec.offset, redundant ? "already_handed_out" : "not_assigned");
        free(box);
        return NULL;
    }
    atomic_store(&c->last_record_ms, clock_mono_ms());
    return &box->rec;
}

/* Handles one message from librdkafka: a record of a paused partition or any record while
 * `hold_all` is pushed to the held queue; errors are logged (and remembered: fatal,
 * max.poll.interval.ms exceeded). Returns the record to hand out, or NULL (*stop set when
 * poll() must return NULL now). */
static kafka_record_t *take_message(kafka_consumer_t *c, rd_kafka_message_t *m, bool hold_all,
                                    bool *stop)
{
    *stop = false;
    if (m->err) {
        rd_kafka_resp_err_t e = m->err;
        if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            return NULL;
        }
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char buf[512];
            rd_kafka_resp_err_t orig = rd_kafka_fatal_error(c->rk, buf, sizeof buf);
            char q[600];
            log_msg(LOG_ERROR, "kafka_consumer_fatal", "error=%s message=%s",
                    rd_kafka_err2name(orig), log_quote(q, sizeof q, buf));
            atomic_store(&c->fatal, true);
        } else {
            /* The revoke that follows (if not served already) is a loss. Only while something
             * is assigned: a flag raised after that revoke would outlive it. */
            if (e == RD_KAFKA_RESP_ERR__MAX_POLL_EXCEEDED && kafka_consumer_assigned_count(c) > 0)
                atomic_store(&c->evicted, true);
            char q[600];
            log_msg(LOG_WARN, "kafka_consume_error", "topic=%s partition=%" PRId32
                    " error=%s message=%s", m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                    m->partition, rd_kafka_err2name(e),
                    log_quote(q, sizeof q, rd_kafka_message_errstr(m)));
        }
        rd_kafka_message_destroy(m);
        *stop = true;
        return NULL;
    }
    if (hold_all || is_paused(c, rd_kafka_topic_name(m->rkt), m->partition)) {
        held_push(c, m);
        return NULL;
    }
    return hand_out(c, m);
}

static kafka_record_t *poll_inner(kafka_consumer_t *c, int timeout_ms)
{
    seeks_run(c);
    bool stop = false;
    while (c->held_head) {
        /* Keep librdkafka's own poll clock (max.poll.interval.ms) and rebalances served while
         * held records are handed out without a broker fetch: one non-blocking poll first,
         * whose message (if any) queues behind the held ones. */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 0);
        if (m) {
            take_message(c, m, true, &stop);
            if (stop)
                return NULL;
        }
        rd_kafka_message_t *ready = held_take_ready(c);
        if (!ready)
            break;
        kafka_record_t *r = hand_out(c, ready);
        if (r)
            return r;
    }
    int64_t deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 0 ? (int)left : 0);
        if (!m)
            return NULL;
        kafka_record_t *r = take_message(c, m, false, &stop);
        if (r)
            return r;
        if (stop || atomic_load(&c->fatal) || clock_mono_ms() >= deadline)
            return NULL;
    }
}

kafka_record_t *kafka_consumer_poll(kafka_consumer_t *c, int timeout_ms)
{
    if (!c || atomic_load(&c->fatal))
        return NULL;
    /* A gap longer than max.poll.interval.ms got this member thrown out: a revoke served by
     * this poll is a lost assignment, even when librdkafka presents it as a plain one. */
    c->gap_exceeded = poll_gap_exceeded(c);
    if (c->gap_exceeded)
        log_msg(LOG_WARN, "kafka_poll_gap_exceeded", "gap_ms=%" PRId64 " max_poll_interval_ms=%"
                PRId64, clock_mono_ms() - atomic_load(&c->last_poll_ms), c->max_poll_interval_ms);
    atomic_store(&c->in_poll, true);
    kafka_record_t *r = poll_inner(c, timeout_ms);
    atomic_store(&c->last_poll_ms, clock_mono_ms());
    atomic_store(&c->in_poll, false);
    c->gap_exceeded = false;
    return r;
}

int kafka_consumer_done(kafka_consumer_t *c, kafka_record_t *rec)
{
    if (!c || !rec)
        return KAFKA_ERR_INVALID;
    record_box_t *box = (record_box_t *)rec;
    int rc = KAFKA_OK;
    /* Thrown out of the group while this record was handled: its partition belongs to another
     * member already; storing would report it done here while the new owner redoes it. */
    bool lost = assignment_lost(c);
    pthread_mutex_lock(&c->lock);
    int64_t store = -1;
    int f = lost ? kafka_offsets_abandon(c->offsets, rec->topic, rec->partition, box->generation,
                                         rec->offset)
                 : kafka_offsets_finish(c->offsets, rec->topic, rec->partition, box->generation,
                                        rec->offset, &store);
    if (lost) {
        rc = KAFKA_ERR_STATE;
    } else if (f == 1) {
        /* Under the lock so a concurrent revoke cannot slip between the check and the store. */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rec->topic, rec->partition)->offset = store;
        rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            e = l->elems[0].err;
        rd_kafka_topic_partition_list_destroy(l);
        if (e == RD_KAFKA_RESP_ERR__STATE) {
            rc = KAFKA_ERR_STATE;
        } else if (e) {
            log_msg(LOG_ERROR, "kafka_offset_store_failed", "topic=%s partition=%" PRId32
                    " offset=%" PRId64 " error=%s", rec->topic, rec->partition, store,
                    rd_kafka_err2name(e));
            rc = KAFKA_ERR_BROKER;
        }
    } else if (f == KAFKA_ERR_STATE) {
        rc = KAFKA_ERR_STATE;
    } else if (f < 0) {
        rc = KAFKA_ERR_INVALID;
    }
    if (c->outstanding > 0)
        c->outstanding--;
    pthread_cond_broadcast(&c->settled);
    pthread_mutex_unlock(&c->lock);
    if (rc == KAFKA_ERR_STATE)
        log_msg(lost ? LOG_WARN : LOG_INFO, "kafka_record_stale", "topic=%s partition=%" PRId32
                " offset=%" PRId64 " reason=%s", rec->topic, rec->partition, rec->offset,
                lost ? "assignment_lost" : "partition_revoked");
    free(box);
    return rc;
}

void kafka_consumer_release(kafka_consumer_t *c, kafka_record_t *rec)
{
    if (!rec)
        return;
    if (c) {
        record_box_t *box = (record_box_t *)rec;
        pthread_mutex_lock(&c->lock);
        int a = kafka_offsets_abandon(c->offsets, rec->topic, rec->partition, box->generation,
                                      rec->offset);
        /* Fetch it again (seek on the next poll) instead of blocking the partition until the
         * next rebalance (issue 8 item 8). */
        if (a == KAFKA_OK &&
            !seek_add(c, rec->topic, rec->partition, rec->offset, box->generation))
            log_msg(LOG_ERROR, "kafka_consumer_nomem", "topic=%s partition=%" PRId32
                    " offset=%" PRId64 " reason=seek_after_release", rec->topic, rec->partition,
                    rec->offset);
        if (c->outstanding > 0)
            c->outstanding--;
        pthread_cond_broadcast(&c->settled);
        pthread_mutex_unlock(&c->lock);
    }
    free(rec);
}

/* ---- pause / resume ------------------------------------------------------------------------- */

/* Pauses in librdkafka and remembers it (resuming is resume_quietly()). */
static int pause_list(kafka_consumer_t *c, rd_kafka_topic_partition_list_t *l)
{
    rd_kafka_resp_err_t e = rd_kafka_pause_partitions(c->rk, l);
    for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < l->cnt; i++)
        e = l->elems[i].err;
    if (e) {
        log_msg(LOG_WARN, "kafka_pause_failed", "error=%s", rd_kafka_err2name(e));
        return KAFKA_ERR_BROKER;
    }
    for (int i = 0; i < l->cnt; i++) {
        if (!tp_get(&c->paused, l->elems[i].topic, l->elems[i].partition))
            return KAFKA_ERR_NOMEM;
    }
    return KAFKA_OK;
}

static int pause_resume_one(kafka_consumer_t *c, const char *topic, int32_t partition, bool pause)
{
    if (!c || !topic)
        return KAFKA_ERR_INVALID;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int rc = KAFKA_OK;
    if (pause) {
        pthread_mutex_lock(&c->lock);
        bool assigned = kafka_offsets_is_assigned(c->offsets, topic, partition);
        pthread_mutex_unlock(&c->lock);
        rc = assigned ? pause_list(c, l) : KAFKA_ERR_STATE;
    } else {
        /* Always passed through, assigned or not (issue 8 item 2): librdkafka may hold a pause
         * of this partition from before a rebalance. */
        resume_quietly(c, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int kafka_consumer_pause(kafka_consumer_t *c, const char *topic, int32_t partition)
{
    return pause_resume_one(c, topic, partition, true);
}

int kafka_consumer_resume(kafka_consumer_t *c, const char *topic, int32_t partition)
{
    return pause_resume_one(c, topic, partition, false);
}

static int pause_resume_all(kafka_consumer_t *c, bool pause)
{
    if (!c)
        return KAFKA_ERR_INVALID;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(c->rk, &l);
    if (e) {
        if (l)
            rd_kafka_topic_partition_list_destroy(l);
        return KAFKA_ERR_BROKER;
    }
    int rc = KAFKA_OK;
    if (pause) {
        if (l->cnt > 0)
            rc = pause_list(c, l);
    } else {
        /* The assignment plus whatever we still think is paused (passed through as well). */
        for (size_t i = 0; i < c->paused.count; i++)
            rd_kafka_topic_partition_list_add(l, c->paused.items[i].topic,
                                              c->paused.items[i].partition);
        resume_quietly(c, l);
        tp_clear(&c->paused);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int kafka_consumer_pause_all(kafka_consumer_t *c) { return pause_resume_all(c, true); }
int kafka_consumer_resume_all(kafka_consumer_t *c) { return pause_resume_all(c, false); }

/* ---- state ---------------------------------------------------------------------------------- */

int kafka_consumer_commit(kafka_consumer_t *c, char *err, size_t errlen)
{
    if (!c)
        return KAFKA_ERR_INVALID;
    if (assignment_lost(c)) {
        errbuf_set(err, errlen, "Kafka offset commit skipped: this member was thrown out of its "
                                "group (max.poll.interval.ms or session timeout); its "
                                "partitions belong to another member");
        return KAFKA_ERR_STATE;
    }
    return commit_sync(c, err, errlen);
}

int kafka_consumer_lag(kafka_consumer_t *c, kafka_lag_t *out, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!c || !n || (max > 0 && !out))
        return KAFKA_ERR_INVALID;
    /* Snapshot the assignment (our tracker: no request to librdkafka's main thread). */
    pthread_mutex_lock(&c->lock);
    size_t count = kafka_offsets_count(c->offsets);
    size_t k = 0;
    for (size_t i = 0; i < count && k < max; i++) {
        const char *topic = NULL;
        int32_t partition = 0;
        if (kafka_offsets_at(c->offsets, i, &topic, &partition) != KAFKA_OK)
            continue;
        kafka_lag_t *l = &out[k];
        if (snprintf(l->topic, sizeof l->topic, "%s", topic) >= (int)sizeof l->topic)
            continue;
        l->partition = partition;
        l->position = kafka_offsets_position(c->offsets, topic, partition);
        k++;
    }
    pthread_mutex_unlock(&c->lock);
    if (k == 0)
        return KAFKA_OK;
    rd_kafka_topic_partition_list_t *pl = rd_kafka_topic_partition_list_new((int)k);
    for (size_t i = 0; i < k; i++)
        rd_kafka_topic_partition_list_add(pl, out[i].topic, out[i].partition);
    /* Both answer from librdkafka's local state: no broker round trip. */
    rd_kafka_resp_err_t pe = rd_kafka_position(c->rk, pl);
    for (size_t i = 0; i < k; i++) {
        kafka_lag_t *l = &out[i];
        int64_t low = RD_KAFKA_OFFSET_INVALID, high = RD_KAFKA_OFFSET_INVALID;
        if (rd_kafka_get_watermark_offsets(c->rk, l->topic, l->partition, &low, &high) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            high < 0)
            high = -1;
        int64_t fetched = pe == RD_KAFKA_RESP_ERR_NO_ERROR && pl->elems[i].err == 0
                              ? pl->elems[i].offset
                              : RD_KAFKA_OFFSET_INVALID;
        if (fetched >= 0)
            l->position = fetched; /* last record librdkafka gave us + 1 */
        else if (l->position < 0)
            l->position = -1;      /* nothing consumed yet in this assignment */
        l->high = high;
        l->lag = high >= 0 && l->position >= 0 ? (high > l->position ? high - l->position : 0)
                                               : -1;
    }
    rd_kafka_topic_partition_list_destroy(pl);
    *n = k;
    return KAFKA_OK;
}

size_t kafka_consumer_in_flight(kafka_consumer_t *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    size_t n = c->outstanding;
    pthread_mutex_unlock(&c->lock);
    return n;
}

int64_t kafka_consumer_idle_ms(kafka_consumer_t *c)
{
    if (!c)
        return 0;
    return clock_mono_ms() - atomic_load(&c->last_record_ms);
}

size_t kafka_consumer_assigned_count(kafka_consumer_t *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&c->lock);
    size_t n = kafka_offsets_count(c->offsets);
    pthread_mutex_unlock(&c->lock);
    return n;
}

int kafka_consumer_close(kafka_consumer_t *c, char *err, size_t errlen)
{
    if (!c)
        return KAFKA_OK;
    int rc = KAFKA_OK;
    size_t left = kafka_consumer_in_flight(c);
    if (left > 0)
        log_msg(LOG_WARN, "kafka_consumer_close_in_flight", "records=%zu", left);
    /* Every message object must be gone before close/destroy, or destroy hangs (rule 6). */
    held_drop(c, NULL, 0);
    bool fatal = kafka_consumer_fatal(c, NULL, 0);
    if (!fatal && kafka_consumer_assigned_count(c) > 0 && !assignment_lost(c))
        rc = commit_sync(c, err, errlen);
    /* Close runs the final revoke through rebalance_cb; records still out stay stale. */
    int saved_wait = c->revoke_wait_ms;
    if (left > 0)
        c->revoke_wait_ms = saved_wait < 0 || saved_wait > 2000 ? 2000 : saved_wait;
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e && rc == KAFKA_OK && !fatal) {
        errbuf_set(err, errlen, "Kafka consumer close failed: %s", rd_kafka_err2str(e));
        rc = KAFKA_ERR_BROKER;
    }
    held_drop(c, NULL, 0);
    rd_kafka_destroy(c->rk);
    kafka_offsets_free(c->offsets);
    tp_free(&c->paused);
    tp_free(&c->seeks);
    pthread_cond_destroy(&c->settled);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return rc;
}
