#include "common/buf.h"
#include "common/errors.h"
#include "storage/catrec.h"
#include "storage/envelope.h"

#include <criterion/criterion.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

static void encode(const ekv_envelope_t *e, ekv_buf_t *b)
{
    ekv_buf_init(b, 0);
    cr_assert_eq(ekv_envelope_encode(e, b), 0);
}

Test(envelope, roundtrip_with_metadata)
{
    const char *meta = "{\"a\":1}";
    ekv_envelope_t e = {.expiration = 1700000123,
                        .metadata = meta,
                        .metadata_len = strlen(meta),
                        .value_len = 5,
                        .flags = 7};
    ekv_buf_t b;
    encode(&e, &b);
    cr_assert_leq(b.len, EKV_ENVELOPE_OVERHEAD + e.metadata_len);
    ekv_envelope_t d;
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), 0);
    cr_assert_eq(d.expiration, 1700000123);
    cr_assert_eq(d.metadata_len, strlen(meta));
    cr_assert_eq(memcmp(d.metadata, meta, d.metadata_len), 0);
    cr_assert(d.metadata >= b.data && d.metadata + d.metadata_len <= b.data + b.len,
              "metadata points into the buffer");
    cr_assert_eq(d.value_len, 5);
    cr_assert_eq(d.flags, 7);
    ekv_buf_deinit(&b);
}

Test(envelope, roundtrip_without_metadata_and_extremes)
{
    ekv_envelope_t e = {.expiration = INT64_MAX, .value_len = UINT64_MAX, .flags = UINT32_MAX};
    ekv_buf_t b;
    encode(&e, &b);
    ekv_envelope_t d;
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), 0);
    cr_assert_eq(d.expiration, INT64_MAX);
    cr_assert_null(d.metadata);
    cr_assert_eq(d.metadata_len, 0);
    cr_assert_eq(d.value_len, UINT64_MAX);
    cr_assert_eq(d.flags, UINT32_MAX);
    ekv_buf_deinit(&b);

    /* zero everything: the smallest encoding */
    ekv_envelope_t z = {0};
    encode(&z, &b);
    cr_assert_eq(b.len, 6); /* fixarray, 1, 0, nil, 0, 0 */
    cr_assert_eq(memcmp(b.data, "\x95\x01\x00\xc0\x00\x00", 6), 0);
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), 0);
    cr_assert_eq(d.expiration, 0);
    ekv_buf_deinit(&b);
}

Test(envelope, inline_value_roundtrip)
{
    const char *meta = "{\"m\":true}";
    char value[EKV_ENVELOPE_INLINE_MAX];
    for (size_t i = 0; i < sizeof(value); i++)
        value[i] = (char)(i * 7);
    ekv_envelope_t e = {.expiration = 1800000000,
                        .metadata = meta,
                        .metadata_len = strlen(meta),
                        .value_len = sizeof(value),
                        .has_value = 1,
                        .value = value};
    ekv_buf_t b;
    encode(&e, &b);
    cr_assert_leq(b.len, EKV_ENVELOPE_OVERHEAD + e.metadata_len + 5 + sizeof(value));
    ekv_envelope_t d;
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), 0);
    cr_assert_eq(d.has_value, 1);
    cr_assert_eq(d.value_len, sizeof(value));
    cr_assert(d.value >= b.data && d.value + d.value_len <= b.data + b.len,
              "the value points into the buffer");
    cr_assert_eq(memcmp(d.value, value, sizeof(value)), 0);
    cr_assert_eq(d.metadata_len, strlen(meta));
    cr_assert_eq(memcmp(d.metadata, meta, d.metadata_len), 0);
    cr_assert_eq(d.expiration, 1800000000);
    /* every truncation of it, and a trailing byte, are refused */
    for (size_t n = 0; n < b.len; n++)
        cr_assert_eq(ekv_envelope_decode(b.data, n, &d), EKV_ESTORAGE, "prefix of %zu bytes", n);
    ekv_buf_append(&b, "\x00", 1);
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), EKV_ESTORAGE);
    ekv_buf_deinit(&b);

    /* the empty value inline: fixarray 6, 2, 0, nil, 0, 0, bin8 of 0 bytes */
    ekv_envelope_t z = {.has_value = 1};
    encode(&z, &b);
    cr_assert_eq(b.len, 8);
    cr_assert_eq(memcmp(b.data, "\x96\x02\x00\xc0\x00\x00\xc4\x00", 8), 0);
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), 0);
    cr_assert_eq(d.has_value, 1);
    cr_assert_eq(d.value_len, 0);
    /* a version-1 envelope decodes without a value */
    ekv_envelope_t v1 = {.value_len = 3};
    ekv_buf_reset(&b);
    cr_assert_eq(ekv_envelope_encode(&v1, &b), 0);
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), 0);
    cr_assert_eq(d.has_value, 0);
    cr_assert_null(d.value);
    cr_assert_eq(d.value_len, 3);
    ekv_buf_deinit(&b);
}

