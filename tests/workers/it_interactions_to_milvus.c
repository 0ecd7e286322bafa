/* interactions-to-milvus against real Kafka and FerretDB and both simulators (strict): the
 * table of records → outcomes and exact bodies (subject = first line of Content), an ambiguous
 * create, a SIGKILL between POST and confirm. The scenarios are shared with tasks-to-milvus
 * (test_ticket_it.h). */
#include "test_ticket_it.h"

static const tk_kind_t INTERACTIONS = {"interactions-to-milvus", "ploomes.interactions",
                                       "interaction", false};

int main(void)
{
    return tk_main(&INTERACTIONS, 300000000);
}
