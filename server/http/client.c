/*
 * client.c - the asynchronous HTTP/1.1 client (contract in client.h).
 *
 * Objects. A client owns upstreams (one per host:port), an upstream owns its connections
 * (all of them in `conns`, the idle ones also in the `idle` stack) and a FIFO of calls
 * waiting for a connection. A call (one request) is queued, or bound to exactly one
 * connection, or done.
 *
 * Connection states:
 *
 *   RESOLVING --(addresses)--> CONNECTING --(connected)--> BUSY --(response)--> IDLE
 *       |                          |                       ^  |                  |
 *       |                          | (fails: next address  |  +-- (not reusable) |
 *       |                          |  on a new connection) +-----(next call)-----+
 *       +------------- any failure, timeout, EOF while idle --------------> CLOSING
 *
 *   - RESOLVING and CONNECTING belong to the call that opened them; BUSY serves one call;
 *     an IDLE or CLOSING connection has none. The connect timer and the idle timer are the
 *     same uv timer; a call's total timeout is the call's own timer.
 *   - Idle connections exist only while the upstream's queue is empty: a connection that
 *     becomes idle first serves the queue (pump).
 *   - A connection is read from connect to close: while idle, EOF, an error or any byte
 *     closes it (the server closed or misbehaves), so the pool rarely hands out a dead
 *     connection; the retry rule covers the rest.
 *
 * Lifetimes. Every uv handle (a connection's tcp and timer, a call's timer, the client's
 * defer timer) and every getaddrinfo in flight counts in c->nhandles; memory is freed only
 * in close callbacks, so a pointer taken in one loop callback stays valid until it returns
 * whatever user callbacks do meanwhile (send, cancel, close). An upstream is freed when its
 * last connection is freed with an empty queue; the client when its last handle closes
 * after ekv_http_client_close().
 *
 * Re-entrancy. User callbacks run from call_finish() only, after the call has left every
 * list; the code around a callback re-reads state afterwards (pump() checks c->closing).
 */
#include "server/http/client.h"

#include "common/errors.h"
#include "common/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define READ_BUF_SIZE  (64 * 1024)
#define MAX_ADDRS      8
#define MAX_METHOD_LEN 32

#define DEF_MAX_CONNS       16
#define DEF_MAX_IDLE        8
#define DEF_MAX_QUEUE       256
#define DEF_CONNECT_TIMEOUT 5000
#define DEF_TIMEOUT         30000
#define DEF_IDLE_TIMEOUT    30000

typedef struct upstream_s upstream_t;
typedef struct conn_s conn_t;

typedef enum { C_RESOLVING, C_CONNECTING, C_BUSY, C_IDLE, C_CLOSING } conn_state_t;

struct conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect timeout, then idle timeout */
    uv_getaddrinfo_t gai;
    uv_connect_t connect;
    uv_write_t write;
    ekv_http_client_t *c;
    upstream_t *up;
    conn_state_t state;
    int nopen;       /* handles + getaddrinfo not finished */
    int writing;     /* a uv_write in flight */
    int rp_live;     /* rp is initialised */
    uint64_t served; /* responses completed: > 0 means a reused connection */
    ekv_http_call_t *call;
    conn_t *prev, *next;   /* up->conns */
    conn_t *iprev, *inext; /* up->idle */
    struct sockaddr_storage addrs[MAX_ADDRS];
    size_t naddrs, ai; /* addresses to try, the current one */
    ekv_http_resp_parser_t rp;
};

struct upstream_s {
    upstream_t *prev, *next;
    ekv_http_client_t *c;
    char host[256];
    int port;
    char portstr[8];
    char hosthdr[272]; /* Host header value */
    int numeric;
    struct sockaddr_storage addr; /* when numeric */
    conn_t *conns, *idle;
    size_t nconns, nidle; /* not CLOSING */
    size_t nrefs;         /* connections not yet freed */
    ekv_http_call_t *qhead, *qtail;
    size_t nqueued;
};

struct ekv_http_call_s {
    ekv_http_client_t *c;
    upstream_t *up;
    conn_t *conn;
    ekv_http_cb cb;
    void *ctx;
    uv_timer_t timer;               /* total timeout */
    ekv_http_call_t *prev, *next;   /* c->calls */
    ekv_http_call_t *qprev, *qnext; /* up's queue */
    int queued, done, retried, reused;
    int idempotent, head_only;
    unsigned flags;
    char *msg; /* request line + headers (+ body unless borrowed) */
    size_t msg_len;
    const void *body; /* borrowed */
    size_t body_len;
    void (*on_body)(void *ctx, const char *data, size_t len); /* streaming */
};

