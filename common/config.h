/* config_: every setting of SPEC §6, from environment variables only (12-factor).
 *
 * - An EMPTY variable counts as unset (env files carry `NAME=` lines); the default applies.
 * - Secrets (PLOOMES_USER_KEY, MILVUS_TOKEN, KAFKA_SASL_PASSWORD, MONGODB_URI, MONGODB_PASSWORD)
 *   come from NAME or from the file named by NAME_FILE (Docker/K8s secrets); setting both is an
 *   error; trailing CR/LF in the file are stripped; the file is capped at 64 KiB. Every secret
 *   read is registered with log_add_secret(), so it is scrubbed from every log line. For
 *   MONGODB_URI only the password inside it is registered (raw and percent-decoded), not the
 *   whole URI: log mongodb_uri_redacted, never mongodb_uri.
 * - MONGODB_PASSWORD(_FILE), optional: when set, it is percent-encoded and inserted into
 *   MONGODB_URI's userinfo (the URI must then name a user and carry no password of its own).
 * - KAFKA_<NAME> passthrough: every variable starting with KAFKA_ other than
 *   KAFKA_BOOTSTRAP_SERVERS and KAFKA_SASL_PASSWORD(_FILE) becomes librdkafka property <name>
 *   (lowercased, '_' → '.'), e.g. KAFKA_SECURITY_PROTOCOL=SASL_SSL → security.protocol.
 *   Each is tried on a scratch librdkafka conf: an invalid value is a problem; an unknown
 *   property (KAFKA_HOME, KAFKA_HEAP_OPTS and other Kafka-tooling variables) is ignored with a
 *   warning. KAFKA_SASL_PASSWORD becomes sasl.password. Properties whose name contains
 *   "password" or "secret" are treated as secrets (masked, registered with log_).
 * - Validation collects EVERY problem in one pass (cfg->problems): each names the variable,
 *   shows the bad value (never for a secret) and says what is expected.
 * - Required variables depend on the binary: pass the CONFIG_NEED_* bits it uses. A bit also
 *   selects which variables `--help` lists (config_describe()).
 *
 * Ownership: config_load() fills a caller-owned config_t; every string and array in it is
 * owned by the config_t and freed by config_free(). Borrow them; never free them yourself.
 * Thread-safety: config_load()/config_free() are not thread-safe (they read environ and
 * register log secrets); a loaded config_t is read-only and may be shared by threads.
 */
#ifndef PIPELINE_CONFIG_H
#define PIPELINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

/* Exit codes of every binary (SPEC §4). */
typedef enum {
    CONFIG_EXIT_OK = 0,          /* done (also after --help, --version, --once success) */
    CONFIG_EXIT_FATAL = 1,       /* fatal runtime error: Kafka fatal, MongoDB unreachable past
                                    retries, a page failed in --once */
    CONFIG_EXIT_USAGE = 2,       /* bad usage or configuration */
    CONFIG_EXIT_CREDENTIALS = 3  /* a target rejected the credentials (401) */
} config_exit_t;

/* What a binary uses. Bits marked "required" make those variables mandatory. */
#define CONFIG_NEED_KAFKA    (1u << 0) /* required KAFKA_BOOTSTRAP_SERVERS; TOPIC_*, KAFKA_* */
#define CONFIG_NEED_MONGO    (1u << 1) /* required MONGODB_URI */
#define CONFIG_NEED_PLOOMES  (1u << 2) /* required PLOOMES_USER_KEY; PLOOMES_BASE_URL, rate */
#define CONFIG_NEED_MILVUS   (1u << 3) /* required MILVUS_TOKEN; MILVUS_BASE_URL, rate */
#define CONFIG_NEED_PRODUCER (1u << 4) /* POLL_INTERVAL_SECONDS, SYNC_SINCE, PLOOMES_ENTITIES,
                                          TICKET_LOOKBACK_MINUTES, MILVUS_MIN_ID, lease,
                                          scan quota shares, MILVUS_MAX_PAGES,
                                          FUTURE_STAMP_TOLERANCE_SECONDS */
#define CONFIG_NEED_WORKER   (1u << 5) /* MAX_ATTEMPTS, RETRY_*, MAX_IN_FLIGHT, DRY_RUN,
                                          CLAIM_LEASE_SECONDS, SYNC_SINCE, MILVUS_MIN_ID */
