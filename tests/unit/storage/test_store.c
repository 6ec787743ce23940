/*
 * test_store.c - the store against a real RocksDB in a temp dir.
 */
#include "changelog.pb-c.h"
#include "common/clock.h"
#include "common/errors.h"
#include "storage/envelope.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "storage/store_int.h" /* white-box: the CF list, for the raw RocksDB opens */
#include "tests/unit/storage/fixture.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ACC  "0123456789abcdef0123456789abcdef"
#define ACC2 "fedcba9876543210fedcba9876543210"
#define NS1  "11111111111111111111111111111111"
#define NS2  "11111111111111111111111111111112"
#define NS3  "33333333333333333333333333333333"

static char dir[64];
static ekv_store_t *st;
static uint8_t ns1[16], ns2[16], ns3[16];

static ekv_store_opts_t base_opts(void)
{
    ekv_store_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = dir;
    o.sync = EKV_SYNC_FSYNC;
    o.block_cache_bytes = 8 << 20;
    o.purge_interval_ms = 50;
    return o;
}

static void open_with(const ekv_store_opts_t *o)
{
    cr_assert_eq(ekv_store_open(&st, o), 0);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ekv-store-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    strcat(dir, "/db/sub"); /* open must create missing parents */
    hex16(NS1, ns1);
    hex16(NS2, ns2);
    hex16(NS3, ns3);
    ekv_store_opts_t o = base_opts();
    open_with(&o);
}

static void teardown(void)
{
    if (st)
        ekv_store_close(st);
    st = NULL;
    char *slash = strstr(dir, "/db/sub");
    if (slash)
        *slash = '\0';
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void reopen(const ekv_store_opts_t *o)
{
    ekv_store_close(st);
    st = NULL;
    open_with(o);
}

/* ---- helpers ---- */

static int ns_op(ekv_op_type_t type, const char *id, const char *account, const char *title)
{
    return fx_ns_op(st, type, id, account, title);
}

static int put_full(const uint8_t *nsid, const char *key, const char *value, const char *meta,
                    int64_t exp, uint64_t *seq)
{
    return fx_put(st, nsid, key, value, meta, exp, seq);
}

static int put(const uint8_t *nsid, const char *key, const char *value)
{
    return put_full(nsid, key, value, NULL, 0, NULL);
}

static int del(const uint8_t *nsid, const char *key, uint64_t *seq)
{
    return fx_del(st, nsid, key, seq);
}

static uint64_t last_seq(void)
{
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    return s.last_seq;
}

/* Expect a list page: names joined with ',' */
static void expect_list(const uint8_t *nsid, const char *prefix, const char *after, size_t limit,
                        size_t budget, int64_t now, const char *names, int more, const char *resume)
{
    ekv_kv_list_t l;
    int rc = ekv_store_kv_list(st, nsid, prefix, prefix ? strlen(prefix) : 0, after,
                               after ? strlen(after) : 0, limit, budget, now, &l);
    cr_assert_eq(rc, 0);
    char got[1024] = "";
    for (size_t i = 0; i < l.count; i++) {
        if (i)
            strcat(got, ",");
        strncat(got, l.items[i].name, l.items[i].name_len);
    }
    cr_assert_str_eq(got, names, "got [%s] want [%s] prefix=%s after=%s", got, names,
                     prefix ? prefix : "-", after ? after : "-");
    cr_assert_eq(l.more, more, "more for %s", names);
    if (resume) {
        cr_assert_not_null(l.resume_key);
        cr_assert_eq(l.resume_key_len, strlen(resume));
        cr_assert_eq(memcmp(l.resume_key, resume, l.resume_key_len), 0);
    } else {
        cr_assert_null(l.resume_key);
    }
    ekv_kv_list_clear(&l);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 120);

/* ---- KV basics ---- */

Test(store, put_get_metadata_roundtrip)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    uint64_t seq = 0;
    cr_assert_eq(put_full(ns1, "k1", "value-1", "{\"m\":true}", 0, &seq), 0);
    cr_assert_eq(seq, 2, "ns create was seq 1");

    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k1", 2, 1, ekv_clock_now_s(), &e), 0);
    cr_assert_eq(e.value_len, 7);
    cr_assert_eq(memcmp(e.value, "value-1", 7), 0);
    cr_assert_eq(e.metadata_len, 10);
    cr_assert_str_eq(e.metadata, "{\"m\":true}");
    cr_assert_eq(e.expiration, 0);
    ekv_kv_entry_clear(&e);

    /* metadata only: no value read */
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k1", 2, 0, ekv_clock_now_s(), &e), 0);
    cr_assert_null(e.value);
    cr_assert_str_eq(e.metadata, "{\"m\":true}");
    ekv_kv_entry_clear(&e);

    /* overwrite without metadata, empty value */
    cr_assert_eq(put_full(ns1, "k1", "", NULL, 0, NULL), 0);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k1", 2, 1, ekv_clock_now_s(), &e), 0);
    cr_assert_not_null(e.value);
    cr_assert_eq(e.value_len, 0);
    cr_assert_null(e.metadata);
    ekv_kv_entry_clear(&e);

    cr_assert_eq(ekv_store_kv_get(st, ns1, "nope", 4, 1, ekv_clock_now_s(), &e),
                 EKV_EKEY_NOT_FOUND);
    cr_assert_null(e.value);
}

/* The loop's read: memtables and cached blocks only, "not cached" when a file must be read */
Test(store, get_cached_answers_from_memory_only)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(put_full(ns1, "k1", "value-1", NULL, 0, NULL), 0);
    cr_assert_eq(put_full(ns1, "old", "x", NULL, 1, NULL), 0); /* expired long ago */
    char big[1024]; /* over the inline-envelope limit: kept in kvval */
    memset(big, 'v', sizeof(big));
    cr_assert_eq(fx_put_bytes(st, ns1, "big", big, sizeof(big), NULL, 0, NULL), 0);
    int64_t now = ekv_clock_now_s();
    ekv_kv_entry_t e;
    ekv_store_opts_t o = base_opts();
    o.inline_reads = 1;
    reopen(&o); /* a clean close flushes: the data is in SST files, the block cache is new */

    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "k1", 2, now, &e), EKV_STORE_NOT_CACHED);
    cr_assert_null(e.value);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k1", 2, 1, now, &e), 0); /* reads the blocks */
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "k1", 2, now, &e), 0);
    cr_assert_eq(e.value_len, 7);
    cr_assert_eq(memcmp(e.value, "value-1", 7), 0);
    ekv_kv_entry_clear(&e);
    /* same blocks: an expired key and an absent one are answered too */
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "old", 3, now, &e), EKV_EKEY_NOT_FOUND);
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "k0", 2, now, &e), EKV_EKEY_NOT_FOUND);
    /* a value kept in kvval: its envelope's block is cached now (k1's), its value's is not */
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "big", 3, now, &e), EKV_STORE_NOT_CACHED);
    cr_assert_null(e.value);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "big", 3, 1, now, &e), 0); /* reads kvval's block */
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "big", 3, now, &e), 0);
    cr_assert_eq(e.value_len, sizeof(big));
    cr_assert_eq(memcmp(e.value, big, sizeof(big)), 0);
    ekv_kv_entry_clear(&e);

    /* a fresh write is in the memtable: answered without any file */
    cr_assert_eq(put_full(ns1, "k2", "value-2", NULL, 0, NULL), 0);
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "k2", 2, now, &e), 0);
    cr_assert_eq(e.value_len, 7);
    ekv_kv_entry_clear(&e);

    o.inline_reads = 0; /* off: always "not cached", even for the memtable */
    reopen(&o);
    cr_assert_eq(put_full(ns1, "k3", "value-3", NULL, 0, NULL), 0);
    cr_assert_eq(ekv_store_kv_get_cached(st, ns1, "k3", 2, now, &e), EKV_STORE_NOT_CACHED);
}

