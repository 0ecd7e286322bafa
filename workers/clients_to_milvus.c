/* clients_to_milvus: a Ploomes contact → one Milvus client (SPEC §5 "clients-to-milvus").
 * Filters: CreateDate >= SYNC_SINCE (else skipped `before_cutoff`), a document (else skipped
 * `no_document`), a valid one (else dead-lettered `InvalidDocument`). Dedup and creation:
 * milvus_client_ensure() (identity map, then Milvus searched in every document form, then one
 * create under a claim). */
#include <inttypes.h>
#include <stdio.h>

#include "../common/json.h"
#include "../common/log.h"
#include "milvus_client.h"

extern const worker_handler_t CLIENTS_TO_MILVUS;

static void handle(worker_ctx_t *ctx, void *state, const cJSON *value, worker_result_t *out)
{
    (void)state;
    int64_t id = 0;
    if (!milvus_client_record_id(value, "Id", "contact", &id, out))
        return;
    const char *created = NULL;
    int64_t created_ms = 0;
    if (json_get_string(value, "CreateDate", &created) != JSON_OK ||
        config_parse_rfc3339(created, &created_ms) != 0) {
        worker_result_dead(out, "InvalidRecord",
                           "contact %" PRId64 ": CreateDate missing or not RFC 3339", id);
        return;
    }
    if (created_ms < ctx->cfg->sync_since_ms) {
        worker_result_set(out, WORKER_SKIPPED, "before_cutoff");
        return;
    }
    char doc[DOC_BUF_SIZE];
    const char *why = NULL;
    doc_kind_t kind = milvus_contact_document(value, doc, &why, NULL);
    if (!milvus_client_doc_ok(kind, why, "contact", id, out))
        return;
    milvus_client_ensure(ctx, value, true, NULL, out);
}

const worker_handler_t CLIENTS_TO_MILVUS = {
    .name = "clients-to-milvus",
    .topic = "ploomes.contacts",
    .summary = "Ploomes contact -> Milvus client (one per CPF/CNPJ, ever)",
    .config_needs = CONFIG_NEED_MILVUS,
    .handle = handle,
};
