/* Regression test for a finding of tests/soak/it_hostile_records.c: json_parse_bounded()
 * accepted a \u0000 escape inside a string, and cJSON cuts the C string there, so a contact's
 * "Register":"52998224725\u0000x" was read as the valid CPF 52998224725 and a client was
 * created for it. Now the strict parse refuses a NUL (escaped or raw), and the lenient parse
 * turns the escape into bytes that json_validate_utf8() flags (the record is skipped, never
 * read cut short). An escaped backslash followed by the text u0000 stays ordinary text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "json.h"

static void test_strict_refuses_escaped_nul(void **state)
{
    (void)state;
    const char *text = "{\"Register\":\"52998224725\\u0000x\"}";
    char err[160];
    cJSON *root = json_parse_bounded(text, strlen(text), 1024, err, sizeof err);
    assert_null(root);
    assert_non_null(strstr(err, "NUL"));
    assert_non_null(strstr(err, "byte 24"));
}

static void test_strict_refuses_raw_nul(void **state)
{
    (void)state;
    const char text[] = "{\"Name\":\"ab\0cd\"}";
    char err[160];
    assert_null(json_parse_bounded(text, sizeof text - 1, 1024, err, sizeof err));
    assert_non_null(strstr(err, "NUL byte at byte 11"));
}

static void test_escaped_backslash_is_text(void **state)
{
    (void)state;
    const char *text = "{\"Name\":\"x\\\\u0000y\",\"K\":\"\\\\\"}";
    cJSON *root = json_parse_bounded(text, strlen(text), 1024, NULL, 0);
    assert_non_null(root);
    const char *name = NULL;
    assert_int_equal(json_get_string(root, "Name", &name), JSON_OK);
    assert_string_equal(name, "x\\u0000y");
    cJSON_Delete(root);
}

static void test_lenient_flags_the_string(void **state)
{
    (void)state;
    const char *text = "{\"value\":[{\"Id\":1,\"Register\":\"52998224725\\u0000x\"}]}";
    size_t repaired = 0;
    char err[160];
    cJSON *root = json_parse_bounded_lenient(text, strlen(text), 1024, &repaired, err, sizeof err);
    assert_non_null(root);
    assert_int_equal(repaired, 1);
    char path[64];
    assert_int_equal(json_validate_utf8(root, path, sizeof path), -1);
    assert_string_equal(path, "$.value[0].Register");
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "value"), 0);
    const char *reg = NULL;
    assert_int_equal(json_get_string(row, "Register", &reg), JSON_BAD_VALUE);
    cJSON_Delete(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_refuses_escaped_nul),
        cmocka_unit_test(test_strict_refuses_raw_nul),
        cmocka_unit_test(test_escaped_backslash_is_text),
        cmocka_unit_test(test_lenient_flags_the_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
