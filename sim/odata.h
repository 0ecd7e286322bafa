/* odata_: the OData v4 query subset the Ploomes simulator understands (reference/apis.md §4.1).
 *
 *   $filter   eq ne gt ge lt le, and, or, not, parentheses; literals: 'strings' ('' escapes),
 *             integers and decimals, true/false, null, unquoted DateTimeOffset
 *             (2024-01-01T00:00:00.1234567-03:00, Z or any ±HH:MM; compared as instants);
 *             contains/startswith/endswith(Field,'x') (case as the schema says);
 *             Nav/any(x: <expr over x/...>), Nav/all(...); navigation paths (City/Id eq 1);
 *             a bare boolean field (Finished) means "Finished eq true".
 *   $orderby  Field [asc|desc][, ...]
 *   $select / $expand lists, with nested "(...)" options kept for the caller
 *   (Tags($select=Tag;$expand=Tag)).
 *
 * Anything outside the subset, an unknown field (at any depth, when the schema gives
 * path_type: inside lambdas and navigation paths too), or a literal whose type cannot be
 * compared with the field's declared type is a parse error, so the caller can answer 400
 * instead of a wrong result. Runtime type mismatches (an untyped field holding a number
 * compared with a string) are evaluation errors for the same reason.
 *
 * Ownership: parse functions return heap objects freed by their *_free. Thread-safe: no shared
 * state; the schema callbacks are called on the caller's thread.
 */
#ifndef SIM_ODATA_H
#define SIM_ODATA_H

#include "simtime.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum odata_type {
    ODATA_UNKNOWN = 0, /* not a field of this entity set: 400 */
    ODATA_ANY,         /* declared without a type (an undocumented object's content):
                        * checked at run time */
    ODATA_INT,
    ODATA_NUM,
    ODATA_STR,
    ODATA_DATE, /* stored as an ISO 8601 string, compared as an instant */
    ODATA_BOOL,
    ODATA_NAV /* navigation property (object or collection) */
} odata_type;

typedef struct odata_schema {
    /* Declared type of a top-level field of the entity set; ODATA_UNKNOWN when not a field. */
    odata_type (*field_type)(void *ctx, const char *name);
    /* Value of top-level member `name` of `record` (may compute navigation properties such as
     * City from CityId). Return NULL when absent. When the returned value is newly allocated,
     * also store it in *owned; the evaluator deletes it after use. NULL callback = plain
     * object lookup. */
    const cJSON *(*member)(void *ctx, const cJSON *record, const char *name, cJSON **owned);
    void *ctx;
    /* Optional. Declared type of a path below the record ("City/Name", "Tags/TagId": a
     * collection's segment stands for its elements; a lambda variable's path is the path of
     * its collection); ODATA_UNKNOWN when not a property. NULL = nested paths are unchecked
     * (ODATA_ANY). */
    odata_type (*path_type)(void *ctx, const char *const *path, size_t n);
    /* Optional. Member path[idx] of obj, where obj is the value reached by path[0..idx-1]
     * (an element, for collections); may compute navigation properties, handing new values
     * over in *owned like member. NULL = plain object lookup below the first segment. */
    const cJSON *(*member_at)(void *ctx, const cJSON *obj, const char *const *path, size_t idx,
                              cJSON **owned);
    /* String comparisons (eq ne gt ge lt le, contains, startswith, endswith) ignore ASCII
     * case when true; all of them are case-sensitive when false. */
    bool case_insensitive;
} odata_schema;

typedef struct odata_expr odata_expr;

/* Parses a $filter expression. Returns NULL with a message in err on any error. */
odata_expr *odata_filter_parse(const char *text, const odata_schema *schema, char *err,
                               size_t errlen);

/* Evaluates the filter against one record. Returns 0 and sets *match, or -1 with err filled
 * (a type mismatch found at run time). */
int odata_filter_eval(const odata_expr *expr, const cJSON *record, const odata_schema *schema,
                      bool *match, char *err, size_t errlen);

void odata_filter_free(odata_expr *expr);

/* Whether the filter pins top-level field `field` to one integer: true when it is
 * "field eq N" (or "N eq field"), possibly parenthesised, or an "and" chain (at any nesting of
 * "and" and parentheses) one of whose operands is; false for anything else ("or", "not",
 * any()/all(), a navigation path, a non-integer literal, |N| >= 2^53). On true, *value = N and
 * *leading tells whether that comparison is the first one evaluated (the leftmost operand of
 * the chain): a record whose `field` holds a number other than N then evaluates to false
 * without evaluating the rest (no run-time error can come from the rest). Every record the
 * filter matches has `field` == N (compared as doubles, exact below 2^53). value and leading
 * may be NULL. */
bool odata_filter_int_eq(const odata_expr *expr, const char *field, int64_t *value, bool *leading);

typedef struct odata_orderkey {
    char *field;
    bool desc;
} odata_orderkey;

typedef struct odata_orderby {
    size_t n;
    odata_orderkey *keys;
} odata_orderby;

/* Parses "$orderby". Returns 0, or -1 with err (unknown field, navigation, bad direction). */
int odata_orderby_parse(const char *text, const odata_schema *schema, odata_orderby *out,
                        char *err, size_t errlen);
void odata_orderby_free(odata_orderby *ob);

/* Total order used for sorting: missing/null < false < true < numbers < strings. Two strings
 * that both parse as DateTimeOffset compare as instants; other strings byte-wise. */
int odata_compare_values(const cJSON *a, const cJSON *b);

/* A value prepared for sorting many times: odata_sortkey_compare(ka, kb) returns exactly
 * odata_compare_values(a, b) for the values the keys were made of, without looking the date
 * strings up and parsing them again on every comparison. Borrows v (valid while v lives). */
typedef struct odata_sortkey {
    const cJSON *v;
    int rank;
    bool is_date;
    simtime_instant dt;
} odata_sortkey;

void odata_sortkey_make(const cJSON *v, odata_sortkey *out);
int odata_sortkey_compare(const odata_sortkey *a, const odata_sortkey *b);

typedef struct odata_list {
    size_t n;
    char **names;
    char **opts; /* per name: the text inside its "(...)" nested options, or NULL */
} odata_list;

/* Parses a comma-separated $select / $expand list. Each item is an identifier (or "*"), may
 * be a path "A/B" (only "A" is kept) and may carry "(...)" nested options, whose inner text
 * is kept in opts. Returns 0, or -1 with err (empty item, bad identifier, unbalanced
 * parentheses). */
int odata_list_parse(const char *text, odata_list *out, char *err, size_t errlen);
void odata_list_free(odata_list *list);
bool odata_list_has(const odata_list *list, const char *name);

/* The nested options of `name` in list, or NULL. */
const char *odata_list_opts(const odata_list *list, const char *name);

/* Splits nested options "$select=A,B;$expand=C($select=D)" (';' at depth 0) and calls fn
 * for each "name=value" (name includes the '$'; value NUL-terminated copy). Returns 0, or -1
 * with err (an item without '=', unbalanced parentheses, fn's error). */
int odata_options_each(const char *text,
                       int (*fn)(void *ctx, const char *name, const char *value, char *err,
                                 size_t errlen),
                       void *ctx, char *err, size_t errlen);

#endif
