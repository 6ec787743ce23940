/*
 * app.h - the standalone server: one event loop (HTTP, routing, auth, cache hits, JSON),
 * a bounded reader pool for RocksDB reads, and the store's committer thread for writes.
 *
 * Request path: http_conn (parse, limits) -> app_on_headers (route, body limit)
 * -> app_on_request (auth, account check, namespace check) -> handler. A handler answers on
 * the loop (cache hit, catalog read, error) or hands a job to the reader pool / committer and
 * answers from the job's done() callback, which runs on the loop thread.
 */
#ifndef EKV_SERVER_APP_H
#define EKV_SERVER_APP_H

#include "common/workq.h"
#include "server/cache.h"
#include "server/catalog.h"
#include "server/config.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/router.h"
#include "storage/store.h"

#include <stdatomic.h>
#include <uv.h>

struct ekv_repl_primary_s;
struct ekv_repl_replica_s;
typedef struct ekv_edge_s ekv_edge_t;

typedef enum {
    EKV_ROLE_STANDALONE = 0,
    EKV_ROLE_PRIMARY,
    EKV_ROLE_REPLICA,
    EKV_ROLE_EDGE
} ekv_role_t;

/* Replication state of this process (server/node_role.c). Loop thread unless noted. */
typedef struct {
    ekv_role_t role;
    char node_id[64];
    char advertise_url[300];
    ekv_node_state_t st;                /* epoch, history ids, fence (saved in the store) */
    struct ekv_repl_primary_s *primary; /* role primary (also after a promotion) */
    struct ekv_repl_replica_s *replica; /* role replica; role edge: its keys-only stream */
    ekv_edge_t *edge;                   /* role edge: upstreams, single-flight */
    ekv_catalog_t *building;            /* edge: catalog being received in a snapshot */
    int edge_synced;                    /* edge: a catalog snapshot has arrived */
    struct ekv_repl_replica_s *stopping_replica; /* being stopped (promotion, shutdown) */
    int primary_stopped, edge_stopped;
    uv_async_t commit_async; /* committer thread -> loop: new records */
    _Atomic uint64_t committed_seq;
    uv_timer_t probe_timer; /* after a promotion: fence the old primary */
    int probing, promoting, fenced;
    uint64_t fenced_epoch_seen;
    unsigned probe_done_mask; /* --primary addresses that answered a fence probe */
    int probes_in_flight;     /* probe links open (+ the handles closing at stop) */
    void *probes;             /* list of open probe links */
    int stopping;
    void (*stop_done)(void *);
    void *stop_arg;
} ekv_node_t;

typedef struct ekv_app_s {
    uv_loop_t *loop;
    ekv_config_t *cfg;
    ekv_store_t *store;
    ekv_doneq_t doneq;
    ekv_workq_t readers;
    ekv_catalog_t *catalog;
    ekv_cache_t *cache;
    ekv_metrics_t *metrics;
    ekv_http_server_t *http;
    uv_signal_t sigterm, sigint;
    ekv_node_t node;
    int stopping;
    int64_t started_ms;
} ekv_app_t;

/* What a handler gets: the parsed, authenticated call. Valid during the handler call only;
 * async handlers copy what they need. */
typedef struct {
    ekv_app_t *app;
    ekv_req_t *req;
    const ekv_route_t *route;
    ekv_route_params_t params;
    const ekv_token_t *token; /* NULL on routes without auth */
    char account_id[EKV_ID_HEX_LEN + 1];
    /* namespace-scoped routes: */
    const ekv_namespace_t *ns;
    uint8_t nsid[EKV_NSID_LEN];
} ekv_call_t;

typedef void (*ekv_handler_fn)(ekv_call_t *call);

/* Route flags (ekv_route_t.flags). */
enum {
    EKV_RT_NOAUTH = 1u << 0,  /* no authentication (healthz, metrics, test clock) */
    EKV_RT_ACCOUNT = 1u << 1, /* first param is the account id: must be the token's */
    EKV_RT_NS = 1u << 2,      /* second param is a KV namespace id: parsed and looked up */
    EKV_RT_READ = 1u << 3,    /* needs kv:read */
    EKV_RT_WRITE = 1u << 4,   /* needs kv:write */
    EKV_RT_ADMIN = 1u << 5,   /* needs admin */
    EKV_RT_VERIFY = 1u << 6,  /* token verify: bad token -> 401/1000 */
    EKV_RT_ANYROLE = 1u << 7, /* allowed on a replica and before its first sync (promote) */
};