Test(envelope, inline_value_length_must_match_value_len)
{
    /* [2, 0, nil, value_len, 0, bin "abc"] with value_len 2, 3, 4: only 3 is accepted */
    for (int vl = 2; vl <= 4; vl++) {
        char buf[] = "\x96\x02\x00\xc0\x00\x00\xc4\x03"
                     "abc";
        buf[4] = (char)vl;
        ekv_envelope_t d;
        cr_assert_eq(ekv_envelope_decode(buf, sizeof(buf) - 1, &d), vl == 3 ? 0 : EKV_ESTORAGE,
                     "value_len %d", vl);
    }
}

Test(envelope, every_truncation_is_rejected)
{
    const char *meta = "{\"k\":\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"}";
    ekv_envelope_t e = {.expiration = 99999999999,
                        .metadata = meta,
                        .metadata_len = strlen(meta),
                        .value_len = 1u << 20};
    ekv_buf_t b;
    encode(&e, &b);
    ekv_envelope_t d;
    for (size_t n = 0; n < b.len; n++)
        cr_assert_eq(ekv_envelope_decode(b.data, n, &d), EKV_ESTORAGE, "prefix of %zu bytes", n);
    /* and a trailing byte */
    ekv_buf_append(&b, "\x00", 1);
    cr_assert_eq(ekv_envelope_decode(b.data, b.len, &d), EKV_ESTORAGE);
    cr_assert_eq(ekv_envelope_decode(NULL, 0, &d), EKV_ESTORAGE);
    ekv_buf_deinit(&b);
}

/* Pack an array with msgpack-c directly (to build off-spec envelopes). */
static msgpack_sbuffer *pack(int version, int nfields, int64_t exp, int meta_type, uint64_t flags)
{
    msgpack_sbuffer *sb = msgpack_sbuffer_new();
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, (size_t)nfields);
    msgpack_pack_int(&pk, version);
    if (nfields > 1)
        msgpack_pack_int64(&pk, exp);
    if (nfields > 2) {
        if (meta_type == 0) {
            msgpack_pack_nil(&pk);
        } else if (meta_type == 1) {
            msgpack_pack_str(&pk, 2);
            msgpack_pack_str_body(&pk, "{}", 2);
        } else {
            msgpack_pack_true(&pk);
        }
    }
    if (nfields > 3)
        msgpack_pack_uint64(&pk, 10);
    if (nfields > 4)
        msgpack_pack_uint64(&pk, flags);
    for (int i = 5; i < nfields; i++)
        msgpack_pack_nil(&pk);
    return sb;
}

Test(envelope, accepts_str_metadata_and_wide_ints)
{
    msgpack_sbuffer *sb = pack(1, 5, 1234, 1, 3);
    ekv_envelope_t d;
    cr_assert_eq(ekv_envelope_decode(sb->data, sb->size, &d), 0);
    cr_assert_eq(d.expiration, 1234);
    cr_assert_eq(d.metadata_len, 2);
    cr_assert_eq(memcmp(d.metadata, "{}", 2), 0);
    cr_assert_eq(d.value_len, 10);
    cr_assert_eq(d.flags, 3);
    msgpack_sbuffer_free(sb);

    /* the same values in non-minimal widths: 0xd3 int64 expiration, 0xcf uint64 value_len */
    const char wide[] = "\x95\xcc\x01\xd3\x00\x00\x00\x00\x00\x00\x04\xd2\xc0"
                        "\xcf\x00\x00\x00\x00\x00\x00\x00\x0a\xce\x00\x00\x00\x03";
    cr_assert_eq(ekv_envelope_decode(wide, sizeof(wide) - 1, &d), 0);
    cr_assert_eq(d.expiration, 1234);
    cr_assert_eq(d.value_len, 10);
    cr_assert_eq(d.flags, 3);
}

