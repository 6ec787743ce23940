/* Unit tests for server/kv_validate.c: KV limits and Cloudflare's exact reason texts. */
#include "server/api/kv/validate.h"

#include "common/errors.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

static char msg[512];

static void reset_msg(void)
{
    memset(msg, 0, sizeof(msg));
}

/* ---- keys -------------------------------------------------------------------------------- */

Test(kv_key, empty)
{
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_key("", 0, msg, sizeof(msg)), EKV_EBAD_KEY));
    cr_assert(eq(str, msg, "Key names must not be empty"));
}

Test(kv_key, dot_and_dotdot)
{
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_key(S("."), msg, sizeof(msg)), EKV_EBAD_KEY));
    cr_assert(eq(str, msg, "Illegal key name \".\". Please use a different name."));
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_key(S(".."), msg, sizeof(msg)), EKV_EBAD_KEY));
    cr_assert(eq(str, msg, "Illegal key name \"..\". Please use a different name."));
}

Test(kv_key, dot_lookalikes_are_fine)
{
    static const char *const ok[] = {"...", ".a", "a.", "./", "/.", ". ", "a..b"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        reset_msg();
        cr_expect(eq(int, ekv_kv_check_key(ok[i], strlen(ok[i]), msg, sizeof(msg)), 0), "%s",
                  ok[i]);
        cr_expect(eq(str, msg, ""));
    }
    /* length, not NUL: ".." followed by more bytes */
    cr_assert(eq(int, ekv_kv_check_key("..x", 2, msg, sizeof(msg)), EKV_EBAD_KEY));
    cr_assert(eq(int, ekv_kv_check_key(".\0", 2, msg, sizeof(msg)), 0));
}

Test(kv_key, length_512_ok_513_too_long)
{
    char key[600];
    memset(key, 'k', sizeof(key));
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_key(key, 1, msg, sizeof(msg)), 0));
    cr_assert(eq(int, ekv_kv_check_key(key, 512, msg, sizeof(msg)), 0));
    cr_assert(eq(str, msg, ""));
    cr_assert(eq(int, ekv_kv_check_key(key, 513, msg, sizeof(msg)), EKV_EKEY_TOO_LONG));
    cr_assert(eq(str, msg, "UTF-8 encoded length of 513 exceeds key length limit of 512."));
    cr_assert(eq(int, ekv_kv_check_key(key, 600, msg, sizeof(msg)), EKV_EKEY_TOO_LONG));
    cr_assert(eq(str, msg, "UTF-8 encoded length of 600 exceeds key length limit of 512."));
}

Test(kv_key, error_codes_map_to_cloudflare)
{
    cr_assert(eq(int, ekv_err_cf_code(EKV_EBAD_KEY), 10023));
    cr_assert(eq(int, ekv_err_http_status(EKV_EKEY_TOO_LONG), 414));
    cr_assert(eq(int, ekv_err_cf_code(EKV_EKEY_TOO_LONG), 10030));
}

Test(kv_key, null_or_tiny_msg_buffer)
{
    char small[8];
    cr_assert(eq(int, ekv_kv_check_key("", 0, NULL, 0), EKV_EBAD_KEY));
    cr_assert(eq(int, ekv_kv_check_key("", 0, small, sizeof(small)), EKV_EBAD_KEY));
    cr_assert(eq(str, small, "Key nam")); /* truncated, still NUL-terminated */
}

/* ---- metadata ---------------------------------------------------------------------------- */

Test(kv_metadata, canonical_compact_form)
{
    char *canon = NULL;
    size_t n = 0;
    const char in[] = "{ \"a\" : 1,\n \"b\": [true, null, \"x/y\", 1.5], \"c\": {} }";
    cr_assert(eq(int, ekv_kv_check_metadata(S(in), &canon, &n, msg, sizeof(msg)), 0));
    cr_assert(not(zero(ptr, canon)));
    cr_assert(eq(str, canon, "{\"a\":1,\"b\":[true,null,\"x/y\",1.5],\"c\":{}}"));
    cr_assert(eq(sz, n, strlen(canon)));
    free(canon);
}

