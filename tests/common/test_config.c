/* config_: defaults, per-binary requirements, all problems at once, *_FILE secrets, masking in
 * --print-config and in log lines, MongoDB URI handling, KAFKA_ passthrough, parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "kafka.h"
#include "log.h"

#define ALL_NEEDS 0xffu

static int setup(void **state)
{
    (void)state;
    log_clear_secrets();
    log_set_fd(2);
    log_init("test_config", LOG_DEBUG);
    return 0;
}

/* Loads from a NULL-terminated list of "NAME=value". */
static int load(config_t *cfg, unsigned needs, char **env)
{
    int n = config_load_env(cfg, needs, env);
    assert_true(n >= 0);
    return n;
}

static bool has_problem(const config_t *cfg, const char *needle)
{
    for (size_t i = 0; i < cfg->problem_count; i++) {
        if (strstr(cfg->problems[i], needle))
            return true;
    }
    return false;
}

static const char *problem_for(const config_t *cfg, const char *var)
{
    size_t n = strlen(var);
    for (size_t i = 0; i < cfg->problem_count; i++) {
        if (strncmp(cfg->problems[i], var, n) == 0 && cfg->problems[i][n] == ':')
            return cfg->problems[i];
    }
    return NULL;
}

/* config_print() into a malloc'd string. */
static char *print_to_string(const config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_print(cfg, f);
    fclose(f);
    return buf;
}

static char *write_temp(const char *content, size_t len)
{
    char *path = strdup("/tmp/test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *slurp_fd(int fd)
{
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    ssize_t r;
    while ((r = read(fd, buf + used, cap - used)) > 0)
        used += (size_t)r;
    buf[used] = '\0';
    return buf;
}

/* ---- defaults ------------------------------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {NULL};
    assert_int_equal(load(&c, 0, env), 0);
    assert_null(c.kafka_bootstrap_servers);
    assert_null(c.mongodb_uri);
    assert_string_equal(c.mongodb_database, "pipeline");
    assert_string_equal(c.ploomes_base_url, "https://api2.ploomes.com");
    assert_string_equal(c.milvus_base_url, "https://apiintegracao.milvus.com.br/api");
    assert_null(c.ploomes_user_key);
    assert_null(c.milvus_token);
    assert_string_equal(c.topic_prefix, "");
    assert_int_equal(c.topic_partitions, 6);
    assert_string_equal(c.sync_since, "2024-02-24T00:00:00-03:00");
    assert_int_equal(c.sync_since_ms, 1708743600000LL);
    assert_int_equal(c.ticket_tag_count, 3);
    assert_int_equal(c.ticket_tags[0].tag_id, 40049716);
    assert_string_equal(c.ticket_tags[0].category, "Instala\xc3\xa7\xc3\xa3o");
    assert_int_equal(c.ticket_tags[1].tag_id, 40049715);
    assert_string_equal(c.ticket_tags[1].category, "Entrega");
    assert_string_equal(config_ticket_category(&c, 40054183), "Manuten\xc3\xa7\xc3\xa3o");
    assert_null(config_ticket_category(&c, 1));
    assert_null(c.tickets_since);
    assert_int_equal(c.tickets_since_ms, -1);
    assert_int_equal(c.ticket_lookback_minutes, 10);
    assert_int_equal(c.ticket_max_age_minutes, 0);
    assert_string_equal(c.ticket_mesa, "");
    assert_int_equal(c.poll_interval_seconds, 60);
    assert_int_equal(c.max_attempts, 3);
    assert_int_equal(c.retry_base_ms, 5000);
    assert_int_equal(c.retry_max_ms, 60000);
    assert_int_equal(c.ploomes_rate_per_min, 100);
    assert_int_equal(c.milvus_rate_per_min, 60);
    assert_int_equal(c.milvus_min_id, -1); /* unset: fixed by milvus-producer */
    assert_true(c.ploomes_scan_quota_share == 0.5);
    assert_true(c.milvus_scan_quota_share == 0.25);
    assert_int_equal(c.ploomes_403_pause_ms, 30000);
    assert_int_equal(c.milvus_max_pages, 1000);
    assert_int_equal(c.producer_lease_seconds, 60);
    assert_int_equal(c.future_stamp_tolerance_seconds, 300);
    assert_int_equal(c.ticket_description_max, 10000);
    assert_int_equal(c.kafka_max_message_bytes, 8 * 1024 * 1024);
    assert_int_equal(c.max_in_flight, 32);
    assert_false(c.dry_run);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.metrics_port, 0);
    assert_int_equal(c.http_timeout_ms, 30000);
    assert_int_equal(c.claim_lease_seconds, 300);
    assert_int_equal(c.ploomes_entities,
                     CONFIG_ENTITY_CONTACTS | CONFIG_ENTITY_TASKS | CONFIG_ENTITY_INTERACTIONS);
    assert_int_equal(c.ploomes_origin_id, 0);
    assert_int_equal(c.ploomes_tag_id_count, 0);
    assert_int_equal(c.kafka_prop_count, 0);
    char *out = print_to_string(&c);
    assert_non_null(strstr(out, "TOPIC_PARTITIONS=6  # default\n"));
    assert_non_null(strstr(out, "PLOOMES_USER_KEY=  # unset\n"));
    assert_non_null(strstr(out, "LOG_LEVEL=info  # default\n"));
    free(out);
    config_free(&c);
    config_free(&c); /* twice is safe */
}

