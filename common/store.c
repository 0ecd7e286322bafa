/* store_: MongoDB access (cursors, hashes, identity map, claims, settings, replays). See store.h. */
#include "store.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define STORE_DEFAULT_DB "pipeline"
#define STORE_DEFAULT_TIMEOUT_MS 5000
#define STORE_DUP_RETRIES 10   /* concurrent upserts of one _id on FerretDB: retry this often */
#define STORE_CLAIM_ROUNDS 10  /* claim: insert / take over / read, this many rounds at most */
#define STORE_READ_BATCH 500   /* ids per $in query */
/* writes per bulk: FerretDB 1.24 (SQLite) spins forever on an update command of 100 or more
 * statements that modify existing documents; stay well below */
#define STORE_WRITE_BATCH 50

#define COLL_CURSORS "cursors"
#define COLL_HASHES "milvus_hashes"
#define COLL_CLIENTS "clients"
#define COLL_TICKETS "tickets"
#define COLL_SETTINGS "settings"
#define COLL_REPLAYS "dlq_replays"
#define COLL_CLAIM_LOCKS "claim_locks"
#define STORE_LOCK_LEVELS 8 /* stale transfer locks skipped before giving up */

struct store {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char db[128];
    char hosts[256]; /* "host:port,..." for error messages (never the credentials) */
};

/* ---- small helpers -------------------------------------------------------------------------- */

/* Copies at most size-1 bytes of src (length len) and NUL-terminates. */
static void copy_text(char *dst, size_t size, const char *src, size_t len)
{
    if (size == 0)
        return;
    if (!src)
        len = 0;
    if (len >= size)
        len = size - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

static void copy_cstr(char *dst, size_t size, const char *src)
{
    copy_text(dst, size, src, src ? strlen(src) : 0);
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *kind_coll(store_kind_t kind)
{
    return kind == STORE_KIND_TICKETS ? COLL_TICKETS : COLL_CLIENTS;
}

/* Keys of `clients` are documents (CPF/CNPJ: personal data): never put them in messages. */
static const char *key_for_msg(store_kind_t kind, const char *key)
{
    return kind == STORE_KIND_TICKETS ? key : "(document)";
}

const char *store_rc_name(int rc)
{
    switch (rc) {
    case STORE_OK:
        return "ok";
    case STORE_NOT_FOUND:
        return "not_found";
    case STORE_CONFLICT:
        return "conflict";
    case STORE_DOWN:
        return "down";
    case STORE_REJECTED:
        return "rejected";
    }
    return "unknown";
}

static bool is_dup(const bson_error_t *e)
{
    return (e->domain == MONGOC_ERROR_SERVER || e->domain == MONGOC_ERROR_COLLECTION ||
            e->domain == MONGOC_ERROR_QUERY || e->domain == MONGOC_ERROR_COMMAND ||
            e->domain == MONGOC_ERROR_WRITE_CONCERN) &&
           (e->code == 11000 || e->code == 11001 || e->code == 12582);
}

/* Server error codes that mean "the server is there but cannot serve now": retry later. */
static bool transient_server_code(uint32_t code)
{
    static const uint32_t codes[] = {
        6,     /* HostUnreachable */
        7,     /* HostNotFound */
        50,    /* MaxTimeMSExpired */
        89,    /* NetworkTimeout */
        91,    /* ShutdownInProgress */
        112,   /* WriteConflict */
        189,   /* PrimarySteppedDown */
        262,   /* ExceededTimeLimit */
        9001,  /* SocketException */
        10107, /* NotWritablePrimary */
        11600, /* InterruptedAtShutdown */
        11602, /* InterruptedDueToReplStateChange */
        13435, /* NotPrimaryNoSecondaryOk */
        13436, /* NotPrimaryOrSecondary */
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (codes[i] == code)
            return true;
    return false;
}

/* FerretDB's SQLite backend reports a busy database as a generic error: treat as transient. */
static bool transient_message(const char *msg)
{
    return strstr(msg, "database is locked") || strstr(msg, "SQLITE_BUSY") ||
           strstr(msg, "connection reset") || strstr(msg, "timed out");
}

static int classify(const bson_error_t *e)
{
    if (is_dup(e))
        return STORE_CONFLICT;
    switch (e->domain) {
    case MONGOC_ERROR_STREAM:
    case MONGOC_ERROR_SERVER_SELECTION:
    case MONGOC_ERROR_PROTOCOL:
    case MONGOC_ERROR_POOL:
        return STORE_DOWN;
    case MONGOC_ERROR_CLIENT:
        return e->code == MONGOC_ERROR_CLIENT_AUTHENTICATE ? STORE_REJECTED : STORE_DOWN;
    case MONGOC_ERROR_SERVER:
    case MONGOC_ERROR_QUERY:
    case MONGOC_ERROR_COLLECTION:
    case MONGOC_ERROR_WRITE_CONCERN:
        if (transient_server_code(e->code) || transient_message(e->message))
            return STORE_DOWN;
        return STORE_REJECTED;
    default:
        return STORE_REJECTED;
    }
}

/* Classifies e, writes the operator's sentence and returns the code. */
static int fail(const store_t *st, const bson_error_t *e, const char *what, char *err,
                size_t errlen)
{
    int rc = classify(e);
    switch (rc) {
    case STORE_DOWN:
        errbuf_set(err, errlen,
                   "MongoDB at %s (MONGODB_URI) is unreachable or timed out while %s: %s "
                   "(retry later)",
                   st->hosts, what, e->message);
        break;
    case STORE_CONFLICT:
        errbuf_set(err, errlen, "MongoDB at %s: duplicate key while %s", st->hosts, what);
        break;
    default:
        errbuf_set(err, errlen, "MongoDB at %s refused %s: %s (domain %u, code %u)", st->hosts,
                   what, e->message, e->domain, e->code);
        break;
    }
    return rc;
}

static int64_t iter_int64(const bson_iter_t *it)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_BOOL:
        return bson_iter_as_int64(it);
    case BSON_TYPE_DATE_TIME:
        return bson_iter_date_time(it);
    default:
        return 0;
    }
}

static void iter_text(const bson_iter_t *it, char *dst, size_t size)
{
    if (BSON_ITER_HOLDS_UTF8(it)) {
        uint32_t len = 0;
        const char *s = bson_iter_utf8(it, &len);
        copy_text(dst, size, s, len);
    } else {
        copy_text(dst, size, "", 0);
    }
}

/* ---- documents <-> structs ------------------------------------------------------------------ */

/* One member of a C struct stored as a MongoDB field of the same meaning. The tables below are
 * the single list of each struct's fields: parsing, writing and validating all walk them. */
typedef enum { FIELD_TEXT, FIELD_INT64, FIELD_STATE } field_kind_t;
typedef struct {
    const char *name; /* MongoDB field */
    field_kind_t kind;
    size_t offset;    /* of the member */
    size_t size;      /* FIELD_TEXT: the char array's size */
    bool result;      /* store_entry_t: a result field (written by append_fields) */
} field_map_t;

#define TEXT_FIELD(type, name, member, result)                                                  \
    {name, FIELD_TEXT, offsetof(type, member), sizeof(((type *)0)->member), result}
#define INT_FIELD(type, name, member, result) {name, FIELD_INT64, offsetof(type, member), 0, result}

static const field_map_t CURSOR_FIELDS[] = {
    TEXT_FIELD(store_cursor_t, "_id", key, false),
    TEXT_FIELD(store_cursor_t, "stamp", stamp, false),
    INT_FIELD(store_cursor_t, "id", id, false),
    INT_FIELD(store_cursor_t, "updated_at", updated_at_ms, false),
    INT_FIELD(store_cursor_t, "last_poll_at", last_poll_at_ms, false),
    INT_FIELD(store_cursor_t, "last_ok_at", last_ok_at_ms, false),
    TEXT_FIELD(store_cursor_t, "last_error", last_error, false),
};

/* Every field of an entry; append_fields() writes the `result` ones in this order. */
static const field_map_t ENTRY_FIELDS[] = {
    TEXT_FIELD(store_entry_t, "_id", key, false),
    {"state", FIELD_STATE, offsetof(store_entry_t, state), 0, false},
    TEXT_FIELD(store_entry_t, "owner", owner, false),
    TEXT_FIELD(store_entry_t, "claim_id", claim_id, false),
    INT_FIELD(store_entry_t, "lease_until", lease_until_ms, false),
    INT_FIELD(store_entry_t, "created_at", created_at_ms, false),
    INT_FIELD(store_entry_t, "updated_at", updated_at_ms, false),
    INT_FIELD(store_entry_t, "ploomes_id", ploomes_id, true),
    INT_FIELD(store_entry_t, "milvus_id", milvus_id, true),
    TEXT_FIELD(store_entry_t, "milvus_token", milvus_token, true),
    TEXT_FIELD(store_entry_t, "origin", origin, true),
    TEXT_FIELD(store_entry_t, "codigo", codigo, true),
    TEXT_FIELD(store_entry_t, "milvus_client_token", milvus_client_token, true),
};

#define FIELD_COUNT(table) (sizeof(table) / sizeof((table)[0]))

static store_state_t state_of(const char *s)
{
    return strcmp(s, "done") == 0      ? STORE_STATE_DONE
           : strcmp(s, "pending") == 0 ? STORE_STATE_PENDING
                                       : STORE_STATE_NONE;
}

/* Zeroes *out (a struct of size out_size), then copies each field of doc that the table names
 * into its member. Unknown fields are ignored; a field of another BSON type reads as ""/0. */
static void parse_fields(const bson_t *doc, const field_map_t *map, size_t n, void *out,
                         size_t out_size)
{
    memset(out, 0, out_size);
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(k, map[i].name) != 0)
                continue;
            char *member = (char *)out + map[i].offset;
            if (map[i].kind == FIELD_TEXT) {
                iter_text(&it, member, map[i].size);
            } else if (map[i].kind == FIELD_INT64) {
                int64_t v = iter_int64(&it);
                memcpy(member, &v, sizeof v);
            } else {
                char text[16];
                iter_text(&it, text, sizeof text);
                store_state_t state = state_of(text);
                memcpy(member, &state, sizeof state);
            }
            break;
        }
    }
}

