/*
 * test_replication_store.c - the storage primitives of replication against real RocksDB
 * stores in temp dirs: log_read, trim pins, replica apply, keyspace checksum.
 */
#include "changelog.pb-c.h"
#include "common/clock.h"
#include "common/errors.h"
#include "storage/envelope.h"
#include "storage/store.h"

#define EKV_FIXTURE_PAIR
#include "tests/unit/storage/fixture.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(repl_store, .init = setup, .fini = teardown);

/* ---- write helpers (all on the primary unless s says otherwise) ---- */

static int bulk_put(ekv_store_t *s, const uint8_t *nsid, const char *prefix, int n)
{
    ekv_kv_item_t items[8];
    char keys[8][32], vals[8][32];
    cr_assert(n <= 8);
    for (int i = 0; i < n; i++) {
        snprintf(keys[i], sizeof(keys[i]), "%s%d", prefix, i);
        snprintf(vals[i], sizeof(vals[i]), "bulk value %d", i * 7);
        items[i] = (ekv_kv_item_t){.key = keys[i],
                                   .key_len = strlen(keys[i]),
                                   .value = vals[i],
                                   .value_len = strlen(vals[i])};
    }
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_KV_PUT;
    memcpy(w.nsid, nsid, 16);
    w.items = items;
    w.nitems = (size_t)n;
    return ekv_store_write_sync(s, &w);
}

/* ---- replication helpers ---- */

/* Stream primary -> replica in batches of 3 from the replica's last seq + 1 until caught up;
 * checks every seq comes exactly once, in order. Returns the number of records moved. */
static uint64_t stream(void)
{
    uint64_t next = ekv_store_last_seq(rst) + 1, moved = 0;
    for (;;) {
        ekv_log_batch_t b;
        int rc = ekv_store_log_read(pst, next, 3, 1 << 20, &b);
        cr_assert_eq(rc, 0, "log_read(%llu) = %s", (unsigned long long)next, ekv_err_name(rc));
        if (b.count == 0)
            break;
        cr_assert_leq(b.count, 3);
        size_t bytes = 0;
        for (size_t i = 0; i < b.count; i++) {
            cr_assert_eq(b.recs[i].seq, next + i);
            Edgekv__ChangeRecord *r =
                edgekv__change_record__unpack(NULL, b.recs[i].len, b.recs[i].data);
            cr_assert_not_null(r);
            cr_assert_eq(r->seq, next + i);
            edgekv__change_record__free_unpacked(r, NULL);
            bytes += b.recs[i].len;
        }
        cr_assert_eq(b.bytes, bytes);
        rc = ekv_store_apply_records(rst, &b);
        cr_assert_eq(rc, 0, "apply from %llu: %s", (unsigned long long)next, ekv_err_name(rc));
        next += b.count;
        moved += b.count;
        cr_assert_eq(ekv_store_last_seq(rst), next - 1);
        ekv_log_batch_clear(&b);
    }
    cr_assert_eq(next - 1, ekv_store_last_seq(pst));
    return moved;
}

/* Same answer from both stores for one key. */
static void same_key(const uint8_t *nsid, const char *key, int want_found)
{
    ekv_kv_entry_t a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    int ra = ekv_store_kv_get(pst, nsid, key, strlen(key), 1, 0, &a);
    int rb = ekv_store_kv_get(rst, nsid, key, strlen(key), 1, 0, &b);
    cr_assert_eq(ra, want_found ? 0 : EKV_EKEY_NOT_FOUND, "%s: %s", key, ekv_err_name(ra));
    cr_assert_eq(rb, ra, "%s: %s", key, ekv_err_name(rb));
    if (ra == 0) {
        cr_assert_eq(a.value_len, b.value_len);
        cr_assert_eq(memcmp(a.value, b.value, a.value_len), 0);
        cr_assert_eq(a.metadata_len, b.metadata_len);
        if (a.metadata_len)
            cr_assert_eq(memcmp(a.metadata, b.metadata, a.metadata_len), 0);
        cr_assert_eq(a.expiration, b.expiration);
    }
    ekv_kv_entry_clear(&a);
    ekv_kv_entry_clear(&b);
}

