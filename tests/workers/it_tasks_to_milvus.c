/* tasks-to-milvus against real Kafka and FerretDB and both simulators (strict): the table of
 * records → outcomes and exact bodies, an ambiguous create, a SIGKILL between POST and confirm.
 * The scenarios are shared with interactions-to-milvus (test_ticket_it.h). */
#include "test_ticket_it.h"

static const tk_kind_t TASKS = {"tasks-to-milvus", "ploomes.tasks", "task", true};

int main(void)
{
    return tk_main(&TASKS, 200000000);
}
