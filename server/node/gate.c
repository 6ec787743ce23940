/*
 * gate.c - what a role refuses before any work is done (role ops "gate"): on an edge, API
 * calls before the catalog arrived; on a replica, API calls before its first sync and every
 * write (403 naming the primary); on a fenced primary, writes (503); during a promotion,
 * writes. And --sync-replicas holds (role ops "hold_write"): a write's reply waits for
 * replica acks.
 */
#include "server/node/node.h"
#include "common/errors.h"
#include "replication/primary.h"
#include "replication/replica.h"
#include "server/http/reply.h"
#include "server/node/coord/coord.h"

#include <inttypes.h>
#include <string.h>

int ekv_node_lease_lapsed(const ekv_node_t *n)
{
    return n->cfg->coordinator[0] && (!n->coord || !ekv_coord_may_write(n->coord));
}

int ekv_node_gate_or_reply(ekv_app_t *app, ekv_req_t *req, const ekv_route_t *r)
{
    ekv_node_t *n = ekv_node_of(app);
    int role_free = r->kind == EKV_RK_LOCAL || r->kind == EKV_RK_CLUSTER;
    if (n->role == EKV_ROLE_STANDALONE && !n->fenced)
        return 0;
    if (n->role == EKV_ROLE_EDGE) {
        if (!n->edge_synced && !role_free) {
            ekv_reply_error(req, EKV_ENOT_SYNCED,
                            "this edge has not received the catalog from an upstream yet "
                            "(see GET /_edgekv/replication/status)");
            return -1;
        }
        return 0; /* writes are forwarded to the primary */
    }
    if (n->role == EKV_ROLE_REPLICA && !role_free &&
        (!n->st.history_id[0] || ekv_store_ingest_pending(app->store))) {
        ekv_reply_error(req, EKV_ENOT_SYNCED,
                        "this replica has not completed its first sync with a primary yet "
                        "(see GET /_edgekv/replication/status)");
        return -1;
    }
    if (n->role == EKV_ROLE_REPLICA && r->kind == EKV_RK_DO)
        return 0; /* forwarded to the objects' owner, the primary */
    if (!ekv_route_kind_is_write(r->kind) && r->kind != EKV_RK_DO)
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
    if (ekv_node_lease_lapsed(n)) {
        ekv_reply_error(req, EKV_ELEADER_LOST,
                        "this node's primary lease in the coordinator has lapsed: it takes no "
                        "writes and is rejoining as a replica; retry through the new primary");
        return -1;
    }
    return 0;
}

/* --coordinator: a write is acknowledged only while the primary lease is valid. A write
 * that committed after it lapsed (a pause, SIGSTOP) is answered 503: never acknowledged, it
 * may be discarded when this node rejoins the new primary. */
static void check_lease(ekv_node_t *n, ekv_req_t *req)
{
    if (ekv_node_lease_lapsed(n))
        req->sync_failed = EKV_SYNC_FAILED_LEADER_LOST;
}

static void on_synced(void *ctx, int status)
{
    ekv_write_t *w = ctx;
    ekv_req_t *req = w->held_req;
    if (status)
        req->sync_failed = 1; /* committed here: the handler applies effects, reply is 504 */
    check_lease(ekv_node_of(req->app), req);
    w->job.done = w->held_done;
    w->held_done(&w->job);
}

static void write_committed(ekv_job_t *job)
{
    ekv_write_t *w = (ekv_write_t *)job;
    ekv_req_t *req = w->held_req;
    ekv_node_t *n = ekv_node_of(req->app);
    if (w->status || !w->seq || !n->primary || n->cfg->sync_replicas <= 0 ||
        ekv_repl_primary_wait(n->primary, w->seq, (int)n->cfg->sync_replicas,
                              (int)n->cfg->sync_timeout_ms, on_synced, w)) {
        if (!w->status)
            check_lease(n, req);
        w->job.done = w->held_done;
        w->held_done(job);
    }
}

void ekv_node_hold_write(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w)
{
    ekv_node_t *n = ekv_node_of(app);
    if (n->role != EKV_ROLE_PRIMARY || !w->job.done ||
        (n->cfg->sync_replicas <= 0 && !n->cfg->coordinator[0]))
        return;
    w->held_done = w->job.done;
    w->held_req = req;
    w->job.done = write_committed;
}
