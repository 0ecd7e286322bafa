/* kafka_: configuration, topics and the idempotent producer. See kafka.h. */
#include "kafka.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "app.h"
#include "clock.h"
#include "errbuf.h"
#include "log.h"

#define KAFKA_QUEUE_FULL_POLL_MS 100
#define KAFKA_CLOSE_PURGE_WAIT_MS 5000
#define KAFKA_WARM_RETRY_MS 100 /* between metadata requests while a topic gets its leaders */

const char *kafka_status_name(int status)
{
    switch (status) {
    case KAFKA_OK: return "ok";
    case KAFKA_ERR_CONFIG: return "config";
    case KAFKA_ERR_BROKER: return "broker";
    case KAFKA_ERR_TIMEOUT: return "timeout";
    case KAFKA_ERR_DELIVERY: return "delivery";
    case KAFKA_ERR_FATAL: return "fatal";
    case KAFKA_ERR_STATE: return "state";
    case KAFKA_ERR_NOMEM: return "nomem";
    case KAFKA_ERR_INVALID: return "invalid";
    default: return "unknown";
    }
}

/* ---- configuration ------------------------------------------------------------------------- */

bool kafka_property_is_secret(const char *name)
{
    if (!name)
        return false;
    return strcasestr(name, "password") || strcasestr(name, "secret") ||
           strcasecmp(name, "ssl.key.pem") == 0 || strcasecmp(name, "sasl.oauthbearer.config") == 0;
}

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *err,
                   size_t errlen)
{
    if (!conf || !name || !name[0] || !value) {
        errbuf_set(err, errlen, "Kafka property %s: missing name or value",
                   name && name[0] ? name : "(empty)");
        return KAFKA_ERR_INVALID;
    }
    char rkerr[512];
    if (rd_kafka_conf_set(conf, name, value, rkerr, sizeof rkerr) == RD_KAFKA_CONF_OK)
        return KAFKA_OK;
    if (kafka_property_is_secret(name)) {
        /* librdkafka's message may quote the value: never show it for a secret. */
        errbuf_set(err, errlen, "Kafka property \"%s\" was rejected by librdkafka (value hidden)",
                   name);
    } else {
        errbuf_set(err, errlen, "Kafka property \"%s\": %s", name, rkerr);
    }
    return KAFKA_ERR_CONFIG;
}

static log_level_t syslog_to_log(int level)
{
    if (level <= 3)
        return LOG_ERROR;
    if (level == 4)
        return LOG_WARN;
    if (level <= 6)
        return LOG_INFO;
    return LOG_DEBUG;
}

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_level_t lvl = syslog_to_log(level);
    /* Connection failures are retried by librdkafka and also reach the error callback
     * (event=kafka_error, level warn): not worth a second error line. */
    if (lvl == LOG_ERROR && fac && strcmp(fac, "FAIL") == 0)
        lvl = LOG_WARN;
    if (!log_enabled(lvl))
        return;
    char qfac[64], qname[128], qmsg[1024];
    log_msg(lvl, "kafka_log", "facility=%s client=%s message=%s",
            log_quote(qfac, sizeof qfac, fac), log_quote(qname, sizeof qname, rd_kafka_name(rk)),
            log_quote(qmsg, sizeof qmsg, buf));
}

static void kafka_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)err;
    char qname[128], qmsg[1024];
    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        log_msg(LOG_ERROR, "kafka_fatal", "client=%s error=%s message=%s",
                log_quote(qname, sizeof qname, rd_kafka_name(rk)), rd_kafka_err2name(orig),
                log_quote(qmsg, sizeof qmsg, fatal));
        return;
    }
    /* Transport errors are retried by librdkafka itself: a warning, not an error. */
    log_level_t lvl = (e == RD_KAFKA_RESP_ERR__TRANSPORT || e == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                       e == RD_KAFKA_RESP_ERR__RESOLVE)
                          ? LOG_WARN
                          : LOG_ERROR;
    log_msg(lvl, "kafka_error", "client=%s error=%s message=%s",
            log_quote(qname, sizeof qname, rd_kafka_name(rk)), rd_kafka_err2name(e),
            log_quote(qmsg, sizeof qmsg, reason));
}

rd_kafka_conf_t *kafka_conf_new(const char *bootstrap_servers, const char *const *names,
                                const char *const *values, size_t n, char *err, size_t errlen)
{
    if (!bootstrap_servers || !bootstrap_servers[0]) {
        errbuf_set(err, errlen,
                   "KAFKA_BOOTSTRAP_SERVERS is empty: expected host:port[,host:port...]");
        return NULL;
    }
    if (n > 0 && (!names || !values)) {
        errbuf_set(err, errlen, "Kafka passthrough: %zu properties but no names/values", n);
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!conf) {
        errbuf_set(err, errlen, "out of memory creating the Kafka configuration");
        return NULL;
    }
    if (kafka_conf_set(conf, "bootstrap.servers", bootstrap_servers, err, errlen) != KAFKA_OK)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (kafka_conf_set(conf, names[i], values[i], err, errlen) != KAFKA_OK)
            goto fail;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_error_cb(conf, kafka_error_cb);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

rd_kafka_conf_t *kafka_conf_from_settings(const kafka_settings_t *s, char *err, size_t errlen)
{
    if (!s) {
        errbuf_set(err, errlen, "Kafka settings missing");
        return NULL;
    }
    return kafka_conf_new(s->bootstrap_servers, s->names, s->values, s->count, err, errlen);
}

/* ---- message sizes ------------------------------------------------------------------------- */

/* librdkafka's worst-case per-record framing (RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD: length,
 * attributes, timestamp/offset deltas, key/value lengths, header count) that its local
 * message.max.bytes check adds to key + value + headers. */
#define KAFKA_RECORD_OVERHEAD_BYTES ((int64_t)36)
#define KAFKA_PROPERTY_BYTES_MAX ((int64_t)1000000000)    /* librdkafka's cap on sizes */

static int64_t settings_max_bytes(const kafka_settings_t *s)
{
    int64_t v = s && s->max_message_bytes > 0 ? s->max_message_bytes
                                              : KAFKA_MAX_MESSAGE_BYTES_DEFAULT;
    /* Keep the DLQ's extra room inside librdkafka's range. */
    if (v > KAFKA_PROPERTY_BYTES_MAX - KAFKA_DLQ_EXTRA_BYTES)
        v = KAFKA_PROPERTY_BYTES_MAX - KAFKA_DLQ_EXTRA_BYTES;
    return v;
}

kafka_settings_t kafka_settings_from_config(const config_t *cfg)
{
    return (kafka_settings_t){.bootstrap_servers = cfg->kafka_bootstrap_servers,
                              .names = cfg->kafka_prop_names,
                              .values = cfg->kafka_prop_values,
                              .count = cfg->kafka_prop_count,
                              .max_message_bytes = cfg->kafka_max_message_bytes};
}

int64_t kafka_topic_max_message_bytes(const kafka_settings_t *s, int id)
{
    return settings_max_bytes(s) + (id == KAFKA_TOPIC_DLQ ? KAFKA_DLQ_EXTRA_BYTES : 0);
}

/* The producer's message.max.bytes for topics of that kind. */
static int64_t producer_message_max(const kafka_settings_t *s, bool dlq)
{
    int64_t v = kafka_topic_max_message_bytes(s, dlq ? KAFKA_TOPIC_DLQ : 0) -
                KAFKA_BATCH_RESERVE_BYTES;
    return v < 1000 ? 1000 : v; /* librdkafka's minimum */
}

int64_t kafka_record_max_bytes(const kafka_settings_t *s, bool dlq)
{
    return producer_message_max(s, dlq) - KAFKA_RECORD_OVERHEAD_BYTES;
}

/* Current integer value of a size property of `conf` (0 when unreadable). */
static int64_t conf_get_int(rd_kafka_conf_t *conf, const char *name)
{
    char buf[64];
    size_t size = sizeof buf;
    if (rd_kafka_conf_get(conf, name, buf, &size) != RD_KAFKA_CONF_OK)
        return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno != 0 || end == buf || *end != '\0')
        return 0;
    return v;
}