Test(envelope, rejects_unknown_version_arity_and_types)
{
    struct {
        int version, nfields;
        int64_t exp;
        int meta_type;
        uint64_t flags;
        const char *why;
    } cases[] = {
        {3, 5, 1, 0, 0, "unknown version"},
        {3, 6, 1, 0, 0, "unknown version, 6 fields"},
        {2, 5, 1, 0, 0, "version 2 without its value"},
        {2, 6, 1, 0, 0, "version 2 with a nil value"},
        {2, 7, 1, 0, 0, "version 2 with 7 fields"},
        {0, 5, 1, 0, 0, "version 0"},
        {1, 4, 1, 0, 0, "too few fields"},
        {1, 6, 1, 0, 0, "too many fields"},
        {1, 5, -5, 0, 0, "negative expiration"},
        {1, 5, 1, 2, 0, "metadata is a bool"},
        {1, 5, 1, 0, (uint64_t)UINT32_MAX + 1, "flags above 32 bits"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        msgpack_sbuffer *sb = pack(cases[i].version, cases[i].nfields, cases[i].exp,
                                   cases[i].meta_type, cases[i].flags);
        ekv_envelope_t d;
        cr_assert_eq(ekv_envelope_decode(sb->data, sb->size, &d), EKV_ESTORAGE, "%s", cases[i].why);
        msgpack_sbuffer_free(sb);
    }
    ekv_envelope_t d;
    /* a map instead of an array */
    cr_assert_eq(ekv_envelope_decode("\x81\x01\x02", 3, &d), EKV_ESTORAGE);
    /* a bin that claims more bytes than there are */
    cr_assert_eq(ekv_envelope_decode("\x95\x01\x00\xc6\xff\xff\xff\xff\x00\x00", 10, &d),
                 EKV_ESTORAGE);
    /* array32 header with a huge count */
    cr_assert_eq(ekv_envelope_decode("\xdd\xff\xff\xff\xff\x01", 6, &d), EKV_ESTORAGE);
}

/* Why storage keeps its own reader (mpread.h): msgpack-c allocates count x 32 bytes for a
 * declared array/map length before it reads a single element, so these 10-byte records made
 * it request 32 MiB to 128 GiB (an ASan build aborts on the last). The reader must reject
 * them from the header alone. */
Test(envelope, container_headers_are_rejected_without_reading_them)
{
    static const char *const hostile[] = {
        "\x95\x01\x00\xdd\x00\x10\x00\x00\x00\x00", /* metadata = array32 of 2^20 */
        "\x95\x01\x00\xdf\x01\x00\x00\x00\x00\x00", /* metadata = map32 of 2^24 */
        "\x95\x01\x00\xdd\xff\xff\xff\xff\x00\x00", /* metadata = array32 of 2^32-1 */
        "\x95\x01\xdd\xff\xff\xff\xff\xc0\x00\x00", /* expiration = array32 of 2^32-1 */
        "\x95\x01\x00\xc0\xdf\xff\xff\xff\xff\x00", /* value_len = map32 of 2^32-1 */
    };
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        ekv_envelope_t d;
        cr_assert_eq(ekv_envelope_decode(hostile[i], 10, &d), EKV_ESTORAGE, "case %zu", i);
    }
    /* the catalog records share the reader */
    ekv_account_t a;
    cr_assert_eq(ekv_catrec_account_decode("\x94\x01\xdd\xff\xff\xff\xff\xa1x\x00", 10, &a),
                 EKV_ESTORAGE);
}

