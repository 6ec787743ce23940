/*
 * registry.c - Durable Object namespaces in memory on the owner, and their endpoints:
 * Cloudflare's list and get, edgekv's create, update and delete (docs/API.md).
 *
 * The registry is loaded from the store at start and changed only by committed writes: a
 * create is inserted as `pending` when it is submitted (its name is taken, it is not
 * visible) and becomes visible when durable; a delete marks the namespace `deleting` at
 * submit (every later call gets 404) and removes it when durable. Writes of an object
 * submitted before the delete are committed before it (the committer is FIFO), so the
 * delete's range deletion covers them.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/do/do_int.h"
#include "server/api/do/ids.h"
#include "server/api/paging.h"
#include "server/http/reply.h"
#include "server/http/urlcodec.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- lookups */

do_nsent_t *ekv__do_ns_by_dons(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN])
{
    return ekv_bytemap_get(&d->nss, dons, EKV_NSID_LEN);
}

/* hex (any case) -> dons; 0 or -1. */
static int parse_dons(const char *id, size_t len, uint8_t dons[EKV_NSID_LEN])
{
    size_t n = 0;
    return len == EKV_ID_HEX_LEN && ekv_hex_decode(id, len, dons, EKV_NSID_LEN, &n) == 0 &&
                   n == EKV_NSID_LEN
               ? 0
               : -1;
}

do_nsent_t *ekv__do_ns_find(ekv_do_t *d, const char *account_id, const char *id, size_t id_len)
{
    uint8_t dons[EKV_NSID_LEN];
    if (parse_dons(id, id_len, dons))
        return NULL;
    do_nsent_t *e = ekv__do_ns_by_dons(d, dons);
    if (!e || e->pending || e->deleting || strcmp(e->ns.account_id, account_id) != 0)
        return NULL;
    return e;
}

do_nsent_t *ekv__do_ns_or_reply(ekv_call_t *c)
{
    const ekv_slice_t *p = &c->params.v[1];
    do_nsent_t *e = c->app->dos ? ekv__do_ns_find(c->app->dos, c->account_id, p->p, p->n) : NULL;
    if (!e)
        ekv_reply_error(c->req, EKV_EDO_NS_NOT_FOUND,
                        "Durable Object namespace ID '%.*s' not found.",
                        (int)(p->n > 64 ? 64 : p->n), p->p);
    return e;
}

/* ---------------------------------------------------------------- load */

static void on_alarm(void *ctx, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                     size_t name_len);

static void on_ns(void *ctx, const ekv_do_ns_t *ns)
{
    ekv_do_t *d = ctx;
    do_nsent_t *e = calloc(1, sizeof(*e));
    if (!e || parse_dons(ns->id, strlen(ns->id), e->dons) ||
        ekv_bytemap_put(&d->nss, e->dons, EKV_NSID_LEN, e)) {
        ekv_log_error("DO namespace not loaded", "id=%s", ns->id);
        free(e);
        return;
    }
    e->ns = *ns;
}

void ekv_do_ns_upsert(ekv_do_t *d, const ekv_do_ns_t *ns)
{
    uint8_t dons[EKV_NSID_LEN];
    if (parse_dons(ns->id, strlen(ns->id), dons))
        return;
    do_nsent_t *e = ekv__do_ns_by_dons(d, dons);
    if (e) {
        e->ns = *ns;
        return;
    }
    on_ns(d, ns);
}

int ekv_do_ns_live(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN])
{
    const do_nsent_t *e = ekv__do_ns_by_dons(d, dons);
    return e && !e->pending && !e->deleting;
}

void ekv_do_ns_remove(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN])
{
    do_nsent_t *e = ekv_bytemap_del(&d->nss, dons, EKV_NSID_LEN);
    if (!e)
        return;
    free(e);
    ekv__do_ns_dropped(d, dons);
}

void ekv_do_alarm_load(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN],
                       const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                       size_t name_len)
{
    /* the stored alarm is the truth: an object still in memory from before its partition
     * left has only writes in flight that carry the old epoch (they will be fenced) */
    on_alarm(d, dons, objid, ms, name, name_len);
}

