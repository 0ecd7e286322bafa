/* Integration tests of the fault injection and admin API shared by both simulators (SPEC §8):
 * latency, error_rate/error_status (deterministic per seed), down and down_for_ms (admin keeps
 * answering), stats, reset, --state, --help, bad usage and clean exit on SIGTERM/SIGINT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "simproc.h"
#include "testenv.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct target {
    const char *name;
    const char *credential;
    const char *path; /* an API GET path */
    const char *const *auth;
} target;

static const char *const P_AUTH[] = {"User-Key: K1", NULL};
static const char *const M_AUTH[] = {"Authorization: T1", NULL};
static const target TARGETS[] = {{"ploomes-sim", "K1", "/Contacts", P_AUTH},
                                 {"milvus-sim", "T1", "/api/cliente/busca", M_AUTH}};


static long api_get(simproc *p, const target *t)
{
    long st = 0;
    assert_int_equal(simproc_request(p, "GET", t->path, t->auth, NULL, &st, NULL, NULL), 0);
    return st;
}

typedef struct upctx {
    simproc *p;
    const target *t;
} upctx;

static bool is_up(void *ctx)
{
    upctx *u = ctx;
    return api_get(u->p, u->t) == 200;
}

static void test_faults(void **state)
{
    (void)state;
    for (size_t k = 0; k < 2; k++) {
        const target *t = &TARGETS[k];
        char err[256];
        simproc *p = simproc_start_sim(t->name, t->credential, "{\"rate_limit_per_min\":0}", err, sizeof err);
        assert_non_null(p);
        /* latency */
        assert_int_equal(simproc_faults(p, "{\"latency_ms\":300}"), 0);
        int64_t t0 = testenv_now_ms();
        assert_int_equal(api_get(p, t), 200);
        assert_true(testenv_now_ms() - t0 >= 300);
        assert_int_equal(simproc_faults(p, "{\"latency_ms\":0}"), 0);
        /* error_rate 1: every API call fails with error_status; admin still answers */
        assert_int_equal(simproc_faults(p, "{\"error_rate\":1,\"error_status\":502}"), 0);
        for (int i = 0; i < 5; i++)
            assert_int_equal(api_get(p, t), 502);
        cJSON *s = simproc_state(p);
        assert_non_null(s);
        cJSON_Delete(s);
        /* error_rate 0.5: deterministic for a given seed */
        char seq1[64] = "", seq2[64] = "";
        for (int run = 0; run < 2; run++) {
            assert_int_equal(simproc_faults(p, "{\"error_rate\":0.5,\"error_status\":503,\"seed\":1234}"), 0);
            char *seq = run ? seq2 : seq1;
            for (int i = 0; i < 40; i++)
                seq[i] = api_get(p, t) == 200 ? '.' : 'X';
            seq[40] = '\0';
        }
        assert_string_equal(seq1, seq2);
        assert_non_null(strchr(seq1, '.'));
        assert_non_null(strchr(seq1, 'X'));
        assert_int_equal(simproc_faults(p, "{\"error_rate\":0}"), 0);
        /* down: 503 everywhere but admin */
        assert_int_equal(simproc_faults(p, "{\"down\":true}"), 0);
        assert_int_equal(api_get(p, t), 503);
        long st;
        assert_int_equal(simproc_request(p, "GET", "/anything/else", t->auth, NULL, &st, NULL, NULL), 0);
        assert_int_equal(st, 503);
        cJSON *stats = simproc_stats(p);
        assert_non_null(stats);
        cJSON_Delete(stats);
        assert_int_equal(simproc_faults(p, "{\"down\":false}"), 0);
        assert_int_equal(api_get(p, t), 200);
        /* down_for_ms: comes back by itself */
        /* 3 s: the request right after must surely fall inside it on a loaded machine */
        assert_int_equal(simproc_faults(p, "{\"down_for_ms\":3000}"), 0);
        assert_int_equal(api_get(p, t), 503);
        upctx u = {p, t};
        assert_true(testenv_wait_until(is_up, &u, 60000, 50));
        /* bad fault bodies change nothing */
        const char *bad[] = {"{\"error_rate\":2}", "{\"nope\":1}", "{\"down\":\"yes\"}", "[1]", "x", NULL};
        for (int i = 0; bad[i]; i++)
            assert_int_equal(simproc_admin_post(p, "faults", bad[i]), 400);
        assert_int_equal(api_get(p, t), 200);
        /* stats count by method, path and status */
        stats = simproc_stats(p);
        const cJSON *e;
        double ok = 0, s502 = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(stats, "requests"))
        {
            if (strcmp(cJSON_GetObjectItemCaseSensitive(e, "path")->valuestring, t->path) != 0)
                continue;
            int code = (int)cJSON_GetObjectItemCaseSensitive(e, "status")->valuedouble;
            double n = cJSON_GetObjectItemCaseSensitive(e, "count")->valuedouble;
            if (code == 200)
                ok += n;
            if (code == 502)
                s502 += n;
        }
        assert_true(ok >= 3);
        assert_int_equal(s502, 5);
        cJSON_Delete(stats);
        /* reset: no faults, empty stats */
        assert_int_equal(simproc_faults(p, "{\"down\":true}"), 0);
        assert_int_equal(simproc_reset(p), 0);
        assert_int_equal(simproc_faults(p, "{\"rate_limit_per_min\":0}"), 0);
        assert_int_equal(api_get(p, t), 200);
        assert_int_equal(simproc_admin_post(p, "nope", "{}"), 404);
        assert_int_equal(simproc_stop(p), 0);
    }
}

