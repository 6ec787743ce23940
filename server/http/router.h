/*
 * router.h - the route table: method + path pattern -> route. Pure, no allocation.
 *
 * Patterns are '/'-separated segments: literal text, ":name" (one non-empty segment) or a
 * final "*" (the rest of the path, possibly empty, slashes included: KV key names). Captured
 * values are raw (still percent-encoded) slices of the path, in pattern order.
 *
 * ekv_router_init compiles the table once (patterns split into segments); a match splits
 * the path once and compares segments, rejecting routes by segment count first.
 * Matching answers 0 with the route, EKV_ENO_ROUTE when no pattern matches the path, or
 * EKV_EBAD_METHOD when some pattern matches the path but none with this method.
 */
#ifndef EKV_SERVER_HTTP_ROUTER_H
#define EKV_SERVER_HTTP_ROUTER_H

#include <stddef.h>

#define EKV_ROUTE_MAX_PARAMS   4
#define EKV_ROUTE_MAX_SEGMENTS 12
#define EKV_ROUTER_MAX_ROUTES  96

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
    const char *name;      /* metrics label, e.g. "kv_value_get" (unique) */
    int id;                /* unused by the router */
    void (*handler)(void); /* opaque to the router (cast by the table owner) */
    size_t body_limit;     /* max request body for this route */
    unsigned flags;        /* owner-defined (auth requirements, ...) */
    unsigned kind;         /* owner-defined (what the route does, see server/api/api.h) */
    const char *op;        /* owner-defined (operation name for messages), may be NULL */
} ekv_route_t;

typedef enum { EKV_SEG_LIT, EKV_SEG_PARAM, EKV_SEG_STAR } ekv_seg_kind_t;

typedef struct {
    ekv_seg_kind_t kind;
    const char *lit; /* EKV_SEG_LIT: points into the pattern */
    size_t len;
} ekv_route_seg_t;

typedef struct {
    const ekv_route_t *route;
    int nseg; /* segments before a trailing star */
    int star; /* pattern ends with "*" */
    ekv_route_seg_t seg[EKV_ROUTE_MAX_SEGMENTS];
} ekv_compiled_route_t;

typedef struct {
    ekv_compiled_route_t routes[EKV_ROUTER_MAX_ROUTES];
    size_t n;
} ekv_router_t;

/* Compile a table (kept by reference). 0, or EKV_EINTERNAL for a malformed pattern or too
 * many routes/segments (a programming error: checked by the unit tests). */
int ekv_router_init(ekv_router_t *r, const ekv_route_t *table, size_t n);
int ekv_router_match(const ekv_router_t *r, int method, const char *path, size_t path_len,
                     const ekv_route_t **out, ekv_route_params_t *params);

#endif
