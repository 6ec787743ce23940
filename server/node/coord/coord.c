/*
 * coord.c - automatic failover through etcd (contracts in coord.h, design in
 * docs/FAILOVER.md). One 100 ms tick drives everything: the leader lease, the member key,
 * the watch, the election.
 */
#include "server/node/coord/coord.h"

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "replication/replica.h"
#include "replication/rpc_client.h"
#include "server/node/coord/etcd.h"
#include "server/node/do/docl.h"
#include "server/node/edge/edge.h"
#include "server/node/node.h"
#include "server/http/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS           100
#define CALL_TIMEOUT_MS   2000
#define SETTLE_MS         500  /* leaderless this long before positions are compared */
#define MEMBER_PUT_MS     1000 /* a replica's position is published at most this often */
#define WATCH_RETRY_MS    500
#define STEPDOWN_GRACE_MS 1000
#define REREAD_MS                                                                                  \
    2000 /* the leader key is read this often besides the watch */ /* writes answered 503 this     \
                                                                      long before the restart */

struct ekv_coord_s {
    ekv_node_t *n;
    ekv_etcd_t *etcd;
    uint64_t ttl_ns;
    char leader_key[128], members_prefix[128], member_key[200];
    char me_repl[300];
    uv_timer_t tick;
    /* the leader lease (this node is the primary) */
    int leading, stepping_down;
    uint64_t restart_at_ns;
    int64_t lease, epoch;
    uint64_t deadline_ns; /* writes acknowledged only before this */
    uint64_t ka_sent_ns;
    int ka_inflight;
    /* the member key (a replica's position) */
    int64_t mlease;
    int m_inflight;
    uint64_t m_ka_sent_ns, m_put_ns, m_put_seq, m_put_epoch;
    uint64_t m_sending_seq, m_sending_epoch; /* the put in flight */
    int64_t m_put_rev;                       /* etcd revision of our last successful put */
    int m_granting;
    /* the leader as etcd names it */
    int known;
    char leader_id[64], leader_repl[300];
    int64_t leader_rev;
    uint64_t leaderless_since_ns;
    int64_t leaderless_rev; /* etcd revision at which the key was seen gone: a position
                             * published at or before it may be stale */
    int64_t last_rev;       /* the latest etcd revision seen with a leader-key event/read */
    uint64_t next_reread_ns;
    /* the watch */
    ekv_etcd_watch_t *watch;
    int syncing;
    uint64_t watch_retry_ns;
    /* election */
    int campaigning;
    uint64_t camp_sent_ns;
    /* stop */
    int stopping, stop_calls;
    int zombie; /* stopped while a promotion was in flight: promoted() frees it */
    void (*stop_done)(void *);
    void *stop_arg;
    /* counters */
    uint64_t elections_won, campaigns, stepdowns, renew_failures, watch_restarts;
};

/* CLOCK_BOOTTIME: like the monotonic clock, but it also runs while the machine is
 * suspended, as etcd's clock does: a primary woken from a suspend longer than its lease
 * must see the lease as expired. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_BOOTTIME, &ts))
        return ekv_clock_mono_ns();
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *endpoints_of(const ekv_config_t *cfg)
{
    return cfg->coordinator + strlen("etcd://");
}

static void keys(const ekv_config_t *cfg, char *leader, size_t lc, char *prefix, size_t pc)
{
    snprintf(leader, lc, "/edgekv/%s/leader", cfg->cluster_name);
    snprintf(prefix, pc, "/edgekv/%s/members/", cfg->cluster_name);
}

static json_t *str64(int64_t v)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)v);
    return json_string(s);
}

/* {"key": b64} (+ "range_end" for a prefix) */
static json_t *range_body(const char *key, int prefix)
{
    json_t *b = json_object();
    json_object_set_new(b, "key", ekv_etcd_b64(key, strlen(key)));
    if (prefix) {
        char end[200];
        snprintf(end, sizeof(end), "%s", key);
        end[strlen(end) - 1]++; /* "/members/" -> "/members0": the prefix's range end */
        json_object_set_new(b, "range_end", ekv_etcd_b64(end, strlen(end)));
    }
    return b;
}

static json_t *leader_value(const ekv_config_t *cfg, const char *node_id, const char *url)
{
    return json_pack("{s:s, s:s, s:s}", "node_id", node_id, "repl", cfg->repl_advertise, "url",
                     url);
}

