/* common/htab: intrusive table (insert/find/remove/take/replace, collisions, growth, iteration
 * with removal, allocation failure), a 1M-operation randomized run against a reference, the
 * byte-string map, and the hashes. */
#include "common/errors.h"
#include "common/htab.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct {
    ekv_hnode_t node;
    uint64_t key;
    int val;
} item_t;

static int item_eq(const ekv_hnode_t *n, const void *key)
{
    return EKV_HTAB_ENTRY(n, item_t, node)->key == *(const uint64_t *)key;
}

static item_t *item_find(const ekv_htab_t *t, uint64_t key, uint64_t hash)
{
    ekv_hnode_t *n = ekv_htab_find(t, hash, item_eq, &key);
    return n ? EKV_HTAB_ENTRY(n, item_t, node) : NULL;
}

static item_t *find_u64(const ekv_htab_t *t, uint64_t key)
{
    return item_find(t, key, ekv_hash_u64(key));
}

/* smallest power of two >= n, at least the minimum */
static size_t pow2_at_least(size_t n)
{
    size_t b = EKV_HTAB_MIN_BUCKETS;
    while (b < n)
        b *= 2;
    return b;
}

/* ---- hashes ----------------------------------------------------------------------------- */

Test(hash, bytes_is_xxh3_and_stable)
{
    cr_assert_eq(ekv_hash_bytes("", 0), 0x2D06800538D394C2ull); /* XXH3-64 of nothing */
    cr_assert_eq(ekv_hash_bytes(NULL, 0), 0x2D06800538D394C2ull);
    cr_assert_eq(ekv_hash_bytes("abc", 3), XXH3_64bits("abc", 3));
    cr_assert_neq(ekv_hash_bytes("abc", 3), ekv_hash_bytes("abd", 3));
    uint64_t seed = ekv_hash_bytes("0123456789abcdef", 16);
    cr_assert_eq(ekv_hash_bytes_seed("key", 3, seed), XXH3_64bits_withSeed("key", 3, seed));
    cr_assert_neq(ekv_hash_bytes_seed("key", 3, seed), ekv_hash_bytes("key", 3));
}

Test(hash, u64_mixes_low_bits)
{
    cr_assert_eq(ekv_hash_u64(0), 0); /* fmix64 fixes 0 */
    cr_assert_eq(ekv_hash_u64(1), 0xB456BCFC34C2CB2Cull);
    /* consecutive ids spread over the low bits: 4096 ids into 4096 buckets, no bucket above 8 */
    static unsigned short per[4096];
    for (uint64_t i = 1; i <= 4096; i++)
        per[ekv_hash_u64(i) & 4095]++;
    unsigned short maxc = 0;
    for (size_t i = 0; i < 4096; i++)
        maxc = per[i] > maxc ? per[i] : maxc;
    cr_assert_leq(maxc, 8);
}

/* ---- intrusive table -------------------------------------------------------------------- */

Test(htab, empty_table_allocates_nothing)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    cr_assert_null(t.buckets);
    cr_assert_eq(ekv_htab_count(&t), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 0);
    cr_assert_null(find_u64(&t, 7));
    uint64_t k = 7;
    cr_assert_null(ekv_htab_take(&t, ekv_hash_u64(k), item_eq, &k));
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &t);
    cr_assert_null(ekv_htab_iter_next(&it));
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    ekv_htab_deinit(&t);
    ekv_htab_deinit(&t); /* idempotent */
}

