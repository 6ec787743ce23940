/*
 * admin.c - the replication endpoints, the role's EKV_RK_CLUSTER routes (docs/REPLICATION.md,
 * "Operating"): GET  /_edgekv/replication/status    role, epoch, history, seqs, links and lag (no
 * auth, like /metrics: counters only, no data) GET  /_edgekv/replication/checksum  full-keyspace
 * checksum (admin; O(data), reader thread) POST /_edgekv/replication/promote   make this replica
 * the primary (admin)
 */
#include "common/errors.h"
#include "replication/primary.h"
#include "replication/replica.h"
#include "server/http/reply.h"
#include "server/node/edge/edge.h"
#include "server/node/node.h"
#include "server/node/coord/coord.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *str_or_null(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

/* The change stream an edge or replica follows (one object, two roles). */
static json_t *follower_json(const ekv_repl_replica_info_t *ri)
{
    return json_pack(
        "{s:s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "state",
        ri->state, "primary_addr", ri->primary_addr, "primary_node_id",
        str_or_null(ri->primary_node_id), "primary_url", str_or_null(ri->primary_url),
        "applied_seq", (json_int_t)ri->applied_seq, "primary_latest_seq",
        (json_int_t)ri->primary_latest_seq, "lag_seqs", (json_int_t)ri->lag_seqs, "lag_ms",
        (json_int_t)ri->lag_ms, "snapshots", (json_int_t)ri->snapshots, "snapshot_attempts",
        (json_int_t)ri->snapshot_attempts, "connects", (json_int_t)ri->connects, "reconnects",
        (json_int_t)ri->reconnects, "discarded_records", (json_int_t)ri->discarded_records,
        "apply_lag_p50_ms", (json_int_t)ri->apply_lag_p50_ms, "apply_lag_p99_ms",
        (json_int_t)ri->apply_lag_p99_ms, "apply_lag_samples", (json_int_t)ri->apply_lag_samples);
}

static json_t *edge_json(ekv_app_t *app)
{
    ekv_node_t *node = ekv_node_of(app);
    ekv_edge_t *e = node->edge;
    ekv_edge_stats_t st;
    ekv_edge_stats(e, &st);
    json_t *ups = json_array();
    ekv_edge_upstream_t u[20];
    size_t n = ekv_edge_upstreams(e, u, 20);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            ups, json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "role", u[i].role, "addr",
                           u[i].addr, "ready", u[i].ready, "seq", (json_int_t)u[i].seq, "inflight",
                           (json_int_t)u[i].rpc.inflight, "calls", (json_int_t)u[i].rpc.calls,
                           "timeouts", (json_int_t)u[i].rpc.timeouts, "failed_fast",
                           (json_int_t)u[i].rpc.failed_fast));
    return json_pack(
        "{s:o, s:b, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "upstreams", ups,
        "synced", node->edge_synced, "max_write_seq", (json_int_t)ekv_edge_max_write_seq(e),
        "stats", "hits", (json_int_t)st.hits, "misses", (json_int_t)st.misses, "upstream_fetches",
        (json_int_t)st.upstream_fetches, "coalesced", (json_int_t)st.coalesced, "stale_served",
        (json_int_t)st.stale_served, "reads_forwarded", (json_int_t)st.reads_forwarded,
        "writes_forwarded", (json_int_t)st.writes_forwarded, "failovers", (json_int_t)st.failovers,
        "upstream_failures", (json_int_t)st.upstream_failures);
}

