/*
 * server/http/ - the HTTP/1.1 transport, with no knowledge of the API above it: the server
 * (this header, conn.c), the router, Cloudflare's reply envelopes (reply.h), the JSON writer,
 * URL codec, multipart parser, the per-route metrics registry, and the async client
 * (client.h). Includes only common/.
 *
 * server.h - the HTTP/1.1 server: libuv TCP + llhttp parsing.
 *
 * Connection state machine (one ekv_conn_t per socket, see conn.c):
 *
 *   HEADERS --(headers complete)--> BODY --(message complete)--> PROCESSING --(reply written)
 *      ^                                                                          |
 *      +--------------------------- keep-alive (next pipelined request) ---------+
 *
 *  - Pipelined requests are answered strictly in order: the parser pauses at the end of each
 *    request. A reply that the socket takes at once (uv_try_write) completes the request in
 *    place and parsing goes on with the next one, without a loop turn or epoll change. A
 *    request that goes asynchronous (a job) or a reply that does not fit stops reading the
 *    socket until the reply is written (h2o's rule), so a client cannot make us buffer
 *    unbounded input.
 *  - Limits are checked before allocating: URL bytes, total header bytes, header count, and
 *    the body limit the router gives for the route (Content-Length over the limit is
 *    answered 413 before the body is read, then the connection is closed).
 *  - Request bodies are authenticated by the application before they are read (on_headers),
 *    and all bodies buffered at once are capped (max_body_memory -> 503).
 *  - Timers: header timeout (from accept or a request's first byte to the end of its
 *    headers); idle timeout for keep-alive and for each pause inside a body (nginx's
 *    client_body_timeout). Max connections: excess accepts are closed at once.
 *  - Output is bounded (docs/API.md "Bounded replies"):
 *     - per connection: one reply at a time. While a reply is queued the socket is not read,
 *       so a connection holds at most one reply (<= the largest value + its head) in memory;
 *     - process-wide: the bytes of replies the kernel has not taken yet, all connections, are
 *       charged against max_reply_memory. A body several replies share (ekv_http_shared_t, a
 *       cached value) is charged once. A reply over EKV_HTTP_SHED_MIN_BYTES that would exceed
 *       the cap is replaced by 503 + Retry-After (small replies always go out);
 *     - send deadline: a queued reply must drain at least send_min_rate bytes/s, measured
 *       over each send_timeout_ms window (and at least one byte per window), else the
 *       connection is closed. Unlike a timer reset by any progress, a trickle reader cannot
 *       hold a reply forever.
 *  - Malformed HTTP -> 400 and close; never a crash.
 *
 * The application sees two callbacks (ekv_http_handler_t): on_headers decides the body limit
 * (and may answer at once), on_request handles the complete request. A handler answers
 * exactly once with ekv_http_send(), possibly later from a completion callback; the request
 * (and its connection) stays valid until then.
 */
#ifndef EKV_SERVER_HTTP_SERVER_H
#define EKV_SERVER_HTTP_SERVER_H

#include "common/buf.h"
#include "server/http/router.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define EKV_HTTP_MAX_URL          8192
#define EKV_HTTP_MAX_HEADER_BYTES (64 * 1024)
#define EKV_HTTP_MAX_HEADERS      100
#define EKV_HTTP_MAX_HDR_VALUE    8192 /* for the headers we keep */

typedef struct ekv_conn_s ekv_conn_t;
typedef struct ekv_http_server_s ekv_http_server_t;

/* Headers the application uses, kept verbatim (bounded). len 0 = absent. */
typedef struct {
    char *v;
    size_t len;
    int present;
} ekv_hdr_t;

enum {
    EKV_HDR_AUTHORIZATION,
    EKV_HDR_X_AUTH_KEY,
    EKV_HDR_X_AUTH_EMAIL,
    EKV_HDR_CONTENT_TYPE,
    EKV_HDR_EXPECT,
    EKV_HDR_COUNT
};

