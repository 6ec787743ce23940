/*
 * store.h - the RocksDB-backed store: the only module that talks to RocksDB.
 *
 * Threads:
 *  - Reads (ekv_store_kv_get, ekv_store_kv_list, ekv_store_catalog_load, ekv_store_property)
 *    are synchronous and thread-safe. The server calls them ONLY from its reader pool (or at
 *    start-up / from the CLI), never from an event loop. The one exception is
 *    ekv_store_kv_get_cached, which never does IO and is meant for the loop.
 *  - Writes are ekv_write_t operations handed to ONE committer thread owned by the store. The
 *    committer takes everything queued, applies it to one WriteBatch (data + one change-log
 *    record per mutation, each with the next sequence number), writes it with one WAL sync
 *    (group commit), and only then completes each op: job.done runs on the loop that owns
 *    opts.doneq. A write is never reported done before it is durable under the sync policy.
 *  - The committer also purges expired keys (through the log, like any delete) and trims the
 *    change log by size/age, between batches.
 *  - The replication primitives at the end of this file state their own threads.
 *
 * Column families (docs/STORAGE.md has the byte layouts):
 *   meta   accounts, tokens (by SHA-256 hash), namespaces, title index, last seq
 *   kvmeta nsid(16) + key -> msgpack envelope {v, expiration, metadata, value size}; lists
 *          read only this CF, so listing never reads values
 *   kvval  nsid(16) + key -> raw value bytes
 *   exp    be64(expiration) + nsid + key -> "" : index for the expiry purger
 *   dokv   dons(16) + object id(32) + key -> JSON text : Durable Object storage
 *   doalarm dons(16) + object id(32) -> be64(ms) + object name : one alarm per object
 *   log    be64(seq) -> protobuf ChangeRecord (proto/changelog.proto)
 *
 * All functions return 0 or a negative ekv_err_t. RocksDB error strings are logged and freed
 * inside storage/; callers only see EKV_ESTORAGE.
 */
#ifndef EKV_STORAGE_STORE_H
#define EKV_STORAGE_STORE_H

#include "common/workq.h"
#include "storage/ids.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ekv_store_s ekv_store_t;

typedef enum { EKV_SYNC_FSYNC = 0, EKV_SYNC_NONE = 1 } ekv_sync_policy_t;

