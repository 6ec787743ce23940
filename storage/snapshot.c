/*
 * snapshot.c - the storage side of snapshot bootstrap (store.h, "snapshots"):
 *
 *  - source (primary, reader threads): a RocksDB snapshot plus a log pin. The pin is taken
 *    FIRST at last_seq + 1 (last_seq loaded before the snapshot, so <= the snapshot's seq),
 *    then the snapshot, then S = s/last_seq is read through the snapshot itself (it is written
 *    in the same WriteBatch as the data it counts, so S and the data agree exactly), then the
 *    pin is moved forward to S + 1. A pin never moves below itself, so the move cannot fail.
 *  - ekv_store_snapshot_next is stateless: each call opens an iterator on the snapshot, seeks
 *    to the position's key, skips it if present, and copies entries until max_bytes. A
 *    transfer can therefore resume from any acknowledged position, and nothing is buffered
 *    beyond one chunk.
 *  - ingest (replica): three internal ops run by the committer alone (ekv__ingest_run):
 *    BEGIN wipes the replicated CFs and the log and writes the s/ingest marker in one synced
 *    batch; CHUNK puts entries (unsynced); END writes s/last_seq = S, removes the marker
 *    (synced) and reloads the committer's state.
 */
#include "common/errors.h"
#include "common/log.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((int)EKV_SNAP_CF_META == (int)EKV_CF_META, "snapshot cf ids");
_Static_assert((int)EKV_SNAP_CF_KVMETA == (int)EKV_CF_KVMETA, "snapshot cf ids");
_Static_assert((int)EKV_SNAP_CF_KVVAL == (int)EKV_CF_KVVAL, "snapshot cf ids");
_Static_assert((int)EKV_SNAP_CF_EXP == (int)EKV_CF_EXP, "snapshot cf ids");
_Static_assert((int)EKV_SNAP_CF_DOKV == (int)EKV_CF_DOKV, "snapshot cf ids");
_Static_assert((int)EKV_SNAP_CF_DOALARM == (int)EKV_CF_DOALARM, "snapshot cf ids");

#define SNAP_CF_FIRST EKV_SNAP_CF_META
#define SNAP_CF_LAST  EKV_SNAP_CF_DOALARM
#define PIN_ATTEMPTS  16

struct ekv_snapshot_s {
    ekv_store_t *s;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ro; /* at snap, no cache fill; read-only after open */
    uint64_t seq;
    int pin_id;
};

/* Node-local meta keys ("s/...") are not replicated. */
static int node_local(int cf, const char *k, size_t len)
{
    return cf == EKV_CF_META && len >= 2 && k[0] == 's' && k[1] == '/';
}

/* ---- source ---- */

int ekv_store_snapshot_open(ekv_store_t *s, ekv_snapshot_t **out)
{
    *out = NULL;
    ekv_snapshot_t *sn = calloc(1, sizeof(*sn));
    if (!sn)
        return EKV_ENOMEM;
    sn->s = s;
    sn->pin_id = -1;

    /* pin at last_seq + 1 BEFORE the snapshot: the snapshot's seq is >= that last_seq */
    int rc = EKV_ELOG_GAP;
    uint64_t pinned = 0;
    for (int i = 0; i < PIN_ATTEMPTS && rc == EKV_ELOG_GAP; i++) {
        pinned = ekv_store_last_seq(s) + 1;
        rc = ekv_store_log_pin(s, pinned, &sn->pin_id);
    }
    if (rc) {
        free(sn);
        return rc;
    }
    sn->snap = rocksdb_create_snapshot(s->db);
    sn->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(sn->ro, sn->snap);
    rocksdb_readoptions_set_fill_cache(sn->ro, 0); /* a full scan must not evict the hot set */

    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, sn->ro, s->cf[EKV_CF_META], EKV_KEY_LAST_SEQ,
                             EKV_KEY_LAST_SEQ_LEN, &len, &err);
    if (err) {
        rc = ekv__store_rocks_err("snapshot last_seq", err);
    } else if (v && len != 8) {
        ekv_log_error("bad s/last_seq record", "len=%zu", len);
        rc = EKV_ESTORAGE;
    } else {
        sn->seq = v ? ekv_be64_get(v) : 0;
        if (sn->seq + 1 < pinned) { /* cannot happen: s/last_seq only grows */
            ekv_log_error("snapshot seq below pin", "seq=%" PRIu64 " pin=%" PRIu64, sn->seq,
                          pinned);
            rc = EKV_EINTERNAL;
        } else {
            rc = ekv_store_log_pin_move(s, sn->pin_id, sn->seq + 1);
        }
    }
    free(v);
    if (rc) {
        ekv_store_snapshot_close(sn);
        return rc;
    }
    ekv_log_info("snapshot opened", "seq=%" PRIu64 " pin=%d", sn->seq, sn->pin_id);
    *out = sn;
    return 0;
}

