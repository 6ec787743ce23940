/*
 * server/node/ - what this process is: its role (standalone, primary, replica, edge), the
 * glue between the API (server/api/) and replication/, and the process lifecycle.
 *
 *   serve.c      `edgekv serve`: start-up, first-run credentials, signals, clean shutdown
 *   config.c     flags and EDGEKV_* variables
 *   role.c       node state at start-up, starting/stopping the role's replication side, the
 *                commit hook, and the role ops table injected into api dispatch
 *   gate.c       what a role refuses (writes on a replica or a fenced primary, calls before
 *                the first sync) and --sync-replicas holds
 *   follower.c   following a primary (replica; an edge's keys-only stream) and the
 *                catalog/cache upkeep of what is applied
 *   promote.c    promotion of a replica and fencing of the old primary
 *   rpc_exec.c   edges' RPC requests run through this node's API path
 *   do/          Durable Object owners across the cluster: the partition table, the
 *                primary's placement and leases, edges as owners, routing calls to owners
 *   admin.c      the replication endpoints (status, checksum, promote)
 *   metrics.c    replication and edge /metrics lines
 *   edge/        the edge role's request path: cache, single-flight fetches, relaying
 *
 * Layering: node/ includes server/api/, server/http/, replication/, storage/, common/;
 * nothing below includes node/. Everything here runs on the loop thread unless noted.
 */
#ifndef EKV_SERVER_NODE_NODE_H
#define EKV_SERVER_NODE_NODE_H

#include "replication/primary.h"
#include "server/api/api.h"
#include "server/node/config.h"
#include "storage/store.h"

#include <jansson.h>
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

