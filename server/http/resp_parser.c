/*
 * resp_parser.c - one HTTP/1.x response from bytes, with llhttp (contract in client.h).
 *
 * Pure: no loop, no I/O, so the fuzz target runs it directly. Limits are checked as bytes
 * arrive, before anything grows: status reason + header names/values + chunk extensions +
 * trailers against max_header_bytes, the field count against max_headers, a Content-Length
 * against max_body_bytes at the end of the headers and every body piece as it comes.
 * Header fields are copied into one buffer as "name\0value\0" (offsets, since the buffer may
 * move while it grows); the response's header array is built once, when the message ends.
 * The parser pauses at the end of the final response, so the caller learns where it ended.
 */
#include "common/errors.h"
#include "server/http/client.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEADERS_CAP 100000 /* an upper bound on the max_headers option */
#define MAX_INTERIM     16     /* 1xx responses before the final one */

static int fail(ekv_http_resp_parser_t *p, int err)
{
    if (!p->err)
        p->err = err;
    return HPE_USER;
}

static int count_head(ekv_http_resp_parser_t *p, size_t len)
{
    if (len > p->lim.max_header_bytes - p->head_bytes)
        return fail(p, EKV_EHTTP_RESP_HEADERS_TOO_LARGE);
    p->head_bytes += len;
    return 0;
}

static int hb_append(ekv_http_resp_parser_t *p, const void *at, size_t len)
{
    int rc = ekv_buf_append(&p->hb, at, len);
    if (rc)
        return fail(p, rc == EKV_ENOMEM ? EKV_ENOMEM : EKV_EHTTP_RESP_HEADERS_TOO_LARGE);
    return 0;
}

/* The current value ends: trim trailing whitespace, terminate it, count the header. */
static int finish_value(ekv_http_resp_parser_t *p)
{
    size_t start = p->offs[2 * p->noffs + 1];
    while (p->hb.len > start &&
           (p->hb.data[p->hb.len - 1] == ' ' || p->hb.data[p->hb.len - 1] == '\t'))
        p->hb.len--;
    while (start < p->hb.len && (p->hb.data[start] == ' ' || p->hb.data[start] == '\t'))
        start++;
    p->offs[2 * p->noffs + 1] = start;
    if (hb_append(p, "", 1))
        return HPE_USER;
    p->noffs++;
    p->hstate = 0;
    return 0;
}

static int on_message_begin(llhttp_t *l)
{
    ekv_http_resp_parser_t *p = l->data;
    ekv_buf_reset(&p->hb);
    ekv_buf_reset(&p->body);
    p->noffs = 0;
    p->head_bytes = 0;
    p->hstate = 0;
    p->interim = 0;
    p->headers_done = 0;
    return 0;
}

static int on_status(llhttp_t *l, const char *at, size_t len)
{
    return count_head(l->data, len);
}

static int on_header_field(llhttp_t *l, const char *at, size_t len)
{
    ekv_http_resp_parser_t *p = l->data;
    if (count_head(p, len))
        return HPE_USER;
    if (p->headers_done)
        return 0; /* a trailer: counted, dropped */
    if (p->hstate == 2 && finish_value(p))
        return HPE_USER;
    if (p->hstate == 0) { /* a new field */
        if (p->noffs >= p->lim.max_headers)
            return fail(p, EKV_EHTTP_RESP_HEADERS_TOO_LARGE);
        if (p->noffs == p->offcap) {
            size_t cap = p->offcap ? p->offcap * 2 : 16;
            if (cap > p->lim.max_headers)
                cap = p->lim.max_headers;
            size_t *o = realloc(p->offs, cap * 2 * sizeof(*o));
            if (!o)
                return fail(p, EKV_ENOMEM);
            p->offs = o;
            p->offcap = cap;
        }
        p->offs[2 * p->noffs] = p->hb.len;
        p->hstate = 1;
    }
    return hb_append(p, at, len);
}

static int on_header_field_complete(llhttp_t *l)
{
    ekv_http_resp_parser_t *p = l->data;
    if (p->headers_done)
        return 0;
    /* llhttp 8 accepts ": value" (an empty name, found by fuzz_http_response); a field name
     * is a token of at least one character (RFC 9110 5.1) */
    if (p->hstate != 1 || p->hb.len == p->offs[2 * p->noffs])
        return fail(p, EKV_EHTTP_BAD_RESPONSE);
    if (hb_append(p, "", 1))
        return HPE_USER;
    p->offs[2 * p->noffs + 1] = p->hb.len;
    p->hstate = 2;
    return 0;
}

