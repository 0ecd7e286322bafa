/* ploomes-sim: a faithful local fake of the Ploomes CRM API (reference/apis.md §1 and §4.1,
 * SPEC §8). Entity sets with an OData query subset, User-Key auth, a 300-row page cap with
 * @odata.nextLink, creates/updates/deletes, and the shared admin API and faults of simsrv.
 *
 *   ploomes-sim --port P --user-key K [--state FILE]
 *
 * Storage: one simstore per entity set. Navigation properties (Tags, Phones, OtherProperties,
 * ...) are stored inside the record and only printed when $expand names them; City, State,
 * Country, Company, Owner, Contact, Creator, Type and a company's Contacts are computed from
 * the foreign keys at read time.
 *
 * Strict (issue 9, README.md): the schema is the documented one, fixed (TYPES below): bodies,
 * seeds and every query option are checked against it, typed, and unknown names answer 400;
 * nested $expand options are applied (shape_parse/render).
 *
 * Dates: written like ASP.NET (up to 7 fractional digits, trailing zeros trimmed, -03:00); every
 * CreateDate/LastUpdateDate/FinishDate this server stamps is strictly later than the previous
 * one (100 ns apart at least), so no two writes share a LastUpdateDate. Contacts always carry
 * CNPJ and CPF (derived from Register by TypeId, else null); Phones get SearchPhoneNumber.
 */
#include "odata.h"
#include "simjson.h"
#include "simmain.h"
#include "simsrv.h"
#include "simstore.h"
#include "simtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_CAP 300
#define ACCOUNT_USER_ID 10000001
#define LARGE_ID_BASE 3000000000LL /* large_ids: past 2^31, as some real ids come close to it */

/* ---- schema -------------------------------------------------------------------------------- */

/* Entity sets (URL paths), then the types of their relation rows and lookups. The schema is
 * the documented one (reference/apis.md §1.4-§1.7), fixed: stored data never adds a field. */
enum { S_ACCOUNT, S_CONTACTS, S_TASKS, S_INTERACTIONS, S_TAGS, S_CITIES, S_STATES, S_COUNTRIES,
       S_USERS, S_CONTACT_TYPES, S_PHONE_TYPES, S_COUNT };
enum { T_TAGREL = S_COUNT, T_PHONE, T_OTHERPROP, T_TASKCONTACT, T_TASKUSER, T_LOOKUP, T_OPAQUE,
       T_COUNT };

typedef struct fielddef {
    const char *name;
    odata_type type;
} fielddef;

/* MANY: a collection stored in the record (rows of type `target`); ONE: an object stored in
 * the record (type `target`); LOOKUP: computed from our foreign key `fk` (set `target`);
 * REVERSE: the records of set `target` whose `fk` is our Id. */
typedef enum { NAV_MANY, NAV_ONE, NAV_LOOKUP, NAV_REVERSE } navkind;

typedef struct navdef {
    const char *name;
    navkind kind;
    int target;
    const char *fk;
} navdef;

#define I ODATA_INT
#define S ODATA_STR
#define D ODATA_DATE
#define B ODATA_BOOL
#define N ODATA_NUM

static const fielddef contact_fields[] = {
    {"Id", I}, {"TypeId", I}, {"Name", S}, {"LegalName", S}, {"Register", S}, {"CNPJ", S},
    {"CPF", S}, {"IdentityDocument", S}, {"StatusId", I}, {"ClassId", I}, {"OriginId", I},
    {"RelationshipId", I}, {"LineOfBusinessId", I}, {"NumberOfEmployeesId", I}, {"RoleId", I},
    {"DepartmentId", I}, {"CurrencyId", I}, {"OwnerId", I}, {"CompanyId", I},
    {"LastCompanyId", I}, {"Email", S}, {"Website", S}, {"Skype", S}, {"Facebook", S},
    {"Note", S}, {"Birthday", D}, {"NextAnniversary", D}, {"PreviousAnniversary", D},
    {"StreetAddress", S}, {"StreetAddressNumber", S}, {"StreetAddressLine2", S},
    {"Neighborhood", S}, {"ZipCode", I}, {"ForeignZipCode", S}, {"CityId", I}, {"StateId", I},
    {"CountryId", I}, {"CNAECode", S}, {"CNAEName", S}, {"CNAESecondary", S}, {"Latitude", N},
    {"Longitude", N}, {"EmailMarketing", B}, {"HasConsent", B}, {"Editable", B},
    {"Deletable", B}, {"HasScheduledTasks", B}, {"CreatorId", I}, {"UpdaterId", I},
    {"CreateDate", D}, {"LastUpdateDate", D}, {"Key", S}, {"AvatarUrl", S}, {"ImportId", I},
    {"CreateImportationId", I}, {"UpdateImportationId", I}, {"ImportationIdCreate", I},
    {"ImportationIdUpdate", I}, {"PublicFormIdCreate", I}, {"PublicFormIdUpdate", I},
    {"LeadId", I}, {"FirstTaskId", I}, {"FirstTaskDate", D}, {"LastInteractionRecordId", I},
    {"LastDealId", I}, {"LastOrderId", I}, {"LastDocumentId", I}, {"TasksOrdination", I},
    {NULL, 0}};

static const navdef contact_navs[] = {
    {"Tags", NAV_MANY, T_TAGREL, NULL}, {"Phones", NAV_MANY, T_PHONE, NULL},
    {"OtherProperties", NAV_MANY, T_OTHERPROP, NULL},
    {"CollaboratingUsers", NAV_MANY, T_OPAQUE, NULL}, {"Attachments", NAV_MANY, T_OPAQUE, NULL},
    {"City", NAV_LOOKUP, S_CITIES, "CityId"}, {"State", NAV_LOOKUP, S_STATES, "StateId"},
    {"Country", NAV_LOOKUP, S_COUNTRIES, "CountryId"},
    {"Company", NAV_LOOKUP, S_CONTACTS, "CompanyId"}, {"Owner", NAV_LOOKUP, S_USERS, "OwnerId"},
    {"Creator", NAV_LOOKUP, S_USERS, "CreatorId"}, {"Updater", NAV_LOOKUP, S_USERS, "UpdaterId"},
    {"Type", NAV_LOOKUP, S_CONTACT_TYPES, "TypeId"},
    {"Contacts", NAV_REVERSE, S_CONTACTS, "CompanyId"},
    {"Status", NAV_ONE, T_LOOKUP, NULL}, {"Class", NAV_ONE, T_LOOKUP, NULL},
    {"Origin", NAV_ONE, T_LOOKUP, NULL}, {"Currency", NAV_ONE, T_LOOKUP, NULL},
    {"Department", NAV_ONE, T_LOOKUP, NULL}, {"Relationship", NAV_ONE, T_LOOKUP, NULL},
    {"LineOfBusiness", NAV_ONE, T_LOOKUP, NULL}, {"Role", NAV_ONE, T_LOOKUP, NULL},
    {"NumberOfEmployees", NAV_ONE, T_LOOKUP, NULL}, {NULL, 0, 0, NULL}};

/* OwnerId is not a task field: the MCP server's Date/Hour/OwnerId contradict ITasks ([G]). */
static const fielddef task_fields[] = {
    {"Id", I}, {"Title", S}, {"Description", S}, {"TypeId", I}, {"ContactId", I},
    {"ContactName", S}, {"DealId", I}, {"DateTime", D}, {"EndTime", D}, {"NoTime", B},
    {"Length", N}, {"Finished", B}, {"Finishable", B}, {"FinishDate", D}, {"FinisherId", I},
    {"Editable", B}, {"CreatesGoogleCalendarEvent", B}, {"Address", S}, {"Latitude", N},
    {"Longitude", N}, {"InteractionRecordId", I}, {"OriginTaskId", I},
    {"RepeatIntervalLength", I}, {"RepeatIntervalUnitId", I}, {"EmailReminderId", I},
    {"CreatorId", I}, {"UpdaterId", I}, {"CreateDate", D}, {"LastUpdateDate", D}, {NULL, 0}};

