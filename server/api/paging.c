/*
 * paging.c - page-style lists (paging.h).
 */
#include "server/api/paging.h"
#include "common/errors.h"
#include "server/http/reply.h"

long long ekv_page_uint(const char *s, size_t len)
{
    if (len == 0 || len > 9)
        return -1;
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int ekv_page_args_or_reply(ekv_req_t *req, const ekv_query_t *q, long long max_per_page,
                           long long *page, long long *per_page)
{
    char buf[64];
    size_t len;
    *page = 1;
    *per_page = 20;
    int rc = ekv_query_get(q, "page", buf, sizeof(buf), &len);
    if (rc && (rc < 0 || (*page = ekv_page_uint(buf, len)) < 1)) {
        ekv_reply_error(req, EKV_EBAD_PAGE, NULL);
        return -1;
    }
    rc = ekv_query_get(q, "per_page", buf, sizeof(buf), &len);
    if (rc && (rc < 0 || (*per_page = ekv_page_uint(buf, len)) < 1 || *per_page > max_per_page)) {
        ekv_reply_error(req, EKV_EBAD_PER_PAGE, NULL);
        return -1;
    }
    return 0;
}

json_t *ekv_page_info(long long page, long long per_page, long long count, long long total)
{
    long long total_pages = total ? (total + per_page - 1) / per_page : 0;
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "page", (json_int_t)page, "per_page",
                     (json_int_t)per_page, "count", (json_int_t)count, "total_count",
                     (json_int_t)total, "total_pages", (json_int_t)total_pages);
}
