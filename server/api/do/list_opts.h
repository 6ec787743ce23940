/*
 * list_opts.h - the storage list query (GET .../storage/list), Cloudflare's list() options
 * turned into one key range. Pure.
 *
 *   prefix      keys starting with it
 *   start       inclusive lower bound          startAfter  exclusive lower bound
 *   end         exclusive upper bound          reverse     true|false: descending order
 *   limit       1..EKV_DO_LIST_MAX_LIMIT items per page (default the max)
 *   cursor      edgekv's continuation: ekv_do_list_cursor_encode(last key returned)
 *               (base64url of the key; "." for the empty key, whose base64url is "")
 * start and startAfter together: "list() cannot be called with both start and startAfter
 * values." Query values are percent-decoded, at most EKV_DO_LIST_MAX_OPT bytes each.
 * Errors: EKV_EDO_BAD_LIST (+ msg), EKV_ENOMEM.
 */
#ifndef EKV_SERVER_API_DO_LIST_OPTS_H
#define EKV_SERVER_API_DO_LIST_OPTS_H

#include <stddef.h>

#define EKV_DO_LIST_MAX_LIMIT 1000
#define EKV_DO_LIST_MAX_OPT   8192

/* [lo, hi) (has_hi 0: no upper bound); all malloc'd. empty: no key can be in the range. */
typedef struct {
    char *lo;
    size_t lo_len;
    char *hi;
    size_t hi_len;
    int has_hi;
    int reverse;
    size_t limit;
    int empty;
} ekv_do_list_range_t;

int ekv_do_list_parse(const char *query, size_t len, ekv_do_list_range_t *out, char *msg,
                      size_t cap);
void ekv_do_list_range_free(ekv_do_list_range_t *r);
/* 1 when key is in [lo, hi). */
int ekv_do_list_range_contains(const ekv_do_list_range_t *r, const char *key, size_t len);
/* The cursor after `key` (base64url, malloc'd, NUL-terminated), NULL on ENOMEM. */
char *ekv_do_list_cursor_encode(const char *key, size_t len);

#endif
