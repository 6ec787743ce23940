#include "server/http/router.h"
#include "common/errors.h"

#include <string.h>

int ekv_router_init(ekv_router_t *r, const ekv_route_t *table, size_t n)
{
    if (n > EKV_ROUTER_MAX_ROUTES)
        return EKV_EINTERNAL;
    memset(r, 0, sizeof(*r));
    for (size_t k = 0; k < n; k++) {
        ekv_compiled_route_t *c = &r->routes[k];
        const char *p = table[k].pattern;
        c->route = &table[k];
        int params = 0;
        while (*p) {
            if (*p != '/')
                return EKV_EINTERNAL;
            p++;
            const char *end = strchr(p, '/');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            if (len == 1 && p[0] == '*') {
                if (end || ++params > EKV_ROUTE_MAX_PARAMS)
                    return EKV_EINTERNAL;
                c->star = 1;
                break;
            }
            if (c->nseg >= EKV_ROUTE_MAX_SEGMENTS)
                return EKV_EINTERNAL;
            ekv_route_seg_t *s = &c->seg[c->nseg++];
            if (p[0] == ':') {
                if (++params > EKV_ROUTE_MAX_PARAMS)
                    return EKV_EINTERNAL;
                s->kind = EKV_SEG_PARAM;
            } else {
                s->kind = EKV_SEG_LIT;
                s->lit = p;
                s->len = len;
            }
            p += len;
        }
    }
    r->n = n;
    return 0;
}

/* Match one compiled route against the split path; 1 on match (params filled). */
static int match_route(const ekv_compiled_route_t *c, const ekv_slice_t *seg, int nseg,
                       const char *path, size_t path_len, ekv_route_params_t *pr)
{
    if (c->star ? nseg < c->nseg + 1 : nseg != c->nseg)
        return 0;
    pr->n = 0;
    for (int i = 0; i < c->nseg; i++) {
        const ekv_route_seg_t *s = &c->seg[i];
        if (s->kind == EKV_SEG_LIT) {
            if (seg[i].n != s->len || memcmp(seg[i].p, s->lit, s->len) != 0)
                return 0;
        } else {
            if (seg[i].n == 0)
                return 0;
            pr->v[pr->n++] = seg[i];
        }
    }
    if (c->star) { /* the rest of the path after the fixed segments' '/' */
        const char *rest = seg[c->nseg].p;
        pr->v[pr->n].p = rest;
        pr->v[pr->n].n = (size_t)(path + path_len - rest);
        pr->n++;
    }
    return 1;
}

int ekv_router_match(const ekv_router_t *r, int method, const char *path, size_t path_len,
                     const ekv_route_t **out, ekv_route_params_t *params)
{
    /* Split once: "/a/b" -> ["a", "b"]; a path that does not start with '/' matches nothing.
     * Segments past the limit are only reachable through a star, which needs the start of
     * segment nseg only, so we stop splitting there. */
    ekv_slice_t seg[EKV_ROUTE_MAX_SEGMENTS + 1];
    int nseg = 0;
    if (path_len == 0 || path[0] != '/')
        return EKV_ENO_ROUTE;
    size_t i = 1;
    for (;;) {
        const char *start = path + i;
        const char *slash = memchr(start, '/', path_len - i);
        size_t len = slash ? (size_t)(slash - start) : path_len - i;
        seg[nseg].p = start;
        seg[nseg].n = len;
        nseg++;
        if (!slash || nseg == EKV_ROUTE_MAX_SEGMENTS + 1)
            break;
        i += len + 1;
    }
    int over =
        nseg == EKV_ROUTE_MAX_SEGMENTS + 1 && seg[nseg - 1].p + seg[nseg - 1].n < path + path_len;
    int path_matched = 0;
    ekv_route_params_t tmp;
    for (size_t k = 0; k < r->n; k++) {
        const ekv_compiled_route_t *c = &r->routes[k];
        if (over && !c->star)
            continue;
        if (!match_route(c, seg, over ? EKV_ROUTE_MAX_SEGMENTS + 1 : nseg, path, path_len, &tmp))
            continue;
        if (c->route->method == method) {
            *out = c->route;
            *params = tmp;
            return 0;
        }
        path_matched = 1;
    }
    return path_matched ? EKV_EBAD_METHOD : EKV_ENO_ROUTE;
}
