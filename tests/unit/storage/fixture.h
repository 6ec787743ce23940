/*
 * fixture.h - shared helpers for the storage tests that run real stores in temp dirs.
 *
 * Always: temp-dir removal, hex ids, and synchronous writes on a given store (fx_*).
 * With EKV_FIXTURE_PAIR defined before the include: a primary + replica pair in one temp dir
 * (pst, rst, setup/teardown for TestSuite) and the ids and helpers the replication tests
 * share. Everything is static inline or used by every includer, so a test that uses only
 * some of it compiles warning-free.
 */
#ifndef EKV_TESTS_UNIT_STORAGE_FIXTURE_H
#define EKV_TESTS_UNIT_STORAGE_FIXTURE_H

#include "storage/store.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void hex16(const char *hex, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

/* Namespace op (create/rename/delete) on s. */
static inline int fx_ns_op(ekv_store_t *s, ekv_op_type_t type, const char *id, const char *account,
                           const char *title)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = type;
    snprintf(w.ns.id, sizeof(w.ns.id), "%s", id);
    snprintf(w.ns.account_id, sizeof(w.ns.account_id), "%s", account);
    if (title)
        snprintf(w.ns.title, sizeof(w.ns.title), "%s", title);
    return ekv_store_write_sync(s, &w);
}

/* One KV put of value[0..value_len) (value may be NULL when value_len is 0); *seq (if given) =
 * its change-log seq. */
static inline int fx_put_bytes(ekv_store_t *s, const uint8_t *nsid, const char *key,
                               const char *value, size_t value_len, const char *meta, int64_t exp,
                               uint64_t *seq)
{
    ekv_kv_item_t it = {.key = key,
                        .key_len = strlen(key),
                        .value = value,
                        .value_len = value_len,
                        .metadata = meta,
                        .metadata_len = meta ? strlen(meta) : 0,
                        .expiration = exp};
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_PUT;
    memcpy(w.nsid, nsid, 16);
    w.items = &it;
    w.nitems = 1;
    int rc = ekv_store_write_sync(s, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

/* One KV put (value a C string, NULL = empty); *seq (if given) = its change-log seq. */
static inline int fx_put(ekv_store_t *s, const uint8_t *nsid, const char *key, const char *value,
                         const char *meta, int64_t exp, uint64_t *seq)
{
    return fx_put_bytes(s, nsid, key, value, value ? strlen(value) : 0, meta, exp, seq);
}

/* One KV delete; *seq (if given) = its change-log seq. */
static inline int fx_del(ekv_store_t *s, const uint8_t *nsid, const char *key, uint64_t *seq)
{
    ekv_kv_item_t it = {.key = key, .key_len = strlen(key)};
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_DELETE;
    memcpy(w.nsid, nsid, 16);
    w.items = &it;
    w.nitems = 1;
    int rc = ekv_store_write_sync(s, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

/* The store checksum (ekv_store_checksum); *nkeys (if given) = the entries it covered. */
static inline uint64_t sum_of(ekv_store_t *s, uint64_t *nkeys)
{
    uint64_t sum = 0, n = 0;
    cr_assert_eq(ekv_store_checksum(s, &sum, &n), 0);
    if (nkeys)
        *nkeys = n;
    return sum;
}

#ifdef EKV_FIXTURE_PAIR

#define ACC  "0123456789abcdef0123456789abcdef"
#define NS1  "11111111111111111111111111111111"
#define NS2  "22222222222222222222222222222222"
#define NS3  "33333333333333333333333333333333"
#define TOKH "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOKI "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char root[64], pdir[96], rdir[96];
static ekv_store_t *pst, *rst; /* primary, replica */
static uint8_t ns1[16], ns2[16], ns3[16];

static inline ekv_store_t *open_store(const char *d, int replica, uint64_t retain_bytes)
{
    ekv_store_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = d;
    o.sync = EKV_SYNC_FSYNC;
    o.block_cache_bytes = 8 << 20;
    o.purge_interval_ms = 50;
    o.replica = replica;
    o.log_retain_bytes = retain_bytes;
    ekv_store_t *s = NULL;
    cr_assert_eq(ekv_store_open(&s, &o), 0);
    return s;
}

/* TestSuite(..., .init = setup, .fini = teardown): a fresh primary and replica per test. */
static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/ekv-pair-test-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    snprintf(pdir, sizeof(pdir), "%s/primary", root);
    snprintf(rdir, sizeof(rdir), "%s/replica", root);
    hex16(NS1, ns1);
    hex16(NS2, ns2);
    hex16(NS3, ns3);
    pst = open_store(pdir, 0, 0);
    rst = open_store(rdir, 1, 0);
}

static void teardown(void)
{
    if (pst)
        ekv_store_close(pst);
    if (rst)
        ekv_store_close(rst);
    pst = rst = NULL;
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline int ns_op(ekv_store_t *s, ekv_op_type_t type, const char *id, const char *title)
{
    return fx_ns_op(s, type, id, ACC, title);
}

static inline int put_full(ekv_store_t *s, const uint8_t *nsid, const char *key, const char *value,
                           const char *meta, int64_t exp)
{
    return fx_put(s, nsid, key, value, meta, exp, NULL);
}

static inline int del(ekv_store_t *s, const uint8_t *nsid, const char *key)
{
    return fx_del(s, nsid, key, NULL);
}

static inline int account_create(ekv_store_t *s)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_ACCOUNT_CREATE;
    snprintf(w.account.id, sizeof(w.account.id), "%s", ACC);
    snprintf(w.account.name, sizeof(w.account.name), "acme");
    return ekv_store_write_sync(s, &w);
}

static inline int token_op(ekv_store_t *s, ekv_op_type_t type)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = type;
    snprintf(w.token.hash, sizeof(w.token.hash), "%s", TOKH);
    snprintf(w.token.id, sizeof(w.token.id), "%s", TOKI);
    snprintf(w.token.account_id, sizeof(w.token.account_id), "%s", ACC);
    snprintf(w.token.name, sizeof(w.token.name), "ci token");
    w.token.perms = EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
    return ekv_store_write_sync(s, &w);
}

#endif /* EKV_FIXTURE_PAIR */

#endif