static const navdef task_navs[] = {
    {"Tags", NAV_MANY, T_TAGREL, NULL}, {"Contacts", NAV_MANY, T_TASKCONTACT, NULL},
    {"Users", NAV_MANY, T_TASKUSER, NULL}, {"OtherProperties", NAV_MANY, T_OTHERPROP, NULL},
    {"Contact", NAV_LOOKUP, S_CONTACTS, "ContactId"},
    {"Creator", NAV_LOOKUP, S_USERS, "CreatorId"}, {"Updater", NAV_LOOKUP, S_USERS, "UpdaterId"},
    {"Finisher", NAV_LOOKUP, S_USERS, "FinisherId"}, {"Deal", NAV_ONE, T_OPAQUE, NULL},
    {"Type", NAV_ONE, T_LOOKUP, NULL}, {"OriginTask", NAV_ONE, T_OPAQUE, NULL},
    {"RepeatIntervalUnit", NAV_ONE, T_LOOKUP, NULL}, {"EmailReminder", NAV_ONE, T_LOOKUP, NULL},
    {NULL, 0, 0, NULL}};

static const fielddef interaction_fields[] = {
    {"Id", I}, {"ContactId", I}, {"DealId", I}, {"Date", D}, {"Length", N}, {"TypeId", I},
    {"Content", S}, {"Latitude", N}, {"Longitude", N}, {"VerifiedCheckIn", B},
    {"OriginalTaskId", I}, {"TotalVoiceCallId", I}, {"CreatorId", I}, {"UpdaterId", I},
    {"LastUpdateDate", D}, {"CreateDate", D}, {"Editable", B}, {NULL, 0}};

static const navdef interaction_navs[] = {
    {"Tags", NAV_MANY, T_TAGREL, NULL}, {"NotifiedUsers", NAV_MANY, T_OPAQUE, NULL},
    {"Comments", NAV_MANY, T_OPAQUE, NULL}, {"OtherProperties", NAV_MANY, T_OTHERPROP, NULL},
    {"Contact", NAV_LOOKUP, S_CONTACTS, "ContactId"},
    {"Creator", NAV_LOOKUP, S_USERS, "CreatorId"}, {"Type", NAV_ONE, T_LOOKUP, NULL},
    {NULL, 0, 0, NULL}};

static const fielddef tag_fields[] = {{"Id", I}, {"Name", S}, {"Color", S}, {"EntityId", I}, {NULL, 0}};
static const fielddef city_fields[] = {{"Id", I}, {"Name", S}, {"CountryId", I}, {"StateId", I},
                                       {"IBGECode", I}, {"LastUpdateDate", D}, {"Editable", B},
                                       {NULL, 0}};
static const navdef city_navs[] = {{"State", NAV_LOOKUP, S_STATES, "StateId"},
                                   {"Country", NAV_LOOKUP, S_COUNTRIES, "CountryId"},
                                   {NULL, 0, 0, NULL}};
static const fielddef state_fields[] = {{"Id", I}, {"Name", S}, {"CountryId", I}, {"Short", S}, {NULL, 0}};
static const navdef state_navs[] = {{"Country", NAV_LOOKUP, S_COUNTRIES, "CountryId"}, {NULL, 0, 0, NULL}};
static const fielddef country_fields[] = {{"Id", I}, {"Name", S}, {"Short", S}, {NULL, 0}};
static const fielddef user_fields[] = {{"Id", I}, {"Name", S}, {"Email", S}, {NULL, 0}};
static const fielddef account_fields[] = {{"Id", I}, {"Name", S}, {"Email", S}, {NULL, 0}};
static const fielddef lookup_fields[] = {{"Id", I}, {"Name", S}, {NULL, 0}};
static const navdef no_navs[] = {{NULL, 0, 0, NULL}};

/* Relation rows: ITagsRelational, IContactsPhones, IOtherProperties, task Contacts
 * ({Id, TaskId, ContactId, Name, Email}); task Users ({Id, UserId, TaskId} + User, [G]). */
static const fielddef tagrel_fields[] = {{"Id", I}, {"TagId", I}, {"ContactId", I}, {"TaskId", I},
                                         {"InteractionRecordId", I}, {"DealId", I}, {"LeadId", I},
                                         {"NoteId", I}, {NULL, 0}};
static const navdef tagrel_navs[] = {{"Tag", NAV_LOOKUP, S_TAGS, "TagId"}, {NULL, 0, 0, NULL}};
static const fielddef phone_fields[] = {{"Id", I}, {"ContactId", I}, {"PhoneNumber", S},
                                        {"SearchPhoneNumber", N}, {"TypeId", I}, {"CountryId", I},
                                        {NULL, 0}};
static const navdef phone_navs[] = {{"Type", NAV_LOOKUP, S_PHONE_TYPES, "TypeId"},
                                    {"Country", NAV_LOOKUP, S_COUNTRIES, "CountryId"},
                                    {NULL, 0, 0, NULL}};
static const fielddef otherprop_fields[] = {{"Id", I}, {"FieldKey", S}, {"StringValue", S},
                                            {"BigStringValue", S}, {"IntegerValue", I},
                                            {"DecimalValue", N}, {"DateTimeValue", D},
                                            {"BoolValue", B}, {"ObjectValueId", I}, {NULL, 0}};
static const fielddef taskcontact_fields[] = {{"Id", I}, {"TaskId", I}, {"ContactId", I},
                                              {"Name", S}, {"Email", S}, {NULL, 0}};
static const navdef taskcontact_navs[] = {{"Contact", NAV_LOOKUP, S_CONTACTS, "ContactId"},
                                          {NULL, 0, 0, NULL}};
static const fielddef taskuser_fields[] = {{"Id", I}, {"UserId", I}, {"TaskId", I}, {NULL, 0}};
static const navdef taskuser_navs[] = {{"User", NAV_LOOKUP, S_USERS, "UserId"}, {NULL, 0, 0, NULL}};

#undef I
#undef S
#undef D
#undef B
#undef N

typedef struct typedef_ {
    const char *name; /* for messages */
    const fielddef *fields;
    const navdef *navs; /* T_OPAQUE: NULL, its content is undocumented and not checked */
} typedef_;

static const typedef_ TYPES[T_COUNT] = {
    [S_ACCOUNT] = {"Account", account_fields, no_navs},
    [S_CONTACTS] = {"Contact", contact_fields, contact_navs},
    [S_TASKS] = {"Task", task_fields, task_navs},
    [S_INTERACTIONS] = {"InteractionRecord", interaction_fields, interaction_navs},
    [S_TAGS] = {"Tag", tag_fields, no_navs},
    [S_CITIES] = {"City", city_fields, city_navs},
    [S_STATES] = {"State", state_fields, state_navs},
    [S_COUNTRIES] = {"Country", country_fields, no_navs},
    [S_USERS] = {"User", user_fields, no_navs},
    [S_CONTACT_TYPES] = {"ContactType", lookup_fields, no_navs},
    [S_PHONE_TYPES] = {"PhoneType", lookup_fields, no_navs},
    [T_TAGREL] = {"TagRelation", tagrel_fields, tagrel_navs},
    [T_PHONE] = {"Phone", phone_fields, phone_navs},
    [T_OTHERPROP] = {"OtherProperty", otherprop_fields, no_navs},
    [T_TASKCONTACT] = {"TaskContact", taskcontact_fields, taskcontact_navs},
    [T_TASKUSER] = {"TaskUser", taskuser_fields, taskuser_navs},
    [T_LOOKUP] = {"Lookup", lookup_fields, no_navs},
    [T_OPAQUE] = {"Object", NULL, NULL},
};

typedef struct entset_def {
    const char *path;      /* URL segment */
    const char *seed_key;  /* key in /_admin/seed and /_admin/state; NULL = not seedable */
    int64_t first_id;
    const char *owner_key; /* relation rows (Tags, Phones) point back with this key */
    bool has_dates;        /* CreateDate / LastUpdateDate maintained */
    bool writable;         /* POST / PATCH / DELETE */
} entset_def;

static const entset_def SETS[S_COUNT] = {
    [S_ACCOUNT] = {"Account", "Account", 1, NULL, false, false},
    [S_CONTACTS] = {"Contacts", "Contacts", 100000001, "ContactId", true, true},
    [S_TASKS] = {"Tasks", "Tasks", 200000001, "TaskId", true, true},
    [S_INTERACTIONS] = {"InteractionRecords", "InteractionRecords", 300000001, "InteractionRecordId", true, true},
    [S_TAGS] = {"Tags", "Tags", 40000001, NULL, false, false},
    [S_CITIES] = {"Cities", "Cities", 1000001, NULL, false, false},
    [S_STATES] = {"Cities@Countries@States", "States", 101, NULL, false, false},
    [S_COUNTRIES] = {"Cities@Countries", "Countries", 1001, NULL, false, false},
    [S_USERS] = {"Users", "Users", 10000101, NULL, false, false},
    [S_CONTACT_TYPES] = {"Contacts@Types", NULL, 1, NULL, false, false},
    [S_PHONE_TYPES] = {"PhoneTypes", NULL, 1, NULL, false, false},
};

