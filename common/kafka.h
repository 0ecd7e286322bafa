/* kafka_: librdkafka configuration, topic names and creation, and an idempotent producer with
 * delivery tracking (SPEC §2, reference/reliability-rules.md rules 8-10).
 *
 * The consumer wrapper lives in kafka_consumer.h, the dead-letter writer in kafka_dlq.h, the
 * pure contiguous-offset logic in kafka_offsets.h. This header holds what they share: status
 * codes, client settings, the record type handed to workers, and the producer.
 *
 * librdkafka is Debian's 2.0.2: no rd_kafka_offset_store_message(), and cooperative-sticky is
 * broken (librdkafka #4312, #4527), so the consumer uses the eager `range` assignor.
 *
 * Ownership: every *_new() result is freed by its matching *_free()/close(). Strings passed in
 * are copied unless a comment says "borrowed". Nothing here keeps a pointer to caller memory
 * after the call returns, except kafka_settings_t (borrowed for the call only).
 *
 * Secrets: a property whose name contains "password" or "secret" (and ssl.key.pem,
 * sasl.oauthbearer.config) never has its value printed, in errors or in logs.
 *
 * Thread-safety: a kafka_producer_t may be used from several threads (librdkafka's producer is
 * thread-safe; delivery callbacks run on whichever thread calls kafka_producer_poll(),
 * kafka_producer_flush() or kafka_batch_wait()). A kafka_batch_t may be waited on by one thread
 * at a time; its counters may be read from any thread.
 */
#ifndef PIPELINE_KAFKA_H
#define PIPELINE_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* ---- status codes ---------------------------------------------------------------------------
 * 0 = ok; negative = failure. The error buffer (when given) holds a sentence for an operator. */
typedef enum {
    KAFKA_OK = 0,
    KAFKA_ERR_CONFIG = -1,   /* a property was rejected; err names it (never a secret value) */
    KAFKA_ERR_BROKER = -2,   /* cluster unreachable, or an Admin/metadata request failed */
    KAFKA_ERR_TIMEOUT = -3,  /* the wait ended with work still pending */
    KAFKA_ERR_DELIVERY = -4, /* at least one message got a failed delivery report */
    KAFKA_ERR_FATAL = -5,    /* librdkafka raised a fatal error (idempotence broken): exit 1 */
    KAFKA_ERR_STATE = -6,    /* partition no longer assigned (offset not stored), or misuse */
    KAFKA_ERR_NOMEM = -7,
    KAFKA_ERR_INVALID = -8, /* bad argument (NULL, name too long, unknown entity) */
} kafka_status_t;

/* Short constant name of a status ("ok", "config", "timeout", ...). */
const char *kafka_status_name(int status);

/* ---- client settings ------------------------------------------------------------------------ */

/* What every client is built from. All pointers are borrowed for the duration of the call.
 * names/values: the KAFKA_<NAME> passthrough of SPEC §6, already translated by config_ to
 * librdkafka names ("security.protocol" = "SASL_SSL"); `count` pairs, may be 0. */
typedef struct kafka_settings {
    const char *bootstrap_servers;   /* required, e.g. "127.0.0.1:19092" */
    const char *const *names;        /* may be NULL when count == 0 */
    const char *const *values;
    size_t count;
    /* KAFKA_MAX_MESSAGE_BYTES (config_t.kafka_max_message_bytes): the largest record batch a
     * pipeline topic accepts (its `max.message.bytes`; the DLQ gets KAFKA_DLQ_EXTRA_BYTES more).
     * Producers, consumers and kafka_topics_ensure() size themselves from it.
     * 0 (or negative) = KAFKA_MAX_MESSAGE_BYTES_DEFAULT, so a zeroed struct is safe. */
    int64_t max_message_bytes;
} kafka_settings_t;

/* The settings of a loaded configuration: KAFKA_BOOTSTRAP_SERVERS, the KAFKA_* passthrough and
 * KAFKA_MAX_MESSAGE_BYTES. Everything is borrowed from cfg (valid until config_free()). */
kafka_settings_t kafka_settings_from_config(const config_t *cfg);

