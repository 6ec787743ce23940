/*
 * account.c - `edgekv account create|list`: accounts on a stopped server's data dir (like
 * `edgekv token`; with the server running, use the operator API POST/GET /_edgekv/accounts:
 * docs/API.md "Operator API"). create also makes the account's first admin token and prints
 * its secret once.
 */
#include "server/cli/cli.h"
#include "server/cli/offline.h"
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/auth.h"
#include "server/api/catalog.h"
#include "server/api/perms.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage:\n"
                 "  edgekv account create --name NAME\n"
                 "  edgekv account list\n\n"
                 "common flags: --data-dir DIR (env EDGEKV_DATA_DIR, default ./data)\n"
                 "Works on a stopped server's data dir (a standalone node or the primary); with "
                 "the server\nrunning use the operator API (POST/GET /_edgekv/accounts). create "
                 "prints the new account's\nid and its first admin token, shown only this "
                 "once.\n");
}

int ekv_account_cli(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
        !strcmp(argv[0], "help")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    const char *sub = argv[0];
    const char *data_dir = getenv("EDGEKV_DATA_DIR") ? getenv("EDGEKV_DATA_DIR") : "./data";
    const char *name = NULL;
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
        else {
            fprintf(stderr, "edgekv account: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "edgekv account: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    int create = !strcmp(sub, "create");
    if (!create && strcmp(sub, "list")) {
        fprintf(stderr, "edgekv account: unknown command '%s'\n", sub);
        usage(stderr);
        return 2;
    }
    if (create && (!name || !*name || strlen(name) >= sizeof(((ekv_account_t *)0)->name))) {
        fprintf(stderr, "edgekv account create: --name (1..127 chars) is required\n");
        return 2;
    }

    ekv_store_t *store;
    ekv_catalog_t *cat;
    if (ekv_cli_catalog_open("account", data_dir, "operator API", &store, &cat))
        return 1;
    int rc = 1;
    if (!create) {
        printf("%-32s  %s\n", "ID", "NAME");
        for (size_t i = 0; i < ekv_catalog_account_count(cat); i++) {
            const ekv_account_t *a = ekv_catalog_account_at(cat, i);
            printf("%-32s  %s\n", a->id, a->name);
        }
        rc = 0;
        goto out;
    }
    ekv_write_t w;
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_ACCOUNT_CREATE;
    if (ekv_random_id(w.account.id))
        goto out;
    snprintf(w.account.name, sizeof(w.account.name), "%s", name);
    w.account.created_ms = ekv_clock_now_ms();
    if (ekv_store_write_sync(store, &w)) {
        fprintf(stderr, "edgekv account create: %s\n", ekv_strerror(w.status));
        goto out;
    }
    char account_id[EKV_ID_HEX_LEN + 1];
    snprintf(account_id, sizeof(account_id), "%s", w.account.id);
    char secret[41];
    memset(&w, 0, sizeof(w));
    w.type = EKV_OP_TOKEN_CREATE;
    if (ekv_random_token(secret) || ekv_random_id(w.token.id))
        goto out;
    ekv_token_hash(secret, strlen(secret), w.token.hash);
    snprintf(w.token.account_id, sizeof(w.token.account_id), "%s", account_id);
    snprintf(w.token.name, sizeof(w.token.name), "admin");
    w.token.perms = EKV_PERM_ADMIN | EKV_PERM_KV_READ | EKV_PERM_KV_WRITE;
    w.token.created_ms = ekv_clock_now_ms();
    if (ekv_store_write_sync(store, &w)) {
        fprintf(stderr, "edgekv account create: account %s created, its admin token not: %s\n",
                account_id, ekv_strerror(w.status));
        goto out;
    }
    printf("account:  %s\nname:     %s\ntoken id: %s\ntoken:    %s\n"
           "(an admin token for this account, shown only this once)\n",
           account_id, name, w.token.id, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
    rc = 0;
out:
    ekv_cli_catalog_close(store, cat);
    return rc;
}
