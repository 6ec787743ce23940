/*
 * promote.c - promotion and fencing (docs/REPLICATION.md, "Promotion and fencing"): a replica
 * promoted stops following, saves epoch+1 and a new history id (the old one kept as
 * history2), takes writes and listens for replicas; then it probes every --primary address
 * once a second with its epoch until each answered FENCED, so a live old primary stops taking
 * writes. A primary that sees a newer epoch fences itself (saved across restarts).
 */
#include "server/node/node.h"
#include "server/api/do/do.h"
#include "server/api/auth.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/frame.h"
#include "replication/link.h"
#include "replication/primary.h"
#include "replication/replica.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_EVERY_MS 1000
#define MAX_PROBES     16

/* A fence probe: a short link to an old primary's replication port (see on_probe_timer). */
typedef struct probe_s {
    ekv_repl_link_t link; /* first */
    ekv_node_t *node;
    int idx;
    struct probe_s *next, *prev;
} probe_t;

void ekv_node_on_fenced(void *ctx, uint64_t epoch, const char *by)
{
    ekv_node_t *n = ekv_node_of(ctx);
    n->fenced = 1;
    n->fenced_epoch_seen = epoch;
    n->probing = 0;
    uv_timer_stop(&n->probe_timer);
    n->st.fenced_epoch = epoch;
    snprintf(n->st.fenced_by, sizeof(n->st.fenced_by), "%s", by);
    /* another node owns the Durable Objects now: no alarm may run here any more */
    if (n->app->dos)
        ekv_do_stop(n->app->dos, NULL, NULL);
    ekv_log_warn("this primary is fenced: writes are refused",
                 "epoch=%" PRIu64 " new_primary=%s "
                 "hint=\"restart it with --role replica --primary <the new primary>\"",
                 epoch, by);
    /* The fence is saved here, synchronously, on the loop thread, before the primary tells
     * any peer it is fenced (ekv_repl_primary_fence calls us first). Not through the reader
     * pool: its queue is bounded (--reader-queue) and a full queue refused the save, so the
     * node could restart unfenced after its FENCED answer had stopped the new primary's
     * probes (split brain). The cost is one small put with a WAL sync on the loop (it may
     * wait for the committer's write in progress): a few ms, once in a node's life, while
     * writes are refused anyway. If the save fails, the node stays fenced in memory: writes
     * keep getting 503 until the process exits, and it must not be restarted as a primary. */
    int rc = ekv_store_node_save(n->app->store, &n->st);
    if (rc)
        ekv_log_error("THE FENCE COULD NOT BE SAVED: this node refuses writes until it exits; "
                      "restart it only as a replica of the new primary",
                      "err=%s epoch=%" PRIu64 " new_primary=%s", ekv_err_name(rc), epoch, by);
    else
        ekv_log_info("fence saved", "epoch=%" PRIu64, epoch);
}

static void probe_closed(ekv_repl_link_t *l)
{
    probe_t *pr = (probe_t *)l;
    ekv_node_t *n = pr->node;
    if (pr->prev)
        pr->prev->next = pr->next;
    else
        n->probes = pr->next;
    if (pr->next)
        pr->next->prev = pr->prev;
    free(pr);
    ekv_node_handle_closed((uv_handle_t *)&n->probe_timer);
}