static void parse_cursor(const bson_t *doc, store_cursor_t *out)
{
    parse_fields(doc, CURSOR_FIELDS, FIELD_COUNT(CURSOR_FIELDS), out, sizeof *out);
    out->has_position = bson_has_field(doc, "stamp");
}

static void parse_entry(const bson_t *doc, store_entry_t *out)
{
    parse_fields(doc, ENTRY_FIELDS, FIELD_COUNT(ENTRY_FIELDS), out, sizeof *out);
}

/* Appends the set result fields of f (NULL = none) to doc: numbers when non-zero, texts when
 * non-empty. */
static void append_fields(bson_t *doc, const store_entry_t *f)
{
    for (size_t i = 0; f && i < FIELD_COUNT(ENTRY_FIELDS); i++) {
        const field_map_t *m = &ENTRY_FIELDS[i];
        const char *member = (const char *)f + m->offset;
        if (!m->result)
            continue;
        if (m->kind == FIELD_INT64) {
            int64_t v;
            memcpy(&v, member, sizeof v);
            if (v)
                BSON_APPEND_INT64(doc, m->name, v);
        } else if (member[0]) {
            BSON_APPEND_UTF8(doc, m->name, member);
        }
    }
}

/* Result texts must be NUL-terminated valid UTF-8 inside their arrays. */
static bool fields_ok(const store_entry_t *f, char *err, size_t errlen)
{
    for (size_t i = 0; f && i < FIELD_COUNT(ENTRY_FIELDS); i++) {
        const field_map_t *m = &ENTRY_FIELDS[i];
        if (!m->result || m->kind != FIELD_TEXT)
            continue;
        const char *s = (const char *)f + m->offset;
        const char *end = memchr(s, '\0', m->size);
        if (!end || !bson_utf8_validate(s, (size_t)(end - s), false)) {
            errbuf_set(err, errlen, "store: field %s is not NUL-terminated valid UTF-8", m->name);
            return false;
        }
    }
    return true;
}

/* The integer at doc.field (see iter_int64), or 0 when the field is absent. */
static int64_t field_int64(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, field) ? iter_int64(&it) : 0;
}

/* Appends {name: {field: value}}: a one-field sort order or projection of find options. */
static void append_one(bson_t *doc, const char *name, const char *field, int32_t value)
{
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, name, &sub);
    BSON_APPEND_INT32(&sub, field, value);
    bson_append_document_end(doc, &sub);
}

/* "<verb> <collection> <key>" for messages; never the key of a client (personal data). */
static void describe(char *what, size_t size, const char *verb, store_kind_t kind,
                     const char *key)
{
    snprintf(what, size, "%s %s %s", verb, kind_coll(kind), key_for_msg(kind, key));
}

/* Appends {_id: key, state: "pending", owner: owner}: owner's pending claim on key. */
static void append_pending_of(bson_t *filter, const char *key, const char *owner)
{
    BSON_APPEND_UTF8(filter, "_id", key);
    BSON_APPEND_UTF8(filter, "state", "pending");
    BSON_APPEND_UTF8(filter, "owner", owner);
}

/* Appends the update that settles an entry as done: $set state, updated_at and the result
 * fields f (NULL = none); $unset the claim's owner, lease and instance id. */
static void append_done(bson_t *update, int64_t now, const store_entry_t *f)
{
    bson_t set, unset;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "state", "done");
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    append_fields(&set, f);
    bson_append_document_end(update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "owner", "");
    BSON_APPEND_UTF8(&unset, "lease_until", "");
    BSON_APPEND_UTF8(&unset, "claim_id", "");
    bson_append_document_end(update, &unset);
}

/* A collection handle on a popped client. Caller: release(). */
typedef struct {
    store_t *st;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
} handle_t;

static handle_t acquire(store_t *st, const char *coll)
{
    handle_t h = {st, mongoc_client_pool_pop(st->pool), NULL};
    h.coll = mongoc_client_get_collection(h.client, st->db, coll);
    return h;
}

static void release(handle_t *h)
{
    if (h->coll)
        mongoc_collection_destroy(h->coll);
    if (h->client)
        mongoc_client_pool_push(h->st->pool, h->client);
    h->coll = NULL;
    h->client = NULL;
}

/* find_one: copies the first matching document into *out (init'd by this call on STORE_OK). */
static int find_one(handle_t *h, const bson_t *filter, const bson_t *opts, bson_t *out,
                    const char *what, char *err, size_t errlen)
{
    bson_t o = BSON_INITIALIZER;
    if (opts)
        bson_concat(&o, opts);
    if (!bson_has_field(&o, "limit"))
        BSON_APPEND_INT64(&o, "limit", 1);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(h->coll, filter, &o, NULL);
    const bson_t *doc;
    int rc = STORE_NOT_FOUND;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to(doc, out);
        rc = STORE_OK;
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) {
        if (rc == STORE_OK)
            bson_destroy(out);
        rc = fail(h->st, &e, what, err, errlen);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&o);
    return rc;
}