static int on_header_value(llhttp_t *l, const char *at, size_t len)
{
    ekv_http_resp_parser_t *p = l->data;
    if (count_head(p, len))
        return HPE_USER;
    if (p->headers_done)
        return 0;
    if (p->hstate != 2)
        return fail(p, EKV_EHTTP_BAD_RESPONSE);
    return hb_append(p, at, len);
}

static int on_header_value_complete(llhttp_t *l)
{
    ekv_http_resp_parser_t *p = l->data;
    if (p->headers_done)
        return 0;
    if (p->hstate != 2)
        return fail(p, EKV_EHTTP_BAD_RESPONSE);
    return finish_value(p);
}

/* Return 1 = the message has no body (llhttp's contract). */
static int on_headers_complete(llhttp_t *l)
{
    ekv_http_resp_parser_t *p = l->data;
    if (p->hstate == 2 && finish_value(p))
        return HPE_USER;
    if (p->hstate != 0)
        return fail(p, EKV_EHTTP_BAD_RESPONSE);
    p->headers_done = 1;
    int status = llhttp_get_status_code(l);
    if (status < 100 || status == 101) /* we never ask to switch protocols */
        return fail(p, EKV_EHTTP_BAD_RESPONSE);
    if (status < 200) {
        /* 100 Continue, 102, 103: skipped, the final response follows (a few at most) */
        if (++p->ninterim > MAX_INTERIM)
            return fail(p, EKV_EHTTP_BAD_RESPONSE);
        p->interim = 1;
        return 1;
    }
    if (p->head_only || status == 204 || status == 304)
        return 1;
    if ((l->flags & F_CONTENT_LENGTH) && !(l->flags & F_CHUNKED) &&
        l->content_length > p->lim.max_body_bytes)
        return fail(p, EKV_EHTTP_RESP_TOO_LARGE);
    return 0;
}

static int on_body(llhttp_t *l, const char *at, size_t len)
{
    ekv_http_resp_parser_t *p = l->data;
    if (p->sink && l->status_code >= 200 && l->status_code < 300) {
        p->sink(p->sink_ctx, at, len);
        return 0;
    }
    if (len > p->lim.max_body_bytes - p->body.len)
        return fail(p, EKV_EHTTP_RESP_TOO_LARGE);
    int rc = ekv_buf_append(&p->body, at, len);
    if (rc)
        return fail(p, rc == EKV_ENOMEM ? EKV_ENOMEM : EKV_EHTTP_RESP_TOO_LARGE);
    return 0;
}

static int build_response(ekv_http_resp_parser_t *p)
{
    ekv_http_response_t *r = calloc(1, sizeof(*r));
    if (!r)
        return EKV_ENOMEM;
    size_t n = p->noffs;
    if (n) {
        /* one block: the header array, then the names and values */
        char *block = malloc(n * sizeof(ekv_http_header_t) + p->hb.len);
        if (!block) {
            free(r);
            return EKV_ENOMEM;
        }
        ekv_http_header_t *h = (ekv_http_header_t *)(void *)block;
        char *strs = block + n * sizeof(ekv_http_header_t);
        memcpy(strs, p->hb.data, p->hb.len);
        for (size_t i = 0; i < n; i++) {
            h[i].name = strs + p->offs[2 * i];
            h[i].value = strs + p->offs[2 * i + 1];
        }
        r->headers = h;
        r->nheaders = n;
    }
    if (p->body.len) {
        size_t len;
        r->body_mem_ = ekv_buf_take(&p->body, &len);
        r->body = r->body_mem_;
        r->body_len = len;
    } else {
        r->body = "";
    }
    r->status = llhttp_get_status_code(&p->llh);
    r->http_major = llhttp_get_http_major(&p->llh);
    r->http_minor = llhttp_get_http_minor(&p->llh);
    p->resp = r;
    return 0;
}

static int on_message_complete(llhttp_t *l)
{
    ekv_http_resp_parser_t *p = l->data;
    if (p->interim)
        return 0; /* go on with the next message */
    /* before llhttp clears its flags after this callback */
    p->keep_alive = llhttp_should_keep_alive(l);
    int rc = build_response(p);
    if (rc)
        return fail(p, rc);
    p->done = 1;
    return HPE_PAUSED;
}

