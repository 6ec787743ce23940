/*
 * etcd.h - the few etcd v3 calls the coordinator needs, spoken through etcd's HTTP/JSON
 * gateway (POST /v3/...) with the project's libuv HTTP client (server/http/client.h).
 * etcd is the coordinator; nothing here elects anything (coord.c does).
 *
 * Wire facts (etcd 3.4's gateway, checked against Debian's etcd-server): keys and values
 * are base64 in JSON; int64 fields are JSON strings; fields at their zero value are left
 * out (a failed txn has no "succeeded", a lease that no longer exists answers keepalive
 * with no "TTL"). /v3/watch answers with a stream of newline-separated JSON objects, each
 * {"result":{"header":..,"events":[{"type":"DELETE"?,"kv":{..}}]}} (PUT is the zero type).
 *
 * ENDPOINTS. "host:port[,host:port...]" (etcd://... in the flag, stripped by the caller).
 * A call goes to the current endpoint; a transport error (refused, timeout, closed) moves
 * the current endpoint to the next one, so the next call tries another member.
 *
 * Loop thread only. Every call completes exactly once through its callback (never inside
 * the call that started it), with 0 and the parsed JSON answer (borrowed: valid during the
 * callback), or an error: EKV_EUPSTREAM (transport, or a non-2xx answer: logged),
 * EKV_ETIMEOUT, EKV_ESHUTDOWN (ekv_etcd_close).
 */
#ifndef EKV_SERVER_NODE_COORD_ETCD_H
#define EKV_SERVER_NODE_COORD_ETCD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ekv_etcd_s ekv_etcd_t;
typedef struct ekv_etcd_watch_s ekv_etcd_watch_t;

typedef void (*ekv_etcd_cb)(void *ctx, int err, json_t *answer);

/* 0, EKV_EBAD_REQUEST (bad endpoint list, logged) or EKV_ENOMEM. */
int ekv_etcd_new(uv_loop_t *loop, const char *endpoints, ekv_etcd_t **out);
/* Fail every pending call and watch with EKV_ESHUTDOWN, then free; done(arg) runs on the
 * loop when every handle is closed. */
void ekv_etcd_close(ekv_etcd_t *e, void (*done)(void *arg), void *arg);
/* The endpoint calls go to now ("host:port"). */
const char *ekv_etcd_endpoint(const ekv_etcd_t *e);

/* POST path with body (stolen). 0 (cb will run) or an error (cb will not run). */
int ekv_etcd_call(ekv_etcd_t *e, const char *path, json_t *body, int timeout_ms, ekv_etcd_cb cb,
                  void *ctx);

/* Watch one key from revision from_rev (0: now). on_event(ctx, event) runs for each event,
 * in order ("type" absent = PUT, "DELETE"; "kv" with base64 key/value); on_end(ctx, err)
 * runs once when the stream ends (etcd closed it, a transport error), and the watch is then
 * freed; not after ekv_etcd_watch_cancel. The stream's buffer is bounded (64 KiB per
 * message): a larger message, or a refused/cancelled watch, marks it failed (below). */
int ekv_etcd_watch(ekv_etcd_t *e, const char *key, int64_t from_rev,
                   void (*on_event)(void *ctx, json_t *event), void (*on_end)(void *ctx, int err),
                   void *ctx, ekv_etcd_watch_t **out);
void ekv_etcd_watch_cancel(ekv_etcd_watch_t *w);
/* The stream is no longer usable (etcd refused or cancelled the watch, e.g. a compacted
 * start revision; a message over 64 KiB; out of memory) but still open: on_body may not
 * cancel its own call, so the owner cancels it (from a timer) and starts another. */
int ekv_etcd_watch_failed(const ekv_etcd_watch_t *w);

/* ---- JSON helpers for the gateway's encoding ---- */
/* A new JSON string holding base64(data). NULL on ENOMEM. */
json_t *ekv_etcd_b64(const void *data, size_t len);
/* An int64 field that the gateway writes as a string (or a number); 0 when absent/bad. */
int64_t ekv_etcd_int(const json_t *obj, const char *field);
/* A base64 field decoded into out (NUL-terminated, at most cap - 1 bytes). 0, or -1 when
 * absent, not base64 or too long. */
int ekv_etcd_bytes(const json_t *obj, const char *field, char *out, size_t cap, size_t *len);

/* Blocking (start-up, before the loop runs): one call on a private loop, trying each
 * endpoint in turn until one answers 2xx. 0 with *answer (json_decref it), or an error. */
int ekv_etcd_call_sync(const char *endpoints, const char *path, json_t *body, int timeout_ms,
                       json_t **answer);

#endif
