/*
 * libFuzzer target for server/urlcodec.c and server/cursor.c (both decode untrusted URL text).
 * Checks: decoders never grow the input, the in-place decode equals the out-of-place one,
 * query params point inside the input, and a cursor that decodes re-encodes to the same text.
 */
#include "server/api/kv/cursor.h"
#include "server/http/urlcodec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char *out = malloc(size + 1);
    char *inplace = malloc(size + 1);
    size_t n, m;

    for (int plus = 0; plus < 2; plus++) {
        int (*dec)(const char *, size_t, char *, size_t *) =
            plus ? ekv_url_decode_query : ekv_url_decode_path;
        memcpy(inplace, in, size);
        int r1 = dec(in, size, out, &n);
        int r2 = dec(inplace, size, inplace, &m);
        if (r1 != r2)
            abort();
        if (r1 == 0 && (n > size || n != m || memcmp(out, inplace, n) != 0 || out[n] != '\0'))
            abort();
    }

    ekv_query_t q;
    if (ekv_query_parse(in, size, &q) == 0) {
        if (q.count > EKV_QUERY_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < q.count; i++) {
            const ekv_query_param_t *p = &q.params[i];
            if (p->name < in || p->name + p->name_len > in + size || p->value < in ||
                p->value + p->value_len > in + size)
                abort();
        }
        char val[64];
        static const char *const names[] = {"cursor", "limit", "prefix", ""};
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            int r = ekv_query_get(&q, names[i], val, sizeof(val), &n);
            if (r == 1 && (n >= sizeof(val) || val[n] != '\0'))
                abort();
        }
    }

    char key[EKV_CURSOR_MAX_KEY];
    if (ekv_cursor_decode(in, size, key, &n) == 0) {
        char enc[EKV_CURSOR_MAX_LEN];
        if (n == 0 || n > EKV_CURSOR_MAX_KEY)
            abort();
        int w = ekv_cursor_encode(key, n, enc);
        if (w < 0 || (size_t)w != size || memcmp(enc, in, size) != 0)
            abort(); /* decoding is canonical: one text per key */
    }
    free(out);
    free(inplace);
    return 0;
}
