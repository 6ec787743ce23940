/*
 * libFuzzer target for replication/frame.c (the decoder sees bytes from the network).
 *
 * Input layout: byte 0 = control (bit 7: decoder cap 64 bytes instead of the default, to reach
 * the oversize path; all 8 bits seed the piece sizes), then the byte stream. The stream is fed
 * in pieces of 0..47 bytes drawn from a PRNG seeded by the control byte and the input length,
 * each piece in its own heap block freed right after it is drained (a decoded frame or the
 * decoder pointing into old input would be a use-after-free).
 * Checks: every decoded frame has a body, re-encodes, and decodes again to a frame whose
 * encoding is byte-identical (decode o encode is a fixed point); errors are sticky; the
 * decoder never holds more than one frame. The whole input, and every record of a decoded
 * ChangeBatch, is also taken as a packed log record: if it unpacks, the primary's two batch
 * encoders must accept it and their frames must decode to the same bytes / the same keys.
 * The same stream is also read as an unauthenticated link reads it (replication/auth.h): raw
 * frames under the 64 KiB pre-auth cap, each unpacked as an AuthFrame (only a Challenge or an
 * AuthProof, no unknown field) and stepped through a listener's and a connector's handshake,
 * neither of which may ever succeed (that needs the secret's HMAC) or answer a failed step.
 */
#include "replication/auth.h"
#include "replication/frame.h"

