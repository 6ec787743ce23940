/*
 * primary.c - replica links on the primary (see primary.h and docs/REPLICATION.md).
 *
 * One `peer_t` per accepted connection. Its sender is a small pump: while the link's send
 * queue is under the high-water mark and no read job is in flight, it submits the next read
 * (a snapshot chunk, or log records from next_seq) to the reader pool; the job also encodes
 * the frames, so the loop only queues bytes. When the log is caught up the pump idles until
 * ekv_repl_primary_notify() (new commits) or the heartbeat timer.
 */
#include "replication/primary.h"

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/workq.h"
#include "replication/auth.h"
#include "replication/link.h"
#include "replication/snapshot_wire.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define LOG_READ_MAX_RECORDS 4096
#define LOG_READ_MAX_BYTES   (4u << 20)
#define SNAP_CHUNK_BYTES     (1u << 20)
#define LAG_RING             256
#define READER_THREADS       2
#define READER_QUEUE         256

typedef enum { PS_HANDSHAKE, PS_SNAPSHOT_WAIT, PS_SNAPSHOT, PS_STREAMING, PS_RPC } peer_state_t;
typedef enum { PK_REPLICA, PK_EDGE_STREAM, PK_EDGE_RPC } peer_kind_t;
typedef enum { JOB_LOG, JOB_SNAP_OPEN, JOB_SNAP_CHUNK } job_kind_t;

typedef struct shared_snap_s {
    ekv_snapshot_t *snap; /* NULL while opening */
    uint64_t seq;
    int refs;
} shared_snap_t;

typedef struct peer_s peer_t;

typedef struct held_req_s {
    Edgekv__Frame *f;
    struct held_req_s *next;
} held_req_t;

typedef struct {
    ekv_job_t job;
    job_kind_t kind;
    peer_t *peer;
    ekv_repl_primary_t *p;
    uint64_t epoch;
    /* JOB_LOG in / out */
    uint64_t from_seq;
    uint64_t last_seq; /* last record encoded */
    int64_t first_commit_ms;
    size_t count;
    /* JOB_SNAP_CHUNK in / out */
    int pos_cf;
    char *pos_key; /* malloc'd copy, replaced by the job's result */
    size_t pos_key_len;
    int snap_done;
    /* JOB_SNAP_OPEN out */
    ekv_snapshot_t *opened;
    /* common out */
    int rc;
    ekv_buf_t out; /* encoded frames */
} read_job_t;

struct peer_s {
    ekv_repl_link_t link; /* first: the link callbacks get &peer->link */
    ekv_repl_primary_t *p;
    peer_t *next, *prev;
    peer_state_t state;
    peer_kind_t kind;
    int pinning; /* counted in npinning */
    uint64_t id; /* unique per primary: RPC answers find their link by it */
    char node_id[64];
    uint64_t connected_ns;
    uint64_t last_send_ns;
    int link_closed; /* on_close ran: free once no job is in flight */
    int job_busy;
    int rpc_paused; /* RPC link: requests not read until its answers drain */
    /* requests already read when it paused (at most one read buffer's worth, or one frame),
     * run in order once the answers drain */
    struct held_req_s *held_head, *held_tail;
    read_job_t job;
    int pin_id;         /* -1 = none */
    uint64_t next_seq;  /* streaming: next record to read and send */
    uint64_t sent_seq;  /* last seq queued to the socket */
    uint64_t acked_seq; /* last seq the replica acked */
    /* snapshot */
    shared_snap_t *snap;
    uint64_t chunk_seq, entries;
    XXH64_state_t *xxh;
    /* sent, unacked batches: (last seq, commit time of its first record, when it was sent) */
    struct {
        uint64_t last_seq;
        int64_t first_ms;
        int64_t sent_ms;
    } ring[LAG_RING];
    size_t ring_head, ring_len;
};

typedef struct waiter_s {
    uint64_t seq;
    uint64_t deadline_ns;
    int k;
    ekv_repl_sync_cb cb;
    void *ctx;
    struct waiter_s *next;
} waiter_t;

struct ekv_repl_primary_s {
    ekv_repl_primary_opts_t o;
    uv_tcp_t listener;
    uv_timer_t tick;
    uv_timer_t wait_timer;
    ekv_doneq_t doneq;
    ekv_workq_t readers;
    int port;
    peer_t *peers;
    size_t npeers;
    size_t npinning; /* replica and edge-stream peers: each may hold log pins */
    uint64_t next_peer_id;
    shared_snap_t *snap; /* the snapshot new bootstraps join, if any */
    waiter_t *wh, *wt;   /* sync waiters, in seq order */
    uint64_t latest_seq;
    int64_t latest_commit_ms;
    int fenced, stopping;
    int handles_open;
    int jobs_in_flight;
    void (*stop_done)(void *);
    void *stop_arg;
    ekv_repl_primary_stats_t st;
};

static const char *state_name(peer_state_t s)
{
    switch (s) {
    case PS_HANDSHAKE:
        return "handshake";
    case PS_SNAPSHOT_WAIT:
    case PS_SNAPSHOT:
        return "snapshot";
    case PS_STREAMING:
        return "streaming";
    case PS_RPC:
        return "rpc";
    }
    return "?";
}

static const char *peer_name(const peer_t *pe)
{
    return pe->node_id[0] ? pe->node_id : "?";
}

static void pump(peer_t *pe);
static void check_waiters(ekv_repl_primary_t *p);
static void maybe_stopped(ekv_repl_primary_t *p);

/* ---------------------------------------------------------------- drop / free */

static void snap_release(ekv_repl_primary_t *p, shared_snap_t *ss)
{
    if (!ss || --ss->refs > 0)
        return;
    if (p->snap == ss)
        p->snap = NULL;
    ekv_store_snapshot_close(ss->snap); /* cheap: releases a RocksDB snapshot and a pin */
    free(ss);
}

