/*
 * catrec.c - catalog record codec (see catrec.h).
 */
#include "storage/catrec.h"
#include "common/errors.h"
#include "storage/mpread.h"

#include <string.h>

static void pack_cstr(ekv_mp_packer_t *p, const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    msgpack_pack_str(&p->pk, n);
    msgpack_pack_str_body(&p->pk, s, n);
}

#define PACK_STR(p, field) pack_cstr((p), (field), sizeof(field))

int ekv_catrec_account_encode(const ekv_account_t *a, ekv_buf_t *out)
{
    ekv_mp_packer_t p;
    ekv_mp_packer_init(&p, out);
    msgpack_pack_array(&p.pk, 4);
    msgpack_pack_uint32(&p.pk, EKV_CATREC_VERSION);
    PACK_STR(&p, a->id);
    PACK_STR(&p, a->name);
    msgpack_pack_int64(&p.pk, a->created_ms);
    return p.err;
}

int ekv_catrec_token_encode(const ekv_token_t *t, ekv_buf_t *out)
{
    ekv_mp_packer_t p;
    ekv_mp_packer_init(&p, out);
    msgpack_pack_array(&p.pk, 7);
    msgpack_pack_uint32(&p.pk, EKV_CATREC_VERSION);
    PACK_STR(&p, t->hash);
    PACK_STR(&p, t->id);
    PACK_STR(&p, t->account_id);
    PACK_STR(&p, t->name);
    msgpack_pack_uint32(&p.pk, t->perms);
    msgpack_pack_int64(&p.pk, t->created_ms);
    return p.err;
}

int ekv_catrec_ns_encode(const ekv_namespace_t *ns, ekv_buf_t *out)
{
    ekv_mp_packer_t p;
    ekv_mp_packer_init(&p, out);
    msgpack_pack_array(&p.pk, 5);
    msgpack_pack_uint32(&p.pk, EKV_CATREC_VERSION);
    PACK_STR(&p, ns->id);
    PACK_STR(&p, ns->account_id);
    PACK_STR(&p, ns->title);
    msgpack_pack_int64(&p.pk, ns->created_ms);
    return p.err;
}

/* Array header with exactly `fields` elements and version 1. */
static int read_header(ekv_mp_reader_t *r, const char *buf, size_t len, uint32_t fields)
{
    uint32_t n;
    uint64_t v;
    ekv_mp_reader_init(r, buf, len);
    if (ekv_mp_read_array(r, &n) || n < 1 || ekv_mp_read_uint(r, &v))
        return -1;
    return (v == EKV_CATREC_VERSION && n == fields) ? 0 : -1;
}

#define READ_STR(r, field) ekv_mp_read_cstr((r), (field), sizeof(field))

int ekv_catrec_account_decode(const char *buf, size_t len, ekv_account_t *out)
{
    ekv_mp_reader_t r;
    ekv_account_t a;
    memset(&a, 0, sizeof(a));
    if (read_header(&r, buf, len, 4) || READ_STR(&r, a.id) || READ_STR(&r, a.name) ||
        ekv_mp_read_int(&r, &a.created_ms) || !ekv_mp_at_end(&r))
        return EKV_ESTORAGE;
    *out = a;
    return 0;
}

int ekv_catrec_token_decode(const char *buf, size_t len, ekv_token_t *out)
{
    ekv_mp_reader_t r;
    ekv_token_t t;
    uint64_t perms;
    memset(&t, 0, sizeof(t));
    if (read_header(&r, buf, len, 7) || READ_STR(&r, t.hash) || READ_STR(&r, t.id) ||
        READ_STR(&r, t.account_id) || READ_STR(&r, t.name) || ekv_mp_read_uint(&r, &perms) ||
        perms > UINT32_MAX || ekv_mp_read_int(&r, &t.created_ms) || !ekv_mp_at_end(&r))
        return EKV_ESTORAGE;
    t.perms = (uint32_t)perms;
    *out = t;
    return 0;
}

int ekv_catrec_ns_decode(const char *buf, size_t len, ekv_namespace_t *out)
{
    ekv_mp_reader_t r;
    ekv_namespace_t ns;
    memset(&ns, 0, sizeof(ns));
    if (read_header(&r, buf, len, 5) || READ_STR(&r, ns.id) || READ_STR(&r, ns.account_id) ||
        READ_STR(&r, ns.title) || ekv_mp_read_int(&r, &ns.created_ms) || !ekv_mp_at_end(&r))
        return EKV_ESTORAGE;
    *out = ns;
    return 0;
}

int ekv_catrec_do_ns_encode(const ekv_do_ns_t *ns, ekv_buf_t *out)
{
    ekv_mp_packer_t p;
    ekv_mp_packer_init(&p, out);
    msgpack_pack_array(&p.pk, 9);
    msgpack_pack_uint32(&p.pk, EKV_CATREC_VERSION);
    PACK_STR(&p, ns->id);
    PACK_STR(&p, ns->account_id);
    PACK_STR(&p, ns->name);
    PACK_STR(&p, ns->class_name);
    PACK_STR(&p, ns->script);
    msgpack_pack_uint32(&p.pk, ns->use_sqlite ? 1 : 0);
    msgpack_pack_bin(&p.pk, EKV_DO_NSKEY_LEN);
    msgpack_pack_bin_body(&p.pk, ns->key, EKV_DO_NSKEY_LEN);
    msgpack_pack_int64(&p.pk, ns->created_ms);
    return p.err;
}

int ekv_catrec_do_ns_decode(const char *buf, size_t len, ekv_do_ns_t *out)
{
    ekv_mp_reader_t r;
    ekv_do_ns_t ns;
    uint64_t sqlite;
    const char *key;
    size_t klen;
    memset(&ns, 0, sizeof(ns));
    if (read_header(&r, buf, len, 9) || READ_STR(&r, ns.id) || READ_STR(&r, ns.account_id) ||
        READ_STR(&r, ns.name) || READ_STR(&r, ns.class_name) || READ_STR(&r, ns.script) ||
        ekv_mp_read_uint(&r, &sqlite) || sqlite > 1 || ekv_mp_read_bytes(&r, 0, &key, &klen) ||
        klen != EKV_DO_NSKEY_LEN || ekv_mp_read_int(&r, &ns.created_ms) || !ekv_mp_at_end(&r))
        return EKV_ESTORAGE;
    ns.use_sqlite = (int)sqlite;
    memcpy(ns.key, key, EKV_DO_NSKEY_LEN);
    *out = ns;
    return 0;
}
