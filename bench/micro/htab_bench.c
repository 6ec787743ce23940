/*
 * htab_bench.c - lookup cost of common/htab against the storage/htab it replaced, for 1M
 * string keys. Built and run by bench/micro/htab_bench.sh (not a test: it judges nothing).
 *
 * Three tables hold the same N keys (cache-like: 16 bytes of nsid + a ~20-byte key name):
 *   old      storage/htab.c as of its removal (FNV-1a, one malloc per entry, key inside),
 *            renamed old_htab_* so it links next to the new one
 *   bytemap  ekv_bytemap_t: the same owning shape on the new table (XXH3)
 *   intr     ekv_htab_t with an intrusive node and a static eq inlined into ekv_htab_find,
 *            hashing (nsid, key) as the value cache does today (two chained XXH3 calls):
 *            how server/cache.c looks an entry up once migrated
 *   intr1    the same with one XXH3 call (the random nsid folded into the seed), a possible
 *            follow-up for the cache
 * Each is probed LOOKUPS times in a fixed random order over the keys (hits), then with keys
 * that are absent (misses). Reported: ns per lookup (thread CPU time), median of ROUNDS
 * rounds, and the longest single insert (the doubling of the bucket array) while filling.
 */
#include "common/htab.h"
#include "old_htab.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 48

/* CPU time of this thread: on a shared machine, time spent descheduled is not counted (cache
 * and memory contention from neighbours still is). */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

typedef struct {
    ekv_hnode_t node;  /* in the "intr" table */
    ekv_hnode_t node1; /* in the "intr1" table */
    size_t klen;
    char key[]; /* klen bytes */
} ent_t;

typedef struct {
    const char *p;
    size_t len;
} key_t_;

static int ent_eq(const ekv_hnode_t *n, const void *k)
{
    const ent_t *e = EKV_HTAB_ENTRY(n, ent_t, node);
    const key_t_ *key = k;
    return e->klen == key->len && memcmp(e->key, key->p, key->len) == 0;
}

static int ent1_eq(const ekv_hnode_t *n, const void *k)
{
    const ent_t *e = EKV_HTAB_ENTRY(n, ent_t, node1);
    const key_t_ *key = k;
    return e->klen == key->len && memcmp(e->key, key->p, key->len) == 0;
}

/* today's cache key hash: XXH3 of the nsid seeds XXH3 of the key (two calls) */
static uint64_t hash2(const char *k, size_t len)
{
    return ekv_hash_bytes_seed(k + 16, len - 16, ekv_hash_bytes(k, 16));
}

/* one call: the (random, server-made) nsid folded into the seed */
static uint64_t hash1(const char *k, size_t len)
{
    uint64_t a, b;
    memcpy(&a, k, 8);
    memcpy(&b, k + 8, 8);
    return ekv_hash_bytes_seed(k + 16, len - 16, a ^ b);
}

static size_t N = 1000000, LOOKUPS = 5000000, ROUNDS = 5;
static char *keys;    /* N + N keys of KEY_MAX bytes: present, then absent */
static size_t *klens; /* their lengths */
static uint32_t *order;

static const char *key_at(size_t i)
{
    return keys + i * KEY_MAX;
}

static void make_keys(void)
{
    keys = malloc(2 * N * KEY_MAX);
    klens = malloc(2 * N * sizeof(*klens));
    order = malloc(LOOKUPS * sizeof(*order));
    uint64_t rng = 42;
    for (size_t i = 0; i < 2 * N; i++) {
        char *k = keys + i * KEY_MAX;
        for (int b = 0; b < 16; b++) /* nsid: 4 namespaces */
            k[b] = (char)(b == 0 ? 1 + (i % 4) : 0);
        int n = snprintf(k + 16, KEY_MAX - 16, "user:%08zx:%s", i, i % 3 ? "profile" : "cart");
        klens[i] = 16 + (size_t)n;
    }
    for (size_t i = 0; i < LOOKUPS; i++)
        order[i] = (uint32_t)(rng_next(&rng) % N);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return v[n / 2];
}

static volatile uintptr_t sink;

/* ns per lookup of keys [base, base + N) in `order`. */
static double run_old(const old_htab_t *h, size_t base)
{
    uintptr_t acc = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < LOOKUPS; i++) {
        size_t k = base + order[i];
        acc += (uintptr_t)old_htab_get(h, key_at(k), klens[k]);
    }
    uint64_t t1 = now_ns();
    sink += acc;
    return (double)(t1 - t0) / (double)LOOKUPS;
}

static double run_bytemap(const ekv_bytemap_t *m, size_t base)
{
    uintptr_t acc = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < LOOKUPS; i++) {
        size_t k = base + order[i];
        acc += (uintptr_t)ekv_bytemap_get(m, key_at(k), klens[k]);
    }
    uint64_t t1 = now_ns();
    sink += acc;
    return (double)(t1 - t0) / (double)LOOKUPS;
}

static double run_intr(const ekv_htab_t *t, size_t base)
{
    uintptr_t acc = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < LOOKUPS; i++) {
        size_t k = base + order[i];
        key_t_ key = {key_at(k), klens[k]};
        acc += (uintptr_t)ekv_htab_find(t, hash2(key.p, key.len), ent_eq, &key);
    }
    uint64_t t1 = now_ns();
    sink += acc;
    return (double)(t1 - t0) / (double)LOOKUPS;
}