/* Expect key's value (and metadata) from every read path: the reader's get, the metadata-only
 * get, and the loop's memory-only get (EKV_STORE_NOT_CACHED above the inline-read limit). */
static void expect_value(const char *key, const char *value, size_t len, const char *meta)
{
    int64_t now = ekv_clock_now_s();
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, key, strlen(key), 1, now, &e), 0, "%s", key);
    cr_assert_eq(e.value_len, len, "%s: %zu bytes, want %zu", key, e.value_len, len);
    cr_assert_eq(memcmp(e.value, value, len), 0, "%s", key);
    cr_assert_eq(e.metadata_len, meta ? strlen(meta) : 0, "%s", key);
    if (meta)
        cr_assert_str_eq(e.metadata, meta);
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get(st, ns1, key, strlen(key), 0, now, &e), 0);
    cr_assert_null(e.value);
    ekv_kv_entry_clear(&e);
    int rc = ekv_store_kv_get_cached(st, ns1, key, strlen(key), now, &e);
    if (len > EKV_STORE_INLINE_MAX_VALUE) {
        cr_assert_eq(rc, EKV_STORE_NOT_CACHED, "%s: %zu bytes read on the loop", key, len);
    } else {
        cr_assert_eq(rc, 0, "%s: %s", key, ekv_err_name(rc));
        cr_assert_eq(e.value_len, len);
        cr_assert_eq(memcmp(e.value, value, len), 0);
    }
    ekv_kv_entry_clear(&e);
}

static uint64_t stored_entries(void)
{
    uint64_t n = 0;
    sum_of(st, &n);
    return n;
}

/* A raw RocksDB handle on the store's directory, every CF of the store's list (cf[] indexed
 * by ekv_cf_t), read-only or read-write. Closes the store first: a second handle beside the
 * open store could race its compactions' file deletions. */
typedef struct {
    rocksdb_t *db;
    rocksdb_options_t *o;
    rocksdb_column_family_handle_t *cf[EKV_CF_COUNT];
} raw_db_t;

static void raw_open(raw_db_t *r, int read_only)
{
    ekv_store_close(st);
    st = NULL;
    r->o = rocksdb_options_create();
    const rocksdb_options_t *cfo[EKV_CF_COUNT];
    for (int i = 0; i < EKV_CF_COUNT; i++)
        cfo[i] = r->o;
    char *err = NULL;
    r->db = read_only ? rocksdb_open_for_read_only_column_families(
                            r->o, dir, EKV_CF_COUNT, ekv__cf_names, cfo, r->cf, 0, &err)
                      : rocksdb_open_column_families(r->o, dir, EKV_CF_COUNT, ekv__cf_names, cfo,
                                                     r->cf, &err);
    cr_assert_null(err, "%s", err);
}

static void raw_close(raw_db_t *r)
{
    for (int i = 0; i < EKV_CF_COUNT; i++)
        rocksdb_column_family_handle_destroy(r->cf[i]);
    rocksdb_close(r->db);
    rocksdb_options_destroy(r->o);
}

/* Entries in the kvval CF, through a read-only RocksDB handle while the store is closed; the
 * store is reopened with o afterwards. */
static size_t kvval_entries(const ekv_store_opts_t *o_store)
{
    raw_db_t r;
    raw_open(&r, 1);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r.db, ro, r.cf[EKV_CF_KVVAL]);
    size_t n = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it))
        n++;
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    raw_close(&r);
    open_with(o_store);
    return n;
}

/* Values up to EKV_ENVELOPE_INLINE_MAX live in the envelope (no kvval entry), larger ones in
 * kvval; overwrites in either direction leave exactly one copy, before and after a reopen. */
Test(store, small_values_inline_large_in_kvval_across_overwrites)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    uint64_t base = stored_entries(); /* catalog records */
    static char v[EKV_STORE_INLINE_MAX_VALUE + 2];
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (char)('a' + i % 26);
    /* each size once; every key counts once in the checksum, and only the values over the
     * inline limit have a kvval entry */
    const size_t sizes[] = {
        0, 1, 256, 257, EKV_STORE_INLINE_MAX_VALUE, EKV_STORE_INLINE_MAX_VALUE + 1};
    const char *meta = "{\"s\":1}";
    ekv_store_opts_t o = base_opts();
    o.inline_reads = 1;
    reopen(&o);
    size_t in_kvval = 0;
    for (int round = 0; round < 2; round++) {
        in_kvval = 0;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            char key[16];
            snprintf(key, sizeof(key), "s%zu", i);
            cr_assert_eq(fx_put_bytes(st, ns1, key, v, sizes[i], meta, 0, NULL), 0);
            expect_value(key, v, sizes[i], meta);
            in_kvval += sizes[i] > EKV_ENVELOPE_INLINE_MAX;
        }
        cr_assert_eq(in_kvval, 3);
        cr_assert_eq(stored_entries(), base + sizeof(sizes) / sizeof(sizes[0]), "round %d", round);
        size_t nv = kvval_entries(&o);
        cr_assert_eq(nv, in_kvval, "round %d: %zu kvval entries", round, nv);
        reopen(&o);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            char key[16];
            snprintf(key, sizeof(key), "s%zu", i);
            ekv_kv_entry_t e;
            cr_assert_eq(ekv_store_kv_get(st, ns1, key, strlen(key), 1, ekv_clock_now_s(), &e), 0);
            cr_assert_eq(e.value_len, sizes[i]);
            ekv_kv_entry_clear(&e);
        }
    }
    /* large -> small -> large -> small on one key, then delete: no kvval entry left behind */
    const size_t flips[] = {4096, 10, EKV_STORE_INLINE_MAX_VALUE + 1, 256};
    uint64_t before = stored_entries();
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        char val[EKV_STORE_INLINE_MAX_VALUE + 1];
        memset(val, (int)('0' + i), flips[i]);
        cr_assert_eq(fx_put_bytes(st, ns1, "flip", val, flips[i], NULL, 0, NULL), 0);
        expect_value("flip", val, flips[i], NULL);
        cr_assert_eq(stored_entries(), before + 1, "after a %zu-byte value", flips[i]);
        cr_assert_eq(kvval_entries(&o), in_kvval + (flips[i] > EKV_ENVELOPE_INLINE_MAX),
                     "after a %zu-byte value", flips[i]);
    }
    cr_assert_eq(del(ns1, "flip", NULL), 0);
    cr_assert_eq(stored_entries(), before);
    cr_assert_eq(kvval_entries(&o), in_kvval);
}

