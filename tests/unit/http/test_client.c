/*
 * Unit tests for server/http/client.c and resp_parser.c: the response parser on its own
 * (split at every byte, pipelined bytes, HEAD/204/304/1xx, limits, EOF rules), URL parsing,
 * and the async client against a test server in this file (libuv + llhttp on 127.0.0.1 or
 * ::1, port 0, on its own thread) whose paths each misbehave in one way: keep-alive reuse,
 * chunked / Content-Length / read-until-close bodies, limits, garbage, refused, connect and
 * total timeouts, idle connections closed by the server, the retry rule, parallel calls and
 * the queue bound, cancel, close with calls pending, and the blocking fetch helper.
 */
#include "server/http/client.h"

#include "common/buf.h"
#include "common/errors.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* ================================================================ test server */

typedef struct tsrv_s tsrv_t;
typedef struct tconn_s tconn_t;

struct tconn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    tsrv_t *s;
    tconn_t *prev, *next;
    llhttp_t p;
    int nopen, closing, close_now, close_after_write;
    int nreq; /* requests seen on this connection */
    char method[16];
    char url[4096];
    size_t url_len;
    char field[64];
    size_t field_len;
    int field_done;
    char host[256], xtest[256];
    ekv_buf_t body;
};

struct tsrv_s {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t stop;
    uv_thread_t thread;
    uv_sem_t ready;
    llhttp_settings_t settings;
    tconn_t *conns;
    int port;
    int ipv6;
    atomic_int accepted;
    atomic_int requests;
};

typedef struct {
    uv_write_t w;
    tconn_t *c;
    int close_after;
    size_t len;
    char data[];
} twrite_t;

static void tconn_closed(uv_handle_t *h)
{
    tconn_t *c = h->data;
    if (--c->nopen)
        return;
    ekv_buf_deinit(&c->body);
    free(c);
}

static void tconn_close(tconn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    tsrv_t *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    uv_close((uv_handle_t *)&c->tcp, tconn_closed);
    uv_close((uv_handle_t *)&c->timer, tconn_closed);
}

static void twrite_done(uv_write_t *w, int status)
{
    twrite_t *t = (twrite_t *)w;
    if (t->close_after && !t->c->closing)
        tconn_close(t->c);
    free(t);
}

static void tsend(tconn_t *c, const void *data, size_t len, int close_after)
{
    twrite_t *t = malloc(sizeof(*t) + len);
    memcpy(t->data, data, len);
    t->c = c;
    t->close_after = close_after;
    t->len = len;
    uv_buf_t b = uv_buf_init(t->data, (unsigned)len);
    if (uv_write(&t->w, (uv_stream_t *)&c->tcp, &b, 1, twrite_done))
        free(t);
}

