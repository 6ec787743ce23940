/*
 * apply.c - turn one ekv_write_t into WriteBatch mutations + change-log records.
 *
 * Each op is checked completely (arguments, namespace existence, title uniqueness, limits)
 * against the committer's catalog index BEFORE its first mutation, so a rejected op leaves
 * nothing in the batch and gets no sequence number. Only allocation failures can happen
 * after the first mutation; they are reported as *fatal and the committer abandons the
 * whole group (the index is then rebuilt from the DB).
 *
 * Every mutation gets the next sequence number and exactly one ChangeRecord in the same batch
 * (proto/changelog.proto), so the data and the log can never disagree.
 */
#include "changelog.pb-c.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/catrec.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <stdlib.h>
#include <string.h>

/* Scratch key buffer of n bytes (s->kbuf), NULL on ENOMEM. */
static char *key_buf(ekv_store_t *s, size_t n)
{
    ekv_buf_reset(&s->kbuf);
    if (ekv_buf_reserve(&s->kbuf, n))
        return NULL;
    return s->kbuf.data;
}

static void rec_init(Edgekv__ChangeRecord *rec, Edgekv__ChangeOp op, uint64_t seq, int64_t now_ms)
{
    Edgekv__ChangeRecord init = EDGEKV__CHANGE_RECORD__INIT;
    *rec = init;
    rec->op = op;
    rec->seq = seq;
    rec->commit_time_ms = now_ms;
}

static void rec_nsid(Edgekv__ChangeRecord *rec, const uint8_t *nsid)
{
    rec->namespace_id.data = (uint8_t *)nsid;
    rec->namespace_id.len = EKV_NSID_LEN;
}

/* Put the record; 0 or the fatal error. */
static int log_put(ekv_store_t *s, Edgekv__ChangeRecord *rec, const char *value, size_t vlen)
{
    int64_t rc = ekv__log_put(s, rec, value, vlen);
    return rc < 0 ? (int)rc : 0;
}

/* ---- KV ---- */

static int check_items(const ekv_write_t *w)
{
    for (size_t i = 0; i < w->nitems; i++) {
        const ekv_kv_item_t *it = &w->items[i];
        if (!it->key || it->key_len == 0)
            return EKV_EBAD_KEY;
        if (w->type == EKV_OP_KV_PUT) {
            if (it->value_len && !it->value)
                return EKV_EBAD_VALUE;
            if (it->metadata_len && !it->metadata)
                return EKV_EBAD_METADATA;
            if (it->expiration < 0)
                return EKV_EBAD_EXPIRATION;
        }
    }
    return 0;
}

static int apply_kv(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms, int *fatal)
{
    if (w->nitems && !w->items)
        return EKV_EBAD_REQUEST;
    int rc = check_items(w);
    if (rc)
        return rc;
    if (!ekv_catidx_ns_get(&s->idx, w->nsid))
        return EKV_ENS_NOT_FOUND;

    rocksdb_column_family_handle_t *meta = s->cf[EKV_CF_KVMETA], *val = s->cf[EKV_CF_KVVAL];
    for (size_t i = 0; i < w->nitems; i++) {
        const ekv_kv_item_t *it = &w->items[i];
        Edgekv__ChangeRecord rec;
        char *k = key_buf(s, EKV_KEY_BE64_LEN + EKV_NSID_LEN + it->key_len);
        if (!k)
            goto nomem;
        size_t klen = ekv_key_kv(k, w->nsid, it->key, it->key_len);
        ++*seq;
        if (w->type == EKV_OP_KV_PUT) {
            /* a small value goes inline in the envelope (one lookup per GET); the kvval
             * entry a larger earlier value may have left is deleted with it */
            int inline_value = it->value_len <= EKV_ENVELOPE_INLINE_MAX;
            ekv_envelope_t env = {.expiration = it->expiration,
                                  .metadata = it->metadata,
                                  .metadata_len = it->metadata_len,
                                  .value_len = it->value_len,
                                  .flags = 0,
                                  .has_value = inline_value,
                                  .value = it->value};
            ekv_buf_reset(&s->vbuf);
            if (ekv_envelope_encode(&env, &s->vbuf))
                goto nomem;
            rocksdb_writebatch_put_cf(s->wb, meta, k, klen, s->vbuf.data, s->vbuf.len);
            if (inline_value)
                rocksdb_writebatch_delete_cf(s->wb, val, k, klen);
            else
                rocksdb_writebatch_put_cf(s->wb, val, k, klen, it->value, it->value_len);
            if (it->expiration > 0) {
                klen = ekv_key_exp(k, it->expiration, w->nsid, it->key, it->key_len);
                rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_EXP], k, klen, "", 0);
            }
            rec_init(&rec, EDGEKV__CHANGE_OP__KV_PUT, *seq, now_ms);
            rec.metadata.data = (uint8_t *)it->metadata;
            rec.metadata.len = it->metadata ? it->metadata_len : 0;
            rec.expiration = it->expiration;
        } else {
            rocksdb_writebatch_delete_cf(s->wb, meta, k, klen);
            rocksdb_writebatch_delete_cf(s->wb, val, k, klen);
            rec_init(&rec, EDGEKV__CHANGE_OP__KV_DELETE, *seq, now_ms);
        }
        rec_nsid(&rec, w->nsid);
        rec.key.data = (uint8_t *)it->key;
        rec.key.len = it->key_len;
        if (w->type == EKV_OP_KV_PUT)
            rc = log_put(s, &rec, it->value, it->value_len);
        else
            rc = log_put(s, &rec, NULL, 0);
        if (rc) {
            *fatal = rc;
            return rc;
        }
    }
    return 0;
