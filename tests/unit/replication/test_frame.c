/*
 * Unit tests for replication/frame.c: the u32-BE-length + protobuf Frame codec.
 * Covers a roundtrip of every body type with exact field values, incremental feeding split at
 * every byte, several frames per feed, truncation, the size cap (checked before allocating),
 * zero length, garbage, missing/unknown bodies, unknown and wrong-type fields, sticky errors;
 * the batch encoders (ChangeBatch of log bytes, KeyChangeBatch for edges), record unpacking
 * and the Hello protocol version.
 */
#include "replication/frame.h"

#include "common/errors.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdlib.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define BIN(lit)  ((ProtobufCBinaryData){sizeof(lit) - 1, (uint8_t *)(lit)})

/* ---- fixtures: one frame of every body type, with real values ---------------------------- */

#define NBODIES 12

static const Edgekv__Frame__BodyCase cases[NBODIES] = {
    EDGEKV__FRAME__BODY_HELLO,
    EDGEKV__FRAME__BODY_CHANGE_BATCH,
    EDGEKV__FRAME__BODY_ACK,
    EDGEKV__FRAME__BODY_HEARTBEAT,
    EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN,
    EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK,
    EDGEKV__FRAME__BODY_SNAPSHOT_END,
    EDGEKV__FRAME__BODY_ERROR,
    EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH,
    EDGEKV__FRAME__BODY_RESPONSE,
    EDGEKV__FRAME__BODY_CHALLENGE,
    EDGEKV__FRAME__BODY_AUTH_PROOF,
};

/* binary keys/values with NUL bytes inside and at the ends */
static const char ns_id[] = "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\x00";
static const char key0[] = "user\x00:42";
static const char val0[] = "\x00\xff\x00\x01 value \x00";
static const char meta0[] = "{\"a\":1}";
static const char key1[] = "\x00";
static const char key2[] = "k\xc3\xa9\x00y";
static const char ckey0[] = "\x01\x00\x00\x00\x00\x00\x00\x00\x07";
static const char cval0[] = "\x82\xa1v\xc4\x03\x00\x01\x02";
static const char ckey1[] = "\x01\x00z";

static Edgekv__Hello hello;
static Edgekv__ChangeRecord rec[3];
static ProtobufCBinaryData rec_bytes[3]; /* rec[i] packed, as the log stores it (malloc'd) */
static Edgekv__ChangeBatch batch;
static Edgekv__KeyChange kc[2];
static Edgekv__KeyChange *kcs[2];
static Edgekv__KeyChangeBatch kbatch;
static Edgekv__Response resp;
static Edgekv__Ack ack;
static Edgekv__Heartbeat hb;
static Edgekv__SnapshotBegin sbegin;
static Edgekv__KeyValue kv[2];
static Edgekv__KeyValue *kvs[2];
static Edgekv__SnapshotChunk chunk;
static Edgekv__SnapshotEnd send_;
static Edgekv__Error err_;
static Edgekv__Challenge chal;
static Edgekv__AuthProof proof;
static const char nonce0[] =
    "0123456789abcdef\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\xfe\xff";
static const char mac0[] = "\xff\x00mac-of-32-bytes-for-the-test\x00";

static void fixtures(void)
{
    ekv_repl_hello_init(&hello);
    hello.node_id = "replica-1";
    hello.role = EDGEKV__NODE_ROLE__NODE_ROLE_REPLICA;
    hello.last_applied_seq = 123456789012ull;
    hello.history_id = "9f0c2a5e-history";
    hello.epoch = 6;

    for (int i = 0; i < 3; i++)
        edgekv__change_record__init(&rec[i]);
    rec[0].seq = 1001;
    rec[0].commit_time_ms = 1795000000123ll;
    rec[0].op = EDGEKV__CHANGE_OP__KV_PUT;
    rec[0].namespace_id = BIN(ns_id);
    rec[0].key = BIN(key0);
    rec[0].value = BIN(val0);
    rec[0].metadata = BIN(meta0);
    rec[0].expiration = 1900000000;
    rec[1].seq = 1002;
    rec[1].commit_time_ms = 1795000000124ll;
    rec[1].op = EDGEKV__CHANGE_OP__KV_DELETE;
    rec[1].namespace_id = BIN(ns_id);
    rec[1].key = BIN(key1);
    rec[2].seq = 1005;
    rec[2].commit_time_ms = 1795000000200ll;
    rec[2].op = EDGEKV__CHANGE_OP__NS_CREATE;
    rec[2].namespace_id = BIN(ns_id);
    rec[2].key = BIN(key2);
    rec[2].account_id = "acc-01";
    rec[2].title = "my namespace";
    rec[2].perms = 7;
    rec[2].created_ms = -5;
    edgekv__change_batch__init(&batch);
    for (int i = 0; i < 3; i++) {
        rec_bytes[i].len = protobuf_c_message_get_packed_size(&rec[i].base);
        rec_bytes[i].data = malloc(rec_bytes[i].len);
        protobuf_c_message_pack(&rec[i].base, rec_bytes[i].data);
    }
    batch.n_records = 3;
    batch.records = rec_bytes;

    for (int i = 0; i < 2; i++) {
        edgekv__key_change__init(&kc[i]);
        kcs[i] = &kc[i];
    }
    kc[0].seq = 2001;
    kc[0].commit_time_ms = 1795000000999ll;
    kc[0].op = EDGEKV__CHANGE_OP__KV_DELETE;
    kc[0].namespace_id = BIN(ns_id);
    kc[0].key = BIN(key0);
    kc[1].seq = 2002;
    kc[1].commit_time_ms = 1795000001000ll;
    kc[1].op = EDGEKV__CHANGE_OP__TOKEN_CREATE;
    kc[1].account_id = "acc-01";
    kc[1].title = "deploy token";
    kc[1].token_hash = "5e884898da28047151d0e56f8dc62927";
    kc[1].token_id = "tok-9";
    kc[1].perms = 3;
    kc[1].created_ms = 1795000001000ll;
    edgekv__key_change_batch__init(&kbatch);
    kbatch.n_changes = 2;
    kbatch.changes = kcs;

    edgekv__response__init(&resp);
    resp.id = 77;
    resp.status = 404;
    resp.content_type = "application/json";
    resp.headers = "X-A: b\r\n";
    resp.body = BIN("{\"success\":false}");
    resp.seq = 2002;
    resp.expiration = 1900000000;
    resp.error_code = 10009;

    edgekv__ack__init(&ack);
    ack.applied_seq = UINT64_MAX;

    edgekv__heartbeat__init(&hb);
    hb.latest_seq = 1005;
    hb.latest_commit_time_ms = 1795000000200ll;
    hb.now_ms = 1795000000456ll;

    edgekv__snapshot_begin__init(&sbegin);
    sbegin.snapshot_seq = 99;
    sbegin.history_id = "h-1";
    sbegin.estimated_bytes = 1ull << 40;
    sbegin.estimated_keys = 12345;

    for (int i = 0; i < 2; i++) {
        edgekv__key_value__init(&kv[i]);
        kvs[i] = &kv[i];
    }
    kv[0].key = BIN(ckey0);
    kv[0].value = BIN(cval0);
    kv[1].key = BIN(ckey1); /* empty value */
    edgekv__snapshot_chunk__init(&chunk);
    chunk.chunk_seq = 3;
    chunk.column_family = "kv";
    chunk.n_entries = 2;
    chunk.entries = kvs;

    edgekv__snapshot_end__init(&send_);
    send_.snapshot_seq = 99;
    send_.chunk_count = 4;
    send_.entry_count = 12;
    send_.checksum = 0xdeadbeefcafebabeull;

    edgekv__error__init(&err_);
    err_.code = EDGEKV__REPL_ERROR_CODE__REPL_ERROR_FENCED;
    err_.message = "epoch 5 < 6";

    edgekv__challenge__init(&chal);
    chal.nonce = BIN(nonce0);
    chal.protocol_version = 4;
    edgekv__auth_proof__init(&proof);
    proof.nonce = BIN(nonce0);
    proof.mac = BIN(mac0);
}

