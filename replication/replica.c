/*
 * replica.c - follow a primary (see replica.h and docs/REPLICATION.md).
 *
 * The loop side decodes frames, checks them against the state (a ChangeBatch must start
 * exactly at the next expected seq, chunks must be numbered 0, 1, 2...), and queues them. The
 * apply side runs one job at a time on a single worker thread, so frames are applied in the
 * order received. A failed apply closes the link: nothing partial was written (every apply
 * is one WriteBatch) and the next Hello tells the primary where this node really is.
 */
#include "replication/replica.h"

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/workq.h"
#include "replication/link.h"
#include "replication/snapshot_wire.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define MAX_PRIMARIES      16
#define QUEUE_PAUSE_BYTES  (64u << 20)
#define QUEUE_RESUME_BYTES (16u << 20)
#define MERGE_MAX_RECORDS  8192
#define MERGE_MAX_BYTES    (16u << 20)
#define BACKOFF_FIRST_MS   100
#define BACKOFF_MAX_MS     5000
#define LAG_SAMPLES        4096

typedef enum {
    RS_CONNECTING,
    RS_HANDSHAKE,
    RS_SNAPSHOT,
    RS_STREAMING,
    RS_BACKOFF,
    RS_STOPPED
} rstate_t;
typedef enum { IT_ADOPT, IT_BATCH, IT_BEGIN, IT_CHUNK, IT_END } item_kind_t;

typedef struct item_s {
    item_kind_t kind;
    Edgekv__Frame *frame; /* owned (NULL for ADOPT) */
    size_t bytes;
    ekv_node_state_t adopt; /* IT_ADOPT */
    /* IT_BATCH: its n changes in seq order, as on_applied gets them. A replica unpacks each
     * record of its ChangeBatch once, on arrival: the seq checks, the apply (the store takes
     * the record with its received bytes) and on_applied all use that one copy. */
    size_t n;
    Edgekv__KeyChange **changes; /* replica: &views[i]; edge: the frame's own KeyChanges */
    Edgekv__ChangeRecord **recs; /* replica: unpacked from the frame's records (owned) */
    Edgekv__KeyChange *views;    /* replica: keys-only views of recs (owned, borrow recs) */
    size_t payload;              /* bytes of record data (merge limit), <= bytes (memory) */
    struct item_s *next;
} item_t;

typedef struct {
    ekv_repl_link_t link; /* first */
    ekv_repl_replica_t *r;
} conn_t;

typedef struct {
    ekv_job_t job;
    ekv_repl_replica_t *r;
    item_t *items; /* one item, or several IT_BATCH merged */
    int rc;
    char why[160];
    void *loaded;      /* after_ingest_work's result (IT_END) */
    uint64_t last_seq; /* IT_BATCH / IT_END: seq now applied */
} apply_job_t;

struct ekv_repl_replica_s {
    ekv_repl_replica_opts_t o;
    char hosts[MAX_PRIMARIES][256];
    int ports[MAX_PRIMARIES];
    int nprimaries, cur;
    int pinned; /* set_primary named cur: failures retry it instead of moving on */
    rstate_t state;
    conn_t *conn; /* current link, NULL when none */
    uv_timer_t backoff_timer, tick;
    int attempts;
    uint64_t state_since_ns, last_ack_ns;
    ekv_doneq_t doneq;
    ekv_workq_t applier;
    item_t *qh, *qt;
    size_t qbytes;
    int busy;
    apply_job_t job;
    /* progress */
    uint64_t applied_seq; /* durable here */
    uint64_t expect_seq;  /* next record the link must deliver (streaming) */
    uint64_t primary_latest_seq;
    int64_t pending_first_ms; /* commit time of the oldest received, unapplied record */
    /* handshake facts (ours, sent in Hello) and the primary's */
    uint64_t hello_seq;
    char hello_history[EKV_HISTORY_ID_LEN + 1];
    char primary_node_id[64], primary_url[256];
    uint64_t primary_epoch;
    int hello_done;
    /* snapshot in progress (loop side) */
    uint64_t snap_seq, snap_chunks, snap_entries;
    XXH64_state_t *xxh; /* updated by the apply thread, in chunk order */
    /* stats */
    uint64_t snapshots, snapshot_attempts, connects, reconnects, discarded;
    int32_t lag[LAG_SAMPLES];
    uint64_t nlag;
    uint64_t lag_hist[EKV_REPL_LAG_BUCKETS]; /* not cumulative */
    uint64_t lag_sum_ms;
    int handles_open;
    int stopping;
    void (*stop_done)(void *);
    void *stop_arg;
};

const int64_t ekv_repl_lag_bucket_ms[EKV_REPL_LAG_BUCKETS - 1] = {
    0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 50, 100, 500, 1000, 5000};

static const char *state_name(rstate_t s)
{
    static const char *const n[] = {"connecting", "handshake", "snapshot",
                                    "streaming",  "backoff",   "stopped"};
    return n[s];
}

static void set_state(ekv_repl_replica_t *r, rstate_t to, const char *why)
{
    if (r->state == to)
        return;
    ekv_log_info("replica state", "from=%s to=%s primary=%s:%d reason=\"%s\"", state_name(r->state),
                 state_name(to), r->hosts[r->cur], r->ports[r->cur], why);
    r->state = to;
    r->state_since_ns = ekv_clock_mono_ns();
}

