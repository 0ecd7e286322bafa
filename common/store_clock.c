/* store_clock: MongoDB's clock, sampled with `hello` and carried forward on this host's monotonic
 * clock (issue 8 item 6: leases and rate-limit windows must not trust each host's wall clock).
 * See store.h "MongoDB's clock". */
#include "store_int.h"

#include "clock.h"
#include "errbuf.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

#define CLOCK_REFRESH_MS 60000  /* resample when the last sample is older */
#define CLOCK_RETRY_MS 5000     /* a refresh that failed is tried again after this */
#define CLOCK_GOOD_RTT_MS 20    /* slower samples are retried (up to 3 in all, the fastest kept) */
#define CLOCK_SLOW_RTT_MS 1000  /* a kept sample this slow is logged (its error is rtt / 2) */
#define CLOCK_SAMPLES 3
#define CLOCK_WARN_OFFSET_MS 1000

struct store_clock {
    mongoc_client_pool_t *pool;
    store_t *st; /* for round-trip counting and error messages; NULL on a bare pool */
    char db[128];
    int64_t host_skew_ms;
    pthread_mutex_t lock;
    bool valid;
    int64_t server_ms;   /* server time at the sample's midpoint */
    int64_t mono_ms;     /* this host's monotonic clock at the same moment */
    int64_t next_try_ms; /* monotonic: when to sample again */
    int64_t rtt_ms;      /* round trip of the sample in use */
    int64_t host_offset; /* server - (host wall + skew) at the sample */
};

store_clock_t *store_clock_new(mongoc_client_pool_t *pool, const char *db, int64_t host_skew_ms)
{
    store_clock_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->pool = pool;
    st_copy_cstr(c->db, sizeof c->db, db && db[0] ? db : STORE_DEFAULT_DB);
    c->host_skew_ms = host_skew_ms;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void store_clock_free(store_clock_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* One `hello`: *server_ms its localTime, *mono_mid / *wall_mid this host's clocks at the
 * midpoint, *rtt_ms the round trip. Returns STORE_OK or an error code (err set). */
static int sample(store_clock_t *c, int64_t *server_ms, int64_t *mono_mid, int64_t *wall_mid,
                  int64_t *rtt_ms, char *err, size_t errlen)
{
    mongoc_client_t *client = mongoc_client_pool_pop(c->pool);
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "hello", 1);
    bson_error_t e;
    if (c->st)
        st_count(c->st, STORE_OP_COMMAND);
    int64_t mono0 = clock_mono_ms(), wall0 = clock_wall_ms();
    bool ok = mongoc_client_command_simple(client, "admin", &cmd, NULL, &reply, &e);
    int64_t mono1 = clock_mono_ms();
    bson_destroy(&cmd);
    mongoc_client_pool_push(c->pool, client);
    int rc = STORE_OK;
    if (!ok) {
        if (c->st) {
            rc = st_fail(c->st, &e, "reading the server's clock (hello)", err, errlen);
        } else {
            rc = STORE_DOWN;
            errbuf_set(err, errlen, "MongoDB did not answer hello (reading its clock): %s",
                       e.message);
        }
    } else {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, &reply, "localTime") || !BSON_ITER_HOLDS_DATE_TIME(&it)) {
            rc = STORE_REJECTED;
            errbuf_set(err, errlen,
                       "MongoDB's hello answer has no localTime: cannot read the server's clock");
        } else {
            *server_ms = bson_iter_date_time(&it);
            *rtt_ms = mono1 - mono0;
            *mono_mid = mono0 + *rtt_ms / 2;
            *wall_mid = wall0 + *rtt_ms / 2;
        }
    }
    bson_destroy(&reply);
    return rc;
}

/* Takes up to CLOCK_SAMPLES samples, keeps the fastest; with c->lock held. */
static int resample(store_clock_t *c, char *err, size_t errlen)
{
    int64_t best_rtt = -1, best_server = 0, best_mono = 0, best_wall = 0;
    int rc = STORE_OK;
    for (int i = 0; i < CLOCK_SAMPLES; i++) {
        int64_t server = 0, mono = 0, wall = 0, rtt = 0;
        rc = sample(c, &server, &mono, &wall, &rtt, err, errlen);
        if (rc != STORE_OK)
            break;
        if (best_rtt < 0 || rtt < best_rtt) {
            best_rtt = rtt;
            best_server = server;
            best_mono = mono;
            best_wall = wall;
        }
        if (best_rtt <= CLOCK_GOOD_RTT_MS)
            break;
    }
    if (best_rtt < 0) { /* not one sample */
        c->next_try_ms = clock_mono_ms() + CLOCK_RETRY_MS;
        return rc;
    }
    if (best_rtt > CLOCK_SLOW_RTT_MS)
        log_msg(LOG_WARN, "server_clock_slow_sample", "rtt_ms=%lld uncertainty_ms=%lld",
                (long long)best_rtt, (long long)(best_rtt / 2));
    int64_t offset = best_server - (best_wall + c->host_skew_ms);
    if ((offset > CLOCK_WARN_OFFSET_MS || offset < -CLOCK_WARN_OFFSET_MS) &&
        (!c->valid || c->host_offset / 100 != offset / 100))
        log_msg(LOG_WARN, "host_clock_offset",
                "offset_ms=%lld note=\"this host's clock differs from MongoDB's; leases and rate "
                "limits use MongoDB's\"",
                (long long)offset);
    c->valid = true;
    c->server_ms = best_server;
    c->mono_ms = best_mono;
    c->rtt_ms = best_rtt;
    c->host_offset = offset;
    c->next_try_ms = best_mono + CLOCK_REFRESH_MS;
    return STORE_OK;
}

int store_clock_now(store_clock_t *c, int64_t *now_ms, char *err, size_t errlen)
{
    pthread_mutex_lock(&c->lock);
    int rc = STORE_OK;
    int64_t mono = clock_mono_ms();
    if (!c->valid || mono >= c->next_try_ms) {
        char serr[512] = "";
        rc = resample(c, serr, sizeof serr);
        if (rc != STORE_OK && c->valid) {
            /* keep the older sample: a monotonic clock drifts by ppm, far below any margin */
            log_msg(LOG_DEBUG, "server_clock_refresh_failed", "rc=%s", store_rc_name(rc));
            rc = STORE_OK;
        } else if (rc != STORE_OK) {
            errbuf_set(err, errlen, "%s", serr);
        }
        mono = clock_mono_ms();
    }
    if (rc == STORE_OK)
        *now_ms = c->server_ms + (mono - c->mono_ms);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int64_t store_clock_host_offset_ms(store_clock_t *c)
{
    pthread_mutex_lock(&c->lock);
    int64_t v = c->valid ? c->host_offset : 0;
    pthread_mutex_unlock(&c->lock);
    return v;
}

void st_clock_bind(store_clock_t *c, store_t *st) { c->st = st; }

int store_server_time_ms(store_t *st, int64_t *now_ms, char *err, size_t errlen)
{
    return store_clock_now(st->clock, now_ms, err, errlen);
}

void store_test_set_clock_skew(store_t *st, int64_t skew_ms)
{
    pthread_mutex_lock(&st->clock->lock);
    st->clock->host_skew_ms = skew_ms;
    pthread_mutex_unlock(&st->clock->lock);
}
