/* prodtest: helpers shared by the producers' integration tests (header-only: the build only
 * compiles tests/producers/test_*.c and it_*.c, each as its own program).
 *
 *   pt_run        run a producer to completion (simproc_spawn + simproc_wait); the simulators
 *                 and the daemons are run with tests/support/simproc.h directly
 *   pt_*log*      read the producer's log file
 *   pt_seed_set   seed one record set of a simulator
 *   pt_consume    read a whole topic from the beginning up to the high watermarks (exact: the
 *                 producers have flushed before we read) and collect every message
 *   pt_check_*    SPEC §2 checks of key and headers
 */
#ifndef TESTS_PRODUCERS_PRODTEST_H
#define TESTS_PRODUCERS_PRODTEST_H

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "simproc.h"
#include "testenv.h"

/* ---- subprocesses and simulators (tests/support/simproc.h) -------------------------------- */

/* Runs <PIPELINE_BIN_DIR>/<binary> to completion (e.g. --once) with the extra environment `env`,
 * output appended to log_path. Returns simproc_wait's answer (exit code, 128+signal, -1 on
 * timeout or when it could not start). */
static inline int pt_run(const char *binary, const char *const args[], const char *const env[],
                         const char *log_path, int timeout_ms)
{
    char err[512];
    pid_t pid = simproc_spawn(binary, args, env, log_path, err, sizeof err);
    if (pid < 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return simproc_wait(pid, timeout_ms);
}

/* Prints the last `bytes` of a log file to stderr (on failure). */
static inline void pt_dump_log(const char *path, long bytes)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > bytes ? size - bytes : 0, SEEK_SET);
    char buf[4096];
    size_t n;
    fprintf(stderr, "---- %s (tail) ----\n", path);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fclose(f);
}

/* Counts lines of a log file containing `needle`. */
static inline int pt_log_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* Seeds the simulator with {"<set>": arr} (arr is consumed). Returns simproc_seed's answer
 * (0 when the simulator answered 200). */
static inline int pt_seed_set(const simproc *sim, const char *set, cJSON *arr)
{
    cJSON *seed = cJSON_CreateObject();
    cJSON_AddItemToObject(seed, set, arr);
    char *text = cJSON_PrintUnformatted(seed);
    cJSON_Delete(seed);
    int rc = simproc_seed(sim, text);
    if (rc != 0)
        fprintf(stderr, "seeding %s failed\n", set);
    free(text);
    return rc;
}

/* ---- Kafka -------------------------------------------------------------------------------- */

typedef struct {
    char *key;
    char *value;
    char *source, *entity, *fetched_at, *event_id;
} pt_msg_t;

typedef struct {
    pt_msg_t *msgs;
    size_t n, cap;
} pt_msgs_t;

static inline void pt_msgs_free(pt_msgs_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->msgs[i].key);
        free(m->msgs[i].value);
        free(m->msgs[i].source);
        free(m->msgs[i].entity);
        free(m->msgs[i].fetched_at);
        free(m->msgs[i].event_id);
    }
    free(m->msgs);
    memset(m, 0, sizeof *m);
}

