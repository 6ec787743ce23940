#include "server/api/catalog.h"
#include "common/errors.h"
#include "common/htab.h"

#include <stdlib.h>
#include <string.h>

/*
 * Every account, token and namespace is one allocation (a record) with the links of its hash
 * indexes (common/htab.h, intrusive), so a lookup per request is O(1) and a returned pointer
 * stays valid until that record is removed or replaced. A vector of record pointers keeps
 * the insertion order for the index-based accessors (_at) and listing.
 */
typedef struct {
    ekv_hnode_t by_id;
    ekv_account_t a;
} acct_rec_t;

typedef struct {
    ekv_hnode_t by_hash, by_id; /* by_id only when t.id is not empty */
    ekv_token_t t;
} tok_rec_t;

typedef struct {
    ekv_hnode_t by_id, by_title;
    ekv_namespace_t ns;
} ns_rec_t;

typedef struct {
    void **items;
    size_t n, cap;
} ptrvec_t;

struct ekv_catalog_s {
    ptrvec_t accounts; /* acct_rec_t *, insertion order */
    ptrvec_t tokens;   /* tok_rec_t * */
    ptrvec_t ns;       /* ns_rec_t * */
    ekv_htab_t acct_by_id, tok_by_hash, tok_by_id, ns_by_id, ns_by_title;
};

static int ptrvec_push(ptrvec_t *v, void *p)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        void **items = realloc(v->items, cap * sizeof(*items));
        if (!items)
            return EKV_ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->n++] = p;
    return 0;
}

/* Keeps the order (token listing and "the first account" depend on it). */
static void ptrvec_remove(ptrvec_t *v, const void *p)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i] == p) {
            memmove(&v->items[i], &v->items[i + 1], (v->n - i - 1) * sizeof(*v->items));
            v->n--;
            return;
        }
    }
}

/* ---- keys: hashes and equality callbacks ---- */

static uint64_t hash_str(const char *s)
{
    return ekv_hash_bytes(s, strlen(s));
}

static int acct_id_eq(const ekv_hnode_t *n, const void *id)
{
    return strcmp(EKV_HTAB_ENTRY(n, acct_rec_t, by_id)->a.id, id) == 0;
}

/* The token hash key is its first EKV_TOKEN_HASH_LEN bytes (callers pass hex SHA-256). */
static uint64_t hash_token_hash(const char *hash)
{
    return ekv_hash_bytes(hash, EKV_TOKEN_HASH_LEN);
}

static int tok_hash_eq(const ekv_hnode_t *n, const void *hash)
{
    return memcmp(EKV_HTAB_ENTRY(n, tok_rec_t, by_hash)->t.hash, hash, EKV_TOKEN_HASH_LEN) == 0;
}

typedef struct {
    const char *account_id; /* NULL: any account */
    const char *s;          /* id or title */
} owned_key_t;

static int tok_id_eq(const ekv_hnode_t *n, const void *key)
{
    const ekv_token_t *t = &EKV_HTAB_ENTRY(n, tok_rec_t, by_id)->t;
    const owned_key_t *k = key;
    return strcmp(t->id, k->s) == 0 &&
           (!k->account_id || strcmp(t->account_id, k->account_id) == 0);
}

static int ns_id_eq(const ekv_hnode_t *n, const void *id)
{
    return strcmp(EKV_HTAB_ENTRY(n, ns_rec_t, by_id)->ns.id, id) == 0;
}

static uint64_t hash_title(const char *account_id, const char *title)
{
    return ekv_hash_bytes_seed(title, strlen(title), hash_str(account_id));
}

static int ns_title_eq(const ekv_hnode_t *n, const void *key)
{
    const ekv_namespace_t *ns = &EKV_HTAB_ENTRY(n, ns_rec_t, by_title)->ns;
    const owned_key_t *k = key;
    return strcmp(ns->title, k->s) == 0 && strcmp(ns->account_id, k->account_id) == 0;
}

/* ---- lifecycle ---- */

