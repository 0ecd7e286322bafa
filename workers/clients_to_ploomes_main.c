/* clients-to-ploomes: see clients_to_ploomes.c. */
#include "worker.h"

extern const worker_handler_t CLIENTS_TO_PLOOMES;

int main(int argc, char **argv)
{
    return worker_main(&CLIENTS_TO_PLOOMES, argc, argv);
}
