/* worker_result: outcome names, result helpers and the parsing of a record's value
 * (worker.h). No I/O: unit-tested in tests/workers/test_worker_result.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/clock.h"
#include "../common/config.h"
#include "../common/http.h"
#include "../common/json.h"
#include "../common/kafka_dlq.h"
#include "worker.h"

const char *worker_outcome_name(worker_outcome_t outcome)
{
    switch (outcome) {
    case WORKER_DELIVERED: return "delivered";
    case WORKER_SKIPPED: return "skipped";
    case WORKER_DEDUP_HIT: return "dedup_hit";
    case WORKER_DEAD: return "dead_lettered";
    case WORKER_RELEASE: return "released";
    case WORKER_AUTH: return "auth";
    }
    return "unknown";
}

void worker_result_clear(worker_result_t *out)
{
    if (out == NULL)
        return;
    free(out->response);
    memset(out, 0, sizeof *out);
}

worker_outcome_t worker_result_set(worker_result_t *out, worker_outcome_t outcome,
                                   const char *reason)
{
    out->outcome = outcome;
    snprintf(out->reason, sizeof out->reason, "%s", reason ? reason : "");
    return outcome;
}

worker_outcome_t worker_result_dead(worker_result_t *out, const char *error_class,
                                    const char *fmt, ...)
{
    out->outcome = WORKER_DEAD;
    snprintf(out->error_class, sizeof out->error_class, "%s", error_class);
    if (out->reason[0] == '\0')
        snprintf(out->reason, sizeof out->reason, "%s", error_class);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->message, sizeof out->message, fmt, ap);
    va_end(ap);
    int64_t now = clock_wall_ms();
    if (out->first_failure_ms == 0)
        out->first_failure_ms = now;
    if (out->last_failure_ms == 0)
        out->last_failure_ms = now;
    return WORKER_DEAD;
}

static int64_t stamp_ms(const char *text)
{
    int64_t ms = 0;
    if (text == NULL || text[0] == '\0' || config_parse_rfc3339(text, &ms) != 0)
        return 0;
    return ms;
}

worker_outcome_t worker_result_from_api(worker_result_t *out, const api_result_t *res)
{
    out->attempts += res->attempts;
    if (res->status != 0)
        out->http_status = res->status;
    int64_t first = stamp_ms(res->first_failure), last = stamp_ms(res->last_failure);
    if (first != 0 && (out->first_failure_ms == 0 || first < out->first_failure_ms))
        out->first_failure_ms = first;
    if (last != 0 && last > out->last_failure_ms)
        out->last_failure_ms = last;
    if (res->outcome == API_OK)
        return WORKER_DELIVERED;
    if (res->body != NULL && res->body_len > 0) {
        char *excerpt = malloc(KAFKA_DLQ_RESPONSE_MAX + 1);
        if (excerpt != NULL) {
            api_result_excerpt(res, KAFKA_DLQ_RESPONSE_MAX, excerpt,
                               KAFKA_DLQ_RESPONSE_MAX + 1);
            free(out->response);
            out->response = excerpt;
        }
    }
    switch (res->outcome) {
    case API_AUTH:
        snprintf(out->error_class, sizeof out->error_class, "%s", res->error_class);
        snprintf(out->message, sizeof out->message, "%s", res->message);
        return worker_result_set(out, WORKER_AUTH, "auth");
    case API_STOPPED:
        return worker_result_set(out, WORKER_RELEASE, "stopping");
    case API_PERMANENT:
        if (res->status == 403) { /* Milvus: a bad token (Ploomes' 403 is never permanent) */
            snprintf(out->error_class, sizeof out->error_class, "%s", res->error_class);
            snprintf(out->message, sizeof out->message, "%s", res->message);
            return worker_result_set(out, WORKER_AUTH, "auth");
        }
        break;
    default:
        break;
    }
    out->reason[0] = '\0';
    return worker_result_dead(out, res->error_class[0] ? res->error_class : "HttpError", "%s",
                              res->message);
}

worker_outcome_t worker_parse_value(const kafka_record_t *rec, size_t max_bytes, cJSON **value,
                                    worker_result_t *out)
{
    *value = NULL;
    if (rec->value == NULL)
        return worker_result_dead(out, "InvalidJson", "the record has no value (tombstone)");
    char err[256] = "";
    cJSON *v = json_parse_bounded(rec->value, rec->value_len, max_bytes, err, sizeof err);
    if (v == NULL)
        return worker_result_dead(out, "InvalidJson", "%s", err[0] ? err : "invalid JSON");
    if (!cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return worker_result_dead(out, "NotAnObject", "the value is JSON but not an object");
    }
    char path[256] = "";
    if (json_validate_utf8(v, path, sizeof path) != 0) {
        cJSON_Delete(v);
        return worker_result_dead(out, "InvalidUtf8", "invalid UTF-8 in the string at %s",
                                  path);
    }
    *value = v;
    return WORKER_DELIVERED;
}

const char *worker_owner_new(const char *instance_id, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%016llx", instance_id, (unsigned long long)http_random_u64());
    return buf;
}

int64_t worker_fetched_at_ms(const kafka_record_t *rec)
{
    size_t len = 0;
    const char *v = kafka_record_header(rec, "fetched-at", &len);
    char text[64];
    if (v == NULL || len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, v, len);
    text[len] = '\0';
    int64_t ms = 0;
    return config_parse_rfc3339(text, &ms) == 0 ? ms : -1;
}