/* Fields the server owns: in a write body they are a 400 (readonly_fields "reject") or
 * dropped ("ignore"). */
static bool is_readonly(const char *name)
{
    static const char *ro[] = {"Id", "CreatorId", "UpdaterId", "CreateDate", "LastUpdateDate",
                               "Editable", "Deletable", "HasScheduledTasks", NULL};
    for (int i = 0; ro[i]; i++)
        if (strcmp(ro[i], name) == 0)
            return true;
    return false;
}

/* The records of set `target` by foreign key `fk` (sorted by fk, then Id: the store's order
 * within one fk), for NAV_REVERSE (Contact/Contacts: the people of a company) without a scan
 * per record. Built on demand; stale once the set's gen moves. */
typedef struct revrow {
    int64_t fk, id;
    cJSON *obj; /* the store's */
} revrow;

typedef struct revidx {
    int target;
    const char *fk;
    uint64_t gen;
    bool valid;
    revrow *rows;
    size_t n;
} revidx;

typedef struct app {
    const char *user_key;
    revidx rev;
    simstore sets[S_COUNT];
    int64_t next_id[S_COUNT];
    int64_t next_rel_id;
    int64_t last_stamp_ticks;
} app;

typedef struct schema_ctx {
    app *a;
    int set;
} schema_ctx;

/* ---- helpers -------------------------------------------------------------------------------- */

