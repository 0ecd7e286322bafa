/* store_: MongoDB access, the core: errors, round trips, field tables, handles, open, ping and
 * indexes. The concerns live beside it (store_cursor, store_hash, store_claim, store_cache,
 * store_lease, store_clock, store_misc; shared internals in store_int.h). See store.h. */
#include "store_int.h"

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

/* socketTimeoutMS unless MONGODB_URI sets it (store_open). */
#define STORE_SOCKET_TIMEOUT_MS 20000

/* ---- small helpers -------------------------------------------------------------------------- */

/* Copies at most size-1 bytes of src (length len) and NUL-terminates. */
void st_copy_text(char *dst, size_t size, const char *src, size_t len)
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

void st_copy_cstr(char *dst, size_t size, const char *src)
{
    st_copy_text(dst, size, src, src ? strlen(src) : 0);
}

void st_pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *st_kind_coll(store_kind_t kind)
{
    return kind == STORE_KIND_TICKETS ? COLL_TICKETS : COLL_CLIENTS;
}

const char *st_done_coll(store_kind_t kind)
{
    return kind == STORE_KIND_TICKETS ? COLL_TICKETS_DONE : NULL;
}

/* Keys of `clients` are documents (CPF/CNPJ: personal data): never put them in messages. */
const char *st_key_for_msg(store_kind_t kind, const char *key)
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

bool st_is_dup(const bson_error_t *e)
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
    if (st_is_dup(e))
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
int st_fail(const store_t *st, const bson_error_t *e, const char *what, char *err,
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

int64_t st_iter_int64(const bson_iter_t *it)
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

void st_iter_text(const bson_iter_t *it, char *dst, size_t size)
{
    if (BSON_ITER_HOLDS_UTF8(it)) {
        uint32_t len = 0;
        const char *s = bson_iter_utf8(it, &len);
        st_copy_text(dst, size, s, len);
    } else {
        st_copy_text(dst, size, "", 0);
    }
}

/* ---- documents <-> structs ------------------------------------------------------------------ */

/* One member of a C struct stored as a MongoDB field of the same meaning. The tables below are
 * the single list of each struct's fields: parsing, writing and validating all walk them. */
#define TEXT_FIELD(type, name, member, result)                                                  \
    {name, FIELD_TEXT, offsetof(type, member), sizeof(((type *)0)->member), result}
#define INT_FIELD(type, name, member, result) {name, FIELD_INT64, offsetof(type, member), 0, result}

const field_map_t ST_CURSOR_FIELDS[] = {
    TEXT_FIELD(store_cursor_t, "_id", key, false),
    TEXT_FIELD(store_cursor_t, "stamp", stamp, false),
    INT_FIELD(store_cursor_t, "id", id, false),
    INT_FIELD(store_cursor_t, "updated_at", updated_at_ms, false),
    INT_FIELD(store_cursor_t, "last_poll_at", last_poll_at_ms, false),
    INT_FIELD(store_cursor_t, "last_ok_at", last_ok_at_ms, false),
    TEXT_FIELD(store_cursor_t, "last_error", last_error, false),
};

/* Every field of an entry; st_append_fields() writes the `result` ones in this order. */
const field_map_t ST_ENTRY_FIELDS[] = {
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
const size_t ST_CURSOR_FIELDS_N = FIELD_COUNT(ST_CURSOR_FIELDS);
const size_t ST_ENTRY_FIELDS_N = FIELD_COUNT(ST_ENTRY_FIELDS);

static store_state_t state_of(const char *s)
{
    return strcmp(s, "done") == 0      ? STORE_STATE_DONE
           : strcmp(s, "pending") == 0 ? STORE_STATE_PENDING
                                       : STORE_STATE_NONE;
}

/* Zeroes *out (a struct of size out_size), then copies each field of doc that the table names
 * into its member. Unknown fields are ignored; a field of another BSON type reads as ""/0. */
void st_parse_fields(const bson_t *doc, const field_map_t *map, size_t n, void *out,
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
                st_iter_text(&it, member, map[i].size);
            } else if (map[i].kind == FIELD_INT64) {
                int64_t v = st_iter_int64(&it);
                memcpy(member, &v, sizeof v);
            } else {
                char text[16];
                st_iter_text(&it, text, sizeof text);
                store_state_t state = state_of(text);
                memcpy(member, &state, sizeof state);
            }
            break;
        }
    }
}

