/* token.h - `edgekv token ...` (argv starts after "token"). Returns the exit code. */
#ifndef EKV_SERVER_CLI_TOKEN_H
#define EKV_SERVER_CLI_TOKEN_H

int ekv_token_cli(int argc, char **argv);

#endif