/* Fill f with body number i (0..NBODIES-1); the epoch differs per body. */
static void make_frame(int i, Edgekv__Frame *f)
{
    edgekv__frame__init(f);
    f->epoch = 40 + (uint64_t)i;
    f->body_case = cases[i];
    switch (cases[i]) {
    case EDGEKV__FRAME__BODY_HELLO:
        f->hello = &hello;
        break;
    case EDGEKV__FRAME__BODY_CHANGE_BATCH:
        f->change_batch = &batch;
        break;
    case EDGEKV__FRAME__BODY_ACK:
        f->ack = &ack;
        break;
    case EDGEKV__FRAME__BODY_HEARTBEAT:
        f->heartbeat = &hb;
        break;
    case EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN:
        f->snapshot_begin = &sbegin;
        break;
    case EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK:
        f->snapshot_chunk = &chunk;
        break;
    case EDGEKV__FRAME__BODY_SNAPSHOT_END:
        f->snapshot_end = &send_;
        break;
    case EDGEKV__FRAME__BODY_ERROR:
        f->error = &err_;
        break;
    case EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH:
        f->key_change_batch = &kbatch;
        break;
    case EDGEKV__FRAME__BODY_RESPONSE:
        f->response = &resp;
        break;
    case EDGEKV__FRAME__BODY_CHALLENGE:
        f->challenge = &chal;
        break;
    case EDGEKV__FRAME__BODY_AUTH_PROOF:
        f->auth_proof = &proof;
        break;
    default:
        cr_fatal("bad body index %d", i);
    }
}

static void check_bin(ProtobufCBinaryData got, const char *want, size_t n)
{
    cr_assert(eq(sz, got.len, n));
    if (n)
        cr_assert(eq(mem, MEM(got.data, n), MEM((void *)want, n)));
}
#define CHECK_BIN(got, lit) check_bin(got, lit, sizeof(lit) - 1)

static void check_record(const Edgekv__ChangeRecord *r, int i)
{
    const Edgekv__ChangeRecord *w = &rec[i];
    cr_assert(eq(u64, r->seq, w->seq));
    cr_assert(eq(i64, r->commit_time_ms, w->commit_time_ms));
    cr_assert(eq(int, (int)r->op, (int)w->op));
    check_bin(r->namespace_id, (const char *)w->namespace_id.data, w->namespace_id.len);
    check_bin(r->key, (const char *)w->key.data, w->key.len);
    check_bin(r->value, (const char *)w->value.data, w->value.len);
    check_bin(r->metadata, (const char *)w->metadata.data, w->metadata.len);
    cr_assert(eq(i64, r->expiration, w->expiration));
    cr_assert(eq(str, r->account_id, w->account_id));
    cr_assert(eq(str, r->title, w->title));
    cr_assert(eq(u32, r->perms, w->perms));
    cr_assert(eq(i64, r->created_ms, w->created_ms));
}

