/* Unit tests for server/api/do/storage_req.c: storage call bodies, Cloudflare's limits/texts. */
#include "server/api/do/storage_req.h"

#include "common/errors.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

static char msg[512];
static const ekv_do_limits_t KV = {.use_sqlite = 0};
static const ekv_do_limits_t SQL = {.use_sqlite = 1};

static void assert_empty(const ekv_do_ops_t *o)
{
    cr_assert(eq(sz, o->n, 0));
    cr_assert(eq(ptr, o->ops, NULL));
}

static int keys(const char *body, const ekv_do_limits_t *lim, ekv_do_ops_t *out)
{
    memset(msg, 0, sizeof(msg));
    /* garbage in out: the parser must set it */
    out->ops = (ekv_do_op_t *)(uintptr_t)0x1;
    out->n = 77;
    return ekv_do_parse_keys(body, strlen(body), lim, out, msg, sizeof(msg));
}

static int entries(const char *body, size_t len, const ekv_do_limits_t *lim, ekv_do_ops_t *out)
{
    memset(msg, 0, sizeof(msg));
    out->ops = (ekv_do_op_t *)(uintptr_t)0x1;
    out->n = 77;
    return ekv_do_parse_entries(body, len, lim, out, msg, sizeof(msg));
}

/* ---- parse_keys ------------------------------------------------------------------------- */

Test(do_keys, sorted_by_utf8_bytes)
{
    ekv_do_ops_t o;
    /* "é" = c3 a9, "z" = 7a, "€" = e2 82 ac, "\u00ff" = c3 bf, "a" prefix of "ab", "" */
    const char *body = "{\"keys\": [\"\\u20ac\", \"ab\", \"z\", \"\\u00e9\", \"a\", \"\", "
                       "\"\\u00ff\", \"B\", \"a\\u0001\"]}";
    cr_assert(eq(int, keys(body, &KV, &o), 0), "%s", msg);
    static const char *const want[] = {"",  "B",        "a",        "a\x01",       "ab",
                                       "z", "\xc3\xa9", "\xc3\xbf", "\xe2\x82\xac"};
    cr_assert(eq(sz, o.n, sizeof(want) / sizeof(want[0])));
    for (size_t i = 0; i < o.n; i++) {
        cr_assert(eq(mem, MEM(o.ops[i].key, o.ops[i].key_len), MEM(want[i], strlen(want[i]))),
                  "index %zu", i);
        cr_assert(eq(chr, o.ops[i].key[o.ops[i].key_len], '\0'));
        cr_assert(eq(int, o.ops[i].del, 1));
        cr_assert(eq(ptr, o.ops[i].value, NULL));
    }
    ekv_do_ops_free(&o);
    assert_empty(&o);
}

Test(do_keys, duplicates_collapsed)
{
    ekv_do_ops_t o;
    cr_assert(
        eq(int, keys("{\"keys\": [\"b\", \"a\", \"b\", \"a\", \"a\", \"c\", \"b\"]}", &KV, &o), 0));
    cr_assert(eq(sz, o.n, 3));
    cr_assert(eq(str, o.ops[0].key, "a"));
    cr_assert(eq(str, o.ops[1].key, "b"));
    cr_assert(eq(str, o.ops[2].key, "c"));
    ekv_do_ops_free(&o);
    /* the same key 128 times is one key */
    char body[4096];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"keys\": [");
    for (int i = 0; i < 128; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%s\"k\"", i ? "," : "");
    snprintf(body + n, sizeof(body) - n, "]}");
    cr_assert(eq(int, keys(body, &KV, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.n, 1));
    cr_assert(eq(str, o.ops[0].key, "k"));
    ekv_do_ops_free(&o);
}

static char *keys_body(int n)
{
    char *b = malloc((size_t)n * 16 + 32);
    size_t w = (size_t)sprintf(b, "{\"keys\": [");
    for (int i = 0; i < n; i++)
        w += (size_t)sprintf(b + w, "%s\"k%04d\"", i ? "," : "", i);
    sprintf(b + w, "]}");
    return b;
}

