/*
 * auth.c - API tokens: generation, hashing, and authentication of a request's headers.
 * Secrets are never stored: the catalog is keyed by hex SHA-256 of the secret.
 */
#include "server/api/auth.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/http/reply.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

int ekv_random_id(char out[EKV_ID_HEX_LEN + 1])
{
    uint8_t b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return EKV_EINTERNAL;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* RFC 4122 version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    ekv_hex_encode(b, sizeof(b), out);
    return 0;
}

int ekv_random_token(char out[41])
{
    uint8_t b[30];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return EKV_EINTERNAL;
    ekv_base64url_encode(b, sizeof(b), out); /* 40 chars */
    out[40] = '\0';
    return 0;
}

/* OpenSSL 3 looks the digest implementation up on every EVP_Digest(EVP_sha256()) call;
 * fetch it once. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void ekv_token_hash(const char *secret, size_t len, char out[EKV_TOKEN_HASH_LEN + 1])
{
    uint8_t md[32];
    unsigned int mdlen = 0;
    pthread_once(&sha256_once, sha256_fetch);
    EVP_Digest(secret, len, md, &mdlen, sha256_md ? sha256_md : EVP_sha256(), NULL);
    ekv_hex_encode(md, 32, out);
}

/*
 * Recently presented secrets and their hashes, so a client that sends the same token on
 * every request costs one compare instead of a SHA-256. Direct-mapped by xxh3 of the secret,
 * compared in constant time. It only caches secret -> hash: whether that hash is a live token
 * is still decided by the catalog on every request, so revocation takes effect at once.
 * Loop thread only.
 */
#define TOKEN_CACHE_SLOTS 256
#define TOKEN_CACHE_MAX   128 /* longer secrets are hashed every time */

typedef struct {
    size_t len; /* 0 = empty slot */
    char secret[TOKEN_CACHE_MAX];
    char hash[EKV_TOKEN_HASH_LEN + 1];
} token_slot_t;

static token_slot_t token_cache[TOKEN_CACHE_SLOTS];

static void token_hash_cached(const char *secret, size_t len, char out[EKV_TOKEN_HASH_LEN + 1])
{
    if (len > TOKEN_CACHE_MAX) {
        ekv_token_hash(secret, len, out);
        return;
    }
    token_slot_t *slot = &token_cache[XXH3_64bits(secret, len) % TOKEN_CACHE_SLOTS];
    if (slot->len == len && CRYPTO_memcmp(slot->secret, secret, len) == 0) {
        memcpy(out, slot->hash, EKV_TOKEN_HASH_LEN + 1);
        return;
    }
    ekv_token_hash(secret, len, out);
    slot->len = len;
    memcpy(slot->secret, secret, len);
    memcpy(slot->hash, out, EKV_TOKEN_HASH_LEN + 1);
}

/* A token is 1..512 visible ASCII characters (no spaces or controls). */
static int token_chars_ok(const char *t, size_t n)
{
    if (n == 0 || n > 512)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

int ekv_operator_token(const void *secret, size_t len, char out[EKV_OPERATOR_TOKEN_LEN + 1])
{
    static const char label[] = "edgekv-operator v1";
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (len == 0 || len > INT32_MAX ||
        !HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)label, sizeof(label) - 1, md,
              &mdlen) ||
        mdlen != 32)
        return EKV_EINTERNAL;
    ekv_hex_encode(md, 32, out);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

/* The token of an "Authorization: Bearer <token>" header (surrounding blanks ignored): 1 with
 * *secret, *len set, or 0 when the header is absent or not that form. */
static int bearer_secret(const ekv_hdr_t *authz, const char **secret, size_t *len)
{
    if (!authz->present)
        return 0;
    const char *v = authz->v;
    size_t n = authz->len;
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n < 7 || strncasecmp(v, "Bearer ", 7) != 0 || !token_chars_ok(v + 7, n - 7))
        return 0;
    *secret = v + 7;
    *len = n - 7;
    return 1;
}

int ekv_auth_operator_or_reply(const char *op_hash, ekv_req_t *req)
{
    const char *why = "no operator token configured";
    if (op_hash && op_hash[0]) {
        why = "missing or malformed Authorization header";
        const char *secret;
        size_t len;
        if (bearer_secret(&req->hdr[EKV_HDR_AUTHORIZATION], &secret, &len)) {
            char hash[EKV_TOKEN_HASH_LEN + 1];
            token_hash_cached(secret, len, hash);
            if (CRYPTO_memcmp(hash, op_hash, EKV_TOKEN_HASH_LEN) == 0)
                return 0;
            why = "not the operator token";
        }
    }
    ekv_log_warn("operator credential refused", "method=%s path=\"%s\" why=\"%s\"", req->method_str,
                 req->path ? req->path : "-", why);
    ekv_reply_error(req, EKV_EAUTH, NULL);
    return -1;
}

int ekv_auth_or_reply(ekv_catalog_t *cat, ekv_req_t *req, int verify_style, const ekv_token_t **out)
{
    const ekv_hdr_t *authz = &req->hdr[EKV_HDR_AUTHORIZATION];
    const ekv_hdr_t *key = &req->hdr[EKV_HDR_X_AUTH_KEY];
    const ekv_hdr_t *email = &req->hdr[EKV_HDR_X_AUTH_EMAIL];
    const char *secret;
    size_t len;

    if (authz->present) {
        if (!bearer_secret(authz, &secret, &len)) {
            ekv_reply_error_chain(req, EKV_EBAD_AUTH_HEADER, 6111,
                                  "Invalid format for Authorization header");
            return -1;
        }
    } else if (key->present) {
        if (!token_chars_ok(key->v, key->len) || !email->present || email->len == 0) {
            ekv_reply_error_chain(req, EKV_EBAD_AUTH_HEADER, 6103,
                                  "Invalid format for X-Auth-Key header");
            return -1;
        }
        secret = key->v;
        len = key->len;
    } else {
        ekv_reply_error(req, EKV_ENO_AUTH, NULL);
        return -1;
    }
    char hash[EKV_TOKEN_HASH_LEN + 1];
    token_hash_cached(secret, len, hash);
    const ekv_token_t *t = ekv_catalog_find_token(cat, hash);
    if (!t) {
        if (verify_style)
            ekv_reply_error(req, EKV_EBAD_TOKEN, NULL);
        else
            ekv_reply_error(req, EKV_EAUTH, NULL);
        return -1;
    }
    *out = t;
    return 0;
}
