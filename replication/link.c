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
#include <string.h>

typedef struct {
    uv_write_t req;
    ekv_repl_link_t *link;
    char *bytes;
    size_t len;
} write_t;

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
    free(l->rbuf);
    l->rbuf = NULL;
    l->cbs.on_close(l);
}

int ekv_repl_link_init(ekv_repl_link_t *l, void *owner, const ekv_repl_link_cbs_t *cbs,
                       size_t max_frame)
{
    l->owner = owner;
    l->cbs = *cbs;
    l->tcp.data = l;
    l->low_water = 1u << 20;
    l->last_recv_ns = l->last_progress_ns = ekv_clock_mono_ns();
    ekv_repl_decoder_init(&l->dec, max_frame);
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

int ekv_repl_link_connect(ekv_repl_link_t *l, uv_loop_t *loop, const char *host, int port,
                          void (*on_connected)(ekv_repl_link_t *l, int status))
{
    struct sockaddr_storage sa;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&sa) &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa))
        return EKV_EBAD_REQUEST;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    snprintf(l->peer, sizeof(l->peer), "%s:%d", host, port);
    l->on_connected = on_connected;
    int rc = uv_tcp_connect(&l->connect_req, &l->tcp, (struct sockaddr *)&sa, on_connect);
    return rc ? EKV_EINTERNAL : 0;
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
    if (code && uv_is_writable((uv_stream_t *)&l->tcp)) {
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
