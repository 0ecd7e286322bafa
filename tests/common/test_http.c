/* Unit tests of http_'s pure helpers: Retry-After, classification, error classes, readable
 * messages, backoff bounds, percent-encoding, URL redaction. Tables: one row per case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http.h"

/* 2024-01-01T00:00:00Z */
#define NOW ((time_t)1704067200)

static void test_retry_after(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } rows[] = {
        {"0", 0, 0},
        {"5", 0, 5000},
        {"  120 ", 0, 120000},
        {"\t7\r\n", 0, 7000},
        {"999999999999999999999", 0, 86400000}, /* capped at 24 h */
        {"90000", 0, 86400000},
        {"Mon, 01 Jan 2024 00:00:30 GMT", 0, 30000},     /* IMF-fixdate */
        {"Monday, 01-Jan-24 00:01:00 GMT", 0, 60000},   /* RFC 850 */
        {"Mon Jan  1 00:00:10 2024", 0, 10000},         /* asctime */
        {"Sun, 31 Dec 2023 23:59:00 GMT", 0, 0},        /* in the past */
        {"Fri, 01 Jan 2100 00:00:00 GMT", 0, 86400000}, /* far future: capped */
        {"", -1, 0},
        {"   ", -1, 0},
        {"-5", -1, 0},
        {"+5", -1, 0},
        {"5s", -1, 0},
        {"1.5", -1, 0},
        {"soon", -1, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t ms = -42;
        int rc = http_parse_retry_after(rows[i].text, NOW, &ms);
        if (rc != rows[i].rc || (rc == 0 && ms != rows[i].ms))
            fail_msg("Retry-After \"%s\": rc=%d ms=%lld, want rc=%d ms=%lld", rows[i].text, rc,
                     (long long)ms, rows[i].rc, (long long)rows[i].ms);
    }
    int64_t ms;
    assert_int_equal(http_parse_retry_after(NULL, NOW, &ms), -1);
}

