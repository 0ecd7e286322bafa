/* hostile_server_: a programmable misbehaving HTTP proxy for tests. See hostile_server.h. */
#include "hostile_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define HS_RULES_MAX 256
#define HS_HEAD_MAX (64u * 1024u)
#define HS_BODY_MAX (16u * 1024u * 1024u)

typedef struct {
    hostile_rule_t r; /* strings below are owned copies */
    int seen;         /* matching requests so far */
    int hits;         /* hostile answers given */
} rule_slot_t;

typedef struct conn {
    struct hostile_server *hs;
    int fd;
    pthread_t thread;
    int done; /* set (under the server's mutex) when serve() returned */
    struct conn *next;
} conn_t;

struct hostile_server {
    int listen_fd;
    int port;
    char url[64];
    char up_host[64];
    int up_port; /* 0: no upstream */
    pthread_t acceptor;
    pthread_mutex_t mu;
    rule_slot_t rules[HS_RULES_MAX];
    int nrules;
    int requests;
    conn_t *conns;
    volatile int stop;
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_str(int fd, const char *s)
{
    return send_all(fd, s, strlen(s));
}

static void set_timeout(int fd, int seconds)
{
    struct timeval tv = {seconds, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A request read whole. */
typedef struct {
    char *head;      /* request line + headers, NUL-terminated (owned) */
    size_t head_len; /* up to and including the blank line */
    char *body;      /* NUL-terminated (owned), "" when none */
    size_t body_len;
    char method[16];
    char target[2048];
} request_t;

static void request_free(request_t *rq)
{
    free(rq->head);
    free(rq->body);
    memset(rq, 0, sizeof *rq);
}

/* Content-Length of a header block (0 when absent or bad). */
static size_t content_length(const char *head)
{
    const char *p = head;
    while ((p = strchr(p, '\n')) != NULL) {
        p++;
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            char *end = NULL;
            unsigned long long v = strtoull(p + 15, &end, 10);
            return end == p + 15 ? 0 : (size_t)v;
        }
    }
    return 0;
}

/* Reads one request. 0 or -1 (closed, too large, garbage). */
static int read_request(int fd, request_t *rq)
{
    memset(rq, 0, sizeof *rq);
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -1;
    char *end = NULL;
    while (end == NULL) {
        if (len == cap) {
            if (cap >= HS_HEAD_MAX + HS_BODY_MAX)
                goto fail;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb)
                goto fail;
            buf = nb;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end == NULL && len > HS_HEAD_MAX)
            goto fail;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    size_t blen = content_length(buf);
    if (blen > HS_BODY_MAX)
        goto fail;
    if (head_len + blen > cap) {
        char *nb = realloc(buf, head_len + blen + 1);
        if (!nb)
            goto fail;
        buf = nb;
        cap = head_len + blen;
    }
    while (len < head_len + blen) {
        ssize_t n = recv(fd, buf + len, head_len + blen - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        len += (size_t)n;
    }
    rq->body = malloc(blen + 1);
    rq->head = malloc(head_len + 1);
    if (!rq->body || !rq->head)
        goto fail;
    memcpy(rq->body, buf + head_len, blen);
    rq->body[blen] = '\0';
    rq->body_len = blen;
    memcpy(rq->head, buf, head_len);
    rq->head[head_len] = '\0';
    rq->head_len = head_len;
    free(buf);
    /* "METHOD SP target SP version" */
    const char *sp1 = strchr(rq->head, ' ');
    const char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || (size_t)(sp1 - rq->head) >= sizeof rq->method ||
        (size_t)(sp2 - sp1 - 1) >= sizeof rq->target)
        return -1;
    memcpy(rq->method, rq->head, (size_t)(sp1 - rq->head));
    rq->method[sp1 - rq->head] = '\0';
    memcpy(rq->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    rq->target[sp2 - sp1 - 1] = '\0';
    return 0;
fail:
    free(buf);
    free(rq->body);
    free(rq->head);
    memset(rq, 0, sizeof *rq);
    return -1;
}

/* Sends the request to the upstream (Connection: close) and reads its whole answer into *out
 * (malloc'd). 0 or -1. */
static int forward(const struct hostile_server *hs, const request_t *rq, char **out,
                   size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (hs->up_port == 0)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    set_timeout(fd, 60);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hs->up_port)};
    if (inet_pton(AF_INET, hs->up_host, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    /* the request line and headers, without Connection / Keep-Alive, then ours */
    int rc = 0;
    const char *line = rq->head;
    while (rc == 0 && *line) {
        const char *nl = strstr(line, "\r\n");
        if (!nl || nl == line)
            break; /* the blank line */
        size_t n = (size_t)(nl - line) + 2;
        if (strncasecmp(line, "Connection:", 11) != 0 && strncasecmp(line, "Keep-Alive:", 11) != 0)
            rc = send_all(fd, line, n);
        line = nl + 2;
    }
    if (rc == 0)
        rc = send_str(fd, "Connection: close\r\n\r\n");
    if (rc == 0 && rq->body_len)
        rc = send_all(fd, rq->body, rq->body_len);
    size_t cap = 16384, len = 0;
    char *buf = rc == 0 ? malloc(cap) : NULL;
    if (!buf) {
        close(fd);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap > HS_BODY_MAX * 2)
                break;
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (len == 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Whatever";
    }
}

/* Sleeps ms in slices; returns -1 when the server is stopping. */
static int nap(struct hostile_server *hs, int ms)
{
    for (int done = 0; done < ms; done += 50) {
        if (hs->stop)
            return -1;
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return hs->stop ? -1 : 0;
}

/* The hostile answer of rule r on fd. */
static void answer(struct hostile_server *hs, int fd, const hostile_rule_t *r)
{
    char head[1024];
    const char *ct = r->content_type ? r->content_type : "application/json";
    const char *body = r->body ? r->body : "";
    size_t blen = strlen(body);
    int status = r->status > 0 ? r->status : (r->mode == HOSTILE_REDIRECT ? 302 : 200);
    switch (r->mode) {
    case HOSTILE_STATUS:
        if (status == 204 || status == 304)
            snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nConnection: close\r\n\r\n", status,
                     reason_of(status));
        else
            snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason_of(status), ct, blen);
        if (send_str(fd, head) == 0 && status != 204 && status != 304)
            (void)send_all(fd, body, blen);
        break;
    case HOSTILE_TRUNCATED:
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, reason_of(status), ct, blen + 1000);
        if (send_str(fd, head) == 0)
            (void)send_all(fd, body, blen);
        break;
    case HOSTILE_OVERSIZE: {
        size_t size = r->size > 16 ? r->size : 16;
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n\r\n",
                 status, reason_of(status), ct, size);
        if (send_str(fd, head) != 0 || send_str(fd, "{\"lista\":\"") != 0)
            break;
        char chunk[16384];
        memset(chunk, 'x', sizeof chunk);
        size_t left = size - 12; /* {"lista":"  ...  "} */
        while (left > 0 && !hs->stop) {
            size_t n = left < sizeof chunk ? left : sizeof chunk;
            if (send_all(fd, chunk, n) != 0)
                break;
            left -= n;
        }
        if (left == 0)
            (void)send_str(fd, "\"}");
        break;
    }
    case HOSTILE_SLOWLORIS:
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: 1000\r\n"
                 "Connection: close\r\n\r\n",
                 status, reason_of(status), ct);
        if (send_str(fd, head) != 0)
            break;
        for (int i = 0; i < r->slow_seconds; i++)
            if (send_all(fd, i == 0 ? "{" : " ", 1) != 0 || nap(hs, 1000) != 0)
                break;
        break;
    case HOSTILE_REDIRECT:
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nLocation: %.600s\r\nContent-Type: text/html\r\n"
                 "Content-Length: 0\r\nConnection: close\r\n\r\n",
                 status, reason_of(status), body);
        (void)send_str(fd, head);
        break;
    }
}

