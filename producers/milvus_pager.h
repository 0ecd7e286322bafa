/* milvus_pager: the pure part of the Milvus client scan (SPEC §3): the page request, the stop
 * rules, the truncation warning and the set of ids seen during one pass.
 *
 * /cliente/busca has no cursor and no documented paging. We send `pagina` and
 * `total_registros=1000` and stop on
 *   - an empty page                       (MILVUS_STOP_EMPTY),
 *   - a page whose ids were all seen       (MILVUS_STOP_ALL_SEEN: the API ignored `pagina`
 *     already in this pass                  and answered the same rows again),
 *   - a page shorter than asked            (MILVUS_STOP_SHORT: its rows are still processed).
 * The answer looks truncated (the seed's blind spot) when exactly `asked` rows came back and
 * there is no way to get more: the stop is ALL_SEEN and this page or the previous one held
 * exactly `asked` rows.
 *
 * Ownership: milvus_seen_t owns its array (milvus_seen_free()). Not thread-safe per object.
 */
#ifndef PRODUCERS_MILVUS_PAGER_H
#define PRODUCERS_MILVUS_PAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rows asked per page (the documented cap of Milvus' listing endpoints). */
#define MILVUS_PAGE_SIZE 1000

typedef enum {
    MILVUS_CONTINUE = 0,   /* process the rows, ask for the next page */
    MILVUS_STOP_EMPTY,     /* nothing to process; pass complete */
    MILVUS_STOP_SHORT,     /* process the rows; pass complete */
    MILVUS_STOP_ALL_SEEN   /* nothing new to process; pass complete */
} milvus_verdict_t;

/* "continue", "empty", "short", "all_seen". */
const char *milvus_verdict_name(milvus_verdict_t v);

/* Decides about a page of `rows` rows, `new_rows` of which carry an id not seen before in this
 * pass, when `asked` rows were requested. Rule order: empty, all seen, short, continue. */
milvus_verdict_t milvus_page_verdict(size_t rows, size_t new_rows, size_t asked);

/* True when the answer looks truncated (see above). prev_rows: rows of the previous page of
 * this pass (0 for the first page). */
bool milvus_page_truncated(milvus_verdict_t v, size_t rows, size_t prev_rows, size_t asked);

/* Request path for page `pagina` (1-based):
 * "/cliente/busca?status=3&pagina=<n>&total_registros=<asked>". Returns the length, or -1. */
int milvus_page_query(int pagina, int asked, char *out, size_t size);

/* The ids seen in one pass. */
typedef struct {
    int64_t *ids; /* sorted ascending */
    size_t count, cap;
} milvus_seen_t;

/* Zeroed struct = empty set. */
bool milvus_seen_has(const milvus_seen_t *s, int64_t id);
/* Adds id (no-op when present). Returns 0, or -1 on out of memory. */
int milvus_seen_add(milvus_seen_t *s, int64_t id);
void milvus_seen_free(milvus_seen_t *s);

#endif
