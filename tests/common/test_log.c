/* log_: the logfmt line shape, the level threshold, value quoting, and that registered secrets
 * never reach a line whatever the caller formatted. Lines are captured through log_set_fd(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Captures what log_ writes between capture_begin() and capture_end(). */
static int capture_fd = -1;
static char captured[16384];

static void capture_begin(void)
{
    char path[] = "/tmp/test_log_XXXXXX";
    capture_fd = mkstemp(path);
    assert_true(capture_fd >= 0);
    unlink(path);
    log_set_fd(capture_fd);
}

static const char *capture_end(void)
{
    log_set_fd(2);
    off_t size = lseek(capture_fd, 0, SEEK_END);
    assert_true(size >= 0 && (size_t)size < sizeof captured);
    assert_int_equal(lseek(capture_fd, 0, SEEK_SET), 0);
    ssize_t n = read(capture_fd, captured, (size_t)size);
    assert_int_equal(n, size);
    captured[n] = '\0';
    close(capture_fd);
    capture_fd = -1;
    return captured;
}

static int teardown(void **state)
{
    (void)state;
    log_clear_secrets();
    log_init("test", LOG_INFO);
    return 0;
}

static void line_shape(void **state)
{
    (void)state;
    log_init("ploomes-producer", LOG_INFO);
    capture_begin();
    log_msg(LOG_INFO, "page_done", "entity=%s rows=%d", "contact", 300);
    const char *out = capture_end();
    assert_true(strncmp(out, "time=", 5) == 0);
    /* time=YYYY-MM-DDTHH:MM:SS.mmmZ */
    assert_int_equal(out[5 + 4], '-');
    assert_int_equal(out[5 + 10], 'T');
    assert_int_equal(out[5 + 23], 'Z');
    assert_non_null(strstr(out, " level=info bin=ploomes-producer event=page_done entity=contact "
                                "rows=300\n"));
    assert_int_equal(strchr(out, '\n')[1], '\0'); /* exactly one line */
}

static void threshold(void **state)
{
    (void)state;
    static const struct {
        log_level_t threshold;
        log_level_t line;
        bool written;
    } rows[] = {
        {LOG_INFO, LOG_ERROR, true}, {LOG_INFO, LOG_WARN, true},  {LOG_INFO, LOG_INFO, true},
        {LOG_INFO, LOG_DEBUG, false}, {LOG_ERROR, LOG_WARN, false}, {LOG_DEBUG, LOG_DEBUG, true},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        log_init("t", rows[i].threshold);
        assert_int_equal(log_enabled(rows[i].line), rows[i].written);
        capture_begin();
        log_msg(rows[i].line, "e", NULL);
        const char *out = capture_end();
        assert_int_equal(out[0] != '\0', rows[i].written);
    }
}

static void level_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        log_level_t level;
    } rows[] = {
        {"error", 0, LOG_ERROR}, {"WARN", 0, LOG_WARN}, {"Info", 0, LOG_INFO},
        {"debug", 0, LOG_DEBUG}, {"verbose", -1, LOG_INFO}, {"", -1, LOG_INFO}, {NULL, -1, LOG_INFO},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        log_level_t got = LOG_INFO;
        assert_int_equal(log_level_parse(rows[i].text, &got), rows[i].rc);
        assert_int_equal(got, rows[i].level);
    }
    assert_string_equal(log_level_name(LOG_WARN), "warn");
}

static void quoting(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out;
    } rows[] = {
        {"plain", "plain"},
        {"two words", "\"two words\""},
        {"a=b", "\"a=b\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"back\\slash", "\"back\\\\slash\""},
        {"line\nbreak\ttab", "\"line\\nbreak\\ttab\""},
        {"bell\x07", "\"bell\\x07\""},
        {"", "\"\""},
        {NULL, "\"\""},
        {"São Paulo", "\"São Paulo\""},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        assert_string_equal(log_quote(buf, sizeof buf, rows[i].in), rows[i].out);
}