extern const ekv_route_t ekv_routes[];
extern const size_t ekv_nroutes;
/* Compile the table once at start-up; then the compiled router (read-only). */
int ekv_routes_init(void);
const ekv_router_t *ekv_routes_router(void);

/* The operation name Cloudflare puts in front of messages for a route ("get", "list keys"). */
const char *ekv_route_op(const ekv_route_t *r);

/* The HTTP application callbacks (ekv_http_handler_t), also driven by server/rpc_exec.c for
 * requests that arrive from edges over RPC. */
int ekv_app_on_headers(void *ctx, ekv_req_t *req);
void ekv_app_on_request(void *ctx, ekv_req_t *req);
void ekv_app_on_response(void *ctx, ekv_req_t *req, int status, size_t bytes_out);

/* Run `edgekv serve` until SIGTERM/SIGINT. Returns the process exit code. */
int ekv_app_run(ekv_config_t *cfg);

/* Submit a read job to the reader pool; on EBUSY/ESHUTDOWN answers 503 itself and returns
 * nonzero (the job's done() will not run). */
int ekv_app_read_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_job_t *job);
/* Submit a write to the committer; same contract. */
int ekv_app_write_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w);

/* ---- replication roles (server/node_role.c) ---- */

/* Before the store opens: the commit hook's async handle. */
int ekv_node_early_init(ekv_app_t *app);
/* The store's on_commit hook (committer thread). */
void ekv_node_on_commit(void *ctx, uint64_t last_seq);
/* After the store and catalog are loaded: node state (created on first start), then the role's
 * replication side (primary listener, or following a primary). 0 or -1 (logged). */
int ekv_node_start(ekv_app_t *app);
/* Shutdown, after the HTTP server drained: stop replication, close the node's handles. */
void ekv_node_stop(ekv_app_t *app, void (*done)(void *arg), void *arg);
void ekv_node_free(ekv_app_t *app);
/* Request gate by role: a write on a replica (403 naming the primary), on a fenced primary
 * (503), anything but ops routes on a replica that never synced (503). 0, or -1 after
 * answering. */
int ekv_node_gate_or_reply(ekv_app_t *app, ekv_req_t *req, const ekv_route_t *r);
/* Promote this replica (POST /_edgekv/replication/promote): stop following, new epoch and
 * history id (saved), accept writes, listen for replicas, fence the old primary. done(ctx,
 * 0 or error) runs on the loop when finished. Returns 0 (done will run), or EKV_ENOT_REPLICA,
 * EKV_ENOT_SYNCED, EKV_EBUSY (already promoting), EKV_ENOMEM (done will not run). */
int ekv_node_promote(ekv_app_t *app, void (*done)(void *ctx, int rc), void *ctx);
/* 1 when the route changes data (kv:write routes, admin routes other than GET; never the
 * replication endpoints): refused on a replica, relayed to the primary by an edge. */
int ekv_route_is_write(const ekv_req_t *req, const ekv_route_t *r);
/* --sync-replicas: wrap w's completion so the reply waits for replica acks. */
void ekv_node_hold_write(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w);
/* /metrics lines for replication. */
int ekv_node_metrics(ekv_app_t *app, ekv_buf_t *out);

/* kv_api.c helpers shared with the edge (server/edge.c): the decoded key of a value/metadata
 * route (malloc'd; NULL after answering 400/414), and a value reply (body + expiration). */
char *ekv_kv_key_param_or_reply(ekv_call_t *c, size_t *len);
void ekv_kv_send_value(ekv_req_t *req, const char *value, size_t len, int64_t expiration,
                       void (*release)(void *), void *arg);

/* Handlers (server/ops_api.c, account_api.c, ns_api.c, kv_api.c). */
void ekv_h_healthz(ekv_call_t *c);
void ekv_h_metrics(ekv_call_t *c);
void ekv_h_test_clock(ekv_call_t *c);
void ekv_h_accounts_list(ekv_call_t *c);
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
void ekv_h_value_get(ekv_call_t *c);
void ekv_h_value_put(ekv_call_t *c);
void ekv_h_value_delete(ekv_call_t *c);
void ekv_h_metadata_get(ekv_call_t *c);
void ekv_h_keys_list(ekv_call_t *c);
void ekv_h_bulk_put(ekv_call_t *c);
void ekv_h_bulk_delete(ekv_call_t *c);
void ekv_h_bulk_get(ekv_call_t *c);
void ekv_h_repl_status(ekv_call_t *c); /* server/repl_api.c */
void ekv_h_repl_checksum(ekv_call_t *c);
void ekv_h_repl_promote(ekv_call_t *c);

#endif
