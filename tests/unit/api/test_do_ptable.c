/*
 * The Durable Object partition table (server/api/do/ptable.h): balance (max/avg <= 1.10) and
 * movement (a join or a leave moves at most 1.1x the ideal share, and nothing else), for
 * N = 3..100 nodes, measured, not assumed.
 */
#include "common/errors.h"
#include "server/api/do/ptable.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P EKV_DO_PARTITIONS

static char names[EKV_DO_PTABLE_MAX + 1][EKV_DO_NODE_ID_MAX];
static const char *ids[EKV_DO_PTABLE_MAX + 1];

static void make_names(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "edge-%zu.example:%zu", i, 8000 + i);
        ids[i] = names[i];
    }
}

/* max/avg of the table, and that counts match the owners. */
static double balance(const ekv_do_ptable_t *t)
{
    uint32_t count[EKV_DO_PTABLE_MAX] = {0}, max = 0;
    for (uint32_t p = 0; p < P; p++) {
        if (t->owner[p] >= t->nnodes)
            cr_assert(0, "partition %u owned by node %u of %zu", p, t->owner[p], t->nnodes);
        count[t->owner[p]]++;
    }
    for (size_t i = 0; i < t->nnodes; i++) {
        if (count[i] != t->count[i])
            cr_assert(0, "node %zu counts %u, owns %u", i, t->count[i], count[i]);
        if (count[i] > max)
            max = count[i];
    }
    return (double)max / ((double)P / (double)t->nnodes);
}

static ekv_do_ptable_t a, b;

Test(do_ptable, partition_of_uses_the_leading_14_bits)
{
    uint8_t id[32] = {0};
    cr_assert_eq(ekv_do_partition_of(id), 0);
    id[0] = 0xff;
    id[1] = 0xff;
    cr_assert_eq(ekv_do_partition_of(id), P - 1);
    id[0] = 0x01;
    id[1] = 0x03; /* 0000 0001 0000 00|11 */
    cr_assert_eq(ekv_do_partition_of(id), 0x40);
}

Test(do_ptable, bad_input)
{
    make_names(3);
    const char *dup[2] = {"x", "x"};
    cr_assert_eq(ekv_do_ptable_build(&a, dup, 2), EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_do_ptable_build(&a, ids, 0), EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_do_ptable_build(&a, ids, 3), 0);
    size_t moved = 7;
    cr_assert_eq(ekv_do_ptable_join(&a, ids[1], &moved), EKV_EBAD_REQUEST);
    cr_assert_eq(moved, 0);
    cr_assert_eq(ekv_do_ptable_leave(&a, "nope", &moved), EKV_EBAD_REQUEST);
    cr_assert_eq(ekv_do_ptable_leave(&a, ids[0], &moved), 0);
    cr_assert_eq(ekv_do_ptable_leave(&a, ids[1], &moved), 0);
    cr_assert_eq(ekv_do_ptable_leave(&a, ids[2], &moved), EKV_EBAD_REQUEST, "the last node stays");
    cr_assert_eq(a.nnodes, 1);
    cr_assert_eq(a.count[0], P);
}

Test(do_ptable, deterministic)
{
    make_names(7);
    cr_assert_eq(ekv_do_ptable_build(&a, ids, 7), 0);
    cr_assert_eq(ekv_do_ptable_build(&b, ids, 7), 0);
    cr_assert_eq(memcmp(a.owner, b.owner, sizeof(a.owner)), 0);
}

/* For every N in 3..100: build, join one, leave one; balance and movement each time. */
Test(do_ptable, balance_and_movement_n3_to_100, .timeout = 120)
{
    double worst_bal = 0, worst_join = 0, worst_leave = 0;
    for (size_t n = 3; n <= 100; n++) {
        make_names(n + 1);
        cr_assert_eq(ekv_do_ptable_build(&a, ids, n), 0);
        double bal = balance(&a);
        if (bal > 1.10)
            cr_assert(0, "N=%zu: max/avg %.3f after build", n, bal);
        worst_bal = bal > worst_bal ? bal : worst_bal;

        /* join: only the new node's share moves */
        b = a;
        size_t moved = 0;
        cr_assert_eq(ekv_do_ptable_join(&b, ids[n], &moved), 0);
        double ideal = (double)P / (double)(n + 1);
        if ((double)moved > 1.1 * ideal)
            cr_assert(0, "N=%zu: join moved %zu > 1.1 x %.0f", n, moved, ideal);
        worst_join = moved / ideal > worst_join ? moved / ideal : worst_join;
        bal = balance(&b);
        if (bal > 1.10)
            cr_assert(0, "N=%zu: max/avg %.3f after a join", n, bal);
        size_t changed = 0;
        for (uint32_t p = 0; p < P; p++) {
            int same = strcmp(a.nodes[a.owner[p]], b.nodes[b.owner[p]]) == 0;
            changed += !same;
            if (same ? b.epoch[p] != a.epoch[p] : b.epoch[p] != a.epoch[p] + 1)
                cr_assert(0, "N=%zu: partition %u epoch %llu -> %llu", n, p,
                          (unsigned long long)a.epoch[p], (unsigned long long)b.epoch[p]);
            if (!same && strcmp(b.nodes[b.owner[p]], ids[n]) != 0)
                cr_assert(0, "N=%zu: partition %u moved between old nodes", n, p);
        }
        cr_assert_eq(changed, moved);
        cr_assert_eq(b.version, a.version + 1);

        /* leave (a node chosen by n): only its partitions move */
        const char *gone = ids[(n * 7) % n];
        int gi = ekv_do_ptable_find(&b, gone);
        cr_assert_geq(gi, 0);
        uint32_t had = b.count[gi];
        ekv_do_ptable_t c = b;
        cr_assert_eq(ekv_do_ptable_leave(&c, gone, &moved), 0);
        cr_assert_eq(moved, had);
        ideal = (double)P / (double)(n + 1);
        if ((double)moved > 1.1 * ideal)
            cr_assert(0, "N=%zu: leave moved %zu > 1.1 x %.0f", n + 1, moved, ideal);
        worst_leave = moved / ideal > worst_leave ? moved / ideal : worst_leave;
        cr_assert_eq(ekv_do_ptable_find(&c, gone), -1);
        bal = balance(&c);
        if (bal > 1.10)
            cr_assert(0, "N=%zu: max/avg %.3f after a leave", n, bal);
        for (uint32_t p = 0; p < P; p++)
            if (strcmp(b.nodes[b.owner[p]], gone) != 0 &&
                strcmp(b.nodes[b.owner[p]], c.nodes[c.owner[p]]) != 0)
                cr_assert(0, "N=%zu: partition %u moved though its owner stayed", n, p);
    }
    cr_log_info("worst max/avg %.3f, join moved %.3f x ideal, leave %.3f x ideal", worst_bal,
                worst_join, worst_leave);
}
