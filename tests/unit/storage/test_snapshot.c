/*
 * test_snapshot.c - the storage side of snapshot bootstrap against real RocksDB stores in temp
 * dirs: snapshot source (consistent seq, chunking, resumable positions, log pin) and replica
 * ingest (wipe, chunks, end, crash mid-ingest), then streaming the log from snap_seq + 1.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "storage/store.h"
#define EKV_FIXTURE_PAIR
#include "tests/unit/storage/fixture.h"

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TestSuite(snapshot, .init = setup, .fini = teardown);

/* ---- write helpers ---- */

/* A mix of catalog records and keys: puts with metadata and expirations, overwrites,
 * deletes, a dropped namespace, a token, one value larger than the chunk size. */
static void fill_primary(void)
{
    int64_t now = ekv_clock_now_s();
    char big[1001];
    memset(big, 'B', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(account_create(pst), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "first"), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS2, "second"), 0);
    cr_assert_eq(token_op(pst, EKV_OP_TOKEN_CREATE), 0);
    for (int i = 0; i < 30; i++) {
        char k[32], v[64];
        snprintf(k, sizeof(k), "key-%03d", i);
        snprintf(v, sizeof(v), "value number %d of the snapshot test", i);
        cr_assert_eq(put_full(pst, i % 3 ? ns1 : ns2, k, v, i % 4 ? NULL : "{\"m\":1}",
                              i % 5 ? 0 : now + 3600 + i),
                     0);
    }
    cr_assert_eq(put_full(pst, ns1, "big", big, NULL, 0), 0);
    cr_assert_eq(put_full(pst, ns1, "key-001", "overwritten", "{\"x\":2}", now + 7200), 0);
    cr_assert_eq(del(pst, ns1, "key-002"), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS3, "third"), 0);
    cr_assert_eq(put_full(pst, ns3, "gone", "with the namespace", NULL, now + 100), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_DELETE, NS3, NULL), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_RENAME, NS2, "second-renamed"), 0);
}

/* Writes after the snapshot: none of them may be in it. */
static void more_writes(void)
{
    cr_assert_eq(put_full(pst, ns1, "after-1", "later", NULL, 0), 0);
    cr_assert_eq(put_full(pst, ns2, "key-000", "changed later", "{\"late\":1}", 0), 0);
    cr_assert_eq(del(pst, ns1, "key-004"), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS3, "third-again"), 0);
    cr_assert_eq(put_full(pst, ns3, "k", "in the new ns", NULL, 0), 0);
    cr_assert_eq(token_op(pst, EKV_OP_TOKEN_REVOKE), 0);
}

typedef struct {
    size_t chunks, entries, exp_entries, oversized;
} copy_stats_t;

/*
 * Copy snap into dst from position `from` (cf 0 = start) in chunks of max_bytes, stopping
 * after max_chunks chunks (0 = all). Checks the chunk bounds and the (cf, key) order. Returns
 * 1 when the snapshot was exhausted. *pos_cf / pos_key keep the last position (a copy).
 */
