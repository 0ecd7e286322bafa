/* simjson_ / simbuf_: see simjson.h. */
#include "simjson.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool simjson_i64(const cJSON *item, int64_t *out)
{
    if (!cJSON_IsNumber(item))
        return false;
    double d = item->valuedouble;
    if (!isfinite(d) || d < -9007199254740992.0 || d > 9007199254740992.0 || floor(d) != d)
        return false;
    *out = (int64_t)d;
    return true;
}

bool simjson_get_i64(const cJSON *obj, const char *key, int64_t *out)
{
    return simjson_i64(cJSON_GetObjectItemCaseSensitive(obj, key), out);
}

bool simjson_parse_count(const char *text, int64_t *out)
{
    if (!text || !*text || *text == '-' || *text == '+' || *text == ' ')
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < 0)
        return false;
    *out = v;
    return true;
}

cJSON *simjson_num_i64(int64_t v)
{
    return cJSON_CreateNumber((double)v);
}

void simjson_set(cJSON *obj, const char *key, cJSON *item)
{
    if (!item)
        return;
    /* key may be item->string, which cJSON frees while replacing: work on a copy */
    char *k = strdup(key);
    if (!k) {
        cJSON_Delete(item);
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, k))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, k, item);
    else
        cJSON_AddItemToObject(obj, k, item);
    free(k);
}

const char *simjson_get_str(const cJSON *obj, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

cJSON *simjson_parse(const char *text, size_t len)
{
    if (!text)
        return NULL;
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!json)
        return NULL;
    while (end && end < text + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
        end++;
    if (end != text + len) { /* trailing garbage */
        cJSON_Delete(json);
        return NULL;
    }
    return json;
}

static void simbuf_reserve(simbuf *b, size_t extra)
{
    if (b->failed)
        return;
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return;
    }
    b->data = p;
    b->cap = cap;
}

void simbuf_append(simbuf *b, const char *s, size_t n)
{
    simbuf_reserve(b, n);
    if (b->failed)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void simbuf_puts(simbuf *b, const char *s)
{
    simbuf_append(b, s, strlen(s));
}

void simbuf_printf(simbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        simbuf_append(b, small, (size_t)n);
        return;
    }
    simbuf_reserve(b, (size_t)n);
    if (b->failed)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void simbuf_free(simbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void simbuf_urlencode(simbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '$') {
            char ch = (char)c;
            simbuf_append(b, &ch, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            simbuf_append(b, esc, 3);
        }
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *simjson_urldecode(const char *s, size_t n, bool plus_is_space)
{
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}