static void tsendf(tconn_t *c, int close_after, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tsendf(tconn_t *c, int close_after, const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    tsend(c, buf, (size_t)n, close_after);
}

static long query_n(const tconn_t *c, long def)
{
    const char *q = strstr(c->url, "n=");
    return q ? strtol(q + 2, NULL, 10) : def;
}

static int path_is(const tconn_t *c, const char *path)
{
    size_t n = strlen(path);
    return !strncmp(c->url, path, n) && (c->url[n] == '\0' || c->url[n] == '?');
}

static void slow_reply(uv_timer_t *t)
{
    tconn_t *c = t->data;
    tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
}

static void close_later(uv_timer_t *t)
{
    tconn_close(t->data);
}

/* The routes: each path misbehaves in one way. */
static void route(tconn_t *c)
{
    if (path_is(c, "/hello")) {
        tsendf(c, 0,
               "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\nx-conn-req: %d\r\n\r\nhello",
               c->nreq);
    } else if (path_is(c, "/echo")) {
        char head[1024];
        int n = snprintf(head, sizeof(head), "%s %s host=%s x=%s len=%zu:", c->method, c->url,
                         c->host, c->xtest, c->body.len);
        tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s", (size_t)n + c->body.len,
               head);
        if (c->body.len)
            tsend(c, c->body.data, c->body.len, 0);
    } else if (path_is(c, "/chunked")) {
        tsendf(c, 0,
               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               "2\r\nab\r\n3;ext=1\r\ncde\r\n1\r\nf\r\n0\r\nX-Trailer: t\r\n\r\n");
    } else if (path_is(c, "/eof")) {
        tsendf(c, 1, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until close");
    } else if (path_is(c, "/http10")) {
        tsendf(c, 1, "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!");
    } else if (path_is(c, "/bighdr")) {
        long n = query_n(c, 1000);
        char *big = malloc((size_t)n + 64);
        int h = snprintf(big, 64, "HTTP/1.1 200 OK\r\nX-Big: ");
        memset(big + h, 'a', (size_t)n);
        tsend(c, big, (size_t)h + (size_t)n, 0);
        tsendf(c, 0, "\r\nContent-Length: 2\r\n\r\nok");
        free(big);
    } else if (path_is(c, "/manyhdrs")) {
        long n = query_n(c, 10);
        tsendf(c, 0, "HTTP/1.1 200 OK\r\n");
        for (long i = 0; i < n; i++)
            tsendf(c, 0, "X-H%ld: v%ld\r\n", i, i);
        tsendf(c, 0, "Content-Length: 2\r\n\r\nok");
    } else if (path_is(c, "/bigbody")) {
        long n = query_n(c, 1000);
        char *b = malloc((size_t)n);
        memset(b, 'b', (size_t)n);
        tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n\r\n", n);
        tsend(c, b, (size_t)n, 0);
        free(b);
    } else if (path_is(c, "/bigchunked")) {
        long n = query_n(c, 1000);
        char chunk[1024];
        memset(chunk, 'c', sizeof(chunk));
        tsendf(c, 0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (long left = n; left > 0; left -= (long)sizeof(chunk)) {
            size_t k = left < (long)sizeof(chunk) ? (size_t)left : sizeof(chunk);
            tsendf(c, 0, "%zx\r\n", k);
            tsend(c, chunk, k, 0);
            tsendf(c, 0, "\r\n");
        }
        tsendf(c, 0, "0\r\n\r\n");
    } else if (path_is(c, "/garbage")) {
        tsendf(c, 0, "HTTP/1.1 2x0 OK\r\n\r\n");
    } else if (path_is(c, "/hang")) {
        /* never answers */
    } else if (path_is(c, "/slow")) {
        uv_timer_start(&c->timer, slow_reply, (uint64_t)query_n(c, 50), 0);
    } else if (path_is(c, "/close-after")) {
        tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        uv_timer_start(&c->timer, close_later, 20, 0);
    } else if (path_is(c, "/drop-if-reused")) {
        if (c->nreq > 1)
            c->close_now = 1;
        else
            tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
    } else if (path_is(c, "/head")) {
        if (!strcmp(c->method, "HEAD"))
            tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
        else
            tsendf(c, 0, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget");
    } else if (path_is(c, "/204")) {
        tsendf(c, 0, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n");
    } else if (path_is(c, "/304")) {
        tsendf(c, 0, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n");
    } else if (path_is(c, "/partial")) {
        tsendf(c, 1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    } else if (path_is(c, "/continue")) {
        tsendf(c, 0, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    } else if (path_is(c, "/ka-hint")) {
        tsendf(c, 0, "HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 2\r\n\r\nok");
    } else {
        tsendf(c, 0, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    }
}

static int ts_message_begin(llhttp_t *p)
{
    tconn_t *c = p->data;
    c->url_len = 0;
    c->url[0] = c->host[0] = c->xtest[0] = '\0';
    c->field_len = 0;
    c->field_done = 0;
    ekv_buf_reset(&c->body);
    return 0;
}

static int ts_url(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;
    if (len >= sizeof(c->url) - c->url_len)
        return -1;
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int ts_field(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;
    if (c->field_done) {
        c->field_len = 0;
        c->field_done = 0;
    }
    if (len < sizeof(c->field) - c->field_len) {
        memcpy(c->field + c->field_len, at, len);
        c->field_len += len;
    }
    c->field[c->field_len] = '\0';
    return 0;
}

static int ts_value(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;
    c->field_done = 1;
    char *dst = !strcasecmp(c->field, "host")     ? c->host
                : !strcasecmp(c->field, "x-test") ? c->xtest
                                                  : NULL;
    if (dst) {
        size_t have = strlen(dst);
        if (len < 255 - have) {
            memcpy(dst + have, at, len);
            dst[have + len] = '\0';
        }
    }
    return 0;
}

/* "/close-early": close (with the body unread: a reset) as soon as the headers are in */
static int ts_headers_complete(llhttp_t *p)
{
    tconn_t *c = p->data;
    if (path_is(c, "/close-early")) {
        c->close_now = 1;
        return HPE_PAUSED;
    }
    return 0;
}

static int ts_body(llhttp_t *p, const char *at, size_t len)
{
    tconn_t *c = p->data;
    return ekv_buf_append(&c->body, at, len) ? -1 : 0;
}

static int ts_message_complete(llhttp_t *p)
{
    tconn_t *c = p->data;
    c->nreq++;
    atomic_fetch_add(&c->s->requests, 1);
    snprintf(c->method, sizeof(c->method), "%s", llhttp_method_name(llhttp_get_method(p)));
    route(c);
    return 0;
}

static void ts_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    static __thread char rbuf[65536];
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void ts_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    tconn_t *c = st->data;
    if (c->closing)
        return;
    if (n < 0) {
        tconn_close(c);
        return;
    }
    if (n > 0 && !c->close_now && llhttp_execute(&c->p, buf->base, (size_t)n) != HPE_OK)
        c->close_now = 1;
    if (c->close_now)
        tconn_close(c);
}

static void ts_accept(uv_stream_t *l, int status)
{
    tsrv_t *s = l->data;
    if (status < 0)
        return;
    tconn_t *c = calloc(1, sizeof(*c));
    c->s = s;
    uv_tcp_init(&s->loop, &c->tcp);
    uv_timer_init(&s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->nopen = 2;
    ekv_buf_init(&c->body, 4u << 20);
    llhttp_init(&c->p, HTTP_REQUEST, &s->settings);
    c->p.data = c;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) == 0) {
        atomic_fetch_add(&s->accepted, 1);
        uv_read_start((uv_stream_t *)&c->tcp, ts_alloc, ts_read);
    } else {
        tconn_close(c);
    }
}

static void ts_stop(uv_async_t *a)
{
    tsrv_t *s = a->data;
    while (s->conns)
        tconn_close(s->conns);
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void ts_thread(void *arg)
{
    tsrv_t *s = arg;
    uv_sem_post(&s->ready);
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

static tsrv_t *tsrv_start(int ipv6)
{
    tsrv_t *s = calloc(1, sizeof(*s));
    s->ipv6 = ipv6;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = ts_message_begin;
    s->settings.on_url = ts_url;
    s->settings.on_header_field = ts_field;
    s->settings.on_header_value = ts_value;
    s->settings.on_headers_complete = ts_headers_complete;
    s->settings.on_body = ts_body;
    s->settings.on_message_complete = ts_message_complete;
    cr_assert(eq(int, uv_loop_init(&s->loop), 0));
    uv_tcp_init(&s->loop, &s->listener);
    s->listener.data = s;
    struct sockaddr_storage ss;
    if (ipv6)
        uv_ip6_addr("::1", 0, (struct sockaddr_in6 *)&ss);
    else
        uv_ip4_addr("127.0.0.1", 0, (struct sockaddr_in *)&ss);
    cr_assert(eq(int, uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0), 0));
    cr_assert(eq(int, uv_listen((uv_stream_t *)&s->listener, 128, ts_accept), 0));
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(ipv6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                         : ((struct sockaddr_in *)&ss)->sin_port);
    uv_async_init(&s->loop, &s->stop, ts_stop);
    s->stop.data = s;
    uv_sem_init(&s->ready, 0);
    uv_thread_create(&s->thread, ts_thread, s);
    uv_sem_wait(&s->ready);
    return s;
}

static void tsrv_stop(tsrv_t *s)
{
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    cr_assert(eq(int, uv_loop_close(&s->loop), 0));
    uv_sem_destroy(&s->ready);
    free(s);
}

/* ================================================================ client fixture */

static tsrv_t *srv;
static uv_loop_t loop;
static ekv_http_client_t *cli;
static int closed_done;

typedef struct {
    int calls; /* callbacks seen: must end at exactly 1 */
    int err;
    ekv_http_response_t *resp;
    uint64_t at_ms;
} result_t;

static void result_cb(void *ctx, int err, const ekv_http_response_t *resp)
{
    result_t *r = ctx;
    r->calls++;
    r->err = err;
    r->at_ms = uv_now(&loop);
    if (resp)
        r->resp = ekv_http_response_keep(resp);
}

static void result_clear(result_t *r)
{
    ekv_http_response_free(r->resp);
    memset(r, 0, sizeof(*r));
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

static void tick(uv_timer_t *t)
{
}

/* Run the loop until *flag >= want or max_ms passed; returns whether it got there. */
static int run_until(int *flag, int want, int max_ms)
{
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, tick, 5, 5);
    uv_update_time(&loop);
    uint64_t end = uv_now(&loop) + (uint64_t)max_ms;
    while (*flag < want && uv_now(&loop) < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *flag >= want;
}

static void run_for(int ms)
{
    int never = 0;
    run_until(&never, 1, ms);
}

static void client_open(const ekv_http_client_opts_t *o)
{
    cr_assert(eq(int, ekv_http_client_new(&loop, o, &cli), 0));
}

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    srv = tsrv_start(0);
    cr_assert(eq(int, uv_loop_init(&loop), 0));
    cli = NULL;
    closed_done = 0;
}

static void teardown(void)
{
    if (cli) {
        ekv_http_client_close(cli, on_closed, &closed_done);
        cr_assert(eq(int, closed_done, 0)); /* done never runs inside close */
        run_until(&closed_done, 1, 5000);
        cr_assert(eq(int, closed_done, 1));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert(eq(int, uv_loop_close(&loop), 0), "a handle leaked");
    tsrv_stop(srv);
}

static int send_req(const char *method, const char *target, const void *body, size_t len,
                    result_t *r)
{
    ekv_http_request_t q = {.method = method,
                            .host = "127.0.0.1",
                            .port = srv->port,
                            .target = target,
                            .body = body,
                            .body_len = len};
    return ekv_http_client_send(cli, &q, result_cb, r, NULL);
}

/* One request, run to completion; asserts the callback ran exactly once. */
static void fetch(const char *method, const char *target, result_t *r)
{
    memset(r, 0, sizeof(*r));
    cr_assert(eq(int, send_req(method, target, NULL, 0, r), 0));
    cr_assert(eq(int, r->calls, 0)); /* never inside send */
    cr_assert(run_until(&r->calls, 1, 5000), "no completion for %s %s", method, target);
    run_for(5);
    cr_assert(eq(int, r->calls, 1));
}

static void assert_body(const ekv_http_response_t *resp, const char *want)
{
    cr_assert_not_null(resp);
    cr_assert(eq(sz, resp->body_len, strlen(want)));
    cr_assert(eq(str, (char *)resp->body, (char *)want));
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd); /* nobody listens there now */
    return ntohs(a.sin_port);
}

/* ================================================================ response parser */

static const char *const CHUNKED = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                   "X-Mixed-Case: Value With Spaces  \r\n\r\n"
                                   "5\r\nhello\r\n7;name=v\r\n, world\r\n0\r\nX-T: 1\r\n\r\n";

Test(resp_parser, chunked_split_at_every_byte)
{
    size_t n = strlen(CHUNKED);
    for (size_t cut = 0; cut <= n; cut++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, NULL, 0);
        size_t used = 0;
        int rc = ekv_http_resp_parser_feed(&p, CHUNKED, cut, &used);
        if (cut < n) {
            cr_assert(eq(int, rc, 0), "cut %zu", cut);
            cr_assert(eq(sz, used, cut));
            rc = ekv_http_resp_parser_feed(&p, CHUNKED + cut, n - cut, &used);
            cr_assert(eq(sz, used, n - cut));
        }
        cr_assert(eq(int, rc, 1), "cut %zu", cut);
        ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
        cr_assert(eq(int, r->status, 200));
        cr_assert(eq(int, r->http_minor, 1));
        assert_body(r, "hello, world");
        cr_assert(eq(sz, r->nheaders, 2)); /* the trailer is dropped */
        cr_assert(
            eq(str, (char *)ekv_http_response_header(r, "x-mixed-case"), "Value With Spaces"));
        cr_assert(eq(str, (char *)r->headers[0].name, "Transfer-Encoding"));
        cr_assert_null(ekv_http_response_header(r, "X-T"));
        cr_assert(eq(int, p.keep_alive, 1));
        ekv_http_response_free(r);
        ekv_http_resp_parser_deinit(&p);
    }
}

typedef struct {
    char data[256];
    size_t len, calls;
} sink_t;

static void sink_piece(void *ctx, const char *d, size_t n)
{
    sink_t *k = ctx;
    cr_assert(k->len + n < sizeof(k->data));
    memcpy(k->data + k->len, d, n);
    k->len += n;
    k->calls++;
}

/* Streaming (etcd's watch): a 2xx body goes to the sink piece by piece, beyond
 * max_body_bytes, and the response itself has an empty body; other statuses are buffered. */
Test(resp_parser, streams_a_2xx_body_to_the_sink)
{
    size_t n = strlen(CHUNKED);
    ekv_http_resp_limits_t lim = {.max_body_bytes = 4}; /* smaller than the body */
    for (size_t cut = 0; cut <= n; cut++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, &lim, 0);
        sink_t k = {0};
        ekv_http_resp_parser_stream(&p, sink_piece, &k);
        size_t used = 0;
        int rc = ekv_http_resp_parser_feed(&p, CHUNKED, cut, &used);
        if (cut < n)
            rc = ekv_http_resp_parser_feed(&p, CHUNKED + cut, n - cut, &used);
        cr_assert(eq(int, rc, 1), "cut %zu", cut);
        cr_assert(eq(sz, k.len, 12));
        cr_assert(eq(int, memcmp(k.data, "hello, world", 12), 0));
        cr_assert(k.calls >= 2); /* two chunks at least */
        ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
        cr_assert(eq(int, r->status, 200));
        cr_assert(eq(sz, r->body_len, 0));
        ekv_http_response_free(r);
        ekv_http_resp_parser_deinit(&p);
    }
    const char *err = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop";
    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, NULL, 0);
    sink_t k = {0};
    ekv_http_resp_parser_stream(&p, sink_piece, &k);
    size_t used;
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, err, strlen(err), &used), 1));
    cr_assert(eq(sz, k.calls, 0));
    ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
    cr_assert(eq(int, r->status, 404));
    assert_body(r, "nop");
    ekv_http_response_free(r);
    ekv_http_resp_parser_deinit(&p);
}

Test(resp_parser, stops_at_the_end_of_the_response)
{
    const char *two = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 404 Nope\r\n\r\n";
    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, NULL, 0);
    size_t used;
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, two, strlen(two), &used), 1));
    cr_assert(eq(sz, used, strlen("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")));
    ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
    assert_body(r, "abc");
    ekv_http_response_free(r);
    /* a complete parser stays complete */
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, "x", 1, &used), 1));
    cr_assert(eq(sz, used, 0));
    ekv_http_resp_parser_deinit(&p);
}

