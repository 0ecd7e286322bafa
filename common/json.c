/* json_: typed getters, 64-bit ids, UTF-8 validation, bounded parse. See json.h. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

const char *json_status_name(json_status_t status)
{
    switch (status) {
    case JSON_OK: return "ok";
    case JSON_MISSING: return "missing";
    case JSON_NULL: return "null";
    case JSON_WRONG_TYPE: return "wrong type";
    case JSON_BAD_VALUE: return "bad value";
    }
    return "unknown";
}

/* Member lookup that treats a non-object container as "missing". */
static const cJSON *member(const cJSON *obj, const char *key)
{
    if (!obj || !key || !cJSON_IsObject(obj))
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* obj[key] into *item when present, not null and of the type is_type() accepts; else the
 * status that says which of these failed. */
static json_status_t typed_member(const cJSON *obj, const char *key,
                                  cJSON_bool (*is_type)(const cJSON *), const cJSON **item)
{
    const cJSON *m = member(obj, key);
    if (!m)
        return JSON_MISSING;
    if (cJSON_IsNull(m))
        return JSON_NULL;
    if (!is_type(m))
        return JSON_WRONG_TYPE;
    *item = m;
    return JSON_OK;
}

json_status_t json_get_string(const cJSON *obj, const char *key, const char **out)
{
    const cJSON *item = NULL;
    json_status_t st = typed_member(obj, key, cJSON_IsString, &item);
    if (st != JSON_OK)
        return st;
    if (!item->valuestring)
        return JSON_WRONG_TYPE;
    if (!json_utf8_valid(item->valuestring, strlen(item->valuestring)))
        return JSON_BAD_VALUE;
    *out = item->valuestring;
    return JSON_OK;
}

json_status_t json_get_bool(const cJSON *obj, const char *key, bool *out)
{
    const cJSON *item = NULL;
    json_status_t st = typed_member(obj, key, cJSON_IsBool, &item);
    if (st == JSON_OK)
        *out = cJSON_IsTrue(item) != 0;
    return st;
}

/* Plain decimal: optional '-', digits, no leading zero except "0". */
static json_status_t parse_decimal(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    size_t ndigits = 0;
    for (const char *q = p; *q; q++) {
        if (*q < '0' || *q > '9')
            return JSON_BAD_VALUE;
        ndigits++;
    }
    if (ndigits == 0 || ndigits > 19 || (p[0] == '0' && ndigits > 1) ||
        (p != s && p[0] == '0'))
        return JSON_BAD_VALUE;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || !end || *end != '\0')
        return JSON_BAD_VALUE;
    *out = (int64_t)v;
    return JSON_OK;
}

json_status_t json_to_int64(const cJSON *item, int64_t *out)
{
    if (!item)
        return JSON_MISSING;
    if (cJSON_IsNull(item))
        return JSON_NULL;
    if (cJSON_IsNumber(item)) {
        double v = item->valuedouble;
        if (!isfinite(v) || v != trunc(v) || fabs(v) > (double)JSON_MAX_SAFE_INT)
            return JSON_BAD_VALUE;
        *out = (int64_t)v;
        return JSON_OK;
    }
    if (cJSON_IsString(item) && item->valuestring)
        return parse_decimal(item->valuestring, out);
    return JSON_WRONG_TYPE;
}

json_status_t json_get_int64(const cJSON *obj, const char *key, int64_t *out)
{
    const cJSON *item = member(obj, key);
    if (!item)
        return JSON_MISSING;
    return json_to_int64(item, out);
}

json_status_t json_get_object(const cJSON *obj, const char *key, const cJSON **out)
{
    return typed_member(obj, key, cJSON_IsObject, out);
}

json_status_t json_get_array(const cJSON *obj, const char *key, const cJSON **out)
{
    return typed_member(obj, key, cJSON_IsArray, out);
}

