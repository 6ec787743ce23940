/*
 * ops.c - /healthz, /metrics and the test clock.
 * /metrics reads RocksDB properties on a reader thread (the loop never calls RocksDB) and
 * renders everything else from counters on the loop.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/admin/admin.h"
#include "server/api/do/do.h"
#include "server/http/reply.h"
#include "server/http/urlcodec.h"

#include <stdlib.h>
#include <string.h>

void ekv_h_healthz(ekv_call_t *c)
{
    static const char body[] = "{\"status\":\"ok\"}";
    ekv_reply_json_text(c->req, 200, body, sizeof(body) - 1);
}

static const struct {
    const char *cf;
    const char *prop;
    const char *metric;
    const char *help;
} rocks_props[] = {
    {"kvmeta", "rocksdb.estimate-num-keys", "edgekv_rocksdb_kv_keys_estimate",
     "Estimated KV keys (kvmeta column family)."},
    {"kvval", "rocksdb.total-sst-files-size", "edgekv_rocksdb_kvval_sst_bytes",
     "SST bytes holding values over 256 bytes (smaller ones are inline in kvmeta)."},
    {"kvmeta", "rocksdb.total-sst-files-size", "edgekv_rocksdb_kvmeta_sst_bytes",
     "SST bytes holding key envelopes and the values inline in them."},
    {"log", "rocksdb.total-sst-files-size", "edgekv_rocksdb_log_sst_bytes",
     "SST bytes holding the change log."},
    {"kvval", "rocksdb.cur-size-all-mem-tables", "edgekv_rocksdb_kvval_memtable_bytes",
     "Memtable bytes of the value column family (values over 256 bytes)."},
    {"kvmeta", "rocksdb.cur-size-all-mem-tables", "edgekv_rocksdb_kvmeta_memtable_bytes",
     "Memtable bytes of the key envelope column family (with the values inline in it)."},
    {"kvmeta", "rocksdb.num-running-compactions", "edgekv_rocksdb_running_compactions",
     "Compactions running now."},
    {NULL, "rocksdb.estimate-pending-compaction-bytes", "edgekv_rocksdb_pending_compaction_bytes",
     "Bytes compaction still has to rewrite (all column families)."},
    /* DB-wide: any CF answers the same */
    {"kvmeta", "rocksdb.is-write-stopped", "edgekv_rocksdb_write_stopped",
     "1 while RocksDB stops writes until compactions catch up."},
    {"kvmeta", "rocksdb.actual-delayed-write-rate", "edgekv_rocksdb_delayed_write_rate",
     "Bytes/s RocksDB slows writes to while compactions fall behind (0 = not delayed)."},
};
#define NPROPS (sizeof(rocks_props) / sizeof(rocks_props[0]))

typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    ekv_req_t *req;
    char *vals[NPROPS];
} metrics_job_t;

static void metrics_free(ekv_req_t *req)
{
    metrics_job_t *j = req->state;
    for (size_t i = 0; i < NPROPS; i++)
        free(j->vals[i]);
    free(j);
    req->state = NULL;
}

static void metrics_work(ekv_job_t *job)
{
    metrics_job_t *j = (metrics_job_t *)job;
    for (size_t i = 0; i < NPROPS && j->app->store; i++) /* an edge has no store */
        j->vals[i] = ekv_store_property(j->app->store, rocks_props[i].cf, rocks_props[i].prop);
}

