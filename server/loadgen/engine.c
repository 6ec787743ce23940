/*
 * engine.c - the load engine (see engine.h).
 */
#include "server/loadgen/engine.h"

#include "server/http/client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS        1
#define VIS_EVERY_NS   100000000ull /* a visibility write every 100 ms */
#define VIS_POLL_MS    5
#define VIS_TIMEOUT_NS 10000000000ull
#define VIS_SLOTS      16
#define DRAIN_MS       5000 /* after the end: how long answers in flight are awaited */
#define SEC_RING       4

/* ---------------------------------------------------------------- stats */

static int op_stats_init(ekv_op_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    return ekv_hist_init(&s->resp, EKV_BENCH_HIGHEST_US) ||
                   ekv_hist_init(&s->serv, EKV_BENCH_HIGHEST_US)
               ? -1
               : 0;
}

static void op_stats_free(ekv_op_stats_t *s)
{
    ekv_hist_free(&s->resp);
    ekv_hist_free(&s->serv);
}

static void op_stats_merge(ekv_op_stats_t *d, const ekv_op_stats_t *s)
{
    d->ops += s->ops;
    d->errors += s->errors;
    ekv_hist_merge(&d->resp, &s->resp);
    ekv_hist_merge(&d->serv, &s->serv);
}

int ekv_stats_init(ekv_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    int rc = op_stats_init(&s->all);
    for (int i = 0; i < EKV_OP__COUNT; i++)
        rc |= op_stats_init(&s->op[i]);
    for (int i = 0; i < EKV_BENCH_MAX_TARGETS; i++)
        rc |= op_stats_init(&s->target[i]);
    rc |= ekv_hist_init(&s->vis, EKV_BENCH_HIGHEST_US);
    return rc ? -1 : 0;
}

void ekv_stats_free(ekv_stats_t *s)
{
    op_stats_free(&s->all);
    for (int i = 0; i < EKV_OP__COUNT; i++)
        op_stats_free(&s->op[i]);
    for (int i = 0; i < EKV_BENCH_MAX_TARGETS; i++)
        op_stats_free(&s->target[i]);
    ekv_hist_free(&s->vis);
}

int ekv_stats_merge(ekv_stats_t *d, const ekv_stats_t *s)
{
    op_stats_merge(&d->all, &s->all);
    for (int i = 0; i < EKV_OP__COUNT; i++)
        op_stats_merge(&d->op[i], &s->op[i]);
    for (int i = 0; i < EKV_BENCH_MAX_TARGETS; i++)
        op_stats_merge(&d->target[i], &s->target[i]);
    d->requests += s->requests;
    d->late_sends += s->late_sends;
    for (int i = 0; i < 6; i++)
        d->status[i] += s->status[i];
    d->vis_timeouts += s->vis_timeouts;
    ekv_hist_merge(&d->vis, &s->vis);
    return 0;
}

/* ---------------------------------------------------------------- shared state */

typedef struct {
    ekv_hist_t resp;
    uint64_t ops, errors, late;
    int64_t sec; /* which second this ring entry holds (-1: none) */
} sec_acc_t;

typedef struct run_s run_t;

typedef struct thread_s thread_t;

typedef struct {
    thread_t *t;
    int busy;
    ekv_op_kind_t op;
    uint64_t key;
    int step, target;
    int cls; /* the last answer's class: 0 transport error, 1..5 */
    uint64_t intended_ns, sent_ns;
    ekv_wreq_t req;
} slot_t;

typedef struct {
    thread_t *t;
    int busy, target, polling;
    uint64_t acked_ns, deadline_ns;
    char key[48], value[48];
    int pending_targets; /* targets still to see the value (bit mask) */
    uv_timer_t timer;
} vis_t;