static const fielddef *find_field(int type, const char *name)
{
    for (const fielddef *f = TYPES[type].fields; f && f->name; f++)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

static const navdef *find_nav(int type, const char *name)
{
    for (const navdef *n = TYPES[type].navs; n && n->name; n++)
        if (strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

/* Navigation-like: a declared navigation, or any stored array/object value. */
static bool is_nav_item(int type, const cJSON *item)
{
    return find_nav(type, item->string) || cJSON_IsArray(item) || cJSON_IsObject(item);
}

static odata_type field_type_cb(void *ctx, const char *name)
{
    schema_ctx *sc = ctx;
    const fielddef *f = find_field(sc->set, name);
    if (f)
        return f->type;
    if (find_nav(sc->set, name))
        return ODATA_NAV;
    return ODATA_UNKNOWN;
}

/* The type reached by path[0..n) from `type` (a collection's segment stands for its rows);
 * -1 when a segment is not a navigation property. */
static int type_after(int type, const char *const *path, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (type == T_OPAQUE)
            return T_OPAQUE;
        const navdef *nd = find_nav(type, path[i]);
        if (!nd)
            return -1;
        type = nd->target;
    }
    return type;
}

static odata_type path_type_cb(void *ctx, const char *const *path, size_t n)
{
    schema_ctx *sc = ctx;
    if (n == 0)
        return ODATA_UNKNOWN;
    int t = type_after(sc->set, path, n - 1);
    if (t < 0)
        return ODATA_UNKNOWN;
    if (t == T_OPAQUE)
        return ODATA_ANY;
    const fielddef *f = find_field(t, path[n - 1]);
    if (f)
        return f->type;
    return find_nav(t, path[n - 1]) ? ODATA_NAV : ODATA_UNKNOWN;
}

static int cmp_revrow(const void *pa, const void *pb)
{
    const revrow *x = pa, *y = pb;
    if (x->fk != y->fk)
        return x->fk < y->fk ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

static void revidx_free(revidx *rx)
{
    free(rx->rows);
    memset(rx, 0, sizeof *rx);
}

/* The index of set `target` by `fk`, rebuilt when stale; NULL when out of memory. */
static const revidx *revidx_get(app *a, int target, const char *fk)
{
    revidx *rx = &a->rev;
    const simstore *st = &a->sets[target];
    if (rx->valid && rx->target == target && strcmp(rx->fk, fk) == 0 && rx->gen == st->gen)
        return rx;
    revidx_free(rx);
    rx->rows = malloc((st->n ? st->n : 1) * sizeof *rx->rows);
    if (!rx->rows)
        return NULL;
    for (size_t i = 0; i < st->n; i++) {
        int64_t v;
        if (simjson_get_i64(st->items[i].obj, fk, &v))
            rx->rows[rx->n++] = (revrow){v, st->items[i].id, st->items[i].obj};
    }
    qsort(rx->rows, rx->n, sizeof *rx->rows, cmp_revrow);
    rx->target = target;
    rx->fk = fk;
    rx->gen = st->gen;
    rx->valid = true;
    return rx;
}

/* Value of a navigation property; computed ones are returned in *owned (references, no
 * copies) and must be deleted by the caller. */
static const cJSON *nav_value(app *a, const cJSON *rec, const navdef *nd, cJSON **owned)
{
    *owned = NULL;
    if (nd->kind == NAV_LOOKUP) {
        int64_t fk;
        if (!simjson_get_i64(rec, nd->fk, &fk))
            return NULL;
        return simstore_get(&a->sets[nd->target], fk);
    }
    if (nd->kind == NAV_REVERSE) {
        int64_t id;
        if (!simjson_get_i64(rec, "Id", &id))
            return NULL;
        cJSON *arr = cJSON_CreateArray();
        const simstore *st = &a->sets[nd->target];
        const revidx *rx = revidx_get(a, nd->target, nd->fk);
        if (rx) {
            size_t lo = 0, hi = rx->n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (rx->rows[mid].fk < id)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (size_t i = lo; arr && i < rx->n && rx->rows[i].fk == id; i++)
                if (rx->rows[i].obj != rec)
                    cJSON_AddItemReferenceToArray(arr, rx->rows[i].obj);
        } else { /* out of memory for the index: the scan */
            for (size_t i = 0; arr && i < st->n; i++) {
                int64_t fk;
                if (simjson_get_i64(st->items[i].obj, nd->fk, &fk) && fk == id &&
                    st->items[i].obj != rec)
                    cJSON_AddItemReferenceToArray(arr, st->items[i].obj);
            }
        }
        *owned = arr;
        return arr;
    }
    return cJSON_GetObjectItemCaseSensitive(rec, nd->name);
}

static const cJSON *member_cb(void *ctx, const cJSON *rec, const char *name, cJSON **owned)
{
    schema_ctx *sc = ctx;
    *owned = NULL;
    const navdef *nd = find_nav(sc->set, name);
    if (nd)
        return nav_value(sc->a, rec, nd, owned);
    return cJSON_GetObjectItemCaseSensitive(rec, name);
}

static const cJSON *member_at_cb(void *ctx, const cJSON *obj, const char *const *path, size_t idx,
                                 cJSON **owned)
{
    schema_ctx *sc = ctx;
    *owned = NULL;
    int t = type_after(sc->set, path, idx);
    const navdef *nd = t >= 0 ? find_nav(t, path[idx]) : NULL;
    if (nd)
        return nav_value(sc->a, obj, nd, owned);
    return cJSON_GetObjectItemCaseSensitive(obj, path[idx]);
}

static odata_schema make_schema(schema_ctx *sc, const simsrv *srv)
{
    odata_schema schema = {field_type_cb, member_cb, sc, path_type_cb, member_at_cb,
                           simsrv_get_faults(srv)->string_ci};
    return schema;
}

/* ---- $select / $expand shapes ------------------------------------------------------------- */

/* What to print of a record: its $select and $expand, and per expanded navigation property
 * the shape of its target (from the nested "(...)" options). */
typedef struct shape {
    odata_list select, expand;
    struct shape *sub; /* expand.n entries */
} shape;

static void shape_free(shape *sh)
{
    for (size_t i = 0; sh->sub && i < sh->expand.n; i++)
        shape_free(&sh->sub[i]);
    free(sh->sub);
    sh->sub = NULL;
    odata_list_free(&sh->select);
    odata_list_free(&sh->expand);
}

static int shape_parse(int type, const char *select, const char *expand, int depth, shape *sh,
                       char *err, size_t errlen);

typedef struct nested_opts {
    const char *select, *expand;
    char *sel_copy, *exp_copy;
} nested_opts;

static int nested_opt_cb(void *ctx, const char *name, const char *value, char *err, size_t errlen)
{
    nested_opts *no = ctx;
    char **dst = strcmp(name, "$select") == 0 ? &no->sel_copy
                 : strcmp(name, "$expand") == 0 ? &no->exp_copy
                                                 : NULL;
    if (!dst) {
        snprintf(err, errlen, "The query option '%.40s' is not supported inside $expand.", name);
        return -1;
    }
    if (*dst) {
        snprintf(err, errlen, "The query option '%.40s' is specified more than once.", name);
        return -1;
    }
    *dst = strdup(value);
    if (!*dst) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static int shape_parse(int type, const char *select, const char *expand, int depth, shape *sh,
                       char *err, size_t errlen)
{
    memset(sh, 0, sizeof *sh);
    char e2[300] = "";
    if (depth > 8) {
        snprintf(err, errlen, "$expand nested too deeply.");
        return -1;
    }
    if (select) {
        if (odata_list_parse(select, &sh->select, e2, sizeof e2) < 0) {
            snprintf(err, errlen, "$select: %s", e2);
            goto fail;
        }
        for (size_t i = 0; type != T_OPAQUE && i < sh->select.n; i++) {
            const char *nm = sh->select.names[i];
            if (strcmp(nm, "*") != 0 && !find_field(type, nm) && !find_nav(type, nm)) {
                snprintf(err, errlen, "Could not find a property named '%.60s' on type '%s'.",
                         nm, TYPES[type].name);
                goto fail;
            }
        }
    }
    if (expand) {
        if (odata_list_parse(expand, &sh->expand, e2, sizeof e2) < 0) {
            snprintf(err, errlen, "$expand: %s", e2);
            goto fail;
        }
        sh->sub = calloc(sh->expand.n ? sh->expand.n : 1, sizeof *sh->sub);
        if (!sh->sub) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < sh->expand.n; i++) {
            const char *nm = sh->expand.names[i];
            const navdef *nd = type == T_OPAQUE ? NULL : find_nav(type, nm);
            if (type != T_OPAQUE && !nd) {
                snprintf(err, errlen,
                         "Could not find a navigation property named '%.60s' on type '%s'.", nm,
                         TYPES[type].name);
                goto fail;
            }
            const char *opts = odata_list_opts(&sh->expand, nm);
            nested_opts no = {0};
            if (opts && odata_options_each(opts, nested_opt_cb, &no, err, errlen) < 0) {
                free(no.sel_copy);
                free(no.exp_copy);
                goto fail;
            }
            int rc = shape_parse(nd ? nd->target : T_OPAQUE, no.sel_copy, no.exp_copy, depth + 1,
                                 &sh->sub[i], err, errlen);
            free(no.sel_copy);
            free(no.exp_copy);
            if (rc < 0)
                goto fail;
        }
    }
    return 0;
fail:
    shape_free(sh);
    return -1;
}

static cJSON *render(app *a, int type, const cJSON *rec, const shape *sh)
{
    if (type == T_OPAQUE)
        return cJSON_Duplicate(rec, true);
    cJSON *out = cJSON_CreateObject();
    if (!out)
        return NULL;
    bool all = !sh || sh->select.n == 0 || odata_list_has(&sh->select, "*");
    const cJSON *it;
    cJSON_ArrayForEach(it, rec)
    {
        if (is_nav_item(type, it) || !find_field(type, it->string)) /* the documented schema only */
            continue;
        if (!all && !odata_list_has(&sh->select, it->string))
            continue;
        cJSON_AddItemToObject(out, it->string, cJSON_Duplicate(it, true));
    }
    for (size_t i = 0; sh && i < sh->expand.n; i++) {
        const char *name = sh->expand.names[i];
        if (cJSON_GetObjectItemCaseSensitive(out, name))
            continue;
        const navdef *nd = find_nav(type, name);
        if (!nd)
            continue;
        cJSON *owned = NULL;
        const cJSON *v = nav_value(a, rec, nd, &owned);
        cJSON *copy;
        if (cJSON_IsArray(v)) {
            copy = cJSON_CreateArray();
            const cJSON *el;
            cJSON_ArrayForEach(el, v)
            {
                if (copy)
                    cJSON_AddItemToArray(copy, cJSON_IsObject(el) ? render(a, nd->target, el, &sh->sub[i])
                                                                  : cJSON_Duplicate(el, true));
            }
        } else if (cJSON_IsObject(v)) {
            copy = render(a, nd->target, v, &sh->sub[i]);
        } else if (nd->kind == NAV_MANY || nd->kind == NAV_REVERSE) {
            copy = cJSON_CreateArray();
        } else {
            copy = cJSON_CreateNull();
        }
        cJSON_Delete(owned);
        cJSON_AddItemToObject(out, name, copy);
    }
    return out;
}

/* ---- write and seed bodies ----------------------------------------------------------------- */

typedef enum { BODY_WRITE, BODY_ROW, BODY_SEED } body_mode;

/* A value of the declared type (null is always allowed). */
static bool type_ok(odata_type t, const cJSON *v)
{
    int64_t n;
    simtime_instant when;
    if (cJSON_IsNull(v))
        return true;
    switch (t) {
    case ODATA_INT: return simjson_i64(v, &n);
    case ODATA_NUM: return cJSON_IsNumber(v);
    case ODATA_STR: return cJSON_IsString(v);
    case ODATA_BOOL: return cJSON_IsBool(v);
    case ODATA_DATE:
        return cJSON_IsString(v) && simtime_parse_iso(v->valuestring, strlen(v->valuestring), &when);
    default: return true;
    }
}

/* Checks a body (or a relation row) against the fixed schema of `type`: every member a
 * documented field of the right type or a navigation property that can be written (a
 * collection of rows, checked the same way); read-only fields rejected (or, with
 * readonly_ignore, removed) in a write. A seeded record (BODY_SEED) keeps undocumented fields
 * (SPEC §8: seeds keep the fields given; the API never shows or queries them) but its
 * documented ones must have their type. where names the record in messages. 0, or -1 with err
 * naming the record and the field. */
static int check_body(int type, cJSON *body, body_mode mode, bool readonly_ignore,
                      const char *where, char *err, size_t errlen)
{
    if (type == T_OPAQUE)
        return 0;
    cJSON *it = body->child;
    while (it) {
        cJSON *next = it->next;
        const char *k = it->string;
        const fielddef *f = find_field(type, k);
        const navdef *nd = f ? NULL : find_nav(type, k);
        if (f) {
            if (!type_ok(f->type, it)) {
                snprintf(err, errlen, "%s: the field '%.60s' must be %s.", where, k,
                         f->type == ODATA_INT    ? "an integer (a JSON number)"
                         : f->type == ODATA_NUM  ? "a number"
                         : f->type == ODATA_STR  ? "a string"
                         : f->type == ODATA_BOOL ? "true or false"
                                                 : "a DateTimeOffset string (ISO 8601 with an offset)");
                return -1;
            }
            if (mode == BODY_WRITE && is_readonly(k)) {
                if (!readonly_ignore) {
                    snprintf(err, errlen, "%s: the field '%.60s' is read-only.", where, k);
                    return -1;
                }
                cJSON_Delete(cJSON_DetachItemViaPointer(body, it));
            }
        } else if (nd) {
            if (mode != BODY_SEED && nd->kind != NAV_MANY) {
                snprintf(err, errlen, "%s: the navigation property '%.60s' cannot be written.", where, k);
                return -1;
            }
            if (nd->kind == NAV_MANY && !cJSON_IsNull(it)) {
                if (!cJSON_IsArray(it)) {
                    snprintf(err, errlen, "%s: '%.60s' must be an array.", where, k);
                    return -1;
                }
                cJSON *row;
                int idx = 0;
                cJSON_ArrayForEach(row, it)
                {
                    char w2[160];
                    snprintf(w2, sizeof w2, "%.100s.%.30s[%d]", where, k, idx++);
                    if (!cJSON_IsObject(row)) {
                        snprintf(err, errlen, "%s must be an object.", w2);
                        return -1;
                    }
                    if (check_body(nd->target, row, mode == BODY_SEED ? BODY_SEED : BODY_ROW,
                                   readonly_ignore, w2, err, errlen) < 0)
                        return -1;
                }
            }
        } else if (mode != BODY_SEED) {
            snprintf(err, errlen, "%s: the property '%.60s' does not exist on type '%s'.", where, k,
                     TYPES[type].name);
            return -1;
        }
        it = next;
    }
    return 0;
}

static void error_body(void *ctx, simsrv *srv, simsrv_resp *resp, int status, const char *message)
{
    (void)ctx;
    if (simsrv_get_faults(srv)->error_odata) {
        cJSON *o = cJSON_CreateObject();
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        char code[16];
        snprintf(code, sizeof code, "%d", status);
        cJSON_AddStringToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", message);
        simsrv_resp_json(resp, status, o);
    } else {
        simsrv_resp_message(resp, status, "value", message);
    }
}

static const char *auth_cb(void *ctx, simsrv *srv, const simsrv_req *req)
{
    (void)srv;
    app *a = ctx;
    return simsrv_header_is(req, "User-Key", NULL, a->user_key) ? a->user_key : NULL;
}

/* Dates are written like ASP.NET does (7 fractional digits, trailing zeros trimmed) and every
 * stamp this server hands out is strictly later than the previous one, even within one clock
 * tick: two writes never share a LastUpdateDate, as with the real server's 100 ns precision. */
static int64_t next_stamp(app *a)
{
    int64_t now = simtime_now_ticks();
    if (now <= a->last_stamp_ticks)
        now = a->last_stamp_ticks + 1;
    a->last_stamp_ticks = now;
    return now;
}

static cJSON *stamp_item(app *a)
{
    char buf[48];
    return cJSON_CreateString(simtime_format_ploomes_ticks(next_stamp(a), buf, sizeof buf));
}

/* SearchPhoneNumber: the digits of PhoneNumber as a number (IContactsPhones), when they fit. */
static void search_phone(cJSON *row)
{
    const char *num = simjson_get_str(row, "PhoneNumber");
    if (!num || cJSON_GetObjectItemCaseSensitive(row, "SearchPhoneNumber"))
        return;
    int64_t v = 0;
    int nd = 0;
    for (const char *p = num; *p; p++) {
        if (*p < '0' || *p > '9')
            continue;
        if (++nd > 15)
            return;
        v = v * 10 + (*p - '0');
    }
    if (nd)
        simjson_set(row, "SearchPhoneNumber", simjson_num_i64(v));
}

/* Makes relation rows of a nav array complete: Id and the back-pointer to the owner. */
static int normalize_rows(app *a, int set, cJSON *rec, const char *nav, int64_t owner_id,
                          char *err, size_t errlen)
{
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(rec, nav);
    if (!arr || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "%s must be an array", nav);
        return -1;
    }
    cJSON *row;
    cJSON_ArrayForEach(row, arr)
    {
        if (!cJSON_IsObject(row)) {
            snprintf(err, errlen, "%s must be an array of objects", nav);
            return -1;
        }
        if (strcmp(nav, "Tags") == 0) {
            int64_t tag;
            if (!simjson_get_i64(row, "TagId", &tag)) {
                snprintf(err, errlen, "Tags[].TagId must be an integer");
                return -1;
            }
        }
        int64_t id;
        if (!simjson_get_i64(row, "Id", &id))
            simjson_set(row, "Id", simjson_num_i64(a->next_rel_id++));
        if (SETS[set].owner_key && (strcmp(nav, "Tags") == 0 || strcmp(nav, "Phones") == 0) &&
            !cJSON_GetObjectItemCaseSensitive(row, SETS[set].owner_key))
            simjson_set(row, SETS[set].owner_key, simjson_num_i64(owner_id));
        if (strcmp(nav, "Phones") == 0)
            search_phone(row);
    }
    return 0;
}

/* CNPJ (TypeId 1) or CPF (TypeId 2) derived from Register, the other null. Both are present on
 * every row the real API returns, so a record without Register gets them as null. */
static void derive_documents(cJSON *rec, bool derive)
{
    const cJSON *regv = cJSON_GetObjectItemCaseSensitive(rec, "Register");
    if (!regv || !derive) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, "CNPJ"))
            simjson_set(rec, "CNPJ", cJSON_CreateNull());
        if (!cJSON_GetObjectItemCaseSensitive(rec, "CPF"))
            simjson_set(rec, "CPF", cJSON_CreateNull());
        return;
    }
    const char *reg = cJSON_IsString(regv) ? regv->valuestring : NULL;
    int64_t type = 1;
    simjson_get_i64(rec, "TypeId", &type);
    simjson_set(rec, "CNPJ", reg && type == 1 ? cJSON_CreateString(reg) : cJSON_CreateNull());
    simjson_set(rec, "CPF", reg && type == 2 ? cJSON_CreateString(reg) : cJSON_CreateNull());
}