ekv_catalog_t *ekv_catalog_new(void)
{
    ekv_catalog_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    ekv_htab_t *tabs[] = {&c->acct_by_id, &c->tok_by_hash, &c->tok_by_id, &c->ns_by_id,
                          &c->ns_by_title};
    for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++)
        ekv_htab_init(tabs[i]);
    for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
        if (ekv_htab_reserve(tabs[i], 1)) { /* from here on inserts cannot fail */
            ekv_catalog_free(c);
            return NULL;
        }
    }
    return c;
}

void ekv_catalog_free(ekv_catalog_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->accounts.n; i++)
        free(c->accounts.items[i]);
    for (size_t i = 0; i < c->tokens.n; i++)
        free(c->tokens.items[i]);
    for (size_t i = 0; i < c->ns.n; i++)
        free(c->ns.items[i]);
    free(c->accounts.items);
    free(c->tokens.items);
    free(c->ns.items);
    ekv_htab_deinit(&c->acct_by_id);
    ekv_htab_deinit(&c->tok_by_hash);
    ekv_htab_deinit(&c->tok_by_id);
    ekv_htab_deinit(&c->ns_by_id);
    ekv_htab_deinit(&c->ns_by_title);
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

/* ---- accounts ---- */

static acct_rec_t *acct_find(const ekv_catalog_t *c, const char *id)
{
    ekv_hnode_t *n = ekv_htab_find(&c->acct_by_id, hash_str(id), acct_id_eq, id);
    return n ? EKV_HTAB_ENTRY(n, acct_rec_t, by_id) : NULL;
}

void ekv_catalog_put_account(ekv_catalog_t *c, const ekv_account_t *a)
{
    acct_rec_t *r = acct_find(c, a->id);
    if (r) { /* same id: same key */
        r->a = *a;
        return;
    }
    if (!(r = malloc(sizeof(*r))))
        return;
    r->a = *a;
    if (ptrvec_push(&c->accounts, r)) {
        free(r);
        return;
    }
    ekv_htab_insert(&c->acct_by_id, &r->by_id, hash_str(r->a.id));
}

const ekv_account_t *ekv_catalog_find_account(const ekv_catalog_t *c, const char *id)
{
    acct_rec_t *r = acct_find(c, id);
    return r ? &r->a : NULL;
}

size_t ekv_catalog_account_count(const ekv_catalog_t *c)
{
    return c->accounts.n;
}

const ekv_account_t *ekv_catalog_account_at(const ekv_catalog_t *c, size_t i)
{
    return i < c->accounts.n ? &((acct_rec_t *)c->accounts.items[i])->a : NULL;
}

/* ---- tokens ---- */

static tok_rec_t *tok_find(const ekv_catalog_t *c, const char *hash)
{
    /* a hash from the wire (a replicated revocation) may be of any length: only a full
     * 64-character hash can match (the hash and compare read exactly that many bytes) */
    if (strnlen(hash, EKV_TOKEN_HASH_LEN + 1) != EKV_TOKEN_HASH_LEN)
        return NULL;
    ekv_hnode_t *n = ekv_htab_find(&c->tok_by_hash, hash_token_hash(hash), tok_hash_eq, hash);
    return n ? EKV_HTAB_ENTRY(n, tok_rec_t, by_hash) : NULL;
}

void ekv_catalog_put_token(ekv_catalog_t *c, const ekv_token_t *t)
{
    tok_rec_t *r = tok_find(c, t->hash);
    if (r) { /* same hash; the id may change: relink it */
        if (r->t.id[0])
            ekv_htab_remove(&c->tok_by_id, &r->by_id);
        r->t = *t;
    } else {
        if (!(r = malloc(sizeof(*r))))
            return;
        r->t = *t;
        if (ptrvec_push(&c->tokens, r)) {
            free(r);
            return;
        }
        ekv_htab_insert(&c->tok_by_hash, &r->by_hash, hash_token_hash(r->t.hash));
    }
    if (r->t.id[0])
        ekv_htab_insert(&c->tok_by_id, &r->by_id, hash_str(r->t.id));
}

void ekv_catalog_remove_token(ekv_catalog_t *c, const char *hash)
{
    tok_rec_t *r = tok_find(c, hash);
    if (!r)
        return;
    ekv_htab_remove(&c->tok_by_hash, &r->by_hash);
    if (r->t.id[0])
        ekv_htab_remove(&c->tok_by_id, &r->by_id);
    ptrvec_remove(&c->tokens, r);
    free(r);
}