/* Bodies up to this size without a release callback are copied into the reply head (one
 * write, no second buffer); larger ones are referenced or copied once on their own. */
#define EKV_HTTP_COPY_MAX_BYTES (16 * 1024)

/* Replies over this many body bytes are refused (503) when max_reply_memory is reached. */
#define EKV_HTTP_SHED_MIN_BYTES (64 * 1024)

/* A reply body several replies may reference at once (a cached value; an edge's fetched value
 * answered to every waiting client). Embedded in the body's owner, which must keep it alive
 * until each reply's release callback has run. The transport charges the body's bytes against
 * max_reply_memory once, while at least one queued reply references it. Loop thread only. */
typedef struct {
    size_t queued; /* queued replies referencing the body (the transport's count) */
} ekv_http_shared_t;

#define EKV_SYNC_FAILED_LEADER_LOST 2

typedef struct ekv_req_s ekv_req_t;
typedef void (*ekv_req_cleanup_fn)(ekv_req_t *req);

struct ekv_req_s {
    ekv_conn_t *conn;
    int method;             /* llhttp_method_t */
    const char *method_str; /* "GET", ... */
    char *path;             /* raw (undecoded) path, NUL-terminated */
    size_t path_len;
    char *query; /* raw query without '?', NUL-terminated ("" if none) */
    size_t query_len;
    ekv_hdr_t hdr[EKV_HDR_COUNT];
    /* "name: value\r\n" lines (lowercase names) of the headers not in hdr[] and not
     * hop-by-hop, NUL-terminated; NULL unless the URL matched opts.keep_headers_marker. */
    const char *other_headers;
    size_t other_headers_len;
    /* Durable Object calls that arrived over an RPC link: how many nodes forwarded it to
     * the object's owner already (repl.proto Request.do_hops). 0 for a client's request. */
    unsigned do_hops;
    int64_t content_length; /* -1 when not given */
    int has_body;           /* Content-Length > 0 or chunked */
    ekv_buf_t body;         /* bounded by body_limit */
    size_t body_limit;      /* set by on_headers */
    uint64_t start_ns;
    int responded;
    /* application state, owned by the handler; cleanup runs once the reply is written */
    int route_id;              /* -1 when no route matched */
    const ekv_route_t *route;  /* set by the app's on_headers */
    ekv_route_params_t params; /* slices of path */
    int route_rc;              /* 0, EKV_ENO_ROUTE or EKV_EBAD_METHOD */
    void *app;
    /* Set for requests that did not come from a socket (an edge's RPC, server/node/rpc_exec.c):
     * ekv_http_send() hands the reply to sink instead of writing it, then runs cleanup. */
    void (*sink)(ekv_req_t *req, int status, const char *content_type, const char *extra_headers,
                 const void *body, size_t body_len);
    int sync_failed; /* the write is committed but not acked by --sync-replicas in time: the
                      * handler's success reply becomes a 504 (server/http/reply.c); or
                      * EKV_SYNC_FAILED_LEADER_LOST: committed after the primary lease lapsed,
                      * the reply becomes a 503 (not acknowledged) */
    /* What the reply says, as fields, for a sink that forwards it (an edge's RPC): the
     * Cloudflare error code of an error envelope (0: none) and a value's expiration (unix
     * seconds, 0: none). Set by server/http/reply.c and the KV value reply. */
    int reply_cf_code;
    int64_t reply_expiration;
    /* Set by the caller of ekv_http_send when the body it passes (with a release callback) is
     * shared: see ekv_http_shared_t. NULL: the body is this reply's alone. */
    ekv_http_shared_t *reply_shared;
    void *state;
    ekv_req_cleanup_fn cleanup;
};

typedef struct {
    void *ctx;
    /* After the headers: set req->body_limit (default 1 MiB) and return 0, or answer now via
     * ekv_http_send() and return -1 (the body is not read; the connection closes gently). */
    int (*on_headers)(void *ctx, ekv_req_t *req);
    /* The complete request. Must eventually call ekv_http_send() exactly once. */
    void (*on_request)(void *ctx, ekv_req_t *req);
    /* Called after each response is written (metrics). */
    void (*on_response)(void *ctx, ekv_req_t *req, int status, size_t bytes_out);
} ekv_http_handler_t;