struct ekv_http_client_s {
    uv_loop_t *loop;
    ekv_http_client_opts_t o;
    upstream_t *ups;
    ekv_http_call_t *calls;
    size_t npending;
    uv_timer_t defer; /* pumps the queues after a cancel */
    size_t nhandles;
    int closing;
    void (*done)(void *);
    void *done_arg;
    ekv_http_client_stats_t st;
    char rbuf[READ_BUF_SIZE]; /* every read is parsed before the next one */
};

static void call_finish(ekv_http_call_t *k, int err, ekv_http_response_t *resp);
static void conn_close(conn_t *n);
static int call_dispatch(ekv_http_call_t *k);
static void on_connect(uv_connect_t *r, int status);
static void on_conn_timer(uv_timer_t *t);
static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res);
static void on_write(uv_write_t *w, int status);
static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

/* ---------------------------------------------------------------- small helpers */

static int is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return 1;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_token(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= max || !is_tchar((unsigned char)s[n]))
            return 0;
    return n > 0;
}

/* A host name: letters, digits, '-', '.', '_' (IPv4 literals fit). */
static int is_host_name(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_'))
            return 0;
    }
    return 1;
}

/* A request target in origin form, or "*": visible ASCII only. */
static int is_target(const char *s)
{
    if (!s || (s[0] != '/' && strcmp(s, "*") != 0))
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= EKV_HTTP_MAX_TARGET || (unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f)
            return 0;
    return 1;
}

static int is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int map_connect_err(int uverr)
{
    switch (uverr) {
    case UV_ECONNREFUSED:
        return EKV_EHTTP_CONNECT_REFUSED;
    case UV_ETIMEDOUT:
        return EKV_EHTTP_CONNECT_TIMEOUT;
    case UV_ENOMEM:
        return EKV_ENOMEM;
    default:
        return EKV_EHTTP_CONNECT;
    }
}

static void handle_closed(ekv_http_client_t *c);

/* ---------------------------------------------------------------- upstreams */

static void upstream_gc(upstream_t *up)
{
    if (up->nrefs || up->nqueued)
        return;
    ekv_http_client_t *c = up->c;
    if (up->prev)
        up->prev->next = up->next;
    else
        c->ups = up->next;
    if (up->next)
        up->next->prev = up->prev;
    free(up);
}

static int upstream_get(ekv_http_client_t *c, const char *host, int port, upstream_t **out)
{
    size_t hl = host ? strlen(host) : 0;
    if (hl == 0 || hl >= sizeof(((upstream_t *)0)->host) || port < 1 || port > 65535)
        return EKV_EBAD_REQUEST;
    for (upstream_t *up = c->ups; up; up = up->next)
        if (up->port == port && !strcasecmp(up->host, host)) {
            *out = up;
            return 0;
        }
    upstream_t *up = calloc(1, sizeof(*up));
    if (!up)
        return EKV_ENOMEM;
    memcpy(up->host, host, hl + 1);
    up->port = port;
    up->c = c;
    snprintf(up->portstr, sizeof(up->portstr), "%d", port);
    int v6 = 0;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&up->addr) == 0) {
        up->numeric = 1;
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&up->addr) == 0) {
        up->numeric = 1;
        v6 = 1;
    } else if (!is_host_name(host, hl)) {
        free(up);
        return EKV_EBAD_REQUEST;
    }
    if (port == 80)
        snprintf(up->hosthdr, sizeof(up->hosthdr), "%s%s%s", v6 ? "[" : "", host, v6 ? "]" : "");
    else
        snprintf(up->hosthdr, sizeof(up->hosthdr), "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
                 port);
    up->next = c->ups;
    if (c->ups)
        c->ups->prev = up;
    c->ups = up;
    *out = up;
    return 0;
}

static void queue_push(upstream_t *up, ekv_http_call_t *k)
{
    k->qprev = up->qtail;
    k->qnext = NULL;
    if (up->qtail)
        up->qtail->qnext = k;
    else
        up->qhead = k;
    up->qtail = k;
    up->nqueued++;
    k->queued = 1;
}

static void queue_unlink(ekv_http_call_t *k)
{
    upstream_t *up = k->up;
    if (k->qprev)
        k->qprev->qnext = k->qnext;
    else
        up->qhead = k->qnext;
    if (k->qnext)
        k->qnext->qprev = k->qprev;
    else
        up->qtail = k->qprev;
    k->qprev = k->qnext = NULL;
    up->nqueued--;
    k->queued = 0;
}

/* Serve waiting calls with idle connections, then with new ones while under max_conns. */
static void pump(upstream_t *up)
{
    ekv_http_client_t *c = up->c;
    while (!c->closing && up->qhead && (up->idle || up->nconns < c->o.max_conns)) {
        ekv_http_call_t *k = up->qhead;
        queue_unlink(k);
        int rc = call_dispatch(k);
        if (rc)
            call_finish(k, rc, NULL);
    }
}

