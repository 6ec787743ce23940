/*
 * workq.h - hand work to threads and get completions back on the event loop.
 *
 * Design (memcached/nginx style):
 *  - ekv_doneq_t is a completion queue owned by one uv loop. Any thread pushes finished jobs;
 *    the loop is woken through one uv_async_t only on the empty -> non-empty transition, and
 *    runs each job's done() callback on the loop thread, in push order.
 *  - ekv_workq_t is a fixed pool of threads with a BOUNDED queue. Submitting to a full queue
 *    fails with EKV_EBUSY at once (the HTTP layer answers 503 + Retry-After) instead of
 *    queueing unbounded work. We never use libuv's shared threadpool for RocksDB.
 *
 * ekv_job_t is embedded in the caller's request struct; the caller keeps it alive until its
 * done() ran. done() may be NULL (fire-and-forget, e.g. in the CLI), in which case the job is
 * not queued for the loop.
 */
#ifndef EKV_COMMON_WORKQ_H
#define EKV_COMMON_WORKQ_H

#include <pthread.h>
#include <stddef.h>
#include <uv.h>

typedef struct ekv_job_s ekv_job_t;
typedef void (*ekv_job_fn)(ekv_job_t *job);

struct ekv_job_s {
    ekv_job_fn work; /* runs on a pool thread (may be NULL for committer jobs) */
    ekv_job_fn done; /* runs on the loop thread after work */
    ekv_job_t *next; /* queue link, owned by whichever queue holds the job */
};

typedef struct ekv_doneq_s {
    uv_async_t async;
    pthread_mutex_t lock;
    ekv_job_t *head, *tail;
} ekv_doneq_t;

/* Loop thread. */
int ekv_doneq_init(ekv_doneq_t *q, uv_loop_t *loop);
/* Loop thread; closes the async handle (run the loop once more to finish closing). Jobs still
 * queued get their done() called first. */
void ekv_doneq_close(ekv_doneq_t *q);
/* Any thread. */
void ekv_doneq_push(ekv_doneq_t *q, ekv_job_t *job);
/* Loop thread: run everything queued now (also called by the async callback). */
void ekv_doneq_drain(ekv_doneq_t *q);

typedef struct ekv_workq_s {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ekv_job_t *head, *tail;
    size_t queued, max_queued;
    int nthreads, stopping;
    pthread_t *threads;
    ekv_doneq_t *doneq; /* may be NULL: then done() runs on the worker thread */
    const char *name;
} ekv_workq_t;

/* Start `nthreads` threads named `name`; max_queued bounds jobs waiting for a thread. */
int ekv_workq_init(ekv_workq_t *q, const char *name, int nthreads, size_t max_queued,
                   ekv_doneq_t *doneq);
/* Any thread. 0, or EKV_EBUSY when the queue is full, EKV_ESHUTDOWN after stop. */
int ekv_workq_submit(ekv_workq_t *q, ekv_job_t *job);
/* Finish queued jobs, join the threads. */
void ekv_workq_deinit(ekv_workq_t *q);
size_t ekv_workq_depth(ekv_workq_t *q);

#endif