static void connect_next(ekv_repl_replica_t *r);
static void pump(ekv_repl_replica_t *r);
static void maybe_stopped(ekv_repl_replica_t *r);

/* ---------------------------------------------------------------- queue */

static void item_free(item_t *it)
{
    if (it->recs) {
        for (size_t i = 0; i < it->n; i++)
            if (it->recs[i])
                edgekv__change_record__free_unpacked(it->recs[i], NULL);
        free(it->recs);
        free(it->views);
        free(it->changes);
    }
    ekv_repl_frame_free(it->frame);
    free(it);
}

static void queue_clear(ekv_repl_replica_t *r)
{
    while (r->qh) {
        item_t *it = r->qh;
        r->qh = it->next;
        item_free(it);
    }
    r->qt = NULL;
    r->qbytes = 0;
}

/* Append an item to the apply queue (reads pause above QUEUE_PAUSE_BYTES) and start it if
 * nothing runs. */
static void queue_append(ekv_repl_replica_t *r, item_t *it)
{
    if (r->qt)
        r->qt->next = it;
    else
        r->qh = it;
    r->qt = it;
    r->qbytes += it->bytes;
    if (r->conn && r->qbytes > QUEUE_PAUSE_BYTES)
        ekv_repl_link_pause(&r->conn->link);
    pump(r);
}

static int enqueue(ekv_repl_replica_t *r, item_kind_t kind, Edgekv__Frame *f, size_t bytes)
{
    item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        ekv_repl_frame_free(f);
        return EKV_ENOMEM;
    }
    it->kind = kind;
    it->frame = f;
    it->bytes = bytes;
    queue_append(r, it);
    return 0;
}

/* ---------------------------------------------------------------- link */

static void send_frame(ekv_repl_replica_t *r, Edgekv__Frame *f)
{
    if (!r->conn || r->conn->link.closing)
        return;
    f->epoch = r->o.node->epoch;
    ekv_repl_link_send(&r->conn->link, f);
}

static void send_ack(ekv_repl_replica_t *r)
{
    Edgekv__Ack a = EDGEKV__ACK__INIT;
    a.applied_seq = r->applied_seq;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_ACK;
    f.ack = &a;
    r->last_ack_ns = ekv_clock_mono_ns();
    send_frame(r, &f);
}

static void close_link(ekv_repl_replica_t *r, int code, const char *why)
{
    if (r->conn && !r->conn->link.closing)
        ekv_repl_link_close(&r->conn->link, r->o.node->epoch, code, "%s", why);
}

/* Move on to the next candidate primary on the next attempt. */
static void next_candidate(ekv_repl_replica_t *r)
{
    if (r->nprimaries && !r->pinned)
        r->cur = (r->cur + 1) % r->nprimaries;
}

static void on_backoff_timer(uv_timer_t *t)
{
    ekv_repl_replica_t *r = t->data;
    if (r->stopping)
        return;
    if (r->busy) { /* the next Hello must report what is really applied */
        uv_timer_start(&r->backoff_timer, on_backoff_timer, 20, 0);
        return;
    }
    connect_next(r);
}

static void on_conn_close(ekv_repl_link_t *l)
{
    conn_t *c = (conn_t *)l;
    ekv_repl_replica_t *r = c->r;
    if (r->conn == c)
        r->conn = NULL;
    r->handles_open--;
    ekv_log_warn("replication link closed", "primary=%s reason=\"%s\" applied_seq=%" PRIu64,
                 l->peer, l->close_reason, r->applied_seq);
    char reason[sizeof(l->close_reason)];
    snprintf(reason, sizeof(reason), "%s", l->close_reason);
    free(c);
    queue_clear(r);
    if (r->stopping) {
        set_state(r, RS_STOPPED, "stopping");
        maybe_stopped(r);
        return;
    }
    if (r->state != RS_STREAMING)
        next_candidate(r);
    int delay = ekv_repl_backoff_ms(r->attempts, BACKOFF_FIRST_MS, BACKOFF_MAX_MS);
    r->attempts++;
    set_state(r, RS_BACKOFF, reason);
    uv_timer_start(&r->backoff_timer, on_backoff_timer, (uint64_t)delay, 0);
}

static void send_hello(ekv_repl_replica_t *r)
{
    Edgekv__Hello h;
    ekv_repl_hello_init(&h);
    h.node_id = (char *)r->o.node_id;
    h.role =
        r->o.keys_only ? EDGEKV__NODE_ROLE__NODE_ROLE_EDGE : EDGEKV__NODE_ROLE__NODE_ROLE_REPLICA;
    h.keys_only = r->o.keys_only ? 1 : 0;
    if (r->o.keys_only)
        r->hello_seq = r->applied_seq;
    else
        r->hello_seq = ekv_store_ingest_pending(r->o.store) ? 0 : ekv_store_last_seq(r->o.store);
    snprintf(r->hello_history, sizeof(r->hello_history), "%s", r->o.node->history_id);
    h.last_applied_seq = r->hello_seq;
    h.history_id = r->hello_history;
    h.epoch = r->o.node->epoch;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &h;
    send_frame(r, &f);
}

