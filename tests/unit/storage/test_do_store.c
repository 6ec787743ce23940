/*
 * test_do_store.c - Durable Object storage against real RocksDB stores in temp dirs: DO
 * namespace records (DO_NS_PUT / DO_NS_DELETE), object writes (DO_WRITE: puts, deletes,
 * delete_all, alarms), the DO reads (get, range list, objects, start-up load), one change-log
 * record per op, replica apply, snapshot + ingest and reopen.
 */
#include "changelog.pb-c.h"
#include "common/errors.h"
#include "storage/store.h"
#define EKV_FIXTURE_PAIR
#include "tests/unit/storage/fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DO namespace ids: DO0 < DO1 < DO2 differ only in the last byte (neighbouring key ranges). */
#define DO0  "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d00"
#define DO1  "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d01"
#define DO2  "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d02"
#define ACC2 "fedcba9876543210fedcba9876543210"

static uint8_t do0[16], do1[16], do2[16];

static void do_setup(void)
{
    setup();
    hex16(DO0, do0);
    hex16(DO1, do1);
    hex16(DO2, do2);
}

TestSuite(do_store, .init = do_setup, .fini = teardown);

/* ---- helpers ---- */

/* An object id: 31 bytes of fill, then last. */
static void oid(uint8_t out[EKV_DO_OBJID_LEN], uint8_t fill, uint8_t last)
{
    memset(out, fill, EKV_DO_OBJID_LEN);
    out[EKV_DO_OBJID_LEN - 1] = last;
}

static void ns_fill(ekv_do_ns_t *ns, const char *id, const char *acc, const char *name,
                    const char *cls, const char *script, int sqlite, uint8_t seed, int64_t created)
{
    memset(ns, 0, sizeof(*ns));
    snprintf(ns->id, sizeof(ns->id), "%s", id);
    snprintf(ns->account_id, sizeof(ns->account_id), "%s", acc);
    snprintf(ns->name, sizeof(ns->name), "%s", name);
    snprintf(ns->class_name, sizeof(ns->class_name), "%s", cls);
    snprintf(ns->script, sizeof(ns->script), "%s", script);
    ns->use_sqlite = sqlite;
    for (int i = 0; i < EKV_DO_NSKEY_LEN; i++)
        ns->key[i] = (uint8_t)(seed + i * 37); /* includes 0x00 and high bytes */
    ns->created_ms = created;
}