/* ---- seed / state / reset ------------------------------------------------------------------ */

static void static_records(app *a)
{
    cJSON *acc = cJSON_CreateObject();
    cJSON_AddNumberToObject(acc, "Id", 1);
    cJSON_AddStringToObject(acc, "Name", "Conta Simulada");
    cJSON_AddStringToObject(acc, "Email", "admin@simulada.example");
    simstore_put(&a->sets[S_ACCOUNT], 1, acc);
    static const char *types[] = {"Empresa", "Pessoa"};
    for (int i = 0; i < 2; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "Id", i + 1);
        cJSON_AddStringToObject(t, "Name", types[i]);
        simstore_put(&a->sets[S_CONTACT_TYPES], i + 1, t);
    }
    static const char *phones[] = {"Comercial", "Celular", "Residencial", "Fax"};
    for (int i = 0; i < 4; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "Id", i + 1);
        cJSON_AddStringToObject(t, "Name", phones[i]);
        simstore_put(&a->sets[S_PHONE_TYPES], i + 1, t);
    }
    cJSON *user = cJSON_CreateObject();
    cJSON_AddNumberToObject(user, "Id", ACCOUNT_USER_ID);
    cJSON_AddStringToObject(user, "Name", "Usuário Integração");
    cJSON_AddStringToObject(user, "Email", "integracao@simulada.example");
    simstore_put(&a->sets[S_USERS], ACCOUNT_USER_ID, user);
}

static void app_reset(void *ctx)
{
    app *a = ctx;
    for (int s = 0; s < S_COUNT; s++) {
        simstore_clear(&a->sets[s]);
        a->next_id[s] = SETS[s].first_id;
    }
    a->next_rel_id = 500000001;
    static_records(a);
}

static int app_seed(void *ctx, simsrv *srv, const cJSON *body, char *err, size_t errlen)
{
    (void)srv;
    app *a = ctx;
    const cJSON *key;
    cJSON_ArrayForEach(key, body)
    {
        int set = -1;
        for (int s = 0; s < S_COUNT; s++)
            if (SETS[s].seed_key && strcmp(SETS[s].seed_key, key->string) == 0)
                set = s;
        if (set < 0) {
            snprintf(err, errlen, "seed: unknown key '%.60s' (Contacts, Tasks, InteractionRecords, "
                                  "Tags, Cities, States, Countries, Users, Account)",
                     key->string);
            return -1;
        }
        if (!cJSON_IsArray(key)) {
            snprintf(err, errlen, "seed: '%s' must be an array of records", key->string);
            return -1;
        }
        const cJSON *rec;
        size_t idx = 0;
        cJSON_ArrayForEach(rec, key)
        {
            if (!cJSON_IsObject(rec)) {
                snprintf(err, errlen, "seed: %s[%zu] is not an object", key->string, idx);
                return -1;
            }
            cJSON *copy = cJSON_Duplicate(rec, true);
            if (!copy) {
                snprintf(err, errlen, "seed: out of memory");
                return -1;
            }
            char where[96];
            snprintf(where, sizeof where, "seed: %s[%zu]", key->string, idx);
            if (check_body(set, copy, BODY_SEED, false, where, err, errlen) < 0) {
                cJSON_Delete(copy);
                return -1;
            }
            int64_t id;
            cJSON *idit = cJSON_GetObjectItemCaseSensitive(copy, "Id");
            if (idit) {
                if (!simjson_i64(idit, &id) || id <= 0) {
                    cJSON_Delete(copy);
                    snprintf(err, errlen, "seed: %s[%zu].Id must be a positive integer", key->string, idx);
                    return -1;
                }
            } else {
                id = a->next_id[set]++;
                simjson_set(copy, "Id", simjson_num_i64(id));
            }
            if (id >= a->next_id[set])
                a->next_id[set] = id + 1;
            if (SETS[set].has_dates) {
                if (!cJSON_GetObjectItemCaseSensitive(copy, "CreateDate"))
                    simjson_set(copy, "CreateDate", stamp_item(a));
                if (!cJSON_GetObjectItemCaseSensitive(copy, "LastUpdateDate"))
                    simjson_set(copy, "LastUpdateDate", stamp_item(a));
            }
            if (SETS[set].owner_key &&
                (normalize_rows(a, set, copy, "Tags", id, err, errlen) < 0 ||
                 normalize_rows(a, set, copy, "Phones", id, err, errlen) < 0)) {
                cJSON_Delete(copy);
                return -1;
            }
            if (simstore_put(&a->sets[set], id, copy) < 0) {
                snprintf(err, errlen, "seed: out of memory");
                return -1;
            }
            idx++;
        }
    }
    return 0;
}

