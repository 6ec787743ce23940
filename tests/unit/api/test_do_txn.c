/* Unit tests for server/api/do/txn.c: transaction parse, eval, deep JSON equality. */
#include "server/api/do/txn.h"

#include "common/errors.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, (sizeof(lit) - 1)

static char msg[512];
static const ekv_do_limits_t KV = {.use_sqlite = 0};

static int parse(const char *body, ekv_do_txn_t *t)
{
    memset(msg, 0, sizeof(msg));
    memset(t, 0xab, sizeof(*t)); /* garbage: the parser must set it */
    return ekv_do_txn_parse(body, strlen(body), &KV, t, msg, sizeof(msg));
}

static void assert_empty(const ekv_do_txn_t *t)
{
    cr_assert(eq(ptr, t->checks, NULL));
    cr_assert(eq(sz, t->nchecks, 0));
    cr_assert(eq(ptr, t->then_ops.ops, NULL));
    cr_assert(eq(sz, t->then_ops.n, 0));
    cr_assert(eq(ptr, t->else_ops.ops, NULL));
    cr_assert(eq(sz, t->else_ops.n, 0));
}

/* ---- parse ------------------------------------------------------------------------------- */

Test(do_txn_parse, missing_members_are_empty)
{
    ekv_do_txn_t t;
    cr_assert(eq(int, parse("{}", &t), 0), "%s", msg);
    assert_empty(&t);
    ekv_do_txn_free(&t);
    cr_assert(eq(int, parse("{\"then\": [{\"op\": \"delete\", \"key\": \"a\"}]}", &t), 0), "%s",
              msg);
    cr_assert(eq(sz, t.nchecks, 0));
    cr_assert(eq(sz, t.then_ops.n, 1));
    cr_assert(eq(sz, t.else_ops.n, 0));
    ekv_do_txn_free(&t);
    cr_assert(eq(int, parse("{\"checks\": [], \"then\": [], \"else\": []}", &t), 0), "%s", msg);
    assert_empty(&t);
    ekv_do_txn_free(&t);
}

Test(do_txn_parse, full_body)
{
    ekv_do_txn_t t;
    const char *b = "{\"checks\": [{\"key\": \"a\", \"value\": {\"x\": [1, 2]}},"
                    "              {\"key\": \"b\", \"exists\": false},"
                    "              {\"key\": \"c\", \"exists\": true},"
                    "              {\"key\": \"n\", \"value\": null}],"
                    " \"then\": [{\"op\": \"put\", \"key\": \"a\", \"value\": [ 3 ]},"
                    "            {\"op\": \"delete\", \"key\": \"b\"}],"
                    " \"else\": [{\"op\": \"put\", \"key\": \"e\", \"value\": \"x\"}]}";
    cr_assert(eq(int, parse(b, &t), 0), "%s", msg);
    cr_assert(eq(sz, t.nchecks, 4));
    cr_assert(eq(str, t.checks[0].key, "a"));
    cr_assert(eq(int, t.checks[0].exists_check, 0));
    cr_assert(eq(str, t.checks[0].value, "{\"x\":[1,2]}"));
    cr_assert(eq(sz, t.checks[0].value_len, 11));
    cr_assert(eq(str, t.checks[1].key, "b"));
    cr_assert(eq(int, t.checks[1].exists_check, 1));
    cr_assert(eq(int, t.checks[1].exists, 0));
    cr_assert(eq(int, t.checks[2].exists_check, 1));
    cr_assert(eq(int, t.checks[2].exists, 1));
    cr_assert(eq(int, t.checks[3].exists_check, 0));
    cr_assert(eq(str, t.checks[3].value, "null"));

    cr_assert(eq(sz, t.then_ops.n, 2));
    cr_assert(eq(str, t.then_ops.ops[0].key, "a"));
    cr_assert(eq(int, t.then_ops.ops[0].del, 0));
    cr_assert(eq(str, t.then_ops.ops[0].value, "[3]"));
    cr_assert(eq(str, t.then_ops.ops[1].key, "b"));
    cr_assert(eq(int, t.then_ops.ops[1].del, 1));
    cr_assert(eq(ptr, t.then_ops.ops[1].value, NULL));
    cr_assert(eq(sz, t.else_ops.n, 1));
    cr_assert(eq(str, t.else_ops.ops[0].key, "e"));
    cr_assert(eq(str, t.else_ops.ops[0].value, "\"x\""));
    ekv_do_txn_free(&t);
    assert_empty(&t);
}