static void on_primary_hello(ekv_repl_replica_t *r, Edgekv__Frame *f)
{
    const Edgekv__Hello *h = f->hello;
    char why[128];
    if (!ekv_repl_hello_version_ok(h, why, sizeof(why))) {
        ekv_log_warn("primary refused: replication protocol version mismatch",
                     "primary=%s node_id=%s detail=\"%s\"", r->conn->link.peer,
                     h->node_id && h->node_id[0] ? h->node_id : "-", why);
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_VERSION, why);
        return;
    }
    if (h->role != EDGEKV__NODE_ROLE__NODE_ROLE_PRIMARY) {
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_NOT_PRIMARY, "peer is not a primary");
        return;
    }
    snprintf(r->primary_node_id, sizeof(r->primary_node_id), "%s", h->node_id ? h->node_id : "");
    snprintf(r->primary_url, sizeof(r->primary_url), "%s",
             h->advertise_url ? h->advertise_url : "");
    r->primary_epoch = f->epoch;
    if (h->last_applied_seq > r->primary_latest_seq || r->primary_latest_seq == 0)
        r->primary_latest_seq = h->last_applied_seq;
    r->connects++;
    /* adopt the primary's epoch and history (saved before anything of it is applied) */
    item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, "out of memory");
        return;
    }
    it->kind = IT_ADOPT;
    it->adopt = *r->o.node;
    it->adopt.epoch = f->epoch;
    snprintf(it->adopt.history_id, sizeof(it->adopt.history_id), "%s",
             h->history_id ? h->history_id : "");
    snprintf(it->adopt.history2_id, sizeof(it->adopt.history2_id), "%s",
             h->history2_id ? h->history2_id : "");
    it->adopt.history2_seq = h->history2_seq;
    if (it->adopt.fenced_epoch && it->adopt.fenced_epoch <= f->epoch) {
        it->adopt.fenced_epoch = 0; /* a fenced old primary that rejoined as a replica */
        it->adopt.fenced_by[0] = '\0';
    }
    /* records this node has that the primary's history does not: discarded by the snapshot
     * that follows (counted now, while both sides' facts are at hand) */
    uint64_t n = r->hello_seq;
    r->discarded = 0;
    if (n && h->history2_id && !strcmp(r->hello_history, h->history2_id) && n > h->history2_seq)
        r->discarded = n - h->history2_seq;
    else if (n && h->history_id && !strcmp(r->hello_history, h->history_id) &&
             n > h->last_applied_seq)
        r->discarded = n - h->last_applied_seq;
    r->expect_seq = r->hello_seq + 1;
    ekv_log_info("primary hello",
                 "primary=%s node_id=%s epoch=%" PRIu64 " latest_seq=%" PRIu64 " history_id=%s",
                 r->conn->link.peer, r->primary_node_id, f->epoch, h->last_applied_seq,
                 h->history_id ? h->history_id : "-");
    queue_append(r, it); /* the adoption is saved before anything from this primary applies */
}

/* A ChangeBatch (replica) or KeyChangeBatch (keys-only follower): checked and queued as one
 * IT_BATCH item; a bad one closes the link. Takes f. */
