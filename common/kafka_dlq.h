/* kafka_dlq: dead-letter writer (SPEC §4 "Dead letters", reliability rules "Dead-letter
 * convention").
 *
 * A dead letter is the original record — same key, value, original headers and timestamp —
 * produced to `<prefix>pipeline.dlq`, followed by these UTF-8 string headers (numbers as
 * decimal text), always all present, in this order:
 *   __connect.errors.topic             original topic
 *   __connect.errors.partition         original partition
 *   __connect.errors.offset            original offset
 *   __connect.errors.connector.name    worker binary name (e.g. "clients-to-milvus")
 *   __connect.errors.task.id           instance id "hostname-pid"
 *   __connect.errors.stage             "TASK_PUT"
 *   __connect.errors.class.name        error->class_name, else the connector name (≤ 256 B)
 *   __connect.errors.exception.class.name   e.g. "HttpStatus503", "CurlTimeout",
 *                                      "InvalidDocument", "ClientNotFound" (≤ 256 B)
 *   __connect.errors.exception.message human-readable reason (first 4 KiB)
 *   x-dlq.attempts                     attempts made (decimal)
 *   x-dlq.http-status                  last HTTP status, "0" when there was none
 *   x-dlq.response                     first 1 KiB of the last response body ("" when none),
 *                                      cut on a UTF-8 character boundary
 *   x-dlq.first-failure                RFC 3339 UTC with milliseconds, e.g.
 *   x-dlq.last-failure                 "2024-05-01T12:00:00.123Z"
 * Original headers with exactly one of these names (a replayed letter failing again) are
 * dropped, so each of these names appears once.
 *
 * SECRETS: the error context is written verbatim into a topic kept forever. The caller must
 * pass it secret-free (no User-Key, token, password, Authorization header, URL with a key).
 * As defence in depth the writer replaces every string registered in kafka_dlq_opts_t.secrets,
 * as is, percent-encoded and in base64 (log_secret_forms()), by "***" in the exception message
 * and the response excerpt.
 *
 * The completion callback fires from the producer's delivery report (on the thread serving
 * kafka_producer_poll()/_flush()): success means the broker acknowledged the dead letter. The
 * caller marks the original record done ONLY then (never when merely enqueued); on failure it
 * releases the record (it will be re-delivered) or retries the DLQ send.
 *
 * Size: the error headers stay under ~8 KiB (the caller's texts are capped as above), so the
 * dead letter of any record that fitted its topic fits the DLQ topic, which has
 * KAFKA_DLQ_EXTRA_BYTES (64 KiB) more room, when written by a kafka_producer_new_dlq()
 * producer (issue 8 item 15).
 *
 * Ownership: the writer borrows the producer (which must outlive it) and copies everything
 * else. Thread-safety: kafka_dlq_send() may be called from several threads.
 */
#ifndef PIPELINE_KAFKA_DLQ_H
#define PIPELINE_KAFKA_DLQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka.h"

#define KAFKA_DLQ_RESPONSE_MAX 1024
#define KAFKA_DLQ_MESSAGE_MAX 4096 /* exception message, cut on a UTF-8 boundary */
#define KAFKA_DLQ_CLASS_MAX 256    /* class name and exception class name */

typedef struct kafka_dlq kafka_dlq_t;

typedef struct kafka_dlq_opts {
    kafka_producer_t *producer;  /* required, borrowed */
    const char *topic_prefix;    /* TOPIC_PREFIX, verbatim; NULL = "" */
    const char *connector_name;  /* required: worker binary name */
    const char *task_id;         /* NULL = kafka_dlq_instance_id() ("hostname-pid") */
    const char *const *secrets;  /* strings to scrub (NULL/empty/short < 4 ignored); copied */
    size_t secret_count;
} kafka_dlq_opts_t;

