/* simstore_: see simstore.h. */
#include "simstore.h"

#include <stdlib.h>
#include <string.h>

static size_t lower_bound(const simstore *s, int64_t id)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

cJSON *simstore_get(const simstore *s, int64_t id)
{
    size_t i = lower_bound(s, id);
    return i < s->n && s->items[i].id == id ? s->items[i].obj : NULL;
}

int simstore_put(simstore *s, int64_t id, cJSON *obj)
{
    size_t i = lower_bound(s, id);
    if (i < s->n && s->items[i].id == id) {
        cJSON_Delete(s->items[i].obj);
        s->items[i].obj = obj;
        s->gen++;
        return 0;
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        simstore_item *items = realloc(s->items, ncap * sizeof *items);
        if (!items) {
            cJSON_Delete(obj);
            return -1;
        }
        s->items = items;
        s->cap = ncap;
    }
    memmove(&s->items[i + 1], &s->items[i], (s->n - i) * sizeof *s->items);
    s->items[i].id = id;
    s->items[i].obj = obj;
    s->n++;
    s->gen++;
    return 0;
}

int simstore_remove(simstore *s, int64_t id)
{
    size_t i = lower_bound(s, id);
    if (i >= s->n || s->items[i].id != id)
        return 0;
    cJSON_Delete(s->items[i].obj);
    memmove(&s->items[i], &s->items[i + 1], (s->n - i - 1) * sizeof *s->items);
    s->n--;
    s->gen++;
    return 1;
}

void simstore_clear(simstore *s)
{
    for (size_t i = 0; i < s->n; i++)
        cJSON_Delete(s->items[i].obj);
    free(s->items);
    s->items = NULL;
    s->n = s->cap = 0;
    s->gen++;
}

void simstore_touch(simstore *s)
{
    s->gen++;
}

int64_t simstore_max_id(const simstore *s)
{
    return s->n ? s->items[s->n - 1].id : 0;
}
