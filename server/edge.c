/*
 * edge.c - the edge role's request path (docs/CONSISTENCY.md): an edge holds no data. After
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
 * (server/node_role.c) and bounded in staleness by its TTL; with every upstream down, entries
 * past their TTL are still served for --stale-if-error-s.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/link.h"
#include "replication/replica.h"
#include "replication/rpc_client.h"
#include "server/app.h"
#include "server/edge.h"
#include "server/reply.h"
#include "server/urlcodec.h"

#include <inttypes.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_UPSTREAMS   17 /* the primary + 16 replicas */
#define FLIGHT_BUCKETS  1024
#define MIN_CACHE_TTL_S 30

typedef struct waiter_s {
    ekv_req_t *req;
    struct waiter_s *next;
} waiter_t;

/* One upstream fetch of a value, shared by every request for the same key meanwhile. */
typedef struct flight_s {
    ekv_edge_t *edge;
    uint8_t nsid[EKV_NSID_LEN];
    char *key;
    size_t key_len;
    uint64_t hash;
    int dirty;      /* the key changed while the fetch was on its way: do not cache it */
    int64_t ttl_ms; /* of the first request */
    waiter_t *waiters;
    size_t nwaiters;
    struct flight_s *hnext;
} flight_t;

/* A successful catalog write (namespace, token) whose reply waits until this edge's change
 * stream has applied it, so the client's next call through this edge finds the namespace or
 * token in the edge's catalog (read-your-writes for the catalog too). */
typedef struct held_s {
    ekv_req_t *req;
    uint64_t seq;
    uint64_t deadline_ns;
    int status;
    char *ctype, *headers, *body;
    size_t body_len;
    struct held_s *next;
} held_t;

#define HOLD_MAX_MS 2000

/* A relayed call: the client request, and where we are in the upstream order. */
typedef struct call_s {
    ekv_edge_t *edge;
    ekv_req_t *req; /* NULL for a flight's fetch */
    flight_t *flight;
    Edgekv__Request rq;
    int is_write;
    int catalog_op; /* a write that changes the catalog: hold the reply (held_t) */
    int tried;      /* upstreams tried so far */
    int start;      /* first replica index (spreads reads) */
    int last_err;
} call_t;

struct ekv_edge_s {
    ekv_app_t *app;
    ekv_rpc_client_t *primary;
    ekv_rpc_client_t *replicas[MAX_UPSTREAMS - 1];
    int nreplicas;
    unsigned rr; /* round robin over replicas */
    uint64_t max_write_seq;
    int64_t ttl_ms, stale_ms;
    size_t max_fetches;
    held_t *held;
    uv_timer_t hold_timer;
    int hold_timer_on;
    flight_t *flights[FLIGHT_BUCKETS];
    size_t nflights;
    int stopping, clients_open;
    void (*stop_done)(void *);
    void *stop_arg;
    ekv_edge_stats_t st;
};

/* ---------------------------------------------------------------- helpers */

static void fill_request(Edgekv__Request *rq, ekv_req_t *req)
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
    rq->body.data = (uint8_t *)req->body.data;
    rq->body.len = req->body.len;
}

static void relay(ekv_req_t *req, const Edgekv__Response *r)
{
    ekv_http_send(req, (int)r->status, r->content_type[0] ? r->content_type : NULL,
                  r->headers[0] ? r->headers : NULL, r->body.data, r->body.len, NULL, NULL);
}

static void reply_unavailable(ekv_req_t *req, int is_write, int err)
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

static void call_send(call_t *c);

/* ---------------------------------------------------------------- single-flight */

static void flight_finish(flight_t *f, const Edgekv__Response *r, int err);

static uint64_t stream_seq(ekv_edge_t *e)
{
    return e->app->node.replica ? ekv_repl_replica_applied_seq(e->app->node.replica) : 0;
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
        relay(req, r);
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
            flight_finish(c->flight, resp, 0);
        else if (c->catalog_op && resp->status < 300)
            hold_or_relay(e, c->req, resp);
        else
            relay(c->req, resp);
        free(c);
        return;
    }
    c->last_err = status;
    c->tried++;
    call_send(c);
}

