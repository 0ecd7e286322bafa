/* store_cache memory (issue 13, "each worker under 16 MB RSS"): a fresh identity-map cache
 * allocates a few buckets, not three 64K-bucket tables (1.5 MB a process); its tables double as
 * entries are added (never more entries than buckets, so lookups stay O(1)) and every entry is
 * still found by key, Ploomes id and Milvus id after each growth, including ids added to an
 * entry after it was cached. Pure in-memory: only cached hits are looked up (a miss would read
 * MongoDB). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <malloc.h>

#include "store_cache.h"
#include "store_int.h"

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CACHE_TEST_ASAN 1
#endif
#endif

static void entry(store_entry_t *e, int i, bool with_mid)
{
    memset(e, 0, sizeof *e);
    int n = snprintf(e->key, sizeof e->key, "doc:%08d", i);
    assert_true(n > 0 && (size_t)n < sizeof e->key);
    e->state = STORE_STATE_DONE;
    e->ploomes_id = 1000000 + i;
    e->milvus_id = with_mid ? 5000000 + i : 0;
    n = snprintf(e->milvus_token, sizeof e->milvus_token, "tok-%d", i);
    assert_true(n > 0 && (size_t)n < sizeof e->milvus_token);
    memcpy(e->origin, "ploomes", sizeof "ploomes");
    e->created_at_ms = 1700000000000 + i;
    e->updated_at_ms = 1700000000000 + 2 * (int64_t)i;
    memcpy(e->owner, "someone", sizeof "someone"); /* claim fields are never cached */
    memcpy(e->claim_id, "claim", sizeof "claim");
    e->lease_until_ms = 42;
}

static void assert_found(store_t *st, int i, bool with_mid)
{
    char err[256];
    store_entry_t out, want;
    entry(&want, i, with_mid);
    assert_int_equal(store_client_get_cached(st, want.key, &out, err, sizeof err), STORE_OK);
    assert_string_equal(out.key, want.key);
    assert_int_equal(out.ploomes_id, want.ploomes_id);
    assert_string_equal(out.milvus_token, want.milvus_token);
    assert_string_equal(out.origin, want.origin);
    assert_int_equal(out.created_at_ms, want.created_at_ms);
    assert_int_equal(out.updated_at_ms, want.updated_at_ms);
    assert_int_equal(out.milvus_id, want.milvus_id);
    assert_int_equal(out.state, STORE_STATE_DONE);
    assert_string_equal(out.owner, "");
    assert_string_equal(out.claim_id, "");
    assert_int_equal(out.lease_until_ms, 0);
    assert_int_equal(store_client_by_ploomes_id_cached(st, want.ploomes_id, &out, err, sizeof err),
                     STORE_OK);
    assert_string_equal(out.key, want.key);
    if (with_mid) {
        assert_int_equal(
            store_client_by_milvus_id_cached(st, want.milvus_id, &out, err, sizeof err), STORE_OK);
        assert_string_equal(out.key, want.key);
    }
}

static void test_fresh_cache_is_small(void **state)
{
    (void)state;
    store_client_cache_t *c = st_cache_new();
    assert_non_null(c);
    assert_int_equal(st_cache_count(c), 0);
    /* three tables of pointers: at most 4 KiB each up front */
    assert_true(st_cache_buckets(c) * sizeof(void *) <= 4096);
    st_cache_free(c);
}

/* What the allocator handed out for a fresh cache (glibc's own accounting: heap + mmapped
 * chunks). AddressSanitizer replaces the allocator (mallinfo2 says nothing there): skipped. */
static void test_fresh_cache_allocates_little(void **state)
{
    (void)state;
#if defined(CACHE_TEST_ASAN)
    skip();
#else
    struct mallinfo2 before = mallinfo2();
    store_client_cache_t *c = st_cache_new();
    assert_non_null(c);
    struct mallinfo2 after = mallinfo2();
    size_t used = (after.uordblks + after.hblkhd) - (before.uordblks + before.hblkhd);
    assert_true(used < 64 * 1024); /* three 64K-bucket tables were 1.5 MB */
    st_cache_free(c);
#endif
}

static void test_grows_and_finds_everything(void **state)
{
    (void)state;
    store_t st;
    memset(&st, 0, sizeof st);
    st.clients = st_cache_new();
    assert_non_null(st.clients);
    size_t first = st_cache_buckets(st.clients);
    const int total = 5000;
    size_t last = first;
    int growths = 0;
    for (int i = 0; i < total; i++) {
        store_entry_t e;
        entry(&e, i, false); /* the Milvus id comes later (below) */
        st_cache_put(&st, &e);
        size_t b = st_cache_buckets(st.clients);
        assert_int_equal(b & (b - 1), 0); /* a power of two */
        assert_true(st_cache_count(st.clients) <= b);
        if (b != last) {
            growths++;
            last = b;
            for (int j = 0; j <= i; j += 97) /* earlier entries survive the rehash */
                assert_found(&st, j, false);
        }
    }
    assert_int_equal(st_cache_count(st.clients), total);
    assert_true(growths >= 5);
    assert_true(st_cache_buckets(st.clients) < 4 * (size_t)total); /* grows with use only */
    /* the same keys again with their Milvus ids: re-indexed, no new entries */
    for (int i = 0; i < total; i++) {
        store_entry_t e;
        entry(&e, i, true);
        st_cache_put(&st, &e);
    }
    assert_int_equal(st_cache_count(st.clients), total);
    for (int i = 0; i < total; i++)
        assert_found(&st, i, true);
    /* a pending entry is never cached */
    store_entry_t p;
    entry(&p, total + 1, true);
    p.state = STORE_STATE_PENDING;
    st_cache_put(&st, &p);
    assert_int_equal(st_cache_count(st.clients), total);
    st_cache_free(st.clients);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_cache_is_small),
        cmocka_unit_test(test_fresh_cache_allocates_little),
        cmocka_unit_test(test_grows_and_finds_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