/* Campaign txn: put key = value under lease only if the key does not exist. */
static json_t *campaign_body(const char *key, const char *value, int64_t lease)
{
    json_t *k = ekv_etcd_b64(key, strlen(key));
    json_t *cmp = json_pack("{s:O, s:s, s:s, s:s}", "key", k, "target", "CREATE", "result", "EQUAL",
                            "create_revision", "0");
    json_t *put = json_pack("{s:{s:O, s:o, s:o}}", "request_put", "key", k, "value",
                            ekv_etcd_b64(value, strlen(value)), "lease", str64(lease));
    json_t *get = json_pack("{s:{s:O}}", "request_range", "key", k);
    json_decref(k);
    return json_pack("{s:[o], s:[o], s:[o]}", "compare", cmp, "success", put, "failure", get);
}

/* A leader kv -> node id and link address (from its JSON value). */
static int parse_leader(const json_t *kv, char *id, size_t idc, char *repl, size_t rc)
{
    char v[1024];
    if (ekv_etcd_bytes(kv, "value", v, sizeof(v), NULL))
        return -1;
    json_t *j = json_loads(v, 0, NULL);
    const char *i = json_string_value(json_object_get(j, "node_id"));
    const char *r = json_string_value(json_object_get(j, "repl"));
    int ok = i && r && strlen(i) < idc && strlen(r) < rc;
    if (ok) {
        snprintf(id, idc, "%s", i);
        snprintf(repl, rc, "%s", r);
    }
    json_decref(j);
    return ok ? 0 : -1;
}

/* ================================================================ start-up (blocking) */

static int boot_call(const ekv_config_t *cfg, const char *path, json_t *body, json_t **ans)
{
    return ekv_etcd_call_sync(endpoints_of(cfg), path, body, CALL_TIMEOUT_MS, ans);
}

int ekv_coord_boot(ekv_config_t *cfg, ekv_coord_boot_t *out)
{
    memset(out, 0, sizeof(*out));
    int edge = !strcmp(cfg->role, "edge");
    char leader_key[128], prefix[128], node_id[64];
    keys(cfg, leader_key, sizeof(leader_key), prefix, sizeof(prefix));
    snprintf(node_id, sizeof(node_id), "%s", cfg->node_id);
    char current[4096 + 8];
    snprintf(current, sizeof(current), "%s/db/CURRENT", cfg->data_dir);
    struct stat sb;
    int fresh = !edge && stat(current, &sb) != 0;
    int released_own = 0; /* a previous run of this node led: never a new-cluster campaign */
    uint64_t last_log = 0;
    for (int attempt = 0;; attempt++) {
        if (attempt)
            usleep(1000 * 1000);
        json_t *ans = NULL;
        int rc = boot_call(cfg, "/v3/kv/range", range_body(leader_key, 0), &ans);
        uint64_t t = now_ns();
        if (rc) {
            if (!last_log || t - last_log > 10000000000ull) {
                ekv_log_warn("waiting for the coordinator", "endpoints=%s err=%s",
                             endpoints_of(cfg), ekv_err_name(rc));
                last_log = t;
            }
            continue;
        }
        json_t *kv = json_array_get(json_object_get(ans, "kvs"), 0);
        if (kv) {
            char id[64], repl[300];
            int bad = parse_leader(kv, id, sizeof(id), repl, sizeof(repl));
            int64_t lease = ekv_etcd_int(kv, "lease");
            int64_t rev = ekv_etcd_int(kv, "create_revision");
            json_decref(ans);
            if (bad) {
                ekv_log_error("the coordinator's leader key is not edgekv's", "key=%s", leader_key);
                return -1;
            }
            if (!edge && !strcmp(id, node_id)) {
                /* our previous run's key: this process owns the data dir now, release it */
                ekv_log_warn("releasing the leader key of this node's previous run", "lease=%lld",
                             (long long)lease);
                json_t *r = NULL;
                boot_call(cfg, "/v3/lease/revoke", json_pack("{s:o}", "ID", str64(lease)), &r);
                json_decref(r);
                released_own = 1;
                continue;
            }
            snprintf(out->leader, sizeof(out->leader), "%s", repl);
            ekv_log_info("coordinator: following the primary", "primary=%s addr=%s rev=%lld", id,
                         repl, (long long)rev);
            break;
        }
        json_decref(ans);
        if (edge) {
            if (!last_log || t - last_log > 10000000000ull) {
                ekv_log_warn("waiting for a primary to be elected", "key=%s", leader_key);
                last_log = t;
            }
            continue;
        }
        if (strcmp(cfg->role, "primary") || !fresh || released_own)
            break; /* a replica: the election (coord tick) decides, positions compared */
        /* a new cluster has no member keys: replicas that synced before mean this is not one
         * (e.g. a primary restarted on an empty volume must not win with no data) */
        json_t *mem = NULL;
        if (boot_call(cfg, "/v3/kv/range", range_body(prefix, 1), &mem))
            continue;
        int members = json_array_size(json_object_get(mem, "kvs")) > 0;
        json_decref(mem);
        if (members) {
            ekv_log_warn("not taking the leader key: replicas of an existing cluster are "
                         "registered; starting as a replica",
                         "data_dir=%s", cfg->data_dir);
            break;
        }
        /* a new cluster: its --role primary takes the key */
        uint64_t asked = now_ns();
        json_t *g = NULL;
        if (boot_call(cfg, "/v3/lease/grant",
                      json_pack("{s:o}", "TTL", str64(cfg->coordinator_ttl_s)), &g))
            continue;
        int64_t lease = ekv_etcd_int(g, "ID");
        json_decref(g);
        if (!lease)
            continue;
        char url[300];
        if (cfg->advertise_url[0])
            snprintf(url, sizeof(url), "%s", cfg->advertise_url);
        else
            snprintf(url, sizeof(url), "http://%s:%d", cfg->host, cfg->port);
        json_t *v = leader_value(cfg, node_id, url);
        char *vs = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        json_t *a = NULL;
        rc = vs ? boot_call(cfg, "/v3/kv/txn", campaign_body(leader_key, vs, lease), &a) : -1;
        free(vs);
        if (!rc && json_is_true(json_object_get(a, "succeeded"))) {
            out->primary = 1;
            out->lease = lease;
            out->epoch = ekv_etcd_int(json_object_get(a, "header"), "revision");
            out->granted_ns = asked;
            json_decref(a);
            ekv_log_warn("coordinator: this new node is the primary", "epoch=%lld lease=%lld",
                         (long long)out->epoch, (long long)lease);
            break;
        }
        json_decref(a);
        json_t *r = NULL;
        boot_call(cfg, "/v3/lease/revoke", json_pack("{s:o}", "ID", str64(lease)), &r);
        json_decref(r);
    }
    if (!edge) {
        free(cfg->role);
        cfg->role = strdup(out->primary ? "primary" : "replica");
        if (!cfg->role)
            return -1;
    }
    free(cfg->primary); /* a replica's first candidate, an edge's primary */
    cfg->primary = strdup(out->primary ? "" : out->leader);
    return cfg->primary ? 0 : -1;
}

