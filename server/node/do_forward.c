/*
 * do_forward.c - Durable Object calls on a node without the DO runtime (a replica or an
 * edge): forwarded to the objects' owner, the primary, over a dedicated authenticated RPC
 * link (role ops "forward_do"), answered with the owner's reply as it is.
 *
 * A link of its own, not the edge's read/write links: a DO call may wait for the object's
 * earlier calls and for the upstream script (--do-call-wait-ms + --do-call-timeout-ms), far
 * longer than --upstream-timeout-ms allows a KV call. The owner is the primary this node
 * follows (a replica) or the first --primary address; the link moves when that changes. The
 * link opens on the first DO call (a node that never sees one never opens it); calls that
 * arrive while it connects wait for it, at most PENDING_WAIT_MS, then 503.
 */
#include "common/clock.h"
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

#define PENDING_MAX     1024 /* calls waiting for the link to come up */
#define PENDING_WAIT_MS 3000 /* how long one waits, then 503 */
#define PENDING_TICK_MS 20

typedef struct fwd_call_s {
    struct fwd_call_s *next;
    ekv_req_t *req;
    uint64_t deadline_ns;
} fwd_call_t;

struct ekv_do_fwd_s {
    ekv_rpc_client_t *client;
    char addr[300];
    /* calls that arrived while the link was (re)connecting, oldest first */
    fwd_call_t *phead, *ptail;
    size_t npending;
    uv_timer_t timer;
    int timer_init;
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
        ekv_rpc_client_t *old = f->client;
        f->client = NULL; /* stopping answers its calls: they must not find it again */
        ekv_rpc_client_stop(old, old_stopped, old);
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

static void reply_unreachable(ekv_req_t *req)
{
    ekv_reply_busy_msg(req, EKV_EUPSTREAM,
                       "the Durable Objects owner (the primary) is unreachable from this node; "
                       "retry later");
}

/* Send k over cl (ready); frees k when the call could not be sent. */
static void send_call(ekv_rpc_client_t *cl, fwd_call_t *k)
{
    Edgekv__Request rq;
    ekv__edge_fill_request(&rq, k->req);
    int rc = ekv_rpc_call(cl, &rq, answered, k);
    if (rc == 0)
        return;
    if (rc == EKV_ETOO_LARGE)
        ekv_reply_error(k->req, EKV_ETOO_LARGE, "request too large to forward to the owner");
    else
        reply_unreachable(k->req);
    free(k);
}

/* Calls waiting for the link: sent once it is up, 503 past their deadline. */
static void pending_tick(uv_timer_t *t)
{
    ekv_node_t *n = t->data;
    struct ekv_do_fwd_s *f = n->do_fwd;
    ekv_rpc_client_t *cl = n->stopping ? NULL : client_for(n);
    int ready = cl && ekv_rpc_client_ready(cl);
    uint64_t now = ekv_clock_mono_ns();
    while (f->phead && (ready || f->phead->deadline_ns <= now || n->stopping)) {
        fwd_call_t *k = f->phead;
        f->phead = k->next;
        if (!f->phead)
            f->ptail = NULL;
        f->npending--;
        k->next = NULL;
        if (ready && !n->stopping) {
            send_call(cl, k);
        } else {
            reply_unreachable(k->req);
            free(k);
        }
    }
    if (!f->phead)
        uv_timer_stop(t);
}

void ekv_node_forward_do(ekv_call_t *c)
{
    ekv_node_t *n = ekv_node_of(c->app);
    ekv_rpc_client_t *cl = n->stopping ? NULL : client_for(n);
    struct ekv_do_fwd_s *f = n->do_fwd;
    fwd_call_t *k = cl ? calloc(1, sizeof(*k)) : NULL;
    if (!cl || !k) {
        free(k);
        ekv_reply_busy_msg(c->req, EKV_EUPSTREAM,
                           "no Durable Objects owner (primary) is known to this node yet");
        return;
    }
    k->req = c->req;
    if (ekv_rpc_client_ready(cl) && !f->phead) {
        send_call(cl, k);
        return;
    }
    /* the link is (re)connecting: wait for it, bounded, rather than fail at once */
    if (f->npending >= PENDING_MAX) {
        free(k);
        reply_unreachable(c->req);
        return;
    }
    if (!f->timer_init) {
        uv_timer_init(c->app->loop, &f->timer);
        f->timer.data = n;
        f->timer_init = 1;
    }
    k->deadline_ns = ekv_clock_mono_ns() + (uint64_t)PENDING_WAIT_MS * 1000000u;
    if (f->ptail)
        f->ptail->next = k;
    else
        f->phead = k;
    f->ptail = k;
    f->npending++;
    if (!uv_is_active((uv_handle_t *)&f->timer))
        uv_timer_start(&f->timer, pending_tick, PENDING_TICK_MS, PENDING_TICK_MS);
}

void ekv_node_forward_do_stop(ekv_node_t *n)
{
    struct ekv_do_fwd_s *f = n->do_fwd;
    if (!f)
        return;
    if (f->timer_init) {
        pending_tick(&f->timer); /* n->stopping: every waiting call gets its 503 now */
        uv_close((uv_handle_t *)&f->timer, NULL);
        f->timer_init = 0;
    }
    if (f->client) {
        ekv_rpc_client_t *old = f->client;
        f->client = NULL;
        ekv_rpc_client_stop(old, old_stopped, old);
    }
}
