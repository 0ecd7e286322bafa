/* dlq_: reading, filtering, summarising and replaying the dead-letter topic (SPEC §7), shared by
 * pipeline-dlq and pipeline-status.
 *
 * Reading: a group-less consumer assigned to every partition of `<prefix>pipeline.dlq` from the
 * low watermark (or the filter's first offset) to the high watermark as it was when the read
 * began; it commits nothing and never joins a group, so inspecting the DLQ cannot move anyone's
 * offsets. Each letter is copied out (key, value, headers) and its Kafka Connect headers are
 * decoded (original topic/partition/offset, worker, error class, message, x-dlq.*).
 *
 * Replay (SPEC §4, §7): the letter's original key, value and original headers (everything but
 * __connect.errors.* and x-dlq.*) are produced to its original topic with
 * `x-dlq.replayed-from: <dlq topic>/<partition>/<offset>`. The replay is recorded in MongoDB
 * (store_replay_mark) BEFORE it is produced: a letter is never replayed twice without `force`
 * (a produce that failed after the mark is recovered with --force).
 *
 * Ownership: dlq_read() fills a dlq_list_t that owns every letter and string in it;
 * dlq_list_free() frees it. Borrowed: settings, store (must outlive the calls).
 * Threads: none of these functions may run concurrently on one list.
 */
#ifndef PIPELINE_TOOLS_DLQ_H
#define PIPELINE_TOOLS_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "kafka.h"
#include "store.h"

/* One dead letter as read from the topic. Every pointer is owned by its dlq_list_t. */
typedef struct {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;          /* the record's Kafka timestamp: the ORIGINAL record's (a
                                    * letter keeps it), so offset order is not time order
                                    * (-1 when unknown) */
    char *key;                     /* NULL when the record had no key */
    size_t key_len;
    char *value;                   /* NULL for a tombstone */
    size_t value_len;
    kafka_header_t *headers;       /* every header, in order (names/values owned) */
    size_t header_count;
    /* Decoded from the headers ("" / -1 / 0 when absent): */
    const char *orig_topic;        /* __connect.errors.topic */
    int32_t orig_partition;        /* __connect.errors.partition */
    int64_t orig_offset;           /* __connect.errors.offset */
    const char *worker;            /* __connect.errors.connector.name */
    const char *error_class;       /* __connect.errors.exception.class.name */
    const char *message;           /* __connect.errors.exception.message */
    long http_status;              /* x-dlq.http-status */
    int attempts;                  /* x-dlq.attempts */
    const char *response;          /* x-dlq.response */
} dlq_letter_t;

typedef struct {
    dlq_letter_t *items;
    size_t count;
    char topic[KAFKA_TOPIC_NAME_MAX];
    int64_t total;                 /* messages in the topic (high - low, all partitions) */
} dlq_list_t;

/* Which letters to keep. Zero = everything. */
typedef struct {
    const char *worker;            /* exact connector name */
    const char *error_class;       /* exact exception class */
    int32_t partition;             /* -1 = every partition */
    int64_t from_offset;           /* inclusive; -1 = from the start */
    int64_t to_offset;             /* inclusive; -1 = to the end */
    int64_t since_ms;              /* keep letters dead-lettered at or after this; 0 = any */
    size_t limit;                  /* keep at most this many of the NEWEST; 0 = all */
} dlq_filter_t;

/* A filter that keeps everything. */
dlq_filter_t dlq_filter_all(void);

/* Reads every letter of `<prefix>pipeline.dlq` matching `f` (see the top comment). A missing
 * topic is an empty list. Returns 0, or -1 with err set (broker unreachable, out of memory). */
int dlq_read(const kafka_settings_t *s, const char *prefix, const dlq_filter_t *f,
             int timeout_ms, dlq_list_t *out, char *err, size_t errlen);

/* Only the size: messages in the DLQ topic (high - low watermarks over all partitions) and the
 * timestamp of the newest letter (-1 when empty or unknown). Cheap (no record is read besides
 * the last of each partition). Returns 0 or -1 with err. */
int dlq_size(const kafka_settings_t *s, const char *prefix, int timeout_ms, int64_t *messages,
             int64_t *newest_ms, char *err, size_t errlen);

/* The same on a reader the caller keeps (dlq_reader_new), so that a process sampling the size
 * again and again (pipeline-status) opens no new connection each time. Leaves `rk` unassigned
 * and reusable; after a failure (-1) the caller may still reuse it or destroy it. */
int dlq_size_on(rd_kafka_t *rk, const char *prefix, int timeout_ms, int64_t *messages,
                int64_t *newest_ms, char *err, size_t errlen);

/* A group-less consumer able to fetch the largest dead letter (group.id "pipeline-dlq-reader",
 * never joined nor committed: librdkafka wants one for assign()). The caller owns it:
 * rd_kafka_consumer_close() then rd_kafka_destroy(). Any Admin request or metadata query may
 * also run on it. NULL with err on failure. */
rd_kafka_t *dlq_reader_new(const kafka_settings_t *s, char *err, size_t errlen);