/* Sets an integer property. */
static int conf_set_int(rd_kafka_conf_t *conf, const char *name, int64_t value, char *err,
                        size_t errlen)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, value);
    return kafka_conf_set(conf, name, buf, err, errlen);
}

/* True when the passthrough of s sets librdkafka property `name`. */
static bool settings_has(const kafka_settings_t *s, const char *name)
{
    if (!s || !s->names)
        return false;
    for (size_t i = 0; i < s->count; i++)
        if (s->names[i] && strcmp(s->names[i], name) == 0)
            return true;
    return false;
}

int kafka_conf_consumer_sizes(rd_kafka_conf_t *conf, const kafka_settings_t *s, char *err,
                              size_t errlen)
{
    /* A consumer must be able to fetch the largest record of any pipeline topic (the DLQ's).
     * Only raised, never lowered: a passthrough value that is already large enough stays. */
    int64_t need = kafka_topic_max_message_bytes(s, KAFKA_TOPIC_DLQ);
    if (conf_get_int(conf, "max.partition.fetch.bytes") < need &&
        conf_set_int(conf, "max.partition.fetch.bytes", need, err, errlen) != KAFKA_OK)
        return KAFKA_ERR_CONFIG;
    int64_t fetch = conf_get_int(conf, "fetch.max.bytes");
    if (fetch < need) {
        if (conf_set_int(conf, "fetch.max.bytes", need, err, errlen) != KAFKA_OK)
            return KAFKA_ERR_CONFIG;
        fetch = need;
    }
    /* librdkafka wants receive.message.max.bytes >= fetch.max.bytes + 512 once either was set. */
    if (conf_get_int(conf, "receive.message.max.bytes") < fetch + 512 &&
        conf_set_int(conf, "receive.message.max.bytes", fetch + 512, err, errlen) != KAFKA_OK)
        return KAFKA_ERR_CONFIG;
    /* Bounded prefetch (issue 13, worker RSS). librdkafka's defaults keep fetching ahead until
     * 100000 messages per partition (queued.min.messages) or 64 MiB (queued.max.messages.kbytes)
     * wait in the consumer's queue, so a backlog filled the queue and the RSS grew with it
     * (measured: tasks-to-milvus behind 20,000 records at 50 ms API latency, 39 MB peak RSS
     * with MAX_IN_FLIGHT 1 and 45 MB with 32; bounded: 25 and 32 MB, the same as behind 5,000,
     * same throughput). A worker handles MAX_IN_FLIGHT (default 32) records at once;
     * KAFKA_PREFETCH_KBYTES keeps several hundred typical records (~1-2 KiB each) ready. The fetch
     * response size follows: with fetch.max.bytes left at its default, librdkafka lowers it to
     * this queue size (at least message.max.bytes, 1 MB), so one response adds at most ~1 MB.
     * The largest record still fits: the broker returns the first record batch of a fetch even
     * when it is larger than fetch.max.bytes / max.partition.fetch.bytes (Kafka >= 0.10.1,
     * KIP-74), and receive.message.max.bytes, set above, accepts such a response. A passthrough
     * value (KAFKA_QUEUED_MAX_MESSAGES_KBYTES, KAFKA_QUEUED_MIN_MESSAGES) is kept. */
    if (!settings_has(s, "queued.max.messages.kbytes") &&
        conf_set_int(conf, "queued.max.messages.kbytes", KAFKA_PREFETCH_KBYTES, err, errlen) !=
            KAFKA_OK)
        return KAFKA_ERR_CONFIG;
    if (!settings_has(s, "queued.min.messages") &&
        conf_set_int(conf, "queued.min.messages", KAFKA_PREFETCH_MESSAGES, err, errlen) !=
            KAFKA_OK)
        return KAFKA_ERR_CONFIG;
    return KAFKA_OK;
}

int kafka_conf_consumer_defaults(rd_kafka_conf_t *conf, const kafka_settings_t *s, char *err,
                                 size_t errlen)
{
    if (!settings_has(s, "heartbeat.interval.ms") &&
        conf_get_int(conf, "session.timeout.ms") >= 3 * KAFKA_HEARTBEAT_INTERVAL_MS &&
        conf_set_int(conf, "heartbeat.interval.ms", KAFKA_HEARTBEAT_INTERVAL_MS, err, errlen) !=
            KAFKA_OK)
        return KAFKA_ERR_CONFIG;
    return KAFKA_OK;
}

/* ---- topics ------------------------------------------------------------------------------- */

static const char *const topic_bases[KAFKA_TOPIC_COUNT] = {
    "ploomes.contacts", "ploomes.tasks", "ploomes.interactions", "milvus.clients", "pipeline.dlq",
};

const char *kafka_topic_base(kafka_topic_id_t id)
{
    if ((int)id < 0 || id >= KAFKA_TOPIC_COUNT)
        return NULL;
    return topic_bases[id];
}

int kafka_topic_name(char *buf, size_t size, const char *prefix, kafka_topic_id_t id)
{
    const char *base = kafka_topic_base(id);
    if (!buf || size == 0 || !base)
        return KAFKA_ERR_INVALID;
    int n = snprintf(buf, size, "%s%s", prefix ? prefix : "", base);
    if (n < 0 || (size_t)n >= size || n >= KAFKA_TOPIC_NAME_MAX) {
        buf[0] = '\0';
        return KAFKA_ERR_INVALID;
    }
    return KAFKA_OK;
}

int kafka_topic_for_entity(const char *source, const char *entity, kafka_topic_id_t *out)
{
    static const struct {
        const char *source, *entity;
        kafka_topic_id_t id;
    } map[] = {
        {"ploomes", "contact", KAFKA_TOPIC_PLOOMES_CONTACTS},
        {"ploomes", "task", KAFKA_TOPIC_PLOOMES_TASKS},
        {"ploomes", "interaction", KAFKA_TOPIC_PLOOMES_INTERACTIONS},
        {"milvus", "client", KAFKA_TOPIC_MILVUS_CLIENTS},
    };
    if (!source || !entity || !out)
        return KAFKA_ERR_INVALID;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strcmp(source, map[i].source) == 0 && strcmp(entity, map[i].entity) == 0) {
            *out = map[i].id;
            return KAFKA_OK;
        }
    }
    return KAFKA_ERR_INVALID;
}

/* A short-lived client for metadata and Admin requests. */
static rd_kafka_t *admin_client_new(const kafka_settings_t *s, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = kafka_conf_from_settings(s, err, errlen);
    if (!conf)
        return NULL;
    char rkerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof rkerr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        errbuf_set(err, errlen, "cannot create a Kafka admin client: %s", rkerr);
        return NULL;
    }
    return rk;
}

