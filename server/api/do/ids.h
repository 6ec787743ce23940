/*
 * ids.h - Durable Object ids, workerd's scheme (docs/DURABLE-OBJECTS.md "Ids"). Pure.
 *
 * An id is 32 bytes, shown as 64 lowercase hex digits. Each namespace has a random 32-byte key
 * (ekv_do_ns_t.key). The first 16 bytes are HMAC-SHA256(key, name) truncated (idFromName) or
 * random (newUniqueId); the last 16 are the first 16 bytes of HMAC-SHA256(key, first half),
 * so an id can be checked against its namespace.
 */
#ifndef EKV_SERVER_API_DO_IDS_H
#define EKV_SERVER_API_DO_IDS_H

#include "storage/ids.h"

#include <stddef.h>
#include <stdint.h>

#define EKV_DO_ID_LEN     EKV_DO_OBJID_LEN
#define EKV_DO_ID_HEX_LEN 64
#define EKV_DO_NS_KEY_LEN EKV_DO_NSKEY_LEN

/* idFromName: deterministic for (key, name). */
void ekv_do_id_from_name(const uint8_t key[EKV_DO_NS_KEY_LEN], const char *name, size_t name_len,
                         uint8_t out[EKV_DO_ID_LEN]);
/* newUniqueId: 0, or EKV_EINTERNAL when no randomness is available. */
int ekv_do_id_new_unique(const uint8_t key[EKV_DO_NS_KEY_LEN], uint8_t out[EKV_DO_ID_LEN]);
/* 64 hex digits (either case) of an id of this namespace -> out. 0, EKV_EDO_BAD_ID (not 64 hex
 * digits), EKV_EDO_WRONG_NS (the second half is not this namespace's MAC of the first). */
int ekv_do_id_parse(const uint8_t key[EKV_DO_NS_KEY_LEN], const char *hex, size_t len,
                    uint8_t out[EKV_DO_ID_LEN]);
/* Lowercase hex + NUL. */
void ekv_do_id_hex(const uint8_t id[EKV_DO_ID_LEN], char out[EKV_DO_ID_HEX_LEN + 1]);

#endif
