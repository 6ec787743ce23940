/*
 * offline.h - the catalog of a stopped server's data dir, for the CLI commands that change it
 * directly (`edgekv token`, `edgekv account`). RocksDB allows one process per database, so
 * with the server running these commands fail and point at the API instead.
 */
#ifndef EKV_SERVER_CLI_OFFLINE_H
#define EKV_SERVER_CLI_OFFLINE_H

#include "server/api/catalog.h"
#include "storage/store.h"

/* Open DATA_DIR/db and load its catalog. 0, or 1 after printing why to stderr as
 * "edgekv CMD: ..." (online_api names what to use while the server runs). On 1 nothing is
 * left open. */
int ekv_cli_catalog_open(const char *cmd, const char *data_dir, const char *online_api,
                         ekv_store_t **store, ekv_catalog_t **cat);
void ekv_cli_catalog_close(ekv_store_t *store, ekv_catalog_t *cat);

#endif
