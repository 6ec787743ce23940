/* Unit tests for server/api/do/alarm_sched.c: workerd's alarm retry schedule. */
#include "server/api/do/alarm_sched.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdint.h>

#define NOW 1700000000000LL

Test(do_alarm_sched, counted_failures_back_off_then_give_up)
{
    ekv_do_alarm_retry_t st = {0, 0};
    static const int64_t want[] = {2000, 4000, 8000, 16000, 32000, 64000};
    for (unsigned i = 0; i < 6; i++) {
        int64_t next = -1;
        cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, NOW, &next), EKV_DO_ALARM_RETRY),
                  "failure %u", i + 1);
        cr_assert(eq(i64, next - NOW, want[i]), "failure %u", i + 1);
        cr_assert(eq(u32, st.retry_count, i + 1));
        cr_assert(eq(u32, st.internal_backoff, 0));
    }
    /* 7th failure: give up; next_ms untouched */
    int64_t next = -12345;
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, NOW, &next), EKV_DO_ALARM_GIVE_UP));
    cr_assert(eq(i64, next, -12345));
    cr_assert(eq(u32, st.retry_count, EKV_DO_ALARM_MAX_RETRIES));
    /* and again */
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.5, NOW, &next), EKV_DO_ALARM_GIVE_UP));
}

Test(do_alarm_sched, next_is_relative_to_now)
{
    ekv_do_alarm_retry_t st = {0, 0};
    int64_t next = 0;
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, 5, &next), EKV_DO_ALARM_RETRY));
    cr_assert(eq(i64, next, 2005));
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, 0, &next), EKV_DO_ALARM_RETRY));
    cr_assert(eq(i64, next, 4000));
}

Test(do_alarm_sched, jitter_adds_up_to_a_quarter)
{
    for (unsigned rc = 0; rc < EKV_DO_ALARM_MAX_RETRIES; rc++) {
        int64_t base = (int64_t)2000 << rc;
        ekv_do_alarm_retry_t st = {rc, 0};
        int64_t next = 0;
        cr_assert(
            eq(int, ekv_do_alarm_after_failure(&st, 1, 0.999, NOW, &next), EKV_DO_ALARM_RETRY));
        int64_t d = next - NOW;
        cr_assert(gt(i64, d, base), "retry %u: %lld", rc, (long long)d);
        cr_assert(lt(i64, d * 4, base * 5), "retry %u: %lld", rc, (long long)d);
        /* 0.999 * 25 % = 24.975 % */
        cr_assert(ge(i64, d, base + (base * 24) / 100), "retry %u: %lld", rc, (long long)d);

        st = (ekv_do_alarm_retry_t){rc, 0};
        cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.5, NOW, &next), EKV_DO_ALARM_RETRY));
        cr_assert(eq(i64, next - NOW, base + base / 8), "retry %u", rc);
    }
    /* out-of-range jitter is clamped into [0, 1) */
    ekv_do_alarm_retry_t st = {0, 0};
    int64_t next = 0;
    ekv_do_alarm_after_failure(&st, 1, -3.0, NOW, &next);
    cr_assert(eq(i64, next - NOW, 2000));
    st = (ekv_do_alarm_retry_t){0, 0};
    ekv_do_alarm_after_failure(&st, 1, 7.0, NOW, &next);
    cr_assert(ge(i64, next - NOW, 2000));
    cr_assert(lt(i64, next - NOW, 2500));
}

Test(do_alarm_sched, uncounted_never_give_up_and_cap)
{
    ekv_do_alarm_retry_t st = {0, 0};
    const int64_t cap = (int64_t)2000 << 9;
    cr_assert(eq(i64, cap, 1024000));
    for (unsigned i = 0; i < 200; i++) {
        int64_t next = -1;
        cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 0, 0.0, NOW, &next), EKV_DO_ALARM_RETRY),
                  "failure %u", i + 1);
        int64_t want = i < 9 ? (int64_t)2000 << i : cap;
        cr_assert(eq(i64, next - NOW, want), "failure %u", i + 1);
        cr_assert(eq(u32, st.retry_count, 0), "failure %u", i + 1);
        cr_assert(ge(u32, st.internal_backoff, i < 64 ? i + 1 : 64));
        /* with jitter: still within cap * 1.25 */
        ekv_do_alarm_retry_t st2 = st;
        cr_assert(
            eq(int, ekv_do_alarm_after_failure(&st2, 0, 0.999, NOW, &next), EKV_DO_ALARM_RETRY));
        cr_assert(lt(i64, (next - NOW) * 4, cap * 5));
    }
}

Test(do_alarm_sched, mixing_counted_and_uncounted)
{
    ekv_do_alarm_retry_t st = {0, 0};
    int64_t next = 0;
    /* two infrastructure failures */
    ekv_do_alarm_after_failure(&st, 0, 0.0, NOW, &next);
    cr_assert(eq(i64, next - NOW, 2000));
    ekv_do_alarm_after_failure(&st, 0, 0.0, NOW, &next);
    cr_assert(eq(i64, next - NOW, 4000));
    cr_assert(eq(u32, st.retry_count, 0));
    /* a counted failure backs off on retry_count only */
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, NOW, &next), EKV_DO_ALARM_RETRY));
    cr_assert(eq(i64, next - NOW, 2000));
    cr_assert(eq(u32, st.retry_count, 1));
    /* another uncounted one continues its own backoff (3rd: 8000) */
    ekv_do_alarm_after_failure(&st, 0, 0.0, NOW, &next);
    cr_assert(eq(i64, next - NOW, 8000));
    cr_assert(eq(u32, st.retry_count, 1));
    /* 5 more counted failures are allowed (6 in all), interleaved with uncounted ones */
    static const int64_t want[] = {4000, 8000, 16000, 32000, 64000};
    for (unsigned i = 0; i < 5; i++) {
        cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, NOW, &next), EKV_DO_ALARM_RETRY));
        cr_assert(eq(i64, next - NOW, want[i]));
        cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 0, 0.0, NOW, &next), EKV_DO_ALARM_RETRY));
    }
    cr_assert(eq(u32, st.retry_count, 6));
    /* the 7th counted failure gives up; uncounted ones still retry */
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 1, 0.0, NOW, &next), EKV_DO_ALARM_GIVE_UP));
    cr_assert(eq(int, ekv_do_alarm_after_failure(&st, 0, 0.0, NOW, &next), EKV_DO_ALARM_RETRY));
    cr_assert(eq(i64, next - NOW, (int64_t)2000 << 8)); /* the 9th uncounted one */
}
