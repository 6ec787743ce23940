/*
 * placement.c - the primary assigns Durable Object partitions to owners (docl.h,
 * docs/DURABLE-OBJECTS.md "Owners across the cluster").
 *
 * Members. An edge registers with its first heartbeat and heartbeats every
 * --do-heartbeat-ms; each answered heartbeat grants it a lease of --do-lease-ms counted from
 * when it sent it (so its lease always ends before the primary's view of it, which counts
 * from arrival). A member silent for a lease (+ 50 ms) has expired: its partitions move.
 *
 * Table changes are committed one at a time (a DO_PTABLE op: the table in meta, one change
 * record, and the committer's fencing epochs, all in commit order). A change applies, at
 * once: expired and departed members leave (their partitions go to the others, served at
 * once: their leases are over or they let go); new members join (partitions from live
 * owners go pending: the new owner serves them once the old one has installed the table or
 * its leases from before the change have run out; from the primary they move at once, the
 * primary dropping them before it submits the change); and pending partitions whose old
 * owner let go are activated. A write of the old owner reaching the committer after the
 * change carries an old epoch and is refused (fencing), so no two owners ever write.
 *
 * The internal calls (method EKV-DO over an authenticated link, do_cluster.proto):
 * heartbeat, read (an owner's store reads), commit (an owner's fenced write), alarms (the
 * stored alarms of partitions an owner gains).
 */
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "do_cluster.pb-c.h"
#include "server/api/do/do.h"
#include "server/node/do/docl.h"
#include "replication/frame.h"
#include "server/node/rpc_exec.h"

#include <stdlib.h>
#include <string.h>

#define P               EKV_DO_PARTITIONS
#define EXPIRY_SLACK_MS 50
#define ALARMS_PAGE     10000
#define READ_MAX_BYTES  ((size_t)48 << 20) /* a read reply fits in one frame */
#define LIST_PAGE_BYTES ((size_t)8 << 20)  /* an owner's list page: the runtime's own cap */

static uint64_t ms_ns(int ms)
{
    return (uint64_t)ms * 1000000ull;
}

static docl_member_t *member_find(ekv_docl_t *c, const char *id)
{
    for (size_t i = 0; i < c->nmembers; i++)
        if (strcmp(c->members[i].id, id) == 0)
            return &c->members[i];
    return NULL;
}

static void plan(ekv_docl_t *c);

/* ---------------------------------------------------------------- start */

int ekv__docl_placement_start(ekv_docl_t *c)
{
    ekv_node_t *n = c->n;
    ekv_app_t *app = n->app;
    c->placing = 1;
    c->owning = 0;
    c->start_ns = ekv_clock_mono_ns();
    char *buf = NULL;
    size_t len = 0;
    int rc = ekv_store_do_ptable_get(app->store, &buf, &len); /* start-up / promotion */
    ekv_do_table_init(c->table);
    if (rc == 0 && ekv_do_table_decode(buf, len, c->table)) {
        ekv_log_error("stored durable object partition table is corrupt: starting over",
                      "bytes=%zu", len);
        ekv_do_table_init(c->table);
    } else if (rc && rc != EKV_EKEY_NOT_FOUND) {
        free(buf);
        return -1;
    }
    free(buf);
    /* the committer fences by these epochs from now on */
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_DO_EPOCHS;
    w.do_epochs = c->table->pt.epoch;
    if (ekv_store_write_sync(app->store, &w)) {
        ekv_log_error("cannot set the durable object fencing epochs", "%s", "");
        return -1;
    }
    if (ekv_do_table_encode(c->table, &c->table_wire))
        return -1;
    /* every owner in the table keeps its partitions if it heartbeats within a lease; leases
     * granted before this start (by an earlier process) end by start + lease */
    free(c->members);
    c->nmembers = 0;
    c->members = calloc(DOCL_MAX_MEMBERS, sizeof(*c->members));
    if (!c->members)
        return -1;
    for (size_t i = 0; i < c->table->pt.nnodes; i++) {
        docl_member_t *m = &c->members[c->nmembers++];
        snprintf(m->id, sizeof(m->id), "%s", c->table->pt.nodes[i]);
        snprintf(m->addr, sizeof(m->addr), "%s", c->table->addr[i]);
        m->last_hb_ns = c->start_ns;
        m->in_table = 1;
    }
    if (ekv_do_table_npending(c->table)) {
        docl_handover_t *h = calloc(1, sizeof(*h));
        if (!h)
            return -1;
        h->version = c->table->pt.version;
        h->committed_ns = c->start_ns;
        for (uint32_t p = 0; p < P; p++)
            if (c->table->pending[p])
                ekv_do_bit_set(h->parts, p);
        h->next = c->handovers;
        c->handovers = h;
    }
    /* the runtime starts after this and loads the alarms of what is ACTIVE here */
    for (uint32_t p = 0; p < P; p++)
        c->here[p] =
            ekv_do_table_owner(c->table, p) == EKV_DO_OWNER_PRIMARY ? DOCL_ACTIVE : DOCL_NONE;
    ekv_log_info("durable object placement started",
                 "table_version=%llu owners=%zu pending=%zu lease_ms=%d heartbeat_ms=%d",
                 (unsigned long long)c->table->pt.version, c->table->pt.nnodes,
                 ekv_do_table_npending(c->table), c->lease_ms, c->heartbeat_ms);
    return 0;
}

