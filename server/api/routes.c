/*
 * routes.c - the route table: every path the server answers, its method, handler, body
 * limit, kind (what it does: server/api/api.h), Cloudflare's operation name for messages and
 * its auth requirements. Order matters only for identical paths.
 */
#include "server/api/admin/admin.h"
#include "server/api/api.h"
#include "server/api/do/do.h"
#include "server/api/kv/kv.h"
#include "server/api/kv/validate.h"

#include <llhttp.h>

#define A           "/client/v4/accounts/:account"
#define NS          A "/storage/kv/namespaces/:ns"
#define KB          (1024u)
#define MB          (1024u * 1024u)
#define VALUE_LIMIT (EKV_MAX_VALUE_LEN + 64 * KB) /* value + multipart framing + metadata */
#define BULK_LIMIT  EKV_MAX_BULK_BYTES

#define R(m, pat, nm, h, lim, k, o, fl)                                                            \
    {                                                                                              \
        .method = HTTP_##m, .pattern = pat, .name = nm, .handler = (void (*)(void))(h),            \
        .body_limit = lim, .flags = fl, .kind = EKV_RK_##k, .op = o                                \
    }
#define KVNS         (EKV_RT_ACCOUNT | EKV_RT_NS)
#define DONS         A "/workers/durable_objects/namespaces"
#define DOOBJ        DONS "/:dons/objects/:obj"
#define DO_LIMIT     (32u * MB) /* a DO request body: fits one RPC frame when relayed */
#define DOR          (EKV_RT_ACCOUNT | EKV_RT_DO_READ)
#define DOW          (EKV_RT_ACCOUNT | EKV_RT_DO_WRITE)
#define DOOR         (DOR | EKV_RT_DO_OBJECT)
#define DOOW         (DOW | EKV_RT_DO_OBJECT)
#define FETCH(m, nm) R(m, DOOBJ "/fetch/*", nm, ekv_h_do_fetch, DO_LIMIT, DO, "call object", DOOW)