typedef struct {
    int accounts, tokens, namespaces;
} counts_t;

static void on_account(void *ctx, const ekv_account_t *a)
{
    (void)a;
    ((counts_t *)ctx)->accounts++;
}
static void on_token(void *ctx, const ekv_token_t *t)
{
    (void)t;
    ((counts_t *)ctx)->tokens++;
}
static void on_namespace(void *ctx, const ekv_namespace_t *ns)
{
    (void)ns;
    ((counts_t *)ctx)->namespaces++;
}

static counts_t catalog_counts(ekv_store_t *s)
{
    counts_t c = {0, 0, 0};
    ekv_catalog_visitor_t v = {
        .ctx = &c, .on_account = on_account, .on_token = on_token, .on_namespace = on_namespace};
    cr_assert_eq(ekv_store_catalog_load(s, &v), 0);
    return c;
}

/* A batch holding copies of the primary's records [from, from + n). */
static void read_exact(uint64_t from, size_t n, ekv_log_batch_t *b)
{
    cr_assert_eq(ekv_store_log_read(pst, from, n, 1 << 20, b), 0);
    cr_assert_eq(b->count, n);
}

/* ---- tests ---- */

Test(repl_store, stream_mixed_writes_to_replica)
{
    int64_t now = ekv_clock_now_s();
    cr_assert_eq(account_create(pst), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "first"), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS2, "second"), 0);
    cr_assert_eq(token_op(pst, EKV_OP_TOKEN_CREATE), 0);
    cr_assert_eq(put_full(pst, ns1, "plain", "hello world", NULL, 0), 0);
    cr_assert_eq(put_full(pst, ns1, "meta", "with metadata", "{\"a\":1}", 0), 0);
    cr_assert_eq(put_full(pst, ns1, "exp", "expires later", "{\"b\":[2]}", now + 3600), 0);
    cr_assert_eq(put_full(pst, ns1, "empty", "", NULL, 0), 0);
    char big[EKV_ENVELOPE_INLINE_MAX + 2]; /* one byte over the inline limit: kept in kvval */
    memset(big, 'B', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(put_full(pst, ns1, "big", big, NULL, 0), 0);
    cr_assert_eq(bulk_put(pst, ns1, "bulk", 5), 0);
    cr_assert_eq(put_full(pst, ns2, "doomed", "ns goes away", NULL, 0), 0);
    cr_assert_eq(put_full(pst, ns1, "plain", "hello again", NULL, 0), 0); /* overwrite */
    cr_assert_eq(del(pst, ns1, "bulk2"), 0);
    cr_assert_eq(del(pst, ns1, "never-existed"), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_RENAME, NS1, "renamed"), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_DELETE, NS2, NULL), 0);
    cr_assert_eq(put_full(pst, ns1, "soon", "short-lived", NULL, now + 2), 0);
    uint64_t plast = ekv_store_last_seq(pst);
    cr_assert_eq(plast, 21); /* 1+2+1+5+5+1+1+2+1+1+1 records */

    /* records 1..last arrive exactly once, in order; the replica's log is byte-identical */
    cr_assert_eq(stream(), plast);
    cr_assert_eq(ekv_store_last_seq(rst), plast);
    ekv_log_batch_t pa, ra;
    read_exact(1, plast, &pa);
    cr_assert_eq(ekv_store_log_read(rst, 1, plast, 1 << 20, &ra), 0);
    cr_assert_eq(ra.count, plast);
    for (size_t i = 0; i < plast; i++) {
        cr_assert_eq(ra.recs[i].len, pa.recs[i].len);
        cr_assert_eq(memcmp(ra.recs[i].data, pa.recs[i].data, pa.recs[i].len), 0);
    }
    ekv_log_batch_clear(&pa);
    ekv_log_batch_clear(&ra);

    uint64_t np = 0, nr = 0, sp = sum_of(pst, &np), sr = sum_of(rst, &nr);
    cr_assert_eq(sp, sr);
    cr_assert_eq(np, nr);
    /* 1 account + 1 token + 1 ns + 1 title, 10 live keys (each once: small values inline in
     * their envelopes, "big" in kvval) */
    cr_assert_eq(np, 4 + 10, "nkeys=%llu", (unsigned long long)np);
    same_key(ns1, "plain", 1);
    same_key(ns1, "meta", 1);
    same_key(ns1, "exp", 1);
    same_key(ns1, "empty", 1);
    same_key(ns1, "big", 1);
    same_key(ns1, "bulk0", 1);
    same_key(ns1, "bulk4", 1);
    same_key(ns1, "bulk2", 0);
    same_key(ns2, "doomed", 0);
    counts_t cp = catalog_counts(pst), cr = catalog_counts(rst);
    cr_assert_eq(cp.accounts, 1);
    cr_assert_eq(cp.tokens, 1);
    cr_assert_eq(cp.namespaces, 1);
    cr_assert_eq(cr.accounts, cp.accounts);
    cr_assert_eq(cr.tokens, cp.tokens);
    cr_assert_eq(cr.namespaces, cp.namespaces);

    /* a replica never expires by its own clock; the primary's KV_EXPIRE record does it */
    ekv_store_stats_t stp;
    for (int i = 0; i < 100; i++) {
        ekv_store_stats(pst, &stp);
        if (stp.purged_keys >= 1)
            break;
        usleep(50 * 1000);
    }
    cr_assert_eq(stp.purged_keys, 1);
    ekv_store_stats_t str;
    ekv_store_stats(rst, &str);
    cr_assert_eq(str.purged_keys, 0);
    cr_assert_eq(ekv_store_last_seq(rst), plast);
    cr_assert_eq(sum_of(rst, NULL), sr); /* "soon" still stored on the replica */
    cr_assert_eq(ekv_store_last_seq(pst), plast + 1);
    cr_assert_eq(stream(), 1);
    cr_assert_eq(sum_of(rst, &nr), sum_of(pst, &np));
    cr_assert_eq(nr, 4 + 9);

    /* the catalog index followed too: the token can be revoked through the log, the
     * renamed namespace takes keys, the deleted one does not exist */
    cr_assert_eq(token_op(pst, EKV_OP_TOKEN_REVOKE), 0);
    cr_assert_eq(put_full(pst, ns1, "after", "post-expiry", NULL, 0), 0);
    cr_assert_eq(stream(), 2);
    cr_assert_eq(catalog_counts(rst).tokens, 0);
    same_key(ns1, "after", 1);
    cr_assert_eq(put_full(rst, ns2, "x", "y", NULL, 0), EKV_ENS_NOT_FOUND);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
}

