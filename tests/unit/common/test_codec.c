/* Unit tests for common/codec.c: hex and base64 (standard + URL-safe). */
#include "common/codec.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

/* ---- hex ------------------------------------------------------------------------------- */

Test(hex, encode_lowercase_with_nul)
{
    const uint8_t in[] = {0x00, 0x01, 0xab, 0xcd, 0xef, 0xff, 0x10};
    char out[2 * sizeof(in) + 2];
    memset(out, 'X', sizeof(out));
    ekv_hex_encode(in, sizeof(in), out);
    cr_assert(eq(str, out, "0001abcdefff10"));
    cr_assert(eq(chr, out[2 * sizeof(in) + 1], 'X')); /* nothing written past the NUL */
}

Test(hex, encode_empty)
{
    char out[1] = {'X'};
    ekv_hex_encode(NULL, 0, out);
    cr_assert(eq(chr, out[0], '\0'));
}

Test(hex, decode_either_case)
{
    uint8_t out[4];
    size_t n = 99;
    cr_assert(eq(int, ekv_hex_decode(S("00aBCdfF"), out, sizeof(out), &n), 0));
    cr_assert(eq(sz, n, 4));
    cr_assert(eq(mem, MEM(out, 4), MEM("\x00\xab\xcd\xff", 4)));
}

Test(hex, decode_empty)
{
    uint8_t out[1];
    size_t n = 99;
    cr_assert(eq(int, ekv_hex_decode("", 0, out, 0, &n), 0));
    cr_assert(eq(sz, n, 0));
}

Test(hex, decode_rejects_odd_length_bad_chars_and_small_buffer)
{
    uint8_t out[8];
    size_t n = 77;
    cr_assert(eq(int, ekv_hex_decode(S("abc"), out, sizeof(out), &n), -1));
    cr_assert(eq(int, ekv_hex_decode(S("0g"), out, sizeof(out), &n), -1));
    cr_assert(eq(int, ekv_hex_decode(S("g0"), out, sizeof(out), &n), -1));
    cr_assert(eq(int, ekv_hex_decode(S(" 0"), out, sizeof(out), &n), -1));
    cr_assert(eq(int, ekv_hex_decode(S("0x"), out, sizeof(out), &n), -1));
    cr_assert(eq(int, ekv_hex_decode("0\0", 2, out, sizeof(out), &n), -1));
    /* 3 bytes of output needed, only 2 available */
    cr_assert(eq(int, ekv_hex_decode(S("aabbcc"), out, 2, &n), -1));
    cr_assert(eq(int, ekv_hex_decode(S("aabbcc"), out, 3, &n), 0));
    cr_assert(eq(sz, n, 3));
}

Test(hex, roundtrip_all_bytes)
{
    uint8_t in[256], back[256];
    char txt[513];
    size_t n;
    for (int i = 0; i < 256; i++)
        in[i] = (uint8_t)i;
    ekv_hex_encode(in, 256, txt);
    cr_assert(eq(sz, strlen(txt), 512));
    cr_assert(eq(int, ekv_hex_decode(txt, 512, back, sizeof(back), &n), 0));
    cr_assert(eq(sz, n, 256));
    cr_assert(eq(mem, MEM(back, 256), MEM(in, 256)));
}

/* ---- base64 sizes ---------------------------------------------------------------------- */

Test(base64, encoded_len_includes_nul_and_padding)
{
    cr_assert(eq(sz, ekv_base64_encoded_len(0), 1));
    cr_assert(eq(sz, ekv_base64_encoded_len(1), 5));
    cr_assert(eq(sz, ekv_base64_encoded_len(2), 5));
    cr_assert(eq(sz, ekv_base64_encoded_len(3), 5));
    cr_assert(eq(sz, ekv_base64_encoded_len(4), 9));
    cr_assert(eq(sz, ekv_base64_encoded_len(513), 685));
}

Test(base64, decoded_max)
{
    cr_assert(eq(sz, ekv_base64_decoded_max(0), 0));
    cr_assert(eq(sz, ekv_base64_decoded_max(2), 1));
    cr_assert(eq(sz, ekv_base64_decoded_max(3), 2));
    cr_assert(eq(sz, ekv_base64_decoded_max(4), 3));
    cr_assert(eq(sz, ekv_base64_decoded_max(8), 6));
    cr_assert(eq(sz, ekv_base64_decoded_max(684), 513));
}

/* ---- base64 standard ------------------------------------------------------------------- */

