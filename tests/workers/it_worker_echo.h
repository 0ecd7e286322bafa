/* it_worker_echo: the fixture shared by the runtime's integration tests (it_worker_runtime.c,
 * it_worker_lifecycle.c), which drive the test-only echo-worker (echo_worker_main.c) against
 * the real Kafka and FerretDB and milvus-sim in its strict default. Header-only. */
#ifndef TESTS_WORKERS_IT_WORKER_ECHO_H
#define TESTS_WORKERS_IT_WORKER_ECHO_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "wtest.h"

#define TOKEN "tok-echo-1234"
#define BIN "echo-worker"
#define SRC "ploomes.contacts"

typedef struct {
    wt_t w;
    simproc *milvus;
} fx_t;

/* A valid CPF (check digits computed) from a 9-digit base. */
static inline void make_cpf(long base, char out[12])
{
    testenv_make_cpf("", base, out);
}

static inline int fx_setup_n(void **state, int partitions)
{
    fx_t *f = calloc(1, sizeof *f);
    char err[512];
    f->milvus = simproc_start_sim("milvus-sim", TOKEN, "{\"rate_limit_per_min\":0}", err,
                                  sizeof err);
    if (f->milvus == NULL) {
        free(f);
        return -1;
    }
    wt_init(&f->w, "rt");
    wt_set(&f->w, "MILVUS_BASE_URL", simproc_api_url(f->milvus));
    wt_set(&f->w, "MILVUS_TOKEN", TOKEN);
    wt_setf(&f->w, "TOPIC_PARTITIONS", partitions);
    wt_set(&f->w, "MAX_IN_FLIGHT", "1"); /* the runtime's single-threaded path; the tests of
                                            MAX_IN_FLIGHT > 1 set it themselves */
    if (wt_ensure_topics_n(&f->w, partitions) != 0)
        return -1;
    *state = f;
    return 0;
}

static inline int fx_setup(void **state)
{
    return fx_setup_n(state, 2);
}

static inline int fx_setup6(void **state)
{
    return fx_setup_n(state, 6);
}

static inline int fx_teardown(void **state)
{
    fx_t *f = *state;
    int rc = simproc_stop(f->milvus);
    wt_free(&f->w);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Clients at the target with document `doc` (all when NULL); -1 on error. */
static inline int clients_at_target(fx_t *f, const char *doc)
{
    char path[128];
    if (doc)
        snprintf(path, sizeof path, "/api/cliente/busca?documento=%.14s&status=3", doc);
    else
        snprintf(path, sizeof path, "/api/cliente/busca?status=3");
    const char *hdr[] = {"Authorization: " TOKEN, NULL};
    long status = 0;
    cJSON *j = simproc_request_json(f->milvus, "GET", path, hdr, NULL, &status);
    const cJSON *lista = j ? cJSON_GetObjectItemCaseSensitive(j, "lista") : NULL;
    int n = status == 200 && cJSON_IsArray(lista) ? cJSON_GetArraySize(lista) : -1;
    cJSON_Delete(j);
    return n;
}

static inline void produce_client(fx_t *f, long id, const char *doc)
{
    char key[32], value[128];
    snprintf(key, sizeof key, "%ld", id);
    snprintf(value, sizeof value, "{\"Id\":%ld,\"doc\":\"%.14s\"}", id, doc);
    assert_int_equal(wt_produce(&f->w, SRC, key, value), 0);
}

static inline int run(fx_t *f, int expect)
{
    int rc = wt_run(&f->w, BIN, 3, 90000);
    if (rc != expect)
        pt_dump_log(f->w.log, 6000);
    return rc;
}

#endif
