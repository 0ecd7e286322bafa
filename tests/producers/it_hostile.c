/* The hostile-answer stand-in (issue 8): a small HTTP server in this test process that plays a
 * misbehaving Ploomes or Milvus, driven by a table of scenarios. Each scenario names the
 * expected exit code of `--once`, the keys published, a log line that must appear (and one
 * that must not); Ploomes scenarios then run a second pass against a good server
 * (ploomes-sim, same MongoDB database and topics) proving the cursor did not move wrongly:
 * a record stamped after the hostile data but before now is published, one stamped before the
 * cursor is not.
 *
 *   tie_hidden_precision  (item 3)  400 contacts print one stamp (3 digits) but compare by 7:
 *                                   all published once, through the tie group, exit 0
 *   tie_stuck             (item 3)  a server ignoring the filter: the tie group cannot move,
 *                                   the pass fails loudly (scan_stuck, exit 1)
 *   far_future            (item 14) a row stamped 9999: published once (a second hostile
 *                                   pass does not publish it again), the cursor stays before it
 *   poison_record         (item 16) a record nested 100,000 levels deep: skipped (unparsable)
 *                                   after smaller pages, the others published
 *   big_id_and_nul        (item 17) Id 2^53+1 skipped bad_id; a \u0000 inside a string
 *                                   skipped nul_character; the clean row published
 *   too_large             (item 15) a 9 MB record skipped too_large, the next one published
 *   milvus_not_object     (item 18) a row that is a string: skipped "not a JSON object", no
 *                                   answer_truncated warning for it
 *   milvus_endless_pages  (item 18) new ids on every pagina: MILVUS_MAX_PAGES ends the pass, 1
 *   milvus_short_of_total (item 10) pages capped at 300, pagina ignored, total 2,500: exit 1
 *
 * Stamps of the stand-in are UTC ("...Z"); its own little parser (not the producer's) orders
 * them, with 7 fractional digits kept where the scenario hides precision.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <microhttpd.h>
#include <pthread.h>

#include "prodtest.h"
#include "store.h"

#define KEY "HOSTILEKEY0123456789"
#define TOKEN "HOSTILETOKEN12345"

/* ---- the stand-in's data ------------------------------------------------------------------ */

typedef struct {
    char id[32];        /* as written in the JSON (may be past 2^53) */
    int64_t idn;        /* for ordering */
    int64_t ticks;      /* stored stamp, 100 ns since the epoch */
    char printed[48];   /* LastUpdateDate as served */
    char *extra;        /* raw JSON members appended to the record (owned), or NULL */
} srow_t;

typedef enum { SRV_PLOOMES = 0, SRV_MILVUS_NOT_OBJECT, SRV_MILVUS_ENDLESS, SRV_MILVUS_CAPPED } srv_kind_t;

typedef struct {
    srv_kind_t kind;
    srow_t *rows;
    size_t n;
    bool ignore_filter; /* answer the first $top rows whatever the filter */
    pthread_mutex_t mu;
    int requests;
} server_t;

static server_t g_srv;

/* Days since 1970-01-01 (the stand-in's own copy of the civil-date formula). */
static int64_t sdays(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool num(const char *s, int n, int64_t *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,7}]Z" -> ticks; false otherwise. *end gets the first byte after. */
static bool parse_ticks(const char *s, int64_t *ticks, const char **end)
{
    int64_t y, mo, d, h, mi, se;
    if (!num(s, 4, &y) || s[4] != '-' || !num(s + 5, 2, &mo) || s[7] != '-' ||
        !num(s + 8, 2, &d) || s[10] != 'T' || !num(s + 11, 2, &h) || s[13] != ':' ||
        !num(s + 14, 2, &mi) || s[16] != ':' || !num(s + 17, 2, &se))
        return false;
    const char *p = s + 19;
    int64_t frac = 0;
    int nd = 0;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (nd < 7) {
                frac = frac * 10 + (*p - '0');
                nd++;
            }
            p++;
        }
    }
    for (; nd < 7; nd++)
        frac *= 10;
    if (*p != 'Z')
        return false;
    *ticks = ((sdays(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) * 10000000) + frac;
    *end = p + 1;
    return true;
}

