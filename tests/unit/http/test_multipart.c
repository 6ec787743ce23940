/* Unit tests for server/multipart.c: boundary extraction, body parsing, metadata rebuild. */
#include "server/http/multipart.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/http/json_out.h"

/* The JSON.stringify text of a value (what the server stores as metadata). */
static char *js_text(const json_t *v)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert(eq(int, ekv_json_put_value(&b, v), 0));
    return ekv_buf_take(&b, NULL);
}

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

/* ---- boundary ---------------------------------------------------------------------------- */

static int boundary_of(const char *ct, char *out)
{
    const char *b = NULL;
    size_t n = 0;
    int r = ekv_multipart_boundary(ct, strlen(ct), &b, &n);
    if (r == 0) {
        cr_assert(ge(ptr, (void *)b, (void *)ct));
        cr_assert(le(ptr, (void *)(b + n), (void *)(ct + strlen(ct))));
        memcpy(out, b, n);
        out[n] = '\0';
    }
    return r;
}

Test(mp_boundary, undici_and_curl_forms)
{
    char b[80];
    cr_assert(eq(
        int, boundary_of("multipart/form-data; boundary=----formdata-undici-051245938171", b), 0));
    cr_assert(eq(str, b, "----formdata-undici-051245938171"));
    cr_assert(
        eq(int,
           boundary_of("multipart/form-data; boundary=------------------------d74496d66958873e", b),
           0));
    cr_assert(eq(str, b, "------------------------d74496d66958873e"));
}

Test(mp_boundary, quoted_case_insensitive_and_other_params)
{
    char b[80];
    cr_assert(eq(int, boundary_of("multipart/form-data; boundary=\"a b=c;d\"", b), 0));
    cr_assert(eq(str, b, "a b=c;d"));
    cr_assert(eq(int, boundary_of("Multipart/Form-Data;BOUNDARY=xyz", b), 0));
    cr_assert(eq(str, b, "xyz"));
    cr_assert(
        eq(int, boundary_of("  multipart/form-data ; charset=utf-8 ; boundary = q ; x=y", b), 0));
    cr_assert(eq(str, b, "q"));
    cr_assert(eq(int, boundary_of("multipart/form-data; boundary=----=_Part_0_1.2", b), 0));
    cr_assert(eq(str, b, "----=_Part_0_1.2"));
    /* first boundary parameter wins */
    cr_assert(eq(int, boundary_of("multipart/form-data; boundary=one; boundary=two", b), 0));
    cr_assert(eq(str, b, "one"));
}

Test(mp_boundary, length_70_ok_71_rejected)
{
    char ct[128], b[80];
    char seventy[72];
    memset(seventy, 'b', 71);
    seventy[70] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", seventy);
    cr_assert(eq(int, boundary_of(ct, b), 0));
    cr_assert(eq(sz, strlen(b), 70));
    seventy[70] = 'b';
    seventy[71] = '\0';
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%s", seventy);
    cr_assert(eq(int, boundary_of(ct, b), -1));
}

Test(mp_boundary, rejects)
{
    static const char *const bad[] = {
        "",
        "multipart/form-data",
        "multipart/form-data;",
        "multipart/form-data; charset=utf-8",
        "multipart/mixed; boundary=x",
        "multipart/form-datax; boundary=x",
        "application/json; boundary=x",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=\"abc",
        "multipart/form-data; boundary=\"abc \"", /* trailing space */
        "multipart/form-data; boundary=\"a\\b\"",
        "multipart/form-data; boundary",
        "multipart/form-data; boundary=\"x\"junk",
        "multipart/form-data; boundary=a\x01z",
        "multipart/form-data; boundary=a\xc3\xa9z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char b[80];
        cr_expect(eq(int, boundary_of(bad[i], b), -1), "content-type '%s'", bad[i]);
    }
}

Test(mp_boundary, length_delimited)
{
    const char *b;
    size_t n;
    const char ct[] = "multipart/form-data; boundary=abcdef";
    cr_assert(eq(int, ekv_multipart_boundary(ct, sizeof(ct) - 1 - 3, &b, &n), 0));
    cr_assert(eq(sz, n, 3));
    cr_assert(eq(mem, MEM(b, n), MEM("abc", 3)));
}

/* ---- parse ------------------------------------------------------------------------------- */