Test(htab, insert_find_remove)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    item_t a = {.key = 1, .val = 10}, b = {.key = 2, .val = 20}, c = {.key = 3, .val = 30};
    cr_assert_eq(ekv_htab_insert(&t, &a.node, ekv_hash_u64(a.key)), 0);
    cr_assert_eq(ekv_htab_insert(&t, &b.node, ekv_hash_u64(b.key)), 0);
    cr_assert_eq(ekv_htab_insert(&t, &c.node, ekv_hash_u64(c.key)), 0);
    cr_assert_eq(ekv_htab_count(&t), 3);
    cr_assert_eq(ekv_htab_nbuckets(&t), EKV_HTAB_MIN_BUCKETS);
    cr_assert_eq(a.node.hash, ekv_hash_u64(1));
    cr_assert_eq(find_u64(&t, 1), &a);
    cr_assert_eq(find_u64(&t, 2)->val, 20);
    cr_assert_eq(find_u64(&t, 3), &c);
    cr_assert_null(find_u64(&t, 4));
    /* right hash, wrong key: eq decides */
    cr_assert_null(item_find(&t, 99, ekv_hash_u64(1)));

    ekv_htab_remove(&t, &b.node);
    cr_assert_eq(ekv_htab_count(&t), 2);
    cr_assert_null(find_u64(&t, 2));
    cr_assert_eq(find_u64(&t, 1), &a);
    cr_assert_eq(find_u64(&t, 3), &c);

    uint64_t k = 3;
    cr_assert_eq(ekv_htab_take(&t, ekv_hash_u64(k), item_eq, &k), &c.node);
    cr_assert_null(ekv_htab_take(&t, ekv_hash_u64(k), item_eq, &k));
    cr_assert_eq(ekv_htab_count(&t), 1);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);

    /* a removed node may go back in */
    cr_assert_eq(ekv_htab_insert(&t, &b.node, ekv_hash_u64(b.key)), 0);
    cr_assert_eq(find_u64(&t, 2), &b);
    cr_assert_eq(ekv_htab_count(&t), 2);
    ekv_htab_deinit(&t);
    cr_assert_eq(ekv_htab_count(&t), 0);
    cr_assert_null(find_u64(&t, 1));
}

Test(htab, replace_swaps_node_in_place)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    item_t items[40];
    for (int i = 0; i < 40; i++) {
        items[i] = (item_t){.key = (uint64_t)i, .val = i};
        ekv_htab_insert(&t, &items[i].node, 5); /* one chain: replace in the middle of it */
    }
    item_t nw = {.key = 17, .val = 1700};
    ekv_htab_replace(&t, &items[17].node, &nw.node);
    cr_assert_eq(nw.node.hash, 5);
    cr_assert_null(items[17].node.next);
    cr_assert_eq(ekv_htab_count(&t), 40);
    cr_assert_eq(item_find(&t, 17, 5), &nw);
    cr_assert_eq(item_find(&t, 17, 5)->val, 1700);
    for (int i = 0; i < 40; i++)
        if (i != 17)
            cr_assert_eq(item_find(&t, (uint64_t)i, 5), &items[i]);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    ekv_htab_deinit(&t);
}

static uint64_t const_hash(uint64_t key)
{
    (void)key;
    return 0x1234;
}

Test(htab, collisions_all_in_one_chain)
{
    enum { N = 2000 };
    ekv_htab_t t;
    ekv_htab_init(&t);
    item_t *items = calloc(N, sizeof(*items));
    for (int i = 0; i < N; i++) {
        items[i].key = (uint64_t)i;
        cr_assert_eq(ekv_htab_insert(&t, &items[i].node, const_hash(items[i].key)), 0);
    }
    size_t chain = 0;
    cr_assert_eq(ekv_htab_check(&t, &chain), 0);
    cr_assert_eq(chain, N); /* growth happened but cannot split a constant hash */
    cr_assert_eq(ekv_htab_nbuckets(&t), 2048);
    for (int i = 0; i < N; i++)
        cr_assert_eq(item_find(&t, (uint64_t)i, 0x1234), &items[i]);
    cr_assert_null(item_find(&t, N, 0x1234));
    for (int i = 0; i < N; i += 2)
        ekv_htab_remove(&t, &items[i].node);
    cr_assert_eq(ekv_htab_count(&t), N / 2);
    for (int i = 0; i < N; i++)
        cr_assert_eq(item_find(&t, (uint64_t)i, 0x1234), i % 2 ? &items[i] : NULL);
    cr_assert_eq(ekv_htab_check(&t, &chain), 0);
    cr_assert_eq(chain, N / 2);
    ekv_htab_deinit(&t);
    free(items);
}

Test(htab, equal_keys_newest_first_across_growth)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    item_t dup[3] = {{.key = 9, .val = 1}, {.key = 9, .val = 2}, {.key = 9, .val = 3}};
    item_t fill[500];
    ekv_htab_insert(&t, &dup[0].node, ekv_hash_u64(9));
    ekv_htab_insert(&t, &dup[1].node, ekv_hash_u64(9));
    ekv_htab_insert(&t, &dup[2].node, ekv_hash_u64(9));
    cr_assert_eq(find_u64(&t, 9)->val, 3);
    for (int i = 0; i < 500; i++) { /* five doublings: order within a chain is kept */
        fill[i].key = 1000 + (uint64_t)i;
        ekv_htab_insert(&t, &fill[i].node, ekv_hash_u64(fill[i].key));
    }
    cr_assert_eq(ekv_htab_nbuckets(&t), 512);
    cr_assert_eq(find_u64(&t, 9)->val, 3);
    ekv_htab_remove(&t, &dup[2].node);
    cr_assert_eq(find_u64(&t, 9)->val, 2);
    ekv_htab_remove(&t, &dup[1].node);
    cr_assert_eq(find_u64(&t, 9)->val, 1);
    ekv_htab_deinit(&t);
}

