/*
 * do_read.c - Durable Object reads (store.h, "Durable Object reads"): one key, a range of an
 * object's keys, the objects of a namespace, and the start-up load of namespaces and alarms.
 * Reader threads; every function reads one consistent RocksDB view.
 */
#include "common/errors.h"
#include "common/log.h"
#include "storage/catrec.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <stdlib.h>
#include <string.h>

int ekv_store_do_get(ekv_store_t *s, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], const char *key, size_t key_len,
                     char **value, size_t *value_len)
{
    *value = NULL;
    *value_len = 0;
    char stackbuf[EKV_KEY_DO_OBJ_LEN + 256];
    char *k = key_len <= 256 ? stackbuf : malloc(EKV_KEY_DO_OBJ_LEN + key_len);
    if (!k)
        return EKV_ENOMEM;
    size_t klen = ekv_key_do_kv(k, dons, objid, key, key_len);
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[EKV_CF_DOKV], k, klen, &vlen, &err);
    if (k != stackbuf)
        free(k);
    if (err)
        return ekv__store_rocks_err("do get", err);
    if (!v)
        return EKV_EKEY_NOT_FOUND;
    /* rocksdb_get_cf's buffer is malloc'd and not NUL-terminated: give a terminated copy */
    char *out = malloc(vlen + 1);
    if (!out) {
        rocksdb_free(v);
        return EKV_ENOMEM;
    }
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    rocksdb_free(v);
    *value = out;
    *value_len = vlen;
    return 0;
}

void ekv_do_list_clear(ekv_do_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].key);
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static int list_push(ekv_do_list_t *l, size_t *cap, const char *k, size_t klen, const char *v,
                     size_t vlen)
{
    if (l->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        ekv_do_kv_t *n = realloc(l->items, ncap * sizeof(*n));
        if (!n)
            return EKV_ENOMEM;
        l->items = n;
        *cap = ncap;
    }
    char *mem = malloc(klen + vlen + 2);
    if (!mem)
        return EKV_ENOMEM;
    memcpy(mem, k, klen);
    mem[klen] = '\0';
    memcpy(mem + klen + 1, v, vlen);
    mem[klen + 1 + vlen] = '\0';
    ekv_do_kv_t *it = &l->items[l->count++];
    it->key = mem;
    it->key_len = klen;
    it->value = mem + klen + 1;
    it->value_len = vlen;
    return 0;
}

int ekv_store_do_list(ekv_store_t *s, const uint8_t dons[EKV_NSID_LEN],
                      const uint8_t objid[EKV_DO_OBJID_LEN], const char *lo, size_t lo_len,
                      const char *hi, size_t hi_len, int has_hi, int reverse, size_t limit,
                      size_t max_bytes, ekv_do_list_t *out)
{
    memset(out, 0, sizeof(*out));
    if (limit == 0)
        return 0;
    const size_t P = EKV_KEY_DO_OBJ_LEN;
    /* bounds: [P || lo, P || hi) or, without hi, [P || lo, successor(P)) */
    char *lok = malloc(P + lo_len + 1), *hik = malloc(P + (has_hi ? hi_len : 0) + 1);
    if (!lok || !hik) {
        free(lok);
        free(hik);
        return EKV_ENOMEM;
    }
    size_t lok_len = ekv_key_do_kv(lok, dons, objid, lo, lo_len), hik_len;
    if (has_hi) {
        hik_len = ekv_key_do_kv(hik, dons, objid, hi, hi_len);
    } else {
        char obj[EKV_KEY_DO_OBJ_LEN];
        ekv_key_do_obj(obj, dons, objid);
        hik_len = ekv_key_prefix_successor(obj, P, hik);
        EKV_ASSERT(hik_len > 0); /* namespace ids are never all 0xff */
    }
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_lower_bound(ro, lok, lok_len);
    rocksdb_readoptions_set_iterate_upper_bound(ro, hik, hik_len);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_DOKV]);
    if (reverse)
        rocksdb_iter_seek_to_last(it);
    else
        rocksdb_iter_seek_to_first(it);
    int rc = 0;
    size_t cap = 0, bytes = 0;
    while (rocksdb_iter_valid(it)) {
        if (out->count >= limit || (out->count && bytes >= max_bytes)) {
            out->more = 1;
            break;
        }
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if (klen < P)
            break; /* cannot happen inside the bounds */
        if ((rc = list_push(out, &cap, k + P, klen - P, v, vlen)))
            break;
        bytes += klen - P + vlen;
        if (reverse)
            rocksdb_iter_prev(it);
        else
            rocksdb_iter_next(it);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    free(lok);
    free(hik);
    if (err && !rc)
        rc = ekv__store_rocks_err("do list", err);
    else
        free(err);
    if (rc)
        ekv_do_list_clear(out);
    return rc;
}

