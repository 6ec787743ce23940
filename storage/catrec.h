/*
 * catrec.h - catalog record codec: the values of the meta CF's "a/", "t/", "n/" and "d/" keys.
 *
 * Each record is a msgpack array whose first element is the record version (1):
 *   account    [1, id, name, created_ms]
 *   token      [1, hash, id, account_id, name, perms, created_ms]
 *   namespace  [1, id, account_id, title, created_ms]
 *   DO namespace [1, id, account_id, name, class, script, use_sqlite (0|1), key (bin 32),
 *                created_ms]
 * Strings are msgpack str. The record repeats the id that is also in its key, so a record is
 * self-describing (catalog dumps, replication snapshots). Decoding rejects unknown versions,
 * wrong arity/types, strings that do not fit the struct or contain NUL. Pure functions.
 */
#ifndef EKV_STORAGE_CATREC_H
#define EKV_STORAGE_CATREC_H

#include "common/buf.h"
#include "storage/store.h"

#include <stddef.h>

#define EKV_CATREC_VERSION 1

/* Append to out: 0, EKV_ENOMEM or EKV_ETOO_LARGE. */
int ekv_catrec_account_encode(const ekv_account_t *a, ekv_buf_t *out);
int ekv_catrec_token_encode(const ekv_token_t *t, ekv_buf_t *out);
int ekv_catrec_ns_encode(const ekv_namespace_t *ns, ekv_buf_t *out);
int ekv_catrec_do_ns_encode(const ekv_do_ns_t *ns, ekv_buf_t *out);

/* 0 or EKV_ESTORAGE (malformed). out is fully overwritten on success. */
int ekv_catrec_account_decode(const char *buf, size_t len, ekv_account_t *out);
int ekv_catrec_token_decode(const char *buf, size_t len, ekv_token_t *out);
int ekv_catrec_ns_decode(const char *buf, size_t len, ekv_namespace_t *out);
int ekv_catrec_do_ns_decode(const char *buf, size_t len, ekv_do_ns_t *out);

#endif
