/* store_lease: the producer lease (SPEC §3 "One active producer"), a chain of inserted links,
 * and cursor writes conditional on it. See store.h "producer lease". */
#include "store_int.h"

#include "errbuf.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

#define LEASE_KEEP_LINKS 20  /* links older than newest - this are deleted now and then */
#define LEASE_ROUNDS 8       /* read-then-insert rounds before "try later" */

/* The newest link of a chain, as read. */
typedef struct {
    bool exists;        /* any document of this name (the origin at least) */
    int64_t seq, base;
    char owner[STORE_OWNER_MAX];
    int64_t until_ms, lease_ms;
} link_t;

static bool lease_args_ok(const char *name, const char *owner, int64_t lease_ms,
                          bool need_lease, const char *fn, char *err, size_t errlen)
{
    if (!name || !name[0] || strlen(name) >= STORE_LEASE_NAME_MAX || strchr(name, '#')) {
        errbuf_set(err, errlen, "%s: a lease name must be non-empty, shorter than %d bytes and "
                   "without '#'", fn, STORE_LEASE_NAME_MAX);
        return false;
    }
    if (owner && !st_owner_ok(owner, err, errlen))
        return false;
    if (need_lease && lease_ms <= 0) {
        errbuf_set(err, errlen, "%s: lease_ms must be > 0", fn);
        return false;
    }
    return true;
}

/* Reads the newest link of `name` (highest seq). STORE_OK (l->exists false when nothing at all),
 * DOWN, REJECTED. */
static int newest(handle_t *h, const char *name, link_t *l, const char *what, char *err,
                  size_t errlen)
{
    memset(l, 0, sizeof *l);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, doc;
    BSON_APPEND_UTF8(&filter, "name", name);
    st_append_one(&opts, "sort", "seq", -1);
    int rc = st_find_one(h, &filter, &opts, &doc, what, err, errlen);
    bson_destroy(&filter);
    bson_destroy(&opts);
    if (rc == STORE_NOT_FOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    l->exists = true;
    l->seq = st_field_int64(&doc, "seq");
    l->base = st_field_int64(&doc, "base");
    l->until_ms = st_field_int64(&doc, "until");
    l->lease_ms = st_field_int64(&doc, "lease_ms");
    bson_iter_t it;
    if (bson_iter_init_find(&it, &doc, "owner"))
        st_iter_text(&it, l->owner, sizeof l->owner);
    bson_destroy(&doc);
    return STORE_OK;
}

/* Inserts the origin {_id: name, seq: 0, base: now} (a duplicate is fine: someone else did). */
static int insert_origin(handle_t *h, const char *name, int64_t now, const char *what, char *err,
                         size_t errlen)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", name);
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_INT64(&doc, "seq", 0);
    BSON_APPEND_INT64(&doc, "base", now);
    BSON_APPEND_UTF8(&doc, "owner", "");
    BSON_APPEND_DATE_TIME(&doc, "until", 0);
    BSON_APPEND_DATE_TIME(&doc, "at", now);
    bson_error_t e;
    int rc = STORE_OK;
    if (!st_insert(h, &doc, &e) && !st_is_dup(&e))
        rc = st_fail(h->st, &e, what, err, errlen);
    bson_destroy(&doc);
    return rc;
}

/* Inserts link prev->seq + 1 {owner, until}. STORE_OK (it is the newest now), STORE_CONFLICT
 * (someone else wrote that link first), DOWN, REJECTED. */
static int insert_link(handle_t *h, const char *name, const link_t *prev, const char *owner,
                       int64_t now, int64_t lease_ms, const char *what, char *err,
                       size_t errlen)
{
    int64_t seq = prev->seq + 1;
    char id[STORE_LEASE_NAME_MAX + 32];
    snprintf(id, sizeof id, "%s#%lld", name, (long long)seq);
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_INT64(&doc, "seq", seq);
    BSON_APPEND_INT64(&doc, "base", prev->base);
    BSON_APPEND_UTF8(&doc, "owner", owner);
    BSON_APPEND_DATE_TIME(&doc, "until", owner[0] ? now + lease_ms : 0);
    BSON_APPEND_INT64(&doc, "lease_ms", lease_ms);
    BSON_APPEND_DATE_TIME(&doc, "at", now);
    bson_error_t e;
    int rc = STORE_OK;
    if (!st_insert(h, &doc, &e))
        rc = st_is_dup(&e) ? STORE_CONFLICT : st_fail(h->st, &e, what, err, errlen);
    bson_destroy(&doc);
    if (rc == STORE_OK && seq % LEASE_KEEP_LINKS == 0) {
        /* best effort: a failure only leaves more links */
        bson_t old = BSON_INITIALIZER, lt;
        BSON_APPEND_UTF8(&old, "name", name);
        BSON_APPEND_DOCUMENT_BEGIN(&old, "seq", &lt);
        BSON_APPEND_INT64(&lt, "$gt", 0);
        BSON_APPEND_INT64(&lt, "$lt", seq - LEASE_KEEP_LINKS);
        bson_append_document_end(&old, &lt);
        if (!st_delete_many(h, &old, &e))
            log_msg(LOG_DEBUG, "lease_gc_failed", "lease=%s error_code=%u", name, e.code);
        bson_destroy(&old);
    }
    return rc;
}