/* The first object id >= start (a 48-byte dons || objid key) that has an entry in cf, into
 * id; 1 found, 0 none, <0 error. it iterates cf bounded to the namespace. */
static int next_object(rocksdb_iterator_t *it, const char *start, uint8_t id[EKV_DO_OBJID_LEN])
{
    rocksdb_iter_seek(it, start, EKV_KEY_DO_OBJ_LEN);
    if (!rocksdb_iter_valid(it))
        return 0;
    size_t klen;
    const char *k = rocksdb_iter_key(it, &klen);
    if (klen < EKV_KEY_DO_OBJ_LEN)
        return 0;
    memcpy(id, k + EKV_NSID_LEN, EKV_DO_OBJID_LEN);
    return 1;
}

/* start = the first key after object `id`'s entries: dons || successor(id); 0 when id is
 * all 0xff (no object can follow). */
static int after_object(const uint8_t dons[EKV_NSID_LEN], const uint8_t id[EKV_DO_OBJID_LEN],
                        char start[EKV_KEY_DO_OBJ_LEN])
{
    memcpy(start, dons, EKV_NSID_LEN);
    size_t n = ekv_key_prefix_successor((const char *)id, EKV_DO_OBJID_LEN, start + EKV_NSID_LEN);
    if (n == 0)
        return 0;
    memset(start + EKV_NSID_LEN + n, 0, EKV_DO_OBJID_LEN - n);
    return 1;
}

int ekv_store_do_objects(ekv_store_t *s, const uint8_t dons[EKV_NSID_LEN], const uint8_t *after,
                         size_t limit, uint8_t (*ids)[EKV_DO_OBJID_LEN], size_t *n, int *more)
{
    *n = 0;
    *more = 0;
    char lo[EKV_NSID_LEN], hi[EKV_NSID_LEN];
    memcpy(lo, dons, EKV_NSID_LEN);
    size_t hlen = ekv_key_prefix_successor(lo, EKV_NSID_LEN, hi);
    EKV_ASSERT(hlen > 0);
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, hlen);
    rocksdb_iterator_t *kv = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_DOKV]);
    rocksdb_iterator_t *al = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_DOALARM]);

    /* merge the objects of the two CFs: each step seeks both to the next object >= pos */
    char pos[EKV_KEY_DO_OBJ_LEN];
    int have_pos = 1;
    if (after)
        have_pos = after_object(dons, after, pos);
    else {
        memcpy(pos, dons, EKV_NSID_LEN);
        memset(pos + EKV_NSID_LEN, 0, EKV_DO_OBJID_LEN);
    }
    while (have_pos) {
        uint8_t a[EKV_DO_OBJID_LEN], b[EKV_DO_OBJID_LEN];
        int ha = next_object(kv, pos, a), hb = next_object(al, pos, b);
        if (!ha && !hb)
            break;
        const uint8_t *next = !hb || (ha && memcmp(a, b, EKV_DO_OBJID_LEN) <= 0) ? a : b;
        if (*n >= limit) {
            *more = 1;
            break;
        }
        memcpy(ids[(*n)++], next, EKV_DO_OBJID_LEN);
        have_pos = after_object(dons, next, pos);
    }
    char *err = NULL;
    rocksdb_iter_get_error(kv, &err);
    if (!err)
        rocksdb_iter_get_error(al, &err);
    rocksdb_iter_destroy(kv);
    rocksdb_iter_destroy(al);
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db, snap);
    if (err) {
        *n = 0;
        return ekv__store_rocks_err("do objects", err);
    }
    return 0;
}