/* ---------------------------------------------------------------- connections */

static void idle_unlink(conn_t *n)
{
    upstream_t *up = n->up;
    if (n->iprev)
        n->iprev->inext = n->inext;
    else
        up->idle = n->inext;
    if (n->inext)
        n->inext->iprev = n->iprev;
    n->iprev = n->inext = NULL;
    up->nidle--;
}

static void conn_attach(conn_t *n, ekv_http_call_t *k)
{
    n->call = k;
    k->conn = n;
}

static ekv_http_call_t *conn_detach(conn_t *n)
{
    ekv_http_call_t *k = n->call;
    if (k)
        k->conn = NULL;
    n->call = NULL;
    return k;
}

static void conn_free(conn_t *n)
{
    upstream_t *up = n->up;
    if (n->rp_live)
        ekv_http_resp_parser_deinit(&n->rp);
    free(n);
    up->nrefs--;
    upstream_gc(up);
}

static void conn_unref(conn_t *n)
{
    ekv_http_client_t *c = n->c;
    if (--n->nopen == 0)
        conn_free(n);
    handle_closed(c);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    conn_unref(h->data);
}

static conn_t *conn_new(upstream_t *up)
{
    ekv_http_client_t *c = up->c;
    conn_t *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    if (uv_tcp_init(c->loop, &n->tcp)) {
        free(n);
        return NULL;
    }
    uv_timer_init(c->loop, &n->timer);
    n->tcp.data = n->timer.data = n->gai.data = n->connect.data = n->write.data = n;
    n->c = c;
    n->up = up;
    n->state = C_CONNECTING;
    n->nopen = 2;
    c->nhandles += 2;
    n->next = up->conns;
    if (up->conns)
        up->conns->prev = n;
    up->conns = n;
    up->nconns++;
    up->nrefs++;
    return n;
}

/* Close; the caller has detached the call. Memory goes in the close callbacks. */
static void conn_close(conn_t *n)
{
    if (n->state == C_CLOSING)
        return;
    EKV_ASSERT(!n->call);
    upstream_t *up = n->up;
    if (n->state == C_IDLE)
        idle_unlink(n);
    if (n->prev)
        n->prev->next = n->next;
    else
        up->conns = n->next;
    if (n->next)
        n->next->prev = n->prev;
    n->prev = n->next = NULL;
    up->nconns--;
    if (n->state == C_RESOLVING)
        uv_cancel((uv_req_t *)&n->gai); /* on_resolved runs either way */
    n->state = C_CLOSING;
    uv_close((uv_handle_t *)&n->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&n->timer, on_conn_handle_closed);
}

static void conn_make_idle(conn_t *n, int idle_ms)
{
    upstream_t *up = n->up;
    ekv_http_client_t *c = n->c;
    if (c->closing || idle_ms <= 0 || up->nidle >= c->o.max_idle) {
        conn_close(n);
        return;
    }
    n->state = C_IDLE;
    n->iprev = NULL;
    n->inext = up->idle;
    if (up->idle)
        up->idle->iprev = n;
    up->idle = n;
    up->nidle++;
    uv_timer_start(&n->timer, on_conn_timer, (uint64_t)idle_ms, 0);
}

/* How long a pooled connection may idle: the option, shortened by the server's own
 * "Keep-Alive: timeout=N" (minus a margin, so we drop it before the server does). */
static int idle_ms_for(const ekv_http_client_t *c, const ekv_http_response_t *r)
{
    int ms = c->o.idle_timeout_ms;
    const char *ka = ekv_http_response_header(r, "keep-alive");
    for (const char *p = ka; p && *p; p++) {
        if (strncasecmp(p, "timeout=", 8) != 0)
            continue;
        long s = strtol(p + 8, NULL, 10);
        long hint = s > 0 && s < 86400 ? s * 1000 - 500 : 0;
        if (hint < ms)
            ms = (int)hint;
        break;
    }
    return ms;
}

