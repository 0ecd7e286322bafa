/* publish: SPEC §2 message construction. */
#include "publish.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

int publish_headers_build(publish_headers_t *h, const char *source, const char *entity,
                          const char *id, const char *stamp, const char *fetched_at)
{
    if (h == NULL)
        return -1;
    memset(h, 0, sizeof *h);
    if (source == NULL || entity == NULL || id == NULL || stamp == NULL || fetched_at == NULL ||
        *source == '\0' || *entity == '\0' || *id == '\0')
        return -1;
    if (copy_text(h->source, sizeof h->source, source) != 0 ||
        copy_text(h->entity, sizeof h->entity, entity) != 0 ||
        copy_text(h->fetched_at, sizeof h->fetched_at, fetched_at) != 0)
        return -1;
    if (hash_event_id(source, entity, id, stamp, h->event_id) != 0)
        return -1;
    h->names[0] = "source";
    h->names[1] = "entity";
    h->names[2] = "fetched-at";
    h->names[3] = "event-id";
    h->values[0] = h->source;
    h->values[1] = h->entity;
    h->values[2] = h->fetched_at;
    h->values[3] = h->event_id;
    return 0;
}

const char *publish_key(int64_t id, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRId64, id);
    return buf;
}

int publish_send(kafka_producer_t *p, kafka_batch_t *batch, const char *topic, const char *key,
                 const char *value, const publish_headers_t *h, char *err, size_t errlen)
{
    return kafka_producer_send(p, topic, key, value, h->names, h->values, PUBLISH_HEADER_COUNT,
                               batch, err, errlen);
}
