/*
 * do.c - `edgekv do namespace create|list|delete`: Durable Object namespaces of a running
 * node, through its REST API (docs/API.md "Durable Objects") with the HTTP client's blocking
 * helper. Prints the API's `result` as JSON on stdout; errors go to stderr with the API's
 * code and message, exit status 1 (2 for usage errors).
 */
#include "server/cli/cli.h"

#include "common/buf.h"
#include "common/errors.h"
#include "server/http/client.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMEOUT_MS 30000

static void usage(FILE *out)
{
    fprintf(out, "usage: edgekv do namespace create --name NAME --class CLASS [--script URL]\n"
                 "                                  [--kv-backed]\n"
                 "       edgekv do namespace list\n"
                 "       edgekv do namespace delete ID\n\n"
                 "Manage the Durable Object namespaces of a running edgekv. Every form takes\n"
                 "  --url http://HOST:PORT   (default $EDGEKV_URL, then http://127.0.0.1:8787)\n"
                 "  --account ID             (default $CLOUDFLARE_ACCOUNT_ID)\n"
                 "  --token TOKEN            (default $CLOUDFLARE_API_TOKEN; needs do:write)\n"
                 "--script is the URL of the service that runs the objects' code (calls and\n"
                 "alarms go there); --kv-backed makes a KV-backed class (128 KiB values) instead\n"
                 "of the default SQLite-backed one. Prints the result as JSON.\n");
}

typedef struct {
    const char *url, *account, *token;
    const char *name, *class_name, *script;
    int kv_backed;
    const char *id;
} do_args_t;

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && v[0] ? v : def;
}

/* One API call; prints the result or the error. Exit code. */
static int api(const do_args_t *a, const char *method, const char *path, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    size_t ulen = strlen(a->url);
    while (ulen && a->url[ulen - 1] == '/')
        ulen--;
    size_t need = ulen + strlen(path) + strlen(a->account) + 128;
    char *full = malloc(need), *auth = malloc(strlen(a->token) + 16);
    if (!full || !auth || (body && !text)) {
        fprintf(stderr, "edgekv: out of memory\n");
        free(full);
        free(auth);
        free(text);
        return 1;
    }
    snprintf(full, need, "%s%.*s/client/v4/accounts/%s/workers/durable_objects/namespaces%s",
             strstr(a->url, "://") ? "" : "http://", (int)ulen, a->url, a->account, path);
    sprintf(auth, "Bearer %s", a->token);
    ekv_http_header_t hdr[2] = {{"Authorization", auth}, {"Content-Type", "application/json"}};
    ekv_http_response_t *resp = NULL;
    int rc = ekv_http_fetch_sync(method, full, hdr, text ? 2 : 1, text, text ? strlen(text) : 0,
                                 TIMEOUT_MS, &resp);
    free(full);
    free(auth);
    free(text);
    if (rc) {
        fprintf(stderr, "edgekv: cannot reach %s: %s\n", a->url, ekv_strerror(rc));
        return 1;
    }
    json_error_t jerr;
    json_t *env = json_loadb(resp->body, resp->body_len, 0, &jerr);
    int ok = env && json_is_true(json_object_get(env, "success"));
    if (ok) {
        char *out = json_dumps(json_object_get(env, "result"), JSON_INDENT(2) | JSON_ENCODE_ANY);
        printf("%s\n", out ? out : "null");
        free(out);
    } else {
        json_t *e0 = env ? json_array_get(json_object_get(env, "errors"), 0) : NULL;
        fprintf(stderr, "edgekv: HTTP %d: %lld %s\n", resp->status,
                (long long)json_integer_value(json_object_get(e0, "code")),
                e0 ? json_string_value(json_object_get(e0, "message")) : "(no error message)");
    }
    json_decref(env);
    ekv_http_response_free(resp);
    return ok ? 0 : 1;
}

int ekv_do_cli(int argc, char **argv)
{
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        usage(argc < 1 ? stderr : stdout);
        return argc < 1 ? 2 : 0;
    }
    if (strcmp(argv[0], "namespace") != 0 || argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    do_args_t a = {.url = env_or("EDGEKV_URL", "http://127.0.0.1:8787"),
                   .account = env_or("CLOUDFLARE_ACCOUNT_ID", ""),
                   .token = env_or("CLOUDFLARE_API_TOKEN", "")};
    for (int i = 2; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--kv-backed")) {
            a.kv_backed = 1;
            continue;
        }
        const char **slot = !strcmp(f, "--url")       ? &a.url
                            : !strcmp(f, "--account") ? &a.account
                            : !strcmp(f, "--token")   ? &a.token
                            : !strcmp(f, "--name")    ? &a.name
                            : !strcmp(f, "--class")   ? &a.class_name
                            : !strcmp(f, "--script")  ? &a.script
                                                      : NULL;
        if (slot && v) {
            *slot = v;
            i++;
        } else if (f[0] != '-' && !a.id) {
            a.id = f;
        } else {
            fprintf(stderr, "edgekv: unknown or incomplete argument '%s'\n", f);
            usage(stderr);
            return 2;
        }
    }
    if (!a.account[0] || !a.token[0]) {
        fprintf(stderr, "edgekv: --account and --token (or CLOUDFLARE_ACCOUNT_ID and "
                        "CLOUDFLARE_API_TOKEN) are needed\n");
        return 2;
    }
    if (!strcmp(verb, "list"))
        return api(&a, "GET", "?per_page=1000", NULL);
    if (!strcmp(verb, "delete")) {
        if (!a.id || strlen(a.id) > 64) {
            fprintf(stderr, "edgekv: do namespace delete needs the namespace ID\n");
            return 2;
        }
        char path[80];
        snprintf(path, sizeof(path), "/%s", a.id);
        return api(&a, "DELETE", path, NULL);
    }
    if (!strcmp(verb, "create")) {
        if (!a.name || !a.class_name) {
            fprintf(stderr, "edgekv: do namespace create needs --name and --class\n");
            return 2;
        }
        json_t *body = json_pack("{s:s, s:s, s:b}", "name", a.name, "class", a.class_name,
                                 "use_sqlite", !a.kv_backed);
        if (a.script)
            json_object_set_new(body, "script", json_string(a.script));
        int rc = api(&a, "POST", "", body);
        json_decref(body);
        return rc;
    }
    usage(stderr);
    return 2;
}