/* Runs a simulator to completion (usage errors, --help); its output goes nowhere. */
static int run_status(const char *bin, const char *const *args)
{
    char err[256];
    pid_t pid = simproc_spawn(bin, args, NULL, "/dev/null", err, sizeof err);
    if (pid < 0)
        fprintf(stderr, "%s\n", err);
    assert_true(pid > 0);
    return simproc_wait(pid, 60000);
}

static void test_command_line(void **state)
{
    (void)state;
    const char *help[] = {"--help", NULL};
    assert_int_equal(run_status("ploomes-sim", help), 0);
    assert_int_equal(run_status("milvus-sim", help), 0);
    const char *no_key[] = {"--port", "0", NULL};
    assert_int_equal(run_status("ploomes-sim", no_key), 2);
    assert_int_equal(run_status("milvus-sim", no_key), 2);
    const char *bad_port[] = {"--port", "x", "--token", "t", NULL};
    assert_int_equal(run_status("milvus-sim", bad_port), 2);
    const char *unknown[] = {"--port", "0", "--user-key", "k", "--bogus", NULL};
    assert_int_equal(run_status("ploomes-sim", unknown), 2);
    const char *missing_state[] = {"--port", "0", "--user-key", "k", "--state", "/nonexistent/x.json", NULL};
    assert_int_equal(run_status("ploomes-sim", missing_state), 2);

    /* --state loads a seed at start */
    char file[] = "/tmp/simstate-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    const char *seed = "{\"clientes\":[{\"id\":7,\"nome_fantasia\":\"Loaded\",\"cnpj_cpf\":\"11222333000181\"}]}";
    assert_int_equal(write(fd, seed, strlen(seed)), (ssize_t)strlen(seed));
    close(fd);
    char err[256];
    const char *args[] = {"--port", "0", "--token", "T1", "--state", file, NULL};
    simproc *p = simproc_start("milvus-sim", args, err, sizeof err);
    assert_non_null(p);
    unlink(file);
    cJSON *s = simproc_state(p);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(s, "clientes"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c, "nome_fantasia")->valuestring, "Loaded");
    assert_int_equal(strlen(cJSON_GetObjectItemCaseSensitive(c, "token")->valuestring), 6);
    cJSON_Delete(s);
    /* SIGINT also exits 0 */
    pid_t pid = simproc_pid(p);
    kill(pid, SIGINT);
    assert_int_equal(simproc_stop(p), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_faults), cmocka_unit_test(test_command_line)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
