/*
 * errors.h - the one error table of edgekv.
 *
 * Every failure in the project is a negative ekv_err_t. One X-macro row per error gives:
 * the enumerator, the HTTP status we answer with, the Cloudflare API error code that goes in
 * the envelope, and the default message. The same table drives ekv_strerror(), log lines and
 * the JSON error replies (server/reply.c), so codes cannot drift apart.
 *
 * Messages here are defaults; handlers may send a more specific text with the same code
 * (e.g. "get: 'key not found'" vs "metadata: 'key not found'").
 */
#ifndef EKV_COMMON_ERRORS_H
#define EKV_COMMON_ERRORS_H

/* X(NAME, http_status, cf_code, "default message") */
#define EKV_ERRNO_MAP(X)                                                                           \
    X(NOMEM, 500, 10001, "out of memory")                                                          \
    X(INTERNAL, 500, 10001, "internal error")                                                      \
    X(STORAGE, 500, 10001, "storage error")                                                        \
    X(BUSY, 503, 10001, "server busy, retry later")                                                \
    X(SHUTDOWN, 503, 10001, "server shutting down")                                                \
    X(NO_AUTH, 400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")             \
    X(BAD_AUTH_HEADER, 400, 6003, "Invalid request headers")                                       \
    X(AUTH, 403, 10000, "Authentication error")                                                    \
    X(AUTH_METHOD, 405, 10000, "method not allowed for the api_token authentication scheme")       \
    X(BAD_TOKEN, 401, 1000, "Invalid API Token")                                                   \
    X(NO_ROUTE, 404, 7003, "No route for the URI")                                                 \
    X(BAD_METHOD, 405, 7001, "method not supported for requested URI.")                            \
    X(BAD_PAGE, 400, 10007, "malformed page argument")                                             \
    X(BAD_PER_PAGE, 400, 10008, "malformed per_page argument")                                     \
    X(KEY_NOT_FOUND, 404, 10009, "key not found")                                                  \
    X(BAD_NS_ID, 400, 10011, "could not parse UUID from request's namespace_id")                   \
    X(BAD_VALUE, 400, 10012, "malformed value")                                                    \
    X(NS_NOT_FOUND, 404, 10013, "namespace not found")                                             \
    X(NS_EXISTS, 400, 10014, "a namespace with this account ID and title already exists")          \
    X(TOO_MANY_NS, 400, 10018, "too many namespaces in this account")                              \
    X(BAD_TITLE, 400, 10019, "missing title")                                                      \
    X(BAD_KEY, 400, 10023, "illegal key name")                                                     \
    X(TOO_LARGE, 413, 10024, "payload too large")                                                  \
    X(BAD_LIMIT, 400, 10028, "invalid limit argument")                                             \
    X(BAD_REQUEST, 400, 10029, "invalid request")                                                  \
    X(KEY_TOO_LONG, 414, 10030, "key too long")                                                    \
    X(BAD_EXPIRATION, 400, 10033, "invalid expiration")                                            \
    X(BAD_TTL, 400, 10034, "invalid expiration ttl")                                               \
    X(BAD_CURSOR, 400, 10041, "invalid list keys cursor")                                          \
    X(BAD_ORDER, 400, 10043, "invalid order")                                                      \
    X(BAD_DIRECTION, 400, 10044, "invalid direction")                                              \
    X(BAD_METADATA, 400, 10047, "invalid metadata")                                                \
    X(METADATA_TOO_LARGE, 413, 10047, "metadata too large")                                        \
    X(TOKEN_NOT_FOUND, 404, 1003, "token not found")                                               \
    X(HTTP_PARSE, 400, 6003, "malformed HTTP request")                                             \
    X(HTTP_URL_TOO_LONG, 414, 6003, "URL too long")                                                \
    X(HTTP_HEADERS_TOO_LARGE, 431, 6003, "request headers too large")                              \
    X(HTTP_BODY_TOO_LARGE, 413, 10024, "request body too large")                                   \
    X(HTTP_TIMEOUT, 408, 6003, "request timeout")                                                  \
    X(REPL_FRAME_TOO_LARGE, 500, 10001, "replication frame exceeds the size cap")                  \
    X(REPL_FRAME_MALFORMED, 500, 10001, "malformed replication frame")                             \
    X(LOG_GAP, 500, 10001, "change log record not retained")                                       \
    X(INGEST_PENDING, 503, 10001, "snapshot ingest in progress")                                   \
    X(SYNC_TIMEOUT, 504, 10001,                                                                    \
      "write committed on the primary but not acknowledged by enough replicas in time")            \
    X(READ_ONLY, 403, 10001, "this node is a read-only replica; send writes to the primary")       \
    X(FENCED, 503, 10001, "this node was fenced: a newer primary exists")                          \
    X(NOT_SYNCED, 503, 10001, "this replica has not completed its first sync with a primary")      \
    X(NOT_REPLICA, 400, 10001, "only a replica can be promoted")                                   \
    X(UPSTREAM, 503, 10001, "upstream unavailable")                                                \
    X(TIMEOUT, 504, 10001, "upstream did not answer in time")                                      \
    X(CANCELLED, 503, 10001, "request cancelled")                                                  \
    X(HTTP_BAD_URL, 400, 10001, "malformed URL (want http://host[:port]/path)")                    \
    X(HTTP_HTTPS_UNSUPPORTED, 400, 10001, "https:// is not supported (plain http:// only)")        \
    X(HTTP_DNS, 502, 10001, "upstream host name could not be resolved")                            \
    X(HTTP_CONNECT_REFUSED, 502, 10001, "upstream refused the connection")                         \
    X(HTTP_CONNECT, 502, 10001, "cannot connect to the upstream")                                  \
    X(HTTP_CONNECT_TIMEOUT, 504, 10001, "connecting to the upstream timed out")                    \
    X(HTTP_CLOSED, 502, 10001, "upstream closed the connection before the response was complete")  \
    X(HTTP_BAD_RESPONSE, 502, 10001, "malformed HTTP response from the upstream")                  \
    X(HTTP_RESP_HEADERS_TOO_LARGE, 502, 10001,                                                     \
      "upstream response headers exceed the size or count cap")                                    \
    X(HTTP_RESP_TOO_LARGE, 502, 10001, "upstream response body exceeds the size cap")              \
    X(HTTP_TE_UNSUPPORTED, 501, 6003, "Transfer-Encoding other than chunked is not implemented")   \
    X(HTTP_DUP_HEADER, 400, 6003,                                                                  \
      "Invalid request headers: Authorization, X-Auth-Key, X-Auth-Email and Content-Type may "     \
      "each appear only once")                                                                     \
    X(HTTP_HEADER_NAME_WS, 400, 6003,                                                              \
      "Invalid request headers: whitespace between a header name and its colon")                   \
    X(HTTP_OBS_FOLD, 400, 6003, "Invalid request headers: obsolete line folding is not allowed")   \
    X(REPLY_MEMORY, 503, 10001,                                                                    \
      "too many large replies are waiting for slow clients (--reply-memory-mb); retry later")      \
    X(DO_NS_NOT_FOUND, 404, 10066, "Durable Object namespace not found")                           \
    X(DO_BAD_ID, 400, 10067, "Invalid Durable Object ID: must be 64 hex digits")                   \
    X(DO_WRONG_NS, 400, 10068, "Durable Object ID is not valid for this namespace.")               \
    X(DO_NS_EXISTS, 400, 10069, "a Durable Object namespace with this name already exists")        \
    X(DO_BAD_KEY, 400, 10070, "invalid Durable Object storage key")                                \
    X(DO_VALUE_TOO_LARGE, 413, 10071, "Durable Object storage value too large")                    \
    X(DO_TOO_MANY_KEYS, 400, 10072, "Maximum number of key value pairs is 128.")                   \
    X(DO_BAD_BODY, 400, 10073, "invalid Durable Object request body")                              \
    X(DO_BAD_LIST, 400, 10074, "invalid Durable Object list option")                               \
    X(DO_NO_SCRIPT, 400, 10075, "this Durable Object namespace has no script URL")                 \
    X(DO_GATE_TIMEOUT, 503, 10076, "the object's earlier calls did not finish in time")            \
    X(DO_RESET, 500, 10077, "the object was reset: a storage write failed; retry")                 \
    X(DO_TOO_MANY_NS, 400, 10078, "too many Durable Object namespaces in this account")            \
    X(DO_MOVED, 503, 10079,                                                                        \
      "the Durable Object moved to another node while this call ran; it was not applied; retry")   \
    X(DO_NO_OWNER, 503, 10080,                                                                     \
      "no node serves this Durable Object right now (its owner is moving); retry later")           \
    X(LEADER_LOST, 503, 10001, "this node's primary lease lapsed: it no longer takes writes")

typedef enum {
    EKV_OK = 0,
#define EKV_ERR_ENUM(name, status, code, msg) EKV_E##name,
    EKV__ERR_FIRST = -1000,
    EKV_ERRNO_MAP(EKV_ERR_ENUM)
#undef EKV_ERR_ENUM
        EKV__ERR_LAST
} ekv_err_t;

/* Default message for an error (never NULL). */
const char *ekv_strerror(int err);
/* Short symbolic name, e.g. "NS_NOT_FOUND". */
const char *ekv_err_name(int err);
/* HTTP status / Cloudflare API code for an error; 500 / 10001 for unknown values. */
int ekv_err_http_status(int err);
int ekv_err_cf_code(int err);

#endif
