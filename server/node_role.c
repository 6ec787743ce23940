/*
 * node_role.c - what this process is in a replicated deployment, and the glue between the
 * HTTP application and replication/: node state at start-up, the primary's listener and the
 * commit hook that wakes it, the replica's follower and the cache/catalog upkeep of applied
 * records, the request gate by role, --sync-replicas holds, promotion and fencing.
 * docs/REPLICATION.md has the design; the replication/ headers the protocol state machines.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/link.h"
#include "replication/primary.h"
#include "replication/replica.h"
#include "server/app.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/edge.h"
#include "server/reply.h"
#include "server/rpc_exec.h"

#include <inttypes.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_EVERY_MS 1000
#define MAX_PROBES     16

/* A fence probe: a short link to an old primary's replication port (see on_probe_timer). */
typedef struct probe_s {
    ekv_repl_link_t link; /* first */
    ekv_app_t *app;
    int idx;
    struct probe_s *next, *prev;
} probe_t;

/* ---------------------------------------------------------------- commit hook */

static void on_commit_async(uv_async_t *h)
{
    ekv_app_t *app = h->data;
    if (app->node.primary)
        ekv_repl_primary_notify(app->node.primary, atomic_load(&app->node.committed_seq));
    ekv_rpc_exec_on_commit(app); /* edges' reads parked on min_seq */
}

int ekv_node_early_init(ekv_app_t *app)
{
    app->node.commit_async.data = app;
    return uv_async_init(app->loop, &app->node.commit_async, on_commit_async) ? -1 : 0;
}

void ekv_node_on_commit(void *ctx, uint64_t last_seq)
{
    ekv_app_t *app = ctx;
    atomic_store(&app->node.committed_seq, last_seq);
    uv_async_send(&app->node.commit_async);
}

/* ---------------------------------------------------------------- saving node state */

typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    ekv_node_state_t st;
    int rc;
    void (*then)(ekv_app_t *app, int rc, void *ctx);
    void *ctx;
} save_job_t;

static void save_work(ekv_job_t *job)
{
    save_job_t *j = (save_job_t *)job;
    j->rc = ekv_store_node_save(j->app->store, &j->st);
}

static void save_done(ekv_job_t *job)
{
    save_job_t *j = (save_job_t *)job;
    if (j->rc)
        ekv_log_error("cannot save the node state", "err=%s", ekv_err_name(j->rc));
    if (j->then)
        j->then(j->app, j->rc, j->ctx);
    free(j);
}

/* Save st off the loop; then(app, rc, ctx) runs on the loop afterwards (may be NULL). */
static void save_async(ekv_app_t *app, const ekv_node_state_t *st,
                       void (*then)(ekv_app_t *, int, void *), void *ctx)
{
    save_job_t *j = calloc(1, sizeof(*j));
    int rc = j ? 0 : EKV_ENOMEM;
    if (j) {
        j->job.work = save_work;
        j->job.done = save_done;
        j->app = app;
        j->st = *st;
        j->then = then;
        j->ctx = ctx;
        rc = ekv_workq_submit(&app->readers, &j->job);
    }
    if (rc) {
        free(j);
        ekv_log_error("cannot queue the node state save", "err=%s", ekv_err_name(rc));
        if (then)
            then(app, rc, ctx);
    }
}

/* ---------------------------------------------------------------- primary */

static void on_fenced(void *ctx, uint64_t epoch, const char *by)
{
    ekv_app_t *app = ctx;
    ekv_node_t *n = &app->node;
    n->fenced = 1;
    n->fenced_epoch_seen = epoch;
    n->probing = 0;
    uv_timer_stop(&n->probe_timer);
    n->st.fenced_epoch = epoch;
    snprintf(n->st.fenced_by, sizeof(n->st.fenced_by), "%s", by);
    ekv_log_warn("this primary is fenced: writes are refused",
                 "epoch=%" PRIu64 " new_primary=%s "
                 "hint=\"restart it with --role replica --primary <the new primary>\"",
                 epoch, by);
    save_async(app, &n->st, NULL, NULL);
}

