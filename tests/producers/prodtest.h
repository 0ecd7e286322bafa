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
 *   pt_start_daemon, pt_check_endpoints
 *                 run a daemon with METRICS_PORT on a free port; SPEC §7 checks of its
 *                 /healthz, /readyz and /metrics (testhttp_)
 */
#ifndef TESTS_PRODUCERS_PRODTEST_H
#define TESTS_PRODUCERS_PRODTEST_H

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "simproc.h"
#include "testenv.h"
#include "testhttp.h"

/* ---- isolation ------------------------------------------------------------------------------ */

/* What one test (or scenario) owns on the shared services: a topic prefix "<tag>-<unique>.",
 * a database "<tag>_<unique>" ('-' made '_') and the MongoDB URI for it. */
typedef struct {
    char prefix[96];
    char db[96];
    char uri[512];
} pt_iso_t;

static inline void pt_isolate(pt_iso_t *iso, const char *tag)
{
    char t[32];
    snprintf(t, sizeof t, "%s-", tag);
    testenv_unique(iso->prefix, sizeof iso->prefix - 1, t);
    size_t n = strlen(iso->prefix);
    iso->prefix[n] = '.';
    iso->prefix[n + 1] = '\0';
    snprintf(t, sizeof t, "%s_", tag);
    testenv_unique(iso->db, sizeof iso->db, t);
    for (char *c = iso->db; *c; c++)
        if (*c == '-')
            *c = '_';
    testenv_mongo_uri_for_db(iso->uri, sizeof iso->uri, iso->db);
}

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

/* ---- a daemon's /healthz, /readyz and /metrics (SPEC §7) ---------------------------------- */

/* A TCP port free on 127.0.0.1 when called (bound on port 0, read back, closed). Another process
 * may take it before the daemon binds it: pt_start_daemon then tries another. -1 on failure. */
static inline int pt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

typedef struct {
    pid_t pid;
    const char *log;
    char listening[96], refused[96];
    int listening_before, refused_before;
} pt_start_wait_t;

/* The daemon said where it listens, said it could not bind, or exited (not reaped here). */
static inline bool pt_start_settled(void *ctx)
{
    pt_start_wait_t *w = ctx;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return pt_log_count(w->log, w->listening) > w->listening_before ||
           pt_log_count(w->log, w->refused) > w->refused_before ||
           (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0);
}

/* Starts <binary> as a daemon (no arguments) with `env` plus METRICS_PORT=<a free port> (any
 * METRICS_PORT of env is dropped), its output appended to log_path, and waits (up to 60 s)
 * until its log says "event=metrics_listening ... port=<port>". When it could not bind the port
 * (another process took it first: it logs "METRICS_PORT=<port>: cannot listen" and exits), it
 * is reaped and started again on another port, up to 5 times. Returns the pid (stop it with
 * SIGTERM + simproc_wait) and sets *port, or -1 with the reason on stderr (no child left). */
static inline pid_t pt_start_daemon(const char *binary, const char *const env[],
                                    const char *log_path, int *port)
{
    const char *e[64];
    size_t n = 0;
    for (size_t i = 0; env && env[i] && n < 62; i++)
        if (strncmp(env[i], "METRICS_PORT=", 13) != 0)
            e[n++] = env[i];
    char e_port[32];
    e[n] = e_port;
    e[n + 1] = NULL;
    for (int attempt = 1; attempt <= 5; attempt++) {
        *port = pt_free_port();
        if (*port < 0) {
            fprintf(stderr, "no free TCP port on 127.0.0.1: %s\n", strerror(errno));
            return -1;
        }
        snprintf(e_port, sizeof e_port, "METRICS_PORT=%d", *port);
        pt_start_wait_t w = {.log = log_path};
        snprintf(w.listening, sizeof w.listening, "event=metrics_listening address=0.0.0.0 port=%d",
                 *port);
        snprintf(w.refused, sizeof w.refused, "METRICS_PORT=%d: cannot listen", *port);
        w.listening_before = pt_log_count(log_path, w.listening);
        w.refused_before = pt_log_count(log_path, w.refused);
        char err[512];
        w.pid = simproc_spawn(binary, NULL, e, log_path, err, sizeof err);
        if (w.pid < 0) {
            fprintf(stderr, "%s\n", err);
            return -1;
        }
        testenv_wait_until(pt_start_settled, &w, 60000, 20);
        if (pt_log_count(log_path, w.listening) > w.listening_before)
            return w.pid;
        int rc = simproc_wait(w.pid, 30000);
        if (pt_log_count(log_path, w.refused) == w.refused_before) {
            fprintf(stderr, "%s did not start its metrics server (exit %d)\n", binary, rc);
            pt_dump_log(log_path, 4000);
            return -1;
        }
        fprintf(stderr, "%s: port %d taken before it could bind it (attempt %d): another port\n",
                binary, *port, attempt);
    }
    fprintf(stderr, "%s: no port could be bound in 5 attempts\n", binary);
    return -1;
}

static inline long pt_http_get(int port, const char *path, char **body)
{
    return testhttp_local("GET", port, path, 10000L, body);
}

/* The first line of Prometheus text `text` that starts with `prefix`, or NULL. */
static inline const char *pt_metric_line(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, prefix, n) == 0)
            return line;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

