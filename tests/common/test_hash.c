/* hash_: SHA-256 known-answer vectors (FIPS 180-2) and the SPEC §2 event id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

static const struct {
    const char *input;
    const char *hex;
} VECTORS[] = {
    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
};

static void test_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
        char out[HASH_HEX_SIZE];
        assert_int_equal(hash_sha256_hex(VECTORS[i].input, strlen(VECTORS[i].input), out), 0);
        assert_string_equal(out, VECTORS[i].hex);
    }
}

static void test_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *buf = malloc(n);
    assert_non_null(buf);
    memset(buf, 'a', n);
    char out[HASH_HEX_SIZE];
    assert_int_equal(hash_sha256_hex(buf, n, out), 0);
    free(buf);
    assert_string_equal(out, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_null_empty_and_binary(void **state)
{
    (void)state;
    char out[HASH_HEX_SIZE];
    assert_int_equal(hash_sha256_hex(NULL, 0, out), 0);
    assert_string_equal(out, VECTORS[0].hex);
    assert_int_equal(hash_sha256_hex(NULL, 3, out), -1);
    assert_string_equal(out, "");
    /* Embedded NUL bytes are hashed, not treated as an end. */
    char a[HASH_HEX_SIZE], b[HASH_HEX_SIZE];
    assert_int_equal(hash_sha256_hex("ab\0c", 4, a), 0);
    assert_int_equal(hash_sha256_hex("ab", 2, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal((int)strlen(a), 64);
    for (size_t i = 0; i < 64; i++)
        assert_true((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
}

static void test_event_id(void **state)
{
    (void)state;
    char out[HASH_HEX_SIZE];
    /* Expected values: printf 'source|entity|id|stamp' | sha256sum */
    assert_int_equal(hash_event_id("ploomes", "task", "123", "2024-03-01T10:00:00-03:00", out), 0);
    assert_string_equal(out, "eebe22621c1563fc3beb4b051a15750a6cda52dddfe892d572e972b4f441ff62");
    assert_int_equal(hash_event_id("milvus", "client", "42", NULL, out), 0);
    assert_string_equal(out, "cb84a0be606fa87fedfad202a558fce61e8b75be5e89825eb55a4365754b4305");
    /* Same as hashing the joined text. */
    const char *joined = "milvus|client|42|";
    char direct[HASH_HEX_SIZE];
    assert_int_equal(hash_sha256_hex(joined, strlen(joined), direct), 0);
    assert_string_equal(out, direct);
    /* A different stamp (an edit) gives a different event id. */
    char other[HASH_HEX_SIZE];
    assert_int_equal(hash_event_id("ploomes", "task", "123", "2024-03-01T10:00:01-03:00", other),
                     0);
    assert_string_not_equal(other, "eebe22621c1563fc3beb4b051a15750a6cda52dddfe892d572e972b4f441ff62");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_null_empty_and_binary),
        cmocka_unit_test(test_event_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
