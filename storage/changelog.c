/*
 * changelog.c - the change log CF: record encoding into the group's batch, recovery of the
 * sequence state at open, and trimming.
 *
 * Records: key be64(seq), value = protobuf ChangeRecord. A KV_PUT record carries the whole
 * value; to avoid packing (copying) a value of up to 25 MiB into a scratch buffer, the record
 * is packed WITHOUT its value and the value field (tag 6, length-delimited) is appended as a
 * separate slice of the same RocksDB put (rocksdb_writebatch_putv_cf). Protobuf parsers accept
 * fields in any order, so the stored bytes decode to the full record.
 *
 * Sequence state: s/last_seq in meta is rewritten by every batch that writes records, in that
 * same batch, so it is exactly the last durable seq even after the log was trimmed empty. At
 * open, last_seq = max(s/last_seq, last log key), first_log_seq = first log key.
 *
 * Trimming (committer thread, between groups): records [first_log_seq, cut) are dropped with
 * one DeleteRange (not synced: losing a trim in a crash only keeps more log). Size: log_bytes
 * is the running total of encoded record sizes (estimated from SST/memtable sizes at open);
 * above log_retain_bytes we drop the oldest records, estimated at log_bytes / count each,
 * down to 90% of the limit. Age: when the oldest record's commit_time_ms is older than
 * log_retain_ms, a binary search over [first, last] (sequence numbers are contiguous) finds
 * the first record young enough. The newest record is never trimmed, nor any record >= the
 * lowest trim pin (repl.c).
 *
 * Replica apply (repl.c, apply.c): while s->repl_raw is set, ekv__log_put stores the
 * primary's packed record verbatim under rec->seq instead of packing rec.
 */
#include "changelog.pb-c.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define PB_VALUE_TAG  0x32 /* field 6, wire type 2 */
#define PB_TIME_FIELD 2

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

int64_t ekv__log_put(ekv_store_t *s, Edgekv__ChangeRecord *rec, const char *value, size_t value_len)
{
    if (s->repl_raw) {
        /* replica apply: the primary's record, byte for byte, under the same seq */
        char rkey[EKV_KEY_LOG_LEN];
        ekv_key_log(rkey, rec->seq);
        rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_LOG], rkey, sizeof(rkey),
                                  (const char *)s->repl_raw, s->repl_raw_len);
        s->batch_log_bytes += s->repl_raw_len + EKV_KEY_LOG_LEN;
        return (int64_t)s->repl_raw_len;
    }
    rec->value.data = NULL;
    rec->value.len = 0;
    size_t n = edgekv__change_record__get_packed_size(rec);
    ekv_buf_reset(&s->pbuf);
    int rc = ekv_buf_reserve(&s->pbuf, n);
    if (rc)
        return rc;
    edgekv__change_record__pack(rec, (uint8_t *)s->pbuf.data);
    char key[EKV_KEY_LOG_LEN];
    ekv_key_log(key, rec->seq);
    size_t total = n;
    if (value_len == 0) {
        rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_LOG], key, sizeof(key), s->pbuf.data, n);
    } else {
        uint8_t hdr[11];
        hdr[0] = PB_VALUE_TAG;
        size_t hlen = 1 + put_varint(hdr + 1, value_len);
        const char *parts[3] = {s->pbuf.data, (const char *)hdr, value};
        size_t sizes[3] = {n, hlen, value_len};
        const char *keys[1] = {key};
        size_t klens[1] = {sizeof(key)};
        rocksdb_writebatch_putv_cf(s->wb, s->cf[EKV_CF_LOG], 1, keys, klens, 3, parts, sizes);
        total += hlen + value_len;
    }
    s->batch_log_bytes += total + EKV_KEY_LOG_LEN;
    return (int64_t)total;
}

void ekv__log_put_last_seq(ekv_store_t *s, uint64_t seq)
{
    char v[8];
    ekv_be64_put(v, seq);
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], EKV_KEY_LAST_SEQ, EKV_KEY_LAST_SEQ_LEN, v,
                              sizeof(v));
}

