/* Hot-value cache: hits, expiry, LRU eviction by bytes, refcounts, the fill rule. */
#include "server/api/cache.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static const uint8_t ns1[16] = {1};
static const uint8_t ns2[16] = {2};

Test(cache, put_get_roundtrip_and_namespace_isolation)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    ekv_cache_put(c, ns1, "k", 1, "value", 5, 0);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "k", 1, 1000);
    cr_assert_not_null(e);
    cr_assert_eq(e->value_len, 5);
    cr_assert_eq(memcmp(e->value, "value", 5), 0);
    ekv_cache_entry_release(e);
    cr_assert_null(ekv_cache_get(c, ns2, "k", 1, 1000));
    cr_assert_null(ekv_cache_get(c, ns1, "K", 1, 1000));
    ekv_cache_free(c);
}

Test(cache, expired_entry_is_a_miss)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    ekv_cache_put(c, ns1, "k", 1, "v", 1, 2000);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "k", 1, 1999);
    cr_assert_not_null(e);
    cr_assert_eq(e->expiration, 2000);
    ekv_cache_entry_release(e);
    cr_assert_null(ekv_cache_get(c, ns1, "k", 1, 2000));
    ekv_cache_stats_t st;
    ekv_cache_stats(c, &st);
    cr_assert_eq(st.entries, 0);
    ekv_cache_free(c);
}

Test(cache, too_large_values_are_not_cached)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 100);
    char big[101];
    memset(big, 'x', sizeof(big));
    ekv_cache_put(c, ns1, "big", 3, big, 101, 0);
    cr_assert_null(ekv_cache_get(c, ns1, "big", 3, 0));
    ekv_cache_put(c, ns1, "ok", 2, big, 100, 0);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "ok", 2, 0);
    cr_assert_not_null(e);
    ekv_cache_entry_release(e);
    ekv_cache_free(c);
}

Test(cache, lru_evicts_least_recent_within_byte_bound)
{
    char v[1000];
    memset(v, 'v', sizeof(v));
    ekv_cache_t *c = ekv_cache_new(4000, 2000); /* room for about three entries */
    ekv_cache_put(c, ns1, "a", 1, v, 1000, 0);
    ekv_cache_put(c, ns1, "b", 1, v, 1000, 0);
    ekv_cache_put(c, ns1, "c", 1, v, 1000, 0);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "a", 1, 0); /* a becomes most recent */
    cr_assert_not_null(e);
    ekv_cache_entry_release(e);
    ekv_cache_put(c, ns1, "d", 1, v, 1000, 0); /* evicts b */
    ekv_cache_stats_t st;
    ekv_cache_stats(c, &st);
    cr_assert_leq(st.bytes, 4000);
    cr_assert_geq(st.evictions, 1);
    cr_assert_null(ekv_cache_get(c, ns1, "b", 1, 0));
    e = ekv_cache_get(c, ns1, "a", 1, 0);
    cr_assert_not_null(e);
    ekv_cache_entry_release(e);
    e = ekv_cache_get(c, ns1, "d", 1, 0);
    cr_assert_not_null(e);
    ekv_cache_entry_release(e);
    ekv_cache_free(c);
}

Test(cache, held_reference_survives_eviction_and_invalidation)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    ekv_cache_put(c, ns1, "k", 1, "old", 3, 0);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "k", 1, 0);
    ekv_cache_invalidate(c, ns1, "k", 1);
    cr_assert_null(ekv_cache_get(c, ns1, "k", 1, 0));
    cr_assert_eq(memcmp(e->value, "old", 3), 0); /* still readable: we hold a reference */
    ekv_cache_entry_release(e);
    ekv_cache_free(c);
}

/* Regression (issue 9): every put used to bump one global generation, so of N concurrent
 * misses only the first fill was kept. */
Test(cache, concurrent_fills_of_different_keys_are_all_kept)
{
    ekv_cache_t *c = ekv_cache_new(64 << 20, 1 << 16);
    enum { N = 1000 };
    uint64_t t[N];
    char key[32];
    for (int i = 0; i < N; i++)
        t[i] = ekv_cache_fill_begin(c); /* N misses in flight */
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        cr_assert_eq(ekv_cache_fill(c, t[i], i % 2 ? ns1 : ns2, key, (size_t)n, key, (size_t)n, 0),
                     1, "fill %d dropped", i);
    }
    for (int i = 0; i < N; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        ekv_cache_entry_t *e = ekv_cache_get(c, i % 2 ? ns1 : ns2, key, (size_t)n, 0);
        cr_assert_not_null(e, "%s not cached", key);
        cr_assert_eq(memcmp(e->value, key, (size_t)n), 0);
        ekv_cache_entry_release(e);
    }
    /* two concurrent fills of one key: both kept, the later one wins */
    uint64_t a = ekv_cache_fill_begin(c), b = ekv_cache_fill_begin(c);
    cr_assert_eq(ekv_cache_fill(c, a, ns1, "same", 4, "one", 3, 0), 1);
    cr_assert_eq(ekv_cache_fill(c, b, ns1, "same", 4, "two", 3, 0), 1);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "same", 4, 0);
    cr_assert_eq(memcmp(e->value, "two", 3), 0);
    ekv_cache_entry_release(e);
    ekv_cache_free(c);
}