/* Assert that f is exactly body number i, field by field (literals, not the fixtures). */
static void check_frame(const Edgekv__Frame *f, int i)
{
    cr_assert(not(eq(ptr, (void *)f, NULL)));
    cr_assert(eq(u64, f->epoch, 40 + (uint64_t)i));
    cr_assert(eq(int, (int)f->body_case, (int)cases[i]));
    switch (cases[i]) {
    case EDGEKV__FRAME__BODY_HELLO:
        cr_assert(eq(str, f->hello->node_id, "replica-1"));
        cr_assert(eq(int, (int)f->hello->role, 2));
        cr_assert(eq(u64, f->hello->last_applied_seq, 123456789012ull));
        cr_assert(eq(str, f->hello->history_id, "9f0c2a5e-history"));
        cr_assert(eq(u64, f->hello->epoch, 6));
        cr_assert(eq(u32, f->hello->protocol_version, EKV_REPL_PROTOCOL_VERSION));
        break;
    case EDGEKV__FRAME__BODY_CHANGE_BATCH: {
        cr_assert(eq(sz, f->change_batch->n_records, 3));
        Edgekv__ChangeRecord *u[3];
        for (int r = 0; r < 3; r++) { /* the record bytes arrive exactly as sent */
            check_bin(f->change_batch->records[r], (const char *)rec_bytes[r].data,
                      rec_bytes[r].len);
            u[r] = ekv_repl_record_unpack(f->change_batch->records[r].data,
                                          f->change_batch->records[r].len);
            cr_assert(not(eq(ptr, u[r], NULL)));
            check_record(u[r], r);
        }
        CHECK_BIN(u[0]->key, "user\x00:42");
        CHECK_BIN(u[0]->value, "\x00\xff\x00\x01 value \x00");
        CHECK_BIN(u[1]->key, "\x00");
        cr_assert(eq(sz, u[1]->value.len, 0));
        cr_assert(eq(u64, u[2]->seq, 1005));
        cr_assert(eq(str, u[2]->title, "my namespace"));
        for (int r = 0; r < 3; r++)
            edgekv__change_record__free_unpacked(u[r], NULL);
        break;
    }
    case EDGEKV__FRAME__BODY_ACK:
        cr_assert(eq(u64, f->ack->applied_seq, UINT64_MAX));
        break;
    case EDGEKV__FRAME__BODY_HEARTBEAT:
        cr_assert(eq(u64, f->heartbeat->latest_seq, 1005));
        cr_assert(eq(i64, f->heartbeat->latest_commit_time_ms, 1795000000200ll));
        cr_assert(eq(i64, f->heartbeat->now_ms, 1795000000456ll));
        break;
    case EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN:
        cr_assert(eq(u64, f->snapshot_begin->snapshot_seq, 99));
        cr_assert(eq(str, f->snapshot_begin->history_id, "h-1"));
        cr_assert(eq(u64, f->snapshot_begin->estimated_bytes, 1ull << 40));
        cr_assert(eq(u64, f->snapshot_begin->estimated_keys, 12345));
        break;
    case EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK:
        cr_assert(eq(u64, f->snapshot_chunk->chunk_seq, 3));
        cr_assert(eq(str, f->snapshot_chunk->column_family, "kv"));
        cr_assert(eq(sz, f->snapshot_chunk->n_entries, 2));
        CHECK_BIN(f->snapshot_chunk->entries[0]->key, "\x01\x00\x00\x00\x00\x00\x00\x00\x07");
        CHECK_BIN(f->snapshot_chunk->entries[0]->value, "\x82\xa1v\xc4\x03\x00\x01\x02");
        CHECK_BIN(f->snapshot_chunk->entries[1]->key, "\x01\x00z");
        cr_assert(eq(sz, f->snapshot_chunk->entries[1]->value.len, 0));
        break;
    case EDGEKV__FRAME__BODY_SNAPSHOT_END:
        cr_assert(eq(u64, f->snapshot_end->snapshot_seq, 99));
        cr_assert(eq(u64, f->snapshot_end->chunk_count, 4));
        cr_assert(eq(u64, f->snapshot_end->entry_count, 12));
        cr_assert(eq(u64, f->snapshot_end->checksum, 0xdeadbeefcafebabeull));
        break;
    case EDGEKV__FRAME__BODY_ERROR:
        cr_assert(eq(int, (int)f->error->code, 2));
        cr_assert(eq(str, f->error->message, "epoch 5 < 6"));
        break;
    case EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH: {
        cr_assert(eq(sz, f->key_change_batch->n_changes, 2));
        const Edgekv__KeyChange *a = f->key_change_batch->changes[0];
        const Edgekv__KeyChange *b = f->key_change_batch->changes[1];
        cr_assert(eq(u64, a->seq, 2001));
        cr_assert(eq(i64, a->commit_time_ms, 1795000000999ll));
        cr_assert(eq(int, (int)a->op, EDGEKV__CHANGE_OP__KV_DELETE));
        CHECK_BIN(a->namespace_id,
                  "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\x00");
        CHECK_BIN(a->key, "user\x00:42");
        cr_assert(eq(str, a->account_id, ""));
        cr_assert(eq(u64, b->seq, 2002));
        cr_assert(eq(int, (int)b->op, EDGEKV__CHANGE_OP__TOKEN_CREATE));
        cr_assert(eq(sz, b->namespace_id.len, 0));
        cr_assert(eq(str, b->account_id, "acc-01"));
        cr_assert(eq(str, b->title, "deploy token"));
        cr_assert(eq(str, b->token_hash, "5e884898da28047151d0e56f8dc62927"));
        cr_assert(eq(str, b->token_id, "tok-9"));
        cr_assert(eq(u32, b->perms, 3));
        cr_assert(eq(i64, b->created_ms, 1795000001000ll));
        break;
    }
    case EDGEKV__FRAME__BODY_RESPONSE:
        cr_assert(eq(u64, f->response->id, 77));
        cr_assert(eq(u32, f->response->status, 404));
        cr_assert(eq(str, f->response->content_type, "application/json"));
        cr_assert(eq(str, f->response->headers, "X-A: b\r\n"));
        CHECK_BIN(f->response->body, "{\"success\":false}");
        cr_assert(eq(u64, f->response->seq, 2002));
        cr_assert(eq(i64, f->response->expiration, 1900000000));
        cr_assert(eq(u32, f->response->error_code, 10009));
        break;
    case EDGEKV__FRAME__BODY_CHALLENGE:
        CHECK_BIN(f->challenge->nonce, nonce0);
        cr_assert(eq(u32, f->challenge->protocol_version, 4));
        break;
    case EDGEKV__FRAME__BODY_AUTH_PROOF:
        CHECK_BIN(f->auth_proof->nonce, nonce0);
        CHECK_BIN(f->auth_proof->mac, mac0);
        break;
    default:
        cr_fatal("unexpected body");
    }
}

/* The frames of bodies 0..NBODIES-1 encoded back to back; offsets[i] = start of frame i. */
static ekv_buf_t stream;
static size_t offsets[NBODIES + 1];

static void setup(void)
{
    fixtures();
    ekv_buf_init(&stream, 0);
    for (int i = 0; i < NBODIES; i++) {
        Edgekv__Frame f;
        make_frame(i, &f);
        offsets[i] = stream.len;
        cr_assert(eq(int, ekv_repl_frame_encode(&f, &stream), 0));
    }
    offsets[NBODIES] = stream.len;
}

static void teardown(void)
{
    ekv_buf_deinit(&stream);
    for (int i = 0; i < 3; i++)
        free(rec_bytes[i].data);
}

TestSuite(frame, .init = setup, .fini = teardown);

/* Drain d; check the frames against bodies *next_i, *next_i+1, ... Returns the last rc. */
static int drain(ekv_repl_decoder_t *d, int *next_i)
{
    Edgekv__Frame *f;
    int rc;
    while ((rc = ekv_repl_decoder_next(d, &f)) == 1) {
        cr_assert(lt(int, *next_i, NBODIES));
        check_frame(f, *next_i);
        ekv_repl_frame_free(f);
        (*next_i)++;
    }
    cr_assert(eq(ptr, (void *)f, NULL));
    return rc;
}

/* Decoder fed exactly `bytes` in one piece; returns the rc of the first _next. */
static int decode_raw(const void *bytes, size_t n, size_t max, Edgekv__Frame **f,
                      ekv_repl_decoder_t *d)
{
    ekv_repl_decoder_init(d, max);
    cr_assert(eq(int, ekv_repl_decoder_feed(d, bytes, n), 0));
    return ekv_repl_decoder_next(d, f);
}

/* ---- roundtrip and wire bytes -------------------------------------------------------------- */

Test(frame, roundtrip_every_body_type)
{
    for (int i = 0; i < NBODIES; i++) {
        const uint8_t *p = (const uint8_t *)stream.data + offsets[i];
        size_t n = offsets[i + 1] - offsets[i];
        Edgekv__Frame want;
        make_frame(i, &want);
        size_t packed = edgekv__frame__get_packed_size(&want);
        cr_assert(eq(sz, n, EKV_REPL_HEADER_LEN + packed));
        uint8_t hdr[4] = {(uint8_t)(packed >> 24), (uint8_t)(packed >> 16), (uint8_t)(packed >> 8),
                          (uint8_t)packed};
        cr_assert(eq(mem, MEM((void *)p, 4), MEM(hdr, 4)));

        ekv_repl_decoder_t d;
        Edgekv__Frame *f;
        cr_assert(eq(int, decode_raw(p, n, 0, &f, &d), 1), "body %d", i);
        check_frame(f, i);
        ekv_repl_frame_free(f);
        cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
        cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 0));
        cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), ""));
        ekv_repl_decoder_deinit(&d);
    }
}