static int ns_put(ekv_store_t *s, const ekv_do_ns_t *ns, uint64_t *seq)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_DO_NS_PUT;
    w.do_ns = ns;
    int rc = ekv_store_write_sync(s, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

static int ns_put_simple(ekv_store_t *s, const char *id, const char *name)
{
    ekv_do_ns_t ns;
    ns_fill(&ns, id, ACC, name, "Counter", "", 0, 1, 1000);
    return ns_put(s, &ns, NULL);
}

static int ns_del(ekv_store_t *s, const char *id, const char *acc, uint64_t *seq)
{
    ekv_do_ns_t ns;
    memset(&ns, 0, sizeof(ns));
    snprintf(ns.id, sizeof(ns.id), "%s", id);
    snprintf(ns.account_id, sizeof(ns.account_id), "%s", acc);
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_DO_NS_DELETE;
    w.do_ns = &ns;
    int rc = ekv_store_write_sync(s, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

static int dowrite(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, int delete_all,
                   const ekv_do_item_t *items, size_t n, ekv_do_alarm_op_t aop, int64_t ms,
                   const char *name, uint64_t *seq)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_DO_WRITE;
    memcpy(w.nsid, dons, EKV_NSID_LEN);
    memcpy(w.objid, obj, EKV_DO_OBJID_LEN);
    w.do_delete_all = delete_all;
    w.do_items = items;
    w.do_nitems = n;
    w.do_alarm_op = aop;
    w.do_alarm_ms = ms;
    w.do_object_name = name;
    int rc = ekv_store_write_sync(s, &w);
    if (seq)
        *seq = w.seq;
    return rc;
}

static ekv_do_item_t PUT(const char *k, const char *v)
{
    return (ekv_do_item_t){.key = k, .key_len = strlen(k), .value = v, .value_len = strlen(v)};
}

static ekv_do_item_t PUTB(const char *k, size_t klen, const char *v)
{
    return (ekv_do_item_t){.key = k, .key_len = klen, .value = v, .value_len = strlen(v)};
}

static ekv_do_item_t DEL(const char *k)
{
    return (ekv_do_item_t){.key = k, .key_len = strlen(k), .del = 1};
}

static int put1(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, const char *k,
                const char *v)
{
    ekv_do_item_t it = PUT(k, v);
    return dowrite(s, dons, obj, 0, &it, 1, EKV_DO_ALARM_KEEP, 0, NULL, NULL);
}

static int alarm_set(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, int64_t ms,
                     const char *name)
{
    return dowrite(s, dons, obj, 0, NULL, 0, EKV_DO_ALARM_SET, ms, name, NULL);
}

/* do_get of key[0..klen): val NULL = must be absent; else exactly val[0..vlen) + NUL. */
static void expect_get(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, const char *key,
                       size_t klen, const char *val, size_t vlen)
{
    char *v = (char *)&v; /* poison: must be reset */
    size_t vl = 12345;
    int rc = ekv_store_do_get(s, dons, obj, key, klen, &v, &vl);
    if (!val) {
        cr_assert_eq(rc, EKV_EKEY_NOT_FOUND, "key %.*s: %s", (int)klen, key, ekv_err_name(rc));
        cr_assert_null(v);
        cr_assert_eq(vl, 0);
        return;
    }
    cr_assert_eq(rc, 0, "key %.*s: %s", (int)klen, key, ekv_err_name(rc));
    cr_assert_not_null(v);
    cr_assert_eq(vl, vlen, "key %.*s: len %zu != %zu", (int)klen, key, vl, vlen);
    cr_assert_eq(memcmp(v, val, vlen), 0, "key %.*s: value differs", (int)klen, key);
    cr_assert_eq(v[vlen], '\0');
    free(v);
}

static void get_eq(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, const char *key,
                   const char *val)
{
    expect_get(s, dons, obj, key, strlen(key), val, val ? strlen(val) : 0);
}

/* ---- do_load collector ---- */

typedef struct {
    uint8_t dons[EKV_NSID_LEN], obj[EKV_DO_OBJID_LEN];
    int64_t ms;
    char name[256];
    size_t name_len;
} alarm_rec_t;

typedef struct {
    ekv_do_ns_t ns[8];
    size_t nns;
    alarm_rec_t al[64];
    size_t nal;
} loaded_t;

static void on_ns(void *ctx, const ekv_do_ns_t *ns)
{
    loaded_t *l = ctx;
    cr_assert_lt(l->nns, 8);
    l->ns[l->nns++] = *ns;
}

static void on_alarm(void *ctx, const uint8_t dons[EKV_NSID_LEN],
                     const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                     size_t name_len)
{
    loaded_t *l = ctx;
    cr_assert_lt(l->nal, 64);
    cr_assert_lt(name_len, 256);
    alarm_rec_t *a = &l->al[l->nal++];
    memcpy(a->dons, dons, EKV_NSID_LEN);
    memcpy(a->obj, objid, EKV_DO_OBJID_LEN);
    a->ms = ms;
    memcpy(a->name, name, name_len);
    a->name[name_len] = '\0';
    a->name_len = name_len;
}

static void load(ekv_store_t *s, loaded_t *l)
{
    memset(l, 0, sizeof(*l));
    ekv_do_visitor_t v = {.ctx = l, .on_ns = on_ns, .on_alarm = on_alarm};
    cr_assert_eq(ekv_store_do_load(s, &v), 0);
}

static const alarm_rec_t *find_alarm(const loaded_t *l, const uint8_t *dons, const uint8_t *obj)
{
    const alarm_rec_t *found = NULL;
    for (size_t i = 0; i < l->nal; i++)
        if (!memcmp(l->al[i].dons, dons, EKV_NSID_LEN) &&
            !memcmp(l->al[i].obj, obj, EKV_DO_OBJID_LEN)) {
            cr_assert_null(found, "alarm visited twice");
            found = &l->al[i];
        }
    return found;
}

static const ekv_do_ns_t *find_ns(const loaded_t *l, const char *id)
{
    for (size_t i = 0; i < l->nns; i++)
        if (!strcmp(l->ns[i].id, id))
            return &l->ns[i];
    return NULL;
}

static void expect_alarm(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, int64_t ms,
                         const char *name)
{
    loaded_t l;
    load(s, &l);
    const alarm_rec_t *a = find_alarm(&l, dons, obj);
    cr_assert_not_null(a, "alarm missing");
    cr_assert_eq(a->ms, ms);
    cr_assert_eq(a->name_len, strlen(name));
    cr_assert_eq(memcmp(a->name, name, a->name_len), 0, "alarm name %s != %s", a->name, name);
}

static void expect_no_alarm(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj)
{
    loaded_t l;
    load(s, &l);
    cr_assert_null(find_alarm(&l, dons, obj), "unexpected alarm");
}

static void ns_equal(const ekv_do_ns_t *a, const ekv_do_ns_t *b)
{
    cr_assert_str_eq(a->id, b->id);
    cr_assert_str_eq(a->account_id, b->account_id);
    cr_assert_str_eq(a->name, b->name);
    cr_assert_str_eq(a->class_name, b->class_name);
    cr_assert_str_eq(a->script, b->script);
    cr_assert_eq(a->use_sqlite, b->use_sqlite);
    cr_assert_eq(memcmp(a->key, b->key, EKV_DO_NSKEY_LEN), 0);
    cr_assert_eq(a->created_ms, b->created_ms);
}

/* ---- list / objects helpers ---- */

typedef struct {
    const char *k;
    size_t klen;
    const char *v;
} kv_t;

static void list(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, const char *lo,
                 size_t lo_len, const char *hi, size_t hi_len, int has_hi, int reverse,
                 size_t limit, size_t max_bytes, ekv_do_list_t *out)
{
    int rc = ekv_store_do_list(s, dons, obj, lo, lo_len, hi, hi_len, has_hi, reverse, limit,
                               max_bytes, out);
    cr_assert_eq(rc, 0, "do_list: %s", ekv_err_name(rc));
}

/* out holds exactly want[idx[0]], want[idx[1]], ... (n of them) and more == more. */
static void expect_items(const ekv_do_list_t *l, const kv_t *want, const int *idx, size_t n,
                         int more)
{
    cr_assert_eq(l->count, n, "count %zu != %zu", l->count, n);
    for (size_t i = 0; i < n; i++) {
        const kv_t *w = &want[idx[i]];
        const ekv_do_kv_t *it = &l->items[i];
        cr_assert_eq(it->key_len, w->klen, "item %zu key len %zu != %zu", i, it->key_len, w->klen);
        cr_assert_eq(memcmp(it->key, w->k, w->klen), 0, "item %zu key", i);
        cr_assert_eq(it->key[it->key_len], '\0');
        cr_assert_eq(it->value_len, strlen(w->v));
        cr_assert_eq(memcmp(it->value, w->v, it->value_len), 0, "item %zu value", i);
        cr_assert_eq(it->value[it->value_len], '\0');
    }
    cr_assert_eq(l->more, more, "more %d != %d", l->more, more);
}

static void objects(ekv_store_t *s, const uint8_t *dons, const uint8_t *after, size_t limit,
                    uint8_t (*ids)[EKV_DO_OBJID_LEN], size_t *n, int *more)
{
    int rc = ekv_store_do_objects(s, dons, after, limit, ids, n, more);
    cr_assert_eq(rc, 0, "do_objects: %s", ekv_err_name(rc));
    cr_assert_leq(*n, limit);
}

/* objects(dons) from `after` with `limit` is exactly want[0..nwant) and more. */
static void expect_objects(ekv_store_t *s, const uint8_t *dons, const uint8_t *after, size_t limit,
                           const uint8_t (*want)[EKV_DO_OBJID_LEN], size_t nwant, int more)
{
    uint8_t ids[64][EKV_DO_OBJID_LEN];
    size_t n = 99;
    int m = 99;
    cr_assert_leq(limit, 64);
    objects(s, dons, after, limit, ids, &n, &m);
    cr_assert_eq(n, nwant, "objects: %zu != %zu", n, nwant);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(memcmp(ids[i], want[i], EKV_DO_OBJID_LEN), 0, "object %zu differs", i);
    cr_assert_eq(m, more, "more %d != %d", m, more);
}

/* Every key + value of one object, forward, in one list call. */
static void list_all(ekv_store_t *s, const uint8_t *dons, const uint8_t *obj, ekv_do_list_t *out)
{
    list(s, dons, obj, NULL, 0, NULL, 0, 0, 0, 100000, (size_t)1 << 30, out);
    cr_assert_eq(out->more, 0);
}

static void same_object(ekv_store_t *a, ekv_store_t *b, const uint8_t *dons, const uint8_t *obj)
{
    ekv_do_list_t la, lb;
    list_all(a, dons, obj, &la);
    list_all(b, dons, obj, &lb);
    cr_assert_eq(la.count, lb.count);
    for (size_t i = 0; i < la.count; i++) {
        cr_assert_eq(la.items[i].key_len, lb.items[i].key_len);
        cr_assert_eq(memcmp(la.items[i].key, lb.items[i].key, la.items[i].key_len), 0);
        cr_assert_eq(la.items[i].value_len, lb.items[i].value_len);
        cr_assert_eq(memcmp(la.items[i].value, lb.items[i].value, la.items[i].value_len), 0);
    }
    ekv_do_list_clear(&la);
    ekv_do_list_clear(&lb);
}

static void same_load(ekv_store_t *a, ekv_store_t *b)
{
    loaded_t *la = malloc(sizeof(*la)), *lb = malloc(sizeof(*lb));
    cr_assert(la && lb);
    load(a, la);
    load(b, lb);
    cr_assert_eq(la->nns, lb->nns);
    for (size_t i = 0; i < la->nns; i++)
        ns_equal(&la->ns[i], &lb->ns[i]);
    cr_assert_eq(la->nal, lb->nal);
    for (size_t i = 0; i < la->nal; i++) {
        cr_assert_eq(memcmp(la->al[i].dons, lb->al[i].dons, EKV_NSID_LEN), 0);
        cr_assert_eq(memcmp(la->al[i].obj, lb->al[i].obj, EKV_DO_OBJID_LEN), 0);
        cr_assert_eq(la->al[i].ms, lb->al[i].ms);
        cr_assert_eq(la->al[i].name_len, lb->al[i].name_len);
        cr_assert_eq(memcmp(la->al[i].name, lb->al[i].name, la->al[i].name_len), 0);
    }
    free(la);
    free(lb);
}

static void same_objects(ekv_store_t *a, ekv_store_t *b, const uint8_t *dons)
{
    uint8_t ia[64][EKV_DO_OBJID_LEN], ib[64][EKV_DO_OBJID_LEN];
    size_t na, nb;
    int ma, mb;
    objects(a, dons, NULL, 64, ia, &na, &ma);
    objects(b, dons, NULL, 64, ib, &nb, &mb);
    cr_assert_eq(na, nb);
    cr_assert_eq(ma, mb);
    cr_assert_eq(memcmp(ia, ib, na * EKV_DO_OBJID_LEN), 0);
}

/* Stream the primary's log into the replica until caught up; returns the records moved. */
static uint64_t stream(void)
{
    uint64_t next = ekv_store_last_seq(rst) + 1, moved = 0;
    for (;;) {
        ekv_log_batch_t b;
        int rc = ekv_store_log_read(pst, next, 5, 1 << 20, &b);
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

/* The primary's record seq, unpacked (caller frees with free_unpacked). */
static Edgekv__ChangeRecord *read_record(ekv_store_t *s, uint64_t seq)
{
    ekv_log_batch_t b;
    cr_assert_eq(ekv_store_log_read(s, seq, 1, 1 << 20, &b), 0);
    cr_assert_eq(b.count, 1);
    cr_assert_eq(b.recs[0].seq, seq);
    Edgekv__ChangeRecord *r = edgekv__change_record__unpack(NULL, b.recs[0].len, b.recs[0].data);
    cr_assert_not_null(r);
    cr_assert_eq(r->seq, seq);
    ekv_log_batch_clear(&b);
    return r;
}

/* ---- namespaces ---- */

Test(do_store, ns_put_load_replace)
{
    ekv_do_ns_t a, b, a2;
    ns_fill(&a, DO1, ACC, "counters", "Counter", "https://scripts.example/counter.js", 1, 0,
            1700000000123LL);
    ns_fill(&b, DO2, ACC2, "rooms", "ChatRoom", "", 0, 200, 42);
    uint64_t s1 = 0, s2 = 0;
    cr_assert_eq(ns_put(pst, &a, &s1), 0);
    cr_assert_eq(ns_put(pst, &b, &s2), 0);
    cr_assert_eq(s2, s1 + 1);

    loaded_t l;
    load(pst, &l);
    cr_assert_eq(l.nns, 2);
    cr_assert_eq(l.nal, 0);
    const ekv_do_ns_t *la = find_ns(&l, DO1), *lb = find_ns(&l, DO2);
    cr_assert_not_null(la);
    cr_assert_not_null(lb);
    ns_equal(la, &a);
    ns_equal(lb, &b);

    /* a second put of the same id replaces every field */
    ns_fill(&a2, DO1, ACC, "counters-v2", "CounterV2", "https://scripts.example/v2.js", 0, 99,
            1800000000000LL);
    cr_assert_eq(ns_put(pst, &a2, NULL), 0);
    load(pst, &l);
    cr_assert_eq(l.nns, 2);
    ns_equal(find_ns(&l, DO1), &a2);
    ns_equal(find_ns(&l, DO2), &b);

    /* invalid records are refused without a log record */
    uint64_t before = ekv_store_last_seq(pst);
    ekv_do_ns_t bad = a;
    bad.name[0] = '\0';
    cr_assert_eq(ns_put(pst, &bad, NULL), EKV_EBAD_REQUEST);
    bad = a;
    bad.class_name[0] = '\0';
    cr_assert_eq(ns_put(pst, &bad, NULL), EKV_EBAD_REQUEST);
    bad = a;
    snprintf(bad.id, sizeof(bad.id), "ffffffffffffffffffffffffffffffff");
    cr_assert_neq(ns_put(pst, &bad, NULL), 0);
    cr_assert_eq(ekv_store_last_seq(pst), before);
}

Test(do_store, ns_delete_removes_objects_keys_and_alarms)
{
    cr_assert_eq(ns_put_simple(pst, DO0, "zero"), 0);
    cr_assert_eq(ns_put_simple(pst, DO1, "one"), 0);
    cr_assert_eq(ns_put_simple(pst, DO2, "two"), 0);
    uint8_t o1[32], o2[32], off[32], o0[32];
    oid(o1, 0x00, 0x00);
    oid(o2, 0x77, 0x01);
    oid(off, 0xff, 0xff);
    oid(o0, 0x00, 0x00);
    const uint8_t *dons[3] = {do0, do1, do2};
    for (int d = 0; d < 3; d++) {
        cr_assert_eq(put1(pst, dons[d], o1, "a", "1"), 0);
        cr_assert_eq(put1(pst, dons[d], o2, "b", "2"), 0);
        cr_assert_eq(put1(pst, dons[d], off, "", "\"ff\""), 0);
        cr_assert_eq(alarm_set(pst, dons[d], o2, 1000 + d, "two"), 0);
        cr_assert_eq(alarm_set(pst, dons[d], off, 2000 + d, "eff"), 0);
    }
    cr_assert_eq(alarm_set(pst, do1, o0, 3000, "alarm-only"), 0);

    uint64_t before = ekv_store_last_seq(pst), seq = 0;
    cr_assert_eq(ns_del(pst, DO1, ACC, &seq), 0);
    cr_assert_eq(seq, before + 1);
    cr_assert_eq(ekv_store_last_seq(pst), before + 1);

    loaded_t l;
    load(pst, &l);
    cr_assert_eq(l.nns, 2);
    cr_assert_null(find_ns(&l, DO1));
    cr_assert_not_null(find_ns(&l, DO0));
    cr_assert_not_null(find_ns(&l, DO2));
    cr_assert_eq(l.nal, 4); /* o2 and off of do0 and do2 */
    cr_assert_null(find_alarm(&l, do1, o2));
    cr_assert_null(find_alarm(&l, do1, off));
    cr_assert_null(find_alarm(&l, do1, o0));
    cr_assert_eq(find_alarm(&l, do0, o2)->ms, 1000);
    cr_assert_eq(find_alarm(&l, do2, off)->ms, 2002);

    get_eq(pst, do1, o1, "a", NULL);
    get_eq(pst, do1, o2, "b", NULL);
    get_eq(pst, do1, off, "", NULL);
    expect_objects(pst, do1, NULL, 10, NULL, 0, 0);
    ekv_do_list_t lst;
    list_all(pst, do1, o1, &lst);
    cr_assert_eq(lst.count, 0);
    ekv_do_list_clear(&lst);

    uint8_t want[3][32];
    memcpy(want[0], o1, 32);
    memcpy(want[1], o2, 32);
    memcpy(want[2], off, 32);
    for (int d = 0; d < 3; d += 2) {
        get_eq(pst, dons[d], o1, "a", "1");
        get_eq(pst, dons[d], o2, "b", "2");
        get_eq(pst, dons[d], off, "", "\"ff\"");
        expect_objects(pst, dons[d], NULL, 10, (const uint8_t(*)[32])want, 3, 0);
    }

    /* deleting a namespace again (or one that never existed) still logs one record */
    cr_assert_eq(ns_del(pst, DO1, ACC, &seq), 0);
    cr_assert_eq(seq, before + 2);
}

/* ---- object writes ---- */

Test(do_store, write_get_exact_bytes)
{
    uint8_t o[32], other[32];
    oid(o, 0x11, 0x22);
    oid(other, 0x11, 0x23);
    char longkey[300], bigval[5001];
    memset(longkey, 'k', sizeof(longkey));
    longkey[sizeof(longkey) - 1] = '\0';
    memset(bigval, 'v', sizeof(bigval) - 1);
    bigval[0] = '"';
    bigval[sizeof(bigval) - 2] = '"';
    bigval[sizeof(bigval) - 1] = '\0';
    const char binkey[] = {'a', 0x00, (char)0xff, 'z'};
    ekv_do_item_t items[] = {
        PUT("", "\"empty key\""),
        PUT("name", "{\"first\":\"Ada\",\"n\":[1,2,3]}"),
        PUT("empty-value", ""),
        PUT(longkey, bigval),
        PUTB(binkey, sizeof(binkey), "\"binary key\""),
    };
    uint64_t seq = 0, before = ekv_store_last_seq(pst);
    cr_assert_eq(dowrite(pst, do1, o, 0, items, 5, EKV_DO_ALARM_KEEP, 0, NULL, &seq), 0);
    cr_assert_eq(seq, before + 1);

    get_eq(pst, do1, o, "", "\"empty key\"");
    get_eq(pst, do1, o, "name", "{\"first\":\"Ada\",\"n\":[1,2,3]}");
    get_eq(pst, do1, o, "empty-value", "");
    get_eq(pst, do1, o, longkey, bigval);
    expect_get(pst, do1, o, binkey, sizeof(binkey), "\"binary key\"", 12);
    /* prefixes / extensions of stored keys are different keys */
    expect_get(pst, do1, o, binkey, 2, NULL, 0);
    get_eq(pst, do1, o, "nam", NULL);
    get_eq(pst, do1, o, "names", NULL);
    get_eq(pst, do1, o, "missing", NULL);
    /* same key, other object / other namespace: absent */
    get_eq(pst, do1, other, "name", NULL);
    get_eq(pst, do1, other, "", NULL);
    get_eq(pst, do2, o, "name", NULL);

    /* overwrite, and delete of the empty key */
    ekv_do_item_t upd[] = {PUT("name", "\"Grace\""), DEL(""), DEL("never-there")};
    cr_assert_eq(dowrite(pst, do1, o, 0, upd, 3, EKV_DO_ALARM_KEEP, 0, NULL, &seq), 0);
    cr_assert_eq(seq, before + 2);
    get_eq(pst, do1, o, "name", "\"Grace\"");
    get_eq(pst, do1, o, "", NULL);
    get_eq(pst, do1, o, "empty-value", "");

    /* a put without a value is refused, without a record */
    ekv_do_item_t bad = {.key = "x", .key_len = 1, .value = NULL, .value_len = 0};
    cr_assert_eq(dowrite(pst, do1, o, 0, &bad, 1, EKV_DO_ALARM_KEEP, 0, NULL, NULL),
                 EKV_EBAD_REQUEST);
    cr_assert_eq(dowrite(pst, do1, o, 0, NULL, 0, EKV_DO_ALARM_SET, -1, NULL, NULL),
                 EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_store_last_seq(pst), before + 2);
}

Test(do_store, items_apply_in_order)
{
    uint8_t o[32];
    oid(o, 0x33, 0x33);
    cr_assert_eq(put1(pst, do1, o, "q", "\"old\""), 0);
    ekv_do_item_t items[] = {
        PUT("k", "1"),     DEL("k"),          /* put then delete: absent */
        DEL("j"),          PUT("j", "2"),     /* delete then put: present */
        PUT("m", "1"),     PUT("m", "\"2\""), /* last put wins */
        DEL("q"),          PUT("q", "\"back\""),
        PUT("r", "\"x\""), DEL("r"),
        PUT("r", "\"y\""),
    };
    cr_assert_eq(dowrite(pst, do1, o, 0, items, sizeof(items) / sizeof(items[0]), EKV_DO_ALARM_KEEP,
                         0, NULL, NULL),
                 0);
    get_eq(pst, do1, o, "k", NULL);
    get_eq(pst, do1, o, "j", "2");
    get_eq(pst, do1, o, "m", "\"2\"");
    get_eq(pst, do1, o, "q", "\"back\"");
    get_eq(pst, do1, o, "r", "\"y\"");
}

Test(do_store, delete_all_clears_one_object_then_applies_items)
{
    uint8_t x[32], lo[32], hi[32];
    oid(x, 0x50, 0x10);
    oid(lo, 0x50, 0x0f);
    oid(hi, 0x50, 0x11);
    const uint8_t *objs[3] = {lo, x, hi};
    const char *names[3] = {"low", "x", "high"};
    for (int i = 0; i < 3; i++) {
        ekv_do_item_t items[] = {PUT("", "0"), PUT("a", "1"), PUT("b", "2"), PUT("\xff", "3")};
        cr_assert_eq(
            dowrite(pst, do1, objs[i], 0, items, 4, EKV_DO_ALARM_SET, 100 + i, names[i], NULL), 0);
    }
    /* the same object id in the neighbouring namespace */
    cr_assert_eq(put1(pst, do2, x, "a", "\"do2\""), 0);
    cr_assert_eq(alarm_set(pst, do2, x, 555, "x-in-do2"), 0);

    ekv_do_item_t items[] = {PUT("b", "\"new-b\""), PUT("c", "\"c\"")};
    uint64_t seq = 0, before = ekv_store_last_seq(pst);
    cr_assert_eq(dowrite(pst, do1, x, 1, items, 2, EKV_DO_ALARM_KEEP, 0, NULL, &seq), 0);
    cr_assert_eq(seq, before + 1);
    get_eq(pst, do1, x, "", NULL);
    get_eq(pst, do1, x, "a", NULL);
    get_eq(pst, do1, x, "\xff", NULL);
    get_eq(pst, do1, x, "b", "\"new-b\"");
    get_eq(pst, do1, x, "c", "\"c\"");
    expect_no_alarm(pst, do1, x); /* delete_all took the alarm; KEEP keeps "none" */
    ekv_do_list_t l;
    list_all(pst, do1, x, &l);
    cr_assert_eq(l.count, 2);
    ekv_do_list_clear(&l);

    /* neighbours keep everything */
    for (int i = 0; i < 3; i += 2) {
        get_eq(pst, do1, objs[i], "", "0");
        get_eq(pst, do1, objs[i], "a", "1");
        get_eq(pst, do1, objs[i], "b", "2");
        get_eq(pst, do1, objs[i], "\xff", "3");
        expect_alarm(pst, do1, objs[i], 100 + i, names[i]);
    }
    get_eq(pst, do2, x, "a", "\"do2\"");
    expect_alarm(pst, do2, x, 555, "x-in-do2");

    /* delete_all + a new alarm in the same op: the alarm is set after the clear */
    cr_assert_eq(dowrite(pst, do1, x, 1, NULL, 0, EKV_DO_ALARM_SET, 9000, "again", NULL), 0);
    list_all(pst, do1, x, &l);
    cr_assert_eq(l.count, 0);
    ekv_do_list_clear(&l);
    expect_alarm(pst, do1, x, 9000, "again");

    /* delete_all + put + alarm delete */
    ekv_do_item_t z = PUT("z", "26");
    cr_assert_eq(dowrite(pst, do1, x, 1, &z, 1, EKV_DO_ALARM_DELETE, 0, NULL, NULL), 0);
    list_all(pst, do1, x, &l);
    cr_assert_eq(l.count, 1);
    cr_assert_eq(l.items[0].key_len, 1);
    cr_assert_eq(l.items[0].key[0], 'z');
    ekv_do_list_clear(&l);
    expect_no_alarm(pst, do1, x);

    /* delete_all then re-put a key it just deleted */
    ekv_do_item_t again = PUT("z", "27");
    cr_assert_eq(dowrite(pst, do1, x, 1, &again, 1, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    get_eq(pst, do1, x, "z", "27");

    /* delete_all of the all-0xff object id (its prefix successor drops trailing 0xff) */
    uint8_t ff[32], nb[32];
    oid(ff, 0xff, 0xff);
    oid(nb, 0xff, 0xfe);
    cr_assert_eq(put1(pst, do1, ff, "k", "1"), 0);
    cr_assert_eq(put1(pst, do1, nb, "k", "2"), 0);
    cr_assert_eq(put1(pst, do2, lo, "k", "3"), 0);
    cr_assert_eq(alarm_set(pst, do1, ff, 1, "ff"), 0);
    cr_assert_eq(dowrite(pst, do1, ff, 1, NULL, 0, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    get_eq(pst, do1, ff, "k", NULL);
    expect_no_alarm(pst, do1, ff);
    get_eq(pst, do1, nb, "k", "2");
    get_eq(pst, do2, lo, "k", "3");
    get_eq(pst, do2, x, "a", "\"do2\"");
}

Test(do_store, alarms_set_keep_delete)
{
    uint8_t o[32], n[32];
    oid(o, 0x61, 0x01);
    oid(n, 0x61, 0x02);
    const char *name = "room-42 \xc3\xa9"; /* UTF-8 bytes */
    cr_assert_eq(alarm_set(pst, do1, o, 1700000000000LL, name), 0);
    expect_alarm(pst, do1, o, 1700000000000LL, name);
    expect_no_alarm(pst, do1, n);
    /* no keys were written by an alarm-only op */
    ekv_do_list_t l;
    list_all(pst, do1, o, &l);
    cr_assert_eq(l.count, 0);
    ekv_do_list_clear(&l);

    /* KEEP with key writes leaves it */
    ekv_do_item_t it = PUT("k", "1");
    cr_assert_eq(dowrite(pst, do1, o, 0, &it, 1, EKV_DO_ALARM_KEEP, 77, "ignored", NULL), 0);
    expect_alarm(pst, do1, o, 1700000000000LL, name);

    /* SET replaces: new ms, unknown name (NULL) */
    cr_assert_eq(alarm_set(pst, do1, o, 1700000005000LL, NULL), 0);
    expect_alarm(pst, do1, o, 1700000005000LL, "");
    cr_assert_eq(alarm_set(pst, do1, o, 0, "zero"), 0);
    expect_alarm(pst, do1, o, 0, "zero");

    /* a second object's alarm is independent */
    cr_assert_eq(alarm_set(pst, do1, n, 5, "n"), 0);
    loaded_t ld;
    load(pst, &ld);
    cr_assert_eq(ld.nal, 2);
    /* load visits alarms in key order */
    cr_assert_eq(memcmp(ld.al[0].obj, o, 32), 0);
    cr_assert_eq(memcmp(ld.al[1].obj, n, 32), 0);

    /* DELETE removes it (the keys stay), DELETE of none succeeds */
    uint64_t seq = 0, before = ekv_store_last_seq(pst);
    cr_assert_eq(dowrite(pst, do1, o, 0, NULL, 0, EKV_DO_ALARM_DELETE, 0, NULL, &seq), 0);
    cr_assert_eq(seq, before + 1);
    expect_no_alarm(pst, do1, o);
    get_eq(pst, do1, o, "k", "1");
    expect_alarm(pst, do1, n, 5, "n");
    cr_assert_eq(dowrite(pst, do1, o, 0, NULL, 0, EKV_DO_ALARM_DELETE, 0, NULL, &seq), 0);
    cr_assert_eq(seq, before + 2);
    expect_no_alarm(pst, do1, o);
}

/* ---- list ---- */

/* The object's keys in byte order (0x00 and 0xff bytes included). */
static const kv_t LK[] = {
    {"", 0, "\"v0\""},
    {"\x00", 1, "\"v1\""},
    {"a", 1, "\"v2\""},
    {"a\x00", 2, "\"v3\""},
    {"a\x00"
     "b",
     3, "\"v4\""},
    {"a\xff", 2, "\"v5\""},
    {"b", 1, "\"v6\""},
    {"\xff", 1, "\"v7\""},
    {"\xff\xff", 2, "\"v8\""},
};
#define NLK (sizeof(LK) / sizeof(LK[0]))

static void fill_list_object(const uint8_t *o)
{
    ekv_do_item_t items[NLK];
    /* written out of order */
    for (size_t i = 0; i < NLK; i++) {
        size_t j = (i * 4) % NLK;
        items[i] = PUTB(LK[j].k, LK[j].klen, LK[j].v);
    }
    cr_assert_eq(dowrite(pst, do1, o, 0, items, NLK, EKV_DO_ALARM_SET, 1, "list", NULL), 0);
}

/* Neighbours: ids one below and above o in the last byte, the same id in do0 and do2. */
static void fill_neighbours(const uint8_t *o)
{
    uint8_t below[32], above[32];
    memcpy(below, o, 32);
    memcpy(above, o, 32);
    below[31]--;
    above[31]++;
    ekv_do_item_t items[] = {PUT("", "\"n\""), PUT("a", "\"n\""), PUTB("\xff\xff\xff", 3, "\"n\""),
                             PUTB("\x00", 1, "\"n\"")};
    cr_assert_eq(dowrite(pst, do1, below, 0, items, 4, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(dowrite(pst, do1, above, 0, items, 4, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(dowrite(pst, do0, o, 0, items, 4, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(dowrite(pst, do2, o, 0, items, 4, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
}

Test(do_store, list_bounds_order_limits)
{
    uint8_t o[32];
    oid(o, 0x42, 0x80);
    fill_list_object(o);
    fill_neighbours(o);
    const int fwd[] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, rev[] = {8, 7, 6, 5, 4, 3, 2, 1, 0};
    ekv_do_list_t l;

    /* everything, both directions */
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd, 9, 0);
    ekv_do_list_clear(&l);
    cr_assert_eq(l.count, 0);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 1, 100, 1 << 20, &l);
    expect_items(&l, LK, rev, 9, 0);
    ekv_do_list_clear(&l);
    /* limit == count: no more */
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 9, 1 << 20, &l);
    expect_items(&l, LK, fwd, 9, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 1, 9, 1 << 20, &l);
    expect_items(&l, LK, rev, 9, 0);
    ekv_do_list_clear(&l);
    /* limit < count: more */
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 3, 1 << 20, &l);
    expect_items(&l, LK, fwd, 3, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 1, 2, 1 << 20, &l);
    expect_items(&l, LK, rev, 2, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 8, 1 << 20, &l);
    expect_items(&l, LK, fwd, 8, 1);
    ekv_do_list_clear(&l);

    /* [lo, hi) */
    list(pst, do1, o, "a", 1, "b", 1, 1, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd + 2, 4, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "a", 1, "b", 1, 1, 1, 100, 1 << 20, &l);
    expect_items(&l, LK, rev + 3, 4, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "a", 1, "b", 1, 1, 1, 3, 1 << 20, &l);
    expect_items(&l, LK, rev + 3, 3, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "a", 1, "b", 1, 1, 0, 4, 1 << 20, &l);
    expect_items(&l, LK, fwd + 2, 4, 0); /* b is outside: no more */
    ekv_do_list_clear(&l);
    /* lo inclusive, hi exclusive, with 0x00 / 0xff bytes in the bounds */
    list(pst, do1, o, "a\x00", 2, "a\xff", 2, 1, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd + 3, 2, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "\x00", 1, "\xff\xff", 2, 1, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd + 1, 7, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "", 0, "\x00", 1, 1, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd, 1, 0);
    ekv_do_list_clear(&l);
    /* no upper bound from lo */
    list(pst, do1, o, "a", 1, NULL, 0, 0, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd + 2, 7, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "\xff", 1, NULL, 0, 0, 1, 100, 1 << 20, &l);
    expect_items(&l, LK, rev, 2, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "\xff\xff\x00", 3, NULL, 0, 0, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd, 0, 0);
    ekv_do_list_clear(&l);
    /* empty ranges */
    list(pst, do1, o, "", 0, "", 0, 1, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd, 0, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "b", 1, "a", 1, 1, 1, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd, 0, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, o, "a\x01", 2, "a\xfe", 2, 1, 0, 100, 1 << 20, &l);
    expect_items(&l, LK, fwd, 0, 0);
    ekv_do_list_clear(&l);

    /* paging forward: lo = last key + "\0" */
    char next[16];
    size_t next_len = 0, seen = 0;
    for (int guard = 0; guard < 20; guard++) {
        list(pst, do1, o, next, next_len, NULL, 0, 0, 0, 2, 1 << 20, &l);
        expect_items(&l, LK, fwd + seen, l.count, seen + l.count < 9);
        seen += l.count;
        if (!l.more) {
            ekv_do_list_clear(&l);
            break;
        }
        memcpy(next, l.items[l.count - 1].key, l.items[l.count - 1].key_len);
        next_len = l.items[l.count - 1].key_len;
        next[next_len++] = '\0';
        ekv_do_list_clear(&l);
    }
    cr_assert_eq(seen, 9);
    /* paging backward: hi = last key */
    char hi[16];
    size_t hi_len = 0;
    int has_hi = 0;
    seen = 0;
    for (int guard = 0; guard < 20; guard++) {
        list(pst, do1, o, NULL, 0, hi, hi_len, has_hi, 1, 4, 1 << 20, &l);
        expect_items(&l, LK, rev + seen, l.count, seen + l.count < 9);
        seen += l.count;
        if (!l.more) {
            ekv_do_list_clear(&l);
            break;
        }
        memcpy(hi, l.items[l.count - 1].key, l.items[l.count - 1].key_len);
        hi_len = l.items[l.count - 1].key_len;
        has_hi = 1;
        ekv_do_list_clear(&l);
    }
    cr_assert_eq(seen, 9);

    /* max_bytes: stop once key + value bytes reach it, at least one item */
    size_t sz0 = LK[0].klen + strlen(LK[0].v), sz1 = LK[1].klen + strlen(LK[1].v);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 100, 1, &l);
    expect_items(&l, LK, fwd, 1, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 100, 0, &l);
    expect_items(&l, LK, fwd, 1, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 100, sz0 + sz1, &l);
    expect_items(&l, LK, fwd, 2, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 100, sz0 + sz1 + 1, &l);
    expect_items(&l, LK, fwd, 3, 1);
    ekv_do_list_clear(&l);
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 1, 100, 1, &l);
    expect_items(&l, LK, rev, 1, 1);
    ekv_do_list_clear(&l);
    /* the last item alone: max_bytes reached but nothing follows */
    list(pst, do1, o, "\xff\xff", 2, NULL, 0, 0, 0, 100, 1, &l);
    expect_items(&l, LK, fwd + 8, 1, 0);
    ekv_do_list_clear(&l);

    /* limit 0: nothing */
    list(pst, do1, o, NULL, 0, NULL, 0, 0, 0, 0, 1 << 20, &l);
    cr_assert_eq(l.count, 0);
    ekv_do_list_clear(&l);

    /* neighbours see only their own 4 keys */
    uint8_t below[32], above[32];
    memcpy(below, o, 32);
    memcpy(above, o, 32);
    below[31]--;
    above[31]++;
    const uint8_t *nbs[2] = {below, above};
    for (int i = 0; i < 2; i++) {
        list(pst, do1, nbs[i], NULL, 0, NULL, 0, 0, 0, 100, 1 << 20, &l);
        cr_assert_eq(l.count, 4);
        ekv_do_list_clear(&l);
        list(pst, do1, nbs[i], NULL, 0, NULL, 0, 0, 1, 100, 1 << 20, &l);
        cr_assert_eq(l.count, 4);
        cr_assert_eq(l.items[0].key_len, 3);
        ekv_do_list_clear(&l);
    }
}

Test(do_store, list_all_ff_object_does_not_leak)
{
    uint8_t ff[32], zero[32], fe[32];
    oid(ff, 0xff, 0xff);
    oid(zero, 0x00, 0x00);
    oid(fe, 0xff, 0xfe);
    ekv_do_item_t mine[] = {PUT("", "1"), PUT("x", "2"), PUTB("\xff\xff", 2, "3")};
    cr_assert_eq(dowrite(pst, do1, ff, 0, mine, 3, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    ekv_do_item_t theirs[] = {PUT("", "9"), PUT("a", "9"), PUTB("\x00", 1, "9")};
    /* the next namespace's first object, and the object just below */
    cr_assert_eq(dowrite(pst, do2, zero, 0, theirs, 3, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(dowrite(pst, do1, fe, 0, theirs, 3, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    static const kv_t want[] = {{"", 0, "1"}, {"x", 1, "2"}, {"\xff\xff", 2, "3"}};
    const int f[] = {0, 1, 2}, r[] = {2, 1, 0};
    ekv_do_list_t l;
    list(pst, do1, ff, NULL, 0, NULL, 0, 0, 0, 100, 1 << 20, &l);
    expect_items(&l, want, f, 3, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, ff, NULL, 0, NULL, 0, 0, 1, 100, 1 << 20, &l);
    expect_items(&l, want, r, 3, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, ff, NULL, 0, NULL, 0, 0, 0, 3, 1 << 20, &l);
    expect_items(&l, want, f, 3, 0);
    ekv_do_list_clear(&l);
    list(pst, do1, ff, "\xff", 1, NULL, 0, 0, 0, 100, 1 << 20, &l);
    expect_items(&l, want, f + 2, 1, 0);
    ekv_do_list_clear(&l);
    list(pst, do2, zero, NULL, 0, NULL, 0, 0, 1, 100, 1 << 20, &l);
    cr_assert_eq(l.count, 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_str_eq(l.items[i].value, "9");
    ekv_do_list_clear(&l);
}

/* ---- objects ---- */

Test(do_store, objects_keys_alarms_paging)
{
    uint8_t a[32], b[32], c[32], d[32], e[32], f[32];
    oid(a, 0x20, 0x01); /* one key: "" */
    oid(b, 0x20, 0x02); /* alarm only */
    oid(c, 0x20, 0x03); /* keys and alarm */
    oid(d, 0x30, 0x00); /* many keys */
    oid(e, 0x20, 0xff); /* keys, trailing 0xff */
    oid(f, 0xff, 0xff); /* all 0xff */
    cr_assert_eq(put1(pst, do1, a, "", "1"), 0);
    cr_assert_eq(alarm_set(pst, do1, b, 10, "b"), 0);
    ekv_do_item_t ci[] = {PUT("k1", "1"), PUT("k2", "2")};
    cr_assert_eq(dowrite(pst, do1, c, 0, ci, 2, EKV_DO_ALARM_SET, 20, "c", NULL), 0);
    ekv_do_item_t di[6];
    char dk[6][4];
    for (int i = 0; i < 6; i++) {
        snprintf(dk[i], sizeof(dk[i]), "d%d", i);
        di[i] = PUT(dk[i], "0");
    }
    cr_assert_eq(dowrite(pst, do1, d, 0, di, 6, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(put1(pst, do1, e, "\xff", "1"), 0);
    cr_assert_eq(put1(pst, do1, f, "x", "1"), 0);
    /* other namespaces, below and above, with keys and alarms on ids around ours */
    uint8_t z[32];
    oid(z, 0x00, 0x00);
    const uint8_t *others[] = {z, a, b, f};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(put1(pst, do0, others[i], "o", "1"), 0);
        cr_assert_eq(alarm_set(pst, do2, others[i], 1, "o"), 0);
    }

    uint8_t all[6][32];
    memcpy(all[0], a, 32);
    memcpy(all[1], b, 32);
    memcpy(all[2], c, 32);
    memcpy(all[3], e, 32);
    memcpy(all[4], d, 32);
    memcpy(all[5], f, 32);
    const uint8_t(*want)[32] = (const uint8_t(*)[32])all;
    expect_objects(pst, do1, NULL, 64, want, 6, 0);
    expect_objects(pst, do1, NULL, 6, want, 6, 0);
    expect_objects(pst, do1, NULL, 5, want, 5, 1);
    expect_objects(pst, do1, NULL, 1, want, 1, 1);
    expect_objects(pst, do1, NULL, 0, want, 0, 1);
    /* paging with after = the last id returned */
    expect_objects(pst, do1, a, 2, want + 1, 2, 1);
    expect_objects(pst, do1, c, 2, want + 3, 2, 1);
    expect_objects(pst, do1, d, 2, want + 5, 1, 0);
    expect_objects(pst, do1, d, 1, want + 5, 1, 0);
    expect_objects(pst, do1, f, 10, NULL, 0, 0);
    expect_objects(pst, do1, e, 2, want + 4, 2, 0);
    /* after = ids that are not objects */
    uint8_t x[32];
    oid(x, 0x20, 0x00);
    expect_objects(pst, do1, x, 64, want, 6, 0);
    oid(x, 0x25, 0x00);
    expect_objects(pst, do1, x, 64, want + 4, 2, 0);
    oid(x, 0x00, 0x00);
    expect_objects(pst, do1, x, 64, want, 6, 0);
    oid(x, 0xff, 0xfe);
    expect_objects(pst, do1, x, 64, want + 5, 1, 0);
    /* the other namespaces see only their own */
    uint8_t o4[4][32];
    memcpy(o4[0], z, 32);
    memcpy(o4[1], a, 32);
    memcpy(o4[2], b, 32);
    memcpy(o4[3], f, 32);
    expect_objects(pst, do0, NULL, 64, (const uint8_t(*)[32])o4, 4, 0);
    expect_objects(pst, do2, NULL, 64, (const uint8_t(*)[32])o4, 4, 0);
    uint8_t dn[16];
    hex16("0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d03", dn);
    expect_objects(pst, dn, NULL, 64, NULL, 0, 0);

    /* an object whose keys are all deleted and has no alarm disappears */
    ekv_do_item_t da = DEL("");
    cr_assert_eq(dowrite(pst, do1, a, 0, &da, 1, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(dowrite(pst, do1, b, 0, NULL, 0, EKV_DO_ALARM_DELETE, 0, NULL, NULL), 0);
    ekv_do_item_t dc[] = {DEL("k1"), DEL("k2")};
    cr_assert_eq(dowrite(pst, do1, c, 0, dc, 2, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    expect_objects(pst, do1, NULL, 64, want + 2, 4, 0); /* c still has its alarm */
    cr_assert_eq(dowrite(pst, do1, c, 0, NULL, 0, EKV_DO_ALARM_DELETE, 0, NULL, NULL), 0);
    cr_assert_eq(dowrite(pst, do1, d, 1, NULL, 0, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    memcpy(all[0], e, 32);
    memcpy(all[1], f, 32);
    expect_objects(pst, do1, NULL, 64, want, 2, 0);
    expect_objects(pst, do1, NULL, 1, want, 1, 1);
}

/* ---- change log and replication ---- */

Test(do_store, one_record_per_op_and_replica_apply)
{
    ekv_do_ns_t ns;
    ns_fill(&ns, DO1, ACC, "counters", "Counter", "https://s.example/c.js", 1, 7, 123456);
    uint64_t s0 = ekv_store_last_seq(pst), seq = 0;
    cr_assert_eq(ns_put(pst, &ns, &seq), 0);
    cr_assert_eq(seq, s0 + 1);
    cr_assert_eq(ekv_store_last_seq(pst), s0 + 1);
    cr_assert_eq(ns_put_simple(pst, DO2, "two"), 0);
    cr_assert_eq(ekv_store_last_seq(pst), s0 + 2);

    Edgekv__ChangeRecord *r = read_record(pst, s0 + 1);
    cr_assert_eq(r->op, EDGEKV__CHANGE_OP__DO_NS_PUT);
    cr_assert_eq(r->namespace_id.len, 16);
    cr_assert_eq(memcmp(r->namespace_id.data, do1, 16), 0);
    cr_assert_str_eq(r->account_id, ACC);
    cr_assert_gt(r->value.len, 0);
    edgekv__change_record__free_unpacked(r, NULL);

    /* one DO_WRITE of 128 items + delete_all + alarm = one record */
    uint8_t o[32], p[32];
    oid(o, 0x70, 0x01);
    oid(p, 0x70, 0x02);
    cr_assert_eq(put1(pst, do1, o, "pre-existing", "\"gone\""), 0);
    cr_assert_eq(alarm_set(pst, do1, o, 1, "old"), 0);
    uint64_t s1 = ekv_store_last_seq(pst);
    cr_assert_eq(s1, s0 + 4);
    ekv_do_item_t items[128];
    char keys[128][16], vals[128][32];
    for (int i = 0; i < 128; i++) {
        snprintf(keys[i], sizeof(keys[i]), "key-%03d", i);
        snprintf(vals[i], sizeof(vals[i]), "{\"i\":%d}", i);
        items[i] = i % 10 == 9 ? DEL(keys[i - 1]) : PUT(keys[i], vals[i]);
    }
    cr_assert_eq(
        dowrite(pst, do1, o, 1, items, 128, EKV_DO_ALARM_SET, 1700000000000LL, "obj-o", &seq), 0);
    cr_assert_eq(seq, s1 + 1);
    cr_assert_eq(ekv_store_last_seq(pst), s1 + 1);
    r = read_record(pst, s1 + 1);
    cr_assert_eq(r->op, EDGEKV__CHANGE_OP__DO_WRITE);
    cr_assert_eq(memcmp(r->namespace_id.data, do1, 16), 0);
    cr_assert_eq(r->object_id.len, 32);
    cr_assert_eq(memcmp(r->object_id.data, o, 32), 0);
    cr_assert(r->do_delete_all);
    cr_assert_eq(r->n_do_mutations, 128);
    for (int i = 0; i < 128; i++) {
        cr_assert_eq(r->do_mutations[i]->del, items[i].del != 0);
        cr_assert_eq(r->do_mutations[i]->key.len, items[i].key_len);
        cr_assert_eq(memcmp(r->do_mutations[i]->key.data, items[i].key, items[i].key_len), 0);
        if (!items[i].del) {
            cr_assert_eq(r->do_mutations[i]->value.len, items[i].value_len);
            cr_assert_eq(memcmp(r->do_mutations[i]->value.data, items[i].value, items[i].value_len),
                         0);
        }
    }
    cr_assert_eq(r->do_alarm_op, EDGEKV__DO_ALARM_OP__DO_ALARM_SET);
    cr_assert_eq(r->do_alarm_ms, 1700000000000LL);
    cr_assert_str_eq(r->do_object_name, "obj-o");
    edgekv__change_record__free_unpacked(r, NULL);
    get_eq(pst, do1, o, "pre-existing", NULL);
    get_eq(pst, do1, o, "key-000", "{\"i\":0}");
    get_eq(pst, do1, o, "key-008", NULL); /* deleted by item 9 */
    get_eq(pst, do1, o, "key-009", NULL); /* never put */
    get_eq(pst, do1, o, "key-127", "{\"i\":127}");
    expect_alarm(pst, do1, o, 1700000000000LL, "obj-o");

    /* more ops of every kind; each exactly one record */
    uint64_t s2 = ekv_store_last_seq(pst);
    ekv_do_item_t mix[] = {PUT("", "\"e\""), PUT("b\x00y", "1"), DEL("nothing")};
    mix[1].key_len = 3;
    cr_assert_eq(dowrite(pst, do1, p, 0, mix, 3, EKV_DO_ALARM_KEEP, 0, NULL, &seq), 0);
    cr_assert_eq(seq, s2 + 1);
    cr_assert_eq(dowrite(pst, do1, p, 0, NULL, 0, EKV_DO_ALARM_KEEP, 0, NULL, &seq), 0);
    cr_assert_eq(seq, s2 + 2); /* even an empty write is one record */
    cr_assert_eq(alarm_set(pst, do2, p, 33, NULL), 0);
    cr_assert_eq(put1(pst, do2, p, "x", "1"), 0);
    cr_assert_eq(ekv_store_last_seq(pst), s2 + 4);
    cr_assert_eq(ns_del(pst, DO2, ACC, &seq), 0);
    cr_assert_eq(seq, s2 + 5);
    r = read_record(pst, s2 + 5);
    cr_assert_eq(r->op, EDGEKV__CHANGE_OP__DO_NS_DELETE);
    cr_assert_eq(memcmp(r->namespace_id.data, do2, 16), 0);
    edgekv__change_record__free_unpacked(r, NULL);
    ekv_do_item_t one = PUT("k", "\"v\"");
    cr_assert_eq(dowrite(pst, do2, o, 0, &one, 1, EKV_DO_ALARM_SET, 77, "after-delete", &seq), 0);
    cr_assert_eq(seq, s2 + 6);
    cr_assert_eq(ekv_store_last_seq(pst), s2 + 6);

    /* the replica gets every record and the same data */
    uint64_t moved = stream();
    cr_assert_eq(moved, ekv_store_last_seq(pst));
    uint64_t np = 0, nr = 0;
    cr_assert_eq(sum_of(rst, &nr), sum_of(pst, &np));
    cr_assert_eq(nr, np);
    cr_assert_gt(np, 128 / 10 * 9); /* the object's keys are in the sum */
    same_load(pst, rst);
    same_object(pst, rst, do1, o);
    same_object(pst, rst, do1, p);
    same_object(pst, rst, do2, o);
    same_object(pst, rst, do2, p);
    same_objects(pst, rst, do1);
    same_objects(pst, rst, do2);
    get_eq(rst, do1, o, "key-127", "{\"i\":127}");
    get_eq(rst, do1, o, "pre-existing", NULL);
    expect_get(rst, do1, p, "b\x00y", 3, "1", 1);
    get_eq(rst, do1, p, "", "\"e\"");
    get_eq(rst, do2, p, "x", NULL);
    expect_alarm(rst, do1, o, 1700000000000LL, "obj-o");
    expect_alarm(rst, do2, o, 77, "after-delete");
    expect_no_alarm(rst, do2, p);
    loaded_t l;
    load(rst, &l);
    cr_assert_eq(l.nns, 1);
    ns_equal(&l.ns[0], &ns);

    /* the replica's log holds the primary's records verbatim */
    for (uint64_t sq = 1; sq <= ekv_store_last_seq(pst); sq++) {
        ekv_log_batch_t a, b;
        cr_assert_eq(ekv_store_log_read(pst, sq, 1, 1 << 20, &a), 0);
        cr_assert_eq(ekv_store_log_read(rst, sq, 1, 1 << 20, &b), 0);
        cr_assert_eq(a.count, 1);
        cr_assert_eq(b.count, 1);
        cr_assert_eq(a.recs[0].len, b.recs[0].len);
        cr_assert_eq(memcmp(a.recs[0].data, b.recs[0].data, a.recs[0].len), 0);
        ekv_log_batch_clear(&a);
        ekv_log_batch_clear(&b);
    }

    /* and follows later ops incrementally (delete_all on the replica too) */
    cr_assert_eq(dowrite(pst, do1, o, 1, NULL, 0, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);
    cr_assert_eq(ns_put_simple(pst, DO1, "renamed"), 0);
    cr_assert_eq(stream(), 2);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    get_eq(rst, do1, o, "key-000", NULL);
    expect_no_alarm(rst, do1, o);
    same_load(pst, rst);
}

Test(do_store, ops_in_one_group_commit)
{
    /* submitted back to back, ops share group commits: each still gets its own seq */
    uint8_t o[32];
    oid(o, 0x12, 0x34);
    enum { N = 40 };
    static ekv_write_t w[N];
    static ekv_do_item_t it[N];
    static char vals[N][16];
    memset(w, 0, sizeof(w));
    uint64_t s0 = ekv_store_last_seq(pst);
    for (int i = 0; i < N; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", i);
        it[i] = PUT("counter", vals[i]);
        w[i].type = EKV_OP_DO_WRITE;
        memcpy(w[i].nsid, do1, 16);
        memcpy(w[i].objid, o, 32);
        w[i].do_items = &it[i];
        w[i].do_nitems = 1;
        w[i].do_delete_all = i % 7 == 3;
        w[i].do_alarm_op = i % 5 == 0 ? EKV_DO_ALARM_SET : EKV_DO_ALARM_KEEP;
        w[i].do_alarm_ms = 1000 + i;
        w[i].do_object_name = "grouped";
    }
    for (int i = 0; i < N - 1; i++)
        cr_assert_eq(ekv_store_write_submit(pst, &w[i]), 0);
    cr_assert_eq(ekv_store_write_sync(pst, &w[N - 1]), 0);
    /* FIFO: the sync op completes after the others */
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].status, 0);
        cr_assert_eq(w[i].seq, s0 + 1 + (uint64_t)i);
    }
    cr_assert_eq(ekv_store_last_seq(pst), s0 + N);
    char last[16];
    snprintf(last, sizeof(last), "%d", N - 1);
    get_eq(pst, do1, o, "counter", last);
    /* the last SET was op 35, the last delete_all op 38 (after it): no alarm */
    expect_no_alarm(pst, do1, o);
    stream();
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    get_eq(rst, do1, o, "counter", last);
}

/* ---- snapshot ---- */

Test(do_store, snapshot_carries_dokv_and_doalarm)
{
    cr_assert_eq(account_create(pst), 0);
    cr_assert_eq(ns_op(pst, EKV_OP_NS_CREATE, NS1, "kv"), 0);
    cr_assert_eq(put_full(pst, ns1, "kvkey", "kvvalue", NULL, 0), 0);
    ekv_do_ns_t ns;
    ns_fill(&ns, DO1, ACC, "snap", "Snap", "https://s.example/s.js", 1, 3, 99);
    cr_assert_eq(ns_put(pst, &ns, NULL), 0);
    uint8_t o[32], p[32], q[32];
    oid(o, 0x01, 0x01);
    oid(p, 0x01, 0x02);
    oid(q, 0xff, 0xff);
    size_t nkv = 0, nal = 0;
    for (int i = 0; i < 20; i++) {
        char k[16], v[64];
        snprintf(k, sizeof(k), "k%02d", i);
        snprintf(v, sizeof(v), "{\"n\":%d,\"pad\":\"%040d\"}", i, i);
        cr_assert_eq(put1(pst, do1, i % 2 ? o : p, k, v), 0);
        nkv++;
    }
    cr_assert_eq(put1(pst, do1, q, "", "\"ff\""), 0);
    nkv++;
    cr_assert_eq(alarm_set(pst, do1, o, 111, "o"), 0);
    cr_assert_eq(alarm_set(pst, do1, q, 222, "q"), 0);
    cr_assert_eq(alarm_set(pst, do2, p, 333, ""), 0);
    nal = 3;

    /* the replica holds DO data of its own that the ingest must wipe */
    uint8_t stale[32];
    oid(stale, 0x99, 0x99);
    cr_assert_eq(put1(rst, do1, stale, "stale", "1"), 0);
    cr_assert_eq(alarm_set(rst, do1, stale, 1, "stale"), 0);

    uint64_t nk0 = 0, sum0 = sum_of(pst, &nk0);
    ekv_snapshot_t *sn = NULL;
    cr_assert_eq(ekv_store_snapshot_open(pst, &sn), 0);
    uint64_t snap_seq = ekv_store_snapshot_seq(sn);
    cr_assert_eq(snap_seq, ekv_store_last_seq(pst));

    /* writes after the snapshot are not in it */
    cr_assert_eq(put1(pst, do1, o, "later", "1"), 0);
    cr_assert_eq(dowrite(pst, do1, q, 1, NULL, 0, EKV_DO_ALARM_KEEP, 0, NULL, NULL), 0);

    cr_assert_eq(ekv_store_ingest_begin(rst), 0);
    int cf = 0;
    char key[512];
    size_t key_len = 0, seen_kv = 0, seen_al = 0;
    for (int done = 0, guard = 0; !done; guard++) {
        cr_assert_lt(guard, 1000);
        ekv_snapshot_pos_t after = {.cf = cf, .key = key, .key_len = key_len};
        ekv_snapshot_chunk_t c;
        cr_assert_eq(ekv_store_snapshot_next(sn, cf ? &after : NULL, 150, &c), 0);
        for (size_t i = 0; i < c.count; i++) {
            const ekv_snapshot_entry_t *e = &c.entries[i];
            if (e->cf == EKV_SNAP_CF_DOKV) {
                seen_kv++;
                cr_assert_geq(e->key_len, 48);
            }
            if (e->cf == EKV_SNAP_CF_DOALARM) {
                seen_al++;
                cr_assert_eq(e->key_len, 48);
                cr_assert_geq(e->value_len, 8);
            }
        }
        cr_assert_eq(ekv_store_ingest_chunk(rst, &c), 0);
        if (c.count) {
            cf = c.next.cf;
            cr_assert_lt(c.next.key_len, sizeof(key));
            memcpy(key, c.next.key, c.next.key_len);
            key_len = c.next.key_len;
        }
        done = c.done;
        ekv_snapshot_chunk_clear(&c);
    }
    cr_assert_eq(seen_kv, nkv);
    cr_assert_eq(seen_al, nal);
    cr_assert_eq(ekv_store_ingest_end(rst, snap_seq), 0);
    ekv_store_snapshot_close(sn);

    uint64_t nk1 = 0;
    cr_assert_eq(sum_of(rst, &nk1), sum0);
    cr_assert_eq(nk1, nk0);
    get_eq(rst, do1, stale, "stale", NULL);
    expect_no_alarm(rst, do1, stale);
    get_eq(rst, do1, o, "k01", "{\"n\":1,\"pad\":\"0000000000000000000000000000000000000001\"}");
    get_eq(rst, do1, q, "", "\"ff\"");
    get_eq(rst, do1, o, "later", NULL);
    expect_alarm(rst, do1, o, 111, "o");
    expect_alarm(rst, do1, q, 222, "q");
    expect_alarm(rst, do2, p, 333, "");
    loaded_t l;
    load(rst, &l);
    cr_assert_eq(l.nns, 1);
    ns_equal(&l.ns[0], &ns);

    /* then the log from snap_seq + 1 */
    cr_assert_eq(stream(), 2);
    cr_assert_eq(sum_of(rst, NULL), sum_of(pst, NULL));
    get_eq(rst, do1, o, "later", "1");
    get_eq(rst, do1, q, "", NULL);
    expect_no_alarm(rst, do1, q);
    same_load(pst, rst);
    same_objects(pst, rst, do1);
    same_objects(pst, rst, do2);
}

/* ---- reopen ---- */

Test(do_store, data_and_alarms_survive_reopen)
{
    ekv_do_ns_t ns;
    ns_fill(&ns, DO1, ACC2, "durable", "Durable", "https://s.example/d.js", 1, 250, 1);
    cr_assert_eq(ns_put(pst, &ns, NULL), 0);
    uint8_t o[32], p[32];
    oid(o, 0xab, 0xcd);
    oid(p, 0xab, 0xce);
    ekv_do_item_t items[] = {PUT("a", "1"), PUTB("\x00\xff", 2, "\"bin\""), PUT("", "\"e\"")};
    cr_assert_eq(dowrite(pst, do1, o, 0, items, 3, EKV_DO_ALARM_SET, 424242, "o-name", NULL), 0);
    cr_assert_eq(alarm_set(pst, do1, p, 5, "p-only"), 0);
    uint64_t last = ekv_store_last_seq(pst), sum = sum_of(pst, NULL);

    ekv_store_close(pst);
    pst = NULL;
    pst = open_store(pdir, 0, 0);
    cr_assert_eq(ekv_store_last_seq(pst), last);
    cr_assert_eq(sum_of(pst, NULL), sum);
    get_eq(pst, do1, o, "a", "1");
    expect_get(pst, do1, o, "\x00\xff", 2, "\"bin\"", 5);
    get_eq(pst, do1, o, "", "\"e\"");
    expect_alarm(pst, do1, o, 424242, "o-name");
    expect_alarm(pst, do1, p, 5, "p-only");
    loaded_t l;
    load(pst, &l);
    cr_assert_eq(l.nns, 1);
    ns_equal(&l.ns[0], &ns);
    uint8_t want[2][32];
    memcpy(want[0], o, 32);
    memcpy(want[1], p, 32);
    expect_objects(pst, do1, NULL, 10, (const uint8_t(*)[32])want, 2, 0);

    /* writes continue the sequence */
    uint64_t seq = 0;
    cr_assert_eq(dowrite(pst, do1, o, 1, NULL, 0, EKV_DO_ALARM_KEEP, 0, NULL, &seq), 0);
    cr_assert_eq(seq, last + 1);
    ekv_store_close(pst);
    pst = open_store(pdir, 0, 0);
    get_eq(pst, do1, o, "a", NULL);
    expect_no_alarm(pst, do1, o);
    expect_alarm(pst, do1, p, 5, "p-only");
    cr_assert_eq(ekv_store_last_seq(pst), last + 1);
}

/* ---- invalid namespace id ---- */

Test(do_store, all_ff_namespace_id_refused)
{
    /* DO_NS_PUT refuses the all-0xff namespace id (its key range has no successor); a
     * DO_WRITE naming it must be refused too, not abort the committer in delete_prefix */
    uint8_t ffns[16], ffobj[32], o[32];
    memset(ffns, 0xff, sizeof(ffns));
    oid(ffobj, 0xff, 0xff);
    oid(o, 0x01, 0x01);
    uint64_t before = ekv_store_last_seq(pst);
    ekv_do_item_t it = PUT("k", "1");
    cr_assert_eq(dowrite(pst, ffns, ffobj, 1, &it, 1, EKV_DO_ALARM_SET, 5, "x", NULL),
                 EKV_EBAD_NS_ID);
    cr_assert_eq(dowrite(pst, ffns, o, 0, &it, 1, EKV_DO_ALARM_KEEP, 0, NULL, NULL),
                 EKV_EBAD_NS_ID);
    cr_assert_eq(ekv_store_last_seq(pst), before);
    get_eq(pst, ffns, o, "k", NULL);
    /* the committer is alive */
    cr_assert_eq(put1(pst, do1, o, "k", "1"), 0);
    get_eq(pst, do1, o, "k", "1");

    /* a replicated record naming it is rejected and nothing is written */
    uint64_t rbefore = ekv_store_last_seq(rst);
    Edgekv__ChangeRecord rec = EDGEKV__CHANGE_RECORD__INIT;
    rec.seq = rbefore + 1;
    rec.op = EDGEKV__CHANGE_OP__DO_WRITE;
    rec.namespace_id.data = ffns;
    rec.namespace_id.len = sizeof(ffns);
    rec.object_id.data = ffobj;
    rec.object_id.len = sizeof(ffobj);
    rec.do_delete_all = 1;
    uint8_t buf[256];
    cr_assert_lt(edgekv__change_record__get_packed_size(&rec), sizeof(buf));
    size_t len = edgekv__change_record__pack(&rec, buf);
    ekv_log_record_t lr = {.seq = rec.seq, .data = buf, .len = len, .rec = NULL};
    ekv_log_batch_t b = {.recs = &lr, .count = 1, .bytes = len};
    cr_assert_neq(ekv_store_apply_records(rst, &b), 0);
    cr_assert_eq(ekv_store_last_seq(rst), rbefore);
    cr_assert_eq(put1(pst, do1, o, "k2", "2"), 0);
    stream();
    get_eq(rst, do1, o, "k2", "2");
}

/* ---- fencing by partition epoch (owners across the cluster) ---- */

static int fenced_write(ekv_store_t *s, const uint8_t *obj, uint64_t epoch, int fence_only,
                        const char *k, const char *v)
{
    ekv_do_item_t it = PUT(k ? k : "", v ? v : "");
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = fence_only ? EKV_OP_DO_FENCE : EKV_OP_DO_WRITE;
    memcpy(w.nsid, do0, EKV_NSID_LEN);
    memcpy(w.objid, obj, EKV_DO_OBJID_LEN);
    w.do_items = fence_only ? NULL : &it;
    w.do_nitems = fence_only ? 0 : 1;
    w.do_fenced = 1;
    w.do_partition = ekv_do_partition_of(obj);
    w.do_epoch = epoch;
    return ekv_store_write_sync(s, &w);
}

static int ptable(ekv_store_t *s, const char *bytes, const uint64_t *epochs)
{
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_DO_PTABLE;
    w.do_table = bytes;
    w.do_table_len = strlen(bytes);
    w.do_epochs = epochs;
    return ekv_store_write_sync(s, &w);
}

Test(do_store, writes_are_fenced_by_the_partition_epoch)
{
    cr_assert_eq(ns_put_simple(pst, DO0, "fence"), 0);
    uint8_t a[EKV_DO_OBJID_LEN], b[EKV_DO_OBJID_LEN];
    oid(a, 0x11, 1); /* partition (0x1111 >> 2) = 1092 */
    oid(b, 0x22, 1); /* partition 2184 */
    uint32_t pa = ((0x11u << 8) | 0x11u) >> 2;
    /* at open every epoch is 0 */
    cr_assert_eq(fenced_write(pst, a, 0, 0, "k", "1"), 0);
    cr_assert_eq(fenced_write(pst, a, 1, 0, "k", "2"), EKV_EDO_MOVED);
    get_eq(pst, do0, a, "k", "1");
    uint64_t last = ekv_store_last_seq(pst);
    /* a table change moves partition a (epoch 5); b keeps epoch 0 */
    uint64_t *ep = calloc(EKV_DO_PARTITIONS, sizeof(*ep));
    cr_assert_not_null(ep);
    ep[pa] = 5;
    cr_assert_eq(ptable(pst, "table-v5", ep), 0);
    cr_assert_eq(ekv_store_last_seq(pst), last + 1, "the table is one change record");
    Edgekv__ChangeRecord *r = read_record(pst, last + 1);
    cr_assert_eq(r->op, EDGEKV__CHANGE_OP__DO_PTABLE);
    cr_assert_eq(r->value.len, 8);
    cr_assert_eq(memcmp(r->value.data, "table-v5", 8), 0);
    edgekv__change_record__free_unpacked(r, NULL);
    char *stored = NULL;
    size_t len = 0;
    cr_assert_eq(ekv_store_do_ptable_get(pst, &stored, &len), 0);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(stored, "table-v5", 8), 0);
    free(stored);
    /* the old owner's write (epoch 0) is refused and writes nothing; the new one's lands */
    last = ekv_store_last_seq(pst);
    cr_assert_eq(fenced_write(pst, a, 0, 0, "k", "3"), EKV_EDO_MOVED);
    cr_assert_eq(fenced_write(pst, a, 0, 1, NULL, NULL), EKV_EDO_MOVED);
    cr_assert_eq(ekv_store_last_seq(pst), last, "a fenced write leaves no record");
    get_eq(pst, do0, a, "k", "1");
    cr_assert_eq(fenced_write(pst, a, 5, 1, NULL, NULL), 0);
    cr_assert_eq(ekv_store_last_seq(pst), last, "an epoch check leaves no record");
    cr_assert_eq(fenced_write(pst, a, 5, 0, "k", "4"), 0);
    get_eq(pst, do0, a, "k", "4");
    cr_assert_eq(fenced_write(pst, b, 0, 0, "k", "5"), 0, "other partitions are not touched");
    /* an unfenced write (standalone) is never checked */
    cr_assert_eq(put1(pst, do0, a, "u", "6"), 0);
    /* DO_EPOCHS (start-up, promotion) sets them without a record */
    ep[pa] = 7;
    last = ekv_store_last_seq(pst);
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_DO_EPOCHS;
    w.do_epochs = ep;
    cr_assert_eq(ekv_store_write_sync(pst, &w), 0);
    cr_assert_eq(ekv_store_last_seq(pst), last);
    cr_assert_eq(fenced_write(pst, a, 5, 0, "k", "8"), EKV_EDO_MOVED);
    cr_assert_eq(fenced_write(pst, a, 7, 0, "k", "9"), 0);
    /* a bad partition number is refused, not read out of bounds */
    ekv_write_t bad;
    memset(&bad, 0, sizeof(bad));
    bad.type = EKV_OP_DO_FENCE;
    bad.do_fenced = 1;
    bad.do_partition = EKV_DO_PARTITIONS;
    cr_assert_eq(ekv_store_write_sync(pst, &bad), EKV_EDO_MOVED);
    /* the replica stores the table record as it is */
    stream();
    cr_assert_eq(ekv_store_do_ptable_get(rst, &stored, &len), 0);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(stored, "table-v5", 8), 0);
    free(stored);
    free(ep);
}
