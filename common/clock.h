/*
 * clock.h - wall clock with an injectable offset.
 *
 * All expiry decisions use ekv_clock_now_ms()/ekv_clock_now_s(). Tests move time forward
 * with ekv_clock_advance() (exposed over HTTP only when the server runs with the test clock
 * enabled), so expiry is tested without real waits. Thread-safe (atomic offset).
 */
#ifndef EKV_COMMON_CLOCK_H
#define EKV_COMMON_CLOCK_H

#include <stdint.h>

int64_t ekv_clock_now_ms(void);
int64_t ekv_clock_now_s(void);
/* Monotonic nanoseconds, for latency measurement only. */
uint64_t ekv_clock_mono_ns(void);
void ekv_clock_advance(int64_t ms);
int64_t ekv_clock_offset_ms(void);

#endif
