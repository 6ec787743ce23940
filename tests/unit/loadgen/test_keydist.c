/*
 * test_keydist.c - key choosers (server/loadgen/keydist.h), workload mixes and the SLO parser.
 */
#include "server/loadgen/keydist.h"
#include "server/loadgen/report.h"
#include "server/loadgen/workload.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#define N     1000
#define DRAWS 200000

static void histogram(const char *spec, uint64_t *count, uint64_t seed)
{
    ekv_dist_spec_t s;
    cr_assert(eq(int, ekv_dist_parse(spec, &s), 0), "%s", spec);
    ekv_keydist_t d;
    cr_assert(eq(int, ekv_keydist_init(&d, &s, N, seed), 0));
    memset(count, 0, N * sizeof(*count));
    for (int i = 0; i < DRAWS; i++) {
        uint64_t k = ekv_keydist_next(&d);
        cr_assert(k < N);
        count[k]++;
    }
}

static int desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

Test(keydist, parse)
{
    ekv_dist_spec_t s;
    cr_assert(eq(int, ekv_dist_parse("zipf:0.99", &s), 0));
    cr_assert(eq(int, (int)s.kind, EKV_DIST_ZIPF));
    cr_assert(eq(int, ekv_dist_parse("hotspot:0.2:0.8", &s), 0));
    cr_assert(eq(dbl, s.hot_keys, 0.2));
    cr_assert(eq(dbl, s.hot_ops, 0.8));
    const char *bad[] = {"zipf:1.5", "zipf:x", "hotspot:0.2", "hotspot:1.2:0.5",
                         "normal",   "",       "latest:2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int, ekv_dist_parse(bad[i], &s), -1), "%s", bad[i]);
}

Test(keydist, uniform_is_flat)
{
    static uint64_t c[N];
    histogram("uniform", c, 1);
    for (int i = 0; i < N; i++) /* expected 200 each: within 5 sigma (~71) */
        cr_assert(c[i] > 129 && c[i] < 271, "key %d drawn %lu times", i, (unsigned long)c[i]);
}

Test(keydist, zipf_is_skewed_like_zipf)
{
    static uint64_t c[N];
    histogram("zipf:0.99", c, 2);
    qsort(c, N, sizeof(c[0]), desc);
    /* theory (theta 0.99, n 1000): the top key ~13.4 %, the top 10 ~39 %, the top 100 ~68 % */
    uint64_t top1 = c[0], top10 = 0, top100 = 0;
    for (int i = 0; i < 100; i++) {
        top100 += c[i];
        if (i < 10)
            top10 += c[i];
    }
    cr_assert(top1 > DRAWS * 0.11 && top1 < DRAWS * 0.16, "top key %lu", (unsigned long)top1);
    cr_assert(top10 > DRAWS * 0.34 && top10 < DRAWS * 0.44, "top 10 %lu", (unsigned long)top10);
    cr_assert(top100 > DRAWS * 0.62 && top100 < DRAWS * 0.74, "top 100 %lu", (unsigned long)top100);
}

Test(keydist, hotspot_sends_its_share_to_the_hot_keys)
{
    static uint64_t c[N];
    histogram("hotspot:0.2:0.8", c, 3);
    uint64_t hot = 0;
    for (int i = 0; i < N / 5; i++)
        hot += c[i];
    cr_assert(hot > DRAWS * 0.79 && hot < DRAWS * 0.81, "hot share %lu", (unsigned long)hot);
}

Test(keydist, latest_prefers_the_newest_and_follows_inserts)
{
    ekv_dist_spec_t s;
    cr_assert(eq(int, ekv_dist_parse("latest", &s), 0));
    ekv_keydist_t d;
    cr_assert(eq(int, ekv_keydist_init(&d, &s, N, 4), 0));
    uint64_t newest = 0;
    for (int i = 0; i < 10000; i++)
        newest += ekv_keydist_next(&d) >= N - 10;
    cr_assert(newest > 3000, "newest 10 keys drawn %lu of 10000", (unsigned long)newest);
    cr_assert(eq(u64, ekv_keydist_insert(&d), N));
    int saw_new = 0;
    for (int i = 0; i < 1000; i++)
        saw_new |= ekv_keydist_next(&d) == N;
    cr_assert(saw_new);
}

Test(keydist, same_seed_same_keys)
{
    ekv_dist_spec_t s;
    ekv_dist_parse("zipf:0.9", &s);
    ekv_keydist_t a, b, c;
    ekv_keydist_init(&a, &s, 100000, 9);
    ekv_keydist_init(&b, &s, 100000, 9);
    ekv_keydist_init(&c, &s, 100000, 10);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ekv_keydist_next(&a);
        cr_assert(eq(u64, x, ekv_keydist_next(&b)));
        differ |= x != ekv_keydist_next(&c);
    }
    cr_assert(differ);
}

Test(workload, mixes)
{
    const ekv_workload_t *w = ekv_workload_find("b");
    cr_assert_not_null(w);
    cr_assert_null(ekv_workload_find("z"));
    ekv_rng_t r;
    ekv_rng_seed(&r, 5);
    int reads = 0;
    for (int i = 0; i < 100000; i++)
        reads += ekv_workload_pick(w, &r) == EKV_OP_READ;
    cr_assert(reads > 94500 && reads < 95500, "reads %d", reads);
    char k[EKV_KEY_LEN + 1];
    ekv_key_name(42, k);
    cr_assert(eq(str, k, "k000000000042"));
    size_t lo, hi;
    cr_assert(eq(int, ekv_values_parse("64-4096", &lo, &hi), 0));
    cr_assert(eq(sz, lo, 64));
    cr_assert(eq(sz, hi, 4096));
    cr_assert(eq(int, ekv_values_parse("0", &lo, &hi), -1));
    cr_assert(eq(int, ekv_values_parse("10-5", &lo, &hi), -1));
}

Test(slo, parse_and_terms)
{
    ekv_slo_t s;
    cr_assert(eq(int, ekv_slo_parse("p99<=5ms,errors<=0.1%", &s), 0));
    cr_assert(eq(int, s.n, 2));
    cr_assert(eq(dbl, s.t[0].pct, 99));
    cr_assert(eq(dbl, s.t[0].bound, 5000));
    cr_assert(eq(int, s.t[1].errors, 1));
    cr_assert(ieee_ulp_eq(dbl, s.t[1].bound, 0.001, 4));
    cr_assert(eq(int, ekv_slo_parse("p999<=2s", &s), 0));
    cr_assert(ieee_ulp_eq(dbl, s.t[0].pct, 99.9, 4));
    cr_assert(eq(dbl, s.t[0].bound, 2e6));
    cr_assert(eq(int, ekv_slo_parse("p50<=800us", &s), 0));
    cr_assert(eq(int, ekv_slo_parse("p99.5<=5ms", &s), 0));
    cr_assert(eq(dbl, s.t[0].pct, 99.5));
    cr_assert(eq(dbl, s.t[0].bound, 5000));
    cr_assert(eq(int, ekv_slo_parse("p100<=1s", &s), 0));
    cr_assert(eq(dbl, s.t[0].pct, 100));
    const char *bad[] = {"",          "p99<5ms",  "p99<=5", "p99<=5h",
                         "errors<=1", "q99<=5ms", "p<=1ms", "p99<=ms"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert(eq(int, ekv_slo_parse(bad[i], &s), -1), "%s", bad[i]);
}
