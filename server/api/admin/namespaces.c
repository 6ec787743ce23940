/*
 * namespaces.c - KV namespaces: list (from the in-memory catalog), create / rename / delete
 * (through the committer; the catalog changes only once the write is durable).
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/admin/admin.h"
#include "server/api/auth.h"
#include "server/api/paging.h"
#include "server/api/kv/validate.h"
#include "server/http/reply.h"
#include "server/http/urlcodec.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *ns_json(const ekv_namespace_t *ns)
{
    return json_pack("{s:s, s:s, s:b}", "id", ns->id, "title", ns->title, "supports_url_encoding",
                     1);
}

void ekv_h_ns_list(ekv_call_t *c)
{
    ekv_req_t *req = c->req;
    ekv_query_t q;
    char buf[64];
    size_t len;
    long long page, per_page;
    ekv_ns_order_t order = EKV_NS_ORDER_ID;
    int desc = 0;
    if (ekv_query_parse(req->query, req->query_len, &q)) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "list namespaces: 'too many query parameters'");
        return;
    }
    if (ekv_page_args_or_reply(req, &q, 1000, &page, &per_page))
        return;
    int rc = ekv_query_get(&q, "order", buf, sizeof(buf), &len);
    if (rc) {
        if (rc > 0 && !strcmp(buf, "title"))
            order = EKV_NS_ORDER_TITLE;
        else if (rc < 0 || strcmp(buf, "id") != 0) {
            ekv_reply_error(req, EKV_EBAD_ORDER, NULL);
            return;
        }
    }
    rc = ekv_query_get(&q, "direction", buf, sizeof(buf), &len);
    if (rc) {
        if (rc > 0 && !strcmp(buf, "desc"))
            desc = 1;
        else if (rc < 0 || strcmp(buf, "asc") != 0) {
            ekv_reply_error(req, EKV_EBAD_DIRECTION, NULL);
            return;
        }
    }
    const ekv_namespace_t **all;
    int n = ekv_catalog_list_ns(c->app->catalog, c->account_id, order, desc, &all);
    if (n < 0) {
        ekv_reply_error(req, n, NULL);
        return;
    }
    json_t *arr = json_array();
    long long start = (page - 1) * per_page;
    long long count = 0;
    for (long long i = start; i < n && i < start + per_page; i++, count++)
        json_array_append_new(arr, ns_json(all[i]));
    free(all);
    ekv_reply_ok(req, arr, ekv_page_info(page, per_page, count, n));
}

void ekv_h_ns_get(ekv_call_t *c)
{
    ekv_reply_ok(c->req, ns_json(c->ns), NULL);
}

/* ---------------------------------------------------------------- writes */

typedef struct {
    ekv_write_t w;
    ekv_app_t *app;
    ekv_req_t *req;
    const char *op;
} ns_write_t;

static void ns_write_free(ekv_req_t *req)
{
    free(req->state);
    req->state = NULL;
}

/* Title from a {"title": "..."} body; answers the error itself. */
static int title_or_reply(ekv_req_t *req, const char *op, char out[EKV_MAX_TITLE_LEN + 1])
{
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
    json_t *t = json_is_object(body) ? json_object_get(body, "title") : NULL;
    if (!json_is_string(t)) {
        json_decref(body);
        ekv_reply_error(req, EKV_EBAD_TITLE, "%s: 'missing title'", op);
        return -1;
    }
    char msg[256];
    size_t len = json_string_length(t);
    int rc = ekv_kv_check_title(json_string_value(t), len, msg, sizeof(msg));
    if (!rc && memchr(json_string_value(t), '\0', len))
        rc = EKV_EBAD_TITLE;
    if (rc) {
        json_decref(body);
        ekv_reply_error(req, EKV_EBAD_TITLE, "%s: '%s'", op,
                        len == 0 ? "missing title" : "title too long");
        return -1;
    }
    memcpy(out, json_string_value(t), len);
    out[len] = '\0';
    json_decref(body);
    return 0;
}

static ns_write_t *ns_write_new(ekv_call_t *c, ekv_op_type_t type, ekv_job_fn done)
{
    ns_write_t *s = calloc(1, sizeof(*s));
    if (!s) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    s->app = c->app;
    s->req = c->req;
    s->op = ekv_route_op(c->route);
    s->w.type = type;
    s->w.job.done = done;
    s->w.udata = s;
    if (c->ns)
        s->w.ns = *c->ns;
    snprintf(s->w.ns.account_id, sizeof(s->w.ns.account_id), "%s", c->account_id);
    c->req->state = s;
    c->req->cleanup = ns_write_free;
    return s;
}

