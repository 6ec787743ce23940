/*
 * log.h - structured log lines (logfmt) on stderr.
 *
 *   ts=2026-11-23T16:40:00.123Z level=info msg="listening" addr=127.0.0.1:8787
 *
 * Callers pass the message and then key=value pairs already formatted by the printf-style
 * format: ekv_log_info("listening", "addr=%s:%d", host, port). Thread-safe: one write(2)
 * per line, so lines from several threads never interleave.
 */
#ifndef EKV_COMMON_LOG_H
#define EKV_COMMON_LOG_H

typedef enum { EKV_LOG_DEBUG = 0, EKV_LOG_INFO, EKV_LOG_WARN, EKV_LOG_ERROR } ekv_log_level_t;

void ekv_log_set_level(ekv_log_level_t level);
/* Parse "debug|info|warn|error"; returns 0 or -1. */
int ekv_log_parse_level(const char *s, ekv_log_level_t *out);
/* Whether lines at this level are written (skip building costly fields). */
int ekv_log_enabled(ekv_log_level_t level);
void ekv_log(ekv_log_level_t level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define ekv_log_debug(msg, ...) ekv_log(EKV_LOG_DEBUG, msg, __VA_ARGS__)
#define ekv_log_info(msg, ...)  ekv_log(EKV_LOG_INFO, msg, __VA_ARGS__)
#define ekv_log_warn(msg, ...)  ekv_log(EKV_LOG_WARN, msg, __VA_ARGS__)
#define ekv_log_error(msg, ...) ekv_log(EKV_LOG_ERROR, msg, __VA_ARGS__)

/* Abort with a log line; stays on in release builds. */
#define EKV_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ekv__assert_fail(#cond, __FILE__, __LINE__);                                           \
    } while (0)
void ekv__assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