static int get_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    uint64_t x = 0;
    for (int shift = 0; p < end && shift < 64; shift += 7) {
        x |= (uint64_t)(*p & 0x7f) << shift;
        if (!(*p++ & 0x80)) {
            *pp = p;
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* commit_time_ms (field 2) of a packed record, without unpacking the rest. 0 or -1. */
static int record_time(const uint8_t *p, size_t len, int64_t *out)
{
    const uint8_t *end = p + len;
    *out = 0; /* proto3 default when the field is absent */
    while (p < end) {
        uint64_t tag, v;
        if (get_varint(&p, end, &tag))
            return -1;
        switch (tag & 7) {
        case 0:
            if (get_varint(&p, end, &v))
                return -1;
            if ((tag >> 3) == PB_TIME_FIELD) {
                *out = (int64_t)v;
                return 0;
            }
            break;
        case 1:
        case 5: {
            size_t n = (tag & 7) == 1 ? 8 : 4;
            if ((size_t)(end - p) < n)
                return -1;
            p += n;
            break;
        }
        case 2:
            if (get_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return -1;
            p += v;
            break;
        default:
            return -1;
        }
    }
    return 0;
}

/* commit_time_ms of record seq; 0 or -1 (missing, unreadable). */
static int log_time(ekv_store_t *s, uint64_t seq, int64_t *out)
{
    char key[EKV_KEY_LOG_LEN], *err = NULL;
    ekv_key_log(key, seq);
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[EKV_CF_LOG], key, sizeof(key), &err);
    if (err) {
        ekv__store_rocks_err("log get", err);
        return -1;
    }
    if (!ps)
        return -1;
    size_t len;
    const char *v = rocksdb_pinnableslice_value(ps, &len);
    int rc = record_time((const uint8_t *)v, len, out);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

int ekv__log_recover(ekv_store_t *s)
{
    char *err = NULL;
    uint64_t meta_seq = 0, log_last = 0, log_first = 0;
    size_t len;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[EKV_CF_META], EKV_KEY_LAST_SEQ,
                             EKV_KEY_LAST_SEQ_LEN, &len, &err);
    if (err)
        return ekv__store_rocks_err("get last_seq", err);
    if (v && len == 8)
        meta_seq = ekv_be64_get(v);
    else if (v)
        ekv_log_error("bad s/last_seq record", "len=%zu", len);
    free(v);

    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, s->ropts, s->cf[EKV_CF_LOG]);
    rocksdb_iter_seek_to_last(it);
    if (rocksdb_iter_valid(it)) {
        const char *k = rocksdb_iter_key(it, &len);
        if (ekv_key_log_parse(k, len, &log_last) != 0)
            ekv_log_error("bad log key", "len=%zu", len);
        rocksdb_iter_seek_to_first(it);
        if (rocksdb_iter_valid(it)) {
            k = rocksdb_iter_key(it, &len);
            ekv_key_log_parse(k, len, &log_first);
        }
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err)
        return ekv__store_rocks_err("log scan", err);

    s->last_seq = meta_seq > log_last ? meta_seq : log_last;
    s->first_log_seq = log_first;
    atomic_store_explicit(&s->pub_last_seq, s->last_seq, memory_order_release);
    pthread_mutex_lock(&s->pin_lock);
    s->pin_floor = log_first ? log_first : s->last_seq + 1;
    pthread_mutex_unlock(&s->pin_lock);
    s->log_bytes = 0;
    if (log_first) {
        char lo[8], hi[8];
        ekv_key_log(lo, log_first);
        ekv_key_log(hi, log_last + 1);
        const char *starts[1] = {lo}, *limits[1] = {hi};
        size_t slen[1] = {8}, llen[1] = {8};
        uint64_t size = 0, mem = 0;
        rocksdb_approximate_sizes_cf(s->db, s->cf[EKV_CF_LOG], 1, starts, slen, limits, llen, &size,
                                     &err);
        if (err) {
            ekv__store_rocks_err("log size", err);
            err = NULL;
            size = 0;
        }
        if (rocksdb_property_int_cf(s->db, s->cf[EKV_CF_LOG], "rocksdb.cur-size-all-mem-tables",
                                    &mem) != 0)
            mem = 0;
        s->log_bytes = size + mem;
    }
    pthread_mutex_lock(&s->stats_lock);
    s->st.last_seq = s->last_seq;
    s->st.first_log_seq = s->first_log_seq;
    pthread_mutex_unlock(&s->stats_lock);
    return 0;
}

/* Smallest seq in (first, last] whose record is not older than horizon (last if none). */
static uint64_t age_cut(ekv_store_t *s, uint64_t first, uint64_t last, int64_t horizon)
{
    int64_t t;
    if (log_time(s, last, &t) != 0 || t < horizon)
        return last;
    uint64_t lo = first, hi = last; /* time(lo) < horizon <= time(hi) */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (log_time(s, mid, &t) != 0)
            return lo; /* be conservative on a hole */
        if (t < horizon)
            lo = mid;
        else
            hi = mid;
    }
    return hi;
}

