/* it_pipeline_dlq: pipeline-dlq against a real dead-letter topic written by the workers' DLQ
 * writer (kafka_dlq_send) on the real broker, with replays recorded in the real MongoDB:
 *   list / stats / show print what the letters carry (table and --json);
 *   replay --dry-run sends nothing; replay sends each selected letter once to its original
 *   topic with its original key, value and headers plus x-dlq.replayed-from and without the
 *   error headers; a second replay does nothing; --force does it again; a replay needs a
 *   selection; a letter naming a topic outside the pipeline is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "../workers/wtest.h"

typedef struct {
    wt_t w;
    int runs;
} fx_t;

static void letter_confirmed(void *opaque, bool ok, const char *error)
{
    (void)error;
    if (ok)
        atomic_fetch_add((atomic_int *)opaque, 1);
}

static atomic_int confirmed;

/* Runs pipeline-dlq with args; returns its exit code and its output (stdout + stderr) in *out
 * (malloc'd). */
static int dlq_cli(fx_t *f, const char *const *args, char **out)
{
    char log[256], err[256];
    snprintf(log, sizeof log, "%s.dlq-%d", f->w.log, ++f->runs);
    unlink(log);
    pid_t pid = simproc_spawn("pipeline-dlq", args, wt_env(&f->w), log, err, sizeof err);
    assert_true(pid > 0);
    int rc = simproc_wait(pid, 60000);
    *out = testenv_read_file(log);
    assert_non_null(*out);
    return rc;
}

/* One dead letter of a record of <prefix><base> at (partition, offset). */
static void dead_letter(fx_t *f, kafka_dlq_t *dlq, const char *orig_topic, int32_t p, int64_t off,
                        const char *key, const char *value, const char *klass, int status)
{
    kafka_header_t h[] = {{"source", "ploomes", 7}, {"entity", "task", 4}};
    kafka_record_t rec = {.topic = orig_topic, .partition = p, .offset = off, .key = key,
                          .key_len = strlen(key), .value = value, .value_len = strlen(value),
                          .headers = h, .header_count = 2, .timestamp_ms = -1};
    kafka_dlq_error_t e = {.exception_class = klass, .exception_message = "HTTP failure",
                           .attempts = 3, .http_status = status, .response = "{\"error\":1}",
                           .response_len = 11};
    char err[512];
    assert_int_equal(kafka_dlq_send(dlq, &rec, &e, letter_confirmed, &confirmed, err, sizeof err),
                     0);
    (void)f;
}

