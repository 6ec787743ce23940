/*
 * multipart.c - zero-copy multipart/form-data parser (RFC 7578 / RFC 2046) and the rebuild of
 * KV metadata from the shapes real clients send.
 *
 * DESIGN
 * The whole body is in memory, so parsing is a scan that records pointers into it; nothing is
 * allocated and nothing is copied. The delimiter is searched as "\n--boundary" with memmem, so
 * both CRLF and bare-LF line endings work; a CR right before that LF belongs to the delimiter
 * (RFC 2046: delimiter = CRLF "--" boundary), any other byte (NUL, CR, LF...) is data.
 * A candidate is only a delimiter if it is followed by "--" (close delimiter), or by optional
 * spaces/tabs and a line end; "--boundaryX" inside data is skipped, as senders only guarantee
 * that the full delimiter line does not occur in data.
 *
 * Choices (documented here because RFC 7578 leaves them open):
 *   - The body must contain a close delimiter "--boundary--"; otherwise it is truncated and
 *     malformed. Preamble and epilogue are ignored.
 *   - A part's headers end at the first empty line; a part with headers and no body at all
 *     ("...name=\"x\"\r\n\r\n--b") has empty data (the CRLF is the delimiter's).
 *   - Header names are case-insensitive; only Content-Disposition and Content-Type are read,
 *     each at most once per part. Folded header lines (leading SP/HT) and lines without ':'
 *     are malformed; no client we serve folds. Header lines are limited to 8 KiB.
 *   - Content-Disposition must be "form-data" and carry a name parameter (may be empty);
 *     name or filename given twice is malformed; other parameters (filename*) are ignored.
 *     Quoted strings end at the next '"' without backslash escapes: WHATWG FormData (undici,
 *     browsers) and curl encode '"', CR and LF in names as %22, %0D, %0A and never escape a
 *     backslash, so a literal backslash before the closing quote is real. Names are returned
 *     raw (not percent-decoded), which is what those senders expect servers to compare.
 *   - Boundary: 1..70 printable ASCII chars, no '"' or '\', no trailing space.
 *
 * Metadata reconstruction follows the SDK-7 flattening (cloudflare-typescript
 * src/internal/uploads.ts addFormValue): objects become name[key], arrays name[] per element,
 * scalars String(v), undefined/{}/[] send nothing (null makes the SDK throw). Rebuilding "[]"
 * followed by more path (arrays of objects/arrays) is ambiguous on the wire; like Rack/Rails
 * we put the field into the array's last element unless that would collide with a field
 * already there, in which case a new element is started. So [{"x":1},{"x":2}] round-trips,
 * and [{"x":1,"y":2}] too; [{"x":1},{"y":2}] comes back as [{"x":"1","y":"2"}].
 * Field names are matched case-sensitively: exactly "metadata" is the JSON form, a name
 * starting "metadata[" is a bracket field, anything else ("metadatax", "Metadata") is not
 * metadata. Two "metadata" parts, a duplicate leaf, a malformed bracket name ("metadata[a",
 * "metadata[a]b", "metadata[a[b]]"), more than 512 levels, or a leaf/key that is not valid
 * UTF-8 (JSON strings must be) all make the metadata invalid (-1). Keys are not
 * percent-decoded (see the quoting note above).
 */
#include "server/http/multipart.h"
#include "server/http/json_out.h"

#include <string.h>

#define MP_MAX_BOUNDARY    70
#define MP_MAX_HEADER_LINE 8192
/* Bracket nesting limit. Every level costs at least 2 bytes of compact JSON, so anything
 * deeper could never pass the 1024-byte metadata limit anyway. */
#define MP_MAX_DEPTH 512

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Case-insensitive compare of s[0..n) with the lowercase C string lit. */
static int ieq(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n; i++) {
        if (lit[i] == '\0' || lower((unsigned char)s[i]) != lit[i])
            return 0;
    }
    return lit[i] == '\0';
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void skip_ows(const char **p, const char *end)
{
    while (*p < end && is_ows(**p))
        (*p)++;
}

/* A header/parameter token: printable ASCII minus separators we split on. Deliberately more
 * lenient than RFC 7230's tchar so unquoted values like boundary=----=_Part_0 still parse. */
static int is_token_char(char c)
{
    return c > 0x20 && c < 0x7f && c != ';' && c != '"' && c != '=';
}

static int is_value_char(char c)
{
    return c > 0x20 && c < 0x7f && c != ';' && c != '"';
}

/*
 * Next "; name=value" parameter of a header value. *p points after the previous element.
 * Returns 1 with the parameter (value without its quotes), 0 at the end, -1 when malformed. Empty
 * elements (";;") are skipped.
 */
