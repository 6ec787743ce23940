/*
 * edge.c - the edge's upstreams (an RPC link to the primary and to each replica), its
 * counters and its clean stop. The request path is in relay.c and flight.c.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/http/reply.h"
#include "server/node/edge/edge_int.h"
#include "replication/link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ekv_edge_start(ekv_node_t *n)
{
    ekv_app_t *app = n->app;
    ekv_config_t *cfg = n->cfg;
    ekv_edge_t *e = calloc(1, sizeof(*e));
    if (!e)
        return -1;
    e->app = app;
    e->node = n;
    ekv_htab_init(&e->flights);
    if (ekv_htab_reserve(&e->flights, FLIGHT_RESERVE)) {
        free(e);
        return -1;
    }
    e->ttl_ms = cfg->cache_ttl_s * 1000;
    e->stale_ms = cfg->stale_if_error_s * 1000;
    e->max_fetches = (size_t)cfg->edge_max_fetches;
    ekv_rpc_client_opts_t o = {0};
    o.loop = app->loop;
    o.auth = n->auth;
    o.node_id = n->node_id;
    o.timeout_ms = (int)cfg->upstream_timeout_ms;
    o.link_timeout_ms = (int)cfg->repl_timeout_ms;
    o.heartbeat_ms = (int)cfg->repl_heartbeat_ms;
    /* every address is checked before any link starts, so a bad flag frees everything */
    char hosts[MAX_UPSTREAMS][256];
    int ports[MAX_UPSTREAMS], naddr = 0;
    if (ekv_repl_parse_addr(cfg->primary, hosts[0], sizeof(hosts[0]), &ports[0])) {
        ekv_log_error("an edge needs --primary HOST:PORT (the primary's --repl-listen)",
                      "value=\"%s\"", cfg->primary);
        goto fail;
    }
    naddr = 1;
    for (const char *p = cfg->replicas; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char addr[256];
        if (len == 0 || len >= sizeof(addr) || naddr >= MAX_UPSTREAMS) {
            ekv_log_error("bad --replicas (want HOST:PORT[,HOST:PORT...], at most 16)",
                          "value=\"%s\"", cfg->replicas);
            goto fail;
        }
        memcpy(addr, p, len);
        addr[len] = '\0';
        if (ekv_repl_parse_addr(addr, hosts[naddr], sizeof(hosts[naddr]), &ports[naddr])) {
            ekv_log_error("bad --replicas address", "value=\"%s\"", addr);
            goto fail;
        }
        naddr++;
        p = end ? end + 1 : p + len;
    }
    for (int i = 0; i < naddr; i++) {
        o.host = hosts[i];
        o.port = ports[i];
        ekv_rpc_client_t **slot = i == 0 ? &e->primary : &e->replicas[e->nreplicas];
        if (ekv_rpc_client_start(slot, &o)) {
            if (i == 0)
                goto fail;
            return -1; /* links are running: the process exits without running the loop */
        }
        if (i > 0)
            e->nreplicas++;
        e->clients_open++;
    }
    uv_timer_init(app->loop, &e->hold_timer);
    e->hold_timer.data = e;
    n->edge = e;
    ekv_log_info("edge upstreams", "primary=%s replicas=%d cache_ttl_s=%lld stale_if_error_s=%lld",
                 cfg->primary, e->nreplicas, (long long)cfg->cache_ttl_s,
                 (long long)cfg->stale_if_error_s);
    return 0;
fail:
    ekv_htab_deinit(&e->flights);
    free(e);
    return -1;
}

void ekv_edge_stats(const ekv_edge_t *e, ekv_edge_stats_t *out)
{
    *out = e->st;
    out->inflight_fetches = ekv_htab_count(&e->flights);
}

size_t ekv_edge_upstreams(const ekv_edge_t *e, ekv_edge_upstream_t *out, size_t cap)
{
    size_t n = 0;
    for (int i = -1; i < e->nreplicas && n < cap; i++) {
        const ekv_rpc_client_t *c = i < 0 ? e->primary : e->replicas[i];
        ekv_edge_upstream_t *u = &out[n++];
        u->role = i < 0 ? "primary" : "replica";
        snprintf(u->addr, sizeof(u->addr), "%s", ekv_rpc_client_addr(c));
        u->ready = ekv_rpc_client_ready(c);
        u->seq = ekv_rpc_client_seq(c);
        ekv_rpc_client_stats(c, &u->rpc);
    }
    return n;
}

int ekv_edge_set_primary(ekv_edge_t *e, const char *addr)
{
    char host[256];
    int port;
    if (ekv_repl_parse_addr(addr, host, sizeof(host), &port))
        return EKV_EBAD_REQUEST;
    return ekv_rpc_client_set_addr(e->primary, host, port);
}

int ekv_edge_primary_ready(const ekv_edge_t *e)
{
    return ekv_rpc_client_ready(e->primary);
}

uint64_t ekv_edge_max_write_seq(const ekv_edge_t *e)
{
    return e->max_write_seq;
}

static void client_stopped(void *arg)
{
    ekv_edge_t *e = arg;
    if (--e->clients_open == 0 && e->stop_done) {
        void (*done)(void *) = e->stop_done;
        e->stop_done = NULL;
        done(e->stop_arg);
    }
}

static void hold_timer_closed(uv_handle_t *h)
{
    client_stopped(h->data);
}

void ekv_edge_stop(ekv_edge_t *e, void (*done)(void *arg), void *arg)
{
    e->stopping = 1;
    ekv_edge_on_stream(e); /* answers every held reply */
    e->stop_done = done;
    e->stop_arg = arg;
    e->clients_open++; /* the hold timer */
    uv_close((uv_handle_t *)&e->hold_timer, hold_timer_closed);
    ekv_rpc_client_stop(e->primary, client_stopped, e);
    for (int i = 0; i < e->nreplicas; i++)
        ekv_rpc_client_stop(e->replicas[i], client_stopped, e);
}

void ekv_edge_free(ekv_edge_t *e)
{
    if (!e)
        return;
    ekv_rpc_client_free(e->primary);
    for (int i = 0; i < e->nreplicas; i++)
        ekv_rpc_client_free(e->replicas[i]);
    ekv_htab_deinit(&e->flights); /* empty: stopping the clients finished every fetch */
    free(e);
}