Test(htab, growth_across_many_resizes_keeps_everything)
{
    enum { N = 300000 };
    ekv_htab_t t;
    ekv_htab_init(&t);
    item_t *items = calloc(N, sizeof(*items));
    size_t resizes = 0, last_nb = 0;
    for (size_t i = 0; i < N; i++) {
        items[i].key = i * 7919 + 3;
        items[i].val = (int)i;
        cr_assert_eq(ekv_htab_insert(&t, &items[i].node, ekv_hash_u64(items[i].key)), 0);
        cr_assert_eq(ekv_htab_count(&t), i + 1);
        /* load factor <= 1, and grown only when needed */
        cr_assert_eq(ekv_htab_nbuckets(&t), pow2_at_least(i + 1));
        if (ekv_htab_nbuckets(&t) != last_nb) {
            last_nb = ekv_htab_nbuckets(&t);
            resizes++;
            cr_assert_eq(ekv_htab_check(&t, NULL), 0);
            /* nodes do not move: everything inserted so far is still found where it is */
            for (size_t j = 0; j <= i; j += 1 + i / 64)
                cr_assert_eq(find_u64(&t, items[j].key), &items[j]);
        }
    }
    cr_assert_eq(resizes, 16); /* the first array (16), then 15 doublings to 524288 */
    cr_assert_eq(ekv_htab_nbuckets(&t), 524288);
    size_t chain = 0;
    cr_assert_eq(ekv_htab_check(&t, &chain), 0);
    cr_assert_leq(chain, 12); /* a random hash at load <= 1: chains stay short */
    for (size_t i = 0; i < N; i++) {
        item_t *it = find_u64(&t, items[i].key);
        cr_assert_eq(it, &items[i]);
        cr_assert_eq(it->val, (int)i);
    }
    cr_assert_null(find_u64(&t, 1));
    ekv_htab_deinit(&t);
    free(items);
}

Test(htab, reserve_presizes_and_never_shrinks)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    cr_assert_eq(ekv_htab_reserve(&t, 1000), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 1024);
    cr_assert_eq(ekv_htab_reserve(&t, 10), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 1024);
    item_t *items = calloc(1025, sizeof(*items));
    for (size_t i = 0; i < 1024; i++) {
        items[i].key = i;
        ekv_htab_insert(&t, &items[i].node, ekv_hash_u64(i));
    }
    cr_assert_eq(ekv_htab_nbuckets(&t), 1024);
    items[1024].key = 1024;
    ekv_htab_insert(&t, &items[1024].node, ekv_hash_u64(1024));
    cr_assert_eq(ekv_htab_nbuckets(&t), 2048);
    /* reserve on a populated table rehashes */
    cr_assert_eq(ekv_htab_reserve(&t, 5000), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 8192);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    for (size_t i = 0; i < 1025; i++)
        cr_assert_eq(find_u64(&t, i), &items[i]);
    cr_assert_eq(ekv_htab_reserve(&t, SIZE_MAX), EKV_ENOMEM);
    cr_assert_eq(ekv_htab_nbuckets(&t), 8192);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);

    ekv_htab_clear(&t);
    cr_assert_eq(ekv_htab_count(&t), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 8192);
    cr_assert_null(find_u64(&t, 5));
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    ekv_htab_deinit(&t);
    free(items);
}