typedef struct {
    const char *dir;          /* RocksDB directory, created if missing */
    ekv_sync_policy_t sync;   /* fsync (default): WAL synced before any ack */
    size_t block_cache_bytes; /* RocksDB block cache (0 = 64 MiB) */
    int inline_reads;         /* 1: ekv_store_kv_get_cached answers from memory; 0: it
                               * always says EKV_STORE_NOT_CACHED (docs/STORAGE.md) */
    int warm_cache;           /* 1: a background thread reads kvmeta/kvval into the block cache when
                               * they fit in half of it (storage/warm.c) */
    int low_priority_compactions; /* 1: RocksDB's compaction threads at the lowest CPU priority.
                                   * Process-wide (RocksDB's default env) and not undone. */
    /* Bounded restart: RocksDB replays the unflushed WAL at open, so its size is capped
     * (0 = 32 MiB); a memtable is flushed at this size too (0 = 32 MiB per CF). */
    uint64_t max_wal_bytes;
    size_t memtable_bytes;
    size_t commit_max_batch_bytes; /* bytes of ops in one group commit (0 = 64 MiB) */
    size_t commit_max_queue;       /* ops waiting for the committer before EBUSY (0 = 65536) */
    uint64_t log_retain_bytes;     /* trim the change log above this size (0 = 1 GiB) */
    int64_t log_retain_ms;         /* ...and records older than this (0 = 24 h) */
    int purge_interval_ms;         /* expired-key purge period (0 = 1000) */
    int replica;        /* 1: never expire keys by this node's clock: live expired keys go only
                         * through applied KV_EXPIRE records (ekv_store_apply_records); the purger
                         * still drops stale exp entries. 0 (default): primary behaviour */
    ekv_doneq_t *doneq; /* completions go here; NULL = done() on committer thread */
    /* Called on the committer thread after every durable write that added change-log records
     * (client writes, purges, applied batches, ingest end), with the new last seq. Must be
     * quick and non-blocking (e.g. uv_async_send). NULL = none. */
    void (*on_commit)(void *ctx, uint64_t last_seq);
    void *on_commit_ctx;
    /* Tests only: called on the committer thread when a log trim of records [first, cut) has
     * been decided (pin floor raised to cut, pin_lock released) and before its RocksDB write.
     * NULL = none. */
    void (*on_trim)(void *ctx, uint64_t first, uint64_t cut);
    void *on_trim_ctx;
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

enum {
    EKV_PERM_KV_READ = 1u,
    EKV_PERM_KV_WRITE = 2u,
    EKV_PERM_ADMIN = 4u,
    EKV_PERM_DO_READ = 8u, /* Durable Objects */
    EKV_PERM_DO_WRITE = 16u
};

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
/* Visit one raw meta-CF entry (as carried by a snapshot chunk) if it is an account, token or
 * namespace record; other keys are ignored, undecodable records logged and skipped. Pure: no
 * store needed (edges build their catalog from a replicated snapshot). Always 0. */
int ekv_store_catalog_visit_entry(const char *key, size_t klen, const char *val, size_t vlen,
                                  const ekv_catalog_visitor_t *v);

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

/* ekv_store_kv_get with the value, answered only from memory (memtables and RocksDB's block
 * cache): EKV_STORE_NOT_CACHED (> 0, out empty) when a file would have to be read, when the
 * value is larger than EKV_STORE_INLINE_MAX_VALUE, or when opts.inline_reads is 0. Never does IO,
 * so an event loop may call it (a few microseconds: one kvmeta lookup for a value inline in its
 * envelope; for a larger one that lookup, then kvmeta + kvval again in one MultiGet). Any
 * thread. */
#define EKV_STORE_NOT_CACHED 1
/* Values larger than this are never read inline (a reader copies them, not the loop). */
#define EKV_STORE_INLINE_MAX_VALUE (16 * 1024)
int ekv_store_kv_get_cached(ekv_store_t *s, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                            size_t key_len, int64_t now_s, ekv_kv_entry_t *out);

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
    EKV_OP_DO_NS_PUT,      /* do_ns: create or replace a Durable Object namespace record */
    EKV_OP_DO_NS_DELETE,   /* do_ns (id, account_id): the record, every object's keys, alarms */
    EKV_OP_DO_WRITE,       /* dons + objid + do_*: one storage call of one object, atomic */
    EKV_OP_DO_PTABLE,      /* do_table (+ do_epochs): the DO partition table, meta + record */
    EKV_OP_DO_FENCE,       /* do_partition, do_epoch: only the fencing check, nothing written */
    EKV_OP_DO_EPOCHS,      /* do_epochs: set the fencing epochs (start-up, promotion); no
                            * record */
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

/* A Durable Object namespace (meta "d/<id>"). The API layer owns its rules (unique names per
 * account, limits); the store only checks the fields fit. */
typedef struct {
    char id[EKV_ID_HEX_LEN + 1]; /* hex of dons */
    char account_id[EKV_ID_HEX_LEN + 1];
    char name[513];
    char class_name[513];
    char script[1025]; /* the URL that runs the objects' code; "" = none */
    int use_sqlite;
    uint8_t key[EKV_DO_NSKEY_LEN]; /* object-id derivation key (server/api/do/ids.h) */
    int64_t created_ms;
} ekv_do_ns_t;

/* One key of a DO_WRITE: put (value = JSON text) or delete (del = 1). */
typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int del;
} ekv_do_item_t;

typedef enum { EKV_DO_ALARM_KEEP = 0, EKV_DO_ALARM_SET, EKV_DO_ALARM_DELETE } ekv_do_alarm_op_t;

