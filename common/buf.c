#include "common/buf.h"
#include "common/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ekv_buf_init(ekv_buf_t *b, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void ekv_buf_deinit(ekv_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void ekv_buf_reset(ekv_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int ekv_buf_reserve(ekv_buf_t *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return EKV_ETOO_LARGE;
    size_t need = b->len + extra;
    if (b->max && need > b->max)
        return EKV_ETOO_LARGE;
    if (need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1)
        cap *= 2;
    if (b->max && cap > b->max + 1)
        cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return EKV_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int ekv_buf_append(ekv_buf_t *b, const void *p, size_t n)
{
    int rc = ekv_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int ekv_buf_appends(ekv_buf_t *b, const char *s)
{
    return ekv_buf_append(b, s, strlen(s));
}

int ekv_buf_appendf(ekv_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return EKV_EINTERNAL;
    int rc = ekv_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *ekv_buf_take(ekv_buf_t *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

char *ekv_memdup_z(const void *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}
