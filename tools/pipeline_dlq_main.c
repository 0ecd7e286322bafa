/* pipeline-dlq: inspect, count and replay the dead-letter topic (SPEC §7). The reading and the
 * replay are in dlq.c; this file is the command line and the output (a table for people,
 * --json for scripts). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "clock.h"
#include "dlq.h"
#include "kafka_dlq.h"
#include "store.h"

#define READ_TIMEOUT_MS 15000

static const app_spec_t SPEC = {
    .name = "pipeline-dlq",
    .summary = "Inspects, counts and replays the dead-letter topic (<TOPIC_PREFIX>pipeline.dlq). "
               "Reading never joins a consumer group or commits anything. A replay sends a "
               "letter's original key, value and headers back to its original topic, marked "
               "x-dlq.replayed-from, and is recorded in MongoDB so a letter is never replayed "
               "twice unless --force is given.",
    .usage = "list|show|stats|replay [options]",
    .options_help =
        "Commands:\n"
        "  list                 one line per letter: partition/offset, age, worker, error class,\n"
        "                       HTTP status, key, message\n"
        "  show P/OFFSET        every header and the pretty-printed record of one letter\n"
        "  stats                counts by worker and error class\n"
        "  replay               replays the selected letters (a selection is required: a filter\n"
        "                       below, or --all)\n"
        "Selection (list, stats, replay):\n"
        "  --worker NAME        e.g. tasks-to-milvus\n"
        "  --error-class CLASS  e.g. HttpStatus503, InvalidDocument, AmbiguousCreate\n"
        "  --partition P        one partition of the DLQ topic\n"
        "  --from OFFSET        first offset (inclusive; with --partition for one partition)\n"
        "  --to OFFSET          last offset (inclusive)\n"
        "  --since AGE|TIME     dead-lettered within AGE (30m, 12h, 7d) or since an RFC 3339 TIME\n"
        "  --limit N            only the N newest letters\n"
        "  --all                (replay) every letter\n"
        "Output and replay:\n"
        "  --json               JSON instead of a table\n"
        "  --dry-run            (replay) say what would be replayed; send and record nothing\n"
        "  --force              (replay) replay letters that were replayed before\n",
    .needs = CONFIG_NEED_KAFKA | CONFIG_NEED_MONGO,
    .flags = APP_ALLOW_ARGS,
};

typedef struct {
    const char *command;
    const char *show_ref;
    dlq_filter_t filter;
    bool json, dry_run, force, all, selected;
} opts_t;

static int usage(const char *fmt, const char *what)
{
    fprintf(stderr, "pipeline-dlq: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "; try --help\n");
    return CONFIG_EXIT_USAGE;
}

static bool parse_i64(const char *s, int64_t min, int64_t *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!end || end == s || *end != '\0' || v < min)
        return false;
    *out = (int64_t)v;
    return true;
}

/* "30m", "12h", "7d", "90s" → now - age; or an RFC 3339 time. */
static bool parse_since(const char *s, int64_t *out_ms)
{
    size_t n = strlen(s);
    if (n >= 2) {
        char unit = s[n - 1];
        int64_t mult = unit == 's' ? 1000 : unit == 'm' ? 60000 : unit == 'h' ? 3600000
                     : unit == 'd' ? 86400000 : 0;
        char num[32];
        if (mult && n - 1 < sizeof num) {
            memcpy(num, s, n - 1);
            num[n - 1] = '\0';
            int64_t v;
            if (parse_i64(num, 0, &v)) {
                *out_ms = clock_wall_ms() - v * mult;
                return true;
            }
        }
    }
    return config_parse_rfc3339(s, out_ms) == 0;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->filter = dlq_filter_all();
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int64_t x;
        if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = true;
        } else if (strcmp(a, "--force") == 0) {
            o->force = true;
        } else if (strcmp(a, "--all") == 0) {
            o->all = true;
        } else if (a[0] == '-' && a[1] == '-' && !v) {
            return usage("%s needs a value (or is unknown)", a);
        } else if (strcmp(a, "--worker") == 0) {
            o->filter.worker = v, i++, o->selected = true;
        } else if (strcmp(a, "--error-class") == 0) {
            o->filter.error_class = v, i++, o->selected = true;
        } else if (strcmp(a, "--partition") == 0) {
            if (!parse_i64(v, 0, &x) || x > INT32_MAX)
                return usage("--partition %s is not a partition number", v);
            o->filter.partition = (int32_t)x, i++, o->selected = true;
        } else if (strcmp(a, "--from") == 0 || strcmp(a, "--to") == 0) {
            if (!parse_i64(v, 0, &x))
                return usage("offset %s is not a number >= 0", v);
            *(a[2] == 'f' ? &o->filter.from_offset : &o->filter.to_offset) = x;
            i++, o->selected = true;
        } else if (strcmp(a, "--since") == 0) {
            if (!parse_since(v, &o->filter.since_ms))
                return usage("--since %s is neither an age (30m, 12h, 7d) nor an RFC 3339 time",
                             v);
            i++, o->selected = true;
        } else if (strcmp(a, "--limit") == 0) {
            if (!parse_i64(v, 1, &x))
                return usage("--limit %s is not a number >= 1", v);
            o->filter.limit = (size_t)x, i++, o->selected = true;
        } else if (a[0] == '-') {
            return usage("unknown option %s", a);
        } else if (!o->command) {
            o->command = a;
        } else if (!o->show_ref && strcmp(o->command, "show") == 0) {
            o->show_ref = a;
        } else {
            return usage("unexpected argument %s", a);
        }
    }
    if (!o->command)
        return usage("%s", "a command is needed (list, show, stats or replay)");
    return 0;
}

