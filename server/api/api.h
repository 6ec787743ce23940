/*
 * server/api/ - the Cloudflare-compatible REST API, independent of the node's role.
 *
 *   api.h        the application context (ekv_app_t), a call (ekv_call_t), route kinds and
 *                flags, and the role ops a node injects at start (ekv_role_ops_t)
 *   dispatch.c   the one request path: route -> role gate -> auth -> account/namespace
 *                checks -> relay (edges) | cluster handler (the role's) | local handler
 *   routes.c     the route table: method, pattern, handler, body limit, kind, op name, flags
 *   auth, perms  tokens and permissions;  catalog  accounts/tokens/namespaces in memory
 *   cache        the value cache (coherence rule in cache.h)
 *   kv/          Workers KV handlers (values, metadata, list, bulk) and their pure parsers
 *   admin/       namespaces, accounts and tokens, ops endpoints (healthz, metrics, clock)
 *
 * Layering: api/ includes server/http/, storage/ and common/, never server/node/ nor
 * replication/. What depends on the role (refusing writes on a replica, relaying on an edge,
 * waiting for replica acks, the replication endpoints, replication metrics) reaches dispatch
 * through ekv_role_ops_t, installed by server/node/ when the role starts.
 *
 * Request path: http (parse, limits) -> ekv_app_on_headers (route, body limit, gate, early
 * auth) -> ekv_app_on_request (auth, account check, namespace check) -> handler. A handler
 * answers on the loop (cache hit, catalog read, error) or hands a job to the reader pool /
 * committer and answers from the job's done() callback, which runs on the loop thread.
 */
#ifndef EKV_SERVER_API_API_H
#define EKV_SERVER_API_API_H

#include "common/buf.h"
#include "common/workq.h"
#include "server/api/cache.h"
#include "server/api/catalog.h"
#include "server/http/metrics.h"
#include "server/http/router.h"
#include "server/http/server.h"
#include "storage/store.h"

#include <stdint.h>
#include <uv.h>

typedef struct ekv_app_s ekv_app_t;
typedef struct ekv_call_s ekv_call_t;
typedef void (*ekv_handler_fn)(ekv_call_t *call);

/*
 * What a role adds to the request path. Every member may be NULL (standalone behaviour:
 * nothing refused, nothing relayed, no replication endpoints). Loop thread.
 */
typedef struct {
    /* Before auth, at the headers and again at the end of the body: refuse what this role
     * does not serve now (writes on a replica or a fenced primary, anything before the first
     * sync). 0, or -1 after answering. */
    int (*gate)(ekv_app_t *app, ekv_req_t *req, const ekv_route_t *r);
    /* An authenticated API call (kinds other than LOCAL and CLUSTER) this role answers
     * instead of the local handler: an edge's cache and relay. NULL = run the handler. */
    void (*relay)(ekv_call_t *c);
    /* Before a write is submitted: wrap its completion (--sync-replicas holds). */
    void (*hold_write)(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w);
    /* EKV_RK_DO routes: 1 when the role answered the call (forwarded it to the object's
     * owner or to the primary, or parked it while its partition moves), 0 to run the
     * handler here. NULL: run it here (standalone). */
    int (*route_do)(ekv_call_t *c);
    /* EKV_RK_CLUSTER routes (replication status, checksum, promote). NULL: 404. */
    void (*cluster)(ekv_call_t *c);
    /* Extra /metrics lines. 0 or an error from ekv_buf. */
    int (*metrics)(ekv_app_t *app, ekv_buf_t *out);
} ekv_role_ops_t;

/* Application state shared by every handler. Built by server/node/ (serve.c). */
struct ekv_app_s {
    uv_loop_t *loop;
    ekv_store_t *store; /* NULL on an edge (no durable state) */
    ekv_doneq_t doneq;
    ekv_workq_t readers;
    ekv_catalog_t *catalog; /* replaced whole on a snapshot (replicas, edges) */
    /* The Durable Object runtime (server/api/do/do.h) on the node that owns the objects
     * (standalone, primary); NULL elsewhere: DO calls are forwarded to the owner. */
    struct ekv_do_s *dos;
    ekv_cache_t *cache;
    ekv_metrics_t *metrics;
    ekv_http_server_t *http;
    int test_clock; /* POST /_edgekv/test/clock is allowed */
    int64_t started_ms;
    const ekv_role_ops_t *role; /* never NULL once serving */
    void *node;                 /* the role's state (server/node/), opaque here */
    /* ekv_token_hash of the operator token (auth.h), set by server/node/ at start; "" = none
     * (EKV_RT_OPERATOR routes then refuse everything). */
    char operator_hash[EKV_TOKEN_HASH_LEN + 1];
    /* Value GETs reading the store (server/api/kv/values.c): each result is a whole value in
     * memory until the loop sends it, so at most value_reads_max run at once and the others
     * wait in a FIFO of at most value_wait_max (then 503, like a full reader queue).
     * value_reads_max 0 = no limit. */
    size_t value_reads, value_reads_max, value_waiting, value_wait_max;
    uint64_t inline_reads; /* value cache misses answered on the loop from RocksDB's memory */
    void *value_wait_head, *value_wait_tail;
};