int ekv_store_do_load(ekv_store_t *s, const ekv_do_visitor_t *v)
{
    const rocksdb_snapshot_t *snap = rocksdb_create_snapshot(s->db);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(ro, snap);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    int rc = 0;
    char *err = NULL;

    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_META]);
    for (rocksdb_iter_seek(it, EKV_KEY_PFX_DO_NS, EKV_KEY_PFX_LEN); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (klen < EKV_KEY_PFX_LEN || memcmp(k, EKV_KEY_PFX_DO_NS, EKV_KEY_PFX_LEN) != 0)
            break;
        const char *val = rocksdb_iter_value(it, &vlen);
        ekv_do_ns_t ns;
        if (ekv_catrec_do_ns_decode(val, vlen, &ns)) {
            ekv_log_error("bad DO namespace record, skipped", "key=%.*s", (int)klen, k);
            continue;
        }
        if (v->on_ns)
            v->on_ns(v->ctx, &ns);
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);

    if (!err) {
        it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_DOALARM]);
        for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
            size_t klen, vlen;
            const char *k = rocksdb_iter_key(it, &klen);
            const char *val = rocksdb_iter_value(it, &vlen);
            if (klen != EKV_KEY_DO_OBJ_LEN || vlen < 8) {
                ekv_log_error("bad DO alarm record, skipped", "klen=%zu vlen=%zu", klen, vlen);
                continue;
            }
            uint64_t ms = ekv_be64_get(val);
            if (v->on_alarm && ms <= INT64_MAX)
                v->on_alarm(v->ctx, (const uint8_t *)k, (const uint8_t *)k + EKV_NSID_LEN,
                            (int64_t)ms, val + 8, vlen - 8);
        }
        rocksdb_iter_get_error(it, &err);
        rocksdb_iter_destroy(it);
    }
    rocksdb_readoptions_destroy(ro);
    rocksdb_release_snapshot(s->db, snap);
    if (err)
        rc = ekv__store_rocks_err("do load", err);
    return rc;
}

int ekv_store_do_ptable_get(ekv_store_t *s, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char *err = NULL;
    size_t vlen = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[EKV_CF_META], EKV_KEY_DO_PTABLE,
                             EKV_KEY_DO_PTABLE_LEN, &vlen, &err);
    if (err)
        return ekv__store_rocks_err("do ptable get", err);
    if (!v)
        return EKV_EKEY_NOT_FOUND;
    char *copy = malloc(vlen ? vlen : 1);
    if (!copy) {
        rocksdb_free(v);
        return EKV_ENOMEM;
    }
    memcpy(copy, v, vlen);
    rocksdb_free(v);
    *out = copy;
    *len = vlen;
    return 0;
}

int ekv_store_do_alarms_of(ekv_store_t *s, const uint8_t *parts, const uint8_t *after, size_t limit,
                           const ekv_do_visitor_t *v, int *more)
{
    *more = 0;
    char *err = NULL;
    size_t n = 0;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_DOALARM]);
    if (after) {
        rocksdb_iter_seek(it, (const char *)after, EKV_KEY_DO_OBJ_LEN);
        if (rocksdb_iter_valid(it)) {
            size_t klen;
            const char *k = rocksdb_iter_key(it, &klen);
            if (klen == EKV_KEY_DO_OBJ_LEN && memcmp(k, after, klen) == 0)
                rocksdb_iter_next(it);
        }
    } else {
        rocksdb_iter_seek_to_first(it);
    }
    for (; rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *val = rocksdb_iter_value(it, &vlen);
        if (klen != EKV_KEY_DO_OBJ_LEN || vlen < 8)
            continue;
        const uint8_t *objid = (const uint8_t *)k + EKV_NSID_LEN;
        uint32_t p = ekv_do_partition_of(objid);
        if (!(parts[p >> 3] & (1u << (p & 7))))
            continue;
        if (n == limit) {
            *more = 1;
            break;
        }
        uint64_t ms = ekv_be64_get(val);
        if (v->on_alarm && ms <= INT64_MAX)
            v->on_alarm(v->ctx, (const uint8_t *)k, objid, (int64_t)ms, val + 8, vlen - 8);
        n++;
    }
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    return err ? ekv__store_rocks_err("do alarms", err) : 0;
}
