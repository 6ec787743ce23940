/*
 * owner.c - an edge as a Durable Object owner (docl.h, docs/DURABLE-OBJECTS.md "Owners
 * across the cluster").
 *
 * An edge started as usual becomes an owner: it opens an authenticated link listener for its
 * peers (--repl-listen, else an ephemeral port on its API host) and heartbeats the primary
 * over a link of its own. Each granted heartbeat extends its lease to (send time +
 * --do-lease-ms). It runs the Durable Object runtime for the partitions the table gives it,
 * with the primary's store as its storage: reads and fenced commits are internal calls on
 * that link. While its lease is valid it answers from its own state; when the lease lapses
 * (a pause, a partition from the primary) every op first has its epoch checked by the
 * primary, so a stale owner never answers nor writes anything once its partitions moved.
 *
 * Alarm loads: a partition gained here is served once the stored alarms of the gained
 * partitions are loaded (from the primary's store: an internal call on an edge, a reader-pool
 * scan on the primary itself).
 *
 * SIGTERM (ekv_node_do_leave): the owner stops serving its partitions at once, tells the
 * primary it leaves (the primary moves them without waiting for the lease), then shuts down.
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "do_cluster.pb-c.h"
#include "replication/link.h"
#include "replication/primary.h"
#include "server/api/do/do.h"
#include "server/node/do/docl.h"
#include "server/node/rpc_exec.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define P                EKV_DO_PARTITIONS
#define LINK_TIMEOUT_MS  5000 /* reads, commits and heartbeats on the link to the primary */
#define LEAVE_WAIT_MS    1000
#define LOAD_RETRY_MS    200
#define HB_MAX_IN_FLIGHT 4 /* heartbeats unanswered at once (each counts from its send) */

static uint64_t now_ns(void)
{
    return ekv_clock_mono_ns();
}

/* ---------------------------------------------------------------- internal calls */

/* Send an internal call `name` with message m to the primary. 0 or an error (cb not run). */
static int call_primary(ekv_docl_t *c, const char *name, const ProtobufCMessage *m, ekv_rpc_cb cb,
                        void *ctx)
{
    if (!c->plink || !ekv_rpc_client_ready(c->plink))
        return EKV_EUPSTREAM;
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return EKV_ENOMEM;
    protobuf_c_message_pack(m, buf);
    Edgekv__Request rq = EDGEKV__REQUEST__INIT;
    rq.method = (char *)EKV_DO_RPC_METHOD;
    rq.path.data = (uint8_t *)name;
    rq.path.len = strlen(name);
    rq.query.data = (uint8_t *)"";
    rq.body.data = buf;
    rq.body.len = len;
    int rc = ekv_rpc_call(c->plink, &rq, cb, ctx);
    free(buf);
    return rc;
}

/* The ekv error of an internal call's failed answer. */
static int answer_err(int status, const Edgekv__Response *r)
{
    if (status)
        return status;
    if (r->status == 200)
        return 0;
    if (r->error_code == (uint32_t)ekv_err_cf_code(EKV_EDO_MOVED))
        return EKV_EDO_MOVED;
    if (r->error_code == (uint32_t)ekv_err_cf_code(EKV_EDO_NS_NOT_FOUND))
        return EKV_EDO_NS_NOT_FOUND;
    if (r->error_code == (uint32_t)ekv_err_cf_code(EKV_EDO_VALUE_TOO_LARGE))
        return EKV_EDO_VALUE_TOO_LARGE;
    return r->status == 503 ? EKV_EBUSY : EKV_EUPSTREAM;
}

/* -- heartbeats and the lease */

typedef struct {
    ekv_docl_t *c;
    uint64_t sent_ns;
    int leaving;
} hb_t;

static void send_heartbeat(ekv_docl_t *c);

