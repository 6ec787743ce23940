#include "server/api/perms.h"
#include "storage/store.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    uint32_t bit;
} names[] = {
    {"kv:read", EKV_PERM_KV_READ},
    {"kv:write", EKV_PERM_KV_WRITE},
    {"admin", EKV_PERM_ADMIN},
    {"Workers KV Storage Read", EKV_PERM_KV_READ},
    {"Workers KV Storage Write", EKV_PERM_KV_WRITE | EKV_PERM_KV_READ},
};

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

void ekv_perms_format(uint32_t perms, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s%s%s%s", (perms & EKV_PERM_KV_READ) ? "kv:read" : "",
             (perms & EKV_PERM_KV_READ) && (perms & (EKV_PERM_KV_WRITE | EKV_PERM_ADMIN)) ? ","
                                                                                          : "",
             (perms & EKV_PERM_KV_WRITE) ? "kv:write" : "",
             (perms & EKV_PERM_KV_WRITE) && (perms & EKV_PERM_ADMIN) ? "," : "",
             (perms & EKV_PERM_ADMIN) ? "admin" : "");
}
