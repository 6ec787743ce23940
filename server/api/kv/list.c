/*
 * list.c - list keys: prefix, limit (10..1000), opaque cursor; metadata and expiration of
 * each key, read from the kvmeta column family only.
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

/* ---------------------------------------------------------------- list keys */

typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    ekv_req_t *req;
    uint8_t nsid[EKV_NSID_LEN];
    char prefix[EKV_MAX_KEY_LEN + 1];
    size_t prefix_len;
    char after[EKV_CURSOR_MAX_KEY];
    size_t after_len;
    int has_after;
    size_t limit;
    int64_t now_s;
    int rc;
    ekv_kv_list_t list;
} list_job_t;

static void list_job_free(ekv_req_t *req)
{
    list_job_t *j = req->state;
    ekv_kv_list_clear(&j->list);
    free(j);
    req->state = NULL;
}

static void list_work(ekv_job_t *job)
{
    list_job_t *j = (list_job_t *)job;
    j->rc = ekv_store_kv_list(j->app->store, j->nsid, j->prefix, j->prefix_len,
                              j->has_after ? j->after : NULL, j->after_len, j->limit, 10 * 1000,
                              j->now_s, &j->list);
}

static void list_done(ekv_job_t *job)
{
    list_job_t *j = (list_job_t *)job;
    if (j->rc) {
        ekv_reply_error(j->req, j->rc, NULL);
        return;
    }
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    int rc = ekv_reply_begin(&b);
    if (!rc)
        rc = ekv_buf_append(&b, "[", 1);
    for (size_t i = 0; i < j->list.count && !rc; i++) {
        const ekv_kv_listed_t *it = &j->list.items[i];
        rc = ekv_buf_appends(&b, i ? ",{\"name\":" : "{\"name\":");
        if (!rc)
            rc = ekv_json_put_str(&b, it->name, it->name_len);
        if (!rc && it->expiration) {
            rc = ekv_buf_appends(&b, ",\"expiration\":");
            if (!rc)
                rc = ekv_json_put_i64(&b, it->expiration);
        }
        if (!rc && it->metadata) {
            rc = ekv_buf_appends(&b, ",\"metadata\":");
            if (!rc)
                rc = ekv__kv_put_metadata(&b, it->metadata, it->metadata_len);
        }
        if (!rc)
            rc = ekv_buf_append(&b, "}", 1);
    }
    if (!rc)
        rc = ekv_buf_append(&b, "]", 1);
    char cur[EKV_CURSOR_MAX_LEN] = "";
    if (j->list.more && j->list.resume_key)
        ekv_cursor_encode(j->list.resume_key, j->list.resume_key_len, cur);
    char info[2 * EKV_CURSOR_MAX_LEN + 96];
    int n = snprintf(info, sizeof(info),
                     "{\"count\":%zu,\"cursor\":\"%s\",\"cursors\":{\"after\":\"%s\"}}",
                     j->list.count, cur, cur);
    if (rc) {
        ekv_buf_deinit(&b);
        ekv_reply_error(j->req, rc, NULL);
        return;
    }
    ekv_reply_send(j->req, &b, info, (size_t)n);
}

void ekv_h_keys_list(ekv_call_t *c)
{
    ekv_req_t *req = c->req;
    ekv_query_t q;
    if (ekv_query_parse(req->query, req->query_len, &q)) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "list keys: 'too many query parameters'");
        return;
    }
    list_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    req->state = j;
    req->cleanup = list_job_free;
    j->app = c->app;
    j->req = req;
    memcpy(j->nsid, c->nsid, EKV_NSID_LEN);
    j->limit = EKV_LIST_DEFAULT_LIMIT;

    char buf[EKV_CURSOR_MAX_LEN + 1];
    size_t len;
    static const char *const params[] = {"limit", "prefix", "cursor"};
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        if (ekv_query_get(&q, params[i], buf, sizeof(buf), &len) == EKV_QUERY_REPEATED) {
            ekv_reply_error(req, EKV_EBAD_REQUEST,
                            "list keys: 'query parameter %s given more than once'", params[i]);
            return;
        }
    }
    int rc = ekv_query_get(&q, "limit", buf, sizeof(buf), &len);
    if (rc != 0) {
        /* plain decimal digits only: strtoll would take " 10" and "+10" */
        long long lim = rc > 0 && len > 0 && len <= 6 ? 0 : -1;
        for (size_t i = 0; lim >= 0 && i < len; i++)
            lim = buf[i] >= '0' && buf[i] <= '9' ? lim * 10 + (buf[i] - '0') : -1;
        if (lim < EKV_LIST_MIN_LIMIT || lim > EKV_LIST_MAX_LIMIT) {
            ekv_reply_error(req, EKV_EBAD_LIMIT,
                            "list keys: 'limit must be an integer between %d and %d'",
                            EKV_LIST_MIN_LIMIT, EKV_LIST_MAX_LIMIT);
            return;
        }
        j->limit = (size_t)lim;
    }
    char pbuf[8192];
    rc = ekv_query_get(&q, "prefix", pbuf, sizeof(pbuf), &len);
    if (rc < 0) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "list keys: 'invalid prefix'");
        return;
    }
    if (rc > 0) {
        if (len > EKV_MAX_KEY_LEN) {
            ekv_reply_error(req, EKV_EKEY_TOO_LONG,
                            "UTF-8 encoded length of %zu exceeds key length limit of %d.", len,
                            EKV_MAX_KEY_LEN);
            return;
        }
        memcpy(j->prefix, pbuf, len);
        j->prefix_len = len;
    }
    rc = ekv_query_get(&q, "cursor", buf, sizeof(buf), &len);
    if (rc < 0 || (rc > 0 && len > 0 && ekv_cursor_decode(buf, len, j->after, &j->after_len))) {
        ekv_reply_error(req, EKV_EBAD_CURSOR, "list keys: 'invalid cursor'");
        return;
    }
    j->has_after = rc > 0 && len > 0;
    j->now_s = ekv_clock_now_s();
    j->job.work = list_work;
    j->job.done = list_done;
    ekv_app_read_or_reply(c->app, req, &j->job);
}