static void add_row(int64_t idn, const char *idtext, const char *stored, int printed_digits,
                    const char *extra)
{
    srow_t *r = &g_srv.rows[g_srv.n++];
    memset(r, 0, sizeof *r);
    r->idn = idn;
    if (idtext)
        snprintf(r->id, sizeof r->id, "%s", idtext);
    else
        snprintf(r->id, sizeof r->id, "%lld", (long long)idn);
    const char *end = NULL;
    assert_true(parse_ticks(stored, &r->ticks, &end));
    /* printed: the stored text cut to `printed_digits` fractional digits */
    const char *dot = strchr(stored, '.');
    if (dot == NULL || printed_digits < 0) {
        snprintf(r->printed, sizeof r->printed, "%s", stored);
    } else {
        int keep = (int)(dot - stored) + (printed_digits > 0 ? 1 + printed_digits : 0);
        snprintf(r->printed, sizeof r->printed, "%.*sZ", keep, stored);
    }
    r->extra = extra ? strdup(extra) : NULL;
}

static void data_reset(size_t cap)
{
    for (size_t i = 0; i < g_srv.n; i++)
        free(g_srv.rows[i].extra);
    free(g_srv.rows);
    g_srv.rows = cap ? calloc(cap, sizeof *g_srv.rows) : NULL;
    g_srv.n = 0;
    g_srv.ignore_filter = false;
    g_srv.requests = 0;
}

/* ---- the HTTP side -------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > nc)
            nc *= 2;
        b->buf = realloc(b->buf, nc);
        b->cap = nc;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static int cmp_stored(const void *a, const void *b)
{
    const srow_t *x = *(srow_t *const *)a, *y = *(srow_t *const *)b;
    if (x->ticks != y->ticks)
        return x->ticks < y->ticks ? -1 : 1;
    return x->idn < y->idn ? -1 : x->idn > y->idn;
}

static int cmp_id(const void *a, const void *b)
{
    const srow_t *x = *(srow_t *const *)a, *y = *(srow_t *const *)b;
    return x->idn < y->idn ? -1 : x->idn > y->idn;
}

/* Reads the stamp after `marker` in f; false when absent. */
static bool stamp_after(const char *f, const char *marker, int64_t *ticks)
{
    const char *p = strstr(f, marker);
    const char *end;
    return p != NULL && parse_ticks(p + strlen(marker), ticks, &end);
}

static bool id_after(const char *f, int64_t *id)
{
    const char *p = strstr(f, "Id gt ");
    if (p == NULL)
        return false;
    char *end = NULL;
    *id = strtoll(p + 6, &end, 10);
    return end != p + 6;
}

