/*
 * etcd.c - etcd v3 through its HTTP/JSON gateway (see etcd.h).
 */
#include "server/node/coord/etcd.h"

#include "common/buf.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/link.h"
#include "server/http/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENDPOINTS   8
#define WATCH_MAX_LINE  (64u * 1024)
#define ANSWER_MAX_BODY (4u * 1024 * 1024)

typedef struct {
    char host[256];
    int port;
} endpoint_t;

struct ekv_etcd_s {
    ekv_http_client_t *http;
    endpoint_t ep[MAX_ENDPOINTS];
    int nep, cur;
    char cur_addr[300];
    void (*done)(void *);
    void *done_arg;
};

struct ekv_etcd_watch_s {
    ekv_etcd_t *e;
    ekv_http_call_t *call;
    void (*on_event)(void *ctx, json_t *event);
    void (*on_end)(void *ctx, int err);
    void *ctx;
    ekv_buf_t line;
    int cancelled, failed;
};

typedef struct {
    ekv_etcd_t *e;
    int ep;
    ekv_etcd_cb cb;
    void *ctx;
    char path[64];
} call_t;

static int parse_endpoints(const char *list, endpoint_t *ep, int *n)
{
    *n = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        char addr[300];
        if (len == 0 || len >= sizeof(addr) || *n == MAX_ENDPOINTS)
            return -1;
        memcpy(addr, p, len);
        addr[len] = '\0';
        if (ekv_repl_parse_addr(addr, ep[*n].host, sizeof(ep[*n].host), &ep[*n].port) ||
            ep[*n].port == 0)
            return -1;
        (*n)++;
        p += len;
        if (*p == ',')
            p++;
    }
    return *n ? 0 : -1;
}

static void set_cur(ekv_etcd_t *e, int i)
{
    e->cur = i % e->nep;
    snprintf(e->cur_addr, sizeof(e->cur_addr), "%.255s:%d", e->ep[e->cur].host, e->ep[e->cur].port);
}

int ekv_etcd_new(uv_loop_t *loop, const char *endpoints, ekv_etcd_t **out)
{
    ekv_etcd_t *e = calloc(1, sizeof(*e));
    if (!e)
        return EKV_ENOMEM;
    if (parse_endpoints(endpoints, e->ep, &e->nep)) {
        ekv_log_error("bad coordinator endpoints (want etcd://HOST:PORT[,HOST:PORT...])",
                      "value=\"%s\"", endpoints);
        free(e);
        return EKV_EBAD_REQUEST;
    }
    ekv_http_client_opts_t o = {0};
    o.max_conns = 4; /* a watch holds one */
    o.connect_timeout_ms = 1000;
    o.lim.max_body_bytes = ANSWER_MAX_BODY;
    if (ekv_http_client_new(loop, &o, &e->http)) {
        free(e);
        return EKV_ENOMEM;
    }
    set_cur(e, 0);
    *out = e;
    return 0;
}

const char *ekv_etcd_endpoint(const ekv_etcd_t *e)
{
    return e->cur_addr;
}

static void closed(void *arg)
{
    ekv_etcd_t *e = arg;
    if (e->done)
        e->done(e->done_arg);
    free(e);
}

void ekv_etcd_close(ekv_etcd_t *e, void (*done)(void *arg), void *arg)
{
    e->done = done;
    e->done_arg = arg;
    ekv_http_client_close(e->http, closed, e);
}

/* A transport error: the next call tries the next member. */
static void failed_over(ekv_etcd_t *e, int ep, int err, const char *what)
{
    if (e->nep > 1 && ep == e->cur) {
        set_cur(e, e->cur + 1);
        ekv_log_warn("coordinator endpoint failed: trying the next one", "call=%s err=%s next=%s",
                     what, ekv_err_name(err), e->cur_addr);
    }
}

