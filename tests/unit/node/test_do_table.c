/*
 * test_do_table.c - the cluster's partition table (server/node/do/table.h): epochs by
 * version on join and leave (first node from the primary, last node back to it), the moved
 * set, and the DoPartitionTable wire form (round trip; malformed tables refused).
 */
#include "common/errors.h"
#include "do_cluster.pb-c.h"
#include "server/node/do/table.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#define P EKV_DO_PARTITIONS

static ekv_do_table_t *t_new(void)
{
    ekv_do_table_t *t = malloc(sizeof(*t));
    cr_assert_not_null(t);
    ekv_do_table_init(t);
    return t;
}

static size_t bits(const uint8_t *b)
{
    size_t n = 0;
    for (uint32_t p = 0; p < P; p++)
        n += ekv_do_bit(b, p);
    return n;
}

Test(do_table, empty_table_is_the_primarys)
{
    ekv_do_table_t *t = t_new();
    cr_assert_eq(t->pt.version, 0);
    for (uint32_t p = 0; p < P; p += 997) {
        cr_assert_eq(ekv_do_table_owner(t, p), EKV_DO_OWNER_PRIMARY);
        cr_assert_eq(t->pt.epoch[p], 0);
    }
    cr_assert_eq(ekv_do_table_owner(t, P), EKV_DO_OWNER_PRIMARY, "out of range: no owner index");
    free(t);
}

Test(do_table, join_and_leave_set_epochs_to_the_version)
{
    ekv_do_table_t *t = t_new();
    uint8_t ch[EKV_DO_PART_BYTES];
    size_t moved;
    memset(ch, 0, sizeof(ch));
    cr_assert_eq(ekv_do_table_join(t, "e1", "127.0.0.1:1", ch, &moved), 0);
    cr_assert_eq(t->pt.version, 1);
    cr_assert_eq(moved, P, "the first owner takes everything from the primary");
    cr_assert_eq(bits(ch), P);
    for (uint32_t p = 0; p < P; p++)
        cr_assert(t->pt.owner[p] == 0 && t->pt.epoch[p] == 1);
    memset(ch, 0, sizeof(ch));
    cr_assert_eq(ekv_do_table_join(t, "e2", "127.0.0.1:2", ch, &moved), 0);
    cr_assert_eq(t->pt.version, 2);
    cr_assert_eq(moved, P / 2, "the second takes its share: %zu", moved);
    cr_assert_eq(bits(ch), moved);
    for (uint32_t p = 0; p < P; p++) {
        int o = ekv_do_table_owner(t, p);
        if (ekv_do_bit(ch, p))
            cr_assert(o == 1 && t->pt.epoch[p] == 2, "moved p=%u owner=%d", p, o);
        else
            cr_assert(o == 0 && t->pt.epoch[p] == 1, "kept p=%u", p);
    }
    cr_assert_str_eq(t->addr[1], "127.0.0.1:2");
    cr_assert_eq(ekv_do_table_join(t, "e2", "127.0.0.1:9", NULL, &moved), EKV_EBAD_REQUEST);
    cr_assert_eq(t->pt.version, 2, "a refused join changes nothing");
    cr_assert_eq(ekv_do_table_join(t, "e3", "127.0.0.1:3", NULL, &moved), 0);
    /* e1 leaves: only its partitions move, to e2/e3, epoch 4; addresses follow the ids */
    uint16_t before[P];
    for (uint32_t p = 0; p < P; p++)
        before[p] = t->pt.owner[p];
    int e1 = ekv_do_ptable_find(&t->pt, "e1");
    memset(ch, 0, sizeof(ch));
    cr_assert_eq(ekv_do_table_leave(t, "e1", ch, &moved), 0);
    cr_assert_eq(t->pt.version, 4);
    cr_assert_eq(t->pt.nnodes, 2);
    for (uint32_t p = 0; p < P; p++)
        cr_assert_eq(ekv_do_bit(ch, p), before[p] == e1, "only e1's partitions move (p=%u)", p);
    for (size_t i = 0; i < t->pt.nnodes; i++)
        cr_assert_str_eq(t->addr[i],
                         strcmp(t->pt.nodes[i], "e2") == 0 ? "127.0.0.1:2" : "127.0.0.1:3");
    cr_assert_eq(ekv_do_table_leave(t, "e1", NULL, &moved), EKV_EBAD_REQUEST);
    /* the last two leave: back to the primary, epochs move on */
    cr_assert_eq(ekv_do_table_leave(t, "e2", NULL, &moved), 0);
    cr_assert_eq(ekv_do_table_leave(t, "e3", NULL, &moved), 0);
    cr_assert_eq(moved, P);
    cr_assert_eq(t->pt.nnodes, 0);
    for (uint32_t p = 0; p < P; p++) {
        cr_assert_eq(ekv_do_table_owner(t, p), EKV_DO_OWNER_PRIMARY);
        cr_assert_eq(t->pt.epoch[p], 6);
    }
    cr_assert_gt(t->moves, (uint64_t)(P + P / 2 + P), "every move is counted");
    free(t);
}

