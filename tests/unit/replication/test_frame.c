/*
 * Unit tests for replication/frame.c: the u32-BE-length + protobuf Frame codec.
 * Covers a roundtrip of every body type with exact field values, incremental feeding split at
 * every byte, several frames per feed, truncation, the size cap (checked before allocating),
 * zero length, garbage, missing/unknown bodies, unknown and wrong-type fields, sticky errors.
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

#define NBODIES 8

static const Edgekv__Frame__BodyCase cases[NBODIES] = {
    EDGEKV__FRAME__BODY_HELLO,
    EDGEKV__FRAME__BODY_CHANGE_BATCH,
    EDGEKV__FRAME__BODY_ACK,
    EDGEKV__FRAME__BODY_HEARTBEAT,
    EDGEKV__FRAME__BODY_SNAPSHOT_BEGIN,
    EDGEKV__FRAME__BODY_SNAPSHOT_CHUNK,
    EDGEKV__FRAME__BODY_SNAPSHOT_END,
    EDGEKV__FRAME__BODY_ERROR,
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
static Edgekv__ChangeRecord *recs[3];
static Edgekv__ChangeBatch batch;
static Edgekv__Ack ack;
static Edgekv__Heartbeat hb;
static Edgekv__SnapshotBegin sbegin;
static Edgekv__KeyValue kv[2];
static Edgekv__KeyValue *kvs[2];
static Edgekv__SnapshotChunk chunk;
static Edgekv__SnapshotEnd send_;
static Edgekv__Error err_;

static void fixtures(void)
{
    edgekv__hello__init(&hello);
    hello.node_id = "replica-1";
    hello.role = EDGEKV__NODE_ROLE__NODE_ROLE_REPLICA;
    hello.last_applied_seq = 123456789012ull;
    hello.history_id = "9f0c2a5e-history";
    hello.epoch = 6;

    for (int i = 0; i < 3; i++) {
        edgekv__change_record__init(&rec[i]);
        recs[i] = &rec[i];
    }
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
    batch.n_records = 3;
    batch.records = recs;

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
        break;
    case EDGEKV__FRAME__BODY_CHANGE_BATCH:
        cr_assert(eq(sz, f->change_batch->n_records, 3));
        for (int r = 0; r < 3; r++)
            check_record(f->change_batch->records[r], r);
        CHECK_BIN(f->change_batch->records[0]->key, "user\x00:42");
        CHECK_BIN(f->change_batch->records[0]->value, "\x00\xff\x00\x01 value \x00");
        CHECK_BIN(f->change_batch->records[1]->key, "\x00");
        cr_assert(eq(sz, f->change_batch->records[1]->value.len, 0));
        cr_assert(eq(u64, f->change_batch->records[2]->seq, 1005));
        cr_assert(eq(str, f->change_batch->records[2]->title, "my namespace"));
        break;
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
    /* two levels down: change_batch { records { seq 1, field 0 varint 1 } } */
    cr_assert(eq(int, decode_raw("\0\0\0\x09\x1a\x07\x0a\x05\x08\x01\x80\x00\x01", 13, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "frame has field number 0 (9 bytes)"));
    ekv_repl_decoder_deinit(&d);
    /* the one-byte tag 0 is refused by protobuf-c itself */
    cr_assert(eq(int, decode_raw("\0\0\0\x06\x22\x02\x08\x01\x00\x05", 10, 0, &f, &d),
                 EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, (char *)ekv_repl_decoder_reason(&d), "protobuf unpack failed (6 bytes)"));
    ekv_repl_decoder_deinit(&d);
    /* the same record without field 0 is fine */
    cr_assert(eq(int, decode_raw("\0\0\0\x06\x1a\x04\x0a\x02\x08\x01", 10, 0, &f, &d), 1));
    cr_assert(eq(u64, f->change_batch->records[0]->seq, 1));
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
    cr_assert(eq(str, (char *)ekv_repl_frame_body_name(EDGEKV__FRAME__BODY__NOT_SET), "none"));
}

/* ---- the primary's direct ChangeBatch encoder ------------------------------------------- */

/* Pack a record the way the store's log does, into a malloc'd ekv_log_record_t. */
static ekv_log_record_t packed_record(uint64_t seq, int64_t commit_ms, const char *key,
                                      size_t key_len, size_t value_len)
{
    Edgekv__ChangeRecord r = EDGEKV__CHANGE_RECORD__INIT;
    r.seq = seq;
    r.commit_time_ms = commit_ms;
    r.op = EDGEKV__CHANGE_OP__KV_PUT;
    r.namespace_id = BIN(ns_id);
    r.key.data = (uint8_t *)key;
    r.key.len = key_len;
    uint8_t *v = malloc(value_len + 1);
    for (size_t i = 0; i < value_len; i++)
        v[i] = (uint8_t)(i * 7);
    r.value.data = v;
    r.value.len = value_len;
    ekv_log_record_t out = {seq, NULL, 0};
    out.len = protobuf_c_message_get_packed_size(&r.base);
    out.data = malloc(out.len);
    protobuf_c_message_pack(&r.base, out.data);
    free(v);
    return out;
}

