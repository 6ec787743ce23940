/*
 * docl.h - Durable Object owners across the cluster, the node side (docs/DURABLE-OBJECTS.md
 * "Owners across the cluster"). What the files of server/node/do/ share:
 *
 *   table.c      the partition table and its wire form (pure)
 *   placement.c  the primary: members, heartbeats and leases, table changes (committed
 *                through the change log), hand-overs, and the owners' internal calls
 *                (heartbeat, read, commit, alarms)
 *   owner.c      an edge as an owner: heartbeats and its lease, installing tables, the
 *                runtime's remote storage (reads and fenced commits on the primary), loading
 *                the alarms of gained partitions, graceful leave
 *   route.c      every node: a Durable Object call goes to the owner of its partition (here,
 *                or forwarded over an authenticated link), or waits while the partition moves
 *   status.c     /status, the do-owner endpoint and /metrics lines
 *
 * Every node keeps `here[p]`, what it does with partition p now: NONE (another node owns it,
 * or nobody yet), PENDING (it is being handed to this node: wait), LOADING (this node owns
 * it and loads its alarms: wait), ACTIVE (served here). Loop thread only.
 */
#ifndef EKV_SERVER_NODE_DO_DOCL_H
#define EKV_SERVER_NODE_DO_DOCL_H

#include "replication/rpc_client.h"
#include "server/node/do/table.h"
#include "server/node/node.h"

#include <stdint.h>
#include <uv.h>

enum { DOCL_NONE = 0, DOCL_PENDING, DOCL_LOADING, DOCL_ACTIVE };

#define DOCL_MAX_MEMBERS 1000
#define DOCL_MAX_LINKS   64   /* links to owners this node forwards to */
#define DOCL_PARK_MAX    8192 /* calls waiting for a partition to settle */
#define DOCL_TICK_MS     25

typedef struct docl_member_s {
    char id[EKV_DO_NODE_ID_MAX];
    char addr[EKV_DO_ADDR_MAX];
    uint64_t incarnation;
    uint64_t last_hb_ns; /* when its last heartbeat arrived (monotonic) */
    uint64_t acked;      /* the table version it says it has installed */
    int in_table;
    int gone; /* its lease expired or it left: leaves the table at the next change */
    int left; /* it released its partitions itself (graceful leave) */
} docl_member_t;

/* Partitions handed from a live owner: served by the new one once `from` has installed
 * `version` or its leases from before `committed_ns` have run out. */
typedef struct docl_handover_s {
    struct docl_handover_s *next;
    uint64_t version;
    uint64_t committed_ns; /* 0 until the change is committed */
    char from[EKV_DO_NODE_ID_MAX];
    uint8_t parts[EKV_DO_PART_BYTES];
} docl_handover_t;

typedef struct docl_link_s {
    char addr[EKV_DO_ADDR_MAX];
    ekv_rpc_client_t *client;
} docl_link_t;

typedef struct docl_park_s {
    struct docl_park_s *next;
    ekv_call_t call; /* a copy: its slices point into the request, alive until answered */
    uint64_t deadline_ns, not_before_ns;
} docl_park_t;

typedef struct ekv_docl_s {
    ekv_node_t *n;
    ekv_do_table_t *table; /* the newest installed table */
    uint8_t here[EKV_DO_PARTITIONS];
    uint32_t load_gen[EKV_DO_PARTITIONS]; /* the alarm load a LOADING partition waits for */
    uint32_t next_load_gen;
    int lease_ms, heartbeat_ms, move_wait_ms;
    uv_timer_t tick;
    int tick_open;
    int stopping;

    /* ---- primary (placement.c) ---- */
    int placing; /* this node assigns partitions (the primary) */
    docl_member_t *members;
    size_t nmembers;
    docl_handover_t *handovers;
    int committing;       /* a table change is being committed */
    ekv_buf_t table_wire; /* the current table, encoded (heartbeat replies) */
    uint64_t start_ns;    /* leases granted before this (a restart) end by start + lease */

    /* ---- owner (owner.c) ---- */
    int owning;              /* this node owns partitions (an edge) */
    ekv_rpc_client_t *plink; /* to the primary: heartbeats, reads, commits, alarms */
    char paddr[300];
    int paddr_idx;
    uint64_t plink_down_since;
    int rotate_now;
    char my_addr[EKV_DO_ADDR_MAX];
    uint64_t incarnation;
    uint64_t lease_until_ns;
    int lease_was_valid;
    int hb_in_flight;
    int hb_due; /* a table was installed: heartbeat (acknowledge it) at the next tick */
    uint64_t last_hb_sent_ns;
    int leaving;
    void (*leave_done)(void *);
    void *leave_arg;
    uv_timer_t leave_timer;
    int leave_timer_open;
    char last_refusal[200];

    /* ---- routing (route.c) ---- */
    docl_link_t links[DOCL_MAX_LINKS];
    size_t nlinks;
    uint64_t primary_seq_seen; /* the primary's seq in its last answer to a forwarded call */
    docl_park_t *phead, *ptail;
    size_t nparked;

    struct {
        uint64_t moves, forwarded, fenced_remote, lease_expiries, lease_lapses, parked,
            park_timeouts;
    } st;
} ekv_docl_t;

/* ---- table installation (placement.c on the primary, owner.c on edges, route.c) ---- */
/* Install t (copied) if newer than ours; recompute here[]; tell the runtime what it lost;
 * start alarm loads for what it gained; wake parked calls. 1 installed, 0 not newer. */
int ekv__docl_install(ekv_docl_t *c, const ekv_do_table_t *t);
/* This node's index in the installed table, -1 when absent (or the primary). */
int ekv__docl_self(const ekv_docl_t *c);

/* ---- placement.c ---- */
int ekv__docl_placement_start(ekv_docl_t *c);
void ekv__docl_placement_tick(ekv_docl_t *c);
void ekv__docl_placement_free(ekv_docl_t *c);

/* ---- owner.c ---- */
int ekv__docl_owner_start(ekv_docl_t *c);
void ekv__docl_owner_tick(ekv_docl_t *c);
/* Load the alarms of the partitions LOADING with generation gen (bitmap parts). */
void ekv__docl_load_alarms(ekv_docl_t *c, const uint8_t *parts, uint32_t gen);
void ekv__docl_owner_stop(ekv_docl_t *c);

/* ---- route.c ---- */
/* Re-route parked calls: every tick, and at once after an install or a load. */
void ekv__docl_route_tick(ekv_docl_t *c);
void ekv__docl_route_stop(ekv_docl_t *c);
/* The link to addr (created on first use). NULL on failure. */
ekv_rpc_client_t *ekv__docl_link(ekv_docl_t *c, const char *addr, int timeout_ms);

/* The runtime's view (ekv_do_cluster_t members), set up by ekv_node_start_do. */
int ekv__docl_here(void *ctx, uint32_t p);
uint64_t ekv__docl_epoch(void *ctx, uint32_t p);

#endif
