/*
 * read.c - KV reads: ekv_store_kv_get and ekv_store_kv_list.
 *
 * Reader threads call these concurrently; they touch only the DB handles and the shared,
 * never-modified read options, never the committer's state or locks. A reader sees every
 * write whose done() has run (the batch is in the memtable before completion).
 *
 * get: one pinned point read of kvmeta (no copy of the envelope). It answers a metadata GET,
 * and a value GET when the value is inline (a version-2 envelope, values up to
 * EKV_ENVELOPE_INLINE_MAX bytes). A value kept in kvval takes one MultiGet of kvmeta + kvval,
 * which RocksDB serves from one consistent snapshot across the two CFs, so a concurrent
 * overwrite can never pair one version's envelope with another's value. get_cached reads the
 * same way with read_tier = kBlockCacheTier: RocksDB answers from the memtables and cached
 * blocks or gives up with Status::Incomplete, never touching a file, so an event loop may
 * call it. It relies on every table staying open (max_open_files -1, store.c): in 7.8 a no-IO
 * Get whose table is not in the table cache answers OK with an empty value.
 *
 * list: one iterator over kvmeta only, bounded by [nsid||max(prefix, after+"\0"),
 * successor(nsid||prefix)), so it never leaves the namespace/prefix and never reads values.
 */
#include "common/errors.h"
#include "common/log.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define STACK_KEY_MAX 1024

/* an inline value is always small enough to be copied on the loop */
_Static_assert(EKV_ENVELOPE_INLINE_MAX <= EKV_STORE_INLINE_MAX_VALUE, "inline limits");
#define LIST_INITIAL_ITEMS 64

void ekv_kv_entry_clear(ekv_kv_entry_t *e)
{
    free(e->value);
    free(e->metadata);
    memset(e, 0, sizeof(*e));
}

void ekv_kv_list_clear(ekv_kv_list_t *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].name);
        free(l->items[i].metadata);
    }
    free(l->items);
    free(l->resume_key);
    memset(l, 0, sizeof(*l));
}

static int expired(int64_t expiration, int64_t now_s)
{
    return expiration != 0 && expiration <= now_s;
}

/* Fill out from a decoded envelope: expiration, metadata and, when want_value and the value
 * is inline, a copy of the value. 0, EKV_EKEY_NOT_FOUND (expired), EKV_ENOMEM. */
static int entry_from_envelope(const ekv_envelope_t *env, int want_value, int64_t now_s,
                               ekv_kv_entry_t *out)
{
    if (expired(env->expiration, now_s))
        return EKV_EKEY_NOT_FOUND;
    out->expiration = env->expiration;
    if (env->metadata) {
        out->metadata = ekv_memdup_z(env->metadata, env->metadata_len);
        if (!out->metadata)
            return EKV_ENOMEM;
        out->metadata_len = env->metadata_len;
    }
    if (want_value && env->has_value) {
        out->value = malloc(env->value_len ? env->value_len : 1);
        if (!out->value)
            return EKV_ENOMEM;
        if (env->value_len)
            memcpy(out->value, env->value, env->value_len);
        out->value_len = env->value_len;
    }
    return 0;
}

static int decode_envelope(const char *v, size_t vlen, ekv_envelope_t *env)
{
    if (ekv_envelope_decode(v, vlen, env) != 0) {
        ekv_log_error("bad kvmeta envelope", "len=%zu", vlen);
        return EKV_ESTORAGE;
    }
    return 0;
}

/* RocksDB's Status::Incomplete text: a kBlockCacheTier read that needed a block not cached */
static int not_cached(const char *err)
{
    return err && strncmp(err, "Result incomplete", 17) == 0;
}

/* A value kept in kvval (a version-1 envelope): one MultiGet of kvmeta + kvval, from one
 * consistent snapshot across the two CFs. The envelope is read again with it: the one read
 * before may be older, and a value overwritten meanwhile by a small one is inline now. */
