/*
 * store.c - opening and closing the database: directory, RocksDB options, column families,
 * recovery of the committer's state; plus the counters-only observability calls.
 *
 * Options, and why:
 *  - one LRU block cache (opts.block_cache_bytes) shared by every CF;
 *  - LZ4 on every CF (cheap, and values/log records often compress); if the RocksDB build
 *    lacks LZ4 we reopen without compression rather than fail;
 *  - full bloom filters (10 bits/key) on meta, kvmeta and kvval: gets of missing keys (cache
 *    misses at the edge ask for keys that do not exist) skip the SSTs. exp and log are only
 *    scanned in order, so no filter there;
 *  - increase_parallelism(2): flushes and compactions get their own threads; compactions at
 *    the lowest CPU priority with opts.low_priority_compactions (they take idle CPU, not the
 *    loop's);
 *  - max_total_wal_size bounds the WAL: meta is written by every batch (s/last_seq), so the
 *    WAL would otherwise wait for rarely-flushed CFs.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const ekv__cf_names[EKV_CF_COUNT] = {"default", "meta", "kvmeta",  "kvval",
                                                 "exp",     "dokv", "doalarm", "log"};

#define DEFAULT_BLOCK_CACHE   ((size_t)64 << 20)
#define DEFAULT_BATCH_BYTES   ((size_t)64 << 20)
#define DEFAULT_MAX_QUEUE     ((size_t)65536)
#define DEFAULT_LOG_BYTES     ((uint64_t)1 << 30)
#define DEFAULT_LOG_MS        ((int64_t)24 * 3600 * 1000)
#define DEFAULT_PURGE_MS      1000
#define DEFAULT_WAL_BYTES     ((uint64_t)32 << 20)
#define DEFAULT_MEMTABLE      ((size_t)32 << 20)
#define BLOOM_BITS_PER_KEY    10.0
#define DATA_BLOCK_HASH_RATIO 0.75
/* kvmeta/kvval/dokv data blocks (RocksDB's default is 4 KiB): a quarter of the index entries
 * and block-cache entries for the same data, so a point read's index search and cache lookup
 * touch fewer cache lines (docs/STORAGE.md "RocksDB options") */
#define KV_BLOCK_BYTES (16 * 1024)
/* memtable bloom filter, as a fraction of the memtable size: a point read skips the memtables
 * that do not hold its key without walking their skip lists */
#define MEMTABLE_BLOOM_RATIO 0.02

int ekv__store_rocks_err(const char *what, char *err)
{
    ekv_log_error("rocksdb error", "op=%s err=\"%s\"", what, err ? err : "?");
    free(err);
    return EKV_ESTORAGE;
}

/* mkdir -p; 0 or EKV_ESTORAGE. */
static int mkdir_p(const char *dir)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p)
        return EKV_ENOMEM;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            ekv_log_error("mkdir failed", "dir=%s errno=%d", p, errno);
            free(p);
            return EKV_ESTORAGE;
        }
        p[i] = c;
    }
    free(p);
    return 0;
}

static void apply_defaults(ekv_store_opts_t *o)
{
    if (!o->block_cache_bytes)
        o->block_cache_bytes = DEFAULT_BLOCK_CACHE;
    if (!o->max_wal_bytes)
        o->max_wal_bytes = DEFAULT_WAL_BYTES;
    if (!o->memtable_bytes)
        o->memtable_bytes = DEFAULT_MEMTABLE;
    if (!o->commit_max_batch_bytes)
        o->commit_max_batch_bytes = DEFAULT_BATCH_BYTES;
    if (!o->commit_max_queue)
        o->commit_max_queue = DEFAULT_MAX_QUEUE;
    if (!o->log_retain_bytes)
        o->log_retain_bytes = DEFAULT_LOG_BYTES;
    if (o->log_retain_ms <= 0)
        o->log_retain_ms = DEFAULT_LOG_MS;
    if (o->purge_interval_ms <= 0)
        o->purge_interval_ms = DEFAULT_PURGE_MS;
}

static void destroy_options(ekv_store_t *s)
{
    for (int i = 0; i < EKV_CF_COUNT; i++) {
        if (s->cfopts[i])
            rocksdb_options_destroy(s->cfopts[i]);
        s->cfopts[i] = NULL;
    }
    if (s->dbopts)
        rocksdb_options_destroy(s->dbopts);
    s->dbopts = NULL;
}