static int copy_chunks(ekv_snapshot_t *sn, ekv_store_t *dst, size_t max_bytes, size_t max_chunks,
                       int *pos_cf, char *pos_key, size_t *pos_len, copy_stats_t *st)
{
    int done = 0;
    while (!done && (!max_chunks || st->chunks < max_chunks)) {
        ekv_snapshot_pos_t after = {.cf = *pos_cf, .key = pos_key, .key_len = *pos_len};
        ekv_snapshot_chunk_t c;
        cr_assert_eq(ekv_store_snapshot_next(sn, *pos_cf ? &after : NULL, max_bytes, &c), 0);
        size_t bytes = 0;
        for (size_t i = 0; i < c.count; i++) {
            const ekv_snapshot_entry_t *e = &c.entries[i];
            bytes += e->key_len + e->value_len;
            cr_assert(e->cf >= EKV_SNAP_CF_META && e->cf <= EKV_SNAP_CF_DOALARM);
            cr_assert(!(e->cf == EKV_SNAP_CF_META && e->key_len >= 2 && e->key[0] == 's' &&
                        e->key[1] == '/'),
                      "node-local key in a snapshot");
            /* strictly increasing (cf, key) */
            int prev_cf = i ? c.entries[i - 1].cf : *pos_cf;
            const char *pk = i ? c.entries[i - 1].key : pos_key;
            size_t pl = i ? c.entries[i - 1].key_len : *pos_len;
            if (prev_cf == e->cf) {
                size_t m = pl < e->key_len ? pl : e->key_len;
                int cmp = memcmp(pk, e->key, m);
                cr_assert(cmp < 0 || (cmp == 0 && pl < e->key_len), "order");
            } else {
                cr_assert_lt(prev_cf, e->cf);
            }
            if (e->cf == EKV_SNAP_CF_EXP)
                st->exp_entries++;
        }
        cr_assert_eq(c.bytes, bytes);
        /* memory bound: only a single oversized entry may exceed max_bytes */
        if (c.bytes > max_bytes) {
            cr_assert_eq(c.count, 1);
            st->oversized++;
        }
        cr_assert(c.count > 0 || c.done);
        cr_assert_eq(ekv_store_ingest_chunk(dst, &c), 0);
        if (c.count) {
            cr_assert_eq(c.next.cf, c.entries[c.count - 1].cf);
            cr_assert_lt(c.next.key_len, 2048);
            *pos_cf = c.next.cf;
            memcpy(pos_key, c.next.key, c.next.key_len);
            *pos_len = c.next.key_len;
        }
        st->chunks++;
        st->entries += c.count;
        done = c.done;
        ekv_snapshot_chunk_clear(&c);
        cr_assert_eq(c.count, 0);
    }
    return done;
}

static copy_stats_t full_copy(ekv_snapshot_t *sn, ekv_store_t *dst, size_t max_bytes)
{
    copy_stats_t st = {0, 0, 0, 0};
    int cf = 0;
    char key[2048];
    size_t len = 0;
    cr_assert_eq(ekv_store_ingest_begin(dst), 0);
    cr_assert_eq(ekv_store_ingest_pending(dst), 1);
    cr_assert_eq(copy_chunks(sn, dst, max_bytes, 0, &cf, key, &len, &st), 1);
    cr_assert_eq(ekv_store_ingest_end(dst, ekv_store_snapshot_seq(sn)), 0);
    cr_assert_eq(ekv_store_ingest_pending(dst), 0);
    cr_assert_eq(ekv_store_last_seq(dst), ekv_store_snapshot_seq(sn));
    return st;
}

/* Stream the primary's log from the replica's last seq + 1 until caught up. */
static uint64_t stream(void)
{
    uint64_t next = ekv_store_last_seq(rst) + 1, moved = 0;
    for (;;) {
        ekv_log_batch_t b;
        int rc = ekv_store_log_read(pst, next, 4, 1 << 20, &b);
        cr_assert_eq(rc, 0, "log_read(%llu) = %s", (unsigned long long)next, ekv_err_name(rc));
        if (b.count == 0)
            break;
        rc = ekv_store_apply_records(rst, &b);
        cr_assert_eq(rc, 0, "apply from %llu: %s", (unsigned long long)next, ekv_err_name(rc));
        next += b.count;
        moved += b.count;
        ekv_log_batch_clear(&b);
    }
    cr_assert_eq(ekv_store_last_seq(rst), ekv_store_last_seq(pst));
    return moved;
}

/* ---- tests ---- */

