/* tasks-to-milvus: see tasks_to_milvus.c. */
#include "ticket.h"

int main(int argc, char **argv)
{
    return worker_main(&TASKS_TO_MILVUS, argc, argv);
}