Test(kv_metadata, any_json_value_and_utf8_kept_raw)
{
    static const char *const in[] = {"5",     "\"str\"", "null",
                                     "[1,2]", "true",    "{\"k\":\"\xc3\xa9\"}"};
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        char *canon = NULL;
        size_t n = 0;
        cr_assert(
            eq(int, ekv_kv_check_metadata(in[i], strlen(in[i]), &canon, &n, msg, sizeof(msg)), 0),
            "%s", in[i]);
        cr_assert(eq(str, canon, (char *)in[i]));
        cr_assert(eq(sz, n, strlen(in[i])));
        free(canon);
    }
}

Test(kv_metadata, input_is_length_delimited)
{
    char *canon = NULL;
    size_t n;
    /* only the first 7 bytes are the JSON text */
    cr_assert(
        eq(int, ekv_kv_check_metadata("{\"a\":1}GARBAGE", 7, &canon, &n, msg, sizeof(msg)), 0));
    cr_assert(eq(str, canon, "{\"a\":1}"));
    free(canon);
}

Test(kv_metadata, invalid_json)
{
    static const char *const bad[] = {"", "{", "{\"a\":}", "abc", "1 2", "{'a':1}", "[1,]", "\"x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *canon = (char *)"sentinel";
        size_t n = 77;
        reset_msg();
        cr_expect(eq(int,
                     ekv_kv_check_metadata(bad[i], strlen(bad[i]), &canon, &n, msg, sizeof(msg)),
                     EKV_EBAD_METADATA),
                  "input '%s'", bad[i]);
        cr_expect(zero(ptr, canon));
        cr_expect(eq(sz, n, 0));
        cr_expect(eq(int, strncmp(msg, "Invalid metadata: ", 18), 0), "msg '%s'", msg);
        cr_expect(gt(sz, strlen(msg), 18));
    }
    cr_assert(eq(int, ekv_err_cf_code(EKV_EBAD_METADATA), 10047));
}

/* {"k":"xxx...x"} with a compact length of exactly `total` bytes, padded with whitespace
 * that must not count. */
static size_t make_meta(char *buf, size_t total)
{
    size_t x = total - 8; /* {"k":"  "} = 8 bytes of syntax */
    size_t o = (size_t)sprintf(buf, "{ \"k\" :   \"");
    memset(buf + o, 'x', x);
    o += x;
    o += (size_t)sprintf(buf + o, "\"   }\n");
    return o;
}

Test(kv_metadata, limit_1024_ok_1025_too_large)
{
    char buf[2048];
    char *canon = NULL;
    size_t n = 0;
    size_t len = make_meta(buf, 1024);
    cr_assert(gt(sz, len, 1024)); /* the text itself is longer; only compact size counts */
    cr_assert(eq(int, ekv_kv_check_metadata(buf, len, &canon, &n, msg, sizeof(msg)), 0));
    cr_assert(eq(sz, n, 1024));
    cr_assert(eq(sz, strlen(canon), 1024));
    free(canon);

    canon = (char *)"sentinel";
    len = make_meta(buf, 1025);
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_metadata(buf, len, &canon, &n, msg, sizeof(msg)),
                 EKV_EMETADATA_TOO_LARGE));
    cr_assert(eq(str, msg, "Metadata length of 1025 exceeds limit of 1024."));
    cr_assert(zero(ptr, canon));
    cr_assert(eq(int, ekv_err_http_status(EKV_EMETADATA_TOO_LARGE), 413));
}

Test(kv_metadata, multibyte_counts_bytes)
{
    /* 510 x "é" (2 bytes each) + 8 = 1028 bytes: the limit counts bytes, not characters */
    char buf[1200];
    char *canon = NULL;
    size_t n;
    size_t o = (size_t)sprintf(buf, "{\"k\":\"");
    for (int i = 0; i < 510; i++)
        o += (size_t)sprintf(buf + o, "\xc3\xa9");
    o += (size_t)sprintf(buf + o, "\"}");
    cr_assert(eq(int, ekv_kv_check_metadata(buf, o, &canon, &n, msg, sizeof(msg)),
                 EKV_EMETADATA_TOO_LARGE));
    cr_assert(eq(str, msg, "Metadata length of 1028 exceeds limit of 1024."));
}

Test(kv_metadata, null_canon_means_validate_only)
{
    cr_assert(eq(int, ekv_kv_check_metadata(S("{\"a\" : 1}"), NULL, NULL, NULL, 0), 0));
    cr_assert(eq(int, ekv_kv_check_metadata(S("{"), NULL, NULL, NULL, 0), EKV_EBAD_METADATA));
}