/* Rewrite key's record in the version-1 layout (envelope without the value + a kvval entry)
 * straight into RocksDB, the store closed, as a store written before version 2 holds it;
 * with orphan, also a kvval entry under orphan that no envelope claims. */
static void write_v1_layout(const char *key, const char *value, const char *meta,
                            const char *orphan)
{
    raw_db_t r;
    raw_open(&r, 0);
    char *err = NULL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    char k[EKV_NSID_LEN + 64];
    size_t klen = ekv_key_kv(k, ns1, key, strlen(key));
    ekv_envelope_t env = {
        .metadata = meta, .metadata_len = meta ? strlen(meta) : 0, .value_len = strlen(value)};
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_envelope_encode(&env, &b), 0);
    cr_assert_eq((unsigned char)b.data[1], EKV_ENVELOPE_VERSION);
    rocksdb_put_cf(r.db, wo, r.cf[EKV_CF_KVMETA], k, klen, b.data, b.len, &err);
    cr_assert_null(err, "%s", err);
    rocksdb_put_cf(r.db, wo, r.cf[EKV_CF_KVVAL], k, klen, value, strlen(value), &err);
    cr_assert_null(err, "%s", err);
    if (orphan) {
        klen = ekv_key_kv(k, ns1, orphan, strlen(orphan));
        rocksdb_put_cf(r.db, wo, r.cf[EKV_CF_KVVAL], k, klen, "lost", 4, &err);
        cr_assert_null(err, "%s", err);
    }
    ekv_buf_deinit(&b);
    rocksdb_writeoptions_destroy(wo);
    raw_close(&r);
    ekv_store_opts_t so = base_opts();
    so.inline_reads = 1;
    open_with(&so);
}

/* A store written before version 2 (small values in kvval) reads the same and has the same
 * checksum as one holding the same data inline: the checksum hashes each KV key's content,
 * not its layout, so nodes that applied a record under different versions agree. A kvval
 * entry no envelope claims is counted and changes the sum. */
Test(store, version_1_layout_reads_and_checksums_the_same)
{
    ekv_store_opts_t o = base_opts();
    o.inline_reads = 1;
    reopen(&o);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(put_full(ns1, "a", "alpha", "{\"x\":1}", 0, NULL), 0);
    cr_assert_eq(put_full(ns1, "b", "bravo", NULL, 0, NULL), 0);
    cr_assert_eq(put_full(ns1, "c", "charlie", NULL, 0, NULL), 0);
    uint64_t n_inline = stored_entries(), sum_inline = sum_of(st, NULL);
    cr_assert_eq(kvval_entries(&o), 0);

    write_v1_layout("b", "bravo", NULL, NULL);
    cr_assert_eq(kvval_entries(&o), 1);
    expect_value("b", "bravo", 5, NULL);
    expect_list(ns1, NULL, NULL, 10, 0, ekv_clock_now_s(), "a,b,c", 0, NULL);
    cr_assert_eq(stored_entries(), n_inline);
    cr_assert_eq(sum_of(st, NULL), sum_inline, "the same data in the version-1 layout");

    /* overwritten now: back inline, the kvval entry deleted, the same sum */
    cr_assert_eq(put_full(ns1, "b", "bravo", NULL, 0, NULL), 0);
    cr_assert_eq(kvval_entries(&o), 0);
    cr_assert_eq(sum_of(st, NULL), sum_inline);

    /* other content in the old layout differs; an orphan kvval entry is counted */
    write_v1_layout("b", "BRAVO", NULL, NULL);
    cr_assert_neq(sum_of(st, NULL), sum_inline);
    write_v1_layout("b", "bravo", NULL, "zz-orphan");
    cr_assert_eq(stored_entries(), n_inline + 1);
    cr_assert_neq(sum_of(st, NULL), sum_inline);
}

/* The warmer reads the keys and values into the block cache after the open: then the loop's
 * read finds blocks no request has read yet. */
Test(store, warmer_fills_the_block_cache_after_open)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    for (int i = 0; i < 2000; i++) {
        char k[16], v[64];
        snprintf(k, sizeof(k), "k%04d", i);
        snprintf(v, sizeof(v), "value-%04d-padding-padding-padding", i);
        cr_assert_eq(put(ns1, k, v), 0);
    }
    ekv_store_opts_t o = base_opts();
    o.inline_reads = 1;
    o.warm_cache = 1;
    reopen(&o); /* flushed at close: everything is in SST files, the block cache is new */
    ekv_store_stats_t ss;
    for (int i = 0; i < 500; i++) {
        ekv_store_stats(st, &ss);
        if (ss.warm_scans >= 1)
            break;
        usleep(10000);
    }
    cr_assert_geq(ss.warm_scans, 1, "no warming scan within 5 s");
    cr_assert_gt(ss.block_cache_usage, 2000 * 40, "cache usage %" PRIu64, ss.block_cache_usage);
    cr_assert_eq(ss.block_cache_capacity, 8 << 20);
    int64_t now = ekv_clock_now_s();
    const char *keys[] = {"k0000", "k0999", "k1999"};
    for (int i = 0; i < 3; i++) {
        ekv_kv_entry_t e;
        cr_assert_eq(ekv_store_kv_get_cached(st, ns1, keys[i], 5, now, &e), 0, "%s", keys[i]);
        cr_assert_eq(e.value_len, 34);
        cr_assert_eq(memcmp(e.value, "value-", 6), 0);
        ekv_kv_entry_clear(&e);
    }
}

/* A clean close flushes the memtables: nothing is left in the WAL for the next open. */
Test(store, clean_close_leaves_no_wal_to_replay)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    char big[4096];
    memset(big, 'v', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 500; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(put(ns1, k, big), 0);
    }
    ekv_store_opts_t o = base_opts();
    ekv_store_close(st);
    st = NULL;
    /* the options in effect: recovery would flush a replayed WAL itself otherwise, and this
     * test would pass without the flush at close */
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "grep -q 'avoid_flush_during_recovery=true' %s/OPTIONS-* && "
             "grep -q 'max_open_files=-1' %s/OPTIONS-*",
             dir, dir);
    cr_assert_eq(system(cmd), 0, "OPTIONS file lacks the recovery/open-files settings");
    /* what RocksDB reports as the live WAL at the next open: 0 bytes to replay */
    open_with(&o);
    char *p = ekv_store_property(st, NULL, "rocksdb.cur-size-all-mem-tables");
    cr_assert_not_null(p);
    long long mem = atoll(p);
    free(p);
    cr_assert_lt(mem, 64 * 1024, "memtables after reopen: %lld bytes (replayed WAL)", mem);
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k499", 4, 1, 0, &e), 0);
    cr_assert_eq(e.value_len, sizeof(big) - 1);
    ekv_kv_entry_clear(&e);
}

