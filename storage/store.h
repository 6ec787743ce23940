/*
 * store.h - the RocksDB-backed store: the only module that talks to RocksDB.
 *
 * Threads:
 *  - Reads (ekv_store_kv_get, ekv_store_kv_list, ekv_store_catalog_load, ekv_store_property)
 *    are synchronous and thread-safe. The server calls them ONLY from its reader pool (or at
 *    start-up / from the CLI), never from an event loop.
 *  - Writes are ekv_write_t operations handed to ONE committer thread owned by the store. The
 *    committer takes everything queued, applies it to one WriteBatch (data + one change-log
 *    record per mutation, each with the next sequence number), writes it with one WAL sync
 *    (group commit), and only then completes each op: job.done runs on the loop that owns
 *    opts.doneq. A write is never reported done before it is durable under the sync policy.
 *  - The committer also purges expired keys (through the log, like any delete) and trims the
 *    change log by size/age, between batches.
 *
 * Column families (docs/STORAGE.md has the byte layouts):
 *   meta   accounts, tokens (by SHA-256 hash), namespaces, title index, last seq
 *   kvmeta nsid(16) + key -> msgpack envelope {v, expiration, metadata, value size}; lists
 *          read only this CF, so listing never reads values
 *   kvval  nsid(16) + key -> raw value bytes
 *   exp    be64(expiration) + nsid + key -> "" : index for the expiry purger
 *   log    be64(seq) -> protobuf ChangeRecord (proto/changelog.proto)
 *
 * All functions return 0 or a negative ekv_err_t. RocksDB error strings are logged and freed
 * inside storage/; callers only see EKV_ESTORAGE.
 */
#ifndef EKV_STORAGE_STORE_H
#define EKV_STORAGE_STORE_H

#include "common/workq.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_NSID_LEN       16
#define EKV_ID_HEX_LEN     32 /* account, namespace and token ids: 32 lowercase hex chars */
#define EKV_TOKEN_HASH_LEN 64 /* hex SHA-256 of the token secret */

typedef struct ekv_store_s ekv_store_t;

typedef enum { EKV_SYNC_FSYNC = 0, EKV_SYNC_NONE = 1 } ekv_sync_policy_t;

typedef struct {
    const char *dir;               /* RocksDB directory, created if missing */
    ekv_sync_policy_t sync;        /* fsync (default): WAL synced before any ack */
    size_t block_cache_bytes;      /* RocksDB block cache (0 = 64 MiB) */
    size_t commit_max_batch_bytes; /* bytes of ops in one group commit (0 = 64 MiB) */
    size_t commit_max_queue;       /* ops waiting for the committer before EBUSY (0 = 65536) */
    uint64_t log_retain_bytes;     /* trim the change log above this size (0 = 1 GiB) */
    int64_t log_retain_ms;         /* ...and records older than this (0 = 24 h) */
    int purge_interval_ms;         /* expired-key purge period (0 = 1000) */
    ekv_doneq_t *doneq;            /* completions go here; NULL = done() on committer thread */
} ekv_store_opts_t;

/* Open (create) the database, start the committer. */
int ekv_store_open(ekv_store_t **out, const ekv_store_opts_t *opts);
/* Drain the committer (queued writes are committed and completed), flush, close, free. */
void ekv_store_close(ekv_store_t *s);

/* ---- catalog records (meta CF) ---- */

typedef struct {
    char id[EKV_ID_HEX_LEN + 1];
    char name[128];
    int64_t created_ms;
} ekv_account_t;

enum { EKV_PERM_KV_READ = 1u, EKV_PERM_KV_WRITE = 2u, EKV_PERM_ADMIN = 4u };

typedef struct {
    char hash[EKV_TOKEN_HASH_LEN + 1]; /* hex sha256(secret): the lookup key; secret never stored */
    char id[EKV_ID_HEX_LEN + 1];       /* public id (for list/revoke) */
    char account_id[EKV_ID_HEX_LEN + 1];
    char name[128];
    uint32_t perms; /* EKV_PERM_* bits */
    int64_t created_ms;
} ekv_token_t;

typedef struct {
    char id[EKV_ID_HEX_LEN + 1]; /* hex of nsid */
    char account_id[EKV_ID_HEX_LEN + 1];
    char title[513]; /* <= 512 bytes */
    int64_t created_ms;
} ekv_namespace_t;

typedef struct {
    void *ctx;
    void (*on_account)(void *ctx, const ekv_account_t *a);
    void (*on_token)(void *ctx, const ekv_token_t *t);
    void (*on_namespace)(void *ctx, const ekv_namespace_t *ns);
} ekv_catalog_visitor_t;

/* Visit every account, token and namespace (start-up and CLI only). */
int ekv_store_catalog_load(ekv_store_t *s, const ekv_catalog_visitor_t *v);

/* ---- KV reads ---- */

typedef struct {
    char *value; /* malloc'd; NULL when the caller did not ask for it */
    size_t value_len;
    char *metadata; /* malloc'd JSON text, NULL when the key has no metadata */
    size_t metadata_len;
    int64_t expiration; /* unix seconds, 0 = never */
} ekv_kv_entry_t;

void ekv_kv_entry_clear(ekv_kv_entry_t *e);

