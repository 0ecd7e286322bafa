/* milvus_source: the Milvus producer's per-source logic (SPEC §3): pages through
 * /cliente/busca?status=3 with the stop rules of milvus_pager.h and publishes only clients that
 * are new or whose content changed since their last publish (SHA-256 of the unformatted JSON
 * per client id in MongoDB `milvus_hashes`, saved only after the delivery succeeded).
 * Clients with id < MILVUS_MIN_ID are skipped. Cursor key for pipeline-status: "milvus.client".
 */
#ifndef PRODUCERS_MILVUS_SOURCE_H
#define PRODUCERS_MILVUS_SOURCE_H

#include "producer.h"

extern const producer_source_t MILVUS_SOURCE;

#define MILVUS_CURSOR_KEY "milvus.client"

#endif
