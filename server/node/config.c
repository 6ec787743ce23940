#include "server/node/config.h"

#include "replication/auth.h"
#include "server/api/auth.h"

#include <openssl/crypto.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { OPT_STR, OPT_INT, OPT_BOOL } opt_kind_t;

typedef struct {
    const char *flag; /* without "--"; env is EDGEKV_ + upper(flag with '-' -> '_') */
    opt_kind_t kind;
    size_t offset;
    const char *def;
    const char *help;
} opt_t;

#define OFF(f) offsetof(ekv_config_t, f)
static const opt_t opts[] = {
    {"role", OPT_STR, OFF(role), "standalone",
     "standalone (one process) | primary (streams its log to replicas) | replica"},
    {"listen", OPT_STR, OFF(listen), "127.0.0.1:8787", "HOST:PORT for the REST API (port 0 = any)"},
    {"data-dir", OPT_STR, OFF(data_dir), "./data", "where the database lives"},
    {"sync", OPT_STR, OFF(sync), "fsync", "fsync (ack after the WAL is synced) | none"},
    {"account-id", OPT_STR, OFF(account_id), "", "account to create on first start (32 hex)"},
    {"root-token", OPT_STR, OFF(root_token), "", "admin API token to create if missing"},
    {"log-level", OPT_STR, OFF(log_level), "info", "debug | info | warn | error"},
    {"readers", OPT_INT, OFF(readers), "4", "reader threads (RocksDB reads)"},
    {"reader-queue", OPT_INT, OFF(reader_queue), "4096", "reads waiting for a thread before 503"},
    {"commit-queue", OPT_INT, OFF(commit_queue), "65536", "writes waiting to commit before 503"},
    {"cache-bytes", OPT_INT, OFF(cache_bytes), "268435456", "hot value cache size (0 = off)"},
    {"cache-max-entry", OPT_INT, OFF(cache_max_entry), "1048576", "largest value cached"},
    {"block-cache-mb", OPT_INT, OFF(block_cache_mb), "0",
     "RocksDB block cache in MiB (0 = a quarter of the memory this process may use: RAM or the "
     "container's cgroup limit; docs/STORAGE.md)"},
    {"inline-reads", OPT_BOOL, OFF(inline_reads), "1",
     "answer value GETs whose blocks are in memory on the event loop, without a reader thread "
     "(0 = every miss of the value cache goes to a reader)"},
    {"warm-block-cache", OPT_BOOL, OFF(warm_block_cache), "1",
     "read the keys and values into the block cache after start and after large compactions, "
     "when they fit in half of it (a background thread at lower priority)"},
    {"low-priority-compactions", OPT_BOOL, OFF(low_priority_compactions), "1",
     "run RocksDB's compactions at the lowest CPU priority: they use idle CPU, not the event "
     "loop's (0 = normal priority; docs/STORAGE.md)"},
    {"max-wal-mb", OPT_INT, OFF(max_wal_mb), "32",
     "write-ahead log replayed at start, at most (bounds restart time; docs/STORAGE.md)"},
    {"memtable-mb", OPT_INT, OFF(memtable_mb), "32", "RocksDB memtable size per column family"},
    {"max-connections", OPT_INT, OFF(max_connections), "16384",
     "open client connections (an idle one costs ~5 KiB; the open-file limit is raised to fit)"},
    {"body-memory-mb", OPT_INT, OFF(body_memory_mb), "1024",
     "request bodies buffered at once, all connections (then 503)"},
    {"header-timeout-ms", OPT_INT, OFF(header_timeout_ms), "10000",
     "time to receive a request's headers"},
    {"idle-timeout-ms", OPT_INT, OFF(idle_timeout_ms), "60000",
     "keep-alive idle time and max pause inside a body"},
    {"reply-memory-mb", OPT_INT, OFF(reply_memory_mb), "256",
     "reply bytes waiting for slow clients, all connections (then large replies get 503; "
     "0 = no cap)"},
    {"send-timeout-ms", OPT_INT, OFF(send_timeout_ms), "0",
     "send deadline window (0 = --idle-timeout-ms): a reply that drains less than "
     "--send-min-rate over one is dropped"},
    {"send-min-rate", OPT_INT, OFF(send_min_rate), "1024",
     "bytes/s a client must read a queued reply at (averaged over --send-timeout-ms)"},
    {"repl-send-queue-mb", OPT_INT, OFF(repl_send_queue_mb), "64",
     "RPC link: answers queued for an edge before its requests stop being read"},
    {"log-retain-mb", OPT_INT, OFF(log_retain_mb), "1024", "change log kept, in MiB"},
    {"log-retain-hours", OPT_INT, OFF(log_retain_hours), "24", "change log kept, in hours"},
    {"test-clock", OPT_BOOL, OFF(test_clock), "0", "enable POST /_edgekv/test/clock (tests only)"},
    {"node-id", OPT_STR, OFF(node_id), "",
     "this node's name in logs and status (default edgekv-PORT)"},
    {"repl-listen", OPT_STR, OFF(repl_listen), "",
     "HOST:PORT replicas connect to (primary: default 127.0.0.1:8788; replica: after promotion; "
     "edge: where other nodes forward Durable Object calls it owns, default an ephemeral port)"},
    {"primary", OPT_STR, OFF(primary), "",
     "replica: HOST:PORT[,HOST:PORT...] of the primary's --repl-listen"},
    {"replicas", OPT_STR, OFF(replicas), "",
     "edge: HOST:PORT[,...] of the replicas' --repl-listen (reads, change stream)"},
    {"cache-ttl-s", OPT_INT, OFF(cache_ttl_s), "60",
     "edge: cache TTL (>= 30; per request: cache_ttl)"},
    {"stale-if-error-s", OPT_INT, OFF(stale_if_error_s), "300",
     "edge: serve expired cache entries this long while no upstream answers"},
    {"upstream-timeout-ms", OPT_INT, OFF(upstream_timeout_ms), "5000",
     "edge: an upstream call without an answer by then fails (504)"},
    {"edge-max-fetches", OPT_INT, OFF(edge_max_fetches), "256",
     "edge: value fetches in flight upstream at once (refill rate limit; then stale or 503)"},
    {"advertise-url", OPT_STR, OFF(advertise_url), "",
     "this node's API URL as told to peers (default http://LISTEN)"},
    {"sync-replicas", OPT_INT, OFF(sync_replicas), "0",
     "primary: answer a write only after this many replicas acked it"},
    {"sync-timeout-ms", OPT_INT, OFF(sync_timeout_ms), "5000",
     "then answer 504 (the write is committed on the primary)"},
    {"repl-timeout-ms", OPT_INT, OFF(repl_timeout_ms), "10000",
     "drop a replication link silent or stalled this long"},
    {"repl-max-lag-ms", OPT_INT, OFF(repl_max_lag_ms), "60000",
     "primary: drop a replica that has not acked records sent this long ago"},
    {"repl-heartbeat-ms", OPT_INT, OFF(repl_heartbeat_ms), "1000", "heartbeats and keepalive acks"},
    {"cluster-secret-file", OPT_STR, OFF(cluster_secret_file), "",
     "file holding the cluster secret (>= 32 bytes, e.g. `edgekv secret generate > FILE`), "
     "needed by every node with --repl-listen, replica or edge; or the secret itself in env "
     "EDGEKV_CLUSTER_SECRET"},
    {"do-call-wait-ms", OPT_INT, OFF(do_call_wait_ms), "10000",
     "Durable Objects: a call waits this long for the object's earlier calls, then 503"},
    {"do-call-timeout-ms", OPT_INT, OFF(do_call_timeout_ms), "30000",
     "Durable Objects: one call or alarm delivery to the namespace's script URL, total"},
    {"do-call-queue", OPT_INT, OFF(do_call_queue), "1000",
     "Durable Objects: calls waiting per object before 503"},
    {"do-alarm-retry-base-ms", OPT_INT, OFF(do_alarm_retry_base_ms), "2000",
     "Durable Objects: first alarm retry delay, doubled per retry (workerd: 2000)"},
    {"do-lease-ms", OPT_INT, OFF(do_lease_ms), "1500",
     "Durable Objects (cluster): an owner's lease; the primary moves a silent owner's "
     "partitions after it (failover time ~ this + a heartbeat)"},
    {"do-heartbeat-ms", OPT_INT, OFF(do_heartbeat_ms), "250",
     "Durable Objects (cluster): how often an owner (edge) renews its lease (< lease / 2)"},
    {"do-move-wait-ms", OPT_INT, OFF(do_move_wait_ms), "5000",
     "Durable Objects (cluster): a call waits this long for its object's partition to settle "
     "on an owner, then 503"},
    {"coordinator", OPT_STR, OFF(coordinator), "",
     "etcd://HOST:PORT[,HOST:PORT...]: automatic failover through etcd v3 (docs/FAILOVER.md); "
     "then --role primary|replica is only the role a node prefers at its first start"},
    {"coordinator-ttl-s", OPT_INT, OFF(coordinator_ttl_s), "5",
     "the primary's leader lease in etcd: it stops taking writes when it cannot renew it in "
     "time, and replicas elect a new primary once it expires (2..60)"},
    {"cluster-name", OPT_STR, OFF(cluster_name), "edgekv",
     "names this cluster's keys in the coordinator (/edgekv/NAME/...)"},
    {"repl-advertise", OPT_STR, OFF(repl_advertise), "",
     "HOST:PORT other nodes reach this node's --repl-listen at (coordinator; default "
     "--repl-listen, with the host name when listening on 0.0.0.0)"},
    {"do-advertise", OPT_STR, OFF(do_advertise), "",
     "edge: HOST:PORT peers reach this owner's link listener at (default: --repl-listen, or "
     "the API host and an ephemeral port; the host name when listening on 0.0.0.0)"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int set_opt(ekv_config_t *cfg, const opt_t *o, const char *val, const char *src)
{
    char *base = (char *)cfg + o->offset;
    if (o->kind == OPT_STR) {
        char **slot = (char **)base;
        free(*slot);
        *slot = strdup(val);
        return *slot ? 0 : -1;
    }
    int64_t *slot = (int64_t *)base;
    if (o->kind == OPT_BOOL) {
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, ""))
            *slot = 1;
        else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no"))
            *slot = 0;
        else
            goto bad;
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end || v < 0)
        goto bad;
    *slot = v;
    return 0;
bad:
    fprintf(stderr, "edgekv: invalid value '%s' for %s%s\n", val, src, o->flag);
    return -1;
}

