/*
 * rpc_client.c - an edge's RPC link to one upstream (see rpc_client.h).
 *
 * Calls in flight live in a hash table by id (common/htab.h; answers come in any order) and
 * in a FIFO by send time (the oldest is the first to time out); the tick timer checks the
 * FIFO head.
 */
#include "replication/rpc_client.h"

#include "common/clock.h"
#include "common/errors.h"
#include "common/htab.h"
#include "common/log.h"
#include "replication/link.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define CALLS_RESERVE  1024 /* buckets from the start: no rehash below this many calls */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define RPC_MAX_FRAME  (64u << 20)

typedef struct call_s {
    uint64_t id;
    uint64_t sent_ns;
    ekv_rpc_cb cb;
    void *ctx;
    ekv_hnode_t hnode;          /* in calls, by id */
    struct call_s *prev, *next; /* FIFO by send time */
} call_t;

typedef struct {
    ekv_repl_link_t link; /* first */
    ekv_rpc_client_t *c;
} conn_t;

struct ekv_rpc_client_s {
    ekv_rpc_client_opts_t o;
    char host[256];
    char addr[300];
    conn_t *conn;
    int ready;
    int attempts;
    uint64_t next_id;
    uint64_t upstream_seq;
    uint64_t last_send_ns;
    ekv_htab_t calls; /* call_t.hnode by id */
    call_t *head, *tail;
    size_t inflight;
    uv_timer_t tick, backoff;
    int handles_open;
    int stopping;
    void (*stop_done)(void *);
    void *stop_arg;
    ekv_rpc_stats_t st;
};

static void connect_now(ekv_rpc_client_t *c);

/* ---------------------------------------------------------------- calls */

static void call_unlink(ekv_rpc_client_t *c, call_t *k)
{
    ekv_htab_remove(&c->calls, &k->hnode);
    if (k->prev)
        k->prev->next = k->next;
    else
        c->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    else
        c->tail = k->prev;
    c->inflight--;
}

static int call_id_eq(const ekv_hnode_t *n, const void *id)
{
    return EKV_HTAB_ENTRY(n, call_t, hnode)->id == *(const uint64_t *)id;
}

static call_t *call_find(ekv_rpc_client_t *c, uint64_t id)
{
    ekv_hnode_t *n = ekv_htab_find(&c->calls, ekv_hash_u64(id), call_id_eq, &id);
    return n ? EKV_HTAB_ENTRY(n, call_t, hnode) : NULL;
}

static void fail_all(ekv_rpc_client_t *c, int err)
{
    while (c->head) {
        call_t *k = c->head;
        call_unlink(c, k);
        c->st.lost++;
        k->cb(k->ctx, err, NULL);
        free(k);
    }
}

int ekv_rpc_call(ekv_rpc_client_t *c, Edgekv__Request *req, ekv_rpc_cb cb, void *ctx)
{
    c->st.calls++;
    if (!c->ready || !c->conn || c->conn->link.closing || c->stopping) {
        c->st.failed_fast++;
        return EKV_EUPSTREAM;
    }
    if (c->inflight >= c->o.max_inflight) {
        c->st.failed_fast++;
        return EKV_EBUSY;
    }
    /* a request over the frame cap would be refused by the encoder AND close the link: refuse
     * just this call (the edge answers 413) */
    if (edgekv__request__get_packed_size(req) + 64 > EKV_REPL_MAX_FRAME)
        return EKV_ETOO_LARGE;
    call_t *k = calloc(1, sizeof(*k));
    if (!k)
        return EKV_ENOMEM;
    k->id = ++c->next_id;
    k->cb = cb;
    k->ctx = ctx;
    k->sent_ns = ekv_clock_mono_ns();
    req->id = k->id;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.epoch = 0; /* edges hold no epoch of their own */
    f.body_case = EDGEKV__FRAME__BODY_REQUEST;
    f.request = req;
    int rc = ekv_repl_link_send(&c->conn->link, &f);
    if (rc) {
        free(k);
        c->st.failed_fast++;
        return rc == EKV_EREPL_FRAME_TOO_LARGE ? EKV_ETOO_LARGE : EKV_EUPSTREAM;
    }
    c->last_send_ns = k->sent_ns;
    ekv_htab_insert(&c->calls, &k->hnode, ekv_hash_u64(k->id)); /* reserved: cannot fail */
    k->prev = c->tail;
    if (c->tail)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->inflight++;
    return 0;
}