static void hb_answered(void *ctx, int status, const Edgekv__Response *resp)
{
    hb_t *h = ctx;
    ekv_docl_t *c = h->c;
    if (!h->leaving && c->hb_in_flight > 0)
        c->hb_in_flight--;
    int err = answer_err(status, resp);
    if (status == 0 && resp->status == 421)
        c->rotate_now = 1; /* not the primary (any more): try the next address */
    Edgekv__DoHeartbeatReply *r =
        err ? NULL : edgekv__do_heartbeat_reply__unpack(NULL, resp->body.len, resp->body.data);
    if (!r) {
        if (!c->stopping && !h->leaving)
            ekv_log_debug("durable object heartbeat failed", "err=%s",
                          ekv_err_name(err ? err : EKV_EUPSTREAM));
        free(h);
        return;
    }
    if (!c->stopping && r->table.len) {
        ekv_do_table_t *t = malloc(sizeof(*t));
        if (t && ekv_do_table_decode(r->table.data, r->table.len, t) == 0)
            ekv__docl_install(c, t);
        else
            ekv_log_error("bad durable object partition table from the primary", "bytes=%zu",
                          r->table.len);
        free(t);
    }
    if (!c->stopping && r->granted && r->table_version <= c->table->pt.version) {
        uint64_t until = h->sent_ns + (uint64_t)r->lease_ms * 1000000ull;
        if (until > c->lease_until_ns)
            c->lease_until_ns = until;
        if (!c->lease_was_valid)
            ekv_log_info("durable object lease granted", "table_version=%llu lease_ms=%u",
                         (unsigned long long)c->table->pt.version, r->lease_ms);
        c->lease_was_valid = 1;
        c->last_refusal[0] = '\0';
    } else if (!r->granted && r->reason && strcmp(c->last_refusal, r->reason) != 0) {
        snprintf(c->last_refusal, sizeof(c->last_refusal), "%s", r->reason);
        ekv_log_info("durable object lease not granted", "why=\"%s\"", r->reason);
    }
    if (h->leaving && c->leave_done) {
        void (*done)(void *) = c->leave_done;
        c->leave_done = NULL;
        if (c->leave_timer_open)
            uv_timer_stop(&c->leave_timer);
        done(c->leave_arg);
    }
    edgekv__do_heartbeat_reply__free_unpacked(r, NULL);
    free(h);
}

static int heartbeat_call(ekv_docl_t *c, int leaving)
{
    hb_t *h = calloc(1, sizeof(*h));
    if (!h)
        return EKV_ENOMEM;
    h->c = c;
    h->sent_ns = now_ns();
    h->leaving = leaving;
    Edgekv__DoHeartbeat m = EDGEKV__DO_HEARTBEAT__INIT;
    m.node_id = c->n->node_id;
    m.addr = c->my_addr;
    m.incarnation = c->incarnation;
    m.table_version = c->table->pt.version;
    m.leaving = leaving;
    int rc = call_primary(c, "heartbeat", &m.base, hb_answered, h);
    if (rc)
        free(h);
    return rc;
}

static void send_heartbeat(ekv_docl_t *c)
{
    if (c->hb_in_flight >= HB_MAX_IN_FLIGHT || c->leaving || c->stopping)
        return;
    if (heartbeat_call(c, 0) == 0) {
        c->hb_in_flight++;
        c->last_hb_sent_ns = now_ns();
    }
}

static int leased(void *ctx)
{
    const ekv_docl_t *c = ctx;
    return now_ns() < c->lease_until_ns;
}

/* The link to the primary: --primary, else (after a promotion) one of --replicas; the next
 * address when the link stays down for 2 s or the node says it is not the primary (421). */
