/*
 * alarms.c - the alarm schedule on the owner: a binary min-heap of objects by due time and
 * one uv timer for the earliest. The stored alarm (doalarm CF) is the truth. What ops see
 * (do_obj_t.alarm_*) follows every set/delete as it runs; the schedule follows only the
 * durable state (dur_*, updated when such a write is durable, ekv__do_alarm_changed), so an
 * alarm fires only once it would survive a crash, and a run delivers the durable alarm.
 *
 * A due alarm starts a run: the delivery is queued on the object's call domain (calls.c,
 * one call at a time with fetches). Success removes the alarm through a storage op
 * (DO_OP_ALARM_DONE) unless a new alarm was set during the run; failures retry on
 * workerd's schedule (alarm_sched.h: base << retryCount + 0-25 % jitter, 6 counted retries,
 * connection failures uncounted). A new alarm set while a run waits to retry replaces it.
 */
#include "common/clock.h"
#include "common/log.h"
#include "server/api/do/do_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- heap */

static void heap_set(ekv_do_t *d, size_t i, do_obj_t *o)
{
    d->heap[i] = o;
    o->heap_idx = i;
}

static void sift_up(ekv_do_t *d, size_t i)
{
    do_obj_t *o = d->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (d->heap[p]->due_ms <= o->due_ms)
            break;
        heap_set(d, i, d->heap[p]);
        i = p;
    }
    heap_set(d, i, o);
}

static void sift_down(ekv_do_t *d, size_t i)
{
    do_obj_t *o = d->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = o->due_ms;
        if (l < d->nheap && d->heap[l]->due_ms < best) {
            m = l;
            best = d->heap[l]->due_ms;
        }
        if (r < d->nheap && d->heap[r]->due_ms < best)
            m = r;
        if (m == i)
            break;
        heap_set(d, i, d->heap[m]);
        i = m;
    }
    heap_set(d, i, o);
}

static void heap_remove(ekv_do_t *d, do_obj_t *o)
{
    size_t i = o->heap_idx;
    if (i == SIZE_MAX)
        return;
    o->heap_idx = SIZE_MAX;
    do_obj_t *last = d->heap[--d->nheap];
    if (i < d->nheap) {
        heap_set(d, i, last);
        sift_down(d, i);
        sift_up(d, last->heap_idx);
    }
}

static int heap_push(ekv_do_t *d, do_obj_t *o)
{
    if (d->nheap == d->heapcap) {
        size_t ncap = d->heapcap ? d->heapcap * 2 : 256;
        do_obj_t **n = realloc(d->heap, ncap * sizeof(*n));
        if (!n)
            return -1;
        d->heap = n;
        d->heapcap = ncap;
    }
    heap_set(d, d->nheap++, o);
    sift_up(d, o->heap_idx);
    return 0;
}

/* ---------------------------------------------------------------- timer */

static void arm(ekv_do_t *d)
{
    if (d->stopping || !d->timers_open)
        return;
    if (!d->nheap) {
        uv_timer_stop(&d->alarm_timer);
        return;
    }
    /* the loop's cached time may be a whole iteration old: the timer counts from it */
    uv_update_time(d->app->loop);
    int64_t wait = d->heap[0]->due_ms - ekv_clock_now_ms();
    if (wait < 0)
        wait = 0;
    if (wait > 60000)
        wait = 60000; /* re-check the wall clock at least every minute */
    uv_timer_start(&d->alarm_timer, ekv__do_alarm_tick, (uint64_t)wait, 0);
}

static void place(do_obj_t *o, int64_t due)
{
    ekv_do_t *d = o->rt;
    heap_remove(d, o);
    o->due_ms = due;
    if (heap_push(d, o))
        ekv_log_error("alarm not scheduled (out of memory)", "due_ms=%lld", (long long)due);
    arm(d);
}

void ekv__do_alarm_schedule(do_obj_t *o)
{
    if (o->moved || !ekv__do_here(o->rt, o->key))
        return; /* another node owns it now (and loads its alarm) */
    if (o->dur_ms >= 0 && !o->alarm_running)
        place(o, o->dur_ms);
}