/* update_one with opts (e.g. upsert), retrying duplicate-key races (concurrent upserts of one
 * _id: mongod retries them itself, FerretDB may not). *matched gets matchedCount + upsertedCount. */
static int update_retry(handle_t *h, const bson_t *filter, const bson_t *update, bool upsert,
                        int64_t *matched, const char *what, char *err, size_t errlen)
{
    bson_t opts = BSON_INITIALIZER;
    if (upsert)
        BSON_APPEND_BOOL(&opts, "upsert", true);
    int rc = STORE_CONFLICT;
    bson_error_t e;
    for (int attempt = 0; attempt < STORE_DUP_RETRIES; attempt++) {
        bson_t reply;
        bool ok = mongoc_collection_update_one(h->coll, filter, update, &opts, &reply, &e);
        if (ok) {
            if (matched)
                *matched = field_int64(&reply, "matchedCount") +
                           field_int64(&reply, "upsertedCount");
            bson_destroy(&reply);
            rc = STORE_OK;
            break;
        }
        bson_destroy(&reply);
        if (!is_dup(&e) || !upsert) {
            rc = fail(h->st, &e, what, err, errlen);
            break;
        }
        pause_ms(1 + attempt * 2);
    }
    if (rc == STORE_CONFLICT)
        errbuf_set(err, errlen,
                   "MongoDB at %s: duplicate key persisted through %d retries while %s",
                   h->st->hosts, STORE_DUP_RETRIES, what);
    bson_destroy(&opts);
    return rc;
}

/* find_one of the document whose _id is the string id. */
static int find_by_id(handle_t *h, const char *id, bson_t *out, const char *what, char *err,
                      size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", id);
    int rc = find_one(h, &filter, NULL, out, what, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* update_retry, upserting, of the document whose _id is the string id. */
static int upsert_by_id(handle_t *h, const char *id, const bson_t *update, const char *what,
                        char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", id);
    int rc = update_retry(h, &filter, update, true, NULL, what, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* Appends {_id: {$in: [items[start..end).id]]}: the filter of one batch of ids. */
static void append_ids_in(bson_t *filter, const store_hash_t *items, size_t start, size_t end)
{
    bson_t idq, in;
    BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &idq);
    BSON_APPEND_ARRAY_BEGIN(&idq, "$in", &in);
    for (size_t i = start; i < end; i++) {
        char idx_key[16];
        const char *keytext;
        bson_uint32_to_string((uint32_t)(i - start), &keytext, idx_key, sizeof idx_key);
        bson_append_int64(&in, keytext, -1, items[i].id);
    }
    bson_append_array_end(&idq, &in);
    bson_append_document_end(filter, &idq);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* libmongoc's own messages go through log_ (logfmt), not its default stderr printer. */
static void mongoc_log_to_log(mongoc_log_level_t level, const char *domain, const char *message,
                              void *user_data)
{
    (void)user_data;
    log_level_t lvl;
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
        lvl = LOG_ERROR;
        break;
    case MONGOC_LOG_LEVEL_WARNING:
        lvl = LOG_WARN;
        break;
    case MONGOC_LOG_LEVEL_TRACE:
        return;
    default:
        lvl = LOG_DEBUG;
        break;
    }
    /* FerretDB does not implement endSessions; the driver warns on every pool teardown */
    if (message && strstr(message, "endSessions"))
        lvl = LOG_DEBUG;
    if (!log_enabled(lvl))
        return;
    char qd[64], qm[1024];
    log_msg(lvl, "mongoc", "domain=%s message=%s", log_quote(qd, sizeof qd, domain),
            log_quote(qm, sizeof qm, message));
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static void do_init(void)
{
    mongoc_log_set_handler(mongoc_log_to_log, NULL);
    mongoc_init();
}

void store_global_init(void) { pthread_once(&init_once, do_init); }

void store_global_cleanup(void) { mongoc_cleanup(); }

store_t *store_open(const char *uri_text, char *err, size_t errlen)
{
    store_global_init();
    if (!uri_text || !uri_text[0]) {
        errbuf_set(err, errlen, "MONGODB_URI is empty (expected mongodb://host:port/database)");
        return NULL;
    }
    bson_error_t e;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(uri_text, &e);
    if (!uri) {
        /* the driver's message can quote the URI: do not repeat it, it may hold a password */
        errbuf_set(err, errlen,
                   "MONGODB_URI is not a valid MongoDB URI (expected "
                   "mongodb://[user:password@]host:port/database[?options])");
        return NULL;
    }
    store_t *st = calloc(1, sizeof *st);
    if (!st) {
        mongoc_uri_destroy(uri);
        errbuf_set(err, errlen, "out of memory opening MongoDB");
        return NULL;
    }
    st->uri = uri;
    const char *db = mongoc_uri_get_database(uri);
    copy_cstr(st->db, sizeof st->db, db && db[0] ? db : STORE_DEFAULT_DB);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       STORE_DEFAULT_TIMEOUT_MS);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, STORE_DEFAULT_TIMEOUT_MS);

    size_t used = 0;
    st->hosts[0] = '\0';
    for (const mongoc_host_list_t *hl = mongoc_uri_get_hosts(uri); hl; hl = hl->next) {
        int n = snprintf(st->hosts + used, sizeof st->hosts - used, "%s%s", used ? "," : "",
                         hl->host_and_port);
        if (n < 0 || (size_t)n >= sizeof st->hosts - used)
            break;
        used += (size_t)n;
    }
    if (!st->hosts[0]) {
        const char *srv = mongoc_uri_get_srv_hostname(uri);
        copy_cstr(st->hosts, sizeof st->hosts, srv ? srv : "(no host)");
    }

    st->pool = mongoc_client_pool_new(uri);
    if (!st->pool) {
        errbuf_set(err, errlen, "MONGODB_URI: the MongoDB driver refused the URI's options");
        store_close(st);
        return NULL;
    }
    mongoc_client_pool_set_error_api(st->pool, MONGOC_ERROR_API_VERSION_2);
    if (!mongoc_uri_get_appname(uri))
        mongoc_client_pool_set_appname(st->pool, "ploomes-milvus-pipeline");
    return st;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    if (st->pool)
        mongoc_client_pool_destroy(st->pool);
    mongoc_uri_destroy(st->uri);
    free(st);
}

mongoc_client_pool_t *store_pool(store_t *st) { return st->pool; }

const char *store_db_name(const store_t *st) { return st->db; }

int store_ping(store_t *st, char *err, size_t errlen)
{
    mongoc_client_t *c = mongoc_client_pool_pop(st->pool);
    bson_t cmd = BSON_INITIALIZER;
    BSON_APPEND_INT32(&cmd, "ping", 1);
    bson_error_t e;
    bool ok = mongoc_client_command_simple(c, st->db, &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    mongoc_client_pool_push(st->pool, c);
    return ok ? STORE_OK : fail(st, &e, "pinging the server", err, errlen);
}

/* Creates one ascending index on `fields` ("a" or "a,b"), named like mongod's default
 * (a_1[_b_1]). One index per command: FerretDB 1.24 panics and drops the connection on a
 * createIndexes holding two or more indexes that all exist already. */
static int create_index(store_t *st, mongoc_database_t *db, const char *coll, const char *fields,
                        char *err, size_t errlen)
{
    bson_t cmd = BSON_INITIALIZER, indexes, index, key;
    char name[128] = "";
    size_t used = 0;
    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
    BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
    BSON_APPEND_DOCUMENT_BEGIN(&index, "key", &key);
    const char *p = fields;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        bson_append_int32(&key, p, (int)len, 1);
        int w = snprintf(name + used, sizeof name - used, "%s%.*s_1", used ? "_" : "", (int)len,
                         p);
        if (w > 0 && (size_t)w < sizeof name - used)
            used += (size_t)w;
        p += len;
        if (*p == ',')
            p++;
    }
    bson_append_document_end(&index, &key);
    BSON_APPEND_UTF8(&index, "name", name);
    bson_append_document_end(&indexes, &index);
    bson_append_array_end(&cmd, &indexes);
    bson_error_t e;
    bool ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    if (ok)
        return STORE_OK;
    char what[160];
    snprintf(what, sizeof what, "creating index %s of %s", name, coll);
    return fail(st, &e, what, err, errlen);
}

int store_ensure_indexes(store_t *st, char *err, size_t errlen)
{
    mongoc_client_t *c = mongoc_client_pool_pop(st->pool);
    mongoc_database_t *db = mongoc_client_get_database(c, st->db);
    static const struct {
        const char *coll, *fields;
    } wanted[] = {{COLL_CLIENTS, "ploomes_id"},
                  {COLL_CLIENTS, "milvus_id"},
                  {COLL_TICKETS, "state,lease_until"}};
    int rc = STORE_OK;
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0] && rc == STORE_OK; i++)
        rc = create_index(st, db, wanted[i].coll, wanted[i].fields, err, errlen);
    mongoc_database_destroy(db);
    mongoc_client_pool_push(st->pool, c);
    return rc;
}

