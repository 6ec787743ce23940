/*
 * flight.c - an edge's value GETs: a fresh cache entry is answered on the loop; a miss joins
 * the fetch already on its way for that key or starts one (single-flight, at most
 * --edge-max-fetches at once); the answer fills the cache unless the key changed meanwhile
 * (per-key dirty flag set by the change stream); with every upstream down, an entry past its
 * TTL is served for --stale-if-error-s.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/http/blob.h"
#include "server/http/reply.h"
#include "server/node/edge/edge_int.h"
#include "server/api/kv/kv.h"
#include "server/http/urlcodec.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *nsid;
    const char *key;
    size_t len;
} flight_key_t;

static int flight_eq(const ekv_hnode_t *n, const void *key)
{
    const flight_t *f = EKV_HTAB_ENTRY(n, flight_t, hnode);
    const flight_key_t *k = key;
    return f->key_len == k->len && !memcmp(f->nsid, k->nsid, EKV_NSID_LEN) &&
           !memcmp(f->key, k->key, k->len);
}

/* The fetch in flight for (nsid, key) (h = its ekv_cache_key_hash), or NULL. */
static flight_t *flight_find(ekv_edge_t *e, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                             size_t len, uint64_t h)
{
    flight_key_t k = {nsid, key, len};
    ekv_hnode_t *n = ekv_htab_find(&e->flights, h, flight_eq, &k);
    return n ? EKV_HTAB_ENTRY(n, flight_t, hnode) : NULL;
}

static void answer_from_entry(ekv_req_t *req, ekv_cache_entry_t *ce)
{
    if (ce->negative) {
        ekv_cache_entry_release(ce);
        ekv_reply_error(req, EKV_EKEY_NOT_FOUND, "get: 'key not found'");
        return;
    }
    ekv_kv_send_cached(req, ce);
}

void ekv__edge_flight_finish(flight_t *f, const Edgekv__Response *r, int err)
{
    ekv_edge_t *e = f->edge;
    ekv_app_t *app = e->app;
    ekv_htab_remove(&e->flights, &f->hnode);
    int64_t now_ms = ekv_clock_now_ms();
    if (r && !f->dirty) {
        if (r->status == 200)
            ekv_cache_put_ex(app->cache, f->nsid, f->key, f->key_len, (const char *)r->body.data,
                             r->body.len, r->expiration, 0, now_ms + f->ttl_ms);
        else if (r->status == 404 && r->error_code == (uint32_t)ekv_err_cf_code(EKV_EKEY_NOT_FOUND))
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
    /* several clients waiting for one large answer share one copy of it (not one each) */
    ekv_http_blob_t *shared = NULL;
    if (r && f->nwaiters > 1 && r->body.len > EKV_HTTP_COPY_MAX_BYTES)
        shared = ekv_http_blob_new(r->body.data, r->body.len);
    for (waiter_t *w = f->waiters, *next; w; w = next) {
        next = w->next;
        if (shared) {
            ekv_http_send_blob(w->req, (int)r->status, r->content_type[0] ? r->content_type : NULL,
                               r->headers[0] ? r->headers : NULL, shared);
        } else if (r) {
            ekv__edge_relay(w->req, r);
        } else if (stale) {
            e->st.stale_served++;
            stale->refs++;
            answer_from_entry(w->req, stale);
        } else {
            ekv__edge_reply_unavailable(w->req, 0, err);
        }
        free(w);
    }
    if (stale)
        ekv_cache_entry_release(stale);
    if (shared)
        ekv_http_blob_release(shared);
    free(f->key);
    free(f);
}

/* cache_ttl's value: optional '-', then decimal digits only (no spaces, '+', or 0x). Returns 0
 * with *out in [MIN_CACHE_TTL_S, MAX_CACHE_TTL_S], -1 when it is not a number or is below
 * the minimum, 1 when it is above the maximum. Never overflows: digits past the maximum
 * stop the accumulation. */
static int parse_cache_ttl(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = n > 0 && s[0] == '-';
    i += (size_t)neg;
    if (i == n)
        return -1;
    int64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v <= MAX_CACHE_TTL_S)
            v = v * 10 + (s[i] - '0');
    }
    if (neg || v < MIN_CACHE_TTL_S)
        return -1;
    if (v > MAX_CACHE_TTL_S)
        return 1;
    *out = v;
    return 0;
}