static void on_alarm(void *ctx, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                     size_t name_len)
{
    ekv_do_t *d = ctx;
    if (!ekv__do_ns_by_dons(d, dons))
        return; /* a stale entry of a deleted namespace cannot exist; be safe */
    uint8_t key[DO_OBJ_KEY_LEN];
    memcpy(key, dons, EKV_NSID_LEN);
    memcpy(key + EKV_NSID_LEN, objid, EKV_DO_OBJID_LEN);
    if (!ekv__do_here(d, key))
        return; /* another owner's */
    do_obj_t *o = ekv__do_obj_get(d, dons, objid);
    if (!o) {
        ekv_log_error("DO alarm not loaded (out of memory)", "ms=%lld", (long long)ms);
        return;
    }
    o->alarm_ms = o->dur_ms = ms;
    free(o->alarm_name);
    free(o->dur_name);
    o->alarm_name = name_len ? ekv_memdup_z(name, name_len) : NULL;
    o->dur_name = name_len ? ekv_memdup_z(name, name_len) : NULL;
    ekv__do_alarm_schedule(o);
}

int ekv__do_load(ekv_do_t *d)
{
    ekv_do_visitor_t v = {.ctx = d, .on_ns = on_ns, .on_alarm = on_alarm};
    int rc = ekv_store_do_load(d->app->store, &v);
    ekv_log_info("durable objects loaded", "namespaces=%zu alarms=%zu", ekv_bytemap_count(&d->nss),
                 d->nheap);
    return rc;
}

static void free_nsent(void *p)
{
    free(p);
}

void ekv__do_registry_free(ekv_do_t *d)
{
    ekv_bytemap_deinit(&d->nss, free_nsent);
}

/* ---------------------------------------------------------------- JSON */

static json_t *ns_json(const ekv_do_ns_t *ns)
{
    return json_pack("{s:s, s:s, s:o, s:s, s:b}", "id", ns->id, "name", ns->name, "script",
                     ns->script[0] ? json_string(ns->script) : json_null(), "class", ns->class_name,
                     "use_sqlite", ns->use_sqlite);
}

static int cmp_ns(const void *a, const void *b)
{
    const do_nsent_t *x = *(const do_nsent_t *const *)a, *y = *(const do_nsent_t *const *)b;
    int c = strcmp(x->ns.name, y->ns.name);
    return c ? c : strcmp(x->ns.id, y->ns.id);
}

/* The account's visible namespaces, sorted by name then id. *out malloc'd. Count or -1. */
static long account_ns(ekv_do_t *d, const char *account_id, do_nsent_t ***out)
{
    size_t cap = ekv_bytemap_count(&d->nss), n = 0;
    do_nsent_t **v = malloc((cap ? cap : 1) * sizeof(*v));
    if (!v)
        return -1;
    ekv_bytemap_iter_t it;
    void *val;
    ekv_bytemap_iter_init(&it, &d->nss);
    while (ekv_bytemap_iter_next(&it, NULL, NULL, &val)) {
        do_nsent_t *e = val;
        if (strcmp(e->ns.account_id, account_id) != 0 || e->deleting || e->pending)
            continue;
        v[n++] = e;
    }
    qsort(v, n, sizeof(*v), cmp_ns);
    *out = v;
    return (long)n;
}

/* ---------------------------------------------------------------- list, get */

