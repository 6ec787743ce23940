/*
 * app.c - `edgekv serve` (standalone role): start-up, first-run bootstrap, request dispatch
 * (route -> auth -> account/namespace checks -> handler), metrics hooks, clean shutdown.
 */
#include "server/app.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/auth.h"
#include "server/edge.h"
#include "server/kv_validate.h"
#include "server/reply.h"

#include <errno.h>
#include <llhttp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- job submission */

int ekv_app_read_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_job_t *job)
{
    int rc = ekv_workq_submit(&app->readers, job);
    if (rc) {
        ekv_log_warn("reader queue full", "depth=%zu", ekv_workq_depth(&app->readers));
        ekv_reply_busy(req, rc);
    }
    return rc;
}

int ekv_app_write_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w)
{
    ekv_node_hold_write(app, req, w);
    int rc = ekv_store_write_submit(app->store, w);
    if (rc) {
        ekv_log_warn("commit queue full", "err=%s", ekv_err_name(rc));
        ekv_reply_busy(req, rc);
    }
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

static void reply_route_error(ekv_req_t *req, int rc)
{
    if (rc == EKV_EBAD_METHOD)
        ekv_reply_error(req, rc, "%s not supported for requested URI.", req->method_str);
    else
        ekv_reply_error(req, EKV_ENO_ROUTE,
                        "Could not route to %s, perhaps your object identifier is invalid?",
                        req->path);
}

/* Authentication, the URL's account must be the token's, permissions. Fills call->token and
 * call->account_id. 0, or -1 after answering. */
static int authorize_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_call_t *call)
{
    const ekv_route_t *r = call->route;
    if (r->flags & EKV_RT_NOAUTH)
        return 0;
    if (ekv_auth_or_reply(app->catalog, req, (r->flags & EKV_RT_VERIFY) != 0, &call->token))
        return -1;
    snprintf(call->account_id, sizeof(call->account_id), "%s", call->token->account_id);
    if (r->flags & EKV_RT_ACCOUNT) {
        const ekv_slice_t *a = &call->params.v[0];
        if (a->n != EKV_ID_HEX_LEN || memcmp(a->p, call->token->account_id, a->n) != 0) {
            ekv_reply_error(req, EKV_EAUTH, NULL);
            return -1;
        }
    }
    uint32_t perms = call->token->perms;
    if (perms & EKV_PERM_ADMIN)
        perms |= EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
    if ((r->flags & EKV_RT_ADMIN) && !(perms & EKV_PERM_ADMIN)) {
        ekv_reply_error(req, EKV_EAUTH, NULL);
        return -1;
    }
    if ((r->flags & EKV_RT_WRITE) && !(perms & EKV_PERM_KV_WRITE)) {
        ekv_reply_error(req, EKV_EAUTH_METHOD,
                        "%s method not allowed for the api_token authentication scheme",
                        req->method_str);
        return -1;
    }
    if ((r->flags & EKV_RT_READ) && !(perms & (EKV_PERM_KV_READ | EKV_PERM_KV_WRITE))) {
        ekv_reply_error(req, EKV_EAUTH, NULL);
        return -1;
    }
    return 0;
}

int ekv_app_on_headers(void *ctx, ekv_req_t *req)
{
    ekv_app_t *app = ctx;
    req->app = app;
    req->route_id = -1;
    req->route_rc = ekv_router_match(ekv_routes_router(), req->method, req->path, req->path_len,
                                     &req->route, &req->params);
    if (req->route_rc) {
        req->body_limit = 64 * 1024; /* errors are answered after the (small) body */
        return 0;
    }
    req->route_id = (int)(req->route - ekv_routes);
    req->body_limit = req->route->body_limit ? req->route->body_limit : 64 * 1024;
    if (ekv_node_gate_or_reply(app, req, req->route))
        return -1;
    if (req->has_body) {
        /* refuse before buffering up to 100 MB for a client that may not write at all */
        ekv_call_t call;
        memset(&call, 0, sizeof(call));
        call.route = req->route;
        call.params = req->params;
        if (authorize_or_reply(app, req, &call))
            return -1;
    }
    return 0;
}

