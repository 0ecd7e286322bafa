/* Shared by the libFuzzer targets in fuzz/: the entry point's prototype and a NUL-terminated
 * copy of the input (libFuzzer's buffer is not terminated and must not be written).
 * Ownership: fuzz_cstr() returns a malloc'd copy the caller frees; NULL when out of memory. */
#ifndef PIPELINE_FUZZ_UTIL_H
#define PIPELINE_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return NULL;
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
