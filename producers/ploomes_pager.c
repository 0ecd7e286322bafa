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
    /* the task's contact rides along (Name, Email, Phones: a ticket's chamado_contato / email /
     * telefone), so the worker need not read it per ticket; Contact is a documented navigation
     * of Task (apis.md §1.5), not of InteractionRecord: interactions' contacts are read */
    {PLOOMES_TASKS, "/Tasks", "task", PLOOMES_TASK_EXPAND, KAFKA_TOPIC_PLOOMES_TASKS,
     CONFIG_ENTITY_TASKS, "ploomes.task"},
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

/* The stamp as an OData DateTimeOffset literal: RFC 3339's lowercase 't'/'z' and the space
 * separator (accepted in SYNC_SINCE) are not OData syntax. false when it does not fit. */
static bool odata_literal(const char *stamp, char *lit, size_t size)
{
    size_t sl = strlen(stamp);
    if (sl >= size)
        return false;
    for (size_t i = 0; i <= sl; i++) {
        char c = stamp[i];
        lit[i] = (c == ' ' || c == 't') ? 'T' : c == 'z' ? 'Z' : c;
    }
    return true;
}

int ploomes_query(const ploomes_entity_info_t *info, const ploomes_query_t *q, char *out,
                  size_t size)
{
    if (out == NULL || size == 0)
        return -1;
    out[0] = '\0';
    ploomes_instant_t check;
    if (info == NULL || q == NULL || q->stamp == NULL ||
        ploomes_instant_parse(q->stamp, &check) != 0 || q->top < 1 ||
        q->top > PLOOMES_PAGE_SIZE || q->id < 0)
        return -1;
    char lit[64];
    if (!odata_literal(q->stamp, lit, sizeof lit))
        return -1;
    char filter[320];
    int fn;
    const char *orderby;
    if (q->mode == PLOOMES_Q_TIE) {
        char next[64], nlit[64];
        if (ploomes_stamp_next_unit(q->stamp, next, sizeof next) != 0 ||
            !odata_literal(next, nlit, sizeof nlit))
            return -1;
        fn = snprintf(filter, sizeof filter,
                      "LastUpdateDate ge %s and LastUpdateDate lt %s and Id gt %" PRId64, lit,
                      nlit, q->id);
        orderby = "Id";
    } else {
        fn = snprintf(filter, sizeof filter,
                      "LastUpdateDate gt %s or (LastUpdateDate eq %s and Id gt %" PRId64 ")",
                      lit, lit, q->id);
        orderby = "LastUpdateDate,Id";
    }
    if (fn < 0 || (size_t)fn >= sizeof filter)
        return -1;
    char topbuf[16];
    snprintf(topbuf, sizeof topbuf, "%d", q->top);

    size_t pos = 0;
    bool ok = append(out, size, &pos, info->path) && append(out, size, &pos, "?$filter=") &&
              append_encoded(out, size, &pos, filter) &&
              append(out, size, &pos, "&$orderby=") &&
              append_encoded(out, size, &pos, orderby) && append(out, size, &pos, "&$top=") &&
              append(out, size, &pos, topbuf);
    if (ok && q->position_only)
        ok = append(out, size, &pos, "&$select=") &&
             append_encoded(out, size, &pos, "Id,LastUpdateDate");
    else if (ok)
        ok = append(out, size, &pos, "&$expand=") && append_encoded(out, size, &pos, info->expand);
    if (!ok) {
        out[0] = '\0';
        return -1;
    }
    return (int)pos;
}

int ploomes_keyset_query(const ploomes_entity_info_t *info, const char *stamp, int64_t id,
                         int top, char *out, size_t size)
{
    ploomes_query_t q = {PLOOMES_Q_KEYSET, stamp, id, top, false};
    return ploomes_query(info, &q, out, size);
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

/* Civil date of a day count since 1970-01-01 (Howard Hinnant's civil_from_days). */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int ploomes_stamp_next_unit(const char *stamp, char *out, size_t size)
{
    ploomes_instant_t check;
    if (stamp == NULL || out == NULL || size == 0 || ploomes_instant_parse(stamp, &check) != 0)
        return -1;
    out[0] = '\0';
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
    if (!digits(stamp, 4, &y) || !digits(stamp + 5, 2, &mo) || !digits(stamp + 8, 2, &d) ||
        !digits(stamp + 11, 2, &h) || !digits(stamp + 14, 2, &mi) ||
        !digits(stamp + 17, 2, &se))
        return -1;
    const char *p = stamp + 19;
    char frac[16] = "";
    size_t nd = 0;
    if (*p == '.') {
        p++;
        while (p[nd] >= '0' && p[nd] <= '9')
            nd++;
        if (nd > 9)
            return -1;
        memcpy(frac, p, nd);
        frac[nd] = '\0';
        p += nd;
    }
    const char *offset = p; /* "Z", "z" or "+HH:MM" as written (validated by the parse) */
    /* One unit up: the fraction as an nd-digit counter; a carry out of it (or no fraction)
     * adds a second to the civil time. */
    bool carry = true;
    for (size_t i = nd; i > 0 && carry; i--) {
        if (frac[i - 1] == '9') {
            frac[i - 1] = '0';
        } else {
            frac[i - 1]++;
            carry = false;
        }
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + se;
    if (carry)
        secs++;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int64_t ny;
    int nm, ndd;
    civil_from_days(days, &ny, &nm, &ndd);
    if (ny < 0 || ny > 9999)
        return -1;
    char off[8];
    if (*offset == 'Z' || *offset == 'z')
        snprintf(off, sizeof off, "Z");
    else
        snprintf(off, sizeof off, "%.6s", offset);
    int n = snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d%s%s%s", (int)ny, nm, ndd,
                     (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), nd ? "." : "",
                     frac, off);
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return -1;
    }
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