/* Why the record is dead. Borrowed for the call; must hold no secret (see above). */
typedef struct kafka_dlq_error {
    const char *class_name;        /* NULL = connector name */
    const char *exception_class;   /* required, e.g. "HttpStatus503" */
    const char *exception_message; /* NULL = "" */
    int attempts;                  /* ≥ 0 */
    int http_status;               /* 0 = none */
    const char *response;          /* may be NULL; only the first 1 KiB is kept */
    size_t response_len;
    int64_t first_failure_ms;      /* Unix epoch ms (wall clock); ≤ 0 = last_failure_ms */
    int64_t last_failure_ms;       /* Unix epoch ms; ≤ 0 = now */
} kafka_dlq_error_t;

/* Outcome of one dead letter: ok = acknowledged by the broker. `error` is librdkafka's text
 * when !ok (valid during the call). Runs exactly once per accepted send. */
typedef void (*kafka_dlq_done_cb)(void *opaque, bool ok, const char *error);

/* Writes "hostname-pid" into buf (the DLQ task id, SPEC §4). Returns buf. */
const char *kafka_dlq_instance_id(char *buf, size_t size);

/* Creates a writer. Returns NULL with err when an argument is missing or the DLQ topic name is
 * too long. Does not create the topic (kafka_topics_ensure() does at start). */
kafka_dlq_t *kafka_dlq_new(const kafka_dlq_opts_t *o, char *err, size_t errlen);

void kafka_dlq_free(kafka_dlq_t *d);

/* Name of the DLQ topic ("<prefix>pipeline.dlq"), owned by the writer. */
const char *kafka_dlq_topic(const kafka_dlq_t *d);

/* Enqueues the dead letter of `rec` (borrowed; it may be freed after the call returns).
 * Returns 0 when enqueued — `cb` will then be called exactly once with the outcome; a non-zero
 * kafka_status_t (KAFKA_ERR_FATAL, KAFKA_ERR_INVALID, ...) when not, and `cb` is never called. */
int kafka_dlq_send(kafka_dlq_t *d, const kafka_record_t *rec, const kafka_dlq_error_t *e,
                   kafka_dlq_done_cb cb, void *opaque, char *err, size_t errlen);

/* Builds the header list that kafka_dlq_send() would produce (original headers first, then the
 * error headers) — exposed for unit tests and for `pipeline-dlq` to share the names.
 * On success *out is an array of *count headers the caller frees with kafka_dlq_headers_free().
 * `now_ms` replaces the wall clock for defaults (tests). Returns 0 or KAFKA_ERR_NOMEM. */
int kafka_dlq_build_headers(const kafka_dlq_t *d, const kafka_record_t *rec,
                            const kafka_dlq_error_t *e, int64_t now_ms, kafka_header_t **out,
                            size_t *count);
void kafka_dlq_headers_free(kafka_header_t *h, size_t count);

/* Header names, shared with tools/ (pipeline-dlq reads them back). */
#define KAFKA_DLQ_H_TOPIC "__connect.errors.topic"
#define KAFKA_DLQ_H_PARTITION "__connect.errors.partition"
#define KAFKA_DLQ_H_OFFSET "__connect.errors.offset"
#define KAFKA_DLQ_H_CONNECTOR "__connect.errors.connector.name"
#define KAFKA_DLQ_H_TASK "__connect.errors.task.id"
#define KAFKA_DLQ_H_STAGE "__connect.errors.stage"
#define KAFKA_DLQ_H_CLASS "__connect.errors.class.name"
#define KAFKA_DLQ_H_EXC_CLASS "__connect.errors.exception.class.name"
#define KAFKA_DLQ_H_EXC_MESSAGE "__connect.errors.exception.message"
#define KAFKA_DLQ_H_ATTEMPTS "x-dlq.attempts"
#define KAFKA_DLQ_H_HTTP_STATUS "x-dlq.http-status"
#define KAFKA_DLQ_H_RESPONSE "x-dlq.response"
#define KAFKA_DLQ_H_FIRST_FAILURE "x-dlq.first-failure"
#define KAFKA_DLQ_H_LAST_FAILURE "x-dlq.last-failure"
#define KAFKA_DLQ_STAGE_TASK_PUT "TASK_PUT"

#endif
