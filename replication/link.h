/*
 * link.h - one replication TCP connection on a libuv loop: framed reads into a bounded
 * decoder, a byte-counted write queue, and the liveness facts the state machines judge
 * (last frame received, last write progress). Used by both sides (primary.c, replica.c).
 *
 * Contracts:
 *  - Loop thread only.
 *  - on_frame gets each decoded frame in order and owns it (ekv_repl_frame_free). It may call
 *    ekv_repl_link_close(); no further frame is delivered after that.
 *  - A decode error or a read error/EOF closes the link with a logged reason; on_close runs
 *    exactly once, from the handle's close callback, after which the owner frees the link.
 *  - Sends never block and never fail silently: bytes are queued (the owner bounds the queue
 *    by checking ekv_repl_link_queued() against its high-water mark, and is told through
 *    on_drain when it falls below the low-water mark).
 *  - Authentication (auth.h): a link given a cluster secret runs the HMAC handshake before
 *    anything else. Until it succeeds, frames are capped at EKV_REPL_AUTH_MAX_FRAME and read
 *    as AuthFrame (never as Frame: a Hello or an epoch from an unauthenticated peer never
 *    reaches on_frame), frames the owner sends are held back (and sent once authenticated),
 *    and a close sends no Error frame. A failed handshake is counted and logged (rate-limited)
 *    by the ekv_repl_auth_t and closes the link with l->auth_failed set.
 */
#ifndef EKV_REPLICATION_LINK_H
#define EKV_REPLICATION_LINK_H

#include "replication/auth.h"
#include "replication/frame.h"

#include <stdint.h>
#include <uv.h>

typedef struct ekv_repl_link_s ekv_repl_link_t;

typedef struct {
    void (*on_frame)(ekv_repl_link_t *l, Edgekv__Frame *f);
    void (*on_close)(ekv_repl_link_t *l); /* the link is closed; free it now */
    void (*on_drain)(ekv_repl_link_t *l); /* queued bytes fell below the low-water mark */
} ekv_repl_link_cbs_t;

#define EKV_REPL_READ_BUF (256u * 1024u)

struct ekv_repl_link_s {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    void (*on_connected)(ekv_repl_link_t *l, int status);
    ekv_repl_decoder_t dec;
    ekv_repl_link_cbs_t cbs;
    void *owner;               /* for the callbacks */
    size_t queued;             /* bytes handed to uv_write and not yet written */
    size_t low_water;          /* on_drain when queued drops below this */
    uint64_t last_recv_ns;     /* monotonic time of the last frame received */
    uint64_t last_progress_ns; /* last write completion, or when the queue became non-empty */
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    int closing;
    int reading;
    int paused;    /* reads stopped by the owner (backpressure) */
    char peer[64]; /* "host:port" for log lines */
    char close_reason[160];
    char *rbuf;            /* EKV_REPL_READ_BUF bytes, reused for every read */
    ekv_repl_auth_t *auth; /* NULL: no authentication (unit tests only) */
    ekv_repl_hs_t hs;
    int authed;       /* the handshake succeeded (or auth is NULL) */
    int auth_failed;  /* closed because the handshake failed */
    size_t max_frame; /* the decoder's cap once authenticated */
    ekv_buf_t held;   /* frames sent by the owner before authentication */
    void *resolving;  /* a host name being resolved (link.c), NULL otherwise */
};

/* Set up l around an initialised, connected (or accepted) uv_tcp_t that lives inside l:
 * callers init l->tcp first (uv_tcp_init + uv_accept, or ekv_repl_link_connect). auth: the
 * cluster secret (borrowed; outlives the link), side: EKV_REPL_HS_LISTENER for an accepted
 * link (its Challenge is queued at once), EKV_REPL_HS_CONNECTOR for an outgoing one. */
int ekv_repl_link_init(ekv_repl_link_t *l, void *owner, const ekv_repl_link_cbs_t *cbs,
                       size_t max_frame, ekv_repl_auth_t *auth, ekv_repl_hs_side_t side);
/* Start an outgoing connection: init the tcp handle and connect to host:port. host is an
 * IPv4/IPv6 literal, or a name resolved first (uv_getaddrinfo, off the loop: compose and
 * Kubernetes service names; the first address is used). on_connected (status 0 or a libuv
 * error, e.g. UV_EAI_NONAME) runs once, never inside this call; on failure call
 * ekv_repl_link_close. Closing the link while a name is being resolved is allowed.
 * 0, EKV_EBAD_REQUEST (empty host or port out of range) or EKV_EINTERNAL (the handle could
 * not be made): then nothing is registered and the caller may free l. Once the handle exists,
 * a failure that happens at once (no route, out of memory) is reported by closing the link:
 * l->cbs.on_close must be set before this call, and runs later, without on_connected. */
int ekv_repl_link_connect(ekv_repl_link_t *l, uv_loop_t *loop, const char *host, int port,
                          void (*on_connected)(ekv_repl_link_t *l, int status));
/* Start reading frames. */
int ekv_repl_link_start(ekv_repl_link_t *l);
/* Stop / resume reading (backpressure from the owner's apply queue). */
void ekv_repl_link_pause(ekv_repl_link_t *l);
void ekv_repl_link_resume(ekv_repl_link_t *l);

/* Encode and queue one frame. 0, or an encode error (the link is then closed). */
int ekv_repl_link_send(ekv_repl_link_t *l, const Edgekv__Frame *f);
/* Queue already-encoded frames; takes ownership of the malloc'd bytes (freed after the
 * write, or at once on error). */
int ekv_repl_link_send_raw(ekv_repl_link_t *l, char *bytes, size_t len);
/* Bytes queued and not yet written. */
size_t ekv_repl_link_queued(const ekv_repl_link_t *l);

/* Close with a reason (logged by the owner from l->close_reason). When code != 0, first try
 * (without blocking) to tell the peer with an Error frame {code, reason}. Idempotent. */
void ekv_repl_link_close(ekv_repl_link_t *l, uint64_t epoch, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reconnect delay after `attempts` failures: min_ms doubled per attempt, capped at max_ms, with
 * jitter (a random 50-100 % of that step) so peers that lost the same node do not return in
 * lock step. */
int ekv_repl_backoff_ms(int attempts, int min_ms, int max_ms);

/* "host:port" -> host, port. 0 or -1. */
int ekv_repl_parse_addr(const char *addr, char *host, size_t host_cap, int *port);

#endif
