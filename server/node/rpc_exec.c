/*
 * rpc_exec.c - run an edge's RPC Request (proto/repl.proto) on this node through the normal
 * HTTP application path: the request becomes an ekv_req_t whose reply goes to a sink
 * (ekv_req_t.sink) that sends a Response frame back on the edge's link. Routing, auth,
 * validation, handlers, errors and metrics are exactly those of a client request, so an edge
 * relays the very answer the client would have had here.
 *
 * Read-your-writes: a Request with min_seq waits (parked, bounded by RPC_WAIT_MS) until this
 * node's change log has reached min_seq; if it does not in time, the answer is status 0
 * ("behind") and the edge asks the primary instead.
 */
#include "common/buf.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/frame.h"
#include "replication/primary.h"
#include "replication/replica.h"
#include "server/http/reply.h"
#include "server/node/node.h"
#include "server/node/rpc_exec.h"

#include <llhttp.h>
#include <stdlib.h>
#include <string.h>

#define RPC_WAIT_MS    1000
#define RPC_MAX_PARKED 4096

typedef struct rpc_s {
    ekv_req_t req; /* first: the sink gets &rpc->req */
    ekv_app_t *app;
    uint64_t peer_id, id;
    Edgekv__Frame *f; /* the Request frame (owned) */
    char *path, *query;
    char *hdr[EKV_HDR_COUNT];
    uint64_t min_seq;
    uint64_t deadline_ns;
    int dispatching, finished;
    struct rpc_s *next; /* parked list */
} rpc_t;

/* The seq up to which this node answers consistently: on a replica, what the loop has
 * finished applying (its value cache and catalog are updated only then, after the store's
 * last_seq moved); elsewhere the store's last committed seq. */
static uint64_t visible_seq(ekv_app_t *app)
{
    ekv_node_t *n = ekv_node_of(app);
    if ((n->role == EKV_ROLE_REPLICA || n->role == EKV_ROLE_EDGE) && n->replica)
        return ekv_repl_replica_applied_seq(n->replica);
    return app->store ? ekv_store_last_seq(app->store) : 0; /* an edge owner: none */
}

static rpc_t *parked_head;
static size_t nparked;
static uv_timer_t park_timer;
static int park_timer_on;

static void rpc_free(rpc_t *r)
{
    if (r->req.cleanup) {
        r->req.cleanup(&r->req);
        r->req.cleanup = NULL;
    }
    /* req.body borrows the Request frame's bytes (see ekv_rpc_exec): freed with the frame */
    for (int i = 0; i < EKV_HDR_COUNT; i++)
        free(r->hdr[i]);
    free(r->path);
    free(r->query);
    ekv_repl_frame_free(r->f);
    free(r);
}

/* Send resp (its id, status, body and fields set) with this node's visible seq. */
static void send_response(ekv_app_t *app, uint64_t peer_id, Edgekv__Response *resp)
{
    resp->seq = visible_seq(app);
    if (!resp->content_type)
        resp->content_type = (char *)"";
    if (!resp->headers)
        resp->headers = (char *)"";
    ekv_node_t *n = ekv_node_of(app);
    if (n->primary)
        ekv_repl_primary_respond(n->primary, peer_id, resp);
}

void ekv_rpc_respond(ekv_app_t *app, uint64_t peer_id, uint64_t id, uint32_t status,
                     uint32_t error_code, const void *body, size_t len)
{
    Edgekv__Response resp = EDGEKV__RESPONSE__INIT;
    resp.id = id;
    resp.status = status;
    resp.error_code = error_code;
    resp.body.data = (uint8_t *)body;
    resp.body.len = len;
    send_response(app, peer_id, &resp);
}

/* An answer without a body: 405/500, or status 0 ("not executed": behind, shutdown). */
static void respond(ekv_app_t *app, uint64_t peer_id, uint64_t id, uint32_t status)
{
    ekv_rpc_respond(app, peer_id, id, status, 0, NULL, 0);
}

static void sink(ekv_req_t *req, int status, const char *content_type, const char *extra_headers,
                 const void *body, size_t body_len)
{
    rpc_t *r = (rpc_t *)req;
    /* the error code and the value's expiration travel as fields: the edge never parses the
     * reply text */
    Edgekv__Response resp = EDGEKV__RESPONSE__INIT;
    resp.id = r->id;
    resp.status = (uint32_t)status;
    resp.expiration = req->reply_expiration;
    resp.error_code = req->reply_cf_code > 0 ? (uint32_t)req->reply_cf_code : 0;
    resp.content_type = (char *)content_type;
    resp.headers = (char *)extra_headers;
    resp.body.data = (uint8_t *)body;
    resp.body.len = body_len;
    send_response(r->app, r->peer_id, &resp);
    ekv_app_on_response(r->app, req, status, body_len);
    r->finished = 1;
    if (!r->dispatching)
        rpc_free(r);
}