nomem:
    *fatal = EKV_ENOMEM;
    return EKV_ENOMEM;
}

/* ---- namespaces ---- */

/* ns.id -> nsid; 0 or EKV_EBAD_NS_ID. The all-0xff id is refused: its key range has no
 * finite upper bound for DeleteRange. */
static int parse_nsid(const char *id, uint8_t nsid[EKV_NSID_LEN])
{
    size_t n = strnlen(id, EKV_ID_HEX_LEN + 1), out_len = 0;
    if (n != EKV_ID_HEX_LEN || ekv_hex_decode(id, n, nsid, EKV_NSID_LEN, &out_len) != 0 ||
        out_len != EKV_NSID_LEN)
        return EKV_EBAD_NS_ID;
    for (int i = 0; i < EKV_NSID_LEN; i++)
        if (nsid[i] != 0xff)
            return 0;
    return EKV_EBAD_NS_ID;
}

static int check_title(const char *title, size_t cap, size_t *len)
{
    *len = strnlen(title, cap);
    return (*len == 0 || *len >= cap || *len > EKV_KEY_MAX_TITLE) ? EKV_EBAD_TITLE : 0;
}

/* Put the namespace record n/<hex> and its title index entry. */
static int put_ns_meta(ekv_store_t *s, const ekv_namespace_t *ns, const uint8_t *nsid)
{
    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_ns(k, sizeof(k), nsid);
    ekv_buf_reset(&s->vbuf);
    if (klen < 0 || ekv_catrec_ns_encode(ns, &s->vbuf))
        return EKV_ENOMEM;
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen, s->vbuf.data,
                              s->vbuf.len);
    klen = ekv_key_meta_title(k, sizeof(k), ns->account_id, ns->title, strlen(ns->title));
    if (klen < 0)
        return EKV_EINTERNAL;
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen, (const char *)nsid,
                              EKV_NSID_LEN);
    return 0;
}

static void del_title(ekv_store_t *s, const char *account_id, const char *title, size_t len)
{
    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_title(k, sizeof(k), account_id, title, len);
    if (klen > 0)
        rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen);
}

static int apply_ns_create(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                           int *fatal)
{
    uint8_t nsid[EKV_NSID_LEN];
    size_t tlen;
    int rc = parse_nsid(w->ns.id, nsid);
    if (rc)
        return rc;
    if (!ekv_key_id_ok(w->ns.account_id, EKV_ID_HEX_LEN))
        return EKV_EBAD_REQUEST;
    if ((rc = check_title(w->ns.title, sizeof(w->ns.title), &tlen)))
        return rc;
    if (ekv_catidx_ns_get(&s->idx, nsid) ||
        ekv_catidx_ns_by_title(&s->idx, w->ns.account_id, w->ns.title, tlen))
        return EKV_ENS_EXISTS;
    if (ekv_catidx_ns_count(&s->idx, w->ns.account_id) >= EKV_MAX_NS_PER_ACCOUNT)
        return EKV_ETOO_MANY_NS;

    /* normalise: lowercase id, creation time filled in (visible to the caller in done) */
    ekv_hex_encode(nsid, EKV_NSID_LEN, w->ns.id);
    if (!w->ns.created_ms)
        w->ns.created_ms = now_ms;
    if ((rc = put_ns_meta(s, &w->ns, nsid)))
        goto fail;
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__NS_CREATE, ++*seq, now_ms);
    rec_nsid(&rec, nsid);
    rec.account_id = w->ns.account_id;
    rec.title = w->ns.title;
    rec.created_ms = w->ns.created_ms;
    if ((rc = log_put(s, &rec, NULL, 0)))
        goto fail;
    if ((rc = ekv_catidx_ns_add(&s->idx, nsid, w->ns.account_id, w->ns.title, tlen,
                                w->ns.created_ms)))
        goto fail;
    return 0;
fail:
    *fatal = rc;
    return rc;
}

/* The namespace named by w->ns (id, and account_id when given), or an error. */
static int find_ns(ekv_store_t *s, ekv_write_t *w, uint8_t nsid[EKV_NSID_LEN],
                   const ekv_catidx_ns_t **out)
{
    int rc = parse_nsid(w->ns.id, nsid);
    if (rc)
        return rc;
    const ekv_catidx_ns_t *ns = ekv_catidx_ns_get(&s->idx, nsid);
    if (!ns || (w->ns.account_id[0] &&
                strncmp(ns->account_id, w->ns.account_id, sizeof(w->ns.account_id)) != 0))
        return EKV_ENS_NOT_FOUND;
    *out = ns;
    return 0;
}

