/* kafka_offsets: pure bookkeeping for at-least-once consumption with out-of-order completion
 * (reference/reliability-rules.md rule 3). No librdkafka calls: the consumer wrapper
 * (kafka_consumer.c) drives it and does the storing; unit tests drive it directly.
 *
 * Per (topic, partition) it remembers the offsets handed out, in hand-out order, and which of
 * them finished. The committable position is "last offset of the longest finished prefix + 1":
 * an offset is never committable while an earlier handed-out offset of the same partition is
 * unfinished. Offsets need not be consecutive integers (compaction, transaction markers):
 * only handed-out offsets count.
 *
 * Generations: each assignment of a partition gets a new generation number (> 0). A record
 * remembers the generation it was handed out under; finishing it under another generation
 * (the partition was revoked, maybe re-assigned since) is refused with KAFKA_ERR_STATE, so a
 * late finisher can never move the new owner's position.
 *
 * Ownership: the table owns its memory; topic names are copied. Not thread-safe: the consumer
 * wrapper serialises calls with its own mutex.
 */
#ifndef PIPELINE_KAFKA_OFFSETS_H
#define PIPELINE_KAFKA_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include "kafka.h" /* status codes */

typedef struct kafka_offsets kafka_offsets_t;

kafka_offsets_t *kafka_offsets_new(void);
void kafka_offsets_free(kafka_offsets_t *o);

/* (Re)starts tracking a partition: forgets anything known about it and returns its new
 * generation (> 0), or 0 on allocation failure. */
uint64_t kafka_offsets_assign(kafka_offsets_t *o, const char *topic, int32_t partition);

/* Stops tracking a partition (revoked/lost). Its in-flight offsets become stale: finishing
 * them later returns KAFKA_ERR_STATE. Returns how many were still in flight. */
size_t kafka_offsets_revoke(kafka_offsets_t *o, const char *topic, int32_t partition);

/* Forgets every partition. */
void kafka_offsets_clear(kafka_offsets_t *o);

/* True when the partition is currently tracked (assigned). */
int kafka_offsets_is_assigned(const kafka_offsets_t *o, const char *topic, int32_t partition);

/* Records that `offset` was handed out. Returns the partition's generation (> 0), or 0 when
 * the partition is not assigned (the caller must not hand the record out) or on allocation
 * failure. Handing out an offset lower than or equal to one already handed out in this
 * generation is accepted (a seek): it is inserted in offset order. Handing out again an offset
 * that was abandoned clears the abandonment (the record is in flight again). */
uint64_t kafka_offsets_begin(kafka_offsets_t *o, const char *topic, int32_t partition,
                             int64_t offset);

/* Marks `offset` (handed out under `generation`) finished.
 * Returns 1 and sets *store_offset (offset to store = last contiguous finished + 1) when the
 * committable position advanced; 0 when it did not (an earlier offset is still unfinished);
 * KAFKA_ERR_STATE (negative) when the generation is stale or the partition unassigned;
 * KAFKA_ERR_INVALID when that offset is not in flight. */
int kafka_offsets_finish(kafka_offsets_t *o, const char *topic, int32_t partition,
                         uint64_t generation, int64_t offset, int64_t *store_offset);

/* Like finish() but the offset is abandoned, not finished: it stays a gap that blocks the
 * position until it is handed out again and finished (the consumer seeks back to it) or the
 * partition is re-assigned. An offset of which some hand-out already finished is not blocked
 * by another copy's abandonment. Returns 0, KAFKA_ERR_STATE or KAFKA_ERR_INVALID. */
int kafka_offsets_abandon(kafka_offsets_t *o, const char *topic, int32_t partition,
                          uint64_t generation, int64_t offset);

/* Generation of a tracked partition, or 0 when it is not assigned. */
uint64_t kafka_offsets_generation(const kafka_offsets_t *o, const char *topic, int32_t partition);

/* True when handing `offset` out again would be redundant: in this generation it is below the
 * committable position, still in flight, or already finished. False for an offset never seen
 * or one that was abandoned (released): that one must be handed out again. The consumer uses
 * it after seeking back to a released record, so the records after it that are being handled
 * or are done are not handed out twice. */
int kafka_offsets_redundant(const kafka_offsets_t *o, const char *topic, int32_t partition,
                            int64_t offset);

/* Committable position of a partition (last contiguous finished + 1), or -1 when nothing
 * finished yet in this generation or the partition is unknown. */
int64_t kafka_offsets_position(const kafka_offsets_t *o, const char *topic, int32_t partition);

/* Offsets handed out and neither finished nor abandoned (work still running). topic NULL =
 * the sum over all partitions; otherwise that one partition. */
size_t kafka_offsets_in_flight(const kafka_offsets_t *o, const char *topic, int32_t partition);

/* Number of tracked partitions, and the i-th one (0 ≤ i < count) for iteration. The topic
 * pointer stays valid until that partition is revoked or the table changes shape. */
size_t kafka_offsets_count(const kafka_offsets_t *o);
int kafka_offsets_at(const kafka_offsets_t *o, size_t i, const char **topic, int32_t *partition);

#endif