static void repl_status(ekv_call_t *c)
{
    ekv_app_t *app = c->app;
    ekv_node_t *n = ekv_node_of(app);
    ekv_config_t *cfg = n->cfg;
    ekv_store_stats_t ss;
    memset(&ss, 0, sizeof(ss));
    if (app->store)
        ekv_store_stats(app->store, &ss);
    json_t *o = json_object();
    json_object_set_new(o, "role", json_string(ekv_role_name(n->role)));
    json_object_set_new(o, "node_id", json_string(n->node_id));
    json_object_set_new(o, "advertise_url", json_string(n->advertise_url));
    json_object_set_new(o, "epoch", json_integer((json_int_t)n->st.epoch));
    json_object_set_new(o, "history_id", str_or_null(n->st.history_id));
    json_object_set_new(o, "history2_id", str_or_null(n->st.history2_id));
    json_object_set_new(o, "history2_seq", json_integer((json_int_t)n->st.history2_seq));
    json_object_set_new(
        o, "last_seq",
        json_integer((json_int_t)(app->store   ? ekv_store_last_seq(app->store)
                                  : n->replica ? ekv_repl_replica_applied_seq(n->replica)
                                               : 0)));
    json_object_set_new(o, "first_log_seq", json_integer((json_int_t)ss.first_log_seq));
    json_object_set_new(o, "log_pin", json_integer((json_int_t)ss.lowest_pin));
    json_object_set_new(o, "log_retain_mb", json_integer((json_int_t)cfg->log_retain_mb));
    json_object_set_new(o, "log_retain_hours", json_integer((json_int_t)cfg->log_retain_hours));
    json_object_set_new(o, "fenced", json_boolean(n->fenced));
    if (n->fenced) {
        json_object_set_new(o, "fenced_by", json_string(n->st.fenced_by));
        json_object_set_new(o, "fenced_epoch", json_integer((json_int_t)n->st.fenced_epoch));
    }
    int writable =
        n->role != EKV_ROLE_REPLICA && !n->fenced && !n->promoting && !ekv_node_lease_lapsed(n);
    if (n->edge)
        writable = ekv_edge_primary_ready(n->edge); /* relayed to the primary */
    json_object_set_new(o, "writable", json_boolean(writable));
    json_object_set_new(o, "sync_replicas", json_integer((json_int_t)cfg->sync_replicas));
    if (n->primary) {
        char addr[300];
        if (n->role == EKV_ROLE_EDGE) /* its Durable Object owner's link listener */
            snprintf(addr, sizeof(addr), "%s:%d", cfg->repl_port >= 0 ? cfg->repl_host : cfg->host,
                     ekv_repl_primary_port(n->primary));
        else
            snprintf(addr, sizeof(addr), "%s:%d", cfg->repl_host,
                     ekv_repl_primary_port(n->primary));
        json_object_set_new(o, "repl_listen", json_string(addr));
        ekv_repl_peer_info_t peers[EKV_REPL_MAX_REPLICAS + 2];
        size_t np = ekv_repl_primary_peers(n->primary, peers, sizeof(peers) / sizeof(peers[0]));
        if (np > sizeof(peers) / sizeof(peers[0]))
            np = sizeof(peers) / sizeof(peers[0]);
        json_t *arr = json_array(), *edges = json_array();
        for (size_t i = 0; i < np; i++)
            json_array_append_new(
                strcmp(peers[i].kind, "replica") ? edges : arr,
                json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "node_id", peers[i].node_id,
                          "addr", peers[i].addr, "kind", peers[i].kind, "state", peers[i].state,
                          "acked_seq", (json_int_t)peers[i].acked_seq, "sent_seq",
                          (json_int_t)peers[i].sent_seq, "lag_seqs", (json_int_t)peers[i].lag_seqs,
                          "lag_ms", (json_int_t)peers[i].lag_ms));
        json_object_set_new(o, "replicas", arr);
        json_object_set_new(o, "edges", edges);
        ekv_repl_primary_stats_t st;
        ekv_repl_primary_stats(n->primary, &st);
        json_object_set_new(o, "dropped",
                            json_pack("{s:I, s:I, s:I}", "timeout", (json_int_t)st.dropped_timeout,
                                      "lag", (json_int_t)st.dropped_lag, "protocol",
                                      (json_int_t)st.dropped_protocol));
        json_object_set_new(
            o, "primary_stats",
            json_pack("{s:I, s:I, s:I, s:I, s:I}", "accepted", (json_int_t)st.accepted,
                      "snapshots_sent", (json_int_t)st.snapshots_sent, "resumes",
                      (json_int_t)st.resumes, "sync_timeouts", (json_int_t)st.sync_timeouts,
                      "sync_waiting", (json_int_t)st.sync_waiting));
    } else {
        json_object_set_new(o, "repl_listen", json_null());
    }
    if (n->replica) {
        ekv_repl_replica_info_t ri;
        ekv_repl_replica_info(n->replica, &ri);
        json_t *r = follower_json(&ri);
        /* an edge's follower is its keys-only change stream */
        json_object_set_new(o, n->role == EKV_ROLE_EDGE ? "stream" : "replica",
                            r ? r : json_null());
    }
    if (n->edge)
        json_object_set_new(o, "edge", edge_json(app));
    if (n->coord)
        json_object_set_new(o, "coordinator", ekv_coord_status_json(n->coord));
    json_t *dobj = ekv_node_do_status_json(n);
    if (dobj)
        json_object_set_new(o, "durable_objects", dobj);
    ekv_reply_ok(c->req, o, NULL);
}