static cJSON *app_state(void *ctx)
{
    app *a = ctx;
    cJSON *o = cJSON_CreateObject();
    for (int s = 0; o && s < S_COUNT; s++) {
        if (!SETS[s].seed_key)
            continue;
        cJSON *arr = cJSON_AddArrayToObject(o, SETS[s].seed_key);
        for (size_t i = 0; arr && i < a->sets[s].n; i++)
            cJSON_AddItemToArray(arr, cJSON_Duplicate(a->sets[s].items[i].obj, true));
    }
    return o;
}

/* ---- GET: the OData query ------------------------------------------------------------------ */

typedef struct sortctx {
    const odata_orderby *ob;
} sortctx;

static int cmp_records(const void *pa, const void *pb, void *ctx)
{
    const cJSON *a = *(const cJSON *const *)pa;
    const cJSON *b = *(const cJSON *const *)pb;
    const sortctx *sc = ctx;
    for (size_t i = 0; i < sc->ob->n; i++) {
        const char *f = sc->ob->keys[i].field;
        int c = odata_compare_values(cJSON_GetObjectItemCaseSensitive(a, f),
                                     cJSON_GetObjectItemCaseSensitive(b, f));
        if (c)
            return sc->ob->keys[i].desc ? -c : c;
    }
    return odata_compare_values(cJSON_GetObjectItemCaseSensitive(a, "Id"),
                                cJSON_GetObjectItemCaseSensitive(b, "Id"));
}

/* A row with its sort keys (the $orderby fields, then Id) looked up and parsed once. */
typedef struct keyedrow {
    const cJSON *rec;
    const odata_sortkey *keys;
} keyedrow;

static int cmp_keyed(const void *pa, const void *pb, void *ctx)
{
    const keyedrow *a = pa, *b = pb;
    const odata_orderby *ob = ctx;
    for (size_t i = 0; i < ob->n; i++) {
        int c = odata_sortkey_compare(&a->keys[i], &b->keys[i]);
        if (c)
            return ob->keys[i].desc ? -c : c;
    }
    return odata_sortkey_compare(&a->keys[ob->n], &b->keys[ob->n]);
}

/* Sorts rows like cmp_records (every comparison gives the same answer, so the same order) with
 * the keys prepared up front instead of per comparison. 0, or -1 when out of memory (rows
 * untouched). */
static int sort_rows(const cJSON **rows, size_t n, const odata_orderby *ob)
{
    size_t nk = ob->n + 1;
    if (n < 2)
        return 0;
    keyedrow *kr = malloc(n * sizeof *kr);
    odata_sortkey *keys = n <= SIZE_MAX / sizeof *keys / nk ? malloc(n * nk * sizeof *keys) : NULL;
    if (!kr || !keys) {
        free(kr);
        free(keys);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        kr[i].rec = rows[i];
        kr[i].keys = &keys[i * nk];
        for (size_t k = 0; k < ob->n; k++)
            odata_sortkey_make(cJSON_GetObjectItemCaseSensitive(rows[i], ob->keys[k].field), &keys[i * nk + k]);
        odata_sortkey_make(cJSON_GetObjectItemCaseSensitive(rows[i], "Id"), &keys[i * nk + ob->n]);
    }
    qsort_r(kr, n, sizeof *kr, cmp_keyed, (void *)ob);
    for (size_t i = 0; i < n; i++)
        rows[i] = kr[i].rec;
    free(kr);
    free(keys);
    return 0;
}

static bool known_option(const char *k)
{
    static const char *opts[] = {"$filter", "$orderby", "$top", "$skip", "$select", "$expand",
                                 "$count", "$inlinecount", "$format", NULL};
    for (int i = 0; opts[i]; i++)
        if (strcmp(opts[i], k) == 0)
            return true;
    return false;
}

typedef struct query {
    odata_expr *filter;
    odata_orderby orderby;
    shape shape;
    bool has_top;
    int64_t top, skip;
    bool count;
} query;

static void query_free(query *q)
{
    odata_filter_free(q->filter);
    odata_orderby_free(&q->orderby);
    shape_free(&q->shape);
}

static int query_parse(app *a, simsrv *srv, int set, const simsrv_req *req, query *q, char *err,
                       size_t errlen)
{
    memset(q, 0, sizeof *q);
    schema_ctx sc = {a, set};
    odata_schema schema = make_schema(&sc, srv);
    char e2[300] = "";
    for (size_t i = 0; i < req->nparams; i++) {
        const char *k = req->params[i].key;
        if (k[0] != '$')
            continue;
        if (!known_option(k)) {
            snprintf(err, errlen, "The query parameter '%.40s' is not supported.", k);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(req->params[j].key, k) == 0) {
                snprintf(err, errlen, "The query parameter '%.40s' is specified more than once.", k);
                return -1;
            }
        }
    }
    const char *v;
    if ((v = simsrv_param_get(req, "$filter"))) {
        q->filter = odata_filter_parse(v, &schema, e2, sizeof e2);
        if (!q->filter) {
            snprintf(err, errlen, "The query specified in the URI is not valid. %s", e2);
            return -1;
        }
    }
    if ((v = simsrv_param_get(req, "$orderby")) &&
        odata_orderby_parse(v, &schema, &q->orderby, e2, sizeof e2) < 0) {
        snprintf(err, errlen, "The query specified in the URI is not valid. %s", e2);
        return -1;
    }
    if (shape_parse(set, simsrv_param_get(req, "$select"), simsrv_param_get(req, "$expand"), 0,
                    &q->shape, err, errlen) < 0)
        return -1;
    if ((v = simsrv_param_get(req, "$top"))) {
        if (!simjson_parse_count(v, &q->top)) {
            snprintf(err, errlen, "Invalid value '%.30s' for $top: a non-negative integer is required.", v);
            return -1;
        }
        q->has_top = true;
    }
    if ((v = simsrv_param_get(req, "$skip")) && !simjson_parse_count(v, &q->skip)) {
        snprintf(err, errlen, "Invalid value '%.30s' for $skip: a non-negative integer is required.", v);
        return -1;
    }
    v = simsrv_param_get(req, "$count");
    if (!v && (v = simsrv_param_get(req, "$inlinecount")) && !simsrv_get_faults(srv)->inlinecount) {
        snprintf(err, errlen, "The query parameter '$inlinecount' is not supported.");
        return -1;
    }
    if (v) {
        if (strcmp(v, "true") == 0 || strcmp(v, "allpages") == 0)
            q->count = true;
        else if (strcmp(v, "false") != 0 && strcmp(v, "none") != 0) {
            snprintf(err, errlen, "Invalid value '%.30s' for $count.", v);
            return -1;
        }
    }
    return 0;
}

static cJSON *envelope(simsrv *srv, const simsrv_req *req, int set)
{
    char base[300], ctx[400];
    simsrv_base_url(srv, req, base, sizeof base);
    snprintf(ctx, sizeof ctx, "%s/$metadata#%s", base, SETS[set].path);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "@odata.context", ctx);
    return o;
}

static char *next_link(simsrv *srv, const simsrv_req *req, int64_t skip, bool has_top, int64_t top)
{
    simbuf b = {0};
    char base[300];
    const char *host = simsrv_get_faults(srv)->nextlink_host;
    simbuf_puts(&b, host[0] ? host : simsrv_base_url(srv, req, base, sizeof base));
    simbuf_puts(&b, req->path);
    char sep = '?';
    for (size_t i = 0; i < req->nparams; i++) {
        const char *k = req->params[i].key;
        if (strcmp(k, "$skip") == 0 || strcmp(k, "$top") == 0)
            continue;
        simbuf_append(&b, &sep, 1);
        sep = '&';
        simbuf_urlencode(&b, k);
        simbuf_puts(&b, "=");
        simbuf_urlencode(&b, req->params[i].value);
    }
    if (has_top)
        simbuf_printf(&b, "%c$top=%lld", sep, (long long)top), sep = '&';
    simbuf_printf(&b, "%c$skip=%lld", sep, (long long)skip);
    if (b.failed) {
        simbuf_free(&b);
        return NULL;
    }
    return b.data;
}

