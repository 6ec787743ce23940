/*
 * coord.h - automatic failover through etcd (`--coordinator etcd://...`, docs/FAILOVER.md).
 * Patroni's model: etcd is the only judge of who is primary; the nodes only ask it.
 *
 * KEYS (prefix /edgekv/<cluster-name>):
 *   leader            {"node_id","repl","url"} under the primary's lease (TTL
 *                     --coordinator-ttl-s). Its create_revision is the election's revision,
 *                     and becomes the replication epoch of the new primary.
 *   members/<node_id> a replica's position {"node_id","repl","epoch","last_seq"} under its
 *                     own lease: what an election compares.
 *
 * CONTRACTS
 *   - The primary renews its lease every TTL/3 and takes writes only until (send time of
 *     the last renewal that etcd granted) + TTL: ekv_coord_may_write() is false after that,
 *     so the gate refuses new writes and a write committed meanwhile is answered 503, not
 *     acknowledged. Since etcd counts the same TTL from a later instant (its receipt), the
 *     old primary stops before etcd can let anyone else win. A SIGSTOPped primary that
 *     wakes up therefore refuses every write at once, then steps down.
 *   - Stepping down (lease lost, key gone, another node's key) restarts the process (clean
 *     stop, then exec of the same command line): it comes back as a replica of whoever holds
 *     the key, resuming or re-syncing by snapshot (docs/REPLICATION.md).
 *   - Election: when the key is gone, every synced replica publishes its position at once;
 *     after a settle time each reads all positions, and only the most caught-up one
 *     (highest epoch, then last_seq, then the smallest node id) campaigns (a txn that puts
 *     the key only if it does not exist). Only positions published after the key's deletion
 *     count: a stale one is waited for (at most a TTL), and a node compares only once its own
 *     fresh position is in etcd. Replicas that never synced publish nothing. Dead replicas
 *     leave the comparison when their member lease expires. With --sync-replicas 1 the
 *     winner holds every acknowledged write.
 *   - Replicas and edges watch the key (a /v3/watch stream, re-created from a fresh read
 *     whenever it ends or fails; the key is also read every 2 s) and follow the primary it
 *     names.
 *
 * Loop thread, except ekv_coord_boot (start-up, before the loop runs).
 */
#ifndef EKV_SERVER_NODE_COORD_COORD_H
#define EKV_SERVER_NODE_COORD_COORD_H

#include "common/buf.h"
#include "server/node/config.h"

#include <jansson.h>
#include <stdint.h>

struct ekv_node_s;
typedef struct ekv_coord_s ekv_coord_t;

/* What start-up learned from etcd. */
typedef struct {
    int primary;         /* this node won the key at start-up (a fresh --role primary) */
    char leader[300];    /* the primary's link address ("" when there is none yet) */
    int64_t lease;       /* primary: its leader lease */
    int64_t epoch;       /* primary: the election revision */
    uint64_t granted_ns; /* primary: when the lease was asked for (monotonic) */
} ekv_coord_boot_t;

/*
 * Start-up, blocking, before the store opens: wait for etcd (retrying every second, logged)
 * and decide the role. An edge waits until a primary exists. A data node follows the
 * current primary; with none, a fresh --role primary (no database yet) campaigns at once,
 * any other data node starts as a replica and the election decides. A leader key left by
 * this node's previous run is released first. Rewrites cfg->role (and cfg->primary for an
 * edge). 0 or -1 (logged).
 */
int ekv_coord_boot(ekv_config_t *cfg, ekv_coord_boot_t *out);

/* After ekv_node_start: keep the lease, watch the key, publish positions, elect. 0 / -1. */
int ekv_coord_start(struct ekv_node_s *n, const ekv_coord_boot_t *boot);
/* Shutdown: a primary revokes its lease (the others elect at once, not after the TTL), a
 * replica its member key; then done(arg) (within ~1 s whatever etcd does). */
void ekv_coord_stop(ekv_coord_t *c, void (*done)(void *arg), void *arg);
/* The primary may acknowledge a write now (its lease is valid and it is not stepping down). */
int ekv_coord_may_write(const ekv_coord_t *c);
json_t *ekv_coord_status_json(const ekv_coord_t *c);
/* /metrics lines. */
int ekv_coord_metrics(const ekv_coord_t *c, ekv_buf_t *out);

#endif
