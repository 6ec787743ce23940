/* Unit tests for server/api/do/list_opts.c: the storage list query -> key range + cursor,
 * with a seeded property test against a brute-force model of Cloudflare's list() options. */
#include "server/api/do/list_opts.h"

#include "common/errors.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MEM(p, n) ((struct cr_mem){(p), (n)})
#define S(lit)    lit, (sizeof(lit) - 1)

static char msg[512];

static int parse(const char *q, ekv_do_list_range_t *r)
{
    memset(msg, 0, sizeof(msg));
    return ekv_do_list_parse(q, strlen(q), r, msg, sizeof(msg));
}

/* ---- error texts ------------------------------------------------------------------------ */

Test(do_list_opts, start_and_start_after)
{
    ekv_do_list_range_t r;
    cr_assert(eq(int, parse("start=a&startAfter=b", &r), EKV_EDO_BAD_LIST));
    cr_assert(eq(str, msg, "list() cannot be called with both start and startAfter values."));
    cr_assert(eq(ptr, r.lo, NULL));
    cr_assert(eq(ptr, r.hi, NULL));
    /* empty values still count as given */
    cr_assert(eq(int, parse("startAfter=&start=", &r), EKV_EDO_BAD_LIST));
    cr_assert(eq(str, msg, "list() cannot be called with both start and startAfter values."));
}

Test(do_list_opts, bad_limit)
{
    static const char *const bad[] = {"limit=0",
                                      "limit=1001",
                                      "limit=abc",
                                      "limit=",
                                      "limit=-1",
                                      "limit=1.5",
                                      "limit=+5",
                                      "limit=5x",
                                      "limit=%205",
                                      "limit=5+",
                                      "limit=99999999999999999999",
                                      "limit=5%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_do_list_range_t r;
        cr_assert(eq(int, parse(bad[i], &r), EKV_EDO_BAD_LIST), "%s", bad[i]);
        cr_assert(eq(str, msg, "list: limit must be an integer from 1 to 1000"), "%s", bad[i]);
    }
    ekv_do_list_range_t r;
    cr_assert(eq(int, parse("limit=1", &r), 0));
    cr_assert(eq(sz, r.limit, 1));
    ekv_do_list_range_free(&r);
    cr_assert(eq(int, parse("limit=1000", &r), 0));
    cr_assert(eq(sz, r.limit, 1000));
    ekv_do_list_range_free(&r);
    cr_assert(eq(int, parse("", &r), 0));
    cr_assert(eq(sz, r.limit, EKV_DO_LIST_MAX_LIMIT));
    cr_assert(eq(int, r.reverse, 0));
    cr_assert(eq(int, r.has_hi, 0));
    cr_assert(eq(int, r.empty, 0));
    cr_assert(eq(sz, r.lo_len, 0));
    ekv_do_list_range_free(&r);
}

Test(do_list_opts, bad_reverse)
{
    static const char *const bad[] = {"reverse=yes", "reverse=1", "reverse=TRUE",
                                      "reverse=", "reverse=true%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_do_list_range_t r;
        cr_assert(eq(int, parse(bad[i], &r), EKV_EDO_BAD_LIST), "%s", bad[i]);
        cr_assert(eq(str, msg, "list: reverse must be true or false"), "%s", bad[i]);
    }
    ekv_do_list_range_t r;
    cr_assert(eq(int, parse("reverse=true", &r), 0));
    cr_assert(eq(int, r.reverse, 1));
    ekv_do_list_range_free(&r);
    cr_assert(eq(int, parse("reverse=false", &r), 0));
    cr_assert(eq(int, r.reverse, 0));
    ekv_do_list_range_free(&r);
}

Test(do_list_opts, bad_cursor)
{
    static const char *const bad[] = {"cursor=!!!!", "cursor=a", "cursor=%00%00", "cursor=ab*d"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ekv_do_list_range_t r;
        cr_assert(eq(int, parse(bad[i], &r), EKV_EDO_BAD_LIST), "%s", bad[i]);
        cr_assert(eq(str, msg, "list: invalid list cursor"), "%s", bad[i]);
    }
}

Test(do_list_opts, malformed_and_repeated)
{
    ekv_do_list_range_t r;
    cr_assert(eq(int, parse("prefix=%zz", &r), EKV_EDO_BAD_LIST));
    cr_assert(eq(str, msg, "list: 'prefix' is malformed or longer than 8192 bytes"));
    cr_assert(eq(int, parse("end=a&end=b", &r), EKV_EDO_BAD_LIST));
    cr_assert(eq(str, msg, "list: 'end' is given more than once"));
    /* 8192 bytes is the max, 8193 refused */
    char *q = malloc(8300);
    int w = sprintf(q, "prefix=");
    memset(q + w, 'p', 8192);
    q[w + 8192] = '\0';
    cr_assert(eq(int, parse(q, &r), 0), "%s", msg);
    cr_assert(eq(sz, r.lo_len, 8192));
    ekv_do_list_range_free(&r);
    q[w + 8192] = 'p';
    q[w + 8193] = '\0';
    cr_assert(eq(int, parse(q, &r), EKV_EDO_BAD_LIST));
    free(q);
}

