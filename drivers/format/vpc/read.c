/*
 * vpc reads and block status: guest offsets through the BAT to blocks,
 * through a differencing disk's sector bitmaps to this file or the parent.
 * Allocation and writes are write.c's; the parent is opened by parent.c.
 */
#include "vpc.h"

#include <stdlib.h>
#include <string.h>

/* Read from the parent, zeroes where it has nothing (or there is none). */
static int vpc_read_parent(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    int64_t psize;
    uint64_t have = 0;
    int r;

    if (n->backing) {
        psize = bd_size(n->backing);
        if (psize < 0)
            return (int)psize;
        if (off < (uint64_t)psize) {
            have = len < (uint64_t)psize - off ? len : (uint64_t)psize - off;
            r = bd_pread(n->backing, buf, have, off);
            if (r < 0)
                return r;
        }
    }
    memset((uint8_t *)buf + have, 0, len - have);
    return 0;
}

/* Part of one allocated block of a differencing disk: runs of sectors here
 * or in the parent, as the block's sector bitmap says. */
static int vpc_read_diff_block(struct bd_node *n, uint32_t entry, uint8_t *buf,
                               uint64_t len, uint64_t off, uint64_t in)
{
    struct vpc_state *s = n->state;
    uint64_t s0 = in / BD_SECTOR, s1 = (in + len) / BD_SECTOR, first;
    uint8_t *bm;
    int r;

    r = vpc_read_bitmap(n, entry, s0, s1, &bm, &first);
    if (r < 0)
        return r;
    for (uint64_t i = s0; i < s1;) {
        bool here = vpc_bit(bm, i - first);
        uint64_t j = i + 1, blen, boff;

        while (j < s1 && vpc_bit(bm, j - first) == here)
            j++;
        blen = (j - i) * BD_SECTOR;
        boff = (i - s0) * BD_SECTOR;
        if (here)
            r = bd_pread(n->file, buf + boff, blen,
                         vpc_block_data_off(s, entry) + i * BD_SECTOR);
        else
            r = vpc_read_parent(n, buf + boff, blen, off + boff);
        if (r < 0)
            break;
        i = j;
    }
    free(bm);
    return r;
}

static int vpc_read_block(void *ctx, uint64_t blk, uint32_t in, uint32_t chunk,
                          uint64_t done)
{
    struct vpc_io *io = ctx;
    uint32_t e = vpc_bat_get(io->s, blk);
    uint8_t *p = io->rbuf + done;

    if (e == VPC_BAT_UNUSED)
        return vpc_read_parent(io->n, p, chunk, io->off + done);
    if (io->s->ft.type == VPC_TYPE_DIFF)
        return vpc_read_diff_block(io->n, e, p, chunk, io->off + done, in);
    return bd_pread(io->n->file, p, chunk, vpc_block_data_off(io->s, e) + in);
}

int vpc_pread(struct bd_node *n, void *buf, uint64_t len, uint64_t off)
{
    struct vpc_io io = { .n = n, .s = n->state, .rbuf = buf, .off = off };

    if (io.s->ft.type == VPC_TYPE_FIXED)
        return bd_pread(n->file, buf, len, off);
    return bd_for_each_block(off, len, io.s->block_size, vpc_read_block, &io);
}

int vpc_block_status(struct bd_node *n, uint64_t off, uint64_t len,
                     uint64_t *pnum, unsigned *status, uint64_t *map)
{
    struct vpc_state *s = n->state;
    uint64_t blk, in, chunk, first;
    uint32_t e;
    uint8_t *bm;
    int r;

    if (s->ft.type == VPC_TYPE_FIXED) {
        *pnum = len;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        *map = off;
        return 0;
    }
    blk = off / s->block_size;
    in = off % s->block_size;
    chunk = s->block_size - in;
    if (chunk > len)
        chunk = len;
    e = vpc_bat_get(s, blk);
    if (e == VPC_BAT_UNUSED) {
        /* merge following unallocated blocks */
        uint64_t done = chunk;

        while (done < len && vpc_bat_get(s, ++blk) == VPC_BAT_UNUSED)
            done += len - done < s->block_size ? len - done : s->block_size;
        *pnum = done;
        *status = 0;
        return 0;
    }
    *map = vpc_block_data_off(s, e) + in;
    if (s->ft.type != VPC_TYPE_DIFF) {
        *pnum = chunk;
        *status = BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET;
        return 0;
    }
    r = vpc_read_bitmap(n, e, in / BD_SECTOR, (in + chunk) / BD_SECTOR, &bm, &first);
    if (r < 0)
        return r;
    {
        uint64_t i = in / BD_SECTOR, end = (in + chunk) / BD_SECTOR;
        bool here = vpc_bit(bm, i - first);

        while (i < end && vpc_bit(bm, i - first) == here)
            i++;
        *pnum = i * BD_SECTOR - in;
        *status = here ? BD_STATUS_DATA | BD_STATUS_ALLOCATED | BD_STATUS_OFFSET : 0;
    }
    free(bm);
    return 0;
}
