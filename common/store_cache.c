/* store_cache: the identity map (`clients`) cached in memory per process, done entries only
 * (issue 10 "Store cost"). MongoDB stays the source of truth: a miss reads it. See store.h. */
#include "store_int.h"

#include "errbuf.h"
#include "store_cache.h"

#include <stdlib.h>
#include <string.h>

/* The three chain tables start small and double (rehash) whenever the entries outnumber the
 * buckets, so lookups stay O(1) and a process that caches few clients pays for few buckets
 * (issue 13 "each worker under 16 MB RSS": three fixed 64K-bucket tables were 1.5 MB a process). */
#define CACHE_BUCKETS_MIN 64
#define CACHE_BUCKETS_MAX 262144 /* >= CACHE_MAX: past it chains grow a little, never the table */
#define CACHE_MAX 200000 /* entries; past it the cache starts over (costs reads, never truth) */

/* A cached client: the fields of a done entry (state DONE; no owner, claim id or lease), the key
 * stored at its length (a full store_entry_t per node was ~600 bytes, mostly unused arrays). */
typedef struct cache_node {
    struct cache_node *next_key, *next_pid, *next_mid;
    int64_t created_at_ms, updated_at_ms, ploomes_id, milvus_id;
    char milvus_token[STORE_TOKEN_MAX];
    char origin[STORE_ORIGIN_MAX];
    char codigo[STORE_CODIGO_MAX];
    char milvus_client_token[STORE_TOKEN_MAX];
    char key[]; /* NUL-terminated, < STORE_KEY_MAX */
} cache_node_t;

/* Copies a string that came from an array of the same size (always terminated). */
static void copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void node_set(cache_node_t *n, const store_entry_t *e)
{
    n->created_at_ms = e->created_at_ms;
    n->updated_at_ms = e->updated_at_ms;
    n->ploomes_id = e->ploomes_id;
    n->milvus_id = e->milvus_id;
    copy_field(n->milvus_token, sizeof n->milvus_token, e->milvus_token);
    copy_field(n->origin, sizeof n->origin, e->origin);
    copy_field(n->codigo, sizeof n->codigo, e->codigo);
    copy_field(n->milvus_client_token, sizeof n->milvus_client_token, e->milvus_client_token);
}

static void node_get(const cache_node_t *n, store_entry_t *out)
{
    memset(out, 0, sizeof *out);
    copy_field(out->key, sizeof out->key, n->key);
    out->state = STORE_STATE_DONE;
    out->created_at_ms = n->created_at_ms;
    out->updated_at_ms = n->updated_at_ms;
    out->ploomes_id = n->ploomes_id;
    out->milvus_id = n->milvus_id;
    copy_field(out->milvus_token, sizeof out->milvus_token, n->milvus_token);
    copy_field(out->origin, sizeof out->origin, n->origin);
    copy_field(out->codigo, sizeof out->codigo, n->codigo);
    copy_field(out->milvus_client_token, sizeof out->milvus_client_token, n->milvus_client_token);
}

struct store_client_cache {
    pthread_mutex_t lock;
    size_t count;
    size_t nbuckets;                           /* a power of two, CACHE_BUCKETS_MIN.._MAX */
    cache_node_t **by_key, **by_pid, **by_mid; /* nbuckets chains each */
};

static size_t hash_text(const char *s, size_t nbuckets)
{
    return (size_t)(st_hash_text(s) & (nbuckets - 1));
}

static size_t hash_id(int64_t id, size_t nbuckets)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL;
    return (size_t)((h >> 16) & (nbuckets - 1));
}

static int tables_alloc(store_client_cache_t *c, size_t nbuckets)
{
    cache_node_t **k = calloc(nbuckets, sizeof *k);
    cache_node_t **p = calloc(nbuckets, sizeof *p);
    cache_node_t **m = calloc(nbuckets, sizeof *m);
    if (!k || !p || !m) {
        free(k);
        free(p);
        free(m);
        return -1;
    }
    c->by_key = k;
    c->by_pid = p;
    c->by_mid = m;
    c->nbuckets = nbuckets;
    return 0;
}

