/* The API's route table: paths resolve to the right routes; kinds, op names and flags are
 * consistent (edges, the RPC sink and the role gate rely on the kinds). */
#include "server/api/api.h"

#include <criterion/criterion.h>
#include <llhttp.h>
#include <string.h>

/* The real table: every KV path the API documents resolves to the right route. */
static const ekv_route_t *real(int method, const char *path)
{
    const ekv_route_t *r = NULL;
    ekv_route_params_t p;
    cr_assert_eq(ekv_routes_init(), 0);
    int rc = ekv_router_match(ekv_routes_router(), method, path, strlen(path), &r, &p);
    return rc ? NULL : r;
}

#define NSP "/client/v4/accounts/0123456789abcdef0123456789abcdef/storage/kv/namespaces"

Test(routes, kv_paths_resolve)
{
    cr_assert_str_eq(real(HTTP_GET, NSP)->name, "kv_ns_list");
    cr_assert_str_eq(real(HTTP_POST, NSP)->name, "kv_ns_create");
    cr_assert_str_eq(real(HTTP_PUT, NSP "/ns1")->name, "kv_ns_rename");
    cr_assert_str_eq(real(HTTP_GET, NSP "/ns1/values/a%2Fb")->name, "kv_value_get");
    cr_assert_str_eq(real(HTTP_GET, NSP "/ns1/metadata/k")->name, "kv_metadata_get");
    cr_assert_str_eq(real(HTTP_GET, NSP "/ns1/keys")->name, "kv_keys_list");
    cr_assert_str_eq(real(HTTP_PUT, NSP "/ns1/bulk")->name, "kv_bulk_put");
    cr_assert_str_eq(real(HTTP_DELETE, NSP "/ns1/bulk")->name, "kv_bulk_delete_legacy");
    cr_assert_str_eq(real(HTTP_POST, NSP "/ns1/bulk/delete")->name, "kv_bulk_delete");
    cr_assert_str_eq(real(HTTP_POST, NSP "/ns1/bulk/get")->name, "kv_bulk_get");
    cr_assert_str_eq(real(HTTP_GET, "/client/v4/user/tokens/verify")->name, "user_token_verify");
    cr_assert_null(real(HTTP_PATCH, NSP));
}

Test(routes, every_route_has_a_handler_or_is_the_roles)
{
    for (size_t i = 0; i < ekv_nroutes; i++) {
        if (ekv_routes[i].kind == EKV_RK_CLUSTER)
            cr_assert_null(ekv_routes[i].handler, "cluster route %s", ekv_routes[i].name);
        else
            cr_assert_not_null(ekv_routes[i].handler, "route %s", ekv_routes[i].name);
        cr_assert_not_null(ekv_routes[i].name);
        if (ekv_routes[i].flags & EKV_RT_NS)
            cr_assert(ekv_routes[i].flags & EKV_RT_ACCOUNT, "ns route %s lacks account",
                      ekv_routes[i].name);
    }
}

/* Regression: two routes shared the metrics label "kv_bulk_delete", which made /metrics emit
 * duplicate series (Prometheus rejects such a scrape). */
Test(routes, names_are_unique)
{
    for (size_t i = 0; i < ekv_nroutes; i++)
        for (size_t j = i + 1; j < ekv_nroutes; j++)
            cr_assert_str_neq(ekv_routes[i].name, ekv_routes[j].name, "duplicate route name %s",
                              ekv_routes[i].name);
}

Test(routes, kinds_say_what_a_route_does)
{
    cr_assert_eq(real(HTTP_GET, NSP "/ns1/values/k")->kind, EKV_RK_VALUE_READ);
    cr_assert_eq(real(HTTP_PUT, NSP "/ns1/values/k")->kind, EKV_RK_KEY_WRITE);
    cr_assert_eq(real(HTTP_DELETE, NSP "/ns1/values/k")->kind, EKV_RK_KEY_WRITE);
    cr_assert_eq(real(HTTP_GET, NSP "/ns1/metadata/k")->kind, EKV_RK_READ);
    cr_assert_eq(real(HTTP_GET, NSP "/ns1/keys")->kind, EKV_RK_LIST);
    cr_assert_eq(real(HTTP_PUT, NSP "/ns1/bulk")->kind, EKV_RK_BULK_WRITE);
    cr_assert_eq(real(HTTP_POST, NSP "/ns1/bulk/delete")->kind, EKV_RK_BULK_WRITE);
    cr_assert_eq(real(HTTP_POST, NSP "/ns1/bulk/get")->kind, EKV_RK_READ);
    cr_assert_eq(real(HTTP_POST, NSP)->kind, EKV_RK_CATALOG_WRITE);
    cr_assert_eq(real(HTTP_DELETE, NSP "/ns1")->kind, EKV_RK_CATALOG_WRITE);
    cr_assert_eq(
        real(HTTP_POST, "/client/v4/accounts/0123456789abcdef0123456789abcdef/tokens")->kind,
        EKV_RK_CATALOG_WRITE);
    cr_assert_eq(
        real(HTTP_GET, "/client/v4/accounts/0123456789abcdef0123456789abcdef/tokens")->kind,
        EKV_RK_READ);
    cr_assert_eq(real(HTTP_GET, "/_edgekv/replication/status")->kind, EKV_RK_CLUSTER);
    cr_assert_eq(real(HTTP_POST, "/_edgekv/replication/promote")->kind, EKV_RK_CLUSTER);
    cr_assert_eq(real(HTTP_GET, "/healthz")->kind, EKV_RK_LOCAL);
    /* the whole-node operations need the cluster operator, never an account token */
    cr_assert(real(HTTP_POST, "/_edgekv/replication/promote")->flags & EKV_RT_OPERATOR);
    cr_assert(real(HTTP_GET, "/_edgekv/replication/checksum")->flags & EKV_RT_OPERATOR);
    cr_assert(real(HTTP_GET, "/_edgekv/accounts")->flags & EKV_RT_OPERATOR);
    cr_assert_eq(real(HTTP_POST, "/_edgekv/accounts")->kind, EKV_RK_CATALOG_WRITE);
    cr_assert(real(HTTP_POST, "/_edgekv/accounts")->flags & EKV_RT_OPERATOR);
    cr_assert_eq(real(HTTP_POST, "/_edgekv/test/clock")->kind, EKV_RK_LOCAL);
}