typedef struct ekv_write_s {
    ekv_job_t job; /* set job.done; it runs (on opts.doneq's loop) after the commit */
    ekv_op_type_t type;
    uint8_t nsid[EKV_NSID_LEN]; /* KV ops */
    ekv_kv_item_t *items;       /* KV ops: borrowed until done */
    size_t nitems;
    ekv_account_t account; /* ACCOUNT_CREATE */
    ekv_token_t token;     /* TOKEN_* */
    ekv_namespace_t ns;    /* NS_* (for NS_RENAME: title = the new title) */
    /* DO ops (borrowed until done). DO_WRITE applies, in order: do_delete_all (every key and
     * the alarm of the object), do_items, then the alarm op. */
    const ekv_do_ns_t *do_ns; /* DO_NS_PUT, DO_NS_DELETE */
    uint8_t objid[EKV_DO_OBJID_LEN];
    int do_delete_all;
    const ekv_do_item_t *do_items;
    size_t do_nitems;
    ekv_do_alarm_op_t do_alarm_op;
    int64_t do_alarm_ms;
    const char *do_object_name; /* NULL or "": unknown */
    /* Fencing (docs/DURABLE-OBJECTS.md "Owners across the cluster"): a DO_WRITE or DO_FENCE
     * with do_fenced set completes with EKV_EDO_MOVED, writing nothing, unless do_epoch is
     * the current epoch of do_partition (< EKV_DO_PARTITIONS) in the committer's table, which
     * DO_PTABLE and DO_EPOCHS set (all 0 at open). */
    int do_fenced;
    uint32_t do_partition;
    uint64_t do_epoch;
    const void *do_table; /* DO_PTABLE: the encoded table (opaque here) */
    size_t do_table_len;
    const uint64_t *do_epochs; /* DO_PTABLE (NULL: epochs unchanged), DO_EPOCHS: one per
                                * partition, copied */
    /* results, valid in done(): */
    int status;       /* 0 or negative ekv_err_t (NS_NOT_FOUND, NS_EXISTS, STORAGE, ...) */
    uint64_t seq;     /* change-log seq of the op's last record (0 if none written) */
    size_t batch_ops; /* how many ops shared this op's group commit (for metrics) */
    void *udata;
    /* not used by the store: the server's --sync-replicas hold keeps the handler's done and
     * the request here while job.done points at its own callback */
    ekv_job_fn held_done;
    void *held_req;
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

/* A DO_WRITE change record (changelog.proto) back into the write that makes it: w's type,
 * ids and DO fields, borrowing r's bytes, and *items (malloc'd, or NULL; free it after the
 * write is done). Replica apply, and an owner's commit on the primary. 0, EKV_EBAD_REQUEST
 * (ids of the wrong size), EKV_ENOMEM. */
struct Edgekv__ChangeRecord;
int ekv_store_do_write_of_record(const struct Edgekv__ChangeRecord *r, ekv_write_t *w,
                                 ekv_do_item_t **items);

/* ---- Durable Object reads (reader threads; docs/DURABLE-OBJECTS.md) ---- */

typedef struct {
    void *ctx;
    void (*on_ns)(void *ctx, const ekv_do_ns_t *ns);
    void (*on_alarm)(void *ctx, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                     size_t name_len);
} ekv_do_visitor_t;

/* Visit every DO namespace, then every alarm (start-up of the objects' owner). 0 or
 * EKV_ESTORAGE. Undecodable records are logged and skipped. */
int ekv_store_do_load(ekv_store_t *s, const ekv_do_visitor_t *v);

/* The stored partition table (meta EKV_KEY_DO_PTABLE): 0 and *out (malloc'd) / *len, or
 * EKV_EKEY_NOT_FOUND (none yet), EKV_ESTORAGE. */
int ekv_store_do_ptable_get(ekv_store_t *s, char **out, size_t *len);

/* Stored alarms of the partitions set in `parts` (bitmap, EKV_DO_PARTITIONS bits, bit p = byte
 * p/8 bit p%8), in key order strictly after `after` (dons || objid, NULL = from the start),
 * at most `limit` through v->on_alarm; *more = 1 when others may follow. A full scan of the
 * alarm CF (alarms are few next to keys). 0 or EKV_ESTORAGE. */
int ekv_store_do_alarms_of(ekv_store_t *s, const uint8_t *parts, const uint8_t *after, size_t limit,
                           const ekv_do_visitor_t *v, int *more);

/* One key of an object: 0 and *value (malloc'd JSON text), or EKV_EKEY_NOT_FOUND. */
int ekv_store_do_get(ekv_store_t *s, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], const char *key, size_t key_len,
                     char **value, size_t *value_len);

