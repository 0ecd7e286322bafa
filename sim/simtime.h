/* simtime_: instants and the two date formats the simulators speak.
 *
 * Ploomes writes ISO 8601 with the Brasília offset ("2026-11-29T14:03:05.123-03:00") and accepts
 * any offset, "Z", and fractional seconds of any length. Milvus writes "YYYY-MM-DD HH:MM:SS" in
 * Brasília time. Instants are compared as (UTC seconds, nanoseconds); digits past the ninth
 * fractional digit are ignored. Pure functions, thread-safe, no allocation.
 */
#ifndef SIM_SIMTIME_H
#define SIM_SIMTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct simtime_instant {
    int64_t sec;  /* seconds since 1970-01-01T00:00:00Z */
    int32_t nsec; /* 0..999999999 */
} simtime_instant;

/* Parses exactly `len` bytes of "YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM)". An offset is required.
 * Returns true and fills *out on success; false on anything else (no partial parse). */
bool simtime_parse_iso(const char *s, size_t len, simtime_instant *out);

/* -1, 0, 1 like strcmp. */
int simtime_cmp(simtime_instant a, simtime_instant b);

/* Wall-clock now in milliseconds since the epoch. */
int64_t simtime_now_ms(void);

/* Monotonic milliseconds (for windows and timeouts). */
int64_t simtime_mono_ms(void);

/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmm-03:00" into buf (>= 32 bytes). */
const char *simtime_format_ploomes(int64_t epoch_ms, char *buf, size_t size);

/* Wall-clock now in .NET ticks (100 ns) since the epoch: the precision Ploomes stores. */
int64_t simtime_now_ticks(void);

/* Formats epoch ticks (100 ns) the way ASP.NET/Json.NET writes a DateTimeOffset
 * ("yyyy-MM-ddTHH:mm:ss.FFFFFFFzzz"): up to 7 fractional digits with trailing zeros trimmed,
 * no fraction at all when it is zero, Brasília offset. "2022-12-15T14:59:45.13-03:00",
 * "2022-12-15T14:59:45.1234567-03:00", "2022-12-15T14:59:45-03:00". buf >= 40 bytes. */
const char *simtime_format_ploomes_ticks(int64_t epoch_ticks, char *buf, size_t size);

/* Formats epoch milliseconds as "YYYY-MM-DD HH:MM:SS" (Brasília time) into buf (>= 20 bytes). */
const char *simtime_format_milvus(int64_t epoch_ms, char *buf, size_t size);

#endif
