/*
 * envelope_decode.c - micro-benchmark: decoding kvmeta envelopes with storage/mpread.c (the
 * production ekv_envelope_decode) against msgpack-c's unpacker, held to the same rules.
 *
 * Not part of the ctest suite; build and run as bench/micro/README.md says.
 *
 *   envelope_decode [millions] [runs]   differential check, then ns/decode (median of runs)
 *   envelope_decode --hostile           what each decoder does with hostile container headers
 *
 * Decoders compared, all with exactly the acceptance rules of envelope.h for version 1 (array
 * of 5, version 1, expiration int >= 0, metadata nil|str|bin, value_len uint, flags <=
 * UINT32_MAX, no trailing bytes, no truncation; the version-2 form with an inline value came
 * later and is not part of this comparison: inputs that decode as version 2 are skipped):
 *   mpread      ekv_envelope_decode (storage/envelope.c + storage/mpread.c), as shipped
 *   mpc_next    msgpack_unpack_next() into one msgpack_unpacked reused for every decode
 *   mpc_zone    msgpack_unpack() into one msgpack_zone reused (msgpack_zone_clear) for every
 *               decode: the cheapest msgpack-c path, but in edgekv it would need one zone per
 *               reader thread (decode runs on the reader pool)
 *
 * Each shape is a "list page": 1000 distinct envelopes (different expirations, value sizes
 * and metadata bytes) laid out back to back and decoded round-robin, as kv_list does with
 * the values of one RocksDB iterator page. The check phase first runs every decoder over
 * every envelope, every truncation of them, a trailing byte, hand-made off-spec records and
 * 400k random inputs, and refuses to time anything if two decoders disagree.
 */
#include "common/buf.h"
#include "common/errors.h"
#include "storage/envelope.h"

#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE       1000 /* envelopes per shape: one list page */
#define MAX_RUNS   15
#define N_DECODERS 3

/* ---- msgpack-c decoders, same rules as ekv_envelope_decode ---- */

static int check_object(const msgpack_object *o, ekv_envelope_t *out)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1)
        return EKV_ESTORAGE;
    const msgpack_object *f = o->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 != EKV_ENVELOPE_VERSION ||
        o->via.array.size != 5)
        return EKV_ESTORAGE;
    if (f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 > (uint64_t)INT64_MAX)
        return EKV_ESTORAGE; /* a NEGATIVE_INTEGER is a negative expiration */
    out->expiration = (int64_t)f[1].via.u64;
    switch (f[2].type) {
    case MSGPACK_OBJECT_NIL:
        out->metadata = NULL;
        out->metadata_len = 0;
        break;
    case MSGPACK_OBJECT_STR:
        out->metadata = f[2].via.str.ptr;
        out->metadata_len = f[2].via.str.size;
        break;
    case MSGPACK_OBJECT_BIN:
        out->metadata = f[2].via.bin.ptr;
        out->metadata_len = f[2].via.bin.size;
        break;
    default:
        return EKV_ESTORAGE;
    }
    if (out->metadata_len == 0)
        out->metadata = NULL;
    if (f[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        f[4].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[4].via.u64 > UINT32_MAX)
        return EKV_ESTORAGE;
    out->value_len = f[3].via.u64;
    out->flags = (uint32_t)f[4].via.u64;
    return 0;
}

static msgpack_unpacked g_unpacked; /* reused by mpc_next */
static msgpack_zone g_zone;         /* reused by mpc_zone */