/* Metadata of the whole cluster. Returns 0 and *md (caller destroys), or KAFKA_ERR_BROKER. */
static int cluster_metadata(rd_kafka_t *rk, int timeout_ms, const struct rd_kafka_metadata **md,
                            char *err, size_t errlen)
{
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        errbuf_set(err, errlen, "Kafka cluster at bootstrap.servers did not answer a metadata "
                                "request within %d ms: %s",
                   timeout_ms, rd_kafka_err2str(e));
        return KAFKA_ERR_BROKER;
    }
    return KAFKA_OK;
}

static const rd_kafka_metadata_topic_t *md_find(const struct rd_kafka_metadata *md,
                                                 const char *topic)
{
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) == 0)
            return &md->topics[i];
    }
    return NULL;
}

/* True when the topic exists with at least one partition and each partition has a leader. */
static bool md_topic_ready(const struct rd_kafka_metadata *md, const char *topic)
{
    const rd_kafka_metadata_topic_t *t = md_find(md, topic);
    if (!t || t->err != RD_KAFKA_RESP_ERR_NO_ERROR || t->partition_cnt <= 0)
        return false;
    for (int p = 0; p < t->partition_cnt; p++) {
        if (t->partitions[p].leader < 0)
            return false;
    }
    return true;
}

/* Runs one Admin request whose result arrives on `q`; returns the event (caller destroys) or
 * NULL on timeout. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type,
                                    int timeout_ms)
{
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        if (left < 0)
            return NULL;
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(left > 1000 ? 1000 : left));
        if (!ev)
            continue;
        if (rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev);
    }
}

static int topic_config_get_rk(rd_kafka_t *rk, const char *topic, const char *name, char *out,
                               size_t outsize, int timeout_ms, char *err, size_t errlen)
{
    int rc = KAFKA_ERR_BROKER;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_event_t *ev = NULL;
    char rkerr[256];
    if (!q || !opts || !res) {
        errbuf_set(err, errlen, "out of memory describing topic %s", topic);
        rc = KAFKA_ERR_NOMEM;
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, rkerr, sizeof rkerr);
    rd_kafka_DescribeConfigs(rk, &res, 1, opts, q);
    ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms + 1000);
    if (!ev) {
        errbuf_set(err, errlen, "describing topic %s timed out after %d ms", topic, timeout_ms);
        rc = KAFKA_ERR_TIMEOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        errbuf_set(err, errlen, "describing topic %s failed: %s", topic,
                   rd_kafka_event_error_string(ev));
        goto out;
    }
    const rd_kafka_DescribeConfigs_result_t *result = rd_kafka_event_DescribeConfigs_result(ev);
    size_t nres = 0;
    const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(result, &nres);
    for (size_t i = 0; i < nres; i++) {
        if (rd_kafka_ConfigResource_error(rs[i])) {
            const char *es = rd_kafka_ConfigResource_error_string(rs[i]);
            errbuf_set(err, errlen, "describing topic %s failed: %s", topic,
                       es ? es : rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[i])));
            goto out;
        }
        size_t nent = 0;
        const rd_kafka_ConfigEntry_t **ents = rd_kafka_ConfigResource_configs(rs[i], &nent);
        for (size_t j = 0; j < nent; j++) {
            if (strcmp(rd_kafka_ConfigEntry_name(ents[j]), name) != 0)
                continue;
            const char *v = rd_kafka_ConfigEntry_value(ents[j]);
            int n = snprintf(out, outsize, "%s", v ? v : "");
            if (n < 0 || (size_t)n >= outsize) {
                errbuf_set(err, errlen, "value of %s for topic %s does not fit the buffer", name,
                           topic);
                rc = KAFKA_ERR_INVALID;
                goto out;
            }
            rc = KAFKA_OK;
            goto out;
        }
    }
    errbuf_set(err, errlen, "topic %s has no config entry %s", topic, name);
    rc = KAFKA_ERR_INVALID;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (res)
        rd_kafka_ConfigResource_destroy(res);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    return rc;
}

int kafka_topic_config_get(const kafka_settings_t *s, const char *topic, const char *name,
                           char *out, size_t outsize, int timeout_ms, char *err, size_t errlen)
{
    if (!topic || !name || !out || outsize == 0) {
        errbuf_set(err, errlen, "kafka_topic_config_get: missing argument");
        return KAFKA_ERR_INVALID;
    }
    rd_kafka_t *rk = admin_client_new(s, err, errlen);
    if (!rk)
        return KAFKA_ERR_CONFIG;
    int rc = topic_config_get_rk(rk, topic, name, out, outsize, timeout_ms, err, errlen);
    rd_kafka_destroy(rk);
    return rc;
}

int kafka_partition_count_on(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
                             size_t errlen)
{
    if (!rk || !topic) {
        errbuf_set(err, errlen, "kafka_partition_count_on: missing handle or topic");
        return KAFKA_ERR_INVALID;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt) {
        errbuf_set(err, errlen, "cannot open topic %s", topic);
        return KAFKA_ERR_INVALID;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        errbuf_set(err, errlen, "Kafka cluster at bootstrap.servers did not answer a metadata "
                                "request within %d ms: %s",
                   timeout_ms, rd_kafka_err2str(e));
        return KAFKA_ERR_BROKER;
    }
    const rd_kafka_metadata_topic_t *t = md_find(md, topic);
    int rc = KAFKA_ERR_INVALID;
    if (t && t->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        rc = t->partition_cnt;
    else
        errbuf_set(err, errlen, "topic %s does not exist", topic);
    rd_kafka_metadata_destroy(md);
    return rc;
}

int kafka_topic_partition_count(const kafka_settings_t *s, const char *topic, int timeout_ms,
                                char *err, size_t errlen)
{
    if (!topic) {
        errbuf_set(err, errlen, "kafka_topic_partition_count: missing topic");
        return KAFKA_ERR_INVALID;
    }
    rd_kafka_t *rk = admin_client_new(s, err, errlen);
    if (!rk)
        return KAFKA_ERR_CONFIG;
    /* All topics' metadata: asking for one topic by name could create it where the broker
     * auto-creates topics (this client's allow.auto.create.topics is librdkafka's default). */
    const struct rd_kafka_metadata *md = NULL;
    int rc = cluster_metadata(rk, timeout_ms, &md, err, errlen);
    if (rc == KAFKA_OK) {
        const rd_kafka_metadata_topic_t *t = md_find(md, topic);
        if (!t || t->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            errbuf_set(err, errlen, "topic %s does not exist", topic);
            rc = KAFKA_ERR_INVALID;
        } else {
            rc = t->partition_cnt;
        }
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_destroy(rk);
    return rc;
}

