/* Unit tests for server/urlcodec.c: path/query percent-decoding and query splitting. */
#include "server/http/urlcodec.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

/* ---- path segments ----------------------------------------------------------------------- */

Test(url_path, decodes_every_escape_and_keeps_plus)
{
    char out[64];
    size_t n = 0;
    cr_assert(eq(int, ekv_url_decode_path(S("a%2Fb+c%20d%3a%3A"), out, &n), 0));
    cr_assert(eq(sz, n, 9));
    cr_assert(eq(str, out, "a/b+c d::"));
}

Test(url_path, hex_case_and_utf8)
{
    char out[64];
    size_t n = 0;
    cr_assert(eq(int, ekv_url_decode_path(S("%e2%82%AC%F0%9f%99%82"), out, &n), 0));
    cr_assert(eq(sz, n, 7));
    cr_assert(eq(str, out, "\xe2\x82\xac\xf0\x9f\x99\x82"));
}

Test(url_path, percent_00_yields_a_nul_byte_inside)
{
    char out[16];
    size_t n = 0;
    cr_assert(eq(int, ekv_url_decode_path(S("a%00b%FF"), out, &n), 0));
    cr_assert(eq(sz, n, 4));
    cr_assert(eq(mem, MEM(out, 5), MEM("a\0b\xff\0", 5)));
}

Test(url_path, empty)
{
    char out[1] = {'X'};
    size_t n = 9;
    cr_assert(eq(int, ekv_url_decode_path("", 0, out, &n), 0));
    cr_assert(eq(sz, n, 0));
    cr_assert(eq(chr, out[0], '\0'));
}

Test(url_path, malformed_escapes)
{
    static const char *const bad[] = {"%", "a%", "%2", "a%2", "%2g", "%g2", "%%", "%-1", "% 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[16];
        size_t n = 77;
        cr_expect(eq(int, ekv_url_decode_path(bad[i], strlen(bad[i]), out, &n), -1), "%s", bad[i]);
        cr_expect(eq(int, ekv_url_decode_query(bad[i], strlen(bad[i]), out, &n), -1), "%s", bad[i]);
        cr_expect(eq(sz, n, 77));
    }
}

Test(url_path, respects_length_not_nul)
{
    /* "%41" is only partly inside the given length */
    char out[8];
    size_t n;
    cr_assert(eq(int, ekv_url_decode_path("ab%41", 4, out, &n), -1));
    cr_assert(eq(int, ekv_url_decode_path("ab%41", 2, out, &n), 0));
    cr_assert(eq(str, out, "ab"));
}

Test(url_path, decodes_in_place)
{
    char buf[] = "k%2Fe%79+%25";
    size_t n;
    cr_assert(eq(int, ekv_url_decode_path(buf, strlen(buf), buf, &n), 0));
    cr_assert(eq(sz, n, 6));
    cr_assert(eq(str, buf, "k/ey+%"));
}

/* ---- query values ------------------------------------------------------------------------ */

Test(url_query, plus_is_space_and_escaped_plus_is_plus)
{
    char out[32];
    size_t n;
    cr_assert(eq(int, ekv_url_decode_query(S("a+b%2Bc%2fd"), out, &n), 0));
    cr_assert(eq(sz, n, 7));
    cr_assert(eq(str, out, "a b+c/d"));
}

Test(url_query, decodes_in_place)
{
    char buf[] = "x+%3D+y";
    size_t n;
    cr_assert(eq(int, ekv_url_decode_query(buf, strlen(buf), buf, &n), 0));
    cr_assert(eq(str, buf, "x = y"));
    cr_assert(eq(sz, n, 5));
}

/* ---- splitting --------------------------------------------------------------------------- */

static void assert_param(const ekv_query_param_t *p, const char *name, const char *value)
{
    cr_assert(eq(sz, p->name_len, strlen(name)));
    cr_assert(eq(mem, MEM(p->name, p->name_len), MEM(name, strlen(name))));
    cr_assert(eq(sz, p->value_len, strlen(value)));
    cr_assert(eq(mem, MEM(p->value, p->value_len), MEM(value, strlen(value))));
}

