/*
 * bufpool.c - see bufpool.h.
 */
#include "server/http/bufpool.h"

#include <stdlib.h>

void ekv_bufpool_init(ekv_bufpool_t *p, size_t size, size_t keep)
{
    p->size = size < sizeof(void *) ? sizeof(void *) : size;
    p->keep = keep;
    p->nfree = 0;
    p->nlent = 0;
    p->free = NULL;
}

char *ekv_bufpool_get(ekv_bufpool_t *p)
{
    char *b = p->free;
    if (b) {
        p->free = *(void **)b;
        p->nfree--;
    } else {
        b = malloc(p->size);
        if (!b)
            return NULL;
    }
    p->nlent++;
    return b;
}

void ekv_bufpool_put(ekv_bufpool_t *p, char *buf)
{
    if (!buf)
        return;
    p->nlent--;
    if (p->nfree >= p->keep) {
        free(buf);
        return;
    }
    *(void **)buf = p->free;
    p->free = buf;
    p->nfree++;
}

void ekv_bufpool_drain(ekv_bufpool_t *p)
{
    while (p->free) {
        void *next = *(void **)p->free;
        free(p->free);
        p->free = next;
    }
    p->nfree = 0;
}