struct thread_s {
    run_t *run;
    int idx;
    pthread_t tid;
    uv_loop_t loop;
    ekv_http_client_t *http;
    char auth[300]; /* "Bearer TOKEN" */
    uv_timer_t tick;
    ekv_keydist_t dist;
    ekv_rng_t rng;
    slot_t *slots;
    int *free_slots; /* indexes of the idle slots (a stack) */
    int cap, inflight, nfree;
    uint64_t next_i;  /* open loop: the next operation's index */
    double period_ns; /* open loop */
    uint64_t insert_next;
    ekv_stats_t st;
    /* the current second */
    int64_t cur_sec;
    ekv_hist_t sec_resp;
    uint64_t sec_ops, sec_errors, sec_late;
    /* visibility */
    vis_t vis[VIS_SLOTS];
    uint64_t next_vis_ns, vis_n;
    int stopping, stopped_sending;
    int failed;
};

struct run_s {
    const ekv_run_opts_t *o;
    uint64_t start_ns, measure_ns, end_ns;
    thread_t *threads;
    pthread_mutex_t mu;
    sec_acc_t ring[SEC_RING];
    _Atomic int finished; /* threads done */
};

static uint64_t now_ns(void)
{
    return uv_hrtime();
}

/* ---------------------------------------------------------------- per-second rows */

static void flush_second(thread_t *t)
{
    if (t->cur_sec < 0)
        return;
    run_t *r = t->run;
    pthread_mutex_lock(&r->mu);
    sec_acc_t *a = &r->ring[t->cur_sec % SEC_RING];
    if (a->sec == t->cur_sec) { /* else the second was already reported: totals only */
        ekv_hist_merge(&a->resp, &t->sec_resp);
        a->ops += t->sec_ops;
        a->errors += t->sec_errors;
        a->late += t->sec_late;
    }
    pthread_mutex_unlock(&r->mu);
    ekv_hist_reset(&t->sec_resp);
    t->sec_ops = t->sec_errors = t->sec_late = 0;
}

static void into_second(thread_t *t, uint64_t at_ns)
{
    int64_t s = (int64_t)((at_ns - t->run->measure_ns) / 1000000000ull);
    if (s != t->cur_sec) {
        flush_second(t);
        t->cur_sec = s;
    }
}

/* ---------------------------------------------------------------- operations */

static void pump(thread_t *t);
static int send_step(slot_t *s);

static void record(slot_t *s, int ok, uint64_t done_ns)
{
    thread_t *t = s->t;
    run_t *r = t->run;
    int closed = r->o->rate <= 0;
    uint64_t at = closed ? done_ns : s->intended_ns;
    if (at < r->measure_ns || at >= r->end_ns)
        return;
    uint64_t resp = (done_ns - s->intended_ns) / 1000, serv = (done_ns - s->sent_ns) / 1000;
    int late = !closed && s->sent_ns - s->intended_ns > EKV_BENCH_LATE_NS;
    ekv_op_stats_t *parts[3] = {&t->st.all, &t->st.op[s->op], &t->st.target[s->target]};
    for (int i = 0; i < 3; i++) {
        parts[i]->ops++;
        parts[i]->errors += !ok;
        ekv_hist_record(&parts[i]->resp, resp);
        ekv_hist_record(&parts[i]->serv, serv);
    }
    t->st.late_sends += late;
    t->st.status[s->cls]++;
    into_second(t, done_ns);
    ekv_hist_record(&t->sec_resp, resp);
    t->sec_ops++;
    t->sec_errors += !ok;
    t->sec_late += late;
}

static void slot_done(slot_t *s, int ok)
{
    thread_t *t = s->t;
    record(s, ok, now_ns());
    s->busy = 0;
    t->free_slots[t->nfree++] = (int)(s - t->slots);
    t->inflight--;
    pump(t);
}

static void on_answer(void *ctx, int err, const ekv_http_response_t *resp)
{
    slot_t *s = ctx;
    thread_t *t = s->t;
    t->st.requests++;
    if (err) {
        s->cls = 0;
        slot_done(s, 0);
        return;
    }
    int cls = resp->status / 100;
    s->cls = cls >= 1 && cls <= 5 ? cls : 0;
    int ok = cls == 2 || (s->op == EKV_OP_RMW && s->step == 0 && resp->status == 404);
    if (ok && s->step == 0 && s->op == EKV_OP_RMW && !t->stopping) {
        s->step = 1;
        if (send_step(s) == 0)
            return;
        ok = 0;
    }
    slot_done(s, ok);
}

