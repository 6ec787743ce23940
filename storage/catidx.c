/*
 * catidx.c - committer-owned catalog index (see catidx.h).
 */
#include "storage/catidx.h"
#include "common/errors.h"
#include "storage/keys.h"

#include <stdlib.h>
#include <string.h>

#define TITLE_KEY_MAX (EKV_ID_HEX_LEN + 1 + EKV_KEY_MAX_TITLE)

/* Truncating copy (callers pass validated ids that fit). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void ns_free(void *p)
{
    ekv_catidx_ns_t *ns = p;
    free(ns->title);
    free(ns);
}

void ekv_catidx_init(ekv_catidx_t *x)
{
    ekv_htab_init(&x->ns_by_id);
    ekv_htab_init(&x->ns_by_title);
    ekv_htab_init(&x->ns_count);
    ekv_htab_init(&x->tok_by_hash);
    ekv_htab_init(&x->tok_by_id);
}

void ekv_catidx_deinit(ekv_catidx_t *x)
{
    ekv_htab_deinit(&x->ns_by_title, NULL);
    ekv_htab_deinit(&x->ns_count, NULL);
    ekv_htab_deinit(&x->ns_by_id, ns_free);
    ekv_htab_deinit(&x->tok_by_id, NULL);
    ekv_htab_deinit(&x->tok_by_hash, free);
}

/* account_id "/" title; returns the length, 0 when it does not fit. */
static size_t title_key(char out[TITLE_KEY_MAX], const char *account_id, const char *title,
                        size_t title_len)
{
    size_t alen = strnlen(account_id, EKV_ID_HEX_LEN + 1);
    if (alen > EKV_ID_HEX_LEN || title_len > EKV_KEY_MAX_TITLE)
        return 0;
    memcpy(out, account_id, alen);
    out[alen] = '/';
    memcpy(out + alen + 1, title, title_len);
    return alen + 1 + title_len;
}

const ekv_catidx_ns_t *ekv_catidx_ns_get(const ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN])
{
    return ekv_htab_get(&x->ns_by_id, nsid, EKV_NSID_LEN);
}

const ekv_catidx_ns_t *ekv_catidx_ns_by_title(const ekv_catidx_t *x, const char *account_id,
                                              const char *title, size_t title_len)
{
    char k[TITLE_KEY_MAX];
    size_t n = title_key(k, account_id, title, title_len);
    return n ? ekv_htab_get(&x->ns_by_title, k, n) : NULL;
}

size_t ekv_catidx_ns_count(const ekv_catidx_t *x, const char *account_id)
{
    return (uintptr_t)ekv_htab_get(&x->ns_count, account_id, strlen(account_id));
}

static int count_add(ekv_catidx_t *x, const char *account_id, int delta)
{
    size_t alen = strlen(account_id);
    uintptr_t c = (uintptr_t)ekv_htab_get(&x->ns_count, account_id, alen);
    c = (uintptr_t)((intptr_t)c + delta);
    if (c == 0) {
        ekv_htab_del(&x->ns_count, account_id, alen);
        return 0;
    }
    return ekv_htab_put(&x->ns_count, account_id, alen, (void *)c);
}

int ekv_catidx_ns_add(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN], const char *account_id,
                      const char *title, size_t title_len, int64_t created_ms)
{
    char k[TITLE_KEY_MAX];
    size_t klen = title_key(k, account_id, title, title_len);
    if (!klen)
        return EKV_EINTERNAL;
    ekv_catidx_ns_t *ns = calloc(1, sizeof(*ns));
    if (!ns)
        return EKV_ENOMEM;
    ns->title = malloc(title_len + 1);
    if (!ns->title) {
        free(ns);
        return EKV_ENOMEM;
    }
    memcpy(ns->nsid, nsid, EKV_NSID_LEN);
    copy_str(ns->account_id, sizeof(ns->account_id), account_id);
    memcpy(ns->title, title, title_len);
    ns->title[title_len] = '\0';
    ns->title_len = title_len;
    ns->created_ms = created_ms;
    if (ekv_htab_put(&x->ns_by_id, nsid, EKV_NSID_LEN, ns))
        goto fail;
    if (ekv_htab_put(&x->ns_by_title, k, klen, ns)) {
        ekv_htab_del(&x->ns_by_id, nsid, EKV_NSID_LEN);
        goto fail;
    }
    if (count_add(x, account_id, 1)) {
        ekv_htab_del(&x->ns_by_title, k, klen);
        ekv_htab_del(&x->ns_by_id, nsid, EKV_NSID_LEN);
        goto fail;
    }
    return 0;
fail:
    ns_free(ns);
    return EKV_ENOMEM;
}