/* ================================================================ runtime */

static void step_down(ekv_coord_t *c, const char *why);

static int synced(const ekv_coord_t *c)
{
    ekv_node_t *n = c->n;
    return n->role == EKV_ROLE_REPLICA && n->st.history_id[0] &&
           !ekv_store_ingest_pending(n->app->store);
}

/* The key names `id` at `repl` (created at rev), or nobody (id NULL). */
static void leader_seen(ekv_coord_t *c, const char *id, const char *repl, int64_t rev)
{
    ekv_node_t *n = c->n;
    if (!id) {
        if (c->leading) {
            step_down(c, "the leader key is gone from etcd");
            return;
        }
        if (c->known || !c->leaderless_since_ns) {
            c->leaderless_since_ns = now_ns();
            c->leaderless_rev = c->last_rev;
            c->m_put_ns = 0; /* publish our position again, after the key's deletion */
            ekv_log_warn("coordinator: no primary", "was=%s", c->known ? c->leader_id : "-");
        }
        c->known = 0;
        return;
    }
    if (!strcmp(id, n->node_id)) {
        if (c->leading && rev != c->epoch)
            step_down(c, "the leader key was re-created");
        return; /* ours (a campaign just won, or the key we hold) */
    }
    if (c->leading) {
        step_down(c, "another node holds the leader key");
        return;
    }
    int changed = !c->known || strcmp(repl, c->leader_repl) || rev != c->leader_rev;
    c->known = 1;
    c->leaderless_since_ns = 0;
    if (!changed)
        return;
    snprintf(c->leader_id, sizeof(c->leader_id), "%s", id);
    snprintf(c->leader_repl, sizeof(c->leader_repl), "%s", repl);
    c->leader_rev = rev;
    snprintf(n->coord_primary, sizeof(n->coord_primary), "%s", repl);
    ekv_log_info("coordinator: the primary is", "node_id=%s addr=%s epoch=%lld", id, repl,
                 (long long)rev);
    if (n->role == EKV_ROLE_REPLICA && n->replica)
        ekv_repl_replica_set_primary(n->replica, repl);
    if (n->role == EKV_ROLE_EDGE && n->edge)
        ekv_edge_set_primary(n->edge, repl);
    if (n->docl)
        n->docl->rotate_now = 1; /* the owners' heartbeats go to the new primary */
}

