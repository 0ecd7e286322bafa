/* status_history_: the status page's memory of lag and records per minute. See
 * status_history.h. */
#include "status_history.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "http.h"
#include "status.h"

const char *const STATUS_HISTORY_OUTCOME_NAMES[STATUS_HISTORY_OUTCOMES] = {
    "delivered", "skipped", "dedup_hit", "dead_lettered"};

#define SCRAPE_TIMEOUT_MS 3000
#define SCRAPE_MAX_BYTES (4 * 1024 * 1024)

void status_history_init(status_history_t *h) { memset(h, 0, sizeof *h); }

static const status_sample_t *at(const status_history_t *h, size_t i)
{
    return &h->ring[(h->head + i) % STATUS_HISTORY_MAX];
}

const status_sample_t *status_history_last(const status_history_t *h)
{
    return h->count ? at(h, h->count - 1) : NULL;
}

void status_history_add(status_history_t *h, const status_sample_t *s)
{
    const status_sample_t *last = status_history_last(h);
    if (last && s->t_ms < last->t_ms)
        return;
    if (h->count == STATUS_HISTORY_MAX) {
        h->head = (h->head + 1) % STATUS_HISTORY_MAX;
        h->count--;
    }
    h->ring[(h->head + h->count) % STATUS_HISTORY_MAX] = *s;
    h->count++;
    while (h->count > 1 && s->t_ms - at(h, 0)->t_ms > STATUS_HISTORY_WINDOW_MS) {
        h->head = (h->head + 1) % STATUS_HISTORY_MAX;
        h->count--;
    }
}

size_t status_history_lag(const status_history_t *h, size_t w, double *out, size_t max)
{
    size_t n = 0;
    if (w >= STATUS_HISTORY_WORKERS)
        return 0;
    size_t first = h->count > max ? h->count - max : 0;
    for (size_t i = first; i < h->count && n < max; i++) {
        if (at(h, i)->lag[w] >= 0)
            out[n++] = (double)at(h, i)->lag[w];
    }
    return n;
}

size_t status_history_rate(const status_history_t *h, size_t w, size_t o, double *out,
                           size_t max)
{
    size_t n = 0;
    if (w >= STATUS_HISTORY_WORKERS || o >= STATUS_HISTORY_OUTCOMES)
        return 0;
    const status_sample_t *prev = NULL;
    size_t first = h->count > max + 1 ? h->count - max - 1 : 0;
    for (size_t i = first; i < h->count && n < max; i++) {
        const status_sample_t *s = at(h, i);
        if (!s->counts_known)
            continue;
        if (prev && s->t_ms > prev->t_ms) {
            double d = s->counts[w][o] - prev->counts[w][o];
            if (d < 0)
                d = s->counts[w][o]; /* the worker restarted: its counter began again */
            out[n++] = d * 60000.0 / (double)(s->t_ms - prev->t_ms);
        }
        prev = s;
    }
    return n;
}

/* Value of label `name` in a label set starting after '{'; copies it (unescaped) into out.
 * Returns true when found. */
static bool label(const char *labels, const char *name, char *out, size_t size)
{
    size_t nl = strlen(name);
    const char *p = labels;
    while (*p && *p != '}') {
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"')
            return false;
        bool match = (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0;
        size_t o = 0;
        p = eq + 2;
        while (*p && *p != '"') {
            char c = *p++;
            if (c == '\\' && *p) {
                c = *p == 'n' ? '\n' : *p;
                p++;
            }
            if (match && o + 1 < size)
                out[o++] = c;
        }
        if (!*p)
            return false;
        if (match) {
            out[o] = '\0';
            return true;
        }
        p++; /* the closing quote */
        if (*p == ',')
            p++;
    }
    return false;
}

int status_history_parse_records(const char *text,
                                 double counts[STATUS_HISTORY_WORKERS][STATUS_HISTORY_OUTCOMES])
{
    static const char metric[] = "worker_records_total{";
    int added = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, metric, sizeof metric - 1) == 0) {
            const char *labels = line + sizeof metric - 1;
            char worker[128], outcome[64];
            const char *close = strstr(labels, "} ");
            if (close && (!nl || close < nl) && label(labels, "worker", worker, sizeof worker) &&
                label(labels, "outcome", outcome, sizeof outcome)) {
                char *end = NULL;
                errno = 0;
                double v = strtod(close + 2, &end);
                for (size_t w = 0; errno == 0 && end != close + 2 && isfinite(v) &&
                                   w < STATUS_HISTORY_WORKERS; w++) {
                    if (strcmp(worker, STATUS_WORKERS[w].worker) != 0)
                        continue;
                    for (size_t o = 0; o < STATUS_HISTORY_OUTCOMES; o++) {
                        if (strcmp(outcome, STATUS_HISTORY_OUTCOME_NAMES[o]) == 0) {
                            counts[w][o] += v;
                            added++;
                        }
                    }
                }
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    return added;
}

int status_history_scrape(const char *urls,
                          double counts[STATUS_HISTORY_WORKERS][STATUS_HISTORY_OUTCOMES],
                          char *err, size_t errlen)
{
    memset(counts, 0, sizeof(double) * STATUS_HISTORY_WORKERS * STATUS_HISTORY_OUTCOMES);
    errbuf_set(err, errlen, "%s", "");
    if (!urls || !*urls)
        return -1;
    http_options_t o = {.connect_timeout_ms = SCRAPE_TIMEOUT_MS,
                        .total_timeout_ms = SCRAPE_TIMEOUT_MS,
                        .max_body_bytes = SCRAPE_MAX_BYTES};
    char e[512];
    http_client_t *c = http_client_new(&o, e, sizeof e);
    if (!c) {
        errbuf_set(err, errlen, "STATUS_SCRAPE_URLS: %s", e);
        return -1;
    }
    int rc = 0;
    for (const char *p = urls; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, ", ");
        if (n == 0)
            break;
        char url[1024];
        if (n >= sizeof url) {
            if (rc == 0)
                errbuf_set(err, errlen, "STATUS_SCRAPE_URLS: a URL is longer than %zu bytes",
                           sizeof url - 1);
            rc = -1;
            p += n;
            continue;
        }
        memcpy(url, p, n);
        url[n] = '\0';
        p += n;
        http_response_t r = {0};
        if (http_request(c, HTTP_GET, url, NULL, NULL, 0, &r, e, sizeof e) == 0 &&
            r.status == 200) {
            status_history_parse_records(r.body, counts);
        } else {
            if (rc == 0) {
                char safe[1024];
                errbuf_set(err, errlen, "STATUS_SCRAPE_URLS: %s: %s",
                           http_redact_url(url, safe, sizeof safe),
                           r.status ? "not 200" : e);
            }
            rc = -1;
        }
        http_response_clear(&r);
    }
    http_client_free(c);
    return rc;
}