static void ensure_plink(ekv_docl_t *c)
{
    uint64_t now = now_ns();
    if (c->plink && ekv_rpc_client_ready(c->plink) && !c->rotate_now) {
        c->plink_down_since = 0;
        return;
    }
    if (c->plink && !c->plink_down_since)
        c->plink_down_since = now;
    if (c->plink && !c->rotate_now && now - c->plink_down_since < 2000000000ull)
        return;
    c->rotate_now = 0;
    /* (re)pick an address: the coordinator's primary, else among --primary, then --replicas */
    char list[1024];
    const ekv_config_t *cfg = c->n->cfg;
    if (c->n->coord_primary[0])
        snprintf(list, sizeof(list), "%s", c->n->coord_primary);
    else
        snprintf(list, sizeof(list), "%s%s%s", cfg->primary, cfg->replicas[0] ? "," : "",
                 cfg->replicas);
    size_t count = 1;
    for (const char *p = list; *p; p++)
        count += *p == ',';
    if (c->plink)
        c->paddr_idx = (c->paddr_idx + 1) % (int)count;
    const char *p = list;
    for (int i = 0; i < c->paddr_idx && strchr(p, ','); i++)
        p = strchr(p, ',') + 1;
    size_t len = strcspn(p, ",");
    char addr[300];
    if (len == 0 || len >= sizeof(addr))
        return;
    memcpy(addr, p, len);
    addr[len] = '\0';
    c->plink_down_since = now;
    if (c->plink && strcmp(addr, c->paddr) == 0)
        return;
    char host[256];
    int port;
    if (ekv_repl_parse_addr(addr, host, sizeof(host), &port))
        return;
    if (c->plink) {
        ekv_rpc_client_t *old = c->plink;
        c->plink = NULL; /* stopping it answers its heartbeats in flight (counted down) */
        ekv_rpc_client_stop(old, (void (*)(void *))ekv_rpc_client_free, old);
    }
    ekv_rpc_client_opts_t o = {0};
    o.loop = c->n->app->loop;
    o.host = host;
    o.port = port;
    o.auth = c->n->auth;
    o.node_id = c->n->node_id;
    o.timeout_ms = LINK_TIMEOUT_MS;
    o.link_timeout_ms = (int)c->n->cfg->repl_timeout_ms;
    o.heartbeat_ms = (int)c->n->cfg->repl_heartbeat_ms;
    if (ekv_rpc_client_start(&c->plink, &o) == 0) {
        snprintf(c->paddr, sizeof(c->paddr), "%s", addr);
        ekv_log_info("durable object owner: primary link", "addr=%s", addr);
    } else {
        c->plink = NULL;
    }
}

void ekv__docl_owner_tick(ekv_docl_t *c)
{
    if (c->stopping)
        return;
    ensure_plink(c);
    uint64_t now = now_ns();
    if (c->hb_due || now - c->last_hb_sent_ns >= (uint64_t)c->heartbeat_ms * 1000000ull) {
        c->hb_due = 0;
        send_heartbeat(c);
    }
    if (c->lease_was_valid && now >= c->lease_until_ns) {
        c->lease_was_valid = 0;
        c->st.lease_lapses++;
        ekv_log_warn("durable object lease lapsed: answers are checked with the primary first",
                     "primary=%s", c->paddr[0] ? c->paddr : "-");
    }
}

/* -- the runtime's remote storage */

static void commit_answered(void *ctx, int status, const Edgekv__Response *resp)
{
    ekv_write_t *w = ctx;
    w->status = answer_err(status, resp);
    w->job.done(&w->job);
}

static int remote_commit(void *ctx, ekv_write_t *w)
{
    ekv_docl_t *c = ctx;
    Edgekv__ChangeRecord rec = EDGEKV__CHANGE_RECORD__INIT;
    Edgekv__DoMutation *muts = calloc(w->do_nitems ? w->do_nitems : 1, sizeof(*muts));
    Edgekv__DoMutation **mp = calloc(w->do_nitems ? w->do_nitems : 1, sizeof(*mp));
    if (!muts || !mp) {
        free(muts);
        free(mp);
        return EKV_ENOMEM;
    }
    rec.op = EDGEKV__CHANGE_OP__DO_WRITE;
    rec.namespace_id.data = w->nsid;
    rec.namespace_id.len = EKV_NSID_LEN;
    rec.object_id.data = w->objid;
    rec.object_id.len = EKV_DO_OBJID_LEN;
    rec.do_delete_all = w->do_delete_all != 0;
    for (size_t i = 0; i < w->do_nitems; i++) {
        edgekv__do_mutation__init(&muts[i]);
        muts[i].key.data = (uint8_t *)w->do_items[i].key;
        muts[i].key.len = w->do_items[i].key_len;
        muts[i].del = w->do_items[i].del != 0;
        if (!w->do_items[i].del) {
            muts[i].value.data = (uint8_t *)w->do_items[i].value;
            muts[i].value.len = w->do_items[i].value_len;
        }
        mp[i] = &muts[i];
    }
    rec.n_do_mutations = w->do_nitems;
    rec.do_mutations = mp;
    rec.do_alarm_op = (Edgekv__DoAlarmOp)w->do_alarm_op;
    rec.do_alarm_ms = w->do_alarm_ms;
    rec.do_object_name = (char *)(w->do_object_name ? w->do_object_name : "");
    Edgekv__DoCommit m = EDGEKV__DO_COMMIT__INIT;
    m.record = &rec;
    m.partition = w->do_partition;
    m.epoch = w->do_epoch;
    m.fence_only = w->type == EKV_OP_DO_FENCE;
    int rc = call_primary(c, "commit", &m.base, commit_answered, w);
    free(muts);
    free(mp);
    return rc;
}