typedef struct {
    char *key; /* malloc'd; value follows it in the same allocation */
    size_t key_len;
    char *value;
    size_t value_len;
} ekv_do_kv_t;

typedef struct {
    ekv_do_kv_t *items;
    size_t count;
    int more; /* 1: items remain in the range after the last one */
} ekv_do_list_t;
void ekv_do_list_clear(ekv_do_list_t *l);

/* The object's keys in [lo, hi) (has_hi 0 = no upper bound), ascending or (reverse)
 * descending, at most limit items and about max_bytes of keys + values (at least one item). */
int ekv_store_do_list(ekv_store_t *s, const uint8_t dons[EKV_NSID_LEN],
                      const uint8_t objid[EKV_DO_OBJID_LEN], const char *lo, size_t lo_len,
                      const char *hi, size_t hi_len, int has_hi, int reverse, size_t limit,
                      size_t max_bytes, ekv_do_list_t *out);

/* Ids of the namespace's objects that have stored data (a key or an alarm), ascending, strictly
 * after `after` (NULL = from the first), at most limit into ids[]. *n = count, *more = 1 when
 * others follow. One seek per object. 0 or EKV_ESTORAGE. */
int ekv_store_do_objects(ekv_store_t *s, const uint8_t dons[EKV_NSID_LEN], const uint8_t *after,
                         size_t limit, uint8_t (*ids)[EKV_DO_OBJID_LEN], size_t *n, int *more);

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
    uint64_t lowest_pin;           /* lowest log pin (ekv_store_log_pin), 0 = none */
    uint64_t block_cache_usage;    /* bytes in RocksDB's block cache now */
    uint64_t block_cache_capacity; /* its size (opts.block_cache_bytes) */
    uint64_t warm_scans;           /* completed block-cache warming scans */
} ekv_store_stats_t;

/* Any thread; no RocksDB call (counters only). */
void ekv_store_stats(ekv_store_t *s, ekv_store_stats_t *out);
/* A RocksDB property ("rocksdb.estimate-num-keys", ...) summed over the CFs; malloc'd text or
 * NULL. Reader threads only. */
char *ekv_store_property(ekv_store_t *s, const char *cf, const char *name);

/* ---- for replication (docs/STORAGE.md, "For replication") ---- */

/* Last committed (durable) change-log seq. Any thread; one atomic load, no lock, no RocksDB
 * call. Records 1..ekv_store_last_seq() have been committed (older ones may be trimmed). */
uint64_t ekv_store_last_seq(ekv_store_t *s);

struct Edgekv__ChangeRecord; /* changelog.pb-c.h */

typedef struct {
    uint64_t seq;
    uint8_t *data; /* packed protobuf ChangeRecord (proto/changelog.proto); malloc'd when it
                    * comes from ekv_store_log_read, borrowed in ekv_store_apply_records */
    size_t len;
    /* ekv_store_apply_records only: data already unpacked by the caller (borrowed, must be
     * exactly data's content), so the store does not unpack it again; NULL = the store
     * unpacks data. Always NULL from ekv_store_log_read. */
    const struct Edgekv__ChangeRecord *rec;
} ekv_log_record_t;

typedef struct {
    ekv_log_record_t *recs; /* recs[i].seq == recs[0].seq + i */
    size_t count;
    size_t bytes; /* sum of recs[i].len */
} ekv_log_batch_t;

/* Free every record and the array; *b is left empty (count 0) and may be reused. */
void ekv_log_batch_clear(ekv_log_batch_t *b);

