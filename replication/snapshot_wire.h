/*
 * snapshot_wire.h - the parts of the snapshot protocol both sides must compute identically
 * (proto/repl.proto, SnapshotChunk and SnapshotEnd): column-family names on the wire and the
 * XXH64 over the entries. One definition, used by the sender (primary.c) and the receivers
 * (replica.c, including keys-only followers).
 */
#ifndef EKV_REPLICATION_SNAPSHOT_WIRE_H
#define EKV_REPLICATION_SNAPSHOT_WIRE_H

#include <stddef.h>
#include <xxhash.h>

/* Wire name of an ekv_snapshot_cf_t ("meta", "kvmeta", "kvval", "exp"); "" if unknown. */
const char *ekv_repl_snapshot_cf_name(int cf);
/* The ekv_snapshot_cf_t for a wire name; 0 if unknown (or NULL). */
int ekv_repl_snapshot_cf(const char *name);
/* Add one entry to a SnapshotEnd checksum: the column family name, the key and the value,
 * each preceded by its length as u32 big-endian. */
void ekv_repl_snapshot_hash_entry(XXH64_state_t *x, const char *cf, const void *key, size_t key_len,
                                  const void *value, size_t value_len);

#endif
