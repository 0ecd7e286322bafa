/* json_: the helpers cJSON lacks (SPEC §5): 64-bit ids, typed getters that tell a missing key
 * from a JSON null from a wrong type, UTF-8 validation, a size-capped parse and an owned
 * unformatted print.
 *
 * Ownership: getters return pointers INTO the cJSON tree (borrowed: valid while the tree lives,
 * never freed by the caller). json_parse_bounded() returns a tree the caller frees with
 * cJSON_Delete(). json_print() returns a string the caller frees with free() (cJSON's default
 * allocator; this project never installs cJSON hooks).
 *
 * Thread-safety: every function is reentrant; a cJSON tree must not be mutated by one thread
 * while another reads it.
 */
#ifndef PIPELINE_JSON_H
#define PIPELINE_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Outcome of a typed getter. Only JSON_OK writes *out. */
typedef enum {
    JSON_OK = 0,         /* present, right type, usable value */
    JSON_MISSING = 1,    /* key absent (or the object itself is NULL / not an object) */
    JSON_NULL = 2,       /* key present with the JSON value null */
    JSON_WRONG_TYPE = 3, /* present with another JSON type (e.g. a number where a string was
                            expected) */
    JSON_BAD_VALUE = 4   /* right JSON type but unusable: a number that is not an exact integer
                            or is outside +-2^53, a string id that is not plain decimal, a string
                            that is not valid UTF-8 */
} json_status_t;

/* Largest integer a double holds exactly: ids beyond it cannot be trusted when they arrive as
 * JSON numbers. */
#define JSON_MAX_SAFE_INT 9007199254740992LL /* 2^53 */

/* Short name of a status ("ok", "missing", "null", "wrong type", "bad value"), for messages. */
const char *json_status_name(json_status_t status);

/* obj[key] as a string. *out borrows the tree's text. The string is checked to be valid UTF-8
 * (JSON_BAD_VALUE otherwise). Key lookup is case-sensitive. */
json_status_t json_get_string(const cJSON *obj, const char *key, const char **out);

/* obj[key] as a boolean: only JSON true/false are accepted (no 0/1, no "true"). */
json_status_t json_get_bool(const cJSON *obj, const char *key, bool *out);

/* obj[key] as a 64-bit integer id, see json_to_int64(). */
json_status_t json_get_int64(const cJSON *obj, const char *key, int64_t *out);

/* The item itself as a 64-bit integer.
 * - JSON number: accepted only when its double value is an exact integer with
 *   |v| <= 2^53 (cJSON's valueint saturates at INT_MAX; we never read it).
 * - JSON string: accepted when it is plain decimal text: optional '-', 1 to 19 digits, no
 *   spaces, no '+', no leading zeros (except "0"), within int64 range. This covers APIs that
 *   send big ids as strings; such strings are exact (not limited to 2^53).
 * - NULL item → JSON_MISSING; JSON null → JSON_NULL; anything else → JSON_WRONG_TYPE. */
json_status_t json_to_int64(const cJSON *item, int64_t *out);

/* obj[key] as an object / array (borrowed). */
json_status_t json_get_object(const cJSON *obj, const char *key, const cJSON **out);
json_status_t json_get_array(const cJSON *obj, const char *key, const cJSON **out);

/* True when s[0..len) is well-formed UTF-8 (RFC 3629): rejects overlong forms, UTF-16
 * surrogates (U+D800..U+DFFF), code points above U+10FFFF, stray continuation bytes, bytes
 * 0xC0, 0xC1, 0xF5..0xFF and sequences cut short by the end of the buffer. Embedded NUL bytes
 * are valid UTF-8 (U+0000). s may be NULL only when len is 0. */
bool json_utf8_valid(const char *s, size_t len);

/* Length (1 to 4) of the one well-formed UTF-8 character (by the rules of json_utf8_valid) that
 * starts at s, of which n bytes are available; 0 when the bytes there are not one, or n is 0.
 * For walking text character by character, replacing the bytes that do not decode. */
size_t json_utf8_seq_len(const char *s, size_t n);

/* Walks the whole tree and checks that every string value and every object key is valid
 * UTF-8. Returns 0 when all are, -1 otherwise and writes the JSON path of the first bad one
 * into path (e.g. "$.Contacts[2].Name"; may be NULL / 0). Never writes the bad text itself
 * (it may be personal data). Nesting is bounded by cJSON's own limit. */
int json_validate_utf8(const cJSON *root, char *path, size_t pathlen);

/* Parses buf[0..len) (need not be NUL-terminated) into a tree the caller frees with
 * cJSON_Delete(). Fails (returns NULL, err gets a sentence) when len > max_len ("input of N
 * bytes exceeds the M byte cap"), when the text is not JSON, or when anything but whitespace
 * follows the value; the message carries the byte offset of cJSON's error position
 * ("invalid JSON at byte 17 of 40"). A NUL byte anywhere, or a \u0000 escape inside a string,
 * fails it too (a C string would be cut there: "52998224725\u0000x" read as a valid CPF).
 * Strings are NOT checked for UTF-8 here; call
 * json_validate_utf8() before sending anything on. err may be NULL. */
cJSON *json_parse_bounded(const char *buf, size_t len, size_t max_len, char *err, size_t errlen);

/* Like json_parse_bounded(), for API pages where one bad record must not block the rest:
 * cJSON rejects the whole document when a string holds a \uXXXX escape of a lone UTF-16
 * surrogate (U+D800..U+DFFF not forming a pair), which .NET and JavaScript servers emit for a
 * string cut inside a surrogate pair. When the strict parse fails and the text holds such
 * escapes, each is replaced by the 3-byte encoding of the surrogate (0xED 0xA0..0xBF 0x80..0xBF)
 * and the text parsed again; a \u0000 escape likewise becomes the overlong bytes 0xC0 0x80.
 * Those bytes are NOT valid UTF-8, so json_validate_utf8() flags exactly the strings that held
 * one. Any other error is reported as by
 * json_parse_bounded() (offsets refer to the original text). *repaired (may be NULL) gets the
 * number of escapes replaced. */
cJSON *json_parse_bounded_lenient(const char *buf, size_t len, size_t max_len, size_t *repaired,
                                  char *err, size_t errlen);

/* cJSON_PrintUnformatted() of item as a new string the caller frees with free(); *len_out (when
 * not NULL) gets its strlen. Returns NULL when item is NULL or memory runs out. */
char *json_print(const cJSON *item, size_t *len_out);

#endif
