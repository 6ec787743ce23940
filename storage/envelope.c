/*
 * envelope.c - kvmeta envelope codec (see envelope.h). Packed with msgpack-c, decoded with the
 * strict zero-allocation reader of mpread.h.
 */
#include "storage/envelope.h"
#include "common/errors.h"
#include "storage/mpread.h"

#define ENVELOPE_V1_FIELDS 5
#define ENVELOPE_V2_FIELDS 6

int ekv_envelope_encode(const ekv_envelope_t *e, ekv_buf_t *out)
{
    ekv_mp_packer_t p;
    ekv_mp_packer_init(&p, out);
    msgpack_pack_array(&p.pk, e->has_value ? ENVELOPE_V2_FIELDS : ENVELOPE_V1_FIELDS);
    msgpack_pack_uint32(&p.pk, e->has_value ? EKV_ENVELOPE_VERSION_INLINE : EKV_ENVELOPE_VERSION);
    msgpack_pack_int64(&p.pk, e->expiration);
    if (e->metadata && e->metadata_len) {
        msgpack_pack_bin(&p.pk, e->metadata_len);
        msgpack_pack_bin_body(&p.pk, e->metadata, e->metadata_len);
    } else {
        msgpack_pack_nil(&p.pk);
    }
    msgpack_pack_uint64(&p.pk, e->value_len);
    msgpack_pack_uint32(&p.pk, e->flags);
    if (e->has_value) {
        msgpack_pack_bin(&p.pk, e->value_len);
        msgpack_pack_bin_body(&p.pk, e->value ? e->value : "", e->value_len);
    }
    return p.err;
}

int ekv_envelope_decode(const char *buf, size_t len, ekv_envelope_t *out)
{
    ekv_mp_reader_t r;
    uint32_t n;
    uint64_t version, flags;
    ekv_mp_reader_init(&r, buf, len);
    if (ekv_mp_read_array(&r, &n) || n < 1 || ekv_mp_read_uint(&r, &version))
        return EKV_ESTORAGE;
    if (!(version == EKV_ENVELOPE_VERSION && n == ENVELOPE_V1_FIELDS) &&
        !(version == EKV_ENVELOPE_VERSION_INLINE && n == ENVELOPE_V2_FIELDS))
        return EKV_ESTORAGE;
    if (ekv_mp_read_int(&r, &out->expiration) || out->expiration < 0)
        return EKV_ESTORAGE;
    if (ekv_mp_read_bytes(&r, 1, &out->metadata, &out->metadata_len))
        return EKV_ESTORAGE;
    if (out->metadata_len == 0)
        out->metadata = NULL;
    if (ekv_mp_read_uint(&r, &out->value_len) || ekv_mp_read_uint(&r, &flags) || flags > UINT32_MAX)
        return EKV_ESTORAGE;
    out->flags = (uint32_t)flags;
    out->has_value = version == EKV_ENVELOPE_VERSION_INLINE;
    out->value = NULL;
    if (out->has_value) {
        size_t vlen;
        if (ekv_mp_read_bytes(&r, 0, &out->value, &vlen) || vlen != out->value_len)
            return EKV_ESTORAGE;
    }
    return ekv_mp_at_end(&r) ? 0 : EKV_ESTORAGE;
}
