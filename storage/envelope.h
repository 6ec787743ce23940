/*
 * envelope.h - the kvmeta value: a small, versioned MessagePack record describing one key.
 *
 * Wire form, a msgpack array:
 *
 *   [ version,      uint   1 or 2
 *     expiration,   int    unix seconds, 0 = never
 *     metadata,     bin | nil   JSON text (str is accepted on decode too)
 *     value_len,    uint   byte length of the value
 *     flags,        uint32 reserved, written as 0, preserved on decode
 *     value ]       bin    version 2 only: the value itself, exactly value_len bytes
 *
 * Version 1 (5 elements) keeps the value in the kvval CF under the same key. Version 2
 * (6 elements) carries the value inline: the writer uses it for values of at most
 * EKV_ENVELOPE_INLINE_MAX bytes, so a GET of a small value is one point lookup of kvmeta
 * instead of a lookup in each CF (docs/STORAGE.md "One lookup per small value"). Both are
 * decoded; a store written before version 2 reads unchanged.
 *
 * Lists read only kvmeta, so everything a list item needs (name from the key, expiration,
 * metadata) is here; an inline value is skipped over, never copied. A future layout bumps the
 * version; a decoder rejects versions it does not know instead of guessing. Pure functions.
 */
#ifndef EKV_STORAGE_ENVELOPE_H
#define EKV_STORAGE_ENVELOPE_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_ENVELOPE_VERSION        1 /* value in kvval */
#define EKV_ENVELOPE_VERSION_INLINE 2 /* value inline */
/* Largest value written inline (version 2). A list reads kvmeta only, so every inline byte is
 * a byte a list page steps over: 256 keeps a kvmeta entry within a few times its version-1
 * size while covering the small values (counters, flags, short JSON) most GETs ask for. */
#define EKV_ENVELOPE_INLINE_MAX 256
/* Fixed part of an encoded envelope, upper bound (array + version + 3 ints + bin header). */
#define EKV_ENVELOPE_OVERHEAD 40

typedef struct {
    int64_t expiration;
    const char *metadata; /* NULL or metadata_len == 0: no metadata. After decode: points into
                             the decoded buffer (valid as long as it is). */
    size_t metadata_len;
    uint64_t value_len;
    uint32_t flags;
    int has_value;     /* 1: version 2, value[0..value_len) is the value (encode: write it
                          inline; decode: points into the decoded buffer). 0: version 1. */
    const char *value; /* may be NULL when value_len is 0 */
} ekv_envelope_t;

/* Append the encoding of e to out (version 2 when e->has_value, else 1). 0, EKV_ENOMEM or
 * EKV_ETOO_LARGE (out's cap). */
int ekv_envelope_encode(const ekv_envelope_t *e, ekv_buf_t *out);
/* Decode buf[0..len). 0, or EKV_ESTORAGE for anything but a well-formed version-1 or -2
 * envelope (unknown version, wrong arity or types, negative expiration, flags > 32 bits, an
 * inline value whose length is not value_len, trailing bytes, truncation). */
int ekv_envelope_decode(const char *buf, size_t len, ekv_envelope_t *out);

#endif
