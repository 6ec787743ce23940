/*
 * table.h - a node's copy of the Durable Object partition table (docs/DURABLE-OBJECTS.md
 * "Owners across the cluster") and its wire form (proto/do_cluster.proto DoPartitionTable).
 *
 * The assignment itself is server/api/do/ptable.h (rendezvous hashing with a 1.10 load cap,
 * incremental join and leave). This adds what a cluster needs around it: each owner's link
 * address, the pending flag of partitions whose old owner has not let go yet, the count of
 * moves, and the rule for epochs: epoch[p] = the table version at which p got its current
 * owner (so it only grows, and every owner change changes it). A table without nodes means
 * the primary owns every partition. Pure: no I/O, no loop.
 */
#ifndef EKV_SERVER_NODE_DO_TABLE_H
#define EKV_SERVER_NODE_DO_TABLE_H

#include "common/buf.h"
#include "server/api/do/ptable.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_DO_ADDR_MAX      128  /* "host:port" of an owner's link listener, NUL included */
#define EKV_DO_OWNER_PRIMARY (-1) /* ekv_do_table_owner: the primary */

typedef struct {
    ekv_do_ptable_t pt; /* pt.nnodes == 0: the primary owns every partition */
    char addr[EKV_DO_PTABLE_MAX][EKV_DO_ADDR_MAX];
    uint8_t pending[EKV_DO_PARTITIONS];
    uint64_t moves; /* partitions moved since the cluster began */
} ekv_do_table_t;

/* Version 0: no node, the primary owns all, epochs 0. */
void ekv_do_table_init(ekv_do_table_t *t);
/* The owner of p: a node index, or EKV_DO_OWNER_PRIMARY. */
int ekv_do_table_owner(const ekv_do_table_t *t, uint32_t p);
/* Partitions pending in the table. */
size_t ekv_do_table_npending(const ekv_do_table_t *t);

/* Wire form. encode: 0 or EKV_ENOMEM. decode: 0, or EKV_EBAD_REQUEST for anything malformed
 * (sizes, unknown or repeated node ids, owners out of range, an address too long); t is then
 * unchanged. */
int ekv_do_table_encode(const ekv_do_table_t *t, ekv_buf_t *out);
int ekv_do_table_decode(const void *buf, size_t len, ekv_do_table_t *t);

/*
 * Changes (the primary). Each makes version+1, sets epoch[p] = the new version for every
 * partition whose owner changed and marks it in changed[] (bitmap, bit p = byte p/8 bit
 * p%8; may be NULL), adds them to moves, and sets *moved. Pending flags are the caller's.
 *   join   a node (id, addr) not in the table: the first one takes every partition from the
 *          primary; later ones their share (ptable join)
 *   leave  a node in the table: its partitions go to the others, or to the primary when it
 *          was the last
 * 0, or EKV_EBAD_REQUEST (bad or known id / unknown id), EKV_ENOMEM; t unchanged on error.
 */
int ekv_do_table_join(ekv_do_table_t *t, const char *id, const char *addr, uint8_t *changed,
                      size_t *moved);
int ekv_do_table_leave(ekv_do_table_t *t, const char *id, uint8_t *changed, size_t *moved);
/* A node's address changed (a restart on another port): version+1, no partition moves. */
int ekv_do_table_set_addr(ekv_do_table_t *t, int node, const char *addr);

static inline int ekv_do_bit(const uint8_t *bits, uint32_t p)
{
    return (bits[p >> 3] >> (p & 7)) & 1;
}
static inline void ekv_do_bit_set(uint8_t *bits, uint32_t p)
{
    bits[p >> 3] = (uint8_t)(bits[p >> 3] | (1u << (p & 7)));
}
#define EKV_DO_PART_BYTES (EKV_DO_PARTITIONS / 8)

#endif
