/* doc_: CPF/CNPJ normalisation and verification, CEP normalisation. See doc.h. */
#include "doc.h"

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define DOC_MAX_LEN 14

const char *doc_kind_name(doc_kind_t kind)
{
    switch (kind) {
    case DOC_NONE: return "none";
    case DOC_CPF: return "cpf";
    case DOC_CNPJ: return "cnpj";
    case DOC_INVALID: return "invalid";
    }
    return "unknown";
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }

/* Normalises raw into out. Returns the number of significant characters (which may exceed
 * DOC_MAX_LEN: then out holds ""), or -1 for a forbidden character (reason set). */
static int normalize(const char *raw, char out[DOC_BUF_SIZE], const char **reason)
{
    size_t n = 0;
    out[0] = '\0';
    if (!raw)
        return 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
        unsigned char c = *p;
        if (c == '.' || c == '/' || c == '-' || is_space(c))
            continue;
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (!is_digit(c) && !is_upper(c)) {
            out[0] = '\0';
            if (reason)
                *reason = c >= 0x80 ? "non-ASCII character" : "character other than a letter, "
                                                                "digit or . / - separator";
            return -1;
        }
        if (n < DOC_MAX_LEN)
            out[n] = (char)c;
        n++;
    }
    if (n > DOC_MAX_LEN) {
        out[0] = '\0';
    } else {
        out[n] = '\0';
    }
    return n > (size_t)INT32_MAX ? INT32_MAX : (int)n;
}

int doc_normalize(const char *raw, char out[DOC_BUF_SIZE])
{
    int n = normalize(raw, out, NULL);
    if (n > DOC_MAX_LEN) {
        out[0] = '\0';
        return -1;
    }
    return n;
}

/* Mod-11 check digit over s[0..n) with weights w[0..n). Value = ASCII - 48. */
static int check_digit(const char *s, const int *w, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += ((unsigned char)s[i] - '0') * w[i];
    int r = sum % 11;
    return r < 2 ? 0 : 11 - r;
}

static bool all_equal(const char *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (s[i] != s[0])
            return false;
    }
    return true;
}

static doc_kind_t verify_cpf(const char *s, const char **reason)
{
    static const int w1[9] = {10, 9, 8, 7, 6, 5, 4, 3, 2};
    static const int w2[10] = {11, 10, 9, 8, 7, 6, 5, 4, 3, 2};
    for (size_t i = 0; i < 11; i++) {
        if (!is_digit((unsigned char)s[i])) {
            *reason = "11 characters with a letter (a CPF is digits only)";
            return DOC_INVALID;
        }
    }
    if (all_equal(s, 11)) {
        *reason = "all characters equal";
        return DOC_INVALID;
    }
    if (check_digit(s, w1, 9) != s[9] - '0' || check_digit(s, w2, 10) != s[10] - '0') {
        *reason = "wrong check digits";
        return DOC_INVALID;
    }
    return DOC_CPF;
}

static doc_kind_t verify_cnpj(const char *s, const char **reason)
{
    static const int w1[12] = {5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
    static const int w2[13] = {6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2};
    for (size_t i = 0; i < 12; i++) {
        if (!is_digit((unsigned char)s[i]) && !is_upper((unsigned char)s[i])) {
            *reason = "CNPJ character outside 0-9 A-Z";
            return DOC_INVALID;
        }
    }
    if (!is_digit((unsigned char)s[12]) || !is_digit((unsigned char)s[13])) {
        *reason = "CNPJ check digits must be digits";
        return DOC_INVALID;
    }
    if (all_equal(s, 14)) {
        *reason = "all characters equal";
        return DOC_INVALID;
    }
    if (check_digit(s, w1, 12) != s[12] - '0' || check_digit(s, w2, 13) != s[13] - '0') {
        *reason = "wrong check digits";
        return DOC_INVALID;
    }
    return DOC_CNPJ;
}

doc_kind_t doc_verify(const char *normalized, const char **reason)
{
    const char *dummy = NULL;
    if (!reason)
        reason = &dummy;
    *reason = NULL;
    if (!normalized || normalized[0] == '\0')
        return DOC_NONE;
    size_t n = strnlen(normalized, DOC_MAX_LEN + 1);
    if (n == 11)
        return verify_cpf(normalized, reason);
    if (n == 14)
        return verify_cnpj(normalized, reason);
    *reason = "wrong length (expected 11 characters for a CPF or 14 for a CNPJ)";
    return DOC_INVALID;
}

/* Shared body of doc_parse / doc_from_milvus. */
static doc_kind_t parse(const char *raw, char out[DOC_BUF_SIZE], const char **reason,
                        bool pad)
{
    const char *dummy = NULL;
    if (!reason)
        reason = &dummy;
    *reason = NULL;
    int n = normalize(raw, out, reason);
    if (n < 0)
        return DOC_INVALID;
    if (n == 0)
        return DOC_NONE;
    if (n > DOC_MAX_LEN) {
        *reason = "too long (more than 14 characters; expected 11 for a CPF or 14 for a CNPJ)";
        return DOC_INVALID;
    }
    if (pad) {
        bool digits = true;
        for (int i = 0; i < n; i++)
            digits = digits && is_digit((unsigned char)out[i]);
        int target = 0;
        if (digits && (n == 9 || n == 10))
            target = 11;
        else if (digits && (n == 12 || n == 13))
            target = 14;
        if (target) {
            int shift = target - n;
            memmove(out + shift, out, (size_t)n + 1);
            memset(out, '0', (size_t)shift);
        }
    }
    return doc_verify(out, reason);
}

doc_kind_t doc_parse(const char *raw, char out[DOC_BUF_SIZE], const char **reason)
{
    return parse(raw, out, reason, false);
}

doc_kind_t doc_from_milvus(const char *raw, char out[DOC_BUF_SIZE], const char **reason)
{
    return parse(raw, out, reason, true);
}

doc_kind_t doc_from_milvus_json(const cJSON *item, char out[DOC_BUF_SIZE], const char **reason)
{
    const char *dummy = NULL;
    if (!reason)
        reason = &dummy;
    *reason = NULL;
    out[0] = '\0';
    if (!item || cJSON_IsNull(item))
        return DOC_NONE;
    if (cJSON_IsString(item))
        return doc_from_milvus(item->valuestring, out, reason);
    if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        if (!isfinite(v) || v != trunc(v) || v < 0 || v >= 1e14) {
            *reason = "number that cannot be a CPF/CNPJ (not a non-negative integer below 10^14)";
            return DOC_INVALID;
        }
        char text[32];
        snprintf(text, sizeof text, "%" PRId64, (int64_t)v);
        return doc_from_milvus(text, out, reason);
    }
    *reason = "neither a string nor a number";
    return DOC_INVALID;
}