static int send_step(slot_t *s)
{
    thread_t *t = s->t;
    const ekv_run_opts_t *o = t->run->o;
    if (ekv_workload_request(s->op, s->step, s->key, o->paths, o->values, &t->rng, &s->req) <= 0)
        return -1;
    ekv_http_header_t h[2] = {{"Authorization", t->auth}, {"Content-Type", "application/json"}};
    ekv_http_request_t q = {0};
    q.method = s->req.method;
    q.host = o->targets[s->target].host;
    q.port = o->targets[s->target].port;
    q.target = s->req.target;
    q.headers = h;
    q.nheaders = s->req.json ? 2 : 1;
    q.body = s->req.body.data;
    q.body_len = s->req.body.len;
    q.flags = EKV_HTTP_BORROW_BODY; /* the slot's buffer lives until the answer */
    q.timeout_ms = o->timeout_ms;
    return ekv_http_client_send(t->http, &q, on_answer, s, NULL) ? -1 : 0;
}

/* Start an operation in a free slot. */
static void start_op(thread_t *t, uint64_t intended_ns, uint64_t seq)
{
    const ekv_run_opts_t *o = t->run->o;
    if (!t->nfree)
        return;
    slot_t *s = &t->slots[t->free_slots[--t->nfree]];
    s->busy = 1;
    t->inflight++;
    s->op = o->load ? EKV_OP_BULK : ekv_workload_pick(o->workload, &t->rng);
    s->key = o->load ? seq * EKV_BULK_ITEMS
             : s->op == EKV_OP_INSERT
                 ? (o->workload->latest ? ekv_keydist_insert(&t->dist) : t->insert_next++)
                 : ekv_keydist_next(&t->dist);
    s->step = 0;
    s->target = (int)(seq % (uint64_t)o->ntargets);
    s->intended_ns = intended_ns;
    s->sent_ns = now_ns();
    if (send_step(s)) {
        s->cls = 0;
        slot_done(s, 0);
    }
}

/* ---------------------------------------------------------------- visibility */

static void vis_send_poll(vis_t *v);

static void on_vis_timer(uv_timer_t *h)
{
    vis_send_poll(h->data);
}

static void vis_free(vis_t *v)
{
    v->busy = 0;
}

static void on_vis_poll(void *ctx, int err, const ekv_http_response_t *resp)
{
    vis_t *v = ctx;
    thread_t *t = v->t;
    uint64_t now = now_ns();
    if (!err && resp->status == 200 && resp->body_len == strlen(v->value) &&
        !memcmp(resp->body, v->value, resp->body_len)) {
        ekv_hist_record(&t->st.vis, (now - v->acked_ns) / 1000);
        v->pending_targets &= ~(1 << v->target);
    } else if (now > v->deadline_ns) {
        t->st.vis_timeouts++;
        v->pending_targets &= ~(1 << v->target);
    }
    if (!v->pending_targets || t->stopping) {
        vis_free(v);
        return;
    }
    uv_timer_start(&v->timer, on_vis_timer, VIS_POLL_MS, 0);
}

/* One visibility request (a GET polling target, or the PUT through target 0). */
static int vis_send(vis_t *v, const char *method, int target, const char *body, ekv_http_cb cb)
{
    thread_t *t = v->t;
    const ekv_run_opts_t *o = t->run->o;
    char path[512];
    snprintf(path, sizeof(path), "%s/values/%s", o->paths->kv_base, v->key);
    ekv_http_header_t h[1] = {{"Authorization", t->auth}};
    ekv_http_request_t q = {0};
    q.method = method;
    q.host = o->targets[target].host;
    q.port = o->targets[target].port;
    q.target = path;
    q.headers = h;
    q.nheaders = 1;
    q.body = body;
    q.body_len = body ? strlen(body) : 0;
    q.timeout_ms = o->timeout_ms;
    return ekv_http_client_send(t->http, &q, cb, v, NULL);
}

