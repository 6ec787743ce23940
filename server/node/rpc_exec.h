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
/* New records committed/applied here: run the requests parked on min_seq that are now due. */
void ekv_rpc_exec_on_commit(ekv_app_t *app);
/* Shutdown: answer parked requests (status 0) and close the timer. */
void ekv_rpc_exec_stop(ekv_app_t *app);

#endif
