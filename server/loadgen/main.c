/*
 * main.c - edgekv-bench: load testing for the Workers KV and Durable Objects API that measures
 * honestly (docs/LOADTEST.md). Command line, set-up (namespace, objects, the load phase),
 * the run or the max-rate search, the live progress line, the reports and the exit code:
 * 0 ok, 1 error, 2 SLO not met.
 */
#include "common/errors.h"
#include "server/http/client.h"
#include "server/loadgen/engine.h"
#include "server/loadgen/report.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OBJECTS 10000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: edgekv-bench --url URL[,URL...] --token T --account A [--namespace ID]\n"
            "         --workload NAME --rate N|0 --connections C --duration 30s --warmup 5s\n"
            "         --keys N --dist zipf:0.99|uniform|latest|hotspot:0.2:0.8\n"
            "         --value-size 100|64-4096 --out DIR [--slo 'p99<=5ms,errors<=0.1%%']\n"
            "         [--seed S] [--threads N] [--load] [--find-max] [--visibility]\n"
            "         [--objects N] [--do-namespace ID] [--timeout 10s] [--quiet]\n\n"
            "workloads: %s\n"
            "--rate N: open loop, N operations/s on a fixed schedule (latency from each\n"
            "  operation's intended send time: response; and from its real send: service);\n"
            "  --rate 0: closed loop at the maximum. Exit: 0 ok, 1 error, 2 SLO not met.\n"
            "See docs/LOADTEST.md.\n",
            ekv_workload_names());
}

/* "30s", "500ms", "2m", "1.5" (seconds) -> ns; 0 on error. */
static uint64_t parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return 0;
    double mul = !*end || !strcmp(end, "s") ? 1e9
                 : !strcmp(end, "ms")       ? 1e6
                 : !strcmp(end, "m")        ? 60e9
                                            : -1;
    return mul < 0 ? 0 : (uint64_t)(v * mul);
}

typedef struct {
    const char *urls, *token, *account, *ns, *do_ns, *workload, *dist, *value_size, *out, *slo;
    double rate;
    int connections, threads, load, find_max, visibility, quiet, objects;
    uint64_t duration_ns, warmup_ns, keys, seed, timeout_ns;
} args_t;

static int parse_args(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof(*a));
    a->workload = "get";
    a->dist = "zipf:0.99";
    a->value_size = "100";
    a->connections = 64;
    a->threads = 1;
    a->duration_ns = 30000000000ull;
    a->warmup_ns = 5000000000ull;
    a->keys = 10000;
    a->seed = 1;
    a->objects = 100;
    a->timeout_ns = 10000000000ull;
    a->rate = -1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define STR(name, field)                                                                           \
    if (!strcmp(f, name)) {                                                                        \
        if (!v)                                                                                    \
            goto missing;                                                                          \
        a->field = v;                                                                              \
        i++;                                                                                       \
        continue;                                                                                  \
    }
