/* testenv_: what every test needs from its surroundings, in one place.
 *
 * Integration tests read the real services' addresses from the environment that
 * scripts/test.sh sets (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI) and the build's folders from the
 * environment ctest sets (PIPELINE_BIN_DIR, PIPELINE_SOURCE_DIR). A missing variable FAILS the
 * test with a message naming it: an integration test that silently skips proves nothing.
 *
 * Second ctest entries (CMakeLists.txt: the same binary run again, e.g. on the second MongoDB
 * store, name suffix `_memory`) are configured by three variables, read before main() by
 * testenv_second_entry():
 *   PIPELINE_TEST_MONGO_URI_FROM=<VAR>  MONGODB_URI is set to $<VAR> (e.g. MONGODB_URI_MEMORY,
 *                                       which scripts/test.sh exports); when <VAR> is unset or
 *                                       empty the test prints why and exits TESTENV_SKIPPED
 *                                       (ctest SKIP_RETURN_CODE: reported as skipped, not passed);
 *   PIPELINE_TEST_FILTER=<pattern>      only the cmocka tests matching it run
 *                                       (cmocka_set_test_filter: '*' and '?' wildcards);
 *   PIPELINE_TEST_SKIP=<pattern>        the cmocka tests matching it do not run
 *                                       (cmocka_set_skip_filter).
 */
#ifndef PIPELINE_TESTENV_H
#define PIPELINE_TESTENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The exit status of a test skipped for want of its second store (ctest SKIP_RETURN_CODE). */
#define TESTENV_SKIPPED 77

/* Runs by itself before main() (a constructor); reads the three variables above. Not for
 * tests to call. Extern so that CMakeLists.txt can force it into a second entry's binary. */
void testenv_second_entry(void);

/* Returns the variable's value; when unset or empty, prints which variable is missing and
 * exits(1) (the test fails). The pointer is owned by the environment. */
const char *testenv_require(const char *name);

/* Writes "<prefix><pid>-<counter>-<random hex>" into buf: unique per call and run, so tests can
 * share one Kafka cluster and one MongoDB (topic prefixes, database names, group ids). */
const char *testenv_unique(char *buf, size_t size, const char *prefix);

/* "<PIPELINE_BIN_DIR>/<binary>" into buf. Exits(1) when PIPELINE_BIN_DIR is unset. */
const char *testenv_bin(char *buf, size_t size, const char *binary);

/* A MongoDB URI for the server of MONGODB_URI but with database `db` (keeps the query string). */
const char *testenv_mongo_uri_for_db(char *buf, size_t size, const char *db);

/* Polls cond(ctx) every `interval_ms` until it returns true or `timeout_ms` passes.
 * Returns true when the condition held. This is how tests wait: never a bare sleep. */
bool testenv_wait_until(bool (*cond)(void *ctx), void *ctx, int timeout_ms, int interval_ms);

/* Monotonic milliseconds. */
int64_t testenv_now_ms(void);

/* The whole file as a NUL-terminated malloc'd string (free() it), or NULL when it cannot be
 * read. For tests that check what a binary printed into its log. */
char *testenv_read_file(const char *path);

/* The first line of `out` that starts with `open` ('[' or '{'): where a CLI's JSON begins in a
 * capture that also holds log lines (libmongoc's own warnings start with "[ <pid>]", which a
 * plain strchr() took for an array). NULL when no line starts with it. */
const char *testenv_json_start(const char *out, char open);

/* A valid CPF (11 digits, check digits computed as apis.md says) into out: its 9-digit base is
 * `prefix` (digits, at most 9; "" for none) followed by n (>= 0) zero-padded to the remaining
 * width (only n's low digits when it is longer). E.g. ("4", 610000) -> base 400610000,
 * ("", 123456789) -> base 123456789. Different (prefix, n) within range give different CPFs. */
void testenv_make_cpf(const char *prefix, long n, char out[12]);

#endif
