/*
 * workload.c - workloads and their requests (see workload.h).
 */
#include "server/loadgen/workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const ekv_op_names[EKV_OP__COUNT] = {"read", "update", "insert", "scan",  "rmw",
                                                 "bulk", "do_get", "do_put", "do_txn"};

static const ekv_workload_t workloads[] = {
    {"a", {[EKV_OP_READ] = 0.5, [EKV_OP_UPDATE] = 0.5}, 0, 0},
    {"b", {[EKV_OP_READ] = 0.95, [EKV_OP_UPDATE] = 0.05}, 0, 0},
    {"c", {[EKV_OP_READ] = 1}, 0, 0},
    {"d", {[EKV_OP_READ] = 0.95, [EKV_OP_INSERT] = 0.05}, 1, 0},
    {"e", {[EKV_OP_SCAN] = 0.95, [EKV_OP_INSERT] = 0.05}, 0, 0},
    {"f", {[EKV_OP_READ] = 0.5, [EKV_OP_RMW] = 0.5}, 0, 0},
    {"get", {[EKV_OP_READ] = 1}, 0, 0},
    {"put", {[EKV_OP_UPDATE] = 1}, 0, 0},
    {"bulk", {[EKV_OP_BULK] = 1}, 0, 0},
    {"do", {[EKV_OP_DO_GET] = 0.45, [EKV_OP_DO_PUT] = 0.45, [EKV_OP_DO_TXN] = 0.1}, 0, 1},
};

const ekv_workload_t *ekv_workload_find(const char *name)
{
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        if (!strcmp(workloads[i].name, name))
            return &workloads[i];
    return NULL;
}

const char *ekv_workload_names(void)
{
    return "a b c d e f get put bulk do";
}

void ekv_key_name(uint64_t i, char out[EKV_KEY_LEN + 1])
{
    snprintf(out, EKV_KEY_LEN + 1, "k%012llu", (unsigned long long)(i % 1000000000000ull));
}

int ekv_values_parse(const char *s, size_t *min, size_t *max)
{
    char *end;
    unsigned long long a = strtoull(s, &end, 10), b = a;
    if (end == s)
        return -1;
    if (*end == '-') {
        const char *t = end + 1;
        b = strtoull(t, &end, 10);
        if (end == t)
            return -1;
    }
    if (*end || a < 1 || b < a || b > (1u << 20))
        return -1;
    *min = a;
    *max = b;
    return 0;
}

int ekv_values_init(ekv_values_t *v, size_t min, size_t max, uint64_t seed)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    v->min = min;
    v->max = max;
    v->pool_len = max + 65536;
    v->pool = malloc(v->pool_len);
    if (!v->pool)
        return -1;
    ekv_rng_t r;
    ekv_rng_seed(&r, seed ^ 0x5a5a);
    for (size_t i = 0; i < v->pool_len; i++)
        v->pool[i] = alnum[ekv_rng_next(&r) % 62];
    return 0;
}

void ekv_values_free(ekv_values_t *v)
{
    free(v->pool);
    v->pool = NULL;
}

const char *ekv_values_pick(const ekv_values_t *v, ekv_rng_t *rng, size_t *len)
{
    size_t n = v->min == v->max ? v->min : v->min + ekv_rng_next(rng) % (v->max - v->min + 1);
    *len = n;
    return v->pool + ekv_rng_next(rng) % (v->pool_len - n + 1);
}

ekv_op_kind_t ekv_workload_pick(const ekv_workload_t *w, ekv_rng_t *rng)
{
    double u = ekv_rng_unit(rng), acc = 0;
    int last = EKV_OP_READ;
    for (int i = 0; i < EKV_OP__COUNT; i++) {
        if (w->mix[i] <= 0)
            continue;
        last = i;
        acc += w->mix[i];
        if (u < acc)
            return (ekv_op_kind_t)i;
    }
    return (ekv_op_kind_t)last;
}

