/*
 * conn.c - HTTP/1.1 connections: libuv sockets, llhttp parsing, limits, timers.
 * The state machine and the rules are described in http.h.
 */
#include "server/http/server.h"
#include "server/http/bufpool.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"

#include <inttypes.h>
#include <linux/sockios.h>
#include <llhttp.h>
#include <malloc.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define READ_BUF_SIZE (64 * 1024)
/* Read buffers kept for reuse: enough for every connection of a busy keep-alive load that is
 * mid-read at once; beyond it a returned buffer is freed (4 MiB at most stays cached). */
#define READ_BUFS_KEPT 64
/* After this many connections closed since the last trim, with the open ones down to half
 * their peak, give free heap back to the system TRIM_DELAY_MS later (a storm of clients
 * leaves no RSS behind). */
#define TRIM_AFTER_CLOSES 1024
#define TRIM_DELAY_MS     1000
/* listen(2) backlog: the kernel caps it at net.core.somaxconn, which is read at start */
#define LISTEN_BACKLOG_MAX 65535
/* Coalesced replies (see "Coalesced writes" below): at most this many replies wait for the
 * flush at once, and only replies of at most this many bytes wait at all. */
#define COALESCE_MAX       8
#define COALESCE_MAX_BYTES (16 * 1024)

typedef enum {
    CS_IDLE,       /* between requests, reading, idle timer armed */
    CS_HEADERS,    /* a request started, reading its headers (header timer armed) */
    CS_BODY,       /* reading the body */
    CS_PROCESSING, /* request handed to the application; socket not read */
    CS_WRITING,    /* reply held for the flush or queued, waiting for the write to finish */
    CS_LINGER,     /* error reply sent, FIN sent; discarding the client's input for a while */
    CS_CLOSING
} conn_state_t;

struct ekv_http_server_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    ekv_http_opts_t opts;
    ekv_http_handler_t h;
    llhttp_settings_t settings;
    int port;
    int stopping;
    ekv_conn_t *conns;
    size_t nconns;
    ekv_http_stats_t stats;
    size_t body_memory;  /* bytes reserved for request bodies, all connections */
    size_t reply_memory; /* bytes of queued replies, all connections (see server.h) */
    time_t shed_logged;  /* last second a shed reply was logged (one line per second) */
    char shed_body[256]; /* the 503 envelope of a shed reply */
    size_t shed_body_len;
    void (*stop_cb)(void *);
    void *stop_arg;
    int listener_open;
    int backlog;         /* listen(2) backlog asked for */
    ekv_bufpool_t rbufs; /* read buffers, lent while a connection has unparsed input */
    uv_timer_t trim_timer;
    int trim_timer_open;
    size_t closed_since_trim;
    size_t peak_since_trim; /* most connections open at once since the last trim */
    uint64_t last_trim_ms;  /* loop time of the last trim, 0 = never */
    /* connections whose reply is held for the end of the loop's I/O phase (coalesced
     * writes), oldest first */
    ekv_conn_t *held[COALESCE_MAX];
    size_t nheld;
    uv_check_t flush_check;     /* flushes the held replies after the I/O phase */
    uv_prepare_t flush_prepare; /* and, as a backstop, before the loop polls again */
    int flush_handles_open;     /* how many of the two are open */
    char date[40];              /* cached "Date: ...\r\n" */
    /* "Keep-Alive: timeout=N": clients (node's undici) then drop idle sockets before we do */
    char keep_alive_hdr[48];
    size_t keep_alive_hdr_len;
    time_t date_sec;
};

struct ekv_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer;
    ekv_http_server_t *srv;
    ekv_conn_t *prev, *next;
    llhttp_t parser;
    conn_state_t state;
    int handles_open;
    int close_after;     /* close once the current reply is written */
    int paused;          /* parser paused at a message boundary or early reply */
    int err;             /* ekv_err_t found by a parser callback (limits) */
    int reading;         /* uv_read_start is in effect */
    int in_parse;        /* inside conn_parse: a reply written at once only sets sync_done */
    int sync_done;       /* the current reply was written completely by uv_try_write */
    int linger;          /* the client may still be sending (early/error reply): close gently */
    uint64_t deadline;   /* loop time (ms) when the current timeout expires, 0 = none */
    uint64_t timer_due;  /* when the libuv timer is set to fire */
    size_t write_mark;   /* bytes still queued at the last send-deadline check */
    size_t body_charged; /* this request's share of srv->body_memory */
    size_t linger_bytes;
    uv_shutdown_t shutdown;
    /* request accumulation */
    ekv_buf_t url;
    size_t header_bytes;
    int header_count;
    char field[24];
    size_t field_len;
    int cur_hdr;
    int in_trailers; /* headers are complete: later fields are chunked trailers, ignored */
    int field_ws;    /* the current field name holds whitespace ("Host : x") */
    int cur_te;      /* the current field is Transfer-Encoding */
    char te[64];     /* every Transfer-Encoding value, joined by ',' (checked at headers end) */
    size_t te_len;   /* may exceed sizeof(te): then it cannot be plain "chunked" */
    int hscan;       /* obs-fold scanner state (HS_*), runs ahead of llhttp over header bytes */
    ekv_buf_t hdrbuf[EKV_HDR_COUNT];
    /* every other end-to-end header as "name: value\r\n" lines, kept only for requests whose
     * URL contains opts.keep_headers_marker (Durable Object calls forward them) */
    ekv_buf_t xhdr;
    int keep_other; /* this request keeps xhdr */
    int cur_x;      /* the current field is being kept in xhdr */
    size_t xline;   /* start of the current field's line in xhdr */
    ekv_req_t req;
    /* the read buffer, from srv->rbufs while a read is parsed or input is pending (NULL
     * when idle); unparsed input kept in it while paused */
    char *rbuf;
    size_t pend_off, pend_len;
    struct write_req_s *held; /* its reply, held for the flush (coalesced writes), or NULL */
};

typedef struct write_req_s {
    uv_write_t w;
    ekv_conn_t *c;
    uv_buf_t bufs[2]; /* head (with a copied body), then a referenced body */
    unsigned nbufs;
    size_t total;
    char *head;
    char *owned_body;
    void (*release)(void *);
    void *release_arg;
    size_t charged; /* this reply's own bytes charged to srv->reply_memory */
    /* the shared body bufs[1] references, if any: while queued, charged once (bufs[1].len)
     * for all the replies queued with it */
    ekv_http_shared_t *shared;
    int queued; /* counted in stats.replies_queued */
} write_req_t;

static const char *hdr_names[EKV_HDR_COUNT] = {"authorization", "x-auth-key", "x-auth-email",
                                               "content-type", "expect"};

static void conn_close(ekv_conn_t *c);
static void send_http_error(ekv_conn_t *c, int err);
static void conn_read_stop(ekv_conn_t *c);
static void reply_write(ekv_conn_t *c, struct write_req_s *wr);
static void reply_hold(ekv_conn_t *c, struct write_req_s *wr);
static void held_flush_conn(ekv_conn_t *c);
static void held_flush(ekv_http_server_t *s);