/* Send k's request on n (connected, no call). 0, or an error with n closed and k detached. */
static int conn_send(conn_t *n, ekv_http_call_t *k)
{
    ekv_http_client_t *c = n->c;
    uv_timer_stop(&n->timer);
    n->state = C_BUSY;
    conn_attach(n, k);
    k->reused = n->served > 0;
    if (n->rp_live)
        ekv_http_resp_parser_deinit(&n->rp);
    ekv_http_resp_parser_init(&n->rp, &c->o.lim, k->head_only);
    if (k->on_body)
        ekv_http_resp_parser_stream(&n->rp, k->on_body, k->ctx);
    n->rp_live = 1;
    uv_buf_t bufs[2];
    unsigned nbufs = 1;
    bufs[0] = uv_buf_init(k->msg, (unsigned)k->msg_len);
    if (k->body) {
        bufs[1] = uv_buf_init((char *)k->body, (unsigned)k->body_len);
        nbufs = 2;
    }
    int rc = uv_write(&n->write, (uv_stream_t *)&n->tcp, bufs, nbufs, on_write);
    if (rc) {
        conn_detach(n);
        conn_close(n);
        return EKV_EHTTP_CLOSED;
    }
    n->writing = 1;
    if (k->reused)
        c->st.reused++;
    return 0;
}

/* Open a new connection for k (detached). 0, or a synchronous error with k detached again
 * (the caller reports it). */
static int conn_open(upstream_t *up, ekv_http_call_t *k)
{
    ekv_http_client_t *c = up->c;
    conn_t *n = conn_new(up);
    if (!n)
        return EKV_ENOMEM;
    conn_attach(n, k);
    uv_timer_start(&n->timer, on_conn_timer, (uint64_t)c->o.connect_timeout_ms, 0);
    int rc;
    if (up->numeric) {
        n->addrs[0] = up->addr;
        n->naddrs = 1;
        rc =
            uv_tcp_connect(&n->connect, &n->tcp, (const struct sockaddr *)&n->addrs[0], on_connect);
        rc = rc ? map_connect_err(rc) : 0;
    } else {
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        rc = uv_getaddrinfo(c->loop, &n->gai, on_resolved, up->host, up->portstr, &hints);
        if (rc == 0) {
            n->state = C_RESOLVING;
            n->nopen++;
            c->nhandles++;
        } else {
            rc = rc == UV_ENOMEM ? EKV_ENOMEM : EKV_EHTTP_DNS;
        }
    }
    if (rc) {
        conn_detach(n);
        conn_close(n);
    }
    return rc;
}

/* n's current address failed with err (async context): close n; return a new connection
 * for the next address with the call moved to it, or NULL after finishing the call. */
static conn_t *connect_failed(conn_t *n, int err)
{
    upstream_t *up = n->up;
    ekv_http_client_t *c = n->c;
    ekv_http_call_t *k = conn_detach(n);
    EKV_ASSERT(k); /* a connecting connection always has its call */
    size_t next = n->ai + 1;
    conn_close(n);
    if (next < n->naddrs) {
        conn_t *m = conn_new(up);
        if (m) {
            memcpy(m->addrs, n->addrs, sizeof(m->addrs));
            m->naddrs = n->naddrs;
            m->ai = next;
            conn_attach(m, k);
            uv_timer_start(&m->timer, on_conn_timer, (uint64_t)c->o.connect_timeout_ms, 0);
            return m;
        }
        err = EKV_ENOMEM;
    }
    call_finish(k, err, NULL);
    return NULL;
}

/* Connect n to its current address (async context); an address that fails at once moves
 * on to the next one; the call is finished when none is left. */
static void connect_next(conn_t *n)
{
    while (n) {
        int rc = uv_tcp_connect(&n->connect, &n->tcp, (const struct sockaddr *)&n->addrs[n->ai],
                                on_connect);
        if (rc == 0)
            return;
        n = connect_failed(n, map_connect_err(rc));
    }
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    conn_t *n = g->data;
    if (n->state == C_CLOSING) { /* cancelled, timed out or the client closed */
        uv_freeaddrinfo(res);
        conn_unref(n);
        return;
    }
    upstream_t *up = n->up;
    n->state = C_CONNECTING;
    for (struct addrinfo *a = status ? NULL : res; a && n->naddrs < MAX_ADDRS; a = a->ai_next)
        if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
            a->ai_addrlen <= sizeof(n->addrs[0]))
            memcpy(&n->addrs[n->naddrs++], a->ai_addr, a->ai_addrlen);
    uv_freeaddrinfo(res);
    conn_unref(n); /* the getaddrinfo; tcp and timer are still open */
    if (n->naddrs == 0) {
        ekv_http_call_t *k = conn_detach(n);
        conn_close(n);
        call_finish(k, status == UV_ENOMEM ? EKV_ENOMEM : EKV_EHTTP_DNS, NULL);
    } else {
        connect_next(n);
    }
    pump(up);
}