static inline char *pt_dupn(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (p && n)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static inline char *pt_header(rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    if (rd_kafka_header_get_last(hdrs, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    return pt_dupn(v, n);
}

/* Reads every message of `topic` (all partitions, from the beginning to the current high
 * watermarks) into *out. Returns 0, or -1 on a Kafka error / timeout. */
static inline int pt_consume(const char *topic, pt_msgs_t *out, int timeout_ms)
{
    memset(out, 0, sizeof *out);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", testenv_require("KAFKA_BOOTSTRAP_SERVERS"), err,
                      sizeof err);
    char gid[96];
    testenv_unique(gid, sizeof gid, "pt-reader-");
    rd_kafka_conf_set(conf, "group.id", gid, err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        fprintf(stderr, "consumer: %s\n", err);
        return -1;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int rc = -1;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "consumer: no metadata for %s\n", topic);
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    int64_t *high = calloc((size_t)np, sizeof *high);
    int remaining = 0;
    int failed = 0;
    for (int i = 0; i < np; i++) {
        int32_t pid = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        /* a failed query would read as an empty partition and silently drop its messages */
        rd_kafka_resp_err_t werr = rd_kafka_query_watermark_offsets(rk, topic, pid, &lo, &hi,
                                                                    30000);
        if (werr != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "consumer: watermarks of %s [%d]: %s\n", topic, (int)pid,
                    rd_kafka_err2str(werr));
            failed++;
        }
        high[i] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(parts, topic, pid)->offset = RD_KAFKA_OFFSET_BEGINNING;
            remaining++;
        }
    }
    rd_kafka_assign(rk, parts);
    int64_t deadline = testenv_now_ms() + timeout_ms;
    /* A partition is done when a message at offset >= high-1 was read (or EOF). */
    bool *done = calloc((size_t)np, sizeof *done);
    while (remaining > 0 && testenv_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        int idx = -1;
        for (int i = 0; i < np; i++)
            if (md->topics[0].partitions[i].id == m->partition)
                idx = i;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (idx >= 0 && !done[idx] && m->offset >= high[idx]) {
                done[idx] = true;
                remaining--;
            }
        } else if (!m->err) {
            if (out->n == out->cap) {
                out->cap = out->cap ? out->cap * 2 : 1024;
                out->msgs = realloc(out->msgs, out->cap * sizeof *out->msgs);
            }
            pt_msg_t *pm = &out->msgs[out->n++];
            pm->key = pt_dupn(m->key, m->key_len);
            pm->value = pt_dupn(m->payload, m->len);
            pm->source = pt_header(m, "source");
            pm->entity = pt_header(m, "entity");
            pm->fetched_at = pt_header(m, "fetched-at");
            pm->event_id = pt_header(m, "event-id");
            if (idx >= 0 && !done[idx] && m->offset >= high[idx] - 1) {
                done[idx] = true;
                remaining--;
            }
        }
        rd_kafka_message_destroy(m);
    }
    rc = remaining == 0 && failed == 0 ? 0 : -1;
    if (rc != 0)
        fprintf(stderr, "consumer: %d partitions of %s not read to the end\n", remaining, topic);
    free(done);
    free(high);
    rd_kafka_topic_partition_list_destroy(parts);
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

/* How many messages carry key `key`. */
static inline int pt_count_key(const pt_msgs_t *m, const char *key)
{
    int n = 0;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->msgs[i].key, key) == 0)
            n++;
    return n;
}

/* SPEC §2 checks of one message: key = value's id, headers present and right, event-id =
 * sha256(source|entity|id|stamp). `id_field`: "Id" (Ploomes) or "id" (Milvus). Returns NULL
 * when fine, else a static description. */
static inline const char *pt_check_msg(const pt_msg_t *m, const char *source, const char *entity,
                                       const char *id_field)
{
    static char why[256];
    cJSON *v = cJSON_Parse(m->value);
    if (!v)
        return "value is not JSON";
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, id_field);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%.0f", cJSON_IsNumber(id) ? id->valuedouble : -1.0);
    const char *res = NULL;
    if (strcmp(idtext, m->key) != 0) {
        snprintf(why, sizeof why, "key %s != value id %s", m->key, idtext);
        res = why;
    } else if (!m->source || strcmp(m->source, source) != 0) {
        res = "bad source header";
    } else if (!m->entity || strcmp(m->entity, entity) != 0) {
        res = "bad entity header";
    } else if (!m->fetched_at || strlen(m->fetched_at) < 20 ||
               m->fetched_at[strlen(m->fetched_at) - 1] != 'Z' || m->fetched_at[10] != 'T') {
        res = "bad fetched-at header";
    } else if (!m->event_id) {
        res = "no event-id header";
    } else {
        char stamp[HASH_HEX_SIZE] = "";
        const char *st = stamp;
        if (strcmp(source, "ploomes") == 0) {
            const cJSON *lu = cJSON_GetObjectItemCaseSensitive(v, "LastUpdateDate");
            st = cJSON_IsString(lu) ? lu->valuestring : "";
        } else {
            hash_sha256_hex(m->value, strlen(m->value), stamp);
        }
        char expect[HASH_HEX_SIZE];
        hash_event_id(source, entity, m->key, st, expect);
        if (strcmp(expect, m->event_id) != 0)
            res = "event-id does not match source|entity|id|stamp";
    }
    cJSON_Delete(v);
    return res;
}

#endif