static int build_options(ekv_store_t *s, int compression)
{
    s->dbopts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(s->dbopts, 1);
    rocksdb_options_set_create_missing_column_families(s->dbopts, 1);
    rocksdb_options_set_env(s->dbopts, s->env);
    rocksdb_options_increase_parallelism(s->dbopts, 2);
    rocksdb_options_set_max_total_wal_size(s->dbopts, s->opts.max_wal_bytes);
    rocksdb_options_set_keep_log_file_num(s->dbopts, 4);
    rocksdb_options_set_bytes_per_sync(s->dbopts, 1 << 20);
    /* every table stays open: the inline read (read.c) relies on it, because in 7.8 a no-IO
     * Get whose table is not in the table cache answers OK with an empty value (fixed
     * upstream later), which an inline read would serve */
    rocksdb_options_set_max_open_files(s->dbopts, -1);
    /* not in this RocksDB's C API: through its option-string parser */
    rocksdb_options_t *n = rocksdb_options_create();
    char *err = NULL;
    rocksdb_get_options_from_string(
        s->dbopts, "avoid_flush_during_recovery=true;avoid_unnecessary_blocking_io=true", n, &err);
    if (err) {
        ekv_log_warn("rocksdb options not applied",
                     "opts=avoid_flush_during_recovery,avoid_unnecessary_blocking_io err=\"%s\"",
                     err);
        free(err);
        rocksdb_options_destroy(n);
    } else {
        rocksdb_options_destroy(s->dbopts);
        s->dbopts = n;
    }

    for (int i = 0; i < EKV_CF_COUNT; i++) {
        rocksdb_options_t *o = rocksdb_options_create();
        rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
        rocksdb_block_based_options_set_block_cache(t, s->cache);
        if (i == EKV_CF_META || i == EKV_CF_KVMETA || i == EKV_CF_KVVAL || i == EKV_CF_DOALARM) {
            /* the table options take ownership of the policy */
            rocksdb_block_based_options_set_filter_policy(
                t, rocksdb_filterpolicy_create_bloom_full(BLOOM_BITS_PER_KEY));
        }
        if (i == EKV_CF_KVMETA || i == EKV_CF_KVVAL || i == EKV_CF_DOKV) {
            /* point reads find their key in a block by hash, not binary search */
            rocksdb_block_based_options_set_data_block_index_type(
                t, rocksdb_block_based_table_data_block_index_type_binary_search_and_hash);
            rocksdb_block_based_options_set_data_block_hash_ratio(t, DATA_BLOCK_HASH_RATIO);
            rocksdb_block_based_options_set_block_size(t, KV_BLOCK_BYTES);
            rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, MEMTABLE_BLOOM_RATIO);
            rocksdb_options_set_memtable_whole_key_filtering(o, 1);
        }
        rocksdb_options_set_block_based_table_factory(o, t); /* copies t */
        rocksdb_block_based_options_destroy(t);
        rocksdb_options_set_compression(o, compression);
        rocksdb_options_set_write_buffer_size(o, s->opts.memtable_bytes);
        s->cfopts[i] = o;
    }
    return 0;
}

static int open_db(ekv_store_t *s)
{
    int compressions[2] = {rocksdb_lz4_compression, rocksdb_no_compression};
    for (int attempt = 0; attempt < 2; attempt++) {
        char *err = NULL;
        build_options(s, compressions[attempt]);
        s->db =
            rocksdb_open_column_families(s->dbopts, s->dir, EKV_CF_COUNT, ekv__cf_names,
                                         (const rocksdb_options_t *const *)s->cfopts, s->cf, &err);
        if (s->db)
            return 0;
        int retry = attempt == 0 && err && strstr(err, "ompression") != NULL;
        if (!retry)
            return ekv__store_rocks_err("open", err);
        ekv_log_warn("lz4 unavailable, opening without compression", "err=\"%s\"", err);
        free(err);
        destroy_options(s);
    }
    return EKV_ESTORAGE;
}

