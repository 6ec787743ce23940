/* Route table matching: literal segments, :params, trailing '*', method mismatch. */
#include "common/errors.h"
#include "server/http/router.h"

#include <criterion/criterion.h>
#include <llhttp.h>
#include <string.h>

static const ekv_route_t table[] = {
    {HTTP_GET, "/healthz", "healthz", 0, NULL, 0, 0, 0, NULL},
    {HTTP_GET, "/a/:x/items", "items", 1, NULL, 0, 0, 0, NULL},
    {HTTP_POST, "/a/:x/items", "items_post", 2, NULL, 0, 0, 0, NULL},
    {HTTP_GET, "/a/:x/items/:y/values/*", "value", 3, NULL, 0, 0, 0, NULL},
    {HTTP_PUT, "/a/:x/bulk", "bulk_put", 4, NULL, 0, 0, 0, NULL},
    {HTTP_POST, "/a/:x/bulk/delete", "bulk_delete", 5, NULL, 0, 0, 0, NULL},
};
#define N (sizeof(table) / sizeof(table[0]))

static int match(int method, const char *path, const ekv_route_t **r, ekv_route_params_t *p)
{
    static ekv_router_t router;
    static int ready;
    if (!ready) {
        cr_assert_eq(ekv_router_init(&router, table, N), 0);
        ready = 1;
    }
    return ekv_router_match(&router, method, path, strlen(path), r, p);
}

Test(router, literal_route)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "/healthz", &r, &p), 0);
    cr_assert_str_eq(r->name, "healthz");
    cr_assert_eq(p.n, 0);
}

Test(router, params_are_raw_slices)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "/a/acc%20t/items", &r, &p), 0);
    cr_assert_str_eq(r->name, "items");
    cr_assert_eq(p.n, 1);
    cr_assert_eq(p.v[0].n, 7);
    cr_assert_eq(memcmp(p.v[0].p, "acc%20t", 7), 0);
}

Test(router, method_selects_route)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_POST, "/a/1/items", &r, &p), 0);
    cr_assert_str_eq(r->name, "items_post");
}

Test(router, star_takes_rest_including_slashes)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "/a/1/items/2/values/x/y%2Fz", &r, &p), 0);
    cr_assert_str_eq(r->name, "value");
    cr_assert_eq(p.n, 3);
    cr_assert_eq(p.v[2].n, strlen("x/y%2Fz"));
    cr_assert_eq(memcmp(p.v[2].p, "x/y%2Fz", p.v[2].n), 0);
}

Test(router, star_may_be_empty)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "/a/1/items/2/values/", &r, &p), 0);
    cr_assert_eq(p.v[2].n, 0);
}

Test(router, empty_param_does_not_match)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "/a//items", &r, &p), EKV_ENO_ROUTE);
}

Test(router, unknown_path_is_no_route)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "/nope", &r, &p), EKV_ENO_ROUTE);
    cr_assert_eq(match(HTTP_GET, "/healthz/extra", &r, &p), EKV_ENO_ROUTE);
    cr_assert_eq(match(HTTP_GET, "/a/1/items/", &r, &p), EKV_ENO_ROUTE);
    cr_assert_eq(match(HTTP_GET, "", &r, &p), EKV_ENO_ROUTE);
}

Test(router, known_path_wrong_method)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_DELETE, "/a/1/items", &r, &p), EKV_EBAD_METHOD);
    cr_assert_eq(match(HTTP_GET, "/a/1/bulk/delete", &r, &p), EKV_EBAD_METHOD);
}

Test(router, literal_prefix_is_not_a_match)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_PUT, "/a/1/bulkx", &r, &p), EKV_ENO_ROUTE);
    cr_assert_eq(match(HTTP_PUT, "/a/1/bul", &r, &p), EKV_ENO_ROUTE);
}

Test(router, long_paths_reach_star_routes_only)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    const char *path = "/a/1/items/2/values/s1/s2/s3/s4/s5/s6/s7/s8/s9/s10/s11/s12/s13";
    cr_assert_eq(match(HTTP_GET, path, &r, &p), 0);
    cr_assert_str_eq(r->name, "value");
    cr_assert_str_eq(p.v[2].p, "s1/s2/s3/s4/s5/s6/s7/s8/s9/s10/s11/s12/s13");
    cr_assert_eq(match(HTTP_GET, "/a/1/items/2/3/4/5/6/7/8/9/10/11/12/13/14", &r, &p),
                 EKV_ENO_ROUTE);
}

Test(router, malformed_patterns_are_refused)
{
    static const ekv_route_t bad_star[] = {{HTTP_GET, "/a/*/b", "x", 0, NULL, 0, 0, 0, NULL}};
    static const ekv_route_t no_slash[] = {{HTTP_GET, "a/b", "x", 0, NULL, 0, 0, 0, NULL}};
    ekv_router_t r;
    cr_assert_eq(ekv_router_init(&r, bad_star, 1), EKV_EINTERNAL);
    cr_assert_eq(ekv_router_init(&r, no_slash, 1), EKV_EINTERNAL);
}

Test(router, path_without_leading_slash_matches_nothing)
{
    const ekv_route_t *r;
    ekv_route_params_t p;
    cr_assert_eq(match(HTTP_GET, "healthz", &r, &p), EKV_ENO_ROUTE);
    cr_assert_eq(match(HTTP_GET, "*", &r, &p), EKV_ENO_ROUTE);
}