static void peer_free(peer_t *pe)
{
    ekv_repl_primary_t *p = pe->p;
    if (pe->pin_id >= 0)
        ekv_store_log_unpin(p->o.store, pe->pin_id);
    if (pe->snap)
        snap_release(p, pe->snap);
    if (pe->xxh)
        XXH64_freeState(pe->xxh);
    free(pe->job.pos_key);
    ekv_buf_deinit(&pe->job.out);
    while (pe->held_head) {
        held_req_t *h = pe->held_head;
        pe->held_head = h->next;
        ekv_repl_frame_free(h->f);
        free(h);
    }
    free(pe);
    maybe_stopped(p);
}

static void on_link_close(ekv_repl_link_t *l)
{
    peer_t *pe = (peer_t *)l;
    ekv_repl_primary_t *p = pe->p;
    if (pe->prev)
        pe->prev->next = pe->next;
    else
        p->peers = pe->next;
    if (pe->next)
        pe->next->prev = pe->prev;
    p->npeers--;
    if (pe->pinning)
        p->npinning--;
    p->st.connected = p->npeers;
    p->handles_open--;
    /* a link that never authenticated is logged (rate-limited) by auth.c, not here */
    ekv_log(l->authed ? EKV_LOG_INFO : EKV_LOG_DEBUG, "replica disconnected",
            "replica=%s addr=%s state=%s acked_seq=%" PRIu64 " reason=\"%s\"", peer_name(pe),
            l->peer, state_name(pe->state), pe->acked_seq, l->close_reason);
    pe->link_closed = 1;
    if (!pe->job_busy)
        peer_free(pe);
    check_waiters(p); /* a lost replica can only lower the ack floor: re-arm timers */
}

/* Drop a replica for a counted reason (timeout / lag / protocol). */
static void drop(peer_t *pe, const char *reason, int code, const char *detail)
{
    ekv_repl_primary_t *p = pe->p;
    if (pe->link.closing)
        return;
    if (!strcmp(reason, "timeout"))
        p->st.dropped_timeout++;
    else if (!strcmp(reason, "lag"))
        p->st.dropped_lag++;
    else
        p->st.dropped_protocol++;
    ekv_log_warn("replica dropped",
                 "replica=%s addr=%s reason=%s detail=\"%s\" acked_seq=%" PRIu64
                 " latest_seq=%" PRIu64,
                 peer_name(pe), pe->link.peer, reason, detail, pe->acked_seq, p->latest_seq);
    ekv_repl_link_close(&pe->link, p->o.node->epoch, code, "%s", detail);
}

/* ---------------------------------------------------------------- sending */

static void send_frame(peer_t *pe, Edgekv__Frame *f)
{
    f->epoch = pe->p->o.node->epoch;
    pe->last_send_ns = ekv_clock_mono_ns();
    ekv_repl_link_send(&pe->link, f);
}

/* The store's last seq; 0 on a listener without a store (an edge's RPC listener). */
static uint64_t store_seq(const ekv_repl_primary_t *p)
{
    return p->o.store ? ekv_store_last_seq(p->o.store) : 0;
}

static void send_hello(peer_t *pe)
{
    ekv_repl_primary_t *p = pe->p;
    Edgekv__Hello h;
    ekv_repl_hello_init(&h);
    h.node_id = (char *)p->o.node_id;
    h.role = EDGEKV__NODE_ROLE__NODE_ROLE_PRIMARY;
    h.last_applied_seq = store_seq(p);
    h.history_id = (char *)p->o.node->history_id;
    h.epoch = p->o.node->epoch;
    h.history2_id = (char *)p->o.node->history2_id;
    h.history2_seq = p->o.node->history2_seq;
    h.advertise_url = (char *)(p->o.advertise_url ? p->o.advertise_url : "");
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &h;
    send_frame(pe, &f);
}

static void send_heartbeat(peer_t *pe)
{
    ekv_repl_primary_t *p = pe->p;
    Edgekv__Heartbeat hb = EDGEKV__HEARTBEAT__INIT;
    hb.latest_seq = store_seq(p);
    hb.latest_commit_time_ms = p->latest_commit_ms;
    hb.now_ms = ekv_clock_now_ms();
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_HEARTBEAT;
    f.heartbeat = &hb;
    send_frame(pe, &f);
}

static void ring_push(peer_t *pe, uint64_t last_seq, int64_t first_ms)
{
    if (pe->ring_len == LAG_RING) { /* full: extend the newest entry (keeps the oldest time) */
        pe->ring[(pe->ring_head + pe->ring_len - 1) % LAG_RING].last_seq = last_seq;
        return;
    }
    size_t i = (pe->ring_head + pe->ring_len) % LAG_RING;
    pe->ring[i].last_seq = last_seq;
    pe->ring[i].first_ms = first_ms;
    pe->ring[i].sent_ms = ekv_clock_now_ms();
    pe->ring_len++;
}

static void ring_ack(peer_t *pe, uint64_t acked)
{
    while (pe->ring_len && pe->ring[pe->ring_head].last_seq <= acked) {
        pe->ring_head = (pe->ring_head + 1) % LAG_RING;
        pe->ring_len--;
    }
}

/* Replication lag in ms: age (since its commit) of the oldest record sent and not acked. */
static int64_t peer_lag_ms(const peer_t *pe)
{
    if (!pe->ring_len)
        return 0;
    int64_t age = ekv_clock_now_ms() - pe->ring[pe->ring_head].first_ms;
    return age > 0 ? age : 0;
}

/* How long the oldest unacked batch has been waiting for its ack since it was SENT: a replica
 * catching up acks each batch quickly even when the records are old; a stuck one does not. */
static int64_t peer_ack_wait_ms(const peer_t *pe)
{
    if (!pe->ring_len)
        return 0;
    int64_t age = ekv_clock_now_ms() - pe->ring[pe->ring_head].sent_ms;
    return age > 0 ? age : 0;
}

/* ---------------------------------------------------------------- read jobs (reader pool) */

