/*
 * list_opts.c - storage list options (list_opts.h).
 */
#include "server/api/do/list_opts.h"
#include "common/codec.h"
#include "common/errors.h"
#include "server/http/urlcodec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ekv_do_list_range_free(ekv_do_list_range_t *r)
{
    free(r->lo);
    free(r->hi);
    memset(r, 0, sizeof(*r));
}

/* The cursor after the empty key: not base64url (so no other key's cursor), URL-safe. */
#define EMPTY_KEY_CURSOR "."

static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

int ekv_do_list_range_contains(const ekv_do_list_range_t *r, const char *key, size_t len)
{
    if (r->empty || keycmp(key, len, r->lo, r->lo_len) < 0)
        return 0;
    return !r->has_hi || keycmp(key, len, r->hi, r->hi_len) < 0;
}

char *ekv_do_list_cursor_encode(const char *key, size_t len)
{
    char *out = malloc(ekv_base64_encoded_len(len) + 2);
    if (!out)
        return NULL;
    if (!len) /* the empty key: base64url("") is "", which reads as "no cursor" */
        return strcpy(out, EMPTY_KEY_CURSOR);
    size_t n = ekv_base64url_encode((const uint8_t *)key, len, out);
    out[n] = '\0';
    return out;
}

/* Replace the bound with (p, n) copied, plus an extra 0 byte when plus0. */
static int set_bound(char **b, size_t *bl, const char *p, size_t n, int plus0)
{
    char *c = malloc(n + 2);
    if (!c)
        return EKV_ENOMEM;
    if (n)
        memcpy(c, p, n);
    if (plus0)
        c[n++] = '\0';
    free(*b);
    *b = c;
    *bl = n;
    return 0;
}

/* lo = max(lo, p + ("\0" when plus0)): p + "\0" is the smallest key after p. */
static int raise_lo(ekv_do_list_range_t *r, const char *p, size_t n, int plus0)
{
    char *c = NULL;
    size_t cl = 0;
    if (set_bound(&c, &cl, p, n, plus0))
        return EKV_ENOMEM;
    if (keycmp(c, cl, r->lo, r->lo_len) > 0) {
        free(r->lo);
        r->lo = c;
        r->lo_len = cl;
    } else {
        free(c);
    }
    return 0;
}

/* hi = min(hi, p). */
static int lower_hi(ekv_do_list_range_t *r, const char *p, size_t n)
{
    if (!r->has_hi || keycmp(p, n, r->hi, r->hi_len) < 0) {
        r->has_hi = 1;
        return set_bound(&r->hi, &r->hi_len, p, n, 0);
    }
    return 0;
}

/* A decoded query value: 1 present (*v malloc'd), 0 absent, < 0 error (msg set). */
static int opt(const ekv_query_t *q, const char *name, char **v, size_t *vl, char *msg, size_t cap)
{
    *v = NULL;
    *vl = 0;
    char *buf = malloc(EKV_DO_LIST_MAX_OPT + 1);
    if (!buf)
        return EKV_ENOMEM;
    int rc = ekv_query_get(q, name, buf, EKV_DO_LIST_MAX_OPT + 1, vl);
    if (rc <= 0) {
        free(buf);
        if (rc == 0)
            return 0;
        snprintf(msg, cap,
                 rc == EKV_QUERY_REPEATED ? "list: '%s' is given more than once"
                                          : "list: '%s' is malformed or longer than %d bytes",
                 name, EKV_DO_LIST_MAX_OPT);
        return EKV_EDO_BAD_LIST;
    }
    *v = buf;
    return 1;
}

