/*
 * blob.h - a refcounted reply body that several replies send without copying it (an edge's
 * fetched value answered to every client waiting for it). It carries the ekv_http_shared_t
 * the transport charges once against --reply-memory-mb. Loop thread only.
 */
#ifndef EKV_SERVER_HTTP_BLOB_H
#define EKV_SERVER_HTTP_BLOB_H

#include "server/http/server.h"

#include <stddef.h>

typedef struct {
    int refs;
    ekv_http_shared_t shared;
    size_t len;
    char data[];
} ekv_http_blob_t;

/* A copy of len bytes with one reference, or NULL (out of memory). */
ekv_http_blob_t *ekv_http_blob_new(const void *data, size_t len);
/* Send b as req's body: takes one more reference, released once the reply is written. */
void ekv_http_send_blob(ekv_req_t *req, int status, const char *content_type,
                        const char *extra_headers, ekv_http_blob_t *b);
/* Drop one reference (a release callback: the argument is the blob). */
void ekv_http_blob_release(void *b);

#endif
