/*
 * snapshot_wire.c - see snapshot_wire.h.
 */
#include "replication/snapshot_wire.h"

#include <stdint.h>
#include <string.h>

static const char *const cf_names[] = {"", "meta", "kvmeta", "kvval", "exp"};
#define NCF ((int)(sizeof(cf_names) / sizeof(cf_names[0])))

const char *ekv_repl_snapshot_cf_name(int cf)
{
    return cf > 0 && cf < NCF ? cf_names[cf] : "";
}

int ekv_repl_snapshot_cf(const char *name)
{
    for (int i = 1; name && i < NCF; i++)
        if (!strcmp(name, cf_names[i]))
            return i;
    return 0;
}

static void hash_part(XXH64_state_t *x, const void *p, size_t n)
{
    uint8_t b[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    XXH64_update(x, b, 4);
    XXH64_update(x, p, n);
}

void ekv_repl_snapshot_hash_entry(XXH64_state_t *x, const char *cf, const void *key, size_t key_len,
                                  const void *value, size_t value_len)
{
    hash_part(x, cf, strlen(cf));
    hash_part(x, key, key_len);
    hash_part(x, value, value_len);
}
