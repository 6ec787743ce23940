/*
 * link.c - framed replication connection over libuv (see link.h).
 */
#include "replication/link.h"

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <netdb.h>
#include <string.h>

typedef struct {
    uv_write_t req;
    ekv_repl_link_t *link;
    char *bytes;
    size_t len;
} write_t;

static int send_now(ekv_repl_link_t *l, char *bytes, size_t len);

/* Queue the handshake's answer (if any). 0 or the send error (the link is then closed). */
static int send_hs_out(ekv_repl_link_t *l, ekv_buf_t *out)
{
    if (!out->len) {
        ekv_buf_deinit(out);
        return 0;
    }
    size_t len;
    char *bytes = ekv_buf_take(out, &len);
    return send_now(l, bytes, len);
}

static void auth_fail(ekv_repl_link_t *l, const char *why)
{
    l->auth_failed = 1;
    ekv_repl_auth_failed(l->auth, l->peer, why);
    /* code 0: an unauthenticated peer is told nothing */
    ekv_repl_link_close(l, 0, 0, "authentication failed: %s", why);
}

/* One frame before authentication. 0 = go on, -1 = the link is closed. */
static int on_auth_frame(ekv_repl_link_t *l, const uint8_t *p, size_t len)
{
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    char why[200];
    int rc = ekv_repl_hs_step(&l->hs, p, len, &out, why, sizeof(why));
    if (rc < 0) {
        ekv_buf_deinit(&out);
        auth_fail(l, why);
        return -1;
    }
    if (send_hs_out(l, &out))
        return -1;
    if (rc == 1) {
        l->authed = 1;
        ekv_repl_decoder_set_max(&l->dec, l->max_frame);
        if (l->held.len) {
            size_t hl;
            char *hb = ekv_buf_take(&l->held, &hl);
            if (send_now(l, hb, hl))
                return -1;
        }
        ekv_buf_deinit(&l->held);
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    ekv_repl_link_t *l = h->data;
    buf->base = l->rbuf;
    buf->len = EKV_REPL_READ_BUF;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    ekv_repl_link_t *l = st->data;
    (void)buf;
    if (l->closing)
        return;
    if (n < 0 && !l->authed && l->hs.side == EKV_REPL_HS_CONNECTOR &&
        l->hs.state == EKV_REPL_HS_WAIT_PROOF) {
        /* our proof was refused (the listener tells an unauthenticated peer nothing) */
        auth_fail(l, "the peer closed the link after our auth proof (different cluster "
                     "secret?)");
        return;
    }
    if (n < 0) {
        size_t part = ekv_repl_decoder_buffered(&l->dec);
        if (n == UV_EOF)
            ekv_repl_link_close(l, 0, 0,
                                part ? "peer closed inside a frame (%zu bytes buffered)"
                                     : "peer closed the connection",
                                part);
        else
            ekv_repl_link_close(l, 0, 0, "read error: %s", uv_strerror((int)n));
        return;
    }
    if (n == 0)
        return;
    l->bytes_in += (uint64_t)n;
    int rc = ekv_repl_decoder_feed(&l->dec, l->rbuf, (size_t)n);
    while (!l->authed) {
        const uint8_t *p = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = ekv_repl_decoder_next_raw(&l->dec, &p, &len);
        if (rc < 0) {
            auth_fail(l, ekv_repl_decoder_reason(&l->dec));
            return;
        }
        if (rc == 0)
            return;
        rc = 0;
        l->frames_in++;
        l->last_recv_ns = ekv_clock_mono_ns();
        if (on_auth_frame(l, p, len))
            return;
    }
    for (;;) {
        Edgekv__Frame *f = NULL;
        if (rc == 0)
            rc = ekv_repl_decoder_next(&l->dec, &f);
        if (rc < 0) {
            ekv_repl_link_close(l, 0, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, "%s",
                                ekv_repl_decoder_reason(&l->dec));
            return;
        }
        if (rc == 0)
            break;
        rc = 0;
        l->frames_in++;
        l->last_recv_ns = ekv_clock_mono_ns();
        if (f->body_case == EDGEKV__FRAME__BODY_CHALLENGE ||
            f->body_case == EDGEKV__FRAME__BODY_AUTH_PROOF) {
            ekv_repl_frame_free(f);
            ekv_repl_link_close(l, 0, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL,
                                "handshake frame after authentication");
            return;
        }
        l->cbs.on_frame(l, f);
        if (l->closing) {
            /* drain the decoder's pointer to our buffer: nothing more is delivered */
            ekv_repl_decoder_deinit(&l->dec);
            ekv_repl_decoder_init(&l->dec, 0);
            return;
        }
    }
}

static void on_closed(uv_handle_t *h)
{
    ekv_repl_link_t *l = h->data;
    ekv_repl_decoder_deinit(&l->dec);
    ekv_buf_deinit(&l->held);
    free(l->rbuf);
    l->rbuf = NULL;
    l->cbs.on_close(l);
}

int ekv_repl_link_init(ekv_repl_link_t *l, void *owner, const ekv_repl_link_cbs_t *cbs,
                       size_t max_frame, ekv_repl_auth_t *auth, ekv_repl_hs_side_t side)
{
    l->owner = owner;
    l->cbs = *cbs;
    l->tcp.data = l;
    l->low_water = 1u << 20;
    l->last_recv_ns = l->last_progress_ns = ekv_clock_mono_ns();
    l->auth = auth;
    l->authed = auth == NULL;
    l->max_frame = max_frame ? max_frame : EKV_REPL_MAX_FRAME;
    /* held frames: a Hello or a few requests; over this the owner is not waiting for us */
    ekv_buf_init(&l->held, 16u << 20);
    ekv_repl_decoder_init(&l->dec, auth && l->max_frame > EKV_REPL_AUTH_MAX_FRAME
                                       ? EKV_REPL_AUTH_MAX_FRAME
                                       : l->max_frame);
    l->rbuf = malloc(EKV_REPL_READ_BUF);
    if (!l->rbuf)
        return EKV_ENOMEM;
    uv_tcp_nodelay(&l->tcp, 1);
    if (!l->peer[0]) {
        struct sockaddr_storage sa;
        int len = sizeof(sa);
        if (uv_tcp_getpeername(&l->tcp, (struct sockaddr *)&sa, &len) == 0) {
            char ip[48] = "?";
            int port = 0;
            if (sa.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&sa;
                uv_ip4_name(in, ip, sizeof(ip));
                port = ntohs(in->sin_port);
            } else if (sa.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
                uv_ip6_name(in6, ip, sizeof(ip));
                port = ntohs(in6->sin6_port);
            }
            snprintf(l->peer, sizeof(l->peer), "%s:%d", ip, port);
        }
    }
    if (auth) {
        ekv_buf_t out;
        ekv_buf_init(&out, 0);
        int rc = ekv_repl_hs_init(&l->hs, auth, side, &out);
        if (rc) {
            ekv_buf_deinit(&out);
            return rc;
        }
        if (send_hs_out(l, &out))
            return EKV_EINTERNAL;
    }
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    ekv_repl_link_t *l = req->handle->data;
    if (l->closing)
        return;
    if (status == 0)
        uv_tcp_nodelay(&l->tcp, 1);
    l->on_connected(l, status);
}

/* A host name being resolved for a link; outlives the link if it closes meanwhile. */
typedef struct {
    uv_getaddrinfo_t req;
    ekv_repl_link_t *l; /* NULL once the link closed */
    int port;
} resolve_t;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *r = (resolve_t *)req;
    ekv_repl_link_t *l = r->l;
    if (l)
        l->resolving = NULL;
    if (l && !l->closing) {
        int rc = status;
        if (!rc && (!res || !res->ai_addr))
            rc = UV_EAI_NONAME;
        if (!rc) {
            struct sockaddr_storage sa;
            memcpy(&sa, res->ai_addr, res->ai_addrlen);
            if (sa.ss_family == AF_INET)
                ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)r->port);
            else
                ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)r->port);
            rc = uv_tcp_connect(&l->connect_req, &l->tcp, (struct sockaddr *)&sa, on_connect);
        }
        if (rc)
            l->on_connected(l, rc);
    }
    uv_freeaddrinfo(res);
    free(r);
}