/* ---- cursors -------------------------------------------------------------------------------- */

static bool key_ok(const char *key, const char *what, char *err, size_t errlen)
{
    if (!key || !key[0] || strlen(key) >= STORE_KEY_MAX) {
        errbuf_set(err, errlen, "store: %s needs a non-empty key shorter than %d bytes", what,
                   STORE_KEY_MAX);
        return false;
    }
    return true;
}

int store_cursor_get(store_t *st, const char *key, store_cursor_t *out, char *err, size_t errlen)
{
    if (!key_ok(key, "store_cursor_get", err, errlen))
        return STORE_REJECTED;
    handle_t h = acquire(st, COLL_CURSORS);
    bson_t doc;
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "reading cursor %s", key);
    int rc = find_by_id(&h, key, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        parse_cursor(&doc, out);
        bson_destroy(&doc);
    } else if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "no cursor %s yet", key);
    }
    release(&h);
    return rc;
}

int store_cursor_set(store_t *st, const char *key, const char *stamp, int64_t id, char *err,
                     size_t errlen)
{
    if (!key_ok(key, "store_cursor_set", err, errlen))
        return STORE_REJECTED;
    handle_t h = acquire(st, COLL_CURSORS);
    bson_t update = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "stamp", stamp ? stamp : "");
    BSON_APPEND_INT64(&set, "id", id);
    BSON_APPEND_DATE_TIME(&set, "updated_at", clock_wall_ms());
    bson_append_document_end(&update, &set);
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "saving cursor %s", key);
    int rc = upsert_by_id(&h, key, &update, what, err, errlen);
    bson_destroy(&update);
    release(&h);
    return rc;
}

int store_cursor_poll_result(store_t *st, const char *key, bool ok, const char *error_text,
                             char *err, size_t errlen)
{
    if (!key_ok(key, "store_cursor_poll_result", err, errlen))
        return STORE_REJECTED;
    handle_t h = acquire(st, COLL_CURSORS);
    bson_t update = BSON_INITIALIZER, set;
    int64_t now = clock_wall_ms();
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_DATE_TIME(&set, "last_poll_at", now);
    if (ok) {
        BSON_APPEND_DATE_TIME(&set, "last_ok_at", now);
        BSON_APPEND_UTF8(&set, "last_error", "");
    } else {
        char text[STORE_ERRTEXT_MAX];
        copy_cstr(text, sizeof text, error_text && error_text[0] ? error_text : "unknown error");
        /* a cut inside a UTF-8 sequence would make invalid BSON: drop up to 3 trailing bytes */
        size_t len = strlen(text);
        for (int cut = 0; cut < 4 && len > 0 && !bson_utf8_validate(text, len, false); cut++)
            text[--len] = '\0';
        if (!bson_utf8_validate(text, len, false))
            copy_cstr(text, sizeof text, "(error text is not valid UTF-8)");
        BSON_APPEND_UTF8(&set, "last_error", text);
    }
    bson_append_document_end(&update, &set);
    char what[STORE_KEY_MAX + 40];
    snprintf(what, sizeof what, "saving poll result of %s", key);
    int rc = upsert_by_id(&h, key, &update, what, err, errlen);
    bson_destroy(&update);
    release(&h);
    return rc;
}

int store_cursor_list(store_t *st, store_cursor_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    handle_t h = acquire(st, COLL_CURSORS);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    append_one(&opts, "sort", "_id", 1);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(h.coll, &filter, &opts, NULL);
    const bson_t *doc;
    size_t cap = 0;
    int rc = STORE_OK;
    while (mongoc_cursor_next(cur, &doc)) {
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            store_cursor_t *grown = realloc(*out, ncap * sizeof **out);
            if (!grown) {
                errbuf_set(err, errlen, "out of memory listing cursors");
                rc = STORE_REJECTED;
                break;
            }
            *out = grown;
            cap = ncap;
        }
        parse_cursor(doc, &(*out)[(*n)++]);
    }
    bson_error_t e;
    if (rc == STORE_OK && mongoc_cursor_error(cur, &e))
        rc = fail(st, &e, "listing cursors", err, errlen);
    if (rc != STORE_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    release(&h);
    return rc;
}

/* ---- hashes --------------------------------------------------------------------------------- */

int store_hashes_get(store_t *st, store_hash_t *items, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        items[i].hash[0] = '\0';
    if (n == 0)
        return STORE_OK;
    handle_t h = acquire(st, COLL_HASHES);
    int rc = STORE_OK;
    for (size_t start = 0; start < n && rc == STORE_OK; start += STORE_READ_BATCH) {
        size_t end = start + STORE_READ_BATCH < n ? start + STORE_READ_BATCH : n;
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
        append_ids_in(&filter, items, start, end);
        append_one(&opts, "projection", "hash", 1);
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(h.coll, &filter, &opts, NULL);
        const bson_t *doc;
        while (mongoc_cursor_next(cur, &doc)) {
            bson_iter_t it;
            int64_t id = field_int64(doc, "_id");
            char hash[STORE_HASH_MAX] = "";
            if (bson_iter_init_find(&it, doc, "hash"))
                iter_text(&it, hash, sizeof hash);
            for (size_t i = start; i < end; i++)
                if (items[i].id == id)
                    memcpy(items[i].hash, hash, sizeof hash);
        }
        bson_error_t e;
        if (mongoc_cursor_error(cur, &e))
            rc = fail(st, &e, "reading Milvus content hashes", err, errlen);
        mongoc_cursor_destroy(cur);
        bson_destroy(&filter);
        bson_destroy(&opts);
    }
    release(&h);
    return rc;
}

/* exists[i-start] = whether items[i].id has a document. One $in query. Inserting the new ids
 * and updating only the existing ones matters on FerretDB 1.24 (SQLite): it finds numeric _ids
 * by scanning, so every upsert costs a scan (17 ms per upsert at 1,200 documents) while a bulk
 * insert of 1,200 takes 40 ms. */
static bool existing_ids(handle_t *h, const store_hash_t *items, size_t start, size_t end,
                         bool *exists, bson_error_t *e)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    append_ids_in(&filter, items, start, end);
    append_one(&opts, "projection", "_id", 1);
    for (size_t i = start; i < end; i++)
        exists[i - start] = false;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(h->coll, &filter, &opts, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, "_id"))
            continue;
        int64_t id = iter_int64(&it);
        for (size_t i = start; i < end; i++)
            if (items[i].id == id)
                exists[i - start] = true;
    }
    bool ok = !mongoc_cursor_error(cur, e);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return ok;
}

