/*
 * calls.c - an object's calls: fetch forwarding (any method on .../objects/{id}/fetch/{path})
 * and alarm deliveries, both to the namespace's script URL, one at a time per object (the
 * input gate), in arrival order.
 *
 * A fetch waits at most opts.call_wait_ms for its turn (then 503 EKV_EDO_GATE_TIMEOUT); at
 * most opts.call_queue_max wait per object. It goes to script + "/" + path (+ "?" + query)
 * with the client's end-to-end headers (server/http: other_headers; never Authorization nor
 * the X-Auth pair) plus Edgekv-Object-Id, Edgekv-Namespace-Id and Edgekv-Object-Name (when
 * the client sent a name that derives this id); the upstream's status, headers and body come
 * back as they are. Alarm deliveries POST to script + "/__edgekv/alarm" (docs/API.md).
 *
 * Waiting fetches are also on one runtime-wide FIFO (their deadlines are in arrival order),
 * so one timer expires them.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/do/do_int.h"
#include "server/api/do/ids.h"
#include "server/http/reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_FWD_HEADERS 104
#define ALARM_PATH      "/__edgekv/alarm"

typedef struct do_call_s {
    struct do_call_s *next;          /* object queue */
    struct do_call_s *gprev, *gnext; /* runtime-wide FIFO of waiting fetches */
    do_obj_t *o;
    ekv_req_t *req; /* NULL: an alarm delivery */
    uint64_t deadline_ns;
    char *name; /* verified object name (fetch) */
    size_t name_len;
    char *hdrcopy;    /* the client's header lines, split in place */
    uint64_t version; /* an alarm delivery: the run it belongs to */
} do_call_t;

static void g_unlink(do_call_t *k)
{
    if (!k->deadline_ns)
        return;
    ekv_do_t *d = k->o->rt;
    if (k->gprev)
        k->gprev->gnext = k->gnext;
    else if (d->ghead == k)
        d->ghead = k->gnext;
    if (k->gnext)
        k->gnext->gprev = k->gprev;
    else if (d->gtail == k)
        d->gtail = k->gprev;
    k->gprev = k->gnext = NULL;
    k->deadline_ns = 0;
}

static void call_free(do_call_t *k)
{
    g_unlink(k);
    free(k->name);
    free(k->hdrcopy);
    free(k);
}

/* Remove k from its object's queue (it may be anywhere in it). */
static void q_unlink(do_obj_t *o, do_call_t *k)
{
    do_call_t **pp = (do_call_t **)&o->chead, *prev = NULL;
    while (*pp && *pp != k) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = k->next;
    if (o->ctail == k)
        o->ctail = prev;
    o->clen--;
    k->next = NULL;
}

static void pump(do_obj_t *o);

/* ---------------------------------------------------------------- answers */

static void release_resp(void *arg)
{
    ekv_http_response_free(arg);
}

/* Upstream response headers not relayed: hop-by-hop ones, and those the server writes itself
 * (the content type is passed on separately). */
static int not_relayed(const char *name)
{
    return ekv_http_hop_by_hop(name) || !strcasecmp(name, "content-type") ||
           !strcasecmp(name, "date") || !strcasecmp(name, "proxy-authenticate");
}

