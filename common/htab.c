/*
 * htab.c - intrusive chained hash table and byte-string map (see htab.h).
 *
 * Growth moves the nodes of each old bucket to the new buckets congruent to it (i, i + old,
 * ...), keeping their order within each chain (duplicates stay "newest first"), touching each
 * node twice and allocating nothing but the new array.
 */
#include "common/htab.h"
#include "common/errors.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

uint64_t ekv_hash_bytes(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

uint64_t ekv_hash_bytes_seed(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

/* ---------------------------------------------------------------- allocation */

/* Zero-filled (calloc: a large fresh array costs no page until a bucket is used). */
static void *tab_alloc(const ekv_htab_t *t, size_t size)
{
    return t->alloc ? t->alloc->alloc(t->alloc->ctx, size) : calloc(1, size);
}

static void tab_free(const ekv_htab_t *t, void *p)
{
    if (t->alloc)
        t->alloc->free(t->alloc->ctx, p);
    else
        free(p);
}

/* A zeroed array of n buckets, or NULL (also when n * size overflows). */
static ekv_hnode_t **buckets_new(const ekv_htab_t *t, size_t n)
{
    if (n > SIZE_MAX / sizeof(ekv_hnode_t *))
        return NULL;
    return tab_alloc(t, n * sizeof(ekv_hnode_t *));
}

/* ---------------------------------------------------------------- table */

void ekv_htab_init(ekv_htab_t *t)
{
    ekv_htab_init_alloc(t, NULL);
}

void ekv_htab_init_alloc(ekv_htab_t *t, const ekv_htab_alloc_t *a)
{
    t->buckets = NULL;
    t->mask = 0;
    t->count = 0;
    t->alloc = a;
}

void ekv_htab_deinit(ekv_htab_t *t)
{
    if (t->buckets)
        tab_free(t, t->buckets);
    ekv_htab_init_alloc(t, t->alloc);
}

void ekv_htab_clear(ekv_htab_t *t)
{
    if (t->buckets)
        memset(t->buckets, 0, (t->mask + 1) * sizeof(*t->buckets));
    t->count = 0;
}

/* Move every node into a new array of n buckets (n a power of two, larger than the old). */
static int resize(ekv_htab_t *t, size_t n)
{
    ekv_hnode_t **nb = buckets_new(t, n);
    if (!nb)
        return EKV_ENOMEM;
    size_t mask = n - 1;
    if (t->buckets) {
        size_t old = t->mask + 1;
        for (size_t i = 0; i < old; i++) {
            /* the nodes are scattered in memory: ask for a head a few buckets ahead so the
             * misses overlap (the rehash is bound by them) */
            if (i + 8 < old && t->buckets[i + 8])
                __builtin_prefetch(t->buckets[i + 8], 1);
            /* reverse the chain, then push each node on the front of its new bucket: every
             * new bucket gets its nodes in their old order, in one pass */
            ekv_hnode_t *rev = NULL;
            for (ekv_hnode_t *node = t->buckets[i], *next; node; node = next) {
                next = node->next;
                node->next = rev;
                rev = node;
            }
            for (ekv_hnode_t *node = rev, *next; node; node = next) {
                next = node->next;
                ekv_hnode_t **b = &nb[node->hash & mask];
                node->next = *b;
                *b = node;
            }
        }
        tab_free(t, t->buckets);
    }
    t->buckets = nb;
    t->mask = mask;
    return 0;
}

int ekv_htab_reserve(ekv_htab_t *t, size_t n)
{
    size_t want = EKV_HTAB_MIN_BUCKETS;
    while (want < n) {
        if (want > SIZE_MAX / 2)
            return EKV_ENOMEM;
        want *= 2;
    }
    if (t->buckets && t->mask + 1 >= want)
        return 0;
    return resize(t, want);
}

int ekv_htab_insert(ekv_htab_t *t, ekv_hnode_t *n, uint64_t hash)
{
    if (!t->buckets) {
        if (resize(t, EKV_HTAB_MIN_BUCKETS))
            return EKV_ENOMEM;
    } else if (t->count >= t->mask + 1 && t->mask < SIZE_MAX / 2) {
        (void)resize(t, (t->mask + 1) * 2); /* failure: stay valid, chains get longer */
    }
    ekv_hnode_t **b = &t->buckets[hash & t->mask];
    n->hash = hash;
    n->next = *b;
    *b = n;
    t->count++;
    return 0;
}

/* The link that points at n (n must be in t). */
static ekv_hnode_t **link_of(ekv_htab_t *t, const ekv_hnode_t *n)
{
    EKV_ASSERT(t->buckets != NULL);
    ekv_hnode_t **pp = &t->buckets[n->hash & t->mask];
    while (*pp && *pp != n)
        pp = &(*pp)->next;
    EKV_ASSERT(*pp == n);
    return pp;
}

void ekv_htab_remove(ekv_htab_t *t, ekv_hnode_t *n)
{
    ekv_hnode_t **pp = link_of(t, n);
    *pp = n->next;
    n->next = NULL;
    t->count--;
}

ekv_hnode_t *ekv_htab_take(ekv_htab_t *t, uint64_t hash, ekv_htab_eq_fn eq, const void *key)
{
    if (!t->count)
        return NULL;
    for (ekv_hnode_t **pp = &t->buckets[hash & t->mask]; *pp; pp = &(*pp)->next) {
        ekv_hnode_t *n = *pp;
        if (n->hash == hash && eq(n, key)) {
            *pp = n->next;
            n->next = NULL;
            t->count--;
            return n;
        }
    }
    return NULL;
}

void ekv_htab_replace(ekv_htab_t *t, ekv_hnode_t *old, ekv_hnode_t *nw)
{
    ekv_hnode_t **pp = link_of(t, old);
    nw->hash = old->hash;
    nw->next = old->next;
    *pp = nw;
    old->next = NULL;
}

int ekv_htab_check(const ekv_htab_t *t, size_t *max_chain)
{
    size_t longest = 0, seen = 0;
    if (max_chain)
        *max_chain = 0;
    if (!t->buckets)
        return t->count == 0 && t->mask == 0 ? 0 : EKV_EINTERNAL;
    size_t nb = t->mask + 1;
    if (nb & t->mask || nb < EKV_HTAB_MIN_BUCKETS)
        return EKV_EINTERNAL;
    for (size_t i = 0; i < nb; i++) {
        size_t len = 0;
        for (const ekv_hnode_t *n = t->buckets[i]; n; n = n->next) {
            if ((n->hash & t->mask) != i || ++seen > t->count)
                return EKV_EINTERNAL;
            len++;
        }
        if (len > longest)
            longest = len;
    }
    if (seen != t->count)
        return EKV_EINTERNAL;
    if (max_chain)
        *max_chain = longest;
    return 0;
}

void ekv_htab_iter_init(ekv_htab_iter_t *it, const ekv_htab_t *t)
{
    it->t = t;
    it->bucket = 0;
    it->next = NULL;
}

ekv_hnode_t *ekv_htab_iter_next(ekv_htab_iter_t *it)
{
    ekv_hnode_t *n = it->next;
    while (!n) {
        if (!it->t->buckets || it->bucket > it->t->mask)
            return NULL;
        n = it->t->buckets[it->bucket++];
    }
    it->next = n->next; /* read now: the caller may unlink and free n */
    return n;
}

/* ---------------------------------------------------------------- byte-string map */

typedef struct {
    ekv_hnode_t node;
    void *val;
    size_t klen;
    char key[]; /* klen bytes */
} bytemap_ent_t;

typedef struct {
    const void *p;
    size_t n;
} bytes_t;

static int bytes_eq(const ekv_hnode_t *node, const void *key)
{
    const bytemap_ent_t *e = EKV_HTAB_ENTRY(node, bytemap_ent_t, node);
    const bytes_t *k = key;
    return e->klen == k->n && (k->n == 0 || memcmp(e->key, k->p, k->n) == 0);
}

void ekv_bytemap_init(ekv_bytemap_t *m)
{
    ekv_htab_init(&m->t);
}

void ekv_bytemap_init_alloc(ekv_bytemap_t *m, const ekv_htab_alloc_t *a)
{
    ekv_htab_init_alloc(&m->t, a);
}

void ekv_bytemap_deinit(ekv_bytemap_t *m, void (*free_val)(void *val))
{
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &m->t);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        bytemap_ent_t *e = EKV_HTAB_ENTRY(n, bytemap_ent_t, node);
        if (free_val)
            free_val(e->val);
        tab_free(&m->t, e);
    }
    ekv_htab_deinit(&m->t);
}