Test(do_list_opts, cursor_round_trip_and_ranges)
{
    ekv_do_list_range_t r;
    /* forward: after "b" means "b" excluded, "b\0" included */
    char *c = ekv_do_list_cursor_encode(S("b"));
    cr_assert(ne(ptr, c, NULL));
    char q[256];
    snprintf(q, sizeof(q), "cursor=%s", c);
    cr_assert(eq(int, parse(q, &r), 0), "%s", msg);
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("b")), 0));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("a")), 0));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, "b\0", 2), 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("ba")), 1));
    ekv_do_list_range_free(&r);
    /* reverse: before "b" */
    snprintf(q, sizeof(q), "reverse=true&cursor=%s", c);
    cr_assert(eq(int, parse(q, &r), 0), "%s", msg);
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("b")), 0));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("ab")), 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, "", 0), 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("ba")), 0));
    ekv_do_list_range_free(&r);
    free(c);
    /* the empty key is a key: its cursor must not read as "no cursor" (a forward page ending
     * with "" would otherwise restart the list, or end it since "" means "last page") */
    c = ekv_do_list_cursor_encode("", 0);
    cr_assert(ne(ptr, c, NULL));
    cr_assert(ne(str, c, ""));
    snprintf(q, sizeof(q), "cursor=%s", c);
    cr_assert(eq(int, parse(q, &r), 0), "%s", msg);
    cr_assert(eq(int, ekv_do_list_range_contains(&r, "", 0), 0));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, "\0", 1), 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("a")), 1));
    ekv_do_list_range_free(&r);
    snprintf(q, sizeof(q), "reverse=true&cursor=%s", c);
    cr_assert(eq(int, parse(q, &r), 0), "%s", msg);
    cr_assert(eq(int, r.empty, 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, "", 0), 0));
    ekv_do_list_range_free(&r);
    free(c);
    /* a cursor of arbitrary bytes (base64url only: no '+', '/', '=') */
    char bytes[256];
    for (int i = 0; i < 256; i++)
        bytes[i] = (char)(255 - i);
    c = ekv_do_list_cursor_encode(bytes, sizeof(bytes));
    cr_assert(eq(ptr, strpbrk(c, "+/="), NULL), "%s", c);
    free(c);
    /* prefix of 0xff bytes: no upper bound */
    cr_assert(eq(int, parse("prefix=%FF%ff", &r), 0));
    cr_assert(eq(int, r.has_hi, 0));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("\xff\xff")), 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("\xff\xff\xff\x01")), 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("\xff\xfe")), 0));
    ekv_do_list_range_free(&r);
    /* prefix "a\xff": [a\xff, b) */
    cr_assert(eq(int, parse("prefix=a%FF", &r), 0));
    cr_assert(eq(int, r.has_hi, 1));
    cr_assert(eq(mem, MEM(r.hi, r.hi_len), MEM("b", 1)));
    ekv_do_list_range_free(&r);
    /* end <= start: empty */
    cr_assert(eq(int, parse("start=b&end=b", &r), 0));
    cr_assert(eq(int, r.empty, 1));
    cr_assert(eq(int, ekv_do_list_range_contains(&r, S("b")), 0));
    ekv_do_list_range_free(&r);
}

/* ---- property test ---------------------------------------------------------------------- */

/* xorshift64*: deterministic across platforms */
static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}
static uint32_t rnd_below(uint32_t n)
{
    return rnd() % n;
}

#define MAXK 4
typedef struct {
    unsigned char b[MAXK];
    size_t n;
} mkey_t;

static const unsigned char ALPHA[] = {0x00, ' ', 'a', 'b', 0xff};

static void rand_key(mkey_t *k, size_t maxlen)
{
    k->n = rnd_below((uint32_t)maxlen + 1);
    for (size_t i = 0; i < k->n; i++)
        k->b[i] = ALPHA[rnd_below(sizeof(ALPHA))];
}