static int get_with_value(ekv_store_t *s, int cached, const char *k, size_t klen, int64_t now_s,
                          ekv_kv_entry_t *out)
{
    const rocksdb_readoptions_t *ropts = cached ? s->ropts_cached : s->ropts;
    const rocksdb_column_family_handle_t *cfs[2] = {s->cf[EKV_CF_KVMETA], s->cf[EKV_CF_KVVAL]};
    const char *keys[2] = {k, k};
    size_t klens[2] = {klen, klen};
    char *vals[2] = {NULL, NULL};
    size_t vlens[2] = {0, 0};
    char *errs[2] = {NULL, NULL};
    rocksdb_multi_get_cf(s->db, ropts, cfs, 2, keys, klens, vals, vlens, errs);
    int rc = 0;
    ekv_envelope_t env;
    if (not_cached(errs[0]) || not_cached(errs[1])) {
        free(errs[0]);
        free(errs[1]);
        rc = EKV_STORE_NOT_CACHED;
        goto out;
    }
    if (errs[0] || errs[1]) {
        rc = ekv__store_rocks_err("multiget", errs[0] ? errs[0] : errs[1]);
        free(errs[0] ? errs[1] : NULL);
        goto out;
    }
    if (!vals[0]) {
        rc = EKV_EKEY_NOT_FOUND;
        goto out;
    }
    if ((rc = decode_envelope(vals[0], vlens[0], &env)) != 0)
        goto out;
    if (cached && env.value_len > EKV_STORE_INLINE_MAX_VALUE) {
        rc = EKV_STORE_NOT_CACHED; /* overwritten by a large value since the first read */
        goto out;
    }
    if ((rc = entry_from_envelope(&env, 1, now_s, out)) != 0 || env.has_value)
        goto out;
    if (!vals[1] || vlens[1] != env.value_len) {
        /* written in the same batch as the envelope, read from the same snapshot; a reader
         * reading the files again decides whether it is damage */
        if (cached) {
            rc = EKV_STORE_NOT_CACHED;
            goto out;
        }
        ekv_log_error("kvval missing or not value_len for kvmeta",
                      "klen=%zu value_len=%" PRIu64 " kvval_len=%zu found=%d", klen, env.value_len,
                      vlens[1], vals[1] != NULL);
        rc = EKV_ESTORAGE;
        goto out;
    }
    out->value = vals[1]; /* RocksDB's malloc'd copy: handed over, not copied again */
    out->value_len = vlens[1];
    vals[1] = NULL;
out:
    free(vals[0]);
    free(vals[1]);
    return rc;
}

/* want_value: 0 metadata only, 1 value, 2 value from memory only (ekv_store_kv_get_cached).
 * One pinned point read of kvmeta answers a metadata GET and a value GET of an inline value;
 * only a value kept in kvval takes the MultiGet. */
static int get_key(ekv_store_t *s, const char *k, size_t klen, int want_value, int64_t now_s,
                   ekv_kv_entry_t *out)
{
    const rocksdb_readoptions_t *ro = want_value == 2 ? s->ropts_cached : s->ropts;
    char *err = NULL;
    rocksdb_pinnableslice_t *ps =
        rocksdb_get_pinned_cf(s->db, ro, s->cf[EKV_CF_KVMETA], k, klen, &err);
    if (err) {
        if (not_cached(err)) {
            free(err);
            return EKV_STORE_NOT_CACHED;
        }
        return ekv__store_rocks_err("get kvmeta", err);
    }
    if (!ps)
        return EKV_EKEY_NOT_FOUND;
    size_t vlen;
    const char *v = rocksdb_pinnableslice_value(ps, &vlen);
    ekv_envelope_t env = {0};
    int rc = decode_envelope(v, vlen, &env);
    /* a large value is copied by a reader, not on the loop (an inline one is never large
     * when this build wrote it; the envelope is checked, not trusted) */
    if (!rc && want_value == 2 && env.value_len > EKV_STORE_INLINE_MAX_VALUE)
        rc = EKV_STORE_NOT_CACHED;
    if (!rc && expired(env.expiration, now_s))
        rc = EKV_EKEY_NOT_FOUND;
    /* a value kept in kvval: the MultiGet reads the envelope again with it and fills out */
    int in_kvval = !rc && want_value && !env.has_value;
    if (!rc && !in_kvval)
        rc = entry_from_envelope(&env, want_value, now_s, out);
    rocksdb_pinnableslice_destroy(ps);
    return in_kvval ? get_with_value(s, want_value == 2, k, klen, now_s, out) : rc;
}

static int kv_get(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *key, size_t key_len,
                  int want_value, int64_t now_s, ekv_kv_entry_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!key || !key_len)
        return EKV_EKEY_NOT_FOUND;
    char stack[EKV_NSID_LEN + STACK_KEY_MAX];
    char *k = key_len <= STACK_KEY_MAX ? stack : malloc(EKV_NSID_LEN + key_len);
    if (!k)
        return EKV_ENOMEM;
    size_t klen = ekv_key_kv(k, nsid, key, key_len);
    int rc = get_key(s, k, klen, want_value, now_s, out);
    if (k != stack)
        free(k);
    if (rc)
        ekv_kv_entry_clear(out);
    return rc;
}

int ekv_store_kv_get(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                     size_t key_len, int want_value, int64_t now_s, ekv_kv_entry_t *out)
{
    return kv_get(s, nsid, key, key_len, want_value ? 1 : 0, now_s, out);
}

