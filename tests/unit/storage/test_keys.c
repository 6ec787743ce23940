#include "storage/keys.h"

#include <criterion/criterion.h>
#include <string.h>

static const uint8_t NSID[16] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
                                 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10};

Test(keys, be64_roundtrip_and_order)
{
    char a[8], b[8];
    ekv_be64_put(a, 0x0102030405060708ull);
    cr_assert_eq(memcmp(a, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
    cr_assert_eq(ekv_be64_get(a), 0x0102030405060708ull);
    ekv_be64_put(a, 255);
    ekv_be64_put(b, 256);
    cr_assert_lt(memcmp(a, b, 8), 0, "big-endian keeps numeric order bytewise");
    ekv_be64_put(a, UINT64_MAX);
    cr_assert_eq(ekv_be64_get(a), UINT64_MAX);
}

Test(keys, kv_key_is_nsid_then_key)
{
    char out[16 + 5];
    size_t n = ekv_key_kv(out, NSID, "hello", 5);
    cr_assert_eq(n, 21);
    cr_assert_eq(memcmp(out, NSID, 16), 0);
    cr_assert_eq(memcmp(out + 16, "hello", 5), 0);
}

Test(keys, exp_key_roundtrip)
{
    char out[8 + 16 + 3];
    size_t n = ekv_key_exp(out, 1700000000, NSID, "k\x00z", 3);
    cr_assert_eq(n, 27);
    cr_assert_eq(ekv_be64_get(out), 1700000000u);
    int64_t exp;
    const uint8_t *nsid;
    const char *key;
    size_t key_len;
    cr_assert_eq(ekv_key_exp_parse(out, n, &exp, &nsid, &key, &key_len), 0);
    cr_assert_eq(exp, 1700000000);
    cr_assert_eq(memcmp(nsid, NSID, 16), 0);
    cr_assert_eq(key_len, 3);
    cr_assert_eq(memcmp(key, "k\x00z", 3), 0);
    /* an empty key is still a well-formed index key; shorter is not */
    cr_assert_eq(ekv_key_exp_parse(out, 24, &exp, &nsid, &key, &key_len), 0);
    cr_assert_eq(key_len, 0);
    cr_assert_eq(ekv_key_exp_parse(out, 23, &exp, &nsid, &key, &key_len), -1);
    /* expirations above INT64_MAX are refused */
    memset(out, 0xff, 8);
    cr_assert_eq(ekv_key_exp_parse(out, n, &exp, &nsid, &key, &key_len), -1);
}

Test(keys, exp_keys_sort_by_time)
{
    char a[8 + 16 + 1], b[8 + 16 + 1];
    ekv_key_exp(a, 1000, NSID, "z", 1);
    ekv_key_exp(b, 1001, NSID, "a", 1);
    cr_assert_lt(memcmp(a, b, sizeof(a)), 0);
}

Test(keys, log_key)
{
    char k[8];
    uint64_t seq = 0;
    ekv_key_log(k, 42);
    cr_assert_eq(ekv_key_log_parse(k, 8, &seq), 0);
    cr_assert_eq(seq, 42);
    cr_assert_eq(ekv_key_log_parse(k, 7, &seq), -1);
    cr_assert_eq(ekv_key_log_parse(k, 9, &seq), -1);
}

Test(keys, meta_keys)
{
    char out[EKV_KEY_META_MAX];
    int n = ekv_key_meta_account(out, sizeof(out), "0123456789abcdef0123456789abcdef");
    cr_assert_eq(n, 34);
    cr_assert_eq(memcmp(out, "a/0123456789abcdef0123456789abcdef", 34), 0);

    n = ekv_key_meta_token(out, sizeof(out), "ff00");
    cr_assert_eq(n, 6);
    cr_assert_eq(memcmp(out, "t/ff00", 6), 0);

    n = ekv_key_meta_ns(out, sizeof(out), NSID);
    cr_assert_eq(n, 34);
    cr_assert_eq(memcmp(out, "n/0102030405060708090a0b0c0d0e0f10", 34), 0);

    n = ekv_key_meta_title(out, sizeof(out), "acc", "my/title", 8);
    cr_assert_eq(n, 2 + 3 + 1 + 8);
    cr_assert_eq(memcmp(out, "T/acc/my/title", 14), 0);
}

Test(keys, meta_keys_reject_bad_components)
{
    char out[EKV_KEY_META_MAX];
    cr_assert_eq(ekv_key_meta_account(out, sizeof(out), ""), -1);
    cr_assert_eq(ekv_key_meta_account(out, sizeof(out), "a/b"), -1);
    cr_assert_eq(ekv_key_meta_account(out, sizeof(out), "0123456789abcdef0123456789abcdef0"), -1,
                 "33 chars is one too many");
    cr_assert_eq(ekv_key_meta_token(out, sizeof(out), ""), -1);
    cr_assert_eq(ekv_key_meta_title(out, sizeof(out), "acc", "", 0), -1);
    char title[513];
    memset(title, 'x', sizeof(title));
    cr_assert_eq(ekv_key_meta_title(out, sizeof(out), "acc", title, 513), -1);
    cr_assert_eq(ekv_key_meta_title(out, sizeof(out), "acc", title, 512), 2 + 3 + 1 + 512);
    cr_assert_eq(ekv_key_meta_account(out, 5, "abcd"), -1, "cap too small");
    cr_assert_eq(ekv_key_meta_account(out, 6, "abcd"), 6);
}

Test(keys, prefix_successor)
{
    char out[8];
    cr_assert_eq(ekv_key_prefix_successor("ab", 2, out), 2);
    cr_assert_eq(memcmp(out, "ac", 2), 0);
    cr_assert_eq(ekv_key_prefix_successor("a\xff\xff", 3, out), 1);
    cr_assert_eq(out[0], 'b');
    cr_assert_eq(ekv_key_prefix_successor("\x01\xfe", 2, out), 2);
    cr_assert_eq(memcmp(out, "\x01\xff", 2), 0);
    cr_assert_eq(ekv_key_prefix_successor("\xff\xff", 2, out), 0);
    cr_assert_eq(ekv_key_prefix_successor("", 0, out), 0);
}

Test(keys, id_ok)
{
    cr_assert_eq(ekv_key_id_ok("abc", 32), 1);
    cr_assert_eq(ekv_key_id_ok("", 32), 0);
    cr_assert_eq(ekv_key_id_ok("a/c", 32), 0);
    cr_assert_eq(ekv_key_id_ok("abcd", 3), 0);
}
