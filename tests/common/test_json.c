/* json_: typed getters, 64-bit ids, UTF-8 validation, bounded parse, owned print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static cJSON *parse(const char *text)
{
    char err[128];
    cJSON *root = json_parse_bounded(text, strlen(text), 1 << 20, err, sizeof err);
    if (!root)
        fail_msg("parse failed: %s", err);
    return root;
}

static void test_get_string_statuses(void **state)
{
    (void)state;
    cJSON *o = parse("{\"s\":\"x\\u00e7\",\"n\":null,\"i\":5,\"b\":true,\"e\":\"\"}");
    const char *s = "untouched";
    assert_int_equal(json_get_string(o, "s", &s), JSON_OK);
    assert_string_equal(s, "x\xc3\xa7");
    assert_int_equal(json_get_string(o, "e", &s), JSON_OK);
    assert_string_equal(s, "");
    s = "untouched";
    assert_int_equal(json_get_string(o, "missing", &s), JSON_MISSING);
    assert_int_equal(json_get_string(o, "n", &s), JSON_NULL);
    assert_int_equal(json_get_string(o, "i", &s), JSON_WRONG_TYPE);
    assert_int_equal(json_get_string(o, "b", &s), JSON_WRONG_TYPE);
    assert_string_equal(s, "untouched"); /* only JSON_OK writes */
    assert_int_equal(json_get_string(o, "S", &s), JSON_MISSING); /* case-sensitive */
    assert_int_equal(json_get_string(NULL, "s", &s), JSON_MISSING);
    cJSON *arr = parse("[1,2]");
    assert_int_equal(json_get_string(arr, "s", &s), JSON_MISSING);
    cJSON_Delete(arr);
    /* A string that is not UTF-8 is a bad value. */
    cJSON_AddItemToObject(o, "bad", cJSON_CreateString("a\xff"));
    assert_int_equal(json_get_string(o, "bad", &s), JSON_BAD_VALUE);
    cJSON_Delete(o);
}

static void test_get_bool(void **state)
{
    (void)state;
    cJSON *o = parse("{\"t\":true,\"f\":false,\"n\":null,\"one\":1,\"str\":\"true\"}");
    bool b = false;
    assert_int_equal(json_get_bool(o, "t", &b), JSON_OK);
    assert_true(b);
    assert_int_equal(json_get_bool(o, "f", &b), JSON_OK);
    assert_false(b);
    assert_int_equal(json_get_bool(o, "n", &b), JSON_NULL);
    assert_int_equal(json_get_bool(o, "one", &b), JSON_WRONG_TYPE);
    assert_int_equal(json_get_bool(o, "str", &b), JSON_WRONG_TYPE);
    assert_int_equal(json_get_bool(o, "x", &b), JSON_MISSING);
    cJSON_Delete(o);
}

static const struct {
    const char *json; /* value of "v" */
    json_status_t status;
    int64_t value;
} INT_CASES[] = {
    {"0", JSON_OK, 0},
    {"42", JSON_OK, 42},
    {"-7", JSON_OK, -7},
    {"3000000000", JSON_OK, 3000000000LL},             /* above INT_MAX: valueint saturates */
    {"9007199254740992", JSON_OK, 9007199254740992LL}, /* 2^53 */
    {"-9007199254740992", JSON_OK, -9007199254740992LL},
    {"9007199254740994", JSON_BAD_VALUE, 0},           /* exact double, but past 2^53 */
    {"1e300", JSON_BAD_VALUE, 0},
    {"1.5", JSON_BAD_VALUE, 0},
    {"2.0", JSON_OK, 2},                               /* an exact integer written as 2.0 */
    {"1e3", JSON_OK, 1000},
    {"\"12345678901234567\"", JSON_OK, 12345678901234567LL}, /* strings are exact */
    {"\"9223372036854775807\"", JSON_OK, INT64_MAX},
    {"\"-9223372036854775808\"", JSON_OK, INT64_MIN},
    {"\"9223372036854775808\"", JSON_BAD_VALUE, 0},
    {"\"0\"", JSON_OK, 0},
    {"\"-0\"", JSON_BAD_VALUE, 0},
    {"\"0123\"", JSON_BAD_VALUE, 0},
    {"\" 12\"", JSON_BAD_VALUE, 0},
    {"\"12 \"", JSON_BAD_VALUE, 0},
    {"\"+12\"", JSON_BAD_VALUE, 0},
    {"\"1.0\"", JSON_BAD_VALUE, 0},
    {"\"\"", JSON_BAD_VALUE, 0},
    {"\"-\"", JSON_BAD_VALUE, 0},
    {"\"12345678901234567890\"", JSON_BAD_VALUE, 0},
    {"null", JSON_NULL, 0},
    {"true", JSON_WRONG_TYPE, 0},
    {"[1]", JSON_WRONG_TYPE, 0},
    {"{}", JSON_WRONG_TYPE, 0},
};