void ekv__edge_value_get(ekv_call_t *c)
{
    ekv_app_t *app = c->app;
    ekv_edge_t *e = ekv_node_of(app)->edge;
    ekv_req_t *req = c->req;
    /* cache_ttl (Workers KV's cacheTtl): an integer number of seconds in
     * [MIN_CACHE_TTL_S, MAX_CACHE_TTL_S]; anything else is a 400, never ignored */
    int64_t ttl_ms = e->ttl_ms;
    ekv_query_t q;
    char buf[32];
    size_t blen = 0;
    int got = ekv_query_parse(req->query, req->query_len, &q) == 0
                  ? ekv_query_get(&q, "cache_ttl", buf, sizeof(buf), &blen)
                  : 0;
    if (got != 0) {
        int64_t v;
        if (got != 1) { /* malformed, or longer than any valid value */
            ekv_reply_error(req, EKV_EBAD_REQUEST,
                            "Invalid cache_ttl. Cache TTL must be at most %d.", MAX_CACHE_TTL_S);
            return;
        }
        int r = parse_cache_ttl(buf, blen, &v);
        if (r != 0) {
            ekv_reply_error(req, EKV_EBAD_REQUEST,
                            r > 0 ? "Invalid cache_ttl of %s. Cache TTL must be at most %d."
                                  : "Invalid cache_ttl of %s. Cache TTL must be at least %d.",
                            buf, r > 0 ? MAX_CACHE_TTL_S : MIN_CACHE_TTL_S);
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
    if (ce && ekv_htab_count(&e->flights) >= e->max_fetches &&
        ce->fresh_until_ms + e->stale_ms > now_ms) {
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
    flight_t *f = flight_find(e, c->nsid, key, klen, h);
    if (!f && !ekv_http_reply_room(req)) { /* a joined fetch is shared; a new one is not */
        free(key);
        ekv_reply_busy(req, EKV_EREPLY_MEMORY);
        return;
    }
    waiter_t *w = calloc(1, sizeof(*w));
    if (!w) {
        free(key);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    w->req = req;
    if (f) { /* a fetch for this key is on its way: wait for it */
        w->next = f->waiters;
        f->waiters = w;
        f->nwaiters++;
        e->st.coalesced++;
        free(key);
        return;
    }
    if (ekv_htab_count(&e->flights) >= e->max_fetches) {
        /* refill is rate-limited: never more than max_fetches upstream fetches at once (after
         * an outage every edge would otherwise refill its whole cache at the same moment) */
        free(w);
        free(key);
        e->st.fetches_refused++;
        ekv_reply_busy_msg(req, EKV_EBUSY, "too many cache misses in flight at this edge");
        return;
    }
    f = calloc(1, sizeof(*f));
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
    f->ttl_ms = ttl_ms;
    f->waiters = w;
    f->nwaiters = 1;
    ekv_htab_insert(&e->flights, &f->hnode, h); /* reserved at start: cannot fail */
    e->st.upstream_fetches++;
    cl->edge = e;
    cl->flight = f;
    cl->start = e->nreplicas ? (int)(e->rr++ % (unsigned)e->nreplicas) : 0;
    /* the fetch is the first waiter's request, without its cache_ttl (same answer) */
    ekv__edge_fill_request(&cl->rq, req);
    cl->rq.query.len = 0;
    ekv__edge_call_send(cl);
}

void ekv_edge_invalidated(ekv_edge_t *e, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                          size_t len)
{
    if (!ekv_htab_count(&e->flights))
        return;
    if (key) {
        flight_t *f = flight_find(e, nsid, key, len, ekv_cache_key_hash(nsid, key, len));
        if (f)
            f->dirty = 1;
        return;
    }
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &e->flights);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        flight_t *f = EKV_HTAB_ENTRY(n, flight_t, hnode);
        if (!nsid || !memcmp(f->nsid, nsid, EKV_NSID_LEN))
            f->dirty = 1;
    }
}