static void metrics_done(ekv_job_t *job)
{
    metrics_job_t *j = (metrics_job_t *)job;
    ekv_app_t *app = j->app;
    ekv_buf_t out;
    ekv_buf_init(&out, 0);
    int rc = ekv_metrics_render(app->metrics, &out);

    ekv_http_stats_t hs;
    ekv_http_server_stats(app->http, &hs);
    ekv_store_stats_t ss;
    memset(&ss, 0, sizeof(ss));
    if (app->store)
        ekv_store_stats(app->store, &ss);
    ekv_cache_stats_t cs;
    ekv_cache_stats(app->cache, &cs);

#define G(name, help, v) (rc = rc ? rc : ekv_metrics_gauge(&out, name, help, (double)(v)))
#define C(name, help, v) (rc = rc ? rc : ekv_metrics_counter(&out, name, help, (double)(v)))
    G("edgekv_http_connections", "Open client connections.", hs.active);
    C("edgekv_http_connections_accepted_total", "Accepted connections.", hs.accepted);
    C("edgekv_http_connections_rejected_total", "Connections refused over max-connections.",
      hs.rejected);
    C("edgekv_http_parse_errors_total", "Malformed or over-limit requests.", hs.parse_errors);
    C("edgekv_http_timeouts_total", "Header/idle/send timeouts.", hs.timeouts);
    C("edgekv_http_send_timeouts_total",
      "Connections closed because the client read a reply slower than --send-min-rate.",
      hs.send_timeouts);
    G("edgekv_http_reply_memory_bytes",
      "Bytes of replies waiting for their clients (capped by --reply-memory-mb).", hs.reply_memory);
    G("edgekv_http_replies_queued", "Replies waiting for their clients to read them.",
      hs.replies_queued);
    C("edgekv_http_replies_shed_total",
      "Large replies answered 503 because --reply-memory-mb was reached.", hs.replies_shed);
    G("edgekv_http_read_buffers", "Read buffers lent to connections with unparsed input.",
      hs.read_buffers);
    G("edgekv_http_read_buffers_free", "Read buffers kept for reuse (at most 64).",
      hs.read_buffers_free);
    C("edgekv_http_heap_trims_total",
      "Times free heap was returned to the system after many connections closed.", hs.heap_trims);
    G("edgekv_http_listen_backlog", "listen(2) backlog asked for (capped by net.core.somaxconn).",
      hs.listen_backlog);
    C("edgekv_http_replies_coalesced_total",
      "Small replies held to the end of the loop's I/O phase and written with the others there.",
      hs.replies_coalesced);
    C("edgekv_http_coalesce_flushes_full_total",
      "Times the held replies were written early because 8 were held.", hs.coalesce_flushes_full);
    C("edgekv_cache_hits_total", "Value GETs answered from memory.", cs.hits);
    C("edgekv_cache_misses_total", "Value GETs that went to the store.", cs.misses);
    G("edgekv_store_block_cache_bytes", "Bytes in RocksDB's block cache.", ss.block_cache_usage);
    G("edgekv_store_block_cache_capacity_bytes", "RocksDB's block cache size (--block-cache-mb).",
      ss.block_cache_capacity);
    C("edgekv_store_block_cache_warm_scans_total",
      "Completed scans of keys and values into the block cache (--warm-block-cache).",
      ss.warm_scans);
    C("edgekv_store_inline_reads_total",
      "Value cache misses answered on the event loop from RocksDB's memtables and block cache.",
      app->inline_reads);
    C("edgekv_cache_evictions_total", "Entries evicted for space.", cs.evictions);
    G("edgekv_cache_bytes", "Bytes held by the value cache.", cs.bytes);
    G("edgekv_cache_entries", "Entries in the value cache.", cs.entries);
    G("edgekv_reader_queue_depth", "Reads waiting for a reader thread.",
      ekv_workq_depth(&app->readers));
    G("edgekv_commit_queue_depth", "Writes waiting for the committer.", ss.queue_depth);
    G("edgekv_changelog_last_seq", "Last committed change-log sequence number.", ss.last_seq);
    G("edgekv_changelog_first_seq", "Oldest retained change-log record.", ss.first_log_seq);
    C("edgekv_changelog_trimmed_total", "Change-log records trimmed.", ss.log_trimmed);
    C("edgekv_commits_total", "Group commits (one WriteBatch + one WAL sync each).", ss.commits);
    C("edgekv_committed_ops_total", "Write operations made durable.", ss.committed_ops);
    C("edgekv_commit_failures_total", "Failed group commits.", ss.commit_failures);
    C("edgekv_commit_seconds_total", "Time spent writing and syncing batches.",
      (double)ss.commit_ns_total / 1e9);
    C("edgekv_expired_keys_purged_total", "Expired keys removed by the purger.", ss.purged_keys);
    G("edgekv_uptime_seconds", "Seconds since start.",
      (double)(ekv_clock_now_ms() - ekv_clock_offset_ms() - app->started_ms) / 1000.0);
#undef G
#undef C
    if (!rc)
        rc = ekv_buf_appends(&out, "# HELP edgekv_commit_batch_ops Operations per group commit.\n"
                                   "# TYPE edgekv_commit_batch_ops histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < EKV_BATCH_HIST_BUCKETS && !rc; b++) {
        cum += ss.batch_hist[b];
        if (b < EKV_BATCH_HIST_BUCKETS - 1)
            rc = ekv_buf_appendf(&out, "edgekv_commit_batch_ops_bucket{le=\"%d\"} %llu\n", 1 << b,
                                 (unsigned long long)cum);
        else
            rc = ekv_buf_appendf(&out,
                                 "edgekv_commit_batch_ops_bucket{le=\"+Inf\"} %llu\n"
                                 "edgekv_commit_batch_ops_sum %llu\n"
                                 "edgekv_commit_batch_ops_count %llu\n",
                                 (unsigned long long)cum, (unsigned long long)ss.committed_ops,
                                 (unsigned long long)ss.commits);
    }
    if (!rc)
        rc = app->role->metrics ? app->role->metrics(app, &out) : 0;
    if (!rc)
        rc = ekv_do_metrics(app->dos, &out);
    for (size_t i = 0; i < NPROPS && !rc; i++)
        if (j->vals[i])
            rc = ekv_metrics_gauge(&out, rocks_props[i].metric, rocks_props[i].help,
                                   strtod(j->vals[i], NULL));
    if (rc) {
        ekv_buf_deinit(&out);
        ekv_reply_error(j->req, rc, NULL);
        return;
    }
    size_t len;
    char *text = ekv_buf_take(&out, &len);
    ekv_http_send(j->req, 200, "text/plain; version=0.0.4", NULL, text, len, free, text);
}