static void leader_kv(ekv_coord_t *c, const json_t *kv)
{
    char id[64], repl[300];
    if (!kv) {
        leader_seen(c, NULL, NULL, 0);
        return;
    }
    if (parse_leader(kv, id, sizeof(id), repl, sizeof(repl))) {
        ekv_log_warn("coordinator: the leader key is not edgekv's: ignored", "%s", "");
        return;
    }
    leader_seen(c, id, repl, ekv_etcd_int(kv, "create_revision"));
}

/* ---------------------------------------------------------------- watch */

static void on_event(void *ctx, json_t *ev)
{
    ekv_coord_t *c = ctx;
    const char *type = json_string_value(json_object_get(ev, "type"));
    int64_t rev = ekv_etcd_int(json_object_get(ev, "kv"), "mod_revision");
    if (rev > c->last_rev)
        c->last_rev = rev;
    if (type && !strcmp(type, "DELETE"))
        leader_kv(c, NULL);
    else
        leader_kv(c, json_object_get(ev, "kv"));
}

static void on_watch_end(void *ctx, int err)
{
    ekv_coord_t *c = ctx;
    c->watch = NULL;
    if (c->stopping)
        return;
    c->watch_restarts++;
    c->watch_retry_ns = now_ns() + WATCH_RETRY_MS * 1000000ull;
    ekv_log_warn("coordinator watch ended: reading the key again", "err=%s endpoint=%s",
                 ekv_err_name(err), ekv_etcd_endpoint(c->etcd));
}

/* A fresh read of the key, then a watch from just after it. */
static void on_sync(void *ctx, int err, json_t *ans)
{
    ekv_coord_t *c = ctx;
    c->syncing = 0;
    if (c->stopping)
        return;
    if (err) {
        c->watch_retry_ns = now_ns() + WATCH_RETRY_MS * 1000000ull;
        return;
    }
    int64_t rev = ekv_etcd_int(json_object_get(ans, "header"), "revision");
    if (rev > c->last_rev)
        c->last_rev = rev;
    leader_kv(c, json_array_get(json_object_get(ans, "kvs"), 0));
    if (c->stepping_down || c->watch)
        return; /* (a periodic re-read while the watch runs) */
    if (ekv_etcd_watch(c->etcd, c->leader_key, rev + 1, on_event, on_watch_end, c, &c->watch)) {
        c->watch = NULL;
        c->watch_retry_ns = now_ns() + WATCH_RETRY_MS * 1000000ull;
    }
}

/* ---------------------------------------------------------------- the leader lease */

static void on_keepalive(void *ctx, int err, json_t *ans)
{
    ekv_coord_t *c = ctx;
    c->ka_inflight = 0;
    if (c->stopping || !c->leading)
        return;
    if (err) {
        c->renew_failures++;
        return; /* the tick tries again; the deadline decides */
    }
    json_t *res = json_object_get(ans, "result");
    if (ekv_etcd_int(res, "TTL") <= 0) {
        step_down(c, "etcd says the leader lease has expired");
        return;
    }
    uint64_t until = c->ka_sent_ns + c->ttl_ns;
    if (until > c->deadline_ns)
        c->deadline_ns = until;
}

static void renew(ekv_coord_t *c)
{
    c->ka_sent_ns = now_ns();
    if (ekv_etcd_call(c->etcd, "/v3/lease/keepalive", json_pack("{s:o}", "ID", str64(c->lease)),
                      (int)(c->ttl_ns / 3000000), on_keepalive, c) == 0)
        c->ka_inflight = 1;
}

static void on_revoked(void *ctx, int err, json_t *ans)
{
    (void)ctx;
    (void)err;
    (void)ans;
}

static int lease_revoke(ekv_coord_t *c, int64_t lease, ekv_etcd_cb cb)
{
    return ekv_etcd_call(c->etcd, "/v3/lease/revoke", json_pack("{s:o}", "ID", str64(lease)), 1000,
                         cb ? cb : on_revoked, c);
}

static void step_down(ekv_coord_t *c, const char *why)
{
    if (c->stepping_down)
        return;
    c->stepping_down = 1;
    c->stepdowns++;
    int was = c->leading;
    c->leading = 0;
    ekv_log_warn("coordinator: stepping down: restarting to rejoin as a replica",
                 "why=\"%s\" "
                 "was_primary=%d",
                 why, was);
    if (was) /* if it still exists, the others need not wait for the TTL */
        lease_revoke(c, c->lease, NULL);
    /* restart after a grace period in which writes get a clear 503 (the gate) rather than a
     * closed connection: a client learns why, and retries elsewhere */
    c->restart_at_ns = now_ns() + STEPDOWN_GRACE_MS * 1000000ull;
}

/* ---------------------------------------------------------------- a replica's position */