Test(htab, remove_during_iteration)
{
    enum { N = 10000 };
    ekv_htab_t t;
    ekv_htab_init(&t);
    for (uint64_t i = 0; i < N; i++) {
        item_t *it = calloc(1, sizeof(*it));
        it->key = i;
        it->val = (int)i;
        ekv_htab_insert(&t, &it->node, i % 3 ? ekv_hash_u64(i) : 77); /* some long chains */
    }
    /* pass 1: remove and free every odd key while iterating */
    static unsigned char seen[N];
    size_t visited = 0;
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &t);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        item_t *x = EKV_HTAB_ENTRY(n, item_t, node);
        cr_assert_eq(seen[x->key], 0);
        seen[x->key] = 1;
        visited++;
        if (x->key % 2) {
            ekv_htab_remove(&t, n);
            free(x);
        }
    }
    cr_assert_eq(visited, N);
    cr_assert_eq(ekv_htab_count(&t), N / 2);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    /* pass 2: exactly the even keys are left */
    memset(seen, 0, sizeof(seen));
    visited = 0;
    ekv_htab_iter_init(&it, &t);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        item_t *x = EKV_HTAB_ENTRY(n, item_t, node);
        cr_assert_eq(x->key % 2, 0);
        cr_assert_eq(seen[x->key], 0);
        seen[x->key] = 1;
        visited++;
    }
    cr_assert_eq(visited, N / 2);
    /* pass 3: take() the current node, then free without touching the table: all gone */
    ekv_htab_iter_init(&it, &t);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        item_t *x = EKV_HTAB_ENTRY(n, item_t, node);
        cr_assert_eq(ekv_htab_take(&t, n->hash, item_eq, &x->key), n);
        free(x);
    }
    cr_assert_eq(ekv_htab_count(&t), 0);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    ekv_htab_deinit(&t);
}

Test(htab, free_every_node_while_iterating_then_deinit)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    for (uint64_t i = 0; i < 1000; i++) {
        item_t *it = calloc(1, sizeof(*it));
        it->key = i;
        ekv_htab_insert(&t, &it->node, ekv_hash_u64(i));
    }
    size_t freed = 0;
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &t);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        free(EKV_HTAB_ENTRY(n, item_t, node));
        freed++;
    }
    cr_assert_eq(freed, 1000);
    ekv_htab_deinit(&t); /* ASan/LSan: nothing leaks, nothing freed twice */
    cr_assert_eq(ekv_htab_count(&t), 0);
}

Test(htab, removing_a_node_not_in_the_table_aborts, .signal = SIGABRT)
{
    ekv_htab_t t;
    ekv_htab_init(&t);
    item_t a = {.key = 1}, b = {.key = 2};
    ekv_htab_insert(&t, &a.node, ekv_hash_u64(1));
    b.node.hash = a.node.hash; /* same bucket, not linked */
    ekv_htab_remove(&t, &b.node);
}

/* ---- allocation failure ----------------------------------------------------------------- */

typedef struct {
    int fail;     /* refuse every allocation while set */
    size_t live;  /* allocations not yet freed */
    size_t calls; /* allocations attempted */
} fake_alloc_t;

static void *fake_alloc_fn(void *ctx, size_t size)
{
    fake_alloc_t *f = ctx;
    f->calls++;
    if (f->fail)
        return NULL;
    void *p = calloc(1, size);
    if (p)
        f->live++;
    return p;
}

static void fake_free_fn(void *ctx, void *p)
{
    fake_alloc_t *f = ctx;
    if (p)
        f->live--;
    free(p);
}

