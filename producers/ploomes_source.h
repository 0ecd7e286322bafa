/* ploomes_source: the Ploomes producer's per-source logic (SPEC §3): for every entity set
 * switched on in PLOOMES_ENTITIES, a keyset scan from the cursor in MongoDB, publishing each
 * new or changed row and moving the cursor only after the page's delivery reports all
 * succeeded.
 *
 * First start (no cursor): contacts from SYNC_SINCE; tasks and interactions from
 * now - TICKET_LOOKBACK_MINUTES. That start is saved as the cursor (Id 0) before the first
 * request, so a first pass that fails does not move the lookback window on the next poll.
 */
#ifndef PRODUCERS_PLOOMES_SOURCE_H
#define PRODUCERS_PLOOMES_SOURCE_H

#include "producer.h"

extern const producer_source_t PLOOMES_SOURCE;

/* The first-start cursor stamp of `entity` into out: SYNC_SINCE text for contacts, else
 * now_ms - TICKET_LOOKBACK_MINUTES as RFC 3339 UTC. Returns 0, or -1 when out is too small. */
int ploomes_initial_stamp(const config_t *cfg, int entity, int64_t now_ms, char *out,
                          size_t size);

#endif
