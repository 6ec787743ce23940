/*
 * edge_int.h - the edge's state shared by its files (internal to server/node/edge/):
 * relay.c (upstream calls, held catalog replies), flight.c (value GETs: cache and
 * single-flight), edge.c (upstreams, stats, stop). Loop thread.
 */
#ifndef EKV_SERVER_NODE_EDGE_EDGE_INT_H
#define EKV_SERVER_NODE_EDGE_EDGE_INT_H

#include "common/htab.h"
#include "replication/rpc_client.h"
#include "server/node/edge/edge.h"
#include "server/node/node.h"

#include <stddef.h>
#include <stdint.h>

#define MAX_UPSTREAMS   17   /* the primary + 16 replicas */
#define FLIGHT_RESERVE  1024 /* buckets from the start (the table grows past them) */
#define MIN_CACHE_TTL_S 30   /* Workers KV's documented minimum cacheTtl */
/* Our maximum (Workers KV documents none): one year. The TTL is the staleness bound while an
 * edge's change stream is down, so it must stay a bound; a year is far beyond any useful
 * value, and MAX_CACHE_TTL_S * 1000 (ms) is nowhere near overflowing int64_t. */
#define MAX_CACHE_TTL_S 31536000

typedef struct waiter_s {
    ekv_req_t *req;
    struct waiter_s *next;
} waiter_t;

/* One upstream fetch of a value, shared by every request for the same key meanwhile. */
typedef struct flight_s {
    ekv_edge_t *edge;
    ekv_hnode_t hnode; /* in flights, by (nsid, key): hash = ekv_cache_key_hash */
    uint8_t nsid[EKV_NSID_LEN];
    char *key;
    size_t key_len;
    int dirty;      /* the key changed while the fetch was on its way: do not cache it */
    int64_t ttl_ms; /* of the first request */
    waiter_t *waiters;
    size_t nwaiters;
} flight_t;

/* A successful catalog write (namespace, token) whose reply waits until this edge's change
 * stream has applied it, so the client's next call through this edge finds the namespace or
 * token in the edge's catalog (read-your-writes for the catalog too). */
typedef struct held_s {
    ekv_req_t *req;
    uint64_t seq;
    uint64_t deadline_ns;
    int status;
    char *ctype, *headers, *body;
    size_t body_len;
    struct held_s *next;
} held_t;

#define HOLD_MAX_MS 2000

/* A relayed call: the client request, and where we are in the upstream order. */
typedef struct call_s {
    ekv_edge_t *edge;
    ekv_req_t *req; /* NULL for a flight's fetch */
    flight_t *flight;
    Edgekv__Request rq;
    int is_write;
    int catalog_op; /* a write that changes the catalog: hold the reply (held_t) */
    int tried;      /* upstreams tried so far */
    int start;      /* first replica index (spreads reads) */
    int last_err;
} call_t;

struct ekv_edge_s {
    ekv_app_t *app;
    ekv_node_t *node;
    ekv_rpc_client_t *primary;
    ekv_rpc_client_t *replicas[MAX_UPSTREAMS - 1];
    int nreplicas;
    unsigned rr; /* round robin over replicas */
    uint64_t max_write_seq;
    int64_t ttl_ms, stale_ms;
    size_t max_fetches;
    held_t *held;
    uv_timer_t hold_timer;
    int hold_timer_on;
    ekv_htab_t flights; /* flight_t.hnode: one fetch per (nsid, key) */
    int stopping, clients_open;
    void (*stop_done)(void *);
    void *stop_arg;
    ekv_edge_stats_t st;
};

/* relay.c */
/* The RPC request for a client request (borrows req's bytes). */
void ekv__edge_fill_request(Edgekv__Request *rq, ekv_req_t *req);
/* Answer req with an upstream's response as is. */
void ekv__edge_relay(ekv_req_t *req, const Edgekv__Response *r);
/* No upstream could answer: 503 (writes: degraded mode) or 504. */
void ekv__edge_reply_unavailable(ekv_req_t *req, int is_write, int err);
/* Send c to its next upstream (failover); frees c when answered or exhausted. */
void ekv__edge_call_send(call_t *c);

/* flight.c */
/* A value GET: fresh cache hit, else join or start a single-flight fetch. */
void ekv__edge_value_get(ekv_call_t *c);
/* A fetch was answered (r) or failed everywhere (r NULL, err): answer its waiters. */
void ekv__edge_flight_finish(flight_t *f, const Edgekv__Response *r, int err);

#endif