/* ---------------------------------------------------------------- helpers */

/* RFC 9110 reason phrases: every status edgekv sends (the error table in common/errors.h,
 * relayed upstream answers, 100/413/501 from the transport) and the other common ones. */
const char *ekv_http_status_text(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    default:
        return "Unknown";
    }
}

static const char *date_header(ekv_http_server_t *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        s->date_sec = now;
    }
    return s->date;
}

static void req_reset(ekv_conn_t *c)
{
    ekv_req_t *r = &c->req;
    if (r->cleanup)
        r->cleanup(r);
    ekv_buf_deinit(&r->body);
    c->srv->body_memory -= c->body_charged;
    c->body_charged = 0;
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->content_length = -1;
    ekv_buf_reset(&c->url);
    for (int i = 0; i < EKV_HDR_COUNT; i++)
        ekv_buf_reset(&c->hdrbuf[i]);
    c->header_bytes = 0;
    c->header_count = 0;
    c->field_len = 0;
    c->cur_hdr = -1;
    c->in_trailers = 0;
    c->field_ws = 0;
    c->cur_te = 0;
    c->te_len = 0;
    c->err = 0;
    ekv_buf_reset(&c->xhdr);
    c->keep_other = 0;
    c->cur_x = 0;
}

static void timer_arm(ekv_conn_t *c, int ms);

/* Bytes of the current reply not yet taken by the client: still in our queue, plus those the
 * kernel holds unsent or unacknowledged (SIOCOUTQ), so kernel buffering (up to
 * net.ipv4.tcp_wmem's max per socket) does not hide a client that stopped reading. */
static size_t reply_pending(ekv_conn_t *c)
{
    size_t n = c->tcp.write_queue_size;
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 && ioctl(fd, SIOCOUTQ, &outq) == 0 && outq > 0)
        n += (size_t)outq;
    return n;
}

/* The send deadline's window, and the bytes a queued reply must drain in each (>= 1). */
static int send_window_ms(const ekv_http_server_t *s)
{
    return s->opts.send_timeout_ms > 0 ? s->opts.send_timeout_ms : s->opts.idle_timeout_ms;
}

static size_t send_window_min_bytes(const ekv_http_server_t *s)
{
    uint64_t n = (uint64_t)s->opts.send_min_rate * (uint64_t)send_window_ms(s) / 1000;
    return n ? (size_t)n : 1;
}

/*
 * One libuv timer per connection, driven by a deadline (nginx/h2o style): arming only moves
 * c->deadline; the timer is restarted only when it fired before the deadline or must fire
 * sooner than it is set to. So a request costs no timer-heap operations in the common case.
 */
static void timer_cb(uv_timer_t *t)
{
    ekv_conn_t *c = t->data;
    if (!c->deadline)
        return; /* disarmed meanwhile */
    uint64_t now = uv_now(c->srv->loop);
    if (now < c->deadline) {
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, timer_cb, c->deadline - now, 0);
        return;
    }
    c->deadline = 0;
    if (c->state == CS_WRITING) {
        /* the send deadline: this window must have drained the minimum rate's worth */
        ekv_http_server_t *s = c->srv;
        size_t queued = reply_pending(c);
        size_t drained = c->write_mark > queued ? c->write_mark - queued : 0;
        size_t need = send_window_min_bytes(s);
        if (need > c->write_mark)
            need = c->write_mark; /* less than that was left: all of it */
        if ((drained >= need && drained > 0) || queued == 0) { /* (0: its callback is due) */
            c->write_mark = queued;
            timer_arm(c, send_window_ms(s));
            return;
        }
        s->stats.timeouts++;
        s->stats.send_timeouts++;
        ekv_log_info("send deadline: client reads too slowly",
                     "queued_bytes=%zu drained_bytes=%zu window_ms=%d min_rate=%zu", queued,
                     drained, send_window_ms(s), s->opts.send_min_rate);
        conn_close(c);
        return;
    }
    c->srv->stats.timeouts++;
    if (c->state == CS_HEADERS || c->state == CS_BODY) {
        ekv_log_debug("request read timeout", "state=%d", c->state);
        conn_read_stop(c);
        c->state = CS_PROCESSING;
        c->close_after = 1;
        c->linger = 1;
        send_http_error(c, EKV_EHTTP_TIMEOUT);
    } else if (c->state == CS_IDLE || c->state == CS_LINGER) {
        conn_close(c);
    }
}

/* Time out `ms` from now (0 = no timeout). */
static void timer_arm(ekv_conn_t *c, int ms)
{
    if (ms <= 0) {
        c->deadline = 0;
        return;
    }
    uint64_t now = uv_now(c->srv->loop);
    c->deadline = now + (uint64_t)ms;
    if (!uv_is_active((uv_handle_t *)&c->timer) || c->deadline < c->timer_due) {
        c->timer_due = c->deadline;
        uv_timer_start(&c->timer, timer_cb, (uint64_t)ms, 0);
    }
}

/* Reserve n more bytes of the server-wide request-body budget for this request. */
static int body_charge(ekv_conn_t *c, size_t n)
{
    ekv_http_server_t *s = c->srv;
    if (s->opts.max_body_memory && s->body_memory + n > s->opts.max_body_memory) {
        ekv_log_warn("request body memory budget exhausted", "buffered=%zu wanted=%zu max=%zu",
                     s->body_memory, n, s->opts.max_body_memory);
        return -1;
    }
    s->body_memory += n;
    c->body_charged += n;
    return 0;
}

/* ---------------------------------------------------------------- parser callbacks */

static int on_message_begin(llhttp_t *p)
{
    ekv_conn_t *c = p->data;
    req_reset(c);
    c->state = CS_HEADERS;
    c->req.start_ns = ekv_clock_mono_ns();
    timer_arm(c, c->srv->opts.header_timeout_ms);
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    ekv_conn_t *c = p->data;
    if (c->url.len + len > EKV_HTTP_MAX_URL) {
        c->err = EKV_EHTTP_URL_TOO_LONG;
        return -1;
    }
    return ekv_buf_append(&c->url, at, len) ? -1 : 0;
}