int ekv_repl_link_connect(ekv_repl_link_t *l, uv_loop_t *loop, const char *host, int port,
                          void (*on_connected)(ekv_repl_link_t *l, int status))
{
    struct sockaddr_storage sa;
    int literal = !uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) ||
                  !uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa);
    if (!host[0] || port <= 0 || port > 65535)
        return EKV_EBAD_REQUEST;
    if (uv_tcp_init(loop, &l->tcp))
        return EKV_EINTERNAL;
    /* from here the handle is in the loop: a failure closes the link (on_close), since the
     * caller must not free a struct whose handle the loop still holds */
    l->tcp.data = l;
    snprintf(l->peer, sizeof(l->peer), "%.50s:%d", host, port);
    l->on_connected = on_connected;
    int rc;
    if (literal) {
        rc = uv_tcp_connect(&l->connect_req, &l->tcp, (struct sockaddr *)&sa, on_connect);
    } else {
        resolve_t *r = calloc(1, sizeof(*r));
        rc = r ? 0 : UV_ENOMEM;
        if (r) {
            r->l = l;
            r->port = port;
            struct addrinfo hints;
            memset(&hints, 0, sizeof(hints));
            hints.ai_family = AF_UNSPEC;
            hints.ai_socktype = SOCK_STREAM;
            rc = uv_getaddrinfo(loop, &r->req, on_resolved, host, NULL, &hints);
            if (rc)
                free(r);
            else
                l->resolving = r;
        }
    }
    if (rc)
        ekv_repl_link_close(l, 0, 0, "connect failed: %s", uv_strerror(rc));
    return 0;
}

int ekv_repl_link_start(ekv_repl_link_t *l)
{
    l->reading = 1;
    return uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read) ? EKV_EINTERNAL : 0;
}

