/* simstore_: records (cJSON objects) keyed by a 64-bit id, kept sorted by id, so listings come
 * out in key order and lookups are a binary search.
 *
 * Ownership: simstore_put takes the object; the store deletes it on replace, remove or clear.
 * Not thread-safe: the simulators call it with the server's state lock held.
 */
#ifndef SIM_SIMSTORE_H
#define SIM_SIMSTORE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct simstore_item {
    int64_t id;
    cJSON *obj;
} simstore_item;

typedef struct simstore {
    simstore_item *items; /* sorted by id */
    size_t n, cap;
    uint64_t gen; /* changes on every put, remove, clear and touch: indexes derived from the
                   * records (ploomes-sim's reverse navigation) compare it to know they are
                   * stale */
} simstore;

/* The stored object or NULL. */
cJSON *simstore_get(const simstore *s, int64_t id);

/* Inserts or replaces. Returns 0, or -1 on allocation failure (obj is then deleted). */
int simstore_put(simstore *s, int64_t id, cJSON *obj);

/* Removes and deletes; returns 1 if it was there, 0 otherwise. */
int simstore_remove(simstore *s, int64_t id);

/* Deletes everything and frees the index. */
void simstore_clear(simstore *s);

/* Records that a caller changed in place (a PATCH): marks derived indexes stale. */
void simstore_touch(simstore *s);

/* Largest id stored, or 0 when empty. */
int64_t simstore_max_id(const simstore *s);

#endif