Test(htab, growth_failure_leaves_table_valid_and_retries)
{
    fake_alloc_t fa = {0};
    ekv_htab_alloc_t a = {fake_alloc_fn, fake_free_fn, &fa};
    ekv_htab_t t;
    ekv_htab_init_alloc(&t, &a);
    item_t items[200];
    for (size_t i = 0; i < 200; i++)
        items[i].key = i;

    /* no bucket array and none to be had: the one failing insert */
    fa.fail = 1;
    cr_assert_eq(ekv_htab_insert(&t, &items[0].node, ekv_hash_u64(0)), EKV_ENOMEM);
    cr_assert_eq(ekv_htab_count(&t), 0);
    cr_assert_null(t.buckets);
    cr_assert_eq(ekv_htab_reserve(&t, 64), EKV_ENOMEM);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);

    fa.fail = 0;
    for (size_t i = 0; i < 16; i++)
        cr_assert_eq(ekv_htab_insert(&t, &items[i].node, ekv_hash_u64(i)), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 16);
    cr_assert_eq(fa.live, 1);

    /* growth fails: inserts still succeed, the table stays at 16 buckets and correct */
    fa.fail = 1;
    for (size_t i = 16; i < 100; i++)
        cr_assert_eq(ekv_htab_insert(&t, &items[i].node, ekv_hash_u64(i)), 0);
    cr_assert_eq(ekv_htab_nbuckets(&t), 16);
    cr_assert_eq(ekv_htab_count(&t), 100);
    size_t chain = 0;
    cr_assert_eq(ekv_htab_check(&t, &chain), 0);
    cr_assert_geq(chain, 7); /* 100 nodes in 16 buckets */
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(find_u64(&t, i), &items[i]);
    ekv_htab_remove(&t, &items[50].node);
    cr_assert_null(find_u64(&t, 50));
    cr_assert_eq(ekv_htab_reserve(&t, 1000), EKV_ENOMEM);
    cr_assert_eq(ekv_htab_nbuckets(&t), 16);

    /* memory is back: each insert doubles once until the load factor is <= 1 again */
    fa.fail = 0;
    ekv_htab_insert(&t, &items[100].node, ekv_hash_u64(100));
    cr_assert_eq(ekv_htab_nbuckets(&t), 32);
    ekv_htab_insert(&t, &items[101].node, ekv_hash_u64(101));
    cr_assert_eq(ekv_htab_nbuckets(&t), 64);
    ekv_htab_insert(&t, &items[102].node, ekv_hash_u64(102));
    cr_assert_eq(ekv_htab_nbuckets(&t), 128);
    ekv_htab_insert(&t, &items[103].node, ekv_hash_u64(103));
    cr_assert_eq(ekv_htab_nbuckets(&t), 128);
    cr_assert_eq(ekv_htab_count(&t), 103);
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    for (size_t i = 0; i < 104; i++)
        cr_assert_eq(find_u64(&t, i), i == 50 ? NULL : &items[i]);
    cr_assert_eq(fa.live, 1); /* old arrays were freed through the allocator */
    ekv_htab_deinit(&t);
    cr_assert_eq(fa.live, 0);
}

Test(bytemap, allocation_failure_leaves_map_unchanged)
{
    fake_alloc_t fa = {0};
    ekv_htab_alloc_t a = {fake_alloc_fn, fake_free_fn, &fa};
    ekv_bytemap_t m;
    ekv_bytemap_init_alloc(&m, &a);
    int v1 = 1, v2 = 2;
    fa.fail = 1;
    cr_assert_eq(ekv_bytemap_put(&m, "a", 1, &v1), EKV_ENOMEM);
    cr_assert_eq(ekv_bytemap_count(&m), 0);
    cr_assert_null(ekv_bytemap_get(&m, "a", 1));
    fa.fail = 0;
    cr_assert_eq(ekv_bytemap_put(&m, "a", 1, &v1), 0);
    fa.fail = 1;
    cr_assert_eq(ekv_bytemap_put(&m, "b", 1, &v2), EKV_ENOMEM);
    cr_assert_eq(ekv_bytemap_put(&m, "a", 1, &v2), 0); /* replacing never allocates */
    cr_assert_eq(ekv_bytemap_get(&m, "a", 1), &v2);
    cr_assert_null(ekv_bytemap_get(&m, "b", 1));
    cr_assert_eq(ekv_bytemap_count(&m), 1);
    cr_assert_eq(fa.live, 2); /* bucket array + one entry */
    ekv_bytemap_deinit(&m, NULL);
    cr_assert_eq(fa.live, 0);
}

/* ---- 1M randomized operations against a reference --------------------------------------- */

/* A string-keyed node, as the catalog and cache use: key bytes inside the node. */
typedef struct {
    ekv_hnode_t node;
    uint32_t id;
    size_t len;
    char key[24];
} skey_t;

typedef struct {
    const char *p;
    size_t len;
} skey_ref_t;

static int skey_eq(const ekv_hnode_t *n, const void *key)
{
    const skey_t *s = EKV_HTAB_ENTRY(n, skey_t, node);
    const skey_ref_t *k = key;
    return s->len == k->len && memcmp(s->key, k->p, k->len) == 0;
}

static uint64_t rng_next(uint64_t *s) /* xorshift64*: deterministic */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