Test(frame, exact_wire_bytes_of_an_ack)
{
    Edgekv__Frame f;
    Edgekv__Ack a;
    edgekv__frame__init(&f);
    edgekv__ack__init(&a);
    a.applied_seq = 1;
    f.epoch = 2;
    f.body_case = EDGEKV__FRAME__BODY_ACK;
    f.ack = &a;
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), 0));
    /* len 6 | epoch: field 1 varint 2 | ack: field 4 len 2 { field 1 varint 1 } */
    cr_assert(eq(sz, b.len, 10));
    cr_assert(eq(mem, MEM(b.data, 10), MEM("\0\0\0\x06\x08\x02\x22\x02\x08\x01", 10)));

    /* an empty body is still a body: field 4 with length 0 */
    a.applied_seq = 0;
    f.epoch = 0;
    ekv_buf_reset(&b);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), 0));
    cr_assert(eq(mem, MEM(b.data, b.len), MEM("\0\0\0\x02\x22\x00", 6)));
    ekv_repl_decoder_t d;
    Edgekv__Frame *got;
    cr_assert(eq(int, decode_raw(b.data, b.len, 0, &got, &d), 1));
    cr_assert(eq(int, (int)got->body_case, EDGEKV__FRAME__BODY_ACK));
    cr_assert(eq(u64, got->ack->applied_seq, 0));
    cr_assert(eq(u64, got->epoch, 0));
    ekv_repl_frame_free(got);
    ekv_repl_decoder_deinit(&d);
    ekv_buf_deinit(&b);
}

Test(frame, encode_appends_after_existing_bytes)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_buf_append(&b, "xyz", 3), 0));
    Edgekv__Frame f;
    make_frame(2, &f);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), 0));
    size_t n = offsets[3] - offsets[2];
    cr_assert(eq(sz, b.len, 3 + n));
    cr_assert(eq(mem, MEM(b.data, 3), MEM("xyz", 3)));
    cr_assert(eq(mem, MEM(b.data + 3, n), MEM(stream.data + offsets[2], n)));
    ekv_buf_deinit(&b);
}

/* ---- incremental feeding ------------------------------------------------------------------- */

Test(frame, several_frames_in_one_feed)
{
    ekv_repl_decoder_t d;
    ekv_repl_decoder_init(&d, 0);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, stream.data, stream.len), 0));
    int got = 0;
    cr_assert(eq(int, drain(&d, &got), 0));
    cr_assert(eq(int, got, NBODIES));
    cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 0));
    cr_assert(eq(sz, d.part.cap, 0)); /* whole frames are unpacked in place, never copied */
    ekv_repl_decoder_deinit(&d);
}

Test(frame, split_at_every_byte_boundary)
{
    /* the whole stream in two pieces, cut at every offset; each piece in its own heap block,
     * freed as soon as it is drained (ASan proves nothing keeps pointing into it) */
    for (size_t cut = 0; cut <= stream.len; cut++) {
        ekv_repl_decoder_t d;
        ekv_repl_decoder_init(&d, 0);
        int got = 0;
        size_t bounds[3] = {0, cut, stream.len};
        for (int piece = 0; piece < 2; piece++) {
            size_t n = bounds[piece + 1] - bounds[piece];
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, stream.data + bounds[piece], n);
            cr_assert(eq(int, ekv_repl_decoder_feed(&d, copy, n), 0));
            cr_assert(eq(int, drain(&d, &got), 0));
            free(copy);
        }
        cr_assert(eq(int, got, NBODIES), "cut at %zu", cut);
        cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 0));
        ekv_repl_decoder_deinit(&d);
    }
}

Test(frame, one_byte_at_a_time)
{
    ekv_repl_decoder_t d;
    ekv_repl_decoder_init(&d, 0);
    int got = 0;
    for (size_t i = 0; i < stream.len; i++) {
        uint8_t *one = malloc(1);
        *one = (uint8_t)stream.data[i];
        cr_assert(eq(int, ekv_repl_decoder_feed(&d, one, 1), 0));
        int before = got;
        cr_assert(eq(int, drain(&d, &got), 0));
        free(one);
        /* a frame pops out exactly when its last byte arrives */
        int ends_frame = 0;
        for (int k = 1; k <= NBODIES; k++)
            ends_frame |= offsets[k] == i + 1;
        cr_assert(eq(int, got - before, ends_frame), "byte %zu", i);
        size_t start = 0;
        for (int k = 0; k < NBODIES; k++)
            if (offsets[k] <= i)
                start = offsets[k];
        cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), ends_frame ? 0 : i + 1 - start));
    }
    cr_assert(eq(int, got, NBODIES));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, truncated_input_needs_more_without_error)
{
    size_t n = offsets[2]; /* hello + change batch */
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    ekv_repl_decoder_init(&d, 0);

    /* two header bytes only */
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, stream.data, 2), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    cr_assert(eq(ptr, (void *)f, NULL));
    cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 2));
    /* everything but the last byte of the second frame */
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, stream.data + 2, n - 3), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 1));
    check_frame(f, 0);
    ekv_repl_frame_free(f);
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0)); /* asking again changes nothing */
    cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), n - 1 - offsets[1]));
    cr_assert(eq(int, d.err, 0));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), ""));
    /* the last byte completes it */
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, stream.data + n - 1, 1), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 1));
    check_frame(f, 1);
    ekv_repl_frame_free(f);
    cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 0));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, empty_feed_is_need_more)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    cr_assert(eq(int, decode_raw(NULL, 0, 0, &f, &d), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, feed_before_drain_is_refused)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    ekv_repl_decoder_init(&d, 0);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, stream.data, stream.len), 0));
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, "x", 1), EKV_EINTERNAL));
    int got = 0;
    cr_assert(eq(int, drain(&d, &got), 0)); /* the first bytes are intact */
    cr_assert(eq(int, got, NBODIES));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, big_split_frame_releases_its_buffer)
{
    size_t n = 200 * 1024;
    uint8_t *val = malloc(n);
    for (size_t i = 0; i < n; i++)
        val[i] = (uint8_t)(i * 31);
    Edgekv__KeyValue e, *ep = &e;
    edgekv__key_value__init(&e);
    e.key = BIN("big");
    e.value.data = val;
    e.value.len = n;
    Edgekv__SnapshotChunk c;
    edgekv__snapshot_chunk__init(&c);
    c.column_family = "kv";
    c.n_entries = 1;
    c.entries = &ep;
    Edgekv__Frame fr;
    edgekv__frame__init(&fr);
    fr.epoch = 3;
    fr.body_case = EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK;
    fr.snapshot_chunk = &c;
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_repl_frame_encode(&fr, &b), 0));

    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    ekv_repl_decoder_init(&d, 0);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, b.data, 1000), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, b.data + 1000, b.len - 1000), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 1));
    cr_assert(eq(sz, f->snapshot_chunk->entries[0]->value.len, n));
    cr_assert(eq(mem, MEM(f->snapshot_chunk->entries[0]->value.data, n), MEM(val, n)));
    ekv_repl_frame_free(f);
    cr_assert(eq(sz, d.part.cap, 0)); /* > 64 KiB: not kept for the link's lifetime */
    ekv_repl_decoder_deinit(&d);
    ekv_buf_deinit(&b);
    free(val);
}

/* ---- the size cap -------------------------------------------------------------------------- */

