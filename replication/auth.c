/*
 * auth.c - cluster secret, HMAC handshake state machine, failure counting (see auth.h).
 */
#include "replication/auth.h"

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/frame.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE_SLOTS    64
#define RATE_NS       (10ull * 1000000000ull) /* one log line per peer host per 10 s */
#define RATE_HOST_CAP 64

typedef struct {
    char host[RATE_HOST_CAP];
    uint64_t last_ns; /* last line logged */
    uint64_t suppressed;
} rate_slot_t;

struct ekv_repl_auth_s {
    uint8_t *secret;
    size_t secret_len;
    uint64_t failures; /* __atomic */
    pthread_mutex_t mu;
    rate_slot_t slots[RATE_SLOTS];
};

int ekv_repl_auth_new(ekv_repl_auth_t **out, const void *secret, size_t len)
{
    *out = NULL;
    if (len < EKV_REPL_SECRET_MIN || len > EKV_REPL_SECRET_MAX)
        return EKV_EBAD_REQUEST;
    ekv_repl_auth_t *a = calloc(1, sizeof(*a));
    if (!a)
        return EKV_ENOMEM;
    a->secret = malloc(len);
    if (!a->secret) {
        free(a);
        return EKV_ENOMEM;
    }
    memcpy(a->secret, secret, len);
    a->secret_len = len;
    pthread_mutex_init(&a->mu, NULL);
    *out = a;
    return 0;
}

