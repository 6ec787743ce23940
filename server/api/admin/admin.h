/*
 * server/api/admin/ - the account-level API around KV:
 *
 *   namespaces.c  KV namespaces: list (paged, ordered), create, get, rename, delete
 *   accounts.c    accounts, memberships, token verify, API tokens (list, create, revoke)
 *   ops.c         /healthz, /metrics (RocksDB properties on a reader thread), test clock
 *
 * The replication endpoints are the role's (server/node/admin.c, EKV_RK_CLUSTER routes).
 */
#ifndef EKV_SERVER_API_ADMIN_ADMIN_H
#define EKV_SERVER_API_ADMIN_ADMIN_H

#include "server/api/api.h"

void ekv_h_healthz(ekv_call_t *c);
void ekv_h_metrics(ekv_call_t *c);
void ekv_h_test_clock(ekv_call_t *c);
void ekv_h_accounts_list(ekv_call_t *c);
/* operator API (EKV_RT_OPERATOR): every account; create one with its first admin token */
void ekv_h_op_accounts_list(ekv_call_t *c);
void ekv_h_op_accounts_create(ekv_call_t *c);
void ekv_h_memberships(ekv_call_t *c);
void ekv_h_token_verify(ekv_call_t *c);
void ekv_h_tokens_list(ekv_call_t *c);
void ekv_h_tokens_create(ekv_call_t *c);
void ekv_h_tokens_revoke(ekv_call_t *c);
void ekv_h_ns_list(ekv_call_t *c);
void ekv_h_ns_create(ekv_call_t *c);
void ekv_h_ns_get(ekv_call_t *c);
void ekv_h_ns_rename(ekv_call_t *c);
void ekv_h_ns_delete(ekv_call_t *c);

#endif
