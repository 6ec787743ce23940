/*
 * committer.c - the single writer: submit queue, group commit, completions, maintenance.
 *
 * Design:
 *  - Submitters append ekv_write_t to a linked list (through job.next) under qlock; the queue
 *    is bounded by opts.commit_max_queue (EKV_EBUSY beyond). The committer is signalled only
 *    when it is idle, so a busy committer costs submitters one lock round-trip each.
 *  - The committer detaches the WHOLE list in O(1), keeps a prefix of at most
 *    commit_max_batch_bytes of payload (at least one op) and puts the rest back at the head.
 *    Every op of the prefix is applied into one WriteBatch, together with one ChangeRecord
 *    per mutation and s/last_seq, and the batch is written once (sync=true under the fsync
 *    policy): N concurrent writers share one fsync. Ops that arrive meanwhile form the next
 *    group, so under load groups grow by themselves to the fsync latency x arrival rate.
 *  - Ops are completed only after rocksdb_write returned: pushed to opts.doneq (or done()
 *    called here when doneq is NULL); an ekv_store_write_sync waiter is woken directly
 *    through its own condition variable (one wake-up per waiter, no thundering herd).
 *  - A failed write fails every op of the group with EKV_ESTORAGE; nothing of it is durable
 *    (RocksDB applies a batch atomically), sequence numbers are reused, and the in-memory
 *    catalog index is rebuilt from the DB before the next group.
 *  - A replicated batch (ekv_store_apply_records) and the snapshot-ingest ops (snapshot.c)
 *    are internal ops that always form a group of their own, so the store keeps exactly one
 *    writer. While an ingest is unfinished every other op fails with EKV_EINGEST_PENDING and
 *    the purger is paused.
 *  - Between groups, when due: purge expired keys (purge.c) and trim the log (changelog.c).
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "storage/store_int.h"

#include <inttypes.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#define OP_OVERHEAD_BYTES   64
#define ITEM_OVERHEAD_BYTES 48
#define BATCH_KEEP_BYTES    ((size_t)8 << 20)

static ekv_write_t *job_write(ekv_job_t *j)
{
    return (ekv_write_t *)(void *)((char *)j - offsetof(ekv_write_t, job));
}

/*
 * ekv_store_write_sync submits a copy of the caller's op embedded in a waiter that lives on
 * its stack; the committer recognises it by job.done == sync_done_cb and calls that directly
 * (never through opts.doneq), which wakes exactly that waiter.
 */
typedef struct {
    ekv_write_t w; /* first: job_write() works on it */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} sync_waiter_t;

static void sync_done_cb(ekv_job_t *job)
{
    sync_waiter_t *sw = (sync_waiter_t *)(void *)job_write(job);
    pthread_mutex_lock(&sw->lock);
    sw->done = 1;
    pthread_cond_signal(&sw->cond);
    pthread_mutex_unlock(&sw->lock);
}

static size_t op_bytes(const ekv_write_t *w)
{
    size_t n = OP_OVERHEAD_BYTES;
    if (w->type == EKV__OP_APPLY_RECORDS && w->udata)
        return n + ((const ekv_log_batch_t *)w->udata)->bytes;
    if (w->type == EKV__OP_INGEST_CHUNK && w->udata)
        return n + ((const ekv_snapshot_chunk_t *)w->udata)->bytes;
    if (w->type == EKV_OP_KV_PUT || w->type == EKV_OP_KV_DELETE)
        for (size_t i = 0; i < w->nitems; i++)
            n += ITEM_OVERHEAD_BYTES + w->items[i].key_len + w->items[i].value_len +
                 w->items[i].metadata_len;
    if (w->type == EKV_OP_DO_PTABLE)
        n += w->do_table_len;
    if (w->type == EKV_OP_DO_WRITE)
        for (size_t i = 0; i < w->do_nitems; i++)
            n += ITEM_OVERHEAD_BYTES + w->do_items[i].key_len + w->do_items[i].value_len;
    return n;
}

static int batch_bucket(size_t n)
{
    int b = 0;
    while (b < EKV_BATCH_HIST_BUCKETS - 1 && ((size_t)1 << b) < n)
        b++;
    return b;
}

static void complete_ops(ekv_store_t *s, ekv_job_t *first, size_t n)
{
    ekv_job_t *j = first;
    for (size_t i = 0; i < n; i++) {
        ekv_job_t *next = j->next; /* w may be freed once completed */
        job_write(j)->batch_ops = n;
        if (j->done) {
            if (s->opts.doneq && j->done != sync_done_cb)
                ekv_doneq_push(s->opts.doneq, j);
            else
                j->done(j);
        }
        j = next;
    }
}

