/*
 * sysmem.c - see sysmem.h.
 */
#include "common/sysmem.h"

#include <inttypes.h>
#include <stdio.h>
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

uint64_t ekv_sysmem_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 0;
    const char *files[] = {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (int i = 0; i < 2; i++) {
        uint64_t lim = read_limit(files[i]);
        if (lim && (!ram || lim < ram))
            ram = lim; /* v1 reports "no limit" as a huge number: the min drops it */
    }
    return ram;
}
