/* Unit tests for ploomes_pager: exact keyset queries, timestamp ordering, the no-progress
 * guard, and the first-start lookback stamp (ploomes_source) the query builder must accept. Expected strings are written out by hand (not produced by the encoder under test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "ploomes_pager.h"
#include "ploomes_source.h"

typedef struct {
    ploomes_entity_t entity;
    const char *stamp;
    int64_t id;
    const char *expected;
} query_case_t;

static const query_case_t QUERIES[] = {
    {PLOOMES_CONTACTS, "2024-02-24T00:00:00-03:00", 0,
     "/Contacts?$filter=LastUpdateDate%20gt%202024-02-24T00%3A00%3A00-03%3A00%20or%20"
     "%28LastUpdateDate%20eq%202024-02-24T00%3A00%3A00-03%3A00%20and%20Id%20gt%200%29"
     "&$orderby=LastUpdateDate%2CId&$top=300&$expand=Phones%2CTags%2CCity%2CState%2CContacts"},
    /* '+' in the offset must be encoded, or the server reads a space. */
    {PLOOMES_TASKS, "2025-01-02T03:04:05.1234567+00:00", 105401839,
     "/Tasks?$filter=LastUpdateDate%20gt%202025-01-02T03%3A04%3A05.1234567%2B00%3A00%20or%20"
     "%28LastUpdateDate%20eq%202025-01-02T03%3A04%3A05.1234567%2B00%3A00%20and%20Id%20gt%20"
     "105401839%29&$orderby=LastUpdateDate%2CId&$top=300&$expand="
     "Tags%2CContact%28%24select%3DId%2CName%2CEmail%3B%24expand%3DPhones%29"},
    {PLOOMES_INTERACTIONS, "2024-06-01T12:00:00.5Z", 7,
     "/InteractionRecords?$filter=LastUpdateDate%20gt%202024-06-01T12%3A00%3A00.5Z%20or%20"
     "%28LastUpdateDate%20eq%202024-06-01T12%3A00%3A00.5Z%20and%20Id%20gt%207%29"
     "&$orderby=LastUpdateDate%2CId&$top=300&$expand=Tags"},
    /* SYNC_SINCE may use RFC 3339's space separator and lowercase 'z'; OData's literal may
     * not (Ploomes would answer 400 on every poll, with the cursor already saved). */
    {PLOOMES_CONTACTS, "2024-02-24 00:00:00z", 0,
     "/Contacts?$filter=LastUpdateDate%20gt%202024-02-24T00%3A00%3A00Z%20or%20"
     "%28LastUpdateDate%20eq%202024-02-24T00%3A00%3A00Z%20and%20Id%20gt%200%29"
     "&$orderby=LastUpdateDate%2CId&$top=300&$expand=Phones%2CTags%2CCity%2CState%2CContacts"},
};

static void test_keyset_queries(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof QUERIES / sizeof QUERIES[0]; i++) {
        char out[1024];
        const query_case_t *c = &QUERIES[i];
        int n = ploomes_keyset_query(ploomes_entity_info(c->entity), c->stamp, c->id,
                                     PLOOMES_PAGE_SIZE, out, sizeof out);
        assert_string_equal(out, c->expected);
        assert_int_equal(n, (int)strlen(c->expected));
    }
}

static void test_keyset_query_rejects(void **state)
{
    (void)state;
    char out[1024];
    const ploomes_entity_info_t *info = ploomes_entity_info(PLOOMES_CONTACTS);
    /* Not a timestamp: it is sent unquoted, so it could change the filter. */
    assert_int_equal(ploomes_keyset_query(info, "2024-01-01 or 1 eq 1", 0, 300, out, sizeof out),
                     -1);
    assert_string_equal(out, "");
    assert_int_equal(ploomes_keyset_query(info, "", 0, 300, out, sizeof out), -1);
    assert_int_equal(ploomes_keyset_query(info, "2024-01-01T00:00:00Z", 0, 301, out, sizeof out),
                     -1);
    assert_int_equal(ploomes_keyset_query(info, "2024-01-01T00:00:00Z", 0, 0, out, sizeof out),
                     -1);
    assert_int_equal(ploomes_keyset_query(info, "2024-01-01T00:00:00Z", -1, 300, out, sizeof out),
                     -1);
    assert_int_equal(ploomes_keyset_query(NULL, "2024-01-01T00:00:00Z", 0, 300, out, sizeof out),
                     -1);
    /* Too small a buffer: -1 and "". */
    char tiny[40];
    assert_int_equal(ploomes_keyset_query(info, "2024-01-01T00:00:00Z", 0, 300, tiny, sizeof tiny),
                     -1);
    assert_string_equal(tiny, "");
}