static void read_answered(void *ctx, int status, const Edgekv__Response *resp)
{
    ekv_do_rread_t *r = ctx;
    int err = answer_err(status, resp);
    Edgekv__DoReadReply *m =
        err ? NULL : edgekv__do_read_reply__unpack(NULL, resp->body.len, resp->body.data);
    if (!err && !m)
        err = EKV_EUPSTREAM;
    if (!err && r->list) {
        ekv_do_list_t *l = r->list_out;
        size_t n = m->n_list_keys;
        if (m->n_list_values != n || !(l->items = calloc(n ? n : 1, sizeof(*l->items)))) {
            err = m->n_list_values != n ? EKV_EUPSTREAM : EKV_ENOMEM;
        } else {
            for (size_t i = 0; i < n && !err; i++) {
                size_t kl = m->list_keys[i].len, vl = m->list_values[i].len;
                char *k = malloc(kl + vl + 2);
                if (!k) {
                    err = EKV_ENOMEM;
                    break;
                }
                memcpy(k, m->list_keys[i].data, kl);
                k[kl] = '\0';
                memcpy(k + kl + 1, m->list_values[i].data, vl);
                k[kl + 1 + vl] = '\0';
                l->items[i].key = k;
                l->items[i].key_len = kl;
                l->items[i].value = k + kl + 1;
                l->items[i].value_len = vl;
                l->count = i + 1;
            }
            l->more = m->more;
        }
    } else if (!err) {
        /* the answer's values are for the keys asked, in order */
        size_t j = 0;
        for (size_t i = 0; i < r->nkeys && !err; i++) {
            if (!r->want[i])
                continue;
            if (j >= m->n_values || j >= m->n_found) {
                err = EKV_EUPSTREAM;
                break;
            }
            if (m->found[j]) {
                char *v = malloc(m->values[j].len + 1);
                if (!v) {
                    err = EKV_ENOMEM;
                    break;
                }
                memcpy(v, m->values[j].data, m->values[j].len);
                v[m->values[j].len] = '\0';
                r->vals[i] = v;
                r->vlens[i] = m->values[j].len;
                r->found[i] = 1;
            }
            j++;
        }
    }
    if (m)
        edgekv__do_read_reply__free_unpacked(m, NULL);
    r->rc = err;
    r->done(r);
}

static int remote_read(void *ctx, ekv_do_rread_t *r)
{
    ekv_docl_t *c = ctx;
    Edgekv__DoRead m = EDGEKV__DO_READ__INIT;
    m.namespace_id.data = (uint8_t *)r->dons;
    m.namespace_id.len = EKV_NSID_LEN;
    m.object_id.data = (uint8_t *)r->objid;
    m.object_id.len = EKV_DO_OBJID_LEN;
    ProtobufCBinaryData *keys = NULL;
    if (r->list) {
        m.list = 1;
        m.lo.data = (uint8_t *)r->lo;
        m.lo.len = r->lo_len;
        m.hi.data = (uint8_t *)r->hi;
        m.hi.len = r->hi_len;
        m.has_hi = r->has_hi;
        m.reverse = r->reverse;
        m.limit = (uint32_t)r->limit;
    } else {
        keys = calloc(r->nkeys ? r->nkeys : 1, sizeof(*keys));
        if (!keys)
            return EKV_ENOMEM;
        for (size_t i = 0; i < r->nkeys; i++)
            if (r->want[i]) {
                keys[m.n_keys].data = (uint8_t *)r->keys[i];
                keys[m.n_keys].len = r->klens[i];
                m.n_keys++;
            }
        m.keys = keys;
    }
    int rc = call_primary(c, "read", &m.base, read_answered, r);
    free(keys);
    return rc;
}