static void on_batch(ekv_repl_replica_t *r, Edgekv__Frame *f)
{
    char why[192];
    int code = EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL;
    int keys = f->body_case == EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH;
    size_t n = keys ? f->key_change_batch->n_changes : f->change_batch->n_records;
    item_t *it = NULL;
    if (keys != (r->o.keys_only != 0)) {
        snprintf(why, sizeof(why), "%s frame on a %s link", ekv_repl_frame_body_name(f->body_case),
                 r->o.keys_only ? "keys-only" : "replica");
        goto fail;
    }
    if (r->state != RS_STREAMING || n == 0) {
        snprintf(why, sizeof(why), "%s outside streaming or empty",
                 ekv_repl_frame_body_name(f->body_case));
        goto fail;
    }
    it = calloc(1, sizeof(*it));
    if (!it) {
        code = EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL;
        snprintf(why, sizeof(why), "out of memory");
        goto fail;
    }
    it->kind = IT_BATCH;
    it->frame = f;
    it->n = n;
    size_t bytes = 64;
    if (keys) {
        it->changes = f->key_change_batch->changes;
        for (size_t i = 0; i < n; i++)
            bytes += 96 + it->changes[i]->key.len;
        it->payload = bytes;
    } else {
        it->recs = calloc(n, sizeof(*it->recs));
        it->views = malloc(n * sizeof(*it->views));
        it->changes = malloc(n * sizeof(*it->changes));
        if (!it->recs || !it->views || !it->changes) {
            code = EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL;
            snprintf(why, sizeof(why), "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            const ProtobufCBinaryData *b = &f->change_batch->records[i];
            if (!(it->recs[i] = ekv_repl_record_unpack(b->data, b->len))) {
                snprintf(why, sizeof(why), "record %zu of %zu (%zu bytes) does not unpack", i, n,
                         b->len);
                goto fail;
            }
            ekv_repl_key_change_view(it->recs[i], &it->views[i]);
            it->changes[i] = &it->views[i];
            bytes += 128 + 2 * b->len; /* the bytes, and the record unpacked from them */
            it->payload += b->len;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (it->changes[i]->seq != r->expect_seq + i) {
            snprintf(why, sizeof(why), "expected seq %" PRIu64 ", got %" PRIu64, r->expect_seq + i,
                     it->changes[i]->seq);
            goto fail;
        }
    }
    r->expect_seq += n;
    if (r->expect_seq - 1 > r->primary_latest_seq)
        r->primary_latest_seq = r->expect_seq - 1;
    if (!r->pending_first_ms)
        r->pending_first_ms = it->changes[0]->commit_time_ms;
    it->bytes = bytes;
    queue_append(r, it);
    return;
fail:
    if (it)
        item_free(it); /* and f */
    else
        ekv_repl_frame_free(f);
    close_link(r, code, why);
}

static void on_conn_frame(ekv_repl_link_t *l, Edgekv__Frame *f)
{
    conn_t *c = (conn_t *)l;
    ekv_repl_replica_t *r = c->r;
    char why[192];
    if (f->body_case == EDGEKV__FRAME__BODY_ERROR) {
        snprintf(why, sizeof(why), "primary says: %s (code %d)",
                 f->error->message ? f->error->message : "", (int)f->error->code);
        ekv_repl_frame_free(f);
        close_link(r, 0, why);
        return;
    }
    if (f->epoch < r->o.node->epoch) {
        snprintf(why, sizeof(why), "stale primary: epoch %" PRIu64 " < ours %" PRIu64, f->epoch,
                 r->o.node->epoch);
        ekv_repl_frame_free(f);
        /* the Error frame carries our epoch: a stale primary fences itself on reading it */
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_FENCED, why);
        return;
    }
    switch (r->state) {
    case RS_HANDSHAKE:
        if (!r->hello_done) {
            if (f->body_case != EDGEKV__FRAME__BODY_HELLO) {
                ekv_repl_frame_free(f);
                close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, "expected a hello");
                return;
            }
            r->hello_done = 1;
            on_primary_hello(r, f);
            ekv_repl_frame_free(f);
            return;
        }
        /* the primary's answer to our position: a snapshot, or the stream */
        if (f->body_case != EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN)
            set_state(r, RS_STREAMING, "resuming from our last applied seq");
        break;
    case RS_STREAMING:
    case RS_SNAPSHOT:
        break;
    default:
        ekv_repl_frame_free(f);
        return;
    }
    switch (f->body_case) {
    case EDGEKV__FRAME__BODY_HEARTBEAT:
        if (f->heartbeat->latest_seq > r->primary_latest_seq)
            r->primary_latest_seq = f->heartbeat->latest_seq;
        ekv_repl_frame_free(f);
        return;
    case EDGEKV__FRAME__BODY_CHANGE_BATCH:
    case EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH:
        on_batch(r, f);
        return;
    case EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN:
        if (r->state != RS_HANDSHAKE || r->expect_seq != r->hello_seq + 1) {
            ekv_repl_frame_free(f);
            close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL,
                       "snapshot begin after records");
            return;
        }
        set_state(r, RS_SNAPSHOT, "primary sends a snapshot");
        r->snap_seq = f->snapshot_begin->snapshot_seq;
        r->snap_chunks = r->snap_entries = 0;
        r->snapshot_attempts++;
        if (r->discarded)
            ekv_log_warn("history switch: records discarded",
                         "count=%" PRIu64 " our_last_seq=%" PRIu64 " primary=%s", r->discarded,
                         r->hello_seq, r->primary_node_id);
        else if (r->hello_seq)
            ekv_log_warn("local data replaced by a snapshot",
                         "our_last_seq=%" PRIu64 " snapshot_seq=%" PRIu64, r->hello_seq,
                         r->snap_seq);
        enqueue(r, IT_BEGIN, f, 64);
        return;
    case EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK: {
        const Edgekv__SnapshotChunk *ch = f->snapshot_chunk;
        if (r->state != RS_SNAPSHOT || ch->chunk_seq != r->snap_chunks ||
            !ekv_repl_snapshot_cf(ch->column_family)) {
            snprintf(why, sizeof(why), "bad snapshot chunk %" PRIu64 " (expected %" PRIu64 ")",
                     ch->chunk_seq, r->snap_chunks);
            ekv_repl_frame_free(f);
            close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, why);
            return;
        }
        r->snap_chunks++;
        r->snap_entries += ch->n_entries;
        size_t bytes = 64;
        for (size_t i = 0; i < ch->n_entries; i++)
            bytes += ch->entries[i]->key.len + ch->entries[i]->value.len + 32;
        enqueue(r, IT_CHUNK, f, bytes);
        return;
    }
    case EDGEKV__FRAME__BODY_SNAPSHOT_END: {
        const Edgekv__SnapshotEnd *e = f->snapshot_end;
        if (r->state != RS_SNAPSHOT || e->snapshot_seq != r->snap_seq ||
            e->chunk_count != r->snap_chunks || e->entry_count != r->snap_entries) {
            snprintf(why, sizeof(why),
                     "snapshot end does not match: seq %" PRIu64 "/%" PRIu64 " chunks %" PRIu64
                     "/%" PRIu64 " entries %" PRIu64 "/%" PRIu64,
                     e->snapshot_seq, r->snap_seq, e->chunk_count, r->snap_chunks, e->entry_count,
                     r->snap_entries);
            ekv_repl_frame_free(f);
            close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, why);
            return;
        }
        r->expect_seq = r->snap_seq + 1;
        enqueue(r, IT_END, f, 64);
        set_state(r, RS_STREAMING, "snapshot received");
        return;
    }
    default:
        snprintf(why, sizeof(why), "unexpected %s frame", ekv_repl_frame_body_name(f->body_case));
        ekv_repl_frame_free(f);
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_PROTOCOL, why);
        return;
    }
}