Test(resp_parser, head_204_304_have_no_body)
{
    struct {
        const char *in;
        int head, status;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", 1, 200},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 200},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, 204},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, 304},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, NULL, cases[i].head);
        size_t used;
        size_t n = strlen(cases[i].in);
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, cases[i].in, n, &used), 1), "case %zu", i);
        cr_assert(eq(sz, used, n));
        ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
        cr_assert(eq(int, r->status, cases[i].status));
        assert_body(r, "");
        ekv_http_response_free(r);
        ekv_http_resp_parser_deinit(&p);
    }
}

Test(resp_parser, interim_1xx_is_skipped)
{
    const char *in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     "HTTP/1.1 201 Created\r\nContent-Length: 2\r\nLocation: /x\r\n\r\nok";
    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, NULL, 0);
    size_t used;
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, in, strlen(in), &used), 1));
    ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
    cr_assert(eq(int, r->status, 201));
    cr_assert(eq(sz, r->nheaders, 2));
    cr_assert_null(ekv_http_response_header(r, "link"));
    cr_assert(eq(str, (char *)ekv_http_response_header(r, "LOCATION"), "/x"));
    assert_body(r, "ok");
    ekv_http_response_free(r);
    ekv_http_resp_parser_deinit(&p);
}

Test(resp_parser, read_until_close_completes_at_finish)
{
    const char *in = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of ";
    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, NULL, 0);
    size_t used;
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, in, strlen(in), &used), 0));
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, "it", 2, &used), 0));
    cr_assert(eq(int, ekv_http_resp_parser_finish(&p), 1));
    cr_assert(eq(int, p.keep_alive, 0));
    ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
    assert_body(r, "all of it");
    ekv_http_response_free(r);
    ekv_http_resp_parser_deinit(&p);
}

Test(resp_parser, eof_before_the_end_is_closed_early)
{
    const char *partial[] = {"", "HTTP/1.1 200", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
                             "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                             "HTTP/1.1 100 Continue\r\n\r\n"};
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, NULL, 0);
        size_t used;
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, partial[i], strlen(partial[i]), &used), 0));
        cr_assert(eq(int, ekv_http_resp_parser_finish(&p), EKV_EHTTP_CLOSED), "case %zu", i);
        cr_assert_null(ekv_http_resp_parser_take(&p));
        ekv_http_resp_parser_deinit(&p);
    }
}

