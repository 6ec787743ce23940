/*
 * cursor.h - the opaque list-keys cursor.
 *
 * A cursor names the last key examined by the previous page; the next page resumes strictly
 * after it, so keys inserted between pages are still seen and no key is returned twice.
 * Wire form: base64url( 0x01 (version) || key bytes ), no padding. Pure functions.
 */
#ifndef EKV_SERVER_API_KV_CURSOR_H
#define EKV_SERVER_API_KV_CURSOR_H

#include <stddef.h>

#define EKV_CURSOR_MAX_KEY 512
/* Enough for base64url of 1 + 512 bytes, plus NUL. */
#define EKV_CURSOR_MAX_LEN 690

/* Encode; out must hold EKV_CURSOR_MAX_LEN bytes. Returns length, or -1 if key_len > 512. */
int ekv_cursor_encode(const char *key, size_t key_len, char *out);
/* Decode into key (cap EKV_CURSOR_MAX_KEY). 0, or -1 for anything malformed (bad base64,
 * wrong version, too long, empty). */
int ekv_cursor_decode(const char *cursor, size_t len, char *key, size_t *key_len);

#endif