/*
 * Read consecutive committed log records starting EXACTLY at from_seq (>= 1): at most
 * max_records (0 counts as 1) and at most max_bytes of record data, except that the first
 * record is always returned whatever its size. Stops early at a hole. Reader threads (any
 * thread; no committer lock; reads a consistent RocksDB view). out must be empty or cleared;
 * on success the caller owns it (ekv_log_batch_clear), on error it is left empty.
 *   0, count >= 1   records from_seq .. from_seq + count - 1
 *   0, count == 0   caught up: from_seq > ekv_store_last_seq()
 *   EKV_ELOG_GAP    from_seq was trimmed (older than the oldest retained record) or the first
 *                   record found is not from_seq: the replica needs a snapshot
 *   EKV_EBAD_REQUEST (from_seq 0), EKV_ENOMEM, EKV_ESTORAGE
 */
int ekv_store_log_read(ekv_store_t *s, uint64_t from_seq, size_t max_records, size_t max_bytes,
                       ekv_log_batch_t *out);

#define EKV_LOG_MAX_PINS 64

/*
 * Trim pins: log trimming (size and age, committer thread) never deletes records >= the
 * lowest pinned seq. Any thread (a mutex shared with the trimmer; a pin call waits at most for
 * one trim DeleteRange). A successful pin of seq guarantees every record >= seq that was or
 * will be committed stays readable until it is unpinned/moved.
 *   pin:      0 and *pin_id (0..EKV_LOG_MAX_PINS-1); EKV_EBUSY when all pins are taken;
 *             EKV_ELOG_GAP when seq is already trimmed (< oldest retained); EKV_EBAD_REQUEST
 *             for seq 0.
 *   pin_move: re-point a pin (usually forward as a replica acks): 0, EKV_ELOG_GAP (seq
 *             already trimmed: the pin is left unchanged), EKV_EBAD_REQUEST (bad id or seq 0).
 *   unpin:    0 or EKV_EBAD_REQUEST (bad or free id).
 * The lowest pin is in ekv_store_stats().lowest_pin.
 */
int ekv_store_log_pin(ekv_store_t *s, uint64_t seq, int *pin_id);
int ekv_store_log_pin_move(ekv_store_t *s, int pin_id, uint64_t seq);
int ekv_store_log_unpin(ekv_store_t *s, int pin_id);

/*
 * Replica apply: apply the records of batch (as returned by ekv_store_log_read on the primary)
 * in ONE WriteBatch written with the store's sync policy. Each record's mutation goes through
 * the primary's own apply code (identical data layouts, catalog index updated), each record is
 * stored verbatim in this store's log under the SAME seq, and s/last_seq = the last seq.
 * Runs as one op on the committer thread (single writer; never grouped with other ops); the
 * caller BLOCKS until it is durable, so call it from a worker thread, never an event loop.
 * The batch is borrowed for the duration of the call (records' data and rec included: a
 * replica passes the bytes of the frame it received, and the records it unpacked from them).
 *   0                 applied; ekv_store_last_seq() == last record's seq (empty batch: no-op)
 *   EKV_ELOG_GAP      recs[0].seq != last_seq + 1, the batch is not contiguous, or a record's
 *                     packed seq differs from recs[i].seq: nothing written
 *   EKV_EBAD_REQUEST  a record does not decode or names an unknown op: nothing written
 *   other             a record is rejected by the apply checks (e.g. EKV_ENS_NOT_FOUND: the
 *                     replica diverged) or EKV_ESTORAGE/EKV_EBUSY/EKV_ESHUTDOWN: nothing written
 * A replica store must not take ordinary writes (they would consume sequence numbers) and
 * should be opened with opts.replica = 1 (no local expiry).
 */
int ekv_store_apply_records(ekv_store_t *s, const ekv_log_batch_t *batch);

/*
 * Checksum of the replicated keyspace at one RocksDB snapshot: XXH3-64 streamed over
 * (u8 cf id, be64 key length, key, be64 value length, value) for every entry, in key order, of
 * meta (except node-local "s/" keys such as s/last_seq), dokv and doalarm, and over every KV key
 * by its content (key, expiration, metadata, flags, value), whether the value is inline in its
 * envelope or in kvval (docs/STORAGE.md "Checksum"). The log and the exp index are excluded
 * (exp is derived from kvmeta, and its stale entries are dropped by each node's purger at its
 * own time). Two stores holding the same data give the same sum, whatever envelope version
 * wrote it; *nkeys counts each KV key once. Reader threads; reads the whole keyspace (O(data)).
 * 0 or EKV_ESTORAGE/EKV_ENOMEM.
 */
