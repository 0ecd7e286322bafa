/* status_history_: what pipeline-status --serve remembers between snapshots, for the status
 * page's sparklines: per worker, the lag and the records per minute by outcome over the last
 * hour. Lag comes from status_collector_collect(); records come from the workers' own /metrics
 * (worker_records_total{worker,outcome,reason}), scraped from the URLs an operator lists in
 * STATUS_SCRAPE_URLS and summed over reasons and over every URL.
 *
 * Samples live in a fixed ring (STATUS_HISTORY_MAX); samples older than an hour are dropped.
 * A records-per-minute point is the increase of a cumulative count between two consecutive
 * samples scaled to a minute (a count that went down — a worker restarted — counts from 0).
 *
 * Ownership: a status_history_t is a plain value (no heap); the caller owns it.
 * Thread-safety: none; pipeline-status guards it with its own mutex.
 */
#ifndef PIPELINE_TOOLS_STATUS_HISTORY_H
#define PIPELINE_TOOLS_STATUS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STATUS_HISTORY_WORKERS 4        /* STATUS_WORKERS, in that order */
#define STATUS_HISTORY_OUTCOMES 4       /* STATUS_HISTORY_OUTCOME_NAMES, in that order */
#define STATUS_HISTORY_MAX 720          /* samples kept (an hour at one per 5 s) */
#define STATUS_HISTORY_WINDOW_MS 3600000

/* "delivered", "skipped", "dedup_hit", "dead_lettered" (the workers' terminal outcomes). */
extern const char *const STATUS_HISTORY_OUTCOME_NAMES[STATUS_HISTORY_OUTCOMES];

typedef struct {
    int64_t t_ms;                                       /* wall clock */
    int64_t lag[STATUS_HISTORY_WORKERS];                /* -1 when unknown */
    bool counts_known;                                  /* a scrape succeeded */
    double counts[STATUS_HISTORY_WORKERS][STATUS_HISTORY_OUTCOMES]; /* cumulative */
} status_sample_t;

typedef struct {
    status_sample_t ring[STATUS_HISTORY_MAX];
    size_t head;  /* index of the oldest sample */
    size_t count;
} status_history_t;

void status_history_init(status_history_t *h);

/* Appends a sample (its t_ms must not go back in time; such a sample is ignored) and drops
 * those more than STATUS_HISTORY_WINDOW_MS older than it. */
void status_history_add(status_history_t *h, const status_sample_t *s);

/* The newest sample, or NULL when there is none. */
const status_sample_t *status_history_last(const status_history_t *h);

/* Lag points of worker `w`, oldest first, into out (at most max); unknown lags are skipped.
 * Returns how many were written. */
size_t status_history_lag(const status_history_t *h, size_t w, double *out, size_t max);

/* Records-per-minute points of worker `w` and outcome `o` (see the top comment), oldest first.
 * Returns how many were written (one fewer than the samples with known counts, at most max). */
size_t status_history_rate(const status_history_t *h, size_t w, size_t o, double *out,
                           size_t max);

/* Adds every worker_records_total series of a Prometheus text exposition to counts (worker
 * names as in STATUS_WORKERS, outcomes as in STATUS_HISTORY_OUTCOME_NAMES; other workers and
 * outcomes are ignored). Returns the number of series added. */
int status_history_parse_records(const char *text,
                                 double counts[STATUS_HISTORY_WORKERS][STATUS_HISTORY_OUTCOMES]);

/* Scrapes every URL of `urls` (comma-separated http(s) URLs of workers' /metrics; blanks around
 * commas ignored) and sums their worker_records_total into counts (zeroed first). Returns 0 when
 * every URL answered 200, -1 otherwise with err naming the first URL that failed (the others are
 * still summed). An empty or NULL list returns -1 with err "". */
int status_history_scrape(const char *urls,
                          double counts[STATUS_HISTORY_WORKERS][STATUS_HISTORY_OUTCOMES],
                          char *err, size_t errlen);

#endif