int store_hashes_set(store_t *st, const store_hash_t *items, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (!items[i].hash[0] || !memchr(items[i].hash, '\0', sizeof items[i].hash)) {
            errbuf_set(err, errlen, "store_hashes_set: item %zu (Milvus id %lld) has no hash", i,
                       (long long)items[i].id);
            return STORE_REJECTED;
        }
    }
    if (n == 0)
        return STORE_OK;
    handle_t h = acquire(st, COLL_HASHES);
    int rc = STORE_OK;
    int64_t now = clock_wall_ms();
    for (size_t start = 0; start < n && rc == STORE_OK; start += STORE_WRITE_BATCH) {
        size_t end = start + STORE_WRITE_BATCH < n ? start + STORE_WRITE_BATCH : n;
        for (int attempt = 0;; attempt++) {
            bson_t bopts = BSON_INITIALIZER, uopts = BSON_INITIALIZER;
            BSON_APPEND_BOOL(&bopts, "ordered", false);
            BSON_APPEND_BOOL(&uopts, "upsert", true);
            bson_error_t e;
            bool exists[STORE_WRITE_BATCH];
            if (!existing_ids(&h, items, start, end, exists, &e)) {
                bson_destroy(&bopts);
                bson_destroy(&uopts);
                rc = fail(st, &e, "reading Milvus content hashes before saving", err, errlen);
                break;
            }
            mongoc_bulk_operation_t *bulk =
                mongoc_collection_create_bulk_operation_with_opts(h.coll, &bopts);
            bool ok = true;
            for (size_t i = start; i < end && ok; i++) {
                if (!exists[i - start]) {
                    bson_t doc = BSON_INITIALIZER;
                    BSON_APPEND_INT64(&doc, "_id", items[i].id);
                    BSON_APPEND_UTF8(&doc, "hash", items[i].hash);
                    BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
                    ok = mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, &e);
                    bson_destroy(&doc);
                    continue;
                }
                bson_t sel = BSON_INITIALIZER, upd = BSON_INITIALIZER, set;
                BSON_APPEND_INT64(&sel, "_id", items[i].id);
                BSON_APPEND_DOCUMENT_BEGIN(&upd, "$set", &set);
                BSON_APPEND_UTF8(&set, "hash", items[i].hash);
                BSON_APPEND_DATE_TIME(&set, "updated_at", now);
                bson_append_document_end(&upd, &set);
                ok = mongoc_bulk_operation_update_one_with_opts(bulk, &sel, &upd, &uopts, &e);
                bson_destroy(&sel);
                bson_destroy(&upd);
            }
            bson_t reply;
            if (ok)
                ok = mongoc_bulk_operation_execute(bulk, &reply, &e) != 0;
            else
                bson_init(&reply);
            bson_destroy(&reply);
            mongoc_bulk_operation_destroy(bulk);
            bson_destroy(&bopts);
            bson_destroy(&uopts);
            if (ok)
                break;
            /* duplicate-key races (concurrent upserts, or an id inserted since we looked): the
             * writes are idempotent, redo them (the ids now exist: upserts this time) */
            if (is_dup(&e) && attempt + 1 < STORE_DUP_RETRIES) {
                pause_ms(1 + attempt * 2);
                continue;
            }
            rc = fail(st, &e, "saving Milvus content hashes", err, errlen);
            break;
        }
    }
    release(&h);
    return rc;
}

/* ---- entries and claims --------------------------------------------------------------------- */

static bool owner_ok(const char *owner, char *err, size_t errlen)
{
    if (!owner || !owner[0] || strlen(owner) >= STORE_OWNER_MAX) {
        errbuf_set(err, errlen, "store: a claim owner must be non-empty and shorter than %d bytes",
                   STORE_OWNER_MAX);
        return false;
    }
    return true;
}

/* A fresh random claim instance id (hex). */
static void new_claim_id(char *buf, size_t size)
{
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof raw) { /* no entropy source: time and address still make it unique here */
        int64_t t = clock_wall_ms();
        uintptr_t a = (uintptr_t)buf;
        memcpy(raw, &t, sizeof t);
        memcpy(raw + 8, &a, sizeof a < 8 ? sizeof a : 8);
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof raw && o + 2 < size; i++) {
        buf[o++] = hex[raw[i] >> 4];
        buf[o++] = hex[raw[i] & 15];
    }
    buf[o] = '\0';
}

/* Transfers the pending claim `cur` (as read) to `owner` with a new lease. FerretDB's
 * findAndModify and update are not atomic read-modify-writes (two concurrent conditional
 * findAndModify calls on one document both matched in our tests), so the transfer is decided by
 * the one primitive that is atomic everywhere: inserting a unique _id into `claim_locks`, named
 * after the claim instance being replaced. Exactly one transferer wins; the others are told
 * "busy". A lock whose winner died before updating the claim (a crash inside a few ms) goes stale
 * after lease_ms and the next lock level (#1, #2, ...) is tried.
 * Returns STORE_OK (won; *out filled), TRANSFER_BUSY (someone else is transferring it),
 * STORE_CONFLICT (the claim changed: re-read), STORE_DOWN / STORE_REJECTED. */
#define TRANSFER_BUSY 100
static int transfer(store_t *st, handle_t *h, store_kind_t kind, const store_entry_t *cur,
                    const char *owner, int64_t lease_ms, const char *what, store_entry_t *out,
                    char *err, size_t errlen)
{
    mongoc_client_t *client = h->client;
    mongoc_collection_t *locks = mongoc_client_get_collection(client, st->db, COLL_CLAIM_LOCKS);
    int rc = STORE_CONFLICT;
    bool won = false;
    for (int level = 0; level < STORE_LOCK_LEVELS && !won; level++) {
        char lock_id[STORE_KEY_MAX + STORE_OWNER_MAX + 128];
        snprintf(lock_id, sizeof lock_id, "%s/%s/%s/%lld/%s#%d", kind_coll(kind), cur->key,
                 cur->owner, (long long)cur->lease_until_ms, cur->claim_id, level);
        int64_t now = clock_wall_ms();
        bson_t lock = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&lock, "_id", lock_id);
        BSON_APPEND_UTF8(&lock, "by", owner);
        BSON_APPEND_DATE_TIME(&lock, "at", now);
        bson_error_t e;
        bool ok = mongoc_collection_insert_one(locks, &lock, NULL, NULL, &e);
        bson_destroy(&lock);
        if (ok) {
            won = true;
            break;
        }
        if (!is_dup(&e)) {
            rc = fail(st, &e, what, err, errlen);
            break;
        }
        /* someone holds this level: fine unless it is stale (its winner died mid-transfer) */
        bson_t doc;
        handle_t lh = {st, client, locks};
        int frc = find_by_id(&lh, lock_id, &doc, what, err, errlen);
        if (frc == STORE_NOT_FOUND)
            continue;
        if (frc != STORE_OK) {
            rc = frc;
            break;
        }
        int64_t at = field_int64(&doc, "at");
        bson_destroy(&doc);
        if (at + lease_ms >= now) {
            rc = TRANSFER_BUSY; /* a live transfer by someone else */
            break;
        }
    }
    mongoc_collection_destroy(locks);
    if (!won)
        return rc;

    /* we alone may replace this claim instance */
    int64_t now = clock_wall_ms();
    char claim_id[STORE_CLAIM_ID_MAX];
    new_claim_id(claim_id, sizeof claim_id);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    BSON_APPEND_UTF8(&filter, "_id", cur->key);
    BSON_APPEND_UTF8(&filter, "state", "pending");
    BSON_APPEND_UTF8(&filter, "claim_id", cur->claim_id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "owner", owner);
    BSON_APPEND_DATE_TIME(&set, "lease_until", now + lease_ms);
    BSON_APPEND_DATE_TIME(&set, "updated_at", now);
    BSON_APPEND_UTF8(&set, "claim_id", claim_id);
    bson_append_document_end(&update, &set);
    int64_t matched = 0;
    rc = update_retry(h, &filter, &update, false, &matched, what, err, errlen);
    bson_destroy(&filter);
    bson_destroy(&update);
    if (rc != STORE_OK)
        return rc;
    if (matched == 0)
        return STORE_CONFLICT; /* completed, released or re-created meanwhile */
    *out = *cur;
    copy_cstr(out->owner, sizeof out->owner, owner);
    copy_cstr(out->claim_id, sizeof out->claim_id, claim_id);
    out->lease_until_ms = now + lease_ms;
    out->updated_at_ms = now;
    return STORE_OK;
}

