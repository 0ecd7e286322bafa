/* kafka_offsets: contiguous-finished-offset tracking per partition. See kafka_offsets.h. */
#include "kafka_offsets.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    int64_t offset;
    int pending;    /* hand-outs of this offset not yet finished/abandoned */
    bool abandoned; /* given back unfinished: blocks the position until handed out again */
    bool finished;  /* some hand-out of it reached a terminal outcome */
} entry_t;

typedef struct part {
    char *topic;
    int32_t partition;
    uint64_t generation;
    entry_t *entries; /* [head, len) live, sorted by offset */
    size_t head, len, cap;
    int64_t position; /* last contiguous finished + 1, or -1 */
    size_t in_flight;
} part_t;

struct kafka_offsets {
    part_t **parts;
    size_t count, cap;
    uint64_t next_generation;
};

kafka_offsets_t *kafka_offsets_new(void)
{
    kafka_offsets_t *o = calloc(1, sizeof *o);
    if (o)
        o->next_generation = 1;
    return o;
}

static void part_free(part_t *p)
{
    if (!p)
        return;
    free(p->topic);
    free(p->entries);
    free(p);
}

void kafka_offsets_clear(kafka_offsets_t *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->count; i++)
        part_free(o->parts[i]);
    o->count = 0;
}

void kafka_offsets_free(kafka_offsets_t *o)
{
    if (!o)
        return;
    kafka_offsets_clear(o);
    free(o->parts);
    free(o);
}

static size_t find_index(const kafka_offsets_t *o, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < o->count; i++) {
        if (o->parts[i]->partition == partition && strcmp(o->parts[i]->topic, topic) == 0)
            return i;
    }
    return (size_t)-1;
}

static part_t *find(const kafka_offsets_t *o, const char *topic, int32_t partition)
{
    if (!o || !topic)
        return NULL;
    size_t i = find_index(o, topic, partition);
    return i == (size_t)-1 ? NULL : o->parts[i];
}

uint64_t kafka_offsets_assign(kafka_offsets_t *o, const char *topic, int32_t partition)
{
    if (!o || !topic)
        return 0;
    part_t *p = find(o, topic, partition);
    if (!p) {
        if (o->count == o->cap) {
            size_t ncap = o->cap ? o->cap * 2 : 8;
            part_t **np = realloc(o->parts, ncap * sizeof *np);
            if (!np)
                return 0;
            o->parts = np;
            o->cap = ncap;
        }
        p = calloc(1, sizeof *p);
        if (!p)
            return 0;
        p->topic = strdup(topic);
        if (!p->topic) {
            free(p);
            return 0;
        }
        p->partition = partition;
        o->parts[o->count++] = p;
    }
    p->head = p->len = 0;
    p->position = -1;
    p->in_flight = 0;
    p->generation = o->next_generation++;
    return p->generation;
}

size_t kafka_offsets_revoke(kafka_offsets_t *o, const char *topic, int32_t partition)
{
    if (!o || !topic)
        return 0;
    size_t i = find_index(o, topic, partition);
    if (i == (size_t)-1)
        return 0;
    size_t left = o->parts[i]->in_flight;
    part_free(o->parts[i]);
    o->parts[i] = o->parts[--o->count];
    return left;
}

int kafka_offsets_is_assigned(const kafka_offsets_t *o, const char *topic, int32_t partition)
{
    return find(o, topic, partition) != NULL;
}

/* Index in [head, len) of `offset`, or (size_t)-1. Binary search: entries are sorted. */
static size_t entry_find(const part_t *p, int64_t offset)
{
    size_t lo = p->head, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->entries[mid].offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->len && p->entries[lo].offset == offset)
        return lo;
    return (size_t)-1;
}

static bool make_room(part_t *p)
{
    if (p->head > 0 && (p->head == p->len || p->len == p->cap)) {
        memmove(p->entries, p->entries + p->head, (p->len - p->head) * sizeof *p->entries);
        p->len -= p->head;
        p->head = 0;
    }
    if (p->len < p->cap)
        return true;
    size_t ncap = p->cap ? p->cap * 2 : 64;
    entry_t *ne = realloc(p->entries, ncap * sizeof *ne);
    if (!ne)
        return false;
    p->entries = ne;
    p->cap = ncap;
    return true;
}

