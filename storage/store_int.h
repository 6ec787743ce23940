/*
 * store_int.h - the store's private state, shared by the storage/ files that implement
 * store.h. Not for use outside storage/.
 *
 * Ownership by thread:
 *  - open/close: everything.
 *  - readers (any thread): db, cf[], ropts, opts; never the committer's fields or locks.
 *  - committer thread: wb, bufs, idx, last_seq, log_bytes, first_log_seq, maintenance state.
 *  - qlock guards the submit queue; stats_lock guards st; pin_lock guards pins[] and
 *    pin_floor (lock order: pin_lock before stats_lock).
 */
#ifndef EKV_STORAGE_STORE_INT_H
#define EKV_STORAGE_STORE_INT_H

#include "common/buf.h"
#include "storage/catidx.h"
#include "storage/store.h"

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdint.h>

typedef enum {
    EKV_CF_DEFAULT = 0, /* required by RocksDB, unused */
    EKV_CF_META,
    EKV_CF_KVMETA,
    EKV_CF_KVVAL,
    EKV_CF_EXP,
    EKV_CF_DOKV,    /* Durable Object storage */
    EKV_CF_DOALARM, /* Durable Object alarms */
    EKV_CF_LOG,
    EKV_CF_COUNT
} ekv_cf_t;

extern const char *const ekv__cf_names[EKV_CF_COUNT];

/* Internal op type (never in the public enum): apply a replicated ekv_log_batch_t, passed in
 * w->udata. The committer runs it alone in its group. */
#define EKV__OP_APPLY_RECORDS ((ekv_op_type_t)100)
/* Snapshot ingest ops (snapshot.c), each a group of its own: udata = the chunk (CHUNK) or a
 * uint64_t snap_seq (END). */
#define EKV__OP_INGEST_BEGIN ((ekv_op_type_t)101)
#define EKV__OP_INGEST_CHUNK ((ekv_op_type_t)102)
#define EKV__OP_INGEST_END   ((ekv_op_type_t)103)
/* Internal ops that always form a group of their own. */
#define EKV__OP_SOLO(t) ((int)(t) >= 100)

/* Entries the purger examines per round (it comes back sooner when more are due). */
#define EKV_PURGE_MAX_PER_ROUND 1000

struct ekv_store_s {
    ekv_store_opts_t opts; /* defaults applied; opts.dir points at dir */
    char *dir;

    /* RocksDB handles (immutable after open). */
    rocksdb_t *db;
    rocksdb_options_t *dbopts;
    rocksdb_options_t *cfopts[EKV_CF_COUNT];
    rocksdb_block_based_table_options_t *bbto[EKV_CF_COUNT];
    rocksdb_cache_t *cache;
    rocksdb_env_t *env; /* RocksDB's default env: its compaction pool runs at low priority */
    rocksdb_column_family_handle_t *cf[EKV_CF_COUNT];
    rocksdb_readoptions_t *ropts;        /* point reads: shared, never modified */
    rocksdb_readoptions_t *ropts_cached; /* the same, memtables + block cache only (no IO) */
    rocksdb_writeoptions_t *wopts;       /* group commits and purges: sync per policy */
    rocksdb_writeoptions_t *wopts_lazy;  /* log trims: never synced */

    /* Submit queue: ekv_write_t linked through job.next. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond; /* CLOCK_MONOTONIC */
    ekv_job_t *qhead, *qtail;
    size_t qlen;
    int stopping;
    int committer_idle; /* the committer waits on qcond */
    pthread_t committer;
    int committer_started;

    /* Committer-owned. */
    rocksdb_writebatch_t *wb;
    ekv_buf_t kbuf; /* keys */
    ekv_buf_t vbuf; /* envelopes, catalog records */
    ekv_buf_t pbuf; /* packed ChangeRecords */
    ekv_catidx_t idx;
    int idx_dirty;            /* reload idx from the DB before the next batch */
    uint64_t last_seq;        /* last durable seq */
    uint64_t first_log_seq;   /* oldest retained log record, 0 = log empty */
    uint64_t log_bytes;       /* approximate bytes of retained log records */
    uint64_t batch_log_bytes; /* bytes of log records in the batch being built */
    uint64_t next_maint_ns;   /* monotonic time of the next purge / age-trim round */
    int purge_more;           /* last purge round hit its limit: run again soon */