static void env_name(const char *flag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "EDGEKV_");
    for (const char *p = flag; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

void ekv_config_usage(FILE *out)
{
    fprintf(out, "usage: edgekv [serve] [flags]\n\n"
                 "Serve the Workers KV REST API under /client/v4.\n"
                 "Every flag can also be set as an environment variable EDGEKV_<FLAG>.\n\n"
                 "flags:\n");
    for (size_t i = 0; i < NOPTS; i++) {
        char env[64];
        env_name(opts[i].flag, env, sizeof(env));
        fprintf(out, "  --%-18s %s\n  %-20s (env %s, default \"%s\")\n", opts[i].flag, opts[i].help,
                "", env, opts[i].def);
    }
    fprintf(out, "  --%-18s this help\n", "help");
}

/* HOST:PORT (or [v6]:PORT) -> host, port. 0 or -1 after printing what is wrong. */
static int parse_hostport(const char *flag, const char *v, char *host, size_t cap, int *port_out)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= cap) {
        fprintf(stderr, "edgekv: --%s must be HOST:PORT, got '%s'\n", flag, v);
        return -1;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) {
        fprintf(stderr, "edgekv: bad port in --%s '%s'\n", flag, v);
        return -1;
    }
    size_t hl = (size_t)(colon - v);
    const char *h = v;
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') { /* [::1]:8787 */
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port_out = (int)port;
    return 0;
}