Test(store, binary_keys_and_values)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    const char key[] = {'a', 0, 'b', (char)0xff};
    const char val[] = {0, 1, 2, 0, (char)0x80};
    ekv_kv_item_t it = {.key = key, .key_len = 4, .value = val, .value_len = 5};
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_PUT;
    memcpy(w.nsid, ns1, 16);
    w.items = &it;
    w.nitems = 1;
    cr_assert_eq(ekv_store_write_sync(st, &w), 0);
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, key, 4, 1, 0, &e), 0);
    cr_assert_eq(e.value_len, 5);
    cr_assert_eq(memcmp(e.value, val, 5), 0);
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get(st, ns1, key, 3, 1, 0, &e), EKV_EKEY_NOT_FOUND);
}

Test(store, delete_key)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(put(ns1, "gone", "x"), 0);
    uint64_t seq = 0;
    cr_assert_eq(del(ns1, "gone", &seq), 0);
    cr_assert_eq(seq, 3);
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "gone", 4, 1, 0, &e), EKV_EKEY_NOT_FOUND);
    /* deleting a missing key succeeds and is logged */
    cr_assert_eq(del(ns1, "never", &seq), 0);
    cr_assert_eq(seq, 4);
    expect_list(ns1, NULL, NULL, 10, 10, 0, "", 0, NULL);
}

Test(store, multi_item_put_is_one_op_with_seq_of_last_record)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    ekv_kv_item_t items[3] = {
        {.key = "a", .key_len = 1, .value = "1", .value_len = 1},
        {.key = "b", .key_len = 1, .value = "2", .value_len = 1},
        {.key = "", .key_len = 0, .value = "3", .value_len = 1},
    };
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_PUT;
    memcpy(w.nsid, ns1, 16);
    w.items = items;
    w.nitems = 3;
    /* an empty key anywhere rejects the whole op: nothing written */
    cr_assert_eq(ekv_store_write_sync(st, &w), EKV_EBAD_KEY);
    cr_assert_eq(w.seq, 0);
    expect_list(ns1, NULL, NULL, 10, 10, 0, "", 0, NULL);
    w.nitems = 2;
    cr_assert_eq(ekv_store_write_sync(st, &w), 0);
    cr_assert_eq(w.seq, 3);
    cr_assert_eq(last_seq(), 3);
    expect_list(ns1, NULL, NULL, 10, 10, 0, "a,b", 0, NULL);
}

/* ---- lists ---- */

Test(store, list_byte_order_prefix_and_after)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "two"), 0);
    const char *keys[] = {"banana", "apple", "ab", "a", "apricot", "b\xff", "B", "ap"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        cr_assert_eq(put(ns1, keys[i], "v"), 0);
    cr_assert_eq(put(ns2, "a-other-ns", "v"), 0); /* the adjacent namespace stays out */

    expect_list(ns1, NULL, NULL, 100, 0, 0, "B,a,ab,ap,apple,apricot,banana,b\xff", 0, NULL);
    expect_list(ns1, "ap", NULL, 100, 0, 0, "ap,apple,apricot", 0, NULL);
    expect_list(ns1, "ap", "ap", 100, 0, 0, "apple,apricot", 0, NULL);
    expect_list(ns1, NULL, "apple", 100, 0, 0, "apricot,banana,b\xff", 0, NULL);
    expect_list(ns1, "ap", "a", 100, 0, 0, "ap,apple,apricot", 0, NULL); /* after < prefix */
    expect_list(ns1, "ap", "b", 100, 0, 0, "", 0, NULL);                 /* after > prefix */
    expect_list(ns1, "b", NULL, 100, 0, 0, "banana,b\xff", 0, NULL);
    expect_list(ns1, "b\xff", NULL, 100, 0, 0, "b\xff", 0, NULL);
    expect_list(ns1, "zzz", NULL, 100, 0, 0, "", 0, NULL);
    expect_list(ns2, NULL, NULL, 100, 0, 0, "a-other-ns", 0, NULL);
    expect_list(ns3, NULL, NULL, 100, 0, 0, "", 0, NULL);
}

Test(store, list_limit_and_resume)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    for (int i = 0; i < 25; i++) {
        char k[16];
        snprintf(k, sizeof(k), "key%02d", i);
        cr_assert_eq(put(ns1, k, "v"), 0);
    }
    expect_list(ns1, "key", NULL, 10, 0, 0,
                "key00,key01,key02,key03,key04,key05,key06,key07,key08,key09", 1, "key09");
    expect_list(ns1, "key", "key09", 10, 0, 0,
                "key10,key11,key12,key13,key14,key15,key16,key17,key18,key19", 1, "key19");
    expect_list(ns1, "key", "key19", 10, 0, 0, "key20,key21,key22,key23,key24", 0, NULL);
    /* exactly at the end: more is 0 since nothing follows */
    expect_list(ns1, "key", "key14", 10, 0, 0,
                "key15,key16,key17,key18,key19,key20,key21,key22,key23,key24", 0, NULL);
}

Test(store, expired_keys_hidden_from_get_and_list)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    int64_t now = ekv_clock_now_s();
    cr_assert_eq(put_full(ns1, "e1", "v", "{}", now + 100, NULL), 0);
    cr_assert_eq(put_full(ns1, "e2", "v", NULL, now + 200, NULL), 0);
    cr_assert_eq(put(ns1, "live", "v"), 0);

    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "e1", 2, 1, now, &e), 0);
    cr_assert_eq(e.expiration, now + 100);
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "e1", 2, 1, now + 99, &e), 0);
    ekv_kv_entry_clear(&e);
    /* expiration <= now counts as absent, with and without the value */
    cr_assert_eq(ekv_store_kv_get(st, ns1, "e1", 2, 1, now + 100, &e), EKV_EKEY_NOT_FOUND);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "e1", 2, 0, now + 100, &e), EKV_EKEY_NOT_FOUND);

    expect_list(ns1, NULL, NULL, 10, 10, now, "e1,e2,live", 0, NULL);
    expect_list(ns1, NULL, NULL, 10, 10, now + 100, "e2,live", 0, NULL);
    expect_list(ns1, NULL, NULL, 10, 10, now + 200, "live", 0, NULL);

    ekv_kv_list_t l;
    cr_assert_eq(ekv_store_kv_list(st, ns1, NULL, 0, NULL, 0, 10, 10, now, &l), 0);
    cr_assert_eq(l.count, 3);
    cr_assert_eq(l.items[0].expiration, now + 100);
    cr_assert_eq(l.items[0].metadata_len, 2);
    cr_assert_eq(memcmp(l.items[0].metadata, "{}", 2), 0);
    cr_assert_null(l.items[1].metadata);
    ekv_kv_list_clear(&l);
}

Test(store, list_scan_budget_bounds_work_on_expired_keys)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    int64_t now = ekv_clock_now_s();
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof(k), "x%d", i);
        cr_assert_eq(put_full(ns1, k, "v", NULL, now + 10, NULL), 0);
    }
    cr_assert_eq(put(ns1, "y", "v"), 0);
    /* limit 3 + budget 2: five entries examined, all expired */
    expect_list(ns1, NULL, NULL, 3, 2, now + 10, "", 1, "x4");
    expect_list(ns1, NULL, "x4", 3, 2, now + 10, "", 1, "x9");
    expect_list(ns1, NULL, "x9", 3, 2, now + 10, "y", 0, NULL);
}