void ekv__docl_placement_free(ekv_docl_t *c)
{
    while (c->handovers) {
        docl_handover_t *h = c->handovers;
        c->handovers = h->next;
        free(h);
    }
    free(c->members);
    c->members = NULL;
    c->nmembers = 0;
}

/* ---------------------------------------------------------------- table changes */

typedef struct {
    ekv_write_t w;
    ekv_docl_t *c;
    ekv_do_table_t *t;
    ekv_buf_t wire;
    docl_handover_t *new_handovers;
    size_t moved;
} change_t;

static void change_done(ekv_job_t *job)
{
    change_t *ch = (change_t *)(void *)job;
    ekv_docl_t *c = ch->c;
    ekv_node_t *n = c->n;
    c->committing = 0;
    if (ch->w.status || c->stopping || n->docl != c) {
        if (ch->w.status)
            ekv_log_error("durable object partition table change failed; retrying",
                          "err=%s version=%llu", ekv_err_name(ch->w.status),
                          (unsigned long long)ch->t->pt.version);
        while (ch->new_handovers) {
            docl_handover_t *h = ch->new_handovers;
            ch->new_handovers = h->next;
            free(h);
        }
        goto out;
    }
    uint64_t now = ekv_clock_mono_ns();
    /* members: the departed go, the joined are in */
    size_t k = 0;
    for (size_t i = 0; i < c->nmembers; i++) {
        docl_member_t *m = &c->members[i];
        int in = ekv_do_ptable_find(&ch->t->pt, m->id) >= 0;
        if (m->gone && !in)
            continue;
        m->in_table = in;
        c->members[k++] = *m;
    }
    c->nmembers = k;
    while (ch->new_handovers) {
        docl_handover_t *h = ch->new_handovers;
        ch->new_handovers = h->next;
        h->committed_ns = now;
        h->next = c->handovers;
        c->handovers = h;
    }
    c->st.moves += ch->moved;
    ekv_buf_deinit(&c->table_wire);
    c->table_wire = ch->wire;
    ekv_buf_init(&ch->wire, 0);
    ekv__docl_install(c, ch->t);
    ekv_log_info("durable object partitions moved", "version=%llu moved=%zu owners=%zu",
                 (unsigned long long)c->table->pt.version, ch->moved, c->table->pt.nnodes);
out:
    ekv_buf_deinit(&ch->wire);
    free(ch->t);
    free(ch);
    if (n->docl == c && !c->stopping)
        plan(c);
}

