/*
 * catalog.h - the in-memory copy of accounts, tokens and namespaces used on the loop thread
 * for authentication and namespace checks, so no request needs RocksDB for them.
 *
 * Loaded from the store at start-up; afterwards changed only after the committer has made
 * a catalog write durable (so it never shows uncommitted state). Loop thread only.
 * Lookups (account by id, token by hash or id, namespace by id or (account, title)) are hash
 * lookups (common/htab.h); listing sorts on demand. A returned pointer stays valid until that
 * record is removed or replaced.
 */
#ifndef EKV_SERVER_API_CATALOG_H
#define EKV_SERVER_API_CATALOG_H

#include "storage/store.h"

#include <stddef.h>

typedef struct ekv_catalog_s ekv_catalog_t;

ekv_catalog_t *ekv_catalog_new(void);
void ekv_catalog_free(ekv_catalog_t *c);
/* Fill from the store (start-up). */
int ekv_catalog_load(ekv_catalog_t *c, ekv_store_t *store);
/* Add one raw meta-CF record (an edge's catalog snapshot); other keys are ignored. */
void ekv_catalog_add_entry(ekv_catalog_t *c, const char *key, size_t klen, const char *val,
                           size_t vlen);

void ekv_catalog_put_account(ekv_catalog_t *c, const ekv_account_t *a);
const ekv_account_t *ekv_catalog_find_account(const ekv_catalog_t *c, const char *id);
size_t ekv_catalog_account_count(const ekv_catalog_t *c);
const ekv_account_t *ekv_catalog_account_at(const ekv_catalog_t *c, size_t i);

void ekv_catalog_put_token(ekv_catalog_t *c, const ekv_token_t *t);
void ekv_catalog_remove_token(ekv_catalog_t *c, const char *hash);
const ekv_token_t *ekv_catalog_find_token(const ekv_catalog_t *c, const char *hash);
const ekv_token_t *ekv_catalog_find_token_by_id(const ekv_catalog_t *c, const char *account_id,
                                                const char *id);
size_t ekv_catalog_token_count(const ekv_catalog_t *c);
const ekv_token_t *ekv_catalog_token_at(const ekv_catalog_t *c, size_t i);

/* Insert or replace (rename) by id. */
void ekv_catalog_put_ns(ekv_catalog_t *c, const ekv_namespace_t *ns);
void ekv_catalog_remove_ns(ekv_catalog_t *c, const char *id);
const ekv_namespace_t *ekv_catalog_find_ns(const ekv_catalog_t *c, const char *account_id,
                                           const char *id);
const ekv_namespace_t *ekv_catalog_find_ns_title(const ekv_catalog_t *c, const char *account_id,
                                                 const char *title);
size_t ekv_catalog_ns_count(const ekv_catalog_t *c, const char *account_id);

typedef enum { EKV_NS_ORDER_ID, EKV_NS_ORDER_TITLE } ekv_ns_order_t;
/* The account's namespaces sorted; *out is a malloc'd array of borrowed pointers (valid
 * until the next catalog change). Returns the count or a negative error. */
int ekv_catalog_list_ns(const ekv_catalog_t *c, const char *account_id, ekv_ns_order_t order,
                        int descending, const ekv_namespace_t ***out);

#endif