/* ---- namespaces ---- */

Test(store, kv_op_on_missing_namespace)
{
    ekv_kv_entry_t e;
    cr_assert_eq(put(ns1, "k", "v"), EKV_ENS_NOT_FOUND);
    cr_assert_eq(del(ns1, "k", NULL), EKV_ENS_NOT_FOUND);
    cr_assert_eq(last_seq(), 0, "failed ops write nothing");
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k", 1, 1, 0, &e), EKV_EKEY_NOT_FOUND);
}

Test(store, ns_create_checks)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "title"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "title"), EKV_ENS_EXISTS);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "other"), EKV_ENS_EXISTS, "same id");
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC2, "title"), 0, "titles are per account");
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, ACC, ""), EKV_EBAD_TITLE);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, "xyz", ACC, "t"), EKV_EBAD_NS_ID);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, "ffffffffffffffffffffffffffffffff", ACC, "t"),
                 EKV_EBAD_NS_ID);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, "", "t"), EKV_EBAD_REQUEST);
    cr_assert_eq(last_seq(), 2);
}

Test(store, ns_limit_per_account)
{
    for (int i = 0; i < EKV_MAX_NS_PER_ACCOUNT; i++) {
        char id[33], title[16];
        snprintf(id, sizeof(id), "%032x", i + 1);
        snprintf(title, sizeof(title), "t%d", i);
        cr_assert_eq(ns_op(EKV_OP_NS_CREATE, id, ACC, title), 0);
    }
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, ACC, "one too many"), EKV_ETOO_MANY_NS);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, ACC2, "other account"), 0);
    /* deleting one frees a slot */
    char id[33];
    snprintf(id, sizeof(id), "%032x", 7);
    cr_assert_eq(ns_op(EKV_OP_NS_DELETE, id, ACC, NULL), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "fits again"), 0);
}

Test(store, ns_rename)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "old"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "taken"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_RENAME, NS1, ACC, "taken"), EKV_ENS_EXISTS);
    cr_assert_eq(ns_op(EKV_OP_NS_RENAME, NS3, ACC, "new"), EKV_ENS_NOT_FOUND);
    cr_assert_eq(ns_op(EKV_OP_NS_RENAME, NS1, ACC2, "new"), EKV_ENS_NOT_FOUND, "wrong account");
    cr_assert_eq(ns_op(EKV_OP_NS_RENAME, NS1, ACC, "new"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_RENAME, NS1, ACC, "new"), 0, "same title again is fine");
    /* the old title is free, the new one is not */
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, ACC, "new"), EKV_ENS_EXISTS);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, ACC, "old"), 0);
}

Test(store, ns_delete_removes_keys)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "two"), 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(put_full(ns1, k, "v", NULL, i % 2 ? ekv_clock_now_s() + 1000 : 0, NULL), 0);
        cr_assert_eq(put(ns2, k, "w"), 0);
    }
    cr_assert_eq(ns_op(EKV_OP_NS_DELETE, NS1, ACC2, NULL), EKV_ENS_NOT_FOUND, "wrong account");
    cr_assert_eq(ns_op(EKV_OP_NS_DELETE, NS1, ACC, NULL), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_DELETE, NS1, ACC, NULL), EKV_ENS_NOT_FOUND);
    cr_assert_eq(put(ns1, "k1", "v"), EKV_ENS_NOT_FOUND);

    /* the same id again: empty, and the title is free */
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k1", 2, 1, 0, &e), EKV_EKEY_NOT_FOUND);
    expect_list(ns1, NULL, NULL, 100, 100, 0, "", 0, NULL);
    /* the neighbour is intact */
    cr_assert_eq(ekv_store_kv_get(st, ns2, "k49", 3, 1, 0, &e), 0);
    cr_assert_eq(memcmp(e.value, "w", 1), 0);
    ekv_kv_entry_clear(&e);
    ekv_kv_list_t l;
    cr_assert_eq(ekv_store_kv_list(st, ns2, NULL, 0, NULL, 0, 1000, 0, 0, &l), 0);
    cr_assert_eq(l.count, 50);
    ekv_kv_list_clear(&l);
}

/* ---- queue semantics (async submit) ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int block; /* done() blocks the committer while set */
} waiter_t;

static waiter_t wt = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void count_done(ekv_job_t *job)
{
    (void)job;
    pthread_mutex_lock(&wt.lock);
    wt.done++;
    pthread_cond_broadcast(&wt.cond);
    while (wt.block)
        pthread_cond_wait(&wt.cond, &wt.lock);
    pthread_mutex_unlock(&wt.lock);
}

static void wait_done(int n)
{
    pthread_mutex_lock(&wt.lock);
    while (wt.done < n)
        pthread_cond_wait(&wt.cond, &wt.lock);
    pthread_mutex_unlock(&wt.lock);
}

static void init_ns_write(ekv_write_t *w, ekv_op_type_t type, const char *id, const char *title)
{
    memset(w, 0, sizeof(*w));
    w->type = type;
    w->job.done = count_done;
    snprintf(w->ns.id, sizeof(w->ns.id), "%s", id);
    snprintf(w->ns.account_id, sizeof(w->ns.account_id), "%s", ACC);
    if (title)
        snprintf(w->ns.title, sizeof(w->ns.title), "%s", title);
}

Test(store, same_queue_create_duplicate_put_delete_put)
{
    /* Hold the committer inside a done() so that everything below lands in ONE queue and is
     * applied as one group. */
    ekv_write_t hold;
    init_ns_write(&hold, EKV_OP_ACCOUNT_CREATE, NS3, NULL);
    snprintf(hold.account.id, sizeof(hold.account.id), "%s", ACC);
    wt.block = 1;
    cr_assert_eq(ekv_store_write_submit(st, &hold), 0);
    wait_done(1);

    ekv_kv_item_t it = {.key = "k", .key_len = 1, .value = "v", .value_len = 1};
    ekv_write_t w[6];
    init_ns_write(&w[0], EKV_OP_NS_CREATE, NS1, "dup");
    init_ns_write(&w[1], EKV_OP_NS_CREATE, NS2, "dup");
    init_ns_write(&w[2], EKV_OP_KV_PUT, NS1, NULL);
    init_ns_write(&w[3], EKV_OP_NS_DELETE, NS1, NULL);
    init_ns_write(&w[4], EKV_OP_KV_PUT, NS1, NULL);
    init_ns_write(&w[5], EKV_OP_NS_CREATE, NS2, "dup"); /* title freed by the delete */
    for (int i = 2; i <= 4; i += 2) {
        memcpy(w[i].nsid, ns1, 16);
        w[i].items = &it;
        w[i].nitems = 1;
    }
    for (int i = 0; i < 6; i++)
        cr_assert_eq(ekv_store_write_submit(st, &w[i]), 0);
    pthread_mutex_lock(&wt.lock);
    wt.block = 0;
    pthread_cond_broadcast(&wt.cond);
    pthread_mutex_unlock(&wt.lock);
    wait_done(7);

    cr_assert_eq(w[0].status, 0);
    cr_assert_eq(w[1].status, EKV_ENS_EXISTS);
    cr_assert_eq(w[2].status, 0);
    cr_assert_eq(w[3].status, 0);
    cr_assert_eq(w[4].status, EKV_ENS_NOT_FOUND);
    cr_assert_eq(w[5].status, 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(w[i].batch_ops, 6, "op %d shared one group", i);
    cr_assert_eq(w[0].seq, 2);
    cr_assert_eq(w[1].seq, 0);
    cr_assert_eq(w[2].seq, 3);
    cr_assert_eq(w[3].seq, 4);
    cr_assert_eq(w[4].seq, 0);
    cr_assert_eq(w[5].seq, 5);
    cr_assert_eq(last_seq(), 5);
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.commits, 2);
    cr_assert_eq(s.batch_hist[0], 1); /* the held op alone */
    cr_assert_eq(s.batch_hist[3], 1); /* 6 ops: bucket <=8 */
    /* the put before the delete did not survive it */
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k", 1, 1, 0, &e), EKV_EKEY_NOT_FOUND);
}