void ekv_app_on_request(void *ctx, ekv_req_t *req)
{
    ekv_app_t *app = ctx;
    ekv_call_t call;
    memset(&call, 0, sizeof(call));
    call.app = app;
    call.req = req;
    if (req->route_rc) {
        reply_route_error(req, req->route_rc);
        return;
    }
    call.route = req->route;
    call.params = req->params;
    const ekv_route_t *r = call.route;
    if (ekv_node_gate_or_reply(app, req, r)) /* again: a promotion or fence may have happened */
        return;
    /* again at the end of the body: the token may have been revoked meanwhile */
    if (authorize_or_reply(app, req, &call))
        return;
    if (r->flags & EKV_RT_NS) {
        const ekv_slice_t *n = &call.params.v[1];
        char msg[160];
        char hex[EKV_ID_HEX_LEN + 1];
        if (ekv_kv_parse_nsid(n->p, n->n, call.nsid, msg, sizeof(msg))) {
            ekv_reply_error(req, EKV_EBAD_NS_ID, "%s", msg);
            return;
        }
        ekv_hex_encode(call.nsid, EKV_NSID_LEN, hex); /* canonical lowercase for the lookup */
        call.ns = ekv_catalog_find_ns(app->catalog, call.account_id, hex);
        if (!call.ns) {
            ekv_reply_error(req, EKV_ENS_NOT_FOUND, "%s: 'namespace not found'", ekv_route_op(r));
            return;
        }
    }
    if (app->node.role == EKV_ROLE_EDGE && !(r->flags & (EKV_RT_NOAUTH | EKV_RT_ANYROLE))) {
        ekv_edge_handle(&call);
        return;
    }
    ((ekv_handler_fn)r->handler)(&call);
}

void ekv_app_on_response(void *ctx, ekv_req_t *req, int status, size_t bytes_out)
{
    ekv_app_t *app = ctx;
    uint64_t dur = req->start_ns ? ekv_clock_mono_ns() - req->start_ns : 0;
    ekv_metrics_observe(app->metrics, req->route_id, status, dur, req->body.len, bytes_out);
    if (status >= 500 || ekv_log_enabled(EKV_LOG_DEBUG))
        ekv_log(status >= 500 ? EKV_LOG_WARN : EKV_LOG_DEBUG, "request",
                "method=%s path=\"%s\" status=%d dur_us=%llu", req->method_str,
                req->path ? req->path : "-", status, (unsigned long long)(dur / 1000));
}

/* ---------------------------------------------------------------- bootstrap */

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

