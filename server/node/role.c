/*
 * role.c - what this process is in a replicated deployment (docs/REPLICATION.md): the node
 * state at start-up, the role's replication side (the primary's listener and the commit hook
 * that wakes it; followers are in follower.c), its clean stop, and the role ops table that
 * dispatch (server/api/) calls for everything that depends on the role.
 */
#include "server/node/node.h"
#include "server/api/do/do.h"
#include "server/api/auth.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/auth.h"
#include "replication/primary.h"
#include "replication/replica.h"
#include "server/node/coord/coord.h"
#include "server/node/do/docl.h"
#include "server/node/edge/edge.h"
#include "server/node/rpc_exec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ekv_role_name(ekv_role_t r)
{
    return r == EKV_ROLE_PRIMARY   ? "primary"
           : r == EKV_ROLE_REPLICA ? "replica"
           : r == EKV_ROLE_EDGE    ? "edge"
                                   : "standalone";
}

/* ---------------------------------------------------------------- role ops */

static const ekv_role_ops_t data_node_ops = {
    .gate = ekv_node_gate_or_reply,
    .relay = NULL,
    .hold_write = ekv_node_hold_write,
    .route_do = ekv_node_route_do,
    .cluster = ekv_node_cluster_call,
    .metrics = ekv_node_metrics,
};

static const ekv_role_ops_t edge_ops = {
    .gate = ekv_node_gate_or_reply,
    .relay = ekv_edge_handle,
    .hold_write = NULL,
    .route_do = ekv_node_route_do,
    .cluster = ekv_node_cluster_call,
    .metrics = ekv_node_metrics,
};

/* ---------------------------------------------------------------- commit hook */

static void on_commit_async(uv_async_t *h)
{
    ekv_node_t *n = h->data;
    if (n->primary)
        ekv_repl_primary_notify(n->primary, atomic_load(&n->committed_seq));
    ekv_rpc_exec_on_commit(n->app); /* edges' reads parked on min_seq */
}

int ekv_node_early_init(ekv_node_t *n, ekv_app_t *app, ekv_config_t *cfg)
{
    n->app = app;
    n->cfg = cfg;
    n->role = !strcmp(cfg->role, "primary")   ? EKV_ROLE_PRIMARY
              : !strcmp(cfg->role, "replica") ? EKV_ROLE_REPLICA
              : !strcmp(cfg->role, "edge")    ? EKV_ROLE_EDGE
                                              : EKV_ROLE_STANDALONE;
    app->node = n;
    app->role = n->role == EKV_ROLE_EDGE ? &edge_ops : &data_node_ops;
    n->commit_async.data = n;
    return uv_async_init(app->loop, &n->commit_async, on_commit_async) ? -1 : 0;
}

void ekv_node_on_commit(void *ctx, uint64_t last_seq)
{
    ekv_node_t *n = ctx;
    atomic_store(&n->committed_seq, last_seq);
    uv_async_send(&n->commit_async);
}

/* ---------------------------------------------------------------- saving node state */

typedef struct {
    ekv_job_t job;
    ekv_node_t *node;
    ekv_node_state_t st;
    int rc;
    void (*then)(ekv_node_t *n, int rc, void *ctx);
    void *ctx;
} save_job_t;

static void save_work(ekv_job_t *job)
{
    save_job_t *j = (save_job_t *)job;
    j->rc = ekv_store_node_save(j->node->app->store, &j->st);
}

static void save_done(ekv_job_t *job)
{
    save_job_t *j = (save_job_t *)job;
    if (j->rc)
        ekv_log_error("cannot save the node state", "err=%s", ekv_err_name(j->rc));
    if (j->then)
        j->then(j->node, j->rc, j->ctx);
    free(j);
}

void ekv_node_save_async(ekv_node_t *n, const ekv_node_state_t *st,
                         void (*then)(ekv_node_t *, int, void *), void *ctx)
{
    save_job_t *j = calloc(1, sizeof(*j));
    int rc = j ? 0 : EKV_ENOMEM;
    if (j) {
        j->job.work = save_work;
        j->job.done = save_done;
        j->node = n;
        j->st = *st;
        j->then = then;
        j->ctx = ctx;
        rc = ekv_workq_submit(&n->app->readers, &j->job);
    }
    if (rc) {
        free(j);
        ekv_log_error("cannot queue the node state save", "err=%s", ekv_err_name(rc));
        if (then)
            then(n, rc, ctx);
    }
}

