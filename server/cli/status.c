/*
 * status.c - `edgekv status` and `edgekv promote`: talk to a running node's replication
 * endpoints (server/node/admin.c) over HTTP/1.1. A CLI, so plain blocking sockets, with a
 * timeout on every step and a bounded response.
 */
#include "server/cli/status.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_RESPONSE (4u << 20)
#define TIMEOUT_S    10

static void usage(FILE *out, const char *cmd)
{
    if (!strcmp(cmd, "status"))
        fprintf(out, "usage: edgekv status [--url http://HOST:PORT] [--json]\n\n"
                     "Show a node's role, epoch, history, sequence numbers, replicas and lag.\n"
                     "--url defaults to $EDGEKV_URL, then http://127.0.0.1:8787.\n");
    else
        fprintf(out, "usage: edgekv promote [--url http://HOST:PORT] [--token TOKEN]\n\n"
                     "Make a replica the primary: new epoch and history id; it stops following,\n"
                     "accepts writes, serves replicas on its --repl-listen and fences the old\n"
                     "primary. Promote the replica with the highest last_seq (edgekv status).\n"
                     "--token defaults to $EDGEKV_TOKEN, then $CLOUDFLARE_API_TOKEN (an admin "
                     "token).\n");
}

/* "http://host:port" -> host, port. */
static int parse_url(const char *url, char *host, size_t cap, char *port, size_t pcap)
{
    const char *p = url;
    if (!strncmp(p, "http://", 7))
        p += 7;
    else if (strstr(p, "://"))
        return -1;
    size_t n = strcspn(p, "/");
    char hp[300];
    if (n == 0 || n >= sizeof(hp))
        return -1;
    memcpy(hp, p, n);
    hp[n] = '\0';
    char *colon = strrchr(hp, ':');
    const char *pt = "80";
    if (colon) {
        *colon = '\0';
        pt = colon + 1;
    }
    if (strlen(hp) >= cap || strlen(pt) >= pcap || !hp[0])
        return -1;
    strcpy(host, hp);
    strcpy(port, pt);
    return 0;
}

/* One request; *body is malloc'd (NUL-terminated). Returns the HTTP status or -1. */
static int http_call(const char *url, const char *method, const char *path, const char *token,
                     char **body)
{
    char host[256], port[16];
    *body = NULL;
    if (parse_url(url, host, sizeof(host), port, sizeof(port))) {
        fprintf(stderr, "edgekv: bad --url '%s' (want http://HOST:PORT)\n", url);
        return -1;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai) {
        fprintf(stderr, "edgekv: cannot resolve %s: %s\n", host, gai_strerror(gai));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, "edgekv: cannot connect to %s: %s\n", url, strerror(errno));
        return -1;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: 0\r\n"
                     "%s%s%s\r\n",
                     method, path, host, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req) || write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "edgekv: cannot send the request: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    char *buf = malloc(MAX_RESPONSE + 1);
    size_t len = 0;
    ssize_t r;
    while (buf && len < MAX_RESPONSE && (r = read(fd, buf + len, MAX_RESPONSE - len)) > 0)
        len += (size_t)r;
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0';
    int status = 0;
    char *sep = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/1.%*c %d", &status) != 1 || !sep) {
        fprintf(stderr, "edgekv: malformed or no response from %s\n", url);
        free(buf);
        return -1;
    }
    *body = strdup(sep + 4);
    free(buf);
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

int ekv_repl_cli(const char *cmd, int argc, char **argv)
{
    const char *url = getenv("EDGEKV_URL");
    const char *token = getenv("EDGEKV_TOKEN");
    if (!token)
        token = getenv("CLOUDFLARE_API_TOKEN");
    if (!url)
        url = "http://127.0.0.1:8787";
    int as_json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout, cmd);
            return 0;
        } else if (!strcmp(argv[i], "--url") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strcmp(argv[i], "--token") && i + 1 < argc) {
            token = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else {
            fprintf(stderr, "edgekv %s: unexpected argument '%s'\n", cmd, argv[i]);
            usage(stderr, cmd);
            return 2;
        }
    }
    int promote = !strcmp(cmd, "promote");
    if (promote && !token) {
        fprintf(stderr, "edgekv promote: an admin token is needed (--token, EDGEKV_TOKEN or "
                        "CLOUDFLARE_API_TOKEN)\n");
        return 2;
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
    return ok ? 0 : 1;
}