void ekv_h_do_ns_list(ekv_call_t *c)
{
    ekv_req_t *req = c->req;
    ekv_query_t q;
    long long page, per_page;
    if (ekv_query_parse(req->query, req->query_len, &q)) {
        ekv_reply_error(req, EKV_EBAD_REQUEST, "list namespaces: 'too many query parameters'");
        return;
    }
    if (ekv_page_args_or_reply(req, &q, 1000, &page, &per_page))
        return;
    do_nsent_t **all = NULL;
    long n = c->app->dos ? account_ns(c->app->dos, c->account_id, &all) : 0;
    if (n < 0) {
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    json_t *arr = json_array();
    long long start = (page - 1) * per_page, count = 0;
    for (long long i = start; i < n && i < start + per_page; i++, count++)
        json_array_append_new(arr, ns_json(&all[i]->ns));
    free(all);
    ekv_reply_ok(req, arr, ekv_page_info(page, per_page, count, n));
}

void ekv_h_do_ns_get(ekv_call_t *c)
{
    do_nsent_t *e = ekv__do_ns_or_reply(c);
    if (e)
        ekv_reply_ok(c->req, ns_json(&e->ns), NULL);
}

/* ---------------------------------------------------------------- writes */

typedef struct {
    ekv_write_t w;
    ekv_do_ns_t ns;
    ekv_do_t *d;
    ekv_req_t *req;
    do_nsent_t *ent; /* create: the pending entry */
} ns_write_t;

static void ns_write_free(ekv_req_t *req)
{
    free(req->state);
    req->state = NULL;
}

static ns_write_t *ns_write_new(ekv_call_t *c, ekv_op_type_t type, ekv_job_fn done)
{
    ns_write_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    j->d = c->app->dos;
    j->req = c->req;
    j->w.type = type;
    j->w.job.done = done;
    j->w.do_ns = &j->ns;
    c->req->state = j;
    c->req->cleanup = ns_write_free;
    return j;
}

/* A string member of at most max bytes; 1 set, 0 absent/null (when null_ok), -1 bad. */
static int str_member(json_t *o, const char *name, char *out, size_t cap, size_t max, int null_ok)
{
    json_t *v = json_object_get(o, name);
    if (!v || (null_ok && json_is_null(v)))
        return 0;
    if (!json_is_string(v))
        return -1;
    size_t n = json_string_length(v);
    if (n > max || n >= cap || memchr(json_string_value(v), 0, n))
        return -1;
    memcpy(out, json_string_value(v), n);
    out[n] = '\0';
    return 1;
}

/* Parse and check a create/update body into ns (fields present override). 0 or -1 after
 * answering. */
static int ns_body_or_reply(ekv_call_t *c, ekv_do_ns_t *ns, int create)
{
    ekv_req_t *req = c->req;
    const char *op = create ? "create namespace" : "update namespace";
    json_error_t jerr;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, &jerr);
    if (!body || !json_is_object(body)) {
        ekv_reply_error(req, EKV_EDO_BAD_BODY, "%s: body must be a JSON object", op);
        json_decref(body);
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach(body, key, val)
    {
        if (strcmp(key, "name") && strcmp(key, "class") && strcmp(key, "script") &&
            strcmp(key, "use_sqlite") && strcmp(key, "id")) {
            ekv_reply_error(req, EKV_EDO_BAD_BODY, "%s: unknown field '%s'", op, key);
            json_decref(body);
            return -1;
        }
    }
    int rc = str_member(body, "name", ns->name, sizeof(ns->name), 512, 0);
    if (rc < 0 || (create && rc == 0) || (rc > 0 && !ns->name[0])) {
        ekv_reply_error(req, EKV_EDO_BAD_BODY, "%s: 'name' must be a string of 1 to 512 bytes", op);
        json_decref(body);
        return -1;
    }
    rc = str_member(body, "class", ns->class_name, sizeof(ns->class_name), 512, 0);
    if (rc < 0 || (create && rc == 0) || (rc > 0 && !ns->class_name[0])) {
        ekv_reply_error(req, EKV_EDO_BAD_BODY, "%s: 'class' must be a string of 1 to 512 bytes",
                        op);
        json_decref(body);
        return -1;
    }
    json_t *script = json_object_get(body, "script");
    if (script && json_is_null(script)) {
        ns->script[0] = '\0';
    } else if (script) {
        rc = str_member(body, "script", ns->script, sizeof(ns->script), 1024, 0);
        ekv_http_url_t u;
        int urc = rc > 0 && ns->script[0] ? ekv_http_url_parse(ns->script, &u) : 0;
        if (rc < 0 || urc) {
            ekv_reply_error(req, EKV_EDO_BAD_BODY,
                            "%s: 'script' must be an http:// URL of at most 1024 bytes "
                            "(the service that runs the objects' code)%s",
                            op,
                            urc == EKV_EHTTP_HTTPS_UNSUPPORTED ? "; https is not supported" : "");
            json_decref(body);
            return -1;
        }
        /* the objects' paths are appended: keep the base without a trailing '/' */
        size_t sl = strlen(ns->script);
        while (sl && ns->script[sl - 1] == '/')
            ns->script[--sl] = '\0';
    }
    json_t *sq = json_object_get(body, "use_sqlite");
    if (sq && !json_is_boolean(sq)) {
        ekv_reply_error(req, EKV_EDO_BAD_BODY, "%s: 'use_sqlite' must be a boolean", op);
        json_decref(body);
        return -1;
    }
    if (sq && create)
        ns->use_sqlite = json_is_true(sq);
    else if (sq && json_is_true(sq) != (ns->use_sqlite != 0)) {
        ekv_reply_error(req, EKV_EDO_BAD_BODY,
                        "%s: 'use_sqlite' cannot be changed (the storage backend of a class is "
                        "chosen when it is created)",
                        op);
        json_decref(body);
        return -1;
    }
    json_decref(body);
    return 0;
}

/* The account's namespaces, pending ones included (the limit counts them), and whether one
 * other than `self` (NULL: none) is named `name`. -1 on ENOMEM. */
static long name_taken(ekv_do_t *d, const char *account_id, const char *name, const char *self,
                       int *taken)
{
    *taken = 0;
    long n = 0;
    ekv_bytemap_iter_t it;
    void *val;
    ekv_bytemap_iter_init(&it, &d->nss);
    while (ekv_bytemap_iter_next(&it, NULL, NULL, &val)) {
        const do_nsent_t *e = val;
        if (e->deleting || strcmp(e->ns.account_id, account_id) != 0)
            continue;
        n++;
        if (!strcmp(e->ns.name, name) && (!self || strcmp(e->ns.id, self)))
            *taken = 1;
    }
    return n;
}

static int runtime_or_reply(ekv_call_t *c)
{
    if (c->app->dos)
        return 0;
    ekv_reply_busy_msg(c->req, EKV_EBUSY, "Durable Objects are not served by this node now");
    return -1;
}

static void reply_commit_error(ns_write_t *j)
{
    ekv_log_warn("DO namespace write failed", "id=%s err=%s", j->ns.id, ekv_err_name(j->w.status));
    if (j->w.status == EKV_EBUSY || j->w.status == EKV_ESHUTDOWN)
        ekv_reply_busy(j->req, j->w.status);
    else
        ekv_reply_error(j->req, j->w.status, NULL);
}

static void create_done(ekv_job_t *job)
{
    ns_write_t *j = (ns_write_t *)(void *)job;
    do_nsent_t *e = j->ent;
    if (j->w.status) {
        ekv_bytemap_del(&j->d->nss, e->dons, EKV_NSID_LEN);
        free(e);
        reply_commit_error(j);
        return;
    }
    e->pending = 0;
    ekv_log_info("DO namespace created", "id=%s account_id=%s name=\"%s\" class=\"%s\"", e->ns.id,
                 e->ns.account_id, e->ns.name, e->ns.class_name);
    ekv_reply_ok(j->req, ns_json(&e->ns), NULL);
}

void ekv_h_do_ns_create(ekv_call_t *c)
{
    if (runtime_or_reply(c))
        return;
    ekv_do_t *d = c->app->dos;
    ekv_do_ns_t ns;
    memset(&ns, 0, sizeof(ns));
    ns.use_sqlite = 1; /* Cloudflare's default for new classes */
    if (ns_body_or_reply(c, &ns, 1))
        return;
    int taken;
    long count = name_taken(d, c->account_id, ns.name, NULL, &taken);
    if (taken) {
        ekv_reply_error(c->req, EKV_EDO_NS_EXISTS,
                        "create namespace: a Durable Object namespace named '%s' already exists "
                        "in this account",
                        ns.name);
        return;
    }
    if (count >= DO_MAX_NS_PER_ACCOUNT) {
        ekv_reply_error(c->req, EKV_EDO_TOO_MANY_NS,
                        "create namespace: an account holds at most %d Durable Object "
                        "namespaces",
                        DO_MAX_NS_PER_ACCOUNT);
        return;
    }
    do_nsent_t *e = calloc(1, sizeof(*e));
    if (!e) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    do { /* a random id that is not taken (and never all 0xff) */
        if (RAND_bytes(e->dons, EKV_NSID_LEN) != 1 || RAND_bytes(ns.key, EKV_DO_NSKEY_LEN) != 1) {
            free(e);
            ekv_reply_error(c->req, EKV_EINTERNAL, "create namespace: no randomness");
            return;
        }
    } while (ekv__do_ns_by_dons(d, e->dons) || e->dons[0] == 0xff);
    ekv_hex_encode(e->dons, EKV_NSID_LEN, ns.id);
    snprintf(ns.account_id, sizeof(ns.account_id), "%s", c->account_id);
    ns.created_ms = ekv_clock_now_ms();
    e->ns = ns;
    e->pending = 1;
    ns_write_t *j = ns_write_new(c, EKV_OP_DO_NS_PUT, create_done);
    if (!j || ekv_bytemap_put(&d->nss, e->dons, EKV_NSID_LEN, e)) {
        if (j)
            ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        free(e);
        return;
    }
    j->ns = ns;
    j->ent = e;
    if (ekv_app_write_or_reply(c->app, c->req, &j->w)) {
        ekv_bytemap_del(&d->nss, e->dons, EKV_NSID_LEN);
        free(e);
    }
}

static void update_done(ekv_job_t *job)
{
    ns_write_t *j = (ns_write_t *)(void *)job;
    if (j->w.status) {
        reply_commit_error(j);
        return;
    }
    uint8_t dons[EKV_NSID_LEN];
    size_t n;
    ekv_hex_decode(j->ns.id, EKV_ID_HEX_LEN, dons, EKV_NSID_LEN, &n);
    do_nsent_t *e = ekv__do_ns_by_dons(j->d, dons);
    if (e && !e->deleting)
        e->ns = j->ns;
    ekv_reply_ok(j->req, ns_json(&j->ns), NULL);
}

void ekv_h_do_ns_update(ekv_call_t *c)
{
    if (runtime_or_reply(c))
        return;
    do_nsent_t *e = ekv__do_ns_or_reply(c);
    if (!e)
        return;
    ekv_do_ns_t ns = e->ns;
    if (ns_body_or_reply(c, &ns, 0))
        return;
    int taken;
    name_taken(c->app->dos, c->account_id, ns.name, ns.id, &taken);
    if (taken) {
        ekv_reply_error(c->req, EKV_EDO_NS_EXISTS,
                        "update namespace: a Durable Object namespace named '%s' already exists "
                        "in this account",
                        ns.name);
        return;
    }
    ns_write_t *j = ns_write_new(c, EKV_OP_DO_NS_PUT, update_done);
    if (!j)
        return;
    j->ns = ns;
    ekv_app_write_or_reply(c->app, c->req, &j->w);
}

static void delete_done(ekv_job_t *job)
{
    ns_write_t *j = (ns_write_t *)(void *)job;
    do_nsent_t *e = j->ent;
    if (j->w.status) {
        e->deleting = 0;
        reply_commit_error(j);
        return;
    }
    ekv_log_info("DO namespace deleted", "id=%s account_id=%s name=\"%s\"", e->ns.id,
                 e->ns.account_id, e->ns.name);
    ekv__do_ns_dropped(j->d, e->dons);
    ekv_bytemap_del(&j->d->nss, e->dons, EKV_NSID_LEN);
    free(e);
    ekv_reply_ok_null(j->req);
}

void ekv_h_do_ns_delete(ekv_call_t *c)
{
    if (runtime_or_reply(c))
        return;
    do_nsent_t *e = ekv__do_ns_or_reply(c);
    if (!e)
        return;
    ns_write_t *j = ns_write_new(c, EKV_OP_DO_NS_DELETE, delete_done);
    if (!j)
        return;
    j->ns = e->ns;
    j->ent = e;
    e->deleting = 1;
    if (ekv_app_write_or_reply(c->app, c->req, &j->w))
        e->deleting = 0;
}