uint64_t ekv_store_snapshot_seq(const ekv_snapshot_t *snap)
{
    return snap->seq;
}

void ekv_store_snapshot_close(ekv_snapshot_t *snap)
{
    if (!snap)
        return;
    if (snap->ro)
        rocksdb_readoptions_destroy(snap->ro);
    if (snap->snap)
        rocksdb_release_snapshot(snap->s->db, snap->snap);
    if (snap->pin_id >= 0)
        ekv_store_log_unpin(snap->s, snap->pin_id);
    free(snap);
}

void ekv_snapshot_chunk_clear(ekv_snapshot_chunk_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++)
        free(c->entries[i].key);
    free(c->entries);
    memset(c, 0, sizeof(*c));
}

/* Append a copy of (k, v); 0 or EKV_ENOMEM. *cap is the entries capacity. */
static int chunk_push(ekv_snapshot_chunk_t *c, size_t *cap, int cf, const char *k, size_t klen,
                      const char *v, size_t vlen)
{
    if (c->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        ekv_snapshot_entry_t *n = realloc(c->entries, ncap * sizeof(*n));
        if (!n)
            return EKV_ENOMEM;
        c->entries = n;
        *cap = ncap;
    }
    char *d = malloc(klen + vlen + 1);
    if (!d)
        return EKV_ENOMEM;
    if (klen)
        memcpy(d, k, klen);
    if (vlen)
        memcpy(d + klen, v, vlen);
    ekv_snapshot_entry_t *e = &c->entries[c->count++];
    e->cf = cf;
    e->key = d;
    e->key_len = klen;
    e->value = d + klen;
    e->value_len = vlen;
    c->bytes += klen + vlen;
    return 0;
}

int ekv_store_snapshot_next(ekv_snapshot_t *snap, const ekv_snapshot_pos_t *after, size_t max_bytes,
                            ekv_snapshot_chunk_t *out)
{
    memset(out, 0, sizeof(*out));
    if (after && after->cf != 0 &&
        (after->cf < SNAP_CF_FIRST || after->cf > SNAP_CF_LAST || (after->key_len && !after->key)))
        return EKV_EBAD_REQUEST;
    if (max_bytes == 0)
        max_bytes = 1;
    ekv_store_t *s = snap->s;
    int start_cf = after && after->cf ? after->cf : SNAP_CF_FIRST;
    size_t cap = 0;
    int rc = 0, full = 0;
    for (int cf = start_cf; cf <= SNAP_CF_LAST && !rc && !full; cf++) {
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, snap->ro, s->cf[cf]);
        if (after && after->cf == cf) {
            rocksdb_iter_seek(it, after->key_len ? after->key : "", after->key_len);
            if (rocksdb_iter_valid(it)) {
                size_t klen;
                const char *k = rocksdb_iter_key(it, &klen);
                if (klen == after->key_len && (klen == 0 || memcmp(k, after->key, klen) == 0))
                    rocksdb_iter_next(it); /* strictly after */
            }
        } else {
            rocksdb_iter_seek_to_first(it);
        }
        for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (node_local(cf, k, klen))
                continue;
            const char *v = rocksdb_iter_value(it, &vlen);
            if (out->count > 0 && out->bytes + klen + vlen > max_bytes) {
                full = 1; /* this entry remains: not done */
                break;
            }
            if ((rc = chunk_push(out, &cap, cf, k, klen, v, vlen)))
                break;
        }
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
        if (err && !rc)
            rc = ekv__store_rocks_err("snapshot scan", err);
        else
            free(err);
    }
    if (rc) {
        ekv_snapshot_chunk_clear(out);
        return rc;
    }
    out->done = !full;
    if (out->count) {
        const ekv_snapshot_entry_t *e = &out->entries[out->count - 1];
        out->next.cf = e->cf;
        out->next.key = e->key;
        out->next.key_len = e->key_len;
    } else if (after) {
        out->next = *after;
    }
    return 0;
}