static void fill(store_lease_t *out, const link_t *l, bool held)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    out->held = held;
    st_copy_cstr(out->owner, sizeof out->owner, l->owner);
    out->until_ms = l->owner[0] ? l->until_ms : 0;
    out->seq = l->seq;
}

/* The shared loop of acquire (take_free = true) and renew (false): read the newest link; when
 * `owner` holds it (live or expired but not taken), or when take_free and nobody holds it live,
 * insert the next link for `owner`. */
static int lease_take(store_t *st, const char *name, const char *owner, int64_t lease_ms,
                      bool take_free, store_lease_t *out, const char *what, char *err,
                      size_t errlen)
{
    handle_t h = st_acquire(st, COLL_LEASES);
    int rc = STORE_DOWN;
    bool settled = false;
    for (int round = 0; round < LEASE_ROUNDS && !settled; round++) {
        if (round > 0)
            st_pause_ms(1 + round);
        link_t l;
        rc = newest(&h, name, &l, what, err, errlen);
        if (rc != STORE_OK)
            break;
        int64_t now = 0;
        rc = store_server_time_ms(st, &now, err, errlen);
        if (rc != STORE_OK)
            break;
        if (!l.exists) {
            rc = insert_origin(&h, name, now, what, err, errlen);
            if (rc != STORE_OK)
                break;
            continue;
        }
        settled = true;
        bool mine = l.owner[0] && strcmp(l.owner, owner) == 0;
        bool free_now = !l.owner[0] || l.until_ms < now;
        if (!mine && !(take_free && free_now)) {
            fill(out, &l, false);
            if (take_free) {
                rc = STORE_OK; /* standby */
            } else {
                rc = STORE_CONFLICT;
                errbuf_set(err, errlen, "%s: %s does not hold it any more (%s)", what, owner,
                           l.owner[0] ? "taken over" : "released");
            }
            break;
        }
        rc = insert_link(&h, name, &l, owner, now, lease_ms, what, err, errlen);
        if (rc == STORE_CONFLICT) {
            settled = false;
            continue; /* someone wrote the next link first: see who */
        }
        if (rc != STORE_OK)
            break;
        if (!mine)
            log_msg(LOG_INFO, "lease_acquired", "lease=%s owner=%s previous=%s", name, owner,
                    l.owner[0] ? l.owner : "(none)");
        link_t now_l = l;
        now_l.seq = l.seq + 1;
        st_copy_cstr(now_l.owner, sizeof now_l.owner, owner);
        now_l.until_ms = now + lease_ms;
        fill(out, &now_l, true);
        break;
    }
    if (!settled && (rc == STORE_OK || rc == STORE_CONFLICT)) {
        rc = STORE_DOWN; /* rounds exhausted */
        errbuf_set(err, errlen, "%s: the lease kept changing under us (retry later)", what);
    }
    st_release(&h);
    return rc;
}

int store_lease_acquire(store_t *st, const char *name, const char *owner, int64_t lease_ms,
                        store_lease_t *out, char *err, size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!lease_args_ok(name, owner, lease_ms, true, "store_lease_acquire", err, errlen))
        return STORE_REJECTED;
    char what[STORE_LEASE_NAME_MAX + 32];
    snprintf(what, sizeof what, "acquiring lease %s", name);
    return lease_take(st, name, owner, lease_ms, true, out, what, err, errlen);
}

