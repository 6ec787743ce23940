/*
 * write.c - the write job shared by single-key and bulk writes: request state, cache
 * invalidation at submit and at completion, and the error reply of a failed commit.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/kv/cursor.h"
#include "server/api/kv/kv.h"
#include "server/api/kv/validate.h"
#include "server/http/json_out.h"
#include "server/http/multipart.h"
#include "server/http/reply.h"
#include "server/http/urlcodec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void write_job_free(ekv_req_t *req)
{
    write_job_t *j = req->state;
    free(j->key);
    free(j->metadata);
    for (size_t i = 0; i < j->nowned; i++)
        free(j->owned[i]);
    free(j->owned);
    free(j->items);
    if (j->json)
        json_decref(j->json);
    free(j);
    req->state = NULL;
}

write_job_t *ekv__kv_write_job_new(ekv_call_t *c, ekv_op_type_t type, ekv_job_fn done)
{
    write_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    j->app = c->app;
    j->req = c->req;
    j->op = ekv_route_op(c->route);
    j->w.type = type;
    j->w.job.done = done;
    j->w.udata = j;
    memcpy(j->w.nsid, c->nsid, EKV_NSID_LEN);
    c->req->state = j;
    c->req->cleanup = write_job_free;
    return j;
}

/* Invalidate every key of the write in the cache (at submit and at completion). */
void ekv__kv_invalidate_items(write_job_t *j)
{
    for (size_t i = 0; i < j->w.nitems; i++)
        ekv_cache_invalidate(j->app->cache, j->w.nsid, j->w.items[i].key, j->w.items[i].key_len);
}

int ekv__kv_reply_write_status_or_ok(write_job_t *j)
{
    if (j->w.status == EKV_ENS_NOT_FOUND) {
        ekv_reply_error(j->req, EKV_ENS_NOT_FOUND, "%s: 'namespace not found'", j->op);
        return -1;
    }
    if (j->w.status) {
        ekv_reply_error(j->req, j->w.status, NULL);
        return -1;
    }
    return 0;
}

void ekv__kv_submit_write(write_job_t *j)
{
    ekv__kv_invalidate_items(j);
    ekv_app_write_or_reply(j->app, j->req, &j->w);
}