/* Ploomes /Contacts: the two filter shapes the producer sends, $orderby, $top, $select. */
static char *serve_ploomes(struct MHD_Connection *c, int *status)
{
    const char *filter = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "$filter");
    const char *top_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "$top");
    const char *select = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "$select");
    long top = top_s ? strtol(top_s, NULL, 10) : 300;
    int64_t c1 = 0, c2 = 0, gid = 0;
    bool tie = filter && strstr(filter, "LastUpdateDate ge ") != NULL;
    if (!filter || top < 1 || top > 300 || !id_after(filter, &gid) ||
        (tie ? !(stamp_after(filter, "LastUpdateDate ge ", &c1) &&
                 stamp_after(filter, "LastUpdateDate lt ", &c2))
             : !stamp_after(filter, "LastUpdateDate gt ", &c1))) {
        *status = 400;
        return strdup("{\"error\":{\"message\":\"stand-in: unexpected query\"}}");
    }
    srow_t **sel = calloc(g_srv.n + 1, sizeof *sel);
    size_t k = 0;
    for (size_t i = 0; i < g_srv.n; i++) {
        srow_t *r = &g_srv.rows[i];
        bool match = g_srv.ignore_filter ||
                     (tie ? r->ticks >= c1 && r->ticks < c2 && r->idn > gid
                          : r->ticks > c1 || (r->ticks == c1 && r->idn > gid));
        if (match)
            sel[k++] = r;
    }
    qsort(sel, k, sizeof *sel, tie && !g_srv.ignore_filter ? cmp_id : cmp_stored);
    sbuf_t b = {0};
    sb_str(&b, "{\"value\":[");
    for (size_t i = 0; i < k && i < (size_t)top; i++) {
        srow_t *r = sel[i];
        if (i)
            sb_str(&b, ",");
        sb_str(&b, "{\"Id\":");
        sb_str(&b, r->id);
        sb_str(&b, ",\"LastUpdateDate\":\"");
        sb_str(&b, r->printed);
        sb_str(&b, "\"");
        if (!select) {
            char name[64];
            snprintf(name, sizeof name, ",\"Name\":\"Contact %s\"", r->id);
            sb_str(&b, name);
            if (r->extra) {
                sb_str(&b, ",");
                sb_str(&b, r->extra);
            }
        }
        sb_str(&b, "}");
    }
    sb_str(&b, "]}");
    free(sel);
    *status = 200;
    return b.buf;
}

static char *serve_milvus(struct MHD_Connection *c, int *status)
{
    const char *pag_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "pagina");
    const char *tot_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "total_registros");
    long pagina = pag_s ? strtol(pag_s, NULL, 10) : 1;
    long per = tot_s ? strtol(tot_s, NULL, 10) : 1000;
    sbuf_t b = {0};
    char item[160];
    *status = 200;
    sb_str(&b, "{\"lista\":[");
    long total = 0;
    if (g_srv.kind == SRV_MILVUS_NOT_OBJECT) {
        total = 3;
        if (pagina == 1)
            sb_str(&b, "\"not an object\",{\"id\":1,\"razao_social\":\"A\"},"
                       "{\"id\":2,\"razao_social\":\"B\"}");
    } else if (g_srv.kind == SRV_MILVUS_ENDLESS) {
        total = 1000000;
        for (long i = 0; i < per; i++) {
            snprintf(item, sizeof item, "%s{\"id\":%ld,\"razao_social\":\"X\"}", i ? "," : "",
                     (pagina - 1) * per + i + 1);
            sb_str(&b, item);
        }
    } else { /* capped at 300 rows, pagina ignored */
        total = 2500;
        for (long i = 0; i < 300 && i < per; i++) {
            snprintf(item, sizeof item, "%s{\"id\":%ld,\"razao_social\":\"X\"}", i ? "," : "",
                     i + 1);
            sb_str(&b, item);
        }
    }
    snprintf(item, sizeof item, "],\"meta\":{\"paginate\":{\"total\":%ld}}}", total);
    sb_str(&b, item);
    return b.buf;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_len, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload;
    (void)upload_len;
    if (*con_cls == NULL) {
        *con_cls = c;
        return MHD_YES;
    }
    int status = 404;
    char *body = NULL;
    pthread_mutex_lock(&g_srv.mu);
    g_srv.requests++;
    if (strcmp(method, "GET") == 0 && g_srv.kind == SRV_PLOOMES && strcmp(url, "/Contacts") == 0)
        body = serve_ploomes(c, &status);
    else if (strcmp(method, "GET") == 0 && g_srv.kind != SRV_PLOOMES &&
             strcmp(url, "/api/cliente/busca") == 0)
        body = serve_milvus(c, &status);
    pthread_mutex_unlock(&g_srv.mu);
    if (body == NULL)
        body = strdup("{\"message\":\"stand-in: not here\"}");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- scenarios ---------------------------------------------------------------------------- */

