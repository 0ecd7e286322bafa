/* store_cache: the identity map (`clients`) cached in memory per process, done entries only
 * (issue 10 "Store cost"). MongoDB stays the source of truth: a miss reads it. See store.h. */
#include "store_int.h"

#include "errbuf.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_BUCKETS 65536
#define CACHE_MAX 200000 /* entries; past it the cache starts over (costs reads, never truth) */

typedef struct cache_node {
    struct cache_node *next_key, *next_pid, *next_mid;
    store_entry_t e;
} cache_node_t;

struct store_client_cache {
    pthread_mutex_t lock;
    size_t count;
    cache_node_t **by_key, **by_pid, **by_mid; /* CACHE_BUCKETS chains each */
};

static size_t hash_text(const char *s) { return (size_t)(st_hash_text(s) % CACHE_BUCKETS); }

static size_t hash_id(int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)((h >> 16) % CACHE_BUCKETS);
}

store_client_cache_t *st_cache_new(void)
{
    store_client_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->by_key = calloc(CACHE_BUCKETS, sizeof *c->by_key);
    c->by_pid = calloc(CACHE_BUCKETS, sizeof *c->by_pid);
    c->by_mid = calloc(CACHE_BUCKETS, sizeof *c->by_mid);
    if (!c->by_key || !c->by_pid || !c->by_mid) {
        free(c->by_key);
        free(c->by_pid);
        free(c->by_mid);
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

/* Frees every node (each is on exactly one by_key chain). */
static void clear_locked(store_client_cache_t *c)
{
    for (size_t i = 0; i < CACHE_BUCKETS; i++) {
        cache_node_t *n = c->by_key[i];
        while (n) {
            cache_node_t *next = n->next_key;
            free(n);
            n = next;
        }
        c->by_key[i] = c->by_pid[i] = c->by_mid[i] = NULL;
    }
    c->count = 0;
}

void st_cache_free(store_client_cache_t *c)
{
    if (!c)
        return;
    clear_locked(c);
    pthread_mutex_destroy(&c->lock);
    free(c->by_key);
    free(c->by_pid);
    free(c->by_mid);
    free(c);
}

static void unlink_id(cache_node_t **chain, cache_node_t *n, bool pid)
{
    for (cache_node_t **pp = chain; *pp; pp = pid ? &(*pp)->next_pid : &(*pp)->next_mid) {
        if (*pp == n) {
            *pp = pid ? n->next_pid : n->next_mid;
            return;
        }
    }
}

void st_cache_put(store_t *st, const store_entry_t *e)
{
    if (!e || e->state != STORE_STATE_DONE || !e->key[0])
        return;
    store_client_cache_t *c = st->clients;
    pthread_mutex_lock(&c->lock);
    size_t kb = hash_text(e->key);
    cache_node_t *n = c->by_key[kb];
    while (n && strcmp(n->e.key, e->key) != 0)
        n = n->next_key;
    if (n) { /* known: add what it lacked, re-index its ids */
        if (n->e.ploomes_id)
            unlink_id(&c->by_pid[hash_id(n->e.ploomes_id)], n, true);
        if (n->e.milvus_id)
            unlink_id(&c->by_mid[hash_id(n->e.milvus_id)], n, false);
        st_overlay_fields(&n->e, e);
    } else {
        if (c->count >= CACHE_MAX)
            clear_locked(c);
        n = calloc(1, sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        n->e = *e;
        n->next_key = c->by_key[kb];
        c->by_key[kb] = n;
        c->count++;
    }
    n->e.owner[0] = n->e.claim_id[0] = '\0';
    n->e.lease_until_ms = 0;
    if (n->e.ploomes_id) {
        size_t b = hash_id(n->e.ploomes_id);
        n->next_pid = c->by_pid[b];
        c->by_pid[b] = n;
    }
    if (n->e.milvus_id) {
        size_t b = hash_id(n->e.milvus_id);
        n->next_mid = c->by_mid[b];
        c->by_mid[b] = n;
    }
    pthread_mutex_unlock(&c->lock);
}

typedef enum { BY_KEY, BY_PID, BY_MID } lookup_t;

static bool cache_get(store_t *st, lookup_t by, const char *key, int64_t id, store_entry_t *out)
{
    store_client_cache_t *c = st->clients;
    pthread_mutex_lock(&c->lock);
    cache_node_t *n = NULL;
    if (by == BY_KEY) {
        for (n = c->by_key[hash_text(key)]; n && strcmp(n->e.key, key) != 0; n = n->next_key) {
        }
    } else if (by == BY_PID) {
        for (n = c->by_pid[hash_id(id)]; n && n->e.ploomes_id != id; n = n->next_pid) {
        }
    } else {
        for (n = c->by_mid[hash_id(id)]; n && n->e.milvus_id != id; n = n->next_mid) {
        }
    }
    if (n)
        *out = n->e;
    pthread_mutex_unlock(&c->lock);
    return n != NULL;
}

int store_client_get_cached(store_t *st, const char *key, store_entry_t *out, char *err,
                            size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!st_key_ok(key, "store_client_get_cached", err, errlen))
        return STORE_REJECTED;
    if (cache_get(st, BY_KEY, key, 0, out))
        return STORE_OK;
    int rc = store_get(st, STORE_KIND_CLIENTS, key, out, err, errlen);
    if (rc == STORE_OK)
        st_cache_put(st, out);
    return rc;
}

/* A cached lookup by Ploomes or Milvus id; a miss reads MongoDB through `read`. */
static int by_id_cached(store_t *st, lookup_t by, int64_t id,
                        int (*read)(store_t *, int64_t, store_entry_t *, char *, size_t),
                        store_entry_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (id && cache_get(st, by, NULL, id, out))
        return STORE_OK;
    int rc = read(st, id, out, err, errlen);
    if (rc == STORE_OK)
        st_cache_put(st, out);
    return rc;
}

int store_client_by_ploomes_id_cached(store_t *st, int64_t ploomes_id, store_entry_t *out,
                                      char *err, size_t errlen)
{
    return by_id_cached(st, BY_PID, ploomes_id, store_client_by_ploomes_id, out, err, errlen);
}

int store_client_by_milvus_id_cached(store_t *st, int64_t milvus_id, store_entry_t *out,
                                     char *err, size_t errlen)
{
    return by_id_cached(st, BY_MID, milvus_id, store_client_by_milvus_id, out, err, errlen);
}