/* ---------------------------------------------------------------- alarm loads */

typedef struct load_s {
    ekv_docl_t *c;
    uint8_t parts[EKV_DO_PART_BYTES];
    uint32_t gen;
    uint8_t after[EKV_NSID_LEN + EKV_DO_OBJID_LEN];
    int has_after;
    /* the primary's own load (reader pool) */
    ekv_job_t job;
    int rc, more;
    struct load_alarm_s *alarms;
} load_t;

typedef struct load_alarm_s {
    struct load_alarm_s *next;
    uint8_t ids[EKV_NSID_LEN + EKV_DO_OBJID_LEN];
    int64_t ms;
    size_t name_len;
    char name[];
} load_alarm_t;

static void load_next(load_t *l);

/* The load ended: its partitions that still wait for it are served now. */
static void load_finished(load_t *l)
{
    ekv_docl_t *c = l->c;
    size_t n = 0;
    for (uint32_t p = 0; p < P; p++)
        if (ekv_do_bit(l->parts, p) && c->here[p] == DOCL_LOADING && c->load_gen[p] == l->gen) {
            c->here[p] = DOCL_ACTIVE;
            n++;
        }
    if (n)
        ekv_log_info("durable object partitions served here", "partitions=%zu", n);
    free(l);
    ekv__docl_route_tick(c);
}

/* 1 while some partition still waits for this load. */
static int load_wanted(const load_t *l)
{
    const ekv_docl_t *c = l->c;
    if (c->stopping || c->n->docl != c)
        return 0;
    for (uint32_t p = 0; p < P; p++)
        if (ekv_do_bit(l->parts, p) && c->here[p] == DOCL_LOADING && c->load_gen[p] == l->gen)
            return 1;
    return 0;
}

static void deliver(load_t *l, const uint8_t *dons, const uint8_t *objid, int64_t ms,
                    const char *name, size_t name_len)
{
    ekv_docl_t *c = l->c;
    uint32_t p = ekv_do_partition_of(objid);
    if (c->here[p] != DOCL_LOADING || c->load_gen[p] != l->gen || !c->n->app->dos)
        return;
    ekv_do_alarm_load(c->n->app->dos, dons, objid, ms, name, name_len);
}

static void retry_timer_cb(uv_timer_t *t)
{
    load_t *l = t->data;
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
    if (load_wanted(l))
        load_next(l);
    else
        free(l);
}

static void load_retry(load_t *l)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (!t) {
        free(l);
        return;
    }
    uv_timer_init(l->c->n->app->loop, t);
    t->data = l;
    uv_timer_start(t, retry_timer_cb, LOAD_RETRY_MS, 0);
}

static void alarms_answered(void *ctx, int status, const Edgekv__Response *resp)
{
    load_t *l = ctx;
    if (!load_wanted(l)) {
        free(l);
        return;
    }
    int err = answer_err(status, resp);
    Edgekv__DoAlarmsReply *m =
        err ? NULL : edgekv__do_alarms_reply__unpack(NULL, resp->body.len, resp->body.data);
    if (!m) {
        ekv_log_warn("cannot load the alarms of gained durable object partitions; retrying",
                     "err=%s", ekv_err_name(err ? err : EKV_EUPSTREAM));
        load_retry(l);
        return;
    }
    for (size_t i = 0; i < m->n_alarms; i++) {
        const Edgekv__DoAlarm *a = m->alarms[i];
        if (a->namespace_id.len != EKV_NSID_LEN || a->object_id.len != EKV_DO_OBJID_LEN)
            continue;
        deliver(l, a->namespace_id.data, a->object_id.data, a->ms, a->name ? a->name : "",
                a->name ? strlen(a->name) : 0);
        memcpy(l->after, a->namespace_id.data, EKV_NSID_LEN);
        memcpy(l->after + EKV_NSID_LEN, a->object_id.data, EKV_DO_OBJID_LEN);
        l->has_after = 1;
    }
    int more = m->more && m->n_alarms;
    edgekv__do_alarms_reply__free_unpacked(m, NULL);
    if (more)
        load_next(l);
    else
        load_finished(l);
}