/* Encode a run of entries of one column family as one SnapshotChunk frame. */
static int encode_chunk_run(read_job_t *j, const ekv_snapshot_chunk_t *ch, size_t from, size_t to)
{
    peer_t *pe = j->peer;
    size_t n = to - from;
    Edgekv__KeyValue *kvs = calloc(n, sizeof(*kvs));
    Edgekv__KeyValue **ptrs = calloc(n, sizeof(*ptrs));
    if (!kvs || !ptrs) {
        free(kvs);
        free(ptrs);
        return EKV_ENOMEM;
    }
    const char *cf = ekv_repl_snapshot_cf_name(ch->entries[from].cf);
    for (size_t i = 0; i < n; i++) {
        const ekv_snapshot_entry_t *e = &ch->entries[from + i];
        edgekv__key_value__init(&kvs[i]);
        kvs[i].key.data = (uint8_t *)e->key;
        kvs[i].key.len = e->key_len;
        kvs[i].value.data = (uint8_t *)e->value;
        kvs[i].value.len = e->value_len;
        ptrs[i] = &kvs[i];
        ekv_repl_snapshot_hash_entry(pe->xxh, cf, e->key, e->key_len, e->value, e->value_len);
    }
    Edgekv__SnapshotChunk c = EDGEKV__SNAPSHOT_CHUNK__INIT;
    c.chunk_seq = pe->chunk_seq++;
    c.column_family = (char *)cf;
    c.n_entries = n;
    c.entries = ptrs;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.epoch = j->epoch;
    f.body_case = EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK;
    f.snapshot_chunk = &c;
    int rc = ekv_repl_frame_encode(&f, &j->out);
    pe->entries += n;
    free(kvs);
    free(ptrs);
    return rc;
}

static void job_work(ekv_job_t *job)
{
    read_job_t *j = (read_job_t *)job;
    ekv_repl_primary_t *p = j->p;
    ekv_buf_reset(&j->out);
    j->count = 0;
    if (j->kind == JOB_LOG) {
        ekv_log_batch_t b = {0};
        j->rc = ekv_store_log_read(p->o.store, j->from_seq, LOG_READ_MAX_RECORDS,
                                   LOG_READ_MAX_BYTES, &b);
        if (j->rc == 0 && b.count) {
            /* replicas get the log bytes as they are, edges their keys-only view */
            j->rc = j->peer->kind == PK_EDGE_STREAM
                        ? ekv_repl_encode_key_change_batch(j->epoch, b.recs, b.count, &j->out)
                        : ekv_repl_encode_change_batch(j->epoch, b.recs, b.count, &j->out);
            j->count = b.count;
            j->last_seq = b.recs[b.count - 1].seq;
            j->first_commit_ms = ekv_repl_record_commit_ms(b.recs[0].data, b.recs[0].len);
        }
        ekv_log_batch_clear(&b);
    } else if (j->kind == JOB_SNAP_OPEN) {
        j->rc = ekv_store_snapshot_open(p->o.store, &j->opened);
    } else {
        ekv_snapshot_chunk_t ch = {0};
        ekv_snapshot_pos_t after = {j->pos_cf, j->pos_key, j->pos_key_len};
        j->rc = ekv_store_snapshot_next(j->peer->snap->snap, &after, SNAP_CHUNK_BYTES, &ch);
        if (j->rc == 0 && j->peer->kind == PK_EDGE_STREAM) {
            /* edges get the catalog only (meta comes first in snapshot order) */
            size_t keep = 0;
            while (keep < ch.count && ch.entries[keep].cf == EKV_SNAP_CF_META)
                keep++;
            if (keep < ch.count) {
                ekv_snapshot_chunk_t tail = ch;
                tail.entries += keep;
                tail.count -= keep;
                for (size_t i = 0; i < tail.count; i++)
                    free(tail.entries[i].key);
                ch.count = keep;
                ch.done = 1;
                if (keep)
                    ch.next =
                        (ekv_snapshot_pos_t){ch.entries[keep - 1].cf, ch.entries[keep - 1].key,
                                             ch.entries[keep - 1].key_len};
            }
        }
        if (j->rc == 0) {
            size_t run = 0;
            for (size_t i = 1; i <= ch.count && j->rc == 0; i++) {
                if (i == ch.count || ch.entries[i].cf != ch.entries[run].cf) {
                    j->rc = encode_chunk_run(j, &ch, run, i);
                    run = i;
                }
            }
            j->count = ch.count;
            j->snap_done = ch.done;
            if (ch.count) {
                char *k = ekv_memdup_z(ch.next.key, ch.next.key_len);
                if (!k) {
                    j->rc = EKV_ENOMEM;
                } else {
                    free(j->pos_key);
                    j->pos_key = k;
                    j->pos_key_len = ch.next.key_len;
                    j->pos_cf = ch.next.cf;
                }
            }
        }
        ekv_snapshot_chunk_clear(&ch);
    }
}

static void start_streaming(peer_t *pe, uint64_t from_seq);

