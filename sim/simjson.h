/* simjson_: small cJSON helpers the simulators share (64-bit ids, safe number reads) and a
 * growable string buffer (simbuf_) with a size cap.
 *
 * Ownership: functions returning char* or cJSON* hand the caller a new allocation (free() /
 * cJSON_Delete()). Thread-safe (no shared state).
 */
#ifndef SIM_SIMJSON_H
#define SIM_SIMJSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when item is a JSON number holding an integer in [-2^53, 2^53]; *out gets it. Never
 * casts an out-of-range double (huge numbers, inf, nan answer false). */
bool simjson_i64(const cJSON *item, int64_t *out);

/* simjson_i64 on object[key]; false when absent or not an integer. */
bool simjson_get_i64(const cJSON *obj, const char *key, int64_t *out);

/* Parses a count written as plain decimal digits ("0", "42"; no sign, no leading space, nothing
 * after) into *out: command-line ports and query values such as $top or pagina. False when the
 * text is not one or does not fit an int64_t. */
bool simjson_parse_count(const char *text, int64_t *out);

/* A number item for an int64 id (exact below 2^53). */
cJSON *simjson_num_i64(int64_t v);

/* Replaces (or adds) object[key] with item; takes ownership of item. */
void simjson_set(cJSON *obj, const char *key, cJSON *item);

/* String value of object[key] or NULL. */
const char *simjson_get_str(const cJSON *obj, const char *key);

/* Parses text of exactly len bytes; NULL on malformed JSON (nesting is capped by cJSON). */
cJSON *simjson_parse(const char *text, size_t len);

/* Growable NUL-terminated buffer. On allocation failure `failed` is set and further appends
 * are ignored. Free with simbuf_free or take `data` (malloc'd) yourself. */
typedef struct simbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} simbuf;

void simbuf_append(simbuf *b, const char *s, size_t n);
void simbuf_puts(simbuf *b, const char *s);
void simbuf_printf(simbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void simbuf_free(simbuf *b);

/* Appends s percent-encoded (everything but A-Z a-z 0-9 - . _ ~ $). */
void simbuf_urlencode(simbuf *b, const char *s);

/* Decodes %XX (and '+' to space when plus_is_space) from s[0..n) into a new string. Invalid
 * escapes are kept literally. Returns NULL on allocation failure. */
char *simjson_urldecode(const char *s, size_t n, bool plus_is_space);

#endif
