/* status_page_: the HTML of pipeline-status --serve. See status_page.h. */
#include "status_page.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "doc.h"

#define RESPONSE_PREVIEW 120  /* bytes of the target's answer in the letters table */
#define SPARK_POINTS 120      /* points drawn per sparkline (the newest) */
#define SPARK_W 160
#define SPARK_H 28

static const char STYLE[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2433;background:#f6f7f9}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}"
    "header p{margin:0;color:#5b6474}a{color:#1a5fb4}"
    "table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002;width:100%}"
    "th,td{padding:6px 10px;border-bottom:1px solid #e4e7ec;text-align:left;"
    "vertical-align:top}th{background:#eef1f5;font-weight:600}"
    ".num{text-align:right;font-variant-numeric:tabular-nums}"
    ".muted{color:#8a93a3}.bad{color:#b42318;font-weight:600}.ok{color:#067647}"
    ".spark{color:#1a5fb4;vertical-align:middle}.o-dead_lettered .spark{color:#b42318}"
    ".o-skipped .spark{color:#8a93a3}.o-dedup_hit .spark{color:#7a5af8}"
    ".outcome{white-space:nowrap;margin:2px 0}.outcome .name{display:inline-block;width:110px}"
    ".outcome .rate{display:inline-block;width:160px}"
    "code,pre{font:12px/1.4 ui-monospace,monospace}pre{background:#fff;padding:12px;"
    "box-shadow:0 1px 2px #0002;overflow:auto}"
    ".problems{background:#fef3f2;border:1px solid #fda29b;padding:8px 12px}"
    ".box{background:#fff;padding:12px 16px;box-shadow:0 1px 2px #0002;max-width:720px}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px}dt{font-weight:600}"
    "dd{margin:0}meter{width:160px}button{font:inherit;padding:4px 12px}";

static void esc(FILE *o, const char *s) { status_page_escape(o, s, (size_t)-1); }

void status_page_escape(FILE *out, const char *s, size_t n)
{
    for (size_t i = 0; s && i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default:
            if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
                fputs("\xEF\xBF\xBD", out);
            else
                fputc(c, out);
        }
    }
}

/* ---- masking -------------------------------------------------------------------------------- */

static bool email_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* Whether in[i] may sit between the digits of a document or phone number. A space only does
 * after ')' ("(11) 98765-4321") or in a number that began with '+' ("+55 11 98765 4321"), so
 * "2026-12-03 08:09" is not one number. */
static bool num_sep(const char *in, size_t start, size_t i)
{
    char c = in[i];
    if (c == ' ')
        return i > start && (in[i - 1] == ')' || in[start] == '+');
    return c == '.' || c == '-' || c == '/' || c == '(' || c == ')' || c == '+';
}

/* Appends c to out if it fits. */
static void put(char *out, size_t size, size_t *o, char c)
{
    if (*o + 1 < size)
        out[(*o)++] = c;
}

static void put_str(char *out, size_t size, size_t *o, const char *s)
{
    for (; *s; s++)
        put(out, size, o, *s);
}

/* Masks a run of digits and separators holding >= 10 digits. */
static void mask_number(const char *run, size_t len, char *out, size_t size, size_t *o)
{
    char digits[DOC_BUF_SIZE];
    size_t nd = 0; /* every digit of the run; the first 14 are kept in digits */
    for (size_t i = 0; i < len; i++) {
        if (isdigit((unsigned char)run[i]) && nd++ < sizeof digits - 1)
            digits[nd - 1] = run[i];
    }
    digits[nd < sizeof digits ? nd : sizeof digits - 1] = '\0';
    if ((nd == 11 || nd == 14) && doc_verify(digits, NULL) != DOC_INVALID) {
        char m[DOC_DISPLAY_SIZE];
        put_str(out, size, o, doc_mask(digits, m, sizeof m));
        return;
    }
    size_t seen = 0;
    for (size_t i = 0; i < len; i++) {
        bool d = isdigit((unsigned char)run[i]);
        put(out, size, o, d && seen++ < nd - 2 ? '*' : run[i]);
    }
}

