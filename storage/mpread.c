/*
 * mpread.c - strict MessagePack reader + msgpack-c packer glue (see mpread.h).
 */
#include "storage/mpread.h"

#include <string.h>

void ekv_mp_reader_init(ekv_mp_reader_t *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = r->p + (buf ? len : 0);
}

static size_t avail(const ekv_mp_reader_t *r)
{
    return (size_t)(r->end - r->p);
}

/* Read an n-byte big-endian unsigned integer (n = 1, 2, 4, 8). */
static int read_be(ekv_mp_reader_t *r, size_t n, uint64_t *v)
{
    if (avail(r) < n)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = (x << 8) | r->p[i];
    r->p += n;
    *v = x;
    return 0;
}

int ekv_mp_read_array(ekv_mp_reader_t *r, uint32_t *n)
{
    if (avail(r) < 1)
        return -1;
    unsigned char c = *r->p++;
    uint64_t v;
    if (c >= 0x90 && c <= 0x9f) {
        *n = c & 0x0f;
        return 0;
    }
    if (c == 0xdc && read_be(r, 2, &v) == 0) {
        *n = (uint32_t)v;
        return 0;
    }
    if (c == 0xdd && read_be(r, 4, &v) == 0) {
        *n = (uint32_t)v;
        return 0;
    }
    return -1;
}

/* Any msgpack integer: *neg set when the value is negative (then *mag is the signed value
 * reinterpreted as uint64). */
static int read_any_int(ekv_mp_reader_t *r, int *neg, uint64_t *mag)
{
    if (avail(r) < 1)
        return -1;
    unsigned char c = *r->p++;
    uint64_t v;
    *neg = 0;
    if (c <= 0x7f) {
        *mag = c;
        return 0;
    }
    if (c >= 0xe0) {
        *neg = 1;
        *mag = (uint64_t)(int64_t)(int8_t)c;
        return 0;
    }
    switch (c) {
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        if (read_be(r, (size_t)1 << (c - 0xcc), &v))
            return -1;
        *mag = v;
        return 0;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        size_t n = (size_t)1 << (c - 0xd0);
        if (read_be(r, n, &v))
            return -1;
        /* sign-extend from n bytes */
        int64_t s;
        if (n == 8)
            s = (int64_t)v;
        else if (v & ((uint64_t)1 << (n * 8 - 1)))
            s = (int64_t)(v | (~(uint64_t)0 << (n * 8)));
        else
            s = (int64_t)v;
        *neg = s < 0;
        *mag = (uint64_t)s;
        return 0;
    }
    default:
        return -1;
    }
}

int ekv_mp_read_int(ekv_mp_reader_t *r, int64_t *v)
{
    int neg;
    uint64_t m;
    if (read_any_int(r, &neg, &m))
        return -1;
    if (!neg && m > (uint64_t)INT64_MAX)
        return -1;
    *v = (int64_t)m;
    return 0;
}

int ekv_mp_read_uint(ekv_mp_reader_t *r, uint64_t *v)
{
    int neg;
    uint64_t m;
    if (read_any_int(r, &neg, &m) || neg)
        return -1;
    *v = m;
    return 0;
}

int ekv_mp_read_bytes(ekv_mp_reader_t *r, int nil_ok, const char **p, size_t *len)
{
    if (avail(r) < 1)
        return -1;
    unsigned char c = *r->p++;
    uint64_t n;
    if (c == 0xc0) {
        if (!nil_ok)
            return -1;
        *p = NULL;
        *len = 0;
        return 0;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        n = c & 0x1f;
    } else if (c == 0xd9 || c == 0xc4) {
        if (read_be(r, 1, &n))
            return -1;
    } else if (c == 0xda || c == 0xc5) {
        if (read_be(r, 2, &n))
            return -1;
    } else if (c == 0xdb || c == 0xc6) {
        if (read_be(r, 4, &n))
            return -1;
    } else {
        return -1;
    }
    if (n > avail(r))
        return -1;
    *p = (const char *)r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

int ekv_mp_read_cstr(ekv_mp_reader_t *r, char *out, size_t cap)
{
    const char *p;
    size_t n;
    if (ekv_mp_read_bytes(r, 0, &p, &n))
        return -1;
    if (n >= cap || (n && memchr(p, '\0', n)))
        return -1;
    if (n)
        memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int ekv_mp_at_end(const ekv_mp_reader_t *r)
{
    return r->p == r->end;
}

static int packer_write_cb(void *data, const char *buf, size_t len)
{
    ekv_mp_packer_t *p = data;
    if (p->err)
        return -1;
    int rc = ekv_buf_append(p->b, buf, len);
    if (rc) {
        p->err = rc;
        return -1;
    }
    return 0;
}

void ekv_mp_packer_init(ekv_mp_packer_t *p, ekv_buf_t *b)
{
    p->b = b;
    p->err = 0;
    msgpack_packer_init(&p->pk, p, packer_write_cb);
}
