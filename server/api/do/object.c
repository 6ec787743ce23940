/*
 * object.c - one Durable Object on its owner: the storage queue, the overlay of writes that
 * are not yet durable, and the output gate (do.h states the contract).
 *
 * Execution: ops of one object run one at a time in arrival order. An op that needs stored
 * values the overlay does not answer reads them on the reader pool (the object is `running`
 * meanwhile: later ops wait). A write is handed to the committer at once and its effect put
 * in the overlay; the object's write counter `wsub` numbers it. Completions arrive in
 * submission order (the committer is FIFO); `wdone` counts them, and each completion drops
 * the overlay entries that write made (the store now has them). A reply computed by an op is
 * held until wdone reaches the wsub it saw (output gate). A list reads the store only, so it
 * first waits until every write of the object is durable.
 *
 * Failure: a write that does not commit resets the object: replies gated on it or on any
 * later write get 500 (EKV_EDO_RESET), no new op runs until every write handed over has
 * completed, then the overlay is dropped and the object continues from the store. A write
 * refused by the primary's fencing (the object's partition moved to another owner) fails the
 * same replies with 503 EKV_EDO_MOVED: neither it nor anything after it was applied.
 *
 * Owners across the cluster (ekv_do_cluster_t): writes carry the partition's epoch, reads and
 * commits may go to another node's store, all the writes in flight at once carry the epoch
 * the first of them took (so once one is fenced, every later one is too, even if the
 * partition came back meanwhile), and an op run while this node's lease has lapsed
 * first submits an epoch check (DO_FENCE), so its answer is released only if this node
 * still owned the object when the primary checked.
 */
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/do/do_int.h"
#include "server/api/do/ids.h"
#include "server/http/json_out.h"
#include "server/http/reply.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- objects */

do_obj_t *ekv__do_obj_find(ekv_do_t *d, const uint8_t key[DO_OBJ_KEY_LEN])
{
    return ekv_bytemap_get(&d->objs, key, DO_OBJ_KEY_LEN);
}

do_obj_t *ekv__do_obj_get(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN],
                          const uint8_t objid[EKV_DO_OBJID_LEN])
{
    uint8_t key[DO_OBJ_KEY_LEN];
    memcpy(key, dons, EKV_NSID_LEN);
    memcpy(key + EKV_NSID_LEN, objid, EKV_DO_OBJID_LEN);
    do_obj_t *o = ekv__do_obj_find(d, key);
    if (o) {
        if (o->moved && ekv__do_here(d, key))
            o->moved = 0; /* its partition came back (what ran meanwhile was fenced) */
        return o;
    }
    o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    memcpy(o->key, key, sizeof(key));
    o->rt = d;
    o->alarm_ms = -1;
    o->dur_ms = -1;
    o->heap_idx = SIZE_MAX;
    ekv_bytemap_init(&o->overlay);
    if (ekv_bytemap_put(&d->objs, o->key, DO_OBJ_KEY_LEN, o)) {
        ekv_bytemap_deinit(&o->overlay, NULL);
        free(o);
        return NULL;
    }
    return o;
}

static void free_ov(void *p)
{
    free(p);
}

void ekv__do_obj_maybe_free(do_obj_t *o)
{
    if (o->pins || o->in_exec || o->qhead || o->running || o->hhead || o->wsub != o->wdone ||
        ekv_bytemap_count(&o->overlay) || o->chead || o->call_running || o->alarm_ms >= 0 ||
        o->dur_ms >= 0 || o->alarm_running || o->heap_idx != SIZE_MAX)
        return;
    ekv_bytemap_del(&o->rt->objs, o->key, DO_OBJ_KEY_LEN);
    ekv_bytemap_deinit(&o->overlay, free_ov);
    free(o->alarm_name);
    free(o->dur_name);
    free(o);
}

void ekv__do_op_free(do_op_t *op)
{
    if (!op)
        return;
    ekv_do_ops_free(&op->ops);
    ekv_do_txn_free(&op->txn);
    ekv_do_list_range_free(&op->range);
    for (size_t i = 0; op->vals && i < op->nkeys; i++)
        free(op->vals[i]);
    free(op->vals);
    free(op->vlens);
    free(op->found);
    free(op->from_store);
    free(op->rkeys);
    free(op->rklens);
    free(op->name);
    free(op);
}

/* ---------------------------------------------------------------- the storage queue */

/* Take the head op (the queue is not empty). */
static do_op_t *q_pop(do_obj_t *o)
{
    do_op_t *op = o->qhead;
    o->qhead = op->next;
    if (!o->qhead)
        o->qtail = NULL;
    op->next = NULL;
    return op;
}

/* Put op back at the head: it stays there while it reads (later ops wait behind it). */
static void q_push_head(do_obj_t *o, do_op_t *op)
{
    op->next = o->qhead;
    o->qhead = op;
    if (!o->qtail)
        o->qtail = op;
}

/* ---------------------------------------------------------------- ids and names */

int ekv__do_objid_or_reply(ekv_call_t *c, const do_nsent_t *ns, uint8_t objid[EKV_DO_OBJID_LEN])
{
    const ekv_slice_t *p = &c->params.v[2];
    int rc = ekv_do_id_parse(ns->ns.key, p->p, p->n, objid);
    if (rc == EKV_EDO_WRONG_NS)
        ekv_reply_error(c->req, rc, "Durable Object ID is not valid for this namespace.");
    else if (rc)
        ekv_reply_error(c->req, EKV_EDO_BAD_ID, "Invalid Durable Object ID: must be 64 hex digits");
    return rc ? -1 : 0;
}

