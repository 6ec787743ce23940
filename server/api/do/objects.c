/*
 * objects.c - Cloudflare's objects list (GET .../namespaces/{id}/objects?limit&cursor) and
 * edgekv's id endpoint (POST .../namespaces/{id}/objects/ids).
 *
 * The list reads the store (objects with a stored key or an alarm, ascending by id) on the
 * reader pool. Its cursor is the last id of the page in hex; result_info carries it both as
 * `cursor` (the spec, SDK 3/4, hand-written clients) and `cursors.after` (SDK 5+), "" at the
 * end.
 */
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/do/do_int.h"
#include "server/api/do/ids.h"
#include "server/http/reply.h"
#include "server/http/urlcodec.h"

#include <stdlib.h>
#include <string.h>

#define OBJECTS_LIMIT_MIN     10
#define OBJECTS_LIMIT_MAX     10000
#define OBJECTS_LIMIT_DEFAULT 1000

typedef struct {
    ekv_job_t job;
    ekv_req_t *req;
    ekv_store_t *store;
    uint8_t dons[EKV_NSID_LEN];
    uint8_t after[EKV_DO_OBJID_LEN];
    int has_after;
    size_t limit, n;
    int more, rc;
    uint8_t (*ids)[EKV_DO_OBJID_LEN];
} objects_job_t;

static void objects_job_free(ekv_req_t *req)
{
    objects_job_t *j = req->state;
    free(j->ids);
    free(j);
    req->state = NULL;
}

static void objects_work(ekv_job_t *job)
{
    objects_job_t *j = (objects_job_t *)(void *)job;
    j->rc = ekv_store_do_objects(j->store, j->dons, j->has_after ? j->after : NULL, j->limit,
                                 j->ids, &j->n, &j->more);
}

static void objects_done(ekv_job_t *job)
{
    objects_job_t *j = (objects_job_t *)(void *)job;
    if (j->rc) {
        ekv_reply_error(j->req, j->rc, NULL);
        return;
    }
    json_t *arr = json_array();
    char hex[EKV_DO_ID_HEX_LEN + 1];
    for (size_t i = 0; i < j->n; i++) {
        ekv_do_id_hex(j->ids[i], hex);
        json_array_append_new(arr, json_pack("{s:s, s:b}", "id", hex, "hasStoredData", 1));
    }
    if (j->more && j->n)
        ekv_do_id_hex(j->ids[j->n - 1], hex);
    else
        hex[0] = '\0';
    json_t *info = json_pack("{s:I, s:s, s:{s:s}}", "count", (json_int_t)j->n, "cursor", hex,
                             "cursors", "after", hex);
    ekv_reply_ok(j->req, arr, info);
}

void ekv_h_do_objects_list(ekv_call_t *c)
{
    do_nsent_t *ns = ekv__do_ns_or_reply(c);
    if (!ns)
        return;
    ekv_req_t *req = c->req;
    ekv_query_t q;
    char buf[128];
    size_t len;
    long limit = OBJECTS_LIMIT_DEFAULT;
    if (ekv_query_parse(req->query, req->query_len, &q)) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "list objects: 'too many query parameters'");
        return;
    }
    int rc = ekv_query_get(&q, "limit", buf, sizeof(buf), &len);
    if (rc) {
        char *end = NULL;
        limit = rc > 0 && len && len < 7 ? strtol(buf, &end, 10) : -1;
        if (!end || *end || limit < OBJECTS_LIMIT_MIN || limit > OBJECTS_LIMIT_MAX) {
            ekv_reply_error(req, EKV_EDO_BAD_LIST,
                            "list objects: limit must be an integer from %d to %d",
                            OBJECTS_LIMIT_MIN, OBJECTS_LIMIT_MAX);
            return;
        }
    }
    objects_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    rc = ekv_query_get(&q, "cursor", buf, sizeof(buf), &len);
    if (rc && len) {
        size_t n = 0;
        if (rc < 0 || len != EKV_DO_ID_HEX_LEN ||
            ekv_hex_decode(buf, len, j->after, EKV_DO_OBJID_LEN, &n) || n != EKV_DO_OBJID_LEN) {
            free(j);
            ekv_reply_error(req, EKV_EDO_BAD_LIST, "list objects: invalid cursor");
            return;
        }
        j->has_after = 1;
    }
    j->ids = malloc((size_t)limit * sizeof(*j->ids));
    if (!j->ids) {
        free(j);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    j->req = req;
    j->store = c->app->store;
    j->limit = (size_t)limit;
    memcpy(j->dons, ns->dons, EKV_NSID_LEN);
    j->job.work = objects_work;
    j->job.done = objects_done;
    req->state = j;
    req->cleanup = objects_job_free;
    ekv_app_read_or_reply(c->app, req, &j->job);
}

void ekv_h_do_object_id(ekv_call_t *c)
{
    do_nsent_t *ns = ekv__do_ns_or_reply(c);
    if (!ns)
        return;
    ekv_req_t *req = c->req;
    json_error_t jerr;
    json_t *body = json_loadb(req->body.data ? req->body.data : "{}",
                              req->body.len ? req->body.len : 2, 0, &jerr);
    if (!body || !json_is_object(body)) {
        json_decref(body);
        ekv_reply_error(req, EKV_EDO_BAD_BODY,
                        "object id: body must be {\"name\": \"...\"} (an id from a name) or {} "
                        "(a new unique id)");
        return;
    }
    json_t *name = json_object_get(body, "name");
    uint8_t id[EKV_DO_OBJID_LEN];
    char hex[EKV_DO_ID_HEX_LEN + 1];
    if (name && !json_is_null(name)) {
        if (!json_is_string(name) || json_string_length(name) > DO_MAX_NAME_LEN) {
            json_decref(body);
            ekv_reply_error(req, EKV_EDO_BAD_BODY,
                            "object id: 'name' must be a string of at most %d bytes",
                            DO_MAX_NAME_LEN);
            return;
        }
        ekv_do_id_from_name(ns->ns.key, json_string_value(name), json_string_length(name), id);
        ekv_do_id_hex(id, hex);
        ekv_reply_ok(req, json_pack("{s:s, s:O}", "id", hex, "name", name), NULL);
    } else {
        if (ekv_do_id_new_unique(ns->ns.key, id)) {
            json_decref(body);
            ekv_reply_error(req, EKV_EINTERNAL, "object id: no randomness");
            return;
        }
        ekv_do_id_hex(id, hex);
        ekv_reply_ok(req, json_pack("{s:s}", "id", hex), NULL);
    }
    json_decref(body);
}