Test(kv_metadata, nul_escape_allowed)
{
    char *canon = NULL;
    size_t n;
    cr_assert(
        eq(int, ekv_kv_check_metadata(S("[\"a\\u0000b\"]"), &canon, &n, msg, sizeof(msg)), 0));
    cr_assert(eq(str, canon, "[\"a\\u0000b\"]"));
    cr_assert(eq(sz, n, 12));
    free(canon);
}

/* ---- value length ------------------------------------------------------------------------ */

Test(kv_value, limit_26214400)
{
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_value_len(0, msg, sizeof(msg)), 0));
    cr_assert(eq(int, ekv_kv_check_value_len(26214400, msg, sizeof(msg)), 0));
    cr_assert(eq(str, msg, ""));
    cr_assert(eq(int, ekv_kv_check_value_len(26214401, msg, sizeof(msg)), EKV_ETOO_LARGE));
    cr_assert(eq(str, msg, "Value length of 26214401 exceeds limit of 26214400."));
    cr_assert(eq(int, ekv_err_http_status(EKV_ETOO_LARGE), 413));
}

/* ---- expiration -------------------------------------------------------------------------- */

#define NOW INT64_C(1700000000)

static int expire(const char *exp, const char *ttl, int64_t *out)
{
    reset_msg();
    return ekv_kv_compute_expiration(exp, ttl, NOW, out, msg, sizeof(msg));
}

Test(kv_expiration, neither_means_never)
{
    int64_t out = 42;
    cr_assert(eq(int, expire(NULL, NULL, &out), 0));
    cr_assert(eq(i64, out, 0));
}

Test(kv_expiration, ttl_60_ok_59_rejected)
{
    int64_t out = 0;
    cr_assert(eq(int, expire(NULL, "60", &out), 0));
    cr_assert(eq(i64, out, NOW + 60));
    cr_assert(eq(int, expire(NULL, "86400", &out), 0));
    cr_assert(eq(i64, out, NOW + 86400));
    cr_assert(eq(int, expire(NULL, "59", &out), EKV_EBAD_TTL));
    cr_assert(eq(str, msg, "Invalid expiration_ttl of 59. Expiration TTL must be at least 60."));
    cr_assert(eq(int, expire(NULL, "1", &out), EKV_EBAD_TTL));
    cr_assert(eq(str, msg, "Invalid expiration_ttl of 1. Expiration TTL must be at least 60."));
    cr_assert(eq(int, ekv_err_cf_code(EKV_EBAD_TTL), 10034));
}

Test(kv_expiration, ttl_leading_zeros_are_decimal)
{
    int64_t out = 0;
    cr_assert(eq(int, expire(NULL, "0060", &out), 0));
    cr_assert(eq(i64, out, NOW + 60));
    cr_assert(eq(int, expire(NULL, "059", &out), EKV_EBAD_TTL));
    cr_assert(eq(str, msg, "Invalid expiration_ttl of 059. Expiration TTL must be at least 60."));
}

Test(kv_expiration, ttl_not_positive_integer)
{
    static const char *const bad[] = {
        "0",
        "-0",
        "-1",
        "-60",
        "",
        "abc",
        "1.5",
        "60.0",
        "1e3",
        "+60",
        " 60",
        "60 ",
        "6 0",
        "0x3c",
        "60s",
        "\t60",
        "--60",
        "-",
        "-99999999999999999999", /* an integer, negative and beyond int64 */
        "1e18",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t out = 42;
        char want[256];
        snprintf(want, sizeof(want),
                 "Invalid expiration_ttl of %s. Please specify integer greater than 0.", bad[i]);
        cr_expect(eq(int, expire(NULL, bad[i], &out), EKV_EBAD_TTL), "ttl '%s'", bad[i]);
        cr_expect(eq(str, msg, want));
        cr_expect(eq(i64, out, 0));
    }
}

Test(kv_expiration, large_ttl_that_fits)
{
    /* the largest TTL whose expiration a JavaScript client still holds exactly */
    int64_t out = 0;
    char ttl[32];
    snprintf(ttl, sizeof(ttl), "%lld", (long long)(EKV_MAX_SAFE_INT - NOW));
    cr_assert(eq(int, expire(NULL, ttl, &out), 0));
    cr_assert(eq(i64, out, INT64_C(9007199254740991)));
}