static void test_int64_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof INT_CASES / sizeof INT_CASES[0]; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"v\":%s}", INT_CASES[i].json);
        cJSON *o = parse(text);
        int64_t v = -12345;
        json_status_t st = json_get_int64(o, "v", &v);
        if (st != INT_CASES[i].status)
            fail_msg("case %s: got %s, want %s", INT_CASES[i].json, json_status_name(st),
                     json_status_name(INT_CASES[i].status));
        if (st == JSON_OK && v != INT_CASES[i].value)
            fail_msg("case %s: got %lld", INT_CASES[i].json, (long long)v);
        if (st != JSON_OK)
            assert_int_equal(v, -12345);
        cJSON_Delete(o);
    }
    int64_t v;
    assert_int_equal(json_to_int64(NULL, &v), JSON_MISSING);
    cJSON *o = parse("{}");
    assert_int_equal(json_get_int64(o, "v", &v), JSON_MISSING);
    cJSON_Delete(o);
}

static void test_object_array(void **state)
{
    (void)state;
    cJSON *o = parse("{\"o\":{\"a\":1},\"a\":[1],\"n\":null,\"s\":\"x\"}");
    const cJSON *got = NULL;
    assert_int_equal(json_get_object(o, "o", &got), JSON_OK);
    assert_ptr_equal(got, cJSON_GetObjectItemCaseSensitive(o, "o"));
    assert_int_equal(json_get_object(o, "a", &got), JSON_WRONG_TYPE);
    assert_int_equal(json_get_object(o, "n", &got), JSON_NULL);
    assert_int_equal(json_get_object(o, "z", &got), JSON_MISSING);
    assert_int_equal(json_get_array(o, "a", &got), JSON_OK);
    assert_int_equal(json_get_array(o, "s", &got), JSON_WRONG_TYPE);
    assert_int_equal(json_get_array(o, "n", &got), JSON_NULL);
    assert_string_equal(json_status_name(JSON_WRONG_TYPE), "wrong type");
    cJSON_Delete(o);
}

static const struct {
    const char *bytes;
    size_t len;
    bool valid;
    const char *what;
} UTF8_CASES[] = {
    {"", 0, true, "empty"},
    {"plain ascii", 11, true, "ascii"},
    {"Instala\xc3\xa7\xc3\xa3o", 12, true, "2-byte"},
    {"\xe2\x82\xac", 3, true, "euro 3-byte"},
    {"\xf0\x9f\x98\x80", 4, true, "emoji 4-byte"},
    {"\xf4\x8f\xbf\xbf", 4, true, "U+10FFFF"},
    {"\xed\x9f\xbf", 3, true, "U+D7FF"},
    {"\xee\x80\x80", 3, true, "U+E000"},
    {"a\0b", 3, true, "embedded NUL"},
    {"\xc0\x80", 2, false, "overlong NUL"},
    {"\xc1\xbf", 2, false, "overlong 2-byte"},
    {"\xe0\x80\xaf", 3, false, "overlong 3-byte"},
    {"\xf0\x80\x80\xaf", 4, false, "overlong 4-byte"},
    {"\xed\xa0\x80", 3, false, "high surrogate"},
    {"\xed\xbf\xbf", 3, false, "low surrogate"},
    {"\xf4\x90\x80\x80", 4, false, "above U+10FFFF"},
    {"\xf5\x80\x80\x80", 4, false, "F5 lead"},
    {"\xff", 1, false, "FF"},
    {"\x80", 1, false, "lone continuation"},
    {"a\xbf", 2, false, "stray continuation"},
    {"\xe2\x82", 2, false, "truncated 3-byte"},
    {"\xf0\x9f\x98", 3, false, "truncated 4-byte"},
    {"\xc3", 1, false, "truncated 2-byte"},
    {"\xc3\x28", 2, false, "bad continuation"},
    {"\xe2\x28\xa1", 3, false, "bad 2nd byte of 3"},
    {"\xf0\x9f\x98\x28", 4, false, "bad 4th byte"},
};

