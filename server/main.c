/*
 * main.c - the edgekv binary: `edgekv [serve] [flags]` and admin subcommands.
 */
#include "server/cli/cli.h"
#include "server/node/config.h"
#include "server/node/node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef EKV_VERSION
#define EKV_VERSION "0.1.0"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "edgekv %s - a self-hosted Workers KV and Durable Objects REST API\n\n"
            "usage:\n"
            "  edgekv [serve] [--role standalone] [--listen HOST:PORT] [--data-dir DIR] ...\n"
            "  edgekv [serve] --role primary --repl-listen HOST:PORT ...\n"
            "  edgekv [serve] --role replica --primary HOST:PORT ...\n"
            "  edgekv token create|list|revoke ...\n"
            "  edgekv account create|list ...    accounts (offline; running: /_edgekv/accounts)\n"
            "  edgekv status [--url URL]         replication status of a running node\n"
            "  edgekv health [--url URL]         exit 0 when the node answers /healthz (probes)\n"
            "  edgekv promote [--url URL]        make a replica the primary\n"
            "  edgekv secret generate > FILE     a new cluster secret (--cluster-secret-file)\n"
            "  edgekv secret operator-token      the cluster operator token (promote, checksum)\n"
            "  edgekv do namespace create|list|delete ...   Durable Object namespaces\n"
            "  edgekv version\n\n"
            "`edgekv serve --help` and `edgekv token --help` list the flags.\n",
            EKV_VERSION);
}

int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 1) {
        const char *cmd = argv[1];
        if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
            printf("edgekv %s\n", EKV_VERSION);
            return 0;
        }
        if (!strcmp(cmd, "token"))
            return ekv_token_cli(argc - 2, argv + 2);
        if (!strcmp(cmd, "account"))
            return ekv_account_cli(argc - 2, argv + 2);
        if (!strcmp(cmd, "secret"))
            return ekv_secret_cli(argc - 2, argv + 2);
        if (!strcmp(cmd, "do"))
            return ekv_do_cli(argc - 2, argv + 2);
        if (!strcmp(cmd, "health"))
            return ekv_health_cli(argc - 2, argv + 2);
        if (!strcmp(cmd, "status") || !strcmp(cmd, "promote"))
            return ekv_repl_cli(cmd, argc - 2, argv + 2);
        if (!strcmp(cmd, "serve"))
            first = 2;
        else if (cmd[0] != '-') {
            fprintf(stderr, "edgekv: unknown command '%s'\n", cmd);
            usage(stderr);
            return 2;
        }
    }
    ekv_config_t cfg;
    int rc = ekv_config_load(&cfg, argc, argv, first);
    if (rc) {
        ekv_config_free(&cfg);
        return rc > 0 ? 0 : 2;
    }
    rc = ekv_serve(&cfg);
    ekv_config_free(&cfg);
    if (rc == EKV_SERVE_RESTART) {
        /* stepped down (--coordinator): the same command line again, a clean new process
         * that asks etcd for its role (the old one stopped and closed everything) */
        fflush(NULL);
        execv("/proc/self/exe", argv);
        fprintf(stderr,
                "edgekv: cannot restart itself (%s): exiting for the supervisor to "
                "restart it\n",
                strerror(errno));
        return 1;
    }
    return rc;
}
