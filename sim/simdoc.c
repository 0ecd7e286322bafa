/* simdoc_: see simdoc.h. */
#include "simdoc.h"

#include <string.h>

bool simdoc_normalize(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '.' || c == '/' || c == '-' || c == ' ' || c == '\t')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
            return false;
        if (n + 1 >= size)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

static bool all_equal(const char *s, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (s[i] != s[0])
            return false;
    return true;
}

static int mod11_dv(int sum)
{
    int r = sum % 11;
    return r < 2 ? 0 : 11 - r;
}

bool simdoc_cpf_valid(const char *doc)
{
    if (strlen(doc) != 11)
        return false;
    for (int i = 0; i < 11; i++)
        if (doc[i] < '0' || doc[i] > '9')
            return false;
    if (all_equal(doc, 11))
        return false;
    for (int len = 9; len <= 10; len++) {
        int sum = 0;
        for (int i = 0; i < len; i++)
            sum += (doc[i] - '0') * (len + 1 - i);
        if (mod11_dv(sum) != doc[len] - '0')
            return false;
    }
    return true;
}

bool simdoc_cnpj_valid(const char *doc)
{
    static const int w1[12] = {5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
    static const int w2[13] = {6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
    if (strlen(doc) != 14)
        return false;
    for (int i = 0; i < 12; i++) {
        char c = doc[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')))
            return false;
    }
    for (int i = 12; i < 14; i++)
        if (doc[i] < '0' || doc[i] > '9')
            return false;
    if (all_equal(doc, 14))
        return false;
    int sum = 0;
    for (int i = 0; i < 12; i++)
        sum += (doc[i] - '0') * w1[i];
    if (mod11_dv(sum) != doc[12] - '0')
        return false;
    sum = 0;
    for (int i = 0; i < 13; i++)
        sum += (doc[i] - '0') * w2[i];
    return mod11_dv(sum) == doc[13] - '0';
}

bool simdoc_valid(const char *doc)
{
    size_t n = strlen(doc);
    if (n == 11)
        return simdoc_cpf_valid(doc);
    if (n == 14)
        return simdoc_cnpj_valid(doc);
    return false;
}
