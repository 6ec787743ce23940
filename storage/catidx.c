/*
 * catidx.c - committer-owned catalog index (see catidx.h).
 *
 * Each namespace / token is one allocation holding the links of both its tables
 * (common/htab.h, intrusive): a title lookup hashes (account_id, title) without building a
 * key, and a rename relinks the node instead of copying keys.
 */
#include "storage/catidx.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/keys.h"

#include <stdlib.h>
#include <string.h>

#define NS(n, member)  EKV_HTAB_ENTRY(n, ekv_catidx_ns_t, member)
#define TOK(n, member) EKV_HTAB_ENTRY(n, ekv_catidx_token_t, member)

/* Truncating copy (callers pass validated ids that fit). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void ns_free(ekv_catidx_ns_t *ns)
{
    free(ns->title);
    free(ns);
}

/* ---- keys and their equality callbacks ---- */

typedef struct {
    const char *s;
    size_t len;
} str_key_t;

typedef struct {
    const char *account_id;
    size_t alen;
    const char *title;
    size_t tlen;
} title_key_t;

static uint64_t hash_nsid(const uint8_t nsid[EKV_NSID_LEN])
{
    return ekv_hash_bytes(nsid, EKV_NSID_LEN);
}

static int nsid_eq(const ekv_hnode_t *n, const void *key)
{
    return memcmp(NS(n, by_id)->nsid, key, EKV_NSID_LEN) == 0;
}

/* The (account_id, title) key; 0 when it cannot be in the index (too long). */
static int title_key(title_key_t *k, const char *account_id, const char *title, size_t title_len)
{
    k->account_id = account_id;
    k->alen = strnlen(account_id, EKV_ID_HEX_LEN + 1);
    k->title = title;
    k->tlen = title_len;
    return k->alen <= EKV_ID_HEX_LEN && title_len <= EKV_KEY_MAX_TITLE;
}

static uint64_t hash_title(const title_key_t *k)
{
    return ekv_hash_bytes_seed(k->title, k->tlen, ekv_hash_bytes(k->account_id, k->alen));
}

static int title_eq(const ekv_hnode_t *n, const void *key)
{
    const ekv_catidx_ns_t *ns = NS(n, by_title);
    const title_key_t *k = key;
    return ns->title_len == k->tlen && strlen(ns->account_id) == k->alen &&
           memcmp(ns->account_id, k->account_id, k->alen) == 0 &&
           memcmp(ns->title, k->title, k->tlen) == 0;
}

static int tok_hash_eq(const ekv_hnode_t *n, const void *key)
{
    const str_key_t *k = key;
    const char *h = TOK(n, by_hash)->hash;
    return strlen(h) == k->len && memcmp(h, k->s, k->len) == 0;
}

static int tok_id_eq(const ekv_hnode_t *n, const void *key)
{
    const str_key_t *k = key;
    const char *id = TOK(n, by_id)->id;
    return strlen(id) == k->len && memcmp(id, k->s, k->len) == 0;
}

/* ---- lifecycle ---- */

void ekv_catidx_init(ekv_catidx_t *x)
{
    ekv_htab_init(&x->ns_by_id);
    ekv_htab_init(&x->ns_by_title);
    ekv_bytemap_init(&x->ns_count);
    ekv_htab_init(&x->tok_by_hash);
    ekv_htab_init(&x->tok_by_id);
}

void ekv_catidx_deinit(ekv_catidx_t *x)
{
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &x->ns_by_id);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));)
        ns_free(NS(n, by_id));
    ekv_htab_iter_init(&it, &x->tok_by_hash);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));)
        free(TOK(n, by_hash));
    ekv_htab_deinit(&x->ns_by_id);
    ekv_htab_deinit(&x->ns_by_title);
    ekv_bytemap_deinit(&x->ns_count, NULL);
    ekv_htab_deinit(&x->tok_by_hash);
    ekv_htab_deinit(&x->tok_by_id);
}

/* ---- namespaces ---- */

static ekv_catidx_ns_t *ns_find(const ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN])
{
    ekv_hnode_t *n = ekv_htab_find(&x->ns_by_id, hash_nsid(nsid), nsid_eq, nsid);
    return n ? NS(n, by_id) : NULL;
}

const ekv_catidx_ns_t *ekv_catidx_ns_get(const ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN])
{
    return ns_find(x, nsid);
}

const ekv_catidx_ns_t *ekv_catidx_ns_by_title(const ekv_catidx_t *x, const char *account_id,
                                              const char *title, size_t title_len)
{
    title_key_t k;
    if (!title_key(&k, account_id, title, title_len))
        return NULL;
    ekv_hnode_t *n = ekv_htab_find(&x->ns_by_title, hash_title(&k), title_eq, &k);
    return n ? NS(n, by_title) : NULL;
}

size_t ekv_catidx_ns_count(const ekv_catidx_t *x, const char *account_id)
{
    return (uintptr_t)ekv_bytemap_get(&x->ns_count, account_id, strlen(account_id));
}

static int count_add(ekv_catidx_t *x, const char *account_id, int delta)
{
    size_t alen = strlen(account_id);
    uintptr_t c = (uintptr_t)ekv_bytemap_get(&x->ns_count, account_id, alen);
    c = (uintptr_t)((intptr_t)c + delta);
    if (c == 0) {
        ekv_bytemap_del(&x->ns_count, account_id, alen);
        return 0;
    }
    return ekv_bytemap_put(&x->ns_count, account_id, alen, (void *)c);
}

