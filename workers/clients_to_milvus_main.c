/* clients-to-milvus: see clients_to_milvus.c. */
#include "worker.h"

extern const worker_handler_t CLIENTS_TO_MILVUS;

int main(int argc, char **argv)
{
    return worker_main(&CLIENTS_TO_MILVUS, argc, argv);
}
