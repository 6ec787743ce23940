/* Unit tests for server/api/do/ids.c: workerd-style Durable Object ids (HMAC-SHA256). */
#include "server/api/do/ids.h"

#include "common/errors.h"

/* No Criterion array assertions (eq(u8[N], ...)) and no messages on assertions that pass:
 * Criterion 2.4 keeps what it formats for them, which LeakSanitizer reports at exit in the
 * ASan build; ids are compared with memcmp, messages only on the failing path. */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* NB: criterion's ne() on arrays is element-wise (all elements differ): use memcmp. */
#define S(lit) lit, (sizeof(lit) - 1)

static void key_seq(uint8_t key[EKV_DO_NS_KEY_LEN])
{
    for (int i = 0; i < EKV_DO_NS_KEY_LEN; i++)
        key[i] = (uint8_t)i;
}

/*
 * Known answers, computed independently with python3:
 *
 *   import hmac, hashlib
 *   def did(key, name):
 *       a = hmac.new(key, name, hashlib.sha256).digest()[:16]
 *       return (a + hmac.new(key, a, hashlib.sha256).digest()[:16]).hex()
 *   did(bytes(range(32)), b"counter-42")
 *   did(bytes(range(32)), b"")
 *   did(bytes([0xa5]) * 32, "caf\u00e9".encode())
 */
#define KAT_COUNTER42 "affbd8a7776ebc9cbb0c1565c478432466c0c28638259a5fa6074e0d9a548f57"
#define KAT_EMPTY     "d38b42096d80f45f826b44a9d5607de748045e0d867df516213425109f028598"
#define KAT_CAFE      "c709377ffab3a88c6c4e384b9268601fb1894ac1e351f23cbbefd9c1faaba90e"

Test(do_ids, known_answer_vectors)
{
    uint8_t key[EKV_DO_NS_KEY_LEN], id[EKV_DO_ID_LEN];
    char hex[EKV_DO_ID_HEX_LEN + 1];
    key_seq(key);

    ekv_do_id_from_name(key, S("counter-42"), id);
    ekv_do_id_hex(id, hex);
    cr_assert(eq(str, hex, KAT_COUNTER42));

    ekv_do_id_from_name(key, "", 0, id);
    ekv_do_id_hex(id, hex);
    cr_assert(eq(str, hex, KAT_EMPTY));

    uint8_t k2[EKV_DO_NS_KEY_LEN];
    memset(k2, 0xa5, sizeof(k2));
    ekv_do_id_from_name(k2, S("caf\xc3\xa9"), id);
    ekv_do_id_hex(id, hex);
    cr_assert(eq(str, hex, KAT_CAFE));
}

Test(do_ids, known_answer_parses)
{
    uint8_t key[EKV_DO_NS_KEY_LEN], id[EKV_DO_ID_LEN], want[EKV_DO_ID_LEN];
    key_seq(key);
    ekv_do_id_from_name(key, S("counter-42"), want);
    memset(id, 0, sizeof(id));
    cr_assert(eq(int, ekv_do_id_parse(key, S(KAT_COUNTER42), id), 0));
    cr_assert(memcmp(id, want, EKV_DO_ID_LEN) == 0);
}

Test(do_ids, from_name_deterministic_and_keyed)
{
    uint8_t k1[EKV_DO_NS_KEY_LEN], k2[EKV_DO_NS_KEY_LEN];
    key_seq(k1);
    key_seq(k2);
    k2[31] ^= 1;
    uint8_t a[EKV_DO_ID_LEN], b[EKV_DO_ID_LEN], c[EKV_DO_ID_LEN], d[EKV_DO_ID_LEN];
    ekv_do_id_from_name(k1, S("room"), a);
    ekv_do_id_from_name(k1, S("room"), b);
    cr_assert(memcmp(a, b, EKV_DO_ID_LEN) == 0);
    ekv_do_id_from_name(k2, S("room"), c);
    cr_assert(memcmp(a, c, EKV_DO_ID_LEN) != 0);
    /* the first half alone differs too (not just the MAC half) */
    cr_assert(memcmp(a, c, EKV_DO_ID_LEN / 2) != 0);
    /* different names, same key */
    ekv_do_id_from_name(k1, S("room2"), d);
    cr_assert(memcmp(a, d, EKV_DO_ID_LEN) != 0);
    /* the name is taken by length: "room" != "room\0" */
    ekv_do_id_from_name(k1, "room\0", 5, d);
    cr_assert(memcmp(a, d, EKV_DO_ID_LEN) != 0);
    /* an id of k1 does not verify under k2 */
    char hex[EKV_DO_ID_HEX_LEN + 1];
    uint8_t out[EKV_DO_ID_LEN];
    ekv_do_id_hex(a, hex);
    cr_assert(eq(int, ekv_do_id_parse(k2, hex, EKV_DO_ID_HEX_LEN, out), EKV_EDO_WRONG_NS));
    cr_assert(eq(int, ekv_do_id_parse(k1, hex, EKV_DO_ID_HEX_LEN, out), 0));
}