static void fetch_answered(do_call_t *k, int err, const ekv_http_response_t *resp)
{
    ekv_do_t *d = k->o->rt;
    ekv_req_t *req = k->req;
    if (err) {
        d->st.call_errors++;
        ekv_log_warn("durable object call failed", "err=%s", ekv_err_name(err));
        if (err == EKV_ESHUTDOWN || err == EKV_EBUSY)
            ekv_reply_busy(req, err);
        else
            ekv_reply_error(req, err, NULL);
        return;
    }
    ekv_buf_t h;
    ekv_buf_init(&h, 0);
    int bad = 0;
    for (size_t i = 0; i < resp->nheaders && !bad; i++) {
        const ekv_http_header_t *x = &resp->headers[i];
        if (not_relayed(x->name))
            continue;
        bad = ekv_buf_appendf(&h, "%s: %s\r\n", x->name, x->value) != 0;
    }
    if (bad || ekv_buf_append(&h, "", 1)) {
        ekv_buf_deinit(&h);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    const char *ctype = ekv_http_response_header(resp, "content-type");
    ekv_http_response_t *kept = ekv_http_response_keep(resp);
    ekv_http_send(req, resp->status, ctype, h.len > 1 ? h.data : NULL, kept->body, kept->body_len,
                  release_resp, kept);
    ekv_buf_deinit(&h);
}

static void call_done(void *ctx, int err, const ekv_http_response_t *resp)
{
    do_call_t *k = ctx;
    do_obj_t *o = k->o;
    ekv__do_obj_pin(o);
    if (k->req) {
        fetch_answered(k, err, resp);
    } else {
        int ok = !err && resp->status >= 200 && resp->status < 300;
        if (!ok)
            ekv_log_warn("alarm delivery failed", "err=%s status=%d retry_count=%u",
                         err ? ekv_err_name(err) : "-", err ? 0 : resp->status,
                         o->retry.retry_count);
        /* counted: the handler was reached (it answered, or failed or hung after the request
         * went out); not counted: it could not be reached at all */
        int counted = !err || !(err == EKV_EHTTP_DNS || err == EKV_EHTTP_CONNECT_REFUSED ||
                                err == EKV_EHTTP_CONNECT || err == EKV_EHTTP_CONNECT_TIMEOUT ||
                                err == EKV_EBUSY || err == EKV_ESHUTDOWN || err == EKV_ENOMEM ||
                                err == EKV_ECANCELLED);
        ekv__do_alarm_delivered(o, ok, counted);
    }
    call_free(k);
    o->call_running = 0;
    pump(o);
    ekv__do_obj_unpin(o);
}

/* ---------------------------------------------------------------- sending */

/* Add "name: value" to hs; 0 or -1 when full. */
static int add_header(ekv_http_header_t *hs, size_t *n, const char *name, const char *value)
{
    if (*n >= MAX_FWD_HEADERS)
        return -1;
    hs[*n].name = name;
    hs[*n].value = value;
    (*n)++;
    return 0;
}

/* Split the client's header lines (a copy in k->hdrcopy) into hs. */
static void client_headers(do_call_t *k, ekv_http_header_t *hs, size_t *n)
{
    const ekv_req_t *req = k->req;
    if (req->hdr[EKV_HDR_CONTENT_TYPE].present)
        add_header(hs, n, "content-type", req->hdr[EKV_HDR_CONTENT_TYPE].v);
    if (!req->other_headers || !req->other_headers[0])
        return;
    k->hdrcopy = strdup(req->other_headers);
    char *p = k->hdrcopy;
    while (p && *p) {
        char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        *eol = '\0';
        char *colon = strchr(p, ':');
        if (colon) {
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            /* the ids are ours to state */
            if (strcasecmp(p, "edgekv-object-id") && strcasecmp(p, "edgekv-namespace-id") &&
                strcasecmp(p, "edgekv-object-name"))
                add_header(hs, n, p, v);
        }
        p = eol + 2;
    }
}

static void start_call(do_obj_t *o, do_call_t *k)
{
    ekv_do_t *d = o->rt;
    if (!k->req && (!o->alarm_running || k->version != o->run_version)) {
        call_free(k); /* its run was replaced while it waited behind a call */
        return;
    }
    do_nsent_t *ns = ekv__do_ns_by_dons(d, o->key);
    int err = 0;
    ekv_http_url_t *u = NULL;
    char *target = NULL;
    if (!ns || ns->deleting)
        err = EKV_EDO_NS_NOT_FOUND;
    else if (!ns->ns.script[0])
        err = EKV_EDO_NO_SCRIPT;
    else if (!(u = malloc(sizeof(*u))) || !(target = malloc(EKV_HTTP_MAX_TARGET + 1)))
        err = EKV_ENOMEM;
    else if ((err = ekv_http_url_parse(ns->ns.script, u)) == 0) {
        /* base path without its trailing '/', then the call's path */
        size_t bl = strlen(u->target);
        while (bl && u->target[bl - 1] == '/')
            bl--;
        int n;
        if (k->req) {
            const ekv_slice_t *rest = &k->req->params.v[3];
            n = snprintf(target, EKV_HTTP_MAX_TARGET + 1, "%.*s/%.*s%s%s", (int)bl, u->target,
                         (int)rest->n, rest->p, k->req->query_len ? "?" : "",
                         k->req->query_len ? k->req->query : "");
        } else {
            n = snprintf(target, EKV_HTTP_MAX_TARGET + 1, "%.*s%s", (int)bl, u->target, ALARM_PATH);
        }
        if (n < 0 || n > EKV_HTTP_MAX_TARGET)
            err = EKV_EHTTP_URL_TOO_LONG;
    }
    char objhex[EKV_DO_ID_HEX_LEN + 1], nshex[EKV_ID_HEX_LEN + 1];
    ekv_do_id_hex(o->key + EKV_NSID_LEN, objhex);
    ekv_hex_encode(o->key, EKV_NSID_LEN, nshex);
    ekv_http_header_t hs[MAX_FWD_HEADERS];
    size_t nh = 0;
    char *body = NULL;
    size_t body_len = 0;
    if (!err) {
        add_header(hs, &nh, "edgekv-object-id", objhex);
        add_header(hs, &nh, "edgekv-namespace-id", nshex);
        const char *name = k->req ? k->name : o->dur_name;
        if (name)
            add_header(hs, &nh, "edgekv-object-name", name);
        if (k->req) {
            client_headers(k, hs, &nh);
        } else {
            add_header(hs, &nh, "content-type", "application/json");
            json_t *j = json_pack("{s:s, s:s, s:I, s:i, s:b}", "namespaceId", nshex, "objectId",
                                  objhex, "scheduledTime", (json_int_t)o->run_ms, "retryCount",
                                  (int)o->retry.retry_count, "isRetry", o->retry.retry_count > 0);
            body = j ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
            if (!body)
                err = EKV_ENOMEM;
            else
                body_len = strlen(body);
        }
    }
    if (!err) {
        ekv_http_request_t rq = {
            .method = k->req ? k->req->method_str : "POST",
            .host = u->host,
            .port = u->port,
            .target = target,
            .headers = hs,
            .nheaders = nh,
            .body = k->req ? k->req->body.data : body,
            .body_len = k->req ? k->req->body.len : body_len,
            .timeout_ms = d->o.call_timeout_ms,
        };
        err = ekv_http_client_send(d->http, &rq, call_done, k, NULL);
    }
    free(u);
    free(target);
    free(body);
    if (!err) {
        o->call_running = 1;
        if (!k->req)
            o->alarm_delivering = 1;
        d->st.calls += k->req != NULL;
        return;
    }
    /* failed before sending */
    if (k->req) {
        d->st.call_errors++;
        if (err == EKV_EBUSY)
            ekv_reply_busy(k->req, err);
        else
            ekv_reply_error(k->req, err, NULL);
    } else {
        ekv_log_warn("alarm delivery not sent", "err=%s", ekv_err_name(err));
        ekv__do_alarm_delivered(o, 0, err == EKV_EDO_NO_SCRIPT);
    }
    call_free(k);
}

static void pump(do_obj_t *o)
{
    ekv__do_obj_pin(o);
    while (!o->call_running && o->chead) {
        do_call_t *k = o->chead;
        q_unlink(o, k);
        g_unlink(k);
        start_call(o, k);
    }
    ekv__do_obj_unpin(o);
}

static void enqueue(do_obj_t *o, do_call_t *k)
{
    k->o = o;
    if (o->ctail)
        ((do_call_t *)o->ctail)->next = k;
    else
        o->chead = k;
    o->ctail = k;
    o->clen++;
    pump(o);
}

/* ---------------------------------------------------------------- entry points */

void ekv__do_call_alarm(do_obj_t *o)
{
    do_call_t *k = calloc(1, sizeof(*k));
    if (!k) {
        ekv__do_alarm_delivered(o, 0, 0);
        return;
    }
    k->version = o->run_version;
    enqueue(o, k);
}

void ekv_h_do_fetch(ekv_call_t *c)
{
    do_nsent_t *ns = ekv__do_ns_or_reply(c);
    uint8_t objid[EKV_DO_OBJID_LEN];
    if (!ns || ekv__do_objid_or_reply(c, ns, objid))
        return;
    if (!ns->ns.script[0]) {
        ekv_reply_error(c->req, EKV_EDO_NO_SCRIPT,
                        "this Durable Object namespace has no script URL to run calls: set one "
                        "with PUT .../durable_objects/namespaces/%s {\"script\": \"http://...\"}",
                        ns->ns.id);
        return;
    }
    ekv_do_t *d = c->app->dos;
    do_call_t *k = calloc(1, sizeof(*k));
    if (!k) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    if (ekv__do_name_or_reply(c, ns, objid, &k->name, &k->name_len) < 0) {
        free(k);
        return;
    }
    do_obj_t *o = ekv__do_obj_get(d, ns->dons, objid);
    if (!o) {
        call_free(k);
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    ekv__do_obj_pin(o);
    if (o->clen >= d->o.call_queue_max) {
        call_free(k);
        d->st.gate_timeouts++;
        ekv_reply_busy_msg(c->req, EKV_EDO_GATE_TIMEOUT,
                           "too many calls are waiting for this object; retry later");
        ekv__do_obj_unpin(o);
        return;
    }
    k->req = c->req;
    if (o->call_running || o->chead) {
        /* it will wait: give it a deadline on the runtime-wide FIFO */
        k->deadline_ns = ekv_clock_mono_ns() + (uint64_t)d->o.call_wait_ms * 1000000u;
        k->o = o;
        k->gprev = d->gtail;
        if (d->gtail)
            d->gtail->gnext = k;
        else
            d->ghead = k;
        d->gtail = k;
        if (!uv_is_active((uv_handle_t *)&d->call_timer))
            uv_timer_start(&d->call_timer, ekv__do_call_timer, 50, 50);
    }
    enqueue(o, k);
    ekv__do_obj_unpin(o);
}

void ekv__do_call_timer(uv_timer_t *t)
{
    ekv_do_t *d = t->data;
    uint64_t now = ekv_clock_mono_ns();
    while (d->ghead && d->ghead->deadline_ns <= now) {
        do_call_t *k = d->ghead;
        do_obj_t *o = k->o;
        ekv__do_obj_pin(o);
        q_unlink(o, k);
        g_unlink(k);
        d->st.gate_timeouts++;
        ekv_req_t *req = k->req;
        call_free(k);
        ekv_reply_busy_msg(req, EKV_EDO_GATE_TIMEOUT,
                           "the object's earlier calls did not finish within --do-call-wait-ms");
        ekv__do_obj_unpin(o);
    }
    if (!d->ghead)
        uv_timer_stop(t);
}

void ekv__do_calls_drop(do_obj_t *o, int err)
{
    while (o->chead) {
        do_call_t *k = o->chead;
        q_unlink(o, k);
        if (k->req)
            ekv_reply_error(k->req, err, NULL);
        else
            o->alarm_running = 0;
        call_free(k);
    }
}