static int start_primary(ekv_app_t *app, int edge_only)
{
    ekv_node_t *n = &app->node;
    ekv_config_t *cfg = app->cfg;
    ekv_repl_primary_opts_t o = {0};
    o.loop = app->loop;
    o.store = app->store;
    o.host = cfg->repl_host;
    o.port = cfg->repl_port;
    o.node_id = n->node_id;
    o.advertise_url = n->advertise_url;
    o.node = &n->st;
    o.heartbeat_ms = (int)cfg->repl_heartbeat_ms;
    o.timeout_ms = (int)cfg->repl_timeout_ms;
    o.max_lag_ms = (int)cfg->repl_max_lag_ms;
    o.on_fenced = on_fenced;
    o.ctx = app;
    o.fenced = n->fenced;
    o.edge_only = edge_only;
    o.on_request = ekv_rpc_exec;
    if (ekv_repl_primary_start(&n->primary, &o)) {
        n->primary = NULL;
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- replica */

static void on_applied(void *ctx, Edgekv__KeyChange *const *recs, size_t nrecs)
{
    ekv_app_t *app = ctx;
    for (size_t i = 0; i < nrecs; i++) {
        const Edgekv__KeyChange *r = recs[i];
        char nshex[EKV_ID_HEX_LEN + 1] = "";
        if (r->namespace_id.len == EKV_NSID_LEN)
            ekv_hex_encode(r->namespace_id.data, EKV_NSID_LEN, nshex);
        switch (r->op) {
        case EDGEKV__CHANGE_OP__KV_PUT:
        case EDGEKV__CHANGE_OP__KV_DELETE:
        case EDGEKV__CHANGE_OP__KV_EXPIRE:
            if (r->namespace_id.len == EKV_NSID_LEN) {
                ekv_cache_invalidate(app->cache, r->namespace_id.data, (const char *)r->key.data,
                                     r->key.len);
                if (app->node.edge)
                    ekv_edge_invalidated(app->node.edge, r->namespace_id.data,
                                         (const char *)r->key.data, r->key.len);
            }
            break;
        case EDGEKV__CHANGE_OP__NS_CREATE:
        case EDGEKV__CHANGE_OP__NS_RENAME: {
            ekv_namespace_t ns;
            memset(&ns, 0, sizeof(ns));
            const ekv_namespace_t *old =
                ekv_catalog_find_ns(app->catalog, r->account_id ? r->account_id : "", nshex);
            snprintf(ns.id, sizeof(ns.id), "%s", nshex);
            snprintf(ns.account_id, sizeof(ns.account_id), "%s",
                     r->account_id ? r->account_id : "");
            snprintf(ns.title, sizeof(ns.title), "%s", r->title ? r->title : "");
            ns.created_ms = old ? old->created_ms : r->created_ms;
            ekv_catalog_put_ns(app->catalog, &ns);
            break;
        }
        case EDGEKV__CHANGE_OP__NS_DELETE:
            ekv_catalog_remove_ns(app->catalog, nshex);
            if (r->namespace_id.len == EKV_NSID_LEN) {
                ekv_cache_invalidate_ns(app->cache, r->namespace_id.data);
                if (app->node.edge)
                    ekv_edge_invalidated(app->node.edge, r->namespace_id.data, NULL, 0);
            }
            break;
        case EDGEKV__CHANGE_OP__ACCOUNT_CREATE: {
            ekv_account_t a;
            memset(&a, 0, sizeof(a));
            snprintf(a.id, sizeof(a.id), "%s", r->account_id ? r->account_id : "");
            snprintf(a.name, sizeof(a.name), "%s", r->title ? r->title : "");
            a.created_ms = r->created_ms;
            ekv_catalog_put_account(app->catalog, &a);
            break;
        }
        case EDGEKV__CHANGE_OP__TOKEN_CREATE: {
            ekv_token_t t;
            memset(&t, 0, sizeof(t));
            snprintf(t.hash, sizeof(t.hash), "%s", r->token_hash ? r->token_hash : "");
            snprintf(t.id, sizeof(t.id), "%s", r->token_id ? r->token_id : "");
            snprintf(t.account_id, sizeof(t.account_id), "%s", r->account_id ? r->account_id : "");
            snprintf(t.name, sizeof(t.name), "%s", r->title ? r->title : "");
            t.perms = r->perms;
            t.created_ms = r->created_ms;
            ekv_catalog_put_token(app->catalog, &t);
            break;
        }
        case EDGEKV__CHANGE_OP__TOKEN_REVOKE:
            if (r->token_hash)
                ekv_catalog_remove_token(app->catalog, r->token_hash);
            break;
        default:
            break;
        }
    }
}

/* The follower's applied seq moved: an edge releases catalog replies waiting for its stream;
 * a replica runs edges' reads parked on min_seq. */
static void on_progress(void *ctx)
{
    ekv_app_t *app = ctx;
    if (app->node.edge)
        ekv_edge_on_stream(app->node.edge);
    else
        ekv_rpc_exec_on_commit(app);
}

/* Apply thread, after a snapshot ingest: the whole catalog comes from the store again. */
static void *after_ingest_work(void *ctx)
{
    ekv_app_t *app = ctx;
    ekv_catalog_t *cat = ekv_catalog_new();
    if (cat && ekv_catalog_load(cat, app->store)) {
        ekv_catalog_free(cat);
        cat = NULL;
    }
    return cat;
}

static void after_ingest_done(void *ctx, void *loaded)
{
    ekv_app_t *app = ctx;
    ekv_cache_clear(app->cache);
    if (!loaded) {
        ekv_log_error("cannot reload the catalog after a snapshot", "%s", "");
        return;
    }
    ekv_catalog_free(app->catalog);
    app->catalog = loaded;
}

/* Start following (a replica, or an edge's keys-only stream) with the options every follower
 * shares; o holds the role-specific ones. */
static int start_follower(ekv_app_t *app, ekv_repl_replica_opts_t *o)
{
    ekv_node_t *n = &app->node;
    o->loop = app->loop;
    o->node_id = n->node_id;
    o->heartbeat_ms = (int)app->cfg->repl_heartbeat_ms;
    o->timeout_ms = (int)app->cfg->repl_timeout_ms;
    o->node = &n->st;
    o->ctx = app;
    o->on_applied = on_applied;
    o->on_progress = on_progress;
    if (ekv_repl_replica_start(&n->replica, o)) {
        n->replica = NULL;
        return -1;
    }
    return 0;
}

static int start_replica(ekv_app_t *app)
{
    ekv_repl_replica_opts_t o = {0};
    o.store = app->store;
    o.primaries = app->cfg->primary;
    o.after_ingest_work = after_ingest_work;
    o.after_ingest_done = after_ingest_done;
    return start_follower(app, &o);
}

/* ---------------------------------------------------------------- edge */

static void edge_catalog_begin(void *ctx)
{
    ekv_app_t *app = ctx;
    ekv_catalog_free(app->node.building);
    app->node.building = ekv_catalog_new();
}

static void edge_catalog_entry(void *ctx, const char *key, size_t klen, const char *val,
                               size_t vlen)
{
    ekv_app_t *app = ctx;
    if (app->node.building)
        ekv_catalog_add_entry(app->node.building, key, klen, val, vlen);
}

static void edge_catalog_done(void *ctx, void *unused)
{
    ekv_app_t *app = ctx;
    (void)unused;
    ekv_cache_clear(app->cache); /* nothing cached can be verified against the new history */
    if (app->node.edge)
        ekv_edge_invalidated(app->node.edge, NULL, NULL, 0);
    if (!app->node.building) {
        ekv_log_error("edge catalog snapshot lost (out of memory)", "%s", "");
        return;
    }
    ekv_catalog_free(app->catalog);
    app->catalog = app->node.building;
    app->node.building = NULL;
    app->node.edge_synced = 1;
    if (app->node.edge)
        ekv_edge_on_stream(app->node.edge);
    ekv_log_info("edge catalog loaded", "accounts=%zu tokens=%zu",
                 ekv_catalog_account_count(app->catalog), ekv_catalog_token_count(app->catalog));
}

/* An edge: RPC links to every upstream, and one keys-only change stream followed from the
 * replicas first (then the primary): catalog + cache invalidation. */
static int start_edge(ekv_app_t *app)
{
    ekv_node_t *n = &app->node;
    if (ekv_edge_start(app))
        return -1;
    char candidates[4096]; /* parsed by the follower at start */
    snprintf(candidates, sizeof(candidates), "%s%s%s", app->cfg->replicas,
             app->cfg->replicas[0] ? "," : "", app->cfg->primary);
    ekv_repl_replica_opts_t o = {0};
    o.primaries = candidates;
    o.after_ingest_done = edge_catalog_done;
    o.keys_only = 1;
    o.on_catalog_begin = edge_catalog_begin;
    o.on_catalog_entry = edge_catalog_entry;
    if (start_follower(app, &o))
        return -1;
    ekv_log_info("node", "node_id=%s role=edge stream_from=\"%s\"", n->node_id, candidates);
    return 0;
}

/* ---------------------------------------------------------------- start / stop */

int ekv_node_start(ekv_app_t *app)
{
    ekv_node_t *n = &app->node;
    ekv_config_t *cfg = app->cfg;
    n->role = !strcmp(cfg->role, "primary")   ? EKV_ROLE_PRIMARY
              : !strcmp(cfg->role, "replica") ? EKV_ROLE_REPLICA
              : !strcmp(cfg->role, "edge")    ? EKV_ROLE_EDGE
                                              : EKV_ROLE_STANDALONE;
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
    n->probe_timer.data = app;
    if (n->role == EKV_ROLE_EDGE)
        return start_edge(app);

    /* start-up: blocking store calls are fine here (nothing is served yet) */
    if (ekv_store_node_load(app->store, &n->st))
        return -1;
    int dirty = 0;
    if (n->st.epoch == 0) {
        n->st.epoch = 1;
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
    if (n->role == EKV_ROLE_PRIMARY)
        return start_primary(app, 0);
    if (n->role == EKV_ROLE_REPLICA) /* its --repl-listen serves edges (reads, change stream) */
        return start_replica(app) || (cfg->repl_port >= 0 && start_primary(app, 1)) ? -1 : 0;
    return 0;
}

static void node_handle_closed(uv_handle_t *h)
{
    ekv_app_t *app = h->data;
    ekv_node_t *n = &app->node;
    if (--n->probes_in_flight > 0 || !n->stop_done)
        return;
    void (*done)(void *) = n->stop_done;
    n->stop_done = NULL;
    done(n->stop_arg);
}

static void node_stop_step(void *arg)
{
    ekv_app_t *app = arg;
    ekv_node_t *n = &app->node;
    if (n->replica) {
        ekv_repl_replica_t *r = n->replica;
        n->replica = NULL;
        n->stopping_replica = r;
        ekv_repl_replica_stop(r, node_stop_step, app);
        return;
    }
    if (n->edge && !n->edge_stopped) {
        n->edge_stopped = 1;
        ekv_edge_stop(n->edge, node_stop_step, app);
        return;
    }
    if (n->primary && !n->primary_stopped) {
        n->primary_stopped = 1;
        ekv_rpc_exec_stop(app);
        ekv_repl_primary_stop(n->primary, node_stop_step, app);
        return;
    }
    /* the last handles: the commit async and the probe timer (+ 1 so the count ends at 0) */
    n->probes_in_flight += 2;
    uv_close((uv_handle_t *)&n->probe_timer, node_handle_closed);
    uv_close((uv_handle_t *)&n->commit_async, node_handle_closed);
}

void ekv_node_stop(ekv_app_t *app, void (*done)(void *arg), void *arg)
{
    ekv_node_t *n = &app->node;
    n->stopping = 1;
    n->probing = 0;
    uv_timer_stop(&n->probe_timer);
    n->stop_done = done;
    n->stop_arg = arg;
    for (probe_t *pr = n->probes; pr; pr = pr->next)
        ekv_repl_link_close(&pr->link, 0, 0, "shutting down");
    node_stop_step(app);
}

void ekv_node_free(ekv_app_t *app)
{
    ekv_edge_free(app->node.edge);
    ekv_catalog_free(app->node.building);
    ekv_repl_replica_free(app->node.stopping_replica);
    ekv_repl_primary_free(app->node.primary);
}

/* ---------------------------------------------------------------- gate, holds */

int ekv_route_is_write(const ekv_req_t *req, const ekv_route_t *r)
{
    if (r->flags & EKV_RT_ANYROLE)
        return 0;
    if (r->flags & EKV_RT_WRITE)
        return 1;
    return (r->flags & EKV_RT_ADMIN) && req->method != HTTP_GET;
}

int ekv_node_gate_or_reply(ekv_app_t *app, ekv_req_t *req, const ekv_route_t *r)
{
    ekv_node_t *n = &app->node;
    if (n->role == EKV_ROLE_STANDALONE && !n->fenced)
        return 0;
    if (n->role == EKV_ROLE_EDGE) {
        if (!n->edge_synced && !(r->flags & (EKV_RT_NOAUTH | EKV_RT_ANYROLE))) {
            ekv_reply_error(req, EKV_ENOT_SYNCED,
                            "this edge has not received the catalog from an upstream yet "
                            "(see GET /_edgekv/replication/status)");
            return -1;
        }
        return 0; /* writes are forwarded to the primary */
    }
    if (n->role == EKV_ROLE_REPLICA && !(r->flags & (EKV_RT_NOAUTH | EKV_RT_ANYROLE)) &&
        (!n->st.history_id[0] || ekv_store_ingest_pending(app->store))) {
        ekv_reply_error(req, EKV_ENOT_SYNCED,
                        "this replica has not completed its first sync with a primary yet "
                        "(see GET /_edgekv/replication/status)");
        return -1;
    }
    if (!ekv_route_is_write(req, r))
        return 0;
    if (n->role == EKV_ROLE_REPLICA) {
        ekv_repl_replica_info_t ri;
        memset(&ri, 0, sizeof(ri));
        if (n->replica)
            ekv_repl_replica_info(n->replica, &ri);
        ekv_reply_error(req, EKV_EREAD_ONLY,
                        "this node is a read-only replica; send writes to the primary %s at %s",
                        ri.primary_node_id[0] ? ri.primary_node_id : "(not connected)",
                        ri.primary_url[0] ? ri.primary_url : ri.primary_addr);
        return -1;
    }
    if (n->fenced) {
        ekv_reply_error(req, EKV_EFENCED,
                        "this node was fenced: %s is the primary since epoch %" PRIu64
                        " (this node has epoch %" PRIu64 "); writes are refused here",
                        n->st.fenced_by[0] ? n->st.fenced_by : "another node", n->st.fenced_epoch,
                        n->st.epoch);
        return -1;
    }
    if (n->promoting) {
        ekv_reply_error(req, EKV_EBUSY, "promotion in progress, retry shortly");
        return -1;
    }
    return 0;
}

static void on_synced(void *ctx, int status)
{
    ekv_write_t *w = ctx;
    ekv_req_t *req = w->held_req;
    if (status)
        req->sync_failed = 1; /* committed here: the handler applies effects, reply is 504 */
    w->job.done = w->held_done;
    w->held_done(&w->job);
}

static void write_committed(ekv_job_t *job)
{
    ekv_write_t *w = (ekv_write_t *)job;
    ekv_req_t *req = w->held_req;
    ekv_app_t *app = req->app;
    if (w->status || !w->seq || !app->node.primary ||
        ekv_repl_primary_wait(app->node.primary, w->seq, (int)app->cfg->sync_replicas,
                              (int)app->cfg->sync_timeout_ms, on_synced, w)) {
        w->job.done = w->held_done;
        w->held_done(job);
    }
}

void ekv_node_hold_write(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w)
{
    if (app->node.role != EKV_ROLE_PRIMARY || app->cfg->sync_replicas <= 0 || !w->job.done)
        return;
    w->held_done = w->job.done;
    w->held_req = req;
    w->job.done = write_committed;
}

/* ---------------------------------------------------------------- promotion, fencing */

static void probe_closed(ekv_repl_link_t *l)
{
    probe_t *pr = (probe_t *)l;
    ekv_app_t *app = pr->app;
    if (pr->prev)
        pr->prev->next = pr->next;
    else
        app->node.probes = pr->next;
    if (pr->next)
        pr->next->prev = pr->prev;
    free(pr);
    node_handle_closed((uv_handle_t *)&app->node.probe_timer);
}

static void probe_frame(ekv_repl_link_t *l, Edgekv__Frame *f)
{
    probe_t *pr = (probe_t *)l;
    ekv_app_t *app = pr->app;
    ekv_node_t *n = &app->node;
    if (f->epoch > n->st.epoch) {
        char by[64];
        snprintf(by, sizeof(by), "%s", l->peer);
        uint64_t e = f->epoch;
        ekv_repl_frame_free(f);
        ekv_repl_link_close(l, 0, 0, "peer has a newer epoch");
        if (n->primary) /* stops the primary's links too; calls on_fenced */
            ekv_repl_primary_fence(n->primary, e, by);
        return;
    }
    if (f->body_case == EDGEKV__FRAME__BODY_ERROR &&
        f->error->code == EDGEKV__REPL_ERROR_CODE__REPL_ERROR_FENCED) {
        if (!(n->probe_done_mask & (1u << pr->idx)))
            ekv_log_info("old primary fenced", "addr=%s its_epoch=%" PRIu64 " our_epoch=%" PRIu64,
                         l->peer, f->epoch, n->st.epoch);
        n->probe_done_mask |= 1u << pr->idx;
    }
    ekv_repl_frame_free(f);
    ekv_repl_link_close(l, 0, 0, "probe answered");
}

static void probe_connected(ekv_repl_link_t *l, int status)
{
    probe_t *pr = (probe_t *)l;
    ekv_node_t *n = &pr->app->node;
    static const ekv_repl_link_cbs_t cbs = {probe_frame, probe_closed, NULL};
    if (status || ekv_repl_link_init(l, pr, &cbs, 1u << 20) || ekv_repl_link_start(l)) {
        ekv_repl_link_close(l, 0, 0, "probe connect failed");
        return;
    }
    Edgekv__Hello h = EDGEKV__HELLO__INIT;
    h.node_id = n->node_id;
    h.role = EDGEKV__NODE_ROLE__NODE_ROLE_PRIMARY;
    h.history_id = n->st.history_id;
    h.epoch = n->st.epoch;
    h.advertise_url = n->advertise_url;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.epoch = n->st.epoch;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &h;
    ekv_repl_link_send(l, &f);
}

/* Every second after a promotion, tell each --primary address (the old primary among them)
 * our epoch: a live old primary fences itself on reading it, and answers FENCED. */
static void on_probe_timer(uv_timer_t *t)
{
    ekv_app_t *app = t->data;
    ekv_node_t *n = &app->node;
    if (!n->probing || n->stopping || n->fenced)
        return;
    const char *p = app->cfg->primary;
    int idx = 0, pending = 0;
    while (*p && idx < MAX_PROBES) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char addr[256], host[256];
        int port;
        if (len < sizeof(addr) && !(n->probe_done_mask & (1u << idx))) {
            memcpy(addr, p, len);
            addr[len] = '\0';
            if (!ekv_repl_parse_addr(addr, host, sizeof(host), &port) &&
                !(port == app->cfg->repl_port && !strcmp(host, app->cfg->repl_host))) {
                pending++;
                probe_t *pr = calloc(1, sizeof(*pr));
                if (pr) {
                    pr->app = app;
                    pr->idx = idx;
                    pr->link.cbs.on_close = probe_closed;
                    if (ekv_repl_link_connect(&pr->link, app->loop, host, port, probe_connected)) {
                        free(pr);
                    } else {
                        n->probes_in_flight++;
                        pr->next = n->probes;
                        if (pr->next)
                            pr->next->prev = pr;
                        n->probes = pr;
                    }
                }
            }
        }
        idx++;
        p = e ? e + 1 : p + len;
    }
    if (!pending)
        n->probing = 0;
    else
        uv_timer_start(&n->probe_timer, on_probe_timer, PROBE_EVERY_MS, 0);
}

typedef struct {
    ekv_app_t *app;
    void (*done)(void *ctx, int rc);
    void *ctx;
    ekv_node_state_t next;
} promote_t;

static void promote_saved(ekv_app_t *app, int rc, void *ctx)
{
    promote_t *pm = ctx;
    ekv_node_t *n = &app->node;
    n->promoting = 0;
    if (rc) {
        /* the replica stopped following; without a saved epoch we must not take writes */
        ekv_log_error("promotion failed: node state not saved; restart the replica", "err=%s",
                      ekv_err_name(rc));
        pm->done(pm->ctx, rc);
        free(pm);
        return;
    }
    n->st = pm->next;
    n->role = EKV_ROLE_PRIMARY;
    ekv_store_set_replica(app->store, 0);
    ekv_log_warn("promoted to primary",
                 "node_id=%s epoch=%" PRIu64 " history_id=%s "
                 "previous_history=%s switch_seq=%" PRIu64,
                 n->node_id, n->st.epoch, n->st.history_id, n->st.history2_id, n->st.history2_seq);
    if (n->primary) /* it served edges only until now */
        ekv_repl_primary_set_edge_only(n->primary, 0);
    else if (app->cfg->repl_port >= 0 && start_primary(app, 0))
        ekv_log_error("promoted, but cannot listen for replicas", "addr=%s", app->cfg->repl_listen);
    n->probing = 1;
    n->probe_done_mask = 0;
    on_probe_timer(&n->probe_timer);
    pm->done(pm->ctx, 0);
    free(pm);
}

static void promote_replica_stopped(void *arg)
{
    promote_t *pm = arg;
    ekv_app_t *app = pm->app;
    ekv_node_t *n = &app->node;
    /* n->stopping_replica is freed at exit (its doneq handle is still closing now) */
    ekv_node_state_t *nx = &pm->next;
    *nx = n->st;
    nx->epoch = n->st.epoch + 1;
    if (n->fenced_epoch_seen >= nx->epoch)
        nx->epoch = n->fenced_epoch_seen + 1;
    snprintf(nx->history2_id, sizeof(nx->history2_id), "%s", n->st.history_id);
    nx->history2_seq = ekv_store_last_seq(app->store);
    nx->fenced_epoch = 0;
    nx->fenced_by[0] = '\0';
    if (ekv_random_id(nx->history_id)) {
        promote_saved(app, EKV_EINTERNAL, pm);
        return;
    }
    save_async(app, nx, promote_saved, pm);
}

int ekv_node_promote(ekv_app_t *app, void (*done)(void *ctx, int rc), void *ctx)
{
    ekv_node_t *n = &app->node;
    if (n->role != EKV_ROLE_REPLICA || !n->replica)
        return EKV_ENOT_REPLICA;
    if (n->promoting)
        return EKV_EBUSY;
    if (!n->st.history_id[0] || ekv_store_ingest_pending(app->store))
        return EKV_ENOT_SYNCED;
    promote_t *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return EKV_ENOMEM;
    pm->app = app;
    pm->done = done;
    pm->ctx = ctx;
    n->promoting = 1;
    ekv_log_warn("promotion requested: stopping replication", "node_id=%s applied_seq=%" PRIu64,
                 n->node_id, ekv_store_last_seq(app->store));
    ekv_repl_replica_t *r = n->replica;
    n->replica = NULL;
    n->stopping_replica = r;
    ekv_repl_replica_stop(r, promote_replica_stopped, pm);
    return 0;
}

/* ---------------------------------------------------------------- metrics */

int ekv_node_metrics(ekv_app_t *app, ekv_buf_t *out)
{
    ekv_node_t *n = &app->node;
    int rc = 0;
#define G(name, help, v) (rc = rc ? rc : ekv_metrics_gauge(out, name, help, (double)(v)))
#define C(name, help, v) (rc = rc ? rc : ekv_metrics_counter(out, name, help, (double)(v)))
    G("edgekv_repl_epoch", "Replication epoch of this node.", n->st.epoch);
    G("edgekv_repl_last_seq", "Last change-log seq committed (primary) or applied (replica).",
      app->store ? ekv_store_last_seq(app->store) : 0);
    G("edgekv_repl_fenced", "1 when a newer primary fenced this node.", n->fenced);
    if (n->primary) {
        ekv_repl_primary_stats_t st;
        ekv_repl_primary_stats(n->primary, &st);
        G("edgekv_repl_replicas_connected", "Replica links open now.", st.connected);
        C("edgekv_repl_snapshots_sent_total", "Snapshots sent to replicas.", st.snapshots_sent);
        C("edgekv_repl_resumes_total", "Replicas that resumed incrementally.", st.resumes);
        C("edgekv_repl_sync_timeouts_total", "Writes not acked by --sync-replicas in time.",
          st.sync_timeouts);
        G("edgekv_repl_sync_waiting", "Writes waiting for replica acks.", st.sync_waiting);
        if (!rc)
            rc = ekv_buf_appendf(
                out,
                "# HELP edgekv_repl_replicas_dropped_total Replicas dropped, by reason.\n"
                "# TYPE edgekv_repl_replicas_dropped_total counter\n"
                "edgekv_repl_replicas_dropped_total{reason=\"timeout\"} %" PRIu64 "\n"
                "edgekv_repl_replicas_dropped_total{reason=\"lag\"} %" PRIu64 "\n"
                "edgekv_repl_replicas_dropped_total{reason=\"protocol\"} %" PRIu64 "\n",
                st.dropped_timeout, st.dropped_lag, st.dropped_protocol);
        ekv_repl_peer_info_t peers[EKV_REPL_MAX_REPLICAS + 2];
        size_t np = ekv_repl_primary_peers(n->primary, peers, sizeof(peers) / sizeof(peers[0]));
        if (np > sizeof(peers) / sizeof(peers[0]))
            np = sizeof(peers) / sizeof(peers[0]);
        static const char *const names[] = {"edgekv_repl_replica_acked_seq",
                                            "edgekv_repl_replica_lag_seqs",
                                            "edgekv_repl_replica_lag_ms"};
        static const char *const helps[] = {"Last seq acked by the replica.",
                                            "Records the replica is behind.",
                                            "Age of its oldest unacked record."};
        for (int m = 0; m < 3 && !rc; m++) {
            rc = ekv_buf_appendf(out, "# HELP %s %s\n# TYPE %s gauge\n", names[m], helps[m],
                                 names[m]);
            for (size_t i = 0; i < np && !rc; i++) {
                uint64_t v = m == 0   ? peers[i].acked_seq
                             : m == 1 ? peers[i].lag_seqs
                                      : (uint64_t)peers[i].lag_ms;
                rc = ekv_buf_appendf(out, "%s{replica=\"%s\",state=\"%s\"} %" PRIu64 "\n", names[m],
                                     peers[i].node_id, peers[i].state, v);
            }
        }
    }
    if (n->replica) {
        ekv_repl_replica_info_t ri;
        ekv_repl_replica_info(n->replica, &ri);
        G("edgekv_repl_applied_seq", "Last seq applied from the primary.", ri.applied_seq);
        G("edgekv_repl_lag_seqs", "Records this replica is behind the primary.", ri.lag_seqs);
        G("edgekv_repl_lag_ms", "Age of the oldest received, unapplied record.", ri.lag_ms);
        G("edgekv_repl_streaming", "1 while streaming from a primary.",
          !strcmp(ri.state, "streaming"));
        C("edgekv_repl_snapshots_received_total", "Snapshot bootstraps completed.", ri.snapshots);
        C("edgekv_repl_connects_total", "Handshakes completed with a primary.", ri.connects);
        G("edgekv_repl_apply_lag_ms_p50", "Primary commit to durable apply here (last 4096).",
          ri.apply_lag_p50_ms);
        G("edgekv_repl_apply_lag_ms_p99", "Primary commit to durable apply here (last 4096).",
          ri.apply_lag_p99_ms);
        if (!rc)
            rc = ekv_buf_appends(out, "# HELP edgekv_repl_apply_lag_ms Primary commit to durable "
                                      "apply here, per record (ms, clock-to-clock).\n"
                                      "# TYPE edgekv_repl_apply_lag_ms histogram\n");
        for (int b = 0; b < EKV_REPL_LAG_BUCKETS && !rc; b++) {
            if (b < EKV_REPL_LAG_BUCKETS - 1)
                rc = ekv_buf_appendf(
                    out, "edgekv_repl_apply_lag_ms_bucket{le=\"%" PRId64 "\"} %" PRIu64 "\n",
                    ekv_repl_lag_bucket_ms[b], ri.apply_lag_hist[b]);
            else
                rc = ekv_buf_appendf(out,
                                     "edgekv_repl_apply_lag_ms_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                                     "edgekv_repl_apply_lag_ms_sum %" PRIu64 "\n"
                                     "edgekv_repl_apply_lag_ms_count %" PRIu64 "\n",
                                     ri.apply_lag_hist[b], ri.apply_lag_sum_ms,
                                     ri.apply_lag_hist[b]);
        }
    }
    if (n->edge) {
        ekv_edge_stats_t es;
        ekv_edge_stats(n->edge, &es);
        C("edgekv_edge_cache_hits_total", "Value GETs answered from a fresh cache entry.", es.hits);
        C("edgekv_edge_cache_misses_total", "Value GETs not answered from the cache.", es.misses);
        C("edgekv_edge_upstream_fetches_total",
          "Value fetches sent upstream (one per single-flight group).", es.upstream_fetches);
        C("edgekv_edge_coalesced_total", "Misses that joined a fetch already on its way.",
          es.coalesced);
        C("edgekv_edge_stale_served_total", "Expired entries served while no upstream answered.",
          es.stale_served);
        C("edgekv_edge_reads_forwarded_total", "Reads relayed to a replica or the primary.",
          es.reads_forwarded);
        C("edgekv_edge_writes_forwarded_total", "Writes relayed to the primary.",
          es.writes_forwarded);
        C("edgekv_edge_failovers_total", "Calls answered by another upstream than the first.",
          es.failovers);
        C("edgekv_edge_upstream_failures_total", "Calls no upstream could answer.",
          es.upstream_failures);
        G("edgekv_edge_inflight_fetches", "Single-flight fetches on their way.",
          es.inflight_fetches);
        C("edgekv_edge_fetches_refused_total", "Misses refused: --edge-max-fetches in flight.",
          es.fetches_refused);
        G("edgekv_edge_synced", "1 once the catalog has arrived.", n->edge_synced);
    }
#undef G
#undef C
    return rc;
}
