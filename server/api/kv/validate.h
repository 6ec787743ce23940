/*
 * validate.h - the KV limits, checked before anything is stored. Pure functions.
 *
 * Each check returns 0 or a negative ekv_err_t and, on failure, writes the human-readable
 * reason into msg (the exact texts Cloudflare's KV service uses, API-FACTS §4.2), which the
 * handler sends in the error envelope.
 */
#ifndef EKV_SERVER_API_KV_VALIDATE_H
#define EKV_SERVER_API_KV_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#define EKV_MAX_KEY_LEN      512
#define EKV_MAX_VALUE_LEN    (25u * 1024 * 1024) /* 26,214,400 */
#define EKV_MAX_METADATA_LEN 1024
#define EKV_MIN_TTL          60
/* the largest integer a JavaScript client holds exactly (Number.MAX_SAFE_INTEGER): the bound of
 * expiration, of expiration_ttl and of now + expiration_ttl */
#define EKV_MAX_SAFE_INT       INT64_C(9007199254740991)
#define EKV_MAX_EXPIRATION     EKV_MAX_SAFE_INT
#define EKV_MAX_TITLE_LEN      512
#define EKV_MAX_BULK_ITEMS     10000
#define EKV_MAX_BULK_BYTES     (100u * 1000 * 1000) /* 100 MB */
#define EKV_MAX_BULK_GET_KEYS  100
#define EKV_MAX_BULK_GET_BYTES (25u * 1000 * 1000) /* summed values of one bulk get */
#define EKV_LIST_MIN_LIMIT     10
#define EKV_LIST_MAX_LIMIT     1000
#define EKV_LIST_DEFAULT_LIMIT 1000

/* Key: not empty (EKV_EBAD_KEY "Key names must not be empty"), not "." / ".."
 * (EKV_EBAD_KEY "Illegal key name \"..\". Please use a different name."), <= 512 bytes
 * (EKV_EKEY_TOO_LONG "UTF-8 encoded length of N exceeds key length limit of 512."). */
int ekv_kv_check_key(const char *key, size_t len, char *msg, size_t msg_cap);

/* Metadata: json_text must parse as one JSON value (EKV_EBAD_METADATA otherwise) and its
 * compact serialisation must be <= 1024 bytes (EKV_EMETADATA_TOO_LARGE "Metadata length of N
 * exceeds limit of 1024."). On success *canon is the compact serialisation (malloc'd). */
int ekv_kv_check_metadata(const char *json_text, size_t len, char **canon, size_t *canon_len,
                          char *msg, size_t msg_cap);

/* Value size (EKV_ETOO_LARGE "Value length of N exceeds limit of 26214400."). */
int ekv_kv_check_value_len(size_t len, char *msg, size_t msg_cap);

/*
 * Expiration from the `expiration` / `expiration_ttl` inputs (either may be NULL = absent;
 * given as the raw decimal text from a query string or JSON number text). TTL wins when both
 * are present (the ignored expiration is not checked). Result in *out: unix seconds, 0 = never.
 *   ttl not an integer or <= 0       EKV_EBAD_TTL "Invalid expiration_ttl of X. Please specify
 *                                    integer greater than 0."
 *   ttl < 60                         EKV_EBAD_TTL "Invalid expiration_ttl of X. Expiration TTL
 *                                    must be at least 60."
 *   now + ttl > 2^53 - 1             EKV_EBAD_TTL "Invalid expiration_ttl of X. The resulting
 *                                    expiration must be at most 9007199254740991 (2^53 - 1)."
 *   exp not an integer or <= now     EKV_EBAD_EXPIRATION "Invalid expiration of X. Please specify
 *                                    integer greater than the current number of seconds since
 *                                    the UNIX epoch."
 *   exp > 2^53 - 1                   EKV_EBAD_EXPIRATION "Invalid expiration of X. Expiration
 *                                    times must be at most 9007199254740991 (2^53 - 1)."
 *   exp < now + 60                   EKV_EBAD_EXPIRATION "Invalid expiration of X. Expiration
 *                                    times must be at least 60 seconds in the future."
 * The first two texts of each are Cloudflare's (API-FACTS §4.2); the "at most" ones are ours.
 */
int ekv_kv_compute_expiration(const char *expiration, const char *ttl, int64_t now_s, int64_t *out,
                              char *msg, size_t msg_cap);

/* Namespace title: 1..512 bytes (EKV_EBAD_TITLE). */
int ekv_kv_check_title(const char *title, size_t len, char *msg, size_t msg_cap);

/* Namespace id: exactly 32 hex chars -> 16 bytes (EKV_EBAD_NS_ID "could not parse UUID from
 * request's namespace_id: 'invalid UUID length: N'" or "...: 'invalid UUID format'"). */
int ekv_kv_parse_nsid(const char *s, size_t len, uint8_t out[16], char *msg, size_t msg_cap);

#endif
