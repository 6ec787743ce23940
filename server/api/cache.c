#include "server/api/cache.h"

#include <stdlib.h>
#include <string.h>

/* Buckets reserved at creation: one per CACHE_MIN_ENTRY bytes of max_bytes (the smallest
 * entries: header + a short key + a ~50-byte value), so a cache filling up never pauses the
 * loop for a table doubling (~40 ms at 1M entries, common/htab.h). The array is calloc'd,
 * but hashing spreads entries over all of it, so count it as resident once the cache holds
 * a few thousand entries: 8 bytes per 128 of max_bytes (16 MiB for the default 256 MiB).
 * Capped; beyond the cap the table grows as usual. */
#define CACHE_MIN_ENTRY   128
#define CACHE_RESERVE_MIN 1024
#define CACHE_RESERVE_MAX ((size_t)1 << 24)
/* Invalidation stamps for the fill rule (cache.h): per key slot and per namespace slot. Two
 * keys (namespaces) sharing a slot only make a fill be dropped when it could have been kept,
 * never the reverse. 4096 slots: a write makes a concurrent fill of another key fail with
 * probability 1/4096; 36 KiB per cache (one per process). */
#define INVAL_KEY_SLOTS 4096
#define INVAL_NS_SLOTS  256

struct ekv_cache_s {
    ekv_htab_t tab; /* ekv_cache_entry_t.hnode by (nsid, key); its count = entries */
    size_t bytes, max_bytes, max_entry_bytes;
    ekv_cache_entry_t *lru_head, *lru_tail; /* head = most recent */
    uint64_t gen;                           /* the last stamp given to an invalidation */
    uint64_t key_inval[INVAL_KEY_SLOTS];    /* by ekv_cache_key_hash: last key invalidation */
    uint64_t ns_inval[INVAL_NS_SLOTS];      /* by ekv_hash_bytes(nsid): last namespace one */
    uint64_t clear_inval;                   /* last ekv_cache_clear */
    ekv_cache_stats_t st;
};

#define ENTRY_OVERHEAD (sizeof(ekv_cache_entry_t) + 32)

uint64_t ekv_cache_key_hash(const uint8_t nsid[16], const char *key, size_t len)
{
    return ekv_hash_bytes_seed(key, len, ekv_hash_bytes(nsid, 16));
}

