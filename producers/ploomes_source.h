/* ploomes_source: the Ploomes producer's per-source logic (SPEC §3): for every entity set
 * switched on in PLOOMES_ENTITIES, a keyset scan from the cursor in MongoDB, publishing each
 * new or changed row and moving the cursor only after the page's delivery reports all
 * succeeded.
 *
 * Ties at printed precision (SPEC §3): a full page whose rows past the cursor all print one
 * stamp S is paged through by Id (LastUpdateDate ge S and lt S+u, $orderby=Id) and the cursor
 * then moves to (S+u, 0); a scan that cannot move fails loudly (event=scan_stuck,
 * producer_stuck_scans_total, the pass fails). Of any other page, the rows of its last stamp
 * are left for the next page, so a group is never cut between two pages.
 * Rows stamped later than now + FUTURE_STAMP_TOLERANCE_SECONDS never move the cursor: each is
 * published once per content (hash in milvus_hashes under the key -((entity+1)<<53) - Id),
 * warned about (event=future_stamp) and counted (producer_future_stamps_total).
 * A page that cannot be parsed is asked for again with half as many rows, down to one; a
 * record unparsable alone is identified with $select=Id,LastUpdateDate and skipped
 * (reason unparsable) and the cursor moves past it.
 *
 * First start (no cursor): contacts from SYNC_SINCE; tasks and interactions from
 * TICKETS_SINCE when set, else from the account's MongoDB setting "tickets_since" (RFC 3339
 * UTC; fixed at now - TICKET_LOOKBACK_MINUTES by whichever of ploomes-producer and the ticket
 * workers starts first). That start is saved as the cursor (Id 0) before the first request.
 */
#ifndef PRODUCERS_PLOOMES_SOURCE_H
#define PRODUCERS_PLOOMES_SOURCE_H

#include "producer.h"

extern const producer_source_t PLOOMES_SOURCE;

/* The account setting shared with the ticket workers (store_setting_get_or_init). */
#define PLOOMES_TICKETS_SINCE_SETTING "tickets_since"

/* The first-start cursor stamp of `entity` into out: SYNC_SINCE text for contacts; else
 * TICKETS_SINCE when set, or now_ms - TICKET_LOOKBACK_MINUTES as RFC 3339 UTC (the value to
 * offer as the "tickets_since" setting). Returns 0, or -1 when out is too small. */
int ploomes_initial_stamp(const config_t *cfg, int entity, int64_t now_ms, char *out,
                          size_t size);

#endif