static int apply_ns_rename(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                           int *fatal)
{
    uint8_t nsid[EKV_NSID_LEN];
    const ekv_catidx_ns_t *cur;
    size_t tlen;
    int rc = find_ns(s, w, nsid, &cur);
    if (rc)
        return rc;
    if ((rc = check_title(w->ns.title, sizeof(w->ns.title), &tlen)))
        return rc;
    const ekv_catidx_ns_t *other =
        ekv_catidx_ns_by_title(&s->idx, cur->account_id, w->ns.title, tlen);
    if (other && other != cur)
        return EKV_ENS_EXISTS;

    ekv_namespace_t ns = w->ns;
    ekv_hex_encode(nsid, EKV_NSID_LEN, ns.id);
    memcpy(ns.account_id, cur->account_id, sizeof(ns.account_id));
    ns.created_ms = cur->created_ms;
    del_title(s, cur->account_id, cur->title, cur->title_len);
    if ((rc = put_ns_meta(s, &ns, nsid)))
        goto fail;
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__NS_RENAME, ++*seq, now_ms);
    rec_nsid(&rec, nsid);
    rec.account_id = ns.account_id;
    rec.title = ns.title;
    rec.created_ms = ns.created_ms;
    if ((rc = log_put(s, &rec, NULL, 0)))
        goto fail;
    if ((rc = ekv_catidx_ns_rename(&s->idx, nsid, ns.title, tlen)))
        goto fail;
    return 0;
fail:
    *fatal = rc;
    return rc;
}

static int apply_ns_delete(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                           int *fatal)
{
    uint8_t nsid[EKV_NSID_LEN];
    const ekv_catidx_ns_t *cur;
    int rc = find_ns(s, w, nsid, &cur);
    if (rc)
        return rc;

    /* every key of the namespace: [nsid, successor(nsid)) in kvmeta and kvval; exp entries
     * become stale and are dropped by the purger when they come due */
    char lo[EKV_NSID_LEN], hi[EKV_NSID_LEN];
    memcpy(lo, nsid, EKV_NSID_LEN);
    size_t hlen = ekv_key_prefix_successor(lo, EKV_NSID_LEN, hi);
    EKV_ASSERT(hlen > 0); /* parse_nsid refuses the all-0xff id */
    rocksdb_writebatch_delete_range_cf(s->wb, s->cf[EKV_CF_KVMETA], lo, EKV_NSID_LEN, hi, hlen);
    rocksdb_writebatch_delete_range_cf(s->wb, s->cf[EKV_CF_KVVAL], lo, EKV_NSID_LEN, hi, hlen);

    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_ns(k, sizeof(k), nsid);
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen);
    del_title(s, cur->account_id, cur->title, cur->title_len);

    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__NS_DELETE, ++*seq, now_ms);
    rec_nsid(&rec, nsid);
    rec.account_id = (char *)cur->account_id;
    rec.title = cur->title;
    if ((rc = log_put(s, &rec, NULL, 0))) {
        *fatal = rc;
        return rc;
    }
    ekv_catidx_ns_remove(&s->idx, nsid); /* cur is freed here */
    return 0;
}

/* ---- accounts and tokens ---- */

static int apply_account_create(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                                int *fatal)
{
    ekv_account_t *a = &w->account;
    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_account(k, sizeof(k), a->id);
    if (klen < 0 || strnlen(a->name, sizeof(a->name)) >= sizeof(a->name))
        return EKV_EBAD_REQUEST;
    if (!a->created_ms)
        a->created_ms = now_ms;
    ekv_buf_reset(&s->vbuf);
    int rc = ekv_catrec_account_encode(a, &s->vbuf);
    if (rc)
        goto fail;
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen, s->vbuf.data,
                              s->vbuf.len);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__ACCOUNT_CREATE, ++*seq, now_ms);
    rec.account_id = a->id;
    rec.title = a->name;
    rec.created_ms = a->created_ms;
    if ((rc = log_put(s, &rec, NULL, 0)))
        goto fail;
    return 0;
fail:
    *fatal = rc;
    return rc;
}

static int apply_token_create(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                              int *fatal)
{
    ekv_token_t *t = &w->token;
    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_token(k, sizeof(k), t->hash);
    if (klen < 0 || !ekv_key_id_ok(t->id, EKV_ID_HEX_LEN) ||
        !ekv_key_id_ok(t->account_id, EKV_ID_HEX_LEN) ||
        strnlen(t->name, sizeof(t->name)) >= sizeof(t->name))
        return EKV_EBAD_REQUEST;
    if (!t->created_ms)
        t->created_ms = now_ms;
    ekv_buf_reset(&s->vbuf);
    int rc = ekv_catrec_token_encode(t, &s->vbuf);
    if (rc)
        goto fail;
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen, s->vbuf.data,
                              s->vbuf.len);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__TOKEN_CREATE, ++*seq, now_ms);
    rec.token_hash = t->hash;
    rec.token_id = t->id;
    rec.account_id = t->account_id;
    rec.title = t->name;
    rec.perms = t->perms;
    rec.created_ms = t->created_ms;
    if ((rc = log_put(s, &rec, NULL, 0)))
        goto fail;
    if ((rc = ekv_catidx_token_add(&s->idx, t->hash, t->id, t->account_id)))
        goto fail;
    return 0;