Test(resp_parser, garbage_is_a_bad_response_and_sticky)
{
    const char *bad[] = {
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n",
        "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, NULL, 0);
        size_t used;
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, bad[i], strlen(bad[i]), &used),
                     EKV_EHTTP_BAD_RESPONSE),
                  "case %zu", i);
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, "HTTP/1.1 200 OK\r\n\r\n", 19, &used),
                     EKV_EHTTP_BAD_RESPONSE));
        cr_assert(eq(int, ekv_http_resp_parser_finish(&p), EKV_EHTTP_BAD_RESPONSE));
        ekv_http_resp_parser_deinit(&p);
    }
}

/* Found by fuzz_http_response: llhttp 8 passes a header line ": value" with an empty name. */
Test(resp_parser, regress_empty_header_name)
{
    const char *in = "HTTP/1.1 200 OK\r\n: Content-Length: 3\r\n\r\nabc";
    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, NULL, 0);
    size_t used;
    cr_assert(
        eq(int, ekv_http_resp_parser_feed(&p, in, strlen(in), &used), EKV_EHTTP_BAD_RESPONSE));
    cr_assert_null(ekv_http_resp_parser_take(&p));
    ekv_http_resp_parser_deinit(&p);
}

Test(resp_parser, limits)
{
    ekv_http_resp_limits_t lim = {.max_header_bytes = 64, .max_headers = 3, .max_body_bytes = 10};
    struct {
        const char *in;
        int want;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n",
         EKV_EHTTP_RESP_HEADERS_TOO_LARGE},
        {"HTTP/1.1 204 OK\r\nX: "
         "0123456789012345678901234567890123456789012345678901234567890x\r\n\r\n",
         EKV_EHTTP_RESP_HEADERS_TOO_LARGE},
        {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n",
         EKV_EHTTP_RESP_TOO_LARGE}, /* no body yet */
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\nghijk\r\n",
         EKV_EHTTP_RESP_TOO_LARGE},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;"
         "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee=1\r\na\r\n",
         EKV_EHTTP_RESP_HEADERS_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, &lim, 0);
        size_t used;
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, cases[i].in, strlen(cases[i].in), &used),
                     cases[i].want),
                  "case %zu", i);
        ekv_http_resp_parser_deinit(&p);
    }
    /* exactly at the limits is fine: 64 header bytes ("OK" + "X" + 61); 3 headers; 10 body
     * bytes */
    const char *at = "HTTP/1.1 204 OK\r\nX: "
                     "0123456789012345678901234567890123456789012345678901234567890\r\n\r\n";
    {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, &lim, 0);
        size_t used;
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, at, strlen(at), &used), 1));
        ekv_http_resp_parser_deinit(&p);
    }
    const char *ok = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nContent-Length: 10\r\n\r\n0123456789";
    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, &lim, 0);
    size_t used;
    cr_assert(eq(int, ekv_http_resp_parser_feed(&p, ok, strlen(ok), &used), 1));
    ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
    cr_assert(eq(sz, r->nheaders, 3));
    assert_body(r, "0123456789");
    ekv_http_response_free(r);
    ekv_http_resp_parser_deinit(&p);
}

Test(resp_parser, http10_and_connection_close_are_not_keep_alive)
{
    const char *cases[] = {"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
                           "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"};
    for (int i = 0; i < 2; i++) {
        ekv_http_resp_parser_t p;
        ekv_http_resp_parser_init(&p, NULL, 0);
        size_t used;
        cr_assert(eq(int, ekv_http_resp_parser_feed(&p, cases[i], strlen(cases[i]), &used), 1));
        cr_assert(eq(int, p.keep_alive, 0));
        ekv_http_resp_parser_deinit(&p); /* frees the response not taken */
    }
}

/* ================================================================ URLs */

Test(url, parses_the_parts)
{
    ekv_http_url_t u;
    cr_assert(eq(int, ekv_http_url_parse("http://example.com:8080/a/b?c=d#frag", &u), 0));
    cr_assert(eq(str, u.host, "example.com"));
    cr_assert(eq(int, u.port, 8080));
    cr_assert(eq(str, u.target, "/a/b?c=d"));

    cr_assert(eq(int, ekv_http_url_parse("HTTP://127.0.0.1", &u), 0));
    cr_assert(eq(str, u.host, "127.0.0.1"));
    cr_assert(eq(int, u.port, 80));
    cr_assert(eq(str, u.target, "/"));

    cr_assert(eq(int, ekv_http_url_parse("http://h?x=1", &u), 0));
    cr_assert(eq(str, u.target, "/?x=1"));
    cr_assert(eq(int, ekv_http_url_parse("http://h#f", &u), 0));
    cr_assert(eq(str, u.target, "/"));
    cr_assert(eq(int, ekv_http_url_parse("http://h:/p", &u), 0)); /* empty port = default */
    cr_assert(eq(int, u.port, 80));

    cr_assert(eq(int, ekv_http_url_parse("http://[::1]:9/x%20y", &u), 0));
    cr_assert(eq(str, u.host, "::1"));
    cr_assert(eq(int, u.port, 9));
    cr_assert(eq(str, u.target, "/x%20y"));
    cr_assert(eq(int, ekv_http_url_parse("http://[2001:db8::7]", &u), 0));
    cr_assert(eq(str, u.host, "2001:db8::7"));
    cr_assert(eq(int, u.port, 80));
    cr_assert(eq(int, ekv_http_url_parse("http://h:65535", &u), 0));
    cr_assert(eq(int, u.port, 65535));
}

Test(url, refuses_what_it_cannot_send)
{
    ekv_http_url_t u;
    cr_assert(eq(int, ekv_http_url_parse("https://example.com/", &u), EKV_EHTTP_HTTPS_UNSUPPORTED));
    cr_assert(eq(int, ekv_http_url_parse("HTTPS://example.com/", &u), EKV_EHTTP_HTTPS_UNSUPPORTED));
    const char *bad[] = {NULL,
                         "",
                         "example.com",
                         "ftp://h/",
                         "http://",
                         "http:///path",
                         "http://:80/",
                         "http://user@h/",
                         "http://user:pw@h/",
                         "http://h:0/",
                         "http://h:65536/",
                         "http://h:123456/",
                         "http://h:8x/",
                         "http://h:-1/",
                         "http://a:1:2/",
                         "http://[::1/",
                         "http://[::1]x/",
                         "http://[nothex]/",
                         "http://[fe80::1%25eth0]/",
                         "http://h/a b",
                         "http://h/a\tb",
                         "http://h/\x7f",
                         "http://h/\xc3\xa9",
                         "http://ex ample/",
                         " http://h/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int, ekv_http_url_parse(bad[i], &u), EKV_EHTTP_BAD_URL), "case %zu: %s", i,
                  bad[i] ? bad[i] : "NULL");
    /* sizes: a 255-byte host fits, 256 does not; the target is bounded */
    char url[EKV_HTTP_MAX_TARGET + 64];
    snprintf(url, sizeof(url), "http://%0255d/", 0);
    cr_assert(eq(int, ekv_http_url_parse(url, &u), EKV_EHTTP_BAD_URL)); /* > 253: not a name */
    snprintf(url, sizeof(url), "http://%0253d/", 0);
    cr_assert(eq(int, ekv_http_url_parse(url, &u), 0));
    memcpy(url, "http://h/", 9);
    memset(url + 9, 'a', EKV_HTTP_MAX_TARGET);
    url[9 + EKV_HTTP_MAX_TARGET] = '\0';
    cr_assert(eq(int, ekv_http_url_parse(url, &u), EKV_EHTTP_BAD_URL));
}

