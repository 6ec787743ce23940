/*
 * libFuzzer target for the whole HTTP request path: raw bytes on a real TCP connection to the
 * real server (server/http/conn.c: llhttp, limits, timers, pipelining), then the API's
 * dispatch (route, auth, account and namespace checks, permissions) and the handlers, against
 * a real RocksDB store in a temp dir, with the reader pool and the committer running and their
 * completions coming back through the doneq, as in `edgekv serve --role standalone`.
 *
 * Set-up (LLVMFuzzerInitialize, once): what server/node/serve.c does for a standalone node,
 * without server/node/ (its role ops are all NULL = standalone behaviour, see api.h): a store
 * in a fresh temp dir (--sync none), the catalog, the cache, the metrics, 2 readers, the HTTP
 * server on 127.0.0.1:0 (header and idle timeouts 1 s), the test clock (--test-clock), and
 * known credentials:
 *   account   0123456789abcdef0123456789abcdef
 *   token     "fuzz-admin-secret" (admin + kv:read + kv:write)
 *   namespace fedcba9876543210fedcba9876543210 ("fuzz")
 * The token and the namespace are re-created before an input if an earlier input removed them,
 * so the seeds keep reaching the handlers.
 *
 * Input: the bytes a client sends, split at each 0xFF byte into pieces; each piece is written
 * on its own with a few loop turns in between (so the server also sees requests cut across
 * reads). Then the client half-closes and reads everything until the server closes the
 * connection; the loop runs until no server connection is left, i.e. every job the input
 * started (reader pool, committer) has completed and its reply was written.
 *
 * Checks beyond ASan/UBSan: whatever the server sends starts with "HTTP/1.1 "; the server
 * closes the connection and frees it within a bounded time (5 s, against timeouts of 1 s).
 * FUZZ_HTTP_CONN_ECHO=1 in the environment copies the replies to stderr.
 */
#include "common/errors.h"
#include "common/log.h"
#include "server/api/api.h"
#include "server/api/auth.h"
#include "server/api/perms.h"

#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ACCOUNT  "0123456789abcdef0123456789abcdef"
#define FUZZ_SECRET   "fuzz-admin-secret"
#define FUZZ_TOKEN_ID "00000000000000000000000000000001"
#define FUZZ_NS       "fedcba9876543210fedcba9876543210"
#define BUDGET_MS     5000
#define PIECE_TURNS   3

static ekv_app_t app;
static const ekv_role_ops_t standalone_ops; /* every op NULL: standalone */
static char tmpdir[] = "/tmp/ekv-fuzz-http-XXXXXX";
static struct sockaddr_in server_addr;