static int decode_mpc_next(const char *buf, size_t len, ekv_envelope_t *out)
{
    size_t off = 0;
    if (!buf || msgpack_unpack_next(&g_unpacked, buf, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        return EKV_ESTORAGE;
    return check_object(&g_unpacked.data, out);
}

static int decode_mpc_zone(const char *buf, size_t len, ekv_envelope_t *out)
{
    msgpack_object o;
    size_t off = 0;
    int rc = EKV_ESTORAGE;
    /* SUCCESS only when the object ends exactly at len (EXTRA_BYTES otherwise) */
    if (buf && msgpack_unpack(buf, len, &off, &g_zone, &o) == MSGPACK_UNPACK_SUCCESS)
        rc = check_object(&o, out);
    msgpack_zone_clear(&g_zone);
    return rc;
}

typedef int (*decode_fn)(const char *buf, size_t len, ekv_envelope_t *out);

static const struct {
    const char *name;
    decode_fn fn;
} decoders[N_DECODERS] = {
    {"mpread", ekv_envelope_decode},
    {"mpc_next", decode_mpc_next},
    {"mpc_zone", decode_mpc_zone},
};

/* ---- test data ---- */

typedef struct {
    const char *name;
    ekv_buf_t arena;    /* PAGE envelopes back to back */
    size_t off[PAGE];   /* start of each */
    size_t len[PAGE];   /* and its length */
    size_t meta_target; /* metadata size in bytes, about */
} shape_t;

/* Compact JSON of about `target` bytes, different for each i. */
static void make_metadata(ekv_buf_t *m, size_t target, unsigned i)
{
    ekv_buf_reset(m);
    ekv_buf_appendf(m,
                    "{\"contentType\":\"application/json\",\"etag\":\"W/\\\"%08x\\\"\","
                    "\"owner\":\"user-%u\",\"v\":%u",
                    i * 2654435761u, i % 977, i % 7);
    if (m->len + 10 < target) {
        ekv_buf_appends(m, ",\"pad\":\"");
        while (m->len + 2 < target)
            ekv_buf_append(m, &"abcdefghijklmnopqrstuvwxyz0123456789"[(m->len + i) % 36], 1);
        ekv_buf_appends(m, "\"");
    }
    ekv_buf_appends(m, "}");
}

static void make_shape(shape_t *s, const char *name, size_t meta_target)
{
    ekv_buf_t m;
    ekv_buf_init(&m, 0);
    ekv_buf_init(&s->arena, 0);
    s->name = name;
    s->meta_target = meta_target;
    for (unsigned i = 0; i < PAGE; i++) {
        ekv_envelope_t e = {.value_len = 16 + (i * 37u) % 4096};
        /* a third never expire, the rest over the next year */
        e.expiration = i % 3 == 0 ? 0 : 1798761600 + (int64_t)(i * 31337u % 31536000u);
        if (meta_target) {
            make_metadata(&m, meta_target, i);
            e.metadata = m.data;
            e.metadata_len = m.len;
        }
        s->off[i] = s->arena.len;
        if (ekv_envelope_encode(&e, &s->arena) != 0) {
            fprintf(stderr, "encode failed\n");
            exit(1);
        }
        s->len[i] = s->arena.len - s->off[i];
    }
    ekv_buf_deinit(&m);
}

/* ---- differential check ---- */

static unsigned long n_checked;

static int same_result(int ra, const ekv_envelope_t *a, int rb, const ekv_envelope_t *b)
{
    if (ra != rb)
        return 0;
    if (ra != 0)
        return 1;
    return a->expiration == b->expiration && a->metadata == b->metadata &&
           a->metadata_len == b->metadata_len && a->value_len == b->value_len &&
           a->flags == b->flags;
}

/* Every decoder must give what mpread gives for buf[0..len). */
static void check_one(const char *buf, size_t len, const char *what)
{
    ekv_envelope_t ref, got;
    memset(&ref, 0, sizeof(ref));
    int rref = ekv_envelope_decode(buf, len, &ref);
    if (rref == 0 && ref.has_value)
        return; /* a version-2 envelope: the msgpack-c decoders know version 1 only */
    for (int d = 1; d < N_DECODERS; d++) {
        memset(&got, 0, sizeof(got));
        int r = decoders[d].fn(buf, len, &got);
        if (!same_result(rref, &ref, r, &got)) {
            fprintf(stderr, "DISAGREE on %s (len %zu): mpread %d, %s %d\n", what, len, rref,
                    decoders[d].name, r);
            exit(1);
        }
    }
    n_checked++;
}

static void check_all(shape_t *shapes, size_t nshapes)
{
    char tmp[4096];
    for (size_t si = 0; si < nshapes; si++) {
        shape_t *s = &shapes[si];
        for (size_t i = 0; i < PAGE; i++) {
            const char *e = s->arena.data + s->off[i];
            size_t n = s->len[i];
            check_one(e, n, "a valid envelope");
            for (size_t k = 0; k < n; k++) {
                /* copy the prefix so a read past it is a sanitizer error, not luck */
                char *p = malloc(k ? k : 1);
                memcpy(p, e, k);
                check_one(p, k, "a truncation");
                free(p);
            }
            if (n + 1 <= sizeof(tmp)) {
                memcpy(tmp, e, n);
                tmp[n] = 0;
                check_one(tmp, n + 1, "a trailing byte");
            }
        }
    }
    static const struct {
        const char *b;
        size_t n;
    } offspec[] = {
        {"\x95\x02\x00\xc0\x00\x00", 6},                                  /* version 2 */
        {"\x95\x00\x00\xc0\x00\x00", 6},                                  /* version 0 */
        {"\x94\x01\x00\xc0\x00", 5},                                      /* 4 fields */
        {"\x96\x01\x00\xc0\x00\x00\xc0", 7},                              /* 6 fields */
        {"\x95\x01\xfb\xc0\x00\x00", 6},                                  /* negative expiration */
        {"\x95\x01\x00\xc3\x00\x00", 6},                                  /* metadata is true */
        {"\x95\x01\x00\xc0\x00\xcf\x00\x00\x00\x01\x00\x00\x00\x00", 14}, /* flags > 32 bit */
        {"\x95\x01\xcf\x80\x00\x00\x00\x00\x00\x00\x00\xc0\x00\x00", 14}, /* exp > INT64_MAX */
        {"\x95\x01\x00\xa2{}\x00\x00", 8},                                /* str metadata */
        {"\x95\x01\x00\xa0\x00\x00", 6},                                  /* empty str */
        {"\x95\xcc\x01\xd3\x00\x00\x00\x00\x00\x00\x04\xd2\xc0"
         "\xcf\x00\x00\x00\x00\x00\x00\x00\x0a\xce\x00\x00\x00\x03",
         27},                                             /* non-minimal widths */
        {"\xdc\x00\x05\x01\x00\xc0\x00\x00", 8},          /* array16 of 5 */
        {"\xdd\x00\x00\x00\x05\x01\x00\xc0\x00\x00", 10}, /* array32 of 5 */
        {"\x81\x01\x02", 3},                              /* a map */
        {"\x95\x01\x00\xc6\xff\xff\xff\xff\x00\x00", 10}, /* bin longer than input */
        {"\xdd\xff\xff\xff\xff\x01", 6},                  /* array32 of 2^32-1 */
        {"\x95\x01\x00\xca\x00\x00\x00\x00\x00\x00", 10}, /* metadata is a float */
        {"\x95\x01\x00\xd4\x01\x00\x00\x00", 8},          /* metadata is a fixext */
        {"\x95\x01\x00\x91\xc0\x00\x00", 7},              /* metadata is an array */
        {"\x95\x01\x00\xc1\x00\x00", 6},                  /* reserved byte 0xc1 */
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(offspec) / sizeof(offspec[0]); i++)
        check_one(offspec[i].b, offspec[i].n, "an off-spec record");
    check_one(NULL, 0, "NULL");

    /* random bytes; half of them start like an envelope to get past the header. Container
     * headers in the random part are capped at 16-bit counts here: 32-bit counts are the
     * --hostile probe's subject (msgpack-c allocates for them before reading further). */
    unsigned seed = 12345;
    for (int round = 0; round < 400000; round++) {
        char buf[64];
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t i = 0; i < n; i++) {
            buf[i] = (char)(rand_r(&seed) & 0xff);
            if ((unsigned char)buf[i] == 0xdd || (unsigned char)buf[i] == 0xdf)
                buf[i] = (char)0xdc;
        }
        if (round & 1 && n >= 2) {
            buf[0] = (char)0x95;
            buf[1] = 0x01;
        }
        check_one(buf, n, "random bytes");
    }
}

/* ---- timing ---- */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

static double time_decoder(decode_fn fn, const shape_t *s, long iters)
{
    uint64_t acc = 0;
    double t0 = now_ns();
    for (long it = 0; it < iters;) {
        for (size_t i = 0; i < PAGE && it < iters; i++, it++) {
            ekv_envelope_t e;
            if (fn(s->arena.data + s->off[i], s->len[i], &e) != 0) {
                fprintf(stderr, "decode failed in the timed loop\n");
                exit(1);
            }
            acc += (uint64_t)e.expiration + e.value_len + e.metadata_len;
        }
    }
    double t = now_ns() - t0;
    sink += acc;
    return t / (double)iters;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- hostile container headers ---- */

static long vm_peak_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmPeak: %ld kB", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* Each case in a child process, so VmPeak growth belongs to that one decode. */
static void hostile(void)
{
    static const struct {
        const char *b;
        size_t n;
        const char *what;
    } cases[] = {
        {"\xdd\xff\xff\xff\xff\x01", 6, "top-level array32, count 2^32-1"},
        {"\x95\x01\x00\xdd\x00\x10\x00\x00\x00\x00", 10, "metadata = array32, count 2^20"},
        {"\x95\x01\x00\xdd\x01\x00\x00\x00\x00\x00", 10, "metadata = array32, count 2^24"},
        {"\x95\x01\x00\xdf\x01\x00\x00\x00\x00\x00", 10, "metadata = map32, count 2^24"},
        {"\x95\x01\x00\xdd\xff\xff\xff\xff\x00\x00", 10, "metadata = array32, count 2^32-1"},
    };
    printf("%-34s %-9s %6s %14s %12s\n", "input", "decoder", "result", "VmPeak +KiB", "ns/decode");
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (int d = 0; d < N_DECODERS; d++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                ekv_envelope_t e;
                long before = vm_peak_kib();
                int r = decoders[d].fn(cases[c].b, cases[c].n, &e);
                long grew = vm_peak_kib() - before;
                /* up to 1000 more decodes, or 200 ms (a sanitizer build is slow here) */
                double t0 = now_ns(), t = 0;
                int i = 0;
                while (i < 1000 && t < 2e8) {
                    r |= decoders[d].fn(cases[c].b, cases[c].n, &e);
                    i++;
                    t = now_ns() - t0;
                }
                double ns = t / i;
                printf("%-34s %-9s %6d %14ld %12.0f\n", cases[c].what, decoders[d].name, r, grew,
                       ns);
                fflush(stdout);
                _exit(0);
            }
            int st;
            waitpid(pid, &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                printf("%-34s %-9s  child died (status 0x%x)\n", cases[c].what, decoders[d].name,
                       st);
        }
    }
}

int main(int argc, char **argv)
{
    msgpack_unpacked_init(&g_unpacked);
    msgpack_zone_init(&g_zone, MSGPACK_ZONE_CHUNK_SIZE);
    if (argc > 1 && strcmp(argv[1], "--hostile") == 0) {
        hostile();
        return 0;
    }
    double millions = argc > 1 ? strtod(argv[1], NULL) : 2;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (millions <= 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: %s [millions > 0] [runs 1..%d] | --hostile\n", argv[0], MAX_RUNS);
        return 2;
    }
    long iters = (long)(millions * 1e6);

    shape_t shapes[3];
    make_shape(&shapes[0], "no metadata", 0);
    make_shape(&shapes[1], "100 B metadata", 100);
    make_shape(&shapes[2], "1 KiB metadata", 1024);

    check_all(shapes, 3);
    printf("check: %lu inputs, all %d decoders agree\n", n_checked, N_DECODERS);
    printf("timing: %ld decodes per run, %d runs (interleaved), median ns/decode\n\n", iters, runs);

    printf("%-15s %7s %10s %10s %10s %10s %10s\n", "shape", "bytes", "mpread", "mpc_next",
           "mpc_zone", "next/mpr", "zone/mpr");
    for (int si = 0; si < 3; si++) {
        const shape_t *s = &shapes[si];
        double ns[N_DECODERS][MAX_RUNS], med[N_DECODERS];
        for (int d = 0; d < N_DECODERS; d++)
            time_decoder(decoders[d].fn, s, iters / 10 + 1); /* warm-up */
        for (int r = 0; r < runs; r++)
            for (int d = 0; d < N_DECODERS; d++)
                ns[d][r] = time_decoder(decoders[d].fn, s, iters);
        for (int d = 0; d < N_DECODERS; d++)
            med[d] = median(ns[d], runs);
        printf("%-15s %7zu %10.1f %10.1f %10.1f %9.2fx %9.2fx\n", s->name, s->arena.len / PAGE,
               med[0], med[1], med[2], med[1] / med[0], med[2] / med[0]);
    }
    for (int si = 0; si < 3; si++)
        ekv_buf_deinit(&shapes[si].arena);
    msgpack_unpacked_destroy(&g_unpacked);
    msgpack_zone_destroy(&g_zone);
    return 0;
}