Test(do_ids, new_unique_verifies_with_its_key_only)
{
    uint8_t k1[EKV_DO_NS_KEY_LEN], k2[EKV_DO_NS_KEY_LEN];
    key_seq(k1);
    memset(k2, 0x5a, sizeof(k2));
    uint8_t prev[EKV_DO_ID_LEN] = {0};
    for (int i = 0; i < 50; i++) {
        uint8_t id[EKV_DO_ID_LEN], out[EKV_DO_ID_LEN];
        char hex[EKV_DO_ID_HEX_LEN + 1];
        cr_assert(eq(int, ekv_do_id_new_unique(k1, id), 0));
        if (memcmp(id, prev, EKV_DO_ID_LEN) == 0)
            cr_assert(0, "two unique ids are equal");
        memcpy(prev, id, sizeof(prev));
        ekv_do_id_hex(id, hex);
        cr_assert(eq(sz, strlen(hex), (size_t)EKV_DO_ID_HEX_LEN));
        memset(out, 0, sizeof(out));
        cr_assert(eq(int, ekv_do_id_parse(k1, hex, EKV_DO_ID_HEX_LEN, out), 0));
        cr_assert(memcmp(out, id, EKV_DO_ID_LEN) == 0);
        cr_assert(eq(int, ekv_do_id_parse(k2, hex, EKV_DO_ID_HEX_LEN, out), EKV_EDO_WRONG_NS));
    }
}

Test(do_ids, parse_bad_length_and_non_hex)
{
    uint8_t key[EKV_DO_NS_KEY_LEN], out[EKV_DO_ID_LEN];
    key_seq(key);
    char buf[EKV_DO_ID_HEX_LEN + 2];
    memcpy(buf, KAT_COUNTER42, EKV_DO_ID_HEX_LEN);
    buf[EKV_DO_ID_HEX_LEN] = '0';
    buf[EKV_DO_ID_HEX_LEN + 1] = '\0';
    cr_assert(eq(int, ekv_do_id_parse(key, buf, 0, out), EKV_EDO_BAD_ID));
    cr_assert(eq(int, ekv_do_id_parse(key, buf, 62, out), EKV_EDO_BAD_ID));
    cr_assert(eq(int, ekv_do_id_parse(key, buf, 63, out), EKV_EDO_BAD_ID));
    cr_assert(eq(int, ekv_do_id_parse(key, buf, 65, out), EKV_EDO_BAD_ID));
    cr_assert(eq(int, ekv_do_id_parse(key, buf, 66, out), EKV_EDO_BAD_ID));
    cr_assert(eq(int, ekv_do_id_parse(key, buf, 64, out), 0));

    /* one non-hex character at every position */
    static const char bad[] = {'g', 'G', 'z', ' ', '-', 'x', '\0', '\xff'};
    for (size_t pos = 0; pos < EKV_DO_ID_HEX_LEN; pos++) {
        for (size_t j = 0; j < sizeof(bad); j++) {
            memcpy(buf, KAT_COUNTER42, EKV_DO_ID_HEX_LEN);
            buf[pos] = bad[j];
            if (ekv_do_id_parse(key, buf, EKV_DO_ID_HEX_LEN, out) != EKV_EDO_BAD_ID)
                cr_assert(0, "pos %zu char 0x%02x", pos, (unsigned char)bad[j]);
        }
    }
}