static void on_connect(uv_connect_t *r, int status)
{
    conn_t *n = r->data;
    if (n->state == C_CLOSING)
        return;
    upstream_t *up = n->up;
    ekv_http_client_t *c = n->c;
    if (status < 0) {
        connect_next(connect_failed(n, map_connect_err(status)));
        pump(up);
        return;
    }
    c->st.connects++;
    uv_tcp_nodelay(&n->tcp, 1);
    ekv_http_call_t *k = conn_detach(n);
    int rc = uv_read_start((uv_stream_t *)&n->tcp, on_alloc, on_read);
    if (rc) {
        conn_close(n);
        rc = EKV_EHTTP_CONNECT;
    } else {
        rc = conn_send(n, k);
    }
    if (rc)
        call_finish(k, rc, NULL);
    pump(up);
}

static void on_conn_timer(uv_timer_t *t)
{
    conn_t *n = t->data;
    upstream_t *up = n->up;
    if (n->state == C_IDLE) {
        conn_close(n); /* idle too long (the queue is empty while a connection idles) */
        return;
    }
    if (n->state == C_RESOLVING || n->state == C_CONNECTING) {
        connect_next(connect_failed(n, EKV_EHTTP_CONNECT_TIMEOUT));
        pump(up);
    }
}

/* The request on n failed with err: retry it under the rule in client.h, or finish it. */
static void conn_fail(conn_t *n, int err)
{
    ekv_http_client_t *c = n->c;
    ekv_http_call_t *k = conn_detach(n);
    int retry = err == EKV_EHTTP_CLOSED && k->reused && k->idempotent && !k->retried &&
                n->rp.received == 0 && !c->closing;
    conn_close(n);
    if (retry) {
        k->retried = 1;
        c->st.retries++;
        err = conn_open(k->up, k); /* a fresh connection, not another pooled one */
        if (err == 0)
            return;
    }
    call_finish(k, err, NULL);
}

