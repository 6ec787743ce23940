/*
 * storage.c - the per-object storage endpoints (docs/API.md "Durable Objects"): each checks
 * the namespace and the object id, parses its body or query with Cloudflare's limits
 * (storage_req.h, txn.h, list_opts.h) and queues one op on the object (object.c), which
 * answers it. Loop thread.
 */
#include "common/errors.h"
#include "server/api/do/do_int.h"
#include "server/http/reply.h"

#include <stdlib.h>
#include <string.h>

/* The namespace and object of a call, and a fresh op of `kind`; NULL after answering. */
static do_op_t *op_new(ekv_call_t *c, do_op_kind_t kind, do_nsent_t **ns_out,
                       uint8_t objid[EKV_DO_OBJID_LEN])
{
    do_nsent_t *ns = ekv__do_ns_or_reply(c);
    if (!ns || ekv__do_objid_or_reply(c, ns, objid))
        return NULL;
    do_op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    op->kind = kind;
    op->req = c->req;
    *ns_out = ns;
    return op;
}

static void queue_op(ekv_call_t *c, do_nsent_t *ns, const uint8_t objid[EKV_DO_OBJID_LEN],
                     do_op_t *op)
{
    do_obj_t *o = ekv__do_obj_get(c->app->dos, ns->dons, objid);
    if (!o) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        ekv__do_op_free(op);
        return;
    }
    ekv__do_obj_submit(o, op);
}

static ekv_do_limits_t limits_of(const do_nsent_t *ns)
{
    ekv_do_limits_t l = {.use_sqlite = ns->ns.use_sqlite};
    return l;
}

static const char *body_of(const ekv_req_t *req)
{
    return req->body.data ? req->body.data : "";
}

/* One storage or alarm call: the namespace, the object id, the body or query the kind takes
 * (parsed with the namespace's limits; errors answered with their specific message), then
 * the op is queued on the object. */
static void storage_call(ekv_call_t *c, do_op_kind_t kind)
{
    do_nsent_t *ns;
    uint8_t objid[EKV_DO_OBJID_LEN];
    do_op_t *op = op_new(c, kind, &ns, objid);
    if (!op)
        return;
    char msg[256] = "";
    ekv_do_limits_t lim = limits_of(ns);
    const char *body = body_of(c->req);
    size_t len = c->req->body.len;
    int rc = 0;
    switch (kind) {
    case DO_OP_GET:
    case DO_OP_DELETE:
        rc = ekv_do_parse_keys(body, len, &lim, &op->ops, msg, sizeof(msg));
        break;
    case DO_OP_PUT:
        rc = ekv_do_parse_entries(body, len, &lim, &op->ops, msg, sizeof(msg));
        break;
    case DO_OP_TXN:
        rc = ekv_do_txn_parse(body, len, &lim, &op->txn, msg, sizeof(msg));
        break;
    case DO_OP_LIST:
        rc = ekv_do_list_parse(c->req->query, c->req->query_len, &op->range, msg, sizeof(msg));
        break;
    default: /* deleteAll, alarm get and delete: nothing to parse */
        break;
    }
    if (rc) {
        ekv_reply_error(c->req, rc, "%s", msg[0] ? msg : ekv_strerror(rc));
        ekv__do_op_free(op);
        return;
    }
    queue_op(c, ns, objid, op);
}

void ekv_h_do_storage_get(ekv_call_t *c)
{
    storage_call(c, DO_OP_GET);
}

void ekv_h_do_storage_put(ekv_call_t *c)
{
    storage_call(c, DO_OP_PUT);
}

void ekv_h_do_storage_delete(ekv_call_t *c)
{
    storage_call(c, DO_OP_DELETE);
}

void ekv_h_do_storage_list(ekv_call_t *c)
{
    storage_call(c, DO_OP_LIST);
}

void ekv_h_do_storage_delete_all(ekv_call_t *c)
{
    storage_call(c, DO_OP_DELETE_ALL);
}

void ekv_h_do_storage_txn(ekv_call_t *c)
{
    storage_call(c, DO_OP_TXN);
}

/* ---------------------------------------------------------------- alarm endpoints */

void ekv_h_do_alarm_get(ekv_call_t *c)
{
    storage_call(c, DO_OP_ALARM_GET);
}

void ekv_h_do_alarm_delete(ekv_call_t *c)
{
    storage_call(c, DO_OP_ALARM_DELETE);
}

/* Largest scheduledTime accepted: year 275760, JavaScript's Date limit (8.64e15 ms). */
#define MAX_ALARM_MS 8640000000000000LL

void ekv_h_do_alarm_put(ekv_call_t *c)
{
    do_nsent_t *ns;
    uint8_t objid[EKV_DO_OBJID_LEN];
    do_op_t *op = op_new(c, DO_OP_ALARM_SET, &ns, objid);
    if (!op)
        return;
    json_error_t jerr;
    json_t *body = json_loadb(body_of(c->req), c->req->body.len, 0, &jerr);
    json_t *t = body && json_is_object(body) ? json_object_get(body, "scheduledTime") : NULL;
    int is_num = t && json_is_number(t);
    double ms = is_num ? json_number_value(t) : -1;
    json_decref(body);
    if (!is_num || ms < 0 || ms > (double)MAX_ALARM_MS || ms != (double)(int64_t)ms) {
        ekv_reply_error(c->req, EKV_EDO_BAD_BODY,
                        "set alarm: body must be {\"scheduledTime\": <milliseconds since the "
                        "epoch, an integer from 0 to %lld>}",
                        (long long)MAX_ALARM_MS);
        ekv__do_op_free(op);
        return;
    }
    op->alarm_ms = (int64_t)ms;
    if (ekv__do_name_or_reply(c, ns, objid, &op->name, &op->name_len) < 0) {
        ekv__do_op_free(op);
        return;
    }
    queue_op(c, ns, objid, op);
}
