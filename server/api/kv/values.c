/*
 * values.c - one key: GET value (cache hit on the loop, else a reader job that fills the
 * cache), GET metadata, PUT (raw body or multipart with metadata), DELETE.
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

/* ---------------------------------------------------------------- single-key reads */

typedef struct get_job_s {
    ekv_job_t job;
    ekv_app_t *app;
    ekv_req_t *req;
    uint8_t nsid[EKV_NSID_LEN];
    char *key;
    size_t key_len;
    int want_value;
    int64_t now_s;
    uint64_t gen;
    int rc;
    ekv_kv_entry_t e;
    struct get_job_s *wait_next;
} get_job_t;

static void get_job_free(ekv_req_t *req)
{
    get_job_t *j = req->state;
    ekv_kv_entry_clear(&j->e);
    free(j->key);
    free(j);
    req->state = NULL;
}

static void get_work(ekv_job_t *job)
{
    get_job_t *j = (get_job_t *)job;
    j->rc = ekv_store_kv_get(j->app->store, j->nsid, j->key, j->key_len, j->want_value, j->now_s,
                             &j->e);
}

void ekv_kv_send_value(ekv_req_t *req, const char *value, size_t len, int64_t expiration,
                       void (*release)(void *), void *arg)
{
    char hdr[64];
    const char *extra = NULL;
    req->reply_expiration = expiration;
    if (expiration) {
        snprintf(hdr, sizeof(hdr), "expiration: %lld\r\n", (long long)expiration);
        extra = hdr;
    }
    ekv_http_send(req, 200, "application/octet-stream", extra, value, len, release, arg);
}

void ekv_kv_send_cached(ekv_req_t *req, ekv_cache_entry_t *e)
{
    req->reply_shared = &e->shared;
    ekv_kv_send_value(req, e->value, e->value_len, e->expiration, ekv_cache_entry_release, e);
}

/* Submit a value read holding one of app->value_reads. */
static void submit_value_read(ekv_app_t *app, get_job_t *j)
{
    app->value_reads++;
    if (ekv_app_read_or_reply(app, j->req, &j->job)) /* answered 503: the slot is free again */
        app->value_reads--;
}

/* Start a value read now (taking a slot), or queue it until one is free. */
static void value_read_start(ekv_app_t *app, get_job_t *j)
{
    if (app->value_reads_max &&
        (app->value_reads >= app->value_reads_max || app->value_wait_head)) {
        if (app->value_waiting >= app->value_wait_max) { /* as a full reader queue would */
            ekv_reply_busy(j->req, EKV_EBUSY);
            return;
        }
        app->value_waiting++;
        j->wait_next = NULL;
        if (app->value_wait_tail)
            ((get_job_t *)app->value_wait_tail)->wait_next = j;
        else
            app->value_wait_head = j;
        app->value_wait_tail = j;
        return;
    }
    submit_value_read(app, j);
}

/* A value read finished: free slots go to the oldest waiting ones (one that cannot be
 * submitted is answered 503 and gives its slot to the next). */
static void value_read_end(ekv_app_t *app)
{
    app->value_reads--;
    while (app->value_wait_head && app->value_reads < app->value_reads_max) {
        get_job_t *next = app->value_wait_head;
        app->value_wait_head = next->wait_next;
        if (!app->value_wait_head)
            app->value_wait_tail = NULL;
        app->value_waiting--;
        submit_value_read(app, next);
    }
}

static void value_get_done(ekv_job_t *job)
{
    get_job_t *j = (get_job_t *)job;
    ekv_req_t *req = j->req;
    value_read_end(j->app); /* every value read that completes held a slot */
    if (j->rc == EKV_EKEY_NOT_FOUND) {
        ekv_reply_error(req, EKV_EKEY_NOT_FOUND, "get: 'key not found'");
        return;
    }
    if (j->rc) {
        ekv_reply_error(req, j->rc, NULL);
        return;
    }
    ekv_app_t *app = j->app;
    ekv_cache_fill(app->cache, j->gen, j->nsid, j->key, j->key_len, j->e.value, j->e.value_len,
                   j->e.expiration);
    char *v = j->e.value;
    j->e.value = NULL; /* ownership moves to the reply */
    ekv_kv_send_value(req, v ? v : "", j->e.value_len, j->e.expiration, v ? free : NULL, v);
}

static void metadata_get_done(ekv_job_t *job)
{
    get_job_t *j = (get_job_t *)job;
    if (j->rc == EKV_EKEY_NOT_FOUND) {
        ekv_reply_error(j->req, EKV_EKEY_NOT_FOUND, "metadata: 'key not found'");
        return;
    }
    if (j->rc) {
        ekv_reply_error(j->req, j->rc, NULL);
        return;
    }
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    int rc = ekv_reply_begin(&b);
    if (!rc)
        rc = ekv__kv_put_metadata(&b, j->e.metadata, j->e.metadata_len);
    if (rc) {
        ekv_buf_deinit(&b);
        ekv_reply_error(j->req, rc, NULL);
        return;
    }
    ekv_reply_send(j->req, &b, NULL, 0);
}

