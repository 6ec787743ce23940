/*
 * sysmem.c - see sysmem.h.
 */
#include "common/sysmem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* A cgroup limit file's number; 0 when absent, "max" or unreadable. */
static uint64_t read_limit(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uint64_t v = 0;
    if (fscanf(f, "%" SCNu64, &v) != 1)
        v = 0; /* "max": no limit */
    fclose(f);
    return v;
}

/* *ram = lim when lim is a limit (not 0) below it; v1 says "no limit" with a huge number,
 * which the min drops */
static void take_lower(uint64_t *ram, uint64_t lim)
{
    if (lim && (!*ram || lim < *ram))
        *ram = lim;
}

/* The smallest limit of this process's memory cgroup and of each parent up to the root,
 * from /proc/self/cgroup: "0::/a/b" (v2: BASE/a/b/memory.max) or "N:memory:/a/b" (v1:
 * BASE/memory/a/b/memory.limit_in_bytes); 0 = none. A systemd MemoryMax= or a pod limit
 * lives below the mount root unless the cgroup namespace is private. */
static uint64_t cgroup_path_limit(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    char line[1024], path[1400];
    uint64_t best = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *dir, *file;
        char *rel;
        if (strncmp(line, "0::/", 4) == 0) {
            dir = "/sys/fs/cgroup";
            file = "memory.max";
            rel = line + 3;
        } else {
            char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            if (!c2 || c2[1] != '/')
                continue;
            *c2 = '\0';
            if (!strstr(c1 + 1, "memory"))
                continue;
            dir = "/sys/fs/cgroup/memory";
            file = "memory.limit_in_bytes";
            rel = c2 + 1;
        }
        for (;;) { /* rel = "/a/b", then "/a", then "/" */
            snprintf(path, sizeof(path), "%s%s/%s", dir, strcmp(rel, "/") == 0 ? "" : rel, file);
            take_lower(&best, read_limit(path));
            char *slash = strrchr(rel, '/');
            if (!slash || slash == rel)
                break;
            *slash = '\0';
        }
    }
    fclose(f);
    return best;
}

uint64_t ekv_sysmem_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
    const char *files[] = {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (int i = 0; i < 2; i++)
        take_lower(&ram, read_limit(files[i]));
    take_lower(&ram, cgroup_path_limit());
    return ram;
}