static void job_done(ekv_job_t *job)
{
    read_job_t *j = (read_job_t *)job;
    peer_t *pe = j->peer;
    ekv_repl_primary_t *p = j->p;
    pe->job_busy = 0;
    p->jobs_in_flight--;
    if (j->kind == JOB_SNAP_OPEN) {
        shared_snap_t *ss = pe->snap;
        if (j->rc) {
            ekv_log_error("cannot open a snapshot", "err=%s", ekv_err_name(j->rc));
            if (p->snap == ss)
                p->snap = NULL; /* later bootstraps open a new one */
        } else {
            ss->snap = j->opened;
            ss->seq = ekv_store_snapshot_seq(j->opened);
        }
        /* every peer waiting on this snapshot starts now (or is dropped) */
        for (peer_t *q = p->peers; q; q = q->next) {
            if (q->snap != ss || q->state != PS_SNAPSHOT_WAIT || q == pe)
                continue;
            if (j->rc)
                drop(q, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL,
                     "snapshot open failed");
            else
                pump(q);
        }
        if (pe->link_closed) {
            peer_free(pe);
            return;
        }
        if (j->rc) {
            drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL,
                 "snapshot open failed");
            return;
        }
        pump(pe);
        return;
    }
    if (pe->link_closed) {
        peer_free(pe);
        return;
    }
    if (pe->link.closing)
        return;
    if (j->rc == EKV_ELOG_GAP) {
        /* the record asked for is gone: never skip silently */
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_HISTORY_MISMATCH,
             "log record not retained; reconnect for a snapshot");
        return;
    }
    if (j->rc) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, ekv_err_name(j->rc));
        return;
    }
    if (j->out.len) {
        size_t len;
        char *bytes = ekv_buf_take(&j->out, &len);
        pe->last_send_ns = ekv_clock_mono_ns();
        ekv_repl_link_send_raw(&pe->link, bytes, len);
        if (pe->link.closing)
            return;
    }
    if (j->kind == JOB_LOG) {
        if (j->count) {
            pe->next_seq = j->last_seq + 1;
            pe->sent_seq = j->last_seq;
            ring_push(pe, j->last_seq,
                      j->first_commit_ms ? j->first_commit_ms : ekv_clock_now_ms());
        }
    } else if (j->snap_done) {
        Edgekv__SnapshotEnd e = EDGEKV__SNAPSHOT_END__INIT;
        e.snapshot_seq = pe->snap->seq;
        e.chunk_count = pe->chunk_seq;
        e.entry_count = pe->entries;
        e.checksum = XXH64_digest(pe->xxh);
        Edgekv__Frame f = EDGEKV__FRAME__INIT;
        f.body_case = EDGEKV__FRAME__BODY_SNAPSHOT_END;
        f.snapshot_end = &e;
        send_frame(pe, &f);
        p->st.snapshots_sent++;
        ekv_log_info("snapshot sent",
                     "replica=%s snapshot_seq=%" PRIu64 " chunks=%" PRIu64 " entries=%" PRIu64,
                     peer_name(pe), pe->snap->seq, pe->chunk_seq, pe->entries);
        uint64_t from = pe->snap->seq + 1;
        start_streaming(pe, from);
        return;
    }
    pump(pe);
}

static void submit(peer_t *pe, job_kind_t kind)
{
    ekv_repl_primary_t *p = pe->p;
    read_job_t *j = &pe->job;
    j->job.work = job_work;
    j->job.done = job_done;
    j->job.next = NULL;
    j->kind = kind;
    j->peer = pe;
    j->p = p;
    j->epoch = p->o.node->epoch;
    j->from_seq = pe->next_seq;
    int rc = ekv_workq_submit(&p->readers, &j->job);
    if (rc) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, "reader queue full");
        return;
    }
    pe->job_busy = 1;
    p->jobs_in_flight++;
}

/* Queue the next read if there is room and nothing is in flight. */
static void pump(peer_t *pe)
{
    ekv_repl_primary_t *p = pe->p;
    if (pe->link.closing || pe->job_busy || p->stopping)
        return;
    if (ekv_repl_link_queued(&pe->link) >= EKV_REPL_SEND_HIGH_WATER)
        return; /* on_drain calls us again */
    switch (pe->state) {
    case PS_HANDSHAKE:
    case PS_RPC:
        return;
    case PS_SNAPSHOT_WAIT:
        if (!pe->snap->snap)
            return; /* still opening (another peer's job) */
        pe->state = PS_SNAPSHOT;
        {
            Edgekv__SnapshotBegin b = EDGEKV__SNAPSHOT_BEGIN__INIT;
            b.snapshot_seq = pe->snap->seq;
            b.history_id = (char *)p->o.node->history_id;
            Edgekv__Frame f = EDGEKV__FRAME__INIT;
            f.body_case = EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN;
            f.snapshot_begin = &b;
            send_frame(pe, &f);
            ekv_log_info("snapshot start", "replica=%s snapshot_seq=%" PRIu64, peer_name(pe),
                         pe->snap->seq);
        }
        submit(pe, JOB_SNAP_CHUNK);
        return;
    case PS_SNAPSHOT:
        submit(pe, JOB_SNAP_CHUNK);
        return;
    case PS_STREAMING:
        if (pe->next_seq <= ekv_store_last_seq(p->o.store))
            submit(pe, JOB_LOG);
        return;
    }
}

/* An RPC link whose answers pile up (the edge does not read them): stop reading its
 * requests until they drain (on_link_drain). Requests read meanwhile are held, not run, so
 * the link's answers stay within the cap plus those of the requests already running. */
static void rpc_backpressure(peer_t *pe)
{
    if (pe->rpc_paused || pe->link.closing ||
        ekv_repl_link_queued(&pe->link) < pe->p->o.rpc_send_queue_max)
        return;
    pe->rpc_paused = 1;
    pe->p->st.rpc_pauses++;
    ekv_repl_link_pause(&pe->link);
    ekv_log_info("rpc link paused: the edge is not reading its answers",
                 "edge=%s queued_bytes=%zu max=%zu", peer_name(pe), ekv_repl_link_queued(&pe->link),
                 pe->p->o.rpc_send_queue_max);
}

/* An edge's request: run it now, or hold it while the link is paused. Takes f. */
static void rpc_request(peer_t *pe, Edgekv__Frame *f)
{
    if (pe->rpc_paused) {
        held_req_t *h = malloc(sizeof(*h));
        if (!h) {
            ekv_repl_frame_free(f);
            drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, "out of memory");
            return;
        }
        h->f = f;
        h->next = NULL;
        if (pe->held_tail)
            pe->held_tail->next = h;
        else
            pe->held_head = h;
        pe->held_tail = h;
        return;
    }
    pe->p->o.on_request(pe->p->o.ctx, pe->id, f); /* takes f */
    rpc_backpressure(pe);
}

static void on_link_drain(ekv_repl_link_t *l)
{
    peer_t *pe = (peer_t *)l;
    if (pe->rpc_paused) { /* under the low-water mark again: held requests, then reading */
        pe->rpc_paused = 0;
        while (pe->held_head && !pe->rpc_paused && !pe->link.closing) {
            held_req_t *h = pe->held_head;
            pe->held_head = h->next;
            if (!pe->held_head)
                pe->held_tail = NULL;
            Edgekv__Frame *f = h->f;
            free(h);
            rpc_request(pe, f);
        }
        if (!pe->rpc_paused) {
            pe->link.last_recv_ns = ekv_clock_mono_ns(); /* silence is counted from now */
            ekv_repl_link_resume(&pe->link);
        }
    }
    pump(pe);
}

