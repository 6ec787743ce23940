/*
 * report.c - summary.json, timeline.csv, latency.hgrm, report.html, and SLOs (report.h).
 */
#include "server/loadgen/report.h"

#include "common/buf.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- SLO */

int ekv_slo_parse(const char *s, ekv_slo_t *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->text, sizeof(out->text), "%s", s);
    const char *p = s;
    while (*p) {
        if (out->n == EKV_SLO_MAX_TERMS)
            return -1;
        char term[64];
        size_t len = strcspn(p, ",");
        if (!len || len >= sizeof(term))
            return -1;
        memcpy(term, p, len);
        term[len] = '\0';
        p += len + (p[len] == ',');
        char *le = strstr(term, "<=");
        if (!le)
            return -1;
        *le = '\0';
        const char *lhs = term, *rhs = le + 2;
        char *end;
        double v = strtod(rhs, &end);
        if (end == rhs || v < 0)
            return -1;
        if (!strcmp(lhs, "errors")) {
            if (strcmp(end, "%"))
                return -1;
            out->t[out->n].errors = 1;
            out->t[out->n].bound = v / 100.0;
        } else if (lhs[0] == 'p' && lhs[1]) {
            /* p50, p99, p999 (= 99.9), p9999, p99.5 */
            const char *d = lhs + 1;
            double pct;
            if (strchr(d, '.')) {
                char *pend;
                pct = strtod(d, &pend);
                if (*pend)
                    return -1;
            } else if (!strcmp(d, "100")) {
                pct = 100;
            } else {
                size_t nd = strlen(d);
                if (nd < 2 || strspn(d, "0123456789") != nd)
                    return -1;
                pct = strtod(d, NULL) / pow(10, (double)nd - 2);
            }
            if (!(pct > 0 && pct <= 100))
                return -1;
            double mul = !strcmp(end, "us")   ? 1
                         : !strcmp(end, "ms") ? 1000
                         : !strcmp(end, "s")  ? 1e6
                                              : -1;
            if (mul < 0)
                return -1;
            out->t[out->n].pct = pct;
            out->t[out->n].bound = v * mul;
        } else {
            return -1;
        }
        out->n++;
    }
    return out->n ? 0 : -1;
}

int ekv_slo_check(const ekv_slo_t *slo, const ekv_run_result_t *r, char *why, size_t cap)
{
    for (int i = 0; i < slo->n; i++) {
        if (slo->t[i].errors) {
            double share = r->st.all.ops ? (double)r->st.all.errors / (double)r->st.all.ops : 1;
            if (share > slo->t[i].bound) {
                if (why)
                    snprintf(why, cap, "errors %.3f%% > %.3f%%", share * 100,
                             slo->t[i].bound * 100);
                return 0;
            }
        } else {
            uint64_t v = ekv_hist_value_at(&r->st.all.resp, slo->t[i].pct);
            if (!r->st.all.ops || (double)v > slo->t[i].bound) {
                if (why)
                    snprintf(why, cap, "p%g %.3f ms > %.3f ms", slo->t[i].pct, (double)v / 1000,
                             slo->t[i].bound / 1000);
                return 0;
            }
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- summary.json */

static json_t *lat_json(const ekv_hist_t *h)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "p50", (json_int_t)ekv_hist_value_at(h, 50),
                     "p90", (json_int_t)ekv_hist_value_at(h, 90), "p99",
                     (json_int_t)ekv_hist_value_at(h, 99), "p999",
                     (json_int_t)ekv_hist_value_at(h, 99.9), "max",
                     (json_int_t)(h->total ? h->max : 0), "mean", ekv_hist_mean(h));
}

static json_t *op_json(const ekv_op_stats_t *s, double seconds)
{
    return json_pack("{s:I, s:I, s:f, s:{s:o, s:o}}", "requests", (json_int_t)s->ops, "errors",
                     (json_int_t)s->errors, "achieved_rps",
                     seconds > 0 ? (double)s->ops / seconds : 0, "latency_us", "response",
                     lat_json(&s->resp), "service", lat_json(&s->serv));
}

json_t *ekv_report_summary(const ekv_run_result_t *r, const ekv_report_meta_t *m,
                           const ekv_run_opts_t *o)
{
    const ekv_stats_t *st = &r->st;
    json_t *j = op_json(&st->all, r->seconds);
    json_object_set_new(j, "target_rps", json_real(r->target_rps));
    json_object_set_new(j, "late_sends", json_integer((json_int_t)st->late_sends));
    json_object_set_new(j, "seconds", json_real(r->seconds));
    json_object_set_new(j, "http_requests", json_integer((json_int_t)st->requests));
    json_object_set_new(j, "mode", json_string(r->target_rps > 0 ? "open" : "closed"));
    json_t *ops = json_object();
    for (int i = 0; i < EKV_OP__COUNT; i++)
        if (st->op[i].ops)
            json_object_set_new(ops, ekv_op_names[i], op_json(&st->op[i], r->seconds));
    json_object_set_new(j, "operations", ops);
    json_t *tg = json_array();
    for (int i = 0; i < o->ntargets; i++) {
        json_t *t = op_json(&st->target[i], r->seconds);
        json_object_set_new(t, "url", json_string(o->targets[i].url));
        json_array_append_new(tg, t);
    }
    json_object_set_new(j, "targets", tg);
    json_object_set_new(j, "status",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "transport_error",
                                  (json_int_t)st->status[0], "1xx", (json_int_t)st->status[1],
                                  "2xx", (json_int_t)st->status[2], "3xx",
                                  (json_int_t)st->status[3], "4xx", (json_int_t)st->status[4],
                                  "5xx", (json_int_t)st->status[5]));
    if (o->visibility)
        json_object_set_new(j, "visibility",
                            json_pack("{s:I, s:I, s:o}", "samples", (json_int_t)st->vis.total,
                                      "timeouts", (json_int_t)st->vis_timeouts, "lag_us",
                                      lat_json(&st->vis)));
    json_object_set_new(j, "config",
                        json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:f, s:f}", "workload",
                                  m->workload, "dist", m->dist, "urls", m->urls, "value_size",
                                  m->value_size, "connections", m->connections, "threads",
                                  m->threads, "keys", (json_int_t)m->keys, "seed",
                                  (json_int_t)m->seed, "warmup_s", (double)o->warmup_ns / 1e9,
                                  "duration_s", (double)o->duration_ns / 1e9));
    if (m->slo)
        json_object_set_new(j, "slo",
                            json_pack("{s:s, s:b}", "spec", m->slo->text, "met", m->slo_met));
    if (m->found_max_rps > 0)
        json_object_set_new(j, "max_rps_meeting_slo", json_real(m->found_max_rps));
    return j;
}