void ekv__do_alarm_unschedule(do_obj_t *o)
{
    heap_remove(o->rt, o);
    o->alarm_running = 0;
    arm(o->rt);
}

void ekv__do_alarm_changed(do_obj_t *o)
{
    if (o->moved || !ekv__do_here(o->rt, o->key)) {
        heap_remove(o->rt, o);
        o->alarm_running = 0;
        arm(o->rt);
        return;
    }
    if (o->alarm_running && !o->alarm_delivering && o->dur_version != o->run_version) {
        /* a run waiting to retry is replaced by what was set (or deleted) since */
        o->alarm_running = 0;
        heap_remove(o->rt, o);
    }
    if (o->alarm_running)
        return; /* the run in flight decides when it ends */
    if (o->dur_ms >= 0) {
        place(o, o->dur_ms);
    } else {
        heap_remove(o->rt, o);
        arm(o->rt);
    }
}

void ekv__do_alarm_tick(uv_timer_t *t)
{
    ekv_do_t *d = t->data;
    int64_t now = ekv_clock_now_ms();
    /* bounded work per tick: the loop stays responsive with 100k alarms due at once */
    for (int n = 0; n < 1024 && d->nheap && d->heap[0]->due_ms <= now; n++) {
        do_obj_t *o = d->heap[0];
        heap_remove(d, o);
        ekv__do_obj_pin(o);
        if (!o->alarm_running && o->dur_ms >= 0) {
            o->alarm_running = 1;
            o->run_version = o->dur_version;
            o->run_ms = o->dur_ms;
            memset(&o->retry, 0, sizeof(o->retry));
        }
        if (o->alarm_running)
            ekv__do_call_alarm(o);
        ekv__do_obj_unpin(o);
    }
    if (d->nheap && d->heap[0]->due_ms <= now)
        uv_timer_start(&d->alarm_timer, ekv__do_alarm_tick, 0, 0);
    else
        arm(d);
}

/* ---------------------------------------------------------------- end of a delivery */

static double jitter01(void)
{
    return (double)(rand() % 1000000) / 1000000.0;
}

/* Called by calls.c when a delivery finished: ok (2xx), or a failure counted (the handler
 * answered non-2xx) or not (could not reach it). */
void ekv__do_alarm_delivered(do_obj_t *o, int ok, int counted)
{
    ekv_do_t *d = o->rt;
    o->alarm_delivering = 0;
    if (d->stopping) { /* the stored alarm stays: it runs again after the restart */
        o->alarm_running = 0;
        return;
    }
    int replaced = o->alarm_version != o->run_version;
    if (!ok && !replaced) {
        int64_t next = 0;
        ekv_do_alarm_next_t what =
            ekv_do_alarm_after_failure(&o->retry, counted, jitter01(), ekv_clock_now_ms(), &next);
        if (what == EKV_DO_ALARM_RETRY) {
            /* the base is a flag (tests shorten it): rescale workerd's 2 s schedule */
            int64_t now = ekv_clock_now_ms();
            int64_t delay = (next - now) * d->o.alarm_retry_base_ms / 2000;
            d->st.alarm_retries++;
            place(o, now + (delay > 0 ? delay : 0));
            return;
        }
        d->st.alarms_given_up++;
        ekv_log_warn("alarm given up after retries", "retries=%u", o->retry.retry_count);
    }
    if (ok)
        d->st.alarms_delivered++;
    o->alarm_running = 0;
    if (replaced) {
        ekv__do_alarm_schedule(o); /* the alarm set during the run (or none) */
        return;
    }
    /* remove the alarm that ran (a storage op, ordered with the object's other ops) */
    do_op_t *op = calloc(1, sizeof(*op));
    if (!op) {
        ekv_log_error("alarm not removed after its run (out of memory)", "%s", "");
        return;
    }
    op->kind = DO_OP_ALARM_DONE;
    op->version = o->run_version;
    ekv__do_obj_submit(o, op);
}

int ekv__do_alarms_start(ekv_do_t *d)
{
    arm(d);
    return 0;
}