int ekv_store_checksum(ekv_store_t *s, uint64_t *sum, uint64_t *nkeys);

/* ---- snapshots (docs/STORAGE.md, "Snapshots") ---- */

/* Column families a snapshot carries (same numbers as the checksum's cf ids). The log is not
 * copied: the replica streams it from ekv_snapshot_seq() + 1 afterwards. */
typedef enum {
    EKV_SNAP_CF_META = 1, /* except node-local "s/" keys */
    EKV_SNAP_CF_KVMETA = 2,
    EKV_SNAP_CF_KVVAL = 3,
    EKV_SNAP_CF_EXP = 4,     /* copied so the replica's purger sees the primary's expirations */
    EKV_SNAP_CF_DOKV = 5,    /* Durable Object storage */
    EKV_SNAP_CF_DOALARM = 6, /* Durable Object alarms */
} ekv_snapshot_cf_t;

typedef struct ekv_snapshot_s ekv_snapshot_t;

/* A position in a snapshot: the entry (cf, key) last received. cf 0 = before the start (key
 * ignored). key is borrowed: the call reads it only while it runs. */
typedef struct {
    int cf; /* 0 or an ekv_snapshot_cf_t */
    const char *key;
    size_t key_len;
} ekv_snapshot_pos_t;

typedef struct {
    int cf;    /* ekv_snapshot_cf_t */
    char *key; /* malloc'd; value points into the same allocation, just after the key */
    size_t key_len;
    char *value;
    size_t value_len;
} ekv_snapshot_entry_t;

typedef struct {
    ekv_snapshot_entry_t *entries;
    size_t count;
    size_t bytes; /* sum of key_len + value_len over entries: <= max_bytes unless count == 1 */
    ekv_snapshot_pos_t next; /* resume after this (the last entry; borrows its key from
                              * entries, so copy it before ekv_snapshot_chunk_clear); equals
                              * `after` when count == 0 */
    int done;                /* 1: no entry after `next` */
} ekv_snapshot_chunk_t;

/* Free every entry and the array; *c is left empty and may be reused. */
void ekv_snapshot_chunk_clear(ekv_snapshot_chunk_t *c);

/*
 * Snapshot source (primary). open: pins the log at S + 1 (a trim pin, see ekv_store_log_pin),
 * then takes a RocksDB snapshot and reads S = s/last_seq THROUGH it, so S is exactly the last
 * record whose effects the snapshot holds (s/last_seq is written in the same WriteBatch as the
 * data), then moves the pin to S + 1: every record after the snapshot stays readable with
 * ekv_store_log_read until close. Any thread (no committer round-trip).
 *   0 and *out; EKV_EBUSY (all log pins taken), EKV_ELOG_GAP (could not pin: the log was
 *   trimmed past last_seq repeatedly while pinning), EKV_ENOMEM, EKV_ESTORAGE.
 * The caller owns *out and must ekv_store_snapshot_close it before ekv_store_close(s).
 */
int ekv_store_snapshot_open(ekv_store_t *s, ekv_snapshot_t **out);
/* S: the snapshot holds the effects of records 1..S exactly. Any thread. */
uint64_t ekv_store_snapshot_seq(const ekv_snapshot_t *snap);
/*
 * The entries strictly after `after` (NULL = from the start) in (cf, key) order, meta, kvmeta,
 * kvval, exp: as many as fit in max_bytes of key + value bytes (0 counts as 1), but always at
 * least one while any remain. Stateless: any position previously returned (or acknowledged
 * by a replica) can be resumed from, in any order, any number of times; memory is bounded by
 * max_bytes plus one oversized entry. Reader threads; one snapshot may be read by several
 * threads at once (several replicas can share one snapshot). out must be empty or cleared;
 * on success the caller owns it (ekv_snapshot_chunk_clear), on error it is left empty.
 *   0 (count may be 0 only with done == 1), EKV_EBAD_REQUEST (bad after->cf),
 *   EKV_ENOMEM, EKV_ESTORAGE.
 */