#define CONFIG_NEED_TICKETS  (1u << 6) /* TICKET_* settings */
#define CONFIG_NEED_PLOOMES_TARGET (1u << 7) /* PLOOMES_ORIGIN_ID, PLOOMES_OWNER_ID,
                                                PLOOMES_TAG_IDS */
/* LOG_LEVEL, METRICS_PORT, HTTP_TIMEOUT_MS are always listed. */

/* Where a value came from (config_print). */
typedef enum {
    CONFIG_SRC_DEFAULT = 0,
    CONFIG_SRC_ENV = 1,
    CONFIG_SRC_FILE = 2, /* NAME_FILE */
    CONFIG_SRC_UNSET = 3 /* optional, no default */
} config_source_t;

/* Which Ploomes entities ploomes-producer polls (PLOOMES_ENTITIES). */
#define CONFIG_ENTITY_CONTACTS     (1u << 0)
#define CONFIG_ENTITY_TASKS        (1u << 1)
#define CONFIG_ENTITY_INTERACTIONS (1u << 2)

typedef struct {
    char *name;   /* librdkafka property, e.g. "security.protocol" */
    char *value;
    bool secret;  /* masked by config_print */
} config_kafka_prop_t;

typedef struct {
    int64_t tag_id;  /* Ploomes TagId */
    char *category;  /* Milvus chamado_categoria_primaria (UTF-8) */
} config_ticket_tag_t;

/* One line of config_print(): a variable, its display value (secrets already "***") and
 * source. */
typedef struct {
    char *name;
    char *display;          /* value as printed; secrets "***" */
    config_source_t source;
    char *path;             /* the NAME_FILE path when source is CONFIG_SRC_FILE, else NULL */
} config_entry_t;

typedef struct {
    /* Kafka */
    char *kafka_bootstrap_servers;     /* NULL when unset */
    char *kafka_sasl_password;         /* secret; NULL when unset */
    config_kafka_prop_t *kafka_props;  /* KAFKA_* passthrough in environment order, then
                                          sasl.password when KAFKA_SASL_PASSWORD is set.
                                          Apply them BEFORE the pipeline's own mandatory
                                          settings so those cannot be overridden by accident */
    size_t kafka_prop_count;
    /* The same properties as two parallel arrays of kafka_prop_count entries (what
     * kafka_settings_t takes: kafka_settings_from_config()). */
    const char **kafka_prop_names;
    const char **kafka_prop_values;
    char *topic_prefix;                /* "" by default; used verbatim */
    int topic_partitions;              /* 6 */
    int64_t kafka_max_message_bytes;   /* KAFKA_MAX_MESSAGE_BYTES, 8 MiB: topics'
                                          max.message.bytes and producers' message.max.bytes;
                                          the DLQ topic gets 64 KiB more */

    /* MongoDB */
    char *mongodb_uri;          /* secret-bearing, full URI with password; NULL when unset */
    char *mongodb_uri_redacted; /* same URI with the password as "***": safe to log */
    char *mongodb_database;     /* path of the URI, "pipeline" by default */

    /* Ploomes */
    char *ploomes_base_url;  /* no trailing '/'; default https://api2.ploomes.com */
    char *ploomes_user_key;  /* secret; NULL when unset */
    int ploomes_rate_per_min;    /* 100 */
    unsigned ploomes_entities;   /* CONFIG_ENTITY_* bits; default all three */
    double ploomes_scan_quota_share; /* 0.5: ploomes-producer's share of the window */
    int64_t ploomes_403_pause_ms;    /* 30000: a Ploomes 403 pauses the shared limiter */

    /* Milvus */
    char *milvus_base_url;   /* no trailing '/'; default https://apiintegracao.milvus.com.br/api */
    char *milvus_token;      /* secret; NULL when unset */
    int milvus_rate_per_min; /* 60 */
    int64_t milvus_min_id;   /* -1 when unset (milvus-producer fixes it in MongoDB) */
    double milvus_scan_quota_share; /* 0.25: milvus-producer's scans' share of the quota */
    int milvus_max_pages;    /* 1000: pages per milvus-producer pass */

    /* Producers */
    char *sync_since;           /* RFC 3339 text; default 2024-02-24T00:00:00-03:00 */
    int64_t sync_since_ms;      /* the same instant, Unix epoch milliseconds */
    int poll_interval_seconds;  /* 60 */
    int producer_lease_seconds; /* 60 */
    int future_stamp_tolerance_seconds; /* 300 */

    /* Tickets */
    config_ticket_tag_t *ticket_tags; /* TICKET_TAGS parsed, in order; never empty */
    size_t ticket_tag_count;
    char *tickets_since;          /* RFC 3339 text, NULL when unset (worker decides) */
    int64_t tickets_since_ms;     /* -1 when unset */
    int ticket_lookback_minutes;  /* 10 */
    int ticket_max_age_minutes;   /* 0 = off (default) */
    int ticket_description_max;   /* 10000 characters */
    char *ticket_mesa;            /* "" = not sent */
    char *ticket_setor;           /* "" = not sent */
    char *ticket_tecnico;         /* "" = not sent */
    char *ticket_categoria_secundaria; /* "" = not sent */

    /* clients-to-ploomes */
    int64_t ploomes_origin_id;  /* 0 = not sent */
    int64_t ploomes_owner_id;   /* 0 = not sent */
    int64_t *ploomes_tag_ids;   /* PLOOMES_TAG_IDS, comma-separated; NULL/0 when unset */
    size_t ploomes_tag_id_count;

    /* Workers */
    int max_attempts;          /* 3 */
    int64_t retry_base_ms;     /* 5000 */
    int64_t retry_max_ms;      /* 60000, >= retry_base_ms */
    int max_in_flight;         /* 32 (1 = everything on the poll thread) */
    int claim_lease_seconds;   /* 300 */
    bool dry_run;              /* DRY_RUN: 1/true/yes/on or 0/false/no/off */

    /* General */
    log_level_t log_level;     /* LOG_LEVEL, info */
    int metrics_port;          /* 0 = off */
    int64_t http_timeout_ms;   /* 30000 */

    unsigned needs;            /* the CONFIG_NEED_* bits given to config_load() */

    /* Report */
    char **problems;           /* "NAME: what is wrong; expected ..." one per problem */
    size_t problem_count;
    char **warnings;           /* e.g. ignored KAFKA_* variables */
    size_t warning_count;
    config_entry_t *entries;   /* for config_print(), in a fixed order */
    size_t entry_count;
} config_t;

