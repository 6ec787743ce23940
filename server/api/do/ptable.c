/*
 * ptable.c - the Durable Object partition table (ptable.h).
 */
#include "server/api/do/ptable.h"
#include "common/errors.h"
#include "common/htab.h"

#include <stdlib.h>
#include <string.h>

#define P EKV_DO_PARTITIONS

static uint64_t score(const char *node, uint32_t p)
{
    return ekv_hash_bytes_seed(node, strlen(node), 0x9e3779b97f4a7c15ull * (p + 1));
}

uint32_t ekv_do_ptable_cap(size_t n)
{
    if (n == 0)
        return P;
    uint32_t cap = (uint32_t)((uint64_t)P * EKV_DO_LOAD_CAP_PCT / (100u * n));
    uint32_t min = (uint32_t)((P + n - 1) / n);
    return cap < min ? min : cap;
}

int ekv_do_ptable_find(const ekv_do_ptable_t *t, const char *node)
{
    for (size_t i = 0; i < t->nnodes; i++)
        if (strcmp(t->nodes[i], node) == 0)
            return (int)i;
    return -1;
}

static int id_ok(const char *node)
{
    size_t n = node ? strlen(node) : 0;
    return n > 0 && n < EKV_DO_NODE_ID_MAX;
}

/* The best node for p among those below cap, skipping `skip` (-1: none); -1 when none. */
static int best_below_cap(const ekv_do_ptable_t *t, uint32_t p, uint32_t cap, int skip)
{
    int best = -1;
    uint64_t bs = 0;
    for (size_t i = 0; i < t->nnodes; i++) {
        if ((int)i == skip || t->count[i] >= cap)
            continue;
        uint64_t s = score(t->nodes[i], p);
        if (best < 0 || s > bs) {
            best = (int)i;
            bs = s;
        }
    }
    return best;
}

static void move(ekv_do_ptable_t *t, uint32_t p, int to)
{
    t->count[t->owner[p]]--;
    t->owner[p] = (uint16_t)to;
    t->count[to]++;
    t->epoch[p]++;
}

int ekv_do_ptable_build(ekv_do_ptable_t *t, const char *const *nodes, size_t n)
{
    if (n == 0 || n > EKV_DO_PTABLE_MAX)
        return EKV_EBAD_REQUEST;
    for (size_t i = 0; i < n; i++) {
        if (!id_ok(nodes[i]))
            return EKV_EBAD_REQUEST;
        for (size_t j = 0; j < i; j++)
            if (strcmp(nodes[i], nodes[j]) == 0)
                return EKV_EBAD_REQUEST;
    }
    memset(t, 0, sizeof(*t));
    t->nnodes = n;
    for (size_t i = 0; i < n; i++)
        strcpy(t->nodes[i], nodes[i]);
    uint32_t cap = ekv_do_ptable_cap(n);
    for (uint32_t p = 0; p < P; p++) {
        int b = best_below_cap(t, p, cap, -1); /* cap * n >= P: there is always one */
        t->owner[p] = (uint16_t)b;
        t->count[b]++;
        t->epoch[p] = 1;
    }
    t->version = 1;
    return 0;
}

typedef struct {
    uint32_t p;
    uint64_t s;
} ranked_t;

static int by_score_desc(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->s != y->s)
        return x->s < y->s ? 1 : -1;
    return (x->p > y->p) - (x->p < y->p);
}

int ekv_do_ptable_join(ekv_do_ptable_t *t, const char *node, size_t *moved)
{
    *moved = 0;
    if (!id_ok(node) || t->nnodes == 0 || t->nnodes >= EKV_DO_PTABLE_MAX ||
        ekv_do_ptable_find(t, node) >= 0)
        return EKV_EBAD_REQUEST;
    ranked_t *r = malloc(P * sizeof(*r));
    if (!r)
        return EKV_ENOMEM;
    for (uint32_t p = 0; p < P; p++) {
        r[p].p = p;
        r[p].s = score(node, p);
    }
    qsort(r, P, sizeof(*r), by_score_desc);
    int k = (int)t->nnodes++;
    strcpy(t->nodes[k], node);
    t->count[k] = 0;
    size_t n = t->nnodes;
    uint32_t cap = ekv_do_ptable_cap(n);
    uint32_t share = (uint32_t)(P / n); /* the new node's share: what must move */
    /* 1. nodes above the new cap give the new node what it scores highest among theirs */
    for (uint32_t i = 0; i < P; i++) {
        uint32_t p = r[i].p;
        int o = t->owner[p];
        if (o != k && t->count[o] > cap) {
            move(t, p, k);
            ++*moved;
        }
    }
    /* 2. then the partitions it scores highest, until it has its share */
    for (uint32_t i = 0; i < P && t->count[k] < share; i++) {
        uint32_t p = r[i].p;
        if (t->owner[p] != k) {
            move(t, p, k);
            ++*moved;
        }
    }
    free(r);
    t->version++;
    return 0;
}

int ekv_do_ptable_leave(ekv_do_ptable_t *t, const char *node, size_t *moved)
{
    *moved = 0;
    int k = ekv_do_ptable_find(t, node);
    if (k < 0 || t->nnodes < 2)
        return EKV_EBAD_REQUEST;
    uint32_t cap = ekv_do_ptable_cap(t->nnodes - 1);
    for (uint32_t p = 0; p < P; p++) {
        if (t->owner[p] != k)
            continue;
        int b = best_below_cap(t, p, cap, k);
        move(t, p, b);
        ++*moved;
    }
    /* drop the node: the last one takes its index */
    size_t last = t->nnodes - 1;
    if ((size_t)k != last) {
        strcpy(t->nodes[k], t->nodes[last]);
        t->count[k] = t->count[last];
        for (uint32_t p = 0; p < P; p++)
            if (t->owner[p] == last)
                t->owner[p] = (uint16_t)k;
    }
    t->nodes[last][0] = '\0';
    t->count[last] = 0;
    t->nnodes--;
    t->version++;
    return 0;
}
