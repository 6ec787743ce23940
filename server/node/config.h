/*
 * config.h - `edgekv serve` settings: one table gives each flag, its EDGEKV_<FLAG>
 * environment variable, its default and its help line. Precedence: default < env < flag.
 */
#ifndef EKV_SERVER_NODE_CONFIG_H
#define EKV_SERVER_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char *role;
    char *listen; /* HOST:PORT */
    char *data_dir;
    char *sync; /* fsync | none */
    char *account_id;
    char *root_token;
    char *log_level;
    int64_t readers;
    int64_t reader_queue;
    int64_t commit_queue;
    int64_t cache_bytes;
    int64_t block_cache_mb; /* 0 = auto */
    int64_t inline_reads;
    int64_t warm_block_cache;
    int64_t low_priority_compactions;
    int64_t max_wal_mb;
    int64_t memtable_mb;
    int64_t cache_max_entry;
    int64_t max_connections;
    int64_t body_memory_mb;
    int64_t header_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t reply_memory_mb;
    int64_t send_timeout_ms;
    int64_t send_min_rate;
    int64_t repl_send_queue_mb;
    int64_t log_retain_mb;
    int64_t log_retain_hours;
    int64_t test_clock;
    /* replication */
    char *node_id;
    char *repl_listen;
    char *primary;
    char *replicas;
    int64_t cache_ttl_s;
    int64_t stale_if_error_s;
    int64_t upstream_timeout_ms;
    int64_t edge_max_fetches;
    char *advertise_url;
    int64_t sync_replicas;
    int64_t sync_timeout_ms;
    int64_t repl_timeout_ms;
    int64_t repl_max_lag_ms;
    int64_t repl_heartbeat_ms;
    char *cluster_secret_file;
    /* Durable Objects (server/api/do/do.h) */
    int64_t do_call_wait_ms;
    int64_t do_call_timeout_ms;
    int64_t do_call_queue;
    int64_t do_alarm_retry_base_ms;
    int64_t do_lease_ms;
    int64_t do_heartbeat_ms;
    int64_t do_move_wait_ms;
    char *do_advertise;
    char *coordinator; /* "etcd://host:port,..." or "" */
    int64_t coordinator_ttl_s;
    char *cluster_name;
    char *repl_advertise; /* data nodes with a coordinator: set by the checks */
    /* derived */
    /* The cluster secret (from --cluster-secret-file, or the env EDGEKV_CLUSTER_SECRET):
     * malloc'd, not NUL-terminated, wiped by ekv_config_free; NULL/0 when none is needed. */
    char *cluster_secret;
    size_t cluster_secret_len;
    char host[256];
    int port;
    char repl_host[256];
    int repl_port; /* -1: no --repl-listen */
} ekv_config_t;

/* Defaults, then EDGEKV_* env, then argv[first..argc). On error prints a message to stderr and
 * returns -1; returns 1 when --help was printed. */
int ekv_config_load(ekv_config_t *cfg, int argc, char **argv, int first);
void ekv_config_free(ekv_config_t *cfg);
void ekv_config_usage(FILE *out);

/*
 * The cluster operator token (server/api/auth.h, docs/API.md "Operator API"): derived from
 * the cluster secret when the node has one, else from <data_dir>/operator.secret, which is
 * made (mode 600) when create is set and it does not exist yet (*created = 1). 0, or -1
 * after a message on stderr.
 */
int ekv_config_operator_token(const ekv_config_t *cfg, int create, char out[65], int *created);

#endif
