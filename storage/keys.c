/*
 * keys.c - key codec (see keys.h for the layouts).
 */
#include "storage/keys.h"
#include "common/codec.h"

#include <string.h>

void ekv_be64_put(char out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (char)(unsigned char)(v & 0xff);
        v >>= 8;
    }
}

uint64_t ekv_be64_get(const char in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (unsigned char)in[i];
    return v;
}

size_t ekv_key_kv(char *out, const uint8_t nsid[EKV_NSID_LEN], const char *key, size_t key_len)
{
    memcpy(out, nsid, EKV_NSID_LEN);
    if (key_len)
        memcpy(out + EKV_NSID_LEN, key, key_len);
    return EKV_NSID_LEN + key_len;
}

size_t ekv_key_exp(char *out, int64_t expiration, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                   size_t key_len)
{
    ekv_be64_put(out, (uint64_t)expiration);
    return EKV_KEY_BE64_LEN + ekv_key_kv(out + EKV_KEY_BE64_LEN, nsid, key, key_len);
}

int ekv_key_exp_parse(const char *k, size_t len, int64_t *expiration, const uint8_t **nsid,
                      const char **key, size_t *key_len)
{
    if (len < EKV_KEY_BE64_LEN + EKV_NSID_LEN)
        return -1;
    uint64_t e = ekv_be64_get(k);
    if (e > (uint64_t)INT64_MAX)
        return -1;
    *expiration = (int64_t)e;
    *nsid = (const uint8_t *)(k + EKV_KEY_BE64_LEN);
    *key = k + EKV_KEY_BE64_LEN + EKV_NSID_LEN;
    *key_len = len - EKV_KEY_BE64_LEN - EKV_NSID_LEN;
    return 0;
}

void ekv_key_log(char out[EKV_KEY_LOG_LEN], uint64_t seq)
{
    ekv_be64_put(out, seq);
}

int ekv_key_log_parse(const char *k, size_t len, uint64_t *seq)
{
    if (len != EKV_KEY_LOG_LEN)
        return -1;
    *seq = ekv_be64_get(k);
    return 0;
}

int ekv_key_id_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    return memchr(s, '/', n) == NULL;
}

/* pfx (2 bytes) || a[0..alen) into out. */
static int meta_key(char *out, size_t cap, const char *pfx, const char *a, size_t alen)
{
    if (cap < EKV_KEY_PFX_LEN + alen)
        return -1;
    memcpy(out, pfx, EKV_KEY_PFX_LEN);
    memcpy(out + EKV_KEY_PFX_LEN, a, alen);
    return (int)(EKV_KEY_PFX_LEN + alen);
}

int ekv_key_meta_account(char *out, size_t cap, const char *account_id)
{
    if (!ekv_key_id_ok(account_id, EKV_ID_HEX_LEN))
        return -1;
    return meta_key(out, cap, EKV_KEY_PFX_ACCOUNT, account_id, strlen(account_id));
}

int ekv_key_meta_token(char *out, size_t cap, const char *token_hash)
{
    if (!ekv_key_id_ok(token_hash, EKV_TOKEN_HASH_LEN))
        return -1;
    return meta_key(out, cap, EKV_KEY_PFX_TOKEN, token_hash, strlen(token_hash));
}

int ekv_key_meta_ns(char *out, size_t cap, const uint8_t nsid[EKV_NSID_LEN])
{
    char hex[EKV_ID_HEX_LEN + 1];
    ekv_hex_encode(nsid, EKV_NSID_LEN, hex);
    return meta_key(out, cap, EKV_KEY_PFX_NS, hex, EKV_ID_HEX_LEN);
}

int ekv_key_meta_title(char *out, size_t cap, const char *account_id, const char *title,
                       size_t title_len)
{
    if (!ekv_key_id_ok(account_id, EKV_ID_HEX_LEN) || title_len == 0 ||
        title_len > EKV_KEY_MAX_TITLE)
        return -1;
    size_t alen = strlen(account_id);
    size_t n = EKV_KEY_PFX_LEN + alen + 1 + title_len;
    if (cap < n)
        return -1;
    memcpy(out, EKV_KEY_PFX_TITLE, EKV_KEY_PFX_LEN);
    memcpy(out + EKV_KEY_PFX_LEN, account_id, alen);
    out[EKV_KEY_PFX_LEN + alen] = '/';
    memcpy(out + EKV_KEY_PFX_LEN + alen + 1, title, title_len);
    return (int)n;
}

size_t ekv_key_prefix_successor(const char *p, size_t len, char *out)
{
    while (len > 0 && (unsigned char)p[len - 1] == 0xff)
        len--;
    if (len == 0)
        return 0;
    memcpy(out, p, len);
    out[len - 1] = (char)(unsigned char)((unsigned char)p[len - 1] + 1);
    return len;
}

int ekv_key_meta_do_ns(char *out, size_t cap, const uint8_t dons[EKV_NSID_LEN])
{
    if (cap < EKV_KEY_PFX_LEN + EKV_ID_HEX_LEN)
        return -1;
    memcpy(out, EKV_KEY_PFX_DO_NS, EKV_KEY_PFX_LEN);
    char hex[EKV_ID_HEX_LEN + 1];
    ekv_hex_encode(dons, EKV_NSID_LEN, hex);
    memcpy(out + EKV_KEY_PFX_LEN, hex, EKV_ID_HEX_LEN);
    return EKV_KEY_PFX_LEN + EKV_ID_HEX_LEN;
}

size_t ekv_key_do_obj(char *out, const uint8_t dons[EKV_NSID_LEN],
                      const uint8_t objid[EKV_DO_OBJID_LEN])
{
    memcpy(out, dons, EKV_NSID_LEN);
    memcpy(out + EKV_NSID_LEN, objid, EKV_DO_OBJID_LEN);
    return EKV_KEY_DO_OBJ_LEN;
}

size_t ekv_key_do_kv(char *out, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], const char *key, size_t key_len)
{
    size_t n = ekv_key_do_obj(out, dons, objid);
    if (key_len)
        memcpy(out + n, key, key_len);
    return n + key_len;
}