static void vis_send_poll(vis_t *v)
{
    thread_t *t = v->t;
    const ekv_run_opts_t *o = t->run->o;
    if (t->stopping) {
        vis_free(v);
        return;
    }
    int target = 1;
    while (target < o->ntargets && !(v->pending_targets & (1 << target)))
        target++;
    if (target >= o->ntargets) {
        vis_free(v);
        return;
    }
    v->target = target;
    if (vis_send(v, "GET", target, NULL, on_vis_poll))
        uv_timer_start(&v->timer, on_vis_timer, VIS_POLL_MS, 0);
}

static void on_vis_written(void *ctx, int err, const ekv_http_response_t *resp)
{
    vis_t *v = ctx;
    if (err || resp->status != 200 || v->t->stopping) {
        vis_free(v);
        return;
    }
    v->acked_ns = now_ns();
    v->deadline_ns = v->acked_ns + VIS_TIMEOUT_NS;
    v->pending_targets = ((1 << v->t->run->o->ntargets) - 1) & ~1;
    vis_send_poll(v);
}

static void vis_start(thread_t *t)
{
    vis_t *v = NULL;
    for (int i = 0; i < VIS_SLOTS; i++)
        if (!t->vis[i].busy) {
            v = &t->vis[i];
            break;
        }
    if (!v)
        return;
    v->busy = 1;
    snprintf(v->key, sizeof(v->key), "vis-%d-%llu", t->idx, (unsigned long long)t->vis_n);
    snprintf(v->value, sizeof(v->value), "v%llu-%llu", (unsigned long long)t->vis_n,
             (unsigned long long)now_ns());
    t->vis_n++;
    if (vis_send(v, "PUT", 0, v->value, on_vis_written))
        vis_free(v);
}

/* ---------------------------------------------------------------- the schedule */

static void client_closed(void *arg)
{
    thread_t *t = arg;
    uv_close((uv_handle_t *)&t->tick, NULL);
    for (int i = 0; i < VIS_SLOTS; i++)
        uv_close((uv_handle_t *)&t->vis[i].timer, NULL);
}

static void finish(thread_t *t)
{
    if (t->stopping)
        return;
    t->stopping = 1;
    uv_timer_stop(&t->tick);
    for (int i = 0; i < VIS_SLOTS; i++)
        uv_timer_stop(&t->vis[i].timer);
    ekv_http_client_close(t->http, client_closed, t); /* fails what is still pending */
}

static void pump(thread_t *t)
{
    run_t *r = t->run;
    const ekv_run_opts_t *o = r->o;
    if (t->stopping)
        return;
    uint64_t now = now_ns();
    if (now < r->start_ns)
        return;        /* every thread starts at the same instant */
    if (o->rate > 0) { /* everything due before the end is sent, late or not */
        for (;;) {
            uint64_t due = r->start_ns + (uint64_t)((double)t->next_i * t->period_ns);
            if (due > now || due >= r->end_ns || t->inflight >= t->cap)
                break;
            start_op(t, due, t->next_i * (uint64_t)o->threads + (uint64_t)t->idx);
            t->next_i++;
        }
        uint64_t next = r->start_ns + (uint64_t)((double)t->next_i * t->period_ns);
        if (now >= r->end_ns && next < r->end_ns && now < r->end_ns + DRAIN_MS * 1000000ull)
            return; /* still due: wait for a free slot (a hung server: at most DRAIN_MS) */
    }
    if (now >= r->end_ns) {
        t->stopped_sending = 1;
        if (!t->inflight || now >= r->end_ns + DRAIN_MS * 1000000ull)
            finish(t);
        return;
    }
    if (o->rate <= 0) {
        while (t->inflight < t->cap) {
            uint64_t seq = t->next_i * (uint64_t)o->threads + (uint64_t)t->idx;
            if (o->load && seq * EKV_BULK_ITEMS >= o->keys) { /* every key written */
                t->stopped_sending = 1;
                if (!t->inflight)
                    finish(t);
                return;
            }
            start_op(t, now, seq);
            t->next_i++;
        }
    }
    if (o->visibility && t->idx == 0 && o->ntargets > 1 && now >= t->next_vis_ns &&
        now >= r->measure_ns) {
        t->next_vis_ns = now + VIS_EVERY_NS;
        vis_start(t);
    }
}