/* Handover records whose old owner let go: their partitions stop pending in t. 1 if any. */
static int activate(ekv_docl_t *c, ekv_do_table_t *t, uint64_t now)
{
    int changed = 0;
    for (docl_handover_t **pp = &c->handovers; *pp;) {
        docl_handover_t *h = *pp;
        const docl_member_t *from = h->from[0] ? member_find(c, h->from) : NULL;
        int let_go = !from || from->gone || from->acked >= h->version ||
                     (h->committed_ns && now >= h->committed_ns + ms_ns(c->lease_ms));
        if (!h->committed_ns || !let_go) {
            pp = &h->next;
            continue;
        }
        for (uint32_t p = 0; p < P; p++)
            if (ekv_do_bit(h->parts, p) && t->pending[p]) {
                t->pending[p] = 0;
                changed = 1;
            }
        *pp = h->next;
        free(h);
    }
    return changed;
}

/* The next table change, if one is due; submitted to the committer. */
static void plan(ekv_docl_t *c)
{
    if (c->committing || c->stopping)
        return;
    ekv_node_t *n = c->n;
    if (n->fenced)
        return;
    uint64_t now = ekv_clock_mono_ns();
    change_t *ch = calloc(1, sizeof(*ch));
    if (!ch || !(ch->t = malloc(sizeof(*ch->t)))) {
        free(ch);
        return;
    }
    ch->c = c;
    ekv_buf_init(&ch->wire, 0);
    ekv_do_table_t *t = ch->t;
    memcpy(t, c->table, sizeof(*t));
    uint64_t base = t->pt.version;
    int changed = 0;
    size_t moved;
    uint8_t primary_lost[EKV_DO_PART_BYTES];
    memset(primary_lost, 0, sizeof(primary_lost));
    /* 1. departed and expired members leave (nothing of theirs pends: they let go) */
    for (size_t i = 0; i < c->nmembers; i++) {
        docl_member_t *m = &c->members[i];
        if (m->gone && ekv_do_ptable_find(&t->pt, m->id) >= 0 &&
            ekv_do_table_leave(t, m->id, NULL, &moved) == 0) {
            ch->moved += moved;
            changed = 1;
        }
    }
    /* 2. new members join: partitions of live owners pend, the primary's move at once */
    for (size_t i = 0; i < c->nmembers; i++) {
        docl_member_t *m = &c->members[i];
        if (m->gone || ekv_do_ptable_find(&t->pt, m->id) >= 0 || t->pt.nnodes >= EKV_DO_PTABLE_MAX)
            continue;
        /* join only appends a node: the old owners keep their indices */
        size_t prev_n = t->pt.nnodes;
        uint16_t *prev = malloc((size_t)P * sizeof(*prev));
        docl_handover_t **from_of = calloc(prev_n ? prev_n : 1, sizeof(*from_of));
        uint8_t *let_go = calloc(prev_n ? prev_n : 1, 1);
        uint8_t changed_bits[EKV_DO_PART_BYTES];
        memset(changed_bits, 0, sizeof(changed_bits));
        int rc = prev && from_of && let_go ? 0 : EKV_ENOMEM;
        if (!rc) {
            memcpy(prev, t->pt.owner, (size_t)P * sizeof(*prev));
            rc = ekv_do_table_join(t, m->id, m->addr, changed_bits, &moved);
        }
        if (rc) {
            free(prev);
            free(from_of);
            free(let_go);
            continue;
        }
        ch->moved += moved;
        changed = 1;
        for (uint32_t p = 0; p < P; p++) {
            if (!ekv_do_bit(changed_bits, p))
                continue;
            if (!prev_n) {
                ekv_do_bit_set(primary_lost, p);
                continue;
            }
            uint16_t k = prev[p];
            if (!from_of[k] && !let_go[k]) {
                const docl_member_t *from = member_find(c, t->pt.nodes[k]);
                if (!from || from->gone || !(from_of[k] = calloc(1, sizeof(*from_of[k])))) {
                    let_go[k] = 1; /* it let go already (or no memory: then do not wait) */
                } else {
                    snprintf(from_of[k]->from, sizeof(from_of[k]->from), "%s", from->id);
                    from_of[k]->next = ch->new_handovers;
                    ch->new_handovers = from_of[k];
                }
            }
            if (from_of[k]) {
                ekv_do_bit_set(from_of[k]->parts, p);
                t->pending[p] = 1;
            }
        }
        free(prev);
        free(from_of);
        free(let_go);
    }
    /* 3. hand-overs whose old owner let go */
    if (activate(c, t, now))
        changed = 1;
    if (!changed) {
        ekv_buf_deinit(&ch->wire);
        free(ch->t);
        free(ch);
        return;
    }
    /* one change: one version (leave/join above each counted one) */
    uint64_t v = base + 1;
    for (uint32_t p = 0; p < P; p++)
        if (t->pt.epoch[p] > base)
            t->pt.epoch[p] = v;
    t->pt.version = v;
    for (docl_handover_t *h = ch->new_handovers; h; h = h->next)
        h->version = v;
    if (ekv_do_table_encode(t, &ch->wire)) {
        ekv_buf_deinit(&ch->wire);
        free(ch->t);
        free(ch);
        return;
    }
    /* the primary stops serving what it hands over before the change is submitted: its
     * writes already submitted commit first (committer order), later ones would be fenced */
    size_t nl = 0;
    for (uint32_t p = 0; p < P; p++)
        if (ekv_do_bit(primary_lost, p)) {
            c->here[p] = DOCL_NONE;
            nl++;
        }
    if (nl && n->app->dos)
        ekv_do_partitions_lost(n->app->dos, primary_lost);
    ch->w.type = EKV_OP_DO_PTABLE;
    ch->w.do_table = ch->wire.data;
    ch->w.do_table_len = ch->wire.len;
    ch->w.do_epochs = t->pt.epoch;
    ch->w.job.done = change_done;
    int rc = ekv_store_write_submit(n->app->store, &ch->w);
    if (rc) {
        ekv_log_warn("cannot submit a durable object table change; retrying", "err=%s",
                     ekv_err_name(rc));
        while (ch->new_handovers) {
            docl_handover_t *h = ch->new_handovers;
            ch->new_handovers = h->next;
            free(h);
        }
        ekv_buf_deinit(&ch->wire);
        free(ch->t);
        free(ch);
        return;
    }
    c->committing = 1;
}

