/*
 * secret.c - `edgekv secret generate`: print a new cluster secret (32 random bytes as 64 hex
 * characters and a newline) for --cluster-secret-file (docs/REPLICATION.md, "Link
 * authentication"). Redirect it to a file that only the server's user can read:
 *
 *   (umask 077; edgekv secret generate > /etc/edgekv/cluster.secret)
 */
#include "server/cli/cli.h"

#include "replication/auth.h"
#include "server/api/auth.h"
#include "server/node/config.h"

#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static void secret_usage(FILE *out)
{
    fprintf(out, "usage: edgekv secret generate > FILE\n"
                 "       edgekv secret operator-token [--cluster-secret-file FILE] "
                 "[--data-dir DIR]\n\n"
                 "generate: print a new cluster secret (64 hex characters). Every node of a "
                 "cluster reads the same one\nwith --cluster-secret-file FILE (keep it mode "
                 "600).\n"
                 "operator-token: print the cluster operator token (promote, checksum, "
                 "/_edgekv/accounts),\nderived from the cluster secret (same flags and "
                 "EDGEKV_CLUSTER_SECRET[_FILE] env as serve),\nor on a node without one from "
                 "DIR/operator.secret.\n");
}

int ekv_secret_cli(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        secret_usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "operator-token")) {
        ekv_config_t cfg;
        char tok[EKV_OPERATOR_TOKEN_LEN + 1];
        int created = 0;
        int rc = ekv_config_load(&cfg, argc, argv, 1);
        if (rc == 0)
            rc = ekv_config_operator_token(&cfg, 0, tok, &created);
        ekv_config_free(&cfg);
        if (rc) {
            if (rc < 0)
                fprintf(stderr, "edgekv: no operator token: give the cluster secret or the "
                                "data dir of a node that has started once\n");
            return rc < 0 ? 1 : 0;
        }
        printf("%s\n", tok);
        OPENSSL_cleanse(tok, sizeof(tok));
        return fflush(stdout) ? 1 : 0;
    }
    if (strcmp(argv[0], "generate") || argc > 1) {
        secret_usage(stderr);
        return 2;
    }
    uint8_t raw[32];
    if (ekv_repl_auth_random(raw, sizeof(raw))) {
        fprintf(stderr, "edgekv: no random bytes from the system\n");
        return 1;
    }
    char hex[2 * sizeof(raw) + 2];
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * sizeof(raw)] = '\n';
    hex[2 * sizeof(raw) + 1] = '\0';
    int rc = fputs(hex, stdout) < 0 || fflush(stdout) ? 1 : 0;
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(hex, sizeof(hex));
    if (rc)
        fprintf(stderr, "edgekv: cannot write the secret\n");
    return rc;
}
