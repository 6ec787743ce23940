/*
 * frame.c - replication frame codec (see frame.h for the format and the contracts).
 *
 * Every frame is packed and unpacked by protobuf-c; nothing here walks protobuf tags by hand.
 * The primary's ChangeBatch carries its log records as `bytes`, so they go from the log to
 * the socket without being unpacked; edges' KeyChangeBatch frames are built from unpacked
 * records (ekv_repl_encode_key_change_batch).
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
#include <stdlib.h>
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
    case EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH:
        return f->key_change_batch != NULL;
    case EDGEKV__FRAME__BODY_CHALLENGE:
        return f->challenge != NULL;
    case EDGEKV__FRAME__BODY_AUTH_PROOF:
        return f->auth_proof != NULL;
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
    case EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH:
        return "key_change_batch";
    case EDGEKV__FRAME__BODY_CHALLENGE:
        return "challenge";
    case EDGEKV__FRAME__BODY_AUTH_PROOF:
        return "auth_proof";
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

void ekv_repl_hello_init(Edgekv__Hello *h)
{
    edgekv__hello__init(h);
    h->protocol_version = EKV_REPL_PROTOCOL_VERSION;
}

int ekv_repl_hello_version_ok(const Edgekv__Hello *h, char *why, size_t n)
{
    if (h->protocol_version == EKV_REPL_PROTOCOL_VERSION)
        return 1;
    /* 0 = the field is absent: a node from before it existed speaks version 1 */
    snprintf(why, n, "peer speaks replication protocol %lu, this node %u",
             h->protocol_version ? (unsigned long)h->protocol_version : 1ul,
             EKV_REPL_PROTOCOL_VERSION);
    return 0;
}

int ekv_repl_encode_change_batch(uint64_t epoch, const ekv_log_record_t *recs, size_t n,
                                 ekv_buf_t *out)
{
    if (n == 0)
        return EKV_EREPL_FRAME_MALFORMED;
    if (n > EKV_REPL_MAX_FRAME) /* each record costs at least 2 bytes: over the cap anyway */
        return EKV_EREPL_FRAME_TOO_LARGE;
    ProtobufCBinaryData *v = malloc(n * sizeof(*v));
    if (!v)
        return EKV_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i].data = recs[i].data; /* borrowed: packed (copied into out) before we return */
        v[i].len = recs[i].len;
    }
    Edgekv__ChangeBatch b = EDGEKV__CHANGE_BATCH__INIT;
    b.n_records = n;
    b.records = v;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.epoch = epoch;
    f.body_case = EDGEKV__FRAME__BODY_CHANGE_BATCH;
    f.change_batch = &b;
    int rc = ekv_repl_frame_encode(&f, out);
    free(v);
    return rc;
}

void ekv_repl_key_change_view(const Edgekv__ChangeRecord *r, Edgekv__KeyChange *out)
{
    edgekv__key_change__init(out);
    out->seq = r->seq;
    out->commit_time_ms = r->commit_time_ms;
    out->op = r->op;
    out->namespace_id = r->namespace_id;
    out->key = r->key;
    out->account_id = r->account_id;
    out->title = r->title;
    out->token_hash = r->token_hash;
    out->token_id = r->token_id;
    out->perms = r->perms;
    out->created_ms = r->created_ms;
    if (r->op == EDGEKV__CHANGE_OP__DO_NS_PUT || r->op == EDGEKV__CHANGE_OP__DO_PTABLE)
        out->do_record = r->value;
}

int ekv_repl_encode_key_change_batch(uint64_t epoch, const ekv_log_record_t *recs, size_t n,
                                     ekv_buf_t *out)
{
    if (n == 0)
        return EKV_EREPL_FRAME_MALFORMED;
    if (n > EKV_REPL_MAX_FRAME)
        return EKV_EREPL_FRAME_TOO_LARGE;
    Edgekv__ChangeRecord **un = calloc(n, sizeof(*un));
    Edgekv__KeyChange *kc = malloc(n * sizeof(*kc));
    Edgekv__KeyChange **ptrs = malloc(n * sizeof(*ptrs));
    int rc = un && kc && ptrs ? 0 : EKV_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!(un[i] = ekv_repl_record_unpack(recs[i].data, recs[i].len)))
            rc = EKV_EREPL_FRAME_MALFORMED;
        else
            ekv_repl_key_change_view(un[i], &kc[i]);
        ptrs[i] = &kc[i];
    }
    if (!rc) {
        Edgekv__KeyChangeBatch b = EDGEKV__KEY_CHANGE_BATCH__INIT;
        b.n_changes = n;
        b.changes = ptrs;
        Edgekv__Frame f = EDGEKV__FRAME__INIT;
        f.epoch = epoch;
        f.body_case = EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH;
        f.key_change_batch = &b;
        rc = ekv_repl_frame_encode(&f, out);
    }
    for (size_t i = 0; un && i < n; i++)
        if (un[i])
            edgekv__change_record__free_unpacked(un[i], NULL);
    free(un);
    free(kc);
    free(ptrs);
    return rc;
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
    d->part_done = 0;
    /* the buffer's own cap is a second guard; lengths are checked before appending */
    ekv_buf_init(&d->part, EKV_REPL_HEADER_LEN + d->max);
    d->err = 0;
    d->reason[0] = '\0';
}

