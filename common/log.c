#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static ekv_log_level_t min_level = EKV_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void ekv_log_set_level(ekv_log_level_t level)
{
    min_level = level;
}

int ekv_log_enabled(ekv_log_level_t level)
{
    return level >= min_level;
}

int ekv_log_parse_level(const char *s, ekv_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (ekv_log_level_t)i;
            return 0;
        }
    }
    return -1;
}

void ekv_log(ekv_log_level_t level, const char *msg, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s msg=\"%s\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000, level_names[level], msg);
    if (n < 0)
        return;
    if ((size_t)n < sizeof(line) - 2 && fmt && fmt[0]) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n + 1, sizeof(line) - (size_t)n - 2, fmt, ap);
        va_end(ap);
        if (m > 0) { /* fields present: separate them from msg */
            line[n] = ' ';
            n += 1 + m;
        }
    }
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

void ekv__assert_fail(const char *expr, const char *file, int line)
{
    ekv_log(EKV_LOG_ERROR, "assertion failed", "expr=\"%s\" file=%s line=%d", expr, file, line);
    abort();
}
