/*
 * frame.c - replication frame codec (see frame.h for the format and the contracts).
 *
 * The decoder has two paths. Fast path: no partial frame is buffered and the fed bytes hold a
 * whole frame, which is unpacked straight from them. Slow path: the frame is split across
 * feeds; its bytes accumulate in `part` (header first, so the length is checked before the
 * body is buffered) until it is whole. Either way at most one frame is ever buffered.
 */
#include "replication/frame.h"

#include "common/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A split frame's buffer larger than this is released after use rather than kept for the
 * next one, so one big snapshot chunk does not pin its memory for the link's lifetime. */
#define KEEP_PART_BYTES (64u * 1024u)

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* protobuf varint: bytes needed, and writer */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Frame field numbers and wire types used by the direct encoder (proto/repl.proto). */
#define TAG_FRAME_EPOCH        0x08 /* field 1, varint */
#define TAG_FRAME_CHANGE_BATCH 0x1a /* field 3, length-delimited */
#define TAG_BATCH_RECORD       0x0a /* ChangeBatch field 1, length-delimited */

int ekv_repl_encode_change_batch(uint64_t epoch, const ekv_log_record_t *recs, size_t n,
                                 ekv_buf_t *out)
{
    uint64_t inner = 0;
    for (size_t i = 0; i < n; i++)
        inner += 1 + varint_len(recs[i].len) + recs[i].len;
    uint64_t total = inner + 1 + varint_len(inner);
    if (epoch)
        total += 1 + varint_len(epoch);
    if (n == 0 || total > EKV_REPL_MAX_FRAME)
        return n == 0 ? EKV_EREPL_FRAME_MALFORMED : EKV_EREPL_FRAME_TOO_LARGE;
    int rc = ekv_buf_reserve(out, EKV_REPL_HEADER_LEN + (size_t)total);
    if (rc)
        return rc;
    uint8_t tmp[32];
    uint8_t *p = tmp;
    put_be32(p, (uint32_t)total);
    p += EKV_REPL_HEADER_LEN;
    if (epoch) {
        *p++ = TAG_FRAME_EPOCH;
        p = varint_put(p, epoch);
    }
    *p++ = TAG_FRAME_CHANGE_BATCH;
    p = varint_put(p, inner);
    ekv_buf_append(out, tmp, (size_t)(p - tmp));
    for (size_t i = 0; i < n; i++) {
        p = tmp;
        *p++ = TAG_BATCH_RECORD;
        p = varint_put(p, recs[i].len);
        ekv_buf_append(out, tmp, (size_t)(p - tmp));
        ekv_buf_append(out, recs[i].data, recs[i].len);
    }
    return 0;
}

static int varint_get(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

int64_t ekv_repl_record_commit_ms(const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    const uint8_t *p = data, *end = data + len;
    while (p < end) {
        uint64_t tag, v;
        if (varint_get(&p, end, &tag))
            return 0;
        uint32_t field = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if (field > 2 || wt != 0)
            return 0; /* commit_time_ms comes before any other field */
        if (varint_get(&p, end, &v))
            return 0;
        if (field == 2)
            return (int64_t)v;
    }
    return 0;
}

int ekv_repl_record_strip_values(const uint8_t *data, size_t len, ekv_buf_t *out)
{
    if (len == 0)
        return 0;
    const uint8_t *p = data, *end = data + len;
    while (p < end) {
        const uint8_t *field = p;
        uint64_t tag, v;
        if (varint_get(&p, end, &tag))
            return EKV_EREPL_FRAME_MALFORMED;
        switch (tag & 7) {
        case 0: /* varint */
            if (varint_get(&p, end, &v))
                return EKV_EREPL_FRAME_MALFORMED;
            break;
        case 1: /* 64-bit */
            if (end - p < 8)
                return EKV_EREPL_FRAME_MALFORMED;
            p += 8;
            break;
        case 2: /* length-delimited */
            if (varint_get(&p, end, &v) || v > (uint64_t)(end - p))
                return EKV_EREPL_FRAME_MALFORMED;
            p += v;
            break;
        case 5: /* 32-bit */
            if (end - p < 4)
                return EKV_EREPL_FRAME_MALFORMED;
            p += 4;
            break;
        default:
            return EKV_EREPL_FRAME_MALFORMED;
        }
        uint64_t num = tag >> 3;
        if (num == 6 || num == 7) /* value, metadata */
            continue;
        int rc = ekv_buf_append(out, field, (size_t)(p - field));
        if (rc)
            return rc;
    }
    return 0;
}

static int body_present(const Edgekv__Frame *f)
{
    switch (f->body_case) {
    case EDGEKV__FRAME__BODY_HELLO:
        return f->hello != NULL;
    case EDGEKV__FRAME__BODY_CHANGE_BATCH:
        return f->change_batch != NULL;
    case EDGEKV__FRAME__BODY_ACK:
        return f->ack != NULL;
    case EDGEKV__FRAME__BODY_HEARTBEAT:
        return f->heartbeat != NULL;
    case EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN:
        return f->snapshot_begin != NULL;
    case EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK:
        return f->snapshot_chunk != NULL;
    case EDGEKV__FRAME__BODY_SNAPSHOT_END:
        return f->snapshot_end != NULL;
    case EDGEKV__FRAME__BODY_ERROR:
        return f->error != NULL;
    case EDGEKV__FRAME__BODY_REQUEST:
        return f->request != NULL;
    case EDGEKV__FRAME__BODY_RESPONSE:
        return f->response != NULL;
    default:
        return 0;
    }
}

const char *ekv_repl_frame_body_name(Edgekv__Frame__BodyCase body_case)
{
    switch (body_case) {
    case EDGEKV__FRAME__BODY_HELLO:
        return "hello";
    case EDGEKV__FRAME__BODY_CHANGE_BATCH:
        return "change_batch";
    case EDGEKV__FRAME__BODY_ACK:
        return "ack";
    case EDGEKV__FRAME__BODY_HEARTBEAT:
        return "heartbeat";
    case EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN:
        return "snapshot_begin";
    case EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK:
        return "snapshot_chunk";
    case EDGEKV__FRAME__BODY_SNAPSHOT_END:
        return "snapshot_end";
    case EDGEKV__FRAME__BODY_ERROR:
        return "error";
    case EDGEKV__FRAME__BODY_REQUEST:
        return "request";
    case EDGEKV__FRAME__BODY_RESPONSE:
        return "response";
    default:
        return "none";
    }
}

/* A protobuf-c output buffer over memory reserved beforehand: protobuf_c_message_pack() packs
 * a sub-message after a one-byte length guess and then memmove()s it when its length takes
 * more bytes (the whole ChangeBatch, every time), while pack_to_buffer writes each length
 * before the sub-message and copies every byte once. */
typedef struct {
    ProtobufCBuffer base;
    uint8_t *p;
    size_t left;
    int overflow;
} region_t;

static void region_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    region_t *r = (region_t *)b;
    if (len == 0)
        return;
    if (len > r->left) { /* protobuf-c disagrees with its own packed size */
        r->overflow = 1;
        return;
    }
    memcpy(r->p, data, len);
    r->p += len;
    r->left -= len;
}

