/* Unit tests of the simulators' own CPF/CNPJ validator (sim/simdoc.c), table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "simdoc.h"

#include <stdio.h>
#include <string.h>

static void test_valid_table(void **state)
{
    (void)state;
    static const struct {
        const char *doc;
        bool valid;
    } cases[] = {
        {"52998224725", true},     {"11144477735", true},     {"12345678909", true},
        {"11222333000181", true},  {"00000000000191", true},  {"12ABC34501DE35", true},
        {"52998224724", false},    {"52998224715", false},    {"11111111111", false},
        {"00000000000", false},    {"00000000000000", false}, {"99999999999999", false},
        {"11222333000182", false}, {"11222333000191", false}, {"12ABC34501DE36", false},
        {"12abc34501de35", false}, {"1122233300018A", false}, {"1234567890", false},
        {"123456789012", false},   {"", false},               {"5299822472A", false},
        {"12.ABC.345/01DE-35", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (simdoc_valid(cases[i].doc) != cases[i].valid)
            fprintf(stderr, "doc [%s]: expected %s\n", cases[i].doc, cases[i].valid ? "valid" : "invalid");
        assert_int_equal(simdoc_valid(cases[i].doc), cases[i].valid);
    }
    assert_true(simdoc_cpf_valid("52998224725"));
    assert_false(simdoc_cnpj_valid("52998224725"));
    assert_true(simdoc_cnpj_valid("11222333000181"));
    assert_false(simdoc_cpf_valid("11222333000181"));
}

static void test_normalize(void **state)
{
    (void)state;
    char out[32];
    assert_true(simdoc_normalize("11.222.333/0001-81", out, sizeof out));
    assert_string_equal(out, "11222333000181");
    assert_true(simdoc_normalize("12.abc.345/01de-35", out, sizeof out));
    assert_string_equal(out, "12ABC34501DE35");
    assert_true(simdoc_valid(out));
    assert_true(simdoc_normalize(" 529.982.247-25 ", out, sizeof out));
    assert_string_equal(out, "52998224725");
    assert_false(simdoc_normalize("12#3", out, sizeof out));
    assert_false(simdoc_normalize("123456789", out, 5));
    assert_false(simdoc_normalize("\xc3\xa9", out, sizeof out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_valid_table), cmocka_unit_test(test_normalize)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
