/*
 * codec.c - hex and base64 codecs (RFC 4648), written for edgekv.
 *
 * Decoders are strict so that every byte string has exactly one accepted encoding (the list
 * cursor relies on this, and it keeps garbage out of bulk values):
 *   - only the alphabet's characters; no whitespace, no mixing of the two alphabets;
 *   - padding is optional, but if present it must be complete ("QQ==", never "QQ=") and
 *     only at the very end;
 *   - the unused low bits of the last character must be zero ("QR==" is rejected);
 *   - a lone final character (length % 4 == 1) is rejected, it cannot encode a byte.
 * Size helpers assume n < SIZE_MAX / 4 * 3 (callers bound sizes long before that).
 */
#include "common/codec.h"

static const char hex_digits[] = "0123456789abcdef";
static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void ekv_hex_encode(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

int ekv_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int ekv_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    if (in_len % 2 != 0 || in_len / 2 > out_cap)
        return -1;
    for (size_t i = 0; i < in_len / 2; i++) {
        int hi = ekv_hex_value(in[2 * i]);
        int lo = ekv_hex_value(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    *out_len = in_len / 2;
    return 0;
}

size_t ekv_base64_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? 4 : 0) + 1;
}

static size_t b64_encode(const uint8_t *in, size_t n, char *out, const char *alphabet, int pad)
{
    size_t o = 0, i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

size_t ekv_base64_encode(const uint8_t *in, size_t n, char *out)
{
    return b64_encode(in, n, out, b64_std, 1);
}

size_t ekv_base64url_encode(const uint8_t *in, size_t n, char *out)
{
    return b64_encode(in, n, out, b64_url, 0);
}

size_t ekv_base64_decoded_max(size_t in_len)
{
    return in_len / 4 * 3 + (in_len % 4) * 3 / 4;
}

/* Value of one character in the given alphabet (62 and 63 are the only differences). */
static int b64_value(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

static int b64_decode(const char *in, size_t in_len, uint8_t *out, size_t *out_len, int url)
{
    /* Strip complete padding: only "x=" / "x==" endings of a multiple-of-4 input. */
    if (in_len > 0 && in[in_len - 1] == '=') {
        if (in_len % 4 != 0)
            return -1;
        in_len--;
        if (in[in_len - 1] == '=')
            in_len--;
        /* 2 or 3 characters remain in the last quantum; a third '=' fails as a bad char. */
    }
    if (in_len % 4 == 1)
        return -1;

    size_t o = 0, i = 0;
    for (; in_len - i >= 4; i += 4) {
        int a = b64_value((unsigned char)in[i], url);
        int b = b64_value((unsigned char)in[i + 1], url);
        int c = b64_value((unsigned char)in[i + 2], url);
        int d = b64_value((unsigned char)in[i + 3], url);
        if ((a | b | c | d) < 0)
            return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    size_t rest = in_len - i;
    if (rest == 2) {
        int a = b64_value((unsigned char)in[i], url);
        int b = b64_value((unsigned char)in[i + 1], url);
        if ((a | b) < 0 || (b & 0x0f) != 0)
            return -1;
        out[o++] = (uint8_t)(a << 2 | b >> 4);
    } else if (rest == 3) {
        int a = b64_value((unsigned char)in[i], url);
        int b = b64_value((unsigned char)in[i + 1], url);
        int c = b64_value((unsigned char)in[i + 2], url);
        if ((a | b | c) < 0 || (c & 0x03) != 0)
            return -1;
        out[o++] = (uint8_t)(a << 2 | b >> 4);
        out[o++] = (uint8_t)((b & 0x0f) << 4 | c >> 2);
    }
    *out_len = o;
    return 0;
}

int ekv_base64_decode(const char *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    return b64_decode(in, in_len, out, out_len, 0);
}

int ekv_base64url_decode(const char *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    return b64_decode(in, in_len, out, out_len, 1);
}