char *status_page_mask_text(const char *in, size_t n, char *out, size_t size)
{
    size_t o = 0, len = 0;
    if (!out || size == 0)
        return out;
    while (in && len < n && in[len])
        len++;
    for (size_t i = 0; i < len;) {
        if (email_char(in[i]) && (i == 0 || !email_char(in[i - 1]))) {
            size_t j = i; /* an e-mail address: keep the local part's first character */
            while (j < len && email_char(in[j]))
                j++;
            if (j < len && in[j] == '@' && j + 1 < len && isalnum((unsigned char)in[j + 1])) {
                put(out, size, &o, in[i]);
                put_str(out, size, &o, "***@");
                i = j + 1;
                while (i < len && (isalnum((unsigned char)in[i]) || in[i] == '.' ||
                                   in[i] == '-'))
                    put(out, size, &o, in[i++]);
                continue;
            }
        }
        if (isdigit((unsigned char)in[i]) || (in[i] == '+' || in[i] == '(')) {
            size_t j = i, digits = 0;
            while (j < len && (isdigit((unsigned char)in[j]) || num_sep(in, i, j))) {
                digits += isdigit((unsigned char)in[j]) != 0;
                j++;
            }
            while (j > i && !isdigit((unsigned char)in[j - 1]))
                j--; /* trailing separators are not part of the number */
            bool glued = i > 0 && isalnum((unsigned char)in[i - 1]);
            if (digits >= 10 && !glued) {
                mask_number(in + i, j - i, out, size, &o);
                i = j;
                continue;
            }
            if (j > i) {
                for (; i < j; i++)
                    put(out, size, &o, in[i]);
                continue;
            }
        }
        put(out, size, &o, in[i++]);
    }
    out[o] = '\0';
    return out;
}

static bool name_has(const char *name, const char *const *words)
{
    char low[128];
    size_t i = 0;
    for (; name && name[i] && i + 1 < sizeof low; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    low[i] = '\0';
    for (; *words; words++) {
        if (strstr(low, *words))
            return true;
    }
    return false;
}

static const char *const DOC_WORDS[] = {"cpf", "cnpj", "register", "document", NULL};
static const char *const PHONE_WORDS[] = {"phone", "fone", "celular", "whatsapp", NULL};
static const char *const MAIL_WORDS[] = {"email", "e-mail", "mail", NULL};

/* The masked form of a field whose name says what it holds (document, phone, e-mail) into
 * masked; false when the name says nothing or the value is not a string or number. */
static bool mask_named(const cJSON *item, char *masked, size_t size)
{
    char text[256];
    if (cJSON_IsString(item))
        snprintf(text, sizeof text, "%s", item->valuestring);
    else if (cJSON_IsNumber(item))
        snprintf(text, sizeof text, "%.0f", item->valuedouble);
    else
        return false;
    const char *name = item->string;
    if (name_has(name, DOC_WORDS)) {
        char norm[DOC_BUF_SIZE];
        if (doc_normalize(text, norm) > 0)
            doc_mask(norm, masked, size);
        else /* not a document's shape: one star per character, at most 14 */
            snprintf(masked, size, "%.*s", (int)(strlen(text) < 14 ? strlen(text) : 14),
                     "**************");
    } else if (name_has(name, PHONE_WORDS)) {
        size_t nd = 0, seen = 0, o = 0;
        for (const char *p = text; *p; p++)
            nd += isdigit((unsigned char)*p) != 0;
        for (const char *p = text; *p; p++)
            put(masked, size, &o, isdigit((unsigned char)*p) && seen++ + 2 < nd ? '*' : *p);
        masked[o] = '\0';
    } else if (name_has(name, MAIL_WORDS)) {
        if (strchr(text, '@'))
            status_page_mask_text(text, sizeof text, masked, size);
        else
            snprintf(masked, size, "%s", text[0] ? "***" : "");
    } else {
        return false;
    }
    return true;
}

/* Replaces item (a member of parent) by a string, keeping its name. */
static void replace_string(cJSON *parent, cJSON *item, const char *text)
{
    cJSON *rep = cJSON_CreateString(text);
    if (!rep)
        return;
    rep->string = item->string; /* the name moves to the replacement (freed with it) */
    rep->type |= item->type & cJSON_StringIsConst;
    item->string = NULL;
    if (!cJSON_ReplaceItemViaPointer(parent, item, rep)) {
        item->string = rep->string;
        rep->string = NULL;
        cJSON_Delete(rep);
    }
}

static void mask_walk(cJSON *parent)
{
    cJSON *c = parent->child;
    while (c) {
        cJSON *next = c->next;
        char named[512];
        if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            mask_walk(c);
        } else if (c->string && mask_named(c, named, sizeof named)) {
            replace_string(parent, c, named);
        } else if (cJSON_IsString(c)) {
            size_t len = strlen(c->valuestring), cap = len * 2 + 16;
            char *m = malloc(cap);
            if (m) {
                status_page_mask_text(c->valuestring, len, m, cap);
                if (strcmp(m, c->valuestring) != 0)
                    replace_string(parent, c, m);
                free(m);
            }
        }
        c = next;
    }
}

