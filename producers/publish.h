/* publish: one source record -> one Kafka message (SPEC §2): value, key and the four headers.
 *
 *   value  the record printed unformatted by cJSON
 *   key    the record's id as decimal text
 *   headers source (ploomes|milvus), entity (contact|task|interaction|client),
 *           fetched-at (RFC 3339 UTC with ms, when the producer read the page),
 *           event-id (hash_event_id(source, entity, id, stamp): stamp is Ploomes'
 *           LastUpdateDate as received, or for Milvus the hex SHA-256 of the value)
 *
 * Ownership: publish_headers_t holds its own text; the name/value arrays point into it (valid
 * while the struct lives). Thread-safety: reentrant.
 */
#ifndef PRODUCERS_PUBLISH_H
#define PRODUCERS_PUBLISH_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "hash.h"
#include "kafka.h"

#define PUBLISH_HEADER_COUNT 4
#define PUBLISH_TIME_SIZE CLOCK_RFC3339_SIZE /* fetched-at: clock_rfc3339(clock_wall_ms()) */
#define PUBLISH_KEY_SIZE 24

typedef struct {
    char source[16];
    char entity[16];
    char fetched_at[PUBLISH_TIME_SIZE];
    char event_id[HASH_HEX_SIZE];
    const char *names[PUBLISH_HEADER_COUNT];  /* "source", "entity", "fetched-at", "event-id" */
    const char *values[PUBLISH_HEADER_COUNT]; /* point into the fields above */
} publish_headers_t;

/* Fills *h for a record. Returns 0, or -1 when an argument is missing or too long, or hashing
 * failed. */
int publish_headers_build(publish_headers_t *h, const char *source, const char *entity,
                          const char *id, const char *stamp, const char *fetched_at);

/* Decimal text of an id into buf (PUBLISH_KEY_SIZE is enough). Returns buf. */
const char *publish_key(int64_t id, char *buf, size_t size);

/* Enqueues one record on `topic`, counted by `batch`. Returns kafka_producer_send()'s status. */
int publish_send(kafka_producer_t *p, kafka_batch_t *batch, const char *topic, const char *key,
                 const char *value, const publish_headers_t *h, char *err, size_t errlen);

#endif
