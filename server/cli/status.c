/*
 * status.c - `edgekv status` and `edgekv promote`: talk to a running node's replication
 * endpoints (server/node/admin.c) over HTTP/1.1 with the blocking helper of the HTTP client
 * (ekv_http_fetch_sync: a private loop, a 10 s bound on the whole call, a bounded response).
 */
#include "server/cli/cli.h"

#include "common/buf.h"
#include "common/errors.h"
#include "server/http/client.h"
#include "server/node/config.h"

#include <openssl/crypto.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 10000

static void usage(FILE *out, const char *cmd)
{
    if (!strcmp(cmd, "status"))
        fprintf(out, "usage: edgekv status [--url http://HOST:PORT] [--json]\n\n"
                     "Show a node's role, epoch, history, sequence numbers, replicas and lag.\n"
                     "--url defaults to $EDGEKV_URL, then http://127.0.0.1:8787.\n");
    else
        fprintf(out,
                "usage: edgekv promote [--url http://HOST:PORT] [--operator-token TOKEN]\n"
                "                      [--cluster-secret-file FILE] [--data-dir DIR]\n\n"
                "Make a replica the primary: new epoch and history id; it stops following,\n"
                "accepts writes, serves replicas on its --repl-listen and fences the old\n"
                "primary. Promote the replica with the highest last_seq (edgekv status).\n"
                "It needs the cluster operator token (not an account token): --operator-token\n"
                "(or --token), else $EDGEKV_OPERATOR_TOKEN, else derived from the cluster secret\n"
                "(--cluster-secret-file, $EDGEKV_CLUSTER_SECRET_FILE, $EDGEKV_CLUSTER_SECRET) or\n"
                "a standalone node's DIR/operator.secret.\n");
}

/* One request to path on the node at url ("http://HOST:PORT"; the scheme may be left out and
 * a path in it is ignored); *body is malloc'd (NUL-terminated). Returns the HTTP status or
 * -1 after printing why. */
static int http_call(const char *url, const char *method, const char *path, const char *token,
                     char **body)
{
    *body = NULL;
    ekv_http_url_t *u = malloc(sizeof(*u));
    char *with_scheme = malloc(strlen(url) + 8);
    char *full = malloc(sizeof(u->host) + strlen(path) + 32);
    char *auth = token ? malloc(strlen(token) + 8) : NULL;
    ekv_http_header_t hdr[1] = {{"Authorization", auth}};
    ekv_http_response_t *resp = NULL;
    int status = -1, rc, v6;
    if (!u || !with_scheme || !full || (token && !auth)) {
        fprintf(stderr, "edgekv: out of memory\n");
        goto out;
    }
    sprintf(with_scheme, "%s%s", strstr(url, "://") ? "" : "http://", url);
    if (ekv_http_url_parse(with_scheme, u)) {
        fprintf(stderr, "edgekv: bad --url '%s' (want http://HOST:PORT)\n", url);
        goto out;
    }
    v6 = strchr(u->host, ':') != NULL; /* an IPv6 host goes in brackets */
    sprintf(full, "http://%s%s%s:%d%s", v6 ? "[" : "", u->host, v6 ? "]" : "", u->port, path);
    if (token)
        sprintf(auth, "Bearer %s", token);
    rc = ekv_http_fetch_sync(method, full, hdr, token ? 1 : 0, NULL, 0, TIMEOUT_MS, &resp);
    switch (rc) {
    case 0:
        status = resp->status;
        *body = ekv_memdup_z(resp->body, resp->body_len);
        ekv_http_response_free(resp);
        break;
    case EKV_EHTTP_DNS:
        fprintf(stderr, "edgekv: cannot resolve %s: %s\n", u->host, ekv_strerror(rc));
        break;
    case EKV_EHTTP_CONNECT_REFUSED:
    case EKV_EHTTP_CONNECT_TIMEOUT:
        fprintf(stderr, "edgekv: cannot connect to %s: %s\n", url,
                strerror(rc == EKV_EHTTP_CONNECT_REFUSED ? ECONNREFUSED : ETIMEDOUT));
        break;
    case EKV_EHTTP_CONNECT:
        fprintf(stderr, "edgekv: cannot connect to %s: %s\n", url, ekv_strerror(rc));
        break;
    case EKV_ETIMEOUT:
    case EKV_EHTTP_CLOSED:
    case EKV_EHTTP_BAD_RESPONSE:
    case EKV_EHTTP_RESP_HEADERS_TOO_LARGE:
    case EKV_EHTTP_RESP_TOO_LARGE:
        fprintf(stderr, "edgekv: malformed or no response from %s\n", url);
        break;
    default: /* a token that cannot go in a header, no memory */
        fprintf(stderr, "edgekv: cannot send the request: %s\n", ekv_strerror(rc));
        break;
    }
out:
    free(u);
    free(with_scheme);
    free(full);
    free(auth);
    return status;
}