static int next_param(const char **p, const char *end, const char **name, size_t *name_len,
                      const char **val, size_t *val_len)
{
    for (;;) {
        skip_ows(p, end);
        if (*p == end)
            return 0;
        if (**p != ';')
            return -1;
        (*p)++;
        skip_ows(p, end);
        if (*p == end)
            return 0;
        if (**p != ';')
            break;
    }
    const char *n = *p;
    while (*p < end && is_token_char(**p))
        (*p)++;
    if (*p == n)
        return -1;
    *name = n;
    *name_len = (size_t)(*p - n);
    skip_ows(p, end);
    if (*p == end || **p != '=')
        return -1;
    (*p)++;
    skip_ows(p, end);
    if (*p < end && **p == '"') {
        const char *v = ++(*p);
        const char *q = memchr(v, '"', (size_t)(end - v));
        if (!q)
            return -1;
        *val = v;
        *val_len = (size_t)(q - v);
        *p = q + 1;
    } else {
        const char *v = *p;
        while (*p < end && is_value_char(**p))
            (*p)++;
        if (*p == v)
            return -1;
        *val = v;
        *val_len = (size_t)(*p - v);
    }
    return 1;
}

/* Parse "type/subtype *(; param)" up to the parameters; returns a pointer to them or NULL
 * when the media type is not `want`. */
static const char *match_type(const char *s, const char *end, const char *want)
{
    skip_ows(&s, end);
    const char *t = s;
    while (s < end && !is_ows(*s) && *s != ';')
        s++;
    return ieq(t, (size_t)(s - t), want) ? s : NULL;
}

int ekv_multipart_boundary(const char *content_type, size_t len, const char **boundary,
                           size_t *boundary_len)
{
    const char *end = content_type + len;
    const char *p = match_type(content_type, end, "multipart/form-data");
    const char *name, *val, *b = NULL;
    size_t name_len, val_len, b_len = 0;
    int r;
    if (!p)
        return -1;
    /* Walk every parameter so a malformed header is rejected as a whole. */
    while ((r = next_param(&p, end, &name, &name_len, &val, &val_len)) == 1) {
        if (!b && ieq(name, name_len, "boundary")) {
            b = val;
            b_len = val_len;
        }
    }
    if (r != 0 || !b || b_len == 0 || b_len > MP_MAX_BOUNDARY || b[b_len - 1] == ' ')
        return -1;
    for (size_t i = 0; i < b_len; i++) {
        if (b[i] < 0x20 || b[i] > 0x7e || b[i] == '\\')
            return -1;
    }
    *boundary = b;
    *boundary_len = b_len;
    return 0;
}

/* Content-Disposition value -> name / filename. 0 or -1. */
static int parse_disposition(const char *v, size_t n, ekv_mp_part_t *part)
{
    const char *end = v + n;
    const char *p = match_type(v, end, "form-data");
    const char *name, *val;
    size_t name_len, val_len;
    int r, have_name = 0;
    if (!p)
        return -1;
    while ((r = next_param(&p, end, &name, &name_len, &val, &val_len)) == 1) {
        /* A repeated name/filename is ambiguous: which one did the sender mean? */
        if (ieq(name, name_len, "name")) {
            if (have_name)
                return -1;
            part->name = val;
            part->name_len = val_len;
            have_name = 1;
        } else if (ieq(name, name_len, "filename")) {
            if (part->filename)
                return -1;
            part->filename = val;
            part->filename_len = val_len;
        }
    }
    return (r == 0 && have_name) ? 0 : -1;
}

typedef struct {
    const char *body;
    size_t len;
    char needle[3 + MP_MAX_BOUNDARY]; /* "\n--" boundary */
    size_t needle_len;
} mp_scan_t;

enum { DELIM_NONE = 0, DELIM_OPEN, DELIM_CLOSE };

/* What follows "--boundary" at t: DELIM_CLOSE, DELIM_OPEN (then *next = first byte of the
 * part's headers) or DELIM_NONE (not a delimiter). */
static int delim_tail(const mp_scan_t *s, size_t t, size_t *next)
{
    const char *b = s->body;
    if (s->len - t >= 2 && b[t] == '-' && b[t + 1] == '-') {
        *next = t + 2;
        return DELIM_CLOSE;
    }
    while (t < s->len && is_ows(b[t]))
        t++;
    if (t < s->len && b[t] == '\n') {
        *next = t + 1;
        return DELIM_OPEN;
    }
    if (s->len - t >= 2 && b[t] == '\r' && b[t + 1] == '\n') {
        *next = t + 2;
        return DELIM_OPEN;
    }
    return DELIM_NONE;
}