#define KAFKA_MAX_MESSAGE_BYTES_DEFAULT ((int64_t)8 * 1024 * 1024) /* SPEC §6: 8 MiB */
/* The consumer's prefetch bound (kafka_conf_consumer_sizes()): librdkafka's defaults are 64 MiB
 * and 100000 messages per partition. */
#define KAFKA_PREFETCH_KBYTES ((int64_t)1024)
#define KAFKA_PREFETCH_MESSAGES ((int64_t)1000)
#define KAFKA_DLQ_EXTRA_BYTES ((int64_t)64 * 1024) /* room for a dead letter's headers */
/* Kafka's record-batch framing (61-byte v2 header) that the broker counts against
 * max.message.bytes and librdkafka's local message.max.bytes check does not: a producer's
 * message.max.bytes is the topic's limit minus this, so every record librdkafka accepts also
 * fits the topic (never a "Message size too large" delivery failure). Uncompressed batches. */
#define KAFKA_BATCH_RESERVE_BYTES ((int64_t)128)

/* Topic-level max.message.bytes for topic `id` under settings `s` (s may be NULL: defaults):
 * s->max_message_bytes (or the default), plus KAFKA_DLQ_EXTRA_BYTES for KAFKA_TOPIC_DLQ. */
int64_t kafka_topic_max_message_bytes(const kafka_settings_t *s, int id);

/* Largest record (key + value + headers as librdkafka measures them) that a producer made by
 * kafka_producer_new() (dlq false) or kafka_producer_new_dlq() (dlq true) accepts: the topic
 * limit minus KAFKA_BATCH_RESERVE_BYTES minus librdkafka's per-record overhead. A record over it
 * is refused by kafka_producer_send*() with KAFKA_ERR_INVALID (message too large) before it is
 * queued; producers may compare against it first to skip `too_large` records (issue 8 item 15). */
int64_t kafka_record_max_bytes(const kafka_settings_t *s, bool dlq);

/* True when the value of property `name` must never be printed ("password"/"secret" anywhere
 * in the name, case-insensitive, plus ssl.key.pem and sasl.oauthbearer.config). */
bool kafka_property_is_secret(const char *name);

/* Sets one property on `conf`. On failure returns KAFKA_ERR_CONFIG and writes into err e.g.
 * `Kafka property "socket.timeout.ms": Configuration property "socket.timeout.ms" value 5 is
 * outside allowed range 10..300000` — for a secret property only the name and "(value hidden)"
 * appear. `conf` is left usable either way. */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                   size_t errlen);

/* Builds a new configuration: bootstrap.servers, then each passthrough pair in order, with
 * librdkafka's log and error callbacks routed to log_ (event=kafka_log / kafka_error, fields
 * facility, client, message). Returns a conf the caller owns (rd_kafka_new() takes it over, or
 * rd_kafka_conf_destroy() it), or NULL with err naming the property at fault. */
rd_kafka_conf_t *kafka_conf_new(const char *bootstrap_servers, const char *const *names,
                                const char *const *values, size_t n, char *err, size_t errlen);

/* Same from a settings struct. */
rd_kafka_conf_t *kafka_conf_from_settings(const kafka_settings_t *s, char *err, size_t errlen);

/* Makes a consumer configuration able to fetch the largest record of any pipeline topic
 * (kafka_topic_max_message_bytes() of the DLQ): raises max.partition.fetch.bytes,
 * fetch.max.bytes and receive.message.max.bytes when they are below it (never lowers a
 * passthrough value). Also bounds the prefetch (issue 13: the worker's RSS grew with the
 * backlog): queued.max.messages.kbytes = KAFKA_PREFETCH_KBYTES and queued.min.messages =
 * KAFKA_PREFETCH_MESSAGES unless the passthrough sets them (librdkafka then lowers a default
 * fetch.max.bytes to the queue size, at least 1 MB; the largest record is still fetched: the
 * broker returns a first batch larger than the fetch limits). kafka_consumer_new() calls it.
 * Returns 0 or KAFKA_ERR_CONFIG with err. */