static void probe_frame(ekv_repl_link_t *l, Edgekv__Frame *f)
{
    probe_t *pr = (probe_t *)l;
    ekv_node_t *n = pr->node;
    if (f->epoch > n->st.epoch) {
        char by[64];
        snprintf(by, sizeof(by), "%s", l->peer);
        uint64_t e = f->epoch;
        ekv_repl_frame_free(f);
        ekv_repl_link_close(l, 0, 0, "peer has a newer epoch");
        if (n->primary) /* stops the primary's links too; calls on_fenced */
            ekv_repl_primary_fence(n->primary, e, by);
        return;
    }
    if (f->body_case == EDGEKV__FRAME__BODY_ERROR &&
        (f->error->code == EDGEKV__REPL_ERROR_CODE__REPL_ERROR_FENCED ||
         f->error->code == EDGEKV__REPL_ERROR_CODE__REPL_ERROR_NOT_PRIMARY)) {
        /* fenced, or a replica there now (e.g. the old primary rejoined): nothing to fence */
        if (!(n->probe_done_mask & (1u << pr->idx)))
            ekv_log_info("old primary fenced", "addr=%s its_epoch=%" PRIu64 " our_epoch=%" PRIu64,
                         l->peer, f->epoch, n->st.epoch);
        n->probe_done_mask |= 1u << pr->idx;
    }
    ekv_repl_frame_free(f);
    ekv_repl_link_close(l, 0, 0, "probe answered");
}

static void probe_connected(ekv_repl_link_t *l, int status)
{
    probe_t *pr = (probe_t *)l;
    ekv_node_t *n = pr->node;
    static const ekv_repl_link_cbs_t cbs = {probe_frame, probe_closed, NULL};
    if (status || ekv_repl_link_init(l, pr, &cbs, 1u << 20, n->auth, EKV_REPL_HS_CONNECTOR) ||
        ekv_repl_link_start(l)) {
        ekv_repl_link_close(l, 0, 0, "probe connect failed");
        return;
    }
    Edgekv__Hello h;
    ekv_repl_hello_init(&h); /* our protocol version (a probe is answered on its epoch alone) */
    h.node_id = n->node_id;
    h.role = EDGEKV__NODE_ROLE__NODE_ROLE_PRIMARY;
    h.history_id = n->st.history_id;
    h.epoch = n->st.epoch;
    h.advertise_url = n->advertise_url;
    Edgekv__Frame f = EDGEKV__FRAME__INIT;
    f.epoch = n->st.epoch;
    f.body_case = EDGEKV__FRAME__BODY_HELLO;
    f.hello = &h;
    ekv_repl_link_send(l, &f);
}

/* Every second after a promotion, tell each --primary address (the old primary among them)
 * our epoch: a live old primary fences itself on reading it, and answers FENCED. */
static void on_probe_timer(uv_timer_t *t)
{
    ekv_node_t *n = t->data;
    ekv_config_t *cfg = n->cfg;
    if (!n->probing || n->stopping || n->fenced)
        return;
    const char *p = cfg->primary;
    int idx = 0, pending = 0;
    while (*p && idx < MAX_PROBES) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char addr[256], host[256];
        int port;
        if (len < sizeof(addr) && !(n->probe_done_mask & (1u << idx))) {
            memcpy(addr, p, len);
            addr[len] = '\0';
            if (!ekv_repl_parse_addr(addr, host, sizeof(host), &port) &&
                !(port == cfg->repl_port && !strcmp(host, cfg->repl_host))) {
                pending++;
                probe_t *pr = calloc(1, sizeof(*pr));
                if (pr) {
                    pr->node = n;
                    pr->idx = idx;
                    pr->link.cbs.on_close = probe_closed;
                    if (ekv_repl_link_connect(&pr->link, n->app->loop, host, port,
                                              probe_connected)) {
                        free(pr);
                    } else {
                        n->probes_in_flight++;
                        pr->next = n->probes;
                        if (pr->next)
                            pr->next->prev = pr;
                        n->probes = pr;
                    }
                }
            }
        }
        idx++;
        p = e ? e + 1 : p + len;
    }
    if (!pending)
        n->probing = 0;
    else
        uv_timer_start(&n->probe_timer, on_probe_timer, PROBE_EVERY_MS, 0);
}

typedef struct {
    ekv_node_t *node;
    void (*done)(void *ctx, int rc);
    void *ctx;
    ekv_node_state_t next;
} promote_t;

