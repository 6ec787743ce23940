/*
 * cluster.c - the node's Durable Object cluster state (docl.h): start and stop, installing a
 * table (what this node serves, loses and gains), the runtime's ownership hooks, and the
 * change stream's DO records.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/do/do.h"
#include "server/node/do/docl.h"
#include "storage/catrec.h"
#include "storage/keys.h"

#include <stdlib.h>
#include <string.h>

#define P EKV_DO_PARTITIONS

int ekv__docl_self(const ekv_docl_t *c)
{
    if (!c->owning)
        return -1;
    return ekv_do_ptable_find(&c->table->pt, c->n->node_id);
}

/* What this node does with p under table t. */
static int want_state(const ekv_docl_t *c, const ekv_do_table_t *t, int self, uint32_t p)
{
    int o = ekv_do_table_owner(t, p);
    int mine = c->placing ? o == EKV_DO_OWNER_PRIMARY : (self >= 0 && o == self);
    if (!mine || c->leaving)
        return DOCL_NONE;
    return t->pending[p] ? DOCL_PENDING : DOCL_ACTIVE;
}

int ekv__docl_install(ekv_docl_t *c, const ekv_do_table_t *t)
{
    if (c->table->pt.version >= t->pt.version && c->table->pt.version != 0)
        return 0;
    if (t != c->table)
        memcpy(c->table, t, sizeof(*t));
    int self = ekv__docl_self(c);
    uint8_t lost[EKV_DO_PART_BYTES], gained[EKV_DO_PART_BYTES];
    memset(lost, 0, sizeof(lost));
    memset(gained, 0, sizeof(gained));
    size_t nlost = 0, ngained = 0;
    uint32_t gen = ++c->next_load_gen;
    for (uint32_t p = 0; p < P; p++) {
        int want = want_state(c, c->table, self, p), had = c->here[p];
        if (want == DOCL_NONE || want == DOCL_PENDING) {
            if (had == DOCL_ACTIVE || had == DOCL_LOADING) {
                ekv_do_bit_set(lost, p);
                nlost++;
            }
            c->here[p] = (uint8_t)want;
        } else if (had == DOCL_NONE || had == DOCL_PENDING) {
            c->here[p] = DOCL_LOADING; /* active once its alarms are loaded */
            c->load_gen[p] = gen;
            ekv_do_bit_set(gained, p);
            ngained++;
        }
    }
    ekv_log_info("durable object partition table installed",
                 "version=%llu nodes=%zu pending=%zu lost=%zu gained=%zu",
                 (unsigned long long)c->table->pt.version, c->table->pt.nnodes,
                 ekv_do_table_npending(c->table), nlost, ngained);
    ekv_app_t *app = c->n->app;
    if (nlost && app->dos)
        ekv_do_partitions_lost(app->dos, lost);
    if (c->owning)
        c->hb_due = 1; /* tell the primary at once: it hands our old partitions on then */
    if (ngained)
        ekv__docl_load_alarms(c, gained, gen);
    ekv__docl_route_tick(c);
    return 1;
}

/* The runtime's view: the partition is this node's (serving it, or loading its alarms: calls
 * of a LOADING partition are parked by route.c, its alarms are being scheduled here). */
int ekv__docl_here(void *ctx, uint32_t p)
{
    const ekv_docl_t *c = ctx;
    return p < P && (c->here[p] == DOCL_ACTIVE || c->here[p] == DOCL_LOADING);
}

uint64_t ekv__docl_epoch(void *ctx, uint32_t p)
{
    const ekv_docl_t *c = ctx;
    return p < P ? c->table->pt.epoch[p] : 0;
}

static void on_tick(uv_timer_t *t)
{
    ekv_docl_t *c = t->data;
    if (c->placing)
        ekv__docl_placement_tick(c);
    if (c->owning)
        ekv__docl_owner_tick(c);
    ekv__docl_route_tick(c);
}

