/* testenv_: see testenv.h. */
#include "testenv.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Before main() of every test (test_support is linked into each one): the settings of a
 * second ctest entry of the same test binary (see testenv.h). */
__attribute__((constructor)) void testenv_second_entry(void)
{
    const char *from = getenv("PIPELINE_TEST_MONGO_URI_FROM");
    if (from && from[0]) {
        const char *uri = getenv(from);
        if (!uri || !uri[0]) {
            fprintf(stderr,
                    "test environment: SKIPPED: %s is not set. This entry runs the test on a "
                    "second MongoDB store; ./scripts/test.sh starts it and sets %s (or export "
                    "it yourself, e.g. %s=mongodb://127.0.0.1:27028/pipeline).\n",
                    from, from, from);
            exit(TESTENV_SKIPPED);
        }
        if (setenv("MONGODB_URI", uri, 1) != 0) {
            perror("test environment: setenv MONGODB_URI");
            exit(1);
        }
        fprintf(stderr, "test environment: MONGODB_URI from %s\n", from);
    }
    const char *filter = getenv("PIPELINE_TEST_FILTER");
    if (filter && filter[0])
        cmocka_set_test_filter(filter);
    const char *skip = getenv("PIPELINE_TEST_SKIP");
    if (skip && skip[0])
        cmocka_set_skip_filter(skip);
}

const char *testenv_require(const char *name)
{
    const char *value = getenv(name);
    if (!value || !value[0]) {
        fprintf(stderr,
                "test environment: %s is not set. Run the tests through ./scripts/test.sh "
                "(it starts Kafka and MongoDB and sets it), or export it yourself.\n",
                name);
        exit(1);
    }
    return value;
}

const char *testenv_unique(char *buf, size_t size, const char *prefix)
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned mix = (unsigned)ts.tv_nsec ^ ((unsigned)getpid() << 16) ^ (counter * 2654435761u);
    snprintf(buf, size, "%s%d-%u-%08x", prefix ? prefix : "", (int)getpid(), counter++, mix);
    return buf;
}

const char *testenv_bin(char *buf, size_t size, const char *binary)
{
    snprintf(buf, size, "%s/%s", testenv_require("PIPELINE_BIN_DIR"), binary);
    return buf;
}

const char *testenv_mongo_uri_for_db(char *buf, size_t size, const char *db)
{
    const char *uri = testenv_require("MONGODB_URI");
    const char *scheme_end = strstr(uri, "://");
    const char *host_start = scheme_end ? scheme_end + 3 : uri;
    const char *path = strchr(host_start, '/');
    const char *query = strchr(host_start, '?');
    size_t base_len = path ? (size_t)(path - uri) : (query ? (size_t)(query - uri) : strlen(uri));
    snprintf(buf, size, "%.*s/%s%s", (int)base_len, uri, db, query ? query : "");
    return buf;
}

int64_t testenv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool testenv_wait_until(bool (*cond)(void *ctx), void *ctx, int timeout_ms, int interval_ms)
{
    int64_t deadline = testenv_now_ms() + timeout_ms;
    for (;;) {
        if (cond(ctx))
            return true;
        if (testenv_now_ms() >= deadline)
            return false;
        struct timespec pause = {interval_ms / 1000, (long)(interval_ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
}

char *testenv_read_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while (mem && (n = fread(chunk, 1, sizeof chunk, fp)) > 0)
        fwrite(chunk, 1, n, mem);
    fclose(fp);
    if (mem)
        fclose(mem);
    return buf;
}

void testenv_make_cpf(const char *prefix, long n, char out[12])
{
    size_t plen = 0;
    while (plen < 9 && prefix[plen] >= '0' && prefix[plen] <= '9')
        plen++;
    memcpy(out, prefix, plen);
    /* n's low (9 - plen) digits, zero-padded */
    unsigned long v = n < 0 ? 0 : (unsigned long)n;
    for (size_t i = 9; i > plen; i--) {
        out[i - 1] = (char)('0' + v % 10);
        v /= 10;
    }
    for (int len = 9; len <= 10; len++) {
        int sum = 0;
        for (int i = 0; i < len; i++)
            sum += (out[i] - '0') * (len + 1 - i);
        int r = sum % 11;
        out[len] = (char)('0' + (r < 2 ? 0 : 11 - r));
    }
    out[11] = '\0';
}

const char *testenv_json_start(const char *out, char open)
{
    if (out == NULL)
        return NULL;
    for (const char *line = out; *line != '\0';) {
        if (*line == open)
            return line;
        const char *nl = strchr(line, '\n');
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    return NULL;
}
