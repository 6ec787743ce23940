/*
 * repl.c - the storage-side primitives of replication (store.h, "for replication"):
 *
 *  - ekv_store_log_read: reader threads stream the log. Like kvrocks, never trust an iterator
 *    to land where asked: RocksDB seeks silently past a trimmed range, so the first record
 *    must be exactly from_seq (else EKV_ELOG_GAP) and every following one its predecessor + 1
 *    (the run stops at a hole). The iterator's upper bound is be64(last_seq + 1) with last_seq
 *    loaded BEFORE the read, so only records known committed are returned.
 *  - trim pins: a small fixed table under pin_lock, read by the trimmer (changelog.c), which
 *    decides its range and raises pin_floor to the range's end under the lock, then deletes
 *    with the lock released. pin_floor is the first record no trim has removed or is about to
 *    remove, so a successful pin is a guarantee, not a hope (the argument is in
 *    ekv__log_trim), and taking a pin never waits for a RocksDB write.
 *  - ekv_store_apply_records: an internal op (EKV__OP_APPLY_RECORDS) through the committer
 *    queue, so the store keeps one writer; apply.c maps each record back to the primary's op.
 *  - ekv_store_checksum: XXH3 over a snapshot of the replicated CFs.
 */
#include "common/errors.h"
#include "common/log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t ekv_store_last_seq(ekv_store_t *s)
{
    return atomic_load_explicit(&s->pub_last_seq, memory_order_acquire);
}

void ekv_log_batch_clear(ekv_log_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->count; i++)
        free(b->recs[i].data);
    free(b->recs);
    b->recs = NULL;
    b->count = 0;
    b->bytes = 0;
}

/* Append a copy of one record; 0 or EKV_ENOMEM. *cap is the recs capacity. */
static int batch_push(ekv_log_batch_t *b, size_t *cap, uint64_t seq, const char *v, size_t len)
{
    if (b->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        ekv_log_record_t *n = realloc(b->recs, ncap * sizeof(*n));
        if (!n)
            return EKV_ENOMEM;
        b->recs = n;
        *cap = ncap;
    }
    uint8_t *d = malloc(len ? len : 1);
    if (!d)
        return EKV_ENOMEM;
    if (len)
        memcpy(d, v, len);
    b->recs[b->count].seq = seq;
    b->recs[b->count].data = d;
    b->recs[b->count].len = len;
    b->recs[b->count].rec = NULL;
    b->count++;
    b->bytes += len;
    return 0;
}

int ekv_store_log_read(ekv_store_t *s, uint64_t from_seq, size_t max_records, size_t max_bytes,
                       ekv_log_batch_t *out)
{
    memset(out, 0, sizeof(*out));
    if (from_seq == 0)
        return EKV_EBAD_REQUEST;
    if (max_records == 0)
        max_records = 1;
    uint64_t last = ekv_store_last_seq(s); /* before the read: only committed records */
    if (from_seq > last)
        return 0; /* caught up */

    char lo[EKV_KEY_LOG_LEN], hi[EKV_KEY_LOG_LEN];
    ekv_key_log(lo, from_seq);
    ekv_key_log(hi, last + 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, sizeof(hi));
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_LOG]);
    size_t cap = 0;
    uint64_t want = from_seq;
    int rc = 0;
    for (rocksdb_iter_seek(it, lo, sizeof(lo)); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        if (out->count == max_records)
            break;
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        uint64_t seq;
        if (ekv_key_log_parse(k, klen, &seq) != 0 || seq != want)
            break; /* a hole (or the trimmed head, checked below) */
        const char *v = rocksdb_iter_value(it, &vlen);
        if (out->count > 0 && out->bytes + vlen > max_bytes)
            break;
        if ((rc = batch_push(out, &cap, seq, v, vlen)))
            break;
        want++;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err && !rc)
        rc = ekv__store_rocks_err("log read", err);
    else
        free(err);
    if (!rc && out->count == 0)
        rc = EKV_ELOG_GAP; /* from_seq <= last but not there: trimmed (or a hole) */
    if (rc)
        ekv_log_batch_clear(out);
    return rc;
}

/* ---- trim pins ---- */

uint64_t ekv__pin_lowest_locked(ekv_store_t *s)
{
    uint64_t low = 0;
    for (int i = 0; i < EKV_LOG_MAX_PINS; i++)
        if (s->pins[i] && (!low || s->pins[i] < low))
            low = s->pins[i];
    return low;
}

