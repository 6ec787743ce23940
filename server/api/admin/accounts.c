/*
 * accounts.c - what wrangler and the SDK touch around KV (accounts, memberships, token
 * verify) and the admin token API (our extension, shaped like Cloudflare's account tokens).
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/admin/admin.h"
#include "server/api/auth.h"
#include "server/api/perms.h"
#include "server/http/reply.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void iso_time(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *page_info(size_t n)
{
    return json_pack("{s:i, s:I, s:I, s:I, s:i}", "page", 1, "per_page", (json_int_t)(n ? n : 20),
                     "count", (json_int_t)n, "total_count", (json_int_t)n, "total_pages",
                     n ? 1 : 0);
}

void ekv_h_accounts_list(ekv_call_t *c)
{
    const ekv_account_t *a = ekv_catalog_find_account(c->app->catalog, c->account_id);
    json_t *arr = json_array();
    if (a) {
        char when[32];
        iso_time(a->created_ms, when);
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:s, s:{}, s:s}", "id", a->id, "name", a->name,
                                        "type", "standard", "settings", "created_on", when));
    }
    ekv_reply_ok(c->req, arr, page_info(json_array_size(arr)));
}

void ekv_h_memberships(ekv_call_t *c)
{
    const ekv_account_t *a = ekv_catalog_find_account(c->app->catalog, c->account_id);
    json_t *arr = json_array();
    if (a)
        json_array_append_new(arr,
                              json_pack("{s:s, s:s, s:{s:s, s:s}, s:[s], s:{}}", "id", c->token->id,
                                        "status", "accepted", "account", "id", a->id, "name",
                                        a->name, "roles", "Administrator", "permissions"));
    ekv_reply_ok(c->req, arr, page_info(json_array_size(arr)));
}

void ekv_h_token_verify(ekv_call_t *c)
{
    ekv_reply_ok(c->req, json_pack("{s:s, s:s}", "id", c->token->id, "status", "active"), NULL);
}

static json_t *token_json(const ekv_token_t *t)
{
    char when[32];
    iso_time(t->created_ms, when);
    json_t *p = json_array();
    uint32_t bit;
    const char *name;
    for (size_t i = 0; (name = ekv_perm_name_at(i, &bit)) != NULL; i++)
        if (t->perms & bit)
            json_array_append_new(p, json_string(name));
    return json_pack("{s:s, s:s, s:s, s:o, s:s}", "id", t->id, "name", t->name, "status", "active",
                     "permissions", p, "created_on", when);
}

void ekv_h_tokens_list(ekv_call_t *c)
{
    json_t *arr = json_array();
    size_t n = ekv_catalog_token_count(c->app->catalog);
    for (size_t i = 0; i < n; i++) {
        const ekv_token_t *t = ekv_catalog_token_at(c->app->catalog, i);
        if (strcmp(t->account_id, c->account_id) == 0)
            json_array_append_new(arr, token_json(t));
    }
    ekv_reply_ok(c->req, arr, page_info(json_array_size(arr)));
}

typedef struct {
    ekv_write_t w;
    ekv_app_t *app;
    ekv_req_t *req;
    char secret[41];
} token_write_t;

static void token_write_free(ekv_req_t *req)
{
    token_write_t *s = req->state;
    if (s)
        memset(s->secret, 0, sizeof(s->secret));
    free(s);
    req->state = NULL;
}

static token_write_t *token_write_new(ekv_call_t *c, ekv_op_type_t type, ekv_job_fn done)
{
    token_write_t *s = calloc(1, sizeof(*s));
    if (!s) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    s->app = c->app;
    s->req = c->req;
    s->w.type = type;
    s->w.job.done = done;
    s->w.udata = s;
    c->req->state = s;
    c->req->cleanup = token_write_free;
    return s;
}

static void token_create_done(ekv_job_t *job)
{
    token_write_t *s = ((ekv_write_t *)job)->udata;
    if (s->w.status) {
        ekv_reply_error(s->req, s->w.status, NULL);
        return;
    }
    ekv_catalog_put_token(s->app->catalog, &s->w.token);
    ekv_log_info("token created", "token_id=%s account_id=%s perms=%u", s->w.token.id,
                 s->w.token.account_id, s->w.token.perms);
    json_t *res = token_json(&s->w.token);
    json_object_set_new(res, "value", json_string(s->secret));
    ekv_reply_ok(s->req, res, NULL);
}

void ekv_h_tokens_create(ekv_call_t *c)
{
    ekv_req_t *req = c->req;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
    json_t *name = json_is_object(body) ? json_object_get(body, "name") : NULL;
    json_t *perms = json_is_object(body) ? json_object_get(body, "permissions") : NULL;
    uint32_t bits = 0;
    size_t i;
    json_t *p;
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= sizeof(((ekv_token_t *)0)->name) || !json_is_array(perms)) {
        json_decref(body);
        ekv_reply_error(req, EKV_EBAD_REQUEST,
                        "create token: 'body must be {\"name\": \"1..127 chars\", "
                        "\"permissions\": [\"kv:read\"|\"kv:write\"|\"admin\", ...]}'");
        return;
    }
    json_array_foreach(perms, i, p)
    {
        uint32_t b =
            json_is_string(p) ? ekv_perm_from_name(json_string_value(p), json_string_length(p)) : 0;
        if (!b) {
            json_decref(body);
            ekv_reply_error(req, EKV_EBAD_REQUEST, "create token: 'unknown permission'");
            return;
        }
        bits |= b;
    }
    if (!bits) {
        json_decref(body);
        ekv_reply_error(req, EKV_EBAD_REQUEST, "create token: 'permissions must not be empty'");
        return;
    }
    token_write_t *s = token_write_new(c, EKV_OP_TOKEN_CREATE, token_create_done);
    if (!s) {
        json_decref(body);
        return;
    }
    snprintf(s->w.token.name, sizeof(s->w.token.name), "%s", json_string_value(name));
    json_decref(body);
    if (ekv_random_token(s->secret) || ekv_random_id(s->w.token.id)) {
        ekv_reply_error(req, EKV_EINTERNAL, NULL);
        return;
    }
    ekv_token_hash(s->secret, strlen(s->secret), s->w.token.hash);
    snprintf(s->w.token.account_id, sizeof(s->w.token.account_id), "%s", c->account_id);
    s->w.token.perms = bits;
    s->w.token.created_ms = ekv_clock_now_ms();
    ekv_app_write_or_reply(c->app, req, &s->w);
}

static void token_revoke_done(ekv_job_t *job)
{
    token_write_t *s = ((ekv_write_t *)job)->udata;
    if (s->w.status) {
        ekv_reply_error(s->req, s->w.status, NULL);
        return;
    }
    ekv_catalog_remove_token(s->app->catalog, s->w.token.hash);
    ekv_log_info("token revoked", "token_id=%s account_id=%s", s->w.token.id,
                 s->w.token.account_id);
    ekv_reply_ok(s->req, json_pack("{s:s}", "id", s->w.token.id), NULL);
}

void ekv_h_tokens_revoke(ekv_call_t *c)
{
    char id[EKV_ID_HEX_LEN + 1];
    const ekv_slice_t *p = &c->params.v[1];
    if (p->n != EKV_ID_HEX_LEN) {
        ekv_reply_error(c->req, EKV_ETOKEN_NOT_FOUND, NULL);
        return;
    }
    memcpy(id, p->p, p->n);
    id[p->n] = '\0';
    const ekv_token_t *t = ekv_catalog_find_token_by_id(c->app->catalog, c->account_id, id);
    if (!t) {
        ekv_reply_error(c->req, EKV_ETOKEN_NOT_FOUND, NULL);
        return;
    }
    token_write_t *s = token_write_new(c, EKV_OP_TOKEN_REVOKE, token_revoke_done);
    if (!s)
        return;
    s->w.token = *t;
    ekv_app_write_or_reply(c->app, c->req, &s->w);
}

/* ---------------------------------------------------------------- operator: accounts */