static void quoting_truncates_within_the_buffer(void **state)
{
    (void)state;
    char buf[16];
    memset(buf, 'x', sizeof buf);
    log_quote(buf, sizeof buf, "a long value with spaces that does not fit");
    assert_true(strlen(buf) < sizeof buf);
    assert_int_equal(buf[0], '"');
    assert_non_null(strstr(buf, "...\""));
    log_quote(buf, sizeof buf, "averyveryverylongbarevalue");
    assert_true(strlen(buf) < sizeof buf);
    assert_non_null(strstr(buf, "..."));
}

static void secrets_never_reach_a_line(void **state)
{
    (void)state;
    const char *key = "A1B2C3D4E5F60718293A4B5C6D7E8F90";
    const char *inner = "B2C3D4E5"; /* a second secret inside the first one */
    log_init("t", LOG_DEBUG);
    assert_int_equal(log_add_secret(inner), 0);
    assert_int_equal(log_add_secret(key), 0);
    assert_int_equal(log_add_secret(key), 0); /* registering again is harmless */
    assert_int_equal(log_add_secret("abc"), 0); /* too short: ignored, not an error */
    capture_begin();
    log_msg(LOG_ERROR, "http_failed", "header=\"User-Key: %s\" url=%s", key,
            "https://api2.ploomes.com/Contacts");
    log_msg(LOG_DEBUG, "debug", "twice=%s%s alone=%s", key, key, inner);
    char q[128];
    log_msg(LOG_WARN, "quoted", "value=%s", log_quote(q, sizeof q, key));
    const char *out = capture_end();
    assert_null(strstr(out, key));
    assert_null(strstr(out, inner));
    assert_null(strstr(out, "A1B2C3")); /* no fragment of the longer key left behind */
    assert_non_null(strstr(out, "User-Key: ***"));
    assert_non_null(strstr(out, "twice=****** alone=***"));
    assert_non_null(strstr(out, "url=https://api2.ploomes.com/Contacts"));
}

/* Issue 12 (secrets scan): a key an API echoes back URL-encoded or in base64 is scrubbed too. */
static void echoed_secret_forms_never_reach_a_line(void **state)
{
    (void)state;
    log_clear_secrets();
    log_init("t", LOG_DEBUG);
    assert_int_equal(log_add_secret("k+y/Secret=1"), 0);
    char pct[64], b64[64];
    log_secret_forms("k+y/Secret=1", pct, sizeof pct, b64, sizeof b64);
    assert_string_equal(pct, "k%2By%2FSecret%3D1");
    assert_string_equal(b64, "ayt5L1NlY3JldD0x");
    log_secret_forms("plain-Key_1.~", pct, sizeof pct, b64, sizeof b64);
    assert_string_equal(pct, ""); /* same as the secret: nothing more to scrub */
    log_secret_forms("k+y/Secret=1", pct, 8, b64, 8);
    assert_string_equal(pct, ""); /* does not fit: empty, never cut */
    assert_string_equal(b64, "");
    capture_begin();
    log_msg(LOG_WARN, "echo", "body=\"token k%%2By%%2FSecret%%3D1 or ayt5L1NlY3JldD0x\"");
    const char *out = capture_end();
    assert_null(strstr(out, "Secret"));
    assert_null(strstr(out, "ayt5L1"));
    assert_non_null(strstr(out, "body=\"token *** or ***\""));
    log_clear_secrets();
}

static void long_lines_stay_one_line(void **state)
{
    (void)state;
    log_init("t", LOG_INFO);
    char big[20000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    capture_begin();
    log_msg(LOG_INFO, "big", "value=%s", big);
    log_msg(LOG_INFO, "after", NULL);
    const char *out = capture_end();
    const char *first_nl = strchr(out, '\n');
    assert_non_null(first_nl);
    assert_non_null(strstr(first_nl + 1, "event=after\n"));
    assert_true((size_t)(first_nl - out) < 8192);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(line_shape, teardown),
        cmocka_unit_test_teardown(threshold, teardown),
        cmocka_unit_test_teardown(level_parse, teardown),
        cmocka_unit_test_teardown(quoting, teardown),
        cmocka_unit_test_teardown(quoting_truncates_within_the_buffer, teardown),
        cmocka_unit_test_teardown(secrets_never_reach_a_line, teardown),
        cmocka_unit_test_teardown(echoed_secret_forms_never_reach_a_line, teardown),
        cmocka_unit_test_teardown(long_lines_stay_one_line, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