/* --repl-advertise, or --repl-listen with this host's name for a wildcard address. */
static int set_repl_advertise(ekv_config_t *cfg)
{
    char h[256];
    int port;
    if (cfg->repl_advertise[0]) {
        if (parse_hostport("repl-advertise", cfg->repl_advertise, h, sizeof(h), &port) ||
            port == 0 || strlen(cfg->repl_advertise) >= 128) {
            fprintf(stderr, "edgekv: --repl-advertise must be HOST:PORT (port > 0, < 128 "
                            "characters)\n");
            return -1;
        }
        return 0;
    }
    const char *host = cfg->repl_host;
    if (!strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !host[0]) {
        if (gethostname(h, sizeof(h)) || !h[0]) {
            fprintf(stderr, "edgekv: set --repl-advertise HOST:PORT (no host name)\n");
            return -1;
        }
        h[sizeof(h) - 1] = '\0';
        host = h;
    }
    if (cfg->repl_port == 0) {
        fprintf(stderr, "edgekv: with --coordinator, --repl-listen needs a fixed port\n");
        return -1;
    }
    char buf[300];
    snprintf(buf, sizeof(buf), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, cfg->repl_port);
    free(cfg->repl_advertise);
    cfg->repl_advertise = strdup(buf);
    return cfg->repl_advertise ? 0 : -1;
}

