/*
 * relay.c - the edge role's request path (docs/CONSISTENCY.md): an edge holds no data. After
 * the common front (routing, body limits, auth against the replicated token table, namespace
 * check) every API call is answered here:
 *
 *   value GET   cache (fresh hit: on the loop, no upstream call) -> single-flight miss -> read
 *   other reads one RPC to a replica (spread, failover to the next replica, then the primary)
 *   writes      one RPC to the primary; the client gets the primary's answer
 *
 * Upstream calls go over persistent multiplexed RPC links (replication/rpc_client.h). Reads
 * carry min_seq = the highest seq of any write this edge forwarded, so a client reads its own
 * writes through the edge it wrote through (a replica that is behind answers "behind" and the
 * read goes to the primary). The cache is kept coherent by the keys-only change stream
 * (server/node/follower.c) and bounded in staleness by its TTL; with every upstream down, entries
 * past their TTL are still served for --stale-if-error-s.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/http/reply.h"
#include "server/node/edge/edge_int.h"
#include "replication/frame.h"
#include "replication/replica.h"
#include "server/api/kv/kv.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

void ekv__edge_fill_request(Edgekv__Request *rq, ekv_req_t *req)
{
    edgekv__request__init(rq);
    rq->method = (char *)req->method_str;
    rq->path.data = (uint8_t *)req->path;
    rq->path.len = req->path_len;
    rq->query.data = (uint8_t *)req->query;
    rq->query.len = req->query_len;
    static char empty[] = "";
    rq->authorization =
        req->hdr[EKV_HDR_AUTHORIZATION].present ? req->hdr[EKV_HDR_AUTHORIZATION].v : empty;
    rq->content_type =
        req->hdr[EKV_HDR_CONTENT_TYPE].present ? req->hdr[EKV_HDR_CONTENT_TYPE].v : empty;
    rq->x_auth_email =
        req->hdr[EKV_HDR_X_AUTH_EMAIL].present ? req->hdr[EKV_HDR_X_AUTH_EMAIL].v : empty;
    rq->x_auth_key = req->hdr[EKV_HDR_X_AUTH_KEY].present ? req->hdr[EKV_HDR_X_AUTH_KEY].v : empty;
    rq->headers = req->other_headers ? (char *)req->other_headers : empty;
    rq->body.data = (uint8_t *)req->body.data;
    rq->body.len = req->body.len;
}

void ekv__edge_relay(ekv_req_t *req, const Edgekv__Response *r)
{
    ekv_http_send(req, (int)r->status, r->content_type[0] ? r->content_type : NULL,
                  r->headers[0] ? r->headers : NULL, r->body.data, r->body.len, NULL, NULL);
}

void ekv__edge_reply_unavailable(ekv_req_t *req, int is_write, int err)
{
    if (is_write) /* degraded mode: fail fast, 503 + Retry-After */
        ekv_reply_busy_msg(req, EKV_EUPSTREAM,
                           err == EKV_ETIMEOUT
                               ? "the primary did not answer in time; the write may or may not "
                                 "have been applied"
                               : "the primary is unavailable; writes are not accepted right "
                                 "now, retry later");
    else if (err == EKV_ETIMEOUT)
        ekv_reply_error(req, EKV_ETIMEOUT, "no upstream answered in time");
    else
        ekv_reply_busy_msg(req, EKV_EUPSTREAM, "no replica or primary is reachable from this edge");
}

/* The upstream for attempt number `tried` of a call: writes go to the primary only; reads go
 * to the replicas starting at c->start, then the primary. NULL when none is left. */
static ekv_rpc_client_t *upstream_for(ekv_edge_t *e, call_t *c)
{
    if (c->is_write)
        return c->tried == 0 ? e->primary : NULL;
    if (c->tried < e->nreplicas)
        return e->replicas[(c->start + c->tried) % e->nreplicas];
    return c->tried == e->nreplicas ? e->primary : NULL;
}

static uint64_t stream_seq(ekv_edge_t *e)
{
    return e->node->replica ? ekv_repl_replica_applied_seq(e->node->replica) : 0;
}

static void held_send(held_t *h)
{
    ekv_http_send(h->req, h->status, h->ctype[0] ? h->ctype : NULL,
                  h->headers[0] ? h->headers : NULL, h->body, h->body_len, NULL, NULL);
    free(h->ctype);
    free(h->headers);
    free(h->body);
    free(h);
}

void ekv_edge_on_stream(ekv_edge_t *e)
{
    uint64_t seen = stream_seq(e), now = ekv_clock_mono_ns();
    held_t **pp = &e->held;
    while (*pp) {
        held_t *h = *pp;
        if (h->seq <= seen || now >= h->deadline_ns || e->stopping) {
            *pp = h->next;
            held_send(h);
        } else {
            pp = &h->next;
        }
    }
    if (!e->held && e->hold_timer_on) {
        uv_timer_stop(&e->hold_timer);
        e->hold_timer_on = 0;
    }
}

static void hold_tick(uv_timer_t *t)
{
    ekv_edge_on_stream(t->data);
}