Test(do_txn_parse, refused_bodies)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"checks\": []",
        /* unknown members, at every level */
        "{\"check\": []}",
        "{\"checks\": [], \"then\": [], \"otherwise\": []}",
        "{\"checks\": [{\"key\": \"a\", \"exists\": true, \"exist\": false}]}",
        "{\"checks\": [{\"key\": \"a\", \"valeu\": 1}]}",
        "{\"then\": [{\"op\": \"put\", \"key\": \"a\", \"value\": 1, \"ttl\": 5}]}",
        /* checks */
        "{\"checks\": [{\"key\": \"a\", \"value\": 1, \"exists\": true}]}",
        "{\"checks\": [{\"key\": \"a\"}]}",
        "{\"checks\": [{\"value\": 1}]}",
        "{\"checks\": [{\"key\": \"a\", \"exists\": \"yes\"}]}",
        "{\"checks\": [{\"key\": \"a\", \"exists\": 1}]}",
        "{\"checks\": [{\"key\": 5, \"exists\": true}]}",
        "{\"checks\": [\"a\"]}",
        "{\"checks\": {\"key\": \"a\", \"exists\": true}}",
        /* ops */
        "{\"then\": [{\"op\": \"get\", \"key\": \"a\"}]}",
        "{\"then\": [{\"op\": \"PUT\", \"key\": \"a\", \"value\": 1}]}",
        "{\"then\": [{\"key\": \"a\", \"value\": 1}]}",
        "{\"then\": [{\"op\": \"put\", \"key\": \"a\"}]}",
        "{\"then\": [{\"op\": \"put\", \"value\": 1}]}",
        "{\"then\": [{\"op\": \"delete\", \"key\": \"a\", \"value\": 1}]}",
        "{\"then\": [{\"op\": \"delete\", \"key\": 1}]}",
        "{\"then\": [{\"op\": 1, \"key\": \"a\"}]}",
        "{\"else\": [[\"put\", \"a\", 1]]}",
        "{\"else\": {}}",
        "{\"then\": null}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_do_txn_t t;
        cr_assert(eq(int, parse(bad[i], &t), EKV_EDO_BAD_BODY), "%s", bad[i]);
        cr_assert(ne(str, msg, ""), "%s", bad[i]);
        assert_empty(&t);
    }
}

Test(do_txn_parse, unknown_member_message_names_it)
{
    ekv_do_txn_t t;
    cr_assert(
        eq(int, parse("{\"checks\": [{\"key\": \"a\", \"exits\": true}]}", &t), EKV_EDO_BAD_BODY));
    cr_assert(ne(ptr, strstr(msg, "exits"), NULL), "%s", msg);
}

static char *n_items(const char *member, const char *item, int n)
{
    size_t il = strlen(item);
    char *b = malloc((size_t)n * (il + 1) + 64);
    size_t w = (size_t)sprintf(b, "{\"%s\": [", member);
    for (int i = 0; i < n; i++)
        w += (size_t)sprintf(b + w, "%s%s", i ? "," : "", item);
    sprintf(b + w, "]}");
    return b;
}

Test(do_txn_parse, count_limits)
{
    static const char *const members[] = {"checks", "then", "else"};
    static const char *const items[] = {"{\"key\": \"a\", \"exists\": true}",
                                        "{\"op\": \"delete\", \"key\": \"a\"}",
                                        "{\"op\": \"put\", \"key\": \"a\", \"value\": 1}"};
    for (int m = 0; m < 3; m++) {
        ekv_do_txn_t t;
        char *b = n_items(members[m], items[m], 128);
        cr_assert(eq(int, parse(b, &t), 0), "%s: %s", members[m], msg);
        ekv_do_txn_free(&t);
        free(b);
        b = n_items(members[m], items[m], 129);
        cr_assert(eq(int, parse(b, &t), EKV_EDO_TOO_MANY_KEYS), "%s", members[m]);
        cr_assert(
            eq(str, msg, "Maximum number of key value pairs is 128. 129 pairs were provided."));
        assert_empty(&t);
        free(b);
    }
}

