/* status_: one snapshot of the pipeline for operators (SPEC §7 pipeline-status): consumer lag
 * per worker group and partition, the dead-letter topic's size and newest letter, producer
 * cursors with their last polls, producer leases, and the shared rate limits' use.
 *
 * Collecting never joins a consumer group or commits anything (committed offsets are read with
 * a group-less query per group), and never writes to MongoDB. A part that cannot be read (Kafka
 * or MongoDB down, no key configured for a rate limit) is reported in the snapshot's `problems`
 * and the rest is still filled.
 *
 * Clients: a status_collector_t builds its Kafka client (one handle for metadata, watermarks,
 * the groups' committed offsets through the Admin API, and the dead-letter topic's tail) and
 * its rate-limit readers once and reuses them on every sample, so a process that samples again
 * and again (--watch, --serve) opens no new connection per sample. A client that failed during
 * a sample (broker or MongoDB unreachable: reported in `problems`) is dropped at the end of
 * that sample and built again on the next one, so an outage is reported as it happens and
 * recovered from when the service is back. The store is the caller's (its pool reconnects).
 *
 * Ownership: status_collector_collect() fills a caller-owned status_t whose
 * arrays they allocate; status_free() frees them. Settings, store and config are borrowed (for
 * the call, or by a collector until status_collector_free()).
 * Threads: a collector is used by one thread at a time.
 */
#ifndef PIPELINE_TOOLS_STATUS_H
#define PIPELINE_TOOLS_STATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "kafka.h"
#include "store.h"

/* The four workers: binary name (the consumer group suffix) and the topic each consumes. */
typedef struct {
    const char *worker;
    kafka_topic_id_t topic;
} status_worker_t;
extern const status_worker_t STATUS_WORKERS[4];

typedef struct {
    const char *worker;        /* static */
    char topic[KAFKA_TOPIC_NAME_MAX];
    int32_t partition;
    int64_t committed;         /* -1 when the group never committed on this partition */
    int64_t low, high;         /* watermarks */
    int64_t lag;               /* high - committed (high - low when nothing committed) */
} status_lag_t;

typedef struct {
    const char *api;           /* "ploomes" | "milvus" */
    bool known;                /* false when the key is not configured or MongoDB failed */
    int used, limit;           /* tickets in the last window, N */
} status_rate_t;

#define STATUS_PROBLEMS_MAX 8

typedef struct {
    int64_t taken_ms;          /* wall clock of the snapshot */
    status_lag_t *lags;
    size_t lag_count;
    int64_t dlq_messages;      /* -1 when unknown */
    int64_t dlq_newest_ms;     /* -1 when empty or unknown */
    store_cursor_t *cursors;
    size_t cursor_count;
    store_lease_t leases[2];   /* producer:ploomes, producer:milvus */
    bool leases_known;
    status_rate_t rates[2];
    char problems[STATUS_PROBLEMS_MAX][256];
    size_t problem_count;
} status_t;

extern const char *const STATUS_LEASE_NAMES[2];

typedef struct status_collector status_collector_t;

/* A collector borrowing cfg, ks and st (st may be NULL), which must outlive it. Builds nothing
 * yet (the first sample does). NULL when out of memory. */
status_collector_t *status_collector_new(const config_t *cfg, const kafka_settings_t *ks,
                                         store_t *st);

/* Takes a snapshot (see the top comment) with the collector's clients. Returns 0 (possibly
 * with problems; `st` NULL makes the MongoDB parts problems), or -1 when out of memory. */
int status_collector_collect(status_collector_t *c, status_t *out);

/* Closes the collector's clients and frees it. NULL is accepted. */
void status_collector_free(status_collector_t *c);

void status_free(status_t *s);

/* Total lag of one worker over its partitions (0 when unknown). */
int64_t status_worker_lag(const status_t *s, const char *worker);

/* "42s ago", "5m ago", "3h ago", or "never" when then_ms <= 0, into buf. Returns buf. */
const char *status_ago(char *buf, size_t size, int64_t now_ms, int64_t then_ms);

/* Human-readable screen (what `pipeline-status` prints; --watch redraws it). */
void status_print(const status_t *s, const config_t *cfg, FILE *out);

/* The same as JSON (`--json`, GET /api/status). NULL when out of memory. */
cJSON *status_json(const status_t *s);

#endif