static int check_replication(ekv_config_t *cfg)
{
    int primary = !strcmp(cfg->role, "primary"), replica = !strcmp(cfg->role, "replica");
    int edge = !strcmp(cfg->role, "edge");
    if (strlen(cfg->node_id) > 63 || strpbrk(cfg->node_id, " \t\n\"=")) {
        fprintf(stderr, "edgekv: --node-id must be at most 63 characters without spaces, "
                        "quotes or '='\n");
        return -1;
    }
    if (!primary && !replica && !edge && strcmp(cfg->role, "standalone")) {
        fprintf(stderr, "edgekv: --role must be standalone, primary, replica or edge (got '%s')\n",
                cfg->role);
        return -1;
    }
    if (cfg->do_heartbeat_ms < 10 || cfg->do_lease_ms > 600000 ||
        cfg->do_heartbeat_ms * 2 >= cfg->do_lease_ms || cfg->do_move_wait_ms < 100 ||
        cfg->do_move_wait_ms > 600000) {
        fprintf(stderr, "edgekv: need 10 <= --do-heartbeat-ms, 2 * --do-heartbeat-ms < "
                        "--do-lease-ms <= 600000 and 100 <= --do-move-wait-ms <= 600000\n");
        return -1;
    }
    if (cfg->do_advertise[0]) {
        char h[256];
        int port;
        if (!edge || parse_hostport("do-advertise", cfg->do_advertise, h, sizeof(h), &port) ||
            port == 0 || strlen(cfg->do_advertise) >= 128) {
            fprintf(stderr, "edgekv: --do-advertise HOST:PORT (port > 0, < 128 characters) "
                            "is for --role edge only\n");
            return -1;
        }
    }
    int coord = cfg->coordinator[0] != 0;
    if (coord) {
        if (strncmp(cfg->coordinator, "etcd://", 7) || !cfg->coordinator[7] ||
            strlen(cfg->coordinator) > 1000) {
            fprintf(stderr, "edgekv: --coordinator must be etcd://HOST:PORT[,HOST:PORT...]\n");
            return -1;
        }
        if (!primary && !replica && !edge) {
            fprintf(stderr, "edgekv: --coordinator is for --role primary, replica or edge\n");
            return -1;
        }
        if (cfg->coordinator_ttl_s < 2 || cfg->coordinator_ttl_s > 60 || !cfg->cluster_name[0] ||
            strlen(cfg->cluster_name) > 63 || strpbrk(cfg->cluster_name, "/ \t\n\"")) {
            fprintf(stderr, "edgekv: need --coordinator-ttl-s in 2..60 and a --cluster-name of "
                            "1..63 characters without '/', spaces or quotes\n");
            return -1;
        }
        if (cfg->primary[0]) {
            fprintf(stderr, "edgekv: with --coordinator the primary is found in etcd: drop "
                            "--primary\n");
            return -1;
        }
    }
    if (edge) {
        if (!coord && (!cfg->primary[0] || strchr(cfg->primary, ','))) {
            fprintf(stderr, "edgekv: --role edge needs --primary HOST:PORT (the primary's "
                            "--repl-listen) and optionally --replicas HOST:PORT,...\n");
            return -1;
        }
        if (cfg->sync_replicas) {
            fprintf(stderr, "edgekv: an edge does not take --sync-replicas\n");
            return -1;
        }
        /* cache TTL: the bounds of ?cache_ttl (MIN/MAX_CACHE_TTL_S, server/node/edge) */
        if (cfg->cache_ttl_s < 30 || cfg->cache_ttl_s > 31536000 || cfg->upstream_timeout_ms < 10 ||
            cfg->edge_max_fetches < 1) {
            fprintf(stderr, "edgekv: need --cache-ttl-s in 30..31536000, "
                            "--upstream-timeout-ms >= 10, --edge-max-fetches >= 1\n");
            return -1;
        }
        cfg->repl_port = -1;
        /* --repl-listen on an edge: where its peers reach it as a Durable Object owner */
        if (cfg->repl_listen[0] && parse_hostport("repl-listen", cfg->repl_listen, cfg->repl_host,
                                                  sizeof(cfg->repl_host), &cfg->repl_port))
            return -1;
        return 0;
    }
    if (cfg->replicas[0]) {
        fprintf(stderr, "edgekv: --replicas is only for --role edge\n");
        return -1;
    }
    if (primary && !cfg->repl_listen[0]) {
        free(cfg->repl_listen);
        cfg->repl_listen = strdup("127.0.0.1:8788");
        if (!cfg->repl_listen)
            return -1;
    }
    cfg->repl_port = -1;
    if (cfg->repl_listen[0]) {
        if (!primary && !replica) {
            fprintf(stderr, "edgekv: --repl-listen needs --role primary or replica\n");
            return -1;
        }
        if (parse_hostport("repl-listen", cfg->repl_listen, cfg->repl_host, sizeof(cfg->repl_host),
                           &cfg->repl_port))
            return -1;
    }
    if (coord && !cfg->repl_listen[0]) {
        fprintf(stderr, "edgekv: with --coordinator a data node needs --repl-listen (any of them "
                        "may become the primary)\n");
        return -1;
    }
    if (coord && set_repl_advertise(cfg))
        return -1;
    if (replica && !coord && !cfg->primary[0]) {
        fprintf(stderr, "edgekv: --role replica needs --primary HOST:PORT (the primary's "
                        "--repl-listen)\n");
        return -1;
    }
    if (!replica && cfg->primary[0]) {
        fprintf(stderr, "edgekv: --primary is only for --role replica\n");
        return -1;
    }
    if (cfg->sync_replicas && !primary && !(replica && coord)) {
        fprintf(stderr, "edgekv: --sync-replicas is only for --role primary\n");
        return -1;
    }
    if (cfg->sync_replicas > 16) {
        fprintf(stderr, "edgekv: --sync-replicas must be 0..16\n");
        return -1;
    }
    if (cfg->sync_timeout_ms < 1 || cfg->repl_timeout_ms < 100 || cfg->repl_heartbeat_ms < 10 ||
        cfg->repl_max_lag_ms < 100 || cfg->repl_heartbeat_ms >= cfg->repl_timeout_ms) {
        fprintf(stderr, "edgekv: need --sync-timeout-ms >= 1, --repl-timeout-ms >= 100, "
                        "--repl-max-lag-ms >= 100 and 10 <= --repl-heartbeat-ms < "
                        "--repl-timeout-ms\n");
        return -1;
    }
    return 0;
}

