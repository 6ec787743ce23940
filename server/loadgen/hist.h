/*
 * hist.h - a log-linear latency histogram in the manner of HdrHistogram, written for
 * edgekv-bench (pure: no I/O, no threads, no clock).
 *
 * VALUES are non-negative integers (edgekv-bench records microseconds) from 0 to `highest`
 * (at most 2^40). Values above `highest` are counted at `highest` and in `clamped`.
 *
 * LAYOUT. 2,048 linear sub-buckets per power of two: values below 2,048 are exact; above,
 * a value v is kept in a slot of width 2^k with 1,024 <= v >> k < 2,048, so any value read
 * back is within 1/1,024 (< 0.1 %) of what was recorded: 3 significant digits. For 1 us ..
 * 60 s that is 17,192 slots of 8 bytes (134 KiB), allocated once: memory never grows with
 * the number of values.
 *
 * PERCENTILES. ekv_hist_value_at(h, q) is the largest value of the slot that holds the
 * ceil(q / 100 * count)-th smallest recorded value (at least 1), bounded by the true
 * minimum and maximum, which are kept exactly. So for exact values (< 2,048) the result is
 * the exact order statistic, and otherwise it is within the slot's 0.1 %.
 *
 * MERGE adds another histogram of the same `highest` slot by slot: a per-thread or
 * per-second histogram merged into a total gives exactly the histogram of all values.
 */
#ifndef EKV_LOADGEN_HIST_H
#define EKV_LOADGEN_HIST_H

#include <stddef.h>
#include <stdint.h>

#define EKV_HIST_SUB_BITS 11 /* 2,048 sub-buckets */

typedef struct {
    uint64_t highest; /* largest value kept (larger ones are clamped to it) */
    uint64_t *counts;
    size_t nslots;
    uint64_t total;   /* values recorded */
    uint64_t clamped; /* of which above highest */
    uint64_t min, max;
    double sum;
} ekv_hist_t;

/* highest >= 2048 and <= 2^40. 0, or -1 (bad highest, out of memory). */
int ekv_hist_init(ekv_hist_t *h, uint64_t highest);
void ekv_hist_free(ekv_hist_t *h);
void ekv_hist_reset(ekv_hist_t *h);
void ekv_hist_record(ekv_hist_t *h, uint64_t v);
void ekv_hist_record_n(ekv_hist_t *h, uint64_t v, uint64_t n);
/* dst += src. 0, or -1 when their highest differ (nothing changed). */
int ekv_hist_merge(ekv_hist_t *dst, const ekv_hist_t *src);
/* q in [0, 100]; 0 when empty. */
uint64_t ekv_hist_value_at(const ekv_hist_t *h, double q);
double ekv_hist_mean(const ekv_hist_t *h);
/* The slot holding v: [lo, hi] (both recorded as the same slot). */
void ekv_hist_slot_range(const ekv_hist_t *h, uint64_t v, uint64_t *lo, uint64_t *hi);

/* Iterate the non-empty slots in value order: *value is the slot's largest value, *count
 * its count; returns 0 at the end. *it starts at 0. */
int ekv_hist_next(const ekv_hist_t *h, size_t *it, uint64_t *value, uint64_t *count);

#endif