Test(query_parse, splits_raw_params)
{
    const char q[] = "a=1&b=&c&d%3D=x%26y&e=f=g";
    ekv_query_t qs;
    cr_assert(eq(int, ekv_query_parse(q, strlen(q), &qs), 0));
    cr_assert(eq(sz, qs.count, 5));
    assert_param(&qs.params[0], "a", "1");
    assert_param(&qs.params[1], "b", "");
    assert_param(&qs.params[2], "c", "");
    assert_param(&qs.params[3], "d%3D", "x%26y"); /* raw, still encoded */
    assert_param(&qs.params[4], "e", "f=g");      /* split at the first '=' */
    /* pointers point into the input */
    cr_assert(eq(ptr, (void *)qs.params[0].name, (void *)q));
    cr_assert(eq(ptr, (void *)qs.params[4].value, (void *)(q + 22)));
}

Test(query_parse, skips_empty_segments)
{
    ekv_query_t qs;
    cr_assert(eq(int, ekv_query_parse(S("&a=1&&b=2&"), &qs), 0));
    cr_assert(eq(sz, qs.count, 2));
    assert_param(&qs.params[0], "a", "1");
    assert_param(&qs.params[1], "b", "2");
    cr_assert(eq(int, ekv_query_parse(S("&&&"), &qs), 0));
    cr_assert(eq(sz, qs.count, 0));
    cr_assert(eq(int, ekv_query_parse("", 0, &qs), 0));
    cr_assert(eq(sz, qs.count, 0));
    cr_assert(eq(int, ekv_query_parse(S("=x"), &qs), 0));
    cr_assert(eq(sz, qs.count, 1));
    assert_param(&qs.params[0], "", "x");
}

Test(query_parse, respects_length_not_nul)
{
    ekv_query_t qs;
    cr_assert(eq(int, ekv_query_parse("a=1&b=2", 3, &qs), 0));
    cr_assert(eq(sz, qs.count, 1));
    assert_param(&qs.params[0], "a", "1");
}

static size_t make_query(char *buf, int nparams)
{
    size_t o = 0;
    for (int i = 0; i < nparams; i++)
        o += (size_t)sprintf(buf + o, "%sp%d=%d", i ? "&" : "", i, i);
    return o;
}

Test(query_parse, max_params_32_ok_33_rejected)
{
    char buf[1024];
    ekv_query_t qs;
    size_t n = make_query(buf, EKV_QUERY_MAX_PARAMS);
    cr_assert(eq(int, ekv_query_parse(buf, n, &qs), 0));
    cr_assert(eq(sz, qs.count, 32));
    assert_param(&qs.params[31], "p31", "31");
    n = make_query(buf, EKV_QUERY_MAX_PARAMS + 1);
    cr_assert(eq(int, ekv_query_parse(buf, n, &qs), -1));
    /* empty segments do not count */
    n = make_query(buf, EKV_QUERY_MAX_PARAMS);
    memcpy(buf + n, "&&&&", 4);
    cr_assert(eq(int, ekv_query_parse(buf, n + 4, &qs), 0));
}

/* ---- lookup ------------------------------------------------------------------------------ */

static ekv_query_t parsed(const char *q)
{
    ekv_query_t qs;
    cr_assert(eq(int, ekv_query_parse(q, strlen(q), &qs), 0));
    return qs;
}