/* ---- ingest (replica) ---- */

int ekv_store_ingest_pending(ekv_store_t *s)
{
    return atomic_load_explicit(&s->pub_ingesting, memory_order_acquire);
}

static void set_ingesting(ekv_store_t *s, int on)
{
    s->ingesting = on;
    atomic_store_explicit(&s->pub_ingesting, on, memory_order_release);
}

int ekv__ingest_recover(ekv_store_t *s)
{
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[EKV_CF_META], EKV_KEY_INGEST,
                             EKV_KEY_INGEST_LEN, &len, &err);
    if (err)
        return ekv__store_rocks_err("get ingest marker", err);
    set_ingesting(s, v != NULL);
    if (v)
        ekv_log_warn("unfinished snapshot ingest: data is partial, restart the ingest", "dir=%s",
                     s->dir);
    free(v);
    return 0;
}

static int ingest_op(ekv_store_t *s, ekv_op_type_t type, void *udata)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = type;
    w.udata = udata;
    return ekv_store_write_sync(s, &w);
}

int ekv_store_ingest_begin(ekv_store_t *s)
{
    return ingest_op(s, EKV__OP_INGEST_BEGIN, NULL);
}

int ekv_store_ingest_chunk(ekv_store_t *s, const ekv_snapshot_chunk_t *chunk)
{
    if (!chunk || (chunk->count && !chunk->entries))
        return EKV_EBAD_REQUEST;
    return ingest_op(s, EKV__OP_INGEST_CHUNK, (void *)(uintptr_t)chunk);
}

int ekv_store_ingest_end(ekv_store_t *s, uint64_t snap_seq)
{
    return ingest_op(s, EKV__OP_INGEST_END, &snap_seq);
}

/*
 * Add to s->wb the deletion of every key of cf in [lo, hi) (hi NULL = to the end): one
 * DeleteRange up to the last such key plus a Delete of that key, so no "infinite" end key is
 * needed. The committer is the only writer, so the range cannot grow meanwhile.
 */