static json_t *account_json(const ekv_account_t *a)
{
    char when[32];
    iso_time(a->created_ms, when);
    return json_pack("{s:s, s:s, s:s}", "id", a->id, "name", a->name, "created_on", when);
}

/* GET /_edgekv/accounts (operator): every account of the node. */
void ekv_h_op_accounts_list(ekv_call_t *c)
{
    json_t *arr = json_array();
    size_t n = ekv_catalog_account_count(c->app->catalog);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, account_json(ekv_catalog_account_at(c->app->catalog, i)));
    ekv_reply_ok(c->req, arr, page_info(json_array_size(arr)));
}

/* POST /_edgekv/accounts (operator): two writes, the account and then its first admin token
 * ("admin"), whose secret is in the reply only. */
typedef struct {
    ekv_write_t w;
    ekv_app_t *app;
    ekv_req_t *req;
    ekv_account_t account;
    char secret[41];
} account_write_t;

static void account_write_free(ekv_req_t *req)
{
    account_write_t *s = req->state;
    if (s)
        memset(s->secret, 0, sizeof(s->secret));
    free(s);
    req->state = NULL;
}

static void account_token_done(ekv_job_t *job)
{
    account_write_t *s = ((ekv_write_t *)job)->udata;
    if (s->w.status) {
        ekv_log_error("account created without its admin token", "account_id=%s err=%s",
                      s->account.id, ekv_err_name(s->w.status));
        ekv_reply_error(s->req, s->w.status, NULL);
        return;
    }
    ekv_catalog_put_token(s->app->catalog, &s->w.token);
    ekv_log_info("admin token created", "token_id=%s account_id=%s", s->w.token.id, s->account.id);
    json_t *res = account_json(&s->account);
    json_object_set_new(res, "admin_token",
                        json_pack("{s:s, s:s}", "id", s->w.token.id, "value", s->secret));
    ekv_reply_ok(s->req, res, NULL);
}