int ekv_node_do_cluster_start(ekv_node_t *n)
{
    if (n->role == EKV_ROLE_STANDALONE || n->docl)
        return 0;
    ekv_docl_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->table = malloc(sizeof(*c->table)))) {
        free(c);
        return -1;
    }
    ekv_do_table_init(c->table);
    ekv_buf_init(&c->table_wire, 0);
    c->n = n;
    c->lease_ms = (int)n->cfg->do_lease_ms;
    c->heartbeat_ms = (int)n->cfg->do_heartbeat_ms;
    c->move_wait_ms = (int)n->cfg->do_move_wait_ms;
    n->docl = c;
    uv_timer_init(n->app->loop, &c->tick);
    c->tick.data = c;
    c->tick_open = 1;
    uv_timer_start(&c->tick, on_tick, DOCL_TICK_MS, DOCL_TICK_MS);
    if (n->role == EKV_ROLE_EDGE)
        return ekv__docl_owner_start(c);
    if (n->role == EKV_ROLE_REPLICA && n->app->store) { /* routing by the stored table */
        char *buf = NULL;
        size_t len = 0;
        if (ekv_store_do_ptable_get(n->app->store, &buf, &len) == 0 &&
            ekv_do_table_decode(buf, len, c->table))
            ekv_do_table_init(c->table);
        free(buf);
    }
    return 0;
}

int ekv_node_do_placement_start(ekv_node_t *n)
{
    if (!n->docl && ekv_node_do_cluster_start(n))
        return -1;
    return ekv__docl_placement_start(n->docl);
}

static void tick_closed(uv_handle_t *h)
{
    ekv_docl_t *c = h->data;
    ekv__docl_placement_free(c);
    ekv_buf_deinit(&c->table_wire);
    free(c->table);
    free(c);
}

void ekv_node_do_cluster_stop(ekv_node_t *n)
{
    ekv_docl_t *c = n->docl;
    if (!c || c->stopping)
        return;
    c->stopping = 1;
    ekv__docl_route_stop(c);
    ekv__docl_owner_stop(c);
    n->docl = NULL;
    uv_timer_stop(&c->tick);
    uv_close((uv_handle_t *)&c->tick, tick_closed);
}

/* ---------------------------------------------------------------- change stream */

void ekv_node_do_applied(ekv_node_t *n, const Edgekv__KeyChange *r)
{
    ekv_docl_t *c = n->docl;
    ekv_app_t *app = n->app;
    if (r->op == EDGEKV__CHANGE_OP__DO_PTABLE && c && !c->placing) {
        ekv_do_table_t *t = malloc(sizeof(*t));
        if (t && ekv_do_table_decode(r->do_record.data, r->do_record.len, t) == 0)
            ekv__docl_install(c, t);
        else
            ekv_log_error("bad durable object partition table in the change stream", "seq=%llu",
                          (unsigned long long)r->seq);
        free(t);
        return;
    }
    if (n->role != EKV_ROLE_EDGE || !app->dos)
        return; /* a replica's runtime (after promotion) loads namespaces from its store */
    if (r->op == EDGEKV__CHANGE_OP__DO_NS_PUT) {
        ekv_do_ns_t ns;
        if (ekv_catrec_do_ns_decode((const char *)r->do_record.data, r->do_record.len, &ns) == 0)
            ekv_do_ns_upsert(app->dos, &ns);
    } else if (r->op == EDGEKV__CHANGE_OP__DO_NS_DELETE && r->namespace_id.len == EKV_NSID_LEN) {
        ekv_do_ns_remove(app->dos, r->namespace_id.data);
    }
}

void ekv_node_do_catalog_entry(ekv_node_t *n, const char *key, size_t klen, const char *val,
                               size_t vlen)
{
    ekv_app_t *app = n->app;
    if (n->docl && !n->docl->placing && klen == EKV_KEY_DO_PTABLE_LEN &&
        memcmp(key, EKV_KEY_DO_PTABLE, klen) == 0) {
        ekv_do_table_t *t = malloc(sizeof(*t));
        if (t && ekv_do_table_decode(val, vlen, t) == 0)
            ekv__docl_install(n->docl, t);
        free(t);
        return;
    }
    if (!app->dos || klen < EKV_KEY_PFX_LEN || memcmp(key, EKV_KEY_PFX_DO_NS, EKV_KEY_PFX_LEN))
        return;
    ekv_do_ns_t ns;
    if (ekv_catrec_do_ns_decode(val, vlen, &ns) == 0)
        ekv_do_ns_upsert(app->dos, &ns);
}