Test(do_txn_parse, size_limits)
{
    ekv_do_txn_t t;
    char *b = malloc(200000);
    /* key 2049 bytes in a check */
    int w = sprintf(b, "{\"checks\": [{\"exists\": true, \"key\": \"");
    memset(b + w, 'k', 2049);
    w += 2049;
    sprintf(b + w, "\"}]}");
    cr_assert(eq(int, parse(b, &t), EKV_EDO_BAD_KEY));
    assert_empty(&t);
    /* value of 131073 bytes of JSON text in a put */
    w = sprintf(b, "{\"then\": [{\"op\": \"put\", \"key\": \"k\", \"value\": \"");
    memset(b + w, 'v', 131071);
    w += 131071;
    sprintf(b + w, "\"}]}");
    cr_assert(eq(int, parse(b, &t), EKV_EDO_VALUE_TOO_LARGE));
    cr_assert(
        eq(str, msg,
           "Values cannot be larger than 131072 bytes. A value of size 131073 was provided."));
    assert_empty(&t);
    /* one byte less is fine */
    w = sprintf(b, "{\"then\": [{\"op\": \"put\", \"key\": \"k\", \"value\": \"");
    memset(b + w, 'v', 131070);
    w += 131070;
    sprintf(b + w, "\"}]}");
    cr_assert(eq(int, parse(b, &t), 0), "%s", msg);
    cr_assert(eq(sz, t.then_ops.ops[0].value_len, 131072));
    ekv_do_txn_free(&t);
    /* an oversized value in a check, after good checks and ops */
    w = sprintf(b, "{\"then\": [{\"op\": \"delete\", \"key\": \"x\"}], \"checks\": [{\"key\": "
                   "\"a\", \"exists\": true}, {\"key\": \"k\", \"value\": \"");
    memset(b + w, 'v', 131071);
    w += 131071;
    sprintf(b + w, "\"}]}");
    cr_assert(eq(int, parse(b, &t), EKV_EDO_VALUE_TOO_LARGE));
    assert_empty(&t);
    free(b);
}

/* ---- eval -------------------------------------------------------------------------------- */

typedef struct {
    const char *key, *value;
} row_t;

static const row_t TABLE[] = {
    {"int1", "1"},    {"obj", "{\"a\":1,\"b\":2}"},
    {"arr", "[1,2]"}, {"str1", "\"1\""},
    {"nul", "null"},  {"nested", "{\"p\":{\"q\":[1,{\"r\":\"s\"}],\"t\":true},\"u\":[]}"},
    {"f", "false"},
};

typedef struct {
    int fail;  /* lookup returns this (< 0) for key "boom" */
    int calls; /* lookups made */
} ctx_t;

static int lookup(void *vctx, const char *key, size_t key_len, const char **value,
                  size_t *value_len)
{
    ctx_t *ctx = vctx;
    ctx->calls++;
    if (key_len == 4 && !memcmp(key, "boom", 4))
        return ctx->fail;
    for (size_t i = 0; i < sizeof(TABLE) / sizeof(TABLE[0]); i++) {
        if (strlen(TABLE[i].key) == key_len && !memcmp(TABLE[i].key, key, key_len)) {
            *value = TABLE[i].value;
            *value_len = strlen(TABLE[i].value);
            return 1;
        }
    }
    return 0;
}

/* Eval one transaction body over TABLE. */
static int eval_body(const char *body)
{
    ekv_do_txn_t t;
    int rc = parse(body, &t);
    cr_assert(eq(int, rc, 0), "%s: %s", body, msg);
    ctx_t ctx = {.fail = EKV_EINTERNAL};
    rc = ekv_do_txn_eval(&t, lookup, &ctx);
    ekv_do_txn_free(&t);
    return rc;
}

static int check_value(const char *key, const char *value_json)
{
    char body[1024];
    snprintf(body, sizeof(body), "{\"checks\": [{\"key\": \"%s\", \"value\": %s}]}", key,
             value_json);
    return eval_body(body);
}

static int check_exists(const char *key, int exists)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"checks\": [{\"key\": \"%s\", \"exists\": %s}]}", key,
             exists ? "true" : "false");
    return eval_body(body);
}

