/*
 * route.c - where a Durable Object call is answered (docl.h; role op route_do).
 *
 * A call of one object (storage, alarm, fetch routes) goes to the owner of the object's
 * partition in this node's table: answered here when the partition is ACTIVE here,
 * forwarded over an authenticated link to the owning edge or to the primary otherwise.
 * Other DO calls (namespaces, the objects list, ids) are answered by the primary, the node
 * with the store. A node without a cluster table (standalone) answers everything itself.
 *
 * A call whose partition is moving waits ("parked", at most --do-move-wait-ms, then 503
 * EKV_EDO_NO_OWNER) instead of failing: the partition is pending or loading here or at its
 * new owner, the owner's link is (re)connecting, or the owner answered that it does not
 * own the object any more (503 EKV_EDO_MOVED: nothing was applied) or is shutting down.
 * Parked calls are re-routed when a table is installed, a load ends, or every tick. A call
 * lost on a link after it was sent (the owner died meanwhile) may have been applied: it is
 * answered 503, never retried, unless it only reads (then it is asked again). A forwarded
 * call carries min_seq (the owner answers once its stream has what this node has seen: a
 * namespace just created) and do_hops; one that arrives for an
 * object not owned here after two hops is answered EKV_EDO_MOVED rather than forwarded on.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/link.h"
#include "replication/replica.h"
#include "server/api/do/do.h"
#include "server/http/reply.h"
#include "server/node/do/docl.h"
#include "server/node/edge/edge_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MS     50 /* a call that found no link or a moving owner tries again after */
#define MAX_HOPS     2
#define FWD_SLACK_MS 5000

enum { R_HERE = 0, R_PARK, R_FORWARD, R_ANSWERED };

/* The primary's link address ("" when unknown): the one a replica follows, else the first
 * --primary. */
static void primary_addr(ekv_node_t *n, char *out, size_t cap)
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
    if (n->docl && n->docl->paddr[0]) {
        snprintf(out, cap, "%s", n->docl->paddr);
        return;
    }
    const char *p = n->cfg->primary;
    size_t len = strcspn(p, ",");
    if (len < cap) {
        memcpy(out, p, len);
        out[len] = '\0';
    }
}

static void link_stopped(void *arg)
{
    ekv_rpc_client_free(arg);
}

ekv_rpc_client_t *ekv__docl_link(ekv_docl_t *c, const char *addr, int timeout_ms)
{
    for (size_t i = 0; i < c->nlinks; i++)
        if (strcmp(c->links[i].addr, addr) == 0)
            return c->links[i].client;
    char host[256];
    int port;
    if (ekv_repl_parse_addr(addr, host, sizeof(host), &port) || strlen(addr) >= EKV_DO_ADDR_MAX)
        return NULL;
    if (c->nlinks == DOCL_MAX_LINKS) { /* drop the oldest */
        ekv_rpc_client_t *old = c->links[0].client;
        memmove(&c->links[0], &c->links[1], (DOCL_MAX_LINKS - 1) * sizeof(c->links[0]));
        c->nlinks--;
        ekv_rpc_client_stop(old, link_stopped, old);
    }
    ekv_node_t *n = c->n;
    ekv_rpc_client_opts_t o = {0};
    o.loop = n->app->loop;
    o.host = host;
    o.port = port;
    o.auth = n->auth;
    o.node_id = n->node_id;
    o.timeout_ms = timeout_ms;
    o.link_timeout_ms = (int)n->cfg->repl_timeout_ms;
    o.heartbeat_ms = (int)n->cfg->repl_heartbeat_ms;
    docl_link_t *l = &c->links[c->nlinks];
    if (ekv_rpc_client_start(&l->client, &o))
        return NULL;
    snprintf(l->addr, sizeof(l->addr), "%s", addr);
    c->nlinks++;
    return l->client;
}

/* The partition of a call's object, or -1 when its id is not 64 hex digits. */
static long partition_of(const ekv_call_t *call)
{
    const ekv_slice_t *s = &call->params.v[2];
    uint8_t head[2];
    size_t got;
    if (s->n != 2 * EKV_DO_OBJID_LEN || ekv_hex_decode(s->p, 4, head, sizeof(head), &got))
        return -1; /* the partition needs only the first two bytes */
    return (long)ekv_do_partition_of(head);
}

/* The change-log position this node has seen: what it committed (the primary) or applied
 * from its stream, or what the primary told it when it last answered. */
static uint64_t known_seq(ekv_node_t *n)
{
    uint64_t s = n->docl ? n->docl->primary_seq_seen : 0;
    uint64_t mine = n->app->store && !n->replica ? ekv_store_last_seq(n->app->store)
                    : n->replica                 ? ekv_repl_replica_applied_seq(n->replica)
                                                 : 0;
    return mine > s ? mine : s;
}

/* On an owner edge: 1 when the call's namespace is unknown here while this node's change
 * stream is behind what the primary had committed when we last heard from it (a namespace
 * just created through any node: wait for the stream rather than answer 404). */