/* ---- set-up ---- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http_conn: set-up failed: %s\n", what);
    abort();
}

static void ensure_credentials(void)
{
    ekv_write_t w;
    if (!ekv_catalog_find_account(app.catalog, FUZZ_ACCOUNT)) {
        memset(&w, 0, sizeof(w));
        w.type = EKV_OP_ACCOUNT_CREATE;
        snprintf(w.account.id, sizeof(w.account.id), "%s", FUZZ_ACCOUNT);
        snprintf(w.account.name, sizeof(w.account.name), "fuzz");
        if (ekv_store_write_sync(app.store, &w))
            die("account");
        ekv_catalog_put_account(app.catalog, &w.account);
    }
    char hash[EKV_TOKEN_HASH_LEN + 1];
    ekv_token_hash(FUZZ_SECRET, strlen(FUZZ_SECRET), hash);
    if (!ekv_catalog_find_token(app.catalog, hash)) {
        memset(&w, 0, sizeof(w));
        w.type = EKV_OP_TOKEN_CREATE;
        memcpy(w.token.hash, hash, sizeof(hash));
        snprintf(w.token.id, sizeof(w.token.id), "%s", FUZZ_TOKEN_ID);
        snprintf(w.token.account_id, sizeof(w.token.account_id), "%s", FUZZ_ACCOUNT);
        snprintf(w.token.name, sizeof(w.token.name), "root");
        w.token.perms = EKV_PERM_ADMIN | EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
        /* a revoked token id may not be reused: fall back to a random one */
        if (ekv_store_write_sync(app.store, &w)) {
            if (ekv_random_id(w.token.id) || ekv_store_write_sync(app.store, &w))
                die("token");
        }
        ekv_catalog_put_token(app.catalog, &w.token);
    }
    if (!ekv_catalog_find_ns(app.catalog, FUZZ_ACCOUNT, FUZZ_NS)) {
        memset(&w, 0, sizeof(w));
        w.type = EKV_OP_NS_CREATE;
        snprintf(w.ns.id, sizeof(w.ns.id), "%s", FUZZ_NS);
        snprintf(w.ns.account_id, sizeof(w.ns.account_id), "%s", FUZZ_ACCOUNT);
        snprintf(w.ns.title, sizeof(w.ns.title), "fuzz");
        /* fails when an input took the title or the namespace limit: seeds then see 10013 */
        if (ekv_store_write_sync(app.store, &w) == 0)
            ekv_catalog_put_ns(app.catalog, &w.ns);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    ekv_log_set_level(EKV_LOG_ERROR);
    if (!mkdtemp(tmpdir))
        die("mkdtemp");
    atexit(remove_tmpdir);
    if (ekv_routes_init())
        die("routes");
    app.loop = uv_default_loop();
    app.role = &standalone_ops;
    app.test_clock = 1; /* POST /_edgekv/test/clock, as the integration tests run it */
    if (ekv_doneq_init(&app.doneq, app.loop))
        die("doneq");
    char dbdir[sizeof(tmpdir) + 8];
    snprintf(dbdir, sizeof(dbdir), "%s/db", tmpdir);
    ekv_store_opts_t so = {0};
    so.dir = dbdir;
    so.sync = EKV_SYNC_NONE;
    so.commit_max_queue = 1024;
    so.doneq = &app.doneq;
    if (ekv_store_open(&app.store, &so))
        die("store");
    app.catalog = ekv_catalog_new();
    app.cache = ekv_cache_new(4 * 1024 * 1024, 64 * 1024);
    static const char *names[256];
    if (ekv_nroutes > 256)
        die("route names");
    for (size_t i = 0; i < ekv_nroutes; i++)
        names[i] = ekv_routes[i].name;
    app.metrics = ekv_metrics_new(ekv_nroutes, names);
    if (!app.catalog || !app.cache || !app.metrics || ekv_catalog_load(app.catalog, app.store))
        die("catalog, cache or metrics");
    if (ekv_workq_init(&app.readers, "reader", 2, 256, &app.doneq))
        die("readers");
    /* small reply budget and a short send window: the shed and deadline paths run too */
    ekv_http_opts_t ho = {.host = "127.0.0.1",
                          .port = 0,
                          .max_connections = 64,
                          .header_timeout_ms = 1000,
                          .idle_timeout_ms = 1000,
                          .max_body_memory = 16 * 1024 * 1024,
                          .max_reply_memory = 256 * 1024,
                          .send_timeout_ms = 1000,
                          .send_min_rate = 1024};
    ekv_http_handler_t hh = {&app, ekv_app_on_headers, ekv_app_on_request, ekv_app_on_response};
    if (ekv_http_server_start(&app.http, app.loop, &ho, &hh))
        die("http server");
    uv_ip4_addr("127.0.0.1", ekv_http_server_port(app.http), &server_addr);
    ensure_credentials();
    return 0;
}

/* ---- one input: a client connection on the same loop ---- */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_shutdown_t shutdown;
    uv_timer_t budget;
    int connected; /* 1 ok, -1 failed */
    int closed;
    int timer_closed;
    int expired;
    char head[9]; /* the first bytes of the replies */
    size_t nread;
    char rbuf[64 * 1024];
} client_t;

static client_t cl;

static void on_client_closed(uv_handle_t *h)
{
    (void)h;
    cl.closed = 1;
}