/* ================================================================ the client */

TestSuite(client, .init = setup, .fini = teardown, .timeout = 60);

Test(client, simple_get)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/hello", &r);
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(int, r.resp->status, 200));
    assert_body(r.resp, "hello");
    cr_assert(eq(str, (char *)ekv_http_response_header(r.resp, "x-test"), "yes"));
    cr_assert(eq(str, (char *)ekv_http_response_header(r.resp, "X-CONN-REQ"), "1"));
    cr_assert(eq(sz, r.resp->nheaders, 3));
    cr_assert(eq(str, (char *)r.resp->headers[0].name, "Content-Length"));
    cr_assert(eq(str, (char *)r.resp->headers[0].value, "5"));
    result_clear(&r);
    fetch("GET", "/nowhere", &r); /* a 404 is a response, not an error */
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(int, r.resp->status, 404));
    result_clear(&r);
}

Test(client, post_with_body_and_headers)
{
    client_open(NULL);
    const char body[] = "a\0b\r\nc"; /* binary-safe */
    ekv_http_header_t hdrs[] = {{"X-Test", "custom value"}};
    ekv_http_request_t q = {.method = "POST",
                            .host = "127.0.0.1",
                            .port = srv->port,
                            .target = "/echo?q=1",
                            .headers = hdrs,
                            .nheaders = 1,
                            .body = body,
                            .body_len = sizeof(body) - 1};
    result_t r = {0};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    cr_assert(eq(int, r.err, 0));
    char want[256];
    int n = snprintf(want, sizeof(want),
                     "POST /echo?q=1 host=127.0.0.1:%d x=custom value len=6:", srv->port);
    cr_assert(eq(sz, r.resp->body_len, (size_t)n + 6));
    cr_assert(eq(int, memcmp(r.resp->body, want, (size_t)n), 0), "%s", r.resp->body);
    cr_assert(eq(int, memcmp(r.resp->body + n, body, 6), 0));
    result_clear(&r);

    /* a borrowed body, a Host of our own, an empty POST */
    static const char big[] = "borrowed bytes";
    ekv_http_header_t host[] = {{"Host", "virtual.example"}};
    ekv_http_request_t q2 = {.method = "PUT",
                             .host = "127.0.0.1",
                             .port = srv->port,
                             .target = "/echo",
                             .headers = host,
                             .nheaders = 1,
                             .body = big,
                             .body_len = sizeof(big) - 1,
                             .flags = EKV_HTTP_BORROW_BODY};
    cr_assert(eq(int, ekv_http_client_send(cli, &q2, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    assert_body(r.resp, "PUT /echo host=virtual.example x= len=14:borrowed bytes");
    result_clear(&r);
    fetch("POST", "/echo", &r); /* an empty POST still says Content-Length: 0 */
    snprintf(want, sizeof(want), "POST /echo host=127.0.0.1:%d x= len=0:", srv->port);
    assert_body(r.resp, want);
    result_clear(&r);
}

Test(client, keep_alive_reuses_one_connection)
{
    client_open(NULL);
    for (int i = 1; i <= 5; i++) {
        result_t r;
        fetch("GET", "/hello", &r);
        cr_assert(eq(int, r.err, 0));
        char n[8];
        snprintf(n, sizeof(n), "%d", i); /* the server's request count on this connection */
        cr_assert(eq(str, (char *)ekv_http_response_header(r.resp, "x-conn-req"), n));
        result_clear(&r);
    }
    cr_assert(eq(int, atomic_load(&srv->accepted), 1));
    cr_assert(eq(int, atomic_load(&srv->requests), 5));
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.connects, 1));
    cr_assert(eq(u64, st.reused, 4));
    cr_assert(eq(u64, st.ok, 5));
    cr_assert(eq(sz, st.idle, 1));
    cr_assert(eq(sz, st.conns, 1));
    cr_assert(eq(sz, st.pending, 0));
}

Test(client, chunked_response)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/chunked", &r);
    cr_assert(eq(int, r.err, 0));
    assert_body(r.resp, "abcdef");
    cr_assert_null(ekv_http_response_header(r.resp, "x-trailer"));
    result_clear(&r);
    fetch("GET", "/chunked", &r); /* chunked keeps the connection */
    assert_body(r.resp, "abcdef");
    result_clear(&r);
    cr_assert(eq(int, atomic_load(&srv->accepted), 1));
}

Test(client, content_length_response_large)
{
    ekv_http_client_opts_t o = {.lim.max_body_bytes = 300000};
    client_open(&o);
    result_t r;
    fetch("GET", "/bigbody?n=300000", &r); /* exactly the cap, many reads */
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(sz, r.resp->body_len, 300000));
    cr_assert(eq(str, (char *)ekv_http_response_header(r.resp, "content-length"), "300000"));
    cr_assert(eq(int, r.resp->body[0], 'b'));
    cr_assert(eq(int, r.resp->body[299999], 'b'));
    cr_assert(eq(int, r.resp->body[300000], '\0'));
    result_clear(&r);
    fetch("GET", "/bigchunked?n=250000", &r);
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(sz, r.resp->body_len, 250000));
    result_clear(&r);
    cr_assert(eq(int, atomic_load(&srv->accepted), 1));
}

Test(client, read_until_close_response)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/eof", &r);
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(int, r.resp->status, 200));
    assert_body(r.resp, "read until close");
    result_clear(&r);
    fetch("GET", "/http10", &r); /* HTTP/1.0 without keep-alive: not pooled */
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(int, r.resp->http_minor, 0));
    assert_body(r.resp, "old!");
    result_clear(&r);
    fetch("GET", "/hello", &r);
    cr_assert(eq(int, r.err, 0));
    result_clear(&r);
    cr_assert(eq(int, atomic_load(&srv->accepted), 3));
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.reused, 0));
}

Test(client, head_204_304_and_interim)
{
    client_open(NULL);
    result_t r;
    fetch("HEAD", "/head", &r); /* Content-Length: 100 and no body: must not wait */
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(str, (char *)ekv_http_response_header(r.resp, "content-length"), "100"));
    assert_body(r.resp, "");
    result_clear(&r);
    fetch("GET", "/204", &r);
    cr_assert(eq(int, r.resp->status, 204));
    assert_body(r.resp, "");
    result_clear(&r);
    fetch("GET", "/304", &r);
    cr_assert(eq(int, r.resp->status, 304));
    assert_body(r.resp, "");
    result_clear(&r);
    fetch("GET", "/continue", &r);
    cr_assert(eq(int, r.resp->status, 200));
    assert_body(r.resp, "ok");
    result_clear(&r);
    fetch("GET", "/head", &r); /* still in sync: every answer above ended where expected */
    assert_body(r.resp, "get");
    result_clear(&r);
    cr_assert(eq(int, atomic_load(&srv->accepted), 1));
}