static void test_values_from_env(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {"KAFKA_BOOTSTRAP_SERVERS=k1:9092,k2:9092",
                   "MONGODB_URI=mongodb://db.local:27017/acme?replicaSet=rs0",
                   "PLOOMES_BASE_URL=http://127.0.0.1:8080/",
                   "PLOOMES_USER_KEY=ploomes-key-0001",
                   "MILVUS_BASE_URL=http://127.0.0.1:9090/api//",
                   "MILVUS_TOKEN=milvus-token-0002",
                   "TOPIC_PREFIX=acme.",
                   "TOPIC_PARTITIONS=12",
                   "SYNC_SINCE=2000-02-29T12:34:56.789Z",
                   "TICKETS_SINCE=2024-01-01T00:00:00+02:30",
                   "TICKET_TAGS= 7=Install , 8 = Entrega ",
                   "TICKET_LOOKBACK_MINUTES=0",
                   "TICKET_MAX_AGE_MINUTES=off",
                   "TICKET_MESA=Mesa padr\xc3\xa3o",
                   "POLL_INTERVAL_SECONDS=5",
                   "MAX_ATTEMPTS=7",
                   "RETRY_BASE_MS=10",
                   "RETRY_MAX_MS=10",
                   "PLOOMES_RATE_PER_MIN=1000",
                   "MILVUS_RATE_PER_MIN=30",
                   "MILVUS_MIN_ID=634501",
                   "MAX_IN_FLIGHT=4",
                   "DRY_RUN=yes",
                   "LOG_LEVEL=DEBUG",
                   "METRICS_PORT=9100",
                   "PLOOMES_ENTITIES=tasks, Contacts",
                   "HTTP_TIMEOUT_MS=1500",
                   "PLOOMES_ORIGIN_ID=12",
                   "PLOOMES_OWNER_ID=9000000000",
                   "PLOOMES_TAG_IDS=1,2,3",
                   "CLAIM_LEASE_SECONDS=60",
                   NULL};
    assert_int_equal(load(&c, ALL_NEEDS, env), 0);
    assert_string_equal(c.kafka_bootstrap_servers, "k1:9092,k2:9092");
    assert_string_equal(c.mongodb_database, "acme");
    assert_string_equal(c.mongodb_uri_redacted, "mongodb://db.local:27017/acme?replicaSet=rs0");
    assert_string_equal(c.ploomes_base_url, "http://127.0.0.1:8080");
    assert_string_equal(c.milvus_base_url, "http://127.0.0.1:9090/api");
    assert_string_equal(c.ploomes_user_key, "ploomes-key-0001");
    assert_string_equal(c.milvus_token, "milvus-token-0002");
    assert_string_equal(c.topic_prefix, "acme.");
    assert_int_equal(c.topic_partitions, 12);
    assert_int_equal(c.sync_since_ms, 951827696789LL);
    assert_int_equal(c.tickets_since_ms, 1704058200000LL);
    assert_int_equal(c.ticket_tag_count, 2);
    assert_int_equal(c.ticket_tags[1].tag_id, 8);
    assert_string_equal(c.ticket_tags[1].category, "Entrega");
    assert_int_equal(c.ticket_lookback_minutes, 0);
    assert_int_equal(c.ticket_max_age_minutes, 0);
    assert_string_equal(c.ticket_mesa, "Mesa padr\xc3\xa3o");
    assert_int_equal(c.poll_interval_seconds, 5);
    assert_int_equal(c.max_attempts, 7);
    assert_int_equal(c.retry_base_ms, 10);
    assert_int_equal(c.retry_max_ms, 10);
    assert_int_equal(c.milvus_min_id, 634501);
    assert_int_equal(c.max_in_flight, 4);
    assert_true(c.dry_run);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_int_equal(c.metrics_port, 9100);
    assert_int_equal(c.ploomes_entities, CONFIG_ENTITY_CONTACTS | CONFIG_ENTITY_TASKS);
    assert_int_equal(c.http_timeout_ms, 1500);
    assert_int_equal(c.ploomes_origin_id, 12);
    assert_int_equal(c.ploomes_owner_id, 9000000000LL);
    assert_int_equal(c.ploomes_tag_id_count, 3);
    assert_int_equal(c.ploomes_tag_ids[2], 3);
    assert_int_equal(c.claim_lease_seconds, 60);
    config_free(&c);
}

/* The real environment path (config_load reads environ). */
static void test_setenv_unsetenv(void **state)
{
    (void)state;
    config_t c;
    setenv("TOPIC_PARTITIONS", "3", 1);
    setenv("MILVUS_TOKEN", "", 1); /* empty = unset */
    unsetenv("KAFKA_BOOTSTRAP_SERVERS");
    assert_true(config_load(&c, CONFIG_NEED_KAFKA) >= 1);
    assert_int_equal(c.topic_partitions, 3);
    assert_non_null(problem_for(&c, "KAFKA_BOOTSTRAP_SERVERS"));
    config_free(&c);
    setenv("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092", 1);
    assert_int_equal(config_load(&c, CONFIG_NEED_KAFKA), 0);
    assert_string_equal(c.kafka_bootstrap_servers, "localhost:9092");
    config_free(&c);
    unsetenv("TOPIC_PARTITIONS");
    unsetenv("MILVUS_TOKEN");
    unsetenv("KAFKA_BOOTSTRAP_SERVERS");
}

