/* interactions_to_milvus: a tagged Ploomes interaction record → one Milvus ticket (SPEC §5).
 * The rules live in ticket.c; this file is the interaction's table: marker
 * [ploomes:interaction:<Id>], chamado_assunto = first line of Content (120 characters),
 * description = Content. */
#include "ticket.h"

static const ticket_source_t INTERACTION = {
    .entity = "interaction",
    .text_field = "Content",
    .subject = ticket_interaction_subject,
};

static void handle(worker_ctx_t *ctx, void *state, const cJSON *value, worker_result_t *out)
{
    ticket_handle(ctx, state, &INTERACTION, value, out);
}

const worker_handler_t INTERACTIONS_TO_MILVUS = {
    .name = "interactions-to-milvus",
    .topic = "ploomes.interactions",
    .summary = "tagged Ploomes interaction -> Milvus ticket (one per interaction, ever)",
    .config_needs = CONFIG_NEED_PLOOMES | CONFIG_NEED_MILVUS | CONFIG_NEED_TICKETS,
    .init = ticket_init,
    .fini = ticket_fini,
    .handle = handle,
};
