/*
 * warm.c - the block-cache warmer: one background thread that reads kvmeta and kvval through,
 * so that their blocks are in RocksDB's block cache before value GETs ask for them.
 *
 * Why: a value GET whose blocks are cached is answered on the event loop (inline read,
 * read.c); one whose blocks are not goes through a reader thread, ~3x the CPU. Left to the
 * requests, a cache of 5M keys warms at the reader path's pace (one data block at a time,
 * tens of seconds of degraded reads after every start and after every compaction that
 * rewrote much of the data). A sequential scan warms it in a few seconds of one core.
 *
 * When: only if the two CFs' SST files, counted 3x (the cache holds blocks uncompressed),
 * fit in half the block cache (which must keep room for the rest), so a data set larger
 * than the cache is never churned through it. kvval is read first, kvmeta last. Then after the
 * open, and again when files holding at least a quarter of those bytes appeared since the last scan
 * (compactions rewrite files: their blocks are new to the cache), at most once per max(5 s, 5x the
 * last scan's duration). Files are named by RocksDB's live-file list. Memtables need no warming.
 *
 * Cost: the thread runs at nice +5 relative to the process, reads with fill_cache and 2 MiB
 * readahead, and stops between two keys when the store closes (checked every 1024 keys).
 * It touches only db, cf[], cache and its own fields (store_int.h "warmer").
 */
#include "common/clock.h"
#include "common/log.h"
#include "storage/store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WARM_CHECK_MS    1000
#define WARM_MIN_GAP_MS  5000
#define WARM_GAP_FACTOR  5 /* idle at least 5x the last scan: <= 1/6 of a core on warming */
#define WARM_READAHEAD   (2u << 20)
#define WARM_STOP_EVERY  1024
#define WARM_NICE_OFFSET 5
/* SST bytes are compressed (LZ4), the cache holds blocks uncompressed: assume up to 3x */
#define WARM_EXPANSION 3

static int warm_cf(int cf)
{
    return cf == EKV_CF_KVMETA || cf == EKV_CF_KVVAL;
}

static int cf_index(const char *name)
{
    for (int i = 0; i < EKV_CF_COUNT; i++)
        if (name && strcmp(name, ekv__cf_names[i]) == 0)
            return i;
    return -1;
}

/* Is live file i of a warmed CF (kvmeta, kvval)? */
static int kv_file(const rocksdb_livefiles_t *lf, int i)
{
    return warm_cf(cf_index(rocksdb_livefiles_column_family_name(lf, i)));
}

static int stopping(ekv_store_t *s)
{
    return atomic_load_explicit(&s->warm_stop, memory_order_acquire);
}

/* Sleep ms, waking early when the store closes. 1 = stop. */
static int nap(ekv_store_t *s, int ms)
{
    pthread_mutex_lock(&s->warm_lock);
    if (!stopping(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (long)(ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->warm_cond, &s->warm_lock, &ts);
    }
    pthread_mutex_unlock(&s->warm_lock);
    return stopping(s);
}

/* Is this file name in the set of the last scan? */
static int seen(const ekv_store_t *s, const char *name)
{
    for (size_t i = 0; i < s->warm_nseen; i++)
        if (strcmp(s->warm_seen[i], name) == 0)
            return 1;
    return 0;
}

static void forget_seen(ekv_store_t *s)
{
    for (size_t i = 0; i < s->warm_nseen; i++)
        free(s->warm_seen[i]);
    free(s->warm_seen);
    s->warm_seen = NULL;
    s->warm_nseen = 0;
}

/* Remember the live files of the warmed CFs as of before the scan. */
static void remember(ekv_store_t *s, const rocksdb_livefiles_t *lf)
{
    forget_seen(s);
    int n = rocksdb_livefiles_count(lf);
    s->warm_seen = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    if (!s->warm_seen)
        return;
    for (int i = 0; i < n; i++) {
        if (!kv_file(lf, i))
            continue;
        char *copy = strdup(rocksdb_livefiles_name(lf, i));
        if (copy)
            s->warm_seen[s->warm_nseen++] = copy;
    }
}

/* Read one CF through; returns keys read, stops early when the store closes. */
static uint64_t scan_cf(ekv_store_t *s, rocksdb_readoptions_t *ro, int cf)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(s->db, ro, s->cf[cf]);
    uint64_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t vlen;
        (void)rocksdb_iter_value(it, &vlen);
        if (++n % WARM_STOP_EVERY == 0 && stopping(s))
            break;
    }
    rocksdb_iter_destroy(it);
    return n;
}