void status_page_mask_json(cJSON *j)
{
    if (j && (cJSON_IsObject(j) || cJSON_IsArray(j)))
        mask_walk(j);
}

/* ---- pieces ----------------------------------------------------------------------------------- */

/* Escaped and masked: at most n bytes of s. */
static void esc_masked(FILE *o, const char *s, size_t n)
{
    size_t len = 0;
    while (s && len < n && s[len])
        len++;
    char *m = malloc(len * 2 + 16);
    if (!m)
        return;
    status_page_mask_text(s, len, m, len * 2 + 16);
    esc(o, m);
    if (s && s[len])
        fputs("&hellip;", o);
    free(m);
}

static void page_open(FILE *o, const char *title, int refresh_s)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width\">",
          o);
    if (refresh_s > 0)
        fprintf(o, "<meta http-equiv=\"refresh\" content=\"%d\">", refresh_s);
    fputs("<title>", o);
    esc(o, title);
    fprintf(o, "</title><style>%s</style></head><body>\n", STYLE);
}

static char *page_close(FILE *o, char **buf)
{
    fputs("</body></html>\n", o);
    bool bad = ferror(o) != 0;
    if (fclose(o) != 0 || bad) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

static void utc_time(char *buf, size_t size, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, size, "-");
}

/* An inline SVG polyline of v[0..n) scaled to its own range (0 at the bottom when all >= 0). */
static void sparkline(FILE *o, const double *v, size_t n, const char *label)
{
    if (n == 0) {
        fputs("<span class=\"muted\">no data yet</span>", o);
        return;
    }
    double lo = 0, hi = 0;
    for (size_t i = 0; i < n; i++) {
        lo = v[i] < lo ? v[i] : lo;
        hi = v[i] > hi ? v[i] : hi;
    }
    double span = hi - lo > 0 ? hi - lo : 1;
    fprintf(o, "<svg class=\"spark\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "role=\"img\" aria-label=\"", SPARK_W, SPARK_H, SPARK_W, SPARK_H);
    esc(o, label);
    fputs("\"><polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"1.5\" points=\"", o);
    for (size_t i = 0; i < n; i++) {
        double x = n == 1 ? SPARK_W / 2.0 : (double)i * (SPARK_W - 2) / (double)(n - 1) + 1;
        double y = SPARK_H - 2 - (v[i] - lo) / span * (SPARK_H - 4);
        fprintf(o, "%s%.1f,%.1f", i ? " " : "", x, y);
    }
    fputs("\"/>", o);
    if (n == 1)
        fprintf(o, "<circle cx=\"%d\" cy=\"%.1f\" r=\"2\" fill=\"currentColor\"/>", SPARK_W / 2,
                SPARK_H - 2 - (v[0] - lo) / span * (SPARK_H - 4));
    fputs("</svg>", o);
}

static void fmt_rate(char *buf, size_t size, double r)
{
    if (r >= 100 || r == 0)
        snprintf(buf, size, "%.0f", r);
    else
        snprintf(buf, size, "%.1f", r);
}