static void on_member(void *ctx, int err, json_t *ans)
{
    ekv_coord_t *c = ctx;
    c->m_inflight = 0;
    if (err) { /* e.g. the lease expired during a pause: a new lease, then put again */
        c->m_put_ns = 0;
        c->mlease = 0;
        return;
    }
    c->m_put_seq = c->m_sending_seq; /* published: what others compare with */
    c->m_put_epoch = c->m_sending_epoch;
    c->m_put_rev = ekv_etcd_int(json_object_get(ans, "header"), "revision");
}

static void on_member_lease(void *ctx, int err, json_t *ans)
{
    ekv_coord_t *c = ctx;
    c->m_granting = 0;
    if (!err && !c->stopping && !c->leading && !c->campaigning && ekv_etcd_int(ans, "ID")) {
        c->mlease = ekv_etcd_int(ans, "ID");
        c->m_ka_sent_ns = now_ns();
        c->m_put_ns = 0;
    }
}

static void on_member_keepalive(void *ctx, int err, json_t *ans)
{
    ekv_coord_t *c = ctx;
    c->m_inflight = 0;
    if (!err && ekv_etcd_int(json_object_get(ans, "result"), "TTL") <= 0)
        c->mlease = 0; /* expired (e.g. a long pause): grant a new one */
}

static void member_upkeep(ekv_coord_t *c, uint64_t now)
{
    ekv_node_t *n = c->n;
    if (c->m_inflight || c->m_granting)
        return;
    if (!synced(c)) { /* no position to offer (never synced, or mid-snapshot): no member key,
                       * so nobody waits for a replica that cannot campaign */
        if (c->mlease) {
            lease_revoke(c, c->mlease, NULL);
            c->mlease = 0;
            c->m_put_ns = 0;
        }
        return;
    }
    if (!c->mlease) {
        c->m_granting = 1;
        if (ekv_etcd_call(c->etcd, "/v3/lease/grant",
                          json_pack("{s:o}", "TTL", str64((int64_t)(c->ttl_ns / 1000000000ull))),
                          CALL_TIMEOUT_MS, on_member_lease, c))
            c->m_granting = 0;
        return;
    }
    if (now - c->m_ka_sent_ns >= c->ttl_ns / 3) { /* a put does not renew the lease */
        c->m_ka_sent_ns = now;
        if (ekv_etcd_call(c->etcd, "/v3/lease/keepalive",
                          json_pack("{s:o}", "ID", str64(c->mlease)), CALL_TIMEOUT_MS,
                          on_member_keepalive, c) == 0)
            c->m_inflight = 1;
        return;
    }
    uint64_t seq = ekv_store_last_seq(n->app->store);
    int leaderless = !c->known;
    if (!c->m_put_ns || (leaderless && c->m_put_rev <= c->leaderless_rev) ||
        ((seq != c->m_put_seq || n->st.epoch != c->m_put_epoch) &&
         (leaderless || now - c->m_put_ns >= MEMBER_PUT_MS * 1000000ull))) {
        json_t *v =
            json_pack("{s:s, s:s, s:I, s:I}", "node_id", n->node_id, "repl", n->cfg->repl_advertise,
                      "epoch", (json_int_t)n->st.epoch, "last_seq", (json_int_t)seq);
        char *vs = json_dumps(v, JSON_COMPACT);
        json_decref(v);
        if (!vs)
            return;
        json_t *b =
            json_pack("{s:o, s:o, s:o}", "key", ekv_etcd_b64(c->member_key, strlen(c->member_key)),
                      "value", ekv_etcd_b64(vs, strlen(vs)), "lease", str64(c->mlease));
        free(vs);
        if (ekv_etcd_call(c->etcd, "/v3/kv/put", b, CALL_TIMEOUT_MS, on_member, c) == 0) {
            c->m_inflight = 1;
            c->m_put_ns = now;
            c->m_sending_seq = seq;
            c->m_sending_epoch = n->st.epoch;
        }
    }
}

/* ---------------------------------------------------------------- election */

static void promoted(void *ctx, int rc)
{
    ekv_coord_t *c = ctx;
    if (c->zombie) { /* stopped meanwhile: only this callback still pointed here */
        free(c);
        return;
    }
    if (rc) {
        step_down(c, "the promotion failed");
        return;
    }
    c->elections_won++;
    ekv_log_warn("coordinator: elected primary", "node_id=%s epoch=%" PRIu64, c->n->node_id,
                 c->n->st.epoch);
}

typedef struct {
    ekv_coord_t *c;
    int64_t lease;
    uint64_t asked_ns;
} camp_t;

static void campaign_failed(ekv_coord_t *c, int64_t lease)
{
    c->campaigning = 0;
    if (lease)
        lease_revoke(c, lease, NULL);
}

