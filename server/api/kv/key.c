/*
 * key.c - key names from the URL: percent-decoding, Cloudflare's limits (validate.c) and
 * UTF-8; and stored metadata written out verbatim.
 */
#include "common/clock.h"
#include "common/codec.h"
#include "common/errors.h"
#include "common/log.h"
#include "server/api/kv/cursor.h"
#include "server/api/kv/kv.h"
#include "server/api/kv/validate.h"
#include "server/http/json_out.h"
#include "server/http/multipart.h"
#include "server/http/reply.h"
#include "server/http/urlcodec.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int ekv__kv_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

/* Validate a decoded key name; on failure answer with the error. */
static int check_key_or_reply(ekv_req_t *req, const char *op, const char *key, size_t len)
{
    char msg[MSG_CAP];
    int rc = ekv_kv_check_key(key, len, msg, sizeof(msg));
    if (rc) {
        ekv_reply_error(req, rc, "%s", msg);
        return rc;
    }
    if (!ekv__kv_utf8_valid((const unsigned char *)key, len)) {
        ekv_reply_error(req, EKV_EBAD_KEY, "%s: 'Key names must be valid UTF-8'", op);
        return EKV_EBAD_KEY;
    }
    return 0;
}

/* Decode the key path parameter (the route's last param) into a malloc'd buffer. */
char *ekv_kv_key_param_or_reply(ekv_call_t *c, size_t *len)
{
    const ekv_slice_t *s = &c->params.v[c->params.n - 1];
    char *key = malloc(s->n + 1);
    if (!key) {
        ekv_reply_error(c->req, EKV_ENOMEM, NULL);
        return NULL;
    }
    if (ekv_url_decode_path(s->p, s->n, key, len)) {
        free(key);
        ekv_reply_error(c->req, EKV_EBAD_KEY, "Could not URL-decode key name");
        return NULL;
    }
    if (check_key_or_reply(c->req, ekv_route_op(c->route), key, *len)) {
        free(key);
        return NULL;
    }
    return key;
}

/* Stored metadata (JSON.stringify text) or null, verbatim. */
int ekv__kv_put_metadata(ekv_buf_t *b, const char *text, size_t len)
{
    return text ? ekv_json_put_raw(b, text, len) : ekv_json_put_raw(b, "null", 4);
}
