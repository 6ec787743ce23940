/*
 * health.c - `edgekv health [--url URL] [--timeout-ms N]`: the container HEALTHCHECK and the
 * Kubernetes probes (no curl in the image). Exit 0 when GET URL/healthz answers 200 within
 * the timeout, 1 otherwise (the reason on stderr), 2 on bad usage.
 *
 * The default URL is the node's own API as its environment configures it: EDGEKV_LISTEN
 * (HOST:PORT, a wildcard host becomes 127.0.0.1), else http://127.0.0.1:8787.
 */
#include "server/cli/cli.h"

#include "common/errors.h"
#include "server/http/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: edgekv health [--url http://HOST:PORT] [--timeout-ms N]\n\n"
                 "Exit 0 when the node answers GET /healthz with 200 (default URL from\n"
                 "$EDGEKV_LISTEN, else http://127.0.0.1:8787; default timeout 3000 ms).\n");
}

/* http://HOST:PORT of the local API from a HOST:PORT listen address. */
static void url_of_listen(const char *listen, char *out, size_t cap)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1]) {
        snprintf(out, cap, "http://127.0.0.1:8787");
        return;
    }
    size_t hl = (size_t)(colon - listen);
    char host[256];
    snprintf(host, sizeof(host), "%.*s", (int)(hl < sizeof(host) ? hl : 0), listen);
    if (!host[0] || !strcmp(host, "0.0.0.0"))
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (!strcmp(host, "[::]") || !strcmp(host, "::"))
        snprintf(host, sizeof(host), "[::1]");
    snprintf(out, cap, "http://%s:%s", host, colon + 1);
}

int ekv_health_cli(int argc, char **argv)
{
    char url[1024];
    const char *listen = getenv("EDGEKV_LISTEN");
    url_of_listen(listen && *listen ? listen : "127.0.0.1:8787", url, sizeof(url));
    long timeout_ms = 3000;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--url") && i + 1 < argc) {
            snprintf(url, sizeof(url), "%s%s", strstr(argv[i + 1], "://") ? "" : "http://",
                     argv[i + 1]);
            i++;
        } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) {
            char *end;
            timeout_ms = strtol(argv[++i], &end, 10);
            if (*end || timeout_ms < 1 || timeout_ms > 600000) {
                fprintf(stderr, "edgekv health: --timeout-ms must be 1..600000\n");
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    /* the path of --url is replaced by /healthz */
    char *p = strstr(url, "://");
    p = p ? strchr(p + 3, '/') : NULL;
    if (p)
        *p = '\0';
    if (strlen(url) + 9 >= sizeof(url)) {
        fprintf(stderr, "edgekv health: URL too long\n");
        return 2;
    }
    strcat(url, "/healthz");
    ekv_http_response_t *r = NULL;
    int rc = ekv_http_fetch_sync("GET", url, NULL, 0, NULL, 0, (int)timeout_ms, &r);
    if (rc) {
        fprintf(stderr, "edgekv health: %s: %s\n", url, ekv_err_name(rc));
        return 1;
    }
    int ok = r->status == 200;
    if (!ok)
        fprintf(stderr, "edgekv health: %s answered %d: %.200s\n", url, r->status, r->body);
    ekv_http_response_free(r);
    return ok ? 0 : 1;
}