#define FLAG(name, field)                                                                          \
    if (!strcmp(f, name)) {                                                                        \
        a->field = 1;                                                                              \
        continue;                                                                                  \
    }
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        STR("--url", urls)
        STR("--token", token)
        STR("--account", account)
        STR("--namespace", ns)
        STR("--do-namespace", do_ns)
        STR("--workload", workload)
        STR("--dist", dist)
        STR("--value-size", value_size)
        STR("--out", out)
        STR("--slo", slo)
        FLAG("--load", load)
        FLAG("--find-max", find_max)
        FLAG("--visibility", visibility)
        FLAG("--quiet", quiet)
        if (!v)
            goto missing;
        char *end;
        if (!strcmp(f, "--rate")) {
            a->rate = strtod(v, &end);
            if (*end || a->rate < 0 || a->rate > 10e6)
                goto bad;
        } else if (!strcmp(f, "--connections") || !strcmp(f, "--threads") ||
                   !strcmp(f, "--objects")) {
            long n = strtol(v, &end, 10);
            int *slot = f[2] == 'c' ? &a->connections : f[2] == 't' ? &a->threads : &a->objects;
            if (*end || n < 1 || n > (f[2] == 't' ? 64 : f[2] == 'o' ? MAX_OBJECTS : 100000))
                goto bad;
            *slot = (int)n;
        } else if (!strcmp(f, "--keys") || !strcmp(f, "--seed")) {
            unsigned long long n = strtoull(v, &end, 10);
            if (*end || (f[2] == 'k' && (n < 1 || n > 1000000000000ull)))
                goto bad;
            if (f[2] == 'k')
                a->keys = n;
            else
                a->seed = n;
        } else if (!strcmp(f, "--duration") || !strcmp(f, "--warmup") || !strcmp(f, "--timeout")) {
            uint64_t ns = parse_duration(v);
            if (!ns && strcmp(f, "--warmup"))
                goto bad;
            if (!ns && strtod(v, NULL) != 0)
                goto bad;
            *(f[2] == 'd' ? &a->duration_ns : f[2] == 'w' ? &a->warmup_ns : &a->timeout_ns) = ns;
        } else {
            fprintf(stderr, "edgekv-bench: unknown flag %s (see --help)\n", f);
            return -1;
        }
        i++;
        continue;
    missing:
        fprintf(stderr, "edgekv-bench: %s needs a value\n", f);
        return -1;
    bad:
        fprintf(stderr, "edgekv-bench: bad value '%s' for %s\n", v, f);
        return -1;
    }
    if (!a->urls || !a->token || !a->account || a->rate < 0) {
        fprintf(stderr, "edgekv-bench: --url, --token, --account and --rate are required "
                        "(see --help)\n");
        return -1;
    }
    if (a->find_max && !a->slo) {
        fprintf(stderr, "edgekv-bench: --find-max needs --slo\n");
        return -1;
    }
    if (a->connections < a->threads) {
        fprintf(stderr, "edgekv-bench: --connections must be >= --threads\n");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- set-up (blocking) */

static json_t *call(const ekv_target_t *t, const char *token, const char *method, const char *path,
                    json_t *body, int *status)
{
    char url[1024], auth[300];
    snprintf(url, sizeof(url), "http://%s%s%s:%d%s", strchr(t->host, ':') ? "[" : "", t->host,
             strchr(t->host, ':') ? "]" : "", t->port, path);
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    ekv_http_header_t h[2] = {{"Authorization", auth}, {"Content-Type", "application/json"}};
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    ekv_http_response_t *r = NULL;
    int rc = ekv_http_fetch_sync(method, url, h, b ? 2 : 1, b, b ? strlen(b) : 0, 30000, &r);
    free(b);
    *status = rc ? -1 : r->status;
    json_t *j = rc ? NULL : json_loadb(r->body, r->body_len, 0, NULL);
    if (rc)
        fprintf(stderr, "edgekv-bench: %s %s: %s\n", method, url, ekv_err_name(rc));
    ekv_http_response_free(r);
    return j;
}

static const char *result_id(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "result"), "id"));
}

/* A namespace named "edgekv-bench" (found or created); kind "kv" or "do". */
static int find_or_create_ns(const ekv_target_t *t, const args_t *a, int kv, char out[65])
{
    char path[512];
    int st;
    if (kv)
        snprintf(path, sizeof(path), "/client/v4/accounts/%s/storage/kv/namespaces?per_page=100",
                 a->account);
    else
        snprintf(path, sizeof(path),
                 "/client/v4/accounts/%s/workers/durable_objects/namespaces?per_page=1000",
                 a->account);
    json_t *j = call(t, a->token, "GET", path, NULL, &st);
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(j, "result"), i, it)
    {
        const char *name = json_string_value(json_object_get(it, kv ? "title" : "name"));
        const char *id = json_string_value(json_object_get(it, "id"));
        if (name && id && !strcmp(name, "edgekv-bench") && strlen(id) < 65) {
            snprintf(out, 65, "%s", id);
            json_decref(j);
            return 0;
        }
    }
    json_decref(j);
    *strchr(path, '?') = '\0';
    j = call(t, a->token, "POST", path,
             kv ? json_pack("{s:s}", "title", "edgekv-bench")
                : json_pack("{s:s, s:s}", "name", "edgekv-bench", "class", "Bench"),
             &st);
    const char *id = result_id(j);
    int rc = id && strlen(id) < 65 ? 0 : -1;
    if (!rc)
        snprintf(out, 65, "%s", id);
    else
        fprintf(stderr, "edgekv-bench: cannot create the %s namespace (status %d)\n",
                kv ? "KV" : "Durable Object", st);
    json_decref(j);
    return rc;
}

static int object_ids(const ekv_target_t *t, const args_t *a, const char *ns, ekv_paths_t *p)
{
    p->objects = calloc((size_t)a->objects, sizeof(*p->objects));
    if (!p->objects)
        return -1;
    char path[512];
    snprintf(path, sizeof(path),
             "/client/v4/accounts/%s/workers/durable_objects/namespaces/%s/objects/ids", a->account,
             ns);
    for (int i = 0; i < a->objects; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bench-%d", i);
        int st;
        json_t *j = call(t, a->token, "POST", path, json_pack("{s:s}", "name", name), &st);
        const char *id = result_id(j);
        if (!id || strlen(id) != 64) {
            fprintf(stderr, "edgekv-bench: cannot get object id %d (status %d)\n", i, st);
            json_decref(j);
            return -1;
        }
        snprintf(p->objects[i], 65, "%s", id);
        json_decref(j);
        p->nobjects++;
    }
    return 0;
}