fail:
    *fatal = rc;
    return rc;
}

static int apply_token_revoke(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                              int *fatal)
{
    ekv_token_t *t = &w->token;
    const ekv_catidx_token_t *cur = NULL;
    if (ekv_key_id_ok(t->hash, EKV_TOKEN_HASH_LEN))
        cur = ekv_catidx_token_by_hash(&s->idx, t->hash);
    else if (!t->hash[0] && ekv_key_id_ok(t->id, EKV_ID_HEX_LEN))
        cur = ekv_catidx_token_by_id(&s->idx, t->id);
    if (!cur || (t->id[0] && strncmp(t->id, cur->id, sizeof(t->id)) != 0) ||
        (t->account_id[0] && strncmp(t->account_id, cur->account_id, sizeof(t->account_id))))
        return EKV_ETOKEN_NOT_FOUND;
    /* tell the caller which token went (it may have named it by id only) */
    memcpy(t->hash, cur->hash, sizeof(t->hash));
    memcpy(t->id, cur->id, sizeof(t->id));
    memcpy(t->account_id, cur->account_id, sizeof(t->account_id));

    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_token(k, sizeof(k), t->hash);
    if (klen < 0)
        return EKV_EINTERNAL;
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__TOKEN_REVOKE, ++*seq, now_ms);
    rec.token_hash = t->hash;
    rec.token_id = t->id;
    rec.account_id = t->account_id;
    int rc = log_put(s, &rec, NULL, 0);
    if (rc) {
        *fatal = rc;
        return rc;
    }
    ekv_catidx_token_remove(&s->idx, t->hash);
    return 0;
}

/* ---- Durable Objects ---- */

/* dons from a DO namespace's hex id; same rules as parse_nsid. */
static int parse_dons(const ekv_do_ns_t *ns, uint8_t dons[EKV_NSID_LEN])
{
    return ns ? parse_nsid(ns->id, dons) : EKV_EBAD_REQUEST;
}

static int apply_do_ns_put(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                           int *fatal)
{
    uint8_t dons[EKV_NSID_LEN];
    int rc = parse_dons(w->do_ns, dons);
    if (rc)
        return rc;
    const ekv_do_ns_t *ns = w->do_ns;
    if (!ekv_key_id_ok(ns->account_id, EKV_ID_HEX_LEN) || !ns->name[0] || !ns->class_name[0])
        return EKV_EBAD_REQUEST;
    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_do_ns(k, sizeof(k), dons);
    ekv_buf_reset(&s->vbuf);
    if (klen < 0 || (rc = ekv_catrec_do_ns_encode(ns, &s->vbuf)))
        return rc ? rc : EKV_EINTERNAL;
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen, s->vbuf.data,
                              s->vbuf.len);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__DO_NS_PUT, ++*seq, now_ms);
    rec_nsid(&rec, dons);
    rec.account_id = (char *)ns->account_id;
    if ((rc = log_put(s, &rec, s->vbuf.data, s->vbuf.len)))
        *fatal = rc;
    return rc;
}

/* Delete every entry of cf whose key starts with p[0..len). */
static void delete_prefix(ekv_store_t *s, ekv_cf_t cf, const char *p, size_t len)
{
    char hi[EKV_KEY_DO_OBJ_LEN];
    size_t hlen = ekv_key_prefix_successor(p, len, hi);
    EKV_ASSERT(hlen > 0); /* parse_nsid refuses the all-0xff namespace id */
    rocksdb_writebatch_delete_range_cf(s->wb, s->cf[cf], p, len, hi, hlen);
}

static int apply_do_ns_delete(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                              int *fatal)
{
    uint8_t dons[EKV_NSID_LEN];
    int rc = parse_dons(w->do_ns, dons);
    if (rc)
        return rc;
    char k[EKV_KEY_META_MAX];
    int klen = ekv_key_meta_do_ns(k, sizeof(k), dons);
    if (klen < 0)
        return EKV_EINTERNAL;
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_META], k, (size_t)klen);
    delete_prefix(s, EKV_CF_DOKV, (const char *)dons, EKV_NSID_LEN);
    delete_prefix(s, EKV_CF_DOALARM, (const char *)dons, EKV_NSID_LEN);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__DO_NS_DELETE, ++*seq, now_ms);
    rec_nsid(&rec, dons);
    rec.account_id = (char *)w->do_ns->account_id;
    if ((rc = log_put(s, &rec, NULL, 0)))
        *fatal = rc;
    return rc;
}