/* Loads every variable from the process environment into *cfg (zeroed first) and validates.
 * Invalid values keep their default so the struct is always usable for printing.
 * Returns the number of problems (0 = valid config), or -1 when memory ran out (cfg is then
 * freed and zeroed). Always call config_free() afterwards when the return is >= 0. */
int config_load(config_t *cfg, unsigned needs);

/* Same, reading from envp (NULL-terminated "NAME=value" array, like environ). For tests. */
int config_load_env(config_t *cfg, unsigned needs, char *const *envp);

/* Frees everything owned by cfg and zeroes it. Safe on a zeroed or already-freed config. */
void config_free(config_t *cfg);

/* Writes one line per variable: `NAME=value  # source` (source: env, file <path>, default,
 * unset). Secrets are printed as "***" (the Mongo URI with its password as "***"); then the
 * KAFKA_ passthrough properties and any warnings as comments. */
void config_print(const config_t *cfg, FILE *out);

/* Writes each problem on its own line ("config: <problem>") to out. */
void config_print_problems(const config_t *cfg, FILE *out);

/* Writes the --help section "Environment:" listing the variables a binary with these needs
 * reads, with defaults and a one-line description. */
void config_describe(unsigned needs, FILE *out);

/* Parses RFC 3339 "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" ('t'/'z'/' ' accepted for
 * 'T'/'Z'; fraction truncated to milliseconds) into Unix epoch milliseconds. Validates the
 * calendar (month, day of month incl. leap years, hour < 24, minute < 60, second <= 60).
 * Returns 0, or -1 when the text is not such a timestamp. */
int config_parse_rfc3339(const char *text, int64_t *epoch_ms);

/* Category for a Ploomes TagId from TICKET_TAGS, or NULL when the tag is not configured. */
const char *config_ticket_category(const config_t *cfg, int64_t tag_id);

#endif