/* What a handler gets: the parsed, authenticated call. Valid during the handler call only;
 * async handlers copy what they need. */
struct ekv_call_s {
    ekv_app_t *app;
    ekv_req_t *req;
    const ekv_route_t *route;
    ekv_route_params_t params;
    const ekv_token_t *token; /* NULL on routes without auth */
    char account_id[EKV_ID_HEX_LEN + 1];
    /* namespace-scoped routes: */
    const ekv_namespace_t *ns;
    uint8_t nsid[EKV_NSID_LEN];
};

/*
 * Route kinds (ekv_route_t.kind): what a route does, read by dispatch, edges, the RPC sink
 * and the role gate instead of comparing handler pointers.
 */
typedef enum {
    EKV_RK_LOCAL = 0,     /* answered by this process whatever its role (healthz, metrics) */
    EKV_RK_CLUSTER,       /* replication endpoints: answered by the role, on any role */
    EKV_RK_VALUE_READ,    /* GET one value (edges: cache, single-flight) */
    EKV_RK_READ,          /* other reads: metadata, bulk get, namespaces, tokens, accounts */
    EKV_RK_LIST,          /* list keys */
    EKV_RK_KEY_WRITE,     /* write or delete one key (edges: invalidate that key) */
    EKV_RK_BULK_WRITE,    /* bulk write/delete in one namespace (edges: invalidate it) */
    EKV_RK_CATALOG_WRITE, /* namespaces, tokens (edges: reply once the stream has it) */
    EKV_RK_DO,            /* Durable Objects: answered by the objects' owner (the primary);
                           * edges and replicas forward them there */
} ekv_route_kind_t;

/* 1 for kinds that change data: refused on a replica, relayed to the primary by an edge. */
static inline int ekv_route_kind_is_write(unsigned kind)
{
    return kind == EKV_RK_KEY_WRITE || kind == EKV_RK_BULK_WRITE || kind == EKV_RK_CATALOG_WRITE;
}

/* Route flags (ekv_route_t.flags): authentication and permissions. */
enum {
    EKV_RT_NOAUTH = 1u << 0,     /* no authentication (healthz, metrics, test clock, status) */
    EKV_RT_ACCOUNT = 1u << 1,    /* first param is the account id: must be the token's */
    EKV_RT_NS = 1u << 2,         /* second param is a KV namespace id: parsed and looked up */
    EKV_RT_READ = 1u << 3,       /* needs kv:read */
    EKV_RT_WRITE = 1u << 4,      /* needs kv:write */
    EKV_RT_ADMIN = 1u << 5,      /* needs admin */
    EKV_RT_VERIFY = 1u << 6,     /* token verify: bad token -> 401/1000 */
    EKV_RT_OPERATOR = 1u << 7,   /* the cluster operator token only (never an account token) */
    EKV_RT_DO_READ = 1u << 8,    /* needs do:read (Durable Objects) */
    EKV_RT_DO_WRITE = 1u << 9,   /* needs do:write */
    EKV_RT_DO_OBJECT = 1u << 10, /* a Durable Object route of one object (params[2]): served
                                  * by the owner of its partition */
};

extern const ekv_route_t ekv_routes[];
extern const size_t ekv_nroutes;
/* Compile the table once at start-up; then the compiled router (read-only). */
int ekv_routes_init(void);
const ekv_router_t *ekv_routes_router(void);

/* The operation name Cloudflare puts in front of messages for a route ("get", "list keys"):
 * the route's op, else its name. */
static inline const char *ekv_route_op(const ekv_route_t *r)
{
    return r->op ? r->op : r->name;
}

/* The HTTP application callbacks (ekv_http_handler_t), also driven by server/node/rpc_exec.c
 * for requests that arrive from edges over RPC. */
int ekv_app_on_headers(void *ctx, ekv_req_t *req);
void ekv_app_on_request(void *ctx, ekv_req_t *req);
void ekv_app_on_response(void *ctx, ekv_req_t *req, int status, size_t bytes_out);
/* Run an authenticated Durable Object call's handler here (503 when this node has no DO
 * runtime or it is stopping): dispatch, and a call the role parked and then found here. */
void ekv_app_run_do(ekv_call_t *c);

/* Submit a read job to the reader pool; on EBUSY/ESHUTDOWN answers 503 itself and returns
 * nonzero (the job's done() will not run). */
int ekv_app_read_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_job_t *job);
/* Submit a write to the committer (after the role's hold_write); same contract. */
int ekv_app_write_or_reply(ekv_app_t *app, ekv_req_t *req, ekv_write_t *w);

#endif
