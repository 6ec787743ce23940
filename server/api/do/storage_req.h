/*
 * storage_req.h - the JSON bodies of the per-object storage calls, parsed with Cloudflare's
 * limits and texts (docs/API.md "Durable Objects"). Pure.
 *
 * Keys are JSON strings (UTF-8; no NUL byte inside). Values are any JSON value, parsed as
 * JavaScript does (EKV_JSON_PARSE_FLAGS: numbers are doubles) and kept as the compact text
 * JSON.stringify would give (server/http/json_out.h: 1.0 is "1", 0.1 stays "0.1", members in
 * the client's order), which is what the store holds, what replies splice verbatim and what
 * a value's size is measured on.
 *
 * Every parser returns 0, or a negative ekv_err_t with a specific message in msg:
 *   EKV_EDO_BAD_BODY        not JSON, or not the expected shape
 *   EKV_EDO_TOO_MANY_KEYS   more than EKV_DO_MAX_KEYS keys (none at all: EKV_EDO_BAD_BODY)
 *   EKV_EDO_BAD_KEY         a key over the limit
 *   EKV_EDO_VALUE_TOO_LARGE a value (or key + value) over the limit
 *   EKV_ENOMEM
 * On error *out is left empty.
 */
#ifndef EKV_SERVER_API_DO_STORAGE_REQ_H
#define EKV_SERVER_API_DO_STORAGE_REQ_H

#include <stddef.h>

#define EKV_DO_MAX_KEYS          128
#define EKV_DO_KV_MAX_KEY        2048    /* KV-backed classes */
#define EKV_DO_KV_MAX_VALUE      131072  /* KV-backed classes: 128 KiB of JSON text */
#define EKV_DO_SQLITE_MAX_KEYVAL 2000000 /* SQLite-backed: key + value */

typedef struct {
    int use_sqlite; /* the namespace's backend: which limits apply */
} ekv_do_limits_t;

/* One key, and its value (compact JSON text, NUL-terminated) for a put; all malloc'd. */
typedef struct {
    char *key;
    size_t key_len;
    char *value; /* NULL for deletes and key lists */
    size_t value_len;
    int del;
} ekv_do_op_t;

typedef struct {
    ekv_do_op_t *ops;
    size_t n;
} ekv_do_ops_t;

void ekv_do_ops_free(ekv_do_ops_t *ops);

/* Check one key (value_len 0 for a key alone) against the limits. 0 or an error + msg. */
int ekv_do_check_key(const ekv_do_limits_t *lim, size_t key_len, size_t value_len, char *msg,
                     size_t cap);

/* {"keys": ["a", ...]} (get, delete) -> ops with del = 1, duplicates removed, in UTF-8 byte
 * order. */
int ekv_do_parse_keys(const char *body, size_t len, const ekv_do_limits_t *lim, ekv_do_ops_t *out,
                      char *msg, size_t cap);
/* {"entries": {"k": <json>, ...}} (put) -> put ops in the body's order. */
int ekv_do_parse_entries(const char *body, size_t len, const ekv_do_limits_t *lim,
                         ekv_do_ops_t *out, char *msg, size_t cap);

/* Helpers shared with txn.c: a JSON string member as a key (checked), and a JSON value as
 * compact text (checked with its key). 0 or an error + msg. */
struct json_t;
int ekv_do_key_of(const struct json_t *s, const ekv_do_limits_t *lim, char **key, size_t *len,
                  char *msg, size_t cap);
int ekv_do_value_of(const struct json_t *v, const ekv_do_limits_t *lim, size_t key_len,
                    char **value, size_t *len, char *msg, size_t cap);

#endif