static void fmt_age(char *buf, size_t size, int64_t ts_ms)
{
    if (ts_ms < 0) {
        snprintf(buf, size, "?");
        return;
    }
    int64_t s = (clock_wall_ms() - ts_ms) / 1000;
    if (s < 0)
        s = 0;
    if (s < 120)
        snprintf(buf, size, "%" PRId64 "s", s);
    else if (s < 7200)
        snprintf(buf, size, "%" PRId64 "m", s / 60);
    else if (s < 172800)
        snprintf(buf, size, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, size, "%" PRId64 "d", s / 86400);
}

/* Prints at most `width` characters of s on one line (control characters as spaces). */
static void put_cell(const char *s, size_t width)
{
    size_t n = 0;
    for (; s && *s && n < width; s++, n++)
        putchar((unsigned char)*s < 0x20 ? ' ' : *s);
    if (s && *s)
        fputs("...", stdout);
}

static int print_json(cJSON *j)
{
    char *text = j ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        fprintf(stderr, "pipeline-dlq: out of memory\n");
        return CONFIG_EXIT_FATAL;
    }
    puts(text);
    free(text);
    return CONFIG_EXIT_OK;
}

static int cmd_list(const dlq_list_t *l, bool json)
{
    if (json) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; a && i < l->count; i++)
            cJSON_AddItemToArray(a, dlq_letter_json(&l->items[i], false));
        return print_json(a);
    }
    printf("%-12s %-5s %-24s %-22s %-6s %-14s %s\n", "PART/OFFSET", "AGE", "WORKER",
           "ERROR CLASS", "HTTP", "KEY", "MESSAGE");
    for (size_t i = 0; i < l->count; i++) {
        const dlq_letter_t *x = &l->items[i];
        char ref[40], age[16];
        snprintf(ref, sizeof ref, "%d/%" PRId64, x->partition, x->offset);
        fmt_age(age, sizeof age, x->timestamp_ms);
        printf("%-12s %-5s %-24s %-22s %-6ld %-14s ", ref, age, x->worker, x->error_class,
               x->http_status, x->key ? x->key : "");
        put_cell(x->message, 80);
        putchar('\n');
    }
    printf("%zu letter(s) shown; %" PRId64 " in %s\n", l->count, l->total, l->topic);
    return CONFIG_EXIT_OK;
}

