#include "server/http/metrics.h"
#include "common/errors.h"

#include <stdlib.h>
#include <string.h>

static const int statuses[] = {200, 400, 401, 403, 404, 405, 408, 413, 414, 429, 431, 500, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]) + 1) /* + "other" */
static const double buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                 0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct {
    uint64_t by_status[NSTATUS];
    uint64_t hist[NBUCKETS + 1];
    double sum_s;
    uint64_t count;
} route_metrics_t;

struct ekv_metrics_s {
    size_t nroutes;
    const char *const *names;
    route_metrics_t *r; /* nroutes + 1 (last = unmatched) */
    uint64_t bytes_in, bytes_out;
};

ekv_metrics_t *ekv_metrics_new(size_t nroutes, const char *const *route_names)
{
    ekv_metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->r = calloc(nroutes + 1, sizeof(*m->r));
    if (!m->r) {
        free(m);
        return NULL;
    }
    m->nroutes = nroutes;
    m->names = route_names;
    return m;
}

void ekv_metrics_free(ekv_metrics_t *m)
{
    if (!m)
        return;
    free(m->r);
    free(m);
}

void ekv_metrics_observe(ekv_metrics_t *m, int route, int status, uint64_t dur_ns, size_t bytes_in,
                         size_t bytes_out)
{
    route_metrics_t *r =
        &m->r[route < 0 || (size_t)route >= m->nroutes ? m->nroutes : (size_t)route];
    size_t si = NSTATUS - 1;
    for (size_t i = 0; i < NSTATUS - 1; i++) {
        if (statuses[i] == status) {
            si = i;
            break;
        }
    }
    r->by_status[si]++;
    double s = (double)dur_ns / 1e9;
    size_t b = 0;
    while (b < NBUCKETS && s > buckets[b])
        b++;
    r->hist[b]++;
    r->sum_s += s;
    r->count++;
    m->bytes_in += bytes_in;
    m->bytes_out += bytes_out;
}

int ekv_metrics_gauge(ekv_buf_t *out, const char *name, const char *help, double v)
{
    return ekv_buf_appendf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
                           v);
}

int ekv_metrics_counter(ekv_buf_t *out, const char *name, const char *help, double v)
{
    return ekv_buf_appendf(out, "# HELP %s %s\n# TYPE %s counter\n%s %.17g\n", name, help, name,
                           name, v);
}

int ekv_metrics_render(const ekv_metrics_t *m, ekv_buf_t *out)
{
    int rc = ekv_buf_appends(out, "# HELP edgekv_http_requests_total HTTP requests by route and "
                                  "status.\n# TYPE edgekv_http_requests_total counter\n");
    for (size_t i = 0; i <= m->nroutes && !rc; i++) {
        const char *name = i < m->nroutes ? m->names[i] : "unmatched";
        for (size_t s = 0; s < NSTATUS && !rc; s++) {
            if (!m->r[i].by_status[s])
                continue;
            if (s < NSTATUS - 1)
                rc = ekv_buf_appendf(
                    out, "edgekv_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n", name,
                    statuses[s], (unsigned long long)m->r[i].by_status[s]);
            else
                rc = ekv_buf_appendf(out,
                                     "edgekv_http_requests_total{route=\"%s\",status=\"other\"} "
                                     "%llu\n",
                                     name, (unsigned long long)m->r[i].by_status[s]);
        }
    }
    if (!rc)
        rc = ekv_buf_appends(out, "# HELP edgekv_http_request_duration_seconds Time from the "
                                  "first byte of a request to its reply being queued.\n"
                                  "# TYPE edgekv_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i <= m->nroutes && !rc; i++) {
        const route_metrics_t *r = &m->r[i];
        if (!r->count)
            continue;
        const char *name = i < m->nroutes ? m->names[i] : "unmatched";
        uint64_t cum = 0;
        for (size_t b = 0; b < NBUCKETS && !rc; b++) {
            cum += r->hist[b];
            rc = ekv_buf_appendf(out,
                                 "edgekv_http_request_duration_seconds_bucket{route=\"%s\","
                                 "le=\"%g\"} %llu\n",
                                 name, buckets[b], (unsigned long long)cum);
        }
        if (!rc)
            rc = ekv_buf_appendf(out,
                                 "edgekv_http_request_duration_seconds_bucket{route=\"%s\","
                                 "le=\"+Inf\"} %llu\n"
                                 "edgekv_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n"
                                 "edgekv_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                                 name, (unsigned long long)r->count, name, r->sum_s, name,
                                 (unsigned long long)r->count);
    }
    if (!rc)
        rc = ekv_metrics_counter(out, "edgekv_http_rx_bytes_total",
                                 "Request bytes received (bodies of routed requests).",
                                 (double)m->bytes_in);
    if (!rc)
        rc = ekv_metrics_counter(out, "edgekv_http_tx_bytes_total", "Response bytes sent.",
                                 (double)m->bytes_out);
    return rc;
}
