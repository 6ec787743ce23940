/*
 * htab.h - the one hash table of edgekv: an intrusive chained table (ekv_htab_t), an owning
 * byte-string map on top of it (ekv_bytemap_t), and the hashes to feed them (ekv_hash_*).
 *
 * Why intrusive: the users (value cache, edge single-flight, RPC calls in flight, catalog
 * indexes) already own a heap object per entry, often linked into other structures too (LRU
 * list, FIFO, second index). Embedding an ekv_hnode_t in that object costs no allocation per
 * insert, lets one object sit in several tables, and makes removal by pointer possible (an
 * evicted cache entry knows where it is). Why chained: nodes never move, so pointers to them
 * stay valid across growth, and a removal is an unlink (no tombstones).
 *
 * Contract
 *  - Threads: none of its own. The owner serialises every call on one table (loop thread,
 *    committer thread...); reads may run concurrently with each other but not with writes.
 *  - Ownership: the table owns only its bucket array. Nodes belong to the caller, who must
 *    keep a node alive (and its key unchanged) while it is in a table. ekv_htab_deinit frees
 *    the array and never touches nodes. No global state: everything is in ekv_htab_t, which
 *    may be copied/moved by value (nothing points into it) as long as only one copy is used.
 *  - Keys: the table knows only each node's 64-bit hash (set at insert). Equality is the
 *    caller's eq(node, key) callback, called only for nodes whose full hash matches. The table
 *    does not refuse duplicates: insert what the caller has checked is absent (or ekv_htab_find
 *    returns the most recently inserted of equal keys).
 *  - Complexity: find / insert / take are O(1) on average; remove by node pointer and replace
 *    are O(chain length) (~1 at the load factor below); iteration is O(buckets + count).
 *  - Growth: the bucket array is a power of two (at least EKV_HTAB_MIN_BUCKETS) and doubles,
 *    all at once, on the insert that makes count > buckets (load factor <= 1). All at once, not
 *    incrementally: a lookup then walks one array (the cached GET is the hottest path), and a
 *    doubling happens log2(n) times in a table's life; every table here is bounded (cache by
 *    bytes, flights / RPC calls by a max, catalog by limits). The price is one pause per
 *    doubling, bound by one cache miss per node: ~20-40 ms for 512k nodes on the 2-core dev
 *    machine (bench/micro/htab_bench.sh reports it), the same as the per-user tables this one
 *    replaced. A user that must not pause ekv_htab_reserve()s its expected size up front (a
 *    large array is calloc'd: its pages cost nothing until used). The array never shrinks.
 *  - Allocation failure: a growth that cannot allocate leaves the table valid and ungrown (the
 *    node is inserted anyway; chains get longer; the next insert tries again). The only
 *    failing insert is the very first, when no bucket array exists yet and none can be had:
 *    after ekv_htab_reserve() returned 0, ekv_htab_insert never fails.
 *  - Iteration (ekv_htab_iter_*): visits each node once in unspecified order. While iterating
 *    the caller may remove (ekv_htab_remove / ekv_htab_take) and free the node last returned,
 *    and nothing else: no insert (a growth would rehash under the iterator), no removal of
 *    other nodes. To free every node: iterate, free each returned node, then ekv_htab_deinit or
 *    ekv_htab_clear (the iterator never reads a node after returning it).
 */
#ifndef EKV_COMMON_HTAB_H
#define EKV_COMMON_HTAB_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- hashes */

/* XXH3-64 of p[0..n) (p may be NULL when n == 0). Stable across runs and processes. */
uint64_t ekv_hash_bytes(const void *p, size_t n);
/* XXH3-64 with a seed: composite keys chain their parts, e.g. (nsid, key) is
 * ekv_hash_bytes_seed(key, len, ekv_hash_bytes(nsid, 16)). */
uint64_t ekv_hash_bytes_seed(const void *p, size_t n, uint64_t seed);

/* A 64-bit integer key (ids, sequence numbers): the murmur3 finaliser, a bijection whose low
 * bits depend on every input bit (the table indexes buckets by the low bits). */
static inline uint64_t ekv_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* ---------------------------------------------------------------- intrusive table */

/* Embedded in the caller's struct; the table sets both fields on insert. */
typedef struct ekv_hnode_s {
    struct ekv_hnode_s *next;
    uint64_t hash;
} ekv_hnode_t;

/* The struct that embeds node `ptr` as `member` (ptr must not be NULL). */
#define EKV_HTAB_ENTRY(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Optional allocator for the bucket array (and bytemap entries): memory accounting, failure
 * injection in tests. alloc returns zero-filled memory (like calloc(1, size)) or NULL. The
 * default is calloc/free: a large reserve costs no memory until its buckets are used. */
typedef struct {
    void *(*alloc)(void *ctx, size_t size);
    void (*free)(void *ctx, void *p);
    void *ctx;
} ekv_htab_alloc_t;

typedef struct {
    ekv_hnode_t **buckets;         /* NULL until the first insert or reserve */
    size_t mask;                   /* buckets - 1 (0 while buckets is NULL) */
    size_t count;                  /* nodes in the table */
    const ekv_htab_alloc_t *alloc; /* NULL = calloc/free */
} ekv_htab_t;

#define EKV_HTAB_MIN_BUCKETS 16

/* Nonzero when node n's key equals key (n's hash already matched). */
typedef int (*ekv_htab_eq_fn)(const ekv_hnode_t *n, const void *key);

