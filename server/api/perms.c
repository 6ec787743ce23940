#include "server/api/perms.h"
#include "storage/store.h"

#include <stdio.h>
#include <string.h>

/* Canonical names first (formatting walks them in this order), then aliases. */
static const struct {
    const char *name;
    uint32_t bit;
} names[] = {
    {"kv:read", EKV_PERM_KV_READ},
    {"kv:write", EKV_PERM_KV_WRITE},
    {"do:read", EKV_PERM_DO_READ},
    {"do:write", EKV_PERM_DO_WRITE},
    {"admin", EKV_PERM_ADMIN},
    {"Workers KV Storage Read", EKV_PERM_KV_READ},
    {"Workers KV Storage Write", EKV_PERM_KV_WRITE | EKV_PERM_KV_READ},
    {"Workers Scripts Read", EKV_PERM_DO_READ},
    {"Workers Scripts Write", EKV_PERM_DO_WRITE | EKV_PERM_DO_READ},
};
#define NCANONICAL 5

uint32_t ekv_perm_from_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
            return names[i].bit;
    return 0;
}

int64_t ekv_perms_parse_list(const char *list)
{
    uint32_t bits = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        uint32_t b = ekv_perm_from_name(p, len);
        if (!b)
            return -1;
        bits |= b;
        p += len + (comma ? 1 : 0);
    }
    return bits ? (int64_t)bits : -1;
}

const char *ekv_perm_name_at(size_t i, uint32_t *bit)
{
    if (i >= NCANONICAL)
        return NULL;
    *bit = names[i].bit;
    return names[i].name;
}

void ekv_perms_format(uint32_t perms, char *out, size_t cap)
{
    size_t n = 0;
    uint32_t bit;
    const char *name;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; (name = ekv_perm_name_at(i, &bit)) != NULL; i++) {
        if (!(perms & bit) || n >= cap)
            continue;
        int w = snprintf(out + n, cap - n, "%s%s", n ? "," : "", name);
        if (w > 0)
            n += (size_t)w;
    }
}