uint64_t kafka_offsets_begin(kafka_offsets_t *o, const char *topic, int32_t partition,
                             int64_t offset)
{
    part_t *p = find(o, topic, partition);
    if (!p)
        return 0;
    size_t at = entry_find(p, offset);
    if (at != (size_t)-1) {
        p->entries[at].pending++; /* the same offset handed out again (a seek) */
        p->entries[at].abandoned = false; /* re-fetched after a release: in flight again */
        p->in_flight++;
        return p->generation;
    }
    if (!make_room(p))
        return 0;
    /* Usually an append; after a seek backwards, an insertion in offset order. */
    size_t pos = p->len;
    while (pos > p->head && p->entries[pos - 1].offset > offset)
        pos--;
    memmove(p->entries + pos + 1, p->entries + pos, (p->len - pos) * sizeof *p->entries);
    p->entries[pos] = (entry_t){.offset = offset, .pending = 1};
    p->len++;
    p->in_flight++;
    return p->generation;
}

/* Pops the finished prefix; returns true when the position moved forward. */
static bool advance(part_t *p)
{
    bool moved = false;
    while (p->head < p->len && p->entries[p->head].pending == 0 &&
           (p->entries[p->head].finished || !p->entries[p->head].abandoned)) {
        int64_t next = p->entries[p->head].offset + 1;
        if (next > p->position) {
            p->position = next;
            moved = true;
        }
        p->head++;
    }
    if (p->head == p->len)
        p->head = p->len = 0;
    return moved;
}

static int settle(kafka_offsets_t *o, const char *topic, int32_t partition, uint64_t generation,
                  int64_t offset, bool abandon, part_t **out)
{
    part_t *p = find(o, topic, partition);
    if (!p || generation == 0 || p->generation != generation)
        return KAFKA_ERR_STATE;
    size_t at = entry_find(p, offset);
    if (at == (size_t)-1 || p->entries[at].pending <= 0)
        return KAFKA_ERR_INVALID;
    p->entries[at].pending--;
    p->in_flight--;
    if (abandon)
        p->entries[at].abandoned = true;
    else
        p->entries[at].finished = true; /* one finished copy is enough, whatever the others */
    *out = p;
    return KAFKA_OK;
}

int kafka_offsets_finish(kafka_offsets_t *o, const char *topic, int32_t partition,
                         uint64_t generation, int64_t offset, int64_t *store_offset)
{
    part_t *p = NULL;
    int rc = settle(o, topic, partition, generation, offset, false, &p);
    if (rc != KAFKA_OK)
        return rc;
    if (!advance(p))
        return 0;
    if (store_offset)
        *store_offset = p->position;
    return 1;
}

int kafka_offsets_abandon(kafka_offsets_t *o, const char *topic, int32_t partition,
                          uint64_t generation, int64_t offset)
{
    part_t *p = NULL;
    return settle(o, topic, partition, generation, offset, true, &p);
}

uint64_t kafka_offsets_generation(const kafka_offsets_t *o, const char *topic, int32_t partition)
{
    const part_t *p = find(o, topic, partition);
    return p ? p->generation : 0;
}

int kafka_offsets_redundant(const kafka_offsets_t *o, const char *topic, int32_t partition,
                            int64_t offset)
{
    const part_t *p = find(o, topic, partition);
    if (!p)
        return 0;
    if (p->position >= 0 && offset < p->position)
        return 1;
    size_t at = entry_find(p, offset);
    if (at == (size_t)-1)
        return 0;
    const entry_t *e = &p->entries[at];
    return e->pending > 0 || e->finished;
}

int64_t kafka_offsets_position(const kafka_offsets_t *o, const char *topic, int32_t partition)
{
    const part_t *p = find(o, topic, partition);
    return p ? p->position : -1;
}

size_t kafka_offsets_in_flight(const kafka_offsets_t *o, const char *topic, int32_t partition)
{
    if (!o)
        return 0;
    if (topic) {
        const part_t *p = find(o, topic, partition);
        return p ? p->in_flight : 0;
    }
    size_t sum = 0;
    for (size_t i = 0; i < o->count; i++)
        sum += o->parts[i]->in_flight;
    return sum;
}

size_t kafka_offsets_count(const kafka_offsets_t *o) { return o ? o->count : 0; }

int kafka_offsets_at(const kafka_offsets_t *o, size_t i, const char **topic, int32_t *partition)
{
    if (!o || i >= o->count)
        return KAFKA_ERR_INVALID;
    if (topic)
        *topic = o->parts[i]->topic;
    if (partition)
        *partition = o->parts[i]->partition;
    return KAFKA_OK;
}
