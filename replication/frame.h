/*
 * frame.h - the replication wire format: u32 big-endian length + one packed protobuf Frame.
 *
 *   +----------------+----------------------------------------+
 *   | length (u32 BE)| edgekv.Frame, protobuf-packed (length) |
 *   +----------------+----------------------------------------+
 *
 * The Frame message and its bodies are defined in proto/repl.proto (generated code:
 * repl.pb-c.h in the build tree). This file is pure logic: no loop, no thread, no I/O, so it
 * is unit-tested and fuzzed directly (tests/unit/replication/test_frame.c,
 * tests/fuzz/fuzz_repl_frame.c).
 *
 * Decoding is incremental and bounded: the length is checked against the decoder's cap as soon
 * as its 4 bytes are in, before any byte of the body is buffered, and the buffer only grows
 * with bytes actually received (a peer that announces 64 MiB and sends 10 bytes costs 10
 * bytes, not 64 MiB). A frame that is entirely inside the fed bytes is unpacked in place,
 * without a copy; only a frame split across feeds is buffered, and never more than one.
 *
 * Errors are sticky: after the first error the decoder returns that same error from every
 * call, and ekv_repl_decoder_reason() says why, for the log line. The owner then closes the
 * link (never the process). Which body types are acceptable in which link state is the state
 * machines' business, not the codec's: any Frame with a known body decodes.
 *
 * Not thread-safe: a decoder belongs to one connection, used from one thread.
 */
#ifndef EKV_REPLICATION_FRAME_H
#define EKV_REPLICATION_FRAME_H

#include "common/buf.h"
#include "repl.pb-c.h"
#include "storage/store.h"

#include <stddef.h>
#include <stdint.h>

/* Default (and encoder) cap on the packed Frame, header excluded: 64 MiB. */
#define EKV_REPL_MAX_FRAME (64u * 1024u * 1024u)
/* Bytes of the length prefix. */
#define EKV_REPL_HEADER_LEN 4u

/* The replication protocol this build speaks, sent in every Hello (proto/repl.proto has the
 * version history). A peer of another version is refused (REPL_ERROR_VERSION). */
#define EKV_REPL_PROTOCOL_VERSION 5u

/* Initialise a Hello to EDGEKV__HELLO__INIT plus this build's protocol_version. */
void ekv_repl_hello_init(Edgekv__Hello *h);

/* Whether a peer's Hello speaks EKV_REPL_PROTOCOL_VERSION: 1 if so; else 0 and why (e.g.
 * "peer speaks replication protocol 1, this node 2") is written to why[0..n). */
int ekv_repl_hello_version_ok(const Edgekv__Hello *h, char *why, size_t n);

/*
 * Append one frame (header + packed f) to out. f must have a body set (and its pointer
 * non-NULL); its packed size must be 1..EKV_REPL_MAX_FRAME. On error out is unchanged.
 * Returns 0, EKV_EREPL_FRAME_MALFORMED (no body), EKV_EREPL_FRAME_TOO_LARGE (packed size over
 * the cap), or ekv_buf's EKV_ETOO_LARGE (out's own max) / EKV_ENOMEM.
 */
int ekv_repl_frame_encode(const Edgekv__Frame *f, ekv_buf_t *out);

/*
 * Append a ChangeBatch frame whose records are the packed ChangeRecords recs[0..n) (as read
 * from the log by ekv_store_log_read), packed by protobuf-c straight from recs: the record
 * bytes are copied once, into out, never unpacked. n >= 1.
 * Returns 0, EKV_EREPL_FRAME_MALFORMED (n == 0), or ekv_repl_frame_encode's errors (out
 * unchanged).
 */
int ekv_repl_encode_change_batch(uint64_t epoch, const ekv_log_record_t *recs, size_t n,
                                 ekv_buf_t *out);

/*
 * Append a KeyChangeBatch frame (an edge's keys-only stream) for the packed ChangeRecords
 * recs[0..n): each record is unpacked (ekv_repl_record_unpack) and sent as its KeyChange.
 * n >= 1. Returns 0, EKV_EREPL_FRAME_MALFORMED (n == 0, or a record that does not unpack),
 * EKV_ENOMEM, or ekv_repl_frame_encode's errors (out unchanged).
 */
int ekv_repl_encode_key_change_batch(uint64_t epoch, const ekv_log_record_t *recs, size_t n,
                                     ekv_buf_t *out);

/* Unpack one packed ChangeRecord (a log record, or an element of ChangeBatch.records) with
 * protobuf-c. NULL if the bytes do not unpack (or out of memory) or carry field number 0 (see
 * ekv_repl_decoder_next). Free with edgekv__change_record__free_unpacked(r, NULL). */
Edgekv__ChangeRecord *ekv_repl_record_unpack(const uint8_t *data, size_t len);

/* Fill *out with the keys-only view of r: every KeyChange field from r's field of the same
 * number. The bytes and strings are r's (borrowed: out is valid while r is). */
void ekv_repl_key_change_view(const Edgekv__ChangeRecord *r, Edgekv__KeyChange *out);