/*
 * A value cache miss whose blocks RocksDB holds in memory is answered here, on the loop: a
 * lookup in the memtables and the block cache costs a few microseconds, less than handing
 * the read to a reader thread and its completion back (docs/STORAGE.md "Inline reads").
 * Returns 1 when answered, 0 when the read needs a file (then a reader does it). A read
 * waiting for a slot would be overtaken, which is fine: reads of a key are not ordered
 * among themselves, and this one sees every write acknowledged before it.
 */
static int value_get_inline(ekv_app_t *app, ekv_call_t *c, const char *key, size_t klen,
                            int64_t now_s)
{
    ekv_kv_entry_t e;
    int rc = ekv_store_kv_get_cached(app->store, c->nsid, key, klen, now_s, &e);
    if (rc == EKV_STORE_NOT_CACHED)
        return 0;
    app->inline_reads++;
    if (rc == EKV_EKEY_NOT_FOUND) {
        ekv_reply_error(c->req, EKV_EKEY_NOT_FOUND, "get: 'key not found'");
        return 1;
    }
    if (rc) {
        ekv_reply_error(c->req, rc, NULL);
        return 1;
    }
    /* nothing ran between the read and here: a fresh ticket is exact */
    ekv_cache_fill(app->cache, ekv_cache_fill_begin(app->cache), c->nsid, key, klen, e.value,
                   e.value_len, e.expiration);
    char *v = e.value;
    e.value = NULL;
    ekv_kv_send_value(c->req, v ? v : "", e.value_len, e.expiration, v ? free : NULL, v);
    ekv_kv_entry_clear(&e);
    return 1;
}

static void start_get(ekv_call_t *c, int want_value, ekv_job_fn done)
{
    size_t klen;
    char *key = ekv_kv_key_param_or_reply(c, &klen);
    if (!key)
        return;
    ekv_app_t *app = c->app;
    int64_t now = ekv_clock_now_s();
    if (want_value) {
        ekv_cache_entry_t *e = ekv_cache_get(app->cache, c->nsid, key, klen, now);
        if (e) {
            free(key);
            ekv_kv_send_cached(c->req, e);
            return;
        }
        ekv_cache_note_miss(app->cache);
        if (!ekv_http_reply_room(c->req)) { /* do not read what could not be sent */
            free(key);
            ekv_reply_busy(c->req, EKV_EREPLY_MEMORY);
            return;
        }
        if (value_get_inline(app, c, key, klen, now)) {
            free(key);
            return;
        }
    }
    get_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        free(key);
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    j->job.work = get_work;
    j->job.done = done;
    j->app = app;
    j->req = c->req;
    memcpy(j->nsid, c->nsid, EKV_NSID_LEN);
    j->key = key;
    j->key_len = klen;
    j->want_value = want_value;
    j->now_s = now;
    j->gen = ekv_cache_fill_begin(app->cache);
    c->req->state = j;
    c->req->cleanup = get_job_free;
    if (want_value)
        value_read_start(app, j);
    else
        ekv_app_read_or_reply(app, c->req, &j->job);
}

void ekv_h_value_get(ekv_call_t *c)
{
    start_get(c, 1, value_get_done);
}

void ekv_h_metadata_get(ekv_call_t *c)
{
    start_get(c, 0, metadata_get_done);
}

static void single_write_done(ekv_job_t *job)
{
    write_job_t *j = ((ekv_write_t *)job)->udata;
    ekv__kv_invalidate_items(j);
    if (ekv__kv_reply_write_status_or_ok(j))
        return;
    if (j->w.type == EKV_OP_KV_PUT) {
        const ekv_kv_item_t *it = &j->one;
        ekv_cache_put(j->app->cache, j->w.nsid, it->key, it->key_len, it->value, it->value_len,
                      it->expiration);
    }
    ekv_reply_ok_null(j->req);
}
/* Query param as NUL-terminated text, or NULL when absent. -1 (after replying) if malformed. */
static int query_param_or_reply(ekv_req_t *req, const ekv_query_t *q, const char *name, char *buf,
                                size_t cap, const char **out)
{
    size_t len;
    int rc = ekv_query_get(q, name, buf, cap, &len);
    if (rc == EKV_QUERY_REPEATED) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "put: 'query parameter %s given more than once'",
                        name);
        return -1;
    }
    if (rc < 0) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "invalid query parameter '%s'", name);
        return -1;
    }
    *out = rc ? buf : NULL;
    return 0;
}