static void on_tick(uv_timer_t *h)
{
    thread_t *t = h->data;
    uint64_t now = now_ns();
    if (now >= t->run->measure_ns)
        into_second(t, now); /* a quiet thread still hands its seconds over */
    pump(t);
}

static void *thread_main(void *arg)
{
    thread_t *t = arg;
    uv_timer_start(&t->tick, on_tick, 0, TICK_MS);
    uv_run(&t->loop, UV_RUN_DEFAULT);
    flush_second(t);
    atomic_fetch_add(&t->run->finished, 1);
    return NULL;
}

static int thread_init(thread_t *t, run_t *r, int idx)
{
    const ekv_run_opts_t *o = r->o;
    memset(t, 0, sizeof(*t));
    t->run = r;
    t->idx = idx;
    t->cur_sec = -1;
    snprintf(t->auth, sizeof(t->auth), "Bearer %s", o->token);
    int per = o->connections / o->threads + (idx < o->connections % o->threads ? 1 : 0);
    t->cap = per > 0 ? per : 1;
    t->slots = calloc((size_t)t->cap, sizeof(slot_t));
    t->free_slots = calloc((size_t)t->cap, sizeof(int));
    if (!t->slots || !t->free_slots || uv_loop_init(&t->loop) || ekv_stats_init(&t->st) ||
        ekv_hist_init(&t->sec_resp, EKV_BENCH_HIGHEST_US))
        return -1;
    for (int i = 0; i < t->cap; i++) {
        t->slots[i].t = t;
        ekv_buf_init(&t->slots[i].req.body, 64u << 20);
        t->free_slots[t->nfree++] = t->cap - 1 - i;
    }
    ekv_http_client_opts_t co = {0};
    co.max_conns = (size_t)t->cap;
    co.max_idle = (size_t)t->cap;
    co.max_queue = (size_t)t->cap + VIS_SLOTS;
    co.timeout_ms = o->timeout_ms;
    co.lim.max_body_bytes = 64u << 20;
    if (ekv_http_client_new(&t->loop, &co, &t->http))
        return -1;
    uint64_t seed = o->seed * 1000003ull + (uint64_t)idx;
    if (ekv_keydist_init(&t->dist, &o->dist, o->keys, seed))
        return -1;
    ekv_rng_seed(&t->rng, seed ^ 0xabcdef);
    t->insert_next = o->keys + (uint64_t)idx * 1000000000ull; /* new keys, not shared */
    if (o->rate > 0)
        t->period_ns = 1e9 / (o->rate / o->threads);
    uv_timer_init(&t->loop, &t->tick);
    t->tick.data = t;
    for (int i = 0; i < VIS_SLOTS; i++) {
        t->vis[i].t = t;
        uv_timer_init(&t->loop, &t->vis[i].timer);
        t->vis[i].timer.data = &t->vis[i];
    }
    return 0;
}

static void thread_free(thread_t *t)
{
    if (t->slots)
        for (int i = 0; i < t->cap; i++)
            ekv_buf_deinit(&t->slots[i].req.body);
    free(t->slots);
    free(t->free_slots);
    ekv_stats_free(&t->st);
    ekv_hist_free(&t->sec_resp);
    uv_loop_close(&t->loop);
}

/* ---------------------------------------------------------------- the run */

