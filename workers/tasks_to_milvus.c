/* tasks_to_milvus: a tagged Ploomes task → one Milvus ticket (SPEC §5). The rules live in
 * ticket.c; this file is the task's table: marker [ploomes:task:<Id>], chamado_assunto = Title,
 * description = Description. */
#include "ticket.h"

static const ticket_source_t TASK = {
    .entity = "task",
    .text_field = "Description",
    .subject = ticket_task_subject,
};

static void handle(worker_ctx_t *ctx, void *state, const cJSON *value, worker_result_t *out)
{
    ticket_handle(ctx, state, &TASK, value, out);
}

const worker_handler_t TASKS_TO_MILVUS = {
    .name = "tasks-to-milvus",
    .topic = "ploomes.tasks",
    .summary = "tagged Ploomes task -> Milvus ticket (one per task, ever)",
    .config_needs = CONFIG_NEED_PLOOMES | CONFIG_NEED_MILVUS | CONFIG_NEED_TICKETS,
    .init = ticket_init,
    .fini = ticket_fini,
    .handle = handle,
};