store_client_cache_t *st_cache_new(void)
{
    store_client_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (tables_alloc(c, CACHE_BUCKETS_MIN) != 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

/* Moves every node to tables twice as large. On allocation failure the old tables stay (the
 * cache keeps working with longer chains). */
static void grow_locked(store_client_cache_t *c)
{
    size_t old_n = c->nbuckets;
    cache_node_t **old_key = c->by_key, **old_pid = c->by_pid, **old_mid = c->by_mid;
    if (tables_alloc(c, old_n * 2) != 0)
        return;
    for (size_t i = 0; i < old_n; i++) {
        cache_node_t *n = old_key[i];
        while (n) { /* every node is on exactly one by_key chain */
            cache_node_t *next = n->next_key;
            size_t b = hash_text(n->key, c->nbuckets);
            n->next_key = c->by_key[b];
            c->by_key[b] = n;
            n->next_pid = n->next_mid = NULL;
            if (n->ploomes_id) {
                b = hash_id(n->ploomes_id, c->nbuckets);
                n->next_pid = c->by_pid[b];
                c->by_pid[b] = n;
            }
            if (n->milvus_id) {
                b = hash_id(n->milvus_id, c->nbuckets);
                n->next_mid = c->by_mid[b];
                c->by_mid[b] = n;
            }
            n = next;
        }
    }
    free(old_key);
    free(old_pid);
    free(old_mid);
}

/* Frees every node (each is on exactly one by_key chain) and shrinks the tables back to their
 * first size (kept when that allocation fails). */
static void clear_locked(store_client_cache_t *c)
{
    for (size_t i = 0; i < c->nbuckets; i++) {
        cache_node_t *n = c->by_key[i];
        while (n) {
            cache_node_t *next = n->next_key;
            free(n);
            n = next;
        }
        c->by_key[i] = c->by_pid[i] = c->by_mid[i] = NULL;
    }
    c->count = 0;
    if (c->nbuckets > CACHE_BUCKETS_MIN) {
        cache_node_t **k = c->by_key, **p = c->by_pid, **m = c->by_mid;
        size_t n = c->nbuckets;
        if (tables_alloc(c, CACHE_BUCKETS_MIN) == 0) {
            free(k);
            free(p);
            free(m);
        } else {
            c->by_key = k;
            c->by_pid = p;
            c->by_mid = m;
            c->nbuckets = n;
        }
    }
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
    size_t kb = hash_text(e->key, c->nbuckets);
    cache_node_t *n = c->by_key[kb];
    while (n && strcmp(n->key, e->key) != 0)
        n = n->next_key;
    if (n) { /* known: add what it lacked, re-index its ids */
        if (n->ploomes_id)
            unlink_id(&c->by_pid[hash_id(n->ploomes_id, c->nbuckets)], n, true);
        if (n->milvus_id)
            unlink_id(&c->by_mid[hash_id(n->milvus_id, c->nbuckets)], n, false);
        store_entry_t merged;
        node_get(n, &merged);
        st_overlay_fields(&merged, e);
        node_set(n, &merged);
    } else {
        if (c->count >= CACHE_MAX) {
            clear_locked(c);
        } else if (c->count >= c->nbuckets && c->nbuckets < CACHE_BUCKETS_MAX) {
            grow_locked(c);
        }
        kb = hash_text(e->key, c->nbuckets); /* the tables may have changed */
        size_t klen = strnlen(e->key, sizeof e->key - 1);
        n = calloc(1, sizeof *n + klen + 1);
        if (!n) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        memcpy(n->key, e->key, klen);
        n->key[klen] = '\0';
        node_set(n, e);
        n->next_key = c->by_key[kb];
        c->by_key[kb] = n;
        c->count++;
    }
    if (n->ploomes_id) {
        size_t b = hash_id(n->ploomes_id, c->nbuckets);
        n->next_pid = c->by_pid[b];
        c->by_pid[b] = n;
    }
    if (n->milvus_id) {
        size_t b = hash_id(n->milvus_id, c->nbuckets);
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
    size_t nb = c->nbuckets;
    if (by == BY_KEY) {
        for (n = c->by_key[hash_text(key, nb)]; n && strcmp(n->key, key) != 0; n = n->next_key) {
        }
    } else if (by == BY_PID) {
        for (n = c->by_pid[hash_id(id, nb)]; n && n->ploomes_id != id; n = n->next_pid) {
        }
    } else {
        for (n = c->by_mid[hash_id(id, nb)]; n && n->milvus_id != id; n = n->next_mid) {
        }
    }
    if (n)
        node_get(n, out);
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

size_t st_cache_buckets(store_client_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->nbuckets;
    pthread_mutex_unlock(&c->lock);
    return n;
}

size_t st_cache_count(store_client_cache_t *c)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->count;
    pthread_mutex_unlock(&c->lock);
    return n;
}