static void print_value(const char *indent, const char *key, json_t *v)
{
    if (json_is_object(v)) {
        printf("%s%s:\n", indent, key);
        const char *k;
        json_t *x;
        char ind[64];
        snprintf(ind, sizeof(ind), "%s  ", indent);
        json_object_foreach(v, k, x) print_value(ind, k, x);
        return;
    }
    if (json_is_array(v)) {
        printf("%s%s: %zu\n", indent, key, json_array_size(v));
        size_t i;
        json_t *x;
        char ind[64], name[32];
        snprintf(ind, sizeof(ind), "%s  ", indent);
        json_array_foreach(v, i, x)
        {
            snprintf(name, sizeof(name), "[%zu]", i);
            print_value(ind, name, x);
        }
        return;
    }
    if (json_is_string(v)) { /* human-readable: no quotes */
        printf("%s%s: %s\n", indent, key, json_string_value(v));
        return;
    }
    if (json_is_null(v)) {
        printf("%s%s: -\n", indent, key);
        return;
    }
    char *s = json_dumps(v, JSON_ENCODE_ANY);
    printf("%s%s: %s\n", indent, key, s ? s : "?");
    free(s);
}

/* The operator token from the same secret flags/env as `edgekv serve`. 0 or -1. */
static int derive_operator_token(const char *secret_file, const char *data_dir, char out[65])
{
    char *av[5] = {"promote", NULL, NULL, NULL, NULL};
    int ac = 1;
    if (secret_file) {
        av[ac++] = "--cluster-secret-file";
        av[ac++] = (char *)secret_file;
    }
    if (data_dir) {
        av[ac++] = "--data-dir";
        av[ac++] = (char *)data_dir;
    }
    ekv_config_t cfg;
    int created = 0;
    int rc = ekv_config_load(&cfg, ac, av, 1);
    if (rc == 0)
        rc = ekv_config_operator_token(&cfg, 0, out, &created);
    ekv_config_free(&cfg);
    return rc ? -1 : 0;
}

int ekv_repl_cli(const char *cmd, int argc, char **argv)
{
    const char *url = getenv("EDGEKV_URL");
    const char *token = getenv("EDGEKV_OPERATOR_TOKEN");
    const char *secret_file = NULL, *data_dir = NULL;
    char derived[65] = "";
    if (!url)
        url = "http://127.0.0.1:8787";
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout, cmd);
            return 0;
        } else if (!strcmp(argv[i], "--url") && i + 1 < argc) {
            url = argv[++i];
        } else if ((!strcmp(argv[i], "--token") || !strcmp(argv[i], "--operator-token")) &&
                   i + 1 < argc) {
            token = argv[++i];
        } else if (!strcmp(argv[i], "--cluster-secret-file") && i + 1 < argc) {
            secret_file = argv[++i];
        } else if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
            data_dir = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            fprintf(stderr, "edgekv %s: unexpected argument '%s'\n", cmd, argv[i]);
            usage(stderr, cmd);
            return 2;
        }
    }
    int promote = !strcmp(cmd, "promote");
    if (promote && (!token || secret_file || data_dir)) {
        if (derive_operator_token(secret_file, data_dir, derived)) {
            fprintf(stderr, "edgekv promote: the cluster operator token is needed "
                            "(--operator-token, EDGEKV_OPERATOR_TOKEN, or the cluster secret "
                            "with --cluster-secret-file / EDGEKV_CLUSTER_SECRET[_FILE])\n");
            return 2;
        }
        token = derived;
    }
    char *body = NULL;
    int status = http_call(url, promote ? "POST" : "GET",
                           promote ? "/_edgekv/replication/promote" : "/_edgekv/replication/status",
                           promote ? token : NULL, &body);
    if (status < 0)
        return 1;
    json_error_t jerr;
    json_t *root = body ? json_loads(body, 0, &jerr) : NULL;
    json_t *result = root ? json_object_get(root, "result") : NULL;
    int ok = status == 200 && json_is_true(json_object_get(root, "success"));
    if (!ok) {
        json_t *e0 = root ? json_array_get(json_object_get(root, "errors"), 0) : NULL;
        const char *msg = e0 ? json_string_value(json_object_get(e0, "message")) : NULL;
        fprintf(stderr, "edgekv %s: HTTP %d: %s\n", cmd, status, msg ? msg : (body ? body : ""));
    } else if (as_json) {
        char *s = json_dumps(result, JSON_INDENT(2));
        printf("%s\n", s ? s : "null");
        free(s);
    } else {
        const char *k;
        json_t *v;
        if (promote)
            printf("promoted %s to primary\n", url);
        json_object_foreach(result, k, v) print_value("", k, v);
    }
    json_decref(root);
    free(body);
    OPENSSL_cleanse(derived, sizeof(derived));
    return ok ? 0 : 1;
}