Test(htab, one_million_random_ops_match_reference)
{
    enum { UNIVERSE = 1 << 17, OPS = 1000000 };
    /* reference: the node for each id of the universe, or NULL (a direct-indexed array) */
    skey_t **ref = calloc(UNIVERSE, sizeof(*ref));
    ekv_htab_t t;
    ekv_htab_init(&t);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    size_t live = 0, hits = 0, inserts = 0, removes = 0;
    for (size_t op = 0; op < OPS; op++) {
        uint64_t r = rng_next(&rng);
        uint32_t id = (uint32_t)(r >> 20) % UNIVERSE;
        char buf[24];
        int len = snprintf(buf, sizeof(buf), "k:%u", id);
        skey_ref_t k = {buf, (size_t)len};
        uint64_t h = ekv_hash_bytes(buf, (size_t)len);
        ekv_hnode_t *n = ekv_htab_find(&t, h, skey_eq, &k);
        cr_assert_eq(n ? EKV_HTAB_ENTRY(n, skey_t, node) : NULL, ref[id], "op %zu id %u", op, id);
        switch (r % 8) {
        case 0:
        case 1:
        case 2: /* insert when absent */
            if (!ref[id]) {
                skey_t *s = malloc(sizeof(*s));
                s->id = id;
                s->len = (size_t)len;
                memcpy(s->key, buf, (size_t)len);
                cr_assert_eq(ekv_htab_insert(&t, &s->node, h), 0);
                ref[id] = s;
                live++;
                inserts++;
            }
            break;
        case 3: /* remove by node */
            if (ref[id]) {
                ekv_htab_remove(&t, &ref[id]->node);
                free(ref[id]);
                ref[id] = NULL;
                live--;
                removes++;
            }
            break;
        case 4: { /* remove by key */
            ekv_hnode_t *got = ekv_htab_take(&t, h, skey_eq, &k);
            cr_assert_eq(got ? EKV_HTAB_ENTRY(got, skey_t, node) : NULL, ref[id]);
            if (got) {
                free(ref[id]);
                ref[id] = NULL;
                live--;
                removes++;
            }
            break;
        }
        case 5: /* replace with a fresh node of the same key */
            if (ref[id]) {
                skey_t *s = malloc(sizeof(*s));
                *s = *ref[id];
                ekv_htab_replace(&t, &ref[id]->node, &s->node);
                free(ref[id]);
                ref[id] = s;
            }
            break;
        default: /* lookup only */
            hits += ref[id] != NULL;
            break;
        }
        cr_assert_eq(ekv_htab_count(&t), live);
        if (op % 100000 == 0)
            cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    }
    cr_assert_eq(ekv_htab_check(&t, NULL), 0);
    cr_assert_gt(inserts, 50000);
    cr_assert_gt(removes, 50000);
    cr_assert_gt(hits, 10000);
    /* the table holds exactly the reference's nodes, each once */
    size_t visited = 0;
    ekv_htab_iter_t it;
    ekv_htab_iter_init(&it, &t);
    for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) {
        skey_t *s = EKV_HTAB_ENTRY(n, skey_t, node);
        cr_assert_eq(ref[s->id], s);
        ref[s->id] = NULL; /* seen: a second visit would fail above */
        ekv_htab_remove(&t, n);
        free(s);
        visited++;
    }
    cr_assert_eq(visited, live);
    for (size_t i = 0; i < UNIVERSE; i++)
        cr_assert_null(ref[i]);
    cr_assert_eq(ekv_htab_count(&t), 0);
    ekv_htab_deinit(&t);
    free(ref);
}

/* ---- byte-string map -------------------------------------------------------------------- */

static int freed_vals;
static void count_free(void *v)
{
    (void)v;
    freed_vals++;
}