/* Creates `names[0..n)` (all missing), DLQ flags per name. */
static int create_topics(rd_kafka_t *rk, char names[][KAFKA_TOPIC_NAME_MAX], const bool *is_dlq,
                         const int64_t *max_bytes, size_t n, int partitions, int replication,
                         int timeout_ms, char *err, size_t errlen)
{
    int rc = KAFKA_ERR_BROKER;
    rd_kafka_NewTopic_t *nts[KAFKA_TOPIC_COUNT] = {0};
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_event_t *ev = NULL;
    char rkerr[512];
    if (!q || !opts) {
        errbuf_set(err, errlen, "out of memory creating topics");
        rc = KAFKA_ERR_NOMEM;
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, rkerr, sizeof rkerr);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, rkerr, sizeof rkerr);
    for (size_t i = 0; i < n; i++) {
        nts[i] = rd_kafka_NewTopic_new(names[i], partitions, replication, rkerr, sizeof rkerr);
        if (!nts[i]) {
            errbuf_set(err, errlen, "cannot describe new topic %s: %s", names[i], rkerr);
            rc = KAFKA_ERR_INVALID;
            goto out;
        }
        /* Sized for real records (issue 8 item 15): the broker default (~1 MB) is not. */
        char mb[32];
        snprintf(mb, sizeof mb, "%" PRId64, max_bytes[i]);
        if (rd_kafka_NewTopic_set_config(nts[i], "max.message.bytes", mb)) {
            errbuf_set(err, errlen, "cannot set max.message.bytes on new topic %s", names[i]);
            rc = KAFKA_ERR_INVALID;
            goto out;
        }
        if (is_dlq[i]) {
            /* Dead letters must never expire silently (SPEC §2). */
            if (rd_kafka_NewTopic_set_config(nts[i], "retention.ms", "-1") ||
                rd_kafka_NewTopic_set_config(nts[i], "retention.bytes", "-1")) {
                errbuf_set(err, errlen, "cannot set retention on new topic %s", names[i]);
                rc = KAFKA_ERR_INVALID;
                goto out;
            }
        }
    }
    rd_kafka_CreateTopics(rk, nts, n, opts, q);
    ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, timeout_ms + 2000);
    if (!ev) {
        errbuf_set(err, errlen, "creating topics timed out after %d ms", timeout_ms);
        rc = KAFKA_ERR_TIMEOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        errbuf_set(err, errlen, "creating topics failed: %s", rd_kafka_event_error_string(ev));
        goto out;
    }
    size_t nres = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &nres);
    for (size_t i = 0; i < nres; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        const char *tname = rd_kafka_topic_result_name(res[i]);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
            int64_t mb = 0;
            for (size_t j = 0; j < n; j++) {
                if (strcmp(names[j], tname) == 0)
                    mb = max_bytes[j];
            }
            log_msg(LOG_INFO, "kafka_topic_created",
                    "topic=%s partitions=%d replication=%d max_message_bytes=%" PRId64, tname,
                    partitions, replication, mb);
        } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            log_msg(LOG_INFO, "kafka_topic_exists", "topic=%s reason=concurrent_creator", tname);
        } else {
            const char *es = rd_kafka_topic_result_error_string(res[i]);
            errbuf_set(err, errlen, "creating topic %s failed: %s", tname,
                       es ? es : rd_kafka_err2str(e));
            goto out;
        }
    }
    rc = KAFKA_OK;
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; i < n; i++) {
        if (nts[i])
            rd_kafka_NewTopic_destroy(nts[i]);
    }
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    return rc;
}

/* Logs a warning when an existing DLQ may expire dead letters. Best effort. */
static void check_dlq_retention(rd_kafka_t *rk, const char *topic, int timeout_ms)
{
    static const char *const keys[] = {"retention.ms", "retention.bytes"};
    for (size_t i = 0; i < 2; i++) {
        char value[64], err[256];
        if (topic_config_get_rk(rk, topic, keys[i], value, sizeof value, timeout_ms, err,
                                sizeof err) != KAFKA_OK) {
            char q[300];
            log_msg(LOG_WARN, "kafka_dlq_retention_unknown", "topic=%s error=%s", topic,
                    log_quote(q, sizeof q, err));
            return;
        }
        if (strcmp(value, "-1") != 0) {
            log_msg(LOG_WARN, "kafka_dlq_retention_limited",
                    "topic=%s %s=%s hint=\"dead letters may expire: set %s=-1 on the topic\"",
                    topic, keys[i], value, keys[i]);
        }
    }
}

/* Raises an existing topic's max.message.bytes to `want` when it is lower (topics made before
 * KAFKA_MAX_MESSAGE_BYTES existed, or with a smaller value). AlterConfigs (the incremental
 * variant needs librdkafka 2.2) replaces the topic's whole set of overrides, so every other
 * per-topic override read just before is sent back unchanged (the DLQ's retention stays -1).
 * Best effort: a failure is a warning, the topic still works for records that fit. */
static void raise_max_bytes(rd_kafka_t *rk, const char *topic, int64_t want, int timeout_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *dopts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_t *aopts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_ConfigResource_t *dres = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_ConfigResource_t *ares = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_event_t *dev = NULL, *aev = NULL;
    char rkerr[256], why[300] = "";
    int64_t have = -1;
    if (!q || !dopts || !aopts || !dres || !ares) {
        snprintf(why, sizeof why, "out of memory");
        goto out;
    }
    rd_kafka_AdminOptions_set_request_timeout(dopts, timeout_ms, rkerr, sizeof rkerr);
    rd_kafka_AdminOptions_set_request_timeout(aopts, timeout_ms, rkerr, sizeof rkerr);
    rd_kafka_DescribeConfigs(rk, &dres, 1, dopts, q);
    dev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT, timeout_ms + 1000);
    if (!dev || rd_kafka_event_error(dev)) {
        snprintf(why, sizeof why, "describing the topic failed: %s",
                 dev ? rd_kafka_event_error_string(dev) : "timed out");
        goto out;
    }
    size_t nres = 0;
    const rd_kafka_ConfigResource_t **rs = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(dev), &nres);
    if (nres != 1 || rd_kafka_ConfigResource_error(rs[0])) {
        snprintf(why, sizeof why, "describing the topic failed: %s",
                 nres == 1 ? rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[0])) : "no result");
        goto out;
    }
    size_t nent = 0;
    const rd_kafka_ConfigEntry_t **ents = rd_kafka_ConfigResource_configs(rs[0], &nent);
    for (size_t j = 0; j < nent; j++) {
        const char *name = rd_kafka_ConfigEntry_name(ents[j]);
        const char *value = rd_kafka_ConfigEntry_value(ents[j]);
        if (strcmp(name, "max.message.bytes") == 0) {
            char *end = NULL;
            errno = 0;
            long long v = value ? strtoll(value, &end, 10) : -1;
            have = (value && errno == 0 && end != value && *end == '\0') ? v : -1;
            continue;
        }
        if (rd_kafka_ConfigEntry_source(ents[j]) != RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG)
            continue;
        if (rd_kafka_ConfigEntry_is_sensitive(ents[j]) || !value) {
            /* Its value cannot be read back, so it could not be preserved: do not alter. */
            snprintf(why, sizeof why, "the topic has an override (%s) that cannot be read back",
                     name);
            goto out;
        }
        if (rd_kafka_ConfigResource_set_config(ares, name, value)) {
            snprintf(why, sizeof why, "cannot carry over the override %s", name);
            goto out;
        }
    }
    if (have >= want)
        goto out; /* large enough: nothing to do */
    char wtext[32];
    snprintf(wtext, sizeof wtext, "%" PRId64, want);
    if (rd_kafka_ConfigResource_set_config(ares, "max.message.bytes", wtext)) {
        snprintf(why, sizeof why, "cannot describe the change");
        goto out;
    }
    rd_kafka_AlterConfigs(rk, &ares, 1, aopts, q);
    aev = admin_wait(q, RD_KAFKA_EVENT_ALTERCONFIGS_RESULT, timeout_ms + 1000);
    if (!aev || rd_kafka_event_error(aev)) {
        snprintf(why, sizeof why, "AlterConfigs failed: %s",
                 aev ? rd_kafka_event_error_string(aev) : "timed out");
        goto out;
    }
    rs = rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(aev), &nres);
    if (nres != 1 || rd_kafka_ConfigResource_error(rs[0])) {
        const char *es = nres == 1 ? rd_kafka_ConfigResource_error_string(rs[0]) : NULL;
        snprintf(why, sizeof why, "AlterConfigs failed: %s",
                 es ? es
                    : nres == 1 ? rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[0]))
                                : "no result");
        goto out;
    }
    log_msg(LOG_WARN, "kafka_topic_max_bytes_raised",
            "topic=%s from=%" PRId64 " to=%" PRId64 " reason=\"KAFKA_MAX_MESSAGE_BYTES\"", topic,
            have, want);