ekv_cache_t *ekv_cache_new(size_t max_bytes, size_t max_entry_bytes)
{
    ekv_cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    ekv_htab_init(&c->tab);
    size_t want = max_bytes / CACHE_MIN_ENTRY;
    want = want < CACHE_RESERVE_MIN   ? CACHE_RESERVE_MIN
           : want > CACHE_RESERVE_MAX ? CACHE_RESERVE_MAX
                                      : want;
    if (ekv_htab_reserve(&c->tab, want)) { /* inserts can no longer fail */
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes;
    c->max_entry_bytes = max_entry_bytes;
    return c;
}

static void entry_unref(ekv_cache_entry_t *e)
{
    if (--e->refs == 0)
        free(e);
}

void ekv_cache_entry_release(void *entry)
{
    entry_unref(entry);
}

static void lru_unlink(ekv_cache_t *c, ekv_cache_entry_t *e)
{
    if (e->lprev)
        e->lprev->lnext = e->lnext;
    else
        c->lru_head = e->lnext;
    if (e->lnext)
        e->lnext->lprev = e->lprev;
    else
        c->lru_tail = e->lprev;
    e->lprev = e->lnext = NULL;
}

static void lru_push_front(ekv_cache_t *c, ekv_cache_entry_t *e)
{
    e->lprev = NULL;
    e->lnext = c->lru_head;
    if (c->lru_head)
        c->lru_head->lprev = e;
    c->lru_head = e;
    if (!c->lru_tail)
        c->lru_tail = e;
}

/* Remove from table and LRU and drop the table's reference. */
static void entry_remove(ekv_cache_t *c, ekv_cache_entry_t *e)
{
    ekv_htab_remove(&c->tab, &e->hnode);
    lru_unlink(c, e);
    e->linked = 0;
    c->bytes -= e->key_len + e->value_len + ENTRY_OVERHEAD;
    entry_unref(e);
}

void ekv_cache_free(ekv_cache_t *c)
{
    if (!c)
        return;
    while (c->lru_head)
        entry_remove(c, c->lru_head);
    ekv_htab_deinit(&c->tab);
    free(c);
}

typedef struct {
    const uint8_t *nsid;
    const char *key;
    size_t len;
} cache_key_t;

/* Inlined into ekv_htab_find (static, visible): the hit path makes no indirect call. */
static int entry_eq(const ekv_hnode_t *n, const void *key)
{
    const ekv_cache_entry_t *e = EKV_HTAB_ENTRY(n, ekv_cache_entry_t, hnode);
    const cache_key_t *k = key;
    return e->key_len == k->len + 16 && memcmp(e->data, k->nsid, 16) == 0 &&
           memcmp(e->data + 16, k->key, k->len) == 0;
}

static ekv_cache_entry_t *lookup(ekv_cache_t *c, uint64_t h, const uint8_t nsid[16],
                                 const char *key, size_t len)
{
    cache_key_t k = {nsid, key, len};
    ekv_hnode_t *n = ekv_htab_find(&c->tab, h, entry_eq, &k);
    return n ? EKV_HTAB_ENTRY(n, ekv_cache_entry_t, hnode) : NULL;
}

ekv_cache_entry_t *ekv_cache_get(ekv_cache_t *c, const uint8_t nsid[16], const char *key,
                                 size_t key_len, int64_t now_s)
{
    if (!c->max_bytes)
        return NULL;
    uint64_t h = ekv_cache_key_hash(nsid, key, key_len);
    ekv_cache_entry_t *e = lookup(c, h, nsid, key, key_len);
    if (!e)
        return NULL;
    if (e->expiration && e->expiration <= now_s) {
        entry_remove(c, e);
        return NULL;
    }
    c->st.hits++;
    if (c->lru_head != e) {
        lru_unlink(c, e);
        lru_push_front(c, e);
    }
    e->refs++;
    return e;
}

/* Drop (nsid, key)'s entry if any; stamp its slot when a write invalidates (not for a fill). */
static void invalidate_h(ekv_cache_t *c, uint64_t h, const uint8_t nsid[16], const char *key,
                         size_t key_len, int stamp)
{
    if (stamp)
        c->key_inval[h & (INVAL_KEY_SLOTS - 1)] = ++c->gen;
    if (!ekv_htab_count(&c->tab))
        return;
    ekv_cache_entry_t *e = lookup(c, h, nsid, key, key_len);
    if (e)
        entry_remove(c, e);
}

void ekv_cache_invalidate(ekv_cache_t *c, const uint8_t nsid[16], const char *key, size_t key_len)
{
    invalidate_h(c, ekv_cache_key_hash(nsid, key, key_len), nsid, key, key_len, 1);
}

static void insert_h(ekv_cache_t *c, uint64_t h, const uint8_t nsid[16], const char *key,
                     size_t key_len, const char *value, size_t value_len, int64_t expiration,
                     int negative, int64_t fresh_until_ms)
{
    size_t cost = key_len + 16 + value_len + ENTRY_OVERHEAD;
    if (!c->max_bytes || value_len > c->max_entry_bytes || cost > c->max_bytes)
        return;
    ekv_cache_entry_t *e = malloc(sizeof(*e) + 16 + key_len + value_len);
    if (!e)
        return;
    memset(e, 0, sizeof(*e));
    e->refs = 1;
    e->linked = 1;
    e->expiration = expiration;
    e->negative = negative;
    e->fresh_until_ms = fresh_until_ms;
    e->key_len = 16 + key_len;
    e->value_len = value_len;
    memcpy(e->data, nsid, 16);
    memcpy(e->data + 16, key, key_len);
    e->value = e->data + 16 + key_len;
    if (value_len)
        memcpy(e->value, value, value_len);
    while (c->bytes + cost > c->max_bytes && c->lru_tail) {
        entry_remove(c, c->lru_tail);
        c->st.evictions++;
    }
    ekv_htab_insert(&c->tab, &e->hnode, h); /* reserved in ekv_cache_new: cannot fail */
    lru_push_front(c, e);
    c->bytes += cost;
    c->st.inserts++;
}

void ekv_cache_put(ekv_cache_t *c, const uint8_t nsid[16], const char *key, size_t key_len,
                   const char *value, size_t value_len, int64_t expiration)
{
    ekv_cache_put_ex(c, nsid, key, key_len, value, value_len, expiration, 0, 0);
}

void ekv_cache_put_ex(ekv_cache_t *c, const uint8_t nsid[16], const char *key, size_t key_len,
                      const char *value, size_t value_len, int64_t expiration, int negative,
                      int64_t fresh_until_ms)
{
    uint64_t h = ekv_cache_key_hash(nsid, key, key_len);
    invalidate_h(c, h, nsid, key, key_len, 1);
    insert_h(c, h, nsid, key, key_len, value, value_len, expiration, negative, fresh_until_ms);
}

uint64_t ekv_cache_fill_begin(const ekv_cache_t *c)
{
    return c->gen;
}

int ekv_cache_fill(ekv_cache_t *c, uint64_t ticket, const uint8_t nsid[16], const char *key,
                   size_t key_len, const char *value, size_t value_len, int64_t expiration)
{
    uint64_t h = ekv_cache_key_hash(nsid, key, key_len);
    if (c->key_inval[h & (INVAL_KEY_SLOTS - 1)] > ticket || c->clear_inval > ticket ||
        c->ns_inval[ekv_hash_bytes(nsid, 16) & (INVAL_NS_SLOTS - 1)] > ticket)
        return 0; /* that key, its namespace or everything was invalidated meanwhile */
    /* not a write: replace an entry of the same read age without stamping the key, so
     * concurrent fills of other keys (and of this one) are all kept */
    invalidate_h(c, h, nsid, key, key_len, 0);
    insert_h(c, h, nsid, key, key_len, value, value_len, expiration, 0, 0);
    return 1;
}

void ekv_cache_invalidate_ns(ekv_cache_t *c, const uint8_t nsid[16])
{
    c->ns_inval[ekv_hash_bytes(nsid, 16) & (INVAL_NS_SLOTS - 1)] = ++c->gen;
    for (ekv_cache_entry_t *e = c->lru_head, *next; e; e = next) {
        next = e->lnext;
        if (memcmp(e->data, nsid, 16) == 0)
            entry_remove(c, e);
    }
}

void ekv_cache_clear(ekv_cache_t *c)
{
    c->clear_inval = ++c->gen;
    for (ekv_cache_entry_t *e = c->lru_head, *next; e; e = next) {
        next = e->lnext;
        entry_remove(c, e);
    }
}

void ekv_cache_note_miss(ekv_cache_t *c)
{
    c->st.misses++;
}

void ekv_cache_stats(const ekv_cache_t *c, ekv_cache_stats_t *out)
{
    *out = c->st;
    out->bytes = c->bytes;
    out->entries = ekv_htab_count(&c->tab);
}