/* ---------------------------------------------------------------- link */

static void on_frame(ekv_repl_link_t *l, Edgekv__Frame *f)
{
    conn_t *cn = (conn_t *)l;
    ekv_rpc_client_t *c = cn->c;
    switch (f->body_case) {
    case EDGEKV__FRAME__BODY_HELLO: {
        char why[128];
        if (!ekv_repl_hello_version_ok(f->hello, why, sizeof(why))) {
            ekv_log_warn("upstream refused: replication protocol version mismatch",
                         "addr=%s detail=\"%s\"", c->addr, why);
            ekv_repl_link_close(l, 0, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_VERSION, "%s", why);
            break;
        }
        if (f->hello->role == EDGEKV__NODE_ROLE__NODE_ROLE_PRIMARY ||
            f->hello->role == EDGEKV__NODE_ROLE__NODE_ROLE_REPLICA) {
            c->ready = 1;
            c->attempts = 0;
            c->st.connects++;
            c->upstream_seq = f->hello->last_applied_seq;
            ekv_log_info("upstream connected", "addr=%s node_id=%s seq=%" PRIu64, c->addr,
                         f->hello->node_id ? f->hello->node_id : "-", c->upstream_seq);
        }
        break;
    }
    case EDGEKV__FRAME__BODY_RESPONSE: {
        call_t *k = call_find(c, f->response->id);
        if (f->response->seq > c->upstream_seq)
            c->upstream_seq = f->response->seq;
        if (k) {
            call_unlink(c, k);
            c->st.ok++;
            k->cb(k->ctx, 0, f->response);
            free(k);
        } /* else: it timed out already */
        break;
    }
    case EDGEKV__FRAME__BODY_HEARTBEAT:
        if (f->heartbeat->latest_seq > c->upstream_seq)
            c->upstream_seq = f->heartbeat->latest_seq;
        break;
    case EDGEKV__FRAME__BODY_ERROR:
        ekv_repl_link_close(l, 0, 0, "upstream says: %s",
                            f->error->message ? f->error->message : "error");
        break;
    default:
        ekv_repl_link_close(l, 0, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL,
                            "unexpected %s frame on an RPC link",
                            ekv_repl_frame_body_name(f->body_case));
        break;
    }
    ekv_repl_frame_free(f);
}

static void on_backoff(uv_timer_t *t)
{
    ekv_rpc_client_t *c = t->data;
    if (!c->stopping)
        connect_now(c);
}