static void on_campaign(void *ctx, int err, json_t *ans)
{
    camp_t *k = ctx;
    ekv_coord_t *c = k->c;
    int64_t lease = k->lease;
    uint64_t asked = k->asked_ns;
    free(k);
    if (c->stopping)
        return;
    if (err || !json_is_true(json_object_get(ans, "succeeded"))) {
        campaign_failed(c, lease);
        if (!err) { /* someone else won: its key is in the failure branch */
            json_t *r = json_array_get(json_object_get(ans, "responses"), 0);
            leader_kv(
                c, json_array_get(json_object_get(json_object_get(r, "response_range"), "kvs"), 0));
        }
        return;
    }
    ekv_node_t *n = c->n;
    c->campaigning = 0;
    c->leading = 1;
    c->lease = lease;
    c->epoch = ekv_etcd_int(json_object_get(ans, "header"), "revision");
    c->deadline_ns = asked + c->ttl_ns;
    c->ka_sent_ns = asked;
    c->known = 0;
    if (c->mlease) { /* a primary is no candidate */
        lease_revoke(c, c->mlease, NULL);
        c->mlease = 0;
    }
    n->min_epoch = (uint64_t)c->epoch;
    ekv_log_warn("coordinator: won the election: promoting", "epoch=%lld last_seq=%" PRIu64,
                 (long long)c->epoch, ekv_store_last_seq(n->app->store));
    int rc = ekv_node_promote(n, promoted, c);
    if (rc)
        step_down(c, "cannot start the promotion");
}

static void on_campaign_lease(void *ctx, int err, json_t *ans)
{
    camp_t *k = ctx;
    ekv_coord_t *c = k->c;
    if (err || c->stopping || c->known) {
        int64_t l = err ? 0 : ekv_etcd_int(ans, "ID");
        free(k);
        campaign_failed(c, c->stopping ? 0 : l);
        return;
    }
    k->lease = ekv_etcd_int(ans, "ID");
    if (!k->lease) { /* no lease: never a key without one */
        free(k);
        campaign_failed(c, 0);
        return;
    }
    ekv_node_t *n = c->n;
    json_t *v = leader_value(n->cfg, n->node_id, n->advertise_url);
    char *vs = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    int rc = vs ? ekv_etcd_call(c->etcd, "/v3/kv/txn", campaign_body(c->leader_key, vs, k->lease),
                                CALL_TIMEOUT_MS, on_campaign, k)
                : EKV_ENOMEM;
    free(vs);
    if (rc) {
        int64_t l = k->lease;
        free(k);
        campaign_failed(c, l);
    }
}

static void campaign(ekv_coord_t *c)
{
    camp_t *k = calloc(1, sizeof(*k));
    if (!k)
        return;
    k->c = c;
    k->asked_ns = now_ns();
    c->campaigning = 1;
    c->campaigns++;
    if (ekv_etcd_call(c->etcd, "/v3/lease/grant",
                      json_pack("{s:o}", "TTL", str64((int64_t)(c->ttl_ns / 1000000000ull))),
                      CALL_TIMEOUT_MS, on_campaign_lease, k)) {
        free(k);
        c->campaigning = 0;
    }
}

/* Compare positions: campaign only when this node is the most caught-up live replica. */
static void on_members(void *ctx, int err, json_t *ans)
{
    ekv_coord_t *c = ctx;
    c->campaigning = 0;
    if (err || c->stopping || c->known || !synced(c))
        return;
    ekv_node_t *n = c->n;
    uint64_t my_epoch = n->st.epoch, my_seq = ekv_store_last_seq(n->app->store);
    char best[64];
    snprintf(best, sizeof(best), "%s", n->node_id);
    uint64_t be = my_epoch, bs = my_seq;
    size_t i;
    json_t *kv;
    int in_grace = now_ns() - c->leaderless_since_ns < c->ttl_ns;
    json_array_foreach(json_object_get(ans, "kvs"), i, kv)
    {
        char v[1024];
        if (ekv_etcd_bytes(kv, "value", v, sizeof(v), NULL))
            continue;
        if (ekv_etcd_int(kv, "mod_revision") <= c->leaderless_rev) {
            /* published before the primary's key went: that replica may have more now. Wait
             * for it to publish again; after a TTL it is taken as gone (its lease would
             * have ended) or as unable to publish, and not waited for any longer */
            if (in_grace) {
                ekv_log_info("coordinator: waiting for the replicas' positions", "%s", "");
                return;
            }
            continue;
        }
        json_t *j = json_loads(v, 0, NULL);
        const char *id = json_string_value(json_object_get(j, "node_id"));
        uint64_t e = (uint64_t)json_integer_value(json_object_get(j, "epoch"));
        uint64_t s = (uint64_t)json_integer_value(json_object_get(j, "last_seq"));
        if (id && strcmp(id, n->node_id) &&
            (e > be || (e == be && (s > bs || (s == bs && strcmp(id, best) < 0))))) {
            snprintf(best, sizeof(best), "%s", id);
            be = e;
            bs = s;
        }
        json_decref(j);
    }
    if (strcmp(best, n->node_id)) {
        ekv_log_info("coordinator: not campaigning: a replica is further ahead",
                     "best=%s its_seq=%" PRIu64 " our_seq=%" PRIu64, best, bs, my_seq);
        return;
    }
    ekv_log_warn("coordinator: campaigning", "epoch=%" PRIu64 " last_seq=%" PRIu64, my_epoch,
                 my_seq);
    campaign(c);
}

