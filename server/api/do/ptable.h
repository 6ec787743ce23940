/*
 * ptable.h - the Durable Object partition table (groundwork for owners across the cluster,
 * docs/DURABLE-OBJECTS.md "What a cluster adds later"). Pure: no I/O, no loop.
 *
 * An object belongs to one of EKV_DO_PARTITIONS partitions, from the leading bits of its
 * id; the table gives each partition an owner node and an epoch (incremented each time the
 * partition changes owner: the fencing token a write will carry).
 *
 * Assignment is rendezvous hashing with a load cap: each (partition, node) pair has a score
 * (XXH3 of the node id seeded by the partition); a partition goes to its highest-scoring node
 * that is below the cap, cap = floor(1.10 * P / N) (never below ceil(P / N)), so max/avg is
 * at most 1.10. Changes are incremental, so only what must move moves:
 *   join   the new node takes ~P/(N+1) partitions: first from nodes above the new cap, then
 *          those it scores highest; nothing else moves (moves = its share);
 *   leave  only the leaving node's partitions move, each to its best node below the cap.
 * Every result depends only on the previous table and the node ids (deterministic).
 */
#ifndef EKV_SERVER_API_DO_PTABLE_H
#define EKV_SERVER_API_DO_PTABLE_H

#include "storage/ids.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_DO_PTABLE_MAX   1024 /* nodes */
#define EKV_DO_NODE_ID_MAX  64   /* bytes of a node id, NUL included */
#define EKV_DO_LOAD_CAP_PCT 110  /* max/avg partitions per node, in percent */

typedef struct {
    uint64_t version; /* +1 per change */
    size_t nnodes;    /* 0: no owner at all */
    char nodes[EKV_DO_PTABLE_MAX][EKV_DO_NODE_ID_MAX];
    uint16_t owner[EKV_DO_PARTITIONS]; /* index into nodes */
    uint64_t epoch[EKV_DO_PARTITIONS]; /* +1 per owner change */
    uint32_t count[EKV_DO_PTABLE_MAX]; /* partitions per node */
} ekv_do_ptable_t;

/* The partition of an object id: ekv_do_partition_of (storage/ids.h). */

/* The most partitions one of n nodes may own. */
uint32_t ekv_do_ptable_cap(size_t n);
/* A table of n (1..EKV_DO_PTABLE_MAX) distinct node ids, from scratch. 0 or EKV_EBAD_REQUEST
 * (no node, too many, an id empty, too long or repeated). Epochs start at 1. */
int ekv_do_ptable_build(ekv_do_ptable_t *t, const char *const *nodes, size_t n);
/* Add a node; *moved = partitions that changed owner. 0, EKV_EBAD_REQUEST (bad or known id),
 * EKV_ENOMEM... never leaves a half-changed table. */
int ekv_do_ptable_join(ekv_do_ptable_t *t, const char *node, size_t *moved);
/* Remove a node (at least one must remain); *moved as above. 0 or EKV_EBAD_REQUEST. */
int ekv_do_ptable_leave(ekv_do_ptable_t *t, const char *node, size_t *moved);
/* Index of a node, -1 when absent. */
int ekv_do_ptable_find(const ekv_do_ptable_t *t, const char *node);

#endif