/* ---------------------------------------------------------------- files */

static FILE *open_in(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "edgekv-bench: cannot write %s: %s\n", path, strerror(errno));
    return f;
}

static int write_timeline(FILE *f, const ekv_run_result_t *r)
{
    fprintf(f, "second,ops,errors,late_sends,p50_us,p99_us,p999_us,max_us\n");
    for (size_t i = 0; i < r->nrows; i++) {
        const ekv_sec_row_t *w = &r->rows[i];
        fprintf(f, "%u,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", w->sec + 1,
                (unsigned long long)w->ops, (unsigned long long)w->errors,
                (unsigned long long)w->late_sends, (unsigned long long)w->p50_us,
                (unsigned long long)w->p99_us, (unsigned long long)w->p999_us,
                (unsigned long long)w->max_us);
    }
    return 0;
}

/* HdrHistogram's percentile distribution text (values in ms). */
static int write_hgrm(FILE *f, const ekv_hist_t *h)
{
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    size_t it = 0;
    uint64_t v, c, seen = 0;
    while (ekv_hist_next(h, &it, &v, &c)) {
        seen += c;
        double p = (double)seen / (double)h->total;
        if (p < 1)
            fprintf(f, "%12.3f %14.12f %10llu %14.2f\n", (double)v / 1000, p,
                    (unsigned long long)seen, 1 / (1 - p));
        else
            fprintf(f, "%12.3f %14.12f %10llu\n", (double)v / 1000, p, (unsigned long long)seen);
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", ekv_hist_mean(h) / 1000, 0.0);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
            (double)(h->total ? h->max : 0) / 1000, (unsigned long long)h->total);
    return 0;
}

/* ---------------------------------------------------------------- report.html */

#define W  720
#define H  240
#define ML 64
#define MR 16
#define MT 24
#define MB 36

typedef struct {
    double x[4096], y[4096];
    int n;
    const char *color, *name;
} series_t;

static void html_escape(ekv_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            ekv_buf_appends(b, "&lt;");
        else if (*s == '>')
            ekv_buf_appends(b, "&gt;");
        else if (*s == '&')
            ekv_buf_appends(b, "&amp;");
        else if (*s == '"')
            ekv_buf_appends(b, "&quot;");
        else
            ekv_buf_append(b, s, 1);
    }
}

