/*
 * engine.h - edgekv-bench's load engine: threads, each with its own libuv loop and HTTP
 * client (server/http/client.h), sending a workload's operations open loop (a fixed
 * schedule) or closed loop, and measuring them without coordinated omission.
 *
 * OPEN LOOP (rate > 0). Operation i of a thread is due at start + i / (rate / threads). Its
 * RESPONSE time is measured from that intended time, its SERVICE time from when it was
 * really sent (wrk2, YCSB's "intended" latency). At most connections / threads operations
 * are in flight per thread: a due operation waits for a free slot, and its response time
 * keeps counting meanwhile, so a server stall shows in the response time even though the
 * requests behind it could not be sent. An operation sent more than 10 ms after its
 * intended time is a LATE send (counted, not hidden). Nothing is buffered per waiting
 * operation: the schedule is an index.
 *
 * CLOSED LOOP (rate 0). Each slot sends its next operation when the previous one answered;
 * response time = service time.
 *
 * MEASUREMENT. Operations whose intended time (closed loop: completion) falls in the warm-up
 * are not recorded. Each thread keeps its histograms (hist.h: per operation kind, response
 * and service; per target; one for the current second) and merges the second into a shared
 * one when the second is over; the caller's progress callback gets each second's row. Memory
 * is fixed: histograms are allocated once, the timeline keeps a few numbers per second.
 */
#ifndef EKV_LOADGEN_ENGINE_H
#define EKV_LOADGEN_ENGINE_H

#include "server/loadgen/hist.h"
#include "server/loadgen/keydist.h"
#include "server/loadgen/workload.h"

#include <stdint.h>

#define EKV_BENCH_MAX_TARGETS 16
#define EKV_BENCH_HIGHEST_US  60000000ull /* 60 s */
#define EKV_BENCH_LATE_NS     10000000ull /* a send this late is counted */

typedef struct {
    char host[256];
    int port;
    char url[300];
} ekv_target_t;

struct ekv_sec_row_s;

typedef struct {
    ekv_target_t targets[EKV_BENCH_MAX_TARGETS];
    int ntargets;
    const char *token;
    const ekv_workload_t *workload;
    const ekv_paths_t *paths;
    const ekv_values_t *values;
    ekv_dist_spec_t dist;
    uint64_t keys;
    double rate; /* operations/s over all threads; 0: closed loop */
    int connections;
    int threads;
    uint64_t warmup_ns, duration_ns;
    int timeout_ms; /* per request */
    uint64_t seed;
    int visibility; /* writes through target 0 polled on the others */
    int load;       /* the load phase: bulk writes of keys 0..keys-1 in order, then stop */
    /* each finished second (main thread) */
    void (*on_second)(void *ctx, const struct ekv_sec_row_s *row);
    void *ctx;
} ekv_run_opts_t;

typedef struct ekv_sec_row_s {
    uint32_t sec; /* since the end of the warm-up */
    uint64_t ops, errors, late_sends;
    uint64_t p50_us, p99_us, p999_us, max_us; /* response time */
} ekv_sec_row_t;

typedef struct {
    uint64_t ops, errors;
    ekv_hist_t resp, serv;
} ekv_op_stats_t;

typedef struct {
    ekv_op_stats_t op[EKV_OP__COUNT];
    ekv_op_stats_t all;
    ekv_op_stats_t target[EKV_BENCH_MAX_TARGETS];
    uint64_t requests;     /* HTTP requests answered, warm-up included (rmw: two an operation) */
    uint64_t late_sends;   /* measured operations sent > 10 ms after their intended time */
    uint64_t status[6];    /* measured operations by their last answer's class: [0] transport
                            * error (refused, timeout...), [1..5] 1xx..5xx */
    uint64_t vis_timeouts; /* visibility: writes not seen on a target within 10 s */
    ekv_hist_t vis;        /* visibility lag (us): write acknowledged -> seen on a target */
} ekv_stats_t;

typedef struct {
    ekv_stats_t st;
    ekv_sec_row_t *rows; /* one per measured second */
    size_t nrows;
    double seconds;      /* the measured window */
    double target_rps;   /* rate (0: closed loop) */
    double achieved_rps; /* measured operations / seconds */
} ekv_run_result_t;

int ekv_stats_init(ekv_stats_t *s);
void ekv_stats_free(ekv_stats_t *s);
int ekv_stats_merge(ekv_stats_t *dst, const ekv_stats_t *src);

/* Run once. 0 (out filled; ekv_run_result_free it) or -1 (logged on stderr). */
int ekv_run(const ekv_run_opts_t *o, ekv_run_result_t *out);
void ekv_run_result_free(ekv_run_result_t *r);

#endif