typedef struct {
    char worker[128], error_class[64];
    size_t count;
} stat_row_t;

static int cmd_stats(const dlq_list_t *l, bool json)
{
    stat_row_t *rows = calloc(l->count ? l->count : 1, sizeof *rows);
    size_t n = 0;
    if (!rows)
        return CONFIG_EXIT_FATAL;
    for (size_t i = 0; i < l->count; i++) {
        const dlq_letter_t *x = &l->items[i];
        size_t k = 0;
        while (k < n && (strcmp(rows[k].worker, x->worker) != 0 ||
                         strcmp(rows[k].error_class, x->error_class) != 0))
            k++;
        if (k == n) {
            snprintf(rows[k].worker, sizeof rows[k].worker, "%s", x->worker);
            snprintf(rows[k].error_class, sizeof rows[k].error_class, "%s", x->error_class);
            n++;
        }
        rows[k].count++;
    }
    int rc = CONFIG_EXIT_OK;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "topic", l->topic);
        cJSON_AddNumberToObject(o, "total", (double)l->total);
        cJSON_AddNumberToObject(o, "selected", (double)l->count);
        cJSON *a = cJSON_AddArrayToObject(o, "by_worker_and_class");
        for (size_t k = 0; a && k < n; k++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "worker", rows[k].worker);
            cJSON_AddStringToObject(r, "error_class", rows[k].error_class);
            cJSON_AddNumberToObject(r, "count", (double)rows[k].count);
            cJSON_AddItemToArray(a, r);
        }
        rc = print_json(o);
    } else {
        printf("%-28s %-24s %s\n", "WORKER", "ERROR CLASS", "LETTERS");
        for (size_t k = 0; k < n; k++)
            printf("%-28s %-24s %zu\n", rows[k].worker, rows[k].error_class, rows[k].count);
        printf("%zu selected; %" PRId64 " in %s\n", l->count, l->total, l->topic);
    }
    free(rows);
    return rc;
}

static int cmd_show(const dlq_list_t *l, bool json)
{
    if (l->count == 0) {
        fprintf(stderr, "pipeline-dlq: no such letter in %s\n", l->topic);
        return CONFIG_EXIT_FATAL;
    }
    const dlq_letter_t *x = &l->items[0];
    if (json)
        return print_json(dlq_letter_json(x, true));
    printf("letter %d/%" PRId64 " of %s\n", x->partition, x->offset, l->topic);
    printf("key: %s\nheaders:\n", x->key ? x->key : "(none)");
    for (size_t i = 0; i < x->header_count; i++) {
        printf("  %s: ", x->headers[i].name);
        put_cell(x->headers[i].value ? x->headers[i].value : "(null)", 2048);
        putchar('\n');
    }
    cJSON *v = x->value ? cJSON_ParseWithLength(x->value, x->value_len) : NULL;
    char *pretty = v ? cJSON_Print(v) : NULL;
    printf("record:\n%s\n", pretty ? pretty : (x->value ? x->value : "(tombstone)"));
    free(pretty);
    cJSON_Delete(v);
    return CONFIG_EXIT_OK;
}

