/*
 * workload.h - what edgekv-bench sends: the workloads (YCSB A-F on the Workers KV API, get,
 * put, bulk, do), their operation mix, and each operation's HTTP requests (pure: builds
 * requests, no I/O).
 *
 *   a  50 % read, 50 % update          d  95 % read (of the latest keys), 5 % insert
 *   b  95 % read,  5 % update          e  95 % scan (list: prefix, limit 100), 5 % insert
 *   c  100 % read                      f  50 % read, 50 % read-modify-write (GET then PUT)
 *   get, put   100 % read / update     bulk  100 % bulk write of 100 keys (PUT .../bulk)
 *   do  Durable Object storage on --objects objects: 45 % get, 45 % put, 10 % transaction
 *
 * A key index i names "k" + 12 digits; a value is --value-size bytes of [A-Za-z0-9] (or a
 * size drawn uniformly from a range). An operation is one or two requests (rmw: two); its
 * latency covers all of them.
 */
#ifndef EKV_LOADGEN_WORKLOAD_H
#define EKV_LOADGEN_WORKLOAD_H

#include "common/buf.h"
#include "server/loadgen/keydist.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    EKV_OP_READ = 0,
    EKV_OP_UPDATE,
    EKV_OP_INSERT,
    EKV_OP_SCAN,
    EKV_OP_RMW,
    EKV_OP_BULK,
    EKV_OP_DO_GET,
    EKV_OP_DO_PUT,
    EKV_OP_DO_TXN,
    EKV_OP__COUNT
} ekv_op_kind_t;

extern const char *const ekv_op_names[EKV_OP__COUNT];

typedef struct {
    const char *name;
    double mix[EKV_OP__COUNT]; /* weights, sum 1 */
    int latest;                /* reads follow the latest inserts (d) */
    int needs_do;              /* a Durable Object namespace (do) */
} ekv_workload_t;

/* By name (a..f, get, put, bulk, do); NULL when unknown. */
const ekv_workload_t *ekv_workload_find(const char *name);
/* The list of names, for --help. */
const char *ekv_workload_names(void);

#define EKV_KEY_LEN    13 /* "k" + 12 digits */
#define EKV_BULK_ITEMS 100

void ekv_key_name(uint64_t i, char out[EKV_KEY_LEN + 1]);

/* Values: a shared pool of printable random bytes; a value is a slice of it. */
typedef struct {
    char *pool;
    size_t pool_len;
    size_t min, max; /* value sizes */
} ekv_values_t;
/* "100" or "64-4096" (1 .. 1 MiB). 0 or -1. */
int ekv_values_parse(const char *s, size_t *min, size_t *max);
int ekv_values_init(ekv_values_t *v, size_t min, size_t max, uint64_t seed);
void ekv_values_free(ekv_values_t *v);
/* A value: *len bytes at the returned pointer (inside the pool). */
const char *ekv_values_pick(const ekv_values_t *v, ekv_rng_t *rng, size_t *len);

/* One HTTP request of an operation. */
typedef struct {
    const char *method;
    char target[512];
    ekv_buf_t body; /* owned (may be empty) */
    int json;       /* Content-Type: application/json */
} ekv_wreq_t;

typedef struct {
    char kv_base[256]; /* /client/v4/accounts/A/storage/kv/namespaces/NS */
    char do_base[256]; /* /client/v4/accounts/A/workers/durable_objects/namespaces/NS/objects */
    char (*objects)[65];
    size_t nobjects;
} ekv_paths_t;

/* Pick an operation kind by the workload's mix. */
ekv_op_kind_t ekv_workload_pick(const ekv_workload_t *w, ekv_rng_t *rng);
/*
 * Build request `step` (0, then 1 for rmw's PUT) of an operation on key index `key` into r
 * (r->body must be initialised; it is reset here). Returns 1 when built, 0 when the
 * operation has no such step.
 */
int ekv_workload_request(ekv_op_kind_t op, int step, uint64_t key, const ekv_paths_t *p,
                         const ekv_values_t *vals, ekv_rng_t *rng, ekv_wreq_t *r);

#endif
