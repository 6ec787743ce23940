/*
 * multipart.h - zero-copy multipart/form-data parser (RFC 7578) and the SDK-7 bracket-field
 * metadata reconstruction. Pure functions over a complete body held in memory.
 */
#ifndef EKV_SERVER_HTTP_MULTIPART_H
#define EKV_SERVER_HTTP_MULTIPART_H

#include <jansson.h>
#include <stddef.h>

/* Parts of one form. A value PUT has one value part plus metadata: as SDK-7 bracket fields
 * every leaf is its own part, and metadata that fits 1024 compact bytes has at most 341 leaves
 * (["","",...]), so every valid write fits. 512 parts are 32 KiB of ekv_mp_part_t. */
#define EKV_MULTIPART_MAX_PARTS 512
/* ekv_multipart_parse: the body holds more than max_parts parts (a limit, not malformed) */
#define EKV_MULTIPART_TOO_MANY_PARTS (-2)

typedef struct {
    const char *name; /* form field name (from Content-Disposition), pointer into body */
    size_t name_len;
    const char *filename; /* NULL if the part has no filename */
    size_t filename_len;
    const char *content_type; /* NULL if absent */
    size_t content_type_len;
    const char *data; /* part body, pointer into body */
    size_t data_len;
} ekv_mp_part_t;

/* Extract the boundary parameter from a Content-Type header value
 * ("multipart/form-data; boundary=----x" or quoted). Returns 0 or -1 when the type is not
 * multipart/form-data or the boundary is missing / longer than 70 chars. */
int ekv_multipart_boundary(const char *content_type, size_t len, const char **boundary,
                           size_t *boundary_len);

/* Parse body into at most max_parts parts. 0; EKV_MULTIPART_TOO_MANY_PARTS when there are
 * more; -1 on malformed input (missing final boundary, part without Content-Disposition name,
 * header line > 8 KiB). */
int ekv_multipart_parse(const char *body, size_t len, const char *boundary, size_t boundary_len,
                        ekv_mp_part_t *parts, size_t max_parts, size_t *nparts);

/*
 * Build the metadata JSON of a KV write from the form parts, accepting every encoding real
 * clients use (docs/API.md):
 *   - a part named "metadata" holding JSON text (wrangler; SDK-5 file part with
 *     application/json; curl -F metadata='{"a":1}'): parsed as JSON;
 *   - SDK-7 bracket fields: metadata[a]=1, metadata[a][b]=x, metadata[list][]=1 ... rebuilt as
 *     nested objects/arrays. Leaf values are strings (that is all form fields can carry);
 *   - no metadata part at all -> *out = NULL, return 0.
 * A "metadata" part that is not valid JSON -> -1 (caller answers 10047). Mixing both forms or
 * conflicting paths (metadata[a]=1 and metadata[a][b]=2) -> -1. *out is a new reference.
 */
int ekv_multipart_metadata(const ekv_mp_part_t *parts, size_t nparts, json_t **out);

/* First part with this exact name, or NULL. */
const ekv_mp_part_t *ekv_multipart_find(const ekv_mp_part_t *parts, size_t nparts,
                                        const char *name);

#endif