static void visit_alarm(void *ctx, const uint8_t dons[EKV_NSID_LEN],
                        const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                        size_t name_len)
{
    load_t *l = ctx;
    load_alarm_t *a = malloc(sizeof(*a) + name_len + 1);
    if (!a) {
        l->rc = EKV_ENOMEM;
        return;
    }
    memcpy(a->ids, dons, EKV_NSID_LEN);
    memcpy(a->ids + EKV_NSID_LEN, objid, EKV_DO_OBJID_LEN);
    a->ms = ms;
    a->name_len = name_len;
    memcpy(a->name, name, name_len);
    a->name[name_len] = '\0';
    a->next = l->alarms;
    l->alarms = a;
}

static void local_load_work(ekv_job_t *job)
{
    load_t *l = (load_t *)((char *)job - offsetof(load_t, job));
    ekv_do_visitor_t v = {.ctx = l, .on_alarm = visit_alarm};
    l->rc = ekv_store_do_alarms_of(l->c->n->app->store, l->parts, NULL, SIZE_MAX, &v, &l->more);
}

static void local_load_done(ekv_job_t *job)
{
    load_t *l = (load_t *)((char *)job - offsetof(load_t, job));
    int ok = l->rc == 0;
    while (l->alarms) {
        load_alarm_t *a = l->alarms;
        l->alarms = a->next;
        if (ok && load_wanted(l))
            deliver(l, a->ids, a->ids + EKV_NSID_LEN, a->ms, a->name, a->name_len);
        free(a);
    }
    if (!load_wanted(l))
        free(l);
    else if (!ok)
        load_retry(l);
    else
        load_finished(l);
}

static void load_next(load_t *l)
{
    ekv_docl_t *c = l->c;
    if (c->placing) {
        memset(&l->job, 0, sizeof(l->job));
        l->job.work = local_load_work;
        l->job.done = local_load_done;
        l->rc = 0;
        if (ekv_workq_submit(&c->n->app->readers, &l->job))
            load_retry(l);
        return;
    }
    Edgekv__DoAlarmsReq m = EDGEKV__DO_ALARMS_REQ__INIT;
    m.partitions.data = l->parts;
    m.partitions.len = EKV_DO_PART_BYTES;
    if (l->has_after) {
        m.after.data = l->after;
        m.after.len = sizeof(l->after);
    }
    if (call_primary(c, "alarms", &m.base, alarms_answered, l))
        load_retry(l);
}

void ekv__docl_load_alarms(ekv_docl_t *c, const uint8_t *parts, uint32_t gen)
{
    load_t *l = calloc(1, sizeof(*l));
    if (!l)
        return; /* the partitions stay LOADING: calls wait, then 503 */
    l->c = c;
    memcpy(l->parts, parts, EKV_DO_PART_BYTES);
    l->gen = gen;
    load_next(l);
}

/* ---------------------------------------------------------------- start, leave, stop */

static int start_listener(ekv_docl_t *c)
{
    ekv_node_t *n = c->n;
    ekv_config_t *cfg = n->cfg;
    const char *host = cfg->repl_port >= 0 ? cfg->repl_host : cfg->host;
    ekv_repl_primary_opts_t o;
    ekv_node_listener_opts(n, &o);
    o.store = NULL; /* RPC links only */
    o.host = host;
    o.port = cfg->repl_port >= 0 ? cfg->repl_port : 0;
    o.edge_only = 1;
    if (ekv_repl_primary_start(&n->primary, &o)) {
        n->primary = NULL;
        return -1;
    }
    int port = ekv_repl_primary_port(n->primary);
    if (cfg->do_advertise[0]) {
        snprintf(c->my_addr, sizeof(c->my_addr), "%s", cfg->do_advertise);
    } else {
        char hn[100] = "localhost";
        if (strcmp(host, "0.0.0.0") && strcmp(host, "::") && host[0])
            snprintf(hn, sizeof(hn), "%.99s", host);
        else if (gethostname(hn, sizeof(hn) - 1) == 0)
            hn[sizeof(hn) - 1] = '\0';
        snprintf(c->my_addr, sizeof(c->my_addr), "%s:%d", hn, port);
    }
    return 0;
}