Test(snapshot, copy_in_small_chunks_then_stream)
{
    fill_primary();
    uint64_t nkeys0 = 0, sum0 = sum_of(pst, &nkeys0);
    uint64_t seq0 = ekv_store_last_seq(pst);

    ekv_snapshot_t *sn = NULL;
    cr_assert_eq(ekv_store_snapshot_open(pst, &sn), 0);
    cr_assert_eq(ekv_store_snapshot_seq(sn), seq0);
    ekv_store_stats_t st;
    ekv_store_stats(pst, &st);
    cr_assert_eq(st.lowest_pin, seq0 + 1);

    more_writes();
    uint64_t sum1 = sum_of(pst, NULL);
    cr_assert_neq(sum1, sum0);

    /* the replica had data of its own: begin wipes it */
    cr_assert_eq(ns_op(rst, EKV_OP_NS_CREATE, NS1, "stale"), 0);
    cr_assert_eq(put_full(rst, ns1, "stale-key", "x", NULL, ekv_clock_now_s() + 50), 0);

    copy_stats_t cs = full_copy(sn, rst, 200);
    cr_assert_gt(cs.chunks, 5);
    cr_assert_gt(cs.exp_entries, 0, "exp entries are copied");
    cr_assert_geq(cs.oversized, 1, "the 1000-byte value comes alone");
    uint64_t nr = 0;
    cr_assert_eq(sum_of(rst, &nr), sum0, "replica = primary at the snapshot");
    cr_assert_eq(nr, nkeys0);

    /* the log after the snapshot is still there: stream it */
    cr_assert_eq(stream(), ekv_store_last_seq(pst) - seq0);
    cr_assert_eq(sum_of(rst, NULL), sum1);
    /* the catalog index was reloaded: ns-dependent ops still apply on both sides */
    cr_assert_eq(ns_op(pst, EKV_OP_NS_DELETE, NS2, NULL), 0);
    cr_assert_eq(put_full(pst, ns1, "final", "v", NULL, 0), 0);
    cr_assert_eq(stream(), 2);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));

    /* the replica survives a reopen in the same state */
    ekv_store_close(rst);
    rst = open_store(rdir, 1, 0);
    cr_assert_eq(ekv_store_ingest_pending(rst), 0);
    cr_assert_eq(ekv_store_last_seq(rst), ekv_store_last_seq(pst));
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));

    ekv_store_snapshot_close(sn);
    ekv_store_stats(pst, &st);
    cr_assert_eq(st.lowest_pin, 0);
}

Test(snapshot, positions_are_resumable)
{
    fill_primary();
    ekv_snapshot_t *sn = NULL;
    cr_assert_eq(ekv_store_snapshot_open(pst, &sn), 0);

    /* one pass, keeping every position */
    enum { MAXC = 512 };
    static char keys[MAXC][2048];
    static size_t lens[MAXC];
    static int cfs[MAXC];
    static size_t counts[MAXC];
    size_t n = 0;
    int done = 0;
    while (!done) {
        cr_assert_lt(n, MAXC - 1);
        ekv_snapshot_pos_t after = {.cf = n ? cfs[n - 1] : 0,
                                    .key = n ? keys[n - 1] : NULL,
                                    .key_len = n ? lens[n - 1] : 0};
        ekv_snapshot_chunk_t c;
        cr_assert_eq(ekv_store_snapshot_next(sn, n ? &after : NULL, 150, &c), 0);
        cfs[n] = c.next.cf;
        lens[n] = c.next.key_len;
        if (c.next.key_len)
            memcpy(keys[n], c.next.key, c.next.key_len);
        counts[n] = c.count;
        done = c.done;
        ekv_snapshot_chunk_clear(&c);
        n++;
    }
    cr_assert_gt(n, 4);
    /* from any earlier position, in any order, the same next chunk comes back */
    for (size_t j = n - 1; j-- > 0;) {
        ekv_snapshot_pos_t after = {.cf = cfs[j], .key = keys[j], .key_len = lens[j]};
        ekv_snapshot_chunk_t c;
        cr_assert_eq(ekv_store_snapshot_next(sn, &after, 150, &c), 0);
        cr_assert_eq(c.count, counts[j + 1]);
        cr_assert_eq(c.next.cf, cfs[j + 1]);
        cr_assert_eq(c.next.key_len, lens[j + 1]);
        cr_assert_eq(memcmp(c.next.key, keys[j + 1], lens[j + 1]), 0);
        cr_assert_eq(c.done, j + 2 == n);
        ekv_snapshot_chunk_clear(&c);
    }
    /* after the last position: empty and done */
    ekv_snapshot_pos_t end = {.cf = cfs[n - 1], .key = keys[n - 1], .key_len = lens[n - 1]};
    ekv_snapshot_chunk_t c;
    cr_assert_eq(ekv_store_snapshot_next(sn, &end, 150, &c), 0);
    cr_assert_eq(c.count, 0);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.next.cf, end.cf);
    ekv_snapshot_chunk_clear(&c);
    /* a position between keys (not an existing key) works too; a bad cf does not */
    ekv_snapshot_pos_t mid = {.cf = EKV_SNAP_CF_KVVAL, .key = "", .key_len = 0};
    cr_assert_eq(ekv_store_snapshot_next(sn, &mid, 1 << 20, &c), 0);
    cr_assert_gt(c.count, 0);
    cr_assert_eq(c.entries[0].cf, EKV_SNAP_CF_KVVAL);
    cr_assert_eq(c.done, 1);
    ekv_snapshot_chunk_clear(&c);
    ekv_snapshot_pos_t bad = {.cf = 9, .key = "x", .key_len = 1};
    cr_assert_eq(ekv_store_snapshot_next(sn, &bad, 100, &c), EKV_EBAD_REQUEST);
    cr_assert_eq(c.count, 0);
    ekv_store_snapshot_close(sn);
}

