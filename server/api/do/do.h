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

typedef struct {
    int call_wait_ms;        /* a call waits at most this for the object's earlier calls (10000) */
    int call_timeout_ms;     /* one call to the upstream, total (30000) */
    size_t call_queue_max;   /* calls waiting per object before 503 (1000) */
    int alarm_retry_base_ms; /* first alarm retry delay (2000, workerd's) */
    size_t max_body_bytes;   /* upstream answer size cap (32 MiB) */
} ekv_do_opts_t;

/* Start the runtime on app (app->dos): load namespaces and alarms from the store (a blocking
 * read: start-up or promotion only), arm the alarm timer. 0 or an error (logged). */
int ekv_do_start(ekv_app_t *app, const ekv_do_opts_t *o);
/* Stop: calls in flight are cancelled (their clients get 503), timers closed; done(arg)
 * runs on the loop once every handle is closed. */
void ekv_do_stop(ekv_do_t *d, void (*done)(void *arg), void *arg);

/* 1 until ekv_do_stop was called. */
int ekv_do_serving(const ekv_do_t *d);

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
