#include "server/http/json_out.h"
#include "common/errors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ekv_json_put_raw(ekv_buf_t *b, const char *s, size_t n)
{
    return ekv_buf_append(b, s, n);
}

int ekv_json_put_str(ekv_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rc = ekv_buf_reserve(b, n + 2);
    if (rc)
        return rc;
    rc = ekv_buf_append(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are, flushed in one append */
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            if (c < 0x20) {
                u[0] = '\\';
                u[1] = 'u';
                u[2] = '0';
                u[3] = '0';
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
            }
        }
        if (!esc && c >= 0x20) {
            run++;
            continue;
        }
        if (run)
            rc = ekv_buf_append(b, s + i - run, run);
        run = 0;
        if (!rc)
            rc = esc ? ekv_buf_append(b, esc, 2) : ekv_buf_append(b, u, 6);
    }
    if (!rc && run)
        rc = ekv_buf_append(b, s + n - run, run);
    if (!rc)
        rc = ekv_buf_append(b, "\"", 1);
    return rc;
}

int ekv_json_put_i64(ekv_buf_t *b, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    return ekv_buf_append(b, tmp, (size_t)n);
}

/*
 * ECMAScript Number::toString(10): take the shortest digit string that round-trips (k digits,
 * decimal exponent n so that value = 0.d1d2...dk * 10^n), then lay it out by the spec's rules.
 */
int ekv_json_put_double(ekv_buf_t *b, double d)
{
    if (!isfinite(d))
        return ekv_buf_append(b, "null", 4);
    if (d == 0)
        return ekv_buf_append(b, "0", 1);
    char out[64];
    size_t o = 0;
    if (d < 0) {
        out[o++] = '-';
        d = -d;
    }
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    /* e = "D.DDDDe[+-]XX" */
    char digits[20];
    int k = 0;
    const char *p = e;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    int n = atoi(p + 1) + 1;
    if (k <= n && n <= 21) {
        memcpy(out + o, digits, (size_t)k);
        o += (size_t)k;
        for (int i = 0; i < n - k; i++)
            out[o++] = '0';
    } else if (0 < n && n <= 21) {
        memcpy(out + o, digits, (size_t)n);
        o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, digits + n, (size_t)(k - n));
        o += (size_t)(k - n);
    } else if (-6 < n && n <= 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -n; i++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)k);
        o += (size_t)k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)(k - 1));
            o += (size_t)(k - 1);
        }
        o +=
            (size_t)snprintf(out + o, sizeof(out) - o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
    }
    return ekv_buf_append(b, out, o);
}

int ekv_json_put_value(ekv_buf_t *b, const json_t *v)
{
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        rc = ekv_buf_append(b, "{", 1);
        const char *key;
        size_t klen;
        json_t *val;
        int first = 1;
        void *tmp;
        json_object_keylen_foreach_safe((json_t *)v, tmp, key, klen, val)
        {
            if (rc)
                break;
            if (!first)
                rc = ekv_buf_append(b, ",", 1);
            first = 0;
            if (!rc)
                rc = ekv_json_put_str(b, key, klen);
            if (!rc)
                rc = ekv_buf_append(b, ":", 1);
            if (!rc)
                rc = ekv_json_put_value(b, val);
        }
        return rc ? rc : ekv_buf_append(b, "}", 1);
    }
    case JSON_ARRAY: {
        rc = ekv_buf_append(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v) && !rc; i++) {
            if (i)
                rc = ekv_buf_append(b, ",", 1);
            if (!rc)
                rc = ekv_json_put_value(b, json_array_get(v, i));
        }
        return rc ? rc : ekv_buf_append(b, "]", 1);
    }
    case JSON_STRING:
        return ekv_json_put_str(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return ekv_json_put_i64(b, (int64_t)json_integer_value(v));
    case JSON_REAL:
        return ekv_json_put_double(b, json_real_value(v));
    case JSON_TRUE:
        return ekv_buf_append(b, "true", 4);
    case JSON_FALSE:
        return ekv_buf_append(b, "false", 5);
    case JSON_NULL:
        return ekv_buf_append(b, "null", 4);
    }
    return EKV_EINTERNAL;
}