static void call_send(call_t *c)
{
    ekv_edge_t *e = c->edge;
    for (;;) {
        ekv_rpc_client_t *u = upstream_for(e, c);
        if (!u) {
            if (c->flight)
                flight_finish(c->flight, NULL, c->last_err ? c->last_err : EKV_EUPSTREAM);
            else
                reply_unavailable(c->req, c->is_write, c->last_err);
            e->st.upstream_failures++;
            free(c);
            return;
        }
        if (!c->is_write) {
            /* never older than what this edge has already seen: its own writes, and the
             * change stream (a key just invalidated must not be refetched from a replica
             * that has not applied the change yet, or the old value would be cached again) */
            uint64_t seen =
                e->app->node.replica ? ekv_repl_replica_applied_seq(e->app->node.replica) : 0;
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
    fill_request(&c->rq, req);
    if (is_write)
        e->st.writes_forwarded++;
    else
        e->st.reads_forwarded++;
    call_send(c);
}

static flight_t **flight_slot(ekv_edge_t *e, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                              size_t len, uint64_t h)
{
    flight_t **pp = &e->flights[h % FLIGHT_BUCKETS];
    while (*pp && !((*pp)->hash == h && (*pp)->key_len == len &&
                    !memcmp((*pp)->nsid, nsid, EKV_NSID_LEN) && !memcmp((*pp)->key, key, len)))
        pp = &(*pp)->hnext;
    return pp;
}

/* "expiration: N" in a relayed value reply's header lines. */
static int64_t header_expiration(const char *h)
{
    const char *p = h ? strstr(h, "expiration: ") : NULL;
    return p ? strtoll(p + 12, NULL, 10) : 0;
}

static void answer_from_entry(ekv_req_t *req, ekv_cache_entry_t *ce)
{
    if (ce->negative) {
        ekv_cache_entry_release(ce);
        ekv_reply_error(req, EKV_EKEY_NOT_FOUND, "get: 'key not found'");
        return;
    }
    ekv_kv_send_value(req, ce->value, ce->value_len, ce->expiration, ekv_cache_entry_release, ce);
}

static void flight_finish(flight_t *f, const Edgekv__Response *r, int err)
{
    ekv_edge_t *e = f->edge;
    ekv_app_t *app = e->app;
    flight_t **pp = flight_slot(e, f->nsid, f->key, f->key_len, f->hash);
    if (*pp == f)
        *pp = f->hnext;
    e->nflights--;
    int64_t now_ms = ekv_clock_now_ms();
    if (r && !f->dirty) {
        if (r->status == 200)
            ekv_cache_put_ex(app->cache, f->nsid, f->key, f->key_len, (const char *)r->body.data,
                             r->body.len, header_expiration(r->headers), 0, now_ms + f->ttl_ms);
        else if (r->status == 404 && r->body.len &&
                 memmem(r->body.data, r->body.len, "\"code\":10009", sizeof("\"code\":10009") - 1))
            ekv_cache_put_ex(app->cache, f->nsid, f->key, f->key_len, NULL, 0, 0, 1,
                             now_ms + f->ttl_ms);
    }
    ekv_cache_entry_t *stale = NULL;
    if (!r) { /* every upstream failed: stale-if-error within the bound */
        ekv_cache_entry_t *ce =
            ekv_cache_get(app->cache, f->nsid, f->key, f->key_len, ekv_clock_now_s());
        if (ce && ce->fresh_until_ms + e->stale_ms > now_ms)
            stale = ce;
        else if (ce)
            ekv_cache_entry_release(ce);
    }
    for (waiter_t *w = f->waiters, *next; w; w = next) {
        next = w->next;
        if (r) {
            relay(w->req, r);
        } else if (stale) {
            e->st.stale_served++;
            stale->refs++;
            answer_from_entry(w->req, stale);
        } else {
            reply_unavailable(w->req, 0, err);
        }
        free(w);
    }
    if (stale)
        ekv_cache_entry_release(stale);
    free(f->key);
    free(f);
}

static void value_get(ekv_call_t *c)
{
    ekv_app_t *app = c->app;
    ekv_edge_t *e = app->node.edge;
    ekv_req_t *req = c->req;
    /* cache_ttl (Workers KV's cacheTtl): at least 30 s */
    int64_t ttl_ms = e->ttl_ms;
    ekv_query_t q;
    char buf[32];
    size_t blen;
    if (ekv_query_parse(req->query, req->query_len, &q) == 0 &&
        ekv_query_get(&q, "cache_ttl", buf, sizeof(buf), &blen) == 1) {
        char *end;
        long long v = strtoll(buf, &end, 10);
        if (blen == 0 || *end || v < MIN_CACHE_TTL_S) {
            ekv_reply_error(req, EKV_EBAD_REQUEST,
                            "Invalid cache_ttl of %s. Cache TTL must be at least %d.", buf,
                            MIN_CACHE_TTL_S);
            return;
        }
        ttl_ms = v * 1000;
    }
    size_t klen;
    char *key = ekv_kv_key_param_or_reply(c, &klen);
    if (!key)
        return;
    int64_t now_ms = ekv_clock_now_ms();
    ekv_cache_entry_t *ce = ekv_cache_get(app->cache, c->nsid, key, klen, ekv_clock_now_s());
    if (ce && (!ce->fresh_until_ms || ce->fresh_until_ms > now_ms)) {
        free(key);
        e->st.hits++;
        answer_from_entry(req, ce);
        return;
    }
    if (ce && e->nflights >= e->max_fetches && ce->fresh_until_ms + e->stale_ms > now_ms) {
        /* refill is rate-limited (below): meanwhile an expired entry is better than a 503 */
        free(key);
        e->st.stale_served++;
        answer_from_entry(req, ce);
        return;
    }
    if (ce)
        ekv_cache_entry_release(ce);
    e->st.misses++;
    ekv_cache_note_miss(app->cache);
    uint64_t h = ekv_cache_key_hash(c->nsid, key, klen);
    flight_t **pp = flight_slot(e, c->nsid, key, klen, h);
    waiter_t *w = calloc(1, sizeof(*w));
    if (!w) {
        free(key);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    w->req = req;
    if (*pp) { /* a fetch for this key is on its way: wait for it */
        flight_t *f = *pp;
        w->next = f->waiters;
        f->waiters = w;
        f->nwaiters++;
        e->st.coalesced++;
        free(key);
        return;
    }
    if (e->nflights >= e->max_fetches) {
        /* refill is rate-limited: never more than max_fetches upstream fetches at once (after
         * an outage every edge would otherwise refill its whole cache at the same moment) */
        free(w);
        free(key);
        e->st.fetches_refused++;
        ekv_reply_busy_msg(req, EKV_EBUSY, "too many cache misses in flight at this edge");
        return;
    }
    flight_t *f = calloc(1, sizeof(*f));
    call_t *cl = calloc(1, sizeof(*cl));
    if (!f || !cl) {
        free(f);
        free(cl);
        free(w);
        free(key);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    f->edge = e;
    memcpy(f->nsid, c->nsid, EKV_NSID_LEN);
    f->key = key;
    f->key_len = klen;
    f->hash = h;
    f->ttl_ms = ttl_ms;
    f->waiters = w;
    f->nwaiters = 1;
    *pp = f;
    e->nflights++;
    e->st.upstream_fetches++;
    cl->edge = e;
    cl->flight = f;
    cl->start = e->nreplicas ? (int)(e->rr++ % (unsigned)e->nreplicas) : 0;
    /* the fetch is the first waiter's request, without its cache_ttl (same answer) */
    fill_request(&cl->rq, req);
    cl->rq.query.len = 0;
    call_send(cl);
}

/* ---------------------------------------------------------------- entry points */

void ekv_edge_handle(ekv_call_t *c)
{
    ekv_app_t *app = c->app;
    ekv_edge_t *e = app->node.edge;
    const ekv_route_t *r = c->route;
    if (r->handler == (void (*)(void))ekv_h_value_get) {
        value_get(c);
        return;
    }
    int is_write = ekv_route_is_write(c->req, r);
    if (is_write && (r->flags & EKV_RT_NS)) {
        /* read-your-writes at this edge: drop what the write makes stale here now (the change
         * stream does it everywhere else) */
        if (r->handler == (void (*)(void))ekv_h_value_put ||
            r->handler == (void (*)(void))ekv_h_value_delete) {
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
    void (*h)(void) = r->handler;
    int catalog_op = is_write && h != (void (*)(void))ekv_h_value_put &&
                     h != (void (*)(void))ekv_h_value_delete &&
                     h != (void (*)(void))ekv_h_bulk_put && h != (void (*)(void))ekv_h_bulk_delete;
    forward(e, c->req, is_write, catalog_op);
}

int ekv_edge_start(ekv_app_t *app)
{
    ekv_config_t *cfg = app->cfg;
    ekv_edge_t *e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->app = app;
    e->ttl_ms = cfg->cache_ttl_s * 1000;
    e->stale_ms = cfg->stale_if_error_s * 1000;
    e->max_fetches = (size_t)cfg->edge_max_fetches;
    ekv_rpc_client_opts_t o = {0};
    o.loop = app->loop;
    o.node_id = app->node.node_id;
    o.timeout_ms = (int)cfg->upstream_timeout_ms;
    o.link_timeout_ms = (int)cfg->repl_timeout_ms;
    o.heartbeat_ms = (int)cfg->repl_heartbeat_ms;
    char host[256];
    int port;
    if (ekv_repl_parse_addr(cfg->primary, host, sizeof(host), &port)) {
        ekv_log_error("an edge needs --primary HOST:PORT (the primary's --repl-listen)",
                      "value=\"%s\"", cfg->primary);
        free(e);
        return -1;
    }
    o.host = host;
    o.port = port;
    if (ekv_rpc_client_start(&e->primary, &o)) {
        free(e);
        return -1;
    }
    e->clients_open = 1;
    const char *p = cfg->replicas;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        char addr[256];
        if (n == 0 || n >= sizeof(addr) || e->nreplicas >= MAX_UPSTREAMS - 1) {
            ekv_log_error("bad --replicas (want HOST:PORT[,HOST:PORT...], at most 16)",
                          "value=\"%s\"", cfg->replicas);
            return -1;
        }
        memcpy(addr, p, n);
        addr[n] = '\0';
        if (ekv_repl_parse_addr(addr, host, sizeof(host), &port)) {
            ekv_log_error("bad --replicas address", "value=\"%s\"", addr);
            return -1;
        }
        o.host = host;
        o.port = port;
        if (ekv_rpc_client_start(&e->replicas[e->nreplicas], &o))
            return -1;
        e->nreplicas++;
        e->clients_open++;
        p = end ? end + 1 : p + n;
    }
    uv_timer_init(app->loop, &e->hold_timer);
    e->hold_timer.data = e;
    app->node.edge = e;
    ekv_log_info("edge upstreams", "primary=%s replicas=%d cache_ttl_s=%lld stale_if_error_s=%lld",
                 cfg->primary, e->nreplicas, (long long)cfg->cache_ttl_s,
                 (long long)cfg->stale_if_error_s);
    return 0;
}

void ekv_edge_invalidated(ekv_edge_t *e, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                          size_t len)
{
    if (!e->nflights)
        return;
    if (key) {
        flight_t **pp = flight_slot(e, nsid, key, len, ekv_cache_key_hash(nsid, key, len));
        if (*pp)
            (*pp)->dirty = 1;
        return;
    }
    for (size_t b = 0; b < FLIGHT_BUCKETS; b++)
        for (flight_t *f = e->flights[b]; f; f = f->hnext)
            if (!nsid || !memcmp(f->nsid, nsid, EKV_NSID_LEN))
                f->dirty = 1;
}

void ekv_edge_stats(const ekv_edge_t *e, ekv_edge_stats_t *out)
{
    *out = e->st;
    out->inflight_fetches = e->nflights;
}

size_t ekv_edge_upstreams(const ekv_edge_t *e, ekv_edge_upstream_t *out, size_t cap)
{
    size_t n = 0;
    for (int i = -1; i < e->nreplicas && n < cap; i++) {
        const ekv_rpc_client_t *c = i < 0 ? e->primary : e->replicas[i];
        ekv_edge_upstream_t *u = &out[n++];
        u->role = i < 0 ? "primary" : "replica";
        snprintf(u->addr, sizeof(u->addr), "%s", ekv_rpc_client_addr(c));
        u->ready = ekv_rpc_client_ready(c);
        u->seq = ekv_rpc_client_seq(c);
        ekv_rpc_client_stats(c, &u->rpc);
    }
    return n;
}

int ekv_edge_primary_ready(const ekv_edge_t *e)
{
    return ekv_rpc_client_ready(e->primary);
}

uint64_t ekv_edge_max_write_seq(const ekv_edge_t *e)
{
    return e->max_write_seq;
}

static void client_stopped(void *arg)
{
    ekv_edge_t *e = arg;
    if (--e->clients_open == 0 && e->stop_done) {
        void (*done)(void *) = e->stop_done;
        e->stop_done = NULL;
        done(e->stop_arg);
    }
}

static void hold_timer_closed(uv_handle_t *h)
{
    client_stopped(h->data);
}

void ekv_edge_stop(ekv_edge_t *e, void (*done)(void *arg), void *arg)
{
    e->stopping = 1;
    ekv_edge_on_stream(e); /* answers every held reply */
    e->stop_done = done;
    e->stop_arg = arg;
    e->clients_open++; /* the hold timer */
    uv_close((uv_handle_t *)&e->hold_timer, hold_timer_closed);
    ekv_rpc_client_stop(e->primary, client_stopped, e);
    for (int i = 0; i < e->nreplicas; i++)
        ekv_rpc_client_stop(e->replicas[i], client_stopped, e);
}

void ekv_edge_free(ekv_edge_t *e)
{
    if (!e)
        return;
    ekv_rpc_client_free(e->primary);
    for (int i = 0; i < e->nreplicas; i++)
        ekv_rpc_client_free(e->replicas[i]);
    free(e);
}