static int wipe_range(ekv_store_t *s, ekv_cf_t cf, const char *lo, size_t lo_len, const char *hi,
                      size_t hi_len)
{
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    if (hi)
        rocksdb_readoptions_set_iterate_upper_bound(ro, hi, hi_len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        size_t m = klen < lo_len ? klen : lo_len;
        int cmp = m ? memcmp(k, lo, m) : 0;
        if (cmp > 0 || (cmp == 0 && klen >= lo_len)) { /* last >= lo */
            rocksdb_writebatch_delete_range_cf(s->wb, s->cf[cf], lo, lo_len, k, klen);
            rocksdb_writebatch_delete_cf(s->wb, s->cf[cf], k, klen);
        }
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return err ? ekv__store_rocks_err("ingest wipe scan", err) : 0;
}

static int write_batch(ekv_store_t *s, int sync, const char *what)
{
    char *err = NULL;
    rocksdb_write(s->db, sync ? s->wopts : s->wopts_lazy, s->wb, &err);
    return err ? ekv__store_rocks_err(what, err) : 0;
}

/* The committer's sequence state after the log was emptied: last_seq = seq, no records. */
static void reset_seq_state(ekv_store_t *s, uint64_t seq)
{
    s->last_seq = seq;
    s->first_log_seq = 0;
    s->log_bytes = 0;
    atomic_store_explicit(&s->pub_last_seq, seq, memory_order_release);
    pthread_mutex_lock(&s->pin_lock);
    s->pin_floor = seq + 1; /* records <= seq are not here */
    pthread_mutex_unlock(&s->pin_lock);
    pthread_mutex_lock(&s->stats_lock);
    s->st.last_seq = seq;
    s->st.first_log_seq = 0;
    pthread_mutex_unlock(&s->stats_lock);
}

static int ingest_begin(ekv_store_t *s)
{
    static const char s_lo[] = "s/", s_hi[] = "s0"; /* '0' follows '/' */
    int rc = wipe_range(s, EKV_CF_META, "", 0, s_lo, 2);
    if (!rc)
        rc = wipe_range(s, EKV_CF_META, s_hi, 2, NULL, 0);
    for (int cf = EKV_CF_KVMETA; cf <= EKV_CF_LOG && !rc; cf++)
        rc = wipe_range(s, (ekv_cf_t)cf, "", 0, NULL, 0);
    if (rc)
        return rc;
    ekv__log_put_last_seq(s, 0);
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], EKV_KEY_INGEST, EKV_KEY_INGEST_LEN, "", 0);
    rc = write_batch(s, 1, "ingest begin");
    if (rc)
        return rc;
    set_ingesting(s, 1);
    reset_seq_state(s, 0);
    ekv_catidx_deinit(&s->idx);
    ekv_catidx_init(&s->idx);
    s->idx_dirty = 0;
    ekv_log_info("snapshot ingest begun", "dir=%s", s->dir);
    return 0;
}

static int ingest_chunk(ekv_store_t *s, const ekv_snapshot_chunk_t *c)
{
    if (!s->ingesting)
        return EKV_EINGEST_PENDING;
    for (size_t i = 0; i < c->count; i++) {
        const ekv_snapshot_entry_t *e = &c->entries[i];
        if (e->cf < SNAP_CF_FIRST || e->cf > SNAP_CF_LAST || !e->key || !e->key_len ||
            (e->value_len && !e->value) || node_local(e->cf, e->key, e->key_len))
            return EKV_EBAD_REQUEST;
    }
    for (size_t i = 0; i < c->count; i++) {
        const ekv_snapshot_entry_t *e = &c->entries[i];
        rocksdb_writebatch_put_cf(s->wb, s->cf[e->cf], e->key, e->key_len,
                                  e->value_len ? e->value : "", e->value_len);
    }
    return c->count ? write_batch(s, 0, "ingest chunk") : 0;
}

static int ingest_end(ekv_store_t *s, uint64_t seq)
{
    if (!s->ingesting)
        return EKV_EINGEST_PENDING;
    ekv__log_put_last_seq(s, seq);
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_META], EKV_KEY_INGEST, EKV_KEY_INGEST_LEN);
    int rc = write_batch(s, 1, "ingest end");
    if (rc)
        return rc;
    reset_seq_state(s, seq);
    set_ingesting(s, 0);
    rc = ekv__catalog_index_load(s);
    if (rc)
        s->idx_dirty = 1; /* retried before the next group */
    ekv_log_info("snapshot ingest ended", "dir=%s last_seq=%" PRIu64 " namespaces=%zu", s->dir, seq,
                 s->idx.ns_by_id.count);
    return 0;
}

int ekv__ingest_run(ekv_store_t *s, ekv_write_t *w)
{
    rocksdb_writebatch_clear(s->wb);
    int rc;
    switch ((int)w->type) {
    case (int)EKV__OP_INGEST_BEGIN:
        rc = ingest_begin(s);
        break;
    case (int)EKV__OP_INGEST_CHUNK:
        rc = ingest_chunk(s, w->udata);
        break;
    case (int)EKV__OP_INGEST_END:
        rc = ingest_end(s, *(const uint64_t *)w->udata);
        break;
    default:
        rc = EKV_EINTERNAL;
        break;
    }
    rocksdb_writebatch_clear(s->wb);
    return rc;
}
