/* clock_: the pipeline's clocks in milliseconds and its one RFC 3339 timestamp formatter.
 *
 * Two clocks on purpose: clock_mono_ms() for deadlines and durations (never jumps when the
 * wall clock is set), clock_wall_ms() for instants that are stored or sent (MongoDB dates,
 * DLQ headers, rate-limit windows shared between processes). Parsing RFC 3339 text is
 * config_parse_rfc3339() (config.h).
 *
 * Ownership: callers supply every buffer; nothing is allocated.
 * Thread-safety: reentrant.
 */
#ifndef PIPELINE_CLOCK_H
#define PIPELINE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Enough for clock_rfc3339() of any instant from year 0 to 9999, with the NUL. */
#define CLOCK_RFC3339_SIZE 32

/* Milliseconds on CLOCK_MONOTONIC (arbitrary origin): only differences mean anything. */
int64_t clock_mono_ms(void);

/* Milliseconds since the Unix epoch on CLOCK_REALTIME. */
int64_t clock_wall_ms(void);

/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds, "2024-02-24T03:00:00.000Z",
 * into buf (truncated to size, NUL-terminated when size > 0). An instant gmtime_r() cannot
 * represent is written as "1970-01-01T00:00:00.000Z". */
void clock_rfc3339(int64_t epoch_ms, char *buf, size_t size);

#endif
