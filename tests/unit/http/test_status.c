/*
 * test_status.c - reason phrases in the status line (ekv_http_status_text): every HTTP status
 * in the error table and every status the transport sends itself has its RFC 9110 text
 * (regression, issue 9: 504 went out as "504 Unknown").
 */
#include "common/errors.h"
#include "server/http/server.h"

#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <string.h>

#define STATUS_OF(name, status, code, msg) status,
static const int table_statuses[] = {EKV_ERRNO_MAP(STATUS_OF)};

Test(status_text, every_status_in_the_error_table_has_a_text)
{
    size_t n = sizeof(table_statuses) / sizeof(table_statuses[0]);
    cr_assert_gt(n, 10);
    for (size_t i = 0; i < n; i++)
        cr_assert(ne(str, (char *)ekv_http_status_text(table_statuses[i]), "Unknown"),
                  "status %d (error table row %zu) has no reason phrase", table_statuses[i], i);
}

Test(status_text, statuses_sent_outside_the_table)
{
    /* 100 (Expect), 200, 413 (early Content-Length check), 501 (unsupported coding), the
     * gateway answers of edges and --sync-replicas, and what a relayed reply may carry */
    static const struct {
        int status;
        const char *text;
    } want[] = {
        {100, "Continue"},
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {411, "Length Required"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert(eq(str, (char *)ekv_http_status_text(want[i].status), (char *)want[i].text),
                  "status %d", want[i].status);
}

Test(status_text, unknown_statuses)
{
    cr_assert(eq(str, (char *)ekv_http_status_text(299), "Unknown"));
    cr_assert(eq(str, (char *)ekv_http_status_text(0), "Unknown"));
    cr_assert(eq(str, (char *)ekv_http_status_text(-1), "Unknown"));
}
