/*
 * primary.h - the primary's side of replication: accepts replica links on the internal port,
 * streams each replica its change log (or a snapshot first), tracks acks, and holds writes
 * for --sync-replicas. docs/REPLICATION.md describes the protocol and the states.
 *
 * Threads: everything here runs on the owner's loop thread, except the log and snapshot reads
 * (and the frame encoding of what they read), which run on the primary's own small reader
 * pool, one job at a time per replica. The loop never calls RocksDB, except for the
 * log-pin bookkeeping (a mutex shared with the log trimmer, held for microseconds).
 *
 * Per replica link (states): handshake -> (snapshot ->) streaming. A link is dropped, with a
 * log line and a counted reason, when the peer sends nothing for timeout_ms (replicas ack at
 * least every heartbeat), when its writes make no progress for timeout_ms, when records sent
 * max_lag_ms ago are still not acked (alive but not applying), or on a protocol error. Dropping
 * releases its log pin, so retention then applies to it like to any disconnected replica.
 *
 * Memory is bounded per link: at most one read job in flight (<= 4 MiB of log records or 1 MiB
 * of snapshot entries, plus one oversized value) and reads stop while more than
 * EKV_REPL_SEND_HIGH_WATER bytes wait for the socket. An RPC link's requests stop being read
 * while more than rpc_send_queue_max bytes of answers wait for the socket (the edge is not
 * reading them); reading resumes once the queue is under the link's low-water mark (1 MiB).
 */
#ifndef EKV_REPLICATION_PRIMARY_H
#define EKV_REPLICATION_PRIMARY_H

#include "repl.pb-c.h"
#include "storage/store.h"

#include <stdint.h>
#include <uv.h>

#define EKV_REPL_SEND_HIGH_WATER (8u << 20)
#define EKV_REPL_MAX_REPLICAS    30 /* each holds <= 2 of the store's EKV_LOG_MAX_PINS pins */

typedef struct ekv_repl_primary_s ekv_repl_primary_t;

typedef struct {
    uv_loop_t *loop;
    ekv_store_t *store; /* NULL: an edge's listener, RPC links only (with edge_only) */
    /* The cluster secret every link must prove before its first frame (auth.h); borrowed,
     * outlives the primary. NULL = no authentication (unit tests only). */
    struct ekv_repl_auth_s *auth;
    const char *host;
    int port; /* 0 = any (see ekv_repl_primary_port) */
    const char *node_id;
    const char *advertise_url;
    const ekv_node_state_t *node; /* the owner's copy: epoch and history ids, read on the loop */
    int heartbeat_ms;             /* heartbeat on idle links (default 1000) */
    int timeout_ms;               /* drop a silent or stalled replica (default 10000) */
    int max_lag_ms; /* drop a replica that has not acked records sent this long ago (60000) */
    /* A frame carried a higher epoch than ours: a newer primary exists. Called once, when the
     * primary refuses new links but BEFORE it closes the open ones with FENCED, so the owner
     * can make the fence durable first (a synchronous save). */
    void (*on_fenced)(void *ctx, uint64_t epoch, const char *by_node);
    void *ctx;
    int fenced; /* start fenced (the node state says a newer primary exists) */
    /* 1 on a replica: serve edges only (keys-only streams and RPC links); replica and fence
     * Hellos are refused with NOT_PRIMARY and epochs are not checked. */
    int edge_only;
    /* An edge's Request frame on an RPC link (ownership of f passes). Answer with
     * ekv_repl_primary_respond(p, peer_id, ...) at any time, in any order. NULL = refuse RPC. */
    void (*on_request)(void *ctx, uint64_t peer_id, Edgekv__Frame *f);
    size_t rpc_send_queue_max; /* see above (default 64 MiB; >= 1 MiB) */
} ekv_repl_primary_opts_t;

/* Bind and listen. 0 or EKV_EINTERNAL (bind failed; logged). */
int ekv_repl_primary_start(ekv_repl_primary_t **out, const ekv_repl_primary_opts_t *o);
/* The bound port. */
int ekv_repl_primary_port(const ekv_repl_primary_t *p);
/* New records were committed (loop thread; the store's on_commit hook, via uv_async). */
void ekv_repl_primary_notify(ekv_repl_primary_t *p, uint64_t last_seq);

/*
 * Write acknowledgement policy: cb(ctx, 0) once k replicas have acked seq, cb(ctx,
 * EKV_ESYNC_TIMEOUT) after timeout_ms, cb(ctx, EKV_ESHUTDOWN) when the primary stops or is
 * fenced. Waits complete in seq order. Loop thread. 0, or EKV_ENOMEM (cb not called).
 */
/* Send an RPC answer to the link peer_id. 0, or EKV_ESHUTDOWN when that link is gone (the
 * edge has already failed the request). Loop thread. */
int ekv_repl_primary_respond(ekv_repl_primary_t *p, uint64_t peer_id, Edgekv__Response *resp);
/* Leave edge-only mode (a promoted replica now serves replicas too). */
void ekv_repl_primary_set_edge_only(ekv_repl_primary_t *p, int edge_only);

/* Another channel (a fence probe's answer) showed a higher epoch: same as receiving it on a
 * replica link. Loop thread. */
void ekv_repl_primary_fence(ekv_repl_primary_t *p, uint64_t epoch, const char *by_node);

typedef void (*ekv_repl_sync_cb)(void *ctx, int status);
int ekv_repl_primary_wait(ekv_repl_primary_t *p, uint64_t seq, int k, int timeout_ms,
                          ekv_repl_sync_cb cb, void *ctx);

typedef struct {
    char node_id[64];
    char addr[64];
    const char *kind;  /* "replica", "edge-stream" (keys-only stream), "edge-rpc" */
    const char *state; /* "handshake", "snapshot", "streaming", "rpc" */
    uint64_t acked_seq, sent_seq;
    uint64_t lag_seqs;
    int64_t lag_ms;
} ekv_repl_peer_info_t;

typedef struct {
    uint64_t connected; /* links now */
    uint64_t accepted;  /* links since start */
    uint64_t dropped_timeout, dropped_lag, dropped_protocol;
    uint64_t snapshots_sent, resumes;
    uint64_t sync_timeouts, sync_waiting;
    uint64_t rpc_pauses; /* RPC links whose reading stopped for answers not being read */
} ekv_repl_primary_stats_t;

/* Fill up to cap peers; returns how many replicas are linked (a peer being dropped, its link
 * closing, is not). Loop thread. */
size_t ekv_repl_primary_peers(const ekv_repl_primary_t *p, ekv_repl_peer_info_t *out, size_t cap);
void ekv_repl_primary_stats(const ekv_repl_primary_t *p, ekv_repl_primary_stats_t *out);

/* Stop: close the listener and every link, fail pending waits with EKV_ESHUTDOWN. done runs
 * on the loop once every handle is closed and no read job is in flight. */
void ekv_repl_primary_stop(ekv_repl_primary_t *p, void (*done)(void *arg), void *arg);
/* After done ran (or the loop ended): join the reader pool and free. NULL is a no-op. */
void ekv_repl_primary_free(ekv_repl_primary_t *p);

#endif