/* ---------------------------------------------------------------- primary */

void ekv_node_listener_opts(ekv_node_t *n, ekv_repl_primary_opts_t *o)
{
    ekv_config_t *cfg = n->cfg;
    memset(o, 0, sizeof(*o));
    o->loop = n->app->loop;
    o->auth = n->auth;
    o->node_id = n->node_id;
    o->advertise_url = n->advertise_url;
    o->node = &n->st;
    o->heartbeat_ms = (int)cfg->repl_heartbeat_ms;
    o->timeout_ms = (int)cfg->repl_timeout_ms;
    o->rpc_send_queue_max = (size_t)cfg->repl_send_queue_mb << 20;
    o->on_request = ekv_rpc_exec;
    o->ctx = n->app;
}

int ekv_node_start_primary(ekv_node_t *n, int edge_only)
{
    ekv_app_t *app = n->app;
    ekv_config_t *cfg = n->cfg;
    ekv_repl_primary_opts_t o;
    ekv_node_listener_opts(n, &o);
    o.store = app->store;
    o.host = cfg->repl_host;
    o.port = cfg->repl_port;
    o.max_lag_ms = (int)cfg->repl_max_lag_ms;
    o.on_fenced = ekv_node_on_fenced;
    o.fenced = n->fenced;
    o.edge_only = edge_only;
    if (ekv_repl_primary_start(&n->primary, &o)) {
        n->primary = NULL;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- start / stop */

int ekv_node_start(ekv_node_t *n)
{
    ekv_app_t *app = n->app;
    ekv_config_t *cfg = n->cfg;
    if (cfg->node_id[0])
        snprintf(n->node_id, sizeof(n->node_id), "%s", cfg->node_id);
    else
        snprintf(n->node_id, sizeof(n->node_id), "edgekv-%d", ekv_http_server_port(app->http));
    if (cfg->advertise_url[0])
        snprintf(n->advertise_url, sizeof(n->advertise_url), "%s", cfg->advertise_url);
    else
        snprintf(n->advertise_url, sizeof(n->advertise_url), "http://%s:%d", cfg->host,
                 ekv_http_server_port(app->http));
    uv_timer_init(app->loop, &n->probe_timer);
    n->probe_timer.data = n;
    if (cfg->cluster_secret_len &&
        ekv_repl_auth_new(&n->auth, cfg->cluster_secret, cfg->cluster_secret_len))
        return -1;
    if (n->role == EKV_ROLE_EDGE) /* and an owner of Durable Objects */
        return ekv_node_start_edge(n) || ekv_node_do_cluster_start(n) ? -1 : 0;

    /* start-up: blocking store calls are fine here (nothing is served yet) */
    if (ekv_store_node_load(app->store, &n->st))
        return -1;
    int dirty = 0;
    if (n->st.epoch == 0) {
        n->st.epoch = 1;
        dirty = 1;
    }
    if (n->role == EKV_ROLE_PRIMARY && n->min_epoch > n->st.epoch) {
        n->st.epoch = n->min_epoch; /* elected through the coordinator at start-up */
        dirty = 1;
    }
    if (n->role != EKV_ROLE_REPLICA && !n->st.history_id[0]) {
        if (ekv_random_id(n->st.history_id))
            return -1;
        dirty = 1;
    }
    if (dirty && ekv_store_node_save(app->store, &n->st))
        return -1;
    if (n->role != EKV_ROLE_REPLICA && n->st.fenced_epoch > n->st.epoch) {
        n->fenced = 1;
        ekv_log_warn("this node was fenced: writes are refused",
                     "epoch=%" PRIu64 " newer_epoch=%" PRIu64
                     " new_primary=%s hint=\"restart it with --role "
                     "replica --primary <the new primary>\"",
                     n->st.epoch, n->st.fenced_epoch, n->st.fenced_by[0] ? n->st.fenced_by : "-");
    }
    ekv_log_info("node", "node_id=%s role=%s epoch=%" PRIu64 " history_id=%s last_seq=%" PRIu64,
                 n->node_id, cfg->role, n->st.epoch, n->st.history_id[0] ? n->st.history_id : "-",
                 app->store ? ekv_store_last_seq(app->store) : 0);
    if (n->role == EKV_ROLE_PRIMARY) {
        if (ekv_node_do_cluster_start(n) || (!n->fenced && ekv_node_do_placement_start(n)))
            return -1;
        return ekv_node_start_primary(n, 0);
    }
    if (n->role == EKV_ROLE_REPLICA) { /* its --repl-listen serves edges (reads, change stream) */
        if (ekv_node_do_cluster_start(n) || ekv_node_start_replica(n) ||
            (cfg->repl_port >= 0 && ekv_node_start_primary(n, 1)))
            return -1;
    }
    return 0;
}

void ekv_node_handle_closed(uv_handle_t *h)
{
    ekv_node_t *n = h->data;
    if (--n->probes_in_flight > 0 || !n->stop_done)
        return;
    void (*done)(void *) = n->stop_done;
    n->stop_done = NULL;
    done(n->stop_arg);
}

static void node_stop_step(void *arg)
{
    ekv_node_t *n = arg;
    if (n->coord) { /* first: release the leases, so the others elect at once */
        ekv_coord_stop(n->coord, node_stop_step, n);
        return;
    }
    if (n->replica) {
        ekv_repl_replica_t *r = n->replica;
        n->replica = NULL;
        n->stopping_replica = r;
        ekv_repl_replica_stop(r, node_stop_step, n);
        return;
    }
    if (n->edge && !n->edge_stopped) {
        n->edge_stopped = 1;
        ekv_edge_stop(n->edge, node_stop_step, n);
        return;
    }
    if (n->primary && !n->primary_stopped) {
        n->primary_stopped = 1;
        ekv_rpc_exec_stop(n->app);
        ekv_repl_primary_stop(n->primary, node_stop_step, n);
        return;
    }
    /* the last handles: the commit async and the probe timer (+ 1 so the count ends at 0) */
    n->probes_in_flight += 2;
    n->commit_async.data = n;
    uv_close((uv_handle_t *)&n->probe_timer, ekv_node_handle_closed);
    uv_close((uv_handle_t *)&n->commit_async, ekv_node_handle_closed);
}

int ekv_node_start_do(ekv_node_t *n)
{
    ekv_do_opts_t o = {0};
    o.call_wait_ms = (int)n->cfg->do_call_wait_ms;
    o.call_timeout_ms = (int)n->cfg->do_call_timeout_ms;
    o.call_queue_max = (size_t)n->cfg->do_call_queue;
    o.alarm_retry_base_ms = (int)n->cfg->do_alarm_retry_base_ms;
    if (n->docl && n->docl->placing) { /* a cluster: the primary serves what it owns */
        o.cluster.ctx = n->docl;
        o.cluster.here = ekv__docl_here;
        o.cluster.epoch = ekv__docl_epoch;
    }
    int rc = ekv_do_start(n->app, &o);
    if (rc)
        ekv_log_error("cannot start durable objects", "err=%s", ekv_err_name(rc));
    return rc ? -1 : 0;
}

void ekv_node_stop(ekv_node_t *n, void (*done)(void *arg), void *arg)
{
    n->stopping = 1;
    n->probing = 0;
    uv_timer_stop(&n->probe_timer);
    n->stop_done = done;
    n->stop_arg = arg;
    ekv_node_close_probes(n);
    ekv_node_do_cluster_stop(n);
    node_stop_step(n);
}

void ekv_node_free(ekv_node_t *n)
{
    ekv_edge_free(n->edge);
    ekv_catalog_free(n->building);
    ekv_repl_replica_free(n->stopping_replica);
    ekv_repl_primary_free(n->primary);
    ekv_repl_auth_free(n->auth);
    n->auth = NULL;
}