/* A line chart of up to 3 series. logx: x is log10. */
static void chart(ekv_buf_t *b, const char *id, const char *title, const char *xlabel,
                  const char *ylabel, series_t *s, int ns, int logx)
{
    double x0 = INFINITY, x1 = -INFINITY, y1 = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (s[k].x[i] < x0)
                x0 = s[k].x[i];
            if (s[k].x[i] > x1)
                x1 = s[k].x[i];
            if (s[k].y[i] > y1)
                y1 = s[k].y[i];
        }
    if (!(x1 > x0)) {
        x0 = 0;
        x1 = x1 > 0 ? x1 : 1;
    }
    if (y1 <= 0)
        y1 = 1;
    y1 *= 1.08;
    double pw = W - ML - MR, ph = H - MT - MB;
    ekv_buf_appendf(
        b,
        "<section><h2>%s</h2><svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
        "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\">",
        title, id, W, H, W, H);
    ekv_buf_appendf(
        b,
        "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#ccc\"/>",
        ML, MT, pw, ph);
    for (int g = 0; g <= 4; g++) { /* y grid and labels */
        double y = MT + ph - ph * g / 4.0;
        ekv_buf_appendf(
            b,
            "<line x1=\"%d\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>"
            "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>",
            ML, ML + pw, y, y, ML - 6, y + 4, y1 * g / 4.0);
    }
    for (int g = 0; g <= 4; g++) { /* x labels */
        double xv = x0 + (x1 - x0) * g / 4.0;
        double x = ML + pw * g / 4.0;
        if (logx)
            ekv_buf_appendf(
                b,
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.4g%%</text>",
                x, H - MB + 16, 100.0 * (1 - pow(10, -xv)));
        else
            ekv_buf_appendf(
                b, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.4g</text>",
                x, H - MB + 16, xv);
    }
    ekv_buf_appendf(b,
                    "<text x=\"%.0f\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">%s</text>"
                    "<text x=\"14\" y=\"%.0f\" font-size=\"12\" text-anchor=\"middle\" "
                    "transform=\"rotate(-90 14 %.0f)\">%s</text>",
                    ML + pw / 2, H - 4, xlabel, MT + ph / 2, MT + ph / 2, ylabel);
    for (int k = 0; k < ns; k++) {
        ekv_buf_appendf(
            b,
            "<polyline class=\"series\" data-name=\"%s\" data-points=\"%d\" fill=\"none\" "
            "stroke=\"%s\" stroke-width=\"1.6\" points=\"",
            s[k].name, s[k].n, s[k].color);
        for (int i = 0; i < s[k].n; i++)
            ekv_buf_appendf(b, "%.1f,%.1f ", ML + pw * (s[k].x[i] - x0) / (x1 - x0),
                            MT + ph - ph * s[k].y[i] / y1);
        ekv_buf_appends(b, "\"/>");
        ekv_buf_appendf(b, "<text x=\"%.0f\" y=\"%d\" font-size=\"11\" fill=\"%s\">%s</text>",
                        ML + 8 + 110.0 * k, MT + 14, s[k].color, s[k].name);
    }
    ekv_buf_appends(b, "</svg></section>\n");
}

static void percentile_series(const ekv_hist_t *h, series_t *s)
{
    s->n = 0;
    size_t it = 0;
    uint64_t v, c, seen = 0;
    while (ekv_hist_next(h, &it, &v, &c) && s->n < 4095) {
        seen += c;
        double p = (double)seen / (double)h->total;
        double x = p >= 1 ? 6 : -log10(1 - p);
        if (x > 6)
            x = 6;
        s->x[s->n] = x;
        s->y[s->n] = (double)v / 1000;
        s->n++;
    }
}