/* ---- "/" ------------------------------------------------------------------------------------- */

static void workers_section(FILE *o, const status_page_view_t *v)
{
    const status_t *s = v->status;
    fputs("<section id=\"workers\"><h2>Workers</h2><table><thead><tr><th>Worker</th>"
          "<th class=\"num\">Lag</th><th>Lag, last hour</th>"
          "<th>Records per minute by outcome, last hour</th><th>Partitions (lag)</th>"
          "</tr></thead><tbody>\n", o);
    for (size_t w = 0; w < STATUS_HISTORY_WORKERS; w++) {
        const char *name = STATUS_WORKERS[w].worker;
        double points[SPARK_POINTS];
        fprintf(o, "<tr id=\"worker-%s\"><td><b>%s</b></td><td class=\"num lag\">%" PRId64
                   "</td><td>", name, name, status_worker_lag(s, name));
        size_t n = v->history ? status_history_lag(v->history, w, points, SPARK_POINTS) : 0;
        char label[160];
        snprintf(label, sizeof label, "lag of %s over the last hour", name);
        sparkline(o, points, n, label);
        fputs("</td><td>", o);
        const status_sample_t *last = v->history ? status_history_last(v->history) : NULL;
        if (!v->scraping) {
            fputs("<span class=\"muted\">not scraped: set STATUS_SCRAPE_URLS to the workers' "
                  "/metrics URLs</span>", o);
        } else if (!last || !last->counts_known) {
            fputs("<span class=\"muted\">no scrape yet</span>", o);
        } else {
            for (size_t k = 0; k < STATUS_HISTORY_OUTCOMES; k++) {
                const char *oc = STATUS_HISTORY_OUTCOME_NAMES[k];
                size_t m = status_history_rate(v->history, w, k, points, SPARK_POINTS);
                char rate[32];
                fmt_rate(rate, sizeof rate, m ? points[m - 1] : 0);
                fprintf(o, "<div class=\"outcome o-%s\"><span class=\"name\">%s</span>"
                           "<span class=\"rate\"><b>%s</b>/min (total <span class=\"total\">"
                           "%.0f</span>)</span>", oc, oc, m ? rate : "-", last->counts[w][k]);
                snprintf(label, sizeof label, "%s records per minute of %s", oc, name);
                sparkline(o, points, m, label);
                fputs("</div>", o);
            }
        }
        fputs("</td><td>", o);
        bool any = false;
        for (size_t i = 0; s && i < s->lag_count; i++) {
            if (strcmp(s->lags[i].worker, name) != 0)
                continue;
            fprintf(o, "%s<code>p%d</code>&nbsp;%" PRId64, any ? ", " : "", s->lags[i].partition,
                    s->lags[i].lag);
            any = true;
        }
        if (!any)
            fputs("<span class=\"muted\">no topic yet</span>", o);
        fputs("</td></tr>\n", o);
    }
    fputs("</tbody></table>", o);
    if (v->scraping && v->scrape_error && *v->scrape_error) {
        fputs("<p class=\"bad\">", o);
        esc(o, v->scrape_error);
        fputs("</p>", o);
    }
    fputs("</section>\n", o);
}

