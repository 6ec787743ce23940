/*
 * blob.c - refcounted shared reply bodies (see blob.h).
 */
#include "server/http/blob.h"

#include <stdlib.h>
#include <string.h>

ekv_http_blob_t *ekv_http_blob_new(const void *data, size_t len)
{
    ekv_http_blob_t *b = malloc(sizeof(*b) + (len ? len : 1));
    if (!b)
        return NULL;
    b->refs = 1;
    b->shared.queued = 0;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    return b;
}

void ekv_http_send_blob(ekv_req_t *req, int status, const char *content_type,
                        const char *extra_headers, ekv_http_blob_t *b)
{
    b->refs++;
    req->reply_shared = &b->shared;
    ekv_http_send(req, status, content_type, extra_headers, b->data, b->len, ekv_http_blob_release,
                  b);
}

void ekv_http_blob_release(void *arg)
{
    ekv_http_blob_t *b = arg;
    if (--b->refs == 0)
        free(b);
}