Test(frame, over_cap_rejected_from_the_header_alone)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    /* 1025 announced, cap 1024, no body bytes sent at all */
    cr_assert(eq(int, decode_raw("\x00\x00\x04\x01", 4, 1024, &f, &d), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(ptr, (void *)f, NULL));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame length 1025 exceeds cap 1024"));
    cr_assert(eq(ptr, d.part.data, NULL)); /* nothing was allocated */
    ekv_repl_decoder_deinit(&d);

    /* the largest u32 against the default cap */
    cr_assert(eq(int, decode_raw("\xff\xff\xff\xff", 4, 0, &f, &d), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d),
                 "frame length 4294967295 exceeds cap 67108864"));
    cr_assert(eq(ptr, d.part.data, NULL));
    ekv_repl_decoder_deinit(&d);

    /* 64 MiB + 1 with the default cap, header split 1 + 3 */
    ekv_repl_decoder_init(&d, 0);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, "\x04", 1), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    cr_assert(eq(int,
                 ekv_repl_decoder_feed(&d,
                                       "\x00\x00\x01"
                                       "garbage",
                                       10),
                 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(
        eq(str, (char *)ekv_repl_decoder_reason(&d), "frame length 67108865 exceeds cap 67108864"));
    cr_assert(eq(ptr, d.part.data, NULL)); /* the 1-byte header buffer was released */
    ekv_repl_decoder_deinit(&d);
}

Test(frame, cap_is_inclusive)
{
    size_t n = offsets[3] - offsets[2] - EKV_REPL_HEADER_LEN; /* the ack's packed size */
    const char *p = stream.data + offsets[2];
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    cr_assert(eq(int, decode_raw(p, n + 4, n, &f, &d), 1));
    check_frame(f, 2);
    ekv_repl_frame_free(f);
    ekv_repl_decoder_deinit(&d);
    cr_assert(eq(int, decode_raw(p, n + 4, n - 1, &f, &d), EKV_EREPL_FRAME_TOO_LARGE));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, encode_refuses_over_cap)
{
    size_t n = EKV_REPL_MAX_FRAME;
    uint8_t *val = calloc(1, n);
    Edgekv__KeyValue e, *ep = &e;
    edgekv__key_value__init(&e);
    e.value.data = val;
    e.value.len = n; /* + tags and lengths: over the cap */
    Edgekv__SnapshotChunk c;
    edgekv__snapshot_chunk__init(&c);
    c.n_entries = 1;
    c.entries = &ep;
    Edgekv__Frame fr;
    edgekv__frame__init(&fr);
    fr.body_case = EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK;
    fr.snapshot_chunk = &c;
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_repl_frame_encode(&fr, &b), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(sz, b.len, 0));
    cr_assert(eq(ptr, b.data, NULL));
    ekv_buf_deinit(&b);
    free(val);
}

Test(frame, encode_respects_the_buffer_max)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 8);
    cr_assert(eq(int, ekv_buf_append(&b, "ab", 2), 0));
    Edgekv__Frame f;
    make_frame(0, &f);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), EKV_ETOO_LARGE));
    cr_assert(eq(sz, b.len, 2));
    cr_assert(eq(str, b.data, "ab"));
    ekv_buf_deinit(&b);
}

Test(frame, encode_refuses_a_frame_without_body)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    Edgekv__Frame f;
    edgekv__frame__init(&f);
    f.epoch = 9;
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), EKV_EREPL_FRAME_MALFORMED));
    f.body_case = EDGEKV__FRAME__BODY_HELLO; /* case set, pointer NULL */
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(sz, b.len, 0));
    ekv_buf_deinit(&b);
}

/* ---- malformed frames ---------------------------------------------------------------------- */

Test(frame, zero_length_is_malformed)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    cr_assert(eq(int, decode_raw("\0\0\0\0", 4, 0, &f, &d), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "zero-length frame"));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, garbage_of_a_valid_length_fails_to_unpack)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    /* 5 bytes of 0xff: a varint that never ends */
    cr_assert(eq(int, decode_raw("\0\0\0\x05\xff\xff\xff\xff\xff", 9, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(ptr, (void *)f, NULL));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (5 bytes)"));
    ekv_repl_decoder_deinit(&d);

    /* a length-delimited hello that claims 100 bytes inside a 3-byte frame */
    cr_assert(
        eq(int, decode_raw("\0\0\0\x03\x12\x64\x00", 7, 0, &f, &d), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (3 bytes)"));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, valid_protobuf_without_body_is_malformed)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    /* epoch = 7 and nothing else */
    cr_assert(eq(int, decode_raw("\0\0\0\x02\x08\x07", 6, 0, &f, &d), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame has no known body (2 bytes)"));
    ekv_repl_decoder_deinit(&d);

    /* a body type from a newer version (field 15, length 1): unknown, so no body here */
    cr_assert(eq(int, decode_raw("\0\0\0\x05\x08\x07\x7a\x01\x00", 9, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame has no known body (5 bytes)"));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, unknown_fields_are_skipped)
{
    /* epoch 2, field 50 varint 42 (unknown), ack { applied_seq 1, field 9 fixed32 (unknown) } */
    static const char bytes[] = "\0\0\0\x10"
                                "\x08\x02"
                                "\x90\x03\x2a"
                                "\x22\x07\x08\x01\x4d\x01\x02\x03\x04"
                                "\x7a\x00"; /* field 15, empty: ignored, ack stays the body */
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    cr_assert(eq(int, decode_raw(bytes, sizeof(bytes) - 1, 0, &f, &d), 1));
    cr_assert(eq(u64, f->epoch, 2));
    cr_assert(eq(int, (int)f->body_case, EDGEKV__FRAME__BODY_ACK));
    cr_assert(eq(u64, f->ack->applied_seq, 1));
    cr_assert(eq(sz, f->base.n_unknown_fields, 2));
    cr_assert(eq(sz, f->ack->base.n_unknown_fields, 1));
    ekv_repl_frame_free(f);
    ekv_repl_decoder_deinit(&d);
}

/* Regression (fuzz_repl_frame): protobuf-c accepted field 0 written as an overlong tag, then
 * re-encoded it as a one-byte tag that it rejects. Field 0 is invalid: rejected at any depth. */
Test(frame, field_number_zero_is_rejected)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    /* in the frame itself: ack { applied_seq 1 }, then field 0 varint 5 (tag 0x80 0x00) */
    cr_assert(eq(int, decode_raw("\0\0\0\x07\x22\x02\x08\x01\x80\x00\x05", 11, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame has field number 0 (7 bytes)"));
    ekv_repl_decoder_deinit(&d);
    /* two levels down: key_change_batch { changes { seq 1, field 0 varint 1 } } */
    cr_assert(eq(int, decode_raw("\0\0\0\x09\x62\x07\x0a\x05\x08\x01\x80\x00\x01", 13, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame has field number 0 (9 bytes)"));
    ekv_repl_decoder_deinit(&d);
    /* inside a ChangeBatch record the frame only sees bytes: the record's own unpack (what a
     * replica does with each record) refuses it */
    cr_assert(
        eq(int, decode_raw("\0\0\0\x09\x1a\x07\x0a\x05\x08\x01\x80\x00\x01", 13, 0, &f, &d), 1));
    cr_assert(eq(sz, f->change_batch->n_records, 1));
    cr_assert(eq(
        ptr,
        ekv_repl_record_unpack(f->change_batch->records[0].data, f->change_batch->records[0].len),
        NULL));
    ekv_repl_frame_free(f);
    ekv_repl_decoder_deinit(&d);
    /* the one-byte tag 0 is refused by protobuf-c itself */
    cr_assert(eq(int, decode_raw("\0\0\0\x06\x22\x02\x08\x01\x00\x05", 10, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (6 bytes)"));
    ekv_repl_decoder_deinit(&d);
    /* the same record without field 0 is fine */
    cr_assert(eq(int, decode_raw("\0\0\0\x06\x1a\x04\x0a\x02\x08\x01", 10, 0, &f, &d), 1));
    Edgekv__ChangeRecord *r =
        ekv_repl_record_unpack(f->change_batch->records[0].data, f->change_batch->records[0].len);
    cr_assert(not(eq(ptr, r, NULL)));
    cr_assert(eq(u64, r->seq, 1));
    edgekv__change_record__free_unpacked(r, NULL);
    ekv_repl_frame_free(f);
    ekv_repl_decoder_deinit(&d);
}

Test(frame, known_field_with_wrong_wire_type_fails_to_unpack)
{
    /* epoch (field 1, a varint) sent length-delimited, then a valid ack: protobuf-c rejects a
     * known field with the wrong wire type (C++ protobuf would keep it as an unknown field) */
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    cr_assert(eq(int, decode_raw("\0\0\0\x07\x0a\x01x\x22\x02\x08\x01", 11, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (7 bytes)"));
    ekv_repl_decoder_deinit(&d);

    /* the ack body (a message) sent as a varint */
    cr_assert(eq(int, decode_raw("\0\0\0\x02\x20\x01", 6, 0, &f, &d), EKV_EREPL_FRAME_MALFORMED));
    ekv_repl_decoder_deinit(&d);
}

Test(frame, last_oneof_member_wins)
{
    /* hello { node_id "a" } then ack { applied_seq 5 }: protobuf keeps the last member */
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    cr_assert(
        eq(int, decode_raw("\0\0\0\x09\x12\x03\x0a\x01\x61\x22\x02\x08\x05", 13, 0, &f, &d), 1));
    cr_assert(eq(int, (int)f->body_case, EDGEKV__FRAME__BODY_ACK));
    cr_assert(eq(u64, f->ack->applied_seq, 5));
    ekv_repl_frame_free(f); /* ASan: the dropped hello was freed, not leaked */
    ekv_repl_decoder_deinit(&d);
}

Test(frame, errors_are_sticky)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    /* a good frame, then garbage, then more good frames, all in one feed */
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_buf_append(&b, stream.data, offsets[1]), 0));
    cr_assert(eq(int, ekv_buf_append(&b, "\0\0\0\x01\xff", 5), 0));
    cr_assert(eq(int, ekv_buf_append(&b, stream.data, stream.len), 0));

    ekv_repl_decoder_init(&d, 0);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, b.data, b.len), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 1));
    check_frame(f, 0);
    ekv_repl_frame_free(f);
    for (int i = 0; i < 3; i++) {
        cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), EKV_EREPL_FRAME_MALFORMED));
        cr_assert(eq(ptr, (void *)f, NULL));
        cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (1 bytes)"));
    }
    cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 0)); /* input dropped */
    /* feeding a valid frame changes nothing */
    cr_assert(
        eq(int, ekv_repl_decoder_feed(&d, stream.data, stream.len), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (1 bytes)"));
    ekv_repl_decoder_deinit(&d);

    /* the same with the error found on the split (buffered) path */
    ekv_repl_decoder_init(&d, 16);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, "\0\0", 2), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 0));
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, "\0\x11", 2), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, "\0", 1), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame length 17 exceeds cap 16"));
    cr_assert(eq(sz, ekv_repl_decoder_buffered(&d), 0));
    ekv_repl_decoder_deinit(&d);
    ekv_buf_deinit(&b);
}

Test(frame, body_names)
{
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY_HELLO), "hello"));
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY_CHANGE_BATCH),
                 "change_batch"));
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY_ERROR), "error"));
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH),
                 "key_change_batch"));
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY_RESPONSE), "response"));
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY__NOT_SET), "none"));
}

