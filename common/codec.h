/*
 * codec.h - hex and base64 (standard and URL-safe) codecs. Pure functions, no allocation.
 */
#ifndef EKV_COMMON_CODEC_H
#define EKV_COMMON_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Value of one hex digit (either case), or -1. */
int ekv_hex_value(char c);
/* Lowercase hex of n bytes into out (2n+1 bytes incl. NUL). */
void ekv_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly 2n hex chars (either case) into n bytes. 0 or -1 on a bad char/length. */
int ekv_hex_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);

/* Encoded size incl. NUL for n input bytes. */
size_t ekv_base64_encoded_len(size_t n);
/* Standard alphabet with '=' padding; returns chars written (excl. NUL). */
size_t ekv_base64_encode(const uint8_t *in, size_t n, char *out);
/* URL-safe alphabet ('-', '_'), no padding. */
size_t ekv_base64url_encode(const uint8_t *in, size_t n, char *out);
/* Max decoded size for in_len chars. */
size_t ekv_base64_decoded_max(size_t in_len);
/* Decode standard base64 (padding optional; whitespace not allowed). 0 or -1. */
int ekv_base64_decode(const char *in, size_t in_len, uint8_t *out, size_t *out_len);
/* Decode URL-safe base64 (no padding required). 0 or -1. */
int ekv_base64url_decode(const char *in, size_t in_len, uint8_t *out, size_t *out_len);

#endif