Test(envelope, garbage_never_crashes)
{
    unsigned seed = 12345;
    char buf[64];
    int accepted = 0;
    for (int round = 0; round < 200000; round++) {
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf));
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(rand_r(&seed) & 0xff);
        /* half the rounds start like a real envelope (version 1 or 2) to get past the header */
        if (round & 1 && n >= 2) {
            buf[0] = (char)(round & 2 ? 0x96 : 0x95);
            buf[1] = (char)(round & 2 ? 0x02 : 0x01);
        }
        ekv_envelope_t d;
        if (ekv_envelope_decode(buf, n, &d) == 0) {
            accepted++;
            if (d.metadata)
                cr_assert(d.metadata >= buf && d.metadata + d.metadata_len <= buf + n);
            if (d.has_value && d.value_len)
                cr_assert(d.value >= buf && d.value + d.value_len <= buf + n);
            cr_assert_geq(d.expiration, 0);
        }
    }
    cr_log_info("random inputs accepted: %d", accepted);
}

Test(catrec, roundtrips)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    ekv_account_t a = {.id = "0123456789abcdef0123456789abcdef", .name = "Acme", .created_ms = 5};
    cr_assert_eq(ekv_catrec_account_encode(&a, &b), 0);
    ekv_account_t a2;
    cr_assert_eq(ekv_catrec_account_decode(b.data, b.len, &a2), 0);
    cr_assert_str_eq(a2.id, a.id);
    cr_assert_str_eq(a2.name, "Acme");
    cr_assert_eq(a2.created_ms, 5);

    ekv_buf_reset(&b);
    ekv_token_t t = {.hash = "aa",
                     .id = "bb",
                     .account_id = "cc",
                     .name = "ci",
                     .perms = EKV_PERM_KV_READ | EKV_PERM_ADMIN,
                     .created_ms = -1};
    cr_assert_eq(ekv_catrec_token_encode(&t, &b), 0);
    ekv_token_t t2;
    cr_assert_eq(ekv_catrec_token_decode(b.data, b.len, &t2), 0);
    cr_assert_str_eq(t2.hash, "aa");
    cr_assert_str_eq(t2.id, "bb");
    cr_assert_str_eq(t2.account_id, "cc");
    cr_assert_str_eq(t2.name, "ci");
    cr_assert_eq(t2.perms, 5);
    cr_assert_eq(t2.created_ms, -1);
    /* wrong record kind: a token is not a namespace */
    ekv_namespace_t ns2;
    cr_assert_eq(ekv_catrec_ns_decode(b.data, b.len, &ns2), EKV_ESTORAGE);

    ekv_buf_reset(&b);
    ekv_namespace_t ns = {
        .id = "00000000000000000000000000000001", .account_id = "cc", .created_ms = 77};
    memset(ns.title, 'T', 512);
    cr_assert_eq(ekv_catrec_ns_encode(&ns, &b), 0);
    cr_assert_eq(ekv_catrec_ns_decode(b.data, b.len, &ns2), 0);
    cr_assert_str_eq(ns2.id, ns.id);
    cr_assert_eq(strlen(ns2.title), 512);
    cr_assert_eq(ns2.created_ms, 77);
    for (size_t n = 0; n < b.len; n++)
        cr_assert_eq(ekv_catrec_ns_decode(b.data, n, &ns2), EKV_ESTORAGE);
    ekv_buf_deinit(&b);
}

Test(catrec, rejects_strings_that_do_not_fit)
{
    /* [1, id(40 chars), acc, title, 0]: id longer than the struct's 33 bytes */
    msgpack_sbuffer *sb = msgpack_sbuffer_new();
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_str(&pk, 40);
    msgpack_pack_str_body(&pk, "0000000000000000000000000000000000000000", 40);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "a", 1);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "t", 1);
    msgpack_pack_int(&pk, 0);
    ekv_namespace_t ns;
    cr_assert_eq(ekv_catrec_ns_decode(sb->data, sb->size, &ns), EKV_ESTORAGE);
    msgpack_sbuffer_free(sb);

    /* embedded NUL in a string */
    const char rec[] = "\x94\x01\xa3\x61\x00\x62\xa1x\x00";
    ekv_account_t a;
    cr_assert_eq(ekv_catrec_account_decode(rec, sizeof(rec) - 1, &a), EKV_ESTORAGE);
}
