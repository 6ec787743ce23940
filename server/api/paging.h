/*
 * paging.h - Cloudflare's page-style lists (`?page&per_page`, result_info with page,
 * per_page, count, total_count, total_pages), shared by the KV and Durable Object namespace
 * lists. Loop thread, pure apart from the error reply.
 */
#ifndef EKV_SERVER_API_PAGING_H
#define EKV_SERVER_API_PAGING_H

#include "server/http/server.h"
#include "server/http/urlcodec.h"

#include <jansson.h>

/* Strict positive decimal of at most 9 digits; -1 when malformed. */
long long ekv_page_uint(const char *s, size_t len);
/* page (default 1, >= 1: else 400 / 10007) and per_page (default 20, 1..max: else 400 /
 * 10008) from a parsed query. 0, or -1 after answering. */
int ekv_page_args_or_reply(ekv_req_t *req, const ekv_query_t *q, long long max_per_page,
                           long long *page, long long *per_page);
/* result_info of a page holding `count` of `total` items. */
json_t *ekv_page_info(long long page, long long per_page, long long count, long long total);

#endif