static void on_conn_connected(ekv_repl_link_t *l, int status)
{
    conn_t *c = (conn_t *)l;
    ekv_repl_replica_t *r = c->r;
    if (status) {
        ekv_repl_link_close(l, 0, 0, "connect failed: %s", uv_strerror(status));
        return;
    }
    static const ekv_repl_link_cbs_t cbs = {on_conn_frame, on_conn_close, NULL};
    if (ekv_repl_link_init(l, c, &cbs, 0, r->o.auth, EKV_REPL_HS_CONNECTOR) ||
        ekv_repl_link_start(l)) {
        ekv_repl_link_close(l, 0, 0, "link setup failed");
        return;
    }
    set_state(r, RS_HANDSHAKE, "connected");
    r->hello_done = 0;
    send_hello(r);
}

static void connect_next(ekv_repl_replica_t *r)
{
    if (!r->nprimaries) { /* waiting for the coordinator to name one (set_primary) */
        set_state(r, RS_BACKOFF, "no primary known yet");
        uv_timer_start(&r->backoff_timer, on_backoff_timer, BACKOFF_MAX_MS, 0);
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        uv_timer_start(&r->backoff_timer, on_backoff_timer, BACKOFF_MAX_MS, 0);
        return;
    }
    c->r = r;
    static const ekv_repl_link_cbs_t cbs = {on_conn_frame, on_conn_close, NULL};
    c->link.cbs = cbs; /* on_close must work even if the connect never completes */
    r->conn = c;
    r->handles_open++;
    if (r->connects || r->attempts)
        r->reconnects++;
    set_state(r, RS_CONNECTING, "connect");
    int rc = ekv_repl_link_connect(&c->link, r->o.loop, r->hosts[r->cur], r->ports[r->cur],
                                   on_conn_connected);
    if (rc) {
        r->handles_open--;
        r->conn = NULL;
        free(c);
        next_candidate(r);
        set_state(r, RS_BACKOFF, "bad address");
        uv_timer_start(&r->backoff_timer, on_backoff_timer, BACKOFF_MAX_MS, 0);
    }
}

/* ---------------------------------------------------------------- apply (worker) */

/* The store gets each record's received bytes (stored verbatim in its log) together with the
 * record unpacked from them on arrival: nothing is unpacked or packed again here. */
static int apply_batch(apply_job_t *j)
{
    ekv_repl_replica_t *r = j->r;
    size_t n = 0;
    for (item_t *it = j->items; it; it = it->next)
        n += it->n;
    ekv_log_batch_t b = {0};
    b.recs = calloc(n, sizeof(*b.recs));
    if (!b.recs)
        return EKV_ENOMEM;
    for (item_t *it = j->items; it; it = it->next) {
        const ProtobufCBinaryData *bytes = it->frame->change_batch->records;
        for (size_t i = 0; i < it->n; i++) {
            ekv_log_record_t *lr = &b.recs[b.count++];
            lr->seq = it->recs[i]->seq;
            lr->data = bytes[i].data;
            lr->len = bytes[i].len;
            lr->rec = it->recs[i];
            b.bytes += bytes[i].len;
        }
    }
    int rc = ekv_store_apply_records(r->o.store, &b);
    if (!rc)
        j->last_seq = b.recs[b.count - 1].seq;
    free(b.recs); /* the bytes and records belong to the items */
    return rc;
}

static int apply_chunk(apply_job_t *j)
{
    ekv_repl_replica_t *r = j->r;
    const Edgekv__SnapshotChunk *ch = j->items->frame->snapshot_chunk;
    int cf = ekv_repl_snapshot_cf(ch->column_family);
    ekv_snapshot_chunk_t c = {0};
    c.entries = calloc(ch->n_entries ? ch->n_entries : 1, sizeof(*c.entries));
    if (!c.entries)
        return EKV_ENOMEM;
    for (size_t i = 0; i < ch->n_entries; i++) {
        const Edgekv__KeyValue *kv = ch->entries[i];
        ekv_snapshot_entry_t *e = &c.entries[c.count++];
        e->cf = cf;
        e->key = (char *)kv->key.data; /* borrowed: ingest_chunk only reads */
        e->key_len = kv->key.len;
        e->value = (char *)kv->value.data;
        e->value_len = kv->value.len;
        c.bytes += kv->key.len + kv->value.len;
        ekv_repl_snapshot_hash_entry(r->xxh, ch->column_family, kv->key.data, kv->key.len,
                                     kv->value.data, kv->value.len);
    }
    int rc = ekv_store_ingest_chunk(r->o.store, &c);
    free(c.entries); /* the entries' bytes belong to the frame */
    return rc;
}

