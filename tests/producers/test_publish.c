/* Unit tests for publish: SPEC §2 headers and event ids. Expected hashes were computed
 * independently (printf '...' | sha256sum). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "clock.h"
#include "ploomes_pager.h"
#include "publish.h"

static void test_ploomes_headers(void **state)
{
    (void)state;
    publish_headers_t h;
    assert_int_equal(publish_headers_build(&h, "ploomes", "contact", "105401839",
                                           "2022-12-15T14:59:45.13-03:00",
                                           "2024-05-01T12:34:56.789Z"),
                     0);
    const char *names[] = {"source", "entity", "fetched-at", "event-id"};
    const char *values[] = {"ploomes", "contact", "2024-05-01T12:34:56.789Z",
                            /* sha256("ploomes|contact|105401839|2022-12-15T14:59:45.13-03:00") */
                            "d3e7f873ebff85eb4fe3a1fcc24828d5e25ff1d36c4d92abf278b863bc525e1e"};
    for (int i = 0; i < PUBLISH_HEADER_COUNT; i++) {
        assert_string_equal(h.names[i], names[i]);
        assert_string_equal(h.values[i], values[i]);
    }
}

static void test_milvus_event_id(void **state)
{
    (void)state;
    /* Milvus: stamp = hex SHA-256 of the value. */
    const char *value = "{\"id\":30753,\"nome_fantasia\":\"X\"}";
    char vhash[HASH_HEX_SIZE];
    assert_int_equal(hash_sha256_hex(value, strlen(value), vhash), 0);
    assert_string_equal(vhash, "60d0ab2912b1e00a6ec1846de722173ce418887c3cec4e1b7db29c3ec83447c8");
    publish_headers_t h;
    assert_int_equal(publish_headers_build(&h, "milvus", "client", "30753", vhash,
                                           "2024-05-01T12:34:56.789Z"),
                     0);
    assert_string_equal(h.values[0], "milvus");
    assert_string_equal(h.values[1], "client");
    assert_string_equal(h.values[3],
                        "4ffd97bb4338557f7ee1b1873237d30b7befa53e4659268d452a427b406cbde3");
}

static void test_headers_reject(void **state)
{
    (void)state;
    publish_headers_t h;
    assert_int_equal(publish_headers_build(&h, NULL, "contact", "1", "s", "t"), -1);
    assert_int_equal(publish_headers_build(&h, "ploomes", "", "1", "s", "t"), -1);
    assert_int_equal(publish_headers_build(&h, "ploomes", "contact", "", "s", "t"), -1);
    assert_int_equal(publish_headers_build(&h, "ploomes", "a-very-long-entity-name", "1", "s",
                                           "t"),
                     -1);
}

static void test_key_and_time(void **state)
{
    (void)state;
    char key[PUBLISH_KEY_SIZE];
    assert_string_equal(publish_key(105401839, key, sizeof key), "105401839");
    assert_string_equal(publish_key(9007199254740993LL, key, sizeof key), "9007199254740993");
    /* fetched-at as the sources write it: RFC 3339 UTC with milliseconds, and it fits */
    char now[PUBLISH_TIME_SIZE];
    int64_t before = clock_wall_ms();
    clock_rfc3339(clock_wall_ms(), now, sizeof now);
    assert_int_equal(strlen(now), 24); /* YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(now[10], 'T');
    assert_int_equal(now[23], 'Z');
    ploomes_instant_t t;
    assert_int_equal(ploomes_instant_parse(now, &t), 0);
    int64_t after = clock_wall_ms();
    assert_true(t.seconds >= before / 1000 && t.seconds <= after / 1000);
    publish_headers_t h;
    assert_int_equal(publish_headers_build(&h, "milvus", "client", "1", "x", now), 0);
    assert_string_equal(h.values[2], now);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ploomes_headers),
        cmocka_unit_test(test_milvus_event_id),
        cmocka_unit_test(test_headers_reject),
        cmocka_unit_test(test_key_and_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