out:
    if (why[0]) {
        char qw[400];
        log_msg(LOG_WARN, "kafka_topic_max_bytes_low",
                "topic=%s max_message_bytes=%" PRId64 " wanted=%" PRId64 " error=%s hint=\"records "
                "larger than the topic's max.message.bytes are refused: raise it on the topic\"",
                topic, have, want, log_quote(qw, sizeof qw, why));
    }
    if (aev)
        rd_kafka_event_destroy(aev);
    if (dev)
        rd_kafka_event_destroy(dev);
    if (ares)
        rd_kafka_ConfigResource_destroy(ares);
    if (dres)
        rd_kafka_ConfigResource_destroy(dres);
    if (aopts)
        rd_kafka_AdminOptions_destroy(aopts);
    if (dopts)
        rd_kafka_AdminOptions_destroy(dopts);
    if (q)
        rd_kafka_queue_destroy(q);
}

int kafka_topics_ensure(const kafka_settings_t *s, const char *prefix, int partitions,
                        const kafka_topic_id_t *ids, size_t n, int timeout_ms, char *err,
                        size_t errlen)
{
    kafka_topic_id_t all[KAFKA_TOPIC_COUNT];
    if (!ids || n == 0) {
        for (int i = 0; i < KAFKA_TOPIC_COUNT; i++)
            all[i] = (kafka_topic_id_t)i;
        ids = all;
        n = KAFKA_TOPIC_COUNT;
    }
    if (n > KAFKA_TOPIC_COUNT || partitions < 1) {
        errbuf_set(err, errlen, "TOPIC_PARTITIONS must be at least 1 (got %d)", partitions);
        return KAFKA_ERR_INVALID;
    }
    if (timeout_ms <= 0)
        timeout_ms = 30000;
    char names[KAFKA_TOPIC_COUNT][KAFKA_TOPIC_NAME_MAX];
    char missing[KAFKA_TOPIC_COUNT][KAFKA_TOPIC_NAME_MAX];
    bool missing_dlq[KAFKA_TOPIC_COUNT];
    int64_t missing_max[KAFKA_TOPIC_COUNT];
    size_t nmissing = 0;
    for (size_t i = 0; i < n; i++) {
        if (kafka_topic_name(names[i], sizeof names[i], prefix, ids[i]) != KAFKA_OK) {
            errbuf_set(err, errlen,
                       "TOPIC_PREFIX is too long: topic names must stay under %d characters",
                       KAFKA_TOPIC_NAME_MAX);
            return KAFKA_ERR_INVALID;
        }
    }

    rd_kafka_t *rk = admin_client_new(s, err, errlen);
    if (!rk)
        return KAFKA_ERR_CONFIG;
    const struct rd_kafka_metadata *md = NULL;
    int rc = cluster_metadata(rk, timeout_ms, &md, err, errlen);
    if (rc != KAFKA_OK)
        goto out;
    int replication = md->broker_cnt < 3 ? md->broker_cnt : 3;
    if (replication < 1)
        replication = 1;
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_metadata_topic_t *t = md_find(md, names[i]);
        if (t && t->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (ids[i] == KAFKA_TOPIC_DLQ)
                check_dlq_retention(rk, names[i], timeout_ms);
            raise_max_bytes(rk, names[i], kafka_topic_max_message_bytes(s, ids[i]), timeout_ms);
            continue;
        }
        memcpy(missing[nmissing], names[i], sizeof names[i]);
        missing_dlq[nmissing] = ids[i] == KAFKA_TOPIC_DLQ;
        missing_max[nmissing] = kafka_topic_max_message_bytes(s, ids[i]);
        nmissing++;
    }
    rd_kafka_metadata_destroy(md);
    md = NULL;
    if (nmissing == 0)
        goto out;
    rc = create_topics(rk, missing, missing_dlq, missing_max, nmissing, partitions, replication,
                       timeout_ms, err, errlen);
    if (rc != KAFKA_OK)
        goto out;
    /* Wait until metadata shows every new topic with leaders, so a consumer subscribing right
     * after sees them (librdkafka otherwise rechecks only every topic.metadata.refresh.interval). */
    int64_t deadline = clock_mono_ms() + timeout_ms;
    for (;;) {
        rc = cluster_metadata(rk, timeout_ms, &md, err, errlen);
        if (rc != KAFKA_OK)
            goto out;
        bool ready = true;
        for (size_t i = 0; i < nmissing && ready; i++)
            ready = md_topic_ready(md, missing[i]);
        rd_kafka_metadata_destroy(md);
        md = NULL;
        if (ready)
            break;
        if (clock_mono_ms() >= deadline) {
            errbuf_set(err, errlen, "topics were created but have no partition leaders after %d ms",
                       timeout_ms);
            rc = KAFKA_ERR_TIMEOUT;
            goto out;
        }
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
    }
out:
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- records ------------------------------------------------------------------------------ */

