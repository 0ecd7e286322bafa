/* simindex_: a secondary index over a simstore — its records sorted by a string key computed
 * from each record (then by id, the store's order), rebuilt on demand once the store's gen has
 * moved. Answers "the records whose key is K, in id order" with a binary search instead of a
 * scan per request (milvus-sim: clients by token and by document).
 *
 * Keys are at most SIMINDEX_KEY_MAX - 1 bytes: a record whose key function fails (no key, or
 * one that does not fit) is left out, so it is never found.
 *
 * Ownership: the index owns its rows; the records stay the store's and are valid until the
 * store changes (the next simindex_get rebuilds). Not thread-safe: call with the server's state
 * lock held, like simstore.
 */
#ifndef SIM_SIMINDEX_H
#define SIM_SIMINDEX_H

#include "simstore.h"

#include <stdbool.h>

#define SIMINDEX_KEY_MAX 64

/* Writes the key of obj into out (size SIMINDEX_KEY_MAX); false when obj has none. */
typedef bool (*simindex_keyfn)(const cJSON *obj, char *out, size_t size);

typedef struct simindex_row {
    char key[SIMINDEX_KEY_MAX];
    int64_t id;
    cJSON *obj; /* the store's */
} simindex_row;

typedef struct simindex {
    simindex_keyfn fn; /* the function the rows were built with */
    uint64_t gen;
    bool valid;
    simindex_row *rows;
    size_t n;
} simindex;

/* Brings ix up to date with st under key function fn (rebuilding when st changed or fn
 * differs). Returns 0, or -1 when out of memory (ix is then empty and invalid: scan instead). */
int simindex_sync(simindex *ix, const simstore *st, simindex_keyfn fn);

/* Position of the first row whose key is `key` and how many rows share it (*count, 0 when
 * none). A key of SIMINDEX_KEY_MAX bytes or more matches nothing. */
size_t simindex_find(const simindex *ix, const char *key, size_t *count);

void simindex_free(simindex *ix);

#endif