Test(client, response_header_too_large)
{
    ekv_http_client_opts_t o = {.lim.max_header_bytes = 4096, .lim.max_headers = 10};
    client_open(&o);
    result_t r;
    fetch("GET", "/bighdr?n=5000", &r);
    cr_assert(eq(int, r.err, EKV_EHTTP_RESP_HEADERS_TOO_LARGE));
    cr_assert_null(r.resp);
    fetch("GET", "/manyhdrs?n=11", &r);
    cr_assert(eq(int, r.err, EKV_EHTTP_RESP_HEADERS_TOO_LARGE));
    fetch("GET", "/manyhdrs?n=9", &r); /* + Content-Length = 10 */
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(sz, r.resp->nheaders, 10));
    cr_assert(eq(str, (char *)ekv_http_response_header(r.resp, "x-h8"), "v8"));
    result_clear(&r);
    /* the default cap (64 KiB) */
    ekv_http_client_close(cli, NULL, NULL);
    client_open(NULL);
    fetch("GET", "/bighdr?n=70000", &r);
    cr_assert(eq(int, r.err, EKV_EHTTP_RESP_HEADERS_TOO_LARGE));
}

Test(client, response_body_too_large)
{
    ekv_http_client_opts_t o = {.lim.max_body_bytes = 1000};
    client_open(&o);
    result_t r;
    fetch("GET", "/bigbody?n=1001", &r); /* refused from Content-Length */
    cr_assert(eq(int, r.err, EKV_EHTTP_RESP_TOO_LARGE));
    fetch("GET", "/bigchunked?n=5000", &r); /* refused while reading */
    cr_assert(eq(int, r.err, EKV_EHTTP_RESP_TOO_LARGE));
    fetch("GET", "/bigbody?n=1000", &r);
    cr_assert(eq(int, r.err, 0));
    cr_assert(eq(sz, r.resp->body_len, 1000));
    result_clear(&r);
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.failed, 2));
}

Test(client, bad_response_bytes)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/garbage", &r);
    cr_assert(eq(int, r.err, EKV_EHTTP_BAD_RESPONSE));
    cr_assert_null(r.resp);
    fetch("GET", "/partial", &r);
    cr_assert(eq(int, r.err, EKV_EHTTP_CLOSED));
    fetch("GET", "/hello", &r); /* the broken connections were not pooled */
    cr_assert(eq(int, r.err, 0));
    result_clear(&r);
    cr_assert(eq(int, atomic_load(&srv->accepted), 3));
}

Test(client, connection_refused)
{
    client_open(NULL);
    ekv_http_request_t q = {
        .method = "GET", .host = "127.0.0.1", .port = free_port(), .target = "/"};
    result_t r = {0};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    cr_assert(eq(int, r.err, EKV_EHTTP_CONNECT_REFUSED));
    cr_assert(eq(str, (char *)ekv_strerror(r.err), "upstream refused the connection"));
    cr_assert(eq(str, (char *)ekv_err_name(r.err), "HTTP_CONNECT_REFUSED"));
}

Test(client, dns_failure_and_host_names)
{
    client_open(NULL);
    ekv_http_request_t q = {
        .method = "GET", .host = "no-such-host.invalid", .port = 80, .target = "/"};
    result_t r = {0};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 10000));
    cr_assert(eq(int, r.err, EKV_EHTTP_DNS));
    /* a name that resolves (through uv_getaddrinfo) */
    memset(&r, 0, sizeof(r));
    q.host = "localhost";
    q.port = srv->port;
    q.target = "/echo";
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    cr_assert(eq(int, r.err, 0));
    char want[128];
    snprintf(want, sizeof(want), "GET /echo host=localhost:%d x= len=0:", srv->port);
    assert_body(r.resp, want);
    result_clear(&r);
}

Test(client, ipv6_literal)
{
    tsrv_t *v6 = tsrv_start(1);
    client_open(NULL);
    ekv_http_request_t q = {.method = "GET", .host = "::1", .port = v6->port, .target = "/echo"};
    result_t r = {0};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    cr_assert(eq(int, r.err, 0));
    char want[128];
    snprintf(want, sizeof(want), "GET /echo host=[::1]:%d x= len=0:", v6->port);
    assert_body(r.resp, want);
    result_clear(&r);
    ekv_http_client_close(cli, on_closed, &closed_done);
    cr_assert(run_until(&closed_done, 1, 5000));
    cli = NULL;
    tsrv_stop(v6);
}

Test(client, connect_timeout)
{
    /* a listener whose accept queue is full (backlog 0, nobody accepts): SYNs are dropped */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(eq(int, bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0));
    cr_assert(eq(int, listen(lfd, 0), 0));
    socklen_t len = sizeof(a);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM, 0);
        fcntl(fill[i], F_SETFL, O_NONBLOCK);
        connect(fill[i], (struct sockaddr *)&a, sizeof(a));
    }
    usleep(50000);
    ekv_http_client_opts_t o = {.connect_timeout_ms = 200};
    client_open(&o);
    ekv_http_request_t q = {
        .method = "GET", .host = "127.0.0.1", .port = ntohs(a.sin_port), .target = "/"};
    result_t r = {0};
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    cr_assert(eq(int, r.err, EKV_EHTTP_CONNECT_TIMEOUT));
    cr_assert(ge(u64, r.at_ms - t0, 190));
    cr_assert(lt(u64, r.at_ms - t0, 1000));
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

Test(client, total_timeout)
{
    client_open(NULL);
    ekv_http_request_t q = {.method = "GET",
                            .host = "127.0.0.1",
                            .port = srv->port,
                            .target = "/hang",
                            .timeout_ms = 200};
    result_t r = {0};
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    run_for(20);
    cr_assert(eq(int, r.calls, 1));
    cr_assert(eq(int, r.err, EKV_ETIMEOUT));
    cr_assert(ge(u64, r.at_ms - t0, 190));
    cr_assert(lt(u64, r.at_ms - t0, 1000));
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.conns, 0)); /* the connection of a timed-out call is closed */
    /* the client default applies when the call gives none */
    ekv_http_client_close(cli, NULL, NULL);
    ekv_http_client_opts_t o = {.timeout_ms = 150};
    client_open(&o);
    q.timeout_ms = 0;
    memset(&r, 0, sizeof(r));
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r, NULL), 0));
    cr_assert(run_until(&r.calls, 1, 5000));
    cr_assert(eq(int, r.err, EKV_ETIMEOUT));
}

Test(client, server_closes_idle_connection)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/close-after", &r); /* the server closes this connection 20 ms later */
    cr_assert(eq(int, r.err, 0));
    result_clear(&r);
    run_for(150);
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.idle, 0)); /* seen while idle: EOF */
    cr_assert(eq(sz, st.conns, 0));
    fetch("GET", "/hello", &r);
    cr_assert(eq(int, r.err, 0));
    assert_body(r.resp, "hello");
    result_clear(&r);
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.retries, 0));
    cr_assert(eq(int, atomic_load(&srv->accepted), 2));
}

Test(client, retry_on_fresh_connection_when_reused_one_dies)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/drop-if-reused", &r);
    assert_body(r.resp, "first");
    result_clear(&r);
    /* the pooled connection is closed by the server on this request, before any byte of a
     * response: GET is retried once on a new connection, where it is the first request */
    fetch("GET", "/drop-if-reused", &r);
    cr_assert(eq(int, r.err, 0));
    assert_body(r.resp, "first");
    result_clear(&r);
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.retries, 1));
    cr_assert(eq(u64, st.reused, 1));
    cr_assert(eq(int, atomic_load(&srv->accepted), 2));
    cr_assert(eq(int, atomic_load(&srv->requests), 3));
}

