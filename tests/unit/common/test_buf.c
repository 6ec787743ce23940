/* common/buf: ekv_memdup_z (the bounded buffer itself is covered through its users). */
#include "common/buf.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(buf, memdup_z_copies_bytes_and_terminates)
{
    char *d = ekv_memdup_z("a\0b", 3);
    cr_assert_not_null(d);
    cr_assert_eq(memcmp(d, "a\0b", 3), 0);
    cr_assert_eq(d[3], '\0');
    free(d);
    d = ekv_memdup_z(NULL, 0); /* empty input: an empty string */
    cr_assert_not_null(d);
    cr_assert_eq(d[0], '\0');
    free(d);
}
