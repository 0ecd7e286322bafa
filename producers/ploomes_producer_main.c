/* ploomes-producer: polls Ploomes Contacts, Tasks and InteractionRecords and publishes the raw
 * records to Kafka (SPEC §2-§3). The logic is in ploomes_source.c and producer.c. */
#include "app.h"
#include "ploomes_source.h"
#include "producer.h"
#include "store.h"

static const app_spec_t SPEC = {
    .name = "ploomes-producer",
    .summary = "Polls Ploomes Contacts, Tasks and InteractionRecords (keyset paging on "
               "LastUpdateDate, Id) and publishes each new or changed record to "
               "ploomes.contacts, ploomes.tasks and ploomes.interactions. The cursor of each "
               "entity lives in MongoDB and moves only after Kafka confirmed the page.",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO | CONFIG_NEED_PLOOMES | CONFIG_NEED_PRODUCER,
    .flags = APP_ALLOW_ONCE,
};

int main(int argc, char **argv)
{
    app_t app;
    if (!app_init(&app, &SPEC, argc, argv))
        return app.exit_code;
    int rc = producer_run(&app.cfg, &app.cli, SPEC.name, &PLOOMES_SOURCE);
    app_free(&app);
    store_global_cleanup();
    return rc;
}