static void letters_section(FILE *o, const status_page_view_t *v)
{
    const status_t *s = v->status;
    char a[32];
    fputs("<section id=\"dlq\"><h2>Dead letters</h2><p>", o);
    if (!s || s->dlq_messages < 0)
        fputs("<span class=\"bad\">size unknown</span>", o);
    else
        fprintf(o, "<b class=\"%s\" id=\"dlq-size\">%" PRId64 "</b> in the dead-letter topic "
                   "(newest %s). <a href=\"/api/dlq\">JSON</a>",
                s->dlq_messages > 0 ? "bad" : "ok", s->dlq_messages,
                status_ago(a, sizeof a, s->taken_ms, s->dlq_newest_ms));
    fputs("</p>\n", o);
    if (!v->letters) {
        fputs("<p class=\"bad\">newest letters unknown: ", o);
        esc(o, v->letters_error ? v->letters_error : "");
        fputs("</p></section>\n", o);
        return;
    }
    if (v->letters->count == 0) {
        fputs("<p class=\"muted\">none</p></section>\n", o);
        return;
    }
    fputs("<table><thead><tr><th>Age</th><th>Worker</th><th>Error class</th>"
          "<th class=\"num\">HTTP</th><th>Key</th><th>Target's answer (first bytes)</th>"
          "<th>Letter</th></tr></thead><tbody>\n", o);
    int64_t now = s ? s->taken_ms : 0;
    for (size_t i = v->letters->count; i-- > 0;) { /* newest first */
        const dlq_letter_t *l = &v->letters->items[i];
        fprintf(o, "<tr class=\"letter\"><td>%s</td><td>",
                l->timestamp_ms > 0 ? status_ago(a, sizeof a, now, l->timestamp_ms) : "?");
        esc(o, l->worker);
        fputs("</td><td><code>", o);
        esc(o, l->error_class);
        fputs("</code></td><td class=\"num\">", o);
        if (l->http_status > 0)
            fprintf(o, "%ld", l->http_status);
        else
            fputs("<span class=\"muted\">-</span>", o);
        fputs("</td><td class=\"key\"><code>", o);
        esc(o, l->key ? l->key : "");
        fputs("</code></td><td><code>", o);
        esc_masked(o, l->response, RESPONSE_PREVIEW);
        fprintf(o, "</code></td><td><a href=\"/letter?p=%d&amp;o=%" PRId64 "\">%d/%" PRId64
                   "</a></td></tr>\n", l->partition, l->offset, l->partition, l->offset);
    }
    fputs("</tbody></table></section>\n", o);
}

static void store_sections(FILE *o, const status_t *s)
{
    char a[32], b[32];
    fputs("<section id=\"cursors\"><h2>Producer cursors</h2><table><thead><tr><th>Cursor</th>"
          "<th>Position</th><th>Last successful poll</th><th>Last poll</th><th>Last error</th>"
          "</tr></thead><tbody>\n", o);
    for (size_t i = 0; i < s->cursor_count; i++) {
        const store_cursor_t *c = &s->cursors[i];
        fputs("<tr><td><code>", o);
        esc(o, c->key);
        fputs("</code></td><td><code>", o);
        esc(o, c->has_position ? c->stamp : "-");
        fprintf(o, " / %" PRId64 "</code></td><td>%s</td><td>%s</td><td>", c->id,
                status_ago(a, sizeof a, s->taken_ms, c->last_ok_at_ms),
                status_ago(b, sizeof b, s->taken_ms, c->last_poll_at_ms));
        esc_masked(o, c->last_error, 200);
        fputs("</td></tr>\n", o);
    }
    if (s->cursor_count == 0)
        fputs("<tr><td colspan=\"5\" class=\"muted\">no cursor yet</td></tr>", o);
    fputs("</tbody></table></section>\n<section id=\"leases\"><h2>Producer leases</h2><table>"
          "<thead><tr><th>Lease</th><th>Holder</th><th>Until</th></tr></thead><tbody>\n", o);
    for (int i = 0; i < 2; i++) {
        const store_lease_t *l = &s->leases[i];
        fprintf(o, "<tr><td><code>%s</code></td><td>", STATUS_LEASE_NAMES[i]);
        if (!s->leases_known)
            fputs("<span class=\"bad\">unknown</span></td><td></td></tr>\n", o);
        else if (!l->owner[0] || l->until_ms < s->taken_ms)
            fputs("<span class=\"muted\">nobody</span></td><td></td></tr>\n", o);
        else {
            esc(o, l->owner);
            fprintf(o, "</td><td>%" PRId64 " s more</td></tr>\n",
                    (l->until_ms - s->taken_ms) / 1000);
        }
    }
    fputs("</tbody></table></section>\n<section id=\"rates\"><h2>Rate limits (shared, per "
          "account)</h2><table><thead><tr><th>API</th><th class=\"num\">Used in the last 60 s"
          "</th><th></th></tr></thead><tbody>\n", o);
    for (int i = 0; i < 2; i++) {
        const status_rate_t *r = &s->rates[i];
        fprintf(o, "<tr id=\"rate-%s\"><td>%s</td>", r->api, r->api);
        if (r->known)
            fprintf(o, "<td class=\"num\">%d / %d</td><td><meter min=\"0\" max=\"%d\" "
                       "value=\"%d\" high=\"%d\"></meter></td></tr>\n", r->used, r->limit,
                    r->limit, r->used, r->limit * 9 / 10);
        else
            fputs("<td class=\"num muted\">unknown</td><td class=\"muted\">its key is not set "
                  "here</td></tr>\n", o);
    }
    fputs("</tbody></table></section>\n", o);
}