static void handle_list(app *a, simsrv *srv, int set, const simsrv_req *req, simsrv_resp *resp)
{
    char err[600] = "";
    query q;
    if (query_parse(a, srv, set, req, &q, err, sizeof err) < 0) {
        query_free(&q);
        error_body(a, srv, resp, 400, err);
        return;
    }
    if (q.has_top && q.top > PAGE_CAP && simsrv_get_faults(srv)->top_cap_error) {
        query_free(&q);
        error_body(a, srv, resp, 400, "The limit of '300' for Top query has been exceeded.");
        return;
    }
    schema_ctx sc = {a, set};
    odata_schema schema = make_schema(&sc, srv);
    const simstore *st = &a->sets[set];
    /* "Id eq N [and ...]" evaluated Id first: every other record evaluates to false right
     * there (each stored record's Id is its key, a number), so the answer is that of the
     * filter on record N alone — looked up as a real Ploomes does, not scanned. */
    int64_t key_id = 0;
    bool leading = false;
    bool by_id = q.filter && odata_filter_int_eq(q.filter, "Id", &key_id, &leading) && leading;
    simstore_item one_item = {key_id, by_id ? simstore_get(st, key_id) : NULL};
    const simstore_item *cand = by_id ? &one_item : st->items;
    size_t ncand = by_id ? (one_item.obj ? 1 : 0) : st->n;
    const cJSON **rows = malloc((ncand ? ncand : 1) * sizeof *rows);
    if (!rows) {
        query_free(&q);
        error_body(a, srv, resp, 500, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < ncand; i++) {
        bool match = true;
        if (q.filter && odata_filter_eval(q.filter, cand[i].obj, &schema, &match, err, sizeof err) < 0) {
            free(rows);
            query_free(&q);
            char msg[700];
            snprintf(msg, sizeof msg, "The query specified in the URI is not valid. %s", err);
            error_body(a, srv, resp, 400, msg);
            return;
        }
        if (match)
            rows[n++] = cand[i].obj;
    }
    if (q.orderby.n && sort_rows(rows, n, &q.orderby) < 0) {
        sortctx sctx = {&q.orderby};
        qsort_r(rows, n, sizeof *rows, cmp_records, &sctx);
    }
    size_t total = n;
    size_t skip = q.skip > (int64_t)total ? total : (size_t)q.skip;
    size_t remaining = total - skip;
    bool server_paged = !q.has_top || q.top > PAGE_CAP;
    size_t page = q.has_top && q.top < PAGE_CAP ? (size_t)q.top : PAGE_CAP;
    size_t take = remaining < page ? remaining : page;
    if (take < remaining) /* mid-scan: more rows follow this page */
        take = simsrv_short_page(srv, take);
    size_t wanted = q.has_top && (uint64_t)q.top < remaining ? (size_t)q.top : remaining;

    cJSON *env = envelope(srv, req, set);
    if (q.count)
        cJSON_AddNumberToObject(env, "@odata.count", (double)total);
    cJSON *arr = cJSON_AddArrayToObject(env, "value");
    for (size_t i = 0; arr && i < take; i++)
        cJSON_AddItemToArray(arr, render(a, set, rows[skip + i], &q.shape));
    if (server_paged && take < wanted) {
        char *link = next_link(srv, req, (int64_t)(skip + take), q.has_top,
                               q.has_top ? q.top - (int64_t)take : 0);
        if (link)
            cJSON_AddStringToObject(env, "@odata.nextLink", link);
        free(link);
    }
    free(rows);
    simsrv_resp_json(resp, 200, env);
    query_free(&q);
}

/* ---- writes -------------------------------------------------------------------------------- */

/* One record in the envelope ({"@odata.context", "value":[rec]}), or bare, shaped by the
 * request's $select/$expand. */
static void respond_one(app *a, simsrv *srv, int set, const simsrv_req *req, simsrv_resp *resp,
                        const cJSON *rec, int status, bool bare)
{
    char err[400] = "";
    query q;
    if (query_parse(a, srv, set, req, &q, err, sizeof err) < 0) {
        query_free(&q);
        error_body(a, srv, resp, 400, err);
        return;
    }
    cJSON *one = render(a, set, rec, &q.shape);
    query_free(&q);
    if (bare) {
        simsrv_resp_json(resp, status, one);
        return;
    }
    cJSON *env = envelope(srv, req, set);
    cJSON *arr = cJSON_AddArrayToObject(env, "value");
    cJSON_AddItemToArray(arr, one);
    simsrv_resp_json(resp, status, env);
}

/* The request's query is valid (checked before a write, so a bad $select never follows a
 * stored record). 0, or -1 with the 400 answered. */
static int query_precheck(app *a, simsrv *srv, int set, const simsrv_req *req, simsrv_resp *resp)
{
    char err[400] = "";
    query q;
    int rc = query_parse(a, srv, set, req, &q, err, sizeof err);
    query_free(&q);
    if (rc < 0)
        error_body(a, srv, resp, 400, err);
    return rc;
}

static cJSON *parse_body_object(app *a, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *body = simjson_parse(req->body, req->body_len);
    if (!body) {
        error_body(a, srv, resp, 400, "The request body is not valid JSON.");
        return NULL;
    }
    if (!cJSON_IsObject(body)) {
        cJSON_Delete(body);
        error_body(a, srv, resp, 400, "The request body must be a JSON object.");
        return NULL;
    }
    return body;
}

static bool nonempty_string(const cJSON *rec, const char *key)
{
    const char *s = simjson_get_str(rec, key);
    if (!s)
        return false;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return true;
    return false;
}

static void handle_create(app *a, simsrv *srv, int set, const simsrv_req *req, simsrv_resp *resp)
{
    char err[400] = "";
    const simsrv_faults *f = simsrv_get_faults(srv);
    if (query_precheck(a, srv, set, req, resp) < 0)
        return;
    cJSON *rec = parse_body_object(a, srv, req, resp);
    if (!rec)
        return;
    if (check_body(set, rec, BODY_WRITE, f->readonly_ignore, "body", err, sizeof err) < 0)
        goto bad;
    if (set == S_CONTACTS && !nonempty_string(rec, "Name")) {
        snprintf(err, sizeof err, "Name is required.");
        goto bad;
    }
    if (set == S_TASKS && !nonempty_string(rec, "Title")) {
        snprintf(err, sizeof err, "Title is required.");
        goto bad;
    }
    if (set == S_TASKS && f->task_required_strict) {
        int64_t ref;
        if (!simjson_get_i64(rec, "ContactId", &ref) && !simjson_get_i64(rec, "DealId", &ref)) {
            snprintf(err, sizeof err, "ContactId or DealId is required.");
            goto bad;
        }
        if (!nonempty_string(rec, "DateTime")) {
            snprintf(err, sizeof err, "DateTime is required.");
            goto bad;
        }
    }
    if (set == S_INTERACTIONS && !nonempty_string(rec, "Content")) {
        snprintf(err, sizeof err, "Content is required.");
        goto bad;
    }
    if (f->large_ids && a->next_id[set] < LARGE_ID_BASE)
        a->next_id[set] = LARGE_ID_BASE + a->next_id[set] % 1000000000;
    int64_t id = a->next_id[set]++;
    cJSON_DeleteItemFromObjectCaseSensitive(rec, "Id");
    cJSON_AddItemToObject(rec, "Id", simjson_num_i64(id));
    if (normalize_rows(a, set, rec, "Tags", id, err, sizeof err) < 0 ||
        normalize_rows(a, set, rec, "Phones", id, err, sizeof err) < 0)
        goto bad;
    cJSON *stamp = stamp_item(a);
    simjson_set(rec, "CreateDate", cJSON_Duplicate(stamp, true));
    simjson_set(rec, "LastUpdateDate", stamp);
    simjson_set(rec, "CreatorId", simjson_num_i64(ACCOUNT_USER_ID));
    simjson_set(rec, "UpdaterId", simjson_num_i64(ACCOUNT_USER_ID));
    if (!cJSON_GetObjectItemCaseSensitive(rec, "Editable"))
        cJSON_AddBoolToObject(rec, "Editable", true);
    if (set == S_CONTACTS) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, "TypeId"))
            cJSON_AddNumberToObject(rec, "TypeId", 1);
        derive_documents(rec, f->derive_documents);
        if (!cJSON_GetObjectItemCaseSensitive(rec, "Deletable"))
            cJSON_AddBoolToObject(rec, "Deletable", true);
    } else if (set == S_TASKS) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, "Finished"))
            cJSON_AddBoolToObject(rec, "Finished", false);
    } else if (set == S_INTERACTIONS) {
        if (!cJSON_GetObjectItemCaseSensitive(rec, "Date"))
            simjson_set(rec, "Date", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(rec, "CreateDate"), true));
    }
    if (simstore_put(&a->sets[set], id, rec) < 0) {
        error_body(a, srv, resp, 500, "out of memory");
        return;
    }
    respond_one(a, srv, set, req, resp, rec, f->create_status, false);
    simsrv_after_write(srv, resp);
    return;