void st_parse_entry(const bson_t *doc, store_entry_t *out)
{
    st_parse_fields(doc, ST_ENTRY_FIELDS, ST_ENTRY_FIELDS_N, out, sizeof *out);
}

/* Appends the set result fields of f (NULL = none) to doc: numbers when non-zero, texts when
 * non-empty. */
void st_append_fields(bson_t *doc, const store_entry_t *f)
{
    for (size_t i = 0; f && i < ST_ENTRY_FIELDS_N; i++) {
        const field_map_t *m = &ST_ENTRY_FIELDS[i];
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

int st_append_missing_fields(bson_t *doc, const store_entry_t *f, const store_entry_t *have)
{
    int n = 0;
    for (size_t i = 0; f && i < ST_ENTRY_FIELDS_N; i++) {
        const field_map_t *m = &ST_ENTRY_FIELDS[i];
        const char *mine = (const char *)f + m->offset;
        const char *theirs = (const char *)have + m->offset;
        if (!m->result)
            continue;
        if (m->kind == FIELD_INT64) {
            int64_t v, w;
            memcpy(&v, mine, sizeof v);
            memcpy(&w, theirs, sizeof w);
            if (v && !w) {
                BSON_APPEND_INT64(doc, m->name, v);
                n++;
            }
        } else if (mine[0] && !theirs[0]) {
            BSON_APPEND_UTF8(doc, m->name, mine);
            n++;
        }
    }
    return n;
}

void st_overlay_fields(store_entry_t *dst, const store_entry_t *src)
{
    for (size_t i = 0; i < ST_ENTRY_FIELDS_N; i++) {
        const field_map_t *m = &ST_ENTRY_FIELDS[i];
        const char *from = (const char *)src + m->offset;
        char *to = (char *)dst + m->offset;
        if (!m->result)
            continue;
        if (m->kind == FIELD_INT64) {
            int64_t v;
            memcpy(&v, from, sizeof v);
            if (v)
                memcpy(to, &v, sizeof v);
        } else if (from[0]) {
            memcpy(to, from, m->size);
        }
    }
}

/* Result texts must be NUL-terminated valid UTF-8 inside their arrays. */
bool st_fields_ok(const store_entry_t *f, char *err, size_t errlen)
{
    for (size_t i = 0; f && i < ST_ENTRY_FIELDS_N; i++) {
        const field_map_t *m = &ST_ENTRY_FIELDS[i];
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
int64_t st_field_int64(const bson_t *doc, const char *field)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, field) ? st_iter_int64(&it) : 0;
}

/* Appends {name: {field: value}}: a one-field sort order or projection of find options. */
void st_append_one(bson_t *doc, const char *name, const char *field, int32_t value)
{
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, name, &sub);
    BSON_APPEND_INT32(&sub, field, value);
    bson_append_document_end(doc, &sub);
}

/* "<verb> <collection> <key>" for messages; never the key of a client (personal data). */
void st_describe(char *what, size_t size, const char *verb, store_kind_t kind,
                     const char *key)
{
    snprintf(what, size, "%s %s %s", verb, st_kind_coll(kind), st_key_for_msg(kind, key));
}

bool st_key_ok(const char *key, const char *what, char *err, size_t errlen)
{
    if (!key || !key[0] || strlen(key) >= STORE_KEY_MAX) {
        errbuf_set(err, errlen, "store: %s needs a non-empty key shorter than %d bytes", what,
                   STORE_KEY_MAX);
        return false;
    }
    return true;
}

bool st_owner_ok(const char *owner, char *err, size_t errlen)
{
    if (!owner || !owner[0] || strlen(owner) >= STORE_OWNER_MAX) {
        errbuf_set(err, errlen, "store: a claim owner must be non-empty and shorter than %d bytes",
                   STORE_OWNER_MAX);
        return false;
    }
    return true;
}

uint64_t st_hash_text(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

/* ---- round trips ------------------------------------------------------------------------------ */

static const char *const OP_NAMES[STORE_OP_COUNT_] = {
    "insert", "find", "update", "findAndModify", "delete", "bulk", "command",
};

const char *store_op_name(store_op_t op)
{
    return (unsigned)op < STORE_OP_COUNT_ ? OP_NAMES[op] : "unknown";
}

void st_count(store_t *st, store_op_t op)
{
    if ((unsigned)op >= STORE_OP_COUNT_)
        return;
    atomic_fetch_add(&st->trips[op], 1);
    metrics_family_t *f = atomic_load(&st->trips_metric);
    if (f)
        metrics_counter_add(f, (const char *[]){OP_NAMES[op]}, 1);
}

uint64_t store_round_trips(const store_t *st, store_op_t op)
{
    if ((unsigned)op >= STORE_OP_COUNT_)
        return 0;
    return atomic_load(&((store_t *)st)->trips[op]);
}

uint64_t store_round_trips_total(const store_t *st)
{
    uint64_t sum = 0;
    for (int op = 0; op < STORE_OP_COUNT_; op++)
        sum += store_round_trips(st, (store_op_t)op);
    return sum;
}

void store_set_metrics(store_t *st, metrics_t *m)
{
    if (!m) {
        atomic_store(&st->trips_metric, NULL);
        return;
    }
    metrics_family_t *f =
        metrics_counter_new(m, "store_round_trips_total",
                            "MongoDB round trips made by the store, by kind of operation.",
                            (const char *[]){"op", NULL});
    if (!f)
        return;
    for (int op = 0; op < STORE_OP_COUNT_; op++) { /* every label present from the start */
        const char *labels[] = {OP_NAMES[op]};
        double have = metrics_value(f, labels);
        double want = (double)store_round_trips(st, (store_op_t)op);
        metrics_counter_add(f, labels, want > have ? want - have : 0);
    }
    atomic_store(&st->trips_metric, f);
}

int64_t st_stamp_now(store_t *st)
{
    int64_t now = 0;
    char err[256];
    if (store_server_time_ms(st, &now, err, sizeof err) == STORE_OK)
        return now;
    return clock_wall_ms();
}

/* ---- handles ---------------------------------------------------------------------------------- */

handle_t st_acquire(store_t *st, const char *coll)
{
    handle_t h = {st, mongoc_client_pool_pop(st->pool), NULL};
    h.coll = mongoc_client_get_collection(h.client, st->db, coll);
    return h;
}

void st_release(handle_t *h)
{
    if (h->coll)
        mongoc_collection_destroy(h->coll);
    if (h->client)
        mongoc_client_pool_push(h->st->pool, h->client);
    h->coll = NULL;
    h->client = NULL;
}

mongoc_collection_t *st_other(handle_t *h, const char *coll)
{
    return mongoc_client_get_collection(h->client, h->st->db, coll);
}

mongoc_cursor_t *st_find(handle_t *h, const bson_t *filter, const bson_t *opts)
{
    st_count(h->st, STORE_OP_FIND);
    return mongoc_collection_find_with_opts(h->coll, filter, opts, NULL);
}

bool st_insert(handle_t *h, const bson_t *doc, bson_error_t *e)
{
    st_count(h->st, STORE_OP_INSERT);
    return mongoc_collection_insert_one(h->coll, doc, NULL, NULL, e);
}

bool st_delete_one(handle_t *h, const bson_t *filter, bson_t *reply, bson_error_t *e)
{
    st_count(h->st, STORE_OP_DELETE);
    return mongoc_collection_delete_one(h->coll, filter, NULL, reply, e);
}

bool st_delete_many(handle_t *h, const bson_t *filter, bson_error_t *e)
{
    st_count(h->st, STORE_OP_DELETE);
    return mongoc_collection_delete_many(h->coll, filter, NULL, NULL, e);
}

/* find_one: copies the first matching document into *out (init'd by this call on STORE_OK). */
int st_find_one(handle_t *h, const bson_t *filter, const bson_t *opts, bson_t *out,
                    const char *what, char *err, size_t errlen)
{
    bson_t o = BSON_INITIALIZER;
    if (opts)
        bson_concat(&o, opts);
    if (!bson_has_field(&o, "limit"))
        BSON_APPEND_INT64(&o, "limit", 1);
    mongoc_cursor_t *cur = st_find(h, filter, &o);
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
        rc = st_fail(h->st, &e, what, err, errlen);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&o);
    return rc;
}

/* update_one with opts (e.g. upsert), retrying duplicate-key races (concurrent upserts of one
 * _id: mongod retries them itself, FerretDB may not). *matched gets matchedCount + upsertedCount. */
int st_update_retry(handle_t *h, const bson_t *filter, const bson_t *update, bool upsert,
                        int64_t *matched, const char *what, char *err, size_t errlen)
{
    bson_t opts = BSON_INITIALIZER;
    if (upsert)
        BSON_APPEND_BOOL(&opts, "upsert", true);
    int rc = STORE_CONFLICT;
    bson_error_t e;
    for (int attempt = 0; attempt < STORE_DUP_RETRIES; attempt++) {
        bson_t reply;
        st_count(h->st, STORE_OP_UPDATE);
        bool ok = mongoc_collection_update_one(h->coll, filter, update, &opts, &reply, &e);
        if (ok) {
            if (matched)
                *matched = st_field_int64(&reply, "matchedCount") +
                           st_field_int64(&reply, "upsertedCount");
            bson_destroy(&reply);
            rc = STORE_OK;
            break;
        }
        bson_destroy(&reply);
        if (!st_is_dup(&e) || !upsert) {
            rc = st_fail(h->st, &e, what, err, errlen);
            break;
        }
        st_pause_ms(1 + attempt * 2);
    }
    if (rc == STORE_CONFLICT)
        errbuf_set(err, errlen,
                   "MongoDB at %s: duplicate key persisted through %d retries while %s",
                   h->st->hosts, STORE_DUP_RETRIES, what);
    bson_destroy(&opts);
    return rc;
}

/* find_one of the document whose _id is the string id. */
int st_find_by_id(handle_t *h, const char *id, bson_t *out, const char *what, char *err,
                      size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", id);
    int rc = st_find_one(h, &filter, NULL, out, what, err, errlen);
    bson_destroy(&filter);
    return rc;
}

/* update_retry, upserting, of the document whose _id is the string id. */
int st_upsert_by_id(handle_t *h, const char *id, const bson_t *update, const char *what,
                        char *err, size_t errlen)
{
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", id);
    int rc = st_update_retry(h, &filter, update, true, NULL, what, err, errlen);
    bson_destroy(&filter);
    return rc;
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
    st_copy_cstr(st->db, sizeof st->db, db && db[0] ? db : STORE_DEFAULT_DB);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       STORE_DEFAULT_TIMEOUT_MS);
    if (!mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, STORE_DEFAULT_TIMEOUT_MS);
    /* libmongoc waits 5 minutes for an answer by default: a server that keeps the connection
     * open and answers nothing (hung, overloaded, restarting behind a proxy) held a call — and
     * the process, deaf to SIGTERM — that long (issue 12, the 20-minute soak). Every call here
     * is small: an answer later than this is an outage (STORE_DOWN), retried by the callers. */
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SOCKETTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, STORE_SOCKET_TIMEOUT_MS);

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
        st_copy_cstr(st->hosts, sizeof st->hosts, srv ? srv : "(no host)");
    }

    st->clients = st_cache_new();
    st->claims = st_memo_new();
    if (!st->clients || !st->claims) {
        errbuf_set(err, errlen, "out of memory opening MongoDB");
        store_close(st);
        return NULL;
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
    st->clock = store_clock_new(st->pool, st->db, 0);
    if (!st->clock) {
        errbuf_set(err, errlen, "out of memory opening MongoDB");
        store_close(st);
        return NULL;
    }
    st_clock_bind(st->clock, st);
    return st;
}

void store_close(store_t *st)
{
    if (!st)
        return;
    store_clock_free(st->clock);
    if (st->pool)
        mongoc_client_pool_destroy(st->pool);
    st_cache_free(st->clients);
    st_memo_free(st->claims);
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
    st_count(st, STORE_OP_COMMAND);
    bool ok = mongoc_client_command_simple(c, st->db, &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    mongoc_client_pool_push(st->pool, c);
    return ok ? STORE_OK : st_fail(st, &e, "pinging the server", err, errlen);
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
    st_count(st, STORE_OP_COMMAND);
    bool ok = mongoc_database_write_command_with_opts(db, &cmd, NULL, NULL, &e);
    bson_destroy(&cmd);
    if (ok)
        return STORE_OK;
    char what[160];
    snprintf(what, sizeof what, "creating index %s of %s", name, coll);
    return st_fail(st, &e, what, err, errlen);
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