static void lower_priority(void)
{
    pid_t tid = (pid_t)syscall(SYS_gettid);
    errno = 0;
    int base = getpriority(PRIO_PROCESS, 0);
    if (errno == 0)
        setpriority(PRIO_PROCESS, (id_t)tid, base + WARM_NICE_OFFSET);
}

static void *warm_main(void *arg)
{
    ekv_store_t *s = arg;
    lower_priority();
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_fill_cache(ro, 1);
    rocksdb_readoptions_set_readahead_size(ro, WARM_READAHEAD);
    uint64_t last_scan_ms = 0, last_scan_took_ms = 0;
    int too_large_logged = 0;
    while (!nap(s, WARM_CHECK_MS)) {
        const rocksdb_livefiles_t *lf = rocksdb_livefiles(s->db);
        if (!lf)
            continue;
        uint64_t total = 0, fresh = 0;
        for (int i = 0, n = rocksdb_livefiles_count(lf); i < n; i++) {
            if (!kv_file(lf, i))
                continue;
            total += rocksdb_livefiles_size(lf, i);
        }
        int fits = total * WARM_EXPANSION <= s->opts.block_cache_bytes / 2;
        for (int i = 0, n = rocksdb_livefiles_count(lf); fits && i < n; i++)
            if (kv_file(lf, i) && !seen(s, rocksdb_livefiles_name(lf, i)))
                fresh += rocksdb_livefiles_size(lf, i);
        uint64_t now = ekv_clock_mono_ns() / 1000000;
        if (!fits && !too_large_logged) {
            ekv_log_info("block cache warmer idle: the data may not fit in half the cache",
                         "kv_sst_bytes=%" PRIu64 " block_cache_bytes=%zu", total,
                         s->opts.block_cache_bytes);
            too_large_logged = 1;
        }
        uint64_t gap = WARM_GAP_FACTOR * last_scan_took_ms;
        if (gap < WARM_MIN_GAP_MS)
            gap = WARM_MIN_GAP_MS;
        int due =
            fits && fresh > 0 && fresh * 4 >= total && (!last_scan_ms || now - last_scan_ms >= gap);
        if (!due) {
            rocksdb_livefiles_destroy(lf);
            continue;
        }
        too_large_logged = 0;
        remember(s, lf);
        rocksdb_livefiles_destroy(lf);
        uint64_t t0 = ekv_clock_mono_ns();
        uint64_t keys = scan_cf(s, ro, EKV_CF_KVVAL);
        if (!stopping(s))
            keys += scan_cf(s, ro, EKV_CF_KVMETA);
        uint64_t ms = (ekv_clock_mono_ns() - t0) / 1000000;
        last_scan_ms = ekv_clock_mono_ns() / 1000000;
        last_scan_took_ms = ms;
        if (stopping(s))
            break;
        atomic_fetch_add(&s->warm_scans, 1);
        ekv_log_info("block cache warmed",
                     "keys=%" PRIu64 " kv_sst_bytes=%" PRIu64 " new_bytes=%" PRIu64 " ms=%" PRIu64
                     " cache_usage_bytes=%zu",
                     keys, total, fresh, ms, rocksdb_cache_get_usage(s->cache));
    }
    rocksdb_readoptions_destroy(ro);
    return NULL;
}

int ekv__warmer_start(ekv_store_t *s)
{
    atomic_store(&s->warm_stop, 0);
    pthread_mutex_init(&s->warm_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->warm_cond, &ca);
    pthread_condattr_destroy(&ca);
    s->warm_sync_inited = 1;
    if (!s->opts.warm_cache)
        return 0;
    if (pthread_create(&s->warmer, NULL, warm_main, s) != 0) {
        ekv_log_warn("block cache warmer not started", "%s", "pthread_create failed");
        return 0; /* an optimisation: the store works without it */
    }
    s->warmer_started = 1;
    return 0;
}

void ekv__warmer_stop(ekv_store_t *s)
{
    if (!s->warm_sync_inited)
        return;
    pthread_mutex_lock(&s->warm_lock);
    atomic_store_explicit(&s->warm_stop, 1, memory_order_release);
    pthread_cond_signal(&s->warm_cond);
    pthread_mutex_unlock(&s->warm_lock);
    if (s->warmer_started)
        pthread_join(s->warmer, NULL);
    s->warmer_started = 0;
    forget_seen(s);
    pthread_cond_destroy(&s->warm_cond);
    pthread_mutex_destroy(&s->warm_lock);
    s->warm_sync_inited = 0;
}
