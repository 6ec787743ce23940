/*
 * alarm_sched.h - workerd's alarm retry schedule (alarm-scheduler.c++), pure: time and jitter
 * are the caller's.
 *
 * After a failed delivery: counted failures (the handler answered non-2xx) retry after
 * 2000 ms << retry_count, up to EKV_DO_ALARM_MAX_RETRIES counted retries, then give up (the
 * alarm is deleted); infrastructure failures (could not reach the handler) retry after
 * 2000 ms << min(internal_backoff, 9) and never give up nor count. Each delay gets a random
 * extra 0-25 % (jitter01 in [0, 1) scales it). The handler is told retryCount = retry_count
 * and isRetry = retry_count > 0 (workerd's alarmInfo).
 */
#ifndef EKV_SERVER_API_DO_ALARM_SCHED_H
#define EKV_SERVER_API_DO_ALARM_SCHED_H

#include <stdint.h>

#define EKV_DO_ALARM_MAX_RETRIES        6
#define EKV_DO_ALARM_BASE_MS            2000
#define EKV_DO_ALARM_MAX_INTERNAL_SHIFT 9

typedef struct {
    unsigned retry_count;      /* counted retries so far */
    unsigned internal_backoff; /* uncounted retries so far */
} ekv_do_alarm_retry_t;

typedef enum { EKV_DO_ALARM_RETRY = 1, EKV_DO_ALARM_GIVE_UP = 2 } ekv_do_alarm_next_t;

/* Update st after a failure; RETRY with *next_ms set, or GIVE_UP. */
ekv_do_alarm_next_t ekv_do_alarm_after_failure(ekv_do_alarm_retry_t *st, int counted,
                                               double jitter01, int64_t now_ms, int64_t *next_ms);

#endif
