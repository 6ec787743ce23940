/*
 * server/api/do/ - Durable Objects (docs/DURABLE-OBJECTS.md): namespaces, object ids,
 * strongly consistent per-object storage, alarms and calls.
 *
 *   do.h          the runtime (this file): started on the node that owns the objects (the
 *                 single writer: standalone, or the primary), and the route handlers
 *   do_int.h      what the files below share (namespace registry, objects, ops)
 *   registry.c    namespaces in memory (loaded from the store), their REST endpoints
 *   object.c      one object: the storage queue (ops run one at a time, in arrival order),
 *                 the overlay of writes not yet durable and the output gate
 *   storage.c     the storage endpoints: parse, then queue on the object
 *   objects.c     the objects list and the id endpoint
 *   alarms.c      the alarm endpoints, the schedule (a heap + one timer) and delivery
 *   calls.c       fetch forwarding to the namespace's script URL: the call queue (one call
 *                 at a time per object, bounded wait)
 *   ids, storage_req, txn, list_opts, alarm_sched   pure parsers and rules (unit tested)
 *   ptable        the partition table for owners across the cluster (pure; not wired yet)
 *
 * THREAD: loop thread only. Store reads go through the app's reader pool, writes through the
 * committer; completions come back on the loop.
 *
 * CONSISTENCY: every storage op of one object is linearizable. Ops of an object execute one
 * at a time in arrival order against (overlay of pending writes) + store; a write is handed
 * to the committer at once (so the next op need not wait for the fsync) and its effect goes
 * to the overlay; every reply waits until all writes the op observed or made are durable
 * (output gate). A write that fails to commit resets the object: the replies it gated get
 * 500 EKV_EDO_RESET.
 */
#ifndef EKV_SERVER_API_DO_DO_H
#define EKV_SERVER_API_DO_DO_H

#include "server/api/api.h"

typedef struct ekv_do_s ekv_do_t;

/* A read of one object's stored keys or of a key range, on another node's store (an owner
 * that is not the primary; see ekv_do_cluster_t.read). In: the object, and either keys[i]
 * for every i with want[i] set, or the list range. Out (set before done runs): rc, and
 * vals[i]/vlens[i]/found[i] (malloc'd values), or *list_out. */
typedef struct ekv_do_rread_s {
    const uint8_t *dons, *objid;
    int list;
    size_t nkeys;
    const char *const *keys;
    const size_t *klens;
    const int *want;
    const char *lo, *hi;
    size_t lo_len, hi_len;
    int has_hi, reverse;
    size_t limit;
    int rc;
    char **vals;
    size_t *vlens;
    int *found;
    ekv_do_list_t *list_out;
    void (*done)(struct ekv_do_rread_s *r); /* on the loop, exactly once after read() == 0 */
    void *udata;
} ekv_do_rread_t;

/*
 * What the node layer tells the runtime about ownership (docs/DURABLE-OBJECTS.md "Owners
 * across the cluster"). Zeroed = a single owner of everything with the local store
 * (standalone). Loop thread.
 */
typedef struct {
    void *ctx;
    /* 1 when partition p is this node's now (served, or its alarms being loaded: the node
     * layer parks its calls meanwhile; objects of other partitions never reach the runtime,
     * their alarms are not loaded nor scheduled). NULL: all. */
    int (*here)(void *ctx, uint32_t p);
    /* Fencing: every write of partition p carries this epoch (NULL: writes are not fenced). */
    uint64_t (*epoch)(void *ctx, uint32_t p);
    /* 1 while this node's lease is valid: reads are answered from local state. 0: an op's
     * answer is confirmed by the primary first (an epoch check through the committer).
     * NULL: always leased. */
    int (*leased)(void *ctx);
    /* Remote storage (an owner that is not the primary). NULL: the local store.
     *   commit: like ekv_store_write_submit (the DO_WRITE / DO_FENCE op); 0 or an error
     *           (job.done is then not called);
     *   read:   0 (r->done will run) or an error. */
    int (*commit)(void *ctx, ekv_write_t *w);
    int (*read)(void *ctx, ekv_do_rread_t *r);
} ekv_do_cluster_t;

typedef struct {
    int call_wait_ms;        /* a call waits at most this for the object's earlier calls (10000) */
    int call_timeout_ms;     /* one call to the upstream, total (30000) */
    size_t call_queue_max;   /* calls waiting per object before 503 (1000) */
    int alarm_retry_base_ms; /* first alarm retry delay (2000, workerd's) */
    size_t max_body_bytes;   /* upstream answer size cap (32 MiB) */
    ekv_do_cluster_t cluster;
    int no_store; /* an owner without a store (an edge): namespaces come from
                   * ekv_do_ns_upsert, alarms from ekv_do_alarm_load */
} ekv_do_opts_t;

/* Start the runtime on app (app->dos): load namespaces and alarms from the store (a blocking
 * read: start-up or promotion only), arm the alarm timer. 0 or an error (logged). */
int ekv_do_start(ekv_app_t *app, const ekv_do_opts_t *o);
/* Stop: calls in flight are cancelled (their clients get 503), timers closed; done(arg)
 * runs on the loop once every handle is closed. */
void ekv_do_stop(ekv_do_t *d, void (*done)(void *arg), void *arg);

/* 1 until ekv_do_stop was called. */
int ekv_do_serving(const ekv_do_t *d);

/* ---- ownership changes (node layer) ---- */
/* Partitions set in `parts` (bitmap, bit p = byte p/8 bit p%8) are no longer served here:
 * their objects' queued ops and waiting calls get 503 EKV_EDO_MOVED (not applied), their
 * alarms leave the schedule; ops already running finish (their writes are fenced). */
void ekv_do_partitions_lost(ekv_do_t *d, const uint8_t *parts);
/* An alarm of a partition gained here (loaded from the primary's store). */
void ekv_do_alarm_load(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN],
                       const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                       size_t name_len);
/* Namespaces on an owner without a store, as the change stream brings them. */
void ekv_do_ns_upsert(ekv_do_t *d, const ekv_do_ns_t *ns);
void ekv_do_ns_remove(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN]);
/* 1 when the namespace exists and is not being created or deleted (an owner's commit). */
int ekv_do_ns_live(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN]);
/* Fenced writes (EKV_EDO_MOVED) this runtime saw, for metrics. */
uint64_t ekv_do_fenced_count(const ekv_do_t *d);

/* /metrics lines (edgekv_do_*). */
int ekv_do_metrics(ekv_do_t *d, ekv_buf_t *out);

/* Route handlers (server/api/routes.c). */
void ekv_h_do_ns_list(ekv_call_t *c);
void ekv_h_do_ns_get(ekv_call_t *c);
void ekv_h_do_ns_create(ekv_call_t *c);
void ekv_h_do_ns_update(ekv_call_t *c);
void ekv_h_do_ns_delete(ekv_call_t *c);
void ekv_h_do_objects_list(ekv_call_t *c);
void ekv_h_do_object_id(ekv_call_t *c);
void ekv_h_do_storage_get(ekv_call_t *c);
void ekv_h_do_storage_put(ekv_call_t *c);
void ekv_h_do_storage_delete(ekv_call_t *c);
void ekv_h_do_storage_list(ekv_call_t *c);
void ekv_h_do_storage_delete_all(ekv_call_t *c);
void ekv_h_do_storage_txn(ekv_call_t *c);
void ekv_h_do_alarm_get(ekv_call_t *c);
void ekv_h_do_alarm_put(ekv_call_t *c);
void ekv_h_do_alarm_delete(ekv_call_t *c);
void ekv_h_do_fetch(ekv_call_t *c);

#endif
