/* prodtest: helpers shared by the producers' integration tests (header-only: the build only
 * compiles tests/producers/test_*.c and it_*.c, each as its own program).
 *
 *   pt_proc_*     run a binary as a subprocess with extra environment variables, stderr to a
 *                 log file, and wait for its exit on a condition (never a bare sleep)
 *   pt_http       one request to a simulator's admin API (libcurl)
 *   pt_consume    read a whole topic from the beginning up to the high watermarks (exact: the
 *                 producers have flushed before we read) and collect every message
 *   pt_check_*    SPEC §2 checks of key and headers
 */
#ifndef TESTS_PRODUCERS_PRODTEST_H
#define TESTS_PRODUCERS_PRODTEST_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hash.h"
#include "testenv.h"

/* ---- subprocesses -------------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int status;   /* waitpid status once exited */
    bool exited;
    char log[256];
} pt_proc_t;

/* Starts argv[0] (absolute path) with the current environment plus `env` ("NAME=value",
 * NULL-terminated; each overrides). stdout+stderr go to `log_path` (appended). */
static inline int pt_proc_start(pt_proc_t *p, char *const argv[], const char *const env[],
                                const char *log_path)
{
    memset(p, 0, sizeof *p);
    snprintf(p->log, sizeof p->log, "%s", log_path);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test (longjmp past teardown) leaves none */
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    p->pid = pid;
    return 0;
}

static inline bool pt_proc_poll_exit(void *ctx)
{
    pt_proc_t *p = ctx;
    if (p->exited)
        return true;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->exited = true;
        p->status = st;
        return true;
    }
    return false;
}

/* Waits up to timeout_ms for the exit. Returns the exit code, 128+signal when killed by a
 * signal, or -1 on timeout (the process is then killed). */
static inline int pt_proc_wait(pt_proc_t *p, int timeout_ms)
{
    if (!testenv_wait_until(pt_proc_poll_exit, p, timeout_ms, 20)) {
        fprintf(stderr, "process %d did not exit within %d ms (log: %s)\n", (int)p->pid,
                timeout_ms, p->log);
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &p->status, 0);
        p->exited = true;
        return -1;
    }
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    if (WIFSIGNALED(p->status))
        return 128 + WTERMSIG(p->status);
    return -1;
}

/* Runs to completion (e.g. --once): start + wait. */
static inline int pt_run(char *const argv[], const char *const env[], const char *log_path,
                         int timeout_ms)
{
    pt_proc_t p;
    if (pt_proc_start(&p, argv, env, log_path) != 0)
        return -1;
    return pt_proc_wait(&p, timeout_ms);
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

/* ---- simulator admin ------------------------------------------------------------------------ */

typedef struct {
    char *data;
    size_t len;
} pt_buf_t;

static inline size_t pt_write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    pt_buf_t *b = ud;
    size_t n = size * nmemb;
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, ptr, n);
    b->data = d;
    b->len += n;
    d[b->len] = '\0';
    return n;
}

/* One request; returns the HTTP status (0 on transport error); *body (may be NULL) gets the
 * malloc'd response body. */
static inline long pt_http(const char *method, const char *url, const char *body, char **out)
{
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    pt_buf_t b = {0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pt_write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (out)
        *out = b.data;
    else
        free(b.data);
    return status;
}

/* POST <base>/_admin/<what> with body; returns the status. */
static inline long pt_admin(const char *base, const char *what, const char *body)
{
    char url[512];
    snprintf(url, sizeof url, "%s/_admin/%s", base, what);
    char *resp = NULL;
    long st = pt_http("POST", url, body, &resp);
    if (st != 200)
        fprintf(stderr, "admin %s -> %ld %s\n", what, st, resp ? resp : "");
    free(resp);
    return st;
}

/* POST a seed given as a cJSON tree (deleted here). */
static inline long pt_seed(const char *base, cJSON *seed)
{
    char *text = cJSON_PrintUnformatted(seed);
    cJSON_Delete(seed);
    long st = pt_admin(base, "seed", text);
    free(text);
    return st;
}

/* Number of API requests the sim answered with `status` (from /_admin/stats; any shape: sums
 * every number found under a key equal to the status text). */
static inline void pt_sum_status(const cJSON *node, const char *status, double *sum)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, node)
    {
        if (cJSON_IsNumber(it) && it->string && strcmp(it->string, status) == 0)
            *sum += it->valuedouble;
        else if (cJSON_IsObject(it) || cJSON_IsArray(it))
            pt_sum_status(it, status, sum);
    }
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
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "consumer: no metadata for %s\n", topic);
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(np);
    int64_t *high = calloc((size_t)np, sizeof *high);
    int remaining = 0;
    for (int i = 0; i < np; i++) {
        int32_t pid = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(rk, topic, pid, &lo, &hi, 10000);
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
    rc = remaining == 0 ? 0 : -1;
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

/* ---- simulators ------------------------------------------------------------------------------
 * Stop-gap until tests/support/simproc.h exists: starts `<bin> --port 0 <flag> <secret>` and
 * reads "listening on http://127.0.0.1:PORT" from its first stdout line. */

typedef struct {
    pt_proc_t proc;
    char base[128]; /* "http://127.0.0.1:PORT" */
} pt_sim_t;

static inline int pt_sim_start(pt_sim_t *s, const char *binary, const char *secret_flag,
                               const char *secret, const char *log_path)
{
    memset(s, 0, sizeof *s);
    char bin[512];
    testenv_bin(bin, sizeof bin, binary);
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test (longjmp past teardown) leaves none */
        close(fds[0]);
        dup2(fds[1], 1);
        close(fds[1]);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execl(bin, bin, "--port", "0", secret_flag, secret, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    s->proc.pid = pid;
    snprintf(s->proc.log, sizeof s->proc.log, "%s", log_path);
    FILE *f = fdopen(fds[0], "r");
    char line[256] = "";
    if (!f || !fgets(line, sizeof line, f)) {
        if (f)
            fclose(f);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    fclose(f); /* the sim prints nothing else on stdout that matters */
    const char *u = strstr(line, "http://");
    if (!u)
        return -1;
    size_t n = strcspn(u, "\r\n");
    if (n >= sizeof s->base)
        return -1;
    memcpy(s->base, u, n);
    s->base[n] = '\0';
    return 0;
}

static inline void pt_sim_stop(pt_sim_t *s)
{
    if (s->proc.pid > 0 && !s->proc.exited) {
        kill(s->proc.pid, SIGTERM);
        if (pt_proc_wait(&s->proc, 10000) < 0)
            fprintf(stderr, "simulator did not stop on SIGTERM\n");
    }
}

#endif