Test(client, post_is_not_retried)
{
    client_open(NULL);
    result_t r;
    fetch("POST", "/drop-if-reused", &r);
    assert_body(r.resp, "first");
    result_clear(&r);
    fetch("POST", "/drop-if-reused", &r);
    cr_assert(eq(int, r.err, EKV_EHTTP_CLOSED));
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.retries, 0));
    cr_assert(eq(int, atomic_load(&srv->accepted), 1));
    cr_assert(eq(int, atomic_load(&srv->requests), 2));
}

Test(client, parallel_calls_to_one_upstream)
{
    ekv_http_client_opts_t o = {.max_conns = 4};
    client_open(&o);
    result_t r[10];
    memset(r, 0, sizeof(r));
    int done = 0;
    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    for (int i = 0; i < 10; i++)
        cr_assert(eq(int, send_req("GET", "/slow?n=100", NULL, 0, &r[i]), 0));
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.conns, 4));
    cr_assert(eq(sz, st.queued, 6));
    cr_assert(eq(sz, st.pending, 10));
    while (done < 10 && uv_now(&loop) - t0 < 5000) {
        run_for(10);
        done = 0;
        for (int i = 0; i < 10; i++)
            done += r[i].calls;
    }
    cr_assert(eq(int, done, 10));
    for (int i = 0; i < 10; i++) {
        cr_assert(eq(int, r[i].calls, 1));
        cr_assert(eq(int, r[i].err, 0));
        assert_body(r[i].resp, "slow");
        result_clear(&r[i]);
    }
    cr_assert(eq(int, atomic_load(&srv->accepted), 4)); /* queued calls reused them */
    /* three waves of 100 ms on 4 connections */
    uv_update_time(&loop);
    cr_assert(ge(u64, uv_now(&loop) - t0, 290));
    cr_assert(lt(u64, uv_now(&loop) - t0, 2000));
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.reused, 6));
}

Test(client, queue_is_bounded)
{
    ekv_http_client_opts_t o = {.max_conns = 1, .max_queue = 2};
    client_open(&o);
    result_t r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 3; i++)
        cr_assert(eq(int, send_req("GET", "/slow?n=30", NULL, 0, &r[i]), 0));
    cr_assert(eq(int, send_req("GET", "/slow?n=30", NULL, 0, &r[3]), EKV_EBUSY));
    cr_assert(run_until(&r[2].calls, 1, 5000));
    run_for(20);
    for (int i = 0; i < 3; i++) {
        cr_assert(eq(int, r[i].calls, 1));
        cr_assert(eq(int, r[i].err, 0));
        result_clear(&r[i]);
    }
    cr_assert(eq(int, r[3].calls, 0)); /* refused: its callback never runs */
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.busy, 1));
    cr_assert(eq(u64, st.calls, 3));
    cr_assert(eq(int, atomic_load(&srv->accepted), 1));
    /* a queued call's timeout counts from send */
    for (int i = 0; i < 2; i++)
        cr_assert(eq(int, send_req("GET", "/slow?n=300", NULL, 0, &r[i]), 0));
    ekv_http_request_t q = {.method = "GET",
                            .host = "127.0.0.1",
                            .port = srv->port,
                            .target = "/hello",
                            .timeout_ms = 100};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r[2], NULL), 0));
    cr_assert(run_until(&r[2].calls, 1, 5000));
    cr_assert(eq(int, r[2].err, EKV_ETIMEOUT));
    cr_assert(run_until(&r[1].calls, 1, 5000));
    cr_assert(eq(int, r[0].err, 0));
    cr_assert(eq(int, r[1].err, 0));
    result_clear(&r[0]);
    result_clear(&r[1]);
}

Test(client, cancel)
{
    ekv_http_client_opts_t o = {.max_conns = 1};
    client_open(&o);
    result_t r[3];
    memset(r, 0, sizeof(r));
    ekv_http_request_t q = {
        .method = "GET", .host = "127.0.0.1", .port = srv->port, .target = "/hang"};
    ekv_http_call_t *c0, *c1;
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r[0], &c0), 0));
    q.target = "/hello";
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r[1], &c1), 0));
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &r[2], NULL), 0));
    run_for(50);
    cr_assert(eq(int, r[0].calls + r[1].calls + r[2].calls, 0)); /* all behind /hang */
    ekv_http_call_cancel(c1);                                    /* a queued call */
    cr_assert(eq(int, r[1].calls, 1));
    cr_assert(eq(int, r[1].err, EKV_ECANCELLED));
    ekv_http_call_cancel(c0); /* the call on the connection: it is closed, the queue moves */
    cr_assert(eq(int, r[0].calls, 1));
    cr_assert(eq(int, r[0].err, EKV_ECANCELLED));
    cr_assert(run_until(&r[2].calls, 1, 5000));
    cr_assert(eq(int, r[2].err, 0));
    assert_body(r[2].resp, "hello");
    result_clear(&r[2]);
    run_for(20);
    cr_assert(eq(int, r[0].calls, 1));
    cr_assert(eq(int, r[1].calls, 1));
    cr_assert(eq(int, atomic_load(&srv->accepted), 2));
}

static int close_done_flag;

Test(client, close_with_pending_calls_calls_each_cb_once)
{
    ekv_http_client_opts_t o = {.max_conns = 2, .max_queue = 8};
    client_open(&o);
    result_t r[5];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 5; i++)
        cr_assert(eq(int, send_req("GET", "/hang", NULL, 0, &r[i]), 0));
    ekv_http_request_t q = {
        .method = "GET", .host = "no-such-host.invalid", .port = 80, .target = "/"};
    result_t resolving = {0};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &resolving, NULL), 0));
    run_for(100);
    cr_assert(eq(int, atomic_load(&srv->requests), 2));
    ekv_http_client_close(cli, on_closed, &close_done_flag);
    for (int i = 0; i < 5; i++) {
        cr_assert(eq(int, r[i].calls, 1), "call %d", i);
        cr_assert(eq(int, r[i].err, EKV_ESHUTDOWN));
    }
    cr_assert(eq(int, resolving.calls, 1));
    cr_assert(eq(int, close_done_flag, 0));
    /* sends after close are refused */
    result_t late = {0};
    cr_assert(eq(int, send_req("GET", "/hello", NULL, 0, &late), EKV_ESHUTDOWN));
    cr_assert(run_until(&close_done_flag, 1, 5000));
    for (int i = 0; i < 5; i++)
        cr_assert(eq(int, r[i].calls, 1));
    cr_assert(eq(int, late.calls, 0));
    cli = NULL;
}

/* A callback that closes the client (what the blocking helper does) and one that sends. */
static void close_from_cb(void *ctx, int err, const ekv_http_response_t *resp)
{
    result_cb(ctx, err, resp);
    ekv_http_client_close(cli, on_closed, &close_done_flag);
}

Test(client, close_inside_a_callback)
{
    client_open(NULL);
    result_t r = {0}, other = {0};
    ekv_http_request_t q = {
        .method = "GET", .host = "127.0.0.1", .port = srv->port, .target = "/hello"};
    cr_assert(eq(int, ekv_http_client_send(cli, &q, close_from_cb, &r, NULL), 0));
    q.target = "/hang";
    cr_assert(eq(int, ekv_http_client_send(cli, &q, result_cb, &other, NULL), 0));
    cr_assert(run_until(&close_done_flag, 1, 5000));
    cr_assert(eq(int, r.calls, 1));
    cr_assert(eq(int, r.err, 0));
    assert_body(r.resp, "hello");
    cr_assert(eq(int, other.calls, 1));
    cr_assert(eq(int, other.err, EKV_ESHUTDOWN));
    result_clear(&r);
    cli = NULL;
}