/* issue 9: expiration_ttl=10^18 was accepted (now + ttl fitted int64, not a JS number) */
Test(kv_expiration, ttl_beyond_safe_integer_rejected)
{
    char one_more[32];
    snprintf(one_more, sizeof(one_more), "%lld", (long long)(EKV_MAX_SAFE_INT - NOW + 1));
    const char *const bad[] = {
        one_more,
        "9007199254740991",     /* 2^53 - 1 itself: now + ttl is beyond */
        "9007199254740992",     /* 2^53 */
        "1000000000000000000",  /* 10^18 */
        "9223372036854775807",  /* INT64_MAX */
        "9223372036854775808",  /* INT64_MAX + 1 */
        "99999999999999999999", /* far beyond int64 */
        "0000000000000000000000000000009007199254740992",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t out = 42;
        char want[256];
        snprintf(want, sizeof(want),
                 "Invalid expiration_ttl of %s. The resulting expiration must be at most "
                 "9007199254740991 (2^53 - 1).",
                 bad[i]);
        cr_expect(eq(int, expire(NULL, bad[i], &out), EKV_EBAD_TTL), "ttl '%s'", bad[i]);
        cr_expect(eq(str, msg, want));
        cr_expect(eq(i64, out, 0));
    }
}

Test(kv_expiration, absolute_now_plus_60_ok_plus_59_rejected)
{
    int64_t out = 0;
    cr_assert(eq(int, expire("1700000060", NULL, &out), 0));
    cr_assert(eq(i64, out, NOW + 60));
    cr_assert(eq(int, expire("1800000000", NULL, &out), 0));
    cr_assert(eq(i64, out, INT64_C(1800000000)));
    cr_assert(eq(int, expire("1700000059", NULL, &out), EKV_EBAD_EXPIRATION));
    cr_assert(
        eq(str, msg,
           "Invalid expiration of 1700000059. Expiration times must be at least 60 seconds in "
           "the future."));
    cr_assert(eq(int, expire("1700000001", NULL, &out), EKV_EBAD_EXPIRATION));
    cr_assert(
        eq(str, msg,
           "Invalid expiration of 1700000001. Expiration times must be at least 60 seconds in "
           "the future."));
    cr_assert(eq(int, ekv_err_cf_code(EKV_EBAD_EXPIRATION), 10033));
}

Test(kv_expiration, absolute_not_in_future_or_not_integer)
{
    static const char *const bad[] = {"1700000000",
                                      "1699999999",
                                      "0",
                                      "-5",
                                      "",
                                      "abc",
                                      "1.7e9",
                                      "1700000060.0",
                                      "+1700000060",
                                      " 1700000060",
                                      "-9223372036854775809"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t out = 42;
        char want[256];
        snprintf(want, sizeof(want),
                 "Invalid expiration of %s. Please specify integer greater than the current "
                 "number of seconds since the UNIX epoch.",
                 bad[i]);
        cr_expect(eq(int, expire(bad[i], NULL, &out), EKV_EBAD_EXPIRATION), "exp '%s'", bad[i]);
        cr_expect(eq(str, msg, want));
        cr_expect(eq(i64, out, 0));
    }
}

Test(kv_expiration, absolute_max_safe_integer_ok)
{
    int64_t out = 0;
    cr_assert(eq(int, expire("9007199254740991", NULL, &out), 0));
    cr_assert(eq(i64, out, INT64_C(9007199254740991)));
    cr_assert(eq(int, expire("0009007199254740991", NULL, &out), 0));
    cr_assert(eq(i64, out, INT64_C(9007199254740991)));
}

/* issue 9: ?expiration=2^63-1 was stored on a value PUT (and refused in bulk) */
Test(kv_expiration, absolute_beyond_safe_integer_rejected)
{
    static const char *const bad[] = {"9007199254740992", "9223372036854775807",
                                      "9223372036854775808", "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t out = 42;
        char want[256];
        snprintf(want, sizeof(want),
                 "Invalid expiration of %s. Expiration times must be at most 9007199254740991 "
                 "(2^53 - 1).",
                 bad[i]);
        cr_expect(eq(int, expire(bad[i], NULL, &out), EKV_EBAD_EXPIRATION), "exp '%s'", bad[i]);
        cr_expect(eq(str, msg, want));
        cr_expect(eq(i64, out, 0));
    }
}