/* The response on n is complete; exact: it ended at the end of the bytes read. */
static void conn_complete(conn_t *n, int exact)
{
    ekv_http_client_t *c = n->c;
    ekv_http_call_t *k = conn_detach(n);
    ekv_http_response_t *resp = ekv_http_resp_parser_take(&n->rp);
    int keep = exact && n->rp.keep_alive && !n->writing && !(k->flags & EKV_HTTP_CLOSE);
    ekv_http_resp_parser_deinit(&n->rp);
    n->rp_live = 0;
    n->served++;
    if (keep)
        conn_make_idle(n, idle_ms_for(c, resp));
    else
        conn_close(n);
    call_finish(k, 0, resp);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    conn_t *n = h->data;
    *buf = uv_buf_init(n->c->rbuf, sizeof(n->c->rbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *n = s->data;
    if (n->state == C_CLOSING || nread == 0)
        return;
    upstream_t *up = n->up;
    if (n->state != C_BUSY) {
        conn_close(n); /* idle: the server closed, failed, or sent bytes nobody asked for */
        return;
    }
    size_t used = 0;
    int rc;
    if (nread == UV_EOF)
        rc = ekv_http_resp_parser_finish(&n->rp);
    else if (nread < 0)
        rc = EKV_EHTTP_CLOSED; /* reset: even a read-until-close body is cut */
    else
        rc = ekv_http_resp_parser_feed(&n->rp, buf->base, (size_t)nread, &used);
    if (rc == 0)
        return;
    if (rc == 1)
        conn_complete(n, nread > 0 && used == (size_t)nread);
    else
        conn_fail(n, rc);
    pump(up);
}

static void on_write(uv_write_t *w, int status)
{
    conn_t *n = w->data;
    n->writing = 0;
    if (n->state != C_BUSY || status == 0 || n->rp.received > 0)
        return; /* a response under way: reading decides */
    upstream_t *up = n->up;
    conn_fail(n, EKV_EHTTP_CLOSED);
    pump(up);
}

/* ---------------------------------------------------------------- calls */

static void on_call_timer_closed(uv_handle_t *h)
{
    ekv_http_call_t *k = h->data;
    ekv_http_client_t *c = k->c;
    free(k->msg);
    free(k);
    handle_closed(c);
}

static void call_unlink(ekv_http_call_t *k)
{
    ekv_http_client_t *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    c->npending--;
}

/* The one place a call completes: leave the queue or the connection (closed, unless the
 * caller pooled or closed it already), stop the timer, run cb once. */
static void call_finish(ekv_http_call_t *k, int err, ekv_http_response_t *resp)
{
    ekv_http_client_t *c = k->c;
    EKV_ASSERT(!k->done);
    if (k->queued)
        queue_unlink(k);
    if (k->conn) {
        conn_t *n = k->conn;
        conn_detach(n);
        conn_close(n);
    }
    k->done = 1;
    call_unlink(k);
    uv_close((uv_handle_t *)&k->timer, on_call_timer_closed); /* frees k afterwards */
    if (err)
        c->st.failed++;
    else
        c->st.ok++;
    int kept = 0;
    if (resp)
        resp->kept_seen_ = &kept;
    k->cb(k->ctx, err, resp);
    /* a kept response is the callee's: it may be gone already (sent and released) */
    if (resp && !kept) {
        resp->kept_seen_ = NULL;
        ekv_http_response_free(resp);
    }
}

static void on_call_timeout(uv_timer_t *t)
{
    ekv_http_call_t *k = t->data;
    upstream_t *up = k->up;
    call_finish(k, EKV_ETIMEOUT, NULL);
    pump(up);
}

/* Put k (detached, not queued) on an idle connection or a new one. 0, or an error with k
 * still detached. */
static int call_dispatch(ekv_http_call_t *k)
{
    upstream_t *up = k->up;
    while (up->idle) {
        conn_t *n = up->idle;
        idle_unlink(n);
        if (conn_send(n, k) == 0)
            return 0;
    }
    return conn_open(up, k);
}

static int build_message(ekv_http_call_t *k, const upstream_t *up, const ekv_http_request_t *r)
{
    int own_host = 1;
    for (size_t i = 0; i < r->nheaders; i++) {
        const ekv_http_header_t *h = &r->headers[i];
        if (!h->name || !h->value || !is_token(h->name, 256) || !is_field_value(h->value) ||
            !strcasecmp(h->name, "content-length") || !strcasecmp(h->name, "transfer-encoding") ||
            !strcasecmp(h->name, "connection"))
            return EKV_EBAD_REQUEST;
        if (!strcasecmp(h->name, "host"))
            own_host = 0;
    }
    int rc = 0;
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    rc |= ekv_buf_appendf(&b, "%s %s HTTP/1.1\r\n", r->method, r->target);
    if (own_host)
        rc |= ekv_buf_appendf(&b, "Host: %s\r\n", up->hosthdr);
    for (size_t i = 0; i < r->nheaders; i++)
        rc |= ekv_buf_appendf(&b, "%s: %s\r\n", r->headers[i].name, r->headers[i].value);
    if (r->body_len || !strcmp(r->method, "POST") || !strcmp(r->method, "PUT") ||
        !strcmp(r->method, "PATCH"))
        rc |= ekv_buf_appendf(&b, "Content-Length: %zu\r\n", r->body_len);
    rc |= ekv_buf_appendf(&b, "Connection: %s\r\n\r\n",
                          (r->flags & EKV_HTTP_CLOSE) ? "close" : "keep-alive");
    if (r->body_len && (r->flags & EKV_HTTP_BORROW_BODY)) {
        k->body = r->body;
        k->body_len = r->body_len;
    } else if (r->body_len) {
        rc |= ekv_buf_append(&b, r->body, r->body_len);
    }
    if (rc) {
        ekv_buf_deinit(&b);
        return EKV_ENOMEM;
    }
    k->msg = ekv_buf_take(&b, &k->msg_len);
    return 0;
}

int ekv_http_client_send(ekv_http_client_t *c, const ekv_http_request_t *req, ekv_http_cb cb,
                         void *ctx, ekv_http_call_t **call)
{
    if (call)
        *call = NULL;
    if (c->closing)
        return EKV_ESHUTDOWN;
    if (!req || !cb || !req->method || !is_token(req->method, MAX_METHOD_LEN) ||
        !is_target(req->target) || (req->body_len && !req->body) ||
        (req->nheaders && !req->headers) || req->body_len > UINT32_MAX / 2 ||
        (req->timeout_ms < 0 && !req->on_body))
        return EKV_EBAD_REQUEST;
    upstream_t *up;
    int rc = upstream_get(c, req->host, req->port, &up);
    if (rc)
        return rc;
    if (!up->idle && up->nconns >= c->o.max_conns && up->nqueued >= c->o.max_queue) {
        c->st.busy++; /* refused before anything is allocated */
        return EKV_EBUSY;
    }
    ekv_http_call_t *k = calloc(1, sizeof(*k));
    if (!k) {
        upstream_gc(up);
        return EKV_ENOMEM;
    }
    rc = build_message(k, up, req);
    if (rc) {
        free(k);
        upstream_gc(up);
        return rc;
    }
    k->c = c;
    k->up = up;
    k->cb = cb;
    k->ctx = ctx;
    k->flags = req->flags;
    k->on_body = req->on_body;
    const char *m = req->method;
    k->head_only = !strcmp(m, "HEAD");
    k->idempotent = k->head_only || !strcmp(m, "GET") || !strcmp(m, "PUT") || !strcmp(m, "DELETE");
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    c->nhandles++;
    k->next = c->calls;
    if (c->calls)
        c->calls->prev = k;
    c->calls = k;
    c->npending++;
    if (req->timeout_ms >= 0)
        uv_timer_start(&k->timer, on_call_timeout,
                       (uint64_t)(req->timeout_ms > 0 ? req->timeout_ms : c->o.timeout_ms), 0);
    if (up->idle || up->nconns < c->o.max_conns) {
        rc = call_dispatch(k);
    } else {
        queue_push(up, k);
        rc = 0;
    }
    if (rc) { /* cb is not called: the caller gets rc */
        k->done = 1;
        call_unlink(k);
        uv_close((uv_handle_t *)&k->timer, on_call_timer_closed);
        upstream_gc(up);
        return rc;
    }
    c->st.calls++;
    if (call)
        *call = k;
    return 0;
}

static void on_defer(uv_timer_t *t)
{
    ekv_http_client_t *c = t->data;
    for (upstream_t *up = c->ups; up && !c->closing; up = up->next)
        pump(up);
}

void ekv_http_call_cancel(ekv_http_call_t *k)
{
    if (!k || k->done)
        return;
    ekv_http_client_t *c = k->c;
    call_finish(k, EKV_ECANCELLED, NULL);
    if (!c->closing) /* a freed connection slot serves the queue on the next loop turn */
        uv_timer_start(&c->defer, on_defer, 0, 0);
}

/* ---------------------------------------------------------------- client */

int ekv_http_client_new(uv_loop_t *loop, const ekv_http_client_opts_t *opts,
                        ekv_http_client_t **out)
{
    *out = NULL;
    ekv_http_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return EKV_ENOMEM;
    c->loop = loop;
    if (opts)
        c->o = *opts;
    ekv_http_client_opts_t *o = &c->o;
    if (!o->max_conns)
        o->max_conns = DEF_MAX_CONNS;
    if (!o->max_idle)
        o->max_idle = DEF_MAX_IDLE;
    if (o->max_idle > o->max_conns)
        o->max_idle = o->max_conns;
    if (!o->max_queue)
        o->max_queue = DEF_MAX_QUEUE;
    if (o->connect_timeout_ms <= 0)
        o->connect_timeout_ms = DEF_CONNECT_TIMEOUT;
    if (o->timeout_ms <= 0)
        o->timeout_ms = DEF_TIMEOUT;
    if (o->idle_timeout_ms <= 0)
        o->idle_timeout_ms = DEF_IDLE_TIMEOUT;
    if (!o->lim.max_header_bytes)
        o->lim.max_header_bytes = EKV_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!o->lim.max_headers)
        o->lim.max_headers = EKV_HTTP_DEFAULT_MAX_HEADERS;
    if (!o->lim.max_body_bytes)
        o->lim.max_body_bytes = EKV_HTTP_DEFAULT_MAX_BODY_BYTES;
    if (uv_timer_init(loop, &c->defer)) {
        free(c);
        return EKV_EINTERNAL;
    }
    c->defer.data = c;
    uv_unref((uv_handle_t *)&c->defer);
    c->nhandles = 1;
    *out = c;
    return 0;
}

static void client_free(ekv_http_client_t *c)
{
    while (c->ups) { /* normally gone with their last connection */
        upstream_t *up = c->ups;
        c->ups = up->next;
        free(up);
    }
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done)
        done(arg);
}

