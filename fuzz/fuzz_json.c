/* libFuzzer target: the JSON helpers (common/json.h): the bounded parsers (strict and the
 * lone-surrogate repair), the UTF-8 validator and walker, and every typed getter on every key
 * of the parsed object. Cross-checks: json_utf8_valid() agrees with walking the text with
 * json_utf8_seq_len(); a string the getter accepts is valid UTF-8. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "json.h"

static void getters(const cJSON *obj)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (!it->string)
            continue;
        const char *s = NULL;
        bool b;
        int64_t i;
        const cJSON *sub = NULL;
        if (json_get_string(obj, it->string, &s) == JSON_OK &&
            !json_utf8_valid(s, strlen(s)))
            abort();
        (void)json_get_bool(obj, it->string, &b);
        if (json_get_int64(obj, it->string, &i) == JSON_OK && cJSON_IsNumber(it) &&
            (i > JSON_MAX_SAFE_INT || i < -JSON_MAX_SAFE_INT))
            abort();
        (void)json_get_object(obj, it->string, &sub);
        (void)json_get_array(obj, it->string, &sub);
        (void)json_status_name(json_to_int64(it, &i));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    /* The walker and the validator must agree. */
    bool valid = json_utf8_valid(text, size);
    size_t pos = 0;
    bool walk_ok = true;
    while (pos < size) {
        size_t n = json_utf8_seq_len(text + pos, size - pos);
        if (n == 0 || n > 4 || n > size - pos) {
            walk_ok = false;
            break;
        }
        pos += n;
    }
    if (valid != walk_ok)
        abort();

    char err[160];
    cJSON *root = json_parse_bounded(text, size, 1 << 20, err, sizeof err);
    if (!root && strlen(err) >= sizeof err)
        abort();
    size_t repaired = 0;
    cJSON *lenient = json_parse_bounded_lenient(text, size, 1 << 20, &repaired, err, sizeof err);
    if (root && !lenient)
        abort(); /* the lenient parse accepts everything the strict one does */
    char path[64];
    if (root) {
        if (json_validate_utf8(root, path, sizeof path) != 0 && strlen(path) >= sizeof path)
            abort();
        getters(root);
        size_t len = 0;
        char *printed = json_print(root, &len);
        if (!printed || strlen(printed) != len)
            abort();
        free(printed);
    }
    if (lenient) {
        (void)json_validate_utf8(lenient, NULL, 0);
        getters(lenient);
    }
    /* A tiny cap must fail cleanly. */
    cJSON *capped = json_parse_bounded(text, size, size ? size - 1 : 0, err, sizeof err);
    if (capped && size > 0)
        abort();
    cJSON_Delete(capped);
    cJSON_Delete(root);
    cJSON_Delete(lenient);
    return 0;
}
