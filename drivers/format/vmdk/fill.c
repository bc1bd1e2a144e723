/*
 * What an extent does not hold reads from the parent image at the same guest
 * offset, or as zeroes (no parent, or past its end). Sparse and seSparse
 * extents call this; vmdk.c only says where the extent starts and which
 * parent, in struct vmdk_fill.
 */
#include "vmdk.h"

#include <string.h>

int vmdk_fill_read(const struct vmdk_fill *f, void *buf, uint64_t len,
                   uint64_t off)
{
    uint64_t voff = f->base + off, have;
    int64_t bsize;

    if (!f->backing) {
        memset(buf, 0, len);
        return 0;
    }
    bsize = bd_size(f->backing);
    if (bsize < 0)
        return (int)bsize;
    have = voff >= (uint64_t)bsize ? 0 : (uint64_t)bsize - voff;
    if (have > len)
        have = len;
    if (have) {
        int ret = bd_pread(f->backing, buf, have, voff);
        if (ret < 0)
            return ret;
    }
    memset((uint8_t *)buf + have, 0, len - have);
    return 0;
}