static void handle_closed(ekv_http_client_t *c)
{
    if (--c->nhandles == 0 && c->closing)
        client_free(c);
}

static void on_defer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

void ekv_http_client_close(ekv_http_client_t *c, void (*done)(void *arg), void *arg)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->done = done;
    c->done_arg = arg;
    while (c->calls) /* a callback may cancel others: always take the head */
        call_finish(c->calls, EKV_ESHUTDOWN, NULL);
    for (upstream_t *up = c->ups; up; up = up->next)
        while (up->conns)
            conn_close(up->conns);
    /* the last close callback frees the client, so done never runs inside this call */
    uv_close((uv_handle_t *)&c->defer, on_defer_closed);
}

void ekv_http_client_stats(const ekv_http_client_t *c, ekv_http_client_stats_t *out)
{
    *out = c->st;
    out->conns = out->idle = out->queued = 0;
    for (const upstream_t *up = c->ups; up; up = up->next) {
        out->conns += up->nconns;
        out->idle += up->nidle;
        out->queued += up->nqueued;
    }
    out->pending = c->npending;
}

/* ---------------------------------------------------------------- URLs, blocking fetch */

int ekv_http_url_parse(const char *url, ekv_http_url_t *u)
{
    memset(u->host, 0, sizeof(u->host));
    u->port = 80;
    u->target[0] = '\0';
    if (!url)
        return EKV_EHTTP_BAD_URL;
    if (!strncasecmp(url, "https://", 8))
        return EKV_EHTTP_HTTPS_UNSUPPORTED;
    if (strncasecmp(url, "http://", 7) != 0)
        return EKV_EHTTP_BAD_URL;
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    const char *aend = a + alen;
    const char *hs, *he, *port = NULL;
    int v6 = 0;
    if (alen && a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (!rb)
            return EKV_EHTTP_BAD_URL;
        hs = a + 1;
        he = rb;
        if (rb + 1 < aend) {
            if (rb[1] != ':')
                return EKV_EHTTP_BAD_URL;
            port = rb + 2;
        }
        v6 = 1;
    } else {
        const char *colon = memchr(a, ':', alen);
        hs = a;
        he = colon ? colon : aend;
        if (colon)
            port = colon + 1;
    }
    size_t hl = (size_t)(he - hs);
    if (hl == 0 || hl >= sizeof(u->host))
        return EKV_EHTTP_BAD_URL;
    memcpy(u->host, hs, hl);
    u->host[hl] = '\0';
    if (v6) {
        unsigned char tmp[16];
        if (strchr(u->host, '%') || uv_inet_pton(AF_INET6, u->host, tmp) != 0)
            return EKV_EHTTP_BAD_URL;
    } else if (!is_host_name(u->host, hl)) {
        return EKV_EHTTP_BAD_URL; /* also rejects userinfo ('@') and a second ':' */
    }
    if (port && port < aend) { /* an empty port ("host:") is the default (RFC 3986) */
        long v = 0;
        for (const char *p = port; p < aend; p++) {
            if (*p < '0' || *p > '9' || p - port >= 5)
                return EKV_EHTTP_BAD_URL;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535)
            return EKV_EHTTP_BAD_URL;
        u->port = (int)v;
    }
    const char *t = aend;
    size_t tl = strcspn(t, "#");
    size_t off = 0;
    if (*t != '/')
        u->target[off++] = '/'; /* "http://h?q" -> "/?q"; "http://h" -> "/" */
    if (tl + off >= sizeof(u->target))
        return EKV_EHTTP_BAD_URL;
    memcpy(u->target + off, t, tl);
    u->target[off + tl] = '\0';
    if (!is_target(u->target))
        return EKV_EHTTP_BAD_URL;
    return 0;
}

