/* JSON output matches JavaScript's JSON.stringify (expected strings were printed by node). */
#include "server/http/json_out.h"

#include <criterion/criterion.h>
#include <string.h>

static char *num(double d)
{
    static char out[64];
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_json_put_double(&b, d), 0);
    snprintf(out, sizeof(out), "%s", b.data);
    ekv_buf_deinit(&b);
    return out;
}

Test(json_out, numbers_like_javascript)
{
    cr_assert_str_eq(num(0.1), "0.1");
    cr_assert_str_eq(num(1), "1");
    cr_assert_str_eq(num(-0.0), "0");
    cr_assert_str_eq(num(1e21), "1e+21");
    cr_assert_str_eq(num(1e20), "100000000000000000000");
    cr_assert_str_eq(num(123.456), "123.456");
    cr_assert_str_eq(num(1e-7), "1e-7");
    cr_assert_str_eq(num(0.000001), "0.000001");
    cr_assert_str_eq(num(18446744073709551616.0), "18446744073709552000");
    cr_assert_str_eq(num(5e-324), "5e-324");
    cr_assert_str_eq(num(1.7976931348623157e308), "1.7976931348623157e+308");
    cr_assert_str_eq(num(-1.5), "-1.5");
    cr_assert_str_eq(num(0.1 + 0.2), "0.30000000000000004");
    cr_assert_str_eq(num(100), "100");
    cr_assert_str_eq(num(1.5e300), "1.5e+300");
    cr_assert_str_eq(num(1.2345678901234568e20), "123456789012345680000");
    cr_assert_str_eq(num(-1e-7), "-1e-7");
    cr_assert_str_eq(num(123e-20), "1.23e-18");
    cr_assert_str_eq(num(0.5), "0.5");
}

Test(json_out, non_finite_is_null)
{
    cr_assert_str_eq(num(1.0 / 0.0), "null");
    cr_assert_str_eq(num(0.0 / 0.0), "null");
}

Test(json_out, strings_escaped_like_json_stringify)
{
    const char in[] = "a\"b\\c\n\t\x01\x1f\x7f \xc3\xa9\xf0\x9f\x98\x80/";
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_json_put_str(&b, in, sizeof(in) - 1), 0);
    cr_assert_str_eq(b.data, "\"a\\\"b\\\\c\\n\\t\\u0001\\u001f\x7f \xc3\xa9\xf0\x9f\x98\x80/\"");
    ekv_buf_deinit(&b);
}

Test(json_out, string_with_nul_byte)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_json_put_str(&b, "x\0y", 3), 0);
    cr_assert_str_eq(b.data, "\"x\\u0000y\"");
    ekv_buf_deinit(&b);
}

Test(json_out, value_roundtrip_compact_and_js_numbers)
{
    const char *in =
        "{ \"b\" : [1, 2.50, 1e3, 18446744073709551616, true, null],\n \"a\": {\"x\":\"\\u00e9\"},"
        " \"z\": 0.1 }";
    json_t *v = json_loads(in, EKV_JSON_PARSE_FLAGS, NULL);
    cr_assert_not_null(v);
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_json_put_value(&b, v), 0);
    /* node: JSON.stringify(JSON.parse(in)) */
    cr_assert_str_eq(
        b.data, "{\"b\":[1,2.5,1000,18446744073709552000,true,null],\"a\":{\"x\":\"\xc3\xa9\"},"
                "\"z\":0.1}");
    ekv_buf_deinit(&b);
    json_decref(v);
}

Test(json_out, raw_and_integers)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_json_put_raw(&b, "{\"k\":1}", 7), 0);
    cr_assert_eq(ekv_json_put_i64(&b, -9223372036854775807LL - 1), 0);
    cr_assert_str_eq(b.data, "{\"k\":1}-9223372036854775808");
    ekv_buf_deinit(&b);
}

Test(json_out, buffer_limit_is_reported)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 4);
    cr_assert_neq(ekv_json_put_str(&b, "too long", 8), 0);
    ekv_buf_deinit(&b);
}