int ekv_http_hop_by_hop(const char *name)
{
    static const char *const names[] = {"connection", "keep-alive",    "proxy-connection",
                                        "te",         "trailer",       "transfer-encoding",
                                        "upgrade",    "content-length"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* Kept in other_headers: not hop-by-hop, and not one the server reads itself. */
static int header_not_forwarded(const char *lname)
{
    return ekv_http_hop_by_hop(lname) || !strcmp(lname, "host") || !strcmp(lname, "expect") ||
           !strcmp(lname, "proxy-authorization");
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    ekv_conn_t *c = p->data;
    c->header_bytes += len;
    if (c->header_bytes > EKV_HTTP_MAX_HEADER_BYTES) {
        c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
        return -1;
    }
    if (c->header_count == 0 && c->field_len == 0 && !c->in_trailers) {
        /* the first field: the URL is complete, decide whether to keep the other headers */
        const char *m = c->srv->opts.keep_headers_marker;
        c->keep_other =
            m && m[0] && c->url.len && memmem(c->url.data, c->url.len, m, strlen(m)) != NULL;
    }
    if (c->keep_other && !c->in_trailers) {
        if (c->field_len == 0)
            c->xline = c->xhdr.len;
        if (ekv_buf_append(&c->xhdr, at, len)) {
            c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
            return -1;
        }
    }
    for (size_t i = 0; i < len; i++) {
        if (at[i] == ' ' || at[i] == '\t')
            c->field_ws = 1; /* llhttp 8 (loose build) lets "Host : x" through with "Host " */
        if (c->field_len < sizeof(c->field) - 1)
            c->field[c->field_len] = (char)((at[i] >= 'A' && at[i] <= 'Z') ? at[i] + 32 : at[i]);
        c->field_len++;
    }
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    ekv_conn_t *c = p->data;
    if (++c->header_count > EKV_HTTP_MAX_HEADERS) {
        c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
        return -1;
    }
    c->cur_hdr = -1;
    c->cur_te = 0;
    if (c->field_ws) { /* RFC 9112 §5.1: whitespace before the colon MUST be answered 400 */
        c->err = EKV_EHTTP_HEADER_NAME_WS;
        return -1;
    }
    /* Trailers must not touch the headers the request already points at (a realloc here
     * would leave req->hdr[] dangling); they still count against the header limits. */
    if (!c->in_trailers && c->field_len < sizeof(c->field)) {
        c->field[c->field_len] = '\0';
        for (int i = 0; i < EKV_HDR_COUNT; i++) {
            if (strcmp(c->field, hdr_names[i]) == 0) {
                /* Credentials and the body's type must be unambiguous: a second copy (which
                 * one would a proxy in front have used?) is refused, not "last wins". */
                if (c->req.hdr[i].present && i != EKV_HDR_EXPECT) {
                    c->err = EKV_EHTTP_DUP_HEADER;
                    return -1;
                }
                c->cur_hdr = i;
                ekv_buf_reset(&c->hdrbuf[i]);
                c->req.hdr[i].present = 1;
                break;
            }
        }
        if (c->cur_hdr < 0 && strcmp(c->field, "transfer-encoding") == 0) {
            c->cur_te = 1;
            if (c->te_len > 0) { /* two fields are one list (RFC 9110 §5.3) */
                if (c->te_len < sizeof(c->te))
                    c->te[c->te_len] = ',';
                c->te_len++;
            }
        }
    }
    if (c->keep_other && !c->in_trailers) {
        /* names longer than field[] are neither ours nor hop-by-hop: kept */
        int ours = c->field_len < sizeof(c->field) &&
                   (c->cur_hdr >= 0 || c->cur_te || header_not_forwarded(c->field));
        if (!ours) {
            c->cur_x = 1;
            if (ekv_buf_append(&c->xhdr, ": ", 2)) {
                c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
                return -1;
            }
        } else {
            c->xhdr.len = c->xline; /* drop the name */
        }
    }
    c->field_len = 0;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    ekv_conn_t *c = p->data;
    c->header_bytes += len;
    if (c->header_bytes > EKV_HTTP_MAX_HEADER_BYTES) {
        c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
        return -1;
    }
    if (c->cur_hdr >= 0 && ekv_buf_append(&c->hdrbuf[c->cur_hdr], at, len)) {
        c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
        return -1;
    }
    if (c->cur_x && ekv_buf_append(&c->xhdr, at, len)) {
        c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
        return -1;
    }
    if (c->cur_te) {
        for (size_t i = 0; i < len; i++, c->te_len++)
            if (c->te_len < sizeof(c->te))
                c->te[c->te_len] = at[i];
    }
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    ekv_conn_t *c = p->data;
    c->cur_hdr = -1;
    c->cur_te = 0;
    if (c->cur_x) {
        c->cur_x = 0;
        if (ekv_buf_append(&c->xhdr, "\r\n", 2)) {
            c->err = EKV_EHTTP_HEADERS_TOO_LARGE;
            return -1;
        }
    }
    return 0;
}

/*
 * Transfer-Encoding as one list (all its fields joined). llhttp has already refused a list
 * whose last coding is not chunked (400: the body length is unknown). What it lets through
 * and we do not implement, "gzip, chunked", is 501 (RFC 9112 §6.1), never stored as is; a
 * repeated "chunked" is 400 (RFC 9112 §7: chunked is applied only once). 0 = fine or absent.
 */
static int check_transfer_encoding(const ekv_conn_t *c)
{
    if (c->te_len == 0)
        return 0;
    if (c->te_len > sizeof(c->te))
        return EKV_EHTTP_TE_UNSUPPORTED;
    int chunked = 0, other = 0;
    size_t i = 0;
    while (i < c->te_len) {
        size_t b = i, e;
        while (i < c->te_len && c->te[i] != ',')
            i++;
        e = i++;
        while (b < e && (c->te[b] == ' ' || c->te[b] == '\t'))
            b++;
        while (e > b && (c->te[e - 1] == ' ' || c->te[e - 1] == '\t'))
            e--;
        if (e == b)
            continue; /* empty list element */
        if (e - b == 7 && strncasecmp(c->te + b, "chunked", 7) == 0)
            chunked++;
        else
            other++;
    }
    if (other)
        return EKV_EHTTP_TE_UNSUPPORTED;
    return chunked > 1 ? EKV_EHTTP_PARSE : 0;
}

static void continue_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

/* "100 Continue" before reading the body. Written ahead of the final reply on the same
 * stream, so ordering holds; a write that does not complete at once is queued. */
static void send_continue(ekv_conn_t *c)
{
    static char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(msg, sizeof(msg) - 1);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)b.len)
        return;
    if (n > 0) {
        b.base += n;
        b.len -= (unsigned)n;
    }
    uv_write_t *w = malloc(sizeof(*w));
    if (w && uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, continue_written) != 0)
        free(w);
}

/* Answer err before reading the body, then close gently; stops the parser. */
static int refuse_before_body(ekv_conn_t *c, int err)
{
    c->state = CS_PROCESSING;
    c->close_after = 1;
    c->linger = 1;
    send_http_error(c, err);
    c->paused = 1;
    return HPE_PAUSED;
}