char *status_page_render(const status_page_view_t *v)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    if (!o)
        return NULL;
    page_open(o, "Pipeline status", v->refresh_s);
    fputs("<header><h1>Pipeline status</h1><p>TOPIC_PREFIX <code>", o);
    esc(o, v->topic_prefix ? v->topic_prefix : "");
    fputs("</code>", o);
    if (!v->status) {
        fputs(" &middot; waiting for the first snapshot</p></header>\n", o);
        return page_close(o, &buf);
    }
    char when[64];
    utc_time(when, sizeof when, v->status->taken_ms);
    fprintf(o, " &middot; snapshot of %s &middot; refreshes every %d s &middot; "
               "<a href=\"/api/status\">JSON</a></p></header>\n", when, v->refresh_s);
    if (v->status->problem_count > 0) {
        fputs("<section class=\"problems\" id=\"problems\"><b>Problems</b><ul>", o);
        for (size_t i = 0; i < v->status->problem_count; i++) {
            fputs("<li>", o);
            esc(o, v->status->problems[i]);
            fputs("</li>", o);
        }
        fputs("</ul></section>\n", o);
    }
    workers_section(o, v);
    letters_section(o, v);
    store_sections(o, v->status);
    return page_close(o, &buf);
}

/* ---- a letter -------------------------------------------------------------------------------- */

/* One <dt>/<dd> pair; `mask`: the value may hold personal data. */
static void field(FILE *o, const char *name, const char *value, bool mask)
{
    fputs("<dt>", o);
    esc(o, name);
    fputs("</dt><dd>", o);
    if (mask)
        esc_masked(o, value, 4096);
    else
        esc(o, value);
    fputs("</dd>", o);
}