int kafka_conf_consumer_sizes(rd_kafka_conf_t *conf, const kafka_settings_t *s, char *err,
                              size_t errlen);

/* librdkafka's heartbeat.interval.ms is 3000: a group member learns of a rebalance (an instance
 * joining or leaving) only at its next heartbeat, and the joining instances wait for it, idle
 * (measured, scenario A with 4 worker instances started together: the first ticket 2.6 s after
 * the start at 3000 ms, 1.3 s at 1000 ms). One heartbeat a second per consumer is cheap. */
#define KAFKA_HEARTBEAT_INTERVAL_MS ((int64_t)1000)

/* The consumer settings of the pipeline that differ from librdkafka's, each unless the
 * passthrough sets it: heartbeat.interval.ms = KAFKA_HEARTBEAT_INTERVAL_MS (only when
 * session.timeout.ms is at least 3 times that: a heartbeat must stay well inside the session).
 * kafka_consumer_new() calls it before its own extra properties (which may override it).
 * Returns 0 or KAFKA_ERR_CONFIG with err. */
int kafka_conf_consumer_defaults(rd_kafka_conf_t *conf, const kafka_settings_t *s, char *err,
                                 size_t errlen);

/* ---- topics ----------------------------------------------------------------------------------- */

typedef enum {
    KAFKA_TOPIC_PLOOMES_CONTACTS = 0, /* "ploomes.contacts" */
    KAFKA_TOPIC_PLOOMES_TASKS,        /* "ploomes.tasks" */
    KAFKA_TOPIC_PLOOMES_INTERACTIONS, /* "ploomes.interactions" */
    KAFKA_TOPIC_MILVUS_CLIENTS,       /* "milvus.clients" */
    KAFKA_TOPIC_DLQ,                  /* "pipeline.dlq" */
    KAFKA_TOPIC_COUNT
} kafka_topic_id_t;

#define KAFKA_TOPIC_NAME_MAX 250 /* Kafka's limit is 249 characters */

/* Unprefixed name of a topic ("ploomes.contacts"), or NULL for an out-of-range id. */
const char *kafka_topic_base(kafka_topic_id_t id);

/* Writes TOPIC_PREFIX (verbatim, may be NULL/empty) + base name into buf.
 * Returns 0, or KAFKA_ERR_INVALID when id is out of range or the name does not fit `size` /
 * exceeds Kafka's 249 characters. */
int kafka_topic_name(char *buf, size_t size, const char *prefix, kafka_topic_id_t id);

/* Maps SPEC §2's header pair (source, entity) to its topic: ("ploomes","contact") → CONTACTS,
 * ("ploomes","task") → TASKS, ("ploomes","interaction") → INTERACTIONS, ("milvus","client") →
 * MILVUS_CLIENTS. Returns 0 and sets *out, or KAFKA_ERR_INVALID for any other pair. */
int kafka_topic_for_entity(const char *source, const char *entity, kafka_topic_id_t *out);

/* Checks that the topics `ids[0..n)` (n == 0 or ids == NULL: all five) named with `prefix`
 * exist, and creates the missing ones with the Admin API: `partitions` partitions (≥ 1;
 * TOPIC_PARTITIONS), replication factor min(3, brokers in the cluster),
 * max.message.bytes = kafka_topic_max_message_bytes() (KAFKA_MAX_MESSAGE_BYTES; the DLQ 64 KiB
 * more); the DLQ also gets retention.ms=-1 and retention.bytes=-1 (dead letters never expire).
 * TOPIC_ALREADY_EXISTS from a concurrent creator counts as success. An existing DLQ whose
 * retention is not unlimited is logged as a warning (not altered). An existing topic whose
 * max.message.bytes is below the wanted value is RAISED (AlterConfigs carrying every other
 * per-topic override unchanged; never lowered), logged as event=kafka_topic_max_bytes_raised;
 * when that is refused (no ALTER_CONFIGS permission...) it is logged as a warning
 * (kafka_topic_max_bytes_low) and ensure still succeeds. Each step is bounded by `timeout_ms`.
 * Returns 0 when all exist afterwards; KAFKA_ERR_BROKER (cluster unreachable, creation refused:
 * err names the topic and Kafka's reason), KAFKA_ERR_CONFIG, or KAFKA_ERR_INVALID. */
