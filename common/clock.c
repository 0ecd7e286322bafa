/* clock_: millisecond clocks and the RFC 3339 formatter. See clock.h. */
#include "clock.h"

#include <stdio.h>
#include <time.h>

static int64_t ms_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void) { return ms_of(CLOCK_MONOTONIC); }

int64_t clock_wall_ms(void) { return ms_of(CLOCK_REALTIME); }

void clock_rfc3339(int64_t epoch_ms, char *buf, size_t size)
{
    if (size == 0)
        return;
    /* Floor division, so an instant before 1970 still gets a 0..999 millisecond field. */
    int64_t frac = epoch_ms % 1000;
    if (frac < 0)
        frac += 1000;
    time_t secs = (time_t)((epoch_ms - frac) / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm)) {
        snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)frac);
}