static int on_headers_complete(llhttp_t *p)
{
    ekv_conn_t *c = p->data;
    ekv_req_t *r = &c->req;
    ekv_http_server_t *s = c->srv;

    if (ekv_buf_reserve(&c->url, 1))
        return -1;
    c->url.data[c->url.len] = '\0';
    char *q = memchr(c->url.data, '?', c->url.len);
    r->path = c->url.data;
    if (q) {
        *q = '\0';
        r->path_len = (size_t)(q - c->url.data);
        r->query = q + 1;
        r->query_len = c->url.len - r->path_len - 1;
    } else {
        r->path_len = c->url.len;
        r->query = c->url.data + c->url.len; /* "" */
        r->query_len = 0;
    }
    for (int i = 0; i < EKV_HDR_COUNT; i++) {
        if (r->hdr[i].present) {
            if (ekv_buf_reserve(&c->hdrbuf[i], 1))
                return -1;
            c->hdrbuf[i].data[c->hdrbuf[i].len] = '\0';
            r->hdr[i].v = c->hdrbuf[i].data;
            r->hdr[i].len = c->hdrbuf[i].len;
        }
    }
    if (c->keep_other) {
        if (ekv_buf_reserve(&c->xhdr, 1))
            return -1;
        c->xhdr.data[c->xhdr.len] = '\0';
        r->other_headers = c->xhdr.data;
        r->other_headers_len = c->xhdr.len;
    }
    c->in_trailers = 1;
    /* No protocol upgrades (h2c, websocket) and no CONNECT tunnels: answer the request as a
     * plain one and keep parsing the connection as HTTP/1.1. */
    p->upgrade = 0;
    r->method = p->method;
    r->method_str = llhttp_method_name((llhttp_method_t)p->method);
    int te_err = check_transfer_encoding(c);
    if (te_err)
        return refuse_before_body(c, te_err);
    if (p->flags & F_CONTENT_LENGTH)
        r->content_length = (int64_t)p->content_length;
    r->body_limit = 1024 * 1024;
    c->state = CS_BODY;

    r->has_body = r->content_length > 0 || (p->flags & F_CHUNKED) != 0;
    int keep = c->close_after;
    c->close_after = 1; /* a reply sent from on_headers closes the connection */
    if (s->h.on_headers(s->h.ctx, r) != 0) {
        /* answered already (e.g. an unauthenticated upload): stop parsing */
        c->linger = 1;
        c->paused = 1;
        return HPE_PAUSED;
    }
    c->close_after = keep;
    if (r->content_length >= 0 && (uint64_t)r->content_length > r->body_limit)
        return refuse_before_body(c, EKV_EHTTP_BODY_TOO_LARGE);
    ekv_buf_init(&r->body, r->body_limit);
    if (r->content_length > 0) {
        if (body_charge(c, (size_t)r->content_length))
            return refuse_before_body(c, EKV_EBUSY);
        if (ekv_buf_reserve(&r->body, (size_t)r->content_length))
            return -1;
    }
    /* every check passed: invite the body (curl waits a second for this above 1 MiB) */
    const ekv_hdr_t *ex = &r->hdr[EKV_HDR_EXPECT];
    if (ex->present && ex->len == 12 && strncasecmp(ex->v, "100-continue", 12) == 0 &&
        r->content_length != 0)
        send_continue(c);
    /* headers done: the body is bounded by the idle timeout between reads */
    timer_arm(c, s->opts.idle_timeout_ms);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    ekv_conn_t *c = p->data;
    size_t need = c->req.body.len + len;
    if (need > c->body_charged && body_charge(c, need - c->body_charged)) {
        c->err = EKV_EBUSY;
        return -1;
    }
    int rc = ekv_buf_append(&c->req.body, at, len);
    if (rc) {
        c->err = rc == EKV_ENOMEM ? EKV_ENOMEM : EKV_EHTTP_BODY_TOO_LARGE;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    ekv_conn_t *c = p->data;
    c->state = CS_PROCESSING;
    if (!llhttp_should_keep_alive(p))
        c->close_after = 1;
    timer_arm(c, 0);
    c->paused = 1;
    return HPE_PAUSED;
}

/* ---------------------------------------------------------------- parsing driver */

/*
 * Obsolete line folding (a header line starting with SP/HTAB, RFC 9112 §5.2) is joined into
 * the value by llhttp 8 (it has no flag against it), so the header section is scanned here
 * ahead of llhttp: a tiny state machine over the bytes of the current request's header
 * section, carried across reads, that stops at the empty line (the body is never scanned)
 * and starts again with the next request. We answer 400 rather than unfold.
 */
enum { HS_PRE = 0, HS_LINE, HS_LINE_START, HS_END_CR, HS_DONE };

/* Scan data; -1 on obs-fold. */
static int header_scan(ekv_conn_t *c, const char *data, size_t len)
{
    int st = c->hscan;
    for (size_t i = 0; i < len && st != HS_DONE; i++) {
        char ch = data[i];
        switch (st) {
        case HS_PRE: /* empty lines before the request line are allowed (RFC 9112 §2.2) */
            if (ch != '\r' && ch != '\n')
                st = HS_LINE;
            break;
        case HS_LINE:
            if (ch == '\n')
                st = HS_LINE_START;
            break;
        case HS_LINE_START:
            if (ch == ' ' || ch == '\t')
                return -1;
            st = ch == '\r' ? HS_END_CR : ch == '\n' ? HS_DONE : HS_LINE;
            break;
        default: /* HS_END_CR: the LF of the empty line (llhttp refuses anything else) */
            st = HS_DONE;
            break;
        }
    }
    c->hscan = st;
    return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static int read_after_held(ekv_conn_t *c, ssize_t nread, const uv_buf_t *buf);
static void rbuf_release_if_done(ekv_conn_t *c);

static void conn_read_start(ekv_conn_t *c)
{
    if (!c->reading && c->state != CS_CLOSING) {
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
        c->reading = 1;
    }
}

static void conn_read_stop(ekv_conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the linger timer or the peer's EOF closes the connection */
}

/*
 * Lingering close (RFC 9112 §9.6): after an error reply sent while the client may still be
 * sending (early 413, parse error, timeout), closing at once would make the kernel answer
 * the unread input with RST and drop our reply. Instead: send FIN after the reply, read and
 * discard for at most EKV_LINGER_MS / EKV_LINGER_BYTES, then close.
 */
#define EKV_LINGER_MS    2000
#define EKV_LINGER_BYTES (128u * 1024 * 1024) /* above every route's body limit */

static void conn_linger(ekv_conn_t *c)
{
    c->state = CS_LINGER;
    c->linger_bytes = 0;
    c->pend_len = 0;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, shutdown_cb) != 0) {
        conn_close(c);
        return;
    }
    timer_arm(c, EKV_LINGER_MS);
    conn_read_start(c);
}

/* The reply of the current request is fully written: forget the request and resume the
 * parser. Returns -1 when the connection is closing instead. */
static int request_finished(ekv_conn_t *c)
{
    req_reset(c);
    c->hscan = HS_PRE; /* the next bytes begin the next request */
    c->state = CS_IDLE;
    if (c->paused) {
        llhttp_resume(&c->parser);
        c->paused = 0;
    }
    if (c->close_after || c->srv->stopping) {
        if (c->linger || c->pend_len) /* the client sent more: do not answer it with RST */
            conn_linger(c);
        else
            conn_close(c);
        return -1;
    }
    return 0;
}

/*
 * Feed bytes to the parser and serve the complete requests they hold, in order. A request
 * whose reply is written at once is finished here and parsing goes on; one that goes
 * asynchronous stops reading until its reply is written (conn_after_reply).
 */
