/*
 * do_int.h - what the Durable Object runtime's files share (see do.h for the map and the
 * consistency contract). Loop thread only.
 */
#ifndef EKV_SERVER_API_DO_DO_INT_H
#define EKV_SERVER_API_DO_DO_INT_H

#include "common/htab.h"
#include "server/api/do/alarm_sched.h"
#include "server/api/do/do.h"
#include "server/api/do/list_opts.h"
#include "server/api/do/storage_req.h"
#include "server/api/do/txn.h"
#include "server/http/client.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

#define DO_MAX_NS_PER_ACCOUNT 1000
#define DO_OBJ_KEY_LEN        (EKV_NSID_LEN + EKV_DO_OBJID_LEN)
#define DO_LIST_MAX_BYTES     ((size_t)8 << 20)  /* values in one storage list page */
#define DO_GET_MAX_BYTES      ((size_t)32 << 20) /* values in one storage get reply */
#define DO_MAX_NAME_LEN       2048               /* object names (idFromName) */

typedef struct do_obj_s do_obj_t;
typedef struct do_op_s do_op_t;
typedef struct do_wr_s do_wr_t;

/* A namespace in memory. pending: being created (not visible, but its name is taken);
 * deleting: its delete is committing (invisible, every call gets 404). */
typedef struct {
    ekv_do_ns_t ns;
    uint8_t dons[EKV_NSID_LEN];
    int pending, deleting;
} do_nsent_t;

/* A write not yet durable, in the overlay: value NULL = deleted. gate = the object's write
 * number that set it. */
typedef struct {
    char *value;
    size_t value_len;
    uint64_t gate;
} do_ov_t;

/* A reply computed and waiting for the output gate (writes up to `gate` durable). */
typedef struct do_held_s {
    struct do_held_s *next;
    ekv_req_t *req;
    json_t *result, *info; /* a reply built as JSON values... */
    int raw;               /* ...or as text: an envelope begun with its result (stored values
                            * are spliced verbatim) and a result_info text (malloc'd or NULL) */
    ekv_buf_t text;
    char *info_text;
    uint64_t gate;
} do_held_t;

typedef enum {
    DO_OP_GET = 1,
    DO_OP_PUT,
    DO_OP_DELETE,
    DO_OP_LIST,
    DO_OP_DELETE_ALL,
    DO_OP_TXN,
    DO_OP_ALARM_GET,
    DO_OP_ALARM_SET,
    DO_OP_ALARM_DELETE,
    DO_OP_ALARM_DONE, /* internal: a delivered alarm is removed unless replaced */
} do_op_kind_t;

/* One storage op of one object (queued, then executed). */
struct do_op_s {
    do_op_t *next;
    do_op_kind_t kind;
    ekv_req_t *req; /* NULL for internal ops */
    ekv_do_ops_t ops;
    ekv_do_txn_t txn;
    ekv_do_list_range_t range;
    int64_t alarm_ms;
    uint64_t version; /* DO_OP_ALARM_DONE: the alarm_version the run delivered */
    char *name;       /* DO_OP_ALARM_SET: the verified object name, or NULL */
    size_t name_len;
    /* the op's view of its keys, taken when it runs: the overlay's answer (copied: the write
     * behind it may settle and be freed meanwhile) or the store's (read on the pool) */
    size_t nkeys;
    const char **rkeys; /* borrowed from ops / txn */
    size_t *rklens;
    char **vals; /* malloc'd copies */
    size_t *vlens;
    int *found;      /* 1 found, 0 absent */
    int *from_store; /* 1: read it from the store */
    size_t nread;    /* how many from_store */
};

/* One object in memory: exists while it has queued, running or gated work, overlay entries,
 * calls, or an alarm. */
struct do_obj_s {
    uint8_t key[DO_OBJ_KEY_LEN]; /* dons || objid */
    ekv_do_t *rt;
    /* Kept alive while > 0: a reply may run the client's next pipelined request inline (the
     * HTTP layer parses on after a reply), which may queue on this very object and finish
     * it; every entry point pins the object for as long as it touches it. */
    int pins;
    int in_exec; /* exec_loop is running (it is not re-entered: the outer one continues) */
    /* storage domain */
    do_op_t *qhead, *qtail;
    int running; /* the head op waits for a read, or for the writes before a list */
    int barrier; /* running op waits until every write is durable */
    ekv_bytemap_t overlay;
    uint64_t wsub, wdone;       /* writes handed to the committer / made durable, counted */
    do_wr_t *wr_head, *wr_tail; /* writes in flight, in submission order (object.c) */
    uint64_t clear_gate; /* a deleteAll not yet durable: keys outside the overlay are absent */
    uint64_t fail_from;  /* a write failed: replies gated at or after it get fail_err and
                          * no op runs until every write handed over completed (0 = none) */
    int fail_err;        /* EKV_EDO_RESET, or EKV_EDO_MOVED when the write was fenced */
    int moved;           /* its partition left this node: new ops get EKV_EDO_MOVED */
    uint64_t wepoch;     /* the partition epoch every write in flight carries (taken when
                          * the first of them is handed over: object.c hand_over) */
    do_held_t *hhead, *htail;
    /* alarm: alarm_* is what ops see (every set/delete as it runs, gated like storage);
     * dur_* is what is durable, and the only thing the schedule follows */
    int64_t alarm_ms; /* -1: none */
    char *alarm_name;
    int64_t dur_ms; /* -1: none */
    char *dur_name;
    uint64_t dur_version;
    uint64_t alarm_version; /* +1 on every set/delete: a run only removes the alarm it ran */
    int64_t due_ms;         /* heap key: alarm_ms, or the next retry */
    size_t heap_idx;        /* position in the alarm heap, SIZE_MAX when not in it */
    int alarm_running;      /* a run (delivery or retry wait) is in progress */
    int alarm_delivering;   /* its HTTP call is in flight */
    uint64_t run_version;   /* alarm_version when the run started */
    ekv_do_alarm_retry_t retry;
    int64_t run_ms; /* scheduledTime of the alarm being delivered/retried */
    /* call domain */
    void *chead, *ctail; /* waiting calls (calls.c) */
    size_t clen;
    int call_running;
};

