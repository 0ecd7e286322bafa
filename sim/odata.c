/* odata_: see odata.h. A recursive-descent parser over a hand-written tokenizer. */
#include "odata.h"

#include "simtime.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64        /* parentheses / nesting: deep input is a 400, never a crash */
#define MAX_LAMBDA 8
#define MAX_SEGS 8
#define MAX_ABS 24 /* a member's path from the record, lambda variables expanded */

typedef enum { OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE } cmpop;
typedef enum { N_OR, N_AND, N_NOT, N_CMP, N_FUNC, N_ANY, N_ALL } nkind;
typedef enum { L_NULL, L_BOOL, L_NUM, L_STR, L_DATE } littype;
typedef enum { F_CONTAINS, F_STARTSWITH, F_ENDSWITH } funckind;

typedef struct operand {
    bool is_member;
    /* member */
    char *segs[MAX_SEGS];
    size_t nsegs;
    int lambda; /* -1: path starts at the record; else index of the lambda variable */
    odata_type ftype;
    /* the path from the record (borrowed pointers into this and enclosing operands, valid
     * while the expression lives): segs[i] is abs[abs_off + i] for i >= 1 */
    const char *abs[MAX_ABS];
    size_t nabs, abs_off;
    /* literal */
    littype lt;
    bool b;
    double num;
    char *str;
    simtime_instant dt;
} operand;

struct odata_expr {
    nkind kind;
    odata_expr *a, *b; /* OR, AND, NOT (a), ANY/ALL body (a, may be NULL) */
    cmpop op;
    funckind func;
    operand l, r; /* CMP, FUNC; ANY/ALL: l is the collection path */
};

/* ---- tokenizer ------------------------------------------------------------------------- */

typedef enum { T_EOF, T_IDENT, T_STR, T_NUM, T_DATE, T_LP, T_RP, T_COMMA, T_COLON, T_SLASH } toktype;

typedef struct token {
    toktype type;
    const char *start;
    size_t len;
    char *str; /* T_STR: unescaped value (owned by the parser until taken) */
    double num;
    simtime_instant dt;
} token;

typedef struct parser {
    const char *p;
    token tok;
    bool has_tok;
    const odata_schema *schema;
    char *vars[MAX_LAMBDA];
    const operand *varcoll[MAX_LAMBDA]; /* the collection each variable ranges over */
    int nvars;
    int depth;
    char *err;
    size_t errlen;
    bool failed;
} parser;

static void perr(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return;
    ps->failed = true;
    if (ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
    }
}

