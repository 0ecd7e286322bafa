/* echo-worker: a test-only worker that drives the worker runtime (worker.h) in
 * tests/workers/it_worker_runtime.c. Consumes <prefix>ploomes.contacts; a value
 *   {"Id": n, "doc": "<11-digit CPF>"}            creates a Milvus client through
 *                                                  worker_create_once (key = doc)
 *   {"Id": n, "mode": "skip"}                      WORKER_SKIPPED "test_skip"
 *   {"Id": n, "mode": "dead"}                      WORKER_DEAD "TestDead"
 *   {"Id": n, "mode": "ploomes"}                   GET /Contacts?$top=1 from Ploomes (only with
 *                                                  ECHO_PLOOMES=1 in the environment, which
 *                                                  adds CONFIG_NEED_PLOOMES): delivered "read"
 *   {"Id": n, "mode": "seq", "k": K, "seq": s}     logs event=echo_begin k=K seq=s, makes one
 *                                                  Milvus GET (its latency comes from the
 *                                                  simulator's faults), logs event=echo_end:
 *                                                  delivered "seq" (the order tests of
 *                                                  MAX_IN_FLIGHT > 1 read the log)
 * Not a product binary: it knows nothing of SPEC §5's mapping. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "log.h"
#include "worker.h"

typedef struct {
    const char *doc;
    int64_t id;
} echo_arg_t;

static worker_search_t echo_search(worker_ctx_t *ctx, void *arg, store_entry_t *found,
                                   worker_result_t *out)
{
    const echo_arg_t *a = arg;
    char path[128];
    snprintf(path, sizeof path, "/cliente/busca?documento=%s&status=3", a->doc);
    api_result_t res;
    memset(&res, 0, sizeof res);
    if (api_request(ctx->milvus, HTTP_GET, path, NULL, API_IDEMPOTENT, &res) != API_OK) {
        worker_result_from_api(out, &res);
        api_result_clear(&res);
        return WORKER_SEARCH_FAILED;
    }
    out->attempts += res.attempts;
    cJSON *root = json_parse_bounded(res.body, res.body_len, 1 << 20, NULL, 0);
    api_result_clear(&res);
    const cJSON *lista = root ? cJSON_GetObjectItemCaseSensitive(root, "lista") : NULL;
    const cJSON *first = cJSON_IsArray(lista) ? cJSON_GetArrayItem(lista, 0) : NULL;
    worker_search_t s = WORKER_SEARCH_NOT_FOUND;
    if (cJSON_IsObject(first)) {
        const char *token = NULL;
        if (json_get_int64(first, "id", &found->milvus_id) == JSON_OK &&
            json_get_string(first, "token", &token) == JSON_OK) {
            snprintf(found->milvus_token, sizeof found->milvus_token, "%s", token);
            snprintf(found->origin, sizeof found->origin, "ploomes");
            found->ploomes_id = a->id;
            s = WORKER_SEARCH_FOUND;
        }
    } else if (!cJSON_IsArray(lista)) {
        worker_result_dead(out, "BadSearchAnswer", "no lista in /cliente/busca's answer");
        s = WORKER_SEARCH_FAILED;
    }
    cJSON_Delete(root);
    return s;
}

static api_outcome_t echo_create(worker_ctx_t *ctx, void *arg, store_entry_t *created,
                                 api_result_t *res)
{
    const echo_arg_t *a = arg;
    char body[256];
    snprintf(body, sizeof body,
             "{\"cliente_documento\":\"%s\",\"cliente_pessoa_fisica\":{\"nome\":\"Echo %" PRId64
             "\"},\"cliente_ativo\":true}",
             a->doc, a->id);
    api_outcome_t o = worker_post(ctx, ctx->milvus, "/cliente/criar", body, res);
    if (o != API_OK)
        return o;
    char *end = NULL;
    long long id = res->body ? strtoll(res->body, &end, 10) : 0;
    if (ctx->dry_run)
        return API_OK;
    if (end == res->body || id <= 0) {
        res->outcome = API_AMBIGUOUS; /* a 2xx without a usable id */
        snprintf(res->error_class, sizeof res->error_class, "NoIdInAnswer");
        return API_AMBIGUOUS;
    }
    created->milvus_id = id;
    created->ploomes_id = a->id;
    snprintf(created->origin, sizeof created->origin, "ploomes");
    return API_OK;
}

