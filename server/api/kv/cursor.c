/*
 * cursor.c - the opaque list-keys cursor: base64url(0x01 || last key), unpadded.
 *
 * Decoding is strict (no padding, canonical trailing bits, version 1, key 1..512 bytes) so a
 * cursor is accepted only if it is exactly what ekv_cursor_encode produced for some legal key.
 * The encoded length is checked before decoding, so the scratch buffer is fixed-size.
 */
#include "server/api/kv/cursor.h"

#include "common/codec.h"

#include <stdint.h>
#include <string.h>

#define CURSOR_VERSION 1
#define CURSOR_RAW_MAX (1 + EKV_CURSOR_MAX_KEY)
/* Unpadded base64url of CURSOR_RAW_MAX bytes: ceil(513 * 4 / 3) = 684 chars. */
#define CURSOR_MAX_CHARS ((CURSOR_RAW_MAX * 4 + 2) / 3)

_Static_assert(CURSOR_MAX_CHARS < EKV_CURSOR_MAX_LEN, "EKV_CURSOR_MAX_LEN too small");

int ekv_cursor_encode(const char *key, size_t key_len, char *out)
{
    uint8_t raw[CURSOR_RAW_MAX];
    if (key_len > EKV_CURSOR_MAX_KEY)
        return -1;
    raw[0] = CURSOR_VERSION;
    if (key_len)
        memcpy(raw + 1, key, key_len);
    return (int)ekv_base64url_encode(raw, 1 + key_len, out);
}

int ekv_cursor_decode(const char *cursor, size_t len, char *key, size_t *key_len)
{
    uint8_t raw[CURSOR_RAW_MAX];
    size_t raw_len;
    if (len == 0 || len > CURSOR_MAX_CHARS || memchr(cursor, '=', len))
        return -1;
    if (ekv_base64url_decode(cursor, len, raw, &raw_len) != 0)
        return -1;
    if (raw_len < 2 || raw[0] != CURSOR_VERSION)
        return -1;
    memcpy(key, raw + 1, raw_len - 1);
    *key_len = raw_len - 1;
    return 0;
}