Test(query_get, found_absent_and_decoded)
{
    ekv_query_t qs = parsed("prefix=a%2Fb+c&limit=10&cursor=");
    char out[32];
    size_t n = 99;
    cr_assert(eq(int, ekv_query_get(&qs, "prefix", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "a/b c"));
    cr_assert(eq(sz, n, 5));
    cr_assert(eq(int, ekv_query_get(&qs, "limit", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "10"));
    cr_assert(eq(int, ekv_query_get(&qs, "cursor", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, ""));
    cr_assert(eq(sz, n, 0));
    cr_assert(eq(int, ekv_query_get(&qs, "expiration", out, sizeof(out), &n), 0));
}

/* issue 9: "limit=10&limit=abc" was read as limit=10 (the first won) */
Test(query_get, repeated_name_is_refused)
{
    ekv_query_t qs = parsed("a=1&b=x&a=2");
    char out[8];
    size_t n;
    cr_assert(eq(int, ekv_query_get(&qs, "a", out, sizeof(out), &n), EKV_QUERY_REPEATED));
    cr_assert(eq(int, ekv_query_get(&qs, "b", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "x"));
    /* the names are compared decoded, whatever the values */
    qs = parsed("limit=10&lim%69t=abc");
    cr_assert(eq(int, ekv_query_get(&qs, "limit", out, sizeof(out), &n), EKV_QUERY_REPEATED));
    qs = parsed("a=%zz&a=1");
    cr_assert(eq(int, ekv_query_get(&qs, "a", out, sizeof(out), &n), EKV_QUERY_REPEATED));
}

Test(query_get, name_compared_decoded_and_exactly)
{
    ekv_query_t qs = parsed("lim=1&limitx=2&cur%73or=abc&expiration+ttl=3&limit=4");
    char out[8];
    size_t n;
    cr_assert(eq(int, ekv_query_get(&qs, "cursor", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "abc"));
    cr_assert(eq(int, ekv_query_get(&qs, "expiration ttl", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "3"));
    /* neither the prefix "lim" nor the longer "limitx" is "limit" */
    cr_assert(eq(int, ekv_query_get(&qs, "limit", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "4"));
    cr_assert(eq(int, ekv_query_get(&qs, "li", out, sizeof(out), &n), 0));
}

Test(query_get, nul_in_name_never_matches)
{
    ekv_query_t qs = parsed("a%00=1&a=2");
    char out[8];
    size_t n;
    cr_assert(eq(int, ekv_query_get(&qs, "a", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "2"));
}

Test(query_get, malformed_value_is_error_malformed_other_name_is_skipped)
{
    ekv_query_t qs = parsed("bad%zz=1&limit=%4&ok=1");
    char out[8];
    size_t n;
    cr_assert(eq(int, ekv_query_get(&qs, "limit", out, sizeof(out), &n), -1));
    cr_assert(eq(int, ekv_query_get(&qs, "ok", out, sizeof(out), &n), 1));
    cr_assert(eq(str, out, "1"));
    cr_assert(eq(int, ekv_query_get(&qs, "bad", out, sizeof(out), &n), 0));
}

Test(query_get, output_capacity_boundary)
{
    ekv_query_t qs = parsed("k=abc&e=%41%42%43");
    char out[4];
    size_t n;
    cr_assert(eq(int, ekv_query_get(&qs, "k", out, 4, &n), 1)); /* 3 chars + NUL fit */
    cr_assert(eq(str, out, "abc"));
    cr_assert(eq(int, ekv_query_get(&qs, "k", out, 3, &n), -1));
    /* capacity counts decoded bytes, not raw ones */
    cr_assert(eq(int, ekv_query_get(&qs, "e", out, 4, &n), 1));
    cr_assert(eq(str, out, "ABC"));
    cr_assert(eq(int, ekv_query_get(&qs, "e", out, 0, &n), -1));
}

Test(query_get, empty_value_needs_room_for_nul)
{
    ekv_query_t qs = parsed("flag");
    char out[1];
    size_t n = 5;
    cr_assert(eq(int, ekv_query_get(&qs, "flag", out, 1, &n), 1));
    cr_assert(eq(chr, out[0], '\0'));
    cr_assert(eq(sz, n, 0));
    cr_assert(eq(int, ekv_query_get(&qs, "flag", out, 0, &n), -1));
}