void ekv__docl_placement_tick(ekv_docl_t *c)
{
    uint64_t now = ekv_clock_mono_ns();
    int due = 0;
    for (size_t i = 0; i < c->nmembers; i++) {
        docl_member_t *m = &c->members[i];
        if (m->gone)
            continue;
        if (now > m->last_hb_ns + ms_ns(c->lease_ms + EXPIRY_SLACK_MS)) {
            m->gone = 1;
            c->st.lease_expiries++;
            ekv_log_warn("durable object owner's lease expired: its partitions move",
                         "node=%s addr=%s silent_ms=%llu", m->id, m->addr,
                         (unsigned long long)((now - m->last_hb_ns) / 1000000ull));
        }
        if (m->gone || !m->in_table)
            due = 1;
    }
    if (c->handovers)
        due = 1;
    if (due)
        plan(c);
}

/* ---------------------------------------------------------------- internal calls */

static void reply_msg(ekv_app_t *app, uint64_t peer, uint64_t id, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        ekv_rpc_respond(app, peer, id, 503, (uint32_t)ekv_err_cf_code(EKV_ENOMEM), NULL, 0);
        return;
    }
    protobuf_c_message_pack(m, buf);
    ekv_rpc_respond(app, peer, id, 200, 0, buf, len);
    free(buf);
}

static void reply_err(ekv_app_t *app, uint64_t peer, uint64_t id, int err)
{
    ekv_rpc_respond(app, peer, id, (uint32_t)ekv_err_http_status(err),
                    (uint32_t)ekv_err_cf_code(err), NULL, 0);
}