Test(store, queue_full_is_ebusy)
{
    ekv_store_opts_t o = base_opts();
    o.commit_max_queue = 2;
    reopen(&o);
    ekv_write_t hold, w[3];
    init_ns_write(&hold, EKV_OP_NS_CREATE, NS1, "a");
    wt.block = 1;
    cr_assert_eq(ekv_store_write_submit(st, &hold), 0);
    wait_done(1); /* the committer is now stuck in done() */
    init_ns_write(&w[0], EKV_OP_NS_CREATE, NS2, "b");
    init_ns_write(&w[1], EKV_OP_NS_CREATE, NS3, "c");
    init_ns_write(&w[2], EKV_OP_NS_CREATE, NS3, "d");
    cr_assert_eq(ekv_store_write_submit(st, &w[0]), 0);
    cr_assert_eq(ekv_store_write_submit(st, &w[1]), 0);
    cr_assert_eq(ekv_store_write_submit(st, &w[2]), EKV_EBUSY);
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.queue_depth, 2);
    pthread_mutex_lock(&wt.lock);
    wt.block = 0;
    pthread_cond_broadcast(&wt.cond);
    pthread_mutex_unlock(&wt.lock);
    wait_done(3);
    cr_assert_eq(w[0].status, 0);
    cr_assert_eq(w[1].status, 0);
}

Test(store, close_completes_everything_queued)
{
    enum { N = 300 };
    static ekv_write_t w[N];
    static char names[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "t%d", i);
        char id[33];
        snprintf(id, sizeof(id), "%032x", i + 1);
        init_ns_write(&w[i], EKV_OP_NS_CREATE, id, names[i]);
        snprintf(w[i].ns.account_id, sizeof(w[i].ns.account_id), "%08x", i);
        cr_assert_eq(ekv_store_write_submit(st, &w[i]), 0);
    }
    ekv_store_close(st);
    st = NULL;
    cr_assert_eq(wt.done, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(w[i].status, 0);
    ekv_store_opts_t o = base_opts();
    open_with(&o);
    cr_assert_eq(last_seq(), N);
}

/* ---- durability and sequence ---- */

Test(store, reopen_keeps_data_and_seq_continues)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(put_full(ns1, "a", "1", "{\"x\":1}", 0, NULL), 0);
    cr_assert_eq(put(ns1, "b", "2"), 0);
    cr_assert_eq(del(ns1, "b", NULL), 0);
    cr_assert_eq(last_seq(), 4);

    ekv_store_opts_t o = base_opts();
    reopen(&o);
    cr_assert_eq(last_seq(), 4);
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "a", 1, 1, 0, &e), 0);
    cr_assert_eq(memcmp(e.value, "1", 1), 0);
    cr_assert_str_eq(e.metadata, "{\"x\":1}");
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "b", 1, 1, 0, &e), EKV_EKEY_NOT_FOUND);
    /* the namespace index came back too */
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "one"), EKV_ENS_EXISTS);
    uint64_t seq = 0;
    cr_assert_eq(put_full(ns1, "c", "3", NULL, 0, &seq), 0);
    cr_assert_eq(seq, 5);
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.first_log_seq, 1);
}

/* Read the log CF directly (store closed) and check every record. */
Test(store, change_log_records)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    static char big[300000];
    memset(big, 'B', sizeof(big) - 1);
    cr_assert_eq(put_full(ns1, "k", big, "{\"m\":1}", 4000000000, NULL), 0);
    cr_assert_eq(del(ns1, "k", NULL), 0);
    raw_db_t raw;
    raw_open(&raw, 1);
    char *err = NULL;
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(raw.db, ro, raw.cf[EKV_CF_LOG]);
    uint64_t expect = 1;
    int ops[3] = {EDGEKV__CHANGE_OP__NS_CREATE, EDGEKV__CHANGE_OP__KV_PUT,
                  EDGEKV__CHANGE_OP__KV_DELETE};
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        cr_assert_eq(kl, 8);
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++)
            seq = (seq << 8) | (unsigned char)k[i];
        cr_assert_eq(seq, expect);
        Edgekv__ChangeRecord *r = edgekv__change_record__unpack(NULL, vl, (const uint8_t *)v);
        cr_assert_not_null(r);
        cr_assert_eq(r->seq, seq);
        cr_assert_eq((int)r->op, ops[expect - 1]);
        cr_assert_gt(r->commit_time_ms, 0);
        cr_assert_eq(r->namespace_id.len, 16);
        cr_assert_eq(memcmp(r->namespace_id.data, ns1, 16), 0);
        if (r->op == EDGEKV__CHANGE_OP__NS_CREATE) {
            cr_assert_str_eq(r->account_id, ACC);
            cr_assert_str_eq(r->title, "one");
        } else if (r->op == EDGEKV__CHANGE_OP__KV_PUT) {
            cr_assert_eq(r->key.len, 1);
            cr_assert_eq(r->value.len, sizeof(big) - 1);
            cr_assert_eq(memcmp(r->value.data, big, r->value.len), 0);
            cr_assert_eq(r->metadata.len, 7);
            cr_assert_eq(r->expiration, 4000000000);
        } else {
            cr_assert_eq(r->key.len, 1);
            cr_assert_eq(r->value.len, 0);
        }
        edgekv__change_record__free_unpacked(r, NULL);
        expect++;
    }
    cr_assert_eq(expect, 4);
    size_t vl;
    char *v = rocksdb_get_cf(raw.db, ro, raw.cf[EKV_CF_META], "s/last_seq", 10, &vl, &err);
    cr_assert_eq(vl, 8);
    cr_assert_eq(v[7], 3);
    free(v);
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    raw_close(&raw);
}

/* ---- group commit ---- */

#define GC_THREADS 8
#define GC_PUTS    200

static int gc_failures;