int store_claim(store_t *st, store_kind_t kind, const char *key, const char *owner,
                int64_t lease_ms, const store_entry_t *seed, store_claim_t *out, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!key_ok(key, "store_claim", err, errlen) || !owner_ok(owner, err, errlen) ||
        !fields_ok(seed, err, errlen))
        return STORE_REJECTED;
    if (lease_ms <= 0) {
        errbuf_set(err, errlen, "store_claim: lease_ms must be > 0");
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 64];
    describe(what, sizeof what, "claiming", kind, key);
    handle_t h = acquire(st, kind_coll(kind));
    int rc = STORE_CONFLICT;
    for (int round = 0; round < STORE_CLAIM_ROUNDS; round++) {
        if (round > 0)
            pause_ms(1 + round);
        int64_t now = clock_wall_ms();

        /* 1. nobody has it: insert a pending claim (the unique _id makes this atomic) */
        char claim_id[STORE_CLAIM_ID_MAX];
        new_claim_id(claim_id, sizeof claim_id);
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", key);
        BSON_APPEND_UTF8(&doc, "state", "pending");
        BSON_APPEND_UTF8(&doc, "owner", owner);
        BSON_APPEND_DATE_TIME(&doc, "lease_until", now + lease_ms);
        BSON_APPEND_UTF8(&doc, "claim_id", claim_id);
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
        append_fields(&doc, seed);
        bson_error_t e;
        bool inserted = mongoc_collection_insert_one(h.coll, &doc, NULL, NULL, &e);
        if (inserted) {
            parse_entry(&doc, &out->entry);
            bson_destroy(&doc);
            out->status = STORE_CLAIM_ACQUIRED;
            rc = STORE_OK;
            break;
        }
        bson_destroy(&doc);
        if (!is_dup(&e)) {
            rc = fail(st, &e, what, err, errlen);
            break;
        }

        /* 2. it exists: read it */
        bson_t found;
        rc = find_by_id(&h, key, &found, what, err, errlen);
        if (rc == STORE_NOT_FOUND) { /* released meanwhile: start over */
            rc = STORE_CONFLICT;
            continue;
        }
        if (rc != STORE_OK)
            break;
        store_entry_t cur;
        parse_entry(&found, &cur);
        bson_destroy(&found);
        if (cur.state == STORE_STATE_DONE) {
            out->status = STORE_CLAIM_DONE;
            out->entry = cur;
            break;
        }
        bool mine = strcmp(cur.owner, owner) == 0;
        if (cur.state == STORE_STATE_PENDING && !mine && cur.lease_until_ms >= clock_wall_ms()) {
            out->status = STORE_CLAIM_BUSY;
            out->entry = cur;
            break;
        }

        /* 3. pending and expired (or ours already): take it over, one winner only */
        rc = transfer(st, &h, kind, &cur, owner, lease_ms, what, &out->entry, err, errlen);
        if (rc == STORE_OK) {
            out->status = STORE_CLAIM_ACQUIRED;
            out->recovered = true;
            if (!mine)
                copy_cstr(out->previous_owner, sizeof out->previous_owner, cur.owner);
            break;
        }
        if (rc == TRANSFER_BUSY) {
            rc = STORE_OK;
            out->status = STORE_CLAIM_BUSY;
            out->entry = cur;
            break;
        }
        if (rc != STORE_CONFLICT)
            break;
        /* the claim changed under us (completed, released, re-created): look again */
    }
    if (rc == STORE_CONFLICT)
        errbuf_set(err, errlen, "MongoDB at %s: %s did not settle after %d rounds (retry later)",
                   st->hosts, what, STORE_CLAIM_ROUNDS);
    release(&h);
    /* rounds exhausted (claims churning faster than we can read them): "try later" */
    return rc == STORE_CONFLICT ? STORE_DOWN : rc;
}

/* How close to its end a lease may be when its owner settles it (complete, release, renew) with a
 * plain conditional write. FerretDB runs a conditional update/delete as a read followed by an
 * unconditional write by _id, so a write of the owner's that lands after a taker's transfer would
 * undo it (a release would delete the taker's claim, a complete would overwrite it). Takers only
 * transfer expired leases: an owner whose lease has less than this left (or none) first takes its
 * own claim back through the transfer lock, exactly like a taker, and settles the fresh instance. */
#define STORE_SETTLE_MARGIN_MS 2000
#define STORE_SETTLE_LEASE_MS 60000

/* Reads `key` and checks that `owner` holds it pending; when its lease ends within the margin,
 * re-takes it through the transfer lock (lease_ms) so no taker can be mid-transfer. On STORE_OK
 * *cur is the claim as held now (its claim_id identifies the instance to write to).
 * STORE_NOT_FOUND (err set: gone), STORE_CONFLICT (err says who holds it / done), DOWN, REJECTED. */
static int hold(store_t *st, handle_t *h, store_kind_t kind, const char *key, const char *owner,
                int64_t lease_ms, const char *what, store_entry_t *cur, char *err, size_t errlen)
{
    bson_t found;
    int rc = find_by_id(h, key, &found, what, err, errlen);
    if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "%s: not held by %s any more: the claim is gone", what, owner);
        return STORE_NOT_FOUND;
    }
    if (rc != STORE_OK)
        return rc;
    parse_entry(&found, cur);
    bson_destroy(&found);
    if (cur->state == STORE_STATE_DONE) {
        errbuf_set(err, errlen, "%s: not held by %s any more: it is already done", what, owner);
        return STORE_CONFLICT;
    }
    if (cur->state != STORE_STATE_PENDING || strcmp(cur->owner, owner) != 0) {
        errbuf_set(err, errlen, "%s: not held by %s any more: now held by %s", what, owner,
                   cur->owner[0] ? cur->owner : "(nobody)");
        return STORE_CONFLICT;
    }
    if (cur->lease_until_ms - STORE_SETTLE_MARGIN_MS > clock_wall_ms())
        return STORE_OK; /* live: takers leave it alone */
    store_entry_t after;
    rc = transfer(st, h, kind, cur, owner, lease_ms, what, &after, err, errlen);
    if (rc == STORE_OK) {
        *cur = after;
        return STORE_OK;
    }
    if (rc == TRANSFER_BUSY || rc == STORE_CONFLICT) {
        errbuf_set(err, errlen, "%s: the lease of %s expired and another owner is taking it over",
                   what, owner);
        return STORE_CONFLICT;
    }
    return rc;
}

