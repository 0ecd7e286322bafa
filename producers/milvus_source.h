/* milvus_source: the Milvus producer's per-source logic (SPEC §3): pages through
 * /cliente/busca?status=3 with the stop rules of milvus_pager.h and publishes only clients that
 * are new or whose content changed since their last publish (SHA-256 of the unformatted JSON
 * per client id in MongoDB `milvus_hashes`, saved only after the delivery succeeded).
 * Every client is published, whatever its id (SPEC §3: the MILVUS_MIN_ID watermark is applied
 * by clients-to-ploomes). When MILVUS_MIN_ID is unset, the first full successful scan (no
 * truncation, the stated total reached) fixes the account setting "milvus_min_id" in MongoDB
 * to the highest id seen + 1 (decimal text; an existing value is kept).
 * Paging: a server that caps pages below what was asked while meta.paginate.total says more
 * exist is paged on at its page size; a pass that ends short of the stated total fails, and so
 * does one past MILVUS_MAX_PAGES pages. The poll interval is stretched so scans stay under
 * MILVUS_SCAN_QUOTA_SHARE of MILVUS_RATE_PER_MIN (event=poll_interval, effective_s).
 * Cursor key for pipeline-status: "milvus.client".
 */
#ifndef PRODUCERS_MILVUS_SOURCE_H
#define PRODUCERS_MILVUS_SOURCE_H

#include "producer.h"

extern const producer_source_t MILVUS_SOURCE;

#define MILVUS_CURSOR_KEY "milvus.client"

/* The account setting read by clients-to-ploomes when MILVUS_MIN_ID is unset. */
#define MILVUS_MIN_ID_SETTING "milvus_min_id"

#endif
