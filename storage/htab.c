/*
 * htab.c - chained hash map (see htab.h). FNV-1a 64; keys here are ids and titles.
 */
#include "storage/htab.h"
#include "common/errors.h"

#include <stdlib.h>
#include <string.h>

#define HTAB_MIN_BUCKETS 64

static uint64_t hash_bytes(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

void ekv_htab_init(ekv_htab_t *h)
{
    h->buckets = NULL;
    h->nbuckets = 0;
    h->count = 0;
}

void ekv_htab_deinit(ekv_htab_t *h, void (*free_val)(void *val))
{
    for (size_t i = 0; i < h->nbuckets; i++) {
        ekv_htab_ent_t *e = h->buckets[i];
        while (e) {
            ekv_htab_ent_t *next = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
            e = next;
        }
    }
    free(h->buckets);
    ekv_htab_init(h);
}

static ekv_htab_ent_t **find_slot(const ekv_htab_t *h, const void *key, size_t klen, uint64_t hv)
{
    ekv_htab_ent_t **pp = &h->buckets[hv & (h->nbuckets - 1)];
    while (*pp) {
        ekv_htab_ent_t *e = *pp;
        if (e->hash == hv && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return pp;
        pp = &e->next;
    }
    return pp;
}

void *ekv_htab_get(const ekv_htab_t *h, const void *key, size_t klen)
{
    if (!h->nbuckets)
        return NULL;
    ekv_htab_ent_t **pp = find_slot(h, key, klen, hash_bytes(key, klen));
    return *pp ? (*pp)->val : NULL;
}

static int grow(ekv_htab_t *h)
{
    size_t n = h->nbuckets ? h->nbuckets * 2 : HTAB_MIN_BUCKETS;
    ekv_htab_ent_t **b = calloc(n, sizeof(*b));
    if (!b)
        return EKV_ENOMEM;
    for (size_t i = 0; i < h->nbuckets; i++) {
        ekv_htab_ent_t *e = h->buckets[i];
        while (e) {
            ekv_htab_ent_t *next = e->next;
            ekv_htab_ent_t **slot = &b[e->hash & (n - 1)];
            e->next = *slot;
            *slot = e;
            e = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
    return 0;
}

int ekv_htab_put(ekv_htab_t *h, const void *key, size_t klen, void *val)
{
    uint64_t hv = hash_bytes(key, klen);
    ekv_htab_ent_t **pp = NULL;
    if (h->nbuckets) {
        pp = find_slot(h, key, klen, hv);
        if (*pp) { /* replacing never allocates */
            (*pp)->val = val;
            return 0;
        }
    }
    if (h->count >= h->nbuckets) {
        int rc = grow(h);
        if (rc)
            return rc;
        pp = find_slot(h, key, klen, hv);
    }
    ekv_htab_ent_t *e = malloc(sizeof(*e) + klen);
    if (!e)
        return EKV_ENOMEM;
    e->next = NULL;
    e->hash = hv;
    e->val = val;
    e->klen = klen;
    if (klen)
        memcpy(e->key, key, klen);
    *pp = e;
    h->count++;
    return 0;
}

void *ekv_htab_del(ekv_htab_t *h, const void *key, size_t klen)
{
    if (!h->nbuckets)
        return NULL;
    ekv_htab_ent_t **pp = find_slot(h, key, klen, hash_bytes(key, klen));
    ekv_htab_ent_t *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    void *val = e->val;
    free(e);
    h->count--;
    return val;
}

void ekv_htab_foreach(const ekv_htab_t *h,
                      void (*cb)(void *ctx, const char *key, size_t klen, void *val), void *ctx)
{
    for (size_t i = 0; i < h->nbuckets; i++)
        for (ekv_htab_ent_t *e = h->buckets[i]; e; e = e->next)
            cb(ctx, e->key, e->klen, e->val);
}
