/* tcpproxy_: see tcpproxy.h. One thread polls the listener and every pair (50 ms ticks, so a
 * mode change shows within one tick); the mode and the counters are guarded by `lock`, the
 * pairs (and, in Kafka mode, their partial response frames) belong to the proxy thread alone;
 * the Kafka settings are written before the thread starts and only read after. */
#include "tcpproxy.h"
#include "testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCPPROXY_PAIRS 64
#define TCPPROXY_TICK_MS 50
#define TCPPROXY_KAFKA_FRAME_MAX (64 * 1024 * 1024) /* a bigger response closes the pair */
#define TCPPROXY_KAFKA_HOSTS 2
#define TCPPROXY_KAFKA_HOST_MAX 64

/* Kafka mode: the upstream -> client bytes of one pair not yet forwarded (a partial frame). */
typedef struct {
    unsigned char *buf;
    size_t len, cap;
} kafka_down_t;

typedef enum { MODE_FORWARD = 0, MODE_CUT, MODE_FROZEN } proxy_mode_t;

struct tcpproxy {
    int listen_fd;
    int port;
    struct sockaddr_in upstream;
    pthread_t thread;
    pthread_mutex_t lock;
    proxy_mode_t mode;              /* guarded by lock */
    bool quit;                 /* guarded by lock */
    int refused;               /* guarded by lock: accepted while cut */
    int held;                  /* guarded by lock: client connections with unread bytes (frozen) */
    long long bytes_up;        /* guarded by lock: client -> upstream bytes forwarded */
    int pairs[TCPPROXY_PAIRS][2]; /* client, upstream; -1: none (proxy thread only) */
    /* Kafka mode (tcpproxy_start_kafka): set before the thread starts, read-only after */
    bool kafka;
    int upstream_port;
    char adv_host[TCPPROXY_KAFKA_HOSTS][TCPPROXY_KAFKA_HOST_MAX]; /* "" : unused */
    long long rewrites;        /* guarded by lock: broker addresses rewritten */
    kafka_down_t down[TCPPROXY_PAIRS]; /* proxy thread only */
};

static void pair_close(tcpproxy_t *px, int i)
{
    for (int k = 0; k < 2; k++) {
        if (px->pairs[i][k] >= 0)
            close(px->pairs[i][k]);
        px->pairs[i][k] = -1;
    }
    free(px->down[i].buf);
    px->down[i] = (kafka_down_t){0};
}

/* A new connection to the upstream, or -1. */
static int upstream_connect(tcpproxy_t *px)
{
    int u = socket(AF_INET, SOCK_STREAM, 0);
    if (u >= 0 && connect(u, (struct sockaddr *)&px->upstream, sizeof px->upstream) != 0) {
        close(u);
        u = -1;
    }
    return u;
}

/* Copies what is readable on `from` to `to`; -1 when the pair must close. up: `from` is the
 * client, and a chunk `to` took whole is added to px->bytes_up. */
static int pump(tcpproxy_t *px, int from, int to, bool up)
{
    char buf[16384];
    ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n <= 0)
        return -1;
    for (ssize_t off = 0; off < n;) {
        ssize_t w = send(to, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        off += w;
    }
    if (up) {
        pthread_mutex_lock(&px->lock);
        px->bytes_up += n;
        pthread_mutex_unlock(&px->lock);
    }
    return 0;
}

/* Kafka mode: in one whole response frame (its body, after the 4-byte size), every Kafka string
 * holding an advertised host (an int16 or a compact-varint length just before it) followed by
 * the upstream's port as a big-endian int32 (a broker's host and port, in Metadata,
 * FindCoordinator..., whatever the version) gets the proxy's port instead. Same length: the
 * frame's size does not change. Returns how many were rewritten. */
static int kafka_rewrite(const tcpproxy_t *px, unsigned char *f, size_t n)
{
    const unsigned char want[4] = {0, 0, (unsigned char)(px->upstream_port >> 8),
                                   (unsigned char)(px->upstream_port & 0xff)};
    const unsigned char mine[4] = {0, 0, (unsigned char)(px->port >> 8),
                                   (unsigned char)(px->port & 0xff)};
    int count = 0;
    for (int h = 0; h < TCPPROXY_KAFKA_HOSTS; h++) {
        const char *host = px->adv_host[h];
        size_t hl = strlen(host);
        if (hl == 0)
            continue;
        for (size_t i = 1; i + hl + 4 <= n; i++) {
            if ((f[i - 1] != hl && f[i - 1] != hl + 1) || memcmp(f + i, host, hl) != 0 ||
                memcmp(f + i + hl, want, 4) != 0)
                continue;
            memcpy(f + i + hl, mine, 4);
            count++;
        }
    }
    return count;
}

