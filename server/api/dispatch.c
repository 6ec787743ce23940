/*
 * dispatch.c - the one request path of every role (server/api/api.h): route -> role gate ->
 * authentication -> the URL's account must be the token's -> permission -> namespace check
 * -> the role's relay (edges) or cluster handler, else the route's handler. Also the job
 * submission helpers and the per-request metrics hook. Loop thread, no I/O.
 */
#include "server/api/api.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/auth.h"
#include "server/api/do/do.h"
#include "server/api/kv/validate.h"
#include "server/http/reply.h"

#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- job submission */

int ekv_app_read_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_job_t *job)
{
    int rc = ekv_workq_submit(&app->readers, job);
    if (rc) {
        ekv_log_warn("reader queue full", "depth=%zu", ekv_workq_depth(&app->readers));
        ekv_reply_busy(req, rc);
    }
    return rc;
}

int ekv_app_write_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w)
{
    if (app->role->hold_write)
        app->role->hold_write(app, req, w);
    int rc = ekv_store_write_submit(app->store, w);
    if (rc) {
        ekv_log_warn("commit queue full", "err=%s", ekv_err_name(rc));
        ekv_reply_busy(req, rc);
    }
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

static void reply_route_error(ekv_req_t *req, int rc)
{
    if (rc == EKV_EBAD_METHOD)
        ekv_reply_error(req, rc, "%s not supported for requested URI.", req->method_str);
    else
        ekv_reply_error(req, EKV_ENO_ROUTE,
                        "Could not route to %s, perhaps your object identifier is invalid?",
                        req->path);
}

/* Authentication, the URL's account must be the token's, permissions. Fills call->token and
 * call->account_id. 0, or -1 after answering. */
static int authorize_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_call_t *call)
{
    const ekv_route_t *r = call->route;
    if (r->flags & EKV_RT_NOAUTH)
        return 0;
    if (r->flags & EKV_RT_OPERATOR)
        return ekv_auth_operator_or_reply(app->operator_hash, req); /* call->token stays NULL */
    if (ekv_auth_or_reply(app->catalog, req, (r->flags & EKV_RT_VERIFY) != 0, &call->token))
        return -1;
    snprintf(call->account_id, sizeof(call->account_id), "%s", call->token->account_id);
    if (r->flags & EKV_RT_ACCOUNT) {
        const ekv_slice_t *a = &call->params.v[0];
        if (a->n != EKV_ID_HEX_LEN || memcmp(a->p, call->token->account_id, a->n) != 0) {
            ekv_reply_error(req, EKV_EAUTH, NULL);
            return -1;
        }
    }
    uint32_t perms = call->token->perms;
    if (perms & EKV_PERM_ADMIN)
        perms |= EKV_PERM_KV_READ | EKV_PERM_KV_WRITE | EKV_PERM_DO_READ | EKV_PERM_DO_WRITE;
    if (perms & EKV_PERM_DO_WRITE)
        perms |= EKV_PERM_DO_READ;
    if (((r->flags & EKV_RT_DO_WRITE) && !(perms & EKV_PERM_DO_WRITE)) ||
        ((r->flags & EKV_RT_DO_READ) && !(perms & EKV_PERM_DO_READ))) {
        ekv_reply_error(req, EKV_EAUTH, NULL);
        return -1;
    }
    if ((r->flags & EKV_RT_ADMIN) && !(perms & EKV_PERM_ADMIN)) {
        ekv_reply_error(req, EKV_EAUTH, NULL);
        return -1;
    }
    if ((r->flags & EKV_RT_WRITE) && !(perms & EKV_PERM_KV_WRITE)) {
        ekv_reply_error(req, EKV_EAUTH_METHOD,
                        "%s method not allowed for the api_token authentication scheme",
                        req->method_str);
        return -1;
    }
    if ((r->flags & EKV_RT_READ) && !(perms & (EKV_PERM_KV_READ | EKV_PERM_KV_WRITE))) {
        ekv_reply_error(req, EKV_EAUTH, NULL);
        return -1;
    }
    return 0;
}