/* commit_time_ms of a packed ChangeRecord; 0 if it does not unpack. Unpacks the record: O(len),
 * for one record per batch. */
int64_t ekv_repl_record_commit_ms(const uint8_t *data, size_t len);

/* Free a frame returned by ekv_repl_decoder_next(). NULL is a no-op. Not for frames the
 * caller built itself. */
void ekv_repl_frame_free(Edgekv__Frame *f);

/* Name of a body case for log lines ("hello", "change_batch", ..., "none"); never NULL. */
const char *ekv_repl_frame_body_name(Edgekv__Frame__BodyCase body_case);

typedef struct {
    const uint8_t *in; /* fed bytes not consumed yet (the caller's memory) */
    size_t in_len;     /* ... and how many */
    ekv_buf_t part;    /* the one frame split across feeds (header included), if any */
    size_t max;        /* cap on a frame's packed length */
    int part_done;     /* part holds a frame already returned: reset it on the next call */
    int err;           /* 0, or the first (sticky) error */
    char reason[112];  /* why err, for the log; "" while err == 0 */
} ekv_repl_decoder_t;

/* Initialise an embedded decoder. max = cap on a frame's packed length (header excluded);
 * 0 means EKV_REPL_MAX_FRAME. Allocates nothing. */
void ekv_repl_decoder_init(ekv_repl_decoder_t *d, size_t max);
/* Release the buffered partial frame, if any. Frames already returned stay valid. */
void ekv_repl_decoder_deinit(ekv_repl_decoder_t *d);

/*
 * Hand the decoder the next bytes read from the link. The decoder keeps a pointer to them
 * (no copy): they must stay valid and unchanged until ekv_repl_decoder_next() has returned 0
 * or an error. Call _next() until then before feeding again.
 * Returns 0, the sticky error if the decoder has failed (bytes ignored), or EKV_EINTERNAL if
 * the previous bytes are not consumed yet (caller bug; the state is unchanged).
 */
int ekv_repl_decoder_feed(ekv_repl_decoder_t *d, const void *bytes, size_t len);

/*
 * Take the next complete frame out of the fed bytes.
 *   1: *out is a frame with a body set; the caller owns it (ekv_repl_frame_free). It copies
 *      everything it needs: it stays valid after the fed bytes are gone.
 *   0: all fed bytes are consumed (any tail of a frame is buffered); feed more.
 *   EKV_EREPL_FRAME_TOO_LARGE: announced length over the cap (detected from the 4 header
 *      bytes alone, nothing allocated for the body).
 *   EKV_EREPL_FRAME_MALFORMED: zero length, bytes that protobuf-c cannot unpack, a Frame
 *      without a known body (e.g. a body type from a newer version), or field number 0
 *      anywhere in it (invalid protobuf that protobuf-c lets through, see frame.c). The
 *      records of a ChangeBatch are bytes here: they are checked when the replica unpacks
 *      them (ekv_repl_record_unpack).
 *   EKV_ENOMEM: could not buffer a split frame.
 * Errors are sticky (see the file comment). *out is NULL unless 1 is returned.
 */
int ekv_repl_decoder_next(ekv_repl_decoder_t *d, Edgekv__Frame **out);

/*
 * Same as ekv_repl_decoder_next, but the frame is not unpacked: 1 and its packed bytes in
 * *out / *len, valid until the next call (or feed/deinit). Used before a link is
 * authenticated, where frames are unpacked as AuthFrame (ekv_repl_auth_frame_unpack).
 */
int ekv_repl_decoder_next_raw(ekv_repl_decoder_t *d, const uint8_t **out, size_t *len);

/* Change the cap on a frame's packed length (0 = EKV_REPL_MAX_FRAME) for the frames after
 * the one last returned (a link raises it from EKV_REPL_AUTH_MAX_FRAME once authenticated). */
void ekv_repl_decoder_set_max(ekv_repl_decoder_t *d, size_t max);

/* Cap on a frame before its link is authenticated. */
#define EKV_REPL_AUTH_MAX_FRAME (64u * 1024u)

/*
 * Unpack a frame received before authentication as the handshake-only AuthFrame (see
 * proto/repl.proto): NULL unless it unpacks with exactly one of its bodies (Challenge or
 * AuthProof), no unknown field (any other Frame body is one) and no field number 0. The
 * fields' lengths are the caller's to check. Free with edgekv__auth_frame__free_unpacked.
 */
Edgekv__AuthFrame *ekv_repl_auth_frame_unpack(const uint8_t *data, size_t len);

/* Why the decoder failed, e.g. "frame length 70000000 exceeds cap 67108864"; "" if it has
 * not failed. Valid until the decoder is deinitialised. */
const char *ekv_repl_decoder_reason(const ekv_repl_decoder_t *d);

/* Bytes of a partial frame held by the decoder (header included): non-zero when the link
 * closes means the peer sent a truncated frame. */
size_t ekv_repl_decoder_buffered(const ekv_repl_decoder_t *d);

#endif
