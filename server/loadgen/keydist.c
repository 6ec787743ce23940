/*
 * keydist.c - key choosers (see keydist.h). Zipf follows YCSB's ZipfianGenerator
 * (Gray et al., "Quickly generating billion-record synthetic databases", SIGMOD 1994).
 */
#include "server/loadgen/keydist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ekv_rng_seed(ekv_rng_t *r, uint64_t seed)
{
    r->s = seed ^ 0x9e3779b97f4a7c15ull;
}

uint64_t ekv_rng_next(ekv_rng_t *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double ekv_rng_unit(ekv_rng_t *r)
{
    return (double)(ekv_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int ekv_dist_parse(const char *s, ekv_dist_spec_t *out)
{
    memset(out, 0, sizeof(*out));
    char *end = NULL;
    if (!strcmp(s, "uniform")) {
        out->kind = EKV_DIST_UNIFORM;
        return 0;
    }
    if (!strcmp(s, "latest") || !strncmp(s, "latest:", 7)) {
        out->kind = EKV_DIST_LATEST;
        out->theta = s[6] ? strtod(s + 7, &end) : 0.99;
        return (s[6] && *end) || !(out->theta > 0 && out->theta < 1) ? -1 : 0;
    }
    if (!strcmp(s, "zipf") || !strncmp(s, "zipf:", 5)) {
        out->kind = EKV_DIST_ZIPF;
        out->theta = s[4] ? strtod(s + 5, &end) : 0.99;
        return (s[4] && *end) || !(out->theta > 0 && out->theta < 1) ? -1 : 0;
    }
    if (!strncmp(s, "hotspot:", 8)) {
        out->kind = EKV_DIST_HOTSPOT;
        out->hot_keys = strtod(s + 8, &end);
        if (*end != ':')
            return -1;
        out->hot_ops = strtod(end + 1, &end);
        return *end || !(out->hot_keys > 0 && out->hot_keys < 1) ||
                       !(out->hot_ops >= 0 && out->hot_ops <= 1)
                   ? -1
                   : 0;
    }
    return -1;
}

static double zeta(uint64_t n, double theta)
{
    double sum = 0;
    for (uint64_t i = 1; i <= n; i++)
        sum += 1.0 / pow((double)i, theta);
    return sum;
}

int ekv_keydist_init(ekv_keydist_t *d, const ekv_dist_spec_t *spec, uint64_t n, uint64_t seed)
{
    memset(d, 0, sizeof(*d));
    if (n < 1)
        return -1;
    d->spec = *spec;
    d->n = n;
    d->newest = n - 1;
    ekv_rng_seed(&d->rng, seed);
    if (spec->kind == EKV_DIST_ZIPF || spec->kind == EKV_DIST_LATEST) {
        double t = spec->theta;
        d->zetan = zeta(n, t);
        d->zeta2 = zeta(2, t);
        d->alpha = 1.0 / (1.0 - t);
        d->eta = (1 - pow(2.0 / (double)n, 1 - t)) / (1 - d->zeta2 / d->zetan);
    }
    return 0;
}

/* A Zipfian rank in [0, n): 0 is the most popular. */
static uint64_t zipf_rank(ekv_keydist_t *d, uint64_t n)
{
    double u = ekv_rng_unit(&d->rng);
    double uz = u * d->zetan;
    if (uz < 1.0)
        return 0;
    if (uz < 1.0 + pow(0.5, d->spec.theta))
        return n > 1 ? 1 : 0;
    uint64_t r = (uint64_t)((double)n * pow(d->eta * u - d->eta + 1, d->alpha));
    return r < n ? r : n - 1;
}

/* FNV-1a of the rank: spreads popular ranks over the keyspace (YCSB's scrambling). */
static uint64_t scramble(uint64_t x)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < 8; i++) {
        h ^= (x >> (i * 8)) & 0xff;
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t ekv_keydist_next(ekv_keydist_t *d)
{
    switch (d->spec.kind) {
    case EKV_DIST_ZIPF:
        return scramble(zipf_rank(d, d->n)) % d->n;
    case EKV_DIST_LATEST: {
        uint64_t live = d->newest + 1;
        uint64_t r = zipf_rank(d, d->n);
        return r < live ? d->newest - r : d->newest - r % live;
    }
    case EKV_DIST_HOTSPOT: {
        uint64_t hot = (uint64_t)((double)d->n * d->spec.hot_keys);
        if (hot < 1)
            hot = 1;
        if (hot >= d->n || ekv_rng_unit(&d->rng) < d->spec.hot_ops)
            return ekv_rng_next(&d->rng) % hot;
        return hot + ekv_rng_next(&d->rng) % (d->n - hot);
    }
    default:
        return ekv_rng_next(&d->rng) % d->n;
    }
}

uint64_t ekv_keydist_insert(ekv_keydist_t *d)
{
    d->newest++;
    if (d->newest >= d->n)
        d->n = d->newest + 1; /* zeta stays that of the initial n: a close approximation */
    return d->newest;
}