static void test_utf8_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof UTF8_CASES / sizeof UTF8_CASES[0]; i++) {
        bool got = json_utf8_valid(UTF8_CASES[i].bytes, UTF8_CASES[i].len);
        if (got != UTF8_CASES[i].valid)
            fail_msg("utf8 case '%s': got %d", UTF8_CASES[i].what, got);
    }
    /* The length bounds the check: a valid prefix of an invalid buffer is valid. */
    assert_true(json_utf8_valid("ab\xff", 2));
    assert_false(json_utf8_valid("ab\xff", 3));
    assert_true(json_utf8_valid(NULL, 0));
    assert_false(json_utf8_valid(NULL, 1));
}

static void test_validate_tree(void **state)
{
    (void)state;
    cJSON *o = parse("{\"Contacts\":[{\"Name\":\"ok\"},{\"Name\":\"ok\",\"Tags\":[1,\"x\"]}]}");
    char path[128];
    assert_int_equal(json_validate_utf8(o, path, sizeof path), 0);
    assert_string_equal(path, "");
    cJSON *second = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "Contacts"), 1);
    cJSON_AddItemToObject(second, "Note", cJSON_CreateString("bad \xed\xa0\x80 secret-ish"));
    assert_int_equal(json_validate_utf8(o, path, sizeof path), -1);
    assert_string_equal(path, "$.Contacts[1].Note");
    /* The path never holds the bad text. */
    assert_null(strstr(path, "secret"));
    /* Small path buffer: truncated, still NUL-terminated, still -1. */
    char tiny[6];
    assert_int_equal(json_validate_utf8(o, tiny, sizeof tiny), -1);
    assert_true(strlen(tiny) < sizeof tiny);
    assert_int_equal(json_validate_utf8(o, NULL, 0), -1);
    cJSON_Delete(o);

    /* A bad key is reported too. */
    cJSON *k = cJSON_CreateObject();
    cJSON_AddItemToObject(k, "ok", cJSON_CreateArray());
    cJSON_AddItemToArray(cJSON_GetObjectItem(k, "ok"), cJSON_CreateString("fine"));
    cJSON *inner = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_GetObjectItem(k, "ok"), inner);
    cJSON_AddItemToObject(inner, "k\xc0\x80", cJSON_CreateNumber(1));
    assert_int_equal(json_validate_utf8(k, path, sizeof path), -1);
    assert_string_equal(path, "$.ok[1].<invalid key>");
    cJSON_Delete(k);

    assert_int_equal(json_validate_utf8(NULL, path, sizeof path), 0);
    cJSON *scalar = cJSON_CreateString("\xff");
    assert_int_equal(json_validate_utf8(scalar, path, sizeof path), -1);
    assert_string_equal(path, "$");
    cJSON_Delete(scalar);
}

static void test_parse_bounded(void **state)
{
    (void)state;
    char err[160];
    const char *text = "{\"a\":1}";
    cJSON *r = json_parse_bounded(text, strlen(text), strlen(text), err, sizeof err);
    assert_non_null(r);
    cJSON_Delete(r);

    r = json_parse_bounded(text, strlen(text), strlen(text) - 1, err, sizeof err);
    assert_null(r);
    assert_string_equal(err, "input of 7 bytes exceeds the 6 byte cap");

    const char *bad = "{\"a\":1,\"b\":}";
    r = json_parse_bounded(bad, strlen(bad), 1000, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "invalid JSON at byte 11 of 12"));

    const char *trailing = "{\"a\":1} x";
    r = json_parse_bounded(trailing, strlen(trailing), 1000, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "after the JSON value at byte 8"));

    const char *ws = " [1,2] \r\n";
    r = json_parse_bounded(ws, strlen(ws), 1000, err, sizeof err);
    assert_non_null(r);
    cJSON_Delete(r);

    /* Not NUL-terminated: only len bytes are read. */
    char buf[8];
    memcpy(buf, "[123]xyz", 8);
    r = json_parse_bounded(buf, 5, 1000, err, sizeof err);
    assert_non_null(r);
    assert_int_equal(cJSON_GetArrayItem(r, 0)->valuedouble, 123);
    cJSON_Delete(r);

    r = json_parse_bounded("", 0, 1000, err, sizeof err);
    assert_null(r);
    assert_non_null(strstr(err, "empty"));
    r = json_parse_bounded("[1", 2, 1000, NULL, 0); /* err may be NULL */
    assert_null(r);
}