/* Reads offsets [from, to] of `partition` of `topic` on rk (a dlq_reader_new handle) without
 * looking at the watermarks first: the range read dlq_read and dlq_newest_refresh do for each
 * partition once they know them, exposed so that a test can ask for offsets retention deleted
 * in between. Appends the letters read to out (owned by out; out->items must be empty or come
 * from an earlier call); *records counts the records read. Leaves rk unassigned.
 * Returns 0, or -1 with err naming topic and partition: an offset below the low watermark is
 * an error (auto.offset.reset=error), never a silent jump to the end of the partition. */
int dlq_read_range_on(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t from,
                      int64_t to, int timeout_ms, dlq_list_t *out, int64_t *records, char *err,
                      size_t errlen);

void dlq_list_free(dlq_list_t *l);

/* A deep copy of src into *dst (dst's own letters; free with dlq_list_free). Returns 0, or -1
 * when out of memory (*dst then holds nothing). */
int dlq_list_copy(const dlq_list_t *src, dlq_list_t *dst);

/* Merges the letters of `fresh` into `kept` and keeps the newest `limit` of them (0 = all), in
 * the order and by the ordering dlq_read gives with f.limit: oldest first by (timestamp,
 * partition, offset), so that when `kept` is the newest `limit` letters of a set of letters and
 * `fresh` every letter added to it, `kept` becomes exactly the newest `limit` of the whole.
 * Takes fresh's letters over (fresh is left empty); the dropped ones are freed. Pure: no I/O.
 * Returns 0, or -1 when out of memory (both lists then unchanged). */
int dlq_merge_newest(dlq_list_t *kept, dlq_list_t *fresh, size_t limit);

/* The newest letters of the DLQ kept between reads (pipeline-status), so that reading them
 * again reads only the offsets added since: per partition the offset read to (the high
 * watermark of the last read, or where that read ended), and the newest `limit` letters.
 * A refresh reads the whole topic instead (a full read) when the kept state cannot be
 * extended: nothing kept (first read, after a failure or dlq_newest_forget), the partition
 * count changed, a partition's high watermark went below the offset read to (topic
 * recreated), its low watermark passed it or passed a kept letter (retention deleted letters).
 * Not detected: a topic deleted and recreated with at least as many letters per partition
 * between two refreshes (no watermark says so; librdkafka 2.0 has no topic id).
 * Owns letters and read_to; one thread at a time. */
typedef struct {
    dlq_list_t letters;   /* the newest `limit` letters as dlq_read with f.limit (when known) */
    int64_t *read_to;     /* per partition: the first offset not read yet (owned) */
    int partitions;       /* entries in read_to */
    bool known;
    size_t limit;
} dlq_newest_t;

/* What one refresh did (for logs and metrics). */
typedef struct {
    bool full;            /* the whole topic was read */
    const char *why;      /* a static string: why full, or "new offsets only" */
    int64_t records;      /* records read from Kafka */
} dlq_read_stats_t;

void dlq_newest_init(dlq_newest_t *n, size_t limit);

/* Forgets the kept state: the next refresh is a full read. */
void dlq_newest_forget(dlq_newest_t *n);

void dlq_newest_free(dlq_newest_t *n);

/* Brings n up to date with `<prefix>pipeline.dlq` (see dlq_newest_t): afterwards n->letters is
 * what dlq_read with a filter of limit n->limit would give (total included). A missing topic
 * is an empty list. Returns 0, or -1 with err (n is then forgotten: not known). */
int dlq_newest_refresh(dlq_newest_t *n, const kafka_settings_t *s, const char *prefix,
                       int timeout_ms, dlq_read_stats_t *stats, char *err, size_t errlen);

/* A deep copy of `src` into *dst (every string its own; free it as an item of a dlq_list_t).
 * Returns 0, or -1 when out of memory (*dst then holds nothing). */
int dlq_letter_dup(const dlq_letter_t *src, dlq_letter_t *dst);

/* Header `name` of a letter (last one wins), or NULL. */
const char *dlq_header(const dlq_letter_t *l, const char *name);

/* The letter as JSON (pipeline-dlq --json, /api/dlq): position, key, worker, error class, HTTP
 * status, attempts, message, original topic/partition/offset; with `full` also every header and
 * the record (parsed when it is JSON, else as text). NULL when out of memory. */
cJSON *dlq_letter_json(const dlq_letter_t *l, bool full);

/* Outcome of one replay. */
typedef enum {
    DLQ_REPLAYED = 0,      /* recorded and delivered to the original topic */
    DLQ_ALREADY = 1,       /* replayed before (without force): nothing sent */
    DLQ_WOULD = 2,         /* dry run: would be replayed */
    DLQ_FAILED = -1,       /* store or Kafka failure: err says which */
} dlq_replay_rc_t;

/* Replays one letter (see the top comment). `by` names who replays (user@host or instance).
 * dry_run: checks the record in MongoDB and sends nothing. */
dlq_replay_rc_t dlq_replay(kafka_producer_t *p, store_t *st, const char *dlq_topic,
                           const dlq_letter_t *l, const char *by, bool force, bool dry_run,
                           char *err, size_t errlen);

#endif