/* Read one key. Expired (expiration <= now_s) counts as absent: EKV_EKEY_NOT_FOUND. */
int ekv_store_kv_get(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                     size_t key_len, int want_value, int64_t now_s, ekv_kv_entry_t *out);

typedef struct {
    char *name; /* malloc'd, not NUL-terminated-dependent: use name_len */
    size_t name_len;
    int64_t expiration;
    char *metadata; /* malloc'd or NULL */
    size_t metadata_len;
} ekv_kv_listed_t;

typedef struct {
    ekv_kv_listed_t *items;
    size_t count;
    int more;         /* 1: keys may remain after resume_key */
    char *resume_key; /* last key EXAMINED (live or expired), malloc'd; NULL when !more */
    size_t resume_key_len;
} ekv_kv_list_t;

void ekv_kv_list_clear(ekv_kv_list_t *l);

/*
 * List live keys of a namespace in byte order: keys starting with `prefix` and strictly
 * greater than `after` (NULL = from the start), at most `limit`. Reads only the kvmeta CF.
 * Examines at most limit + scan_budget entries (scan_budget bounds the work spent skipping
 * expired keys), so a page may hold fewer than `limit` items while `more` is 1.
 */
int ekv_store_kv_list(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *prefix,
                      size_t prefix_len, const char *after, size_t after_len, size_t limit,
                      size_t scan_budget, int64_t now_s, ekv_kv_list_t *out);

/* ---- writes (committer) ---- */

typedef enum {
    EKV_OP_KV_PUT = 1,     /* items[0..nitems): key, value, metadata, expiration */
    EKV_OP_KV_DELETE,      /* items[0..nitems): key only; deleting a missing key succeeds */
    EKV_OP_NS_CREATE,      /* ns (id chosen by caller): fails NS_EXISTS / TOO_MANY_NS */
    EKV_OP_NS_RENAME,      /* ns (id, account_id, new title): NS_NOT_FOUND / NS_EXISTS */
    EKV_OP_NS_DELETE,      /* ns (id, account_id): deletes the namespace and all its keys */
    EKV_OP_ACCOUNT_CREATE, /* account */
    EKV_OP_TOKEN_CREATE,   /* token */
    EKV_OP_TOKEN_REVOKE,   /* token (hash, id, account_id): TOKEN_NOT_FOUND */
} ekv_op_type_t;

#define EKV_MAX_NS_PER_ACCOUNT 1000

typedef struct {
    const char *key;
    size_t key_len;
    const char *value; /* KV_PUT only */
    size_t value_len;
    const char *metadata; /* JSON text or NULL */
    size_t metadata_len;
    int64_t expiration; /* unix seconds, 0 = never */
} ekv_kv_item_t;

typedef struct ekv_write_s {
    ekv_job_t job; /* set job.done; it runs (on opts.doneq's loop) after the commit */
    ekv_op_type_t type;
    uint8_t nsid[EKV_NSID_LEN]; /* KV ops */
    ekv_kv_item_t *items;       /* KV ops: borrowed until done */
    size_t nitems;
    ekv_account_t account; /* ACCOUNT_CREATE */
    ekv_token_t token;     /* TOKEN_* */
    ekv_namespace_t ns;    /* NS_* (for NS_RENAME: title = the new title) */
    /* results, valid in done(): */
    int status;       /* 0 or negative ekv_err_t (NS_NOT_FOUND, NS_EXISTS, STORAGE, ...) */
    uint64_t seq;     /* change-log seq of the op's last record (0 if none written) */
    size_t batch_ops; /* how many ops shared this op's group commit (for metrics) */
    void *udata;
} ekv_write_t;

/*
 * Hand a write to the committer. Borrowed buffers stay valid until job.done ran.
 * 0, EKV_EBUSY (queue full: answer 503), EKV_ESHUTDOWN.
 * KV ops on a namespace that does not exist (or is deleted earlier in the queue) complete
 * with status EKV_ENS_NOT_FOUND.
 */
int ekv_store_write_submit(ekv_store_t *s, ekv_write_t *w);
/* Submit and wait (CLI, start-up). Returns w->status. Ignores w->job.done. */
int ekv_store_write_sync(ekv_store_t *s, ekv_write_t *w);

/* ---- observability ---- */

#define EKV_BATCH_HIST_BUCKETS 12 /* ops per commit: <=1,2,4,...,1024,>1024 */

typedef struct {
    uint64_t last_seq;      /* last committed change-log seq */
    uint64_t first_log_seq; /* oldest retained log record (0 if empty) */
    uint64_t commits;       /* group commits (WriteBatch writes) */
    uint64_t committed_ops; /* ops completed by those commits */
    uint64_t commit_failures;
    uint64_t batch_hist[EKV_BATCH_HIST_BUCKETS];
    uint64_t commit_ns_total; /* time spent in rocksdb_write (incl. fsync) */
    uint64_t purged_keys;
    uint64_t log_trimmed;
    size_t queue_depth;
} ekv_store_stats_t;

/* Any thread; no RocksDB call (counters only). */
void ekv_store_stats(ekv_store_t *s, ekv_store_stats_t *out);
/* A RocksDB property ("rocksdb.estimate-num-keys", ...) summed over the CFs; malloc'd text or
 * NULL. Reader threads only. */
char *ekv_store_property(ekv_store_t *s, const char *cf, const char *name);

#endif