static void *gc_writer(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int i = 0; i < GC_PUTS; i++) {
        char k[32];
        snprintf(k, sizeof(k), "t%d-%04d", t, i);
        if (put(ns1, k, "some value bytes") != 0)
            __atomic_add_fetch(&gc_failures, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

Test(store, group_commit_batches_concurrent_writers)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    ekv_store_stats_t before;
    ekv_store_stats(st, &before);
    pthread_t th[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, gc_writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < GC_THREADS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(gc_failures, 0);

    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    uint64_t total = GC_THREADS * GC_PUTS;
    cr_assert_eq(s.last_seq, total + 1);
    cr_assert_eq(s.committed_ops - before.committed_ops, total);
    uint64_t commits = s.commits - before.commits;
    cr_assert_lt(commits, total, "group commit must batch: %llu commits for %llu ops",
                 (unsigned long long)commits, (unsigned long long)total);
    uint64_t hist = 0, multi = 0;
    for (int i = 0; i < EKV_BATCH_HIST_BUCKETS; i++) {
        hist += s.batch_hist[i];
        if (i > 0)
            multi += s.batch_hist[i];
    }
    cr_assert_eq(hist, s.commits);
    cr_assert_gt(multi, 0);
    cr_assert_eq(s.commit_failures, 0);
    cr_assert_gt(s.commit_ns_total, 0);
    cr_log_info("group commit: %llu ops in %llu commits", (unsigned long long)total,
                (unsigned long long)commits);

    ekv_kv_list_t l;
    cr_assert_eq(ekv_store_kv_list(st, ns1, "t3-", 3, NULL, 0, 1000, 0, 0, &l), 0);
    cr_assert_eq(l.count, GC_PUTS);
    ekv_kv_list_clear(&l);
}

/* ---- purge and trim ---- */

static int wait_stats(uint64_t ekv_store_stats_t_field_offset, uint64_t want)
{
    for (int i = 0; i < 500; i++) {
        ekv_store_stats_t s;
        ekv_store_stats(st, &s);
        uint64_t v;
        memcpy(&v, (char *)&s + ekv_store_stats_t_field_offset, sizeof(v));
        if (v >= want)
            return 1;
        usleep(10000);
    }
    return 0;
}

Test(store, purger_removes_expired_keys_through_the_log)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    int64_t now = ekv_clock_now_s();
    cr_assert_eq(put_full(ns1, "exp", "v", NULL, now + 120, NULL), 0);
    cr_assert_eq(put(ns1, "keep", "v"), 0);
    cr_assert_eq(put_full(ns1, "over", "v", NULL, now + 120, NULL), 0);
    cr_assert_eq(put(ns1, "over", "v2"), 0); /* its exp index entry is now stale */
    cr_assert_eq(put_full(ns1, "later", "v", NULL, now + 100000, NULL), 0);
    uint64_t seq_before = last_seq();

    ekv_clock_advance(200 * 1000);
    cr_assert(wait_stats(offsetof(ekv_store_stats_t, purged_keys), 1), "purger never ran");
    usleep(200000); /* a few more rounds: the stale entry must not purge "over" */

    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.purged_keys, 1);
    cr_assert_eq(s.last_seq, seq_before + 1, "one KV_EXPIRE record");
    ekv_kv_entry_t e;
    /* gone for real: invisible even to a reader whose clock is before the expiration */
    cr_assert_eq(ekv_store_kv_get(st, ns1, "exp", 3, 1, now, &e), EKV_EKEY_NOT_FOUND);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "over", 4, 1, now, &e), 0);
    cr_assert_eq(memcmp(e.value, "v2", 2), 0);
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "keep", 4, 0, now, &e), 0);
    ekv_kv_entry_clear(&e);
    cr_assert_eq(ekv_store_kv_get(st, ns1, "later", 5, 0, ekv_clock_now_s(), &e), 0);
    ekv_kv_entry_clear(&e);
}

Test(store, log_trim_by_size)
{
    ekv_store_opts_t o = base_opts();
    o.log_retain_bytes = 64 * 1024;
    reopen(&o);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    static char val[4096];
    memset(val, 'v', sizeof(val) - 1);
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(put(ns1, k, val), 0);
    }
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.last_seq, 101);
    cr_assert_gt(s.log_trimmed, 0);
    cr_assert_eq(s.first_log_seq, 1 + s.log_trimmed);
    /* ~4 KiB records, 64 KiB budget: between 10 and 17 records are kept */
    uint64_t kept = s.last_seq - s.first_log_seq + 1;
    cr_assert(kept >= 10 && kept <= 17, "kept %llu records", (unsigned long long)kept);
    /* data is untouched by trimming */
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "k0", 2, 1, 0, &e), 0);
    cr_assert_eq(e.value_len, sizeof(val) - 1);
    ekv_kv_entry_clear(&e);
    /* and the seq survives a reopen with a trimmed log */
    reopen(&o);
    ekv_store_stats(st, &s);
    cr_assert_eq(s.last_seq, 101);
    cr_assert_gt(s.first_log_seq, 1);
}

Test(store, log_trim_by_age)
{
    ekv_store_opts_t o = base_opts();
    o.log_retain_ms = 60 * 1000;
    reopen(&o);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(put(ns1, "k", "v"), 0);
    ekv_clock_advance(120 * 1000);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(put(ns1, "k", "v"), 0);
    /* records 1..21 are older than 60 s now; 22..26 are not */
    cr_assert(wait_stats(offsetof(ekv_store_stats_t, log_trimmed), 21), "age trim never ran");
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.log_trimmed, 21);
    cr_assert_eq(s.first_log_seq, 22);
    cr_assert_eq(s.last_seq, 26);
}

/* ---- catalog ---- */

typedef struct {
    int accounts, tokens, namespaces;
    ekv_account_t a;
    ekv_token_t t;
    ekv_namespace_t ns[4];
} cat_t;

static void on_account(void *ctx, const ekv_account_t *a)
{
    cat_t *c = ctx;
    c->a = *a;
    c->accounts++;
}

static void on_token(void *ctx, const ekv_token_t *t)
{
    cat_t *c = ctx;
    c->t = *t;
    c->tokens++;
}

static void on_namespace(void *ctx, const ekv_namespace_t *ns)
{
    cat_t *c = ctx;
    if (c->namespaces < 4)
        c->ns[c->namespaces] = *ns;
    c->namespaces++;
}

static int token_op(ekv_op_type_t type, const char *hash, const char *id, const char *acc)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = type;
    snprintf(w.token.hash, sizeof(w.token.hash), "%s", hash);
    snprintf(w.token.id, sizeof(w.token.id), "%s", id);
    snprintf(w.token.account_id, sizeof(w.token.account_id), "%s", acc);
    snprintf(w.token.name, sizeof(w.token.name), "ci token");
    w.token.perms = EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
    w.token.created_ms = 1234;
    return ekv_store_write_sync(st, &w);
}

