/*
 * client.h - one asynchronous HTTP/1.1 client on libuv + llhttp (client.c), its response
 * parser (resp_parser.c, pure: no loop, fuzzed) and a blocking convenience for CLIs.
 *
 * The bottom server layer: includes only common/, libuv, llhttp and libc. Durable Object
 * forwarding, alarm delivery, the etcd coordinator client, the load generator and
 * `edgekv status` / `edgekv promote` build on it. Plain http:// only (no TLS).
 *
 * THREAD. A client lives on one uv loop; every function except ekv_http_fetch_sync() and
 * the resp_parser/url functions must be called on that loop's thread, and every callback
 * runs there. Writes to a peer that closed may raise SIGPIPE: the process must ignore it
 * (`edgekv serve` does; ekv_http_fetch_sync() blocks it around its own loop).
 *
 * CONNECTIONS. One pool per upstream, keyed by host:port (host compared case-insensitively;
 * a host name and its address are different upstreams). A call takes the most recently used
 * idle connection; else opens a new one while the upstream has fewer than max_conns
 * (busy + idle + connecting); else waits in the upstream's FIFO queue, bounded by max_queue;
 * past that the call fails at once with EKV_EBUSY. One request at a time per connection (no
 * pipelining: parallel calls use parallel connections). After a response the connection is
 * pooled when both sides allow keep-alive, the whole request was written and the response
 * ended exactly at the end of the bytes read; at most max_idle stay idle, each for
 * idle_timeout_ms (shortened to the server's `Keep-Alive: timeout=N` minus 500 ms). An idle
 * connection is read: EOF, an error or any byte from the server discards it.
 * A new connection is made for one call (its connect error is that call's error); it
 * resolves the host (numeric IPv4/IPv6 at once, names with uv_getaddrinfo, up to 8
 * addresses) and tries each address in turn, each within connect_timeout_ms.
 *
 * RETRY RULE. A call fails over to a fresh connection once, and only once, when all of:
 *   - its method is GET, HEAD, PUT or DELETE (idempotent: sending it twice is harmless),
 *   - it ran on a reused (previously pooled) connection, and
 *   - that connection failed (EOF, reset, write error) before any byte of the response.
 * That is the race of a server closing an idle connection as the request goes out. Nothing
 * else is retried (not connect errors, not timeouts, not POST); the total timeout covers
 * the retry.
 *
 * COMPLETION. ekv_http_client_send() returns 0 and then cb runs exactly once, on the loop
 * and never inside ekv_http_client_send(): cb(ctx, 0, resp) for any HTTP status (4xx/5xx
 * are responses, not errors), or cb(ctx, err, NULL) with one of
 *   EKV_EHTTP_DNS                  the host name did not resolve
 *   EKV_EHTTP_CONNECT_REFUSED      every address refused the connection (last error kept)
 *   EKV_EHTTP_CONNECT              other connect failures (unreachable, no socket...)
 *   EKV_EHTTP_CONNECT_TIMEOUT      resolving + connecting took over connect_timeout_ms
 *   EKV_ETIMEOUT                   the call (queue + connect + request + response, and a
 *                                  retry) took over its total timeout
 *   EKV_EHTTP_CLOSED               the connection ended before the response was complete
 *   EKV_EHTTP_BAD_RESPONSE         bytes that are not an HTTP/1.x response (or 101 / bytes
 *                                  we did not ask for)
 *   EKV_EHTTP_RESP_HEADERS_TOO_LARGE status line + headers over max_header_bytes, or more
 *                                  than max_headers fields
 *   EKV_EHTTP_RESP_TOO_LARGE       body over max_body_bytes (a Content-Length over it fails
 *                                  before the body is read)
 *   EKV_ECANCELLED                 ekv_http_call_cancel()
 *   EKV_ESHUTDOWN                  ekv_http_client_close() with the call pending
 *   EKV_ENOMEM
 * A non-zero return from ekv_http_client_send() means cb will NOT run: EKV_EBUSY (upstream
 * queue full), EKV_ESHUTDOWN (client closing), EKV_EBAD_REQUEST (method, host, port, target
 * or a header is malformed or has CR/LF; or a framing header the client owns, see below),
 * EKV_ENOMEM, or a connect error from the list above when a numeric address fails at once
 * (EKV_EHTTP_CONNECT: no socket, unreachable...).
 *
 * RESPONSES. resp and everything it points to belongs to the client and is valid during the
 * callback only, unless the callback calls ekv_http_response_keep(), which hands it to the
 * caller (free it with ekv_http_response_free()). Bodies of HEAD responses, 1xx, 204 and
 * 304 are empty; interim 1xx responses (100 Continue...) are skipped. Bodies may come with
 * Content-Length, chunked (trailers are counted against max_header_bytes, then dropped) or
 * until the connection closes (such a connection is not reused).
 *
 * MEMORY. Per call: the serialized request (plus the body unless borrowed) and the response
 * (<= max_header_bytes + headers index + max_body_bytes); per connection one parser; one
 * shared 64 KiB read buffer per client. Counts: max_conns and max_queue per upstream.
 */