static void account_create_done(ekv_job_t *job)
{
    account_write_t *s = ((ekv_write_t *)job)->udata;
    if (s->w.status) {
        ekv_reply_error(s->req, s->w.status, NULL);
        return;
    }
    s->account = s->w.account;
    ekv_catalog_put_account(s->app->catalog, &s->account);
    ekv_log_info("account created", "account_id=%s name=\"%s\"", s->account.id, s->account.name);
    memset(&s->w, 0, sizeof(s->w));
    s->w.type = EKV_OP_TOKEN_CREATE;
    s->w.job.done = account_token_done;
    s->w.udata = s;
    if (ekv_random_token(s->secret) || ekv_random_id(s->w.token.id)) {
        ekv_reply_error(s->req, EKV_EINTERNAL, NULL);
        return;
    }
    ekv_token_hash(s->secret, strlen(s->secret), s->w.token.hash);
    snprintf(s->w.token.account_id, sizeof(s->w.token.account_id), "%s", s->account.id);
    snprintf(s->w.token.name, sizeof(s->w.token.name), "admin");
    s->w.token.perms = EKV_PERM_ADMIN | EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
    s->w.token.created_ms = ekv_clock_now_ms();
    ekv_app_write_or_reply(s->app, s->req, &s->w);
}

void ekv_h_op_accounts_create(ekv_call_t *c)
{
    ekv_req_t *req = c->req;
    json_t *body = json_loadb(req->body.data ? req->body.data : "", req->body.len, 0, NULL);
    json_t *name = json_is_object(body) ? json_object_get(body, "name") : NULL;
    if (!json_is_string(name) || json_string_length(name) == 0 ||
        json_string_length(name) >= sizeof(((ekv_account_t *)0)->name) ||
        memchr(json_string_value(name), '\0', json_string_length(name))) {
        json_decref(body);
        ekv_reply_error(req, EKV_EBAD_REQUEST,
                        "create account: 'body must be {\"name\": \"1..127 chars\"}'");
        return;
    }
    account_write_t *s = calloc(1, sizeof(*s));
    if (!s) {
        json_decref(body);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    s->app = c->app;
    s->req = req;
    s->w.type = EKV_OP_ACCOUNT_CREATE;
    s->w.job.done = account_create_done;
    s->w.udata = s;
    req->state = s;
    req->cleanup = account_write_free;
    snprintf(s->w.account.name, sizeof(s->w.account.name), "%s", json_string_value(name));
    json_decref(body);
    if (ekv_random_id(s->w.account.id)) {
        ekv_reply_error(req, EKV_EINTERNAL, NULL);
        return;
    }
    s->w.account.created_ms = ekv_clock_now_ms();
    ekv_app_write_or_reply(c->app, req, &s->w);
}