static bool matches(const hostile_rule_t *r, const request_t *rq)
{
    return (!r->method || strcmp(r->method, rq->method) == 0) &&
           (!r->path_contains || strstr(rq->target, r->path_contains) != NULL) &&
           (!r->body_contains || strstr(rq->body, r->body_contains) != NULL);
}

static void serve_one(conn_t *c);

static void *serve(void *arg)
{
    conn_t *c = arg;
    serve_one(c);
    pthread_mutex_lock(&c->hs->mu);
    c->done = 1;
    pthread_mutex_unlock(&c->hs->mu);
    return NULL;
}

static void serve_one(conn_t *c)
{
    struct hostile_server *hs = c->hs;
    request_t rq;
    set_timeout(c->fd, 10);
    if (read_request(c->fd, &rq) != 0) {
        shutdown(c->fd, SHUT_RDWR);
        return;
    }
    hostile_rule_t rule;
    memset(&rule, 0, sizeof rule);
    bool hostile = false;
    pthread_mutex_lock(&hs->mu);
    hs->requests++;
    for (int i = 0; i < hs->nrules && !hostile; i++) {
        rule_slot_t *s = &hs->rules[i];
        if (!matches(&s->r, &rq))
            continue;
        int n = s->seen++;
        if (n < s->r.skip)
            break; /* passed through */
        if (s->r.times >= 0 && s->hits >= s->r.times)
            continue; /* spent: a later rule may match */
        s->hits++;
        rule = s->r; /* the strings live as long as the server */
        hostile = true;
    }
    pthread_mutex_unlock(&hs->mu);

    char *up = NULL;
    size_t up_len = 0;
    if (!hostile || rule.forward_first) {
        if (forward(hs, &rq, &up, &up_len) != 0 && !hostile)
            (void)send_str(c->fd, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n"
                                  "Connection: close\r\n\r\n");
    }
    if (hostile)
        answer(hs, c->fd, &rule);
    else if (up)
        (void)send_all(c->fd, up, up_len);
    free(up);
    request_free(&rq);
    shutdown(c->fd, SHUT_WR);
    /* let the client read everything before the close (no RST on unread input) */
    char sink[256];
    while (!hs->stop && recv(c->fd, sink, sizeof sink, 0) > 0) {
    }
}

