/*
 * json_out.h - JSON text output that matches what JavaScript clients send and expect.
 *
 * Metadata is stored as the compact text JavaScript's JSON.stringify would produce for the
 * parsed value, and spliced verbatim into replies. Numbers are IEEE doubles as in JS: printed
 * in the shortest form that round-trips (0.1 stays "0.1", 2**64 is "18446744073709552000",
 * 1e21 is "1e+21"), never jansson's 17-digit "%.17g". Parse such text with
 * EKV_JSON_PARSE_FLAGS so integers beyond 64 bits are accepted, as in JS.
 *
 * Pure functions over ekv_buf_t; each returns 0 or a negative ekv_err_t (buffer limits).
 */
#ifndef EKV_SERVER_HTTP_JSON_OUT_H
#define EKV_SERVER_HTTP_JSON_OUT_H

#include "common/buf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* jansson flags for JSON that came from JavaScript: any value, NUL in strings, numbers as
 * doubles. */
#define EKV_JSON_PARSE_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

/* A JSON string literal of the UTF-8 bytes s[0..n), escaped as JSON.stringify does. */
int ekv_json_put_str(ekv_buf_t *b, const char *s, size_t n);
int ekv_json_put_i64(ekv_buf_t *b, int64_t v);
/* A number as JavaScript prints it (NaN/Infinity -> null, like JSON.stringify). */
int ekv_json_put_double(ekv_buf_t *b, double d);
/* Already-valid JSON text, verbatim. */
int ekv_json_put_raw(ekv_buf_t *b, const char *s, size_t n);
/* The compact JSON.stringify text of a jansson value (object keys in insertion order). */
int ekv_json_put_value(ekv_buf_t *b, const json_t *v);

#endif
