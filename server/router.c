#include "server/router.h"
#include "common/errors.h"

#include <string.h>

/* Match one pattern against the path; 1 on match (params filled), else 0. */
static int match_pattern(const char *pat, const char *path, size_t len, ekv_route_params_t *pr)
{
    size_t i = 0; /* position in path */
    pr->n = 0;
    while (*pat) {
        if (*pat != '/' || i >= len || path[i] != '/')
            return 0;
        pat++;
        i++;
        const char *seg_end = strchr(pat, '/');
        size_t seg_len = seg_end ? (size_t)(seg_end - pat) : strlen(pat);
        if (seg_len == 1 && pat[0] == '*' && !seg_end) {
            if (pr->n >= EKV_ROUTE_MAX_PARAMS)
                return 0;
            pr->v[pr->n].p = path + i;
            pr->v[pr->n].n = len - i;
            pr->n++;
            return 1;
        }
        const char *ps = path + i;
        const char *pe = memchr(ps, '/', len - i);
        size_t plen = pe ? (size_t)(pe - ps) : len - i;
        if (pat[0] == ':') {
            if (plen == 0 || pr->n >= EKV_ROUTE_MAX_PARAMS)
                return 0;
            pr->v[pr->n].p = ps;
            pr->v[pr->n].n = plen;
            pr->n++;
        } else if (plen != seg_len || memcmp(ps, pat, seg_len) != 0) {
            return 0;
        }
        i += plen;
        pat += seg_len;
    }
    return i == len;
}

int ekv_router_match(const ekv_route_t *table, size_t n, int method, const char *path,
                     size_t path_len, const ekv_route_t **out, ekv_route_params_t *params)
{
    int path_matched = 0;
    ekv_route_params_t tmp;
    for (size_t k = 0; k < n; k++) {
        if (!match_pattern(table[k].pattern, path, path_len, &tmp))
            continue;
        if (table[k].method == method) {
            *out = &table[k];
            *params = tmp;
            return 0;
        }
        path_matched = 1;
    }
    return path_matched ? EKV_EBAD_METHOD : EKV_ENO_ROUTE;
}
