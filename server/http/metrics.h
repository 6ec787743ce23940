/*
 * metrics.h - request counters and latency histograms, rendered as Prometheus text.
 * Loop thread only (every observation happens where the reply is sent).
 */
#ifndef EKV_SERVER_HTTP_METRICS_H
#define EKV_SERVER_HTTP_METRICS_H

#include "common/buf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ekv_metrics_s ekv_metrics_t;

/* route_names[i] labels route i; one extra "unmatched" series is added. */
ekv_metrics_t *ekv_metrics_new(size_t nroutes, const char *const *route_names);
void ekv_metrics_free(ekv_metrics_t *m);
/* route < 0 = no route matched. */
void ekv_metrics_observe(ekv_metrics_t *m, int route, int status, uint64_t dur_ns, size_t bytes_in,
                         size_t bytes_out);
/* Append the request metrics (counters, histograms, bytes) in Prometheus text format. */
int ekv_metrics_render(const ekv_metrics_t *m, ekv_buf_t *out);

/* Helpers for other modules' series. */
int ekv_metrics_gauge(ekv_buf_t *out, const char *name, const char *help, double v);
int ekv_metrics_counter(ekv_buf_t *out, const char *name, const char *help, double v);

#endif