static void start_streaming(peer_t *pe, uint64_t from_seq)
{
    ekv_repl_primary_t *p = pe->p;
    int rc = pe->pin_id >= 0 ? ekv_store_log_pin_move(p->o.store, pe->pin_id, from_seq)
                             : ekv_store_log_pin(p->o.store, from_seq, &pe->pin_id);
    if (pe->snap) {
        snap_release(p, pe->snap);
        pe->snap = NULL;
    }
    if (rc) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_HISTORY_MISMATCH,
             rc == EKV_EBUSY ? "no free log pin" : "log trimmed past the resume point");
        return;
    }
    pe->state = PS_STREAMING;
    pe->next_seq = from_seq;
    pe->sent_seq = pe->acked_seq = from_seq - 1;
    send_heartbeat(pe); /* tells the replica how far behind it is */
    pump(pe);
}

static void start_snapshot(peer_t *pe)
{
    ekv_repl_primary_t *p = pe->p;
    pe->xxh = XXH64_createState();
    if (!pe->xxh) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, "out of memory");
        return;
    }
    XXH64_reset(pe->xxh, 0);
    pe->state = PS_SNAPSHOT_WAIT;
    if (p->snap) { /* share the snapshot another bootstrap is reading */
        pe->snap = p->snap;
        pe->snap->refs++;
        ekv_log_info("snapshot shared", "replica=%s snapshot_seq=%" PRIu64 " readers=%d",
                     peer_name(pe), pe->snap->seq, pe->snap->refs);
        pump(pe);
        return;
    }
    shared_snap_t *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, "out of memory");
        return;
    }
    ss->refs = 1;
    p->snap = ss;
    pe->snap = ss;
    submit(pe, JOB_SNAP_OPEN);
}

/* ---------------------------------------------------------------- frames from replicas */

/* Answer every held write EKV_ESHUTDOWN (stop, fence): committed here, never acked. */
static void fail_waiters(ekv_repl_primary_t *p)
{
    while (p->wh) {
        waiter_t *w = p->wh;
        p->wh = w->next;
        p->st.sync_waiting--;
        w->cb(w->ctx, EKV_ESHUTDOWN);
        free(w);
    }
    p->wt = NULL;
}

void ekv_repl_primary_fence(ekv_repl_primary_t *p, uint64_t epoch, const char *by)
{
    if (p->fenced || p->o.edge_only)
        return;
    p->fenced = 1;
    ekv_log_warn("fenced", "epoch=%" PRIu64 " our_epoch=%" PRIu64 " by=%s", epoch, p->o.node->epoch,
                 by);
    /* on_fenced first: it makes the fence durable before any peer (a promoted node's probe
     * among them) is told FENCED, so a prober never stops probing a node that could restart
     * unfenced */
    if (p->o.on_fenced)
        p->o.on_fenced(p->o.ctx, epoch, by);
    for (peer_t *q = p->peers; q; q = q->next)
        ekv_repl_link_close(&q->link, p->o.node->epoch, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_FENCED,
                            "this primary is fenced (epoch %" PRIu64 " exists)", epoch);
    /* waiting writes are committed here but will never be acked by replicas of ours */
    fail_waiters(p);
}

static void on_hello(peer_t *pe, const Edgekv__Frame *f)
{
    ekv_repl_primary_t *p = pe->p;
    const Edgekv__Hello *h = f->hello;
    snprintf(pe->node_id, sizeof(pe->node_id), "%s", h->node_id ? h->node_id : "");
    const ekv_node_state_t *me = p->o.node;
    if (h->role == EDGEKV__NODE_ROLE__NODE_ROLE_PRIMARY && !p->o.edge_only) {
        /* a fence probe from a promoted node (its epoch is not higher, or we would be fenced
         * already): tell it that it is the stale one */
        ekv_repl_link_close(&pe->link, me->epoch, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_FENCED,
                            "this primary has epoch %" PRIu64 ", not older than yours (%" PRIu64
                            ")",
                            me->epoch, f->epoch);
        return;
    }
    if (p->o.edge_only && h->role != EDGEKV__NODE_ROLE__NODE_ROLE_EDGE) {
        ekv_repl_link_close(&pe->link, me->epoch, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_NOT_PRIMARY,
                            "this node is a replica; it serves edges only");
        return;
    }
    /* (a fence probe, above, is answered on its epoch whatever its version) */
    char why_version[128];
    if (!ekv_repl_hello_version_ok(h, why_version, sizeof(why_version))) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_VERSION, why_version);
        return;
    }
    if (h->role == EDGEKV__NODE_ROLE__NODE_ROLE_EDGE && !h->keys_only) {
        if (!p->o.on_request) {
            drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, "no RPC here");
            return;
        }
        pe->kind = PK_EDGE_RPC;
        pe->state = PS_RPC;
        ekv_log_info("edge connected", "edge=%s addr=%s link=rpc", peer_name(pe), pe->link.peer);
        send_hello(pe);
        return;
    }
    if (!p->o.store) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_NOT_PRIMARY,
             "this node holds no data; it serves RPC links only");
        return;
    }
    if (h->role != EDGEKV__NODE_ROLE__NODE_ROLE_REPLICA &&
        h->role != EDGEKV__NODE_ROLE__NODE_ROLE_EDGE) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, "hello without a role");
        return;
    }
    pe->kind = h->role == EDGEKV__NODE_ROLE__NODE_ROLE_EDGE ? PK_EDGE_STREAM : PK_REPLICA;
    if (p->npinning >= EKV_REPL_MAX_REPLICAS) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL,
             "too many replicas and edge streams");
        return;
    }
    p->npinning++;
    pe->pinning = 1;
    uint64_t n = h->last_applied_seq, last = ekv_store_last_seq(p->o.store);
    const char *hid = h->history_id ? h->history_id : "";
    ekv_log_info("replica connected",
                 "replica=%s addr=%s last_applied_seq=%" PRIu64 " history_id=%s epoch=%" PRIu64,
                 peer_name(pe), pe->link.peer, n, hid[0] ? hid : "-", f->epoch);
    send_hello(pe);
    const char *why = NULL;
    if (n == 0)
        why = "new replica";
    else if (!strcmp(hid, me->history_id) && n <= last)
        why = NULL;
    else if (me->history2_id[0] && !strcmp(hid, me->history2_id) && n <= me->history2_seq)
        why = NULL;
    else if (!strcmp(hid, me->history_id) || (me->history2_id[0] && !strcmp(hid, me->history2_id)))
        why = "replica is ahead of this history (it has records this primary never saw)";
    else
        why = "unknown history";
    if (!why) {
        int rc = ekv_store_log_pin(p->o.store, n + 1, &pe->pin_id);
        if (rc == 0) {
            p->st.resumes++;
            ekv_log_info("replica resumes", "replica=%s from_seq=%" PRIu64 " latest_seq=%" PRIu64,
                         peer_name(pe), n + 1, last);
            start_streaming(pe, n + 1);
            return;
        }
        why = rc == EKV_EBUSY ? "no free log pin" : "log trimmed past the resume point";
        if (rc == EKV_EBUSY) {
            drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, why);
            return;
        }
    }
    ekv_log_info("replica needs a snapshot", "replica=%s reason=\"%s\" last_applied_seq=%" PRIu64,
                 peer_name(pe), why, n);
    start_snapshot(pe);
}