static int ns_behind(ekv_node_t *n, const ekv_call_t *call)
{
    ekv_docl_t *c = n->docl;
    const ekv_slice_t *s = &call->params.v[1];
    uint8_t dons[EKV_NSID_LEN];
    size_t got = 0;
    if (!n->app->dos || s->n != 2 * EKV_NSID_LEN ||
        ekv_hex_decode(s->p, s->n, dons, sizeof(dons), &got) || got != EKV_NSID_LEN ||
        ekv_do_ns_live(n->app->dos, dons) || !n->replica)
        return 0;
    uint64_t seen = c->primary_seq_seen;
    if (c->plink && ekv_rpc_client_seq(c->plink) > seen)
        seen = ekv_rpc_client_seq(c->plink);
    return ekv_repl_replica_applied_seq(n->replica) < seen;
}

/* What to do with a call now; *addr = where to forward it. */
static int decide(ekv_node_t *n, const ekv_call_t *call, char *addr, size_t cap)
{
    ekv_docl_t *c = n->docl;
    int full = n->app->store != NULL && !n->fenced &&
               (n->role == EKV_ROLE_PRIMARY || n->role == EKV_ROLE_STANDALONE) && n->app->dos;
    int obj = (call->route->flags & EKV_RT_DO_OBJECT) != 0;
    long p = obj ? partition_of(call) : -1;
    if (!c || p < 0) {
        /* not one object (or a bad id, which the primary answers): the primary's */
        if (full)
            return R_HERE;
        primary_addr(n, addr, cap);
        return addr[0] ? R_FORWARD : R_PARK;
    }
    const ekv_do_table_t *t = c->table;
    int o = ekv_do_table_owner(t, (uint32_t)p);
    if (o == EKV_DO_OWNER_PRIMARY) {
        if (c->placing)
            return c->here[p] == DOCL_ACTIVE ? R_HERE : R_PARK;
        primary_addr(n, addr, cap);
        return addr[0] ? R_FORWARD : R_PARK;
    }
    if (c->owning && o == ekv__docl_self(c)) {
        if (c->here[p] != DOCL_ACTIVE)
            return R_PARK;
        return ns_behind(n, call) ? R_PARK : R_HERE;
    }
    if (t->pending[p])
        return R_PARK;
    snprintf(addr, cap, "%s", t->addr[o]);
    return addr[0] ? R_FORWARD : R_PARK;
}

/* ---------------------------------------------------------------- parking */

static void park_append(ekv_docl_t *c, docl_park_t *k)
{
    if (c->ptail)
        c->ptail->next = k;
    else
        c->phead = k;
    c->ptail = k;
    c->nparked++;
}

static void park(ekv_docl_t *c, const ekv_call_t *call, uint64_t deadline_ns, int retry_later)
{
    if (c->nparked >= DOCL_PARK_MAX) {
        ekv_reply_busy_msg(call->req, EKV_EDO_NO_OWNER,
                           "too many Durable Object calls wait for their objects to move; "
                           "retry later");
        return;
    }
    docl_park_t *k = calloc(1, sizeof(*k));
    if (!k) {
        ekv_reply_error(call->req, EKV_ENOMEM, NULL);
        return;
    }
    k->call = *call;
    k->deadline_ns = deadline_ns;
    k->not_before_ns = retry_later ? ekv_clock_mono_ns() + (uint64_t)RETRY_MS * 1000000ull : 0;
    park_append(c, k);
    c->st.parked++;
}

static void route(ekv_docl_t *c, ekv_call_t *call, uint64_t deadline_ns);

typedef struct {
    ekv_docl_t *c;
    ekv_node_t *n;
    ekv_call_t call;
    uint64_t deadline_ns;
} fwd_t;

static void answered(void *ctx, int status, const Edgekv__Response *resp)
{
    fwd_t *f = ctx;
    ekv_node_t *n = f->n;
    ekv_docl_t *c = n->docl == f->c ? f->c : NULL;
    if (status == 0 && c && resp->seq > c->primary_seq_seen &&
        !(f->call.route->flags & EKV_RT_DO_OBJECT))
        c->primary_seq_seen = resp->seq; /* the primary answered (namespaces, objects list) */
    if (status == 0 && resp->status != 0 &&
        resp->error_code != (uint32_t)ekv_err_cf_code(EKV_EDO_MOVED)) {
        ekv__edge_relay(f->call.req, resp);
    } else if (status == 0 && c && !c->stopping) {
        /* not executed there (a move, or it is stopping): nothing was applied, try again */
        park(c, &f->call, f->deadline_ns, 1);
    } else if (status == 0) {
        ekv_reply_error(f->call.req, EKV_EDO_MOVED, NULL);
    } else if (c && !c->stopping && !(f->call.route->flags & EKV_RT_DO_WRITE) &&
               ekv_clock_mono_ns() < f->deadline_ns) {
        /* a read (storage get/list, get alarm) lost with its owner: safe to ask again */
        park(c, &f->call, f->deadline_ns, 1);
    } else {
        /* lost after it was sent: it may have been applied there; the client decides */
        ekv_reply_busy_msg(f->call.req, status == EKV_ETIMEOUT ? EKV_ETIMEOUT : EKV_EUPSTREAM,
                           status == EKV_ETIMEOUT
                               ? "the Durable Object's owner did not answer in time"
                               : "the link to the Durable Object's owner was lost during the "
                                 "call; it may or may not have been applied");
    }
    free(f);
}

