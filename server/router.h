/*
 * router.h - the route table: method + path pattern -> route. Pure, no allocation.
 *
 * Patterns are '/'-separated segments: literal text, ":name" (one non-empty segment) or a
 * final "*" (the rest of the path, possibly empty, slashes included: KV key names). Captured
 * values are raw (still percent-encoded) slices of the path, in pattern order.
 *
 * Matching answers 0 with the route, EKV_ENO_ROUTE when no pattern matches the path, or
 * EKV_EBAD_METHOD when some pattern matches the path but none with this method.
 */
#ifndef EKV_SERVER_ROUTER_H
#define EKV_SERVER_ROUTER_H

#include <stddef.h>

#define EKV_ROUTE_MAX_PARAMS 4

typedef struct {
    const char *p;
    size_t n;
} ekv_slice_t;

typedef struct {
    ekv_slice_t v[EKV_ROUTE_MAX_PARAMS];
    int n;
} ekv_route_params_t;

typedef struct ekv_route_s {
    int method;            /* llhttp_method_t */
    const char *pattern;   /* e.g. "/client/v4/accounts/:a/storage/kv/namespaces/:ns/values/ *" */
    const char *name;      /* metrics label, e.g. "kv_value_get" */
    int id;                /* index into the table (set by the table owner) */
    void (*handler)(void); /* opaque to the router (cast by the table owner) */
    size_t body_limit;     /* max request body for this route */
    unsigned flags;        /* owner-defined (auth requirements, ...) */
} ekv_route_t;

int ekv_router_match(const ekv_route_t *table, size_t n, int method, const char *path,
                     size_t path_len, const ekv_route_t **out, ekv_route_params_t *params);

#endif
