/*
 * node.c - the node state record (store.h, "node state"): epoch, history ids and fence of
 * this node, in the meta CF under the node-local key "s/node".
 *
 * Encoding: one line of text, "v1 <epoch> <history_id|-> <history2_id|-> <history2_seq>
 * <fenced_epoch> <fenced_by|->", so an operator can read it with ldb. Node-local keys ("s/")
 * are neither replicated nor removed by a snapshot ingest, so a replica keeps its epoch
 * across a re-bootstrap.
 */
#include "common/errors.h"
#include "common/log.h"
#include "storage/keys.h"
#include "storage/store_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *or_dash(const char *s)
{
    return s[0] ? s : "-";
}

static int parse_id(const char *in, char *out, size_t cap, size_t maxlen)
{
    if (!strcmp(in, "-")) {
        out[0] = '\0';
        return 0;
    }
    size_t n = strlen(in);
    if (n == 0 || n > maxlen || n >= cap)
        return -1;
    memcpy(out, in, n + 1);
    return 0;
}

int ekv_store_node_load(ekv_store_t *s, ekv_node_state_t *out)
{
    memset(out, 0, sizeof(*out));
    char *err = NULL;
    size_t len = 0;
    char *v = rocksdb_get_cf(s->db, s->ropts, s->cf[EKV_CF_META], EKV_KEY_NODE, EKV_KEY_NODE_LEN,
                             &len, &err);
    if (err)
        return ekv__store_rocks_err("get node state", err);
    if (!v)
        return 0;
    char text[512], h1[64], h2[64], by[96];
    int rc = EKV_EBAD_REQUEST;
    if (len < sizeof(text)) {
        memcpy(text, v, len);
        text[len] = '\0';
        if (sscanf(text, "v1 %" SCNu64 " %63s %63s %" SCNu64 " %" SCNu64 " %95s", &out->epoch, h1,
                   h2, &out->history2_seq, &out->fenced_epoch, by) == 6 &&
            !parse_id(h1, out->history_id, sizeof(out->history_id), EKV_HISTORY_ID_LEN) &&
            !parse_id(h2, out->history2_id, sizeof(out->history2_id), EKV_HISTORY_ID_LEN) &&
            !parse_id(by, out->fenced_by, sizeof(out->fenced_by), sizeof(out->fenced_by) - 1))
            rc = 0;
    }
    rocksdb_free(v);
    if (rc) {
        ekv_log_error("unreadable node state record", "key=%s", EKV_KEY_NODE);
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

int ekv_store_node_save(ekv_store_t *s, const ekv_node_state_t *st)
{
    char text[512];
    /* node ids are config names: keep the record one space-separated line */
    char by[64];
    snprintf(by, sizeof(by), "%s", st->fenced_by);
    for (char *p = by; *p; p++)
        if (*p == ' ' || *p == '\n' || *p == '\t')
            *p = '_';
    int n = snprintf(text, sizeof(text), "v1 %" PRIu64 " %s %s %" PRIu64 " %" PRIu64 " %s",
                     st->epoch, or_dash(st->history_id), or_dash(st->history2_id), st->history2_seq,
                     st->fenced_epoch, or_dash(by));
    if (n < 0 || (size_t)n >= sizeof(text))
        return EKV_EINTERNAL;
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    char *err = NULL;
    rocksdb_put_cf(s->db, wo, s->cf[EKV_CF_META], EKV_KEY_NODE, EKV_KEY_NODE_LEN, text, (size_t)n,
                   &err);
    rocksdb_writeoptions_destroy(wo);
    if (err)
        return ekv__store_rocks_err("put node state", err);
    return 0;
}