bad:
    cJSON_Delete(rec);
    error_body(a, srv, resp, 400, err);
}

static void handle_patch(app *a, simsrv *srv, int set, int64_t id, const simsrv_req *req,
                         simsrv_resp *resp)
{
    char err[400] = "";
    const simsrv_faults *f = simsrv_get_faults(srv);
    cJSON *rec = simstore_get(&a->sets[set], id);
    if (!rec) {
        error_body(a, srv, resp, 404, "The record was not found.");
        return;
    }
    if (query_precheck(a, srv, set, req, resp) < 0)
        return;
    cJSON *body = parse_body_object(a, srv, req, resp);
    if (!body)
        return;
    if (check_body(set, body, BODY_WRITE, f->readonly_ignore, "body", err, sizeof err) < 0 ||
        normalize_rows(a, set, body, "Tags", id, err, sizeof err) < 0 ||
        normalize_rows(a, set, body, "Phones", id, err, sizeof err) < 0) {
        cJSON_Delete(body);
        error_body(a, srv, resp, 400, err);
        return;
    }
    if (set == S_CONTACTS && cJSON_GetObjectItemCaseSensitive(body, "Name") && !nonempty_string(body, "Name")) {
        cJSON_Delete(body);
        error_body(a, srv, resp, 400, "Name cannot be empty.");
        return;
    }
    cJSON *it = body->child;
    while (it) {
        cJSON *next = it->next;
        const char *k = it->string;
        if (strcmp(k, "Id") != 0 && strcmp(k, "CreateDate") != 0 && strcmp(k, "CreatorId") != 0 &&
            strcmp(k, "LastUpdateDate") != 0) {
            cJSON_DetachItemViaPointer(body, it);
            simjson_set(rec, k, it);
        }
        it = next;
    }
    cJSON_Delete(body);
    simstore_touch(&a->sets[set]);
    if (set == S_CONTACTS)
        derive_documents(rec, f->derive_documents);
    simjson_set(rec, "LastUpdateDate", stamp_item(a));
    simjson_set(rec, "UpdaterId", simjson_num_i64(ACCOUNT_USER_ID));
    if (f->patch_204) {
        simsrv_resp_text(resp, 204, NULL, NULL);
        return;
    }
    respond_one(a, srv, set, req, resp, rec, 200, false);
}

static void handle_finish(app *a, simsrv *srv, int64_t id, const simsrv_req *req, simsrv_resp *resp)
{
    cJSON *rec = simstore_get(&a->sets[S_TASKS], id);
    if (!rec) {
        error_body(a, srv, resp, 404, "The task was not found.");
        return;
    }
    simstore_touch(&a->sets[S_TASKS]);
    cJSON *stamp = stamp_item(a);
    simjson_set(rec, "Finished", cJSON_CreateTrue());
    simjson_set(rec, "FinishDate", cJSON_Duplicate(stamp, true));
    simjson_set(rec, "FinisherId", simjson_num_i64(ACCOUNT_USER_ID));
    simjson_set(rec, "LastUpdateDate", stamp);
    respond_one(a, srv, S_TASKS, req, resp, rec, 200, false);
}

/* ---- routing -------------------------------------------------------------------------------- */

/* "/Set", "/Set(123)", "/Set(123)/Action" */
static bool route(const char *path, int *set, bool *has_id, int64_t *id, char *action, size_t alen)
{
    *has_id = false;
    action[0] = '\0';
    if (path[0] != '/')
        return false;
    const char *p = path + 1;
    size_t n = strcspn(p, "(/");
    *set = -1;
    for (int s = 0; s < S_COUNT; s++)
        if (strlen(SETS[s].path) == n && strncasecmp(SETS[s].path, p, n) == 0)
            *set = s;
    if (*set < 0)
        return false;
    p += n;
    if (*p == '(') {
        p++;
        char digits[24];
        size_t d = 0;
        while (*p >= '0' && *p <= '9' && d < sizeof digits - 1)
            digits[d++] = *p++;
        digits[d] = '\0';
        if (*p != ')' || !simjson_parse_count(digits, id))
            return false;
        *has_id = true;
        p++;
    }
    if (*p == '/' && p[1] == '\0')
        p++;
    if (*p == '/') {
        if (!*has_id || strlen(p + 1) >= alen)
            return false;
        snprintf(action, alen, "%s", p + 1);
        return true;
    }
    return *p == '\0';
}

static void app_handle(void *ctx, simsrv *srv, const simsrv_req *req, simsrv_resp *resp)
{
    app *a = ctx;
    int set;
    bool has_id;
    int64_t id = 0;
    char action[32];
    if (!route(req->path, &set, &has_id, &id, action, sizeof action)) {
        error_body(a, srv, resp, 404, "No HTTP resource was found that matches the request URI.");
        return;
    }
    const char *m = req->method;
    if (action[0]) {
        if (set == S_TASKS && strcasecmp(action, "Finish") == 0 && strcmp(m, "POST") == 0) {
            handle_finish(a, srv, id, req, resp);
            return;
        }
        error_body(a, srv, resp, 404, "No HTTP resource was found that matches the request URI.");
        return;
    }
    if (strcmp(m, "GET") == 0) {
        if (!has_id) {
            handle_list(a, srv, set, req, resp);
            return;
        }
        const cJSON *rec = simstore_get(&a->sets[set], id);
        int key_get = simsrv_get_faults(srv)->key_get;
        if (!rec || key_get == 2) {
            error_body(a, srv, resp, 404, rec ? "No HTTP resource was found that matches the request URI."
                                              : "The record was not found.");
            return;
        }
        respond_one(a, srv, set, req, resp, rec, 200, key_get == 1);
        return;
    }
    if (!SETS[set].writable) {
        error_body(a, srv, resp, 405, "The requested resource does not support this HTTP method.");
        return;
    }
    if (strcmp(m, "POST") == 0 && !has_id) {
        handle_create(a, srv, set, req, resp);
        return;
    }
    if ((strcmp(m, "PATCH") == 0 || strcmp(m, "PUT") == 0) && has_id) {
        handle_patch(a, srv, set, id, req, resp);
        return;
    }
    if (strcmp(m, "DELETE") == 0 && has_id) {
        if (!simstore_remove(&a->sets[set], id)) {
            error_body(a, srv, resp, 404, "The record was not found.");
            return;
        }
        simsrv_resp_text(resp, 204, NULL, NULL);
        return;
    }
    error_body(a, srv, resp, 405, "The requested resource does not support this HTTP method.");
}

/* ---- main ------------------------------------------------------------------------------------ */

/* simmain adds the lines about the admin API and signals. */
static const char USAGE[] =
    "usage: ploomes-sim --port P --user-key K [--state FILE]\n"
    "\n"
    "A local fake of the Ploomes CRM API on http://127.0.0.1:P (port 0 = any free port;\n"
    "the first stdout line is 'listening on http://127.0.0.1:PORT').\n"
    "  --port P        TCP port on 127.0.0.1\n"
    "  --user-key K    the User-Key every API request must carry\n"
    "  --state FILE    seed file loaded at start (same shape as POST /_admin/seed)\n";

int main(int argc, char **argv)
{
    static const simmain_spec spec = {"ploomes-sim", "--user-key", USAGE};
    simmain_args args;
    int rc = simmain_parse(&spec, argc, argv, &args);
    if (rc >= 0)
        return rc;
    app *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    a->user_key = args.credential;
    app_reset(a);
    simsrv_app def = {
        .name = "ploomes-sim",
        .default_rate_per_min = 120,
        .ctx = a,
        .auth = auth_cb,
        .error = error_body,
        .handle = app_handle,
        .seed = app_seed,
        .state = app_state,
        .reset = app_reset,
    };
    rc = simmain_run(&def, &args);
    for (int s = 0; s < S_COUNT; s++)
        simstore_clear(&a->sets[s]);
    revidx_free(&a->rev);
    free(a);
    return rc;
}
