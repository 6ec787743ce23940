/*
 * server/cli/ - the administrative subcommands of the edgekv binary (server/main.c):
 *
 *   token.c   `edgekv token create|list|revoke`: on a stopped server's data dir (RocksDB
 *             allows one process per database; with the server running, use the admin API)
 *   status.c  `edgekv status` / `edgekv promote`: a running node's replication endpoints,
 *             over the HTTP client's blocking helper (server/http/client.h)
 *   account.c `edgekv account create|list`: accounts on a stopped server's data dir
 *   offline.c a stopped server's catalog, opened for token.c and account.c
 *   do.c      `edgekv do namespace create|list|delete`: Durable Object namespaces of a
 *             running node, through its REST API
 *   secret.c  `edgekv secret generate`: a new cluster secret on stdout; `edgekv secret
 *             operator-token`: the cluster operator token
 *
 * Each takes the arguments after its subcommand and returns the process exit code. The CLI
 * is the top server layer: it may include server/node/, server/api/, server/http/ and below.
 */
#ifndef EKV_SERVER_CLI_CLI_H
#define EKV_SERVER_CLI_CLI_H

/* argv starts after "token". */
int ekv_token_cli(int argc, char **argv);
/* cmd is "status" or "promote"; argv holds the arguments after it. */
int ekv_repl_cli(const char *cmd, int argc, char **argv);
/* `edgekv health [--url URL]`: 0 when GET /healthz answers 200 (health.c). */
int ekv_health_cli(int argc, char **argv);
/* argv starts after "account". */
int ekv_account_cli(int argc, char **argv);
/* argv starts after "secret". */
int ekv_secret_cli(int argc, char **argv);
/* argv starts after "do". */
int ekv_do_cli(int argc, char **argv);

#endif
