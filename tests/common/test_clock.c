/* clock_ and errbuf_: the RFC 3339 formatter (round trip through config_parse_rfc3339), the two
 * clocks, and the error buffer's NULL / truncation rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "config.h"
#include "errbuf.h"

static const struct {
    int64_t ms;
    const char *text;
} STAMPS[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1708743600000, "2024-02-24T03:00:00.000Z"},
    {1709294401999, "2024-03-01T12:00:01.999Z"},
    {951782400123, "2000-02-29T00:00:00.123Z"},
    {-1, "1969-12-31T23:59:59.999Z"}, /* floor, not truncation, before 1970 */
};

static void test_rfc3339_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof STAMPS / sizeof STAMPS[0]; i++) {
        char buf[CLOCK_RFC3339_SIZE];
        clock_rfc3339(STAMPS[i].ms, buf, sizeof buf);
        assert_string_equal(buf, STAMPS[i].text);
        int64_t back = 0;
        assert_int_equal(config_parse_rfc3339(buf, &back), 0);
        assert_int_equal(back, STAMPS[i].ms);
    }
}

static void test_rfc3339_small_buffer(void **state)
{
    (void)state;
    char buf[8] = "xxxxxxx";
    clock_rfc3339(0, buf, sizeof buf);
    assert_true(memchr(buf, '\0', sizeof buf) != NULL);
    clock_rfc3339(0, buf, 0); /* must not write */
}

static void test_clocks_advance(void **state)
{
    (void)state;
    int64_t m0 = clock_mono_ms();
    int64_t m1 = clock_mono_ms();
    assert_true(m1 >= m0);
    assert_true(clock_wall_ms() > 1700000000000); /* after Nov 2023 */
}

static void test_errbuf(void **state)
{
    (void)state;
    char err[8];
    errbuf_set(err, sizeof err, "topic %s", "abcdefgh");
    assert_string_equal(err, "topic a"); /* truncated, terminated */
    errbuf_set(NULL, 0, "ignored %d", 1);
    errbuf_set(NULL, 16, "ignored %d", 2);
    err[0] = 'x';
    errbuf_set(err, 0, "not written");
    assert_int_equal(err[0], 'x');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc3339_table),
        cmocka_unit_test(test_rfc3339_small_buffer),
        cmocka_unit_test(test_clocks_advance),
        cmocka_unit_test(test_errbuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