static int ns_status_or_reply(ns_write_t *s)
{
    switch (s->w.status) {
    case 0:
        return 0;
    case EKV_ENS_NOT_FOUND:
        ekv_reply_error(s->req, EKV_ENS_NOT_FOUND, "%s: 'namespace not found'", s->op);
        break;
    default:
        ekv_reply_error(s->req, s->w.status, NULL);
    }
    return -1;
}

static void ns_put_done(ekv_job_t *job)
{
    ns_write_t *s = ((ekv_write_t *)job)->udata;
    if (ns_status_or_reply(s))
        return;
    ekv_catalog_put_ns(s->app->catalog, &s->w.ns);
    ekv_log_info(s->w.type == EKV_OP_NS_CREATE ? "namespace created" : "namespace renamed",
                 "account_id=%s namespace_id=%s", s->w.ns.account_id, s->w.ns.id);
    ekv_reply_ok(s->req, ns_json(&s->w.ns), NULL);
}

void ekv_h_ns_create(ekv_call_t *c)
{
    char title[EKV_MAX_TITLE_LEN + 1];
    if (title_or_reply(c->req, "create namespace", title))
        return;
    /* fast answers from the catalog; the committer checks again at commit time */
    if (ekv_catalog_find_ns_title(c->app->catalog, c->account_id, title)) {
        ekv_reply_error(c->req, EKV_ENS_EXISTS, NULL);
        return;
    }
    if (ekv_catalog_ns_count(c->app->catalog, c->account_id) >= EKV_MAX_NS_PER_ACCOUNT) {
        ekv_reply_error(c->req, EKV_ETOO_MANY_NS, NULL);
        return;
    }
    ns_write_t *s = ns_write_new(c, EKV_OP_NS_CREATE, ns_put_done);
    if (!s)
        return;
    s->op = "create namespace";
    if (ekv_random_id(s->w.ns.id)) {
        ekv_reply_error(c->req, EKV_EINTERNAL, NULL);
        return;
    }
    snprintf(s->w.ns.title, sizeof(s->w.ns.title), "%s", title);
    s->w.ns.created_ms = ekv_clock_now_ms();
    ekv_app_write_or_reply(c->app, c->req, &s->w);
}

void ekv_h_ns_rename(ekv_call_t *c)
{
    char title[EKV_MAX_TITLE_LEN + 1];
    if (title_or_reply(c->req, "rename namespace", title))
        return;
    const ekv_namespace_t *other = ekv_catalog_find_ns_title(c->app->catalog, c->account_id, title);
    if (other && strcmp(other->id, c->ns->id) != 0) {
        ekv_reply_error(c->req, EKV_ENS_EXISTS, NULL);
        return;
    }
    ns_write_t *s = ns_write_new(c, EKV_OP_NS_RENAME, ns_put_done);
    if (!s)
        return;
    snprintf(s->w.ns.title, sizeof(s->w.ns.title), "%s", title);
    ekv_app_write_or_reply(c->app, c->req, &s->w);
}

static void ns_delete_done(ekv_job_t *job)
{
    ns_write_t *s = ((ekv_write_t *)job)->udata;
    if (ns_status_or_reply(s))
        return;
    uint8_t nsid[EKV_NSID_LEN];
    memcpy(nsid, s->w.nsid, EKV_NSID_LEN);
    ekv_catalog_remove_ns(s->app->catalog, s->w.ns.id);
    ekv_cache_invalidate_ns(s->app->cache, nsid);
    ekv_log_info("namespace deleted", "account_id=%s namespace_id=%s", s->w.ns.account_id,
                 s->w.ns.id);
    ekv_reply_ok(s->req, json_object(), NULL);
}

void ekv_h_ns_delete(ekv_call_t *c)
{
    ns_write_t *s = ns_write_new(c, EKV_OP_NS_DELETE, ns_delete_done);
    if (!s)
        return;
    memcpy(s->w.nsid, c->nsid, EKV_NSID_LEN);
    ekv_cache_invalidate_ns(c->app->cache, c->nsid);
    ekv_app_write_or_reply(c->app, c->req, &s->w);
}