Test(do_table, wire_round_trip)
{
    ekv_do_table_t *t = t_new(), *u = t_new();
    size_t moved;
    cr_assert_eq(ekv_do_table_join(t, "edge-a", "10.0.0.1:7000", NULL, &moved), 0);
    cr_assert_eq(ekv_do_table_join(t, "edge-b", "10.0.0.2:7000", NULL, &moved), 0);
    t->pending[3] = 1;
    t->pending[P - 1] = 1;
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    cr_assert_eq(ekv_do_table_encode(t, &b), 0);
    cr_assert_eq(ekv_do_table_decode(b.data, b.len, u), 0);
    cr_assert_eq(u->pt.version, t->pt.version);
    cr_assert_eq(u->pt.nnodes, 2);
    cr_assert_eq(u->moves, t->moves);
    cr_assert_eq(memcmp(u->pt.owner, t->pt.owner, sizeof(t->pt.owner)), 0);
    cr_assert_eq(memcmp(u->pt.epoch, t->pt.epoch, sizeof(t->pt.epoch)), 0);
    cr_assert_eq(memcmp(u->pending, t->pending, sizeof(t->pending)), 0);
    cr_assert_eq(memcmp(u->pt.count, t->pt.count, sizeof(t->pt.count)), 0, "counts rebuilt");
    cr_assert_str_eq(u->addr[1], "10.0.0.2:7000");
    /* the primary's table (no node) too */
    ekv_do_table_t *e = t_new();
    cr_assert_eq(ekv_do_table_encode(e, &b), 0);
    cr_assert_eq(ekv_do_table_decode(b.data, b.len, u), 0);
    cr_assert_eq(u->pt.nnodes, 0);
    cr_assert_eq(ekv_do_table_owner(u, 5), EKV_DO_OWNER_PRIMARY);
    ekv_buf_deinit(&b);
    free(t);
    free(u);
    free(e);
}

/* Encode m, decode into u: the decoder's verdict. */
static int decode_msg(const Edgekv__DoPartitionTable *m, ekv_do_table_t *u)
{
    size_t len = edgekv__do_partition_table__get_packed_size(m);
    uint8_t *buf = malloc(len + 1);
    cr_assert_not_null(buf);
    edgekv__do_partition_table__pack(m, buf);
    int rc = ekv_do_table_decode(buf, len, u);
    free(buf);
    return rc;
}

Test(do_table, malformed_tables_are_refused)
{
    ekv_do_table_t *u = t_new();
    cr_assert_eq(ekv_do_table_decode("\xff\xff\xff", 3, u), EKV_EBAD_REQUEST);
    static uint8_t owner[2 * P], epoch[8 * P], pending[P];
    Edgekv__DoNode n0 = EDGEKV__DO_NODE__INIT, n1 = EDGEKV__DO_NODE__INIT;
    n0.node_id = "a";
    n0.addr = "h:1";
    n1.node_id = "a"; /* repeated */
    n1.addr = "h:2";
    Edgekv__DoNode *nodes[2] = {&n0, &n1};
    Edgekv__DoPartitionTable m = EDGEKV__DO_PARTITION_TABLE__INIT;
    m.version = 3;
    m.owner.data = owner;
    m.owner.len = sizeof(owner);
    m.epoch.data = epoch;
    m.epoch.len = sizeof(epoch);
    m.pending.data = pending;
    m.pending.len = sizeof(pending);
    m.n_nodes = 1;
    m.nodes = nodes;
    cr_assert_eq(decode_msg(&m, u), 0, "valid: one node owning all");
    cr_assert_eq(u->pt.count[0], P);
    m.n_nodes = 2;
    cr_assert_eq(decode_msg(&m, u), EKV_EBAD_REQUEST, "repeated node id");
    m.n_nodes = 1;
    owner[2 * 7] = 1; /* node index 1 of 1 */
    cr_assert_eq(decode_msg(&m, u), EKV_EBAD_REQUEST, "owner out of range");
    owner[2 * 7] = 0;
    m.owner.len = 2 * P - 2;
    cr_assert_eq(decode_msg(&m, u), EKV_EBAD_REQUEST, "short owner array");
    m.owner.len = 2 * P;
    epoch[8 * 9] = 4; /* epoch 4 > version 3 */
    cr_assert_eq(decode_msg(&m, u), EKV_EBAD_REQUEST, "an epoch from the future");
    epoch[8 * 9] = 0;
    m.n_nodes = 0; /* no node: every owner must be 0xFFFF */
    cr_assert_eq(decode_msg(&m, u), EKV_EBAD_REQUEST, "an owner in a table without nodes");
    char longaddr[200];
    memset(longaddr, 'x', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = '\0';
    n0.addr = longaddr;
    m.n_nodes = 1;
    cr_assert_eq(decode_msg(&m, u), EKV_EBAD_REQUEST, "address too long");
    cr_assert_eq(u->pt.version, 3, "a refused table leaves the last good one");
    free(u);
}