static void conn_parse(ekv_conn_t *c, const char *data, size_t len)
{
    ekv_http_server_t *s = c->srv;
    c->in_parse = 1;
    for (;;) {
        llhttp_errno_t e;
        if (c->hscan != HS_DONE && header_scan(c, data, len)) {
            c->err = EKV_EHTTP_OBS_FOLD;
            e = HPE_USER;
        } else {
            e = llhttp_execute(&c->parser, data, len);
        }
        if (e == HPE_OK) {
            c->pend_len = 0;
            break; /* all consumed: read more */
        }
        if (e == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = pos ? (size_t)(pos - data) : len;
            c->pend_off = (size_t)(data - c->rbuf) + used;
            c->pend_len = len - used;
            if (c->state == CS_PROCESSING && !c->req.responded)
                s->h.on_request(s->h.ctx, &c->req);
        } else {
            /* a protocol error or a limit from a callback */
            int err = c->err ? c->err : EKV_EHTTP_PARSE;
            s->stats.parse_errors++;
            const char *why = llhttp_get_error_reason(&c->parser);
            ekv_log_debug("bad request", "err=%s llhttp=\"%s\"", ekv_err_name(err),
                          e == HPE_USER || !why ? "-" : why);
            c->pend_len = 0;
            c->state = CS_PROCESSING;
            c->close_after = 1;
            c->linger = 1;
            if (!c->req.responded)
                send_http_error(c, err);
        }
        if (c->held) { /* written at the flush, which resumes this connection */
            c->in_parse = 0;
            return;
        }
        if (!c->sync_done) { /* waiting for a job or for the socket */
            c->in_parse = 0;
            conn_read_stop(c);
            return;
        }
        c->sync_done = 0;
        if (request_finished(c)) {
            c->in_parse = 0;
            return;
        }
        data = c->rbuf + c->pend_off;
        len = c->pend_len;
        c->pend_len = 0;
        if (len == 0)
            break;
    }
    c->in_parse = 0;
    if (c->state == CS_IDLE)
        timer_arm(c, s->opts.idle_timeout_ms);
    conn_read_start(c);
}

/* Reading is started only with no input pending, so a lent buffer is free from its start. */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    ekv_conn_t *c = h->data;
    if (!c->rbuf)
        c->rbuf = ekv_bufpool_get(&c->srv->rbufs);
    buf->base = c->rbuf;
    buf->len = c->rbuf ? READ_BUF_SIZE : 0; /* 0: libuv reports UV_ENOBUFS, we close */
}

/* Every byte of the buffer is parsed (or the connection is gone): give it back. */
static void rbuf_release_if_done(ekv_conn_t *c)
{
    if (c->rbuf && (c->pend_len == 0 || c->state == CS_CLOSING)) {
        ekv_bufpool_put(&c->srv->rbufs, c->rbuf);
        c->rbuf = NULL;
        c->pend_len = 0;
    }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    ekv_conn_t *c = st->data;
    if (c->held && read_after_held(c, nread, buf))
        return;
    if (nread < 0) {
        conn_close(c);
        rbuf_release_if_done(c);
        return;
    }
    if (nread == 0) {
        rbuf_release_if_done(c);
        return;
    }
    c->srv->stats.bytes_in += (uint64_t)nread;
    if (c->state == CS_LINGER) {
        c->linger_bytes += (size_t)nread;
        if (c->linger_bytes > EKV_LINGER_BYTES)
            conn_close(c);
        rbuf_release_if_done(c);
        return;
    }
    if (c->state == CS_BODY)
        timer_arm(c, c->srv->opts.idle_timeout_ms);
    conn_parse(c, buf->base, (size_t)nread);
    rbuf_release_if_done(c);
}

/* A reply finished outside conn_parse (job completion, write callback): go on with the
 * pipelined input, else read again. */
static void conn_after_reply(ekv_conn_t *c)
{
    if (request_finished(c)) {
        rbuf_release_if_done(c);
        return;
    }
    if (c->pend_len) {
        size_t off = c->pend_off, len = c->pend_len;
        c->pend_len = 0;
        conn_parse(c, c->rbuf + off, len);
        rbuf_release_if_done(c);
        return;
    }
    rbuf_release_if_done(c);
    timer_arm(c, c->srv->opts.idle_timeout_ms);
    conn_read_start(c);
}

/* ---------------------------------------------------------------- replies */

static void write_req_free(write_req_t *wr)
{
    ekv_http_server_t *s = wr->c->srv;
    s->reply_memory -= wr->charged;
    if (wr->queued && wr->shared && --wr->shared->queued == 0)
        s->reply_memory -= wr->bufs[1].len; /* before release: the owner may free it */
    if (wr->queued)
        s->stats.replies_queued--;
    free(wr->head);
    free(wr->owned_body);
    if (wr->release)
        wr->release(wr->release_arg);
    free(wr);
}

static void write_cb(uv_write_t *w, int status)
{
    write_req_t *wr = (write_req_t *)w;
    ekv_conn_t *c = wr->c;
    write_req_free(wr);
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_after_reply(c);
}

int ekv_http_reply_room(ekv_req_t *req)
{
    if (req->sink || !req->conn)
        return 1;
    ekv_http_server_t *s = req->conn->srv;
    if (!s->opts.max_reply_memory || s->reply_memory < s->opts.max_reply_memory)
        return 1;
    s->stats.replies_shed++;
    return 0;
}

void ekv_http_req_close_after(ekv_req_t *req)
{
    if (req->conn)
        req->conn->close_after = 1;
}

/* Append the decimal form of v. */
static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *str, size_t n)
{
    memcpy(p, str, n);
    return p + n;
}

#define PUT_LIT(p, lit) put_str(p, lit, sizeof(lit) - 1)

/* The reply head's bytes besides the reason, Date, Content-Type value, extra headers and a
 * copied body, in the order ekv_http_send writes them. Numbers are written by put_uint from a
 * uint64_t: at most 20 digits each (the status is an int, so even a bad one fits). The
 * connection header is "Connection: close\r\n" or keep_alive_hdr (< its buffer). Worst case:
 * 9 + 20 + 1 + 18 + 14 + 18 + 20 + 2 + 47 + 2 = 151 bytes (the old fixed reserve, 104, was
 * short of the 134 a 3-digit status and 20-digit length could take). */
#define LIT_LEN(lit)   (sizeof(lit) - 1)
#define UINT64_DIGITS  20
#define KEEP_ALIVE_MAX (sizeof(((ekv_http_server_t *)0)->keep_alive_hdr) - 1)
#define CONN_HDR_MAX                                                                               \
    (KEEP_ALIVE_MAX > LIT_LEN("Connection: close\r\n") ? KEEP_ALIVE_MAX                            \
                                                       : LIT_LEN("Connection: close\r\n"))
#define HEAD_FIXED_MAX                                                                             \
    (LIT_LEN("HTTP/1.1 ") + UINT64_DIGITS + LIT_LEN(" ") + LIT_LEN("\r\nServer: edgekv\r\n") +     \
     LIT_LEN("Content-Type: ") + LIT_LEN("\r\nContent-Length: ") + UINT64_DIGITS +                 \
     LIT_LEN("\r\n") + CONN_HDR_MAX + LIT_LEN("\r\n"))