const char *doc_mask(const char *normalized, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    buf[0] = '\0';
    if (!normalized)
        return buf;
    size_t n = strnlen(normalized, DOC_MAX_LEN + 1);
    const char *s = normalized;
    char tmp[DOC_DISPLAY_SIZE];
    if (n == 11) {
        snprintf(tmp, sizeof tmp, "***.%.3s.%.3s-**", s + 3, s + 6);
    } else if (n == 14) {
        snprintf(tmp, sizeof tmp, "**.%.3s.%.3s/****-**", s + 2, s + 5);
    } else {
        if (n > DOC_MAX_LEN)
            n = DOC_MAX_LEN;
        memset(tmp, '*', n);
        tmp[n] = '\0';
    }
    /* Masking never reveals a non-printable byte. */
    for (char *p = tmp; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x21 || c > 0x7e)
            *p = '?';
    }
    snprintf(buf, size, "%s", tmp);
    return buf;
}

const char *doc_format(const char *normalized, char *buf, size_t size)
{
    if (!buf || size == 0)
        return NULL;
    buf[0] = '\0';
    if (!normalized)
        return NULL;
    size_t n = strnlen(normalized, DOC_MAX_LEN + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)normalized[i];
        if (!is_digit(c) && !is_upper(c))
            return NULL;
    }
    const char *s = normalized;
    int w;
    if (n == 11)
        w = snprintf(buf, size, "%.3s.%.3s.%.3s-%.2s", s, s + 3, s + 6, s + 9);
    else if (n == 14)
        w = snprintf(buf, size, "%.2s.%.3s.%.3s/%.4s-%.2s", s, s + 2, s + 5, s + 8, s + 12);
    else
        return NULL;
    if (w < 0 || (size_t)w >= size) {
        buf[0] = '\0';
        return NULL;
    }
    return buf;
}

int doc_cep_normalize(const char *raw, char out[DOC_CEP_SIZE])
{
    char digits[DOC_CEP_SIZE];
    size_t n = 0;
    out[0] = '\0';
    if (!raw)
        return 1;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
        if (*p == '-' || *p == '.' || is_space(*p))
            continue;
        if (!is_digit(*p) || n >= 8)
            return -1;
        digits[n++] = (char)*p;
    }
    if (n == 0)
        return 1;
    if (n < 7)
        return -1;
    size_t shift = 8 - n;
    memset(out, '0', shift);
    memcpy(out + shift, digits, n);
    out[8] = '\0';
    if (out[0] == '0' && out[1] == '0') {
        out[0] = '\0';
        return -1; /* below 01000-000 */
    }
    return 0;
}

int doc_cep_from_json(const cJSON *item, char out[DOC_CEP_SIZE])
{
    out[0] = '\0';
    if (!item || cJSON_IsNull(item))
        return 1;
    if (cJSON_IsString(item))
        return doc_cep_normalize(item->valuestring, out);
    if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        if (!isfinite(v) || v != trunc(v) || v < 0 || v > 99999999.0)
            return -1;
        char text[16];
        snprintf(text, sizeof text, "%" PRId64, (int64_t)v);
        return doc_cep_normalize(text, out);
    }
    return -1;
}