#define MAXP 16

typedef struct {
    ekv_mp_part_t p[MAXP];
    size_t n;
} parts_t;

static int parse(const char *body, size_t len, const char *boundary, parts_t *out)
{
    out->n = 999;
    int r = ekv_multipart_parse(body, len, boundary, strlen(boundary), out->p, MAXP, &out->n);
    if (r == 0) {
        /* every pointer handed out lies inside the body */
        for (size_t i = 0; i < out->n; i++) {
            const ekv_mp_part_t *p = &out->p[i];
            cr_assert(ge(ptr, (void *)p->name, (void *)body));
            cr_assert(le(ptr, (void *)(p->name + p->name_len), (void *)(body + len)));
            cr_assert(ge(ptr, (void *)p->data, (void *)body));
            cr_assert(le(ptr, (void *)(p->data + p->data_len), (void *)(body + len)));
        }
    }
    return r;
}

static void expect_str(const char *p, size_t n, const char *want)
{
    cr_assert(not(zero(ptr, (void *)p)), "expected '%s', got NULL", want);
    cr_assert(eq(sz, n, strlen(want)));
    cr_assert(eq(mem, MEM(p, n), MEM(want, strlen(want))));
}

static void expect_part(const ekv_mp_part_t *p, const char *name, const char *data, size_t data_len)
{
    expect_str(p->name, p->name_len, name);
    cr_assert(eq(sz, p->data_len, data_len));
    cr_assert(eq(mem, MEM(p->data, p->data_len), MEM(data, data_len)));
}

/* What wrangler (undici FormData) sends for `kv key put --metadata`. */
static const char wrangler_body[] = "------formdata-undici-0123\r\n"
                                    "Content-Disposition: form-data; name=\"value\"\r\n"
                                    "\r\n"
                                    "hello world\r\n"
                                    "------formdata-undici-0123\r\n"
                                    "Content-Disposition: form-data; name=\"metadata\"\r\n"
                                    "\r\n"
                                    "{\"a\":1}\r\n"
                                    "------formdata-undici-0123--\r\n";

Test(mp_parse, wrangler_text_fields)
{
    parts_t ps;
    cr_assert(eq(int, parse(S(wrangler_body), "----formdata-undici-0123", &ps), 0));
    cr_assert(eq(sz, ps.n, 2));
    expect_part(&ps.p[0], "value", S("hello world"));
    cr_assert(zero(ptr, (void *)ps.p[0].filename));
    cr_assert(zero(ptr, (void *)ps.p[0].content_type));
    expect_part(&ps.p[1], "metadata", S("{\"a\":1}"));
}

Test(mp_parse, file_part_binary_data_preserved_exactly)
{
    /* data holds NUL, CR, LF, CRLF, "--" and near-miss delimiters */
    static const char data[] = "\x00\r\n\r\n--\r\n--b\r\n--bo\n--boundaryX\r\n--boundary-\xff\r";
    static const char body[] =
        "--boundary\r\n"
        "Content-Disposition: form-data; name=\"value\"; filename=\"blob\"\r\n"
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
        "\x00\r\n\r\n--\r\n--b\r\n--bo\n--boundaryX\r\n--boundary-\xff\r"
        "\r\n--boundary--\r\n";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "boundary", &ps), 0));
    cr_assert(eq(sz, ps.n, 1));
    expect_part(&ps.p[0], "value", S(data));
    expect_str(ps.p[0].filename, ps.p[0].filename_len, "blob");
    expect_str(ps.p[0].content_type, ps.p[0].content_type_len, "application/octet-stream");
}

Test(mp_parse, header_names_case_insensitive_params_unquoted)
{
    static const char body[] =
        "--b\r\n"
        "content-disposition: FORM-DATA; NAME=value; FileName=\"a b.txt\"\r\n"
        "CONTENT-TYPE:   text/plain;charset=utf-8  \r\n"
        "X-Other: ignored\r\n"
        "\r\n"
        "v\r\n"
        "--b--";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 1));
    expect_part(&ps.p[0], "value", S("v"));
    expect_str(ps.p[0].filename, ps.p[0].filename_len, "a b.txt");
    expect_str(ps.p[0].content_type, ps.p[0].content_type_len, "text/plain;charset=utf-8");
}

