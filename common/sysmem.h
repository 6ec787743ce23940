/*
 * sysmem.h - how much memory this process may use: the machine's RAM, or less when a
 * cgroup limit says so (cgroup v2 memory.max of its own cgroup and of each parent, the v2
 * root file, else v1 memory.limit_in_bytes).
 * Used to derive default cache sizes (docs/STORAGE.md).
 */
#ifndef EKV_COMMON_SYSMEM_H
#define EKV_COMMON_SYSMEM_H

#include <stdint.h>

/* Bytes; 0 when even the RAM size cannot be read. */
uint64_t ekv_sysmem_limit(void);

#endif
