/* storage/catidx: the committer's catalog index on common/htab (namespaces by id and by
 * (account, title), per-account counts, tokens by hash and by id). */
#include "common/errors.h"
#include "storage/catidx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define ACC1 "0123456789abcdef0123456789abcdef"
#define ACC2 "fedcba9876543210fedcba9876543210"

static void nsid_of(uint8_t out[EKV_NSID_LEN], unsigned i)
{
    memset(out, 0, EKV_NSID_LEN);
    memcpy(out, &i, sizeof(i));
}

Test(catidx, namespaces_by_id_title_and_count)
{
    ekv_catidx_t x;
    ekv_catidx_init(&x);
    uint8_t a[EKV_NSID_LEN], b[EKV_NSID_LEN], c[EKV_NSID_LEN];
    nsid_of(a, 1);
    nsid_of(b, 2);
    nsid_of(c, 3);
    cr_assert_eq(ekv_catidx_ns_add(&x, a, ACC1, "alpha", 5, 100), 0);
    cr_assert_eq(ekv_catidx_ns_add(&x, b, ACC1, "beta", 4, 200), 0);
    cr_assert_eq(ekv_catidx_ns_add(&x, c, ACC2, "alpha", 5, 300), 0); /* same title, other acct */
    cr_assert_eq(ekv_catidx_ns_count(&x, ACC1), 2);
    cr_assert_eq(ekv_catidx_ns_count(&x, ACC2), 1);
    cr_assert_eq(ekv_catidx_ns_count(&x, "nobody"), 0);

    const ekv_catidx_ns_t *ns = ekv_catidx_ns_get(&x, a);
    cr_assert_not_null(ns);
    cr_assert_str_eq(ns->title, "alpha");
    cr_assert_str_eq(ns->account_id, ACC1);
    cr_assert_eq(ns->created_ms, 100);
    cr_assert_eq(ekv_catidx_ns_by_title(&x, ACC1, "alpha", 5), ns);
    cr_assert_eq(ekv_catidx_ns_by_title(&x, ACC2, "alpha", 5), ekv_catidx_ns_get(&x, c));
    cr_assert_null(ekv_catidx_ns_by_title(&x, ACC1, "alph", 4));
    cr_assert_null(ekv_catidx_ns_by_title(&x, ACC2, "beta", 4));

    /* rename: the old title is free, the new one finds the same namespace */
    cr_assert_eq(ekv_catidx_ns_rename(&x, a, "gamma", 5), 0);
    cr_assert_null(ekv_catidx_ns_by_title(&x, ACC1, "alpha", 5));
    cr_assert_eq(ekv_catidx_ns_by_title(&x, ACC1, "gamma", 5), ns);
    cr_assert_str_eq(ekv_catidx_ns_get(&x, a)->title, "gamma");
    cr_assert_eq(ekv_catidx_ns_rename(&x, a, "gamma", 5), 0); /* to its own title */
    cr_assert_eq(ekv_catidx_ns_by_title(&x, ACC1, "gamma", 5), ns);
    uint8_t none[EKV_NSID_LEN];
    nsid_of(none, 99);
    cr_assert_eq(ekv_catidx_ns_rename(&x, none, "x", 1), EKV_ENS_NOT_FOUND);

    ekv_catidx_ns_remove(&x, a);
    cr_assert_null(ekv_catidx_ns_get(&x, a));
    cr_assert_null(ekv_catidx_ns_by_title(&x, ACC1, "gamma", 5));
    cr_assert_eq(ekv_catidx_ns_count(&x, ACC1), 1);
    ekv_catidx_ns_remove(&x, a); /* absent: no-op */
    ekv_catidx_ns_remove(&x, b);
    cr_assert_eq(ekv_catidx_ns_count(&x, ACC1), 0);
    cr_assert_eq(ekv_htab_count(&x.ns_by_id), 1);
    cr_assert_eq(ekv_htab_count(&x.ns_by_title), 1);
    cr_assert_eq(ekv_bytemap_count(&x.ns_count), 1); /* ACC1's zero count was dropped */
    ekv_catidx_deinit(&x);
}