void *ekv_bytemap_get(const ekv_bytemap_t *m, const void *key, size_t klen)
{
    bytes_t k = {key, klen};
    ekv_hnode_t *n = ekv_htab_find(&m->t, ekv_hash_bytes(key, klen), bytes_eq, &k);
    return n ? EKV_HTAB_ENTRY(n, bytemap_ent_t, node)->val : NULL;
}

int ekv_bytemap_put(ekv_bytemap_t *m, const void *key, size_t klen, void *val)
{
    bytes_t k = {key, klen};
    uint64_t h = ekv_hash_bytes(key, klen);
    ekv_hnode_t *n = ekv_htab_find(&m->t, h, bytes_eq, &k);
    if (n) {
        EKV_HTAB_ENTRY(n, bytemap_ent_t, node)->val = val;
        return 0;
    }
    if (klen > SIZE_MAX - sizeof(bytemap_ent_t))
        return EKV_ENOMEM;
    bytemap_ent_t *e = tab_alloc(&m->t, sizeof(*e) + klen);
    if (!e)
        return EKV_ENOMEM;
    e->val = val;
    e->klen = klen;
    if (klen)
        memcpy(e->key, key, klen);
    if (ekv_htab_insert(&m->t, &e->node, h)) {
        tab_free(&m->t, e);
        return EKV_ENOMEM;
    }
    return 0;
}

void *ekv_bytemap_del(ekv_bytemap_t *m, const void *key, size_t klen)
{
    bytes_t k = {key, klen};
    ekv_hnode_t *n = ekv_htab_take(&m->t, ekv_hash_bytes(key, klen), bytes_eq, &k);
    if (!n)
        return NULL;
    bytemap_ent_t *e = EKV_HTAB_ENTRY(n, bytemap_ent_t, node);
    void *val = e->val;
    tab_free(&m->t, e);
    return val;
}

void ekv_bytemap_iter_init(ekv_bytemap_iter_t *it, const ekv_bytemap_t *m)
{
    ekv_htab_iter_init(&it->it, &m->t);
}

int ekv_bytemap_iter_next(ekv_bytemap_iter_t *it, const void **key, size_t *klen, void **val)
{
    ekv_hnode_t *n = ekv_htab_iter_next(&it->it);
    if (!n)
        return 0;
    bytemap_ent_t *e = EKV_HTAB_ENTRY(n, bytemap_ent_t, node);
    if (key)
        *key = e->key;
    if (klen)
        *klen = e->klen;
    if (val)
        *val = e->val;
    return 1;
}