#define SECRET_HOWTO                                                                               \
    "create one with `edgekv secret generate > FILE` (or `openssl rand -hex 32 > FILE`), "         \
    "`chmod 600 FILE`, copy it to every node of the cluster and pass --cluster-secret-file FILE"

/* Keep the secret's bytes, without the trailing newline (and spaces) a file ends with. */
static int take_secret(ekv_config_t *cfg, const char *s, size_t n, const char *from)
{
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n < EKV_REPL_SECRET_MIN || n > EKV_REPL_SECRET_MAX) {
        fprintf(stderr,
                "edgekv: the cluster secret in %s has %zu bytes; it needs %u to %u (e.g. 64 hex "
                "characters): " SECRET_HOWTO "\n",
                from, n, EKV_REPL_SECRET_MIN, EKV_REPL_SECRET_MAX);
        return -1;
    }
    cfg->cluster_secret = malloc(n);
    if (!cfg->cluster_secret)
        return -1;
    memcpy(cfg->cluster_secret, s, n);
    cfg->cluster_secret_len = n;
    return 0;
}

static int load_secret(ekv_config_t *cfg)
{
    int need = cfg->repl_port >= 0 || !strcmp(cfg->role, "replica") || !strcmp(cfg->role, "edge");
    const char *env = getenv("EDGEKV_CLUSTER_SECRET");
    if (cfg->cluster_secret_file[0]) {
        const char *path = cfg->cluster_secret_file;
        FILE *fp = fopen(path, "rb");
        if (!fp) {
            fprintf(stderr, "edgekv: cannot open --cluster-secret-file %s: %s\n", path,
                    strerror(errno));
            return -1;
        }
        struct stat st;
        if (fstat(fileno(fp), &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH))) {
            fprintf(stderr,
                    "edgekv: --cluster-secret-file %s is readable or writable by every user "
                    "(mode %03o); run `chmod 600 %s`\n",
                    path, (unsigned)(st.st_mode & 0777), path);
            fclose(fp);
            return -1;
        }
        char buf[EKV_REPL_SECRET_MAX + 8];
        size_t n = fread(buf, 1, sizeof(buf), fp);
        fclose(fp);
        int rc = take_secret(cfg, buf, n, path);
        OPENSSL_cleanse(buf, sizeof(buf));
        return rc;
    }
    if (env && env[0])
        return take_secret(cfg, env, strlen(env), "EDGEKV_CLUSTER_SECRET");
    if (need) {
        fprintf(stderr,
                "edgekv: --role %s%s needs the cluster secret, which every node of a cluster "
                "shares and proves on every replication link: " SECRET_HOWTO "\n",
                cfg->role, cfg->repl_port >= 0 ? " with --repl-listen" : "");
        return -1;
    }
    return 0;
}