Test(snapshot, crash_mid_ingest_restarts)
{
    fill_primary();
    uint64_t sum0 = sum_of(pst, NULL);
    ekv_snapshot_t *sn = NULL;
    cr_assert_eq(ekv_store_snapshot_open(pst, &sn), 0);
    more_writes();

    /* half a copy, then "crash" */
    copy_stats_t st = {0, 0, 0, 0};
    int cf = 0;
    char key[2048];
    size_t len = 0;
    cr_assert_eq(ekv_store_ingest_begin(rst), 0);
    cr_assert_eq(copy_chunks(sn, rst, 200, 6, &cf, key, &len, &st), 0);
    ekv_store_close(rst);
    rst = open_store(rdir, 1, 0);
    cr_assert_eq(ekv_store_ingest_pending(rst), 1);
    cr_assert_eq(ekv_store_last_seq(rst), 0);

    /* a partial store takes no writes and no log records */
    ekv_log_batch_t b;
    cr_assert_eq(ekv_store_log_read(pst, ekv_store_snapshot_seq(sn) + 1, 1, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(ekv_store_apply_records(rst, &b), EKV_EINGEST_PENDING);
    ekv_log_batch_clear(&b);
    cr_assert_eq(put_full(rst, ns1, "x", "y", NULL, 0), EKV_EINGEST_PENDING);

    /* the rest of the copy from the acknowledged position would do too, but the contract
     * is to restart: begin wipes the half copy */
    cr_assert_eq(copy_chunks(sn, rst, 200, 3, &cf, key, &len, &st), 0);
    full_copy(sn, rst, 200);
    cr_assert_eq(sum_of(rst, NULL), sum0);
    stream();
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    ekv_store_snapshot_close(sn);
}

Test(snapshot, pin_keeps_log_after_snapshot)
{
    /* a primary with a tiny retention trims everything but the newest record */
    ekv_store_close(pst);
    pst = open_store(pdir, 0, 1);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "first"), 0);
    for (int i = 0; i < 10; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        cr_assert_eq(put_full(pst, ns1, k, "some value to make the log grow", NULL, 0), 0);
    }
    ekv_store_stats_t st;
    ekv_store_stats(pst, &st);
    cr_assert_gt(st.log_trimmed, 0);
    uint64_t sum0 = sum_of(pst, NULL);

    ekv_snapshot_t *sn = NULL;
    cr_assert_eq(ekv_store_snapshot_open(pst, &sn), 0);
    uint64_t seq = ekv_store_snapshot_seq(sn);
    cr_assert_eq(seq, 11);
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof(k), "after%d", i);
        cr_assert_eq(put_full(pst, ns1, k, "written after the snapshot, kept by the pin", NULL, 0),
                     0);
    }
    ekv_store_stats(pst, &st);
    cr_assert_eq(st.lowest_pin, seq + 1);
    cr_assert_leq(st.first_log_seq, seq + 1);
    ekv_log_batch_t b;
    cr_assert_eq(ekv_store_log_read(pst, seq + 1, 1000, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 20, "every record after the snapshot is retained");
    ekv_log_batch_clear(&b);

    full_copy(sn, rst, 200);
    cr_assert_eq(sum_of(rst, NULL), sum0);
    cr_assert_eq(stream(), 20);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));

    /* released: the next trims go past it */
    ekv_store_snapshot_close(sn);
    cr_assert_eq(put_full(pst, ns1, "one-more", "v", NULL, 0), 0);
    cr_assert_eq(put_full(pst, ns1, "two-more", "v", NULL, 0), 0);
    cr_assert_eq(ekv_store_log_read(pst, seq + 1, 10, 1 << 20, &b), EKV_ELOG_GAP);
}