int ekv_repl_frame_encode(const Edgekv__Frame *f, ekv_buf_t *out)
{
    if (!body_present(f))
        return EKV_EREPL_FRAME_MALFORMED;
    size_t n = edgekv__frame__get_packed_size(f);
    if (n > EKV_REPL_MAX_FRAME)
        return EKV_EREPL_FRAME_TOO_LARGE;
    int rc = ekv_buf_reserve(out, EKV_REPL_HEADER_LEN + n);
    if (rc)
        return rc;
    uint8_t *p = (uint8_t *)out->data + out->len;
    put_be32(p, (uint32_t)n);
    region_t r = {{region_append}, p + EKV_REPL_HEADER_LEN, n, 0};
    if (protobuf_c_message_pack_to_buffer(&f->base, &r.base) != n || r.overflow || r.left)
        return EKV_EINTERNAL; /* protobuf-c disagrees with itself: out->len not advanced */
    out->len += EKV_REPL_HEADER_LEN + n;
    out->data[out->len] = '\0';
    return 0;
}

void ekv_repl_frame_free(Edgekv__Frame *f)
{
    if (f)
        edgekv__frame__free_unpacked(f, NULL);
}

void ekv_repl_decoder_init(ekv_repl_decoder_t *d, size_t max)
{
    d->in = NULL;
    d->in_len = 0;
    d->max = max ? max : EKV_REPL_MAX_FRAME;
    /* the buffer's own cap is a second guard; lengths are checked before appending */
    ekv_buf_init(&d->part, EKV_REPL_HEADER_LEN + d->max);
    d->err = 0;
    d->reason[0] = '\0';
}

void ekv_repl_decoder_deinit(ekv_repl_decoder_t *d)
{
    ekv_buf_deinit(&d->part);
    d->in = NULL;
    d->in_len = 0;
}

