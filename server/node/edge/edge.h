/*
 * server/node/edge/ - the edge role (docs/CONSISTENCY.md): stateless API nodes that answer
 * value GETs from the cache (flight.c: single-flight misses, stale-if-error), relay every
 * other call to a replica or the primary over RPC links (relay.c), and keep the cache
 * coherent from the keys-only change stream (server/node/follower.c). edge.c holds the
 * upstreams, counters and stop. Loop thread.
 */
#ifndef EKV_SERVER_NODE_EDGE_EDGE_H
#define EKV_SERVER_NODE_EDGE_EDGE_H

#include "replication/rpc_client.h"
#include "server/node/node.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hits, misses;     /* value GETs: fresh cache hits / misses */
    uint64_t upstream_fetches; /* value fetches sent upstream (one per single-flight) */
    uint64_t coalesced;        /* misses that joined a fetch already on its way */
    uint64_t stale_served;     /* answered from an expired entry while every upstream failed */
    uint64_t reads_forwarded, writes_forwarded, failovers, upstream_failures;
    uint64_t fetches_refused; /* misses answered 503: --edge-max-fetches already in flight */
    size_t inflight_fetches;
} ekv_edge_stats_t;

typedef struct {
    const char *role; /* "primary" / "replica" */
    char addr[300];
    int ready;
    uint64_t seq;
    ekv_rpc_stats_t rpc;
} ekv_edge_upstream_t;

/* Connect the upstreams (--primary, --replicas). 0 or -1 (logged). */
int ekv_edge_start(ekv_node_t *n);
/* Answer an authenticated API call (after the namespace check): role ops "relay". */
void ekv_edge_handle(ekv_call_t *c);
/* A key (key != NULL), a namespace (key NULL) or everything (both NULL) changed: a value
 * fetch on its way for it must not be cached (per key, unlike the cache's global generation,
 * so a steady write stream elsewhere does not keep the cache empty). */
void ekv_edge_invalidated(ekv_edge_t *e, const uint8_t nsid[EKV_NSID_LEN], const char *key,
                          size_t len);
/* The change stream advanced: release catalog-write replies that were waiting for it. */
void ekv_edge_on_stream(ekv_edge_t *e);
void ekv_edge_stats(const ekv_edge_t *e, ekv_edge_stats_t *out);
size_t ekv_edge_upstreams(const ekv_edge_t *e, ekv_edge_upstream_t *out, size_t cap);
uint64_t ekv_edge_max_write_seq(const ekv_edge_t *e);
/* 1 while the RPC link to the primary is up (writes can be relayed). */
int ekv_edge_primary_ready(const ekv_edge_t *e);
/* The coordinator named another primary ("host:port"): writes go there from now on. */
int ekv_edge_set_primary(ekv_edge_t *e, const char *addr);
void ekv_edge_stop(ekv_edge_t *e, void (*done)(void *arg), void *arg);
void ekv_edge_free(ekv_edge_t *e);

#endif
