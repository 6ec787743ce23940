/* server/catalog: hash lookups of accounts, tokens and namespaces; order kept for _at and
 * listing; replace relinks the secondary index; pointers survive unrelated changes. */
#include "server/api/catalog.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACC1 "0123456789abcdef0123456789abcdef"
#define ACC2 "fedcba9876543210fedcba9876543210"

static ekv_token_t tok(char fill, const char *id, const char *account)
{
    ekv_token_t t;
    memset(&t, 0, sizeof(t));
    memset(t.hash, fill, EKV_TOKEN_HASH_LEN);
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.account_id, sizeof(t.account_id), "%s", account);
    return t;
}

static ekv_namespace_t nsrec(unsigned i, const char *account, const char *title)
{
    ekv_namespace_t ns;
    memset(&ns, 0, sizeof(ns));
    snprintf(ns.id, sizeof(ns.id), "%032x", i);
    snprintf(ns.account_id, sizeof(ns.account_id), "%s", account);
    snprintf(ns.title, sizeof(ns.title), "%s", title);
    ns.created_ms = i;
    return ns;
}

Test(catalog, accounts_by_id_in_insertion_order)
{
    ekv_catalog_t *c = ekv_catalog_new();
    ekv_account_t a = {.id = ACC2, .name = "two"}, b = {.id = ACC1, .name = "one"};
    ekv_catalog_put_account(c, &a);
    ekv_catalog_put_account(c, &b);
    cr_assert_eq(ekv_catalog_account_count(c), 2);
    cr_assert_str_eq(ekv_catalog_account_at(c, 0)->id, ACC2); /* the first account stays first */
    cr_assert_str_eq(ekv_catalog_find_account(c, ACC1)->name, "one");
    snprintf(b.name, sizeof(b.name), "uno");
    ekv_catalog_put_account(c, &b); /* replace */
    cr_assert_eq(ekv_catalog_account_count(c), 2);
    cr_assert_str_eq(ekv_catalog_find_account(c, ACC1)->name, "uno");
    cr_assert_null(ekv_catalog_find_account(c, "nope"));
    cr_assert_null(ekv_catalog_account_at(c, 2));
    ekv_catalog_free(c);
}

Test(catalog, tokens_by_hash_and_by_account_and_id)
{
    ekv_catalog_t *c = ekv_catalog_new();
    ekv_token_t t1 = tok('a', "id1", ACC1), t2 = tok('b', "id2", ACC1), t3 = tok('c', "id3", ACC2);
    ekv_catalog_put_token(c, &t1);
    ekv_catalog_put_token(c, &t2);
    ekv_catalog_put_token(c, &t3);
    const ekv_token_t *p2 = ekv_catalog_find_token(c, t2.hash);
    cr_assert_not_null(p2);
    cr_assert_str_eq(p2->id, "id2");
    cr_assert_eq(ekv_catalog_find_token_by_id(c, ACC1, "id2"), p2);
    cr_assert_null(ekv_catalog_find_token_by_id(c, ACC2, "id2")); /* other account */
    cr_assert_str_eq(ekv_catalog_find_token_by_id(c, ACC2, "id3")->hash, t3.hash);

    /* replace with the same hash and a new id: the id index follows */
    t1.perms = 7;
    snprintf(t1.id, sizeof(t1.id), "id9");
    ekv_catalog_put_token(c, &t1);
    cr_assert_eq(ekv_catalog_token_count(c), 3);
    cr_assert_null(ekv_catalog_find_token_by_id(c, ACC1, "id1"));
    cr_assert_eq(ekv_catalog_find_token_by_id(c, ACC1, "id9")->perms, 7);

    ekv_catalog_remove_token(c, t1.hash);
    cr_assert_null(ekv_catalog_find_token(c, t1.hash));
    cr_assert_null(ekv_catalog_find_token_by_id(c, ACC1, "id9"));
    cr_assert_eq(ekv_catalog_token_count(c), 2);
    cr_assert_str_eq(ekv_catalog_token_at(c, 0)->id, "id2"); /* order kept */
    cr_assert_str_eq(ekv_catalog_token_at(c, 1)->id, "id3");
    cr_assert_eq(ekv_catalog_find_token(c, t2.hash), p2); /* not moved by the removal */
    ekv_catalog_remove_token(c, t1.hash);                 /* absent: no-op */
    ekv_catalog_free(c);
}