static void on_heartbeat(ekv_docl_t *c, uint64_t peer, uint64_t id, const uint8_t *b, size_t len)
{
    ekv_app_t *app = c->n->app;
    Edgekv__DoHeartbeat *hb = edgekv__do_heartbeat__unpack(NULL, len, b);
    if (!hb || !hb->node_id || !hb->node_id[0] || strlen(hb->node_id) >= EKV_DO_NODE_ID_MAX ||
        !hb->addr || strlen(hb->addr) >= EKV_DO_ADDR_MAX) {
        if (hb)
            edgekv__do_heartbeat__free_unpacked(hb, NULL);
        reply_err(app, peer, id, EKV_EBAD_REQUEST);
        return;
    }
    uint64_t now = ekv_clock_mono_ns();
    Edgekv__DoHeartbeatReply r = EDGEKV__DO_HEARTBEAT_REPLY__INIT;
    r.lease_ms = (uint32_t)c->lease_ms;
    r.table_version = c->table->pt.version;
    docl_member_t *m = member_find(c, hb->node_id);
    int need_plan = 0;
    if (!m) {
        if (hb->leaving || c->nmembers >= DOCL_MAX_MEMBERS) {
            r.reason = (char *)(hb->leaving ? "not a member" : "too many owners");
        } else {
            m = &c->members[c->nmembers++];
            memset(m, 0, sizeof(*m));
            snprintf(m->id, sizeof(m->id), "%s", hb->node_id);
            snprintf(m->addr, sizeof(m->addr), "%s", hb->addr);
            m->incarnation = hb->incarnation;
            m->last_hb_ns = now;
            m->acked = hb->table_version;
            ekv_log_info("durable object owner registered", "node=%s addr=%s", m->id, m->addr);
            r.granted = 1;
            need_plan = 1;
        }
    } else if (m->incarnation && m->incarnation != hb->incarnation) {
        /* another process with this id (a restart): the old one's lease must run out and
         * its partitions move before this one joins */
        r.reason = (char *)"a previous process of this node id still holds a lease; waiting "
                           "for it to expire";
        if (!m->gone && now > m->last_hb_ns + ms_ns(c->lease_ms + EXPIRY_SLACK_MS))
            need_plan = 1;
    } else if (m->gone) {
        r.reason = (char *)(m->left ? "left" : "lease expired: rejoining after the table change");
        need_plan = 1;
    } else {
        m->incarnation = hb->incarnation;
        m->last_hb_ns = now;
        if (hb->table_version > m->acked) {
            m->acked = hb->table_version;
            if (c->handovers)
                need_plan = 1;
        }
        if (hb->leaving) {
            m->gone = 1;
            m->left = 1;
            ekv_log_info("durable object owner leaves", "node=%s", m->id);
            need_plan = 1;
        } else {
            r.granted = 1;
        }
    }
    if (hb->table_version < c->table->pt.version) {
        r.table.data = (uint8_t *)c->table_wire.data;
        r.table.len = c->table_wire.len;
    }
    reply_msg(app, peer, id, &r.base);
    edgekv__do_heartbeat__free_unpacked(hb, NULL);
    if (need_plan)
        plan(c);
}

/* -- read: an owner's reads of one object, on the reader pool */

typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    uint64_t peer, id;
    Edgekv__DoRead *q;
    int rc;
    char **vals;
    size_t *vlens;
    ekv_do_list_t list;
} rjob_t;

static void read_work(ekv_job_t *job)
{
    rjob_t *j = (rjob_t *)(void *)job;
    Edgekv__DoRead *q = j->q;
    ekv_store_t *s = j->app->store;
    if (q->list) {
        j->rc =
            ekv_store_do_list(s, q->namespace_id.data, q->object_id.data, (const char *)q->lo.data,
                              q->lo.len, (const char *)q->hi.data, q->hi.len, q->has_hi, q->reverse,
                              q->limit ? q->limit : 1000, LIST_PAGE_BYTES, &j->list);
        return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < q->n_keys && !j->rc; i++) {
        int rc = ekv_store_do_get(s, q->namespace_id.data, q->object_id.data,
                                  (const char *)q->keys[i].data, q->keys[i].len, &j->vals[i],
                                  &j->vlens[i]);
        if (rc == 0)
            bytes += j->vlens[i];
        else if (rc != EKV_EKEY_NOT_FOUND)
            j->rc = rc;
        if (bytes > READ_MAX_BYTES)
            j->rc = EKV_EDO_VALUE_TOO_LARGE;
    }
}