static void elect(ekv_coord_t *c, uint64_t now)
{
    if (c->campaigning || c->known || !c->leaderless_since_ns || !synced(c) || c->n->promoting ||
        now - c->leaderless_since_ns < SETTLE_MS * 1000000ull ||
        c->m_put_rev <= c->leaderless_rev || now - c->camp_sent_ns < 300 * 1000000ull ||
        c->m_put_seq != ekv_store_last_seq(c->n->app->store))
        return; /* (our latest position must be published before we compare) */
    c->camp_sent_ns = now;
    c->campaigning = 1;
    if (ekv_etcd_call(c->etcd, "/v3/kv/range", range_body(c->members_prefix, 1), CALL_TIMEOUT_MS,
                      on_members, c))
        c->campaigning = 0;
}

/* ---------------------------------------------------------------- tick */

static void on_tick(uv_timer_t *t)
{
    ekv_coord_t *c = t->data;
    ekv_node_t *n = c->n;
    uint64_t now = now_ns();
    if (c->stepping_down && now >= c->restart_at_ns) {
        c->restart_at_ns = UINT64_MAX;
        ekv_serve_restart("stepped down as primary");
    }
    if (c->stopping || c->stepping_down)
        return;
    if (c->leading) {
        if (now >= c->deadline_ns) {
            step_down(c, "the leader lease could not be renewed before it ended");
            return;
        }
        if (!c->ka_inflight && now - c->ka_sent_ns >= c->ttl_ns / 3)
            renew(c);
    }
    if (c->watch && ekv_etcd_watch_failed(c->watch)) { /* refused, cancelled, oversized */
        ekv_etcd_watch_t *w = c->watch;
        c->watch = NULL;
        ekv_etcd_watch_cancel(w);
        c->watch_restarts++;
        c->watch_retry_ns = now;
    }
    /* the key is also read every 2 s: a watch stream that hangs (a half-open connection to a
     * member that lost power) or misses an event does not leave this node behind */
    if (c->watch && !c->syncing && now >= c->next_reread_ns) {
        c->next_reread_ns = now + REREAD_MS * 1000000ull;
        c->syncing = 1;
        if (ekv_etcd_call(c->etcd, "/v3/kv/range", range_body(c->leader_key, 0), CALL_TIMEOUT_MS,
                          on_sync, c))
            c->syncing = 0;
    }
    if (!c->watch && !c->syncing && now >= c->watch_retry_ns) {
        c->syncing = 1;
        if (ekv_etcd_call(c->etcd, "/v3/kv/range", range_body(c->leader_key, 0), CALL_TIMEOUT_MS,
                          on_sync, c))
            c->syncing = 0;
    }
    if (n->role == EKV_ROLE_REPLICA && !c->leading && !c->campaigning && !n->promoting) {
        member_upkeep(c, now);
        elect(c, now);
    }
}

int ekv_coord_start(ekv_node_t *n, const ekv_coord_boot_t *b)
{
    ekv_config_t *cfg = n->cfg;
    ekv_coord_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -1;
    c->n = n;
    c->ttl_ns = (uint64_t)cfg->coordinator_ttl_s * 1000000000ull;
    keys(cfg, c->leader_key, sizeof(c->leader_key), c->members_prefix, sizeof(c->members_prefix));
    snprintf(c->member_key, sizeof(c->member_key), "%s%s", c->members_prefix, n->node_id);
    if (ekv_etcd_new(n->app->loop, endpoints_of(cfg), &c->etcd)) {
        free(c);
        return -1;
    }
    if (b->primary) {
        c->leading = 1;
        c->lease = b->lease;
        c->epoch = b->epoch;
        c->deadline_ns = b->granted_ns + c->ttl_ns;
        c->ka_sent_ns = b->granted_ns;
        c->elections_won = 1;
    } else if (b->leader[0]) {
        snprintf(n->coord_primary, sizeof(n->coord_primary), "%s", b->leader);
    } else {
        c->leaderless_since_ns = now_ns();
    }
    uv_timer_init(n->app->loop, &c->tick);
    c->tick.data = c;
    uv_timer_start(&c->tick, on_tick, 0, TICK_MS);
    n->coord = c;
    ekv_log_info("coordinator", "endpoints=%s cluster=%s ttl_s=%lld role=%s", endpoints_of(cfg),
                 cfg->cluster_name, (long long)cfg->coordinator_ttl_s, ekv_role_name(n->role));
    return 0;
}