int ekv_app_on_headers(void *ctx, ekv_req_t *req)
{
    ekv_app_t *app = ctx;
    req->app = app;
    req->route_id = -1;
    req->route_rc = ekv_router_match(ekv_routes_router(), req->method, req->path, req->path_len,
                                     &req->route, &req->params);
    if (req->route_rc) {
        req->body_limit = 64 * 1024; /* errors are answered after the (small) body */
        return 0;
    }
    req->route_id = (int)(req->route - ekv_routes);
    req->body_limit = req->route->body_limit ? req->route->body_limit : 64 * 1024;
    if (app->role->gate && app->role->gate(app, req, req->route))
        return -1;
    if (req->has_body) {
        /* refuse before buffering up to 100 MB for a client that may not write at all */
        ekv_call_t call;
        memset(&call, 0, sizeof(call));
        call.route = req->route;
        call.params = req->params;
        if (authorize_or_reply(app, req, &call))
            return -1;
    }
    return 0;
}

void ekv_app_on_request(void *ctx, ekv_req_t *req)
{
    ekv_app_t *app = ctx;
    ekv_call_t call;
    memset(&call, 0, sizeof(call));
    call.app = app;
    call.req = req;
    if (req->route_rc) {
        reply_route_error(req, req->route_rc);
        return;
    }
    call.route = req->route;
    call.params = req->params;
    const ekv_route_t *r = call.route;
    /* again: a promotion or fence may have happened */
    if (app->role->gate && app->role->gate(app, req, r))
        return;
    /* again at the end of the body: the token may have been revoked meanwhile */
    if (authorize_or_reply(app, req, &call))
        return;
    if (r->flags & EKV_RT_NS) {
        const ekv_slice_t *n = &call.params.v[1];
        char msg[160];
        char hex[EKV_ID_HEX_LEN + 1];
        if (ekv_kv_parse_nsid(n->p, n->n, call.nsid, msg, sizeof(msg))) {
            ekv_reply_error(req, EKV_EBAD_NS_ID, "%s", msg);
            return;
        }
        ekv_hex_encode(call.nsid, EKV_NSID_LEN, hex); /* canonical lowercase for the lookup */
        call.ns = ekv_catalog_find_ns(app->catalog, call.account_id, hex);
        if (!call.ns) {
            ekv_reply_error(req, EKV_ENS_NOT_FOUND, "%s: 'namespace not found'", ekv_route_op(r));
            return;
        }
    }
    if (r->kind == EKV_RK_CLUSTER) {
        if (app->role->cluster)
            app->role->cluster(&call);
        else
            reply_route_error(req, EKV_ENO_ROUTE);
        return;
    }
    if (r->kind == EKV_RK_DO) {
        if (app->role->route_do && app->role->route_do(&call))
            return;
        ekv_app_run_do(&call);
        return;
    }
    if (r->kind != EKV_RK_LOCAL && app->role->relay) {
        app->role->relay(&call);
        return;
    }
    ((ekv_handler_fn)r->handler)(&call);
}

void ekv_app_run_do(ekv_call_t *c)
{
    ekv_app_t *app = c->app;
    if (app->dos && !ekv_do_serving(app->dos)) {
        ekv_reply_busy_msg(c->req, EKV_ESHUTDOWN, "Durable Objects are stopping on this node");
        return;
    }
    if (!app->dos) {
        ekv_reply_busy_msg(c->req, EKV_EBUSY,
                           "Durable Objects are not served by this node right now");
        return;
    }
    ((ekv_handler_fn)c->route->handler)(c);
}

void ekv_app_on_response(void *ctx, ekv_req_t *req, int status, size_t bytes_out)
{
    ekv_app_t *app = ctx;
    uint64_t dur = req->start_ns ? ekv_clock_mono_ns() - req->start_ns : 0;
    ekv_metrics_observe(app->metrics, req->route_id, status, dur, req->body.len, bytes_out);
    if (status >= 500 || ekv_log_enabled(EKV_LOG_DEBUG))
        ekv_log(status >= 500 ? EKV_LOG_WARN : EKV_LOG_DEBUG, "request",
                "method=%s path=\"%s\" status=%d dur_us=%llu", req->method_str,
                req->path ? req->path : "-", status, (unsigned long long)(dur / 1000));
}