#ifndef EKV_SERVER_HTTP_CLIENT_H
#define EKV_SERVER_HTTP_CLIENT_H

#include "common/buf.h"

#include <llhttp.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---------------------------------------------------------------- messages */

/* One header; both strings NUL-terminated. */
typedef struct {
    const char *name;
    const char *value;
} ekv_http_header_t;

typedef struct ekv_http_response_s {
    int status; /* 100..999 (never 1xx: interim responses are skipped) */
    int http_major, http_minor;
    const ekv_http_header_t *headers; /* nheaders, in arrival order, names as received */
    size_t nheaders;
    const char *body; /* body_len bytes + a NUL (never NULL; "" when empty) */
    size_t body_len;
    /* private */
    int kept_;
    int *kept_seen_; /* set by the client around its callback: keep() also sets *kept_seen_,
                      * so the client never reads a response the callee kept (and may have
                      * freed already) */
    char *body_mem_;
} ekv_http_response_t;

/* First header named `name` (ASCII case-insensitive), its value without surrounding
 * whitespace; NULL when absent. */
const char *ekv_http_response_header(const ekv_http_response_t *r, const char *name);
/* Inside a completion callback: take ownership of resp (free it with
 * ekv_http_response_free()). Returns resp. */
ekv_http_response_t *ekv_http_response_keep(const ekv_http_response_t *resp);
/* Free a kept or fetched response; NULL is ignored. */
void ekv_http_response_free(ekv_http_response_t *r);

/* ---------------------------------------------------------------- response parser */

/* Limits; 0 = the default (64 KiB, 100, 8 MiB). max_header_bytes counts the reason phrase,
 * header names and values, chunk extensions and trailers. */
typedef struct {
    size_t max_header_bytes;
    size_t max_headers;
    size_t max_body_bytes;
} ekv_http_resp_limits_t;

#define EKV_HTTP_DEFAULT_MAX_HEADER_BYTES (64u * 1024)
#define EKV_HTTP_DEFAULT_MAX_HEADERS      100u
#define EKV_HTTP_DEFAULT_MAX_BODY_BYTES   (8u * 1024 * 1024)

/*
 * Parses one response to one request from bytes (pure: no I/O, no loop), with llhttp.
 * Embedded by its owner; all fields are private. Used by the client's connections and by
 * tests/fuzz/fuzz_http_response.c.
 *
 *   init(p, limits, head_only)   head_only: the request was HEAD (no body whatever the
 *                                headers say)
 *   feed(p, data, len, &used)    0: need more bytes (all used); 1: the response is complete
 *                                and *used bytes of data belong to it (the rest is the
 *                                next message); < 0: error (sticky, see below)
 *   finish(p)                    the peer closed: 1 when that completes the response
 *                                (read-until-close body), else < 0
 *   take(p)                      after 1: the response, now the caller's
 *   deinit(p)                    frees what is left; init again for the next response
 *
 * Errors: EKV_EHTTP_BAD_RESPONSE, EKV_EHTTP_RESP_HEADERS_TOO_LARGE, EKV_EHTTP_RESP_TOO_LARGE,
 * EKV_EHTTP_CLOSED (finish before the response was complete; also with no byte at all),
 * EKV_ENOMEM.
 */