int store_lease_renew(store_t *st, const char *name, const char *owner, int64_t lease_ms,
                      store_lease_t *out, char *err, size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!lease_args_ok(name, owner, lease_ms, true, "store_lease_renew", err, errlen))
        return STORE_REJECTED;
    char what[STORE_LEASE_NAME_MAX + 32];
    snprintf(what, sizeof what, "renewing lease %s", name);
    return lease_take(st, name, owner, lease_ms, false, out, what, err, errlen);
}

int store_lease_release(store_t *st, const char *name, const char *owner, char *err,
                        size_t errlen)
{
    if (!lease_args_ok(name, owner, 0, false, "store_lease_release", err, errlen))
        return STORE_REJECTED;
    char what[STORE_LEASE_NAME_MAX + 32];
    snprintf(what, sizeof what, "releasing lease %s", name);
    handle_t h = st_acquire(st, COLL_LEASES);
    int rc = STORE_DOWN;
    for (int round = 0; round < LEASE_ROUNDS; round++) {
        link_t l;
        rc = newest(&h, name, &l, what, err, errlen);
        if (rc != STORE_OK)
            break;
        if (!l.exists || strcmp(l.owner, owner) != 0) {
            rc = STORE_CONFLICT;
            errbuf_set(err, errlen, "%s: %s does not hold it", what, owner);
            break;
        }
        int64_t now = 0;
        rc = store_server_time_ms(st, &now, err, errlen);
        if (rc != STORE_OK)
            break;
        rc = insert_link(&h, name, &l, "", now, 0, what, err, errlen);
        if (rc != STORE_CONFLICT)
            break;
        rc = STORE_DOWN; /* the next link was written first: read again */
        errbuf_set(err, errlen, "%s: the lease kept changing under us (retry later)", what);
    }
    if (rc == STORE_OK)
        log_msg(LOG_INFO, "lease_released", "lease=%s owner=%s", name, owner);
    st_release(&h);
    return rc;
}

int store_lease_get(store_t *st, const char *name, store_lease_t *out, char *err,
                    size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!lease_args_ok(name, NULL, 0, false, "store_lease_get", err, errlen))
        return STORE_REJECTED;
    char what[STORE_LEASE_NAME_MAX + 32];
    snprintf(what, sizeof what, "reading lease %s", name);
    handle_t h = st_acquire(st, COLL_LEASES);
    link_t l;
    int rc = newest(&h, name, &l, what, err, errlen);
    st_release(&h);
    if (rc == STORE_OK)
        fill(out, &l, false);
    return rc;
}

int store_cursor_set_leased(store_t *st, const char *key, const char *stamp, int64_t id,
                            const char *lease_name, const char *owner, char *err,
                            size_t errlen)
{
    if (!st_key_ok(key, "store_cursor_set_leased", err, errlen) ||
        !lease_args_ok(lease_name, owner, 0, false, "store_cursor_set_leased", err, errlen))
        return STORE_REJECTED;
    char what[STORE_LEASE_NAME_MAX + 32];
    snprintf(what, sizeof what, "checking lease %s", lease_name);
    handle_t h = st_acquire(st, COLL_LEASES);
    link_t l;
    int rc = newest(&h, lease_name, &l, what, err, errlen);
    st_release(&h);
    if (rc != STORE_OK)
        return rc;
    if (!l.exists || !l.owner[0] || strcmp(l.owner, owner) != 0) {
        errbuf_set(err, errlen, "cursor %s not saved: %s does not hold lease %s (%s)", key,
                   owner, lease_name, l.owner[0] ? "another producer does" : "nobody does");
        return STORE_CONFLICT;
    }
    int64_t now = 0;
    rc = store_server_time_ms(st, &now, err, errlen);
    if (rc != STORE_OK)
        return rc;
    if (l.until_ms - STORE_SETTLE_MARGIN_MS <= now) {
        /* ending (or ended): a taker may be about to move the cursor; renew first, through the
         * chain, so that either we still hold it afterwards or we learn that we lost it */
        store_lease_t renewed;
        int64_t len = l.lease_ms > STORE_SETTLE_MARGIN_MS ? l.lease_ms : 2 * STORE_SETTLE_MARGIN_MS;
        rc = store_lease_renew(st, lease_name, owner, len, &renewed, err, errlen);
        if (rc != STORE_OK)
            return rc;
        l.seq = renewed.seq;
    }
    st_lease_mark_t mark = {l.base, l.seq};
    return st_cursor_write(st, key, stamp, id, &mark, err, errlen);
}
