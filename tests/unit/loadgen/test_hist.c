/*
 * test_hist.c - the load tool's histogram (server/loadgen/hist.h) against exact order
 * statistics of known distributions, its precision bound, merge and limits.
 */
#include "server/loadgen/hist.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <math.h>
#include <stdlib.h>

/* The exact q-th percentile of sorted values (the ceil(q% * n)-th smallest, at least 1st). */
static uint64_t exact(const uint64_t *sorted, size_t n, double q)
{
    double r = q / 100.0 * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r - 1e-9 * r)
        rank++;
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static const double QS[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};

Test(hist, exact_below_2048)
{
    ekv_hist_t h;
    cr_assert(eq(int, ekv_hist_init(&h, 60000000), 0));
    /* 1..1000, each once: every percentile is exact */
    for (uint64_t v = 1000; v >= 1; v--)
        ekv_hist_record(&h, v);
    cr_assert(eq(u64, h.total, 1000));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 50), 500));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 99), 990));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 99.9), 999));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 100), 1000));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 0), 1));
    cr_assert(eq(u64, h.min, 1));
    cr_assert(eq(u64, h.max, 1000));
    cr_assert(ieee_ulp_eq(dbl, ekv_hist_mean(&h), 500.5, 4));
    ekv_hist_free(&h);
}

/* Uniform and exponential-ish values over 1 us .. 60 s: every percentile within 0.1 % of
 * the exact order statistic (3 significant digits), never below it. */
Test(hist, three_significant_digits_on_known_distributions)
{
    const size_t n = 200000;
    uint64_t *v = malloc(n * sizeof(*v));
    cr_assert_not_null(v);
    for (int dist = 0; dist < 3; dist++) {
        ekv_hist_t h;
        cr_assert(eq(int, ekv_hist_init(&h, 60000000), 0));
        srand(7 + dist);
        for (size_t i = 0; i < n; i++) {
            double u = (rand() + 1.0) / ((double)RAND_MAX + 2.0);
            uint64_t x = dist == 0   ? 1 + (uint64_t)(u * 59999999.0)   /* uniform */
                         : dist == 1 ? 1 + (uint64_t)(-log(u) * 1000.0) /* exp, mean 1 ms */
                                     : (uint64_t)(100.0 / (u * u));     /* heavy tail */
            if (x > 60000000)
                x = 60000000;
            v[i] = x;
            ekv_hist_record(&h, x);
        }
        qsort(v, n, sizeof(*v), cmp_u64);
        for (size_t k = 0; k < sizeof(QS) / sizeof(QS[0]); k++) {
            uint64_t want = exact(v, n, QS[k]), got = ekv_hist_value_at(&h, QS[k]);
            cr_assert(got >= want, "dist %d q %g: %lu < exact %lu", dist, QS[k], (unsigned long)got,
                      (unsigned long)want);
            int close = (double)(got - want) <= (double)want / 1024.0 + 1e-9;
            cr_assert(close, "dist %d q %g: %lu vs exact %lu", dist, QS[k], (unsigned long)got,
                      (unsigned long)want);
        }
        cr_assert(eq(u64, h.max, v[n - 1]));
        cr_assert(eq(u64, h.min, v[0]));
        ekv_hist_free(&h);
    }
    free(v);
}

Test(hist, slots_are_within_a_thousandth)
{
    ekv_hist_t h;
    cr_assert(eq(int, ekv_hist_init(&h, 60000000), 0));
    for (uint64_t x = 1; x < 60000000; x = x * 3 / 2 + 1) {
        uint64_t lo, hi;
        ekv_hist_slot_range(&h, x, &lo, &hi);
        cr_assert(lo <= x && x <= hi);
        int narrow = (double)(hi - lo) <= (double)lo / 1024.0 + 1e-9 || hi == lo;
        cr_assert(narrow, "x %lu: [%lu, %lu]", (unsigned long)x, (unsigned long)lo,
                  (unsigned long)hi);
    }
    ekv_hist_free(&h);
}

Test(hist, merge_equals_recording_everything_in_one)
{
    ekv_hist_t a, b, all;
    cr_assert(eq(int,
                 ekv_hist_init(&a, 60000000) | ekv_hist_init(&b, 60000000) |
                     ekv_hist_init(&all, 60000000),
                 0));
    srand(42);
    for (int i = 0; i < 50000; i++) {
        uint64_t x = (uint64_t)rand() % 5000000;
        ekv_hist_record(i % 3 ? &a : &b, x);
        ekv_hist_record(&all, x);
    }
    cr_assert(eq(int, ekv_hist_merge(&a, &b), 0));
    cr_assert(eq(u64, a.total, all.total));
    cr_assert(eq(u64, a.min, all.min));
    cr_assert(eq(u64, a.max, all.max));
    for (size_t k = 0; k < sizeof(QS) / sizeof(QS[0]); k++)
        cr_assert(eq(u64, ekv_hist_value_at(&a, QS[k]), ekv_hist_value_at(&all, QS[k])));
    /* different ranges do not merge */
    ekv_hist_t other;
    cr_assert(eq(int, ekv_hist_init(&other, 1000000), 0));
    cr_assert(eq(int, ekv_hist_merge(&other, &a), -1));
    cr_assert(eq(u64, other.total, 0));
    ekv_hist_free(&a);
    ekv_hist_free(&b);
    ekv_hist_free(&all);
    ekv_hist_free(&other);
}

Test(hist, bounds_and_reset)
{
    ekv_hist_t h;
    cr_assert(eq(int, ekv_hist_init(&h, 100), -1)); /* below one magnitude of sub-buckets */
    cr_assert(eq(int, ekv_hist_init(&h, 60000000), 0));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 99), 0)); /* empty */
    ekv_hist_record(&h, 0);
    ekv_hist_record(&h, 90000000); /* above highest: clamped and counted */
    cr_assert(eq(u64, h.clamped, 1));
    cr_assert(eq(u64, h.max, 60000000));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 100), 60000000));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 50), 0));
    ekv_hist_record_n(&h, 1234, 1000000);
    cr_assert(eq(u64, h.total, 1000002));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 50), 1234));
    size_t it = 0, slots = 0;
    uint64_t v, c, sum = 0;
    while (ekv_hist_next(&h, &it, &v, &c)) {
        slots++;
        sum += c;
    }
    cr_assert(eq(sz, slots, 3));
    cr_assert(eq(u64, sum, h.total));
    ekv_hist_reset(&h);
    cr_assert(eq(u64, h.total, 0));
    cr_assert(eq(u64, ekv_hist_value_at(&h, 50), 0));
    /* memory is fixed: 17,192 slots for 1 us .. 60 s */
    cr_assert(eq(sz, h.nslots, 17192));
    ekv_hist_free(&h);
}