_Static_assert(HEAD_FIXED_MAX == 151, "reply head reserve: recount the comment above");

void ekv_http_send(ekv_req_t *req, int status, const char *content_type, const char *extra_headers,
                   const void *body, size_t body_len, void (*release)(void *), void *release_arg)
{
    if (req->sink) {
        EKV_ASSERT(!req->responded);
        req->responded = 1;
        req->sink(req, status, content_type, extra_headers, body, body_len);
        if (release)
            release(release_arg);
        return;
    }
    ekv_conn_t *c = req->conn;
    ekv_http_server_t *s = c->srv;
    EKV_ASSERT(!req->responded);
    req->responded = 1;
    if (s->stopping)
        c->close_after = 1;
    if (!content_type)
        content_type = "application/octet-stream";
    ekv_http_shared_t *shared = release ? req->reply_shared : NULL;
    if (s->opts.max_reply_memory && body_len > EKV_HTTP_SHED_MIN_BYTES && s->reply_memory &&
        s->reply_memory + (shared && shared->queued ? 0 : body_len) > s->opts.max_reply_memory) {
        /* (with nothing queued any one reply goes out, even one larger than the budget) */
        /* over the process-wide reply budget: this large reply becomes a small 503 */
        s->stats.replies_shed++;
        time_t now = time(NULL);
        if (now != s->shed_logged) {
            s->shed_logged = now;
            ekv_log_warn("reply memory budget exhausted: large replies get 503",
                         "queued_bytes=%zu wanted=%zu max=%zu queued_replies=%" PRIu64
                         " shed_total=%" PRIu64,
                         s->reply_memory, body_len, s->opts.max_reply_memory,
                         s->stats.replies_queued, s->stats.replies_shed);
        }
        if (release)
            release(release_arg);
        release = NULL;
        shared = NULL;
        status = ekv_err_http_status(EKV_EREPLY_MEMORY);
        content_type = "application/json";
        extra_headers = "Retry-After: 1\r\n";
        body = s->shed_body;
        body_len = s->shed_body_len;
        req->reply_cf_code = ekv_err_cf_code(EKV_EREPLY_MEMORY);
        req->reply_expiration = 0;
    }

    const char *reason = ekv_http_status_text(status);
    const char *date = date_header(s);
    size_t ct_len = strlen(content_type);
    size_t extra_len = extra_headers ? strlen(extra_headers) : 0;
    int copy_body = !release && body_len <= EKV_HTTP_COPY_MAX_BYTES;
    size_t head_max = HEAD_FIXED_MAX + strlen(reason) + strlen(date) + ct_len + extra_len +
                      (copy_body ? body_len : 0);
    write_req_t *wr = calloc(1, sizeof(*wr));
    char *head = malloc(head_max);
    if (!wr || !head) {
        ekv_log_error("reply allocation failed", "status=%d", status);
        free(wr);
        free(head);
        if (release)
            release(release_arg);
        c->close_after = 1;
        req_reset(c);
        conn_close(c);
        return;
    }
    char *p = head;
    p = PUT_LIT(p, "HTTP/1.1 ");
    p = put_uint(p, (uint64_t)status);
    *p++ = ' ';
    p = put_str(p, reason, strlen(reason));
    p = PUT_LIT(p, "\r\nServer: edgekv\r\n");
    p = put_str(p, date, strlen(date));
    p = PUT_LIT(p, "Content-Type: ");
    p = put_str(p, content_type, ct_len);
    p = PUT_LIT(p, "\r\nContent-Length: ");
    p = put_uint(p, body_len);
    p = PUT_LIT(p, "\r\n");
    if (c->close_after)
        p = PUT_LIT(p, "Connection: close\r\n");
    else
        p = put_str(p, s->keep_alive_hdr, s->keep_alive_hdr_len);
    if (extra_len)
        p = put_str(p, extra_headers, extra_len);
    p = PUT_LIT(p, "\r\n");
    if (copy_body && body_len)
        p = put_str(p, body, body_len);
    size_t head_len = (size_t)(p - head);

    wr->c = c;
    wr->head = head;
    wr->bufs[0] = uv_buf_init(head, (unsigned)head_len);
    wr->nbufs = 1;
    if (release) {
        wr->release = release;
        wr->release_arg = release_arg;
    }
    if (body_len && !copy_body) {
        if (release) {
            wr->bufs[1] = uv_buf_init((char *)body, (unsigned)body_len);
        } else {
            wr->owned_body = malloc(body_len);
            if (!wr->owned_body) {
                write_req_free(wr);
                req_reset(c);
                conn_close(c);
                return;
            }
            memcpy(wr->owned_body, body, body_len);
            wr->bufs[1] = uv_buf_init(wr->owned_body, (unsigned)body_len);
        }
        wr->nbufs = 2;
        wr->shared = shared;
    }
    wr->total = head_len + (copy_body ? 0 : body_len);
    s->stats.bytes_out += wr->total;
    if (s->h.on_response)
        s->h.on_response(s->h.ctx, req, status, wr->total);
    /* the application is done with the request: free its state now */
    if (req->cleanup) {
        req->cleanup(req);
        req->cleanup = NULL;
    }
    c->state = CS_WRITING;
    if (c->in_parse && !c->close_after && !s->stopping && c->pend_len == 0 &&
        wr->total <= COALESCE_MAX_BYTES) { /* (not while stopping: the flush handles close) */
        reply_hold(c, wr);
        return;
    }
    reply_write(c, wr);
}

/* Write a reply now. Most fit the socket buffer: finished in place. Otherwise the rest is
 * queued and the connection waits for write_cb (bounded by the send deadline). */
static void reply_write(ekv_conn_t *c, write_req_t *wr)
{
    ekv_http_server_t *s = c->srv;
    uv_buf_t bufs[2] = {wr->bufs[0], wr->bufs[1]};
    unsigned nbufs = wr->nbufs;
    size_t head_len = bufs[0].len, body_len = nbufs == 2 ? bufs[1].len : 0;
    int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, nbufs);
    if (n == (int)wr->total) {
        write_req_free(wr);
        if (c->in_parse)
            c->sync_done = 1; /* conn_parse goes on with the next request */
        else
            conn_after_reply(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        write_req_free(wr);
        conn_close(c);
        return;
    }
    if (n > 0) { /* partly written: queue the rest */
        size_t skip = (size_t)n;
        unsigned i = 0;
        while (skip >= bufs[i].len) {
            skip -= bufs[i].len;
            i++;
        }
        bufs[i].base += skip;
        bufs[i].len -= (unsigned)skip;
        if (i == 1)
            bufs[0] = bufs[1];
        nbufs -= i;
    }
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, bufs, nbufs, write_cb) != 0) {
        write_req_free(wr);
        conn_close(c);
        return;
    }
    /* the reply now waits for its client: its memory counts until it is written */
    wr->queued = 1;
    s->stats.replies_queued++;
    wr->charged = head_len + (wr->owned_body || (wr->release && !wr->shared) ? body_len : 0);
    s->reply_memory += wr->charged;
    if (wr->shared && wr->shared->queued++ == 0)
        s->reply_memory += body_len;
    /* bounded by the send deadline (send_window_ms, send_min_rate) */
    c->write_mark = reply_pending(c);
    timer_arm(c, send_window_ms(s));
}