void ekv_repl_auth_free(ekv_repl_auth_t *a)
{
    if (!a)
        return;
    OPENSSL_cleanse(a->secret, a->secret_len);
    free(a->secret);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

uint64_t ekv_repl_auth_failures(const ekv_repl_auth_t *a)
{
    return a ? __atomic_load_n(&a->failures, __ATOMIC_RELAXED) : 0;
}

void ekv_repl_auth_failed(ekv_repl_auth_t *a, const char *peer, const char *reason)
{
    if (!a)
        return;
    __atomic_add_fetch(&a->failures, 1, __ATOMIC_RELAXED);
    /* rate-limit by host: a peer reconnecting from new ports is still one peer */
    char host[RATE_HOST_CAP];
    snprintf(host, sizeof(host), "%s", peer ? peer : "?");
    char *colon = strrchr(host, ':');
    if (colon && colon != host)
        *colon = '\0';
    uint64_t now = ekv_clock_mono_ns();
    uint64_t suppressed = 0;
    int log = 0;
    pthread_mutex_lock(&a->mu);
    rate_slot_t *s = NULL, *oldest = &a->slots[0];
    for (int i = 0; i < RATE_SLOTS; i++) {
        if (a->slots[i].host[0] && !strcmp(a->slots[i].host, host)) {
            s = &a->slots[i];
            break;
        }
        if (a->slots[i].last_ns < oldest->last_ns)
            oldest = &a->slots[i];
    }
    if (!s) { /* a new peer takes the slot logged longest ago (empty slots have 0) */
        s = oldest;
        snprintf(s->host, sizeof(s->host), "%s", host);
        s->suppressed = 0;
        log = 1;
    } else if (now - s->last_ns >= RATE_NS) {
        log = 1;
    }
    if (log) {
        suppressed = s->suppressed;
        s->suppressed = 0;
        s->last_ns = now;
    } else {
        s->suppressed++;
    }
    pthread_mutex_unlock(&a->mu);
    if (log)
        ekv_log_warn("replication link authentication failed",
                     "peer=%s reason=\"%s\" suppressed=%" PRIu64, peer ? peer : "?", reason,
                     suppressed);
}

int ekv_repl_auth_mac(const ekv_repl_auth_t *a, uint8_t dir,
                      const uint8_t first[EKV_REPL_NONCE_LEN],
                      const uint8_t second[EKV_REPL_NONCE_LEN], uint8_t out[EKV_REPL_MAC_LEN])
{
    uint8_t msg[sizeof(EKV_REPL_AUTH_TAG) - 1 + 1 + 2 * EKV_REPL_NONCE_LEN];
    size_t n = sizeof(EKV_REPL_AUTH_TAG) - 1;
    memcpy(msg, EKV_REPL_AUTH_TAG, n);
    msg[n++] = dir;
    memcpy(msg + n, first, EKV_REPL_NONCE_LEN);
    n += EKV_REPL_NONCE_LEN;
    memcpy(msg + n, second, EKV_REPL_NONCE_LEN);
    n += EKV_REPL_NONCE_LEN;
    unsigned int olen = EKV_REPL_MAC_LEN;
    if (!HMAC(EVP_sha256(), a->secret, (int)a->secret_len, msg, n, out, &olen) ||
        olen != EKV_REPL_MAC_LEN) {
        OPENSSL_cleanse(out, EKV_REPL_MAC_LEN);
        return EKV_EINTERNAL;
    }
    return 0;
}

int ekv_repl_auth_random(uint8_t *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : EKV_EINTERNAL;
}

/* Append one handshake frame (epoch 0: never acted on, and nothing to tell a stranger). */
static int send_frame(ekv_buf_t *out, Edgekv__Challenge *c, Edgekv__AuthProof *p)
{
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    if (c) {
        f.body_case = EDGEKV__FRAME__BODY_CHALLENGE;
        f.challenge = c;
    } else {
        f.body_case = EDGEKV__FRAME__BODY_AUTH_PROOF;
        f.auth_proof = p;
    }
    return ekv_repl_frame_encode(&f, out);
}

int ekv_repl_hs_init(ekv_repl_hs_t *h, const ekv_repl_auth_t *a, ekv_repl_hs_side_t side,
                     ekv_buf_t *out)
{
    memset(h, 0, sizeof(*h));
    h->auth = a;
    h->side = side;
    if (side == EKV_REPL_HS_CONNECTOR) {
        h->state = EKV_REPL_HS_WAIT_CHALLENGE;
        return ekv_repl_auth_random(h->cn, sizeof(h->cn));
    }
    h->state = EKV_REPL_HS_WAIT_PROOF;
    int rc = ekv_repl_auth_random(h->ln, sizeof(h->ln));
    if (rc)
        return rc;
    Edgekv__Challenge c = EDGEKV__CHALLENGE__INIT;
    c.nonce.data = h->ln;
    c.nonce.len = sizeof(h->ln);
    c.protocol_version = EKV_REPL_PROTOCOL_VERSION;
    return send_frame(out, &c, NULL);
}

static int hs_fail(ekv_repl_hs_t *h, char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int hs_fail(ekv_repl_hs_t *h, char *why, size_t cap, const char *fmt, ...)
{
    h->state = EKV_REPL_HS_FAILED;
    if (why && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return EKV_EREPL_FRAME_MALFORMED;
}

int ekv_repl_hs_step(ekv_repl_hs_t *h, const uint8_t *frame, size_t len, ekv_buf_t *out, char *why,
                     size_t why_cap)
{
    if (h->state == EKV_REPL_HS_FAILED || h->state == EKV_REPL_HS_DONE)
        return hs_fail(h, why, why_cap, "handshake frame after the handshake ended");
    Edgekv__AuthFrame *f = ekv_repl_auth_frame_unpack(frame, len);
    if (!f)
        return hs_fail(h, why, why_cap,
                       "unexpected frame before authentication (%zu bytes, not a handshake "
                       "frame; is the peer's cluster secret set, and its version 3 or later?)",
                       len);
    int rc;
    uint8_t mac[EKV_REPL_MAC_LEN];
    if (h->state == EKV_REPL_HS_WAIT_CHALLENGE) { /* connector */
        const Edgekv__Challenge *c = f->challenge;
        if (f->body_case != EDGEKV__AUTH_FRAME__BODY_CHALLENGE) {
            rc = hs_fail(h, why, why_cap, "expected a challenge, got an auth proof");
        } else if (c->protocol_version != EKV_REPL_PROTOCOL_VERSION) {
            rc = hs_fail(h, why, why_cap, "peer speaks replication protocol %u, this node %u",
                         c->protocol_version, EKV_REPL_PROTOCOL_VERSION);
        } else if (c->nonce.len != EKV_REPL_NONCE_LEN) {
            rc = hs_fail(h, why, why_cap, "challenge nonce of %zu bytes", c->nonce.len);
        } else {
            memcpy(h->ln, c->nonce.data, EKV_REPL_NONCE_LEN);
            if (ekv_repl_auth_mac(h->auth, 1, h->ln, h->cn, mac)) {
                rc = hs_fail(h, why, why_cap, "HMAC failed (out of memory?)");
                goto out;
            }
            Edgekv__AuthProof p = EDGEKV__AUTH_PROOF__INIT;
            p.nonce.data = h->cn;
            p.nonce.len = sizeof(h->cn);
            p.mac.data = mac;
            p.mac.len = sizeof(mac);
            rc = send_frame(out, NULL, &p);
            h->state = rc ? EKV_REPL_HS_FAILED : EKV_REPL_HS_WAIT_PROOF;
        }
    } else if (f->body_case != EDGEKV__AUTH_FRAME__BODY_AUTH_PROOF) {
        rc = hs_fail(h, why, why_cap, "expected an auth proof, got a challenge");
    } else if (h->side == EKV_REPL_HS_LISTENER) {
        const Edgekv__AuthProof *p = f->auth_proof;
        if (p->nonce.len != EKV_REPL_NONCE_LEN || p->mac.len != EKV_REPL_MAC_LEN) {
            rc = hs_fail(h, why, why_cap, "auth proof with a %zu-byte nonce and a %zu-byte mac",
                         p->nonce.len, p->mac.len);
        } else {
            memcpy(h->cn, p->nonce.data, EKV_REPL_NONCE_LEN);
            if (ekv_repl_auth_mac(h->auth, 1, h->ln, h->cn, mac)) {
                rc = hs_fail(h, why, why_cap, "HMAC failed (out of memory?)");
            } else if (CRYPTO_memcmp(mac, p->mac.data, EKV_REPL_MAC_LEN) != 0) {
                rc = hs_fail(h, why, why_cap, "wrong HMAC (different cluster secret?)");
            } else if (ekv_repl_auth_mac(h->auth, 2, h->cn, h->ln, mac)) {
                rc = hs_fail(h, why, why_cap, "HMAC failed (out of memory?)");
            } else {
                Edgekv__AuthProof q = EDGEKV__AUTH_PROOF__INIT;
                q.mac.data = mac;
                q.mac.len = sizeof(mac);
                rc = send_frame(out, NULL, &q);
                h->state = rc ? EKV_REPL_HS_FAILED : EKV_REPL_HS_DONE;
                rc = rc ? rc : 1;
            }
        }
    } else { /* connector, proof sent */
        const Edgekv__AuthProof *p = f->auth_proof;
        if (p->nonce.len != 0 || p->mac.len != EKV_REPL_MAC_LEN) {
            rc = hs_fail(h, why, why_cap, "auth proof with a %zu-byte nonce and a %zu-byte mac",
                         p->nonce.len, p->mac.len);
        } else {
            if (ekv_repl_auth_mac(h->auth, 2, h->cn, h->ln, mac)) {
                rc = hs_fail(h, why, why_cap, "HMAC failed (out of memory?)");
            } else if (CRYPTO_memcmp(mac, p->mac.data, EKV_REPL_MAC_LEN) != 0) {
                rc = hs_fail(h, why, why_cap,
                             "wrong HMAC from the listener (different cluster "
                             "secret?)");
            } else {
                h->state = EKV_REPL_HS_DONE;
                rc = 1;
            }
        }
    }
out:
    OPENSSL_cleanse(mac, sizeof(mac));
    edgekv__auth_frame__free_unpacked(f, NULL);
    return rc;
}
