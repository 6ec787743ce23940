/*
 * status.c - what an operator sees of Durable Object ownership (docl.h): the
 * "durable_objects" object of /_edgekv/replication/status, the owner of one object
 * (GET /_edgekv/replication/do-owner?id=<64 hex>), and the /metrics lines.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "server/api/do/do.h"
#include "server/http/reply.h"
#include "server/node/do/docl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P EKV_DO_PARTITIONS

json_t *ekv_node_do_status_json(ekv_node_t *n)
{
    ekv_docl_t *c = n->docl;
    if (!c)
        return NULL;
    const ekv_do_table_t *t = c->table;
    json_t *owners = json_object();
    size_t primary = 0, here = 0;
    for (size_t i = 0; i < t->pt.nnodes; i++)
        json_object_set_new(owners, t->pt.nodes[i], json_integer((json_int_t)t->pt.count[i]));
    for (uint32_t p = 0; p < P; p++) {
        primary += ekv_do_table_owner(t, p) == EKV_DO_OWNER_PRIMARY;
        here += c->here[p] == DOCL_ACTIVE;
    }
    json_t *nodes = json_array();
    for (size_t i = 0; i < t->pt.nnodes; i++)
        json_array_append_new(nodes,
                              json_pack("{s:s, s:s, s:I}", "node_id", t->pt.nodes[i], "addr",
                                        t->addr[i], "partitions", (json_int_t)t->pt.count[i]));
    json_t *o = json_pack("{s:I, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "table_version",
                          (json_int_t)t->pt.version, "owners", owners, "nodes", nodes,
                          "primary_owned", (json_int_t)primary, "pending",
                          (json_int_t)ekv_do_table_npending(t), "served_here", (json_int_t)here,
                          "moves_total", (json_int_t)t->moves, "forwarded_calls",
                          (json_int_t)c->st.forwarded, "parked_calls", (json_int_t)c->nparked);
    if (c->owning) {
        uint64_t now = ekv_clock_mono_ns();
        json_object_set_new(o, "lease_valid", json_boolean(now < c->lease_until_ns));
        json_object_set_new(o, "lease_left_ms",
                            json_integer(now < c->lease_until_ns
                                             ? (json_int_t)((c->lease_until_ns - now) / 1000000)
                                             : 0));
        json_object_set_new(o, "addr", json_string(c->my_addr));
        json_object_set_new(o, "primary", json_string(c->paddr));
    }
    if (c->placing) {
        json_t *m = json_array();
        uint64_t now = ekv_clock_mono_ns();
        for (size_t i = 0; i < c->nmembers; i++) {
            const docl_member_t *mb = &c->members[i];
            json_array_append_new(m, json_pack("{s:s, s:s, s:b, s:b, s:I, s:I}", "node_id", mb->id,
                                               "addr", mb->addr, "in_table", mb->in_table, "gone",
                                               mb->gone, "table_version", (json_int_t)mb->acked,
                                               "silent_ms",
                                               (json_int_t)((now - mb->last_hb_ns) / 1000000)));
        }
        json_object_set_new(o, "members", m);
        json_object_set_new(o, "lease_ms", json_integer(c->lease_ms));
    }
    return o;
}

void ekv_node_do_owner_call(ekv_call_t *call)
{
    ekv_node_t *n = ekv_node_of(call->app);
    ekv_docl_t *c = n->docl;
    const char *q = call->req->query ? call->req->query : "";
    const char *id = strstr(q, "id=");
    char hex[65] = "";
    if (id && (id == q || id[-1] == '&'))
        snprintf(hex, sizeof(hex), "%.64s", id + 3);
    uint8_t objid[EKV_DO_OBJID_LEN];
    size_t got;
    if (strspn(hex, "0123456789abcdef") != 2 * EKV_DO_OBJID_LEN ||
        ekv_hex_decode(hex, 2 * EKV_DO_OBJID_LEN, objid, sizeof(objid), &got)) {
        ekv_reply_error(call->req, EKV_EDO_BAD_ID,
                        "id: a Durable Object id of 64 lowercase hex digits is required");
        return;
    }
    if (!c) {
        ekv_reply_error(call->req, EKV_EBAD_REQUEST,
                        "this node is not in a cluster: it owns every object itself");
        return;
    }
    uint32_t p = ekv_do_partition_of(objid);
    int o = ekv_do_table_owner(c->table, p);
    ekv_reply_ok(call->req,
                 json_pack("{s:I, s:s, s:s, s:I, s:b, s:I, s:b}", "partition", (json_int_t)p,
                           "owner", o == EKV_DO_OWNER_PRIMARY ? "primary" : c->table->pt.nodes[o],
                           "addr", o == EKV_DO_OWNER_PRIMARY ? "" : c->table->addr[o], "epoch",
                           (json_int_t)c->table->pt.epoch[p], "pending", c->table->pending[p] != 0,
                           "table_version", (json_int_t)c->table->pt.version, "served_here",
                           c->here[p] == DOCL_ACTIVE),
                 NULL);
}

int ekv_node_do_metrics(ekv_node_t *n, ekv_buf_t *out)
{
    ekv_docl_t *c = n->docl;
    if (!c)
        return 0;
    size_t here = 0;
    for (uint32_t p = 0; p < P; p++)
        here += c->here[p] == DOCL_ACTIVE;
    uint64_t fenced = c->st.fenced_remote + ekv_do_fenced_count(n->app->dos);
    return ekv_buf_appendf(
        out,
        "# HELP edgekv_do_table_version Durable Object partition table version installed here.\n"
        "# TYPE edgekv_do_table_version gauge\nedgekv_do_table_version %llu\n"
        "# HELP edgekv_do_partitions_served Durable Object partitions served by this node.\n"
        "# TYPE edgekv_do_partitions_served gauge\nedgekv_do_partitions_served %zu\n"
        "# HELP edgekv_do_partition_moves_total Partitions that changed owner (primary).\n"
        "# TYPE edgekv_do_partition_moves_total counter\nedgekv_do_partition_moves_total %llu\n"
        "# HELP edgekv_do_forwarded_calls_total Durable Object calls forwarded to their owner.\n"
        "# TYPE edgekv_do_forwarded_calls_total counter\nedgekv_do_forwarded_calls_total %llu\n"
        "# HELP edgekv_do_fenced_writes_total Writes and checks refused at the commit because "
        "their partition's epoch changed (on the primary; an owner counts what it saw).\n"
        "# TYPE edgekv_do_fenced_writes_total counter\nedgekv_do_fenced_writes_total %llu\n"
        "# HELP edgekv_do_lease_expiries_total Owners whose lease expired (primary).\n"
        "# TYPE edgekv_do_lease_expiries_total counter\nedgekv_do_lease_expiries_total %llu\n"
        "# HELP edgekv_do_lease_lapses_total Times this owner's own lease ran out.\n"
        "# TYPE edgekv_do_lease_lapses_total counter\nedgekv_do_lease_lapses_total %llu\n"
        "# TYPE edgekv_do_calls_parked_total counter\nedgekv_do_calls_parked_total %llu\n"
        "# TYPE edgekv_do_park_timeouts_total counter\nedgekv_do_park_timeouts_total %llu\n",
        (unsigned long long)c->table->pt.version, here, (unsigned long long)c->st.moves,
        (unsigned long long)c->st.forwarded, (unsigned long long)fenced,
        (unsigned long long)c->st.lease_expiries, (unsigned long long)c->st.lease_lapses,
        (unsigned long long)c->st.parked, (unsigned long long)c->st.park_timeouts);
}
