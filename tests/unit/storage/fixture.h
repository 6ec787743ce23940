/*
 * fixture.h - shared helpers for the storage tests that run real stores in temp dirs
 * (test_replication_store.c, test_snapshot.c): ids, temp-dir removal, opening a store, and
 * synchronous writes of every op type. static inline so a test that uses only some of them
 * compiles warning-free.
 */
#ifndef EKV_TESTS_UNIT_STORAGE_FIXTURE_H
#define EKV_TESTS_UNIT_STORAGE_FIXTURE_H

#include "storage/store.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>

#define ACC  "0123456789abcdef0123456789abcdef"
#define NS1  "11111111111111111111111111111111"
#define NS2  "22222222222222222222222222222222"
#define NS3  "33333333333333333333333333333333"
#define TOKH "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TOKI "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

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

static inline int ns_op(ekv_store_t *s, ekv_op_type_t type, const char *id, const char *title)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = type;
    snprintf(w.ns.id, sizeof(w.ns.id), "%s", id);
    snprintf(w.ns.account_id, sizeof(w.ns.account_id), "%s", ACC);
    if (title)
        snprintf(w.ns.title, sizeof(w.ns.title), "%s", title);
    return ekv_store_write_sync(s, &w);
}

static inline int put_full(ekv_store_t *s, const uint8_t *nsid, const char *key, const char *value,
                           const char *meta, int64_t exp)
{
    ekv_kv_item_t it = {.key = key,
                        .key_len = strlen(key),
                        .value = value,
                        .value_len = strlen(value),
                        .metadata = meta,
                        .metadata_len = meta ? strlen(meta) : 0,
                        .expiration = exp};
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_PUT;
    memcpy(w.nsid, nsid, 16);
    w.items = &it;
    w.nitems = 1;
    return ekv_store_write_sync(s, &w);
}

static inline int del(ekv_store_t *s, const uint8_t *nsid, const char *key)
{
    ekv_kv_item_t it = {.key = key, .key_len = strlen(key)};
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_DELETE;
    memcpy(w.nsid, nsid, 16);
    w.items = &it;
    w.nitems = 1;
    return ekv_store_write_sync(s, &w);
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

static inline uint64_t sum_of(ekv_store_t *s, uint64_t *nkeys)
{
    uint64_t sum = 0, n = 0;
    cr_assert_eq(ekv_store_checksum(s, &sum, &n), 0);
    if (nkeys)
        *nkeys = n;
    return sum;
}

#endif