static void read_done(ekv_job_t *job)
{
    rjob_t *j = (rjob_t *)(void *)job;
    Edgekv__DoRead *q = j->q;
    if (j->rc) {
        reply_err(j->app, j->peer, j->id, j->rc);
    } else {
        Edgekv__DoReadReply r = EDGEKV__DO_READ_REPLY__INIT;
        size_t n = q->list ? j->list.count : q->n_keys;
        ProtobufCBinaryData *a = calloc(n ? n : 1, sizeof(*a));
        ProtobufCBinaryData *b = calloc(n ? n : 1, sizeof(*b));
        protobuf_c_boolean *found = calloc(n ? n : 1, sizeof(*found));
        if (!a || !b || !found) {
            reply_err(j->app, j->peer, j->id, EKV_ENOMEM);
        } else {
            if (q->list) {
                for (size_t i = 0; i < n; i++) {
                    a[i].data = (uint8_t *)j->list.items[i].key;
                    a[i].len = j->list.items[i].key_len;
                    b[i].data = (uint8_t *)j->list.items[i].value;
                    b[i].len = j->list.items[i].value_len;
                }
                r.n_list_keys = r.n_list_values = n;
                r.list_keys = a;
                r.list_values = b;
                r.more = j->list.more;
            } else {
                for (size_t i = 0; i < n; i++) {
                    found[i] = j->vals[i] != NULL;
                    a[i].data = (uint8_t *)j->vals[i];
                    a[i].len = j->vals[i] ? j->vlens[i] : 0;
                }
                r.n_values = r.n_found = n;
                r.values = a;
                r.found = found;
            }
            reply_msg(j->app, j->peer, j->id, &r.base);
        }
        free(a);
        free(b);
        free(found);
    }
    for (size_t i = 0; j->vals && i < q->n_keys; i++)
        free(j->vals[i]);
    free(j->vals);
    free(j->vlens);
    ekv_do_list_clear(&j->list);
    edgekv__do_read__free_unpacked(q, NULL);
    free(j);
}

static int ids_ok(const ProtobufCBinaryData *ns, const ProtobufCBinaryData *obj)
{
    return ns->len == EKV_NSID_LEN && obj->len == EKV_DO_OBJID_LEN;
}

static void on_read(ekv_docl_t *c, uint64_t peer, uint64_t id, const uint8_t *b, size_t len)
{
    ekv_app_t *app = c->n->app;
    Edgekv__DoRead *q = edgekv__do_read__unpack(NULL, len, b);
    rjob_t *j = q ? calloc(1, sizeof(*j)) : NULL;
    if (!q || !j || !ids_ok(&q->namespace_id, &q->object_id) || q->n_keys > 1024 ||
        q->limit > 1000) {
        free(j);
        if (q)
            edgekv__do_read__free_unpacked(q, NULL);
        reply_err(app, peer, id, q ? EKV_EBAD_REQUEST : EKV_EBAD_REQUEST);
        return;
    }
    j->app = app;
    j->peer = peer;
    j->id = id;
    j->q = q;
    j->vals = calloc(q->n_keys ? q->n_keys : 1, sizeof(*j->vals));
    j->vlens = calloc(q->n_keys ? q->n_keys : 1, sizeof(*j->vlens));
    j->job.work = read_work;
    j->job.done = read_done;
    int rc = j->vals && j->vlens ? ekv_workq_submit(&app->readers, &j->job) : EKV_ENOMEM;
    if (rc) {
        free(j->vals);
        free(j->vlens);
        free(j);
        edgekv__do_read__free_unpacked(q, NULL);
        reply_err(app, peer, id, rc == EKV_ENOMEM ? EKV_EBUSY : rc);
    }
}

/* -- commit: an owner's fenced write */

typedef struct {
    ekv_write_t w;
    ekv_docl_t *c;
    ekv_app_t *app;
    uint64_t peer, id;
    Edgekv__DoCommit *q;
    ekv_do_item_t *items;
} cjob_t;

