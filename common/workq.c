#include "common/workq.h"
#include "common/errors.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

static void doneq_async_cb(uv_async_t *a)
{
    ekv_doneq_drain((ekv_doneq_t *)a->data);
}

int ekv_doneq_init(ekv_doneq_t *q, uv_loop_t *loop)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    int rc = uv_async_init(loop, &q->async, doneq_async_cb);
    if (rc)
        return EKV_EINTERNAL;
    q->async.data = q;
    return 0;
}

void ekv_doneq_push(ekv_doneq_t *q, ekv_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&q->lock);
    int was_empty = q->head == NULL;
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    pthread_mutex_unlock(&q->lock);
    if (was_empty)
        uv_async_send(&q->async);
}

void ekv_doneq_drain(ekv_doneq_t *q)
{
    pthread_mutex_lock(&q->lock);
    ekv_job_t *j = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    while (j) {
        ekv_job_t *next = j->next;
        j->done(j);
        j = next;
    }
}

void ekv_doneq_close(ekv_doneq_t *q)
{
    ekv_doneq_drain(q);
    uv_close((uv_handle_t *)&q->async, NULL);
}

static void *worker_main(void *arg)
{
    ekv_workq_t *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->cond, &q->lock);
        ekv_job_t *j = q->head;
        if (!j) { /* stopping and drained */
            pthread_mutex_unlock(&q->lock);
            return NULL;
        }
        q->head = j->next;
        if (!q->head)
            q->tail = NULL;
        q->queued--;
        pthread_mutex_unlock(&q->lock);

        if (j->work)
            j->work(j);
        if (j->done) {
            if (q->doneq)
                ekv_doneq_push(q->doneq, j);
            else
                j->done(j);
        }
    }
}

int ekv_workq_init(ekv_workq_t *q, const char *name, int nthreads, size_t max_queued,
                   ekv_doneq_t *doneq)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->max_queued = max_queued;
    q->doneq = doneq;
    q->name = name;
    q->threads = calloc((size_t)nthreads, sizeof(pthread_t));
    if (!q->threads)
        return EKV_ENOMEM;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&q->threads[i], NULL, worker_main, q) != 0) {
            ekv_log_error("thread create failed", "pool=%s", name);
            q->nthreads = i;
            ekv_workq_deinit(q);
            return EKV_EINTERNAL;
        }
        char tname[32];
        snprintf(tname, sizeof(tname), "%.8s-%d", name, i % 1000);
        tname[15] = '\0'; /* the kernel's limit */
        pthread_setname_np(q->threads[i], tname);
        q->nthreads = i + 1;
    }
    return 0;
}

int ekv_workq_submit(ekv_workq_t *q, ekv_job_t *job)
{
    job->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->stopping) {
        pthread_mutex_unlock(&q->lock);
        return EKV_ESHUTDOWN;
    }
    if (q->queued >= q->max_queued) {
        pthread_mutex_unlock(&q->lock);
        return EKV_EBUSY;
    }
    if (q->tail)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    q->queued++;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

size_t ekv_workq_depth(ekv_workq_t *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->queued;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void ekv_workq_deinit(ekv_workq_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->stopping = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < q->nthreads; i++)
        pthread_join(q->threads[i], NULL);
    free(q->threads);
    q->threads = NULL;
    q->nthreads = 0;
}