/* ---- the batch encoders, records, the protocol version ------------------------------------ */

TestSuite(frame_batch, .init = setup, .fini = teardown);

/* A record packed the way the store's log does, into a malloc'd ekv_log_record_t. */
static ekv_log_record_t packed(const Edgekv__ChangeRecord *r)
{
    ekv_log_record_t out;
    memset(&out, 0, sizeof(out));
    out.seq = r->seq;
    out.len = protobuf_c_message_get_packed_size(&r->base);
    out.data = malloc(out.len ? out.len : 1);
    protobuf_c_message_pack(&r->base, out.data);
    return out;
}

static ekv_log_record_t packed_put(uint64_t seq, int64_t commit_ms, size_t value_len)
{
    Edgekv__ChangeRecord r = EDGEKV__CHANGE_RECORD__INIT;
    r.seq = seq;
    r.commit_time_ms = commit_ms;
    r.op = EDGEKV__CHANGE_OP__KV_PUT;
    r.namespace_id = BIN(ns_id);
    r.key = BIN(key0);
    uint8_t *v = malloc(value_len + 1);
    for (size_t i = 0; i < value_len; i++)
        v[i] = (uint8_t)(i * 7);
    r.value.data = v;
    r.value.len = value_len;
    r.metadata = BIN(meta0);
    r.expiration = 1900000000;
    ekv_log_record_t out = packed(&r);
    free(v);
    return out;
}

/* Decode exactly one frame from b (in one feed) and check nothing is left. */
static Edgekv__Frame *decode_one(const ekv_buf_t *b)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f = NULL, *none = NULL;
    ekv_repl_decoder_init(&d, 0);
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, b->data, b->len), 0));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &f), 1), "%s", ekv_repl_decoder_reason(&d));
    cr_assert(eq(int, ekv_repl_decoder_next(&d, &none), 0));
    ekv_repl_decoder_deinit(&d);
    return f;
}