static void store_free(ekv_store_t *s)
{
    ekv__warmer_stop(s);
    for (int i = 0; i < EKV_CF_COUNT; i++)
        if (s->cf[i])
            rocksdb_column_family_handle_destroy(s->cf[i]);
    if (s->db)
        rocksdb_close(s->db);
    destroy_options(s);
    if (s->cache)
        rocksdb_cache_destroy(s->cache);
    if (s->env)
        rocksdb_env_destroy(s->env);
    if (s->ropts)
        rocksdb_readoptions_destroy(s->ropts);
    if (s->ropts_cached)
        rocksdb_readoptions_destroy(s->ropts_cached);
    if (s->wopts)
        rocksdb_writeoptions_destroy(s->wopts);
    if (s->wopts_lazy)
        rocksdb_writeoptions_destroy(s->wopts_lazy);
    if (s->wb)
        rocksdb_writebatch_destroy(s->wb);
    ekv_buf_deinit(&s->kbuf);
    ekv_buf_deinit(&s->vbuf);
    ekv_buf_deinit(&s->pbuf);
    ekv_catidx_deinit(&s->idx);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcond);
    pthread_mutex_destroy(&s->stats_lock);
    pthread_mutex_destroy(&s->pin_lock);
    free(s->do_epochs);
    free(s->dir);
    free(s);
}

int ekv_store_open(ekv_store_t **out, const ekv_store_opts_t *opts)
{
    *out = NULL;
    if (!opts || !opts->dir || !opts->dir[0])
        return EKV_EINTERNAL;
    ekv_store_t *s = calloc(1, sizeof(*s));
    if (!s)
        return EKV_ENOMEM;
    s->opts = *opts;
    atomic_store(&s->replica_mode, opts->replica ? 1 : 0);
    apply_defaults(&s->opts);
    s->dir = strdup(opts->dir);
    s->do_epochs = calloc(EKV_DO_PARTITIONS, sizeof(*s->do_epochs));
    pthread_mutex_init(&s->qlock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->qcond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->stats_lock, NULL);
    pthread_mutex_init(&s->pin_lock, NULL);
    ekv_buf_init(&s->kbuf, 0);
    ekv_buf_init(&s->vbuf, 0);
    ekv_buf_init(&s->pbuf, 0);
    ekv_catidx_init(&s->idx);
    if (!s->dir || !s->do_epochs) {
        store_free(s);
        return EKV_ENOMEM;
    }
    s->opts.dir = s->dir;

    int rc = mkdir_p(s->dir);
    if (rc) {
        store_free(s);
        return rc;
    }
    s->cache = rocksdb_cache_create_lru(s->opts.block_cache_bytes);
    /* compactions (the LOW pool) may run at the lowest CPU priority: they yield to the event
     * loop and the readers, and take the idle CPU; flushes (HIGH pool) keep the normal
     * priority, so memtables still drain and writes do not stall for them */
    s->env = rocksdb_create_default_env();
    if (s->opts.low_priority_compactions)
        rocksdb_env_lower_thread_pool_cpu_priority(s->env);
    uint64_t t0 = ekv_clock_mono_ns();
    rc = open_db(s);
    uint64_t open_ms = (ekv_clock_mono_ns() - t0) / 1000000;
    if (rc) {
        store_free(s);
        return rc;
    }
    s->ropts = rocksdb_readoptions_create();
    s->ropts_cached = rocksdb_readoptions_create();
    rocksdb_readoptions_set_read_tier(s->ropts_cached, 1); /* kBlockCacheTier */
    s->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts, s->opts.sync == EKV_SYNC_FSYNC);
    s->wopts_lazy = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wopts_lazy, 0);
    s->wb = rocksdb_writebatch_create();

    rc = ekv__catalog_index_load(s);
    if (!rc)
        rc = ekv__log_recover(s);
    if (!rc)
        rc = ekv__ingest_recover(s);
    if (!rc)
        rc = ekv__committer_start(s);
    if (!rc)
        rc = ekv__warmer_start(s);
    if (rc) {
        store_free(s);
        return rc;
    }
    ekv_log_info("store opened",
                 "dir=%s sync=%s last_seq=%" PRIu64 " first_log_seq=%" PRIu64
                 " namespaces=%zu tokens=%zu rocksdb_open_ms=%" PRIu64
                 " block_cache_mb=%zu max_wal_mb=%" PRIu64
                 " memtable_mb=%zu inline_reads=%d low_priority_compactions=%d",
                 s->dir, s->opts.sync == EKV_SYNC_FSYNC ? "fsync" : "none", s->last_seq,
                 s->first_log_seq, s->idx.ns_by_id.count, s->idx.tok_by_hash.count, open_ms,
                 s->opts.block_cache_bytes >> 20, s->opts.max_wal_bytes >> 20,
                 s->opts.memtable_bytes >> 20, s->opts.inline_reads,
                 s->opts.low_priority_compactions);
    *out = s;
    return 0;
}