#define DO_MAX_ITEM_BYTES ((size_t)4 << 20) /* sanity bound; the API enforces Cloudflare's */

/* The fencing check of a DO_WRITE / DO_FENCE: 0, or EKV_EDO_MOVED (nothing is written). */
static int do_fence_check(const ekv_store_t *s, const ekv_write_t *w)
{
    if (!w->do_fenced)
        return 0;
    if (w->do_partition >= EKV_DO_PARTITIONS || s->do_epochs[w->do_partition] != w->do_epoch)
        return EKV_EDO_MOVED;
    return 0;
}

/* The partition table: stored (meta) and logged as one record; the fencing epochs change with
 * it, in commit order (a write queued before it is checked against the old epochs). */
static int apply_do_ptable(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms,
                           int *fatal)
{
    if (!w->do_table || !w->do_table_len)
        return EKV_EBAD_REQUEST;
    rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_META], EKV_KEY_DO_PTABLE, EKV_KEY_DO_PTABLE_LEN,
                              w->do_table, w->do_table_len);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__DO_PTABLE, ++*seq, now_ms);
    int rc = log_put(s, &rec, w->do_table, w->do_table_len);
    if (rc) {
        *fatal = rc;
        return rc;
    }
    if (w->do_epochs)
        memcpy(s->do_epochs, w->do_epochs, EKV_DO_PARTITIONS * sizeof(*s->do_epochs));
    return 0;
}

static int apply_do_write(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms, int *fatal)
{
    int frc = do_fence_check(s, w);
    if (frc)
        return frc;
    /* the all-0xff namespace id, refused by DO_NS_PUT (parse_nsid), has no key-range
     * successor: delete_prefix would assert on it. The op names raw bytes, so check here. */
    size_t ff = 0;
    while (ff < EKV_NSID_LEN && w->nsid[ff] == 0xff)
        ff++;
    if (ff == EKV_NSID_LEN)
        return EKV_EBAD_NS_ID;
    if ((w->do_nitems && !w->do_items) || w->do_alarm_op < EKV_DO_ALARM_KEEP ||
        w->do_alarm_op > EKV_DO_ALARM_DELETE || w->do_alarm_ms < 0)
        return EKV_EBAD_REQUEST;
    for (size_t i = 0; i < w->do_nitems; i++) {
        const ekv_do_item_t *it = &w->do_items[i];
        if ((it->key_len && !it->key) || it->key_len > DO_MAX_ITEM_BYTES ||
            (!it->del && (!it->value || it->value_len > DO_MAX_ITEM_BYTES)))
            return EKV_EBAD_REQUEST;
    }
    const char *name = w->do_object_name ? w->do_object_name : "";
    size_t name_len = strlen(name);
    if (name_len > DO_MAX_ITEM_BYTES)
        return EKV_EBAD_REQUEST;

    Edgekv__DoMutation *muts = NULL, **mptr = NULL;
    if (w->do_nitems) {
        muts = calloc(w->do_nitems, sizeof(*muts));
        mptr = calloc(w->do_nitems, sizeof(*mptr));
        if (!muts || !mptr) {
            free(muts);
            free(mptr);
            return EKV_ENOMEM; /* nothing written yet: not fatal */
        }
    }
    char obj[EKV_KEY_DO_OBJ_LEN];
    ekv_key_do_obj(obj, w->nsid, w->objid);
    if (w->do_delete_all) {
        delete_prefix(s, EKV_CF_DOKV, obj, sizeof(obj));
        rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_DOALARM], obj, sizeof(obj));
    }
    int rc = 0;
    for (size_t i = 0; i < w->do_nitems; i++) {
        const ekv_do_item_t *it = &w->do_items[i];
        char *k = key_buf(s, EKV_KEY_DO_OBJ_LEN + it->key_len);
        if (!k) {
            rc = EKV_ENOMEM;
            goto out;
        }
        size_t klen = ekv_key_do_kv(k, w->nsid, w->objid, it->key, it->key_len);
        if (it->del)
            rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_DOKV], k, klen);
        else
            rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_DOKV], k, klen, it->value, it->value_len);
        edgekv__do_mutation__init(&muts[i]);
        muts[i].key.data = (uint8_t *)it->key;
        muts[i].key.len = it->key_len;
        muts[i].del = it->del != 0;
        if (!it->del) {
            muts[i].value.data = (uint8_t *)it->value;
            muts[i].value.len = it->value_len;
        }
        mptr[i] = &muts[i];
    }
    if (w->do_alarm_op == EKV_DO_ALARM_SET) {
        ekv_buf_reset(&s->vbuf);
        char ms[8];
        ekv_be64_put(ms, (uint64_t)w->do_alarm_ms);
        if (ekv_buf_append(&s->vbuf, ms, sizeof(ms)) ||
            (name_len && ekv_buf_append(&s->vbuf, name, name_len))) {
            rc = EKV_ENOMEM;
            goto out;
        }
        rocksdb_writebatch_put_cf(s->wb, s->cf[EKV_CF_DOALARM], obj, sizeof(obj), s->vbuf.data,
                                  s->vbuf.len);
    } else if (w->do_alarm_op == EKV_DO_ALARM_DELETE) {
        rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_DOALARM], obj, sizeof(obj));
    }
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__DO_WRITE, ++*seq, now_ms);
    rec_nsid(&rec, w->nsid);
    rec.object_id.data = w->objid;
    rec.object_id.len = EKV_DO_OBJID_LEN;
    rec.do_delete_all = w->do_delete_all != 0;
    rec.n_do_mutations = w->do_nitems;
    rec.do_mutations = mptr;
    rec.do_alarm_op = (Edgekv__DoAlarmOp)w->do_alarm_op;
    rec.do_alarm_ms = w->do_alarm_ms;
    rec.do_object_name = (char *)name;
    rc = log_put(s, &rec, NULL, 0);
