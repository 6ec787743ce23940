/*
 * txn.c - the storage transaction (txn.h).
 */
#include "server/api/do/txn.h"
#include "common/errors.h"
#include "server/http/json_out.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ekv_do_txn_free(ekv_do_txn_t *t)
{
    for (size_t i = 0; t->checks && i < t->nchecks; i++) {
        free(t->checks[i].key);
        free(t->checks[i].value);
    }
    free(t->checks);
    ekv_do_ops_free(&t->then_ops);
    ekv_do_ops_free(&t->else_ops);
    memset(t, 0, sizeof(*t));
}

/* Every member of o is one of the names (NULL-terminated); else msg. */
static int only_members(json_t *o, const char *const *names, const char *what, char *msg,
                        size_t cap)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int known = 0;
        for (size_t i = 0; names[i] && !known; i++)
            known = !strcmp(k, names[i]);
        if (!known) {
            snprintf(msg, cap, "transaction: unknown member '%s' in %s", k, what);
            return EKV_EDO_BAD_BODY;
        }
    }
    return 0;
}

static int parse_checks(json_t *arr, const ekv_do_limits_t *lim, ekv_do_txn_t *t, char *msg,
                        size_t cap)
{
    static const char *const names[] = {"key", "value", "exists", NULL};
    size_t n = json_array_size(arr);
    if (n > EKV_DO_MAX_KEYS) {
        snprintf(msg, cap, "Maximum number of key value pairs is %d. %zu pairs were provided.",
                 EKV_DO_MAX_KEYS, n);
        return EKV_EDO_TOO_MANY_KEYS;
    }
    if (n && !(t->checks = calloc(n, sizeof(*t->checks))))
        return EKV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(arr, i);
        if (!json_is_object(c)) {
            snprintf(msg, cap,
                     "transaction: each check is {\"key\", \"value\"} or {\"key\", "
                     "\"exists\": bool}");
            return EKV_EDO_BAD_BODY;
        }
        int rc = only_members(c, names, "a check", msg, cap);
        if (rc)
            return rc;
        json_t *val = json_object_get(c, "value"), *ex = json_object_get(c, "exists");
        if ((!val) == (!ex) || (ex && !json_is_boolean(ex))) {
            snprintf(msg, cap,
                     "transaction: a check has either \"value\" or \"exists\": "
                     "true|false");
            return EKV_EDO_BAD_BODY;
        }
        ekv_do_check_t *k = &t->checks[t->nchecks];
        json_t *key = json_object_get(c, "key");
        if (!key) {
            snprintf(msg, cap, "transaction: a check needs a \"key\"");
            return EKV_EDO_BAD_BODY;
        }
        if ((rc = ekv_do_key_of(key, lim, &k->key, &k->key_len, msg, cap)))
            return rc;
        t->nchecks++;
        if (ex) {
            k->exists_check = 1;
            k->exists = json_is_true(ex);
        } else if ((rc = ekv_do_value_of(val, lim, k->key_len, &k->value, &k->value_len, msg,
                                         cap))) {
            return rc;
        }
    }
    return 0;
}

static int parse_ops(json_t *arr, const ekv_do_limits_t *lim, ekv_do_ops_t *out, const char *branch,
                     char *msg, size_t cap)
{
    static const char *const names[] = {"op", "key", "value", NULL};
    size_t n = json_array_size(arr);
    if (n > EKV_DO_MAX_KEYS) {
        snprintf(msg, cap, "Maximum number of key value pairs is %d. %zu pairs were provided.",
                 EKV_DO_MAX_KEYS, n);
        return EKV_EDO_TOO_MANY_KEYS;
    }
    if (n && !(out->ops = calloc(n, sizeof(*out->ops))))
        return EKV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *kind = json_is_object(o) ? json_string_value(json_object_get(o, "op")) : NULL;
        int put = kind && !strcmp(kind, "put"), del = kind && !strcmp(kind, "delete");
        json_t *key = json_is_object(o) ? json_object_get(o, "key") : NULL;
        json_t *val = json_is_object(o) ? json_object_get(o, "value") : NULL;
        if ((!put && !del) || !key || (put && !val) || (del && val)) {
            snprintf(msg, cap,
                     "transaction: each op in \"%s\" is {\"op\": \"put\", \"key\", \"value\"} or "
                     "{\"op\": \"delete\", \"key\"}",
                     branch);
            return EKV_EDO_BAD_BODY;
        }
        int rc = only_members(o, names, "an op", msg, cap);
        ekv_do_op_t *op = &out->ops[out->n];
        if (!rc)
            rc = ekv_do_key_of(key, lim, &op->key, &op->key_len, msg, cap);
        if (rc)
            return rc;
        out->n++;
        op->del = del;
        if (put &&
            (rc = ekv_do_value_of(val, lim, op->key_len, &op->value, &op->value_len, msg, cap)))
            return rc;
    }
    return 0;
}