int ekv_coord_may_write(const ekv_coord_t *c)
{
    return c->leading && !c->stepping_down && now_ns() < c->deadline_ns;
}

static void etcd_closed(void *arg)
{
    ekv_coord_t *c = arg;
    void (*done)(void *) = c->stop_done;
    void *darg = c->stop_arg;
    c->n->coord = NULL;
    if (c->n->promoting)
        c->zombie = 1; /* promoted() will run with c: it frees it */
    else
        free(c);
    if (done)
        done(darg);
}

static void tick_closed(uv_handle_t *h)
{
    ekv_coord_t *c = h->data;
    ekv_etcd_close(c->etcd, etcd_closed, c); /* fails what is still pending */
}

static void on_stop_revoked(void *ctx, int err, json_t *ans)
{
    (void)err;
    (void)ans;
    ekv_coord_t *c = ctx;
    if (--c->stop_calls == 0)
        uv_close((uv_handle_t *)&c->tick, tick_closed);
}

void ekv_coord_stop(ekv_coord_t *c, void (*done)(void *arg), void *arg)
{
    c->stopping = 1;
    c->stop_done = done;
    c->stop_arg = arg;
    uv_timer_stop(&c->tick);
    if (c->watch) {
        ekv_etcd_watch_t *w = c->watch;
        c->watch = NULL;
        ekv_etcd_watch_cancel(w);
    }
    /* the others need not wait for our leases to expire (each revoke ends within 1 s) */
    if (c->leading && lease_revoke(c, c->lease, on_stop_revoked) == 0)
        c->stop_calls++;
    if (c->mlease && lease_revoke(c, c->mlease, on_stop_revoked) == 0)
        c->stop_calls++;
    c->leading = 0;
    if (!c->stop_calls)
        uv_close((uv_handle_t *)&c->tick, tick_closed);
}

json_t *ekv_coord_status_json(const ekv_coord_t *c)
{
    uint64_t now = now_ns();
    json_t *o = json_pack("{s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:I}", "endpoint",
                          ekv_etcd_endpoint(c->etcd), "leading", c->leading, "primary",
                          c->leading ? c->n->node_id
                          : c->known ? c->leader_id
                                     : "",
                          "election_revision", (json_int_t)(c->leading ? c->epoch : c->leader_rev),
                          "elections_won", (json_int_t)c->elections_won, "campaigns",
                          (json_int_t)c->campaigns, "stepdowns", (json_int_t)c->stepdowns,
                          "watch_restarts", (json_int_t)c->watch_restarts);
    if (c->leading)
        json_object_set_new(o, "lease_ms_left",
                            json_integer(c->deadline_ns > now
                                             ? (json_int_t)((c->deadline_ns - now) / 1000000)
                                             : 0));
    if (!c->known && !c->leading && c->leaderless_since_ns)
        json_object_set_new(o, "leaderless_ms",
                            json_integer((json_int_t)((now - c->leaderless_since_ns) / 1000000)));
    return o;
}

int ekv_coord_metrics(const ekv_coord_t *c, ekv_buf_t *out)
{
    int rc = 0;
    rc = rc ? rc
            : ekv_metrics_gauge(out, "edgekv_coord_leading",
                                "1 while this node holds the leader key in etcd.", c->leading);
    rc = rc ? rc
            : ekv_metrics_counter(out, "edgekv_coord_elections_won_total",
                                  "Elections this process won.", (double)c->elections_won);
    rc =
        rc ? rc
           : ekv_metrics_counter(out, "edgekv_coord_stepdowns_total",
                                 "Times this process gave up being primary.", (double)c->stepdowns);
    rc = rc ? rc
            : ekv_metrics_counter(out, "edgekv_coord_lease_renew_failures_total",
                                  "Leader lease renewals that failed.", (double)c->renew_failures);
    rc = rc ? rc
            : ekv_metrics_counter(out, "edgekv_coord_watch_restarts_total",
                                  "etcd watch streams re-created.", (double)c->watch_restarts);
    return rc;
}