static int send_all(int fd, const unsigned char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Kafka mode, pair i, upstream -> client: reads what is readable, then forwards every whole
 * frame (a big-endian int32 size, then that many bytes) rewritten; a partial frame waits for
 * the rest. -1 when the pair must close. */
static int pump_kafka_down(tcpproxy_t *px, int i)
{
    kafka_down_t *d = &px->down[i];
    if (d->cap - d->len < 16384) {
        size_t cap = d->cap ? d->cap * 2 : 65536;
        unsigned char *nb = realloc(d->buf, cap);
        if (!nb)
            return -1;
        d->buf = nb;
        d->cap = cap;
    }
    ssize_t r = recv(px->pairs[i][1], d->buf + d->len, d->cap - d->len, 0);
    if (r <= 0)
        return -1;
    d->len += (size_t)r;
    while (d->len >= 4) {
        size_t size = ((size_t)d->buf[0] << 24) | ((size_t)d->buf[1] << 16) |
                      ((size_t)d->buf[2] << 8) | d->buf[3];
        if (size > TCPPROXY_KAFKA_FRAME_MAX)
            return -1;
        if (d->len < 4 + size) { /* room for the whole frame, read on the next rounds */
            if (d->cap < 4 + size) {
                unsigned char *nb = realloc(d->buf, 4 + size);
                if (!nb)
                    return -1;
                d->buf = nb;
                d->cap = 4 + size;
            }
            return 0;
        }
        int n = kafka_rewrite(px, d->buf + 4, size);
        if (n > 0) {
            pthread_mutex_lock(&px->lock);
            px->rewrites += n;
            pthread_mutex_unlock(&px->lock);
        }
        if (send_all(px->pairs[i][0], d->buf, 4 + size) != 0)
            return -1;
        memmove(d->buf, d->buf + 4 + size, d->len - 4 - size);
        d->len -= 4 + size;
    }
    return 0;
}

/* Frozen: counts the client connections holding bytes nobody reads (poll only, no recv). */
static int count_held(tcpproxy_t *px)
{
    struct pollfd fds[TCPPROXY_PAIRS];
    nfds_t n = 0;
    for (int i = 0; i < TCPPROXY_PAIRS; i++)
        if (px->pairs[i][0] >= 0)
            fds[n++] = (struct pollfd){.fd = px->pairs[i][0], .events = POLLIN};
    int held = 0;
    if (n > 0 && poll(fds, n, 0) > 0)
        for (nfds_t j = 0; j < n; j++)
            held += (fds[j].revents & POLLIN) != 0;
    return held;
}

static void accept_one(tcpproxy_t *px)
{
    int c = accept(px->listen_fd, NULL, NULL);
    if (c < 0)
        return;
    pthread_mutex_lock(&px->lock);
    proxy_mode_t mode = px->mode;
    if (mode == MODE_CUT)
        px->refused++;
    pthread_mutex_unlock(&px->lock);
    if (mode == MODE_CUT) { /* the client sees a closed socket */
        close(c);
        return;
    }
    int slot = -1;
    for (int i = 0; i < TCPPROXY_PAIRS && slot < 0; i++)
        if (px->pairs[i][0] < 0)
            slot = i;
    int u = -1;
    if (slot >= 0 && mode == MODE_FORWARD) { /* frozen: accepted, then nothing happens */
        u = upstream_connect(px);
        if (u < 0)
            slot = -1;
    }
    if (slot < 0) { /* full, or the upstream refused */
        close(c);
        return;
    }
    px->pairs[slot][0] = c;
    px->pairs[slot][1] = u;
}

static void *proxy_main(void *arg)
{
    tcpproxy_t *px = arg;
    for (;;) {
        pthread_mutex_lock(&px->lock);
        bool quit = px->quit;
        proxy_mode_t mode = px->mode;
        pthread_mutex_unlock(&px->lock);
        if (quit)
            break;
        for (int i = 0; i < TCPPROXY_PAIRS; i++) {
            if (mode == MODE_CUT)
                pair_close(px, i);
            else if (mode == MODE_FORWARD && px->pairs[i][0] >= 0 && px->pairs[i][1] < 0) {
                px->pairs[i][1] = upstream_connect(px); /* accepted while frozen */
                if (px->pairs[i][1] < 0)
                    pair_close(px, i);
            }
        }
        struct pollfd fds[1 + 2 * TCPPROXY_PAIRS];
        int idx[1 + 2 * TCPPROXY_PAIRS];
        nfds_t n = 0;
        fds[n] = (struct pollfd){.fd = px->listen_fd, .events = POLLIN};
        idx[n++] = -1;
        if (mode != MODE_FROZEN)
            for (int i = 0; i < TCPPROXY_PAIRS; i++)
                for (int k = 0; k < 2; k++)
                    if (px->pairs[i][k] >= 0) {
                        fds[n] = (struct pollfd){.fd = px->pairs[i][k], .events = POLLIN};
                        idx[n++] = i * 2 + k;
                    }
        int pr = poll(fds, n, TCPPROXY_TICK_MS);
        int held = mode == MODE_FROZEN ? count_held(px) : 0;
        pthread_mutex_lock(&px->lock);
        if (px->mode == mode)
            px->held = held;
        pthread_mutex_unlock(&px->lock);
        if (pr <= 0)
            continue;
        for (nfds_t j = 1; j < n; j++) {
            if (!fds[j].revents)
                continue;
            int i = idx[j] / 2, k = idx[j] % 2;
            if (px->pairs[i][k] < 0 || px->pairs[i][1 - k] < 0)
                continue;
            int rc = k == 1 && px->kafka ? pump_kafka_down(px, i)
                                         : pump(px, px->pairs[i][k], px->pairs[i][1 - k],
                                                k == 0); /* k 0: the client */
            if (rc != 0)
                pair_close(px, i);
        }
        if (fds[0].revents & POLLIN)
            accept_one(px);
    }
    for (int i = 0; i < TCPPROXY_PAIRS; i++)
        pair_close(px, i);
    return NULL;
}

/* tcpproxy_start and tcpproxy_start_kafka: kafka_host NULL for a plain proxy. */
static tcpproxy_t *proxy_start(const char *host, int port, const char *kafka_host, char *err,
                               size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (!host || port <= 0 || port > 65535) {
        snprintf(err, errlen, "tcpproxy: bad upstream");
        return NULL;
    }
    tcpproxy_t *px = calloc(1, sizeof *px);
    if (!px) {
        snprintf(err, errlen, "tcpproxy: out of memory");
        return NULL;
    }
    for (int i = 0; i < TCPPROXY_PAIRS; i++)
        px->pairs[i][0] = px->pairs[i][1] = -1;
    px->listen_fd = -1;
    if (kafka_host) {
        px->kafka = true;
        px->upstream_port = port;
        int w = snprintf(px->adv_host[0], sizeof px->adv_host[0], "%s", kafka_host);
        if (w <= 0 || (size_t)w >= sizeof px->adv_host[0]) {
            snprintf(err, errlen, "tcpproxy: Kafka host too long or empty");
            free(px);
            return NULL;
        }
        /* a broker on this host may advertise either spelling */
        const char *alt = strcmp(kafka_host, "localhost") == 0   ? "127.0.0.1"
                          : strcmp(kafka_host, "127.0.0.1") == 0 ? "localhost"
                                                                  : "";
        snprintf(px->adv_host[1], sizeof px->adv_host[1], "%s", alt);
    }
    px->upstream.sin_family = AF_INET;
    px->upstream.sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &px->upstream.sin_addr) != 1) {
        snprintf(err, errlen, "tcpproxy: upstream host is not an IPv4 address: %s", host);
        free(px);
        return NULL;
    }
    int rc = pthread_mutex_init(&px->lock, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "tcpproxy: pthread_mutex_init: %s", strerror(rc));
        free(px);
        return NULL;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (px->listen_fd < 0 || bind(px->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(px->listen_fd, 64) != 0 ||
        getsockname(px->listen_fd, (struct sockaddr *)&a, &len) != 0) {
        snprintf(err, errlen, "tcpproxy: listen on 127.0.0.1: %s", strerror(errno));
        goto fail;
    }
    px->port = ntohs(a.sin_port);
    rc = pthread_create(&px->thread, NULL, proxy_main, px);
    if (rc != 0) {
        snprintf(err, errlen, "tcpproxy: pthread_create: %s", strerror(rc));
        goto fail;
    }
    return px;
fail:
    if (px->listen_fd >= 0)
        close(px->listen_fd);
    pthread_mutex_destroy(&px->lock);
    free(px);
    return NULL;
}