static int is_hex32(const char *s)
{
    if (strlen(s) != EKV_ID_HEX_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    return 1;
}

/*
 * First start: create the account and an admin token and print them once. An operator may
 * preset both (EDGEKV_ACCOUNT_ID / EDGEKV_ROOT_TOKEN); a preset token is (re)created when
 * missing, so a container can always start with known credentials.
 */
static int bootstrap(ekv_app_t *app)
{
    ekv_config_t *cfg = app->cfg;
    ekv_write_t w;
    int printed_token = 0;
    char secret[513] = "";
    const ekv_account_t *acct = NULL;

    if (cfg->account_id[0]) {
        if (!is_hex32(cfg->account_id)) {
            ekv_log_error("account id must be 32 lowercase hex characters", "account_id=%s",
                          cfg->account_id);
            return -1;
        }
        acct = ekv_catalog_find_account(app->catalog, cfg->account_id);
    } else if (ekv_catalog_account_count(app->catalog) > 0) {
        acct = ekv_catalog_account_at(app->catalog, 0);
    }
    if (!acct) {
        memset(&w, 0, sizeof(w));
        w.type = EKV_OP_ACCOUNT_CREATE;
        if (cfg->account_id[0])
            snprintf(w.account.id, sizeof(w.account.id), "%s", cfg->account_id);
        else if (ekv_random_id(w.account.id))
            return -1;
        snprintf(w.account.name, sizeof(w.account.name), "default");
        w.account.created_ms = ekv_clock_now_ms();
        if (ekv_store_write_sync(app->store, &w)) {
            ekv_log_error("cannot create account", "err=%s", ekv_err_name(w.status));
            return -1;
        }
        ekv_catalog_put_account(app->catalog, &w.account);
        acct = ekv_catalog_find_account(app->catalog, w.account.id);
        ekv_log_info("account created", "account_id=%s", acct->id);
    }

    int need_token = 0;
    if (cfg->root_token[0]) {
        snprintf(secret, sizeof(secret), "%s", cfg->root_token);
        char hash[EKV_TOKEN_HASH_LEN + 1];
        ekv_token_hash(secret, strlen(secret), hash);
        need_token = ekv_catalog_find_token(app->catalog, hash) == NULL;
    } else if (ekv_catalog_token_count(app->catalog) == 0) {
        if (ekv_random_token(secret))
            return -1;
        need_token = 1;
        printed_token = 1;
    }
    if (need_token) {
        memset(&w, 0, sizeof(w));
        w.type = EKV_OP_TOKEN_CREATE;
        ekv_token_hash(secret, strlen(secret), w.token.hash);
        if (ekv_random_id(w.token.id))
            return -1;
        snprintf(w.token.account_id, sizeof(w.token.account_id), "%s", acct->id);
        snprintf(w.token.name, sizeof(w.token.name), "root");
        w.token.perms = EKV_PERM_ADMIN | EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
        w.token.created_ms = ekv_clock_now_ms();
        if (ekv_store_write_sync(app->store, &w)) {
            ekv_log_error("cannot create token", "err=%s", ekv_err_name(w.status));
            return -1;
        }
        ekv_catalog_put_token(app->catalog, &w.token);
        ekv_log_info("admin token created", "token_id=%s account_id=%s", w.token.id, acct->id);
    }
    if (printed_token) {
        const char *host = app->cfg->host;
        printf("\nedgekv: first start: created account \"%s\" and an admin API token.\n"
               "The token is shown only this once; keep it.\n\n"
               "  CLOUDFLARE_ACCOUNT_ID=%s\n"
               "  CLOUDFLARE_API_TOKEN=%s\n"
               "  CLOUDFLARE_API_BASE_URL=http://%s:%d/client/v4\n\n"
               "Try:\n"
               "  curl -H \"Authorization: Bearer %s\" \\\n"
               "    http://%s:%d/client/v4/accounts/%s/storage/kv/namespaces\n"
               "Or export the three variables above and use wrangler (kv ... --remote).\n\n",
               acct->name, acct->id, secret, host, ekv_http_server_port(app->http), secret, host,
               ekv_http_server_port(app->http), acct->id);
        fflush(stdout);
    }
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */

static void on_node_stopped(void *arg)
{
    ekv_app_t *app = arg;
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    ekv_doneq_close(&app->doneq);
}

static void on_http_stopped(void *arg)
{
    ekv_app_t *app = arg;
    ekv_log_info("connections drained", "%s", "");
    ekv_node_stop(app, on_node_stopped, app);
}

static void on_signal(uv_signal_t *h, int signum)
{
    ekv_app_t *app = h->data;
    if (app->stopping) {
        ekv_log_warn("second signal: exiting now", "signal=%d", signum);
        exit(1);
    }
    app->stopping = 1;
    ekv_log_info("shutting down", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    ekv_http_server_stop(app->http, on_http_stopped, app);
}

int ekv_app_run(ekv_config_t *cfg)
{
    ekv_app_t app_s, *app = &app_s;
    memset(app, 0, sizeof(*app));
    app->cfg = cfg;
    app->started_ms = ekv_clock_now_ms();
    ekv_log_level_t lvl;
    if (ekv_log_parse_level(cfg->log_level, &lvl) == 0)
        ekv_log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);

    char dbdir[4096];
    int edge = !strcmp(cfg->role, "edge"); /* no durable state at all */
    if (!edge && mkdir_p(cfg->data_dir)) {
        ekv_log_error("cannot create data dir", "dir=%s err=\"%s\"", cfg->data_dir,
                      strerror(errno));
        return 1;
    }
    snprintf(dbdir, sizeof(dbdir), "%s/db", cfg->data_dir);

    if (ekv_routes_init()) {
        ekv_log_error("route table does not compile", "%s", "");
        return 1;
    }
    app->loop = uv_default_loop();
    if (ekv_doneq_init(&app->doneq, app->loop) || ekv_node_early_init(app))
        return 1;
    ekv_store_opts_t so = {0};
    so.replica = !strcmp(cfg->role, "replica");
    so.on_commit = ekv_node_on_commit;
    so.on_commit_ctx = app;
    so.dir = dbdir;
    so.sync = strcmp(cfg->sync, "none") == 0 ? EKV_SYNC_NONE : EKV_SYNC_FSYNC;
    so.commit_max_queue = (size_t)cfg->commit_queue;
    so.log_retain_bytes = (uint64_t)cfg->log_retain_mb * 1024 * 1024;
    so.log_retain_ms = cfg->log_retain_hours * 3600 * 1000;
    so.doneq = &app->doneq;
    int rc = edge ? 0 : ekv_store_open(&app->store, &so);
    if (rc) {
        ekv_log_error("cannot open the database", "dir=%s err=%s (is another edgekv using it?)",
                      dbdir, ekv_err_name(rc));
        return 1;
    }
    app->catalog = ekv_catalog_new();
    app->cache = ekv_cache_new((size_t)cfg->cache_bytes, (size_t)cfg->cache_max_entry);
    const char **names = calloc(ekv_nroutes, sizeof(*names));
    for (size_t i = 0; names && i < ekv_nroutes; i++)
        names[i] = ekv_routes[i].name;
    app->metrics = ekv_metrics_new(ekv_nroutes, names);
    if (!app->catalog || !app->cache || !names || !app->metrics ||
        (!edge && ekv_catalog_load(app->catalog, app->store))) {
        ekv_log_error("start-up failed", "%s", "");
        return 1;
    }
    if (ekv_workq_init(&app->readers, "reader", (int)cfg->readers, (size_t)cfg->reader_queue,
                       &app->doneq))
        return 1;

    ekv_http_opts_t ho = {cfg->host,
                          cfg->port,
                          (int)cfg->max_connections,
                          (int)cfg->header_timeout_ms,
                          (int)cfg->idle_timeout_ms,
                          (size_t)cfg->body_memory_mb * 1024 * 1024};
    ekv_http_handler_t hh = {app, ekv_app_on_headers, ekv_app_on_request, ekv_app_on_response};
    if (ekv_http_server_start(&app->http, app->loop, &ho, &hh))
        return 1;
    if (so.replica || edge) {
        if (cfg->account_id[0] || cfg->root_token[0])
            ekv_log_info("account/token presets ignored on a replica",
                         "role=%s why=\"accounts and tokens are replicated from the primary\"",
                         cfg->role);
    } else if (bootstrap(app)) {
        return 1;
    }
    if (ekv_node_start(app))
        return 1;
    uv_signal_init(app->loop, &app->sigterm);
    uv_signal_init(app->loop, &app->sigint);
    app->sigterm.data = app->sigint.data = app;
    uv_signal_start(&app->sigterm, on_signal, SIGTERM);
    uv_signal_start(&app->sigint, on_signal, SIGINT);
    if (cfg->test_clock)
        ekv_log_warn("test clock enabled: POST /_edgekv/test/clock moves time", "%s", "");
    ekv_log_info("listening", "addr=%s:%d role=%s data_dir=%s sync=%s", cfg->host,
                 ekv_http_server_port(app->http), cfg->role, cfg->data_dir, cfg->sync);

    uv_run(app->loop, UV_RUN_DEFAULT);

    /* all connections are closed: no request waits for a job any more */
    ekv_node_free(app);
    ekv_workq_deinit(&app->readers);
    if (app->store)
        ekv_store_close(app->store);
    ekv_http_server_free(app->http);
    ekv_cache_free(app->cache);
    ekv_catalog_free(app->catalog);
    ekv_metrics_free(app->metrics);
    free(names);
    uv_loop_close(app->loop);
    ekv_log_info("stopped", "%s", "");
    return 0;
}
