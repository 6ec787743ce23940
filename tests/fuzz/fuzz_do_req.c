/*
 * libFuzzer target for the Durable Object request parsers (server/api/do/): storage call
 * bodies (keys, entries), transactions, list queries and object ids - all untrusted client
 * bytes. Checks: the parsers never crash, leak or exceed their limits; what they accept
 * holds only keys and values within the namespace's limits; keys come out sorted and unique;
 * a list range is well formed; an accepted transaction evaluates against an empty store
 * without error; an id that parses prints back as the same 64 hex digits (lowercased).
 */
#include "server/api/do/ids.h"
#include "server/api/do/list_opts.h"
#include "server/api/do/storage_req.h"
#include "server/api/do/txn.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int lookup_none(void *ctx, const char *key, size_t key_len, const char **value,
                       size_t *value_len)
{
    (void)ctx;
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    return 0;
}

static void check_ops(const ekv_do_ops_t *o, const ekv_do_limits_t *lim, int sorted)
{
    if (o->n > EKV_DO_MAX_KEYS)
        abort();
    for (size_t i = 0; i < o->n; i++) {
        char msg[256];
        if (ekv_do_check_key(lim, o->ops[i].key_len, o->ops[i].value ? o->ops[i].value_len : 0, msg,
                             sizeof(msg)))
            abort();
        if (sorted && i) {
            const ekv_do_op_t *a = &o->ops[i - 1], *b = &o->ops[i];
            size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
            int c = memcmp(a->key, b->key, n);
            if (c > 0 || (c == 0 && a->key_len >= b->key_len))
                abort(); /* sorted, no duplicate */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    char msg[256];
    for (int sqlite = 0; sqlite < 2; sqlite++) {
        ekv_do_limits_t lim = {.use_sqlite = sqlite};
        ekv_do_ops_t o;
        if (ekv_do_parse_keys(in, size, &lim, &o, msg, sizeof(msg)) == 0) {
            check_ops(&o, &lim, 1);
            ekv_do_ops_free(&o);
        } else if (o.n || o.ops) {
            abort();
        }
        if (ekv_do_parse_entries(in, size, &lim, &o, msg, sizeof(msg)) == 0) {
            check_ops(&o, &lim, 0);
            ekv_do_ops_free(&o);
        } else if (o.n || o.ops) {
            abort();
        }
        ekv_do_txn_t t;
        if (ekv_do_txn_parse(in, size, &lim, &t, msg, sizeof(msg)) == 0) {
            if (t.nchecks > EKV_DO_MAX_KEYS)
                abort();
            check_ops(&t.then_ops, &lim, 0);
            check_ops(&t.else_ops, &lim, 0);
            int r = ekv_do_txn_eval(&t, lookup_none, NULL);
            if (r < 0)
                abort();
            ekv_do_txn_free(&t);
        }
    }
    ekv_do_list_range_t r;
    if (ekv_do_list_parse(in, size, &r, msg, sizeof(msg)) == 0) {
        if (!r.lo || r.limit < 1 || r.limit > EKV_DO_LIST_MAX_LIMIT || (r.has_hi && !r.hi))
            abort();
        if (!r.empty && r.has_hi && ekv_do_list_range_contains(&r, r.hi, r.hi_len))
            abort(); /* the upper bound is exclusive */
        ekv_do_list_range_free(&r);
    }
    static const uint8_t key[EKV_DO_NS_KEY_LEN] = {7};
    uint8_t id[EKV_DO_ID_LEN];
    if (ekv_do_id_parse(key, in, size, id) == 0) {
        char hex[EKV_DO_ID_HEX_LEN + 1];
        ekv_do_id_hex(id, hex);
        for (size_t i = 0; i < EKV_DO_ID_HEX_LEN; i++)
            if (hex[i] != tolower((unsigned char)in[i]))
                abort();
    }
    return 0;
}
