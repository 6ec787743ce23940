/*
 * follower.c - following a primary: a replica's follower (full change stream, applied to the
 * local store) and an edge's keys-only stream (catalog snapshot, then records without
 * values), and the upkeep of what they apply on the loop: the value cache, the edge's
 * fetches in flight, the in-memory catalog (so token revocation reaches every node).
 */
#include "server/node/node.h"
#include "common/codec.h"
#include "common/log.h"
#include "replication/replica.h"
#include "server/node/edge/edge.h"
#include "server/node/rpc_exec.h"

#include <stdio.h>
#include <string.h>

static void on_applied(void *ctx, Edgekv__KeyChange *const *recs, size_t nrecs)
{
    ekv_node_t *n = ctx;
    ekv_app_t *app = n->app;
    for (size_t i = 0; i < nrecs; i++) {
        const Edgekv__KeyChange *r = recs[i];
        char nshex[EKV_ID_HEX_LEN + 1] = "";
        if (r->namespace_id.len == EKV_NSID_LEN)
            ekv_hex_encode(r->namespace_id.data, EKV_NSID_LEN, nshex);
        ekv_node_do_applied(n, r); /* DO namespaces and partition tables */
        switch (r->op) {
        case EDGEKV__CHANGE_OP__KV_PUT:
        case EDGEKV__CHANGE_OP__KV_DELETE:
        case EDGEKV__CHANGE_OP__KV_EXPIRE:
            if (r->namespace_id.len == EKV_NSID_LEN) {
                ekv_cache_invalidate(app->cache, r->namespace_id.data, (const char *)r->key.data,
                                     r->key.len);
                if (n->edge)
                    ekv_edge_invalidated(n->edge, r->namespace_id.data, (const char *)r->key.data,
                                         r->key.len);
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
                if (n->edge)
                    ekv_edge_invalidated(n->edge, r->namespace_id.data, NULL, 0);
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
 * a replica runs edges' reads parked on min_seq, an owner edge the Durable Object calls
 * forwarded to it with a min_seq. */
static void on_progress(void *ctx)
{
    ekv_node_t *n = ctx;
    if (n->edge)
        ekv_edge_on_stream(n->edge);
    ekv_rpc_exec_on_commit(n->app); /* forwarded calls parked on min_seq (an owner edge too) */
}

/* Apply thread, after a snapshot ingest: the whole catalog comes from the store again. */
static void *after_ingest_work(void *ctx)
{
    ekv_app_t *app = ((ekv_node_t *)ctx)->app;
    ekv_catalog_t *cat = ekv_catalog_new();
    if (cat && ekv_catalog_load(cat, app->store)) {
        ekv_catalog_free(cat);
        cat = NULL;
    }
    return cat;
}

static void after_ingest_done(void *ctx, void *loaded)
{
    ekv_app_t *app = ((ekv_node_t *)ctx)->app;
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
static int start_follower(ekv_node_t *n, ekv_repl_replica_opts_t *o)
{
    o->loop = n->app->loop;
    o->auth = n->auth;
    o->node_id = n->node_id;
    o->heartbeat_ms = (int)n->cfg->repl_heartbeat_ms;
    o->timeout_ms = (int)n->cfg->repl_timeout_ms;
    o->node = &n->st;
    o->ctx = n;
    o->on_applied = on_applied;
    o->on_progress = on_progress;
    if (ekv_repl_replica_start(&n->replica, o)) {
        n->replica = NULL;
        return -1;
    }
    return 0;
}

int ekv_node_start_replica(ekv_node_t *n)
{
    ekv_repl_replica_opts_t o = {0};
    o.store = n->app->store;
    o.primaries = n->cfg->primary;
    o.primary_from_coordinator = n->cfg->coordinator[0] != 0; /* may name none yet */
    o.after_ingest_work = after_ingest_work;
    o.after_ingest_done = after_ingest_done;
    return start_follower(n, &o);
}

/* ---------------------------------------------------------------- edge */

static void edge_catalog_begin(void *ctx)
{
    ekv_node_t *n = ctx;
    ekv_catalog_free(n->building);
    n->building = ekv_catalog_new();
}

static void edge_catalog_entry(void *ctx, const char *key, size_t klen, const char *val,
                               size_t vlen)
{
    ekv_node_t *n = ctx;
    if (n->building)
        ekv_catalog_add_entry(n->building, key, klen, val, vlen);
    ekv_node_do_catalog_entry(n, key, klen, val, vlen);
}

static void edge_catalog_done(void *ctx, void *unused)
{
    ekv_node_t *n = ctx;
    ekv_app_t *app = n->app;
    (void)unused;
    ekv_cache_clear(app->cache); /* nothing cached can be verified against the new history */
    if (n->edge)
        ekv_edge_invalidated(n->edge, NULL, NULL, 0);
    if (!n->building) {
        ekv_log_error("edge catalog snapshot lost (out of memory)", "%s", "");
        return;
    }
    ekv_catalog_free(app->catalog);
    app->catalog = n->building;
    n->building = NULL;
    n->edge_synced = 1;
    if (n->edge)
        ekv_edge_on_stream(n->edge);
    ekv_log_info("edge catalog loaded", "accounts=%zu tokens=%zu",
                 ekv_catalog_account_count(app->catalog), ekv_catalog_token_count(app->catalog));
}

/* An edge: RPC links to every upstream, and one keys-only change stream followed from the
 * replicas first (then the primary): catalog + cache invalidation. */
int ekv_node_start_edge(ekv_node_t *n)
{
    if (ekv_edge_start(n))
        return -1;
    char candidates[4096]; /* parsed by the follower at start */
    snprintf(candidates, sizeof(candidates), "%s%s%s", n->cfg->replicas,
             n->cfg->replicas[0] ? "," : "", n->cfg->primary);
    ekv_repl_replica_opts_t o = {0};
    o.primaries = candidates;
    o.after_ingest_done = edge_catalog_done;
    o.keys_only = 1;
    o.on_catalog_begin = edge_catalog_begin;
    o.on_catalog_entry = edge_catalog_entry;
    if (start_follower(n, &o))
        return -1;
    ekv_log_info("node", "node_id=%s role=edge stream_from=\"%s\"", n->node_id, candidates);
    return 0;
}
