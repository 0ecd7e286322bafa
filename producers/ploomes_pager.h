/* ploomes_pager: the pure part of the Ploomes keyset scan (SPEC §3): which entity sets are
 * polled and how, the keyset query for the next page, and the no-progress guard.
 *
 * A scan of one entity set is a sequence of keyset queries: each asks for the rows strictly
 * after the cursor (C, I) in the order (LastUpdateDate, Id),
 *     $filter=LastUpdateDate gt C or (LastUpdateDate eq C and Id gt I)
 *     $orderby=LastUpdateDate,Id  $top=300  $expand=...
 * and the next query starts from the last row received. The @odata.nextLink ($skip based) is
 * never followed: a record that moves to the end of the order while a $skip scan runs shifts
 * every later row one place back and one row is lost.
 *
 * The no-progress guard: Ploomes may store more timestamp precision than it prints, so a row
 * printed with the cursor's stamp can come back again. A row counts as progress only when its
 * position (instant, Id) is strictly greater than the cursor's; a page without any such row
 * ends the scan (otherwise the same page would be asked for forever).
 *
 * Ownership: callers supply every buffer. Thread-safety: reentrant, no state.
 */
#ifndef PRODUCERS_PLOOMES_PAGER_H
#define PRODUCERS_PLOOMES_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kafka.h"

/* The API's page cap (reference/apis.md §1.3). */
#define PLOOMES_PAGE_SIZE 300

typedef enum {
    PLOOMES_CONTACTS = 0,
    PLOOMES_TASKS = 1,
    PLOOMES_INTERACTIONS = 2,
    PLOOMES_ENTITY_COUNT
} ploomes_entity_t;

/* The $expand of /Tasks pages: the tags (the ticket's category) and the task's contact with
 * what a ticket shows of it (workers/ticket.c reads `Contact` when its Id is the ContactId). */
#define PLOOMES_TASK_EXPAND "Tags,Contact($select=Id,Name,Email;$expand=Phones)"

/* Static description of one entity set. */
typedef struct {
    ploomes_entity_t entity;
    const char *path;        /* "/Contacts" */
    const char *name;        /* header `entity` and metrics label: "contact" */
    const char *expand;      /* $expand list: "Phones,Tags,City,State,Contacts" */
    kafka_topic_id_t topic;  /* KAFKA_TOPIC_PLOOMES_CONTACTS */
    unsigned config_bit;     /* CONFIG_ENTITY_CONTACTS (PLOOMES_ENTITIES) */
    const char *cursor_key;  /* MongoDB cursors _id: "ploomes.contact" */
} ploomes_entity_info_t;

/* The description of `e`, or NULL when out of range. */
const ploomes_entity_info_t *ploomes_entity_info(ploomes_entity_t e);

/* Writes the request path+query of the keyset page after (stamp, id) into out:
 *   <path>?$filter=<enc>&$orderby=<enc>&$top=<top>&$expand=<enc>
 * where <enc> is the percent-encoded value (http_percent_encode: every byte outside
 * A-Z a-z 0-9 - . _ ~ becomes %XX, so ' ' -> %20, '+' -> %2B, ':' -> %3A, ',' -> %2C).
 * `stamp` is the cursor's LastUpdateDate exactly as Ploomes printed it (an unquoted
 * DateTimeOffset literal; a ' ' or 't' separator and a 'z' are written as 'T' and 'Z');
 * id 0 with the start instant means "everything from stamp on".
 * Returns the length written, or -1 when the stamp is not an RFC 3339 timestamp (it is sent
 * unquoted, so anything else could change the filter's meaning), top is not 1..300, or out
 * is too small (out then holds ""). */
int ploomes_keyset_query(const ploomes_entity_info_t *info, const char *stamp, int64_t id,
                         int top, char *out, size_t size);

/* What a page request asks for (ploomes_query()). */
typedef enum {
    PLOOMES_Q_KEYSET = 0, /* rows after (stamp, id):
                           *   $filter=LastUpdateDate gt C or (LastUpdateDate eq C and Id gt I)
                           *   $orderby=LastUpdateDate,Id */
    PLOOMES_Q_TIE = 1     /* one tie group at printed precision (SPEC §3 "Ties at printed
                           * precision"): the rows printed with stamp S, by Id:
                           *   $filter=LastUpdateDate ge S and LastUpdateDate lt S+u and Id gt I
                           *   $orderby=Id          (u = the smallest unit S prints) */
} ploomes_qmode_t;

typedef struct {
    ploomes_qmode_t mode;
    const char *stamp;    /* keyset: the cursor's stamp C; tie: the group's stamp S */
    int64_t id;           /* Id gt (>= 0) */
    int top;              /* 1..300 */
    bool position_only;   /* $select=Id,LastUpdateDate and no $expand: identifies a record
                             whose full page cannot be parsed (a poison record) */
} ploomes_query_t;

/* Writes the request path+query of q into out (values percent-encoded as for
 * ploomes_keyset_query; then $top, then $select or $expand). Returns the length, or -1 when
 * the stamp is unusable, S+u cannot be written (more than 9 fractional digits, year past
 * 9999), top/id are out of range, or out is too small (out then holds ""). */
int ploomes_query(const ploomes_entity_info_t *info, const ploomes_query_t *q, char *out,
                  size_t size);

/* The stamp one printed unit after `stamp`, written the way `stamp` is written (same number
 * of fractional digits, same offset; 'T' separator): "2024-03-01T10:00:00.123-03:00" ->
 * "2024-03-01T10:00:00.124-03:00", "...:59.999Z" -> next second ".000Z", no fraction -> +1 s.
 * Returns 0, or -1 when stamp is not RFC 3339, has more than 9 fractional digits, the result
 * passes year 9999, or out is too small. */
int ploomes_stamp_next_unit(const char *stamp, char *out, size_t size);

/* An instant with the full precision Ploomes may print (up to 7 fractional digits; we keep 9). */
typedef struct {
    int64_t seconds; /* Unix epoch seconds (UTC) */
    int32_t nanos;   /* 0..999999999 */
} ploomes_instant_t;

/* Parses "YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)" (fraction: 1+ digits, digits past the 9th
 * ignored) into an instant. Returns 0, or -1 when the text is not such a timestamp. */
int ploomes_instant_parse(const char *text, ploomes_instant_t *out);

/* Orders two positions (instant, id): <0, 0, >0. */
int ploomes_position_cmp(const ploomes_instant_t *a, int64_t aid, const ploomes_instant_t *b,
                         int64_t bid);

/* The no-progress guard for one row: true when (row_stamp, row_id) is strictly after the
 * cursor (cursor_stamp, cursor_id). A row whose stamp cannot be parsed is not progress. */
bool ploomes_row_is_progress(const char *row_stamp, int64_t row_id, const char *cursor_stamp,
                             int64_t cursor_id);

#endif