/* Keys-only follower: nothing is stored; runs on the loop. */
static void apply_keys_only(apply_job_t *j)
{
    ekv_repl_replica_t *r = j->r;
    item_t *it = j->items;
    j->rc = 0;
    switch (it->kind) {
    case IT_ADOPT:
        break;
    case IT_BATCH:
        for (item_t *x = it; x; x = x->next)
            j->last_seq = x->changes[x->n - 1]->seq;
        break;
    case IT_BEGIN:
        XXH64_reset(r->xxh, 0);
        if (r->o.on_catalog_begin)
            r->o.on_catalog_begin(r->o.ctx);
        break;
    case IT_CHUNK: {
        const Edgekv__SnapshotChunk *ch = it->frame->snapshot_chunk;
        int meta = ekv_repl_snapshot_cf(ch->column_family) == EKV_SNAP_CF_META;
        for (size_t i = 0; i < ch->n_entries; i++) {
            const Edgekv__KeyValue *kv = ch->entries[i];
            ekv_repl_snapshot_hash_entry(r->xxh, ch->column_family, kv->key.data, kv->key.len,
                                         kv->value.data, kv->value.len);
            if (meta && r->o.on_catalog_entry)
                r->o.on_catalog_entry(r->o.ctx, (const char *)kv->key.data, kv->key.len,
                                      (const char *)kv->value.data, kv->value.len);
        }
        break;
    }
    case IT_END: {
        const Edgekv__SnapshotEnd *e = it->frame->snapshot_end;
        uint64_t sum = XXH64_digest(r->xxh);
        if (e->checksum && sum != e->checksum) {
            snprintf(j->why, sizeof(j->why), "catalog snapshot checksum mismatch");
            j->rc = EKV_EREPL_FRAME_MALFORMED;
            break;
        }
        j->last_seq = e->snapshot_seq;
        break;
    }
    }
}

static void apply_work(ekv_job_t *job)
{
    apply_job_t *j = (apply_job_t *)job;
    ekv_repl_replica_t *r = j->r;
    item_t *it = j->items;
    j->why[0] = '\0';
    if (r->o.keys_only) {
        apply_keys_only(j);
        return;
    }
    switch (it->kind) {
    case IT_ADOPT:
        j->rc = ekv_store_node_save(r->o.store, &it->adopt);
        break;
    case IT_BATCH:
        j->rc = apply_batch(j);
        break;
    case IT_BEGIN:
        XXH64_reset(r->xxh, 0);
        j->rc = ekv_store_ingest_begin(r->o.store);
        break;
    case IT_CHUNK:
        j->rc = apply_chunk(j);
        break;
    case IT_END: {
        const Edgekv__SnapshotEnd *e = it->frame->snapshot_end;
        uint64_t sum = XXH64_digest(r->xxh);
        if (e->checksum && sum != e->checksum) {
            snprintf(j->why, sizeof(j->why),
                     "snapshot checksum mismatch: got %016" PRIx64 ", primary sent %016" PRIx64,
                     sum, e->checksum);
            j->rc = EKV_EREPL_FRAME_MALFORMED;
            break;
        }
        j->rc = ekv_store_ingest_end(r->o.store, e->snapshot_seq);
        if (!j->rc) {
            j->last_seq = e->snapshot_seq;
            if (r->o.after_ingest_work)
                j->loaded = r->o.after_ingest_work(r->o.ctx);
        }
        break;
    }
    }
}

static void note_lag(ekv_repl_replica_t *r, const item_t *items)
{
    int64_t now = ekv_clock_now_ms();
    for (const item_t *it = items; it; it = it->next) {
        for (size_t i = 0; i < it->n; i++) {
            int64_t d = now - it->changes[i]->commit_time_ms;
            d = d < 0 ? 0 : d > INT32_MAX ? INT32_MAX : d;
            r->lag[r->nlag++ % LAG_SAMPLES] = (int32_t)d;
            int bk = 0;
            while (bk < EKV_REPL_LAG_BUCKETS - 1 && d > ekv_repl_lag_bucket_ms[bk])
                bk++;
            r->lag_hist[bk]++;
            r->lag_sum_ms += (uint64_t)d;
        }
    }
}

static void apply_done(ekv_job_t *job)
{
    apply_job_t *j = (apply_job_t *)job;
    ekv_repl_replica_t *r = j->r;
    item_t *items = j->items;
    j->items = NULL;
    r->busy = 0;
    if (j->rc) {
        char why[256];
        snprintf(why, sizeof(why), "apply failed (%s): %s", ekv_err_name(j->rc),
                 j->why[0] ? j->why : "nothing written");
        ekv_log_error("replica apply failed", "kind=%d err=%s detail=\"%s\" applied_seq=%" PRIu64,
                      (int)items->kind, ekv_err_name(j->rc), j->why, r->applied_seq);
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_INTERNAL, why);
        if (j->loaded && r->o.after_ingest_done)
            r->o.after_ingest_done(r->o.ctx, j->loaded);
    } else {
        switch (items->kind) {
        case IT_ADOPT:
            *r->o.node = items->adopt;
            break;
        case IT_BATCH: {
            note_lag(r, items);
            if (r->o.on_applied)
                for (item_t *it = items; it; it = it->next)
                    r->o.on_applied(r->o.ctx, it->changes, it->n);
            /* only now: readers of applied_seq rely on the caches being updated */
            r->applied_seq = j->last_seq;
            if (r->o.on_progress)
                r->o.on_progress(r->o.ctx);
            r->pending_first_ms = 0;
            for (item_t *it = r->qh; it; it = it->next)
                if (it->kind == IT_BATCH) {
                    r->pending_first_ms = it->changes[0]->commit_time_ms;
                    break;
                }
            send_ack(r);
            break;
        }
        case IT_END:
            r->applied_seq = j->last_seq;
            r->snapshots++;
            ekv_log_info("snapshot complete",
                         "snapshot_seq=%" PRIu64 " chunks=%" PRIu64 " entries=%" PRIu64,
                         j->last_seq, items->frame->snapshot_end->chunk_count,
                         items->frame->snapshot_end->entry_count);
            if (r->o.after_ingest_done)
                r->o.after_ingest_done(r->o.ctx, j->loaded);
            if (r->o.on_progress)
                r->o.on_progress(r->o.ctx);
            send_ack(r);
            break;
        default:
            break;
        }
    }
    j->loaded = NULL;
    for (item_t *it = items, *next; it; it = next) {
        next = it->next;
        r->qbytes -= it->bytes <= r->qbytes ? it->bytes : r->qbytes;
        item_free(it);
    }
    if (r->conn && r->qbytes < QUEUE_RESUME_BYTES)
        ekv_repl_link_resume(&r->conn->link);
    if (r->stopping)
        maybe_stopped(r);
    else
        pump(r);
}