/* ---------------------------------------------------------------- coalesced writes */

/*
 * Coalesced writes. A small reply made while parsing a read (the common keep-alive GET) is
 * not written at once: it is held, and the held replies are written one after the other
 * (one writev each, as before) when the loop's I/O phase ends (flush_check, a uv_check
 * handle), or as soon as COALESCE_MAX are held. Why: a write to a peer that sleeps in
 * epoll_wait pays for waking it (on loopback the sender runs the receiver's wake-up: on the
 * 2-core VM of docs/STORAGE.md 10-14 % of the loop's time when a load client that drains
 * replies faster than they come slept ~20k times a second). A burst wakes it once. A held reply
 * waits for at most COALESCE_MAX - 1 others (~0.15 ms at 20 us each), never for a new poll: a lone
 * request is answered after the callbacks of its own wake-up, in the same iteration.
 *
 * Rules: only a reply made inside conn_parse with no pipelined input behind it, on a
 * connection that stays open, of at most COALESCE_MAX_BYTES. The connection keeps reading
 * (no epoll change); a read on it before the flush writes its held reply first, so replies
 * stay in order. Closing a connection drops its held reply like a queued one.
 */
static void reply_hold(ekv_conn_t *c, write_req_t *wr)
{
    ekv_http_server_t *s = c->srv;
    if (s->nheld >= COALESCE_MAX) {
        s->stats.coalesce_flushes_full++;
        held_flush(s); /* c's own reply is never among them: c is parsing */
    }
    s->held[s->nheld++] = c;
    s->stats.replies_coalesced++;
    c->held = wr;
}

/* Take c's held reply out (of at most COALESCE_MAX, order kept). */
static write_req_t *held_unlink(ekv_conn_t *c)
{
    ekv_http_server_t *s = c->srv;
    write_req_t *wr = c->held;
    if (!wr)
        return NULL;
    size_t i = 0;
    while (s->held[i] != c)
        i++;
    memmove(&s->held[i], &s->held[i + 1], (s->nheld - i - 1) * sizeof(s->held[0]));
    s->nheld--;
    c->held = NULL;
    return wr;
}

/* Write c's held reply now (then the connection goes on as after any written reply). */
static void held_flush_conn(ekv_conn_t *c)
{
    write_req_t *wr = held_unlink(c);
    if (wr)
        reply_write(c, wr);
}

static void held_flush(ekv_http_server_t *s)
{
    while (s->nheld)
        held_flush_conn(s->held[0]);
}

static void flush_check_cb(uv_check_t *h)
{
    ekv_http_server_t *s = h->data;
    held_flush(s);
}

/* A reply held outside the I/O phase (after this iteration's check) is written before the
 * loop can block in its next poll. */
static void flush_prepare_cb(uv_prepare_t *h)
{
    ekv_http_server_t *s = h->data;
    held_flush(s);
}

/* A read on a connection whose reply is held: that reply is written first, so replies stay
 * in order. The new bytes become the connection's pending input, parsed once the reply is
 * written (now, or when its queued rest is). Returns 1 when the read is dealt with. */
static int read_after_held(ekv_conn_t *c, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0) {
        c->srv->stats.bytes_in += (uint64_t)nread;
        c->pend_off = (size_t)(buf->base - c->rbuf);
        c->pend_len = (size_t)nread;
    }
    held_flush_conn(c); /* a complete write parses the pending input (conn_after_reply) */
    if (c->state == CS_WRITING && !c->held) {
        conn_read_stop(c); /* the rest is queued: wait for it, as any queued reply does */
        return 1;
    }
    if (nread > 0) {
        rbuf_release_if_done(c);
        return 1;
    }
    return 0; /* end of input or an error: read_cb goes on with it */
}

/* The Cloudflare envelope of a transport-level error (its default message). */
static int error_envelope(char *buf, size_t cap, int err)
{
    return snprintf(buf, cap,
                    "{\"success\":false,\"errors\":[{\"code\":%d,\"message\":\"%s\"}],"
                    "\"messages\":[],\"result\":null}",
                    ekv_err_cf_code(err), ekv_strerror(err));
}

static void send_http_error(ekv_conn_t *c, int err)
{
    char body[256];
    int n = error_envelope(body, sizeof(body), err);
    c->close_after = 1;
    c->req.conn = c;
    if (!c->req.method_str)
        c->req.method_str = "-";
    int status = ekv_err_http_status(err);
    ekv_http_send(&c->req, status, "application/json", status == 503 ? "Retry-After: 1\r\n" : NULL,
                  body, (size_t)n, NULL, NULL);
}

/* ---------------------------------------------------------------- connections */

static void maybe_stopped(ekv_http_server_t *s)
{
    if (s->stopping && s->nconns == 0 && !s->listener_open && !s->trim_timer_open &&
        !s->flush_handles_open && s->stop_cb) {
        void (*cb)(void *) = s->stop_cb;
        s->stop_cb = NULL;
        cb(s->stop_arg);
    }
}

/*
 * Memory back to the system after a connection storm: the structs of thousands of closed
 * connections leave free holes all over the heap that free() alone does not return.
 * malloc_trim(0) gives back every free page; it runs on a timer once a storm is over (the
 * open connections fell to half their peak), at most once per TRIM_MIN_GAP_MS.
 */
#define TRIM_MIN_GAP_MS 5000

static void trim_cb(uv_timer_t *t)
{
    ekv_http_server_t *s = t->data;
    ekv_bufpool_drain(&s->rbufs);
    malloc_trim(0);
    s->closed_since_trim = 0;
    s->peak_since_trim = s->nconns;
    s->last_trim_ms = uv_now(s->loop);
    s->stats.heap_trims++;
}

static void trim_soon(ekv_http_server_t *s)
{
    if (uv_is_active((uv_handle_t *)&s->trim_timer))
        return;
    uint64_t now = uv_now(s->loop), due = now + TRIM_DELAY_MS;
    if (s->last_trim_ms && s->last_trim_ms + TRIM_MIN_GAP_MS > due)
        due = s->last_trim_ms + TRIM_MIN_GAP_MS;
    uv_timer_start(&s->trim_timer, trim_cb, due - now, 0);
}

static void conn_handle_closed(uv_handle_t *h)
{
    ekv_conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    ekv_http_server_t *s = c->srv;
    req_reset(c);
    ekv_buf_deinit(&c->url);
    for (int i = 0; i < EKV_HDR_COUNT; i++)
        ekv_buf_deinit(&c->hdrbuf[i]);
    ekv_buf_deinit(&c->xhdr);
    ekv_bufpool_put(&s->rbufs, c->rbuf);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    s->stats.active = s->nconns;
    free(c);
    /* a storm is over when many closed and the open ones fell to half their peak; steady
     * churn (clients without keep-alive) never trims, so the loop is not stalled by it */
    if (++s->closed_since_trim >= TRIM_AFTER_CLOSES && s->nconns <= s->peak_since_trim / 2 &&
        !s->stopping)
        trim_soon(s);
    maybe_stopped(s);
}

