/* milvus-producer: polls Milvus clients and publishes new or changed ones to Kafka
 * (SPEC §2-§3). The logic is in milvus_source.c and producer.c. */
#include "app.h"
#include "milvus_source.h"
#include "producer.h"
#include "store.h"

static const app_spec_t SPEC = {
    .name = "milvus-producer",
    .summary = "Polls Milvus clients (/cliente/busca?status=3, paged with pagina and "
               "total_registros=1000) and publishes each client that is new or whose content "
               "changed since its last publish to milvus.clients (content hashes in MongoDB).",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO | CONFIG_NEED_MILVUS | CONFIG_NEED_PRODUCER,
    .flags = APP_ALLOW_ONCE,
};

int main(int argc, char **argv)
{
    app_t app;
    if (!app_init(&app, &SPEC, argc, argv))
        return app.exit_code;
    int rc = producer_run(&app.cfg, &app.cli, SPEC.name, &MILVUS_SOURCE);
    app_free(&app);
    store_global_cleanup();
    return rc;
}
