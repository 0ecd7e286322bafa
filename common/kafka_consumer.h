/* kafka_consumer: at-least-once consumer for the workers (SPEC §4, reliability rules 1-7).
 *
 * Configuration: group id from the caller; enable.auto.offset.store=false,
 * enable.auto.commit=true, auto.offset.reset=earliest, partition.assignment.strategy=range
 * (eager; cooperative-sticky is broken in Debian's librdkafka 2.0.2). Passthrough settings and
 * the caller's extra properties are applied first; those four are then forced.
 *
 * Records: kafka_consumer_poll() hands out a kafka_record_t (a copy: no librdkafka object is
 * held) that the caller owns until it passes it to kafka_consumer_done() (terminal outcome
 * reached: delivered, skipped, dedup hit, or DLQ copy CONFIRMED) or kafka_consumer_release()
 * (abandoned: it will be re-delivered to whoever owns the partition next). Records may finish
 * out of order; per partition only the highest CONTIGUOUS finished offset is stored
 * (rd_kafka_offsets_store with offset + 1) and auto-commit sends it.
 *
 * Rebalance (eager): on revoke, records of the revoked partitions stop being handed out, their
 * pauses are lifted, the caller's on_revoke hook runs (it may finish or abandon in-flight
 * work), then the wrapper waits (bounded by revoke_wait_ms) until in-flight records of those
 * partitions reach zero, stores and synchronously commits what is finished, and unassigns.
 * Records of a revoked partition finished later are not stored (done() returns
 * KAFKA_ERR_STATE) and are freed normally. On assign, trackers start fresh and the partitions
 * are resumed (librdkafka 2.0.2 keeps a pause across an eager rebalance).
 *
 * Lost assignment: when this member was thrown out of the group — librdkafka's
 * rd_kafka_assignment_lost(), its MAX_POLL_EXCEEDED consumer error, or a gap between two
 * poll() calls longer than max.poll.interval.ms (librdkafka 2.0.2 may present such an
 * eviction as a plain revoke) — the revoke is treated as lost: no wait, no commit, the hook
 * gets lost = true; and done() returns KAFKA_ERR_STATE without storing from the moment the
 * loss is known (even before the revoke is served), until the next assignment.
 *
 * Record size: the consumer fetches records up to the DLQ's max.message.bytes
 * (kafka_conf_consumer_sizes()).
 *
 * Thread-safety: kafka_consumer_poll(), _pause*(), _resume*(), _commit() and _close() must be
 * called from one thread (the poll thread: rebalance callbacks run inside poll() and close()).
 * kafka_consumer_done(), _release(), _in_flight(), _idle_ms(), _lag() and _fatal() may be called
 * from any thread (worker threads finishing records). on_revoke/on_assign run on the poll thread.
 */
#ifndef PIPELINE_KAFKA_CONSUMER_H
#define PIPELINE_KAFKA_CONSUMER_H

#include "kafka.h"

typedef struct kafka_consumer kafka_consumer_t;

/* Called on the poll thread when partitions are about to be revoked (or were lost), before
 * the wrapper waits for their in-flight records. `lost` is true when the assignment was lost
 * (nothing will be committed). The list is borrowed for the call. A single-threaded worker
 * uses it to drive its in-flight work to an end (done or release); a multi-threaded one may
 * leave it NULL and rely on the bounded wait. */
typedef void (*kafka_revoke_cb)(void *opaque, kafka_consumer_t *c,
                                const rd_kafka_topic_partition_list_t *partitions, bool lost);

/* Called on the poll thread after partitions were assigned (trackers already reset). */
typedef void (*kafka_assign_cb)(void *opaque, kafka_consumer_t *c,
                                const rd_kafka_topic_partition_list_t *partitions);

typedef struct kafka_consumer_opts {
    const kafka_settings_t *settings; /* required (borrowed for the call) */
    const char *group_id;             /* required: TOPIC_PREFIX + binary name (SPEC §4) */
    const char *client_id;            /* optional (binary name) */
    const char *const *topics;        /* required: topic names to subscribe to */
    size_t topic_count;
    /* Extra properties applied after the passthrough and before the forced four (tests set
     * session.timeout.ms=6000, heartbeat.interval.ms=500). May be NULL when extra_count == 0. */
    const char *const *extra_names;
    const char *const *extra_values;
    size_t extra_count;
    int revoke_wait_ms;         /* bound on the in-flight wait at revoke; 0 = 10000, <0 = none */
    kafka_revoke_cb on_revoke;  /* optional */
    kafka_assign_cb on_assign;  /* optional */
    void *opaque;               /* passed to the hooks */
} kafka_consumer_opts_t;

/* Creates the consumer and subscribes. Returns NULL with err naming the property at fault
 * (never a secret value) or the failure (subscribe refused). */
kafka_consumer_t *kafka_consumer_new(const kafka_consumer_opts_t *o, char *err, size_t errlen);

/* Waits up to timeout_ms for the next record and hands it out (the caller owns it until
 * done()/release()). Serves rebalances meanwhile. Returns NULL on timeout, after a consumer
 * error (logged: event=kafka_consume_error), or when a fatal error happened (check
 * kafka_consumer_fatal()). Keep calling it while waiting on retries: a gap longer than
 * max.poll.interval.ms (300 s) gets this member thrown out of the group. Records of paused
 * partitions are held back and handed out after resume. */
kafka_record_t *kafka_consumer_poll(kafka_consumer_t *c, int timeout_ms);