int kafka_topics_ensure(const kafka_settings_t *s, const char *prefix, int partitions,
                        const kafka_topic_id_t *ids, size_t n, int timeout_ms, char *err,
                        size_t errlen);

/* Reads one topic-level config entry (DescribeConfigs), e.g. "retention.ms", into out.
 * Returns 0; KAFKA_ERR_INVALID when the topic has no such entry or out is too small;
 * KAFKA_ERR_BROKER on a failed request (err says why). */
int kafka_topic_config_get(const kafka_settings_t *s, const char *topic, const char *name,
                           char *out, size_t outsize, int timeout_ms, char *err, size_t errlen);

/* Number of partitions of `topic` from the cluster's metadata (a short-lived client of its
 * own), or a negative status. */
int kafka_topic_partition_count(const kafka_settings_t *s, const char *topic, int timeout_ms,
                                char *err, size_t errlen);

/* The same on the caller's handle `rk` (borrowed), asking about this one topic (use a consumer
 * handle: a producer's allow.auto.create.topics default could create a missing topic):
 * the partition count; KAFKA_ERR_INVALID when the topic does not exist; KAFKA_ERR_BROKER when
 * the cluster did not answer within timeout_ms. err says why. */
int kafka_partition_count_on(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                             size_t errlen);

/* ---- records (consumer → worker → DLQ) ----------------------------------------------------- */

typedef struct kafka_header {
    const char *name;  /* NUL-terminated */
    const char *value; /* value_len bytes followed by a NUL (not counted); NULL = null header */
    size_t value_len;
} kafka_header_t;

/* A consumed record, copied out of librdkafka (no librdkafka object is held). Every byte
 * buffer is followed by a NUL that value_len/key_len do not count, so JSON text and decimal
 * keys can be used as C strings. Read-only for the caller; see kafka_consumer.h for who frees
 * it (kafka_consumer_done()/kafka_consumer_release()). */
typedef struct kafka_record {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key; /* NULL when the record has no key */
    size_t key_len;
    const char *value; /* NULL for a tombstone */
    size_t value_len;
    const kafka_header_t *headers; /* in record order; may repeat names */
    size_t header_count;
    int64_t timestamp_ms; /* -1 when the record carries none */
    rd_kafka_timestamp_type_t timestamp_type;
} kafka_record_t;

/* Last header named `name` (Kafka's "last one wins" reading), or NULL. *len gets its length
 * when len is non-NULL. The pointer lives as long as the record. */
const char *kafka_record_header(const kafka_record_t *rec, const char *name, size_t *len);

/* ---- producer --------------------------------------------------------------------------------- */

typedef struct kafka_producer kafka_producer_t;

/* Outcome of one message, given to a delivery callback. Valid during the callback only. */
typedef struct kafka_delivery {
    rd_kafka_resp_err_t err;      /* RD_KAFKA_RESP_ERR_NO_ERROR = acknowledged by the broker */
    rd_kafka_msg_status_t status; /* e.g. RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED on timeout */
    const char *topic;
    int32_t partition;
    int64_t offset; /* -1 when unknown */
} kafka_delivery_t;

/* Per-message completion. Runs on the thread serving delivery reports (kafka_producer_poll(),
 * _flush(), kafka_batch_wait(), _close()), exactly once per message that send() accepted. */
typedef void (*kafka_delivery_cb)(void *opaque, const kafka_delivery_t *d);

/* Creates an idempotent producer: passthrough settings, then enable.idempotence=true (cannot be
 * overridden) and message.max.bytes = the pipeline topics' max.message.bytes minus
 * KAFKA_BATCH_RESERVE_BYTES (s->max_message_bytes; a larger passthrough value is lowered to it
 * so no accepted record can be refused by the broker), delivery reports, log_ callbacks.
 * `client_id` (may be NULL) names the client in broker logs (the binary name). Returns NULL
 * with err naming the property at fault. */
kafka_producer_t *kafka_producer_new(const kafka_settings_t *s, const char *client_id, char *err,
                                     size_t errlen);

