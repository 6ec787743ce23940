/*
 * hist.c - the log-linear histogram (see hist.h).
 *
 * Slot of v: magnitude m = max(0, bits(v) - SUB_BITS), sub = v >> m (in [0, 2048) for m = 0,
 * [1024, 2048) above); index = m == 0 ? sub : (m + 1) * 1024 + (sub - 1024). The slot's
 * values are [sub << m, ((sub + 1) << m) - 1].
 */
#include "server/loadgen/hist.h"

#include <stdlib.h>
#include <string.h>

#define SUB_COUNT (1u << EKV_HIST_SUB_BITS)
#define SUB_HALF  (SUB_COUNT / 2)

static unsigned bits_of(uint64_t v)
{
    return v ? 64u - (unsigned)__builtin_clzll(v) : 0;
}

static unsigned magnitude(uint64_t v)
{
    unsigned b = bits_of(v);
    return b > EKV_HIST_SUB_BITS ? b - EKV_HIST_SUB_BITS : 0;
}

static size_t index_of(uint64_t v)
{
    unsigned m = magnitude(v);
    uint64_t sub = v >> m;
    return m == 0 ? (size_t)sub : (size_t)(m + 1) * SUB_HALF + (size_t)(sub - SUB_HALF);
}

/* The largest value of slot i. */
static uint64_t slot_high(size_t i)
{
    if (i < SUB_COUNT)
        return i;
    unsigned m = (unsigned)(i / SUB_HALF) - 1;
    uint64_t sub = (uint64_t)(i % SUB_HALF) + SUB_HALF;
    return ((sub + 1) << m) - 1;
}

int ekv_hist_init(ekv_hist_t *h, uint64_t highest)
{
    memset(h, 0, sizeof(*h));
    if (highest < SUB_COUNT || highest > (1ull << 40))
        return -1;
    h->highest = highest;
    h->nslots = index_of(highest) + 1;
    h->counts = calloc(h->nslots, sizeof(uint64_t));
    if (!h->counts)
        return -1;
    h->min = UINT64_MAX;
    return 0;
}

void ekv_hist_free(ekv_hist_t *h)
{
    free(h->counts);
    h->counts = NULL;
}

void ekv_hist_reset(ekv_hist_t *h)
{
    memset(h->counts, 0, h->nslots * sizeof(uint64_t));
    h->total = h->clamped = h->max = 0;
    h->min = UINT64_MAX;
    h->sum = 0;
}

void ekv_hist_record_n(ekv_hist_t *h, uint64_t v, uint64_t n)
{
    if (!n)
        return;
    if (v > h->highest) {
        v = h->highest;
        h->clamped += n;
    }
    h->counts[index_of(v)] += n;
    h->total += n;
    h->sum += (double)v * (double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void ekv_hist_record(ekv_hist_t *h, uint64_t v)
{
    ekv_hist_record_n(h, v, 1);
}

int ekv_hist_merge(ekv_hist_t *dst, const ekv_hist_t *src)
{
    if (dst->highest != src->highest)
        return -1;
    if (!src->total)
        return 0;
    for (size_t i = 0; i < src->nslots; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->clamped += src->clamped;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    return 0;
}

uint64_t ekv_hist_value_at(const ekv_hist_t *h, double q)
{
    if (!h->total)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 100)
        q = 100;
    /* the rank-th smallest value, rank = ceil(q% of total), at least 1 */
    double r = q / 100.0 * (double)h->total;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r - 1e-9 * r) /* 99.9 / 100 * 1000 is 999.0000000000001 */
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < h->nslots; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = slot_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double ekv_hist_mean(const ekv_hist_t *h)
{
    return h->total ? h->sum / (double)h->total : 0;
}

void ekv_hist_slot_range(const ekv_hist_t *h, uint64_t v, uint64_t *lo, uint64_t *hi)
{
    if (v > h->highest)
        v = h->highest;
    unsigned m = magnitude(v);
    *lo = (v >> m) << m;
    *hi = *lo + (1ull << m) - 1;
}

int ekv_hist_next(const ekv_hist_t *h, size_t *it, uint64_t *value, uint64_t *count)
{
    while (*it < h->nslots && !h->counts[*it])
        (*it)++;
    if (*it >= h->nslots)
        return 0;
    uint64_t v = slot_high(*it);
    *value = v > h->max ? h->max : v;
    *count = h->counts[*it];
    (*it)++;
    return 1;
}