Test(repl_store, apply_rejects_gaps_and_repeats)
{
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "t"), 0);
    for (int i = 0; i < 5; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(put_full(pst, ns1, k, "v", NULL, 0), 0);
    }
    cr_assert_eq(ekv_store_last_seq(pst), 6);

    ekv_log_batch_t b;
    read_exact(1, 3, &b);
    cr_assert_eq(ekv_store_apply_records(rst, &b), 0);
    cr_assert_eq(ekv_store_last_seq(rst), 3);
    uint64_t sum = sum_of(rst, NULL);

    /* the same batch again: first seq != last + 1 */
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_ELOG_GAP);
    ekv_log_batch_clear(&b);
    /* starting at last + 2 */
    read_exact(5, 2, &b);
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_ELOG_GAP);
    ekv_log_batch_clear(&b);
    /* right start, but not contiguous: 4, 6 */
    read_exact(4, 3, &b);
    ekv_log_record_t hole = b.recs[1];
    b.recs[1] = b.recs[2];
    b.count = 2;
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_ELOG_GAP);
    b.recs[2] = b.recs[1];
    b.recs[1] = hole;
    b.count = 3;
    /* the packed seq must match the claimed one: record 5's bytes claimed as 4 */
    uint8_t *d0 = b.recs[0].data;
    size_t l0 = b.recs[0].len;
    b.recs[0].data = b.recs[1].data;
    b.recs[0].len = b.recs[1].len;
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_ELOG_GAP);
    /* garbage bytes */
    uint8_t junk[4] = {0xff, 0xff, 0xff, 0xff};
    b.recs[0].data = junk;
    b.recs[0].len = sizeof(junk);
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_EBAD_REQUEST);
    b.recs[0].data = d0;
    b.recs[0].len = l0;
    /* nothing of the rejected batches was written */
    cr_assert_eq(ekv_store_last_seq(rst), 3);
    cr_assert_eq(sum_of(rst, NULL), sum);
    ekv_log_batch_t none;
    cr_assert_eq(ekv_store_log_read(rst, 4, 10, 1 << 20, &none), 0);
    cr_assert_eq(none.count, 0);

    /* the replica state survives a reopen and applying continues from there */
    ekv_store_close(rst);
    rst = open_store(rdir, 1, 0);
    cr_assert_eq(ekv_store_last_seq(rst), 3);
    cr_assert_eq(sum_of(rst, NULL), sum);
    cr_assert_eq(ekv_store_apply_records(rst, &b), 0);
    ekv_log_batch_clear(&b);
    cr_assert_eq(ekv_store_last_seq(rst), 6);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    same_key(ns1, "k4", 1);

    /* an empty batch is a no-op */
    cr_assert_eq(ekv_store_apply_records(rst, &b), 0);
    cr_assert_eq(ekv_store_last_seq(rst), 6);
}