static void on_answer(void *ctx, int err, const ekv_http_response_t *resp)
{
    call_t *k = ctx;
    ekv_etcd_t *e = k->e;
    json_t *j = NULL;
    if (err) {
        if (err != EKV_ESHUTDOWN && err != EKV_ECANCELLED)
            failed_over(e, k->ep, err, k->path);
        err = err == EKV_ETIMEOUT || err == EKV_ESHUTDOWN ? err : EKV_EUPSTREAM;
    } else if (resp->status / 100 != 2) {
        ekv_log_warn("coordinator call refused", "call=%s status=%d answer=\"%.200s\"", k->path,
                     resp->status, resp->body);
        err = EKV_EUPSTREAM;
    } else if (!(j = json_loadb(resp->body, resp->body_len, 0, NULL)) || !json_is_object(j)) {
        ekv_log_warn("coordinator answer is not JSON", "call=%s", k->path);
        err = EKV_EUPSTREAM;
    }
    k->cb(k->ctx, err, err ? NULL : j);
    json_decref(j);
    free(k);
}

static int post(ekv_etcd_t *e, const char *path, json_t *body, int timeout_ms, ekv_http_cb cb,
                void *ctx, void (*on_body)(void *, const char *, size_t), ekv_http_call_t **call)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return EKV_ENOMEM;
    static const ekv_http_header_t hdr[] = {{"Content-Type", "application/json"}};
    ekv_http_request_t r = {0};
    r.method = "POST";
    r.host = e->ep[e->cur].host;
    r.port = e->ep[e->cur].port;
    r.target = path;
    r.headers = hdr;
    r.nheaders = 1;
    r.body = text;
    r.body_len = strlen(text);
    r.timeout_ms = timeout_ms;
    r.on_body = on_body;
    int rc = ekv_http_client_send(e->http, &r, cb, ctx, call);
    free(text);
    return rc;
}

int ekv_etcd_call(ekv_etcd_t *e, const char *path, json_t *body, int timeout_ms, ekv_etcd_cb cb,
                  void *ctx)
{
    call_t *k = calloc(1, sizeof(*k));
    if (!k) {
        json_decref(body);
        return EKV_ENOMEM;
    }
    k->e = e;
    k->ep = e->cur;
    k->cb = cb;
    k->ctx = ctx;
    snprintf(k->path, sizeof(k->path), "%s", path);
    int rc = post(e, path, body, timeout_ms, on_answer, k, NULL, NULL);
    if (rc) {
        failed_over(e, k->ep, rc, path);
        free(k);
    }
    return rc;
}

/* ---------------------------------------------------------------- watch */

static void watch_line(ekv_etcd_watch_t *w, const char *s, size_t n)
{
    json_t *j = json_loadb(s, n, 0, NULL);
    json_t *res = json_object_get(j, "result");
    json_t *evs = json_object_get(res, "events");
    size_t i;
    json_t *ev;
    if ((!res || json_is_true(json_object_get(res, "canceled"))) && !w->failed) {
        /* {"error":...}, or etcd cancelled it (a compacted start revision) */
        ekv_log_warn("coordinator watch refused or cancelled by etcd", "answer=\"%.200s\"", s);
        w->failed = 1;
    }
    if (w->failed) {
        json_decref(j);
        return;
    }
    json_array_foreach(evs, i, ev) w->on_event(w->ctx, ev);
    json_decref(j);
}

static void watch_body(void *ctx, const char *data, size_t len)
{
    ekv_etcd_watch_t *w = ctx;
    while (len && !w->failed) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (w->line.len + take > WATCH_MAX_LINE) {
            w->failed = 1; /* ends at on_watch_end (the caller re-creates the watch) */
            return;
        }
        if (ekv_buf_append(&w->line, data, take)) {
            w->failed = 1;
            return;
        }
        data += take + (nl ? 1 : 0);
        len -= take + (nl ? 1 : 0);
        if (nl) {
            if (w->line.len)
                watch_line(w, w->line.data, w->line.len);
            ekv_buf_reset(&w->line);
        }
    }
}

static void on_watch_end(void *ctx, int err, const ekv_http_response_t *resp)
{
    ekv_etcd_watch_t *w = ctx;
    if (!err && resp->status / 100 != 2)
        err = EKV_EUPSTREAM;
    else if (!err)
        err = w->failed ? EKV_ETOO_LARGE : EKV_EUPSTREAM; /* etcd closed the stream */
    if (!w->cancelled) {
        if (err != EKV_ESHUTDOWN)
            failed_over(w->e, w->e->cur, err, "watch");
        w->on_end(w->ctx, err);
    }
    ekv_buf_deinit(&w->line);
    free(w);
}