out:
    free(muts);
    free(mptr);
    if (rc)
        *fatal = rc; /* part of the op may be in the batch */
    return rc;
}

int ekv__apply_op(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms, int *fatal)
{
    if (w->type == EKV__OP_APPLY_RECORDS)
        return ekv__apply_records(s, w->udata, seq, fatal);
    switch (w->type) {
    case EKV_OP_KV_PUT:
    case EKV_OP_KV_DELETE:
        return apply_kv(s, w, seq, now_ms, fatal);
    case EKV_OP_NS_CREATE:
        return apply_ns_create(s, w, seq, now_ms, fatal);
    case EKV_OP_NS_RENAME:
        return apply_ns_rename(s, w, seq, now_ms, fatal);
    case EKV_OP_NS_DELETE:
        return apply_ns_delete(s, w, seq, now_ms, fatal);
    case EKV_OP_ACCOUNT_CREATE:
        return apply_account_create(s, w, seq, now_ms, fatal);
    case EKV_OP_TOKEN_CREATE:
        return apply_token_create(s, w, seq, now_ms, fatal);
    case EKV_OP_TOKEN_REVOKE:
        return apply_token_revoke(s, w, seq, now_ms, fatal);
    case EKV_OP_DO_NS_PUT:
        return apply_do_ns_put(s, w, seq, now_ms, fatal);
    case EKV_OP_DO_NS_DELETE:
        return apply_do_ns_delete(s, w, seq, now_ms, fatal);
    case EKV_OP_DO_WRITE:
        return apply_do_write(s, w, seq, now_ms, fatal);
    case EKV_OP_DO_PTABLE:
        return apply_do_ptable(s, w, seq, now_ms, fatal);
    case EKV_OP_DO_FENCE:
        return do_fence_check(s, w);
    case EKV_OP_DO_EPOCHS:
        if (!w->do_epochs)
            return EKV_EBAD_REQUEST;
        memcpy(s->do_epochs, w->do_epochs, EKV_DO_PARTITIONS * sizeof(*s->do_epochs));
        return 0;
    }
    ekv_log_warn("unknown write op", "type=%d", (int)w->type);
    return EKV_EBAD_REQUEST;
}

/* ---- replica apply ---- */

/* Copy a record string into a fixed field; 0 or EKV_EBAD_REQUEST when it does not fit. */
static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        return EKV_EBAD_REQUEST;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
    return 0;
}

/* KV_EXPIRE exactly as the primary's purger writes it (purge.c): the key, its value and its
 * exp index entry go, with the record. */
static int apply_expire(ekv_store_t *s, const Edgekv__ChangeRecord *r, uint64_t *seq, int *fatal)
{
    const uint8_t *nsid = r->namespace_id.data;
    const char *key = (const char *)r->key.data;
    size_t key_len = r->key.len;
    char *k = key_buf(s, EKV_KEY_BE64_LEN + EKV_NSID_LEN + key_len);
    if (!k) {
        *fatal = EKV_ENOMEM;
        return EKV_ENOMEM;
    }
    size_t klen = ekv_key_kv(k, nsid, key, key_len);
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_KVMETA], k, klen);
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_KVVAL], k, klen);
    klen = ekv_key_exp(k, r->expiration, nsid, key, key_len);
    rocksdb_writebatch_delete_cf(s->wb, s->cf[EKV_CF_EXP], k, klen);
    Edgekv__ChangeRecord rec;
    rec_init(&rec, EDGEKV__CHANGE_OP__KV_EXPIRE, ++*seq, r->commit_time_ms);
    int rc = log_put(s, &rec, NULL, 0);
    if (rc)
        *fatal = rc;
    return rc;
}

