/*
 * libFuzzer target for server/http/resp_parser.c: HTTP/1.x responses from an untrusted
 * upstream, as the client's connections feed them.
 *
 * Input: byte 0 = control (bit 0: the request was HEAD; bit 1: tiny limits, 64 header bytes,
 * 4 headers, 32 body bytes, instead of the defaults; bits 2..7 seed the piece sizes), then
 * the byte stream, fed in pieces of 1..32 bytes, each in its own heap block freed after the
 * call (so ASan sees any read past a piece). A complete response is checked and the parser
 * starts again on the bytes after it (as on a keep-alive connection); the end of the input is
 * EOF (finish).
 *
 * Checks beyond ASan/UBSan: *used never exceeds the piece; errors are from the documented
 * set and sticky; a response has a final status (200..999), at most max_headers headers whose
 * names and values fit in max_header_bytes, non-empty names, values without surrounding
 * whitespace, each found by a case-insensitive lookup; a body within max_body_bytes, NUL-
 * terminated, empty for HEAD, 204 and 304.
 */
#include "common/errors.h"
#include "server/http/client.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int known_error(int rc)
{
    return rc == EKV_EHTTP_BAD_RESPONSE || rc == EKV_EHTTP_RESP_HEADERS_TOO_LARGE ||
           rc == EKV_EHTTP_RESP_TOO_LARGE || rc == EKV_EHTTP_CLOSED;
}

static void check_response(const ekv_http_response_t *r, const ekv_http_resp_limits_t *lim,
                           int head)
{
    if (!r || r->status < 200 || r->status > 999)
        abort();
    if (r->nheaders > lim->max_headers)
        abort();
    size_t bytes = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *n = r->headers[i].name, *v = r->headers[i].value;
        size_t nl = strlen(n), vl = strlen(v);
        if (nl == 0)
            abort();
        if (vl && (v[0] == ' ' || v[0] == '\t' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            abort();
        bytes += nl + vl;
        const char *found = ekv_http_response_header(r, n);
        if (!found || strcasecmp(ekv_http_response_header(r, n), found) != 0)
            abort();
    }
    if (bytes > lim->max_header_bytes)
        abort();
    if (!r->body || r->body_len > lim->max_body_bytes || r->body[r->body_len] != '\0')
        abort();
    if ((head || r->status == 204 || r->status == 304) && r->body_len != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    int head = ctl & 1;
    ekv_http_resp_limits_t lim = {0, 0, 0};
    if (ctl & 2)
        lim = (ekv_http_resp_limits_t){64, 4, 32};
    ekv_http_resp_limits_t eff = lim; /* the defaults the parser applies */
    if (!eff.max_header_bytes)
        eff.max_header_bytes = EKV_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!eff.max_headers)
        eff.max_headers = EKV_HTTP_DEFAULT_MAX_HEADERS;
    if (!eff.max_body_bytes)
        eff.max_body_bytes = EKV_HTTP_DEFAULT_MAX_BODY_BYTES;
    data++;
    size--;

    ekv_http_resp_parser_t p;
    ekv_http_resp_parser_init(&p, &lim, head);
    size_t off = 0;
    unsigned seed = ctl >> 2;
    int err = 0;
    while (off < size && !err) {
        size_t piece = 1 + (seed = seed * 1103515245u + 12345u) % 32;
        if (piece > size - off)
            piece = size - off;
        char *blk = malloc(piece);
        memcpy(blk, data + off, piece);
        size_t pos = 0;
        while (pos < piece) {
            size_t used = 0;
            int rc = ekv_http_resp_parser_feed(&p, blk + pos, piece - pos, &used);
            if (used > piece - pos)
                abort();
            if (rc == 0) {
                if (used != piece - pos)
                    abort();
                pos = piece;
            } else if (rc == 1) {
                ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
                check_response(r, &eff, head);
                if (ekv_http_resp_parser_take(&p) != NULL)
                    abort(); /* taken once */
                ekv_http_response_free(r);
                pos += used;
                ekv_http_resp_parser_deinit(&p);
                ekv_http_resp_parser_init(&p, &lim, head);
            } else {
                if (!known_error(rc))
                    abort();
                size_t u2;
                if (ekv_http_resp_parser_feed(&p, "HTTP/1.1 200 OK\r\n\r\n", 19, &u2) != rc ||
                    ekv_http_resp_parser_finish(&p) != rc) /* sticky */
                    abort();
                err = rc;
                break;
            }
        }
        free(blk);
        off += piece;
    }
    if (!err) {
        int rc = ekv_http_resp_parser_finish(&p);
        if (rc == 1) {
            ekv_http_response_t *r = ekv_http_resp_parser_take(&p);
            check_response(r, &eff, head);
            ekv_http_response_free(r);
        } else if (!known_error(rc)) {
            abort();
        }
    }
    ekv_http_resp_parser_deinit(&p);
    return 0;
}
