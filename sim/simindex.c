/* simindex_: see simindex.h. */
#include "simindex.h"

#include <stdlib.h>
#include <string.h>

static int cmp_rows(const void *pa, const void *pb)
{
    const simindex_row *x = pa, *y = pb;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

void simindex_free(simindex *ix)
{
    free(ix->rows);
    memset(ix, 0, sizeof *ix);
}

int simindex_sync(simindex *ix, const simstore *st, simindex_keyfn fn)
{
    if (ix->valid && ix->fn == fn && ix->gen == st->gen)
        return 0;
    simindex_free(ix);
    ix->rows = malloc((st->n ? st->n : 1) * sizeof *ix->rows);
    if (!ix->rows)
        return -1;
    for (size_t i = 0; i < st->n; i++) {
        simindex_row *r = &ix->rows[ix->n];
        if (!fn(st->items[i].obj, r->key, sizeof r->key))
            continue;
        r->id = st->items[i].id;
        r->obj = st->items[i].obj;
        ix->n++;
    }
    qsort(ix->rows, ix->n, sizeof *ix->rows, cmp_rows);
    ix->fn = fn;
    ix->gen = st->gen;
    ix->valid = true;
    return 0;
}

size_t simindex_find(const simindex *ix, const char *key, size_t *count)
{
    *count = 0;
    if (strlen(key) >= SIMINDEX_KEY_MAX)
        return 0;
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ix->rows[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < ix->n && strcmp(ix->rows[end].key, key) == 0)
        end++;
    *count = end - lo;
    return lo;
}
