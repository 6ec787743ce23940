/*
 * ids.h - sizes of the identifiers every layer shares (namespace ids, account/namespace/token
 * ids in hex, token hashes) and the Durable Object partition of an object id. Constants and
 * one pure function, so that any header can use them without depending on the store's API.
 */
#ifndef EKV_STORAGE_IDS_H
#define EKV_STORAGE_IDS_H

#include <stdint.h>

#define EKV_NSID_LEN       16
#define EKV_ID_HEX_LEN     32    /* account, namespace and token ids: 32 lowercase hex chars */
#define EKV_TOKEN_HASH_LEN 64    /* hex SHA-256 of the token secret */
#define EKV_DO_OBJID_LEN   32    /* Durable Object id (64 hex chars in the API) */
#define EKV_DO_NSKEY_LEN   32    /* a DO namespace's id-derivation key (server/api/do/ids.h) */
#define EKV_DO_PARTITIONS  16384 /* DO partitions: an object id's leading 14 bits (do/ptable.h) */

/* The partition of a Durable Object id (its first two bytes' leading 14 bits): the committer's
 * fencing, the alarm scan by partition and the cluster's ownership all use this one. */
static inline uint32_t ekv_do_partition_of(const uint8_t *objid)
{
    return (((uint32_t)objid[0] << 8) | objid[1]) >> 2;
}

#endif