/* ---------------------------------------------------------------- progress */

typedef struct {
    int quiet;
} progress_t;

static void on_second(void *ctx, const ekv_sec_row_t *row)
{
    progress_t *p = ctx;
    if (p->quiet)
        return;
    fprintf(stderr, "[%4us] %9.1f ops/s  errors %-6llu p50 %8.3f ms  p99 %8.3f ms  late %llu\n",
            row->sec + 1, (double)row->ops, (unsigned long long)row->errors, row->p50_us / 1000.0,
            row->p99_us / 1000.0, (unsigned long long)row->late_sends);
}

static void print_summary(const ekv_run_result_t *r)
{
    fprintf(stderr, "%llu operations, %llu errors, %.1f ops/s (target %.0f), late sends %llu\n",
            (unsigned long long)r->st.all.ops, (unsigned long long)r->st.all.errors,
            r->achieved_rps, r->target_rps, (unsigned long long)r->st.late_sends);
    const ekv_hist_t *h[2] = {&r->st.all.resp, &r->st.all.serv};
    const char *name[2] = {"response", "service "};
    for (int i = 0; i < 2; i++)
        fprintf(stderr, "%s ms: p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n", name[i],
                ekv_hist_value_at(h[i], 50) / 1e3, ekv_hist_value_at(h[i], 90) / 1e3,
                ekv_hist_value_at(h[i], 99) / 1e3, ekv_hist_value_at(h[i], 99.9) / 1e3,
                (h[i]->total ? h[i]->max : 0) / 1e3);
}

/* What run() allocates for the whole run, freed by main() on every exit path. */
static ekv_values_t vals;
static ekv_paths_t paths;

