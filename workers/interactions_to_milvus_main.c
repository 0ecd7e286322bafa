/* interactions-to-milvus: see interactions_to_milvus.c. */
#include "ticket.h"

int main(int argc, char **argv)
{
    return worker_main(&INTERACTIONS_TO_MILVUS, argc, argv);
}