int ekv_do_list_parse(const char *query, size_t len, ekv_do_list_range_t *out, char *msg,
                      size_t cap)
{
    memset(out, 0, sizeof(*out));
    out->limit = EKV_DO_LIST_MAX_LIMIT;
    ekv_query_t q;
    if (ekv_query_parse(query, len, &q)) {
        snprintf(msg, cap, "list: too many query parameters");
        return EKV_EDO_BAD_LIST;
    }
    char *prefix = NULL, *start = NULL, *after = NULL, *end = NULL, *rev = NULL, *lim = NULL,
         *cur = NULL;
    size_t pl, sl, al, el, rl, ll, cl;
    int rc = 0, hp, hs, ha, he, hr, hl, hc;
    if ((hp = opt(&q, "prefix", &prefix, &pl, msg, cap)) < 0 ||
        (hs = opt(&q, "start", &start, &sl, msg, cap)) < 0 ||
        (ha = opt(&q, "startAfter", &after, &al, msg, cap)) < 0 ||
        (he = opt(&q, "end", &end, &el, msg, cap)) < 0 ||
        (hr = opt(&q, "reverse", &rev, &rl, msg, cap)) < 0 ||
        (hl = opt(&q, "limit", &lim, &ll, msg, cap)) < 0 ||
        (hc = opt(&q, "cursor", &cur, &cl, msg, cap)) < 0) {
        rc = EKV_EDO_BAD_LIST;
        goto out;
    }
    if (hs && ha) {
        snprintf(msg, cap, "list() cannot be called with both start and startAfter values.");
        rc = EKV_EDO_BAD_LIST;
        goto out;
    }
    if (hr) {
        /* by length: a decoded value may hold a NUL ("true%00") */
        if (rl == 4 && !memcmp(rev, "true", 4))
            out->reverse = 1;
        else if (rl != 5 || memcmp(rev, "false", 5) != 0) {
            snprintf(msg, cap, "list: reverse must be true or false");
            rc = EKV_EDO_BAD_LIST;
            goto out;
        }
    }
    if (hl) {
        char *e = NULL;
        long v = ll && ll < 10 && lim[0] >= '0' && lim[0] <= '9' ? strtol(lim, &e, 10) : -1;
        if (!e || e != lim + ll || v < 1 || v > EKV_DO_LIST_MAX_LIMIT) { /* "5%00" too */
            snprintf(msg, cap, "list: limit must be an integer from 1 to %d",
                     EKV_DO_LIST_MAX_LIMIT);
            rc = EKV_EDO_BAD_LIST;
            goto out;
        }
        out->limit = (size_t)v;
    }
    if ((rc = set_bound(&out->lo, &out->lo_len, "", 0, 0)))
        goto out;
    if (hp && pl) {
        if ((rc = raise_lo(out, prefix, pl, 0)))
            goto out;
        char *succ = malloc(pl);
        if (!succ) {
            rc = EKV_ENOMEM;
            goto out;
        }
        memcpy(succ, prefix, pl);
        size_t n = pl;
        while (n && (unsigned char)succ[n - 1] == 0xff)
            n--;
        if (n) {
            succ[n - 1]++;
            rc = lower_hi(out, succ, n);
        }
        free(succ);
        if (rc)
            goto out;
    }
    if (hs && (rc = raise_lo(out, start, sl, 0)))
        goto out;
    if (ha && (rc = raise_lo(out, after, al, 1)))
        goto out;
    if (he && (rc = lower_hi(out, end, el)))
        goto out;
    if (hc && cl) {
        uint8_t *k = malloc(ekv_base64_decoded_max(cl) + 1);
        size_t kl = 0;
        int empty_key = cl == 1 && cur[0] == EMPTY_KEY_CURSOR[0];
        int bad = !k || (!empty_key && ekv_base64url_decode(cur, cl, k, &kl));
        if (bad) {
            free(k);
            snprintf(msg, cap, "list: invalid list cursor");
            rc = k ? EKV_EDO_BAD_LIST : EKV_ENOMEM;
            goto out;
        }
        /* the page continues after (forward) or before (reverse) the last key returned */
        rc = out->reverse ? lower_hi(out, (char *)k, kl) : raise_lo(out, (char *)k, kl, 1);
        free(k);
        if (rc)
            goto out;
    }
    out->empty = out->has_hi && keycmp(out->lo, out->lo_len, out->hi, out->hi_len) >= 0;
out:
    free(prefix);
    free(start);
    free(after);
    free(end);
    free(rev);
    free(lim);
    free(cur);
    if (rc)
        ekv_do_list_range_free(out);
    return rc;
}
