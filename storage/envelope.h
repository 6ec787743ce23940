/*
 * envelope.h - the kvmeta value: a small, versioned MessagePack record describing one key.
 *
 * Wire form (version 1), a msgpack array of exactly 5 elements:
 *
 *   [ 1,            uint   envelope version
 *     expiration,   int    unix seconds, 0 = never
 *     metadata,     bin | nil   JSON text (str is accepted on decode too)
 *     value_len,    uint   byte length of the value in the kvval CF
 *     flags ]       uint32 reserved, written as 0, preserved on decode
 *
 * Lists read only kvmeta, so everything a list item needs (name from the key, expiration,
 * metadata) is here and the value is never touched. A future layout bumps the version; a
 * decoder rejects versions it does not know instead of guessing. Pure functions.
 */
#ifndef EKV_STORAGE_ENVELOPE_H
#define EKV_STORAGE_ENVELOPE_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_ENVELOPE_VERSION 1
/* Fixed part of an encoded envelope, upper bound (array + version + 3 ints + bin header). */
#define EKV_ENVELOPE_OVERHEAD 40

typedef struct {
    int64_t expiration;
    const char *metadata; /* NULL or metadata_len == 0: no metadata. After decode: points into
                             the decoded buffer (valid as long as it is). */
    size_t metadata_len;
    uint64_t value_len;
    uint32_t flags;
} ekv_envelope_t;

/* Append the encoding of e to out. 0, EKV_ENOMEM or EKV_ETOO_LARGE (out's cap). */
int ekv_envelope_encode(const ekv_envelope_t *e, ekv_buf_t *out);
/* Decode buf[0..len). 0, or EKV_ESTORAGE for anything but a well-formed version-1 envelope
 * (unknown version, wrong arity or types, negative expiration, flags > 32 bits, trailing
 * bytes, truncation). */
int ekv_envelope_decode(const char *buf, size_t len, ekv_envelope_t *out);

#endif