size_t json_utf8_seq_len(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!p || n == 0)
        return 0;
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c == 0xE0) {
        need = 2;
        lo = 0xA0; /* overlong below U+0800 */
    } else if (c >= 0xE1 && c <= 0xEC) {
        need = 2;
    } else if (c == 0xED) {
        need = 2;
        hi = 0x9F; /* U+D800..U+DFFF surrogates */
    } else if (c >= 0xEE && c <= 0xEF) {
        need = 2;
    } else if (c == 0xF0) {
        need = 3;
        lo = 0x90; /* overlong below U+10000 */
    } else if (c >= 0xF1 && c <= 0xF3) {
        need = 3;
    } else if (c == 0xF4) {
        need = 3;
        hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* continuation byte, 0xC0, 0xC1, 0xF5..0xFF */
    }
    if (n - 1 < need)
        return 0; /* truncated */
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k <= need; k++) {
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    }
    return need + 1;
}

bool json_utf8_valid(const char *s, size_t len)
{
    if (!s)
        return len == 0;
    for (size_t i = 0; i < len;) {
        size_t n = json_utf8_seq_len(s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* Appends to the path buffer, keeping it NUL-terminated and never overflowing. */
static size_t path_append(char *path, size_t size, size_t used, const char *fmt, const char *s,
                          int index)
{
    if (!path || size == 0 || used >= size)
        return used;
    int n = s ? snprintf(path + used, size - used, fmt, s)
              : snprintf(path + used, size - used, fmt, index);
    if (n < 0)
        return used;
    size_t after = used + (size_t)n;
    return after < size ? after : size - 1;
}

static int walk(const cJSON *node, char *path, size_t size, size_t used)
{
    if (cJSON_IsString(node)) {
        const char *v = node->valuestring ? node->valuestring : "";
        return json_utf8_valid(v, strlen(v)) ? 0 : -1;
    }
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node))
        return 0;
    bool is_object = cJSON_IsObject(node);
    int index = 0;
    for (const cJSON *child = node->child; child; child = child->next, index++) {
        size_t u = used;
        if (is_object) {
            const char *key = child->string ? child->string : "";
            if (!json_utf8_valid(key, strlen(key))) {
                path_append(path, size, used, ".%s", "<invalid key>", 0);
                return -1;
            }
            u = path_append(path, size, used, ".%s", key, 0);
        } else {
            u = path_append(path, size, used, "[%d]", NULL, index);
        }
        if (walk(child, path, size, u) != 0)
            return -1;
        if (path && size > 0 && used < size)
            path[used] = '\0';
    }
    return 0;
}

int json_validate_utf8(const cJSON *root, char *path, size_t pathlen)
{
    size_t used = 0;
    if (path && pathlen > 0) {
        path[0] = '\0';
        used = path_append(path, pathlen, 0, "%s", "$", 0);
    }
    if (!root)
        return 0;
    int rc = walk(root, path, pathlen, used);
    if (rc == 0 && path && pathlen > 0)
        path[0] = '\0';
    return rc;
}

/* True when a string of buf[0..len) holds the escape \u0000 (not "\\u0000", an escaped
 * backslash followed by text); *at gets its byte offset. Strings are found as cJSON would:
 * a '"' outside a string opens one, an unescaped '"' closes it. */
static bool find_nul_escape(const char *buf, size_t len, size_t *at)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\' && i + 1 < len) {
            if (buf[i + 1] == 'u' && i + 6 <= len && memcmp(buf + i + 2, "0000", 4) == 0) {
                *at = i;
                return true;
            }
            i++; /* skip the escaped character: "\\" is not re-read as an escape */
        }
    }
    return false;
}