Test(do_txn_eval, value_checks_deep_equality)
{
    cr_assert(eq(int, check_value("int1", "1"), 1));
    cr_assert(eq(int, check_value("int1", "1.0"), 1));
    cr_assert(eq(int, check_value("int1", "1e0"), 1));
    cr_assert(eq(int, check_value("int1", "2"), 0));
    cr_assert(eq(int, check_value("int1", "\"1\""), 0));
    cr_assert(eq(int, check_value("int1", "true"), 0));
    cr_assert(eq(int, check_value("int1", "[1]"), 0));
    cr_assert(eq(int, check_value("str1", "\"1\""), 1));
    cr_assert(eq(int, check_value("str1", "1"), 0));
    cr_assert(eq(int, check_value("obj", "{\"b\": 2, \"a\": 1}"), 1));
    cr_assert(eq(int, check_value("obj", "{\"a\": 1, \"b\": 2.0}"), 1));
    cr_assert(eq(int, check_value("obj", "{\"a\": 1}"), 0));
    cr_assert(eq(int, check_value("obj", "{\"a\": 1, \"b\": 2, \"c\": 3}"), 0));
    cr_assert(eq(int, check_value("obj", "{\"a\": 1, \"c\": 2}"), 0));
    cr_assert(eq(int, check_value("obj", "[1, 2]"), 0));
    cr_assert(eq(int, check_value("arr", "[1, 2]"), 1));
    cr_assert(eq(int, check_value("arr", "[2, 1]"), 0));
    cr_assert(eq(int, check_value("arr", "[1, 2, 3]"), 0));
    cr_assert(eq(int, check_value("arr", "[1]"), 0));
    cr_assert(eq(int, check_value("arr", "{\"0\": 1, \"1\": 2}"), 0));
    cr_assert(eq(int, check_value("nul", "null"), 1));
    cr_assert(eq(int, check_value("nul", "false"), 0));
    cr_assert(eq(int, check_value("nul", "0"), 0));
    cr_assert(eq(int, check_value("nul", "\"\""), 0));
    cr_assert(eq(int, check_value("f", "false"), 1));
    cr_assert(eq(int, check_value("f", "true"), 0));
    cr_assert(eq(int, check_value("f", "null"), 0));
    cr_assert(
        eq(int,
           check_value("nested", "{\"u\": [], \"p\": {\"t\": true, \"q\": [1.0, {\"r\": \"s\"}]}}"),
           1));
    cr_assert(eq(
        int, check_value("nested", "{\"u\": [], \"p\": {\"t\": true, \"q\": [1, {\"r\": \"S\"}]}}"),
        0));
    cr_assert(eq(
        int, check_value("nested", "{\"u\": {}, \"p\": {\"t\": true, \"q\": [1, {\"r\": \"s\"}]}}"),
        0));
    cr_assert(
        eq(int, check_value("nested", "{\"u\": [], \"p\": {\"t\": 1, \"q\": [1, {\"r\": \"s\"}]}}"),
           0));
}

Test(do_txn_eval, absent_key_fails_value_checks)
{
    cr_assert(eq(int, check_value("missing", "null"), 0));
    cr_assert(eq(int, check_value("missing", "1"), 0));
}

Test(do_txn_eval, exists_checks)
{
    cr_assert(eq(int, check_exists("int1", 1), 1));
    cr_assert(eq(int, check_exists("int1", 0), 0));
    cr_assert(eq(int, check_exists("nul", 1), 1)); /* a stored null exists */
    cr_assert(eq(int, check_exists("missing", 0), 1));
    cr_assert(eq(int, check_exists("missing", 1), 0));
}

Test(do_txn_eval, all_checks_must_hold)
{
    cr_assert(eq(int, eval_body("{}"), 1));
    cr_assert(eq(int,
                 eval_body("{\"checks\": [{\"key\": \"int1\", \"value\": 1}, {\"key\": \"arr\", "
                           "\"value\": [1,2]}, {\"key\": \"nope\", \"exists\": false}]}"),
                 1));
    /* the last one fails */
    cr_assert(eq(int,
                 eval_body("{\"checks\": [{\"key\": \"int1\", \"value\": 1}, {\"key\": \"arr\", "
                           "\"value\": [1,2]}, {\"key\": \"nope\", \"exists\": true}]}"),
                 0));
    /* the first one fails */
    cr_assert(eq(int,
                 eval_body("{\"checks\": [{\"key\": \"int1\", \"value\": 0}, {\"key\": \"arr\", "
                           "\"value\": [1,2]}]}"),
                 0));
}