int ekv__docl_owner_start(ekv_docl_t *c)
{
    ekv_node_t *n = c->n;
    c->owning = 1;
    if (RAND_bytes((unsigned char *)&c->incarnation, sizeof(c->incarnation)) != 1)
        c->incarnation = now_ns() ^ ((uint64_t)getpid() << 32);
    if (start_listener(c))
        return -1;
    ekv_do_opts_t o = {0};
    o.call_wait_ms = (int)n->cfg->do_call_wait_ms;
    o.call_timeout_ms = (int)n->cfg->do_call_timeout_ms;
    o.call_queue_max = (size_t)n->cfg->do_call_queue;
    o.alarm_retry_base_ms = (int)n->cfg->do_alarm_retry_base_ms;
    o.no_store = 1;
    o.cluster.ctx = c;
    o.cluster.here = ekv__docl_here;
    o.cluster.epoch = ekv__docl_epoch;
    o.cluster.leased = leased;
    o.cluster.commit = remote_commit;
    o.cluster.read = remote_read;
    int rc = ekv_do_start(n->app, &o);
    if (rc) {
        ekv_log_error("cannot start durable objects", "err=%s", ekv_err_name(rc));
        return -1;
    }
    ensure_plink(c);
    ekv_log_info("durable object owner started", "node=%s addr=%s primary=%s", n->node_id,
                 c->my_addr, c->paddr[0] ? c->paddr : "-");
    return 0;
}

static void leave_timeout(uv_timer_t *t)
{
    ekv_docl_t *c = t->data;
    if (c->leave_done) {
        void (*done)(void *) = c->leave_done;
        c->leave_done = NULL;
        ekv_log_warn("the primary did not answer our leave: our partitions move when our "
                     "lease expires",
                     "%s", "");
        done(c->leave_arg);
    }
}

void ekv_node_do_leave(ekv_node_t *n, void (*done)(void *arg), void *arg)
{
    ekv_docl_t *c = n->docl;
    if (!c || !c->owning || c->leaving) {
        done(arg);
        return;
    }
    c->leaving = 1;
    uint8_t lost[EKV_DO_PART_BYTES];
    memset(lost, 0, sizeof(lost));
    size_t k = 0;
    for (uint32_t p = 0; p < P; p++)
        if (c->here[p] != DOCL_NONE) {
            if (c->here[p] == DOCL_ACTIVE || c->here[p] == DOCL_LOADING)
                ekv_do_bit_set(lost, p);
            c->here[p] = DOCL_NONE;
            k++;
        }
    c->lease_until_ns = 0;
    if (k && n->app->dos)
        ekv_do_partitions_lost(n->app->dos, lost);
    ekv_log_info("durable object owner leaving: partitions released", "partitions=%zu", k);
    c->leave_done = done;
    c->leave_arg = arg;
    if (heartbeat_call(c, 1)) {
        c->leave_done = NULL;
        done(arg);
        return;
    }
    uv_timer_init(n->app->loop, &c->leave_timer);
    c->leave_timer.data = c;
    c->leave_timer_open = 1;
    uv_timer_start(&c->leave_timer, leave_timeout, LEAVE_WAIT_MS, 0);
}

void ekv__docl_owner_stop(ekv_docl_t *c)
{
    if (c->leave_timer_open) {
        uv_timer_stop(&c->leave_timer);
        uv_close((uv_handle_t *)&c->leave_timer, NULL);
        c->leave_timer_open = 0;
    }
    c->leave_done = NULL;
    if (c->plink) {
        ekv_rpc_client_t *old = c->plink;
        c->plink = NULL;
        ekv_rpc_client_stop(old, (void (*)(void *))ekv_rpc_client_free, old);
    }
}