Test(cache, fill_of_a_key_invalidated_meanwhile_is_dropped)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    uint64_t t = ekv_cache_fill_begin(c), other = ekv_cache_fill_begin(c);
    ekv_cache_invalidate(c, ns1, "k", 1); /* a write of k was submitted */
    cr_assert_eq(ekv_cache_fill(c, t, ns1, "k", 1, "old", 3, 0), 0);
    cr_assert_null(ekv_cache_get(c, ns1, "k", 1, 0));
    /* the same key in another namespace, and another key, are not affected */
    cr_assert_eq(ekv_cache_fill(c, other, ns2, "k", 1, "v2", 2, 0), 1);
    cr_assert_eq(ekv_cache_fill(c, other, ns1, "k2", 2, "v", 1, 0), 1);
    /* a write that completed and put its value: a fill that started before it is dropped
     * and the written value stays */
    uint64_t t2 = ekv_cache_fill_begin(c);
    ekv_cache_put(c, ns1, "k", 1, "new", 3, 0);
    cr_assert_eq(ekv_cache_fill(c, t2, ns1, "k", 1, "old", 3, 0), 0);
    ekv_cache_entry_t *e = ekv_cache_get(c, ns1, "k", 1, 0);
    cr_assert_not_null(e);
    cr_assert_eq(memcmp(e->value, "new", 3), 0);
    ekv_cache_entry_release(e);
    /* a fill that started after the write is kept */
    uint64_t t3 = ekv_cache_fill_begin(c);
    cr_assert_eq(ekv_cache_fill(c, t3, ns1, "k", 1, "new", 3, 0), 1);
    ekv_cache_free(c);
}

Test(cache, namespace_or_clear_invalidation_drops_fills_in_flight)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    uint64_t t = ekv_cache_fill_begin(c);
    ekv_cache_invalidate_ns(c, ns1); /* bulk write or namespace delete */
    cr_assert_eq(ekv_cache_fill(c, t, ns1, "a", 1, "1", 1, 0), 0);
    cr_assert_eq(ekv_cache_fill(c, t, ns1, "b", 1, "2", 1, 0), 0);
    cr_assert_null(ekv_cache_get(c, ns1, "a", 1, 0));
    cr_assert_eq(ekv_cache_fill(c, t, ns2, "a", 1, "3", 1, 0), 1); /* other namespace */
    uint64_t t2 = ekv_cache_fill_begin(c);
    ekv_cache_clear(c); /* a replica's data replaced by a snapshot */
    cr_assert_eq(ekv_cache_fill(c, t2, ns2, "x", 1, "1", 1, 0), 0);
    cr_assert_eq(ekv_cache_fill(c, t2, ns1, "y", 1, "1", 1, 0), 0);
    cr_assert_null(ekv_cache_get(c, ns2, "a", 1, 0));
    uint64_t t3 = ekv_cache_fill_begin(c);
    cr_assert_eq(ekv_cache_fill(c, t3, ns2, "x", 1, "1", 1, 0), 1);
    ekv_cache_free(c);
}

Test(cache, invalidate_namespace_drops_only_that_namespace)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    ekv_cache_put(c, ns1, "a", 1, "1", 1, 0);
    ekv_cache_put(c, ns1, "b", 1, "2", 1, 0);
    ekv_cache_put(c, ns2, "a", 1, "3", 1, 0);
    ekv_cache_invalidate_ns(c, ns1);
    cr_assert_null(ekv_cache_get(c, ns1, "a", 1, 0));
    cr_assert_null(ekv_cache_get(c, ns1, "b", 1, 0));
    ekv_cache_entry_t *e = ekv_cache_get(c, ns2, "a", 1, 0);
    cr_assert_not_null(e);
    cr_assert_eq(e->value[0], '3');
    ekv_cache_entry_release(e);
    ekv_cache_free(c);
}

Test(cache, many_entries_grow_the_table)
{
    ekv_cache_t *c = ekv_cache_new(64 << 20, 1 << 16);
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        ekv_cache_put(c, ns1, key, (size_t)n, key, (size_t)n, 0);
    }
    for (int i = 0; i < 5000; i += 97) {
        int n = snprintf(key, sizeof(key), "key-%d", i);
        ekv_cache_entry_t *e = ekv_cache_get(c, ns1, key, (size_t)n, 0);
        cr_assert_not_null(e, "missing %s", key);
        cr_assert_eq(memcmp(e->value, key, (size_t)n), 0);
        ekv_cache_entry_release(e);
    }
    ekv_cache_free(c);
}

Test(cache, edge_entries_carry_negative_flag_and_freshness)
{
    ekv_cache_t *c = ekv_cache_new(1 << 20, 1 << 16);
    ekv_cache_put_ex(c, ns1, "missing", 7, NULL, 0, 0, 1, 5000);
    ekv_cache_put_ex(c, ns1, "k", 1, "v1", 2, 0, 0, 7000);
    ekv_cache_entry_t *n = ekv_cache_get(c, ns1, "missing", 7, 1);
    cr_assert_not_null(n);
    cr_assert_eq(n->negative, 1);
    cr_assert_eq(n->value_len, 0);
    cr_assert_eq(n->fresh_until_ms, 5000);
    ekv_cache_entry_release(n);
    ekv_cache_entry_t *v = ekv_cache_get(c, ns1, "k", 1, 1);
    cr_assert_eq(v->negative, 0);
    cr_assert_eq(v->fresh_until_ms, 7000);
    ekv_cache_entry_release(v);
    /* a plain put (standalone) has no TTL and is never negative */
    ekv_cache_put(c, ns1, "missing", 7, "now", 3, 0);
    n = ekv_cache_get(c, ns1, "missing", 7, 1);
    cr_assert_eq(n->negative, 0);
    cr_assert_eq(n->fresh_until_ms, 0);
    cr_assert_eq(memcmp(n->value, "now", 3), 0);
    ekv_cache_entry_release(n);
    /* clear drops everything */
    ekv_cache_clear(c);
    cr_assert_null(ekv_cache_get(c, ns1, "k", 1, 1));
    cr_assert_null(ekv_cache_get(c, ns1, "missing", 7, 1));
    ekv_cache_free(c);
}