/* Independent model: unsigned lexicographic byte comparison. */
static int model_cmp(const mkey_t *a, const mkey_t *b)
{
    for (size_t i = 0; i < a->n && i < b->n; i++)
        if (a->b[i] != b->b[i])
            return a->b[i] < b->b[i] ? -1 : 1;
    return a->n == b->n ? 0 : (a->n < b->n ? -1 : 1);
}
static int model_cmp_q(const void *a, const void *b)
{
    return model_cmp(a, b);
}
static int model_has_prefix(const mkey_t *k, const mkey_t *p)
{
    return k->n >= p->n && (p->n == 0 || memcmp(k->b, p->b, p->n) == 0);
}

typedef struct {
    int has_prefix, has_start, has_after, has_end, reverse, has_limit;
    mkey_t prefix, start, after, end;
    size_t limit;
} opts_t;

/* Cloudflare's list(): keys with the prefix, >= start, > startAfter, < end. */
static int model_keep(const opts_t *o, const mkey_t *k)
{
    if (o->has_prefix && !model_has_prefix(k, &o->prefix))
        return 0;
    if (o->has_start && model_cmp(k, &o->start) < 0)
        return 0;
    if (o->has_after && model_cmp(k, &o->after) <= 0)
        return 0;
    if (o->has_end && model_cmp(k, &o->end) >= 0)
        return 0;
    return 1;
}

/* Append name=<percent-encoded value> with a random mix of encodings. */
static size_t put_param(char *q, size_t w, const char *name, const unsigned char *v, size_t n)
{
    w += (size_t)sprintf(q + w, "%s%s=", w ? "&" : "", name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = v[i];
        int how = (int)rnd_below(3);
        if (c == ' ' && how == 0)
            q[w++] = '+';
        else if ((c == 'a' || c == 'b') && how != 2)
            q[w++] = (char)c;
        else
            w += (size_t)sprintf(q + w, how == 1 ? "%%%02x" : "%%%02X", c);
    }
    q[w] = '\0';
    return w;
}