/* What a replica refuses and an edge relays to the primary: exactly the routes that change
 * data, and every one of those needs write or admin permission. */
Test(routes, writes_are_exactly_the_mutating_routes)
{
    size_t writes = 0;
    for (size_t i = 0; i < ekv_nroutes; i++) {
        const ekv_route_t *r = &ekv_routes[i];
        if (r->kind == EKV_RK_DO) { /* the owner decides; every one needs a DO permission */
            cr_assert(r->flags & (EKV_RT_DO_READ | EKV_RT_DO_WRITE), "DO route %s", r->name);
            cr_assert(r->flags & EKV_RT_ACCOUNT, "DO route %s", r->name);
            continue;
        }
        if (!ekv_route_kind_is_write(r->kind)) {
            cr_assert(r->method == HTTP_GET || r->kind == EKV_RK_CLUSTER ||
                          r->kind == EKV_RK_LOCAL || r->kind == EKV_RK_READ,
                      "route %s", r->name);
            continue;
        }
        writes++;
        cr_assert_neq(r->method, HTTP_GET, "write route %s", r->name);
        cr_assert(r->flags & (EKV_RT_WRITE | EKV_RT_ADMIN | EKV_RT_OPERATOR),
                  "write route %s lacks a permission", r->name);
    }
    cr_assert_eq(writes, 11);
}

Test(routes, op_names_match_cloudflare_messages)
{
    cr_assert_str_eq(ekv_route_op(real(HTTP_GET, NSP "/ns1/values/k")), "get");
    cr_assert_str_eq(ekv_route_op(real(HTTP_DELETE, NSP "/ns1/values/k")), "remove key");
    cr_assert_str_eq(ekv_route_op(real(HTTP_GET, NSP "/ns1/keys")), "list keys");
    cr_assert_str_eq(ekv_route_op(real(HTTP_POST, NSP "/ns1/bulk/get")), "bulk get keys");
    cr_assert_str_eq(ekv_route_op(real(HTTP_GET, NSP)), "list namespaces");
    /* routes without an op name use their name */
    cr_assert_str_eq(ekv_route_op(real(HTTP_GET, "/healthz")), "healthz");
}

#define DOP "/client/v4/accounts/acc/workers/durable_objects/namespaces"

/* Durable Object routes: reads need do:read, everything that changes state do:write. */
Test(routes, durable_object_routes)
{
    const ekv_route_t *r = real(HTTP_GET, DOP);
    cr_assert_eq(r->kind, EKV_RK_DO);
    cr_assert(r->flags & EKV_RT_DO_READ);
    cr_assert(real(HTTP_POST, DOP)->flags & EKV_RT_DO_WRITE);
    cr_assert(real(HTTP_GET, DOP "/n1/objects")->flags & EKV_RT_DO_READ);
    cr_assert(real(HTTP_POST, DOP "/n1/objects/ids")->flags & EKV_RT_DO_READ);
    cr_assert(real(HTTP_POST, DOP "/n1/objects/o1/storage/get")->flags & EKV_RT_DO_READ);
    cr_assert(real(HTTP_GET, DOP "/n1/objects/o1/storage/list")->flags & EKV_RT_DO_READ);
    cr_assert(real(HTTP_POST, DOP "/n1/objects/o1/storage/put")->flags & EKV_RT_DO_WRITE);
    cr_assert(real(HTTP_POST, DOP "/n1/objects/o1/storage/transaction")->flags & EKV_RT_DO_WRITE);
    cr_assert(real(HTTP_PUT, DOP "/n1/objects/o1/alarm")->flags & EKV_RT_DO_WRITE);
    cr_assert(real(HTTP_GET, DOP "/n1/objects/o1/alarm")->flags & EKV_RT_DO_READ);
    /* calls: every method, the rest of the path is one parameter */
    const int methods[] = {HTTP_GET,    HTTP_POST, HTTP_PUT,    HTTP_PATCH,
                           HTTP_DELETE, HTTP_HEAD, HTTP_OPTIONS};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        const ekv_route_t *f = NULL;
        ekv_route_params_t p;
        cr_assert_eq(ekv_router_match(ekv_routes_router(), methods[i],
                                      DOP "/n1/objects/o1/fetch/a/b",
                                      strlen(DOP "/n1/objects/o1/fetch/a/b"), &f, &p),
                     0);
        cr_assert(f->flags & EKV_RT_DO_WRITE);
        cr_assert_eq(p.n, 4);
        cr_assert_eq(p.v[3].n, 3);
        cr_assert_eq(memcmp(p.v[3].p, "a/b", 3), 0);
    }
}