Test(kv_expiration, ttl_wins_over_expiration)
{
    int64_t out = 0;
    cr_assert(eq(int, expire("1800000000", "120", &out), 0));
    cr_assert(eq(i64, out, NOW + 120));
    /* the ignored expiration is not even validated */
    cr_assert(eq(int, expire("garbage", "120", &out), 0));
    cr_assert(eq(i64, out, NOW + 120));
    /* but a bad TTL fails even when the expiration is fine */
    cr_assert(eq(int, expire("1800000000", "30", &out), EKV_EBAD_TTL));
    cr_assert(eq(str, msg, "Invalid expiration_ttl of 30. Expiration TTL must be at least 60."));
}

/* ---- namespace title --------------------------------------------------------------------- */

Test(kv_title, bounds)
{
    char t[600];
    memset(t, 'T', sizeof(t));
    reset_msg();
    cr_assert(eq(int, ekv_kv_check_title(t, 1, msg, sizeof(msg)), 0));
    cr_assert(eq(int, ekv_kv_check_title(t, 512, msg, sizeof(msg)), 0));
    cr_assert(eq(str, msg, ""));
    cr_assert(eq(int, ekv_kv_check_title(t, 513, msg, sizeof(msg)), EKV_EBAD_TITLE));
    cr_assert(eq(str, msg, "title too long"));
    cr_assert(eq(int, ekv_kv_check_title(t, 0, msg, sizeof(msg)), EKV_EBAD_TITLE));
    cr_assert(eq(str, msg, "missing title"));
    cr_assert(eq(int, ekv_kv_check_title(NULL, 0, msg, sizeof(msg)), EKV_EBAD_TITLE));
    cr_assert(eq(str, msg, "missing title"));
    cr_assert(eq(int, ekv_err_cf_code(EKV_EBAD_TITLE), 10019));
}

/* ---- namespace id ------------------------------------------------------------------------ */

Test(kv_nsid, parses_32_hex_either_case)
{
    uint8_t id[16];
    const uint8_t want[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                              0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10};
    cr_assert(eq(int, ekv_kv_parse_nsid(S("0123456789abcdeffedcba9876543210"), id, msg, 64), 0));
    cr_assert(eq(mem, MEM(id, 16), MEM(want, 16)));
    cr_assert(eq(int, ekv_kv_parse_nsid(S("0123456789ABCDEFFEDCBA9876543210"), id, msg, 64), 0));
    cr_assert(eq(mem, MEM(id, 16), MEM(want, 16)));
}

Test(kv_nsid, wrong_length)
{
    uint8_t id[16];
    reset_msg();
    cr_assert(eq(int, ekv_kv_parse_nsid(S("0123456789abcdeffedcba987654321"), id, msg, sizeof(msg)),
                 EKV_EBAD_NS_ID));
    cr_assert(eq(str, msg,
                 "could not parse UUID from request's namespace_id: 'invalid UUID length: 31'"));
    cr_assert(eq(int,
                 ekv_kv_parse_nsid(S("01234567-89ab-cdef-fedc-ba9876543210"), id, msg, sizeof(msg)),
                 EKV_EBAD_NS_ID));
    cr_assert(eq(str, msg,
                 "could not parse UUID from request's namespace_id: 'invalid UUID length: 36'"));
    cr_assert(eq(int, ekv_kv_parse_nsid("", 0, id, msg, sizeof(msg)), EKV_EBAD_NS_ID));
    cr_assert(
        eq(str, msg, "could not parse UUID from request's namespace_id: 'invalid UUID length: 0'"));
    cr_assert(eq(int, ekv_err_cf_code(EKV_EBAD_NS_ID), 10011));
}

Test(kv_nsid, bad_format)
{
    static const char *const bad[] = {
        "0123456789abcdeffedcba987654321g",    "g123456789abcdeffedcba9876543210",
        "0123456789abcdef-edcba9876543210",    " 123456789abcdeffedcba9876543210",
        "0123456789abcdeffedcba98765432\0000", /* NUL inside: "\000" then '0' */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t id[16];
        reset_msg();
        cr_expect(eq(int, ekv_kv_parse_nsid(bad[i], 32, id, msg, sizeof(msg)), EKV_EBAD_NS_ID));
        cr_expect(eq(str, msg,
                     "could not parse UUID from request's namespace_id: 'invalid UUID format'"));
    }
}