/* 400 contacts printing .123 (stored .1230001 ... in an order unrelated to Id), then 2 later. */
static void data_tie(void)
{
    data_reset(402);
    for (int i = 1; i <= 400; i++) {
        char stored[48];
        /* stored order: a permutation of the ids (7 digits stored, 3 printed) */
        snprintf(stored, sizeof stored, "2025-01-10T13:00:00.123%04dZ", (i * 137) % 400 + 1);
        add_row(i, NULL, stored, 3, NULL);
    }
    add_row(401, NULL, "2025-01-10T13:00:01.5000000Z", 3, NULL);
    add_row(402, NULL, "2025-01-10T13:00:02.5000000Z", 3, NULL);
}

/* 400 contacts printing .123, stored in Id order, and a server that ignores the filter. */
static void data_tie_stuck(void)
{
    data_reset(402);
    for (int i = 1; i <= 400; i++) {
        char stored[48];
        snprintf(stored, sizeof stored, "2025-01-10T13:00:00.123%04dZ", i);
        add_row(i, NULL, stored, 3, NULL);
    }
    add_row(401, NULL, "2025-01-10T13:00:01.5000000Z", 3, NULL);
    add_row(402, NULL, "2025-01-10T13:00:02.5000000Z", 3, NULL);
    g_srv.ignore_filter = true;
}

static void data_future(void)
{
    data_reset(3);
    add_row(1, NULL, "2025-01-10T13:00:00.5Z", -1, NULL);
    add_row(2, NULL, "2025-01-10T13:00:01.5Z", -1, NULL);
    add_row(3, NULL, "9999-12-31T23:59:59Z", -1, NULL);
}

static void data_poison(void)
{
    data_reset(5);
    size_t depth = 100000;
    char *deep = malloc(depth * 2 + 16);
    size_t p = 0;
    memcpy(deep + p, "\"Deep\":", 7);
    p += 7;
    memset(deep + p, '[', depth);
    p += depth;
    memset(deep + p, ']', depth);
    p += depth;
    deep[p] = '\0';
    for (int i = 1; i <= 5; i++) {
        char stored[48];
        snprintf(stored, sizeof stored, "2025-01-10T13:00:0%d.5Z", i);
        add_row(i, NULL, stored, -1, i == 3 ? deep : NULL);
    }
    free(deep);
}

static void data_big_id_nul(void)
{
    data_reset(3);
    add_row(4, NULL, "2025-01-10T13:00:01.5Z", -1, "\"Note\":\"ab\\u0000cd\"");
    add_row(5, NULL, "2025-01-10T13:00:02.5Z", -1, NULL);
    add_row(9007199254740993LL, "9007199254740993", "2025-01-10T13:00:03.5Z", -1, NULL);
}

static void data_too_large(void)
{
    data_reset(3);
    size_t big = 9u * 1024u * 1024u;
    char *extra = malloc(big + 32);
    memcpy(extra, "\"Note\":\"", 8);
    memset(extra + 8, 'x', big);
    memcpy(extra + 8 + big, "\"", 2);
    add_row(1, NULL, "2025-01-10T13:00:01.5Z", -1, NULL);
    add_row(2, NULL, "2025-01-10T13:00:02.5Z", -1, extra);
    add_row(3, NULL, "2025-01-10T13:00:03.5Z", -1, NULL);
    free(extra);
}

static void data_none(void)
{
    data_reset(0);
}

typedef struct {
    const char *name;
    srv_kind_t kind;
    void (*data)(void);
    const char *extra_env;  /* one more NAME=value, or NULL */
    int exit_code;
    const char *published;  /* expected keys, comma-separated, in ascending order */
    const char *log_line;   /* must appear in the log */
    const char *absent;     /* must not appear (NULL: no check) */
    bool twice;             /* run the hostile pass twice: the second publishes nothing */
    /* second pass (Ploomes): ploomes-sim seeded with these contacts (Id:stamp), and the keys
     * that pass must publish */
    const char *good_seed;
    const char *good_published;
} scenario_t;

/* Good-server contacts: 900 is stamped before every hostile row (behind the cursor), 901
 * after them and before now. */
#define GOOD_SEED "900:2025-01-01T00:00:00.000Z,901:2025-06-01T00:00:00.000Z"

