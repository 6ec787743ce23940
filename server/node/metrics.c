/*
 * metrics.c - replication and edge lines of /metrics (role ops "metrics"): epoch, seqs,
 * fence, the primary's replica links, a follower's lag and its apply-lag histogram, an
 * edge's cache and relay counters.
 */
#include "server/node/node.h"
#include "server/node/coord/coord.h"
#include "replication/auth.h"
#include "replication/primary.h"
#include "replication/replica.h"
#include "server/http/metrics.h"
#include "server/node/edge/edge.h"

#include <inttypes.h>
#include <string.h>

int ekv_node_metrics(ekv_app_t *app, ekv_buf_t *out)
{
    ekv_node_t *n = ekv_node_of(app);
    int rc = 0;
#define G(name, help, v) (rc = rc ? rc : ekv_metrics_gauge(out, name, help, (double)(v)))
#define C(name, help, v) (rc = rc ? rc : ekv_metrics_counter(out, name, help, (double)(v)))
    G("edgekv_repl_epoch", "Replication epoch of this node.", n->st.epoch);
    G("edgekv_repl_last_seq", "Last change-log seq committed (primary) or applied (replica).",
      app->store ? ekv_store_last_seq(app->store) : 0);
    G("edgekv_repl_fenced", "1 when a newer primary fenced this node.", n->fenced);
    if (!rc)
        rc = ekv_node_do_metrics(n, out);
    if (!rc && n->coord)
        rc = ekv_coord_metrics(n->coord, out);
    if (n->auth)
        C("edgekv_repl_auth_failures_total",
          "Replication links whose cluster-secret handshake failed (either side).",
          ekv_repl_auth_failures(n->auth));
    if (n->primary) {
        ekv_repl_primary_stats_t st;
        ekv_repl_primary_stats(n->primary, &st);
        G("edgekv_repl_replicas_connected", "Replica links open now.", st.connected);
        C("edgekv_repl_snapshots_sent_total", "Snapshots sent to replicas.", st.snapshots_sent);
        C("edgekv_repl_resumes_total", "Replicas that resumed incrementally.", st.resumes);
        C("edgekv_repl_sync_timeouts_total", "Writes not acked by --sync-replicas in time.",
          st.sync_timeouts);
        G("edgekv_repl_sync_waiting", "Writes waiting for replica acks.", st.sync_waiting);
        C("edgekv_repl_rpc_pauses_total",
          "Times an edge's RPC link stopped being read because its answers were not read "
          "(over --repl-send-queue-mb).",
          st.rpc_pauses);
        if (!rc)
            rc = ekv_buf_appendf(
                out,
                "# HELP edgekv_repl_replicas_dropped_total Replicas dropped, by reason.\n"
                "# TYPE edgekv_repl_replicas_dropped_total counter\n"
                "edgekv_repl_replicas_dropped_total{reason=\"timeout\"} %" PRIu64 "\n"
                "edgekv_repl_replicas_dropped_total{reason=\"lag\"} %" PRIu64 "\n"
                "edgekv_repl_replicas_dropped_total{reason=\"protocol\"} %" PRIu64 "\n",
                st.dropped_timeout, st.dropped_lag, st.dropped_protocol);
        ekv_repl_peer_info_t peers[EKV_REPL_MAX_REPLICAS + 2];
        size_t np = ekv_repl_primary_peers(n->primary, peers, sizeof(peers) / sizeof(peers[0]));
        if (np > sizeof(peers) / sizeof(peers[0]))
            np = sizeof(peers) / sizeof(peers[0]);
        static const char *const names[] = {"edgekv_repl_replica_acked_seq",
                                            "edgekv_repl_replica_lag_seqs",
                                            "edgekv_repl_replica_lag_ms"};
        static const char *const helps[] = {"Last seq acked by the replica.",
                                            "Records the replica is behind.",
                                            "Age of its oldest unacked record."};
        for (int m = 0; m < 3 && !rc; m++) {
            rc = ekv_buf_appendf(out, "# HELP %s %s\n# TYPE %s gauge\n", names[m], helps[m],
                                 names[m]);
            for (size_t i = 0; i < np && !rc; i++) {
                uint64_t v = m == 0   ? peers[i].acked_seq
                             : m == 1 ? peers[i].lag_seqs
                                      : (uint64_t)peers[i].lag_ms;
                rc = ekv_buf_appendf(out, "%s{replica=\"%s\",state=\"%s\"} %" PRIu64 "\n", names[m],
                                     peers[i].node_id, peers[i].state, v);
            }
        }
    }
    if (n->replica) {
        ekv_repl_replica_info_t ri;
        ekv_repl_replica_info(n->replica, &ri);
        G("edgekv_repl_applied_seq", "Last seq applied from the primary.", ri.applied_seq);
        G("edgekv_repl_lag_seqs", "Records this replica is behind the primary.", ri.lag_seqs);
        G("edgekv_repl_lag_ms", "Age of the oldest received, unapplied record.", ri.lag_ms);
        G("edgekv_repl_streaming", "1 while streaming from a primary.",
          !strcmp(ri.state, "streaming"));
        C("edgekv_repl_snapshots_received_total", "Snapshot bootstraps completed.", ri.snapshots);
        C("edgekv_repl_connects_total", "Handshakes completed with a primary.", ri.connects);
        G("edgekv_repl_apply_lag_ms_p50", "Primary commit to durable apply here (last 4096).",
          ri.apply_lag_p50_ms);
        G("edgekv_repl_apply_lag_ms_p99", "Primary commit to durable apply here (last 4096).",
          ri.apply_lag_p99_ms);
        if (!rc)
            rc = ekv_buf_appends(out, "# HELP edgekv_repl_apply_lag_ms Primary commit to durable "
                                      "apply here, per record (ms, clock-to-clock).\n"
                                      "# TYPE edgekv_repl_apply_lag_ms histogram\n");
        for (int b = 0; b < EKV_REPL_LAG_BUCKETS && !rc; b++) {
            if (b < EKV_REPL_LAG_BUCKETS - 1)
                rc = ekv_buf_appendf(
                    out, "edgekv_repl_apply_lag_ms_bucket{le=\"%" PRId64 "\"} %" PRIu64 "\n",
                    ekv_repl_lag_bucket_ms[b], ri.apply_lag_hist[b]);
            else
                rc = ekv_buf_appendf(out,
                                     "edgekv_repl_apply_lag_ms_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                                     "edgekv_repl_apply_lag_ms_sum %" PRIu64 "\n"
                                     "edgekv_repl_apply_lag_ms_count %" PRIu64 "\n",
                                     ri.apply_lag_hist[b], ri.apply_lag_sum_ms,
                                     ri.apply_lag_hist[b]);
        }
    }
    if (n->edge) {
        ekv_edge_stats_t es;
        ekv_edge_stats(n->edge, &es);
        C("edgekv_edge_cache_hits_total", "Value GETs answered from a fresh cache entry.", es.hits);
        C("edgekv_edge_cache_misses_total", "Value GETs not answered from the cache.", es.misses);
        C("edgekv_edge_upstream_fetches_total",
          "Value fetches sent upstream (one per single-flight group).", es.upstream_fetches);
        C("edgekv_edge_coalesced_total", "Misses that joined a fetch already on its way.",
          es.coalesced);
        C("edgekv_edge_stale_served_total", "Expired entries served while no upstream answered.",
          es.stale_served);
        C("edgekv_edge_reads_forwarded_total", "Reads relayed to a replica or the primary.",
          es.reads_forwarded);
        C("edgekv_edge_writes_forwarded_total", "Writes relayed to the primary.",
          es.writes_forwarded);
        C("edgekv_edge_failovers_total", "Calls answered by another upstream than the first.",
          es.failovers);
        C("edgekv_edge_upstream_failures_total", "Calls no upstream could answer.",
          es.upstream_failures);
        G("edgekv_edge_inflight_fetches", "Single-flight fetches on their way.",
          es.inflight_fetches);
        C("edgekv_edge_fetches_refused_total", "Misses refused: --edge-max-fetches in flight.",
          es.fetches_refused);
        G("edgekv_edge_synced", "1 once the catalog has arrived.", n->edge_synced);
    }
#undef G
#undef C
    return rc;
}