static void test_empty_counts_as_unset(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {"TOPIC_PARTITIONS=", "PLOOMES_USER_KEY=", "LOG_LEVEL=", "TICKET_TAGS=", NULL};
    assert_int_equal(load(&c, 0, env), 0);
    assert_int_equal(c.topic_partitions, 6);
    assert_null(c.ploomes_user_key);
    assert_int_equal(c.ticket_tag_count, 3);
    config_free(&c);
    assert_int_equal(load(&c, CONFIG_NEED_PLOOMES, env), 1);
    assert_non_null(problem_for(&c, "PLOOMES_USER_KEY"));
    config_free(&c);
}

/* ---- requirements per binary ---------------------------------------------------------------- */

static void test_requirements_follow_needs(void **state)
{
    (void)state;
    static const struct {
        unsigned needs;
        const char *var;
    } rows[] = {
        {CONFIG_NEED_KAFKA, "KAFKA_BOOTSTRAP_SERVERS"},
        {CONFIG_NEED_MONGO, "MONGODB_URI"},
        {CONFIG_NEED_PLOOMES, "PLOOMES_USER_KEY"},
        {CONFIG_NEED_MILVUS, "MILVUS_TOKEN"},
    };
    char *env[] = {NULL};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        config_t c;
        assert_int_equal(load(&c, rows[i].needs, env), 1);
        const char *p = problem_for(&c, rows[i].var);
        assert_non_null(p);
        assert_non_null(strstr(p, "not set"));
        config_free(&c);
    }
    config_t c;
    assert_int_equal(load(&c, CONFIG_NEED_PRODUCER | CONFIG_NEED_WORKER | CONFIG_NEED_TICKETS, env),
                     0);
    config_free(&c);
    assert_int_equal(load(&c, ALL_NEEDS, env), 4);
    assert_non_null(strstr(problem_for(&c, "PLOOMES_USER_KEY"), "PLOOMES_USER_KEY_FILE"));
    config_free(&c);
}

/* ---- every problem at once ------------------------------------------------------------------ */