static void commit_done(ekv_job_t *job)
{
    cjob_t *j = (cjob_t *)(void *)job;
    int st = j->w.status;
    if (st == EKV_EDO_MOVED) {
        ekv_docl_t *c = ekv_node_of(j->app)->docl;
        if (c)
            c->st.fenced_remote++;
        ekv_log_info("an owner's durable object write was fenced (its partition moved)",
                     "partition=%u epoch=%llu", (unsigned)j->w.do_partition,
                     (unsigned long long)j->w.do_epoch);
    }
    if (st)
        reply_err(j->app, j->peer, j->id, st);
    else
        ekv_rpc_respond(j->app, j->peer, j->id, 200, 0, NULL, 0);
    free(j->items);
    edgekv__do_commit__free_unpacked(j->q, NULL);
    free(j);
}

static void on_commit(ekv_docl_t *c, uint64_t peer, uint64_t id, const uint8_t *b, size_t len)
{
    ekv_app_t *app = c->n->app;
    Edgekv__DoCommit *q = edgekv__do_commit__unpack(NULL, len, b);
    const Edgekv__ChangeRecord *r = q ? q->record : NULL;
    if (!r || !ids_ok(&r->namespace_id, &r->object_id) || q->partition >= P ||
        q->partition != ekv_do_partition_of(r->object_id.data) || r->n_do_mutations > 1024) {
        if (q)
            edgekv__do_commit__free_unpacked(q, NULL);
        reply_err(app, peer, id, EKV_EBAD_REQUEST);
        return;
    }
    if (!app->dos || !ekv_do_ns_live(app->dos, r->namespace_id.data)) {
        edgekv__do_commit__free_unpacked(q, NULL);
        reply_err(app, peer, id, EKV_EDO_NS_NOT_FOUND);
        return;
    }
    cjob_t *j = calloc(1, sizeof(*j));
    if (!j || ekv_store_do_write_of_record(r, &j->w, &j->items)) {
        free(j);
        edgekv__do_commit__free_unpacked(q, NULL);
        reply_err(app, peer, id, EKV_ENOMEM);
        return;
    }
    j->c = c;
    j->app = app;
    j->peer = peer;
    j->id = id;
    j->q = q;
    ekv_write_t *w = &j->w;
    if (q->fence_only)
        w->type = EKV_OP_DO_FENCE;
    w->do_fenced = 1;
    w->do_partition = q->partition;
    w->do_epoch = q->epoch;
    w->job.done = commit_done;
    int rc = ekv_store_write_submit(app->store, w);
    if (rc) {
        free(j->items);
        free(j);
        edgekv__do_commit__free_unpacked(q, NULL);
        reply_err(app, peer, id, rc);
    }
}

/* -- alarms: the stored alarms of partitions an owner gains, a page at a time */

typedef struct {
    ekv_job_t job;
    ekv_app_t *app;
    uint64_t peer, id;
    Edgekv__DoAlarmsReq *q;
    int rc, more;
    Edgekv__DoAlarm *alarms;
    Edgekv__DoAlarm **ptrs;
    char **names;
    size_t n;
} ajob_t;

static void alarm_seen(void *ctx, const uint8_t dons[EKV_NSID_LEN],
                       const uint8_t objid[EKV_DO_OBJID_LEN], int64_t ms, const char *name,
                       size_t name_len)
{
    ajob_t *j = ctx;
    Edgekv__DoAlarm *a = &j->alarms[j->n];
    edgekv__do_alarm__init(a);
    uint8_t *ids = malloc(EKV_NSID_LEN + EKV_DO_OBJID_LEN);
    char *nm = malloc(name_len + 1);
    if (!ids || !nm) {
        free(ids);
        free(nm);
        j->rc = EKV_ENOMEM;
        return;
    }
    memcpy(ids, dons, EKV_NSID_LEN);
    memcpy(ids + EKV_NSID_LEN, objid, EKV_DO_OBJID_LEN);
    memcpy(nm, name, name_len);
    nm[name_len] = '\0';
    a->namespace_id.data = ids;
    a->namespace_id.len = EKV_NSID_LEN;
    a->object_id.data = ids + EKV_NSID_LEN;
    a->object_id.len = EKV_DO_OBJID_LEN;
    a->ms = ms;
    a->name = nm;
    j->names[j->n] = (char *)ids;
    j->ptrs[j->n] = a;
    j->n++;
}