int ekv_store_snapshot_next(ekv_snapshot_t *snap, const ekv_snapshot_pos_t *after, size_t max_bytes,
                            ekv_snapshot_chunk_t *out);
/* Release the RocksDB snapshot and the log pin, free snap. NULL is a no-op. Any thread, once
 * no ekv_store_snapshot_next call on snap is running. */
void ekv_store_snapshot_close(ekv_snapshot_t *snap);

/*
 * Snapshot ingest (replica). Each call is one internal op through the committer (a group of
 * its own, like ekv_store_apply_records: the store keeps a single writer) and BLOCKS until it
 * is written: worker threads only, never an event loop.
 *  begin: in ONE WriteBatch, synced: deletes every entry of meta (except "s/" keys), kvmeta,
 *         kvval, exp and the log, sets s/last_seq = 0 and writes the durable marker s/ingest.
 *         May be called again at any time to restart (e.g. after a crash mid-ingest).
 *  chunk: writes the chunk's entries (from ekv_store_snapshot_next on the primary) in one
 *         WriteBatch, NOT synced (a crash before end means restarting; end's synced write
 *         makes every earlier chunk durable). The chunk is borrowed for the call.
 *  end:   s/last_seq = snap_seq and the marker removed (one synced batch), then the
 *         committer's state is reloaded: last_seq = snap_seq, empty log (log_read of
 *         <= snap_seq is EKV_ELOG_GAP), catalog index from the ingested meta. Afterwards
 *         ekv_store_apply_records continues at snap_seq + 1.
 * While ingesting (from begin to end, also across a reopen) every other write, including
 * ekv_store_apply_records, fails with EKV_EINGEST_PENDING and the purger is paused.
 *   0; EKV_EINGEST_PENDING (chunk/end without begin: not ingesting); EKV_EBAD_REQUEST (chunk
 *   entry with an unknown cf, an empty key or a meta "s/" key: nothing of the chunk written);
 *   EKV_ESTORAGE/EKV_ENOMEM/EKV_EBUSY/EKV_ESHUTDOWN.
 */
int ekv_store_ingest_begin(ekv_store_t *s);
int ekv_store_ingest_chunk(ekv_store_t *s, const ekv_snapshot_chunk_t *chunk);
int ekv_store_ingest_end(ekv_store_t *s, uint64_t snap_seq);
/* 1 while an ingest is begun and not ended, durably: a store reopened after a crash mid-ingest
 * reports 1 and holds partial data; the caller must restart (begin) the ingest. Any thread
 * (one atomic load). */
int ekv_store_ingest_pending(ekv_store_t *s);

/* ---- node state (docs/REPLICATION.md, "History and epochs") ---- */

#define EKV_HISTORY_ID_LEN 32 /* lowercase hex */

/* This node's place in the replication history: node-local (meta "s/node", never
 * replicated, kept across snapshot ingests). */
typedef struct {
    uint64_t epoch;                           /* 0 = never set (fresh store) */
    char history_id[EKV_HISTORY_ID_LEN + 1];  /* the history this node's log belongs to */
    char history2_id[EKV_HISTORY_ID_LEN + 1]; /* the previous history ("" = none)... */
    uint64_t history2_seq;                    /* ...which this node shares up to this seq */
    uint64_t fenced_epoch;                    /* > 0: a primary of this epoch exists */
    char fenced_by[64];                       /* its node id (for messages) */
} ekv_node_state_t;

/* Load the node state; a store that has none gives an all-zero state. 0 or EKV_ESTORAGE /
 * EKV_EBAD_REQUEST (unparsable record). Any thread (blocking RocksDB read). */
int ekv_store_node_load(ekv_store_t *s, ekv_node_state_t *out);
/* Replace the node state: one synced put, whatever the sync policy. Any thread (blocking:
 * never an event loop). 0 or EKV_ESTORAGE. */
int ekv_store_node_save(ekv_store_t *s, const ekv_node_state_t *st);

/* Switch expiry behaviour at run time (a promoted replica becomes a primary): 1 = replica
 * (no local expiry, see opts.replica), 0 = primary. Any thread. */
void ekv_store_set_replica(ekv_store_t *s, int replica);

#endif