static void on_close(ekv_repl_link_t *l)
{
    conn_t *cn = (conn_t *)l;
    ekv_rpc_client_t *c = cn->c;
    int was_ready = c->ready;
    if (c->conn == cn)
        c->conn = NULL;
    c->ready = 0;
    c->handles_open--;
    if (was_ready || c->attempts == 0)
        ekv_log_warn("upstream link closed", "addr=%s reason=\"%s\" inflight=%zu", c->addr,
                     l->close_reason, c->inflight);
    free(cn);
    fail_all(c, EKV_EUPSTREAM);
    if (c->stopping) {
        if (c->handles_open == 0 && c->stop_done) {
            void (*done)(void *) = c->stop_done;
            c->stop_done = NULL;
            done(c->stop_arg);
        }
        return;
    }
    int delay = ekv_repl_backoff_ms(c->attempts, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    c->attempts++;
    uv_timer_start(&c->backoff, on_backoff, (uint64_t)delay, 0);
}

static void on_connected(ekv_repl_link_t *l, int status)
{
    conn_t *cn = (conn_t *)l;
    ekv_rpc_client_t *c = cn->c;
    static const ekv_repl_link_cbs_t cbs = {on_frame, on_close, NULL};
    if (status ||
        ekv_repl_link_init(l, cn, &cbs, RPC_MAX_FRAME, c->o.auth, EKV_REPL_HS_CONNECTOR) ||
        ekv_repl_link_start(l)) {
        ekv_repl_link_close(l, 0, 0, "connect failed: %s", status ? uv_strerror(status) : "setup");
        return;
    }
    Edgekv__Hello h;
    ekv_repl_hello_init(&h);
    h.node_id = (char *)c->o.node_id;
    h.role = EDGEKV__NODE_ROLE__NODE_ROLE_EDGE;
    h.keys_only = 0;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &h;
    ekv_repl_link_send(l, &f);
    c->last_send_ns = ekv_clock_mono_ns();
}

static void connect_now(ekv_rpc_client_t *c)
{
    conn_t *cn = calloc(1, sizeof(*cn));
    if (!cn) {
        uv_timer_start(&c->backoff, on_backoff, BACKOFF_MAX_MS, 0);
        return;
    }
    cn->c = c;
    static const ekv_repl_link_cbs_t cbs = {on_frame, on_close, NULL};
    cn->link.cbs = cbs;
    if (ekv_repl_link_connect(&cn->link, c->o.loop, c->host, c->o.port, on_connected)) {
        free(cn);
        uv_timer_start(&c->backoff, on_backoff, BACKOFF_MAX_MS, 0);
        return;
    }
    c->conn = cn;
    c->handles_open++;
}

static void on_tick(uv_timer_t *t)
{
    ekv_rpc_client_t *c = t->data;
    uint64_t now = ekv_clock_mono_ns();
    uint64_t tmo = (uint64_t)c->o.timeout_ms * 1000000ull;
    uint64_t ltmo = (uint64_t)c->o.link_timeout_ms * 1000000ull;
    while (c->head && now - c->head->sent_ns > tmo) {
        call_t *k = c->head;
        call_unlink(c, k);
        c->st.timeouts++;
        k->cb(k->ctx, EKV_ETIMEOUT, NULL);
        free(k);
    }
    if (!c->conn || c->conn->link.closing)
        return;
    if (!c->ready && now - c->conn->link.last_progress_ns > ltmo) {
        ekv_repl_link_close(&c->conn->link, 0, 0, "no handshake within %d ms",
                            c->o.link_timeout_ms);
        return;
    }
    if (c->ready && now - c->conn->link.last_recv_ns > ltmo) {
        ekv_repl_link_close(&c->conn->link, 0, 0, "upstream silent for %d ms",
                            c->o.link_timeout_ms);
        return;
    }
    if (c->ready && now - c->last_send_ns >= (uint64_t)c->o.heartbeat_ms * 1000000ull) {
        Edgekv__Heartbeat hb = EDGEKV__HEARTBEAT__INIT;
        hb.now_ms = ekv_clock_now_ms();
        Edgekv__Frame f = EDGEKV__FRAME__INIT;
        f.body_case = EDGEKV__FRAME__BODY_HEARTBEAT;
        f.heartbeat = &hb;
        ekv_repl_link_send(&c->conn->link, &f);
        c->last_send_ns = now;
    }
}

/* ---------------------------------------------------------------- lifecycle */

int ekv_rpc_client_set_addr(ekv_rpc_client_t *c, const char *host, int port)
{
    if (port == c->o.port && !strcmp(host, c->host)) {
        if (!c->conn && !c->stopping) { /* down: no waiting out the backoff */
            c->attempts = 0;
            uv_timer_stop(&c->backoff);
            connect_now(c);
        }
        return 0;
    }
    if (strlen(host) >= sizeof(c->host) || port <= 0 || port > 65535)
        return EKV_EBAD_REQUEST;
    ekv_log_info("upstream moves", "from=%s to=%s:%d", c->addr, host, port);
    snprintf(c->host, sizeof(c->host), "%s", host);
    c->o.host = c->host;
    c->o.port = port;
    snprintf(c->addr, sizeof(c->addr), "%s:%d", host, port);
    c->attempts = 0;
    if (c->stopping)
        return 0;
    if (c->conn) { /* its on_close reconnects, to the new address */
        if (!c->conn->link.closing)
            ekv_repl_link_close(&c->conn->link, 0, 0, "the upstream moved to %s", c->addr);
    } else {
        uv_timer_stop(&c->backoff);
        connect_now(c);
    }
    return 0;
}

int ekv_rpc_client_start(ekv_rpc_client_t **out, const ekv_rpc_client_opts_t *o)
{
    ekv_rpc_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return EKV_ENOMEM;
    ekv_htab_init(&c->calls);
    if (ekv_htab_reserve(&c->calls, CALLS_RESERVE)) {
        free(c);
        return EKV_ENOMEM;
    }
    c->o = *o;
    if (c->o.timeout_ms <= 0)
        c->o.timeout_ms = 5000;
    if (c->o.heartbeat_ms <= 0)
        c->o.heartbeat_ms = 1000;
    if (c->o.link_timeout_ms <= 0)
        c->o.link_timeout_ms = 10000;
    if (!c->o.max_inflight)
        c->o.max_inflight = 4096;
    snprintf(c->host, sizeof(c->host), "%s", o->host);
    c->o.host = c->host;
    snprintf(c->addr, sizeof(c->addr), "%s:%d", o->host, o->port);
    uv_timer_init(o->loop, &c->tick);
    uv_timer_init(o->loop, &c->backoff);
    c->tick.data = c->backoff.data = c;
    c->handles_open = 2;
    int every = c->o.heartbeat_ms < 100 ? c->o.heartbeat_ms : 100;
    uv_timer_start(&c->tick, on_tick, (uint64_t)every, (uint64_t)every);
    connect_now(c);
    *out = c;
    return 0;
}

int ekv_rpc_client_ready(const ekv_rpc_client_t *c)
{
    return c->ready;
}

const char *ekv_rpc_client_addr(const ekv_rpc_client_t *c)
{
    return c->addr;
}

uint64_t ekv_rpc_client_seq(const ekv_rpc_client_t *c)
{
    return c->upstream_seq;
}

void ekv_rpc_client_stats(const ekv_rpc_client_t *c, ekv_rpc_stats_t *out)
{
    *out = c->st;
    out->inflight = c->inflight;
}

static void on_handle_closed(uv_handle_t *h)
{
    ekv_rpc_client_t *c = h->data;
    if (--c->handles_open == 0 && c->stop_done) {
        void (*done)(void *) = c->stop_done;
        c->stop_done = NULL;
        done(c->stop_arg);
    }
}

void ekv_rpc_client_stop(ekv_rpc_client_t *c, void (*done)(void *arg), void *arg)
{
    c->stopping = 1;
    c->stop_done = done;
    c->stop_arg = arg;
    fail_all(c, EKV_EUPSTREAM);
    uv_timer_stop(&c->backoff);
    uv_close((uv_handle_t *)&c->tick, on_handle_closed);
    uv_close((uv_handle_t *)&c->backoff, on_handle_closed);
    if (c->conn)
        ekv_repl_link_close(&c->conn->link, 0, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_SHUTDOWN,
                            "edge shutting down");
}

void ekv_rpc_client_free(ekv_rpc_client_t *c)
{
    if (!c)
        return;
    ekv_htab_deinit(&c->calls); /* empty: stop failed every call */
    free(c);
}
