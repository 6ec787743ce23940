/*
 * token.c - `edgekv token create|list|revoke`: token administration on a data dir while
 * the server is stopped (RocksDB allows one process per database; with the server running,
 * use the admin API: docs/API.md).
 */
#include "server/cli/cli.h"
#include "server/cli/offline.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/auth.h"
#include "server/api/catalog.h"
#include "server/api/perms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage:\n"
            "  edgekv token create --name NAME [--perms kv:read,kv:write,admin] [--account ID]\n"
            "  edgekv token list\n"
            "  edgekv token revoke TOKEN_ID\n\n"
            "common flags: --data-dir DIR (env EDGEKV_DATA_DIR, default ./data)\n"
            "Works on a stopped server's data dir; with the server running use the admin API\n"
            "(POST/GET/DELETE /client/v4/accounts/{account_id}/tokens).\n"
            "--perms defaults to kv:read,kv:write. The new secret is printed once.\n");
}

int ekv_token_cli(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        usage(stdout);
        return argc < 1 ? 2 : 0;
    }
    const char *sub = argv[0];
    const char *data_dir = getenv("EDGEKV_DATA_DIR") ? getenv("EDGEKV_DATA_DIR") : "./data";
    const char *name = NULL, *perms_s = "kv:read,kv:write", *account = NULL, *id = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data-dir"))
            slot = &data_dir;
        else if (!strcmp(a, "--name"))
            slot = &name;
        else if (!strcmp(a, "--perms"))
            slot = &perms_s;
        else if (!strcmp(a, "--account"))
            slot = &account;
        else if (a[0] != '-' && !id) {
            id = a;
            continue;
        } else {
            fprintf(stderr, "edgekv token: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "edgekv token: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke")) {
        fprintf(stderr, "edgekv token: unknown command '%s'\n", sub);
        usage(stderr);
        return 2;
    }

    ekv_store_t *store;
    ekv_catalog_t *cat;
    if (ekv_cli_catalog_open("token", data_dir, "admin API", &store, &cat))
        return 1;
    int rc = 1;
    if (!strcmp(sub, "list")) {
        printf("%-32s  %-32s  %-24s  %s\n", "ID", "ACCOUNT", "PERMISSIONS", "NAME");
        for (size_t i = 0; i < ekv_catalog_token_count(cat); i++) {
            const ekv_token_t *t = ekv_catalog_token_at(cat, i);
            char p[64];
            ekv_perms_format(t->perms, p, sizeof(p));
            printf("%-32s  %-32s  %-24s  %s\n", t->id, t->account_id, p, t->name);
        }
        rc = 0;
        goto out;
    }
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    if (!strcmp(sub, "revoke")) {
        if (!id) {
            fprintf(stderr, "edgekv token revoke: TOKEN_ID is required\n");
            rc = 2;
            goto out;
        }
        const ekv_token_t *t = NULL;
        for (size_t i = 0; i < ekv_catalog_token_count(cat); i++)
            if (!strcmp(ekv_catalog_token_at(cat, i)->id, id))
                t = ekv_catalog_token_at(cat, i);
        if (!t) {
            fprintf(stderr, "edgekv token revoke: no token with id %s\n", id);
            goto out;
        }
        w.type = EKV_OP_TOKEN_REVOKE;
        w.token = *t;
        if (ekv_store_write_sync(store, &w)) {
            fprintf(stderr, "edgekv token revoke: %s\n", ekv_strerror(w.status));
            goto out;
        }
        printf("revoked %s\n", id);
        rc = 0;
        goto out;
    }
    /* create */
    if (!name || !*name || strlen(name) >= sizeof(w.token.name)) {
        fprintf(stderr, "edgekv token create: --name (1..127 chars) is required\n");
        rc = 2;
        goto out;
    }
    int64_t bits = ekv_perms_parse_list(perms_s);
    if (bits < 0) {
        fprintf(stderr, "edgekv token create: bad --perms '%s' (use kv:read,kv:write,admin)\n",
                perms_s);
        rc = 2;
        goto out;
    }
    const ekv_account_t *acct =
        account ? ekv_catalog_find_account(cat, account) : ekv_catalog_account_at(cat, 0);
    if (!acct) {
        fprintf(stderr, "edgekv token create: no such account (start the server once first)\n");
        goto out;
    }
    char secret[41];
    w.type = EKV_OP_TOKEN_CREATE;
    if (ekv_random_token(secret) || ekv_random_id(w.token.id))
        goto out;
    ekv_token_hash(secret, strlen(secret), w.token.hash);
    snprintf(w.token.account_id, sizeof(w.token.account_id), "%s", acct->id);
    snprintf(w.token.name, sizeof(w.token.name), "%s", name);
    w.token.perms = (uint32_t)bits;
    w.token.created_ms = ekv_clock_now_ms();
    if (ekv_store_write_sync(store, &w)) {
        fprintf(stderr, "edgekv token create: %s\n", ekv_strerror(w.status));
        goto out;
    }
    printf("token id: %s\naccount:  %s\ntoken:    %s\n", w.token.id, acct->id, secret);
    rc = 0;
out:
    ekv_cli_catalog_close(store, cat);
    return rc;
}
