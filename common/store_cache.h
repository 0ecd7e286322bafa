/* store_cache: introspection of the identity-map cache (store_cache.c; the cached lookups are
 * declared in store.h, the cache's lifecycle in store_int.h). For tests and diagnostics.
 *
 * The cache keeps three chained hash tables (by key, Ploomes id, Milvus id) that start at a
 * few buckets and double whenever the entries outnumber the buckets, so a process pays for
 * what it caches (issue 13, worker memory) and lookups stay O(1).
 * Ownership: nothing returned here is owned by the caller. Thread-safe (takes the cache lock).
 */
#ifndef PIPELINE_STORE_CACHE_H
#define PIPELINE_STORE_CACHE_H

#include <stddef.h>

typedef struct store_client_cache store_client_cache_t;

/* Buckets of each of the three tables (a power of two), and the entries held. */
size_t st_cache_buckets(store_client_cache_t *c);
size_t st_cache_count(store_client_cache_t *c);

#endif