/* Record the first error; drop the input and any partial frame. Returns err. */
static int fail(ekv_repl_decoder_t *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(ekv_repl_decoder_t *d, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
    va_end(ap);
    d->err = err;
    d->in = NULL;
    d->in_len = 0;
    ekv_buf_deinit(&d->part);
    return err;
}

/* Check an announced length. 0 or the (sticky) error. */
static int check_len(ekv_repl_decoder_t *d, uint32_t len)
{
    if (len == 0)
        return fail(d, EKV_EREPL_FRAME_MALFORMED, "zero-length frame");
    if (len > d->max)
        return fail(d, EKV_EREPL_FRAME_TOO_LARGE, "frame length %lu exceeds cap %zu",
                    (unsigned long)len, d->max);
    return 0;
}

/*
 * Whether field number 0 occurs anywhere in m. protobuf-c rejects a one-byte tag 0 but accepts
 * field 0 written as an overlong tag varint (0x80 0x00), keeps it as an unknown field, and then
 * packs it as the one-byte tag it rejects: such a frame would not survive being forwarded, and
 * 0 is not a valid protobuf field number at all (found by fuzz_repl_frame). The recursion
 * follows the schema (Frame -> body -> records/entries), which is not recursive: bounded depth.
 */
static int has_field_zero(const ProtobufCMessage *m)
{
    for (unsigned i = 0; i < m->n_unknown_fields; i++)
        if (m->unknown_fields[i].tag == 0)
            return 1;
    const ProtobufCMessageDescriptor *desc = m->descriptor;
    const char *base = (const char *)m;
    for (unsigned i = 0; i < desc->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &desc->fields[i];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(const void *)(base + fd->quantifier_offset);
            ProtobufCMessage *const *v =
                *(ProtobufCMessage *const *const *)(const void *)(base + fd->offset);
            for (size_t k = 0; k < n; k++)
                if (has_field_zero(v[k]))
                    return 1;
            continue;
        }
        /* oneof members share one slot: only the member named by the case is there */
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(const void *)(base + fd->quantifier_offset) != fd->id)
            continue;
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)(const void *)(base + fd->offset);
        if (sub && has_field_zero(sub))
            return 1;
    }
    return 0;
}

/* Unpack len bytes into a frame with a body. 1 or the (sticky) error. */
static int unpack(ekv_repl_decoder_t *d, const uint8_t *p, size_t len, Edgekv__Frame **out)
{
    Edgekv__Frame *f = edgekv__frame__unpack(NULL, len, p);
    if (!f) /* protobuf-c does not tell malformed from out of memory */
        return fail(d, EKV_EREPL_FRAME_MALFORMED, "protobuf unpack failed (%zu bytes)", len);
    if (!body_present(f)) {
        edgekv__frame__free_unpacked(f, NULL);
        return fail(d, EKV_EREPL_FRAME_MALFORMED, "frame has no known body (%zu bytes)", len);
    }
    if (has_field_zero(&f->base)) {
        edgekv__frame__free_unpacked(f, NULL);
        return fail(d, EKV_EREPL_FRAME_MALFORMED, "frame has field number 0 (%zu bytes)", len);
    }
    *out = f;
    return 1;
}

/* Move up to n fed bytes into the partial frame. 0 or the (sticky) error. */
static int take(ekv_repl_decoder_t *d, size_t n)
{
    if (n > d->in_len)
        n = d->in_len;
    int rc = ekv_buf_append(&d->part, d->in, n);
    if (rc)
        return fail(d, rc, "cannot buffer a split frame: %s", ekv_strerror(rc));
    d->in += n;
    d->in_len -= n;
    return 0;
}

int ekv_repl_decoder_feed(ekv_repl_decoder_t *d, const void *bytes, size_t len)
{
    if (d->err)
        return d->err;
    if (d->in_len)
        return EKV_EINTERNAL;
    d->in = bytes;
    d->in_len = len;
    return 0;
}

int ekv_repl_decoder_next(ekv_repl_decoder_t *d, Edgekv__Frame **out)
{
    int rc;
    *out = NULL;
    if (d->err)
        return d->err;

    if (d->part.len == 0) {
        if (d->in_len == 0)
            return 0;
        if (d->in_len >= EKV_REPL_HEADER_LEN) {
            uint32_t len = get_be32(d->in);
            if ((rc = check_len(d, len)))
                return rc;
            if (d->in_len - EKV_REPL_HEADER_LEN >= len) { /* fast path: whole frame here */
                const uint8_t *p = d->in + EKV_REPL_HEADER_LEN;
                d->in += EKV_REPL_HEADER_LEN + len;
                d->in_len -= EKV_REPL_HEADER_LEN + len;
                return unpack(d, p, len, out);
            }
        }
        /* a split frame: bounded by the checked length (or < 4 bytes of header) */
        if ((rc = take(d, d->in_len)))
            return rc;
        return 0;
    }

    if (d->part.len < EKV_REPL_HEADER_LEN) {
        if ((rc = take(d, EKV_REPL_HEADER_LEN - d->part.len)))
            return rc;
        if (d->part.len < EKV_REPL_HEADER_LEN)
            return 0;
        if ((rc = check_len(d, get_be32((const uint8_t *)d->part.data))))
            return rc;
    }
    size_t whole = EKV_REPL_HEADER_LEN + get_be32((const uint8_t *)d->part.data);
    if ((rc = take(d, whole - d->part.len)))
        return rc;
    if (d->part.len < whole)
        return 0;
    rc = unpack(d, (const uint8_t *)d->part.data + EKV_REPL_HEADER_LEN, whole - EKV_REPL_HEADER_LEN,
                out);
    if (rc < 0)
        return rc;
    if (d->part.cap > KEEP_PART_BYTES)
        ekv_buf_deinit(&d->part);
    else
        ekv_buf_reset(&d->part);
    return rc;
}

const char *ekv_repl_decoder_reason(const ekv_repl_decoder_t *d)
{
    return d->reason;
}

size_t ekv_repl_decoder_buffered(const ekv_repl_decoder_t *d)
{
    return d->part.len + d->in_len;
}