struct ekv_do_s {
    ekv_app_t *app;
    ekv_do_opts_t o;
    ekv_bytemap_t nss;  /* dons(16) -> do_nsent_t* */
    ekv_bytemap_t objs; /* dons || objid -> do_obj_t* */
    do_obj_t **heap;    /* alarms, earliest first */
    size_t nheap, heapcap;
    uv_timer_t alarm_timer;
    uv_timer_t call_timer;           /* expires calls that waited too long */
    struct do_call_s *ghead, *gtail; /* waiting fetches, oldest first (calls.c) */
    int timers_open;
    ekv_http_client_t *http;
    int stopping;
    int stop_waits;
    void (*stop_done)(void *);
    void *stop_arg;
    struct {
        uint64_t ops, writes, resets, calls, call_errors, gate_timeouts, alarms_delivered,
            alarm_retries, alarms_given_up, fenced;
    } st;
};

/* ---- registry.c ---- */
/* The visible namespace of this account with this id (hex, any case), or NULL. */
do_nsent_t *ekv__do_ns_find(ekv_do_t *d, const char *account_id, const char *id, size_t id_len);
do_nsent_t *ekv__do_ns_by_dons(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN]);
/* Load the registry and alarms from the store. */
int ekv__do_load(ekv_do_t *d);
void ekv__do_registry_free(ekv_do_t *d);
/* The namespace of a DO route (params[1]), answering 404 10066 itself when absent. */
do_nsent_t *ekv__do_ns_or_reply(ekv_call_t *c);

/* ---- object.c ---- */
/* The partition of an object key (dons || objid). */
static inline uint32_t ekv__do_partition(const uint8_t *objkey)
{
    return ekv_do_partition_of(objkey + EKV_NSID_LEN);
}
/* 1 when the object's partition is served here (ekv_do_cluster_t.here). */
int ekv__do_here(ekv_do_t *d, const uint8_t *objkey);
/* The object (created when absent). NULL on ENOMEM. */
do_obj_t *ekv__do_obj_get(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN],
                          const uint8_t objid[EKV_DO_OBJID_LEN]);
/* The object (dons, objid) if it is in memory. */
static inline do_obj_t *ekv__do_obj_find_id(ekv_do_t *d, const uint8_t *dons, const uint8_t *objid);
/* The object if it is in memory. */
do_obj_t *ekv__do_obj_find(ekv_do_t *d, const uint8_t key[DO_OBJ_KEY_LEN]);
static inline do_obj_t *ekv__do_obj_find_id(ekv_do_t *d, const uint8_t *dons, const uint8_t *objid)
{
    uint8_t key[DO_OBJ_KEY_LEN];
    memcpy(key, dons, EKV_NSID_LEN);
    memcpy(key + EKV_NSID_LEN, objid, EKV_DO_OBJID_LEN);
    return ekv__do_obj_find(d, key);
}
/* Free the object if nothing keeps it (pins, queue, gate, overlay, calls, alarm). */
void ekv__do_obj_maybe_free(do_obj_t *o);
/* Pin for the duration of an entry point; unpin frees the object when nothing keeps it. */
static inline void ekv__do_obj_pin(do_obj_t *o)
{
    o->pins++;
}
static inline void ekv__do_obj_unpin(do_obj_t *o)
{
    if (--o->pins == 0)
        ekv__do_obj_maybe_free(o);
}
/* Queue a storage op (takes it); runs it now if the object is idle. */
void ekv__do_obj_submit(do_obj_t *o, do_op_t *op);
void ekv__do_op_free(do_op_t *op);
/* Drop every object of a namespace that was deleted: queued ops get 404, alarms go. */
void ekv__do_ns_dropped(ekv_do_t *d, const uint8_t dons[EKV_NSID_LEN]);
/* The object's id from a route's params[2], verified against the namespace; answers 400
 * itself. 0 or -1. */
int ekv__do_objid_or_reply(ekv_call_t *c, const do_nsent_t *ns, uint8_t objid[EKV_DO_OBJID_LEN]);
/* The request's Edgekv-Object-Name header when present and derived to objid: 1 and *name
 * (malloc'd), 0 when absent; -1 after answering 400 (it names another object). */
int ekv__do_name_or_reply(ekv_call_t *c, const do_nsent_t *ns,
                          const uint8_t objid[EKV_DO_OBJID_LEN], char **name, size_t *name_len);

/* ---- alarms.c ---- */
void ekv__do_alarm_schedule(do_obj_t *o); /* (re)place o in the heap per o->alarm_ms */
void ekv__do_alarm_unschedule(do_obj_t *o);
int ekv__do_alarms_start(ekv_do_t *d);
void ekv__do_alarm_tick(uv_timer_t *t);
/* calls.c: a delivery ended: ok (2xx), else counted (non-2xx) or not (unreachable). */
void ekv__do_alarm_delivered(do_obj_t *o, int ok, int counted);
/* The alarm state changed durably by a storage op (set/delete/deleteAll). */
void ekv__do_alarm_changed(do_obj_t *o);

/* ---- calls.c ---- */
/* Queue an alarm delivery on the object's call domain. */
void ekv__do_call_alarm(do_obj_t *o);
void ekv__do_calls_drop(do_obj_t *o, int err);
void ekv__do_call_timer(uv_timer_t *t);

#endif