static int write_html(FILE *f, const ekv_run_result_t *r, const json_t *summary)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    series_t *s = calloc(3, sizeof(series_t));
    if (!s)
        return -1;
    char *sj = json_dumps(summary, JSON_INDENT(2) | JSON_SORT_KEYS);
    ekv_buf_appends(
        &b, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>edgekv-bench report</title><style>body{font:14px sans-serif;margin:24px;"
            "color:#222}h1{font-size:20px}h2{font-size:15px;margin:18px 0 4px}"
            "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:3px 8px;"
            "text-align:right}pre{background:#f6f6f6;padding:8px;overflow:auto;"
            "max-height:320px}</style></head><body><h1>edgekv-bench report</h1>\n");
    const json_t *cfg = json_object_get(summary, "config");
    ekv_buf_appends(&b, "<p>");
    const char *wl = json_string_value(json_object_get(cfg, "workload"));
    html_escape(&b, wl ? wl : "");
    ekv_buf_appendf(&b,
                    " workload, %s loop, target %.0f ops/s, achieved %.1f ops/s, %llu operations, "
                    "%llu errors, %llu late sends, %.0f s measured.</p>\n",
                    r->target_rps > 0 ? "open" : "closed", r->target_rps, r->achieved_rps,
                    (unsigned long long)r->st.all.ops, (unsigned long long)r->st.all.errors,
                    (unsigned long long)r->st.late_sends, r->seconds);
    ekv_buf_appends(
        &b,
        "<table><tr><th></th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>");
    const ekv_hist_t *hs[2] = {&r->st.all.resp, &r->st.all.serv};
    const char *hn[2] = {"response (ms)", "service (ms)"};
    for (int k = 0; k < 2; k++)
        ekv_buf_appendf(
            &b,
            "<tr><th>%s</th><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td></tr>",
            hn[k], ekv_hist_value_at(hs[k], 50) / 1000.0, ekv_hist_value_at(hs[k], 90) / 1000.0,
            ekv_hist_value_at(hs[k], 99) / 1000.0, ekv_hist_value_at(hs[k], 99.9) / 1000.0,
            (hs[k]->total ? hs[k]->max : 0) / 1000.0);
    ekv_buf_appends(&b, "</table>\n");
    size_t n = r->nrows < 4096 ? r->nrows : 4096;
    /* throughput */
    s[0] = (series_t){.n = (int)n, .color = "#1f77b4", .name = "ops/s"};
    for (size_t i = 0; i < n; i++) {
        s[0].x[i] = r->rows[i].sec + 1;
        s[0].y[i] = (double)r->rows[i].ops;
    }
    chart(&b, "throughput", "Throughput", "second", "operations/s", s, 1, 0);
    /* latency over time */
    s[0] = (series_t){.n = (int)n, .color = "#2ca02c", .name = "p50"};
    s[1] = (series_t){.n = (int)n, .color = "#d62728", .name = "p99"};
    for (size_t i = 0; i < n; i++) {
        s[0].x[i] = s[1].x[i] = r->rows[i].sec + 1;
        s[0].y[i] = r->rows[i].p50_us / 1000.0;
        s[1].y[i] = r->rows[i].p99_us / 1000.0;
    }
    chart(&b, "latency", "Response time per second", "second", "ms", s, 2, 0);
    /* percentile curve */
    s[0].color = "#d62728";
    s[0].name = "response";
    s[1].color = "#1f77b4";
    s[1].name = "service";
    percentile_series(&r->st.all.resp, &s[0]);
    percentile_series(&r->st.all.serv, &s[1]);
    chart(&b, "percentiles", "Latency by percentile", "percentile", "ms", s, 2, 1);
    /* errors */
    s[0] = (series_t){.n = (int)n, .color = "#ff7f0e", .name = "errors/s"};
    for (size_t i = 0; i < n; i++) {
        s[0].x[i] = r->rows[i].sec + 1;
        s[0].y[i] = (double)r->rows[i].errors;
    }
    chart(&b, "errors", "Errors", "second", "errors/s", s, 1, 0);
    ekv_buf_appends(&b, "<h2>summary.json</h2><pre>");
    if (sj)
        html_escape(&b, sj);
    /* a check a browser runs on load: every series laid out with a length (tests read it) */
    ekv_buf_appends(&b, "</pre><script>addEventListener('load',function(){var r={};"
                        "document.querySelectorAll('svg.chart').forEach(function(svg){"
                        "var s=[];svg.querySelectorAll('polyline.series').forEach(function(p){"
                        "var b=p.getBBox();s.push({name:p.dataset.name,points:+p.dataset.points,"
                        "length:Math.round(p.getTotalLength()),width:Math.round(b.width)})});"
                        "r[svg.id]=s});document.documentElement.setAttribute('data-rendered',"
                        "JSON.stringify(r))});</script></body></html>\n");
    free(sj);
    free(s);
    int rc = fwrite(b.data, 1, b.len, f) == b.len ? 0 : -1;
    ekv_buf_deinit(&b);
    return rc;
}

int ekv_report_write(const char *dir, const ekv_run_result_t *r, const ekv_report_meta_t *m,
                     const ekv_run_opts_t *o)
{
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "edgekv-bench: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    json_t *sum = ekv_report_summary(r, m, o);
    int rc = 0;
    FILE *f = open_in(dir, "summary.json");
    if (!f || !sum || json_dumpf(sum, f, JSON_INDENT(2) | JSON_SORT_KEYS))
        rc = -1;
    if (f)
        fclose(f);
    if ((f = open_in(dir, "timeline.csv"))) {
        write_timeline(f, r);
        rc |= fclose(f);
    } else {
        rc = -1;
    }
    if ((f = open_in(dir, "latency.hgrm"))) {
        write_hgrm(f, &r->st.all.resp);
        rc |= fclose(f);
    } else {
        rc = -1;
    }
    if ((f = open_in(dir, "report.html"))) {
        rc |= write_html(f, r, sum);
        rc |= fclose(f);
    } else {
        rc = -1;
    }
    json_decref(sum);
    return rc ? -1 : 0;
}