Test(mp_parse, name_not_confused_with_filename)
{
    static const char body[] =
        "--b\r\nContent-Disposition: form-data; filename=\"f\"; name=\"n\"\r\n\r\nx\r\n--b--";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    expect_part(&ps.p[0], "n", S("x"));
    expect_str(ps.p[0].filename, ps.p[0].filename_len, "f");
}

Test(mp_parse, empty_name_and_escaped_quote_are_raw)
{
    static const char body[] =
        "--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nx\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"metadata[a%22b]\"\r\n\r\ny\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"c:\\dir\\\"; filename=\"\"\r\n\r\nz\r\n"
        "--b--";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 3));
    expect_part(&ps.p[0], "", S("x"));
    expect_part(&ps.p[1], "metadata[a%22b]", S("y"));
    expect_part(&ps.p[2], "c:\\dir\\", S("z")); /* backslash is not an escape */
    expect_str(ps.p[2].filename, ps.p[2].filename_len, "");
}

Test(mp_parse, bare_lf_line_endings)
{
    static const char body[] = "--b\n"
                               "Content-Disposition: form-data; name=\"value\"\n"
                               "\n"
                               "line1\nline2\n"
                               "--b\n"
                               "Content-Disposition: form-data; name=\"metadata\"\n"
                               "\n"
                               "{}\n"
                               "--b--\n";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 2));
    expect_part(&ps.p[0], "value", S("line1\nline2"));
    expect_part(&ps.p[1], "metadata", S("{}"));
}

Test(mp_parse, crlf_before_delimiter_belongs_to_it)
{
    /* data ending in CR LF keeps them; only the delimiter's own CRLF is removed */
    static const char body[] =
        "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n\r\n--b--";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    expect_part(&ps.p[0], "v", S("x\r\n"));
    /* a lone CR before a bare LF delimiter is taken as CRLF */
    static const char body2[] =
        "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\r\n--b--";
    cr_assert(eq(int, parse(S(body2), "b", &ps), 0));
    expect_part(&ps.p[0], "v", S("x\r"));
}

Test(mp_parse, preamble_epilogue_and_transport_padding)
{
    static const char body[] = "This is the preamble.\r\n--not-it\r\n"
                               "--b \t\r\n"
                               "Content-Disposition: form-data; name=\"value\"\r\n\r\n"
                               "v\r\n"
                               "--b--  trailing text\r\nepilogue --b\r\n more";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 1));
    expect_part(&ps.p[0], "value", S("v"));
}

Test(mp_parse, empty_parts)
{
    static const char body[] =
        "--b\r\nContent-Disposition: form-data; name=\"empty\"\r\n\r\n\r\n"
        /* headers then immediately the delimiter: the CRLF is the delimiter's */
        "--b\r\nContent-Disposition: form-data; name=\"nobody\"\r\n\r\n"
        "--b\r\nContent-Disposition: form-data; name=\"last\"\r\n\r\n\r\n"
        "--b--\r\n";
    parts_t ps;
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 3));
    expect_part(&ps.p[0], "empty", "", 0);
    expect_part(&ps.p[1], "nobody", "", 0);
    expect_part(&ps.p[2], "last", "", 0);
}

