/* milvus_pager: stop rules, truncation check and the per-pass seen-id set. */
#include "milvus_pager.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *milvus_verdict_name(milvus_verdict_t v)
{
    switch (v) {
    case MILVUS_CONTINUE: return "continue";
    case MILVUS_STOP_EMPTY: return "empty";
    case MILVUS_STOP_SHORT: return "short";
    case MILVUS_STOP_ALL_SEEN: return "all_seen";
    }
    return "unknown";
}

milvus_verdict_t milvus_page_verdict(size_t rows, size_t new_rows, size_t asked)
{
    if (rows == 0)
        return MILVUS_STOP_EMPTY;
    if (new_rows == 0)
        return MILVUS_STOP_ALL_SEEN;
    if (rows < asked)
        return MILVUS_STOP_SHORT;
    return MILVUS_CONTINUE;
}

bool milvus_page_truncated(milvus_verdict_t v, size_t rows, size_t prev_rows, size_t asked)
{
    return v == MILVUS_STOP_ALL_SEEN && asked > 0 && (rows == asked || prev_rows == asked);
}

int milvus_page_query(int pagina, int asked, char *out, size_t size)
{
    if (out == NULL || size == 0 || pagina < 1 || asked < 1)
        return -1;
    int n = snprintf(out, size, "/cliente/busca?status=3&pagina=%d&total_registros=%d", pagina,
                     asked);
    if (n < 0 || (size_t)n >= size) {
        out[0] = '\0';
        return -1;
    }
    return n;
}

/* Index of the first element >= id in the sorted array. */
static size_t lower_bound(const milvus_seen_t *s, int64_t id)
{
    size_t lo = 0, hi = s->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool milvus_seen_has(const milvus_seen_t *s, int64_t id)
{
    size_t i = lower_bound(s, id);
    return i < s->count && s->ids[i] == id;
}

int milvus_seen_add(milvus_seen_t *s, int64_t id)
{
    size_t i = lower_bound(s, id);
    if (i < s->count && s->ids[i] == id)
        return 0;
    if (s->count == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        int64_t *n = realloc(s->ids, ncap * sizeof *n);
        if (n == NULL)
            return -1;
        s->ids = n;
        s->cap = ncap;
    }
    memmove(s->ids + i + 1, s->ids + i, (s->count - i) * sizeof *s->ids);
    s->ids[i] = id;
    s->count++;
    return 0;
}

void milvus_seen_free(milvus_seen_t *s)
{
    free(s->ids);
    s->ids = NULL;
    s->count = s->cap = 0;
}