Test(do_ids, parse_uppercase_accepted)
{
    uint8_t key[EKV_DO_NS_KEY_LEN], out[EKV_DO_ID_LEN], want[EKV_DO_ID_LEN];
    key_seq(key);
    ekv_do_id_from_name(key, S("counter-42"), want);
    char up[EKV_DO_ID_HEX_LEN + 1];
    for (size_t i = 0; i <= EKV_DO_ID_HEX_LEN; i++)
        up[i] = (char)toupper((unsigned char)KAT_COUNTER42[i]);
    cr_assert(ne(str, up, KAT_COUNTER42));
    memset(out, 0, sizeof(out));
    cr_assert(eq(int, ekv_do_id_parse(key, up, EKV_DO_ID_HEX_LEN, out), 0));
    cr_assert(memcmp(out, want, EKV_DO_ID_LEN) == 0);
    /* mixed case too */
    for (size_t i = 0; i < EKV_DO_ID_HEX_LEN; i += 2)
        up[i] = (char)tolower((unsigned char)up[i]);
    cr_assert(eq(int, ekv_do_id_parse(key, up, EKV_DO_ID_HEX_LEN, out), 0));
    cr_assert(memcmp(out, want, EKV_DO_ID_LEN) == 0);
}

static void flip_bit_hex(const uint8_t id[EKV_DO_ID_LEN], int bit, char hex[EKV_DO_ID_HEX_LEN + 1])
{
    uint8_t t[EKV_DO_ID_LEN];
    memcpy(t, id, sizeof(t));
    t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    ekv_do_id_hex(t, hex);
}

Test(do_ids, any_flipped_bit_is_wrong_namespace)
{
    uint8_t key[EKV_DO_NS_KEY_LEN], id[EKV_DO_ID_LEN], out[EKV_DO_ID_LEN];
    key_seq(key);
    ekv_do_id_from_name(key, S("counter-42"), id);
    char hex[EKV_DO_ID_HEX_LEN + 1];
    /* every bit of the MAC half */
    for (int bit = 128; bit < 256; bit++) {
        flip_bit_hex(id, bit, hex);
        if (ekv_do_id_parse(key, hex, EKV_DO_ID_HEX_LEN, out) != EKV_EDO_WRONG_NS)
            cr_assert(0, "bit %d", bit);
    }
    /* and of the first half (its MAC no longer matches) */
    for (int bit = 0; bit < 128; bit++) {
        flip_bit_hex(id, bit, hex);
        if (ekv_do_id_parse(key, hex, EKV_DO_ID_HEX_LEN, out) != EKV_EDO_WRONG_NS)
            cr_assert(0, "bit %d", bit);
    }
}

Test(do_ids, hex_round_trip)
{
    uint8_t key[EKV_DO_NS_KEY_LEN];
    key_seq(key);
    for (int i = 0; i < 64; i++) {
        char name[32];
        int n = snprintf(name, sizeof(name), "obj-%d", i);
        uint8_t id[EKV_DO_ID_LEN], back[EKV_DO_ID_LEN];
        char hex[EKV_DO_ID_HEX_LEN + 1], hex2[EKV_DO_ID_HEX_LEN + 1];
        ekv_do_id_from_name(key, name, (size_t)n, id);
        memset(hex, 'Q', sizeof(hex));
        ekv_do_id_hex(id, hex);
        cr_assert(eq(chr, hex[EKV_DO_ID_HEX_LEN], '\0'));
        for (size_t j = 0; j < EKV_DO_ID_HEX_LEN; j++)
            if (hex[j] == '\0' || strchr("0123456789abcdef", hex[j]) == NULL)
                cr_assert(0, "%s", hex);
        cr_assert(eq(int, ekv_do_id_parse(key, hex, EKV_DO_ID_HEX_LEN, back), 0));
        cr_assert(memcmp(back, id, EKV_DO_ID_LEN) == 0);
        ekv_do_id_hex(back, hex2);
        cr_assert(eq(str, hex2, hex));
    }
}
