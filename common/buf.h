/*
 * buf.h - a growable byte buffer with a hard cap.
 *
 * ekv_buf_t is embedded by its owner (init/deinit). Growth past `max` fails with
 * EKV_ETOO_LARGE before any allocation, so sizes that come from the network are bounded.
 * data is always NUL-terminated (one spare byte) so text can be parsed in place.
 */
#ifndef EKV_COMMON_BUF_H
#define EKV_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t max; /* 0 = unlimited */
} ekv_buf_t;

void ekv_buf_init(ekv_buf_t *b, size_t max);
void ekv_buf_deinit(ekv_buf_t *b);
/* Drop the contents, keep the allocation. */
void ekv_buf_reset(ekv_buf_t *b);
/* Make room for `extra` more bytes. 0, EKV_ETOO_LARGE or EKV_ENOMEM. */
int ekv_buf_reserve(ekv_buf_t *b, size_t extra);
int ekv_buf_append(ekv_buf_t *b, const void *p, size_t n);
int ekv_buf_appends(ekv_buf_t *b, const char *s);
int ekv_buf_appendf(ekv_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A malloc'd copy of p[0..n) with a NUL after it (n may be 0); NULL on ENOMEM. */
char *ekv_memdup_z(const void *p, size_t n);
/* Hand the storage to the caller (free() it); the buffer becomes empty. */
char *ekv_buf_take(ekv_buf_t *b, size_t *len);

#endif