/* Start the next apply job if none is running. Consecutive batches are merged into one
 * WriteBatch (one fsync) when the replica is behind. */
static void pump(ekv_repl_replica_t *r)
{
    if (r->busy || !r->qh || r->stopping)
        return;
    item_t *first = r->qh, *last = first;
    if (first->kind == IT_BATCH) {
        size_t recs = first->n, bytes = first->payload;
        while (last->next && last->next->kind == IT_BATCH &&
               recs + last->next->n <= MERGE_MAX_RECORDS &&
               bytes + last->next->payload <= MERGE_MAX_BYTES) {
            last = last->next;
            recs += last->n;
            bytes += last->payload;
        }
    }
    r->qh = last->next;
    if (!r->qh)
        r->qt = NULL;
    last->next = NULL;
    apply_job_t *j = &r->job;
    memset(j, 0, sizeof(*j));
    j->job.work = apply_work;
    j->job.done = apply_done;
    j->r = r;
    j->items = first;
    r->busy = 1;
    if (r->o.keys_only) { /* nothing to write: apply on the loop, in order */
        apply_work(&j->job);
        apply_done(&j->job);
        return;
    }
    if (ekv_workq_submit(&r->applier, &j->job)) { /* cannot happen: queue of 4, one job */
        r->busy = 0;
        j->rc = EKV_EBUSY;
        apply_done(&j->job);
    }
}

/* ---------------------------------------------------------------- timers, lifecycle */

static void on_tick(uv_timer_t *t)
{
    ekv_repl_replica_t *r = t->data;
    if (!r->conn || r->conn->link.closing)
        return;
    uint64_t now = ekv_clock_mono_ns();
    uint64_t tmo = (uint64_t)r->o.timeout_ms * 1000000ull;
    char why[96];
    if (r->state == RS_CONNECTING) {
        if (now - r->state_since_ns > tmo)
            close_link(r, 0, "connect timed out");
        return;
    }
    if (now - r->conn->link.last_recv_ns > tmo) {
        snprintf(why, sizeof(why), "nothing from the primary for %llu ms",
                 (unsigned long long)((now - r->conn->link.last_recv_ns) / 1000000ull));
        close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_TOO_SLOW, why);
        return;
    }
    if (r->state == RS_STREAMING && r->attempts && now - r->state_since_ns > tmo)
        r->attempts = 0; /* a link that streamed for a while resets the backoff */
    if ((r->state == RS_STREAMING || r->state == RS_SNAPSHOT) &&
        now - r->last_ack_ns >= (uint64_t)r->o.heartbeat_ms * 1000000ull)
        send_ack(r); /* keepalive: the primary drops replicas that stay silent */
}

int ekv_repl_replica_set_primary(ekv_repl_replica_t *r, const char *addr)
{
    char host[256];
    int port;
    if (ekv_repl_parse_addr(addr, host, sizeof(host), &port) || port == 0)
        return EKV_EBAD_REQUEST;
    int i = 0;
    while (i < r->nprimaries && !(r->ports[i] == port && !strcmp(r->hosts[i], host)))
        i++;
    int fresh = i == r->nprimaries;
    if (fresh) { /* new: take a free slot, or the last one */
        if (r->nprimaries < MAX_PRIMARIES)
            r->nprimaries++;
        i = r->nprimaries - 1;
        snprintf(r->hosts[i], sizeof(r->hosts[i]), "%s", host);
        r->ports[i] = port;
    }
    int moved = r->cur != i || fresh; /* (a reused last slot held another address) */
    r->cur = i;
    r->pinned = 1;
    if (r->stopping)
        return 0;
    if (r->conn) {
        if (moved) {
            ekv_log_info("replica: the coordinator names the primary", "primary=%s", addr);
            r->attempts = 0;
            close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_SHUTDOWN,
                       "the coordinator names another primary");
        }
    } else if (r->state == RS_BACKOFF && !r->busy) { /* no waiting out the backoff */
        ekv_log_info("replica: the coordinator names the primary", "primary=%s", addr);
        r->attempts = 0;
        uv_timer_start(&r->backoff_timer, on_backoff_timer, 0, 0);
    }
    return 0;
}

