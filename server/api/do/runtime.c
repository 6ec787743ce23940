/*
 * runtime.c - start and stop the Durable Object runtime on the owner node, and its metrics.
 */
#include "common/errors.h"
#include "common/log.h"
#include "server/api/do/do_int.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_BODY ((size_t)32 << 20)

int ekv_do_start(ekv_app_t *app, const ekv_do_opts_t *o)
{
    if (app->dos)
        return 0;
    ekv_do_t *d = calloc(1, sizeof(*d));
    if (!d)
        return EKV_ENOMEM;
    d->app = app;
    d->o = *o;
    if (d->o.call_wait_ms <= 0)
        d->o.call_wait_ms = 10000;
    if (d->o.call_timeout_ms <= 0)
        d->o.call_timeout_ms = 30000;
    if (!d->o.call_queue_max)
        d->o.call_queue_max = 1000;
    if (d->o.alarm_retry_base_ms <= 0)
        d->o.alarm_retry_base_ms = 2000;
    if (!d->o.max_body_bytes)
        d->o.max_body_bytes = DEFAULT_MAX_BODY;
    ekv_bytemap_init(&d->nss);
    ekv_bytemap_init(&d->objs);
    ekv_http_client_opts_t ho;
    memset(&ho, 0, sizeof(ho));
    ho.max_conns = 64;
    ho.max_idle = 64;
    ho.max_queue = 100000; /* alarms due together queue here rather than fail */
    ho.timeout_ms = d->o.call_timeout_ms;
    ho.lim.max_body_bytes = d->o.max_body_bytes;
    int rc = ekv_http_client_new(app->loop, &ho, &d->http);
    if (rc) {
        ekv_bytemap_deinit(&d->nss, NULL);
        ekv_bytemap_deinit(&d->objs, NULL);
        free(d);
        return rc;
    }
    uv_timer_init(app->loop, &d->alarm_timer);
    uv_timer_init(app->loop, &d->call_timer);
    d->alarm_timer.data = d->call_timer.data = d;
    d->timers_open = 1;
    app->dos = d;
    if (d->o.no_store)
        return ekv__do_alarms_start(d); /* namespaces and alarms arrive from the primary */
    if ((rc = ekv__do_load(d)) != 0) {
        ekv_log_error("cannot load durable objects", "err=%s", ekv_err_name(rc));
        return rc; /* app->dos stays: ekv_do_stop frees it */
    }
    return ekv__do_alarms_start(d);
}

static void timer_closed(uv_handle_t *h)
{
    ekv_do_t *d = h->data;
    if (--d->timers_open > 0)
        return;
    void (*done)(void *) = d->stop_done;
    void *arg = d->stop_arg;
    free(d->heap);
    ekv__do_registry_free(d);
    free(d);
    if (done)
        done(arg);
}

static void free_obj(void *p)
{
    do_obj_t *o = p;
    ekv_bytemap_deinit(&o->overlay, free);
    free(o->alarm_name);
    free(o->dur_name);
    free(o);
}

static void http_closed(void *arg)
{
    ekv_do_t *d = arg;
    d->app->dos = NULL;
    /* every reply is out (the HTTP server drained first); what is left is idle state */
    ekv_bytemap_deinit(&d->objs, free_obj);
    d->timers_open = 2;
    uv_close((uv_handle_t *)&d->alarm_timer, timer_closed);
    uv_close((uv_handle_t *)&d->call_timer, timer_closed);
}

/* 1 when no object has a read or a write in flight (their completions touch it). */
static int quiescent(ekv_do_t *d)
{
    ekv_bytemap_iter_t it;
    void *val;
    ekv_bytemap_iter_init(&it, &d->objs);
    while (ekv_bytemap_iter_next(&it, NULL, NULL, &val)) {
        const do_obj_t *o = val;
        if (o->running || o->wsub != o->wdone || o->qhead || o->hhead)
            return 0;
    }
    return 1;
}

static void stop_check(uv_timer_t *t)
{
    ekv_do_t *d = t->data;
    if (!quiescent(d) && ++d->stop_waits < 500) /* at most 5 s: the committer drains fast */
        return;
    uv_timer_stop(t);
    ekv_http_client_close(d->http, http_closed, d);
}

int ekv_do_serving(const ekv_do_t *d)
{
    return d && !d->stopping;
}

void ekv_do_stop(ekv_do_t *d, void (*done)(void *arg), void *arg)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    d->stop_done = done;
    d->stop_arg = arg;
    uv_timer_stop(&d->alarm_timer);
    uv_timer_stop(&d->call_timer);
    /* calls in flight end with EKV_ESHUTDOWN now; storage work in flight finishes first */
    uv_timer_start(&d->alarm_timer, stop_check, 0, 10);
}

int ekv_do_metrics(ekv_do_t *d, ekv_buf_t *out)
{
    if (!d)
        return 0;
    return ekv_buf_appendf(
        out,
        "# HELP edgekv_do_namespaces Durable Object namespaces.\n"
        "# TYPE edgekv_do_namespaces gauge\nedgekv_do_namespaces %zu\n"
        "# HELP edgekv_do_objects_active Durable Objects in memory (queued work, alarms).\n"
        "# TYPE edgekv_do_objects_active gauge\nedgekv_do_objects_active %zu\n"
        "# HELP edgekv_do_alarms_scheduled Alarms waiting for their time.\n"
        "# TYPE edgekv_do_alarms_scheduled gauge\nedgekv_do_alarms_scheduled %zu\n"
        "# TYPE edgekv_do_storage_ops_total counter\nedgekv_do_storage_ops_total %llu\n"
        "# TYPE edgekv_do_writes_total counter\nedgekv_do_writes_total %llu\n"
        "# TYPE edgekv_do_resets_total counter\nedgekv_do_resets_total %llu\n"
        "# TYPE edgekv_do_calls_total counter\nedgekv_do_calls_total %llu\n"
        "# TYPE edgekv_do_call_errors_total counter\nedgekv_do_call_errors_total %llu\n"
        "# TYPE edgekv_do_call_gate_timeouts_total counter\n"
        "edgekv_do_call_gate_timeouts_total %llu\n"
        "# TYPE edgekv_do_alarms_delivered_total counter\nedgekv_do_alarms_delivered_total %llu\n"
        "# TYPE edgekv_do_alarm_retries_total counter\nedgekv_do_alarm_retries_total %llu\n"
        "# TYPE edgekv_do_alarms_given_up_total counter\nedgekv_do_alarms_given_up_total %llu\n",
        ekv_bytemap_count(&d->nss), ekv_bytemap_count(&d->objs), d->nheap,
        (unsigned long long)d->st.ops, (unsigned long long)d->st.writes,
        (unsigned long long)d->st.resets, (unsigned long long)d->st.calls,
        (unsigned long long)d->st.call_errors, (unsigned long long)d->st.gate_timeouts,
        (unsigned long long)d->st.alarms_delivered, (unsigned long long)d->st.alarm_retries,
        (unsigned long long)d->st.alarms_given_up);
}
