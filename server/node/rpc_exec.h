/*
 * rpc_exec.h - execute edges' RPC Requests through this node's HTTP application path
 * (server/node/rpc_exec.c). Loop thread.
 */
#ifndef EKV_SERVER_NODE_RPC_EXEC_H
#define EKV_SERVER_NODE_RPC_EXEC_H

#include "repl.pb-c.h"
#include "server/api/api.h"

#include <stdint.h>

/* ekv_repl_primary_opts_t.on_request: takes ownership of f (a Request frame). */
void ekv_rpc_exec(void *ctx, uint64_t peer_id, Edgekv__Frame *f);
/* Requests of this method are the owners' internal calls (proto/do_cluster.proto), run by
 * ekv_node_do_internal, never by the HTTP path (no client can send this method). */
#define EKV_DO_RPC_METHOD "EKV-DO"
/* Answer an RPC request with a raw body (internal calls): status 200 and the body, or an
 * error status with its Cloudflare code. */
void ekv_rpc_respond(ekv_app_t *app, uint64_t peer_id, uint64_t id, uint32_t status,
                     uint32_t error_code, const void *body, size_t len);
/* New records committed/applied here: run the requests parked on min_seq that are now due. */
void ekv_rpc_exec_on_commit(ekv_app_t *app);
/* Shutdown: answer parked requests (status 0) and close the timer. */
void ekv_rpc_exec_stop(ekv_app_t *app);

#endif