static const scenario_t SCENARIOS[] = {
    {"tie_hidden_precision", SRV_PLOOMES, data_tie, NULL, 0, "1..402",
     "event=tie_group_done entity=contact stamp=2025-01-10T13:00:00.123Z rows=400", NULL, false,
     GOOD_SEED, "901"},
    {"tie_stuck", SRV_PLOOMES, data_tie_stuck, NULL, 1, "1..300",
     "event=scan_stuck source=ploomes entity=contact", NULL, false, GOOD_SEED, "401,402,901"},
    {"far_future", SRV_PLOOMES, data_future, NULL, 0, "1,2,3",
     "event=future_stamp source=ploomes entity=contact id=3 stamp=9999-12-31T23:59:59Z", NULL,
     true, GOOD_SEED, "901"},
    {"poison_record", SRV_PLOOMES, data_poison, NULL, 0, "1,2,4,5",
     "event=record_skipped source=ploomes entity=contact id=3 reason=unparsable", NULL, false,
     GOOD_SEED, "901"},
    {"big_id_and_nul", SRV_PLOOMES, data_big_id_nul, NULL, 0, "5",
     "event=record_skipped source=ploomes entity=contact id=4 reason=nul_character "
     "detail=$.Note",
     "key=9007199254740992", false, GOOD_SEED, "901"},
    {"too_large", SRV_PLOOMES, data_too_large, NULL, 0, "1,3",
     "event=record_skipped source=ploomes entity=contact id=2 reason=too_large detail=\"size=",
     NULL, false, GOOD_SEED, "901"},
    {"milvus_not_object", SRV_MILVUS_NOT_OBJECT, data_none, NULL, 0, "1,2",
     "event=record_skipped source=milvus entity=client id=#0 reason=bad_id detail=\"row is a "
     "string, not a JSON object\"",
     "event=answer_truncated", false, NULL, NULL},
    {"milvus_endless_pages", SRV_MILVUS_ENDLESS, data_none, "MILVUS_MAX_PAGES=3", 1, "1..3000",
     "event=scan_stuck source=milvus entity=client error=\"more than MILVUS_MAX_PAGES=3 pages",
     NULL, false, NULL, NULL},
    {"milvus_short_of_total", SRV_MILVUS_CAPPED, data_none, NULL, 1, "1..300",
     "event=scan_done entity=client outcome=failed end=short_of_total", NULL, false, NULL, NULL},
};

/* Expands "1..3,7" into a sorted list of keys. */
static size_t expand_keys(const char *spec, char ***out)
{
    size_t n = 0, cap = 16;
    char **keys = malloc(cap * sizeof *keys);
    const char *p = spec;
    while (p && *p) {
        char *end = NULL;
        long long a = strtoll(p, &end, 10), b = a;
        if (end[0] == '.' && end[1] == '.')
            b = strtoll(end + 2, &end, 10);
        for (long long v = a; v <= b; v++) {
            if (n == cap) {
                cap *= 2;
                keys = realloc(keys, cap * sizeof *keys);
            }
            char buf[32];
            snprintf(buf, sizeof buf, "%lld", v);
            keys[n++] = strdup(buf);
        }
        p = *end == ',' ? end + 1 : NULL;
    }
    *out = keys;
    return n;
}

static int cmp_key(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t lx = strlen(x), ly = strlen(y);
    return lx != ly ? (lx < ly ? -1 : 1) : strcmp(x, y);
}

/* The messages from index `from` on carry exactly the keys of `spec` (each once). */
static void check_keys(const char *scenario, const pt_msgs_t *m, size_t from, const char *spec)
{
    char **want = NULL;
    size_t nw = expand_keys(spec, &want);
    size_t ng = m->n - from;
    char **got = calloc(ng + 1, sizeof *got);
    for (size_t i = 0; i < ng; i++)
        got[i] = m->msgs[from + i].key;
    qsort(got, ng, sizeof *got, cmp_key);
    bool same = ng == nw;
    for (size_t i = 0; same && i < nw; i++)
        same = strcmp(got[i], want[i]) == 0;
    if (!same) {
        fprintf(stderr, "%s: published %zu keys:", scenario, ng);
        for (size_t i = 0; i < ng && i < 20; i++)
            fprintf(stderr, " %s", got[i]);
        fprintf(stderr, "%s; expected %s\n", ng > 20 ? " ..." : "", spec);
    }
    for (size_t i = 0; i < nw; i++)
        free(want[i]);
    free(want);
    free(got);
    if (!same)
        fail_msg("%s: published keys differ", scenario);
}

