/*
 * auth.h - authenticate a request from its Authorization / X-Auth-Key headers.
 * Loop thread. See docs/API.md "Authentication" for the error table.
 */
#ifndef EKV_SERVER_API_AUTH_H
#define EKV_SERVER_API_AUTH_H

#include "server/api/catalog.h"
#include "server/http/server.h"

/* New random ids (UUID v4 as 32 hex, no dashes) / token secrets (40 chars base64url), from OpenSSL
 * RAND_bytes. */
int ekv_random_id(char out[EKV_ID_HEX_LEN + 1]);
int ekv_random_token(char out[41]);
/* Hex SHA-256 of a token secret: the only form in which tokens are stored. */
void ekv_token_hash(const char *secret, size_t len, char out[EKV_TOKEN_HASH_LEN + 1]);

/*
 * The cluster operator credential (docs/API.md "Operator API"): the operator token is the hex
 * HMAC-SHA256 of the node's operator secret (its cluster secret, or on a node without one the
 * data dir's operator.secret) over "edgekv-operator v1", so the secret itself never travels.
 * The node keeps only its ekv_token_hash (ekv_app_t.operator_hash).
 */
#define EKV_OPERATOR_TOKEN_LEN 64
int ekv_operator_token(const void *secret, size_t len, char out[EKV_OPERATOR_TOKEN_LEN + 1]);
/* 0 when the request carries Authorization: Bearer <operator token> whose hash is op_hash
 * (compared in constant time); else -1 after logging and answering 403/10000. An empty
 * op_hash refuses everything. Account tokens are never accepted here. */
int ekv_auth_operator_or_reply(const char *op_hash, ekv_req_t *req);

/* 0 with *out = the token, or -1 after answering the error (9106, 6003, 10000, or 1000 when
 * verify_style: the /tokens/verify routes answer 401 "Invalid API Token"). */
int ekv_auth_or_reply(ekv_catalog_t *cat, ekv_req_t *req, int verify_style,
                      const ekv_token_t **out);

#endif