Test(catidx, tokens_by_hash_and_id)
{
    ekv_catidx_t x;
    ekv_catidx_init(&x);
    char h1[EKV_TOKEN_HASH_LEN + 1], h2[EKV_TOKEN_HASH_LEN + 1];
    memset(h1, 'a', EKV_TOKEN_HASH_LEN);
    memset(h2, 'b', EKV_TOKEN_HASH_LEN);
    h1[EKV_TOKEN_HASH_LEN] = h2[EKV_TOKEN_HASH_LEN] = '\0';
    cr_assert_eq(ekv_catidx_token_add(&x, h1, "id1", ACC1), 0);
    cr_assert_eq(ekv_catidx_token_add(&x, h2, "", ACC2), 0); /* no id: not indexed by id */
    const ekv_catidx_token_t *t = ekv_catidx_token_by_hash(&x, h1);
    cr_assert_not_null(t);
    cr_assert_str_eq(t->id, "id1");
    cr_assert_str_eq(t->account_id, ACC1);
    cr_assert_eq(ekv_catidx_token_by_id(&x, "id1"), t);
    cr_assert_null(ekv_catidx_token_by_id(&x, ""));
    cr_assert_str_eq(ekv_catidx_token_by_hash(&x, h2)->account_id, ACC2);
    /* add with the same hash replaces (and re-indexes the id) */
    cr_assert_eq(ekv_catidx_token_add(&x, h1, "id9", ACC2), 0);
    cr_assert_null(ekv_catidx_token_by_id(&x, "id1"));
    cr_assert_str_eq(ekv_catidx_token_by_id(&x, "id9")->account_id, ACC2);
    cr_assert_eq(ekv_htab_count(&x.tok_by_hash), 2);
    ekv_catidx_token_remove(&x, h1);
    cr_assert_null(ekv_catidx_token_by_hash(&x, h1));
    cr_assert_null(ekv_catidx_token_by_id(&x, "id9"));
    ekv_catidx_token_remove(&x, h1); /* absent: no-op */
    cr_assert_eq(ekv_htab_count(&x.tok_by_hash), 1);
    cr_assert_eq(ekv_htab_count(&x.tok_by_id), 0);
    ekv_catidx_deinit(&x);
}

Test(catidx, many_entries_survive_a_move_and_free_cleanly)
{
    ekv_catidx_t tmp, x;
    ekv_catidx_init(&tmp);
    for (unsigned i = 0; i < 5000; i++) {
        uint8_t id[EKV_NSID_LEN];
        char title[32];
        nsid_of(id, i);
        int n = snprintf(title, sizeof(title), "title-%u", i);
        cr_assert_eq(ekv_catidx_ns_add(&tmp, id, i % 2 ? ACC1 : ACC2, title, (size_t)n, i), 0);
    }
    x = tmp; /* ekv__catalog_index_load moves a freshly built index in by value */
    cr_assert_eq(ekv_catidx_ns_count(&x, ACC1), 2500);
    for (unsigned i = 0; i < 5000; i += 7) {
        uint8_t id[EKV_NSID_LEN];
        char title[32];
        nsid_of(id, i);
        int n = snprintf(title, sizeof(title), "title-%u", i);
        const ekv_catidx_ns_t *ns = ekv_catidx_ns_get(&x, id);
        cr_assert_not_null(ns);
        cr_assert_eq(ns->created_ms, i);
        cr_assert_eq(ekv_catidx_ns_by_title(&x, i % 2 ? ACC1 : ACC2, title, (size_t)n), ns);
    }
    cr_assert_eq(ekv_htab_check(&x.ns_by_id, NULL), 0);
    cr_assert_eq(ekv_htab_check(&x.ns_by_title, NULL), 0);
    ekv_catidx_deinit(&x); /* ASan: every namespace and title freed */
}