/* First delimiter whose LF is at or after `from`. On success *lf = offset of that LF. */
static int find_delim(const mp_scan_t *s, size_t from, size_t *lf, size_t *next)
{
    while (from < s->len) {
        const char *hit = memmem(s->body + from, s->len - from, s->needle, s->needle_len);
        if (!hit)
            return DELIM_NONE;
        size_t at = (size_t)(hit - s->body);
        int kind = delim_tail(s, at + s->needle_len, next);
        if (kind != DELIM_NONE) {
            *lf = at;
            return kind;
        }
        from = at + 1;
    }
    return DELIM_NONE;
}

/* Parse the headers starting at *pos up to and including the empty line. 0 or -1. */
static int parse_headers(const mp_scan_t *s, size_t *pos, ekv_mp_part_t *part)
{
    int have_cd = 0;
    for (;;) {
        size_t start = *pos;
        size_t avail = s->len - start;
        /* Allow the line, its CR and LF. */
        size_t window = avail < MP_MAX_HEADER_LINE + 2 ? avail : MP_MAX_HEADER_LINE + 2;
        const char *nl = memchr(s->body + start, '\n', window);
        if (!nl)
            return -1;
        size_t end = (size_t)(nl - s->body);
        *pos = end + 1;
        if (end > start && s->body[end - 1] == '\r')
            end--;
        if (end - start > MP_MAX_HEADER_LINE)
            return -1;
        if (end == start)
            return have_cd ? 0 : -1;

        const char *line = s->body + start;
        size_t line_len = end - start;
        if (is_ows(line[0]))
            return -1;
        const char *colon = memchr(line, ':', line_len);
        if (!colon)
            return -1;
        size_t name_len = (size_t)(colon - line);
        while (name_len > 0 && is_ows(line[name_len - 1]))
            name_len--;
        if (name_len == 0)
            return -1;
        const char *v = colon + 1, *vend = line + line_len;
        skip_ows(&v, vend);
        while (vend > v && is_ows(vend[-1]))
            vend--;
        size_t v_len = (size_t)(vend - v);

        if (ieq(line, name_len, "content-disposition")) {
            if (have_cd || parse_disposition(v, v_len, part) != 0)
                return -1;
            have_cd = 1;
        } else if (ieq(line, name_len, "content-type")) {
            if (part->content_type)
                return -1;
            part->content_type = v;
            part->content_type_len = v_len;
        }
    }
}

int ekv_multipart_parse(const char *body, size_t len, const char *boundary, size_t boundary_len,
                        ekv_mp_part_t *parts, size_t max_parts, size_t *nparts)
{
    mp_scan_t s;
    size_t pos, lf, n = 0;
    int kind;

    *nparts = 0;
    if (!boundary || boundary_len == 0 || boundary_len > MP_MAX_BOUNDARY || (!body && len))
        return -1;
    s.body = body;
    s.len = len;
    memcpy(s.needle, "\n--", 3);
    memcpy(s.needle + 3, boundary, boundary_len);
    s.needle_len = 3 + boundary_len;

    /* The first delimiter may start the body (no preamble) without a preceding line end. */
    if (len >= s.needle_len - 1 && memcmp(body, s.needle + 1, s.needle_len - 1) == 0 &&
        (kind = delim_tail(&s, s.needle_len - 1, &pos)) != DELIM_NONE) {
        /* found at offset 0 */
    } else {
        kind = find_delim(&s, 0, &lf, &pos);
    }

    while (kind == DELIM_OPEN) {
        ekv_mp_part_t part;
        memset(&part, 0, sizeof(part));
        if (n == max_parts)
            return EKV_MULTIPART_TOO_MANY_PARTS;
        if (parse_headers(&s, &pos, &part) != 0)
            return -1;
        /* pos is just past the empty line's LF; that LF may be the delimiter's own. */
        size_t data_start = pos;
        kind = find_delim(&s, data_start - 1, &lf, &pos);
        if (kind == DELIM_NONE)
            return -1;
        size_t data_end = lf;
        if (data_end > data_start && body[data_end - 1] == '\r')
            data_end--;
        part.data = body + data_start;
        part.data_len = data_end >= data_start ? data_end - data_start : 0;
        parts[n++] = part;
    }
    if (kind != DELIM_CLOSE)
        return -1;
    *nparts = n;
    return 0;
}

const ekv_mp_part_t *ekv_multipart_find(const ekv_mp_part_t *parts, size_t nparts, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < nparts; i++) {
        if (parts[i].name_len == len && memcmp(parts[i].name, name, len) == 0)
            return &parts[i];
    }
    return NULL;
}

/* ---- metadata ---------------------------------------------------------------------------- */