/* A DO record back into the op the primary applied. */
static int apply_do_record(ekv_store_t *s, const Edgekv__ChangeRecord *r, uint64_t *seq, int *fatal)
{
    if (r->namespace_id.len != EKV_NSID_LEN)
        return EKV_EBAD_REQUEST;
    ekv_write_t w;
    ekv_do_ns_t ns;
    memset(&w, 0, sizeof(w));
    memset(&ns, 0, sizeof(ns));
    memcpy(w.nsid, r->namespace_id.data, EKV_NSID_LEN);
    if (r->op == EDGEKV__CHANGE_OP__DO_NS_PUT) {
        if (ekv_catrec_do_ns_decode((const char *)r->value.data, r->value.len, &ns))
            return EKV_EBAD_REQUEST;
        w.type = EKV_OP_DO_NS_PUT;
        w.do_ns = &ns;
        return ekv__apply_op(s, &w, seq, r->commit_time_ms, fatal);
    }
    if (r->op == EDGEKV__CHANGE_OP__DO_NS_DELETE) {
        ekv_hex_encode(r->namespace_id.data, EKV_NSID_LEN, ns.id);
        if (copy_str(ns.account_id, sizeof(ns.account_id), r->account_id))
            return EKV_EBAD_REQUEST;
        w.type = EKV_OP_DO_NS_DELETE;
        w.do_ns = &ns;
        return ekv__apply_op(s, &w, seq, r->commit_time_ms, fatal);
    }
    ekv_do_item_t *items = NULL;
    int rc = ekv_store_do_write_of_record(r, &w, &items);
    if (rc)
        return rc;
    rc = ekv__apply_op(s, &w, seq, r->commit_time_ms, fatal);
    free(items);
    return rc;
}

int ekv_store_do_write_of_record(const Edgekv__ChangeRecord *r, ekv_write_t *w,
                                 ekv_do_item_t **items_out)
{
    *items_out = NULL;
    if (r->namespace_id.len != EKV_NSID_LEN || r->object_id.len != EKV_DO_OBJID_LEN)
        return EKV_EBAD_REQUEST;
    ekv_do_item_t *items = NULL;
    if (r->n_do_mutations && !(items = calloc(r->n_do_mutations, sizeof(*items))))
        return EKV_ENOMEM;
    for (size_t i = 0; i < r->n_do_mutations; i++) {
        const Edgekv__DoMutation *m = r->do_mutations[i];
        items[i].key = (const char *)m->key.data;
        items[i].key_len = m->key.len;
        items[i].del = m->del;
        items[i].value = m->del ? NULL : (m->value.data ? (const char *)m->value.data : "");
        items[i].value_len = m->value.len;
    }
    w->type = EKV_OP_DO_WRITE;
    memcpy(w->nsid, r->namespace_id.data, EKV_NSID_LEN);
    memcpy(w->objid, r->object_id.data, EKV_DO_OBJID_LEN);
    w->do_delete_all = r->do_delete_all;
    w->do_items = items;
    w->do_nitems = r->n_do_mutations;
    w->do_alarm_op = (ekv_do_alarm_op_t)r->do_alarm_op;
    w->do_alarm_ms = r->do_alarm_ms;
    w->do_object_name = r->do_object_name;
    *items_out = items;
    return 0;
}

/* Turn one decoded record into the ekv_write_t the primary applied (one item for KV ops)
 * and run it through the same apply function. */
