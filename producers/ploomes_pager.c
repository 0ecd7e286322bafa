/* ploomes_pager: keyset query builder, timestamp ordering and the no-progress guard. */
#include "ploomes_pager.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http.h"

static const ploomes_entity_info_t ENTITIES[PLOOMES_ENTITY_COUNT] = {
    {PLOOMES_CONTACTS, "/Contacts", "contact", "Phones,Tags,City,State,Contacts",
     KAFKA_TOPIC_PLOOMES_CONTACTS, CONFIG_ENTITY_CONTACTS, "ploomes.contact"},
    {PLOOMES_TASKS, "/Tasks", "task", "Tags", KAFKA_TOPIC_PLOOMES_TASKS, CONFIG_ENTITY_TASKS,
     "ploomes.task"},
    {PLOOMES_INTERACTIONS, "/InteractionRecords", "interaction", "Tags",
     KAFKA_TOPIC_PLOOMES_INTERACTIONS, CONFIG_ENTITY_INTERACTIONS, "ploomes.interaction"},
};

const ploomes_entity_info_t *ploomes_entity_info(ploomes_entity_t e)
{
    if ((int)e < 0 || e >= PLOOMES_ENTITY_COUNT)
        return NULL;
    return &ENTITIES[e];
}

/* Appends text to out at *pos; false when it does not fit. */
static bool append(char *out, size_t size, size_t *pos, const char *text)
{
    size_t n = strlen(text);
    if (*pos + n >= size)
        return false;
    memcpy(out + *pos, text, n + 1);
    *pos += n;
    return true;
}

static bool append_encoded(char *out, size_t size, size_t *pos, const char *value)
{
    if (*pos >= size)
        return false;
    int n = http_percent_encode(value, out + *pos, size - *pos);
    if (n < 0)
        return false;
    *pos += (size_t)n;
    return true;
}

int ploomes_keyset_query(const ploomes_entity_info_t *info, const char *stamp, int64_t id,
                         int top, char *out, size_t size)
{
    if (out == NULL || size == 0)
        return -1;
    out[0] = '\0';
    ploomes_instant_t check;
    if (info == NULL || stamp == NULL || ploomes_instant_parse(stamp, &check) != 0 || top < 1 ||
        top > PLOOMES_PAGE_SIZE || id < 0)
        return -1;

    /* The literal goes unquoted into the filter: RFC 3339's lowercase 't'/'z' and the space
     * separator (accepted in SYNC_SINCE) are not OData DateTimeOffset syntax. */
    char lit[64];
    size_t sl = strlen(stamp);
    if (sl >= sizeof lit)
        return -1;
    for (size_t i = 0; i <= sl; i++) {
        char c = stamp[i];
        lit[i] = (c == ' ' || c == 't') ? 'T' : c == 'z' ? 'Z' : c;
    }
    char filter[256];
    int fn = snprintf(filter, sizeof filter,
                      "LastUpdateDate gt %s or (LastUpdateDate eq %s and Id gt %" PRId64 ")",
                      lit, lit, id);
    if (fn < 0 || (size_t)fn >= sizeof filter)
        return -1;
    char topbuf[16];
    snprintf(topbuf, sizeof topbuf, "%d", top);

    size_t pos = 0;
    bool ok = append(out, size, &pos, info->path) && append(out, size, &pos, "?$filter=") &&
              append_encoded(out, size, &pos, filter) &&
              append(out, size, &pos, "&$orderby=") &&
              append_encoded(out, size, &pos, "LastUpdateDate,Id") &&
              append(out, size, &pos, "&$top=") && append(out, size, &pos, topbuf) &&
              append(out, size, &pos, "&$expand=") &&
              append_encoded(out, size, &pos, info->expand);
    if (!ok) {
        out[0] = '\0';
        return -1;
    }
    return (int)pos;
}

/* ---- instants ----------------------------------------------------------------------------- */

static bool digits(const char *s, int n, int *value)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *value = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dm[m - 1];
}

int ploomes_instant_parse(const char *text, ploomes_instant_t *out)
{
    if (text == NULL || out == NULL)
        return -1;
    const char *s = text;
    int y, mo, d, h, mi, se;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60)
        return -1;
    s += 19;
    int32_t nanos = 0;
    if (*s == '.') {
        s++;
        int n = 0;
        int32_t scale = 100000000;
        while (*s >= '0' && *s <= '9') {
            if (n < 9) {
                nanos += (int32_t)(*s - '0') * scale;
                scale /= 10;
            }
            n++;
            s++;
        }
        if (n == 0)
            return -1;
    }
    int offset_min = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        int oh, om;
        if (!digits(s + 1, 2, &oh) || s[3] != ':' || !digits(s + 4, 2, &om) || oh > 23 ||
            om > 59)
            return -1;
        offset_min = oh * 60 + om;
        if (*s == '-')
            offset_min = -offset_min;
        s += 6;
    } else {
        return -1;
    }
    if (*s != '\0')
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + se;
    out->seconds = secs - (int64_t)offset_min * 60;
    out->nanos = nanos;
    return 0;
}

int ploomes_position_cmp(const ploomes_instant_t *a, int64_t aid, const ploomes_instant_t *b,
                         int64_t bid)
{
    if (a->seconds != b->seconds)
        return a->seconds < b->seconds ? -1 : 1;
    if (a->nanos != b->nanos)
        return a->nanos < b->nanos ? -1 : 1;
    if (aid != bid)
        return aid < bid ? -1 : 1;
    return 0;
}

bool ploomes_row_is_progress(const char *row_stamp, int64_t row_id, const char *cursor_stamp,
                             int64_t cursor_id)
{
    ploomes_instant_t r, c;
    if (ploomes_instant_parse(row_stamp, &r) != 0)
        return false;
    if (ploomes_instant_parse(cursor_stamp, &c) != 0)
        return true; /* no usable cursor: everything is new */
    return ploomes_position_cmp(&r, row_id, &c, cursor_id) > 0;
}