static void alarms_work(ekv_job_t *job)
{
    ajob_t *j = (ajob_t *)(void *)job;
    ekv_do_visitor_t v = {.ctx = j, .on_alarm = alarm_seen};
    j->rc = ekv_store_do_alarms_of(j->app->store, j->q->partitions.data,
                                   j->q->after.len ? j->q->after.data : NULL, ALARMS_PAGE, &v,
                                   &j->more);
}

static void alarms_done(ekv_job_t *job)
{
    ajob_t *j = (ajob_t *)(void *)job;
    if (j->rc) {
        reply_err(j->app, j->peer, j->id, j->rc);
    } else {
        Edgekv__DoAlarmsReply r = EDGEKV__DO_ALARMS_REPLY__INIT;
        r.n_alarms = j->n;
        r.alarms = j->ptrs;
        r.more = j->more;
        reply_msg(j->app, j->peer, j->id, &r.base);
    }
    for (size_t i = 0; i < j->n; i++) {
        free(j->names[i]);
        free(j->alarms[i].name);
    }
    free(j->alarms);
    free(j->ptrs);
    free(j->names);
    edgekv__do_alarms_req__free_unpacked(j->q, NULL);
    free(j);
}

static void on_alarms(ekv_docl_t *c, uint64_t peer, uint64_t id, const uint8_t *b, size_t len)
{
    ekv_app_t *app = c->n->app;
    Edgekv__DoAlarmsReq *q = edgekv__do_alarms_req__unpack(NULL, len, b);
    ajob_t *j = q ? calloc(1, sizeof(*j)) : NULL;
    if (!j || q->partitions.len != EKV_DO_PART_BYTES ||
        (q->after.len && q->after.len != EKV_NSID_LEN + EKV_DO_OBJID_LEN)) {
        free(j);
        if (q)
            edgekv__do_alarms_req__free_unpacked(q, NULL);
        reply_err(app, peer, id, EKV_EBAD_REQUEST);
        return;
    }
    j->app = app;
    j->peer = peer;
    j->id = id;
    j->q = q;
    j->alarms = calloc(ALARMS_PAGE, sizeof(*j->alarms));
    j->ptrs = calloc(ALARMS_PAGE, sizeof(*j->ptrs));
    j->names = calloc(ALARMS_PAGE, sizeof(*j->names));
    j->job.work = alarms_work;
    j->job.done = alarms_done;
    int rc =
        j->alarms && j->ptrs && j->names ? ekv_workq_submit(&app->readers, &j->job) : EKV_ENOMEM;
    if (rc) {
        free(j->alarms);
        free(j->ptrs);
        free(j->names);
        free(j);
        edgekv__do_alarms_req__free_unpacked(q, NULL);
        reply_err(app, peer, id, rc == EKV_ENOMEM ? EKV_EBUSY : rc);
    }
}

void ekv_node_do_internal(ekv_app_t *app, uint64_t peer_id, Edgekv__Frame *f)
{
    const Edgekv__Request *q = f->request;
    ekv_node_t *n = ekv_node_of(app);
    ekv_docl_t *c = n->docl;
    const char *path = (const char *)q->path.data;
    size_t plen = q->path.len;
#define IS(name) (plen == sizeof(name) - 1 && memcmp(path, name, plen) == 0)
    if (!c || !c->placing || c->stopping || n->fenced) {
        /* only the primary answers these: 421 tells an owner to look for it elsewhere */
        ekv_rpc_respond(app, peer_id, q->id, 421, (uint32_t)ekv_err_cf_code(EKV_EREAD_ONLY), NULL,
                        0);
    } else if (IS("heartbeat")) {
        on_heartbeat(c, peer_id, q->id, q->body.data, q->body.len);
    } else if (IS("read")) {
        on_read(c, peer_id, q->id, q->body.data, q->body.len);
    } else if (IS("commit")) {
        on_commit(c, peer_id, q->id, q->body.data, q->body.len);
    } else if (IS("alarms")) {
        on_alarms(c, peer_id, q->id, q->body.data, q->body.len);
    } else {
        ekv_rpc_respond(app, peer_id, q->id, 404, 0, NULL, 0);
    }
#undef IS
    ekv_repl_frame_free(f);
}
