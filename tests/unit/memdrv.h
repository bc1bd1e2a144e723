/*
 * A memory-backed test driver for core's unit tests: records the requests
 * it receives so tests can check what core hands to drivers (alignment,
 * bounds, splitting) and can mark ranges unallocated for chain walks.
 */
#ifndef IMGFUSE_TEST_MEMDRV_H
#define IMGFUSE_TEST_MEMDRV_H

#include "core/bd-internal.h"
#include <stdlib.h>
#include <string.h>

struct mem_state {
    uint8_t *data;
    uint8_t *alloc;             /* one byte per 512: 0 unallocated, 1 data, 2 zero */
    uint64_t size;
    uint32_t align, max_transfer;
    unsigned nreq, misaligned, oob, too_big;
};

static int mem_open(struct bd_node *n, const struct bd_opts *o, struct bd_err *err)
{
    (void)n; (void)o; (void)err;
    return 0;
}

static void mem_limits(struct bd_node *n, struct bd_limits *lim)
{
    struct mem_state *s = n->state;
    lim->request_alignment = s->align;
    lim->max_transfer = s->max_transfer;
}

static int64_t mem_size(struct bd_node *n)
{
    return (int64_t)((struct mem_state *)n->state)->size;
}

static void mem_check(struct mem_state *s, uint64_t len, uint64_t off)
{
    s->nreq++;
    if (off % s->align || len % s->align)
        s->misaligned++;
    if (off + len > (s->size + s->align - 1) / s->align * s->align)
        s->oob++;
    if (s->max_transfer && len > s->max_transfer)
        s->too_big++;
}

static int mem_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct mem_state *s = n->state;
    mem_check(s, len, off);
    uint64_t avail = off < s->size ? s->size - off : 0;
    memcpy(buf, s->data + off, len < avail ? len : avail);
    if (len > avail)
        memset((uint8_t *)buf + avail, 0, len - avail);
    return 0;
}

static int mem_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
                      unsigned flags)
{
    struct mem_state *s = n->state;
    (void)flags;
    mem_check(s, len, off);
    memcpy(s->data + off, buf, len);
    for (uint64_t b = off / 512; b < (off + len + 511) / 512; b++)
        s->alloc[b] = 1;
    return 0;
}

static int mem_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                            uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct mem_state *s = n->state;
    uint64_t b = off / 512;
    uint8_t kind = s->alloc[b];
    uint64_t end = off;
    while (end < off + len && s->alloc[end / 512] == kind)
        end = (end / 512 + 1) * 512;
    if (end > off + len)
        end = off + len;
    *pnum = end - off;
    *map = off;
    *status = kind == 0 ? 0 : kind == 1 ? BD_STATUS_DATA | BD_STATUS_ALLOCATED
                                        : BD_STATUS_ZERO | BD_STATUS_ALLOCATED;
    return 0;
}

static const struct bd_driver mem_driver = {
    .name = "mem",
    .kind = BD_FORMAT,
    .state_size = sizeof(struct mem_state),
    .parallel = true,
    .open = mem_open,
    .limits = mem_limits,
    .size = mem_size,
    .pread = mem_pread,
    .pwrite = mem_pwrite,
    .block_status = mem_block_status,
};

static inline struct bd_node *mem_node(uint64_t size, uint32_t align, uint32_t max_transfer)
{
    struct bd_flags f = { 0 };
    struct bd_err err = { 0 };
    struct bd_node *n = bd_node_alloc(&mem_driver, "mem", &f, &err);
    struct mem_state *s = n->state;
    s->size = size;
    s->align = align;
    s->max_transfer = max_transfer;
    s->data = calloc(1, size + align);
    s->alloc = calloc(1, size / 512 + 2);
    bd_node_refresh_limits(n);
    return n;
}

static inline void mem_free(struct bd_node *n)
{
    struct mem_state *s = n->state;
    if (n->backing)
        mem_free(n->backing);
    n->backing = NULL;
    free(s->data);
    free(s->alloc);
    bd_node_close(n);
}

#endif
