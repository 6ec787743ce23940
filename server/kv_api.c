/*
 * kv_api.c - KV values, metadata, key listing and bulk operations.
 *
 * Every handler validates on the loop thread (limits before any storage work), then either
 * answers from the cache (value GET hit) or hands a job to the reader pool / committer and
 * answers from the job's done() callback on the loop. Write completions keep the cache
 * coherent (see server/cache.h for the rule).
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/app.h"
#include "server/cursor.h"
#include "server/json_out.h"
#include "server/kv_validate.h"
#include "server/multipart.h"
#include "server/reply.h"
#include "server/urlcodec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MSG_CAP 512

/* ---------------------------------------------------------------- shared helpers */

static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Validate a decoded key name; on failure answer with the error. */
static int check_key_or_reply(ekv_req_t *req, const char *op, const char *key, size_t len)
{
    char msg[MSG_CAP];
    int rc = ekv_kv_check_key(key, len, msg, sizeof(msg));
    if (rc) {
        ekv_reply_error(req, rc, "%s", msg);
        return rc;
    }
    if (!utf8_valid((const unsigned char *)key, len)) {
        ekv_reply_error(req, EKV_EBAD_KEY, "%s: 'Key names must be valid UTF-8'", op);
        return EKV_EBAD_KEY;
    }
    return 0;
}

/* Decode the key path parameter (the route's last param) into a malloc'd buffer. */
char *ekv_kv_key_param_or_reply(ekv_call_t *c, size_t *len)
{
    const ekv_slice_t *s = &c->params.v[c->params.n - 1];
    char *key = malloc(s->n + 1);
    if (!key) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    if (ekv_url_decode_path(s->p, s->n, key, len)) {
        free(key);
        ekv_reply_error(c->req, EKV_EBAD_KEY, "Could not URL-decode key name");
        return NULL;
    }
    if (check_key_or_reply(c->req, ekv_route_op(c->route), key, *len)) {
        free(key);
        return NULL;
    }
    return key;
}

/* Stored metadata (JSON.stringify text) or null, verbatim. */
static int put_metadata(ekv_buf_t *b, const char *text, size_t len)
{
    return text ? ekv_json_put_raw(b, text, len) : ekv_json_put_raw(b, "null", 4);
}

/* ---------------------------------------------------------------- single-key reads */

typedef struct {
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
    if (expiration) {
        snprintf(hdr, sizeof(hdr), "expiration: %lld\r\n", (long long)expiration);
        extra = hdr;
    }
    ekv_http_send(req, 200, "application/octet-stream", extra, value, len, release, arg);
}