static double run_intr1(const ekv_htab_t *t, size_t base)
{
    uintptr_t acc = 0;
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < LOOKUPS; i++) {
        size_t k = base + order[i];
        key_t_ key = {key_at(k), klens[k]};
        acc += (uintptr_t)ekv_htab_find(t, hash1(key.p, key.len), ent1_eq, &key);
    }
    uint64_t t1 = now_ns();
    sink += acc;
    return (double)(t1 - t0) / (double)LOOKUPS;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        N = strtoull(argv[1], NULL, 10);
    if (argc > 2)
        LOOKUPS = strtoull(argv[2], NULL, 10);
    if (argc > 3)
        ROUNDS = strtoull(argv[3], NULL, 10);
    make_keys();

    old_htab_t old;
    old_htab_init(&old);
    uint64_t t0 = now_ns(), worst_old = 0;
    for (size_t i = 0; i < N; i++) {
        uint64_t a = now_ns();
        if (old_htab_put(&old, key_at(i), klens[i], (void *)(i + 1)))
            return 1;
        uint64_t d = now_ns() - a;
        worst_old = d > worst_old ? d : worst_old;
    }
    double fill_old = (double)(now_ns() - t0) / 1e6;

    ekv_bytemap_t bm;
    ekv_bytemap_init(&bm);
    t0 = now_ns();
    for (size_t i = 0; i < N; i++)
        if (ekv_bytemap_put(&bm, key_at(i), klens[i], (void *)(i + 1)))
            return 1;
    double fill_bm = (double)(now_ns() - t0) / 1e6;

    ekv_htab_t it;
    ekv_htab_init(&it);
    ent_t **ents = malloc(N * sizeof(*ents));
    uint64_t worst = 0;
    size_t worst_at = 0;
    t0 = now_ns();
    for (size_t i = 0; i < N; i++) {
        ent_t *e = malloc(sizeof(*e) + klens[i]);
        e->klen = klens[i];
        memcpy(e->key, key_at(i), klens[i]);
        ents[i] = e;
        uint64_t h = hash2(e->key, e->klen);
        uint64_t a = now_ns();
        if (ekv_htab_insert(&it, &e->node, h))
            return 1;
        uint64_t d = now_ns() - a;
        if (d > worst) {
            worst = d;
            worst_at = i;
        }
    }
    double fill_it = (double)(now_ns() - t0) / 1e6;
    ekv_htab_t it1;
    ekv_htab_init(&it1);
    for (size_t i = 0; i < N; i++)
        if (ekv_htab_insert(&it1, &ents[i]->node1, hash1(ents[i]->key, ents[i]->klen)))
            return 1;
    size_t chain = 0;
    if (ekv_htab_check(&it, &chain))
        return 1;

    double *r[8];
    for (int j = 0; j < 8; j++)
        r[j] = calloc(ROUNDS, sizeof(double));
    for (size_t round = 0; round < ROUNDS; round++) { /* interleaved: drift hits all alike */
        r[0][round] = run_old(&old, 0);
        r[1][round] = run_bytemap(&bm, 0);
        r[2][round] = run_intr(&it, 0);
        r[3][round] = run_old(&old, N);
        r[4][round] = run_bytemap(&bm, N);
        r[5][round] = run_intr(&it, N);
        r[6][round] = run_intr1(&it1, 0);
        r[7][round] = run_intr1(&it1, N);
    }
    printf("keys=%zu lookups/round=%zu rounds=%zu key_len=%zu..%zu buckets=%zu max_chain=%zu\n", N,
           LOOKUPS, ROUNDS, klens[0], klens[1], ekv_htab_nbuckets(&it), chain);
    printf("%-34s %10s %10s\n", "table", "hit ns", "miss ns");
    printf("%-34s %10.1f %10.1f\n", "old storage/htab (FNV-1a, owning)", median(r[0], ROUNDS),
           median(r[3], ROUNDS));
    printf("%-34s %10.1f %10.1f\n", "new ekv_bytemap (XXH3, owning)", median(r[1], ROUNDS),
           median(r[4], ROUNDS));
    printf("%-34s %10.1f %10.1f\n", "new ekv_htab intrusive (cache)", median(r[2], ROUNDS),
           median(r[5], ROUNDS));
    printf("%-34s %10.1f %10.1f\n", "new intrusive, 1 XXH3 (nsid seed)", median(r[6], ROUNDS),
           median(r[7], ROUNDS));
    printf("fill %zu keys: old %.0f ms, bytemap %.0f ms, intrusive %.0f ms\n", N, fill_old, fill_bm,
           fill_it);
    printf("longest single insert: old %.2f ms, intrusive %.2f ms (insert #%zu; doublings "
           "happen at inserts 2^k + 1)\n",
           (double)worst_old / 1e6, (double)worst / 1e6, worst_at + 1);

    old_htab_deinit(&old, NULL);
    ekv_bytemap_deinit(&bm, NULL);
    for (size_t i = 0; i < N; i++)
        free(ents[i]);
    ekv_htab_deinit(&it);
    ekv_htab_deinit(&it1);
    free(ents);
    return 0;
}