void ekv_repl_link_pause(ekv_repl_link_t *l)
{
    if (l->closing || l->paused)
        return;
    l->paused = 1;
    uv_read_stop((uv_stream_t *)&l->tcp);
}

void ekv_repl_link_resume(ekv_repl_link_t *l)
{
    if (l->closing || !l->paused)
        return;
    l->paused = 0;
    uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
}

static void on_written(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    ekv_repl_link_t *l = w->link;
    size_t before = l->queued;
    l->queued -= w->len;
    l->bytes_out += w->len;
    l->last_progress_ns = ekv_clock_mono_ns();
    free(w->bytes);
    free(w);
    if (l->closing)
        return;
    if (status < 0) {
        ekv_repl_link_close(l, 0, 0, "write error: %s", uv_strerror(status));
        return;
    }
    if (before >= l->low_water && l->queued < l->low_water && l->cbs.on_drain)
        l->cbs.on_drain(l);
}

int ekv_repl_link_send_raw(ekv_repl_link_t *l, char *bytes, size_t len)
{
    if (!l->authed && !l->closing) {
        int rc = ekv_buf_append(&l->held, bytes, len);
        free(bytes);
        if (rc)
            ekv_repl_link_close(l, 0, 0, "%zu bytes sent before authentication", l->held.len);
        return rc;
    }
    return send_now(l, bytes, len);
}

static int send_now(ekv_repl_link_t *l, char *bytes, size_t len)
{
    if (l->closing) {
        free(bytes);
        return EKV_ESHUTDOWN;
    }
    write_t *w = malloc(sizeof(*w));
    if (!w) {
        free(bytes);
        ekv_repl_link_close(l, 0, 0, "out of memory queueing %zu bytes", len);
        return EKV_ENOMEM;
    }
    w->link = l;
    w->bytes = bytes;
    w->len = len;
    if (l->queued == 0)
        l->last_progress_ns = ekv_clock_mono_ns();
    l->queued += len;
    l->frames_out++;
    uv_buf_t b = uv_buf_init(bytes, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, on_written);
    if (rc) {
        l->queued -= len;
        free(bytes);
        free(w);
        ekv_repl_link_close(l, 0, 0, "write failed: %s", uv_strerror(rc));
        return EKV_EINTERNAL;
    }
    return 0;
}

int ekv_repl_link_send(ekv_repl_link_t *l, const Edgekv__Frame *f)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    int rc = ekv_repl_frame_encode(f, &b);
    if (rc) {
        ekv_buf_deinit(&b);
        ekv_repl_link_close(l, 0, 0, "cannot encode %s frame: %s",
                            ekv_repl_frame_body_name(f->body_case), ekv_err_name(rc));
        return rc;
    }
    size_t len;
    char *bytes = ekv_buf_take(&b, &len);
    return ekv_repl_link_send_raw(l, bytes, len);
}

size_t ekv_repl_link_queued(const ekv_repl_link_t *l)
{
    return l->queued;
}

void ekv_repl_link_close(ekv_repl_link_t *l, uint64_t epoch, int code, const char *fmt, ...)
{
    if (l->closing)
        return;
    l->closing = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->close_reason, sizeof(l->close_reason), fmt, ap);
    va_end(ap);
    if (code && l->authed && uv_is_writable((uv_stream_t *)&l->tcp)) {
        /* best effort, never blocking: the peer's log says why */
        Edgekv__Error e = EDGEKV__ERROR__INIT;
        e.code = (Edgekv__ReplErrorCode)code;
        e.message = l->close_reason;
        Edgekv__Frame f = EDGEKV__FRAME__INIT;
        f.epoch = epoch;
        f.body_case = EDGEKV__FRAME__BODY_ERROR;
        f.error = &e;
        ekv_buf_t b;
        ekv_buf_init(&b, 0);
        if (ekv_repl_frame_encode(&f, &b) == 0 && l->queued == 0) {
            uv_buf_t ub = uv_buf_init(b.data, (unsigned)b.len);
            uv_try_write((uv_stream_t *)&l->tcp, &ub, 1);
        }
        ekv_buf_deinit(&b);
    }
    if (l->resolving) { /* its callback frees it (cancelled, or later) */
        resolve_t *r = l->resolving;
        r->l = NULL;
        l->resolving = NULL;
        uv_cancel((uv_req_t *)&r->req);
    }
    if (l->reading)
        uv_read_stop((uv_stream_t *)&l->tcp);
    uv_close((uv_handle_t *)&l->tcp, on_closed);
}

int ekv_repl_backoff_ms(int attempts, int min_ms, int max_ms)
{
    int step = min_ms;
    for (int i = 0; i < attempts && step < max_ms; i++)
        step *= 2;
    if (step > max_ms)
        step = max_ms;
    return step / 2 + (int)((unsigned)rand() % (unsigned)(step / 2 + 1));
}

int ekv_repl_parse_addr(const char *addr, char *host, size_t host_cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= host_cap)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || end == colon + 1)
        return -1;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = (int)p;
    return 0;
}