/* The value of header `lname` (lowercase) in req->other_headers, or NULL; *len its length. */
static const char *other_header(const ekv_req_t *req, const char *lname, size_t *len)
{
    const char *p = req->other_headers;
    size_t nl = strlen(lname);
    while (p && *p) {
        const char *eol = strstr(p, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, lname, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *len = (size_t)(e - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

int ekv__do_name_or_reply(ekv_call_t *c, const do_nsent_t *ns,
                          const uint8_t objid[EKV_DO_OBJID_LEN], char **name, size_t *name_len)
{
    *name = NULL;
    *name_len = 0;
    size_t len;
    const char *v = other_header(c->req, "edgekv-object-name", &len);
    if (!v)
        return 0;
    uint8_t want[EKV_DO_OBJID_LEN];
    ekv_do_id_from_name(ns->ns.key, v, len, want);
    if (len > DO_MAX_NAME_LEN || memcmp(want, objid, EKV_DO_OBJID_LEN) != 0) {
        ekv_reply_error(c->req, EKV_EDO_WRONG_NS,
                        "the Edgekv-Object-Name header names another object than this id");
        return -1;
    }
    *name = ekv_memdup_z(v, len);
    if (!*name) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return -1;
    }
    *name_len = len;
    return 1;
}

/* ---------------------------------------------------------------- output gate */

static void send_held(do_obj_t *o, do_held_t *h, int reset)
{
    if (reset) {
        json_decref(h->result);
        json_decref(h->info);
        ekv_buf_deinit(&h->text);
        ekv_reply_error(h->req, o->fail_err ? o->fail_err : EKV_EDO_RESET, NULL);
        o->rt->st.resets++;
    } else if (h->raw) {
        ekv_reply_send(h->req, &h->text, h->info_text, h->info_text ? strlen(h->info_text) : 0);
    } else {
        ekv_reply_ok(h->req, h->result, h->info);
    }
    free(h->info_text);
    free(h);
}

static void release_held(do_obj_t *o)
{
    while (o->hhead && o->hhead->gate <= o->wdone) {
        do_held_t *h = o->hhead;
        o->hhead = h->next;
        if (!o->hhead)
            o->htail = NULL;
        send_held(o, h, o->fail_from && h->gate >= o->fail_from);
    }
}

/* Reply with result/info once every write up to the object's current wsub is durable.
 * Steals result and info. */
static void hold_reply(do_obj_t *o, ekv_req_t *req, json_t *result, json_t *info)
{
    if (!req) {
        json_decref(result);
        json_decref(info);
        return;
    }
    if (o->wdone >= o->wsub && !o->hhead) {
        ekv_reply_ok(req, result, info);
        return;
    }
    do_held_t *h = calloc(1, sizeof(*h));
    if (!h) {
        json_decref(result);
        json_decref(info);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    h->req = req;
    h->result = result;
    h->info = info;
    h->gate = o->wsub;
    if (o->htail)
        o->htail->next = h;
    else
        o->hhead = h;
    o->htail = h;
}

/* The same for a reply built as text: *b holds an envelope begun with ekv_reply_begin and its
 * result (taken), info a result_info text (taken, may be NULL). */
static void hold_text(do_obj_t *o, ekv_req_t *req, ekv_buf_t *b, char *info)
{
    if (!req) {
        ekv_buf_deinit(b);
        free(info);
        return;
    }
    if (o->wdone >= o->wsub && !o->hhead) {
        ekv_reply_send(req, b, info, info ? strlen(info) : 0);
        free(info);
        return;
    }
    do_held_t *h = calloc(1, sizeof(*h));
    if (!h) {
        ekv_buf_deinit(b);
        free(info);
        ekv_reply_error(req, EKV_ENOMEM, NULL);
        return;
    }
    h->req = req;
    h->raw = 1;
    h->text = *b;
    h->info_text = info;
    h->gate = o->wsub;
    if (o->htail)
        o->htail->next = h;
    else
        o->hhead = h;
    o->htail = h;
}

/* ---------------------------------------------------------------- overlay */

/* 1 found (*v, *vl), 0 absent, -1 unknown (read the store). */
static int resolve(do_obj_t *o, const char *key, size_t klen, const char **v, size_t *vl)
{
    do_ov_t *ov = ekv_bytemap_get(&o->overlay, key, klen);
    if (ov) {
        *v = ov->value;
        *vl = ov->value_len;
        return ov->value ? 1 : 0;
    }
    if (o->clear_gate > o->wdone)
        return 0; /* a deleteAll is pending: nothing older is left */
    return -1;
}

/* ---------------------------------------------------------------- writes */

struct do_wr_s {
    ekv_write_t w;
    do_obj_t *o;
    do_op_t *op; /* owns the keys and values the items borrow */
    ekv_do_item_t *items;
    uint64_t gate;
    int alarm;              /* the write changes the alarm: then, once durable, */
    int64_t alarm_ms;       /* ...the alarm is this (-1: none), */
    char *alarm_name;       /* ...with this name (malloc'd), */
    uint64_t alarm_version; /* ...and this is its version */
    int completed;
    do_wr_t *next; /* the object's writes in flight, in submission order */
};

static void exec_loop(do_obj_t *o);
static void start_list_read(do_obj_t *o, do_op_t *op);

/* Account for the oldest write handed over, now completed (wr is o->wr_head). */
static void write_settled(do_obj_t *o, do_wr_t *wr)
{
    o->wr_head = wr->next;
    if (!o->wr_head)
        o->wr_tail = NULL;
    o->wdone++;
    if (wr->w.status) {
        int moved = wr->w.status == EKV_EDO_MOVED;
        if (moved)
            o->rt->st.fenced++;
        if (moved)
            ekv_log_info("durable object write fenced: its partition moved", "gate=%llu",
                         (unsigned long long)wr->gate);
        else
            ekv_log_error("durable object write failed: object reset", "err=%s gate=%llu",
                          ekv_err_name(wr->w.status), (unsigned long long)wr->gate);
        if (!o->fail_from || wr->gate < o->fail_from) {
            o->fail_from = wr->gate;
            o->fail_err = moved ? EKV_EDO_MOVED : EKV_EDO_RESET;
        }
    }
    /* durable now (the store answers), or failed (its values are about to be freed) */
    for (size_t i = 0; i < wr->w.do_nitems; i++) {
        const ekv_do_item_t *it = &wr->items[i];
        do_ov_t *ov = ekv_bytemap_get(&o->overlay, it->key, it->key_len);
        if (ov && ov->gate == wr->gate)
            free(ekv_bytemap_del(&o->overlay, it->key, it->key_len));
    }
    if (wr->alarm && !wr->w.status) {
        o->dur_ms = wr->alarm_ms;
        free(o->dur_name);
        o->dur_name = wr->alarm_name;
        wr->alarm_name = NULL;
        o->dur_version = wr->alarm_version;
        ekv__do_alarm_changed(o);
    }
    release_held(o);
    if (o->fail_from && o->wdone == o->wsub) {
        /* every write handed over has completed: continue from the store */
        ekv_bytemap_deinit(&o->overlay, free_ov);
        ekv_bytemap_init(&o->overlay);
        o->clear_gate = 0;
        o->fail_from = 0;
        o->fail_err = 0;
        /* ...and from the durable alarm (a version of its own: no run removes it by mistake) */
        o->alarm_ms = o->dur_ms;
        free(o->alarm_name);
        o->alarm_name = o->dur_name ? strdup(o->dur_name) : NULL;
        o->dur_version = ++o->alarm_version;
        ekv__do_alarm_changed(o);
    }
    free(wr->alarm_name);
    ekv__do_op_free(wr->op);
    free(wr->items);
    free(wr);
}

/*
 * A write completed. The committer completes one object's writes in order, but a
 * --sync-replicas hold may release them in another, so completions are settled in
 * submission order: wdone always means "every write up to here is durable".
 */
static void write_done(ekv_job_t *job)
{
    do_wr_t *wr = (do_wr_t *)(void *)job;
    do_obj_t *o = wr->o;
    ekv__do_obj_pin(o);
    wr->completed = 1;
    while (o->wr_head && o->wr_head->completed)
        write_settled(o, o->wr_head);
    if (o->barrier && o->wdone == o->wsub) {
        o->barrier = 0;
        start_list_read(o, o->qhead); /* the list op stays at the head while running */
    }
    exec_loop(o);
    ekv__do_obj_unpin(o);
}

/* wr was handed over: it gets the next write number and joins the writes in flight. */
static void track(do_obj_t *o, do_wr_t *wr)
{
    wr->gate = ++o->wsub;
    if (o->wr_tail)
        o->wr_tail->next = wr;
    else
        o->wr_head = wr;
    o->wr_tail = wr;
}

/* Give w (DO_WRITE / DO_FENCE of o) to whoever commits it: fenced by the partition's epoch
 * in a cluster, to the local committer or over the link to the primary. 0 or an error. */
static int hand_over(do_obj_t *o, ekv_req_t *req, ekv_write_t *w)
{
    ekv_do_t *d = o->rt;
    ekv_app_t *app = d->app;
    const ekv_do_cluster_t *cl = &d->o.cluster;
    if (cl->epoch) {
        /* one epoch for all the writes in flight at once: a partition that left and came
         * back (a newer epoch) must not let a later write commit after an earlier one was
         * fenced (that later op may have read the fenced one's value from the overlay) */
        w->do_fenced = 1;
        w->do_partition = ekv__do_partition(o->key);
        if (o->wsub == o->wdone)
            o->wepoch = cl->epoch(cl->ctx, w->do_partition);
        w->do_epoch = o->wepoch;
    }
    if (cl->commit)
        return cl->commit(cl->ctx, w);
    if (app->role->hold_write && req)
        app->role->hold_write(app, req, w);
    return ekv_store_write_submit(app->store, w);
}

/* Hand op's write to the committer: items (stolen) + delete_all + alarm. On success the
 * overlay has its effect and wsub its number; op is owned by the write. On failure answers
 * 503/error, frees op and items, returns -1. */
static int submit_write(do_obj_t *o, do_op_t *op, ekv_do_item_t *items, size_t n, int delete_all,
                        ekv_do_alarm_op_t alarm_op)
{
    ekv_do_t *d = o->rt;
    do_nsent_t *ns = ekv__do_ns_by_dons(d, o->key);
    if (!ns || ns->deleting) {
        /* the namespace went while this op read: its delete must stay the last write */
        if (op->req)
            ekv_reply_error(op->req, EKV_EDO_NS_NOT_FOUND,
                            "the Durable Object namespace was deleted");
        free(items);
        ekv__do_op_free(op);
        return -1;
    }
    do_wr_t *wr = calloc(1, sizeof(*wr));
    if (!wr) {
        if (op->req)
            ekv_reply_error(op->req, EKV_ENOMEM, NULL);
        free(items);
        ekv__do_op_free(op);
        return -1;
    }
    wr->o = o;
    wr->op = op;
    wr->items = items;
    wr->alarm = alarm_op != EKV_DO_ALARM_KEEP || delete_all;
    wr->w.type = EKV_OP_DO_WRITE;
    wr->w.job.done = write_done;
    memcpy(wr->w.nsid, o->key, EKV_NSID_LEN);
    memcpy(wr->w.objid, o->key + EKV_NSID_LEN, EKV_DO_OBJID_LEN);
    wr->w.do_delete_all = delete_all;
    wr->w.do_items = items;
    wr->w.do_nitems = n;
    wr->w.do_alarm_op = alarm_op;
    wr->w.do_alarm_ms = alarm_op == EKV_DO_ALARM_SET ? op->alarm_ms : 0;
    wr->w.do_object_name = alarm_op == EKV_DO_ALARM_SET ? op->name : NULL;
    int rc = hand_over(o, op->req, &wr->w);
    if (rc) {
        ekv_log_warn("durable object write not handed over (commit queue full, or no link "
                     "to the primary)",
                     "err=%s", ekv_err_name(rc));
        if (op->req)
            ekv_reply_busy(op->req, rc);
        free(items);
        free(wr);
        ekv__do_op_free(op);
        return -1;
    }
    d->st.writes++;
    track(o, wr);
    if (delete_all) {
        ekv_bytemap_deinit(&o->overlay, free_ov);
        ekv_bytemap_init(&o->overlay);
        o->clear_gate = wr->gate;
    }
    for (size_t i = 0; i < n; i++) {
        do_ov_t *ov = ekv_bytemap_get(&o->overlay, items[i].key, items[i].key_len);
        if (!ov) {
            ov = calloc(1, sizeof(*ov));
            if (!ov || ekv_bytemap_put(&o->overlay, items[i].key, items[i].key_len, ov)) {
                /* cannot track it: make every later read wait for durability instead */
                free(ov);
                ekv_log_error("DO overlay insert failed (out of memory)", "%s", "");
                continue;
            }
        }
        ov->value = items[i].del ? NULL : (char *)items[i].value;
        ov->value_len = items[i].del ? 0 : items[i].value_len;
        ov->gate = wr->gate;
    }
    return 0;
}

/* A write with no effect but the epoch check: the replies of the ops that run after it are
 * released only if the primary still saw this node as the owner (a lapsed lease). 0 or -1
 * (nothing was submitted). */
static int submit_fence(do_obj_t *o)
{
    do_wr_t *wr = calloc(1, sizeof(*wr));
    if (!wr)
        return -1;
    wr->o = o;
    wr->w.type = EKV_OP_DO_FENCE;
    wr->w.job.done = write_done;
    memcpy(wr->w.nsid, o->key, EKV_NSID_LEN);
    memcpy(wr->w.objid, o->key + EKV_NSID_LEN, EKV_DO_OBJID_LEN);
    if (hand_over(o, NULL, &wr->w)) {
        free(wr);
        return -1;
    }
    track(o, wr);
    return 0;
}

static void note_alarm(do_obj_t *o);

/* The alarm changed by the write just submitted: ms (-1: none) and name (taken, may be NULL)
 * are what ops see from now on, and what the write leaves once durable. */
static void set_alarm(do_obj_t *o, int64_t ms, char *name)
{
    o->alarm_version++;
    o->alarm_ms = ms;
    free(o->alarm_name);
    o->alarm_name = name;
    note_alarm(o);
}

/* The alarm the write just submitted leaves once durable (the object's current alarm). */
static void note_alarm(do_obj_t *o)
{
    do_wr_t *wr = o->wr_tail;
    wr->alarm_ms = o->alarm_ms;
    wr->alarm_name = o->alarm_name ? strdup(o->alarm_name) : NULL;
    wr->alarm_version = o->alarm_version;
}

/* Items for ops[] (put/delete as parsed). NULL on ENOMEM (answered). */
static ekv_do_item_t *items_of(do_op_t *op, const ekv_do_ops_t *ops)
{
    ekv_do_item_t *items = calloc(ops->n ? ops->n : 1, sizeof(*items));
    if (!items) {
        if (op->req)
            ekv_reply_error(op->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    for (size_t i = 0; i < ops->n; i++) {
        items[i].key = ops->ops[i].key;
        items[i].key_len = ops->ops[i].key_len;
        items[i].value = ops->ops[i].value;
        items[i].value_len = ops->ops[i].value_len;
        items[i].del = ops->ops[i].del;
    }
    return items;
}

/* ---------------------------------------------------------------- reads */

typedef struct {
    ekv_job_t job;
    do_obj_t *o;
    do_op_t *op;
    ekv_store_t *store;
    int rc;
    int list;
    ekv_do_list_t result;
    ekv_do_rread_t rr; /* the same read on the primary's store (ekv_do_cluster_t.read) */
} do_read_t;

static void read_work(ekv_job_t *job)
{
    do_read_t *r = (do_read_t *)(void *)job;
    do_op_t *op = r->op;
    const uint8_t *dons = r->o->key, *objid = r->o->key + EKV_NSID_LEN;
    if (r->list) {
        const ekv_do_list_range_t *g = &op->range;
        r->rc = ekv_store_do_list(r->store, dons, objid, g->lo, g->lo_len, g->hi, g->hi_len,
                                  g->has_hi, g->reverse, g->limit, DO_LIST_MAX_BYTES, &r->result);
        return;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < op->nkeys && !r->rc; i++) {
        if (!op->from_store[i])
            continue;
        int rc = ekv_store_do_get(r->store, dons, objid, op->rkeys[i], op->rklens[i], &op->vals[i],
                                  &op->vlens[i]);
        if (rc == 0) {
            op->found[i] = 1;
            bytes += op->vlens[i];
            if (bytes > DO_GET_MAX_BYTES)
                r->rc = EKV_EDO_VALUE_TOO_LARGE; /* stop reading: the reply would be refused */
        } else if (rc != EKV_EKEY_NOT_FOUND) {
            r->rc = rc;
        }
    }
}

static void continue_op(do_obj_t *o, do_op_t *op);
static void finish_list(do_obj_t *o, do_op_t *op, do_read_t *r);

static void read_done(ekv_job_t *job)
{
    do_read_t *r = (do_read_t *)(void *)job;
    do_obj_t *o = r->o;
    do_op_t *op = r->op;
    ekv__do_obj_pin(o);
    o->running = 0;
    q_pop(o); /* the op leaves the queue head now: it is op */
    if (r->rc == EKV_EDO_VALUE_TOO_LARGE) {
        if (op->req)
            ekv_reply_error(op->req, r->rc,
                            "storage get: the values asked for exceed %zu MiB in all; ask for "
                            "fewer keys at once",
                            DO_GET_MAX_BYTES >> 20);
        ekv__do_op_free(op);
    } else if (r->rc) {
        ekv_log_error("durable object read failed", "err=%s", ekv_err_name(r->rc));
        if (op->req)
            ekv_reply_error(op->req, r->rc, NULL);
        ekv__do_op_free(op);
    } else if (r->list) {
        finish_list(o, op, r);
    } else {
        continue_op(o, op);
    }
    ekv_do_list_clear(&r->result);
    free(r);
    exec_loop(o);
    ekv__do_obj_unpin(o);
}

static void remote_read_done(ekv_do_rread_t *rr)
{
    do_read_t *r = rr->udata;
    r->rc = rr->rc;
    if (!r->rc && !r->list) {
        size_t bytes = 0;
        for (size_t i = 0; i < r->op->nkeys; i++)
            bytes += r->op->found[i] ? r->op->vlens[i] : 0;
        if (bytes > DO_GET_MAX_BYTES)
            r->rc = EKV_EDO_VALUE_TOO_LARGE;
    }
    read_done(&r->job);
}

/* The read of r on the primary's store (cluster hook). 0 or an error. */
static int start_remote_read(do_obj_t *o, do_read_t *r)
{
    const ekv_do_cluster_t *cl = &o->rt->o.cluster;
    do_op_t *op = r->op;
    ekv_do_rread_t *rr = &r->rr;
    rr->dons = o->key;
    rr->objid = o->key + EKV_NSID_LEN;
    rr->list = r->list;
    if (r->list) {
        const ekv_do_list_range_t *g = &op->range;
        rr->lo = g->lo;
        rr->lo_len = g->lo_len;
        rr->hi = g->hi;
        rr->hi_len = g->hi_len;
        rr->has_hi = g->has_hi;
        rr->reverse = g->reverse;
        rr->limit = g->limit; /* the primary caps a page at the same 8 MiB */
        rr->list_out = &r->result;
    } else {
        rr->nkeys = op->nkeys;
        rr->keys = op->rkeys;
        rr->klens = op->rklens;
        rr->want = op->from_store;
        rr->vals = op->vals;
        rr->vlens = op->vlens;
        rr->found = op->found;
    }
    rr->done = remote_read_done;
    rr->udata = r;
    return cl->read(cl->ctx, rr);
}

/* Run a read job for op (which stays at the queue head, the object running). */
static void start_read(do_obj_t *o, do_op_t *op, int list)
{
    do_read_t *r = calloc(1, sizeof(*r));
    int rc = EKV_ENOMEM;
    if (r) {
        r->o = o;
        r->op = op;
        r->store = o->rt->app->store;
        r->list = list;
        r->job.work = read_work;
        r->job.done = read_done;
        o->running = 1;
        rc = o->rt->o.cluster.read ? start_remote_read(o, r)
                                   : ekv_workq_submit(&o->rt->app->readers, &r->job);
        if (rc == 0)
            return;
        o->running = 0;
    }
    free(r);
    q_pop(o); /* op */
    if (op->req)
        ekv_reply_busy(op->req, rc == EKV_ENOMEM ? EKV_EBUSY : rc);
    ekv__do_op_free(op);
}

static void start_list_read(do_obj_t *o, do_op_t *op)
{
    o->running = 0;
    if (op->range.empty) {
        /* nothing can be in the range */
        q_pop(o); /* op */
        json_t *info = json_pack("{s:i, s:s}", "count", 0, "cursor", "");
        hold_reply(o, op->req, json_array(), info);
        ekv__do_op_free(op);
        return;
    }
    start_read(o, op, 1);
}

/* The op's view of its keys (a transaction's check keys, else its ops' keys): what the
 * overlay answers now (copied) and which keys the store must answer (op->nread of them).
 * 0, or EKV_ENOMEM. */
static int plan_reads(do_obj_t *o, do_op_t *op)
{
    int txn = op->kind == DO_OP_TXN;
    size_t n = txn ? op->txn.nchecks : op->ops.n, m = n ? n : 1;
    op->rkeys = calloc(m, sizeof(*op->rkeys));
    op->rklens = calloc(m, sizeof(*op->rklens));
    op->vals = calloc(m, sizeof(*op->vals));
    op->vlens = calloc(m, sizeof(*op->vlens));
    op->found = calloc(m, sizeof(*op->found));
    op->from_store = calloc(m, sizeof(*op->from_store));
    if (!op->rkeys || !op->rklens || !op->vals || !op->vlens || !op->found || !op->from_store)
        return EKV_ENOMEM;
    op->nkeys = n;
    op->nread = 0;
    for (size_t i = 0; i < n; i++) {
        const char *v;
        size_t vl;
        op->rkeys[i] = txn ? op->txn.checks[i].key : op->ops.ops[i].key;
        op->rklens[i] = txn ? op->txn.checks[i].key_len : op->ops.ops[i].key_len;
        int r = resolve(o, op->rkeys[i], op->rklens[i], &v, &vl);
        if (r < 0) {
            op->from_store[i] = 1;
            op->nread++;
        } else if (r == 1) {
            if (!(op->vals[i] = ekv_memdup_z(v, vl)))
                return EKV_ENOMEM;
            op->vlens[i] = vl;
            op->found[i] = 1;
        }
    }
    return 0;
}

/* The value of key in the op's view (plan_reads + its read). 1 found, 0 absent. */
static int value_of(const do_op_t *op, const char *key, size_t klen, const char **v, size_t *vl)
{
    for (size_t i = 0; i < op->nkeys; i++)
        if (op->rklens[i] == klen && memcmp(op->rkeys[i], key, klen) == 0) {
            *v = op->vals[i];
            *vl = op->vlens[i];
            return op->found[i];
        }
    return 0;
}

/* ---------------------------------------------------------------- ops */

/* Stored values are JSON text (storage_req.h): replies splice them verbatim. */
static void finish_get(do_obj_t *o, do_op_t *op)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    size_t total = 0;
    for (size_t i = 0; i < op->nkeys; i++)
        total += op->found[i] ? op->vlens[i] : 0;
    if (total > DO_GET_MAX_BYTES) {
        if (op->req)
            ekv_reply_error(op->req, EKV_EDO_VALUE_TOO_LARGE,
                            "storage get: the values asked for exceed %zu MiB in all; ask for "
                            "fewer keys at once",
                            DO_GET_MAX_BYTES >> 20);
        ekv_buf_deinit(&b);
        ekv__do_op_free(op);
        return;
    }
    int rc = ekv_reply_begin(&b) || ekv_buf_append(&b, "{", 1);
    int first = 1; /* keys are in UTF-8 order (storage_req sorts them) */
    for (size_t i = 0; !rc && i < op->ops.n; i++) {
        const char *v;
        size_t vl;
        if (value_of(op, op->ops.ops[i].key, op->ops.ops[i].key_len, &v, &vl) != 1)
            continue;
        rc = (!first && ekv_buf_append(&b, ",", 1)) ||
             ekv_json_put_str(&b, op->ops.ops[i].key, op->ops.ops[i].key_len) ||
             ekv_buf_append(&b, ":", 1) || ekv_json_put_raw(&b, v, vl);
        first = 0;
    }
    if (rc || ekv_buf_append(&b, "}", 1)) {
        ekv_buf_deinit(&b);
        if (op->req)
            ekv_reply_error(op->req, EKV_ENOMEM, NULL);
    } else {
        hold_text(o, op->req, &b, NULL);
    }
    ekv__do_op_free(op);
}

static void finish_delete(do_obj_t *o, do_op_t *op)
{
    long deleted = 0;
    for (size_t i = 0; i < op->ops.n; i++) {
        const char *v;
        size_t vl;
        deleted += value_of(op, op->ops.ops[i].key, op->ops.ops[i].key_len, &v, &vl) == 1;
    }
    ekv_do_item_t *items = items_of(op, &op->ops);
    if (!items) {
        ekv__do_op_free(op);
        return;
    }
    ekv_req_t *req = op->req;
    size_t n = op->ops.n;
    if (submit_write(o, op, items, n, 0, EKV_DO_ALARM_KEEP) == 0)
        hold_reply(o, req, json_pack("{s:i}", "deleted", (int)deleted), NULL);
}

typedef struct {
    do_obj_t *o;
    do_op_t *op;
} txn_ctx_t;

static int txn_lookup(void *ctx, const char *key, size_t key_len, const char **value,
                      size_t *value_len)
{
    txn_ctx_t *t = ctx;
    return value_of(t->op, key, key_len, value, value_len);
}

static void finish_txn(do_obj_t *o, do_op_t *op)
{
    txn_ctx_t t = {o, op};
    int ok = ekv_do_txn_eval(&op->txn, txn_lookup, &t);
    if (ok < 0) {
        if (op->req)
            ekv_reply_error(op->req, EKV_EINTERNAL, "transaction: a stored value is not JSON");
        ekv__do_op_free(op);
        return;
    }
    const ekv_do_ops_t *branch = ok ? &op->txn.then_ops : &op->txn.else_ops;
    ekv_req_t *req = op->req;
    json_t *res = json_pack("{s:b}", "succeeded", ok);
    if (branch->n == 0) {
        hold_reply(o, req, res, NULL);
        ekv__do_op_free(op);
        return;
    }
    ekv_do_item_t *items = items_of(op, branch);
    if (!items) {
        json_decref(res);
        ekv__do_op_free(op);
        return;
    }
    if (submit_write(o, op, items, branch->n, 0, EKV_DO_ALARM_KEEP) == 0)
        hold_reply(o, req, res, NULL);
    else
        json_decref(res);
}

static void finish_list(do_obj_t *o, do_op_t *op, do_read_t *r)
{
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    int rc = ekv_reply_begin(&b) || ekv_buf_append(&b, "[", 1);
    for (size_t i = 0; !rc && i < r->result.count; i++) {
        const ekv_do_kv_t *kv = &r->result.items[i];
        rc = (i && ekv_buf_append(&b, ",", 1)) || ekv_buf_appends(&b, "{\"key\":") ||
             ekv_json_put_str(&b, kv->key, kv->key_len) || ekv_buf_appends(&b, ",\"value\":") ||
             ekv_json_put_raw(&b, kv->value, kv->value_len) || ekv_buf_append(&b, "}", 1);
    }
    if (rc || ekv_buf_append(&b, "]", 1)) {
        ekv_buf_deinit(&b);
        if (op->req)
            ekv_reply_error(op->req, EKV_ENOMEM, NULL);
        ekv__do_op_free(op);
        return;
    }
    char *cursor = NULL;
    if (r->result.more && r->result.count) {
        const ekv_do_kv_t *last = &r->result.items[r->result.count - 1];
        cursor = ekv_do_list_cursor_encode(last->key, last->key_len);
    }
    json_t *info = json_pack("{s:I, s:s, s:{s:s}}", "count", (json_int_t)r->result.count, "cursor",
                             cursor ? cursor : "", "cursors", "after", cursor ? cursor : "");
    free(cursor);
    char *info_text = info ? json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    hold_text(o, op->req, &b, info_text);
    ekv__do_op_free(op);
}

/* Continue an op after its reads (or at once when it needs none). Takes op. */
static void continue_op(do_obj_t *o, do_op_t *op)
{
    switch (op->kind) {
    case DO_OP_GET:
        finish_get(o, op);
        return;
    case DO_OP_DELETE:
        finish_delete(o, op);
        return;
    case DO_OP_TXN:
        finish_txn(o, op);
        return;
    default:
        break;
    }
    EKV_ASSERT(0);
}

static void alarm_json_reply(do_obj_t *o, ekv_req_t *req, int64_t ms)
{
    hold_reply(o, req,
               json_pack("{s:o}", "scheduledTime", ms >= 0 ? json_integer(ms) : json_null()), NULL);
}

/* Start op (already removed from the queue unless it must read). */
static void exec_op(do_obj_t *o, do_op_t *op)
{
    o->rt->st.ops++;
    ekv_req_t *req = op->req;
    switch (op->kind) {
    case DO_OP_GET:
    case DO_OP_DELETE:
    case DO_OP_TXN: {
        int rc = plan_reads(o, op);
        if (rc) {
            if (req)
                ekv_reply_error(req, rc, NULL);
            ekv__do_op_free(op);
            return;
        }
        if (op->nread) {
            q_push_head(o, op);
            start_read(o, op, 0);
            return;
        }
        continue_op(o, op);
        return;
    }
    case DO_OP_PUT: {
        ekv_do_item_t *items = items_of(op, &op->ops);
        if (!items) {
            ekv__do_op_free(op);
            return;
        }
        if (submit_write(o, op, items, op->ops.n, 0, EKV_DO_ALARM_KEEP) == 0)
            hold_reply(o, req, json_null(), NULL);
        return;
    }
    case DO_OP_DELETE_ALL:
        /* since compatibility date 2026-02-24 deleteAll() deletes the alarm too */
        if (submit_write(o, op, NULL, 0, 1, EKV_DO_ALARM_DELETE) == 0) {
            set_alarm(o, -1, NULL);
            hold_reply(o, req, json_null(), NULL);
        }
        return;
    case DO_OP_LIST:
        q_push_head(o, op);
        if (o->wdone < o->wsub) {
            o->running = 1;
            o->barrier = 1; /* write_done starts the read */
            return;
        }
        start_list_read(o, op);
        return;
    case DO_OP_ALARM_GET:
        alarm_json_reply(o, req, o->alarm_ms);
        ekv__do_op_free(op);
        return;
    case DO_OP_ALARM_SET: {
        int64_t ms = op->alarm_ms;
        char *name = op->name ? ekv_memdup_z(op->name, op->name_len) : NULL;
        if (submit_write(o, op, NULL, 0, 0, EKV_DO_ALARM_SET) == 0) {
            set_alarm(o, ms, name);
            alarm_json_reply(o, req, ms);
        } else {
            free(name);
        }
        return;
    }
    case DO_OP_ALARM_DELETE:
        if (submit_write(o, op, NULL, 0, 0, EKV_DO_ALARM_DELETE) == 0) {
            set_alarm(o, -1, NULL);
            hold_reply(o, req, json_null(), NULL);
        }
        return;
    case DO_OP_ALARM_DONE:
        /* a delivered (or given-up) alarm: removed unless a new one was set meanwhile */
        if (o->alarm_version != op->version || o->alarm_ms < 0) {
            ekv__do_op_free(op);
            return;
        }
        if (submit_write(o, op, NULL, 0, 0, EKV_DO_ALARM_DELETE) == 0)
            set_alarm(o, -1, NULL);
        return;
    }
}

static void exec_loop(do_obj_t *o)
{
    if (o->in_exec)
        return; /* re-entered through a reply: the running loop picks the new op up */
    ekv__do_obj_pin(o);
    o->in_exec = 1;
    const ekv_do_cluster_t *cl = &o->rt->o.cluster;
    while (!o->running && !o->fail_from && o->qhead) {
        do_op_t *op = q_pop(o);
        do_nsent_t *ns = ekv__do_ns_by_dons(o->rt, o->key);
        if (!ns || ns->deleting) {
            if (op->req)
                ekv_reply_error(op->req, EKV_EDO_NS_NOT_FOUND,
                                "the Durable Object namespace was deleted");
            ekv__do_op_free(op);
            continue;
        }
        if (o->moved) {
            if (op->req)
                ekv_reply_error(op->req, EKV_EDO_MOVED, NULL);
            ekv__do_op_free(op);
            continue;
        }
        if (cl->leased && !cl->leased(cl->ctx) && submit_fence(o)) {
            if (op->req)
                ekv_reply_busy_msg(op->req, EKV_EBUSY,
                                   "this node's lease on the object lapsed and the primary "
                                   "cannot be asked now; retry");
            ekv__do_op_free(op);
            continue;
        }
        exec_op(o, op);
    }
    o->in_exec = 0;
    ekv__do_obj_unpin(o);
}

void ekv__do_obj_submit(do_obj_t *o, do_op_t *op)
{
    ekv__do_obj_pin(o);
    op->next = NULL;
    if (o->qtail)
        o->qtail->next = op;
    else
        o->qhead = op;
    o->qtail = op;
    exec_loop(o);
    ekv__do_obj_unpin(o);
}

int ekv__do_here(ekv_do_t *d, const uint8_t *objkey)
{
    const ekv_do_cluster_t *cl = &d->o.cluster;
    return !cl->here || cl->here(cl->ctx, ekv__do_partition(objkey));
}

/* Drop the objects match() selects: no alarm, waiting calls and queued ops get err (404 for
 * a deleted namespace, 503 EKV_EDO_MOVED for a partition that left). */
static void drop_objects(ekv_do_t *d, int (*match)(const do_obj_t *o, const void *arg),
                         const void *arg, int err)
{
    /* collect first: freeing while iterating is allowed only for the entry just returned */
    size_t n = 0, cap = ekv_bytemap_count(&d->objs);
    do_obj_t **v = malloc((cap ? cap : 1) * sizeof(*v));
    if (!v)
        return;
    ekv_bytemap_iter_t it;
    void *val;
    ekv_bytemap_iter_init(&it, &d->objs);
    while (ekv_bytemap_iter_next(&it, NULL, NULL, &val)) {
        do_obj_t *o = val;
        if (match(o, arg))
            v[n++] = o;
    }
    for (size_t i = 0; i < n; i++) /* pinned: dropping them answers requests */
        ekv__do_obj_pin(v[i]);
    for (size_t i = 0; i < n; i++) {
        do_obj_t *o = v[i];
        ekv__do_alarm_unschedule(o);
        o->alarm_ms = -1;
        o->dur_ms = -1;
        if (err == EKV_EDO_MOVED)
            o->moved = 1;
        ekv__do_calls_drop(o, err);
        if (!o->running)
            exec_loop(o); /* queued ops get err */
    }
    for (size_t i = 0; i < n; i++)
        ekv__do_obj_unpin(v[i]); /* frees the idle ones */
    free(v);
}

static int in_ns(const do_obj_t *o, const void *dons)
{
    return memcmp(o->key, dons, EKV_NSID_LEN) == 0;
}

void ekv__do_ns_dropped(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN])
{
    drop_objects(d, in_ns, dons, EKV_EDO_NS_NOT_FOUND);
}

static int in_parts(const do_obj_t *o, const void *parts)
{
    uint32_t p = ekv__do_partition(o->key);
    return (((const uint8_t *)parts)[p >> 3] >> (p & 7)) & 1;
}

void ekv_do_partitions_lost(ekv_do_t *d, const uint8_t *parts)
{
    drop_objects(d, in_parts, parts, EKV_EDO_MOVED);
}

uint64_t ekv_do_fenced_count(const ekv_do_t *d)
{
    return d ? d->st.fenced : 0;
}