Test(mp_parse, zero_parts)
{
    /* a line that only starts like a delimiter is preamble */
    static const char junk_first[] =
        "--b junk\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\n--b--x";
    parts_t ps;
    cr_assert(eq(int, parse(S("--b--"), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 0));
    cr_assert(eq(int, parse(S("preamble\r\n--b--\r\n"), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 0));
    cr_assert(eq(int, parse(S(junk_first), "b", &ps), 0));
    cr_assert(eq(sz, ps.n, 0));
}

Test(mp_parse, malformed_bodies)
{
    static const struct {
        const char *why;
        const char *body;
    } bad[] = {
        {"empty body", ""},
        {"no boundary at all", "hello"},
        {"missing final boundary",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n"},
        {"final boundary missing its --",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n--b"},
        {"final boundary with one dash",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n--b-"},
        {"only an opening delimiter", "--b\r\n"},
        {"headers never end", "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n"},
        {"no content-disposition", "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"},
        {"no headers at all", "--b\r\n\r\nx\r\n--b--"},
        {"disposition without name",
         "--b\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nx\r\n--b--"},
        {"attachment disposition",
         "--b\r\nContent-Disposition: attachment; name=\"v\"\r\n\r\nx\r\n--b--"},
        {"unterminated quote", "--b\r\nContent-Disposition: form-data; name=\"v\r\n\r\nx\r\n--b--"},
        {"param without value", "--b\r\nContent-Disposition: form-data; name\r\n\r\nx\r\n--b--"},
        {"junk after quoted value",
         "--b\r\nContent-Disposition: form-data; name=\"v\"x\r\n\r\nx\r\n--b--"},
        {"header without colon",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\nbogus\r\n\r\nx\r\n--b--"},
        {"empty header name",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\n: x\r\n\r\nx\r\n--b--"},
        {"folded header", "--b\r\nContent-Disposition: form-data; name=\"v\"\r\nX-A: 1\r\n\tmore: "
                          "2\r\n\r\nx\r\n--b--"},
        {"duplicate content-disposition",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\nContent-Disposition: form-data; "
         "name=\"w\"\r\n\r\nx\r\n--b--"},
        {"duplicate name parameter",
         "--b\r\nContent-Disposition: form-data; name=\"v\"; name=\"w\"\r\n\r\nx\r\n--b--"},
        {"duplicate filename parameter",
         "--b\r\nContent-Disposition: form-data; name=v; filename=a; FILENAME=b\r\n\r\nx\r\n--b--"},
        {"duplicate content-type",
         "--b\r\nContent-Disposition: form-data; name=\"v\"\r\nContent-Type: a/b\r\nContent-Type: "
         "c/d\r\n\r\nx\r\n--b--"},
        {"boundary prefix only",
         "--bb\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n--bb--"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        parts_t ps;
        cr_expect(eq(int, parse(bad[i].body, strlen(bad[i].body), "b", &ps), -1), "%s", bad[i].why);
        cr_expect(eq(sz, ps.n, 0), "%s: nparts", bad[i].why);
    }
}

Test(mp_parse, boundary_argument_checked)
{
    size_t n;
    ekv_mp_part_t p[1];
    char b71[71];
    memset(b71, 'b', sizeof(b71));
    cr_assert(eq(int, ekv_multipart_parse(S("----"), "", 0, p, 1, &n), -1));
    cr_assert(eq(int, ekv_multipart_parse(S("--x--"), b71, 71, p, 1, &n), -1));
    cr_assert(eq(int, ekv_multipart_parse(S("--x--"), "x", 1, p, 1, &n), 0));
}

Test(mp_parse, boundary_length_70_works)
{
    char b[71], body[300];
    memset(b, 'Z', 70);
    b[70] = '\0';
    int len =
        snprintf(body, sizeof(body),
                 "--%s\r\nContent-Disposition: form-data; name=\"v\"\r\n\r\nx\r\n--%s--", b, b);
    parts_t ps;
    cr_assert(eq(int, parse(body, (size_t)len, b, &ps), 0));
    cr_assert(eq(sz, ps.n, 1));
    expect_part(&ps.p[0], "v", S("x"));
}

static size_t make_parts(char *buf, int count)
{
    size_t o = 0;
    for (int i = 0; i < count; i++)
        o += (size_t)sprintf(
            buf + o, "--b\r\nContent-Disposition: form-data; name=\"p%d\"\r\n\r\n%d\r\n", i, i);
    o += (size_t)sprintf(buf + o, "--b--\r\n");
    return o;
}

Test(mp_parse, max_parts_exact_ok_one_more_rejected)
{
    char buf[4096];
    ekv_mp_part_t p[4];
    size_t n = 0;
    size_t len = make_parts(buf, 4);
    cr_assert(eq(int, ekv_multipart_parse(buf, len, "b", 1, p, 4, &n), 0));
    cr_assert(eq(sz, n, 4));
    expect_part(&p[3], "p3", S("3"));
    len = make_parts(buf, 5);
    /* issue 9: a limit of its own, not "malformed" */
    cr_assert(
        eq(int, ekv_multipart_parse(buf, len, "b", 1, p, 4, &n), EKV_MULTIPART_TOO_MANY_PARTS));
    cr_assert(eq(int, ekv_multipart_parse(S("--b--"), "b", 1, p, 0, &n), 0));
}

static size_t make_long_header(char *buf, size_t line_len, const char *eol)
{
    /* Content-Disposition line of exactly line_len bytes (excluding the line end) */
    static const char head[] = "Content-Disposition: form-data; name=\"v\"; filename=\"";
    size_t o = (size_t)sprintf(buf, "--b%s%s", eol, head);
    size_t fill = line_len - (sizeof(head) - 1) - 1;
    memset(buf + o, 'f', fill);
    o += fill;
    o += (size_t)sprintf(buf + o, "\"%s%sx%s--b--", eol, eol, eol);
    return o;
}

Test(mp_parse, header_line_8k_ok_8k_plus_1_rejected)
{
    static char buf[20000];
    static const char *const eols[] = {"\r\n", "\n"};
    for (int e = 0; e < 2; e++) {
        parts_t ps;
        size_t len = make_long_header(buf, 8192, eols[e]);
        cr_assert(eq(int, parse(buf, len, "b", &ps), 0));
        cr_assert(eq(sz, ps.p[0].filename_len, 8192 - 53));
        expect_part(&ps.p[0], "v", S("x"));
        len = make_long_header(buf, 8193, eols[e]);
        cr_assert(eq(int, parse(buf, len, "b", &ps), -1), "eol %d", e);
    }
}

Test(mp_parse, every_truncation_is_malformed)
{
    /* Cutting the body anywhere before the end of the close delimiter must fail cleanly
     * (ASan checks nothing past the cut is read: each prefix is its own heap block). */
    size_t full = sizeof(wrangler_body) - 1;
    size_t close_end = full - 2; /* "...--\r\n": the trailing CRLF is epilogue */
    for (size_t cut = 0; cut < close_end; cut++) {
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, wrangler_body, cut);
        parts_t ps;
        cr_expect(eq(int, parse(copy, cut, "----formdata-undici-0123", &ps), -1), "cut at %zu",
                  cut);
        free(copy);
    }
    parts_t ps;
    cr_assert(eq(int, parse(wrangler_body, close_end, "----formdata-undici-0123", &ps), 0));
    cr_assert(eq(sz, ps.n, 2));
}

/* Deterministic mutation fuzzing under the test binary: no crash, no OOB (ASan build), all
 * returned pointers inside the buffer (checked in parse()). */
Test(mp_parse, mutations_never_read_out_of_bounds)
{
    static const char seed[] =
        "--b\r\nContent-Disposition: form-data; name=\"value\"; "
        "filename=\"f\"\r\nContent-Type: x/y\r\n\r\nab\r\ncd\r\n"
        "--b\nContent-Disposition: form-data; name=metadata\n\n{}\n--b--\r\n";
    const char alphabet[] = "-\r\n\"b;=: xA\0";
    uint32_t rng = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = sizeof(seed) - 1;
        char *buf = malloc(len);
        memcpy(buf, seed, len);
        int edits = 1 + iter % 4;
        for (int e = 0; e < edits; e++) {
            rng = rng * 1103515245u + 12345u;
            size_t at = (rng >> 8) % len;
            rng = rng * 1103515245u + 12345u;
            buf[at] = alphabet[(rng >> 8) % (sizeof(alphabet) - 1)];
        }
        rng = rng * 1103515245u + 12345u;
        size_t cut = (iter % 3 == 0) ? (rng >> 8) % (len + 1) : len;
        parts_t ps;
        int r = parse(buf, cut, "b", &ps);
        cr_assert(r == 0 || r == -1);
        free(buf);
    }
}

Test(mp_find, first_exact_match)
{
    parts_t ps;
    static const char body[] = "--b\r\nContent-Disposition: form-data; name=\"valuex\"\r\n\r\n0\r\n"
                               "--b\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\n1\r\n"
                               "--b\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\n2\r\n"
                               "--b--";
    cr_assert(eq(int, parse(S(body), "b", &ps), 0));
    const ekv_mp_part_t *p = ekv_multipart_find(ps.p, ps.n, "value");
    cr_assert(eq(ptr, (void *)p, (void *)&ps.p[1]));
    cr_assert(zero(ptr, (void *)ekv_multipart_find(ps.p, ps.n, "valu")));
    cr_assert(zero(ptr, (void *)ekv_multipart_find(ps.p, ps.n, "metadata")));
    cr_assert(zero(ptr, (void *)ekv_multipart_find(ps.p, 0, "value")));
}

/* ---- metadata ---------------------------------------------------------------------------- */

/* Build a part list from name/value string pairs (NULL-terminated list). */
static size_t fields(ekv_mp_part_t *out, const char *const *kv)
{
    size_t n = 0;
    for (; kv[0]; kv += 2, n++) {
        memset(&out[n], 0, sizeof(out[n]));
        out[n].name = kv[0];
        out[n].name_len = strlen(kv[0]);
        out[n].data = kv[1];
        out[n].data_len = strlen(kv[1]);
    }
    return n;
}

static void expect_metadata(const char *const *kv, const char *want_json)
{
    ekv_mp_part_t p[MAXP];
    size_t n = fields(p, kv);
    json_t *got = (json_t *)1;
    cr_assert(eq(int, ekv_multipart_metadata(p, n, &got), 0));
    if (!want_json) {
        cr_assert(zero(ptr, got));
        return;
    }
    json_error_t err;
    /* numbers are doubles, as in JavaScript (EKV_JSON_PARSE_FLAGS) */
    json_t *want = json_loads(want_json, EKV_JSON_PARSE_FLAGS, &err);
    cr_assert(not(zero(ptr, want)), "bad expectation %s", want_json);
    cr_assert(not(zero(ptr, got)));
    char *got_s = js_text(got);
    cr_assert(json_equal(got, want), "got %s want %s", got_s, want_json);
    free(got_s);
    json_decref(want);
    json_decref(got);
}

static void expect_metadata_error(const char *const *kv)
{
    ekv_mp_part_t p[MAXP];
    size_t n = fields(p, kv);
    json_t *got = (json_t *)1;
    cr_assert(eq(int, ekv_multipart_metadata(p, n, &got), -1));
    cr_assert(zero(ptr, got));
}

#define FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(mp_metadata, none)
{
    expect_metadata(FIELDS("value", "v"), NULL);
    expect_metadata(FIELDS("value", "v", "metadataX", "1", "meta", "2", "Metadata", "{"), NULL);
    ekv_mp_part_t p[1];
    json_t *got = (json_t *)1;
    cr_assert(eq(int, ekv_multipart_metadata(p, 0, &got), 0));
    cr_assert(zero(ptr, got));
}

Test(mp_metadata, json_text_part)
{
    expect_metadata(FIELDS("value", "v", "metadata", "{\"a\":1,\"b\":[true,null]}"),
                    "{\"a\":1,\"b\":[true,null]}");
    expect_metadata(FIELDS("metadata", "\"just a string\""), "\"just a string\"");
    expect_metadata(FIELDS("metadata", "42"), "42");
}

Test(mp_metadata, json_text_part_invalid)
{
    expect_metadata_error(FIELDS("metadata", "{"));
    expect_metadata_error(FIELDS("metadata", ""));
    expect_metadata_error(FIELDS("metadata", "hello")); /* SDK-7 sends a string verbatim */
    expect_metadata_error(FIELDS("metadata", "{} {}"));
}

Test(mp_metadata, json_text_part_is_length_delimited)
{
    ekv_mp_part_t p = {0};
    p.name = "metadata";
    p.name_len = 8;
    p.data = "[1,2]]]]";
    p.data_len = 5;
    json_t *got = NULL;
    cr_assert(eq(int, ekv_multipart_metadata(&p, 1, &got), 0));
    cr_assert(eq(int, json_is_array(got), 1));
    cr_assert(eq(sz, json_array_size(got), 2));
    json_decref(got);
}

Test(mp_metadata, sdk7_bracket_fields)
{
    expect_metadata(FIELDS("value", "v", "metadata[a]", "1", "metadata[b][c]", "x",
                           "metadata[b][d]", "y", "metadata[list][]", "1", "metadata[list][]", "2",
                           "metadata[t]", "true"),
                    "{\"a\":\"1\",\"b\":{\"c\":\"x\",\"d\":\"y\"},\"list\":[\"1\",\"2\"],"
                    "\"t\":\"true\"}");
}

Test(mp_metadata, sdk7_keys_kept_verbatim)
{
    expect_metadata(
        FIELDS("metadata[ sp ace ]", "1", "metadata[0]", "2", "metadata[\xc3\xa9]", "3",
               "metadata[a.b]", "", "metadata[a%22b]", "q"),
        "{\" sp ace \":\"1\",\"0\":\"2\",\"\xc3\xa9\":\"3\",\"a.b\":\"\",\"a%22b\":\"q\"}");
}

Test(mp_metadata, sdk7_top_level_array)
{
    expect_metadata(FIELDS("metadata[]", "a", "metadata[]", "b"), "[\"a\",\"b\"]");
}

Test(mp_metadata, sdk7_arrays_of_objects)
{
    /* [{"x":1,"y":2},{"x":3}] is flattened to l[][x], l[][y], l[][x] */
    expect_metadata(
        FIELDS("metadata[l][][x]", "1", "metadata[l][][y]", "2", "metadata[l][][x]", "3"),
        "{\"l\":[{\"x\":\"1\",\"y\":\"2\"},{\"x\":\"3\"}]}");
    /* deeper paths collide too: [{"o":{"k":1}},{"o":{"k":2}}] */
    expect_metadata(FIELDS("metadata[l][][o][k]", "1", "metadata[l][][o][k]", "2"),
                    "{\"l\":[{\"o\":{\"k\":\"1\"}},{\"o\":{\"k\":\"2\"}}]}");
    /* [{"o":{"k":1,"j":2}}] merges */
    expect_metadata(FIELDS("metadata[l][][o][k]", "1", "metadata[l][][o][j]", "2"),
                    "{\"l\":[{\"o\":{\"k\":\"1\",\"j\":\"2\"}}]}");
}

Test(mp_metadata, sdk7_mixed_array_elements)
{
    /* ["1", {"x": 2}] */
    expect_metadata(FIELDS("metadata[l][]", "1", "metadata[l][][x]", "2"),
                    "{\"l\":[\"1\",{\"x\":\"2\"}]}");
}

Test(mp_metadata, sdk7_nested_arrays)
{
    /* [[1,2]] flattens to m[][]=1, m[][]=2 and comes back as one inner array */
    expect_metadata(FIELDS("metadata[m][][]", "1", "metadata[m][][]", "2"),
                    "{\"m\":[[\"1\",\"2\"]]}");
    /* a string element after an array element, then another array element */
    expect_metadata(FIELDS("metadata[m][][]", "1", "metadata[m][]", "s", "metadata[m][][]", "2"),
                    "{\"m\":[[\"1\"],\"s\",[\"2\"]]}");
}

Test(mp_metadata, sdk7_ignores_unrelated_fields)
{
    expect_metadata(FIELDS("value", "v", "metadata[a]", "1", "other[b]", "2", "metadatax[c]", "3"),
                    "{\"a\":\"1\"}");
}

Test(mp_metadata, conflicts_and_duplicates)
{
    expect_metadata_error(FIELDS("metadata[a]", "1", "metadata[a][b]", "2"));
    expect_metadata_error(FIELDS("metadata[a][b]", "2", "metadata[a]", "1"));
    expect_metadata_error(FIELDS("metadata[a]", "1", "metadata[a]", "1"));
    expect_metadata_error(FIELDS("metadata[a][]", "1", "metadata[a][b]", "2"));
    expect_metadata_error(FIELDS("metadata[a][b]", "1", "metadata[a][]", "2"));
    expect_metadata_error(FIELDS("metadata[]", "1", "metadata[a]", "2"));
    expect_metadata_error(FIELDS("metadata[a]", "1", "metadata[]", "2"));
}

Test(mp_metadata, mixing_json_part_and_brackets)
{
    expect_metadata_error(FIELDS("metadata", "{}", "metadata[a]", "1"));
    expect_metadata_error(FIELDS("metadata[a]", "1", "metadata", "{}"));
    expect_metadata_error(FIELDS("metadata", "{}", "metadata", "{}"));
}

Test(mp_metadata, malformed_bracket_names)
{
    expect_metadata_error(FIELDS("metadata[a", "1"));
    expect_metadata_error(FIELDS("metadata[a]b", "1"));
    expect_metadata_error(FIELDS("metadata[a][", "1"));
    expect_metadata_error(FIELDS("metadata[a[b]]", "1"));
    expect_metadata_error(FIELDS("metadata[a]]", "1"));
    expect_metadata_error(FIELDS("metadata[", "1"));
}

Test(mp_metadata, invalid_utf8_leaf_or_key)
{
    expect_metadata_error(FIELDS("metadata[a]", "\xff"));
    expect_metadata_error(FIELDS("metadata[\xff]", "1"));
}

Test(mp_metadata, binary_leaf_with_nul_kept)
{
    ekv_mp_part_t p = {0};
    p.name = "metadata[k]";
    p.name_len = strlen(p.name);
    p.data = "a\0b";
    p.data_len = 3;
    json_t *got = NULL;
    cr_assert(eq(int, ekv_multipart_metadata(&p, 1, &got), 0));
    json_t *s = json_object_get(got, "k");
    cr_assert(eq(sz, json_string_length(s), 3));
    cr_assert(eq(mem, MEM(json_string_value(s), 3), MEM("a\0b", 3)));
    json_decref(got);
}

static char *deep_name(int depth)
{
    char *name = malloc(8 + 2 * (size_t)depth + 1);
    memcpy(name, "metadata", 8);
    for (int i = 0; i < depth; i++)
        memcpy(name + 8 + 2 * i, "[]", 2);
    name[8 + 2 * depth] = '\0';
    return name;
}

Test(mp_metadata, depth_512_ok_513_rejected)
{
    char *name = deep_name(512);
    ekv_mp_part_t p = {0};
    p.name = name;
    p.name_len = strlen(name);
    p.data = "x";
    p.data_len = 1;
    json_t *got = NULL;
    cr_assert(eq(int, ekv_multipart_metadata(&p, 1, &got), 0));
    json_t *cur = got;
    for (int i = 0; i < 511; i++) {
        cr_assert(eq(int, json_is_array(cur), 1));
        cur = json_array_get(cur, 0);
    }
    cr_assert(eq(int, json_is_array(cur), 1));
    cr_assert(eq(str, (char *)json_string_value(json_array_get(cur, 0)), "x"));
    json_decref(got);
    free(name);

    name = deep_name(513);
    p.name = name;
    p.name_len = strlen(name);
    got = (json_t *)1;
    cr_assert(eq(int, ekv_multipart_metadata(&p, 1, &got), -1));
    cr_assert(zero(ptr, got));
    free(name);
}

/* End to end: parse a body and rebuild, as the PUT handler does. */
Test(mp_metadata, end_to_end_sdk5_file_part_and_sdk7_fields)
{
    static const char sdk5[] = "--x\r\nContent-Disposition: form-data; name=\"value\"; "
                               "filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                               "\x00\x01\r\n"
                               "--x\r\nContent-Disposition: form-data; name=\"metadata\"; "
                               "filename=\"blob\"\r\nContent-Type: application/json\r\n\r\n"
                               "{\"n\": [1, {\"k\": \"v\"}]}\r\n"
                               "--x--\r\n";
    parts_t ps;
    cr_assert(eq(int, parse(S(sdk5), "x", &ps), 0));
    const ekv_mp_part_t *v = ekv_multipart_find(ps.p, ps.n, "value");
    cr_assert(not(zero(ptr, (void *)v)));
    cr_assert(eq(mem, MEM(v->data, v->data_len), MEM("\x00\x01", 2)));
    json_t *got = NULL;
    cr_assert(eq(int, ekv_multipart_metadata(ps.p, ps.n, &got), 0));
    char *s = js_text(got);
    cr_assert(eq(str, s, "{\"n\":[1,{\"k\":\"v\"}]}"));
    free(s);
    json_decref(got);

    static const char sdk7[] = "--y\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\nv\r\n"
                               "--y\r\nContent-Disposition: form-data; name=\"metadata[a]\"\r\n\r\n"
                               "1\r\n"
                               "--y\r\nContent-Disposition: form-data; name=\"metadata[tags][]\""
                               "\r\n\r\nred\r\n"
                               "--y--\r\n";
    cr_assert(eq(int, parse(S(sdk7), "y", &ps), 0));
    cr_assert(eq(int, ekv_multipart_metadata(ps.p, ps.n, &got), 0));
    s = js_text(got);
    cr_assert(eq(str, s, "{\"a\":\"1\",\"tags\":[\"red\"]}"));
    free(s);
    json_decref(got);
}