/* One bracket segment of a field name: "[]" (append) or "[key]". */
typedef struct {
    const char *key;
    size_t key_len;
    int append; /* 1 for "[]" */
} mp_seg_t;

/* Parse the segment at name[*i]; 1 ok, 0 at the end of the name, -1 malformed. */
static int next_seg(const char *name, size_t len, size_t *i, mp_seg_t *seg)
{
    if (*i == len)
        return 0;
    if (name[*i] != '[')
        return -1;
    size_t k = *i + 1, start = k;
    while (k < len && name[k] != ']') {
        if (name[k] == '[')
            return -1;
        k++;
    }
    if (k == len)
        return -1;
    seg->key = name + start;
    seg->key_len = k - start;
    seg->append = seg->key_len == 0;
    *i = k + 1;
    return 1;
}

static int seg_type_ok(const json_t *node, const mp_seg_t *seg)
{
    return seg->append ? json_is_array(node) : json_is_object(node);
}

static json_t *seg_container_new(const mp_seg_t *seg)
{
    return seg->append ? json_array() : json_object();
}

/*
 * Could the rest of the path (starting with `seg` at name[i]) be put into `node` without
 * hitting an existing field? Walks down existing objects only: an append segment can always
 * take a new element.
 */
static int path_fits(const json_t *node, mp_seg_t seg, const char *name, size_t len, size_t i)
{
    for (;;) {
        if (!seg_type_ok(node, &seg))
            return 0;
        if (seg.append)
            return 1;
        const json_t *child = json_object_getn(node, seg.key, seg.key_len);
        if (!child)
            return 1;
        mp_seg_t next;
        int r = next_seg(name, len, &i, &next);
        if (r <= 0)
            return 0; /* leaf already present (or malformed, checked by the caller) */
        node = child;
        seg = next;
    }
}

/* Insert one bracket field (name = "metadata[...]..."; i = offset of its first '[') into
 * *root (created on first use). 0 or -1. */
static int put_field(json_t **root, const char *name, size_t len, size_t i, const char *data,
                     size_t data_len)
{
    mp_seg_t seg, next;
    int depth = 0;
    if (next_seg(name, len, &i, &seg) != 1)
        return -1;
    if (!*root && !(*root = seg_container_new(&seg)))
        return -1;
    json_t *cur = *root;
    for (;;) {
        int r = next_seg(name, len, &i, &next);
        if (r < 0 || ++depth > MP_MAX_DEPTH || !seg_type_ok(cur, &seg))
            return -1;
        if (r == 0) {
            /* Leaf. Form fields carry text; invalid UTF-8 cannot be a JSON string. */
            json_t *str = json_stringn(data, data_len);
            if (!str)
                return -1;
            if (seg.append)
                return json_array_append_new(cur, str);
            if (json_object_getn(cur, seg.key, seg.key_len)) {
                json_decref(str);
                return -1;
            }
            return json_object_setn_new(cur, seg.key, seg.key_len, str);
        }
        json_t *child;
        if (seg.append) {
            size_t n = json_array_size(cur);
            child = n ? json_array_get(cur, n - 1) : NULL;
            if (!child || !path_fits(child, next, name, len, i)) {
                if (!(child = seg_container_new(&next)) || json_array_append_new(cur, child) != 0)
                    return -1;
            }
        } else {
            child = json_object_getn(cur, seg.key, seg.key_len);
            if (!child) {
                if (!(child = seg_container_new(&next)) ||
                    json_object_setn_new(cur, seg.key, seg.key_len, child) != 0)
                    return -1;
            } else if (!seg_type_ok(child, &next)) {
                return -1;
            }
        }
        cur = child;
        seg = next;
    }
}

int ekv_multipart_metadata(const ekv_mp_part_t *parts, size_t nparts, json_t **out)
{
    static const char prefix[] = "metadata";
    const size_t plen = sizeof(prefix) - 1;
    const ekv_mp_part_t *text = NULL;
    json_t *root = NULL;

    *out = NULL;
    for (size_t k = 0; k < nparts; k++) {
        const ekv_mp_part_t *p = &parts[k];
        if (p->name_len < plen || memcmp(p->name, prefix, plen) != 0)
            continue;
        if (p->name_len == plen) {
            if (text || root)
                goto fail; /* two metadata parts, or mixed with bracket fields */
            text = p;
        } else if (p->name[plen] == '[') {
            if (text || put_field(&root, p->name, p->name_len, plen, p->data, p->data_len) != 0)
                goto fail;
        }
    }
    if (text) {
        json_error_t jerr;
        root = json_loadb(text->data, text->data_len, EKV_JSON_PARSE_FLAGS, &jerr);
        if (!root)
            return -1;
    }
    *out = root;
    return 0;
fail:
    json_decref(root);
    return -1;
}
