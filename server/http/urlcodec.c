/*
 * urlcodec.c - percent-decoding for key path segments and query strings.
 *
 * Decoding never grows the input, so it is done in one forward pass that may write over its
 * own input (the write index never passes the read index). Decoded bytes are not checked for
 * UTF-8 validity: keys are byte strings, and %00 decodes to a NUL byte inside the result.
 *
 * ekv_query_get compares each raw parameter name with the wanted one while decoding it on the
 * fly, so no buffer is needed. A parameter whose *name* is malformed ("a%zz=1") cannot be the
 * one asked for and is skipped; a malformed *value* of the parameter asked for is an error.
 */
#include "server/http/urlcodec.h"
#include "common/codec.h"

#include <string.h>

/* Decode one unit at in[*i], advancing *i. Returns the byte (0..255), or -1 when malformed. */
static int decode_unit(const char *in, size_t n, size_t *i, int plus_is_space)
{
    char c = in[*i];
    if (c == '%') {
        if (n - *i < 3)
            return -1;
        int hi = ekv_hex_value(in[*i + 1]);
        int lo = ekv_hex_value(in[*i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        *i += 3;
        return hi << 4 | lo;
    }
    *i += 1;
    if (c == '+' && plus_is_space)
        return ' ';
    return (unsigned char)c;
}

static int url_decode(const char *in, size_t n, char *out, size_t *out_len, int plus_is_space)
{
    size_t i = 0, o = 0;
    while (i < n) {
        int b = decode_unit(in, n, &i, plus_is_space);
        if (b < 0)
            return -1;
        out[o++] = (char)b;
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

int ekv_url_decode_path(const char *in, size_t n, char *out, size_t *out_len)
{
    return url_decode(in, n, out, out_len, 0);
}

int ekv_url_decode_query(const char *in, size_t n, char *out, size_t *out_len)
{
    return url_decode(in, n, out, out_len, 1);
}

int ekv_query_parse(const char *q, size_t n, ekv_query_t *out)
{
    out->count = 0;
    size_t start = 0;
    while (start <= n) {
        const char *amp = start < n ? memchr(q + start, '&', n - start) : NULL;
        size_t end = amp ? (size_t)(amp - q) : n;
        if (end > start) {
            if (out->count == EKV_QUERY_MAX_PARAMS)
                return -1;
            const char *seg = q + start;
            size_t seg_len = end - start;
            const char *eq = memchr(seg, '=', seg_len);
            ekv_query_param_t *p = &out->params[out->count++];
            p->name = seg;
            if (eq) {
                p->name_len = (size_t)(eq - seg);
                p->value = eq + 1;
                p->value_len = seg_len - p->name_len - 1;
            } else {
                p->name_len = seg_len;
                p->value = seg + seg_len;
                p->value_len = 0;
            }
        }
        if (!amp)
            break;
        start = end + 1;
    }
    return 0;
}

/* 1 when raw (form-encoded) name decodes to exactly `want`, 0 otherwise (also if malformed). */
static int name_equals(const char *raw, size_t raw_len, const char *want)
{
    size_t i = 0, w = 0;
    while (i < raw_len) {
        int b = decode_unit(raw, raw_len, &i, 1);
        if (b < 0 || want[w] == '\0' || (unsigned char)want[w] != b)
            return 0;
        w++;
    }
    return want[w] == '\0';
}

int ekv_query_get(const ekv_query_t *q, const char *name, char *out, size_t out_cap,
                  size_t *out_len)
{
    for (size_t k = 0; k < q->count; k++) {
        const ekv_query_param_t *p = &q->params[k];
        if (!name_equals(p->name, p->name_len, name))
            continue;
        for (size_t k2 = k + 1; k2 < q->count; k2++)
            if (name_equals(q->params[k2].name, q->params[k2].name_len, name))
                return EKV_QUERY_REPEATED;
        size_t i = 0, o = 0;
        while (i < p->value_len) {
            int b = decode_unit(p->value, p->value_len, &i, 1);
            if (b < 0 || o + 1 >= out_cap)
                return -1;
            out[o++] = (char)b;
        }
        if (out_cap == 0)
            return -1;
        out[o] = '\0';
        if (out_len)
            *out_len = o;
        return 1;
    }
    return 0;
}
