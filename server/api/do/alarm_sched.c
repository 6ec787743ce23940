/*
 * alarm_sched.c - the alarm retry schedule (alarm_sched.h).
 */
#include "server/api/do/alarm_sched.h"

ekv_do_alarm_next_t ekv_do_alarm_after_failure(ekv_do_alarm_retry_t *st, int counted,
                                               double jitter01, int64_t now_ms, int64_t *next_ms)
{
    int64_t delay;
    if (counted) {
        if (st->retry_count >= EKV_DO_ALARM_MAX_RETRIES)
            return EKV_DO_ALARM_GIVE_UP;
        delay = (int64_t)EKV_DO_ALARM_BASE_MS << st->retry_count;
        st->retry_count++;
    } else {
        unsigned shift = st->internal_backoff < EKV_DO_ALARM_MAX_INTERNAL_SHIFT
                             ? st->internal_backoff
                             : EKV_DO_ALARM_MAX_INTERNAL_SHIFT;
        delay = (int64_t)EKV_DO_ALARM_BASE_MS << shift;
        if (st->internal_backoff < 64)
            st->internal_backoff++;
    }
    if (jitter01 < 0)
        jitter01 = 0;
    if (jitter01 >= 1)
        jitter01 = 0.999999;
    delay += (int64_t)((double)delay * 0.25 * jitter01);
    *next_ms = now_ms + delay;
    return EKV_DO_ALARM_RETRY;
}