int ekv_etcd_watch(ekv_etcd_t *e, const char *key, int64_t from_rev,
                   void (*on_event)(void *ctx, json_t *event), void (*on_end)(void *ctx, int err),
                   void *ctx, ekv_etcd_watch_t **out)
{
    ekv_etcd_watch_t *w = calloc(1, sizeof(*w));
    json_t *kb = ekv_etcd_b64(key, strlen(key));
    json_t *cr = kb ? json_pack("{s:o}", "key", kb) : NULL;
    if (!w || !cr) {
        free(w);
        json_decref(cr);
        return EKV_ENOMEM;
    }
    if (from_rev > 0) {
        char rev[24];
        snprintf(rev, sizeof(rev), "%lld", (long long)from_rev);
        json_object_set_new(cr, "start_revision", json_string(rev));
    }
    w->e = e;
    w->on_event = on_event;
    w->on_end = on_end;
    w->ctx = ctx;
    ekv_buf_init(&w->line, WATCH_MAX_LINE);
    int rc = post(e, "/v3/watch", json_pack("{s:o}", "create_request", cr), -1, on_watch_end, w,
                  watch_body, &w->call);
    if (rc) {
        ekv_buf_deinit(&w->line);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int ekv_etcd_watch_failed(const ekv_etcd_watch_t *w)
{
    return w->failed;
}

void ekv_etcd_watch_cancel(ekv_etcd_watch_t *w)
{
    w->cancelled = 1;
    ekv_http_call_cancel(w->call); /* on_watch_end runs now and frees w */
}

/* ---------------------------------------------------------------- JSON helpers */

json_t *ekv_etcd_b64(const void *data, size_t len)
{
    char *s = malloc(ekv_base64_encoded_len(len) + 1);
    if (!s)
        return NULL;
    size_t n = ekv_base64_encode(data, len, s);
    json_t *j = json_stringn(s, n);
    free(s);
    return j;
}

int64_t ekv_etcd_int(const json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    if (!json_is_string(v))
        return 0;
    char *end;
    long long x = strtoll(json_string_value(v), &end, 10);
    return *end ? 0 : (int64_t)x;
}

int ekv_etcd_bytes(const json_t *obj, const char *field, char *out, size_t cap, size_t *len)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_string(v) || !cap)
        return -1;
    const char *s = json_string_value(v);
    size_t sl = json_string_length(v);
    if (ekv_base64_decoded_max(sl) >= cap)
        return -1;
    size_t n;
    if (ekv_base64_decode(s, sl, (uint8_t *)out, &n))
        return -1;
    out[n] = '\0';
    if (len)
        *len = n;
    return 0;
}

/* ---------------------------------------------------------------- blocking */

int ekv_etcd_call_sync(const char *endpoints, const char *path, json_t *body, int timeout_ms,
                       json_t **answer)
{
    *answer = NULL;
    endpoint_t ep[MAX_ENDPOINTS];
    int nep;
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return EKV_ENOMEM;
    if (parse_endpoints(endpoints, ep, &nep)) {
        free(text);
        return EKV_EBAD_REQUEST;
    }
    static const ekv_http_header_t hdr[] = {{"Content-Type", "application/json"}};
    int rc = EKV_EUPSTREAM;
    for (int i = 0; i < nep && rc; i++) {
        char url[400];
        int v6 = strchr(ep[i].host, ':') != NULL;
        snprintf(url, sizeof(url), "http://%s%.255s%s:%d%.64s", v6 ? "[" : "", ep[i].host,
                 v6 ? "]" : "", ep[i].port, path);
        ekv_http_response_t *r = NULL;
        int e = ekv_http_fetch_sync("POST", url, hdr, 1, text, strlen(text), timeout_ms, &r);
        if (!e && r->status / 100 == 2) {
            json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
            if (json_is_object(j)) {
                *answer = j;
                rc = 0;
            } else {
                json_decref(j);
            }
        }
        ekv_http_response_free(r);
    }
    free(text);
    return rc;
}
