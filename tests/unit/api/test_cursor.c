/* Unit tests for server/cursor.c: the opaque list-keys cursor. */
#include "server/api/kv/cursor.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

static void roundtrip(const char *key, size_t len)
{
    char enc[EKV_CURSOR_MAX_LEN];
    char dec[EKV_CURSOR_MAX_KEY];
    size_t n = 0;
    int w = ekv_cursor_encode(key, len, enc);
    cr_assert(gt(int, w, 0));
    cr_assert(lt(int, w, EKV_CURSOR_MAX_LEN));
    cr_assert(eq(sz, strlen(enc), (size_t)w));
    /* URL-safe and unpadded: usable raw in a query string */
    cr_assert(eq(sz,
                 strspn(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                 (size_t)w));
    cr_assert(eq(int, ekv_cursor_decode(enc, (size_t)w, dec, &n), 0));
    cr_assert(eq(sz, n, len));
    cr_assert(eq(mem, MEM(dec, n), MEM(key, len)));
}

Test(cursor, wire_form_is_base64url_of_version_and_key)
{
    char enc[EKV_CURSOR_MAX_LEN];
    cr_assert(eq(int, ekv_cursor_encode(S("a"), enc), 3));
    cr_assert(eq(str, enc, "AWE")); /* base64url(01 61) */
    cr_assert(eq(int, ekv_cursor_encode(S("\xff\xfe"), enc), 4));
    cr_assert(eq(str, enc, "Af_-")); /* base64url(01 ff fe): URL alphabet */
}

Test(cursor, roundtrips_arbitrary_key_bytes)
{
    roundtrip(S("a"));
    roundtrip(S("a/b/c"));
    roundtrip(S("\0"));
    roundtrip(S("x\0y\0"));
    roundtrip(S("\xff"));
    roundtrip(S("\xff\xff\xff"));
    roundtrip(S("\x01"));
    roundtrip(S("\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87/\xf0\x9f\x99\x82")); /* "ключ/🙂" */
    roundtrip(S("with space+plus%percent=eq&amp?q#h"));
}

Test(cursor, roundtrips_every_length_up_to_512)
{
    char key[EKV_CURSOR_MAX_KEY];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (char)(255 - i * 7);
    for (size_t len = 1; len <= EKV_CURSOR_MAX_KEY; len++)
        roundtrip(key, len);
}

Test(cursor, max_key_512_ok_513_rejected)
{
    char key[EKV_CURSOR_MAX_KEY + 1];
    char enc[EKV_CURSOR_MAX_LEN];
    memset(key, 0xff, sizeof(key));
    cr_assert(eq(int, ekv_cursor_encode(key, 512, enc), 684));
    cr_assert(eq(int, ekv_cursor_encode(key, 513, enc), -1));
}

Test(cursor, empty_key_cannot_make_a_valid_cursor)
{
    char enc[EKV_CURSOR_MAX_LEN], dec[EKV_CURSOR_MAX_KEY];
    size_t n;
    int w = ekv_cursor_encode("", 0, enc);
    cr_assert(eq(str, enc, "AQ"));
    cr_assert(eq(int, ekv_cursor_decode(enc, (size_t)w, dec, &n), -1));
}

Test(cursor, rejects_garbage)
{
    static const char *const bad[] = {
        "",     /* empty */
        "AWE=", /* padding */
        "AWE!",
        "AW E",
        "A+E",
        "A/E",   /* not base64url */
        "AmE",   /* version 2 */
        "AGE",   /* version 0 */
        "AWF",   /* non-canonical trailing bits (canonical is "AWE") */
        "AWEAA", /* length % 4 == 1 */
        "A",
        "AQ", /* too short / version only */
        "not a cursor at all",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char dec[EKV_CURSOR_MAX_KEY];
        size_t n = 999;
        cr_expect(eq(int, ekv_cursor_decode(bad[i], strlen(bad[i]), dec, &n), -1), "cursor '%s'",
                  bad[i]);
        cr_expect(eq(sz, n, 999));
    }
}

Test(cursor, rejects_embedded_nul_in_cursor_text)
{
    char dec[EKV_CURSOR_MAX_KEY];
    size_t n;
    cr_assert(eq(int, ekv_cursor_decode("AW\0E", 4, dec, &n), -1));
}

Test(cursor, uses_length_not_nul)
{
    char dec[EKV_CURSOR_MAX_KEY];
    size_t n;
    /* "AWE" followed by junk outside the given length */
    cr_assert(eq(int, ekv_cursor_decode("AWE!!!", 3, dec, &n), 0));
    cr_assert(eq(sz, n, 1));
    cr_assert(eq(chr, dec[0], 'a'));
}

Test(cursor, too_long_rejected_before_decoding)
{
    /* A well-formed base64url text for a 513-byte key (684 chars) plus more: 688 chars would
     * decode to 516 bytes, more than the key buffer holds. */
    char big[700];
    char dec[EKV_CURSOR_MAX_KEY];
    size_t n;
    big[0] = 'A';
    big[1] = 'f';
    memset(big + 2, '_', sizeof(big) - 2);
    cr_assert(eq(int, ekv_cursor_decode(big, 688, dec, &n), -1));
    cr_assert(eq(int, ekv_cursor_decode(big, 685, dec, &n), -1));
    /* 684 chars = exactly 1 + 512 bytes: accepted */
    cr_assert(eq(int, ekv_cursor_decode(big, 684, dec, &n), 0));
    cr_assert(eq(sz, n, 512));
    cr_assert(eq(u8, (unsigned char)dec[0], 0xff));
    cr_assert(eq(u8, (unsigned char)dec[511], 0xff));
}