static void test_classify(void **state)
{
    (void)state;
    static const struct {
        long status;
        http_transport_t transport;
        bool forbidden_retriable;
        http_class_t want;
        const char *err_class;
    } rows[] = {
        {200, HTTP_TRANSPORT_OK, false, HTTP_CLASS_SUCCESS, ""},
        {201, HTTP_TRANSPORT_OK, false, HTTP_CLASS_SUCCESS, ""},
        {204, HTTP_TRANSPORT_OK, true, HTTP_CLASS_SUCCESS, ""},
        {299, HTTP_TRANSPORT_OK, false, HTTP_CLASS_SUCCESS, ""},
        {301, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus301"},
        {400, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus400"},
        {401, HTTP_TRANSPORT_OK, false, HTTP_CLASS_AUTH, "HttpStatus401"},
        {401, HTTP_TRANSPORT_OK, true, HTTP_CLASS_AUTH, "HttpStatus401"},
        {403, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus403"},
        {403, HTTP_TRANSPORT_OK, true, HTTP_CLASS_RETRIABLE, "HttpStatus403"},
        {404, HTTP_TRANSPORT_OK, true, HTTP_CLASS_PERMANENT, "HttpStatus404"},
        {408, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus408"},
        {409, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus409"},
        {422, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus422"},
        {425, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus425"},
        {429, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus429"},
        {500, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus500"},
        {501, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus501"},
        {502, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus502"},
        {503, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus503"},
        {504, HTTP_TRANSPORT_OK, false, HTTP_CLASS_RETRIABLE, "HttpStatus504"},
        {505, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus505"},
        {100, HTTP_TRANSPORT_OK, false, HTTP_CLASS_PERMANENT, "HttpStatus100"},
        {0, HTTP_TRANSPORT_TIMEOUT, false, HTTP_CLASS_RETRIABLE, "CurlTimeout"},
        {200, HTTP_TRANSPORT_TIMEOUT, false, HTTP_CLASS_RETRIABLE, "CurlTimeout"}, /* body cut */
        {0, HTTP_TRANSPORT_RESOLVE, false, HTTP_CLASS_RETRIABLE, "CurlResolve"},
        {0, HTTP_TRANSPORT_CONNECT, false, HTTP_CLASS_RETRIABLE, "CurlConnect"},
        {0, HTTP_TRANSPORT_SEND, false, HTTP_CLASS_RETRIABLE, "CurlSend"},
        {0, HTTP_TRANSPORT_RECV, false, HTTP_CLASS_RETRIABLE, "CurlRecv"},
        {0, HTTP_TRANSPORT_TLS, false, HTTP_CLASS_PERMANENT, "CurlTls"},
        {0, HTTP_TRANSPORT_BAD_URL, false, HTTP_CLASS_PERMANENT, "CurlBadUrl"},
        {200, HTTP_TRANSPORT_TOO_LARGE, false, HTTP_CLASS_PERMANENT, "ResponseTooLarge"},
        {0, HTTP_TRANSPORT_OTHER, false, HTTP_CLASS_PERMANENT, "CurlError"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        http_class_t got = http_classify(rows[i].status, rows[i].transport,
                                         rows[i].forbidden_retriable);
        if (got != rows[i].want)
            fail_msg("row %zu status %ld transport %d: class %s, want %s", i, rows[i].status,
                     (int)rows[i].transport, http_class_name(got), http_class_name(rows[i].want));
        char buf[48];
        assert_string_equal(http_error_class(rows[i].status, rows[i].transport, buf, sizeof buf),
                            rows[i].err_class);
    }
    http_response_t r = {.status = 503, .transport = HTTP_TRANSPORT_OK};
    assert_int_equal(http_classify_response(&r, false), HTTP_CLASS_RETRIABLE);
}

static void test_error_message(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        size_t size; /* output buffer size */
        const char *want;
    } rows[] = {
        {"{\"value\":\"Filtro inválido\"}", 128, "Filtro inválido"},
        {"{\"error\":{\"code\":\"\",\"message\":\"The query specified in the URI is not valid.\"}}",
         128, "The query specified in the URI is not valid."},
        {"{\"Message\":\"An error has occurred.\"}", 128, "An error has occurred."},
        {"{\"message\":\"Cliente já cadastrado\"}", 128, "Cliente já cadastrado"},
        {"{\"error\":\"invalid_token\"}", 128, "invalid_token"},
        {"\"não encontrado\"", 128, "não encontrado"},
        {"não encontrado", 128, "não encontrado"},
        {"Campo inválido\r\n", 128, "Campo inválido"},
        {"  line one\n\n\tline two  ", 128, "line one line two"},
        {"{\"value\":[{\"Id\":1}]}", 128, "{\"value\":[{\"Id\":1}]}"}, /* not an error shape */
        {"{\"value\":\"\"}", 128, "{\"value\":\"\"}"},                 /* empty message: raw */
        {"{\"message\":\"a\\u0000b\"}", 128, "a"},                      /* cJSON stops at NUL */
        {"<html><body>Bad Gateway</body></html>", 128, "<html><body>Bad Gateway</body></html>"},
        {"", 128, ""},
        {"abcdefghij", 8, "abcd..."},
        {"ééééé", 8, "éé..."}, /* never cuts inside a character */
        {"abc", 4, "abc"},
        {"bad \xff\xfe utf8", 64, "bad ?? utf8"},
        {"{\"message\":\"x\"", 64, "{\"message\":\"x\""}, /* invalid JSON: raw */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[256];
        assert_true(rows[i].size <= sizeof out);
        memset(out, 'Z', sizeof out);
        http_error_message(rows[i].body, strlen(rows[i].body), out, rows[i].size);
        if (strcmp(out, rows[i].want) != 0)
            fail_msg("row %zu: got \"%s\", want \"%s\"", i, out, rows[i].want);
        assert_true(strlen(out) < rows[i].size);
    }
    /* a huge body stays bounded */
    size_t big = 1 << 20;
    char *body = malloc(big);
    assert_non_null(body);
    memset(body, 'x', big);
    char out[512];
    http_error_message(body, big, out, sizeof out);
    assert_int_equal(strlen(out), sizeof out - 1);
    assert_string_equal(out + sizeof out - 4, "...");
    free(body);
    /* NULL body */
    http_error_message(NULL, 0, out, sizeof out);
    assert_string_equal(out, "");
}

static void test_backoff(void **state)
{
    (void)state;
    static const struct {
        int attempt;
        int64_t base, max;
        int64_t cap; /* expected upper bound */
    } rows[] = {
        {1, 5000, 60000, 5000},       {2, 5000, 60000, 10000},  {3, 5000, 60000, 20000},
        {4, 5000, 60000, 40000},      {5, 5000, 60000, 60000},  {6, 5000, 60000, 60000},
        {0, 5000, 60000, 5000},       {-3, 5000, 60000, 5000},  {64, 5000, 60000, 60000},
        {1000, 5000, 60000, 60000},   {2, 10, 15, 15},          {1, 100, 50, 50},
        {40, INT64_MAX / 2, INT64_MAX, INT64_MAX},              {3, 0, 60000, 0},
        {3, 100, 0, 0},
    };
    static const uint64_t randoms[] = {0, 1, 2, 12345, 0x7FFFFFFFFFFFFFFFULL, UINT64_MAX,
                                       0xDEADBEEFCAFEBABEULL};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t max_seen = 0;
        for (size_t j = 0; j < sizeof randoms / sizeof randoms[0]; j++) {
            int64_t v = http_backoff_ms(rows[i].attempt, rows[i].base, rows[i].max, randoms[j]);
            if (v < 0 || v > rows[i].cap)
                fail_msg("row %zu random %zu: %lld outside [0,%lld]", i, j, (long long)v,
                         (long long)rows[i].cap);
            if (v > max_seen)
                max_seen = v;
        }
        /* random = cap reaches the top of the range exactly */
        assert_int_equal(http_backoff_ms(rows[i].attempt, rows[i].base, rows[i].max,
                                         (uint64_t)rows[i].cap),
                         rows[i].cap);
        assert_int_equal(http_backoff_ms(rows[i].attempt, rows[i].base, rows[i].max, 0), 0);
    }
    /* with real randomness the values spread over the range (full jitter, not a fixed delay) */
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t v = http_backoff_ms(3, 1000, 60000, http_random_u64());
        assert_true(v >= 0 && v <= 4000);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(lo < 400);
    assert_true(hi > 3600);
}

static void test_percent_encode(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } rows[] = {
        {"", ""},
        {"abcXYZ019-._~", "abcXYZ019-._~"},
        {"2024-02-24T00:00:00-03:00", "2024-02-24T00%3A00%3A00-03%3A00"},
        {"2024-02-24T00:00:00+00:00", "2024-02-24T00%3A00%3A00%2B00%3A00"},
        {"LastUpdateDate gt 2024-01-01T00:00:00+00:00 or (Id gt 5)",
         "LastUpdateDate%20gt%202024-01-01T00%3A00%3A00%2B00%3A00%20or%20%28Id%20gt%205%29"},
        {"Register eq '12.345.678/0001-95'", "Register%20eq%20%2712.345.678%2F0001-95%27"},
        {"a&b=c?d#e%f", "a%26b%3Dc%3Fd%23e%25f"},
        {"Phones,Tags,City", "Phones%2CTags%2CCity"},
        {"São", "S%C3%A3o"},
        {"$top", "%24top"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[256];
        int n = http_percent_encode(rows[i].in, out, sizeof out);
        assert_int_equal(n, (int)strlen(rows[i].want));
        assert_string_equal(out, rows[i].want);
        char *dup = http_percent_encode_dup(rows[i].in);
        assert_non_null(dup);
        assert_string_equal(dup, rows[i].want);
        free(dup);
    }
    char small[6];
    assert_int_equal(http_percent_encode("abcde", small, sizeof small), 5);
    assert_int_equal(http_percent_encode("abcdef", small, sizeof small), -1);
    assert_string_equal(small, "");
    assert_int_equal(http_percent_encode("ab+", small, sizeof small), 5);
    assert_string_equal(small, "ab%2B");
    assert_int_equal(http_percent_encode("abc+", small, sizeof small), -1);
}

static void test_redact_url(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } rows[] = {
        {"/Contacts", "/Contacts"},
        {"/Contacts?$filter=Register%20eq%20%27123%27&$top=300",
         "/Contacts?$filter=*&$top=*"},
        {"https://h:8080/api/cliente/busca?documento=123&status=3#frag",
         "https://h:8080/api/cliente/busca?documento=*&status=*"},
        {"/x?flag&y=a=b", "/x?flag&y=*"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[256];
        assert_string_equal(http_redact_url(rows[i].in, out, sizeof out), rows[i].want);
    }
    char tiny[8];
    http_redact_url("/Contacts?$filter=secret", tiny, sizeof tiny);
    assert_string_equal(tiny, "/Contac");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(http_method_name(HTTP_PATCH), "PATCH");
    assert_string_equal(http_method_name(HTTP_DELETE), "DELETE");
    assert_string_equal(http_class_name(HTTP_CLASS_AUTH), "auth");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_after),   cmocka_unit_test(test_classify),
        cmocka_unit_test(test_error_message), cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_percent_encode), cmocka_unit_test(test_redact_url),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
