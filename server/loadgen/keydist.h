/*
 * keydist.h - which key the next operation touches (pure; a seeded PRNG per chooser, so a
 * run is repeatable with --seed).
 *
 *   uniform          every key of [0, n) equally often
 *   zipf:THETA       YCSB's Zipfian (Gray et al.), 0 < THETA < 1 (0.99 is YCSB's), with the
 *                    ranks scattered over the keyspace by a hash (YCSB's "scrambled"): the
 *                    hot keys are not neighbours
 *   latest           Zipfian over recency: the most recently inserted keys are the hottest
 *                    (YCSB D); inserts move the newest key
 *   hotspot:F:P      a fraction P of the operations goes to the first fraction F of the keys
 *                    (uniform within each part), e.g. hotspot:0.2:0.8
 *
 * Zipf needs zeta(n, theta): O(n) once at set-up (about 30 ms per 10 million keys).
 */
#ifndef EKV_LOADGEN_KEYDIST_H
#define EKV_LOADGEN_KEYDIST_H

#include <stdint.h>

typedef enum { EKV_DIST_UNIFORM, EKV_DIST_ZIPF, EKV_DIST_LATEST, EKV_DIST_HOTSPOT } ekv_dist_kind_t;

typedef struct {
    ekv_dist_kind_t kind;
    double theta;             /* zipf, latest */
    double hot_keys, hot_ops; /* hotspot */
} ekv_dist_spec_t;

/* "uniform" | "zipf:0.99" | "zipf" (0.99) | "latest" | "hotspot:0.2:0.8". 0 or -1. */
int ekv_dist_parse(const char *s, ekv_dist_spec_t *out);

/* splitmix64: a small, fast, well-mixed PRNG. */
typedef struct {
    uint64_t s;
} ekv_rng_t;
void ekv_rng_seed(ekv_rng_t *r, uint64_t seed);
uint64_t ekv_rng_next(ekv_rng_t *r);
double ekv_rng_unit(ekv_rng_t *r); /* [0, 1) */

typedef struct {
    ekv_dist_spec_t spec;
    uint64_t n;      /* keys [0, n) */
    uint64_t newest; /* latest: keys [0, newest] exist (insert moves it) */
    double zetan, zeta2, alpha, eta;
    ekv_rng_t rng;
} ekv_keydist_t;

/* n >= 1. 0 or -1 (bad parameters). */
int ekv_keydist_init(ekv_keydist_t *d, const ekv_dist_spec_t *spec, uint64_t n, uint64_t seed);
uint64_t ekv_keydist_next(ekv_keydist_t *d);
/* latest: a new key was inserted (returns its index, n grows). */
uint64_t ekv_keydist_insert(ekv_keydist_t *d);

#endif
