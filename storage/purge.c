/*
 * purge.c - the expiry purger (runs on the committer thread, between groups).
 *
 * Expired keys are invisible to reads at once (kv_get / kv_list compare the envelope's
 * expiration with now); the purger only reclaims space, and does it through the change log
 * (one KV_EXPIRE record per key, in the same batch as the deletes) so replicas delete the
 * same keys without running their own clock.
 *
 * A round scans the exp CF from its start up to be64(now + 1) - i.e. every entry with
 * expiration <= now - examining at most EKV_PURGE_MAX_PER_ROUND entries. For each it checks
 * the key's current envelope: only when it still carries exactly that expiration is the key
 * deleted; otherwise the entry is stale (the key was overwritten, deleted, or its namespace
 * dropped) and only the index entry goes. The committer is the only writer, so nothing can
 * change between that check and the write.
 *
 * On a replica (opts.replica) live expired keys are left alone: they go only through the
 * primary's KV_EXPIRE records (ekv_store_apply_records), so sequence numbers stay the
 * primary's; stale index entries are still dropped.
 */
#include "changelog.pb-c.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <stdatomic.h>

#include <inttypes.h>
#include <string.h>

/* Does kvmeta hold kvkey with exactly this expiration? 1, 0, or a negative ekv_err_t. */
static int still_expiring(ekv_store_t *s, const char *kvkey, size_t klen, int64_t expiration)
{
    char *err = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, s->ropts, s->cf[EKV_CF_KVMETA], kvkey, klen, &err);
    if (err)
        return ekv__store_rocks_err("purge get", err);
    if (!ps)
        return 0;
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    ekv_envelope_t env;
    int match = ekv_envelope_decode(v, vlen, &env) == 0 && env.expiration == expiration;
    rocksdb_pinnableslice_destroy(ps);
    return match;
}

int ekv__purge_round(ekv_store_t *s, int64_t now_s, int *more)
{
    *more = 0;
    if (now_s < 0)
        return 0;
    char bound[EKV_KEY_BE64_LEN];
    ekv_be64_put(bound, (uint64_t)now_s + 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, bound, sizeof(bound));
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_EXP]);

    rocksdb_writebatch_clear(s->wb);
    s->batch_log_bytes = 0;
    uint64_t seq = s->last_seq;
    int64_t now_ms = ekv_clock_now_ms();
    int purged = 0, examined = 0, rc = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        if (examined == EKV_PURGE_MAX_PER_ROUND) {
            *more =
                !atomic_load(&s->replica_mode); /* a replica's skipped live entries would spin it */
            break;
        }
        examined++;
        size_t elen;
        const char *ek = rocksdb_iter_key(it, &elen);
        int64_t exp;
        const uint8_t *nsid;
        const char *key;
        size_t key_len;
        if (ekv_key_exp_parse(ek, elen, &exp, &nsid, &key, &key_len) == 0) {
            char *k = NULL;
            ekv_buf_reset(&s->kbuf);
            if (ekv_buf_reserve(&s->kbuf, EKV_NSID_LEN + key_len) == 0)
                k = s->kbuf.data;
            if (!k) {
                rc = EKV_ENOMEM;
                break;
            }
            size_t klen = ekv_key_kv(k, nsid, key, key_len);
            int live = still_expiring(s, k, klen, exp);
            if (live < 0) {
                rc = live;
                break;
            }
            if (live && atomic_load(&s->replica_mode))
                continue; /* a replica waits for the primary's KV_EXPIRE record */
            if (live) {
                rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_KVMETA], k, klen);
                rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_KVVAL], k, klen);
                Edgekv__ChangeRecord rec = EDGEKV__CHANGE_RECORD__INIT;
                rec.seq = ++seq;
                rec.commit_time_ms = now_ms;
                rec.op = EDGEKV__CHANGE_OP__KV_EXPIRE;
                rec.namespace_id.data = (uint8_t *)nsid;
                rec.namespace_id.len = EKV_NSID_LEN;
                rec.key.data = (uint8_t *)key;
                rec.key.len = key_len;
                rec.expiration = exp;
                int64_t n = ekv__log_put(s, &rec, NULL, 0);
                if (n < 0) {
                    rc = (int)n;
                    break;
                }
                purged++;
            }
        }
        /* the index entry goes either way (an unparsable one too) */
        rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_EXP], ek, elen);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err)
        rc = ekv__store_rocks_err("purge scan", err);
    if (rc) {
        rocksdb_writebatch_clear(s->wb);
        ekv_log_error("purge round failed", "err=%s", ekv_err_name(rc));
        return rc;
    }
    if (rocksdb_writebatch_count(s->wb) == 0)
        return 0;
    if (seq != s->last_seq)
        ekv__log_put_last_seq(s, seq);
    rocksdb_write(s->db, s->wopts, s->wb, &err);
    rocksdb_writebatch_clear(s->wb);
    if (err)
        return ekv__store_rocks_err("purge write", err);
    ekv__store_note_commit(s, seq, s->batch_log_bytes);
    if (purged)
        ekv_log_debug("expired keys purged", "keys=%d examined=%d last_seq=%" PRIu64, purged,
                      examined, seq);
    return purged;
}