/* What a replica does with a ChangeBatch: the bytes it received plus the records it already
 * unpacked from them (ekv_log_record_t.rec): the store applies rec without unpacking again
 * and stores the bytes verbatim. */
Test(repl_store, apply_uses_records_unpacked_by_the_caller)
{
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "t"), 0);
    cr_assert_eq(put_full(pst, ns1, "a", "value a", "{\"m\":1}", 0), 0);
    cr_assert_eq(put_full(pst, ns1, "b", "value b", NULL, 0), 0);
    cr_assert_eq(del(pst, ns1, "a"), 0);
    uint64_t plast = ekv_store_last_seq(pst);
    cr_assert_eq(plast, 4);

    ekv_log_batch_t b;
    read_exact(1, plast, &b);
    Edgekv__ChangeRecord *un[4];
    for (size_t i = 0; i < plast; i++) {
        un[i] = edgekv__change_record__unpack(NULL, b.recs[i].len, b.recs[i].data);
        cr_assert_not_null(un[i]);
    }
    /* rec is what is applied: record 3 claimed as seq 2 is refused (nothing written) */
    b.recs[1].rec = un[2];
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_ELOG_GAP);
    cr_assert_eq(ekv_store_last_seq(rst), 0);

    for (size_t i = 0; i < plast; i++)
        b.recs[i].rec = un[i];
    cr_assert_eq(ekv_store_apply_records(rst, &b), 0);
    cr_assert_eq(ekv_store_last_seq(rst), plast);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    same_key(ns1, "a", 0);
    same_key(ns1, "b", 1);
    /* the replica's log holds the primary's bytes */
    ekv_log_batch_t ra;
    cr_assert_eq(ekv_store_log_read(rst, 1, plast, 1 << 20, &ra), 0);
    cr_assert_eq(ra.count, plast);
    for (size_t i = 0; i < plast; i++) {
        cr_assert_null(ra.recs[i].rec);
        cr_assert_eq(ra.recs[i].len, b.recs[i].len);
        cr_assert_eq(memcmp(ra.recs[i].data, b.recs[i].data, b.recs[i].len), 0);
    }
    ekv_log_batch_clear(&ra);
    for (size_t i = 0; i < plast; i++)
        edgekv__change_record__free_unpacked(un[i], NULL);
    ekv_log_batch_clear(&b);
}