int ekv_repl_replica_start(ekv_repl_replica_t **out, const ekv_repl_replica_opts_t *o)
{
    ekv_repl_replica_t *r = calloc(1, sizeof(*r));
    if (!r)
        return EKV_ENOMEM;
    r->o = *o;
    if (r->o.heartbeat_ms <= 0)
        r->o.heartbeat_ms = 1000;
    if (r->o.timeout_ms <= 0)
        r->o.timeout_ms = 10000;
    const char *p = o->primaries ? o->primaries : "";
    while (*p && r->nprimaries < MAX_PRIMARIES) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char addr[256];
        if (n == 0 || n >= sizeof(addr) ||
            (memcpy(addr, p, n), addr[n] = '\0',
             ekv_repl_parse_addr(addr, r->hosts[r->nprimaries], sizeof(r->hosts[0]),
                                 &r->ports[r->nprimaries])) ||
            r->ports[r->nprimaries] == 0) {
            ekv_log_error("bad --primary address (want HOST:PORT[,HOST:PORT...])", "value=\"%s\"",
                          o->primaries);
            free(r);
            return EKV_EBAD_REQUEST;
        }
        r->nprimaries++;
        p = e ? e + 1 : p + n;
    }
    r->o.primaries = NULL; /* parsed: the caller's string need not outlive this call */
    if (!r->nprimaries && !o->primary_from_coordinator) {
        ekv_log_error("a replica needs --primary HOST:PORT", "%s", "");
        free(r);
        return EKV_EBAD_REQUEST;
    }
    r->xxh = XXH64_createState();
    if (!r->xxh || ekv_doneq_init(&r->doneq, o->loop)) {
        XXH64_freeState(r->xxh);
        free(r);
        return EKV_ENOMEM;
    }
    if (ekv_workq_init(&r->applier, "repl-apply", 1, 4, &r->doneq)) {
        ekv_doneq_close(&r->doneq);
        return EKV_ENOMEM; /* r stays allocated: the doneq handle closes on the next turn */
    }
    r->applied_seq =
        !o->store || ekv_store_ingest_pending(o->store) ? 0 : ekv_store_last_seq(o->store);
    r->state = RS_BACKOFF;
    uv_timer_init(o->loop, &r->backoff_timer);
    uv_timer_init(o->loop, &r->tick);
    r->backoff_timer.data = r->tick.data = r;
    r->handles_open = 2;
    int every = r->o.heartbeat_ms < 250 ? r->o.heartbeat_ms : 250;
    uv_timer_start(&r->tick, on_tick, (uint64_t)every, (uint64_t)every);
    srand((unsigned)ekv_clock_mono_ns());
    connect_next(r);
    *out = r;
    return 0;
}

uint64_t ekv_repl_replica_applied_seq(const ekv_repl_replica_t *r)
{
    return r->applied_seq;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

void ekv_repl_replica_info(const ekv_repl_replica_t *r, ekv_repl_replica_info_t *out)
{
    memset(out, 0, sizeof(*out));
    out->state = state_name(r->state);
    snprintf(out->primary_addr, sizeof(out->primary_addr), "%s:%d", r->hosts[r->cur],
             r->ports[r->cur]);
    snprintf(out->primary_node_id, sizeof(out->primary_node_id), "%s", r->primary_node_id);
    snprintf(out->primary_url, sizeof(out->primary_url), "%s", r->primary_url);
    out->applied_seq = r->applied_seq;
    out->primary_latest_seq = r->primary_latest_seq;
    out->lag_seqs =
        r->primary_latest_seq > r->applied_seq ? r->primary_latest_seq - r->applied_seq : 0;
    int64_t now = ekv_clock_now_ms();
    out->lag_ms = out->lag_seqs && r->pending_first_ms && now > r->pending_first_ms
                      ? now - r->pending_first_ms
                      : 0;
    out->snapshots = r->snapshots;
    out->snapshot_attempts = r->snapshot_attempts;
    out->connects = r->connects;
    out->reconnects = r->reconnects;
    out->discarded_records = r->discarded;
    size_t n = r->nlag < LAG_SAMPLES ? (size_t)r->nlag : LAG_SAMPLES;
    out->apply_lag_samples = r->nlag;
    uint64_t cum = 0;
    for (int i = 0; i < EKV_REPL_LAG_BUCKETS; i++)
        out->apply_lag_hist[i] = (cum += r->lag_hist[i]);
    out->apply_lag_sum_ms = r->lag_sum_ms;
    if (n) {
        int32_t *v = malloc(n * sizeof(*v));
        if (v) {
            memcpy(v, r->lag, n * sizeof(*v));
            qsort(v, n, sizeof(*v), cmp_i32);
            out->apply_lag_p50_ms = v[(n - 1) / 2];
            out->apply_lag_p99_ms = v[(n * 99 + 99) / 100 - 1];
            free(v);
        }
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    ekv_repl_replica_t *r = h->data;
    r->handles_open--;
    maybe_stopped(r);
}

static void maybe_stopped(ekv_repl_replica_t *r)
{
    if (!r->stopping || !r->stop_done || r->handles_open > 0 || r->busy)
        return;
    ekv_doneq_close(&r->doneq);
    void (*done)(void *) = r->stop_done;
    r->stop_done = NULL;
    done(r->stop_arg);
}

void ekv_repl_replica_stop(ekv_repl_replica_t *r, void (*done)(void *arg), void *arg)
{
    r->stopping = 1;
    r->stop_done = done;
    r->stop_arg = arg;
    queue_clear(r);
    close_link(r, EDGEKV__REPL_ERROR_CODE__REPL_ERROR_SHUTDOWN, "replica stopping");
    uv_timer_stop(&r->backoff_timer);
    uv_close((uv_handle_t *)&r->backoff_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->tick, on_handle_closed);
    if (!r->conn)
        set_state(r, RS_STOPPED, "stopping");
    maybe_stopped(r);
}

void ekv_repl_replica_free(ekv_repl_replica_t *r)
{
    if (!r)
        return;
    ekv_workq_deinit(&r->applier);
    XXH64_freeState(r->xxh);
    free(r);
}