/* Conditional update of owner's pending claim instance `cur` (from hold()). */
static int owner_update(handle_t *h, const store_entry_t *cur, const char *owner,
                        const bson_t *update, const char *what, char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    append_pending_of(&filter, cur->key, owner);
    BSON_APPEND_UTF8(&filter, "claim_id", cur->claim_id);
    int64_t matched = 0;
    int rc = update_retry(h, &filter, update, false, &matched, what, err, errlen);
    bson_destroy(&filter);
    if (rc == STORE_OK && matched == 0) {
        rc = STORE_CONFLICT;
        errbuf_set(err, errlen, "%s: changed while being written; %s no longer holds it", what,
                   owner);
    }
    return rc;
}

int store_claim_renew(store_t *st, store_kind_t kind, const char *key, const char *owner,
                      int64_t lease_ms, char *err, size_t errlen)
{
    if (!key_ok(key, "store_claim_renew", err, errlen) || !owner_ok(owner, err, errlen))
        return STORE_REJECTED;
    if (lease_ms <= 0) {
        errbuf_set(err, errlen, "store_claim_renew: lease_ms must be > 0");
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 64];
    describe(what, sizeof what, "renewing", kind, key);
    handle_t h = acquire(st, kind_coll(kind));
    store_entry_t cur;
    /* near or past its end the lease is re-taken through the transfer lock (hold()), which
     * already sets the new lease; a live one is extended by a conditional update */
    int rc = hold(st, &h, kind, key, owner, lease_ms, what, &cur, err, errlen);
    if (rc == STORE_NOT_FOUND)
        rc = STORE_CONFLICT;
    if (rc == STORE_OK) {
        int64_t now = clock_wall_ms();
        bson_t update = BSON_INITIALIZER, set;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_DATE_TIME(&set, "lease_until", now + lease_ms);
        BSON_APPEND_DATE_TIME(&set, "updated_at", now);
        bson_append_document_end(&update, &set);
        rc = owner_update(&h, &cur, owner, &update, what, err, errlen);
        bson_destroy(&update);
    }
    release(&h);
    return rc;
}