typedef struct {
    llhttp_t llh;
    ekv_http_resp_limits_t lim;
    int head_only;
    int err;          /* sticky */
    int done;         /* a final response is complete */
    int keep_alive;   /* set with done: the connection may carry another request */
    int interim;      /* the current message is a 1xx */
    int ninterim;     /* 1xx messages so far */
    int headers_done; /* later header fields are trailers */
    int hstate;       /* 0 between fields, 1 in a name, 2 in a value */
    size_t received;  /* bytes fed */
    size_t head_bytes;
    ekv_buf_t hb;  /* "name\0value\0"... */
    size_t *offs;  /* 2 per header: name and value offsets in hb */
    size_t noffs;  /* headers recorded */
    size_t offcap; /* headers offs can hold */
    ekv_buf_t body;
    ekv_http_response_t *resp;
    /* streaming (ekv_http_resp_parser_stream): 2xx body pieces go here, not into body */
    void (*sink)(void *ctx, const char *data, size_t len);
    void *sink_ctx;
} ekv_http_resp_parser_t;

void ekv_http_resp_parser_init(ekv_http_resp_parser_t *p, const ekv_http_resp_limits_t *lim,
                               int head_only);
int ekv_http_resp_parser_feed(ekv_http_resp_parser_t *p, const char *data, size_t len,
                              size_t *used);
int ekv_http_resp_parser_finish(ekv_http_resp_parser_t *p);
ekv_http_response_t *ekv_http_resp_parser_take(ekv_http_resp_parser_t *p);
void ekv_http_resp_parser_deinit(ekv_http_resp_parser_t *p);
/* After init: the body of a 2xx response is handed to sink(ctx, piece, len) as it arrives
 * (max_body_bytes does not apply; the completed response has an empty body). Other
 * statuses are buffered as usual, so an error answer is still read whole. */
void ekv_http_resp_parser_stream(ekv_http_resp_parser_t *p,
                                 void (*sink)(void *ctx, const char *data, size_t len), void *ctx);

/* ---------------------------------------------------------------- client */

typedef struct ekv_http_client_s ekv_http_client_t;
typedef struct ekv_http_call_s ekv_http_call_t;

/* 0 = default for every field. */
typedef struct {
    size_t max_conns;           /* per upstream: connecting + busy + idle (16) */
    size_t max_idle;            /* idle keep-alive connections kept per upstream (8) */
    size_t max_queue;           /* calls waiting for a connection per upstream (256) */
    int connect_timeout_ms;     /* resolve + connect, per address (5000) */
    int timeout_ms;             /* total per call, default for calls that give none (30000) */
    int idle_timeout_ms;        /* an idle pooled connection is closed after this (30000) */
    ekv_http_resp_limits_t lim; /* response limits (see above) */
} ekv_http_client_opts_t;

/* Request flags. */
#define EKV_HTTP_BORROW_BODY 1u /* body is not copied: it must stay valid until cb runs */
#define EKV_HTTP_CLOSE       2u /* send Connection: close; the connection is not pooled */

typedef struct {
    const char *method; /* an HTTP token: "GET", "PUT"... */
    const char *host;   /* host name, IPv4 or IPv6 address (no brackets) */
    int port;           /* 1..65535 */
    const char *target; /* origin form: "/path?query", no spaces or control bytes */
    /* Extra headers, sent in order. The client writes Host (unless given here),
     * Content-Length (when there is a body, and always for POST/PUT/PATCH) and Connection;
     * Content-Length, Transfer-Encoding and Connection given here are refused. */
    const ekv_http_header_t *headers;
    size_t nheaders;
    const void *body; /* copied at send time unless EKV_HTTP_BORROW_BODY */
    size_t body_len;
    int timeout_ms; /* total for this call; 0 = the client's timeout_ms; < 0 = none (only
                     * with on_body: a stream that lasts until cancelled or closed) */
    unsigned flags; /* EKV_HTTP_* */
    /* Streaming: when set, a 2xx body is passed to on_body(ctx, piece, len) as it arrives
     * instead of being buffered (cb still runs once at the end, with an empty body). Used
     * for long-lived streams such as etcd's watch. on_body must not cancel its own call;
     * it may arm a timer that does. */
    void (*on_body)(void *ctx, const char *data, size_t len);
} ekv_http_request_t;