static void fail_all(ekv_job_t *first, size_t n, int status)
{
    ekv_job_t *j = first;
    for (size_t i = 0; i < n; i++, j = j->next) {
        ekv_write_t *w = job_write(j);
        w->status = status;
        w->seq = 0;
    }
}

/* WriteBatch::Clear keeps the buffer's capacity: after a group of large values, give the
 * memory back instead of holding it for the life of the process. */
static void shrink_batch(ekv_store_t *s)
{
    size_t size = 0;
    rocksdb_writebatch_data(s->wb, &size);
    if (size > BATCH_KEEP_BYTES) {
        rocksdb_writebatch_destroy(s->wb);
        s->wb = rocksdb_writebatch_create();
    } else {
        rocksdb_writebatch_clear(s->wb);
    }
    if (s->pbuf.cap > BATCH_KEEP_BYTES)
        ekv_buf_deinit(&s->pbuf);
    if (s->vbuf.cap > BATCH_KEEP_BYTES)
        ekv_buf_deinit(&s->vbuf);
}

/* Apply, write and complete one group of n ops (linked from first). */
static void commit_group(ekv_store_t *s, ekv_job_t *first, size_t n)
{
    rocksdb_writebatch_clear(s->wb);
    uint64_t seq = s->last_seq;
    int64_t now_ms = ekv_clock_now_ms();
    int fatal = 0;
    s->batch_log_bytes = 0;

    if (n == 1 && EKV__OP_SOLO(job_write(first)->type) &&
        job_write(first)->type != EKV__OP_APPLY_RECORDS) {
        /* snapshot ingest: its own batch, write and state changes (snapshot.c) */
        ekv_write_t *w = job_write(first);
        w->seq = 0;
        w->status = ekv__ingest_run(s, w);
        goto done;
    }
    if (s->ingesting) {
        /* a partial snapshot is no state to build on: only the ingest ops may write */
        fail_all(first, n, EKV_EINGEST_PENDING);
        goto done;
    }

    if (s->idx_dirty) {
        int rc = ekv__catalog_index_load(s);
        if (rc) {
            fail_all(first, n, EKV_ESTORAGE);
            goto done;
        }
        s->idx_dirty = 0;
    }

    ekv_job_t *j = first;
    for (size_t i = 0; i < n && !fatal; i++, j = j->next) {
        ekv_write_t *w = job_write(j);
        uint64_t before = seq;
        w->seq = 0;
        w->status = ekv__apply_op(s, w, &seq, now_ms, &fatal);
        if (w->status == 0 && seq > before)
            w->seq = seq;
    }
    if (fatal) {
        /* the batch may hold part of an op: abandon the whole group */
        ekv_log_error("group abandoned", "ops=%zu err=%s", n, ekv_err_name(fatal));
        fail_all(first, n, fatal);
        s->idx_dirty = 1;
        goto done;
    }
    if (seq == s->last_seq && rocksdb_writebatch_count(s->wb) == 0)
        goto done; /* every op failed its checks: nothing to write */

    ekv__log_put_last_seq(s, seq);

    char *err = NULL;
    uint64_t t0 = ekv_clock_mono_ns();
    rocksdb_write(s->db, s->wopts, s->wb, &err);
    uint64_t dt = ekv_clock_mono_ns() - t0;
    if (err) {
        ekv__store_rocks_err("group commit", err);
        fail_all(first, n, EKV_ESTORAGE);
        s->idx_dirty = 1;
        pthread_mutex_lock(&s->stats_lock);
        s->st.commit_failures++;
        pthread_mutex_unlock(&s->stats_lock);
        goto done;
    }
    ekv__store_note_commit(s, seq, s->batch_log_bytes);
    pthread_mutex_lock(&s->stats_lock);
    s->st.commits++;
    s->st.commit_ns_total += dt;
    s->st.batch_hist[batch_bucket(n)]++;
    pthread_mutex_unlock(&s->stats_lock);

done:
    pthread_mutex_lock(&s->stats_lock);
    s->st.committed_ops += n;
    pthread_mutex_unlock(&s->stats_lock);
    shrink_batch(s);
    complete_ops(s, first, n);
}

static void maintenance(ekv_store_t *s)
{
    int more = 0;
    int rc = s->ingesting ? 0 : ekv__purge_round(s, ekv_clock_now_s(), &more);
    if (rc > 0) {
        pthread_mutex_lock(&s->stats_lock);
        s->st.purged_keys += (uint64_t)rc;
        pthread_mutex_unlock(&s->stats_lock);
    }
    s->purge_more = rc >= 0 && more;
    ekv__log_trim(s, 1);
    uint64_t now = ekv_clock_mono_ns();
    s->next_maint_ns = s->purge_more ? now : now + (uint64_t)s->opts.purge_interval_ms * 1000000u;
}