/* Hold a catalog write's reply until the stream has it; relay at once if impossible. */
static void hold_or_relay(ekv_edge_t *e, ekv_req_t *req, const Edgekv__Response *r)
{
    held_t *h = calloc(1, sizeof(*h));
    if (h) {
        h->ctype = strdup(r->content_type);
        h->headers = strdup(r->headers);
        h->body = malloc(r->body.len ? r->body.len : 1);
    }
    if (!h || !h->ctype || !h->headers || !h->body || r->seq <= stream_seq(e)) {
        if (h) {
            free(h->ctype);
            free(h->headers);
            free(h->body);
            free(h);
        }
        ekv__edge_relay(req, r);
        return;
    }
    memcpy(h->body, r->body.data, r->body.len);
    h->body_len = r->body.len;
    h->req = req;
    h->status = (int)r->status;
    h->seq = r->seq;
    h->deadline_ns = ekv_clock_mono_ns() + (uint64_t)HOLD_MAX_MS * 1000000ull;
    h->next = e->held;
    e->held = h;
    if (!e->hold_timer_on) {
        uv_timer_start(&e->hold_timer, hold_tick, 50, 50);
        e->hold_timer_on = 1;
    }
}

static void call_done(void *ctx, int status, const Edgekv__Response *resp)
{
    call_t *c = ctx;
    ekv_edge_t *e = c->edge;
    if (status == 0 && resp->status == 0)
        status = EKV_EUPSTREAM; /* a replica behind min_seq, or shutting down: next one */
    if (status == 0 && resp->status >= 500 && !c->is_write)
        status = EKV_EUPSTREAM; /* an upstream's own failure: a read may go elsewhere */
    if (status == 0) {
        if (c->is_write && resp->status < 300 && resp->seq > e->max_write_seq)
            e->max_write_seq = resp->seq;
        if (c->flight)
            ekv__edge_flight_finish(c->flight, resp, 0);
        else if (c->catalog_op && resp->status < 300)
            hold_or_relay(e, c->req, resp);
        else
            ekv__edge_relay(c->req, resp);
        free(c);
        return;
    }
    c->last_err = status;
    c->tried++;
    ekv__edge_call_send(c);
}

void ekv__edge_call_send(call_t *c)
{
    ekv_edge_t *e = c->edge;
    for (;;) {
        ekv_rpc_client_t *u = upstream_for(e, c);
        if (!u) {
            if (c->flight)
                ekv__edge_flight_finish(c->flight, NULL, c->last_err ? c->last_err : EKV_EUPSTREAM);
            else
                ekv__edge_reply_unavailable(c->req, c->is_write, c->last_err);
            e->st.upstream_failures++;
            free(c);
            return;
        }
        if (!c->is_write) {
            /* never older than what this edge has already seen: its own writes, and the
             * change stream (a key just invalidated must not be refetched from a replica
             * that has not applied the change yet, or the old value would be cached again) */
            uint64_t seen = e->node->replica ? ekv_repl_replica_applied_seq(e->node->replica) : 0;
            c->rq.min_seq = e->max_write_seq > seen ? e->max_write_seq : seen;
        }
        int rc = ekv_rpc_call(u, &c->rq, call_done, c);
        if (rc == 0) {
            if (c->tried)
                e->st.failovers++;
            return;
        }
        if (rc == EKV_ETOO_LARGE && c->req) { /* no upstream can take it through an edge */
            ekv_reply_error(c->req, EKV_ETOO_LARGE,
                            "request too large to relay through an edge (%u MiB max); send it "
                            "to the primary directly",
                            (unsigned)(EKV_REPL_MAX_FRAME >> 20));
            free(c);
            return;
        }
        c->last_err = rc;
        c->tried++;
    }
}

static void forward(ekv_edge_t *e, ekv_req_t *req, int is_write, int catalog_op)
{
    call_t *c = calloc(1, sizeof(*c));
    if (!c) {
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    c->edge = e;
    c->req = req;
    c->is_write = is_write;
    c->catalog_op = catalog_op;
    c->start = e->nreplicas ? (int)(e->rr++ % (unsigned)e->nreplicas) : 0;
    ekv__edge_fill_request(&c->rq, req);
    if (is_write)
        e->st.writes_forwarded++;
    else
        e->st.reads_forwarded++;
    ekv__edge_call_send(c);
}

/* ---------------------------------------------------------------- entry points */

void ekv_edge_handle(ekv_call_t *c)
{
    ekv_app_t *app = c->app;
    ekv_edge_t *e = ekv_node_of(app)->edge;
    const ekv_route_t *r = c->route;
    if (r->kind == EKV_RK_VALUE_READ) {
        ekv__edge_value_get(c);
        return;
    }
    int is_write = ekv_route_kind_is_write(r->kind);
    if (is_write && (r->flags & EKV_RT_NS)) {
        /* read-your-writes at this edge: drop what the write makes stale here now (the change
         * stream does it everywhere else) */
        if (r->kind == EKV_RK_KEY_WRITE) {
            size_t klen;
            char *key = ekv_kv_key_param_or_reply(c, &klen);
            if (!key)
                return;
            ekv_cache_invalidate(app->cache, c->nsid, key, klen);
            ekv_edge_invalidated(e, c->nsid, key, klen);
            free(key);
        } else {
            ekv_cache_invalidate_ns(app->cache, c->nsid);
            ekv_edge_invalidated(e, c->nsid, NULL, 0);
        }
    }
    forward(e, c->req, is_write, r->kind == EKV_RK_CATALOG_WRITE);
}
