/*
 * mpread.h - a strict, bounds-checked MessagePack reader for the small fixed records storage/
 * decodes (kvmeta envelopes, catalog records). Pure, no allocation: str/bin results point into
 * the input buffer.
 *
 * Records are *written* with msgpack-c's packer (ekv_mp_packer_init), so the wire format is
 * the library's; this reader only has to accept the standard encodings of the types we use
 * (any int width, nil, str, bin, array) and reject everything else. Every read checks the
 * remaining length first, so garbage input yields -1, never an out-of-bounds read, and a
 * declared length is never trusted beyond the bytes that are there.
 *
 * Why not msgpack-c's unpacker for decoding too (measured, bench/micro/envelope_decode.c,
 * msgpack-c 4.0.0, gcc 12 -O2, 2-core shared EPYC, 2026-12-04; 1000 distinct envelopes decoded
 * round-robin, 5 million decodes per run, median of 5 runs; three repetitions of the whole
 * benchmark):
 *
 *   ns/decode            no metadata   100 B metadata   1 KiB metadata
 *   mpread (this file)       24.2           22.6             22.1
 *   msgpack_unpack, reused   54.3           54.0             53.3     2.2-2.6x slower
 *     zone (zone_clear)
 *   msgpack_unpack_next,     75.0           73.1             71.0     2.6-3.2x slower
 *     reused msgpack_unpacked
 *
 * - Speed: 2.2x at best, and the best case needs one zone per reader thread. A reused
 *   msgpack_unpacked does not reuse its zone: msgpack_unpack_next frees it and makes a new
 *   one, 2 mallocs + 2 frees (8 KiB) per decode. A list page decodes up to 1000 envelopes:
 *   ~23 us here against ~53-73 us.
 * - Bounds: msgpack-c allocates count x 32 bytes (count x 64 for a map) for a declared
 *   array/map length before it reads one element, and its C API has no limit (only the C++
 *   API has unpack_limit). A 10-byte record with an array32 header in the metadata slot made
 *   it request 32 MiB (array32 of 2^20) to 1 GiB (map32 of 2^24), 35-105 us per decode instead of
 * 10 ns; with count 2^32-1 it asks for 128 GiB, which fails (NOMEM) in a release build and aborts
 *   an ASan build ("allocator is out of memory"). Swapped into envelope.c, it failed three
 *   tests of tests/unit/storage/test_envelope.c under ASan (two of them pre-existing).
 *   Making it bounded means walking the record first, which is this reader's whole job.
 * Apart from that the two agree: the benchmark first checks 1.5 million inputs (every
 * truncation, trailing bytes, off-spec records, random bytes) and every answer is the same
 * (for version-1 envelopes, the layout of the time).
 */
#ifndef EKV_STORAGE_MPREAD_H
#define EKV_STORAGE_MPREAD_H

#include "common/buf.h"

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} ekv_mp_reader_t;

void ekv_mp_reader_init(ekv_mp_reader_t *r, const void *buf, size_t len);
/* Each returns 0, or -1 on a type mismatch or truncated input (the reader is then unusable). */
int ekv_mp_read_array(ekv_mp_reader_t *r, uint32_t *n);
/* Any integer encoding whose value fits in int64 / uint64. */
int ekv_mp_read_int(ekv_mp_reader_t *r, int64_t *v);
int ekv_mp_read_uint(ekv_mp_reader_t *r, uint64_t *v);
/* str or bin; *p points into the buffer. nil is accepted only when nil_ok (then *p = NULL,
 * *len = 0). */
int ekv_mp_read_bytes(ekv_mp_reader_t *r, int nil_ok, const char **p, size_t *len);
/* A str/bin of at most cap-1 bytes without NUL bytes, copied NUL-terminated into out. */
int ekv_mp_read_cstr(ekv_mp_reader_t *r, char *out, size_t cap);
/* 1 when the whole input was consumed. */
int ekv_mp_at_end(const ekv_mp_reader_t *r);

/* A msgpack-c packer that appends to b (errors are latched in *err: 0 or ekv_err_t). */
typedef struct {
    msgpack_packer pk;
    ekv_buf_t *b;
    int err;
} ekv_mp_packer_t;

void ekv_mp_packer_init(ekv_mp_packer_t *p, ekv_buf_t *b);

#endif