/* ---- checksum (reader thread) ---- */

typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    ekv_req_t *req;
    uint64_t sum, keys, seq;
    int rc;
} checksum_job_t;

static void checksum_work(ekv_job_t *job)
{
    checksum_job_t *j = (checksum_job_t *)job;
    j->seq = ekv_store_last_seq(j->app->store);
    j->rc = ekv_store_checksum(j->app->store, &j->sum, &j->keys);
}

static void checksum_done(ekv_job_t *job)
{
    checksum_job_t *j = (checksum_job_t *)job;
    if (j->rc) {
        ekv_reply_error(j->req, j->rc, NULL);
        return;
    }
    char hex[17];
    snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)j->sum);
    ekv_reply_ok(j->req,
                 json_pack("{s:s, s:I, s:I}", "checksum", hex, "keys", (json_int_t)j->keys,
                           "last_seq", (json_int_t)j->seq),
                 NULL);
}

static void free_state(ekv_req_t *req)
{
    free(req->state);
    req->state = NULL;
}

static void repl_checksum(ekv_call_t *c)
{
    if (!c->app->store) {
        ekv_reply_error(c->req, EKV_EBAD_REQUEST, "an edge holds no data to checksum");
        return;
    }
    checksum_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    j->app = c->app;
    j->req = c->req;
    j->job.work = checksum_work;
    j->job.done = checksum_done;
    c->req->state = j;
    c->req->cleanup = free_state;
    ekv_app_read_or_reply(c->app, c->req, &j->job);
}

/* ---- promote ---- */

static void promote_done(void *ctx, int rc)
{
    ekv_req_t *req = ctx;
    ekv_app_t *app = req->app;
    if (rc) {
        ekv_reply_error(req, rc, "promotion failed: %s", ekv_err_name(rc));
        return;
    }
    ekv_node_t *n = ekv_node_of(app);
    ekv_reply_ok(req,
                 json_pack("{s:s, s:I, s:s, s:I}", "role", "primary", "epoch",
                           (json_int_t)n->st.epoch, "history_id", n->st.history_id, "last_seq",
                           (json_int_t)ekv_store_last_seq(app->store)),
                 NULL);
}

static void repl_promote(ekv_call_t *c)
{
    int rc = ekv_node_promote(ekv_node_of(c->app), promote_done, c->req);
    if (rc == EKV_ENOT_REPLICA)
        ekv_reply_error(c->req, rc, "only a replica can be promoted; this node is %s",
                        ekv_role_name(ekv_node_of(c->app)->role));
    else if (rc == EKV_EBUSY)
        ekv_reply_error(c->req, rc, "a promotion is already in progress");
    else if (rc)
        ekv_reply_error(c->req, rc, NULL);
}

void ekv_node_cluster_call(ekv_call_t *c)
{
    const char *name = c->route->name;
    if (!strcmp(name, "repl_status"))
        repl_status(c);
    else if (!strcmp(name, "repl_checksum"))
        repl_checksum(c);
    else if (!strcmp(name, "repl_promote"))
        repl_promote(c);
    else if (!strcmp(name, "repl_do_owner"))
        ekv_node_do_owner_call(c);
    else
        ekv_reply_error(c->req, EKV_ENO_ROUTE, "no handler for cluster route %s", name);
}