typedef struct {
    ekv_http_client_t *c;
    int err;
    ekv_http_response_t *resp;
} sync_state_t;

static void sync_cb(void *ctx, int err, const ekv_http_response_t *resp)
{
    sync_state_t *s = ctx;
    s->err = err;
    if (!err)
        s->resp = ekv_http_response_keep(resp);
    ekv_http_client_close(s->c, NULL, NULL); /* uv_run returns once it is closed */
}

int ekv_http_fetch_sync(const char *method, const char *url, const ekv_http_header_t *headers,
                        size_t nheaders, const void *body, size_t body_len, int timeout_ms,
                        ekv_http_response_t **out)
{
    *out = NULL;
    ekv_http_url_t *u = malloc(sizeof(*u));
    if (!u)
        return EKV_ENOMEM;
    int rc = ekv_http_url_parse(url, u);
    if (rc) {
        free(u);
        return rc;
    }
    if (timeout_ms <= 0)
        timeout_ms = DEF_TIMEOUT;
    uv_loop_t loop;
    if (uv_loop_init(&loop)) {
        free(u);
        return EKV_EINTERNAL;
    }
    /* a peer that closes early must not kill a CLI: hold SIGPIPE in this thread and drop
     * one raised meanwhile (unless one was already pending) */
    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);

    ekv_http_client_opts_t o;
    memset(&o, 0, sizeof(o));
    o.max_conns = 1;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = timeout_ms;
    sync_state_t s = {0};
    rc = ekv_http_client_new(&loop, &o, &s.c);
    if (rc == 0) {
        ekv_http_request_t r = {
            .method = method,
            .host = u->host,
            .port = u->port,
            .target = u->target,
            .headers = headers,
            .nheaders = nheaders,
            .body = body,
            .body_len = body_len,
            .flags = EKV_HTTP_CLOSE | EKV_HTTP_BORROW_BODY,
        };
        rc = ekv_http_client_send(s.c, &r, sync_cb, &s, NULL);
        if (rc)
            ekv_http_client_close(s.c, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    int lrc = uv_loop_close(&loop);
    EKV_ASSERT(lrc == 0); /* the client closed every handle */

    if (!was_pending) {
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe_set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    free(u);
    if (rc)
        return rc;
    if (s.err)
        return s.err;
    *out = s.resp;
    return 0;
}
