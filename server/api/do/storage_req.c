/*
 * storage_req.c - storage call bodies (storage_req.h).
 */
#include "server/api/do/storage_req.h"
#include "common/buf.h"
#include "common/errors.h"
#include "server/http/json_out.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ekv_do_ops_free(ekv_do_ops_t *ops)
{
    for (size_t i = 0; ops->ops && i < ops->n; i++) {
        free(ops->ops[i].key);
        free(ops->ops[i].value);
    }
    free(ops->ops);
    ops->ops = NULL;
    ops->n = 0;
}

int ekv_do_check_key(const ekv_do_limits_t *lim, size_t key_len, size_t value_len, char *msg,
                     size_t cap)
{
    if (lim->use_sqlite) {
        if (key_len + value_len > EKV_DO_SQLITE_MAX_KEYVAL) {
            snprintf(msg, cap,
                     "Key and value together cannot be larger than %d bytes. A key of size %zu "
                     "and a value of size %zu were provided.",
                     EKV_DO_SQLITE_MAX_KEYVAL, key_len, value_len);
            return value_len ? EKV_EDO_VALUE_TOO_LARGE : EKV_EDO_BAD_KEY;
        }
        return 0;
    }
    if (key_len > EKV_DO_KV_MAX_KEY) {
        snprintf(msg, cap, "Keys cannot be larger than %d bytes. A key of size %zu was provided.",
                 EKV_DO_KV_MAX_KEY, key_len);
        return EKV_EDO_BAD_KEY;
    }
    if (value_len > EKV_DO_KV_MAX_VALUE) {
        snprintf(msg, cap,
                 "Values cannot be larger than %d bytes. A value of size %zu was provided.",
                 EKV_DO_KV_MAX_VALUE, value_len);
        return EKV_EDO_VALUE_TOO_LARGE;
    }
    return 0;
}

int ekv_do_key_of(const json_t *s, const ekv_do_limits_t *lim, char **key, size_t *len, char *msg,
                  size_t cap)
{
    if (!json_is_string(s)) {
        snprintf(msg, cap, "keys must be strings");
        return EKV_EDO_BAD_BODY;
    }
    size_t n = json_string_length(s);
    const char *p = json_string_value(s);
    if (memchr(p, 0, n)) {
        snprintf(msg, cap, "keys must not contain NUL characters");
        return EKV_EDO_BAD_BODY;
    }
    int rc = ekv_do_check_key(lim, n, 0, msg, cap);
    if (rc)
        return rc;
    *key = malloc(n + 1);
    if (!*key)
        return EKV_ENOMEM;
    memcpy(*key, p, n);
    (*key)[n] = '\0';
    *len = n;
    return 0;
}

int ekv_do_value_of(const json_t *v, const ekv_do_limits_t *lim, size_t key_len, char **value,
                    size_t *len, char *msg, size_t cap)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    if (ekv_json_put_value(&b, v) || ekv_buf_append(&b, "", 1)) {
        ekv_buf_deinit(&b);
        return EKV_ENOMEM;
    }
    size_t n = b.len - 1;
    char *text = b.data; /* taken: NUL-terminated */
    int rc = ekv_do_check_key(lim, key_len, n, msg, cap);
    if (rc) {
        free(text);
        return rc;
    }
    *value = text;
    *len = n;
    return 0;
}

static int too_many(size_t n, char *msg, size_t cap)
{
    if (n == 0) {
        snprintf(msg, cap, "at least one key is needed");
        return EKV_EDO_BAD_BODY;
    }
    if (n > EKV_DO_MAX_KEYS) {
        snprintf(msg, cap, "Maximum number of key value pairs is %d. %zu pairs were provided.",
                 EKV_DO_MAX_KEYS, n);
        return EKV_EDO_TOO_MANY_KEYS;
    }
    return 0;
}

/* The body as a JSON object holding member `name` of type `type`; NULL after msg. */
static json_t *load_member(const char *body, size_t len, const char *name, json_type type,
                           const char *shape, json_t **root, char *msg, size_t cap)
{
    json_error_t e;
    *root = json_loadb(body, len, EKV_JSON_PARSE_FLAGS, &e);
    json_t *m = *root && json_is_object(*root) ? json_object_get(*root, name) : NULL;
    if (!m || json_typeof(m) != type) {
        snprintf(msg, cap, "body must be %s", shape);
        json_decref(*root);
        *root = NULL;
        return NULL;
    }
    return m;
}

static int cmp_ops(const void *a, const void *b)
{
    const ekv_do_op_t *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

int ekv_do_parse_keys(const char *body, size_t len, const ekv_do_limits_t *lim, ekv_do_ops_t *out,
                      char *msg, size_t cap)
{
    memset(out, 0, sizeof(*out));
    json_t *root;
    json_t *keys =
        load_member(body, len, "keys", JSON_ARRAY, "{\"keys\": [\"key\", ...]}", &root, msg, cap);
    if (!keys)
        return EKV_EDO_BAD_BODY;
    size_t n = json_array_size(keys);
    int rc = too_many(n, msg, cap);
    if (!rc && !(out->ops = calloc(n, sizeof(*out->ops))))
        rc = EKV_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = ekv_do_key_of(json_array_get(keys, i), lim, &out->ops[i].key, &out->ops[i].key_len,
                           msg, cap);
        if (!rc) {
            out->ops[i].del = 1;
            out->n++;
        }
    }
    json_decref(root);
    if (rc) {
        ekv_do_ops_free(out);
        return rc;
    }
    qsort(out->ops, out->n, sizeof(*out->ops), cmp_ops);
    size_t w = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (w && cmp_ops(&out->ops[w - 1], &out->ops[i]) == 0) {
            free(out->ops[i].key);
            continue;
        }
        out->ops[w++] = out->ops[i];
    }
    out->n = w;
    return 0;
}

int ekv_do_parse_entries(const char *body, size_t len, const ekv_do_limits_t *lim,
                         ekv_do_ops_t *out, char *msg, size_t cap)
{
    memset(out, 0, sizeof(*out));
    json_t *root;
    json_t *ents = load_member(body, len, "entries", JSON_OBJECT,
                               "{\"entries\": {\"key\": <any JSON value>, ...}}", &root, msg, cap);
    if (!ents)
        return EKV_EDO_BAD_BODY;
    size_t n = json_object_size(ents);
    int rc = too_many(n, msg, cap);
    if (!rc && !(out->ops = calloc(n, sizeof(*out->ops))))
        rc = EKV_ENOMEM;
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach(ents, k, klen, v)
    {
        if (rc)
            break;
        ekv_do_op_t *op = &out->ops[out->n];
        json_t *ks = json_stringn_nocheck(k, klen);
        rc = ks ? ekv_do_key_of(ks, lim, &op->key, &op->key_len, msg, cap) : EKV_ENOMEM;
        json_decref(ks);
        if (!rc)
            rc = ekv_do_value_of(v, lim, op->key_len, &op->value, &op->value_len, msg, cap);
        if (!rc)
            out->n++;
        else
            free(op->key);
    }
    json_decref(root);
    if (rc)
        ekv_do_ops_free(out);
    return rc;
}