static void test_list_show_stats_replay(void **state)
{
    (void)state;
    fx_t f = {0};
    wt_init(&f.w, "dlq");
    assert_int_equal(wt_ensure_topics(&f.w), 0);
    char tasks[KAFKA_TOPIC_NAME_MAX], err[512];
    wt_topic(&f.w, "ploomes.tasks", tasks, sizeof tasks);

    kafka_settings_t s = wt_settings();
    kafka_producer_t *p = kafka_producer_new(&s, "it_pipeline_dlq", err, sizeof err);
    assert_non_null(p);
    kafka_dlq_opts_t o = {.producer = p, .topic_prefix = f.w.prefix,
                          .connector_name = "tasks-to-milvus"};
    kafka_dlq_t *dlq = kafka_dlq_new(&o, err, sizeof err);
    assert_non_null(dlq);
    dead_letter(&f, dlq, tasks, 0, 10, "101", "{\"Id\":101,\"Title\":\"a\"}", "HttpStatus503", 503);
    dead_letter(&f, dlq, tasks, 1, 11, "102", "{\"Id\":102,\"Title\":\"b\"}", "HttpStatus503", 503);
    dead_letter(&f, dlq, tasks, 0, 12, "103", "{\"Id\":103}", "InvalidDocument", 0);
    dead_letter(&f, dlq, "elsewhere.topic", 0, 1, "104", "{\"Id\":104}", "Foreign", 0);
    assert_int_equal(kafka_producer_flush(p, 30000, err, sizeof err), 0);
    assert_int_equal(atomic_load(&confirmed), 4);
    kafka_dlq_free(dlq);
    assert_int_equal(kafka_producer_close(p, 5000, err, sizeof err), 0);

    char *out = NULL;
    /* list: a table with every letter */
    assert_int_equal(dlq_cli(&f, (const char *[]){"list", NULL}, &out), 0);
    assert_non_null(strstr(out, "4 letter(s) shown; 4 in"));
    assert_non_null(strstr(out, "HttpStatus503"));
    assert_non_null(strstr(out, "InvalidDocument"));
    assert_non_null(strstr(out, "tasks-to-milvus"));
    free(out);
    /* list --json with a filter */
    assert_int_equal(dlq_cli(&f, (const char *[]){"list", "--error-class", "HttpStatus503",
                                                   "--json", NULL}, &out), 0);
    cJSON *j = cJSON_Parse(testenv_json_start(out, '['));
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 2);
    cJSON *first = cJSON_GetArrayItem(j, 0);
    assert_int_equal(cJSON_GetObjectItem(first, "http_status")->valueint, 503);
    assert_string_equal(cJSON_GetObjectItem(first, "original_topic")->valuestring, tasks);
    cJSON_Delete(j);
    free(out);
    /* stats */
    assert_int_equal(dlq_cli(&f, (const char *[]){"stats", "--json", NULL}, &out), 0);
    j = cJSON_Parse(testenv_json_start(out, '{'));
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "total")->valueint, 4);
    cJSON *rows = cJSON_GetObjectItem(j, "by_worker_and_class");
    int c503 = 0;
    for (int i = 0; i < cJSON_GetArraySize(rows); i++) {
        cJSON *r = cJSON_GetArrayItem(rows, i);
        if (strcmp(cJSON_GetObjectItem(r, "error_class")->valuestring, "HttpStatus503") == 0)
            c503 = cJSON_GetObjectItem(r, "count")->valueint;
    }
    assert_int_equal(c503, 2);
    cJSON_Delete(j);
    free(out);
    /* show: headers and the pretty record of the letter at offset 0 of its partition */
    wt_msgs_t letters;
    assert_int_equal(wt_read_topic_ex(&f.w, "pipeline.dlq", &letters, 30000, false), 0);
    assert_int_equal(letters.n, 4);
    char ref[32];
    snprintf(ref, sizeof ref, "%d/%lld", letters.msgs[0].partition,
             (long long)letters.msgs[0].offset);
    assert_int_equal(dlq_cli(&f, (const char *[]){"show", ref, NULL}, &out), 0);
    assert_non_null(strstr(out, "__connect.errors.exception.class.name: "));
    assert_non_null(strstr(out, "x-dlq.response: {\"error\":1}"));
    assert_non_null(strstr(out, "\"Id\":"));
    free(out);
    wt_msgs_free(&letters);

    /* replay needs a selection */
    assert_int_equal(dlq_cli(&f, (const char *[]){"replay", NULL}, &out), 2);
    free(out);
    /* dry run: nothing sent */
    assert_int_equal(dlq_cli(&f, (const char *[]){"replay", "--error-class", "HttpStatus503",
                                                   "--dry-run", NULL}, &out), 0);
    assert_non_null(strstr(out, "0 replayed, 0 already replayed, 2 would replay"));
    free(out);
    wt_msgs_t back;
    assert_int_equal(wt_read_topic_ex(&f.w, "ploomes.tasks", &back, 30000, false), 0);
    assert_int_equal(back.n, 0);
    wt_msgs_free(&back);
    /* replay: once each, original key/value/headers + replayed-from, no error headers */
    assert_int_equal(dlq_cli(&f, (const char *[]){"replay", "--error-class", "HttpStatus503",
                                                   NULL}, &out), 0);
    assert_non_null(strstr(out, "2 replayed, 0 already replayed"));
    free(out);
    assert_int_equal(wt_read_topic_ex(&f.w, "ploomes.tasks", &back, 30000, false), 0);
    assert_int_equal(back.n, 2);
    for (size_t i = 0; i < back.n; i++) {
        wt_msg_t *m = &back.msgs[i];
        assert_true(strcmp(m->key, "101") == 0 || strcmp(m->key, "102") == 0);
        assert_non_null(strstr(m->value, m->key));
        bool source = false, from = false;
        for (size_t h = 0; h < m->header_count; h++) {
            assert_null(strstr(m->hnames[h], "__connect.errors."));
            source |= strcmp(m->hnames[h], "source") == 0;
            if (strcmp(m->hnames[h], "x-dlq.replayed-from") == 0)
                from = strstr(m->hvalues[h], "pipeline.dlq/") != NULL;
            else
                assert_null(strstr(m->hnames[h], "x-dlq."));
        }
        assert_true(source && from);
    }
    wt_msgs_free(&back);
    /* again: nothing; --force: both again */
    assert_int_equal(dlq_cli(&f, (const char *[]){"replay", "--error-class", "HttpStatus503",
                                                   NULL}, &out), 0);
    assert_non_null(strstr(out, "0 replayed, 2 already replayed"));
    free(out);
    assert_int_equal(dlq_cli(&f, (const char *[]){"replay", "--error-class", "HttpStatus503",
                                                   "--force", NULL}, &out), 0);
    assert_non_null(strstr(out, "2 replayed, 0 already replayed"));
    free(out);
    assert_int_equal(wt_read_topic_ex(&f.w, "ploomes.tasks", &back, 30000, false), 0);
    assert_int_equal(back.n, 4);
    wt_msgs_free(&back);
    /* a letter naming a topic outside the pipeline is refused (exit 1, named) */
    assert_int_equal(dlq_cli(&f, (const char *[]){"replay", "--error-class", "Foreign", NULL},
                             &out), 1);
    assert_non_null(strstr(out, "not a pipeline topic"));
    free(out);
    wt_free(&f.w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_show_stats_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
