/*
 * reply.h - Cloudflare envelopes. Every JSON reply goes through here so `success`, the HTTP
 * status and the error table (common/errors.h) always agree.
 *
 *   {"success":true,"errors":[],"messages":[],"result":<result>[,"result_info":{...}]}
 *   {"success":false,"errors":[{"code":N,"message":"..."}],"messages":[],"result":null}
 *
 * Functions named *_or_reply elsewhere send the error themselves; callers just return.
 */
#ifndef EKV_SERVER_HTTP_REPLY_H
#define EKV_SERVER_HTTP_REPLY_H

#include "server/http/server.h"

#include <jansson.h>

/* Success with `result` (stolen reference; NULL = JSON null) and optional result_info
 * (stolen, may be NULL). */
void ekv_reply_ok(ekv_req_t *req, json_t *result, json_t *result_info);
/* Success with "result": null, from a static body (no allocation). */
void ekv_reply_ok_null(ekv_req_t *req);
/* Error with the table's status/code and a message (printf-style; NULL fmt = table text). */
void ekv_reply_error(ekv_req_t *req, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Error with an explicit status and an error_chain (6003-style replies). */
void ekv_reply_error_chain(ekv_req_t *req, int err, int chain_code, const char *chain_msg);
/* 503 with Retry-After for EKV_EBUSY / EKV_ESHUTDOWN. */
void ekv_reply_busy(ekv_req_t *req, int err);
/* The same with a specific message (e.g. an edge whose primary is unreachable). */
void ekv_reply_busy_msg(ekv_req_t *req, int err, const char *msg);
/* Envelopes built as text (hot paths, and stored JSON spliced verbatim): begin appends
 * {"success":true,...,"result": ; the caller appends the result; send appends
 * result_info (JSON text or NULL) and the closing brace and sends (freeing b). */
int ekv_reply_begin(ekv_buf_t *b);
void ekv_reply_send(ekv_req_t *req, ekv_buf_t *b, const char *result_info, size_t info_len);
/* Send an already-built JSON body with a status (used for non-envelope JSON). */
void ekv_reply_json_text(ekv_req_t *req, int status, const char *text, size_t len);

#endif