static void echo_handle(worker_ctx_t *ctx, void *state, const cJSON *value, worker_result_t *out)
{
    (void)state;
    const char *mode = NULL, *doc = NULL;
    int64_t id = 0;
    if (json_get_string(value, "mode", &mode) == JSON_OK && strcmp(mode, "skip") == 0) {
        worker_result_set(out, WORKER_SKIPPED, "test_skip");
        return;
    }
    if (mode != NULL && strcmp(mode, "ploomes") == 0 && ctx->ploomes != NULL) {
        api_result_t res;
        memset(&res, 0, sizeof res);
        if (api_request(ctx->ploomes, HTTP_GET, "/Contacts?$top=1", NULL, API_IDEMPOTENT, &res) ==
            API_OK)
            worker_result_set(out, WORKER_DELIVERED, "read");
        else
            worker_result_from_api(out, &res);
        api_result_clear(&res);
        return;
    }
    if (mode != NULL && strcmp(mode, "seq") == 0) {
        const char *k = NULL;
        int64_t seq = -1;
        if (json_get_string(value, "k", &k) != JSON_OK || json_get_int64(value, "seq", &seq) !=
                                                               JSON_OK) {
            worker_result_dead(out, "InvalidDocument", "no k or no seq");
            return;
        }
        char qk[80];
        log_msg(LOG_INFO, "echo_begin", "k=%s seq=%" PRId64, log_quote(qk, sizeof qk, k), seq);
        api_result_t res;
        memset(&res, 0, sizeof res);
        if (api_request(ctx->milvus, HTTP_GET, "/cliente/busca?status=3", NULL, API_IDEMPOTENT,
                        &res) == API_OK)
            worker_result_set(out, WORKER_DELIVERED, "seq");
        else
            worker_result_from_api(out, &res);
        api_result_clear(&res);
        log_msg(LOG_INFO, "echo_end", "k=%s seq=%" PRId64, log_quote(qk, sizeof qk, k), seq);
        return;
    }
    if (mode != NULL && strcmp(mode, "dead") == 0) {
        worker_result_dead(out, "TestDead", "asked to die");
        return;
    }
    if (json_get_int64(value, "Id", &id) != JSON_OK ||
        json_get_string(value, "doc", &doc) != JSON_OK || strlen(doc) != 11) {
        worker_result_dead(out, "InvalidDocument", "no Id or no 11-digit doc");
        return;
    }
    echo_arg_t arg = {doc, id};
    store_entry_t seed;
    memset(&seed, 0, sizeof seed);
    seed.ploomes_id = id;
    snprintf(seed.origin, sizeof seed.origin, "ploomes");
    worker_create_t c = {.kind = STORE_KIND_CLIENTS,
                         .key = doc,
                         .seed = &seed,
                         .search = echo_search,
                         .create = echo_create,
                         .arg = &arg};
    worker_create_once(ctx, &c, NULL, out);
}

static worker_handler_t ECHO_WORKER = {
    .name = "echo-worker",
    .topic = "ploomes.contacts",
    .summary = "Test-only worker: creates a Milvus client per record (tests of the runtime).",
    .config_needs = CONFIG_NEED_MILVUS,
    .handle = echo_handle,
};

int main(int argc, char **argv)
{
    const char *p = getenv("ECHO_PLOOMES");
    if (p != NULL && strcmp(p, "1") == 0)
        ECHO_WORKER.config_needs |= CONFIG_NEED_PLOOMES;
    return worker_main(&ECHO_WORKER, argc, argv);
}