/* A JSON string of a value from the pool (alphanumeric: nothing to escape). */
static int json_value(ekv_buf_t *b, const ekv_values_t *vals, ekv_rng_t *rng)
{
    size_t len;
    const char *v = ekv_values_pick(vals, rng, &len);
    int rc = ekv_buf_append(b, "\"", 1);
    rc |= ekv_buf_append(b, v, len);
    return rc | ekv_buf_append(b, "\"", 1);
}

int ekv_workload_request(ekv_op_kind_t op, int step, uint64_t key, const ekv_paths_t *p,
                         const ekv_values_t *vals, ekv_rng_t *rng, ekv_wreq_t *r)
{
    char k[EKV_KEY_LEN + 1];
    ekv_key_name(key, k);
    ekv_buf_reset(&r->body);
    r->json = 0;
    int rc = 0;
    if (step > 0 && op != EKV_OP_RMW)
        return 0;
    if (step > 1)
        return 0;
    switch (op) {
    case EKV_OP_READ:
        r->method = "GET";
        snprintf(r->target, sizeof(r->target), "%s/values/%s", p->kv_base, k);
        break;
    case EKV_OP_RMW:
        if (step == 0) {
            r->method = "GET";
            snprintf(r->target, sizeof(r->target), "%s/values/%s", p->kv_base, k);
            break;
        }
        /* the write half */
        __attribute__((fallthrough));
    case EKV_OP_UPDATE:
    case EKV_OP_INSERT: {
        size_t len;
        const char *v = ekv_values_pick(vals, rng, &len);
        r->method = "PUT";
        snprintf(r->target, sizeof(r->target), "%s/values/%s", p->kv_base, k);
        rc = ekv_buf_append(&r->body, v, len);
        break;
    }
    case EKV_OP_SCAN:
        /* a page of the keys sharing the first 9 characters (up to 1,000 keys) */
        r->method = "GET";
        snprintf(r->target, sizeof(r->target), "%s/keys?prefix=%.9s&limit=100", p->kv_base, k);
        break;
    case EKV_OP_BULK:
        r->method = "PUT";
        r->json = 1;
        snprintf(r->target, sizeof(r->target), "%s/bulk", p->kv_base);
        rc = ekv_buf_append(&r->body, "[", 1);
        for (int i = 0; i < EKV_BULK_ITEMS && !rc; i++) {
            char bk[EKV_KEY_LEN + 1];
            ekv_key_name(key + (uint64_t)i, bk);
            rc |= ekv_buf_appendf(&r->body, "%s{\"key\":\"%s\",\"value\":", i ? "," : "", bk);
            rc |= json_value(&r->body, vals, rng);
            rc |= ekv_buf_append(&r->body, "}", 1);
        }
        rc |= ekv_buf_append(&r->body, "]", 1);
        break;
    case EKV_OP_DO_GET:
    case EKV_OP_DO_PUT:
    case EKV_OP_DO_TXN: {
        if (!p->nobjects)
            return 0;
        const char *obj = p->objects[key % p->nobjects];
        const char *what = op == EKV_OP_DO_GET   ? "get"
                           : op == EKV_OP_DO_PUT ? "put"
                                                 : "transaction";
        r->method = "POST";
        r->json = 1;
        snprintf(r->target, sizeof(r->target), "%s/%s/storage/%s", p->do_base, obj, what);
        if (op == EKV_OP_DO_GET) {
            rc = ekv_buf_appendf(&r->body, "{\"keys\":[\"%s\"]}", k);
        } else if (op == EKV_OP_DO_PUT) {
            rc = ekv_buf_appendf(&r->body, "{\"entries\":{\"%s\":", k);
            rc |= json_value(&r->body, vals, rng);
            rc |= ekv_buf_append(&r->body, "}}", 2);
        } else { /* put the key unless it exists: a check and one of two branches */
            rc = ekv_buf_appendf(&r->body,
                                 "{\"checks\":[{\"key\":\"%s\",\"exists\":true}],\"then\":[],"
                                 "\"else\":[{\"op\":\"put\",\"key\":\"%s\",\"value\":",
                                 k, k);
            rc |= json_value(&r->body, vals, rng);
            rc |= ekv_buf_append(&r->body, "}]}", 3);
        }
        break;
    }
    default:
        return 0;
    }
    return rc ? -1 : 1;
}
