/*
 * auth.h - link authentication: the cluster secret, the mutual HMAC-SHA256 challenge every
 * replication link runs before any other frame (proto/repl.proto, AuthFrame; docs/
 * REPLICATION.md "Link authentication"), and the failure counter and rate-limited log lines.
 *
 * The handshake state machine (ekv_repl_hs_*) is pure logic: it takes the packed bytes of
 * each pre-authentication frame and appends the frames to send to a buffer; link.c drives it
 * and holds every other frame back until it says "authenticated". Unit-tested in
 * tests/unit/replication/test_auth.c.
 *
 *   listener                                   connector
 *   hs_init: Challenge{Ln} ------------------>
 *                          <------------------ AuthProof{Cn, HMAC(k, tag|01|Ln|Cn)}
 *   verify (CRYPTO_memcmp)
 *   AuthProof{HMAC(k, tag|02|Cn|Ln)} -------->  verify: authenticated, Hello may flow
 *   authenticated
 *
 * Threads: an ekv_repl_auth_t is read-only after _new except its counter and rate-limit table
 * (atomics and a mutex), so one may be shared by links on several loops. An ekv_repl_hs_t
 * belongs to one link.
 */
#ifndef EKV_REPLICATION_AUTH_H
#define EKV_REPLICATION_AUTH_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_REPL_SECRET_MIN 32u /* bytes of cluster secret, at least */
#define EKV_REPL_SECRET_MAX 1024u
#define EKV_REPL_NONCE_LEN  32u
#define EKV_REPL_MAC_LEN    32u /* HMAC-SHA256 */
/* What the MAC covers first: names the protocol, so a MAC is never valid for anything else. */
#define EKV_REPL_AUTH_TAG "edgekv-link v1"

typedef struct ekv_repl_auth_s ekv_repl_auth_t;

/* Keep a copy of the secret (len EKV_REPL_SECRET_MIN..EKV_REPL_SECRET_MAX bytes). 0,
 * EKV_EBAD_REQUEST (length) or EKV_ENOMEM. */
int ekv_repl_auth_new(ekv_repl_auth_t **out, const void *secret, size_t len);
/* Wipe and free. NULL is a no-op. */
void ekv_repl_auth_free(ekv_repl_auth_t *a);

/* Failed handshakes since start (both sides: a peer that failed ours, or a peer whose proof
 * we refused). */
uint64_t ekv_repl_auth_failures(const ekv_repl_auth_t *a);
/* Count one failed handshake with peer ("host:port") and log it: at most one line per peer
 * host per 10 s, which says how many were suppressed since the last one. */
void ekv_repl_auth_failed(ekv_repl_auth_t *a, const char *peer, const char *reason);

/* out = HMAC-SHA256(secret, EKV_REPL_AUTH_TAG || dir || first || second), dir 1 = the
 * connector's proof (first = listener nonce), 2 = the listener's (first = connector nonce).
 * 0, or EKV_EINTERNAL (libcrypto failed; out is zeroed and must not be used). */
int ekv_repl_auth_mac(const ekv_repl_auth_t *a, uint8_t dir,
                      const uint8_t first[EKV_REPL_NONCE_LEN],
                      const uint8_t second[EKV_REPL_NONCE_LEN], uint8_t out[EKV_REPL_MAC_LEN]);

/* Fill buf with n random bytes (RAND_bytes). 0 or EKV_EINTERNAL. */
int ekv_repl_auth_random(uint8_t *buf, size_t n);

typedef enum { EKV_REPL_HS_LISTENER = 1, EKV_REPL_HS_CONNECTOR = 2 } ekv_repl_hs_side_t;

typedef enum {
    EKV_REPL_HS_WAIT_CHALLENGE, /* connector: nothing received yet */
    EKV_REPL_HS_WAIT_PROOF,     /* listener: challenge sent; connector: proof sent */
    EKV_REPL_HS_DONE,           /* authenticated */
    EKV_REPL_HS_FAILED,
} ekv_repl_hs_state_t;

typedef struct {
    const ekv_repl_auth_t *auth;
    ekv_repl_hs_side_t side;
    ekv_repl_hs_state_t state;
    uint8_t ln[EKV_REPL_NONCE_LEN]; /* listener's nonce */
    uint8_t cn[EKV_REPL_NONCE_LEN]; /* connector's nonce */
} ekv_repl_hs_t;

/* Start a handshake. A listener draws its nonce and appends its Challenge frame to out (to
 * be sent at once); a connector appends nothing and waits for it. 0 or EKV_EINTERNAL
 * (RAND_bytes failed) or out's EKV_ENOMEM. */
int ekv_repl_hs_init(ekv_repl_hs_t *h, const ekv_repl_auth_t *a, ekv_repl_hs_side_t side,
                     ekv_buf_t *out);

/*
 * One frame received before authentication (its packed bytes, header excluded). Appends
 * the answer, if any, to out. Returns
 *   0: handshake continues (send out, wait for the next frame);
 *   1: authenticated (send out first: the listener's proof), after which frames are Frames;
 *   EKV_EREPL_FRAME_MALFORMED: not a handshake frame that fits this state (why says which,
 *      e.g. "unexpected frame before authentication"), or the peer's mac is wrong ("wrong
 *      HMAC (different cluster secret?)"). The state is then FAILED and stays so.
 */
int ekv_repl_hs_step(ekv_repl_hs_t *h, const uint8_t *frame, size_t len, ekv_buf_t *out, char *why,
                     size_t why_cap);

#endif