int store_complete(store_t *st, store_kind_t kind, const char *key, const char *owner,
                   const store_entry_t *result, char *err, size_t errlen)
{
    if (!key_ok(key, "store_complete", err, errlen) || !owner_ok(owner, err, errlen) ||
        !fields_ok(result, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    describe(what, sizeof what, "completing", kind, key);
    handle_t h = acquire(st, kind_coll(kind));
    store_entry_t cur;
    int rc = hold(st, &h, kind, key, owner, STORE_SETTLE_LEASE_MS, what, &cur, err, errlen);
    if (rc == STORE_OK) {
        bson_t update = BSON_INITIALIZER;
        append_done(&update, clock_wall_ms(), result);
        rc = owner_update(&h, &cur, owner, &update, what, err, errlen);
        bson_destroy(&update);
    } else if (rc == STORE_NOT_FOUND) {
        /* Nobody holds it, but the caller created the record at the target: write it down, or
         * the next claim (not "recovered", so no search) would create it a second time. An
         * insert: if someone claimed it meanwhile, they hold it and we leave them alone. */
        int64_t now = clock_wall_ms();
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", key);
        BSON_APPEND_UTF8(&doc, "state", "done");
        BSON_APPEND_DATE_TIME(&doc, "created_at", now);
        BSON_APPEND_DATE_TIME(&doc, "updated_at", now);
        append_fields(&doc, result);
        bson_error_t e;
        bool ok = mongoc_collection_insert_one(h.coll, &doc, NULL, NULL, &e);
        bson_destroy(&doc);
        rc = STORE_CONFLICT;
        if (ok)
            errbuf_set(err, errlen,
                       "%s: the claim of %s was gone (released or deleted); its result was "
                       "recorded as done anyway",
                       what, owner);
        else if (!is_dup(&e))
            rc = fail(st, &e, what, err, errlen);
    }
    release(&h);
    return rc;
}

int store_release(store_t *st, store_kind_t kind, const char *key, const char *owner, char *err,
                  size_t errlen)
{
    if (!key_ok(key, "store_release", err, errlen) || !owner_ok(owner, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    describe(what, sizeof what, "releasing", kind, key);
    handle_t h = acquire(st, kind_coll(kind));
    store_entry_t cur;
    int rc = hold(st, &h, kind, key, owner, STORE_SETTLE_LEASE_MS, what, &cur, err, errlen);
    if (rc == STORE_NOT_FOUND) {
        rc = STORE_CONFLICT;
        errbuf_set(err, errlen, "%s: %s holds no pending claim on it", what, owner);
    }
    if (rc == STORE_OK) {
        bson_t filter = BSON_INITIALIZER, reply;
        append_pending_of(&filter, key, owner);
        BSON_APPEND_UTF8(&filter, "claim_id", cur.claim_id);
        bson_error_t e;
        if (mongoc_collection_delete_one(h.coll, &filter, NULL, &reply, &e)) {
            rc = field_int64(&reply, "deletedCount") > 0 ? STORE_OK : STORE_CONFLICT;
            if (rc == STORE_CONFLICT)
                errbuf_set(err, errlen, "%s: %s holds no pending claim on it", what, owner);
        } else {
            rc = fail(st, &e, what, err, errlen);
        }
        bson_destroy(&reply);
        bson_destroy(&filter);
    }
    release(&h);
    return rc;
}

int store_record_done(store_t *st, store_kind_t kind, const char *key,
                      const store_entry_t *fields, char *err, size_t errlen)
{
    if (!key_ok(key, "store_record_done", err, errlen) || !fields_ok(fields, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    describe(what, sizeof what, "recording", kind, key);
    int64_t now = clock_wall_ms();
    bson_t update = BSON_INITIALIZER, soi;
    append_done(&update, now, fields);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
    BSON_APPEND_DATE_TIME(&soi, "created_at", now);
    bson_append_document_end(&update, &soi);
    handle_t h = acquire(st, kind_coll(kind));
    int rc = upsert_by_id(&h, key, &update, what, err, errlen);
    release(&h);
    bson_destroy(&update);
    return rc;
}

int store_get(store_t *st, store_kind_t kind, const char *key, store_entry_t *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!key_ok(key, "store_get", err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 64];
    describe(what, sizeof what, "reading", kind, key);
    handle_t h = acquire(st, kind_coll(kind));
    bson_t doc;
    int rc = find_by_id(&h, key, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        parse_entry(&doc, out);
        bson_destroy(&doc);
    } else if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "%s: not found", what);
    }
    release(&h);
    return rc;
}

static int client_by(store_t *st, const char *field, int64_t id, store_entry_t *out, char *err,
                     size_t errlen)
{
    memset(out, 0, sizeof *out);
    char what[96];
    snprintf(what, sizeof what, "looking up clients by %s %lld", field, (long long)id);
    handle_t h = acquire(st, COLL_CLIENTS);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_INT64(&filter, field, id);
    append_one(&opts, "sort", "updated_at", -1);
    BSON_APPEND_INT64(&opts, "limit", 20);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(h.coll, &filter, &opts, NULL);
    const bson_t *doc;
    int rc = STORE_NOT_FOUND;
    while (mongoc_cursor_next(cur, &doc)) {
        store_entry_t e;
        parse_entry(doc, &e);
        if (rc == STORE_NOT_FOUND || (out->state != STORE_STATE_DONE && e.state == STORE_STATE_DONE))
            *out = e;
        rc = STORE_OK;
    }
    bson_error_t e;
    if (mongoc_cursor_error(cur, &e)) {
        memset(out, 0, sizeof *out);
        rc = fail(st, &e, what, err, errlen);
    } else if (rc == STORE_NOT_FOUND) {
        errbuf_set(err, errlen, "%s: not found", what);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    release(&h);
    return rc;
}

int store_client_by_ploomes_id(store_t *st, int64_t ploomes_id, store_entry_t *out, char *err,
                               size_t errlen)
{
    return client_by(st, "ploomes_id", ploomes_id, out, err, errlen);
}

int store_client_by_milvus_id(store_t *st, int64_t milvus_id, store_entry_t *out, char *err,
                              size_t errlen)
{
    return client_by(st, "milvus_id", milvus_id, out, err, errlen);
}

/* ---- settings ------------------------------------------------------------------------------- */

static int setting_read(handle_t *h, const char *name, char *out, size_t outlen,
                        const char *what, char *err, size_t errlen)
{
    bson_t doc;
    int rc = find_by_id(h, name, &doc, what, err, errlen);
    if (rc != STORE_OK)
        return rc;
    bson_iter_t it;
    uint32_t len = 0;
    const char *v = NULL;
    if (bson_iter_init_find(&it, &doc, "value") && BSON_ITER_HOLDS_UTF8(&it))
        v = bson_iter_utf8(&it, &len);
    if (!v) {
        rc = STORE_REJECTED;
        errbuf_set(err, errlen, "%s: the stored value is not text", what);
    } else if ((size_t)len >= outlen) {
        rc = STORE_REJECTED;
        errbuf_set(err, errlen, "%s: the stored value (%u bytes) does not fit the buffer", what,
                   (unsigned)len);
    } else {
        copy_text(out, outlen, v, len);
    }
    bson_destroy(&doc);
    return rc;
}

int store_setting_get_or_init(store_t *st, const char *name, const char *initial, char *out,
                              size_t outlen, char *err, size_t errlen)
{
    if (!key_ok(name, "store_setting_get_or_init", err, errlen))
        return STORE_REJECTED;
    if (!initial || !out || outlen == 0) {
        errbuf_set(err, errlen,
                   "store_setting_get_or_init(%s): needs an initial value and a buffer", name);
        return STORE_REJECTED;
    }
    char what[STORE_KEY_MAX + 32];
    snprintf(what, sizeof what, "reading setting %s", name);
    handle_t h = acquire(st, COLL_SETTINGS);
    int rc = setting_read(&h, name, out, outlen, what, err, errlen);
    if (rc == STORE_NOT_FOUND) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", name);
        BSON_APPEND_UTF8(&doc, "value", initial);
        BSON_APPEND_DATE_TIME(&doc, "created_at", clock_wall_ms());
        bson_error_t e;
        if (mongoc_collection_insert_one(h.coll, &doc, NULL, NULL, &e)) {
            if (strlen(initial) >= outlen) {
                rc = STORE_REJECTED;
                errbuf_set(err, errlen, "%s: the value does not fit the buffer", what);
            } else {
                copy_cstr(out, outlen, initial);
                rc = STORE_OK;
                log_msg(LOG_INFO, "setting_initialised", "name=%s", name);
            }
        } else if (is_dup(&e)) {
            /* someone else initialised it first: theirs wins */
            rc = setting_read(&h, name, out, outlen, what, err, errlen);
            if (rc == STORE_NOT_FOUND) {
                rc = STORE_DOWN;
                errbuf_set(err, errlen, "%s: inserted concurrently but not readable yet", what);
            }
        } else {
            rc = fail(st, &e, what, err, errlen);
        }
        bson_destroy(&doc);
    }
    release(&h);
    return rc;
}

/* ---- DLQ replays ---------------------------------------------------------------------------- */

static bool replay_id(char *buf, size_t size, const char *topic, int32_t partition,
                      int64_t offset, char *err, size_t errlen)
{
    int n = snprintf(buf, size, "%s/%d/%lld", topic ? topic : "", (int)partition,
                     (long long)offset);
    if (!topic || !topic[0] || n < 0 || (size_t)n >= size) {
        errbuf_set(err, errlen, "store: a replay needs a topic shorter than %d bytes",
                   STORE_KEY_MAX - 32);
        return false;
    }
    return true;
}

int store_replay_get(store_t *st, const char *topic, int32_t partition, int64_t offset,
                     store_replay_t *out, char *err, size_t errlen)
{
    char id[STORE_KEY_MAX];
    if (!replay_id(id, sizeof id, topic, partition, offset, err, errlen))
        return STORE_REJECTED;
    char what[STORE_KEY_MAX + 40];
    snprintf(what, sizeof what, "reading replay record %s", id);
    handle_t h = acquire(st, COLL_REPLAYS);
    bson_t doc;
    int rc = find_by_id(&h, id, &doc, what, err, errlen);
    if (rc == STORE_OK) {
        if (out) {
            memset(out, 0, sizeof *out);
            out->first_at_ms = field_int64(&doc, "first_at");
            out->last_at_ms = field_int64(&doc, "last_at");
            out->count = field_int64(&doc, "count");
            bson_iter_t it;
            if (bson_iter_init_find(&it, &doc, "by"))
                iter_text(&it, out->by, sizeof out->by);
        }
        bson_destroy(&doc);
    }
    release(&h);
    return rc;
}

int store_replay_mark(store_t *st, const char *topic, int32_t partition, int64_t offset,
                      const char *by, bool force, char *err, size_t errlen)
{
    char id[STORE_KEY_MAX];
    if (!replay_id(id, sizeof id, topic, partition, offset, err, errlen))
        return STORE_REJECTED;
    char byv[STORE_OWNER_MAX];
    copy_cstr(byv, sizeof byv, by && by[0] ? by : "unknown");
    if (!bson_utf8_validate(byv, strlen(byv), false))
        copy_cstr(byv, sizeof byv, "unknown");
    char what[STORE_KEY_MAX + 40];
    snprintf(what, sizeof what, "recording replay %s", id);
    int64_t now = clock_wall_ms();
    handle_t h = acquire(st, COLL_REPLAYS);
    int rc;
    if (!force) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "topic", topic);
        BSON_APPEND_INT32(&doc, "partition", partition);
        BSON_APPEND_INT64(&doc, "offset", offset);
        BSON_APPEND_UTF8(&doc, "by", byv);
        BSON_APPEND_INT64(&doc, "count", 1);
        BSON_APPEND_DATE_TIME(&doc, "first_at", now);
        BSON_APPEND_DATE_TIME(&doc, "last_at", now);
        bson_error_t e;
        if (mongoc_collection_insert_one(h.coll, &doc, NULL, NULL, &e))
            rc = STORE_OK;
        else if (is_dup(&e)) {
            rc = STORE_CONFLICT;
            errbuf_set(err, errlen,
                       "dead letter %s was already replayed (use --force to replay again)", id);
        } else
            rc = fail(st, &e, what, err, errlen);
        bson_destroy(&doc);
    } else {
        bson_t update = BSON_INITIALIZER, set, inc, soi;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "topic", topic);
        BSON_APPEND_INT32(&set, "partition", partition);
        BSON_APPEND_INT64(&set, "offset", offset);
        BSON_APPEND_UTF8(&set, "by", byv);
        BSON_APPEND_DATE_TIME(&set, "last_at", now);
        bson_append_document_end(&update, &set);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "count", 1);
        bson_append_document_end(&update, &inc);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &soi);
        BSON_APPEND_DATE_TIME(&soi, "first_at", now);
        bson_append_document_end(&update, &soi);
        rc = upsert_by_id(&h, id, &update, what, err, errlen);
        bson_destroy(&update);
    }
    release(&h);
    return rc;
}