static bool is_ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_ident_char(char c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void lex(parser *ps, token *t)
{
    const char *p = ps->p;
    memset(t, 0, sizeof *t);
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    t->start = p;
    if (!*p) {
        t->type = T_EOF;
        ps->p = p;
        return;
    }
    char c = *p;
    if (c == '(' || c == ')' || c == ',' || c == ':' || c == '/') {
        t->type = c == '(' ? T_LP : c == ')' ? T_RP : c == ',' ? T_COMMA : c == ':' ? T_COLON : T_SLASH;
        t->len = 1;
        ps->p = p + 1;
        return;
    }
    if (c == '\'') {
        size_t cap = strlen(p) + 1, n = 0;
        char *s = malloc(cap);
        if (!s) {
            perr(ps, "out of memory");
            t->type = T_EOF;
            return;
        }
        p++;
        for (;;) {
            if (!*p) {
                free(s);
                perr(ps, "unterminated string literal");
                t->type = T_EOF;
                ps->p = p;
                return;
            }
            if (*p == '\'') {
                if (p[1] == '\'') {
                    s[n++] = '\'';
                    p += 2;
                    continue;
                }
                p++;
                break;
            }
            s[n++] = *p++;
        }
        s[n] = '\0';
        t->type = T_STR;
        t->str = s;
        t->len = (size_t)(p - t->start);
        ps->p = p;
        return;
    }
    if (is_digit(c) || (c == '-' && is_digit(p[1]))) {
        /* DateTimeOffset literal: YYYY-MM-DD... */
        if (is_digit(p[0]) && is_digit(p[1]) && is_digit(p[2]) && is_digit(p[3]) && p[4] == '-') {
            const char *q = p;
            while (is_digit(*q) || *q == '-' || *q == ':' || *q == '.' || *q == '+' || *q == 'T' ||
                   *q == 't' || *q == 'Z' || *q == 'z')
                q++;
            t->type = T_DATE;
            t->len = (size_t)(q - p);
            ps->p = q;
            if (!simtime_parse_iso(p, t->len, &t->dt))
                perr(ps, "invalid DateTimeOffset literal '%.*s' (expected "
                         "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM); a '+' must be sent as %%2B)",
                     (int)(t->len > 64 ? 64 : t->len), p);
            return;
        }
        const char *q = p;
        if (*q == '-')
            q++;
        while (is_digit(*q))
            q++;
        if (*q == '.' && is_digit(q[1])) {
            q++;
            while (is_digit(*q))
                q++;
        }
        if ((*q == 'e' || *q == 'E') &&
            (is_digit(q[1]) || ((q[1] == '+' || q[1] == '-') && is_digit(q[2])))) {
            q += 2;
            while (is_digit(*q))
                q++;
        }
        if (is_ident_char(*q)) {
            perr(ps, "invalid number literal near '%.20s'", p);
            t->type = T_EOF;
            ps->p = q;
            return;
        }
        char buf[64];
        size_t n = (size_t)(q - p);
        if (n >= sizeof buf) {
            perr(ps, "number literal too long");
            t->type = T_EOF;
            ps->p = q;
            return;
        }
        memcpy(buf, p, n);
        buf[n] = '\0';
        errno = 0;
        double d = strtod(buf, NULL);
        if (!isfinite(d) || errno == ERANGE) {
            perr(ps, "number literal out of range: %s", buf);
            t->type = T_EOF;
            ps->p = q;
            return;
        }
        t->type = T_NUM;
        t->num = d;
        t->len = n;
        ps->p = q;
        return;
    }
    if (is_ident_start(c)) {
        const char *q = p;
        while (is_ident_char(*q))
            q++;
        t->type = T_IDENT;
        t->len = (size_t)(q - p);
        ps->p = q;
        return;
    }
    perr(ps, "unexpected character '%c' in $filter", c);
    t->type = T_EOF;
    ps->p = p + 1;
}

static token *peek(parser *ps)
{
    if (!ps->has_tok) {
        lex(ps, &ps->tok);
        ps->has_tok = true;
    }
    return &ps->tok;
}

/* Consumes the current token; a string value not taken by the caller is freed. */
static void advance(parser *ps)
{
    if (ps->has_tok && ps->tok.str) {
        free(ps->tok.str);
        ps->tok.str = NULL;
    }
    ps->has_tok = false;
}

/* Consumes the current token when it is of `type`; else records `problem` and returns false. */
static bool expect(parser *ps, toktype type, const char *problem)
{
    if (peek(ps)->type != type) {
        perr(ps, "%s", problem);
        return false;
    }
    advance(ps);
    return true;
}

static bool tok_is(const token *t, const char *word)
{
    return t->type == T_IDENT && strlen(word) == t->len && memcmp(t->start, word, t->len) == 0;
}

static bool peek_char_after_ws(const parser *ps, char c)
{
    const char *p = ps->p;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == c;
}

/* ---- AST helpers ----------------------------------------------------------------------- */

static void operand_free(operand *o)
{
    for (size_t i = 0; i < o->nsegs; i++)
        free(o->segs[i]);
    o->nsegs = 0;
    free(o->str);
    o->str = NULL;
}

void odata_filter_free(odata_expr *e)
{
    if (!e)
        return;
    odata_filter_free(e->a);
    odata_filter_free(e->b);
    operand_free(&e->l);
    operand_free(&e->r);
    free(e);
}

static odata_expr *node(parser *ps, nkind kind)
{
    odata_expr *e = calloc(1, sizeof *e);
    if (!e) {
        perr(ps, "out of memory");
        return NULL;
    }
    e->kind = kind;
    e->l.lambda = e->r.lambda = -1;
    return e;
}

static const char *type_name(odata_type t)
{
    switch (t) {
    case ODATA_INT: return "integer";
    case ODATA_NUM: return "number";
    case ODATA_STR: return "string";
    case ODATA_DATE: return "DateTimeOffset";
    case ODATA_BOOL: return "boolean";
    case ODATA_NAV: return "navigation property";
    default: return "value";
    }
}

static const char *lit_name(littype t)
{
    switch (t) {
    case L_NULL: return "null";
    case L_BOOL: return "boolean";
    case L_NUM: return "number";
    case L_STR: return "string";
    default: return "DateTimeOffset";
    }
}

/* Reads a member path starting at the current identifier. Stops before "/any(" or "/all(" and
 * reports it through *lambda_kind (0 none, 1 any, 2 all). */
static bool parse_path(parser *ps, operand *o, int *lambda_kind)
{
    *lambda_kind = 0;
    o->is_member = true;
    o->lambda = -1;
    for (;;) {
        token *t = peek(ps);
        if (t->type != T_IDENT) {
            perr(ps, "expected a field name in $filter");
            return false;
        }
        if (o->nsegs > 0 && (tok_is(t, "any") || tok_is(t, "all")) && peek_char_after_ws(ps, '(')) {
            *lambda_kind = tok_is(t, "any") ? 1 : 2;
            advance(ps);
            return true;
        }
        if (o->nsegs >= MAX_SEGS) {
            perr(ps, "member path too long");
            return false;
        }
        o->segs[o->nsegs] = strndup(t->start, t->len);
        if (!o->segs[o->nsegs]) {
            perr(ps, "out of memory");
            return false;
        }
        o->nsegs++;
        advance(ps);
        if (peek(ps)->type != T_SLASH)
            return true;
        advance(ps);
    }
}

/* "A/B/C" of path[0..n) into buf, for messages. */
static const char *path_text(const char *const *path, size_t n, char *buf, size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < size; i++) {
        int w = snprintf(buf + o, size - o, "%s%s", i ? "/" : "", path[i]);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    return buf;
}

/* Resolves a member against lambda variables and the schema: its path from the record and
 * its declared type. */
static bool check_member(parser *ps, operand *o, bool want_collection)
{
    char shown[200];
    o->nabs = 0;
    o->abs_off = 0;
    for (int i = ps->nvars - 1; i >= 0 && o->lambda < 0; i--) {
        if (strcmp(ps->vars[i], o->segs[0]) == 0) {
            const operand *coll = ps->varcoll[i];
            if (coll->nabs + o->nsegs > MAX_ABS) {
                perr(ps, "member path too long");
                return false;
            }
            o->lambda = i;
            memcpy(o->abs, coll->abs, coll->nabs * sizeof *o->abs);
            o->nabs = coll->nabs;
            o->abs_off = coll->nabs - 1;
        }
    }
    if (o->lambda >= 0) {
        for (size_t k = 1; k < o->nsegs; k++)
            o->abs[o->nabs++] = o->segs[k];
        if (o->nsegs == 1 || !ps->schema || !ps->schema->path_type) {
            o->ftype = ODATA_ANY; /* the element itself (a primitive collection) */
            return true;
        }
    } else {
        for (size_t k = 0; k < o->nsegs; k++)
            o->abs[o->nabs++] = o->segs[k];
    }
    if (o->lambda < 0 && (o->nsegs > 1 || want_collection) && ps->schema && ps->schema->field_type) {
        odata_type first = ps->schema->field_type(ps->schema->ctx, o->segs[0]);
        if (first == ODATA_UNKNOWN) {
            perr(ps, "unknown field '%s' in $filter", o->segs[0]);
            return false;
        }
        if (first != ODATA_NAV && first != ODATA_ANY) {
            perr(ps, "'%s' is not a navigation property", o->segs[0]);
            return false;
        }
    }
    odata_type t;
    if (o->lambda < 0 && o->nsegs == 1)
        t = ps->schema && ps->schema->field_type ? ps->schema->field_type(ps->schema->ctx, o->segs[0])
                                                 : ODATA_ANY;
    else if (ps->schema && ps->schema->path_type)
        t = ps->schema->path_type(ps->schema->ctx, o->abs, o->nabs);
    else
        t = ODATA_ANY;
    if (t == ODATA_UNKNOWN) {
        perr(ps, "unknown field '%s' in $filter", path_text(o->abs, o->nabs, shown, sizeof shown));
        return false;
    }
    if (want_collection && t != ODATA_NAV && t != ODATA_ANY) {
        perr(ps, "'%s' is not a navigation property", path_text(o->abs, o->nabs, shown, sizeof shown));
        return false;
    }
    o->ftype = t;
    return true;
}

static bool parse_literal(parser *ps, operand *o)
{
    token *t = peek(ps);
    o->is_member = false;
    switch (t->type) {
    case T_STR:
        o->lt = L_STR;
        o->str = t->str;
        t->str = NULL;
        break;
    case T_NUM:
        o->lt = L_NUM;
        o->num = t->num;
        break;
    case T_DATE:
        o->lt = L_DATE;
        o->dt = t->dt;
        break;
    case T_IDENT:
        if (tok_is(t, "true") || tok_is(t, "false")) {
            o->lt = L_BOOL;
            o->b = tok_is(t, "true");
        } else if (tok_is(t, "null")) {
            o->lt = L_NULL;
        } else {
            perr(ps, "expected a literal near '%.*s'", (int)(t->len > 40 ? 40 : t->len), t->start);
            return false;
        }
        break;
    default:
        perr(ps, "expected a field or a literal in $filter");
        return false;
    }
    advance(ps);
    return true;
}

static bool is_literal_word(const token *t)
{
    return tok_is(t, "true") || tok_is(t, "false") || tok_is(t, "null");
}

/* A field path or a literal (no lambdas, no functions). */
static bool parse_operand(parser *ps, operand *o)
{
    token *t = peek(ps);
    if (t->type == T_IDENT && !is_literal_word(t)) {
        int lk;
        if (!parse_path(ps, o, &lk))
            return false;
        if (lk) {
            perr(ps, "any()/all() cannot be used as a value");
            return false;
        }
        return check_member(ps, o, false);
    }
    return parse_literal(ps, o);
}

static bool compatible(odata_type ft, littype lt)
{
    if (lt == L_NULL || ft == ODATA_ANY)
        return true;
    switch (ft) {
    case ODATA_INT:
    case ODATA_NUM: return lt == L_NUM;
    case ODATA_STR: return lt == L_STR;
    case ODATA_DATE: return lt == L_DATE;
    case ODATA_BOOL: return lt == L_BOOL;
    default: return false;
    }
}

static odata_expr *parse_or(parser *ps);

static odata_expr *parse_lambda(parser *ps, operand *coll, int kind)
{
    odata_expr *e = node(ps, kind == 1 ? N_ANY : N_ALL);
    if (!e) {
        operand_free(coll);
        return NULL;
    }
    e->l = *coll;
    memset(coll, 0, sizeof *coll);
    if (!check_member(ps, &e->l, true))
        goto fail;
    if (!expect(ps, T_LP, "expected '(' after any/all"))
        goto fail;
    if (peek(ps)->type == T_RP) {
        if (kind == 2) {
            perr(ps, "all() needs a lambda expression");
            goto fail;
        }
        advance(ps);
        return e;
    }
    token *t = peek(ps);
    if (t->type != T_IDENT || is_literal_word(t)) {
        perr(ps, "expected a lambda variable in any/all");
        goto fail;
    }
    if (ps->nvars >= MAX_LAMBDA) {
        perr(ps, "lambdas nested too deeply");
        goto fail;
    }
    char *var = strndup(t->start, t->len);
    if (!var) {
        perr(ps, "out of memory");
        goto fail;
    }
    advance(ps);
    if (!expect(ps, T_COLON, "expected ':' after the lambda variable")) {
        free(var);
        goto fail;
    }
    ps->varcoll[ps->nvars] = &e->l;
    ps->vars[ps->nvars++] = var;
    e->a = parse_or(ps);
    ps->nvars--;
    free(var);
    if (!e->a)
        goto fail;
    if (!expect(ps, T_RP, "expected ')' to close any/all"))
        goto fail;
    return e;
fail:
    odata_filter_free(e);
    return NULL;
}

static bool parse_cmpop(parser *ps, cmpop *op)
{
    static const char *names[] = {"eq", "ne", "gt", "ge", "lt", "le"};
    token *t = peek(ps);
    for (int i = 0; i < 6; i++) {
        if (tok_is(t, names[i])) {
            *op = (cmpop)i;
            advance(ps);
            return true;
        }
    }
    return false;
}

static cmpop flip(cmpop op)
{
    switch (op) {
    case OP_GT: return OP_LT;
    case OP_GE: return OP_LE;
    case OP_LT: return OP_GT;
    case OP_LE: return OP_GE;
    default: return op;
    }
}

static odata_expr *parse_func(parser *ps, funckind fk)
{
    odata_expr *e = node(ps, N_FUNC);
    if (!e)
        return NULL;
    e->func = fk;
    advance(ps); /* name */
    if (!expect(ps, T_LP, "expected '(' after function name"))
        goto fail;
    if (!parse_operand(ps, &e->l))
        goto fail;
    if (!expect(ps, T_COMMA, "expected ',' in function call"))
        goto fail;
    if (!parse_operand(ps, &e->r))
        goto fail;
    if (!expect(ps, T_RP, "expected ')' to close function call"))
        goto fail;
    for (int i = 0; i < 2; i++) {
        operand *o = i == 0 ? &e->l : &e->r;
        if (o->is_member && o->ftype != ODATA_STR && o->ftype != ODATA_ANY) {
            perr(ps, "string function applied to %s field '%s'", type_name(o->ftype), o->segs[0]);
            goto fail;
        }
        if (!o->is_member && o->lt != L_STR) {
            perr(ps, "string function needs string arguments");
            goto fail;
        }
    }
    return e;
fail:
    odata_filter_free(e);
    return NULL;
}

static odata_expr *parse_primary(parser *ps)
{
    token *t = peek(ps);
    if (ps->failed)
        return NULL;
    if (t->type == T_LP) {
        if (++ps->depth > MAX_DEPTH) {
            perr(ps, "$filter nested too deeply");
            return NULL;
        }
        advance(ps);
        odata_expr *e = parse_or(ps);
        ps->depth--;
        if (!e)
            return NULL;
        if (!expect(ps, T_RP, "expected ')' in $filter")) {
            odata_filter_free(e);
            return NULL;
        }
        return e;
    }
    if (t->type == T_IDENT && peek_char_after_ws(ps, '(')) {
        if (tok_is(t, "contains"))
            return parse_func(ps, F_CONTAINS);
        if (tok_is(t, "startswith"))
            return parse_func(ps, F_STARTSWITH);
        if (tok_is(t, "endswith"))
            return parse_func(ps, F_ENDSWITH);
        perr(ps, "unsupported function '%.*s' in $filter", (int)(t->len > 40 ? 40 : t->len), t->start);
        return NULL;
    }
    odata_expr *e = node(ps, N_CMP);
    if (!e)
        return NULL;
    if (t->type == T_IDENT && !is_literal_word(t)) {
        int lk;
        if (!parse_path(ps, &e->l, &lk))
            goto fail;
        if (lk) {
            operand coll = e->l;
            memset(&e->l, 0, sizeof e->l);
            odata_filter_free(e);
            return parse_lambda(ps, &coll, lk);
        }
        if (!check_member(ps, &e->l, false))
            goto fail;
    } else if (!parse_literal(ps, &e->l)) {
        goto fail;
    }
    if (!parse_cmpop(ps, &e->op)) {
        if (ps->failed)
            goto fail;
        if (e->l.is_member && (e->l.ftype == ODATA_BOOL || e->l.ftype == ODATA_ANY)) {
            e->op = OP_EQ;
            e->r.is_member = false;
            e->r.lt = L_BOOL;
            e->r.b = true;
            return e;
        }
        token *bad = peek(ps);
        if (bad->type == T_EOF)
            perr(ps, "expected a comparison operator (eq ne gt ge lt le) at end of $filter");
        else
            perr(ps, "expected a comparison operator (eq ne gt ge lt le) near '%.20s'", bad->start);
        goto fail;
    }
    if (!parse_operand(ps, &e->r))
        goto fail;
    if (!e->l.is_member && e->r.is_member) {
        operand tmp = e->l;
        e->l = e->r;
        e->r = tmp;
        e->op = flip(e->op);
    }
    if (!e->l.is_member) {
        perr(ps, "a comparison needs a field on one side");
        goto fail;
    }
    if (!e->r.is_member) {
        if (!compatible(e->l.ftype, e->r.lt)) {
            perr(ps, "cannot compare %s field '%s' with a %s literal", type_name(e->l.ftype),
                 e->l.segs[0], lit_name(e->r.lt));
            goto fail;
        }
        if (e->r.lt == L_NULL && e->op != OP_EQ && e->op != OP_NE) {
            perr(ps, "null can only be compared with eq or ne");
            goto fail;
        }
    }
    return e;
fail:
    odata_filter_free(e);
    return NULL;
}

static odata_expr *parse_unary(parser *ps)
{
    if (tok_is(peek(ps), "not")) {
        if (++ps->depth > MAX_DEPTH) {
            perr(ps, "$filter nested too deeply");
            return NULL;
        }
        advance(ps);
        odata_expr *inner = parse_unary(ps);
        ps->depth--;
        if (!inner)
            return NULL;
        odata_expr *e = node(ps, N_NOT);
        if (!e) {
            odata_filter_free(inner);
            return NULL;
        }
        e->a = inner;
        return e;
    }
    return parse_primary(ps);
}

static odata_expr *parse_binary(parser *ps, bool is_or)
{
    odata_expr *l = is_or ? parse_binary(ps, false) : parse_unary(ps);
    while (l && tok_is(peek(ps), is_or ? "or" : "and")) {
        advance(ps);
        odata_expr *r = is_or ? parse_binary(ps, false) : parse_unary(ps);
        if (!r) {
            odata_filter_free(l);
            return NULL;
        }
        odata_expr *e = node(ps, is_or ? N_OR : N_AND);
        if (!e) {
            odata_filter_free(l);
            odata_filter_free(r);
            return NULL;
        }
        e->a = l;
        e->b = r;
        l = e;
    }
    return l;
}

static odata_expr *parse_or(parser *ps)
{
    return parse_binary(ps, true);
}

odata_expr *odata_filter_parse(const char *text, const odata_schema *schema, char *err,
                               size_t errlen)
{
    parser ps = {.p = text ? text : "", .schema = schema, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    odata_expr *e = parse_or(&ps);
    if (e && !ps.failed && peek(&ps)->type != T_EOF) {
        token *t = peek(&ps);
        perr(&ps, "unexpected '%.20s' in $filter", t->start);
    }
    if (ps.failed && !e && err && errlen && !err[0])
        snprintf(err, errlen, "invalid $filter");
    if (ps.failed || !e) {
        if (!ps.failed)
            perr(&ps, "empty $filter");
        odata_filter_free(e);
        e = NULL;
    }
    advance(&ps);
    return e;
}

/* ---- filter shape ------------------------------------------------------------------------- */

static bool int_eq_at(const odata_expr *e, const char *field, int64_t *value, bool *leading,
                      bool first)
{
    if (!e)
        return false;
    if (e->kind == N_AND)
        return int_eq_at(e->a, field, value, leading, first) ||
               int_eq_at(e->b, field, value, leading, false);
    if (e->kind != N_CMP || e->op != OP_EQ || !e->l.is_member || e->l.lambda >= 0 ||
        e->l.nsegs != 1 || strcmp(e->l.segs[0], field) != 0 || e->r.is_member || e->r.lt != L_NUM)
        return false;
    double d = e->r.num;
    if (!(d > -9007199254740992.0 && d < 9007199254740992.0) || floor(d) != d)
        return false;
    if (value)
        *value = (int64_t)d;
    if (leading)
        *leading = first;
    return true;
}

bool odata_filter_int_eq(const odata_expr *expr, const char *field, int64_t *value, bool *leading)
{
    return field && int_eq_at(expr, field, value, leading, true);
}

/* ---- evaluation ------------------------------------------------------------------------ */

typedef struct evalctx {
    const cJSON *record;
    const odata_schema *schema;
    bool ci;
    const cJSON *env[MAX_LAMBDA];
    char *err;
    size_t errlen;
} evalctx;

/* Keeps a computed value alive until the caller deletes *holder (an array made on demand). */
static void hold(cJSON **holder, cJSON *v)
{
    if (!v)
        return;
    if (!*holder)
        *holder = cJSON_CreateArray();
    if (*holder)
        cJSON_AddItemToArray(*holder, v);
    else
        cJSON_Delete(v);
}

static const cJSON *resolve(evalctx *c, const operand *o, cJSON **owned)
{
    *owned = NULL;
    const cJSON *cur;
    size_t i = 1;
    cJSON *one = NULL;
    if (o->lambda >= 0) {
        cur = c->env[o->lambda];
    } else if (c->schema && c->schema->member) {
        cur = c->schema->member(c->schema->ctx, c->record, o->segs[0], &one);
        hold(owned, one);
    } else {
        cur = cJSON_GetObjectItemCaseSensitive(c->record, o->segs[0]);
    }
    for (; cur && i < o->nsegs; i++) {
        if (!cJSON_IsObject(cur)) {
            cur = NULL;
        } else if (c->schema && c->schema->member_at && o->nabs == o->abs_off + o->nsegs) {
            one = NULL;
            cur = c->schema->member_at(c->schema->ctx, cur, o->abs, o->abs_off + i, &one);
            hold(owned, one);
        } else {
            cur = cJSON_GetObjectItemCaseSensitive(cur, o->segs[i]);
        }
    }
    return cur;
}

static int lower(int ch);

/* strcmp, or its ASCII case-insensitive form. */
static int str_cmp(const char *a, const char *b, bool ci)
{
    if (!ci)
        return strcmp(a, b);
    for (;; a++, b++) {
        int x = lower((unsigned char)*a), y = lower((unsigned char)*b);
        if (x != y || !x)
            return x - y;
    }
}

static bool apply(cmpop op, int cmp)
{
    switch (op) {
    case OP_EQ: return cmp == 0;
    case OP_NE: return cmp != 0;
    case OP_GT: return cmp > 0;
    case OP_GE: return cmp >= 0;
    case OP_LT: return cmp < 0;
    default: return cmp <= 0;
    }
}

static int mismatch(evalctx *c, const operand *o, const char *want)
{
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "field '%s' holds a value that is not a %s", o->segs[o->nsegs - 1], want);
    return -1;
}

static int cmp_num(double a, double b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

static int eval_cmp(evalctx *c, const odata_expr *e, bool *out)
{
    cJSON *owned_l = NULL, *owned_r = NULL;
    const cJSON *v = resolve(c, &e->l, &owned_l);
    int rc = 0;
    bool vnull = !v || cJSON_IsNull(v);
    if (e->r.is_member) {
        const cJSON *w = resolve(c, &e->r, &owned_r);
        bool wnull = !w || cJSON_IsNull(w);
        if (vnull || wnull) {
            bool both = vnull && wnull;
            *out = e->op == OP_EQ ? both : e->op == OP_NE ? !both : false;
        } else if ((cJSON_IsNumber(v) && cJSON_IsNumber(w)) || (cJSON_IsString(v) && cJSON_IsString(w)) ||
                   (cJSON_IsBool(v) && cJSON_IsBool(w))) {
            *out = apply(e->op, odata_compare_values(v, w));
        } else {
            *out = e->op == OP_NE;
        }
        goto out;
    }
    const operand *lit = &e->r;
    if (lit->lt == L_NULL) {
        *out = e->op == OP_EQ ? vnull : !vnull;
        goto out;
    }
    if (vnull) {
        *out = e->op == OP_NE;
        goto out;
    }
    switch (lit->lt) {
    case L_STR:
        if (!cJSON_IsString(v)) {
            rc = mismatch(c, &e->l, "string");
            goto out;
        }
        *out = apply(e->op, str_cmp(v->valuestring, lit->str, c->ci));
        break;
    case L_NUM:
        if (!cJSON_IsNumber(v)) {
            rc = mismatch(c, &e->l, "number");
            goto out;
        }
        *out = apply(e->op, cmp_num(v->valuedouble, lit->num));
        break;
    case L_BOOL:
        if (!cJSON_IsBool(v)) {
            rc = mismatch(c, &e->l, "boolean");
            goto out;
        }
        *out = apply(e->op, (cJSON_IsTrue(v) ? 1 : 0) - (lit->b ? 1 : 0));
        break;
    case L_DATE: {
        simtime_instant t;
        if (!cJSON_IsString(v) || !simtime_parse_iso(v->valuestring, strlen(v->valuestring), &t)) {
            rc = mismatch(c, &e->l, "DateTimeOffset");
            goto out;
        }
        *out = apply(e->op, simtime_cmp(t, lit->dt));
        break;
    }
    default:
        *out = false;
    }
out:
    cJSON_Delete(owned_l);
    cJSON_Delete(owned_r);
    return rc;
}

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static bool ci_prefix(const char *s, const char *pre, bool ci)
{
    for (; *pre; s++, pre++)
        if (!*s || (ci ? lower((unsigned char)*s) != lower((unsigned char)*pre) : *s != *pre))
            return false;
    return true;
}

static int eval_func(evalctx *c, const odata_expr *e, bool *out)
{
    cJSON *owned[2] = {NULL, NULL};
    const char *s[2] = {NULL, NULL};
    int rc = 0;
    *out = false;
    for (int i = 0; i < 2; i++) {
        const operand *o = i == 0 ? &e->l : &e->r;
        if (!o->is_member) {
            s[i] = o->str;
            continue;
        }
        const cJSON *v = resolve(c, o, &owned[i]);
        if (!v || cJSON_IsNull(v))
            goto out;
        if (!cJSON_IsString(v)) {
            rc = mismatch(c, o, "string");
            goto out;
        }
        s[i] = v->valuestring;
    }
    size_t n0 = strlen(s[0]), n1 = strlen(s[1]);
    switch (e->func) {
    case F_STARTSWITH:
        *out = ci_prefix(s[0], s[1], c->ci);
        break;
    case F_ENDSWITH:
        *out = n1 <= n0 && ci_prefix(s[0] + n0 - n1, s[1], c->ci);
        break;
    default:
        for (size_t i = 0; i + n1 <= n0; i++) {
            if (ci_prefix(s[0] + i, s[1], c->ci)) {
                *out = true;
                break;
            }
        }
    }
out:
    cJSON_Delete(owned[0]);
    cJSON_Delete(owned[1]);
    return rc;
}

static int eval(evalctx *c, const odata_expr *e, int lambda_depth, bool *out)
{
    bool a = false, b = false;
    switch (e->kind) {
    case N_OR:
        if (eval(c, e->a, lambda_depth, &a) < 0)
            return -1;
        if (a) {
            *out = true;
            return 0;
        }
        if (eval(c, e->b, lambda_depth, &b) < 0)
            return -1;
        *out = b;
        return 0;
    case N_AND:
        if (eval(c, e->a, lambda_depth, &a) < 0)
            return -1;
        if (!a) {
            *out = false;
            return 0;
        }
        if (eval(c, e->b, lambda_depth, &b) < 0)
            return -1;
        *out = b;
        return 0;
    case N_NOT:
        if (eval(c, e->a, lambda_depth, &a) < 0)
            return -1;
        *out = !a;
        return 0;
    case N_CMP:
        return eval_cmp(c, e, out);
    case N_FUNC:
        return eval_func(c, e, out);
    case N_ANY:
    case N_ALL: {
        cJSON *owned = NULL;
        const cJSON *coll = resolve(c, &e->l, &owned);
        bool any = e->kind == N_ANY;
        bool result = !any;
        int rc = 0;
        if (!cJSON_IsArray(coll)) {
            result = !any; /* all() over nothing is true, any() false */
        } else if (!e->a) {
            result = cJSON_GetArraySize(coll) > 0;
        } else {
            const cJSON *el;
            cJSON_ArrayForEach(el, coll)
            {
                bool m = false;
                c->env[lambda_depth] = el;
                if (eval(c, e->a, lambda_depth + 1, &m) < 0) {
                    rc = -1;
                    break;
                }
                if (any && m) {
                    result = true;
                    break;
                }
                if (!any && !m) {
                    result = false;
                    break;
                }
            }
        }
        cJSON_Delete(owned);
        *out = result;
        return rc;
    }
    }
    return -1;
}

int odata_filter_eval(const odata_expr *expr, const cJSON *record, const odata_schema *schema,
                      bool *match, char *err, size_t errlen)
{
    evalctx c = {.record = record, .schema = schema, .err = err, .errlen = errlen,
                 .ci = schema && schema->case_insensitive};
    *match = false;
    if (!expr) {
        *match = true;
        return 0;
    }
    return eval(&c, expr, 0, match);
}

/* ---- ordering -------------------------------------------------------------------------- */

static int rank(const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        return 0;
    if (cJSON_IsBool(v))
        return 1;
    if (cJSON_IsNumber(v))
        return 2;
    if (cJSON_IsString(v))
        return 3;
    return 4;
}

int odata_compare_values(const cJSON *a, const cJSON *b)
{
    int ra = rank(a), rb = rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case 1: return (cJSON_IsTrue(a) ? 1 : 0) - (cJSON_IsTrue(b) ? 1 : 0);
    case 2: return cmp_num(a->valuedouble, b->valuedouble);
    case 3: {
        simtime_instant ta, tb;
        if (simtime_parse_iso(a->valuestring, strlen(a->valuestring), &ta) &&
            simtime_parse_iso(b->valuestring, strlen(b->valuestring), &tb))
            return simtime_cmp(ta, tb);
        int r = strcmp(a->valuestring, b->valuestring);
        return r < 0 ? -1 : r > 0 ? 1 : 0;
    }
    default: return 0;
    }
}

void odata_sortkey_make(const cJSON *v, odata_sortkey *out)
{
    out->v = v;
    out->rank = rank(v);
    out->is_date = out->rank == 3 && simtime_parse_iso(v->valuestring, strlen(v->valuestring), &out->dt);
}

int odata_sortkey_compare(const odata_sortkey *a, const odata_sortkey *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank ? -1 : 1;
    switch (a->rank) {
    case 1: return (cJSON_IsTrue(a->v) ? 1 : 0) - (cJSON_IsTrue(b->v) ? 1 : 0);
    case 2: return cmp_num(a->v->valuedouble, b->v->valuedouble);
    case 3: {
        if (a->is_date && b->is_date)
            return simtime_cmp(a->dt, b->dt);
        int r = strcmp(a->v->valuestring, b->v->valuestring);
        return r < 0 ? -1 : r > 0 ? 1 : 0;
    }
    default: return 0;
    }
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int odata_orderby_parse(const char *text, const odata_schema *schema, odata_orderby *out,
                        char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = text ? text : "";
    for (;;) {
        p = skip_ws(p);
        if (!is_ident_start(*p)) {
            snprintf(err, errlen, "$orderby: expected a field name near '%.20s'", p);
            goto fail;
        }
        const char *s = p;
        while (is_ident_char(*p))
            p++;
        size_t n = (size_t)(p - s);
        if (*p == '/') {
            snprintf(err, errlen, "$orderby: navigation paths are not supported");
            goto fail;
        }
        p = skip_ws(p);
        bool desc = false;
        if (strncmp(p, "asc", 3) == 0 && !is_ident_char(p[3])) {
            p += 3;
        } else if (strncmp(p, "desc", 4) == 0 && !is_ident_char(p[4])) {
            desc = true;
            p += 4;
        }
        p = skip_ws(p);
        if (*p != ',' && *p != '\0') {
            snprintf(err, errlen, "$orderby: unexpected '%.20s'", p);
            goto fail;
        }
        if (out->n >= 16) {
            snprintf(err, errlen, "$orderby: too many keys");
            goto fail;
        }
        odata_orderkey *keys = realloc(out->keys, (out->n + 1) * sizeof *keys);
        if (!keys) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        out->keys = keys;
        char *field = strndup(s, n);
        if (!field) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        keys[out->n].field = field;
        keys[out->n].desc = desc;
        out->n++;
        odata_type t = schema && schema->field_type ? schema->field_type(schema->ctx, field) : ODATA_ANY;
        if (t == ODATA_UNKNOWN) {
            snprintf(err, errlen, "$orderby: unknown field '%s'", field);
            goto fail;
        }
        if (t == ODATA_NAV) {
            snprintf(err, errlen, "$orderby: '%s' is a navigation property", field);
            goto fail;
        }
        if (*p == '\0')
            return 0;
        p++;
    }
fail:
    odata_orderby_free(out);
    return -1;
}

void odata_orderby_free(odata_orderby *ob)
{
    for (size_t i = 0; i < ob->n; i++)
        free(ob->keys[i].field);
    free(ob->keys);
    ob->keys = NULL;
    ob->n = 0;
}

/* ---- $select / $expand lists ----------------------------------------------------------- */

int odata_list_parse(const char *text, odata_list *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *p = text ? text : "";
    for (;;) {
        p = skip_ws(p);
        const char *s = p;
        if (*p == '*') {
            p++;
        } else {
            if (!is_ident_start(*p)) {
                snprintf(err, errlen, "expected a property name near '%.20s'", p);
                goto fail;
            }
            while (is_ident_char(*p))
                p++;
        }
        size_t n = (size_t)(p - s);
        while (*p == '/') { /* A/B: keep A */
            p++;
            if (!is_ident_start(*p)) {
                snprintf(err, errlen, "bad property path near '%.20s'", s);
                goto fail;
            }
            while (is_ident_char(*p))
                p++;
        }
        p = skip_ws(p);
        const char *opt_start = NULL;
        size_t opt_len = 0;
        if (*p == '(') {
            opt_start = p + 1;
            int depth = 0;
            bool in_str = false;
            for (; *p; p++) {
                if (in_str) {
                    if (*p == '\'')
                        in_str = false;
                    continue;
                }
                if (*p == '\'')
                    in_str = true;
                else if (*p == '(')
                    depth++;
                else if (*p == ')' && --depth == 0)
                    break;
            }
            if (*p != ')') {
                snprintf(err, errlen, "unbalanced parentheses in nested options");
                goto fail;
            }
            opt_len = (size_t)(p - opt_start);
            p = skip_ws(p + 1);
        }
        if (*p != ',' && *p != '\0') {
            snprintf(err, errlen, "unexpected '%.20s'", p);
            goto fail;
        }
        char **names = realloc(out->names, (out->n + 1) * sizeof *names);
        if (!names) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        out->names = names;
        char **opts = realloc(out->opts, (out->n + 1) * sizeof *opts);
        if (!opts) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        out->opts = opts;
        names[out->n] = strndup(s, n);
        opts[out->n] = opt_start ? strndup(opt_start, opt_len) : NULL;
        if (!names[out->n] || (opt_start && !opts[out->n])) {
            free(names[out->n]);
            free(opts[out->n]);
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        out->n++;
        if (*p == '\0')
            return 0;
        p++;
    }
fail:
    odata_list_free(out);
    return -1;
}

void odata_list_free(odata_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->names[i]);
        if (list->opts)
            free(list->opts[i]);
    }
    free(list->names);
    free(list->opts);
    list->names = NULL;
    list->opts = NULL;
    list->n = 0;
}

const char *odata_list_opts(const odata_list *list, const char *name)
{
    for (size_t i = 0; list && i < list->n; i++)
        if (strcmp(list->names[i], name) == 0)
            return list->opts ? list->opts[i] : NULL;
    return NULL;
}

int odata_options_each(const char *text,
                       int (*fn)(void *ctx, const char *name, const char *value, char *err,
                                 size_t errlen),
                       void *ctx, char *err, size_t errlen)
{
    const char *p = text ? text : "";
    while (*p) {
        const char *start = skip_ws(p);
        int depth = 0;
        bool in_str = false;
        const char *q = start;
        for (; *q; q++) {
            if (in_str) {
                if (*q == '\'')
                    in_str = false;
                continue;
            }
            if (*q == '\'')
                in_str = true;
            else if (*q == '(')
                depth++;
            else if (*q == ')' && --depth < 0)
                break;
            else if (*q == ';' && depth == 0)
                break;
        }
        if (depth != 0 || in_str) {
            snprintf(err, errlen, "unbalanced parentheses in nested options");
            return -1;
        }
        const char *eq = memchr(start, '=', (size_t)(q - start));
        if (!eq || eq == start) {
            snprintf(err, errlen, "nested option '%.*s' needs name=value",
                     (int)((size_t)(q - start) > 40 ? 40 : (size_t)(q - start)), start);
            return -1;
        }
        size_t nlen = (size_t)(eq - start);
        while (nlen > 0 && (start[nlen - 1] == ' ' || start[nlen - 1] == '\t'))
            nlen--;
        char *name = strndup(start, nlen);
        char *value = strndup(eq + 1, (size_t)(q - eq - 1));
        int rc = name && value ? fn(ctx, name, value, err, errlen) : -1;
        if (!name || !value)
            snprintf(err, errlen, "out of memory");
        free(name);
        free(value);
        if (rc < 0)
            return -1;
        p = *q == ';' ? q + 1 : q;
    }
    return 0;
}

bool odata_list_has(const odata_list *list, const char *name)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->names[i], name) == 0)
            return true;
    return false;
}