int ekv_catidx_ns_rename(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN], const char *title,
                         size_t title_len)
{
    ekv_catidx_ns_t *ns = ekv_htab_get(&x->ns_by_id, nsid, EKV_NSID_LEN);
    if (!ns)
        return EKV_ENS_NOT_FOUND;
    char oldk[TITLE_KEY_MAX], newk[TITLE_KEY_MAX];
    size_t oldn = title_key(oldk, ns->account_id, ns->title, ns->title_len);
    size_t newn = title_key(newk, ns->account_id, title, title_len);
    if (!newn)
        return EKV_EINTERNAL;
    char *t = malloc(title_len + 1);
    if (!t)
        return EKV_ENOMEM;
    memcpy(t, title, title_len);
    t[title_len] = '\0';
    if (ekv_htab_put(&x->ns_by_title, newk, newn, ns)) {
        free(t);
        return EKV_ENOMEM;
    }
    if (oldn != newn || memcmp(oldk, newk, newn) != 0)
        ekv_htab_del(&x->ns_by_title, oldk, oldn);
    free(ns->title);
    ns->title = t;
    ns->title_len = title_len;
    return 0;
}

void ekv_catidx_ns_remove(ekv_catidx_t *x, const uint8_t nsid[EKV_NSID_LEN])
{
    ekv_catidx_ns_t *ns = ekv_htab_del(&x->ns_by_id, nsid, EKV_NSID_LEN);
    if (!ns)
        return;
    char k[TITLE_KEY_MAX];
    size_t n = title_key(k, ns->account_id, ns->title, ns->title_len);
    if (ekv_htab_get(&x->ns_by_title, k, n) == ns)
        ekv_htab_del(&x->ns_by_title, k, n);
    count_add(x, ns->account_id, -1); /* decrement never allocates */
    ns_free(ns);
}

const ekv_catidx_token_t *ekv_catidx_token_by_hash(const ekv_catidx_t *x, const char *hash)
{
    return ekv_htab_get(&x->tok_by_hash, hash, strlen(hash));
}

const ekv_catidx_token_t *ekv_catidx_token_by_id(const ekv_catidx_t *x, const char *id)
{
    return ekv_htab_get(&x->tok_by_id, id, strlen(id));
}

int ekv_catidx_token_add(ekv_catidx_t *x, const char *hash, const char *id, const char *account_id)
{
    ekv_catidx_token_remove(x, hash);
    ekv_catidx_token_t *t = calloc(1, sizeof(*t));
    if (!t)
        return EKV_ENOMEM;
    copy_str(t->hash, sizeof(t->hash), hash);
    copy_str(t->id, sizeof(t->id), id);
    copy_str(t->account_id, sizeof(t->account_id), account_id);
    if (ekv_htab_put(&x->tok_by_hash, t->hash, strlen(t->hash), t)) {
        free(t);
        return EKV_ENOMEM;
    }
    if (t->id[0] && ekv_htab_put(&x->tok_by_id, t->id, strlen(t->id), t)) {
        ekv_htab_del(&x->tok_by_hash, t->hash, strlen(t->hash));
        free(t);
        return EKV_ENOMEM;
    }
    return 0;
}

void ekv_catidx_token_remove(ekv_catidx_t *x, const char *hash)
{
    ekv_catidx_token_t *t = ekv_htab_del(&x->tok_by_hash, hash, strlen(hash));
    if (!t)
        return;
    if (t->id[0] && ekv_htab_get(&x->tok_by_id, t->id, strlen(t->id)) == t)
        ekv_htab_del(&x->tok_by_id, t->id, strlen(t->id));
    free(t);
}
