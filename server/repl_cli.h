/*
 * repl_cli.h - `edgekv status` and `edgekv promote` (server/repl_cli.c).
 */
#ifndef EKV_SERVER_REPL_CLI_H
#define EKV_SERVER_REPL_CLI_H

/* cmd is "status" or "promote"; argv holds the arguments after it. Returns the exit code. */
int ekv_repl_cli(const char *cmd, int argc, char **argv);

#endif