#include "common/errors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void check_roundtrip(const Edgekv__Frame *f)
{
    ekv_buf_t a, b;
    ekv_buf_init(&a, 0);
    ekv_buf_init(&b, 0);
    if (f->body_case == EDGEKV__FRAME__BODY__NOT_SET)
        abort();
    if (ekv_repl_frame_encode(f, &a) != 0)
        abort();

    ekv_repl_decoder_t d;
    Edgekv__Frame *g = NULL, *none = NULL;
    ekv_repl_decoder_init(&d, 0);
    if (ekv_repl_decoder_feed(&d, a.data, a.len) != 0 || ekv_repl_decoder_next(&d, &g) != 1 ||
        ekv_repl_decoder_next(&d, &none) != 0 || none != NULL)
        abort();
    if (g->epoch != f->epoch || g->body_case != f->body_case)
        abort();
    if (ekv_repl_frame_encode(g, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
        abort();
    ekv_repl_frame_free(g);
    ekv_repl_decoder_deinit(&d);
    ekv_buf_deinit(&a);
    ekv_buf_deinit(&b);
}

/* Decode exactly one frame from b, or abort. */
static Edgekv__Frame *decode_one(const ekv_buf_t *b)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f = NULL;
    ekv_repl_decoder_init(&d, 0);
    if (ekv_repl_decoder_feed(&d, b->data, b->len) != 0 || ekv_repl_decoder_next(&d, &f) != 1)
        abort();
    ekv_repl_decoder_deinit(&d);
    return f;
}

static void check_record_bytes(const uint8_t *p, size_t len)
{
    int64_t ms = ekv_repl_record_commit_ms(p, len); /* never reads past p[len) */
    Edgekv__ChangeRecord *r = ekv_repl_record_unpack(p, len);
    if (!r) {
        if (ms != 0)
            abort();
        return;
    }
    if (ms != r->commit_time_ms)
        abort();
    ekv_log_record_t lr;
    memset(&lr, 0, sizeof(lr));
    lr.seq = r->seq;
    lr.data = (uint8_t *)p;
    lr.len = len;
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    if (ekv_repl_encode_change_batch(7, &lr, 1, &out) != 0)
        abort();
    Edgekv__Frame *f = decode_one(&out);
    if (f->body_case != EDGEKV__FRAME__BODY_CHANGE_BATCH || f->change_batch->n_records != 1 ||
        f->change_batch->records[0].len != len ||
        (len && memcmp(f->change_batch->records[0].data, p, len) != 0))
        abort();
    ekv_repl_frame_free(f);
    ekv_buf_reset(&out);
    if (ekv_repl_encode_key_change_batch(7, &lr, 1, &out) != 0)
        abort();
    f = decode_one(&out);
    if (f->body_case != EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH || f->key_change_batch->n_changes != 1)
        abort();
    const Edgekv__KeyChange *k = f->key_change_batch->changes[0];
    if (k->seq != r->seq || k->commit_time_ms != r->commit_time_ms || k->op != r->op ||
        k->key.len != r->key.len || (k->key.len && memcmp(k->key.data, r->key.data, k->key.len)) ||
        k->namespace_id.len != r->namespace_id.len || strcmp(k->title, r->title) != 0 ||
        strcmp(k->token_hash, r->token_hash) != 0 || k->perms != r->perms)
        abort();
    ekv_repl_frame_free(f);
    ekv_buf_deinit(&out);
    edgekv__change_record__free_unpacked(r, NULL);
}

static void check_handshake(const uint8_t *in, size_t len)
{
    static ekv_repl_auth_t *a;
    static const char secret[] = "fuzz-cluster-secret-of-more-than-32-bytes";
    if (!a && ekv_repl_auth_new(&a, secret, sizeof(secret) - 1) != 0)
        abort();
    ekv_repl_decoder_t d;
    ekv_repl_decoder_init(&d, EKV_REPL_AUTH_MAX_FRAME);
    ekv_repl_hs_t l, c;
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    if (ekv_repl_hs_init(&l, a, EKV_REPL_HS_LISTENER, &out) != 0 ||
        ekv_repl_hs_init(&c, a, EKV_REPL_HS_CONNECTOR, &out) != 0)
        abort();
    if (ekv_repl_decoder_feed(&d, in, len) != 0)
        abort();
    const uint8_t *p;
    size_t n;
    char why[200];
    int rc;
    while ((rc = ekv_repl_decoder_next_raw(&d, &p, &n)) == 1) {
        if (n == 0 || n > EKV_REPL_AUTH_MAX_FRAME)
            abort();
        Edgekv__AuthFrame *af = ekv_repl_auth_frame_unpack(p, n);
        int parsed = af != NULL;
        if (af) {
            if (af->body_case != EDGEKV__AUTH_FRAME__BODY_CHALLENGE &&
                af->body_case != EDGEKV__AUTH_FRAME__BODY_AUTH_PROOF)
                abort();
            edgekv__auth_frame__free_unpacked(af, NULL);
        }
        size_t before = out.len;
        int lr = ekv_repl_hs_step(&l, p, n, &out, why, sizeof(why));
        if (lr == 1 || (lr < 0 && out.len != before) || (lr == 0))
            abort(); /* a listener's only step is the proof: it fails without the secret */
        before = out.len;
        int cr = ekv_repl_hs_step(&c, p, n, &out, why, sizeof(why));
        if (cr == 1 || (cr < 0 && out.len != before))
            abort();
        if (cr == 0 && (!parsed || c.state != EKV_REPL_HS_WAIT_PROOF))
            abort();
    }
    if (rc < 0 && ekv_repl_decoder_buffered(&d) != 0)
        abort();
    ekv_buf_deinit(&out);
    ekv_repl_decoder_deinit(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    size_t max = (ctl & 0x80) ? 64 : 0;
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)ctl << 16) ^ (uint32_t)len;

    /* the input as one log record: what the primary does with log bytes */
    check_record_bytes(in, len);
    /* the input as an unauthenticated peer's bytes */
    check_handshake(in, len);

    ekv_repl_decoder_t d;
    ekv_repl_decoder_init(&d, max);
    int err = 0;
    for (size_t off = 0; off < len;) {
        size_t n = next_rand(&seed) % 48;
        if (n > len - off)
            n = len - off;
        uint8_t *piece = malloc(n ? n : 1);
        memcpy(piece, in + off, n);
        off += n;

        int rc = ekv_repl_decoder_feed(&d, piece, n);
        if (rc != err)
            abort(); /* 0 while healthy, the sticky error after */
        Edgekv__Frame *f;
        while ((rc = ekv_repl_decoder_next(&d, &f)) == 1) {
            check_roundtrip(f);
            if (f->body_case == EDGEKV__FRAME__BODY_CHANGE_BATCH)
                for (size_t i = 0; i < f->change_batch->n_records; i++)
                    check_record_bytes(f->change_batch->records[i].data,
                                       f->change_batch->records[i].len);
            ekv_repl_frame_free(f);
        }
        if (f != NULL)
            abort();
        if (rc < 0) {
            if (err && rc != err)
                abort();
            if (rc != EKV_EREPL_FRAME_TOO_LARGE && rc != EKV_EREPL_FRAME_MALFORMED &&
                rc != EKV_ENOMEM)
                abort();
            if (ekv_repl_decoder_reason(&d)[0] == '\0' || ekv_repl_decoder_buffered(&d) != 0)
                abort();
            err = rc;
        } else if (ekv_repl_decoder_buffered(&d) > EKV_REPL_HEADER_LEN + d.max) {
            abort();
        }
        free(piece);
    }
    ekv_repl_decoder_deinit(&d);
    return 0;
}