/* Joins and frees the connections whose thread has finished. */
static void reap(struct hostile_server *hs)
{
    pthread_mutex_lock(&hs->mu);
    conn_t **pp = &hs->conns, *finished = NULL;
    while (*pp) {
        conn_t *c = *pp;
        if (c->done) {
            *pp = c->next;
            c->next = finished;
            finished = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&hs->mu);
    while (finished) {
        conn_t *next = finished->next;
        pthread_join(finished->thread, NULL);
        close(finished->fd);
        free(finished);
        finished = next;
    }
}

static void *acceptor(void *arg)
{
    struct hostile_server *hs = arg;
    while (!hs->stop) {
        reap(hs);
        struct pollfd p = {.fd = hs->listen_fd, .events = POLLIN};
        int pr = poll(&p, 1, 100);
        if (pr <= 0)
            continue;
        int fd = accept(hs->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        conn_t *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->hs = hs;
        c->fd = fd;
        if (pthread_create(&c->thread, NULL, serve, c) != 0) {
            close(fd);
            free(c);
            continue;
        }
        pthread_mutex_lock(&hs->mu);
        c->next = hs->conns;
        hs->conns = c;
        pthread_mutex_unlock(&hs->mu);
    }
    return NULL;
}

hostile_server_t *hostile_server_start(const char *upstream, char *err, size_t errlen)
{
    struct hostile_server *hs = calloc(1, sizeof *hs);
    if (!hs) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (upstream) {
        const char *p = strncmp(upstream, "http://", 7) == 0 ? upstream + 7 : NULL;
        const char *colon = p ? strchr(p, ':') : NULL;
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || (size_t)(colon - p) >= sizeof hs->up_host || port <= 0 || port > 65535 ||
            (*end != '\0' && *end != '/')) {
            snprintf(err, errlen, "upstream '%s' is not http://HOST:PORT", upstream);
            free(hs);
            return NULL;
        }
        memcpy(hs->up_host, p, (size_t)(colon - p));
        hs->up_host[colon - p] = '\0';
        hs->up_port = (int)port;
    }
    hs->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (hs->listen_fd < 0 ||
        setsockopt(hs->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(hs->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(hs->listen_fd, 128) != 0 ||
        getsockname(hs->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        if (hs->listen_fd >= 0)
            close(hs->listen_fd);
        free(hs);
        return NULL;
    }
    hs->port = ntohs(a.sin_port);
    snprintf(hs->url, sizeof hs->url, "http://127.0.0.1:%d", hs->port);
    pthread_mutex_init(&hs->mu, NULL);
    if (pthread_create(&hs->acceptor, NULL, acceptor, hs) != 0) {
        snprintf(err, errlen, "pthread_create failed");
        pthread_mutex_destroy(&hs->mu);
        close(hs->listen_fd);
        free(hs);
        return NULL;
    }
    return hs;
}

const char *hostile_server_url(const hostile_server_t *hs)
{
    return hs->url;
}

int hostile_server_add(hostile_server_t *hs, const hostile_rule_t *rule)
{
    pthread_mutex_lock(&hs->mu);
    int i = hs->nrules < HS_RULES_MAX ? hs->nrules++ : -1;
    if (i >= 0) {
        rule_slot_t *s = &hs->rules[i];
        memset(s, 0, sizeof *s);
        s->r = *rule;
        s->r.method = dup_or_null(rule->method);
        s->r.path_contains = dup_or_null(rule->path_contains);
        s->r.body_contains = dup_or_null(rule->body_contains);
        s->r.content_type = dup_or_null(rule->content_type);
        s->r.body = dup_or_null(rule->body);
    }
    pthread_mutex_unlock(&hs->mu);
    return i;
}

int hostile_server_hits(hostile_server_t *hs, int index)
{
    pthread_mutex_lock(&hs->mu);
    int n = index >= 0 && index < hs->nrules ? hs->rules[index].hits : -1;
    pthread_mutex_unlock(&hs->mu);
    return n;
}

int hostile_server_requests(hostile_server_t *hs)
{
    pthread_mutex_lock(&hs->mu);
    int n = hs->requests;
    pthread_mutex_unlock(&hs->mu);
    return n;
}

void hostile_server_stop(hostile_server_t *hs)
{
    if (!hs)
        return;
    hs->stop = 1;
    pthread_join(hs->acceptor, NULL);
    close(hs->listen_fd);
    pthread_mutex_lock(&hs->mu);
    conn_t *c = hs->conns;
    hs->conns = NULL;
    pthread_mutex_unlock(&hs->mu);
    while (c) {
        conn_t *next = c->next;
        shutdown(c->fd, SHUT_RDWR);
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
        c = next;
    }
    for (int i = 0; i < hs->nrules; i++) {
        hostile_rule_t *r = &hs->rules[i].r;
        free((char *)r->method);
        free((char *)r->path_contains);
        free((char *)r->body_contains);
        free((char *)r->content_type);
        free((char *)r->body);
    }
    pthread_mutex_destroy(&hs->mu);
    free(hs);
}