Test(bytemap, put_get_replace_del)
{
    ekv_bytemap_t m;
    ekv_bytemap_init(&m);
    int a = 1, b = 2, c = 3;
    cr_assert_null(ekv_bytemap_get(&m, "x", 1));
    cr_assert_eq(ekv_bytemap_put(&m, "alpha", 5, &a), 0);
    cr_assert_eq(ekv_bytemap_put(&m, "al\0ha", 5, &b), 0); /* binary keys */
    cr_assert_eq(ekv_bytemap_put(&m, "", 0, &c), 0);       /* empty key */
    cr_assert_eq(ekv_bytemap_count(&m), 3);
    cr_assert_eq(ekv_bytemap_get(&m, "alpha", 5), &a);
    cr_assert_eq(ekv_bytemap_get(&m, "al\0ha", 5), &b);
    cr_assert_eq(ekv_bytemap_get(&m, "", 0), &c);
    cr_assert_null(ekv_bytemap_get(&m, "alph", 4));
    cr_assert_null(ekv_bytemap_get(&m, "alphaa", 6));

    char key[6] = "alpha"; /* keys are copied in */
    cr_assert_eq(ekv_bytemap_put(&m, key, 5, &c), 0);
    key[0] = 'X';
    cr_assert_eq(ekv_bytemap_count(&m), 3);
    cr_assert_eq(ekv_bytemap_get(&m, "alpha", 5), &c);

    cr_assert_eq(ekv_bytemap_del(&m, "alpha", 5), &c);
    cr_assert_null(ekv_bytemap_del(&m, "alpha", 5));
    cr_assert_null(ekv_bytemap_get(&m, "alpha", 5));
    cr_assert_eq(ekv_bytemap_count(&m), 2);
    cr_assert_eq(ekv_bytemap_del(&m, "", 0), &c);
    cr_assert_eq(ekv_bytemap_count(&m), 1);

    freed_vals = 0;
    ekv_bytemap_deinit(&m, count_free);
    cr_assert_eq(freed_vals, 1);
    cr_assert_eq(ekv_bytemap_count(&m), 0);
}

Test(bytemap, iterate_and_delete_current)
{
    ekv_bytemap_t m;
    ekv_bytemap_init(&m);
    for (uintptr_t i = 1; i <= 5000; i++) {
        char k[16];
        int n = snprintf(k, sizeof(k), "key%lu", (unsigned long)i);
        cr_assert_eq(ekv_bytemap_put(&m, k, (size_t)n, (void *)i), 0);
    }
    cr_assert_eq(ekv_bytemap_count(&m), 5000);
    uintptr_t sum = 0;
    size_t visited = 0;
    ekv_bytemap_iter_t it;
    ekv_bytemap_iter_init(&it, &m);
    const void *k;
    size_t klen;
    void *v;
    while (ekv_bytemap_iter_next(&it, &k, &klen, &v)) {
        char expect[16];
        int n = snprintf(expect, sizeof(expect), "key%lu", (unsigned long)(uintptr_t)v);
        cr_assert_eq(klen, (size_t)n);
        cr_assert_eq(memcmp(k, expect, klen), 0);
        sum += (uintptr_t)v;
        visited++;
        if ((uintptr_t)v % 5 == 0)
            cr_assert_eq(ekv_bytemap_del(&m, k, klen), v); /* frees k: not read after */
    }
    cr_assert_eq(visited, 5000);
    cr_assert_eq(sum, 5000u * 5001u / 2);
    cr_assert_eq(ekv_bytemap_count(&m), 4000);
    cr_assert_null(ekv_bytemap_get(&m, "key5", 4));
    cr_assert_eq(ekv_bytemap_get(&m, "key4", 4), (void *)4);
    cr_assert_eq(ekv_htab_check(&m.t, NULL), 0);
    ekv_bytemap_deinit(&m, NULL);
}

Test(bytemap, one_million_random_ops_match_reference)
{
    enum { UNIVERSE = 1 << 16, OPS = 1000000 };
    uintptr_t *ref = calloc(UNIVERSE, sizeof(*ref)); /* 0 = absent */
    ekv_bytemap_t m;
    ekv_bytemap_init(&m);
    uint64_t rng = 12345;
    size_t live = 0;
    for (size_t op = 0; op < OPS; op++) {
        uint64_t r = rng_next(&rng);
        uint32_t id = (uint32_t)(r >> 24) % UNIVERSE;
        char k[32];
        int n = snprintf(k, sizeof(k), "ns/%08x/title", id);
        cr_assert_eq((uintptr_t)ekv_bytemap_get(&m, k, (size_t)n), ref[id]);
        if (r % 4 < 2) {
            uintptr_t v = (uintptr_t)(r | 1);
            cr_assert_eq(ekv_bytemap_put(&m, k, (size_t)n, (void *)v), 0);
            live += ref[id] == 0;
            ref[id] = v;
        } else if (r % 4 == 2) {
            cr_assert_eq((uintptr_t)ekv_bytemap_del(&m, k, (size_t)n), ref[id]);
            live -= ref[id] != 0;
            ref[id] = 0;
        }
        cr_assert_eq(ekv_bytemap_count(&m), live);
    }
    cr_assert_gt(live, UNIVERSE / 4);
    cr_assert_eq(ekv_htab_check(&m.t, NULL), 0);
    ekv_bytemap_deinit(&m, NULL);
    free(ref);
}
