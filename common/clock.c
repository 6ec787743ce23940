#include "common/clock.h"

#include <stdatomic.h>
#include <time.h>

static _Atomic int64_t offset_ms;

int64_t ekv_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + atomic_load(&offset_ms);
}

int64_t ekv_clock_now_s(void)
{
    return ekv_clock_now_ms() / 1000;
}

uint64_t ekv_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ekv_clock_advance(int64_t ms)
{
    atomic_fetch_add(&offset_ms, ms);
}

int64_t ekv_clock_offset_ms(void)
{
    return atomic_load(&offset_ms);
}
