/*
 * catalog.c - reading the catalog (accounts, tokens, namespaces) out of the meta CF: for
 * ekv_store_catalog_load (start-up, CLI) and for the committer's in-memory index.
 *
 * A record that fails to decode is logged and skipped rather than failing the whole load:
 * one damaged record must not keep every other account from being served.
 */
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/catrec.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <string.h>

typedef int (*record_cb)(void *ctx, const char *key, size_t klen, const char *val, size_t vlen);

/* Call cb for every meta record whose key starts with the 2-byte prefix pfx. */
static int scan_prefix(ekv_store_t *s, const char *pfx, record_cb cb, void *ctx)
{
    char hi[EKV_KEY_PFX_LEN];
    size_t hlen = ekv_key_prefix_successor(pfx, EKV_KEY_PFX_LEN, hi);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_upper_bound(ro, hi, hlen);
    rocksdb_readoptions_set_fill_cache(ro, 0);
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[EKV_CF_META]);
    int rc = 0;
    for (rocksdb_iter_seek(it, pfx, EKV_KEY_PFX_LEN); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rocksdb_iter_key(it, &klen);
        const char *v = rocksdb_iter_value(it, &vlen);
        if ((rc = cb(ctx, k, klen, v, vlen)) != 0)
            break;
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    if (err)
        return ekv__store_rocks_err("catalog scan", err);
    return rc;
}

static void bad_record(const char *key, size_t klen)
{
    ekv_log_error("bad catalog record, skipped", "key=\"%.*s\"", (int)(klen > 80 ? 80 : klen), key);
}

/* The nsid of a namespace record, from its id field. 0 or -1. */
static int ns_nsid(const ekv_namespace_t *ns, uint8_t nsid[EKV_NSID_LEN])
{
    size_t n = 0;
    return (strlen(ns->id) == EKV_ID_HEX_LEN &&
            ekv_hex_decode(ns->id, EKV_ID_HEX_LEN, nsid, EKV_NSID_LEN, &n) == 0 &&
            n == EKV_NSID_LEN)
               ? 0
               : -1;
}

/* ---- ekv_store_catalog_load ---- */

static int visit_account(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    const ekv_catalog_visitor_t *vis = ctx;
    ekv_account_t a;
    if (ekv_catrec_account_decode(v, vlen, &a) != 0)
        bad_record(k, klen);
    else if (vis->on_account)
        vis->on_account(vis->ctx, &a);
    return 0;
}

static int visit_token(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    const ekv_catalog_visitor_t *vis = ctx;
    ekv_token_t t;
    if (ekv_catrec_token_decode(v, vlen, &t) != 0)
        bad_record(k, klen);
    else if (vis->on_token)
        vis->on_token(vis->ctx, &t);
    return 0;
}

static int visit_ns(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    const ekv_catalog_visitor_t *vis = ctx;
    ekv_namespace_t ns;
    uint8_t nsid[EKV_NSID_LEN];
    if (ekv_catrec_ns_decode(v, vlen, &ns) != 0 || ns_nsid(&ns, nsid) != 0)
        bad_record(k, klen);
    else if (vis->on_namespace)
        vis->on_namespace(vis->ctx, &ns);
    return 0;
}

int ekv_store_catalog_visit_entry(const char *key, size_t klen, const char *val, size_t vlen,
                                  const ekv_catalog_visitor_t *v)
{
    if (klen < EKV_KEY_PFX_LEN)
        return 0;
    if (!memcmp(key, EKV_KEY_PFX_ACCOUNT, EKV_KEY_PFX_LEN))
        return visit_account((void *)v, key, klen, val, vlen);
    if (!memcmp(key, EKV_KEY_PFX_TOKEN, EKV_KEY_PFX_LEN))
        return visit_token((void *)v, key, klen, val, vlen);
    if (!memcmp(key, EKV_KEY_PFX_NS, EKV_KEY_PFX_LEN))
        return visit_ns((void *)v, key, klen, val, vlen);
    return 0; /* title index and node-local keys: derived or not replicated */
}

int ekv_store_catalog_load(ekv_store_t *s, const ekv_catalog_visitor_t *v)
{
    int rc = scan_prefix(s, EKV_KEY_PFX_ACCOUNT, visit_account, (void *)v);
    if (!rc)
        rc = scan_prefix(s, EKV_KEY_PFX_TOKEN, visit_token, (void *)v);
    if (!rc)
        rc = scan_prefix(s, EKV_KEY_PFX_NS, visit_ns, (void *)v);
    return rc;
}

/* ---- the committer's index ---- */

static int index_token(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    ekv_token_t t;
    if (ekv_catrec_token_decode(v, vlen, &t) != 0) {
        bad_record(k, klen);
        return 0;
    }
    return ekv_catidx_token_add(ctx, t.hash, t.id, t.account_id);
}

static int index_ns(void *ctx, const char *k, size_t klen, const char *v, size_t vlen)
{
    ekv_catidx_t *x = ctx;
    ekv_namespace_t ns;
    uint8_t nsid[EKV_NSID_LEN];
    size_t tlen;
    if (ekv_catrec_ns_decode(v, vlen, &ns) != 0 || ns_nsid(&ns, nsid) != 0 ||
        (tlen = strlen(ns.title)) == 0 || ekv_catidx_ns_get(x, nsid) ||
        ekv_catidx_ns_by_title(x, ns.account_id, ns.title, tlen)) {
        bad_record(k, klen);
        return 0;
    }
    return ekv_catidx_ns_add(x, nsid, ns.account_id, ns.title, tlen, ns.created_ms);
}

int ekv__catalog_index_load(ekv_store_t *s)
{
    ekv_catidx_t x;
    ekv_catidx_init(&x);
    int rc = scan_prefix(s, EKV_KEY_PFX_NS, index_ns, &x);
    if (!rc)
        rc = scan_prefix(s, EKV_KEY_PFX_TOKEN, index_token, &x);
    if (rc) {
        ekv_catidx_deinit(&x);
        ekv_log_error("catalog index load failed", "err=%s", ekv_err_name(rc));
        return rc;
    }
    ekv_catidx_deinit(&s->idx);
    s->idx = x;
    return 0;
}
