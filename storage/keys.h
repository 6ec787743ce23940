/*
 * keys.h - the byte layout of every RocksDB key edgekv writes. Pure functions, no allocation,
 * no RocksDB dependency (docs/STORAGE.md has the same layouts in prose).
 *
 *   kvmeta, kvval  nsid(16) || key bytes
 *   exp            be64(expiration) || nsid(16) || key bytes        value ""
 *   log            be64(seq)                                         value ChangeRecord
 *   meta           "a/" account_id                                   account record
 *                  "t/" token_hash                                   token record
 *                  "n/" nsid hex (32 lowercase)                      namespace record
 *                  "T/" account_id "/" title                         nsid (16 raw bytes)
 *                  "s/last_seq"                                      be64(last committed seq)
 *                  "s/ingest"                                        "" while ingesting
 *                  "d/" DO namespace id hex (32 lowercase)           DO namespace record
 *   dokv           dons(16) || object id(32) || key bytes            value (JSON text)
 *   doalarm        dons(16) || object id(32)                         be64(ms) || object name
 *
 * Big-endian integers make RocksDB's bytewise order the numeric order, so the exp CF is
 * scanned oldest-first and the log CF in sequence order. Account ids and token hashes never
 * contain '/', so "T/<account>/" is an exact prefix of one account's titles.
 */
#ifndef EKV_STORAGE_KEYS_H
#define EKV_STORAGE_KEYS_H

#include "storage/ids.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_KEY_BE64_LEN  8
#define EKV_KEY_LOG_LEN   8
#define EKV_KEY_MAX_TITLE 512
/* Largest meta key: "T/" + 32-char account id + "/" + 512-byte title. */
#define EKV_KEY_META_MAX      (2 + EKV_ID_HEX_LEN + 1 + EKV_KEY_MAX_TITLE)
#define EKV_KEY_LAST_SEQ      "s/last_seq"
#define EKV_KEY_LAST_SEQ_LEN  (sizeof(EKV_KEY_LAST_SEQ) - 1)
#define EKV_KEY_INGEST        "s/ingest" /* present while a snapshot ingest is unfinished */
#define EKV_KEY_INGEST_LEN    (sizeof(EKV_KEY_INGEST) - 1)
#define EKV_KEY_NODE          "s/node" /* node state: epoch, history ids, fence (node.c) */
#define EKV_KEY_NODE_LEN      (sizeof(EKV_KEY_NODE) - 1)
#define EKV_KEY_DO_PTABLE     "s/do_ptable" /* the DO partition table (do_cluster.proto) */
#define EKV_KEY_DO_PTABLE_LEN (sizeof(EKV_KEY_DO_PTABLE) - 1)

/* Meta-CF record prefixes (two bytes each). */
#define EKV_KEY_PFX_ACCOUNT "a/"
#define EKV_KEY_PFX_TOKEN   "t/"
#define EKV_KEY_PFX_NS      "n/"
#define EKV_KEY_PFX_TITLE   "T/"
#define EKV_KEY_PFX_DO_NS   "d/"
#define EKV_KEY_PFX_LEN     2

void ekv_be64_put(char out[8], uint64_t v);
uint64_t ekv_be64_get(const char in[8]);

/* kvmeta / kvval key. out holds EKV_NSID_LEN + key_len bytes; returns the length written. */
size_t ekv_key_kv(char *out, const uint8_t nsid[EKV_NSID_LEN], const char *key, size_t key_len);

/* exp index key. out holds 8 + EKV_NSID_LEN + key_len bytes; returns the length written.
 * expiration is > 0 (0 = never expires is not indexed). */
size_t ekv_key_exp(char *out, int64_t expiration, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                   size_t key_len);
/* Split an exp key; the pointers point into k. 0, or -1 if k is shorter than 8 + 16 bytes
 * or the expiration does not fit in int64. */
int ekv_key_exp_parse(const char *k, size_t len, int64_t *expiration, const uint8_t **nsid,
                      const char **key, size_t *key_len);

/* log key. */
void ekv_key_log(char out[EKV_KEY_LOG_LEN], uint64_t seq);
/* 0, or -1 if len != 8. */
int ekv_key_log_parse(const char *k, size_t len, uint64_t *seq);

/*
 * Meta keys. Each writes into out (cap bytes, no NUL) and returns the length, or -1 when a
 * component is invalid: ids/hashes must be 1..EKV_ID_HEX_LEN (tokens: ..EKV_TOKEN_HASH_LEN)
 * chars without '/', titles 1..512 bytes (any bytes), or when cap is too small.
 */
int ekv_key_meta_account(char *out, size_t cap, const char *account_id);
int ekv_key_meta_token(char *out, size_t cap, const char *token_hash);
int ekv_key_meta_ns(char *out, size_t cap, const uint8_t nsid[EKV_NSID_LEN]);
int ekv_key_meta_title(char *out, size_t cap, const char *account_id, const char *title,
                       size_t title_len);

/* DO namespace record key "d/<hex>". Same contract as ekv_key_meta_ns. */
int ekv_key_meta_do_ns(char *out, size_t cap, const uint8_t dons[EKV_NSID_LEN]);

/* Durable Object keys: the object prefix dons || objid (EKV_KEY_DO_OBJ_LEN bytes) and a dokv
 * key = prefix || key (out holds EKV_KEY_DO_OBJ_LEN + key_len). Return the length written. */
#define EKV_KEY_DO_OBJ_LEN (EKV_NSID_LEN + EKV_DO_OBJID_LEN)
size_t ekv_key_do_obj(char *out, const uint8_t dons[EKV_NSID_LEN],
                      const uint8_t objid[EKV_DO_OBJID_LEN]);
size_t ekv_key_do_kv(char *out, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], const char *key, size_t key_len);

/* 1 when s (NUL-terminated) is a valid id of 1..max chars without '/', else 0. */
int ekv_key_id_ok(const char *s, size_t max);

/*
 * The smallest key greater than every key that starts with p[0..len): p with trailing 0xff
 * bytes dropped and the last remaining byte incremented. out holds len bytes. Returns the
 * successor's length, or 0 when there is none (len == 0 or all bytes are 0xff): iterate
 * without an upper bound then.
 */
size_t ekv_key_prefix_successor(const char *p, size_t len, char *out);

#endif