Test(snapshot, empty_store_and_ingest_errors)
{
    /* an empty primary: seq 0, one empty done chunk */
    ekv_snapshot_t *sn = NULL;
    cr_assert_eq(ekv_store_snapshot_open(pst, &sn), 0);
    cr_assert_eq(ekv_store_snapshot_seq(sn), 0);
    ekv_snapshot_chunk_t c;
    cr_assert_eq(ekv_store_snapshot_next(sn, NULL, 0, &c), 0);
    cr_assert_eq(c.count, 0);
    cr_assert_eq(c.done, 1);
    ekv_snapshot_chunk_clear(&c);

    /* ingest calls out of order */
    cr_assert_eq(ekv_store_ingest_pending(rst), 0);
    cr_assert_eq(ekv_store_ingest_chunk(rst, &c), EKV_EINGEST_PENDING);
    cr_assert_eq(ekv_store_ingest_end(rst, 5), EKV_EINGEST_PENDING);
    cr_assert_eq(ekv_store_ingest_chunk(rst, NULL), EKV_EBAD_REQUEST);

    /* bad entries: nothing of the chunk is written */
    cr_assert_eq(ekv_store_ingest_begin(rst), 0);
    cr_assert_eq(ekv_store_ingest_begin(rst), 0); /* restart is fine */
    char k1[] = "a/x", v1[] = "v", k2[] = "s/last_seq", v2[] = "12345678";
    ekv_snapshot_entry_t ents[2] = {
        {.cf = EKV_SNAP_CF_META, .key = k1, .key_len = 3, .value = v1, .value_len = 1},
        {.cf = EKV_SNAP_CF_META, .key = k2, .key_len = 10, .value = v2, .value_len = 8}};
    ekv_snapshot_chunk_t bad = {.entries = ents, .count = 2, .bytes = 22};
    cr_assert_eq(ekv_store_ingest_chunk(rst, &bad), EKV_EBAD_REQUEST);
    ents[1].cf = EKV_SNAP_CF_DOALARM + 1; /* no such cf: the log is never copied */
    cr_assert_eq(ekv_store_ingest_chunk(rst, &bad), EKV_EBAD_REQUEST);
    uint64_t n = 1;
    sum_of(rst, &n);
    cr_assert_eq(n, 0);
    cr_assert_eq(ekv_store_ingest_end(rst, 0), 0);
    cr_assert_eq(ekv_store_ingest_pending(rst), 0);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    ekv_store_snapshot_close(sn);

    /* the replica then follows the log from 1 */
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "first"), 0);
    cr_assert_eq(put_full(pst, ns1, "k", "v", NULL, 0), 0);
    cr_assert_eq(stream(), 2);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
}
