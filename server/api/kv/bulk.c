/*
 * bulk.c - bulk write and delete (the JSON body is parsed and checked on a reader thread, then
 * committed as one group) and bulk get (values and metadata of up to 100 keys).
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- bulk write / delete */

static void bulk_write_done(ekv_job_t *job)
{
    write_job_t *j = ((ekv_write_t *)job)->udata;
    ekv__kv_invalidate_items(j);
    if (ekv__kv_reply_write_status_or_ok(j))
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

#define EXP_TEXT_CAP 320 /* "%.0f" of any finite double, '-' and NUL */

#define PARSE_FAIL(code, ...)                                                                      \
    do {                                                                                           \
        j->parse_rc = (code);                                                                      \
        snprintf(j->parse_msg, sizeof(j->parse_msg), __VA_ARGS__);                                 \
        return;                                                                                    \
    } while (0)

/* Integer JSON field (number or numeric string) as decimal text for the one expiration
 * validator (ekv_kv_compute_expiration), so a bulk item and a value PUT get the same answer.
 * Numbers are parsed as doubles (JSON_DECODE_INT_AS_REAL, as JSON.parse does): an integral one
 * is written out in full ("%.0f", up to 309 digits for DBL_MAX; cap must hold that), so a
 * huge integer is "too large", not "not an integer"; a fractional one keeps its fraction. */
static int int_field_text(json_t *v, char *buf, size_t cap, const char **out)
{
    if (!v || json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* every double of magnitude >= 2^52 is integral; below, the cast is exact */
        int integral = isfinite(d) && (d >= 0x1p52 || d <= -0x1p52 || d == (double)(int64_t)d);
        snprintf(buf, cap, integral ? "%.0f" : "%.17g", d);
    } else if (json_is_string(v)) {
        snprintf(buf, cap, "%s", json_string_value(v));
    } else {
        return -1;
    }
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
        char eb[EXP_TEXT_CAP], tb[EXP_TEXT_CAP];
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
    ekv__kv_submit_write(j);
}

static void start_bulk(ekv_call_t *c, ekv_op_type_t type)
{
    write_job_t *j = ekv__kv_write_job_new(c, type, bulk_write_done);
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
    json_t *wm = json_object_get(body, "withMetadata");
    if (wm && !json_is_boolean(wm) && !json_is_null(wm))
        BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'withMetadata must be true or false'");
    int with_meta = json_is_true(wm);
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        if (!json_is_string(k))
            BULK_GET_FAIL(EKV_EBAD_REQUEST, "bulk get keys: 'keys must be strings'");
        int rc =
            ekv_kv_check_key(json_string_value(k), json_string_length(k), j->msg, sizeof(j->msg));
        if (!rc && !ekv__kv_utf8_valid((const unsigned char *)json_string_value(k),
                                       json_string_length(k))) {
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
                          : !ekv__kv_utf8_valid((const unsigned char *)val, e->value_len);
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
                rc = ekv__kv_put_metadata(b, e->metadata, e->metadata_len);
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