Test(store, catalog_load_returns_what_was_written)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_ACCOUNT_CREATE;
    snprintf(w.account.id, sizeof(w.account.id), "%s", ACC);
    snprintf(w.account.name, sizeof(w.account.name), "Acme Inc");
    cr_assert_eq(ekv_store_write_sync(st, &w), 0);
    int64_t acc_created = w.account.created_ms;
    cr_assert_gt(acc_created, 0, "created_ms filled in");

    const char *hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    cr_assert_eq(token_op(EKV_OP_TOKEN_CREATE, hash, "aaaabbbbccccddddaaaabbbbccccdddd", ACC), 0);
    cr_assert_eq(token_op(EKV_OP_TOKEN_CREATE, "deadbeef", "tok2", ACC), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "first"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "second"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_RENAME, NS2, ACC, "renamed"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS3, ACC, "third"), 0);
    cr_assert_eq(ns_op(EKV_OP_NS_DELETE, NS3, ACC, NULL), 0);
    /* revoke: by id only, then again -> not found */
    cr_assert_eq(token_op(EKV_OP_TOKEN_REVOKE, "", "tok2", ""), 0);
    cr_assert_eq(token_op(EKV_OP_TOKEN_REVOKE, "deadbeef", "", ""), EKV_ETOKEN_NOT_FOUND);
    cr_assert_eq(token_op(EKV_OP_TOKEN_REVOKE, hash, "", ACC2), EKV_ETOKEN_NOT_FOUND,
                 "wrong account");

    ekv_store_opts_t o = base_opts();
    reopen(&o); /* from disk, not from any cache */
    cat_t c;
    memset(&c, 0, sizeof(c));
    ekv_catalog_visitor_t v = {&c, on_account, on_token, on_namespace};
    cr_assert_eq(ekv_store_catalog_load(st, &v), 0);
    cr_assert_eq(c.accounts, 1);
    cr_assert_str_eq(c.a.id, ACC);
    cr_assert_str_eq(c.a.name, "Acme Inc");
    cr_assert_eq(c.a.created_ms, acc_created);
    cr_assert_eq(c.tokens, 1);
    cr_assert_str_eq(c.t.hash, hash);
    cr_assert_str_eq(c.t.id, "aaaabbbbccccddddaaaabbbbccccdddd");
    cr_assert_str_eq(c.t.account_id, ACC);
    cr_assert_str_eq(c.t.name, "ci token");
    cr_assert_eq(c.t.perms, EKV_PERM_KV_READ | EKV_PERM_KV_WRITE);
    cr_assert_eq(c.t.created_ms, 1234);
    cr_assert_eq(c.namespaces, 2);
    cr_assert_str_eq(c.ns[0].id, NS1);
    cr_assert_str_eq(c.ns[0].title, "first");
    cr_assert_str_eq(c.ns[0].account_id, ACC);
    cr_assert_gt(c.ns[0].created_ms, 0);
    cr_assert_str_eq(c.ns[1].id, NS2);
    cr_assert_str_eq(c.ns[1].title, "renamed");
    /* the token index came back from disk: the revoked token stays revoked */
    cr_assert_eq(token_op(EKV_OP_TOKEN_REVOKE, "deadbeef", "", ""), EKV_ETOKEN_NOT_FOUND);
    cr_assert_eq(token_op(EKV_OP_TOKEN_REVOKE, hash, "", ""), 0);
}

Test(store, property)
{
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(put(ns1, "a", "1"), 0);
    char *p = ekv_store_property(st, "kvmeta", "rocksdb.estimate-num-keys");
    cr_assert_not_null(p);
    cr_assert_str_eq(p, "1");
    free(p);
    p = ekv_store_property(st, NULL, "rocksdb.estimate-num-keys");
    cr_assert_not_null(p);
    cr_assert_geq(atoi(p), 4, "meta(3) + kvmeta + kvval + log: %s", p);
    free(p);
    cr_assert_null(ekv_store_property(st, "nope", "rocksdb.estimate-num-keys"));
    cr_assert_null(ekv_store_property(st, "kvmeta", "rocksdb.no-such-property"));
}

Test(store, sync_policy_none_works)
{
    ekv_store_opts_t o = base_opts();
    o.sync = EKV_SYNC_NONE;
    reopen(&o);
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS1, ACC, "one"), 0);
    cr_assert_eq(put(ns1, "a", "1"), 0);
    reopen(&o);
    ekv_kv_entry_t e;
    cr_assert_eq(ekv_store_kv_get(st, ns1, "a", 1, 1, 0, &e), 0);
    ekv_kv_entry_clear(&e);
}

Test(store, batch_byte_budget_splits_groups)
{
    ekv_store_opts_t o = base_opts();
    o.commit_max_batch_bytes = 1; /* every op exceeds it: one op per group */
    reopen(&o);
    ekv_write_t hold, w[5];
    char ids[5][33];
    init_ns_write(&hold, EKV_OP_NS_CREATE, NS1, "hold");
    wt.block = 1;
    cr_assert_eq(ekv_store_write_submit(st, &hold), 0);
    wait_done(1);
    for (int i = 0; i < 5; i++) {
        char title[8];
        snprintf(ids[i], sizeof(ids[i]), "%032x", i + 100);
        snprintf(title, sizeof(title), "t%d", i);
        init_ns_write(&w[i], EKV_OP_NS_CREATE, ids[i], title);
        cr_assert_eq(ekv_store_write_submit(st, &w[i]), 0);
    }
    pthread_mutex_lock(&wt.lock);
    wt.block = 0;
    pthread_cond_broadcast(&wt.cond);
    pthread_mutex_unlock(&wt.lock);
    wait_done(6);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(w[i].status, 0);
        cr_assert_eq(w[i].batch_ops, 1);
        cr_assert_eq(w[i].seq, (uint64_t)i + 2, "queue order kept across the split");
    }
    ekv_store_stats_t s;
    ekv_store_stats(st, &s);
    cr_assert_eq(s.commits, 6);
    cr_assert_eq(s.batch_hist[0], 6);
}

/* Completions go through opts.doneq and run on the loop thread. */
static pthread_t loop_thread;
static int loop_done_ok;

static void loop_done(ekv_job_t *job)
{
    ekv_write_t *w = (ekv_write_t *)job;
    loop_done_ok = pthread_equal(pthread_self(), loop_thread) && w->status == 0 && w->seq == 1;
    uv_stop(uv_default_loop());
}

Test(store, completions_run_on_the_doneq_loop)
{
    uv_loop_t *loop = uv_default_loop();
    ekv_doneq_t q;
    cr_assert_eq(ekv_doneq_init(&q, loop), 0);
    ekv_store_opts_t o = base_opts();
    o.doneq = &q;
    reopen(&o);
    loop_thread = pthread_self();
    ekv_write_t w;
    init_ns_write(&w, EKV_OP_NS_CREATE, NS1, "one");
    w.job.done = loop_done;
    cr_assert_eq(ekv_store_write_submit(st, &w), 0);
    uv_run(loop, UV_RUN_DEFAULT);
    cr_assert_eq(loop_done_ok, 1);
    /* write_sync ignores the doneq: it returns without the loop running */
    cr_assert_eq(ns_op(EKV_OP_NS_CREATE, NS2, ACC, "two"), 0);
    ekv_store_close(st);
    st = NULL;
    ekv_doneq_close(&q);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
}