static int on_chunk_ext(llhttp_t *l, const char *at, size_t len)
{
    return count_head(l->data, len);
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_chunk_extension_name = on_chunk_ext,
    .on_chunk_extension_value = on_chunk_ext,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
};

void ekv_http_resp_parser_stream(ekv_http_resp_parser_t *p,
                                 void (*sink)(void *ctx, const char *data, size_t len), void *ctx)
{
    p->sink = sink;
    p->sink_ctx = ctx;
}

void ekv_http_resp_parser_init(ekv_http_resp_parser_t *p, const ekv_http_resp_limits_t *lim,
                               int head_only)
{
    memset(p, 0, sizeof(*p));
    if (lim)
        p->lim = *lim;
    if (!p->lim.max_header_bytes)
        p->lim.max_header_bytes = EKV_HTTP_DEFAULT_MAX_HEADER_BYTES;
    if (!p->lim.max_headers)
        p->lim.max_headers = EKV_HTTP_DEFAULT_MAX_HEADERS;
    if (p->lim.max_headers > MAX_HEADERS_CAP)
        p->lim.max_headers = MAX_HEADERS_CAP;
    if (!p->lim.max_body_bytes)
        p->lim.max_body_bytes = EKV_HTTP_DEFAULT_MAX_BODY_BYTES;
    p->head_only = head_only;
    /* head_bytes bounds hb (plus one NUL per name and value) */
    ekv_buf_init(&p->hb, 0);
    ekv_buf_init(&p->body, p->lim.max_body_bytes);
    llhttp_init(&p->llh, HTTP_RESPONSE, &settings);
    p->llh.data = p;
}

int ekv_http_resp_parser_feed(ekv_http_resp_parser_t *p, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (p->err)
        return p->err;
    if (p->done)
        return 1;
    if (len == 0)
        return 0;
    p->received += len;
    llhttp_errno_t e = llhttp_execute(&p->llh, data, len);
    if (e == HPE_OK) {
        *used = len;
        return 0;
    }
    if (e == HPE_PAUSED && p->done) {
        *used = (size_t)(llhttp_get_error_pos(&p->llh) - data);
        return 1;
    }
    fail(p, EKV_EHTTP_BAD_RESPONSE);
    return p->err;
}

int ekv_http_resp_parser_finish(ekv_http_resp_parser_t *p)
{
    if (p->err)
        return p->err;
    if (p->done)
        return 1;
    if (p->received == 0) {
        fail(p, EKV_EHTTP_CLOSED);
        return p->err;
    }
    llhttp_errno_t e = llhttp_finish(&p->llh);
    if (p->done && (e == HPE_OK || e == HPE_PAUSED))
        return 1;
    if (p->err)
        return p->err;
    /* HPE_OK without a response: only interim responses came */
    fail(p, e == HPE_OK || e == HPE_INVALID_EOF_STATE ? EKV_EHTTP_CLOSED : EKV_EHTTP_BAD_RESPONSE);
    return p->err;
}

ekv_http_response_t *ekv_http_resp_parser_take(ekv_http_resp_parser_t *p)
{
    ekv_http_response_t *r = p->resp;
    p->resp = NULL;
    return r;
}

void ekv_http_resp_parser_deinit(ekv_http_resp_parser_t *p)
{
    ekv_buf_deinit(&p->hb);
    ekv_buf_deinit(&p->body);
    free(p->offs);
    p->offs = NULL;
    p->noffs = p->offcap = 0;
    ekv_http_response_free(p->resp);
    p->resp = NULL;
}

/* ---------------------------------------------------------------- responses */

const char *ekv_http_response_header(const ekv_http_response_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

ekv_http_response_t *ekv_http_response_keep(const ekv_http_response_t *resp)
{
    ekv_http_response_t *r = (ekv_http_response_t *)resp;
    r->kept_ = 1;
    if (r->kept_seen_) {
        *r->kept_seen_ = 1;
        r->kept_seen_ = NULL;
    }
    return r;
}

void ekv_http_response_free(ekv_http_response_t *r)
{
    if (!r)
        return;
    free((void *)r->headers);
    free(r->body_mem_);
    free(r);
}
