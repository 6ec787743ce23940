/*
 * report.h - what edgekv-bench writes (--out DIR) and how it judges an SLO.
 *
 *   summary.json   requests, errors, target_rps, achieved_rps, late_sends, seconds,
 *                  latency_us.{response,service}.{p50,p90,p99,p999,max,mean} overall, and the
 *                  same per operation (operations.NAME) and per target (targets[]), status
 *                  classes, visibility lag, the SLO and whether it held
 *   timeline.csv   one row per second: ops, errors, late sends, response p50/p99/p99.9/max
 *   latency.hgrm   the response-time percentile distribution in HdrHistogram's text format
 *   report.html    one self-contained page (no script, font or file from anywhere else):
 *                  throughput and p50/p99 over time, the percentile curve (response and
 *                  service), errors over time, drawn as inline SVG
 *
 * SLO: "p99<=5ms,errors<=0.1%" - comma-separated terms; a percentile term is pNN[.N] (p50,
 * p99, p999 = 99.9, p9999) with a duration in us, ms or s; "errors<=X%" is the share of
 * failed operations. A term holds when the measured value is <= its bound.
 */
#ifndef EKV_LOADGEN_REPORT_H
#define EKV_LOADGEN_REPORT_H

#include "server/loadgen/engine.h"

#include <jansson.h>

#define EKV_SLO_MAX_TERMS 8

typedef struct {
    struct {
        int errors;   /* 1: the error-share term */
        double pct;   /* percentile (e.g. 99.9) */
        double bound; /* us, or a fraction for errors */
    } t[EKV_SLO_MAX_TERMS];
    int n;
    char text[128];
} ekv_slo_t;

/* 0 or -1 (bad syntax). */
int ekv_slo_parse(const char *s, ekv_slo_t *out);
/* 1 when every term holds for r; why (optional) gets the first term that failed. */
int ekv_slo_check(const ekv_slo_t *slo, const ekv_run_result_t *r, char *why, size_t cap);

/* What the report says about the run (for summary.json and report.html). */
typedef struct {
    const char *workload, *dist, *urls, *value_size;
    int connections, threads;
    uint64_t keys, seed;
    const ekv_slo_t *slo; /* NULL: none */
    int slo_met;
    double found_max_rps; /* --find-max: the highest rate that met the SLO (0: none) */
} ekv_report_meta_t;

json_t *ekv_report_summary(const ekv_run_result_t *r, const ekv_report_meta_t *m,
                           const ekv_run_opts_t *o);
/* Write the four files into dir (created if missing). 0 or -1 (errno, message on stderr). */
int ekv_report_write(const char *dir, const ekv_run_result_t *r, const ekv_report_meta_t *m,
                     const ekv_run_opts_t *o);

#endif