/* Publish the lowest pin in the stats; caller holds pin_lock (order: pin, then stats). */
static void pins_changed_locked(ekv_store_t *s)
{
    uint64_t low = ekv__pin_lowest_locked(s);
    pthread_mutex_lock(&s->stats_lock);
    s->st.lowest_pin = low;
    pthread_mutex_unlock(&s->stats_lock);
}

int ekv_store_log_pin(ekv_store_t *s, uint64_t seq, int *pin_id)
{
    *pin_id = -1;
    if (seq == 0)
        return EKV_EBAD_REQUEST;
    int rc = EKV_EBUSY;
    pthread_mutex_lock(&s->pin_lock);
    if (seq < s->pin_floor) {
        rc = EKV_ELOG_GAP;
    } else {
        for (int i = 0; i < EKV_LOG_MAX_PINS; i++) {
            if (!s->pins[i]) {
                s->pins[i] = seq;
                *pin_id = i;
                rc = 0;
                pins_changed_locked(s);
                break;
            }
        }
    }
    pthread_mutex_unlock(&s->pin_lock);
    return rc;
}

int ekv_store_log_pin_move(ekv_store_t *s, int pin_id, uint64_t seq)
{
    if (seq == 0 || pin_id < 0 || pin_id >= EKV_LOG_MAX_PINS)
        return EKV_EBAD_REQUEST;
    int rc = 0;
    pthread_mutex_lock(&s->pin_lock);
    if (!s->pins[pin_id]) {
        rc = EKV_EBAD_REQUEST;
    } else if (seq < s->pin_floor) {
        rc = EKV_ELOG_GAP;
    } else {
        s->pins[pin_id] = seq;
        pins_changed_locked(s);
    }
    pthread_mutex_unlock(&s->pin_lock);
    return rc;
}

int ekv_store_log_unpin(ekv_store_t *s, int pin_id)
{
    if (pin_id < 0 || pin_id >= EKV_LOG_MAX_PINS)
        return EKV_EBAD_REQUEST;
    int rc = 0;
    pthread_mutex_lock(&s->pin_lock);
    if (!s->pins[pin_id]) {
        rc = EKV_EBAD_REQUEST;
    } else {
        s->pins[pin_id] = 0;
        pins_changed_locked(s);
    }
    pthread_mutex_unlock(&s->pin_lock);
    return rc;
}

/* ---- replica apply ---- */

int ekv_store_apply_records(ekv_store_t *s, const ekv_log_batch_t *batch)
{
    if (!batch)
        return EKV_EBAD_REQUEST;
    if (!batch->count)
        return 0;
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV__OP_APPLY_RECORDS;
    w.udata = (void *)(uintptr_t)batch; /* read only by apply.c */
    return ekv_store_write_sync(s, &w);
}

/* ---- checksum ---- */

/* Raw entries of these CFs; KV keys (kvmeta + kvval) are hashed by kv_checksum below. */
static const ekv_cf_t checksum_raw_cfs[] = {EKV_CF_META, EKV_CF_DOKV, EKV_CF_DOALARM};

/* Node-local meta keys ("s/..." : s/last_seq) are not part of the replicated state. */
static int node_local(ekv_cf_t cf, const char *k, size_t len)
{
    return cf == EKV_CF_META && len >= 2 && k[0] == 's' && k[1] == '/';
}

static void hash_be64(XXH3_state_t *h, uint64_t x)
{
    char b[8];
    ekv_be64_put(b, x);
    XXH3_64bits_update(h, b, sizeof(b));
}

/* (u8 cf id, be64 key length, key, be64 value length, value) */
static void hash_raw(XXH3_state_t *h, ekv_cf_t cf, const char *k, size_t klen, const char *v,
                     size_t vlen)
{
    uint8_t id = (uint8_t)cf;
    XXH3_64bits_update(h, &id, 1);
    hash_be64(h, klen);
    XXH3_64bits_update(h, k, klen);
    hash_be64(h, vlen);
    XXH3_64bits_update(h, v, vlen);
}

/* One KV key by its content, whatever its layout (value inline or in kvval): (u8 kvmeta id,
 * be64 key length, key, be64 expiration, be64 metadata length, metadata, be64 flags, be64
 * value length, u8 value found, value). */
