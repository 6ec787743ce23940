/*
 * bufpool.h - fixed-size buffers lent to connections while they read (nginx's and h2o's rule:
 * an idle connection owns no read buffer).
 *
 * A connection takes a buffer when the socket has bytes for it (libuv's alloc callback) and
 * gives it back as soon as every byte in it is parsed, so the memory of the read path is
 * bounded by the connections that are mid-read, not by the connections that are open.
 * Returned buffers are kept on a free list of at most `keep` buffers; the rest are freed, so
 * a burst of readers does not pin its peak memory. Loop thread only.
 */
#ifndef EKV_SERVER_HTTP_BUFPOOL_H
#define EKV_SERVER_HTTP_BUFPOOL_H

#include <stddef.h>

typedef struct ekv_bufpool_s {
    size_t size;  /* bytes per buffer */
    size_t keep;  /* free buffers kept at most */
    size_t nfree; /* on the free list now */
    size_t nlent; /* lent out now */
    void *free;   /* singly linked through the first word of each free buffer */
} ekv_bufpool_t;

void ekv_bufpool_init(ekv_bufpool_t *p, size_t size, size_t keep);
/* A buffer of p->size bytes, or NULL when out of memory. */
char *ekv_bufpool_get(ekv_bufpool_t *p);
void ekv_bufpool_put(ekv_bufpool_t *p, char *buf);
/* Free every kept buffer (lent ones stay the borrowers'). */
void ekv_bufpool_drain(ekv_bufpool_t *p);

#endif