static void on_ack(peer_t *pe, uint64_t applied)
{
    ekv_repl_primary_t *p = pe->p;
    if (pe->state != PS_STREAMING || applied <= pe->acked_seq)
        return;
    if (applied > pe->sent_seq) {
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL,
             "ack beyond what was sent");
        return;
    }
    pe->acked_seq = applied;
    ring_ack(pe, applied);
    if (pe->pin_id >= 0)
        ekv_store_log_pin_move(p->o.store, pe->pin_id, applied + 1);
    if (p->wh)
        check_waiters(p);
}

static void on_link_frame(ekv_repl_link_t *l, Edgekv__Frame *f)
{
    peer_t *pe = (peer_t *)l;
    ekv_repl_primary_t *p = pe->p;
    if (f->epoch > p->o.node->epoch && !p->o.edge_only) {
        char by[64];
        snprintf(by, sizeof(by), "%s",
                 f->body_case == EDGEKV__FRAME__BODY_HELLO && f->hello->node_id &&
                         f->hello->node_id[0]
                     ? f->hello->node_id
                     : peer_name(pe));
        uint64_t e = f->epoch;
        ekv_repl_frame_free(f);
        ekv_repl_primary_fence(p, e, by);
        return;
    }
    if (pe->state == PS_HANDSHAKE) {
        if (f->body_case != EDGEKV__FRAME__BODY_HELLO)
            drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL,
                 "first frame is not a hello");
        else
            on_hello(pe, f);
        ekv_repl_frame_free(f);
        return;
    }
    if (pe->state == PS_RPC) {
        if (f->body_case == EDGEKV__FRAME__BODY_REQUEST) {
            rpc_request(pe, f);
            return;
        }
        if (f->body_case != EDGEKV__FRAME__BODY_HEARTBEAT) /* the edge's keepalive */
            drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL,
                 "unexpected frame on an RPC link");
        ekv_repl_frame_free(f);
        return;
    }
    switch (f->body_case) {
    case EDGEKV__FRAME__BODY_ACK:
        on_ack(pe, f->ack->applied_seq);
        break;
    case EDGEKV__FRAME__BODY_ERROR:
        ekv_log_warn("replica reported an error", "replica=%s code=%d message=\"%s\"",
                     peer_name(pe), (int)f->error->code,
                     f->error->message ? f->error->message : "");
        ekv_repl_link_close(l, 0, 0, "replica closed: %s",
                            f->error->message ? f->error->message : "error");
        break;
    default:
        drop(pe, "protocol", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, "unexpected frame");
        break;
    }
    ekv_repl_frame_free(f);
}

/* ---------------------------------------------------------------- listener, timers */

static void on_connection(uv_stream_t *ls, int status)
{
    ekv_repl_primary_t *p = ls->data;
    if (status < 0) {
        ekv_log_warn("replication accept failed", "err=\"%s\"", uv_strerror(status));
        return;
    }
    peer_t *pe = calloc(1, sizeof(*pe));
    if (!pe)
        return;
    pe->p = p;
    pe->pin_id = -1;
    ekv_buf_init(&pe->job.out, 0);
    uv_tcp_init(p->o.loop, &pe->link.tcp);
    pe->link.tcp.data = pe;
    pe->next = p->peers;
    if (p->peers)
        p->peers->prev = pe;
    p->peers = pe;
    p->npeers++;
    pe->id = ++p->next_peer_id;
    p->st.accepted++;
    p->st.connected = p->npeers;
    p->handles_open++;
    static const ekv_repl_link_cbs_t cbs = {on_link_frame, on_link_close, on_link_drain};
    pe->link.cbs = cbs;
    if (uv_accept(ls, (uv_stream_t *)&pe->link.tcp) ||
        ekv_repl_link_init(&pe->link, pe, &cbs, 0, p->o.auth, EKV_REPL_HS_LISTENER) ||
        ekv_repl_link_start(&pe->link)) {
        ekv_repl_link_close(&pe->link, 0, 0, "accept failed");
        return;
    }
    pe->connected_ns = pe->last_send_ns = ekv_clock_mono_ns();
    if (p->fenced || p->stopping)
        ekv_repl_link_close(&pe->link, p->o.node->epoch,
                            EDGEKV__REPL_ERROR_CODE__REPL_ERROR_NOT_PRIMARY,
                            p->fenced ? "this primary is fenced" : "shutting down");
}

