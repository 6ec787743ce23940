/*
 * rpc_client.h - an edge's persistent, multiplexed RPC link to one upstream (a primary or a
 * replica): Request frames out, Response frames back matched by id, many in flight.
 *
 * The client keeps the link up by itself (connect, Hello{role EDGE}, backoff 100 ms .. 2 s on
 * failure) and sends a Heartbeat when idle so both sides see a dead link within timeout_ms.
 * Calls never wait for a connection: when the link is not up, the call fails at once with
 * EKV_EUPSTREAM (fail fast; the caller tries another upstream or answers 503).
 *
 * Every call completes exactly once, on the loop: cb(ctx, 0, resp) with the Response (owned
 * by the callee: valid during the callback only), or cb(ctx, err, NULL) with EKV_EUPSTREAM
 * (link down or lost with the call in flight), EKV_ETIMEOUT (no answer within timeout_ms) or
 * EKV_EBUSY (max_inflight calls already in flight). Loop thread only.
 */
#ifndef EKV_REPLICATION_RPC_CLIENT_H
#define EKV_REPLICATION_RPC_CLIENT_H

#include "repl.pb-c.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ekv_rpc_client_s ekv_rpc_client_t;

typedef void (*ekv_rpc_cb)(void *ctx, int status, const Edgekv__Response *resp);

typedef struct {
    uv_loop_t *loop;
    const char *host;
    int port;
    /* The cluster secret (auth.h), proved on every link; borrowed. NULL = none (tests). */
    struct ekv_repl_auth_s *auth;
    const char *node_id; /* ours, for the peer's logs */
    int timeout_ms;      /* per call (default 5000) */
    int link_timeout_ms; /* a link silent this long (or without handshake) is dropped (10000) */
    int heartbeat_ms;    /* keepalive on an idle link (default 1000) */
    size_t max_inflight; /* default 4096 */
} ekv_rpc_client_opts_t;

int ekv_rpc_client_start(ekv_rpc_client_t **out, const ekv_rpc_client_opts_t *o);
/* Point the client at another upstream (the coordinator named a new primary): the link,
 * if any, is closed (its calls fail with EKV_EUPSTREAM) and the next one goes to host:port
 * at once. Same address: nothing happens. 0 or EKV_EBAD_REQUEST. */
int ekv_rpc_client_set_addr(ekv_rpc_client_t *c, const char *host, int port);
/* 1 when the link is up (handshake done). */
int ekv_rpc_client_ready(const ekv_rpc_client_t *c);
/* "host:port". */
const char *ekv_rpc_client_addr(const ekv_rpc_client_t *c);
/* The upstream's change-log seq from its last Response or Heartbeat. */
uint64_t ekv_rpc_client_seq(const ekv_rpc_client_t *c);
/* Send req (req->id is assigned here; the request is encoded at once, so it need not stay
 * valid). 0 (cb will run), or an error with cb NOT called: EKV_EUPSTREAM (link not up),
 * EKV_EBUSY (max_inflight), EKV_ETOO_LARGE (the request does not fit in one frame,
 * EKV_REPL_MAX_FRAME: the link stays up), EKV_ENOMEM. */
int ekv_rpc_call(ekv_rpc_client_t *c, Edgekv__Request *req, ekv_rpc_cb cb, void *ctx);

typedef struct {
    uint64_t calls, ok, failed_fast, timeouts, lost, connects;
    size_t inflight;
} ekv_rpc_stats_t;
void ekv_rpc_client_stats(const ekv_rpc_client_t *c, ekv_rpc_stats_t *out);

/* Fail every call in flight (EKV_EUPSTREAM), close the link; done runs when closed. */
void ekv_rpc_client_stop(ekv_rpc_client_t *c, void (*done)(void *arg), void *arg);
void ekv_rpc_client_free(ekv_rpc_client_t *c);

#endif