Test(do_keys, count_limits)
{
    ekv_do_ops_t o;
    /* none at all is a malformed body (10073), not "too many" (10072) */
    cr_assert(eq(int, keys("{\"keys\": []}", &KV, &o), EKV_EDO_BAD_BODY));
    cr_assert(ne(str, msg, ""));
    assert_empty(&o);

    char *b = keys_body(128);
    cr_assert(eq(int, keys(b, &KV, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.n, 128));
    cr_assert(eq(str, o.ops[0].key, "k0000"));
    cr_assert(eq(str, o.ops[127].key, "k0127"));
    ekv_do_ops_free(&o);
    free(b);

    b = keys_body(129);
    cr_assert(eq(int, keys(b, &KV, &o), EKV_EDO_TOO_MANY_KEYS));
    cr_assert(eq(str, msg, "Maximum number of key value pairs is 128. 129 pairs were provided."));
    assert_empty(&o);
    cr_assert(eq(int, keys(b, &SQL, &o), EKV_EDO_TOO_MANY_KEYS));
    assert_empty(&o);
    free(b);
}

Test(do_keys, bad_shapes)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[\"a\"]",
        "{}",
        "{\"keys\": \"a\"}",
        "{\"keys\": {\"a\": 1}}",
        "{\"key\": [\"a\"]}",
        "{\"keys\": [\"a\", 1]}",
        "{\"keys\": [null]}",
        "{\"keys\": [[\"a\"]]}",
        "{\"keys\": [\"a\"]",
        "{\"keys\": [\"a\\u0000b\"]}",
        "\"keys\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_do_ops_t o;
        cr_assert(eq(int, keys(bad[i], &KV, &o), EKV_EDO_BAD_BODY), "%s", bad[i]);
        cr_assert(ne(str, msg, ""), "%s", bad[i]);
        assert_empty(&o);
    }
}

static char *key_of_len(size_t n)
{
    /* {"keys": ["x..x"]} */
    char *b = malloc(n + 32);
    size_t w = (size_t)sprintf(b, "{\"keys\": [\"");
    memset(b + w, 'x', n);
    w += n;
    sprintf(b + w, "\"]}");
    return b;
}