void ekv_repl_decoder_deinit(ekv_repl_decoder_t *d)
{
    ekv_buf_deinit(&d->part);
    d->part_done = 0;
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
    d->part_done = 0;
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
 * follows the schema (Frame -> body -> entries/changes; a ChangeRecord alone), which is not
 * recursive: bounded depth.
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

Edgekv__ChangeRecord *ekv_repl_record_unpack(const uint8_t *data, size_t len)
{
    Edgekv__ChangeRecord *r = edgekv__change_record__unpack(NULL, len, data);
    if (r && has_field_zero(&r->base)) {
        edgekv__change_record__free_unpacked(r, NULL);
        r = NULL;
    }
    return r;
}

int64_t ekv_repl_record_commit_ms(const uint8_t *data, size_t len)
{
    Edgekv__ChangeRecord *r = ekv_repl_record_unpack(data, len);
    int64_t ms = r ? r->commit_time_ms : 0;
    if (r)
        edgekv__change_record__free_unpacked(r, NULL);
    return ms;
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

/* Find the next complete frame in the fed bytes: 1 and its packed bytes in *p / *len (in
 * the fed bytes or in d->part, which is then released by the next call), 0 (feed more) or
 * the sticky error. */
/* Release the split frame last returned, if any (big buffers are not kept for the link's
 * lifetime). */
static void part_release(ekv_repl_decoder_t *d)
{
    if (!d->part_done)
        return;
    d->part_done = 0;
    if (d->part.cap > KEEP_PART_BYTES)
        ekv_buf_deinit(&d->part);
    else
        ekv_buf_reset(&d->part);
}

static int next_bytes(ekv_repl_decoder_t *d, const uint8_t **p, size_t *len)
{
    int rc;
    part_release(d);
    if (d->err)
        return d->err;

    if (d->part.len == 0) {
        if (d->in_len == 0)
            return 0;
        if (d->in_len >= EKV_REPL_HEADER_LEN) {
            uint32_t n = get_be32(d->in);
            if ((rc = check_len(d, n)))
                return rc;
            if (d->in_len - EKV_REPL_HEADER_LEN >= n) { /* fast path: whole frame here */
                *p = d->in + EKV_REPL_HEADER_LEN;
                *len = n;
                d->in += EKV_REPL_HEADER_LEN + n;
                d->in_len -= EKV_REPL_HEADER_LEN + n;
                return 1;
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
    *p = (const uint8_t *)d->part.data + EKV_REPL_HEADER_LEN;
    *len = whole - EKV_REPL_HEADER_LEN;
    d->part_done = 1;
    return 1;
}

int ekv_repl_decoder_next(ekv_repl_decoder_t *d, Edgekv__Frame **out)
{
    const uint8_t *p = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = next_bytes(d, &p, &len);
    if (rc != 1)
        return rc;
    rc = unpack(d, p, len, out); /* copies what it keeps: the bytes can go now */
    part_release(d);
    return rc;
}

int ekv_repl_decoder_next_raw(ekv_repl_decoder_t *d, const uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    return next_bytes(d, out, len);
}

void ekv_repl_decoder_set_max(ekv_repl_decoder_t *d, size_t max)
{
    d->max = max ? max : EKV_REPL_MAX_FRAME;
    d->part.max = EKV_REPL_HEADER_LEN + d->max;
}

Edgekv__AuthFrame *ekv_repl_auth_frame_unpack(const uint8_t *data, size_t len)
{
    if (len == 0)
        return NULL;
    Edgekv__AuthFrame *f = edgekv__auth_frame__unpack(NULL, len, data);
    if (!f)
        return NULL;
    int ok = f->base.n_unknown_fields == 0 && !has_field_zero(&f->base);
    if (ok && f->body_case == EDGEKV__AUTH_FRAME__BODY_CHALLENGE)
        ok = f->challenge && f->challenge->base.n_unknown_fields == 0;
    else if (ok && f->body_case == EDGEKV__AUTH_FRAME__BODY_AUTH_PROOF)
        ok = f->auth_proof && f->auth_proof->base.n_unknown_fields == 0;
    else
        ok = 0;
    if (!ok) {
        edgekv__auth_frame__free_unpacked(f, NULL);
        return NULL;
    }
    return f;
}

const char *ekv_repl_decoder_reason(const ekv_repl_decoder_t *d)
{
    return d->reason;
}

size_t ekv_repl_decoder_buffered(const ekv_repl_decoder_t *d)
{
    return d->part.len + d->in_len;
}