static void test_print(void **state)
{
    (void)state;
    cJSON *o = parse("{ \"b\" : [1, 2.5, \"x\"],\n \"id\": 3000000000 }");
    size_t len = 0;
    char *s = json_print(o, &len);
    assert_non_null(s);
    assert_string_equal(s, "{\"b\":[1,2.5,\"x\"],\"id\":3000000000}");
    assert_int_equal(len, strlen(s));
    free(s);
    assert_null(json_print(NULL, &len));
    assert_int_equal(len, 0);
    cJSON_Delete(o);
}

/* A lone surrogate escape makes cJSON reject the whole document; the lenient parse keeps the
 * document and leaves exactly the affected string flagged as invalid UTF-8. */
static void test_parse_lenient_lone_surrogates(void **state)
{
    (void)state;
    char err[128];
    size_t fixed = 99;
    const char *page = "{\"value\":[{\"Id\":1,\"Name\":\"ok \\ud83d\\ude00\"},"
                       "{\"Id\":2,\"Name\":\"cut \\ud83d\"},"
                       "{\"Id\":3,\"Name\":\"low \\uDC00 and \\\\ud800 text\"}]}";
    assert_null(json_parse_bounded(page, strlen(page), 1 << 20, err, sizeof err));
    cJSON *root = json_parse_bounded_lenient(page, strlen(page), 1 << 20, &fixed, err, sizeof err);
    assert_non_null(root);
    assert_int_equal(fixed, 2);
    assert_string_equal(err, "");
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "value");
    char path[64];
    assert_int_equal(json_validate_utf8(cJSON_GetArrayItem(rows, 0), path, sizeof path), 0);
    assert_int_equal(json_validate_utf8(cJSON_GetArrayItem(rows, 1), path, sizeof path), -1);
    assert_string_equal(path, "$.Name");
    assert_int_equal(json_validate_utf8(cJSON_GetArrayItem(rows, 2), path, sizeof path), -1);
    /* the escaped backslash before "ud800" is text, not an escape */
    const char *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rows, 2), "Name")
                           ->valuestring;
    assert_non_null(strstr(name, "\\ud800 text"));
    cJSON_Delete(root);

    /* Valid text: same as the strict parse, nothing repaired. */
    root = json_parse_bounded_lenient("[\"\\u00e7\"]", 10, 100, &fixed, err, sizeof err);
    assert_non_null(root);
    assert_int_equal(fixed, 0);
    cJSON_Delete(root);
    /* Other errors stay errors, with the strict parse's message. */
    const char *bad = "{\"a\":\"\\ud800\",}";
    assert_null(json_parse_bounded_lenient(bad, strlen(bad), 100, &fixed, err, sizeof err));
    assert_non_null(strstr(err, "invalid JSON at byte"));
    assert_null(json_parse_bounded_lenient("{\"a\":1}", 7, 3, &fixed, err, sizeof err));
    assert_non_null(strstr(err, "exceeds"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_string_statuses), cmocka_unit_test(test_get_bool),
        cmocka_unit_test(test_int64_table),         cmocka_unit_test(test_object_array),
        cmocka_unit_test(test_utf8_table),          cmocka_unit_test(test_validate_tree),
        cmocka_unit_test(test_parse_bounded),       cmocka_unit_test(test_print),
        cmocka_unit_test(test_parse_lenient_lone_surrogates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