Test(do_txn_eval, lookup_error_propagates)
{
    ekv_do_txn_t t;
    cr_assert(eq(int,
                 parse("{\"checks\": [{\"key\": \"int1\", \"exists\": true}, {\"key\": \"boom\", "
                       "\"exists\": true}]}",
                       &t),
                 0));
    ctx_t ctx = {.fail = EKV_EINTERNAL};
    cr_assert(eq(int, ekv_do_txn_eval(&t, lookup, &ctx), EKV_EINTERNAL));
    cr_assert(eq(int, ctx.calls, 2));
    ctx = (ctx_t){.fail = -7};
    cr_assert(eq(int, ekv_do_txn_eval(&t, lookup, &ctx), -7));
    ekv_do_txn_free(&t);
    /* a value check too */
    cr_assert(eq(int, parse("{\"checks\": [{\"key\": \"boom\", \"value\": 1}]}", &t), 0));
    ctx = (ctx_t){.fail = -3};
    cr_assert(lt(int, ekv_do_txn_eval(&t, lookup, &ctx), 0));
    ekv_do_txn_free(&t);
}

/* ---- ekv_do_json_equal ------------------------------------------------------------------- */

static int jeq(const char *a, const char *b)
{
    int x = ekv_do_json_equal(a, strlen(a), b, strlen(b));
    int y = ekv_do_json_equal(b, strlen(b), a, strlen(a));
    cr_assert(eq(int, x, y), "not symmetric: %s vs %s", a, b);
    return x;
}

Test(do_json_equal, direct)
{
    cr_assert(eq(int, jeq("1", "1.0"), 1));
    cr_assert(eq(int, jeq("0", "-0"), 1));
    cr_assert(eq(int, jeq("100", "1e2"), 1));
    cr_assert(eq(int, jeq("0.5", "5e-1"), 1));
    cr_assert(eq(int, jeq("1", "1.000001"), 0));
    cr_assert(eq(int, jeq("1", "\"1\""), 0));
    cr_assert(eq(int, jeq("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}"), 1));
    cr_assert(eq(int, jeq("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1,\"c\":null}"), 0));
    cr_assert(eq(int, jeq("{}", "{}"), 1));
    cr_assert(eq(int, jeq("{}", "[]"), 0));
    cr_assert(eq(int, jeq("[1,2]", "[2,1]"), 0));
    cr_assert(eq(int, jeq("[[1,[2]],3]", "[[1.0,[2.0]],3]"), 1));
    cr_assert(eq(int, jeq("[[1,[2]],3]", "[[1,[[2]]],3]"), 0));
    cr_assert(eq(int, jeq("null", "null"), 1));
    cr_assert(eq(int, jeq("true", "true"), 1));
    cr_assert(eq(int, jeq("true", "false"), 0));
    cr_assert(eq(int, jeq("null", "false"), 0));
    cr_assert(eq(int, jeq("\"a\"", "\"a\""), 1));
    cr_assert(eq(int, jeq("\"a\"", "\"A\""), 0));
    cr_assert(eq(int, jeq("\"\\u00e9\"", "\"\xc3\xa9\""), 1));
    cr_assert(eq(int, jeq("\"a\\u0000b\"", "\"a\\u0000b\""), 1));
    cr_assert(eq(int, jeq("\"a\\u0000b\"", "\"a\\u0000c\""), 0));
    cr_assert(eq(int, jeq("\"a\\u0000b\"", "\"a\""), 0));
    cr_assert(
        eq(int, jeq("{\"k\":{\"x\":[1,{\"y\":null}]}}", "{\"k\":{\"x\":[1,{\"y\":null}]}}"), 1));
    cr_assert(eq(int, jeq("{\"k\":{\"x\":[1,{\"y\":null}]}}", "{\"k\":{\"x\":[1,{\"y\":0}]}}"), 0));
    /* not JSON: never equal, even to itself */
    cr_assert(eq(int, jeq("{", "{"), 0));
    cr_assert(eq(int, jeq("", ""), 0));
    cr_assert(eq(int, jeq("1", "1 x"), 0));
    /* lengths are honoured: "12" cut to "1" */
    cr_assert(eq(int, ekv_do_json_equal(S("12"), "1", 1), 0));
    cr_assert(eq(int, ekv_do_json_equal("12", 1, "1", 1), 1));
}