/* Learns the metadata (partitions, leaders) of the topics this producer will write to, now:
 * librdkafka 2.0 otherwise asks for a topic's metadata only on its 1 s timer after the first
 * send to it, so each topic's first records waited ~1 s (measured: the producer's first page of
 * contacts and of tasks each took ~1 s instead of ~25 ms; scenario A of docs/BENCHMARKS.md).
 * Keeps a handle on each topic until kafka_producer_close() (so librdkafka keeps what it
 * learned). At most KAFKA_PRODUCER_WARM_MAX topics per producer. Returns 0 once every topic is
 * known with all its partitions led; KAFKA_ERR_TIMEOUT (err names the topic) when one is not
 * within timeout_ms, or as soon as `stop` (may be NULL; e.g. app_stop_requested) returns true
 * between metadata requests; KAFKA_ERR_INVALID for a bad argument or too many topics. Only a
 * delay is at stake: callers log a failure and go on (sends then wait for librdkafka's own
 * refresh). */
enum { KAFKA_PRODUCER_WARM_MAX = 8 };
int kafka_producer_warm(kafka_producer_t *p, const char *const *topics, size_t n, int timeout_ms,
                        bool (*stop)(void), char *err, size_t errlen);

/* kafka_producer_warm() for the pipeline topics `ids` under `prefix` (kafka_topic_name()). */
int kafka_producer_warm_ids(kafka_producer_t *p, const char *prefix, const kafka_topic_id_t *ids,
                            size_t n, int timeout_ms, bool (*stop)(void), char *err,
                            size_t errlen);

/* Same for the producer that writes dead letters (kafka_dlq_opts_t.producer): its
 * message.max.bytes follows the DLQ topic (KAFKA_DLQ_EXTRA_BYTES more), so the dead letter of
 * any record that fitted its topic fits too, with its error headers. */
kafka_producer_t *kafka_producer_new_dlq(const kafka_settings_t *s, const char *client_id,
                                         char *err, size_t errlen);

/* A delivery tracker for one group of sends (e.g. one page of records). Counters only; a
 * batch is reusable after kafka_batch_reset() once nothing is pending. */
typedef struct kafka_batch kafka_batch_t;

kafka_batch_t *kafka_batch_new(void);

/* Frees the batch. Safe with messages still pending: the batch then lives on until their
 * delivery reports arrive (or the producer is closed) and is freed by the last of them. */
void kafka_batch_free(kafka_batch_t *b);

/* Zeroes the counters and the remembered error. Returns KAFKA_ERR_STATE when messages are
 * still pending (nothing changed). */
int kafka_batch_reset(kafka_batch_t *b);

size_t kafka_batch_sent(const kafka_batch_t *b);    /* accepted by send() */
size_t kafka_batch_pending(const kafka_batch_t *b); /* sent, no delivery report yet */
size_t kafka_batch_acked(const kafka_batch_t *b);   /* delivered */
size_t kafka_batch_failed(const kafka_batch_t *b);  /* delivery failed (incl. purged) */

/* Copies the first failure's description ("topic p: Local: Message timed out") into buf
 * (empty when none). Returns buf. */
const char *kafka_batch_error(const kafka_batch_t *b, char *buf, size_t size);

/* Serves delivery reports until every message of the batch has its report or `timeout_ms`
 * passes (-1: no limit; librdkafka's message.timeout.ms still bounds it).
 * Returns 0 when everything was delivered — ONLY then may a producer advance its cursor;
 * KAFKA_ERR_DELIVERY when all reported but some failed; KAFKA_ERR_TIMEOUT when some are still
 * pending; KAFKA_ERR_FATAL on a fatal producer error (err gets rd_kafka_fatal_error()'s text). */
int kafka_batch_wait(kafka_producer_t *p, kafka_batch_t *b, int timeout_ms, char *err,
                     size_t errlen);