static size_t build_query(const opts_t *o, char *q)
{
    size_t w = 0;
    q[0] = '\0';
    /* random order of parameters */
    int order[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 5; i > 0; i--) {
        int j = (int)rnd_below((uint32_t)i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < 6; i++) {
        switch (order[i]) {
        case 0:
            if (o->has_prefix)
                w = put_param(q, w, "prefix", o->prefix.b, o->prefix.n);
            break;
        case 1:
            if (o->has_start)
                w = put_param(q, w, "start", o->start.b, o->start.n);
            break;
        case 2:
            if (o->has_after)
                w = put_param(q, w, "startAfter", o->after.b, o->after.n);
            break;
        case 3:
            if (o->has_end)
                w = put_param(q, w, "end", o->end.b, o->end.n);
            break;
        case 4:
            if (o->reverse || rnd_below(4) == 0)
                w += (size_t)sprintf(q + w, "%sreverse=%s", w ? "&" : "",
                                     o->reverse ? "true" : "false");
            break;
        case 5:
            if (o->has_limit)
                w += (size_t)sprintf(q + w, "%slimit=%zu", w ? "&" : "", o->limit);
            break;
        }
    }
    return w;
}

static void key_str(const mkey_t *k, char *out)
{
    out[0] = '\0';
    for (size_t i = 0; i < k->n; i++)
        sprintf(out + strlen(out), "%02x", k->b[i]);
    if (!k->n)
        strcpy(out, "''");
}

#define MAXSET 40
#define ITERS  500

Test(do_list_opts, property_range_and_paging)
{
    rng_state = 0x9e3779b97f4a7c15ULL;
    size_t total_pages = 0, total_items = 0, both_errors = 0;
    for (int iter = 0; iter < ITERS; iter++) {
        /* a sorted set of distinct keys */
        mkey_t set[MAXSET];
        size_t nset = 0, want = rnd_below(MAXSET);
        for (size_t t = 0; t < want * 3 && nset < want; t++) {
            mkey_t k;
            rand_key(&k, 3);
            int dup = 0;
            for (size_t i = 0; i < nset && !dup; i++)
                dup = model_cmp(&set[i], &k) == 0;
            if (!dup)
                set[nset++] = k;
        }
        qsort(set, nset, sizeof(set[0]), model_cmp_q);

        opts_t o;
        memset(&o, 0, sizeof(o));
        if ((o.has_prefix = rnd_below(3) == 0))
            rand_key(&o.prefix, 2);
        int lower = (int)rnd_below(5); /* 0,1: start; 2,3: startAfter; 4: neither */
        if ((o.has_start = lower < 2))
            rand_key(&o.start, 3);
        if ((o.has_after = lower >= 2 && lower < 4))
            rand_key(&o.after, 3);
        if ((o.has_end = rnd_below(2) == 0))
            rand_key(&o.end, 3);
        o.reverse = rnd_below(2) == 0;
        if ((o.has_limit = rnd_below(4) != 0))
            o.limit = 1 + rnd_below(5);
        size_t limit = o.has_limit ? o.limit : EKV_DO_LIST_MAX_LIMIT;

        char q[1024];
        size_t ql = build_query(&o, q);

        /* sometimes, both start and startAfter: refused */
        if (rnd_below(20) == 0) {
            char q2[1100];
            snprintf(q2, sizeof(q2), "%s%sstart=a&startAfter=b", q, ql ? "&" : "");
            ekv_do_list_range_t r2;
            if (!o.has_start && !o.has_after) {
                cr_assert(eq(int, parse(q2, &r2), EKV_EDO_BAD_LIST), "%s", q2);
                cr_assert(
                    eq(str, msg, "list() cannot be called with both start and startAfter values."));
                both_errors++;
            }
        }

        /* the model's answer, in list order */
        mkey_t exp[MAXSET];
        size_t nexp = 0;
        for (size_t i = 0; i < nset; i++) {
            size_t j = o.reverse ? nset - 1 - i : i;
            if (model_keep(&o, &set[j]))
                exp[nexp++] = set[j];
        }

        /* range check over every key in the set, and over every bound too */
        ekv_do_list_range_t r;
        cr_assert(eq(int, parse(q, &r), 0), "iter %d: %s: %s", iter, q, msg);
        cr_assert(eq(int, r.reverse, o.reverse), "%s", q);
        cr_assert(eq(sz, r.limit, limit), "%s", q);
        for (size_t i = 0; i < nset; i++) {
            char ks[16];
            key_str(&set[i], ks);
            cr_assert(eq(int, ekv_do_list_range_contains(&r, (const char *)set[i].b, set[i].n),
                         model_keep(&o, &set[i])),
                      "iter %d query %s key %s", iter, q, ks);
        }
        const mkey_t *probes[] = {&o.prefix, &o.start, &o.after, &o.end};
        for (size_t i = 0; i < 4; i++) {
            char ks[16];
            key_str(probes[i], ks);
            cr_assert(eq(int,
                         ekv_do_list_range_contains(&r, (const char *)probes[i]->b, probes[i]->n),
                         model_keep(&o, probes[i])),
                      "iter %d query %s probe %s", iter, q, ks);
        }
        if (r.empty)
            cr_assert(eq(sz, nexp, 0), "range empty but the model keeps keys: %s", q);
        ekv_do_list_range_free(&r);

        /* paging: each page = the next `limit` keys in range, in order; the cursor is the
         * last key returned. Pages concatenated must be exactly the model's list. */
        mkey_t got[MAXSET];
        size_t ngot = 0, pages = 0;
        char *cursor = NULL;
        for (;;) {
            char pq[1200];
            if (cursor)
                snprintf(pq, sizeof(pq), "%s%scursor=%s", q, ql ? "&" : "", cursor);
            else
                snprintf(pq, sizeof(pq), "%s", q);
            cr_assert(eq(int, parse(pq, &r), 0), "%s: %s", pq, msg);
            size_t page = 0;
            for (size_t i = 0; i < nset && page < r.limit; i++) {
                size_t j = r.reverse ? nset - 1 - i : i;
                if (!ekv_do_list_range_contains(&r, (const char *)set[j].b, set[j].n))
                    continue;
                cr_assert(lt(sz, ngot, (size_t)MAXSET), "more items than keys: %s", pq);
                got[ngot++] = set[j];
                page++;
            }
            ekv_do_list_range_free(&r);
            pages++;
            cr_assert(le(sz, pages, (size_t)MAXSET + 2), "paging does not end: %s", q);
            free(cursor);
            cursor = NULL;
            if (page < limit)
                break;
            const mkey_t *last = &got[ngot - 1];
            cursor = ekv_do_list_cursor_encode((const char *)last->b, last->n);
            cr_assert(ne(ptr, cursor, NULL));
        }
        total_pages += pages;
        total_items += ngot;
        cr_assert(eq(sz, ngot, nexp), "iter %d query %s: %zu items paged, %zu expected", iter, q,
                  ngot, nexp);
        for (size_t i = 0; i < nexp; i++) {
            char a[16], b[16];
            key_str(&got[i], a);
            key_str(&exp[i], b);
            cr_assert(eq(int, model_cmp(&got[i], &exp[i]), 0),
                      "iter %d query %s item %zu: %s != %s", iter, q, i, a, b);
        }
    }
    /* the generator exercised what it should */
    cr_assert(gt(sz, total_items, (size_t)ITERS));
    cr_assert(gt(sz, total_pages, (size_t)ITERS * 2));
    cr_assert(gt(sz, both_errors, 0));
}