static void value_get_done(ekv_job_t *job)
{
    get_job_t *j = (get_job_t *)job;
    ekv_req_t *req = j->req;
    if (j->rc == EKV_EKEY_NOT_FOUND) {
        ekv_reply_error(req, EKV_EKEY_NOT_FOUND, "get: 'key not found'");
        return;
    }
    if (j->rc) {
        ekv_reply_error(req, j->rc, NULL);
        return;
    }
    ekv_app_t *app = j->app;
    if (ekv_cache_gen(app->cache) == j->gen)
        ekv_cache_put(app->cache, j->nsid, j->key, j->key_len, j->e.value, j->e.value_len,
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
        rc = put_metadata(&b, j->e.metadata, j->e.metadata_len);
    if (rc) {
        ekv_buf_deinit(&b);
        ekv_reply_error(j->req, rc, NULL);
        return;
    }
    ekv_reply_send(j->req, &b, NULL, 0);
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
            ekv_kv_send_value(c->req, e->value, e->value_len, e->expiration,
                              ekv_cache_entry_release, e);
            return;
        }
        ekv_cache_note_miss(app->cache);
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
    j->gen = ekv_cache_gen(app->cache);
    c->req->state = j;
    c->req->cleanup = get_job_free;
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

/* ---------------------------------------------------------------- writes */

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

static write_job_t *write_job_new(ekv_call_t *c, ekv_op_type_t type, ekv_job_fn done)
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
static void invalidate_items(write_job_t *j)
{
    for (size_t i = 0; i < j->w.nitems; i++)
        ekv_cache_invalidate(j->app->cache, j->w.nsid, j->w.items[i].key, j->w.items[i].key_len);
}

static int reply_write_status_or_ok(write_job_t *j)
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

static void single_write_done(ekv_job_t *job)
{
    write_job_t *j = ((ekv_write_t *)job)->udata;
    invalidate_items(j);
    if (reply_write_status_or_ok(j))
        return;
    if (j->w.type == EKV_OP_KV_PUT) {
        const ekv_kv_item_t *it = &j->one;
        ekv_cache_put(j->app->cache, j->w.nsid, it->key, it->key_len, it->value, it->value_len,
                      it->expiration);
    }
    ekv_reply_ok_null(j->req);
}

static void submit_write(write_job_t *j)
{
    invalidate_items(j);
    ekv_app_write_or_reply(j->app, j->req, &j->w);
}

/* Query param as NUL-terminated text, or NULL when absent. -1 (after replying) if malformed. */
static int query_param_or_reply(ekv_req_t *req, const ekv_query_t *q, const char *name, char *buf,
                                size_t cap, const char **out)
{
    size_t len;
    int rc = ekv_query_get(q, name, buf, cap, &len);
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
    write_job_t *j = write_job_new(c, type, single_write_done);
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
        if (ekv_multipart_parse(req->body.data ? req->body.data : "", req->body.len, boundary, blen,
                                parts, EKV_MULTIPART_MAX_PARTS, &nparts)) {
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
    submit_write(j);
}

void ekv_h_value_delete(ekv_call_t *c)
{
    write_job_t *j = single_write_or_reply(c, EKV_OP_KV_DELETE);
    if (j)
        submit_write(j);
}

/* ---------------------------------------------------------------- bulk write / delete */

static void bulk_write_done(ekv_job_t *job)
{
    write_job_t *j = ((ekv_write_t *)job)->udata;
    invalidate_items(j);
    if (reply_write_status_or_ok(j))
        return;
    json_t *res = json_pack("{s:I, s:[]}", "successful_key_count", (json_int_t)j->w.nitems,
                            "unsuccessful_keys");
    ekv_reply_ok(j->req, res, NULL);
}

static int own(write_job_t *j, char *p)
{
    char **o = realloc(j->owned, (j->nowned + 1) * sizeof(*o));
    if (!o) {
        free(p);
        return -1;
    }
    j->owned = o;
    j->owned[j->nowned++] = p;
    return 0;
}

#define PARSE_FAIL(code, ...)                                                                      \
    do {                                                                                           \
        j->parse_rc = (code);                                                                      \
        snprintf(j->parse_msg, sizeof(j->parse_msg), __VA_ARGS__);                                 \
        return;                                                                                    \
    } while (0)

/* Integer JSON field (number or numeric string) as decimal text for kv_validate. */
static int int_field_text(json_t *v, char *buf, size_t cap, const char **out)
{
    if (!v || json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.17g", json_real_value(v));
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else
        return -1;
    *out = buf;
    return 0;
}

/* Reader-pool job: parse and validate the whole bulk body off the loop thread. */
static void bulk_parse_work(ekv_job_t *job)
{
    write_job_t *j = (write_job_t *)((char *)job - offsetof(write_job_t, parse_job));
    ekv_req_t *req = j->req;
    const char *op = j->op;
    json_error_t jerr;
    j->json = json_loadb(req->body.data ? req->body.data : "", req->body.len, EKV_JSON_PARSE_FLAGS,
                         &jerr);
    if (!j->json)
        PARSE_FAIL(EKV_EBAD_REQUEST, "%s: 'malformed JSON body: %s'", op, jerr.text);
    if (!json_is_array(j->json))
        PARSE_FAIL(EKV_EBAD_REQUEST, "%s: 'malformed JSON body: expected an array'", op);
    size_t n = json_array_size(j->json);
    if (n > EKV_MAX_BULK_ITEMS)
        PARSE_FAIL(EKV_EBAD_REQUEST, "%s: 'You can %s a maximum of %d %s'", op,
                   j->is_delete ? "delete" : "write", EKV_MAX_BULK_ITEMS,
                   j->is_delete ? "keys" : "pairs");
    j->items = calloc(n ? n : 1, sizeof(*j->items));
    if (!j->items)
        PARSE_FAIL(EKV_ENOMEM, "out of memory");
    int64_t now = ekv_clock_now_s();
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(j->json, i);
        ekv_kv_item_t *dst = &j->items[i];
        char msg[MSG_CAP];
        json_t *k = it;
        if (!j->is_delete || json_is_object(it))
            k = json_object_get(it, "key");
        if (!json_is_string(k))
            PARSE_FAIL(EKV_EBAD_REQUEST, "%s: item %zu: 'key must be a string'", op, i);
        dst->key = json_string_value(k);
        dst->key_len = json_string_length(k);
        int rc = ekv_kv_check_key(dst->key, dst->key_len, msg, sizeof(msg));
        if (rc)
            PARSE_FAIL(rc, "%s: item %zu: %s", op, i, msg);
        if (j->is_delete)
            continue;
        if (!json_is_object(it))
            PARSE_FAIL(EKV_EBAD_REQUEST, "%s: item %zu: 'expected an object'", op, i);
        json_t *v = json_object_get(it, "value");
        if (!json_is_string(v))
            PARSE_FAIL(EKV_EBAD_VALUE, "%s: item %zu: 'value must be a string'", op, i);
        json_t *b64 = json_object_get(it, "base64");
        if (b64 && !json_is_boolean(b64) && !json_is_null(b64))
            PARSE_FAIL(EKV_EBAD_REQUEST, "%s: item %zu: 'base64 must be a boolean'", op, i);
        if (json_is_true(b64)) {
            size_t in_len = json_string_length(v);
            char *dec = malloc(ekv_base64_decoded_max(in_len) + 1);
            size_t dlen = 0;
            if (!dec || own(j, dec))
                PARSE_FAIL(EKV_ENOMEM, "out of memory");
            if (ekv_base64_decode(json_string_value(v), in_len, (uint8_t *)dec, &dlen))
                PARSE_FAIL(EKV_EBAD_VALUE, "%s: item %zu: 'value is not valid base64'", op, i);
            dst->value = dec;
            dst->value_len = dlen;
        } else {
            dst->value = json_string_value(v);
            dst->value_len = json_string_length(v);
        }
        rc = ekv_kv_check_value_len(dst->value_len, msg, sizeof(msg));
        if (rc)
            PARSE_FAIL(rc, "%s: item %zu: %s", op, i, msg);
        char eb[64], tb[64];
        const char *exp, *ttl;
        if (int_field_text(json_object_get(it, "expiration"), eb, sizeof(eb), &exp) ||
            int_field_text(json_object_get(it, "expiration_ttl"), tb, sizeof(tb), &ttl))
            PARSE_FAIL(EKV_EBAD_REQUEST, "%s: item %zu: 'expiration must be a number'", op, i);
        rc = ekv_kv_compute_expiration(exp, ttl, now, &dst->expiration, msg, sizeof(msg));
        if (rc)
            PARSE_FAIL(rc, "%s: item %zu: %s", op, i, msg);
        json_t *m = json_object_get(it, "metadata");
        if (m && !json_is_null(m)) {
            char *text = json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!text)
                PARSE_FAIL(EKV_ENOMEM, "out of memory");
            char *canon;
            size_t clen;
            rc = ekv_kv_check_metadata(text, strlen(text), &canon, &clen, msg, sizeof(msg));
            free(text);
            if (rc)
                PARSE_FAIL(rc, "%s: item %zu: %s", op, i, msg);
            if (own(j, canon))
                PARSE_FAIL(EKV_ENOMEM, "out of memory");
            dst->metadata = canon;
            dst->metadata_len = clen;
        }
    }
    j->w.items = j->items;
    j->w.nitems = n;
}

static void bulk_parse_done(ekv_job_t *job)
{
    write_job_t *j = (write_job_t *)((char *)job - offsetof(write_job_t, parse_job));
    if (j->parse_rc) {
        ekv_reply_error(j->req, j->parse_rc, "%s", j->parse_msg);
        return;
    }
    if (j->w.nitems == 0) { /* nothing to write: answer without a commit */
        json_t *res = json_pack("{s:i, s:[]}", "successful_key_count", 0, "unsuccessful_keys");
        ekv_reply_ok(j->req, res, NULL);
        return;
    }
    submit_write(j);
}

static void start_bulk(ekv_call_t *c, ekv_op_type_t type)
{
    write_job_t *j = write_job_new(c, type, bulk_write_done);
    if (!j)
        return;
    j->is_delete = type == EKV_OP_KV_DELETE;
    j->parse_job.work = bulk_parse_work;
    j->parse_job.done = bulk_parse_done;
    ekv_app_read_or_reply(c->app, c->req, &j->parse_job);
}

void ekv_h_bulk_put(ekv_call_t *c)
{
    start_bulk(c, EKV_OP_KV_PUT);
}

void ekv_h_bulk_delete(ekv_call_t *c)
{
    start_bulk(c, EKV_OP_KV_DELETE);
}

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
                rc = put_metadata(&b, it->metadata, it->metadata_len);
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
    int rc = ekv_query_get(&q, "limit", buf, sizeof(buf), &len);
    if (rc != 0) {
        char *end;
        long long lim = rc > 0 ? strtoll(buf, &end, 10) : -1;
        if (rc < 0 || len == 0 || *end || lim < EKV_LIST_MIN_LIMIT || lim > EKV_LIST_MAX_LIMIT) {
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

/* ---------------------------------------------------------------- bulk get */

/* Everything after the auth/namespace checks runs on a reader thread: parsing the body,
 * the reads, and building the reply (up to 25 MB of values is JSON-escaped there, not on
 * the loop). done() only sends the bytes or the error. */
typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    ekv_req_t *req;
    uint8_t nsid[EKV_NSID_LEN];
    int64_t now_s;
    int err; /* 0, or the error to answer with msg */
    char msg[MSG_CAP];
    ekv_buf_t out; /* the reply when err == 0 */
} bulk_get_job_t;

static void bulk_get_free(ekv_req_t *req)
{
    bulk_get_job_t *j = req->state;
    ekv_buf_deinit(&j->out);
    free(j);
    req->state = NULL;
}

#define BULK_GET_FAIL(code, ...)                                                                   \
    do {                                                                                           \
        j->err = (code);                                                                           \
        snprintf(j->msg, sizeof(j->msg), __VA_ARGS__);                                             \
        goto out;                                                                                  \
    } while (0)

static void bulk_get_work(ekv_job_t *job)
{
    bulk_get_job_t *j = (bulk_get_job_t *)job;
    ekv_req_t *req = j->req;
    ekv_kv_entry_t *entries = NULL;
    int *rcs = NULL;
    size_t n = 0;
    json_error_t jerr;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len,
                              EKV_JSON_PARSE_FLAGS, &jerr);
    if (!json_is_object(body))
        BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'malformed JSON body: %s'",
                      body ? "expected an object" : jerr.text);
    json_t *keys = json_object_get(body, "keys");
    if (!json_is_array(keys))
        BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'keys must be an array'");
    n = json_array_size(keys);
    if (n > EKV_MAX_BULK_GET_KEYS)
        BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'You can request a maximum of %d keys'",
                      EKV_MAX_BULK_GET_KEYS);
    if (n == 0)
        BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'You must request a minimum of 1 key'");
    int as_json = 0;
    json_t *type = json_object_get(body, "type");
    if (type && !json_is_null(type)) {
        const char *t = json_is_string(type) ? json_string_value(type) : "";
        if (!strcmp(t, "json"))
            as_json = 1;
        else if (strcmp(t, "text") != 0)
            BULK_GET_FAIL(
                EKV_EBAD_REQUEST,
                "bulk get keys: '\"%.64s\" is not a valid type. Use \"json\" or \"text\"'", t);
    }
    int with_meta = json_is_true(json_object_get(body, "withMetadata"));
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        if (!json_is_string(k))
            BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'keys must be strings'");
        int rc =
            ekv_kv_check_key(json_string_value(k), json_string_length(k), j->msg, sizeof(j->msg));
        if (!rc &&
            !utf8_valid((const unsigned char *)json_string_value(k), json_string_length(k))) {
            rc = EKV_EBAD_KEY;
            snprintf(j->msg, sizeof(j->msg), "bulk get keys: 'Key names must be valid UTF-8'");
        }
        if (rc) {
            j->err = rc;
            goto out;
        }
    }

    entries = calloc(n, sizeof(*entries));
    rcs = calloc(n, sizeof(*rcs));
    if (!entries || !rcs)
        BULK_GET_FAIL(EKV_ENOMEM, "out of memory");
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        rcs[i] = ekv_store_kv_get(j->app->store, j->nsid, json_string_value(k),
                                  json_string_length(k), 1, j->now_s, &entries[i]);
        if (rcs[i] && rcs[i] != EKV_EKEY_NOT_FOUND)
            BULK_GET_FAIL(rcs[i], "%s", ekv_strerror(rcs[i]));
        total += rcs[i] ? 0 : entries[i].value_len;
        if (total > EKV_MAX_BULK_GET_BYTES) /* stop reading: memory stays bounded */
            BULK_GET_FAIL(EKV_ETOO_LARGE,
                          "bulk get keys: 'The requested values add up to more than %u bytes'",
                          EKV_MAX_BULK_GET_BYTES);
    }

    ekv_buf_t *b = &j->out;
    int rc = ekv_reply_begin(b);
    if (!rc)
        rc = ekv_buf_appends(b, "{\"values\":{");
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *k = json_array_get(keys, i);
        if (i)
            rc = ekv_buf_append(b, ",", 1);
        if (!rc)
            rc = ekv_json_put_str(b, json_string_value(k), json_string_length(k));
        if (!rc)
            rc = ekv_buf_append(b, ":", 1);
        if (rc)
            break;
        if (rcs[i] == EKV_EKEY_NOT_FOUND) {
            rc = ekv_buf_append(b, "null", 4);
            continue;
        }
        const ekv_kv_entry_t *e = &entries[i];
        const char *val = e->value ? e->value : "";
        json_t *parsed = NULL;
        int bad = as_json ? !(parsed = json_loadb(val, e->value_len, EKV_JSON_PARSE_FLAGS, NULL))
                          : !utf8_valid((const unsigned char *)val, e->value_len);
        if (bad)
            BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: '%s'",
                          as_json ? "At least one of the requested keys corresponds to a "
                                    "non-json value"
                                  : "At least one of the requested keys corresponds to a "
                                    "non-text value");
        if (with_meta)
            rc = ekv_buf_appends(b, "{\"value\":");
        if (!rc)
            rc = parsed ? ekv_json_put_value(b, parsed) : ekv_json_put_str(b, val, e->value_len);
        if (parsed)
            json_decref(parsed);
        if (!rc && with_meta) {
            rc = ekv_buf_appends(b, ",\"metadata\":");
            if (!rc)
                rc = put_metadata(b, e->metadata, e->metadata_len);
            if (!rc && e->expiration) {
                rc = ekv_buf_appends(b, ",\"expiration\":");
                if (!rc)
                    rc = ekv_json_put_i64(b, e->expiration);
            }
            if (!rc)
                rc = ekv_buf_append(b, "}", 1);
        }
    }
    if (!rc)
        rc = ekv_buf_appends(b, "}}");
    if (rc)
        BULK_GET_FAIL(rc, "%s", ekv_strerror(rc));
out:
    for (size_t i = 0; entries && i < n; i++)
        ekv_kv_entry_clear(&entries[i]);
    free(entries);
    free(rcs);
    if (body)
        json_decref(body);
}

static void bulk_get_done(ekv_job_t *job)
{
    bulk_get_job_t *j = (bulk_get_job_t *)job;
    if (j->err) {
        ekv_reply_error(j->req, j->err, "%s", j->msg);
        return;
    }
    ekv_reply_send(j->req, &j->out, NULL, 0);
}

void ekv_h_bulk_get(ekv_call_t *c)
{
    bulk_get_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    c->req->state = j;
    c->req->cleanup = bulk_get_free;
    j->app = c->app;
    j->req = c->req;
    memcpy(j->nsid, c->nsid, EKV_NSID_LEN);
    ekv_buf_init(&j->out, 0);
    j->now_s = ekv_clock_now_s();
    j->job.work = bulk_get_work;
    j->job.done = bulk_get_done;
    ekv_app_read_or_reply(c->app, c->req, &j->job);
}
