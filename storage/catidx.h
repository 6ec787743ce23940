/*
 * catidx.h - the committer's in-memory view of the catalog, used for the read-checks of
 * catalog and KV ops while a group commit is being built.
 *
 * Why in memory: a batch may hold "create ns X", "create ns with X's title", "put into X",
 * "delete X", "put into X" in one queue; each op must see the effect of the ones before it,
 * which the DB does not show until the batch is written. The committer updates this index as
 * it applies each op; if the batch write then fails, the index is rebuilt from the DB
 * (ekv__catalog_index_load) before the next batch, so it never drifts from what is durable.
 *
 * Owned and used by the committer thread only (and by open before the thread starts): no
 * locking. Reads by the server go to the DB, never here.
 */
#ifndef EKV_STORAGE_CATIDX_H
#define EKV_STORAGE_CATIDX_H

#include "common/htab.h"
#include "storage/ids.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    ekv_hnode_t by_id, by_title; /* the index's links */
    uint8_t nsid[EKV_NSID_LEN];
    char account_id[EKV_ID_HEX_LEN + 1];
    int64_t created_ms;
    size_t title_len;
    char *title; /* malloc'd, NUL-terminated */
} ekv_catidx_ns_t;

typedef struct {
    ekv_hnode_t by_hash, by_id; /* the index's links (by_id only when id is not empty) */
    char hash[EKV_TOKEN_HASH_LEN + 1];
    char id[EKV_ID_HEX_LEN + 1];
    char account_id[EKV_ID_HEX_LEN + 1];
} ekv_catidx_token_t;

/* Namespaces and tokens are each one allocation, linked into two intrusive tables; the struct
 * may be moved by value (ekv__catalog_index_load swaps a fresh index in). */
typedef struct {
    ekv_htab_t ns_by_id;    /* nsid -> ekv_catidx_ns_t.by_id (owns the namespaces) */
    ekv_htab_t ns_by_title; /* (account_id, title) -> ekv_catidx_ns_t.by_title */
    ekv_bytemap_t ns_count; /* account_id -> (uintptr_t) namespaces in the account */
    ekv_htab_t tok_by_hash; /* hash -> ekv_catidx_token_t.by_hash (owns the tokens) */
    ekv_htab_t tok_by_id;   /* id -> ekv_catidx_token_t.by_id */
} ekv_catidx_t;

void ekv_catidx_init(ekv_catidx_t *x);
void ekv_catidx_deinit(ekv_catidx_t *x);

const ekv_catidx_ns_t *ekv_catidx_ns_get(const ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN]);
const ekv_catidx_ns_t *ekv_catidx_ns_by_title(const ekv_catidx_t *x, const char *account_id,
                                              const char *title, size_t title_len);
size_t ekv_catidx_ns_count(const ekv_catidx_t *x, const char *account_id);
/* Add a namespace (id and title must be free). 0 or EKV_ENOMEM (index unchanged). */
int ekv_catidx_ns_add(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN], const char *account_id,
                      const char *title, size_t title_len, int64_t created_ms);
/* Change a namespace's title (new title must be free). 0, EKV_ENOMEM, EKV_ENS_NOT_FOUND. */
int ekv_catidx_ns_rename(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN], const char *title,
                         size_t title_len);
void ekv_catidx_ns_remove(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN]);

const ekv_catidx_token_t *ekv_catidx_token_by_hash(const ekv_catidx_t *x, const char *hash);
const ekv_catidx_token_t *ekv_catidx_token_by_id(const ekv_catidx_t *x, const char *id);
/* Add or replace. 0 or EKV_ENOMEM. */
int ekv_catidx_token_add(ekv_catidx_t *x, const char *hash, const char *id, const char *account_id);
void ekv_catidx_token_remove(ekv_catidx_t *x, const char *hash);

#endif