const char *kafka_record_header(const kafka_record_t *rec, const char *name, size_t *len)
{
    if (!rec || !name)
        return NULL;
    for (size_t i = rec->header_count; i > 0; i--) {
        const kafka_header_t *h = &rec->headers[i - 1];
        if (strcmp(h->name, name) == 0) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

/* ---- producer ----------------------------------------------------------------------------- */

struct kafka_batch {
    pthread_mutex_t lock;
    size_t sent, pending, acked, failed;
    bool freed; /* kafka_batch_free() called while messages were pending */
    char error[256];
};

struct kafka_producer {
    rd_kafka_t *rk;
    atomic_size_t failed_total;
    /* Messages accepted by producev() without a delivery report yet. rd_kafka_outq_len() also
     * counts queued error events (a down broker keeps adding them), which made an idle
     * producer look like it had undelivered messages at close. */
    atomic_size_t undelivered;
    /* Topics warmed by kafka_producer_warm() (owned; destroyed by kafka_producer_close()). */
    rd_kafka_topic_t *warm[KAFKA_PRODUCER_WARM_MAX];
    size_t nwarm;
    /* How long send() waits for room in librdkafka's full local queue: the producer's
     * message.timeout.ms (by then librdkafka has failed the messages queued ahead, so a queue
     * still full means it is being refilled). 0 = message.timeout.ms is 0 (infinite): only a
     * stop ends the wait. */
    int64_t queue_full_wait_ms;
};

/* Per-message state travelling through librdkafka as the message opaque. */
typedef struct msg_ctx {
    kafka_batch_t *batch;
    kafka_delivery_cb cb;
    void *cb_opaque;
} msg_ctx_t;

kafka_batch_t *kafka_batch_new(void)
{
    kafka_batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

static void batch_destroy(kafka_batch_t *b)
{
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void kafka_batch_free(kafka_batch_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    bool now = b->pending == 0;
    if (!now)
        b->freed = true;
    pthread_mutex_unlock(&b->lock);
    if (now)
        batch_destroy(b);
}

int kafka_batch_reset(kafka_batch_t *b)
{
    if (!b)
        return KAFKA_ERR_INVALID;
    pthread_mutex_lock(&b->lock);
    int rc = KAFKA_ERR_STATE;
    if (b->pending == 0) {
        b->sent = b->acked = b->failed = 0;
        b->error[0] = '\0';
        rc = KAFKA_OK;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

#define BATCH_GETTER(field)                                                                 \
    size_t kafka_batch_##field(const kafka_batch_t *b)                                      \
    {                                                                                       \
        if (!b)                                                                             \
            return 0;                                                                       \
        kafka_batch_t *m = (kafka_batch_t *)b;                                              \
        pthread_mutex_lock(&m->lock);                                                       \
        size_t v = m->field;                                                                \
        pthread_mutex_unlock(&m->lock);                                                     \
        return v;                                                                           \
    }
BATCH_GETTER(sent)
BATCH_GETTER(pending)
BATCH_GETTER(acked)
BATCH_GETTER(failed)

const char *kafka_batch_error(const kafka_batch_t *b, char *buf, size_t size)
{
    if (!buf || size == 0)
        return buf;
    buf[0] = '\0';
    if (!b)
        return buf;
    kafka_batch_t *m = (kafka_batch_t *)b;
    pthread_mutex_lock(&m->lock);
    snprintf(buf, size, "%s", m->error);
    pthread_mutex_unlock(&m->lock);
    return buf;
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafka_producer_t *p = opaque;
    msg_ctx_t *ctx = m->_private;
    atomic_fetch_sub(&p->undelivered, 1);
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    if (m->err) {
        atomic_fetch_add(&p->failed_total, 1);
        char qerr[256];
        log_msg(LOG_WARN, "kafka_delivery_failed", "topic=%s partition=%" PRId32 " error=%s "
                "message=%s persisted=%s",
                topic, m->partition, rd_kafka_err2name(m->err),
                log_quote(qerr, sizeof qerr, rd_kafka_err2str(m->err)),
                rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED ? "possibly"
                : rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_PERSISTED        ? "yes"
                                                                                      : "no");
    }
    if (!ctx)
        return;
    if (ctx->batch) {
        kafka_batch_t *b = ctx->batch;
        pthread_mutex_lock(&b->lock);
        if (b->pending > 0)
            b->pending--;
        if (m->err) {
            b->failed++;
            if (!b->error[0])
                snprintf(b->error, sizeof b->error, "%s [%" PRId32 "]: %s", topic, m->partition,
                         rd_kafka_err2str(m->err));
        } else {
            b->acked++;
        }
        bool destroy = b->freed && b->pending == 0;
        pthread_mutex_unlock(&b->lock);
        if (destroy)
            batch_destroy(b);
    }
    if (ctx->cb) {
        kafka_delivery_t d = {
            .err = m->err,
            .status = rd_kafka_message_status(m),
            .topic = topic,
            .partition = m->partition,
            .offset = m->err ? -1 : m->offset,
        };
        ctx->cb(ctx->cb_opaque, &d);
    }
    free(ctx);
}

/* The producer's delivery timeout (message.timeout.ms, alias delivery.timeout.ms) as `conf`
 * sets it. rd_kafka_conf_get() knows topic-level properties only once one was set on the
 * global conf (it then holds a default topic conf); otherwise librdkafka's own default is read
 * from a fresh topic conf. 0 = infinite. */
static int64_t conf_message_timeout_ms(rd_kafka_conf_t *conf)
{
    char buf[32];
    size_t size = sizeof buf;
    rd_kafka_conf_res_t r = rd_kafka_conf_get(conf, "message.timeout.ms", buf, &size);
    if (r != RD_KAFKA_CONF_OK) {
        rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
        size = sizeof buf;
        r = tc ? rd_kafka_topic_conf_get(tc, "message.timeout.ms", buf, &size)
               : RD_KAFKA_CONF_UNKNOWN;
        if (tc)
            rd_kafka_topic_conf_destroy(tc);
    }
    char *end = NULL;
    errno = 0;
    long long v = r == RD_KAFKA_CONF_OK ? strtoll(buf, &end, 10) : -1;
    if (r != RD_KAFKA_CONF_OK || errno != 0 || end == buf || *end != '\0' || v < 0)
        return 300000; /* librdkafka's documented default; not reached with 2.0.2 */
    return v;
}

static kafka_producer_t *producer_new(const kafka_settings_t *s, const char *client_id, bool dlq,
                                      char *err, size_t errlen)
{
    kafka_producer_t *p = calloc(1, sizeof *p);
    if (!p) {
        errbuf_set(err, errlen, "out of memory creating the Kafka producer");
        return NULL;
    }
    rd_kafka_conf_t *conf = kafka_conf_from_settings(s, err, errlen);
    if (!conf)
        goto fail;
    if (client_id && client_id[0] &&
        kafka_conf_set(conf, "client.id", client_id, err, errlen) != KAFKA_OK)
        goto fail_conf;
    /* Forced last so the passthrough cannot turn them off (reliability rule 8). */
    if (kafka_conf_set(conf, "enable.idempotence", "true", err, errlen) != KAFKA_OK)
        goto fail_conf;
    /* Sized to the topics (issue 8 item 15): never above them, so the broker cannot refuse
     * what librdkafka accepted (that would fail the delivery and stall a cursor). */
    if (conf_set_int(conf, "message.max.bytes", producer_message_max(s, dlq), err, errlen) !=
        KAFKA_OK)
        goto fail_conf;
    p->queue_full_wait_ms = conf_message_timeout_ms(conf);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, p);
    char rkerr[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rkerr, sizeof rkerr);
    if (!p->rk) {
        errbuf_set(err, errlen, "cannot create the Kafka producer: %s", rkerr);
        goto fail_conf;
    }
    return p;
fail_conf:
    rd_kafka_conf_destroy(conf);
fail:
    free(p);
    return NULL;
}

kafka_producer_t *kafka_producer_new(const kafka_settings_t *s, const char *client_id, char *err,
                                     size_t errlen)
{
    return producer_new(s, client_id, false, err, errlen);
}

kafka_producer_t *kafka_producer_new_dlq(const kafka_settings_t *s, const char *client_id,
                                         char *err, size_t errlen)
{
    return producer_new(s, client_id, true, err, errlen);
}

rd_kafka_t *kafka_producer_handle(kafka_producer_t *p) { return p ? p->rk : NULL; }

bool kafka_producer_fatal(kafka_producer_t *p, char *err, size_t errlen)
{
    if (!p)
        return false;
    char buf[512];
    rd_kafka_resp_err_t e = rd_kafka_fatal_error(p->rk, buf, sizeof buf);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    errbuf_set(err, errlen, "Kafka producer fatal error %s: %s", rd_kafka_err2name(e), buf);
    return true;
}

size_t kafka_producer_failed_total(kafka_producer_t *p)
{
    return p ? atomic_load(&p->failed_total) : 0;
}

size_t kafka_producer_outq_len(kafka_producer_t *p)
{
    return p ? atomic_load(&p->undelivered) : 0;
}

int kafka_producer_send_raw(kafka_producer_t *p, const char *topic, const void *key,
                            size_t key_len, const void *value, size_t value_len,
                            const kafka_header_t *headers, size_t hcount, int64_t timestamp_ms,
                            kafka_batch_t *batch, kafka_delivery_cb cb, void *cb_opaque,
                            char *err, size_t errlen)
{
    if (!p || !topic || !topic[0] || (hcount > 0 && !headers)) {
        errbuf_set(err, errlen, "kafka_producer_send: missing producer, topic or headers");
        return KAFKA_ERR_INVALID;
    }
    if (kafka_producer_fatal(p, err, errlen))
        return KAFKA_ERR_FATAL;

    msg_ctx_t *ctx = NULL;
    if (batch || cb) {
        ctx = calloc(1, sizeof *ctx);
        if (!ctx) {
            errbuf_set(err, errlen, "out of memory producing to %s", topic);
            return KAFKA_ERR_NOMEM;
        }
        ctx->batch = batch;
        ctx->cb = cb;
        ctx->cb_opaque = cb_opaque;
    }
    if (batch) {
        /* Counted before producev(): another thread may serve the report right away. */
        pthread_mutex_lock(&batch->lock);
        batch->sent++;
        batch->pending++;
        pthread_mutex_unlock(&batch->lock);
    }

    rd_kafka_resp_err_t e;
    int64_t full_since = -1; /* when the local queue was first found full */
    int served = 0;          /* events the last wait for room served */
    bool stopped = false;
    atomic_fetch_add(&p->undelivered, 1); /* before producev(): the report may come at once */
    for (;;) {
        rd_kafka_headers_t *hdrs = NULL;
        if (hcount > 0) {
            hdrs = rd_kafka_headers_new(hcount);
            for (size_t i = 0; i < hcount; i++) {
                rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                                    headers[i].value ? (ssize_t)headers[i].value_len : 0);
            }
        }
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, key ? key_len : 0),
                              RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value ? value_len : 0),
                              RD_KAFKA_V_HEADERS(hdrs),
                              RD_KAFKA_V_TIMESTAMP(timestamp_ms > 0 ? timestamp_ms : 0),
                              RD_KAFKA_V_OPAQUE(ctx), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return KAFKA_OK;
        if (hdrs)
            rd_kafka_headers_destroy(hdrs); /* ownership stays with us when producev fails */
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        /* Local queue full: serve delivery reports to make room, then retry (rule 8), until a
         * stop is requested or the producer's delivery timeout passes (a broker unreachable
         * for that long must not hold a shutdown, or the caller, forever). After a stop, the
         * wait goes on only while delivery reports still make room (a worker's last dead
         * letters during its shutdown get that chance), not a slice per send when nothing is
         * being delivered. */
        int64_t now = clock_mono_ms();
        if (full_since < 0) {
            full_since = now;
        } else if (app_stop_requested() && served == 0) {
            stopped = true;
            break;
        }
        int64_t slice = KAFKA_QUEUE_FULL_POLL_MS;
        if (p->queue_full_wait_ms > 0) {
            int64_t left = full_since + p->queue_full_wait_ms - now;
            if (left <= 0)
                break;
            if (left < slice)
                slice = left;
        }
        served = rd_kafka_poll(p->rk, (int)slice);
        if (rd_kafka_fatal_error(p->rk, NULL, 0)) {
            e = RD_KAFKA_RESP_ERR__FATAL;
            break;
        }
    }
    atomic_fetch_sub(&p->undelivered, 1);
    if (batch) {
        pthread_mutex_lock(&batch->lock);
        batch->sent--;
        batch->pending--;
        /* kafka_batch_free() from another thread while we waited leaves the last free to us. */
        bool destroy = batch->freed && batch->pending == 0;
        pthread_mutex_unlock(&batch->lock);
        if (destroy)
            batch_destroy(batch);
    }
    free(ctx);
    if (e == RD_KAFKA_RESP_ERR__FATAL) {
        kafka_producer_fatal(p, err, errlen);
        return KAFKA_ERR_FATAL;
    }
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        int64_t waited = clock_mono_ms() - full_since;
        size_t queued = kafka_producer_outq_len(p);
        log_msg(LOG_WARN, "kafka_queue_full",
                "topic=%s reason=%s waited_ms=%" PRId64 " bound_ms=%" PRId64 " queued=%zu",
                topic, stopped ? "stop" : "timeout", waited, p->queue_full_wait_ms, queued);
        if (stopped)
            errbuf_set(err, errlen,
                       "producing to topic %s: the local queue stayed full (messages awaiting "
                       "delivery: %zu; broker slow or unreachable) and a stop was requested "
                       "after %" PRId64 " ms; the message was not enqueued",
                       topic, queued, waited);
        else
            errbuf_set(err, errlen,
                       "producing to topic %s: the local queue stayed full for %" PRId64
                       " ms, the producer's message.timeout.ms (messages awaiting delivery: %zu; "
                       "broker slow or unreachable); the message was not enqueued",
                       topic, waited, queued);
        return KAFKA_ERR_TIMEOUT;
    }
    errbuf_set(err, errlen, "producing to topic %s failed: %s", topic, rd_kafka_err2str(e));
    return (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
            e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || e == RD_KAFKA_RESP_ERR__INVALID_ARG)
               ? KAFKA_ERR_INVALID
               : KAFKA_ERR_BROKER;
}

int kafka_producer_send(kafka_producer_t *p, const char *topic, const char *key,
                        const char *value, const char *const *hnames,
                        const char *const *hvalues, size_t hcount, kafka_batch_t *batch,
                        char *err, size_t errlen)
{
    if (hcount > 0 && (!hnames || !hvalues)) {
        errbuf_set(err, errlen, "kafka_producer_send: %zu headers but no names/values", hcount);
        return KAFKA_ERR_INVALID;
    }
    kafka_header_t stackh[16];
    kafka_header_t *h = stackh;
    if (hcount > sizeof stackh / sizeof stackh[0]) {
        h = calloc(hcount, sizeof *h);
        if (!h) {
            errbuf_set(err, errlen, "out of memory producing to %s", topic ? topic : "?");
            return KAFKA_ERR_NOMEM;
        }
    }
    for (size_t i = 0; i < hcount; i++) {
        h[i].name = hnames[i];
        h[i].value = hvalues[i];
        h[i].value_len = hvalues[i] ? strlen(hvalues[i]) : 0;
    }
    int rc = kafka_producer_send_raw(p, topic, key, key ? strlen(key) : 0, value,
                                     value ? strlen(value) : 0, h, hcount, -1, batch, NULL, NULL,
                                     err, errlen);
    if (h != stackh)
        free(h);
    return rc;
}

int kafka_producer_poll(kafka_producer_t *p, int timeout_ms)
{
    if (!p)
        return KAFKA_ERR_INVALID;
    int n = rd_kafka_poll(p->rk, timeout_ms);
    if (rd_kafka_fatal_error(p->rk, NULL, 0))
        return KAFKA_ERR_FATAL;
    return n;
}

int kafka_batch_wait(kafka_producer_t *p, kafka_batch_t *b, int timeout_ms, char *err,
                     size_t errlen)
{
    if (!p || !b) {
        errbuf_set(err, errlen, "kafka_batch_wait: missing producer or batch");
        return KAFKA_ERR_INVALID;
    }
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : clock_mono_ms() + timeout_ms;
    for (;;) {
        size_t pending = kafka_batch_pending(b);
        if (pending == 0)
            break;
        if (kafka_producer_fatal(p, err, errlen))
            return KAFKA_ERR_FATAL;
        int64_t left = deadline - clock_mono_ms();
        if (left <= 0) {
            errbuf_set(err, errlen, "%zu of %zu messages still waiting for a delivery report",
                       pending, kafka_batch_sent(b));
            return KAFKA_ERR_TIMEOUT;
        }
        rd_kafka_poll(p->rk, (int)(left < 100 ? left : 100));
    }
    size_t failed = kafka_batch_failed(b);
    if (failed > 0) {
        char first[256];
        errbuf_set(err, errlen, "%zu of %zu messages failed delivery; first: %s", failed,
                   kafka_batch_sent(b), kafka_batch_error(b, first, sizeof first));
        return KAFKA_ERR_DELIVERY;
    }
    if (kafka_producer_fatal(p, err, errlen))
        return KAFKA_ERR_FATAL;
    return KAFKA_OK;
}

int kafka_producer_flush(kafka_producer_t *p, int timeout_ms, char *err, size_t errlen)
{
    if (!p) {
        errbuf_set(err, errlen, "kafka_producer_flush: missing producer");
        return KAFKA_ERR_INVALID;
    }
    if (kafka_producer_outq_len(p) > 0)
        rd_kafka_flush(p->rk, timeout_ms);
    else
        rd_kafka_poll(p->rk, 0); /* nothing to wait for: serve pending events only */
    if (kafka_producer_fatal(p, err, errlen))
        return KAFKA_ERR_FATAL;
    size_t left = kafka_producer_outq_len(p);
    if (left > 0) {
        errbuf_set(err, errlen, "%zu Kafka messages still undelivered after %d ms", left,
                   timeout_ms);
        return KAFKA_ERR_TIMEOUT;
    }
    return KAFKA_OK;
}

/* The handle warmed for `topic`, taking one when it is new; NULL when out of room. */
static rd_kafka_topic_t *warm_handle(kafka_producer_t *p, const char *topic)
{
    for (size_t i = 0; i < p->nwarm; i++) {
        if (strcmp(rd_kafka_topic_name(p->warm[i]), topic) == 0)
            return p->warm[i];
    }
    if (p->nwarm >= KAFKA_PRODUCER_WARM_MAX)
        return NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (rkt != NULL)
        p->warm[p->nwarm++] = rkt;
    return rkt;
}

int kafka_producer_warm(kafka_producer_t *p, const char *const *topics, size_t n, int timeout_ms,
                        bool (*stop)(void), char *err, size_t errlen)
{
    if (!p || (n > 0 && !topics) || n > KAFKA_PRODUCER_WARM_MAX) {
        errbuf_set(err, errlen, "kafka_producer_warm: bad arguments (at most %d topics)",
                   KAFKA_PRODUCER_WARM_MAX);
        return KAFKA_ERR_INVALID;
    }
    int64_t deadline = clock_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_t *rkt = topics[i] ? warm_handle(p, topics[i]) : NULL;
        if (rkt == NULL) {
            errbuf_set(err, errlen, "cannot take a handle on Kafka topic %s",
                       topics[i] ? topics[i] : "(null)");
            return KAFKA_ERR_INVALID;
        }
        /* A metadata answer for a known topic updates librdkafka's state of it (partitions,
         * leaders), which is what its first sends wait for. */
        for (;;) {
            int64_t left = deadline - clock_mono_ms();
            const struct rd_kafka_metadata *md = NULL;
            rd_kafka_resp_err_t e =
                left > 0 ? rd_kafka_metadata(p->rk, 0, rkt, &md, (int)left)
                         : RD_KAFKA_RESP_ERR__TIMED_OUT;
            bool ready = e == RD_KAFKA_RESP_ERR_NO_ERROR && md_topic_ready(md, topics[i]);
            if (md != NULL)
                rd_kafka_metadata_destroy(md);
            if (ready)
                break;
            if (stop != NULL && stop()) {
                errbuf_set(err, errlen, "Kafka topic %s: metadata not learned before the stop",
                           topics[i]);
                return KAFKA_ERR_TIMEOUT;
            }
            if (clock_mono_ms() + KAFKA_WARM_RETRY_MS >= deadline) {
                errbuf_set(err, errlen,
                           "Kafka topic %s: no metadata with every partition led within %d ms "
                           "(%s)",
                           topics[i], timeout_ms,
                           e == RD_KAFKA_RESP_ERR_NO_ERROR ? "not ready" : rd_kafka_err2str(e));
                return KAFKA_ERR_TIMEOUT;
            }
            struct timespec ts = {0, KAFKA_WARM_RETRY_MS * 1000000L};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !(stop != NULL && stop()))
                ; /* a signal: sleep the rest, unless it asked us to stop */
        }
    }
    return KAFKA_OK;
}