Test(frame_batch, change_batch_carries_the_log_bytes_unchanged)
{
    /* value sizes around the 1- and 2-byte varint length boundaries, and a large one */
    const size_t sizes[] = {0, 1, 127, 128, 16383, 16384, 300000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    ekv_log_record_t lrecs[N];
    for (size_t i = 0; i < N; i++)
        lrecs[i] = packed_put(1000 + i, 1700000000000 + (int64_t)i, sizes[i]);
    for (uint64_t epoch = 0; epoch <= 300; epoch += 150) {
        ekv_buf_t out;
        ekv_buf_init(&out, 0);
        cr_assert(eq(int, ekv_repl_encode_change_batch(epoch, lrecs, N, &out), 0));
        Edgekv__Frame *got = decode_one(&out);
        cr_assert(eq(u64, got->epoch, epoch));
        cr_assert(eq(int, (int)got->body_case, EDGEKV__FRAME__BODY_CHANGE_BATCH));
        cr_assert(eq(sz, got->change_batch->n_records, N));
        for (size_t i = 0; i < N; i++) {
            ProtobufCBinaryData b = got->change_batch->records[i];
            cr_assert(eq(sz, b.len, lrecs[i].len));
            cr_assert(eq(mem, MEM(b.data, b.len), MEM(lrecs[i].data, lrecs[i].len)));
            Edgekv__ChangeRecord *r = ekv_repl_record_unpack(b.data, b.len);
            cr_assert(not(eq(ptr, r, NULL)));
            cr_assert(eq(u64, r->seq, 1000 + i));
            cr_assert(eq(i64, r->commit_time_ms, 1700000000000 + (int64_t)i));
            cr_assert(eq(sz, r->value.len, sizes[i]));
            for (size_t k = 0; k < sizes[i]; k++)
                if (r->value.data[k] != (uint8_t)(k * 7))
                    cr_fatal("record %zu value byte %zu differs", i, k);
            edgekv__change_record__free_unpacked(r, NULL);
        }
        /* decode o encode is a fixed point */
        ekv_buf_t again;
        ekv_buf_init(&again, 0);
        cr_assert(eq(int, ekv_repl_frame_encode(got, &again), 0));
        cr_assert(eq(sz, again.len, out.len));
        cr_assert(eq(mem, MEM(again.data, again.len), MEM(out.data, out.len)));
        ekv_buf_deinit(&again);
        ekv_repl_frame_free(got);
        ekv_buf_deinit(&out);
    }
    for (size_t i = 0; i < N; i++)
        free(lrecs[i].data);
}

/* The wire is the one `repeated ChangeRecord records = 1` gave (protocol 1): each record is a
 * length-delimited field 1 of the batch, its bytes verbatim. */
Test(frame_batch, exact_wire_bytes_of_a_change_batch)
{
    uint8_t r0[] = {0x08, 0x05};             /* ChangeRecord { seq 5 } */
    uint8_t r1[] = {0x08, 0x06, 0x18, 0x02}; /* ChangeRecord { seq 6, op KV_DELETE } */
    ekv_log_record_t lr[2];
    memset(lr, 0, sizeof(lr));
    lr[0].seq = 5;
    lr[0].data = r0;
    lr[0].len = sizeof(r0);
    lr[1].seq = 6;
    lr[1].data = r1;
    lr[1].len = sizeof(r1);
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, lr, 2, &b), 0));
    /* len 14 | epoch 1 | field 3 len 10 { field 1 len 2 {..} field 1 len 4 {..} } */
    static const char want[] = "\0\0\0\x0e\x08\x01\x1a\x0a\x0a\x02\x08\x05\x0a\x04\x08\x06\x18\x02";
    cr_assert(eq(sz, b.len, sizeof(want) - 1));
    cr_assert(eq(mem, MEM(b.data, b.len), MEM((void *)want, sizeof(want) - 1)));
    ekv_buf_deinit(&b);
}

Test(frame_batch, change_batch_caps)
{
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, NULL, 0, &out), EKV_EREPL_FRAME_MALFORMED));
    /* one record of L bytes with epoch 1: 2 (epoch) + 1 + 4 (batch tag, length) + 1 + 4
     * (record tag, length) + L. At exactly the cap it is encoded and decodes; one byte more is
     * refused and out is left as it was. */
    size_t at_cap = EKV_REPL_MAX_FRAME - 12;
    ekv_log_record_t big;
    memset(&big, 0, sizeof(big));
    big.seq = 1;
    big.data = calloc(1, at_cap + 1);
    big.len = at_cap + 1;
    cr_assert(eq(int, ekv_buf_append(&out, "x", 1), 0));
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, &big, 1, &out), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(sz, out.len, 1));
    ekv_buf_reset(&out);
    big.len = at_cap;
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, &big, 1, &out), 0));
    cr_assert(eq(sz, out.len, EKV_REPL_HEADER_LEN + EKV_REPL_MAX_FRAME));
    Edgekv__Frame *f = decode_one(&out);
    cr_assert(eq(sz, f->change_batch->records[0].len, at_cap));
    ekv_repl_frame_free(f);
    /* a decoder with a smaller cap refuses it from its header */
    ekv_repl_decoder_t d;
    cr_assert(eq(int, decode_raw(out.data, 4, EKV_REPL_MAX_FRAME - 1, &f, &d),
                 EKV_EREPL_FRAME_TOO_LARGE));
    ekv_repl_decoder_deinit(&d);
    /* the buffer's own max is honoured */
    ekv_buf_t small;
    ekv_buf_init(&small, 1024);
    big.len = 2000;
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, &big, 1, &small), EKV_ETOO_LARGE));
    cr_assert(eq(sz, small.len, 0));
    ekv_buf_deinit(&small);
    free(big.data);
    ekv_buf_deinit(&out);
}

