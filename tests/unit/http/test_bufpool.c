/*
 * test_bufpool.c - the read-buffer pool: buffers are reused LIFO, at most `keep` are kept,
 * the counters follow every get/put, drain frees the kept ones.
 */
#include "server/http/bufpool.h"

#include <criterion/criterion.h>
#include <string.h>

Test(bufpool, reuses_returned_buffers_and_counts_them)
{
    ekv_bufpool_t p;
    ekv_bufpool_init(&p, 4096, 2);
    char *a = ekv_bufpool_get(&p);
    char *b = ekv_bufpool_get(&p);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    memset(a, 1, 4096); /* the whole size is usable */
    memset(b, 2, 4096);
    cr_assert_eq(p.nlent, 2);
    cr_assert_eq(p.nfree, 0);
    ekv_bufpool_put(&p, a);
    cr_assert_eq(p.nlent, 1);
    cr_assert_eq(p.nfree, 1);
    cr_assert_eq(ekv_bufpool_get(&p), a, "the returned buffer comes back first");
    cr_assert_eq(p.nfree, 0);
    ekv_bufpool_put(&p, a);
    ekv_bufpool_put(&p, b);
    ekv_bufpool_put(&p, NULL); /* a connection that never read: no-op */
    cr_assert_eq(p.nlent, 0);
    cr_assert_eq(p.nfree, 2);
    ekv_bufpool_drain(&p);
    cr_assert_eq(p.nfree, 0);
    cr_assert_null(p.free);
}

Test(bufpool, keeps_at_most_keep_buffers)
{
    ekv_bufpool_t p;
    ekv_bufpool_init(&p, 64 * 1024, 3);
    char *bufs[10];
    for (int i = 0; i < 10; i++)
        cr_assert_not_null(bufs[i] = ekv_bufpool_get(&p));
    cr_assert_eq(p.nlent, 10);
    for (int i = 0; i < 10; i++)
        ekv_bufpool_put(&p, bufs[i]);
    cr_assert_eq(p.nlent, 0);
    cr_assert_eq(p.nfree, 3, "a burst of readers does not pin its peak");
    /* the kept ones are the last three returned, reused most recent first */
    cr_assert_eq(ekv_bufpool_get(&p), bufs[2]);
    cr_assert_eq(ekv_bufpool_get(&p), bufs[1]);
    cr_assert_eq(ekv_bufpool_get(&p), bufs[0]);
    cr_assert_eq(p.nfree, 0);
    ekv_bufpool_put(&p, bufs[0]);
    ekv_bufpool_put(&p, bufs[1]);
    ekv_bufpool_put(&p, bufs[2]);
    ekv_bufpool_drain(&p);
}