static void test_entity_table(void **state)
{
    (void)state;
    const ploomes_entity_info_t *c = ploomes_entity_info(PLOOMES_CONTACTS);
    assert_string_equal(c->name, "contact");
    assert_string_equal(c->expand, "Phones,Tags,City,State,Contacts");
    assert_string_equal(c->cursor_key, "ploomes.contact");
    assert_int_equal(c->topic, KAFKA_TOPIC_PLOOMES_CONTACTS);
    assert_string_equal(ploomes_entity_info(PLOOMES_TASKS)->name, "task");
    assert_string_equal(ploomes_entity_info(PLOOMES_TASKS)->expand,
                        "Tags,Contact($select=Id,Name,Email;$expand=Phones)");
    assert_string_equal(ploomes_entity_info(PLOOMES_INTERACTIONS)->expand, "Tags");
    assert_string_equal(ploomes_entity_info(PLOOMES_INTERACTIONS)->path, "/InteractionRecords");
    assert_string_equal(ploomes_entity_info(PLOOMES_INTERACTIONS)->name, "interaction");
    assert_null(ploomes_entity_info(PLOOMES_ENTITY_COUNT));
}

typedef struct {
    const char *text;
    int rc;
    int64_t seconds;
    int32_t nanos;
} instant_case_t;

static const instant_case_t INSTANTS[] = {
    {"1970-01-01T00:00:00Z", 0, 0, 0},
    {"2022-12-15T14:59:45.13-03:00", 0, 1671127185, 130000000},
    {"2022-12-15T17:59:45.13Z", 0, 1671127185, 130000000},
    {"2024-02-29T23:59:59.1234567+00:00", 0, 1709251199, 123456700},
    {"2024-02-24T00:00:00-03:00", 0, 1708743600, 0},
    {"2024-02-24T00:00:00.123456789999Z", 0, 1708732800, 123456789}, /* extra digits ignored */
    {"2023-02-29T00:00:00Z", -1, 0, 0}, /* not a leap year */
    {"2024-13-01T00:00:00Z", -1, 0, 0},
    {"2024-01-01T00:00:00", -1, 0, 0},  /* no offset */
    {"2024-01-01T00:00:00.Z", -1, 0, 0},
    {"2024-01-01T00:00:00Z junk", -1, 0, 0},
    {"", -1, 0, 0},
};

static void test_instant_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof INSTANTS / sizeof INSTANTS[0]; i++) {
        ploomes_instant_t t = {0, 0};
        int rc = ploomes_instant_parse(INSTANTS[i].text, &t);
        if (rc != INSTANTS[i].rc)
            print_error("case %zu: %s\n", i, INSTANTS[i].text);
        assert_int_equal(rc, INSTANTS[i].rc);
        if (rc == 0) {
            assert_int_equal(t.seconds, INSTANTS[i].seconds);
            assert_int_equal(t.nanos, INSTANTS[i].nanos);
        }
    }
}

typedef struct {
    const char *row_stamp;
    int64_t row_id;
    const char *cur_stamp;
    int64_t cur_id;
    bool progress;
} guard_case_t;