Test(frame_batch, key_change_batch_is_the_keys_only_view)
{
    Edgekv__ChangeRecord r[4];
    for (int i = 0; i < 4; i++) {
        edgekv__change_record__init(&r[i]);
        r[i].seq = 500 + (uint64_t)i;
        r[i].commit_time_ms = 1795000000000ll + i;
    }
    static const char secret[] = "a-value-the-edge-must-not-get";
    r[0].op = EDGEKV__CHANGE_OP__KV_PUT;
    r[0].namespace_id = BIN(ns_id);
    r[0].key = BIN(key0);
    r[0].value = BIN(secret);
    r[0].metadata = BIN("{\"also\":\"secret\"}");
    r[0].expiration = 1900000000;
    r[1].op = EDGEKV__CHANGE_OP__NS_RENAME;
    r[1].namespace_id = BIN(ns_id);
    r[1].account_id = "acc-01";
    r[1].title = "new title";
    r[1].created_ms = 17;
    r[2].op = EDGEKV__CHANGE_OP__TOKEN_CREATE;
    r[2].account_id = "acc-01";
    r[2].title = "tok name";
    r[2].token_hash = "ab01";
    r[2].token_id = "tid";
    r[2].perms = 5;
    r[2].created_ms = 18;
    r[3].op = EDGEKV__CHANGE_OP__KV_EXPIRE;
    r[3].namespace_id = BIN(ns_id);
    r[3].key = BIN(key1);
    ekv_log_record_t lr[4];
    for (int i = 0; i < 4; i++)
        lr[i] = packed(&r[i]);

    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    cr_assert(eq(int, ekv_repl_encode_key_change_batch(9, lr, 4, &out), 0));
    cr_assert(eq(ptr, memmem(out.data, out.len, secret, sizeof(secret) - 1), NULL));
    cr_assert(eq(ptr, memmem(out.data, out.len, "secret", 6), NULL));
    Edgekv__Frame *f = decode_one(&out);
    cr_assert(eq(u64, f->epoch, 9));
    cr_assert(eq(int, (int)f->body_case, EDGEKV__FRAME__BODY_KEY_CHANGE_BATCH));
    cr_assert(eq(sz, f->key_change_batch->n_changes, 4));
    for (int i = 0; i < 4; i++) {
        const Edgekv__KeyChange *k = f->key_change_batch->changes[i];
        cr_assert(eq(u64, k->seq, r[i].seq));
        cr_assert(eq(i64, k->commit_time_ms, r[i].commit_time_ms));
        cr_assert(eq(int, (int)k->op, (int)r[i].op));
        check_bin(k->namespace_id, (const char *)r[i].namespace_id.data, r[i].namespace_id.len);
        check_bin(k->key, (const char *)r[i].key.data, r[i].key.len);
        cr_assert(eq(str, k->account_id, r[i].account_id));
        cr_assert(eq(str, k->title, r[i].title));
        cr_assert(eq(str, k->token_hash, r[i].token_hash));
        cr_assert(eq(str, k->token_id, r[i].token_id));
        cr_assert(eq(u32, k->perms, r[i].perms));
        cr_assert(eq(i64, k->created_ms, r[i].created_ms));
        cr_assert(eq(sz, k->base.n_unknown_fields, 0));
    }
    ekv_repl_frame_free(f);

    /* refused: no records, or a record that does not unpack (out unchanged) */
    ekv_buf_reset(&out);
    cr_assert(eq(int, ekv_repl_encode_key_change_batch(9, lr, 0, &out), EKV_EREPL_FRAME_MALFORMED));
    uint8_t junk[] = {0x08, 0x01, 0xff};
    ekv_log_record_t keep = lr[2];
    lr[2].data = junk;
    lr[2].len = sizeof(junk);
    cr_assert(eq(int, ekv_repl_encode_key_change_batch(9, lr, 4, &out), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(sz, out.len, 0));
    lr[2] = keep;
    ekv_buf_deinit(&out);
    for (int i = 0; i < 4; i++)
        free(lr[i].data);
}

Test(frame_batch, key_change_view_borrows_the_record)
{
    Edgekv__KeyChange k;
    ekv_repl_key_change_view(&rec[2], &k);
    cr_assert(eq(u64, k.seq, 1005));
    cr_assert(eq(i64, k.commit_time_ms, 1795000000200ll));
    cr_assert(eq(int, (int)k.op, EDGEKV__CHANGE_OP__NS_CREATE));
    cr_assert(eq(ptr, k.namespace_id.data, rec[2].namespace_id.data));
    cr_assert(eq(ptr, k.key.data, rec[2].key.data));
    cr_assert(eq(ptr, k.title, rec[2].title));
    cr_assert(eq(ptr, k.account_id, rec[2].account_id));
    cr_assert(eq(u32, k.perms, 7));
    cr_assert(eq(i64, k.created_ms, -5));
}

Test(frame_batch, record_unpack_and_commit_time)
{
    const ProtobufCBinaryData b = rec_bytes[0];
    Edgekv__ChangeRecord *r = ekv_repl_record_unpack(b.data, b.len);
    cr_assert(not(eq(ptr, r, NULL)));
    check_record(r, 0);
    edgekv__change_record__free_unpacked(r, NULL);
    cr_assert(eq(i64, ekv_repl_record_commit_ms(b.data, b.len), 1795000000123ll));
    /* truncated, garbage, field 0: no record, commit time 0 (never read past the bytes) */
    for (size_t cut = 1; cut < b.len; cut++) {
        uint8_t *copy = malloc(cut);
        memcpy(copy, b.data, cut);
        r = ekv_repl_record_unpack(copy, cut);
        if (r) /* a cut between two fields is a valid, shorter record */
            edgekv__change_record__free_unpacked(r, NULL);
        free(copy);
    }
    cr_assert(eq(ptr, ekv_repl_record_unpack(b.data, b.len - 1), NULL)); /* inside the value */
    cr_assert(eq(i64, ekv_repl_record_commit_ms(b.data, b.len - 1), 0));
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff};
    cr_assert(eq(ptr, ekv_repl_record_unpack(garbage, sizeof(garbage)), NULL));
    const uint8_t zero[] = {0x08, 0x01, 0x80, 0x00, 0x01};
    cr_assert(eq(ptr, ekv_repl_record_unpack(zero, sizeof(zero)), NULL));
    const uint8_t no_time[] = {0x08, 0x05, 0x18, 0x01}; /* seq 5, op 1 */
    cr_assert(eq(i64, ekv_repl_record_commit_ms(no_time, sizeof(no_time)), 0));
    /* a record field with the wrong wire type: key (bytes) sent as a varint */
    const uint8_t wrong[] = {0x08, 0x05, 0x28, 0x01};
    cr_assert(eq(ptr, ekv_repl_record_unpack(wrong, sizeof(wrong)), NULL));
}

Test(frame_batch, change_batch_with_a_wrong_wire_type_is_malformed)
{
    ekv_repl_decoder_t d;
    Edgekv__Frame *f;
    /* change_batch { records: field 1 as a varint } */
    cr_assert(
        eq(int, decode_raw("\0\0\0\x04\x1a\x02\x08\x01", 8, 0, &f, &d), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (4 bytes)"));
    ekv_repl_decoder_deinit(&d);
    /* a record that claims more bytes than the batch holds */
    cr_assert(eq(int, decode_raw("\0\0\0\x05\x1a\x03\x0a\x09\x08", 9, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    ekv_repl_decoder_deinit(&d);
    /* an empty record decodes as bytes; unpacked it is a record with seq 0 (the replica's
     * seq check refuses it) */
    cr_assert(eq(int, decode_raw("\0\0\0\x04\x1a\x02\x0a\x00", 8, 0, &f, &d), 1));
    cr_assert(eq(sz, f->change_batch->records[0].len, 0));
    Edgekv__ChangeRecord *r = ekv_repl_record_unpack(f->change_batch->records[0].data, 0);
    cr_assert(not(eq(ptr, r, NULL)));
    cr_assert(eq(u64, r->seq, 0));
    edgekv__change_record__free_unpacked(r, NULL);
    ekv_repl_frame_free(f);
    ekv_repl_decoder_deinit(&d);
}

Test(frame_batch, hello_protocol_version)
{
    Edgekv__Hello h;
    ekv_repl_hello_init(&h);
    cr_assert(eq(u32, h.protocol_version, EKV_REPL_PROTOCOL_VERSION));
    cr_assert(eq(u32, EKV_REPL_PROTOCOL_VERSION, 5));
    char why[128] = "untouched";
    cr_assert(eq(int, ekv_repl_hello_version_ok(&h, why, sizeof(why)), 1));
    cr_assert(eq(str, why, "untouched"));
    h.protocol_version = 0; /* a node from before the field: version 1 */
    cr_assert(eq(int, ekv_repl_hello_version_ok(&h, why, sizeof(why)), 0));
    cr_assert(eq(str, why, "peer speaks replication protocol 1, this node 5"));
    h.protocol_version = 4; /* before version-2 envelopes */
    cr_assert(eq(int, ekv_repl_hello_version_ok(&h, why, sizeof(why)), 0));
    cr_assert(eq(str, why, "peer speaks replication protocol 4, this node 5"));
    h.protocol_version = 6;
    cr_assert(eq(int, ekv_repl_hello_version_ok(&h, why, sizeof(why)), 0));
    cr_assert(eq(str, why, "peer speaks replication protocol 6, this node 5"));
    /* field 10 on the wire: hello { protocol_version 5 } */
    Edgekv__Hello only;
    ekv_repl_hello_init(&only);
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &only;
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), 0));
    cr_assert(eq(mem, MEM(b.data, b.len), MEM("\0\0\0\x04\x12\x02\x50\x05", 8)));
    ekv_buf_deinit(&b);
}