void ekv_h_metrics(ekv_call_t *c)
{
    metrics_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return;
    }
    j->app = c->app;
    j->req = c->req;
    j->job.work = metrics_work;
    j->job.done = metrics_done;
    c->req->state = j;
    c->req->cleanup = metrics_free;
    ekv_app_read_or_reply(c->app, c->req, &j->job);
}

/* The test clock moves at most this far ahead in total (100 years). */
#define TEST_CLOCK_MAX_OFFSET_S (100LL * 365 * 24 * 3600)

void ekv_h_test_clock(ekv_call_t *c)
{
    if (!c->app->test_clock) {
        ekv_reply_error(c->req, EKV_ENO_ROUTE,
                        "Could not route to %s, perhaps your object identifier is invalid?",
                        c->req->path);
        return;
    }
    ekv_query_t q;
    char buf[32];
    size_t len;
    if (ekv_query_parse(c->req->query, c->req->query_len, &q) ||
        ekv_query_get(&q, "advance_s", buf, sizeof(buf), &len) != 1) {
        ekv_reply_error(c->req, EKV_EBAD_REQUEST, "test clock: 'advance_s is required'");
        return;
    }
    char *end;
    long long s = strtoll(buf, &end, 10);
    if (*end || len == 0 || s < 0) {
        ekv_reply_error(c->req, EKV_EBAD_REQUEST, "test clock: 'advance_s must be >= 0'");
        return;
    }
    /* bounded, so that s * 1000 and now + offset cannot overflow (found by fuzz_http_conn) */
    if (s > TEST_CLOCK_MAX_OFFSET_S - ekv_clock_offset_ms() / 1000) {
        ekv_reply_error(c->req, EKV_EBAD_REQUEST,
                        "test clock: 'advance_s must keep the clock within 100 years of now'");
        return;
    }
    ekv_clock_advance(s * 1000);
    ekv_log_info("test clock advanced", "by_s=%lld offset_ms=%lld", s,
                 (long long)ekv_clock_offset_ms());
    ekv_reply_ok(c->req, json_pack("{s:I}", "now", (json_int_t)ekv_clock_now_s()), NULL);
}