static void on_tick(uv_timer_t *t)
{
    ekv_repl_primary_t *p = t->data;
    uint64_t now = ekv_clock_mono_ns();
    uint64_t tmo = (uint64_t)p->o.timeout_ms * 1000000ull;
    uint64_t hb = (uint64_t)p->o.heartbeat_ms * 1000000ull;
    char why[128];
    for (peer_t *pe = p->peers, *next; pe; pe = next) {
        next = pe->next;
        if (pe->link.closing)
            continue;
        if (!pe->link.authed && now - pe->connected_ns > tmo) {
            pe->link.auth_failed = 1;
            ekv_repl_auth_failed(p->o.auth, pe->link.peer, "no authentication in time");
            ekv_repl_link_close(&pe->link, 0, 0, "no authentication in time");
            continue;
        }
        if (pe->state == PS_HANDSHAKE && now - pe->connected_ns > tmo) {
            drop(pe, "timeout", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_TOO_SLOW, "no hello in time");
            continue;
        }
        /* (a paused RPC link is not read: its answers draining is what the next check sees) */
        if (!pe->rpc_paused && now - pe->link.last_recv_ns > tmo) {
            snprintf(why, sizeof(why), "nothing received for %llu ms",
                     (unsigned long long)((now - pe->link.last_recv_ns) / 1000000ull));
            drop(pe, "timeout", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_TOO_SLOW, why);
            continue;
        }
        if (ekv_repl_link_queued(&pe->link) && now - pe->link.last_progress_ns > tmo) {
            snprintf(why, sizeof(why), "send stalled for %llu ms with %zu bytes queued",
                     (unsigned long long)((now - pe->link.last_progress_ns) / 1000000ull),
                     ekv_repl_link_queued(&pe->link));
            drop(pe, "timeout", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_TOO_SLOW, why);
            continue;
        }
        int64_t wait = peer_ack_wait_ms(pe);
        if (pe->state == PS_STREAMING && wait > p->o.max_lag_ms) {
            snprintf(why, sizeof(why), "records sent %lld ms ago are not acked (cap %d ms)",
                     (long long)wait, p->o.max_lag_ms);
            drop(pe, "lag", EDGEKV__REPL_ERROR_CODE__REPL_ERROR_TOO_SLOW, why);
            continue;
        }
        if ((pe->state == PS_STREAMING || pe->state == PS_RPC) && now - pe->last_send_ns >= hb)
            send_heartbeat(pe);
    }
}

/* ---------------------------------------------------------------- sync waiters */

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The highest seq acked by at least k streaming replicas (0 if fewer than k). */
static uint64_t acked_by(const ekv_repl_primary_t *p, int k)
{
    uint64_t v[EKV_REPL_MAX_REPLICAS + 2];
    size_t n = 0;
    for (const peer_t *pe = p->peers; pe && n < sizeof(v) / sizeof(v[0]); pe = pe->next)
        if (pe->state == PS_STREAMING && pe->kind == PK_REPLICA && !pe->link.closing)
            v[n++] = pe->acked_seq;
    if ((size_t)k > n)
        return 0;
    qsort(v, n, sizeof(v[0]), cmp_desc);
    return v[k - 1];
}

static void wait_timer_cb(uv_timer_t *t);

static void arm_wait_timer(ekv_repl_primary_t *p)
{
    if (!p->wh) {
        uv_timer_stop(&p->wait_timer);
        return;
    }
    uint64_t now = ekv_clock_mono_ns();
    uint64_t ms = p->wh->deadline_ns > now ? (p->wh->deadline_ns - now) / 1000000ull + 1 : 0;
    uv_timer_start(&p->wait_timer, wait_timer_cb, ms, 0);
}

static void check_waiters(ekv_repl_primary_t *p)
{
    uint64_t now = ekv_clock_mono_ns();
    while (p->wh) {
        waiter_t *w = p->wh;
        int status;
        if (w->seq <= acked_by(p, w->k))
            status = 0;
        else if (now >= w->deadline_ns)
            status = EKV_ESYNC_TIMEOUT;
        else
            break;
        p->wh = w->next;
        if (!p->wh)
            p->wt = NULL;
        p->st.sync_waiting--;
        if (status) {
            p->st.sync_timeouts++;
            ekv_log_warn("write not acknowledged by replicas in time",
                         "seq=%" PRIu64 " sync_replicas=%d", w->seq, w->k);
        }
        w->cb(w->ctx, status);
        free(w);
    }
    arm_wait_timer(p);
}

static void wait_timer_cb(uv_timer_t *t)
{
    check_waiters(t->data);
}