Test(repl_store, log_read_limits_and_caught_up)
{
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "t"), 0);
    char big[4096];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < 4; i++)
        cr_assert_eq(put_full(pst, ns1, i % 2 ? "a" : "b", big, NULL, 0), 0);
    ekv_log_batch_t b;
    /* caught up: from last + 1 (and beyond) -> 0 records */
    cr_assert_eq(ekv_store_log_read(pst, 6, 10, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(ekv_store_log_read(pst, 1000, 10, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(ekv_store_log_read(pst, 0, 10, 1 << 20, &b), EKV_EBAD_REQUEST);
    /* max_bytes smaller than one record: still exactly one record */
    cr_assert_eq(ekv_store_log_read(pst, 2, 10, 100, &b), 0);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(b.recs[0].seq, 2);
    cr_assert_gt(b.recs[0].len, 4000);
    ekv_log_batch_clear(&b);
    /* room for two */
    cr_assert_eq(ekv_store_log_read(pst, 2, 10, 9000, &b), 0);
    cr_assert_eq(b.count, 2);
    cr_assert_eq(b.recs[1].seq, 3);
    ekv_log_batch_clear(&b);
    /* max_records */
    cr_assert_eq(ekv_store_log_read(pst, 1, 2, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 2);
    ekv_log_batch_clear(&b);
    cr_assert_eq(ekv_store_log_read(pst, 4, 10, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 2);
    cr_assert_eq(b.recs[0].seq, 4);
    cr_assert_eq(b.recs[1].seq, 5);
    ekv_log_batch_clear(&b);
}

static void put_n(int n)
{
    char v[300];
    memset(v, 'p', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < n; i++)
        cr_assert_eq(put_full(pst, ns1, "k", v, NULL, 0), 0);
}

/* Trimming runs on the committer right AFTER it completed a group: poll for its result. */
static uint64_t first_log_after_trim(uint64_t at_least)
{
    ekv_store_stats_t stt;
    for (int i = 0; i < 100; i++) {
        ekv_store_stats(pst, &stt);
        if (stt.first_log_seq >= at_least)
            break;
        usleep(10 * 1000);
    }
    return stt.first_log_seq;
}

Test(repl_store, trim_gap_and_pins)
{
    ekv_store_close(pst);
    pst = open_store(pdir, 0, 2000); /* ~6 records of 300 bytes */
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "t"), 0);

    /* pinned at 1: size trimming keeps everything */
    int pin = -1;
    cr_assert_eq(ekv_store_log_pin(pst, 1, &pin), 0);
    cr_assert_geq(pin, 0);
    ekv_store_stats_t stt;
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.lowest_pin, 1);
    put_n(40);
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.first_log_seq, 1);
    cr_assert_eq(stt.log_trimmed, 0);
    ekv_log_batch_t b;
    cr_assert_eq(ekv_store_log_read(pst, 1, 100, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 41);
    ekv_log_batch_clear(&b);

    /* moved to 30: records before 30 go at the next trim, 30 and later stay */
    cr_assert_eq(ekv_store_log_pin_move(pst, pin, 30), 0);
    put_n(1);
    cr_assert_eq(first_log_after_trim(30), 30);
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.lowest_pin, 30);
    cr_assert_eq(ekv_store_log_read(pst, 1, 3, 1 << 20, &b), EKV_ELOG_GAP);
    cr_assert_eq(b.count, 0);
    cr_assert_eq(ekv_store_log_read(pst, 29, 3, 1 << 20, &b), EKV_ELOG_GAP);
    cr_assert_eq(ekv_store_log_read(pst, 30, 3, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 3);
    cr_assert_eq(b.recs[0].seq, 30);
    ekv_log_batch_clear(&b);
    /* a trimmed seq cannot be pinned again */
    int pin2 = -1;
    cr_assert_eq(ekv_store_log_pin(pst, 10, &pin2), EKV_ELOG_GAP);
    cr_assert_eq(ekv_store_log_pin_move(pst, pin, 10), EKV_ELOG_GAP);
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.lowest_pin, 30);

    /* the lowest of several pins wins */
    cr_assert_eq(ekv_store_log_pin(pst, 35, &pin2), 0);
    cr_assert_neq(pin2, pin);
    cr_assert_eq(ekv_store_log_unpin(pst, pin), 0);
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.lowest_pin, 35);
    put_n(1);
    cr_assert_eq(first_log_after_trim(35), 35);

    /* unpinned: size trimming goes back to its limit */
    cr_assert_eq(ekv_store_log_unpin(pst, pin2), 0);
    cr_assert_eq(ekv_store_log_unpin(pst, pin2), EKV_EBAD_REQUEST);
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.lowest_pin, 0);
    put_n(1);
    first_log_after_trim(36);
    ekv_store_stats(pst, &stt);
    uint64_t last = ekv_store_last_seq(pst);
    cr_assert_eq(last, 44);
    cr_assert_gt(stt.first_log_seq, 35);
    cr_assert_lt(stt.first_log_seq, last);
    cr_assert_eq(ekv_store_log_read(pst, 35, 3, 1 << 20, &b), EKV_ELOG_GAP);
    cr_assert_eq(ekv_store_log_read(pst, stt.first_log_seq, 100, 1 << 20, &b), 0);
    cr_assert_eq(b.count, last - stt.first_log_seq + 1);
    ekv_log_batch_clear(&b);
    cr_assert_eq(ekv_store_log_read(pst, last + 1, 3, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 0);

    /* a replica that needs a trimmed record cannot stream (it needs a snapshot) */
    cr_assert_eq(ekv_store_log_read(pst, ekv_store_last_seq(rst) + 1, 3, 1 << 20, &b),
                 EKV_ELOG_GAP);

    /* the pin table is bounded */
    int ids[EKV_LOG_MAX_PINS];
    for (int i = 0; i < EKV_LOG_MAX_PINS; i++)
        cr_assert_eq(ekv_store_log_pin(pst, last, &ids[i]), 0);
    cr_assert_eq(ekv_store_log_pin(pst, last, &pin), EKV_EBUSY);
    cr_assert_eq(ekv_store_log_pin(pst, 0, &pin), EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_store_log_unpin(pst, -1), EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_store_log_unpin(pst, EKV_LOG_MAX_PINS), EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_store_log_unpin(pst, ids[7]), 0);
    cr_assert_eq(ekv_store_log_pin(pst, last + 5, &pin), 0); /* future seqs are fine */
    cr_assert_eq(pin, ids[7]);
}