int ekv_config_load(ekv_config_t *cfg, int argc, char **argv, int first)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NOPTS; i++)
        if (set_opt(cfg, &opts[i], opts[i].def, "--"))
            return -1;
    for (size_t i = 0; i < NOPTS; i++) {
        char env[64];
        env_name(opts[i].flag, env, sizeof(env));
        const char *v = getenv(env);
        if (v && set_opt(cfg, &opts[i], v, "EDGEKV_ for --"))
            return -1;
    }
    for (int a = first; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            ekv_config_usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "edgekv: unexpected argument '%s' (see edgekv serve --help)\n", arg);
            return -1;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const opt_t *o = NULL;
        for (size_t i = 0; i < NOPTS; i++)
            if (strlen(opts[i].flag) == nlen && !strncmp(opts[i].flag, name, nlen))
                o = &opts[i];
        if (!o) {
            fprintf(stderr, "edgekv: unknown flag '%s' (see edgekv serve --help)\n", arg);
            return -1;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->kind == OPT_BOOL)
            val = "1";
        else if (a + 1 < argc)
            val = argv[++a];
        else {
            fprintf(stderr, "edgekv: flag --%s needs a value\n", o->flag);
            return -1;
        }
        if (set_opt(cfg, o, val, "--"))
            return -1;
    }
    if (check_replication(cfg) || load_secret(cfg))
        return -1;
    if (strcmp(cfg->sync, "fsync") && strcmp(cfg->sync, "none")) {
        fprintf(stderr, "edgekv: --sync must be fsync or none\n");
        return -1;
    }
    if (cfg->max_connections < 1 || cfg->max_connections > 1000000) {
        fprintf(stderr, "edgekv: --max-connections must be 1..1000000\n");
        return -1;
    }
    if (cfg->max_wal_mb < 4 || cfg->max_wal_mb > 65536 || cfg->memtable_mb < 1 ||
        cfg->memtable_mb > 4096) {
        fprintf(stderr, "edgekv: --max-wal-mb must be 4..65536 and --memtable-mb 1..4096\n");
        return -1;
    }
    if (cfg->block_cache_mb > ((int64_t)1 << 30)) {
        fprintf(stderr, "edgekv: --block-cache-mb is too large\n");
        return -1;
    }
    if (cfg->readers < 1 || cfg->readers > 64) {
        fprintf(stderr, "edgekv: --readers must be 1..64\n");
        return -1;
    }
    if (cfg->reply_memory_mb > 1048576 || (cfg->send_timeout_ms && cfg->send_timeout_ms < 100) ||
        cfg->send_timeout_ms > 3600000 || cfg->send_min_rate > (1 << 30) ||
        cfg->repl_send_queue_mb < 1 || cfg->repl_send_queue_mb > 4096) {
        fprintf(stderr, "edgekv: --reply-memory-mb must be 0..1048576, --send-timeout-ms "
                        "0 or 100..3600000, --send-min-rate 0..1073741824, --repl-send-queue-mb "
                        "1..4096\n");
        return -1;
    }
    if (cfg->do_call_wait_ms < 1 || cfg->do_call_wait_ms > 3600000 ||
        cfg->do_call_timeout_ms < 100 || cfg->do_call_timeout_ms > 3600000 ||
        cfg->do_call_queue < 1 || cfg->do_call_queue > 1000000 || cfg->do_alarm_retry_base_ms < 1 ||
        cfg->do_alarm_retry_base_ms > 3600000) {
        fprintf(stderr, "edgekv: --do-call-wait-ms must be 1..3600000, --do-call-timeout-ms "
                        "100..3600000, --do-call-queue 1..1000000, --do-alarm-retry-base-ms "
                        "1..3600000\n");
        return -1;
    }
    if (parse_hostport("listen", cfg->listen, cfg->host, sizeof(cfg->host), &cfg->port))
        return -1;
    return 0;
}