static struct MHD_Daemon *start_standin(int *port)
{
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                         handler, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                         MHD_OPTION_END);
    assert_non_null(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    *port = (int)info->port;
    return d;
}

/* Seeds ploomes-sim with "Id:stamp,..." contacts. */
static void seed_good(const simproc *sim, const char *spec)
{
    cJSON *arr = cJSON_CreateArray();
    char *copy = strdup(spec);
    for (char *item = copy; item && *item;) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        char *colon = strchr(item, ':');
        assert_non_null(colon);
        *colon = '\0';
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "Id", (double)strtoll(item, NULL, 10));
        cJSON_AddStringToObject(r, "Name", "Good contact");
        cJSON_AddStringToObject(r, "LastUpdateDate", colon + 1);
        cJSON_AddItemToArray(arr, r);
        item = comma ? comma + 1 : NULL;
    }
    free(copy);
    assert_int_equal(pt_seed_set(sim, "Contacts", arr), 0);
}

static void run_scenario(const scenario_t *sc, int port, simproc *sim)
{
    int64_t t0 = testenv_now_ms();
    pt_iso_t iso;
    pt_isolate(&iso, "itho");
    const char *prefix = iso.prefix, *uri = iso.uri;
    char log[256];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(log, sizeof log, "%s/%s%s.log", tmp, prefix, sc->name);

    pthread_mutex_lock(&g_srv.mu);
    g_srv.kind = sc->kind;
    sc->data();
    pthread_mutex_unlock(&g_srv.mu);

    bool ploomes = sc->kind == SRV_PLOOMES;
    char e_uri[600], e_prefix[128], e_base[200];
    snprintf(e_uri, sizeof e_uri, "MONGODB_URI=%s", uri);
    snprintf(e_prefix, sizeof e_prefix, "TOPIC_PREFIX=%s", prefix);
    if (ploomes)
        snprintf(e_base, sizeof e_base, "PLOOMES_BASE_URL=http://127.0.0.1:%d", port);
    else
        snprintf(e_base, sizeof e_base, "MILVUS_BASE_URL=http://127.0.0.1:%d/api", port);
    const char *env[24] = {e_uri, e_prefix, e_base,
                           ploomes ? "PLOOMES_USER_KEY=" KEY : "MILVUS_TOKEN=" TOKEN,
                           "TOPIC_PARTITIONS=1", "PLOOMES_RATE_PER_MIN=100000",
                           "MILVUS_RATE_PER_MIN=100000", "PLOOMES_ENTITIES=contacts",
                           "SYNC_SINCE=2024-02-24T00:00:00Z", "RETRY_BASE_MS=20",
                           "RETRY_MAX_MS=100", "MAX_ATTEMPTS=2", "LOG_LEVEL=info",
                           "METRICS_PORT=0", NULL};
    size_t ne = 0;
    while (env[ne])
        ne++;
    if (sc->extra_env)
        env[ne++] = sc->extra_env;
    env[ne] = NULL;
    const char *const once[] = {"--once", NULL};
    const char *binary = ploomes ? "ploomes-producer" : "milvus-producer";
    int rc = pt_run(binary, once, env, log, 120000);
    if (rc != sc->exit_code) {
        pt_dump_log(log, 3000);
        fail_msg("%s: exit %d, expected %d", sc->name, rc, sc->exit_code);
    }
    char topic[256];
    snprintf(topic, sizeof topic, "%s%s", prefix, ploomes ? "ploomes.contacts" : "milvus.clients");
    pt_msgs_t m;
    assert_int_equal(pt_consume(topic, &m, 60000), 0);
    check_keys(sc->name, &m, 0, sc->published);
    for (size_t i = 0; i < m.n && strcmp(sc->name, "big_id_and_nul") == 0; i++)
        assert_null(strstr(m.msgs[i].value, "e+15"));
    size_t after_first = m.n;
    pt_msgs_free(&m);

    if (sc->twice) {
        rc = pt_run(binary, once, env, log, 120000);
        assert_int_equal(rc, sc->exit_code);
        assert_int_equal(pt_consume(topic, &m, 60000), 0);
        if (m.n != after_first)
            fail_msg("%s: the second hostile pass published %zu more", sc->name,
                     m.n - after_first);
        pt_msgs_free(&m);
    }

    if (sc->good_seed != NULL) {
        /* the second pass, against a good server: the cursor moved neither too far nor back */
        assert_int_equal(simproc_reset(sim), 0);
        assert_int_equal(simproc_faults(sim, "{\"rate_limit_per_min\":0}"), 0);
        seed_good(sim, sc->good_seed);
        if (sc->kind == SRV_PLOOMES && strcmp(sc->name, "tie_stuck") == 0) {
            /* the rows the stuck pass could not reach are still ahead of its cursor */
            cJSON *arr = cJSON_CreateArray();
            for (int id = 401; id <= 402; id++) {
                cJSON *r = cJSON_CreateObject();
                cJSON_AddNumberToObject(r, "Id", id);
                cJSON_AddStringToObject(r, "Name", "Later");
                cJSON_AddStringToObject(r, "LastUpdateDate",
                                        id == 401 ? "2025-01-10T13:00:01.500Z"
                                                  : "2025-01-10T13:00:02.500Z");
                cJSON_AddItemToArray(arr, r);
            }
            assert_int_equal(pt_seed_set(sim, "Contacts", arr), 0);
        }
        char g_base[200];
        snprintf(g_base, sizeof g_base, "PLOOMES_BASE_URL=%s", simproc_api_url(sim));
        for (size_t i = 0; env[i]; i++)
            if (env[i] == e_base)
                env[i] = g_base;
        rc = pt_run(binary, once, env, log, 120000);
        if (rc != 0) {
            pt_dump_log(log, 3000);
            fail_msg("%s: the good pass exited %d", sc->name, rc);
        }
        assert_int_equal(pt_consume(topic, &m, 60000), 0);
        check_keys(sc->name, &m, after_first, sc->good_published);
        pt_msgs_free(&m);
    }
    /* last, so that old code fails on what it did (keys, cursor) before what it logged */
    if (pt_log_count(log, sc->log_line) < 1) {
        pt_dump_log(log, 3000);
        fail_msg("%s: no log line with: %s", sc->name, sc->log_line);
    }
    if (sc->absent && pt_log_count(log, sc->absent) > 0) {
        pt_dump_log(log, 3000);
        fail_msg("%s: the log has: %s", sc->name, sc->absent);
    }
    fprintf(stderr, "%s: ok (%lld ms)\n", sc->name, (long long)(testenv_now_ms() - t0));
}

static void hostile_answers(void **state)
{
    (void)state;
    pthread_mutex_init(&g_srv.mu, NULL);
    int port = 0;
    struct MHD_Daemon *d = start_standin(&port);
    char err[256];
    simproc *sim = simproc_start_ploomes(KEY, err, sizeof err);
    if (!sim)
        fail_msg("%s", err);
    const char *only = getenv("HOSTILE_ONLY"); /* run one scenario by name (debugging) */
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++)
        if (only == NULL || strcmp(only, SCENARIOS[i].name) == 0)
            run_scenario(&SCENARIOS[i], port, sim);
    MHD_stop_daemon(d);
    data_reset(0);
    if (simproc_stop(sim) != 0)
        fprintf(stderr, "ploomes-sim did not stop cleanly on SIGTERM\n");
    pthread_mutex_destroy(&g_srv.mu);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hostile_answers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    store_global_cleanup();
    return rc;
}