Test(repl_store, age_trim_respects_pin)
{
    ekv_store_close(pst);
    ekv_store_opts_t o;
    memset(&o, 0, sizeof(o));
    o.dir = pdir;
    o.purge_interval_ms = 20;
    o.log_retain_ms = 1;
    cr_assert_eq(ekv_store_open(&pst, &o), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "t"), 0);
    int pin = -1;
    cr_assert_eq(ekv_store_log_pin(pst, 2, &pin), 0);
    put_n(5);
    usleep(300 * 1000); /* several maintenance rounds */
    ekv_store_stats_t stt;
    ekv_store_stats(pst, &stt);
    cr_assert_eq(stt.first_log_seq, 2);
    cr_assert_eq(ekv_store_log_unpin(pst, pin), 0);
    for (int i = 0; i < 100 && stt.first_log_seq != 6; i++) {
        usleep(20 * 1000);
        ekv_store_stats(pst, &stt);
    }
    cr_assert_eq(stt.first_log_seq, 6); /* the newest record is never trimmed */
}

Test(repl_store, checksum_distinguishes_and_skips_node_local)
{
    uint64_t n0 = 1, s0 = sum_of(pst, &n0), r0 = sum_of(rst, NULL);
    cr_assert_eq(n0, 0);
    cr_assert_eq(s0, r0); /* two empty stores */
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS3, "t"), 0);
    cr_assert_eq(put_full(pst, ns3, "k", "v1", NULL, 0), 0);
    uint64_t s1 = sum_of(pst, NULL);
    cr_assert_neq(s1, s0);
    cr_assert_eq(put_full(pst, ns3, "k", "v2", NULL, 0), 0);
    uint64_t s2 = sum_of(pst, NULL);
    cr_assert_neq(s2, s1);
    cr_assert_eq(put_full(pst, ns3, "k", "v1", NULL, 0), 0);
    cr_assert_eq(sum_of(pst, NULL), s1); /* same data, other last_seq and log: same sum */
    cr_assert_eq(stream(), 4);
    cr_assert_eq(sum_of(rst, NULL), s1);
}

