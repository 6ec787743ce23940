/*
 * Unit tests for replication/auth.c: the link-authentication handshake state machine
 * (Challenge -> AuthProof -> AuthProof, HMAC-SHA256 over the cluster secret), the pre-auth
 * frame parser (AuthFrame: only handshake bodies, no unknown fields) and the raw decoder with
 * its 64 KiB pre-auth cap, and the failure counter.
 */
#include "replication/auth.h"

#include "common/errors.h"
#include "replication/frame.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#define MEM_OF(a) ((struct cr_mem){(a), sizeof(a)})

static const char secret_a[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
static const char secret_b[] = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

static ekv_repl_auth_t *auth_of(const char *s)
{
    ekv_repl_auth_t *a = NULL;
    cr_assert(eq(int, ekv_repl_auth_new(&a, s, strlen(s)), 0));
    return a;
}

/* The single frame in buf: its packed bytes (header skipped). */
static const uint8_t *only_frame(const ekv_buf_t *b, size_t *len)
{
    cr_assert(ge(sz, b->len, EKV_REPL_HEADER_LEN));
    const uint8_t *p = (const uint8_t *)b->data;
    size_t n = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
    cr_assert(eq(sz, n + EKV_REPL_HEADER_LEN, b->len));
    *len = n;
    return p + EKV_REPL_HEADER_LEN;
}

/* Run listener la against connector ca; returns the connector's and listener's final rc. */
static void run(ekv_repl_auth_t *la, ekv_repl_auth_t *ca, int *lrc, int *crc, char *why, size_t n)
{
    ekv_repl_hs_t l, c;
    ekv_buf_t b1, b2, b3;
    ekv_buf_init(&b1, 0);
    ekv_buf_init(&b2, 0);
    ekv_buf_init(&b3, 0);
    cr_assert(eq(int, ekv_repl_hs_init(&l, la, EKV_REPL_HS_LISTENER, &b1), 0));
    cr_assert(eq(int, ekv_repl_hs_init(&c, ca, EKV_REPL_HS_CONNECTOR, &b2), 0));
    cr_assert(eq(sz, b2.len, 0), "the connector speaks second");
    size_t len;
    const uint8_t *p = only_frame(&b1, &len);
    cr_assert(eq(int, ekv_repl_hs_step(&c, p, len, &b2, why, n), 0));
    cr_assert(eq(int, (int)c.state, EKV_REPL_HS_WAIT_PROOF));
    p = only_frame(&b2, &len);
    *lrc = ekv_repl_hs_step(&l, p, len, &b3, why, n);
    *crc = 0;
    if (*lrc == 1) {
        p = only_frame(&b3, &len);
        *crc = ekv_repl_hs_step(&c, p, len, &b1, why, n);
    } else {
        cr_assert(eq(sz, b3.len, 0), "nothing sent to a peer that failed");
    }
    ekv_buf_deinit(&b1);
    ekv_buf_deinit(&b2);
    ekv_buf_deinit(&b3);
}

Test(auth, secret_length)
{
    ekv_repl_auth_t *a = NULL;
    cr_assert(eq(int, ekv_repl_auth_new(&a, "short", 5), EKV_EBAD_REQUEST));
    cr_assert(eq(ptr, a, NULL));
    cr_assert(eq(int, ekv_repl_auth_new(&a, secret_a, 31), EKV_EBAD_REQUEST));
    cr_assert(eq(int, ekv_repl_auth_new(&a, secret_a, 32), 0));
    ekv_repl_auth_free(a);
    ekv_repl_auth_free(NULL);
}

Test(auth, same_secret_authenticates_both_sides)
{
    ekv_repl_auth_t *a = auth_of(secret_a), *a2 = auth_of(secret_a);
    int lrc, crc;
    char why[200] = "";
    run(a, a2, &lrc, &crc, why, sizeof(why));
    cr_assert(eq(int, lrc, 1), "%s", why);
    cr_assert(eq(int, crc, 1), "%s", why);
    ekv_repl_auth_free(a);
    ekv_repl_auth_free(a2);
}

Test(auth, wrong_secret_is_refused_by_the_listener)
{
    ekv_repl_auth_t *a = auth_of(secret_a), *b = auth_of(secret_b);
    int lrc, crc;
    char why[200] = "";
    run(a, b, &lrc, &crc, why, sizeof(why));
    cr_assert(eq(int, lrc, EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(str, why, "wrong HMAC (different cluster secret?)"));
    ekv_repl_auth_free(a);
    ekv_repl_auth_free(b);
}

Test(auth, mac_is_hmac_sha256_of_tag_dir_nonces)
{
    ekv_repl_auth_t *a = auth_of(secret_a);
    uint8_t n1[32], n2[32], got[32], want[32];
    for (int i = 0; i < 32; i++) {
        n1[i] = (uint8_t)i;
        n2[i] = (uint8_t)(255 - i);
    }
    cr_assert(eq(int, ekv_repl_auth_mac(a, 1, n1, n2, got), 0));
    uint8_t msg[14 + 1 + 64];
    memcpy(msg, "edgekv-link v1", 14);
    msg[14] = 1;
    memcpy(msg + 15, n1, 32);
    memcpy(msg + 47, n2, 32);
    unsigned wl = 32;
    HMAC(EVP_sha256(), secret_a, (int)strlen(secret_a), msg, sizeof(msg), want, &wl);
    cr_assert(eq(mem, MEM_OF(got), MEM_OF(want)));
    /* the direction byte matters: a proof cannot be reflected */
    cr_assert(eq(int, ekv_repl_auth_mac(a, 2, n1, n2, want), 0));
    cr_assert(ne(mem, MEM_OF(got), MEM_OF(want)));
    ekv_repl_auth_free(a);
}

/* A listener's proof replayed to a connector (or the connector's own proof reflected back)
 * does not authenticate it. */
Test(auth, reflected_proof_is_refused)
{
    ekv_repl_auth_t *a = auth_of(secret_a);
    ekv_repl_hs_t l, c;
    ekv_buf_t b1, b2;
    ekv_buf_init(&b1, 0);
    ekv_buf_init(&b2, 0);
    cr_assert(eq(int, ekv_repl_hs_init(&l, a, EKV_REPL_HS_LISTENER, &b1), 0));
    cr_assert(eq(int, ekv_repl_hs_init(&c, a, EKV_REPL_HS_CONNECTOR, &b2), 0));
    size_t len;
    const uint8_t *p = only_frame(&b1, &len);
    char why[200];
    cr_assert(eq(int, ekv_repl_hs_step(&c, p, len, &b2, why, sizeof(why)), 0));
    /* the connector's own proof back at it */
    p = only_frame(&b2, &len);
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    cr_assert(
        eq(int, ekv_repl_hs_step(&c, p, len, &out, why, sizeof(why)), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(int, (int)c.state, EKV_REPL_HS_FAILED));
    /* and a failed handshake stays failed */
    cr_assert(
        eq(int, ekv_repl_hs_step(&c, p, len, &out, why, sizeof(why)), EKV_EREPL_FRAME_MALFORMED));
    cr_assert(eq(sz, out.len, 0));
    ekv_buf_deinit(&out);
    ekv_buf_deinit(&b1);
    ekv_buf_deinit(&b2);
    ekv_repl_auth_free(a);
}

/* Frames a stranger might send first: none gets past the listener's first step. */
Test(auth, listener_refuses_non_handshake_frames)
{
    ekv_repl_auth_t *a = auth_of(secret_a);
    /* the 9 bytes of issue 9 (epoch 1000 + an empty heartbeat), without the length */
    static const uint8_t forged[] = {0x08, 0xe8, 0x07, 0x2a, 0x00};
    /* a Hello */
    Edgekv__Hello h;
    ekv_repl_hello_init(&h);
    h.node_id = "thief";
    h.role = EDGEKV__NODE_ROLE__NODE_ROLE_REPLICA;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.epoch = 1000;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &h;
    ekv_buf_t hb;
    ekv_buf_init(&hb, 0);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &hb), 0));
    /* a Challenge sent to a listener */
    ekv_buf_t cb;
    ekv_buf_init(&cb, 0);
    ekv_repl_hs_t other;
    cr_assert(eq(int, ekv_repl_hs_init(&other, a, EKV_REPL_HS_LISTENER, &cb), 0));
    /* an AuthProof with an extra unknown field (field 15, varint 1) */
    static const uint8_t unknown[] = {0x72, 0x02, 0x0a, 0x00, 0x78, 0x01};
    struct {
        const uint8_t *p;
        size_t n;
        const char *why;
    } cases[] = {
        {forged, sizeof(forged), "unexpected frame before authentication"},
        {(const uint8_t *)hb.data + 4, hb.len - 4, "unexpected frame before authentication"},
        {(const uint8_t *)cb.data + 4, cb.len - 4, "expected an auth proof, got a challenge"},
        {unknown, sizeof(unknown), "unexpected frame before authentication"},
        {(const uint8_t *)"\x72\x00", 2, "auth proof with a 0-byte nonce and a 0-byte mac"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ekv_repl_hs_t l;
        ekv_buf_t out;
        ekv_buf_init(&out, 0);
        cr_assert(eq(int, ekv_repl_hs_init(&l, a, EKV_REPL_HS_LISTENER, &out), 0));
        size_t before = out.len;
        char why[200] = "";
        cr_assert(eq(int, ekv_repl_hs_step(&l, cases[i].p, cases[i].n, &out, why, sizeof(why)),
                     EKV_EREPL_FRAME_MALFORMED),
                  "case %zu", i);
        cr_assert(eq(sz, out.len, before), "case %zu: nothing more to send", i);
        cr_assert(eq(int, strncmp(why, cases[i].why, strlen(cases[i].why)), 0), "case %zu: %s", i,
                  why);
        ekv_buf_deinit(&out);
    }
    ekv_buf_deinit(&hb);
    ekv_buf_deinit(&cb);
    ekv_repl_auth_free(a);
}

Test(auth, connector_checks_the_challenge_version)
{
    ekv_repl_auth_t *a = auth_of(secret_a);
    uint8_t nonce[32] = {0};
    Edgekv__Challenge ch = EDGEKV__CHALLENGE__INIT;
    ch.nonce.data = nonce;
    ch.nonce.len = sizeof(nonce);
    ch.protocol_version = EKV_REPL_PROTOCOL_VERSION + 1;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.body_case = EDGEKV__FRAME__BODY_CHALLENGE;
    f.challenge = &ch;
    ekv_buf_t b, out;
    ekv_buf_init(&b, 0);
    ekv_buf_init(&out, 0);
    cr_assert(eq(int, ekv_repl_frame_encode(&f, &b), 0));
    ekv_repl_hs_t c;
    cr_assert(eq(int, ekv_repl_hs_init(&c, a, EKV_REPL_HS_CONNECTOR, &out), 0));
    char why[200];
    cr_assert(eq(
        int, ekv_repl_hs_step(&c, (const uint8_t *)b.data + 4, b.len - 4, &out, why, sizeof(why)),
        EKV_EREPL_FRAME_MALFORMED));
    char want[80];
    snprintf(want, sizeof(want), "peer speaks replication protocol %u, this node %u",
             EKV_REPL_PROTOCOL_VERSION + 1, EKV_REPL_PROTOCOL_VERSION);
    cr_assert(eq(str, why, want));
    cr_assert(eq(sz, out.len, 0));
    ekv_buf_deinit(&b);
    ekv_buf_deinit(&out);
    ekv_repl_auth_free(a);
}

/* Before authentication the decoder is capped at 64 KiB: a 60 MiB length prefix fails from
 * its 4 bytes, nothing buffered. */
Test(auth, raw_decoder_pre_auth_cap)
{
    ekv_repl_decoder_t d;
    ekv_repl_decoder_init(&d, EKV_REPL_AUTH_MAX_FRAME);
    static const uint8_t hdr[] = {0x03, 0xc0, 0x00, 0x00, 1, 2, 3, 4};
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, hdr, sizeof(hdr)), 0));
    const uint8_t *p;
    size_t n;
    cr_assert(eq(int, ekv_repl_decoder_next_raw(&d, &p, &n), EKV_EREPL_FRAME_TOO_LARGE));
    cr_assert(
        eq(str, (char *)ekv_repl_decoder_reason(&d), "frame length 62914560 exceeds cap 65536"));
    cr_assert(eq(sz, d.part.cap, 0));
    ekv_repl_decoder_deinit(&d);

    /* raised once authenticated: a split frame, then the raw bytes of the next */
    ekv_repl_decoder_init(&d, EKV_REPL_AUTH_MAX_FRAME);
    static const uint8_t two[] = {0, 0, 0, 2, 0x08, 0x01, 0, 0, 0, 2, 0x08, 0x02};
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, two, 3), 0));
    cr_assert(eq(int, ekv_repl_decoder_next_raw(&d, &p, &n), 0));
    cr_assert(eq(int, ekv_repl_decoder_feed(&d, two + 3, sizeof(two) - 3), 0));
    cr_assert(eq(int, ekv_repl_decoder_next_raw(&d, &p, &n), 1));
    cr_assert(eq(sz, n, 2));
    cr_assert(eq(u8, p[1], 0x01));
    ekv_repl_decoder_set_max(&d, 0);
    cr_assert(eq(sz, d.max, EKV_REPL_MAX_FRAME));
    cr_assert(eq(int, ekv_repl_decoder_next_raw(&d, &p, &n), 1));
    cr_assert(eq(u8, p[1], 0x02));
    cr_assert(eq(int, ekv_repl_decoder_next_raw(&d, &p, &n), 0));
    ekv_repl_decoder_deinit(&d);
}

Test(auth, failures_are_counted)
{
    ekv_repl_auth_t *a = auth_of(secret_a);
    cr_assert(eq(u64, ekv_repl_auth_failures(a), 0));
    for (int i = 0; i < 5; i++)
        ekv_repl_auth_failed(a, "10.0.0.1:5000", "test");
    ekv_repl_auth_failed(a, "10.0.0.2:5000", "test");
    cr_assert(eq(u64, ekv_repl_auth_failures(a), 6));
    cr_assert(eq(u64, ekv_repl_auth_failures(NULL), 0));
    ekv_repl_auth_free(a);
}
