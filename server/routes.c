/*
 * routes.c - the route table: every path the server answers, its method, handler, body
 * limit and auth requirements. Order matters only for identical paths.
 */
#include "server/app.h"
#include "server/kv_validate.h"

#include <llhttp.h>

#define A           "/client/v4/accounts/:account"
#define NS          A "/storage/kv/namespaces/:ns"
#define KB          (1024u)
#define MB          (1024u * 1024u)
#define VALUE_LIMIT (EKV_MAX_VALUE_LEN + 64 * KB) /* value + multipart framing + metadata */
#define BULK_LIMIT  EKV_MAX_BULK_BYTES

#define R(m, pat, name, h, lim, fl)                                                                \
    {                                                                                              \
        HTTP_##m, pat, name, 0, (void (*)(void))h, lim, fl                                         \
    }

const ekv_route_t ekv_routes[] = {
    R(GET, "/healthz", "healthz", ekv_h_healthz, 0, EKV_RT_NOAUTH),
    R(GET, "/metrics", "metrics", ekv_h_metrics, 0, EKV_RT_NOAUTH),
    R(POST, "/_edgekv/test/clock", "test_clock", ekv_h_test_clock, 0, EKV_RT_NOAUTH),
    R(GET, "/_edgekv/replication/status", "repl_status", ekv_h_repl_status, 0,
      EKV_RT_NOAUTH | EKV_RT_ANYROLE),
    R(GET, "/_edgekv/replication/checksum", "repl_checksum", ekv_h_repl_checksum, 0,
      EKV_RT_ADMIN | EKV_RT_ANYROLE),
    R(POST, "/_edgekv/replication/promote", "repl_promote", ekv_h_repl_promote, 64 * KB,
      EKV_RT_ADMIN | EKV_RT_ANYROLE),
    R(GET, "/client/v4/accounts", "accounts_list", ekv_h_accounts_list, 0, 0),
    R(GET, "/client/v4/memberships", "memberships", ekv_h_memberships, 0, 0),
    R(GET, "/client/v4/user/tokens/verify", "user_token_verify", ekv_h_token_verify, 0,
      EKV_RT_VERIFY),
    R(GET, A "/tokens/verify", "token_verify", ekv_h_token_verify, 0,
      EKV_RT_ACCOUNT | EKV_RT_VERIFY),
    R(GET, A "/tokens", "tokens_list", ekv_h_tokens_list, 0, EKV_RT_ACCOUNT | EKV_RT_ADMIN),
    R(POST, A "/tokens", "tokens_create", ekv_h_tokens_create, 64 * KB,
      EKV_RT_ACCOUNT | EKV_RT_ADMIN),
    R(DELETE, A "/tokens/:token", "tokens_revoke", ekv_h_tokens_revoke, 64 * KB,
      EKV_RT_ACCOUNT | EKV_RT_ADMIN),
    R(GET, A "/storage/kv/namespaces", "kv_ns_list", ekv_h_ns_list, 0,
      EKV_RT_ACCOUNT | EKV_RT_READ),
    R(POST, A "/storage/kv/namespaces", "kv_ns_create", ekv_h_ns_create, 64 * KB,
      EKV_RT_ACCOUNT | EKV_RT_WRITE),
    R(GET, NS, "kv_ns_get", ekv_h_ns_get, 0, EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_READ),
    R(PUT, NS, "kv_ns_rename", ekv_h_ns_rename, 64 * KB, EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(DELETE, NS, "kv_ns_delete", ekv_h_ns_delete, 64 * KB,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(GET, NS "/values/*", "kv_value_get", ekv_h_value_get, 0,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_READ),
    R(PUT, NS "/values/*", "kv_value_put", ekv_h_value_put, VALUE_LIMIT,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(DELETE, NS "/values/*", "kv_value_delete", ekv_h_value_delete, 64 * KB,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(GET, NS "/metadata/*", "kv_metadata_get", ekv_h_metadata_get, 0,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_READ),
    R(GET, NS "/keys", "kv_keys_list", ekv_h_keys_list, 0,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_READ),
    R(PUT, NS "/bulk", "kv_bulk_put", ekv_h_bulk_put, BULK_LIMIT,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(DELETE, NS "/bulk", "kv_bulk_delete_legacy", ekv_h_bulk_delete, BULK_LIMIT,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(POST, NS "/bulk/delete", "kv_bulk_delete", ekv_h_bulk_delete, BULK_LIMIT,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_WRITE),
    R(POST, NS "/bulk/get", "kv_bulk_get", ekv_h_bulk_get, 1 * MB,
      EKV_RT_ACCOUNT | EKV_RT_NS | EKV_RT_READ),
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

const char *ekv_route_op(const ekv_route_t *r)
{
    static const struct {
        void (*h)(void);
        const char *op;
    } ops[] = {
        {(void (*)(void))ekv_h_ns_get, "get namespace"},
        {(void (*)(void))ekv_h_ns_rename, "rename namespace"},
        {(void (*)(void))ekv_h_ns_delete, "delete namespace"},
        {(void (*)(void))ekv_h_value_get, "get"},
        {(void (*)(void))ekv_h_value_put, "put"},
        {(void (*)(void))ekv_h_value_delete, "remove key"},
        {(void (*)(void))ekv_h_metadata_get, "metadata"},
        {(void (*)(void))ekv_h_keys_list, "list keys"},
        {(void (*)(void))ekv_h_bulk_put, "bulk write"},
        {(void (*)(void))ekv_h_bulk_delete, "bulk delete"},
        {(void (*)(void))ekv_h_bulk_get, "bulk get keys"},
        {(void (*)(void))ekv_h_ns_create, "create namespace"},
        {(void (*)(void))ekv_h_ns_list, "list namespaces"},
    };
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (ops[i].h == r->handler)
            return ops[i].op;
    return r->name;
}
