/* simproc_: see simproc.h. */
#include "simproc.h"

#include "testenv.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

/* Generous: a sanitizer build starting (or exiting with its leak check) on a loaded 2-core
 * machine that runs two test programs at once. Waiting costs nothing when things are fast. */
#define SIMPROC_START_TIMEOUT_MS 60000
#define SIMPROC_STOP_TIMEOUT_MS 60000

struct simproc {
    pid_t pid;
    char base_url[128];
    char api_url[160];
    int port; /* of base_url */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void kill_and_reap(pid_t pid)
{
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

/* Reads one line (without '\n') from fd within timeout_ms. */
static int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t n = 0;
    int64_t deadline = testenv_now_ms() + timeout_ms;
    while (n + 1 < size) {
        int left = (int)(deadline - testenv_now_ms());
        if (left <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int rc = poll(&pfd, 1, left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        if (c == '\n')
            break;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

/* argv for execv: path, then args (NULL-terminated, may be NULL). free() it (not the strings). */
static char **make_argv(const char *path, const char *const *args)
{
    size_t nargs = 0;
    while (args && args[nargs])
        nargs++;
    char **argv = calloc(nargs + 2, sizeof *argv);
    if (!argv)
        return NULL;
    argv[0] = (char *)path;
    for (size_t i = 0; i < nargs; i++)
        argv[i + 1] = (char *)args[i];
    return argv;
}

extern char **environ;

/* True when the "NAME=value" entries a and b name the same variable. */
static bool same_name(const char *a, const char *b)
{
    size_t i = 0;
    while (a[i] && a[i] != '=' && a[i] == b[i])
        i++;
    return (a[i] == '=' || a[i] == '\0') && (b[i] == '=' || b[i] == '\0');
}

/* The child's environment: this process' environment with env ("NAME=value", NULL-terminated,
 * may be NULL) added, each entry of env overriding a variable of that name. Built in the parent
 * (nothing may allocate between fork and exec in a multi-threaded process: another thread may
 * have held the allocator's lock at fork). free() the array (not the strings). */
/* True for an inherited variable that configures the pipeline. A developer's shell may carry
 * such settings (MAX_ATTEMPTS, PLOOMES_ENTITIES, ...): they must not leak into the binaries a
 * test starts, or the test would check a configuration it did not choose. The service
 * addresses and LOG_LEVEL (for debugging a test) are kept. */
static bool pipeline_setting(const char *entry)
{
    static const char *const prefixes[] = {
        "PLOOMES_", "MILVUS_", "KAFKA_", "TOPIC_", "TICKET", "SYNC_SINCE=", "POLL_INTERVAL_",
        "MAX_ATTEMPTS=", "RETRY_", "MAX_IN_FLIGHT=", "DRY_RUN=", "METRICS_PORT=",
        "HTTP_TIMEOUT_MS=", "CLAIM_LEASE_SECONDS=", "MONGODB_PASSWORD"};
    if (strncmp(entry, "KAFKA_BOOTSTRAP_SERVERS=", 24) == 0)
        return false;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(entry, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

static char **make_envp(const char *const *env)
{
    size_t nenv = 0, nown = 0;
    while (env && env[nenv])
        nenv++;
    while (environ && environ[nown])
        nown++;
    char **envp = calloc(nown + nenv + 1, sizeof *envp);
    if (!envp)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < nown; i++) {
        bool overridden = false;
        for (size_t j = 0; j < nenv && !overridden; j++)
            overridden = same_name(environ[i], env[j]);
        if (!overridden && !pipeline_setting(environ[i]))
            envp[n++] = environ[i];
    }
    for (size_t j = 0; j < nenv; j++) {
        bool later = false; /* the last of duplicate names in env wins, as putenv would do */
        for (size_t k = j + 1; k < nenv && !later; k++)
            later = same_name(env[j], env[k]);
        if (!later)
            envp[n++] = (char *)env[j];
    }
    envp[n] = NULL;
    return envp;
}

/* Forks and execs path. In the child: `deathsig` when this process dies (a test that failed
 * before stopping its children leaves none), env ("NAME=value", NULL-terminated, may be NULL)
 * added, stdout/stderr replaced by out_fd/err_fd when >= 0, close_fd closed when >= 0.
 * Returns the pid, or -1 with errno set. */
static pid_t spawn(const char *path, char *const argv[], const char *const *env, int out_fd,
                   int err_fd, int close_fd, int deathsig)
{
    pid_t parent = getpid();
    char **envp = make_envp(env);
    if (!envp) {
        errno = ENOMEM;
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0) {
        int saved = errno;
        free(envp);
        errno = saved;
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, deathsig);
    if (getppid() != parent)
        _exit(127);
    if (out_fd >= 0)
        dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0)
        dup2(err_fd, STDERR_FILENO);
    if (close_fd >= 0)
        close(close_fd);
    if (out_fd > STDERR_FILENO)
        close(out_fd);
    if (err_fd > STDERR_FILENO && err_fd != out_fd)
        close(err_fd);
    execve(path, argv, envp);
    _exit(127);
}

typedef struct reap_ctx {
    pid_t pid;
    int status;
    bool reaped;
} reap_ctx;

static bool try_reap(void *ctx)
{
    reap_ctx *r = ctx;
    pid_t got = waitpid(r->pid, &r->status, WNOHANG);
    if (got == r->pid) {
        r->reaped = true;
        return true;
    }
    return got < 0 && errno != EINTR; /* not (or no longer) our child: stop waiting */
}

/* Waits up to timeout_ms for pid to exit. Returns 0 with *status (waitpid's) set; -1 when it
 * did not exit in time (it is then killed with SIGKILL and reaped); -2 when waitpid failed. */
static int reap_within(pid_t pid, int timeout_ms, int *status)
{
    reap_ctx r = {pid, 0, false};
    if (!testenv_wait_until(try_reap, &r, timeout_ms, 10)) {
        kill_and_reap(pid);
        return -1;
    }
    if (!r.reaped)
        return -2;
    *status = r.status;
    return 0;
}

simproc *simproc_start(const char *binary, const char *const *args, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    char path[1024];
    testenv_bin(path, sizeof path, binary);
    char **argv = make_argv(path, args);
    if (!argv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    int fds[2];
    if (pipe(fds) < 0) {
        free(argv);
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return NULL;
    }
    /* stderr is inherited: the simulator's sanitizer reports show up in the test log */
    pid_t pid = spawn(path, argv, NULL, fds[1], -1, fds[0], SIGTERM);
    int spawn_errno = errno;
    free(argv);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        snprintf(err, errlen, "fork: %s", strerror(spawn_errno));
        return NULL;
    }
    int rc;
    char line[256];
    rc = read_line(fds[0], line, sizeof line, SIMPROC_START_TIMEOUT_MS);
    close(fds[0]); /* the simulators print nothing else on stdout */
    const char *prefix = "listening on ";
    if (rc < 0 || strncmp(line, prefix, strlen(prefix)) != 0 ||
        strlen(line + strlen(prefix)) >= 100) {
        kill_and_reap(pid);
        snprintf(err, errlen, "%s did not print 'listening on http://127.0.0.1:PORT' in time", path);
        return NULL;
    }
    simproc *p = calloc(1, sizeof *p);
    if (!p) {
        kill_and_reap(pid);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->pid = pid;
    snprintf(p->base_url, sizeof p->base_url, "%s", line + strlen(prefix));
    const char *colon = strrchr(p->base_url, ':');
    char *end = NULL;
    errno = 0;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (colon == NULL || errno != 0 || end == colon + 1 || *end != '\0' || port <= 0 ||
        port > 65535) {
        kill_and_reap(pid);
        snprintf(err, errlen, "%s printed no port in 'listening on %s'", path, p->base_url);
        free(p);
        return NULL;
    }
    p->port = (int)port;
    if (strstr(binary, "milvus"))
        snprintf(p->api_url, sizeof p->api_url, "%s/api", p->base_url);
    else
        snprintf(p->api_url, sizeof p->api_url, "%s", p->base_url);
    return p;
}

simproc *simproc_start_ploomes(const char *user_key, char *err, size_t errlen)
{
    const char *args[] = {"--port", "0", "--user-key", user_key, NULL};
    return simproc_start("ploomes-sim", args, err, errlen);
}

simproc *simproc_start_milvus(const char *token, char *err, size_t errlen)
{
    const char *args[] = {"--port", "0", "--token", token, NULL};
    return simproc_start("milvus-sim", args, err, errlen);
}

simproc *simproc_start_sim(const char *binary, const char *credential, const char *faults_json,
                           char *err, size_t errlen)
{
    simproc *p = NULL;
    if (strcmp(binary, "ploomes-sim") == 0)
        p = simproc_start_ploomes(credential, err, errlen);
    else if (strcmp(binary, "milvus-sim") == 0)
        p = simproc_start_milvus(credential, err, errlen);
    else
        snprintf(err, errlen, "simproc_start_sim: '%s' is not a simulator", binary);
    if (p && faults_json && simproc_faults(p, faults_json) != 0) {
        snprintf(err, errlen, "%s: POST /_admin/faults %s was refused", binary, faults_json);
        simproc_stop(p);
        p = NULL;
    }
    if (!p)
        fprintf(stderr, "%s\n", err);
    return p;
}

const char *simproc_base_url(const simproc *p)
{
    return p->base_url;
}

int simproc_port(const simproc *p)
{
    return p->port;
}

const char *simproc_api_url(const simproc *p)
{
    return p->api_url;
}

pid_t simproc_pid(const simproc *p)
{
    return p->pid;
}

typedef struct growbuf {
    char *data;
    size_t len;
    long retry_after;
} growbuf;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    growbuf *b = ud;
    size_t n = size * nmemb;
    char *d = realloc(b->data, b->len + n + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    growbuf *b = ud;
    size_t n = size * nmemb;
    const char *name = "retry-after:";
    size_t nl = strlen(name);
    if (n > nl && strncasecmp(ptr, name, nl) == 0) {
        char tmp[32];
        size_t vl = n - nl < sizeof tmp - 1 ? n - nl : sizeof tmp - 1;
        memcpy(tmp, ptr + nl, vl);
        tmp[vl] = '\0';
        char *end = NULL;
        long v = strtol(tmp, &end, 10);
        if (end != tmp)
            b->retry_after = v;
    }
    return n;
}

int simproc_request(const simproc *p, const char *method, const char *path_and_query,
                    const char *const *headers, const char *body, long *status, char **body_out,
                    long *retry_after)
{
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    size_t ulen = strlen(p->base_url) + strlen(path_and_query) + 1;
    char *url = malloc(ulen);
    if (!url) {
        curl_easy_cleanup(c);
        return -1;
    }
    snprintf(url, ulen, "%s%s", p->base_url, path_and_query);
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    if (body)
        hl = curl_slist_append(hl, "Content-Type: application/json");
    hl = curl_slist_append(hl, "Expect:");
    growbuf b = {NULL, 0, -1};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    }
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    free(url);
    if (cc != CURLE_OK) {
        free(b.data);
        return -1;
    }
    if (status)
        *status = code;
    if (retry_after)
        *retry_after = b.retry_after;
    if (body_out)
        *body_out = b.data ? b.data : strdup("");
    else
        free(b.data);
    return 0;
}

int simproc_request_raw(const simproc *p, const char *method, const char *path_and_query,
                        const char *const *headers, const char *content_type, const char *body,
                        size_t body_len, long *status, char **body_out)
{
    pthread_once(&curl_once, curl_init_once);
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    size_t ulen = strlen(p->base_url) + strlen(path_and_query) + 1;
    char *url = malloc(ulen);
    if (!url) {
        curl_easy_cleanup(c);
        return -1;
    }
    snprintf(url, ulen, "%s%s", p->base_url, path_and_query);
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    char ct[256];
    if (content_type) { /* "" = no Content-Type header at all ("Content-Type:" removes curl's) */
        snprintf(ct, sizeof ct, "Content-Type:%s%s", content_type[0] ? " " : "", content_type);
        hl = curl_slist_append(hl, ct);
    }
    hl = curl_slist_append(hl, "Expect:");
    growbuf b = {NULL, 0, -1};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    CURLcode cc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    free(url);
    if (cc != CURLE_OK) {
        free(b.data);
        return -1;
    }
    if (status)
        *status = code;
    if (body_out)
        *body_out = b.data ? b.data : strdup("");
    else
        free(b.data);
    return 0;
}

long simproc_post(const simproc *p, const char *path_and_query, const char *const *headers,
                  const char *body, char **text)
{
    long st = -1;
    if (text)
        *text = NULL;
    if (simproc_request(p, "POST", path_and_query, headers, body, &st, text, NULL) != 0)
        return -1;
    return st;
}

cJSON *simproc_request_json(const simproc *p, const char *method, const char *path_and_query,
                           const char *const *headers, const char *body, long *status)
{
    char *text = NULL;
    long st = 0;
    if (simproc_request(p, method, path_and_query, headers, body, &st, &text, NULL) < 0) {
        if (status)
            *status = -1;
        return NULL;
    }
    if (status)
        *status = st;
    cJSON *json = cJSON_Parse(text);
    free(text);
    return json;
}

void simproc_urlencode(char *out, size_t size, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (size == 0)
        return;
    for (const unsigned char *q = (const unsigned char *)s; *q && o + 4 <= size; q++) {
        if ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
            *q == '-' || *q == '.' || *q == '_' || *q == '~') {
            out[o++] = (char)*q;
        } else {
            out[o++] = '%';
            out[o++] = hex[*q >> 4];
            out[o++] = hex[*q & 15];
        }
    }
    out[o] = '\0';
}

long simproc_admin_post(const simproc *p, const char *what, const char *json)
{
    char path[128];
    snprintf(path, sizeof path, "/_admin/%s", what);
    long status = 0;
    if (simproc_request(p, "POST", path, NULL, json ? json : "{}", &status, NULL, NULL) < 0)
        return -1;
    return status;
}

int simproc_seed(const simproc *p, const char *json)
{
    return simproc_admin_post(p, "seed", json) == 200 ? 0 : -1;
}

int simproc_faults(const simproc *p, const char *json)
{
    return simproc_admin_post(p, "faults", json) == 200 ? 0 : -1;
}

int simproc_reset(const simproc *p)
{
    return simproc_admin_post(p, "reset", NULL) == 200 ? 0 : -1;
}

static cJSON *admin_get(const simproc *p, const char *path)
{
    long status = 0;
    char *body = NULL;
    if (simproc_request(p, "GET", path, NULL, NULL, &status, &body, NULL) < 0)
        return NULL;
    cJSON *json = status == 200 ? cJSON_Parse(body) : NULL;
    free(body);
    return json;
}

double simproc_fault_num(const simproc *p, const char *key, double missing)
{
    long st;
    cJSON *f = simproc_request_json(p, "GET", "/_admin/faults", NULL, NULL, &st);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(f, key);
    double d = st == 200 && cJSON_IsNumber(v) ? v->valuedouble : missing;
    cJSON_Delete(f);
    return d;
}

cJSON *simproc_state(const simproc *p)
{
    return admin_get(p, "/_admin/state");
}

cJSON *simproc_stats(const simproc *p)
{
    return admin_get(p, "/_admin/stats");
}

int simproc_stop(simproc *p)
{
    if (!p)
        return -1;
    pid_t pid = p->pid;
    free(p);
    kill(pid, SIGTERM);
    int st = 0;
    if (reap_within(pid, SIMPROC_STOP_TIMEOUT_MS, &st) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t simproc_spawn(const char *binary, const char *const *args, const char *const *env,
                    const char *log_path, char *err, size_t errlen)
{
    char path[1024];
    testenv_bin(path, sizeof path, binary);
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        snprintf(err, errlen, "cannot open the log file %s for %s: %s", log_path, binary,
                 strerror(errno));
        return -1;
    }
    char **argv = make_argv(path, args);
    if (!argv) {
        close(log_fd);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pid_t pid = spawn(path, argv, env, log_fd, log_fd, -1, SIGKILL);
    int spawn_errno = errno;
    free(argv);
    close(log_fd);
    if (pid < 0)
        snprintf(err, errlen, "fork for %s: %s", path, strerror(spawn_errno));
    return pid;
}

int simproc_wait(pid_t pid, int timeout_ms)
{
    int st = 0;
    int rc = reap_within(pid, timeout_ms, &st);
    if (rc == -1)
        fprintf(stderr, "process %d did not exit within %d ms: killed\n", (int)pid, timeout_ms);
    if (rc < 0)
        return -1;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}