void ekv__log_trim(ekv_store_t *s, int check_age)
{
    uint64_t first = s->first_log_seq, last = s->last_seq;
    if (!first || first >= last)
        return;
    uint64_t count = last - first + 1;
    uint64_t avg = s->log_bytes / count;
    if (!avg)
        avg = 1;
    uint64_t cut = first;
    if (s->log_bytes > s->opts.log_retain_bytes) {
        uint64_t excess = s->log_bytes - s->opts.log_retain_bytes / 10 * 9;
        uint64_t drop = (excess + avg - 1) / avg;
        cut = first + (drop < count - 1 ? drop : count - 1);
    }
    if (check_age) {
        int64_t horizon = ekv_clock_now_ms() - s->opts.log_retain_ms;
        int64_t t;
        if (log_time(s, first, &t) == 0 && t < horizon) {
            uint64_t c = age_cut(s, first, last, horizon);
            if (c > cut)
                cut = c;
        }
    }
    if (cut <= first)
        return;

    /* pins: never drop records >= the lowest pin. The range is decided and the pin floor
     * raised under pin_lock; the RocksDB write happens after it is released, because the loop
     * takes pin_lock on every replica ack and hello and must never wait for a write.
     *
     * Why a pin can still never see its records trimmed: pins are taken and moved only under
     * pin_lock and only at seq >= pin_floor (repl.c), and this is the only place that deletes
     * log records (the committer thread; nothing else lowers or raises pin_floor meanwhile).
     * A pin operation is ordered by the lock either
     *  - before this section: it is in pins[] and lowers cut to it, so [first, cut) holds no
     *    record it needs; or
     *  - after it: it sees pin_floor = cut and is refused (EKV_ELOG_GAP) below cut, so it can
     *    only hold seqs >= cut, which the DeleteRange [first, cut) does not touch.
     * So every pin is >= cut, whether or not the write has happened yet. A log read of an
     * unpinned seq in [first, cut) may race the delete, as it always could: log_read checks
     * that it got exactly the seqs it asked for (EKV_ELOG_GAP otherwise). If the write fails
     * nothing was deleted; the floor is put back so those records may be pinned again. */
    pthread_mutex_lock(&s->pin_lock);
    uint64_t pin = ekv__pin_lowest_locked(s);
    if (pin && cut > pin)
        cut = pin;
    if (cut <= first) {
        pthread_mutex_unlock(&s->pin_lock);
        return;
    }
    uint64_t old_floor = s->pin_floor;
    if (cut > s->pin_floor)
        s->pin_floor = cut;
    pthread_mutex_unlock(&s->pin_lock);

    if (s->opts.on_trim)
        s->opts.on_trim(s->opts.on_trim_ctx, first, cut);
    char lo[8], hi[8], *err = NULL;
    ekv_key_log(lo, first);
    ekv_key_log(hi, cut);
    rocksdb_writebatch_clear(s->wb);
    rocksdb_writebatch_delete_range_cf(s->wb, s->cf[EKV_CF_LOG], lo, sizeof(lo), hi, sizeof(hi));
    rocksdb_write(s->db, s->wopts_lazy, s->wb, &err);
    rocksdb_writebatch_clear(s->wb);
    if (err) {
        pthread_mutex_lock(&s->pin_lock);
        if (s->pin_floor == cut)
            s->pin_floor = old_floor;
        pthread_mutex_unlock(&s->pin_lock);
        ekv__store_rocks_err("log trim", err);
        return;
    }
    uint64_t removed = cut - first;
    uint64_t bytes = removed * avg;
    s->log_bytes = bytes < s->log_bytes ? s->log_bytes - bytes : 0;
    s->first_log_seq = cut;
    pthread_mutex_lock(&s->stats_lock);
    s->st.log_trimmed += removed;
    s->st.first_log_seq = cut;
    pthread_mutex_unlock(&s->stats_lock);
    ekv_log_debug("log trimmed", "first=%" PRIu64 " cut=%" PRIu64 " bytes=%" PRIu64, first, cut,
                  s->log_bytes);
}