static void record_section(FILE *o, const dlq_letter_t *l)
{
    fputs("<h2>Record</h2><pre id=\"record\">", o);
    if (!l->value) {
        fputs("<span class=\"muted\">(tombstone)</span></pre>", o);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(l->value, l->value_len);
    if (j) {
        status_page_mask_json(j);
        char *pretty = cJSON_Print(j);
        esc(o, pretty ? pretty : "(out of memory)");
        free(pretty);
        cJSON_Delete(j);
    } else {
        esc_masked(o, l->value, l->value_len);
    }
    fputs("</pre>", o);
}

char *status_page_letter(const dlq_letter_t *l, const char *dlq_topic,
                         const store_replay_t *replay, bool allow_replay, bool confirm)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    if (!o)
        return NULL;
    char title[96], num[64], when[64];
    snprintf(title, sizeof title, "Dead letter %d/%" PRId64, l->partition, l->offset);
    page_open(o, title, 0);
    fprintf(o, "<header><h1>%s</h1><p><a href=\"/\">&larr; status</a> &middot; topic <code>",
            title);
    esc(o, dlq_topic);
    fputs("</code></p></header>\n<h2>Summary</h2><dl class=\"box\">", o);
    field(o, "Worker", l->worker, false);
    field(o, "Error class", l->error_class, false);
    snprintf(num, sizeof num, "%ld", l->http_status);
    field(o, "HTTP status", l->http_status > 0 ? num : "-", false);
    snprintf(num, sizeof num, "%d", l->attempts);
    field(o, "Attempts", num, false);
    field(o, "Key", l->key ? l->key : "(none)", false);
    snprintf(num, sizeof num, "%d/%" PRId64, l->orig_partition, l->orig_offset);
    field(o, "Original topic", l->orig_topic, false);
    field(o, "Original partition/offset", num, false);
    utc_time(when, sizeof when, l->timestamp_ms);
    field(o, "Dead-lettered at", when, false);
    field(o, "Message", l->message, true);
    if (replay) {
        char line[STORE_OWNER_MAX + 128];
        utc_time(when, sizeof when, replay->last_at_ms);
        snprintf(line, sizeof line, "%" PRId64 " time(s), last at %s by %s", replay->count, when,
                 replay->by);
        field(o, "Replayed", line, true);
    } else {
        field(o, "Replayed", "never", false);
    }
    fputs("</dl>\n<h2>Headers</h2><table id=\"headers\"><thead><tr><th>Name</th><th>Value</th>"
          "</tr></thead><tbody>\n", o);
    for (size_t i = 0; i < l->header_count; i++) {
        fputs("<tr><td><code>", o);
        esc(o, l->headers[i].name);
        fputs("</code></td><td><code>", o);
        if (l->headers[i].value)
            esc_masked(o, l->headers[i].value, l->headers[i].value_len);
        else
            fputs("<span class=\"muted\">(null)</span>", o);
        fputs("</code></td></tr>\n", o);
    }
    fputs("</tbody></table>\n", o);
    record_section(o, l);
    if (allow_replay && !confirm) {
        fprintf(o, "<h2>Replay</h2><form id=\"replay\" method=\"get\" action=\"/letter\">"
                   "<input type=\"hidden\" name=\"p\" value=\"%d\"><input type=\"hidden\" "
                   "name=\"o\" value=\"%" PRId64 "\"><input type=\"hidden\" name=\"confirm\" "
                   "value=\"1\"><button type=\"submit\">Replay&hellip;</button></form>\n",
                l->partition, l->offset);
    } else if (allow_replay) {
        fputs("<h2>Replay</h2><form id=\"replay\" class=\"box\" method=\"post\" "
              "action=\"/replay\"><p>Send this record back to <code>", o);
        esc(o, l->orig_topic);
        fprintf(o, "</code> with its original key, value and headers? A letter is replayed once; "
                   "tick <i>force</i> to send it again.</p>"
                   "<input type=\"hidden\" name=\"p\" value=\"%d\"><input type=\"hidden\" "
                   "name=\"o\" value=\"%" PRId64 "\"><input type=\"hidden\" name=\"confirm\" "
                   "value=\"yes\"><p><label>Replay token (STATUS_REPLAY_TOKEN) <input "
                   "type=\"password\" name=\"token\" autocomplete=\"off\" required></label></p>"
                   "<p><label><input type=\"checkbox\" name=\"force\" value=\"1\"> force "
                   "</label></p><p><button type=\"submit\">Replay now</button> "
                   "<a href=\"/letter?p=%d&amp;o=%" PRId64 "\">cancel</a></p></form>\n",
                l->partition, l->offset, l->partition, l->offset);
    }
    return page_close(o, &buf);
}

char *status_page_message(const char *title, const char *text, bool ok)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    if (!o)
        return NULL;
    page_open(o, title, 0);
    fputs("<header><h1>", o);
    esc(o, title);
    fprintf(o, "</h1><p><a href=\"/\">&larr; status</a></p></header><p id=\"result\" "
               "class=\"%s\">", ok ? "ok" : "bad");
    esc(o, text);
    fputs("</p>\n", o);
    return page_close(o, &buf);
}

cJSON *status_page_letters_json(const dlq_list_t *l)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && l && i < l->count; i++) {
        const dlq_letter_t *x = &l->items[i];
        cJSON *o = dlq_letter_json(x, false);
        if (!o) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, o);
        /* the operator's message may quote a document or an e-mail: masked as in the logs */
        size_t mlen = strlen(x->message);
        char *m = malloc(mlen * 2 + 16);
        cJSON_ReplaceItemInObjectCaseSensitive(
            o, "message",
            cJSON_CreateString(m ? status_page_mask_text(x->message, mlen, m, mlen * 2 + 16)
                                 : ""));
        free(m);
    }
    return a;
}