void ekv_config_free(ekv_config_t *cfg)
{
    if (cfg->cluster_secret) {
        OPENSSL_cleanse(cfg->cluster_secret, cfg->cluster_secret_len);
        free(cfg->cluster_secret);
        cfg->cluster_secret = NULL;
        cfg->cluster_secret_len = 0;
    }
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].kind == OPT_STR) {
            char **slot = (char **)((char *)cfg + opts[i].offset);
            free(*slot);
            *slot = NULL;
        }
}

/* <data_dir>/operator.secret: read it, or (create) make it with 32 random bytes as hex. */
static int operator_secret_file(const char *data_dir, int create, char *buf, size_t cap,
                                size_t *n_out, int *created)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/operator.secret", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        uint8_t raw[32];
        char hex[66];
        if (ekv_repl_auth_random(raw, sizeof(raw)))
            return -1;
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        hex[64] = '\n';
        int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ssize_t w = wfd >= 0 ? write(wfd, hex, 65) : -1;
        int bad = w != 65 || fsync(wfd) != 0;
        if (wfd >= 0)
            close(wfd);
        OPENSSL_cleanse(raw, sizeof(raw));
        OPENSSL_cleanse(hex, sizeof(hex));
        if (bad) {
            fprintf(stderr, "edgekv: cannot write %s: %s\n", path, strerror(errno));
            unlink(path);
            return -1;
        }
        *created = 1;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        fprintf(stderr, "edgekv: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    ssize_t r = read(fd, buf, cap);
    close(fd);
    if (r <= 0)
        return -1;
    size_t n = (size_t)r;
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    if (n < EKV_REPL_SECRET_MIN) {
        fprintf(stderr, "edgekv: %s is too short (%zu bytes)\n", path, n);
        return -1;
    }
    *n_out = n;
    return 0;
}

int ekv_config_operator_token(const ekv_config_t *cfg, int create, char out[65], int *created)
{
    *created = 0;
    if (cfg->cluster_secret_len)
        return ekv_operator_token(cfg->cluster_secret, cfg->cluster_secret_len, out) ? -1 : 0;
    if (!strcmp(cfg->role, "edge"))
        return -1; /* no data dir (and an edge always has the cluster secret) */
    char buf[EKV_REPL_SECRET_MAX + 8];
    size_t n = 0;
    int rc = operator_secret_file(cfg->data_dir, create, buf, sizeof(buf), &n, created);
    if (rc == 0)
        rc = ekv_operator_token(buf, n, out) ? -1 : 0;
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}