static int apply_record(ekv_store_t *s, const Edgekv__ChangeRecord *r, uint64_t *seq, int *fatal)
{
    int has_ns = r->op == EDGEKV__CHANGE_OP__KV_PUT || r->op == EDGEKV__CHANGE_OP__KV_DELETE ||
                 r->op == EDGEKV__CHANGE_OP__KV_EXPIRE || r->op == EDGEKV__CHANGE_OP__NS_CREATE ||
                 r->op == EDGEKV__CHANGE_OP__NS_RENAME || r->op == EDGEKV__CHANGE_OP__NS_DELETE;
    if (has_ns && r->namespace_id.len != EKV_NSID_LEN)
        return EKV_EBAD_REQUEST;
    if (r->op == EDGEKV__CHANGE_OP__KV_EXPIRE) {
        if (!r->key.len || r->expiration < 0)
            return EKV_EBAD_REQUEST;
        return apply_expire(s, r, seq, fatal);
    }

    if (r->op == EDGEKV__CHANGE_OP__DO_NS_PUT || r->op == EDGEKV__CHANGE_OP__DO_NS_DELETE ||
        r->op == EDGEKV__CHANGE_OP__DO_WRITE)
        return apply_do_record(s, r, seq, fatal);
    if (r->op == EDGEKV__CHANGE_OP__DO_PTABLE) {
        /* stored as is; a promoted replica sets its fencing epochs from it (DO_EPOCHS) */
        ekv_write_t w;
        memset(&w, 0, sizeof(w));
        w.type = EKV_OP_DO_PTABLE;
        w.do_table = r->value.data;
        w.do_table_len = r->value.len;
        return ekv__apply_op(s, &w, seq, r->commit_time_ms, fatal);
    }

    ekv_write_t w;
    ekv_kv_item_t it;
    memset(&w, 0, sizeof(w));
    memset(&it, 0, sizeof(it));
    int rc = 0;
    switch (r->op) {
    case EDGEKV__CHANGE_OP__KV_PUT:
    case EDGEKV__CHANGE_OP__KV_DELETE:
        w.type = r->op == EDGEKV__CHANGE_OP__KV_PUT ? EKV_OP_KV_PUT : EKV_OP_KV_DELETE;
        memcpy(w.nsid, r->namespace_id.data, EKV_NSID_LEN);
        it.key = (const char *)r->key.data;
        it.key_len = r->key.len;
        it.value = r->value.len ? (const char *)r->value.data : NULL;
        it.value_len = r->value.len;
        it.metadata = r->metadata.len ? (const char *)r->metadata.data : NULL;
        it.metadata_len = r->metadata.len;
        it.expiration = r->expiration;
        w.items = &it;
        w.nitems = 1;
        break;
    case EDGEKV__CHANGE_OP__NS_CREATE:
    case EDGEKV__CHANGE_OP__NS_RENAME:
    case EDGEKV__CHANGE_OP__NS_DELETE:
        w.type = r->op == EDGEKV__CHANGE_OP__NS_CREATE   ? EKV_OP_NS_CREATE
                 : r->op == EDGEKV__CHANGE_OP__NS_RENAME ? EKV_OP_NS_RENAME
                                                         : EKV_OP_NS_DELETE;
        ekv_hex_encode(r->namespace_id.data, EKV_NSID_LEN, w.ns.id);
        rc = copy_str(w.ns.account_id, sizeof(w.ns.account_id), r->account_id);
        if (!rc && r->op != EDGEKV__CHANGE_OP__NS_DELETE)
            rc = copy_str(w.ns.title, sizeof(w.ns.title), r->title);
        w.ns.created_ms = r->created_ms;
        break;
    case EDGEKV__CHANGE_OP__ACCOUNT_CREATE:
        w.type = EKV_OP_ACCOUNT_CREATE;
        rc = copy_str(w.account.id, sizeof(w.account.id), r->account_id);
        if (!rc)
            rc = copy_str(w.account.name, sizeof(w.account.name), r->title);
        w.account.created_ms = r->created_ms;
        break;
    case EDGEKV__CHANGE_OP__TOKEN_CREATE:
    case EDGEKV__CHANGE_OP__TOKEN_REVOKE:
        w.type =
            r->op == EDGEKV__CHANGE_OP__TOKEN_CREATE ? EKV_OP_TOKEN_CREATE : EKV_OP_TOKEN_REVOKE;
        rc = copy_str(w.token.hash, sizeof(w.token.hash), r->token_hash);
        if (!rc)
            rc = copy_str(w.token.id, sizeof(w.token.id), r->token_id);
        if (!rc)
            rc = copy_str(w.token.account_id, sizeof(w.token.account_id), r->account_id);
        if (!rc && r->op == EDGEKV__CHANGE_OP__TOKEN_CREATE)
            rc = copy_str(w.token.name, sizeof(w.token.name), r->title);
        w.token.perms = r->perms;
        w.token.created_ms = r->created_ms;
        break;
    default:
        return EKV_EBAD_REQUEST;
    }
    if (rc)
        return rc;
    return ekv__apply_op(s, &w, seq, r->commit_time_ms, fatal);
}

int ekv__apply_records(ekv_store_t *s, const ekv_log_batch_t *b, uint64_t *seq, int *fatal)
{
    if (!b || !b->count)
        return 0;
    if (!b->recs)
        return EKV_EBAD_REQUEST;
    /* the whole run is checked before the first mutation: a gap writes nothing */
    for (size_t i = 0; i < b->count; i++)
        if (b->recs[i].seq != *seq + 1 + i || !b->recs[i].data)
            return b->recs[i].data ? EKV_ELOG_GAP : EKV_EBAD_REQUEST;

    for (size_t i = 0; i < b->count; i++) {
        const ekv_log_record_t *lr = &b->recs[i];
        Edgekv__ChangeRecord *own =
            lr->rec ? NULL : edgekv__change_record__unpack(NULL, lr->len, lr->data);
        const Edgekv__ChangeRecord *r = lr->rec ? lr->rec : own;
        int rc;
        uint64_t before = *seq;
        if (!r) {
            rc = EKV_EBAD_REQUEST;
        } else if (r->seq != lr->seq) {
            rc = EKV_ELOG_GAP;
        } else {
            s->repl_raw = lr->data;
            s->repl_raw_len = lr->len;
            rc = apply_record(s, r, seq, fatal);
            s->repl_raw = NULL;
            s->repl_raw_len = 0;
            if (!rc && *seq != before + 1) /* one record in, exactly one record out */
                rc = EKV_EINTERNAL;
        }
        if (own)
            edgekv__change_record__free_unpacked(own, NULL);
        if (rc) {
            /* earlier records of the batch may already be in s->wb: abandon it all */
            ekv_log_error("replicated record rejected", "seq=%llu err=%s",
                          (unsigned long long)lr->seq, ekv_err_name(rc));
            if (!*fatal)
                *fatal = rc;
            return rc;
        }
    }
    return 0;
}
