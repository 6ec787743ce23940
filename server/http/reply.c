#include "server/http/reply.h"
#include "common/errors.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_CT "application/json"

static void send_json(ekv_req_t *req, int status, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) {
        static const char oom[] = "{\"success\":false,\"errors\":[{\"code\":10001,\"message\":"
                                  "\"out of memory\"}],\"messages\":[],\"result\":null}";
        ekv_http_send(req, 500, JSON_CT, NULL, oom, sizeof(oom) - 1, NULL, NULL);
        return;
    }
    ekv_http_send(req, status, JSON_CT, NULL, text, strlen(text), free, text);
}

/* A write held for replica acks that timed out: its success reply is replaced (the effects on
 * caches and catalog were applied by the handler, as the write IS committed). */
static int sync_failed_reply(ekv_req_t *req)
{
    if (!req->sync_failed)
        return 0;
    if (req->sync_failed == EKV_SYNC_FAILED_LEADER_LOST) {
        req->sync_failed = 0;
        ekv_reply_error(req, EKV_ELEADER_LOST,
                        "write committed on this node after its primary lease lapsed: it is NOT "
                        "acknowledged and may be discarded when this node rejoins the new "
                        "primary; retry it");
        return 1;
    }
    ekv_reply_error(req, EKV_ESYNC_TIMEOUT,
                    "write committed on the primary but not acknowledged by the required "
                    "number of replicas (--sync-replicas) in time; it is durable here and "
                    "will reach the replicas when they catch up");
    return 1;
}

void ekv_reply_ok(ekv_req_t *req, json_t *result, json_t *result_info)
{
    if (sync_failed_reply(req)) {
        json_decref(result);
        json_decref(result_info);
        return;
    }
    json_t *root = json_pack("{s:b, s:[], s:[], s:o}", "success", 1, "errors", "messages", "result",
                             result ? result : json_null());
    if (result_info && root)
        json_object_set_new(root, "result_info", result_info);
    else if (result_info)
        json_decref(result_info);
    if (!root) {
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    send_json(req, 200, root);
}

void ekv_reply_ok_null(ekv_req_t *req)
{
    if (sync_failed_reply(req))
        return;
    static const char body[] = "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":null}";
    ekv_http_send(req, 200, JSON_CT, NULL, body, sizeof(body) - 1, NULL, NULL);
}

static json_t *error_root(int err, const char *msg, json_t *chain)
{
    json_t *e = json_pack("{s:i, s:s}", "code", ekv_err_cf_code(err), "message", msg);
    if (e && chain)
        json_object_set_new(e, "error_chain", chain);
    else if (chain)
        json_decref(chain);
    return json_pack("{s:b, s:[o], s:[], s:n}", "success", 0, "errors", e, "messages", "result");
}

void ekv_reply_error(ekv_req_t *req, int err, const char *fmt, ...)
{
    char msg[1024];
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
    } else {
        snprintf(msg, sizeof(msg), "%s", ekv_strerror(err));
    }
    int status = ekv_err_http_status(err);
    if (status >= 500)
        ekv_log_warn("request failed", "method=%s path=\"%s\" status=%d err=%s msg=\"%s\"",
                     req->method_str, req->path ? req->path : "-", status, ekv_err_name(err), msg);
    req->reply_cf_code = ekv_err_cf_code(err);
    json_t *root = error_root(err, msg, NULL);
    if (!root) {
        ekv_http_send(req, 500, JSON_CT, NULL, "{}", 2, NULL, NULL);
        return;
    }
    send_json(req, status, root);
}

void ekv_reply_error_chain(ekv_req_t *req, int err, int chain_code, const char *chain_msg)
{
    json_t *chain = json_pack("[{s:i, s:s}]", "code", chain_code, "message", chain_msg);
    req->reply_cf_code = ekv_err_cf_code(err);
    json_t *root = error_root(err, ekv_strerror(err), chain);
    if (!root) {
        ekv_http_send(req, 500, JSON_CT, NULL, "{}", 2, NULL, NULL);
        return;
    }
    send_json(req, ekv_err_http_status(err), root);
}

void ekv_reply_busy(ekv_req_t *req, int err)
{
    ekv_reply_busy_msg(req, err, ekv_strerror(err));
}

void ekv_reply_busy_msg(ekv_req_t *req, int err, const char *msg)
{
    req->reply_cf_code = ekv_err_cf_code(err);
    json_t *root = error_root(err, msg, NULL);
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) {
        ekv_http_send(req, 503, JSON_CT, "Retry-After: 1\r\n", "{}", 2, NULL, NULL);
        return;
    }
    ekv_http_send(req, 503, JSON_CT, "Retry-After: 1\r\n", text, strlen(text), free, text);
}

void ekv_reply_json_text(ekv_req_t *req, int status, const char *text, size_t len)
{
    ekv_http_send(req, status, JSON_CT, NULL, text, len, NULL, NULL);
}

int ekv_reply_begin(ekv_buf_t *b)
{
    static const char head[] = "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":";
    return ekv_buf_append(b, head, sizeof(head) - 1);
}

void ekv_reply_send(ekv_req_t *req, ekv_buf_t *b, const char *result_info, size_t info_len)
{
    if (sync_failed_reply(req)) {
        ekv_buf_deinit(b);
        return;
    }
    int rc = 0;
    if (result_info) {
        rc = ekv_buf_appends(b, ",\"result_info\":");
        if (!rc)
            rc = ekv_buf_append(b, result_info, info_len);
    }
    if (!rc)
        rc = ekv_buf_append(b, "}", 1);
    if (rc) {
        ekv_buf_deinit(b);
        ekv_reply_error(req, rc, NULL);
        return;
    }
    size_t len;
    char *text = ekv_buf_take(b, &len);
    ekv_http_send(req, 200, JSON_CT, NULL, text, len, free, text);
}