/* ---- node state (s/node) ---- */

Test(repl_store, node_state_roundtrip_and_survives_ingest)
{
    ekv_node_state_t st;
    cr_assert(eq(int, ekv_store_node_load(rst, &st), 0));
    cr_assert(eq(u64, st.epoch, 0)); /* fresh store: all zero */
    cr_assert(eq(str, st.history_id, ""));

    ekv_node_state_t w;
    memset(&w, 0, sizeof(w));
    w.epoch = 7;
    strcpy(w.history_id, "0123456789abcdef0123456789abcdef");
    strcpy(w.history2_id, "fedcba9876543210fedcba9876543210");
    w.history2_seq = 123456789012ull;
    w.fenced_epoch = 9;
    strcpy(w.fenced_by, "node with spaces");
    cr_assert(eq(int, ekv_store_node_save(rst, &w), 0));
    /* a snapshot ingest wipes the replicated keyspace, never the node-local state */
    cr_assert(eq(int, ekv_store_ingest_begin(rst), 0));
    cr_assert(eq(int, ekv_store_ingest_end(rst, 0), 0));
    cr_assert(eq(int, ekv_store_node_load(rst, &st), 0));
    cr_assert(eq(u64, st.epoch, 7));
    cr_assert(eq(str, st.history_id, w.history_id));
    cr_assert(eq(str, st.history2_id, w.history2_id));
    cr_assert(eq(u64, st.history2_seq, 123456789012ull));
    cr_assert(eq(u64, st.fenced_epoch, 9));
    cr_assert(eq(str, st.fenced_by, "node_with_spaces")); /* one-line record */

    /* and it is not part of the replicated checksum */
    uint64_t a, b, na, nb;
    cr_assert(eq(int, ekv_store_checksum(rst, &a, &na), 0));
    w.epoch = 8;
    cr_assert(eq(int, ekv_store_node_save(rst, &w), 0));
    cr_assert(eq(int, ekv_store_checksum(rst, &b, &nb), 0));
    cr_assert(eq(u64, a, b));
    cr_assert(eq(u64, na, nb));
}

static _Atomic uint64_t hook_seq;
static _Atomic int hook_calls;
static void on_commit_hook(void *ctx, uint64_t last_seq)
{
    (void)ctx;
    atomic_store(&hook_seq, last_seq);
    atomic_fetch_add(&hook_calls, 1);
}

Test(repl_store, on_commit_hook_reports_each_durable_seq)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/hook", root);
    ekv_store_opts_t o = {0};
    o.dir = dir;
    o.on_commit = on_commit_hook;
    ekv_store_t *s = NULL;
    cr_assert(eq(int, ekv_store_open(&s, &o), 0));
    cr_assert(eq(int, fx_ns_op(s, EKV_OP_NS_CREATE, NS1, ACC, "hook"), 0));
    uint64_t seq = 0;
    cr_assert(eq(int, fx_put(s, ns1, "k", "v", NULL, 0, &seq), 0));
    cr_assert(eq(u64, atomic_load(&hook_seq), seq));
    cr_assert(eq(u64, seq, ekv_store_last_seq(s)));
    cr_assert(eq(int, atomic_load(&hook_calls), 2));
    ekv_store_close(s);
}

/* ---- regression: a pin taken while a trim is being written (issue 9, loop block) ----
 * ekv__log_trim used to hold pin_lock across its RocksDB write, so the loop's pin calls
 * (every replica ack and hello) waited for it. The on_trim hook runs where that write
 * happens; from it, another thread pins: below the trim's cut (must be refused), at the cut
 * (must succeed) and moves a pin; all must return at once, not after the hook. */

struct trim_probe {
    ekv_store_t *s;
    uint64_t cut;
    int rc_below, rc_at, rc_move, pin_at, pin_move_id;
    _Atomic int done;
};
static struct trim_probe probe;
static _Atomic int trim_hooked;
static _Atomic int trim_probe_blocked, trim_hook_done;
static _Atomic uint64_t trim_first, trim_cut;