/* The value of sample `series` (name and labels as rendered, e.g.
 * producer_records_published_total{source="ploomes",entity="contact"}), or -1 when absent. */
static inline double pt_metric_value(const char *text, const char *series)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s ", series);
    const char *line = pt_metric_line(text, prefix);
    if (line == NULL)
        return -1;
    char *end = NULL;
    double v = strtod(line + strlen(prefix), &end);
    return end != NULL && (*end == '\n' || *end == '\0') ? v : -1;
}

/* What pt_check_endpoints checks, for one running daemon. */
typedef struct {
    int port;            /* its METRICS_PORT (pt_start_daemon) */
    const char *log;     /* its log file */
    const char *source;  /* "ploomes" / "milvus": the source label, and the api label */
    const char *entity;  /* the entity label of the published series */
    double published;    /* records this very process published (delivery confirmed) */
    const char *secret;  /* the configured User-Key / token: never in /metrics */
} pt_endpoints_t;

typedef struct {
    const pt_endpoints_t *ep;
    char series[160];
    char *text;       /* the last /metrics answer */
    long status;      /* its status */
    long probe;       /* the last answer of another endpoint */
    int bad_probes;   /* /healthz answers other than 200 while idle */
    int probes;
    char pass_done[96];
    int passes;       /* pass_done lines to wait for */
} pt_endpoints_wait_t;

static inline bool pt_ready(void *ctx)
{
    pt_endpoints_wait_t *w = ctx;
    w->probe = pt_http_get(w->ep->port, "/readyz", NULL);
    return w->probe == 200;
}

static inline bool pt_published_reached(void *ctx)
{
    pt_endpoints_wait_t *w = ctx;
    free(w->text);
    w->status = pt_http_get(w->ep->port, "/metrics", &w->text);
    return w->status == 200 && pt_metric_value(w->text, w->series) == w->ep->published;
}

/* Probes /healthz until `passes` more polls are done (the daemon idles between them). */
static inline bool pt_idle_polls_done(void *ctx)
{
    pt_endpoints_wait_t *w = ctx;
    w->probe = pt_http_get(w->ep->port, "/healthz", NULL);
    w->probes++;
    if (w->probe != 200)
        w->bad_probes++;
    return pt_log_count(w->ep->log, w->pass_done) >= w->passes;
}

/* SPEC §7 checks of a running daemon: /readyz answers 200 (waited for, up to 60 s) and
 * /healthz 200; /metrics answers 200 with "# TYPE producer_records_published_total counter",
 * the series {source, entity} of that family reaching exactly ep->published (waited for, up to
 * 60 s), an http_request_duration_seconds_count{api="<source>",...} line, and never the
 * secret; /healthz goes on answering 200 through the next two polls and the idle second
 * between them (POLL_INTERVAL_SECONDS=1). Returns NULL when all hold, else a static
 * description. */
static inline const char *pt_check_endpoints(const pt_endpoints_t *ep)
{
    static char why[512];
    const char *res = NULL;
    pt_endpoints_wait_t w = {.ep = ep};
    snprintf(w.series, sizeof w.series,
             "producer_records_published_total{source=\"%s\",entity=\"%s\"}", ep->source,
             ep->entity);
    char api_line[96];
    snprintf(api_line, sizeof api_line, "http_request_duration_seconds_count{api=\"%s\",",
             ep->source);
    snprintf(w.pass_done, sizeof w.pass_done, "event=pass_done source=%s ", ep->source);
    long health = -2;
    if (!testenv_wait_until(pt_ready, &w, 60000, 50)) {
        snprintf(why, sizeof why, "GET /readyz answered %ld, not 200, for 60 s", w.probe);
        res = why;
    } else if ((health = pt_http_get(ep->port, "/healthz", NULL)) != 200) {
        snprintf(why, sizeof why, "GET /healthz answered %ld, not 200", health);
        res = why;
    } else if (!testenv_wait_until(pt_published_reached, &w, 60000, 50)) {
        snprintf(why, sizeof why, "GET /metrics: status %ld, %s = %g after 60 s, expected %g",
                 w.status, w.series, w.text ? pt_metric_value(w.text, w.series) : -1,
                 ep->published);
        res = why;
    } else if (!pt_metric_line(w.text, "# TYPE producer_records_published_total counter\n")) {
        res = "/metrics has no \"# TYPE producer_records_published_total counter\" line";
    } else if (!pt_metric_line(w.text, api_line)) {
        snprintf(why, sizeof why, "/metrics has no line starting with %s", api_line);
        res = why;
    } else if (strstr(w.text, ep->secret) != NULL) {
        res = "/metrics shows the configured key/token";
    } else {
        w.passes = pt_log_count(ep->log, w.pass_done) + 2;
        if (!testenv_wait_until(pt_idle_polls_done, &w, 60000, 100)) {
            res = "the daemon did not poll twice in 60 s (POLL_INTERVAL_SECONDS=1)";
        } else if (w.bad_probes > 0 || w.probes < 5) {
            snprintf(why, sizeof why,
                     "GET /healthz while idle between polls: %d of %d answers not 200 (last %ld)",
                     w.bad_probes, w.probes, w.probe);
            res = why;
        }
    }
    if (res != NULL && w.text != NULL)
        fprintf(stderr, "---- /metrics ----\n%s", w.text);
    free(w.text);
    return res;
}

#endif