int kafka_producer_warm_ids(kafka_producer_t *p, const char *prefix, const kafka_topic_id_t *ids,
                            size_t n, int timeout_ms, bool (*stop)(void), char *err,
                            size_t errlen)
{
    if (n > KAFKA_PRODUCER_WARM_MAX || (n > 0 && !ids)) {
        errbuf_set(err, errlen, "kafka_producer_warm_ids: bad arguments (at most %d topics)",
                   KAFKA_PRODUCER_WARM_MAX);
        return KAFKA_ERR_INVALID;
    }
    char names[KAFKA_PRODUCER_WARM_MAX][KAFKA_TOPIC_NAME_MAX];
    const char *ptrs[KAFKA_PRODUCER_WARM_MAX];
    for (size_t i = 0; i < n; i++) {
        if (kafka_topic_name(names[i], sizeof names[i], prefix, ids[i]) != KAFKA_OK) {
            errbuf_set(err, errlen, "TOPIC_PREFIX makes a topic name too long");
            return KAFKA_ERR_INVALID;
        }
        ptrs[i] = names[i];
    }
    return kafka_producer_warm(p, ptrs, n, timeout_ms, stop, err, errlen);
}

int kafka_producer_close(kafka_producer_t *p, int timeout_ms, char *err, size_t errlen)
{
    if (!p)
        return KAFKA_OK;
    int rc = kafka_producer_flush(p, timeout_ms, err, errlen);
    size_t undelivered = kafka_producer_outq_len(p);
    if (undelivered > 0) {
        /* Purged messages get a failed delivery report, so batches and callbacks learn it. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        int64_t deadline = clock_mono_ms() + KAFKA_CLOSE_PURGE_WAIT_MS;
        while (kafka_producer_outq_len(p) > 0 && clock_mono_ms() < deadline)
            rd_kafka_poll(p->rk, 100);
        log_msg(LOG_ERROR, "kafka_producer_undelivered", "count=%zu", undelivered);
        if (rc != KAFKA_ERR_FATAL) {
            errbuf_set(err, errlen, "%zu Kafka messages were not delivered before close",
                       undelivered);
            rc = KAFKA_ERR_DELIVERY;
        }
    } else {
        rd_kafka_poll(p->rk, 0); /* serve the last reports */
        if (rc == KAFKA_ERR_TIMEOUT)
            rc = KAFKA_OK; /* every message has its report: nothing was left behind */
    }
    bool fatal = kafka_producer_fatal(p, rc == KAFKA_OK ? err : NULL, errlen);
    if (fatal)
        rc = KAFKA_ERR_FATAL;
    for (size_t i = 0; i < p->nwarm; i++)
        rd_kafka_topic_destroy(p->warm[i]);
    rd_kafka_destroy(p->rk);
    free(p);
    return rc;
}