static void title_link(ekv_catidx_t *x, ekv_catidx_ns_t *ns)
{
    title_key_t k;
    title_key(&k, ns->account_id, ns->title, ns->title_len);
    /* cannot fail: the caller reserved (add) or the table already holds this node (rename) */
    int rc = ekv_htab_insert(&x->ns_by_title, &ns->by_title, hash_title(&k));
    EKV_ASSERT(rc == 0);
}

int ekv_catidx_ns_add(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN], const char *account_id,
                      const char *title, size_t title_len, int64_t created_ms)
{
    title_key_t k;
    if (!title_key(&k, account_id, title, title_len))
        return EKV_EINTERNAL;
    /* everything that can fail first, so a failure leaves the index unchanged; a table that
     * has a bucket array (reserve) takes any insert */
    if (ekv_htab_reserve(&x->ns_by_id, 1) || ekv_htab_reserve(&x->ns_by_title, 1))
        return EKV_ENOMEM;
    ekv_catidx_ns_t *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return EKV_ENOMEM;
    ns->title = malloc(title_len + 1);
    if (!ns->title || count_add(x, account_id, 1)) {
        ns_free(ns);
        return EKV_ENOMEM;
    }
    memcpy(ns->nsid, nsid, EKV_NSID_LEN);
    copy_str(ns->account_id, sizeof(ns->account_id), account_id);
    memcpy(ns->title, title, title_len);
    ns->title[title_len] = '\0';
    ns->title_len = title_len;
    ns->created_ms = created_ms;
    int rc = ekv_htab_insert(&x->ns_by_id, &ns->by_id, hash_nsid(nsid));
    EKV_ASSERT(rc == 0); /* reserved above */
    title_link(x, ns);
    return 0;
}

int ekv_catidx_ns_rename(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN], const char *title,
                         size_t title_len)
{
    ekv_catidx_ns_t *ns = ns_find(x, nsid);
    if (!ns)
        return EKV_ENS_NOT_FOUND;
    title_key_t k;
    if (!title_key(&k, ns->account_id, title, title_len))
        return EKV_EINTERNAL;
    char *t = malloc(title_len + 1);
    if (!t)
        return EKV_ENOMEM;
    memcpy(t, title, title_len);
    t[title_len] = '\0';
    ekv_htab_remove(&x->ns_by_title, &ns->by_title);
    free(ns->title);
    ns->title = t;
    ns->title_len = title_len;
    title_link(x, ns);
    return 0;
}

void ekv_catidx_ns_remove(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN])
{
    ekv_hnode_t *n = ekv_htab_take(&x->ns_by_id, hash_nsid(nsid), nsid_eq, nsid);
    if (!n)
        return;
    ekv_catidx_ns_t *ns = NS(n, by_id);
    ekv_htab_remove(&x->ns_by_title, &ns->by_title);
    count_add(x, ns->account_id, -1); /* decrement never allocates */
    ns_free(ns);
}

/* ---- tokens ---- */

static ekv_catidx_token_t *tok_find(const ekv_catidx_t *x, const char *hash)
{
    str_key_t k = {hash, strlen(hash)};
    ekv_hnode_t *n = ekv_htab_find(&x->tok_by_hash, ekv_hash_bytes(k.s, k.len), tok_hash_eq, &k);
    return n ? TOK(n, by_hash) : NULL;
}

const ekv_catidx_token_t *ekv_catidx_token_by_hash(const ekv_catidx_t *x, const char *hash)
{
    return tok_find(x, hash);
}

const ekv_catidx_token_t *ekv_catidx_token_by_id(const ekv_catidx_t *x, const char *id)
{
    str_key_t k = {id, strlen(id)};
    ekv_hnode_t *n = ekv_htab_find(&x->tok_by_id, ekv_hash_bytes(k.s, k.len), tok_id_eq, &k);
    return n ? TOK(n, by_id) : NULL;
}

int ekv_catidx_token_add(ekv_catidx_t *x, const char *hash, const char *id, const char *account_id)
{
    ekv_catidx_token_remove(x, hash);
    if (ekv_htab_reserve(&x->tok_by_hash, 1) || ekv_htab_reserve(&x->tok_by_id, 1))
        return EKV_ENOMEM;
    ekv_catidx_token_t *t = calloc(1, sizeof(*t));
    if (!t)
        return EKV_ENOMEM;
    copy_str(t->hash, sizeof(t->hash), hash);
    copy_str(t->id, sizeof(t->id), id);
    copy_str(t->account_id, sizeof(t->account_id), account_id);
    int rc =
        ekv_htab_insert(&x->tok_by_hash, &t->by_hash, ekv_hash_bytes(t->hash, strlen(t->hash)));
    if (!rc && t->id[0])
        rc = ekv_htab_insert(&x->tok_by_id, &t->by_id, ekv_hash_bytes(t->id, strlen(t->id)));
    EKV_ASSERT(rc == 0); /* reserved above */
    return 0;
}

void ekv_catidx_token_remove(ekv_catidx_t *x, const char *hash)
{
    ekv_catidx_token_t *t = tok_find(x, hash);
    if (!t)
        return;
    ekv_htab_remove(&x->tok_by_hash, &t->by_hash);
    if (t->id[0])
        ekv_htab_remove(&x->tok_by_id, &t->by_id);
    free(t);
}