const ekv_route_t ekv_routes[] = {
    R(GET, "/healthz", "healthz", ekv_h_healthz, 0, LOCAL, NULL, EKV_RT_NOAUTH),
    R(GET, "/metrics", "metrics", ekv_h_metrics, 0, LOCAL, NULL, EKV_RT_NOAUTH),
    R(POST, "/_edgekv/test/clock", "test_clock", ekv_h_test_clock, 0, LOCAL, NULL, EKV_RT_NOAUTH),
    /* the role answers these (server/node/admin.c) */
    R(GET, "/_edgekv/replication/status", "repl_status", NULL, 0, CLUSTER, NULL, EKV_RT_NOAUTH),
    R(GET, "/_edgekv/replication/checksum", "repl_checksum", NULL, 0, CLUSTER, NULL,
      EKV_RT_OPERATOR),
    R(POST, "/_edgekv/replication/promote", "repl_promote", NULL, 64 * KB, CLUSTER, NULL,
      EKV_RT_OPERATOR),
    R(GET, "/_edgekv/replication/do-owner", "repl_do_owner", NULL, 0, CLUSTER, NULL,
      EKV_RT_OPERATOR),
    /* the cluster operator's account API (docs/API.md "Operator API") */
    R(GET, "/_edgekv/accounts", "op_accounts_list", ekv_h_op_accounts_list, 0, READ, NULL,
      EKV_RT_OPERATOR),
    R(POST, "/_edgekv/accounts", "op_accounts_create", ekv_h_op_accounts_create, 4 * KB,
      CATALOG_WRITE, "create account", EKV_RT_OPERATOR),
    R(GET, "/client/v4/accounts", "accounts_list", ekv_h_accounts_list, 0, READ, NULL, 0),
    R(GET, "/client/v4/memberships", "memberships", ekv_h_memberships, 0, READ, NULL, 0),
    R(GET, "/client/v4/user/tokens/verify", "user_token_verify", ekv_h_token_verify, 0, READ, NULL,
      EKV_RT_VERIFY),
    R(GET, A "/tokens/verify", "token_verify", ekv_h_token_verify, 0, READ, NULL,
      EKV_RT_ACCOUNT | EKV_RT_VERIFY),
    R(GET, A "/tokens", "tokens_list", ekv_h_tokens_list, 0, READ, NULL,
      EKV_RT_ACCOUNT | EKV_RT_ADMIN),
    R(POST, A "/tokens", "tokens_create", ekv_h_tokens_create, 64 * KB, CATALOG_WRITE, NULL,
      EKV_RT_ACCOUNT | EKV_RT_ADMIN),
    R(DELETE, A "/tokens/:token", "tokens_revoke", ekv_h_tokens_revoke, 64 * KB, CATALOG_WRITE,
      NULL, EKV_RT_ACCOUNT | EKV_RT_ADMIN),
    R(GET, A "/storage/kv/namespaces", "kv_ns_list", ekv_h_ns_list, 0, READ, "list namespaces",
      EKV_RT_ACCOUNT | EKV_RT_READ),
    R(POST, A "/storage/kv/namespaces", "kv_ns_create", ekv_h_ns_create, 64 * KB, CATALOG_WRITE,
      "create namespace", EKV_RT_ACCOUNT | EKV_RT_WRITE),
    R(GET, NS, "kv_ns_get", ekv_h_ns_get, 0, READ, "get namespace", KVNS | EKV_RT_READ),
    R(PUT, NS, "kv_ns_rename", ekv_h_ns_rename, 64 * KB, CATALOG_WRITE, "rename namespace",
      KVNS | EKV_RT_WRITE),
    R(DELETE, NS, "kv_ns_delete", ekv_h_ns_delete, 64 * KB, CATALOG_WRITE, "delete namespace",
      KVNS | EKV_RT_WRITE),
    R(GET, NS "/values/*", "kv_value_get", ekv_h_value_get, 0, VALUE_READ, "get",
      KVNS | EKV_RT_READ),
    R(PUT, NS "/values/*", "kv_value_put", ekv_h_value_put, VALUE_LIMIT, KEY_WRITE, "put",
      KVNS | EKV_RT_WRITE),
    R(DELETE, NS "/values/*", "kv_value_delete", ekv_h_value_delete, 64 * KB, KEY_WRITE,
      "remove key", KVNS | EKV_RT_WRITE),
    R(GET, NS "/metadata/*", "kv_metadata_get", ekv_h_metadata_get, 0, READ, "metadata",
      KVNS | EKV_RT_READ),
    R(GET, NS "/keys", "kv_keys_list", ekv_h_keys_list, 0, LIST, "list keys", KVNS | EKV_RT_READ),
    R(PUT, NS "/bulk", "kv_bulk_put", ekv_h_bulk_put, BULK_LIMIT, BULK_WRITE, "bulk write",
      KVNS | EKV_RT_WRITE),
    R(DELETE, NS "/bulk", "kv_bulk_delete_legacy", ekv_h_bulk_delete, BULK_LIMIT, BULK_WRITE,
      "bulk delete", KVNS | EKV_RT_WRITE),
    R(POST, NS "/bulk/delete", "kv_bulk_delete", ekv_h_bulk_delete, BULK_LIMIT, BULK_WRITE,
      "bulk delete", KVNS | EKV_RT_WRITE),
    R(POST, NS "/bulk/get", "kv_bulk_get", ekv_h_bulk_get, 1 * MB, READ, "bulk get keys",
      KVNS | EKV_RT_READ),
    /* Durable Objects (server/api/do/): Cloudflare's list endpoints, then edgekv's own */
    R(GET, DONS, "do_ns_list", ekv_h_do_ns_list, 0, DO, "list namespaces", DOR),
    R(POST, DONS, "do_ns_create", ekv_h_do_ns_create, 64 * KB, DO, "create namespace", DOW),
    R(GET, DONS "/:dons", "do_ns_get", ekv_h_do_ns_get, 0, DO, "get namespace", DOR),
    R(PUT, DONS "/:dons", "do_ns_update", ekv_h_do_ns_update, 64 * KB, DO, "update namespace", DOW),
    R(DELETE, DONS "/:dons", "do_ns_delete", ekv_h_do_ns_delete, 64 * KB, DO, "delete namespace",
      DOW),
    R(GET, DONS "/:dons/objects", "do_objects_list", ekv_h_do_objects_list, 0, DO, "list objects",
      DOR),
    R(POST, DONS "/:dons/objects/ids", "do_object_id", ekv_h_do_object_id, 64 * KB, DO, "object id",
      DOR),
    R(POST, DOOBJ "/storage/get", "do_storage_get", ekv_h_do_storage_get, DO_LIMIT, DO,
      "storage get", DOOR),
    R(POST, DOOBJ "/storage/put", "do_storage_put", ekv_h_do_storage_put, DO_LIMIT, DO,
      "storage put", DOOW),
    R(POST, DOOBJ "/storage/delete", "do_storage_delete", ekv_h_do_storage_delete, DO_LIMIT, DO,
      "storage delete", DOOW),
    R(GET, DOOBJ "/storage/list", "do_storage_list", ekv_h_do_storage_list, 0, DO, "storage list",
      DOOR),
    R(POST, DOOBJ "/storage/deleteAll", "do_storage_delete_all", ekv_h_do_storage_delete_all,
      64 * KB, DO, "storage deleteAll", DOOW),
    R(POST, DOOBJ "/storage/transaction", "do_storage_txn", ekv_h_do_storage_txn, DO_LIMIT, DO,
      "storage transaction", DOOW),
    R(GET, DOOBJ "/alarm", "do_alarm_get", ekv_h_do_alarm_get, 0, DO, "get alarm", DOOR),
    R(PUT, DOOBJ "/alarm", "do_alarm_put", ekv_h_do_alarm_put, 64 * KB, DO, "set alarm", DOOW),
    R(DELETE, DOOBJ "/alarm", "do_alarm_delete", ekv_h_do_alarm_delete, 64 * KB, DO, "delete alarm",
      DOOW),
    FETCH(GET, "do_fetch_get"),
    FETCH(HEAD, "do_fetch_head"),
    FETCH(POST, "do_fetch_post"),
    FETCH(PUT, "do_fetch_put"),
    FETCH(PATCH, "do_fetch_patch"),
    FETCH(DELETE, "do_fetch_delete"),
    FETCH(OPTIONS, "do_fetch_options"),
};
const size_t ekv_nroutes = sizeof(ekv_routes) / sizeof(ekv_routes[0]);

static ekv_router_t router;

int ekv_routes_init(void)
{
    return ekv_router_init(&router, ekv_routes, ekv_nroutes);
}

const ekv_router_t *ekv_routes_router(void)
{
    return &router;
}
