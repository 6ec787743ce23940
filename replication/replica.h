/*
 * replica.h - the replica's side of replication: follows a primary over the internal port,
 * applies its change log (or a snapshot first), acks what is durable.
 *
 * State machine (every transition is logged as msg="replica state" from=.. to=..):
 *
 *   connecting --connected--> handshake --Hello--> streaming   (resume at last_applied + 1)
 *        ^                        |  \--Hello, SnapshotBegin--> snapshot --SnapshotEnd--> streaming
 *        |                        v
 *        +------timer------- backoff <--- any error, timeout, or link loss, from any state
 *
 * Candidates: --primary lists one or more addresses; a link that fails before streaming (no
 * answer, not a primary, stale epoch) moves to the next one. Backoff is exponential from
 * 100 ms, capped at 5 s, with jitter (50-100% of the step).
 *
 * Applying: frames are queued (bounded in bytes: reading pauses above 64 MiB) and applied in
 * order by ONE worker thread, each ChangeBatch through ekv_store_apply_records (records and
 * last_seq in one WriteBatch: a crash never skips or repeats a record). After each durable
 * apply the loop acks the applied seq and calls on_applied (cache and catalog upkeep).
 * Snapshots go through ekv_store_ingest_*; a snapshot cut short is restarted from the
 * beginning on the next link (the ingest marker makes the half-written state visible).
 *
 * Threads: loop thread, except the apply jobs.
 */
#ifndef EKV_REPLICATION_REPLICA_H
#define EKV_REPLICATION_REPLICA_H

#include "repl.pb-c.h"
#include "storage/store.h"

#include <stdint.h>
#include <uv.h>

typedef struct ekv_repl_replica_s ekv_repl_replica_t;

/* Histogram bucket upper bounds (ms) of the apply delay; the last bucket is +Inf. */
#define EKV_REPL_LAG_BUCKETS 16
extern const int64_t ekv_repl_lag_bucket_ms[EKV_REPL_LAG_BUCKETS - 1];

typedef struct {
    uv_loop_t *loop;
    ekv_store_t *store; /* opened with opts.replica = 1 */
    /* The cluster secret (auth.h), proved on every link; borrowed. NULL = none (tests). */
    struct ekv_repl_auth_s *auth;
    const char *node_id;
    const char *primaries;        /* "host:port[,host:port...]" */
    int primary_from_coordinator; /* primaries may be empty: set_primary names one later */
    int heartbeat_ms;             /* keepalive acks (default 1000) */
    int timeout_ms;               /* a silent primary is dropped after this (default 10000) */
    ekv_node_state_t *node; /* the owner's copy; updated here (loop) after each durable save */
    void *ctx;
    /* Loop: changes just applied durably (an edge: just received), in seq order, as their
     * keys-only view (cache invalidation, catalog upkeep): a replica's records reduced to
     * their KeyChange, an edge's KeyChanges as received. Valid during the call only. */
    void (*on_applied)(void *ctx, Edgekv__KeyChange *const *changes, size_t n);
    /* Loop: ekv_repl_replica_applied_seq() moved (after every on_applied of the step). */
    void (*on_progress)(void *ctx);
    /* Apply thread, right after a snapshot ingest ended and before anything else is applied:
     * load what must be rebuilt from the store (e.g. the catalog). Returns an opaque pointer. */
    void *(*after_ingest_work)(void *ctx);
    /* Loop: receives that pointer (swap it in, drop caches). */
    void (*after_ingest_done)(void *ctx, void *loaded);
    /* Keys-only follower (an edge): store is NULL, Hello says role EDGE + keys_only, nothing
     * is written anywhere. KeyChangeBatch frames go to on_applied; a snapshot is the
     * catalog only: on_catalog_begin, on_catalog_entry per meta entry, then
     * after_ingest_done(ctx, NULL). Everything runs on the loop; node state is not saved. */
    int keys_only;
    void (*on_catalog_begin)(void *ctx);
    void (*on_catalog_entry)(void *ctx, const char *key, size_t klen, const char *val, size_t vlen);
} ekv_repl_replica_opts_t;

typedef struct {
    const char *state; /* connecting, handshake, snapshot, streaming, backoff, stopped */
    char primary_addr[300];
    char primary_node_id[64];
    char primary_url[256];
    uint64_t applied_seq;
    uint64_t primary_latest_seq;
    uint64_t lag_seqs;
    int64_t lag_ms;
    uint64_t snapshots, snapshot_attempts, connects, reconnects;
    uint64_t discarded_records;                 /* at the last history switch */
    int64_t apply_lag_p50_ms, apply_lag_p99_ms; /* primary commit -> durable here, last 4096 */
    uint64_t apply_lag_samples;
    /* the same delay, over every record since start: cumulative counts per bucket */
    uint64_t apply_lag_hist[EKV_REPL_LAG_BUCKETS]; /* <= ekv_repl_lag_bucket_ms[i]; last +Inf */
    uint64_t apply_lag_sum_ms;
} ekv_repl_replica_info_t;

/* Validate the primaries list and start connecting. 0, EKV_EBAD_REQUEST (bad address list,
 * logged) or EKV_ENOMEM. */
int ekv_repl_replica_start(ekv_repl_replica_t **out, const ekv_repl_replica_opts_t *o);
/* The coordinator names the primary ("host:port"): it becomes the current candidate (added
 * when missing) and stays it (failures retry it, they no longer move on to the next
 * candidate); a link to another address is closed, and a waiting backoff is cut short, so
 * the next attempt goes there at once. 0 or EKV_EBAD_REQUEST. */
int ekv_repl_replica_set_primary(ekv_repl_replica_t *r, const char *addr);
void ekv_repl_replica_info(const ekv_repl_replica_t *r, ekv_repl_replica_info_t *out);
/* The last seq applied (a keys-only follower: seen). Cheap. */
uint64_t ekv_repl_replica_applied_seq(const ekv_repl_replica_t *r);
/* Stop following (shutdown or promotion): close the link, drop queued frames, wait for the
 * apply job in flight. done runs on the loop when nothing is left; afterwards the store holds
 * exactly the records acked so far (or more, never a partial record). */
void ekv_repl_replica_stop(ekv_repl_replica_t *r, void (*done)(void *arg), void *arg);
/* After done ran: join the apply thread and free. NULL is a no-op. */
void ekv_repl_replica_free(ekv_repl_replica_t *r);

#endif