void ekv_store_close(ekv_store_t *s)
{
    if (!s)
        return;
    ekv__warmer_stop(s);
    ekv__committer_stop(s);
    char *err = NULL;
    rocksdb_flush_wal(s->db, 1, &err);
    if (err)
        ekv__store_rocks_err("flush_wal", err);
    /* memtables to SSTs: the next start then has no WAL to replay (a clean restart costs
     * what opening the files costs). Bounded by the memtables, i.e. by max_wal_bytes. */
    uint64_t t0 = ekv_clock_mono_ns();
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    for (int i = 0; i < EKV_CF_COUNT; i++) {
        err = NULL;
        rocksdb_flush_cf(s->db, fo, s->cf[i], &err);
        if (err)
            ekv__store_rocks_err("flush", err); /* the WAL still holds it all */
    }
    rocksdb_flushoptions_destroy(fo);
    uint64_t flush_ms = (ekv_clock_mono_ns() - t0) / 1000000;
    ekv_log_info("store closed", "dir=%s last_seq=%" PRIu64 " flush_ms=%" PRIu64, s->dir,
                 s->last_seq, flush_ms);
    store_free(s);
}

void ekv__store_note_commit(ekv_store_t *s, uint64_t last_seq, uint64_t log_bytes_added)
{
    uint64_t prev = s->last_seq;
    s->last_seq = last_seq;
    s->log_bytes += log_bytes_added;
    if (!s->first_log_seq && last_seq > prev)
        s->first_log_seq = prev + 1;
    atomic_store_explicit(&s->pub_last_seq, last_seq, memory_order_release);
    pthread_mutex_lock(&s->stats_lock);
    s->st.last_seq = s->last_seq;
    s->st.first_log_seq = s->first_log_seq;
    pthread_mutex_unlock(&s->stats_lock);
    if (s->opts.on_commit && last_seq > prev)
        s->opts.on_commit(s->opts.on_commit_ctx, last_seq);
}

void ekv_store_set_replica(ekv_store_t *s, int replica)
{
    atomic_store(&s->replica_mode, replica ? 1 : 0);
}

void ekv_store_stats(ekv_store_t *s, ekv_store_stats_t *out)
{
    pthread_mutex_lock(&s->stats_lock);
    *out = s->st;
    pthread_mutex_unlock(&s->stats_lock);
    pthread_mutex_lock(&s->qlock);
    out->queue_depth = s->qlen;
    pthread_mutex_unlock(&s->qlock);
    out->block_cache_usage = s->cache ? rocksdb_cache_get_usage(s->cache) : 0;
    out->block_cache_capacity = s->opts.block_cache_bytes;
    out->warm_scans = atomic_load(&s->warm_scans);
}

char *ekv_store_property(ekv_store_t *s, const char *cf, const char *name)
{
    if (!name)
        return NULL;
    if (cf) {
        for (int i = 0; i < EKV_CF_COUNT; i++)
            if (strcmp(cf, ekv__cf_names[i]) == 0)
                return rocksdb_property_value_cf(s->db, s->cf[i], name);
        return NULL;
    }
    /* Integer properties are summed over the CFs; others come from the DB as a whole. */
    uint64_t sum = 0;
    for (int i = 0; i < EKV_CF_COUNT; i++) {
        uint64_t v;
        if (rocksdb_property_int_cf(s->db, s->cf[i], name, &v) != 0)
            return rocksdb_property_value(s->db, name);
        sum += v;
    }
    char *out = malloc(24);
    if (out)
        snprintf(out, 24, "%" PRIu64, sum);
    return out;
}