static void *committer_main(void *arg)
{
    ekv_store_t *s = arg;
    s->next_maint_ns = ekv_clock_mono_ns() + (uint64_t)s->opts.purge_interval_ms * 1000000u;
    for (;;) {
        pthread_mutex_lock(&s->qlock);
        while (!s->qhead && !s->stopping) {
            uint64_t now = ekv_clock_mono_ns();
            if (now >= s->next_maint_ns)
                break;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = s->next_maint_ns - now;
            ts.tv_sec += (time_t)(wait / 1000000000u);
            ts.tv_nsec += (long)(wait % 1000000000u);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            s->committer_idle = 1;
            pthread_cond_timedwait(&s->qcond, &s->qlock, &ts);
            s->committer_idle = 0;
        }
        ekv_job_t *first = s->qhead;
        size_t total = s->qlen;
        s->qhead = s->qtail = NULL;
        s->qlen = 0;
        int stopping = s->stopping;
        pthread_mutex_unlock(&s->qlock);

        if (first) {
            /* keep a prefix within the byte budget, give the rest back */
            size_t n = 0, bytes = 0;
            ekv_job_t *last = NULL, *j = first;
            while (j) {
                size_t b = op_bytes(job_write(j));
                if (n > 0 && bytes + b > s->opts.commit_max_batch_bytes)
                    break;
                /* a replicated batch or an ingest op is a group of its own: its failure
                 * fails only itself */
                if (n > 0 &&
                    (EKV__OP_SOLO(job_write(j)->type) || EKV__OP_SOLO(job_write(last)->type)))
                    break;
                bytes += b;
                n++;
                last = j;
                j = j->next;
            }
            if (j) {
                ekv_job_t *rest_tail = j;
                while (rest_tail->next)
                    rest_tail = rest_tail->next;
                pthread_mutex_lock(&s->qlock);
                rest_tail->next = s->qhead;
                s->qhead = j;
                if (!s->qtail)
                    s->qtail = rest_tail;
                s->qlen += total - n;
                pthread_mutex_unlock(&s->qlock);
            }
            last->next = NULL;
            commit_group(s, first, n);
            ekv__log_trim(s, 0);
        } else if (stopping) {
            return NULL; /* drained */
        }
        if (!stopping && ekv_clock_mono_ns() >= s->next_maint_ns)
            maintenance(s);
    }
}

int ekv__committer_start(ekv_store_t *s)
{
    if (pthread_create(&s->committer, NULL, committer_main, s) != 0) {
        ekv_log_error("committer thread create failed", "dir=%s", s->dir);
        return EKV_EINTERNAL;
    }
    pthread_setname_np(s->committer, "ekv-commit");
    s->committer_started = 1;
    return 0;
}

void ekv__committer_stop(ekv_store_t *s)
{
    if (!s->committer_started)
        return;
    pthread_mutex_lock(&s->qlock);
    s->stopping = 1;
    pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    pthread_join(s->committer, NULL);
    s->committer_started = 0;
}

int ekv_store_write_submit(ekv_store_t *s, ekv_write_t *w)
{
    w->job.next = NULL;
    w->status = 0;
    w->seq = 0;
    w->batch_ops = 0;
    pthread_mutex_lock(&s->qlock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->qlock);
        return EKV_ESHUTDOWN;
    }
    if (s->qlen >= s->opts.commit_max_queue) {
        pthread_mutex_unlock(&s->qlock);
        return EKV_EBUSY;
    }
    if (s->qtail)
        s->qtail->next = &w->job;
    else
        s->qhead = &w->job;
    s->qtail = &w->job;
    s->qlen++;
    if (s->committer_idle)
        pthread_cond_signal(&s->qcond);
    pthread_mutex_unlock(&s->qlock);
    return 0;
}

int ekv_store_write_sync(ekv_store_t *s, ekv_write_t *w)
{
    sync_waiter_t sw;
    sw.w = *w;
    sw.w.job.done = sync_done_cb;
    sw.w.job.work = NULL;
    sw.done = 0;
    pthread_mutex_init(&sw.lock, NULL);
    pthread_cond_init(&sw.cond, NULL);
    int rc = ekv_store_write_submit(s, &sw.w);
    if (rc == 0) {
        pthread_mutex_lock(&sw.lock);
        while (!sw.done)
            pthread_cond_wait(&sw.cond, &sw.lock);
        pthread_mutex_unlock(&sw.lock);
        /* results, and the fields the committer fills in (ids normalised, created_ms) */
        ekv_job_t job = w->job;
        void *udata = w->udata;
        *w = sw.w;
        w->job = job;
        w->udata = udata;
        rc = w->status;
    } else {
        w->status = rc;
        w->seq = 0;
        w->batch_ops = 0;
    }
    pthread_cond_destroy(&sw.cond);
    pthread_mutex_destroy(&sw.lock);
    return rc;
}
