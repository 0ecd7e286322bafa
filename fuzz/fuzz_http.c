/* libFuzzer target: the pure HTTP helpers (common/http.h): Retry-After parsing, the error
 * message taken from a response body (JSON shapes, raw text, cut at a UTF-8 boundary), URL
 * redaction, percent-encoding and the classification of any status. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "http.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    int64_t ms = -2;
    if (http_parse_retry_after(s, (time_t)1764547200, &ms) == 0 &&
        (ms < 0 || ms > 24LL * 3600 * 1000))
        abort(); /* capped at 24 h, never negative */

    /* Error message of a body: single line, valid UTF-8 when the input was, bounded. */
    static const size_t sizes[] = {1, 2, 4, 17, 300};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char out[300];
        memset(out, 'X', sizeof out);
        http_error_message((const char *)data, size, out, sizes[i]);
        size_t n = strnlen(out, sizes[i]);
        if (n >= sizes[i])
            abort(); /* not terminated within size */
        for (size_t k = 0; k < n; k++)
            if ((unsigned char)out[k] < 0x20)
                abort(); /* control characters become spaces */
        if (json_utf8_valid((const char *)data, size) && !json_utf8_valid(out, n))
            abort(); /* cut inside a character */
    }

    char red[256];
    http_redact_url(s, red, sizeof red);
    if (strnlen(red, sizeof red) >= sizeof red)
        abort();
    char enc[512];
    int e = http_percent_encode(s, enc, sizeof enc);
    if (e >= 0 && (size_t)e != strlen(enc))
        abort();
    char *dup = http_percent_encode_dup(s);
    if (dup && e >= 0 && strcmp(dup, enc) != 0)
        abort();
    free(dup);

    long status = 0;
    for (size_t k = 0; k < size && k < 4; k++)
        status = status * 256 + data[k];
    status = status % 1000 - 1;
    for (int t = HTTP_TRANSPORT_OK; t <= HTTP_TRANSPORT_OTHER; t++) {
        http_class_t c = http_classify(status, (http_transport_t)t, size % 2);
        (void)http_class_name(c);
        char cls[48];
        http_error_class(status, (http_transport_t)t, cls, sizeof cls);
    }
    free(s);
    return 0;
}