/* An empty table; nothing allocated. */
void ekv_htab_init(ekv_htab_t *t);
/* The same with an allocator (a must outlive the table; NULL = calloc/free). */
void ekv_htab_init_alloc(ekv_htab_t *t, const ekv_htab_alloc_t *a);
/* Free the bucket array; nodes are not touched. The table is empty (and reusable) after. */
void ekv_htab_deinit(ekv_htab_t *t);
/* Forget every node, keep the bucket array. */
void ekv_htab_clear(ekv_htab_t *t);
/* Make room for n nodes without growing (buckets >= n, rounded up to a power of two).
 * 0 or EKV_ENOMEM (the table is then unchanged). Never shrinks. */
int ekv_htab_reserve(ekv_htab_t *t, size_t n);

/* Insert node n with the given hash (sets n->hash, n->next). 0, or EKV_ENOMEM only when the
 * table had no bucket array and could not get one (never after a successful reserve); a
 * failed growth is not an error. Does not look for an equal key. */
int ekv_htab_insert(ekv_htab_t *t, ekv_hnode_t *n, uint64_t hash);
/* Unlink node n, which must be in t (EKV_ASSERT). O(chain). */
void ekv_htab_remove(ekv_htab_t *t, ekv_hnode_t *n);
/* Find and unlink in one pass: the node removed, or NULL. */
ekv_hnode_t *ekv_htab_take(ekv_htab_t *t, uint64_t hash, ekv_htab_eq_fn eq, const void *key);
/* Put nw in the place of old (which must be in t; nw gets old's hash: same key). No
 * allocation, cannot fail. O(chain). */
void ekv_htab_replace(ekv_htab_t *t, ekv_hnode_t *old, ekv_hnode_t *nw);

/* The node with this hash whose eq(node, key) is true, or NULL. Inline, so a static eq is
 * inlined into the caller's loop: this is the cached GET's lookup. */
static inline ekv_hnode_t *ekv_htab_find(const ekv_htab_t *t, uint64_t hash, ekv_htab_eq_fn eq,
                                         const void *key)
{
    if (!t->count)
        return NULL;
    for (ekv_hnode_t *n = t->buckets[hash & t->mask]; n; n = n->next)
        if (n->hash == hash && eq(n, key))
            return n;
    return NULL;
}

static inline size_t ekv_htab_count(const ekv_htab_t *t)
{
    return t->count;
}

/* Current number of buckets (0 before the first insert / reserve). */
static inline size_t ekv_htab_nbuckets(const ekv_htab_t *t)
{
    return t->buckets ? t->mask + 1 : 0;
}

/* Tests and debugging: every node is in the bucket of its hash, count matches, the bucket
 * count is a power of two. 0 or EKV_EINTERNAL. *max_chain (may be NULL): the longest chain. */
int ekv_htab_check(const ekv_htab_t *t, size_t *max_chain);

/* Iteration (rules in the file comment):
 *     ekv_htab_iter_t it;
 *     ekv_htab_iter_init(&it, &t);
 *     for (ekv_hnode_t *n; (n = ekv_htab_iter_next(&it));) ...
 */
typedef struct {
    const ekv_htab_t *t;
    size_t bucket;     /* next bucket to open */
    ekv_hnode_t *next; /* the node after the one last returned */
} ekv_htab_iter_t;

void ekv_htab_iter_init(ekv_htab_iter_t *it, const ekv_htab_t *t);
/* The next node, or NULL at the end. */
ekv_hnode_t *ekv_htab_iter_next(ekv_htab_iter_t *it);

/* ---------------------------------------------------------------- owning byte-string map */

/*
 * A map from byte strings (copied in) to non-NULL pointers (borrowed unless the owner frees
 * them in ekv_bytemap_deinit's callback), one allocation per entry. Same contract as the
 * table above; removing the entry last returned by the iterator (ekv_bytemap_del with its
 * key) is allowed while iterating.
 */
typedef struct {
    ekv_htab_t t;
} ekv_bytemap_t;

void ekv_bytemap_init(ekv_bytemap_t *m);
void ekv_bytemap_init_alloc(ekv_bytemap_t *m, const ekv_htab_alloc_t *a);
/* Free every entry and the table; free_val (may be NULL) is called on each value. */
void ekv_bytemap_deinit(ekv_bytemap_t *m, void (*free_val)(void *val));
/* The value, or NULL when absent. */
void *ekv_bytemap_get(const ekv_bytemap_t *m, const void *key, size_t klen);
/* Insert or replace (val != NULL). 0 or EKV_ENOMEM (the map is then unchanged). Replacing
 * never allocates. */
int ekv_bytemap_put(ekv_bytemap_t *m, const void *key, size_t klen, void *val);
/* Remove; the removed value, or NULL when absent. */
void *ekv_bytemap_del(ekv_bytemap_t *m, const void *key, size_t klen);

static inline size_t ekv_bytemap_count(const ekv_bytemap_t *m)
{
    return m->t.count;
}

typedef struct {
    ekv_htab_iter_t it;
} ekv_bytemap_iter_t;

void ekv_bytemap_iter_init(ekv_bytemap_iter_t *it, const ekv_bytemap_t *m);
/* 1 with the next entry (key bytes valid until that entry is removed), 0 at the end. Any out
 * pointer may be NULL. */
int ekv_bytemap_iter_next(ekv_bytemap_iter_t *it, const void **key, size_t *klen, void **val);

#endif
