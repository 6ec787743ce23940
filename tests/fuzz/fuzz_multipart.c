/*
 * libFuzzer target for server/multipart.c.
 *
 * Input layout: first byte = boundary length L (taken mod 71), next L bytes = boundary, the
 * rest = body. A second pass treats the first line as a Content-Type header value. Every part
 * handed back must point inside the body, and metadata reconstruction must not leak or crash.
 */
#include "server/http/multipart.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(const char *base, size_t len, const char *p, size_t n)
{
    if (!p)
        return;
    if (p < base || p + n > base + len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t blen = data[0] % 71;
    if (size - 1 < blen)
        return 0;
    /* Copy into exact-size heap blocks so ASan sees any read past the end. */
    char *boundary = malloc(blen ? blen : 1);
    memcpy(boundary, data + 1, blen);
    size_t len = size - 1 - blen;
    char *body = malloc(len ? len : 1);
    memcpy(body, data + 1 + blen, len);

    ekv_mp_part_t parts[EKV_MULTIPART_MAX_PARTS];
    size_t n = 0;
    if (ekv_multipart_parse(body, len, boundary, blen, parts, EKV_MULTIPART_MAX_PARTS, &n) == 0) {
        if (n > EKV_MULTIPART_MAX_PARTS)
            abort();
        for (size_t i = 0; i < n; i++) {
            check_inside(body, len, parts[i].name, parts[i].name_len);
            check_inside(body, len, parts[i].filename, parts[i].filename_len);
            check_inside(body, len, parts[i].content_type, parts[i].content_type_len);
            check_inside(body, len, parts[i].data, parts[i].data_len);
        }
        json_t *meta = NULL;
        if (ekv_multipart_metadata(parts, n, &meta) == 0)
            json_decref(meta);
        else if (meta)
            abort();
        (void)ekv_multipart_find(parts, n, "value");
    }

    const char *b;
    size_t bl;
    const char *nl = memchr(body, '\n', len);
    size_t ct_len = nl ? (size_t)(nl - body) : len;
    if (ekv_multipart_boundary(body, ct_len, &b, &bl) == 0) {
        check_inside(body, ct_len, b, bl);
        if (bl == 0 || bl > 70)
            abort();
    }
    free(body);
    free(boundary);
    return 0;
}
