/*
 * perms.h - token permission names <-> EKV_PERM_* bits, shared by the admin API and the CLI.
 * Names: "kv:read", "kv:write", "do:read", "do:write", "admin" (Cloudflare's group names
 * "Workers KV Storage Read|Write" and, for Durable Objects, "Workers Scripts Read|Write" are
 * accepted as aliases; a Write group implies its Read).
 */
#ifndef EKV_SERVER_API_PERMS_H
#define EKV_SERVER_API_PERMS_H

#include <stddef.h>
#include <stdint.h>

/* One name -> bit, 0 if unknown. */
uint32_t ekv_perm_from_name(const char *name, size_t len);
/* Comma-separated list ("kv:read,kv:write") -> bits; -1 if a name is unknown or none given. */
int64_t ekv_perms_parse_list(const char *list);
/* The i-th canonical name and its bit, NULL past the end (formatting order). */
const char *ekv_perm_name_at(size_t i, uint32_t *bit);
/* Bits -> "kv:read,kv:write,admin" into out. */
void ekv_perms_format(uint32_t perms, char *out, size_t cap);

#endif
