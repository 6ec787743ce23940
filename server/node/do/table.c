/*
 * table.c - the partition table around ptable.h: addresses, pending flags, epochs by version,
 * and the DoPartitionTable wire form (table.h).
 */
#include "server/node/do/table.h"

#include "common/errors.h"
#include "do_cluster.pb-c.h"

#include <stdlib.h>
#include <string.h>

#define P EKV_DO_PARTITIONS

void ekv_do_table_init(ekv_do_table_t *t)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t p = 0; p < P; p++)
        t->pt.owner[p] = 0xFFFF;
}

int ekv_do_table_owner(const ekv_do_table_t *t, uint32_t p)
{
    if (t->pt.nnodes == 0 || p >= P || t->pt.owner[p] >= t->pt.nnodes)
        return EKV_DO_OWNER_PRIMARY;
    return t->pt.owner[p];
}

size_t ekv_do_table_npending(const ekv_do_table_t *t)
{
    size_t n = 0;
    for (uint32_t p = 0; p < P; p++)
        n += t->pending[p] != 0;
    return n;
}

int ekv_do_table_encode(const ekv_do_table_t *t, ekv_buf_t *out)
{
    size_t nn = t->pt.nnodes;
    Edgekv__DoNode *nodes = calloc(nn ? nn : 1, sizeof(*nodes));
    Edgekv__DoNode **np = calloc(nn ? nn : 1, sizeof(*np));
    uint8_t *owner = malloc(2 * P), *epoch = malloc(8 * P);
    int rc = nodes && np && owner && epoch ? 0 : EKV_ENOMEM;
    if (!rc) {
        for (size_t i = 0; i < nn; i++) {
            edgekv__do_node__init(&nodes[i]);
            nodes[i].node_id = (char *)t->pt.nodes[i];
            nodes[i].addr = (char *)t->addr[i];
            np[i] = &nodes[i];
        }
        for (uint32_t p = 0; p < P; p++) {
            uint16_t o = nn ? t->pt.owner[p] : 0xFFFF;
            owner[2 * p] = (uint8_t)o;
            owner[2 * p + 1] = (uint8_t)(o >> 8);
            for (int b = 0; b < 8; b++)
                epoch[8 * p + b] = (uint8_t)(t->pt.epoch[p] >> (8 * b));
        }
        Edgekv__DoPartitionTable m = EDGEKV__DO_PARTITION_TABLE__INIT;
        m.version = t->pt.version;
        m.n_nodes = nn;
        m.nodes = np;
        m.owner.data = owner;
        m.owner.len = 2 * P;
        m.epoch.data = epoch;
        m.epoch.len = 8 * P;
        m.pending.data = (uint8_t *)t->pending;
        m.pending.len = P;
        m.moves = t->moves;
        size_t len = edgekv__do_partition_table__get_packed_size(&m);
        ekv_buf_reset(out);
        if (ekv_buf_reserve(out, len))
            rc = EKV_ENOMEM;
        else
            out->len = edgekv__do_partition_table__pack(&m, (uint8_t *)out->data);
    }
    free(nodes);
    free(np);
    free(owner);
    free(epoch);
    return rc;
}

int ekv_do_table_decode(const void *buf, size_t len, ekv_do_table_t *out)
{
    Edgekv__DoPartitionTable *m = edgekv__do_partition_table__unpack(NULL, len, buf);
    if (!m)
        return EKV_EBAD_REQUEST;
    int rc = EKV_EBAD_REQUEST;
    ekv_do_table_t *t = malloc(sizeof(*t));
    if (!t) {
        rc = EKV_ENOMEM;
        goto out;
    }
    ekv_do_table_init(t);
    if (m->n_nodes > EKV_DO_PTABLE_MAX || m->owner.len != 2 * P || m->epoch.len != 8 * P ||
        (m->pending.len != P && m->pending.len != 0))
        goto out;
    t->pt.version = m->version;
    t->pt.nnodes = m->n_nodes;
    t->moves = m->moves;
    for (size_t i = 0; i < m->n_nodes; i++) {
        const char *id = m->nodes[i]->node_id, *addr = m->nodes[i]->addr;
        size_t il = id ? strlen(id) : 0, al = addr ? strlen(addr) : 0;
        if (il == 0 || il >= EKV_DO_NODE_ID_MAX || al >= EKV_DO_ADDR_MAX)
            goto out;
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->pt.nodes[j], id) == 0)
                goto out;
        memcpy(t->pt.nodes[i], id, il + 1);
        memcpy(t->addr[i], addr ? addr : "", al + 1);
    }
    for (uint32_t p = 0; p < P; p++) {
        uint16_t o = (uint16_t)(m->owner.data[2 * p] | (m->owner.data[2 * p + 1] << 8));
        if (t->pt.nnodes ? o >= t->pt.nnodes : o != 0xFFFF)
            goto out;
        t->pt.owner[p] = o;
        if (t->pt.nnodes)
            t->pt.count[o]++;
        uint64_t e = 0;
        for (int b = 0; b < 8; b++)
            e |= (uint64_t)m->epoch.data[8 * p + b] << (8 * b);
        if (e > t->pt.version)
            goto out; /* an epoch is the version that set it */
        t->pt.epoch[p] = e;
        t->pending[p] = m->pending.len ? m->pending.data[p] != 0 : 0;
    }
    memcpy(out, t, sizeof(*t));
    rc = 0;