/* A revocation replicated from the wire may carry a hash of any length: the lookup must not
 * read past a short string, and only the exact 64-character hash matches. */
Test(catalog, token_lookups_need_the_exact_hash)
{
    ekv_catalog_t *c = ekv_catalog_new();
    ekv_token_t t = tok('a', "id1", ACC1);
    ekv_catalog_put_token(c, &t);
    char *empty = strdup(""), *shorter = strndup(t.hash, EKV_TOKEN_HASH_LEN - 1);
    char longer[EKV_TOKEN_HASH_LEN + 2];
    snprintf(longer, sizeof(longer), "%sa", t.hash);
    cr_assert_null(ekv_catalog_find_token(c, empty));
    cr_assert_null(ekv_catalog_find_token(c, shorter));
    cr_assert_null(ekv_catalog_find_token(c, longer));
    ekv_catalog_remove_token(c, empty); /* heap strings: ASan sees any read past them */
    ekv_catalog_remove_token(c, shorter);
    ekv_catalog_remove_token(c, longer);
    cr_assert_eq(ekv_catalog_token_count(c), 1);
    cr_assert_not_null(ekv_catalog_find_token(c, t.hash));
    free(empty);
    free(shorter);
    ekv_catalog_free(c);
}

Test(catalog, namespaces_by_id_title_rename_remove_list)
{
    ekv_catalog_t *c = ekv_catalog_new();
    for (unsigned i = 0; i < 3000; i++) {
        char title[32];
        snprintf(title, sizeof(title), "t%04u", 2999 - i);
        ekv_namespace_t ns = nsrec(i, i % 3 ? ACC1 : ACC2, title);
        ekv_catalog_put_ns(c, &ns);
    }
    cr_assert_eq(ekv_catalog_ns_count(c, ACC1), 2000);
    cr_assert_eq(ekv_catalog_ns_count(c, ACC2), 1000);
    ekv_namespace_t n5 = nsrec(5, ACC1, "t2994");
    const ekv_namespace_t *p5 = ekv_catalog_find_ns(c, ACC1, n5.id);
    cr_assert_not_null(p5);
    cr_assert_str_eq(p5->title, "t2994");
    cr_assert_null(ekv_catalog_find_ns(c, ACC2, n5.id)); /* another account's id */
    cr_assert_eq(ekv_catalog_find_ns_title(c, ACC1, "t2994"), p5);
    cr_assert_null(ekv_catalog_find_ns_title(c, ACC2, "t2994"));

    /* rename by put: old title free, new title found, same record */
    snprintf(n5.title, sizeof(n5.title), "renamed");
    ekv_catalog_put_ns(c, &n5);
    cr_assert_null(ekv_catalog_find_ns_title(c, ACC1, "t2994"));
    cr_assert_eq(ekv_catalog_find_ns_title(c, ACC1, "renamed"), p5);
    cr_assert_eq(ekv_catalog_ns_count(c, ACC1), 2000);

    ekv_catalog_remove_ns(c, n5.id);
    cr_assert_null(ekv_catalog_find_ns(c, ACC1, n5.id));
    cr_assert_null(ekv_catalog_find_ns_title(c, ACC1, "renamed"));
    cr_assert_eq(ekv_catalog_ns_count(c, ACC1), 1999);

    const ekv_namespace_t **arr;
    int n = ekv_catalog_list_ns(c, ACC2, EKV_NS_ORDER_TITLE, 0, &arr);
    cr_assert_eq(n, 1000);
    cr_assert_str_eq(arr[0]->title, "t0002");   /* i = 2997 */
    cr_assert_str_eq(arr[999]->title, "t2999"); /* i = 0 */
    free(arr);
    ekv_catalog_free(c);
}
