#include "server/api/catalog.h"
#include "common/errors.h"

#include <stdlib.h>
#include <string.h>

/* A growable array of fixed-size records; lookups are linear over at most a few thousand
 * entries, done once per request on the loop thread. */
typedef struct {
    void *items;
    size_t n, cap, size;
} vec_t;

struct ekv_catalog_s {
    vec_t accounts; /* ekv_account_t */
    vec_t tokens;   /* ekv_token_t */
    vec_t ns;       /* ekv_namespace_t */
};

static void *vec_at(const vec_t *v, size_t i)
{
    return (char *)v->items + i * v->size;
}

static void *vec_push(vec_t *v)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void *p = realloc(v->items, cap * v->size);
        if (!p)
            return NULL;
        v->items = p;
        v->cap = cap;
    }
    return vec_at(v, v->n++);
}

static void vec_remove(vec_t *v, size_t i)
{
    memmove(vec_at(v, i), vec_at(v, i + 1), (v->n - i - 1) * v->size);
    v->n--;
}

ekv_catalog_t *ekv_catalog_new(void)
{
    ekv_catalog_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->accounts.size = sizeof(ekv_account_t);
    c->tokens.size = sizeof(ekv_token_t);
    c->ns.size = sizeof(ekv_namespace_t);
    return c;
}

void ekv_catalog_free(ekv_catalog_t *c)
{
    if (!c)
        return;
    free(c->accounts.items);
    free(c->tokens.items);
    free(c->ns.items);
    free(c);
}

static void load_account(void *ctx, const ekv_account_t *a)
{
    ekv_catalog_put_account(ctx, a);
}
static void load_token(void *ctx, const ekv_token_t *t)
{
    ekv_catalog_put_token(ctx, t);
}
static void load_ns(void *ctx, const ekv_namespace_t *ns)
{
    ekv_catalog_put_ns(ctx, ns);
}

int ekv_catalog_load(ekv_catalog_t *c, ekv_store_t *store)
{
    ekv_catalog_visitor_t v = {c, load_account, load_token, load_ns};
    return ekv_store_catalog_load(store, &v);
}

void ekv_catalog_add_entry(ekv_catalog_t *c, const char *key, size_t klen, const char *val,
                           size_t vlen)
{
    ekv_catalog_visitor_t v = {c, load_account, load_token, load_ns};
    ekv_store_catalog_visit_entry(key, klen, val, vlen, &v);
}

void ekv_catalog_put_account(ekv_catalog_t *c, const ekv_account_t *a)
{
    ekv_account_t *slot = (ekv_account_t *)ekv_catalog_find_account(c, a->id);
    if (!slot)
        slot = vec_push(&c->accounts);
    if (slot)
        *slot = *a;
}

const ekv_account_t *ekv_catalog_find_account(const ekv_catalog_t *c, const char *id)
{
    for (size_t i = 0; i < c->accounts.n; i++) {
        const ekv_account_t *a = vec_at(&c->accounts, i);
        if (strcmp(a->id, id) == 0)
            return a;
    }
    return NULL;
}

size_t ekv_catalog_account_count(const ekv_catalog_t *c)
{
    return c->accounts.n;
}

const ekv_account_t *ekv_catalog_account_at(const ekv_catalog_t *c, size_t i)
{
    return i < c->accounts.n ? vec_at(&c->accounts, i) : NULL;
}

void ekv_catalog_put_token(ekv_catalog_t *c, const ekv_token_t *t)
{
    ekv_token_t *slot = (ekv_token_t *)ekv_catalog_find_token(c, t->hash);
    if (!slot)
        slot = vec_push(&c->tokens);
    if (slot)
        *slot = *t;
}

void ekv_catalog_remove_token(ekv_catalog_t *c, const char *hash)
{
    for (size_t i = 0; i < c->tokens.n; i++) {
        if (strcmp(((ekv_token_t *)vec_at(&c->tokens, i))->hash, hash) == 0) {
            vec_remove(&c->tokens, i);
            return;
        }
    }
}

const ekv_token_t *ekv_catalog_find_token(const ekv_catalog_t *c, const char *hash)
{
    for (size_t i = 0; i < c->tokens.n; i++) {
        const ekv_token_t *t = vec_at(&c->tokens, i);
        if (memcmp(t->hash, hash, EKV_TOKEN_HASH_LEN) == 0)
            return t;
    }
    return NULL;
}

