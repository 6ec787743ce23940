/*
 * offline.c - a stopped server's catalog for the CLI (see offline.h).
 */
#include "server/cli/offline.h"
#include "common/log.h"

#include <stdio.h>

int ekv_cli_catalog_open(const char *cmd, const char *data_dir, const char *online_api,
                         ekv_store_t **store, ekv_catalog_t **cat)
{
    char dbdir[4096];
    snprintf(dbdir, sizeof(dbdir), "%s/db", data_dir);
    ekv_log_set_level(EKV_LOG_WARN);
    ekv_store_opts_t so = {0};
    so.dir = dbdir;
    if (ekv_store_open(store, &so)) {
        fprintf(stderr, "edgekv %s: cannot open %s (is the server running? then use the %s)\n", cmd,
                dbdir, online_api);
        return 1;
    }
    *cat = ekv_catalog_new();
    if (!*cat || ekv_catalog_load(*cat, *store)) {
        fprintf(stderr, "edgekv %s: cannot read the catalog\n", cmd);
        ekv_cli_catalog_close(*store, *cat);
        return 1;
    }
    return 0;
}

void ekv_cli_catalog_close(ekv_store_t *store, ekv_catalog_t *cat)
{
    ekv_catalog_free(cat);
    ekv_store_close(store);
}
