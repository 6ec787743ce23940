/*
 * mpread.h - a strict, bounds-checked MessagePack reader for the small fixed records storage/
 * decodes (kvmeta envelopes, catalog records). Pure, no allocation: str/bin results point into
 * the input buffer.
 *
 * Why not msgpack-c's unpacker: it allocates a zone per object, and envelopes are decoded
 * once per key on the list path. Records are still *written* with msgpack-c's packer
 * (ekv_mp_packer_init), so the wire format is the library's; this reader only has to accept
 * the standard encodings of the types we use (any int width, nil, str, bin, array) and reject
 * everything else. Every read checks the remaining length first, so garbage input yields -1,
 * never an out-of-bounds read.
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