const ekv_token_t *ekv_catalog_find_token(const ekv_catalog_t *c, const char *hash)
{
    tok_rec_t *r = tok_find(c, hash);
    return r ? &r->t : NULL;
}

const ekv_token_t *ekv_catalog_find_token_by_id(const ekv_catalog_t *c, const char *account_id,
                                                const char *id)
{
    owned_key_t k = {account_id, id};
    ekv_hnode_t *n = ekv_htab_find(&c->tok_by_id, hash_str(id), tok_id_eq, &k);
    return n ? &EKV_HTAB_ENTRY(n, tok_rec_t, by_id)->t : NULL;
}

size_t ekv_catalog_token_count(const ekv_catalog_t *c)
{
    return c->tokens.n;
}

const ekv_token_t *ekv_catalog_token_at(const ekv_catalog_t *c, size_t i)
{
    return i < c->tokens.n ? &((tok_rec_t *)c->tokens.items[i])->t : NULL;
}

/* ---- namespaces ---- */

static ns_rec_t *ns_find(const ekv_catalog_t *c, const char *id)
{
    ekv_hnode_t *n = ekv_htab_find(&c->ns_by_id, hash_str(id), ns_id_eq, id);
    return n ? EKV_HTAB_ENTRY(n, ns_rec_t, by_id) : NULL;
}

void ekv_catalog_put_ns(ekv_catalog_t *c, const ekv_namespace_t *ns)
{
    ns_rec_t *r = ns_find(c, ns->id);
    if (r) { /* same id; the title (rename) may change: relink it */
        ekv_htab_remove(&c->ns_by_title, &r->by_title);
        r->ns = *ns;
    } else {
        if (!(r = malloc(sizeof(*r))))
            return;
        r->ns = *ns;
        if (ptrvec_push(&c->ns, r)) {
            free(r);
            return;
        }
        ekv_htab_insert(&c->ns_by_id, &r->by_id, hash_str(r->ns.id));
    }
    ekv_htab_insert(&c->ns_by_title, &r->by_title, hash_title(r->ns.account_id, r->ns.title));
}

void ekv_catalog_remove_ns(ekv_catalog_t *c, const char *id)
{
    ns_rec_t *r = ns_find(c, id);
    if (!r)
        return;
    ekv_htab_remove(&c->ns_by_id, &r->by_id);
    ekv_htab_remove(&c->ns_by_title, &r->by_title);
    ptrvec_remove(&c->ns, r);
    free(r);
}

const ekv_namespace_t *ekv_catalog_find_ns(const ekv_catalog_t *c, const char *account_id,
                                           const char *id)
{
    const ns_rec_t *r = ns_find(c, id);
    return r && strcmp(r->ns.account_id, account_id) == 0 ? &r->ns : NULL;
}

const ekv_namespace_t *ekv_catalog_find_ns_title(const ekv_catalog_t *c, const char *account_id,
                                                 const char *title)
{
    owned_key_t k = {account_id, title};
    ekv_hnode_t *n = ekv_htab_find(&c->ns_by_title, hash_title(account_id, title), ns_title_eq, &k);
    return n ? &EKV_HTAB_ENTRY(n, ns_rec_t, by_title)->ns : NULL;
}

static const ekv_namespace_t *ns_at(const ekv_catalog_t *c, size_t i)
{
    return &((const ns_rec_t *)c->ns.items[i])->ns;
}

/* A scan: only namespace creation (the per-account limit) and listing ask, never a request
 * on a namespace. */
size_t ekv_catalog_ns_count(const ekv_catalog_t *c, const char *account_id)
{
    size_t n = 0;
    for (size_t i = 0; i < c->ns.n; i++)
        n += strcmp(ns_at(c, i)->account_id, account_id) == 0;
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
        const ekv_namespace_t *ns = ns_at(c, i);
        if (strcmp(ns->account_id, account_id) == 0)
            arr[k++] = ns;
    }
    sort_desc = descending; /* loop thread only: no concurrent sorts */
    qsort(arr, k, sizeof(*arr), order == EKV_NS_ORDER_TITLE ? cmp_title : cmp_id);
    *out = arr;
    return (int)k;
}
