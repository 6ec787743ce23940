/*
 * ids.c - Durable Object ids (ids.h).
 */
#include "server/api/do/ids.h"
#include "common/codec.h"
#include "common/errors.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

#define HALF (EKV_DO_ID_LEN / 2)

static void mac_half(const uint8_t key[EKV_DO_NS_KEY_LEN], const uint8_t *msg, size_t len,
                     uint8_t out[HALF])
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, EKV_DO_NS_KEY_LEN, msg, len, full, &n);
    memcpy(out, full, HALF);
}

void ekv_do_id_from_name(const uint8_t key[EKV_DO_NS_KEY_LEN], const char *name, size_t name_len,
                         uint8_t out[EKV_DO_ID_LEN])
{
    mac_half(key, (const uint8_t *)(name_len ? name : ""), name_len, out);
    mac_half(key, out, HALF, out + HALF);
}

int ekv_do_id_new_unique(const uint8_t key[EKV_DO_NS_KEY_LEN], uint8_t out[EKV_DO_ID_LEN])
{
    if (RAND_bytes(out, HALF) != 1)
        return EKV_EINTERNAL;
    mac_half(key, out, HALF, out + HALF);
    return 0;
}

int ekv_do_id_parse(const uint8_t key[EKV_DO_NS_KEY_LEN], const char *hex, size_t len,
                    uint8_t out[EKV_DO_ID_LEN])
{
    size_t n = 0;
    if (len != EKV_DO_ID_HEX_LEN || ekv_hex_decode(hex, len, out, EKV_DO_ID_LEN, &n) != 0 ||
        n != EKV_DO_ID_LEN)
        return EKV_EDO_BAD_ID;
    uint8_t want[HALF];
    mac_half(key, out, HALF, want);
    return CRYPTO_memcmp(want, out + HALF, HALF) == 0 ? 0 : EKV_EDO_WRONG_NS;
}

void ekv_do_id_hex(const uint8_t id[EKV_DO_ID_LEN], char out[EKV_DO_ID_HEX_LEN + 1])
{
    ekv_hex_encode(id, EKV_DO_ID_LEN, out);
}