static void report_second(run_t *r, int64_t s, ekv_run_result_t *out)
{
    pthread_mutex_lock(&r->mu);
    sec_acc_t *a = &r->ring[s % SEC_RING];
    ekv_sec_row_t row = {0};
    row.sec = (uint32_t)s;
    if (a->sec == s) {
        row.ops = a->ops;
        row.errors = a->errors;
        row.late_sends = a->late;
        row.p50_us = ekv_hist_value_at(&a->resp, 50);
        row.p99_us = ekv_hist_value_at(&a->resp, 99);
        row.p999_us = ekv_hist_value_at(&a->resp, 99.9);
        row.max_us = a->resp.total ? a->resp.max : 0;
    }
    /* the entry now waits for second s + SEC_RING */
    ekv_hist_reset(&a->resp);
    a->ops = a->errors = a->late = 0;
    a->sec = s + SEC_RING;
    pthread_mutex_unlock(&r->mu);
    ekv_sec_row_t *rows = realloc(out->rows, (out->nrows + 1) * sizeof(*rows));
    if (rows) {
        out->rows = rows;
        out->rows[out->nrows++] = row;
    }
    if (r->o->on_second)
        r->o->on_second(r->o->ctx, &row);
}

int ekv_run(const ekv_run_opts_t *o, ekv_run_result_t *out)
{
    memset(out, 0, sizeof(*out));
    run_t r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    pthread_mutex_init(&r.mu, NULL);
    for (int i = 0; i < SEC_RING; i++) {
        if (ekv_hist_init(&r.ring[i].resp, EKV_BENCH_HIGHEST_US))
            return -1;
        r.ring[i].sec = i;
    }
    r.threads = calloc((size_t)o->threads, sizeof(thread_t));
    if (!r.threads || ekv_stats_init(&out->st))
        return -1;
    int rc = 0;
    for (int i = 0; i < o->threads && !rc; i++)
        rc = thread_init(&r.threads[i], &r, i);
    if (rc) {
        fprintf(stderr, "edgekv-bench: cannot set up the threads (out of memory?)\n");
        return -1;
    }
    r.start_ns = now_ns() + 20000000ull; /* every thread is running by then */
    r.measure_ns = r.start_ns + o->warmup_ns;
    r.end_ns = r.measure_ns + o->duration_ns;
    for (int i = 0; i < o->threads; i++)
        pthread_create(&r.threads[i].tid, NULL, thread_main, &r.threads[i]);
    /* the main thread reports each second 300 ms after it ended (threads hand theirs over) */
    int64_t nsec = (int64_t)((o->duration_ns + 999999999ull) / 1000000000ull);
    for (int64_t s = 0; s < nsec; s++) {
        uint64_t when = r.measure_ns + (uint64_t)(s + 1) * 1000000000ull + 300000000ull;
        uint64_t now;
        while ((now = now_ns()) < when && !(o->load && atomic_load(&r.finished) == o->threads)) {
            uint64_t d = when - now;
            if (d > 50000000ull)
                d = 50000000ull;
            struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
        if (o->load && atomic_load(&r.finished) == o->threads)
            break; /* the load phase ends when every key is written */
        report_second(&r, s, out);
    }
    uint64_t ended = now_ns();
    for (int i = 0; i < o->threads; i++) {
        pthread_join(r.threads[i].tid, NULL);
        ekv_stats_merge(&out->st, &r.threads[i].st);
        thread_free(&r.threads[i]);
    }
    free(r.threads);
    for (int i = 0; i < SEC_RING; i++)
        ekv_hist_free(&r.ring[i].resp);
    pthread_mutex_destroy(&r.mu);
    out->seconds = o->load ? (double)(ended - r.measure_ns) / 1e9 : (double)o->duration_ns / 1e9;
    out->target_rps = o->rate;
    out->achieved_rps = out->seconds > 0 ? (double)out->st.all.ops / out->seconds : 0;
    return 0;
}

void ekv_run_result_free(ekv_run_result_t *r)
{
    ekv_stats_free(&r->st);
    free(r->rows);
    r->rows = NULL;
}