/* The record reached a terminal outcome. Frees `rec` (always, whatever is returned).
 * Returns 0 (finished; stored when the contiguous position advanced), KAFKA_ERR_STATE when its
 * partition was revoked meanwhile or this member's assignment is lost — thrown out of the
 * group because poll() was not called within max.poll.interval.ms, or librdkafka reports the
 * assignment lost (not stored: the new owner re-processes it; not an error for the worker) —,
 * or KAFKA_ERR_BROKER when rd_kafka_offsets_store() failed otherwise (logged). */
int kafka_consumer_done(kafka_consumer_t *c, kafka_record_t *rec);

/* Gives a record back without a terminal outcome (shutdown mid-work, a 401 that stops the
 * worker, a handler that cannot finish it now): frees it. Its offset is not stored and later
 * finished offsets of its partition are not stored past it until it is finished. The next
 * poll() seeks its partition back to it (SPEC §4 "Consumer hygiene"), so it is handed out
 * again soon, by this member, instead of blocking the partition until the next rebalance;
 * records after it that are in flight or done are not handed out a second time, those held
 * back or not yet handed out come again in order. */
void kafka_consumer_release(kafka_consumer_t *c, kafka_record_t *rec);

/* Frees a record without touching any consumer (only for records left over after close). */
void kafka_record_free(kafka_record_t *rec);

/* Pauses/resumes fetching of one partition (a worker waiting on a retry for it keeps calling
 * poll() so the group does not evict it). pause: 0, KAFKA_ERR_STATE when the partition is not
 * assigned, KAFKA_ERR_BROKER when librdkafka refused. resume: always passed through to
 * librdkafka, assigned or not (a pause can outlive an eager rebalance inside librdkafka 2.0.2),
 * and returns 0. Pauses are cleared by a rebalance: the wrapper resumes every partition when
 * it is revoked and again when it is assigned (SPEC §4 "Consumer hygiene"). */
int kafka_consumer_pause(kafka_consumer_t *c, const char *topic, int32_t partition);
int kafka_consumer_resume(kafka_consumer_t *c, const char *topic, int32_t partition);

/* Pause/resume the whole current assignment (resume_all also every partition still recorded
 * as paused). pause_all: as pause; resume_all: 0, or KAFKA_ERR_BROKER when the assignment
 * could not be read. */
int kafka_consumer_pause_all(kafka_consumer_t *c);
int kafka_consumer_resume_all(kafka_consumer_t *c);

/* Synchronously commits the stored offsets of the current assignment. Returns 0 (also when
 * nothing was stored), KAFKA_ERR_STATE when this member was thrown out of the group (nothing
 * sent), or KAFKA_ERR_BROKER with err. */
int kafka_consumer_commit(kafka_consumer_t *c, char *err, size_t errlen);

/* Consumer lag of one assigned partition (for worker_consumer_lag{topic,partition}). */
typedef struct kafka_lag {
    char topic[KAFKA_TOPIC_NAME_MAX];
    int32_t partition;
    int64_t high;     /* high watermark seen by the last fetch; -1 unknown (nothing fetched yet) */
    int64_t position; /* next offset of this member: rd_kafka_position() (last record librdkafka
                       * returned + 1; held-back records of paused partitions count as
                       * returned), else the stored position; -1 unknown */
    int64_t lag;      /* high - position (≥ 0), or -1 when either is unknown */
} kafka_lag_t;

/* Fills out[0..max) with the lag of each partition currently assigned (at most `max`; the
 * number of assigned partitions is kafka_consumer_assigned_count()) and sets *n to how many
 * were written. Cheap: reads librdkafka's cached watermarks (rd_kafka_get_watermark_offsets,
 * refreshed by every fetch response) and positions (rd_kafka_position); no broker request, no
 * blocking; fine once per loop turn or per metrics scrape. Any thread.
 * Returns 0, or KAFKA_ERR_INVALID (c or n NULL, out NULL with max > 0). */
int kafka_consumer_lag(kafka_consumer_t *c, kafka_lag_t *out, size_t max, size_t *n);

/* Records handed out and not yet done/released (all partitions). For --idle-exit. */
size_t kafka_consumer_in_flight(kafka_consumer_t *c);

/* Milliseconds since the last record was handed out (since creation when none yet). For
 * --idle-exit: idle when in_flight == 0 and idle_ms >= the limit. */
int64_t kafka_consumer_idle_ms(kafka_consumer_t *c);

/* Number of partitions currently assigned. */
size_t kafka_consumer_assigned_count(kafka_consumer_t *c);

/* True once librdkafka raised a fatal error (exit 1); err gets its text (may be NULL). */
bool kafka_consumer_fatal(kafka_consumer_t *c, char *err, size_t errlen);

/* The underlying handle (borrowed; lag queries, metrics). Do not poll or assign through it. */
rd_kafka_t *kafka_consumer_handle(kafka_consumer_t *c);

/* Shuts down: stores and synchronously commits finished offsets, rd_kafka_consumer_close()
 * (whose final revoke runs the hooks), destroys everything. Records still handed out should be
 * released first; any left over are counted (logged) and must then be freed with
 * kafka_record_free(). NULL is a no-op. Returns 0, or KAFKA_ERR_BROKER when the final commit or
 * the close failed (err says why; everything is destroyed anyway). */
int kafka_consumer_close(kafka_consumer_t *c, char *err, size_t errlen);

#endif