typedef void (*ekv_http_cb)(void *ctx, int err, const ekv_http_response_t *resp);

/* A client on loop (opts NULL = defaults). 0, EKV_ENOMEM or EKV_EINTERNAL (libuv). */
int ekv_http_client_new(uv_loop_t *loop, const ekv_http_client_opts_t *opts,
                        ekv_http_client_t **out);
/* Send a request (see COMPLETION above for what follows). The request and its strings need
 * not outlive this call (except a borrowed body). *call (optional) identifies the call for
 * ekv_http_call_cancel(); it is valid until cb starts. */
int ekv_http_client_send(ekv_http_client_t *c, const ekv_http_request_t *req, ekv_http_cb cb,
                         void *ctx, ekv_http_call_t **call);
/* Complete a pending call now: cb(ctx, EKV_ECANCELLED, NULL) runs before this returns. The
 * connection it was using is closed. Not from within that call's own callback. */
void ekv_http_call_cancel(ekv_http_call_t *call);
/* Fail every pending call once with EKV_ESHUTDOWN (their callbacks run before this
 * returns), close every connection and free the client; done(arg) runs on the loop after
 * all its handles are closed (never inside this call). Later sends are refused. */
void ekv_http_client_close(ekv_http_client_t *c, void (*done)(void *arg), void *arg);

typedef struct {
    uint64_t calls;     /* accepted by send */
    uint64_t ok;        /* completed with a response */
    uint64_t failed;    /* completed with an error (cancel and shutdown included) */
    uint64_t busy;      /* refused with EKV_EBUSY */
    uint64_t connects;  /* connections established */
    uint64_t reused;    /* requests sent on a pooled connection */
    uint64_t retries;   /* calls retried under the retry rule */
    size_t conns, idle; /* connections now (all / idle) */
    size_t queued;      /* calls waiting for a connection */
    size_t pending;     /* calls not yet completed */
} ekv_http_client_stats_t;
void ekv_http_client_stats(const ekv_http_client_t *c, ekv_http_client_stats_t *out);

/* ---------------------------------------------------------------- URLs and blocking use */

#define EKV_HTTP_MAX_TARGET 8192

typedef struct {
    char host[256];                   /* IPv6 without brackets */
    int port;                         /* 80 when absent */
    char target[EKV_HTTP_MAX_TARGET]; /* path + query, "/" when absent; fragment dropped */
} ekv_http_url_t;

/* "http://host[:port][/path][?query][#fragment]" (scheme case-insensitive; IPv6 as
 * "[::1]"). 0, EKV_EHTTP_HTTPS_UNSUPPORTED for https://, EKV_EHTTP_BAD_URL otherwise (no
 * or another scheme, userinfo, empty or bad host, port not in 1..65535, spaces or control
 * bytes, over the sizes above). */
int ekv_http_url_parse(const char *url, ekv_http_url_t *out);

/*
 * Blocking, for CLIs (any thread that runs no uv loop): one request on a private uv loop
 * with a private client, Connection: close; default response limits. timeout_ms (<= 0:
 * 30000) is the total and also bounds connecting. SIGPIPE is blocked in
 * the calling thread meanwhile. 0 with *out a response (any status; free it with
 * ekv_http_response_free()), or an error from the url parser or the list above (*out NULL).
 */
int ekv_http_fetch_sync(const char *method, const char *url, const ekv_http_header_t *headers,
                        size_t nheaders, const void *body, size_t body_len, int timeout_ms,
                        ekv_http_response_t **out);

#endif