int ekv_do_txn_parse(const char *body, size_t len, const ekv_do_limits_t *lim, ekv_do_txn_t *out,
                     char *msg, size_t cap)
{
    static const char *const names[] = {"checks", "then", "else", NULL};
    memset(out, 0, sizeof(*out));
    json_error_t e;
    json_t *root = json_loadb(body, len, EKV_JSON_PARSE_FLAGS, &e);
    int rc = 0;
    if (!root || !json_is_object(root)) {
        snprintf(msg, cap,
                 "transaction: body must be {\"checks\": [...], \"then\": [...], "
                 "\"else\": [...]}");
        rc = EKV_EDO_BAD_BODY;
        goto out;
    }
    if ((rc = only_members(root, names, "the body", msg, cap)))
        goto out;
    json_t *c = json_object_get(root, "checks"), *th = json_object_get(root, "then"),
           *el = json_object_get(root, "else");
    if ((c && !json_is_array(c)) || (th && !json_is_array(th)) || (el && !json_is_array(el))) {
        snprintf(msg, cap, "transaction: \"checks\", \"then\" and \"else\" are arrays");
        rc = EKV_EDO_BAD_BODY;
        goto out;
    }
    if (c && (rc = parse_checks(c, lim, out, msg, cap)))
        goto out;
    if (th && (rc = parse_ops(th, lim, &out->then_ops, "then", msg, cap)))
        goto out;
    if (el)
        rc = parse_ops(el, lim, &out->else_ops, "else", msg, cap);
out:
    json_decref(root);
    if (rc)
        ekv_do_txn_free(out);
    return rc;
}

static int num_equal(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    return json_number_value(a) == json_number_value(b);
}

static int deep_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b))
        return num_equal(a, b);
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        const char *k;
        size_t kl;
        json_t *v;
        json_object_keylen_foreach((json_t *)a, k, kl, v)
        {
            json_t *w = json_object_getn(b, k, kl);
            if (!w || !deep_equal(v, w))
                return 0;
        }
        return 1;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!deep_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    }
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    default: /* true, false, null: same type is equal */
        return 1;
    }
}

int ekv_do_json_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    json_error_t e;
    json_t *x = json_loadb(a, alen, EKV_JSON_PARSE_FLAGS, &e);
    json_t *y = x ? json_loadb(b, blen, EKV_JSON_PARSE_FLAGS, &e) : NULL;
    int eq = x && y && deep_equal(x, y);
    json_decref(x);
    json_decref(y);
    return eq;
}

int ekv_do_txn_eval(const ekv_do_txn_t *t, ekv_do_lookup_fn lookup, void *ctx)
{
    for (size_t i = 0; i < t->nchecks; i++) {
        const ekv_do_check_t *c = &t->checks[i];
        const char *v = NULL;
        size_t vl = 0;
        int found = lookup(ctx, c->key, c->key_len, &v, &vl);
        if (found < 0)
            return found;
        if (c->exists_check) {
            if (found != c->exists)
                return 0;
            continue;
        }
        if (!found || !ekv_do_json_equal(v, vl, c->value, c->value_len))
            return 0;
    }
    return 1;
}