typedef struct {
    const char *host;
    int port; /* 0 = ephemeral */
    int max_connections;
    int header_timeout_ms;
    int idle_timeout_ms;
    size_t max_body_memory;  /* request bodies buffered at once, all connections (0 = no cap) */
    size_t max_reply_memory; /* reply bytes waiting for clients, all connections (0 = no cap) */
    int send_timeout_ms;     /* send deadline window (0 = idle_timeout_ms) */
    size_t send_min_rate;    /* bytes/s a queued reply must drain over each window */
    /* Requests whose URL contains this string keep every end-to-end header they carry in
     * req->other_headers (the Durable Object call path forwards them). NULL = never. */
    const char *keep_headers_marker;
} ekv_http_opts_t;

/* Bind and listen. The bound port is available from ekv_http_server_port(). */
int ekv_http_server_start(ekv_http_server_t **out, uv_loop_t *loop, const ekv_http_opts_t *opts,
                          const ekv_http_handler_t *handler);
int ekv_http_server_port(const ekv_http_server_t *s);
/* Stop accepting; close idle connections now and the others once their request is answered.
 * done_cb runs on the loop when no connection is left. */
void ekv_http_server_stop(ekv_http_server_t *s, void (*done_cb)(void *arg), void *arg);
void ekv_http_server_free(ekv_http_server_t *s);

typedef struct {
    uint64_t accepted, rejected, active, bytes_in, bytes_out, parse_errors, timeouts;
    uint64_t send_timeouts;     /* connections closed by the send deadline (also in timeouts) */
    uint64_t replies_shed;      /* large replies answered 503 because of max_reply_memory */
    uint64_t reply_memory;      /* reply bytes charged now */
    uint64_t replies_queued;    /* replies waiting for their client now */
    uint64_t read_buffers;      /* read buffers lent to connections now (mid-read ones) */
    uint64_t read_buffers_free; /* read buffers kept for reuse */
    uint64_t heap_trims;        /* free heap returned to the system after connection storms */
    uint64_t listen_backlog;    /* listen(2) backlog asked for (the kernel caps it at somaxconn) */
    uint64_t replies_coalesced; /* small replies held to be written with others (conn.c) */
    uint64_t coalesce_flushes_full; /* held replies written early: COALESCE_MAX were held */
} ekv_http_stats_t;
void ekv_http_server_stats(const ekv_http_server_t *s, ekv_http_stats_t *out);

/*
 * Send the one reply of a request. extra_headers: preformatted "Name: value\r\n" lines or
 * NULL. Body: when release is NULL the bytes are copied; otherwise they are referenced until
 * written and release(release_arg) is called (zero-copy for cached values). Safe to call from
 * a completion callback on the loop thread. After this returns, req must not be used.
 */
void ekv_http_send(ekv_req_t *req, int status, const char *content_type, const char *extra_headers,
                   const void *body, size_t body_len, void (*release)(void *), void *release_arg);

/* Before producing a reply that may be large (reading a value): 1 when the reply budget has
 * room, else 0 after counting the reply as shed; the caller then answers 503 at once
 * (EKV_EREPLY_MEMORY) rather than reading bytes that would only be dropped. Requests without
 * a connection (an edge's RPC) always have room: their link bounds them. */
int ekv_http_reply_room(ekv_req_t *req);

/* Close the connection after this reply even if keep-alive was asked. */
void ekv_http_req_close_after(ekv_req_t *req);

const char *ekv_http_status_text(int status);

/* 1 for a hop-by-hop or framing header (RFC 9110 §7.6.1: Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade; and Content-Length), which a
 * relay never passes on; the name in any case. */
int ekv_http_hop_by_hop(const char *name);

#endif