cJSON *json_parse_bounded(const char *buf, size_t len, size_t max_len, char *err, size_t errlen)
{
    if (err && errlen > 0)
        err[0] = '\0';
    if (len > max_len) {
        errbuf_set(err, errlen, "input of %zu bytes exceeds the %zu byte cap", len, max_len);
        return NULL;
    }
    if (!buf || len == 0) {
        errbuf_set(err, errlen, "empty input (%zu of %zu bytes)", (size_t)0, len);
        return NULL;
    }
    /* A NUL inside a string would cut it short as a C string: "52998224725\u0000x" would be
     * read as a valid CPF. Refused, raw or escaped (the lenient parse marks escaped ones). */
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        errbuf_set(err, errlen, "NUL byte at byte %zu of %zu", (size_t)(nul - buf), len);
        return NULL;
    }
    size_t nul_at = 0;
    if (find_nul_escape(buf, len, &nul_at)) {
        errbuf_set(err, errlen, "escaped NUL character (\\u0000) in a string at byte %zu of %zu",
                   nul_at, len);
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t pos = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : 0;
        errbuf_set(err, errlen, "invalid JSON at byte %zu of %zu", pos, len);
        return NULL;
    }
    size_t pos = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : len;
    while (pos < len && (buf[pos] == ' ' || buf[pos] == '\t' || buf[pos] == '\n' ||
                         buf[pos] == '\r'))
        pos++;
    if (pos < len) {
        errbuf_set(err, errlen, "unexpected data after the JSON value at byte %zu of %zu", pos,
                   len);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Value of 4 hex digits at p (p[0..3] must be readable), or -1. */
static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Copies buf[0..len) into a new buffer, lone-surrogate escapes inside strings replaced by the
 * surrogate's raw 3-byte form and \u0000 escapes by the overlong bytes 0xC0 0x80; *count gets how many, *out_len the new length. NULL when there
 * was none, or on out of memory. */
static char *mark_lone_surrogates(const char *buf, size_t len, size_t *count, size_t *out_len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    bool in_string = false;
    *count = 0;
    while (i < len) {
        char c = buf[i];
        if (!in_string) {
            in_string = c == '"';
            out[o++] = buf[i++];
            continue;
        }
        if (c == '"') {
            in_string = false;
            out[o++] = buf[i++];
            continue;
        }
        if (c != '\\' || i + 1 >= len) {
            out[o++] = buf[i++];
            continue;
        }
        if (buf[i + 1] != 'u' || i + 6 > len) {
            out[o++] = buf[i++]; /* an escape pair: copy both, so "\\" is not re-read */
            out[o++] = buf[i++];
            continue;
        }
        long u = hex4(buf + i + 2);
        if (u >= 0xD800 && u <= 0xDBFF && i + 12 <= len && buf[i + 6] == '\\' &&
            buf[i + 7] == 'u') {
            long lo = hex4(buf + i + 8);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                memcpy(out + o, buf + i, 12); /* a valid pair */
                o += 12;
                i += 12;
                continue;
            }
        }
        if (u == 0) { /* NUL: its overlong 2-byte form, which is not valid UTF-8 either */
            out[o++] = (char)0xC0;
            out[o++] = (char)0x80;
            i += 6;
            (*count)++;
            continue;
        }
        if (u >= 0xD800 && u <= 0xDFFF) {
            out[o++] = (char)0xED;
            out[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (u & 0x3F));
            i += 6;
            (*count)++;
            continue;
        }
        out[o++] = buf[i++];
        out[o++] = buf[i++];
    }
    out[o] = '\0'; /* never longer than the input: a 6-byte escape becomes 3 bytes */
    if (*count == 0) {
        free(out);
        return NULL;
    }
    *out_len = o;
    return out;
}

cJSON *json_parse_bounded_lenient(const char *buf, size_t len, size_t max_len, size_t *repaired,
                                  char *err, size_t errlen)
{
    if (repaired)
        *repaired = 0;
    cJSON *root = json_parse_bounded(buf, len, max_len, err, errlen);
    if (root || !buf || len == 0 || len > max_len)
        return root;
    size_t count = 0, flen = 0;
    char *fixed = mark_lone_surrogates(buf, len, &count, &flen);
    if (!fixed)
        return NULL; /* nothing to repair (or no memory): the strict error stands */
    cJSON *again = json_parse_bounded(fixed, flen, max_len, NULL, 0);
    free(fixed);
    if (again) {
        if (err && errlen > 0)
            err[0] = '\0';
        if (repaired)
            *repaired = count;
    }
    return again;
}

char *json_print(const cJSON *item, size_t *len_out)
{
    if (len_out)
        *len_out = 0;
    if (!item)
        return NULL;
    char *s = cJSON_PrintUnformatted(item);
    if (s && len_out)
        *len_out = strlen(s);
    return s;
}