out:
    free(t);
    edgekv__do_partition_table__free_unpacked(m, NULL);
    return rc;
}

/* After a change made by ptable (or a rebuild) from the owners in before[] (node ids, ""
 * for the primary): epochs and the moved set by node id. */
static void settle(ekv_do_table_t *t, char (*before)[EKV_DO_NODE_ID_MAX], uint64_t version,
                   uint8_t *changed, size_t *moved)
{
    *moved = 0;
    t->pt.version = version;
    for (uint32_t p = 0; p < P; p++) {
        int o = ekv_do_table_owner(t, p);
        const char *now = o == EKV_DO_OWNER_PRIMARY ? "" : t->pt.nodes[o];
        if (strcmp(now, before[p]) == 0) {
            continue;
        }
        t->pt.epoch[p] = version;
        t->pending[p] = 0;
        if (changed)
            ekv_do_bit_set(changed, p);
        ++*moved;
    }
    t->moves += *moved;
}

/* Owner ids of every partition (malloc'd), or NULL. */
static char (*owners_of(const ekv_do_table_t *t))[EKV_DO_NODE_ID_MAX]
{
    char(*b)[EKV_DO_NODE_ID_MAX] = malloc((size_t)P * EKV_DO_NODE_ID_MAX);
    if (!b)
        return NULL;
    for (uint32_t p = 0; p < P; p++) {
        int o = ekv_do_table_owner(t, p);
        strcpy(b[p], o == EKV_DO_OWNER_PRIMARY ? "" : t->pt.nodes[o]);
    }
    return b;
}

int ekv_do_table_join(ekv_do_table_t *t, const char *id, const char *addr, uint8_t *changed,
                      size_t *moved)
{
    *moved = 0;
    if (!addr || strlen(addr) >= EKV_DO_ADDR_MAX)
        return EKV_EBAD_REQUEST;
    char(*before)[EKV_DO_NODE_ID_MAX] = owners_of(t);
    ekv_do_ptable_t *pt = malloc(sizeof(*pt));
    if (!before || !pt) {
        free(before);
        free(pt);
        return EKV_ENOMEM;
    }
    memcpy(pt, &t->pt, sizeof(*pt));
    size_t ignored;
    int rc =
        pt->nnodes == 0 ? ekv_do_ptable_build(pt, &id, 1) : ekv_do_ptable_join(pt, id, &ignored);
    if (rc == 0) {
        uint64_t version = t->pt.version + 1;
        memcpy(&t->pt, pt, sizeof(*pt));
        int k = ekv_do_ptable_find(&t->pt, id);
        strcpy(t->addr[k], addr);
        if (t->pt.nnodes == 1) /* built from scratch: the epochs come from settle */
            memset(t->pt.epoch, 0, sizeof(t->pt.epoch));
        settle(t, before, version, changed, moved);
    }
    free(before);
    free(pt);
    return rc;
}

int ekv_do_table_leave(ekv_do_table_t *t, const char *id, uint8_t *changed, size_t *moved)
{
    *moved = 0;
    int k = ekv_do_ptable_find(&t->pt, id);
    if (k < 0)
        return EKV_EBAD_REQUEST;
    char(*before)[EKV_DO_NODE_ID_MAX] = owners_of(t);
    if (!before)
        return EKV_ENOMEM;
    uint64_t version = t->pt.version + 1;
    if (t->pt.nnodes == 1) {
        ekv_do_ptable_t *pt = &t->pt;
        pt->nnodes = 0;
        pt->nodes[0][0] = '\0';
        pt->count[0] = 0;
        for (uint32_t p = 0; p < P; p++)
            pt->owner[p] = 0xFFFF;
        t->addr[0][0] = '\0';
    } else {
        /* ptable's leave moves the last node into the leaving one's index: addresses too */
        size_t last = t->pt.nnodes - 1, ignored;
        int rc = ekv_do_ptable_leave(&t->pt, id, &ignored);
        if (rc) {
            free(before);
            return rc;
        }
        if ((size_t)k != last)
            strcpy(t->addr[k], t->addr[last]);
        t->addr[last][0] = '\0';
    }
    settle(t, before, version, changed, moved);
    free(before);
    return 0;
}

int ekv_do_table_set_addr(ekv_do_table_t *t, int node, const char *addr)
{
    if (node < 0 || (size_t)node >= t->pt.nnodes || !addr || strlen(addr) >= EKV_DO_ADDR_MAX)
        return EKV_EBAD_REQUEST;
    strcpy(t->addr[node], addr);
    t->pt.version++;
    return 0;
}