static const guard_case_t GUARD[] = {
    /* later instant */
    {"2024-01-01T00:00:01-03:00", 1, "2024-01-01T00:00:00-03:00", 99, true},
    /* same instant, higher id */
    {"2024-01-01T00:00:00-03:00", 100, "2024-01-01T00:00:00-03:00", 99, true},
    /* the cursor row itself: no progress */
    {"2024-01-01T00:00:00-03:00", 99, "2024-01-01T00:00:00-03:00", 99, false},
    /* same instant, lower id */
    {"2024-01-01T00:00:00-03:00", 5, "2024-01-01T00:00:00-03:00", 99, false},
    /* same instant written with another offset */
    {"2024-01-01T03:00:00Z", 99, "2024-01-01T00:00:00-03:00", 99, false},
    {"2024-01-01T03:00:00Z", 100, "2024-01-01T00:00:00-03:00", 99, true},
    /* the server holds more precision than it printed: a row printed with the cursor's stamp */
    {"2024-01-01T00:00:00.13-03:00", 7, "2024-01-01T00:00:00.13-03:00", 7, false},
    {"2024-01-01T00:00:00.1300001-03:00", 7, "2024-01-01T00:00:00.13-03:00", 7, true},
    /* earlier instant */
    {"2023-12-31T23:59:59.999-03:00", 1000, "2024-01-01T00:00:00-03:00", 0, false},
    /* unparseable row stamp: never progress (it could not be used as a cursor) */
    {"yesterday", 1000, "2024-01-01T00:00:00-03:00", 0, false},
};

static void test_no_progress_guard(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof GUARD / sizeof GUARD[0]; i++) {
        const guard_case_t *g = &GUARD[i];
        bool p = ploomes_row_is_progress(g->row_stamp, g->row_id, g->cur_stamp, g->cur_id);
        if (p != g->progress)
            print_error("case %zu: %s/%lld vs %s/%lld\n", i, g->row_stamp,
                        (long long)g->row_id, g->cur_stamp, (long long)g->cur_id);
        assert_int_equal(p, g->progress);
    }
}

/* The first-start cursor of tasks/interactions (now - TICKET_LOOKBACK_MINUTES, written by
 * clock_rfc3339) must be a stamp the keyset query builder accepts and the guard parses. */
static void test_lookback_stamp(void **state)
{
    (void)state;
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ticket_lookback_minutes = 10;
    char stamp[64];
    /* 2024-02-24T03:10:00.123Z minus 10 minutes */
    assert_int_equal(ploomes_initial_stamp(&cfg, PLOOMES_TASKS, 1708744200123LL, stamp,
                                           sizeof stamp), 0);
    assert_string_equal(stamp, "2024-02-24T03:00:00.123Z");
    ploomes_instant_t t;
    assert_int_equal(ploomes_instant_parse(stamp, &t), 0);
    assert_int_equal(t.seconds, 1708743600);
    assert_int_equal(t.nanos, 123000000);
    char out[1024];
    assert_true(ploomes_keyset_query(ploomes_entity_info(PLOOMES_TASKS), stamp, 0,
                                     PLOOMES_PAGE_SIZE, out, sizeof out) > 0);
    assert_string_equal(out,
                        "/Tasks?$filter=LastUpdateDate%20gt%202024-02-24T03%3A00%3A00.123Z%20or%20"
                        "%28LastUpdateDate%20eq%202024-02-24T03%3A00%3A00.123Z%20and%20Id%20gt%20"
                        "0%29&$orderby=LastUpdateDate%2CId&$top=300&$expand="
                        "Tags%2CContact%28%24select%3DId%2CName%2CEmail%3B%24expand%3DPhones%29");
    /* leap day, last millisecond */
    cfg.ticket_lookback_minutes = 0;
    assert_int_equal(ploomes_initial_stamp(&cfg, PLOOMES_INTERACTIONS, 1709251199999LL, stamp,
                                           sizeof stamp), 0);
    assert_string_equal(stamp, "2024-02-29T23:59:59.999Z");
    /* too small a buffer is refused, not truncated */
    assert_int_equal(ploomes_initial_stamp(&cfg, PLOOMES_TASKS, 0, stamp, 10), -1);
    /* contacts start from SYNC_SINCE as written */
    char since[] = "2024-02-24T00:00:00-03:00";
    cfg.sync_since = since;
    assert_int_equal(ploomes_initial_stamp(&cfg, PLOOMES_CONTACTS, 0, stamp, sizeof stamp), 0);
    assert_string_equal(stamp, since);
}

