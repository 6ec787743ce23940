/*
 * serve.c - `edgekv serve`: open the store, load the catalog, start the reader pool, the HTTP
 * server and the role (server/node/role.c), create first-run credentials, run the loop until
 * SIGTERM/SIGINT, then shut down cleanly: stop accepting, drain, stop replication, close the
 * store (every acknowledged write is already durable).
 */
#include "server/node/node.h"
#include "server/node/coord/coord.h"
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/sysmem.h"
#include "server/api/auth.h"
#include "server/api/do/do.h"
#include "server/api/perms.h"
#include "server/node/config.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* The process: the API's application state, the role's node state, signals. */
typedef struct {
    ekv_app_t app;
    ekv_node_t node;
    ekv_config_t *cfg;
    uv_signal_t sigterm, sigint;
    int stopping;
    int restart;   /* ekv_serve_restart: return EKV_SERVE_RESTART after the clean stop */
    int signalled; /* SIGTERM/SIGINT seen (a second one exits at once) */
} serve_t;

static serve_t *the_serve; /* for ekv_serve_restart */

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
static int bootstrap(ekv_app_t *app, const ekv_config_t *cfg)
{
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
        const char *host = cfg->host;
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

/*
 * The cluster operator credential: only its hash stays in memory. A node without a cluster
 * secret makes <data_dir>/operator.secret on first start and prints the token once.
 */
static int operator_init(ekv_app_t *app, const ekv_config_t *cfg)
{
    char tok[EKV_OPERATOR_TOKEN_LEN + 1];
    int created = 0;
    if (ekv_config_operator_token(cfg, 1, tok, &created)) {
        ekv_log_error("no operator token", "why=\"neither a cluster secret nor a usable "
                                           "operator.secret in the data dir\"");
        return -1;
    }
    ekv_token_hash(tok, strlen(tok), app->operator_hash);
    if (created) {
        printf("edgekv: created the cluster operator token (for /_edgekv/replication/checksum, "
               "promote and /_edgekv/accounts); keep it secret. `edgekv secret "
               "operator-token --data-dir %s` prints it again:\n\n"
               "  EDGEKV_OPERATOR_TOKEN=%s\n\n",
               cfg->data_dir, tok);
        fflush(stdout);
    }
    OPENSSL_cleanse(tok, sizeof(tok));
    ekv_log_info("operator credential ready", "from=%s",
                 cfg->cluster_secret_len ? "cluster_secret" : "data_dir/operator.secret");
    return 0;
}

/* ---------------------------------------------------------------- lifecycle */

/* --block-cache-mb, or a quarter of the memory this process may use (docs/STORAGE.md: the
 * block cache holds uncompressed blocks, so a data set of a few GB is served from memory
 * once read), never below 64 MiB. */
static size_t block_cache_bytes(const ekv_config_t *cfg)
{
    if (cfg->block_cache_mb > 0)
        return (size_t)cfg->block_cache_mb << 20;
    uint64_t quarter = ekv_sysmem_limit() / 4, floor = (uint64_t)64 << 20;
    return (size_t)(quarter > floor ? quarter : floor);
}

/*
 * Every client connection is a file descriptor: raise the soft RLIMIT_NOFILE to the hard
 * limit (nginx's worker_rlimit_nofile); --max-connections needs it plus FD_RESERVE (RocksDB
 * files, links, upstreams). When even that is too low, lower --max-connections to fit and say so
 * (redis does the same with maxclients): better refused connections than failing accept()s.
 */
#define FD_RESERVE        1024
#define FD_UNLIMITED_SOFT ((rlim_t)1 << 20) /* the soft limit asked for when the hard has none */

static void ensure_fd_limit(ekv_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = (rlim_t)cfg->max_connections + FD_RESERVE;
    /* up to the hard limit, not just to `want`: RocksDB keeps every SST file open
     * (max_open_files -1) and a large database has thousands of them */
    rlim_t cur = rl.rlim_max == RLIM_INFINITY
                     ? (want > FD_UNLIMITED_SOFT ? want : FD_UNLIMITED_SOFT)
                     : rl.rlim_max;
    if (rl.rlim_cur < cur) {
        struct rlimit nrl = {cur, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
            rl.rlim_cur = cur;
    }
    if (rl.rlim_cur < want) {
        int64_t fit = rl.rlim_cur > 2 * FD_RESERVE ? (int64_t)(rl.rlim_cur - FD_RESERVE)
                                                   : (int64_t)rl.rlim_cur / 2;
        ekv_log_warn("open-file limit too low for --max-connections",
                     "max_connections=%" PRId64 " nofile=%llu now_max_connections=%" PRId64,
                     cfg->max_connections, (unsigned long long)rl.rlim_cur, fit);
        cfg->max_connections = fit;
    }
}

static void on_node_stopped(void *arg)
{
    serve_t *sv = arg;
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    ekv_doneq_close(&sv->app.doneq);
}

static void on_do_stopped(void *arg)
{
    serve_t *sv = arg;
    ekv_node_stop(&sv->node, on_node_stopped, sv);
}

static void on_http_stopped(void *arg)
{
    serve_t *sv = arg;
    ekv_log_info("connections drained", "%s", "");
    if (sv->app.dos && ekv_do_serving(sv->app.dos))
        ekv_do_stop(sv->app.dos, on_do_stopped, sv);
    else
        on_do_stopped(sv);
}

static void on_left(void *arg);
static void begin_stop(serve_t *sv);

static void on_signal(uv_signal_t *h, int signum)
{
    serve_t *sv = h->data;
    if (sv->signalled) {
        ekv_log_warn("second signal: exiting now", "signal=%d", signum);
        exit(1);
    }
    sv->signalled = 1;
    if (sv->stopping) { /* a restart (step-down) is under way: it becomes a plain stop */
        sv->restart = 0;
        ekv_log_info("shutting down (instead of restarting)", "signal=%s",
                     signum == SIGTERM ? "SIGTERM" : "SIGINT");
        return;
    }
    sv->restart = 0; /* a signal during a restart: just stop */
    ekv_log_info("shutting down", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_stop(sv);
}

static void begin_stop(serve_t *sv)
{
    sv->stopping = 1;
    /* a Durable Object owner hands its partitions over first (at once, not after its lease) */
    ekv_node_do_leave(&sv->node, on_left, sv);
}

void ekv_serve_restart(const char *why)
{
    serve_t *sv = the_serve;
    if (!sv || sv->stopping)
        return;
    sv->restart = 1;
    ekv_log_warn("restarting", "why=\"%s\"", why);
    begin_stop(sv);
}

static void on_left(void *arg)
{
    serve_t *sv = arg;
    ekv_http_server_stop(sv->app.http, on_http_stopped, sv);
}

int ekv_serve(ekv_config_t *cfg)
{
    static serve_t sv; /* the loop's handles point into it until the process exits */
    ekv_app_t *app = &sv.app;
    ekv_node_t *node = &sv.node;
    memset(&sv, 0, sizeof(sv));
    sv.cfg = cfg;
    app->test_clock = cfg->test_clock != 0;
    app->started_ms = ekv_clock_now_ms();
    ekv_log_level_t lvl;
    if (ekv_log_parse_level(cfg->log_level, &lvl) == 0)
        ekv_log_set_level(lvl);
    signal(SIGPIPE, SIG_IGN);
    ensure_fd_limit(cfg);

    /* --coordinator: etcd decides whether this node starts as primary or replica, and whom
     * an edge sends writes to (before the store opens: the role decides how) */
    ekv_coord_boot_t boot;
    memset(&boot, 0, sizeof(boot));
    if (cfg->coordinator[0] && ekv_coord_boot(cfg, &boot))
        return 1;
    node->min_epoch = boot.primary ? (uint64_t)boot.epoch : 0;
    the_serve = &sv;

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
    if (ekv_doneq_init(&app->doneq, app->loop) || ekv_node_early_init(node, app, cfg))
        return 1;
    ekv_store_opts_t so = {0};
    so.replica = !strcmp(cfg->role, "replica");
    so.on_commit = ekv_node_on_commit;
    so.on_commit_ctx = node;
    so.dir = dbdir;
    so.sync = strcmp(cfg->sync, "none") == 0 ? EKV_SYNC_NONE : EKV_SYNC_FSYNC;
    so.commit_max_queue = (size_t)cfg->commit_queue;
    so.log_retain_bytes = (uint64_t)cfg->log_retain_mb * 1024 * 1024;
    so.log_retain_ms = cfg->log_retain_hours * 3600 * 1000;
    so.doneq = &app->doneq;
    so.block_cache_bytes = block_cache_bytes(cfg);
    so.inline_reads = cfg->inline_reads != 0;
    so.warm_cache = cfg->warm_block_cache != 0;
    so.low_priority_compactions = cfg->low_priority_compactions != 0;
    so.max_wal_bytes = (uint64_t)cfg->max_wal_mb << 20;
    so.memtable_bytes = (size_t)cfg->memtable_mb << 20;
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
    /* value reads in flight: enough to keep every reader busy, few enough that whole values
     * read ahead of the loop stay a small multiple of the largest value (docs/API.md "Bounded
     * replies") */
    app->value_reads_max = (size_t)cfg->readers * 4;
    app->value_wait_max = (size_t)cfg->reader_queue;

    ekv_http_opts_t ho = {.host = cfg->host,
                          .port = cfg->port,
                          .max_connections = (int)cfg->max_connections,
                          .header_timeout_ms = (int)cfg->header_timeout_ms,
                          .idle_timeout_ms = (int)cfg->idle_timeout_ms,
                          .max_body_memory = (size_t)cfg->body_memory_mb * 1024 * 1024,
                          .max_reply_memory = (size_t)cfg->reply_memory_mb * 1024 * 1024,
                          .send_timeout_ms = (int)cfg->send_timeout_ms,
                          .send_min_rate = (size_t)cfg->send_min_rate,
                          .keep_headers_marker = "/workers/durable_objects/"};
    ekv_http_handler_t hh = {app, ekv_app_on_headers, ekv_app_on_request, ekv_app_on_response};
    if (ekv_http_server_start(&app->http, app->loop, &ho, &hh))
        return 1;
    if (so.replica || edge) {
        if (cfg->account_id[0] || cfg->root_token[0])
            ekv_log_info("account/token presets ignored on a replica",
                         "role=%s why=\"accounts and tokens are replicated from the primary\"",
                         cfg->role);
    } else if (bootstrap(app, cfg)) {
        return 1;
    }
    if (operator_init(app, cfg))
        return 1;
    if (ekv_node_start(node))
        return 1;
    if (cfg->coordinator[0] && ekv_coord_start(node, &boot))
        return 1;
    if ((node->role == EKV_ROLE_STANDALONE || node->role == EKV_ROLE_PRIMARY) && !node->fenced &&
        ekv_node_start_do(node))
        return 1;
    uv_signal_init(app->loop, &sv.sigterm);
    uv_signal_init(app->loop, &sv.sigint);
    sv.sigterm.data = sv.sigint.data = &sv;
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    if (cfg->test_clock)
        ekv_log_warn("test clock enabled: POST /_edgekv/test/clock moves time", "%s", "");
    ekv_log_info("listening", "addr=%s:%d role=%s data_dir=%s sync=%s", cfg->host,
                 ekv_http_server_port(app->http), cfg->role, cfg->data_dir, cfg->sync);

    uv_run(app->loop, UV_RUN_DEFAULT);

    /* all connections are closed: no request waits for a job any more */
    ekv_node_free(node);
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
    return sv.restart ? EKV_SERVE_RESTART : 0;
}