tcpproxy_t *tcpproxy_start(const char *host, int port, char *err, size_t errlen)
{
    return proxy_start(host, port, NULL, err, errlen);
}

tcpproxy_t *tcpproxy_start_kafka(const char *host, int port, char *err, size_t errlen)
{
    return proxy_start(host, port, host ? host : "", err, errlen);
}

tcpproxy_t *tcpproxy_start_kafka_at(const char *bootstrap, char *err, size_t errlen)
{
    const char *colon = bootstrap ? strrchr(bootstrap, ':') : NULL;
    char host[64];
    if (colon == NULL || strchr(bootstrap, ',') != NULL ||
        (size_t)(colon - bootstrap) >= sizeof host) {
        if (errlen > 0)
            snprintf(err, errlen, "'%s' is not one broker's host:port",
                     bootstrap ? bootstrap : "");
        return NULL;
    }
    memcpy(host, bootstrap, (size_t)(colon - bootstrap));
    host[colon - bootstrap] = '\0';
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port <= 0 || port > 65535) {
        if (errlen > 0)
            snprintf(err, errlen, "'%s': the port is not a number from 1 to 65535", bootstrap);
        return NULL;
    }
    return tcpproxy_start_kafka(host, (int)port, err, errlen);
}

long long tcpproxy_kafka_rewrites(tcpproxy_t *px)
{
    pthread_mutex_lock(&px->lock);
    long long n = px->rewrites;
    pthread_mutex_unlock(&px->lock);
    return n;
}