const ekv_token_t *ekv_catalog_find_token_by_id(const ekv_catalog_t *c, const char *account_id,
                                                const char *id)
{
    for (size_t i = 0; i < c->tokens.n; i++) {
        const ekv_token_t *t = vec_at(&c->tokens, i);
        if (strcmp(t->id, id) == 0 && strcmp(t->account_id, account_id) == 0)
            return t;
    }
    return NULL;
}

size_t ekv_catalog_token_count(const ekv_catalog_t *c)
{
    return c->tokens.n;
}

const ekv_token_t *ekv_catalog_token_at(const ekv_catalog_t *c, size_t i)
{
    return i < c->tokens.n ? vec_at(&c->tokens, i) : NULL;
}

static ekv_namespace_t *find_ns_any(const ekv_catalog_t *c, const char *id)
{
    for (size_t i = 0; i < c->ns.n; i++) {
        ekv_namespace_t *ns = vec_at(&c->ns, i);
        if (strcmp(ns->id, id) == 0)
            return ns;
    }
    return NULL;
}

void ekv_catalog_put_ns(ekv_catalog_t *c, const ekv_namespace_t *ns)
{
    ekv_namespace_t *slot = find_ns_any(c, ns->id);
    if (!slot)
        slot = vec_push(&c->ns);
    if (slot)
        *slot = *ns;
}

void ekv_catalog_remove_ns(ekv_catalog_t *c, const char *id)
{
    for (size_t i = 0; i < c->ns.n; i++) {
        if (strcmp(((ekv_namespace_t *)vec_at(&c->ns, i))->id, id) == 0) {
            vec_remove(&c->ns, i);
            return;
        }
    }
}

const ekv_namespace_t *ekv_catalog_find_ns(const ekv_catalog_t *c, const char *account_id,
                                           const char *id)
{
    const ekv_namespace_t *ns = find_ns_any(c, id);
    return ns && strcmp(ns->account_id, account_id) == 0 ? ns : NULL;
}

const ekv_namespace_t *ekv_catalog_find_ns_title(const ekv_catalog_t *c, const char *account_id,
                                                 const char *title)
{
    for (size_t i = 0; i < c->ns.n; i++) {
        const ekv_namespace_t *ns = vec_at(&c->ns, i);
        if (strcmp(ns->account_id, account_id) == 0 && strcmp(ns->title, title) == 0)
            return ns;
    }
    return NULL;
}

size_t ekv_catalog_ns_count(const ekv_catalog_t *c, const char *account_id)
{
    size_t n = 0;
    for (size_t i = 0; i < c->ns.n; i++)
        n += strcmp(((ekv_namespace_t *)vec_at(&c->ns, i))->account_id, account_id) == 0;
    return n;
}

static int sort_desc;
static int cmp_id(const void *a, const void *b)
{
    int r = strcmp((*(ekv_namespace_t *const *)a)->id, (*(ekv_namespace_t *const *)b)->id);
    return sort_desc ? -r : r;
}
static int cmp_title(const void *a, const void *b)
{
    const ekv_namespace_t *x = *(ekv_namespace_t *const *)a, *y = *(ekv_namespace_t *const *)b;
    int r = strcmp(x->title, y->title);
    if (r == 0)
        r = strcmp(x->id, y->id);
    return sort_desc ? -r : r;
}

int ekv_catalog_list_ns(const ekv_catalog_t *c, const char *account_id, ekv_ns_order_t order,
                        int descending, const ekv_namespace_t ***out)
{
    size_t n = ekv_catalog_ns_count(c, account_id);
    const ekv_namespace_t **arr = malloc((n ? n : 1) * sizeof(*arr));
    if (!arr)
        return EKV_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < c->ns.n; i++) {
        const ekv_namespace_t *ns = vec_at(&c->ns, i);
        if (strcmp(ns->account_id, account_id) == 0)
            arr[k++] = ns;
    }
    sort_desc = descending; /* loop thread only: no concurrent sorts */
    qsort(arr, k, sizeof(*arr), order == EKV_NS_ORDER_TITLE ? cmp_title : cmp_id);
    *out = arr;
    return (int)k;
}