static void hash_kv(XXH3_state_t *h, const char *k, size_t klen, const ekv_envelope_t *env,
                    const char *v, size_t vlen, int found)
{
    uint8_t id = (uint8_t)EKV_CF_KVMETA, f = (uint8_t)found;
    XXH3_64bits_update(h, &id, 1);
    hash_be64(h, klen);
    XXH3_64bits_update(h, k, klen);
    hash_be64(h, (uint64_t)env->expiration);
    hash_be64(h, env->metadata_len);
    if (env->metadata_len)
        XXH3_64bits_update(h, env->metadata, env->metadata_len);
    hash_be64(h, env->flags);
    hash_be64(h, vlen);
    XXH3_64bits_update(h, &f, 1);
    if (vlen)
        XXH3_64bits_update(h, v, vlen);
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* Walk kvmeta and kvval together (both in key order). Each key counts once: an envelope with
 * its value inline is hashed exactly as one whose value sits in kvval, so nodes that wrote the
 * same record in different layouts (envelope versions 1 and 2) agree. A kvval entry no
 * envelope claims (an orphan: none is ever written) and an envelope that does not decode are
 * hashed raw and counted, so damage still shows. */
static int kv_checksum(ekv_store_t *s, const rocksdb_readoptions_t *ro, XXH3_state_t *h,
                       uint64_t *n)
{
    rocksdb_iterator_t *mi = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_KVMETA]);
    rocksdb_iterator_t *vi = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_KVVAL]);
    rocksdb_iter_seek_to_first(vi);
    for (rocksdb_iter_seek_to_first(mi); rocksdb_iter_valid(mi); rocksdb_iter_next(mi)) {
        size_t klen, elen, vlen = 0;
        const char *k = rocksdb_iter_key(mi, &klen), *e = rocksdb_iter_value(mi, &elen);
        /* orphans before this key */
        int c = 1;
        while (rocksdb_iter_valid(vi)) {
            size_t vklen;
            const char *vk = rocksdb_iter_key(vi, &vklen);
            if ((c = key_cmp(vk, vklen, k, klen)) >= 0)
                break;
            const char *v = rocksdb_iter_value(vi, &vlen);
            hash_raw(h, EKV_CF_KVVAL, vk, vklen, v, vlen);
            ++*n;
            rocksdb_iter_next(vi);
        }
        int same = rocksdb_iter_valid(vi) && c == 0;
        ekv_envelope_t env;
        ++*n;
        if (ekv_envelope_decode(e, elen, &env) != 0) {
            hash_raw(h, EKV_CF_KVMETA, k, klen, e, elen); /* a kvval entry here is an orphan */
            continue;
        }
        if (env.has_value) {
            hash_kv(h, k, klen, &env, env.value, env.value_len, 1);
            continue; /* a kvval entry here is an orphan, hashed by the next round */
        }
        const char *v = same ? rocksdb_iter_value(vi, &vlen) : NULL;
        hash_kv(h, k, klen, &env, v, same ? vlen : 0, same);
        if (same)
            rocksdb_iter_next(vi);
    }
    for (; rocksdb_iter_valid(vi); rocksdb_iter_next(vi)) { /* orphans after the last key */
        size_t vklen, vlen;
        const char *vk = rocksdb_iter_key(vi, &vklen), *v = rocksdb_iter_value(vi, &vlen);
        hash_raw(h, EKV_CF_KVVAL, vk, vklen, v, vlen);
        ++*n;
    }
    char *err = NULL;
    rocksdb_iter_get_error(mi, &err);
    if (!err)
        rocksdb_iter_get_error(vi, &err);
    rocksdb_iter_destroy(mi);
    rocksdb_iter_destroy(vi);
    return err ? ekv__store_rocks_err("checksum scan", err) : 0;
}

int ekv_store_checksum(ekv_store_t *s, uint64_t *sum, uint64_t *nkeys)
{
    *sum = 0;
    *nkeys = 0;
    XXH3_state_t *h = XXH3_createState();
    if (!h)
        return EKV_ENOMEM;
    XXH3_64bits_reset(h);
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_readoptions_set_fill_cache(ro, 0); /* a full scan must not evict the hot set */
    uint64_t n = 0;
    int rc = 0;
    for (size_t c = 0; c < sizeof(checksum_raw_cfs) / sizeof(checksum_raw_cfs[0]) && !rc; c++) {
        ekv_cf_t cf = checksum_raw_cfs[c];
        rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (node_local(cf, k, klen))
                continue;
            const char *v = rocksdb_iter_value(it, &vlen);
            hash_raw(h, cf, k, klen, v, vlen);
            n++;
        }
        char *err = NULL;
        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
        if (err)
            rc = ekv__store_rocks_err("checksum scan", err);
        if (!rc && cf == EKV_CF_META) /* KV keys in their old place in the order */
            rc = kv_checksum(s, ro, h, &n);
    }
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db, snap);
    if (!rc) {
        *sum = XXH3_64bits_digest(h);
        *nkeys = n;
    }
    XXH3_freeState(h);
    return rc;
}