/* RFC 4648 section 10 test vectors. */
static const char *const rfc_plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const rfc_b64[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const rfc_b64url[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

Test(base64, rfc4648_vectors_encode)
{
    for (size_t i = 0; i < sizeof(rfc_plain) / sizeof(rfc_plain[0]); i++) {
        char out[16];
        size_t n = strlen(rfc_plain[i]);
        size_t w = ekv_base64_encode((const uint8_t *)rfc_plain[i], n, out);
        cr_assert(eq(str, out, (char *)rfc_b64[i]));
        cr_assert(eq(sz, w, strlen(rfc_b64[i])));
        w = ekv_base64url_encode((const uint8_t *)rfc_plain[i], n, out);
        cr_assert(eq(str, out, (char *)rfc_b64url[i]));
        cr_assert(eq(sz, w, strlen(rfc_b64url[i])));
    }
}

Test(base64, rfc4648_vectors_decode_padded_and_unpadded)
{
    for (size_t i = 0; i < sizeof(rfc_plain) / sizeof(rfc_plain[0]); i++) {
        uint8_t out[16];
        size_t n = 99;
        cr_assert(eq(int, ekv_base64_decode(rfc_b64[i], strlen(rfc_b64[i]), out, &n), 0));
        cr_assert(eq(sz, n, strlen(rfc_plain[i])));
        cr_assert(eq(mem, MEM(out, n), MEM(rfc_plain[i], n)));
        /* padding is optional for standard base64 */
        n = 99;
        cr_assert(eq(int, ekv_base64_decode(rfc_b64url[i], strlen(rfc_b64url[i]), out, &n), 0));
        cr_assert(eq(mem, MEM(out, n), MEM(rfc_plain[i], strlen(rfc_plain[i]))));
        /* and accepted (when complete) for base64url */
        n = 99;
        cr_assert(eq(int, ekv_base64url_decode(rfc_b64[i], strlen(rfc_b64[i]), out, &n), 0));
        cr_assert(eq(mem, MEM(out, n), MEM(rfc_plain[i], strlen(rfc_plain[i]))));
    }
}

Test(base64, alphabets_differ_in_62_63)
{
    const uint8_t in[] = {0xfb, 0xff, 0xbf};
    char out[8];
    uint8_t back[4];
    size_t n;
    ekv_base64_encode(in, 3, out);
    cr_assert(eq(str, out, "+/+/"));
    ekv_base64url_encode(in, 3, out);
    cr_assert(eq(str, out, "-_-_"));
    /* each decoder only takes its own alphabet */
    cr_assert(eq(int, ekv_base64_decode(S("-_-_"), back, &n), -1));
    cr_assert(eq(int, ekv_base64url_decode(S("+/+/"), back, &n), -1));
    cr_assert(eq(int, ekv_base64url_decode(S("-_-_"), back, &n), 0));
    cr_assert(eq(mem, MEM(back, n), MEM(in, 3)));
}

Test(base64, decode_rejects_malformed)
{
    static const char *const bad[] = {
        "Z",                                           /* a lone 6-bit char cannot encode a byte */
        "Zm9vY",                                       /* same after a full quantum */
        "Zg=",                                         /* incomplete padding */
        "Zg===",                                       /* too much padding */
        "=",      "==",    "====", "Z===", "Zg==Zg==", /* padding in the middle */
        "Zm=v",                                        /* '=' inside a quantum */
        "Zh==",   /* non-zero unused bits ("Zg==" is canonical) */
        "Zm9=",   /* non-zero unused bits ("Zm8=" is canonical) */
        "Zm9v\n", /* whitespace */
        " Zm9v",  "Zm 9v", "Zm9!", "Zm-v", "Zm_v",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[16];
        size_t n = 123;
        cr_expect(eq(int, ekv_base64_decode(bad[i], strlen(bad[i]), out, &n), -1), "input %s",
                  bad[i]);
        cr_expect(eq(sz, n, 123), "out_len written for %s", bad[i]);
    }
}

Test(base64url, decode_rejects_malformed)
{
    static const char *const bad[] = {"Z", "Zg=", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm9v=", "Zm 9v"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[16];
        size_t n = 123;
        cr_expect(eq(int, ekv_base64url_decode(bad[i], strlen(bad[i]), out, &n), -1), "input %s",
                  bad[i]);
    }
}

Test(base64, decode_embedded_nul_in_input_is_rejected)
{
    uint8_t out[8];
    size_t n;
    cr_assert(eq(int, ekv_base64_decode("Zm\0v", 4, out, &n), -1));
}

Test(base64, decode_is_bounded_by_in_len_not_nul)
{
    /* "Zm9vYmFy" but only the first 4 chars are ours */
    uint8_t out[8];
    size_t n;
    cr_assert(eq(int, ekv_base64_decode("Zm9vYmFy", 4, out, &n), 0));
    cr_assert(eq(sz, n, 3));
    cr_assert(eq(mem, MEM(out, 3), MEM("foo", 3)));
}

/* Every length 0..300 and all byte values, both alphabets; output never exceeds the
 * advertised sizes (canary right after the buffer). */
Test(base64, roundtrip_lengths_and_bounds)
{
    uint8_t in[300];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 167 + 13);
    for (size_t len = 0; len <= sizeof(in); len++) {
        size_t enc_cap = ekv_base64_encoded_len(len);
        char enc[404];
        memset(enc, '#', sizeof(enc));
        size_t w = ekv_base64_encode(in, len, enc);
        cr_assert(eq(sz, w + 1, enc_cap));
        cr_assert(eq(chr, enc[enc_cap], '#'));
        uint8_t dec[302];
        size_t dmax = ekv_base64_decoded_max(w), n;
        memset(dec, 0xA5, sizeof(dec));
        cr_assert(eq(int, ekv_base64_decode(enc, w, dec, &n), 0));
        cr_assert(eq(sz, n, len));
        cr_assert(ge(sz, dmax, n));
        cr_assert(eq(u8, dec[dmax], 0xA5));
        cr_assert(eq(mem, MEM(dec, len), MEM(in, len)));

        memset(enc, '#', sizeof(enc));
        w = ekv_base64url_encode(in, len, enc);
        cr_assert(eq(sz, w, (len * 4 + 2) / 3)); /* unpadded */
        cr_assert(eq(chr, enc[w], '\0'));
        cr_assert(eq(chr, enc[w + 1], '#'));
        cr_assert(zero(ptr, memchr(enc, '=', w)));
        dmax = ekv_base64_decoded_max(w);
        cr_assert(eq(sz, dmax, len)); /* exact for unpadded input */
        memset(dec, 0xA5, sizeof(dec));
        cr_assert(eq(int, ekv_base64url_decode(enc, w, dec, &n), 0));
        cr_assert(eq(sz, n, len));
        cr_assert(eq(u8, dec[len], 0xA5));
        cr_assert(eq(mem, MEM(dec, len), MEM(in, len)));
    }
}
