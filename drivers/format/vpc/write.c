/*
 * vpc writes: giving a block space at the end of the file crash-safely
 * (footer moved, bitmap written, BAT entry last), then writing data and
 * zeroes block by block. Sector bitmaps are bitmap.c's; reads are read.c's.
 */
#include "vpc.h"

#include <stdlib.h>
#include <string.h>

/*
 * Give block blk space at the end of the file, crash-safely: grow the file
 * and put the footer at the new end, write the block's bitmap over the old
 * footer (all ones for a dynamic disk: the zeroed data is its content; all
 * zeroes for a differencing disk: the parent still shows), flush, and only
 * then point the BAT at it. A crash at any step leaves a valid image.
 */
static int vpc_alloc_block(struct bd_node *n, uint64_t blk, uint32_t *entry)
{
    struct vpc_state *s = n->state;
    uint64_t new_off, new_end, sect;
    uint8_t *bm, be[4];
    struct bd_err e2;
    int r;

    pthread_mutex_lock(&s->lock);
    *entry = vpc_bat_get(s, blk);
    if (*entry != VPC_BAT_UNUSED) {
        r = 0;
        goto out_unlock;
    }
    new_off = s->footer_off;
    sect = new_off / BD_SECTOR;
    new_end = new_off + s->bitmap_size + s->block_size + VPC_FOOTER_SIZE;
    if (sect >= VPC_BAT_UNUSED) {
        r = -EFBIG;
        goto out_unlock;
    }
    bm = malloc(s->bitmap_size);
    if (!bm) {
        r = -ENOMEM;
        goto out_unlock;
    }
    memset(bm, s->ft.type == VPC_TYPE_DIFF ? 0 : 0xff, s->bitmap_size);
    bd_err_clear(&e2);
    r = bd_truncate(n->file, new_end, BD_PREALLOC_OFF, &e2);
    if (r < 0)
        goto out_free;
    r = bd_pwrite(n->file, s->footer_raw, VPC_FOOTER_SIZE,
                  new_end - VPC_FOOTER_SIZE, 0);
    if (r < 0)
        goto out_free;
    s->footer_off = new_end - VPC_FOOTER_SIZE;
    r = bd_pwrite(n->file, bm, s->bitmap_size, new_off, 0);
    if (r < 0)
        goto out_free;
    r = bd_flush(n->file);
    if (r < 0)
        goto out_free;
    bd_put_be32(be, (uint32_t)sect);
    r = bd_pwrite(n->file, be, 4, s->dyn.table_off + blk * 4, 0);
    if (r < 0)
        goto out_free;
    __atomic_store_n(&s->bat[blk], (uint32_t)sect, __ATOMIC_RELEASE);
    *entry = (uint32_t)sect;
out_free:
    free(bm);
out_unlock:
    pthread_mutex_unlock(&s->lock);
    return r;
}

static int vpc_write_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                           uint64_t done)
{
    struct vpc_io *io = ctx;
    uint32_t e = vpc_bat_get(io->s, blk);
    int r;

    if (e == VPC_BAT_UNUSED) {
        r = vpc_alloc_block(io->n, blk, &e);
        if (r < 0)
            return r;
        io->grew = true;
    }
    r = bd_pwrite(io->n->file, io->wbuf + done, chunk,
                  vpc_block_data_off(io->s, e) + in, io->flags);
    if (r == 0 && io->s->ft.type == VPC_TYPE_DIFF)
        r = vpc_mark_present(io->n, e, in, chunk);
    return r;
}

int vpc_pwrite(struct bd_node *n, const void *buf, uint64_t len, uint64_t off,
               unsigned flags)
{
    struct vpc_io io = { .n = n, .s = n->state, .wbuf = buf, .off = off,
                         .flags = flags };
    int r;

    if (io.s->ft.type == VPC_TYPE_FIXED)
        return bd_pwrite(n->file, buf, len, off, flags);
    r = bd_for_each_block(off, len, io.s->block_size, vpc_write_block, &io);
    if (r < 0)
        return r;
    /* FUA covers the map entries that make the data reachable */
    if (io.grew && (flags & BD_REQ_FUA))
        return bd_flush(n->file);
    return 0;
}

/*
 * Zeroes without allocating: an unused block of a dynamic disk already reads
 * as zeroes. A differencing disk must hide its parent there, so it takes
 * the write path's allocation and marks the sectors present.
 */
static int vpc_zero_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct vpc_io *io = ctx;
    uint32_t e = vpc_bat_get(io->s, blk);
    int r;

    (void)done;
    if (e == VPC_BAT_UNUSED && io->s->ft.type == VPC_TYPE_DIFF) {
        r = vpc_alloc_block(io->n, blk, &e);
        if (r < 0)
            return r;
    }
    if (e == VPC_BAT_UNUSED)
        return 0;
    r = bd_pwrite_zeroes(io->n->file, chunk, vpc_block_data_off(io->s, e) + in,
                         io->flags);
    if (r == 0 && io->s->ft.type == VPC_TYPE_DIFF)
        r = vpc_mark_present(io->n, e, in, chunk);
    return r;
}

int vpc_pwrite_zeroes(struct bd_node *n, uint64_t len, uint64_t off,
                      unsigned flags)
{
    struct vpc_io io = { .n = n, .s = n->state, .off = off, .flags = flags };

    if (io.s->ft.type == VPC_TYPE_FIXED)
        return bd_pwrite_zeroes(n->file, len, off, flags);
    return bd_for_each_block(off, len, io.s->block_size, vpc_zero_block, &io);
}
