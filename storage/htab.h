/*
 * htab.h - a small chained hash map from byte strings to non-NULL pointers.
 *
 * Used by the committer's in-memory catalog index (catidx.c); single-threaded (the owner
 * serialises access). Keys are copied into the entry; values are borrowed unless the owner
 * frees them in ekv_htab_deinit's callback. The table doubles when it holds more entries than
 * buckets, so lookups stay O(1) on average.
 */
#ifndef EKV_STORAGE_HTAB_H
#define EKV_STORAGE_HTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct ekv_htab_ent_s {
    struct ekv_htab_ent_s *next;
    uint64_t hash;
    void *val;
    size_t klen;
    char key[]; /* klen bytes */
} ekv_htab_ent_t;

typedef struct {
    ekv_htab_ent_t **buckets;
    size_t nbuckets; /* power of two, 0 before the first insert */
    size_t count;
} ekv_htab_t;

void ekv_htab_init(ekv_htab_t *h);
/* Free every entry; free_val (may be NULL) is called on each value. */
void ekv_htab_deinit(ekv_htab_t *h, void (*free_val)(void *val));
/* The value, or NULL when absent. */
void *ekv_htab_get(const ekv_htab_t *h, const void *key, size_t klen);
/* Insert or replace (val != NULL). 0 or EKV_ENOMEM (the table is then unchanged). */
int ekv_htab_put(ekv_htab_t *h, const void *key, size_t klen, void *val);
/* Remove; returns the removed value or NULL when absent. */
void *ekv_htab_del(ekv_htab_t *h, const void *key, size_t klen);
/* Visit every entry (do not modify the table from cb). */
void ekv_htab_foreach(const ekv_htab_t *h,
                      void (*cb)(void *ctx, const char *key, size_t klen, void *val), void *ctx);

#endif
