/*
 * status.h - `edgekv status` and `edgekv promote` (server/cli/status.c).
 */
#ifndef EKV_SERVER_CLI_STATUS_H
#define EKV_SERVER_CLI_STATUS_H

/* cmd is "status" or "promote"; argv holds the arguments after it. Returns the exit code. */
int ekv_repl_cli(const char *cmd, int argc, char **argv);

#endif