/* The job of a single-key PUT/DELETE with its decoded, checked key; NULL after answering. */
static write_job_t *single_write_or_reply(ekv_call_t *c, ekv_op_type_t type)
{
    size_t klen;
    char *key = ekv_kv_key_param_or_reply(c, &klen);
    if (!key)
        return NULL;
    write_job_t *j = ekv__kv_write_job_new(c, type, single_write_done);
    if (!j) {
        free(key);
        return NULL;
    }
    j->key = key;
    j->one.key = key;
    j->one.key_len = klen;
    j->w.items = &j->one;
    j->w.nitems = 1;
    return j;
}

void ekv_h_value_put(ekv_call_t *c)
{
    ekv_req_t *req = c->req;
    char msg[MSG_CAP];
    write_job_t *j = single_write_or_reply(c, EKV_OP_KV_PUT);
    if (!j)
        return;

    ekv_query_t q;
    if (ekv_query_parse(req->query, req->query_len, &q)) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "put: 'too many query parameters'");
        return;
    }
    char expbuf[64], ttlbuf[64];
    const char *exp = NULL, *ttl = NULL;
    if (query_param_or_reply(req, &q, "expiration", expbuf, sizeof(expbuf), &exp) ||
        query_param_or_reply(req, &q, "expiration_ttl", ttlbuf, sizeof(ttlbuf), &ttl))
        return;
    int64_t expiration = 0;
    int rc = ekv_kv_compute_expiration(exp, ttl, ekv_clock_now_s(), &expiration, msg, sizeof(msg));
    if (rc) {
        ekv_reply_error(req, rc, "%s", msg);
        return;
    }

    const char *value = req->body.data ? req->body.data : "";
    size_t value_len = req->body.len;
    const ekv_hdr_t *ct = &req->hdr[EKV_HDR_CONTENT_TYPE];
    const char *boundary;
    size_t blen;
    int is_multipart =
        ct->present && ct->len >= 19 && strncasecmp(ct->v, "multipart/form-data", 19) == 0;
    if (is_multipart && ekv_multipart_boundary(ct->v, ct->len, &boundary, &blen) != 0) {
        ekv_reply_error(req, EKV_EBAD_VALUE, "put: 'multipart/form-data without a valid boundary'");
        return;
    }
    if (is_multipart) {
        ekv_mp_part_t parts[EKV_MULTIPART_MAX_PARTS];
        size_t nparts;
        rc = ekv_multipart_parse(req->body.data ? req->body.data : "", req->body.len, boundary,
                                 blen, parts, EKV_MULTIPART_MAX_PARTS, &nparts);
        if (rc == EKV_MULTIPART_TOO_MANY_PARTS) {
            ekv_reply_error(req, EKV_EBAD_VALUE,
                            "put: 'multipart/form-data body has more than %d parts'",
                            EKV_MULTIPART_MAX_PARTS);
            return;
        }
        if (rc) {
            ekv_reply_error(req, EKV_EBAD_VALUE, "put: 'malformed multipart/form-data body'");
            return;
        }
        const ekv_mp_part_t *vp = ekv_multipart_find(parts, nparts, "value");
        if (!vp) {
            ekv_reply_error(req, EKV_EBAD_VALUE, "put: 'multipart body has no value part'");
            return;
        }
        value = vp->data;
        value_len = vp->data_len;
        json_t *meta = NULL;
        if (ekv_multipart_metadata(parts, nparts, &meta)) {
            ekv_reply_error(req, EKV_EBAD_METADATA, "Invalid metadata: not valid JSON");
            return;
        }
        if (meta) {
            char *text = json_dumps(meta, JSON_COMPACT | JSON_ENCODE_ANY);
            json_decref(meta);
            if (!text) {
                ekv_reply_error(req, EKV_ENOMEM, NULL);
                return;
            }
            size_t clen;
            rc = ekv_kv_check_metadata(text, strlen(text), &j->metadata, &clen, msg, sizeof(msg));
            free(text);
            if (rc) {
                ekv_reply_error(req, rc, "%s", msg);
                return;
            }
            j->one.metadata = j->metadata;
            j->one.metadata_len = clen;
        }
    }
    rc = ekv_kv_check_value_len(value_len, msg, sizeof(msg));
    if (rc) {
        ekv_reply_error(req, rc, "%s", msg);
        return;
    }
    j->one.value = value;
    j->one.value_len = value_len;
    j->one.expiration = expiration;
    ekv__kv_submit_write(j);
}

void ekv_h_value_delete(ekv_call_t *c)
{
    write_job_t *j = single_write_or_reply(c, EKV_OP_KV_DELETE);
    if (j)
        ekv__kv_submit_write(j);
}