static void promote_saved(ekv_node_t *n, int rc, void *ctx)
{
    promote_t *pm = ctx;
    ekv_app_t *app = n->app;
    n->promoting = 0;
    if (rc) {
        /* the replica stopped following; without a saved epoch we must not take writes */
        ekv_log_error("promotion failed: node state not saved; restart the replica", "err=%s",
                      ekv_err_name(rc));
        pm->done(pm->ctx, rc);
        free(pm);
        return;
    }
    n->st = pm->next;
    n->role = EKV_ROLE_PRIMARY;
    ekv_store_set_replica(app->store, 0);
    ekv_log_warn("promoted to primary",
                 "node_id=%s epoch=%" PRIu64 " history_id=%s "
                 "previous_history=%s switch_seq=%" PRIu64,
                 n->node_id, n->st.epoch, n->st.history_id, n->st.history2_id, n->st.history2_seq);
    if (n->primary) /* it served edges only until now */
        ekv_repl_primary_set_edge_only(n->primary, 0);
    else if (n->cfg->repl_port >= 0 && ekv_node_start_primary(n, 0))
        ekv_log_error("promoted, but cannot listen for replicas", "addr=%s", n->cfg->repl_listen);
    /* this node now places the Durable Objects (the table it replicated, the owners keep
     * their partitions if they heartbeat here within a lease) and serves what it owns */
    if (ekv_node_do_placement_start(n))
        ekv_log_error("promoted, but cannot place durable objects", "%s", "");
    ekv_node_start_do(n); /* (logged on failure) */
    n->probing = 1;
    n->probe_done_mask = 0;
    on_probe_timer(&n->probe_timer);
    pm->done(pm->ctx, 0);
    free(pm);
}

static void promote_replica_stopped(void *arg)
{
    promote_t *pm = arg;
    ekv_node_t *n = pm->node;
    ekv_app_t *app = n->app;
    /* n->stopping_replica is freed at exit (its doneq handle is still closing now) */
    ekv_node_state_t *nx = &pm->next;
    *nx = n->st;
    nx->epoch = n->st.epoch + 1;
    if (n->fenced_epoch_seen >= nx->epoch)
        nx->epoch = n->fenced_epoch_seen + 1;
    if (n->min_epoch > nx->epoch) /* the coordinator's election revision */
        nx->epoch = n->min_epoch;
    snprintf(nx->history2_id, sizeof(nx->history2_id), "%s", n->st.history_id);
    nx->history2_seq = ekv_store_last_seq(app->store);
    nx->fenced_epoch = 0;
    nx->fenced_by[0] = '\0';
    if (ekv_random_id(nx->history_id)) {
        promote_saved(n, EKV_EINTERNAL, pm);
        return;
    }
    ekv_node_save_async(n, nx, promote_saved, pm);
}

int ekv_node_promote(ekv_node_t *n, void (*done)(void *ctx, int rc), void *ctx)
{
    ekv_app_t *app = n->app;
    if (n->role != EKV_ROLE_REPLICA || !n->replica)
        return EKV_ENOT_REPLICA;
    if (n->promoting)
        return EKV_EBUSY;
    if (!n->st.history_id[0] || ekv_store_ingest_pending(app->store))
        return EKV_ENOT_SYNCED;
    promote_t *pm = calloc(1, sizeof(*pm));
    if (!pm)
        return EKV_ENOMEM;
    pm->node = n;
    pm->done = done;
    pm->ctx = ctx;
    n->promoting = 1;
    ekv_log_warn("promotion requested: stopping replication", "node_id=%s applied_seq=%" PRIu64,
                 n->node_id, ekv_store_last_seq(app->store));
    ekv_repl_replica_t *r = n->replica;
    n->replica = NULL;
    n->stopping_replica = r;
    ekv_repl_replica_stop(r, promote_replica_stopped, pm);
    return 0;
}

void ekv_node_close_probes(ekv_node_t *n)
{
    for (probe_t *pr = n->probes; pr; pr = pr->next)
        ekv_repl_link_close(&pr->link, 0, 0, "shutting down");
}