/* 0 when sent; -1 when it could not be sent now (the link is not up, or full). */
static int forward(ekv_docl_t *c, ekv_call_t *call, const char *addr, uint64_t deadline_ns)
{
    ekv_node_t *n = c->n;
    int timeout = (int)(n->cfg->do_call_wait_ms + n->cfg->do_call_timeout_ms + FWD_SLACK_MS);
    ekv_rpc_client_t *cl = ekv__docl_link(c, addr, timeout);
    if (!cl || !ekv_rpc_client_ready(cl))
        return -1;
    fwd_t *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->c = c;
    f->n = n;
    f->call = *call;
    f->deadline_ns = deadline_ns;
    Edgekv__Request rq;
    ekv__edge_fill_request(&rq, call->req);
    rq.do_hops = call->req->do_hops + 1;
    /* the owner answers once it has seen what this node has (a namespace just created) */
    rq.min_seq = known_seq(n);
    int rc = ekv_rpc_call(cl, &rq, answered, f);
    if (rc == 0) {
        c->st.forwarded++;
        return 0;
    }
    free(f);
    if (rc == EKV_ETOO_LARGE) {
        ekv_reply_error(call->req, EKV_ETOO_LARGE, "request too large to forward to the owner");
        return 0;
    }
    return -1;
}

static void route(ekv_docl_t *c, ekv_call_t *call, uint64_t deadline_ns)
{
    char addr[EKV_DO_ADDR_MAX + 300];
    int d = decide(c->n, call, addr, sizeof(addr));
    if (d == R_HERE) {
        ekv_app_run_do(call);
        return;
    }
    if (d == R_FORWARD && call->req->do_hops >= MAX_HOPS) {
        ekv_reply_error(call->req, EKV_EDO_MOVED, NULL); /* the sender retries */
        return;
    }
    if (d == R_FORWARD && forward(c, call, addr, deadline_ns) == 0)
        return;
    park(c, call, deadline_ns, d == R_FORWARD);
}

void ekv__docl_route_tick(ekv_docl_t *c)
{
    if (!c->phead)
        return;
    uint64_t now = ekv_clock_mono_ns();
    /* take the list: calls routed now may park again (at its new tail) */
    docl_park_t *list = c->phead;
    c->phead = c->ptail = NULL;
    c->nparked = 0;
    while (list) {
        docl_park_t *k = list;
        list = k->next;
        k->next = NULL;
        if (c->stopping || now >= k->deadline_ns) {
            c->st.park_timeouts += !c->stopping;
            ekv_reply_busy_msg(k->call.req, EKV_EDO_NO_OWNER,
                               "no node served this Durable Object within --do-move-wait-ms "
                               "(its partition is moving, or its owner is unreachable); it was "
                               "not applied");
            free(k);
        } else if (now < k->not_before_ns) {
            park_append(c, k);
        } else {
            route(c, &k->call, k->deadline_ns);
            free(k);
        }
    }
}

void ekv__docl_route_stop(ekv_docl_t *c)
{
    ekv__docl_route_tick(c); /* c->stopping: every parked call is answered */
    for (size_t i = 0; i < c->nlinks; i++) {
        ekv_rpc_client_t *old = c->links[i].client;
        ekv_rpc_client_stop(old, link_stopped, old);
    }
    c->nlinks = 0;
}

int ekv_node_route_do(ekv_call_t *call)
{
    ekv_node_t *n = ekv_node_of(call->app);
    ekv_docl_t *c = n->docl;
    if (!c) {
        if (n->role == EKV_ROLE_STANDALONE)
            return 0;
        ekv_reply_busy_msg(call->req, EKV_EBUSY,
                           "Durable Objects are not served by this node right now");
        return 1;
    }
    if (n->fenced && n->role == EKV_ROLE_PRIMARY) {
        ekv_reply_busy_msg(call->req, EKV_EBUSY,
                           "this primary was fenced by a newer one: send Durable Object calls "
                           "to the new primary or to an edge");
        return 1;
    }
    char addr[EKV_DO_ADDR_MAX + 300];
    int d = decide(n, call, addr, sizeof(addr));
    if (d == R_HERE)
        return 0;
    uint64_t deadline = ekv_clock_mono_ns() + (uint64_t)c->move_wait_ms * 1000000ull;
    route(c, call, deadline);
    return 1;
}