/* Enqueues one message. key/value are NUL-terminated text (key NULL = no key; value NULL =
 * tombstone); headers are `hcount` name/value string pairs (hnames/hvalues may be NULL when
 * hcount == 0). Copies everything. `batch` (may be NULL) counts the message. On
 * RD_KAFKA_RESP_ERR__QUEUE_FULL (librdkafka's local queue, queue.buffering.max.messages/kbytes,
 * is full) it serves delivery reports in 100 ms slices and retries until there is room — but
 * no longer than the producer's message.timeout.ms (as configured on it; 0 = infinite: no time
 * bound) counted from the first refusal, and not past a stop (app_stop_requested(), checked
 * every slice: a stop already requested ends the wait at once). A wait that ends so returns
 * KAFKA_ERR_TIMEOUT, with err naming the topic and saying the local queue stayed full, and
 * logs event=kafka_queue_full (warn; topic, reason=stop|timeout, waited_ms, bound_ms, queued).
 * Returns 0 when enqueued (the outcome comes later through the batch), KAFKA_ERR_FATAL on a
 * fatal error, KAFKA_ERR_TIMEOUT as above, KAFKA_ERR_INVALID/KAFKA_ERR_BROKER (unknown topic,
 * message too large...) with err naming the topic. A message that was not enqueued is not
 * counted by the batch nor by kafka_producer_outq_len(). */
int kafka_producer_send(kafka_producer_t *p, const char *topic, const char *key,
                        const char *value, const char *const *hnames,
                        const char *const *hvalues, size_t hcount, kafka_batch_t *batch,
                        char *err, size_t errlen);

/* Binary-safe variant with a per-message callback instead of (or besides) a batch.
 * key/value may be NULL (absent); headers as kafka_header_t (NULL value = null header);
 * timestamp_ms < 0 lets librdkafka stamp the time. `cb` (may be NULL) is called exactly once
 * with the outcome, after the batch (if any) was updated. Same return values as send(); when
 * this returns non-zero, `cb` is never called. */
int kafka_producer_send_raw(kafka_producer_t *p, const char *topic, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            const kafka_header_t *headers, size_t hcount, int64_t timestamp_ms,
                            kafka_batch_t *batch, kafka_delivery_cb cb, void *cb_opaque,
                            char *err, size_t errlen);

/* Serves queued delivery reports for up to timeout_ms (0 = non-blocking). Call it regularly
 * (every loop turn). Returns the number of events served, or KAFKA_ERR_FATAL. */
int kafka_producer_poll(kafka_producer_t *p, int timeout_ms);

/* Waits until every message of this producer is delivered or failed (rd_kafka_flush, then
 * kafka_producer_outq_len() == 0). Returns 0, KAFKA_ERR_TIMEOUT (err says how many are left) or
 * KAFKA_ERR_FATAL. */
int kafka_producer_flush(kafka_producer_t *p, int timeout_ms, char *err, size_t errlen);

/* Number of messages accepted by send() whose delivery report has not been served yet
 * (queued, in flight or awaiting a report). Messages only: unlike rd_kafka_outq_len(), queued
 * error events of an unreachable broker do not count. */
size_t kafka_producer_outq_len(kafka_producer_t *p);

/* True once librdkafka raised a fatal error; err gets its text (may be NULL). */
bool kafka_producer_fatal(kafka_producer_t *p, char *err, size_t errlen);

/* Total delivery failures seen since creation (all batches and callbacks). */
size_t kafka_producer_failed_total(kafka_producer_t *p);

/* The underlying handle (borrowed; for metadata queries and metrics). */
rd_kafka_t *kafka_producer_handle(kafka_producer_t *p);

/* Flushes for up to timeout_ms, purges whatever is left (those messages get a failed delivery
 * report: batches and callbacks see them as failed), logs how many were undelivered, destroys
 * the producer. NULL is a no-op returning 0. Returns 0 when nothing was left undelivered,
 * KAFKA_ERR_DELIVERY when messages had to be purged (err says how many; the caller must not
 * advance cursors for them and should exit non-zero), KAFKA_ERR_FATAL after a fatal error.
 * Earlier failures were already reported through batches/callbacks (and
 * kafka_producer_failed_total()). */
int kafka_producer_close(kafka_producer_t *p, int timeout_ms, char *err, size_t errlen);

#endif