static void test_all_problems_reported_at_once(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {"TOPIC_PARTITIONS=abc",
                   "TOPIC_PREFIX=has space",
                   "PLOOMES_BASE_URL=ftp://example.com",
                   "MILVUS_BASE_URL=https://",
                   "SYNC_SINCE=2024-02-30T00:00:00Z",
                   "TICKETS_SINCE=yesterday",
                   "TICKET_TAGS=1=A,x=B",
                   "POLL_INTERVAL_SECONDS=0",
                   "MAX_ATTEMPTS=-1",
                   "RETRY_BASE_MS=100",
                   "RETRY_MAX_MS=50",
                   "PLOOMES_RATE_PER_MIN=12abc",
                   "MILVUS_MIN_ID=-5",
                   "PLOOMES_SCAN_QUOTA_SHARE=1.5",
                   "MILVUS_SCAN_QUOTA_SHARE=half",
                   "KAFKA_MAX_MESSAGE_BYTES=12",
                   "MAX_IN_FLIGHT=99999",
                   "DRY_RUN=maybe",
                   "LOG_LEVEL=verbose",
                   "METRICS_PORT=70000",
                   "PLOOMES_ENTITIES=contacts,deals",
                   "HTTP_TIMEOUT_MS=0",
                   "PLOOMES_TAG_IDS=1,,2",
                   "KAFKA_ACKS=banana",
                   "MONGODB_URI=postgres://x",
                   NULL};
    int n = load(&c, ALL_NEEDS, env);
    static const struct {
        const char *var;
        const char *shows; /* the bad value must be quoted back */
    } expect[] = {
        {"TOPIC_PARTITIONS", "\"abc\""},
        {"TOPIC_PREFIX", "has space"},
        {"PLOOMES_BASE_URL", "ftp://example.com"},
        {"MILVUS_BASE_URL", "https://"},
        {"SYNC_SINCE", "2024-02-30"},
        {"TICKETS_SINCE", "yesterday"},
        {"TICKET_TAGS", "\"x\""},
        {"POLL_INTERVAL_SECONDS", "\"0\""},
        {"MAX_ATTEMPTS", "\"-1\""},
        {"RETRY_MAX_MS", "50"},
        {"PLOOMES_RATE_PER_MIN", "12abc"},
        {"MILVUS_MIN_ID", "-5"},
        {"PLOOMES_SCAN_QUOTA_SHARE", "1.5"},
        {"MILVUS_SCAN_QUOTA_SHARE", "half"},
        {"KAFKA_MAX_MESSAGE_BYTES", "\"12\""},
        {"MAX_IN_FLIGHT", "99999"},
        {"DRY_RUN", "maybe"},
        {"LOG_LEVEL", "verbose"},
        {"METRICS_PORT", "70000"},
        {"PLOOMES_ENTITIES", "deals"},
        {"HTTP_TIMEOUT_MS", "\"0\""},
        {"PLOOMES_TAG_IDS", "\"\""},
        {"KAFKA_ACKS", "banana"},
        {"MONGODB_URI", "expected mongodb://"},
        {"KAFKA_BOOTSTRAP_SERVERS", "not set"},
        {"PLOOMES_USER_KEY", "not set"},
        {"MILVUS_TOKEN", "not set"},
    };
    size_t want = sizeof expect / sizeof expect[0];
    for (size_t i = 0; i < want; i++) {
        const char *p = problem_for(&c, expect[i].var);
        if (!p)
            fail_msg("no problem reported for %s", expect[i].var);
        if (!strstr(p, expect[i].shows))
            fail_msg("problem for %s does not show %s: %s", expect[i].var, expect[i].shows, p);
        if (!strstr(p, "expected") && !strstr(p, "rejects"))
            fail_msg("problem for %s does not say what is expected: %s", expect[i].var, p);
    }
    if ((size_t)n != want) {
        for (size_t i = 0; i < c.problem_count; i++)
            fprintf(stderr, "problem: %s\n", c.problems[i]);
        fail_msg("%d problems, want %zu", n, want);
    }
    assert_int_equal(c.problem_count, want);
    /* Invalid values keep their defaults. */
    assert_int_equal(c.topic_partitions, 6);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_string_equal(c.ploomes_base_url, "https://api2.ploomes.com");

    /* config_print_problems writes one line each. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_print_problems(&c, f);
    fclose(f);
    size_t lines = 0;
    for (char *p = buf; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, want);
    assert_non_null(strstr(buf, "config: TOPIC_PARTITIONS: got \"abc\""));
    free(buf);
    config_free(&c);
}

/* ---- secrets from files --------------------------------------------------------------------- */

static void test_secret_files(void **state)
{
    (void)state;
    char *key = write_temp("file-key-123456\n", 16);
    char *tok = write_temp("file-token-7890\r\n", 17);
    char *empty = write_temp("\n", 1);
    char var1[256], var2[256], var3[256];
    snprintf(var1, sizeof var1, "PLOOMES_USER_KEY_FILE=%s", key);
    snprintf(var2, sizeof var2, "MILVUS_TOKEN_FILE=%s", tok);
    snprintf(var3, sizeof var3, "KAFKA_SASL_PASSWORD_FILE=%s", empty);

    config_t c;
    char *env1[] = {var1, var2, NULL};
    assert_int_equal(load(&c, CONFIG_NEED_PLOOMES | CONFIG_NEED_MILVUS, env1), 0);
    assert_string_equal(c.ploomes_user_key, "file-key-123456"); /* newline stripped */
    assert_string_equal(c.milvus_token, "file-token-7890");     /* CRLF stripped */
    char *out = print_to_string(&c);
    char expect[300];
    snprintf(expect, sizeof expect, "PLOOMES_USER_KEY=***  # file %s\n", key);
    assert_non_null(strstr(out, expect));
    assert_null(strstr(out, "file-key-123456"));
    assert_null(strstr(out, "file-token-7890"));
    free(out);
    config_free(&c);

    /* Both set → error; missing file → error naming the path; empty file → error. */
    char *env2[] = {var1, "PLOOMES_USER_KEY=direct-key-0000", var3,
                    "MILVUS_TOKEN_FILE=/nonexistent/token", NULL};
    assert_int_equal(load(&c, CONFIG_NEED_PLOOMES | CONFIG_NEED_MILVUS, env2), 3);
    assert_non_null(has_problem(&c, "PLOOMES_USER_KEY and PLOOMES_USER_KEY_FILE are both set")
                        ? "ok" : NULL);
    assert_true(has_problem(&c, "MILVUS_TOKEN_FILE: cannot open /nonexistent/token"));
    assert_true(has_problem(&c, "KAFKA_SASL_PASSWORD_FILE:"));
    assert_true(has_problem(&c, "is empty"));
    assert_null(c.ploomes_user_key);
    /* The direct value is never quoted in a problem. */
    for (size_t i = 0; i < c.problem_count; i++)
        assert_null(strstr(c.problems[i], "direct-key-0000"));
    config_free(&c);

    unlink(key);
    unlink(tok);
    unlink(empty);
    free(key);
    free(tok);
    free(empty);
}

/* ---- masking: print-config and log lines ---------------------------------------------------- */

static const char *const SECRETS[] = {
    "plk-SECRET-ploomes-4242", "mvt-SECRET-milvus-4343", "m0ng0-SECRET-pass", "m0ng0@SECRET/pass",
    "kafka-SECRET-sasl-4444", "ssl-SECRET-keypass-55",
};

static void assert_no_secret(const char *text, const char *where)
{
    for (size_t i = 0; i < sizeof SECRETS / sizeof SECRETS[0]; i++) {
        if (strstr(text, SECRETS[i]))
            fail_msg("secret #%zu appears in %s", i, where);
    }
    if (strstr(text, "SECRET"))
        fail_msg("part of a secret appears in %s:\n%s", where, text);
}

static void test_masking_print_and_logs(void **state)
{
    (void)state;
    char *keyfile = write_temp("mvt-SECRET-milvus-4343\n", 23);
    char tokvar[256];
    snprintf(tokvar, sizeof tokvar, "MILVUS_TOKEN_FILE=%s", keyfile);
    char *env[] = {"PLOOMES_USER_KEY=plk-SECRET-ploomes-4242",
                   tokvar,
                   /* password with a percent-encoded '@' and '/': decoded m0ng0@SECRET/pass */
                   "MONGODB_URI=mongodb://app:m0ng0%40SECRET%2Fpass@db1:27017,db2/acme?tls=true",
                   "KAFKA_BOOTSTRAP_SERVERS=localhost:9092",
                   "KAFKA_SASL_PASSWORD=kafka-SECRET-sasl-4444",
                   "KAFKA_SSL_KEY_PASSWORD=ssl-SECRET-keypass-55",
                   "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                   NULL};
    config_t c;
    assert_int_equal(load(&c, ALL_NEEDS, env), 0);
    assert_string_equal(c.mongodb_uri_redacted, "mongodb://***@db1:27017,db2/acme?tls=true");
    assert_string_equal(c.mongodb_database, "acme");

    char *out = print_to_string(&c);
    assert_no_secret(out, "config_print");
    assert_non_null(strstr(out, "PLOOMES_USER_KEY=***  # env\n"));
    assert_non_null(strstr(out, "MILVUS_TOKEN=***  # file "));
    assert_non_null(strstr(out, "KAFKA_SASL_PASSWORD=***  # env\n"));
    assert_non_null(strstr(out, "MONGODB_URI=mongodb://***@db1:27017,db2/acme?tls=true  # env"));
    assert_non_null(strstr(out, "# librdkafka sasl.password=***\n"));
    assert_non_null(strstr(out, "# librdkafka ssl.key.password=***\n"));
    assert_non_null(strstr(out, "# librdkafka security.protocol=SASL_SSL\n"));
    free(out);

    /* Every secret was registered with the logger: a line that (wrongly) contains them all is
     * scrubbed. */
    char *logpath = write_temp("", 0);
    FILE *lf = fopen(logpath, "w+");
    assert_non_null(lf);
    log_set_fd(fileno(lf));
    log_msg(LOG_ERROR, "leak_attempt", "key=%s token=%s uri=%s sasl=%s ssl=%s",
            c.ploomes_user_key, c.milvus_token, c.mongodb_uri, c.kafka_sasl_password,
            "ssl-SECRET-keypass-55");
    log_msg(LOG_INFO, "leak_attempt2", "decoded=%s", "m0ng0@SECRET/pass");
    for (size_t i = 0; i < c.kafka_prop_count; i++)
        log_msg(LOG_DEBUG, "kafka_prop", "name=%s value=%s", c.kafka_props[i].name,
                c.kafka_props[i].value);
    log_set_fd(2);
    char *logged = slurp_fd(fileno(lf));
    fclose(lf);
    assert_non_null(strstr(logged, "event=leak_attempt "));
    assert_non_null(strstr(logged, "key=***"));
    if (!strstr(logged, "uri=mongodb://app:***@db1"))
        fail_msg("log:\n%s", logged);
    assert_no_secret(logged, "log lines");
    free(logged);
    unlink(logpath);
    free(logpath);
    unlink(keyfile);
    free(keyfile);
    config_free(&c);
}

/* ---- MongoDB URI ---------------------------------------------------------------------------- */

/* Loads with MONGODB_URI=uri as the only variable; returns the number of problems. */
static int load_mongo_uri(config_t *c, const char *uri)
{
    char var[256];
    snprintf(var, sizeof var, "MONGODB_URI=%s", uri);
    char *env[] = {var, NULL};
    return load(c, CONFIG_NEED_MONGO, env);
}

static void test_mongo_uri(void **state)
{
    (void)state;
    static const struct {
        const char *uri;
        int problems;
        const char *db;
        const char *redacted;
    } rows[] = {
        {"mongodb://localhost:27017", 0, "pipeline", "mongodb://localhost:27017"},
        {"mongodb://localhost:27017/", 0, "pipeline", "mongodb://localhost:27017/"},
        {"mongodb://localhost/?w=1", 0, "pipeline", "mongodb://localhost/?w=1"},
        /* no part of the userinfo is shown, not even the user name */
        {"mongodb://u:pw12345@h/acct1", 0, "acct1", "mongodb://***@h/acct1"},
        {"mongodb+srv://u:pw12345@cluster.example.net/x?retryWrites=true", 0, "x",
         "mongodb+srv://***@cluster.example.net/x?retryWrites=true"},
        {"mongodb://u@h/db", 0, "db", "mongodb://***@h/db"},
        {"mongodb://u:pw%40x%3F@[::1]:27017,h2:1/db", 0, "db", "mongodb://***@[::1]:27017,h2:1/db"},
        /* reserved characters left unencoded in a password: rejected, never shown */
        {"mongodb://u:pw@with@at@h/db", 1, "pipeline", NULL},
        {"mongodb://u:pw?x@h/db", 1, "pipeline", NULL},
        {"mongodb://u:pw%4@h/db", 1, "pipeline", NULL},
        /* not a URI at all: no text of it in the problem */
        {"mongodb://u:pw12345/h", 1, "pipeline", NULL},
        {"mongodb://h:99999/db", 1, "pipeline", NULL},
        {"mongodb://h/bad.name", 1, "pipeline", NULL},
        {"mongodb://h/bad$name", 1, "pipeline", NULL},
        {"http://h/db", 1, "pipeline", NULL},
        {"mongodb://", 1, "pipeline", NULL},
        {"mongodb://u:pw@/db", 1, "pipeline", NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        config_t c;
        int n = load_mongo_uri(&c, rows[i].uri);
        if (n != rows[i].problems)
            fail_msg("uri %s: %d problems", rows[i].uri, n);
        assert_string_equal(c.mongodb_database, rows[i].db);
        if (rows[i].redacted)
            assert_string_equal(c.mongodb_uri_redacted, rows[i].redacted);
        /* A rejected URI is never quoted back (it may hold a password). */
        for (size_t k = 0; k < c.problem_count; k++)
            assert_null(strstr(c.problems[k], "pw"));
        config_free(&c);
    }
}

static void test_mongo_password_variable(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {"MONGODB_URI=mongodb://app@db:27017/acme", "MONGODB_PASSWORD=p@ss/w0rd:x",
                   NULL};
    assert_int_equal(load(&c, CONFIG_NEED_MONGO, env), 0);
    assert_string_equal(c.mongodb_uri, "mongodb://app:p%40ss%2Fw0rd%3Ax@db:27017/acme");
    assert_string_equal(c.mongodb_uri_redacted, "mongodb://***@db:27017/acme");
    char *out = print_to_string(&c);
    assert_null(strstr(out, "p@ss"));
    assert_null(strstr(out, "p%40ss"));
    assert_non_null(strstr(out, "MONGODB_PASSWORD=***  # env\n"));
    free(out);
    config_free(&c);

    char *env2[] = {"MONGODB_URI=mongodb://app:old1234@db/acme", "MONGODB_PASSWORD=newpass1",
                    NULL};
    assert_int_equal(load(&c, CONFIG_NEED_MONGO, env2), 1);
    assert_non_null(problem_for(&c, "MONGODB_PASSWORD"));
    config_free(&c);

    char *env3[] = {"MONGODB_URI=mongodb://db/acme", "MONGODB_PASSWORD=newpass1", NULL};
    assert_int_equal(load(&c, CONFIG_NEED_MONGO, env3), 1);
    config_free(&c);

    char *env4[] = {"MONGODB_PASSWORD=newpass1", NULL};
    assert_int_equal(load(&c, 0, env4), 1);
    config_free(&c);
}

/* issue 8 item 12: a password holding an unencoded '?', '@', '/' or '#' defeated the
 * redaction (a '?' ended the search for the userinfo, so the whole URI was shown). Whatever the
 * character, nothing of the userinfo reaches config_print, the problems or a log line. */
static void test_mongo_password_reserved_chars(void **state)
{
    (void)state;
    static const char *const uris[] = {
        "mongodb://app:Hid?SECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid@SECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid/SECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid#SECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid?SECRET-pw@db1:27017",
        "mongodb://app:Hid/SECRET-pw@db1",
        "mongodb://app:Hid?SECRET-pw@",        /* no host: not a URI, nothing shown */
        "mongodb://app:Hid?SECRET-pw",         /* no '@' at all */
        "mongodb://app:Hid?SECRET-pw@db1/acme?appName=x@y", /* two '@', one in the options */
    };
    for (size_t i = 0; i < sizeof uris / sizeof uris[0]; i++) {
        log_clear_secrets();
        config_t c;
        int n = load_mongo_uri(&c, uris[i]);
        char *out = print_to_string(&c);
        if (strstr(out, "SECRET") || strstr(out, "Hid") || !strstr(out, "MONGODB_URI=***"))
            fail_msg("uri #%zu: print-config shows:\n%s", i, out);
        free(out);
        if (n != 1 || !problem_for(&c, "MONGODB_URI"))
            fail_msg("uri #%zu: %d problems, want one for MONGODB_URI", i, n);
        for (size_t k = 0; k < c.problem_count; k++)
            if (strstr(c.problems[k], "SECRET") || strstr(c.problems[k], "Hid") ||
                strstr(c.problems[k], "db1"))
                fail_msg("uri #%zu: problem quotes the URI: %s", i, c.problems[k]);
        assert_null(c.mongodb_uri_redacted);

        /* a driver error that quotes the URI or the password: scrubbed (the password as
         * written was registered before the URI was rejected). Only for URIs that have a
         * userinfo, i.e. an '@'. */
        if (strchr(uris[i], '@')) {
            char *logpath = write_temp("", 0);
            FILE *lf = fopen(logpath, "w+");
            assert_non_null(lf);
            log_set_fd(fileno(lf));
            log_msg(LOG_ERROR, "driver_error", "uri=%s", uris[i]);
            log_set_fd(2);
            char *logged = slurp_fd(fileno(lf));
            fclose(lf);
            if (strstr(logged, "SECRET"))
                fail_msg("uri #%zu: the log shows:\n%s", i, logged);
            free(logged);
            unlink(logpath);
            free(logpath);
        }
        config_free(&c);
    }

    /* the same passwords percent-encoded are fine, and still never shown */
    static const char *const good[] = {
        "mongodb://app:Hid%3FSECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid%40SECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid%2FSECRET-pw@db1:27017/acme?tls=true",
        "mongodb://app:Hid%23SECRET-pw@db1:27017/acme?tls=true",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        config_t c;
        assert_int_equal(load_mongo_uri(&c, good[i]), 0);
        assert_string_equal(c.mongodb_uri_redacted, "mongodb://***@db1:27017/acme?tls=true");
        assert_string_equal(c.mongodb_database, "acme");
        char *out = print_to_string(&c);
        assert_null(strstr(out, "SECRET"));
        assert_non_null(strstr(out, "MONGODB_URI=mongodb://***@db1:27017/acme?tls=true  # env"));
        free(out);
        config_free(&c);
    }
}

/* ---- KAFKA_ passthrough --------------------------------------------------------------------- */

static void test_kafka_passthrough(void **state)
{
    (void)state;
    config_t c;
    char *env[] = {"KAFKA_BOOTSTRAP_SERVERS=b:9092",
                   "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                   "KAFKA_SASL_MECHANISMS=PLAIN",
                   "KAFKA_SASL_USERNAME=svc",
                   "KAFKA_HOME=/opt/kafka",      /* Kafka tooling: unknown to librdkafka */
                   "KAFKA_HEAP_OPTS=-Xmx1G",
                   "KAFKA_SASL_PASSWORD=kpw-123456",
                   "KAFKA_=x",
                   "KAFKA_STATISTICS_INTERVAL_MS=",
                   "NOT_KAFKA_ACKS=1",
                   NULL};
    assert_int_equal(load(&c, CONFIG_NEED_KAFKA, env), 0);
    assert_int_equal(c.kafka_prop_count, 4);
    assert_string_equal(c.kafka_props[0].name, "security.protocol");
    assert_string_equal(c.kafka_props[0].value, "SASL_SSL");
    assert_false(c.kafka_props[0].secret);
    assert_string_equal(c.kafka_props[1].name, "sasl.mechanisms");
    assert_string_equal(c.kafka_props[2].name, "sasl.username");
    assert_string_equal(c.kafka_props[3].name, "sasl.password");
    assert_string_equal(c.kafka_props[3].value, "kpw-123456");
    assert_true(c.kafka_props[3].secret);
    assert_string_equal(c.kafka_sasl_password, "kpw-123456");
    /* what every client is built from: the same pairs, in order */
    kafka_settings_t ks = kafka_settings_from_config(&c);
    assert_int_equal(ks.count, 4);
    for (size_t i = 0; i < ks.count; i++) {
        assert_string_equal(ks.names[i], c.kafka_props[i].name);
        assert_string_equal(ks.values[i], c.kafka_props[i].value);
    }
    assert_int_equal(ks.max_message_bytes, c.kafka_max_message_bytes);
    assert_int_equal(c.warning_count, 2);
    assert_non_null(strstr(c.warnings[0], "KAFKA_HOME"));
    assert_non_null(strstr(c.warnings[1], "heap.opts"));
    char *out = print_to_string(&c);
    assert_non_null(strstr(out, "# warning: KAFKA_HOME: ignored"));
    assert_null(strstr(out, "kpw-123456"));
    free(out);
    config_free(&c);

    /* an inline private key and the OAuth config are secrets too: never printed */
    char *keys[] = {"KAFKA_SSL_KEY_PEM=-----BEGIN PRIVATE KEY-----PEMSECRET777",
                    "KAFKA_SASL_OAUTHBEARER_CONFIG=principal=svc clientSecret=OAUTHSECRET888",
                    NULL};
    assert_int_equal(load(&c, 0, keys), 0);
    assert_int_equal(c.kafka_prop_count, 2);
    assert_string_equal(c.kafka_props[0].name, "ssl.key.pem");
    assert_true(c.kafka_props[0].secret);
    assert_string_equal(c.kafka_props[1].name, "sasl.oauthbearer.config");
    assert_true(c.kafka_props[1].secret);
    out = print_to_string(&c);
    assert_null(strstr(out, "PEMSECRET777"));
    assert_null(strstr(out, "OAUTHSECRET888"));
    assert_non_null(strstr(out, "# librdkafka ssl.key.pem=***"));
    free(out);
    config_free(&c);

    char *bad[] = {"KAFKA_SECURITY_PROTOCOL=carrier-pigeon", "KAFKA_SSL_KEY_PASSWORD=", NULL};
    assert_int_equal(load(&c, 0, bad), 1);
    assert_non_null(strstr(problem_for(&c, "KAFKA_SECURITY_PROTOCOL"), "carrier-pigeon"));
    config_free(&c);
}

/* ---- parsers -------------------------------------------------------------------------------- */

static void test_rfc3339(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t ms;
    } rows[] = {
        {"1970-01-01T00:00:00Z", 0, 0},
        {"2024-02-24T00:00:00-03:00", 0, 1708743600000LL},
        {"2024-02-24T03:00:00.000Z", 0, 1708743600000LL},
        {"2024-02-24t03:00:00z", 0, 1708743600000LL},
        {"2024-02-24 03:00:00+00:00", 0, 1708743600000LL},
        {"2000-02-29T12:34:56.789123Z", 0, 951827696789LL},
        {"2000-02-29T12:34:56.7Z", 0, 951827696700LL},
        {"1969-12-31T23:59:59Z", 0, -1000},
        {"2023-02-29T00:00:00Z", -1, 0}, /* not a leap year */
        {"1900-02-29T00:00:00Z", -1, 0},
        {"2024-04-31T00:00:00Z", -1, 0},
        {"2024-00-10T00:00:00Z", -1, 0},
        {"2024-01-10T24:00:00Z", -1, 0},
        {"2024-01-10T10:60:00Z", -1, 0},
        {"2024-01-10T10:00:00", -1, 0},  /* no offset */
        {"2024-01-10T10:00:00+0300", -1, 0},
        {"2024-01-10T10:00:00+24:00", -1, 0},
        {"2024-01-10T10:00:00.Z", -1, 0},
        {"2024-01-10T10:00:00Zjunk", -1, 0},
        {"2024-1-10T10:00:00Z", -1, 0},
        {"", -1, 0},
        {NULL, -1, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t ms = 42;
        int rc = config_parse_rfc3339(rows[i].text, &ms);
        if (rc != rows[i].rc)
            fail_msg("rfc3339 %s: rc %d", rows[i].text ? rows[i].text : "NULL", rc);
        if (rc == 0 && ms != rows[i].ms)
            fail_msg("rfc3339 %s: %lld", rows[i].text, (long long)ms);
    }
}

static void test_lists_and_bools(void **state)
{
    (void)state;
    static const struct {
        const char *var;
        int problems;
    } rows[] = {
        {"PLOOMES_ENTITIES=interactions", 0},
        {"PLOOMES_ENTITIES=contacts,,tasks", 0},
        {"PLOOMES_ENTITIES=,", 1},
        {"PLOOMES_ENTITIES=contacts,deals", 1},
        {"TICKET_TAGS=1=A,1=B", 1},
        {"TICKET_TAGS=1=", 1},
        {"TICKET_TAGS=1", 1},
        {"TICKET_TAGS=0=Zero", 1},
        {"TICKET_TAGS=5=\xff", 1},
        {"TICKET_TAGS=5=Categoria \xc3\xa9", 0},
        {"PLOOMES_TAG_IDS=5,x", 1},
        {"PLOOMES_TAG_IDS=5", 0},
        {"DRY_RUN=1", 0},
        {"DRY_RUN=TRUE", 0},
        {"DRY_RUN=off", 0},
        {"DRY_RUN=2", 1},
        {"TICKET_MAX_AGE_MINUTES=30", 0},
        {"TICKET_MAX_AGE_MINUTES=-1", 1},
        {"TOPIC_PREFIX=acme-1_x.", 0},
        {"TOPIC_PREFIX=a/b", 1},
        {"PLOOMES_BASE_URL=HTTPS://API2.PLOOMES.COM", 0},
        {"PLOOMES_BASE_URL=https://bad host", 1},
        {"PLOOMES_BASE_URL=api2.ploomes.com", 1},
        {"PLOOMES_USER_KEY=line1\nline2", 1},
        {"KAFKA_BOOTSTRAP_SERVERS=a:1, b:2", 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char *env[] = {(char *)rows[i].var, NULL};
        config_t c;
        int n = load(&c, 0, env);
        if (n != rows[i].problems)
            fail_msg("%s: %d problems (%s)", rows[i].var, n, n > 0 ? c.problems[0] : "-");
        config_free(&c);
    }
    config_t c;
    char *env[] = {"PLOOMES_ENTITIES=interactions", "DRY_RUN=on", "TICKET_TAGS=5=Categoria X",
                   NULL};
    assert_int_equal(load(&c, 0, env), 0);
    assert_int_equal(c.ploomes_entities, CONFIG_ENTITY_INTERACTIONS);
    assert_true(c.dry_run);
    assert_int_equal(c.ticket_tag_count, 1);
    assert_string_equal(config_ticket_category(&c, 5), "Categoria X");
    config_free(&c);
}

static void test_describe(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    config_describe(CONFIG_NEED_KAFKA | CONFIG_NEED_PLOOMES | CONFIG_NEED_PRODUCER, f);
    fclose(f);
    assert_non_null(strstr(buf, "KAFKA_BOOTSTRAP_SERVERS"));
    assert_non_null(strstr(buf, "PLOOMES_USER_KEY"));
    assert_non_null(strstr(buf, "(required)"));
    assert_non_null(strstr(buf, "SYNC_SINCE"));
    assert_non_null(strstr(buf, "LOG_LEVEL"));
    assert_non_null(strstr(buf, "KAFKA_<NAME>"));
    assert_null(strstr(buf, "MILVUS_TOKEN"));  /* not this binary's */
    assert_null(strstr(buf, "TICKET_MESA"));
    free(buf);
}

/* Issue 13: the benchmark's "no rate limit" is the highest rate accepted (the limiter spaces
 * grants W/N apart, so the old ceiling of 100,000/min capped it at 1,667 calls a second). */
static void test_rate_ceiling(void **state)
{
    (void)state;
    config_t c;
    char *ok[] = {"PLOOMES_RATE_PER_MIN=6000000", "MILVUS_RATE_PER_MIN=6000000", NULL};
    load(&c, ALL_NEEDS, ok);
    assert_null(problem_for(&c, "PLOOMES_RATE_PER_MIN"));
    assert_null(problem_for(&c, "MILVUS_RATE_PER_MIN"));
    assert_int_equal(c.ploomes_rate_per_min, 6000000);
    assert_int_equal(c.milvus_rate_per_min, 6000000);
    config_free(&c);
    char *over[] = {"PLOOMES_RATE_PER_MIN=6000001", "MILVUS_RATE_PER_MIN=0", NULL};
    load(&c, ALL_NEEDS, over);
    assert_non_null(problem_for(&c, "PLOOMES_RATE_PER_MIN"));
    assert_non_null(problem_for(&c, "MILVUS_RATE_PER_MIN"));
    config_free(&c);
}

int main(void)
{
    /* The tests own the environment: nothing from the caller's shell (KAFKA_*, MONGODB_URI set
     * by scripts/test.sh) may leak into config_load(). */
    clearenv();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, setup),
        cmocka_unit_test_setup(test_values_from_env, setup),
        cmocka_unit_test_setup(test_rate_ceiling, setup),
        cmocka_unit_test_setup(test_setenv_unsetenv, setup),
        cmocka_unit_test_setup(test_empty_counts_as_unset, setup),
        cmocka_unit_test_setup(test_requirements_follow_needs, setup),
        cmocka_unit_test_setup(test_all_problems_reported_at_once, setup),
        cmocka_unit_test_setup(test_secret_files, setup),
        cmocka_unit_test_setup(test_masking_print_and_logs, setup),
        cmocka_unit_test_setup(test_mongo_uri, setup),
        cmocka_unit_test_setup(test_mongo_password_variable, setup),
        cmocka_unit_test_setup(test_mongo_password_reserved_chars, setup),
        cmocka_unit_test_setup(test_kafka_passthrough, setup),
        cmocka_unit_test_setup(test_rfc3339, setup),
        cmocka_unit_test_setup(test_lists_and_bools, setup),
        cmocka_unit_test_setup(test_describe, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
