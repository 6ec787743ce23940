/*
 * server/api/kv/ - the Workers KV handlers (docs/API.md), split by concern:
 *
 *   key.c       key names from the URL (decode, limits, UTF-8) and stored metadata output
 *   values.c    one key: GET value (cache, then reader), GET metadata, PUT, DELETE
 *   write.c     the write job shared by single and bulk writes (cache coherence, errors)
 *   bulk.c      bulk write/delete (JSON parsed on a reader thread), bulk get
 *   list.c      list keys (prefix, cursor, limit)
 *   validate.c  pure checks of every limit (key, value, metadata, expiration, namespace id)
 *   cursor.c    the opaque list cursor
 *
 * Every handler validates on the loop thread (limits before any storage work), then either
 * answers from the cache (value GET hit) or hands a job to the reader pool / committer and
 * answers from the job's done() callback on the loop. Write completions keep the cache
 * coherent (see server/api/cache.h for the rule).
 */
#ifndef EKV_SERVER_API_KV_KV_H
#define EKV_SERVER_API_KV_KV_H

#include "server/api/api.h"

#include <jansson.h>

#define MSG_CAP 512

/* Handlers (the route table's). */
void ekv_h_value_get(ekv_call_t *c);
void ekv_h_value_put(ekv_call_t *c);
void ekv_h_value_delete(ekv_call_t *c);
void ekv_h_metadata_get(ekv_call_t *c);
void ekv_h_keys_list(ekv_call_t *c);
void ekv_h_bulk_put(ekv_call_t *c);
void ekv_h_bulk_delete(ekv_call_t *c);
void ekv_h_bulk_get(ekv_call_t *c);

/* Shared with the edge (server/node/edge/): the decoded key of a value/metadata route
 * (malloc'd; NULL after answering 400/414), and a value reply (body + expiration). */
char *ekv_kv_key_param_or_reply(ekv_call_t *c, size_t *len);
void ekv_kv_send_value(ekv_req_t *req, const char *value, size_t len, int64_t expiration,
                       void (*release)(void *), void *arg);
/* A value reply straight from a cache entry (takes the caller's reference): zero copy, and
 * every reply of the entry charges its bytes once against --reply-memory-mb. */
void ekv_kv_send_cached(ekv_req_t *req, ekv_cache_entry_t *e);

/* ---- internal to server/api/kv/ ---- */

/* 1 when s[0..n) is valid UTF-8 (no surrogates, no overlongs). */
int ekv__kv_utf8_valid(const unsigned char *s, size_t n);
/* Stored metadata (JSON.stringify text) or null, verbatim. */
int ekv__kv_put_metadata(ekv_buf_t *b, const char *text, size_t len);

/* A write in flight (single or bulk): request state until the reply is written. */
typedef struct {
    ekv_write_t w;
    ekv_app_t *app;
    ekv_req_t *req;
    const char *op;
    ekv_kv_item_t one; /* single put / delete */
    char *key;
    char *metadata;
    /* bulk */
    json_t *json;
    ekv_kv_item_t *items;
    char **owned; /* decoded base64 values, canonical metadata */
    size_t nowned;
    int is_delete;
    size_t body_limit_items;
    int parse_rc;
    char parse_msg[MSG_CAP * 2];
    ekv_job_t parse_job;
} write_job_t;

/* New write job as the request's state (freed with it); NULL after answering 500. */
write_job_t *ekv__kv_write_job_new(ekv_call_t *c, ekv_op_type_t type, ekv_job_fn done);
/* Invalidate every key of the write in the cache (at submit and at completion). */
void ekv__kv_invalidate_items(write_job_t *j);
/* 0 when the write succeeded; else -1 after answering its error. */
int ekv__kv_reply_write_status_or_ok(write_job_t *j);
/* Invalidate, then hand the write to the committer (or answer 503). */
void ekv__kv_submit_write(write_job_t *j);

#endif
