/*
 * txn.h - the storage transaction of one object (POST .../storage/transaction). Pure.
 *
 * Body: {"checks": [{"key", "value"} | {"key", "exists": bool}, ...],
 *        "then": [ops], "else": [ops]}   ops: {"op": "put", "key", "value"} | {"op": "delete",
 * "key"} Each member is optional (missing = empty); at most EKV_DO_MAX_KEYS checks and as many ops
 * per branch; keys and values under the namespace's limits (storage_req.h). Unknown members
 * are refused (EKV_EDO_BAD_BODY), so a typo never silently turns a check off.
 *
 * Evaluation: every check must hold for `then` (else `else` applies). A value check holds
 * when the key exists and its stored JSON equals the given value with JavaScript-like deep
 * equality (ekv_do_json_equal); {"exists": true|false} holds when presence matches.
 */
#ifndef EKV_SERVER_API_DO_TXN_H
#define EKV_SERVER_API_DO_TXN_H

#include "server/api/do/storage_req.h"

#include <stddef.h>

typedef struct {
    char *key;
    size_t key_len;
    int exists_check; /* 1: {"exists": ...}; 0: a value check */
    int exists;
    char *value; /* value checks: compact JSON text */
    size_t value_len;
} ekv_do_check_t;

typedef struct {
    ekv_do_check_t *checks;
    size_t nchecks;
    ekv_do_ops_t then_ops, else_ops;
} ekv_do_txn_t;

/* 0 or an error + msg (storage_req.h's codes); *out left empty on error. */
int ekv_do_txn_parse(const char *body, size_t len, const ekv_do_limits_t *lim, ekv_do_txn_t *out,
                     char *msg, size_t cap);
void ekv_do_txn_free(ekv_do_txn_t *t);

/* The stored value of a key: 1 found (*value = compact JSON text), 0 absent, < 0 error. */
typedef int (*ekv_do_lookup_fn)(void *ctx, const char *key, size_t key_len, const char **value,
                                size_t *value_len);
/* 1 all checks hold, 0 one does not, < 0 a lookup failed or a stored value is not JSON. */
int ekv_do_txn_eval(const ekv_do_txn_t *t, ekv_do_lookup_fn lookup, void *ctx);

/* Deep JSON equality of two JSON texts: objects by members whatever their order, arrays
 * element-wise, numbers by value (1 == 1.0), strings byte-wise. 1 equal, 0 not (or a text is
 * not JSON). */
int ekv_do_json_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