int ekv_repl_primary_wait(ekv_repl_primary_t *p, uint64_t seq, int k, int timeout_ms,
                          ekv_repl_sync_cb cb, void *ctx)
{
    if (p->stopping || p->fenced) {
        cb(ctx, EKV_ESHUTDOWN);
        return 0;
    }
    waiter_t *w = calloc(1, sizeof(*w));
    if (!w)
        return EKV_ENOMEM;
    w->seq = seq;
    w->k = k;
    w->cb = cb;
    w->ctx = ctx;
    w->deadline_ns = ekv_clock_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    if (p->wt)
        p->wt->next = w;
    else
        p->wh = w;
    p->wt = w;
    p->st.sync_waiting++;
    check_waiters(p);
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */

void ekv_repl_primary_notify(ekv_repl_primary_t *p, uint64_t last_seq)
{
    if (last_seq > p->latest_seq) {
        p->latest_seq = last_seq;
        p->latest_commit_ms = ekv_clock_now_ms();
    }
    for (peer_t *pe = p->peers; pe; pe = pe->next)
        if (pe->state == PS_STREAMING)
            pump(pe);
}

int ekv_repl_primary_start(ekv_repl_primary_t **out, const ekv_repl_primary_opts_t *o)
{
    ekv_repl_primary_t *p = calloc(1, sizeof(*p));
    if (!p)
        return EKV_ENOMEM;
    p->o = *o;
    if (p->o.heartbeat_ms <= 0)
        p->o.heartbeat_ms = 1000;
    if (p->o.timeout_ms <= 0)
        p->o.timeout_ms = 10000;
    if (p->o.max_lag_ms <= 0)
        p->o.max_lag_ms = 60000;
    if (p->o.rpc_send_queue_max < (1u << 20))
        p->o.rpc_send_queue_max = p->o.rpc_send_queue_max ? 1u << 20 : 64u << 20;
    p->fenced = o->fenced;
    p->latest_seq = o->store ? ekv_store_last_seq(o->store) : 0;
    p->latest_commit_ms = ekv_clock_now_ms();
    struct sockaddr_storage sa;
    if (uv_ip4_addr(o->host, o->port, (struct sockaddr_in *)&sa) &&
        uv_ip6_addr(o->host, o->port, (struct sockaddr_in6 *)&sa)) {
        ekv_log_error("bad replication listen address", "host=%s", o->host);
        free(p);
        return EKV_EINTERNAL;
    }
    if (ekv_doneq_init(&p->doneq, o->loop) ||
        ekv_workq_init(&p->readers, "repl-read", READER_THREADS, READER_QUEUE, &p->doneq)) {
        free(p);
        return EKV_EINTERNAL;
    }
    uv_tcp_init(o->loop, &p->listener);
    p->listener.data = p;
    int rc = uv_tcp_bind(&p->listener, (struct sockaddr *)&sa, 0);
    if (!rc)
        rc = uv_listen((uv_stream_t *)&p->listener, 64, on_connection);
    if (rc) {
        ekv_log_error("cannot listen for replicas", "addr=%s:%d err=\"%s\"", o->host, o->port,
                      uv_strerror(rc));
        uv_close((uv_handle_t *)&p->listener, NULL);
        ekv_workq_deinit(&p->readers);
        ekv_doneq_close(&p->doneq);
        return EKV_EINTERNAL; /* p stays allocated: its handles close on the next loop turn */
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&bound, &blen);
    p->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_timer_init(o->loop, &p->tick);
    uv_timer_init(o->loop, &p->wait_timer);
    p->tick.data = p->wait_timer.data = p;
    int every = p->o.heartbeat_ms < 250 ? p->o.heartbeat_ms : 250;
    if (p->o.timeout_ms / 4 < every)
        every = p->o.timeout_ms / 4 > 10 ? p->o.timeout_ms / 4 : 10;
    uv_timer_start(&p->tick, on_tick, (uint64_t)every, (uint64_t)every);
    p->handles_open = 3; /* listener, tick, wait_timer (+ one per peer) */
    ekv_log_info("replication listening",
                 "addr=%s:%d node_id=%s epoch=%" PRIu64 " history_id=%s last_seq=%" PRIu64, o->host,
                 p->port, o->node_id, o->node->epoch, o->node->history_id, p->latest_seq);
    *out = p;
    return 0;
}

int ekv_repl_primary_respond(ekv_repl_primary_t *p, uint64_t peer_id, Edgekv__Response *resp)
{
    for (peer_t *pe = p->peers; pe; pe = pe->next) {
        if (pe->id != peer_id)
            continue;
        if (pe->link.closing || pe->state != PS_RPC)
            return EKV_ESHUTDOWN;
        Edgekv__Frame f = EDGEKV__FRAME__INIT;
        f.body_case = EDGEKV__FRAME__BODY_RESPONSE;
        f.response = resp;
        send_frame(pe, &f);
        rpc_backpressure(pe);
        return 0;
    }
    return EKV_ESHUTDOWN;
}

void ekv_repl_primary_set_edge_only(ekv_repl_primary_t *p, int edge_only)
{
    p->o.edge_only = edge_only;
}

int ekv_repl_primary_port(const ekv_repl_primary_t *p)
{
    return p->port;
}

size_t ekv_repl_primary_peers(const ekv_repl_primary_t *p, ekv_repl_peer_info_t *out, size_t cap)
{
    size_t n = 0;
    uint64_t last = store_seq(p);
    for (const peer_t *pe = p->peers; pe; pe = pe->next) {
        /* a dropped peer stays in the list until its handle's close callback, which may run
         * after a status request of the same loop iteration: it is not linked any more */
        if (pe->link.closing)
            continue;
        if (n < cap) {
            ekv_repl_peer_info_t *i = &out[n];
            snprintf(i->node_id, sizeof(i->node_id), "%s", peer_name(pe));
            snprintf(i->addr, sizeof(i->addr), "%s", pe->link.peer);
            i->state = state_name(pe->state);
            i->kind = pe->kind == PK_REPLICA       ? "replica"
                      : pe->kind == PK_EDGE_STREAM ? "edge-stream"
                                                   : "edge-rpc";
            i->acked_seq = pe->acked_seq;
            i->sent_seq = pe->sent_seq;
            i->lag_seqs =
                pe->state == PS_STREAMING && last > pe->acked_seq ? last - pe->acked_seq : 0;
            i->lag_ms = pe->state == PS_STREAMING ? peer_lag_ms(pe) : 0;
        }
        n++;
    }
    return n;
}

void ekv_repl_primary_stats(const ekv_repl_primary_t *p, ekv_repl_primary_stats_t *out)
{
    *out = p->st;
}

static void on_handle_closed(uv_handle_t *h)
{
    ekv_repl_primary_t *p = h->data;
    p->handles_open--;
    maybe_stopped(p);
}

static void maybe_stopped(ekv_repl_primary_t *p)
{
    if (!p->stopping || !p->stop_done || p->handles_open > 0 || p->jobs_in_flight > 0)
        return;
    ekv_doneq_close(&p->doneq); /* its handle finishes closing on the next loop turn */
    void (*done)(void *) = p->stop_done;
    p->stop_done = NULL;
    done(p->stop_arg);
}

void ekv_repl_primary_stop(ekv_repl_primary_t *p, void (*done)(void *arg), void *arg)
{
    p->stopping = 1;
    p->stop_done = done;
    p->stop_arg = arg;
    fail_waiters(p);
    for (peer_t *pe = p->peers; pe; pe = pe->next)
        ekv_repl_link_close(&pe->link, p->o.node->epoch,
                            EDGEKV__REPL_ERROR_CODE__REPL_ERROR_SHUTDOWN, "primary shutting down");
    uv_close((uv_handle_t *)&p->listener, on_handle_closed);
    uv_close((uv_handle_t *)&p->tick, on_handle_closed);
    uv_close((uv_handle_t *)&p->wait_timer, on_handle_closed);
    maybe_stopped(p);
}

void ekv_repl_primary_free(ekv_repl_primary_t *p)
{
    if (!p)
        return;
    ekv_workq_deinit(&p->readers);
    if (p->snap && p->snap->snap)
        ekv_store_snapshot_close(p->snap->snap);
    free(p->snap);
    free(p);
}