static void conn_close(ekv_conn_t *c)
{
    if (c->state == CS_CLOSING)
        return;
    c->state = CS_CLOSING;
    if (c->held) /* dropped, as uv_close drops a queued reply */
        write_req_free(held_unlink(c));
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_connection(uv_stream_t *ls, int status)
{
    ekv_http_server_t *s = ls->data;
    if (status < 0) {
        ekv_log_warn("accept failed", "err=\"%s\"", uv_strerror(status));
        return;
    }
    ekv_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    ekv_buf_init(&c->url, EKV_HTTP_MAX_URL + 1);
    for (int i = 0; i < EKV_HDR_COUNT; i++)
        ekv_buf_init(&c->hdrbuf[i], EKV_HTTP_MAX_HDR_VALUE);
    ekv_buf_init(&c->xhdr, 2 * EKV_HTTP_MAX_HEADER_BYTES);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (s->nconns > s->peak_since_trim)
        s->peak_since_trim = s->nconns;
    s->stats.active = s->nconns;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->stopping || (s->opts.max_connections > 0 && (int)s->nconns > s->opts.max_connections)) {
        s->stats.rejected++;
        conn_close(c);
        return;
    }
    s->stats.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
    c->parser.data = c;
    c->cur_hdr = -1;
    req_reset(c);
    c->state = CS_IDLE;
    /* a new connection gets the header timeout for its first request, not the idle time */
    timer_arm(c, s->opts.header_timeout_ms);
    conn_read_start(c);
}

/*
 * The accept queue absorbs a burst of connects while the loop is busy: when it is full the
 * kernel drops the SYN and the client waits a whole second to retry. libuv drains the queue
 * in one go each time the listener is readable, so the queue only has to cover one loop turn.
 * Ask for net.core.somaxconn (the kernel's cap; 4096 by default since Linux 5.4).
 */
static int listen_backlog(void)
{
    long v = 0;
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 0;
        fclose(f);
    }
    if (v < 1024)
        v = 1024;
    return v > LISTEN_BACKLOG_MAX ? LISTEN_BACKLOG_MAX : (int)v;
}

int ekv_http_server_start(ekv_http_server_t **out, uv_loop_t *loop, const ekv_http_opts_t *opts,
                          const ekv_http_handler_t *handler)
{
    ekv_http_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return EKV_ENOMEM;
    s->loop = loop;
    s->opts = *opts;
    int ka = snprintf(s->keep_alive_hdr, sizeof(s->keep_alive_hdr), "Keep-Alive: timeout=%d\r\n",
                      opts->idle_timeout_ms >= 2000 ? opts->idle_timeout_ms / 1000 : 1);
    s->keep_alive_hdr_len = ka > 0 && (size_t)ka < sizeof(s->keep_alive_hdr) ? (size_t)ka : 0;
    int sb = error_envelope(s->shed_body, sizeof(s->shed_body), EKV_EREPLY_MEMORY);
    EKV_ASSERT(sb > 0 && (size_t)sb < sizeof(s->shed_body));
    s->shed_body_len = (size_t)sb;
    s->h = *handler;
    llhttp_settings_init(&s->settings);
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_field_complete = on_header_field_complete;
    s->settings.on_header_value = on_header_value;
    s->settings.on_header_value_complete = on_header_value_complete;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;

    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(opts->host, opts->port, (struct sockaddr_in *)&addr);
    if (rc)
        rc = uv_ip6_addr(opts->host, opts->port, (struct sockaddr_in6 *)&addr);
    if (rc) {
        ekv_log_error("bad listen address", "host=%s", opts->host);
        free(s);
        return EKV_EINTERNAL;
    }
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    s->backlog = listen_backlog();
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&s->listener, s->backlog, on_connection);
    if (rc) {
        ekv_log_error("listen failed", "addr=%s:%d err=\"%s\"", opts->host, opts->port,
                      uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        free(s);
        return EKV_EINTERNAL;
    }
    ekv_bufpool_init(&s->rbufs, READ_BUF_SIZE, READ_BUFS_KEPT);
    uv_timer_init(loop, &s->trim_timer);
    s->trim_timer.data = s;
    uv_unref((uv_handle_t *)&s->trim_timer);
    s->trim_timer_open = 1;
    uv_check_init(loop, &s->flush_check);
    s->flush_check.data = s;
    uv_check_start(&s->flush_check, flush_check_cb);
    uv_unref((uv_handle_t *)&s->flush_check);
    uv_prepare_init(loop, &s->flush_prepare);
    s->flush_prepare.data = s;
    uv_prepare_start(&s->flush_prepare, flush_prepare_cb);
    uv_unref((uv_handle_t *)&s->flush_prepare);
    s->flush_handles_open = 2;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen);
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

int ekv_http_server_port(const ekv_http_server_t *s)
{
    return s->port;
}

static void listener_closed(uv_handle_t *h)
{
    ekv_http_server_t *s = h->data;
    s->listener_open = 0;
    maybe_stopped(s);
}

static void trim_timer_closed(uv_handle_t *h)
{
    ekv_http_server_t *s = h->data;
    s->trim_timer_open = 0;
    maybe_stopped(s);
}

static void flush_handle_closed(uv_handle_t *h)
{
    ekv_http_server_t *s = h->data;
    s->flush_handles_open--;
    maybe_stopped(s);
}

void ekv_http_server_stop(ekv_http_server_t *s, void (*done_cb)(void *arg), void *arg)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->stop_cb = done_cb;
    s->stop_arg = arg;
    uv_close((uv_handle_t *)&s->listener, listener_closed);
    uv_close((uv_handle_t *)&s->trim_timer, trim_timer_closed);
    held_flush(s); /* nothing is held from now on (ekv_http_send checks stopping) */
    uv_close((uv_handle_t *)&s->flush_check, flush_handle_closed);
    uv_close((uv_handle_t *)&s->flush_prepare, flush_handle_closed);
    /* idle connections close now; busy ones close after their reply (see ekv_http_send) */
    for (ekv_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CS_IDLE || c->state == CS_LINGER)
            conn_close(c);
        else
            c->close_after = 1;
    }
}

void ekv_http_server_free(ekv_http_server_t *s)
{
    ekv_bufpool_drain(&s->rbufs);
    free(s);
}

void ekv_http_server_stats(const ekv_http_server_t *s, ekv_http_stats_t *out)
{
    *out = s->stats;
    out->reply_memory = s->reply_memory;
    out->read_buffers = s->rbufs.nlent;
    out->read_buffers_free = s->rbufs.nfree;
    out->listen_backlog = (uint64_t)s->backlog;
}