/* SPEC §3 "Ties at printed precision": S + one printed unit, in S's own notation. */
static void test_next_unit(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } CASES[] = {
        {"2024-03-01T10:00:00.123-03:00", "2024-03-01T10:00:00.124-03:00"},
        {"2024-03-01T10:00:00.999-03:00", "2024-03-01T10:00:01.000-03:00"},
        {"2024-02-29T23:59:59.9999999Z", "2024-03-01T00:00:00.0000000Z"},
        {"2023-12-31T23:59:59+00:00", "2024-01-01T00:00:00+00:00"},
        {"2024-06-01 12:00:00.5z", "2024-06-01T12:00:00.6Z"},
        {"2025-01-02T03:04:05.1234567+05:30", "2025-01-02T03:04:05.1234568+05:30"},
        {"2024-02-28T23:59:59.99-03:00", "2024-02-29T00:00:00.00-03:00"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char out[64];
        assert_int_equal(ploomes_stamp_next_unit(CASES[i].in, out, sizeof out), 0);
        assert_string_equal(out, CASES[i].out);
    }
    char out[64];
    assert_int_equal(ploomes_stamp_next_unit("9999-12-31T23:59:59Z", out, sizeof out), -1);
    assert_int_equal(ploomes_stamp_next_unit("2024-01-01T00:00:00.1234567890Z", out, sizeof out),
                     -1);
    assert_int_equal(ploomes_stamp_next_unit("not a stamp", out, sizeof out), -1);
    assert_int_equal(ploomes_stamp_next_unit("2024-01-01T00:00:00Z", out, 10), -1);
}

/* The tie-group query pages by Id inside [S, S+u); the position query identifies one record. */
static void test_tie_and_position_queries(void **state)
{
    (void)state;
    char out[1024];
    ploomes_query_t tie = {PLOOMES_Q_TIE, "2024-03-01T10:00:00.123-03:00", 4711, 300, false};
    assert_true(ploomes_query(ploomes_entity_info(PLOOMES_CONTACTS), &tie, out, sizeof out) > 0);
    assert_string_equal(out,
                        "/Contacts?$filter=LastUpdateDate%20ge%202024-03-01T10%3A00%3A00.123-03%3A00"
                        "%20and%20LastUpdateDate%20lt%202024-03-01T10%3A00%3A00.124-03%3A00%20and"
                        "%20Id%20gt%204711&$orderby=Id&$top=300"
                        "&$expand=Phones%2CTags%2CCity%2CState%2CContacts");
    ploomes_query_t pos = {PLOOMES_Q_KEYSET, "2024-06-01T12:00:00.5Z", 7, 1, true};
    assert_true(ploomes_query(ploomes_entity_info(PLOOMES_TASKS), &pos, out, sizeof out) > 0);
    assert_string_equal(out,
                        "/Tasks?$filter=LastUpdateDate%20gt%202024-06-01T12%3A00%3A00.5Z%20or%20"
                        "%28LastUpdateDate%20eq%202024-06-01T12%3A00%3A00.5Z%20and%20Id%20gt%207"
                        "%29&$orderby=LastUpdateDate%2CId&$top=1&$select=Id%2CLastUpdateDate");
    ploomes_query_t bad = {PLOOMES_Q_TIE, "9999-12-31T23:59:59Z", 0, 300, false};
    assert_int_equal(ploomes_query(ploomes_entity_info(PLOOMES_TASKS), &bad, out, sizeof out), -1);
}

/* TICKETS_SINCE, when set, is the first cursor of tasks and interactions (issue 10). */
static void test_tickets_since_stamp(void **state)
{
    (void)state;
    config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ticket_lookback_minutes = 10;
    char ts[] = "2026-01-05T08:00:00Z";
    cfg.tickets_since = ts;
    char stamp[64];
    assert_int_equal(ploomes_initial_stamp(&cfg, PLOOMES_TASKS, 1708744200123LL, stamp,
                                           sizeof stamp), 0);
    assert_string_equal(stamp, ts);
    assert_int_equal(ploomes_initial_stamp(&cfg, PLOOMES_INTERACTIONS, 1708744200123LL, stamp,
                                           sizeof stamp), 0);
    assert_string_equal(stamp, ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyset_queries),   cmocka_unit_test(test_keyset_query_rejects),
        cmocka_unit_test(test_entity_table),     cmocka_unit_test(test_instant_parse),
        cmocka_unit_test(test_no_progress_guard), cmocka_unit_test(test_lookback_stamp),
        cmocka_unit_test(test_next_unit),        cmocka_unit_test(test_tie_and_position_queries),
        cmocka_unit_test(test_tickets_since_stamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