static int method_of(const char *m, int *out)
{
    static const struct {
        const char *name;
        int m;
    } t[] = {{"GET", HTTP_GET},        {"PUT", HTTP_PUT},   {"POST", HTTP_POST},
             {"DELETE", HTTP_DELETE},  {"HEAD", HTTP_HEAD}, {"PATCH", HTTP_PATCH},
             {"OPTIONS", HTTP_OPTIONS}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (m && !strcmp(m, t[i].name)) {
            *out = t[i].m;
            return 0;
        }
    return -1;
}

static void set_hdr(rpc_t *r, int which, const char *v)
{
    if (!v || !v[0])
        return;
    r->hdr[which] = strdup(v);
    if (!r->hdr[which])
        return;
    r->req.hdr[which].v = r->hdr[which];
    r->req.hdr[which].len = strlen(v);
    r->req.hdr[which].present = 1;
}

static void dispatch(rpc_t *r)
{
    ekv_app_t *app = r->app;
    ekv_req_t *req = &r->req;
    r->dispatching = 1;
    if (ekv_app_on_headers(app, req) == 0 && !req->responded) {
        if (req->body.len > req->body_limit)
            ekv_reply_error(req, EKV_EHTTP_BODY_TOO_LARGE, NULL);
        else
            ekv_app_on_request(app, req);
    }
    r->dispatching = 0;
    if (r->finished)
        rpc_free(r);
}

static void park_tick(uv_timer_t *t);

static void unpark_ready(ekv_app_t *app, int expire)
{
    uint64_t last = visible_seq(app), now = ekv_clock_mono_ns();
    rpc_t **pp = &parked_head;
    while (*pp) {
        rpc_t *r = *pp;
        if (r->min_seq <= last) {
            *pp = r->next;
            nparked--;
            dispatch(r);
        } else if (expire && now >= r->deadline_ns) {
            *pp = r->next;
            nparked--;
            respond(app, r->peer_id, r->id, 0); /* behind */
            rpc_free(r);
        } else {
            pp = &r->next;
        }
    }
    if (!parked_head && park_timer_on) {
        uv_timer_stop(&park_timer);
        park_timer_on = 0;
    }
}

static void park_tick(uv_timer_t *t)
{
    unpark_ready(t->data, 1);
}

void ekv_rpc_exec_on_commit(ekv_app_t *app)
{
    if (parked_head)
        unpark_ready(app, 0);
}

void ekv_rpc_exec(void *ctx, uint64_t peer_id, Edgekv__Frame *f)
{
    ekv_app_t *app = ctx;
    const Edgekv__Request *q = f->request;
    if (q->method && strcmp(q->method, EKV_DO_RPC_METHOD) == 0) {
        ekv_node_do_internal(app, peer_id, f); /* owners' calls (server/node/do/) */
        return;
    }
    rpc_t *r = calloc(1, sizeof(*r));
    int method;
    if (!r || method_of(q->method, &method)) {
        respond(app, peer_id, q->id, 405);
        free(r);
        ekv_repl_frame_free(f);
        return;
    }
    r->app = app;
    r->peer_id = peer_id;
    r->id = q->id;
    r->f = f;
    r->min_seq = q->min_seq;
    ekv_req_t *req = &r->req;
    req->sink = sink;
    req->method = method;
    req->method_str = q->method;
    r->path = ekv_memdup_z(q->path.data, q->path.len);
    r->query = ekv_memdup_z(q->query.data, q->query.len);
    req->path = r->path;
    req->path_len = q->path.len;
    req->query = r->query;
    req->query_len = q->query.len;
    req->content_length = (int64_t)q->body.len;
    req->do_hops = q->do_hops;
    req->has_body = q->body.len > 0;
    req->start_ns = ekv_clock_mono_ns();
    /* handlers only read the body: use it in place in the frame (kept until rpc_free) */
    req->body.data = (char *)q->body.data;
    req->body.len = req->body.cap = q->body.len;
    set_hdr(r, EKV_HDR_AUTHORIZATION, q->authorization);
    set_hdr(r, EKV_HDR_CONTENT_TYPE, q->content_type);
    set_hdr(r, EKV_HDR_X_AUTH_EMAIL, q->x_auth_email);
    set_hdr(r, EKV_HDR_X_AUTH_KEY, q->x_auth_key);
    if (q->headers && q->headers[0]) { /* in the frame, kept until rpc_free */
        req->other_headers = q->headers;
        req->other_headers_len = strlen(q->headers);
    }
    if (!r->path || !r->query) {
        respond(app, peer_id, q->id, 500);
        rpc_free(r);
        return;
    }
    if (r->min_seq > visible_seq(app)) {
        if (nparked >= RPC_MAX_PARKED) {
            respond(app, peer_id, q->id, 0);
            rpc_free(r);
            return;
        }
        r->deadline_ns = req->start_ns + (uint64_t)RPC_WAIT_MS * 1000000ull;
        r->next = parked_head;
        parked_head = r;
        nparked++;
        if (!park_timer_on) {
            if (!park_timer.loop) {
                uv_timer_init(app->loop, &park_timer);
                park_timer.data = app;
                uv_unref((uv_handle_t *)&park_timer);
            }
            uv_timer_start(&park_timer, park_tick, 20, 20);
            park_timer_on = 1;
        }
        return;
    }
    dispatch(r);
}

void ekv_rpc_exec_stop(ekv_app_t *app)
{
    while (parked_head) {
        rpc_t *r = parked_head;
        parked_head = r->next;
        nparked--;
        respond(app, r->peer_id, r->id, 0);
        rpc_free(r);
    }
    if (park_timer.loop) {
        uv_timer_stop(&park_timer);
        park_timer_on = 0;
        uv_close((uv_handle_t *)&park_timer, NULL);
    }
}
