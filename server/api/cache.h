/*
 * cache.h - hot KV values held in memory so a hit is answered on the loop thread.
 *
 * Bounded in bytes (LRU eviction); entries larger than max_entry_bytes are never cached.
 * Entries are refcounted: a hit hands a reference to the HTTP layer, which writes the value
 * straight from the entry (zero copy) and releases it when the write is done, so eviction
 * never frees bytes still being sent.
 *
 * Coherence with writes (the rule every caller follows):
 *  - a write invalidates its key when it is submitted AND when it completes (then it may
 *    insert the new value with ekv_cache_put); bulk and namespace writes invalidate the
 *    namespace, a replaced data set clears everything. Each invalidation is stamped;
 *  - a read that missed takes a ticket (ekv_cache_fill_begin) before asking the store and
 *    inserts its result with ekv_cache_fill, which drops it if THAT key, its namespace or the
 *    whole cache was invalidated after the ticket (a key shares its stamp with the keys of
 *    its slot, so a fill may be dropped needlessly, never kept wrongly). Fills of other keys
 *    do not stamp anything, so N concurrent misses of N keys all fill the cache.
 * So a read that raced with a write of its key never installs a value older than that write:
 * the cache never serves a value older than an acknowledged write.
 * Loop thread only.
 */
#ifndef EKV_SERVER_API_CACHE_H
#define EKV_SERVER_API_CACHE_H

#include "common/htab.h"
#include "server/http/server.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ekv_cache_s ekv_cache_t;

typedef struct ekv_cache_entry_s {
    ekv_hnode_t hnode;                       /* in the cache's table (hash: ekv_cache_key_hash) */
    struct ekv_cache_entry_s *lprev, *lnext; /* LRU list */
    int refs;
    int linked;
    ekv_http_shared_t shared; /* replies sending this value: its bytes are charged once */
    int64_t expiration;       /* unix s, 0 = never */
    int negative;             /* edge: "key not found" was cached */
    int64_t fresh_until_ms;   /* edge: cache TTL deadline (0 = no TTL, standalone/replica) */
    size_t key_len;           /* nsid(16) + key */
    size_t value_len;
    char *value;
    char data[]; /* key bytes, then value bytes */
} ekv_cache_entry_t;

ekv_cache_t *ekv_cache_new(size_t max_bytes, size_t max_entry_bytes);
/* The hash of (nsid, key) the cache uses; also for tables keyed the same way (edge flights). */
uint64_t ekv_cache_key_hash(const uint8_t nsid[16], const char *key, size_t len);
void ekv_cache_free(ekv_cache_t *c);

/* A live entry (not expired at now_s) with a new reference, or NULL. */
ekv_cache_entry_t *ekv_cache_get(ekv_cache_t *c, const uint8_t nsid[16], const char *key,
                                 size_t key_len, int64_t now_s);
void ekv_cache_entry_release(void *entry);

/* Copy the value in (no-op when too large or the cache is disabled). */
void ekv_cache_put(ekv_cache_t *c, const uint8_t nsid[16], const char *key, size_t key_len,
                   const char *value, size_t value_len, int64_t expiration);
/* Edge form: also a negative ("not found") entry and a freshness deadline (unix ms). Entries
 * past it are still returned by ekv_cache_get: the caller decides (stale-if-error). */
void ekv_cache_put_ex(ekv_cache_t *c, const uint8_t nsid[16], const char *key, size_t key_len,
                      const char *value, size_t value_len, int64_t expiration, int negative,
                      int64_t fresh_until_ms);
void ekv_cache_invalidate(ekv_cache_t *c, const uint8_t nsid[16], const char *key, size_t key_len);
void ekv_cache_invalidate_ns(ekv_cache_t *c, const uint8_t nsid[16]);
/* Drop every entry (a replica's data was replaced by a snapshot). */
void ekv_cache_clear(ekv_cache_t *c);
/* A read that missed, before it asks the store: its ticket for ekv_cache_fill. O(1). */
uint64_t ekv_cache_fill_begin(const ekv_cache_t *c);
/* Insert a read's result (copied) unless (nsid, key), nsid or everything was invalidated
 * since `ticket`. Returns 1 inserted (or too large to cache), 0 dropped. */
int ekv_cache_fill(ekv_cache_t *c, uint64_t ticket, const uint8_t nsid[16], const char *key,
                   size_t key_len, const char *value, size_t value_len, int64_t expiration);

typedef struct {
    uint64_t hits, misses, inserts, evictions, bytes, entries;
} ekv_cache_stats_t;
void ekv_cache_stats(const ekv_cache_t *c, ekv_cache_stats_t *out);
/* Count a miss (the caller went to the store). */
void ekv_cache_note_miss(ekv_cache_t *c);

#endif
