/*
 * validate.c - KV limits with Cloudflare's reason texts (API-FACTS §4.2).
 *
 * Integer inputs (expiration, expiration_ttl) are accepted only as plain decimal text:
 * an optional '-' then 1..n ASCII digits (leading zeros allowed, "060" is 60), nothing else.
 * So "", "+60", " 60", "60 ", "1.5", "60.0", "1e3", "0x3c" are "not an integer". A negative
 * integer is an integer, but <= 0 / <= now, which carries the same reason text as "not an
 * integer", so the distinction never shows. Integers are read with any number of digits; one
 * beyond 2^53 - 1 (what a JavaScript client can hold exactly), or a TTL whose resulting
 * expiration would be, gets its own "must be at most" text. The value PUT (query text) and bulk
 * write (JSON number, formatted by bulk.c) both come through here, so they answer alike.
 *
 * Metadata is parsed with jansson (any JSON value, \u0000 allowed, last duplicate key wins
 * like JSON.parse) and measured by its compact serialisation, which is also what we store.
 */
#include "server/api/kv/validate.h"
#include "server/http/json_out.h"

#include "common/codec.h"
#include "common/errors.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
set_msg(char *msg, size_t msg_cap, const char *fmt, ...)
{
    if (!msg || msg_cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(msg, msg_cap, fmt, ap); /* truncation is fine: msg is always terminated */
    va_end(ap);
}

int ekv_kv_check_key(const char *key, size_t len, char *msg, size_t msg_cap)
{
    if (len == 0) {
        set_msg(msg, msg_cap, "%s", "Key names must not be empty");
        return EKV_EBAD_KEY;
    }
    if ((len == 1 && key[0] == '.') || (len == 2 && key[0] == '.' && key[1] == '.')) {
        set_msg(msg, msg_cap, "Illegal key name \"%.*s\". Please use a different name.", (int)len,
                key);
        return EKV_EBAD_KEY;
    }
    if (len > EKV_MAX_KEY_LEN) {
        set_msg(msg, msg_cap, "UTF-8 encoded length of %zu exceeds key length limit of %d.", len,
                EKV_MAX_KEY_LEN);
        return EKV_EKEY_TOO_LONG;
    }
    return 0;
}

int ekv_kv_check_metadata(const char *json_text, size_t len, char **canon, size_t *canon_len,
                          char *msg, size_t msg_cap)
{
    json_error_t jerr;
    if (canon)
        *canon = NULL;
    if (canon_len)
        *canon_len = 0;
    json_t *v = json_loadb(json_text, len, EKV_JSON_PARSE_FLAGS, &jerr);
    if (!v) {
        set_msg(msg, msg_cap, "Invalid metadata: %s", jerr.text);
        return EKV_EBAD_METADATA;
    }
    /* the text JSON.stringify gives for this value: what the limit is about, what we store */
    ekv_buf_t b;
    ekv_buf_init(&b, 0);
    int rc = ekv_json_put_value(&b, v);
    json_decref(v);
    if (rc) {
        ekv_buf_deinit(&b);
        set_msg(msg, msg_cap, "%s", ekv_strerror(EKV_ENOMEM));
        return EKV_ENOMEM;
    }
    size_t n = b.len;
    char *out = ekv_buf_take(&b, NULL);
    if (!out)
        out = strdup("");
    if (n > EKV_MAX_METADATA_LEN) {
        free(out);
        set_msg(msg, msg_cap, "Metadata length of %zu exceeds limit of %d.", n,
                EKV_MAX_METADATA_LEN);
        return EKV_EMETADATA_TOO_LARGE;
    }
    if (canon_len)
        *canon_len = n;
    if (canon)
        *canon = out;
    else
        free(out);
    return 0;
}

int ekv_kv_check_value_len(size_t len, char *msg, size_t msg_cap)
{
    if (len > EKV_MAX_VALUE_LEN) {
        set_msg(msg, msg_cap, "Value length of %zu exceeds limit of %u.", len, EKV_MAX_VALUE_LEN);
        return EKV_ETOO_LARGE;
    }
    return 0;
}

/* Strict decimal integer (see the file comment). 0 with *out when |value| <= 2^53 - 1, 1 when it
 * is an integer of larger magnitude (*out = +/-(2^53), keeping the sign), -1 when it is not an
 * integer at all. Any number of digits is read without overflow. */
static int parse_safe_int(const char *s, int64_t *out)
{
    int neg = 0, big = 0;
    int64_t v = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (!big) {
            v = v * 10 + (*s - '0');
            if (v > EKV_MAX_SAFE_INT)
                big = 1;
        }
    }
    if (big)
        v = EKV_MAX_SAFE_INT + 1;
    *out = neg ? -v : v;
    return big;
}

