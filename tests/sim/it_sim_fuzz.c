/* A bounded fuzz run against both simulators: 2,000 random and malformed requests each (raw
 * HTTP over TCP: broken request lines, random paths and query strings, random OData, bodies
 * with bad UTF-8, huge numbers and deep nesting). The simulator must keep answering the admin
 * API throughout and exit 0 on SIGTERM (no sanitizer report, no leak). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "simproc.h"
#include "testenv.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define REQUESTS 2000

static uint64_t rng = 0x12345678ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Sends raw bytes, reads until close or 5 s; returns 1 if an HTTP status line came back. */
static int raw_exchange(int port, const char *data, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, data + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    char buf[4096];
    size_t got = 0;
    int64_t deadline = testenv_now_ms() + 5000;
    for (;;) {
        int left = (int)(deadline - testenv_now_ms());
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, left) <= 0)
            break;
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (got >= sizeof buf - 1)
            got = 0; /* keep draining */
    }
    close(fd);
    return got >= 5 && memcmp(buf, "HTTP/", 5) == 0;
}

static const char *PATHS[] = {"/Contacts", "/Contacts(1)", "/Contacts(99999999999999999999)", "/Tasks(1)/Finish",
                              "/Cities@Countries@States", "/Account", "/api/cliente/busca", "/api/cliente/criar",
                              "/api/chamado/criar", "/api/chamado/listagem", "/_admin/faults", "/_admin/nope",
                              "/%00%ff", "/Contacts(", "/Contacts()/x", "//", "/api/", "/Tags/../Users"};
static const char *METHODS[] = {"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS", "BREW"};
static const char *FRAGS[] = {"$filter=", "$orderby=", "$top=", "$skip=", "$select=", "$expand=", "$count=true",
                              "Id eq 1", "Id%20eq%201", "LastUpdateDate gt 2024-01-01T00:00:00+00:00",
                              "Tags/any(t:%20t/TagId%20eq%205)", "((((((((((", "'", "''", "%", "%zz", "%2B",
                              "contains(Name,'%C3%A9')", "not not not", "1e999", "-9223372036854775809",
                              "&", "=", "documento=", "status=3", "pagina=0", "total_registros=99999999999",
                              "\xff\xfe", "Name eq 'a''b'", "City/Name eq null", "Id gt 0 and", "$top=300"};
static const char *BODIES[] = {"{}", "[]", "null", "{\"Name\":\"\xff\xfe\xfd\"}", "{\"Name\":1e999}",
                               "{\"cliente_documento\":123456789012345678901234567890}", "{\"a\":",
                               "{\"cliente_id\":\"\",\"chamado_assunto\":\"x\"}", "\"str\"",
                               "{\"Name\":\"x\",\"Tags\":[{\"TagId\":1e300}]}", "{\"Contacts\":[{\"Id\":-1}]}",
                               "{\"filtro_body\":{\"codigo\":1e308,\"status\":[]}}", "{\"latency_ms\":-1}"};

