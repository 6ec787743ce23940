/*
 * urlcodec.h - percent-decoding of path segments and query strings. Pure, no allocation.
 *
 * Path segments (key names): every %XX is decoded (so %2F -> '/'), '+' stays '+'.
 * Query values: %XX decoded and '+' -> ' ' (application/x-www-form-urlencoded, which is how
 * URLSearchParams in wrangler and the SDK encode them).
 */
#ifndef EKV_SERVER_HTTP_URLCODEC_H
#define EKV_SERVER_HTTP_URLCODEC_H

#include <stddef.h>

/* Decode in[0..n) into out (may alias in: decoding never grows). out gets a NUL at out_len.
 * Returns 0, or -1 on a malformed escape ('%' not followed by two hex digits). */
int ekv_url_decode_path(const char *in, size_t n, char *out, size_t *out_len);
int ekv_url_decode_query(const char *in, size_t n, char *out, size_t *out_len);

#define EKV_QUERY_MAX_PARAMS 32

typedef struct {
    const char *name; /* raw (still encoded) pointers into the query string */
    size_t name_len;
    const char *value;
    size_t value_len;
} ekv_query_param_t;

typedef struct {
    ekv_query_param_t params[EKV_QUERY_MAX_PARAMS];
    size_t count;
} ekv_query_t;

/* Split "a=1&b=&c" (without the leading '?') into raw params. More than
 * EKV_QUERY_MAX_PARAMS params -> -1. Empty segments ("a=1&&b=2") are skipped. */
int ekv_query_parse(const char *q, size_t n, ekv_query_t *out);
/* Find param `name` (compared decoded) and decode its value into out (NUL-terminated).
 * Returns 1 found, 0 absent, -1 malformed or longer than out_cap-1, EKV_QUERY_REPEATED when
 * the name is given more than once ("limit=10&limit=abc": which one did the client mean?). */
#define EKV_QUERY_REPEATED (-2)
int ekv_query_get(const ekv_query_t *q, const char *name, char *out, size_t out_cap,
                  size_t *out_len);

#endif