int tcpproxy_port(const tcpproxy_t *px)
{
    return px->port; /* set before the thread starts, never changed */
}

static void set_mode(tcpproxy_t *px, proxy_mode_t mode)
{
    pthread_mutex_lock(&px->lock);
    px->mode = mode;
    px->held = 0; /* recounted by the thread under the new mode */
    pthread_mutex_unlock(&px->lock);
}

void tcpproxy_cut(tcpproxy_t *px)
{
    set_mode(px, MODE_CUT);
}

void tcpproxy_freeze(tcpproxy_t *px)
{
    set_mode(px, MODE_FROZEN);
}

void tcpproxy_restore(tcpproxy_t *px)
{
    set_mode(px, MODE_FORWARD);
}

int tcpproxy_refused(tcpproxy_t *px)
{
    pthread_mutex_lock(&px->lock);
    int n = px->refused;
    pthread_mutex_unlock(&px->lock);
    return n;
}

int tcpproxy_held_requests(tcpproxy_t *px)
{
    pthread_mutex_lock(&px->lock);
    int n = px->held;
    pthread_mutex_unlock(&px->lock);
    return n;
}

long long tcpproxy_bytes_up(tcpproxy_t *px)
{
    pthread_mutex_lock(&px->lock);
    long long n = px->bytes_up;
    pthread_mutex_unlock(&px->lock);
    return n;
}

int tcpproxy_uri(const char *uri, int port, char *out, size_t size)
{
    const char *hosts = uri ? strstr(uri, "://") : NULL;
    if (!hosts || !out || size == 0)
        return -1;
    hosts += 3;
    const char *at = strchr(hosts, '@');
    const char *slash = strchr(hosts, '/');
    if (at && (!slash || at < slash))
        hosts = at + 1;
    const char *rest = hosts + strcspn(hosts, "/?");
    int n = snprintf(out, size, "%.*s127.0.0.1:%d%s", (int)(hosts - uri), uri, port, rest);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

void tcpproxy_stop(tcpproxy_t *px)
{
    if (!px)
        return;
    pthread_mutex_lock(&px->lock);
    px->quit = true;
    pthread_mutex_unlock(&px->lock);
    pthread_join(px->thread, NULL);
    close(px->listen_fd);
    pthread_mutex_destroy(&px->lock);
    free(px);
}

tcpproxy_t *tcpproxy_start_kafka_env(char *why, size_t whylen)
{
    const char *bootstrap = testenv_require("KAFKA_BOOTSTRAP_SERVERS");
    char err[256] = "";
    tcpproxy_t *px = tcpproxy_start_kafka_at(bootstrap, err, sizeof err);
    if (px == NULL && whylen > 0)
        snprintf(why, whylen, "KAFKA_BOOTSTRAP_SERVERS=%s: needs one IPv4/localhost host:port "
                              "for the Kafka proxy (%s)", bootstrap, err);
    return px;
}