int ekv_kv_compute_expiration(const char *expiration, const char *ttl, int64_t now_s, int64_t *out,
                              char *msg, size_t msg_cap)
{
    int64_t v;
    *out = 0;
    if (ttl) {
        int rc = parse_safe_int(ttl, &v);
        if (rc < 0 || v <= 0) {
            set_msg(msg, msg_cap,
                    "Invalid expiration_ttl of %s. Please specify integer greater than 0.", ttl);
            return EKV_EBAD_TTL;
        }
        if (v < EKV_MIN_TTL) {
            set_msg(msg, msg_cap,
                    "Invalid expiration_ttl of %s. Expiration TTL must be at least %d.", ttl,
                    EKV_MIN_TTL);
            return EKV_EBAD_TTL;
        }
        /* v <= 2^53 here and now_s is a clock reading, so the sum cannot overflow */
        if (rc > 0 || now_s > EKV_MAX_EXPIRATION - v) {
            set_msg(msg, msg_cap,
                    "Invalid expiration_ttl of %s. The resulting expiration must be at most "
                    "%lld (2^53 - 1).",
                    ttl, (long long)EKV_MAX_EXPIRATION);
            return EKV_EBAD_TTL;
        }
        *out = now_s + v;
        return 0;
    }
    if (expiration) {
        int rc = parse_safe_int(expiration, &v);
        if (rc < 0 || v <= now_s) {
            set_msg(msg, msg_cap,
                    "Invalid expiration of %s. Please specify integer greater than the current "
                    "number of seconds since the UNIX epoch.",
                    expiration);
            return EKV_EBAD_EXPIRATION;
        }
        if (rc > 0) {
            set_msg(msg, msg_cap,
                    "Invalid expiration of %s. Expiration times must be at most %lld (2^53 - 1).",
                    expiration, (long long)EKV_MAX_EXPIRATION);
            return EKV_EBAD_EXPIRATION;
        }
        if (v - EKV_MIN_TTL < now_s) {
            set_msg(msg, msg_cap,
                    "Invalid expiration of %s. Expiration times must be at least %d seconds in the "
                    "future.",
                    expiration, EKV_MIN_TTL);
            return EKV_EBAD_EXPIRATION;
        }
        *out = v;
    }
    return 0;
}

int ekv_kv_check_title(const char *title, size_t len, char *msg, size_t msg_cap)
{
    if (!title || len == 0) {
        set_msg(msg, msg_cap, "%s", "missing title");
        return EKV_EBAD_TITLE;
    }
    if (len > EKV_MAX_TITLE_LEN) {
        set_msg(msg, msg_cap, "%s", "title too long");
        return EKV_EBAD_TITLE;
    }
    return 0;
}

int ekv_kv_parse_nsid(const char *s, size_t len, uint8_t out[16], char *msg, size_t msg_cap)
{
    if (len != 32) {
        set_msg(msg, msg_cap,
                "could not parse UUID from request's namespace_id: 'invalid UUID length: %zu'",
                len);
        return EKV_EBAD_NS_ID;
    }
    size_t n;
    if (ekv_hex_decode(s, len, out, 16, &n) != 0) {
        set_msg(msg, msg_cap, "%s",
                "could not parse UUID from request's namespace_id: 'invalid UUID format'");
        return EKV_EBAD_NS_ID;
    }
    return 0;
}
