/*
 * ids.h - sizes of the identifiers every layer shares (namespace ids, account/namespace/token
 * ids in hex, token hashes). Constants only, so that any header can use them without
 * depending on the store's API.
 */
#ifndef EKV_STORAGE_IDS_H
#define EKV_STORAGE_IDS_H

#define EKV_NSID_LEN       16
#define EKV_ID_HEX_LEN     32    /* account, namespace and token ids: 32 lowercase hex chars */
#define EKV_TOKEN_HASH_LEN 64    /* hex SHA-256 of the token secret */
#define EKV_DO_OBJID_LEN   32    /* Durable Object id (64 hex chars in the API) */
#define EKV_DO_NSKEY_LEN   32    /* a DO namespace's id-derivation key (server/api/do/ids.h) */
#define EKV_DO_PARTITIONS  16384 /* DO partitions: an object id's leading 14 bits (do/ptable.h) */

#endif