Test(client, keep_alive_hint_shortens_idle)
{
    client_open(NULL);
    result_t r;
    fetch("GET", "/ka-hint", &r); /* Keep-Alive: timeout=1 -> idle for 500 ms */
    result_clear(&r);
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.idle, 1));
    run_for(300);
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.idle, 1));
    run_for(400);
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.idle, 0));
    cr_assert(eq(sz, st.conns, 0));
}

Test(client, max_idle_bounds_the_pool)
{
    ekv_http_client_opts_t o = {.max_conns = 4, .max_idle = 2};
    client_open(&o);
    result_t r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++)
        cr_assert(eq(int, send_req("GET", "/slow?n=20", NULL, 0, &r[i]), 0));
    for (int i = 0; i < 4; i++) {
        cr_assert(run_until(&r[i].calls, 1, 5000));
        result_clear(&r[i]);
    }
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(sz, st.idle, 2));
    cr_assert(eq(sz, st.conns, 2));
}

Test(client, malformed_requests_are_refused)
{
    client_open(NULL);
    result_t r = {0};
    ekv_http_header_t crlf[] = {{"X-A", "v\r\nInjected: 1"}};
    ekv_http_header_t cl[] = {{"content-length", "3"}};
    ekv_http_header_t te[] = {{"Transfer-Encoding", "chunked"}};
    ekv_http_header_t conn[] = {{"Connection", "close"}};
    ekv_http_header_t badname[] = {{"X A", "v"}};
    struct {
        ekv_http_request_t q;
    } cases[] = {
        {{.method = "GE T", .host = "127.0.0.1", .port = 1, .target = "/"}},
        {{.method = "", .host = "127.0.0.1", .port = 1, .target = "/"}},
        {{.method = "GET", .host = "127.0.0.1", .port = 1, .target = "nope"}},
        {{.method = "GET", .host = "127.0.0.1", .port = 1, .target = "/a b"}},
        {{.method = "GET", .host = "127.0.0.1", .port = 1, .target = "/\r\n"}},
        {{.method = "GET", .host = "127.0.0.1", .port = 0, .target = "/"}},
        {{.method = "GET", .host = "127.0.0.1", .port = 65536, .target = "/"}},
        {{.method = "GET", .host = "bad host", .port = 80, .target = "/"}},
        {{.method = "GET", .host = "", .port = 80, .target = "/"}},
        {{.method = "GET", .host = "h", .port = 80, .target = "/", .headers = crlf, .nheaders = 1}},
        {{.method = "GET", .host = "h", .port = 80, .target = "/", .headers = cl, .nheaders = 1}},
        {{.method = "GET", .host = "h", .port = 80, .target = "/", .headers = te, .nheaders = 1}},
        {{.method = "GET", .host = "h", .port = 80, .target = "/", .headers = conn, .nheaders = 1}},
        {{.method = "GET",
          .host = "h",
          .port = 80,
          .target = "/",
          .headers = badname,
          .nheaders = 1}},
        {{.method = "PUT", .host = "h", .port = 80, .target = "/", .body = NULL, .body_len = 3}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert(
            eq(int, ekv_http_client_send(cli, &cases[i].q, result_cb, &r, NULL), EKV_EBAD_REQUEST),
            "case %zu", i);
    run_for(20);
    cr_assert(eq(int, r.calls, 0));
    ekv_http_client_stats_t st;
    ekv_http_client_stats(cli, &st);
    cr_assert(eq(u64, st.calls, 0));
    cr_assert(eq(sz, st.conns, 0));
}

/* ================================================================ blocking fetch */

TestSuite(fetch_sync, .init = setup, .fini = teardown, .timeout = 60);

Test(fetch_sync, get_post_and_errors)
{
    char url[128];
    ekv_http_response_t *resp = NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hello", srv->port);
    cr_assert(eq(int, ekv_http_fetch_sync("GET", url, NULL, 0, NULL, 0, 5000, &resp), 0));
    cr_assert(eq(int, resp->status, 200));
    assert_body(resp, "hello");
    cr_assert(eq(str, (char *)ekv_http_response_header(resp, "X-Test"), "yes"));
    ekv_http_response_free(resp);

    ekv_http_header_t h[] = {{"X-Test", "t1"}};
    snprintf(url, sizeof(url), "http://localhost:%d/echo?a=b#frag", srv->port);
    cr_assert(eq(int, ekv_http_fetch_sync("POST", url, h, 1, "body!", 5, 5000, &resp), 0));
    char want[128];
    snprintf(want, sizeof(want), "POST /echo?a=b host=localhost:%d x=t1 len=5:body!", srv->port);
    assert_body(resp, want);
    ekv_http_response_free(resp);

    resp = (ekv_http_response_t *)1;
    cr_assert(eq(int,
                 ekv_http_fetch_sync("GET", "https://127.0.0.1/", NULL, 0, NULL, 0, 1000, &resp),
                 EKV_EHTTP_HTTPS_UNSUPPORTED));
    cr_assert_null(resp);
    cr_assert(eq(int, ekv_http_fetch_sync("GET", "127.0.0.1:80/", NULL, 0, NULL, 0, 1000, &resp),
                 EKV_EHTTP_BAD_URL));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", free_port());
    cr_assert(eq(int, ekv_http_fetch_sync("GET", url, NULL, 0, NULL, 0, 1000, &resp),
                 EKV_EHTTP_CONNECT_REFUSED));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hang", srv->port);
    uint64_t t0 = uv_hrtime();
    cr_assert(eq(int, ekv_http_fetch_sync("GET", url, NULL, 0, NULL, 0, 300, &resp), EKV_ETIMEOUT));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    cr_assert(ge(u64, ms, 290));
    cr_assert(lt(u64, ms, 2000));
    cr_assert_null(resp);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/garbage", srv->port);
    cr_assert(eq(int, ekv_http_fetch_sync("GET", url, NULL, 0, NULL, 0, 1000, &resp),
                 EKV_EHTTP_BAD_RESPONSE));
    cr_assert(
        eq(int, ekv_http_fetch_sync("GE T", url, NULL, 0, NULL, 0, 1000, &resp), EKV_EBAD_REQUEST));
    /* one connection per fetch, closed by us (Connection: close) */
    cr_assert(eq(int, atomic_load(&srv->accepted), 4));
}

Test(fetch_sync, sigpipe_stays_blocked_only_inside)
{
    /* with SIGPIPE at its default action, a fetch to a peer that closes early must not kill
     * the process, and the caller's signal mask is restored */
    signal(SIGPIPE, SIG_DFL);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/close-early", srv->port);
    static char big[16 << 20];
    memset(big, 'x', sizeof(big));
    ekv_http_response_t *resp = NULL;
    int rc = ekv_http_fetch_sync("PUT", url, NULL, 0, big, sizeof(big), 3000, &resp);
    cr_assert(eq(int, rc, EKV_EHTTP_CLOSED));
    cr_assert_null(resp);
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    cr_assert(eq(int, sigismember(&cur, SIGPIPE), 0));
    sigpending(&cur);
    cr_assert(eq(int, sigismember(&cur, SIGPIPE), 0));
}