/* The role state of this process (app->node). Loop thread unless noted. */
typedef struct ekv_node_s {
    ekv_app_t *app;
    ekv_config_t *cfg;
    ekv_role_t role;
    char node_id[64];
    char advertise_url[300];
    ekv_node_state_t st;                /* epoch, history ids, fence (saved in the store) */
    struct ekv_repl_primary_s *primary; /* role primary (also after a promotion) */
    struct ekv_repl_replica_s *replica; /* role replica; role edge: its keys-only stream */
    struct ekv_repl_auth_s *auth;       /* cluster secret (replication/auth.h); NULL: none */
    ekv_edge_t *edge;                   /* role edge: upstreams, single-flight */
    struct ekv_docl_s *docl;            /* cluster roles: DO partition table, owners, routing */
    struct ekv_coord_s *coord;          /* --coordinator: leader lease, watch, election */
    char coord_primary[300];            /* --coordinator: the primary's link address */
    uint64_t min_epoch;      /* a promotion takes at least this epoch (the election revision) */
    ekv_catalog_t *building; /* edge: catalog being received in a snapshot */
    int edge_synced;         /* edge: a catalog snapshot has arrived */
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

static inline ekv_node_t *ekv_node_of(const ekv_app_t *app)
{
    return (ekv_node_t *)app->node;
}

const char *ekv_role_name(ekv_role_t r);

/* Run `edgekv serve` until SIGTERM/SIGINT (serve.c). Returns the process exit code, or
 * EKV_SERVE_RESTART: the caller runs the same command line again (exec). */
#define EKV_SERVE_RESTART 75
int ekv_serve(ekv_config_t *cfg);
/* Stop cleanly as on SIGTERM, then have ekv_serve return EKV_SERVE_RESTART (a primary that
 * stepped down comes back as a replica). */
void ekv_serve_restart(const char *why);

/* ---- role.c ---- */
/* Before the store opens: the commit hook's async handle; installs the role ops. */
int ekv_node_early_init(ekv_node_t *n, ekv_app_t *app, ekv_config_t *cfg);
/* The store's on_commit hook (committer thread). */
void ekv_node_on_commit(void *ctx, uint64_t last_seq);
/* After the store and catalog are loaded: node state (created on first start), then the role's
 * replication side (primary listener, or following a primary). 0 or -1 (logged). */
int ekv_node_start(ekv_node_t *n);
/* Shutdown, after the HTTP server drained: stop replication, close the node's handles. */
void ekv_node_stop(ekv_node_t *n, void (*done)(void *arg), void *arg);
void ekv_node_free(ekv_node_t *n);
/* The link listener options every role shares (auth, ids, timeouts, RPC requests run by
 * rpc_exec.c); the caller sets store, host, port and the rest. */
void ekv_node_listener_opts(ekv_node_t *n, ekv_repl_primary_opts_t *o);
/* Listen for replicas and edges (edge_only: edges only, a replica's port). 0 or -1. */
int ekv_node_start_primary(ekv_node_t *n, int edge_only);
/* Save the node state off the loop; then(n, rc, ctx) runs on the loop (may be NULL). */
void ekv_node_save_async(ekv_node_t *n, const ekv_node_state_t *st,
                         void (*then)(ekv_node_t *n, int rc, void *ctx), void *ctx);

/* ---- gate.c (role ops) ---- */
int ekv_node_gate_or_reply(ekv_app_t *app, ekv_req_t *req, const ekv_route_t *r);
/* --coordinator: this node may not acknowledge writes now (no valid primary lease). 0 on
 * every node without a coordinator. */
int ekv_node_lease_lapsed(const ekv_node_t *n);
void ekv_node_hold_write(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w);

/* ---- follower.c ---- */
int ekv_node_start_replica(ekv_node_t *n);
int ekv_node_start_edge(ekv_node_t *n);

/* ---- promote.c ---- */
/* The primary side saw a newer epoch (ekv_repl_primary_opts_t.on_fenced). */
void ekv_node_on_fenced(void *ctx, uint64_t epoch, const char *by);
/* Promote this replica (POST /_edgekv/replication/promote): stop following, new epoch and
 * history id (saved), accept writes, listen for replicas, fence the old primary. done(ctx,
 * 0 or error) runs on the loop when finished. Returns 0 (done will run), or EKV_ENOT_REPLICA,
 * EKV_ENOT_SYNCED, EKV_EBUSY (already promoting), EKV_ENOMEM (done will not run). */
int ekv_node_promote(ekv_node_t *n, void (*done)(void *ctx, int rc), void *ctx);
/* Shutdown: close the fence probes' links. */
void ekv_node_close_probes(ekv_node_t *n);
/* A probe link or the probe timer closed (counts down to the node's stop). */
void ekv_node_handle_closed(uv_handle_t *h);

/* ---- do/ (Durable Object owners across the cluster, server/node/do/docl.h) ---- */
/* Role op route_do: answer a DO call here, forward it to its owner, or park it. */
int ekv_node_route_do(ekv_call_t *c);
/* Start the Durable Object runtime here (standalone, primary, a promoted replica). 0/-1. */
int ekv_node_start_do(ekv_node_t *n);
/* The cluster state of a primary, replica or edge (an edge becomes an owner). 0/-1. */
int ekv_node_do_cluster_start(ekv_node_t *n);
/* The primary's placement (start-up, promotion): before ekv_node_start_do. 0/-1. */
int ekv_node_do_placement_start(ekv_node_t *n);
void ekv_node_do_cluster_stop(ekv_node_t *n);
/* An owner's graceful leave (SIGTERM): done(arg) once the primary knows, or after 1 s. */
void ekv_node_do_leave(ekv_node_t *n, void (*done)(void *arg), void *arg);
/* An internal owner call (rpc_exec.c, method EKV_DO_RPC_METHOD); takes f. */
struct Edgekv__Frame;
void ekv_node_do_internal(ekv_app_t *app, uint64_t peer_id, struct Edgekv__Frame *f);
/* The change stream's DO records and an edge's catalog snapshot entries (follower.c). */
struct Edgekv__KeyChange;
void ekv_node_do_applied(ekv_node_t *n, const struct Edgekv__KeyChange *r);
void ekv_node_do_catalog_entry(ekv_node_t *n, const char *key, size_t klen, const char *val,
                               size_t vlen);
/* Status, the do-owner endpoint, /metrics (status.c). */
json_t *ekv_node_do_status_json(ekv_node_t *n);
void ekv_node_do_owner_call(ekv_call_t *c);
int ekv_node_do_metrics(ekv_node_t *n, ekv_buf_t *out);

/* ---- admin.c, metrics.c (role ops) ---- */
void ekv_node_cluster_call(ekv_call_t *c);
int ekv_node_metrics(ekv_app_t *app, ekv_buf_t *out);

#endif
