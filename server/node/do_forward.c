/*
 * do_forward.c - Durable Object calls on a node without the DO runtime (a replica or an
 * edge): forwarded to the objects' owner, the primary, over a dedicated authenticated RPC
 * link (role ops "forward_do"), answered with the owner's reply as it is.
 *
 * A link of its own, not the edge's read/write links: a DO call may wait for the object's
 * earlier calls and for the upstream script (--do-call-wait-ms + --do-call-timeout-ms), far
 * longer than --upstream-timeout-ms allows a KV call. The owner is the primary this node
 * follows (a replica) or the first --primary address; the link moves when that changes.
 */
#include "common/errors.h"
#include "common/log.h"
#include "replication/frame.h"
#include "replication/link.h"
#include "replication/replica.h"
#include "replication/rpc_client.h"
#include "server/http/reply.h"
#include "server/node/edge/edge_int.h"
#include "server/node/node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ekv_do_fwd_s {
    ekv_rpc_client_t *client;
    char addr[300];
};

static void old_stopped(void *arg)
{
    ekv_rpc_client_free(arg);
}

/* The owner's replication address, "" when unknown. */
static void owner_addr(ekv_node_t *n, char *out, size_t cap)
{
    out[0] = '\0';
    if (n->role == EKV_ROLE_REPLICA && n->replica) {
        ekv_repl_replica_info_t ri;
        memset(&ri, 0, sizeof(ri));
        ekv_repl_replica_info(n->replica, &ri);
        if (ri.primary_addr[0]) {
            snprintf(out, cap, "%s", ri.primary_addr);
            return;
        }
    }
    const char *p = n->cfg->primary;
    size_t len = strcspn(p, ",");
    if (len < cap) {
        memcpy(out, p, len);
        out[len] = '\0';
    }
}

static ekv_rpc_client_t *client_for(ekv_node_t *n)
{
    char addr[300];
    owner_addr(n, addr, sizeof(addr));
    if (!addr[0])
        return NULL;
    if (!n->do_fwd && !(n->do_fwd = calloc(1, sizeof(*n->do_fwd))))
        return NULL;
    struct ekv_do_fwd_s *f = n->do_fwd;
    if (f->client && strcmp(addr, f->addr) == 0)
        return f->client;
    char host[256];
    int port;
    if (ekv_repl_parse_addr(addr, host, sizeof(host), &port))
        return NULL;
    if (f->client) {
        ekv_log_info("durable object owner moved", "from=%s to=%s", f->addr, addr);
        ekv_rpc_client_stop(f->client, old_stopped, f->client);
        f->client = NULL;
    }
    ekv_rpc_client_opts_t o = {0};
    o.loop = n->app->loop;
    o.host = host;
    o.port = port;
    o.auth = n->auth;
    o.node_id = n->node_id;
    o.timeout_ms = (int)(n->cfg->do_call_wait_ms + n->cfg->do_call_timeout_ms + 5000);
    o.link_timeout_ms = (int)n->cfg->repl_timeout_ms;
    o.heartbeat_ms = (int)n->cfg->repl_heartbeat_ms;
    if (ekv_rpc_client_start(&f->client, &o))
        return NULL;
    snprintf(f->addr, sizeof(f->addr), "%s", addr);
    return f->client;
}

typedef struct {
    ekv_req_t *req;
} fwd_call_t;

static void answered(void *ctx, int status, const Edgekv__Response *resp)
{
    fwd_call_t *k = ctx;
    if (status == 0 && resp->status == 0)
        status = EKV_EUPSTREAM; /* the owner is shutting down */
    if (status)
        ekv_reply_busy_msg(k->req, status == EKV_ETIMEOUT ? EKV_ETIMEOUT : EKV_EUPSTREAM,
                           status == EKV_ETIMEOUT
                               ? "the Durable Objects owner (the primary) did not answer in time"
                               : "the Durable Objects owner (the primary) is unreachable from "
                                 "this node; retry later");
    else
        ekv__edge_relay(k->req, resp);
    free(k);
}

void ekv_node_forward_do(ekv_call_t *c)
{
    ekv_node_t *n = ekv_node_of(c->app);
    ekv_rpc_client_t *cl = client_for(n);
    fwd_call_t *k = calloc(1, sizeof(*k));
    if (!cl || !k) {
        free(k);
        ekv_reply_busy_msg(c->req, EKV_EUPSTREAM,
                           "no Durable Objects owner (primary) is known to this node yet");
        return;
    }
    k->req = c->req;
    Edgekv__Request rq;
    ekv__edge_fill_request(&rq, c->req);
    int rc = ekv_rpc_call(cl, &rq, answered, k);
    if (rc == 0)
        return;
    free(k);
    if (rc == EKV_ETOO_LARGE)
        ekv_reply_error(c->req, EKV_ETOO_LARGE, "request too large to forward to the owner");
    else
        ekv_reply_busy_msg(c->req, EKV_EUPSTREAM,
                           "the Durable Objects owner (the primary) is unreachable from this "
                           "node; retry later");
}

void ekv_node_forward_do_prepare(ekv_node_t *n)
{
    if (!client_for(n))
        ekv_log_warn("no Durable Objects owner to forward to yet", "primary=\"%s\"",
                     n->cfg->primary);
}

void ekv_node_forward_do_stop(ekv_node_t *n)
{
    struct ekv_do_fwd_s *f = n->do_fwd;
    if (f && f->client) {
        ekv_rpc_client_stop(f->client, old_stopped, f->client);
        f->client = NULL;
    }
}