int ekv_store_kv_get_cached(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                            size_t key_len, int64_t now_s, ekv_kv_entry_t *out)
{
    if (!s->opts.inline_reads) {
        memset(out, 0, sizeof(*out));
        return EKV_STORE_NOT_CACHED;
    }
    return kv_get(s, nsid, key, key_len, 2, now_s, out);
}

/* ---- list ---- */

static int list_push(ekv_kv_list_t *l, size_t *cap, const char *name, size_t name_len,
                     const ekv_envelope_t *env)
{
    if (l->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : LIST_INITIAL_ITEMS;
        ekv_kv_listed_t *items = realloc(l->items, ncap * sizeof(*items));
        if (!items)
            return EKV_ENOMEM;
        l->items = items;
        *cap = ncap;
    }
    ekv_kv_listed_t *it = &l->items[l->count];
    memset(it, 0, sizeof(*it));
    it->name = ekv_memdup_z(name, name_len);
    if (!it->name)
        return EKV_ENOMEM;
    it->name_len = name_len;
    it->expiration = env->expiration;
    l->count++; /* counted now so that clear() frees the name on a later failure */
    if (env->metadata) {
        it->metadata = ekv_memdup_z(env->metadata, env->metadata_len);
        if (!it->metadata)
            return EKV_ENOMEM;
        it->metadata_len = env->metadata_len;
    }
    return 0;
}

int ekv_store_kv_list(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *prefix,
                      size_t prefix_len, const char *after, size_t after_len, size_t limit,
                      size_t scan_budget, int64_t now_s, ekv_kv_list_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!prefix)
        prefix_len = 0;
    if (!after)
        after_len = 0;

    /* [start, bound): start = nsid || max(prefix, after || 0x00) (after || 0x00 is the
     * smallest key greater than after); bound = successor(nsid || prefix), which exists
     * unless nsid and prefix are all 0xff (refused ids): then the loop checks the prefix. */
    size_t plen = EKV_NSID_LEN + prefix_len, alen = after ? EKV_NSID_LEN + after_len + 1 : 0;
    char *buf = malloc(plen + (alen > plen ? alen : plen) + plen);
    if (!buf)
        return EKV_ENOMEM;
    char *pk = buf, *start = buf + plen, *bound = start + (alen > plen ? alen : plen);
    ekv_key_kv(pk, nsid, prefix, prefix_len);
    size_t start_len = plen;
    memcpy(start, pk, plen);
    if (after) {
        ekv_key_kv(start, nsid, after, after_len);
        start[EKV_NSID_LEN + after_len] = '\0';
        /* the later of the two starting points */
        size_t m = alen < plen ? alen : plen;
        int c = memcmp(start, pk, m);
        if (c > 0 || (c == 0 && alen >= plen))
            start_len = alen;
        else
            memcpy(start, pk, start_len = plen);
    }
    size_t bound_len = ekv_key_prefix_successor(pk, plen, bound);

    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    if (bound_len)
        rocksdb_readoptions_set_iterate_upper_bound(ro, bound, bound_len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_KVMETA]);

    int rc = 0;
    size_t cap = 0, examined = 0;
    size_t max_examined = limit + scan_budget < limit ? SIZE_MAX : limit + scan_budget;
    ekv_buf_t last; /* last examined key, reused: no allocation per entry */
    ekv_buf_init(&last, 0);
    rocksdb_iter_seek(it, start, start_len);
    while (rocksdb_iter_valid(it) && out->count < limit && examined < max_examined) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < plen || memcmp(k, pk, plen) != 0)
            break; /* only without a bound: left the prefix */
        const char *v = rocksdb_iter_value(it, &vlen);
        examined++;
        ekv_envelope_t env;
        if (ekv_envelope_decode(v, vlen, &env) != 0) {
            ekv_log_error("bad kvmeta envelope in list, skipped", "len=%zu", vlen);
        } else if (!expired(env.expiration, now_s)) {
            rc = list_push(out, &cap, k + EKV_NSID_LEN, klen - EKV_NSID_LEN, &env);
            if (rc)
                break;
        }
        ekv_buf_reset(&last);
        if ((rc = ekv_buf_append(&last, k + EKV_NSID_LEN, klen - EKV_NSID_LEN)) != 0)
            break;
        rocksdb_iter_next(it);
    }
    if (!rc && examined > 0 && rocksdb_iter_valid(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        out->more = klen >= plen && memcmp(k, pk, plen) == 0;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    free(buf);
    if (err && !rc)
        rc = ekv__store_rocks_err("list", err);
    else
        free(err);
    if (!rc && out->more) {
        /* take() leaves NULL for an empty buffer; the key is never empty here */
        out->resume_key = ekv_buf_take(&last, &out->resume_key_len);
        if (!out->resume_key)
            rc = EKV_ENOMEM;
    }
    ekv_buf_deinit(&last);
    if (rc)
        ekv_kv_list_clear(out);
    return rc;
}