static int cmd_replay(const config_t *cfg, const kafka_settings_t *ks, const dlq_list_t *l,
                      const opts_t *o)
{
    char err[1024];
    store_t *st = store_open(cfg->mongodb_uri, err, sizeof err);
    kafka_producer_t *p = o->dry_run ? NULL : kafka_producer_new(ks, SPEC.name, err, sizeof err);
    if (!st || (!o->dry_run && !p)) {
        fprintf(stderr, "pipeline-dlq: %s\n", err);
        store_close(st);
        kafka_producer_close(p, 1000, err, sizeof err);
        return CONFIG_EXIT_FATAL;
    }
    char by[STORE_OWNER_MAX], inst[96];
    const char *user = getenv("USER");
    snprintf(by, sizeof by, "%s@%s", user && *user ? user : "pipeline-dlq",
             kafka_dlq_instance_id(inst, sizeof inst));
    size_t counts[4] = {0};
    int rc = CONFIG_EXIT_OK;
    for (size_t i = 0; i < l->count; i++) {
        const dlq_letter_t *x = &l->items[i];
        dlq_replay_rc_t r = dlq_replay(p, st, l->topic, x, by, o->force, o->dry_run, err,
                                       sizeof err);
        static const char *const word[] = {"replayed", "already replayed (use --force)",
                                           "would replay"};
        if (r == DLQ_FAILED) {
            fprintf(stderr, "pipeline-dlq: %s\n", err);
            counts[3]++;
            rc = CONFIG_EXIT_FATAL;
            continue;
        }
        counts[r]++;
        printf("%d/%" PRId64 " %s -> %s: %s\n", x->partition, x->offset, x->worker,
               x->orig_topic, word[r]);
    }
    printf("%zu replayed, %zu already replayed, %zu would replay, %zu failed\n", counts[0],
           counts[1], counts[2], counts[3]);
    if (p && kafka_producer_close(p, 30000, err, sizeof err) != 0) {
        fprintf(stderr, "pipeline-dlq: %s\n", err);
        rc = CONFIG_EXIT_FATAL;
    }
    store_close(st);
    return rc;
}

/* "P/OFFSET" of `show` into the filter. */
static bool parse_ref(const char *ref, dlq_filter_t *f)
{
    const char *slash = ref ? strchr(ref, '/') : NULL;
    char part[16];
    int64_t p, off;
    if (!slash || (size_t)(slash - ref) >= sizeof part)
        return false;
    memcpy(part, ref, (size_t)(slash - ref));
    part[slash - ref] = '\0';
    if (!parse_i64(part, 0, &p) || p > INT32_MAX || !parse_i64(slash + 1, 0, &off))
        return false;
    *f = dlq_filter_all();
    f->partition = (int32_t)p;
    f->from_offset = f->to_offset = off;
    return true;
}

static int run(const config_t *cfg, const opts_t *o)
{
    dlq_filter_t f = o->filter;
    bool show = strcmp(o->command, "show") == 0;
    bool replay = strcmp(o->command, "replay") == 0;
    if (!show && !replay && strcmp(o->command, "list") != 0 && strcmp(o->command, "stats") != 0)
        return usage("unknown command %s (list, show, stats or replay)", o->command);
    if (show && !parse_ref(o->show_ref, &f))
        return usage("show needs PARTITION/OFFSET of a letter, e.g. 0/42 (got %s)",
                     o->show_ref ? o->show_ref : "nothing");
    if (replay && !o->selected && !o->all)
        return usage("%s", "replay needs a selection (--worker, --error-class, --from/--to, "
                           "--since, --limit) or --all");
    kafka_settings_t ks = kafka_settings_from_config(cfg);
    char err[1024];
    dlq_list_t l;
    int rc;
    if (dlq_read(&ks, cfg->topic_prefix, &f, READ_TIMEOUT_MS, &l, err, sizeof err) != 0) {
        fprintf(stderr, "pipeline-dlq: %s\n", err);
        rc = CONFIG_EXIT_FATAL;
    } else {
        rc = show ? cmd_show(&l, o->json)
           : replay ? cmd_replay(cfg, &ks, &l, o)
           : strcmp(o->command, "stats") == 0 ? cmd_stats(&l, o->json)
           : cmd_list(&l, o->json);
        dlq_list_free(&l);
    }
    return rc;
}

int main(int argc, char **argv)
{
    app_t app;
    if (!app_init(&app, &SPEC, argc, argv))
        return app.exit_code;
    opts_t o;
    int rc = parse_args(app.cli.argc_rest, app.cli.args, &o);
    if (rc == 0)
        rc = run(&app.cfg, &o);
    app_free(&app);
    store_global_cleanup();
    return rc;
}