Test(do_keys, key_size_kv)
{
    ekv_do_ops_t o;
    char *b = key_of_len(2048);
    cr_assert(eq(int, keys(b, &KV, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.n, 1));
    cr_assert(eq(sz, o.ops[0].key_len, 2048));
    ekv_do_ops_free(&o);
    free(b);

    b = key_of_len(2049);
    cr_assert(eq(int, keys(b, &KV, &o), EKV_EDO_BAD_KEY));
    cr_assert(
        eq(str, msg, "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."));
    assert_empty(&o);
    /* SQLite-backed: no 2048 limit on keys alone */
    cr_assert(eq(int, keys(b, &SQL, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.ops[0].key_len, 2049));
    ekv_do_ops_free(&o);
    free(b);

    /* the size is in UTF-8 bytes: 1024 x "é" = 2048 bytes ok, + "x" = 2049 refused */
    char *u = malloc(1024 * 6 + 64);
    size_t w = (size_t)sprintf(u, "{\"keys\": [\"");
    for (int i = 0; i < 1024; i++)
        w += (size_t)sprintf(u + w, "\\u00e9");
    sprintf(u + w, "\"]}");
    cr_assert(eq(int, keys(u, &KV, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.ops[0].key_len, 2048));
    ekv_do_ops_free(&o);
    sprintf(u + w, "x\"]}");
    cr_assert(eq(int, keys(u, &KV, &o), EKV_EDO_BAD_KEY));
    cr_assert(
        eq(str, msg, "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."));
    assert_empty(&o);
    free(u);
}

Test(do_keys, bad_key_in_the_middle_frees_everything)
{
    /* a good key, then a long one: the error leaves out empty (no leak under ASan) */
    char *b = malloc(4096);
    size_t w = (size_t)sprintf(b, "{\"keys\": [\"a\", \"b\", \"");
    memset(b + w, 'y', 2049);
    w += 2049;
    sprintf(b + w, "\", \"c\"]}");
    ekv_do_ops_t o;
    cr_assert(eq(int, keys(b, &KV, &o), EKV_EDO_BAD_KEY));
    assert_empty(&o);
    free(b);
}

/* ---- parse_entries ---------------------------------------------------------------------- */

Test(do_entries, values_are_compact_json_in_body_order)
{
    ekv_do_ops_t o;
    const char *body = "{\"entries\": {\"a\": {\"x\": [1, 2]}, \"b\": \"s t\", \"c\": null, "
                       "\"0\": 1.5, \"d\": [ ], \"e\": {\"z\": 1, \"y\": {\"q\": true}}}}";
    cr_assert(eq(int, entries(body, strlen(body), &KV, &o), 0), "%s", msg);
    static const char *const wk[] = {"a", "b", "c", "0", "d", "e"};
    static const char *const wv[] = {"{\"x\":[1,2]}", "\"s t\"", "null",
                                     "1.5",           "[]",      "{\"z\":1,\"y\":{\"q\":true}}"};
    cr_assert(eq(sz, o.n, 6));
    for (size_t i = 0; i < o.n; i++) {
        cr_assert(eq(str, o.ops[i].key, (char *)wk[i]));
        cr_assert(eq(sz, o.ops[i].key_len, strlen(wk[i])));
        cr_assert(eq(str, o.ops[i].value, (char *)wv[i]), "index %zu", i);
        cr_assert(eq(sz, o.ops[i].value_len, strlen(wv[i])));
        cr_assert(eq(int, o.ops[i].del, 0));
    }
    ekv_do_ops_free(&o);
    assert_empty(&o);
}

/* {"entries": {"k": "<filler>"}} whose value's JSON text is exactly n bytes (n >= 2) */
static char *entry_of_value_len(const char *key, size_t n, size_t *blen)
{
    size_t kl = strlen(key);
    char *b = malloc(n + kl + 64);
    size_t w = (size_t)sprintf(b, "{\"entries\": {\"%s\": \"", key);
    memset(b + w, 'v', n - 2);
    w += n - 2;
    w += (size_t)sprintf(b + w, "\"}}");
    *blen = w;
    return b;
}

Test(do_entries, kv_value_limit)
{
    ekv_do_ops_t o;
    size_t bl;
    char *b = entry_of_value_len("k", 131072, &bl);
    cr_assert(eq(int, entries(b, bl, &KV, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.n, 1));
    cr_assert(eq(sz, o.ops[0].value_len, 131072));
    cr_assert(eq(sz, strlen(o.ops[0].value), 131072));
    ekv_do_ops_free(&o);
    free(b);

    b = entry_of_value_len("k", 131073, &bl);
    cr_assert(eq(int, entries(b, bl, &KV, &o), EKV_EDO_VALUE_TOO_LARGE));
    cr_assert(
        eq(str, msg,
           "Values cannot be larger than 131072 bytes. A value of size 131073 was provided."));
    assert_empty(&o);
    /* SQLite-backed: fine */
    cr_assert(eq(int, entries(b, bl, &SQL, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.ops[0].value_len, 131073));
    ekv_do_ops_free(&o);
    free(b);

    /* measured on the compact text, not the body: spaces do not count */
    const char *sp = "{\"entries\": {\"k\": [1,    2,    3]}}";
    cr_assert(eq(int, entries(sp, strlen(sp), &KV, &o), 0));
    cr_assert(eq(str, o.ops[0].value, "[1,2,3]"));
    cr_assert(eq(sz, o.ops[0].value_len, 7));
    ekv_do_ops_free(&o);
}

Test(do_entries, kv_key_limit)
{
    ekv_do_ops_t o;
    char *b = malloc(4096);
    int w = sprintf(b, "{\"entries\": {\"");
    memset(b + w, 'k', 2049);
    w += 2049;
    w += sprintf(b + w, "\": 1}}");
    cr_assert(eq(int, entries(b, (size_t)w, &KV, &o), EKV_EDO_BAD_KEY));
    cr_assert(
        eq(str, msg, "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided."));
    assert_empty(&o);
    free(b);
}

Test(do_entries, sqlite_limits)
{
    ekv_do_ops_t o;
    size_t bl;
    char *b = entry_of_value_len("k", 1000000, &bl);
    cr_assert(eq(int, entries(b, bl, &SQL, &o), 0), "%s", msg);
    cr_assert(eq(sz, o.ops[0].value_len, 1000000));
    ekv_do_ops_free(&o);
    cr_assert(eq(int, entries(b, bl, &KV, &o), EKV_EDO_VALUE_TOO_LARGE));
    assert_empty(&o);
    free(b);

    /* key 1 byte + value 1999999 = 2000000: ok; value 2000000: over */
    b = entry_of_value_len("k", 1999999, &bl);
    cr_assert(eq(int, entries(b, bl, &SQL, &o), 0), "%s", msg);
    ekv_do_ops_free(&o);
    free(b);
    b = entry_of_value_len("k", 2000000, &bl);
    cr_assert(eq(int, entries(b, bl, &SQL, &o), EKV_EDO_VALUE_TOO_LARGE));
    cr_assert(eq(str, msg,
                 "Key and value together cannot be larger than 2000000 bytes. A key of size 1 "
                 "and a value of size 2000000 were provided."));
    assert_empty(&o);
    free(b);
    /* the key counts: "kk" + 1999999 = 2000001 */
    b = entry_of_value_len("kk", 1999999, &bl);
    cr_assert(eq(int, entries(b, bl, &SQL, &o), EKV_EDO_VALUE_TOO_LARGE));
    assert_empty(&o);
    free(b);
}

Test(do_entries, count_limits)
{
    ekv_do_ops_t o;
    cr_assert(eq(int, entries(S("{\"entries\": {}}"), &KV, &o), EKV_EDO_BAD_BODY));
    assert_empty(&o);
    char *b = malloc(129 * 16 + 64);
    size_t w = (size_t)sprintf(b, "{\"entries\": {");
    for (int i = 0; i < 129; i++)
        w += (size_t)sprintf(b + w, "%s\"k%d\": %d", i ? "," : "", i, i);
    w += (size_t)sprintf(b + w, "}}");
    cr_assert(eq(int, entries(b, w, &KV, &o), EKV_EDO_TOO_MANY_KEYS));
    cr_assert(eq(str, msg, "Maximum number of key value pairs is 128. 129 pairs were provided."));
    assert_empty(&o);
    free(b);
}

Test(do_entries, bad_shapes)
{
    static const char *const bad[] = {
        "",
        "{",
        "nope",
        "{}",
        "[]",
        "{\"entries\": []}",
        "{\"entries\": [[\"k\", 1]]}",
        "{\"entries\": \"k\"}",
        "{\"entries\": null}",
        "{\"entry\": {\"k\": 1}}",
        "{\"entries\": {\"k\": }}",
        "{\"entries\": {\"k\": 1,}}",
        "{\"entries\": {\"k\": undefined}}",
        "{\"entries\": {\"k\": NaN}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_do_ops_t o;
        cr_assert(eq(int, entries(bad[i], strlen(bad[i]), &KV, &o), EKV_EDO_BAD_BODY), "%s",
                  bad[i]);
        cr_assert(ne(str, msg, ""), "%s", bad[i]);
        assert_empty(&o);
    }
}

Test(do_entries, error_after_good_entries_leaves_out_empty)
{
    ekv_do_ops_t o;
    size_t bl;
    /* two good entries, then an oversized value */
    char *big = entry_of_value_len("z", 131073, &bl);
    char *b = malloc(bl + 64);
    int w = sprintf(b, "{\"entries\": {\"a\": 1, \"b\": [2], %s", big + strlen("{\"entries\": {"));
    cr_assert(eq(int, entries(b, (size_t)w, &KV, &o), EKV_EDO_VALUE_TOO_LARGE));
    assert_empty(&o);
    free(b);
    free(big);
}

Test(do_check_key, direct)
{
    cr_assert(eq(int, ekv_do_check_key(&KV, 2048, 131072, msg, sizeof(msg)), 0));
    cr_assert(eq(int, ekv_do_check_key(&KV, 2049, 0, msg, sizeof(msg)), EKV_EDO_BAD_KEY));
    cr_assert(eq(int, ekv_do_check_key(&KV, 1, 131073, msg, sizeof(msg)), EKV_EDO_VALUE_TOO_LARGE));
    cr_assert(eq(int, ekv_do_check_key(&SQL, 1000000, 1000000, msg, sizeof(msg)), 0));
    cr_assert(eq(int, ekv_do_check_key(&SQL, 1000001, 1000000, msg, sizeof(msg)),
                 EKV_EDO_VALUE_TOO_LARGE));
    cr_assert(eq(int, ekv_do_check_key(&SQL, 2000001, 0, msg, sizeof(msg)), EKV_EDO_BAD_KEY));
}

/* Values are parsed as JavaScript does: a NUL inside a string value is fine (keys refuse it),
 * and numbers are stored as JSON.stringify prints them. */
Test(do_entries, javascript_values)
{
    ekv_do_ops_t o;
    const char *body = "{\"entries\": {\"n\": \"a\\u0000b\", \"f\": 1.0, \"t\": 0.1, \"e\": 1e21}}";
    cr_assert(eq(int, entries(body, strlen(body), &KV, &o), 0));
    cr_assert(eq(sz, o.n, 4));
    cr_assert(eq(str, o.ops[0].value, "\"a\\u0000b\""));
    cr_assert(eq(str, o.ops[1].value, "1"));
    cr_assert(eq(str, o.ops[2].value, "0.1"));
    cr_assert(eq(str, o.ops[3].value, "1e+21"));
    ekv_do_ops_free(&o);
}