Test(frame_direct, change_batch_equals_protobuf_packing_and_decodes)
{
    /* value sizes around the 1- and 2-byte varint length boundaries, and a large one */
    const size_t sizes[] = {0, 1, 127, 128, 16383, 16384, 300000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    ekv_log_record_t lrecs[N];
    for (size_t i = 0; i < N; i++)
        lrecs[i] =
            packed_record(1000 + i, 1700000000000 + (int64_t)i, key0, sizeof(key0) - 1, sizes[i]);
    for (uint64_t epoch = 1; epoch <= 300; epoch += 299) {
        ekv_buf_t direct, packed;
        ekv_buf_init(&direct, 0);
        ekv_buf_init(&packed, 0);
        cr_assert(eq(int, ekv_repl_encode_change_batch(epoch, lrecs, N, &direct), 0));

        /* the same frame built and packed by protobuf-c */
        Edgekv__ChangeRecord *un[N];
        for (size_t i = 0; i < N; i++)
            un[i] = edgekv__change_record__unpack(NULL, lrecs[i].len, lrecs[i].data);
        Edgekv__ChangeBatch b = EDGEKV__CHANGE_BATCH__INIT;
        b.n_records = N;
        b.records = un;
        Edgekv__Frame f = EDGEKV__FRAME__INIT;
        f.epoch = epoch;
        f.body_case = EDGEKV__FRAME__BODY_CHANGE_BATCH;
        f.change_batch = &b;
        cr_assert(eq(int, ekv_repl_frame_encode(&f, &packed), 0));
        cr_assert(eq(sz, direct.len, packed.len));
        cr_assert(eq(mem, MEM(direct.data, direct.len), MEM(packed.data, packed.len)));

        /* and it decodes to the same records */
        ekv_repl_decoder_t d;
        ekv_repl_decoder_init(&d, 0);
        Edgekv__Frame *got = NULL;
        cr_assert(eq(int, ekv_repl_decoder_feed(&d, direct.data, direct.len), 0));
        cr_assert(eq(int, ekv_repl_decoder_next(&d, &got), 1));
        cr_assert(eq(u64, got->epoch, epoch));
        cr_assert(eq(sz, got->change_batch->n_records, N));
        for (size_t i = 0; i < N; i++) {
            cr_assert(eq(u64, got->change_batch->records[i]->seq, 1000 + i));
            cr_assert(eq(sz, got->change_batch->records[i]->value.len, sizes[i]));
        }
        ekv_repl_frame_free(got);
        ekv_repl_decoder_deinit(&d);
        for (size_t i = 0; i < N; i++)
            edgekv__change_record__free_unpacked(un[i], NULL);
        ekv_buf_deinit(&direct);
        ekv_buf_deinit(&packed);
    }
    for (size_t i = 0; i < N; i++)
        free(lrecs[i].data);
}

Test(frame_direct, change_batch_refuses_empty_and_oversized)
{
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, NULL, 0, &out), EKV_EREPL_FRAME_MALFORMED));
    ekv_log_record_t big = {1, malloc(EKV_REPL_MAX_FRAME), EKV_REPL_MAX_FRAME};
    cr_assert(eq(int, ekv_repl_encode_change_batch(1, &big, 1, &out), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(eq(sz, out.len, 0));
    free(big.data);
    ekv_buf_deinit(&out);
}

Test(frame_direct, commit_time_read_from_packed_record)
{
    ekv_log_record_t r = packed_record(77, 1712345678901, key1, sizeof(key1) - 1, 10);
    cr_assert(eq(i64, ekv_repl_record_commit_ms(r.data, r.len), 1712345678901));
    cr_assert(eq(i64, ekv_repl_record_commit_ms(r.data, 1), 0)); /* truncated */
    const uint8_t no_time[] = {0x08, 0x05, 0x18, 0x01};          /* seq 5, op 1 */
    cr_assert(eq(i64, ekv_repl_record_commit_ms(no_time, sizeof(no_time)), 0));
    free(r.data);
}

Test(frame_direct, strip_values_keeps_every_other_field)
{
    Edgekv__ChangeRecord r = EDGEKV__CHANGE_RECORD__INIT;
    r.seq = 42;
    r.commit_time_ms = 1712345678901;
    r.op = EDGEKV__CHANGE_OP__KV_PUT;
    r.namespace_id = BIN(ns_id);
    r.key = BIN(key0);
    r.value = BIN(val0);
    r.metadata = BIN(meta0);
    r.expiration = 1900000000;
    r.account_id = "acct";
    r.title = "t";
    size_t n = protobuf_c_message_get_packed_size(&r.base);
    uint8_t *packed = malloc(n);
    protobuf_c_message_pack(&r.base, packed);
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    cr_assert(eq(int, ekv_repl_record_strip_values(packed, n, &out), 0));
    cr_assert(lt(sz, out.len, n));
    Edgekv__ChangeRecord *s =
        edgekv__change_record__unpack(NULL, out.len, (const uint8_t *)out.data);
    cr_assert_not_null(s);
    cr_assert(eq(u64, s->seq, 42));
    cr_assert(eq(i64, s->commit_time_ms, 1712345678901));
    cr_assert(eq(int, s->op, EDGEKV__CHANGE_OP__KV_PUT));
    cr_assert(
        eq(mem, MEM(s->namespace_id.data, s->namespace_id.len), MEM(ns_id, sizeof(ns_id) - 1)));
    cr_assert(eq(mem, MEM(s->key.data, s->key.len), MEM(key0, sizeof(key0) - 1)));
    cr_assert(eq(sz, s->value.len, 0));
    cr_assert(eq(sz, s->metadata.len, 0));
    cr_assert(eq(i64, s->expiration, 1900000000));
    cr_assert(eq(str, s->account_id, "acct"));
    edgekv__change_record__free_unpacked(s, NULL);
    /* truncated input is refused, not read past */
    ekv_buf_reset(&out);
    cr_assert(
        eq(int, ekv_repl_record_strip_values(packed, n - 1, &out), EKV_EREPL_FRAME_MALFORMED));
    free(packed);
    ekv_buf_deinit(&out);
}
