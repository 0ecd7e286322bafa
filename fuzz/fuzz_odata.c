/* libFuzzer target: the simulators' OData parser (sim/odata.h). The input is split at the first
 * two newlines into a $filter, a $orderby and a $select/$expand list; each is parsed against a
 * small typed schema like the Ploomes simulator's, a parsed filter is evaluated on a few
 * records, and nested options are walked. Only crashes, leaks and sanitizer reports count:
 * a parse error is a normal outcome. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "odata.h"

static odata_type field_type(void *ctx, const char *name)
{
    (void)ctx;
    static const struct {
        const char *n;
        odata_type t;
    } f[] = {{"Id", ODATA_INT},       {"Name", ODATA_STR},     {"LastUpdateDate", ODATA_DATE},
             {"Finished", ODATA_BOOL}, {"CityId", ODATA_INT}, {"Tags", ODATA_NAV},
             {"City", ODATA_NAV},      {"Extra", ODATA_ANY},  {"Value", ODATA_NUM}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (strcmp(f[i].n, name) == 0)
            return f[i].t;
    return ODATA_UNKNOWN;
}

static odata_type path_type(void *ctx, const char *const *path, size_t n)
{
    (void)ctx;
    if (n == 2 && strcmp(path[0], "City") == 0)
        return strcmp(path[1], "Id") == 0     ? ODATA_INT
               : strcmp(path[1], "Name") == 0 ? ODATA_STR
                                              : ODATA_UNKNOWN;
    if (n == 2 && strcmp(path[0], "Tags") == 0)
        return strcmp(path[1], "TagId") == 0 ? ODATA_INT : ODATA_UNKNOWN;
    return n == 1 ? field_type(NULL, path[0]) : ODATA_UNKNOWN;
}

static const char *RECORDS =
    "[{\"Id\":1,\"Name\":\"ACME O'Brien\",\"LastUpdateDate\":\"2024-01-01T10:00:00-03:00\","
    "\"Finished\":true,\"Tags\":[{\"TagId\":10}],\"CityId\":7,\"Extra\":5,\"Value\":1.5,"
    "\"City\":{\"Id\":7,\"Name\":\"SP\"}},"
    "{\"Id\":2,\"Name\":\"Beta\",\"LastUpdateDate\":\"2024-01-01T13:00:00.0000001Z\","
    "\"Finished\":false,\"Tags\":[{\"TagId\":11},{\"TagId\":10}],\"Extra\":\"x\"},"
    "{\"Id\":3,\"Name\":null,\"Finished\":null,\"Tags\":[],\"Extra\":[1]},{}]";

static int each_cb(void *ctx, const char *name, const char *value, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    size_t *count = ctx;
    *count += strlen(name) + strlen(value);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cJSON *records;
    if (!records)
        records = cJSON_Parse(RECORDS); /* kept for the whole run */
    if (!records)
        abort();
    char *s = fuzz_cstr(data, size);
    if (!s)
        return 0;
    char *filter = s;
    char *orderby = strchr(filter, '\n');
    char *list = NULL;
    if (orderby) {
        *orderby++ = '\0';
        list = strchr(orderby, '\n');
        if (list)
            *list++ = '\0';
    }
    char err[256];
    for (int typed = 0; typed < 2; typed++) {
        odata_schema schema = {field_type, NULL, NULL, typed ? path_type : NULL, NULL,
                               typed == 1};
        odata_expr *e = odata_filter_parse(filter, &schema, err, sizeof err);
        if (e) {
            const cJSON *rec;
            cJSON_ArrayForEach(rec, records)
            {
                bool match = false;
                (void)odata_filter_eval(e, rec, &schema, &match, err, sizeof err);
            }
            odata_filter_free(e);
        }
        if (orderby) {
            odata_orderby ob;
            memset(&ob, 0, sizeof ob);
            if (odata_orderby_parse(orderby, &schema, &ob, err, sizeof err) == 0)
                odata_orderby_free(&ob);
        }
    }
    const char *ltext = list ? list : filter;
    odata_list l;
    memset(&l, 0, sizeof l);
    if (odata_list_parse(ltext, &l, err, sizeof err) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            (void)odata_list_has(&l, l.names[i]);
            const char *opts = odata_list_opts(&l, l.names[i]);
            if (opts) {
                size_t count = 0;
                (void)odata_options_each(opts, each_cb, &count, err, sizeof err);
            }
        }
        odata_list_free(&l);
    }
    size_t count = 0;
    (void)odata_options_each(ltext, each_cb, &count, err, sizeof err);
    const cJSON *a = cJSON_GetArrayItem(records, (int)(size % 4));
    const cJSON *b = cJSON_GetArrayItem(records, (int)((size / 4) % 4));
    (void)odata_compare_values(cJSON_GetObjectItemCaseSensitive(a, "Extra"),
                               cJSON_GetObjectItemCaseSensitive(b, "LastUpdateDate"));
    free(s);
    return 0;
}