static void client_close(void)
{
    if (!uv_is_closing((uv_handle_t *)&cl.tcp))
        uv_close((uv_handle_t *)&cl.tcp, on_client_closed);
}

static void on_connect(uv_connect_t *req, int status)
{
    (void)req;
    cl.connected = status == 0 ? 1 : -1;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(cl.rbuf, sizeof(cl.rbuf));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)s;
    if (n < 0) { /* EOF or reset: the server closed */
        client_close();
        return;
    }
    if (getenv("FUZZ_HTTP_CONN_ECHO")) /* seeing what the seeds reach */
        fwrite(buf->base, 1, (size_t)n, stderr);
    for (ssize_t i = 0; i < n && cl.nread < sizeof(cl.head); i++)
        cl.head[cl.nread++] = buf->base[i];
    if (cl.nread > 0 && memcmp(cl.head, "HTTP/1.1 ", cl.nread) != 0) {
        fprintf(stderr, "fuzz_http_conn: reply does not start with HTTP/1.1: %.*s\n", (int)cl.nread,
                cl.head);
        abort();
    }
}

static void on_write(uv_write_t *req, int status)
{
    (void)status; /* a reset while writing is an answer too */
    free(req);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_budget(uv_timer_t *t)
{
    (void)t;
    cl.expired = 1;
}

static void on_timer_closed(uv_handle_t *h)
{
    (void)h;
    cl.timer_closed = 1;
}

static void write_piece(const uint8_t *p, size_t n)
{
    if (n == 0 || cl.closed || uv_is_closing((uv_handle_t *)&cl.tcp))
        return;
    /* uv_write needs the bytes until on_write: copy them next to the request */
    uv_write_t *req = malloc(sizeof(*req) + n);
    if (!req)
        abort();
    memcpy(req + 1, p, n);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
    if (uv_write(req, (uv_stream_t *)&cl.tcp, &b, 1, on_write))
        free(req);
}

static uint64_t active_connections(void)
{
    ekv_http_stats_t st;
    ekv_http_server_stats(app.http, &st);
    return st.active;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ensure_credentials();
    memset(&cl, 0, sizeof(cl));
    uv_timer_init(app.loop, &cl.budget);
    uv_timer_start(&cl.budget, on_budget, BUDGET_MS, 0);
    uv_tcp_init(app.loop, &cl.tcp);
    if (uv_tcp_connect(&cl.connect, &cl.tcp, (const struct sockaddr *)&server_addr, on_connect))
        abort();
    while (!cl.connected && !cl.expired)
        uv_run(app.loop, UV_RUN_ONCE);
    if (cl.connected != 1) {
        fprintf(stderr, "fuzz_http_conn: cannot connect to the server\n");
        abort();
    }
    uv_read_start((uv_stream_t *)&cl.tcp, on_alloc, on_read);

    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != 0xFF)
            continue;
        write_piece(data + start, i - start);
        start = i + 1;
        for (int t = 0; t < PIECE_TURNS; t++)
            uv_run(app.loop, UV_RUN_NOWAIT);
    }
    if (!cl.closed && !uv_is_closing((uv_handle_t *)&cl.tcp))
        uv_shutdown(&cl.shutdown, (uv_stream_t *)&cl.tcp, on_shutdown);

    /* until the server closed our connection and freed its own (every job done) */
    while ((!cl.closed || active_connections() > 0) && !cl.expired)
        uv_run(app.loop, UV_RUN_ONCE);
    if (cl.expired) {
        fprintf(stderr,
                "fuzz_http_conn: the server kept the connection for %d ms (client closed %d, "
                "server connections %llu) against timeouts of 1 s\n",
                BUDGET_MS, cl.closed, (unsigned long long)active_connections());
        abort();
    }
    uv_close((uv_handle_t *)&cl.budget, on_timer_closed);
    while (!cl.timer_closed)
        uv_run(app.loop, UV_RUN_ONCE);
    return 0;
}