static void *trim_probe_main(void *arg)
{
    struct trim_probe *p = arg;
    int id = -1;
    p->rc_below = ekv_store_log_pin(p->s, p->cut - 1, &id);
    p->rc_at = ekv_store_log_pin(p->s, p->cut, &p->pin_at);
    p->rc_move = ekv_store_log_pin_move(p->s, p->pin_move_id, p->cut - 1);
    atomic_store(&p->done, 1);
    return NULL;
}

static void on_trim_hook(void *ctx, uint64_t first, uint64_t cut)
{
    (void)ctx;
    if (atomic_exchange(&trim_hooked, 1))
        return; /* probe the first trim only */
    atomic_store(&trim_first, first);
    atomic_store(&trim_cut, cut);
    probe.cut = cut;
    pthread_t t;
    if (pthread_create(&t, NULL, trim_probe_main, &probe) != 0) {
        atomic_store(&trim_probe_blocked, 2);
        atomic_store(&trim_hook_done, 1);
        return;
    }
    for (int i = 0; i < 200 && !atomic_load(&probe.done); i++)
        usleep(10 * 1000); /* up to 2 s: the old code never finishes here */
    if (!atomic_load(&probe.done))
        atomic_store(&trim_probe_blocked, 1);
    pthread_join(t, NULL);
    atomic_store(&trim_hook_done, 1);
}

Test(repl_store, pin_during_trim_write_does_not_wait_and_is_safe)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/trimhook", root);
    ekv_store_opts_t o = {0};
    o.dir = dir;
    o.purge_interval_ms = 50;
    o.log_retain_bytes = 2000; /* ~6 records of 300 bytes */
    o.on_trim = on_trim_hook;
    ekv_store_t *s = NULL;
    cr_assert(eq(int, ekv_store_open(&s, &o), 0));
    probe.s = s;
    cr_assert(eq(int, fx_ns_op(s, EKV_OP_NS_CREATE, NS1, ACC, "trim"), 0));
    /* a pin the probe moves, placed above anything the first trim can cut */
    cr_assert(eq(int, ekv_store_log_pin(s, 1000, &probe.pin_move_id), 0));
    char v[300];
    memset(v, 'p', sizeof(v) - 1);
    v[sizeof(v) - 1] = '\0';
    for (int i = 0; i < 40 && !atomic_load(&trim_hooked); i++)
        cr_assert(eq(int, fx_put(s, ns1, "k", v, NULL, 0, NULL), 0));
    cr_assert(atomic_load(&trim_hooked), "no trim happened");
    for (int i = 0; i < 500 && !atomic_load(&trim_hook_done); i++)
        usleep(10 * 1000);
    cr_assert(atomic_load(&trim_hook_done));
    cr_assert(eq(int, atomic_load(&trim_probe_blocked), 0),
              "a pin waited for the trim's RocksDB write");
    uint64_t cut = atomic_load(&trim_cut);
    cr_assert_gt(cut, atomic_load(&trim_first));
    cr_assert(eq(int, probe.rc_below, EKV_ELOG_GAP)); /* its record is being trimmed */
    cr_assert(eq(int, probe.rc_move, EKV_ELOG_GAP));
    cr_assert(eq(int, probe.rc_at, 0));
    /* the pin taken during the trim holds: its record is there and later trims keep it */
    for (int i = 0; i < 20; i++)
        cr_assert(eq(int, fx_put(s, ns1, "k", v, NULL, 0, NULL), 0));
    ekv_log_batch_t b;
    cr_assert(eq(int, ekv_store_log_read(s, cut, 3, 1 << 20, &b), 0));
    cr_assert(eq(u64, b.recs[0].seq, cut));
    ekv_log_batch_clear(&b);
    cr_assert(eq(int, ekv_store_log_read(s, cut - 1, 3, 1 << 20, &b), EKV_ELOG_GAP));
    ekv_store_stats_t stt;
    ekv_store_stats(s, &stt);
    cr_assert(eq(u64, stt.first_log_seq, cut));
    cr_assert(eq(u64, stt.lowest_pin, cut));
    ekv_store_close(s);
}