static void build_request(char *buf, size_t size, size_t *len, const char *auth)
{
    char target[2048] = "";
    size_t t = 0;
    t += (size_t)snprintf(target, sizeof target, "%s", PATHS[rnd() % (sizeof PATHS / sizeof PATHS[0])]);
    int nq = (int)(rnd() % 5);
    for (int i = 0; i < nq && t < sizeof target - 200; i++)
        t += (size_t)snprintf(target + t, sizeof target - t, "%s%s", i ? (rnd() % 2 ? "&" : "") : "?",
                              FRAGS[rnd() % (sizeof FRAGS / sizeof FRAGS[0])]);
    if (rnd() % 8 == 0) /* random bytes in the target */
        for (int i = 0; i < 20 && t < sizeof target - 2; i++)
            target[t++] = (char)(33 + rnd() % 94);
    target[t] = '\0';
    char body[8192] = "";
    size_t b = 0;
    switch (rnd() % 4) {
    case 0:
        break;
    case 1:
        b = (size_t)snprintf(body, sizeof body, "%s", BODIES[rnd() % (sizeof BODIES / sizeof BODIES[0])]);
        break;
    case 2: { /* deep nesting */
        size_t depth = 100 + rnd() % 3000;
        for (size_t i = 0; i < depth && b < sizeof body - 1; i++)
            body[b++] = rnd() % 2 ? '[' : '{';
        break;
    }
    default:
        b = 1 + rnd() % 500;
        for (size_t i = 0; i < b; i++)
            body[i] = (char)(rnd() & 0xff);
    }
    const char *method = METHODS[rnd() % (sizeof METHODS / sizeof METHODS[0])];
    int shape = (int)(rnd() % 10);
    size_t o;
    if (shape == 0) { /* garbage request line */
        o = (size_t)snprintf(buf, size, "%s\r\n\r\n", target);
    } else if (shape == 1) { /* lying Content-Length */
        o = (size_t)snprintf(buf, size, "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999999999999\r\n%s\r\n", method, target, auth);
    } else if (shape == 2) { /* chunked */
        o = (size_t)snprintf(buf, size, "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n%s\r\n"
                             "Content-Type: application/json\r\n\r\n%zx\r\n", target, auth, b);
        memcpy(buf + o, body, b);
        o += b;
        o += (size_t)snprintf(buf + o, size - o, "\r\n0\r\n\r\n");
    } else {
        const char *who = rnd() % 4 ? auth : "X-No-Auth: 1";
        /* mostly JSON bodies, so that they reach the parsers past the 415 check */
        const char *ctype = rnd() % 4 ? "Content-Type: application/json; charset=utf-8\r\n" : "";
        o = (size_t)snprintf(buf, size, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n%sContent-Length: %zu\r\n\r\n",
                             method, target, who, ctype, b);
        memcpy(buf + o, body, b);
        o += b;
    }
    *len = o;
}

static void fuzz(const char *which)
{
    char err[256];
    bool ploomes = strcmp(which, "ploomes") == 0;
    simproc *p = simproc_start_sim(ploomes ? "ploomes-sim" : "milvus-sim", ploomes ? "FK" : "FT",
                                   "{\"rate_limit_per_min\":0}", err, sizeof err);
    assert_non_null(p);
    assert_int_equal(simproc_seed(p, ploomes
                                         ? "{\"Contacts\":[{\"Id\":1,\"Name\":\"A\",\"Tags\":[{\"TagId\":5}]}]}"
                                         : "{\"clientes\":[{\"id\":1,\"token\":\"AAA111\",\"cnpj_cpf\":\"11222333000181\"}]}"),
                     0);
    const char *auth = ploomes ? "User-Key: FK" : "Authorization: FT";
    int port = simproc_port(p);
    char *buf = malloc(16384);
    int answered = 0;
    int64_t t0 = testenv_now_ms();
    for (int i = 0; i < REQUESTS; i++) {
        size_t len;
        build_request(buf, 16384, &len, auth);
        answered += raw_exchange(port, buf, len);
        if (i % 100 == 99) {
            cJSON *s = simproc_stats(p);
            assert_non_null(s); /* still answering */
            cJSON_Delete(s);
        }
    }
    free(buf);
    fprintf(stderr, "%s-sim: %d requests, %d answered with HTTP, %lld ms\n", which, REQUESTS, answered,
            (long long)(testenv_now_ms() - t0));
    assert_true(answered > REQUESTS / 2);
    /* the keys still work */
    long st;
    const char *const hdr[] = {auth, NULL};
    assert_int_equal(simproc_request(p, "GET", ploomes ? "/Contacts" : "/api/cliente/busca",
                                     hdr, NULL, &st, NULL, NULL),
                     0);
    assert_int_equal(st, 200);
    assert_int_equal(simproc_stop(p), 0);
}

static void test_fuzz_ploomes(void **state)
{
    (void)state;
    fuzz("ploomes");
}

static void test_fuzz_milvus(void **state)
{
    (void)state;
    fuzz("milvus");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fuzz_ploomes), cmocka_unit_test(test_fuzz_milvus)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