    /* Set by ekv__apply_records around one record: ekv__log_put stores these bytes verbatim
     * (the primary's record) instead of packing a new one. Committer-owned. */
    const uint8_t *repl_raw;
    size_t repl_raw_len;

    _Atomic int replica_mode; /* opts.replica, switchable by ekv_store_set_replica */

    uint64_t *do_epochs; /* committer-owned: EKV_DO_PARTITIONS fencing epochs (apply.c) */

    int ingesting;             /* committer-owned: a snapshot ingest is begun and not ended */
    _Atomic int pub_ingesting; /* copy for ekv_store_ingest_pending (any thread) */

    _Atomic uint64_t pub_last_seq; /* copy of last_seq for any thread (release/acquire) */

    /* warmer (warm.c): its thread owns warm_seen; warm_stop/warm_cond wake it to stop */
    pthread_t warmer;
    int warmer_started;
    int warm_sync_inited;
    _Atomic int warm_stop;
    pthread_mutex_t warm_lock;
    pthread_cond_t warm_cond;
    char **warm_seen; /* live kvmeta/kvval files at the last scan */
    size_t warm_nseen;
    _Atomic uint64_t warm_scans;

    pthread_mutex_t pin_lock;
    uint64_t pins[EKV_LOG_MAX_PINS]; /* 0 = free slot */
    uint64_t pin_floor; /* records >= this were never trimmed nor are being (pins must be) */

    pthread_mutex_t stats_lock;
    ekv_store_stats_t st; /* queue_depth is filled in by ekv_store_stats */
};

/* Log a RocksDB error text (what + err), free it, return EKV_ESTORAGE. err may be NULL. */
int ekv__store_rocks_err(const char *what, char *err);

/* catalog.c: rebuild s->idx from the meta CF. 0 or EKV_ESTORAGE/EKV_ENOMEM. */
int ekv__catalog_index_load(ekv_store_t *s);

/* changelog.c */
/* Recover last_seq, first_log_seq and log_bytes at open. */
int ekv__log_recover(ekv_store_t *s);
/* Add rec (rec->seq set, rec->value ignored) + value to s->wb under key be64(rec->seq).
 * Returns the record's encoded size, or a negative ekv_err_t. */
struct Edgekv__ChangeRecord;
int64_t ekv__log_put(ekv_store_t *s, struct Edgekv__ChangeRecord *rec, const char *value,
                     size_t value_len);
/* Put be64(seq) under "s/last_seq" in s->wb. */
void ekv__log_put_last_seq(ekv_store_t *s, uint64_t seq);
/* Trim the log by size; by age too when check_age. Committer thread. */
void ekv__log_trim(ekv_store_t *s, int check_age);

/* apply.c: add one op's mutations to s->wb (and update s->idx). Returns the op's status;
 * *fatal is set (and the whole batch must be abandoned) when the batch may hold a partial op. */
int ekv__apply_op(ekv_store_t *s, ekv_write_t *w, uint64_t *seq, int64_t now_ms, int *fatal);

/* apply.c: apply a replicated batch (EKV__OP_APPLY_RECORDS); same contract as ekv__apply_op. */
int ekv__apply_records(ekv_store_t *s, const ekv_log_batch_t *b, uint64_t *seq, int *fatal);

/* purge.c: one purge round (committer thread). Returns the number of keys purged, or a
 * negative ekv_err_t; *more = 1 when the round hit its limit. */
int ekv__purge_round(ekv_store_t *s, int64_t now_s, int *more);

/* committer.c */
int ekv__committer_start(ekv_store_t *s);
void ekv__committer_stop(ekv_store_t *s);

/* Committed-state bookkeeping after a successful write of records (first..last]. */
void ekv__store_note_commit(ekv_store_t *s, uint64_t last_seq, uint64_t log_bytes_added);

/* snapshot.c: at open, set ingesting from the s/ingest marker. 0 or EKV_ESTORAGE. */
int ekv__ingest_recover(ekv_store_t *s);
/* snapshot.c: run one EKV__OP_INGEST_* op alone (its own batch and write). Returns its status. */
int ekv__ingest_run(ekv_store_t *s, ekv_write_t *w);

/* repl.c: lowest pin (0 = none); caller holds pin_lock. */
uint64_t ekv__pin_lowest_locked(ekv_store_t *s);

/* warm.c: start the block-cache warmer (when opts.warm_cache) / stop and join it. */
int ekv__warmer_start(ekv_store_t *s);
void ekv__warmer_stop(ekv_store_t *s);

#endif