static int run(int argc, char **argv)
{
    args_t a;
    if (parse_args(argc, argv, &a))
        return 1;
    ekv_run_opts_t o;
    memset(&o, 0, sizeof(o));
    for (const char *p = a.urls; *p;) {
        size_t len = strcspn(p, ",");
        char u[1024];
        if (!len || len >= sizeof(u) || o.ntargets == EKV_BENCH_MAX_TARGETS) {
            fprintf(stderr, "edgekv-bench: bad --url list (at most %d URLs)\n",
                    EKV_BENCH_MAX_TARGETS);
            return 1;
        }
        memcpy(u, p, len);
        u[len] = '\0';
        ekv_http_url_t *pu = malloc(sizeof(*pu));
        if (!pu || ekv_http_url_parse(u, pu)) {
            fprintf(stderr, "edgekv-bench: bad URL '%s' (want http://HOST:PORT)\n", u);
            free(pu);
            return 1;
        }
        ekv_target_t *t = &o.targets[o.ntargets++];
        snprintf(t->host, sizeof(t->host), "%s", pu->host);
        t->port = pu->port;
        snprintf(t->url, sizeof(t->url), "%.299s", u);
        free(pu);
        p += len + (p[len] == ',');
    }
    o.workload = ekv_workload_find(a.workload);
    if (!o.workload) {
        fprintf(stderr, "edgekv-bench: unknown workload '%s' (%s)\n", a.workload,
                ekv_workload_names());
        return 1;
    }
    if (ekv_dist_parse(a.dist, &o.dist)) {
        fprintf(stderr, "edgekv-bench: bad --dist '%s'\n", a.dist);
        return 1;
    }
    if (o.workload->latest)
        o.dist.kind = EKV_DIST_LATEST, o.dist.theta = o.dist.theta > 0 ? o.dist.theta : 0.99;
    size_t vmin, vmax;
    if (ekv_values_parse(a.value_size, &vmin, &vmax) ||
        ekv_values_init(&vals, vmin, vmax, a.seed)) {
        fprintf(stderr, "edgekv-bench: bad --value-size '%s' (N or MIN-MAX, 1..1048576)\n",
                a.value_size);
        return 1;
    }
    ekv_slo_t slo;
    if (a.slo && ekv_slo_parse(a.slo, &slo)) {
        fprintf(stderr, "edgekv-bench: bad --slo '%s' (e.g. 'p99<=5ms,errors<=0.1%%')\n", a.slo);
        return 1;
    }
    /* namespaces and objects */
    char ns[65];
    if (a.ns)
        snprintf(ns, sizeof(ns), "%s", a.ns);
    else if (find_or_create_ns(&o.targets[0], &a, 1, ns))
        return 1;
    snprintf(paths.kv_base, sizeof(paths.kv_base),
             "/client/v4/accounts/%s/storage/kv/namespaces/%s", a.account, ns);
    if (o.workload->needs_do) {
        char dns[65];
        if (a.do_ns)
            snprintf(dns, sizeof(dns), "%s", a.do_ns);
        else if (find_or_create_ns(&o.targets[0], &a, 0, dns))
            return 1;
        snprintf(paths.do_base, sizeof(paths.do_base),
                 "/client/v4/accounts/%s/workers/durable_objects/namespaces/%s/objects", a.account,
                 dns);
        if (object_ids(&o.targets[0], &a, dns, &paths))
            return 1;
    }
    o.token = a.token;
    o.paths = &paths;
    o.values = &vals;
    o.keys = a.keys;
    o.connections = a.connections;
    o.threads = a.threads;
    o.warmup_ns = a.warmup_ns;
    o.duration_ns = a.duration_ns;
    o.timeout_ms = (int)(a.timeout_ns / 1000000);
    o.seed = a.seed;
    o.visibility = a.visibility;
    progress_t prog = {a.quiet};
    o.on_second = on_second;
    o.ctx = &prog;
    if (a.load) { /* the keyset, 100 keys a request, closed loop */
        ekv_run_opts_t lo = o;
        lo.load = 1;
        lo.rate = 0;
        lo.warmup_ns = 0;
        lo.duration_ns = 3600000000000ull;
        lo.visibility = 0;
        lo.on_second = NULL;
        ekv_run_result_t lr;
        fprintf(stderr, "loading %llu keys...\n", (unsigned long long)a.keys);
        if (ekv_run(&lo, &lr))
            return 1;
        fprintf(stderr, "loaded: %llu bulk writes in %.1f s, %llu errors\n",
                (unsigned long long)lr.st.all.ops, lr.seconds,
                (unsigned long long)lr.st.all.errors);
        int bad = lr.st.all.errors > 0;
        ekv_run_result_free(&lr);
        if (bad) {
            fprintf(stderr, "edgekv-bench: the load phase had errors\n");
            return 1;
        }
    }
    ekv_run_result_t r;
    double found = 0;
    int met = 1;
    char why[128] = "";
    if (!a.find_max) {
        o.rate = a.rate;
        if (ekv_run(&o, &r))
            return 1;
        if (a.slo)
            met = ekv_slo_check(&slo, &r, why, sizeof(why));
    } else { /* double while the SLO holds, then bisect between the last pass and the fail */
        double lo = 0, hi = 0, rate = a.rate > 0 ? a.rate : 1000;
        ekv_run_result_t best;
        int have_best = 0;
        for (int step = 0; step < 16; step++) {
            o.rate = rate;
            fprintf(stderr, "find-max: trying %.0f ops/s\n", rate);
            if (ekv_run(&o, &r))
                return 1;
            int ok = ekv_slo_check(&slo, &r, why, sizeof(why));
            fprintf(stderr, "find-max: %.0f ops/s %s%s%s\n", rate,
                    ok ? "meets the SLO" : "fails: ", ok ? "" : why, "");
            if (ok && r.achieved_rps >= rate * 0.99) {
                lo = rate;
                if (have_best)
                    ekv_run_result_free(&best);
                best = r;
                have_best = 1;
            } else {
                hi = rate;
                ekv_run_result_free(&r);
            }
            if (hi == 0)
                rate *= 2;
            else if (lo == 0)
                rate = hi / 2;
            else if ((hi - lo) / lo <= 0.05)
                break;
            else
                rate = (lo + hi) / 2;
            if (rate < 1)
                break;
        }
        if (!have_best) {
            fprintf(stderr, "find-max: no rate met the SLO\n");
            met = 0;
            o.rate = rate;
            if (ekv_run(&o, &r))
                return 1;
        } else {
            r = best;
            found = lo;
            fprintf(stderr, "find-max: %.0f ops/s is the highest rate that met %s\n", lo, slo.text);
        }
    }
    print_summary(&r);
    if (a.out) {
        ekv_report_meta_t m = {a.workload,          a.dist,    a.urls, a.value_size,
                               a.connections,       a.threads, a.keys, a.seed,
                               a.slo ? &slo : NULL, met,       found};
        if (ekv_report_write(a.out, &r, &m, &o)) {
            ekv_run_result_free(&r);
            return 1;
        }
    }
    int all_failed = r.st.all.ops > 0 && r.st.all.errors == r.st.all.ops;
    ekv_run_result_free(&r);
    if (all_failed) {
        fprintf(stderr, "edgekv-bench: every operation failed\n");
        return 1;
    }
    if (!met) {
        fprintf(stderr, "SLO not met: %s\n", why);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    int rc = run(argc, argv);
    ekv_values_free(&vals);
    free(paths.objects);
    return rc;
}
